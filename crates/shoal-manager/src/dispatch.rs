//! Task dispatch to agents: what a node is assigned, the assignment stream (a complete set, then
//! differences), and the agents' status reports.
//!
//! Secrets and configs travel only to nodes running a task that uses them, and a node stops
//! receiving them (and is told to drop them) once no such task remains.

use crate::manager::Manager;
use crate::orchestrator::ObjectSource;
use shoal_proto::dispatcher::{AssignmentsMessage, TaskStatusUpdate};
use shoal_store::Change;
use shoal_types::task::NetworkAttachment;
use shoal_types::{ApiError, Config, Object, ObjectKind, Secret, Task, TaskState, TaskStatus};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// Tasks per message: keeps every message far below gRPC limits however big the set.
const TASKS_PER_MESSAGE: usize = 200;
/// Changes are gathered this long before an incremental message goes out.
const BATCH_WAIT: Duration = Duration::from_millis(50);

/// What one node should know: its live tasks, the secrets/configs they use, and the node's own
/// network attachments (its `ingress` address).
#[derive(Default, Clone, PartialEq)]
pub struct NodeSet {
    pub tasks: BTreeMap<String, Task>,
    pub secrets: BTreeMap<String, Secret>,
    pub configs: BTreeMap<String, Config>,
    pub node_attachments: Vec<NetworkAttachment>,
}

/// A task belongs in a node's set from ASSIGNED on, while it still needs the agent: not yet
/// finished, or finished but the manager wants it removed (the agent then deletes it).
fn is_live(t: &Task) -> bool {
    t.status.state >= TaskState::Assigned
        && (t.status.state < TaskState::Complete || t.desired_state < TaskState::Remove)
}

pub fn node_set(view: &dyn ObjectSource, node_id: &str) -> NodeSet {
    let mut set = NodeSet::default();
    for o in view.objects(ObjectKind::Task) {
        let Object::Task(t) = o else { continue };
        if t.node_id == node_id && is_live(t) {
            set.tasks.insert(t.id.clone(), t.clone());
        }
    }
    fill_dependencies(view, node_id, &mut set);
    set
}

/// What changed in the store during one batch, as far as assignment streams care.
#[derive(Default)]
struct Touched {
    /// Events were lost (the watch lagged): only a full recomputation is safe.
    lagged: bool,
    /// Tasks written in the batch, with the node they are on.
    tasks: BTreeMap<String, String>,
    secrets: BTreeSet<String>,
    configs: BTreeSet<String>,
    networks: bool,
}

impl Touched {
    fn record(&mut self, ev: &shoal_store::Event) {
        match &ev.object {
            Object::Task(t) => {
                self.tasks.insert(t.id.clone(), t.node_id.clone());
            }
            Object::Secret(s) => {
                self.secrets.insert(s.id.clone());
            }
            Object::Config(c) => {
                self.configs.insert(c.id.clone());
            }
            Object::Network(_) => self.networks = true,
            _ => {}
        }
    }
}

/// The node's set after a batch of changes, recomputed only as far as the batch touched it:
/// with many nodes and tasks, rescanning every task for every node on every batch is what
/// made dispatch quadratic. `None` when nothing of this node changed.
fn updated_node_set(
    view: &dyn ObjectSource,
    node_id: &str,
    sent: &NodeSet,
    touched: &Touched,
) -> Option<NodeSet> {
    if touched.lagged {
        return Some(node_set(view, node_id));
    }
    let mine: Vec<&String> = touched
        .tasks
        .iter()
        .filter(|(id, node)| *node == node_id || sent.tasks.contains_key(*id))
        .map(|(id, _)| id)
        .collect();
    let deps_changed = touched
        .secrets
        .iter()
        .any(|id| sent.secrets.contains_key(id))
        || touched
            .configs
            .iter()
            .any(|id| sent.configs.contains_key(id));
    if mine.is_empty() && !deps_changed && !touched.networks {
        return None;
    }
    let mut set = sent.clone();
    for id in mine {
        match view.object(ObjectKind::Task, id) {
            Some(Object::Task(t)) if t.node_id == node_id && is_live(t) => {
                set.tasks.insert(id.clone(), t.clone());
            }
            _ => {
                set.tasks.remove(id);
            }
        }
    }
    set.secrets.clear();
    set.configs.clear();
    fill_dependencies(view, node_id, &mut set);
    Some(set)
}

/// Fills the secrets and configs the set's running tasks use, and the node's attachments.
fn fill_dependencies(view: &dyn ObjectSource, node_id: &str, set: &mut NodeSet) {
    let mut secret_ids = BTreeSet::new();
    let mut config_ids = BTreeSet::new();
    for t in set.tasks.values() {
        if t.status.state <= TaskState::Running && t.desired_state <= TaskState::Running {
            secret_ids.extend(t.spec.secret_ids().map(str::to_string));
            config_ids.extend(t.spec.config_ids().map(str::to_string));
        }
    }
    for id in secret_ids {
        if let Some(Object::Secret(s)) = view.object(ObjectKind::Secret, &id) {
            set.secrets.insert(id, s.clone());
        }
    }
    for id in config_ids {
        if let Some(Object::Config(c)) = view.object(ObjectKind::Config, &id) {
            set.configs.insert(id, c.clone());
        }
    }
    set.node_attachments =
        crate::network::node_attachments(crate::network::ingress_network(view), node_id);
}

fn json<T: serde::Serialize>(v: &T) -> Vec<u8> {
    serde_json::to_vec(v).unwrap_or_default()
}

/// The complete set, split into messages of at most `TASKS_PER_MESSAGE` tasks.
pub fn complete_messages(set: &NodeSet) -> Vec<AssignmentsMessage> {
    let tasks: Vec<&Task> = set.tasks.values().collect();
    let mut out: Vec<AssignmentsMessage> = tasks
        .chunks(TASKS_PER_MESSAGE)
        .map(|chunk| AssignmentsMessage {
            complete: true,
            tasks_json: chunk.iter().map(|t| json(*t)).collect(),
            ..Default::default()
        })
        .collect();
    if out.is_empty() {
        out.push(AssignmentsMessage {
            complete: true,
            ..Default::default()
        });
    }
    let last = out.len() - 1;
    out[last].last_of_set = true;
    out[last].secrets_json = set.secrets.values().map(json).collect();
    out[last].configs_json = set.configs.values().map(json).collect();
    out[last].node_attachments_json = json(&set.node_attachments);
    out
}

/// The difference from `old` to `new`, split like the complete set; empty when nothing changed.
pub fn diff_messages(old: &NodeSet, new: &NodeSet) -> Vec<AssignmentsMessage> {
    let changed: Vec<&Task> = new
        .tasks
        .values()
        .filter(|t| old.tasks.get(&t.id) != Some(*t))
        .collect();
    let removed: Vec<String> = old
        .tasks
        .keys()
        .filter(|id| !new.tasks.contains_key(*id))
        .cloned()
        .collect();
    let secrets: Vec<Vec<u8>> = new
        .secrets
        .values()
        .filter(|s| old.secrets.get(&s.id) != Some(*s))
        .map(json)
        .collect();
    let configs: Vec<Vec<u8>> = new
        .configs
        .values()
        .filter(|c| old.configs.get(&c.id) != Some(*c))
        .map(json)
        .collect();
    let removed_secrets: Vec<String> = old
        .secrets
        .keys()
        .filter(|id| !new.secrets.contains_key(*id))
        .cloned()
        .collect();
    let removed_configs: Vec<String> = old
        .configs
        .keys()
        .filter(|id| !new.configs.contains_key(*id))
        .cloned()
        .collect();
    let attachments_changed = old.node_attachments != new.node_attachments;
    if changed.is_empty()
        && !attachments_changed
        && removed.is_empty()
        && secrets.is_empty()
        && configs.is_empty()
        && removed_secrets.is_empty()
        && removed_configs.is_empty()
    {
        return Vec::new();
    }
    let mut out: Vec<AssignmentsMessage> = changed
        .chunks(TASKS_PER_MESSAGE)
        .map(|chunk| AssignmentsMessage {
            tasks_json: chunk.iter().map(|t| json(*t)).collect(),
            ..Default::default()
        })
        .collect();
    // Secrets and configs go before (or with) the tasks that need them; removals last.
    let mut first = AssignmentsMessage {
        secrets_json: secrets,
        configs_json: configs,
        node_attachments_json: if attachments_changed {
            json(&new.node_attachments)
        } else {
            Vec::new()
        },
        ..Default::default()
    };
    if let Some(m) = out.first_mut() {
        first.tasks_json = std::mem::take(&mut m.tasks_json);
        out[0] = first;
    } else {
        out.push(first);
    }
    let last = out.len() - 1;
    out[last].removed_task_ids = removed;
    out[last].removed_secret_ids = removed_secrets;
    out[last].removed_config_ids = removed_configs;
    out
}

/// Feed `tx` with the node's assignments until the receiver goes away or this manager stops
/// leading (the agent then reconnects to the new leader and gets a complete set).
pub fn spawn_assignment_stream(
    manager: Arc<Manager>,
    node_id: String,
    tx: mpsc::Sender<Result<AssignmentsMessage, tonic::Status>>,
) {
    tokio::spawn(async move {
        let mut events = manager.store.watch();
        let mut sent = node_set(&manager.view(), &node_id);
        for m in complete_messages(&sent) {
            if tx.send(Ok(m)).await.is_err() {
                return;
            }
        }
        use tokio::sync::broadcast::error::{RecvError, TryRecvError};
        loop {
            let mut touched = Touched::default();
            tokio::select! {
                r = events.recv() => match r {
                    Ok(ev) => touched.record(&ev),
                    Err(RecvError::Lagged(_)) => touched.lagged = true,
                    Err(RecvError::Closed) => return,
                },
                _ = tx.closed() => return,
            }
            tokio::time::sleep(BATCH_WAIT).await;
            loop {
                match events.try_recv() {
                    Ok(ev) => touched.record(&ev),
                    Err(TryRecvError::Lagged(_)) => touched.lagged = true,
                    Err(_) => break,
                }
            }
            if !manager.is_leader() {
                let _ = tx
                    .send(Err(tonic::Status::unavailable(
                        "this manager is no longer the leader",
                    )))
                    .await;
                return;
            }
            let Some(now) = updated_node_set(&manager.view(), &node_id, &sent, &touched) else {
                continue;
            };
            for m in diff_messages(&sent, &now) {
                if tx.send(Ok(m)).await.is_err() {
                    return;
                }
            }
            sent = now;
        }
    });
}

/// Status reports are gathered this long and written in one proposal.
const STATUS_BATCH_WAIT: Duration = Duration::from_millis(20);
/// At most this many reports go in one proposal.
const STATUS_BATCH_MAX: usize = 4096;

struct StatusJob {
    node_id: String,
    updates: Vec<(String, TaskStatus)>,
    reply: tokio::sync::oneshot::Sender<Result<(), ApiError>>,
}

/// Agents' status reports, gathered over a short window and written in one proposal: with
/// many agents, one Raft round trip per report was the dispatcher's bottleneck.
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

/// One proposal for a batch of reports (the furthest state per task wins); retried on
/// version races with the orchestrators.
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
    let mut last_err = None;
    for _ in 0..5 {
        let view = manager.view();
        let mut changes = Vec::new();
        for (id, (node_id, status)) in &wanted {
            let Some(Object::Task(t)) = view.get(ObjectKind::Task, id) else {
                continue;
            };
            if t.node_id != *node_id
                || status.state < t.status.state
                || (status.state == t.status.state && *status == &t.status)
            {
                continue;
            }
            let mut updated = t.clone();
            updated.status = (*status).clone();
            changes.push(Change::Update {
                object: Object::Task(updated),
                expected_version: Some(t.meta.version.index),
            });
        }
        if changes.is_empty() {
            return Ok(());
        }
        match manager.propose(changes).await {
            Ok(_) => return Ok(()),
            Err(e) if e.kind == shoal_types::ErrorKind::OutOfSequence => last_err = Some(e),
            Err(e) => return Err(e),
        }
    }
    Err(last_err.unwrap_or_else(|| ApiError::internal("task status update kept conflicting")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attachment(addr: &str) -> NetworkAttachment {
        NetworkAttachment {
            addresses: vec![addr.into()],
            ..NetworkAttachment::default()
        }
    }

    #[test]
    fn node_attachments_on_complete_sets_and_changes_only() {
        let mut set = NodeSet::default();
        let msgs = complete_messages(&set);
        let last = msgs.last().unwrap();
        let sent: Vec<NetworkAttachment> =
            serde_json::from_slice(&last.node_attachments_json).unwrap();
        assert!(
            sent.is_empty(),
            "an empty list still travels on a complete set"
        );

        let old = set.clone();
        set.node_attachments = vec![attachment("10.0.0.3/24")];
        let msgs = diff_messages(&old, &set);
        assert_eq!(msgs.len(), 1);
        let sent: Vec<NetworkAttachment> =
            serde_json::from_slice(&msgs[0].node_attachments_json).unwrap();
        assert_eq!(sent, set.node_attachments);
        assert!(
            diff_messages(&set, &set).is_empty(),
            "unchanged: nothing sent"
        );

        let mut with_task = set.clone();
        with_task.tasks.insert("t".into(), Task::default());
        let msgs = diff_messages(&set, &with_task);
        assert!(
            msgs[0].node_attachments_json.is_empty(),
            "unchanged: left out"
        );
    }

    /// The per-batch update gives the same set as a full rescan, through scheduling, status
    /// changes, a service gone and an unrelated node's churn, and skips batches not about
    /// this node.
    #[test]
    fn incremental_node_set_matches_full_rescan() {
        use crate::orchestrator::testutil::{Sim, spec};
        let mut sim = Sim::new();
        sim.add_node("n1", &[]);
        sim.add_node("n2", &[]);
        let mut sent = node_set(&sim.mem, "n1");
        let svc = sim.create(spec("web", "img", 4));
        let mut skipped = 0;
        for step in 0..12 {
            let before = sim.mem.clone();
            match step {
                6 => sim.update(&svc, |s| {
                    s.mode.replicated.as_mut().unwrap().replicas = Some(1)
                }),
                9 => {
                    sim.create(spec("other", "img", 2));
                }
                _ => sim.step(),
            }
            let mut touched = Touched::default();
            for kind in [ObjectKind::Task, ObjectKind::Secret, ObjectKind::Config] {
                for o in sim.mem.objects(kind) {
                    if before.object(kind, o.id()) != Some(o) {
                        touched.record(&shoal_store::Event {
                            kind: shoal_store::EventKind::Updated,
                            object: o.clone(),
                            index: 0,
                        });
                    }
                }
                for o in before.objects(kind) {
                    if sim.mem.object(kind, o.id()).is_none() {
                        touched.record(&shoal_store::Event {
                            kind: shoal_store::EventKind::Deleted,
                            object: o.clone(),
                            index: 0,
                        });
                    }
                }
            }
            match updated_node_set(&sim.mem, "n1", &sent, &touched) {
                Some(now) => sent = now,
                None => skipped += 1,
            }
            let full = node_set(&sim.mem, "n1");
            assert!(
                sent == full,
                "step {step}: incremental set differs from a rescan"
            );
        }
        assert!(!sent.tasks.is_empty(), "n1 got tasks");
        assert!(skipped > 0, "batches not about n1 were skipped");
    }
}
