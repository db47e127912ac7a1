//! WireGuard keys of encrypted overlays on a 3-node lab: every node's public key is in its
//! node object on the managers (and its private key only in its own data root, mode 0600);
//! a forced rotation on one node (SIGUSR2) reaches the managers and every peer, traffic
//! between tasks across nodes keeps flowing (the longest silence is printed), and the devices'
//! peers are exactly the keys the managers publish (the old key is gone).

use anyhow::{Context, Result, anyhow};
use shoal_e2e::services::{container_netns, is_running, task_address, task_container, try_tasks};
use shoal_e2e::wireguard::{UapiSockets, uapi_socket};
use shoal_e2e::{Lab, in_netns_path, spawn_in_netns_path, wait_for};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, UdpSocket};
use std::os::unix::fs::PermissionsExt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

const ECHO_PORT: u16 = 7100;
/// One datagram every this often: the resolution of the measured gap.
const PACE: Duration = Duration::from_millis(20);

/// Each node's (public key, generation) as the managers store it, by hostname.
fn manager_keys(lab: &Lab) -> Result<BTreeMap<String, (String, u64)>> {
    let nodes = lab.host(1).api_get("/v1.47/nodes")?;
    let mut out = BTreeMap::new();
    for n in nodes.as_array().into_iter().flatten() {
        let host = n["Description"]["Hostname"]
            .as_str()
            .unwrap_or("")
            .to_string();
        let wg = &n["Description"]["WireGuard"];
        if let Some(pk) = wg["PublicKey"].as_str() {
            out.insert(
                host,
                (pk.to_string(), wg["Generation"].as_u64().unwrap_or(0)),
            );
        }
    }
    Ok(out)
}

/// The public keys of the peers on a host's WireGuard device, read over its UAPI socket.
fn device_peers(lab: &Lab, host: usize) -> Result<Vec<String>> {
    let sock = uapi_socket(lab.host(host));
    let mut s = std::os::unix::net::UnixStream::connect(&sock).with_context(|| sock.clone())?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    s.write_all(b"get=1\n\n")?;
    let mut peers = Vec::new();
    for line in BufReader::new(s).lines() {
        let line = line?;
        if line.is_empty() {
            break;
        }
        if let Some(hex) = line.strip_prefix("public_key=") {
            let raw: Vec<u8> = (0..hex.len() / 2)
                .filter_map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).ok())
                .collect();
            peers.push(b64(&raw));
        }
    }
    peers.sort();
    Ok(peers)
}

/// Standard base64 with padding (the form the managers store).
fn b64(raw: &[u8]) -> String {
    const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for c in raw.chunks(3) {
        let n = (u32::from(c[0]) << 16)
            | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
            | u32::from(*c.get(2).unwrap_or(&0));
        for i in 0..4 {
            if i <= c.len() {
                out.push(A[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

struct Task {
    /// `/proc/<pid>/ns/net` of its container.
    netns: String,
    /// Its address on the encrypted network.
    ip: String,
}

fn running_task(lab: &Lab, service: &str, network: &str) -> Result<Task> {
    let t = wait_for(
        &format!("{service} running"),
        Duration::from_secs(90),
        || {
            Ok(try_tasks(lab.host(1), service)?
                .into_iter()
                .find(is_running))
        },
    )?;
    let ip = task_address(&t, network)
        .ok_or_else(|| anyhow!("{service}: no address on the encrypted network"))?;
    Ok(Task {
        netns: container_netns(lab, task_container(&t))?,
        ip,
    })
}

/// A UDP echo server inside a task's namespace, until `stop`.
fn echo_server(netns: &str, stop: Arc<AtomicBool>) -> Result<JoinHandle<Result<Result<()>>>> {
    spawn_in_netns_path(netns, move || -> Result<()> {
        let s = UdpSocket::bind(("0.0.0.0", ECHO_PORT))?;
        s.set_read_timeout(Some(Duration::from_millis(100)))?;
        let mut buf = [0u8; 64];
        let deadline = Instant::now() + Duration::from_secs(300);
        while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
            if let Ok((n, from)) = s.recv_from(&mut buf) {
                let _ = s.send_to(&buf[..n], from);
            }
        }
        Ok(())
    })
}

/// Sends a numbered datagram every [`PACE`] and notes when each echo comes back, until `stop`.
fn echo_client(
    netns: &str,
    to: SocketAddr,
    stop: Arc<AtomicBool>,
) -> Result<JoinHandle<Result<Result<Vec<Instant>>>>> {
    spawn_in_netns_path(netns, move || -> Result<Vec<Instant>> {
        let s = UdpSocket::bind("0.0.0.0:0")?;
        s.connect(to)?;
        s.set_read_timeout(Some(Duration::from_millis(5)))?;
        let mut replies = Vec::new();
        let mut seq: u64 = 0;
        let mut buf = [0u8; 64];
        let deadline = Instant::now() + Duration::from_secs(300);
        while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
            let next = Instant::now() + PACE;
            seq += 1;
            // An unreachable peer may refuse a send for a moment: keep trying.
            let _ = s.send(&seq.to_be_bytes());
            while Instant::now() < next {
                if let Ok(n) = s.recv(&mut buf)
                    && n == 8
                {
                    replies.push(Instant::now());
                }
            }
        }
        Ok(replies)
    })
}

/// One echo from `netns` to `to` within a second?
fn echo_once(netns: &str, to: SocketAddr) -> bool {
    let echoed = in_netns_path(netns, move || -> Result<bool> {
        let s = UdpSocket::bind("0.0.0.0:0")?;
        s.connect(to)?;
        s.set_read_timeout(Some(Duration::from_millis(200)))?;
        let mut buf = [0u8; 64];
        for _ in 0..5 {
            s.send(b"probe-01")?;
            if matches!(s.recv(&mut buf), Ok(8)) {
                return Ok(true);
            }
        }
        Ok(false)
    });
    matches!(echoed, Ok(Ok(true)))
}

#[test]
fn keys_come_from_the_managers_and_rotate_without_breaking_traffic() -> Result<()> {
    let lab = Lab::swarm_with_images(3, "busybox.tar")?;
    let _sockets = UapiSockets::of(&lab.hosts);
    let h1 = lab.host(1);
    let net = h1
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
    for (name, node) in [("a", "node1"), ("b", "node2"), ("c", "node3")] {
        h1.docker(&[
            "service",
            "create",
            "-d",
            "--name",
            name,
            "--network",
            "sec",
            "--constraint",
            &format!("node.hostname=={node}"),
            "shoal-test/busybox:latest",
            "sleep",
            "3600",
        ])?;
    }
    let a = running_task(&lab, "a", &net)?;
    let b = running_task(&lab, "b", &net)?;
    let c = running_task(&lab, "c", &net)?;

    // Every node's public key is on the managers, distinct, first generation.
    let keys = wait_for(
        "every node's key on the managers",
        Duration::from_secs(30),
        || {
            let k = manager_keys(&lab)?;
            Ok((k.len() == 3).then_some(k))
        },
    )?;
    println!("keys on the managers: {keys:?}");
    let mut distinct: Vec<&String> = keys.values().map(|(k, _)| k).collect();
    distinct.sort();
    distinct.dedup();
    assert_eq!(distinct.len(), 3, "keys must differ per node: {keys:?}");
    assert!(
        keys.values().all(|(k, g)| k.len() == 44 && *g == 1),
        "{keys:?}"
    );
    // The private key stays on its node: readable by root only, never in the node object.
    let key_file = lab.host(2).data_root().join("netplane/wireguard.key");
    let mode = std::fs::metadata(&key_file)
        .with_context(|| key_file.display().to_string())?
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "{}", key_file.display());
    let private = std::fs::read_to_string(&key_file)?;
    let nodes_json = h1.api_get("/v1.47/nodes")?.to_string();
    assert!(
        !nodes_json.contains(private.trim()),
        "a private key left its node"
    );

    // Traffic between tasks on all three nodes over the encrypted overlay.
    let stop = Arc::new(AtomicBool::new(false));
    let server = echo_server(&b.netns, stop.clone())?;
    let to_b: SocketAddr = format!("{}:{ECHO_PORT}", b.ip).parse()?;
    wait_for(
        "a reaches b over the encrypted overlay",
        Duration::from_secs(30),
        || Ok(echo_once(&a.netns, to_b).then_some(())),
    )?;
    wait_for(
        "c reaches b over the encrypted overlay",
        Duration::from_secs(30),
        || Ok(echo_once(&c.netns, to_b).then_some(())),
    )?;
    let old_b = keys["node2"].0.clone();
    assert_eq!(
        device_peers(&lab, 1)?,
        {
            let mut v = vec![old_b.clone(), keys["node3"].0.clone()];
            v.sort();
            v
        },
        "node1's peers are the other nodes' keys from the managers"
    );

    // Force a rotation on node2 while a sends to b every 20 ms.
    let client = echo_client(&a.netns, to_b, stop.clone())?;
    std::thread::sleep(Duration::from_secs(1));
    let pid = lab
        .host(2)
        .pid()
        .ok_or_else(|| anyhow!("node2 has no daemon"))?;
    let t_rotate = Instant::now();
    // SAFETY: the lab's own daemon process, by PID.
    unsafe { libc::kill(pid as i32, libc::SIGUSR2) };
    let new_b = wait_for(
        "node2's new key on the managers",
        Duration::from_secs(30),
        || {
            let k = manager_keys(&lab)?;
            Ok(k.get("node2")
                .filter(|(pk, g)| *pk != old_b && *g == 2)
                .map(|(pk, _)| pk.clone()))
        },
    )?;
    let published = t_rotate.elapsed();
    // Every peer replaces the key: node1's device holds the new one, never the old one.
    wait_for(
        "node1's device has node2's new key",
        Duration::from_secs(15),
        || {
            let p = device_peers(&lab, 1)?;
            Ok((p.contains(&new_b) && !p.contains(&old_b)).then_some(()))
        },
    )?;
    wait_for(
        "node3's device has node2's new key",
        Duration::from_secs(15),
        || {
            let p = device_peers(&lab, 3)?;
            Ok((p.contains(&new_b) && !p.contains(&old_b)).then_some(()))
        },
    )?;
    std::thread::sleep(Duration::from_secs(4));
    stop.store(true, Ordering::Relaxed);
    let replies = client
        .join()
        .map_err(|_| anyhow!("client thread panicked"))???;
    server
        .join()
        .map_err(|_| anyhow!("server thread panicked"))???;

    let window: Vec<Instant> = replies.into_iter().filter(|t| *t >= t_rotate).collect();
    let end = t_rotate + published + Duration::from_secs(4);
    assert!(
        window.len() > 10,
        "almost no echoes after the rotation ({} in the window)",
        window.len()
    );
    let mut gap = window[0].duration_since(t_rotate);
    for w in window.windows(2) {
        gap = gap.max(w[1].duration_since(w[0]));
    }
    let last = *window.last().unwrap_or(&t_rotate);
    assert!(
        last + Duration::from_secs(1) >= end.min(Instant::now()),
        "echoes stopped before the end of the run"
    );
    println!(
        "rotation on node2: new key (generation 2) on the managers after {published:.2?}; \
         longest silence of a->b traffic (a datagram every {PACE:?}) around the rotation: {gap:.2?}; \
         {} echoes in the {:.1?} window",
        window.len(),
        last.duration_since(t_rotate)
    );
    assert!(gap < Duration::from_secs(6), "traffic stopped for {gap:?}");
    // c on node3 reaches b with the new key too.
    let stop2 = Arc::new(AtomicBool::new(false));
    let server = echo_server(&b.netns, stop2.clone())?;
    let again = wait_for(
        "c reaches b after the rotation",
        Duration::from_secs(10),
        || Ok(echo_once(&c.netns, to_b).then_some(())),
    );
    stop2.store(true, Ordering::Relaxed);
    let _ = server.join();
    again?;
    let after = manager_keys(&lab)?;
    assert_eq!(after["node1"], keys["node1"], "only node2 rotated");
    assert_eq!(after["node3"], keys["node3"], "only node2 rotated");
    Ok(())
}
