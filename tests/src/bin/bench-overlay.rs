//! Overlay data-plane figures on a 3-node lab (root; run after `cargo build -p shoal`):
//! - TCP throughput and round-trip latency between two task containers on different nodes over
//!   the overlay, against the same between the two hosts over the underlay (ratio);
//! - routing-mesh requests/s and p99 (new connection per request) to a published port on a node
//!   that runs no task, against connecting to a server on the underlay directly (ratio);
//! - time from a task's death to its removal from DNS on another node.
//!
//! The load generators and servers are this program's threads entered into the containers'
//! network namespaces, so the backend is never the bottleneck and only the path is measured.
//! All traffic stays inside the lab's namespaces.

use anyhow::{Context, Result, anyhow, bail};
use shoal_e2e::{Lab, wait_for};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

const BULK_BYTES: usize = 256 << 20;
/// Userspace WireGuard is much slower: a smaller transfer keeps the run short.
const ENC_BYTES: usize = 32 << 20;
const RTT_ROUNDS: usize = 2000;
const MESH_SECS: u64 = 4;
const MESH_CLIENTS: usize = 4;

/// Run `f` on a fresh thread inside the network namespace at `path`.
fn in_path<T: Send + 'static>(path: &str, f: impl FnOnce() -> T + Send + 'static) -> Result<T> {
    let file = std::fs::File::open(path).with_context(|| path.to_string())?;
    std::thread::spawn(move || -> Result<T> {
        // SAFETY: setns on this thread only; the thread ends after `f`.
        if unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
            bail!("setns: {}", std::io::Error::last_os_error());
        }
        Ok(f())
    })
    .join()
    .map_err(|_| anyhow!("thread in {path} panicked"))?
}

/// Bind a listener inside a namespace; it is used from any thread afterwards.
fn listen_in(path: &str, addr: SocketAddr) -> Result<TcpListener> {
    Ok(in_path(path, move || TcpListener::bind(addr))??)
}

/// A server that, per connection, either sinks everything (bulk), echoes byte for byte (rtt)
/// or answers one request with a small response and closes (mesh).
fn serve(l: TcpListener, stop: Arc<AtomicBool>) {
    l.set_nonblocking(true).ok();
    std::thread::spawn(move || {
        let deadline = Instant::now() + Duration::from_secs(600);
        while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
            match l.accept() {
                Ok((mut s, _)) => {
                    std::thread::spawn(move || {
                        let _ = s.set_nonblocking(false);
                        let _ = s.set_nodelay(true);
                        let mut mode = [0u8; 1];
                        if s.read_exact(&mut mode).is_err() {
                            return;
                        }
                        let mut buf = vec![0u8; 1 << 16];
                        match mode[0] {
                            b'B' => while matches!(s.read(&mut buf), Ok(n) if n > 0) {},
                            b'E' => {
                                let mut one = [0u8; 1];
                                while s.read_exact(&mut one).is_ok() {
                                    if s.write_all(&one).is_err() {
                                        break;
                                    }
                                }
                            }
                            _ => {
                                // Consume the request first: closing with unread data would
                                // reset the connection instead of ending it.
                                let _ = s.read(&mut buf);
                                let _ =
                                    s.write_all(b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok");
                            }
                        }
                    });
                }
                Err(_) => std::thread::sleep(Duration::from_millis(1)),
            }
        }
    });
}

fn bulk(path: &str, to: SocketAddr, bytes: usize) -> Result<f64> {
    in_path(path, move || -> Result<f64> {
        let mut s = TcpStream::connect_timeout(&to, Duration::from_secs(5))?;
        s.write_all(b"B")?;
        let chunk = vec![0x5au8; 1 << 16];
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

fn rtt(path: &str, to: SocketAddr) -> Result<Vec<Duration>> {
    in_path(path, move || -> Result<Vec<Duration>> {
        let mut s = TcpStream::connect_timeout(&to, Duration::from_secs(5))?;
        s.set_nodelay(true)?;
        s.write_all(b"E")?;
        let mut out = Vec::with_capacity(RTT_ROUNDS);
        let mut one = [0u8; 1];
        for _ in 0..RTT_ROUNDS {
            let t = Instant::now();
            s.write_all(b"x")?;
            s.read_exact(&mut one)?;
            out.push(t.elapsed());
        }
        out.sort();
        Ok(out)
    })?
}

/// Requests/s and p99 with `MESH_CLIENTS` threads, one connection per request.
fn requests(path: &str, to: SocketAddr) -> Result<(f64, Duration)> {
    let start = Instant::now();
    let mut threads = Vec::new();
    for _ in 0..MESH_CLIENTS {
        let path = path.to_string();
        threads.push(std::thread::spawn(move || {
            in_path(&path, move || -> Result<Vec<Duration>> {
                let mut lat = Vec::new();
                let end = Instant::now() + Duration::from_secs(MESH_SECS);
                while Instant::now() < end {
                    let t = Instant::now();
                    let mut s = TcpStream::connect_timeout(&to, Duration::from_secs(5))?;
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

fn container_netns(lab: &Lab, container: &str) -> Result<String> {
    for h in &lab.hosts {
        if let Ok(info) = h.api_get(&format!("/v1.47/containers/{container}/json"))
            && let Some(pid) = info["State"]["Pid"].as_i64().filter(|p| *p > 0)
        {
            return Ok(format!("/proc/{pid}/ns/net"));
        }
    }
    bail!("container {container} not running")
}

struct Task {
    container: String,
    pid_ns: String,
    ip: String,
    /// Address on the encrypted network.
    sec_ip: Option<String>,
    ingress_ip: Option<String>,
}

fn one_task(lab: &Lab, service: &str, net: &str, sec: &str) -> Result<Task> {
    let t = wait_for(
        &format!("{service} running"),
        Duration::from_secs(90),
        || {
            let v = lab.host(1).api_get(&format!(
                "/v1.47/tasks?filters=%7B%22service%22%3A%7B%22{service}%22%3Atrue%7D%7D"
            ))?;
            Ok(v.as_array().and_then(|a| {
                a.iter()
                    .find(|t| t["Status"]["State"] == "running" && t["DesiredState"] == "running")
                    .cloned()
            }))
        },
    )?;
    let container = t["Status"]["ContainerStatus"]["ContainerID"]
        .as_str()
        .unwrap_or("")
        .to_string();
    let addr_on = |which: Option<&str>| {
        t["NetworksAttachments"].as_array().and_then(|atts| {
            atts.iter()
                .find(|a| match which {
                    None => a["Network"]["Spec"]["Ingress"] == true,
                    Some(id) => a["Network"]["ID"] == id,
                })
                .and_then(|a| a["Addresses"][0].as_str())
                .map(|s| s.split('/').next().unwrap_or("").to_string())
        })
    };
    let ip = addr_on(Some(net)).ok_or_else(|| anyhow!("{service}: no address on the overlay"))?;
    Ok(Task {
        pid_ns: container_netns(lab, &container)?,
        sec_ip: addr_on(Some(sec)),
        ingress_ip: addr_on(None),
        container,
        ip,
    })
}

/// Does `name` resolve (from inside `path`) to any of `ips`?
fn dns_has(path: &str, name: &str, ips: &[String]) -> Result<bool> {
    let name = name.to_string();
    let ips = ips.to_vec();
    in_path(path, move || -> Result<bool> {
        // A minimal A query (id 1, RD) for `name`.
        let mut q = vec![0, 1, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0];
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
        Ok(ips.iter().any(|ip| {
            let octets: Vec<u8> = ip.split('.').filter_map(|x| x.parse().ok()).collect();
            buf[..n].windows(4).any(|w| w == octets.as_slice())
        }))
    })?
}

fn main() -> Result<()> {
    let lab = Lab::swarm_with_images(3, "busybox.tar")?;
    let h1 = lab.host(1);
    let net = h1
        .docker(&["network", "create", "-d", "overlay", "bench"])?
        .trim()
        .to_string();
    let sec = h1
        .docker(&[
            "network",
            "create",
            "-d",
            "overlay",
            "--opt",
            "encrypted",
            "benchsec",
        ])?
        .trim()
        .to_string();
    for (name, node, publish) in [("srv", "node2", true), ("cli", "node1", false)] {
        let constraint = format!("node.hostname=={node}");
        let mut args = vec![
            "service",
            "create",
            "-d",
            "--name",
            name,
            "--network",
            "bench",
            "--network",
            "benchsec",
            "--constraint",
            &constraint,
        ];
        if publish {
            args.extend_from_slice(&["-p", "9000:7000"]);
        }
        args.extend_from_slice(&["shoal-test/busybox:latest", "sleep", "3600"]);
        h1.docker(&args)?;
    }
    let srv = one_task(&lab, "srv", &net, &sec)?;
    let cli = one_task(&lab, "cli", &net, &sec)?;
    let stop = Arc::new(AtomicBool::new(false));
    // Servers: in the srv container (overlay; 7000 is also the mesh target port) and on
    // node2's underlay address.
    serve(
        listen_in(&srv.pid_ns, "0.0.0.0:7000".parse()?)?,
        stop.clone(),
    );
    let h2_ns = format!("/run/netns/{}", lab.host(2).netns);
    let under: SocketAddr = format!("{}:7001", lab.host(2).addr).parse()?;
    serve(listen_in(&h2_ns, under)?, stop.clone());
    let h1_ns = format!("/run/netns/{}", lab.host(1).netns);
    let over: SocketAddr = format!("{}:7000", srv.ip).parse()?;
    wait_for("overlay path up", Duration::from_secs(30), || {
        Ok(rtt_probe(&cli.pid_ns, over).then_some(()))
    })?;

    // Best of 3, interleaved: the lab shares its CPUs with whatever else runs.
    let (mut g_over, mut g_under) = (0f64, 0f64);
    for _ in 0..3 {
        g_over = g_over.max(bulk(&cli.pid_ns, over, BULK_BYTES)?);
        g_under = g_under.max(bulk(&h1_ns, under, BULK_BYTES)?);
    }
    match &srv.sec_ip {
        Some(ip) => {
            let enc: SocketAddr = format!("{ip}:7000").parse()?;
            wait_for("encrypted path up", Duration::from_secs(30), || {
                Ok(rtt_probe(&cli.pid_ns, enc).then_some(()))
            })?;
            let mut g_enc = 0f64;
            for _ in 0..2 {
                g_enc = g_enc.max(bulk(&cli.pid_ns, enc, ENC_BYTES)?);
            }
            println!(
                "encrypted overlay    {g_enc:8.2} Gbit/s   plain overlay {g_over:8.2} Gbit/s   ratio {:.2}",
                g_enc / g_over
            );
        }
        None => println!("encrypted overlay: srv has no address on it; skipped"),
    }
    let r_over = rtt(&cli.pid_ns, over)?;
    let r_under = rtt(&h1_ns, under)?;
    println!(
        "overlay throughput   {g_over:8.2} Gbit/s   underlay {g_under:8.2} Gbit/s   ratio {:.2}",
        g_over / g_under
    );
    println!(
        "overlay rtt p50/p99  {:>8.1?} / {:>8.1?}   underlay {:>8.1?} / {:>8.1?}   p50 ratio (underlay/overlay) {:.2}",
        pct(&r_over, 0.5),
        pct(&r_over, 0.99),
        pct(&r_under, 0.5),
        pct(&r_under, 0.99),
        pct(&r_under, 0.5).as_secs_f64() / pct(&r_over, 0.5).as_secs_f64()
    );

    // Routing mesh: node3 (no task) from node1's namespace (a LAN client), vs the underlay.
    if srv.ingress_ip.is_none() {
        println!("routing mesh: srv has no ingress address (no mesh allocation); skipped");
    } else {
        let mesh: SocketAddr = format!("{}:9000", lab.host(3).addr).parse()?;
        let up = wait_for("mesh port up", Duration::from_secs(30), || {
            Ok(requests_probe(&h1_ns, mesh).then_some(()))
        });
        match up {
            Err(e) => println!("routing mesh: {e}"),
            Ok(()) => {
                let (m_rate, m_p99) = requests(&h1_ns, mesh)?;
                let (d_rate, d_p99) = requests(&h1_ns, under)?;
                println!(
                    "routing mesh         {m_rate:8.0} req/s p99 {m_p99:>8.1?}   direct {d_rate:8.0} req/s p99 {d_p99:>8.1?}   ratio {:.2}",
                    m_rate / d_rate
                );
            }
        }
    }

    // Death → DNS removal as seen from the client on another node.
    let pid: i32 = srv
        .pid_ns
        .trim_start_matches("/proc/")
        .trim_end_matches("/ns/net")
        .parse()?;
    // The client is on both networks: tasks.srv answers from the first that has it.
    let srv_ips: Vec<String> = std::iter::once(srv.ip.clone())
        .chain(srv.sec_ip.clone())
        .collect();
    if !dns_has(&cli.pid_ns, "tasks.srv", &srv_ips)? {
        bail!("tasks.srv lists none of {srv_ips:?} before the kill");
    }
    let t0 = Instant::now();
    // SAFETY: a lab container's process, by PID.
    unsafe { libc::kill(pid, libc::SIGKILL) };
    let gone = wait_for("srv leaves DNS", Duration::from_secs(30), || {
        Ok((!dns_has(&cli.pid_ns, "tasks.srv", &srv_ips).unwrap_or(true)).then(|| t0.elapsed()))
    })?;
    println!("task death -> out of DNS on another node: {gone:.2?}");
    let _ = srv.container;
    stop.store(true, Ordering::Relaxed);
    Ok(())
}

fn rtt_probe(path: &str, to: SocketAddr) -> bool {
    in_path(path, move || {
        TcpStream::connect_timeout(&to, Duration::from_secs(1))
            .and_then(|mut s| s.write_all(b"E"))
            .is_ok()
    })
    .unwrap_or(false)
}

fn requests_probe(path: &str, to: SocketAddr) -> bool {
    in_path(path, move || -> bool {
        let Ok(mut s) = TcpStream::connect_timeout(&to, Duration::from_secs(1)) else {
            return false;
        };
        let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
        let mut r = Vec::new();
        s.write_all(b"GET").is_ok() && s.read_to_end(&mut r).is_ok() && r.ends_with(b"ok")
    })
    .unwrap_or(false)
}
