//! Userspace WireGuard (boringtun) between two namespaces: TCP through the tunnel, the underlay
//! carries UDP to the WireGuard port (nft counter), key rotation keeps the tunnel working.
//! Needs root, /dev/net/tun and `nft`.

mod common;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use shoal_net::netlink::Netlink;
use shoal_net::netns::NetnsGuard;
use shoal_net::wireguard::{KeyPair, WG_PORT, WgDevice, WgPeer};

fn counter_packets(ns: &std::path::Path, table: &str) -> u64 {
    let listing = shoal_net::nft::list_table(Some(ns), table)
        .unwrap()
        .expect("counter table");
    listing
        .split("packets ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

async fn request_until_ok(ns: &std::path::Path, addr: SocketAddr, msg: &str) -> String {
    // The first packets trigger the handshake; retry for a bounded time.
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let (p, m) = (ns.to_path_buf(), msg.to_string());
        let r = tokio::task::spawn_blocking(move || common::tcp_request(&p, addr, &m))
            .await
            .unwrap();
        match r {
            Ok(a) => return a,
            Err(e) => {
                assert!(
                    Instant::now() < deadline,
                    "no answer through the tunnel: {e}"
                );
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tunnel_carries_tcp_and_survives_rotation() {
    common::require_root();
    common::require_nft();
    assert!(
        std::path::Path::new("/dev/net/tun").exists(),
        "this test needs /dev/net/tun"
    );
    let h1 = NetnsGuard::create(&common::unique("wg-h1")).unwrap();
    let h2 = NetnsGuard::create(&common::unique("wg-h2")).unwrap();
    let n1 = Netlink::in_netns(h1.path()).unwrap();
    let n2 = Netlink::in_netns(h2.path()).unwrap();
    let (u1, u2) = (
        Ipv4Addr::new(169, 254, 92, 1),
        Ipv4Addr::new(169, 254, 92, 2),
    );
    n1.create_veth("wun0", "wun1", None).await.unwrap();
    n1.move_to_netns("wun1", h2.path()).await.unwrap();
    n1.add_address("wun0", IpAddr::V4(u1), 30).await.unwrap();
    n2.add_address("wun1", IpAddr::V4(u2), 30).await.unwrap();
    for (n, l) in [(&n1, "wun0"), (&n2, "wun1")] {
        n.set_up(l).await.unwrap();
        n.set_up("lo").await.unwrap();
    }
    // The kernel module is probed, not assumed (absent on this VM).
    let kernel = shoal_net::wireguard::kernel_available(Some(h1.path()))
        .await
        .unwrap();
    eprintln!("kernel wireguard available: {kernel}");

    // Names are machine-wide (UAPI socket path): include the pid.
    let pid = std::process::id() % 100_000;
    let d1 = WgDevice::create(&format!("swa{pid}"), Some(h1.path())).unwrap();
    let d2 = WgDevice::create(&format!("swb{pid}"), Some(h2.path())).unwrap();
    let (k1, k2) = (KeyPair::generate(), KeyPair::generate());
    d1.configure(&k1, WG_PORT).unwrap();
    d2.configure(&k2, WG_PORT).unwrap();
    let (t1, t2) = (Ipv4Addr::new(10, 99, 0, 1), Ipv4Addr::new(10, 99, 0, 2));
    let peer = |k: &KeyPair, u: Ipv4Addr, t: Ipv4Addr| WgPeer {
        public_key: k.public_base64(),
        endpoint: Some(SocketAddr::from((u, WG_PORT))),
        allowed_ips: vec![format!("{t}/32").parse().unwrap()],
        keepalive: None,
    };
    d1.set_peer(&peer(&k2, u2, t2)).unwrap();
    d2.set_peer(&peer(&k1, u1, t1)).unwrap();
    for (n, d, t) in [(&n1, &d1, t1), (&n2, &d2, t2)] {
        n.add_address(d.name(), IpAddr::V4(t), 24).await.unwrap();
        n.set_up(d.name()).await.unwrap();
    }
    let st = d1.status().unwrap();
    assert_eq!(st.listen_port, Some(WG_PORT));
    assert_eq!(st.public_key.as_deref(), Some(k1.public_base64().as_str()));
    assert_eq!(st.peers.len(), 1);

    // Count UDP arriving at the WireGuard port on h2's underlay.
    let table = format!("shoalwg{pid}");
    let _tg = shoal_net::nft::TableGuard {
        netns: Some(h2.path().into()),
        table: table.clone(),
    };
    let rules = format!(
        "table ip {table} {{ chain wgcount {{ type filter hook input priority 0; policy accept; iifname \"wun1\" udp dport {WG_PORT} counter; }}; }}"
    );
    let out = shoal_net::netns::run_in(h2.path(), || {
        std::process::Command::new("nft")
            .args(["-f", "-"])
            .stdin(std::process::Stdio::piped())
            .spawn()
            .and_then(|mut c| {
                use std::io::Write;
                c.stdin.take().unwrap().write_all(rules.as_bytes())?;
                c.wait()
            })
    })
    .unwrap()
    .unwrap();
    assert!(out.success(), "nft counter table");

    let server = common::EchoServer::start(h2.path(), SocketAddr::from((t2, 7200)), "h2");
    let a = request_until_ok(h1.path(), server.addr, "through-wg").await;
    assert_eq!(a, "h2:through-wg");
    let before = counter_packets(h2.path(), &table);
    assert!(before > 0, "no UDP reached port {WG_PORT} on the underlay");
    let st = d1.status().unwrap();
    assert!(
        st.peers[0].since_handshake.is_some(),
        "handshake recorded: {st:?}"
    );
    assert!(st.peers[0].tx_bytes > 0 && st.peers[0].rx_bytes > 0);

    // Rotate node 1's key: node 2 swaps the old peer for the new key; traffic flows again.
    let k1b = KeyPair::generate();
    d1.rotate_key(&k1b).unwrap();
    d2.remove_peer(&k1.public_base64()).unwrap();
    d2.set_peer(&peer(&k1b, u1, t1)).unwrap();
    assert_eq!(
        d1.status().unwrap().public_key.as_deref(),
        Some(k1b.public_base64().as_str())
    );
    let a = request_until_ok(h1.path(), server.addr, "after-rotation").await;
    assert_eq!(a, "h2:after-rotation");
    assert!(counter_packets(h2.path(), &table) > before);
    drop(server);

    let sock = d1.socket_path();
    drop(d1);
    drop(d2);
    assert!(!sock.exists(), "UAPI socket removed");
}
