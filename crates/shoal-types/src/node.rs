//! Swarm node object (`GET /nodes`) in the Docker wire shape.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::meta::{Annotations, Meta};
use crate::swarm::TLSInfo;
use crate::wire;

#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum NodeRole {
    #[default]
    Worker,
    Manager,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NodeAvailability {
    #[default]
    Active,
    Pause,
    Drain,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NodeState {
    #[default]
    Unknown,
    Down,
    Ready,
    Disconnected,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Reachability {
    #[default]
    Unknown,
    Unreachable,
    Reachable,
}

macro_rules! enum_str {
    ($t:ty { $($v:ident => $s:literal),* $(,)? }) => {
        impl $t {
            pub fn as_str(&self) -> &'static str {
                match self { $(Self::$v => $s),* }
            }
        }
        impl std::fmt::Display for $t {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
        impl std::str::FromStr for $t {
            type Err = crate::error::ApiError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($s => Ok(Self::$v),)*
                    _ => Err(crate::error::ApiError::invalid_argument(format!(
                        "invalid {} {:?}", stringify!($t), s
                    ))),
                }
            }
        }
    };
}
pub(crate) use enum_str;

enum_str!(NodeRole { Worker => "worker", Manager => "manager" });
enum_str!(NodeAvailability { Active => "active", Pause => "pause", Drain => "drain" });
enum_str!(NodeState { Unknown => "unknown", Down => "down", Ready => "ready", Disconnected => "disconnected" });
enum_str!(Reachability { Unknown => "unknown", Unreachable => "unreachable", Reachable => "reachable" });

/// What operators set on a node (`POST /nodes/{id}/update` body).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct NodeSpec {
    #[serde(flatten)]
    pub annotations: Annotations,
    /// Desired role; empty in a request means worker.
    #[serde(default, deserialize_with = "wire::enum_or_default")]
    pub role: NodeRole,
    #[serde(default, deserialize_with = "wire::enum_or_default")]
    pub availability: NodeAvailability,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Platform {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub architecture: String,
    #[serde(default, rename = "OS", skip_serializing_if = "String::is_empty")]
    pub os: String,
}

/// A named or discrete generic resource (`gpu=UUID`, `ssd=2`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct GenericResource {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub named_resource_spec: Option<NamedGenericResource>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub discrete_resource_spec: Option<DiscreteGenericResource>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct NamedGenericResource {
    #[serde(default)]
    pub kind: String,
    #[serde(default)]
    pub value: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DiscreteGenericResource {
    #[serde(default)]
    pub kind: String,
    #[serde(default)]
    pub value: i64,
}

/// CPU (in 1e-9 CPUs) and memory of a node or a reservation.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Resources {
    #[serde(default, rename = "NanoCPUs", skip_serializing_if = "wire::is_zero")]
    pub nano_cpus: i64,
    #[serde(default, skip_serializing_if = "wire::is_zero")]
    pub memory_bytes: i64,
    #[serde(
        default,
        deserialize_with = "wire::nullable",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub generic_resources: Vec<GenericResource>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct PluginDescription {
    #[serde(default)]
    pub r#type: String,
    #[serde(default)]
    pub name: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct EngineDescription {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub engine_version: String,
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
    pub plugins: Vec<PluginDescription>,
}

/// What the node reports about itself.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct NodeDescription {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub hostname: String,
    #[serde(default)]
    pub platform: Platform,
    #[serde(default)]
    pub resources: Resources,
    #[serde(default)]
    pub engine: EngineDescription,
    #[serde(default, rename = "TLSInfo")]
    pub tls_info: TLSInfo,
    /// Shoal-specific (absent in Docker): the node's WireGuard identity for encrypted
    /// overlays, reported by the node and distributed to the other nodes by the managers.
    #[serde(default, rename = "WireGuard", skip_serializing_if = "Option::is_none")]
    pub wireguard: Option<WireGuardKey>,
}

/// A node's WireGuard public key as the managers know it. The private key never leaves the
/// node.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct WireGuardKey {
    /// Base64, as `wg pubkey` prints it.
    pub public_key: String,
    /// The UDP port the node's WireGuard device listens on (on its underlay address).
    #[serde(default)]
    pub port: u16,
    /// Set by the managers: 1 for the first key the node reported, +1 at each rotation.
    #[serde(default)]
    pub generation: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct NodeStatus {
    #[serde(default, deserialize_with = "wire::enum_or_default")]
    pub state: NodeState,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub addr: String,
}

/// Present only on managers; the CLI needs `Addr` to print the join command.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ManagerStatus {
    #[serde(default)]
    pub leader: bool,
    #[serde(default, deserialize_with = "wire::enum_or_default")]
    pub reachability: Reachability,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub addr: String,
}

/// A cluster node.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Node {
    #[serde(rename = "ID")]
    pub id: String,
    #[serde(flatten)]
    pub meta: Meta,
    #[serde(default)]
    pub spec: NodeSpec,
    #[serde(default)]
    pub description: NodeDescription,
    #[serde(default)]
    pub status: NodeStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manager_status: Option<ManagerStatus>,
}

impl Node {
    /// Ready and active: the scheduler may place new tasks here.
    pub fn is_schedulable(&self) -> bool {
        self.status.state == NodeState::Ready && self.spec.availability == NodeAvailability::Active
    }

    pub fn is_manager(&self) -> bool {
        self.spec.role == NodeRole::Manager
    }

    /// The name shown to users: `Spec.Name` if set, else the hostname.
    pub fn display_name(&self) -> &str {
        if self.spec.annotations.name.is_empty() {
            &self.description.hostname
        } else {
            &self.spec.annotations.name
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = r#"{"ID":"z1i2vjabcdefghijklmnopqrs","Version":{"Index":206},"CreatedAt":"2026-11-23T08:40:00.1Z","UpdatedAt":"2026-11-23T08:41:00Z",
 "Spec":{"Labels":{},"Role":"manager","Availability":"active"},
 "Description":{"Hostname":"vm","Platform":{"Architecture":"x86_64","OS":"linux"},
   "Resources":{"NanoCPUs":2000000000,"MemoryBytes":25276502016},
   "Engine":{"EngineVersion":"20.10.24","Plugins":[{"Type":"Network","Name":"overlay"}]},
   "TLSInfo":{"TrustRoot":"-----BEGIN CERTIFICATE-----\n","CertIssuerSubject":"MBMxETAPBgNVBAMTCHN3YXJtLWNh","CertIssuerPublicKey":"AQID"}},
 "Status":{"State":"ready","Addr":"127.0.0.1"},
 "ManagerStatus":{"Leader":true,"Reachability":"reachable","Addr":"127.0.0.1:2377"}}"#;

    #[test]
    fn sample_round_trip() {
        let n: Node = serde_json::from_str(SAMPLE).unwrap();
        assert_eq!(n.spec.role, NodeRole::Manager);
        assert_eq!(n.description.resources.nano_cpus, 2_000_000_000);
        assert_eq!(n.description.engine.plugins[0].r#type, "Network");
        assert_eq!(n.description.tls_info.cert_issuer_public_key, vec![1, 2, 3]);
        assert_eq!(n.display_name(), "vm");
        let out = serde_json::to_value(&n).unwrap();
        let orig: serde_json::Value = serde_json::from_str(SAMPLE).unwrap();
        assert_eq!(out["Description"], orig["Description"]);
        assert_eq!(out["Spec"], orig["Spec"]);
        assert_eq!(out["Status"], orig["Status"]);
        assert_eq!(out["ManagerStatus"], orig["ManagerStatus"]);
        assert_eq!(out["Version"], orig["Version"]);
        let back: Node = serde_json::from_value(out).unwrap();
        assert_eq!(back, n);
    }

    #[test]
    fn update_body_with_empty_enums() {
        let s: NodeSpec =
            serde_json::from_str(r#"{"Labels":null,"Role":"","Availability":"drain"}"#).unwrap();
        assert_eq!(s.role, NodeRole::Worker);
        assert_eq!(s.availability, NodeAvailability::Drain);
        assert!(serde_json::from_str::<NodeSpec>(r#"{"Role":"boss"}"#).is_err());
        assert_eq!(
            "drain".parse::<NodeAvailability>().unwrap(),
            NodeAvailability::Drain
        );
        assert!("x".parse::<NodeRole>().is_err());
    }
}
