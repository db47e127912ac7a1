//! Overlay across two "hosts" (namespaces joined by a link-local veth): each host has the
//! overlay namespace (bridge + VXLAN) and one container; with FDB/neighbour entries programmed,
//! container A reaches container B over VXLAN; removing the entries cuts it. Needs root.

mod common;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use shoal_net::netlink::Netlink;
use shoal_net::netns::NetnsGuard;
use shoal_net::overlay::{Overlay, OverlaySpec};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn containers_talk_across_vxlan() {
    common::require_root();
    let h1 = NetnsGuard::create(&common::unique("ov-h1")).unwrap();
    let h2 = NetnsGuard::create(&common::unique("ov-h2")).unwrap();
    let c1 = NetnsGuard::create(&common::unique("ov-c1")).unwrap();
    let c2 = NetnsGuard::create(&common::unique("ov-c2")).unwrap();
    let n1 = Netlink::in_netns(h1.path()).unwrap();
    let n2 = Netlink::in_netns(h2.path()).unwrap();
    let (u1, u2) = (
        Ipv4Addr::new(169, 254, 91, 1),
        Ipv4Addr::new(169, 254, 91, 2),
    );
    n1.create_veth("under0", "under1", None).await.unwrap();
    n1.move_to_netns("under1", h2.path()).await.unwrap();
    n1.add_address("under0", IpAddr::V4(u1), 30).await.unwrap();
    n2.add_address("under1", IpAddr::V4(u2), 30).await.unwrap();
    for (n, l) in [(&n1, "under0"), (&n2, "under1")] {
        n.set_up(l).await.unwrap();
        n.set_up("lo").await.unwrap();
    }
    assert!(
        shoal_net::overlay::has_local_address(&n1, u1)
            .await
            .unwrap()
    );

    let mtu = shoal_net::overlay_mtu(1500, false).unwrap();
    let spec = |vtep: Ipv4Addr, prefix: String| OverlaySpec {
        network_id: "net1".into(),
        vni: 4242,
        subnet: "10.90.0.0/24".parse().unwrap(),
        gateway: Ipv4Addr::new(10, 90, 0, 1),
        local_vtep: vtep,
        mtu,
        netns_prefix: prefix,
    };
    // Both "hosts" share /run/netns here, so their prefixes differ, as two lab daemons' would.
    let o1 = Overlay::ensure(&n1, spec(u1, common::unique("a-")))
        .await
        .unwrap();
    let o2 = Overlay::ensure(&n2, spec(u2, common::unique("b-")))
        .await
        .unwrap();
    // Guards so a failing assertion still removes the overlay namespaces.
    let _g1 = scopeguard(o1.spec.netns_name());
    let _g2 = scopeguard(o2.spec.netns_name());
    // Idempotent ensure reuses the same namespace and devices.
    let o1b = Overlay::ensure(&n1, spec(u1, common::unique("a-")))
        .await
        .unwrap();
    assert_eq!(o1b.netns_path(), o1.netns_path());
    drop(o1b);
    let vx = o1
        .netlink()
        .link("vxlan0")
        .await
        .unwrap()
        .expect("vxlan0 in overlay netns");
    assert_eq!(vx.kind, "vxlan");
    assert_eq!(vx.mtu, mtu);

    let (ip1, ip2) = (Ipv4Addr::new(10, 90, 0, 2), Ipv4Addr::new(10, 90, 0, 3));
    let a1 = o1
        .attach_endpoint(c1.path(), "eth0", ip1, None, true)
        .await
        .unwrap();
    let a2 = o2
        .attach_endpoint(c2.path(), "eth0", ip2, None, true)
        .await
        .unwrap();
    assert_eq!(a1.mtu, 1450);
    o1.add_remote_endpoint(ip2, a2.mac, u2).await.unwrap();
    o2.add_remote_endpoint(ip1, a1.mac, u1).await.unwrap();
    // Programming twice is fine (replace).
    o1.add_remote_endpoint(ip2, a2.mac, u2).await.unwrap();

    let server = common::EchoServer::start(c2.path(), SocketAddr::from((ip2, 7100)), "c2");
    let c1p = c1.path().to_path_buf();
    let addr = server.addr;
    let answer = tokio::task::spawn_blocking(move || common::tcp_request(&c1p, addr, "over-vxlan"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(answer, "c2:over-vxlan");

    // A large payload crosses without fragmenting problems (MTU leaves room for VXLAN).
    let c1p = c1.path().to_path_buf();
    let big = "x".repeat(400);
    let answer = tokio::task::spawn_blocking(move || common::tcp_request(&c1p, addr, &big))
        .await
        .unwrap()
        .unwrap();
    assert!(answer.starts_with("c2:xxx"));

    // What is programmed can be read back, and reconciled to a desired set.
    assert_eq!(
        o1.programmed_remotes().await.unwrap(),
        vec![(ip2, a2.mac, u2)]
    );
    let ghost = (
        Ipv4Addr::new(10, 90, 0, 77),
        shoal_net::Mac::from_ip(Ipv4Addr::new(10, 90, 0, 77)),
        u2,
    );
    o1.reconcile(&[(ip2, a2.mac, u2), ghost]).await.unwrap();
    assert_eq!(o1.programmed_remotes().await.unwrap().len(), 2);
    o1.reconcile(&[(ip2, a2.mac, u2)]).await.unwrap();
    assert_eq!(
        o1.programmed_remotes().await.unwrap(),
        vec![(ip2, a2.mac, u2)]
    );

    // The endpoint goes away: entries removed, the peer is no longer reachable.
    o1.remove_remote_endpoint(ip2, a2.mac, u2).await.unwrap();
    o1.remove_remote_endpoint(ip2, a2.mac, u2).await.unwrap();
    let c1p = c1.path().to_path_buf();
    let r = tokio::task::spawn_blocking(move || common::tcp_request(&c1p, addr, "gone"))
        .await
        .unwrap();
    assert!(r.is_err(), "still reachable after removal: {r:?}");
    drop(server);

    o1.detach_endpoint(&a1).await.unwrap();
    o1.teardown().await.unwrap();
    o2.teardown().await.unwrap();
    // The temporary VXLAN name never stays behind in the host namespace.
    assert!(n1.link("shvx4242").await.unwrap().is_none());
}

struct NsName(String);
impl Drop for NsName {
    fn drop(&mut self) {
        let _ = shoal_net::netns::delete(&self.0);
    }
}
fn scopeguard(name: String) -> NsName {
    NsName(name)
}

/// The same two hosts, but the FDB/neighbour entries come from gossip (chitchat on 127.0.0.1):
/// each host publishes its endpoint, applies the other's; withdrawing cuts the path again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gossip_programs_the_overlay() {
    use shoal_net::gossip::{Endpoint, Gossip, GossipConfig};
    use std::time::{Duration, Instant};
    common::require_root();
    let h1 = NetnsGuard::create(&common::unique("og-h1")).unwrap();
    let h2 = NetnsGuard::create(&common::unique("og-h2")).unwrap();
    let c1 = NetnsGuard::create(&common::unique("og-c1")).unwrap();
    let c2 = NetnsGuard::create(&common::unique("og-c2")).unwrap();
    let n1 = Netlink::in_netns(h1.path()).unwrap();
    let n2 = Netlink::in_netns(h2.path()).unwrap();
    let (u1, u2) = (
        Ipv4Addr::new(169, 254, 94, 1),
        Ipv4Addr::new(169, 254, 94, 2),
    );
    n1.create_veth("gun0", "gun1", None).await.unwrap();
    n1.move_to_netns("gun1", h2.path()).await.unwrap();
    n1.add_address("gun0", IpAddr::V4(u1), 30).await.unwrap();
    n2.add_address("gun1", IpAddr::V4(u2), 30).await.unwrap();
    for (n, l) in [(&n1, "gun0"), (&n2, "gun1")] {
        n.set_up(l).await.unwrap();
        n.set_up("lo").await.unwrap();
    }
    let spec = |vtep: Ipv4Addr, prefix: String| OverlaySpec {
        network_id: "gnet".into(),
        vni: 4343,
        subnet: "10.92.0.0/24".parse().unwrap(),
        gateway: Ipv4Addr::new(10, 92, 0, 1),
        local_vtep: vtep,
        mtu: 1450,
        netns_prefix: prefix,
    };
    let o1 = Overlay::ensure(&n1, spec(u1, common::unique("ga-")))
        .await
        .unwrap();
    let o2 = Overlay::ensure(&n2, spec(u2, common::unique("gb-")))
        .await
        .unwrap();
    let _g1 = scopeguard(o1.spec.netns_name());
    let _g2 = scopeguard(o2.spec.netns_name());
    let (ip1, ip2) = (Ipv4Addr::new(10, 92, 0, 2), Ipv4Addr::new(10, 92, 0, 3));
    let a1 = o1
        .attach_endpoint(c1.path(), "eth0", ip1, None, true)
        .await
        .unwrap();
    let a2 = o2
        .attach_endpoint(c2.path(), "eth0", ip2, None, true)
        .await
        .unwrap();

    let port = |_: u8| {
        std::net::UdpSocket::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
    };
    let (g1a, g2a) = (port(1), port(2));
    let cluster = format!("og-{}", std::process::id());
    let mk = |id: &str, me: std::net::SocketAddr, seed: std::net::SocketAddr| {
        let mut c = GossipConfig::new(id, me, me, vec![seed.to_string()], &cluster);
        c.gossip_interval = Duration::from_millis(50);
        c.watch_interval = Duration::from_millis(50);
        c
    };
    let g1 = Gossip::start(mk("h1", g1a, g2a)).await.unwrap();
    let g2 = Gossip::start(mk("h2", g2a, g1a)).await.unwrap();
    g1.publish(&Endpoint {
        network: "gnet".into(),
        ip: ip1,
        mac: a1.mac,
        vtep: u1,
    })
    .await
    .unwrap();
    g2.publish(&Endpoint {
        network: "gnet".into(),
        ip: ip2,
        mac: a2.mac,
        vtep: u2,
    })
    .await
    .unwrap();
    // The agent loop, in miniature: each host applies the events of its own watcher.
    let (mut w1, mut w2) = (g1.watch(), g2.watch());
    let o1 = std::sync::Arc::new(o1);
    let o2 = std::sync::Arc::new(o2);
    let (p1, p2) = (o1.clone(), o2.clone());
    let t1 = tokio::spawn(async move {
        while let Some(ev) = w1.next().await {
            p1.apply_gossip_event(&ev).await.unwrap();
        }
    });
    let t2 = tokio::spawn(async move {
        while let Some(ev) = w2.next().await {
            p2.apply_gossip_event(&ev).await.unwrap();
        }
    });

    let server = common::EchoServer::start(c2.path(), SocketAddr::from((ip2, 7300)), "c2");
    let addr = server.addr;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let c1p = c1.path().to_path_buf();
        let r = tokio::task::spawn_blocking(move || common::tcp_request(&c1p, addr, "gossiped"))
            .await
            .unwrap();
        match r {
            Ok(a) => {
                assert_eq!(a, "c2:gossiped");
                break;
            }
            Err(e) => {
                assert!(Instant::now() < deadline, "overlay never converged: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }

    // Withdraw c2's endpoint: h1 removes the entries, and c2 is unreachable from c1.
    g2.withdraw("gnet", ip2).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let c1p = c1.path().to_path_buf();
        let r = tokio::task::spawn_blocking(move || {
            shoal_net::netns::run_in(&c1p, || {
                std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(500))
            })
            .unwrap()
        })
        .await
        .unwrap();
        if r.is_err() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "withdrawn endpoint still reachable"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    drop(server);
    t1.abort();
    t2.abort();
    let _ = t1.await;
    let _ = t2.await;
    g1.shutdown().await.unwrap();
    g2.shutdown().await.unwrap();
    let o1 = std::sync::Arc::try_unwrap(o1).unwrap();
    let o2 = std::sync::Arc::try_unwrap(o2).unwrap();
    o1.teardown().await.unwrap();
    o2.teardown().await.unwrap();
}
