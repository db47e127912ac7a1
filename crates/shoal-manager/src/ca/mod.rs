//! Cluster PKI and transport security for the cluster port (TCP 2377).
//!
//! - [`RootCa`] / [`NodeKey`]: the cluster root CA (ECDSA P-256, CN `swarm-ca`) and node keys;
//!   node certificates carry CN = node ID, OU = role, O = cluster ID ([`Identity`]).
//! - [`JoinToken`]: `SWMTKN-1-<CA digest>-<secret>`; the digest pins the root CA for a joiner.
//! - [`tls`]: tonic server/client TLS configs, and the pinned-root client used while joining.
//! - [`authorize`] / [`RoleGuard`]: peer certificate to identity and role checks for RPC
//!   handlers, or as an interceptor around a whole service.
//! - [`NodeCaService`] / [`join_bootstrap`] / [`renew`]: the NodeCA gRPC service and its client.
//! - [`Kek`] / [`Dek`] / [`seal`] / [`open`], [`NodeSecrets`], [`save_credentials`]: at-rest
//!   encryption (autolock) and the on-disk layout of a node's credentials.

mod authz;
mod client;
mod error;
mod pki;
mod seal;
mod service;
mod store;
pub mod tls;
mod token;

pub use authz::{RoleGuard, authorize};
pub use client::{JoinParams, NodeCredentials, join_bootstrap, renew};
pub use error::CaError;
pub use pki::{
    CA_COMMON_NAME, CA_VALIDITY, Csr, DEFAULT_NODE_CERT_VALIDITY, Identity, MIN_NODE_CERT_VALIDITY,
    NodeKey, Role, RootCa, parse_identity, renewal_delay, renewal_due,
};
pub use seal::{Dek, Kek, SealKey, UNLOCK_KEY_PREFIX, UnlockKey, open, seal};
pub use service::{JoinInfo, NodeCaService, NodeRegistrar};
pub use store::{
    CA_CERT_FILE, CERTIFICATES_DIR, NODE_CERT_FILE, NODE_KEY_FILE, NodeSecrets, credentials_exist,
    load_credentials, save_credentials,
};
pub use token::{JOIN_TOKEN_PREFIX, JoinToken};
