//! What a proposal carries (a `Command` of `Change`s), what applying it returns, and the openraft
//! type configuration built from them.

use std::io::Cursor;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use shoal_types::{ApiError, Object, ObjectKind, Task, TaskStatus};

/// One change to the store. Versions are optimistic-concurrency guards: `Some(v)` must equal the
/// object's current version (the log index of its last write).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Change {
    Create(Object),
    Update {
        object: Object,
        expected_version: Option<u64>,
    },
    Delete {
        kind: ObjectKind,
        id: String,
        expected_version: Option<u64>,
    },
    /// An agent's report on one of its tasks: a few hundred bytes in the log instead of the
    /// whole task. Applied only while the task is still on `node_id` and only forward in state
    /// (see `status_advances`); otherwise it changes nothing, and the rest of the command
    /// still applies, so it needs no version guard.
    TaskStatus {
        task_id: String,
        node_id: String,
        status: TaskStatus,
    },
}

/// Whether an agent's report on `node_id` moves the task on: task states never go back, and a
/// report from a node the task has left is stale.
pub fn status_advances(task: &Task, node_id: &str, status: &TaskStatus) -> bool {
    task.node_id == node_id
        && (status.state > task.status.state
            || (status.state == task.status.state && *status != task.status))
}

/// The task as a `Change::TaskStatus` written at log `index` leaves it, or None when the report
/// does not move it on (the store and the orchestrators' in-memory model apply it alike).
pub fn task_with_status(
    task: &Task,
    node_id: &str,
    status: &TaskStatus,
    index: u64,
) -> Option<Task> {
    if !status_advances(task, node_id, status) {
        return None;
    }
    let mut updated = task.clone();
    updated.status = status.clone();
    updated.meta.version.index = index;
    Some(updated)
}

/// A set of changes applied atomically: all of them or none. Shared, because the log keeps
/// recent entries in memory for the state machine and the followers (a clone is a reference).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Command {
    pub changes: Arc<Vec<Change>>,
}

impl Command {
    pub fn new(changes: Vec<Change>) -> Self {
        Command {
            changes: Arc::new(changes),
        }
    }

    pub fn create(object: Object) -> Self {
        Command::new(vec![Change::Create(object)])
    }

    pub fn update(object: Object, expected_version: Option<u64>) -> Self {
        Command::new(vec![Change::Update {
            object,
            expected_version,
        }])
    }

    pub fn delete(kind: ObjectKind, id: impl Into<String>, expected_version: Option<u64>) -> Self {
        Command::new(vec![Change::Delete {
            kind,
            id: id.into(),
            expected_version,
        }])
    }
}

/// A command that was applied: its log index (the version of everything it wrote) and, per
/// change in order, the object as stored (for deletes: the object as it was last; a
/// `TaskStatus` change that did not apply has none).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Applied {
    pub index: u64,
    /// Shared with the tables (serialized as plain objects when forwarded).
    pub objects: Vec<Arc<Object>>,
}

/// The state machine's answer to one log entry. A refused command is still a committed entry;
/// it just changed nothing.
pub type ApplyResult = Result<Applied, ApiError>;

openraft::declare_raft_types!(
    /// openraft types of the Shoal cluster store.
    pub TypeConfig:
        D = Command,
        R = ApplyResult,
        NodeId = u64,
        Node = openraft::BasicNode,
        Entry = openraft::Entry<TypeConfig>,
        SnapshotData = Cursor<Vec<u8>>,
        AsyncRuntime = openraft::TokioRuntime,
);

pub type NodeId = u64;
pub type Raft = openraft::Raft<TypeConfig>;
pub type LogId = openraft::LogId<NodeId>;
pub type Vote = openraft::Vote<NodeId>;
pub type Entry = openraft::Entry<TypeConfig>;
pub type StoredMembership = openraft::StoredMembership<NodeId, openraft::BasicNode>;
pub type SnapshotMeta = openraft::SnapshotMeta<NodeId, openraft::BasicNode>;
pub type StorageError = openraft::StorageError<NodeId>;
