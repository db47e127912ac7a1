//! Encrypted overlays: VXLAN between the nodes' WireGuard tunnel addresses, so frames of
//! `encrypted` networks cross the underlay only inside WireGuard (boringtun, userspace).
//!
//! Each node has one device, a key pair kept in its data root (so a restarted daemon keeps its
//! identity) and a tunnel address derived from its node ID in 100.64.0.0/10. The public key,
//! tunnel address and underlay endpoint travel in gossip; every node makes every other live
//! node a peer (allowed IP: its tunnel /32). The device is made when the first encrypted
//! overlay is needed and stays until the node leaves the swarm.

use super::NetPlane;
use anyhow::{Context, Result, anyhow};
use shoal_net::gossip::{Gossip, WgInfo};
use shoal_net::wireguard::{KeyPair, WG_PORT, WgDevice, WgPeer};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

/// Tunnel addresses are carved from this range (shared address space: never on a LAN here).
const TUNNEL_NET: (Ipv4Addr, u8) = (Ipv4Addr::new(100, 64, 0, 0), 10);

pub(super) struct Wg {
    pub dev: WgDevice,
    pub tunnel_ip: Ipv4Addr,
    pub applied: Vec<(String, WgInfo)>,
}

/// The node's tunnel address: a host address of 100.64.0.0/10 from the FNV-1a hash of its ID.
pub fn tunnel_ip(node_id: &str) -> Ipv4Addr {
    let mut h: u32 = 0x811c_9dc5;
    for b in node_id.as_bytes() {
        h ^= u32::from(*b);
        h = h.wrapping_mul(0x0100_0193);
    }
    let size = 1u32 << (32 - TUNNEL_NET.1);
    // Skip the network and broadcast addresses.
    let host = 1 + h % (size - 2);
    Ipv4Addr::from(u32::from(TUNNEL_NET.0) + host)
}

impl NetPlane {
    fn wg_name(&self) -> String {
        // `shn123abc-` → `shw123abc`: unique per daemon on the machine (the UAPI socket is).
        format!(
            "shw{}",
            self.prefix.trim_start_matches("shn").trim_end_matches('-')
        )
    }

    /// Load or make the node's key pair (private key file readable by root only).
    fn wg_key(&self) -> Result<KeyPair> {
        let path = self.state_dir.join("wireguard.key");
        if let Ok(s) = std::fs::read_to_string(&path) {
            return KeyPair::from_private_base64(s.trim())
                .map_err(|e| anyhow!("{}: {e}", path.display()));
        }
        let k = KeyPair::generate();
        std::fs::create_dir_all(&self.state_dir)?;
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .with_context(|| format!("writing {}", path.display()))?;
        f.write_all(k.private_base64().as_bytes())?;
        Ok(k)
    }

    /// Create the node's WireGuard device and publish its identity.
    pub(super) async fn start_wg(
        &self,
        gossip: &Gossip,
        node_id: &str,
        underlay: Ipv4Addr,
        underlay_mtu: u32,
    ) -> Result<Wg> {
        let name = self.wg_name();
        let key = self.wg_key()?;
        let tunnel_ip = tunnel_ip(node_id);
        // A TUN of a previous daemon died with it; a stale name would make the create fail.
        self.host.delete_link(&name).await?;
        let dev = WgDevice::create(&name, Some(&self.host_netns)).map_err(|e| anyhow!("{e}"))?;
        dev.configure(&key, WG_PORT).map_err(|e| anyhow!("{e}"))?;
        self.host
            .add_address(&name, IpAddr::V4(tunnel_ip), TUNNEL_NET.1)
            .await?;
        let mtu = underlay_mtu
            .checked_sub(shoal_net::WIREGUARD_OVERHEAD)
            .ok_or_else(|| anyhow!("underlay MTU {underlay_mtu} too small for WireGuard"))?;
        self.host.set_mtu(&name, mtu).await?;
        self.host.set_up(&name).await?;
        gossip
            .publish_wg(&WgInfo {
                public_key: key.public_base64(),
                tunnel_ip,
                endpoint: SocketAddr::new(IpAddr::V4(underlay), WG_PORT),
            })
            .await;
        tracing::info!(device = %name, %tunnel_ip, "WireGuard up for encrypted overlays");
        Ok(Wg {
            dev,
            tunnel_ip,
            applied: Vec::new(),
        })
    }
}

impl Wg {
    /// Make the device's peers exactly the other live nodes' identities.
    pub(super) fn sync_peers(&mut self, want: Vec<(String, WgInfo)>) {
        if want == self.applied {
            return;
        }
        for (_, old) in &self.applied {
            if !want.iter().any(|(_, w)| w.public_key == old.public_key) {
                let _ = self.dev.remove_peer(&old.public_key);
            }
        }
        let mut ok = true;
        for (node, w) in &want {
            let peer = WgPeer {
                public_key: w.public_key.clone(),
                endpoint: Some(w.endpoint),
                allowed_ips: vec![ipnet::IpNet::from(ipnet::Ipv4Net::from(w.tunnel_ip))],
                keepalive: Some(25),
            };
            if let Err(e) = self.dev.set_peer(&peer) {
                tracing::warn!(node = %node, "WireGuard peer: {e}");
                ok = false;
            }
        }
        if ok {
            self.applied = want;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tunnel_ips_are_host_addresses_of_the_range() {
        for id in ["a", "node-1", "x9y8z7", ""] {
            let ip = tunnel_ip(id);
            let o = ip.octets();
            assert_eq!(o[0], 100);
            assert!((64..128).contains(&o[1]), "{ip}");
            assert_ne!(ip, Ipv4Addr::new(100, 64, 0, 0));
            assert_ne!(ip, Ipv4Addr::new(100, 127, 255, 255));
        }
        assert_eq!(tunnel_ip("n1"), tunnel_ip("n1"));
        assert_ne!(tunnel_ip("n1"), tunnel_ip("n2"));
    }
}
