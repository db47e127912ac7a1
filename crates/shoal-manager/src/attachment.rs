//! Standalone containers on attachable overlay networks (the manager side of `docker run
//! --network <attachable overlay>` on any node).
//!
//! As swarmkit's resource allocator does: the node asks the leader (`Dispatcher.AttachNetwork`,
//! identified by its certificate) and gets a network attachment task: no service, pinned to the
//! calling node, runtime `attachment`. The allocator (same leader pass as service tasks) gives
//! it an address on the network and marks it ASSIGNED; the orchestrators and the scheduler
//! leave it alone. The call returns once the address is there, so the node can wire the
//! container at once. `DetachNetwork` deletes the task, which frees the address on the next
//! allocator pass.

use crate::manager::Manager;
use crate::network::find_network;
use crate::orchestrator::ObjectSource;
use chrono::{DateTime, Utc};
use shoal_proto::dispatcher::{
    AttachNetworkRequest, AttachNetworkResponse, DetachNetworkRequest, DetachNetworkResponse,
};
use shoal_store::Change;
use shoal_types::task::NetworkAttachmentSpec;
use shoal_types::task_spec::{
    NetworkAttachmentConfig, RUNTIME_ATTACHMENT, TaskSpec, is_network_alias,
};
use shoal_types::{ErrorKind, Meta, Object, ObjectKind, Task, TaskState, TaskStatus, new_id};
use std::time::Duration;
use tonic::Status;

/// How long `AttachNetwork` waits for the allocator to give the address.
const ALLOCATION_WAIT: Duration = Duration::from_secs(15);
/// Longest wait between two looks at the task.
const POLL: Duration = Duration::from_millis(250);
/// The status message of a new attachment task (swarmkit's).
const CREATED: &str = "created";

/// The attachment task for `req` from node `node_id`, or the refusal (Docker's wording:
/// "network X not found", "network X not manually attachable").
pub fn attachment_task(
    src: &dyn ObjectSource,
    node_id: &str,
    req: &AttachNetworkRequest,
    now: DateTime<Utc>,
) -> Result<Task, Status> {
    let target = req.network.trim();
    if target.is_empty() {
        return Err(Status::invalid_argument(
            "a network to attach to is required",
        ));
    }
    if src.object(ObjectKind::Node, node_id).is_none() {
        return Err(Status::permission_denied(format!(
            "node {node_id} is not a member of this swarm"
        )));
    }
    if !req.container_name.is_empty() {
        shoal_types::container::validate_container_name(&req.container_name)
            .map_err(|e| Status::invalid_argument(e.message))?;
    }
    let mut aliases: Vec<String> = Vec::new();
    for a in &req.aliases {
        if !is_network_alias(a) {
            return Err(Status::invalid_argument(format!(
                "invalid network alias {a:?}"
            )));
        }
        if !aliases.contains(a) {
            aliases.push(a.clone());
        }
    }
    let net = find_network(src, target).map_err(|e| match e.kind {
        ErrorKind::NotFound => Status::not_found(format!("network {target} not found")),
        _ => Status::invalid_argument(e.message),
    })?;
    if !net.spec.attachable || net.spec.ingress {
        return Err(Status::permission_denied(format!(
            "network {target} not manually attachable"
        )));
    }
    if !req.container_id.is_empty() && attached_already(src, node_id, &req.container_id, &net.id) {
        // Two `network connect` of one container at once: the second finds the first here.
        return Err(Status::already_exists(format!(
            "endpoint with name {} already exists in network {}",
            req.container_name, net.spec.annotations.name
        )));
    }
    Ok(Task {
        id: new_id(),
        meta: Meta::created(now),
        spec: TaskSpec {
            runtime: RUNTIME_ATTACHMENT.to_string(),
            networks: vec![NetworkAttachmentConfig {
                target: net.id.clone(),
                aliases,
                ..Default::default()
            }],
            ..Default::default()
        },
        node_id: node_id.to_string(),
        status: TaskStatus::new(TaskState::New, CREATED, now),
        desired_state: TaskState::Running,
        network_attachment_spec: Some(NetworkAttachmentSpec {
            container_id: req.container_id.clone(),
            container_name: req.container_name.clone(),
        }),
        ..Default::default()
    })
}

/// Whether container `container_id` of node `node_id` holds a live attachment to `network_id`.
fn attached_already(
    src: &dyn ObjectSource,
    node_id: &str,
    container_id: &str,
    network_id: &str,
) -> bool {
    src.objects(ObjectKind::Task).any(|o| match o {
        Object::Task(t) => {
            t.is_network_attachment()
                && t.node_id == node_id
                && !t.status.state.is_terminal()
                && t.network_attachment_spec
                    .as_ref()
                    .is_some_and(|s| s.container_id == container_id)
                && t.spec.networks.iter().any(|n| n.target == network_id)
        }
        _ => false,
    })
}

/// What the wait for the allocator saw.
#[derive(Debug, PartialEq)]
pub enum Allocation {
    /// Address given, task ASSIGNED to the node.
    Done,
    /// The allocator could not give it (why).
    Refused(String),
    /// Still waiting.
    Waiting,
    /// The task is gone (detached meanwhile).
    Gone,
}

/// Where an attachment task stands in its allocation.
pub fn allocation_of(task: Option<&Task>) -> Allocation {
    let Some(t) = task else {
        return Allocation::Gone;
    };
    if t.status.state >= TaskState::Assigned {
        return if t
            .networks_attachments
            .iter()
            .any(|a| !a.addresses.is_empty())
        {
            Allocation::Done
        } else {
            Allocation::Refused(format!(
                "the attachment ended without an address ({})",
                t.status.message
            ))
        };
    }
    if t.status.state == TaskState::Pending && t.status.message != CREATED {
        return Allocation::Refused(t.status.message.clone());
    }
    Allocation::Waiting
}

/// `Dispatcher.AttachNetwork`: makes the attachment task, waits for its address and returns it.
/// On any failure the task is deleted again, so nothing is left holding an address.
pub async fn attach_network(
    manager: &Manager,
    node_id: &str,
    req: AttachNetworkRequest,
) -> Result<AttachNetworkResponse, Status> {
    let task = attachment_task(&manager.view(), node_id, &req, Utc::now())?;
    let id = task.id.clone();
    // Woken by store changes rather than polling the view.
    let mut events = manager.store.watch();
    manager
        .propose(vec![Change::Create(Object::Task(task))])
        .await
        .map_err(|e| Status::unavailable(e.message))?;
    let deadline = tokio::time::Instant::now() + ALLOCATION_WAIT;
    loop {
        let view = manager.view();
        let current = match view.get(ObjectKind::Task, &id) {
            Some(Object::Task(t)) => Some(t),
            _ => None,
        };
        let why = match allocation_of(current) {
            Allocation::Done => {
                let task_json = serde_json::to_vec(current.unwrap_or(&Task::default()))
                    .map_err(|e| Status::internal(e.to_string()))?;
                return Ok(AttachNetworkResponse {
                    attachment_id: id,
                    task_json,
                });
            }
            Allocation::Waiting if tokio::time::Instant::now() < deadline => {
                drop(view);
                // Any change (or a lagged receiver) means: look again; the timeout bounds a
                // wait whose wake-up was missed.
                if let Ok(Err(tokio::sync::broadcast::error::RecvError::Closed)) =
                    tokio::time::timeout(POLL, events.recv()).await
                {
                    tokio::time::sleep(POLL).await;
                }
                continue;
            }
            Allocation::Waiting => Status::unavailable(format!(
                "network attachment {id}: no address was allocated within {}s",
                ALLOCATION_WAIT.as_secs()
            )),
            Allocation::Refused(msg) => Status::resource_exhausted(msg),
            Allocation::Gone => {
                return Err(Status::aborted(format!(
                    "network attachment {id} was removed while it waited for its address"
                )));
            }
        };
        drop(view);
        delete_quietly(manager, &id).await;
        return Err(why);
    }
}

async fn delete_quietly(manager: &Manager, id: &str) {
    let change = Change::Delete {
        kind: ObjectKind::Task,
        id: id.to_string(),
        expected_version: None,
    };
    if let Err(e) = manager.propose(vec![change]).await {
        tracing::warn!(attachment = %id, "removing a failed network attachment: {}", e.message);
    }
}

/// The delete of attachment `attachment_id` asked by node `node_id`: refused for another
/// node's attachment or a task that is not an attachment.
pub fn detach_change(
    src: &dyn ObjectSource,
    node_id: &str,
    attachment_id: &str,
) -> Result<Change, Status> {
    if attachment_id.is_empty() {
        return Err(Status::invalid_argument("an attachment ID is required"));
    }
    let Some(Object::Task(t)) = src.object(ObjectKind::Task, attachment_id) else {
        return Err(Status::not_found(format!(
            "attachment {attachment_id} not found"
        )));
    };
    if !t.is_network_attachment() {
        return Err(Status::invalid_argument(format!(
            "task {attachment_id} is not a network attachment"
        )));
    }
    if t.node_id != node_id {
        return Err(Status::permission_denied(format!(
            "attachment {attachment_id} doesn't belong to this node"
        )));
    }
    Ok(Change::Delete {
        kind: ObjectKind::Task,
        id: t.id.clone(),
        expected_version: Some(t.meta.version.index),
    })
}

/// `Dispatcher.DetachNetwork`.
pub async fn detach_network(
    manager: &Manager,
    node_id: &str,
    req: DetachNetworkRequest,
) -> Result<DetachNetworkResponse, Status> {
    let change = detach_change(&manager.view(), node_id, &req.attachment_id)?;
    manager
        .propose(vec![change])
        .await
        .map_err(|e| match e.kind {
            ErrorKind::NotFound => Status::not_found(e.message),
            _ => Status::unavailable(e.message),
        })?;
    Ok(DetachNetworkResponse {})
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::orchestrator::{MemObjects, pass};
    use shoal_types::network::NetworkSpec;
    use shoal_types::{Network, Node};

    fn net(id: &str, name: &str, attachable: bool) -> Network {
        let mut spec = NetworkSpec::default();
        spec.annotations.name = name.into();
        spec.attachable = attachable;
        spec.driver_configuration = Some(shoal_types::meta::Driver {
            name: "overlay".into(),
            options: Default::default(),
        });
        Network {
            id: id.into(),
            meta: Meta::created(Utc::now()),
            spec,
            ..Default::default()
        }
    }

    fn store() -> MemObjects {
        let mut m = MemObjects::new();
        let mut n = Node {
            id: "node1".into(),
            ..Default::default()
        };
        n.status.state = shoal_types::NodeState::Ready;
        m.put(Object::Node(n));
        m.put(Object::Network(net("netapp", "app", true)));
        m.put(Object::Network(net("netsvc", "svconly", false)));
        m
    }

    fn req(network: &str) -> AttachNetworkRequest {
        AttachNetworkRequest {
            network: network.into(),
            container_id: String::new(),
            container_name: "c1".into(),
            aliases: vec!["db".into()],
        }
    }

    fn task_of(m: &MemObjects, id: &str) -> Task {
        match m.object(ObjectKind::Task, id) {
            Some(Object::Task(t)) => t.clone(),
            other => panic!("task {id}: {other:?}"),
        }
    }

    #[test]
    fn attachment_task_is_pinned_to_the_caller_without_service() {
        let m = store();
        let t = attachment_task(&m, "node1", &req("app"), Utc::now()).unwrap();
        assert!(t.is_network_attachment());
        assert_eq!(t.node_id, "node1");
        assert!(t.service_id.is_empty());
        assert_eq!(t.spec.networks[0].target, "netapp");
        assert_eq!(t.spec.networks[0].aliases, ["db"]);
        assert_eq!(
            (t.status.state, t.desired_state),
            (TaskState::New, TaskState::Running)
        );
        assert_eq!(
            t.network_attachment_spec
                .as_ref()
                .map(|s| s.container_name.as_str()),
            Some("c1")
        );
        // By ID too.
        assert!(attachment_task(&m, "node1", &req("netapp"), Utc::now()).is_ok());
    }

    #[test]
    fn a_container_connects_to_a_network_once() {
        let mut m = store();
        let mut r = req("app");
        r.container_id = "c0ffee".into();
        let first = attachment_task(&m, "node1", &r, Utc::now()).unwrap();
        m.put(Object::Task(first.clone()));
        let e = attachment_task(&m, "node1", &r, Utc::now()).unwrap_err();
        assert_eq!(e.code(), tonic::Code::AlreadyExists);
        assert_eq!(
            e.message(),
            "endpoint with name c1 already exists in network app"
        );
        // Another container, or the same one once its attachment ended, may attach.
        r.container_id = "beef".into();
        assert!(attachment_task(&m, "node1", &r, Utc::now()).is_ok());
        r.container_id = "c0ffee".into();
        let mut ended = first;
        ended.status.state = TaskState::Shutdown;
        m.put(Object::Task(ended));
        assert!(attachment_task(&m, "node1", &r, Utc::now()).is_ok());
    }

    #[test]
    fn a_network_held_by_a_container_names_it_and_its_node() {
        let mut m = store();
        let mut node = match m.object(ObjectKind::Node, "node1") {
            Some(Object::Node(n)) => n.clone(),
            other => panic!("node1: {other:?}"),
        };
        node.description.hostname = "host-a".into();
        m.put(Object::Node(node));
        let mut t = attachment_task(&m, "node1", &req("app"), Utc::now()).unwrap();
        t.networks_attachments = vec![shoal_types::task::NetworkAttachment {
            network: net("netapp", "app", true),
            addresses: vec!["10.0.9.2/24".into()],
            ..Default::default()
        }];
        m.put(Object::Task(t));
        let Some(Object::Network(app)) = m.object(ObjectKind::Network, "netapp").cloned() else {
            panic!("no network app");
        };
        assert_eq!(
            crate::network::network_user(&m, &app).as_deref(),
            Some("network app is in use by container c1 on node host-a")
        );
    }

    #[test]
    fn refusals_use_dockers_wording() {
        let m = store();
        let e = attachment_task(&m, "node1", &req("svconly"), Utc::now()).unwrap_err();
        assert_eq!(e.code(), tonic::Code::PermissionDenied);
        assert_eq!(e.message(), "network svconly not manually attachable");
        let e = attachment_task(&m, "node1", &req("nope"), Utc::now()).unwrap_err();
        assert_eq!(e.code(), tonic::Code::NotFound);
        assert_eq!(e.message(), "network nope not found");
        let e = attachment_task(&m, "node1", &req(" "), Utc::now()).unwrap_err();
        assert_eq!(e.code(), tonic::Code::InvalidArgument);
        let e = attachment_task(&m, "ghost", &req("app"), Utc::now()).unwrap_err();
        assert_eq!(e.code(), tonic::Code::PermissionDenied);
        let mut bad = req("app");
        bad.aliases = vec!["a b".into()];
        let e = attachment_task(&m, "node1", &bad, Utc::now()).unwrap_err();
        assert_eq!(e.code(), tonic::Code::InvalidArgument);
    }

    #[test]
    fn allocator_gives_an_address_and_orchestration_leaves_it_alone() {
        let mut m = store();
        let t = attachment_task(&m, "node1", &req("app"), Utc::now()).unwrap();
        let id = t.id.clone();
        m.put(Object::Task(t));
        assert_eq!(allocation_of(Some(&task_of(&m, &id))), Allocation::Waiting);
        // Passes allocate the network, then the task: ASSIGNED on node1 with an address.
        for _ in 0..3 {
            let changes = pass(&m, Utc::now());
            m.apply(&changes).unwrap();
        }
        let t = task_of(&m, &id);
        assert_eq!(allocation_of(Some(&t)), Allocation::Done);
        assert_eq!(t.status.state, TaskState::Assigned);
        assert_eq!(t.node_id, "node1");
        assert_eq!(t.desired_state, TaskState::Running);
        let addr = t.networks_attachments[0].addresses[0].clone();
        assert!(!addr.is_empty());
        assert_eq!(t.networks_attachments[0].aliases, ["db"]);
        // Running on the node: later passes neither shut it down (no service) nor move it.
        let mut running = t.clone();
        running.status = TaskStatus::new(TaskState::Running, "started", Utc::now());
        m.put(Object::Task(running));
        for _ in 0..3 {
            let changes = pass(&m, Utc::now());
            m.apply(&changes).unwrap();
        }
        let t = task_of(&m, &id);
        assert_eq!(
            (t.status.state, t.desired_state),
            (TaskState::Running, TaskState::Running)
        );
        assert_eq!(t.networks_attachments[0].addresses[0], addr);
        // The network cannot be removed while the container is attached.
        let e = crate::network::remove_network(&m, "app").unwrap_err();
        assert!(e.message.contains("in use"), "{}", e.message);
        // A second attachment gets another address; detaching the first frees its own.
        let t2 = attachment_task(&m, "node1", &req("app"), Utc::now()).unwrap();
        let id2 = t2.id.clone();
        m.put(Object::Task(t2));
        let changes = pass(&m, Utc::now());
        m.apply(&changes).unwrap();
        let addr2 = task_of(&m, &id2).networks_attachments[0].addresses[0].clone();
        assert_ne!(addr, addr2);
        let del = detach_change(&m, "node1", &id).unwrap();
        m.apply(&[del]).unwrap();
        assert!(m.object(ObjectKind::Task, &id).is_none());
        // Its address is free again: no task holds it (the pool hands addresses out
        // round-robin, so it comes back once the others are used).
        let holders = m
            .objects(ObjectKind::Task)
            .filter(|o| match o {
                Object::Task(t) => t
                    .networks_attachments
                    .iter()
                    .any(|a| a.addresses.contains(&addr)),
                _ => false,
            })
            .count();
        assert_eq!(holders, 0);
        let t3 = attachment_task(&m, "node1", &req("app"), Utc::now()).unwrap();
        let id3 = t3.id.clone();
        m.put(Object::Task(t3));
        let changes = pass(&m, Utc::now());
        m.apply(&changes).unwrap();
        let addr3 = task_of(&m, &id3).networks_attachments[0].addresses[0].clone();
        assert_ne!(addr3, addr2);
    }

    #[test]
    fn ended_attachments_are_reaped() {
        let mut m = store();
        let mut t = attachment_task(&m, "node1", &req("app"), Utc::now()).unwrap();
        t.status = TaskStatus::new(TaskState::Complete, "container removed", Utc::now());
        let id = t.id.clone();
        m.put(Object::Task(t));
        for _ in 0..3 {
            let changes = pass(&m, Utc::now());
            m.apply(&changes).unwrap();
        }
        assert!(m.object(ObjectKind::Task, &id).is_none());
    }

    #[test]
    fn detach_is_only_for_the_owner_and_attachments() {
        let mut m = store();
        let t = attachment_task(&m, "node1", &req("app"), Utc::now()).unwrap();
        let id = t.id.clone();
        m.put(Object::Task(t));
        assert_eq!(
            detach_change(&m, "node2", &id).unwrap_err().code(),
            tonic::Code::PermissionDenied
        );
        assert_eq!(
            detach_change(&m, "node1", "missing").unwrap_err().code(),
            tonic::Code::NotFound
        );
        assert_eq!(
            detach_change(&m, "node1", "").unwrap_err().code(),
            tonic::Code::InvalidArgument
        );
        let svc_task = Task {
            id: "svc-task".into(),
            service_id: "s".into(),
            node_id: "node1".into(),
            ..Default::default()
        };
        m.put(Object::Task(svc_task));
        assert_eq!(
            detach_change(&m, "node1", "svc-task").unwrap_err().code(),
            tonic::Code::InvalidArgument
        );
        assert!(detach_change(&m, "node1", &id).is_ok());
    }

    #[test]
    fn an_exhausted_network_refuses_with_the_reason() {
        let mut m = store();
        let mut tiny = net("nettiny", "tiny", true);
        tiny.spec.ipam_options = Some(shoal_types::network::IPAMOptions {
            driver: Default::default(),
            configs: vec![shoal_types::network::IPAMConfig {
                subnet: "10.9.9.0/30".into(),
                gateway: String::new(),
                range: String::new(),
            }],
        });
        m.put(Object::Network(tiny));
        let first = attachment_task(&m, "node1", &req("tiny"), Utc::now()).unwrap();
        let second = attachment_task(&m, "node1", &req("tiny"), Utc::now()).unwrap();
        let (a, b) = (first.id.clone(), second.id.clone());
        m.put(Object::Task(first));
        for _ in 0..2 {
            let changes = pass(&m, Utc::now());
            m.apply(&changes).unwrap();
        }
        assert_eq!(allocation_of(Some(&task_of(&m, &a))), Allocation::Done);
        m.put(Object::Task(second));
        let changes = pass(&m, Utc::now());
        m.apply(&changes).unwrap();
        match allocation_of(Some(&task_of(&m, &b))) {
            Allocation::Refused(why) => assert!(why.contains("no available IP address"), "{why}"),
            other => panic!("second attachment on a full /30: {other:?}"),
        }
        // Never assigned: it does not reach the node.
        assert_eq!(task_of(&m, &b).status.state, TaskState::Pending);
    }

    #[test]
    fn allocation_states() {
        assert_eq!(allocation_of(None), Allocation::Gone);
        let t = Task {
            status: TaskStatus::new(TaskState::Pending, "no more addresses", Utc::now()),
            ..Default::default()
        };
        assert_eq!(
            allocation_of(Some(&t)),
            Allocation::Refused("no more addresses".into())
        );
    }
}
