//! A simulated cluster for unit tests: an in-memory store, nodes, and agents that move tasks
//! through their states the way the real agent would.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, TimeZone, Utc};
use shoal_store::Change;
use shoal_types::task::TaskStatus;
use shoal_types::task_spec::{ContainerSpec, RestartCondition, RestartPolicy};
use shoal_types::{
    Meta, Node, NodeAvailability, NodeRole, NodeState, Object, ObjectKind, Service, ServiceSpec,
    Task, TaskState,
};

use super::{MemObjects, ObjectSource, pass};
use crate::control;

pub struct Sim {
    pub mem: MemObjects,
    pub now: DateTime<Utc>,
    /// Images whose containers fail right after starting.
    pub failing_images: Vec<String>,
}

pub fn spec(name: &str, image: &str, replicas: u64) -> ServiceSpec {
    let mut s = ServiceSpec::default();
    s.annotations.name = name.into();
    s.task_template.container_spec = Some(ContainerSpec {
        image: image.into(),
        ..ContainerSpec::default()
    });
    s.mode = shoal_types::service::ServiceMode::replicated(replicas);
    s
}

pub fn restart(cond: RestartCondition, delay_s: i64, max: u64) -> RestartPolicy {
    RestartPolicy {
        condition: Some(cond),
        delay: Some(delay_s * 1_000_000_000),
        max_attempts: Some(max),
        window: Some(0),
    }
}

impl Sim {
    /// An empty cluster with its `ingress` network, as `swarm init` leaves it.
    pub fn new() -> Sim {
        let mut sim = Sim {
            mem: MemObjects::new(),
            now: Utc
                .with_ymd_and_hms(2026, 1, 1, 0, 0, 0)
                .single()
                .unwrap_or_default(),
            failing_images: Vec::new(),
        };
        let ingress = crate::network::default_ingress(&shoal_types::Cluster::default(), sim.now)
            .expect("the default ingress network allocates");
        sim.mem.put(Object::Network(ingress));
        sim
    }

    pub fn add_node(&mut self, id: &str, labels: &[(&str, &str)]) {
        let mut n = Node {
            id: id.into(),
            meta: Meta::created(self.now),
            ..Node::default()
        };
        n.description.hostname = format!("host-{id}");
        n.spec.role = NodeRole::Worker;
        n.spec.availability = NodeAvailability::Active;
        n.status.state = NodeState::Ready;
        n.description.resources.nano_cpus = 4_000_000_000;
        n.description.resources.memory_bytes = 8 << 30;
        n.description.platform.os = "linux".into();
        n.description.platform.architecture = "x86_64".into();
        for (k, v) in labels {
            n.spec
                .annotations
                .labels
                .insert(k.to_string(), v.to_string());
        }
        self.mem.put(Object::Node(n));
    }

    pub fn node(&self, id: &str) -> Node {
        match self.mem.object(ObjectKind::Node, id) {
            Some(Object::Node(n)) => n.clone(),
            _ => panic!("no node {id}"),
        }
    }

    pub fn edit_node(&mut self, id: &str, f: impl FnOnce(&mut Node)) {
        let mut n = self.node(id);
        f(&mut n);
        self.mem.put(Object::Node(n));
    }

    pub fn create(&mut self, spec: ServiceSpec) -> String {
        let svc = control::create_service(&self.mem, spec, self.now).expect("valid service");
        let id = svc.id.clone();
        self.mem
            .apply(&[Change::Create(Object::Service(svc))])
            .expect("create applies");
        id
    }

    pub fn service(&self, id: &str) -> Service {
        match self.mem.object(ObjectKind::Service, id) {
            Some(Object::Service(s)) => s.clone(),
            _ => panic!("no service {id}"),
        }
    }

    pub fn update(&mut self, id: &str, f: impl FnOnce(&mut ServiceSpec)) {
        let cur = self.service(id);
        let mut spec = cur.spec.clone();
        f(&mut spec);
        let svc =
            control::update_service(&self.mem, id, cur.meta.version.index, spec, false, self.now)
                .expect("valid update");
        let v = cur.meta.version.index;
        self.mem
            .apply(&[Change::Update {
                object: Object::Service(svc),
                expected_version: Some(v),
            }])
            .expect("update applies");
    }

    pub fn tasks(&self, svc: &str) -> Vec<Task> {
        self.mem
            .objects(ObjectKind::Task)
            .filter_map(|o| match o {
                Object::Task(t) if t.service_id == svc => Some(t.clone()),
                _ => None,
            })
            .collect()
    }

    /// Tasks of the service that run (observed running, desired not stopped).
    pub fn running(&self, svc: &str) -> Vec<Task> {
        self.tasks(svc)
            .into_iter()
            .filter(|t| {
                t.status.state == TaskState::Running && t.desired_state <= TaskState::Complete
            })
            .collect()
    }

    pub fn running_per_node(&self, svc: &str) -> BTreeMap<String, usize> {
        let mut m = BTreeMap::new();
        for t in self.running(svc) {
            *m.entry(t.node_id).or_default() += 1;
        }
        m
    }

    /// One manager pass.
    pub fn step(&mut self) {
        let changes = pass(&self.mem, self.now);
        self.mem.apply(&changes).expect("a pass applies cleanly");
    }

    /// Agents on ready nodes move their tasks one step; stopped nodes do nothing.
    pub fn agents(&mut self) {
        let mut changes = Vec::new();
        for o in self.mem.objects(ObjectKind::Task) {
            let Object::Task(t) = o else { continue };
            if t.node_id.is_empty() || t.status.state < TaskState::Assigned {
                continue;
            }
            let up = matches!(
                self.mem.object(ObjectKind::Node, &t.node_id),
                Some(Object::Node(n)) if n.status.state == NodeState::Ready
            );
            if !up || t.status.state > TaskState::Running {
                continue;
            }
            let next = if t.desired_state >= TaskState::Shutdown {
                Some(TaskState::Shutdown)
            } else if t.status.state == TaskState::Running {
                if self.failing_images.iter().any(|i| i == t.spec.image()) {
                    Some(TaskState::Failed)
                } else if t.desired_state == TaskState::Complete {
                    Some(TaskState::Complete)
                } else {
                    None
                }
            } else if t.desired_state == TaskState::Ready {
                (t.status.state < TaskState::Ready).then_some(TaskState::Ready)
            } else {
                Some(TaskState::Running)
            };
            if let Some(s) = next {
                let mut t = t.clone();
                let v = t.meta.version.index;
                t.status = TaskStatus::new(s, s.as_str(), self.now);
                changes.push(Change::Update {
                    object: Object::Task(t),
                    expected_version: Some(v),
                });
            }
        }
        self.mem.apply(&changes).expect("agent updates apply");
    }

    /// `n` rounds of manager pass + agents, one second apart.
    pub fn run(&mut self, n: usize) {
        for _ in 0..n {
            self.step();
            self.agents();
            self.now += Duration::seconds(1);
        }
    }
}
