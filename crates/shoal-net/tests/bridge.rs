//! Standalone bridge networking: two containers on one bridge talk over TCP.
//! Needs root; everything lives in namespaces this test creates and drops.

mod common;

use std::net::{Ipv4Addr, SocketAddr};

use shoal_net::bridge_net::{self, AttachSpec};
use shoal_net::netlink::Netlink;
use shoal_net::netns::NetnsGuard;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_containers_on_a_bridge_talk() {
    common::require_root();
    let host = NetnsGuard::create(&common::unique("br-host")).unwrap();
    let c1 = NetnsGuard::create(&common::unique("br-c1")).unwrap();
    let c2 = NetnsGuard::create(&common::unique("br-c2")).unwrap();
    let nl = Netlink::in_netns(host.path()).unwrap();
    nl.set_up("lo").await.unwrap();

    let gw = Ipv4Addr::new(172, 30, 0, 1);
    let br = bridge_net::ensure_bridge(&nl, "shbr0", "172.30.0.0/24".parse().unwrap(), gw, 1500)
        .await
        .unwrap();
    // Idempotent: a second ensure reuses the same bridge.
    let again = bridge_net::ensure_bridge(&nl, "shbr0", "172.30.0.0/24".parse().unwrap(), gw, 1500)
        .await
        .unwrap();
    assert_eq!(br, again);

    let spec = |ns: &NetnsGuard, last: u8| AttachSpec {
        netns: ns.path().to_path_buf(),
        ifname: "eth0".into(),
        ip: Ipv4Addr::new(172, 30, 0, last),
        prefix: 24,
        gateway: Some(gw),
        mac: None,
        mtu: br.mtu,
    };
    let a1 = bridge_net::attach(&nl, &br.name, &spec(&c1, 2))
        .await
        .unwrap();
    let a2 = bridge_net::attach(&nl, &br.name, &spec(&c2, 3))
        .await
        .unwrap();

    // Inside the container: eth0 with the derived MAC, up, with the bridge's MTU.
    let cnl = Netlink::in_netns(c2.path()).unwrap();
    let eth0 = cnl.link("eth0").await.unwrap().expect("eth0 in container");
    assert!(eth0.up);
    assert_eq!(eth0.mac, Some(shoal_net::Mac::from_ip(a2.ip)));
    assert_eq!(eth0.mtu, 1500);
    let host_end = nl.link(&a2.host_ifname).await.unwrap().expect("host veth");
    assert_eq!(
        host_end.controller,
        Some(nl.index("shbr0").await.unwrap().unwrap())
    );

    let server = common::EchoServer::start(c2.path(), SocketAddr::from((a2.ip, 7000)), "c2");
    let c1p = c1.path().to_path_buf();
    let addr = server.addr;
    let answer = tokio::task::spawn_blocking(move || common::tcp_request(&c1p, addr, "hello"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(answer, "c2:hello");
    // The host side reaches the container through the gateway address too.
    let hp = host.path().to_path_buf();
    let answer = tokio::task::spawn_blocking(move || common::tcp_request(&hp, addr, "from-host"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(answer, "c2:from-host");
    drop(server);

    // NAT for the bridge subnet plus a published port: the ruleset applies in the host
    // namespace, and the published port on the host's own address reaches the container.
    common::require_nft();
    let table = shoal_net::nft::table_name("shoal", &format!("b{}", std::process::id())).unwrap();
    let _tg = shoal_net::nft::TableGuard {
        netns: Some(host.path().into()),
        table: table.clone(),
    };
    let st = shoal_net::nft::DesiredState {
        masquerade: vec![shoal_net::nft::Masquerade {
            subnet: br.subnet,
            bridge: Some(br.name.clone()),
        }],
        host_ports: vec![shoal_net::nft::HostPort {
            proto: shoal_net::nft::Proto::Tcp,
            host_port: 18080,
            host_ip: None,
            target: a2.ip,
            target_port: 7000,
        }],
        masquerade_loopback: true,
        ..Default::default()
    };
    shoal_net::nft::apply(
        Some(host.path()),
        &shoal_net::nft::build_ruleset(&table, &st).unwrap(),
    )
    .unwrap();
    let listing = shoal_net::nft::list_table(Some(host.path()), &table)
        .unwrap()
        .unwrap();
    assert!(listing.contains("masquerade"), "{listing}");
    let server = common::EchoServer::start(c2.path(), SocketAddr::from((a2.ip, 7000)), "c2");
    let hp = host.path().to_path_buf();
    let published = SocketAddr::from((gw, 18080));
    let answer =
        tokio::task::spawn_blocking(move || common::tcp_request(&hp, published, "published"))
            .await
            .unwrap()
            .unwrap();
    assert_eq!(answer, "c2:published");
    // From loopback too (`curl localhost:<port>`): needs route_localnet on the bridge.
    bridge_net::set_sysctl(Some(host.path()), "net/ipv4/conf/shbr0/route_localnet", "1").unwrap();
    let hp = host.path().to_path_buf();
    let local = SocketAddr::from((Ipv4Addr::LOCALHOST, 18080));
    let answer = tokio::task::spawn_blocking(move || common::tcp_request(&hp, local, "loopback"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(answer, "c2:loopback");
    drop(server);
    shoal_net::nft::delete_table(Some(host.path()), &table).unwrap();

    // A second attach of the same interface name into the same container is refused cleanly.
    let dup = bridge_net::attach(
        &nl,
        &br.name,
        &AttachSpec {
            ip: Ipv4Addr::new(172, 30, 0, 9),
            ..spec(&c1, 2)
        },
    )
    .await;
    assert!(dup.is_err());
    assert!(
        Netlink::in_netns(c1.path())
            .unwrap()
            .link("eth0")
            .await
            .unwrap()
            .is_some()
    );

    bridge_net::detach(&nl, &a1).await.unwrap();
    bridge_net::detach(&nl, &a2).await.unwrap();
    assert!(nl.link(&a1.host_ifname).await.unwrap().is_none());
    assert!(cnl.link("eth0").await.unwrap().is_none());
    bridge_net::remove_bridge(&nl, "shbr0").await.unwrap();
    assert!(nl.link("shbr0").await.unwrap().is_none());
}
