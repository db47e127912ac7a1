//! Encrypted overlays: VXLAN between the nodes' WireGuard tunnel addresses, so frames of
//! `encrypted` networks cross the underlay only inside WireGuard (boringtun, userspace).
//!
//! Each node has one device, its own key pair ([`super::wg_identity`]) and a tunnel address
//! derived from its node ID in 100.64.0.0/10. The node reports its public key to the managers
//! (heartbeat), and the managers send every node the set of all nodes' keys
//! (`Dispatcher.WireGuardPeers`): the device's peers are exactly that set, so a key the
//! managers do not know is never a peer. The device is made when the first encrypted overlay
//! is needed and stays until the node leaves the swarm.
//!
//! Rotation: the node reports its next key but keeps using the current one until the managers
//! publish the next; then the node switches its private key while its peers replace its
//! public key, all on the same push. Each side then sends a probe through the tunnel so the
//! new handshake happens at once rather than on the next packet, and re-probes a peer whose
//! handshake has not completed shortly after (both sides' first attempts may cross).

use super::wg_identity::Identity;
use super::{NetPlane, State};
use anyhow::{Result, anyhow};
use shoal_agent::wg_peers::WgPeerEntry;
use shoal_net::wireguard::{WG_PORT, WgDevice, WgPeer};
use shoal_types::node::WireGuardKey;
use std::net::{IpAddr, Ipv4Addr, UdpSocket};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Tunnel addresses are carved from this range (shared address space: never on a LAN here).
const TUNNEL_NET: (Ipv4Addr, u8) = (Ipv4Addr::new(100, 64, 0, 0), 10);
/// A peer whose new handshake has not completed this long after a key change is probed again.
const HANDSHAKE_WAIT: Duration = Duration::from_millis(700);
/// Re-probes per key change before leaving it to WireGuard's own retries.
const MAX_REPROBES: u8 = 5;
/// The discard port: probes only need to enter the tunnel, nobody answers them.
const PROBE_PORT: u16 = 9;

pub(super) struct Wg {
    pub dev: WgDevice,
    pub tunnel_ip: Ipv4Addr,
    /// The namespace of the device (probes are sent from there).
    netns: PathBuf,
    /// A socket in that namespace for probes (made on first use).
    probe_sock: Option<UdpSocket>,
    /// The peers on the device (every node of the managers' set but this one).
    applied: Vec<WgPeerEntry>,
    /// Peers that changed key (or all of them after our own change), until they handshake.
    awaiting: Vec<Awaiting>,
}

struct Awaiting {
    peer: WgPeerEntry,
    since: Instant,
    reprobes: u8,
}

/// What the node knows of WireGuard keys, with or without a device.
#[derive(Default)]
pub(super) struct WgKeys {
    identity: Option<Identity>,
    /// The managers' set (None until the first one arrives).
    managers: Option<Vec<WgPeerEntry>>,
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

/// The device peers for the managers' `set` as seen from node `me`: every other node.
fn peers_for(set: &[WgPeerEntry], me: &str) -> Vec<WgPeerEntry> {
    set.iter().filter(|p| p.node_id != me).cloned().collect()
}

fn device_peer(p: &WgPeerEntry) -> WgPeer {
    WgPeer {
        public_key: p.public_key.clone(),
        endpoint: Some(p.endpoint),
        allowed_ips: vec![ipnet::IpNet::from(ipnet::Ipv4Net::from(tunnel_ip(
            &p.node_id,
        )))],
        keepalive: Some(25),
    }
}

impl NetPlane {
    fn wg_name(&self) -> String {
        // `shn123abc-` → `shw123abc`: unique per daemon on the machine (the UAPI socket is).
        format!(
            "shw{}",
            self.prefix.trim_start_matches("shn").trim_end_matches('-')
        )
    }

    fn identity<'a>(&self, keys: &'a mut WgKeys) -> Result<&'a mut Identity> {
        if keys.identity.is_none() {
            keys.identity = Some(Identity::load(&self.state_dir)?);
        }
        keys.identity
            .as_mut()
            .ok_or_else(|| anyhow!("WireGuard identity not loaded"))
    }

    /// The key this node reports to the managers (the key pair is made on first use).
    pub async fn wg_report(&self) -> Result<WireGuardKey> {
        let mut st = self.state.lock().await;
        let id = self.identity(&mut st.wg_keys)?;
        Ok(WireGuardKey {
            public_key: id.reported().public_base64(),
            port: WG_PORT,
            generation: 0,
        })
    }

    /// When this node's key is `period` old (None while a rotation is under way).
    pub async fn wg_rotation_due(&self, period: Duration) -> Result<Option<std::time::SystemTime>> {
        let mut st = self.state.lock().await;
        Ok(self.identity(&mut st.wg_keys)?.rotation_due(period))
    }

    /// Start a key rotation: the next key is made and reported; it is used once the managers
    /// publish it. Returns what to report.
    pub async fn wg_rotate(&self) -> Result<WireGuardKey> {
        {
            let mut st = self.state.lock().await;
            self.identity(&mut st.wg_keys)?.begin_rotation()?;
        }
        let k = self.wg_report().await?;
        tracing::info!(public_key = %k.public_key, "WireGuard key rotation: next key reported");
        Ok(k)
    }

    /// The managers' peer set arrived: switch to our next key if they published it, and make
    /// the device's peers exactly the other nodes of the set.
    pub async fn set_wg_peers(&self, set: Vec<WgPeerEntry>) {
        let mut st = self.state.lock().await;
        let Some(me) = st.swarm.as_ref().map(|s| s.node_id.clone()) else {
            return;
        };
        let published = set
            .iter()
            .find(|p| p.node_id == me)
            .map(|p| p.public_key.clone());
        let State { wg_keys, wg, .. } = &mut *st;
        wg_keys.managers = Some(set);
        let promote = match (wg_keys.identity.as_ref(), &published) {
            (Some(id), Some(pk)) => id.next.as_ref().is_some_and(|n| n.public_base64() == *pk),
            _ => false,
        };
        if promote && let Some(id) = wg_keys.identity.as_mut() {
            match id.promote() {
                Ok(k) => {
                    tracing::info!(public_key = %k.public_base64(), "WireGuard key rotated: the managers published the next key");
                    if let Some(w) = wg.as_mut() {
                        match w.dev.rotate_key(&k) {
                            Ok(()) => w.expect_handshakes_with_all(),
                            Err(e) => tracing::warn!("WireGuard key switch: {e}"),
                        }
                    }
                }
                Err(e) => tracing::warn!("WireGuard key rotation: {e:#}"),
            }
        }
        if let (Some(w), Some(set)) = (wg.as_mut(), wg_keys.managers.as_ref()) {
            w.apply(&peers_for(set, &me));
        }
    }

    /// Re-probe peers whose handshake after a key change has not completed yet. True while
    /// some are still awaited.
    pub async fn wg_recheck(&self) -> bool {
        let mut st = self.state.lock().await;
        match st.wg.as_mut() {
            Some(w) => w.recheck(),
            None => false,
        }
    }

    /// Create the node's WireGuard device with its current key and the managers' peers.
    pub(super) async fn start_wg(
        &self,
        keys: &mut WgKeys,
        node_id: &str,
        underlay_mtu: u32,
    ) -> Result<Wg> {
        let name = self.wg_name();
        let key = self.identity(keys)?.current.clone();
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
        let mut wg = Wg {
            dev,
            tunnel_ip,
            netns: self.host_netns.clone(),
            probe_sock: None,
            applied: Vec::new(),
            awaiting: Vec::new(),
        };
        match &keys.managers {
            Some(set) => wg.apply(&peers_for(set, node_id)),
            None => tracing::info!("WireGuard: no peers until the managers send their key set"),
        }
        tracing::info!(device = %name, %tunnel_ip, public_key = %key.public_base64(), "WireGuard up for encrypted overlays");
        Ok(wg)
    }
}

impl Wg {
    /// Send one datagram into the tunnel towards each of `nodes`: WireGuard starts a handshake
    /// with a peer as soon as something is to be sent to it.
    fn probe<'a>(&mut self, nodes: impl Iterator<Item = &'a WgPeerEntry>) {
        if self.probe_sock.is_none() {
            self.probe_sock = shoal_net::netns::run_in(&self.netns, || {
                UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0))
            })
            .ok()
            .and_then(|r| r.ok());
        }
        let Some(sock) = &self.probe_sock else { return };
        for p in nodes {
            let _ = sock.send_to(b"shoal-wg-probe", (tunnel_ip(&p.node_id), PROBE_PORT));
        }
    }

    /// Make the device's peers exactly `want`; peers with a new key are probed.
    fn apply(&mut self, want: &[WgPeerEntry]) {
        if want == self.applied.as_slice() {
            return;
        }
        // Removals first: a node's new key takes over its tunnel address from the old one.
        for old in &self.applied {
            if !want.iter().any(|w| w.public_key == old.public_key)
                && let Err(e) = self.dev.remove_peer(&old.public_key)
            {
                tracing::warn!(node = %old.node_id, "removing WireGuard peer: {e}");
            }
        }
        let mut ok = true;
        let mut fresh = Vec::new();
        for w in want {
            let before = self.applied.iter().find(|a| a.public_key == w.public_key);
            if before == Some(w) {
                continue;
            }
            if let Err(e) = self.dev.set_peer(&device_peer(w)) {
                tracing::warn!(node = %w.node_id, "WireGuard peer: {e}");
                ok = false;
                continue;
            }
            if before.is_none() {
                fresh.push(w.clone());
            }
        }
        self.await_handshakes(fresh);
        self.awaiting
            .retain(|a| want.iter().any(|w| w.public_key == a.peer.public_key));
        if ok {
            self.applied = want.to_vec();
        }
    }

    /// Our own key changed: every session is gone; start the new handshakes now.
    fn expect_handshakes_with_all(&mut self) {
        self.awaiting.clear();
        self.await_handshakes(self.applied.clone());
    }

    /// Probe `peers` (new keys) and follow their handshakes, replacing what was awaited of
    /// the same nodes.
    fn await_handshakes(&mut self, peers: Vec<WgPeerEntry>) {
        if peers.is_empty() {
            return;
        }
        self.probe(peers.iter());
        let now = Instant::now();
        self.awaiting
            .retain(|a| !peers.iter().any(|f| f.node_id == a.peer.node_id));
        self.awaiting.extend(peers.into_iter().map(|peer| Awaiting {
            peer,
            since: now,
            reprobes: 0,
        }));
    }

    fn recheck(&mut self) -> bool {
        if self.awaiting.is_empty() {
            return false;
        }
        let Ok(status) = self.dev.status() else {
            return true;
        };
        let mut again = Vec::new();
        self.awaiting.retain_mut(|a| {
            let done = status.peers.iter().any(|p| {
                p.public_key == a.peer.public_key
                    && p.since_handshake.is_some_and(|d| d < a.since.elapsed())
            });
            if done {
                return false;
            }
            if a.since.elapsed() < HANDSHAKE_WAIT {
                return true;
            }
            if a.reprobes >= MAX_REPROBES {
                tracing::debug!(node = %a.peer.node_id, "no WireGuard handshake after the key change; leaving it to WireGuard's retries");
                return false;
            }
            // A handshake attempt in flight blocks new ones for 5 s: drop the peer's state.
            let _ = self.dev.remove_peer(&a.peer.public_key);
            if let Err(e) = self.dev.set_peer(&device_peer(&a.peer)) {
                tracing::warn!(node = %a.peer.node_id, "WireGuard peer: {e}");
            }
            a.reprobes += 1;
            a.since = Instant::now();
            again.push(a.peer.clone());
            true
        });
        self.probe(again.iter());
        !self.awaiting.is_empty()
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

    fn entry(id: &str, key: &str) -> WgPeerEntry {
        WgPeerEntry {
            node_id: id.into(),
            endpoint: "192.0.2.1:51820".parse().unwrap(),
            public_key: key.into(),
            generation: 1,
        }
    }

    #[test]
    fn peers_are_the_other_nodes_of_the_managers_set() {
        let set = vec![entry("a", "ka"), entry("b", "kb"), entry("c", "kc")];
        let p = peers_for(&set, "b");
        assert_eq!(
            p.iter().map(|e| e.node_id.as_str()).collect::<Vec<_>>(),
            ["a", "c"]
        );
        let d = device_peer(&set[0]);
        assert_eq!(d.allowed_ips.len(), 1);
        assert_eq!(
            d.allowed_ips[0].to_string(),
            format!("{}/32", tunnel_ip("a"))
        );
    }

    /// A real boringtun device (needs root and /dev/net/tun) in a namespace made here: its
    /// peers are exactly the managers' set, a rotated key replaces the old one, and a node the
    /// managers drop is no peer any more.
    #[test]
    fn device_peers_are_exactly_the_managers_keys() {
        assert!(
            nix::unistd::geteuid().is_root(),
            "this test needs root (a network namespace and a TUN device)"
        );
        let tag = std::process::id() % 100_000;
        let ns = shoal_net::netns::NetnsGuard::create(&format!("shwgt{tag}")).expect("netns");
        let dev = WgDevice::create(&format!("shwt{tag}"), Some(ns.path())).expect("device");
        dev.configure(&shoal_net::wireguard::KeyPair::generate(), 0)
            .expect("configure");
        let mut wg = Wg {
            dev,
            tunnel_ip: tunnel_ip("me"),
            netns: ns.path().to_path_buf(),
            probe_sock: None,
            applied: Vec::new(),
            awaiting: Vec::new(),
        };
        let key = || shoal_net::wireguard::KeyPair::generate().public_base64();
        let (ka, kb, kb2) = (key(), key(), key());
        let peers = |wg: &Wg| {
            let mut p: Vec<(String, Vec<String>)> = wg
                .dev
                .status()
                .expect("status")
                .peers
                .into_iter()
                .map(|p| (p.public_key, p.allowed_ips))
                .collect();
            p.sort();
            p
        };
        let want = |v: &[(&String, &str)]| {
            let mut w: Vec<(String, Vec<String>)> = v
                .iter()
                .map(|(k, n)| ((*k).clone(), vec![format!("{}/32", tunnel_ip(n))]))
                .collect();
            w.sort();
            w
        };
        let set = vec![entry("me", &key()), entry("a", &ka), entry("b", &kb)];
        wg.apply(&peers_for(&set, "me"));
        assert_eq!(peers(&wg), want(&[(&ka, "a"), (&kb, "b")]));
        // b rotated: its new key takes its tunnel address, the old key is gone.
        let set = vec![entry("a", &ka), entry("b", &kb2)];
        wg.apply(&peers_for(&set, "me"));
        assert_eq!(peers(&wg), want(&[(&ka, "a"), (&kb2, "b")]));
        let awaited: Vec<&str> = wg
            .awaiting
            .iter()
            .map(|a| a.peer.public_key.as_str())
            .collect();
        assert!(
            awaited.contains(&kb2.as_str()),
            "b's new key awaits a handshake"
        );
        assert!(!awaited.contains(&kb.as_str()));
        // b left the managers' set: no peer any more.
        wg.apply(&peers_for(&set[..1], "me"));
        assert_eq!(peers(&wg), want(&[(&ka, "a")]));
        assert!(wg.awaiting.iter().all(|a| a.peer.node_id == "a"));
    }
}
