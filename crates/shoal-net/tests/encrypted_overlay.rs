//! An encrypted overlay: VXLAN between the nodes' WireGuard addresses, so overlay frames cross
//! the underlay only inside WireGuard. Two host namespaces, boringtun devices, an overlay in
//! each, a container on each; TCP between the containers; the underlay sees UDP to the
//! WireGuard port and nothing to 4789 (nft counters). Needs root, /dev/net/tun and `nft`.

mod common;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use shoal_net::netlink::Netlink;
use shoal_net::netns::NetnsGuard;
use shoal_net::overlay::{Overlay, OverlaySpec};
use shoal_net::wireguard::{KeyPair, WG_PORT, WgDevice, WgPeer};

fn counters(ns: &std::path::Path, table: &str) -> Vec<u64> {
    let listing = shoal_net::nft::list_table(Some(ns), table)
        .unwrap()
        .expect("counter table");
    listing
        .split("packets ")
        .skip(1)
        .filter_map(|r| r.split_whitespace().next().and_then(|n| n.parse().ok()))
        .collect()
}

struct NsName(String);
impl Drop for NsName {
    fn drop(&mut self) {
        let _ = shoal_net::netns::delete(&self.0);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overlay_inside_wireguard() {
    common::require_root();
    common::require_nft();
    assert!(
        std::path::Path::new("/dev/net/tun").exists(),
        "this test needs /dev/net/tun"
    );
    let h1 = NetnsGuard::create(&common::unique("eo-h1")).unwrap();
    let h2 = NetnsGuard::create(&common::unique("eo-h2")).unwrap();
    let c1 = NetnsGuard::create(&common::unique("eo-c1")).unwrap();
    let c2 = NetnsGuard::create(&common::unique("eo-c2")).unwrap();
    let n1 = Netlink::in_netns(h1.path()).unwrap();
    let n2 = Netlink::in_netns(h2.path()).unwrap();
    let (u1, u2) = (
        Ipv4Addr::new(169, 254, 95, 1),
        Ipv4Addr::new(169, 254, 95, 2),
    );
    n1.create_veth("eun0", "eun1", None).await.unwrap();
    n1.move_to_netns("eun1", h2.path()).await.unwrap();
    n1.add_address("eun0", IpAddr::V4(u1), 30).await.unwrap();
    n2.add_address("eun1", IpAddr::V4(u2), 30).await.unwrap();
    for (n, l) in [(&n1, "eun0"), (&n2, "eun1")] {
        n.set_up(l).await.unwrap();
        n.set_up("lo").await.unwrap();
    }

    // WireGuard between the hosts; tunnel MTU leaves room for WireGuard on the underlay.
    let pid = std::process::id() % 100_000;
    let d1 = WgDevice::create(&format!("sea{pid}"), Some(h1.path())).unwrap();
    let d2 = WgDevice::create(&format!("seb{pid}"), Some(h2.path())).unwrap();
    let (k1, k2) = (KeyPair::generate(), KeyPair::generate());
    d1.configure(&k1, WG_PORT).unwrap();
    d2.configure(&k2, WG_PORT).unwrap();
    let (w1, w2) = (Ipv4Addr::new(10, 98, 0, 1), Ipv4Addr::new(10, 98, 0, 2));
    let peer = |k: &KeyPair, u: Ipv4Addr, w: Ipv4Addr| WgPeer {
        public_key: k.public_base64(),
        endpoint: Some(SocketAddr::from((u, WG_PORT))),
        allowed_ips: vec![format!("{w}/32").parse().unwrap()],
        keepalive: Some(25),
    };
    d1.set_peer(&peer(&k2, u2, w2)).unwrap();
    d2.set_peer(&peer(&k1, u1, w1)).unwrap();
    for (n, d, w) in [(&n1, &d1, w1), (&n2, &d2, w2)] {
        n.add_address(d.name(), IpAddr::V4(w), 24).await.unwrap();
        n.set_mtu(d.name(), 1500 - shoal_net::WIREGUARD_OVERHEAD)
            .await
            .unwrap();
        n.set_up(d.name()).await.unwrap();
    }

    // Count what the underlay carries into h2: WireGuard UDP, and any bare VXLAN.
    let table = format!("shoaleo{pid}");
    let _tg = shoal_net::nft::TableGuard {
        netns: Some(h2.path().into()),
        table: table.clone(),
    };
    let rules = format!(
        "table ip {table} {{ chain c {{ type filter hook input priority 0; policy accept; iifname \"eun1\" udp dport {WG_PORT} counter; iifname \"eun1\" udp dport 4789 counter; }}; }}"
    );
    let ok = shoal_net::netns::run_in(h2.path(), || {
        use std::io::Write;
        let mut c = std::process::Command::new("nft")
            .args(["-f", "-"])
            .stdin(std::process::Stdio::piped())
            .spawn()?;
        c.stdin.take().expect("stdin").write_all(rules.as_bytes())?;
        c.wait()
    })
    .unwrap()
    .unwrap();
    assert!(ok.success(), "nft counter table");

    // The overlay's VTEPs are the WireGuard addresses.
    let mtu = shoal_net::overlay_mtu(1500, true).unwrap();
    let spec = |vtep: Ipv4Addr, prefix: String| OverlaySpec {
        network_id: "enc".into(),
        vni: 4444,
        subnet: "10.93.0.0/24".parse().unwrap(),
        gateway: Ipv4Addr::new(10, 93, 0, 1),
        local_vtep: vtep,
        mtu,
        netns_prefix: prefix,
    };
    let o1 = Overlay::ensure(&n1, spec(w1, common::unique("ea-")))
        .await
        .unwrap();
    let _g1 = NsName(o1.spec.netns_name());
    let o2 = Overlay::ensure(&n2, spec(w2, common::unique("eb-")))
        .await
        .unwrap();
    let _g2 = NsName(o2.spec.netns_name());
    let (ip1, ip2) = (Ipv4Addr::new(10, 93, 0, 2), Ipv4Addr::new(10, 93, 0, 3));
    let a1 = o1
        .attach_endpoint(c1.path(), "eth0", ip1, None, true)
        .await
        .unwrap();
    let a2 = o2
        .attach_endpoint(c2.path(), "eth0", ip2, None, true)
        .await
        .unwrap();
    assert_eq!(a1.mtu, 1370);
    o1.add_remote_endpoint(ip2, a2.mac, w2).await.unwrap();
    o2.add_remote_endpoint(ip1, a1.mac, w1).await.unwrap();

    let server = common::EchoServer::start(c2.path(), SocketAddr::from((ip2, 7400)), "c2");
    let addr = server.addr;
    let deadline = Instant::now() + Duration::from_secs(15);
    let answer = loop {
        let c1p = c1.path().to_path_buf();
        let big = format!("enc-{}", "y".repeat(400));
        match tokio::task::spawn_blocking(move || common::tcp_request(&c1p, addr, &big))
            .await
            .unwrap()
        {
            Ok(a) => break a,
            Err(e) => {
                assert!(
                    Instant::now() < deadline,
                    "no answer over the encrypted overlay: {e}"
                );
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    };
    assert!(answer.starts_with("c2:enc-yyy"), "{answer}");
    let c = counters(h2.path(), &table);
    assert_eq!(c.len(), 2, "{c:?}");
    assert!(c[0] > 0, "no WireGuard UDP on the underlay: {c:?}");
    assert_eq!(c[1], 0, "bare VXLAN leaked onto the underlay: {c:?}");
    drop(server);

    o1.teardown().await.unwrap();
    o2.teardown().await.unwrap();
    drop(d1);
    drop(d2);
}
