//! Who is calling: the peer certificate of a gRPC request, mapped to an [`Identity`], and the
//! per-RPC role check.

use std::sync::Arc;

use tonic::service::Interceptor;
use tonic::{Request, Status};

use super::pki::{Identity, Role, parse_identity};

impl Identity {
    /// The identity in the caller's client certificate, if it presented one. The TLS layer
    /// has already verified the chain to the cluster root.
    pub fn from_request<T>(req: &Request<T>) -> Option<Identity> {
        let certs = req.peer_certs()?;
        parse_identity(certs.first()?).ok()
    }
}

/// Checks that the caller holds a node certificate of cluster `cluster_id` with one of the
/// `allowed` roles and has not been removed from the cluster.
///
/// - no certificate, an unparsable one, or one of another cluster: `Unauthenticated`;
/// - a removed (revoked) node: `PermissionDenied`;
/// - a role not in `allowed` (a worker calling a manager-only RPC): `PermissionDenied`.
pub fn authorize<T>(
    req: &Request<T>,
    cluster_id: &str,
    allowed: &[Role],
    is_revoked: impl Fn(&str) -> bool,
) -> Result<Identity, Status> {
    let Some(certs) = req.peer_certs() else {
        return Err(Status::unauthenticated(
            "this call needs a node certificate of this cluster",
        ));
    };
    let Some(leaf) = certs.first() else {
        return Err(Status::unauthenticated(
            "this call needs a node certificate of this cluster",
        ));
    };
    let id = parse_identity(leaf)
        .map_err(|e| Status::unauthenticated(format!("unusable client certificate: {e}")))?;
    if id.cluster_id != cluster_id {
        return Err(Status::unauthenticated(format!(
            "certificate of node {} belongs to another cluster",
            id.node_id
        )));
    }
    if is_revoked(&id.node_id) {
        return Err(Status::permission_denied(format!(
            "node {} has been removed from the cluster",
            id.node_id
        )));
    }
    if !allowed.contains(&id.role) {
        let need: Vec<&str> = allowed.iter().map(|r| r.as_str()).collect();
        return Err(Status::permission_denied(format!(
            "permission denied: node {} is a {}, this call needs a {}",
            id.node_id,
            id.role,
            need.join(" or ")
        )));
    }
    Ok(id)
}

type ClusterIdFn = dyn Fn() -> String + Send + Sync;
type RevokedFn = dyn Fn(&str) -> bool + Send + Sync;

/// A tonic interceptor applying [`authorize`] to every call of a service, for services whose
/// crate cannot call `authorize` itself (e.g. the Raft transport in shoal-store):
/// `InterceptedService::new(svc, RoleGuard::new(&[Role::Manager], cluster_id, is_revoked))`.
/// The caller's [`Identity`] is put into the request extensions for the handler.
///
/// For the Raft transport take the cluster ID from this node's own certificate, not from the
/// replicated Cluster object: a manager that has just joined has no Raft state yet and must
/// still accept the leader's first messages.
#[derive(Clone)]
pub struct RoleGuard {
    allowed: Vec<Role>,
    cluster_id: Arc<ClusterIdFn>,
    is_revoked: Arc<RevokedFn>,
}

impl RoleGuard {
    pub fn new(
        allowed: &[Role],
        cluster_id: impl Fn() -> String + Send + Sync + 'static,
        is_revoked: impl Fn(&str) -> bool + Send + Sync + 'static,
    ) -> RoleGuard {
        RoleGuard {
            allowed: allowed.to_vec(),
            cluster_id: Arc::new(cluster_id),
            is_revoked: Arc::new(is_revoked),
        }
    }
}

impl std::fmt::Debug for RoleGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RoleGuard")
            .field("allowed", &self.allowed)
            .finish_non_exhaustive()
    }
}

impl Interceptor for RoleGuard {
    fn call(&mut self, mut req: Request<()>) -> Result<Request<()>, Status> {
        let cluster_id = (self.cluster_id)();
        let id = authorize(&req, &cluster_id, &self.allowed, |n| (self.is_revoked)(n))?;
        req.extensions_mut().insert(id);
        Ok(req)
    }
}
