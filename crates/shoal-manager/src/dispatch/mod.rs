//! Task dispatch to agents: what a node is assigned, the assignment stream (a complete set, then
//! differences), and the agents' status reports.
//!
//! Secrets and configs travel only to nodes running a task that uses them, and a node stops
//! receiving them (and is told to drop them) once no such task remains.

mod hub;
mod status;

pub use hub::DispatchHub;
pub use status::StatusBatcher;

use crate::manager::Manager;
use crate::orchestrator::ObjectSource;
use shoal_proto::dispatcher::AssignmentsMessage;
use shoal_types::task::NetworkAttachment;
use shoal_types::{Config, Object, ObjectKind, Secret, Task, TaskState};
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

/// Whether the agent would learn nothing from `b` after `a`: the status is the agent's own
/// report and the meta is the store's bookkeeping, so echoing them back (every status report
/// of every task) doubled the dispatch work for nothing; the reference compares tasks the same
/// way.
fn same_for_agent(a: &Task, b: &Task) -> bool {
    // Destructured so that a new field must be placed on one side or the other.
    let Task {
        id,
        meta: _,
        annotations,
        spec,
        service_id,
        slot,
        node_id,
        status: _,
        desired_state,
        networks_attachments,
        generic_resources,
        job_iteration,
        service_annotations,
        spec_version,
        endpoint,
        network_attachment_spec,
    } = a;
    *id == b.id
        && *desired_state == b.desired_state
        && *node_id == b.node_id
        && *slot == b.slot
        && *service_id == b.service_id
        && *spec_version == b.spec_version
        && *job_iteration == b.job_iteration
        && *spec == b.spec
        && *annotations == b.annotations
        && *networks_attachments == b.networks_attachments
        && *generic_resources == b.generic_resources
        && *service_annotations == b.service_annotations
        && *endpoint == b.endpoint
        && *network_attachment_spec == b.network_attachment_spec
}

/// What changed in the store during one batch, as far as assignment streams care.
#[derive(Default)]
pub(crate) struct Touched {
    /// Tasks written in the batch, with the node they are on.
    tasks: BTreeMap<String, String>,
    secrets: BTreeSet<String>,
    configs: BTreeSet<String>,
    networks: bool,
}

impl Touched {
    pub(crate) fn record(&mut self, ev: &shoal_store::Event) {
        match ev.object.as_ref() {
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

/// Brings `sent` up to date with a batch of changes, as far as the batch touched this node,
/// and returns the messages that tell the agent: with many nodes and tasks, rescanning (or
/// copying) a node's whole set on every batch is what made dispatch slow. Empty when nothing of
/// this node changed.
fn apply_touched(
    view: &dyn ObjectSource,
    node_id: &str,
    sent: &mut NodeSet,
    touched: &Touched,
) -> Vec<AssignmentsMessage> {
    let mut changed = Vec::new();
    let mut removed = Vec::new();
    for (id, node) in &touched.tasks {
        if node != node_id && !sent.tasks.contains_key(id) {
            continue;
        }
        match view.object(ObjectKind::Task, id) {
            Some(Object::Task(t)) if t.node_id == node_id && is_live(t) => {
                match sent.tasks.get_mut(id) {
                    // The store stamps every write with a new version.
                    Some(known) if known.meta == t.meta => {}
                    // A status report: nothing to send, and only what changed is copied.
                    Some(known) if same_for_agent(known, t) => {
                        known.status.clone_from(&t.status);
                        known.meta.clone_from(&t.meta);
                    }
                    _ => {
                        sent.tasks.insert(id.clone(), t.clone());
                        changed.push(id.clone());
                    }
                }
            }
            _ => {
                if sent.tasks.remove(id).is_some() {
                    removed.push(id.clone());
                }
            }
        }
    }
    let deps_changed = touched
        .secrets
        .iter()
        .any(|id| sent.secrets.contains_key(id))
        || touched
            .configs
            .iter()
            .any(|id| sent.configs.contains_key(id));
    if changed.is_empty() && removed.is_empty() && !deps_changed && !touched.networks {
        return Vec::new();
    }
    let old = Dependencies::take(sent);
    fill_dependencies(view, sent);
    // The node's attachments change only with the networks.
    sent.node_attachments = if touched.networks {
        node_attachments(view, node_id)
    } else {
        old.node_attachments.clone()
    };
    let changed: Vec<&Task> = changed.iter().filter_map(|id| sent.tasks.get(id)).collect();
    build_diff(changed, removed, &old, sent)
}

/// A node set's secrets, configs and attachments, as last sent.
#[derive(Default)]
struct Dependencies {
    secrets: BTreeMap<String, Secret>,
    configs: BTreeMap<String, Config>,
    node_attachments: Vec<NetworkAttachment>,
}

impl Dependencies {
    fn take(set: &mut NodeSet) -> Dependencies {
        Dependencies {
            secrets: std::mem::take(&mut set.secrets),
            configs: std::mem::take(&mut set.configs),
            node_attachments: std::mem::take(&mut set.node_attachments),
        }
    }
}

/// The complete set of a node from the IDs of the tasks that may be on it.
fn node_set_of(view: &dyn ObjectSource, node_id: &str, ids: Vec<String>) -> NodeSet {
    let mut set = NodeSet::default();
    for id in ids {
        if let Some(Object::Task(t)) = view.object(ObjectKind::Task, &id)
            && t.node_id == node_id
            && is_live(t)
        {
            set.tasks.insert(id, t.clone());
        }
    }
    fill_dependencies(view, &mut set);
    set.node_attachments = node_attachments(view, node_id);
    set
}

fn node_attachments(view: &dyn ObjectSource, node_id: &str) -> Vec<NetworkAttachment> {
    crate::network::node_attachments(crate::network::ingress_network(view), node_id)
}

/// Fills the secrets and configs the set's running tasks use.
fn fill_dependencies(view: &dyn ObjectSource, set: &mut NodeSet) {
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
}

fn json<T: serde::Serialize>(v: &T) -> Vec<u8> {
    serde_json::to_vec(v).unwrap_or_default()
}

/// Tasks split into messages of at most `TASKS_PER_MESSAGE` each.
fn task_messages(tasks: &[&Task], complete: bool) -> Vec<AssignmentsMessage> {
    tasks
        .chunks(TASKS_PER_MESSAGE)
        .map(|chunk| AssignmentsMessage {
            complete,
            tasks_json: chunk.iter().map(|t| json(*t)).collect(),
            ..Default::default()
        })
        .collect()
}

/// The complete set, split into messages of at most `TASKS_PER_MESSAGE` tasks.
pub fn complete_messages(set: &NodeSet) -> Vec<AssignmentsMessage> {
    let tasks: Vec<&Task> = set.tasks.values().collect();
    let mut out = task_messages(&tasks, true);
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
        .filter(|t| !old.tasks.get(&t.id).is_some_and(|o| same_for_agent(o, t)))
        .collect();
    let removed: Vec<String> = old
        .tasks
        .keys()
        .filter(|id| !new.tasks.contains_key(*id))
        .cloned()
        .collect();
    let deps = Dependencies {
        secrets: old.secrets.clone(),
        configs: old.configs.clone(),
        node_attachments: old.node_attachments.clone(),
    };
    build_diff(changed, removed, &deps, new)
}

/// Messages for changed and removed tasks plus whatever differs between the dependencies last
/// sent and the new set's.
fn build_diff(
    changed: Vec<&Task>,
    removed: Vec<String>,
    old: &Dependencies,
    new: &NodeSet,
) -> Vec<AssignmentsMessage> {
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
    let mut out = task_messages(&changed, false);
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
    hub: &DispatchHub,
    node_id: String,
    tx: mpsc::Sender<Result<AssignmentsMessage, tonic::Status>>,
) {
    let inbox = hub.register(&node_id);
    let hub = hub.clone();
    tokio::spawn(async move {
        let mut sent = node_set_of(&manager.view(), &node_id, hub.tasks_on(&node_id));
        for m in complete_messages(&sent) {
            if tx.send(Ok(m)).await.is_err() {
                return;
            }
        }
        loop {
            tokio::select! {
                _ = inbox.changed() => {}
                _ = tx.closed() => return,
            }
            tokio::time::sleep(BATCH_WAIT).await;
            let touched = inbox.take();
            if !manager.is_leader() {
                let _ = tx
                    .send(Err(tonic::Status::unavailable(
                        "this manager is no longer the leader",
                    )))
                    .await;
                return;
            }
            let view = manager.view();
            let messages = apply_touched(&view, &node_id, &mut sent, &touched);
            drop(view);
            for m in messages {
                if tx.send(Ok(m)).await.is_err() {
                    return;
                }
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use shoal_types::TaskStatus;

    /// A node's complete set by a scan of every task (what the incremental path must match).
    fn node_set(view: &dyn ObjectSource, node_id: &str) -> NodeSet {
        let ids = view
            .objects(ObjectKind::Task)
            .map(|o| o.id().to_string())
            .collect();
        node_set_of(view, node_id, ids)
    }

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

    #[test]
    fn status_reports_are_not_echoed_but_desired_state_is() {
        let task = Task {
            id: "t1".into(),
            node_id: "n1".into(),
            status: TaskStatus::new(TaskState::Assigned, "assigned", chrono::Utc::now()),
            desired_state: TaskState::Running,
            ..Task::default()
        };
        let mut old = NodeSet::default();
        old.tasks.insert("t1".into(), task.clone());
        let mut new = old.clone();
        let t = new.tasks.get_mut("t1").unwrap();
        t.status = TaskStatus::new(TaskState::Running, "started", chrono::Utc::now());
        t.meta.version.index += 7;
        assert!(
            diff_messages(&old, &new).is_empty(),
            "the agent's own report is not sent back"
        );
        new.tasks.get_mut("t1").unwrap().desired_state = TaskState::Shutdown;
        let msgs = diff_messages(&old, &new);
        assert_eq!(msgs.len(), 1);
        assert_eq!(
            msgs[0].tasks_json.len(),
            1,
            "a desired-state change is sent"
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
            let kinds = [
                ObjectKind::Task,
                ObjectKind::Secret,
                ObjectKind::Config,
                ObjectKind::Network,
            ];
            for kind in kinds {
                for o in sim.mem.objects(kind) {
                    if before.object(kind, o.id()) != Some(o) {
                        touched.record(&shoal_store::Event {
                            kind: shoal_store::EventKind::Updated,
                            object: Arc::new(o.clone()),
                            index: 0,
                        });
                    }
                }
                for o in before.objects(kind) {
                    if sim.mem.object(kind, o.id()).is_none() {
                        touched.record(&shoal_store::Event {
                            kind: shoal_store::EventKind::Deleted,
                            object: Arc::new(o.clone()),
                            index: 0,
                        });
                    }
                }
            }
            let before_set = sent.clone();
            let messages = apply_touched(&sim.mem, "n1", &mut sent, &touched);
            if messages.is_empty() {
                skipped += 1;
                assert!(
                    sent.tasks.len() == before_set.tasks.len()
                        && sent.tasks.iter().all(|(id, t)| before_set
                            .tasks
                            .get(id)
                            .is_some_and(|b| same_for_agent(b, t))),
                    "step {step}: changed without telling"
                );
            } else {
                assert_eq!(
                    messages.iter().map(|m| m.tasks_json.len()).sum::<usize>(),
                    diff_messages(&before_set, &sent)
                        .iter()
                        .map(|m| m.tasks_json.len())
                        .sum::<usize>(),
                    "step {step}: the messages carry what changed"
                );
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
