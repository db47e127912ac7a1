//! One error type for the CA module, with its mapping onto gRPC status codes.

use tonic::{Code, Status};

#[derive(Debug, thiserror::Error)]
pub enum CaError {
    /// Input (PEM, token, CSR, key string) that cannot be parsed or is out of range.
    #[error("{0}")]
    Invalid(String),
    /// A join token that is well formed but not valid for this cluster.
    #[error("invalid join token{0}")]
    InvalidToken(String),
    /// The root CA presented by a manager does not match the digest in the join token.
    #[error("root CA pinning failed: {0}")]
    Pinning(String),
    /// Sealed data could not be opened: wrong key or tampered data.
    #[error("cannot decrypt {0}: wrong key or the data was modified")]
    Decrypt(&'static str),
    /// The node's secrets are sealed and no unlock key was given.
    #[error("swarm is locked: use `shoal swarm unlock`")]
    Locked,
    /// No credentials on disk (the node is not part of a swarm).
    #[error("no node credentials in {0}")]
    NotFound(String),
    #[error("certificate error: {0}")]
    Cert(String),
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    /// A gRPC call to a manager failed (connection, TLS or the manager's answer).
    #[error("{0}")]
    Rpc(String),
}

impl CaError {
    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        CaError::Io {
            context: context.into(),
            source,
        }
    }
}

impl From<rcgen::Error> for CaError {
    fn from(e: rcgen::Error) -> Self {
        CaError::Cert(e.to_string())
    }
}

impl From<CaError> for Status {
    fn from(e: CaError) -> Self {
        let code = match &e {
            CaError::Invalid(_) => Code::InvalidArgument,
            CaError::InvalidToken(_) | CaError::Pinning(_) => Code::PermissionDenied,
            CaError::Locked => Code::FailedPrecondition,
            CaError::NotFound(_) => Code::NotFound,
            CaError::Decrypt(_) | CaError::Cert(_) | CaError::Io { .. } | CaError::Rpc(_) => {
                Code::Internal
            }
        };
        Status::new(code, e.to_string())
    }
}

/// Formats an error with all its sources: tonic's transport error alone says only
/// "transport error", the useful part (TLS alert, refused connection) is in the chain.
pub(crate) fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        let msg = s.to_string();
        if !out.contains(&msg) {
            out.push_str(": ");
            out.push_str(&msg);
        }
        cur = s.source();
    }
    out
}
