//! Leader-only reconcilers: replicated, global and job orchestrators, the restart supervisor,
//! the rolling updater and the task reaper. Each is a pure function of a store snapshot and the
//! time; [`pass`] runs them all plus the scheduler and returns the writes to propose. Anything
//! that must survive a leader change (restart delays, update progress) is derived from the
//! stored tasks and the service's `UpdateStatus`, so a new leader picks up where the old left.

mod driver;
mod global;
mod plan;
mod reaper;
mod replicated;
mod restart;
mod state;
mod updater;

pub use driver::Orchestration;
pub use plan::Plan;
pub use state::{ClusterState, MemObjects, ObjectSource};

use chrono::{DateTime, Utc};
use shoal_store::Change;
use shoal_types::constraint::{node_matches, parse_constraints};
use shoal_types::meta::Version;
use shoal_types::service::ModeKind;
use shoal_types::task::TaskStatus;
use shoal_types::{Meta, Node, NodeAvailability, NodeState, Service, Task, TaskState, new_id};

/// One full pass: orchestrators, scheduler, reaper. Returns the changes to propose.
pub fn pass(src: &dyn ObjectSource, now: DateTime<Utc>) -> Vec<Change> {
    pass_with(src, now, true)
}

/// A pass, with or without the reaper (history trimming need not run on every pass: on a big
/// cluster it is a scan of every task for nothing most of the time).
pub fn pass_with(src: &dyn ObjectSource, now: DateTime<Utc>, reap_history: bool) -> Vec<Change> {
    let st = ClusterState::build(src);
    let mut plan = Plan::new();
    orchestrate(&st, now, &mut plan);
    // Tasks get their network addresses before they may be placed; those that cannot stay
    // PENDING (with the reason) and out of the scheduler's sight until a later pass.
    let held = crate::network::allocator::allocate(&st, now, &mut plan);
    if held.is_empty() {
        crate::scheduler::schedule(&st, now, &mut plan);
    } else {
        let visible = st.without_tasks(&held);
        let parked = plan.take_created(&held);
        crate::scheduler::schedule(&visible, now, &mut plan);
        plan.restore_created(parked);
    }
    if reap_history {
        reaper::reap(&st, &mut plan);
    }
    plan.into_changes()
}

/// Only the orchestrators (no scheduling, no reaping).
pub fn reconcile(src: &dyn ObjectSource, now: DateTime<Utc>) -> Vec<Change> {
    let st = ClusterState::build(src);
    let mut plan = Plan::new();
    orchestrate(&st, now, &mut plan);
    plan.into_changes()
}

/// Only the task reaper.
pub fn reap(src: &dyn ObjectSource) -> Vec<Change> {
    let st = ClusterState::build(src);
    let mut plan = Plan::new();
    reaper::reap(&st, &mut plan);
    plan.into_changes()
}

pub(crate) fn orchestrate(st: &ClusterState, now: DateTime<Utc>, plan: &mut Plan) {
    for svc in st.services.values() {
        if svc.pending_delete {
            continue;
        }
        match svc.mode_kind() {
            Some(ModeKind::Replicated) | Some(ModeKind::ReplicatedJob) => {
                replicated::reconcile_service(st, svc, now, plan)
            }
            Some(ModeKind::Global) | Some(ModeKind::GlobalJob) => {
                global::reconcile_service(st, svc, now, plan)
            }
            None => {}
        }
    }
    // Tasks whose service is gone are shut down and then reaped.
    for t in &st.all_tasks {
        if t.is_network_attachment() {
            // A standalone container's address (no service): removed once its node reported
            // it ended or the node left the cluster; otherwise left alone (crate::attachment).
            if (ended(t) || !st.nodes.contains_key(t.node_id.as_str()))
                && t.desired_state < TaskState::Remove
            {
                plan.update_task(t, |t| t.desired_state = TaskState::Remove);
            }
            continue;
        }
        if !st.services.contains_key(t.service_id.as_str()) && t.desired_state < TaskState::Remove {
            plan.update_task(t, |t| t.desired_state = TaskState::Remove);
        }
    }
}

/// Observed state past RUNNING.
pub(crate) fn ended(t: &Task) -> bool {
    t.status.state > TaskState::Running
}

/// Desired state still "run it" (READY, RUNNING, or COMPLETE for jobs).
pub(crate) fn wanted(t: &Task) -> bool {
    t.desired_state <= TaskState::Complete
}

/// A node tasks may stay on: known, not down, not drained.
pub(crate) fn node_usable(node: Option<&Node>) -> bool {
    node.is_some_and(|n| {
        n.status.state != NodeState::Down && n.spec.availability != NodeAvailability::Drain
    })
}

/// Whether a node satisfies a service's constraints and platforms.
pub(crate) fn node_fits_placement(svc: &Service, node: &Node) -> bool {
    let Some(p) = &svc.spec.task_template.placement else {
        return true;
    };
    let constraints = parse_constraints(&p.constraints).unwrap_or_default();
    node_matches(&constraints, node) && platform_ok(p, node)
}

pub(crate) fn platform_ok(p: &shoal_types::task_spec::Placement, node: &Node) -> bool {
    if p.platforms.is_empty() {
        return true;
    }
    let plat = &node.description.platform;
    p.platforms.iter().any(|want| {
        (want.os.is_empty() || plat.os.is_empty() || want.os.eq_ignore_ascii_case(&plat.os))
            && (want.architecture.is_empty()
                || plat.architecture.is_empty()
                || arch_eq(&want.architecture, &plat.architecture))
    })
}

fn arch_eq(a: &str, b: &str) -> bool {
    let norm = |s: &str| match s.to_ascii_lowercase().as_str() {
        "x86_64" | "amd64" => "amd64".to_string(),
        "aarch64" | "arm64" => "arm64".to_string(),
        other => other.to_string(),
    };
    norm(a) == norm(b)
}

/// The spec version tasks of this service are stamped with.
pub(crate) fn spec_version(svc: &Service) -> Option<Version> {
    svc.spec_version
}

/// A task is dirty when it was made from another spec version and its spec really differs;
/// placement-only changes still satisfied by the task's node do not count.
pub(crate) fn is_dirty(svc: &Service, t: &Task, node: Option<&Node>) -> bool {
    if t.spec_version == svc.spec_version && svc.spec_version.is_some() {
        return false;
    }
    // A placed task attached to ingress or not, while the service now publishes the other way.
    if t.status.state >= TaskState::Assigned
        && t.networks_attachments
            .iter()
            .any(|a| a.network.spec.ingress)
            != crate::network::control::publishes_ingress(svc)
    {
        return true;
    }
    // Made for another endpoint spec (ports, vip/dnsrr): redeployed, as in Docker.
    if t.endpoint
        .as_ref()
        .is_some_and(|e| e.spec != svc.endpoint.spec)
    {
        return true;
    }
    let want = &svc.spec.task_template;
    if t.spec == *want {
        return false;
    }
    let mut a = t.spec.clone();
    a.placement = None;
    let mut b = want.clone();
    b.placement = None;
    if a == b {
        return match node {
            Some(n) => !node_fits_placement(svc, n),
            None => true,
        };
    }
    true
}

/// The desired state a new task of this service starts with.
pub(crate) fn run_state(svc: &Service) -> TaskState {
    if svc.mode_kind().is_some_and(ModeKind::is_job) {
        TaskState::Complete
    } else {
        TaskState::Running
    }
}

/// A fresh task for a slot (replicated) or a node (global), ready for the scheduler.
pub(crate) fn new_task(
    svc: &Service,
    slot: u64,
    node_id: &str,
    desired: TaskState,
    now: DateTime<Utc>,
) -> Task {
    let mut spec = svc.spec.task_template.clone();
    spec.normalize();
    Task {
        id: new_id(),
        meta: Meta::created(now),
        spec,
        service_id: svc.id.clone(),
        slot,
        node_id: node_id.to_string(),
        // The network allocator (same pass) fills addresses before the scheduler sees it.
        status: TaskStatus::new(TaskState::Pending, "pending task scheduling", now),
        desired_state: desired,
        job_iteration: svc.job_status.as_ref().map(|j| j.job_iteration),
        service_annotations: svc.spec.annotations.clone(),
        spec_version: spec_version(svc),
        endpoint: (!svc.endpoint.ports.is_empty() || !svc.endpoint.virtual_ips.is_empty())
            .then(|| svc.endpoint.clone()),
        ..Task::default()
    }
}

/// Tasks sorted oldest first (creation time, then ID for a stable order).
pub(crate) fn by_age(mut v: Vec<&Task>) -> Vec<&Task> {
    v.sort_by(|a, b| {
        a.meta
            .created_at
            .cmp(&b.meta.created_at)
            .then_with(|| a.id.cmp(&b.id))
    });
    v
}

#[cfg(test)]
mod tests;
#[cfg(test)]
pub(crate) mod testutil;
