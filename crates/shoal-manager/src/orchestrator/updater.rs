//! The rolling updater: replaces dirty slots `Parallelism` at a time (0 = all), `Delay` apart,
//! stop-first or start-first, watches the tasks it made for failures and pauses, continues or
//! rolls back per `FailureAction` / `MaxFailureRatio`. Progress lives in the service's
//! `UpdateStatus` and the tasks themselves, so a new leader resumes it.

use chrono::{DateTime, Duration, Utc};
use shoal_types::service::{FailureAction, UpdateConfig, UpdateOrder, UpdateState, UpdateStatus};
use shoal_types::{Service, Task, TaskState};

use super::{ClusterState, Plan, ended, is_dirty, new_task, run_state, wanted};

/// One slot (replicated) or node (global) the updater may replace.
pub(crate) struct UpdSlot<'a> {
    pub slot: u64,
    pub node_id: String,
    pub current: &'a Task,
    pub tasks: Vec<&'a Task>,
}

fn failed(t: &Task) -> bool {
    matches!(
        t.status.state,
        TaskState::Complete | TaskState::Failed | TaskState::Rejected
    )
}

pub(crate) fn run(
    st: &ClusterState,
    svc: &Service,
    slots: &[UpdSlot],
    now: DateTime<Utc>,
    plan: &mut Plan,
) {
    let status = plan.service(svc).update_status.clone().unwrap_or_default();
    let state = status.state;
    if matches!(
        state,
        Some(UpdateState::Paused) | Some(UpdateState::RollbackPaused)
    ) {
        return;
    }
    let rolling_back = state == Some(UpdateState::RollbackStarted);
    let cfg = if rolling_back {
        svc.spec.rollback_config.clone()
    } else {
        svc.spec.update_config.clone()
    }
    .unwrap_or_else(UpdateConfig::defaults);
    let started = status.started_at.unwrap_or(shoal_types::wire::zero_time());
    let node_of = |t: &Task| st.nodes.get(t.node_id.as_str()).copied();

    let dirty: Vec<&UpdSlot> = slots
        .iter()
        .filter(|s| is_dirty(svc, plan.task(s.current), node_of(s.current)))
        .collect();
    let in_progress = matches!(
        state,
        Some(UpdateState::Updating) | Some(UpdateState::RollbackStarted)
    );
    if dirty.is_empty() && !in_progress {
        return;
    }
    // Tasks this update made.
    let made: Vec<&Task> = slots
        .iter()
        .flat_map(|s| s.tasks.iter().copied())
        .filter(|t| t.spec_version == svc.spec_version && t.meta.created_at >= started)
        .collect();
    if in_progress
        && cfg.failure_action != FailureAction::Continue
        && let Some(first) = made.iter().find(|t| failed(t))
    {
        let failures = made.iter().filter(|t| failed(t)).count() as f32;
        let ratio = failures / (slots.len().max(1) as f32);
        if ratio > cfg.max_failure_ratio {
            on_failure(svc, &cfg, rolling_back, &first.id, now, plan);
            return;
        }
    }
    let in_flight = slots
        .iter()
        .filter(|s| {
            let cur = plan.task(s.current);
            let fresh = cur.spec_version == svc.spec_version && cur.meta.created_at >= started;
            let older_alive = s
                .tasks
                .iter()
                .any(|t| t.id != cur.id && wanted(plan.task(t)) && !ended(t));
            fresh && !ended(cur) && (cur.status.state < TaskState::Running || older_alive)
        })
        .count();
    let last_started = made
        .iter()
        .filter(|t| t.status.state >= TaskState::Running)
        .map(|t| t.status.timestamp)
        .max();

    if dirty.is_empty() {
        if in_flight == 0 {
            let since = last_started.unwrap_or(started).max(started);
            if now >= since + Duration::nanoseconds(cfg.effective_monitor()) {
                let (st_done, msg) = if rolling_back {
                    (UpdateState::RollbackCompleted, "rollback completed")
                } else {
                    (UpdateState::Completed, "update completed")
                };
                set_status(svc, plan, st_done, msg, now);
            }
        }
        return;
    }
    if !in_progress {
        // Dirty tasks without an update in progress (e.g. written by an older leader).
        plan.update_service(svc, |s| {
            s.update_status = Some(UpdateStatus {
                state: Some(UpdateState::Updating),
                started_at: Some(now),
                completed_at: None,
                message: "update in progress".into(),
            });
        });
        return;
    }
    if cfg.delay > 0 {
        if in_flight > 0 {
            return;
        }
        if let Some(last) = last_started
            && now < last + Duration::nanoseconds(cfg.delay)
        {
            return;
        }
    }
    let capacity = if cfg.parallelism == 0 {
        usize::MAX
    } else {
        (cfg.parallelism as usize).saturating_sub(in_flight)
    };
    for s in dirty.into_iter().take(capacity) {
        let cur = s.current;
        let desired = match cfg.order {
            UpdateOrder::StartFirst => run_state(svc),
            UpdateOrder::StopFirst => {
                let still_up = !ended(cur);
                for t in &s.tasks {
                    if wanted(plan.task(t)) {
                        plan.update_task(t, |t| t.desired_state = TaskState::Shutdown);
                    }
                }
                if still_up {
                    TaskState::Ready
                } else {
                    run_state(svc)
                }
            }
        };
        plan.create_task(new_task(svc, s.slot, &s.node_id, desired, now));
    }
}

fn set_status(svc: &Service, plan: &mut Plan, state: UpdateState, msg: &str, now: DateTime<Utc>) {
    plan.update_service(svc, |s| {
        let mut u = s.update_status.clone().unwrap_or_default();
        u.state = Some(state);
        u.message = msg.to_string();
        if matches!(
            state,
            UpdateState::Completed | UpdateState::RollbackCompleted
        ) {
            u.completed_at = Some(now);
        }
        s.update_status = Some(u);
    });
}

fn on_failure(
    svc: &Service,
    cfg: &UpdateConfig,
    rolling_back: bool,
    task_id: &str,
    now: DateTime<Utc>,
    plan: &mut Plan,
) {
    let can_roll_back = cfg.failure_action == FailureAction::Rollback
        && !rolling_back
        && svc.previous_spec.is_some();
    if !can_roll_back {
        let (state, what) = if rolling_back {
            (UpdateState::RollbackPaused, "rollback paused")
        } else {
            (UpdateState::Paused, "update paused")
        };
        let msg = format!("{what} due to failure or early termination of task {task_id}");
        set_status(svc, plan, state, &msg, now);
        return;
    }
    plan.update_service(svc, |s| {
        if let Some(prev) = s.previous_spec.take() {
            let cur = std::mem::replace(&mut s.spec, *prev);
            s.previous_spec = Some(Box::new(cur));
            let next = s.spec_version.map_or(1, |v| v.index + 1);
            s.spec_version = Some(shoal_types::Version { index: next });
        }
        s.update_status = Some(UpdateStatus {
            state: Some(UpdateState::RollbackStarted),
            started_at: Some(now),
            completed_at: None,
            message: format!(
                "update rolled back due to failure or early termination of task {task_id}"
            ),
        });
    });
}
