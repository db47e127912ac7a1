//! shoal-net: the node data plane of Shoal.
//!
//! Each module is usable on its own; the agent wires them together:
//! - [`netns`]: named network namespaces and running code inside one.
//! - [`netlink`]: an rtnetlink handle bound to one network namespace.
//! - [`bridge_net`]: the default bridge network for standalone containers.
//! - [`overlay`]: VXLAN overlays, one dedicated namespace per overlay.
//! - [`nft`]: nftables rulesets (NAT, host ports, VIPs, ingress mesh).
//! - [`dns`]: the embedded service-discovery DNS server.
//! - [`gossip`]: endpoint tables replicated with chitchat.
//! - [`wireguard`]: WireGuard tunnels (boringtun userspace or kernel).

pub mod bridge_net;
pub mod dns;
pub mod error;
pub mod gossip;
pub mod mac;
pub mod netlink;
pub mod netns;
pub mod nft;
pub mod overlay;
pub mod wireguard;

pub use error::{NetError, Result};
pub use mac::Mac;

/// VXLAN encapsulation overhead over IPv4 (outer IP 20 + UDP 8 + VXLAN 8 + inner Ethernet 14).
pub const VXLAN_OVERHEAD: u32 = 50;
/// WireGuard overhead, IPv6-safe figure (outer IP 40 + UDP 8 + WG header 16 + tag 16).
pub const WIREGUARD_OVERHEAD: u32 = 80;
/// The IANA VXLAN port.
pub const VXLAN_PORT: u16 = 4789;

/// MTU for an overlay's bridge and endpoints so that encapsulation never fragments.
pub fn overlay_mtu(underlay_mtu: u32, encrypted: bool) -> Result<u32> {
    let overhead = VXLAN_OVERHEAD + if encrypted { WIREGUARD_OVERHEAD } else { 0 };
    match underlay_mtu.checked_sub(overhead) {
        Some(m) if m >= *shoal_types::network::MTU_RANGE.start() => Ok(m),
        _ => Err(NetError::Invalid(format!(
            "underlay MTU {underlay_mtu} too small for overlay overhead {overhead}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlay_mtu_subtracts_overheads() {
        assert_eq!(overlay_mtu(1500, false).unwrap(), 1450);
        assert_eq!(overlay_mtu(1500, true).unwrap(), 1370);
        assert!(overlay_mtu(600, true).is_err());
    }
}
