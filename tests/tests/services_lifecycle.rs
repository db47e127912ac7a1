//! Service lifecycle on a 3-node lab with real containers: logs gathered from several nodes
//! (also following tasks that start later), drain, global services following a joining node,
//! jobs to completion, rolling updates one task at a time with rollback of a failing image,
//! the leader killed mid-update, many replicas spread evenly.

use serde_json::Value;
use shoal_e2e::services::{node_id, running, task_state, tasks, wait_no_containers};
use shoal_e2e::{Host, Lab, LabOptions, wait_for};
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
    lab.load_images("busybox.tar").expect("loading busybox");
}

fn node_ids(ts: &[Value]) -> BTreeSet<String> {
    ts.iter()
        .map(|t| t["NodeID"].as_str().unwrap_or("").to_string())
        .collect()
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
    lab.wait_ready(3).unwrap();
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
    // --since: relative (all lines are newer than an hour) and absolute (none after 2099).
    let recent = h1
        .shoal(&["service", "logs", "--since", "1h", "talker"])
        .unwrap();
    assert_eq!(recent.matches("hello from").count(), 3, "{recent}");
    let none = h1
        .shoal_output(&[
            "service",
            "logs",
            "--since",
            "2099-01-01T00:00:00Z",
            "talker",
        ])
        .unwrap();
    assert!(none.status.success() && none.stdout.is_empty(), "{none:?}");
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

#[test]
fn drain_global_follows_join_and_jobs_complete() {
    let lab = lab(3);
    // Nodes 1 and 2 first; node 3 joins later.
    let (worker_token, _) = lab.init_swarm().unwrap();
    lab.join(2, &worker_token, 1).unwrap();
    load_images(&lab);
    let h1 = lab.host(1);
    lab.wait_ready(2).unwrap();

    // A global service runs one task per node, and on a node that joins later.
    create(
        h1,
        &[
            "--name",
            "everywhere",
            "--mode",
            "global",
            BUSYBOX,
            "sleep",
            "600",
        ],
    );
    wait_for(
        "a global task on each of 2 nodes",
        Duration::from_secs(60),
        || {
            let r = running(h1, "everywhere");
            Ok((r.len() == 2 && node_ids(&r).len() == 2).then_some(()))
        },
    )
    .unwrap();
    lab.join(3, &worker_token, 1).unwrap();
    lab.wait_ready(3).unwrap();
    let node3 = node_id(h1, &lab.host(3).name).unwrap();
    wait_for(
        "a global task on the joined node",
        Duration::from_secs(60),
        || {
            let r = running(h1, "everywhere");
            Ok((r.len() == 3 && node_ids(&r).contains(&node3)).then_some(()))
        },
    )
    .unwrap();
    h1.shoal(&["service", "rm", "everywhere"]).unwrap();

    // Drain moves the tasks off a node; active lets new tasks land there again.
    create(
        h1,
        &[
            "--name",
            "mover",
            "--replicas",
            "6",
            BUSYBOX,
            "sleep",
            "600",
        ],
    );
    wait_for(
        "6 running movers on 3 nodes",
        Duration::from_secs(90),
        || {
            let r = running(h1, "mover");
            Ok((r.len() == 6 && node_ids(&r).len() == 3).then_some(()))
        },
    )
    .unwrap();
    h1.shoal(&["node", "update", "--availability", "drain", &node3])
        .unwrap();
    wait_for(
        "6 movers, none on the drained node",
        Duration::from_secs(90),
        || {
            let r = running(h1, "mover");
            Ok((r.len() == 6 && !node_ids(&r).contains(&node3)).then_some(()))
        },
    )
    .unwrap();
    // Drained: its containers are stopped too (not only the tasks moved).
    wait_for(
        "no running container on the drained node",
        Duration::from_secs(60),
        || {
            let cs = lab.host(3).api_get("/v1.47/containers/json")?;
            Ok((cs.as_array().map(|a| a.len()) == Some(0)).then_some(()))
        },
    )
    .unwrap();
    h1.shoal(&["node", "update", "--availability", "active", &node3])
        .unwrap();
    h1.shoal(&["service", "scale", "-d", "mover=9"]).unwrap();
    wait_for(
        "new movers land on the reactivated node",
        Duration::from_secs(90),
        || {
            let r = running(h1, "mover");
            Ok((r.len() == 9 && node_ids(&r).contains(&node3)).then_some(()))
        },
    )
    .unwrap();
    h1.shoal(&["service", "rm", "mover"]).unwrap();

    // A replicated job: 5 completions, never more than 2 at once.
    create(
        h1,
        &[
            "--name",
            "batch",
            "--mode",
            "replicated-job",
            "--replicas",
            "5",
            "--max-concurrent",
            "2",
            BUSYBOX,
            "sleep",
            "1",
        ],
    );
    let mut most = 0;
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let ts = tasks(h1, "batch");
        let live = ts
            .iter()
            .filter(|t| {
                matches!(
                    task_state(t),
                    "assigned" | "accepted" | "preparing" | "ready" | "starting" | "running"
                )
            })
            .count();
        most = most.max(live);
        let done = ts.iter().filter(|t| task_state(t) == "complete").count();
        if done >= 5 {
            assert_eq!(done, 5, "exactly 5 completions: {ts:?}");
            break;
        }
        assert!(Instant::now() < deadline, "job did not complete: {ts:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(most <= 2, "at most 2 job tasks at once, saw {most}");
    assert!(most >= 1);
    let ls = h1.shoal(&["service", "ls"]).unwrap();
    assert!(ls.contains("(5/5 completed)"), "{ls}");

    // A global job: one completed task per node.
    create(
        h1,
        &[
            "--name",
            "onceeach",
            "--mode",
            "global-job",
            BUSYBOX,
            "true",
        ],
    );
    wait_for(
        "a completed global job task per node",
        Duration::from_secs(90),
        || {
            let done: Vec<Value> = tasks(h1, "onceeach")
                .into_iter()
                .filter(|t| task_state(t) == "complete")
                .collect();
            Ok((done.len() == 3 && node_ids(&done).len() == 3).then_some(()))
        },
    )
    .unwrap();
    // And nothing runs again after completion.
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(tasks(h1, "onceeach").len(), 3);
}

/// Polls until the service's update reaches a final state, checking at each poll that at
/// least `min_running` tasks run; returns the final update state and the most tasks seen
/// starting at once.
fn watch_update(h: &Host, name: &str, min_running: usize, limit: Duration) -> String {
    let start = Instant::now();
    loop {
        let r = running(h, name).len();
        assert!(
            r >= min_running,
            "only {r} running tasks during the update of {name} (want ≥ {min_running}):\n{}\n{}",
            h.shoal(&["service", "ps", "--no-trunc", name])
                .unwrap_or_default(),
            service(h, name)["UpdateStatus"]
        );
        let s = service(h, name);
        let st = s["UpdateStatus"]["State"]
            .as_str()
            .unwrap_or("")
            .to_string();
        if matches!(
            st.as_str(),
            "completed" | "rollback_completed" | "paused" | "rollback_paused"
        ) {
            return st;
        }
        assert!(
            start.elapsed() < limit,
            "update of {name} still {st:?} after {limit:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn env_of(t: &Value) -> Vec<String> {
    t["Spec"]["ContainerSpec"]["Env"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e.as_str().map(str::to_string))
        .collect()
}

#[test]
fn rolling_update_one_by_one_and_rollback_of_a_failing_image() {
    let lab = lab(3);
    lab.form_cluster(1).unwrap();
    load_images(&lab);
    let h1 = lab.host(1);
    lab.wait_ready(3).unwrap();
    create(
        h1,
        &[
            "--name",
            "web",
            "--replicas",
            "4",
            "--update-parallelism",
            "1",
            "--update-delay",
            "1s",
            "--update-failure-action",
            "rollback",
            "--update-monitor",
            "2s",
            "--env",
            "GEN=1",
            BUSYBOX,
            "sleep",
            "600",
        ],
    );
    wait_for("4 running", Duration::from_secs(60), || {
        Ok((running(h1, "web").len() == 4).then_some(()))
    })
    .unwrap();
    // One at a time: never fewer than 3 running; replaced tasks carry the new env.
    h1.shoal(&["service", "update", "-d", "--env-add", "GEN=2", "web"])
        .unwrap();
    let start = Instant::now();
    let mut seen_new: Vec<(Duration, usize)> = Vec::new();
    loop {
        let r = running(h1, "web");
        assert!(r.len() >= 3, "only {} running mid-update", r.len());
        let new = r
            .iter()
            .filter(|t| env_of(t).contains(&"GEN=2".to_string()))
            .count();
        if seen_new.last().map(|(_, n)| *n) != Some(new) {
            seen_new.push((start.elapsed(), new));
        }
        let st = service(h1, "web")["UpdateStatus"]["State"]
            .as_str()
            .unwrap_or("")
            .to_string();
        if st == "completed" && new == 4 {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "update stuck: {st} {seen_new:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // Count steps: replaced tasks appear one at a time, at least a delay apart.
    let steps: Vec<usize> = seen_new.iter().map(|(_, n)| *n).collect();
    assert!(
        steps.windows(2).all(|w| w[1] <= w[0] + 1),
        "more than one task replaced at once: {seen_new:?}"
    );
    let elapsed = start.elapsed();
    assert!(
        elapsed >= Duration::from_secs(3),
        "4 tasks with a 1s delay took {elapsed:?}"
    );

    // A failing new image rolls back to GEN=2 on busybox.
    h1.shoal(&[
        "service",
        "update",
        "-d",
        "--image",
        "127.0.0.1:1/no-such-image:latest",
        "web",
    ])
    .unwrap();
    let end = watch_update(h1, "web", 3, Duration::from_secs(180));
    assert_eq!(end, "rollback_completed");
    let s = service(h1, "web");
    assert_eq!(
        s["Spec"]["TaskTemplate"]["ContainerSpec"]["Image"]
            .as_str()
            .unwrap_or("")
            .split('@')
            .next(),
        Some(BUSYBOX)
    );
    wait_for(
        "4 running after the rollback",
        Duration::from_secs(60),
        || {
            let r = running(h1, "web");
            Ok((r.len() == 4
                && r.iter().all(|t| {
                    t["Spec"]["ContainerSpec"]["Image"]
                        .as_str()
                        .unwrap_or("")
                        .starts_with(BUSYBOX)
                }))
            .then_some(()))
        },
    )
    .unwrap();
}

#[test]
fn new_leader_finishes_an_update_and_serves_logs() {
    let mut lab = lab(3);
    lab.form_cluster(3).unwrap();
    load_images(&lab);
    lab.wait_ready(3).unwrap();
    {
        let h1 = lab.host(1);
        create(
            h1,
            &[
                "--name",
                "slow",
                "--replicas",
                "3",
                "--update-parallelism",
                "1",
                "--update-delay",
                "3s",
                "--env",
                "GEN=1",
                BUSYBOX,
                "sh",
                "-c",
                "echo gen $GEN; sleep 600",
            ],
        );
        wait_for("3 running", Duration::from_secs(60), || {
            Ok((running(h1, "slow").len() == 3).then_some(()))
        })
        .unwrap();
        // Logs through a follower manager (it subscribes at the leader).
        let out = wait_for("logs via a follower", Duration::from_secs(30), || {
            let o = lab.host(2).shoal(&["service", "logs", "slow"])?;
            Ok((o.matches("gen 1").count() == 3).then_some(o))
        })
        .unwrap();
        let nodes: BTreeSet<String> = prefixed(&out)
            .into_iter()
            .filter_map(|(p, _)| p.rsplit_once('@').map(|(_, n)| n.to_string()))
            .collect();
        assert_eq!(nodes.len(), 3, "{out}");
        h1.shoal(&["service", "update", "-d", "--env-add", "GEN=2", "slow"])
            .unwrap();
        // Wait until the first task is replaced, then kill the leader.
        wait_for("the first task updated", Duration::from_secs(60), || {
            let r = running(h1, "slow");
            Ok(r.iter()
                .any(|t| env_of(t).contains(&"GEN=2".to_string()))
                .then_some(()))
        })
        .unwrap();
    }
    let leader = lab.host(1).shoal(&["node", "ls"]).unwrap();
    assert!(leader.contains("Leader"), "{leader}");
    lab.host_mut(1).kill9();
    let h2 = lab.host(2);
    let start = Instant::now();
    wait_for(
        "the new leader finishes the update",
        Duration::from_secs(120),
        || {
            let s = service(h2, "slow");
            let r = running(h2, "slow");
            let all_new =
                r.len() == 3 && r.iter().all(|t| env_of(t).contains(&"GEN=2".to_string()));
            Ok((s["UpdateStatus"]["State"] == "completed" && all_new).then_some(()))
        },
    )
    .unwrap();
    println!(
        "update finished by the new leader {:?} after the kill",
        start.elapsed()
    );
    // The lines of the new tasks, from the surviving managers' nodes.
    // The lines of the new tasks; old tasks on the dead node are reported missing on stderr.
    let out = wait_for("logs of the updated tasks", Duration::from_secs(30), || {
        let o = h2.shoal_output(&["service", "logs", "slow"])?;
        let text = String::from_utf8_lossy(&o.stdout).into_owned();
        Ok((o.status.success() && text.matches("gen 2").count() >= 3).then_some(o))
    })
    .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("incomplete log stream") && err.contains(&lab.host(1).name),
        "{err}"
    );
}

/// Many replicas at once (batch scheduling of identical tasks): 30 replicas land 10 per node,
/// all run, and removing the service leaves no container. Timings are in
/// `deploy/bench/services.sh`, not here.
#[test]
fn thirty_replicas_spread_evenly_and_go_away() {
    let lab = lab(3);
    lab.form_cluster(1).unwrap();
    load_images(&lab);
    let h1 = lab.host(1);
    lab.wait_ready(3).unwrap();
    create(
        h1,
        &[
            "--name",
            "many",
            "--replicas",
            "30",
            BUSYBOX,
            "sleep",
            "600",
        ],
    );
    let up = wait_for("30 running", Duration::from_secs(180), || {
        let r = running(h1, "many");
        Ok((r.len() == 30).then_some(r))
    })
    .unwrap();
    let mut per_node: BTreeMap<String, usize> = BTreeMap::new();
    for t in &up {
        *per_node
            .entry(t["NodeID"].as_str().unwrap_or("").to_string())
            .or_insert(0) += 1;
    }
    assert_eq!(per_node.len(), 3, "{per_node:?}");
    assert!(per_node.values().all(|n| *n == 10), "{per_node:?}");
    let slots: BTreeSet<u64> = up.iter().filter_map(|t| t["Slot"].as_u64()).collect();
    assert_eq!(slots, (1..=30).collect(), "one task per slot 1..=30");
    let ls = h1.shoal(&["service", "ls"]).unwrap();
    assert!(ls.contains("30/30"), "{ls}");
    h1.shoal(&["service", "rm", "many"]).unwrap();
    wait_no_containers(&lab, Duration::from_secs(120)).unwrap();
}

/// The agent remembers its assignments: restarted while its manager is down, it keeps the
/// task's container running and supervised, and the manager finds the same task running.
#[test]
fn agent_restart_without_managers_keeps_its_tasks() {
    let mut lab = lab(2);
    lab.form_cluster(1).unwrap();
    load_images(&lab);
    lab.wait_ready(2).unwrap();
    create(
        lab.host(1),
        &[
            "--name",
            "kept",
            "--constraint",
            "node.role==worker",
            BUSYBOX,
            "sleep",
            "600",
        ],
    );
    let task = wait_for(
        "the task running on the worker",
        Duration::from_secs(60),
        || {
            let r = running(lab.host(1), "kept");
            Ok((r.len() == 1).then(|| r[0].clone()))
        },
    )
    .unwrap();
    let task_id = task["ID"].as_str().unwrap().to_string();
    let container = task["Status"]["ContainerStatus"]["ContainerID"]
        .as_str()
        .unwrap()
        .to_string();
    // Let the agent save its assignments, then take the manager away and restart the agent.
    std::thread::sleep(Duration::from_secs(2));
    lab.host_mut(1).kill9();
    lab.host_mut(2).stop().unwrap();
    lab.host_mut(2).start().unwrap();
    wait_for(
        "the agent restores its assignments",
        Duration::from_secs(30),
        || {
            Ok(lab
                .host(2)
                .log_tail(200)
                .contains("restoring saved assignments")
                .then_some(()))
        },
    )
    .unwrap();
    let c = lab
        .host(2)
        .api_get(&format!("/v1.47/containers/{container}/json"))
        .unwrap();
    assert_eq!(c["State"]["Running"], true, "{c}");
    // The manager comes back and finds the same task running: nothing was replaced.
    lab.host_mut(1).start().unwrap();
    wait_for("the same task running", Duration::from_secs(60), || {
        let r = running(lab.host(1), "kept");
        Ok((r.len() == 1 && r[0]["ID"] == task_id.as_str()).then_some(()))
    })
    .unwrap();
    std::thread::sleep(Duration::from_secs(3));
    let all = tasks(lab.host(1), "kept");
    assert_eq!(all.len(), 1, "no replacement task: {all:?}");
}
