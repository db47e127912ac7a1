//! Overlay networking on a 3-node lab with real containers: services on one overlay talk across
//! nodes by service name, `tasks.<svc>` lists the task addresses, the VIP spreads over tasks on
//! two nodes, a published port answers on a node running none of the tasks, scaling down drops
//! the task from DNS and the VIP within seconds, and removing everything leaves no namespaces.

use anyhow::{Result, anyhow, bail};
use shoal_e2e::probe::{busybox_in, http_body, http_get_in, http_request, nslookup_in};
use shoal_e2e::services::{container_pid, running, task_container, wait_no_containers};
use shoal_e2e::{
    Lab, LabOptions, in_ns, netplane_namespaces, netplane_prefix, run, run_stdin, test_images,
    wait_for,
};
use std::collections::BTreeSet;
use std::time::{Duration, Instant};

/// What the httpd test image serves on `/`.
const MARKER: &str = "shoal-test-httpd-ok";

#[derive(Debug, Clone)]
struct RunningTask {
    id: String,
    node_id: String,
    container: String,
    /// Address on the network with this name prefix of its ID (CIDR stripped).
    addrs: Vec<(String, String)>,
}

fn running_tasks(lab: &Lab, service: &str) -> Vec<RunningTask> {
    running(lab.host(1), service)
        .iter()
        .map(|t| RunningTask {
            id: t["ID"].as_str().unwrap_or("").to_string(),
            node_id: t["NodeID"].as_str().unwrap_or("").to_string(),
            container: task_container(t).to_string(),
            addrs: t["NetworksAttachments"]
                .as_array()
                .into_iter()
                .flatten()
                .flat_map(|a| {
                    let net = a["Network"]["ID"].as_str().unwrap_or("").to_string();
                    a["Addresses"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(|x| x.as_str())
                        .map(|x| (net.clone(), x.split('/').next().unwrap_or("").to_string()))
                        .collect::<Vec<_>>()
                })
                .collect(),
        })
        .collect()
}

/// The running tasks of `service` once there are exactly `n` of them (within a minute).
fn wait_running(lab: &Lab, service: &str, n: usize) -> Result<Vec<RunningTask>> {
    wait_for(
        &format!("{n} running {service} task(s)"),
        Duration::from_secs(60),
        || {
            let t = running_tasks(lab, service);
            Ok((t.len() == n).then_some(t))
        },
    )
}

/// Lab host index (1-based) of a node ID.
fn host_of(lab: &Lab, node_id: &str) -> Result<usize> {
    let nodes = lab.host(1).api_get("/v1.47/nodes")?;
    let name = nodes
        .as_array()
        .into_iter()
        .flatten()
        .find(|n| n["ID"] == node_id)
        .and_then(|n| n["Description"]["Hostname"].as_str())
        .ok_or_else(|| anyhow!("node {node_id} not listed"))?;
    name.strip_prefix("node")
        .and_then(|i| i.parse().ok())
        .ok_or_else(|| anyhow!("unexpected hostname {name}"))
}

/// Run a busybox applet inside a running container (its network and mount namespaces, its
/// root, so its own resolv.conf).
fn in_container(lab: &Lab, container: &str, args: &[&str]) -> Result<String> {
    busybox_in(&container_pid(lab, container)?, args)
}

/// The body of `GET path` to `host:80` from inside a container (its resolv.conf, its DNS).
fn http_in_container(lab: &Lab, container: &str, host: &str, path: &str) -> Result<String> {
    http_get_in(&container_pid(lab, container)?, host, path)
}

/// The body of `GET /` to `addr:port` from a lab host's namespace (a client on the LAN).
fn http_from_host(ns: &str, addr: &str, port: &str) -> Result<String> {
    let out = run_stdin(
        "ip",
        &["netns", "exec", ns, "busybox", "nc", "-w", "3", addr, port],
        &http_request("/"),
    )?;
    http_body(&out)
}

fn nslookup(lab: &Lab, container: &str, name: &str) -> Result<BTreeSet<String>> {
    nslookup_in(&container_pid(lab, container)?, name)
}

fn front_ips(tasks: &[RunningTask], net: &str) -> BTreeSet<String> {
    tasks
        .iter()
        .flat_map(|t| {
            t.addrs
                .iter()
                .filter(|(n, _)| n == net)
                .map(|(_, a)| a.clone())
        })
        .collect()
}

#[test]
fn overlay_services_by_name_vip_mesh_scale_and_cleanup() {
    let lab = Lab::swarm_with_images(3, "both.tar").unwrap();
    let h1 = lab.host(1);
    let net = h1
        .docker(&["network", "create", "-d", "overlay", "front"])
        .unwrap()
        .trim()
        .to_string();
    assert!(!net.is_empty(), "network create printed no ID");
    h1.docker(&[
        "service",
        "create",
        "-d",
        "--name",
        "web",
        "--replicas",
        "2",
        "--network",
        "front",
        "-p",
        "8080:80",
        "shoal-test/httpd:latest",
        "sh",
        "-c",
        "hostname > /www/host; exec httpd -f -p 80 -h /www",
    ])
    .unwrap();
    h1.docker(&[
        "service",
        "create",
        "-d",
        "--name",
        "client",
        "--network",
        "front",
        "shoal-test/busybox:latest",
        "sleep",
        "600",
    ])
    .unwrap();
    let web = wait_running(&lab, "web", 2).unwrap();
    let client = wait_for("a running client task", Duration::from_secs(60), || {
        Ok(running_tasks(&lab, "client").pop())
    })
    .unwrap();
    let web_nodes: BTreeSet<usize> = web
        .iter()
        .map(|t| host_of(&lab, &t.node_id).unwrap())
        .collect();
    assert_eq!(web_nodes.len(), 2, "web replicas not spread: {web:?}");
    let ips = front_ips(&web, &net);
    assert_eq!(ips.len(), 2, "web tasks' addresses on front: {web:?}");

    // By service name (VIP) across nodes, from inside the client container.
    let c = client.container.clone();
    let page = wait_for(
        "client reaches web by name",
        Duration::from_secs(30),
        || {
            let out = http_in_container(&lab, &c, "web", "/")?;
            Ok(out.contains(MARKER).then_some(out))
        },
    )
    .unwrap();
    assert!(page.contains(MARKER));

    // `network inspect` on node1 shows its local endpoints and the nodes of the overlay.
    let node1_id = lab.host(1).api_get("/v1.47/info").unwrap()["Swarm"]["NodeID"]
        .as_str()
        .unwrap_or("")
        .to_string();
    let local: BTreeSet<String> = web
        .iter()
        .chain([&client])
        .filter(|t| t.node_id == node1_id)
        .map(|t| t.container.clone())
        .collect();
    if !local.is_empty() {
        let inspect = wait_for(
            "network inspect shows endpoints",
            Duration::from_secs(10),
            || {
                let v = h1.api_get(&format!("/v1.47/networks/{net}"))?;
                let shown: BTreeSet<String> = v["Containers"]
                    .as_object()
                    .map(|m| m.keys().cloned().collect())
                    .unwrap_or_default();
                Ok((shown == local).then_some(v))
            },
        )
        .unwrap();
        let peers = inspect["Peers"].as_array().map(|a| a.len()).unwrap_or(0);
        assert!(peers >= 2, "peers of front: {inspect}");
    }

    // tasks.<svc> lists the task addresses; <svc> is one VIP.
    let listed = wait_for("tasks.web lists both", Duration::from_secs(10), || {
        let got = nslookup(&lab, &c, "tasks.web")?;
        Ok((got == ips).then_some(got))
    })
    .unwrap();
    assert_eq!(listed, ips);
    let vip = nslookup(&lab, &c, "web").unwrap();
    assert_eq!(vip.len(), 1, "web resolves to one VIP: {vip:?}");
    assert!(ips.is_disjoint(&vip), "the VIP is not a task address");

    // Connections to the VIP reach tasks on both nodes.
    let hosts_seen = wait_for("VIP spreads over 2 tasks", Duration::from_secs(20), || {
        let mut seen = BTreeSet::new();
        for _ in 0..30 {
            let out = http_in_container(&lab, &c, "web", "/host")?;
            seen.insert(out.trim().to_string());
        }
        Ok((seen.len() == 2).then_some(seen))
    })
    .unwrap();
    assert_eq!(hosts_seen.len(), 2);

    // The routing mesh: 8080 answers on the node that runs no web task, from a LAN client
    // (another lab host's namespace).
    let idle = (1..=3).find(|i| !web_nodes.contains(i)).unwrap();
    let from = lab.host(if idle == 1 { 2 } else { 1 }).netns.clone();
    let idle_addr = lab.host(idle).addr.clone();
    let mesh = wait_for(
        "published port on an idle node",
        Duration::from_secs(30),
        || {
            let out = http_from_host(&from, &idle_addr, "8080")?;
            Ok(out.contains(MARKER).then_some(out))
        },
    )
    .unwrap();
    assert!(mesh.contains(MARKER));

    // Scale down: the gone task leaves DNS and the VIP set within seconds.
    h1.docker(&["service", "scale", "-d", "web=1"]).unwrap();
    let left = wait_running(&lab, "web", 1).unwrap();
    let t0 = Instant::now();
    let remaining = front_ips(&left, &net);
    wait_for("tasks.web shrinks", Duration::from_secs(5), || {
        Ok((nslookup(&lab, &c, "tasks.web")? == remaining).then_some(()))
    })
    .unwrap();
    let survivor = http_in_container(&lab, &c, "web", "/host")
        .unwrap()
        .trim()
        .to_string();
    for _ in 0..15 {
        let out = http_in_container(&lab, &c, "web", "/host").unwrap();
        assert_eq!(
            out.trim(),
            survivor,
            "a VIP connection went to a removed task"
        );
    }
    eprintln!("scale-down to DNS/VIP convergence: {:?}", t0.elapsed());

    // Remove everything: no task or overlay namespace of `front` stays on any node.
    let all_tasks: Vec<String> = web.iter().chain([&client]).map(|t| t.id.clone()).collect();
    h1.docker(&["service", "rm", "web", "client"]).unwrap();
    wait_no_containers(&lab, Duration::from_secs(60)).unwrap();
    wait_for("network rm", Duration::from_secs(30), || {
        Ok(h1.docker(&["network", "rm", "front"]).is_ok().then_some(()))
    })
    .unwrap();
    // Only the ingress overlay (the node's routing-mesh endpoint) stays while in the swarm.
    wait_for(
        "task and overlay namespaces removed",
        Duration::from_secs(20),
        || {
            let mut left = Vec::new();
            for h in &lab.hosts {
                for n in netplane_namespaces(&h.data_root()) {
                    if !n.ends_with("ov-4096") || all_tasks.iter().any(|t| n.ends_with(t.as_str()))
                    {
                        left.push(n);
                    }
                }
            }
            Ok(left.is_empty().then_some(()))
        },
    )
    .unwrap();
    for h in &lab.hosts {
        let links = in_ns(&h.netns, &["ip", "-o", "link"]).unwrap();
        if links.contains("shvx") {
            panic!("a temporary VXLAN device stayed on {}: {links}", h.name);
        }
    }
}

/// The mesh also answers for a service published after the nodes joined, and stops answering
/// once the service is gone (the port is refused, not hanging).
#[test]
fn published_port_goes_away_with_its_service() -> Result<()> {
    let lab = Lab::swarm_with_images(2, "both.tar")?;
    let h1 = lab.host(1);
    h1.docker(&[
        "service",
        "create",
        "-d",
        "--name",
        "pub",
        "-p",
        "8081:80",
        "shoal-test/httpd:latest",
    ])?;
    let from = lab.host(2).netns.clone();
    for target in [1, 2] {
        let addr = lab.host(target).addr.clone();
        wait_for("published port", Duration::from_secs(60), || {
            let out = http_from_host(&from, &addr, "8081")?;
            Ok(out.contains(MARKER).then_some(()))
        })?;
    }
    h1.docker(&["service", "rm", "pub"])?;
    let addr = lab.host(1).addr.clone();
    wait_for(
        "port closed",
        Duration::from_secs(30),
        || match http_from_host(&from, &addr, "8081") {
            Ok(_) => Ok(None),
            Err(e) if e.to_string().contains("refused") => Ok(Some(())),
            Err(e) => bail!("unexpected: {e}"),
        },
    )?;
    Ok(())
}

/// A daemon killed with -9 and restarted: its containers keep running and keep their network
/// (the kernel state outlives the daemon), and the restarted daemon adopts it: DNS answers
/// again, gossip repopulates, the mesh answers on that node, no namespace is duplicated.
#[test]
fn daemon_restart_keeps_and_adopts_container_networking() -> Result<()> {
    let images = test_images()?;
    let mut lab = Lab::new(LabOptions {
        hosts: 2,
        daemon_args: Vec::new(),
    })?;
    lab.form_cluster(1)?;
    for h in &lab.hosts {
        h.docker(&["load", "-i", &images.join("both.tar").to_string_lossy()])?;
    }
    wait_for("2 ready nodes", Duration::from_secs(30), || {
        let out = lab.host(1).shoal(&["node", "ls"])?;
        Ok((out.matches("Ready").count() == 2).then_some(()))
    })?;
    let h1 = lab.host(1);
    let net = h1
        .docker(&["network", "create", "-d", "overlay", "front"])?
        .trim()
        .to_string();
    h1.docker(&[
        "service",
        "create",
        "-d",
        "--name",
        "web",
        "--replicas",
        "2",
        "--network",
        "front",
        "-p",
        "8082:80",
        "shoal-test/httpd:latest",
    ])?;
    h1.docker(&[
        "service",
        "create",
        "-d",
        "--name",
        "client",
        "--network",
        "front",
        "--constraint",
        "node.hostname==node2",
        "shoal-test/busybox:latest",
        "sleep",
        "600",
    ])?;
    let web = wait_running(&lab, "web", 2)?;
    let client = wait_for("client running", Duration::from_secs(60), || {
        Ok(running_tasks(&lab, "client").pop())
    })?;
    let c = client.container.clone();
    let ips = front_ips(&web, &net);
    wait_for("tasks.web before restart", Duration::from_secs(30), || {
        Ok((nslookup(&lab, &c, "tasks.web")? == ips).then_some(()))
    })?;
    let before = netplane_namespaces(&lab.host(2).data_root());

    let pid = container_pid(&lab, &c)?;
    lab.host_mut(2).kill9();
    // The data plane is kernel state: with the daemon dead, task addresses still answer.
    for ip in &ips {
        let out = http_get_in(&pid, ip, "/")?;
        assert!(
            out.contains(MARKER),
            "{ip} while node2's daemon is down: {out}"
        );
    }
    lab.host_mut(2).start()?;
    let again = wait_for("DNS back after restart", Duration::from_secs(60), || {
        Ok((nslookup(&lab, &c, "tasks.web").ok() == Some(ips.clone())).then_some(()))
    });
    again?;
    let out = http_in_container(&lab, &c, "web", "/")?;
    assert!(out.contains(MARKER), "{out}");
    let client_now = running_tasks(&lab, "client")
        .pop()
        .ok_or_else(|| anyhow!("client not running after restart"))?;
    assert_eq!(client_now.container, c, "the client container was replaced");
    let after = netplane_namespaces(&lab.host(2).data_root());
    assert_eq!(before, after, "namespaces changed across the restart");
    let from = lab.host(1).netns.clone();
    let addr = lab.host(2).addr.clone();
    wait_for(
        "mesh on the restarted node",
        Duration::from_secs(30),
        || {
            let out = http_from_host(&from, &addr, "8082")?;
            Ok(out.contains(MARKER).then_some(()))
        },
    )?;
    Ok(())
}

/// An `encrypted` overlay: HTTP between containers on two nodes works, and a capture on the
/// underlay shows WireGuard only: no VXLAN (4789) and never the page's marker in clear.
#[test]
fn encrypted_overlay_carries_nothing_in_clear() -> Result<()> {
    let lab = Lab::swarm_with_images(2, "both.tar")?;
    let h1 = lab.host(1);
    h1.docker(&[
        "network",
        "create",
        "-d",
        "overlay",
        "--opt",
        "encrypted",
        "sec",
    ])?;
    h1.docker(&[
        "service",
        "create",
        "-d",
        "--name",
        "web",
        "--network",
        "sec",
        "--constraint",
        "node.hostname==node1",
        "shoal-test/httpd:latest",
    ])?;
    h1.docker(&[
        "service",
        "create",
        "-d",
        "--name",
        "client",
        "--network",
        "sec",
        "--constraint",
        "node.hostname==node2",
        "shoal-test/busybox:latest",
        "sleep",
        "600",
    ])?;
    let client = wait_for("client running", Duration::from_secs(60), || {
        Ok(running_tasks(&lab, "client").pop())
    })?;
    wait_for("web running", Duration::from_secs(60), || {
        Ok(running_tasks(&lab, "web").pop())
    })?;
    let c = client.container.clone();
    wait_for(
        "client reaches web over the encrypted overlay",
        Duration::from_secs(30),
        || {
            Ok(http_in_container(&lab, &c, "web", "/")?
                .contains(MARKER)
                .then_some(()))
        },
    )?;

    // Capture node2's underlay while fetching the page again.
    let pcap = lab.dir.path().join("underlay.pcap");
    let pcap_s = pcap.to_string_lossy().to_string();
    let mut dump = std::process::Command::new("ip")
        .args([
            "netns",
            "exec",
            &lab.host(2).netns,
            "tcpdump",
            "-i",
            "eth0",
            "-U",
            "-s",
            "0",
            "-w",
            &pcap_s,
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()?;
    std::thread::sleep(Duration::from_millis(800));
    let mut fetched = 0;
    for _ in 0..5 {
        if http_in_container(&lab, &c, "web", "/")?.contains(MARKER) {
            fetched += 1;
        }
    }
    std::thread::sleep(Duration::from_millis(500));
    // SAFETY: the tcpdump we started, by PID.
    unsafe { libc::kill(dump.id() as i32, libc::SIGTERM) };
    let _ = dump.wait();
    assert_eq!(fetched, 5, "the page did not come through every time");
    let raw = std::fs::read(&pcap)?;
    assert!(raw.len() > 24, "empty capture");
    assert!(
        !raw.windows(MARKER.len()).any(|w| w == MARKER.as_bytes()),
        "the marker crossed the underlay in clear"
    );
    let vxlan = run("tcpdump", &["-n", "-r", &pcap_s, "udp port 4789"])?;
    assert!(
        vxlan.trim().is_empty(),
        "bare VXLAN on the underlay: {vxlan}"
    );
    let wg = run("tcpdump", &["-n", "-r", &pcap_s, "udp port 51820"])?;
    assert!(
        wg.lines().count() >= 5,
        "no WireGuard traffic captured: {wg}"
    );
    // Every peer, this node included, is listed by its tunnel address (its VTEP here).
    let inspect = h1.api_get("/v1.47/networks/sec")?;
    let peer_ips: Vec<&str> = inspect["Peers"]
        .as_array()
        .map(|a| a.iter().filter_map(|p| p["IP"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(peer_ips.len(), 2, "peers of sec: {inspect}");
    for h in &lab.hosts {
        assert!(
            !peer_ips.contains(&h.addr.as_str()),
            "an underlay address among the encrypted network's peers: {peer_ips:?}"
        );
    }
    Ok(())
}

/// A task whose healthcheck fails leaves `tasks.<svc>` (and the VIP set) and comes back once
/// healthy again.
#[test]
fn unhealthy_task_leaves_service_discovery() -> Result<()> {
    let lab = Lab::swarm_with_images(2, "both.tar")?;
    let h1 = lab.host(1);
    let net = h1
        .docker(&["network", "create", "-d", "overlay", "front"])?
        .trim()
        .to_string();
    h1.docker(&[
        "service",
        "create",
        "-d",
        "--name",
        "web",
        "--network",
        "front",
        "--constraint",
        "node.hostname==node1",
        "--health-cmd",
        "cat /tmp/ok",
        "--health-interval",
        "1s",
        "--health-retries",
        "1",
        "--health-start-period",
        "0s",
        "shoal-test/httpd:latest",
        "sh",
        "-c",
        "touch /tmp/ok; exec httpd -f -p 80 -h /www",
    ])?;
    h1.docker(&[
        "service",
        "create",
        "-d",
        "--name",
        "client",
        "--network",
        "front",
        "--constraint",
        "node.hostname==node2",
        "shoal-test/busybox:latest",
        "sleep",
        "600",
    ])?;
    let web = wait_for("web running", Duration::from_secs(60), || {
        Ok(running_tasks(&lab, "web").pop())
    })?;
    let client = wait_for("client running", Duration::from_secs(60), || {
        Ok(running_tasks(&lab, "client").pop())
    })?;
    let ip = front_ips(std::slice::from_ref(&web), &net);
    let c = client.container.clone();
    wait_for("tasks.web lists the task", Duration::from_secs(30), || {
        Ok((nslookup(&lab, &c, "tasks.web").ok() == Some(ip.clone())).then_some(()))
    })?;
    in_container(&lab, &web.container, &["rm", "/tmp/ok"])?;
    wait_for("unhealthy task withdrawn", Duration::from_secs(15), || {
        Ok(nslookup(&lab, &c, "tasks.web").is_err().then_some(()))
    })?;
    in_container(&lab, &web.container, &["touch", "/tmp/ok"])?;
    wait_for("healthy task back", Duration::from_secs(15), || {
        Ok((nslookup(&lab, &c, "tasks.web").ok() == Some(ip.clone())).then_some(()))
    })?;
    Ok(())
}

/// A node cut off and healed: afterwards DNS on every side lists exactly the running tasks
/// and the service answers by name again (gossip converges, stale records go).
#[test]
fn healed_partition_converges() -> Result<()> {
    let lab = Lab::swarm_with_images(3, "both.tar")?;
    let h1 = lab.host(1);
    let net = h1
        .docker(&["network", "create", "-d", "overlay", "front"])?
        .trim()
        .to_string();
    h1.docker(&[
        "service",
        "create",
        "-d",
        "--name",
        "web",
        "--replicas",
        "3",
        "--network",
        "front",
        "shoal-test/httpd:latest",
    ])?;
    h1.docker(&[
        "service",
        "create",
        "-d",
        "--name",
        "client",
        "--network",
        "front",
        "--constraint",
        "node.hostname==node1",
        "shoal-test/busybox:latest",
        "sleep",
        "600",
    ])?;
    wait_for("3 running web tasks", Duration::from_secs(60), || {
        Ok((running_tasks(&lab, "web").len() == 3).then_some(()))
    })?;
    let client = wait_for("client running", Duration::from_secs(60), || {
        Ok(running_tasks(&lab, "client").pop())
    })?;
    let c = client.container.clone();
    lab.partition(&[3], &[1, 2])?;
    std::thread::sleep(Duration::from_secs(8));
    lab.heal()?;
    let converged = wait_for(
        "DNS equals the running tasks",
        Duration::from_secs(90),
        || {
            let running = running_tasks(&lab, "web");
            if running.len() != 3 {
                return Ok(None);
            }
            let want = front_ips(&running, &net);
            Ok((nslookup(&lab, &c, "tasks.web").ok() == Some(want.clone())).then_some(want))
        },
    )?;
    for ip in &converged {
        let out = http_in_container(&lab, &c, ip, "/")?;
        assert!(out.contains(MARKER), "{ip} after the heal: {out}");
    }
    assert!(http_in_container(&lab, &c, "web", "/")?.contains(MARKER));
    Ok(())
}

/// One connection to a TCP server in lab namespace `ns` on `addr:port` that sends `marker`,
/// made from inside `container`; what the container received.
fn tcp_from_container_to_lab(
    lab: &Lab,
    container: &str,
    ns: &str,
    addr: &str,
    port: &str,
    marker: &str,
) -> Result<String> {
    use std::io::Write;
    let mut server = std::process::Command::new("ip")
        .args(["netns", "exec", ns, "busybox", "nc", "-l", "-p", port])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()?;
    if let Some(mut i) = server.stdin.take() {
        let _ = i.write_all(format!("{marker}\n").as_bytes());
    }
    // Let the listener bind before connecting.
    std::thread::sleep(Duration::from_millis(300));
    let got = in_container(lab, container, &["nc", "-w", "3", addr, port]);
    // The server ends after one connection; stop it by its PID if none came.
    let _ = server.kill();
    let _ = server.wait();
    got
}

/// Task containers reach their node's network through the gateway bridge (default route
/// off the overlays, masqueraded), and the bridge goes with the last task.
#[test]
fn task_reaches_its_node_network_through_the_gateway_bridge() -> Result<()> {
    let lab = Lab::swarm_with_images(2, "both.tar")?;
    let h1 = lab.host(1);
    h1.docker(&["network", "create", "-d", "overlay", "front"])?;
    h1.docker(&[
        "service",
        "create",
        "-d",
        "--name",
        "client",
        "--network",
        "front",
        "--constraint",
        "node.hostname==node2",
        "shoal-test/busybox:latest",
        "sleep",
        "600",
    ])?;
    let client = wait_for("client running", Duration::from_secs(60), || {
        Ok(running_tasks(&lab, "client").pop())
    })?;
    let h2 = lab.host(2);
    let bridge = format!(
        "shgw{}",
        netplane_prefix(&h2.data_root())
            .trim_start_matches("shn")
            .trim_end_matches('-')
    );
    in_ns(&h2.netns, &["ip", "link", "show", &bridge])?;
    let routes = in_container(&lab, &client.container, &["ip", "route"])?;
    assert!(
        routes.contains("default via 172.18.0.1 dev gwbr0"),
        "default route through the gateway bridge: {routes}"
    );
    let marker = format!("shoal-gw-{}", std::process::id());
    let got = wait_for("TCP to the node's address", Duration::from_secs(20), || {
        Ok(tcp_from_container_to_lab(
            &lab,
            &client.container,
            &h2.netns,
            &h2.addr,
            "9123",
            &marker,
        )
        .map_err(|e| eprintln!("gateway attempt: {e:#}"))
        .ok()
        .filter(|o| o.contains(&marker)))
    })?;
    assert!(got.contains(&marker));
    h1.docker(&["service", "rm", "client"])?;
    wait_for("gateway bridge removed", Duration::from_secs(30), || {
        Ok(in_ns(&h2.netns, &["ip", "link", "show", &bridge])
            .is_err()
            .then_some(()))
    })?;
    Ok(())
}

/// A network's `mtu` and `vxlanid_list` options are what its containers and VXLAN devices get.
#[test]
fn network_mtu_and_vxlan_id_options_reach_the_data_plane() -> Result<()> {
    let lab = Lab::swarm_with_images(2, "both.tar")?;
    let h1 = lab.host(1);
    let net = h1
        .docker(&[
            "network",
            "create",
            "-d",
            "overlay",
            "-o",
            "com.docker.network.driver.mtu=1300",
            "-o",
            "com.docker.network.driver.overlay.vxlanid_list=6001",
            "capped",
        ])?
        .trim()
        .to_string();
    h1.docker(&[
        "service",
        "create",
        "-d",
        "--name",
        "cap",
        "--replicas",
        "2",
        "--replicas-max-per-node",
        "1",
        "--network",
        "capped",
        "shoal-test/busybox:latest",
        "sleep",
        "600",
    ])?;
    let tasks = wait_running(&lab, "cap", 2)?;
    for t in &tasks {
        let mtu = in_container(&lab, &t.container, &["cat", "/sys/class/net/eth0/mtu"])?;
        assert_eq!(mtu.trim(), "1300", "eth0 of {}", t.container);
    }
    // Full-size frames cross between the nodes (1272 bytes of ICMP payload fill 1300).
    let peer = &front_ips(&tasks[1..], &net);
    let peer = peer.iter().next().ok_or_else(|| anyhow!("no address"))?;
    let ping = in_container(
        &lab,
        &tasks[0].container,
        &["ping", "-c", "1", "-W", "3", "-s", "1272", peer],
    )?;
    assert!(ping.contains("1 packets received"), "{ping}");
    let overlay_namespaces = std::fs::read_dir("/run/netns")?
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().ends_with("ov-6001"))
        .count();
    assert_eq!(
        overlay_namespaces, 2,
        "one overlay namespace for VNI 6001 per node"
    );
    Ok(())
}
