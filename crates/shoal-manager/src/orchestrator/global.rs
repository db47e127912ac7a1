//! Global services and global jobs: one task per eligible node (ready or unknown, not drained,
//! placement satisfied), created with the node preset. Tasks on nodes that went down, were
//! drained or removed, or no longer satisfy the placement are shut down.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use shoal_types::service::ModeKind;
use shoal_types::{NodeAvailability, NodeState, Service, Task, TaskState};

use super::replicated::shut_older_once_running;
use super::restart::{self, Verdict};
use super::updater::{self, UpdSlot};
use super::{ClusterState, Plan, by_age, ended, new_task, node_fits_placement, run_state, wanted};

pub(crate) fn reconcile_service(
    st: &ClusterState,
    svc: &Service,
    now: DateTime<Utc>,
    plan: &mut Plan,
) {
    let is_job = svc.mode_kind() == Some(ModeKind::GlobalJob);
    let iteration = svc.job_status.as_ref().map(|j| j.job_iteration);
    let mut by_node: BTreeMap<&str, Vec<&Task>> = BTreeMap::new();
    for t in st.tasks_of(&svc.id) {
        if !t.node_id.is_empty() {
            by_node.entry(t.node_id.as_str()).or_default().push(t);
        }
    }
    let mut upd = Vec::new();
    let mut replaced = false;
    for (node_id, node) in &st.nodes {
        let eligible = node.status.state != NodeState::Down
            && node.spec.availability != NodeAvailability::Drain
            && node_fits_placement(svc, node);
        let tasks = by_age(by_node.remove(node_id).unwrap_or_default());
        if !eligible {
            shut_all(&tasks, plan);
            continue;
        }
        let tasks: Vec<&Task> = if is_job {
            for t in &tasks {
                if t.job_iteration != iteration && wanted(plan.task(t)) && !ended(t) {
                    plan.update_task(t, |t| t.desired_state = TaskState::Shutdown);
                }
            }
            let cur: Vec<&Task> = tasks
                .into_iter()
                .filter(|t| t.job_iteration == iteration)
                .collect();
            if cur.iter().any(|t| t.status.state == TaskState::Complete) {
                continue;
            }
            cur
        } else {
            tasks
        };
        let Some(cur) = tasks.iter().rev().find(|t| wanted(plan.task(t))).copied() else {
            // Paused nodes keep what they run but get nothing new.
            if node.spec.availability == NodeAvailability::Active {
                plan.create_task(new_task(svc, 0, node_id, run_state(svc), now));
            }
            continue;
        };
        match restart::evaluate(st, svc, plan.task(cur), &tasks, now) {
            Verdict::Replace => {
                restart::replace(st, svc, cur, 0, node_id, now, plan);
                replaced = true;
                continue;
            }
            Verdict::Dead | Verdict::Keep => {}
        }
        restart::release_held(st, svc, cur, &tasks, now, plan);
        shut_older_once_running(cur, &tasks, plan);
        if !is_job {
            upd.push(UpdSlot {
                slot: 0,
                node_id: node_id.to_string(),
                current: cur,
                tasks: tasks.clone(),
            });
        }
    }
    // Whatever is left sits on nodes that no longer exist.
    for tasks in by_node.values() {
        shut_all(tasks, plan);
    }
    // As for replicated services: the updater waits for a pass that sees the replacement.
    if !is_job && !replaced {
        updater::run(st, svc, &upd, now, plan);
    }
}

fn shut_all(tasks: &[&Task], plan: &mut Plan) {
    for t in tasks {
        if wanted(plan.task(t)) {
            plan.update_task(t, |t| t.desired_state = TaskState::Shutdown);
        }
    }
}
