//! Encrypted overlay figures on a 2-node lab (root; `deploy/bench/encrypted.sh` builds a release
//! `shoal` and runs this): TCP throughput and round-trip latency between two task containers on
//! different nodes over an `--opt encrypted` overlay (VXLAN inside userspace WireGuard) against
//! the same two containers over a plain overlay.
//!
//! Both paths use the same tool (this program's threads entered into the containers' network
//! namespaces) and the same byte counts. The lab shares its CPUs with whatever else runs, so
//! each figure is the median of rounds that alternate plain and encrypted (the order flips every
//! round), and the ratio is the median of the per-round ratios. Every run is printed.
//! `SHOAL_BENCH_ROUNDS` sets the number of rounds (default 5). All traffic stays in the lab.
//! It also prints the packets the kernel dropped at each node's WireGuard TUN during the
//! rounds (the userspace device reading its queue too slowly costs TCP retransmissions).

use anyhow::{Result, anyhow, bail};
use shoal_e2e::bench::{echo_reachable, env_count, median};
use shoal_e2e::services::{container_netns, is_running, task_address, task_container, try_tasks};
use shoal_e2e::wireguard::UapiSockets;
use shoal_e2e::{Lab, in_netns_path, wait_for};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

/// Bytes per throughput run, written in `CHUNK` pieces.
const BULK_BYTES: usize = 256 << 20;
const CHUNK: usize = 128 << 10;
const RTT_ROUNDS: usize = 2000;
const PORT: u16 = 7000;

/// Per connection: sink everything (`B`) or echo byte for byte (`E`). Runs until the process
/// ends (the listener lives in the server container's namespace).
fn serve(l: TcpListener) {
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { continue };
            std::thread::spawn(move || {
                let _ = s.set_nodelay(true);
                let mut mode = [0u8; 1];
                if s.read_exact(&mut mode).is_err() {
                    return;
                }
                let mut buf = vec![0u8; CHUNK];
                match mode[0] {
                    b'B' => {
                        while matches!(s.read(&mut buf), Ok(n) if n > 0) {}
                        let _ = s.write_all(b"k");
                    }
                    _ => {
                        let mut one = [0u8; 1];
                        while s.read_exact(&mut one).is_ok() {
                            if s.write_all(&one).is_err() {
                                break;
                            }
                        }
                    }
                }
            });
        }
    });
}

/// Gbit/s of one bulk transfer, counted until the receiver has read everything.
fn bulk(path: &str, to: SocketAddr) -> Result<f64> {
    in_netns_path(path, move || -> Result<f64> {
        let mut s = TcpStream::connect_timeout(&to, Duration::from_secs(5))?;
        s.write_all(b"B")?;
        let chunk = vec![0x5au8; CHUNK];
        let start = Instant::now();
        let mut sent = 0;
        while sent < BULK_BYTES {
            s.write_all(&chunk)?;
            sent += chunk.len();
        }
        s.shutdown(std::net::Shutdown::Write)?;
        let mut ack = [0u8; 1];
        s.read_exact(&mut ack)?;
        Ok(sent as f64 * 8.0 / start.elapsed().as_secs_f64() / 1e9)
    })?
}

/// Median one-byte round trip.
fn rtt(path: &str, to: SocketAddr) -> Result<Duration> {
    in_netns_path(path, move || -> Result<Duration> {
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
        Ok(out[out.len() / 2])
    })?
}

struct Task {
    /// `/proc/<pid>/ns/net` of its container.
    netns: String,
    /// The task's running-state object from the API.
    task: serde_json::Value,
}

impl Task {
    fn ip_on(&self, net: &str) -> Result<String> {
        task_address(&self.task, net).ok_or_else(|| anyhow!("no address on network {net}"))
    }
}

fn one_task(lab: &Lab, service: &str) -> Result<Task> {
    let task = wait_for(
        &format!("{service} running"),
        Duration::from_secs(90),
        || {
            Ok(try_tasks(lab.host(1), service)?
                .into_iter()
                .find(is_running))
        },
    )?;
    Ok(Task {
        netns: container_netns(lab, task_container(&task))?,
        task,
    })
}

fn main() -> Result<()> {
    let rounds = env_count("SHOAL_BENCH_ROUNDS", 5)?;
    let lab = Lab::swarm_with_images(2, "busybox.tar")?;
    let _sockets = UapiSockets::of(&lab.hosts);
    let h1 = lab.host(1);
    let plain = h1
        .docker(&["network", "create", "-d", "overlay", "plain"])?
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
            "sec",
        ])?
        .trim()
        .to_string();
    for (name, node) in [("srv", "node2"), ("cli", "node1")] {
        h1.docker(&[
            "service",
            "create",
            "-d",
            "--name",
            name,
            "--network",
            "plain",
            "--network",
            "sec",
            "--constraint",
            &format!("node.hostname=={node}"),
            "shoal-test/busybox:latest",
            "sleep",
            "3600",
        ])?;
    }
    let srv = one_task(&lab, "srv")?;
    let cli = one_task(&lab, "cli")?;
    let l = in_netns_path(&srv.netns, || TcpListener::bind(("0.0.0.0", PORT)))??;
    serve(l);
    let to_plain: SocketAddr = format!("{}:{PORT}", srv.ip_on(&plain)?).parse()?;
    let to_sec: SocketAddr = format!("{}:{PORT}", srv.ip_on(&sec)?).parse()?;
    for (what, to) in [("plain", to_plain), ("encrypted", to_sec)] {
        wait_for(
            &format!("{what} overlay path up"),
            Duration::from_secs(30),
            || Ok(echo_reachable(&cli.netns, to).then_some(())),
        )?;
    }
    // Warm both paths (handshakes, ARP, TCP windows) before measuring.
    bulk(&cli.netns, to_plain)?;
    bulk(&cli.netns, to_sec)?;

    let drops_before = tun_drops(&lab)?;
    let (mut g_plain, mut g_sec, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
    for r in 0..rounds {
        let (p, s) = if r % 2 == 0 {
            let p = bulk(&cli.netns, to_plain)?;
            (p, bulk(&cli.netns, to_sec)?)
        } else {
            let s = bulk(&cli.netns, to_sec)?;
            (bulk(&cli.netns, to_plain)?, s)
        };
        println!("round {r}: plain overlay {p:6.2} Gbit/s   encrypted overlay {s:6.2} Gbit/s");
        g_plain.push(p);
        g_sec.push(s);
        ratios.push(s / p);
    }
    for ((host, before), (_, after)) in drops_before.iter().zip(tun_drops(&lab)?) {
        let (sent, dropped) = (after.0 - before.0, after.1 - before.1);
        println!(
            "{host}: during the rounds the kernel queued {sent} packets to the WireGuard TUN and dropped {dropped} more ({:.1} %) because the device had not read its queue",
            dropped as f64 * 100.0 / (sent + dropped).max(1) as f64
        );
    }
    let r_plain = rtt(&cli.netns, to_plain)?;
    let r_sec = rtt(&cli.netns, to_sec)?;
    println!(
        "TCP throughput (median of {rounds}, {} MiB each): encrypted overlay {:6.2} Gbit/s   plain overlay {:6.2} Gbit/s   ratio {:.2}",
        BULK_BYTES >> 20,
        median(&g_sec),
        median(&g_plain),
        median(&ratios)
    );
    println!(
        "TCP rtt p50: encrypted overlay {r_sec:>8.1?}   plain overlay {r_plain:>8.1?}   ratio {:.2}",
        r_sec.as_secs_f64() / r_plain.as_secs_f64()
    );
    Ok(())
}

/// Per host: (packets the kernel sent into the WireGuard TUN, packets it dropped because the
/// device's queue was full), from the device's counters in the host's namespace.
fn tun_drops(lab: &Lab) -> Result<Vec<(String, (u64, u64))>> {
    let mut out = Vec::new();
    for h in &lab.hosts {
        // The device is named like its UAPI socket (`/var/run/wireguard/<dev>.sock`).
        let sock = shoal_e2e::wireguard::uapi_socket(h);
        let dev = std::path::Path::new(&sock)
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .ok_or_else(|| anyhow!("no device name in {sock}"))?;
        let path = format!("/run/netns/{}", h.netns);
        let json = in_netns_path(&path, move || {
            std::process::Command::new("ip")
                .args(["-s", "-j", "link", "show", "dev", &dev])
                .output()
        })??;
        if !json.status.success() {
            bail!(
                "ip link show in {}: {}",
                h.netns,
                String::from_utf8_lossy(&json.stderr).trim()
            );
        }
        let v: serde_json::Value = serde_json::from_slice(&json.stdout)?;
        let tx = &v[0]["stats64"]["tx"];
        let count = |k: &str| {
            tx[k]
                .as_u64()
                .ok_or_else(|| anyhow!("no tx {k} in ip's answer"))
        };
        out.push((h.name.clone(), (count("packets")?, count("dropped")?)));
    }
    Ok(out)
}
