//! Errors of loading and converting compose files. Every variant names where the problem is
//! (file and line/column for YAML syntax, the key path for schema problems) and why.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum ComposeError {
    /// The file is not valid YAML.
    #[error("{file}:{line}:{column}: {message}")]
    Syntax {
        file: String,
        line: usize,
        column: usize,
        message: String,
    },
    /// A key is unknown, has the wrong type or an invalid value. `path` is like
    /// `services.web.ports[0]`.
    #[error("{}{}{message}", file_prefix(file), path_prefix(path))]
    Schema {
        file: Option<String>,
        path: String,
        message: String,
    },
    /// A variable could not be substituted (a required variable is unset, or bad `${` syntax).
    #[error("{}{path}: {message}", file_prefix(file))]
    Interpolation {
        file: Option<String>,
        path: String,
        message: String,
    },
    /// A `.env` file line could not be read.
    #[error("{file}:{line}: {message}")]
    EnvFile {
        file: String,
        line: usize,
        message: String,
    },
    /// A service refers to a network, volume, secret or config the file does not declare.
    #[error("service {service:?} refers to undefined {kind} {name:?}")]
    Undefined {
        service: String,
        kind: &'static str,
        name: String,
    },
    /// An object declared `external` does not exist in the cluster.
    #[error("{kind} {name:?} is declared as external, but could not be found{hint}")]
    MissingExternal {
        kind: &'static str,
        name: String,
        hint: &'static str,
    },
    /// A key that `docker stack deploy` refuses outright (e.g. `extends`).
    #[error("{0}")]
    Forbidden(String),
    /// A converted object that the cluster would refuse (checked before anything is created).
    #[error("{kind} {name:?}: {message}")]
    Rejected {
        kind: &'static str,
        name: String,
        message: String,
    },
    #[error("invalid stack name {name:?}: {reason}")]
    InvalidStackName { name: String, reason: String },
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("no compose file given")]
    NoFiles,
}

fn path_prefix(path: &str) -> String {
    if path.is_empty() || path == "." {
        String::new()
    } else {
        format!("{path}: ")
    }
}

fn file_prefix(file: &Option<String>) -> String {
    match file {
        Some(f) => format!("{f}: "),
        None => String::new(),
    }
}

impl ComposeError {
    pub(crate) fn schema(path: impl Into<String>, message: impl Into<String>) -> Self {
        ComposeError::Schema {
            file: None,
            path: path.into(),
            message: message.into(),
        }
    }

    /// Attaches the file name to errors that were found inside one file.
    pub(crate) fn in_file(self, name: &str) -> Self {
        match self {
            ComposeError::Schema {
                file: None,
                path,
                message,
            } => ComposeError::Schema {
                file: Some(name.to_string()),
                path,
                message,
            },
            ComposeError::Interpolation {
                file: None,
                path,
                message,
            } => ComposeError::Interpolation {
                file: Some(name.to_string()),
                path,
                message,
            },
            other => other,
        }
    }
}
