//! Task object, task states and the agent's state transition rules.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::error::ApiError;
use crate::meta::{Annotations, Meta, Version};
use crate::network::Network;
use crate::node::GenericResource;
use crate::service::{Endpoint, PortConfig};
use crate::wire;

pub use crate::task_spec::TaskSpec;

/// A task's state. The numeric values (swarmkit's) order the states; a state never moves backwards.
/// `Allocated` exists only in the Docker API vocabulary; it sorts between `New` and `Pending`.
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
    pub const ALL: [TaskState; 15] = [
        TaskState::New,
        TaskState::Allocated,
        TaskState::Pending,
        TaskState::Assigned,
        TaskState::Accepted,
        TaskState::Preparing,
        TaskState::Ready,
        TaskState::Starting,
        TaskState::Running,
        TaskState::Complete,
        TaskState::Shutdown,
        TaskState::Failed,
        TaskState::Rejected,
        TaskState::Remove,
        TaskState::Orphaned,
    ];

    pub fn value(self) -> u32 {
        self as u32
    }

    pub fn from_value(v: u32) -> Option<TaskState> {
        TaskState::ALL.into_iter().find(|s| s.value() == v)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            TaskState::New => "new",
            TaskState::Allocated => "allocated",
            TaskState::Pending => "pending",
            TaskState::Assigned => "assigned",
            TaskState::Accepted => "accepted",
            TaskState::Preparing => "preparing",
            TaskState::Ready => "ready",
            TaskState::Starting => "starting",
            TaskState::Running => "running",
            TaskState::Complete => "complete",
            TaskState::Shutdown => "shutdown",
            TaskState::Failed => "failed",
            TaskState::Rejected => "rejected",
            TaskState::Remove => "remove",
            TaskState::Orphaned => "orphaned",
        }
    }

    /// Past RUNNING: the task will never run (again).
    pub fn is_terminal(self) -> bool {
        self > TaskState::Running
    }

    /// As a desired state: the task should (still) be running or prepared.
    pub fn is_runnable_desired(self) -> bool {
        self <= TaskState::Running
    }

    /// The state a fatal error moves a task to: REJECTED before STARTING, FAILED after.
    pub fn fatal_state(self) -> TaskState {
        if self < TaskState::Starting {
            TaskState::Rejected
        } else {
            TaskState::Failed
        }
    }

    /// States only move forward; writing the same state again is allowed (a message update).
    pub fn can_move_to(self, next: TaskState) -> bool {
        next >= self
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

impl std::fmt::Display for TaskState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for TaskState {
    type Err = ApiError;
    fn from_str(s: &str) -> Result<Self, ApiError> {
        TaskState::ALL
            .into_iter()
            .find(|st| st.as_str() == s)
            .ok_or_else(|| ApiError::invalid_argument(format!("invalid task state {s:?}")))
    }
}

/// What the agent should do next for a task, given its observed and desired states
/// (swarmkit's `exec.Do`). The step names the call to make and the state it leads to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AgentStep {
    /// Nothing to do now (terminal, or held at the desired state).
    Wait,
    /// Record ACCEPTED.
    Accept,
    /// Record PREPARING, then call prepare.
    MarkPreparing,
    /// Call prepare (pull, create); success → READY.
    Prepare,
    /// Record STARTING, then call start.
    MarkStarting,
    /// Call start; success → RUNNING.
    Start,
    /// Wait for the container to exit: exit 0 → COMPLETE, else FAILED.
    WaitExit,
    /// Stop the container; success → SHUTDOWN.
    Shutdown,
}

impl AgentStep {
    /// The state this step records on success (None for `Wait`; `WaitExit` lands on COMPLETE when the exit code is 0).
    pub fn success_state(self) -> Option<TaskState> {
        Some(match self {
            AgentStep::Wait => return None,
            AgentStep::Accept => TaskState::Accepted,
            AgentStep::MarkPreparing => TaskState::Preparing,
            AgentStep::Prepare => TaskState::Ready,
            AgentStep::MarkStarting => TaskState::Starting,
            AgentStep::Start => TaskState::Running,
            AgentStep::WaitExit => TaskState::Complete,
            AgentStep::Shutdown => TaskState::Shutdown,
        })
    }
}

/// The agent transition rule. Pause states (up to ACCEPTED, and READY) advance only while
/// observed < desired; PREPARING, STARTING and RUNNING proceed on their own.
pub fn next_step(observed: TaskState, desired: TaskState) -> AgentStep {
    if desired >= TaskState::Shutdown {
        return if observed >= TaskState::Complete {
            AgentStep::Wait
        } else {
            AgentStep::Shutdown
        };
    }
    if observed > desired {
        return AgentStep::Wait;
    }
    match observed {
        TaskState::New | TaskState::Allocated | TaskState::Pending | TaskState::Assigned
            if observed < desired =>
        {
            AgentStep::Accept
        }
        TaskState::Accepted if observed < desired => AgentStep::MarkPreparing,
        TaskState::Preparing => AgentStep::Prepare,
        TaskState::Ready if observed < desired => AgentStep::MarkStarting,
        TaskState::Starting => AgentStep::Start,
        TaskState::Running => AgentStep::WaitExit,
        _ => AgentStep::Wait,
    }
}

/// The state after a container exits with `exit_code` while the task was running.
pub fn exit_state(exit_code: i64) -> TaskState {
    if exit_code == 0 {
        TaskState::Complete
    } else {
        TaskState::Failed
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ContainerStatus {
    #[serde(default, rename = "ContainerID")]
    pub container_id: String,
    #[serde(default, rename = "PID")]
    pub pid: i64,
    #[serde(default)]
    pub exit_code: i64,
}

/// Host-mode ports actually published for the task.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct PortStatus {
    #[serde(
        default,
        deserialize_with = "wire::nullable",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub ports: Vec<PortConfig>,
}

/// What the agent observed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct TaskStatus {
    #[serde(default = "wire::zero_time", with = "wire::time")]
    pub timestamp: DateTime<Utc>,
    #[serde(default, deserialize_with = "wire::enum_or_default")]
    pub state: TaskState,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub err: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container_status: Option<ContainerStatus>,
    #[serde(default)]
    pub port_status: PortStatus,
}

impl Default for TaskStatus {
    fn default() -> Self {
        TaskStatus {
            timestamp: wire::zero_time(),
            state: TaskState::New,
            message: String::new(),
            err: String::new(),
            container_status: None,
            port_status: PortStatus::default(),
        }
    }
}

impl TaskStatus {
    pub fn new(state: TaskState, message: impl Into<String>, now: DateTime<Utc>) -> Self {
        TaskStatus {
            timestamp: now,
            state,
            message: message.into(),
            ..TaskStatus::default()
        }
    }
}

/// A task's attachment to a network with its addresses (CIDR form).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct NetworkAttachment {
    #[serde(default)]
    pub network: Network,
    #[serde(default, deserialize_with = "wire::nullable")]
    pub addresses: Vec<String>,
    /// Internal: the aliases this task answers to in DNS on that network.
    #[serde(
        default,
        deserialize_with = "wire::nullable",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub aliases: Vec<String>,
}

/// A task: one container run of a service in a slot (or on a node for global services).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Task {
    #[serde(rename = "ID")]
    pub id: String,
    #[serde(flatten)]
    pub meta: Meta,
    /// Task annotations (Docker shows `"Labels":{}`; the name is `<service>.<slot>.<id>`).
    #[serde(flatten)]
    pub annotations: Annotations,
    #[serde(default)]
    pub spec: TaskSpec,
    #[serde(
        default,
        rename = "ServiceID",
        skip_serializing_if = "String::is_empty"
    )]
    pub service_id: String,
    /// 0 for global tasks (omitted).
    #[serde(default, skip_serializing_if = "wire::is_zero")]
    pub slot: u64,
    /// "" until the scheduler assigns it.
    #[serde(default, rename = "NodeID", skip_serializing_if = "String::is_empty")]
    pub node_id: String,
    #[serde(default)]
    pub status: TaskStatus,
    #[serde(default, deserialize_with = "wire::enum_or_default")]
    pub desired_state: TaskState,
    #[serde(
        default,
        deserialize_with = "wire::nullable",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub networks_attachments: Vec<NetworkAttachment>,
    #[serde(
        default,
        deserialize_with = "wire::nullable",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub generic_resources: Vec<GenericResource>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_iteration: Option<Version>,
    /// Internal: the service's annotations when the task was made (the task `label` filter uses them).
    #[serde(default)]
    pub service_annotations: Annotations,
    /// Internal: the service's spec version the task was made from (`_up-to-date` filter).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spec_version: Option<Version>,
    /// Internal: the service endpoint (VIPs, ports) at allocation time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<Endpoint>,
    /// Set on network attachment tasks (`Spec.Runtime` "attachment"): the standalone container
    /// the address is for. Docker keeps it in `Spec.NetworkAttachmentSpec`; here it sits on the
    /// task so `TaskSpec` (built field by field elsewhere) keeps its shape.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network_attachment_spec: Option<NetworkAttachmentSpec>,
}

/// The standalone container a network attachment task gives an address to.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct NetworkAttachmentSpec {
    /// Empty until the container exists (the node asks for the address before it creates the
    /// container; the agent then reports the ID in the task's `ContainerStatus`).
    #[serde(
        default,
        rename = "ContainerID",
        skip_serializing_if = "String::is_empty"
    )]
    pub container_id: String,
    /// The container's name, which other containers and tasks on the network resolve.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub container_name: String,
}

impl Task {
    /// A new task for `service` in `slot` (replicated; 0 for global) or on `node_id` (global; "" to
    /// let the scheduler choose), desired RUNNING, observed NEW. The task gets a copy of the spec
    /// with the defaults filled, so `Spec.ContainerSpec` is present whenever the service has one.
    pub fn from_service(
        service: &crate::service::Service,
        slot: u64,
        node_id: &str,
        now: DateTime<Utc>,
    ) -> Task {
        let id = crate::id::new_id();
        let mut spec = service.spec.task_template.clone();
        spec.normalize();
        let svc_name = &service.spec.annotations.name;
        let name = if slot != 0 {
            format!("{svc_name}.{slot}.{id}")
        } else {
            format!("{svc_name}.{node_id}.{id}")
        };
        Task {
            meta: Meta::created(now),
            annotations: Annotations::named(name),
            spec,
            service_id: service.id.clone(),
            slot,
            node_id: node_id.to_string(),
            status: TaskStatus::new(TaskState::New, "created", now),
            desired_state: TaskState::Running,
            job_iteration: service.job_status.as_ref().map(|j| j.job_iteration),
            service_annotations: service.spec.annotations.clone(),
            spec_version: service.spec_version,
            endpoint: Some(service.endpoint.clone()),
            id,
            ..Task::default()
        }
    }

    /// A standalone container's attachment to an attachable network (no service, pinned to
    /// the node that asked for it; see `Task::network_attachment_spec`).
    pub fn is_network_attachment(&self) -> bool {
        self.spec.runtime == crate::task_spec::RUNTIME_ATTACHMENT
    }

    /// The name `service ps` shows: `<service>.<slot>` or `<service>.<node id>` for global tasks.
    pub fn display_name(&self) -> String {
        let svc = &self.service_annotations.name;
        if self.slot != 0 {
            format!("{svc}.{}", self.slot)
        } else {
            format!("{svc}.{}", self.node_id)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = r#"{"ID":"59pnqhabcdefghijklmnopqrs","Version":{"Index":229},"CreatedAt":"2026-11-23T08:47:52.466838412Z","UpdatedAt":"2026-11-23T08:47:53Z","Labels":{},
 "Spec":{"ContainerSpec":{"Image":"bb:1"},"ForceUpdate":0},
 "ServiceID":"3bwzn9","Slot":1,"NodeID":"z1i2vj",
 "Status":{"Timestamp":"2026-11-23T08:47:54Z","State":"running","Message":"started",
   "ContainerStatus":{"ContainerID":"8197","PID":1350,"ExitCode":0},"PortStatus":{}},
 "DesiredState":"running",
 "NetworksAttachments":[{"Network":{"ID":"net1","Version":{"Index":3},"CreatedAt":"2026-11-23T08:47:00Z","UpdatedAt":"2026-11-23T08:47:00Z","Spec":{"Name":"ingress","Labels":{},"DriverConfiguration":{"Name":"overlay"},"Ingress":true,"IPAMOptions":{"Driver":{"Name":"default"},"Configs":[{"Subnet":"10.0.0.0/24","Gateway":"10.0.0.1"}]},"Scope":"swarm"},"DriverState":{"Name":"overlay","Options":{"com.docker.network.driver.overlay.vxlanid_list":"4096"}},"IPAMOptions":{"Driver":{"Name":"default"},"Configs":[{"Subnet":"10.0.0.0/24","Gateway":"10.0.0.1"}]}},"Addresses":["10.0.2.3/24"]}]}"#;

    #[test]
    fn sample_round_trip() {
        let t: Task = serde_json::from_str(SAMPLE).unwrap();
        assert_eq!(t.status.state, TaskState::Running);
        assert_eq!(t.status.container_status.as_ref().unwrap().pid, 1350);
        assert_eq!(
            t.networks_attachments[0].network.spec.annotations.name,
            "ingress"
        );
        assert_eq!(t.slot, 1);
        let out = serde_json::to_value(&t).unwrap();
        let orig: serde_json::Value = serde_json::from_str(SAMPLE).unwrap();
        for k in [
            "ID",
            "Version",
            "CreatedAt",
            "Labels",
            "ServiceID",
            "Slot",
            "NodeID",
            "Status",
            "DesiredState",
            "NetworksAttachments",
        ] {
            assert_eq!(out[k], orig[k], "field {k}");
        }
        assert_eq!(out["Spec"]["ContainerSpec"]["Image"], "bb:1");
        let back: Task = serde_json::from_value(out).unwrap();
        assert_eq!(back, t);
    }

    #[test]
    fn from_service_copies_what_the_cli_needs() {
        let mut svc = crate::service::Service {
            id: "svc1".into(),
            ..Default::default()
        };
        svc.spec.annotations = Annotations::named("web");
        svc.spec.task_template.container_spec = Some(crate::task_spec::ContainerSpec {
            image: "bb:1".into(),
            ..Default::default()
        });
        svc.spec_version = Some(Version { index: 9 });
        let now = Utc::now();
        let t = Task::from_service(&svc, 2, "", now);
        assert_eq!(t.display_name(), "web.2");
        assert!(t.annotations.name.starts_with("web.2."));
        assert_eq!(t.spec.image(), "bb:1");
        assert_eq!(t.spec.runtime, "container");
        assert_eq!(
            (t.desired_state, t.status.state),
            (TaskState::Running, TaskState::New)
        );
        assert_eq!(t.spec_version, Some(Version { index: 9 }));
        assert_eq!(t.service_annotations.name, "web");
        let g = Task::from_service(&svc, 0, "node9", now);
        assert_eq!(g.display_name(), "web.node9");
        let j = serde_json::to_value(&g).unwrap();
        assert_eq!(j["Spec"]["ContainerSpec"]["Image"], "bb:1");
        assert!(j.get("Slot").is_none());
    }

    #[test]
    fn global_task_omits_slot_and_unassigned_node() {
        let t = Task {
            id: "t".into(),
            ..Task::default()
        };
        let j = serde_json::to_value(&t).unwrap();
        assert!(j.get("Slot").is_none());
        assert!(j.get("NodeID").is_none());
        assert_eq!(j["DesiredState"], "new");
    }

    #[test]
    fn state_order_and_names() {
        assert!(TaskState::New < TaskState::Allocated);
        assert!(TaskState::Allocated < TaskState::Pending);
        assert!(TaskState::Running < TaskState::Complete);
        assert!(TaskState::Rejected < TaskState::Remove);
        assert_eq!(TaskState::Orphaned.value(), 832);
        assert_eq!(TaskState::from_value(512), Some(TaskState::Running));
        for (i, s) in TaskState::ALL.iter().enumerate().skip(1) {
            assert!(TaskState::ALL[i - 1] < *s);
            assert_eq!(s.as_str().parse::<TaskState>().unwrap(), *s);
            assert_eq!(serde_json::to_value(s).unwrap(), s.as_str());
        }
        assert!(TaskState::Complete.is_terminal());
        assert!(!TaskState::Running.is_terminal());
        assert_eq!(TaskState::Preparing.fatal_state(), TaskState::Rejected);
        assert_eq!(TaskState::Starting.fatal_state(), TaskState::Failed);
        assert!(!TaskState::Running.can_move_to(TaskState::Ready));
        assert!("bogus".parse::<TaskState>().is_err());
    }

    #[test]
    fn agent_transitions() {
        use AgentStep::*;
        use TaskState as S;
        // Full run towards RUNNING.
        let mut s = S::Assigned;
        let mut steps = vec![];
        while let Some(next) = next_step(s, S::Running).success_state() {
            steps.push(next_step(s, S::Running));
            if next == S::Complete {
                break;
            }
            s = next;
        }
        assert_eq!(
            steps,
            vec![
                Accept,
                MarkPreparing,
                Prepare,
                MarkStarting,
                Start,
                WaitExit
            ]
        );
        // Desired READY: prepare, then hold at READY.
        assert_eq!(next_step(S::Accepted, S::Ready), MarkPreparing);
        assert_eq!(next_step(S::Preparing, S::Ready), Prepare);
        assert_eq!(next_step(S::Ready, S::Ready), Wait);
        assert_eq!(next_step(S::Ready, S::Running), MarkStarting);
        // Desired below observed: hold.
        assert_eq!(next_step(S::Running, S::Ready), Wait);
        // Shutdown wins unless already stopped.
        assert_eq!(next_step(S::Running, S::Shutdown), Shutdown);
        assert_eq!(next_step(S::Assigned, S::Remove), Shutdown);
        assert_eq!(next_step(S::Failed, S::Shutdown), Wait);
        assert_eq!(next_step(S::Complete, S::Running), Wait);
        assert_eq!(exit_state(0), S::Complete);
        assert_eq!(exit_state(137), S::Failed);
    }

    #[test]
    fn network_attachment_tasks_round_trip() {
        let mut t = Task {
            id: "t1".into(),
            ..Default::default()
        };
        assert!(!t.is_network_attachment());
        t.spec.runtime = crate::task_spec::RUNTIME_ATTACHMENT.into();
        t.network_attachment_spec = Some(NetworkAttachmentSpec {
            container_id: "c0ffee".into(),
            container_name: "c1".into(),
        });
        assert!(t.is_network_attachment());
        let j = serde_json::to_value(&t).unwrap();
        assert_eq!(j["Spec"]["Runtime"], "attachment");
        assert_eq!(j["NetworkAttachmentSpec"]["ContainerID"], "c0ffee");
        assert_eq!(j["NetworkAttachmentSpec"]["ContainerName"], "c1");
        let back: Task = serde_json::from_value(j).unwrap();
        assert_eq!(back, t);
    }
}
