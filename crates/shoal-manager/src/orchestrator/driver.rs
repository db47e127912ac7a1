//! Runs the reconcilers on the leader: wakes on store events (debounced) and on a timer (restart
//! delays, update delays and monitor windows are time-based), computes one pass from a fresh
//! view and proposes it in bounded batches. A batch refused because something changed under it
//! (a version conflict) is split and retried so one stale task does not hold back the rest; what
//! is still refused is recomputed on the next pass.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use shoal_store::Change;
use shoal_types::ErrorKind;
use tokio::sync::{broadcast, watch};
use tokio::task::JoinHandle;

use crate::manager::Manager;
use crate::orchestrator::ObjectSource;
use shoal_types::service::UpdateState;
use shoal_types::{Object, ObjectKind, TaskState};

/// At most this many changes per Raft command.
pub const MAX_BATCH: usize = 500;
/// Batches proposed at once.
const BATCHES_IN_FLIGHT: usize = 8;
const DEBOUNCE: Duration = Duration::from_millis(30);
const MAX_LATENCY: Duration = Duration::from_millis(500);
const TICK: Duration = Duration::from_millis(500);
const MAX_TICK: Duration = Duration::from_secs(5);
/// Passes in a row without waiting when a pass wrote something (work often comes in stages:
/// create, then schedule).
const MAX_FOLLOW_UPS: usize = 8;
/// The reaper runs at most this often.
const REAP_EVERY: Duration = Duration::from_secs(1);

pub struct Orchestration;

impl Orchestration {
    /// Starts the loop; it does work only while `manager.is_leader()`, and ends when `stop`
    /// turns true.
    pub fn spawn(manager: Arc<Manager>, mut stop: watch::Receiver<bool>) -> JoinHandle<()> {
        tokio::spawn(async move {
            let mut events = manager.store.watch();
            let mut was_leader = false;
            // Timer wake-ups back off on big clusters so idle passes stay a small share of CPU.
            let mut tick = TICK;
            // Event-driven passes keep a gap as long as the last pass took, so on a big cluster
            // a stream of status reports cannot keep a core busy with passes that find nothing.
            let mut last_pass = (tokio::time::Instant::now(), Duration::ZERO);
            let mut last_reap = tokio::time::Instant::now() - REAP_EVERY;
            loop {
                tokio::select! {
                    _ = stop.changed() => {}
                    _ = tokio::time::sleep(tick) => {}
                    r = next_relevant(&manager, &mut events) => {
                        if !matches!(r, Err(broadcast::error::RecvError::Closed)) {
                            debounce(&mut events).await;
                        }
                    }
                }
                if *stop.borrow() {
                    break;
                }
                let (ended, took) = last_pass;
                tokio::time::sleep_until(ended + took).await;
                let leader = manager.is_leader();
                if leader && !was_leader {
                    // Everything the reconcilers need is in the store, so the first pass
                    // finishes work the previous leader left half done.
                    tracing::info!(
                        "orchestration: leading, checking tasks left by the last leader"
                    );
                }
                was_leader = leader;
                if !leader {
                    continue;
                }
                for _ in 0..MAX_FOLLOW_UPS {
                    let view = manager.view();
                    let started = tokio::time::Instant::now();
                    let reap = started >= last_reap + REAP_EVERY;
                    if reap {
                        last_reap = started;
                    }
                    // A pass over a large store is CPU work: keep it off the async workers.
                    let Ok(changes) = tokio::task::spawn_blocking(move || {
                        crate::orchestrator::pass_with(&view, Utc::now(), reap)
                    })
                    .await
                    else {
                        tracing::warn!("orchestration: a reconcile pass panicked");
                        break;
                    };
                    last_pass = (tokio::time::Instant::now(), started.elapsed());
                    tick = TICK.max(started.elapsed() * 4).min(MAX_TICK);
                    if changes.is_empty() {
                        break;
                    }
                    let wrote = propose_batches(&manager, changes).await;
                    if !wrote || *stop.borrow() || !manager.is_leader() {
                        break;
                    }
                    // Catch up on the events our own writes caused.
                    while events.try_recv().is_ok() {}
                }
            }
        })
    }
}

/// Waits for an event a pass may have to act on. An agent's report that its task is on its way
/// to running (or runs) needs nothing from the reconcilers unless the task's service is being
/// updated (the updater waits for new tasks to run); with 100,000 tasks starting, passes
/// triggered by such reports took a core. Whatever is skipped is still seen by the next timer
/// pass.
async fn next_relevant(
    manager: &Manager,
    events: &mut broadcast::Receiver<shoal_store::Event>,
) -> Result<(), broadcast::error::RecvError> {
    loop {
        let ev = match events.recv().await {
            Ok(ev) => ev,
            // Lost events may have been anything.
            Err(broadcast::error::RecvError::Lagged(_)) => return Ok(()),
            Err(e) => return Err(e),
        };
        if may_need_a_pass(&ev, || manager.view()) {
            return Ok(());
        }
    }
}

/// `view` is taken only for a task's report, to look at its service.
fn may_need_a_pass<V: ObjectSource>(ev: &shoal_store::Event, view: impl FnOnce() -> V) -> bool {
    let Object::Task(t) = ev.object.as_ref() else {
        return true;
    };
    let progressing = ev.kind == shoal_store::EventKind::Updated
        && !t.node_id.is_empty()
        && t.desired_state == TaskState::Running
        && t.status.state >= TaskState::Assigned
        && t.status.state <= TaskState::Running;
    if !progressing {
        return true;
    }
    match view().object(ObjectKind::Service, &t.service_id) {
        Some(Object::Service(s)) => s.update_status.as_ref().is_some_and(|u| {
            matches!(
                u.state,
                Some(UpdateState::Updating) | Some(UpdateState::RollbackStarted)
            )
        }),
        _ => true,
    }
}

async fn debounce(events: &mut broadcast::Receiver<shoal_store::Event>) {
    let deadline = tokio::time::Instant::now() + MAX_LATENCY;
    loop {
        let gap = tokio::time::sleep(DEBOUNCE);
        tokio::select! {
            _ = tokio::time::sleep_until(deadline) => return,
            _ = gap => return,
            r = events.recv() => {
                if matches!(r, Err(broadcast::error::RecvError::Closed)) {
                    return;
                }
            }
        }
    }
}

/// `changes` in order, in batches of at most `MAX_BATCH`. Each change moves once: splitting the
/// tail off a big vector per batch copied it again every time (quadratic: 100,000 tasks took
/// a minute and 17 GiB).
fn into_batches(changes: Vec<Change>) -> VecDeque<Vec<Change>> {
    let mut queue = VecDeque::new();
    let mut changes = changes.into_iter();
    loop {
        let batch: Vec<Change> = changes.by_ref().take(MAX_BATCH).collect();
        if batch.is_empty() {
            return queue;
        }
        queue.push_back(batch);
    }
}

/// Proposes `changes` in batches, several in flight at once (openraft appends and flushes
/// whatever is queued together, so a pass of thousands of tasks is not one disk flush per
/// batch); returns whether anything was written.
pub async fn propose_batches(manager: &Manager, changes: Vec<Change>) -> bool {
    let mut queue = into_batches(changes);
    let mut in_flight = FuturesUnordered::new();
    let mut wrote = false;
    let mut unavailable = false;
    loop {
        while !unavailable && in_flight.len() < BATCHES_IN_FLIGHT {
            let Some(batch) = queue.pop_front() else {
                break;
            };
            in_flight.push(async move {
                let result = manager.propose(batch.clone()).await;
                (batch, result)
            });
        }
        let Some((mut batch, result)) = in_flight.next().await else {
            return wrote;
        };
        match result {
            Ok(_) => wrote = true,
            Err(e) if matches!(e.kind, ErrorKind::Unavailable | ErrorKind::Internal) => {
                // Let what is in flight finish; the next pass recomputes the rest.
                tracing::debug!(
                    "orchestration: proposal failed, retrying later: {}",
                    e.message
                );
                unavailable = true;
            }
            Err(e) => {
                if batch.len() > 1 {
                    let second = batch.split_off(batch.len() / 2);
                    queue.push_front(second);
                    queue.push_front(batch);
                } else {
                    tracing::debug!("orchestration: change refused: {}", e.message);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shoal_types::ObjectKind;

    #[test]
    fn batches_keep_order_and_bound_size() {
        let changes: Vec<Change> = (0..MAX_BATCH * 2 + 3)
            .map(|i| Change::Delete {
                kind: ObjectKind::Task,
                id: format!("t{i}"),
                expected_version: None,
            })
            .collect();
        let batches = into_batches(changes.clone());
        assert_eq!(
            batches.iter().map(Vec::len).collect::<Vec<_>>(),
            vec![MAX_BATCH, MAX_BATCH, 3]
        );
        let flat: Vec<Change> = batches.into_iter().flatten().collect();
        assert_eq!(flat, changes);
        assert!(into_batches(Vec::new()).is_empty());
    }

    #[test]
    fn reports_of_tasks_starting_need_no_pass_unless_their_service_updates() {
        use crate::orchestrator::testutil::{Sim, spec};
        use shoal_store::{Event, EventKind};
        use shoal_types::{TaskStatus, service::UpdateStatus};
        let mut sim = Sim::new();
        sim.add_node("n1", &[]);
        let svc = sim.create(spec("web", "img", 2));
        sim.step();
        let task = sim.tasks(&svc).remove(0);
        assert_eq!(task.status.state, TaskState::Assigned);
        let event = |t: &shoal_types::Task, state| {
            let mut t = t.clone();
            t.status = TaskStatus::new(state, "", sim.now);
            Event {
                kind: EventKind::Updated,
                object: std::sync::Arc::new(Object::Task(t)),
                index: 9,
            }
        };
        for state in [TaskState::Preparing, TaskState::Running] {
            assert!(
                !may_need_a_pass(&event(&task, state), || sim.mem.clone()),
                "{state:?}"
            );
        }
        for state in [TaskState::Failed, TaskState::Complete, TaskState::Rejected] {
            assert!(
                may_need_a_pass(&event(&task, state), || sim.mem.clone()),
                "{state:?}"
            );
        }
        let node = Event {
            kind: EventKind::Updated,
            object: std::sync::Arc::new(Object::Node(sim.node("n1"))),
            index: 9,
        };
        assert!(may_need_a_pass(&node, || sim.mem.clone()));

        let mut updating = sim.service(&svc);
        updating.update_status = Some(UpdateStatus {
            state: Some(UpdateState::Updating),
            ..UpdateStatus::default()
        });
        sim.mem.put(Object::Service(updating));
        assert!(may_need_a_pass(&event(&task, TaskState::Running), || sim
            .mem
            .clone()));
    }
}
