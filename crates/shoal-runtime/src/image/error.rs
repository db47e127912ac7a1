//! The one error type of the image module; messages follow Docker's where Docker has one.

use std::io;

/// Everything that can go wrong with images. Every variant names the thing it is about so
/// the API layer can hand the message to the user unchanged.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    /// A local image (by name, ID or ID prefix) that is not in the store.
    #[error("No such image: {0}")]
    NotFound(String),
    /// The registry has no manifest for this reference.
    #[error("manifest for {reference} not found: {detail}")]
    RemoteNotFound { reference: String, detail: String },
    #[error("invalid reference format: {0}")]
    InvalidReference(String),
    #[error("registry {registry} unreachable: {reason}")]
    RegistryUnreachable { registry: String, reason: String },
    #[error("{action} access denied for {repository} on {registry}: {reason}")]
    AuthDenied {
        action: &'static str,
        registry: String,
        repository: String,
        reason: String,
    },
    #[error("registry {registry}: {method} {url} returned {status}: {message}")]
    Registry {
        registry: String,
        method: &'static str,
        url: String,
        status: u16,
        message: String,
    },
    #[error("digest mismatch for {what}: expected {expected}, got {actual}")]
    DigestMismatch {
        what: String,
        expected: String,
        actual: String,
    },
    #[error("layer {layer} entry {entry} escapes the root: {reason}")]
    PathEscape {
        layer: String,
        entry: String,
        reason: String,
    },
    #[error("invalid layer {layer}: {reason}")]
    InvalidLayer { layer: String, reason: String },
    #[error("corrupt archive: {0}")]
    CorruptArchive(String),
    #[error("invalid image data: {0}")]
    InvalidImage(String),
    #[error("conflict: {0}")]
    Conflict(String),
    #[error("invalid change \"{change}\": {reason}")]
    InvalidChange { change: String, reason: String },
    #[error("unsupported: {0}")]
    Unsupported(String),
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: io::Error,
    },
}

impl ImageError {
    /// Wraps an I/O error with what was being done, e.g. "writing blob sha256:…".
    pub fn io(context: impl Into<String>) -> impl FnOnce(io::Error) -> ImageError {
        let context = context.into();
        move |source| ImageError::Io { context, source }
    }

    /// True for both "no such local image" and "registry has no such manifest": the API maps
    /// both to 404.
    pub fn is_not_found(&self) -> bool {
        matches!(
            self,
            ImageError::NotFound(_) | ImageError::RemoteNotFound { .. }
        )
    }
}

pub type Result<T, E = ImageError> = std::result::Result<T, E>;
