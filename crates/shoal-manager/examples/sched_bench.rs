//! Scheduler benchmark: 1,000 nodes, one service of 100,000 replicas.
//!
//! 1. In memory: one orchestrator + scheduler pass creates and assigns every task; prints the
//!    time and tasks/s, then the cost of an idle pass over the converged state.
//! 2. Through a single-node Raft store: the same pass, proposed in batches of 500 changes, one
//!    at a time and then 8 in flight (as the orchestrator proposes).
//!
//! `cargo run --release -p shoal-manager --example sched_bench [-- NODES TASKS]`

use std::collections::HashMap;
use std::time::Instant;

use chrono::Utc;
use futures::StreamExt;
use shoal_manager::control;
use shoal_manager::orchestrator::{MemObjects, pass, reap, reconcile};
use shoal_store::{Change, Command, RaftConfig, Store, plaintext_channels};
use shoal_types::service::ServiceMode;
use shoal_types::task_spec::ContainerSpec;
use shoal_types::{Meta, Node, NodeAvailability, NodeState, Object, ObjectKind, ServiceSpec};

fn node(i: usize) -> Node {
    let mut n = Node {
        id: format!("node{i:05}"),
        meta: Meta::now(),
        ..Node::default()
    };
    n.description.hostname = format!("host{i}");
    n.status.state = NodeState::Ready;
    n.spec.availability = NodeAvailability::Active;
    n.description.resources.nano_cpus = 64_000_000_000;
    n.description.resources.memory_bytes = 256 << 30;
    n
}

fn spec(replicas: u64) -> ServiceSpec {
    let mut s = ServiceSpec::default();
    s.annotations.name = "bench".into();
    s.task_template.container_spec = Some(ContainerSpec {
        image: "bb:1".into(),
        ..ContainerSpec::default()
    });
    s.mode = ServiceMode::replicated(replicas);
    s
}

fn spread(objs: impl Iterator<Item = Object>) -> (usize, usize, usize) {
    let mut per: HashMap<String, usize> = HashMap::new();
    for o in objs {
        if let Object::Task(t) = o
            && !t.node_id.is_empty()
        {
            *per.entry(t.node_id).or_default() += 1;
        }
    }
    let min = per.values().copied().min().unwrap_or(0);
    let max = per.values().copied().max().unwrap_or(0);
    (per.values().sum(), min, max)
}

fn in_memory(nodes: usize, tasks: u64) {
    let mut mem = MemObjects::new();
    for i in 0..nodes {
        mem.put(Object::Node(node(i)));
    }
    let svc = match control::create_service(&mem, spec(tasks), Utc::now()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("service refused: {}", e.message);
            return;
        }
    };
    mem.put(Object::Service(svc));
    let t0 = Instant::now();
    let changes = pass(&mem, Utc::now());
    let dt = t0.elapsed();
    let n = changes.len();
    let objs: Vec<Object> = changes
        .iter()
        .filter_map(|c| match c {
            Change::Create(o) => Some(o.clone()),
            _ => None,
        })
        .collect();
    let (assigned, min, max) = spread(objs.into_iter());
    println!(
        "in-memory: {n} tasks created, {assigned} assigned over {nodes} nodes (per node {min}..{max}) in {:.3}s = {:.0} tasks/s",
        dt.as_secs_f64(),
        assigned as f64 / dt.as_secs_f64()
    );
    if let Err(e) = mem.apply(&changes) {
        eprintln!("applying the pass failed: {}", e.message);
        return;
    }
    let t1 = Instant::now();
    let again = pass(&mem, Utc::now());
    let idle = t1.elapsed();
    let t2 = Instant::now();
    let orch = reconcile(&mem, Utc::now());
    let orch_t = t2.elapsed();
    let t3 = Instant::now();
    let reaped = reap(&mem);
    let reap_t = t3.elapsed();
    println!(
        "in-memory: idle pass over {tasks} tasks: {:.3}s ({} changes; orchestrators alone {:.3}s, reaper alone {:.3}s, {} changes)",
        idle.as_secs_f64(),
        again.len(),
        orch_t.as_secs_f64(),
        reap_t.as_secs_f64(),
        orch.len() + reaped.len()
    );
}

async fn through_store(nodes: usize, tasks: u64, in_flight: usize) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let addr = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .to_string();
    let store = Store::start(RaftConfig::new(1, &addr, dir.path()), plaintext_channels()).await?;
    store
        .initialize_single()
        .await
        .map_err(|e| anyhow::anyhow!("init: {e}"))?;
    let node_changes: Vec<Change> = (0..nodes)
        .map(|i| Change::Create(Object::Node(node(i))))
        .collect();
    for chunk in node_changes.chunks(500) {
        store
            .propose(Command::new(chunk.to_vec()))
            .await
            .map_err(|e| anyhow::anyhow!("nodes: {e}"))?;
    }
    let svc = control::create_service(&store.read(), spec(tasks), Utc::now())
        .map_err(|e| anyhow::anyhow!("{}", e.message))?;
    store
        .propose(Command::create(Object::Service(svc)))
        .await
        .map_err(|e| anyhow::anyhow!("service: {e}"))?;
    let t0 = Instant::now();
    let changes = pass(&store.read(), Utc::now());
    let computed = t0.elapsed();
    let batches = changes.chunks(500).len();
    let mut proposals = futures::stream::iter(changes.chunks(500))
        .map(|chunk| store.propose(Command::new(chunk.to_vec())))
        .buffer_unordered(in_flight);
    while let Some(r) = proposals.next().await {
        r.map_err(|e| anyhow::anyhow!("tasks: {e}"))?;
    }
    drop(proposals);
    let total = t0.elapsed();
    let view = store.read();
    let (assigned, min, max) = spread(view.list(ObjectKind::Task).cloned());
    println!(
        "raft store, {in_flight} in flight: {assigned} tasks assigned (per node {min}..{max}); pass {:.3}s, {batches} proposals, total {:.3}s = {:.0} tasks/s",
        computed.as_secs_f64(),
        total.as_secs_f64(),
        assigned as f64 / total.as_secs_f64()
    );
    store.shutdown().await;
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let nodes = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(1000);
    let tasks = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(100_000);
    in_memory(nodes, tasks);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    for in_flight in [1, 8] {
        rt.block_on(through_store(nodes, tasks, in_flight))?;
    }
    Ok(())
}
