//! TLS for the cluster port (tonic 0.14 with rustls and the ring provider).
//!
//! Server names: cluster nodes have no DNS names, and their addresses change. Rather than
//! switch hostname checks off, every node certificate carries its role as a DNS SAN
//! (`swarm-manager` or `swarm-worker`), and clients always verify the server against the name
//! `swarm-manager`. Full WebPKI verification stays on (chain to the cluster root, validity,
//! key usage), and a worker's certificate cannot be used to impersonate a manager.
//!
//! Servers present their certificate followed by the root. That lets a joining node, which
//! trusts nothing yet, pin the root inside the TLS handshake ([`PinnedRootVerifier`]): the
//! join token is then only ever sent over a connection already verified to the pinned root.
//!
//! Client certificates are optional at the TLS layer (a joining node has none) but, when
//! presented, must chain to the cluster root; handlers decide per RPC with
//! [`super::authorize`].

use std::sync::Arc;
use std::time::Duration;

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::{DigitallySignedStruct, RootCertStore, SignatureScheme};
use tonic::transport::{
    Certificate, Channel, ClientTlsConfig, Endpoint, Identity as TlsIdentity, ServerTlsConfig,
};

use super::client::NodeCredentials;
use super::error::{CaError, chain};
use super::pki::{Role, sha256};

/// The server name clients verify manager certificates against (a DNS SAN in every manager
/// certificate).
pub const MANAGER_SERVER_NAME: &str = "swarm-manager";
/// Connect timeout for cluster connections.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Checks that `cert_der` is a node certificate signed by the root `ca_der` (signature, key
/// usage, chain) as a TLS peer would, at time `at`.
pub(crate) fn verify_node_cert(
    cert_der: &CertificateDer<'_>,
    ca_der: &CertificateDer<'_>,
    at: std::time::SystemTime,
) -> Result<(), CaError> {
    let mut roots = RootCertStore::empty();
    roots
        .add(ca_der.clone().into_owned())
        .map_err(|e| CaError::Cert(format!("unusable root CA: {e}")))?;
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider())
        .build()
        .map_err(|e| CaError::Cert(format!("unusable root CA: {e}")))?;
    let secs = at.duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    verifier
        .verify_client_cert(cert_der, &[], UnixTime::since_unix_epoch(secs))
        .map(|_| ())
        .map_err(|e| CaError::Cert(format!("node certificate not valid for this root CA: {e}")))
}

/// TLS config for a manager serving the cluster port: presents the node certificate (and the
/// root, for pinning joiners), accepts clients with no certificate or one from this cluster.
pub fn server_tls_config(creds: &NodeCredentials) -> Result<ServerTlsConfig, CaError> {
    if creds.role != Role::Manager {
        return Err(CaError::Invalid(format!(
            "only managers serve the cluster port; this node's certificate is a {} certificate",
            creds.role
        )));
    }
    let chain_pem = format!("{}\n{}", creds.cert_pem.trim_end(), creds.ca_pem);
    Ok(ServerTlsConfig::new()
        .identity(TlsIdentity::from_pem(chain_pem, &creds.key_pem))
        .client_ca_root(Certificate::from_pem(&creds.ca_pem))
        .client_auth_optional(true))
}

/// TLS config for a node dialing a manager with its certificate.
pub fn client_tls_config(creds: &NodeCredentials) -> ClientTlsConfig {
    ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(&creds.ca_pem))
        .identity(TlsIdentity::from_pem(&creds.cert_pem, &creds.key_pem))
        .domain_name(MANAGER_SERVER_NAME)
}

fn uri(addr: &str) -> Result<Endpoint, CaError> {
    let addr = addr.trim();
    if addr.is_empty() {
        return Err(CaError::Invalid("empty manager address".into()));
    }
    let uri = if addr.contains("://") {
        addr.to_string()
    } else {
        format!("https://{addr}")
    };
    Endpoint::from_shared(uri)
        .map(|e| e.connect_timeout(CONNECT_TIMEOUT))
        .map_err(|e| CaError::Invalid(format!("invalid manager address {addr:?}: {e}")))
}

/// An mTLS endpoint for `addr` ("host:port"); connect it (or `connect_lazy`) to get a channel.
pub fn endpoint(addr: &str, creds: &NodeCredentials) -> Result<Endpoint, CaError> {
    uri(addr)?
        .tls_config(client_tls_config(creds))
        .map_err(|e| CaError::Invalid(format!("TLS config for {addr}: {}", chain(&e))))
}

/// Connects to a manager with mTLS.
pub async fn connect(addr: &str, creds: &NodeCredentials) -> Result<Channel, CaError> {
    endpoint(addr, creds)?
        .connect()
        .await
        .map_err(|e| CaError::Rpc(format!("cannot connect to manager {addr}: {}", chain(&e))))
}

/// An endpoint that trusts only a root whose sha256 is `ca_digest` (the join token's pin).
/// No client certificate is presented.
pub fn pinned_endpoint(addr: &str, ca_digest: [u8; 32]) -> Result<Endpoint, CaError> {
    uri(addr)?
        .tls_config_with_verifier(
            ClientTlsConfig::new().domain_name(MANAGER_SERVER_NAME),
            Arc::new(PinnedRootVerifier::new(ca_digest)),
        )
        .map_err(|e| CaError::Invalid(format!("TLS config for {addr}: {}", chain(&e))))
}

/// Server verifier for joining: the server's chain must contain a certificate whose sha256 is
/// the pinned digest, and the server certificate must verify against that root as usual.
#[derive(Debug)]
pub struct PinnedRootVerifier {
    digest: [u8; 32],
    provider: Arc<CryptoProvider>,
}

impl PinnedRootVerifier {
    pub fn new(ca_digest: [u8; 32]) -> PinnedRootVerifier {
        PinnedRootVerifier {
            digest: ca_digest,
            provider: provider(),
        }
    }
}

impl ServerCertVerifier for PinnedRootVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let Some(root) = intermediates.iter().find(|c| sha256(c) == self.digest) else {
            return Err(rustls::Error::General(format!(
                "the manager's root CA does not match the join token (expected CA digest {}): \
                 wrong token or not the right cluster",
                hex::encode(self.digest)
            )));
        };
        let mut roots = RootCertStore::empty();
        roots.add(root.clone().into_owned())?;
        let others: Vec<CertificateDer<'_>> = intermediates
            .iter()
            .filter(|c| sha256(c) != self.digest)
            .cloned()
            .collect();
        let inner =
            WebPkiServerVerifier::builder_with_provider(Arc::new(roots), self.provider.clone())
                .build()
                .map_err(|e| rustls::Error::General(format!("pinned root verifier: {e}")))?;
        inner.verify_server_cert(end_entity, &others, server_name, ocsp_response, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}
