//! The API error every layer returns: a kind (mapped to an HTTP status) and a message.

use serde::{Deserialize, Serialize};

/// Error class; decides the HTTP status the Docker CLI branches on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ErrorKind {
    NotFound,
    InvalidArgument,
    Conflict,
    Unavailable,
    PermissionDenied,
    /// Stale `?version=` on an update (moby answers 500 "update out of sequence").
    OutOfSequence,
    Internal,
}

impl ErrorKind {
    pub fn status_code(self) -> u16 {
        match self {
            ErrorKind::NotFound => 404,
            ErrorKind::InvalidArgument => 400,
            ErrorKind::Conflict => 409,
            ErrorKind::Unavailable => 503,
            ErrorKind::PermissionDenied => 403,
            ErrorKind::OutOfSequence | ErrorKind::Internal => 500,
        }
    }
}

/// An error with a kind and a user-facing message (serialized as JSON across gRPC).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{message}")]
pub struct ApiError {
    pub kind: ErrorKind,
    pub message: String,
}

/// The text of a stale-version update error, as moby prints it.
pub const OUT_OF_SEQUENCE: &str = "update out of sequence";

impl ApiError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        ApiError {
            kind,
            message: message.into(),
        }
    }
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::NotFound, message)
    }
    pub fn invalid_argument(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::InvalidArgument, message)
    }
    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Conflict, message)
    }
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Unavailable, message)
    }
    pub fn permission_denied(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::PermissionDenied, message)
    }
    pub fn out_of_sequence() -> Self {
        Self::new(ErrorKind::OutOfSequence, OUT_OF_SEQUENCE)
    }
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Internal, message)
    }

    pub fn status_code(&self) -> u16 {
        self.kind.status_code()
    }

    /// The Docker error body `{"message":"..."}`.
    pub fn to_body(&self) -> String {
        serde_json::json!({ "message": self.message }).to_string()
    }

    /// Same error with context in front of the message ("creating service: ...").
    pub fn context(self, ctx: &str) -> Self {
        ApiError {
            kind: self.kind,
            message: format!("{ctx}: {}", self.message),
        }
    }
}

impl From<serde_json::Error> for ApiError {
    fn from(e: serde_json::Error) -> Self {
        ApiError::invalid_argument(format!("invalid JSON: {e}"))
    }
}

/// Short alias used across crates.
pub type ApiResult<T> = Result<T, ApiError>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_and_json() {
        assert_eq!(ApiError::not_found("x").status_code(), 404);
        assert_eq!(ApiError::invalid_argument("x").status_code(), 400);
        assert_eq!(ApiError::conflict("x").status_code(), 409);
        assert_eq!(ApiError::unavailable("x").status_code(), 503);
        assert_eq!(ApiError::permission_denied("x").status_code(), 403);
        assert_eq!(ApiError::internal("x").status_code(), 500);
        let e = ApiError::out_of_sequence();
        assert_eq!(e.status_code(), 500);
        assert_eq!(e.to_string(), "update out of sequence");
        assert_eq!(e.to_body(), r#"{"message":"update out of sequence"}"#);
        let j = serde_json::to_string(&e).unwrap();
        let back: ApiError = serde_json::from_str(&j).unwrap();
        assert_eq!(back, e);
    }
}
