//! The NodeCA gRPC service: root download, join (token -> node certificate), renewal and the
//! unlock key. Cluster state lives with the manager, reached through [`NodeRegistrar`].

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use shoal_proto::ca::node_ca_server::{NodeCa, NodeCaServer};
use shoal_proto::ca::{
    Empty, IssueRequest, IssueResponse, RenewRequest, RootCaResponse, UnlockKeyResponse,
};
use tonic::{Request, Response, Status};

use super::authz::authorize;
use super::pki::{Csr, DEFAULT_NODE_CERT_VALIDITY, Role, RootCa};
use super::token::JoinToken;

/// What a joining node asked for, handed to the manager to create the Node object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinInfo {
    /// The role the join token grants.
    pub role: Role,
    pub hostname: String,
    /// host:port the node advertises; empty if it gave none (use `peer_addr`).
    pub advertise_addr: String,
    pub listen_addr: String,
    pub data_path_addr: String,
    /// "active" | "pause" | "drain" (already validated; empty input becomes "active").
    pub availability: String,
    /// Where the request came from.
    pub peer_addr: Option<SocketAddr>,
}

/// The manager side of the CA: cluster state the service reads, and node creation.
pub trait NodeRegistrar: Send + Sync + 'static {
    /// Creates the Node object for a joining node (through Raft) and returns its new node ID.
    /// This is the only place new nodes enter the cluster.
    fn register(&self, info: JoinInfo) -> impl Future<Output = Result<String, Status>> + Send;
    /// The root CA with its signing key (e.g. `Status::unavailable` while not known yet).
    fn current_ca(&self) -> Result<Arc<RootCa>, Status>;
    /// Current (worker, manager) join tokens, as strings.
    fn tokens(&self) -> (String, String);
    fn cluster_id(&self) -> String;
    /// True for a node that was removed: its certificate is refused.
    fn is_revoked(&self, node_id: &str) -> bool;
    /// The role the cluster currently wants for this node; `None` if it is unknown.
    fn node_role(&self, node_id: &str) -> Option<Role>;
    /// The autolock unlock key (`SWMKEY-1-...`), `None` when autolock is off.
    fn unlock_key(&self) -> Option<String> {
        None
    }
    /// Lifetime of issued node certificates (the cluster's CA config).
    fn cert_validity(&self) -> Duration {
        DEFAULT_NODE_CERT_VALIDITY
    }
}

/// The tonic service; serve it with `NodeCaService::new(registrar).into_server()`.
pub struct NodeCaService<R: NodeRegistrar> {
    registrar: Arc<R>,
}

impl<R: NodeRegistrar> Clone for NodeCaService<R> {
    fn clone(&self) -> Self {
        NodeCaService {
            registrar: self.registrar.clone(),
        }
    }
}

impl<R: NodeRegistrar> NodeCaService<R> {
    pub fn new(registrar: Arc<R>) -> Self {
        NodeCaService { registrar }
    }

    pub fn into_server(self) -> NodeCaServer<Self> {
        NodeCaServer::new(self)
    }

    /// The role a presented token grants, or PermissionDenied "invalid join token".
    fn role_for_token(&self, token: &str, ca: &RootCa) -> Result<Role, Status> {
        let presented =
            JoinToken::parse(token).map_err(|e| Status::invalid_argument(e.to_string()))?;
        if !presented.ca_digest_matches(ca) {
            return Err(Status::permission_denied(
                "invalid join token: it was made for a different root CA",
            ));
        }
        let (worker, manager) = self.registrar.tokens();
        if worker.is_empty() || manager.is_empty() {
            return Err(Status::unavailable(
                "the cluster's join tokens are not known yet: try again",
            ));
        }
        let worker = JoinToken::parse(&worker)
            .map_err(|e| Status::internal(format!("cluster worker token: {e}")))?;
        let manager = JoinToken::parse(&manager)
            .map_err(|e| Status::internal(format!("cluster manager token: {e}")))?;
        // Both comparisons always run: timing must not tell which token was close.
        let is_worker = presented.matches(&worker);
        let is_manager = presented.matches(&manager);
        match (is_worker, is_manager) {
            (_, true) => Ok(Role::Manager),
            (true, false) => Ok(Role::Worker),
            (false, false) => Err(Status::permission_denied("invalid join token")),
        }
    }

    fn sign(
        &self,
        ca: &RootCa,
        csr: &Csr,
        node_id: &str,
        role: Role,
    ) -> Result<IssueResponse, Status> {
        let cluster_id = self.registrar.cluster_id();
        let cert_pem = ca
            .issue_for(
                csr,
                node_id,
                role,
                &cluster_id,
                self.registrar.cert_validity(),
            )
            .map_err(|e| Status::internal(format!("cannot sign certificate: {e}")))?;
        Ok(IssueResponse {
            node_id: node_id.to_string(),
            cert_pem,
            ca_pem: ca.cert_pem().to_string(),
            role: role.as_str().to_string(),
            cluster_id,
        })
    }
}

fn check_field(what: &str, value: &str, max: usize) -> Result<(), Status> {
    if value.len() > max || value.chars().any(char::is_control) {
        return Err(Status::invalid_argument(format!(
            "invalid {what}: at most {max} printable characters"
        )));
    }
    Ok(())
}

fn availability(s: &str) -> Result<String, Status> {
    match s.trim() {
        "" | "active" => Ok("active".into()),
        "pause" | "drain" => Ok(s.trim().into()),
        other => Err(Status::invalid_argument(format!(
            "invalid availability {other:?}: expected \"active\", \"pause\" or \"drain\""
        ))),
    }
}

#[tonic::async_trait]
impl<R: NodeRegistrar> NodeCa for NodeCaService<R> {
    async fn get_root_ca_certificate(
        &self,
        _req: Request<Empty>,
    ) -> Result<Response<RootCaResponse>, Status> {
        let ca = self.registrar.current_ca()?;
        Ok(Response::new(RootCaResponse {
            cert_pem: ca.cert_pem().to_string(),
        }))
    }

    async fn issue_node_certificate(
        &self,
        req: Request<IssueRequest>,
    ) -> Result<Response<IssueResponse>, Status> {
        let peer_addr = req.remote_addr();
        let r = req.into_inner();
        let ca = self.registrar.current_ca()?;
        let role = self.role_for_token(&r.token, &ca)?;
        // Validate everything before the node is created: bad input changes nothing.
        let csr = Csr::parse(&r.csr_pem).map_err(|e| Status::invalid_argument(e.to_string()))?;
        let availability = availability(&r.availability)?;
        check_field("hostname", &r.hostname, 253)?;
        check_field("advertise address", &r.advertise_addr, 300)?;
        check_field("listen address", &r.listen_addr, 300)?;
        check_field("data path address", &r.data_path_addr, 300)?;
        let info = JoinInfo {
            role,
            hostname: r.hostname,
            advertise_addr: r.advertise_addr,
            listen_addr: r.listen_addr,
            data_path_addr: r.data_path_addr,
            availability,
            peer_addr,
        };
        let node_id = self.registrar.register(info).await?;
        tracing::info!(node_id = %node_id, role = %role, "issued certificate to joining node");
        Ok(Response::new(self.sign(&ca, &csr, &node_id, role)?))
    }

    async fn renew_node_certificate(
        &self,
        req: Request<RenewRequest>,
    ) -> Result<Response<IssueResponse>, Status> {
        let reg = &self.registrar;
        let id = authorize(
            &req,
            &reg.cluster_id(),
            &[Role::Manager, Role::Worker],
            |n| reg.is_revoked(n),
        )?;
        // The cluster's current view of the role, not the old certificate's: this is how a
        // promotion or demotion reaches the node.
        let role = reg.node_role(&id.node_id).ok_or_else(|| {
            Status::permission_denied(format!(
                "node {} is not a member of this cluster",
                id.node_id
            ))
        })?;
        let csr = Csr::parse(&req.get_ref().csr_pem)
            .map_err(|e| Status::invalid_argument(e.to_string()))?;
        let ca = reg.current_ca()?;
        Ok(Response::new(self.sign(&ca, &csr, &id.node_id, role)?))
    }

    async fn get_unlock_key(
        &self,
        req: Request<Empty>,
    ) -> Result<Response<UnlockKeyResponse>, Status> {
        let reg = &self.registrar;
        authorize(&req, &reg.cluster_id(), &[Role::Manager], |n| {
            reg.is_revoked(n)
        })?;
        Ok(Response::new(UnlockKeyResponse {
            unlock_key: reg.unlock_key().unwrap_or_default(),
        }))
    }
}
