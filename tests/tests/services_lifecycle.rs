//! Service lifecycle on a 3-node lab with real containers: logs gathered from several nodes
//! (also following tasks that start later), drain, global services following a joining node,
//! jobs to completion, rolling updates one task at a time with rollback of a failing image,
//! the leader killed mid-update, and create→running timings.

use serde_json::Value;
use shoal_e2e::{Host, Lab, LabOptions, test_images, wait_for};
use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const BUSYBOX: &str = "shoal-test/busybox:latest";

fn lab(hosts: usize) -> Lab {
    Lab::new(LabOptions {
        hosts,
        daemon_args: Vec::new(),
    })
    .expect("the lab (needs root, netns, runc)")
}

fn load_images(lab: &Lab) {
    let images = test_images().expect("test images");
    for h in &lab.hosts {
        h.docker(&["load", "-i", &images.join("busybox.tar").to_string_lossy()])
            .expect("loading busybox");
    }
}

fn wait_ready(h: &Host, n: usize) {
    wait_for(&format!("{n} ready nodes"), Duration::from_secs(60), || {
        let out = h.shoal(&["node", "ls"])?;
        Ok((out.matches("Ready").count() == n).then_some(()))
    })
    .unwrap();
}

/// All tasks of `service` as the API on `h` shows them.
fn tasks(h: &Host, service: &str) -> Vec<Value> {
    h.api_get(&format!(
        "/v1.47/tasks?filters=%7B%22service%22%3A%7B%22{service}%22%3Atrue%7D%7D"
    ))
    .ok()
    .and_then(|v| v.as_array().cloned())
    .unwrap_or_default()
}

fn state(t: &Value) -> &str {
    t["Status"]["State"].as_str().unwrap_or("")
}

fn running(h: &Host, service: &str) -> Vec<Value> {
    tasks(h, service)
        .into_iter()
        .filter(|t| state(t) == "running" && t["DesiredState"] == "running")
        .collect()
}

fn node_ids(ts: &[Value]) -> BTreeSet<String> {
    ts.iter()
        .map(|t| t["NodeID"].as_str().unwrap_or("").to_string())
        .collect()
}

fn node_id_of(h: &Host, hostname: &str) -> String {
    let nodes = h.api_get("/v1.47/nodes").expect("nodes");
    nodes
        .as_array()
        .into_iter()
        .flatten()
        .find(|n| n["Description"]["Hostname"] == hostname)
        .and_then(|n| n["ID"].as_str().map(str::to_string))
        .unwrap_or_else(|| panic!("no node {hostname}"))
}

fn service(h: &Host, name: &str) -> Value {
    h.api_get(&format!("/v1.47/services/{name}"))
        .unwrap_or(Value::Null)
}

fn create(h: &Host, args: &[&str]) {
    let mut all = vec!["service", "create", "-d"];
    all.extend_from_slice(args);
    h.shoal(&all).unwrap();
}

/// `shoal service logs -f` running in the background, its output collected.
struct Follower {
    child: std::process::Child,
    out: std::sync::Arc<std::sync::Mutex<String>>,
}

impl Follower {
    fn start(h: &Host, target: &str) -> Follower {
        let mut child = Command::new(shoal_e2e::shoal_bin())
            .args(["-H", &h.host_uri(), "service", "logs", "-f", target])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("shoal service logs -f");
        let mut stdout = child.stdout.take().expect("stdout");
        let out = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let sink = out.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = stdout.read(&mut buf) {
                if n == 0 {
                    break;
                }
                if let Ok(mut s) = sink.lock() {
                    s.push_str(&String::from_utf8_lossy(&buf[..n]));
                }
            }
        });
        Follower { child, out }
    }

    fn text(&self) -> String {
        self.out.lock().map(|s| s.clone()).unwrap_or_default()
    }
}

impl Drop for Follower {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The `name.slot.task@node` prefixes of a `service logs` output and the lines after them.
fn prefixed(out: &str) -> Vec<(String, String)> {
    out.lines()
        .filter_map(|l| l.split_once("    | "))
        .map(|(p, l)| (p.to_string(), l.to_string()))
        .collect()
}

#[test]
fn logs_come_from_every_node_and_follow_new_tasks() {
    let lab = lab(3);
    lab.form_cluster(1).unwrap();
    load_images(&lab);
    let h1 = lab.host(1);
    wait_ready(h1, 3);
    create(
        h1,
        &[
            "--name",
            "talker",
            "--replicas",
            "3",
            BUSYBOX,
            "sh",
            "-c",
            "echo hello from $(hostname); echo oops >&2; sleep 600",
        ],
    );
    let up = wait_for("3 running talkers", Duration::from_secs(60), || {
        let r = running(h1, "talker");
        Ok((r.len() == 3).then_some(r))
    })
    .unwrap();
    assert_eq!(node_ids(&up).len(), 3, "spread over the 3 nodes");

    // Every task's lines, each prefixed like Docker's, from all three nodes.
    let out = wait_for("logs of the 3 tasks", Duration::from_secs(30), || {
        let o = h1.shoal_output(&["service", "logs", "talker"])?;
        let text = String::from_utf8_lossy(&o.stdout).into_owned();
        Ok((text.matches("hello from").count() == 3).then_some(text))
    })
    .unwrap();
    let lines = prefixed(&out);
    let nodes: BTreeSet<&str> = lines
        .iter()
        .filter_map(|(p, _)| p.rsplit_once('@').map(|(_, n)| n))
        .collect();
    assert_eq!(nodes.len(), 3, "lines from 3 nodes: {out}");
    for (p, _) in &lines {
        let parts: Vec<&str> = p.split('@').next().unwrap_or("").split('.').collect();
        assert_eq!(parts.len(), 3, "talker.<slot>.<task>@<node>: {p}");
        assert_eq!(parts[0], "talker");
        assert!(parts[1].parse::<u64>().is_ok(), "{p}");
    }
    // stderr lines come on stderr.
    let o = h1.shoal_output(&["service", "logs", "talker"]).unwrap();
    assert_eq!(
        String::from_utf8_lossy(&o.stderr).matches("oops").count(),
        3,
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    // --raw and --no-task-ids; --tail; a single task by ID.
    let raw = h1
        .shoal(&["service", "logs", "--raw", "--tail", "2", "talker"])
        .unwrap();
    assert_eq!(raw.lines().count(), 3, "{raw}");
    assert!(raw.lines().all(|l| l.starts_with("hello from")), "{raw}");
    let last = h1
        .shoal_output(&["service", "logs", "--raw", "--tail", "1", "talker"])
        .unwrap();
    assert!(
        last.stdout.is_empty(),
        "the last line of each task is on stderr"
    );
    let no_ids = h1
        .shoal(&["service", "logs", "--no-task-ids", "talker"])
        .unwrap();
    assert!(
        prefixed(&no_ids)
            .iter()
            .all(|(p, _)| p.split('@').next().unwrap_or("").split('.').count() == 2),
        "{no_ids}"
    );
    let task_id = up[0]["ID"].as_str().unwrap().to_string();
    let one = h1.shoal(&["service", "logs", &task_id]).unwrap();
    assert_eq!(one.matches("hello from").count(), 1, "{one}");
    let stamped = h1
        .shoal(&["service", "logs", "-t", "--raw", &task_id])
        .unwrap();
    assert!(
        stamped
            .lines()
            .all(|l| l.get(4..5) == Some("-") && l.contains('T')),
        "{stamped}"
    );
    // The stock docker CLI gets the same lines.
    let docker = h1.docker(&["service", "logs", "talker"]).unwrap();
    assert_eq!(docker.matches("hello from").count(), 3, "{docker}");
    assert_eq!(prefixed(&docker).len(), 3, "{docker}");

    // Following: tasks started later are followed too.
    let f = Follower::start(h1, "talker");
    wait_for(
        "the follower's first lines",
        Duration::from_secs(30),
        || Ok((f.text().matches("hello from").count() >= 3).then_some(())),
    )
    .unwrap();
    h1.shoal(&["service", "scale", "-d", "talker=5"]).unwrap();
    wait_for("lines of the 2 new tasks", Duration::from_secs(60), || {
        Ok((f.text().matches("hello from").count() >= 5).then_some(()))
    })
    .unwrap();
    drop(f);
    h1.shoal(&["service", "rm", "talker"]).unwrap();
}
