//! The leader's network allocator, one step of every orchestration pass (after the
//! orchestrators, before the scheduler): networks get subnets and VXLAN ids, nodes their
//! routing-mesh address on `ingress`, services their VIPs, and new tasks their addresses.
//!
//! Like the orchestrators it is a pure function of the store snapshot: the addresses in use are
//! recomputed every pass (gateways, VIPs, node addresses, addresses of tasks that have not ended),
//! so a new leader carries on without any state of its own, and an address comes free once its
//! task has ended or is gone. A task that cannot get its addresses stays PENDING with a message
//! saying why, and is kept from the scheduler (so never dispatched) until a later pass succeeds.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use chrono::{DateTime, Utc};
use shoal_types::service::{Endpoint, EndpointVirtualIP, ResolutionMode};
use shoal_types::task::NetworkAttachment;
use shoal_types::{Network, Service, Task, TaskState, TaskStatus};

use super::control::{ghost_networks, holds_addresses, publishes_ingress};
use super::ipam::{AddressPool, NODE_ADDR_PREFIX, allocate_network, is_allocated, network_subnets};
use crate::orchestrator::{ClusterState, Plan};
use shoal_types::network::{OPT_VXLAN_ID_LIST, subnets_overlap};

/// The message of a task waiting for the scheduler (as the orchestrators write it).
const PENDING_SCHEDULING: &str = "pending task scheduling";

/// Runs the allocation step; returns the IDs of tasks (stored or created by this plan) that must
/// not be scheduled this pass because their addresses could not be allocated.
pub(crate) fn allocate(st: &ClusterState, now: DateTime<Utc>, plan: &mut Plan) -> HashSet<String> {
    let nets = allocate_networks(st, plan);
    let mut pools: HashMap<String, AddressPool> = nets
        .values()
        .filter_map(|n| AddressPool::of(n).map(|p| (n.id.clone(), p)))
        .collect();
    mark_in_use(st, plan, &nets, &mut pools);
    allocate_node_addresses(st, plan, &nets, &mut pools);
    let service_errors = allocate_vips(st, plan, &nets, &mut pools);
    allocate_tasks(st, now, plan, &nets, &mut pools, &service_errors)
}

/// Networks as this pass leaves them, unallocated ones allocated (oldest first, so a new
/// leader picks the same subnets).
fn allocate_networks(st: &ClusterState, plan: &mut Plan) -> BTreeMap<String, Network> {
    let mut order: Vec<&Network> = st.networks.values().copied().collect();
    order.sort_by(|a, b| {
        a.meta
            .created_at
            .cmp(&b.meta.created_at)
            .then_with(|| a.id.cmp(&b.id))
    });
    let mut nets: BTreeMap<String, Network> = order
        .iter()
        .map(|n| (n.id.clone(), plan.network(n).clone()))
        .collect();
    let ghosts: Vec<Network> = ghost_networks(
        st.all_tasks.iter().copied(),
        &|id| st.networks.contains_key(id),
        &|id| st.nodes.contains_key(id),
    )
    .into_iter()
    .cloned()
    .collect();
    for &n in &order {
        if is_allocated(&nets[&n.id]) {
            continue;
        }
        let mut updated = nets[&n.id].clone();
        let others: Vec<&Network> = nets
            .values()
            .filter(|o| o.id != n.id)
            .chain(ghosts.iter())
            .collect();
        match allocate_network(&mut updated, &others, st.cluster) {
            Ok(()) => {
                let copy = updated.clone();
                plan.update_network(n, move |x| *x = copy);
                nets.insert(n.id.clone(), updated);
            }
            Err(e) => tracing::warn!(
                "allocator: network {}: {}",
                n.spec.annotations.name,
                e.message
            ),
        }
    }
    repair_conflicts(st, plan, &order, &ghosts, &mut nets);
    nets
}

/// Two networks created at the same moment (on different managers, from the same store view)
/// may have been given the same pool subnet or VXLAN id. The younger one (or else the older)
/// is allocated again, as long as nothing uses it yet and its subnet came from the pool.
fn repair_conflicts(
    st: &ClusterState,
    plan: &mut Plan,
    order: &[&Network],
    ghosts: &[Network],
    nets: &mut BTreeMap<String, Network>,
) {
    let mut used: HashSet<&str> = HashSet::new();
    for t in &st.all_tasks {
        for a in &t.networks_attachments {
            used.insert(a.network.id.as_str());
        }
    }
    for s in st.services.values() {
        for v in &s.endpoint.virtual_ips {
            used.insert(v.network_id.as_str());
        }
    }
    let movable = |n: &Network| {
        !used.contains(n.id.as_str())
            && n.spec
                .ipam_options
                .as_ref()
                .is_none_or(|i| i.configs.iter().all(|c| c.subnet.is_empty()))
    };
    for (i, b) in order.iter().enumerate() {
        for a in &order[..i] {
            let (na, nb) = (&nets[&a.id], &nets[&b.id]);
            let clash = (na.vni().is_some() && na.vni() == nb.vni())
                || network_subnets(na)
                    .iter()
                    .any(|x| network_subnets(nb).iter().any(|y| subnets_overlap(x, y)));
            if !clash {
                continue;
            }
            let victim = if movable(nb) {
                *b
            } else if movable(na) {
                *a
            } else {
                tracing::warn!(
                    "allocator: networks {} and {} overlap and both are in use",
                    a.spec.annotations.name,
                    b.spec.annotations.name
                );
                continue;
            };
            let mut updated = nets[&victim.id].clone();
            updated.ipam_options = None;
            updated.driver_state.options.remove(OPT_VXLAN_ID_LIST);
            let others: Vec<&Network> = nets
                .values()
                .filter(|o| o.id != victim.id)
                .chain(ghosts.iter())
                .collect();
            match allocate_network(&mut updated, &others, st.cluster) {
                Ok(()) => {
                    tracing::info!(
                        "allocator: network {} re-allocated (it clashed with another network)",
                        victim.spec.annotations.name
                    );
                    let copy = updated.clone();
                    plan.update_network(victim, move |x| *x = copy);
                    nets.insert(victim.id.clone(), updated);
                }
                Err(e) => tracing::warn!(
                    "allocator: network {}: {}",
                    victim.spec.annotations.name,
                    e.message
                ),
            }
        }
    }
}

/// Marks what the store says is taken: node addresses, VIPs, addresses of tasks not ended.
fn mark_in_use(
    st: &ClusterState,
    plan: &Plan,
    nets: &BTreeMap<String, Network>,
    pools: &mut HashMap<String, AddressPool>,
) {
    for n in nets.values() {
        if let Some(p) = pools.get_mut(&n.id) {
            for (k, addr) in &n.driver_state.options {
                if k.starts_with(NODE_ADDR_PREFIX) {
                    p.mark(addr);
                }
            }
        }
    }
    for s in st.services.values() {
        for v in &plan.service(s).endpoint.virtual_ips {
            if let Some(p) = pools.get_mut(&v.network_id) {
                p.mark(&v.addr);
            }
        }
    }
    for t in &st.all_tasks {
        if plan.is_deleted(&t.id) {
            continue;
        }
        let t = plan.task(t);
        if !holds_addresses(t, &|id| st.nodes.contains_key(id)) {
            continue;
        }
        for a in &t.networks_attachments {
            if let Some(p) = pools.get_mut(&a.network.id) {
                for addr in &a.addresses {
                    p.mark(addr);
                }
            }
        }
    }
}

/// Every node in the store has one address on `ingress`; removed nodes give theirs back.
fn allocate_node_addresses(
    st: &ClusterState,
    plan: &mut Plan,
    nets: &BTreeMap<String, Network>,
    pools: &mut HashMap<String, AddressPool>,
) {
    let Some(ingress) = nets.values().find(|n| n.spec.ingress) else {
        return;
    };
    let Some(pool) = pools.get_mut(&ingress.id) else {
        return;
    };
    let mut options = ingress.driver_state.options.clone();
    let stale: Vec<String> = options
        .keys()
        .filter(|k| {
            k.strip_prefix(NODE_ADDR_PREFIX)
                .is_some_and(|node| !st.nodes.contains_key(node))
        })
        .cloned()
        .collect();
    for k in stale {
        if let Some(addr) = options.remove(&k) {
            pool.release(&addr);
        }
    }
    for node in st.nodes.keys() {
        let key = format!("{NODE_ADDR_PREFIX}{node}");
        let valid = options.get(&key).is_some_and(|a| pool.contains(a));
        if valid {
            continue;
        }
        match pool.take() {
            Ok(addr) => {
                options.insert(key, addr);
            }
            Err(e) => {
                tracing::warn!("allocator: node {node}: {}", e.message);
                break;
            }
        }
    }
    if options != ingress.driver_state.options
        && let Some(stored) = st.networks.get(ingress.id.as_str())
    {
        plan.update_network(stored, |n| n.driver_state.options = options);
    }
}

/// The networks a service should have VIPs on: its attached networks in `vip` mode, plus
/// `ingress` when it publishes ports through the routing mesh.
fn vip_networks(svc: &Service, nets: &BTreeMap<String, Network>) -> Vec<String> {
    let mode = svc
        .spec
        .endpoint_spec
        .as_ref()
        .map(|e| e.mode)
        .unwrap_or_default();
    if mode == ResolutionMode::Dnsrr {
        return Vec::new();
    }
    let mut out: Vec<String> = Vec::new();
    if publishes_ingress(svc)
        && let Some(i) = nets.values().find(|n| n.spec.ingress)
    {
        out.push(i.id.clone());
    }
    for a in &svc.spec.task_template.networks {
        if let Some(n) = find(nets, &a.target)
            && !out.contains(&n.id)
        {
            out.push(n.id.clone());
        }
    }
    out
}

/// A network by ID, or by name (specs written before names were resolved).
fn find<'n>(nets: &'n BTreeMap<String, Network>, target: &str) -> Option<&'n Network> {
    nets.get(target)
        .or_else(|| nets.values().find(|n| n.spec.annotations.name == target))
}

/// Gives every service its VIPs (kept across updates while the network stays attached, dropped
/// when it goes). Returns, per service ID, why a VIP could not be allocated.
fn allocate_vips(
    st: &ClusterState,
    plan: &mut Plan,
    nets: &BTreeMap<String, Network>,
    pools: &mut HashMap<String, AddressPool>,
) -> HashMap<String, String> {
    let mut errors = HashMap::new();
    for s in st.services.values() {
        if s.pending_delete {
            continue;
        }
        let cur = plan.service(s).clone();
        let want = vip_networks(&cur, nets);
        let mut vips: Vec<EndpointVirtualIP> = Vec::new();
        for net_id in &want {
            let kept = cur
                .endpoint
                .virtual_ips
                .iter()
                .find(|v| &v.network_id == net_id)
                .filter(|v| pools.get(net_id).is_some_and(|p| p.contains(&v.addr)));
            if let Some(v) = kept {
                vips.push(v.clone());
                continue;
            }
            let Some(pool) = pools.get_mut(net_id) else {
                errors.insert(
                    s.id.clone(),
                    format!("network {} is not allocated yet", name_of(nets, net_id)),
                );
                continue;
            };
            match pool.take() {
                Ok(addr) => vips.push(EndpointVirtualIP {
                    network_id: net_id.clone(),
                    addr,
                }),
                Err(e) => {
                    errors.insert(s.id.clone(), e.message);
                }
            }
        }
        for v in &cur.endpoint.virtual_ips {
            if !vips.contains(v)
                && let Some(p) = pools.get_mut(&v.network_id)
            {
                p.release(&v.addr);
            }
        }
        if vips != cur.endpoint.virtual_ips {
            plan.update_service(s, |s| s.endpoint.virtual_ips = vips);
        }
    }
    errors
}

fn name_of(nets: &BTreeMap<String, Network>, id: &str) -> String {
    nets.get(id)
        .map_or_else(|| id.to_string(), |n| n.spec.annotations.name.clone())
}

/// The copy of a network a task attachment carries (per-node bookkeeping left out).
fn attachment_network(n: &Network) -> Network {
    // Built field by field: the ingress network's options hold every node's address, and
    // copying them (1,000 nodes) only to drop them again was most of a dispatch pass.
    let Network {
        id,
        meta,
        spec,
        driver_state,
        ipam_options,
    } = n;
    Network {
        id: id.clone(),
        meta: meta.clone(),
        spec: spec.clone(),
        driver_state: shoal_types::Driver {
            name: driver_state.name.clone(),
            options: driver_state
                .options
                .iter()
                .filter(|(k, _)| !k.starts_with(NODE_ADDR_PREFIX))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        },
        ipam_options: ipam_options.clone(),
    }
}

/// The networks (ID, aliases) a task of `svc` attaches to, ingress first.
fn task_networks(
    svc: &Service,
    t: &Task,
    nets: &BTreeMap<String, Network>,
) -> Result<Vec<(String, Vec<String>)>, String> {
    let mut out: Vec<(String, Vec<String>)> = Vec::new();
    if publishes_ingress(svc) {
        match nets.values().find(|n| n.spec.ingress) {
            Some(i) => out.push((i.id.clone(), Vec::new())),
            None => {
                return Err("the service publishes ports but there is no ingress network".into());
            }
        }
    }
    for a in &t.spec.networks {
        match find(nets, &a.target) {
            Some(n) if !out.iter().any(|(id, _)| id == &n.id) => {
                out.push((n.id.clone(), a.aliases.clone()))
            }
            Some(_) => {}
            None => return Err(format!("network {} not found", a.target)),
        }
    }
    Ok(out)
}

/// Which tasks need addresses: not placed yet, still wanted, missing an attachment.
fn needs_allocation(t: &Task, want: &[(String, Vec<String>)]) -> bool {
    let have: BTreeSet<&str> = t
        .networks_attachments
        .iter()
        .map(|a| a.network.id.as_str())
        .collect();
    let want_ids: BTreeSet<&str> = want.iter().map(|(id, _)| id.as_str()).collect();
    have != want_ids
}

/// Where a task to allocate lives.
enum Slot<'a> {
    Stored(&'a Task),
    Created(usize),
}

fn allocate_tasks(
    st: &ClusterState,
    now: DateTime<Utc>,
    plan: &mut Plan,
    nets: &BTreeMap<String, Network>,
    pools: &mut HashMap<String, AddressPool>,
    service_errors: &HashMap<String, String>,
) -> HashSet<String> {
    let mut slots: Vec<Slot> = Vec::new();
    for t in &st.all_tasks {
        if plan.is_deleted(&t.id) {
            continue;
        }
        let cur = plan.task(t);
        if cur.status.state < TaskState::Assigned && cur.desired_state <= TaskState::Complete {
            slots.push(Slot::Stored(t));
        }
    }
    for i in 0..plan.created_len() {
        slots.push(Slot::Created(i));
    }
    let mut held = HashSet::new();
    for slot in slots {
        let task = match slot {
            Slot::Stored(t) => plan.task(t).clone(),
            Slot::Created(i) => match plan.created_task(i) {
                Some(t) => t.clone(),
                None => continue,
            },
        };
        if let Slot::Stored(stored) = slot
            && task.is_network_attachment()
        {
            allocate_attachment(stored, &task, now, plan, nets, pools, &mut held);
            continue;
        }
        let Some(stored_svc) = st.services.get(task.service_id.as_str()) else {
            continue;
        };
        let svc = plan.service(stored_svc).clone();
        let result = task_networks(&svc, &task, nets).and_then(|want| {
            if !needs_allocation(&task, &want) {
                return Ok(None);
            }
            if let Some(e) = service_errors.get(&svc.id) {
                return Err(e.clone());
            }
            attach(&task, &want, nets, pools).map(Some)
        });
        match result {
            Ok(None) => {}
            Ok(Some(attachments)) => {
                // Also for dnsrr services (no VIPs): the data plane reads the mode from it.
                let endpoint = (!svc.endpoint.ports.is_empty()
                    || !svc.endpoint.virtual_ips.is_empty()
                    || !attachments.is_empty())
                .then(|| Endpoint {
                    spec: svc.endpoint.spec.clone(),
                    ports: svc.endpoint.ports.clone(),
                    virtual_ips: svc.endpoint.virtual_ips.clone(),
                });
                let edit = |t: &mut Task| {
                    t.networks_attachments = attachments;
                    t.endpoint = endpoint;
                    if t.status.message != PENDING_SCHEDULING {
                        t.status = TaskStatus::new(TaskState::Pending, PENDING_SCHEDULING, now);
                    }
                };
                match slot {
                    Slot::Stored(t) => plan.update_task(t, edit),
                    Slot::Created(i) => {
                        if let Some(t) = plan.created_task_mut(i) {
                            edit(t);
                        }
                    }
                }
            }
            Err(msg) => {
                held.insert(task.id.clone());
                let edit = |t: &mut Task| {
                    if t.status.message != msg || t.status.state != TaskState::Pending {
                        t.status = TaskStatus::new(TaskState::Pending, msg, now);
                    }
                };
                match slot {
                    Slot::Stored(t) => plan.update_task(t, edit),
                    Slot::Created(i) => {
                        if let Some(t) = plan.created_task_mut(i) {
                            edit(t);
                        }
                    }
                }
            }
        }
    }
    held
}

/// A standalone container's network attachment task (no service, see `crate::attachment`):
/// an address on its network, then ASSIGNED to the node that asked for it (it is never
/// scheduled). One that cannot have its address stays PENDING with the reason.
fn allocate_attachment(
    stored: &Task,
    task: &Task,
    now: DateTime<Utc>,
    plan: &mut Plan,
    nets: &BTreeMap<String, Network>,
    pools: &mut HashMap<String, AddressPool>,
    held: &mut HashSet<String>,
) {
    let want: Result<Vec<(String, Vec<String>)>, String> = task
        .spec
        .networks
        .iter()
        .map(|a| {
            find(nets, &a.target)
                .map(|n| (n.id.clone(), a.aliases.clone()))
                .ok_or_else(|| format!("network {} not found", a.target))
        })
        .collect();
    let result = want.and_then(|want| {
        if needs_allocation(task, &want) {
            attach(task, &want, nets, pools).map(Some)
        } else {
            Ok(None)
        }
    });
    match result {
        Ok(attachments) => plan.update_task(stored, |t| {
            if let Some(a) = attachments {
                t.networks_attachments = a;
            }
            t.status = TaskStatus::new(TaskState::Assigned, "network attachment allocated", now);
        }),
        Err(msg) => {
            held.insert(task.id.clone());
            plan.update_task(stored, |t| {
                if t.status.message != msg || t.status.state != TaskState::Pending {
                    t.status = TaskStatus::new(TaskState::Pending, msg, now);
                }
            });
        }
    }
}

/// All-or-nothing: the task's attachments with an address on each wanted network (keeping the
/// addresses it already has), or the reason it cannot have them.
fn attach(
    task: &Task,
    want: &[(String, Vec<String>)],
    nets: &BTreeMap<String, Network>,
    pools: &mut HashMap<String, AddressPool>,
) -> Result<Vec<NetworkAttachment>, String> {
    let mut taken: Vec<(String, String)> = Vec::new();
    let mut out = Vec::new();
    for (net_id, aliases) in want {
        let net = &nets[net_id];
        let kept = task
            .networks_attachments
            .iter()
            .find(|a| &a.network.id == net_id && !a.addresses.is_empty());
        let addresses = match kept {
            Some(a) => a.addresses.clone(),
            None => {
                let Some(pool) = pools.get_mut(net_id) else {
                    release(pools, &taken);
                    return Err(format!(
                        "network {} is not allocated yet",
                        net.spec.annotations.name
                    ));
                };
                match pool.take() {
                    Ok(addr) => {
                        taken.push((net_id.clone(), addr.clone()));
                        vec![addr]
                    }
                    Err(e) => {
                        release(pools, &taken);
                        return Err(e.message);
                    }
                }
            }
        };
        out.push(NetworkAttachment {
            network: attachment_network(net),
            addresses,
            aliases: aliases.clone(),
        });
    }
    // Addresses on networks the task no longer wants go back to the pools.
    for a in &task.networks_attachments {
        if !want.iter().any(|(id, _)| id == &a.network.id)
            && let Some(p) = pools.get_mut(&a.network.id)
        {
            for addr in &a.addresses {
                p.release(addr);
            }
        }
    }
    Ok(out)
}

fn release(pools: &mut HashMap<String, AddressPool>, taken: &[(String, String)]) {
    for (net, addr) in taken {
        if let Some(p) = pools.get_mut(net) {
            p.release(addr);
        }
    }
}

/// The `ingress` attachment of every node, from the store (what the dispatcher sends each agent
/// as `node_attachments_json`). Empty when there is no ingress network or no address yet.
pub fn node_attachments(ingress: Option<&Network>, node_id: &str) -> Vec<NetworkAttachment> {
    let Some(n) = ingress else {
        return Vec::new();
    };
    match n
        .driver_state
        .options
        .get(&format!("{NODE_ADDR_PREFIX}{node_id}"))
    {
        Some(addr) => vec![NetworkAttachment {
            network: attachment_network(n),
            addresses: vec![addr.clone()],
            aliases: Vec::new(),
        }],
        None => Vec::new(),
    }
}
