//! The task template (`TaskSpec`) and container spec of a service, with defaults and validation.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::constraint::parse_constraints;
use crate::duration::{MILLISECOND, SECOND};
use crate::error::ApiError;
use crate::meta::Driver;
use crate::node::{Platform, Resources};
use crate::wire;

/// Runtime of a task; only containers are run by Shoal.
pub const RUNTIME_CONTAINER: &str = "container";
/// Runtime of a network attachment task: a standalone container's address on an attachable
/// overlay network (made by the managers for the node that asked, never for a service).
pub const RUNTIME_ATTACHMENT: &str = "attachment";
/// Default stop grace period (10 s).
pub const DEFAULT_STOP_GRACE_PERIOD: i64 = 10 * SECOND;
/// Default restart delay (5 s).
pub const DEFAULT_RESTART_DELAY: i64 = 5 * SECOND;
/// Smallest non-zero CPU reservation/limit (0.001 CPU).
pub const MIN_NANO_CPUS: i64 = 1_000_000;
/// Smallest non-zero memory reservation/limit (4 MiB).
pub const MIN_MEMORY_BYTES: i64 = 4 * 1024 * 1024;

macro_rules! str_enum {
    ($(#[$m:meta])* $t:ident { $($v:ident => $s:literal),* $(,)? } default $d:ident) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        pub enum $t {
            $(
                #[serde(rename = $s)]
                $v,
            )*
        }
        impl $t {
            pub fn as_str(&self) -> &'static str {
                match self { $(Self::$v => $s),* }
            }
        }
        impl Default for $t {
            fn default() -> Self { Self::$d }
        }
        impl std::fmt::Display for $t {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
        impl std::str::FromStr for $t {
            type Err = ApiError;
            fn from_str(s: &str) -> Result<Self, ApiError> {
                match s {
                    $($s => Ok(Self::$v),)*
                    _ => Err(ApiError::invalid_argument(format!("invalid {} {:?}", stringify!($t), s))),
                }
            }
        }
    };
}
pub(crate) use str_enum;

str_enum!(
    /// When a task is replaced after it stops.
    RestartCondition { None => "none", OnFailure => "on-failure", Any => "any" } default Any
);
str_enum!(MountType {
    Bind => "bind", Volume => "volume", Tmpfs => "tmpfs", Npipe => "npipe", Cluster => "cluster", Image => "image"
} default Volume);

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct CredentialSpec {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub config: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub file: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub registry: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct SELinuxContext {
    #[serde(default)]
    pub disable: bool,
    #[serde(default)]
    pub user: String,
    #[serde(default)]
    pub role: String,
    #[serde(default)]
    pub r#type: String,
    #[serde(default)]
    pub level: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct SeccompOpts {
    /// default | unconfined | custom
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub mode: String,
    #[serde(default, with = "wire::bytes", skip_serializing_if = "Vec::is_empty")]
    pub profile: Vec<u8>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct AppArmorOpts {
    /// default | disabled
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub mode: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Privileges {
    #[serde(default)]
    pub credential_spec: Option<CredentialSpec>,
    #[serde(default, rename = "SELinuxContext")]
    pub selinux_context: Option<SELinuxContext>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seccomp: Option<SeccompOpts>,
    #[serde(default, rename = "AppArmor", skip_serializing_if = "Option::is_none")]
    pub app_armor: Option<AppArmorOpts>,
    #[serde(default)]
    pub no_new_privileges: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct BindOptions {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub propagation: String,
    #[serde(default, skip_serializing_if = "wire::is_zero")]
    pub non_recursive: bool,
    #[serde(default, skip_serializing_if = "wire::is_zero")]
    pub create_mountpoint: bool,
    #[serde(default, skip_serializing_if = "wire::is_zero")]
    pub read_only_non_recursive: bool,
    #[serde(default, skip_serializing_if = "wire::is_zero")]
    pub read_only_force_recursive: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct VolumeOptions {
    #[serde(default, skip_serializing_if = "wire::is_zero")]
    pub no_copy: bool,
    #[serde(
        default,
        deserialize_with = "wire::nullable",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub labels: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub subpath: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub driver_config: Option<Driver>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct TmpfsOptions {
    #[serde(default, skip_serializing_if = "wire::is_zero")]
    pub size_bytes: i64,
    /// File mode as a decimal number (0o1777 = 1023).
    #[serde(default, skip_serializing_if = "wire::is_zero")]
    pub mode: u32,
    #[serde(
        default,
        deserialize_with = "wire::nullable",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub options: Vec<Vec<String>>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Mount {
    /// Required; `None` only when a request left it out (refused by validation).
    #[serde(
        default,
        deserialize_with = "wire::opt_enum",
        skip_serializing_if = "Option::is_none"
    )]
    pub r#type: Option<MountType>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub source: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub target: String,
    #[serde(default, skip_serializing_if = "wire::is_zero")]
    pub read_only: bool,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub consistency: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bind_options: Option<BindOptions>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volume_options: Option<VolumeOptions>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tmpfs_options: Option<TmpfsOptions>,
}

impl Mount {
    pub fn validate(&self) -> Result<(), ApiError> {
        let bad = |why: String| {
            Err(ApiError::invalid_argument(format!(
                "invalid mount config: {why}"
            )))
        };
        let Some(ty) = self.r#type else {
            return bad("mount type is required (bind, volume or tmpfs)".into());
        };
        if self.target.is_empty() {
            return bad("Target must not be empty".into());
        }
        if !self.target.starts_with('/') {
            return bad(format!(
                "invalid mount target {:?}: must be an absolute path",
                self.target
            ));
        }
        if self.bind_options.is_some() && ty != MountType::Bind {
            return bad(format!(
                "BindOptions must not be specified for mount type {ty:?}",
                ty = ty.as_str()
            ));
        }
        if self.volume_options.is_some() && ty != MountType::Volume {
            return bad(format!(
                "VolumeOptions must not be specified for mount type {:?}",
                ty.as_str()
            ));
        }
        if self.tmpfs_options.is_some() && ty != MountType::Tmpfs {
            return bad(format!(
                "TmpfsOptions must not be specified for mount type {:?}",
                ty.as_str()
            ));
        }
        match ty {
            MountType::Bind => {
                if self.source.is_empty() {
                    return bad("Source must not be empty for a bind mount".into());
                }
                if !self.source.starts_with('/') {
                    return bad(format!(
                        "invalid bind mount source {:?}: must be an absolute path",
                        self.source
                    ));
                }
                if let Some(b) = &self.bind_options
                    && !matches!(
                        b.propagation.as_str(),
                        "" | "private" | "rprivate" | "shared" | "rshared" | "slave" | "rslave"
                    )
                {
                    return bad(format!("invalid bind propagation {:?}", b.propagation));
                }
            }
            MountType::Volume => {
                if let Some(v) = &self.volume_options
                    && !v.subpath.is_empty()
                    && (v.subpath.starts_with('/') || v.subpath.split('/').any(|p| p == ".."))
                {
                    return bad(format!("invalid volume subpath {:?}", v.subpath));
                }
            }
            MountType::Tmpfs => {
                if !self.source.is_empty() {
                    return bad("Source must not be specified for a tmpfs mount".into());
                }
                if let Some(t) = &self.tmpfs_options
                    && t.size_bytes < 0
                {
                    return bad(format!("invalid tmpfs size {}", t.size_bytes));
                }
            }
            MountType::Npipe | MountType::Cluster | MountType::Image => {
                return bad(format!("mount type {:?} is not supported", ty.as_str()));
            }
        }
        Ok(())
    }
}

/// Container healthcheck; durations in nanoseconds (0 = inherit/default).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct HealthConfig {
    #[serde(
        default,
        deserialize_with = "wire::nullable",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub test: Vec<String>,
    #[serde(default, skip_serializing_if = "wire::is_zero")]
    pub interval: i64,
    #[serde(default, skip_serializing_if = "wire::is_zero")]
    pub timeout: i64,
    #[serde(default, skip_serializing_if = "wire::is_zero")]
    pub start_period: i64,
    #[serde(default, skip_serializing_if = "wire::is_zero")]
    pub start_interval: i64,
    #[serde(default, skip_serializing_if = "wire::is_zero")]
    pub retries: i64,
}

impl HealthConfig {
    pub fn validate(&self) -> Result<(), ApiError> {
        for (name, v) in [
            ("Interval", self.interval),
            ("Timeout", self.timeout),
            ("StartPeriod", self.start_period),
            ("StartInterval", self.start_interval),
        ] {
            if v != 0 && v < MILLISECOND {
                return Err(ApiError::invalid_argument(format!(
                    "{name} in Healthcheck cannot be less than 1ms"
                )));
            }
        }
        if self.retries < 0 {
            return Err(ApiError::invalid_argument(
                "Retries in Healthcheck cannot be negative",
            ));
        }
        if let Some(first) = self.test.first()
            && !matches!(first.as_str(), "NONE" | "CMD" | "CMD-SHELL")
        {
            return Err(ApiError::invalid_argument(format!(
                "invalid Healthcheck Test: first element must be NONE, CMD or CMD-SHELL, not {first:?}"
            )));
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DNSConfig {
    #[serde(
        default,
        deserialize_with = "wire::nullable",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub nameservers: Vec<String>,
    #[serde(
        default,
        deserialize_with = "wire::nullable",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub search: Vec<String>,
    #[serde(
        default,
        deserialize_with = "wire::nullable",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub options: Vec<String>,
}

/// Where a secret or config file appears in the container. UID/GID are strings on the wire.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct FileTarget {
    #[serde(default)]
    pub name: String,
    #[serde(default, rename = "UID")]
    pub uid: String,
    #[serde(default, rename = "GID")]
    pub gid: String,
    /// Decimal file mode (292 = 0o444).
    #[serde(default)]
    pub mode: u32,
}

/// Where secrets appear in a container unless the target is absolute.
pub const SECRETS_DIR: &str = "/run/secrets";

impl FileTarget {
    /// Container path of a secret: absolute names as given, others under `/run/secrets/`.
    pub fn secret_path(&self) -> String {
        if self.name.starts_with('/') {
            self.name.clone()
        } else {
            format!("{SECRETS_DIR}/{}", self.name)
        }
    }

    /// Container path of a config: absolute names as given, others relative to `/`.
    pub fn config_path(&self) -> String {
        if self.name.starts_with('/') {
            self.name.clone()
        } else {
            format!("/{}", self.name)
        }
    }

    /// Numeric owner; "" means 0 (root).
    pub fn uid_gid(&self) -> Result<(u32, u32), ApiError> {
        let parse = |what: &str, v: &str| -> Result<u32, ApiError> {
            if v.is_empty() {
                return Ok(0);
            }
            v.parse().map_err(|_| {
                ApiError::invalid_argument(format!("invalid {what} {v:?} for file {:?}", self.name))
            })
        };
        Ok((parse("UID", &self.uid)?, parse("GID", &self.gid)?))
    }

    /// File mode; 0 means the default 0444.
    pub fn effective_mode(&self) -> u32 {
        if self.mode == 0 {
            0o444
        } else {
            self.mode & 0o7777
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct SecretReference {
    #[serde(default)]
    pub file: Option<FileTarget>,
    #[serde(default, rename = "SecretID")]
    pub secret_id: String,
    #[serde(default)]
    pub secret_name: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuntimeTarget {}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ConfigReference {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<FileTarget>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runtime: Option<RuntimeTarget>,
    #[serde(default, rename = "ConfigID")]
    pub config_id: String,
    #[serde(default)]
    pub config_name: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Ulimit {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub hard: i64,
    #[serde(default)]
    pub soft: i64,
}

/// What runs in a task's container.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ContainerSpec {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub image: String,
    #[serde(
        default,
        deserialize_with = "wire::nullable",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub labels: BTreeMap<String, String>,
    #[serde(
        default,
        deserialize_with = "wire::nullable",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub command: Vec<String>,
    #[serde(
        default,
        deserialize_with = "wire::nullable",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub args: Vec<String>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub hostname: String,
    #[serde(
        default,
        deserialize_with = "wire::nullable",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub env: Vec<String>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub dir: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub user: String,
    #[serde(
        default,
        deserialize_with = "wire::nullable",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub groups: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub privileges: Option<Privileges>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub init: Option<bool>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub stop_signal: String,
    #[serde(default, rename = "TTY", skip_serializing_if = "wire::is_zero")]
    pub tty: bool,
    #[serde(default, skip_serializing_if = "wire::is_zero")]
    pub open_stdin: bool,
    #[serde(default, skip_serializing_if = "wire::is_zero")]
    pub read_only: bool,
    #[serde(
        default,
        deserialize_with = "wire::nullable",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub mounts: Vec<Mount>,
    /// Nanoseconds; None = default (10 s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_grace_period: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub healthcheck: Option<HealthConfig>,
    #[serde(
        default,
        deserialize_with = "wire::nullable",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub hosts: Vec<String>,
    #[serde(default, rename = "DNSConfig", skip_serializing_if = "Option::is_none")]
    pub dns_config: Option<DNSConfig>,
    #[serde(
        default,
        deserialize_with = "wire::nullable",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub secrets: Vec<SecretReference>,
    #[serde(
        default,
        deserialize_with = "wire::nullable",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub configs: Vec<ConfigReference>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub isolation: String,
    #[serde(
        default,
        deserialize_with = "wire::nullable",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub sysctls: BTreeMap<String, String>,
    #[serde(
        default,
        deserialize_with = "wire::nullable",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub capability_add: Vec<String>,
    #[serde(
        default,
        deserialize_with = "wire::nullable",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub capability_drop: Vec<String>,
    #[serde(
        default,
        deserialize_with = "wire::nullable",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub ulimits: Vec<Ulimit>,
    #[serde(default, skip_serializing_if = "wire::is_zero")]
    pub oom_score_adj: i64,
}

impl ContainerSpec {
    pub fn validate(&self) -> Result<(), ApiError> {
        if self.image.is_empty() {
            return Err(ApiError::invalid_argument(
                "ContainerSpec: image reference must be provided",
            ));
        }
        if self
            .image
            .chars()
            .any(|c| c.is_whitespace() || c.is_control())
        {
            return Err(ApiError::invalid_argument(format!(
                "ContainerSpec: {:?} is not a valid repository/tag",
                self.image
            )));
        }
        if matches!(self.stop_grace_period, Some(p) if p < 0) {
            return Err(ApiError::invalid_argument(
                "ContainerSpec: StopGracePeriod cannot be negative",
            ));
        }
        if let Some(h) = &self.healthcheck {
            h.validate()?;
        }
        let mut targets = BTreeSet::new();
        for m in &self.mounts {
            m.validate()?;
            if !targets.insert(m.target.as_str()) {
                return Err(ApiError::invalid_argument(format!(
                    "invalid mount config: duplicate mount point {:?}",
                    m.target
                )));
            }
        }
        self.validate_file_refs()?;
        for e in &self.env {
            if e.is_empty() || e.starts_with('=') {
                return Err(ApiError::invalid_argument(format!(
                    "ContainerSpec: invalid environment variable {e:?}"
                )));
            }
        }
        for u in &self.ulimits {
            if u.name.is_empty() || u.soft > u.hard {
                return Err(ApiError::invalid_argument(format!(
                    "ContainerSpec: invalid ulimit {:?}: soft limit must not exceed hard limit",
                    u.name
                )));
            }
        }
        if !(-1000..=1000).contains(&self.oom_score_adj) {
            return Err(ApiError::invalid_argument(format!(
                "ContainerSpec: OomScoreAdj {} must be between -1000 and 1000",
                self.oom_score_adj
            )));
        }
        if !matches!(self.isolation.as_str(), "" | "default") {
            return Err(ApiError::invalid_argument(format!(
                "ContainerSpec: isolation {:?} is not supported on linux",
                self.isolation
            )));
        }
        Ok(())
    }

    /// Secret and config references: names present, file targets present and never shared.
    fn validate_file_refs(&self) -> Result<(), ApiError> {
        let mut seen: BTreeMap<String, String> = BTreeMap::new();
        for s in &self.secrets {
            if s.secret_name.is_empty() && s.secret_id.is_empty() {
                return Err(ApiError::invalid_argument(
                    "malformed secret reference: no name or ID",
                ));
            }
            let Some(f) = &s.file else {
                return Err(ApiError::invalid_argument(format!(
                    "malformed secret reference {:?}: no file target",
                    s.secret_name
                )));
            };
            check_file_target(f, &s.secret_name)?;
            if let Some(other) = seen.insert(f.name.clone(), s.secret_name.clone()) {
                return Err(ApiError::invalid_argument(format!(
                    "secret references '{other}' and '{}' have a conflicting target: '{}'",
                    s.secret_name, f.name
                )));
            }
        }
        let mut seen_cfg: BTreeMap<String, String> = BTreeMap::new();
        for c in &self.configs {
            if c.config_name.is_empty() && c.config_id.is_empty() {
                return Err(ApiError::invalid_argument(
                    "malformed config reference: no name or ID",
                ));
            }
            match (&c.file, &c.runtime) {
                (Some(f), None) => {
                    check_file_target(f, &c.config_name)?;
                    if let Some(other) = seen_cfg.insert(f.name.clone(), c.config_name.clone()) {
                        return Err(ApiError::invalid_argument(format!(
                            "config references '{other}' and '{}' have a conflicting target: '{}'",
                            c.config_name, f.name
                        )));
                    }
                }
                (None, Some(_)) => {}
                _ => {
                    return Err(ApiError::invalid_argument(format!(
                        "malformed config reference {:?}: exactly one of File or Runtime is required",
                        c.config_name
                    )));
                }
            }
        }
        Ok(())
    }
}

fn check_file_target(f: &FileTarget, what: &str) -> Result<(), ApiError> {
    let name = &f.name;
    if name.is_empty() || name.split('/').any(|p| p == "..") || name.contains('\0') {
        return Err(ApiError::invalid_argument(format!(
            "malformed file target {name:?} for {what:?}"
        )));
    }
    f.uid_gid()?;
    if f.mode > 0o7777 {
        return Err(ApiError::invalid_argument(format!(
            "invalid file mode {:o} for {what:?}",
            f.mode
        )));
    }
    Ok(())
}

/// Limits: CPU, memory and process count.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Limit {
    #[serde(default, rename = "NanoCPUs", skip_serializing_if = "wire::is_zero")]
    pub nano_cpus: i64,
    #[serde(default, skip_serializing_if = "wire::is_zero")]
    pub memory_bytes: i64,
    #[serde(default, skip_serializing_if = "wire::is_zero")]
    pub pids: i64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ResourceRequirements {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits: Option<Limit>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reservations: Option<Resources>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub swap_bytes: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_swappiness: Option<i64>,
}

fn check_cpu_mem(what: &str, nano_cpus: i64, memory: i64) -> Result<(), ApiError> {
    if nano_cpus < 0 || (nano_cpus != 0 && nano_cpus < MIN_NANO_CPUS) {
        return Err(ApiError::invalid_argument(format!(
            "invalid {what} cpu value {}: must be at least 0.001",
            nano_cpus as f64 / 1e9
        )));
    }
    if memory < 0 || (memory != 0 && memory < MIN_MEMORY_BYTES) {
        return Err(ApiError::invalid_argument(format!(
            "invalid {what} memory value {memory}: must be at least 4MiB"
        )));
    }
    Ok(())
}

impl ResourceRequirements {
    pub fn validate(&self) -> Result<(), ApiError> {
        if let Some(l) = &self.limits {
            check_cpu_mem("limit", l.nano_cpus, l.memory_bytes)?;
            if l.pids < 0 {
                return Err(ApiError::invalid_argument(
                    "invalid pids limit: cannot be negative",
                ));
            }
        }
        if let Some(r) = &self.reservations {
            check_cpu_mem("reservation", r.nano_cpus, r.memory_bytes)?;
        }
        if let (Some(l), Some(r)) = (&self.limits, &self.reservations) {
            if l.nano_cpus != 0 && r.nano_cpus > l.nano_cpus {
                return Err(ApiError::invalid_argument(
                    "CPU reservation cannot exceed the CPU limit",
                ));
            }
            if l.memory_bytes != 0 && r.memory_bytes > l.memory_bytes {
                return Err(ApiError::invalid_argument(
                    "memory reservation cannot exceed the memory limit",
                ));
            }
        }
        if matches!(self.memory_swappiness, Some(s) if !(0..=100).contains(&s)) {
            return Err(ApiError::invalid_argument(
                "MemorySwappiness must be between 0 and 100",
            ));
        }
        Ok(())
    }
}

/// When and how a stopped task is replaced. Durations in nanoseconds.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct RestartPolicy {
    #[serde(
        default,
        deserialize_with = "wire::opt_enum",
        skip_serializing_if = "Option::is_none"
    )]
    pub condition: Option<RestartCondition>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delay: Option<i64>,
    /// 0 = unlimited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_attempts: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window: Option<i64>,
}

impl RestartPolicy {
    /// Swarmkit's defaults: any, 5 s delay, unlimited attempts, no window.
    pub fn defaults() -> Self {
        RestartPolicy {
            condition: Some(RestartCondition::Any),
            delay: Some(DEFAULT_RESTART_DELAY),
            max_attempts: Some(0),
            window: Some(0),
        }
    }

    pub fn effective_condition(&self) -> RestartCondition {
        self.condition.unwrap_or_default()
    }

    pub fn effective_delay(&self) -> i64 {
        self.delay.unwrap_or(DEFAULT_RESTART_DELAY)
    }

    pub fn validate(&self) -> Result<(), ApiError> {
        if matches!(self.delay, Some(d) if d < 0) {
            return Err(ApiError::invalid_argument(
                "TaskSpec: restart-delay cannot be negative",
            ));
        }
        if matches!(self.window, Some(w) if w < 0) {
            return Err(ApiError::invalid_argument(
                "TaskSpec: restart-window cannot be negative",
            ));
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct SpreadOver {
    #[serde(default)]
    pub spread_descriptor: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct PlacementPreference {
    #[serde(default)]
    pub spread: Option<SpreadOver>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Placement {
    #[serde(
        default,
        deserialize_with = "wire::nullable",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub constraints: Vec<String>,
    #[serde(
        default,
        deserialize_with = "wire::nullable",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub preferences: Vec<PlacementPreference>,
    /// 0 = unlimited tasks of this service per node.
    #[serde(default, skip_serializing_if = "wire::is_zero")]
    pub max_replicas: u64,
    #[serde(
        default,
        deserialize_with = "wire::nullable",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub platforms: Vec<Platform>,
}

impl Placement {
    pub fn validate(&self) -> Result<(), ApiError> {
        parse_constraints(&self.constraints)?;
        for p in &self.preferences {
            match &p.spread {
                Some(s) if !s.spread_descriptor.trim().is_empty() => {}
                _ => {
                    return Err(ApiError::invalid_argument(
                        "invalid placement preference: spread descriptor is required",
                    ));
                }
            }
        }
        Ok(())
    }
}

/// Network aliases as Docker allows them: `[a-zA-Z0-9][a-zA-Z0-9_.-]*` (one character is
/// enough, unlike a container name).
pub fn is_network_alias(s: &str) -> bool {
    s.len() <= 255
        && s.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

/// A network a task attaches to. `Target` is an ID (service create) or a name (stack deploy).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct NetworkAttachmentConfig {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub target: String,
    #[serde(
        default,
        deserialize_with = "wire::nullable",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub aliases: Vec<String>,
    #[serde(
        default,
        deserialize_with = "wire::nullable",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub driver_opts: BTreeMap<String, String>,
}

/// The task template of a service, copied into every task it creates.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct TaskSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container_spec: Option<ContainerSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restart_policy: Option<RestartPolicy>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub placement: Option<Placement>,
    #[serde(
        default,
        deserialize_with = "wire::nullable",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub networks: Vec<NetworkAttachmentConfig>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_driver: Option<Driver>,
    /// Bumped by `service update --force` to redeploy unchanged tasks.
    #[serde(default)]
    pub force_update: u64,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub runtime: String,
}

impl TaskSpec {
    /// IDs of the secrets the container uses.
    pub fn secret_ids(&self) -> impl Iterator<Item = &str> {
        self.container_spec
            .iter()
            .flat_map(|c| c.secrets.iter().map(|r| r.secret_id.as_str()))
    }

    /// IDs of the configs the container uses.
    pub fn config_ids(&self) -> impl Iterator<Item = &str> {
        self.container_spec
            .iter()
            .flat_map(|c| c.configs.iter().map(|r| r.config_id.as_str()))
    }

    /// Fills what the API always reports: runtime "container", isolation "default".
    pub fn normalize(&mut self) {
        if self.runtime.is_empty() {
            self.runtime = RUNTIME_CONTAINER.to_string();
        }
        if let Some(c) = &mut self.container_spec
            && c.isolation.is_empty()
        {
            c.isolation = "default".to_string();
        }
    }

    pub fn validate(&self) -> Result<(), ApiError> {
        if !self.runtime.is_empty() && self.runtime != RUNTIME_CONTAINER {
            return Err(ApiError::invalid_argument(format!(
                "TaskSpec: runtime {:?} is not supported (only \"container\")",
                self.runtime
            )));
        }
        let Some(c) = &self.container_spec else {
            return Err(ApiError::invalid_argument(
                "ContainerSpec: missing in service spec",
            ));
        };
        c.validate()?;
        if let Some(r) = &self.resources {
            r.validate()?;
        }
        if let Some(r) = &self.restart_policy {
            r.validate()?;
        }
        if let Some(p) = &self.placement {
            p.validate()?;
        }
        let mut targets = BTreeSet::new();
        for n in &self.networks {
            if n.target.is_empty() {
                return Err(ApiError::invalid_argument(
                    "network attachment: Target is required",
                ));
            }
            if !targets.insert(n.target.as_str()) {
                return Err(ApiError::invalid_argument(format!(
                    "service cannot attach to network {:?} more than once",
                    n.target
                )));
            }
            // DNS could never answer for an alias outside this rule.
            if let Some(a) = n.aliases.iter().find(|a| !is_network_alias(a)) {
                return Err(ApiError::invalid_argument(format!(
                    "invalid network alias {a:?}: use letters, digits, '_', '.' and '-', starting with a letter or digit"
                )));
            }
        }
        if let Some(l) = &self.log_driver
            && l.name.is_empty()
        {
            return Err(ApiError::invalid_argument("LogDriver: Name is required"));
        }
        Ok(())
    }

    /// The image of the container, or "" if none.
    pub fn image(&self) -> &str {
        self.container_spec
            .as_ref()
            .map_or("", |c| c.image.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_targets() {
        let f = FileTarget {
            name: "db_pw".into(),
            uid: "0".into(),
            gid: "".into(),
            mode: 292,
        };
        assert_eq!(f.secret_path(), "/run/secrets/db_pw");
        assert_eq!(f.config_path(), "/db_pw");
        assert_eq!(f.uid_gid().unwrap(), (0, 0));
        assert_eq!(f.effective_mode(), 0o444);
        let abs = FileTarget {
            name: "/etc/app.cfg".into(),
            uid: "1000".into(),
            gid: "x".into(),
            mode: 0,
        };
        assert_eq!(abs.secret_path(), "/etc/app.cfg");
        assert!(abs.uid_gid().is_err());
        assert_eq!(abs.effective_mode(), 0o444);
        let spec = ContainerSpec {
            image: "bb".into(),
            secrets: vec![SecretReference {
                file: Some(abs),
                secret_id: "s".into(),
                secret_name: "s".into(),
            }],
            ..ContainerSpec::default()
        };
        assert!(spec.validate().unwrap_err().message.contains("GID"));
    }

    #[test]
    fn restart_policy_defaults() {
        let p = RestartPolicy::default();
        assert_eq!(p.effective_condition(), RestartCondition::Any);
        assert_eq!(p.effective_delay(), DEFAULT_RESTART_DELAY);
        let j: RestartPolicy = serde_json::from_str(r#"{"Condition":"","MaxAttempts":3}"#).unwrap();
        assert_eq!(j.condition, None);
        assert_eq!(j.max_attempts, Some(3));
        assert!(serde_json::from_str::<RestartPolicy>(r#"{"Condition":"sometimes"}"#).is_err());
    }
}
