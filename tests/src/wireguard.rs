//! The userspace WireGuard devices of lab daemons (encrypted overlays).

use crate::{Host, netplane_prefix};

/// The UAPI socket of a host's WireGuard device (boringtun names it after the device, which
/// the daemon names after its netplane prefix).
pub fn uapi_socket(h: &Host) -> String {
    let prefix = netplane_prefix(&h.data_root());
    format!(
        "/var/run/wireguard/shw{}.sock",
        prefix.trim_start_matches("shn").trim_end_matches('-')
    )
}

/// Removes the hosts' UAPI socket files when dropped: the lab kills its daemons with SIGKILL,
/// which leaves them behind.
pub struct UapiSockets(Vec<String>);

impl UapiSockets {
    pub fn of(hosts: &[Host]) -> UapiSockets {
        UapiSockets(hosts.iter().map(uapi_socket).collect())
    }
}

impl Drop for UapiSockets {
    fn drop(&mut self) {
        for s in &self.0 {
            let _ = std::fs::remove_file(s);
        }
    }
}
