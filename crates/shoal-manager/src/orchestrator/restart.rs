//! The restart supervisor: decides whether a slot's current task must be replaced (it ended, or
//! its node went away) per the restart policy, and releases replacement tasks held at READY once
//! the restart delay passed and the task they replace stopped.

use chrono::{DateTime, Duration, Utc};
use shoal_types::service::ModeKind;
use shoal_types::task_spec::RestartCondition;
use shoal_types::{NodeAvailability, Service, Task, TaskState};

use super::{ClusterState, Plan, ended, new_task, node_usable, run_state};

/// How long a replacement waits for the task it replaces to stop (swarmkit: 1 minute).
const OLD_TASK_TIMEOUT_SECS: i64 = 60;

pub(crate) enum Verdict {
    /// Leave the task alone.
    Keep,
    /// Shut it down and start a replacement in the same slot / on the same node.
    Replace,
    /// It ended and the policy says it stays ended.
    Dead,
}

/// The task ended by itself (not stopped by a manager).
fn ended_on_its_own(t: &Task) -> bool {
    matches!(
        t.status.state,
        TaskState::Complete | TaskState::Failed | TaskState::Rejected
    )
}

fn condition(svc: &Service) -> RestartCondition {
    let c = svc
        .spec
        .task_template
        .restart_policy
        .as_ref()
        .map(|p| p.effective_condition())
        .unwrap_or(RestartCondition::Any);
    // Jobs never restart a task that completed.
    if c == RestartCondition::Any && svc.mode_kind().is_some_and(ModeKind::is_job) {
        RestartCondition::OnFailure
    } else {
        c
    }
}

pub(crate) fn restart_delay_ns(svc: &Service) -> i64 {
    svc.spec
        .task_template
        .restart_policy
        .as_ref()
        .map(|p| p.effective_delay())
        .unwrap_or(shoal_types::task_spec::DEFAULT_RESTART_DELAY)
        .max(0)
}

/// Decides about `current`, the newest wanted task of a slot; `history` holds every task of the
/// slot (any order).
pub(crate) fn evaluate(
    st: &ClusterState,
    svc: &Service,
    current: &Task,
    history: &[&Task],
    now: DateTime<Utc>,
) -> Verdict {
    if !ended(current) {
        if !current.node_id.is_empty()
            && !node_usable(st.nodes.get(current.node_id.as_str()).copied())
        {
            return Verdict::Replace;
        }
        return Verdict::Keep;
    }
    match condition(svc) {
        RestartCondition::None => return Verdict::Dead,
        RestartCondition::OnFailure if current.status.state == TaskState::Complete => {
            return Verdict::Dead;
        }
        _ => {}
    }
    let policy = svc
        .spec
        .task_template
        .restart_policy
        .clone()
        .unwrap_or_default();
    let max = policy.max_attempts.unwrap_or(0);
    if max > 0 {
        let window = policy.window.unwrap_or(0);
        let since = (window > 0).then(|| now - Duration::nanoseconds(window));
        let runs = history
            .iter()
            .filter(|t| ended_on_its_own(t) || t.id == current.id)
            .filter(|t| since.is_none_or(|s| t.status.timestamp >= s))
            .count() as u64;
        // The first run is not a restart.
        if runs > max {
            return Verdict::Dead;
        }
    }
    Verdict::Replace
}

/// Shuts `old` down and creates its replacement (held at READY when it must wait).
pub(crate) fn replace(
    st: &ClusterState,
    svc: &Service,
    old: &Task,
    slot: u64,
    node_id: &str,
    now: DateTime<Utc>,
    plan: &mut Plan,
) {
    plan.update_task(old, |t| {
        if t.desired_state < TaskState::Shutdown {
            t.desired_state = TaskState::Shutdown;
        }
    });
    let old_node = st.nodes.get(old.node_id.as_str()).copied();
    let old_running = !ended(old) && node_usable(old_node);
    let drained = old_node.is_some_and(|n| n.spec.availability == NodeAvailability::Drain);
    let hold = old_running || (!drained && restart_delay_ns(svc) > 0);
    let desired = if hold {
        TaskState::Ready
    } else {
        run_state(svc)
    };
    plan.create_task(new_task(svc, slot, node_id, desired, now));
}

/// Releases a task held at READY: after the restart delay (when it replaces a task that ended or
/// lost its node) and once the tasks it replaces stopped (or after a minute).
pub(crate) fn release_held(
    st: &ClusterState,
    svc: &Service,
    held: &Task,
    slot_tasks: &[&Task],
    now: DateTime<Utc>,
    plan: &mut Plan,
) {
    if plan.task(held).desired_state != TaskState::Ready {
        return;
    }
    let older: Vec<&Task> = slot_tasks
        .iter()
        .copied()
        .filter(|t| t.id != held.id && t.meta.created_at <= held.meta.created_at)
        .collect();
    let still_running = older.iter().any(|t| {
        let t = plan.task(t);
        !ended(t) && node_usable(st.nodes.get(t.node_id.as_str()).copied())
    });
    let timed_out = now >= held.meta.created_at + Duration::seconds(OLD_TASK_TIMEOUT_SECS);
    if still_running && !timed_out {
        return;
    }
    let newest = older.iter().max_by_key(|t| t.meta.created_at);
    let delay = match newest {
        Some(p) => {
            let node = st.nodes.get(p.node_id.as_str()).copied();
            let drained = node.is_some_and(|n| n.spec.availability == NodeAvailability::Drain);
            if !drained && (ended_on_its_own(p) || !node_usable(node)) {
                restart_delay_ns(svc)
            } else {
                0
            }
        }
        None => 0,
    };
    if now >= held.meta.created_at + Duration::nanoseconds(delay) {
        let desired = run_state(svc);
        plan.update_task(held, |t| t.desired_state = desired);
    }
}
