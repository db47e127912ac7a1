//! Containers on a node: overlayfs rootfs, OCI bundle, runc/crun started under a
//! per-container `shoal-monitor`, logs, exec, healthchecks, restart policies, named
//! volumes, and the executor interface the agent drives.
//!
//! Layout on disk (one daemon):
//! * `<root>/<id>/` — `container.json` (config), `state.json`, `log` (JSON lines written by
//!   the monitor), `exit` (written by the monitor), `monitor.pid`, `hostname`, `hosts`,
//!   `resolv.conf`, overlay `upper/` and `work/`;
//! * `<root>/volumes/<name>/` — named volumes (`_data` + `volume.json`);
//! * `<run_root>/<id>/` — the OCI bundle (`config.json`, `rootfs/` mount point),
//!   `container.pid`, the `secrets/` tmpfs;
//! * `<run_root>/runc/` — the runtime's own state (`--root`);
//! * cgroups under `<cgroup_parent>/<id>`.
//!
//! Every path and cgroup is per daemon, so several daemons on one machine never collide.

mod config;
mod docker;
mod error;
mod exec;
mod executor;
mod health;
mod host_check;
mod logs;
mod rootfs;
mod runc;
mod runtime;
mod seccomp;
mod signal;
mod spec;
mod state;
mod top;
mod users;
mod volumes;

pub use config::{
    ContainerConfig, DEFAULT_STOP_TIMEOUT, HealthConfig, ImageDefaults, MountKind, MountSpec,
    NetworkMode, Resources, RestartPolicy, SecretFile, parse_bytes, parse_cpus, parse_duration,
    parse_env_file, validate_container_name, validate_volume_name,
};
pub use docker::{ResolvedImage, from_create_request, health_from_wire};
pub use error::{Error, Result};
pub use exec::{ExecInfo, ExecOutputStream, ExecSpec};
pub use executor::{Executor, ExecutorError, TaskExit};
pub use host_check::{CgroupLayout, cgroup_layout, check_runtime, find_binary};
pub use logs::{LogOptions, LogRecord, LogStream, LogStreamBox};
pub use runtime::{
    ExecOptions, ExecOutput, ExitStatus, RemoveOptions, RestoreReport, Runtime, RuntimeOptions,
    WaitCondition, remove_cgroup_parent,
};
pub use signal::{parse_signal, signal_name};
pub use spec::{DEFAULT_CAPS, capability_set, parse_capability};
pub use state::{
    ContainerInfo, ContainerState, ContainerSummary, Health, HealthResult, HealthStatus, Status,
};
pub use top::TopOutput;
pub use users::{ResolvedUser, resolve_user};
pub use volumes::Volume;
