//! The manager's gRPC services on the cluster port: `Control` (managers only), `Dispatcher`
//! (any node of this cluster) and the registrar behind the CA's `NodeCA` service.

use crate::ca::{JoinInfo, NodeRegistrar, Role, RootCa, authorize};
use crate::manager::{HeartbeatRefusal, Manager};
use shoal_proto::control::control_server::{Control, ControlServer};
use shoal_proto::control::{
    JoinRaftRequest, JoinRaftResponse, LeaveRaftRequest, LeaveRaftResponse, ProposeRequest,
    ProposeResponse,
};
use shoal_proto::dispatcher::dispatcher_server::{Dispatcher, DispatcherServer};
use shoal_proto::dispatcher::{
    AssignmentsMessage, AssignmentsRequest, AttachNetworkRequest, AttachNetworkResponse,
    DetachNetworkRequest, DetachNetworkResponse, HeartbeatRequest, HeartbeatResponse,
    UpdateTaskStatusRequest, UpdateTaskStatusResponse, WireGuardPeerSet, WireGuardPeersRequest,
};
use shoal_store::{Command, ProposeError};
use shoal_types::node::NodeDescription;
use shoal_types::{
    ApiError, Meta, Node, NodeAvailability, NodeRole, NodeState, Object, ObjectKind, new_id,
};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tonic::{Request, Response, Status};

/// A removed node: its certificate stays refused until it would have expired.
pub fn is_revoked(manager: &Manager, node_id: &str) -> bool {
    manager
        .cluster()
        .is_some_and(|c| c.blacklisted_certificates.contains_key(node_id))
}

fn cluster_id(manager: &Manager) -> Result<String, Status> {
    manager
        .cluster()
        .map(|c| c.id)
        .ok_or_else(|| Status::unavailable("the cluster state is not known yet"))
}

#[derive(Clone)]
pub struct ControlService {
    manager: Arc<Manager>,
}

impl ControlService {
    pub fn server(manager: Arc<Manager>) -> ControlServer<ControlService> {
        ControlServer::new(ControlService { manager })
    }

    fn check<T>(&self, req: &Request<T>) -> Result<(), Status> {
        let cid = cluster_id(&self.manager)?;
        authorize(req, &cid, &[Role::Manager], |id| {
            is_revoked(&self.manager, id)
        })?;
        Ok(())
    }
}

fn error_json(e: &ApiError) -> Vec<u8> {
    serde_json::to_vec(e).unwrap_or_default()
}

#[tonic::async_trait]
impl Control for ControlService {
    async fn propose(
        &self,
        req: Request<ProposeRequest>,
    ) -> Result<Response<ProposeResponse>, Status> {
        self.check(&req)?;
        let cmd: Command = serde_json::from_slice(&req.into_inner().command_json)
            .map_err(|e| Status::invalid_argument(format!("bad command: {e}")))?;
        let resp = match self.manager.store.propose(cmd).await {
            Ok(applied) => ProposeResponse {
                result_json: serde_json::to_vec(&applied)
                    .map_err(|e| Status::internal(e.to_string()))?,
                error_json: Vec::new(),
            },
            // Never forward twice: the follower retries against the new leader on its own.
            Err(ProposeError::ForwardToLeader { leader_addr, .. }) => ProposeResponse {
                result_json: Vec::new(),
                error_json: error_json(&ApiError::unavailable(format!(
                    "leadership moved to {leader_addr}; retry"
                ))),
            },
            Err(e) => ProposeResponse {
                result_json: Vec::new(),
                error_json: error_json(&e.into()),
            },
        };
        Ok(Response::new(resp))
    }

    async fn join_raft(
        &self,
        req: Request<JoinRaftRequest>,
    ) -> Result<Response<JoinRaftResponse>, Status> {
        self.check(&req)?;
        let r = req.into_inner();
        self.manager
            .join_raft(r.raft_id, &r.addr)
            .await
            .map_err(|e| Status::unavailable(e.message))?;
        Ok(Response::new(JoinRaftResponse {}))
    }

    async fn leave_raft(
        &self,
        req: Request<LeaveRaftRequest>,
    ) -> Result<Response<LeaveRaftResponse>, Status> {
        self.check(&req)?;
        let r = req.into_inner();
        self.manager
            .leave_raft(r.raft_id)
            .await
            .map_err(|e| Status::failed_precondition(e.message))?;
        Ok(Response::new(LeaveRaftResponse {}))
    }
}

#[derive(Clone)]
pub struct DispatcherService {
    manager: Arc<Manager>,
    statuses: crate::dispatch::StatusBatcher,
    hub: crate::dispatch::DispatchHub,
    wg_peers: crate::wg_keys::PeerSets,
}

impl DispatcherService {
    pub fn server(manager: Arc<Manager>) -> DispatcherServer<DispatcherService> {
        let statuses = crate::dispatch::StatusBatcher::spawn(manager.clone());
        let hub = crate::dispatch::DispatchHub::spawn(&manager);
        let wg_peers = crate::wg_keys::PeerSets::spawn(&manager);
        DispatcherServer::new(DispatcherService {
            manager,
            statuses,
            hub,
            wg_peers,
        })
    }
}

fn not_leader(leader: Option<String>) -> Status {
    let mut status = Status::unavailable("this manager is not the leader");
    if let Some(l) = leader
        && let Ok(v) = l.parse()
    {
        status.metadata_mut().insert("x-shoal-leader", v);
    }
    status
}

impl DispatcherService {
    fn node_identity<T>(&self, req: &Request<T>) -> Result<String, Status> {
        let cid = cluster_id(&self.manager)?;
        let who = authorize(req, &cid, &[Role::Manager, Role::Worker], |id| {
            is_revoked(&self.manager, id)
        })?;
        if !self.manager.is_leader() {
            return Err(not_leader(self.manager.leader_addr()));
        }
        Ok(who.node_id)
    }
}

#[tonic::async_trait]
impl Dispatcher for DispatcherService {
    type AssignmentsStream =
        tokio_stream::wrappers::ReceiverStream<Result<AssignmentsMessage, Status>>;

    async fn assignments(
        &self,
        req: Request<AssignmentsRequest>,
    ) -> Result<Response<Self::AssignmentsStream>, Status> {
        let node_id = self.node_identity(&req)?;
        let (tx, rx) = tokio::sync::mpsc::channel(16);
        crate::dispatch::spawn_assignment_stream(self.manager.clone(), &self.hub, node_id, tx);
        Ok(Response::new(tokio_stream::wrappers::ReceiverStream::new(
            rx,
        )))
    }

    type WireGuardPeersStream =
        tokio_stream::wrappers::ReceiverStream<Result<WireGuardPeerSet, Status>>;

    async fn wire_guard_peers(
        &self,
        req: Request<WireGuardPeersRequest>,
    ) -> Result<Response<Self::WireGuardPeersStream>, Status> {
        self.node_identity(&req)?;
        Ok(Response::new(self.wg_peers.stream(self.manager.clone())))
    }

    async fn update_task_status(
        &self,
        req: Request<UpdateTaskStatusRequest>,
    ) -> Result<Response<UpdateTaskStatusResponse>, Status> {
        let node_id = self.node_identity(&req)?;
        self.statuses
            .submit(&node_id, req.into_inner().updates)
            .await
            .map_err(|e| match e.kind {
                shoal_types::ErrorKind::PermissionDenied => Status::permission_denied(e.message),
                shoal_types::ErrorKind::InvalidArgument => Status::invalid_argument(e.message),
                _ => Status::unavailable(e.message),
            })?;
        Ok(Response::new(UpdateTaskStatusResponse {}))
    }

    async fn attach_network(
        &self,
        req: Request<AttachNetworkRequest>,
    ) -> Result<Response<AttachNetworkResponse>, Status> {
        let node_id = self.node_identity(&req)?;
        crate::attachment::attach_network(&self.manager, &node_id, req.into_inner())
            .await
            .map(Response::new)
    }

    async fn detach_network(
        &self,
        req: Request<DetachNetworkRequest>,
    ) -> Result<Response<DetachNetworkResponse>, Status> {
        let node_id = self.node_identity(&req)?;
        crate::attachment::detach_network(&self.manager, &node_id, req.into_inner())
            .await
            .map(Response::new)
    }

    async fn heartbeat(
        &self,
        req: Request<HeartbeatRequest>,
    ) -> Result<Response<HeartbeatResponse>, Status> {
        let cid = cluster_id(&self.manager)?;
        let who = authorize(&req, &cid, &[Role::Manager, Role::Worker], |id| {
            is_revoked(&self.manager, id)
        })?;
        let r = req.into_inner();
        let description: Option<NodeDescription> = if r.description_json.is_empty() {
            None
        } else {
            Some(
                serde_json::from_slice(&r.description_json)
                    .map_err(|e| Status::invalid_argument(format!("bad node description: {e}")))?,
            )
        };
        let description = crate::wg_keys::check_report(&self.manager, &who.node_id, description)?;
        match self
            .manager
            .heartbeat(&who.node_id, &r.addr, description)
            .await
        {
            Ok(out) => Ok(Response::new(HeartbeatResponse {
                period_ms: out.period.as_millis() as u64,
                managers: out.managers,
                desired_role: out.desired_role.as_str().to_string(),
                removed: out.removed,
            })),
            Err(HeartbeatRefusal::NotLeader(leader)) => Err(not_leader(leader)),
        }
    }
}

/// The manager side of the CA: joins create nodes through Raft.
pub struct Registrar {
    manager: Arc<Manager>,
    ca_cache: Mutex<Option<(String, Arc<RootCa>)>>,
}

impl Registrar {
    pub fn new(manager: Arc<Manager>) -> Arc<Registrar> {
        Arc::new(Registrar {
            manager,
            ca_cache: Mutex::new(None),
        })
    }
}

fn role_of(r: NodeRole) -> Role {
    match r {
        NodeRole::Manager => Role::Manager,
        NodeRole::Worker => Role::Worker,
    }
}

impl NodeRegistrar for Registrar {
    async fn register(&self, info: JoinInfo) -> Result<String, Status> {
        let availability: NodeAvailability = if info.availability.is_empty() {
            NodeAvailability::Active
        } else {
            info.availability
                .parse()
                .map_err(|_| Status::invalid_argument("invalid availability"))?
        };
        let addr = if !info.advertise_addr.is_empty() {
            info.advertise_addr
                .rsplit_once(':')
                .map(|(h, _)| h.to_string())
                .unwrap_or(info.advertise_addr.clone())
        } else {
            info.peer_addr
                .map(|a| a.ip().to_string())
                .unwrap_or_default()
        };
        let mut node = Node {
            id: new_id(),
            meta: Meta::now(),
            ..Default::default()
        };
        node.spec.role = match info.role {
            Role::Manager => NodeRole::Manager,
            Role::Worker => NodeRole::Worker,
        };
        node.spec.availability = availability;
        node.description.hostname = info.hostname;
        node.status.state = NodeState::Unknown;
        node.status.addr = addr;
        let id = node.id.clone();
        self.manager
            .propose(vec![shoal_store::Change::Create(Object::Node(node))])
            .await
            .map_err(|e| Status::unavailable(e.message))?;
        Ok(id)
    }

    fn current_ca(&self) -> Result<Arc<RootCa>, Status> {
        let cluster = self
            .manager
            .cluster()
            .ok_or_else(|| Status::unavailable("the cluster state is not known yet"))?;
        let mut cache = self.ca_cache.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((pem, ca)) = cache.as_ref()
            && *pem == cluster.root_ca.ca_cert
        {
            return Ok(ca.clone());
        }
        let key = String::from_utf8(cluster.root_ca.ca_key.clone())
            .map_err(|_| Status::internal("the stored CA key is not PEM"))?;
        let ca = Arc::new(
            RootCa::from_pem(&cluster.root_ca.ca_cert, &key)
                .map_err(|e| Status::internal(e.to_string()))?,
        );
        *cache = Some((cluster.root_ca.ca_cert.clone(), ca.clone()));
        Ok(ca)
    }

    fn tokens(&self) -> (String, String) {
        self.manager
            .cluster()
            .map(|c| (c.root_ca.join_tokens.worker, c.root_ca.join_tokens.manager))
            .unwrap_or_default()
    }

    fn cluster_id(&self) -> String {
        self.manager.cluster().map(|c| c.id).unwrap_or_default()
    }

    fn is_revoked(&self, node_id: &str) -> bool {
        is_revoked(&self.manager, node_id)
    }

    fn node_role(&self, node_id: &str) -> Option<Role> {
        match self.manager.view().get(ObjectKind::Node, node_id) {
            Some(Object::Node(n)) => Some(role_of(n.spec.role)),
            _ => None,
        }
    }

    fn unlock_key(&self) -> Option<String> {
        self.manager.cluster().and_then(|c| c.unlock_key)
    }

    fn cert_validity(&self) -> Duration {
        let ns = self
            .manager
            .cluster()
            .map(|c| c.spec.ca_config.node_cert_expiry)
            .unwrap_or(0);
        if ns > 0 {
            Duration::from_nanos(ns as u64)
        } else {
            crate::ca::DEFAULT_NODE_CERT_VALIDITY
        }
    }
}
