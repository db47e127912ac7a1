//! Cluster-core figures on the lab: idle RSS of a manager, committed writes per second
//! (1 and 16 concurrent API clients), and leader failover time after kill -9 (median of 5).
//!
//! Run: `deploy/bench/cluster.sh` (builds a release binary and runs this as root).

use anyhow::{Context, Result, anyhow};
use shoal_api::Client;
use shoal_e2e::{Lab, LabOptions, rss_kib, wait_for};
use shoal_types::ConfigSpec;
use std::time::{Duration, Instant};

fn spec(name: String) -> ConfigSpec {
    let mut s = ConfigSpec::default();
    s.annotations.name = name;
    s.data = Some(b"x".to_vec());
    s
}

async fn writes_per_second(uri: &str, clients: usize, per_client: usize, tag: &str) -> Result<f64> {
    let start = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..clients {
        let client = Client::new(uri).map_err(|e| anyhow!(e.message))?;
        let tag = tag.to_string();
        tasks.push(tokio::spawn(async move {
            for i in 0..per_client {
                client
                    .config_create(&spec(format!("{tag}-{c}-{i}")))
                    .await
                    .map_err(|e| anyhow!(e.message))?;
            }
            Ok::<(), anyhow::Error>(())
        }));
    }
    for t in futures::future::join_all(tasks).await {
        t??;
    }
    Ok((clients * per_client) as f64 / start.elapsed().as_secs_f64())
}

/// The leader as every manager sees it, once all three agree (a restarted node may briefly
/// believe in a stale leader).
fn leader(lab: &Lab) -> Option<usize> {
    let mut seen = Vec::new();
    for i in 1..=3 {
        let v = lab.host(i).api_get("/v1.47/nodes").ok()?;
        let l: usize = v
            .as_array()?
            .iter()
            .find(|n| n["ManagerStatus"]["Leader"] == true)?["Description"]["Hostname"]
            .as_str()?
            .trim_start_matches("node")
            .parse()
            .ok()?;
        seen.push(l);
    }
    (seen.iter().all(|l| *l == seen[0])).then(|| seen[0])
}

fn agreed_leader(lab: &Lab) -> Result<usize> {
    wait_for(
        "the managers to agree on a leader",
        Duration::from_secs(30),
        || Ok(leader(lab)),
    )
}

fn all_ready(lab: &Lab, via: usize) -> Result<Option<()>> {
    let v = lab.host(via).api_get("/v1.47/nodes")?;
    let nodes = v.as_array().cloned().unwrap_or_default();
    let ready = nodes
        .iter()
        .filter(|n| n["Status"]["State"] == "ready")
        .count();
    let reachable = nodes
        .iter()
        .filter(|n| n["ManagerStatus"]["Reachability"] == "reachable")
        .count();
    Ok((ready == 5 && reachable == 3).then_some(()))
}

fn main() -> Result<()> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut lab = Lab::new(LabOptions {
        hosts: 5,
        daemon_args: Vec::new(),
    })?;
    lab.form_cluster(3)?;
    wait_for("5 ready nodes", Duration::from_secs(60), || {
        all_ready(&lab, 1)
    })?;
    println!("binary: {}", shoal_e2e::shoal_bin().display());

    std::thread::sleep(Duration::from_secs(10));
    for i in 1..=5 {
        let h = lab.host(i);
        let role = if i <= 3 { "manager" } else { "worker" };
        println!(
            "idle RSS {} ({role}): {:.1} MiB",
            h.name,
            rss_kib(h.pid().context("daemon pid")?)? as f64 / 1024.0
        );
    }

    let rt = tokio::runtime::Runtime::new()?;
    let li = agreed_leader(&lab)?;
    let follower = if li == 1 { 2 } else { 1 };
    let leader_uri = lab.host(li).host_uri();
    let follower_uri = lab.host(follower).host_uri();
    let w1 = rt.block_on(writes_per_second(&leader_uri, 1, 300, "seq"))?;
    let w16 = rt.block_on(writes_per_second(&leader_uri, 16, 40, "par"))?;
    let wf16 = rt.block_on(writes_per_second(&follower_uri, 16, 40, "fwd"))?;
    println!("committed writes/s, 3 managers, API on the leader, 1 client: {w1:.0}");
    println!("committed writes/s, 3 managers, API on the leader, 16 clients: {w16:.0}");
    println!(
        "committed writes/s, 3 managers, API on a follower (forwarded), 16 clients: {wf16:.0}"
    );

    let mut failovers = Vec::new();
    for run in 0..5 {
        let li = agreed_leader(&lab)?;
        let survivor = (1..=3).find(|i| *i != li).unwrap_or(1);
        let uri = lab.host(survivor).host_uri();
        let client = Client::new(&uri).map_err(|e| anyhow!(e.message))?;
        let killed = Instant::now();
        lab.host_mut(li).kill9();
        let elapsed = rt.block_on(async {
            let mut i = 0;
            loop {
                i += 1;
                if client
                    .config_create(&spec(format!("failover-{run}-{i}")))
                    .await
                    .is_ok()
                {
                    return Ok(killed.elapsed());
                }
                if killed.elapsed() > Duration::from_secs(60) {
                    return Err(anyhow!("no write succeeded within 60 s"));
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })?;
        println!("failover run {}: {:.2} s", run + 1, elapsed.as_secs_f64());
        failovers.push(elapsed);
        lab.host_mut(li).start()?;
        wait_for("cluster healthy again", Duration::from_secs(60), || {
            all_ready(&lab, survivor)
        })?;
    }
    failovers.sort();
    println!(
        "leader failover after kill -9 (until a write succeeds), median of 5: {:.2} s",
        failovers[2].as_secs_f64()
    );
    Ok(())
}
