//! Cluster-wide objects: the swarm spec and defaults, `GET /swarm`, init/join requests, `/info` swarm block,
//! and the internal `Cluster` object kept in Raft.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::duration::{HOUR, SECOND};
use crate::error::ApiError;
use crate::meta::{Annotations, Driver, Meta};
use crate::node::NodeAvailability;
use crate::wire;

/// Default values applied at init (swarmkit / moby defaults).
pub const DEFAULT_CLUSTER_NAME: &str = "default";
pub const DEFAULT_TASK_HISTORY: i64 = 5;
pub const DEFAULT_SNAPSHOT_INTERVAL: u64 = 10_000;
pub const DEFAULT_LOG_ENTRIES_FOR_SLOW_FOLLOWERS: u64 = 500;
pub const DEFAULT_ELECTION_TICK: i64 = 10;
pub const DEFAULT_HEARTBEAT_TICK: i64 = 1;
pub const DEFAULT_HEARTBEAT_PERIOD: i64 = 5 * SECOND;
pub const DEFAULT_NODE_CERT_EXPIRY: i64 = 90 * 24 * HOUR;
pub const MIN_NODE_CERT_EXPIRY: i64 = HOUR;
pub const DEFAULT_ADDR_POOL: &str = "10.0.0.0/8";
pub const DEFAULT_SUBNET_SIZE: u32 = 24;
pub const DEFAULT_DATA_PATH_PORT: u32 = 4789;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct OrchestrationConfig {
    /// Old tasks kept per slot; negative keeps all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task_history_retention_limit: Option<i64>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct RaftConfig {
    #[serde(default, skip_serializing_if = "wire::is_zero")]
    pub snapshot_interval: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_old_snapshots: Option<u64>,
    #[serde(default, skip_serializing_if = "wire::is_zero")]
    pub log_entries_for_slow_followers: u64,
    #[serde(default)]
    pub election_tick: i64,
    #[serde(default)]
    pub heartbeat_tick: i64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DispatcherConfig {
    /// Nanoseconds.
    #[serde(default, skip_serializing_if = "wire::is_zero")]
    pub heartbeat_period: i64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ExternalCA {
    #[serde(default)]
    pub protocol: String,
    #[serde(default, rename = "URL")]
    pub url: String,
    #[serde(
        default,
        deserialize_with = "wire::nullable",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub options: BTreeMap<String, String>,
    #[serde(default, rename = "CACert")]
    pub ca_cert: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct CAConfig {
    /// Nanoseconds.
    #[serde(default, skip_serializing_if = "wire::is_zero")]
    pub node_cert_expiry: i64,
    #[serde(
        default,
        rename = "ExternalCAs",
        deserialize_with = "wire::nullable",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub external_cas: Vec<ExternalCA>,
    #[serde(
        default,
        rename = "SigningCACert",
        skip_serializing_if = "String::is_empty"
    )]
    pub signing_ca_cert: String,
    #[serde(
        default,
        rename = "SigningCAKey",
        skip_serializing_if = "String::is_empty"
    )]
    pub signing_ca_key: String,
    #[serde(default, skip_serializing_if = "wire::is_zero")]
    pub force_rotate: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct TaskDefaults {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_driver: Option<Driver>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct EncryptionConfig {
    #[serde(default)]
    pub auto_lock_managers: bool,
}

/// The swarm's `Spec` (`GET /swarm` `.Spec`, `POST /swarm/update` body).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ClusterSpec {
    #[serde(flatten)]
    pub annotations: Annotations,
    #[serde(default)]
    pub orchestration: OrchestrationConfig,
    #[serde(default)]
    pub raft: RaftConfig,
    #[serde(default)]
    pub dispatcher: DispatcherConfig,
    #[serde(default, rename = "CAConfig")]
    pub ca_config: CAConfig,
    #[serde(default)]
    pub task_defaults: TaskDefaults,
    #[serde(default)]
    pub encryption_config: EncryptionConfig,
}

impl ClusterSpec {
    /// The spec a fresh cluster gets when the request leaves everything zero.
    pub fn defaults() -> Self {
        ClusterSpec {
            annotations: Annotations::named(DEFAULT_CLUSTER_NAME),
            orchestration: OrchestrationConfig {
                task_history_retention_limit: Some(DEFAULT_TASK_HISTORY),
            },
            raft: RaftConfig {
                snapshot_interval: DEFAULT_SNAPSHOT_INTERVAL,
                keep_old_snapshots: Some(0),
                log_entries_for_slow_followers: DEFAULT_LOG_ENTRIES_FOR_SLOW_FOLLOWERS,
                election_tick: DEFAULT_ELECTION_TICK,
                heartbeat_tick: DEFAULT_HEARTBEAT_TICK,
            },
            dispatcher: DispatcherConfig {
                heartbeat_period: DEFAULT_HEARTBEAT_PERIOD,
            },
            ca_config: CAConfig {
                node_cert_expiry: DEFAULT_NODE_CERT_EXPIRY,
                ..CAConfig::default()
            },
            task_defaults: TaskDefaults::default(),
            encryption_config: EncryptionConfig::default(),
        }
    }

    /// "Take the defaults, apply the non-zero fields of `self`" (moby's init rule).
    pub fn merged_with_defaults(&self) -> Self {
        let mut out = Self::defaults();
        if !self.annotations.name.is_empty() {
            out.annotations.name = self.annotations.name.clone();
        }
        out.annotations.labels = self.annotations.labels.clone();
        if self.orchestration.task_history_retention_limit.is_some() {
            out.orchestration.task_history_retention_limit =
                self.orchestration.task_history_retention_limit;
        }
        let r = &self.raft;
        if r.snapshot_interval != 0 {
            out.raft.snapshot_interval = r.snapshot_interval;
        }
        if r.keep_old_snapshots.is_some() {
            out.raft.keep_old_snapshots = r.keep_old_snapshots;
        }
        if r.log_entries_for_slow_followers != 0 {
            out.raft.log_entries_for_slow_followers = r.log_entries_for_slow_followers;
        }
        if r.election_tick != 0 {
            out.raft.election_tick = r.election_tick;
        }
        if r.heartbeat_tick != 0 {
            out.raft.heartbeat_tick = r.heartbeat_tick;
        }
        if self.dispatcher.heartbeat_period != 0 {
            out.dispatcher.heartbeat_period = self.dispatcher.heartbeat_period;
        }
        let ca = &self.ca_config;
        if ca.node_cert_expiry != 0 {
            out.ca_config.node_cert_expiry = ca.node_cert_expiry;
        }
        out.ca_config.external_cas = ca.external_cas.clone();
        out.ca_config.signing_ca_cert = ca.signing_ca_cert.clone();
        out.ca_config.signing_ca_key = ca.signing_ca_key.clone();
        out.ca_config.force_rotate = ca.force_rotate;
        if self.task_defaults.log_driver.is_some() {
            out.task_defaults.log_driver = self.task_defaults.log_driver.clone();
        }
        out.encryption_config = self.encryption_config.clone();
        out
    }

    /// Checks a spec that is about to be stored (after merging defaults).
    pub fn validate(&self) -> Result<(), ApiError> {
        let name = &self.annotations.name;
        if name != DEFAULT_CLUSTER_NAME {
            return Err(ApiError::invalid_argument(format!(
                "invalid Name {name:?}: swarm spec must be named \"default\""
            )));
        }
        if self.raft.election_tick < 1 || self.raft.heartbeat_tick < 1 {
            return Err(ApiError::invalid_argument(
                "raft ElectionTick and HeartbeatTick must be at least 1",
            ));
        }
        if self.raft.election_tick <= self.raft.heartbeat_tick {
            return Err(ApiError::invalid_argument(
                "raft ElectionTick must be greater than HeartbeatTick",
            ));
        }
        if self.dispatcher.heartbeat_period < 0 {
            return Err(ApiError::invalid_argument(
                "heartbeat period must be positive",
            ));
        }
        if self.ca_config.node_cert_expiry != 0
            && self.ca_config.node_cert_expiry < MIN_NODE_CERT_EXPIRY
        {
            return Err(ApiError::invalid_argument(
                "minimum certificate expiry time is 1h0m0s",
            ));
        }
        for ca in &self.ca_config.external_cas {
            if ca.protocol != "cfssl" {
                return Err(ApiError::invalid_argument(format!(
                    "invalid external CA protocol {:?}",
                    ca.protocol
                )));
            }
            if ca.url.is_empty() {
                return Err(ApiError::invalid_argument("external CA URL is required"));
            }
        }
        if self.ca_config.signing_ca_cert.is_empty() != self.ca_config.signing_ca_key.is_empty()
            && !self.ca_config.signing_ca_key.is_empty()
        {
            return Err(ApiError::invalid_argument(
                "a signing CA key requires a signing CA certificate",
            ));
        }
        Ok(())
    }
}

/// Root of trust shown to clients; `[]byte` fields are base64 DER.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct TLSInfo {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub trust_root: String,
    #[serde(default, with = "wire::bytes", skip_serializing_if = "Vec::is_empty")]
    pub cert_issuer_subject: Vec<u8>,
    #[serde(default, with = "wire::bytes", skip_serializing_if = "Vec::is_empty")]
    pub cert_issuer_public_key: Vec<u8>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct JoinTokens {
    #[serde(default)]
    pub worker: String,
    #[serde(default)]
    pub manager: String,
}

/// `ClusterInfo`: the swarm as `/info` shows it (no join tokens).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ClusterInfo {
    #[serde(rename = "ID")]
    pub id: String,
    #[serde(flatten)]
    pub meta: Meta,
    #[serde(default)]
    pub spec: ClusterSpec,
    #[serde(default, rename = "TLSInfo")]
    pub tls_info: TLSInfo,
    #[serde(default)]
    pub root_rotation_in_progress: bool,
    #[serde(default, deserialize_with = "wire::nullable")]
    pub default_addr_pool: Vec<String>,
    #[serde(default)]
    pub subnet_size: u32,
    #[serde(default)]
    pub data_path_port: u32,
}

/// `GET /swarm`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Swarm {
    #[serde(flatten)]
    pub cluster_info: ClusterInfo,
    #[serde(default)]
    pub join_tokens: JoinTokens,
}

/// `POST /swarm/init` body.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct InitRequest {
    #[serde(default)]
    pub listen_addr: String,
    #[serde(default)]
    pub advertise_addr: String,
    #[serde(default)]
    pub data_path_addr: String,
    #[serde(default)]
    pub data_path_port: u32,
    #[serde(default)]
    pub force_new_cluster: bool,
    #[serde(default)]
    pub spec: ClusterSpec,
    #[serde(default)]
    pub auto_lock_managers: bool,
    #[serde(default, deserialize_with = "wire::enum_or_default")]
    pub availability: NodeAvailability,
    #[serde(default, deserialize_with = "wire::nullable")]
    pub default_addr_pool: Vec<String>,
    #[serde(default)]
    pub subnet_size: u32,
}

impl InitRequest {
    /// The cluster spec to store: defaults merged with the request, autolock folded in.
    pub fn effective_spec(&self) -> Result<ClusterSpec, ApiError> {
        let mut spec = self.spec.merged_with_defaults();
        if self.auto_lock_managers {
            spec.encryption_config.auto_lock_managers = true;
        }
        spec.validate()?;
        Ok(spec)
    }

    /// Address pool, subnet size and data path port with defaults, validated.
    pub fn effective_network_config(&self) -> Result<(Vec<String>, u32, u32), ApiError> {
        let pool = if self.default_addr_pool.is_empty() {
            vec![DEFAULT_ADDR_POOL.to_string()]
        } else {
            self.default_addr_pool.clone()
        };
        let subnet = if self.subnet_size == 0 {
            DEFAULT_SUBNET_SIZE
        } else {
            self.subnet_size
        };
        let mut nets = Vec::new();
        for p in &pool {
            let net: ipnet::IpNet = p.parse().map_err(|_| {
                ApiError::invalid_argument(format!("invalid default address pool {p:?}"))
            })?;
            if !matches!(net, ipnet::IpNet::V4(_)) {
                return Err(ApiError::invalid_argument(format!(
                    "default address pool {p:?} must be IPv4"
                )));
            }
            if u32::from(net.prefix_len()) > subnet {
                return Err(ApiError::invalid_argument(format!(
                    "subnet size {subnet} is smaller than the pool {p}"
                )));
            }
            nets.push(net);
        }
        if subnet > 29 {
            return Err(ApiError::invalid_argument(format!(
                "invalid subnet size {subnet}: must be at most 29"
            )));
        }
        for (i, a) in nets.iter().enumerate() {
            for b in &nets[i + 1..] {
                if a.contains(&b.network()) || b.contains(&a.network()) {
                    return Err(ApiError::invalid_argument(format!(
                        "default address pools {a} and {b} overlap"
                    )));
                }
            }
        }
        let port = if self.data_path_port == 0 {
            DEFAULT_DATA_PATH_PORT
        } else {
            self.data_path_port
        };
        if !(1024..=49151).contains(&port) && port != DEFAULT_DATA_PATH_PORT {
            return Err(ApiError::invalid_argument(format!(
                "data path port {port} must be within 1024-49151"
            )));
        }
        Ok((pool, subnet, port))
    }
}

/// `POST /swarm/join` body.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct JoinRequest {
    #[serde(default)]
    pub listen_addr: String,
    #[serde(default)]
    pub advertise_addr: String,
    #[serde(default)]
    pub data_path_addr: String,
    #[serde(default, deserialize_with = "wire::nullable")]
    pub remote_addrs: Vec<String>,
    #[serde(default)]
    pub join_token: String,
    #[serde(default, deserialize_with = "wire::enum_or_default")]
    pub availability: NodeAvailability,
}

/// `POST /swarm/unlock` body.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct UnlockRequest {
    #[serde(default)]
    pub unlock_key: String,
}

/// `GET /swarm/unlockkey` reply.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct UnlockKeyResponse {
    #[serde(default)]
    pub unlock_key: String,
}

/// Query flags of `POST /swarm/update`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct UpdateFlags {
    #[serde(default)]
    pub rotate_worker_token: bool,
    #[serde(default)]
    pub rotate_manager_token: bool,
    #[serde(default)]
    pub rotate_manager_unlock_key: bool,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LocalNodeState {
    #[default]
    Inactive,
    Pending,
    Active,
    Error,
    Locked,
}

crate::node::enum_str!(LocalNodeState {
    Inactive => "inactive", Pending => "pending", Active => "active", Error => "error", Locked => "locked"
});

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Peer {
    #[serde(rename = "NodeID", default)]
    pub node_id: String,
    #[serde(default)]
    pub addr: String,
}

/// The `Swarm` block of `GET /info`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct SwarmInfo {
    #[serde(rename = "NodeID", default)]
    pub node_id: String,
    #[serde(default)]
    pub node_addr: String,
    #[serde(default, deserialize_with = "wire::enum_or_default")]
    pub local_node_state: LocalNodeState,
    #[serde(default)]
    pub control_available: bool,
    #[serde(default)]
    pub error: String,
    #[serde(default, deserialize_with = "wire::nullable")]
    pub remote_managers: Vec<Peer>,
    #[serde(default, skip_serializing_if = "wire::is_zero")]
    pub nodes: i64,
    #[serde(default, skip_serializing_if = "wire::is_zero")]
    pub managers: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<ClusterInfo>,
    #[serde(
        default,
        deserialize_with = "wire::nullable",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub warnings: Vec<String>,
}

/// Root CA material kept in the cluster object.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct RootCA {
    /// PEM certificate.
    #[serde(default, rename = "CACert")]
    pub ca_cert: String,
    /// Private key, encrypted by the CA owner before it is stored.
    #[serde(default, rename = "CAKey", with = "wire::bytes")]
    pub ca_key: Vec<u8>,
    /// sha256 digest of the certificate (the join token pins it).
    #[serde(default, rename = "CACertHash")]
    pub ca_cert_hash: String,
    /// DER subject of the CA certificate (for `TLSInfo.CertIssuerSubject`).
    #[serde(default, with = "wire::bytes")]
    pub cert_issuer_subject: Vec<u8>,
    /// DER SubjectPublicKeyInfo of the CA certificate (for `TLSInfo.CertIssuerPublicKey`).
    #[serde(default, with = "wire::bytes")]
    pub cert_issuer_public_key: Vec<u8>,
    #[serde(default)]
    pub join_tokens: JoinTokens,
}

/// A removed node's certificate is refused until `expiry`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct BlacklistedCertificate {
    #[serde(
        default,
        with = "wire::opt_time",
        skip_serializing_if = "Option::is_none"
    )]
    pub expiry: Option<DateTime<Utc>>,
}

/// A network encryption key distributed to agents (gossip / data plane).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct EncryptionKey {
    #[serde(default)]
    pub subsystem: String,
    #[serde(default)]
    pub algorithm: String,
    #[serde(default, with = "wire::bytes")]
    pub key: Vec<u8>,
    #[serde(default)]
    pub lamport_time: u64,
}

/// The cluster object stored in Raft (one per cluster).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Cluster {
    #[serde(rename = "ID")]
    pub id: String,
    #[serde(flatten)]
    pub meta: Meta,
    #[serde(default)]
    pub spec: ClusterSpec,
    #[serde(default, rename = "RootCA")]
    pub root_ca: RootCA,
    /// Only set while autolock is on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unlock_key: Option<String>,
    #[serde(default, deserialize_with = "wire::nullable")]
    pub default_addr_pool: Vec<String>,
    #[serde(default)]
    pub subnet_size: u32,
    #[serde(default)]
    pub data_path_port: u32,
    #[serde(default)]
    pub root_rotation_in_progress: bool,
    #[serde(default, deserialize_with = "wire::nullable")]
    pub blacklisted_certificates: BTreeMap<String, BlacklistedCertificate>,
    #[serde(default, deserialize_with = "wire::nullable")]
    pub network_bootstrap_keys: Vec<EncryptionKey>,
}

impl Cluster {
    pub fn tls_info(&self) -> TLSInfo {
        TLSInfo {
            trust_root: self.root_ca.ca_cert.clone(),
            cert_issuer_subject: self.root_ca.cert_issuer_subject.clone(),
            cert_issuer_public_key: self.root_ca.cert_issuer_public_key.clone(),
        }
    }

    /// The `/info` view (no join tokens).
    pub fn to_cluster_info(&self) -> ClusterInfo {
        ClusterInfo {
            id: self.id.clone(),
            meta: self.meta.clone(),
            spec: self.spec.clone(),
            tls_info: self.tls_info(),
            root_rotation_in_progress: self.root_rotation_in_progress,
            default_addr_pool: self.default_addr_pool.clone(),
            subnet_size: self.subnet_size,
            data_path_port: self.data_path_port,
        }
    }

    /// The `GET /swarm` view.
    pub fn to_swarm(&self) -> Swarm {
        Swarm {
            cluster_info: self.to_cluster_info(),
            join_tokens: self.root_ca.join_tokens.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = r#"{"ID":"i16iqbabcdefghijklmnopqrs","Version":{"Index":10},"CreatedAt":"2026-11-23T08:40:00.123456789Z","UpdatedAt":"2026-11-23T08:40:01.5Z",
 "Spec":{"Name":"default","Labels":{},"Orchestration":{"TaskHistoryRetentionLimit":5},
   "Raft":{"SnapshotInterval":10000,"KeepOldSnapshots":0,"LogEntriesForSlowFollowers":500,"ElectionTick":10,"HeartbeatTick":1},
   "Dispatcher":{"HeartbeatPeriod":5000000000},"CAConfig":{"NodeCertExpiry":7776000000000000},
   "TaskDefaults":{},"EncryptionConfig":{"AutoLockManagers":false}},
 "TLSInfo":{"TrustRoot":"-----BEGIN CERTIFICATE-----\nX","CertIssuerSubject":"AQID","CertIssuerPublicKey":"BAUG"},
 "RootRotationInProgress":false,"DefaultAddrPool":["10.0.0.0/8"],"SubnetSize":24,"DataPathPort":4789,
 "JoinTokens":{"Worker":"SWMTKN-1-a-b","Manager":"SWMTKN-1-a-c"}}"#;

    #[test]
    fn swarm_sample_round_trip() {
        let s: Swarm = serde_json::from_str(SAMPLE).unwrap();
        assert_eq!(s.cluster_info.meta.version.index, 10);
        assert_eq!(s.cluster_info.spec, ClusterSpec::defaults());
        assert_eq!(s.join_tokens.manager, "SWMTKN-1-a-c");
        let out = serde_json::to_value(&s).unwrap();
        let orig: serde_json::Value = serde_json::from_str(SAMPLE).unwrap();
        for k in [
            "ID",
            "Version",
            "CreatedAt",
            "Spec",
            "TLSInfo",
            "RootRotationInProgress",
            "DefaultAddrPool",
            "SubnetSize",
            "DataPathPort",
            "JoinTokens",
        ] {
            assert_eq!(out[k], orig[k], "field {k}");
        }
    }

    #[test]
    fn init_request_from_cli() {
        let body = r#"{"ListenAddr":"0.0.0.0:2377","AdvertiseAddr":"","DataPathAddr":"","DataPathPort":0,"ForceNewCluster":false,"Spec":{"Labels":null,"Orchestration":{},"Raft":{"ElectionTick":0,"HeartbeatTick":0},"Dispatcher":{},"CAConfig":{},"TaskDefaults":{},"EncryptionConfig":{"AutoLockManagers":false}},"AutoLockManagers":false,"Availability":"","DefaultAddrPool":[],"SubnetSize":24}"#;
        let req: InitRequest = serde_json::from_str(body).unwrap();
        assert_eq!(req.availability, NodeAvailability::Active);
        let spec = req.effective_spec().unwrap();
        assert_eq!(spec, ClusterSpec::defaults());
        assert_eq!(spec.dispatcher.heartbeat_period, 5_000_000_000);
        assert_eq!(spec.ca_config.node_cert_expiry, 7_776_000_000_000_000);
        let (pool, subnet, port) = req.effective_network_config().unwrap();
        assert_eq!(pool, vec!["10.0.0.0/8".to_string()]);
        assert_eq!((subnet, port), (24, 4789));
    }

    #[test]
    fn join_and_update_bodies_from_cli() {
        let j: JoinRequest = serde_json::from_str(
            r#"{"ListenAddr":"0.0.0.0:2377","AdvertiseAddr":"","DataPathAddr":"","RemoteAddrs":["10.9.0.1:2377"],"JoinToken":"SWMTKN-1-x-y","Availability":""}"#,
        )
        .unwrap();
        assert_eq!(j.remote_addrs, ["10.9.0.1:2377"]);
        assert_eq!(j.availability, NodeAvailability::Active);
        // `swarm update` sends back the Spec it read.
        let spec = ClusterSpec::defaults();
        let body = serde_json::to_string(&spec).unwrap();
        let back: ClusterSpec = serde_json::from_str(&body).unwrap();
        assert_eq!(back, spec);
        back.validate().unwrap();
        let u: UnlockKeyResponse = serde_json::from_str(r#"{"UnlockKey":"SWMKEY-1-abc"}"#).unwrap();
        assert_eq!(u.unlock_key, "SWMKEY-1-abc");
    }

    #[test]
    fn merge_keeps_non_zero_fields() {
        let mut s = ClusterSpec::default();
        s.orchestration.task_history_retention_limit = Some(2);
        s.dispatcher.heartbeat_period = 2 * SECOND;
        s.raft.election_tick = 20;
        let m = s.merged_with_defaults();
        assert_eq!(m.orchestration.task_history_retention_limit, Some(2));
        assert_eq!(m.dispatcher.heartbeat_period, 2 * SECOND);
        assert_eq!(m.raft.election_tick, 20);
        assert_eq!(m.raft.heartbeat_tick, 1);
        assert_eq!(m.raft.snapshot_interval, 10_000);
    }

    #[test]
    fn spec_validation() {
        let mut s = ClusterSpec::defaults();
        s.annotations.name = "other".into();
        assert!(s.validate().is_err());
        let mut s = ClusterSpec::defaults();
        s.ca_config.node_cert_expiry = SECOND;
        assert!(s.validate().is_err());
        let mut s = ClusterSpec::defaults();
        s.raft.heartbeat_tick = 10;
        assert!(s.validate().is_err());
        let req = InitRequest {
            default_addr_pool: vec!["10.0.0.0/8".into(), "10.1.0.0/16".into()],
            ..InitRequest::default()
        };
        assert!(req.effective_network_config().is_err());
        let req = InitRequest {
            default_addr_pool: vec!["bogus".into()],
            ..InitRequest::default()
        };
        assert!(req.effective_network_config().is_err());
    }

    #[test]
    fn cluster_to_swarm() {
        let c = Cluster {
            id: "c1".into(),
            spec: ClusterSpec::defaults(),
            root_ca: RootCA {
                ca_cert: "PEM".into(),
                ca_key: vec![9, 9],
                join_tokens: JoinTokens {
                    worker: "w".into(),
                    manager: "m".into(),
                },
                ..RootCA::default()
            },
            default_addr_pool: vec!["10.0.0.0/8".into()],
            subnet_size: 24,
            data_path_port: 4789,
            ..Cluster::default()
        };
        let s = c.to_swarm();
        assert_eq!(s.join_tokens.worker, "w");
        assert_eq!(s.cluster_info.tls_info.trust_root, "PEM");
        let j = serde_json::to_string(&c).unwrap();
        assert!(j.contains(r#""CAKey":"CQk=""#));
        let back: Cluster = serde_json::from_str(&j).unwrap();
        assert_eq!(back, c);
    }
}
