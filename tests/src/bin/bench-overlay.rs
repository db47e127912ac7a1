//! Overlay data-plane figures on a 3-node lab (root; `deploy/bench/overlay.sh` builds a release
//! `shoal` and runs this):
//! - TCP throughput and round-trip latency between two task containers on different nodes over
//!   the overlay, against the same between the two hosts over the underlay (ratios);
//! - routing-mesh requests/s and p99 (a new connection per request) to a published port on a
//!   node that runs no task, against connecting to the task directly (its host-mode port on
//!   its own node) and to the same server code on that node's address (ratios);
//! - time from a task's death to its removal from DNS and from the VIP table on every node.
//!
//! (Encrypted overlays have their own bench, `bench-encrypted`.)
//!
//! With `SHOAL_BENCH_PERF` set (needs `perf`), the first mesh round also records `perf -a` and
//! prints the CPU each request costs by part of the packet path (conntrack, nft, VXLAN,
//! bridge, routing, TCP, ...) for the mesh and the direct paths: on one machine every node's
//! share of the path runs on the same CPUs as the client and the server.
//!
//! Fairness: both paths use the same tool (this program's threads entered into the namespaces),
//! the same byte counts and the same CPU pinning (sender on one CPU, receiver on the other: two
//! hosts have a CPU each). The lab shares its CPUs with whatever else runs on the machine, so
//! every figure is the median of several rounds that alternate underlay and overlay (the order
//! flips every round), and the ratio reported is the median of the per-round ratios: noise that
//! hits one round hits both of its runs. Every run is printed.
//! All traffic stays inside the lab's namespaces.

use anyhow::{Context, Result, anyhow, bail};
use shoal_e2e::bench::{echo_reachable, env_count, median};
use shoal_e2e::services::{
    container_netns, is_running, node_hostnames, task_address, task_container, try_tasks,
};
use shoal_e2e::{Lab, in_netns_path, wait_for};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::time::{Duration, Instant};

/// Bytes per throughput run, written in `CHUNK` pieces.
const BULK_BYTES: usize = 1 << 30;
const CHUNK: usize = 128 << 10;
const RTT_WARMUP: usize = 200;
const RTT_ROUNDS: usize = 5000;
const MESH_TIME: Duration = Duration::from_secs(2);
const MESH_CLIENTS: usize = 4;
/// Acceptor threads of every server: more than the clients, so the backend never queues.
const ACCEPTORS: usize = 8;
/// Rounds per figure unless `SHOAL_BENCH_ROUNDS` says otherwise.
const ROUNDS: usize = 5;
/// Task kills for the death → DNS/VIP figure unless `SHOAL_BENCH_KILLS` says otherwise.
const KILLS: usize = 5;
const SENDER_CPU: usize = 0;
const RECEIVER_CPU: usize = 1;

/// Pin the calling thread to `cpu` when the machine has it (a 1-CPU machine runs unpinned).
fn pin(cpu: usize) {
    let n = std::thread::available_parallelism().map_or(1, |n| n.get());
    if n < 2 {
        return;
    }
    // SAFETY: a zeroed cpu_set_t is a valid empty set; the call affects this thread only.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu % n, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
    }
}

/// A server inside the namespace at `path`: `ACCEPTORS` threads block in accept and handle
/// each connection themselves (no thread start per connection, no polling). Per connection
/// the first byte picks the mode: `B` sinks everything until EOF, `E` echoes byte for byte,
/// anything else is one request answered with a small HTTP response, then closed. The
/// threads end with the process.
fn serve(path: &str, addr: SocketAddr) -> Result<()> {
    let l = in_netns_path(path, move || TcpListener::bind(addr))??;
    for _ in 0..ACCEPTORS {
        let l = l.try_clone()?;
        std::thread::spawn(move || {
            let mut buf = vec![0u8; CHUNK];
            while let Ok((s, _)) = l.accept() {
                handle(s, &mut buf);
            }
        });
    }
    Ok(())
}

fn handle(mut s: TcpStream, buf: &mut [u8]) {
    let _ = s.set_nodelay(true);
    let _ = s.set_read_timeout(Some(Duration::from_secs(30)));
    let mut mode = [0u8; 1];
    if s.read_exact(&mut mode).is_err() {
        return;
    }
    match mode[0] {
        b'B' => {
            pin(RECEIVER_CPU);
            while matches!(s.read(buf), Ok(n) if n > 0) {}
        }
        b'E' => {
            pin(RECEIVER_CPU);
            let mut one = [0u8; 1];
            while s.read_exact(&mut one).is_ok() {
                if s.write_all(&one).is_err() {
                    break;
                }
            }
        }
        _ => {
            // Consume the request first: closing with unread data would reset the
            // connection instead of ending it.
            let _ = s.read(buf);
            let _ = s.write_all(b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok");
        }
    }
}

/// Gbit/s of one transfer of `bytes`, from the first write until the receiver has read
/// everything and closed.
fn bulk(path: &str, to: SocketAddr, bytes: usize) -> Result<f64> {
    in_netns_path(path, move || -> Result<f64> {
        pin(SENDER_CPU);
        let mut s = TcpStream::connect_timeout(&to, Duration::from_secs(5))?;
        s.set_read_timeout(Some(Duration::from_secs(120)))?;
        s.write_all(b"B")?;
        let chunk = vec![0x5au8; CHUNK];
        let start = Instant::now();
        let mut sent = 0;
        while sent < bytes {
            s.write_all(&chunk)?;
            sent += chunk.len();
        }
        s.shutdown(std::net::Shutdown::Write)?;
        let mut rest = [0u8; 1];
        let _ = s.read(&mut rest);
        Ok(sent as f64 * 8.0 / start.elapsed().as_secs_f64() / 1e9)
    })?
}

/// One-byte request/response round trips on one connection: (p50, p99).
fn rtt(path: &str, to: SocketAddr) -> Result<(Duration, Duration)> {
    in_netns_path(path, move || -> Result<(Duration, Duration)> {
        pin(SENDER_CPU);
        let mut s = TcpStream::connect_timeout(&to, Duration::from_secs(5))?;
        s.set_nodelay(true)?;
        s.set_read_timeout(Some(Duration::from_secs(5)))?;
        s.write_all(b"E")?;
        let mut out = Vec::with_capacity(RTT_ROUNDS);
        let mut one = [0u8; 1];
        for i in 0..RTT_WARMUP + RTT_ROUNDS {
            let t = Instant::now();
            s.write_all(b"x")?;
            s.read_exact(&mut one)?;
            if i >= RTT_WARMUP {
                out.push(t.elapsed());
            }
        }
        out.sort();
        Ok((pct(&out, 0.5), pct(&out, 0.99)))
    })?
}

/// Requests/s and p99 with `MESH_CLIENTS` threads, one connection per request.
fn requests(path: &str, to: SocketAddr) -> Result<(f64, Duration)> {
    let start = Instant::now();
    let mut threads = Vec::new();
    for _ in 0..MESH_CLIENTS {
        let path = path.to_string();
        threads.push(std::thread::spawn(move || {
            in_netns_path(&path, move || -> Result<Vec<Duration>> {
                let mut lat = Vec::new();
                let end = Instant::now() + MESH_TIME;
                while Instant::now() < end {
                    let t = Instant::now();
                    let mut s = TcpStream::connect_timeout(&to, Duration::from_secs(5))?;
                    s.set_read_timeout(Some(Duration::from_secs(5)))?;
                    s.write_all(b"GET / HTTP/1.0\r\n\r\n")?;
                    let mut resp = Vec::new();
                    s.read_to_end(&mut resp)?;
                    if !resp.ends_with(b"ok") {
                        bail!("bad response from {to}");
                    }
                    lat.push(t.elapsed());
                }
                Ok(lat)
            })
        }));
    }
    let mut all = Vec::new();
    for t in threads {
        all.extend(t.join().map_err(|_| anyhow!("client panicked"))???);
    }
    let rate = all.len() as f64 / start.elapsed().as_secs_f64();
    all.sort();
    Ok((rate, pct(&all, 0.99)))
}

fn pct(v: &[Duration], q: f64) -> Duration {
    if v.is_empty() {
        return Duration::ZERO;
    }
    v[((v.len() - 1) as f64 * q) as usize]
}

/// The median of `f` over `runs`.
fn med_of<T>(runs: &[T], f: impl Fn(&T) -> f64) -> f64 {
    median(&runs.iter().map(f).collect::<Vec<_>>())
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

/// `rounds` rounds of (underlay run, overlay run), the order flipping every round; `f(true)`
/// runs the overlay. Returns the pairs in (underlay, overlay) order.
fn alternate<T>(rounds: usize, mut f: impl FnMut(bool) -> Result<T>) -> Result<Vec<(T, T)>> {
    let mut out = Vec::new();
    for r in 0..rounds {
        let (u, o) = if r % 2 == 0 {
            let u = f(false)?;
            (u, f(true)?)
        } else {
            let o = f(true)?;
            (f(false)?, o)
        };
        out.push((u, o));
    }
    Ok(out)
}

struct Task {
    id: String,
    node: String,
    pid_ns: String,
    /// Address on the network the task was looked up for.
    ip: String,
    ingress_ip: Option<String>,
}

/// Running tasks of `service` (desired running), with their address on network `net`.
fn running_tasks(lab: &Lab, service: &str, net: &str) -> Result<Vec<Task>> {
    let mut out = Vec::new();
    for t in try_tasks(lab.host(1), service)?
        .iter()
        .filter(|t| is_running(t))
    {
        let Some(ip) = task_address(t, net) else {
            continue;
        };
        let ingress_ip = t["NetworksAttachments"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|a| a["Network"]["Spec"]["Ingress"] == true)
            .and_then(|a| a["Network"]["ID"].as_str())
            .and_then(|ingress| task_address(t, ingress));
        let Ok(pid_ns) = container_netns(lab, task_container(t)) else {
            continue;
        };
        out.push(Task {
            id: t["ID"].as_str().unwrap_or("").to_string(),
            node: t["NodeID"].as_str().unwrap_or("").to_string(),
            ingress_ip,
            pid_ns,
            ip,
        });
    }
    Ok(out)
}

fn one_task(lab: &Lab, service: &str, net: &str) -> Result<Task> {
    wait_for(
        &format!("{service} running"),
        Duration::from_secs(90),
        || match running_tasks(lab, service, net)?.into_iter().next() {
            Some(t) => Ok(Some(t)),
            // Say where the tasks are (shown if the wait times out).
            None => bail!("{}", task_states(lab, service)?),
        },
    )
}

/// `state: error` of every task of `service`.
fn task_states(lab: &Lab, service: &str) -> Result<String> {
    let states: Vec<String> = try_tasks(lab.host(1), service)?
        .iter()
        .map(|t| format!("{}: {}", t["Status"]["State"], t["Status"]["Err"]))
        .collect();
    Ok(format!("tasks of {service}: [{}]", states.join(", ")))
}

/// Does `name` resolve (from inside `path`) to `ip`?
fn dns_has(path: &str, name: &str, ip: &str) -> Result<bool> {
    let name = name.to_string();
    let want: Vec<u8> = ip.split('.').filter_map(|x| x.parse().ok()).collect();
    in_netns_path(path, move || -> Result<bool> {
        // A minimal A query (id 0x5301, RD) for `name`.
        let mut q = vec![0x53, 1, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0];
        for l in name.split('.') {
            q.push(l.len() as u8);
            q.extend_from_slice(l.as_bytes());
        }
        q.extend_from_slice(&[0, 0, 1, 0, 1]);
        let s = UdpSocket::bind("127.0.0.1:0")?;
        s.set_read_timeout(Some(Duration::from_secs(1)))?;
        s.send_to(&q, "127.0.0.11:53")?;
        let mut buf = [0u8; 1500];
        let n = s.recv(&mut buf)?;
        // Answers follow the question; each A record ends in its 4 address bytes.
        let ans = buf.get(q.len()..n).unwrap_or(&[]);
        Ok(ans.windows(4).any(|w| w == want.as_slice()))
    })?
}

/// Is `ip` a backend in the VIP table inside the namespace at `path`?
fn vip_has(path: &str, ip: &str) -> Result<bool> {
    let ip = ip.to_string();
    in_netns_path(path, move || -> Result<bool> {
        // The child inherits this thread's network namespace.
        let out = std::process::Command::new("nft")
            .args(["list", "table", "ip", "shoal-lb"])
            .output()
            .context("running nft")?;
        if !out.status.success() {
            return Ok(false);
        }
        let text = String::from_utf8_lossy(&out.stdout);
        Ok(text
            .split(|c: char| !(c.is_ascii_digit() || c == '.'))
            .any(|w| w == ip))
    })?
}

fn main() -> Result<()> {
    let rounds = env_count("SHOAL_BENCH_ROUNDS", ROUNDS)?;
    let kills = env_count("SHOAL_BENCH_KILLS", KILLS)?;
    let load = || std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!(
        "bench-overlay: {} CPUs, shoal {}, {rounds} rounds, load {}",
        std::thread::available_parallelism().map_or(1, |n| n.get()),
        shoal_e2e::shoal_bin().display(),
        load().trim()
    );
    let lab = Lab::swarm_with_images(3, "busybox.tar")?;
    let h1 = lab.host(1);
    let net = h1
        .docker(&["network", "create", "-d", "overlay", "bench"])?
        .trim()
        .to_string();
    let svc = |name: &str, extra: &[&str]| -> Result<()> {
        let mut args = vec![
            "service",
            "create",
            "-d",
            "--name",
            name,
            "--network",
            "bench",
        ];
        args.extend_from_slice(extra);
        args.extend_from_slice(&["shoal-test/busybox:latest", "sleep", "3600"]);
        h1.docker(&args).map(|_| ())
    };
    svc(
        "srv",
        &[
            "--constraint",
            "node.hostname==node2",
            "-p",
            "9000:7000",
            "-p",
            "published=9001,target=7000,mode=host",
        ],
    )?;
    svc("cli", &["--constraint", "node.hostname==node1"])?;
    let srv = one_task(&lab, "srv", &net)?;
    let cli = one_task(&lab, "cli", &net)?;
    // Servers: in the srv container (overlay; 7000 is also the mesh target port) and on
    // node2's underlay address.
    serve(&srv.pid_ns, "0.0.0.0:7000".parse()?)?;
    let h2_ns = format!("/run/netns/{}", lab.host(2).netns);
    let under: SocketAddr = format!("{}:7001", lab.host(2).addr).parse()?;
    serve(&h2_ns, under)?;
    let h1_ns = format!("/run/netns/{}", lab.host(1).netns);
    let over: SocketAddr = format!("{}:7000", srv.ip).parse()?;
    wait_for("overlay path up", Duration::from_secs(30), || {
        Ok(echo_reachable(&cli.pid_ns, over).then_some(()))
    })?;
    // Warm both paths (ARP, FDB, conntrack, page cache of the tool).
    bulk(&cli.pid_ns, over, BULK_BYTES / 8)?;
    bulk(&h1_ns, under, BULK_BYTES / 8)?;

    println!(
        "\n== throughput: {} MiB per run, {CHUNK}-byte writes, sender CPU {SENDER_CPU}, receiver CPU {RECEIVER_CPU}",
        BULK_BYTES >> 20
    );
    let runs = alternate(rounds, |overlay| {
        if overlay {
            bulk(&cli.pid_ns, over, BULK_BYTES)
        } else {
            bulk(&h1_ns, under, BULK_BYTES)
        }
    })?;
    for (i, (u, o)) in runs.iter().enumerate() {
        println!(
            "round {}: underlay {u:6.2} Gbit/s   overlay {o:6.2} Gbit/s   ratio {:.2}",
            i + 1,
            o / u
        );
    }
    let tp_ratio = median(&runs.iter().map(|(u, o)| o / u).collect::<Vec<_>>());
    println!(
        "throughput median: underlay {:.2} Gbit/s, overlay {:.2} Gbit/s; median ratio overlay/underlay {tp_ratio:.2} (target >= 0.80)",
        median(&runs.iter().map(|r| r.0).collect::<Vec<_>>()),
        median(&runs.iter().map(|r| r.1).collect::<Vec<_>>()),
    );

    println!("\n== latency: {RTT_ROUNDS} one-byte TCP round trips per run");
    let runs = alternate(rounds, |overlay| {
        if overlay {
            rtt(&cli.pid_ns, over)
        } else {
            rtt(&h1_ns, under)
        }
    })?;
    for (i, (u, o)) in runs.iter().enumerate() {
        println!(
            "round {}: underlay p50 {:6.1} us p99 {:6.1} us   overlay p50 {:6.1} us p99 {:6.1} us   p50 ratio {:.2}",
            i + 1,
            us(u.0),
            us(u.1),
            us(o.0),
            us(o.1),
            us(u.0) / us(o.0)
        );
    }
    println!(
        "latency median: underlay p50 {:.1} us p99 {:.1} us, overlay p50 {:.1} us p99 {:.1} us; median ratio underlay/overlay p50 {:.2} p99 {:.2} (target >= 0.80)",
        med_of(&runs, |r| us(r.0.0)),
        med_of(&runs, |r| us(r.0.1)),
        med_of(&runs, |r| us(r.1.0)),
        med_of(&runs, |r| us(r.1.1)),
        med_of(&runs, |r| us(r.0.0) / us(r.1.0)),
        med_of(&runs, |r| us(r.0.1) / us(r.1.1)),
    );

    // Routing mesh: from node1's namespace (a client on the LAN) to node3 (which runs no
    // task) on the published port, against the same task reached directly on its own node
    // (its host-mode port on node2), and the same server code on node2's own address (no
    // container at all). The order rotates every round.
    println!(
        "\n== routing mesh: {MESH_CLIENTS} clients, a new connection per request, {MESH_TIME:?} per run; node1 -> node3:9000 (mesh to srv on node2) vs node1 -> node2:9001 (srv's host-mode port: the task directly) vs node1 -> node2:7001 (server on node2's address)"
    );
    if srv.ingress_ip.is_none() {
        println!("routing mesh: srv has no ingress address (no mesh allocation); skipped");
    } else {
        let mesh: SocketAddr = format!("{}:9000", lab.host(3).addr).parse()?;
        let task: SocketAddr = format!("{}:9001", lab.host(2).addr).parse()?;
        for (what, to) in [("mesh port", mesh), ("host-mode port", task)] {
            wait_for(&format!("{what} up"), Duration::from_secs(30), || {
                Ok(requests_probe(&h1_ns, to).then_some(()))
            })?;
        }
        let targets = [task, mesh, under];
        let mut runs: Vec<[(f64, Duration); 3]> = Vec::new();
        let profile = std::env::var_os("SHOAL_BENCH_PERF").is_some();
        let mut split: [Vec<(&str, f64)>; 3] = Default::default();
        for r in 0..rounds {
            let mut got = [(0f64, Duration::ZERO); 3];
            for k in 0..3 {
                let i = (r + k) % 3;
                let perf = (r == 0 && profile).then(|| PerfRun::start(i)).transpose()?;
                got[i] = requests(&h1_ns, targets[i])?;
                if let Some(p) = perf {
                    split[i] = p.finish(got[i].0)?;
                }
            }
            let [t, m, u] = got;
            println!(
                "round {}: task directly {:6.0} req/s p99 {:7.1} us   mesh {:6.0} req/s p99 {:7.1} us   node address {:6.0} req/s p99 {:7.1} us   mesh/task req/s {:.2} p99 {:.2}",
                r + 1,
                t.0,
                us(t.1),
                m.0,
                us(m.1),
                u.0,
                us(u.1),
                m.0 / t.0,
                us(t.1) / us(m.1)
            );
            runs.push(got);
        }
        println!(
            "mesh median: task directly {:.0} req/s p99 {:.1} us, mesh {:.0} req/s p99 {:.1} us, node address {:.0} req/s p99 {:.1} us",
            med_of(&runs, |r| r[0].0),
            med_of(&runs, |r| us(r[0].1)),
            med_of(&runs, |r| r[1].0),
            med_of(&runs, |r| us(r[1].1)),
            med_of(&runs, |r| r[2].0),
            med_of(&runs, |r| us(r[2].1)),
        );
        println!(
            "mesh median ratios: mesh/task-directly req/s {:.2}, p99 (task/mesh) {:.2} (target >= 0.90); mesh/node-address req/s {:.2}, p99 {:.2}",
            med_of(&runs, |r| r[1].0 / r[0].0),
            med_of(&runs, |r| us(r[0].1) / us(r[1].1)),
            med_of(&runs, |r| r[1].0 / r[2].0),
            med_of(&runs, |r| us(r[2].1) / us(r[1].1)),
        );
        if profile {
            println!(
                "CPU per request by part of the path (perf samples of this program's threads, which carry the whole path in softirq, and ksoftirqd; first round):"
            );
            for (name, parts) in ["task directly", "mesh", "node address"].iter().zip(&split) {
                let total: f64 = parts.iter().map(|p| p.1).sum();
                let detail: Vec<String> =
                    parts.iter().map(|(k, v)| format!("{k} {v:.1}")).collect();
                println!("  {name:13}: {total:5.1} us = {}", detail.join(", "));
            }
        }
    }

    death_to_dns(&lab, &net, kills)?;
    println!("\nload at the end {}", load().trim());
    Ok(())
}

/// Kill a task `kills` times; for each kill, the time until its address left `tasks.<svc>` in
/// DNS and the VIP table of a probe container on every node.
fn death_to_dns(lab: &Lab, net: &str, kills: usize) -> Result<()> {
    let h1 = lab.host(1);
    println!(
        "\n== task death -> out of DNS (tasks.victim) and the VIP table, seen from a container on every node; {kills} kills"
    );
    h1.docker(&[
        "service",
        "create",
        "-d",
        "--name",
        "probe",
        "--mode",
        "global",
        "--network",
        "bench",
        "shoal-test/busybox:latest",
        "sleep",
        "3600",
    ])?;
    // The restart delay leaves a window in which the dead task's address cannot come back
    // with its replacement (the allocator may hand the same address out again).
    h1.docker(&[
        "service",
        "create",
        "-d",
        "--name",
        "victim",
        "--network",
        "bench",
        "--constraint",
        "node.hostname==node2",
        "--restart-delay",
        "5s",
        "shoal-test/busybox:latest",
        "sleep",
        "3600",
    ])?;
    let probes = wait_for("a probe on every node", Duration::from_secs(90), || {
        let p = running_tasks(lab, "probe", net)?;
        Ok((p.len() == lab.hosts.len()).then_some(p))
    })?;
    let nodes = node_hostnames(h1)?;
    let name_of = |id: &str| nodes.get(id).cloned().unwrap_or_else(|| id.to_string());
    // Per node: (DNS times, VIP times) in ms.
    let mut dns_ms: Vec<Vec<f64>> = vec![Vec::new(); probes.len()];
    let mut vip_ms: Vec<Vec<f64>> = vec![Vec::new(); probes.len()];
    let mut last_task = String::new();
    for k in 0..kills {
        let victim = wait_for("a new victim task", Duration::from_secs(60), || {
            Ok(running_tasks(lab, "victim", net)?
                .into_iter()
                .find(|t| t.id != last_task))
        })?;
        last_task = victim.id.clone();
        let ip = victim.ip.clone();
        for p in &probes {
            let (path, ip) = (p.pid_ns.clone(), ip.clone());
            wait_for(
                &format!("victim {ip} in DNS and VIP on {}", name_of(&p.node)),
                Duration::from_secs(30),
                move || {
                    Ok(
                        (dns_has(&path, "tasks.victim", &ip)? && vip_has(&path, &ip)?)
                            .then_some(()),
                    )
                },
            )?;
        }
        let pid: i32 = victim
            .pid_ns
            .trim_start_matches("/proc/")
            .trim_end_matches("/ns/net")
            .parse()?;
        let t0 = Instant::now();
        // SAFETY: a lab container's process, by PID.
        unsafe { libc::kill(pid, libc::SIGKILL) };
        let watchers: Vec<_> = probes
            .iter()
            .map(|p| {
                let (path, ip) = (p.pid_ns.clone(), ip.clone());
                std::thread::spawn(move || {
                    let limit = Duration::from_secs(5);
                    let (mut dns, mut vip) = (None, None);
                    // DNS first (a cheap query); the VIP table (an `nft` run, costly to poll)
                    // only from then on: the daemon changes both in the same pass, DNS first.
                    while t0.elapsed() < limit && (dns.is_none() || vip.is_none()) {
                        if dns.is_none() {
                            if !dns_has(&path, "tasks.victim", &ip).unwrap_or(true) {
                                dns = Some(t0.elapsed());
                                continue;
                            }
                        } else if !vip_has(&path, &ip).unwrap_or(true) {
                            vip = Some(t0.elapsed());
                        }
                        std::thread::sleep(Duration::from_millis(5));
                    }
                    (dns, vip)
                })
            })
            .collect();
        let mut line = format!("kill {} ({ip}):", k + 1);
        for (i, (w, p)) in watchers.into_iter().zip(&probes).enumerate() {
            let (dns, vip) = w.join().map_err(|_| anyhow!("watcher panicked"))?;
            let (Some(dns), Some(vip)) = (dns, vip) else {
                bail!(
                    "kill {}: {ip} still in DNS ({dns:?}) or VIP ({vip:?}) on {} after 5 s",
                    k + 1,
                    name_of(&p.node)
                );
            };
            dns_ms[i].push(dns.as_secs_f64() * 1e3);
            vip_ms[i].push(vip.as_secs_f64() * 1e3);
            line += &format!(
                "   {} dns {:4.0} ms vip {:4.0} ms",
                name_of(&p.node),
                dns.as_secs_f64() * 1e3,
                vip.as_secs_f64() * 1e3
            );
        }
        println!("{line}");
    }
    let mut worst = Vec::new();
    for k in 0..dns_ms.first().map_or(0, Vec::len) {
        worst.push(
            dns_ms
                .iter()
                .chain(&vip_ms)
                .map(|v| v[k])
                .fold(0f64, f64::max),
        );
    }
    for (i, p) in probes.iter().enumerate() {
        println!(
            "{} ({}): median dns {:.0} ms, vip {:.0} ms",
            name_of(&p.node),
            if name_of(&p.node) == lab.host(2).name {
                "the victim's node"
            } else {
                "via gossip"
            },
            median(&dns_ms[i]),
            median(&vip_ms[i])
        );
    }
    println!(
        "death -> out of DNS and VIP on every node: median {:.0} ms, max {:.0} ms over {kills} kills",
        median(&worst),
        worst.iter().cloned().fold(0f64, f64::max)
    );
    Ok(())
}

fn requests_probe(path: &str, to: SocketAddr) -> bool {
    in_netns_path(path, move || -> bool {
        let Ok(mut s) = TcpStream::connect_timeout(&to, Duration::from_secs(1)) else {
            return false;
        };
        let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
        let mut r = Vec::new();
        s.write_all(b"GET").is_ok() && s.read_to_end(&mut r).is_ok() && r.ends_with(b"ok")
    })
    .unwrap_or(false)
}

/// `perf record -a` over part of one mesh run (`SHOAL_BENCH_PERF`), to split the CPU each
/// request costs by the part of the packet path it is spent in.
struct PerfRun {
    child: std::process::Child,
    file: String,
}

/// Seconds `perf` records, inside the `MESH_TIME` run it measures.
const PERF_SECS: f64 = 1.5;
/// `perf record`'s default sampling rate (samples per second of CPU).
const PERF_HZ: f64 = 4000.0;

/// Parts of the path by kernel symbol (first match wins; the rest is "other": syscalls,
/// sockets, memory, scheduling, this program).
const PATH_PARTS: &[(&str, &[&str])] = &[
    (
        "conntrack+nat",
        &[
            "nf_conntrack",
            "nf_ct_",
            "nf_nat",
            "nf_confirm",
            "tcp_in_window",
        ],
    ),
    ("nft rules", &["nft_", "nf_hook_slow", "nf_tables"]),
    (
        "vxlan/udp",
        &["vxlan", "udp_tunnel", "iptunnel", "gro_cell", "udp"],
    ),
    ("bridge", &["br_", "fdb_"]),
    ("veth", &["veth"]),
    (
        "ip routing",
        &[
            "fib_",
            "ip_route",
            "ip_rcv",
            "ip_finish",
            "ip_output",
            "ip_local",
            "ip_forward",
            "ip_sublist",
            "dst_",
            "__ip_",
            "ip_queue",
        ],
    ),
    ("tcp", &["tcp", "inet_"]),
];

impl PerfRun {
    fn start(target: usize) -> Result<PerfRun> {
        let file = std::env::temp_dir()
            .join(format!(
                "shoal-bench-mesh-{}-{target}.perf",
                std::process::id()
            ))
            .display()
            .to_string();
        let child = std::process::Command::new("perf")
            .args([
                "record",
                "-a",
                "-F",
                &PERF_HZ.to_string(),
                "-o",
                &file,
                "--",
                "sleep",
            ])
            .arg(PERF_SECS.to_string())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .context("starting perf (SHOAL_BENCH_PERF needs perf installed)")?;
        Ok(PerfRun { child, file })
    }

    /// Microseconds of CPU per request by part of the path, for a run at `rate` requests/s.
    fn finish(mut self, rate: f64) -> Result<Vec<(&'static str, f64)>> {
        let status = self.child.wait()?;
        let comm = std::env::current_exe()?
            .file_name()
            .map(|n| n.to_string_lossy().chars().take(15).collect::<String>())
            .unwrap_or_default();
        let out = std::process::Command::new("perf")
            .args([
                "report",
                "-n",
                "--no-children",
                "--sort",
                "sym",
                "--stdio",
                "-g",
                "none",
                "-i",
            ])
            .arg(&self.file)
            .arg("--comm")
            .arg(format!("{comm},ksoftirqd/0,ksoftirqd/1"))
            .output()
            .context("running perf report")?;
        let _ = std::fs::remove_file(&self.file);
        if !status.success() || !out.status.success() {
            bail!(
                "perf failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        let mut samples = vec![0f64; PATH_PARTS.len() + 1];
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            let cols: Vec<&str> = line.split_whitespace().collect();
            let (Some(n), Some(sym)) =
                (cols.get(1).and_then(|n| n.parse::<f64>().ok()), cols.last())
            else {
                continue;
            };
            if !cols[0].ends_with('%') {
                continue;
            }
            let part = PATH_PARTS
                .iter()
                .position(|(_, keys)| keys.iter().any(|k| sym.contains(k)))
                .unwrap_or(PATH_PARTS.len());
            samples[part] += n;
        }
        let requests = (rate * PERF_SECS).max(1.0);
        let per_request = |n: f64| n / PERF_HZ * 1e6 / requests;
        let mut out: Vec<(&str, f64)> = PATH_PARTS
            .iter()
            .zip(&samples)
            .map(|((name, _), n)| (*name, per_request(*n)))
            .collect();
        out.push(("other", per_request(samples[PATH_PARTS.len()])));
        Ok(out)
    }
}
