//! The orchestration driver on a real single-node Raft store: services are created through the
//! control functions, the leader loop schedules them, and a simulated agent moves tasks along.

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::Utc;
use shoal_manager::control;
use shoal_manager::manager::Manager;
use shoal_manager::orchestrator::Orchestration;
use shoal_store::{Change, RaftConfig, Store, plaintext_channels};
use shoal_types::service::{FailureAction, ServiceMode, UpdateConfig, UpdateOrder, UpdateState};
use shoal_types::task::TaskStatus;
use shoal_types::task_spec::{ContainerSpec, RestartCondition, RestartPolicy};
use shoal_types::{
    Meta, Node, NodeAvailability, NodeState, Object, ObjectKind, ServiceSpec, Task, TaskState,
};
use tokio::sync::watch;

struct Cluster {
    manager: Arc<Manager>,
    stop: watch::Sender<bool>,
    failing: Arc<Mutex<HashSet<String>>>,
    _dir: tempfile::TempDir,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

async fn cluster(nodes: &[&str]) -> Cluster {
    let dir = tempfile::tempdir().expect("tempdir");
    // Reserve a loopback port for the Raft address; a single member never dials it.
    let addr = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("loopback port")
        .to_string();
    let mut cfg = RaftConfig::new(1, &addr, dir.path());
    cfg.heartbeat_ms = 50;
    cfg.election_min_ms = 150;
    cfg.election_max_ms = 300;
    let store = Store::start(cfg, plaintext_channels())
        .await
        .expect("store starts");
    store
        .initialize_single()
        .await
        .expect("single-node cluster");
    let manager = Manager::new(store, "mgr".into(), addr, plaintext_channels());
    for id in nodes {
        add_node(&manager, id).await;
    }
    let (stop, stop_rx) = watch::channel(false);
    Orchestration::spawn(manager.clone(), stop_rx.clone());
    let failing = Arc::new(Mutex::new(HashSet::new()));
    tokio::spawn(agents(manager.clone(), failing.clone(), stop_rx));
    Cluster {
        manager,
        stop,
        failing,
        _dir: dir,
    }
}

async fn add_node(m: &Manager, id: &str) {
    let mut n = Node {
        id: id.into(),
        meta: Meta::now(),
        ..Node::default()
    };
    n.description.hostname = format!("host-{id}");
    n.status.state = NodeState::Ready;
    n.spec.availability = NodeAvailability::Active;
    n.description.resources.nano_cpus = 2_000_000_000;
    n.description.resources.memory_bytes = 4 << 30;
    m.propose(vec![Change::Create(Object::Node(n))])
        .await
        .expect("node created");
}

/// Simulated agents: every node is up; tasks move one state per round; images in `failing`
/// fail once running.
async fn agents(
    m: Arc<Manager>,
    failing: Arc<Mutex<HashSet<String>>>,
    stop: watch::Receiver<bool>,
) {
    while !*stop.borrow() {
        tokio::time::sleep(Duration::from_millis(40)).await;
        let view = m.view();
        let bad = failing.lock().map(|f| f.clone()).unwrap_or_default();
        let mut changes = Vec::new();
        for o in view.list(ObjectKind::Task) {
            let Object::Task(t) = o else { continue };
            if t.node_id.is_empty()
                || t.status.state < TaskState::Assigned
                || t.status.state > TaskState::Running
            {
                continue;
            }
            let next = if t.desired_state >= TaskState::Shutdown {
                Some(TaskState::Shutdown)
            } else if t.status.state == TaskState::Running {
                bad.contains(t.spec.image()).then_some(TaskState::Failed)
            } else if t.desired_state == TaskState::Ready {
                (t.status.state < TaskState::Ready).then_some(TaskState::Ready)
            } else {
                Some(TaskState::Running)
            };
            if let Some(s) = next {
                let mut t = t.clone();
                let v = t.meta.version.index;
                t.status = TaskStatus::new(s, s.as_str(), Utc::now());
                changes.push(Change::Update {
                    object: Object::Task(t),
                    expected_version: Some(v),
                });
            }
        }
        // One write per task: a conflict with the orchestrator only loses that one.
        for c in changes {
            let _ = m.propose(vec![c]).await;
        }
    }
}

fn spec(name: &str, image: &str, replicas: u64) -> ServiceSpec {
    let mut s = ServiceSpec::default();
    s.annotations.name = name.into();
    s.task_template.container_spec = Some(ContainerSpec {
        image: image.into(),
        ..ContainerSpec::default()
    });
    s.task_template.restart_policy = Some(RestartPolicy {
        condition: Some(RestartCondition::Any),
        delay: Some(100_000_000),
        max_attempts: Some(0),
        window: Some(0),
    });
    s.mode = ServiceMode::replicated(replicas);
    s
}

fn tasks(m: &Manager, svc: &str) -> Vec<Task> {
    m.view()
        .list(ObjectKind::Task)
        .filter_map(|o| match o {
            Object::Task(t) if t.service_id == svc => Some(t.clone()),
            _ => None,
        })
        .collect()
}

fn running_per_node(m: &Manager, svc: &str) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for t in tasks(m, svc) {
        if t.status.state == TaskState::Running && t.desired_state <= TaskState::Running {
            *out.entry(t.node_id).or_default() += 1;
        }
    }
    out
}

async fn wait_for(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if f() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for {what}");
}

async fn create(m: &Manager, s: ServiceSpec) -> String {
    let svc = control::create_service(&m.view(), s, Utc::now()).expect("valid spec");
    let id = svc.id.clone();
    m.propose(vec![Change::Create(Object::Service(svc))])
        .await
        .expect("service stored");
    id
}

async fn update(m: &Manager, id: &str, f: impl FnOnce(&mut ServiceSpec)) {
    let view = m.view();
    let cur = control::services::find_service(&view, id)
        .expect("service")
        .clone();
    let mut s = cur.spec.clone();
    f(&mut s);
    let v = cur.meta.version.index;
    let svc = control::update_service(&view, id, v, s, false, Utc::now()).expect("valid update");
    m.propose(vec![Change::Update {
        object: Object::Service(svc),
        expected_version: Some(v),
    }])
    .await
    .expect("update stored");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_spread_scale_and_restart() {
    let c = cluster(&["n1", "n2", "n3"]).await;
    let m = &c.manager;
    let id = create(m, spec("web", "bb:1", 6)).await;
    wait_for(
        "6 running tasks, 2 per node",
        Duration::from_secs(20),
        || {
            running_per_node(m, &id)
                .values()
                .copied()
                .collect::<Vec<_>>()
                == vec![2, 2, 2]
        },
    )
    .await;

    update(m, &id, |s| s.mode = ServiceMode::replicated(3)).await;
    wait_for("scaled down to 1 per node", Duration::from_secs(20), || {
        running_per_node(m, &id)
            .values()
            .copied()
            .collect::<Vec<_>>()
            == vec![1, 1, 1]
            && tasks(m, &id).len() == 3
    })
    .await;

    // Drain a node: its task moves.
    let view = m.view();
    let Some(Object::Node(n1)) = view.get(ObjectKind::Node, "n1") else {
        panic!("n1 missing")
    };
    let mut n1 = n1.clone();
    let v = n1.meta.version.index;
    n1.spec.availability = NodeAvailability::Drain;
    m.propose(vec![Change::Update {
        object: Object::Node(n1),
        expected_version: Some(v),
    }])
    .await
    .expect("drain");
    wait_for(
        "tasks off the drained node",
        Duration::from_secs(20),
        || {
            let per = running_per_node(m, &id);
            !per.contains_key("n1") && per.values().sum::<usize>() == 3
        },
    )
    .await;

    // A crashing task is replaced in its slot.
    c.failing.lock().expect("lock").insert("bb:1".into());
    wait_for("a failed task", Duration::from_secs(20), || {
        tasks(m, &id)
            .iter()
            .any(|t| t.status.state == TaskState::Failed)
    })
    .await;
    c.failing.lock().expect("lock").clear();
    wait_for("3 running again", Duration::from_secs(20), || {
        running_per_node(m, &id).values().sum::<usize>() == 3
    })
    .await;
    let failed = tasks(m, &id)
        .into_iter()
        .filter(|t| t.status.state == TaskState::Failed)
        .collect::<Vec<_>>();
    assert!(
        failed
            .iter()
            .all(|t| t.desired_state == TaskState::Shutdown)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_rolling_update_pauses_and_global_follows_nodes() {
    let c = cluster(&["n1", "n2"]).await;
    let m = &c.manager;
    let mut s = spec("web", "bb:1", 2);
    s.update_config = Some(UpdateConfig {
        parallelism: 1,
        delay: 0,
        failure_action: FailureAction::Pause,
        monitor: 1_000_000_000,
        max_failure_ratio: 0.0,
        order: UpdateOrder::StopFirst,
    });
    let id = create(m, s).await;
    let mut g = spec("agent", "bb:1", 1);
    g.mode = ServiceMode::global();
    let gid = create(m, g).await;
    wait_for("both services running", Duration::from_secs(20), || {
        running_per_node(m, &id).values().sum::<usize>() == 2
            && running_per_node(m, &gid).values().sum::<usize>() == 2
    })
    .await;

    c.failing.lock().expect("lock").insert("bad:1".into());
    update(m, &id, |s| {
        if let Some(cs) = &mut s.task_template.container_spec {
            cs.image = "bad:1".into();
        }
    })
    .await;
    wait_for("update paused", Duration::from_secs(20), || {
        control::services::find_service(&m.view(), &id)
            .ok()
            .and_then(|s| s.update_status.clone())
            .and_then(|u| u.state)
            == Some(UpdateState::Paused)
    })
    .await;

    add_node(m, "n3").await;
    wait_for(
        "global task on the new node",
        Duration::from_secs(20),
        || running_per_node(m, &gid).get("n3") == Some(&1),
    )
    .await;
}
