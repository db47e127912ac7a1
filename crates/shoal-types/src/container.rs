//! Standalone container shapes of the Engine API: create, list, inspect, exec, wait, top.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::error::ApiError;
use crate::task_spec::{HealthConfig, Mount, Ulimit};
use crate::wire;

/// Container states as Docker names them.
pub const STATE_CREATED: &str = "created";
pub const STATE_RUNNING: &str = "running";
pub const STATE_PAUSED: &str = "paused";
pub const STATE_RESTARTING: &str = "restarting";
pub const STATE_REMOVING: &str = "removing";
pub const STATE_EXITED: &str = "exited";
pub const STATE_DEAD: &str = "dead";

/// Go's `struct{}` map values (`ExposedPorts`, `Volumes`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Empty {}

/// `container.Config`: what runs, independent of the host.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ContainerConfig {
    #[serde(default)]
    pub hostname: String,
    #[serde(default)]
    pub domainname: String,
    #[serde(default)]
    pub user: String,
    #[serde(default)]
    pub attach_stdin: bool,
    #[serde(default)]
    pub attach_stdout: bool,
    #[serde(default)]
    pub attach_stderr: bool,
    #[serde(
        default,
        deserialize_with = "wire::nullable",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub exposed_ports: BTreeMap<String, Empty>,
    #[serde(default)]
    pub tty: bool,
    #[serde(default)]
    pub open_stdin: bool,
    #[serde(default)]
    pub stdin_once: bool,
    #[serde(default, deserialize_with = "wire::nullable")]
    pub env: Vec<String>,
    #[serde(default, deserialize_with = "wire::nullable")]
    pub cmd: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub healthcheck: Option<HealthConfig>,
    #[serde(default, skip_serializing_if = "wire::is_zero")]
    pub args_escaped: bool,
    #[serde(default)]
    pub image: String,
    #[serde(default, deserialize_with = "wire::nullable")]
    pub volumes: BTreeMap<String, Empty>,
    #[serde(default)]
    pub working_dir: String,
    #[serde(default, deserialize_with = "wire::nullable")]
    pub entrypoint: Vec<String>,
    #[serde(default, skip_serializing_if = "wire::is_zero")]
    pub network_disabled: bool,
    #[serde(default, deserialize_with = "wire::nullable")]
    pub on_build: Vec<String>,
    #[serde(default, deserialize_with = "wire::nullable")]
    pub labels: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub stop_signal: String,
    /// Seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_timeout: Option<i64>,
    #[serde(
        default,
        deserialize_with = "wire::nullable",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub shell: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct LogConfig {
    #[serde(default)]
    pub r#type: String,
    #[serde(default, deserialize_with = "wire::nullable")]
    pub config: BTreeMap<String, String>,
}

/// A host address a container port is published on.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortBinding {
    #[serde(default, rename = "HostIp")]
    pub host_ip: String,
    #[serde(default, rename = "HostPort")]
    pub host_port: String,
}

/// `"80/tcp"` → its published bindings.
pub type PortMap = BTreeMap<String, Vec<PortBinding>>;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct RestartPolicy {
    /// "", "no", "always", "unless-stopped", "on-failure".
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub maximum_retry_count: i64,
}

impl RestartPolicy {
    pub fn is_none(&self) -> bool {
        matches!(self.name.as_str(), "" | "no")
    }

    pub fn validate(&self) -> Result<(), ApiError> {
        match self.name.as_str() {
            "" | "no" | "always" | "unless-stopped" => {
                if self.maximum_retry_count != 0 {
                    return Err(ApiError::invalid_argument(format!(
                        "invalid restart policy: maximum retry count can only be used with 'on-failure' (got {:?})",
                        self.name
                    )));
                }
            }
            "on-failure" => {
                if self.maximum_retry_count < 0 {
                    return Err(ApiError::invalid_argument(
                        "invalid restart policy: maximum retry count cannot be negative",
                    ));
                }
            }
            other => {
                return Err(ApiError::invalid_argument(format!(
                    "invalid restart policy: unknown policy {other:?}; use one of 'no', 'always', 'unless-stopped' or 'on-failure'"
                )));
            }
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DeviceMapping {
    #[serde(default)]
    pub path_on_host: String,
    #[serde(default)]
    pub path_in_container: String,
    #[serde(default)]
    pub cgroup_permissions: String,
}

/// `container.HostConfig`: how the host runs it (the subset Shoal honours plus common fields).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct HostConfig {
    #[serde(default, deserialize_with = "wire::nullable")]
    pub binds: Vec<String>,
    #[serde(default)]
    pub log_config: LogConfig,
    #[serde(default)]
    pub network_mode: String,
    #[serde(default, deserialize_with = "wire::nullable")]
    pub port_bindings: PortMap,
    #[serde(default)]
    pub restart_policy: RestartPolicy,
    #[serde(default)]
    pub auto_remove: bool,
    #[serde(default, deserialize_with = "wire::nullable")]
    pub volumes_from: Vec<String>,
    #[serde(default, deserialize_with = "wire::nullable")]
    pub cap_add: Vec<String>,
    #[serde(default, deserialize_with = "wire::nullable")]
    pub cap_drop: Vec<String>,
    #[serde(default, deserialize_with = "wire::nullable")]
    pub dns: Vec<String>,
    #[serde(default, deserialize_with = "wire::nullable")]
    pub dns_options: Vec<String>,
    #[serde(default, deserialize_with = "wire::nullable")]
    pub dns_search: Vec<String>,
    #[serde(default, deserialize_with = "wire::nullable")]
    pub extra_hosts: Vec<String>,
    #[serde(default, deserialize_with = "wire::nullable")]
    pub group_add: Vec<String>,
    #[serde(default)]
    pub ipc_mode: String,
    #[serde(default)]
    pub oom_score_adj: i64,
    #[serde(default)]
    pub pid_mode: String,
    #[serde(default)]
    pub privileged: bool,
    #[serde(default)]
    pub publish_all_ports: bool,
    #[serde(default)]
    pub readonly_rootfs: bool,
    #[serde(default, deserialize_with = "wire::nullable")]
    pub security_opt: Vec<String>,
    #[serde(
        default,
        deserialize_with = "wire::nullable",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub tmpfs: BTreeMap<String, String>,
    #[serde(default, rename = "UTSMode")]
    pub uts_mode: String,
    #[serde(default)]
    pub userns_mode: String,
    #[serde(default)]
    pub shm_size: i64,
    #[serde(
        default,
        deserialize_with = "wire::nullable",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub sysctls: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub runtime: String,
    #[serde(default)]
    pub isolation: String,
    // Resources (embedded in Go).
    #[serde(default)]
    pub cpu_shares: i64,
    #[serde(default)]
    pub memory: i64,
    #[serde(default)]
    pub nano_cpus: i64,
    #[serde(default)]
    pub cgroup_parent: String,
    #[serde(default)]
    pub cpu_period: i64,
    #[serde(default)]
    pub cpu_quota: i64,
    #[serde(default)]
    pub cpuset_cpus: String,
    #[serde(default)]
    pub cpuset_mems: String,
    #[serde(default, deserialize_with = "wire::nullable")]
    pub devices: Vec<DeviceMapping>,
    #[serde(default)]
    pub memory_reservation: i64,
    #[serde(default)]
    pub memory_swap: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_swappiness: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oom_kill_disable: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pids_limit: Option<i64>,
    #[serde(default, deserialize_with = "wire::nullable")]
    pub ulimits: Vec<Ulimit>,
    #[serde(
        default,
        deserialize_with = "wire::nullable",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub mounts: Vec<Mount>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub init: Option<bool>,
}

/// Smallest memory limit moby accepts (6 MB).
pub const MIN_CONTAINER_MEMORY: i64 = 6 * 1024 * 1024;

impl HostConfig {
    pub fn validate(&self) -> Result<(), ApiError> {
        self.restart_policy.validate()?;
        if self.auto_remove && !self.restart_policy.is_none() {
            return Err(ApiError::invalid_argument(format!(
                "can't create 'AutoRemove' container with restart policy {:?}",
                self.restart_policy.name
            )));
        }
        if self.memory != 0 && self.memory < MIN_CONTAINER_MEMORY {
            return Err(ApiError::invalid_argument(
                "Minimum memory limit allowed is 6MB",
            ));
        }
        if self.memory < 0
            || self.nano_cpus < 0
            || self.cpu_quota < -1
            || self.cpu_period < 0
            || self.shm_size < 0
        {
            return Err(ApiError::invalid_argument(
                "resource limits cannot be negative",
            ));
        }
        if self.nano_cpus != 0 && (self.cpu_period != 0 || self.cpu_quota > 0) {
            return Err(ApiError::invalid_argument(
                "Conflicting options: Nano CPUs and CPU Period/Quota cannot both be set",
            ));
        }
        if self.cpu_period != 0 && !(1000..=1_000_000).contains(&self.cpu_period) {
            return Err(ApiError::invalid_argument(
                "CPU cfs period can not be less than 1ms (i.e. 1000) or larger than 1s (i.e. 1000000)",
            ));
        }
        if self.cpu_quota > 0 && self.cpu_quota < 1000 {
            return Err(ApiError::invalid_argument(
                "CPU cfs quota can not be less than 1ms (i.e. 1000)",
            ));
        }
        if self.memory_reservation != 0 && self.memory != 0 && self.memory_reservation > self.memory
        {
            return Err(ApiError::invalid_argument(
                "Minimum memory limit can not be less than memory reservation limit",
            ));
        }
        if matches!(self.memory_swappiness, Some(s) if !(-1..=100).contains(&s)) {
            return Err(ApiError::invalid_argument(
                "Invalid value: MemorySwappiness must be in the range [0, 100]",
            ));
        }
        if !(-1000..=1000).contains(&self.oom_score_adj) {
            return Err(ApiError::invalid_argument(
                "Invalid value for OomScoreAdj: must be in the range [-1000, 1000]",
            ));
        }
        for b in &self.binds {
            parse_bind(b)?;
        }
        for m in &self.mounts {
            m.validate()?;
        }
        for (port, bindings) in &self.port_bindings {
            parse_port_key(port)?;
            for pb in bindings {
                if !pb.host_port.is_empty() {
                    parse_host_port_range(&pb.host_port)?;
                }
                if !pb.host_ip.is_empty() && pb.host_ip.parse::<std::net::IpAddr>().is_err() {
                    return Err(ApiError::invalid_argument(format!(
                        "invalid host IP {:?}",
                        pb.host_ip
                    )));
                }
            }
        }
        for target in self.tmpfs.keys() {
            if !target.starts_with('/') {
                return Err(ApiError::invalid_argument(format!(
                    "invalid tmpfs mount point {target:?}: must be an absolute path"
                )));
            }
        }
        Ok(())
    }
}

/// Parses a port key "80/tcp" (protocol defaults to tcp) into (port, protocol).
pub fn parse_port_key(key: &str) -> Result<(u16, String), ApiError> {
    let (port, proto) = key.split_once('/').unwrap_or((key, "tcp"));
    if !matches!(proto, "tcp" | "udp" | "sctp") {
        return Err(ApiError::invalid_argument(format!(
            "invalid port protocol in {key:?}"
        )));
    }
    match port.parse::<u16>() {
        Ok(p) if p != 0 => Ok((p, proto.to_string())),
        _ => Err(ApiError::invalid_argument(format!("invalid port {key:?}"))),
    }
}

/// Parses a host port "8080" or range "8000-8010" into (first, last).
pub fn parse_host_port_range(s: &str) -> Result<(u16, u16), ApiError> {
    let bad = || ApiError::invalid_argument(format!("invalid host port {s:?}"));
    let (a, b) = s.split_once('-').unwrap_or((s, s));
    let a: u16 = a.parse().map_err(|_| bad())?;
    let b: u16 = b.parse().map_err(|_| bad())?;
    if a > b || (a == 0 && b != 0) {
        return Err(bad());
    }
    Ok((a, b))
}

/// One `HostConfig.Binds` entry: `source:target[:opts]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bind {
    /// Absolute host path, or a volume name.
    pub source: String,
    pub target: String,
    pub read_only: bool,
    /// Options besides ro/rw (propagation, z/Z, nocopy).
    pub options: Vec<String>,
}

impl Bind {
    pub fn is_host_path(&self) -> bool {
        self.source.starts_with('/')
    }
}

/// Parses `src:dst[:ro|rw,...]`.
pub fn parse_bind(spec: &str) -> Result<Bind, ApiError> {
    let bad = |why: &str| {
        ApiError::invalid_argument(format!("invalid volume specification {spec:?}: {why}"))
    };
    let parts: Vec<&str> = spec.split(':').collect();
    let (source, target, opts) = match parts.as_slice() {
        [s, t] => (*s, *t, ""),
        [s, t, o] => (*s, *t, *o),
        _ => return Err(bad("expected source:target[:options]")),
    };
    if source.is_empty() || target.is_empty() {
        return Err(bad("source and target are required"));
    }
    if !target.starts_with('/') {
        return Err(bad("target must be an absolute path"));
    }
    if !source.starts_with('/')
        && !source
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'))
    {
        return Err(bad("source must be an absolute path or a volume name"));
    }
    let mut read_only = false;
    let mut options = Vec::new();
    for o in opts.split(',').filter(|o| !o.is_empty()) {
        match o {
            "ro" => read_only = true,
            "rw" => read_only = false,
            "z" | "Z" | "nocopy" | "private" | "rprivate" | "shared" | "rshared" | "slave"
            | "rslave" => options.push(o.to_string()),
            _ => return Err(bad(&format!("unknown option {o:?}"))),
        }
    }
    Ok(Bind {
        source: source.to_string(),
        target: target.to_string(),
        read_only,
        options,
    })
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct EndpointIPAMConfig {
    #[serde(
        default,
        rename = "IPv4Address",
        skip_serializing_if = "String::is_empty"
    )]
    pub ipv4_address: String,
    #[serde(
        default,
        rename = "IPv6Address",
        skip_serializing_if = "String::is_empty"
    )]
    pub ipv6_address: String,
    #[serde(
        default,
        rename = "LinkLocalIPs",
        deserialize_with = "wire::nullable",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub link_local_ips: Vec<String>,
}

/// A container's settings on one network.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct EndpointSettings {
    #[serde(default, rename = "IPAMConfig")]
    pub ipam_config: Option<EndpointIPAMConfig>,
    #[serde(default, deserialize_with = "wire::nullable")]
    pub links: Vec<String>,
    #[serde(default, deserialize_with = "wire::nullable")]
    pub aliases: Vec<String>,
    #[serde(default, deserialize_with = "wire::nullable")]
    pub driver_opts: BTreeMap<String, String>,
    #[serde(default, rename = "NetworkID")]
    pub network_id: String,
    #[serde(default, rename = "EndpointID")]
    pub endpoint_id: String,
    #[serde(default)]
    pub gateway: String,
    #[serde(default, rename = "IPAddress")]
    pub ip_address: String,
    #[serde(default, rename = "IPPrefixLen")]
    pub ip_prefix_len: i64,
    #[serde(default, rename = "IPv6Gateway")]
    pub ipv6_gateway: String,
    #[serde(default, rename = "GlobalIPv6Address")]
    pub global_ipv6_address: String,
    #[serde(default, rename = "GlobalIPv6PrefixLen")]
    pub global_ipv6_prefix_len: i64,
    #[serde(default)]
    pub mac_address: String,
    #[serde(default, rename = "DNSNames", deserialize_with = "wire::nullable")]
    pub dns_names: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct NetworkingConfig {
    #[serde(default, deserialize_with = "wire::nullable")]
    pub endpoints_config: BTreeMap<String, EndpointSettings>,
}

/// `POST /containers/create` body: `Config` fields at the top level plus host and network config.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ContainerCreateRequest {
    #[serde(flatten)]
    pub config: ContainerConfig,
    #[serde(default)]
    pub host_config: HostConfig,
    #[serde(default)]
    pub networking_config: NetworkingConfig,
}

impl ContainerCreateRequest {
    pub fn validate(&self) -> Result<(), ApiError> {
        if self.config.image.trim().is_empty() {
            return Err(ApiError::invalid_argument("config: Image is required"));
        }
        if let Some(h) = &self.config.healthcheck {
            h.validate()?;
        }
        if matches!(self.config.stop_timeout, Some(t) if t < -1) {
            return Err(ApiError::invalid_argument(
                "invalid StopTimeout: must be -1 or more",
            ));
        }
        for p in self.config.exposed_ports.keys() {
            parse_port_key(p)?;
        }
        self.host_config.validate()
    }
}

/// Container names: `^/?[a-zA-Z0-9][a-zA-Z0-9_.-]+$`.
pub fn validate_container_name(name: &str) -> Result<(), ApiError> {
    let n = name.strip_prefix('/').unwrap_or(name);
    let b = n.as_bytes();
    let ok = b.len() >= 2
        && b[0].is_ascii_alphanumeric()
        && b[1..]
            .iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(ApiError::invalid_argument(format!(
            "Invalid container name ({name}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"
        )))
    }
}

/// `POST /containers/create` reply (`"Id"`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ContainerCreateResponse {
    #[serde(rename = "Id")]
    pub id: String,
    #[serde(default, deserialize_with = "wire::nullable")]
    pub warnings: Vec<String>,
}

/// A port in `docker ps` output.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Port {
    #[serde(default, rename = "IP", skip_serializing_if = "String::is_empty")]
    pub ip: String,
    #[serde(default)]
    pub private_port: u16,
    #[serde(default, skip_serializing_if = "wire::is_zero")]
    pub public_port: u16,
    #[serde(default)]
    pub r#type: String,
}

/// A mount as containers report it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct MountPoint {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub r#type: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    #[serde(default)]
    pub source: String,
    #[serde(default)]
    pub destination: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub driver: String,
    #[serde(default)]
    pub mode: String,
    #[serde(default, rename = "RW")]
    pub rw: bool,
    #[serde(default)]
    pub propagation: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct SummaryHostConfig {
    #[serde(default)]
    pub network_mode: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct SummaryNetworkSettings {
    #[serde(default, deserialize_with = "wire::nullable")]
    pub networks: BTreeMap<String, EndpointSettings>,
}

/// `GET /containers/json` item.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ContainerSummary {
    #[serde(rename = "Id")]
    pub id: String,
    /// With a leading slash: `["/web"]`.
    #[serde(default, deserialize_with = "wire::nullable")]
    pub names: Vec<String>,
    #[serde(default)]
    pub image: String,
    #[serde(default, rename = "ImageID")]
    pub image_id: String,
    #[serde(default)]
    pub command: String,
    /// Unix seconds.
    #[serde(default)]
    pub created: i64,
    #[serde(default, deserialize_with = "wire::nullable")]
    pub ports: Vec<Port>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size_rw: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size_root_fs: Option<i64>,
    #[serde(default, deserialize_with = "wire::nullable")]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub state: String,
    /// Human text: "Up 5 minutes", "Exited (0) 2 hours ago".
    #[serde(default)]
    pub status: String,
    #[serde(default)]
    pub host_config: SummaryHostConfig,
    #[serde(default)]
    pub network_settings: SummaryNetworkSettings,
    #[serde(default, deserialize_with = "wire::nullable")]
    pub mounts: Vec<MountPoint>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct HealthcheckResult {
    #[serde(default = "wire::zero_time", with = "wire::time")]
    pub start: DateTime<Utc>,
    #[serde(default = "wire::zero_time", with = "wire::time")]
    pub end: DateTime<Utc>,
    #[serde(default)]
    pub exit_code: i64,
    #[serde(default)]
    pub output: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Health {
    /// "none", "starting", "healthy", "unhealthy".
    #[serde(default)]
    pub status: String,
    #[serde(default)]
    pub failing_streak: i64,
    #[serde(default, deserialize_with = "wire::nullable")]
    pub log: Vec<HealthcheckResult>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ContainerState {
    #[serde(default)]
    pub status: String,
    #[serde(default)]
    pub running: bool,
    #[serde(default)]
    pub paused: bool,
    #[serde(default)]
    pub restarting: bool,
    #[serde(default, rename = "OOMKilled")]
    pub oom_killed: bool,
    #[serde(default)]
    pub dead: bool,
    #[serde(default)]
    pub pid: i64,
    #[serde(default)]
    pub exit_code: i64,
    #[serde(default)]
    pub error: String,
    #[serde(default = "wire::zero_time", with = "wire::time")]
    pub started_at: DateTime<Utc>,
    #[serde(default = "wire::zero_time", with = "wire::time")]
    pub finished_at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health: Option<Health>,
}

impl Default for ContainerState {
    fn default() -> Self {
        ContainerState {
            status: STATE_CREATED.to_string(),
            running: false,
            paused: false,
            restarting: false,
            oom_killed: false,
            dead: false,
            pid: 0,
            exit_code: 0,
            error: String::new(),
            started_at: wire::zero_time(),
            finished_at: wire::zero_time(),
            health: None,
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct GraphDriver {
    #[serde(default)]
    pub name: String,
    #[serde(default, deserialize_with = "wire::nullable")]
    pub data: BTreeMap<String, String>,
}

/// `NetworkSettings` of `docker inspect`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct NetworkSettings {
    #[serde(default)]
    pub bridge: String,
    #[serde(default, rename = "SandboxID")]
    pub sandbox_id: String,
    #[serde(default)]
    pub sandbox_key: String,
    #[serde(default, deserialize_with = "wire::nullable")]
    pub ports: PortMap,
    #[serde(default, rename = "EndpointID")]
    pub endpoint_id: String,
    #[serde(default)]
    pub gateway: String,
    #[serde(default, rename = "IPAddress")]
    pub ip_address: String,
    #[serde(default, rename = "IPPrefixLen")]
    pub ip_prefix_len: i64,
    #[serde(default)]
    pub mac_address: String,
    #[serde(default, deserialize_with = "wire::nullable")]
    pub networks: BTreeMap<String, EndpointSettings>,
}

/// `GET /containers/{id}/json`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ContainerInspect {
    #[serde(rename = "Id")]
    pub id: String,
    #[serde(default = "wire::zero_time", with = "wire::time")]
    pub created: DateTime<Utc>,
    #[serde(default)]
    pub path: String,
    #[serde(default, deserialize_with = "wire::nullable")]
    pub args: Vec<String>,
    #[serde(default)]
    pub state: ContainerState,
    /// Image ID (`sha256:…`).
    #[serde(default)]
    pub image: String,
    #[serde(default)]
    pub resolv_conf_path: String,
    #[serde(default)]
    pub hostname_path: String,
    #[serde(default)]
    pub hosts_path: String,
    #[serde(default)]
    pub log_path: String,
    /// With a leading slash: "/web".
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub restart_count: i64,
    #[serde(default)]
    pub driver: String,
    #[serde(default)]
    pub platform: String,
    #[serde(default)]
    pub mount_label: String,
    #[serde(default)]
    pub process_label: String,
    #[serde(default)]
    pub app_armor_profile: String,
    #[serde(default, rename = "ExecIDs", deserialize_with = "wire::nullable")]
    pub exec_ids: Vec<String>,
    #[serde(default)]
    pub host_config: HostConfig,
    #[serde(default)]
    pub graph_driver: GraphDriver,
    #[serde(default, deserialize_with = "wire::nullable")]
    pub mounts: Vec<MountPoint>,
    #[serde(default)]
    pub config: ContainerConfig,
    #[serde(default)]
    pub network_settings: NetworkSettings,
}

/// `POST /containers/{id}/exec` body.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ExecCreateRequest {
    #[serde(default)]
    pub user: String,
    #[serde(default)]
    pub privileged: bool,
    #[serde(default)]
    pub tty: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub console_size: Option<[u32; 2]>,
    #[serde(default)]
    pub attach_stdin: bool,
    #[serde(default)]
    pub attach_stderr: bool,
    #[serde(default)]
    pub attach_stdout: bool,
    #[serde(default)]
    pub detach_keys: String,
    #[serde(default, deserialize_with = "wire::nullable")]
    pub env: Vec<String>,
    #[serde(default)]
    pub working_dir: String,
    #[serde(default, deserialize_with = "wire::nullable")]
    pub cmd: Vec<String>,
}

impl ExecCreateRequest {
    pub fn validate(&self) -> Result<(), ApiError> {
        if self.cmd.is_empty() {
            return Err(ApiError::invalid_argument("No exec command specified"));
        }
        Ok(())
    }
}

/// `{"Id":"…"}` reply (exec create and others).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdResponse {
    #[serde(rename = "Id")]
    pub id: String,
}

/// `POST /exec/{id}/start` body.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ExecStartRequest {
    #[serde(default)]
    pub detach: bool,
    #[serde(default)]
    pub tty: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub console_size: Option<[u32; 2]>,
}

/// Lowercase names, as Docker's `ExecProcessConfig` tags them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecProcessConfig {
    #[serde(default)]
    pub tty: bool,
    #[serde(default)]
    pub entrypoint: String,
    #[serde(default, deserialize_with = "wire::nullable")]
    pub arguments: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub privileged: Option<bool>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub user: String,
}

/// `GET /exec/{id}/json`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ExecInspect {
    #[serde(rename = "ID")]
    pub id: String,
    #[serde(default)]
    pub running: bool,
    /// None while running.
    #[serde(default)]
    pub exit_code: Option<i64>,
    #[serde(default)]
    pub process_config: ExecProcessConfig,
    #[serde(default)]
    pub open_stdin: bool,
    #[serde(default)]
    pub open_stderr: bool,
    #[serde(default)]
    pub open_stdout: bool,
    #[serde(default)]
    pub can_remove: bool,
    #[serde(default, rename = "ContainerID")]
    pub container_id: String,
    #[serde(default)]
    pub detach_keys: String,
    #[serde(default)]
    pub pid: i64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct WaitExitError {
    #[serde(default)]
    pub message: String,
}

/// `POST /containers/{id}/wait` reply.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ContainerWaitResponse {
    #[serde(default)]
    pub status_code: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<WaitExitError>,
}

/// `GET /containers/{id}/top` reply.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ContainerTopResponse {
    #[serde(default, deserialize_with = "wire::nullable")]
    pub titles: Vec<String>,
    #[serde(default, deserialize_with = "wire::nullable")]
    pub processes: Vec<Vec<String>>,
}

/// `POST /containers/prune` reply.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ContainerPruneReport {
    #[serde(default, deserialize_with = "wire::nullable")]
    pub containers_deleted: Vec<String>,
    #[serde(default)]
    pub space_reclaimed: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    // Abridged from what `docker run -d --name web -p 8080:80 -v /srv:/srv:ro --restart on-failure:3 -m 64m bb:1 sleep 1` sends.
    const RUN_BODY: &str = r#"{"Hostname":"","Domainname":"","User":"","AttachStdin":false,"AttachStdout":false,"AttachStderr":false,
 "ExposedPorts":{"80/tcp":{}},"Tty":false,"OpenStdin":false,"StdinOnce":false,"Env":null,"Cmd":["sleep","1"],"Image":"bb:1",
 "Volumes":{},"WorkingDir":"","Entrypoint":null,"OnBuild":null,"Labels":{},
 "HostConfig":{"Binds":["/srv:/srv:ro"],"ContainerIDFile":"","LogConfig":{"Type":"","Config":{}},"NetworkMode":"bridge",
   "PortBindings":{"80/tcp":[{"HostIp":"","HostPort":"8080"}]},"RestartPolicy":{"Name":"on-failure","MaximumRetryCount":3},
   "AutoRemove":false,"VolumeDriver":"","VolumesFrom":null,"ConsoleSize":[0,0],"CapAdd":null,"CapDrop":null,"CgroupnsMode":"",
   "Dns":[],"DnsOptions":[],"DnsSearch":[],"ExtraHosts":null,"GroupAdd":null,"IpcMode":"","Cgroup":"","Links":null,"OomScoreAdj":0,
   "PidMode":"","Privileged":false,"PublishAllPorts":false,"ReadonlyRootfs":false,"SecurityOpt":null,"UTSMode":"","UsernsMode":"",
   "ShmSize":0,"Isolation":"","CpuShares":0,"Memory":67108864,"NanoCpus":0,"CgroupParent":"","BlkioWeight":0,"CpuPeriod":0,
   "CpuQuota":0,"CpuRealtimePeriod":0,"CpusetCpus":"","CpusetMems":"","Devices":[],"MemoryReservation":0,"MemorySwap":0,
   "MemorySwappiness":null,"OomKillDisable":null,"PidsLimit":null,"Ulimits":[],"MaskedPaths":null,"ReadonlyPaths":null},
 "NetworkingConfig":{"EndpointsConfig":{}}}"#;

    #[test]
    fn run_body_parses_and_validates() {
        let r: ContainerCreateRequest = serde_json::from_str(RUN_BODY).unwrap();
        r.validate().unwrap();
        assert_eq!(r.config.cmd, ["sleep", "1"]);
        assert!(r.config.exposed_ports.contains_key("80/tcp"));
        assert_eq!(r.host_config.memory, 64 << 20);
        assert_eq!(r.host_config.restart_policy.maximum_retry_count, 3);
        assert_eq!(r.host_config.port_bindings["80/tcp"][0].host_port, "8080");
        let b = parse_bind(&r.host_config.binds[0]).unwrap();
        assert!(b.read_only && b.is_host_path());
        let j = serde_json::to_value(&r).unwrap();
        assert_eq!(j["Image"], "bb:1");
        assert_eq!(j["HostConfig"]["NanoCpus"], 0);
        assert_eq!(j["ExposedPorts"]["80/tcp"], serde_json::json!({}));
        let back: ContainerCreateRequest = serde_json::from_value(j).unwrap();
        assert_eq!(back, r);
    }

    #[test]
    fn create_validation() {
        let mut r: ContainerCreateRequest = serde_json::from_str(RUN_BODY).unwrap();
        r.host_config.auto_remove = true;
        assert!(r.validate().unwrap_err().message.contains("AutoRemove"));
        let mut r: ContainerCreateRequest = serde_json::from_str(RUN_BODY).unwrap();
        r.host_config.memory = 1024;
        assert!(r.validate().unwrap_err().message.contains("6MB"));
        let mut r: ContainerCreateRequest = serde_json::from_str(RUN_BODY).unwrap();
        r.host_config.nano_cpus = 500_000_000;
        r.host_config.cpu_period = 100_000;
        assert!(r.validate().unwrap_err().message.contains("Conflicting"));
        let mut r: ContainerCreateRequest = serde_json::from_str(RUN_BODY).unwrap();
        r.host_config.restart_policy = RestartPolicy {
            name: "sometimes".into(),
            maximum_retry_count: 0,
        };
        assert!(r.validate().is_err());
        let mut r: ContainerCreateRequest = serde_json::from_str(RUN_BODY).unwrap();
        r.config.image.clear();
        assert!(r.validate().is_err());
        assert!(parse_bind("rel:/x").is_ok());
        assert!(parse_bind("/a:rel").is_err());
        assert!(parse_bind("/a:/b:bogus").is_err());
        assert!(parse_bind("/a").is_err());
        assert_eq!(parse_port_key("53/udp").unwrap(), (53, "udp".to_string()));
        assert_eq!(parse_port_key("80").unwrap().1, "tcp");
        assert!(parse_port_key("0/tcp").is_err());
        assert!(parse_port_key("80/icmp").is_err());
        assert_eq!(parse_host_port_range("8000-8010").unwrap(), (8000, 8010));
        assert!(parse_host_port_range("9-1").is_err());
        validate_container_name("/web_1").unwrap();
        assert!(validate_container_name("-x").is_err());
        assert!(validate_container_name("a b").is_err());
    }

    #[test]
    fn inspect_and_summary_shapes() {
        let i = ContainerInspect {
            id: "c1".into(),
            name: "/web".into(),
            ..ContainerInspect::default()
        };
        let j = serde_json::to_value(&i).unwrap();
        assert_eq!(j["Id"], "c1");
        assert_eq!(j["State"]["Status"], "created");
        assert_eq!(j["State"]["StartedAt"], "0001-01-01T00:00:00Z");
        assert_eq!(j["State"]["OOMKilled"], false);
        assert!(j["ExecIDs"].is_array());
        let back: ContainerInspect = serde_json::from_value(j).unwrap();
        assert_eq!(back, i);
        let s: ContainerSummary = serde_json::from_str(
            r#"{"Id":"c1","Names":["/web"],"Image":"bb:1","ImageID":"sha256:ab","Command":"sleep 1","Created":1795423672,
                "Ports":[{"IP":"0.0.0.0","PrivatePort":80,"PublicPort":8080,"Type":"tcp"}],"Labels":{"com.docker.swarm.service.name":"bench"},
                "State":"running","Status":"Up 2 seconds","HostConfig":{"NetworkMode":"bridge"},"NetworkSettings":{"Networks":{}},"Mounts":[]}"#,
        )
        .unwrap();
        assert_eq!(s.ports[0].public_port, 8080);
        let ex: ExecInspect = serde_json::from_str(
            r#"{"ID":"e1","Running":false,"ExitCode":0,"ProcessConfig":{"tty":false,"entrypoint":"sh","arguments":["-c","true"],"privileged":false},"ContainerID":"c1","Pid":42}"#,
        )
        .unwrap();
        assert_eq!(ex.exit_code, Some(0));
        assert_eq!(
            serde_json::to_value(&ex).unwrap()["ProcessConfig"]["entrypoint"],
            "sh"
        );
        let w = ContainerWaitResponse {
            status_code: 3,
            error: None,
        };
        assert_eq!(serde_json::to_string(&w).unwrap(), r#"{"StatusCode":3}"#);
        assert!(ExecCreateRequest::default().validate().is_err());
    }
}
