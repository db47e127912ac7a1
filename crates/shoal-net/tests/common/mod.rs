//! Helpers shared by the root-only integration tests: unique names, a guard check for what
//! the tests need, and a tiny TCP echo server/client that run inside a namespace.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use shoal_net::netns;

/// Fail with a clear message when the machine lacks what these tests need.
pub fn require_root() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "this test needs root (network namespaces, netlink, nftables)"
    );
    assert!(
        Path::new("/proc/self/ns/net").exists(),
        "no network namespace support"
    );
}

/// Fail clearly when `nft` is missing.
pub fn require_nft() {
    let ok = std::process::Command::new("nft")
        .arg("--version")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    assert!(
        ok,
        "this test needs the `nft` binary (apt-get install nftables)"
    );
}

/// A per-process unique namespace name.
pub fn unique(tag: &str) -> String {
    format!("sn{}-{tag}", std::process::id())
}

/// A TCP server inside a namespace that answers each line with `<id>:<line>`; stops on drop.
pub struct EchoServer {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<shoal_net::Result<()>>>,
    pub addr: SocketAddr,
}

impl EchoServer {
    pub fn start(netns: &Path, addr: SocketAddr, id: &str) -> EchoServer {
        let listener = netns::run_in(netns, || TcpListener::bind(addr))
            .expect("enter netns")
            .expect("bind echo server");
        listener.set_nonblocking(true).expect("nonblocking");
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = stop.clone();
        let id = id.to_string();
        let deadline = Instant::now() + Duration::from_secs(120);
        // The socket already lives in the namespace; the thread itself need not enter it.
        let thread = std::thread::spawn(move || {
            while !stop2.load(Ordering::Relaxed) && Instant::now() < deadline {
                match listener.accept() {
                    Ok((mut s, _)) => {
                        // One thread per connection: a held-open client must not block others.
                        let id = id.clone();
                        std::thread::spawn(move || {
                            let _ = s.set_nonblocking(false);
                            let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
                            let mut buf = [0u8; 512];
                            if let Ok(n) = s.read(&mut buf) {
                                let line = String::from_utf8_lossy(&buf[..n]).to_string();
                                let _ = s.write_all(format!("{id}:{line}").as_bytes());
                            }
                        });
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(2)),
                }
            }
            Ok(())
        });
        EchoServer {
            stop,
            thread: Some(thread),
            addr,
        }
    }
}

impl Drop for EchoServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Connect from inside `netns` to `addr`, send `msg`, return the answer.
pub fn tcp_request(netns: &Path, addr: SocketAddr, msg: &str) -> Result<String, String> {
    let stream = netns::run_in(netns, || {
        TcpStream::connect_timeout(&addr, Duration::from_secs(3))
    })
    .map_err(|e| e.to_string())?
    .map_err(|e| format!("connect {addr}: {e}"))?;
    let mut s = stream;
    s.set_read_timeout(Some(Duration::from_secs(3)))
        .map_err(|e| e.to_string())?;
    s.write_all(msg.as_bytes()).map_err(|e| e.to_string())?;
    let mut out = String::new();
    s.read_to_string(&mut out)
        .map_err(|e| format!("read from {addr}: {e}"))?;
    Ok(out)
}

/// Path helper.
pub fn p(s: &str) -> PathBuf {
    PathBuf::from(s)
}
