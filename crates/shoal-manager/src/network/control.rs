//! Control-API rules for networks: create (validated, subnets and VXLAN id allocated at once so
//! `network inspect` shows them), lookup, list filters, remove (refused while in use), prune,
//! and resolving the networks a service names into network IDs.

use chrono::{DateTime, Utc};
use shoal_store::Change;
use shoal_types::filters::Filters;
use shoal_types::network::{INGRESS_NAME, NetworkInspect, SCOPE_SWARM};
use shoal_types::service::PublishMode;
use shoal_types::{
    ApiError, Cluster, Meta, Network, NetworkSpec, Object, ObjectKind, Service, ServiceSpec, Task,
    TaskState, new_id, resolve,
};

use super::ipam::{NODE_ADDR_PREFIX, allocate_network};
use crate::orchestrator::ObjectSource;

/// All networks in the store.
pub fn networks(src: &dyn ObjectSource) -> Vec<&Network> {
    src.objects(ObjectKind::Network)
        .filter_map(|o| match o {
            Object::Network(n) => Some(n),
            _ => None,
        })
        .collect()
}

fn cluster(src: &dyn ObjectSource) -> Option<&Cluster> {
    src.objects(ObjectKind::Cluster).find_map(|o| match o {
        Object::Cluster(c) => Some(c),
        _ => None,
    })
}

/// The routing-mesh network, if there is one.
pub fn ingress_network(src: &dyn ObjectSource) -> Option<&Network> {
    networks(src).into_iter().find(|n| n.spec.ingress)
}

/// Finds a network by full ID, exact name or unique ID prefix (404 "network X not found").
pub fn find_network<'a>(src: &'a dyn ObjectSource, key: &str) -> Result<&'a Network, ApiError> {
    resolve(networks(src), key).map_err(|e| e.into_api("network"))
}

/// Validates `spec` and returns the new network, with subnets, gateways and VXLAN id allocated,
/// to `Change::Create`. A name clash is a 409 like Docker's.
pub fn create_network(
    src: &dyn ObjectSource,
    spec: NetworkSpec,
    now: DateTime<Utc>,
) -> Result<Network, ApiError> {
    spec.validate()?;
    if spec.ipv6_enabled {
        return Err(ApiError::invalid_argument(
            "IPv6 is not supported on overlay networks",
        ));
    }
    let name = &spec.annotations.name;
    let all = networks(src);
    if all.iter().any(|n| &n.spec.annotations.name == name) {
        return Err(ApiError::conflict(format!(
            "network with name {name} already exists"
        )));
    }
    if spec.ingress
        && let Some(i) = all.iter().find(|n| n.spec.ingress)
    {
        return Err(ApiError::conflict(format!(
            "an ingress network already exists ({}); remove it first",
            i.spec.annotations.name
        )));
    }
    let mut net = Network {
        id: new_id(),
        meta: Meta::created(now),
        spec,
        ..Network::default()
    };
    net.spec.scope = SCOPE_SWARM.to_string();
    let mut others = all.clone();
    others.extend(ghost_networks(
        all_tasks(src),
        &|id| src.object(ObjectKind::Network, id).is_some(),
        &|id| src.object(ObjectKind::Node, id).is_some(),
    ));
    allocate_network(&mut net, &others, cluster(src))?;
    Ok(net)
}

/// What still uses a network: the first service naming it, else the first task attached to it
/// that is still wanted (see [`task_blocks`]). For `ingress`, any service publishing ingress
/// ports.
pub fn network_user(src: &dyn ObjectSource, net: &Network) -> Option<String> {
    for o in src.objects(ObjectKind::Service) {
        let Object::Service(s) = o else { continue };
        if service_uses(s, net) {
            return Some(if net.spec.ingress {
                format!(
                    "ingress network cannot be removed because service {} depends on it",
                    s.spec.annotations.name
                )
            } else {
                format!(
                    "network {} is in use by service {}",
                    net.spec.annotations.name, s.spec.annotations.name
                )
            });
        }
    }
    let service_exists = |id: &str| src.object(ObjectKind::Service, id).is_some();
    let node_exists = |id: &str| src.object(ObjectKind::Node, id).is_some();
    for o in src.objects(ObjectKind::Task) {
        let Object::Task(t) = o else { continue };
        if t.networks_attachments
            .iter()
            .any(|a| a.network.id == net.id)
            && task_blocks(t, &service_exists, &node_exists)
        {
            let name = &net.spec.annotations.name;
            let node = src
                .object(ObjectKind::Node, &t.node_id)
                .and_then(|o| match o {
                    Object::Node(n) => Some(n.display_name().to_string()),
                    _ => None,
                })
                .filter(|n| !n.is_empty())
                .unwrap_or_else(|| t.node_id.clone());
            // A standalone container's attachment is a task only inside the cluster: name the
            // container, which is what the user made and can remove.
            return Some(match &t.network_attachment_spec {
                Some(a) => {
                    let container = if a.container_name.is_empty() {
                        &a.container_id
                    } else {
                        &a.container_name
                    };
                    format!("network {name} is in use by container {container} on node {node}")
                }
                None => format!("network {name} is in use by task {} on node {node}", t.id),
            });
        }
    }
    None
}

/// Whether a task still holds its network addresses: it has not ended, and its node is still in
/// the cluster (the tasks of a removed node never report again).
pub fn holds_addresses(t: &Task, node_exists: &dyn Fn(&str) -> bool) -> bool {
    !t.status.state.is_terminal() && (t.node_id.is_empty() || node_exists(&t.node_id))
}

/// Whether a task keeps its networks from being removed: it holds addresses and is still
/// wanted by a live service. Tasks being stopped (desired shutdown or remove, or whose service
/// is gone) do not, so `stack rm` can remove a stack's networks right after its services: their
/// nodes tear the data plane down from the copy in the task's attachment, and the network's
/// subnet and VXLAN id stay reserved (see [`ghost_networks`]) until those tasks have ended.
fn task_blocks(
    t: &Task,
    service_exists: &dyn Fn(&str) -> bool,
    node_exists: &dyn Fn(&str) -> bool,
) -> bool {
    holds_addresses(t, node_exists)
        && t.desired_state <= TaskState::Complete
        && (t.service_id.is_empty() || service_exists(&t.service_id))
}

/// Removed networks still attached to tasks that hold addresses: their subnets and VXLAN ids
/// are not handed out again until those tasks have ended.
pub fn ghost_networks<'a>(
    tasks: impl Iterator<Item = &'a Task>,
    network_exists: &dyn Fn(&str) -> bool,
    node_exists: &dyn Fn(&str) -> bool,
) -> Vec<&'a Network> {
    let mut seen = std::collections::BTreeSet::new();
    let mut out = Vec::new();
    for t in tasks {
        if !holds_addresses(t, node_exists) {
            continue;
        }
        for a in &t.networks_attachments {
            if !network_exists(&a.network.id) && seen.insert(a.network.id.as_str()) {
                out.push(&a.network);
            }
        }
    }
    out
}

fn all_tasks(src: &dyn ObjectSource) -> impl Iterator<Item = &Task> {
    src.objects(ObjectKind::Task).filter_map(|o| match o {
        Object::Task(t) => Some(t),
        _ => None,
    })
}

/// Whether a service attaches to the network (or, for ingress, publishes ingress ports).
pub fn service_uses(s: &Service, net: &Network) -> bool {
    if net.spec.ingress {
        return publishes_ingress(s);
    }
    s.spec
        .task_template
        .networks
        .iter()
        .any(|a| a.target == net.id || a.target == net.spec.annotations.name)
}

/// Whether a service has ports published through the routing mesh.
pub fn publishes_ingress(s: &Service) -> bool {
    s.endpoint
        .ports
        .iter()
        .chain(s.spec.endpoint_spec.iter().flat_map(|e| e.ports.iter()))
        .any(|p| p.publish_mode == PublishMode::Ingress)
}

/// The delete for `network rm`, refused (nothing changed) while the network is in use.
pub fn remove_network(src: &dyn ObjectSource, key: &str) -> Result<Change, ApiError> {
    let net = find_network(src, key)?;
    if let Some(why) = network_user(src, net) {
        return Err(ApiError::conflict(why));
    }
    Ok(Change::Delete {
        kind: ObjectKind::Network,
        id: net.id.clone(),
        expected_version: Some(net.meta.version.index),
    })
}

/// `POST /networks/prune`: deletes of the unused networks matching `label` / `label!` / `until`
/// filters. The ingress network is never pruned (as in Docker).
pub fn prune_networks(
    src: &dyn ObjectSource,
    filters: &Filters,
    now: DateTime<Utc>,
) -> Result<Vec<(String, Change)>, ApiError> {
    filters.validate_keys(&["label", "label!", "until"])?;
    let until = match filters.get("until").first() {
        Some(v) => Some(parse_until(v, now)?),
        None => None,
    };
    let mut out = Vec::new();
    for n in networks(src) {
        if n.spec.ingress
            || !filters.matches_labels("label", &n.spec.annotations.labels)
            || filters
                .get("label!")
                .iter()
                .any(|l| shoal_types::filters::matches_label(&n.spec.annotations.labels, l))
            || until.is_some_and(|u| n.meta.created_at >= u)
            || network_user(src, n).is_some()
        {
            continue;
        }
        out.push((
            n.spec.annotations.name.clone(),
            Change::Delete {
                kind: ObjectKind::Network,
                id: n.id.clone(),
                expected_version: Some(n.meta.version.index),
            },
        ));
    }
    Ok(out)
}

/// `until` as a Unix timestamp or a Go duration before now ("24h").
fn parse_until(v: &str, now: DateTime<Utc>) -> Result<DateTime<Utc>, ApiError> {
    if let Ok(secs) = v.parse::<f64>() {
        return DateTime::from_timestamp(secs as i64, 0)
            .ok_or_else(|| ApiError::invalid_argument(format!("invalid until filter {v:?}")));
    }
    if let Ok(t) = DateTime::parse_from_rfc3339(v) {
        return Ok(t.with_timezone(&Utc));
    }
    let ns = shoal_types::parse_duration(v)
        .map_err(|_| ApiError::invalid_argument(format!("invalid until filter {v:?}")))?;
    Ok(now - chrono::Duration::nanoseconds(ns))
}

/// `GET /networks?filters=`: name (substring), id (prefix), label, driver, scope, type
/// (every swarm network is `custom`), dangling (not used by any service or task).
pub fn list_networks(
    src: &dyn ObjectSource,
    filters: &Filters,
) -> Result<Vec<NetworkInspect>, ApiError> {
    filters.validate_keys(&["name", "id", "label", "driver", "scope", "type", "dangling"])?;
    for t in filters.get("type") {
        if !matches!(t.as_str(), "custom" | "builtin") {
            return Err(ApiError::invalid_argument(format!(
                "invalid filter: 'type'='{t}'"
            )));
        }
    }
    let dangling = filters.bool_value("dangling")?;
    let mut out: Vec<NetworkInspect> = networks(src)
        .into_iter()
        .filter(|n| {
            let name = &n.spec.annotations.name;
            let f = |k: &str, pred: &dyn Fn(&str) -> bool| {
                let vs = filters.get(k);
                vs.is_empty() || vs.iter().any(|v| pred(v))
            };
            f("name", &|v| name.contains(v))
                && f("id", &|v| n.id.starts_with(v))
                && filters.matches_labels("label", &n.spec.annotations.labels)
                && f("driver", &|v| v == n.spec.driver_name())
                && f("scope", &|v| v == SCOPE_SWARM)
                && f("type", &|v| v == "custom")
                && dangling.is_none_or(|d| d == network_user(src, n).is_none())
        })
        .map(inspect_view)
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// The `network inspect` view of a stored network (per-node bookkeeping hidden).
pub fn inspect_view(n: &Network) -> NetworkInspect {
    let mut v = n.to_inspect();
    v.options.retain(|k, _| !k.starts_with(NODE_ADDR_PREFIX));
    v
}

/// Resolves the networks a service spec names (ID, name or unique ID prefix) to network IDs,
/// keeping aliases; refuses unknown networks (404 naming it), attaching to `ingress`
/// explicitly, the same network twice, and ingress ports when there is no ingress network.
pub fn resolve_service_networks(
    src: &dyn ObjectSource,
    spec: &mut ServiceSpec,
) -> Result<(), ApiError> {
    let mut seen = std::collections::BTreeSet::new();
    for a in spec.task_template.networks.iter_mut() {
        let net = find_network(src, &a.target)?;
        if net.spec.ingress {
            return Err(ApiError::invalid_argument(format!(
                "service cannot be explicitly attached to the ingress network {:?}",
                net.spec.annotations.name
            )));
        }
        if !seen.insert(net.id.clone()) {
            return Err(ApiError::invalid_argument(format!(
                "service cannot attach to network {:?} more than once",
                net.spec.annotations.name
            )));
        }
        a.target = net.id.clone();
    }
    let ingress_ports = spec
        .endpoint_spec
        .iter()
        .flat_map(|e| e.ports.iter())
        .any(|p| p.publish_mode == PublishMode::Ingress);
    if ingress_ports && ingress_network(src).is_none() {
        return Err(ApiError::invalid_argument(format!(
            "service needs the {INGRESS_NAME} network to publish ports in ingress mode, but no ingress network is present"
        )));
    }
    Ok(())
}

/// The `ingress` network `swarm init` creates: 10.0.0.0/24 with VXLAN id 4096 when the default
/// address pool holds it, else the first subnet of the cluster's pool.
pub fn default_ingress(cluster: &Cluster, now: DateTime<Utc>) -> Result<Network, ApiError> {
    let mut spec = NetworkSpec::default_ingress();
    let (pools, _) = super::ipam::cluster_pools(Some(cluster));
    let default_fits = shoal_types::network::INGRESS_SUBNET
        .parse::<ipnet::Ipv4Net>()
        .is_ok_and(|s| pools.iter().any(|p| p.contains(&s)));
    if !default_fits && let Some(ipam) = spec.ipam_options.as_mut() {
        ipam.configs.clear();
    }
    let mut net = Network {
        id: new_id(),
        meta: Meta::created(now),
        spec,
        ..Network::default()
    };
    allocate_network(&mut net, &[], Some(cluster))?;
    Ok(net)
}
