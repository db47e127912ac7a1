//! WireGuard tunnels between nodes for encrypted overlays.
//!
//! Encrypted overlays run their VXLAN traffic between the nodes' WireGuard addresses (the
//! VXLAN remote is the peer's tunnel address), so every overlay frame crossing the underlay is
//! inside WireGuard. Keys are per node, distributed by the managers, and rotated by setting a
//! new private key here and the new public key on every peer.
//!
//! The device is boringtun's userspace implementation (a TUN interface plus worker threads),
//! configured over its UAPI unix socket with the small client below (the text protocol of
//! `wg`'s cross-platform interface). [`kernel_available`] reports whether the kernel module
//! could be used instead; this VM has none, and configuring kernel devices needs the WireGuard
//! generic-netlink family, which this crate does not speak yet: kernel devices are refused with
//! a clear error rather than half-configured.

use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, BorrowedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine;
use boringtun::device::{DeviceConfig, DeviceHandle};
use boringtun::x25519::{PublicKey, StaticSecret};
use ipnet::IpNet;
use rand::RngCore;

use crate::netlink::validate_ifname;
use crate::{NetError, Result};

/// Where boringtun puts its UAPI sockets (one per device name, machine-wide).
pub const UAPI_DIR: &str = "/var/run/wireguard";
/// Default WireGuard port.
pub const WG_PORT: u16 = 51820;

/// A Curve25519 key pair.
#[derive(Clone)]
pub struct KeyPair {
    private: [u8; 32],
    public: [u8; 32],
}

impl std::fmt::Debug for KeyPair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the private key.
        write!(f, "KeyPair(public={})", self.public_base64())
    }
}

impl KeyPair {
    /// A fresh random key pair.
    pub fn generate() -> KeyPair {
        let mut b = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut b);
        Self::from_private(b)
    }

    /// From private key bytes (clamped by x25519).
    pub fn from_private(private: [u8; 32]) -> KeyPair {
        let s = StaticSecret::from(private);
        let public = PublicKey::from(&s).to_bytes();
        KeyPair {
            private: s.to_bytes(),
            public,
        }
    }

    /// From the base64 form `wg genkey` prints.
    pub fn from_private_base64(s: &str) -> Result<KeyPair> {
        Ok(Self::from_private(decode_key(s)?))
    }

    pub fn private_base64(&self) -> String {
        base64::engine::general_purpose::STANDARD.encode(self.private)
    }

    pub fn public_base64(&self) -> String {
        base64::engine::general_purpose::STANDARD.encode(self.public)
    }

    pub fn public(&self) -> [u8; 32] {
        self.public
    }
}

/// Decode a base64 WireGuard key.
pub fn decode_key(s: &str) -> Result<[u8; 32]> {
    let v = base64::engine::general_purpose::STANDARD
        .decode(s.trim())
        .map_err(|e| NetError::Invalid(format!("bad WireGuard key: {e}")))?;
    v.try_into()
        .map_err(|_| NetError::Invalid("WireGuard key must be 32 bytes".into()))
}

/// A peer (another node).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WgPeer {
    /// Base64 public key.
    pub public_key: String,
    /// Its underlay address and WireGuard port.
    pub endpoint: Option<SocketAddr>,
    /// Tunnel addresses routed to it (its WireGuard address /32).
    pub allowed_ips: Vec<IpNet>,
    pub keepalive: Option<u16>,
}

/// A peer as reported by the device.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WgPeerStatus {
    pub public_key: String,
    pub endpoint: Option<SocketAddr>,
    pub allowed_ips: Vec<String>,
    /// Seconds since the last handshake (boringtun reports elapsed time, not an epoch).
    pub since_handshake: Option<Duration>,
    pub rx_bytes: u64,
    pub tx_bytes: u64,
}

/// Device status.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WgStatus {
    pub public_key: Option<String>,
    pub listen_port: Option<u16>,
    pub peers: Vec<WgPeerStatus>,
}

/// Could a kernel WireGuard device be created in `netns` (None: here)? Tries a throwaway one.
pub async fn kernel_available(netns: Option<&Path>) -> Result<bool> {
    let nl = match netns {
        Some(p) => crate::netlink::Netlink::in_netns(p)?,
        None => crate::netlink::Netlink::current()?,
    };
    let name = format!("shwgp{}", std::process::id() % 100_000);
    let n2 = name.clone();
    let ok = nl
        .call(move |h| async move {
            Ok(h.link()
                .add(rtnetlink::LinkWireguard::new(&n2).build())
                .execute()
                .await
                .is_ok())
        })
        .await?;
    if ok {
        nl.delete_link(&name).await?;
    }
    Ok(ok)
}

/// A userspace WireGuard device (boringtun). Dropping it removes the TUN and its socket.
pub struct WgDevice {
    name: String,
    netns: Option<PathBuf>,
    handle: Option<DeviceHandle>,
}

impl std::fmt::Debug for WgDevice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WgDevice")
            .field("name", &self.name)
            .field("netns", &self.netns)
            .finish()
    }
}

/// Worker threads per device: half the CPUs, at least one, at most four. The workers compete
/// for the same CPUs as the kernel's VXLAN/UDP work and the containers they carry: on a 2-core
/// VM one worker per device moved 68–85 MB/s where two moved 51–57 (`net_bench`, same build).
fn wg_worker_threads() -> usize {
    let cpus = std::thread::available_parallelism().map_or(1, usize::from);
    (cpus / 2).clamp(1, 4)
}

impl WgDevice {
    /// Create TUN device `name` in `netns` (None: the caller's namespace). The UAPI socket
    /// path is machine-wide, so `name` must be unique on the machine (use a daemon prefix).
    pub fn create(name: &str, netns: Option<&Path>) -> Result<WgDevice> {
        validate_ifname(name)?;
        if !Path::new("/dev/net/tun").exists() {
            return Err(NetError::WireGuard(
                "/dev/net/tun is missing: userspace WireGuard needs the TUN driver".into(),
            ));
        }
        // One listen socket for all peers (no per-peer connected sockets): boringtun makes its
        // sockets itself, and only the listen socket is there to be given a larger buffer
        // (see `configure`).
        let workers = wg_worker_threads();
        let cfg = || DeviceConfig {
            n_threads: workers,
            use_connected_socket: false,
            use_multi_queue: false,
            uapi_fd: -1,
        };
        // The TUN, the UDP socket and the worker threads are all made on a thread inside the
        // namespace, so they belong to it (worker threads inherit the namespace).
        let handle = match netns {
            Some(p) => crate::netns::run_in(p, || DeviceHandle::new(name, cfg()))?,
            None => DeviceHandle::new(name, cfg()),
        }
        .map_err(|e| NetError::WireGuard(format!("create {name}: {e:?}")))?;
        Ok(WgDevice {
            name: name.to_string(),
            netns: netns.map(Path::to_path_buf),
            handle: Some(handle),
        })
    }

    /// The interface name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its UAPI socket.
    pub fn socket_path(&self) -> PathBuf {
        Path::new(UAPI_DIR).join(format!("{}.sock", self.name))
    }

    /// Set the private key and listen port (0: any), and give the device's UDP sockets
    /// larger buffers.
    pub fn configure(&self, key: &KeyPair, listen_port: u16) -> Result<()> {
        let body = format!(
            "private_key={}\nlisten_port={listen_port}\n",
            hex::encode(key.private)
        );
        uapi_set(&self.socket_path(), &body)?;
        if let Some(port) = self.status()?.listen_port {
            let n = enlarge_udp_buffers(port);
            tracing::debug!(device = %self.name, port, sockets = n, "WireGuard socket buffers raised");
        }
        Ok(())
    }

    /// Rotate this node's key: peers keep working once they have the new public key.
    pub fn rotate_key(&self, key: &KeyPair) -> Result<()> {
        uapi_set(
            &self.socket_path(),
            &format!("private_key={}\n", hex::encode(key.private)),
        )
    }

    /// Add or update a peer (its allowed IPs are replaced).
    pub fn set_peer(&self, peer: &WgPeer) -> Result<()> {
        let pk = decode_key(&peer.public_key)?;
        let mut body = format!("public_key={}\nreplace_allowed_ips=true\n", hex::encode(pk));
        if let Some(e) = peer.endpoint {
            body.push_str(&format!("endpoint={e}\n"));
        }
        if let Some(k) = peer.keepalive {
            body.push_str(&format!("persistent_keepalive_interval={k}\n"));
        }
        for ip in &peer.allowed_ips {
            body.push_str(&format!("allowed_ip={ip}\n"));
        }
        uapi_set(&self.socket_path(), &body)
    }

    /// Remove a peer (fine if unknown).
    pub fn remove_peer(&self, public_key: &str) -> Result<()> {
        let pk = decode_key(public_key)?;
        uapi_set(
            &self.socket_path(),
            &format!("public_key={}\nremove=true\n", hex::encode(pk)),
        )
    }

    /// Read the device state.
    pub fn status(&self) -> Result<WgStatus> {
        let lines = uapi_get(&self.socket_path())?;
        Ok(parse_status(&lines))
    }
}

impl Drop for WgDevice {
    fn drop(&mut self) {
        // DeviceHandle's own Drop stops the workers and removes the socket; the TUN goes with
        // its file descriptor.
        drop(self.handle.take());
    }
}

/// Socket buffer size for the device's UDP sockets.
const SOCKET_BUFFER: usize = 4 << 20;

/// boringtun opens its UDP sockets with the default receive buffer (~200 KiB), which overflows
/// within a millisecond of a busy tunnel: measured, ~9 % of the packets of one TCP stream were
/// dropped there (UDP RcvbufErrors) and the stream crawled at a few hundred Mbit/s. This finds
/// this process's UDP sockets bound to `port` and raises their buffers (SO_RCVBUFFORCE needs
/// CAP_NET_ADMIN, which the daemon has). Returns how many sockets it changed.
pub fn enlarge_udp_buffers(port: u16) -> usize {
    use nix::sys::socket::{setsockopt, sockopt};
    let Ok(dir) = std::fs::read_dir("/proc/self/fd") else {
        return 0;
    };
    let mut changed = 0;
    for fd in dir
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<RawFd>().ok())
    {
        // SAFETY: the fd was open in this process a moment ago; at worst it is closed or
        // reused meanwhile, and the socket calls below then fail or skip it.
        let fd = unsafe { BorrowedFd::borrow_raw(fd) };
        if udp_port(fd) != Some(port) {
            continue;
        }
        if setsockopt(&fd, sockopt::RcvBufForce, &SOCKET_BUFFER).is_ok()
            && setsockopt(&fd, sockopt::SndBufForce, &SOCKET_BUFFER).is_ok()
        {
            changed += 1;
        }
    }
    changed
}

/// The local port of `fd` when it is a UDP (datagram, IPv4 or IPv6) socket.
fn udp_port(fd: BorrowedFd<'_>) -> Option<u16> {
    use nix::sys::socket::{SockType, SockaddrStorage, getsockname, getsockopt, sockopt};
    if getsockopt(&fd, sockopt::SockType).ok()? != SockType::Datagram {
        return None;
    }
    let addr: SockaddrStorage = getsockname(fd.as_raw_fd()).ok()?;
    addr.as_sockaddr_in()
        .map(|a| a.port())
        .or_else(|| addr.as_sockaddr_in6().map(|a| a.port()))
}

fn hex_to_b64(h: &str) -> Option<String> {
    let b = hex::decode(h).ok()?;
    Some(base64::engine::general_purpose::STANDARD.encode(b))
}

/// Parse a `get=1` answer.
pub fn parse_status(lines: &[String]) -> WgStatus {
    let mut st = WgStatus::default();
    let mut hs_sec: Option<u64> = None;
    for l in lines {
        let Some((k, v)) = l.split_once('=') else {
            continue;
        };
        match k {
            "own_public_key" => st.public_key = hex_to_b64(v),
            "listen_port" => st.listen_port = v.parse().ok(),
            "public_key" => {
                st.peers.push(WgPeerStatus {
                    public_key: hex_to_b64(v).unwrap_or_default(),
                    ..Default::default()
                });
                hs_sec = None;
            }
            _ => {
                let Some(p) = st.peers.last_mut() else {
                    continue;
                };
                match k {
                    "endpoint" => p.endpoint = v.parse().ok(),
                    "allowed_ip" => p.allowed_ips.push(v.to_string()),
                    "rx_bytes" => p.rx_bytes = v.parse().unwrap_or(0),
                    "tx_bytes" => p.tx_bytes = v.parse().unwrap_or(0),
                    "last_handshake_time_sec" => hs_sec = v.parse().ok(),
                    "last_handshake_time_nsec" => {
                        if let (Some(s), Ok(n)) = (hs_sec, v.parse::<u32>()) {
                            p.since_handshake = Some(Duration::new(s, n));
                        }
                    }
                    _ => {}
                }
            }
        }
    }
    st
}

fn connect(sock: &Path) -> Result<UnixStream> {
    let s = UnixStream::connect(sock)
        .map_err(|e| NetError::WireGuard(format!("connect {}: {e}", sock.display())))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    s.set_write_timeout(Some(Duration::from_secs(5)))?;
    Ok(s)
}

/// Read lines until the blank line that ends an answer; returns lines before it.
fn read_answer(s: &UnixStream) -> Result<Vec<String>> {
    let mut r = BufReader::new(s);
    let mut out = Vec::new();
    loop {
        let mut l = String::new();
        let n = r
            .read_line(&mut l)
            .map_err(|e| NetError::WireGuard(format!("uapi read: {e}")))?;
        if n == 0 {
            break;
        }
        let l = l.trim_end().to_string();
        if l.is_empty() {
            break;
        }
        out.push(l);
    }
    match out.iter().rev().find_map(|l| l.strip_prefix("errno=")) {
        Some("0") => Ok(out),
        Some(e) => Err(NetError::WireGuard(format!("uapi errno={e}"))),
        None => Err(NetError::WireGuard("uapi answer without errno".into())),
    }
}

fn uapi_set(sock: &Path, body: &str) -> Result<()> {
    if body.lines().any(|l| !l.contains('=')) {
        return Err(NetError::Invalid(
            "uapi body lines must be key=value".into(),
        ));
    }
    let mut s = connect(sock)?;
    s.write_all(format!("set=1\n{body}\n").as_bytes())
        .map_err(|e| NetError::WireGuard(format!("uapi write: {e}")))?;
    read_answer(&s).map(|_| ())
}

fn uapi_get(sock: &Path) -> Result<Vec<String>> {
    let mut s = connect(sock)?;
    s.write_all(b"get=1\n\n")
        .map_err(|e| NetError::WireGuard(format!("uapi write: {e}")))?;
    read_answer(&s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys() {
        let k = KeyPair::generate();
        let k2 = KeyPair::from_private_base64(&k.private_base64()).unwrap();
        assert_eq!(k.public_base64(), k2.public_base64());
        assert_ne!(KeyPair::generate().public_base64(), k.public_base64());
        assert!(decode_key("short").is_err());
        assert!(!format!("{k:?}").contains(&k.private_base64()));
    }

    #[test]
    fn status_parse() {
        let lines: Vec<String> = [
            "own_public_key=0101010101010101010101010101010101010101010101010101010101010101",
            "listen_port=51820",
            "public_key=0202020202020202020202020202020202020202020202020202020202020202",
            "endpoint=169.254.1.2:51820",
            "allowed_ip=10.99.0.2/32",
            "last_handshake_time_sec=3",
            "last_handshake_time_nsec=5",
            "rx_bytes=10",
            "tx_bytes=20",
            "errno=0",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let st = parse_status(&lines);
        assert_eq!(st.listen_port, Some(51820));
        assert_eq!(st.peers.len(), 1);
        assert_eq!(st.peers[0].rx_bytes, 10);
        assert_eq!(st.peers[0].since_handshake, Some(Duration::new(3, 5)));
        assert_eq!(st.peers[0].allowed_ips, vec!["10.99.0.2/32".to_string()]);
    }

    #[test]
    fn udp_buffers_of_a_port_are_raised() {
        let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = sock.local_addr().unwrap().port();
        let other = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let rcvbuf = |s: &std::net::UdpSocket| {
            nix::sys::socket::getsockopt(s, nix::sys::socket::sockopt::RcvBuf).unwrap()
        };
        let before = rcvbuf(&other);
        assert_eq!(udp_port(std::os::fd::AsFd::as_fd(&sock)), Some(port));
        if nix::unistd::geteuid().is_root() {
            assert_eq!(enlarge_udp_buffers(port), 1);
            // The kernel doubles the value for its bookkeeping.
            assert!(rcvbuf(&sock) >= SOCKET_BUFFER, "{}", rcvbuf(&sock));
            assert_eq!(rcvbuf(&other), before, "other sockets are left alone");
        }
    }
}
