//! The executor interface the agent drives, following the reference task lifecycle:
//! prepare (create) → start (and wait for healthy) → wait → shutdown (signal, grace,
//! SIGKILL) → remove. Errors say whether the task never started (→ REJECTED) or failed
//! after starting (→ FAILED), or whether trying again may help.

use std::time::Duration;

use tokio::sync::watch;

use super::config::ContainerConfig;
use super::error::Error;
use super::runtime::{RemoveOptions, Runtime, WaitCondition};
use super::state::{HealthStatus, Status};

#[derive(Debug, thiserror::Error)]
pub enum ExecutorError {
    /// Will not work if retried as is. `before_start`: the container never ran (the task is
    /// rejected); otherwise it failed after starting.
    #[error("{message}")]
    Fatal { before_start: bool, message: String },
    /// A transient problem (runtime or I/O error); the same call may succeed later.
    #[error("{0}")]
    Retryable(String),
}

impl ExecutorError {
    fn from_err(e: Error, before_start: bool) -> ExecutorError {
        match e {
            Error::InvalidArgument(m) | Error::NotFound(m) | Error::Conflict(m) => {
                ExecutorError::Fatal {
                    before_start,
                    message: m,
                }
            }
            other => ExecutorError::Retryable(other.to_string()),
        }
    }

    pub fn is_fatal(&self) -> bool {
        matches!(self, ExecutorError::Fatal { .. })
    }
}

/// How a task's container ended.
#[derive(Clone, Debug, PartialEq)]
pub struct TaskExit {
    pub exit_code: i32,
    pub oom_killed: bool,
    pub error: Option<String>,
}

#[derive(Clone)]
pub struct Executor {
    rt: Runtime,
}

impl Executor {
    pub fn new(rt: Runtime) -> Executor {
        Executor { rt }
    }

    pub fn runtime(&self) -> &Runtime {
        &self.rt
    }

    /// Creates the container (the agent pulls the image and fills in the layers first).
    pub async fn prepare(&self, cfg: ContainerConfig) -> Result<String, ExecutorError> {
        self.rt
            .create(cfg)
            .await
            .map_err(|e| ExecutorError::from_err(e, true))
    }

    /// Starts the container; with a healthcheck, returns once it is healthy. A start that
    /// fails is fatal before start; turning unhealthy or exiting first is fatal after.
    pub async fn start(&self, id: &str) -> Result<(), ExecutorError> {
        if let Err(e) = self.rt.start(id).await {
            return Err(match e {
                Error::Runtime(m) => ExecutorError::Fatal {
                    before_start: true,
                    message: format!("starting container failed: {m}"),
                },
                other => ExecutorError::from_err(other, true),
            });
        }
        let info = self
            .rt
            .inspect(id)
            .map_err(|e| ExecutorError::from_err(e, false))?;
        if info.state.health.is_none() {
            return Ok(());
        }
        let mut rx: watch::Receiver<u64> = self
            .rt
            .subscribe(id)
            .map_err(|e| ExecutorError::from_err(e, false))?;
        loop {
            let st = self
                .rt
                .inspect(id)
                .map_err(|e| ExecutorError::from_err(e, false))?
                .state;
            if st.status != Status::Running {
                return Err(ExecutorError::Fatal {
                    before_start: false,
                    message: format!(
                        "container exited with code {} before becoming healthy",
                        st.exit_code
                    ),
                });
            }
            match st.health.map(|h| h.status) {
                Some(HealthStatus::Healthy) | None | Some(HealthStatus::None) => return Ok(()),
                Some(HealthStatus::Unhealthy) => {
                    return Err(ExecutorError::Fatal {
                        before_start: false,
                        message: "container is unhealthy".into(),
                    });
                }
                Some(HealthStatus::Starting) => {}
            }
            if rx.changed().await.is_err() {
                return Err(ExecutorError::Fatal {
                    before_start: false,
                    message: "container was removed".into(),
                });
            }
        }
    }

    /// Waits for the container to exit.
    pub async fn wait(&self, id: &str) -> Result<TaskExit, ExecutorError> {
        let st = self
            .rt
            .wait(id, WaitCondition::NotRunning)
            .await
            .map_err(|e| ExecutorError::from_err(e, false))?;
        Ok(TaskExit {
            exit_code: st.exit_code,
            oom_killed: st.oom_killed,
            error: st.error,
        })
    }

    /// Stop signal, `grace`, then SIGKILL.
    pub async fn shutdown(&self, id: &str, grace: Duration) -> Result<(), ExecutorError> {
        self.rt
            .stop(id, Some(grace))
            .await
            .map_err(|e| ExecutorError::from_err(e, false))
    }

    /// Removes the container (killing it if still running) and its anonymous volumes.
    pub async fn remove(&self, id: &str) -> Result<(), ExecutorError> {
        match self
            .rt
            .remove(
                id,
                RemoveOptions {
                    force: true,
                    volumes: true,
                },
            )
            .await
        {
            Ok(()) | Err(Error::NotFound(_)) => Ok(()),
            Err(e) => Err(ExecutorError::from_err(e, false)),
        }
    }
}
