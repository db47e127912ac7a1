//! Placement and healing of services on a 3-node lab with real containers: constraints,
//! max replicas per node, pending tasks that explain themselves and are scheduled once a node
//! fits, spread over label values, a start-first update that never stops serving, a killed and
//! cut-off worker whose tasks move, bad input refused without change, and the stock docker
//! CLI's service/node listings.

use anyhow::{Result, anyhow, bail};
use serde_json::Value;
use shoal_e2e::services::{node_hostnames, node_id, running, task_state, tasks};
use shoal_e2e::{Host, Lab, wait_for};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

const BUSYBOX: &str = "shoal-test/busybox:latest";
const HTTPD: &str = "shoal-test/httpd:latest";

fn swarm(archive: &str) -> Lab {
    Lab::swarm_with_images(3, archive).expect("the lab (needs root, netns, runc)")
}

/// How many running tasks of `service` each node (by hostname) has.
fn per_host(h: &Host, service: &str) -> BTreeMap<String, usize> {
    let names = node_hostnames(h).unwrap_or_default();
    let mut out = BTreeMap::new();
    for t in running(h, service) {
        let node = t["NodeID"].as_str().unwrap_or("");
        let name = names.get(node).cloned().unwrap_or_else(|| node.to_string());
        *out.entry(name).or_insert(0) += 1;
    }
    out
}

/// Waits until `service` has `n` running tasks; returns them per host.
fn wait_running(h: &Host, service: &str, n: usize) -> BTreeMap<String, usize> {
    wait_for(
        &format!("{n} running tasks of {service}"),
        Duration::from_secs(90),
        || {
            let p = per_host(h, service);
            Ok((p.values().sum::<usize>() == n).then_some(p))
        },
    )
    .unwrap_or_else(|e| {
        panic!(
            "{e:#}\n{}",
            h.shoal(&["service", "ps", "--no-trunc", service])
                .unwrap_or_default()
        )
    })
}

fn create(h: &Host, args: &[&str]) {
    let mut all = vec!["service", "create", "-d"];
    all.extend_from_slice(args);
    h.shoal(&all).unwrap();
}

/// Tasks of `service` that want to run but are still pending, with their explanations.
fn pending_errors(h: &Host, service: &str) -> Vec<String> {
    tasks(h, service)
        .iter()
        .filter(|t| task_state(t) == "pending" && t["DesiredState"] == "running")
        .map(|t| t["Status"]["Err"].as_str().unwrap_or("").to_string())
        .collect()
}

#[test]
fn constraints_max_per_node_pending_and_spread() {
    let lab = swarm("busybox.tar");
    let h1 = lab.host(1);

    // node.role==manager: only node1 (the one manager).
    create(
        h1,
        &[
            "--name",
            "onmgr",
            "--replicas",
            "3",
            "--constraint",
            "node.role==manager",
            BUSYBOX,
            "sleep",
            "600",
        ],
    );
    // node.hostname!=node1: nodes 2 and 3 only.
    create(
        h1,
        &[
            "--name",
            "notone",
            "--replicas",
            "4",
            "--constraint",
            "node.hostname!=node1",
            BUSYBOX,
            "sleep",
            "600",
        ],
    );
    // At most one per node, 4 wanted on 3 nodes: one stays pending and says why.
    create(
        h1,
        &[
            "--name",
            "capped",
            "--replicas",
            "4",
            "--replicas-max-per-node",
            "1",
            BUSYBOX,
            "sleep",
            "600",
        ],
    );
    let onmgr = wait_running(h1, "onmgr", 3);
    assert_eq!(onmgr.get("node1"), Some(&3), "{onmgr:?}");
    let notone = wait_running(h1, "notone", 4);
    assert!(!notone.contains_key("node1"), "{notone:?}");
    assert_eq!(
        notone.get("node2"),
        Some(&2),
        "spread over 2 and 3: {notone:?}"
    );
    let capped = wait_running(h1, "capped", 3);
    assert!(capped.values().all(|n| *n == 1), "{capped:?}");
    let why = wait_for(
        "the 4th capped task explained",
        Duration::from_secs(30),
        || {
            let e = pending_errors(h1, "capped");
            Ok((e.len() == 1 && !e[0].is_empty()).then(|| e[0].clone()))
        },
    )
    .unwrap();
    assert!(
        why.starts_with("no suitable node (") && why.contains("max replicas per node"),
        "{why}"
    );
    // Still only 3 after a while: the limit holds.
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(per_host(h1, "capped").values().sum::<usize>(), 3);
    let inspect = h1.api_get("/v1.47/services/capped").unwrap();
    assert_eq!(
        inspect["Spec"]["TaskTemplate"]["Placement"]["MaxReplicas"], 1,
        "{inspect}"
    );

    // An impossible constraint: pending with an explanation in `service ps`, until a node fits.
    create(
        h1,
        &[
            "--name",
            "zoned",
            "--replicas",
            "2",
            "--constraint",
            "node.labels.zone==a",
            BUSYBOX,
            "sleep",
            "600",
        ],
    );
    let ps = wait_for("zoned tasks explained", Duration::from_secs(30), || {
        let ps = h1.shoal(&["service", "ps", "--no-trunc", "zoned"])?;
        Ok((ps
            .matches("no suitable node (scheduling constraints not satisfied on 3 nodes)")
            .count()
            == 2)
            .then_some(ps))
    })
    .unwrap();
    assert!(ps.contains("Pending"), "{ps}");
    assert!(running(h1, "zoned").is_empty());
    let node2 = node_id(h1, "node2").unwrap();
    h1.shoal(&["node", "update", "--label-add", "zone=a", &node2])
        .unwrap();
    let zoned = wait_running(h1, "zoned", 2);
    assert_eq!(zoned.get("node2"), Some(&2), "{zoned:?}");
    assert!(pending_errors(h1, "zoned").is_empty());

    // Spread over label values: zone a = nodes 1 and 2, zone b = node 3. Six tasks go 3 and 3
    // (plain spread would put 2 on each node).
    let node1 = node_id(h1, "node1").unwrap();
    let node3 = node_id(h1, "node3").unwrap();
    h1.shoal(&["node", "update", "--label-add", "zone=a", &node1])
        .unwrap();
    h1.shoal(&["node", "update", "--label-add", "zone=b", &node3])
        .unwrap();
    create(
        h1,
        &[
            "--name",
            "spread",
            "--replicas",
            "6",
            "--placement-pref",
            "spread=node.labels.zone",
            BUSYBOX,
            "sleep",
            "600",
        ],
    );
    let spread = wait_running(h1, "spread", 6);
    assert_eq!(
        spread.get("node3"),
        Some(&3),
        "zone b gets half: {spread:?}"
    );
    assert_eq!(
        spread.get("node1").unwrap_or(&0) + spread.get("node2").unwrap_or(&0),
        3,
        "{spread:?}"
    );

    stock_docker_cli_listings(&lab);
}

/// The stock docker CLI's service and node listings on the services of the test above.
fn stock_docker_cli_listings(lab: &Lab) {
    let h1 = lab.host(1);
    let ls = h1.docker(&["service", "ls"]).unwrap();
    let header: Vec<&str> = ls.lines().next().unwrap_or("").split_whitespace().collect();
    assert_eq!(
        header,
        ["ID", "NAME", "MODE", "REPLICAS", "IMAGE", "PORTS"],
        "{ls}"
    );
    let row = |name: &str| {
        ls.lines()
            .find(|l| l.split_whitespace().nth(1) == Some(name))
            .unwrap_or_else(|| panic!("no {name} in\n{ls}"))
            .to_string()
    };
    assert!(
        row("onmgr").contains("replicated") && row("onmgr").contains("3/3"),
        "{ls}"
    );
    assert!(row("capped").contains("3/4 (max 1 per node)"), "{ls}");
    assert!(
        row("spread").contains("6/6") && row("spread").contains(BUSYBOX),
        "{ls}"
    );

    let ps = h1.docker(&["service", "ps", "zoned"]).unwrap();
    let header: Vec<&str> = ps.lines().next().unwrap_or("").split_whitespace().collect();
    assert_eq!(
        header,
        [
            "ID", "NAME", "IMAGE", "NODE", "DESIRED", "STATE", "CURRENT", "STATE", "ERROR", "PORTS"
        ],
        "{ps}"
    );
    let rows: Vec<&str> = ps.lines().skip(1).collect();
    assert_eq!(rows.len(), 2, "{ps}");
    for r in &rows {
        assert!(
            r.contains("zoned.") && r.contains("node2") && r.contains("Running"),
            "{ps}"
        );
    }
    let filtered = h1
        .docker(&[
            "service",
            "ps",
            "--filter",
            "desired-state=running",
            "-q",
            "capped",
        ])
        .unwrap();
    assert_eq!(filtered.lines().count(), 4, "{filtered}");

    let node_ps = h1.docker(&["node", "ps", "node3"]).unwrap();
    let header: Vec<&str> = node_ps
        .lines()
        .next()
        .unwrap_or("")
        .split_whitespace()
        .collect();
    assert_eq!(header[..4], ["ID", "NAME", "IMAGE", "NODE"], "{node_ps}");
    // node3: 2 notone, 1 capped, 3 spread.
    let on3 = node_ps
        .lines()
        .skip(1)
        .filter(|l| l.contains("Running"))
        .count();
    assert_eq!(on3, 6, "{node_ps}");
    assert!(
        node_ps.lines().skip(1).all(|l| l.contains("node3")),
        "{node_ps}"
    );
    let self_ps = h1.docker(&["node", "ps"]).unwrap();
    assert!(
        self_ps.contains("onmgr.1") && self_ps.contains("node1"),
        "{self_ps}"
    );

    // --pretty: Docker's template over our JSON; compare lines with whitespace collapsed.
    let pretty_lines = |name: &str| -> Vec<String> {
        h1.docker(&["service", "inspect", "--pretty", name])
            .unwrap()
            .lines()
            .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
            .collect()
    };
    let pretty = pretty_lines("capped");
    for want in [
        "Name: capped",
        "Service Mode: Replicated",
        "Replicas: 4",
        "Max Replicas Per Node: 1",
        "UpdateConfig:",
        "Update order: stop-first",
        "RollbackConfig:",
        "Image: shoal-test/busybox:latest",
        "Args: sleep 600",
        // Created without --endpoint-mode (by the shoal CLI): Docker's default is stored.
        "Endpoint Mode: vip",
    ] {
        assert!(
            pretty.iter().any(|l| l == want),
            "{want:?} missing from {pretty:#?}"
        );
    }
    let ours = h1
        .shoal(&["service", "inspect", "--pretty", "capped"])
        .unwrap();
    assert!(
        ours.lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>() == ["Endpoint", "Mode:", "vip"]),
        "{ours}"
    );
    let pretty = pretty_lines("zoned");
    assert!(
        pretty
            .iter()
            .any(|l| l == "Constraints: [node.labels.zone==a]"),
        "{pretty:#?}"
    );
}

/// `GET /gen` on a published port of a lab host, from another lab host's namespace (busybox
/// `nc`; the machine's busybox `wget` is not usable here).
fn probe(from_ns: &str, addr: &str, port: &str) -> Result<String> {
    use std::io::Write;
    let mut child = std::process::Command::new("ip")
        .args([
            "netns", "exec", from_ns, "busybox", "nc", "-w", "3", addr, port,
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()?;
    if let Some(mut i) = child.stdin.take() {
        i.write_all(b"GET /gen HTTP/1.0\r\n\r\n")?;
    }
    let out = child.wait_with_output()?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    match text.split_once("\r\n\r\n") {
        Some((head, body)) if head.starts_with("HTTP/1.") && head.contains(" 200 ") => {
            Ok(body.trim().to_string())
        }
        _ => bail!(
            "no answer ({}): {text:?} {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ),
    }
}

#[test]
fn start_first_update_keeps_serving() {
    let lab = swarm("both.tar");
    let h1 = lab.host(1);
    let serve = "echo gen-$GEN > /www/gen; exec httpd -f -p 80 -h /www";
    create(
        h1,
        &[
            "--name",
            "site",
            "--replicas",
            "2",
            "-p",
            "8080:80",
            "--env",
            "GEN=1",
            "--update-order",
            "start-first",
            "--update-parallelism",
            "1",
            "--update-delay",
            "1s",
            HTTPD,
            "sh",
            "-c",
            serve,
        ],
    );
    wait_running(h1, "site", 2);
    let client = lab.host(3).netns.clone();
    let target = lab.host(2).addr.clone();
    wait_for(
        "site answers on node2:8080",
        Duration::from_secs(30),
        || {
            Ok(probe(&client, &target, "8080")
                .ok()
                .filter(|b| b == "gen-1")
                .map(|_| ()))
        },
    )
    .unwrap();

    h1.shoal(&["service", "update", "-d", "--env-add", "GEN=2", "site"])
        .unwrap();
    let start = Instant::now();
    let mut answers: BTreeMap<String, usize> = BTreeMap::new();
    let mut probes = 0;
    let mut most_running = 0;
    loop {
        probes += 1;
        let body = probe(&client, &target, "8080").unwrap_or_else(|e| {
            panic!(
                "probe {probes} failed {:?} into the start-first update: {e:#}\n{}",
                start.elapsed(),
                h1.shoal(&["service", "ps", "--no-trunc", "site"])
                    .unwrap_or_default()
            )
        });
        *answers.entry(body).or_insert(0) += 1;
        most_running = most_running.max(running(h1, "site").len());
        let st = h1.api_get("/v1.47/services/site").unwrap()["UpdateStatus"]["State"]
            .as_str()
            .unwrap_or("")
            .to_string();
        if st == "completed" && answers.contains_key("gen-2") {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "update not completed: {st} {answers:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // Keep probing a little after completion: the old tasks are gone, the new ones answer.
    for _ in 0..20 {
        let body = probe(&client, &target, "8080").expect("probe after the update");
        assert_eq!(body, "gen-2");
    }
    assert!(answers.contains_key("gen-1"), "{answers:?}");
    assert!(
        most_running >= 2,
        "never fewer running than the replicas: {most_running}"
    );
    let run = running(h1, "site");
    assert_eq!(run.len(), 2);
    assert!(
        run.iter().all(|t| t["Spec"]["ContainerSpec"]["Env"]
            .as_array()
            .is_some_and(|e| e.iter().any(|v| v == "GEN=2"))),
        "{run:?}"
    );
    // The daemon address given to the CLI (-H) must not leak into the spec as a host entry.
    assert!(
        run.iter()
            .all(|t| t["Spec"]["ContainerSpec"]["Hosts"].is_null()),
        "{run:?}"
    );
    // Start-first, slot by slot: the new task was running before the old one was shut down
    // (the old ones finish draining a little after the update completes).
    let all = wait_for("the old tasks shut down", Duration::from_secs(60), || {
        let all = tasks(h1, "site");
        let down = all.iter().filter(|t| task_state(t) == "shutdown").count();
        Ok((down == 2).then_some(all))
    })
    .unwrap();
    let at = |t: &Value| {
        chrono::DateTime::parse_from_rfc3339(t["Status"]["Timestamp"].as_str().unwrap_or(""))
            .unwrap_or_else(|e| panic!("task timestamp: {e}: {t}"))
    };
    for new in &run {
        let old = all
            .iter()
            .find(|t| t["Slot"] == new["Slot"] && task_state(t) == "shutdown")
            .unwrap_or_else(|| panic!("no replaced task in slot {}: {all:?}", new["Slot"]));
        assert!(
            at(new) < at(old),
            "slot {}: new task running at {} but the old one shut down at {}",
            new["Slot"],
            at(new),
            at(old)
        );
    }
    eprintln!("{probes} probes during the start-first update, all answered: {answers:?}");
}

#[test]
fn killed_and_cut_off_worker_goes_down_and_its_tasks_move() {
    let mut lab = swarm("busybox.tar");
    let h1 = lab.host(1);
    h1.shoal(&["swarm", "update", "--dispatcher-heartbeat", "1s"])
        .unwrap();
    // Let every agent learn the 1 s period from a heartbeat reply (they beat every 5 s before).
    std::thread::sleep(Duration::from_secs(6));
    create(
        h1,
        &[
            "--name",
            "moving",
            "--replicas",
            "6",
            BUSYBOX,
            "sleep",
            "600",
        ],
    );
    let before = wait_running(h1, "moving", 6);
    assert_eq!(before.get("node3"), Some(&2), "{before:?}");
    let node3 = node_id(h1, "node3").unwrap();

    let killed = Instant::now();
    lab.host_mut(3).kill9();
    lab.host(3).set_link(false).unwrap();
    let h1 = lab.host(1);
    wait_for("node3 down", Duration::from_secs(30), || {
        let n = h1.api_get(&format!("/v1.47/nodes/{node3}"))?;
        Ok((n["Status"]["State"] == "down").then_some(()))
    })
    .unwrap();
    let down = killed.elapsed();
    let after = wait_for(
        "6 running tasks, none on node3",
        Duration::from_secs(60),
        || {
            let p = per_host(h1, "moving");
            Ok((p.values().sum::<usize>() == 6 && !p.contains_key("node3")).then_some(p))
        },
    )
    .unwrap();
    assert_eq!(after.get("node1"), Some(&3), "{after:?}");
    assert_eq!(after.get("node2"), Some(&3), "{after:?}");
    eprintln!(
        "node3 down {down:?} after kill -9 + link cut, its tasks running elsewhere after {:?}",
        killed.elapsed()
    );
    // The lost tasks are no longer wanted on node3.
    let lost: Vec<Value> = tasks(h1, "moving")
        .into_iter()
        .filter(|t| t["NodeID"] == node3.as_str())
        .collect();
    assert_eq!(lost.len(), 2, "{lost:?}");
    assert!(
        lost.iter().all(|t| t["DesiredState"] != "running"),
        "{lost:?}"
    );
    let ls = h1.shoal(&["node", "ls"]).unwrap();
    let row = ls
        .lines()
        .find(|l| l.contains("node3"))
        .ok_or_else(|| anyhow!("no node3 in {ls}"))
        .unwrap();
    assert!(row.contains("Down"), "{ls}");
}

/// Number of services and the `Spec` of `name` (Null when absent), to check nothing changed.
fn snapshot(h: &Host, name: &str) -> (usize, Value) {
    let n = h
        .api_get("/v1.47/services")
        .ok()
        .and_then(|v| v.as_array().map(|a| a.len()))
        .unwrap_or(usize::MAX);
    let spec = h
        .api_get(&format!("/v1.47/services/{name}"))
        .map(|v| v["Spec"].clone())
        .unwrap_or(Value::Null);
    (n, spec)
}

/// `shoal service create -d ARGS…` must fail with a message containing `want`.
fn refused(h: &Host, args: &[&str], want: &str) {
    let mut all = vec!["service", "create", "-d"];
    all.extend_from_slice(args);
    let out = h.shoal_output(&all).unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "accepted: {args:?}");
    assert!(
        err.to_lowercase().contains(&want.to_lowercase()),
        "{args:?}: {want:?} not in {err}"
    );
}

/// A raw API request with a JSON body: (HTTP status, body).
fn api(h: &Host, method: &str, path: &str, body: &str) -> (u16, String) {
    let out = shoal_e2e::run(
        "curl",
        &[
            "-s",
            "-w",
            "\n%{http_code}",
            "-X",
            method,
            "-H",
            "Content-Type: application/json",
            "--unix-socket",
            &h.socket.to_string_lossy(),
            "--data-binary",
            body,
            &format!("http://shoal/v1.47{path}"),
        ],
    )
    .unwrap();
    let (body, code) = out.rsplit_once('\n').unwrap_or((&out, "0"));
    (code.trim().parse().unwrap_or(0), body.to_string())
}

#[test]
fn bad_input_is_refused_and_changes_nothing() {
    let lab = swarm("busybox.tar");
    let h1 = lab.host(1);
    create(
        h1,
        &[
            "--name",
            "keeper",
            "--replicas",
            "1",
            "-p",
            "8080:80",
            BUSYBOX,
            "sleep",
            "600",
        ],
    );
    wait_running(h1, "keeper", 1);
    let before = snapshot(h1, "keeper");

    // Invalid specs: a clear error from the CLI, nothing created.
    refused(
        h1,
        &["--name", "neg", "--replicas=-1", BUSYBOX],
        "--replicas",
    );
    refused(
        h1,
        &["--name", "baddur", "--restart-delay", "5x", BUSYBOX],
        "--restart-delay",
    );
    refused(
        h1,
        &["--name", "baddur2", "--update-delay", "soon", BUSYBOX],
        "--update-delay",
    );
    refused(h1, &["--name", "dupport", "-p", "8080:80", BUSYBOX], "8080");
    refused(
        h1,
        &[
            "--name", "dupport2", "-p", "9090:80", "-p", "9090:81", BUSYBOX,
        ],
        "9090",
    );
    refused(
        h1,
        &[
            "--name",
            "badmount",
            "--mount",
            "type=bind,target=/data",
            BUSYBOX,
        ],
        "source",
    );
    refused(
        h1,
        &[
            "--name",
            "badmount2",
            "--mount",
            "type=floppy,source=a,target=/data",
            BUSYBOX,
        ],
        "floppy",
    );
    refused(
        h1,
        &[
            "--name",
            "badmount3",
            "--mount",
            "type=volume,source=v,target=relative",
            BUSYBOX,
        ],
        "relative",
    );
    refused(
        h1,
        &[
            "--name",
            "badcons",
            "--constraint",
            "node.role=manager",
            BUSYBOX,
        ],
        "constraint",
    );
    // The same through the raw API (what any client could send).
    let (code, body) = api(
        h1,
        "POST",
        "/services/create",
        &format!(
            r#"{{"Name":"raw","TaskTemplate":{{"ContainerSpec":{{"Image":"{BUSYBOX}"}}}},"Mode":{{"Replicated":{{"Replicas":-1}}}}}}"#
        ),
    );
    assert_eq!(code, 400, "{body}");
    let (code, body) = api(
        h1,
        "POST",
        "/services/create",
        &format!(
            r#"{{"Name":"raw","TaskTemplate":{{"ContainerSpec":{{"Image":"{BUSYBOX}"}}}},"EndpointSpec":{{"Ports":[{{"TargetPort":80,"PublishedPort":8080}}]}}}}"#
        ),
    );
    assert!((400..500).contains(&code), "{code} {body}");
    assert!(body.contains("8080"), "{body}");
    let (code, body) = api(
        h1,
        "POST",
        "/services/create",
        &format!(
            r#"{{"Name":"raw","TaskTemplate":{{"ContainerSpec":{{"Image":"{BUSYBOX}"}},"RestartPolicy":{{"Delay":-5}}}}}}"#
        ),
    );
    assert!((400..500).contains(&code), "{code} {body}");
    assert_eq!(
        snapshot(h1, "keeper"),
        before,
        "a refused create changed something"
    );
    assert!(h1.api_get("/v1.47/services/raw").unwrap()["message"].is_string());

    // An update with a stale version is refused and changes nothing.
    let svc = h1.api_get("/v1.47/services/keeper").unwrap();
    let version = svc["Version"]["Index"].as_u64().unwrap();
    h1.shoal(&["service", "update", "-d", "--env-add", "A=1", "keeper"])
        .unwrap();
    let current = snapshot(h1, "keeper");
    let mut stale = svc["Spec"].clone();
    stale["Labels"] = serde_json::json!({"stale": "yes"});
    let (code, body) = api(
        h1,
        "POST",
        &format!("/services/keeper/update?version={version}"),
        &stale.to_string(),
    );
    // Moby answers 500 with this message (the docker CLI shows it as is).
    assert!(code >= 400, "{code} {body}");
    assert!(body.contains("update out of sequence"), "{body}");
    assert_eq!(
        snapshot(h1, "keeper"),
        current,
        "a stale update changed something"
    );

    // An unknown image: refused at create, or the tasks are rejected with the reason.
    let out = h1
        .shoal_output(&[
            "service",
            "create",
            "-d",
            "--name",
            "ghost",
            "127.0.0.1:1/no-such-image:latest",
        ])
        .unwrap();
    if out.status.success() {
        let err = wait_for("the ghost task rejected", Duration::from_secs(60), || {
            Ok(tasks(h1, "ghost")
                .iter()
                .find(|t| task_state(t) == "rejected")
                .map(|t| t["Status"]["Err"].as_str().unwrap_or("").to_string()))
        })
        .unwrap();
        assert!(
            err.contains("no-such-image") && err.contains("No such image"),
            "{err}"
        );
        let ps = h1.shoal(&["service", "ps", "--no-trunc", "ghost"]).unwrap();
        assert!(
            ps.contains("Rejected") && ps.contains("No such image"),
            "{ps}"
        );
    } else {
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("no-such-image"), "{err}");
    }
    // The good service was never disturbed by the refused requests (its update went through).
    wait_running(h1, "keeper", 1);
}
