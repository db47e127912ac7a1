//! A container's observable state (persisted as `state.json`) and the views of it that
//! ps and inspect return.

use std::collections::BTreeMap;
use std::path::PathBuf;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::config::ContainerConfig;

#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    #[default]
    Created,
    Running,
    /// Exited, waiting for the restart policy's delay.
    Restarting,
    Exited,
    /// Being removed.
    Removing,
}

impl Status {
    pub fn as_str(&self) -> &'static str {
        match self {
            Status::Created => "created",
            Status::Running => "running",
            Status::Restarting => "restarting",
            Status::Exited => "exited",
            Status::Removing => "removing",
        }
    }
}

#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum HealthStatus {
    /// No healthcheck configured.
    #[default]
    None,
    Starting,
    Healthy,
    Unhealthy,
}

impl HealthStatus {
    pub fn as_str(&self) -> &'static str {
        match self {
            HealthStatus::None => "none",
            HealthStatus::Starting => "starting",
            HealthStatus::Healthy => "healthy",
            HealthStatus::Unhealthy => "unhealthy",
        }
    }
}

/// One probe result (Docker's `HealthcheckResult`).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct HealthResult {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub exit_code: i32,
    pub output: String,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct Health {
    pub status: HealthStatus,
    pub failing_streak: u32,
    /// The last five results, oldest first.
    pub log: Vec<HealthResult>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct ContainerState {
    pub status: Status,
    /// Host pid of the container's init while running, else 0.
    pub pid: i32,
    pub exit_code: i32,
    /// Why the last start failed, if it did.
    pub error: String,
    pub oom_killed: bool,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    /// Restarts done by the restart policy.
    pub restart_count: u32,
    /// Set by stop (and kill with the stop signal or SIGKILL); cleared by start.
    /// A container stopped this way is never restarted by its policy.
    pub stopped_by_user: bool,
    pub health: Option<Health>,
    /// Pid of the shoal-monitor process while running.
    pub monitor_pid: i32,
}

impl ContainerState {
    pub fn is_running(&self) -> bool {
        self.status == Status::Running
    }
}

/// What `inspect` returns.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ContainerInfo {
    pub id: String,
    pub name: String,
    pub created: DateTime<Utc>,
    pub image: String,
    pub image_id: String,
    /// Entrypoint + cmd as run.
    pub path: String,
    pub args: Vec<String>,
    pub config: ContainerConfig,
    pub state: ContainerState,
    /// The merged rootfs while mounted.
    pub rootfs: PathBuf,
    pub log_path: PathBuf,
    pub hostname_path: PathBuf,
    pub hosts_path: PathBuf,
    pub resolv_conf_path: PathBuf,
    pub cgroup_path: String,
    /// Resolved host paths of the volume mounts: (volume name, target).
    pub volumes: Vec<(String, String)>,
}

/// One row of `ps`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ContainerSummary {
    pub id: String,
    pub name: String,
    pub image: String,
    pub image_id: String,
    pub command: String,
    pub created: DateTime<Utc>,
    pub state: Status,
    /// Human status as `docker ps` prints it ("Up 3 seconds (healthy)", "Exited (0) 1 minute ago").
    pub status: String,
    pub labels: BTreeMap<String, String>,
}

/// `docker ps`-style durations: "Less than a second", "3 seconds", "About a minute", …
pub fn human_duration(secs: i64) -> String {
    let s = secs.max(0);
    match s {
        0 => "Less than a second".into(),
        1 => "1 second".into(),
        2..=59 => format!("{s} seconds"),
        60..=119 => "About a minute".into(),
        120..=3599 => format!("{} minutes", s / 60),
        3600..=7199 => "About an hour".into(),
        7200..=172_799 => format!("{} hours", s / 3600),
        _ => format!("{} days", s / 86_400),
    }
}

pub fn status_text(st: &ContainerState, now: DateTime<Utc>) -> String {
    match st.status {
        Status::Created => "Created".into(),
        Status::Running => {
            let up = st.started_at.map(|t| (now - t).num_seconds()).unwrap_or(0);
            let health = match st.health.as_ref().map(|h| h.status) {
                Some(HealthStatus::Starting) => " (health: starting)",
                Some(HealthStatus::Healthy) => " (healthy)",
                Some(HealthStatus::Unhealthy) => " (unhealthy)",
                _ => "",
            };
            format!("Up {}{health}", human_duration(up))
        }
        Status::Restarting => {
            let ago = st.finished_at.map(|t| (now - t).num_seconds()).unwrap_or(0);
            format!("Restarting ({}) {} ago", st.exit_code, human_duration(ago))
        }
        Status::Exited => {
            let ago = st.finished_at.map(|t| (now - t).num_seconds()).unwrap_or(0);
            format!("Exited ({}) {} ago", st.exit_code, human_duration(ago))
        }
        Status::Removing => "Removal In Progress".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_texts() {
        let now = Utc::now();
        let st = ContainerState {
            status: Status::Running,
            started_at: Some(now - chrono::Duration::seconds(5)),
            health: Some(Health {
                status: HealthStatus::Healthy,
                ..Default::default()
            }),
            ..Default::default()
        };
        assert_eq!(status_text(&st, now), "Up 5 seconds (healthy)");
        let st = ContainerState {
            status: Status::Exited,
            exit_code: 137,
            finished_at: Some(now - chrono::Duration::seconds(90)),
            ..Default::default()
        };
        assert_eq!(status_text(&st, now), "Exited (137) About a minute ago");
    }
}
