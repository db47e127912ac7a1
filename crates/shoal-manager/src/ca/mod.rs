//! Cluster PKI and transport security for the cluster port (TCP 2377).
//!
//! - [`RootCa`] / [`NodeKey`]: the cluster root CA (ECDSA P-256, CN `swarm-ca`) and node keys;
//!   node certificates carry CN = node ID, OU = role, O = cluster ID ([`Identity`]).
//! - [`JoinToken`]: `SWMTKN-1-<CA digest>-<secret>`; the digest pins the root CA for a joiner.
//! - [`tls`]: tonic server/client TLS configs, and the pinned-root client used while joining.
//! - [`authorize`]: peer certificate to identity and role checks for RPC handlers.
//! - [`NodeCaService`] / [`join_bootstrap`] / [`renew`]: the NodeCA gRPC service and its client.
//! - [`Kek`] / [`Dek`] / [`seal`] / [`open`], [`NodeSecrets`], [`save_credentials`]: at-rest
//!   encryption (autolock) and the on-disk layout of a node's credentials.

mod error;
mod pki;
mod token;

pub use error::CaError;
pub use pki::{
    CA_COMMON_NAME, CA_VALIDITY, Csr, DEFAULT_NODE_CERT_VALIDITY, Identity, MIN_NODE_CERT_VALIDITY,
    NodeKey, Role, RootCa, renewal_delay, renewal_due,
};
pub use token::{JOIN_TOKEN_PREFIX, JoinToken};
