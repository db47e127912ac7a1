//! Embedded DNS on loopback: table lookups, tasks.<name>, round robin, NXDOMAIN for unknown
//! swarm names, live table swaps, TCP, and forwarding to a fake upstream on 127.0.0.1.
//! No root needed; nothing leaves loopback.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::{RData, Record, rdata::A};
use shoal_net::dns::{self, DnsConfig, DnsServer, DnsTable, SharedTable};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UdpSocket;

async fn ask(server: SocketAddr, id: u16, name: &str) -> (ResponseCode, Vec<Ipv4Addr>) {
    let s = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    s.send_to(&dns::a_query(id, name).unwrap(), server)
        .await
        .unwrap();
    let mut buf = vec![0u8; 4096];
    let (n, _) = tokio::time::timeout(Duration::from_secs(5), s.recv_from(&mut buf))
        .await
        .expect("answer in time")
        .unwrap();
    let m = Message::from_vec(&buf[..n]).unwrap();
    assert_eq!(m.metadata.id, id);
    dns::parse_a_answer(&buf[..n]).unwrap()
}

/// A fake upstream: answers every A query with 192.0.2.77 (an address only ever put in answers).
async fn fake_upstream() -> (SocketAddr, tokio::task::JoinHandle<()>) {
    let s = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let addr = s.local_addr().unwrap();
    let h = tokio::spawn(async move {
        let mut buf = vec![0u8; 4096];
        while let Ok((n, from)) = s.recv_from(&mut buf).await {
            let Ok(req) = Message::from_vec(&buf[..n]) else {
                continue;
            };
            let mut resp = Message::response(req.metadata.id, req.metadata.op_code);
            for q in &req.queries {
                resp.add_query(q.clone());
                resp.add_answer(Record::from_rdata(
                    q.name().clone(),
                    60,
                    RData::A(A(Ipv4Addr::new(192, 0, 2, 77))),
                ));
            }
            let _ = s.send_to(&resp.to_vec().unwrap(), from).await;
        }
    });
    (addr, h)
}

#[tokio::test]
async fn answers_forwards_and_follows_swaps() {
    let (up, up_task) = fake_upstream().await;
    let task_ips = vec![
        Ipv4Addr::new(10, 0, 9, 5),
        Ipv4Addr::new(10, 0, 9, 6),
        Ipv4Addr::new(10, 0, 9, 7),
    ];
    let mut t = DnsTable::new();
    t.add_service(
        "net1",
        &["web", "app_web"],
        Some(Ipv4Addr::new(10, 0, 9, 2)),
        &task_ips,
    )
    .unwrap();
    t.add_service("net1", &["cache"], None, &task_ips[..2])
        .unwrap();
    t.set_name("net1", "web-host-1", vec![task_ips[0]]).unwrap();
    t.add_service("net2", &["secret"], Some(Ipv4Addr::new(10, 0, 8, 2)), &[])
        .unwrap();
    let shared = SharedTable::new(t.clone());
    let srv = DnsServer::bind(
        "127.0.0.1:0".parse().unwrap(),
        shared.clone(),
        DnsConfig {
            scopes: vec!["net1".into()],
            upstreams: vec![up],
        },
    )
    .await
    .unwrap();
    let a = srv.udp_addr();

    assert_eq!(
        ask(a, 1, "web").await,
        (ResponseCode::NoError, vec![Ipv4Addr::new(10, 0, 9, 2)])
    );
    assert_eq!(
        ask(a, 2, "app_web.").await.1,
        vec![Ipv4Addr::new(10, 0, 9, 2)]
    );
    assert_eq!(ask(a, 3, "web-host-1").await.1, vec![task_ips[0]]);
    let (rc, mut got) = ask(a, 4, "tasks.web").await;
    assert_eq!(rc, ResponseCode::NoError);
    got.sort();
    assert_eq!(got, task_ips);
    // dnsrr: the name itself gives task IPs, rotated between answers.
    let first = ask(a, 5, "cache").await.1;
    let second = ask(a, 6, "cache").await.1;
    assert_eq!(first.len(), 2);
    assert_ne!(first, second, "round robin rotates the order");
    // Names of a network this container is not on, and unknown swarm names: NXDOMAIN.
    assert_eq!(ask(a, 7, "secret").await, (ResponseCode::NXDomain, vec![]));
    assert_eq!(
        ask(a, 8, "tasks.nothing").await,
        (ResponseCode::NXDomain, vec![])
    );
    // Anything else goes upstream.
    assert_eq!(
        ask(a, 9, "example.org").await,
        (ResponseCode::NoError, vec![Ipv4Addr::new(192, 0, 2, 77)])
    );

    // A task leaves: the swap is visible on the very next query.
    t.add_service(
        "net1",
        &["web", "app_web"],
        Some(Ipv4Addr::new(10, 0, 9, 2)),
        &task_ips[1..],
    )
    .unwrap();
    shared.swap(t);
    let mut got = ask(a, 10, "tasks.web").await.1;
    got.sort();
    assert_eq!(got, task_ips[1..].to_vec());

    // TCP on the same port.
    let mut s = tokio::net::TcpStream::connect(srv.tcp_addr())
        .await
        .unwrap();
    let q = dns::a_query(11, "web").unwrap();
    s.write_u16(q.len() as u16).await.unwrap();
    s.write_all(&q).await.unwrap();
    let len = s.read_u16().await.unwrap() as usize;
    let mut buf = vec![0u8; len];
    s.read_exact(&mut buf).await.unwrap();
    assert_eq!(
        dns::parse_a_answer(&buf).unwrap().1,
        vec![Ipv4Addr::new(10, 0, 9, 2)]
    );

    // A big answer does not fit a plain UDP reply: truncated there, complete over TCP.
    let many: Vec<Ipv4Addr> = (1..=80).map(|i| Ipv4Addr::new(10, 0, 10, i)).collect();
    let mut t2 = DnsTable::new();
    t2.add_service("net1", &["big"], None, &many).unwrap();
    t2.add_service(
        "net1",
        &["web"],
        Some(Ipv4Addr::new(10, 0, 9, 2)),
        &task_ips,
    )
    .unwrap();
    shared.swap(t2);
    let u = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    u.send_to(&dns::a_query(20, "tasks.big").unwrap(), a)
        .await
        .unwrap();
    let mut buf = vec![0u8; 4096];
    let (n, _) = tokio::time::timeout(Duration::from_secs(5), u.recv_from(&mut buf))
        .await
        .unwrap()
        .unwrap();
    let m = Message::from_vec(&buf[..n]).unwrap();
    assert!(m.metadata.truncation && m.answers.is_empty() && n <= 512);
    let q = dns::a_query(21, "tasks.big").unwrap();
    s.write_u16(q.len() as u16).await.unwrap();
    s.write_all(&q).await.unwrap();
    let len = s.read_u16().await.unwrap() as usize;
    let mut buf = vec![0u8; len];
    s.read_exact(&mut buf).await.unwrap();
    assert_eq!(dns::parse_a_answer(&buf).unwrap().1.len(), 80);

    // Garbage is ignored, the server keeps answering.
    let g = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    g.send_to(b"\x01\x02garbage", a).await.unwrap();
    assert_eq!(ask(a, 12, "web").await.0, ResponseCode::NoError);

    // No upstream answering: SERVFAIL, not a hang.
    up_task.abort();
    let _ = up_task.await;
    let (rc, _) = ask(a, 13, "example.net").await;
    assert_eq!(rc, ResponseCode::ServFail);
}

/// The daemon binds one server per container namespace: bind inside a namespace this test
/// creates (root), query from inside it on its own loopback.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serves_inside_a_namespace() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "this test needs root (network namespaces)"
    );
    let ns =
        shoal_net::netns::NetnsGuard::create(&format!("sn{}-dns", std::process::id())).unwrap();
    shoal_net::netlink::Netlink::in_netns(ns.path())
        .unwrap()
        .set_up("lo")
        .await
        .unwrap();
    let mut t = DnsTable::new();
    t.set_name("n", "db", vec![Ipv4Addr::new(10, 1, 2, 3)])
        .unwrap();
    let srv = DnsServer::bind_in_netns(
        ns.path(),
        "127.0.0.11:53".parse().unwrap(),
        SharedTable::new(t),
        DnsConfig {
            scopes: vec!["n".into()],
            upstreams: vec![],
        },
    )
    .await
    .unwrap();
    assert_eq!(
        srv.udp_addr(),
        "127.0.0.11:53".parse::<SocketAddr>().unwrap()
    );
    let ans = shoal_net::netns::run_in(ns.path(), || {
        let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        s.send_to(&dns::a_query(7, "db").unwrap(), "127.0.0.11:53")
            .unwrap();
        let mut buf = [0u8; 1500];
        let (n, _) = s.recv_from(&mut buf).unwrap();
        dns::parse_a_answer(&buf[..n]).unwrap()
    })
    .unwrap();
    assert_eq!(
        ans,
        (ResponseCode::NoError, vec![Ipv4Addr::new(10, 1, 2, 3)])
    );
}
