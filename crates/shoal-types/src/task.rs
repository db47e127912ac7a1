//! Task object, task states and the agent's state transition rules.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::meta::Meta;
use crate::wire;

/// A task's state. The numeric values (swarmkit's) order the states; a state never moves backwards.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TaskState {
    #[default]
    New = 0,
    Allocated = 32,
    Pending = 64,
    Assigned = 192,
    Accepted = 256,
    Preparing = 320,
    Ready = 384,
    Starting = 448,
    Running = 512,
    Complete = 576,
    Shutdown = 640,
    Failed = 704,
    Rejected = 768,
    Remove = 800,
    Orphaned = 832,
}

impl TaskState {
    pub fn value(self) -> u32 {
        self as u32
    }
}

impl PartialOrd for TaskState {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for TaskState {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.value().cmp(&other.value())
    }
}

/// The task spec (a service's `TaskTemplate`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct TaskSpec {
    #[serde(default)]
    pub force_update: u64,
}

/// What the agent observed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct TaskStatus {
    #[serde(default = "wire::zero_time", with = "wire::time")]
    pub timestamp: DateTime<Utc>,
    #[serde(default)]
    pub state: TaskState,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub err: String,
}

impl Default for TaskStatus {
    fn default() -> Self {
        TaskStatus {
            timestamp: wire::zero_time(),
            state: TaskState::New,
            message: String::new(),
            err: String::new(),
        }
    }
}

/// A task: one container run of a service in a slot (or on a node for global services).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Task {
    #[serde(rename = "ID")]
    pub id: String,
    #[serde(flatten)]
    pub meta: Meta,
    #[serde(default)]
    pub spec: TaskSpec,
    #[serde(default, rename = "ServiceID")]
    pub service_id: String,
    #[serde(default, skip_serializing_if = "wire::is_zero")]
    pub slot: u64,
    #[serde(default, rename = "NodeID")]
    pub node_id: String,
    #[serde(default)]
    pub status: TaskStatus,
    #[serde(default)]
    pub desired_state: TaskState,
}
