//! VXLAN overlay networks, one dedicated network namespace per overlay on each node.
//!
//! Layout (as Docker does it): the overlay namespace holds a bridge `br0` carrying the
//! network's gateway address and a VXLAN device `vxlan0` (learning off, ARP proxy on) as its
//! port. The VXLAN device is created in the node's namespace and then moved, so its UDP socket
//! (port 4789) stays bound in the node's namespace on the underlay while the device itself
//! lives with the bridge.
//!
//! Why a namespace per overlay: overlay subnets and VNIs are cluster-wide and may overlap the
//! node's own routes or other overlays (two overlays may even use the same subnet); inside
//! their own namespace the bridge addresses, routes and ARP tables of each overlay never meet
//! the host's or each other's, and the host's firewall never sees east-west overlay traffic.
//!
//! Remote endpoints are programmed statically from gossip: an FDB entry (MAC -> remote VTEP)
//! and a permanent neighbour entry (IP -> MAC) on `vxlan0`, so no flooding crosses nodes.

use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};

use ipnet::Ipv4Net;

use crate::bridge_net::{self, AttachSpec, Attachment, check_in_subnet};
use crate::netlink::{Netlink, VxlanSpec};
use crate::{Mac, NetError, Result, netns};

/// Bridge name inside an overlay namespace.
pub const OVERLAY_BRIDGE: &str = "br0";
/// VXLAN device name inside an overlay namespace.
pub const OVERLAY_VXLAN: &str = "vxlan0";

/// What an overlay looks like on this node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OverlaySpec {
    /// Cluster network ID (only used for naming and logs).
    pub network_id: String,
    pub vni: u32,
    pub subnet: Ipv4Net,
    pub gateway: Ipv4Addr,
    /// This node's VTEP address (underlay address, or its WireGuard address when encrypted).
    pub local_vtep: Ipv4Addr,
    /// MTU of the bridge and endpoints: see [`crate::overlay_mtu`].
    pub mtu: u32,
    /// Per-daemon prefix for the namespace name, so daemons sharing /run/netns never collide.
    pub netns_prefix: String,
}

impl OverlaySpec {
    /// The namespace name this overlay uses.
    pub fn netns_name(&self) -> String {
        format!("{}ov-{}", self.netns_prefix, self.vni)
    }

    fn validate(&self) -> Result<()> {
        if self.vni == 0 || self.vni >= 1 << 24 {
            return Err(NetError::Invalid(format!(
                "VNI {} out of range 1..2^24",
                self.vni
            )));
        }
        check_in_subnet(self.subnet, self.gateway, "gateway")?;
        if !shoal_types::network::MTU_RANGE.contains(&self.mtu) {
            return Err(NetError::Invalid(format!(
                "overlay MTU {} out of range",
                self.mtu
            )));
        }
        netns::validate_name(&self.netns_name())
    }
}

/// An overlay present on this node.
#[derive(Debug)]
pub struct Overlay {
    pub spec: OverlaySpec,
    netns_path: PathBuf,
    nl: Netlink,
}

impl Overlay {
    /// Make sure the overlay exists on this node (idempotent: an existing namespace with its
    /// bridge and VXLAN device is reused, e.g. after a daemon restart). `host` is a netlink
    /// handle in the node's namespace, where the underlay (and `local_vtep`) lives.
    pub async fn ensure(host: &Netlink, spec: OverlaySpec) -> Result<Overlay> {
        spec.validate()?;
        let name = spec.netns_name();
        let path = netns::path_of(&name);
        let created = if path.exists() {
            false
        } else {
            netns::create(&name)?;
            true
        };
        match Self::build(host, &spec, &path).await {
            Ok(nl) => Ok(Overlay {
                spec,
                netns_path: path,
                nl,
            }),
            Err(e) => {
                if created {
                    let _ = netns::delete(&name);
                }
                Err(e)
            }
        }
    }

    async fn build(host: &Netlink, spec: &OverlaySpec, path: &Path) -> Result<Netlink> {
        let nl = Netlink::in_netns(path)?;
        bridge_netfilter_off(path)?;
        nl.set_up("lo").await?;
        bridge_net::ensure_bridge(&nl, OVERLAY_BRIDGE, spec.subnet, spec.gateway, spec.mtu).await?;
        if nl.link(OVERLAY_VXLAN).await?.is_none() {
            // Temporary name in the node namespace, unique per VNI.
            let tmp = format!("shvx{}", spec.vni);
            host.delete_link(&tmp).await?;
            let mut vx = VxlanSpec::new(&tmp, spec.vni, Some(spec.local_vtep));
            vx.mtu = Some(spec.mtu);
            host.create_vxlan(&vx).await?;
            if let Err(e) = host.move_to_netns(&tmp, path).await {
                let _ = host.delete_link(&tmp).await;
                return Err(e);
            }
            nl.rename(&tmp, OVERLAY_VXLAN).await?;
        }
        nl.set_mtu(OVERLAY_VXLAN, spec.mtu).await?;
        nl.set_controller(OVERLAY_VXLAN, OVERLAY_BRIDGE).await?;
        nl.set_up(OVERLAY_VXLAN).await?;
        Ok(nl)
    }

    /// The overlay's namespace.
    pub fn netns_path(&self) -> &Path {
        &self.netns_path
    }

    /// Netlink handle inside the overlay namespace.
    pub fn netlink(&self) -> &Netlink {
        &self.nl
    }

    /// Plug a local container into the overlay: `ifname` in the container with `ip`/subnet
    /// prefix, the overlay MTU and `mac` (default derived from the IP). `default_route`
    /// sends all other traffic through the overlay gateway.
    pub async fn attach_endpoint(
        &self,
        container_netns: &Path,
        ifname: &str,
        ip: Ipv4Addr,
        mac: Option<Mac>,
        default_route: bool,
    ) -> Result<Attachment> {
        check_in_subnet(self.spec.subnet, ip, "endpoint address")?;
        if ip == self.spec.gateway {
            return Err(NetError::Invalid(format!(
                "endpoint {ip} is the gateway address"
            )));
        }
        let spec = AttachSpec {
            netns: container_netns.to_path_buf(),
            ifname: ifname.to_string(),
            ip,
            prefix: self.spec.subnet.prefix_len(),
            gateway: default_route.then_some(self.spec.gateway),
            mac,
            mtu: self.spec.mtu,
        };
        bridge_net::attach(&self.nl, OVERLAY_BRIDGE, &spec).await
    }

    /// Unplug a local container.
    pub async fn detach_endpoint(&self, att: &Attachment) -> Result<()> {
        bridge_net::detach(&self.nl, att).await
    }

    /// Program a remote endpoint: frames for `mac` go to `vtep`, ARP for `ip` answers `mac`.
    pub async fn add_remote_endpoint(&self, ip: Ipv4Addr, mac: Mac, vtep: Ipv4Addr) -> Result<()> {
        check_in_subnet(self.spec.subnet, ip, "remote endpoint")?;
        self.nl.add_fdb(OVERLAY_VXLAN, mac, vtep).await?;
        self.nl.add_neigh(OVERLAY_VXLAN, ip, mac).await
    }

    /// Forget a remote endpoint (fine if it was not programmed).
    pub async fn remove_remote_endpoint(
        &self,
        ip: Ipv4Addr,
        mac: Mac,
        vtep: Ipv4Addr,
    ) -> Result<()> {
        self.nl.del_neigh(OVERLAY_VXLAN, ip).await?;
        self.nl.del_fdb(OVERLAY_VXLAN, mac, vtep).await
    }

    /// Remote endpoints currently programmed: (ip, mac, vtep) for every neighbour entry whose
    /// MAC has an FDB entry.
    pub async fn programmed_remotes(&self) -> Result<Vec<(Ipv4Addr, Mac, Ipv4Addr)>> {
        let neigh = self.nl.neighbours(OVERLAY_VXLAN).await?;
        let fdb = self.nl.fdb(OVERLAY_VXLAN).await?;
        let mut out: Vec<_> = neigh
            .into_iter()
            .filter_map(|(ip, mac)| {
                fdb.iter()
                    .find(|(m, _)| *m == mac)
                    .map(|(_, vtep)| (ip, mac, *vtep))
            })
            .collect();
        out.sort();
        Ok(out)
    }

    /// Make the programmed remote endpoints exactly `desired` (after a restart, or a full
    /// resync from gossip): stale entries are removed, missing ones added.
    pub async fn reconcile(&self, desired: &[(Ipv4Addr, Mac, Ipv4Addr)]) -> Result<()> {
        let have = self.programmed_remotes().await?;
        for h in &have {
            if !desired.contains(h) {
                self.remove_remote_endpoint(h.0, h.1, h.2).await?;
            }
        }
        for d in desired {
            if !have.contains(d) {
                self.add_remote_endpoint(d.0, d.1, d.2).await?;
            }
        }
        Ok(())
    }

    /// Program one gossip change if it concerns this overlay (`network_id` matches); returns
    /// whether anything was done. Endpoints whose VTEP is our own are skipped (local ones are
    /// on the bridge already).
    pub async fn apply_gossip_event(&self, ev: &crate::gossip::EndpointEvent) -> Result<bool> {
        use crate::gossip::EndpointEvent;
        let (r, add) = match ev {
            EndpointEvent::Added(r) => (r, true),
            EndpointEvent::Removed(r) => (r, false),
        };
        let ep = &r.endpoint;
        if ep.network != self.spec.network_id || ep.vtep == self.spec.local_vtep {
            return Ok(false);
        }
        if add {
            self.add_remote_endpoint(ep.ip, ep.mac, ep.vtep).await?;
        } else {
            self.remove_remote_endpoint(ep.ip, ep.mac, ep.vtep).await?;
        }
        Ok(true)
    }

    /// Remove the overlay from this node: deleting the namespace destroys the bridge, the
    /// VXLAN device (and its socket) and the overlay ends of all endpoints.
    pub async fn teardown(self) -> Result<()> {
        let name = self.spec.netns_name();
        drop(self.nl);
        netns::delete(&name)
    }
}

/// With `br_netfilter` loaded, every frame crossing a bridge also goes through the IP (and ARP)
/// netfilter hooks of the bridge's namespace. Nothing filters inside an overlay namespace, so
/// there that is only per-packet cost: turn it off there (the settings are per namespace; the
/// node's own stay as they are). Without the module the settings do not exist: nothing to do.
fn bridge_netfilter_off(netns: &Path) -> Result<()> {
    for key in [
        "net/bridge/bridge-nf-call-iptables",
        "net/bridge/bridge-nf-call-ip6tables",
        "net/bridge/bridge-nf-call-arptables",
    ] {
        match bridge_net::set_sysctl(Some(netns), key, "0") {
            Err(NetError::Io(e)) if e.kind() == std::io::ErrorKind::NotFound => {}
            r => r?,
        }
    }
    Ok(())
}

/// Is there an address `ip` on any link of the namespace of `nl`? (A VTEP must be local.)
pub async fn has_local_address(nl: &Netlink, ip: Ipv4Addr) -> Result<bool> {
    nl.call(move |h| async move {
        use futures::TryStreamExt;
        use netlink_packet_route::address::AddressAttribute;
        let mut s = h.address().get().execute();
        while let Some(m) = s
            .try_next()
            .await
            .map_err(|e| NetError::Netlink(format!("dump addresses: {e}")))?
        {
            if m.attributes
                .iter()
                .any(|a| matches!(a, AddressAttribute::Address(IpAddr::V4(x)) | AddressAttribute::Local(IpAddr::V4(x)) if *x == ip))
            {
                return Ok(true);
            }
        }
        Ok(false)
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> OverlaySpec {
        OverlaySpec {
            network_id: "n1".into(),
            vni: 4097,
            subnet: "10.0.1.0/24".parse().unwrap(),
            gateway: Ipv4Addr::new(10, 0, 1, 1),
            local_vtep: Ipv4Addr::new(192, 0, 2, 1),
            mtu: 1450,
            netns_prefix: "shoal-a-".into(),
        }
    }

    #[test]
    fn spec_checks() {
        assert!(spec().validate().is_ok());
        assert_eq!(spec().netns_name(), "shoal-a-ov-4097");
        assert!(OverlaySpec { vni: 0, ..spec() }.validate().is_err());
        assert!(
            OverlaySpec {
                vni: 1 << 24,
                ..spec()
            }
            .validate()
            .is_err()
        );
        assert!(
            OverlaySpec {
                gateway: Ipv4Addr::new(10, 0, 2, 1),
                ..spec()
            }
            .validate()
            .is_err()
        );
        assert!(OverlaySpec { mtu: 100, ..spec() }.validate().is_err());
        assert!(
            OverlaySpec {
                netns_prefix: "a/".into(),
                ..spec()
            }
            .validate()
            .is_err()
        );
    }
}
