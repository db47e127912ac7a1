//! Swarm network object, the network create request, the `network inspect` view and subnet checks.

use std::collections::BTreeMap;
use std::net::IpAddr;

use chrono::{DateTime, Utc};
use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::error::ApiError;
use crate::meta::{Annotations, Driver, Meta, validate_object_name};
use crate::wire;

pub const DRIVER_OVERLAY: &str = "overlay";
pub const IPAM_DEFAULT: &str = "default";
pub const SCOPE_SWARM: &str = "swarm";
/// Driver option holding the VXLAN id(s) of an overlay network.
pub const OPT_VXLAN_ID_LIST: &str = "com.docker.network.driver.overlay.vxlanid_list";
/// Driver option that asks for an encrypted data plane.
pub const OPT_ENCRYPTED: &str = "encrypted";
/// Driver option capping the MTU of the network's interfaces.
pub const OPT_MTU: &str = "com.docker.network.driver.mtu";
/// Smallest and largest MTU an overlay may be given (576: the least an IPv4 host must accept).
pub const MTU_RANGE: std::ops::RangeInclusive<u32> = 576..=65535;
/// Largest VXLAN network identifier (24 bits; 0 is not used).
pub const MAX_VXLAN_ID: u32 = (1 << 24) - 1;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct IPAMConfig {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub subnet: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub range: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub gateway: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct IPAMOptions {
    #[serde(default)]
    pub driver: Driver,
    #[serde(
        default,
        deserialize_with = "wire::nullable",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub configs: Vec<IPAMConfig>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ConfigReference {
    #[serde(default)]
    pub network: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct NetworkSpec {
    #[serde(flatten)]
    pub annotations: Annotations,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub driver_configuration: Option<Driver>,
    #[serde(default, rename = "IPv6Enabled", skip_serializing_if = "wire::is_zero")]
    pub ipv6_enabled: bool,
    #[serde(default, skip_serializing_if = "wire::is_zero")]
    pub internal: bool,
    #[serde(default, skip_serializing_if = "wire::is_zero")]
    pub attachable: bool,
    #[serde(default, skip_serializing_if = "wire::is_zero")]
    pub ingress: bool,
    #[serde(
        default,
        rename = "IPAMOptions",
        skip_serializing_if = "Option::is_none"
    )]
    pub ipam_options: Option<IPAMOptions>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_from: Option<ConfigReference>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub scope: String,
}

/// Name, subnet and gateway of the routing-mesh network made at `swarm init`.
pub const INGRESS_NAME: &str = "ingress";
pub const INGRESS_SUBNET: &str = "10.0.0.0/24";
pub const INGRESS_GATEWAY: &str = "10.0.0.1";

impl NetworkSpec {
    /// The spec of the default `ingress` network (overlay, swarm scope, `Ingress: true`).
    pub fn default_ingress() -> NetworkSpec {
        NetworkSpec {
            annotations: Annotations::named(INGRESS_NAME),
            driver_configuration: Some(Driver {
                name: DRIVER_OVERLAY.to_string(),
                options: BTreeMap::new(),
            }),
            ingress: true,
            ipam_options: Some(IPAMOptions {
                driver: Driver {
                    name: IPAM_DEFAULT.to_string(),
                    options: BTreeMap::new(),
                },
                configs: vec![IPAMConfig {
                    subnet: INGRESS_SUBNET.to_string(),
                    range: String::new(),
                    gateway: INGRESS_GATEWAY.to_string(),
                }],
            }),
            scope: SCOPE_SWARM.to_string(),
            ..NetworkSpec::default()
        }
    }

    pub fn driver_name(&self) -> &str {
        match &self.driver_configuration {
            Some(d) if !d.name.is_empty() => &d.name,
            _ => DRIVER_OVERLAY,
        }
    }

    pub fn is_encrypted(&self) -> bool {
        self.driver_configuration
            .as_ref()
            .is_some_and(|d| d.options.contains_key(OPT_ENCRYPTED))
    }

    fn driver_option(&self, key: &str) -> Option<&str> {
        self.driver_configuration
            .as_ref()
            .and_then(|d| d.options.get(key))
            .map(String::as_str)
    }

    /// The MTU cap asked for with the `com.docker.network.driver.mtu` option (checked by
    /// [`NetworkSpec::validate`]).
    pub fn mtu(&self) -> Option<u32> {
        self.driver_option(OPT_MTU)
            .and_then(|v| v.trim().parse().ok())
    }

    /// The VXLAN id asked for with the `vxlanid_list` option (checked by
    /// [`NetworkSpec::validate`]).
    pub fn requested_vni(&self) -> Option<u32> {
        self.driver_option(OPT_VXLAN_ID_LIST)
            .and_then(|v| v.trim().parse().ok())
    }

    pub fn validate(&self) -> Result<(), ApiError> {
        validate_object_name("network", &self.annotations.name)?;
        if let Some(v) = self.driver_option(OPT_MTU)
            && !self.mtu().is_some_and(|m| MTU_RANGE.contains(&m))
        {
            return Err(ApiError::invalid_argument(format!(
                "invalid {OPT_MTU} {v:?}: an MTU from {} to {}",
                MTU_RANGE.start(),
                MTU_RANGE.end()
            )));
        }
        if let Some(v) = self.driver_option(OPT_VXLAN_ID_LIST)
            && !self
                .requested_vni()
                .is_some_and(|id| (1..=MAX_VXLAN_ID).contains(&id))
        {
            return Err(ApiError::invalid_argument(format!(
                "invalid {OPT_VXLAN_ID_LIST} {v:?}: one VXLAN id from 1 to {MAX_VXLAN_ID} \
                 (an overlay has one subnet)"
            )));
        }
        if self.driver_name() != DRIVER_OVERLAY {
            return Err(ApiError::invalid_argument(format!(
                "network driver {:?} is not supported in swarm scope (only \"overlay\")",
                self.driver_name()
            )));
        }
        if !matches!(self.scope.as_str(), "" | SCOPE_SWARM) {
            return Err(ApiError::invalid_argument(format!(
                "invalid network scope {:?}: overlay networks are swarm-scoped",
                self.scope
            )));
        }
        if self
            .config_from
            .as_ref()
            .is_some_and(|c| !c.network.is_empty())
        {
            return Err(ApiError::invalid_argument(
                "config-from networks are not supported",
            ));
        }
        if let Some(ipam) = &self.ipam_options {
            if !matches!(ipam.driver.name.as_str(), "" | IPAM_DEFAULT) {
                return Err(ApiError::invalid_argument(format!(
                    "IPAM driver {:?} is not supported (only \"default\")",
                    ipam.driver.name
                )));
            }
            validate_ipam_configs(&ipam.configs)?;
        }
        Ok(())
    }
}

/// A swarm-scoped network as stored by the managers.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Network {
    #[serde(rename = "ID")]
    pub id: String,
    #[serde(flatten)]
    pub meta: Meta,
    #[serde(default)]
    pub spec: NetworkSpec,
    /// Set by the allocator: driver name and options (VXLAN id list).
    #[serde(default)]
    pub driver_state: Driver,
    /// Set by the allocator: the subnets and gateways actually in use.
    #[serde(
        default,
        rename = "IPAMOptions",
        skip_serializing_if = "Option::is_none"
    )]
    pub ipam_options: Option<IPAMOptions>,
}

impl Network {
    /// The network's VXLAN id, once allocated.
    pub fn vni(&self) -> Option<u32> {
        self.driver_state
            .options
            .get(OPT_VXLAN_ID_LIST)
            .and_then(|l| l.split(',').next())
            .and_then(|v| v.trim().parse().ok())
    }

    /// The `GET /networks/{id}` view (`network.Inspect`).
    pub fn to_inspect(&self) -> NetworkInspect {
        let ipam = self
            .ipam_options
            .as_ref()
            .or(self.spec.ipam_options.as_ref());
        let mut options = self
            .spec
            .driver_configuration
            .as_ref()
            .map(|d| d.options.clone())
            .unwrap_or_default();
        options.extend(self.driver_state.options.clone());
        NetworkInspect {
            name: self.spec.annotations.name.clone(),
            id: self.id.clone(),
            created: self.meta.created_at,
            scope: SCOPE_SWARM.to_string(),
            driver: self.spec.driver_name().to_string(),
            enable_ipv4: true,
            enable_ipv6: self.spec.ipv6_enabled,
            ipam: IPAM {
                driver: ipam
                    .map(|i| i.driver.name.clone())
                    .filter(|n| !n.is_empty())
                    .unwrap_or_else(|| IPAM_DEFAULT.to_string()),
                options: ipam
                    .map(|i| i.driver.options.clone())
                    .filter(|o| !o.is_empty()),
                config: ipam
                    .map(|i| {
                        i.configs
                            .iter()
                            .map(|c| IPAMRequestConfig {
                                subnet: c.subnet.clone(),
                                ip_range: c.range.clone(),
                                gateway: c.gateway.clone(),
                                auxiliary_addresses: BTreeMap::new(),
                            })
                            .collect()
                    })
                    .unwrap_or_default(),
            },
            internal: self.spec.internal,
            attachable: self.spec.attachable,
            ingress: self.spec.ingress,
            config_from: ConfigReference::default(),
            config_only: false,
            containers: None,
            options,
            labels: self.spec.annotations.labels.clone(),
            peers: Vec::new(),
        }
    }
}

/// `IPAM.Config[]` entry of the Engine API (note `IPRange`, not `Range`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct IPAMRequestConfig {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub subnet: String,
    #[serde(default, rename = "IPRange", skip_serializing_if = "String::is_empty")]
    pub ip_range: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub gateway: String,
    #[serde(
        default,
        deserialize_with = "wire::nullable",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub auxiliary_addresses: BTreeMap<String, String>,
}

#[allow(clippy::upper_case_acronyms)]
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct IPAM {
    #[serde(default)]
    pub driver: String,
    #[serde(default)]
    pub options: Option<BTreeMap<String, String>>,
    #[serde(default, deserialize_with = "wire::nullable")]
    pub config: Vec<IPAMRequestConfig>,
}

/// `POST /networks/create` body.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct NetworkCreateRequest {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub driver: String,
    #[serde(default)]
    pub scope: String,
    #[serde(
        default,
        rename = "EnableIPv4",
        skip_serializing_if = "Option::is_none"
    )]
    pub enable_ipv4: Option<bool>,
    #[serde(
        default,
        rename = "EnableIPv6",
        skip_serializing_if = "Option::is_none"
    )]
    pub enable_ipv6: Option<bool>,
    #[serde(default, rename = "IPAM")]
    pub ipam: Option<IPAM>,
    #[serde(default)]
    pub internal: bool,
    #[serde(default)]
    pub attachable: bool,
    #[serde(default)]
    pub ingress: bool,
    #[serde(default)]
    pub config_only: bool,
    #[serde(default)]
    pub config_from: Option<ConfigReference>,
    #[serde(default, deserialize_with = "wire::nullable")]
    pub options: BTreeMap<String, String>,
    #[serde(default, deserialize_with = "wire::nullable")]
    pub labels: BTreeMap<String, String>,
    /// Sent by clients below API 1.44; ignored (names are always unique).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub check_duplicate: Option<bool>,
}

impl NetworkCreateRequest {
    /// The swarm network spec this request asks for, validated. An empty driver means overlay.
    pub fn to_spec(&self) -> Result<NetworkSpec, ApiError> {
        if self.config_only {
            return Err(ApiError::invalid_argument(
                "config-only networks are not supported",
            ));
        }
        if self.enable_ipv4 == Some(false) {
            return Err(ApiError::invalid_argument(
                "IPv4 cannot be disabled on overlay networks",
            ));
        }
        let driver = if self.driver.is_empty() {
            DRIVER_OVERLAY
        } else {
            &self.driver
        };
        if self
            .ipam
            .as_ref()
            .is_some_and(|i| i.config.iter().any(|c| !c.auxiliary_addresses.is_empty()))
        {
            return Err(ApiError::invalid_argument(
                "auxiliary addresses are not supported on overlay networks",
            ));
        }
        let ipam = self.ipam.as_ref().map(|i| IPAMOptions {
            driver: Driver {
                name: if i.driver.is_empty() {
                    IPAM_DEFAULT.to_string()
                } else {
                    i.driver.clone()
                },
                options: i.options.clone().unwrap_or_default(),
            },
            configs: i
                .config
                .iter()
                .map(|c| IPAMConfig {
                    subnet: c.subnet.clone(),
                    range: c.ip_range.clone(),
                    gateway: c.gateway.clone(),
                })
                .collect(),
        });
        let spec = NetworkSpec {
            annotations: Annotations {
                name: self.name.clone(),
                labels: self.labels.clone(),
            },
            driver_configuration: Some(Driver {
                name: driver.to_string(),
                options: self.options.clone(),
            }),
            ipv6_enabled: self.enable_ipv6.unwrap_or(false),
            internal: self.internal,
            attachable: self.attachable,
            ingress: self.ingress,
            ipam_options: ipam,
            config_from: self.config_from.clone().filter(|c| !c.network.is_empty()),
            scope: SCOPE_SWARM.to_string(),
        };
        if !matches!(self.scope.as_str(), "" | SCOPE_SWARM) {
            return Err(ApiError::invalid_argument(format!(
                "invalid network scope {:?}: overlay networks are swarm-scoped",
                self.scope
            )));
        }
        spec.validate()?;
        Ok(spec)
    }
}

/// `POST /networks/create` reply.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct NetworkCreateResponse {
    #[serde(rename = "Id")]
    pub id: String,
    #[serde(default)]
    pub warning: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct EndpointResource {
    #[serde(default)]
    pub name: String,
    #[serde(default, rename = "EndpointID")]
    pub endpoint_id: String,
    #[serde(default)]
    pub mac_address: String,
    #[serde(default, rename = "IPv4Address")]
    pub ipv4_address: String,
    #[serde(default, rename = "IPv6Address")]
    pub ipv6_address: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct PeerInfo {
    #[serde(default)]
    pub name: String,
    #[serde(default, rename = "IP")]
    pub ip: String,
}

/// `GET /networks` / `GET /networks/{id}` (`network.Inspect`; note `"Id"`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct NetworkInspect {
    #[serde(default)]
    pub name: String,
    #[serde(default, rename = "Id")]
    pub id: String,
    #[serde(default = "wire::zero_time", with = "wire::time")]
    pub created: DateTime<Utc>,
    #[serde(default)]
    pub scope: String,
    #[serde(default)]
    pub driver: String,
    #[serde(default, rename = "EnableIPv4")]
    pub enable_ipv4: bool,
    #[serde(default, rename = "EnableIPv6")]
    pub enable_ipv6: bool,
    #[serde(default, rename = "IPAM")]
    pub ipam: IPAM,
    #[serde(default)]
    pub internal: bool,
    #[serde(default)]
    pub attachable: bool,
    #[serde(default)]
    pub ingress: bool,
    #[serde(default)]
    pub config_from: ConfigReference,
    #[serde(default)]
    pub config_only: bool,
    #[serde(default)]
    pub containers: Option<BTreeMap<String, EndpointResource>>,
    #[serde(default, deserialize_with = "wire::nullable")]
    pub options: BTreeMap<String, String>,
    #[serde(default, deserialize_with = "wire::nullable")]
    pub labels: BTreeMap<String, String>,
    #[serde(
        default,
        deserialize_with = "wire::nullable",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub peers: Vec<PeerInfo>,
}

/// Parses a CIDR subnet; the address must be the network address ("10.0.1.0/24", not "10.0.1.5/24").
pub fn parse_subnet(s: &str) -> Result<IpNet, ApiError> {
    let net: IpNet = s
        .parse()
        .map_err(|_| ApiError::invalid_argument(format!("invalid subnet {s:?}: not a CIDR")))?;
    if net.network() != net.addr() {
        return Err(ApiError::invalid_argument(format!(
            "invalid subnet {s:?}: did you mean {}?",
            net.trunc()
        )));
    }
    Ok(net)
}

/// Whether two subnets share any address.
pub fn subnets_overlap(a: &IpNet, b: &IpNet) -> bool {
    a.contains(&b.network()) || b.contains(&a.network())
}

/// IPv4 ranges no overlay subnet may touch.
const RESERVED_V4: [(&str, &str); 4] = [
    ("0.0.0.0/8", "\"this network\""),
    ("127.0.0.0/8", "loopback"),
    ("224.0.0.0/4", "multicast"),
    ("240.0.0.0/4", "reserved"),
];

/// Checks user IPAM configs: at most one, a usable subnet, gateway and range inside it.
pub fn validate_ipam_configs(configs: &[IPAMConfig]) -> Result<(), ApiError> {
    // The data plane gives each overlay one subnet and one gateway on each node.
    if configs.len() > 1 {
        return Err(ApiError::invalid_argument(format!(
            "an overlay network takes one IPv4 subnet ({} IPAM configs given)",
            configs.len()
        )));
    }
    for c in configs {
        if c.subnet.is_empty() {
            if !c.range.is_empty() || !c.gateway.is_empty() {
                return Err(ApiError::invalid_argument(
                    "IPAM config: a gateway or IP range needs a subnet",
                ));
            }
            continue;
        }
        let net = parse_subnet(&c.subnet)?;
        if let Some((range, what)) = RESERVED_V4
            .iter()
            .find(|(r, _)| r.parse().is_ok_and(|r: IpNet| subnets_overlap(&r, &net)))
        {
            return Err(ApiError::invalid_argument(format!(
                "subnet {net} overlaps {range} ({what}), which containers cannot use"
            )));
        }
        if let IpNet::V4(v4) = net
            && v4.prefix_len() > 30
        {
            return Err(ApiError::invalid_argument(format!(
                "subnet {} is too small: at most /30",
                c.subnet
            )));
        }
        if !c.gateway.is_empty() {
            let gw: IpAddr = c.gateway.parse().map_err(|_| {
                ApiError::invalid_argument(format!("invalid gateway {:?}", c.gateway))
            })?;
            if !net.contains(&gw) || gw == net.network() || gw == net.broadcast() {
                return Err(ApiError::invalid_argument(format!(
                    "gateway {} is not a usable address of subnet {}",
                    c.gateway, c.subnet
                )));
            }
        }
        if !c.range.is_empty() {
            let range = parse_subnet(&c.range)?;
            if !net.contains(&range) {
                return Err(ApiError::invalid_argument(format!(
                    "IP range {} is not inside subnet {}",
                    c.range, c.subnet
                )));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const CLI_CREATE: &str = r#"{"Driver":"overlay","Scope":"","IPAM":{"Driver":"default","Options":{},"Config":[]},"Internal":false,"Attachable":true,
  "Ingress":false,"ConfigOnly":false,"ConfigFrom":null,"Options":{"encrypted":""},"Labels":{},"Name":"N"}"#;
    const STACK_CREATE: &str = r#"{"Driver":"overlay","Scope":"","IPAM":null,"Internal":false,"Attachable":false,"Ingress":false,
     "ConfigOnly":false,"ConfigFrom":null,"Options":null,"Labels":{"com.docker.stack.namespace":"NAME"},"Name":"NAME_default","CheckDuplicate":true}"#;

    #[test]
    fn create_requests() {
        let r: NetworkCreateRequest = serde_json::from_str(CLI_CREATE).unwrap();
        let spec = r.to_spec().unwrap();
        assert!(spec.attachable && spec.is_encrypted());
        assert_eq!(spec.scope, "swarm");
        let r: NetworkCreateRequest = serde_json::from_str(STACK_CREATE).unwrap();
        let spec = r.to_spec().unwrap();
        assert_eq!(
            spec.annotations.labels["com.docker.stack.namespace"],
            "NAME"
        );
        assert!(spec.ipam_options.is_none());

        let bridge = NetworkCreateRequest {
            name: "b".into(),
            driver: "bridge".into(),
            ..Default::default()
        };
        assert!(bridge.to_spec().is_err());
        let bad_sub = NetworkCreateRequest {
            name: "n".into(),
            ipam: Some(IPAM {
                config: vec![IPAMRequestConfig {
                    subnet: "10.0.9.0/24".into(),
                    gateway: "10.0.8.1".into(),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            ..Default::default()
        };
        assert!(bad_sub.to_spec().unwrap_err().message.contains("gateway"));
    }

    #[test]
    fn options_and_ipam_that_cannot_be_honoured_are_refused() {
        let req = |f: &dyn Fn(&mut NetworkCreateRequest)| {
            let mut r = NetworkCreateRequest {
                name: "n".into(),
                driver: "overlay".into(),
                ..Default::default()
            };
            f(&mut r);
            r.to_spec().and_then(|s| s.validate().map(|()| s))
        };
        fn subnets(list: &[&str]) -> impl Fn(&mut NetworkCreateRequest) + use<> {
            let list: Vec<String> = list.iter().map(|s| s.to_string()).collect();
            move |r| {
                r.ipam = Some(IPAM {
                    config: list
                        .iter()
                        .map(|s| IPAMRequestConfig {
                            subnet: s.clone(),
                            ..Default::default()
                        })
                        .collect(),
                    ..Default::default()
                })
            }
        }
        fn opt(k: &'static str, v: &'static str) -> impl Fn(&mut NetworkCreateRequest) {
            move |r| {
                r.options.insert(k.into(), v.into());
            }
        }
        for (bad, why) in [
            (
                req(&subnets(&["10.1.0.0/24", "10.2.0.0/24"])),
                "one IPv4 subnet",
            ),
            (req(&subnets(&["127.0.0.0/24"])), "loopback"),
            (req(&subnets(&["224.1.0.0/16"])), "multicast"),
            (req(&subnets(&["0.0.0.0/0"])), "this network"),
            (req(&opt(OPT_MTU, "100")), "an MTU from 576"),
            (req(&opt(OPT_MTU, "big")), "an MTU from 576"),
            (req(&opt(OPT_VXLAN_ID_LIST, "0")), "one VXLAN id"),
            (req(&opt(OPT_VXLAN_ID_LIST, "16777216")), "one VXLAN id"),
            (req(&opt(OPT_VXLAN_ID_LIST, "5000,5001")), "one VXLAN id"),
        ] {
            let e = bad.expect_err(why);
            assert!(e.message.contains(why), "{why}: {}", e.message);
        }
        let aux = req(&|r| {
            r.ipam = Some(IPAM {
                config: vec![IPAMRequestConfig {
                    subnet: "10.3.0.0/24".into(),
                    auxiliary_addresses: [("h".into(), "10.3.0.9".into())].into(),
                    ..Default::default()
                }],
                ..Default::default()
            })
        });
        assert!(aux.expect_err("aux").message.contains("auxiliary"));
        let ok = req(&|r| {
            opt(OPT_MTU, "1400")(r);
            opt(OPT_VXLAN_ID_LIST, "5000")(r);
            subnets(&["10.4.0.0/24"])(r);
        })
        .expect("valid options");
        assert_eq!((ok.mtu(), ok.requested_vni()), (Some(1400), Some(5000)));
    }

    #[test]
    fn inspect_view() {
        let mut n = Network {
            id: "p07f5v".into(),
            ..Network::default()
        };
        n.spec = NetworkCreateRequest::from_json(CLI_CREATE)
            .to_spec()
            .unwrap();
        n.driver_state = Driver {
            name: "overlay".into(),
            options: [(OPT_VXLAN_ID_LIST.to_string(), "4098".to_string())].into(),
        };
        n.ipam_options = Some(IPAMOptions {
            driver: Driver {
                name: "default".into(),
                ..Driver::default()
            },
            configs: vec![IPAMConfig {
                subnet: "10.0.2.0/24".into(),
                gateway: "10.0.2.1".into(),
                ..IPAMConfig::default()
            }],
        });
        assert_eq!(n.vni(), Some(4098));
        let j = serde_json::to_value(n.to_inspect()).unwrap();
        assert_eq!(j["Id"], "p07f5v");
        assert_eq!(j["Name"], "N");
        assert_eq!(j["Scope"], "swarm");
        assert_eq!(j["Driver"], "overlay");
        assert_eq!(j["EnableIPv4"], true);
        assert_eq!(j["IPAM"]["Config"][0]["Subnet"], "10.0.2.0/24");
        assert_eq!(j["IPAM"]["Options"], serde_json::Value::Null);
        assert_eq!(j["Options"]["encrypted"], "");
        assert_eq!(j["Options"][OPT_VXLAN_ID_LIST], "4098");
        assert_eq!(j["Labels"], serde_json::json!({}));
        assert_eq!(j["Containers"], serde_json::Value::Null);
        assert_eq!(j["ConfigFrom"]["Network"], "");
        let back: NetworkInspect = serde_json::from_value(j).unwrap();
        assert_eq!(back.id, "p07f5v");
    }

    #[test]
    fn default_ingress_is_valid() {
        let s = NetworkSpec::default_ingress();
        s.validate().unwrap();
        let n = Network {
            id: "i".into(),
            spec: s,
            ..Network::default()
        };
        let j = serde_json::to_value(n.to_inspect()).unwrap();
        assert_eq!(j["Ingress"], true);
        assert_eq!(j["IPAM"]["Config"][0]["Gateway"], "10.0.0.1");
    }

    #[test]
    fn subnets() {
        let a = parse_subnet("10.0.0.0/16").unwrap();
        let b = parse_subnet("10.0.5.0/24").unwrap();
        let c = parse_subnet("10.1.0.0/24").unwrap();
        assert!(subnets_overlap(&a, &b) && subnets_overlap(&b, &a));
        assert!(!subnets_overlap(&a, &c));
        assert!(parse_subnet("10.0.0.5/24").is_err());
        assert!(parse_subnet("nope").is_err());
        let cfg = |s: &str| IPAMConfig {
            subnet: s.into(),
            ..IPAMConfig::default()
        };
        assert!(validate_ipam_configs(&[cfg("10.0.0.0/24"), cfg("10.0.1.0/24")]).is_err());
        validate_ipam_configs(&[cfg("10.0.0.0/24")]).unwrap();
        let ranged = IPAMConfig {
            subnet: "10.0.0.0/16".into(),
            range: "10.1.0.0/24".into(),
            ..IPAMConfig::default()
        };
        assert!(validate_ipam_configs(&[ranged]).is_err());
    }

    impl NetworkCreateRequest {
        fn from_json(s: &str) -> Self {
            serde_json::from_str(s).unwrap()
        }
    }

    #[test]
    fn swarm_network_round_trip() {
        let mut n = Network {
            id: "x".into(),
            ..Network::default()
        };
        n.spec = NetworkCreateRequest::from_json(STACK_CREATE)
            .to_spec()
            .unwrap();
        let j = serde_json::to_value(&n).unwrap();
        assert_eq!(j["Spec"]["DriverConfiguration"]["Name"], "overlay");
        assert_eq!(j["Spec"]["Scope"], "swarm");
        let back: Network = serde_json::from_value(j).unwrap();
        assert_eq!(back, n);
    }
}
