//! Bridge networking for standalone containers (Docker's default `bridge` network) and the
//! veth plumbing every network uses to put a container on a bridge.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};

use ipnet::Ipv4Net;

use crate::netlink::{Netlink, validate_ifname};
use crate::{Mac, NetError, Result};

/// A bridge with the network's gateway address on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BridgeNetwork {
    pub name: String,
    pub subnet: Ipv4Net,
    pub gateway: Ipv4Addr,
    pub mtu: u32,
}

/// Create (or reuse) bridge `name` with `gateway/prefix(subnet)` on it, up, with `mtu`.
pub async fn ensure_bridge(
    nl: &Netlink,
    name: &str,
    subnet: Ipv4Net,
    gateway: Ipv4Addr,
    mtu: u32,
) -> Result<BridgeNetwork> {
    validate_ifname(name)?;
    check_in_subnet(subnet, gateway, "gateway")?;
    nl.ensure_bridge(name, Some(mtu)).await?;
    nl.add_address(name, IpAddr::V4(gateway), subnet.prefix_len())
        .await?;
    nl.set_up(name).await?;
    Ok(BridgeNetwork {
        name: name.to_string(),
        subnet: subnet.trunc(),
        gateway,
        mtu,
    })
}

/// Remove the bridge (its ports are detached by the kernel).
pub async fn remove_bridge(nl: &Netlink, name: &str) -> Result<()> {
    nl.delete_link(name).await
}

/// Refuse an address outside the subnet, or the network/broadcast address.
pub fn check_in_subnet(subnet: Ipv4Net, ip: Ipv4Addr, what: &str) -> Result<()> {
    if !subnet.contains(&ip)
        || (subnet.prefix_len() < 31 && (ip == subnet.network() || ip == subnet.broadcast()))
    {
        return Err(NetError::Invalid(format!(
            "{what} {ip} is not a host address of {subnet}"
        )));
    }
    Ok(())
}

/// Set a sysctl inside the namespace at `netns` (None = the caller's), e.g.
/// `net/ipv4/ip_forward`. Net sysctls are per namespace and resolved by the opening thread.
pub fn set_sysctl(netns: Option<&Path>, key: &str, value: &str) -> Result<()> {
    if key.is_empty() || key.contains("..") || key.starts_with('/') {
        return Err(NetError::Invalid(format!("bad sysctl key {key:?}")));
    }
    let path = PathBuf::from("/proc/sys").join(key);
    let write = || {
        std::fs::write(&path, value).map_err(|e| {
            NetError::Io(std::io::Error::new(
                e.kind(),
                format!("{}: {e}", path.display()),
            ))
        })
    };
    match netns {
        Some(ns) => crate::netns::run_in(ns, write)?,
        None => write(),
    }
}

/// A container's interface on a bridge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attachment {
    /// The bridge the host end is a port of.
    pub bridge: String,
    /// Host-side veth name (in the bridge's namespace).
    pub host_ifname: String,
    /// The container's namespace.
    pub netns: PathBuf,
    /// Interface name inside the container (`eth0`).
    pub ifname: String,
    pub ip: Ipv4Addr,
    pub prefix: u8,
    pub mac: Mac,
    pub mtu: u32,
}

/// What to plug into a bridge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttachSpec {
    /// The container's namespace (`/proc/<pid>/ns/net` or `/run/netns/x`).
    pub netns: PathBuf,
    /// Interface name inside the container.
    pub ifname: String,
    pub ip: Ipv4Addr,
    pub prefix: u8,
    /// Default route through this gateway (None: only the connected subnet is reachable).
    pub gateway: Option<Ipv4Addr>,
    /// None: derived from the IP (02:42:…).
    pub mac: Option<Mac>,
    pub mtu: u32,
}

/// Stable, short host-side names for an attachment (Linux names are limited to 15 bytes).
pub fn veth_names(netns: &Path, ifname: &str, ip: Ipv4Addr) -> (String, String) {
    let mut h = DefaultHasher::new();
    netns.hash(&mut h);
    ifname.hash(&mut h);
    ip.hash(&mut h);
    let x = h.finish() & 0xffff_ffff_ffff;
    (format!("shv{x:012x}"), format!("shp{x:012x}"))
}

/// Plug the container namespace `spec.netns` into bridge `bridge` (which lives in the
/// namespace of `nl`): a veth pair, host end on the bridge, the other end moved into the
/// container, renamed `spec.ifname`, addressed, up, `lo` up, default route if asked.
/// On failure everything made so far is removed.
pub async fn attach(nl: &Netlink, bridge: &str, spec: &AttachSpec) -> Result<Attachment> {
    validate_ifname(bridge)?;
    validate_ifname(&spec.ifname)?;
    if spec.prefix > 32 {
        return Err(NetError::Invalid(format!(
            "prefix /{} too long",
            spec.prefix
        )));
    }
    if !spec.netns.exists() {
        return Err(NetError::NotFound(format!(
            "netns {}",
            spec.netns.display()
        )));
    }
    let (host, peer) = veth_names(&spec.netns, &spec.ifname, spec.ip);
    let mac = spec.mac.unwrap_or_else(|| Mac::from_ip(spec.ip));
    // A leftover from a crashed run would make the create fail: clear it first.
    nl.delete_link(&host).await?;
    nl.delete_link(&peer).await?;
    nl.create_veth(&host, &peer, Some(spec.mtu)).await?;
    let res = plumb(nl, bridge, spec, &host, &peer, mac).await;
    if let Err(e) = res {
        let _ = nl.delete_link(&host).await;
        return Err(e);
    }
    Ok(Attachment {
        bridge: bridge.to_string(),
        host_ifname: host,
        netns: spec.netns.clone(),
        ifname: spec.ifname.clone(),
        ip: spec.ip,
        prefix: spec.prefix,
        mac,
        mtu: spec.mtu,
    })
}

async fn plumb(
    nl: &Netlink,
    bridge: &str,
    spec: &AttachSpec,
    host: &str,
    peer: &str,
    mac: Mac,
) -> Result<()> {
    nl.set_controller(host, bridge).await?;
    nl.set_up(host).await?;
    nl.move_to_netns(peer, &spec.netns).await?;
    let cnl = Netlink::in_netns(&spec.netns)?;
    let mut renamed = false;
    let inner = async {
        if cnl.index(&spec.ifname).await?.is_some() {
            return Err(NetError::Invalid(format!(
                "interface {} already exists in {}",
                spec.ifname,
                spec.netns.display()
            )));
        }
        cnl.rename(peer, &spec.ifname).await?;
        renamed = true;
        cnl.set_mac(&spec.ifname, mac).await?;
        cnl.add_address(&spec.ifname, IpAddr::V4(spec.ip), spec.prefix)
            .await?;
        cnl.set_up(&spec.ifname).await?;
        cnl.set_up("lo").await?;
        if let Some(gw) = spec.gateway {
            cnl.set_default_route(gw).await?;
        }
        Ok(())
    };
    let r = inner.await;
    if r.is_err() {
        // The peer is inside the container now; deleting it there takes the host end too.
        let name = if renamed { spec.ifname.as_str() } else { peer };
        let _ = cnl.delete_link(name).await;
    }
    r
}

/// Unplug an attachment: deleting the host end removes the container end too.
pub async fn detach(nl: &Netlink, att: &Attachment) -> Result<()> {
    nl.delete_link(&att.host_ifname).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_fit_and_are_stable() {
        let (a, b) = veth_names(
            Path::new("/proc/1/ns/net"),
            "eth0",
            Ipv4Addr::new(10, 0, 0, 2),
        );
        assert!(a.len() <= 15 && b.len() <= 15);
        assert_ne!(a, b);
        let (a2, _) = veth_names(
            Path::new("/proc/1/ns/net"),
            "eth0",
            Ipv4Addr::new(10, 0, 0, 2),
        );
        assert_eq!(a, a2);
        let (a3, _) = veth_names(
            Path::new("/proc/1/ns/net"),
            "eth0",
            Ipv4Addr::new(10, 0, 0, 3),
        );
        assert_ne!(a, a3);
    }

    #[test]
    fn subnet_membership() {
        let n: Ipv4Net = "172.30.0.0/24".parse().unwrap();
        assert!(check_in_subnet(n, Ipv4Addr::new(172, 30, 0, 1), "gw").is_ok());
        assert!(check_in_subnet(n, Ipv4Addr::new(172, 30, 0, 0), "gw").is_err());
        assert!(check_in_subnet(n, Ipv4Addr::new(172, 30, 0, 255), "gw").is_err());
        assert!(check_in_subnet(n, Ipv4Addr::new(172, 31, 0, 1), "gw").is_err());
    }
}
