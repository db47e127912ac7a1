//! The filter pipeline, in swarmkit's order: ready/active, resources, constraints, platform,
//! host-mode ports, max replicas per node. The first failing filter names the reason.

use std::collections::{HashMap, HashSet};

use shoal_types::constraint::{Constraint, node_matches, parse_constraints};
use shoal_types::service::{PortProtocol, PublishMode};
use shoal_types::task_spec::Placement;
use shoal_types::{Node, NodeAvailability, NodeState, Service, Task};

use crate::orchestrator::platform_ok;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Reason {
    NotAvailable,
    Resources,
    Constraints,
    Platform,
    HostPort,
    MaxReplicas,
}

impl Reason {
    fn describe(self, n: usize) -> String {
        let nodes = if n == 1 { "node" } else { "nodes" };
        match self {
            Reason::NotAvailable => format!("{n} {nodes} not available"),
            Reason::Resources => format!("insufficient resources on {n} {nodes}"),
            Reason::Constraints => format!("scheduling constraints not satisfied on {n} {nodes}"),
            Reason::Platform => format!("unsupported platform on {n} {nodes}"),
            Reason::HostPort => format!("host-mode port already in use on {n} {nodes}"),
            Reason::MaxReplicas => format!("max replicas per node limit exceed on {n} {nodes}"),
        }
    }
}

/// "no suitable node (insufficient resources on 2 nodes; 1 node not available)".
pub fn explain(counts: &HashMap<Reason, usize>) -> String {
    let mut rs: Vec<(&Reason, &usize)> = counts.iter().filter(|(_, n)| **n > 0).collect();
    rs.sort();
    if rs.is_empty() {
        return "no suitable node (no nodes in the cluster)".to_string();
    }
    let parts: Vec<String> = rs.iter().map(|(r, n)| r.describe(**n)).collect();
    format!("no suitable node ({})", parts.join("; "))
}

/// What is tracked per node while scheduling (never re-read from the store per decision).
#[derive(Debug, Default, Clone)]
pub struct NodeInfo {
    pub total: usize,
    pub per_service: HashMap<String, usize>,
    pub cpu_used: i64,
    pub mem_used: i64,
    pub host_ports: HashSet<(u32, PortProtocol)>,
    /// Recent failures (last 5 minutes) per service.
    pub failures: HashMap<String, usize>,
}

impl NodeInfo {
    pub fn add(&mut self, t: &Task, svc_id: &str) {
        self.total += 1;
        // Looked up before inserting: a key allocation per task is a pass's cost at 100,000.
        match self.per_service.get_mut(svc_id) {
            Some(n) => *n += 1,
            None => {
                self.per_service.insert(svc_id.to_string(), 1);
            }
        }
        let (cpu, mem) = reservations(t);
        self.cpu_used += cpu;
        self.mem_used += mem;
        for p in host_ports_of_task(t) {
            self.host_ports.insert(p);
        }
    }
}

pub fn reservations(t: &Task) -> (i64, i64) {
    t.spec
        .resources
        .as_ref()
        .and_then(|r| r.reservations.as_ref())
        .map_or((0, 0), |r| (r.nano_cpus, r.memory_bytes))
}

fn host_ports_of_task(t: &Task) -> Vec<(u32, PortProtocol)> {
    t.endpoint
        .as_ref()
        .map(|e| host_ports(&e.ports))
        .unwrap_or_default()
}

fn host_ports(ports: &[shoal_types::service::PortConfig]) -> Vec<(u32, PortProtocol)> {
    ports
        .iter()
        .filter(|p| p.publish_mode == PublishMode::Host && p.published_port != 0)
        .map(|p| (p.published_port, p.protocol))
        .collect()
}

/// What one group of tasks (same service and spec version) needs from a node.
pub struct Needs {
    pub service_id: String,
    pub cpu: i64,
    pub mem: i64,
    pub constraints: Vec<Constraint>,
    pub placement: Option<Placement>,
    pub host_ports: Vec<(u32, PortProtocol)>,
    pub max_replicas: u64,
}

impl Needs {
    pub fn of(svc: &Service, sample: &Task) -> Needs {
        let placement = sample.spec.placement.clone();
        let (cpu, mem) = reservations(sample);
        let endpoint_ports = if svc.endpoint.ports.is_empty() {
            svc.spec
                .endpoint_spec
                .as_ref()
                .map(|e| host_ports(&e.ports))
                .unwrap_or_default()
        } else {
            host_ports(&svc.endpoint.ports)
        };
        Needs {
            service_id: svc.id.clone(),
            cpu,
            mem,
            constraints: placement
                .as_ref()
                .and_then(|p| parse_constraints(&p.constraints).ok())
                .unwrap_or_default(),
            max_replicas: placement.as_ref().map_or(0, |p| p.max_replicas),
            placement,
            host_ports: endpoint_ports,
        }
    }

    /// The first filter `node` fails, if any.
    pub fn check(&self, node: &Node, info: &NodeInfo) -> Option<Reason> {
        if node.status.state != NodeState::Ready
            || node.spec.availability != NodeAvailability::Active
        {
            return Some(Reason::NotAvailable);
        }
        self.check_dynamic(node, info)
    }

    /// The filters whose answer changes as tasks land on the node.
    pub fn check_dynamic(&self, node: &Node, info: &NodeInfo) -> Option<Reason> {
        let res = &node.description.resources;
        if (self.cpu > 0 && info.cpu_used + self.cpu > res.nano_cpus)
            || (self.mem > 0 && info.mem_used + self.mem > res.memory_bytes)
        {
            return Some(Reason::Resources);
        }
        if !node_matches(&self.constraints, node) {
            return Some(Reason::Constraints);
        }
        if let Some(p) = &self.placement
            && !platform_ok(p, node)
        {
            return Some(Reason::Platform);
        }
        if self.host_ports.iter().any(|p| info.host_ports.contains(p)) {
            return Some(Reason::HostPort);
        }
        if self.max_replicas > 0
            && info.per_service.get(&self.service_id).copied().unwrap_or(0) as u64
                >= self.max_replicas
        {
            return Some(Reason::MaxReplicas);
        }
        None
    }
}
