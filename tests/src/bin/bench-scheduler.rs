//! Scheduler throughput over real gRPC: one manager daemon in a lab namespace, N simulated
//! agents in this process (each joined with the worker token, so each has its own node
//! certificate; each heartbeats, opens its Assignments stream and reports its tasks running in
//! batches), one service of M replicas. Prints the time until all tasks are assigned to agents
//! and until all are reported running, tasks/s, and the manager's RSS.
//!
//! Usage: bench-scheduler [AGENTS (default 1000)] [TASKS (default 10000)]

use anyhow::{Context, Result, anyhow};
use shoal_e2e::{Lab, LabOptions, in_netns, rss_kib, wait_for};
use shoal_manager::ca::{self, JoinParams, NodeCredentials};
use shoal_proto::dispatcher::dispatcher_client::DispatcherClient;
use shoal_proto::dispatcher::{
    AssignmentsRequest, HeartbeatRequest, TaskStatusUpdate, UpdateTaskStatusRequest,
};
use shoal_types::node::NodeDescription;
use shoal_types::{Task, TaskState, TaskStatus};
use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Distinct task IDs delivered to any agent (a task moved between nodes counts once).
type Delivered = Arc<Mutex<HashSet<String>>>;

/// One simulated agent: heartbeats, follows its assignments, reports new tasks running.
async fn agent(addr: String, creds: NodeCredentials, assigned: Delivered) -> Result<()> {
    let ch = ca::tls::endpoint(&addr, &creds)
        .map_err(|e| anyhow!("{e}"))?
        .timeout(Duration::from_secs(30))
        .connect_lazy();
    let mut desc = NodeDescription {
        hostname: format!("fake-{}", &creds.node_id[..8.min(creds.node_id.len())]),
        ..Default::default()
    };
    desc.platform.os = "linux".into();
    desc.platform.architecture = "x86_64".into();
    desc.resources.nano_cpus = 4_000_000_000;
    desc.resources.memory_bytes = 8 << 30;
    let description_json = serde_json::to_vec(&desc)?;
    let hb = ch.clone();
    tokio::spawn(async move {
        let mut first = true;
        loop {
            let req = HeartbeatRequest {
                description_json: if first {
                    description_json.clone()
                } else {
                    Vec::new()
                },
                addr: String::new(),
            };
            let period = match DispatcherClient::new(hb.clone()).heartbeat(req).await {
                Ok(r) => {
                    first = false;
                    Duration::from_millis(r.into_inner().period_ms.max(100))
                }
                Err(_) => Duration::from_millis(500),
            };
            tokio::time::sleep(period).await;
        }
    });
    let mut stream = loop {
        match DispatcherClient::new(ch.clone())
            .assignments(AssignmentsRequest {})
            .await
        {
            Ok(s) => break s.into_inner(),
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    };
    let mut known: HashSet<String> = HashSet::new();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<String>();
    let reporter = ch.clone();
    tokio::spawn(async move {
        // Batched like the real agent: whatever accumulated, every 100 ms, kept until a
        // manager takes it.
        let mut pending: BTreeMap<String, TaskStatus> = BTreeMap::new();
        loop {
            if pending.is_empty() {
                let Some(id) = rx.recv().await else { return };
                pending.insert(
                    id,
                    TaskStatus::new(TaskState::Running, "started", chrono::Utc::now()),
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
            while let Ok(id) = rx.try_recv() {
                pending.insert(
                    id,
                    TaskStatus::new(TaskState::Running, "started", chrono::Utc::now()),
                );
            }
            let updates: Vec<TaskStatusUpdate> = pending
                .iter()
                .map(|(id, st)| TaskStatusUpdate {
                    task_id: id.clone(),
                    status_json: serde_json::to_vec(st).unwrap_or_default(),
                })
                .collect();
            let req = UpdateTaskStatusRequest { updates };
            match DispatcherClient::new(reporter.clone())
                .update_task_status(req)
                .await
            {
                Ok(_) => pending.clear(),
                Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        }
    });
    while let Some(msg) = stream.message().await? {
        for raw in &msg.tasks_json {
            let Ok(t) = serde_json::from_slice::<Task>(raw) else {
                continue;
            };
            if t.desired_state == TaskState::Running && known.insert(t.id.clone()) {
                if let Ok(mut d) = assigned.lock() {
                    d.insert(t.id.clone());
                }
                let _ = tx.send(t.id);
            }
        }
    }
    Ok(())
}

fn delivered(d: &Delivered) -> usize {
    d.lock().map(|s| s.len()).unwrap_or(0)
}

fn running_tasks(lab: &Lab, name: &str) -> Result<u64> {
    let list = lab.host(1).api_get("/v1.47/services?status=true")?;
    Ok(list
        .as_array()
        .into_iter()
        .flatten()
        .find(|s| s["Spec"]["Name"] == name)
        .and_then(|s| s["ServiceStatus"]["RunningTasks"].as_u64())
        .unwrap_or(0))
}

fn main() -> Result<()> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let args: Vec<String> = std::env::args().collect();
    let agents: usize = args.get(1).map(|s| s.parse()).transpose()?.unwrap_or(1000);
    let tasks: u64 = args
        .get(2)
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(10_000);
    let lab = Lab::new(LabOptions {
        hosts: 1,
        daemon_args: Vec::new(),
    })?;
    let (worker_token, _) = lab.init_swarm()?;
    let h1 = lab.host(1);
    // Only the simulated agents take tasks.
    let self_id = h1.shoal(&["node", "ls", "-q"])?.trim().to_string();
    h1.shoal(&["node", "update", "--availability", "drain", &self_id])?;
    let pid = h1.pid().context("manager pid")?;
    let idle_rss = rss_kib(pid)?;
    let addr = format!("{}:2377", h1.addr);
    let ns = h1.netns.clone();
    let assigned: Delivered = Arc::new(Mutex::new(HashSet::new()));

    // The agents live on a runtime whose threads are in the lab host's namespace.
    let counter = assigned.clone();
    let (rt_tx, rt_rx) = std::sync::mpsc::channel::<Result<tokio::runtime::Runtime>>();
    let join_addr = addr.clone();
    let joined = in_netns(&ns, move || -> Result<Duration> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()?;
        let start = Instant::now();
        let creds: Vec<NodeCredentials> = rt.block_on(async {
            let mut out = Vec::with_capacity(agents);
            let mut set = tokio::task::JoinSet::new();
            let mut next = 0usize;
            while out.len() < agents {
                while set.len() < 16 && next < agents {
                    let (a, t) = (join_addr.clone(), worker_token.clone());
                    let i = next;
                    set.spawn(async move {
                        let params = JoinParams {
                            hostname: format!("fake{i}"),
                            ..Default::default()
                        };
                        ca::join_bootstrap(&a, &t, &params).await
                    });
                    next += 1;
                }
                match set.join_next().await {
                    Some(Ok(Ok(c))) => out.push(c),
                    Some(Ok(Err(e))) => return Err(anyhow!("join: {e}")),
                    Some(Err(e)) => return Err(anyhow!("join task: {e}")),
                    None => break,
                }
            }
            Ok(out)
        })?;
        let took = start.elapsed();
        for c in creds {
            let (a, n) = (join_addr.clone(), counter.clone());
            rt.spawn(async move {
                if let Err(e) = agent(a, c, n).await {
                    eprintln!("agent: {e:#}");
                }
            });
        }
        let _ = rt_tx.send(Ok(rt));
        Ok(took)
    })??;
    let _rt = rt_rx.recv().map_err(|_| anyhow!("agent runtime lost"))??;
    println!(
        "{agents} agents joined (each its own certificate) in {:.1} s",
        joined.as_secs_f64()
    );
    wait_for(
        &format!("{agents} ready workers"),
        Duration::from_secs(120),
        || {
            let nodes = h1.api_get("/v1.47/nodes")?;
            let ready = nodes
                .as_array()
                .into_iter()
                .flatten()
                .filter(|n| n["Status"]["State"] == "ready" && n["Spec"]["Role"] == "worker")
                .count();
            Ok((ready == agents).then_some(()))
        },
    )?;
    let before = rss_kib(pid)?;

    let start = Instant::now();
    h1.shoal(&[
        "service",
        "create",
        "-d",
        "--name",
        "bench",
        "--replicas",
        &tasks.to_string(),
        "shoal-test/busybox:latest",
        "true",
    ])?;
    let mut all_assigned = None;
    let mut peak_rss = before;
    let limit = Duration::from_secs(300);
    let mut next_progress = Duration::from_secs(1);
    loop {
        if all_assigned.is_none() && delivered(&assigned) as u64 >= tasks {
            all_assigned = Some(start.elapsed());
        }
        peak_rss = peak_rss.max(rss_kib(pid)?);
        let up = running_tasks(&lab, "bench")?;
        if start.elapsed() >= next_progress {
            println!(
                "  {:5.1} s: {} assigned to agents, {up} reported running",
                start.elapsed().as_secs_f64(),
                delivered(&assigned)
            );
            next_progress += Duration::from_secs(1);
        }
        if up >= tasks {
            break;
        }
        if start.elapsed() > limit {
            return Err(anyhow!(
                "not all running after {limit:?}: {} of {tasks} assigned to agents, {up} reported running; manager RSS peak {:.1} MiB",
                delivered(&assigned),
                peak_rss as f64 / 1024.0
            ));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let all_running = start.elapsed();
    let all_assigned = all_assigned.unwrap_or(all_running);
    println!("{tasks} tasks on {agents} simulated agents (one manager, real gRPC + mTLS):");
    println!(
        "  create → all assigned to agents: {:.2} s ({:.0} tasks/s scheduled and dispatched)",
        all_assigned.as_secs_f64(),
        tasks as f64 / all_assigned.as_secs_f64()
    );
    println!(
        "  create → all reported running:   {:.2} s ({:.0} tasks/s)",
        all_running.as_secs_f64(),
        tasks as f64 / all_running.as_secs_f64()
    );
    println!(
        "  manager RSS: idle {:.1} MiB, with {agents} agents {:.1} MiB, peak during the run {:.1} MiB, after {:.1} MiB",
        idle_rss as f64 / 1024.0,
        before as f64 / 1024.0,
        peak_rss as f64 / 1024.0,
        rss_kib(pid)? as f64 / 1024.0
    );
    Ok(())
}
