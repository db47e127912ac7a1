//! `GET /version` and `GET /info` reply shapes.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::swarm::SwarmInfo;
use crate::wire;

/// The API version Shoal advertises (`Api-Version` header).
pub const API_VERSION: &str = "1.47";
/// The oldest API version accepted in `/v1.xx/` paths.
pub const MIN_API_VERSION: &str = "1.24";

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct PlatformName {
    #[serde(default)]
    pub name: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ComponentVersion {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub version: String,
    #[serde(
        default,
        deserialize_with = "wire::nullable",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub details: BTreeMap<String, String>,
}

/// `GET /version`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct SystemVersion {
    #[serde(default)]
    pub platform: PlatformName,
    #[serde(default, deserialize_with = "wire::nullable")]
    pub components: Vec<ComponentVersion>,
    #[serde(default)]
    pub version: String,
    #[serde(default)]
    pub api_version: String,
    #[serde(
        default,
        rename = "MinAPIVersion",
        skip_serializing_if = "String::is_empty"
    )]
    pub min_api_version: String,
    #[serde(default)]
    pub git_commit: String,
    #[serde(default)]
    pub go_version: String,
    #[serde(default)]
    pub os: String,
    #[serde(default)]
    pub arch: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub kernel_version: String,
    #[serde(default, skip_serializing_if = "wire::is_zero")]
    pub experimental: bool,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub build_time: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct PluginsInfo {
    #[serde(default, deserialize_with = "wire::nullable")]
    pub volume: Vec<String>,
    #[serde(default, deserialize_with = "wire::nullable")]
    pub network: Vec<String>,
    #[serde(default, deserialize_with = "wire::nullable")]
    pub authorization: Vec<String>,
    #[serde(default, deserialize_with = "wire::nullable")]
    pub log: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct IndexInfo {
    #[serde(default)]
    pub name: String,
    #[serde(default, deserialize_with = "wire::nullable")]
    pub mirrors: Vec<String>,
    #[serde(default)]
    pub secure: bool,
    #[serde(default)]
    pub official: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct RegistryConfig {
    #[serde(
        default,
        rename = "InsecureRegistryCIDRs",
        deserialize_with = "wire::nullable"
    )]
    pub insecure_registry_cidrs: Vec<String>,
    #[serde(default, deserialize_with = "wire::nullable")]
    pub index_configs: BTreeMap<String, IndexInfo>,
    #[serde(default, deserialize_with = "wire::nullable")]
    pub mirrors: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Commit {
    #[serde(default, rename = "ID")]
    pub id: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub expected: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuntimeInfo {
    #[serde(default)]
    pub path: String,
    #[serde(default, rename = "runtimeArgs", skip_serializing_if = "Vec::is_empty")]
    pub runtime_args: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct NetworkAddressPool {
    #[serde(default)]
    pub base: String,
    #[serde(default)]
    pub size: i64,
}

/// `GET /info`. Fields a node cannot know stay zero, which `docker info` tolerates.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct SystemInfo {
    #[serde(default, rename = "ID")]
    pub id: String,
    #[serde(default)]
    pub containers: i64,
    #[serde(default)]
    pub containers_running: i64,
    #[serde(default)]
    pub containers_paused: i64,
    #[serde(default)]
    pub containers_stopped: i64,
    #[serde(default)]
    pub images: i64,
    #[serde(default)]
    pub driver: String,
    #[serde(default, deserialize_with = "wire::nullable")]
    pub driver_status: Vec<[String; 2]>,
    #[serde(default)]
    pub plugins: PluginsInfo,
    #[serde(default)]
    pub memory_limit: bool,
    #[serde(default)]
    pub swap_limit: bool,
    #[serde(default, rename = "CpuCfsPeriod")]
    pub cpu_cfs_period: bool,
    #[serde(default, rename = "CpuCfsQuota")]
    pub cpu_cfs_quota: bool,
    #[serde(default, rename = "CPUShares")]
    pub cpu_shares: bool,
    #[serde(default, rename = "CPUSet")]
    pub cpu_set: bool,
    #[serde(default)]
    pub pids_limit: bool,
    #[serde(default, rename = "IPv4Forwarding")]
    pub ipv4_forwarding: bool,
    #[serde(default)]
    pub debug: bool,
    #[serde(default, rename = "NFd")]
    pub nfd: i64,
    #[serde(default)]
    pub oom_kill_disable: bool,
    #[serde(default, rename = "NGoroutines")]
    pub ngoroutines: i64,
    #[serde(default)]
    pub system_time: String,
    #[serde(default)]
    pub logging_driver: String,
    #[serde(default)]
    pub cgroup_driver: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub cgroup_version: String,
    #[serde(default, rename = "NEventsListener")]
    pub nevents_listener: i64,
    #[serde(default)]
    pub kernel_version: String,
    #[serde(default)]
    pub operating_system: String,
    #[serde(default, rename = "OSVersion")]
    pub os_version: String,
    #[serde(default, rename = "OSType")]
    pub os_type: String,
    #[serde(default)]
    pub architecture: String,
    #[serde(default)]
    pub index_server_address: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registry_config: Option<RegistryConfig>,
    #[serde(default, rename = "NCPU")]
    pub ncpu: i64,
    #[serde(default)]
    pub mem_total: i64,
    #[serde(
        default,
        deserialize_with = "wire::nullable",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub generic_resources: Vec<crate::node::GenericResource>,
    #[serde(default)]
    pub docker_root_dir: String,
    #[serde(default, rename = "HttpProxy")]
    pub http_proxy: String,
    #[serde(default, rename = "HttpsProxy")]
    pub https_proxy: String,
    #[serde(default)]
    pub no_proxy: String,
    #[serde(default)]
    pub name: String,
    #[serde(default, deserialize_with = "wire::nullable")]
    pub labels: Vec<String>,
    #[serde(default)]
    pub experimental_build: bool,
    #[serde(default)]
    pub server_version: String,
    #[serde(
        default,
        deserialize_with = "wire::nullable",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub runtimes: BTreeMap<String, RuntimeInfo>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub default_runtime: String,
    #[serde(default)]
    pub swarm: SwarmInfo,
    #[serde(default)]
    pub live_restore_enabled: bool,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub isolation: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub init_binary: String,
    #[serde(default)]
    pub containerd_commit: Commit,
    #[serde(default)]
    pub runc_commit: Commit,
    #[serde(default)]
    pub init_commit: Commit,
    #[serde(default, deserialize_with = "wire::nullable")]
    pub security_options: Vec<String>,
    #[serde(
        default,
        deserialize_with = "wire::nullable",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub default_address_pools: Vec<NetworkAddressPool>,
    #[serde(default, rename = "CDISpecDirs", deserialize_with = "wire::nullable")]
    pub cdi_spec_dirs: Vec<String>,
    #[serde(
        default,
        deserialize_with = "wire::nullable",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub warnings: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_names() {
        let v = SystemVersion {
            api_version: API_VERSION.into(),
            min_api_version: MIN_API_VERSION.into(),
            platform: PlatformName {
                name: "Shoal".into(),
            },
            ..SystemVersion::default()
        };
        let j = serde_json::to_value(&v).unwrap();
        assert_eq!(j["ApiVersion"], "1.47");
        assert_eq!(j["MinAPIVersion"], "1.24");
        assert_eq!(j["Platform"]["Name"], "Shoal");
    }

    #[test]
    fn info_names_and_parse() {
        let i = SystemInfo {
            ncpu: 2,
            ..SystemInfo::default()
        };
        let j = serde_json::to_value(&i).unwrap();
        assert_eq!(j["NCPU"], 2);
        assert_eq!(j["Swarm"]["LocalNodeState"], "inactive");
        assert_eq!(j["Swarm"]["NodeID"], "");
        assert!(j.get("OSType").is_some() && j.get("HttpsProxy").is_some());
        let back: SystemInfo = serde_json::from_value(j).unwrap();
        assert_eq!(back, i);
        let partial: SystemInfo = serde_json::from_str(
            r#"{"Swarm":{"NodeID":"n1","LocalNodeState":"active","ControlAvailable":true,"RemoteManagers":null,"Nodes":3,"Managers":1}}"#,
        )
        .unwrap();
        assert!(partial.swarm.control_available);
        assert_eq!(partial.swarm.nodes, 3);
    }
}
