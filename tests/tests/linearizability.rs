//! Acknowledged writes survive leader kills and partitions, in acknowledgement order.
//!
//! Three clients each write an increasing sequence number into their own node label, through
//! different managers, while the leader is killed and restarted and a partition comes and
//! goes. Afterwards every client's label must hold its last acknowledged value, or a later
//! value it attempted (a write whose acknowledgement was lost), never an older one.

use shoal_e2e::{Lab, LabOptions, shoal_bin, wait_for};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

fn set_label(socket_uri: &str, node: &str, key: &str, value: u64) -> bool {
    Command::new(shoal_bin())
        .args(["-H", socket_uri, "node", "update", "--label-add"])
        .arg(format!("{key}={value}"))
        .arg(node)
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

fn leader_index(lab: &Lab, candidates: &[usize]) -> Option<usize> {
    for &i in candidates {
        if let Ok(v) = lab.host(i).api_get("/v1.47/nodes") {
            for n in v.as_array().into_iter().flatten() {
                if n["ManagerStatus"]["Leader"] == true {
                    let name = n["Description"]["Hostname"].as_str()?;
                    return name.trim_start_matches("node").parse().ok();
                }
            }
        }
    }
    None
}

#[test]
fn acknowledged_writes_survive_kills_and_partitions() {
    let mut lab = Lab::new(LabOptions {
        hosts: 5,
        daemon_args: Vec::new(),
    })
    .unwrap();
    lab.form_cluster(3).unwrap();
    wait_for("5 nodes", Duration::from_secs(40), || {
        let out = lab.host(1).shoal(&["node", "ls"])?;
        Ok((out.matches("Ready").count() == 5).then_some(()))
    })
    .unwrap();

    let stop = Arc::new(AtomicBool::new(false));
    // Per client: (last acknowledged, last attempted).
    let results = Arc::new(Mutex::new(vec![(0u64, 0u64); 3]));
    let mut clients = Vec::new();
    for c in 0..3usize {
        // Client c writes label `c<c>` on node (4, 5, 1) through managers c+1, c+2, … in turn.
        let sockets: Vec<String> = (0..3)
            .map(|k| lab.host((c + k) % 3 + 1).host_uri())
            .collect();
        let target = ["node4", "node5", "node1"][c].to_string();
        let stop = stop.clone();
        let results = results.clone();
        clients.push(std::thread::spawn(move || {
            let mut seq = 0u64;
            let mut turn = 0usize;
            let start = Instant::now();
            while !stop.load(Ordering::SeqCst) && start.elapsed() < Duration::from_secs(90) {
                seq += 1;
                results.lock().unwrap()[c].1 = seq;
                let ok = set_label(&sockets[turn % 3], &target, &format!("c{c}"), seq);
                turn += 1;
                if ok {
                    results.lock().unwrap()[c].0 = seq;
                } else {
                    std::thread::sleep(Duration::from_millis(100));
                }
            }
        }));
    }

    std::thread::sleep(Duration::from_secs(3));
    let leader = leader_index(&lab, &[1, 2, 3]).expect("a leader");
    lab.host_mut(leader).kill9();
    std::thread::sleep(Duration::from_secs(5));
    lab.host_mut(leader).start().unwrap();
    std::thread::sleep(Duration::from_secs(3));
    let survivors: Vec<usize> = (1..=3).collect();
    let leader2 = leader_index(&lab, &survivors).expect("a leader after restart");
    let rest: Vec<usize> = (1..=5).filter(|i| *i != leader2).collect();
    lab.partition(&[leader2], &rest).unwrap();
    std::thread::sleep(Duration::from_secs(5));
    lab.heal().unwrap();
    std::thread::sleep(Duration::from_secs(5));
    stop.store(true, Ordering::SeqCst);
    for c in clients {
        c.join().unwrap();
    }

    let results = results.lock().unwrap().clone();
    eprintln!("(last acknowledged, last attempted) per client: {results:?}");
    for (c, (acked, attempted)) in results.iter().enumerate() {
        assert!(*acked > 3, "client {c} made almost no progress: {acked}");
        let node = ["node4", "node5", "node1"][c];
        // Wait until all three managers agree, then check the value.
        for m in 1..=3 {
            let value = wait_for("the final label", Duration::from_secs(30), || {
                let n = lab.host(m).api_get(&format!("/v1.47/nodes/{node}"))?;
                Ok(n["Spec"]["Labels"][format!("c{c}")]
                    .as_str()
                    .and_then(|v| v.parse::<u64>().ok())
                    .filter(|v| v >= acked))
            })
            .unwrap_or_else(|e| {
                panic!("client {c} on manager {m}: acknowledged {acked} lost: {e}")
            });
            assert!(
                value == *acked || value == *attempted,
                "client {c}: final {value}, acknowledged {acked}, attempted {attempted}"
            );
        }
    }
}
