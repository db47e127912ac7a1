//! Three gossip members on 127.0.0.1 converge on each other's endpoints, see a withdrawn
//! endpoint disappear, and drop a stopped node's endpoints. No root needed.

use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use shoal_net::Mac;
use shoal_net::gossip::{Endpoint, EndpointEvent, Gossip, GossipConfig};

fn free_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn ep(last: u8, node: u8) -> Endpoint {
    let ip = Ipv4Addr::new(10, 0, 7, last);
    Endpoint {
        network: "net1".into(),
        ip,
        mac: Mac::from_ip(ip),
        vtep: Ipv4Addr::new(127, 0, 0, node),
    }
}

async fn wait_for<F: Fn(&[shoal_net::gossip::RemoteEndpoint]) -> bool>(
    g: &Gossip,
    what: &str,
    f: F,
) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let now = g.remote_endpoints().await;
        if f(&now) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{}: timed out waiting for {what}; have {now:?}",
            g.node_id()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endpoints_converge_and_go() {
    let ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
    let addr = |i: usize| SocketAddr::from(([127, 0, 0, 1], ports[i]));
    let mut nodes = Vec::new();
    for i in 0..3 {
        let seeds = (0..3)
            .filter(|j| *j != i)
            .map(|j| addr(j).to_string())
            .collect();
        let mut cfg = GossipConfig::new(
            &format!("node{i}"),
            addr(i),
            addr(i),
            seeds,
            &format!("test-{}", std::process::id()),
        );
        cfg.gossip_interval = Duration::from_millis(50);
        cfg.watch_interval = Duration::from_millis(50);
        nodes.push(Gossip::start(cfg).await.unwrap());
    }
    let mut watch0 = nodes[0].watch();
    nodes[0].publish(&ep(10, 1)).await.unwrap();
    nodes[1].publish(&ep(11, 2)).await.unwrap();
    nodes[1].publish(&ep(12, 2)).await.unwrap();
    nodes[2].publish(&ep(13, 3)).await.unwrap();

    for (i, g) in nodes.iter().enumerate() {
        let expect: Vec<u8> = [10u8, 11, 12, 13]
            .into_iter()
            .filter(|l| match i {
                0 => *l != 10,
                1 => *l != 11 && *l != 12,
                _ => *l != 13,
            })
            .collect();
        wait_for(g, "convergence", |now| {
            let mut got: Vec<u8> = now.iter().map(|r| r.endpoint.ip.octets()[3]).collect();
            got.sort();
            got == expect
        })
        .await;
    }
    let r = nodes[2].remote_endpoints().await;
    let e11 = r
        .iter()
        .find(|r| r.endpoint.ip == Ipv4Addr::new(10, 0, 7, 11))
        .unwrap();
    assert_eq!(e11.node_id, "node1");
    assert_eq!(e11.endpoint, ep(11, 2));

    // The watcher reports every endpoint it samples; it polls, so wait for the adds before
    // withdrawing (an endpoint that comes and goes between two polls is never reported).
    let mut added = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !(added.contains(&11) && added.contains(&13)) && Instant::now() < deadline {
        match tokio::time::timeout(Duration::from_secs(1), watch0.next()).await {
            Ok(Some(EndpointEvent::Added(r))) => added.push(r.endpoint.ip.octets()[3]),
            Ok(Some(EndpointEvent::Removed(r))) => {
                panic!(
                    "unexpected removal of {:?} before any withdrawal",
                    r.endpoint
                )
            }
            _ => {}
        }
    }
    assert!(added.contains(&11) && added.contains(&13), "adds {added:?}");

    // Withdraw: gone everywhere.
    nodes[1]
        .withdraw("net1", Ipv4Addr::new(10, 0, 7, 11))
        .await
        .unwrap();
    for g in [&nodes[0], &nodes[2]] {
        wait_for(g, "withdrawal", |now| {
            !now.iter()
                .any(|r| r.endpoint.ip == Ipv4Addr::new(10, 0, 7, 11))
        })
        .await;
    }

    // The watcher saw exactly that removal.
    let mut removed = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(5);
    while removed.is_empty() && Instant::now() < deadline {
        match tokio::time::timeout(Duration::from_secs(1), watch0.next()).await {
            Ok(Some(EndpointEvent::Added(r))) => added.push(r.endpoint.ip.octets()[3]),
            Ok(Some(EndpointEvent::Removed(r))) => removed.push(r.endpoint.ip.octets()[3]),
            _ => {}
        }
    }
    assert_eq!(removed, vec![11]);

    // node2 stops: its endpoint leaves the others' view once it is detected dead.
    let n2 = nodes.pop().unwrap();
    n2.shutdown().await.unwrap();
    wait_for(&nodes[0], "dead node's endpoints removed", |now| {
        !now.iter().any(|r| r.node_id == "node2")
    })
    .await;
    assert!(
        !nodes[0]
            .live_nodes()
            .await
            .iter()
            .any(|(id, _)| id == "node2")
    );

    // node2 restarts (same id and address, new generation) and republishes: it comes back.
    let mut cfg = GossipConfig::new(
        "node2",
        addr(2),
        addr(2),
        vec![addr(0).to_string()],
        &format!("test-{}", std::process::id()),
    );
    cfg.gossip_interval = Duration::from_millis(50);
    cfg.watch_interval = Duration::from_millis(50);
    let n2 = Gossip::start(cfg).await.unwrap();
    n2.publish(&ep(14, 3)).await.unwrap();
    for g in &nodes {
        wait_for(g, "restarted node's endpoint", |now| {
            now.iter()
                .any(|r| r.node_id == "node2" && r.endpoint.ip == Ipv4Addr::new(10, 0, 7, 14))
        })
        .await;
    }
    wait_for(&n2, "restarted node sees the others", |now| {
        now.iter()
            .any(|r| r.endpoint.ip == Ipv4Addr::new(10, 0, 7, 10))
    })
    .await;
    // The old incarnation's endpoint does not come back with it.
    assert!(
        !nodes[0]
            .remote_endpoints()
            .await
            .iter()
            .any(|r| r.endpoint.ip == Ipv4Addr::new(10, 0, 7, 13))
    );
    n2.shutdown().await.unwrap();
    for g in nodes {
        g.shutdown().await.unwrap();
    }
}
