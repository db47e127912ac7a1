//! The task reaper: deletes tasks marked REMOVE once they stopped (or never reached a node),
//! and keeps at most `TaskHistoryRetentionLimit` tasks per slot (replicated) or node (global).

use std::collections::HashMap;

use shoal_types::{Task, TaskState};

use super::{ClusterState, Plan, ended, wanted};

pub(crate) fn reap(st: &ClusterState, plan: &mut Plan) {
    for t in &st.all_tasks {
        let cur = plan.task(t);
        if cur.desired_state >= TaskState::Remove && gone(st, cur) {
            plan.delete_task(t);
        }
    }
    let limit = st.history_limit();
    if limit < 0 {
        return;
    }
    let limit = limit as usize;
    for (svc_id, tasks) in &st.tasks_by_service {
        if !st.services.contains_key(svc_id) {
            continue;
        }
        let mut groups: HashMap<(u64, &str), Vec<&Task>> = HashMap::new();
        for t in tasks {
            if plan.is_deleted(&t.id) {
                continue;
            }
            let key = if t.slot > 0 {
                (t.slot, "")
            } else {
                (0, t.node_id.as_str())
            };
            groups.entry(key).or_default().push(t);
        }
        for mut g in groups.into_values() {
            if g.len() <= limit.max(1) {
                continue;
            }
            g.sort_by_key(|t| std::cmp::Reverse(t.meta.created_at));
            let mut kept = 0usize;
            for t in g {
                let cur = plan.task(t);
                let history = !wanted(cur) && gone(st, cur);
                if history && kept >= limit {
                    plan.delete_task(t);
                } else {
                    kept += 1;
                }
            }
        }
    }
}

/// Stopped, never placed on a node, or its node no longer exists.
fn gone(st: &ClusterState, t: &Task) -> bool {
    ended(t)
        || t.node_id.is_empty()
        || t.status.state < TaskState::Assigned
        || !st.nodes.contains_key(t.node_id.as_str())
}
