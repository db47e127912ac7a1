//! The typed compose model, in normalized (long) form. Deserializing rejects unknown keys;
//! serializing gives the canonical file that `shoal stack config` prints.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_yaml::Value;

use crate::env::Env;
use crate::lenient::{self, type_name};
use crate::syntax::{self, FileReference, Ports, ServiceVolume};
use crate::units;

/// A duration written as a Go duration string ("1m30s"); held in nanoseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Duration(pub i64);

impl<'de> Deserialize<'de> for Duration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match Value::deserialize(d)? {
            Value::String(s) => units::parse_duration(&s)
                .map(Duration)
                .map_err(D::Error::custom),
            // Only 0 makes sense without a unit.
            Value::Number(n) if n.as_i64() == Some(0) => Ok(Duration(0)),
            Value::Number(n) => Err(D::Error::custom(format!(
                "invalid duration {n}: a unit is required (e.g. \"{n}s\")"
            ))),
            other => Err(D::Error::custom(format!(
                "must be a duration, not {}",
                type_name(&other)
            ))),
        }
    }
}

impl Serialize for Duration {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&units::format_duration(self.0))
    }
}

/// A memory size in bytes; written as a number or "64M".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bytes(pub i64);

impl<'de> Deserialize<'de> for Bytes {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        syntax::opt_size(d)?
            .map(Bytes)
            .ok_or_else(|| D::Error::custom("must be a size, not null"))
    }
}

impl Serialize for Bytes {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_i64(self.0)
    }
}

/// A CPU count ("0.5"), held as NanoCPUs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cpus(pub i64);

impl<'de> Deserialize<'de> for Cpus {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = match Value::deserialize(d)? {
            Value::String(s) => s,
            Value::Number(n) => n.to_string(),
            other => {
                return Err(D::Error::custom(format!(
                    "must be a number of CPUs, not {}",
                    type_name(&other)
                )));
            }
        };
        units::parse_nano_cpus(&s)
            .map(Cpus)
            .map_err(D::Error::custom)
    }
}

impl Serialize for Cpus {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&units::format_nano_cpus(self.0))
    }
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// A whole compose project after loading: every file merged, variables substituted.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Project {
    /// Accepted and ignored, as Docker does with the Compose Specification.
    #[serde(
        default,
        deserialize_with = "lenient::opt_string",
        skip_serializing_if = "Option::is_none"
    )]
    pub version: Option<String>,
    #[serde(
        default,
        deserialize_with = "lenient::opt_string",
        skip_serializing_if = "Option::is_none"
    )]
    pub name: Option<String>,
    #[serde(
        default,
        deserialize_with = "services_map",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub services: BTreeMap<String, Service>,
    #[serde(
        default,
        deserialize_with = "lenient::nullable_defs",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub networks: BTreeMap<String, NetworkDef>,
    #[serde(
        default,
        deserialize_with = "lenient::nullable_defs",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub volumes: BTreeMap<String, VolumeDef>,
    #[serde(
        default,
        deserialize_with = "lenient::nullable_defs",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub secrets: BTreeMap<String, SecretDef>,
    #[serde(
        default,
        deserialize_with = "lenient::nullable_defs",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub configs: BTreeMap<String, ConfigDef>,
    /// Warnings to print (ignored keys, unset variables), in the order found.
    #[serde(skip)]
    pub warnings: Vec<String>,
    /// Directory relative paths were resolved against (that of the first file).
    #[serde(skip)]
    pub working_dir: PathBuf,
    /// The variables used for interpolation; also used for bare keys in `env_file` files.
    #[serde(skip)]
    pub env: Env,
}

fn services_map<'de, D: Deserializer<'de>>(d: D) -> Result<BTreeMap<String, Service>, D::Error> {
    lenient::nullable_defs(d)
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Service {
    #[serde(
        default,
        deserialize_with = "lenient::opt_string",
        skip_serializing_if = "Option::is_none"
    )]
    pub image: Option<String>,
    #[serde(
        default,
        deserialize_with = "lenient::opt_command",
        skip_serializing_if = "Option::is_none"
    )]
    pub command: Option<Vec<String>>,
    #[serde(
        default,
        deserialize_with = "lenient::opt_command",
        skip_serializing_if = "Option::is_none"
    )]
    pub entrypoint: Option<Vec<String>>,
    /// `KEY: value`; a `None` value means "take it from the environment, or leave unset".
    #[serde(
        default,
        deserialize_with = "lenient::list_or_map_nullable",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub environment: BTreeMap<String, Option<String>>,
    #[serde(
        default,
        deserialize_with = "env_files",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub env_file: Vec<EnvFile>,
    #[serde(
        default,
        deserialize_with = "lenient::list_or_map_strings",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub labels: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "ports_empty")]
    pub ports: Ports,
    #[serde(
        default,
        deserialize_with = "service_networks",
        skip_serializing_if = "Option::is_none"
    )]
    pub networks: Option<BTreeMap<String, ServiceNetwork>>,
    #[serde(
        default,
        deserialize_with = "syntax::service_volumes",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub volumes: Vec<ServiceVolume>,
    #[serde(
        default,
        deserialize_with = "syntax::file_references",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub secrets: Vec<FileReference>,
    #[serde(
        default,
        deserialize_with = "syntax::file_references",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub configs: Vec<FileReference>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub healthcheck: Option<Healthcheck>,
    #[serde(
        default,
        deserialize_with = "lenient::opt_string",
        skip_serializing_if = "Option::is_none"
    )]
    pub hostname: Option<String>,
    #[serde(
        default,
        deserialize_with = "lenient::opt_string",
        skip_serializing_if = "Option::is_none"
    )]
    pub user: Option<String>,
    #[serde(
        default,
        deserialize_with = "lenient::opt_string",
        skip_serializing_if = "Option::is_none"
    )]
    pub working_dir: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_grace_period: Option<Duration>,
    #[serde(
        default,
        deserialize_with = "lenient::opt_string",
        skip_serializing_if = "Option::is_none"
    )]
    pub stop_signal: Option<String>,
    #[serde(
        default,
        deserialize_with = "lenient::opt_bool",
        skip_serializing_if = "Option::is_none"
    )]
    pub read_only: Option<bool>,
    #[serde(
        default,
        deserialize_with = "lenient::opt_bool",
        skip_serializing_if = "Option::is_none"
    )]
    pub init: Option<bool>,
    #[serde(
        default,
        deserialize_with = "lenient::opt_bool",
        skip_serializing_if = "Option::is_none"
    )]
    pub tty: Option<bool>,
    #[serde(
        default,
        deserialize_with = "lenient::opt_bool",
        skip_serializing_if = "Option::is_none"
    )]
    pub stdin_open: Option<bool>,
    #[serde(
        default,
        deserialize_with = "lenient::string_list",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub cap_add: Vec<String>,
    #[serde(
        default,
        deserialize_with = "lenient::string_list",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub cap_drop: Vec<String>,
    #[serde(
        default,
        deserialize_with = "lenient::string_list",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub group_add: Vec<String>,
    #[serde(
        default,
        deserialize_with = "lenient::list_or_map_strings",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub sysctls: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub ulimits: BTreeMap<String, Ulimit>,
    /// `host:ip` entries (the mapping form is normalized to this).
    #[serde(
        default,
        deserialize_with = "extra_hosts",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub extra_hosts: Vec<String>,
    #[serde(
        default,
        deserialize_with = "lenient::string_or_list",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub dns: Vec<String>,
    #[serde(
        default,
        deserialize_with = "lenient::string_or_list",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub dns_search: Vec<String>,
    #[serde(
        default,
        deserialize_with = "lenient::string_or_list",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub dns_opt: Vec<String>,
    /// `/path[:options]` entries, mounted as tmpfs.
    #[serde(
        default,
        deserialize_with = "lenient::string_or_list",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub tmpfs: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logging: Option<Logging>,
    #[serde(
        default,
        deserialize_with = "lenient::opt_i64",
        skip_serializing_if = "Option::is_none"
    )]
    pub oom_score_adj: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub isolation: Option<String>,
    /// Ignored by swarm (warned about), but mapped to a restart policy when
    /// `deploy.restart_policy` is absent, as Docker does.
    #[serde(
        default,
        deserialize_with = "lenient::opt_string",
        skip_serializing_if = "Option::is_none"
    )]
    pub restart: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deploy: Option<Deploy>,
}

fn ports_empty(p: &Ports) -> bool {
    p.0.is_empty()
}

/// An `env_file` entry (`path` relative to the working directory).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnvFile {
    pub path: String,
    #[serde(
        default = "yes",
        deserialize_with = "lenient_bool",
        skip_serializing_if = "is_true"
    )]
    pub required: bool,
}

fn yes() -> bool {
    true
}

fn is_true(b: &bool) -> bool {
    *b
}

fn lenient_bool<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    lenient::opt_bool(d).map(|b| b.unwrap_or(false))
}

fn env_files<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<EnvFile>, D::Error> {
    let v = Option::<Value>::deserialize(d)?;
    let items = match v {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Sequence(items)) => items,
        Some(other) => vec![other],
    };
    items
        .into_iter()
        .enumerate()
        .map(|(i, item)| {
            match item {
                Value::String(path) => Ok(EnvFile {
                    path,
                    required: true,
                }),
                m @ Value::Mapping(_) => lenient::from_long::<EnvFile>(m),
                other => Err(format!(
                    "must be a path or a mapping, not {}",
                    type_name(&other)
                )),
            }
            .map_err(|m| D::Error::custom(lenient::nest(&format!("[{i}]"), &m)))
        })
        .collect()
}

/// A service's attachment to one network.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceNetwork {
    #[serde(
        default,
        deserialize_with = "lenient::string_list",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub aliases: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipv4_address: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipv6_address: Option<String>,
    #[serde(
        default,
        deserialize_with = "lenient::list_or_map_strings",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub driver_opts: BTreeMap<String, String>,
}

/// `networks:` of a service: a list of names or a mapping name → options (or null).
fn service_networks<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<BTreeMap<String, ServiceNetwork>>, D::Error> {
    let v = Option::<Value>::deserialize(d)?;
    let mut out = BTreeMap::new();
    match v {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Sequence(items)) => {
            for (i, item) in items.into_iter().enumerate() {
                let name = lenient::scalar_string(&item)
                    .map_err(|m| D::Error::custom(lenient::nest(&format!("[{i}]"), &m)))?;
                out.insert(name, ServiceNetwork::default());
            }
        }
        Some(Value::Mapping(map)) => {
            for (k, val) in map {
                let name = lenient::scalar_string(&k).map_err(D::Error::custom)?;
                let net = match val {
                    Value::Null => ServiceNetwork::default(),
                    m @ Value::Mapping(_) => lenient::from_long::<ServiceNetwork>(m)
                        .map_err(|m| D::Error::custom(lenient::nest(&name, &m)))?,
                    other => {
                        return Err(D::Error::custom(lenient::nest(
                            &name,
                            &format!("must be a mapping or null, not {}", type_name(&other)),
                        )));
                    }
                };
                out.insert(name, net);
            }
        }
        Some(other) => {
            return Err(D::Error::custom(format!(
                "must be a list or a mapping, not {}",
                type_name(&other)
            )));
        }
    }
    Ok(Some(out))
}

fn extra_hosts<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    let v = Option::<Value>::deserialize(d)?;
    match v {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Mapping(map)) => map
            .into_iter()
            .map(|(k, v)| {
                let host = lenient::scalar_string(&k)?;
                let ip = lenient::scalar_string(&v).map_err(|m| lenient::nest(&host, &m))?;
                Ok(format!("{host}:{ip}"))
            })
            .collect::<Result<_, String>>()
            .map_err(D::Error::custom),
        Some(Value::Sequence(items)) => items
            .into_iter()
            .enumerate()
            .map(|(i, item)| {
                let s = lenient::scalar_string(&item)
                    .map_err(|m| lenient::nest(&format!("[{i}]"), &m))?;
                // "host=ip" is the Compose Specification's alternative separator.
                let (host, ip) = s
                    .split_once('=')
                    .or_else(|| s.split_once(':'))
                    .filter(|(h, ip)| !h.is_empty() && !ip.is_empty())
                    .ok_or_else(|| {
                        lenient::nest(
                            &format!("[{i}]"),
                            &format!("invalid extra host {s:?} (expected host:ip)"),
                        )
                    })?;
                Ok(format!("{host}:{ip}"))
            })
            .collect::<Result<_, String>>()
            .map_err(D::Error::custom),
        Some(other) => Err(D::Error::custom(format!(
            "must be a list or a mapping, not {}",
            type_name(&other)
        ))),
    }
}

/// A ulimit: one number for both limits, or `{soft, hard}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Ulimit {
    pub soft: i64,
    pub hard: i64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UlimitLong {
    #[serde(deserialize_with = "req_i64")]
    soft: i64,
    #[serde(deserialize_with = "req_i64")]
    hard: i64,
}

fn req_i64<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    lenient::opt_i64(d)?.ok_or_else(|| D::Error::custom("must be an integer, not null"))
}

impl<'de> Deserialize<'de> for Ulimit {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = Value::deserialize(d)?;
        match v {
            m @ Value::Mapping(_) => lenient::from_long::<UlimitLong>(m)
                .map(|l| Ulimit {
                    soft: l.soft,
                    hard: l.hard,
                })
                .map_err(D::Error::custom),
            other => lenient::to_i64(&other)
                .map(|n| Ulimit { soft: n, hard: n })
                .map_err(D::Error::custom),
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Healthcheck {
    /// A string is `["CMD-SHELL", s]`; a list is taken as is (`["CMD", …]`, `["NONE"]`).
    #[serde(
        default,
        deserialize_with = "health_test",
        skip_serializing_if = "Option::is_none"
    )]
    pub test: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<Duration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<Duration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_period: Option<Duration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_interval: Option<Duration>,
    #[serde(
        default,
        deserialize_with = "lenient::opt_u64",
        skip_serializing_if = "Option::is_none"
    )]
    pub retries: Option<u64>,
    #[serde(
        default,
        deserialize_with = "lenient_bool",
        skip_serializing_if = "is_false"
    )]
    pub disable: bool,
}

fn health_test<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<String>>, D::Error> {
    let v = Option::<Value>::deserialize(d)?;
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(vec!["CMD-SHELL".to_string(), s])),
        Some(Value::Sequence(items)) => items
            .iter()
            .enumerate()
            .map(|(i, x)| {
                lenient::scalar_string(x).map_err(|m| lenient::nest(&format!("[{i}]"), &m))
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some)
            .map_err(D::Error::custom),
        Some(other) => Err(D::Error::custom(format!(
            "must be a string or a list, not {}",
            type_name(&other)
        ))),
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Logging {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub driver: Option<String>,
    #[serde(
        default,
        deserialize_with = "lenient::list_or_map_strings",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub options: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Deploy {
    /// replicated (default), global, replicated-job or global-job.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
    #[serde(
        default,
        deserialize_with = "lenient::opt_u64",
        skip_serializing_if = "Option::is_none"
    )]
    pub replicas: Option<u64>,
    #[serde(
        default,
        deserialize_with = "lenient::list_or_map_strings",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub labels: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub placement: Option<Placement>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<Resources>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restart_policy: Option<RestartPolicy>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub update_config: Option<UpdateConfig>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollback_config: Option<UpdateConfig>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint_mode: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Placement {
    #[serde(
        default,
        deserialize_with = "lenient::string_list",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub constraints: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub preferences: Vec<PlacementPreference>,
    #[serde(
        default,
        deserialize_with = "lenient::opt_u64",
        skip_serializing_if = "Option::is_none"
    )]
    pub max_replicas_per_node: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlacementPreference {
    pub spread: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Resources {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits: Option<ResourceLimits>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reservations: Option<ResourceLimits>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResourceLimits {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpus: Option<Cpus>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<Bytes>,
    #[serde(
        default,
        deserialize_with = "lenient::opt_i64",
        skip_serializing_if = "Option::is_none"
    )]
    pub pids: Option<i64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub generic_resources: Vec<GenericResource>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GenericResource {
    pub discrete_resource_spec: DiscreteResource,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DiscreteResource {
    pub kind: String,
    #[serde(deserialize_with = "req_i64")]
    pub value: i64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RestartPolicy {
    /// none, on-failure or any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub condition: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delay: Option<Duration>,
    #[serde(
        default,
        deserialize_with = "lenient::opt_u64",
        skip_serializing_if = "Option::is_none"
    )]
    pub max_attempts: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window: Option<Duration>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateConfig {
    #[serde(
        default,
        deserialize_with = "lenient::opt_u64",
        skip_serializing_if = "Option::is_none"
    )]
    pub parallelism: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delay: Option<Duration>,
    /// pause, continue or rollback.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_action: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub monitor: Option<Duration>,
    #[serde(
        default,
        deserialize_with = "lenient::opt_f64",
        skip_serializing_if = "Option::is_none"
    )]
    pub max_failure_ratio: Option<f64>,
    /// stop-first or start-first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order: Option<String>,
}

/// Reads `external` as a boolean or a legacy `{name: …}` mapping; the name is returned apart.
fn read_external(v: &Value) -> Result<(bool, Option<String>), String> {
    match v {
        Value::Mapping(m) => {
            let mut name = None;
            for (k, val) in m {
                match k.as_str() {
                    Some("name") => name = Some(lenient::scalar_string(val)?),
                    _ => {
                        return Err(format!(
                            "unknown key {:?} in external (only name is allowed)",
                            crate::yaml::key_string(k)
                        ));
                    }
                }
            }
            Ok((true, name))
        }
        other => lenient::to_bool(other).map(|b| (b, None)),
    }
}

/// Serde glue shared by the four top-level object kinds: `external` may carry a name.
macro_rules! external_object {
    ($ty:ident, $raw:ident) => {
        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let mut raw = $raw::deserialize(d)?;
                let external = raw.external.take();
                let mut obj = $ty::from(raw);
                if let Some(ext) = &external {
                    let (is_ext, name) = read_external(ext)
                        .map_err(|m| D::Error::custom(lenient::nest("external", &m)))?;
                    obj.external = is_ext;
                    if let Some(n) = name {
                        if obj.name.as_ref().is_some_and(|o| *o != n) {
                            return Err(D::Error::custom(
                                "external.name and name are both set and differ",
                            ));
                        }
                        obj.name = Some(n);
                    }
                }
                Ok(obj)
            }
        }
    };
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct NetworkDef {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub driver: Option<String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub driver_opts: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "is_false")]
    pub attachable: bool,
    #[serde(skip_serializing_if = "is_false")]
    pub internal: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub enable_ipv6: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ipam: Option<Ipam>,
    #[serde(skip_serializing_if = "is_false")]
    pub external: bool,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNetwork {
    #[serde(default, deserialize_with = "lenient::opt_string")]
    name: Option<String>,
    #[serde(default, deserialize_with = "lenient::opt_string")]
    driver: Option<String>,
    #[serde(default, deserialize_with = "lenient::list_or_map_strings")]
    driver_opts: BTreeMap<String, String>,
    #[serde(default, deserialize_with = "lenient_bool")]
    attachable: bool,
    #[serde(default, deserialize_with = "lenient_bool")]
    internal: bool,
    #[serde(default, deserialize_with = "lenient::opt_bool")]
    enable_ipv6: Option<bool>,
    #[serde(default)]
    ipam: Option<Ipam>,
    #[serde(default)]
    external: Option<Value>,
    #[serde(default, deserialize_with = "lenient::list_or_map_strings")]
    labels: BTreeMap<String, String>,
}

impl From<RawNetwork> for NetworkDef {
    fn from(r: RawNetwork) -> Self {
        NetworkDef {
            name: r.name,
            driver: r.driver,
            driver_opts: r.driver_opts,
            attachable: r.attachable,
            internal: r.internal,
            enable_ipv6: r.enable_ipv6,
            ipam: r.ipam,
            external: false,
            labels: r.labels,
        }
    }
}

external_object!(NetworkDef, RawNetwork);

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Ipam {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub driver: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub config: Vec<IpamPool>,
    #[serde(
        default,
        deserialize_with = "lenient::list_or_map_strings",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub options: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IpamPool {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subnet: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip_range: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<String>,
    #[serde(
        default,
        deserialize_with = "lenient::list_or_map_strings",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub aux_addresses: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct VolumeDef {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub driver: Option<String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub driver_opts: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "is_false")]
    pub external: bool,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawVolume {
    #[serde(default, deserialize_with = "lenient::opt_string")]
    name: Option<String>,
    #[serde(default, deserialize_with = "lenient::opt_string")]
    driver: Option<String>,
    #[serde(default, deserialize_with = "lenient::list_or_map_strings")]
    driver_opts: BTreeMap<String, String>,
    #[serde(default)]
    external: Option<Value>,
    #[serde(default, deserialize_with = "lenient::list_or_map_strings")]
    labels: BTreeMap<String, String>,
}

impl From<RawVolume> for VolumeDef {
    fn from(r: RawVolume) -> Self {
        VolumeDef {
            name: r.name,
            driver: r.driver,
            driver_opts: r.driver_opts,
            external: false,
            labels: r.labels,
        }
    }
}

external_object!(VolumeDef, RawVolume);

/// A top-level secret: from a `file`, from an `environment` variable, or `external`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SecretDef {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub environment: Option<String>,
    #[serde(skip_serializing_if = "is_false")]
    pub external: bool,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub driver: Option<String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub driver_opts: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub template_driver: Option<String>,
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSecret {
    #[serde(default, deserialize_with = "lenient::opt_string")]
    name: Option<String>,
    #[serde(default, deserialize_with = "lenient::opt_string")]
    file: Option<String>,
    #[serde(default, deserialize_with = "lenient::opt_string")]
    environment: Option<String>,
    #[serde(default)]
    external: Option<Value>,
    #[serde(default, deserialize_with = "lenient::list_or_map_strings")]
    labels: BTreeMap<String, String>,
    #[serde(default, deserialize_with = "lenient::opt_string")]
    driver: Option<String>,
    #[serde(default, deserialize_with = "lenient::list_or_map_strings")]
    driver_opts: BTreeMap<String, String>,
    #[serde(default, deserialize_with = "lenient::opt_string")]
    template_driver: Option<String>,
}

impl From<RawSecret> for SecretDef {
    fn from(r: RawSecret) -> Self {
        SecretDef {
            name: r.name,
            file: r.file,
            environment: r.environment,
            external: false,
            labels: r.labels,
            driver: r.driver,
            driver_opts: r.driver_opts,
            template_driver: r.template_driver,
        }
    }
}

external_object!(SecretDef, RawSecret);

/// A top-level config: from a `file`, inline `content`, an `environment` variable, or `external`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ConfigDef {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub environment: Option<String>,
    #[serde(skip_serializing_if = "is_false")]
    pub external: bool,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub template_driver: Option<String>,
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default, deserialize_with = "lenient::opt_string")]
    name: Option<String>,
    #[serde(default, deserialize_with = "lenient::opt_string")]
    file: Option<String>,
    #[serde(default, deserialize_with = "lenient::opt_string")]
    content: Option<String>,
    #[serde(default, deserialize_with = "lenient::opt_string")]
    environment: Option<String>,
    #[serde(default)]
    external: Option<Value>,
    #[serde(default, deserialize_with = "lenient::list_or_map_strings")]
    labels: BTreeMap<String, String>,
    #[serde(default, deserialize_with = "lenient::opt_string")]
    template_driver: Option<String>,
}

impl From<RawConfig> for ConfigDef {
    fn from(r: RawConfig) -> Self {
        ConfigDef {
            name: r.name,
            file: r.file,
            content: r.content,
            environment: r.environment,
            external: false,
            labels: r.labels,
            template_driver: r.template_driver,
        }
    }
}

external_object!(ConfigDef, RawConfig);
