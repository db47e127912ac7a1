//! What a proposal carries (a `Command` of `Change`s), what applying it returns, and the openraft
//! type configuration built from them.

use std::io::Cursor;

use serde::{Deserialize, Serialize};
use shoal_types::{ApiError, Object, ObjectKind};

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
}

/// A set of changes applied atomically: all of them or none.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Command {
    pub changes: Vec<Change>,
}

impl Command {
    pub fn new(changes: Vec<Change>) -> Self {
        Command { changes }
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
/// change in order, the object as stored (for deletes: the object as it was last).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Applied {
    pub index: u64,
    pub objects: Vec<Object>,
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
