//! The node side of the CA: joining with a token, renewing, and the credentials a node holds.

use std::fmt;
use std::time::Duration;

use shoal_proto::ca::node_ca_client::NodeCaClient;
use shoal_proto::ca::{Empty, IssueRequest, IssueResponse, RenewRequest};
use tonic::transport::Channel;

use super::error::{CaError, chain};
use super::pki::{Identity, NodeKey, Role, pem_cert_der, sha256};
use super::tls::{pinned_endpoint, verify_node_cert};
use super::token::JoinToken;

/// Timeout of each CA call made while joining or renewing.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// A node's key, certificate and cluster root, with the identity its certificate carries.
#[derive(Clone, PartialEq, Eq)]
pub struct NodeCredentials {
    pub key_pem: String,
    pub cert_pem: String,
    pub ca_pem: String,
    pub node_id: String,
    pub role: Role,
    pub cluster_id: String,
}

impl fmt::Debug for NodeCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NodeCredentials")
            .field("node_id", &self.node_id)
            .field("role", &self.role)
            .field("cluster_id", &self.cluster_id)
            .finish_non_exhaustive()
    }
}

impl NodeCredentials {
    /// Builds credentials from PEMs, reading the identity from the certificate and checking
    /// that the key belongs to it.
    pub fn from_parts(
        key_pem: String,
        cert_pem: String,
        ca_pem: String,
    ) -> Result<NodeCredentials, CaError> {
        let id = Identity::from_pem(&cert_pem)?;
        // Checked at a point inside the certificate's validity, not "now": credentials of a
        // node that was down past expiry still load (it then has to rejoin), but a certificate
        // that the root did not sign never does.
        verify_node_cert(
            &pem_cert_der(&cert_pem)?,
            &pem_cert_der(&ca_pem)?,
            id.not_before
                + id.not_after
                    .duration_since(id.not_before)
                    .unwrap_or_default()
                    / 2,
        )?;
        if !NodeKey::from_pem(&key_pem)?.matches_cert(&cert_pem)? {
            return Err(CaError::Cert(
                "the node key does not belong to the node certificate".into(),
            ));
        }
        Ok(NodeCredentials {
            key_pem,
            cert_pem,
            ca_pem,
            node_id: id.node_id,
            role: id.role,
            cluster_id: id.cluster_id,
        })
    }

    /// True if the node certificate has expired (the node must rejoin with a token).
    pub fn is_expired(&self) -> Result<bool, CaError> {
        Ok(self.identity()?.not_after <= std::time::SystemTime::now())
    }

    /// The identity (with validity) of the node certificate.
    pub fn identity(&self) -> Result<Identity, CaError> {
        Identity::from_pem(&self.cert_pem)
    }

    /// sha256 of the root CA certificate.
    pub fn ca_digest(&self) -> Result<[u8; 32], CaError> {
        Ok(sha256(&pem_cert_der(&self.ca_pem)?))
    }
}

/// What a joining node tells the cluster about itself.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JoinParams {
    pub hostname: String,
    pub advertise_addr: String,
    pub listen_addr: String,
    pub data_path_addr: String,
    /// "active" (default when empty), "pause" or "drain".
    pub availability: String,
}

fn rpc_error(what: &str, s: tonic::Status) -> CaError {
    match s.code() {
        tonic::Code::PermissionDenied | tonic::Code::InvalidArgument => {
            CaError::Rpc(s.message().to_string())
        }
        _ => CaError::Rpc(format!("{what}: {} ({:?})", s.message(), s.code())),
    }
}

/// Joins a cluster through the manager at `addr` ("host:port") with a join token:
/// pins the root CA to the token's digest (inside the TLS handshake and again on the
/// downloaded certificate), then sends a CSR with the token and returns the signed
/// credentials. Nothing is written to disk; see [`super::save_credentials`].
pub async fn join_bootstrap(
    addr: &str,
    token: &str,
    params: &JoinParams,
) -> Result<NodeCredentials, CaError> {
    let tok = JoinToken::parse(token)?;
    let channel = pinned_endpoint(addr, tok.ca_digest())?
        .timeout(CALL_TIMEOUT)
        .connect()
        .await
        .map_err(|e| {
            let msg = chain(&e);
            if msg.contains("does not match the join token") {
                CaError::Pinning(format!("manager {addr}: {msg}"))
            } else {
                CaError::Rpc(format!("cannot connect to manager {addr}: {msg}"))
            }
        })?;
    let mut client = NodeCaClient::new(channel);
    let root_pem = client
        .get_root_ca_certificate(Empty {})
        .await
        .map_err(|s| rpc_error("download root CA", s))?
        .into_inner()
        .cert_pem;
    let root_der = pem_cert_der(&root_pem)?;
    if !tok.ca_digest_matches_der(&root_der) {
        return Err(CaError::Pinning(format!(
            "manager {addr} sent a root CA whose digest {} is not the join token's",
            hex::encode(sha256(&root_der))
        )));
    }
    let key = NodeKey::generate()?;
    let resp = client
        .issue_node_certificate(IssueRequest {
            csr_pem: key.csr_pem()?,
            token: tok.to_string(),
            availability: params.availability.clone(),
            hostname: params.hostname.clone(),
            advertise_addr: params.advertise_addr.clone(),
            listen_addr: params.listen_addr.clone(),
            data_path_addr: params.data_path_addr.clone(),
        })
        .await
        .map_err(|s| rpc_error("join", s))?
        .into_inner();
    finish(key, resp, root_pem)
}

/// Checks an IssueResponse against the key it was requested for and the root we trust.
fn finish(key: NodeKey, resp: IssueResponse, root_pem: String) -> Result<NodeCredentials, CaError> {
    let creds = NodeCredentials::from_parts(key.key_pem(), resp.cert_pem, root_pem)?;
    if creds.node_id != resp.node_id || creds.cluster_id != resp.cluster_id {
        return Err(CaError::Cert(format!(
            "the manager's answer does not match the certificate it signed (node {} / {})",
            resp.node_id, creds.node_id
        )));
    }
    Ok(creds)
}

/// Renews this node's certificate over an mTLS `channel` to a manager (see
/// [`super::tls::connect`]), with a fresh key. The new certificate carries the role the
/// cluster currently assigns the node, which may differ from `current.role`.
pub async fn renew(
    channel: Channel,
    current: &NodeCredentials,
) -> Result<NodeCredentials, CaError> {
    let key = NodeKey::generate()?;
    let resp = NodeCaClient::new(channel)
        .renew_node_certificate(RenewRequest {
            csr_pem: key.csr_pem()?,
        })
        .await
        .map_err(|s| rpc_error("renew certificate", s))?
        .into_inner();
    // Root rotation is not supported: the root must stay the one we already trust.
    if pem_cert_der(&resp.ca_pem)? != pem_cert_der(&current.ca_pem)? {
        return Err(CaError::Cert(
            "the manager answered with a different root CA".into(),
        ));
    }
    let creds = finish(key, resp, current.ca_pem.clone())?;
    if creds.node_id != current.node_id || creds.cluster_id != current.cluster_id {
        return Err(CaError::Cert(format!(
            "renewed certificate is for node {} in cluster {}, expected {} in {}",
            creds.node_id, creds.cluster_id, current.node_id, current.cluster_id
        )));
    }
    Ok(creds)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ca::pki::{Csr, RootCa};

    #[test]
    fn expired_credentials_still_load_and_report_expiry() {
        let ca = RootCa::generate().unwrap();
        let key = NodeKey::generate().unwrap();
        let csr = Csr::parse(&key.csr_pem().unwrap()).unwrap();
        let now = time::OffsetDateTime::now_utc();
        let cert = ca
            .sign_node_cert(
                &csr,
                "oldnode",
                Role::Worker,
                "c1",
                now - time::Duration::days(100),
                now - time::Duration::days(10),
            )
            .unwrap();
        let creds =
            NodeCredentials::from_parts(key.key_pem(), cert, ca.cert_pem().to_string()).unwrap();
        assert!(creds.is_expired().unwrap());
        // A TLS peer would refuse it now.
        let err = verify_node_cert(
            &pem_cert_der(&creds.cert_pem).unwrap(),
            ca.cert_der(),
            std::time::SystemTime::now(),
        )
        .unwrap_err();
        assert!(err.to_string().contains("not valid"), "{err}");
    }
}
