//! The `/networks` API on a swarm node: swarm-scoped overlay networks kept by the managers
//! (rules in `shoal_manager::network`), plus what this node knows locally about each one
//! (its endpoints and peers, filled by the data plane through [`local_view`]).

use super::Daemon;
use serde_json::{Value, json};
use shoal_api::{Filters, NetworkCreateResponse};
use shoal_manager::network;
use shoal_types::network::{EndpointResource, NetworkCreateRequest, NetworkInspect, PeerInfo};
use shoal_types::{ApiError, Network, Object};
use std::collections::BTreeMap;

/// What this node contributes to `network inspect` of one network: its local endpoints
/// (`Containers`) and the peers it exchanges overlay traffic with (`Peers`). The node data plane
/// hooks in here; until it reports endpoints a network shows none (as Docker shows for a
/// network with no local containers).
pub fn local_view(
    d: &Daemon,
    net: &Network,
) -> (Option<BTreeMap<String, EndpointResource>>, Vec<PeerInfo>) {
    super::netplane::inspect_view(&d.cfg.data_root, &net.id)
}

fn to_types(f: &Filters) -> shoal_types::filters::Filters {
    shoal_types::filters::Filters(
        f.0.iter()
            .map(|(k, v)| (k.clone(), v.iter().cloned().collect()))
            .collect(),
    )
}

/// `GET /networks`. A node that is not a manager has no swarm networks to list.
pub async fn list(d: &Daemon, filters: Filters) -> Result<Vec<NetworkInspect>, ApiError> {
    let Ok(m) = d.manager().await else {
        return super::attach::list_local(d, &to_types(&filters));
    };
    network::list_networks(&m.view(), &to_types(&filters))
}

/// `GET /networks/{id}`: by ID, name or unique ID prefix. `scope` other than swarm finds nothing
/// (there are no local-scope overlay networks).
pub async fn inspect(d: &Daemon, key: &str, scope: &str) -> Result<NetworkInspect, ApiError> {
    let not_found = || ApiError::not_found(format!("network {key} not found"));
    if !matches!(scope, "" | "swarm") {
        return Err(not_found());
    }
    let Ok(m) = d.manager().await else {
        return super::attach::inspect_local(d, key).ok_or_else(not_found);
    };
    let view = m.view();
    let net = network::find_network(&view, key)?;
    let mut v = network::inspect_view(net);
    let (containers, peers) = local_view(d, net);
    v.containers = containers;
    v.peers = peers;
    Ok(v)
}

/// `POST /networks/create`.
pub async fn create(
    d: &Daemon,
    req: NetworkCreateRequest,
) -> Result<NetworkCreateResponse, ApiError> {
    // The request is checked first: a bad one gets its own error, swarm or not.
    let spec = req.to_spec()?;
    let m = d.manager().await?;
    let net = network::create_network(&m.view(), spec, chrono::Utc::now())?;
    let id = net.id.clone();
    m.propose(vec![shoal_store::Change::Create(Object::Network(net))])
        .await?;
    Ok(NetworkCreateResponse {
        id,
        warning: String::new(),
    })
}

/// `DELETE /networks/{id}`: refused (409, nothing changed) while a service or task uses it.
pub async fn remove(d: &Daemon, key: &str) -> Result<(), ApiError> {
    let m = d.manager().await?;
    let change = network::remove_network(&m.view(), key)?;
    m.propose(vec![change]).await?;
    Ok(())
}

/// `POST /networks/prune`: removes every unused network (not `ingress`) one by one; a network
/// that became used meanwhile is skipped.
pub async fn prune(d: &Daemon, filters: Filters) -> Result<Value, ApiError> {
    let m = d.manager().await?;
    let deletes = network::prune_networks(&m.view(), &to_types(&filters), chrono::Utc::now())?;
    let mut deleted = Vec::new();
    for (name, change) in deletes {
        match m.propose(vec![change]).await {
            Ok(_) => deleted.push(name),
            Err(e) => tracing::debug!("network prune: {name}: {}", e.message),
        }
    }
    Ok(json!({ "NetworksDeleted": deleted }))
}
