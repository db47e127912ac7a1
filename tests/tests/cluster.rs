//! End-to-end tests of the cluster core on the lab (hosts = network namespaces, real daemons).
//! They need root and a built `shoal` binary (`cargo build -p shoal`).

use anyhow::{Result, bail};
use serde_json::Value;
use shoal_e2e::{Host, Lab, LabOptions, wait_for};
use std::time::{Duration, Instant};

fn lab(hosts: usize) -> Lab {
    Lab::new(LabOptions {
        hosts,
        daemon_args: Vec::new(),
    })
    .expect("creating the lab")
}

fn nodes(h: &Host) -> Result<Vec<Value>> {
    let v = h.api_get("/v1.47/nodes")?;
    match v {
        Value::Array(a) => Ok(a),
        other => bail!("GET /nodes on {}: {other}", h.name),
    }
}

/// (hostname, state, leader?) of every node, as host `h` sees them.
fn node_states(h: &Host) -> Result<Vec<(String, String, bool)>> {
    Ok(nodes(h)?
        .iter()
        .map(|n| {
            (
                n["Description"]["Hostname"]
                    .as_str()
                    .unwrap_or("")
                    .to_string(),
                n["Status"]["State"].as_str().unwrap_or("").to_string(),
                n["ManagerStatus"]["Leader"].as_bool().unwrap_or(false),
            )
        })
        .collect())
}

fn leader_name(h: &Host) -> Result<Option<String>> {
    Ok(node_states(h)?
        .into_iter()
        .find(|(_, _, leader)| *leader)
        .map(|(name, _, _)| name))
}

fn node_label(h: &Host, node: &str, key: &str) -> Result<Option<String>> {
    let n = h.api_get(&format!("/v1.47/nodes/{node}"))?;
    Ok(n["Spec"]["Labels"][key].as_str().map(str::to_string))
}

fn all_ready(h: &Host, count: usize) -> Result<Option<()>> {
    let states = node_states(h)?;
    Ok((states.len() == count && states.iter().all(|(_, s, _)| s == "ready")).then_some(()))
}

/// 3 managers + 2 workers, all Ready, with a leader everyone agrees on.
fn five_node_cluster() -> Lab {
    let lab = lab(5);
    lab.form_cluster(3).expect("forming the cluster");
    wait_for("5 ready nodes", Duration::from_secs(40), || {
        all_ready(lab.host(1), 5)
    })
    .unwrap();
    lab
}

#[test]
fn cluster_forms_and_survives_leader_kill() {
    let mut lab = five_node_cluster();
    // Managers show in node ls with a leader; workers have no manager status.
    let ls = lab.host(1).shoal(&["node", "ls"]).unwrap();
    assert!(ls.contains("Leader"), "{ls}");
    assert_eq!(ls.matches("Reachable").count(), 2, "{ls}");
    let workers = nodes(lab.host(1))
        .unwrap()
        .iter()
        .filter(|n| n["ManagerStatus"].is_null())
        .count();
    assert_eq!(workers, 2);

    // A write acknowledged before the kill.
    lab.host(2)
        .shoal(&["node", "update", "--label-add", "before=kill", "node4"])
        .unwrap();
    let leader = leader_name(lab.host(1)).unwrap().expect("a leader");
    let li: usize = leader.trim_start_matches("node").parse().unwrap();
    let survivor = if li == 1 { 2 } else { 1 };
    let killed_at = Instant::now();
    lab.host_mut(li).kill9();

    // A new leader among the survivors, and writes succeed again.
    wait_for(
        "a write after the leader died",
        Duration::from_secs(20),
        || {
            Ok(lab
                .host(survivor)
                .shoal(&["node", "update", "--label-add", "after=kill", "node5"])
                .ok()
                .map(|_| ()))
        },
    )
    .unwrap();
    eprintln!(
        "write accepted {:?} after kill -9 of the leader",
        killed_at.elapsed()
    );
    let new_leader = leader_name(lab.host(survivor))
        .unwrap()
        .expect("new leader");
    assert_ne!(new_leader, leader);
    assert_eq!(
        node_label(lab.host(survivor), "node4", "before")
            .unwrap()
            .as_deref(),
        Some("kill")
    );

    // The killed node comes back, rejoins and catches up with the write it missed.
    lab.host_mut(li).start().unwrap();
    wait_for(
        "the restarted manager to catch up",
        Duration::from_secs(30),
        || {
            Ok(node_label(lab.host(li), "node5", "after")
                .ok()
                .flatten()
                .filter(|v| v == "kill")
                .map(|_| ()))
        },
    )
    .unwrap();
    wait_for("all 5 ready again", Duration::from_secs(40), || {
        all_ready(lab.host(survivor), 5)
    })
    .unwrap();
}

#[test]
fn partitioned_minority_refuses_writes_and_nothing_is_lost() {
    let lab = five_node_cluster();
    let leader = leader_name(lab.host(1)).unwrap().expect("a leader");
    let li: usize = leader.trim_start_matches("node").parse().unwrap();
    let others: Vec<usize> = (1..=3).filter(|i| *i != li).collect();
    // Cut the leader off from the two other managers (and the workers).
    let rest: Vec<usize> = (1..=5).filter(|i| *i != li).collect();
    lab.partition(&[li], &rest).unwrap();

    // The majority side elects a leader and accepts writes.
    wait_for(
        "a write on the majority side",
        Duration::from_secs(20),
        || {
            Ok(lab
                .host(others[0])
                .shoal(&["node", "update", "--label-add", "side=majority", "node4"])
                .ok()
                .map(|_| ()))
        },
    )
    .unwrap();
    // The old leader, alone, refuses writes with a clear error.
    let out = lab
        .host(li)
        .shoal_output(&["node", "update", "--label-add", "side=minority", "node5"])
        .unwrap();
    assert!(!out.status.success(), "the minority accepted a write");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("quorum") || err.contains("leader"),
        "unclear error from the minority: {err}"
    );

    lab.heal().unwrap();
    // After healing, the majority's write is everywhere and the refused one nowhere.
    for i in 1..=3 {
        wait_for("healed state", Duration::from_secs(30), || {
            Ok(node_label(lab.host(i), "node4", "side")
                .ok()
                .flatten()
                .filter(|v| v == "majority")
                .map(|_| ()))
        })
        .unwrap();
        assert_eq!(node_label(lab.host(i), "node5", "side").unwrap(), None);
    }
}

#[test]
fn wrong_token_and_bad_requests_change_nothing() {
    let lab = lab(2);
    let (worker, _) = lab.init_swarm().unwrap();
    // A token for another CA (digest mismatch) and a rotated token are refused.
    let mut bad = worker.clone();
    let n = bad.len();
    bad.replace_range(n - 3.., "zzz");
    let err = lab.join(2, &bad, 1).unwrap_err().to_string();
    assert!(err.contains("token"), "{err}");
    let h1 = lab.host(1);
    h1.shoal(&["swarm", "join-token", "--rotate", "-q", "worker"])
        .unwrap();
    let err = lab.join(2, &worker, 1).unwrap_err().to_string();
    assert!(err.contains("token"), "{err}");
    assert_eq!(nodes(h1).unwrap().len(), 1);
    // Node 2 is still outside any swarm and can join with the new token.
    let info = lab.host(2).api_get("/info").unwrap();
    assert_eq!(info["Swarm"]["LocalNodeState"], "inactive");
    let fresh = h1.shoal(&["swarm", "join-token", "-q", "worker"]).unwrap();
    lab.join(2, fresh.trim(), 1).unwrap();
    wait_for("2 ready nodes", Duration::from_secs(30), || {
        all_ready(h1, 2)
    })
    .unwrap();

    // A second init is refused; so is removing a live node without --force.
    let out = h1.shoal_output(&["swarm", "init"]).unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("already part of a swarm"));
    let out = h1.shoal_output(&["node", "rm", "node2"]).unwrap();
    assert!(!out.status.success());
    assert_eq!(nodes(h1).unwrap().len(), 2);
    // A join to an address nobody listens on fails clearly.
    let lab2 = Lab::new(LabOptions {
        hosts: 1,
        daemon_args: Vec::new(),
    })
    .unwrap();
    let h = lab2.host(1);
    let out = h
        .shoal_output(&["swarm", "join", "--token", fresh.trim(), "10.77.0.9:2377"])
        .unwrap();
    assert!(!out.status.success());
}

#[test]
fn promote_demote_round_trip_and_restart_persistence() {
    let mut lab = lab(3);
    lab.form_cluster(1).unwrap();
    let h1 = lab.host(1);
    wait_for("3 ready nodes", Duration::from_secs(30), || {
        all_ready(h1, 3)
    })
    .unwrap();
    h1.shoal(&["node", "promote", "node2"]).unwrap();
    wait_for(
        "node2 to be a reachable manager",
        Duration::from_secs(40),
        || {
            Ok(nodes(h1)?
                .iter()
                .find(|n| n["Description"]["Hostname"] == "node2")
                .filter(|n| n["ManagerStatus"]["Reachability"] == "reachable")
                .map(|_| ()))
        },
    )
    .unwrap();
    // node2 now answers manager requests itself.
    wait_for(
        "node2 serving the cluster API",
        Duration::from_secs(20),
        || Ok(nodes(lab.host(2)).ok().filter(|n| n.len() == 3).map(|_| ())),
    )
    .unwrap();
    h1.shoal(&["node", "demote", "node2"]).unwrap();
    wait_for(
        "node2 to be a worker again",
        Duration::from_secs(40),
        || {
            Ok(nodes(h1)?
                .iter()
                .find(|n| n["Description"]["Hostname"] == "node2")
                .filter(|n| n["ManagerStatus"].is_null() && n["Spec"]["Role"] == "worker")
                .map(|_| ()))
        },
    )
    .unwrap();
    // The last manager cannot be demoted.
    let out = h1.shoal_output(&["node", "demote", "node1"]).unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("last manager"));

    // State persists across a daemon restart.
    h1.shoal(&["node", "update", "--label-add", "keep=yes", "node3"])
        .unwrap();
    lab.host_mut(1).stop().unwrap();
    lab.host_mut(1).start().unwrap();
    wait_for("state after restart", Duration::from_secs(30), || {
        Ok(node_label(lab.host(1), "node3", "keep")
            .ok()
            .flatten()
            .map(|_| ()))
    })
    .unwrap();
}

#[test]
fn force_new_cluster_recovers_a_lone_survivor() {
    let mut lab = lab(3);
    lab.form_cluster(3).unwrap();
    wait_for("3 ready nodes", Duration::from_secs(30), || {
        all_ready(lab.host(1), 3)
    })
    .unwrap();
    lab.host(1)
        .shoal(&["node", "update", "--label-add", "survives=yes", "node1"])
        .unwrap();
    // Lose two of three managers: no quorum.
    lab.host_mut(2).kill9();
    lab.host_mut(3).kill9();
    wait_for("quorum loss to show", Duration::from_secs(20), || {
        let out = lab
            .host(1)
            .shoal_output(&["node", "update", "--label-add", "x=y", "node1"])?;
        Ok((!out.status.success()).then_some(()))
    })
    .unwrap();
    lab.host(1)
        .shoal(&["swarm", "init", "--force-new-cluster"])
        .unwrap();
    wait_for(
        "writes on the recovered cluster",
        Duration::from_secs(20),
        || {
            Ok(lab
                .host(1)
                .shoal(&["node", "update", "--label-add", "after=recovery", "node1"])
                .ok()
                .map(|_| ()))
        },
    )
    .unwrap();
    assert_eq!(
        node_label(lab.host(1), "node1", "survives")
            .unwrap()
            .as_deref(),
        Some("yes")
    );
    let ls = lab.host(1).shoal(&["node", "ls"]).unwrap();
    assert_eq!(ls.matches("Leader").count(), 1, "{ls}");
}

#[test]
fn stock_docker_cli_drives_the_cluster() {
    let lab = lab(2);
    let h1 = lab.host(1);
    let out = h1
        .docker(&["swarm", "init", "--advertise-addr", &h1.addr])
        .unwrap();
    assert!(out.contains("docker swarm join --token SWMTKN-1-"), "{out}");
    let token = h1.docker(&["swarm", "join-token", "-q", "worker"]).unwrap();
    let h2 = lab.host(2);
    let out = h2
        .docker(&[
            "swarm",
            "join",
            "--token",
            token.trim(),
            "--advertise-addr",
            &h2.addr,
            &format!("{}:2377", h1.addr),
        ])
        .unwrap();
    assert!(
        out.contains("This node joined a swarm as a worker"),
        "{out}"
    );
    wait_for("2 ready nodes", Duration::from_secs(30), || {
        all_ready(h1, 2)
    })
    .unwrap();
    let ls = h1.docker(&["node", "ls"]).unwrap();
    assert!(ls.contains("node1 *") || ls.contains("*"), "{ls}");
    assert!(ls.contains("Leader") && ls.contains("node2"), "{ls}");
    let inspect = h1.docker(&["node", "inspect", "self"]).unwrap();
    assert!(inspect.contains("\"Role\": \"manager\""), "{inspect}");
    let info = h1.docker(&["info"]).unwrap();
    assert!(info.contains("Swarm: active"), "{info}");
    let version = h1.docker(&["version"]).unwrap();
    assert!(version.contains("1.47"), "{version}");
}

#[test]
fn autolock_needs_the_unlock_key_after_restart() {
    let mut lab = lab(1);
    let h = lab.host(1);
    let out = h
        .shoal(&["swarm", "init", "--autolock", "--advertise-addr", &h.addr])
        .unwrap();
    assert!(out.contains("SWMKEY-1-"), "{out}");
    let key = h.shoal(&["swarm", "unlock-key", "-q"]).unwrap();
    let key = key.trim().to_string();
    assert!(key.starts_with("SWMKEY-1-"));
    // The node key on disk is sealed.
    let key_file = std::fs::read_to_string(h.data_root().join("certificates/swarm-node.key"))
        .unwrap_or_default();
    assert!(
        !key_file.contains("BEGIN PRIVATE KEY"),
        "node key stored in clear"
    );

    lab.host_mut(1).stop().unwrap();
    lab.host_mut(1).start().unwrap();
    let h = lab.host(1);
    let info = h.api_get("/info").unwrap();
    assert_eq!(info["Swarm"]["LocalNodeState"], "locked");
    let out = h.shoal_output(&["node", "ls"]).unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("unlock"));
    let wrong = "SWMKEY-1-AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
    let out = h
        .shoal_stdin(&["swarm", "unlock"], &format!("{wrong}\n"))
        .unwrap();
    assert!(!out.status.success());
    assert_eq!(
        h.api_get("/info").unwrap()["Swarm"]["LocalNodeState"],
        "locked"
    );
    let out = h
        .shoal_stdin(&["swarm", "unlock"], &format!("{key}\n"))
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    wait_for("the unlocked manager", Duration::from_secs(20), || {
        Ok(all_ready(lab.host(1), 1).ok().flatten())
    })
    .unwrap();
}

#[test]
fn killed_worker_goes_down_and_comes_back_ready() {
    let mut lab = lab(2);
    lab.form_cluster(1).unwrap();
    let h1 = lab.host(1);
    wait_for("2 ready nodes", Duration::from_secs(30), || {
        all_ready(h1, 2)
    })
    .unwrap();
    h1.shoal(&["swarm", "update", "--dispatcher-heartbeat", "1s"])
        .unwrap();
    let swarm = h1.api_get("/v1.47/swarm").unwrap();
    assert_eq!(
        swarm["Spec"]["Dispatcher"]["HeartbeatPeriod"],
        1_000_000_000u64
    );
    std::thread::sleep(Duration::from_secs(2));
    let killed = Instant::now();
    lab.host_mut(2).kill9();
    wait_for("node2 down", Duration::from_secs(20), || {
        Ok(node_states(lab.host(1))?
            .into_iter()
            .find(|(n, s, _)| n == "node2" && s == "down")
            .map(|_| ()))
    })
    .unwrap();
    eprintln!("node2 marked down {:?} after kill -9", killed.elapsed());
    lab.host_mut(2).start().unwrap();
    wait_for("node2 ready again", Duration::from_secs(30), || {
        all_ready(lab.host(1), 2)
    })
    .unwrap();
}
