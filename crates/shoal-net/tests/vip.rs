//! VIP load balancing and the ingress mesh with nftables numgen maps: three backends behind a
//! bridge; connections spread; a backend removed from the map gets no new connections while
//! established ones keep working; an empty map refuses. Needs root and `nft`.

mod common;

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream};
use std::path::Path;
use std::time::Duration;

use shoal_net::bridge_net::{self, AttachSpec};
use shoal_net::netlink::Netlink;
use shoal_net::netns::NetnsGuard;
use shoal_net::nft::{self, DesiredState, IngressPort, Proto, TableGuard, VipService};

fn hits(ns: &Path, addr: SocketAddr, n: usize) -> HashMap<String, usize> {
    let mut out = HashMap::new();
    for i in 0..n {
        let a = common::tcp_request(ns, addr, &format!("r{i}"))
            .unwrap_or_else(|e| panic!("request {i}: {e}"));
        let id = a.split(':').next().unwrap_or_default().to_string();
        *out.entry(id).or_insert(0) += 1;
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vip_spreads_drains_and_rejects() {
    common::require_root();
    common::require_nft();
    let host = NetnsGuard::create(&common::unique("vip-host")).unwrap();
    let client = NetnsGuard::create(&common::unique("vip-cli")).unwrap();
    let backends: Vec<NetnsGuard> = (1..=3)
        .map(|i| NetnsGuard::create(&common::unique(&format!("vip-b{i}"))).unwrap())
        .collect();
    let nl = Netlink::in_netns(host.path()).unwrap();
    nl.set_up("lo").await.unwrap();
    let gw = Ipv4Addr::new(10, 77, 0, 1);
    let br = bridge_net::ensure_bridge(&nl, "shlb0", "10.77.0.0/24".parse().unwrap(), gw, 1500)
        .await
        .unwrap();
    let mut ips = Vec::new();
    let mut servers = Vec::new();
    for (i, ns) in backends.iter().enumerate() {
        let ip = Ipv4Addr::new(10, 77, 0, 11 + i as u8);
        bridge_net::attach(
            &nl,
            &br.name,
            &AttachSpec {
                netns: ns.path().into(),
                ifname: "eth0".into(),
                ip,
                prefix: 24,
                gateway: Some(gw),
                mac: None,
                mtu: 1500,
            },
        )
        .await
        .unwrap();
        servers.push(common::EchoServer::start(
            ns.path(),
            SocketAddr::from((ip, 80)),
            &format!("b{}", i + 1),
        ));
        ips.push(ip);
    }
    // A client "node" joined to the host by a link-local veth, for the ingress mesh.
    nl.create_veth("shup0", "shup1", None).await.unwrap();
    nl.move_to_netns("shup1", client.path()).await.unwrap();
    nl.add_address("shup0", IpAddr::V4(Ipv4Addr::new(169, 254, 90, 1)), 30)
        .await
        .unwrap();
    nl.set_up("shup0").await.unwrap();
    let cnl = Netlink::in_netns(client.path()).unwrap();
    cnl.add_address("shup1", IpAddr::V4(Ipv4Addr::new(169, 254, 90, 2)), 30)
        .await
        .unwrap();
    cnl.set_up("shup1").await.unwrap();
    bridge_net::set_sysctl(Some(host.path()), "net/ipv4/ip_forward", "1").unwrap();

    let table = nft::table_name("shoal", &format!("t{}", std::process::id())).unwrap();
    let _guard = TableGuard {
        netns: Some(host.path().into()),
        table: table.clone(),
    };
    let vip = Ipv4Addr::new(10, 77, 0, 100);
    let state = |bs: Vec<Ipv4Addr>| DesiredState {
        vips: vec![VipService {
            vip,
            proto: Proto::Tcp,
            port: 80,
            target_port: 80,
            backends: bs.clone(),
        }],
        ingress: vec![IngressPort {
            proto: Proto::Tcp,
            published_port: 8080,
            target_port: 80,
            backends: bs,
        }],
        ..Default::default()
    };
    let hp = host.path().to_path_buf();
    nft::apply(
        Some(&hp),
        &nft::build_ruleset(&table, &state(ips.clone())).unwrap(),
    )
    .unwrap();
    let listing = nft::list_table(Some(&hp), &table)
        .unwrap()
        .expect("table exists");
    assert!(listing.contains("numgen random mod 3"), "{listing}");

    let vip_addr = SocketAddr::from((vip, 80));
    let h = hits(&hp, vip_addr, 30);
    assert_eq!(h.values().sum::<usize>(), 30);
    assert!(h.len() >= 2, "30 connections reached only {h:?}");

    // Ingress mesh: the client reaches the published port on the host's address; the answer
    // comes back through the host (masquerade).
    let ing = SocketAddr::from((Ipv4Addr::new(169, 254, 90, 1), 8080));
    let h = hits(client.path(), ing, 20);
    assert!(h.len() >= 2, "ingress reached only {h:?}");

    // Connections established before the change keep their backend (conntrack).
    let open: Vec<TcpStream> = (0..12)
        .map(|_| {
            shoal_net::netns::run_in(&hp, || {
                TcpStream::connect_timeout(&vip_addr, Duration::from_secs(3))
            })
            .unwrap()
            .unwrap()
        })
        .collect();
    // Drain b1: it leaves the map, new connections avoid it.
    nft::apply(
        Some(&hp),
        &nft::build_ruleset(&table, &state(ips[1..].to_vec())).unwrap(),
    )
    .unwrap();
    let h = hits(&hp, vip_addr, 30);
    assert!(
        !h.contains_key("b1"),
        "drained backend still got new connections: {h:?}"
    );
    for (i, mut s) in open.into_iter().enumerate() {
        s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
        s.write_all(format!("old{i}").as_bytes()).unwrap();
        let mut a = String::new();
        s.read_to_string(&mut a).unwrap();
        assert!(
            a.ends_with(&format!(":old{i}")),
            "established flow broken: {a:?}"
        );
    }

    // No backends: refused at once (TCP reset), not a timeout.
    nft::apply(
        Some(&hp),
        &nft::build_ruleset(&table, &state(vec![])).unwrap(),
    )
    .unwrap();
    let err = shoal_net::netns::run_in(&hp, || {
        TcpStream::connect_timeout(&vip_addr, Duration::from_secs(3))
    })
    .unwrap();
    assert_eq!(
        err.err().map(|e| e.kind()),
        Some(std::io::ErrorKind::ConnectionRefused)
    );

    nft::delete_table(Some(&hp), &table).unwrap();
    assert!(nft::list_table(Some(&hp), &table).unwrap().is_none());
    nft::delete_table(Some(&hp), &table).unwrap();
    drop(servers);
}
