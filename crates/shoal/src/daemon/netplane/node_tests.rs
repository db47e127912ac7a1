//! Two data planes on two "nodes" (network namespaces on a private switch, made and removed
//! here) with hand-built tasks: cross-node reachability, DNS, VIP spreading, the routing mesh,
//! drain on stop, and nothing left behind. Needs root and `nft`.

use super::plan::tests_support::{network, task};
use super::{NetPlane, SwarmInfo};
use shoal_net::dns::{a_query, parse_a_answer};
use shoal_net::netns::{self, NetnsGuard};
use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

fn sh(args: &[&str]) {
    let out = std::process::Command::new(args[0])
        .args(&args[1..])
        .output()
        .expect("run command");
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn in_ns(ns: &str, args: &[&str]) {
    let mut a = vec!["ip", "netns", "exec", ns];
    a.extend_from_slice(args);
    sh(&a);
}

/// Switch + two hosts with 10.79.0.1/.2 (only inside these namespaces).
struct Topology {
    /// Held so the switch lives as long as the hosts.
    _sw: NetnsGuard,
    hosts: Vec<NetnsGuard>,
}

fn topology(tag: &str) -> Topology {
    let sw = NetnsGuard::create(&format!("{tag}-sw")).expect("switch netns");
    in_ns(sw.name(), &["ip", "link", "add", "br0", "type", "bridge"]);
    in_ns(sw.name(), &["ip", "link", "set", "br0", "up"]);
    let mut hosts = Vec::new();
    for i in 1..=2 {
        let h = NetnsGuard::create(&format!("{tag}-h{i}")).expect("host netns");
        let (a, b) = (format!("{tag}a{i}"), format!("{tag}b{i}"));
        sh(&["ip", "link", "add", &a, "type", "veth", "peer", "name", &b]);
        sh(&["ip", "link", "set", &a, "netns", h.name()]);
        sh(&["ip", "link", "set", &b, "netns", sw.name()]);
        in_ns(sw.name(), &["ip", "link", "set", &b, "master", "br0", "up"]);
        in_ns(h.name(), &["ip", "link", "set", &a, "name", "eth0"]);
        in_ns(
            h.name(),
            &[
                "ip",
                "addr",
                "add",
                &format!("10.79.0.{i}/24"),
                "dev",
                "eth0",
            ],
        );
        in_ns(h.name(), &["ip", "link", "set", "eth0", "up"]);
        in_ns(h.name(), &["ip", "link", "set", "lo", "up"]);
        hosts.push(h);
    }
    Topology { _sw: sw, hosts }
}

/// A TCP server in a namespace answering every connection with `id`.
struct Server {
    stop: Arc<AtomicBool>,
}

impl Server {
    fn start(netns: &Path, port: u16, id: &str) -> Server {
        let l = netns::run_in(netns, || TcpListener::bind(("0.0.0.0", port)))
            .expect("enter netns")
            .expect("bind");
        l.set_nonblocking(true).expect("nonblocking");
        let stop = Arc::new(AtomicBool::new(false));
        let (s2, id) = (stop.clone(), id.to_string());
        let deadline = Instant::now() + Duration::from_secs(120);
        std::thread::spawn(move || {
            while !s2.load(Ordering::Relaxed) && Instant::now() < deadline {
                match l.accept() {
                    Ok((mut c, _)) => {
                        let _ = c.write_all(id.as_bytes());
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(2)),
                }
            }
        });
        Server { stop }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn fetch(netns: &Path, to: SocketAddr) -> Result<String, String> {
    netns::run_in(netns, move || -> Result<String, String> {
        let mut s = TcpStream::connect_timeout(&to, Duration::from_secs(2))
            .map_err(|e| format!("connect {to}: {e}"))?;
        s.set_read_timeout(Some(Duration::from_secs(2)))
            .map_err(|e| e.to_string())?;
        let mut out = String::new();
        s.read_to_string(&mut out).map_err(|e| e.to_string())?;
        Ok(out)
    })
    .map_err(|e| e.to_string())?
}

fn resolve(netns: &Path, name: &str) -> Result<Vec<Ipv4Addr>, String> {
    let q = a_query(7, name).map_err(|e| e.to_string())?;
    netns::run_in(netns, move || -> Result<Vec<Ipv4Addr>, String> {
        let s = UdpSocket::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
        s.set_read_timeout(Some(Duration::from_secs(2)))
            .map_err(|e| e.to_string())?;
        s.send_to(&q, "127.0.0.11:53").map_err(|e| e.to_string())?;
        let mut buf = [0u8; 1500];
        let n = s.recv(&mut buf).map_err(|e| format!("dns: {e}"))?;
        let (_, mut ips) = parse_a_answer(&buf[..n]).map_err(|e| e.to_string())?;
        ips.sort();
        Ok(ips)
    })
    .map_err(|e| e.to_string())?
}

/// Poll `f` (blocking, off the runtime thread) until it holds or `limit` passes.
async fn eventually<T: Send + 'static>(
    what: &str,
    limit: Duration,
    f: impl Fn() -> Result<T, String> + Send + Sync + 'static,
) -> T {
    let f = Arc::new(f);
    let start = Instant::now();
    loop {
        let g = f.clone();
        let r = tokio::task::spawn_blocking(move || g())
            .await
            .expect("join");
        match r {
            Ok(v) => return v,
            Err(e) if start.elapsed() > limit => panic!("{what}: {e}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}

/// A two-party barrier that gives up (panics) after a minute, so one node failing never
/// leaves the other waiting forever.
#[derive(Default)]
struct Barrier {
    state: Mutex<(usize, u64)>,
    cv: Condvar,
}

impl Barrier {
    fn wait(&self) {
        let mut g = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let generation = g.1;
        g.0 += 1;
        if g.0 == 2 {
            *g = (0, generation + 1);
            self.cv.notify_all();
            return;
        }
        let (g, to) = self
            .cv
            .wait_timeout_while(g, Duration::from_secs(60), |s| s.1 == generation)
            .unwrap_or_else(|p| p.into_inner());
        drop(g);
        assert!(!to.timed_out(), "the other node never reached the barrier");
    }
}

async fn wait(b: &Arc<Barrier>) {
    let b = b.clone();
    tokio::task::spawn_blocking(move || b.wait())
        .await
        .expect("barrier");
}

const VIP: Ipv4Addr = Ipv4Addr::new(10, 0, 1, 2);

/// One node's script. Node 1 checks, node 2 serves and later drains.
async fn node(i: usize, host: PathBuf, data: PathBuf, b: Arc<Barrier>, tag: String) {
    let np = NetPlane::open_in(&data, &BTreeSet::new(), Some(host.clone())).expect("open");
    np.swarm_started(SwarmInfo {
        node_id: format!("{tag}-node{i}"),
        cluster_id: tag.clone(),
        advertise_addr: format!("10.79.0.{i}:2377"),
        managers: vec!["10.79.0.1:2377".into()],
    })
    .await
    .expect("swarm start");
    let n1 = network("n1", "front", "10.0.1.0/24", 4097, false);
    let ing = network("ing", "ingress", "10.0.0.0/24", 4096, true);
    np.set_node_attachments(vec![shoal_types::task::NetworkAttachment {
        network: ing.clone(),
        addresses: vec![format!("10.0.0.{}/24", 100 + i)],
        aliases: vec![],
    }])
    .await;
    let t = task(
        &format!("task{i}"),
        i as u64,
        vec![
            (n1, &format!("10.0.1.{}/24", 4 + i)),
            (ing, &format!("10.0.0.{}/24", 4 + i)),
        ],
    );
    let tn = np.prepare_task(&t).await.expect("prepare");
    assert!(tn.resolv_conf.contains("nameserver 127.0.0.11"));
    let _srv = Server::start(&tn.netns_path, 80, &format!("node{i}"));
    np.bind_container(&t.id, &format!("ctr{i}")).await;
    np.container_running(&format!("ctr{i}")).await;
    wait(&b).await; // A: both tasks up

    if i == 1 {
        let p = tn.netns_path.clone();
        // Cross-node by task address (FDB + neighbour entries from gossip).
        eventually(
            "reach task2 across nodes",
            Duration::from_secs(15),
            move || {
                let r = fetch(&p, "10.0.1.6:80".parse().expect("addr"))?;
                (r == "node2").then_some(()).ok_or(r)
            },
        )
        .await;
        let p = tn.netns_path.clone();
        eventually("DNS names", Duration::from_secs(10), move || {
            let all = vec![Ipv4Addr::new(10, 0, 1, 5), Ipv4Addr::new(10, 0, 1, 6)];
            let got = (
                resolve(&p, "web")?,
                resolve(&p, "app_web")?,
                resolve(&p, "tasks.web")?,
            );
            (got == (vec![VIP], vec![VIP], all))
                .then_some(())
                .ok_or(format!("{got:?}"))
        })
        .await;
        let p = tn.netns_path.clone();
        let seen = eventually(
            "VIP reaches both nodes",
            Duration::from_secs(10),
            move || {
                let mut seen = BTreeSet::new();
                for _ in 0..40 {
                    seen.insert(fetch(&p, SocketAddr::new(VIP.into(), 80))?);
                }
                (seen.len() == 2)
                    .then_some(seen.clone())
                    .ok_or(format!("{seen:?}"))
            },
        )
        .await;
        assert_eq!(seen.len(), 2);
        // The routing mesh: the published port on node 1's underlay address, from node 2's
        // namespace (a client on the LAN), reaches the tasks.
        let h2 = host.with_file_name(
            host.file_name()
                .map(|n| n.to_string_lossy().replace("-h1", "-h2"))
                .unwrap_or_default(),
        );
        let h2b = h2.clone();
        eventually("mesh port answers", Duration::from_secs(10), move || {
            let r = fetch(&h2, "10.79.0.1:8080".parse().expect("addr"))?;
            r.starts_with("node").then_some(()).ok_or(r)
        })
        .await;
        // Host mode: each node's port reaches only its own task.
        eventually("host-mode ports", Duration::from_secs(10), move || {
            for (addr, want) in [("10.79.0.1:8081", "node1"), ("10.79.0.2:8081", "node2")] {
                for _ in 0..5 {
                    let r = fetch(&h2b, addr.parse().expect("addr"))?;
                    if r != want {
                        return Err(format!("{addr} answered {r}"));
                    }
                }
            }
            Ok(())
        })
        .await;
    }
    wait(&b).await; // B: node 1 verified
    if i == 2 {
        // Drain: withdrawn before the (pretend) container stops.
        assert!(np.container_stopping("ctr2").await);
    }
    wait(&b).await; // C
    if i == 1 {
        let p = tn.netns_path.clone();
        eventually("task2 leaves DNS", Duration::from_secs(3), move || {
            let got = resolve(&p, "tasks.web")?;
            (got == vec![Ipv4Addr::new(10, 0, 1, 5)])
                .then_some(())
                .ok_or(format!("{got:?}"))
        })
        .await;
        let p = tn.netns_path.clone();
        eventually("VIP only to task1", Duration::from_secs(3), move || {
            for _ in 0..20 {
                let r = fetch(&p, SocketAddr::new(VIP.into(), 80))?;
                if r != "node1" {
                    return Err(r);
                }
            }
            Ok(())
        })
        .await;
    }
    wait(&b).await; // D
    np.release_container(&format!("ctr{i}")).await;
    assert!(!tn.netns_path.exists(), "task netns left behind");
    np.swarm_stopped().await;
    let left: Vec<_> = np.own_namespaces();
    assert!(left.is_empty(), "namespaces left: {left:?}");
    assert!(
        shoal_net::nft::list_table(Some(&host), super::MESH_TABLE)
            .expect("nft")
            .is_none(),
        "mesh table left"
    );
}

#[test]
fn two_nodes_overlay_dns_vip_mesh_drain() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "this test needs root (network namespaces, netlink, nftables)"
    );
    let tag = format!("npt{}", std::process::id() % 100_000);
    let topo = topology(&tag);
    let dir = tempfile::tempdir().expect("tempdir");
    let b = Arc::new(Barrier::default());
    let mut threads = Vec::new();
    for (i, h) in topo.hosts.iter().enumerate() {
        let (host, b, tag) = (h.path().to_path_buf(), b.clone(), tag.clone());
        let data = dir.path().join(format!("node{}", i + 1));
        threads.push(std::thread::spawn(move || {
            netns::enter(&host).expect("enter host netns");
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(node(i + 1, host, data, b, tag));
        }));
    }
    let mut failed = false;
    for t in threads {
        failed |= t.join().is_err();
    }
    // Whatever a failed node left: its namespaces (overlays, tasks) by prefix.
    for i in 1..=2 {
        let prefix = super::prefix_for(&dir.path().join(format!("node{i}")));
        if let Ok(rd) = std::fs::read_dir(netns::NETNS_DIR) {
            for e in rd.flatten() {
                let n = e.file_name().to_string_lossy().to_string();
                if n.starts_with(&prefix) {
                    let _ = netns::delete(&n);
                }
            }
        }
    }
    drop(topo);
    assert!(!failed, "a node failed (see its panic above)");
}
