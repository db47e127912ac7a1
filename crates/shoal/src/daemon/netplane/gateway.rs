//! The gateway bridge (Docker's `docker_gwbridge`): every task container also gets an
//! interface on a local bridge of this daemon, its default route goes through it and the node
//! masquerades that traffic, so containers reach the node's network (and the DNS forwarder,
//! which runs inside the container's namespace, reaches its upstreams). Overlay subnets stay
//! on their connected routes over the overlays. The bridge is made with the first task and
//! removed with the last.

use super::{NetPlane, State, TaskNet, lowest_free, saved_index};
use anyhow::{Result, anyhow, bail};
use ipnet::Ipv4Net;
use shoal_net::Mac;
use shoal_net::bridge_net::{self, AttachSpec, Attachment};
use std::net::Ipv4Addr;
use std::path::PathBuf;

/// Subnet of every daemon's gateway bridge (Docker's choice for docker_gwbridge). Each daemon
/// has its own network namespace (the node), so the same subnet on each is fine.
pub const GW_NET: &str = "172.18.0.0/16";
/// Interface name of the gateway link inside the container.
pub const GW_IFNAME: &str = "gwbr0";

/// One container's link to the gateway bridge.
pub(super) struct GwLink {
    pub index: u32,
    pub attachment: Attachment,
}

pub(super) fn gw_net() -> Result<Ipv4Net> {
    GW_NET.parse().map_err(|e| anyhow!("{GW_NET}: {e}"))
}

/// The bridge's own address (the containers' default gateway).
pub(super) fn gw_ip() -> Result<Ipv4Addr> {
    Ok(Ipv4Addr::from(u32::from(gw_net()?.network()) + 1))
}

/// Container address of link number `index` (.2 onwards; network, gateway, broadcast skipped).
fn container_ip(index: u32) -> Result<Ipv4Addr> {
    let net = gw_net()?;
    let slots = (1u32 << (32 - net.prefix_len())) - 3;
    if index >= slots {
        bail!("no free address on the gateway bridge (all {slots} in use)");
    }
    Ok(Ipv4Addr::from(u32::from(net.network()) + 2 + index))
}

/// Per-daemon bridge name: `shgw` + the hash digits of the daemon's netns prefix.
pub(super) fn bridge_name(prefix: &str) -> String {
    let digits: String = prefix
        .trim_start_matches("shn")
        .chars()
        .filter(|c| c.is_ascii_hexdigit())
        .take(6)
        .collect();
    format!("shgw{digits}")
}

impl NetPlane {
    fn gw_file(&self, task_id: &str) -> PathBuf {
        self.state_dir.join(format!("{task_id}.gw"))
    }

    pub(super) fn gw_bridge(&self) -> String {
        bridge_name(&self.prefix)
    }

    /// Plug `tn` into the gateway bridge (made on first use) with its default route there.
    /// With `adopt` (daemon restart), an existing link whose number is on disk is kept.
    pub(super) async fn attach_gateway(
        &self,
        st: &State,
        tn: &TaskNet,
        adopt: bool,
        mtu: u32,
    ) -> Result<GwLink> {
        let net = gw_net()?;
        let bridge = self.gw_bridge();
        bridge_net::ensure_bridge(&self.host, &bridge, net, gw_ip()?, mtu)
            .await
            .map_err(|e| anyhow!("gateway bridge {bridge}: {e}"))?;
        bridge_net::set_sysctl(Some(&self.host_netns), "net/ipv4/ip_forward", "1")
            .map_err(|e| anyhow!("{e}"))?;
        let path = tn.netns_path();
        let file = self.gw_file(&tn.task.id);
        if adopt && let Some(index) = saved_index(&file) {
            let ip = container_ip(index)?;
            let (host_if, _) = bridge_net::veth_names(&path, GW_IFNAME, ip);
            if self.host.link(&host_if).await?.is_some() {
                return Ok(GwLink {
                    index,
                    attachment: Attachment {
                        bridge,
                        host_ifname: host_if,
                        netns: path,
                        ifname: GW_IFNAME.to_string(),
                        ip,
                        prefix: net.prefix_len(),
                        mac: Mac::from_ip(ip),
                        mtu,
                    },
                });
            }
        }
        let index = lowest_free(
            st.tasks
                .values()
                .filter_map(|t| t.gw.as_ref())
                .map(|g| g.index),
        );
        let spec = AttachSpec {
            netns: path,
            ifname: GW_IFNAME.to_string(),
            ip: container_ip(index)?,
            prefix: net.prefix_len(),
            gateway: Some(gw_ip()?),
            mac: None,
            mtu,
        };
        let attachment = bridge_net::attach(&self.host, &bridge, &spec)
            .await
            .map_err(|e| anyhow!("gateway link: {e}"))?;
        self.save_index(&file, index)?;
        Ok(GwLink { index, attachment })
    }

    /// Unplug a task's gateway link; the bridge goes with the last one.
    pub(super) async fn detach_gateway(&self, st: &State, task_id: &str, link: Option<GwLink>) {
        if let Some(l) = link
            && let Err(e) = bridge_net::detach(&self.host, &l.attachment).await
        {
            tracing::warn!(task = %task_id, "detaching the gateway link: {e}");
        }
        let _ = std::fs::remove_file(self.gw_file(task_id));
        if st.tasks.values().all(|t| t.gw.is_none()) {
            let bridge = self.gw_bridge();
            if let Err(e) = bridge_net::remove_bridge(&self.host, &bridge).await {
                tracing::warn!("removing the gateway bridge {bridge}: {e}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_addresses() {
        let n = bridge_name("shn1a2b3c-");
        assert_eq!(n, "shgw1a2b3c");
        assert!(n.len() <= 15);
        assert_eq!(gw_ip().unwrap(), Ipv4Addr::new(172, 18, 0, 1));
        assert_eq!(container_ip(0).unwrap(), Ipv4Addr::new(172, 18, 0, 2));
        assert_eq!(container_ip(300).unwrap(), Ipv4Addr::new(172, 18, 1, 46));
        assert!(container_ip(65533).is_err());
    }
}
