//! Agents' task status reports, gathered over a short window and written in one proposal: with
//! many agents, one Raft round trip per report was the dispatcher's bottleneck.

use crate::manager::Manager;
use shoal_proto::dispatcher::TaskStatusUpdate;
use shoal_store::{Change, status_advances};
use shoal_types::{ApiError, Object, ObjectKind, TaskStatus};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// Status reports are gathered this long and written in one proposal.
const STATUS_BATCH_WAIT: Duration = Duration::from_millis(20);
/// At most this many reports go in one proposal (compact changes of a few hundred bytes: one
/// proposal carries what 1,000 agents report while the previous one commits).
const STATUS_BATCH_MAX: usize = 8192;

struct StatusJob {
    node_id: String,
    updates: Vec<(String, TaskStatus)>,
    reply: tokio::sync::oneshot::Sender<Result<(), ApiError>>,
}

/// Gathers the reports of every agent (see the module comment).
#[derive(Clone)]
pub struct StatusBatcher {
    manager: Arc<Manager>,
    tx: mpsc::Sender<StatusJob>,
}

impl StatusBatcher {
    pub fn spawn(manager: Arc<Manager>) -> StatusBatcher {
        let (tx, mut rx) = mpsc::channel::<StatusJob>(4096);
        let m = manager.clone();
        tokio::spawn(async move {
            while let Some(first) = rx.recv().await {
                tokio::time::sleep(STATUS_BATCH_WAIT).await;
                let mut jobs = vec![first];
                let mut count = jobs[0].updates.len();
                while count < STATUS_BATCH_MAX {
                    let Ok(job) = rx.try_recv() else { break };
                    count += job.updates.len();
                    jobs.push(job);
                }
                let result = propose_statuses(&m, &jobs).await;
                for job in jobs {
                    let _ = job.reply.send(result.clone());
                }
            }
        });
        StatusBatcher { manager, tx }
    }

    /// Apply an agent's status reports: only for tasks on that node (others refused), and
    /// only forward in state (task states never go back).
    pub async fn submit(
        &self,
        node_id: &str,
        updates: Vec<TaskStatusUpdate>,
    ) -> Result<(), ApiError> {
        let mut parsed = Vec::with_capacity(updates.len());
        let view = self.manager.view();
        for u in updates {
            let status: TaskStatus = serde_json::from_slice(&u.status_json)
                .map_err(|e| ApiError::invalid_argument(format!("bad task status: {e}")))?;
            if let Some(Object::Task(t)) = view.get(ObjectKind::Task, &u.task_id)
                && t.node_id != node_id
            {
                return Err(ApiError::permission_denied(format!(
                    "task {} is not assigned to node {node_id}",
                    u.task_id
                )));
            }
            parsed.push((u.task_id, status));
        }
        if parsed.is_empty() {
            return Ok(());
        }
        let (reply, done) = tokio::sync::oneshot::channel();
        let job = StatusJob {
            node_id: node_id.to_string(),
            updates: parsed,
            reply,
        };
        self.tx
            .send(job)
            .await
            .map_err(|_| ApiError::unavailable("the dispatcher is shutting down"))?;
        done.await
            .map_err(|_| ApiError::unavailable("the dispatcher is shutting down"))?
    }
}

/// One proposal for a batch of reports (the furthest state per task wins). Each report is a
/// compact `TaskStatus` change that the store applies only if it still moves the task on, so
/// a race with the orchestrators needs no retry.
async fn propose_statuses(manager: &Manager, jobs: &[StatusJob]) -> Result<(), ApiError> {
    let mut wanted: BTreeMap<&str, (&str, &TaskStatus)> = BTreeMap::new();
    for job in jobs {
        for (id, status) in &job.updates {
            let keep = wanted
                .get(id.as_str())
                .is_none_or(|(_, cur)| status.state >= cur.state);
            if keep {
                wanted.insert(id, (&job.node_id, status));
            }
        }
    }
    let view = manager.view();
    let changes: Vec<Change> = wanted
        .into_iter()
        .filter(|(id, (node_id, status))| {
            matches!(view.get(ObjectKind::Task, id), Some(Object::Task(t))
                if status_advances(t, node_id, status))
        })
        .map(|(id, (node_id, status))| Change::TaskStatus {
            task_id: id.to_string(),
            node_id: node_id.to_string(),
            status: status.clone(),
        })
        .collect();
    drop(view);
    if changes.is_empty() {
        return Ok(());
    }
    manager.propose(changes).await.map(|_| ())
}
