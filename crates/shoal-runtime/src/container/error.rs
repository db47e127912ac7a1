//! Container errors, grouped the way the API answers them (400 / 404 / 409 / 500).

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Bad input: nothing was changed (HTTP 400).
    #[error("{0}")]
    InvalidArgument(String),
    /// No such container or volume (HTTP 404).
    #[error("{0}")]
    NotFound(String),
    /// The request conflicts with the current state (HTTP 409).
    #[error("{0}")]
    Conflict(String),
    /// The container runtime (runc/crun) or the monitor failed.
    #[error("{0}")]
    Runtime(String),
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
}

impl Error {
    pub fn invalid(msg: impl Into<String>) -> Error {
        Error::InvalidArgument(msg.into())
    }

    pub fn io(context: impl Into<String>, source: std::io::Error) -> Error {
        Error::Io {
            context: context.into(),
            source,
        }
    }

    /// The HTTP status the Docker API uses for this kind of error.
    pub fn http_status(&self) -> u16 {
        match self {
            Error::InvalidArgument(_) => 400,
            Error::NotFound(_) => 404,
            Error::Conflict(_) => 409,
            Error::Runtime(_) | Error::Io { .. } => 500,
        }
    }
}

/// Attach a context string to io errors.
pub(crate) trait IoContext<T> {
    fn ctx(self, what: impl FnOnce() -> String) -> Result<T>;
}

impl<T> IoContext<T> for std::io::Result<T> {
    fn ctx(self, what: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|e| Error::io(what(), e))
    }
}
