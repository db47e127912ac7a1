//! Endpoint gossip over chitchat (UDP, default port 7946).
//!
//! Every node publishes its local overlay endpoints as keys `ep/<network>/<ip>` with the value
//! `<mac>,<vtep>` in its own chitchat state; chitchat (scuttlebutt) replicates them to all nodes
//! and its phi-accrual failure detector tells which nodes are alive. The remote endpoint set of
//! a node is "the `ep/` keys of every other live node"; a watcher diffs that set and yields
//! added/removed events, from which the agent programs FDB and neighbour entries. So an
//! endpoint disappears when it is withdrawn, when its node dies or leaves, and reappears when a
//! partition heals (a restarted node comes back with a new generation and republishes).

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use chitchat::transport::UdpTransport;
use chitchat::{ChitchatConfig, ChitchatHandle, ChitchatId, FailureDetectorConfig, spawn_chitchat};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::{Mac, NetError, Result};

/// Default gossip port (Docker's).
pub const GOSSIP_PORT: u16 = 7946;
const KEY_PREFIX: &str = "ep/";
const RECORD_PREFIX: &str = "sv/";

/// One endpoint as published by its node.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Endpoint {
    /// Network ID.
    pub network: String,
    pub ip: Ipv4Addr,
    pub mac: Mac,
    /// VTEP of the node hosting it.
    pub vtep: Ipv4Addr,
}

/// A port a service publishes through the ingress routing mesh.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct MeshPort {
    /// `tcp` or `udp`.
    pub proto: String,
    pub published: u16,
    pub target: u16,
}

/// Service-discovery facts about one running task endpoint on one network. Published only
/// while the task runs (and is healthy), withdrawn before it is stopped, so DNS answers and
/// VIP/mesh backends are built from live records only.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ServiceRecord {
    /// Network ID.
    pub network: String,
    /// The task's address on that network.
    pub ip: Ipv4Addr,
    pub service_id: String,
    /// Names that resolve to the service (service name, stack short name, aliases).
    pub names: Vec<String>,
    /// Names that resolve to this task only (task/container names, hostname).
    pub task_names: Vec<String>,
    pub task_id: String,
    /// The service's VIP on this network (None for dnsrr).
    pub vip: Option<Ipv4Addr>,
    /// Ports published through the routing mesh (only on the ingress network's record).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mesh_ports: Vec<MeshPort>,
}

/// A service record and the node that published it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NodeRecord {
    pub node_id: String,
    pub record: ServiceRecord,
}

/// An endpoint seen on another node.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RemoteEndpoint {
    pub node_id: String,
    pub endpoint: Endpoint,
}

/// A change in the remote endpoint set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EndpointEvent {
    Added(RemoteEndpoint),
    Removed(RemoteEndpoint),
}

/// Gossip settings.
#[derive(Debug, Clone)]
pub struct GossipConfig {
    pub node_id: String,
    /// Where to bind (e.g. 0.0.0.0:7946, or the node's address).
    pub listen_addr: SocketAddr,
    /// The address peers reach us on.
    pub advertise_addr: SocketAddr,
    /// Known nodes to start from (`host:port`).
    pub seeds: Vec<String>,
    /// Nodes of different clusters never mix.
    pub cluster_id: String,
    pub gossip_interval: Duration,
    /// How often a watcher recomputes the remote set.
    pub watch_interval: Duration,
    /// Failure detector threshold (lower = faster, more false positives).
    pub phi_threshold: f64,
}

impl GossipConfig {
    /// Defaults suited to a LAN: gossip every 200 ms.
    pub fn new(
        node_id: &str,
        listen_addr: SocketAddr,
        advertise_addr: SocketAddr,
        seeds: Vec<String>,
        cluster_id: &str,
    ) -> GossipConfig {
        GossipConfig {
            node_id: node_id.to_string(),
            listen_addr,
            advertise_addr,
            seeds,
            cluster_id: cluster_id.to_string(),
            gossip_interval: Duration::from_millis(200),
            watch_interval: Duration::from_millis(200),
            phi_threshold: 8.0,
        }
    }
}

fn key(network: &str, ip: Ipv4Addr) -> String {
    format!("{KEY_PREFIX}{network}/{ip}")
}

fn check_network(network: &str) -> Result<()> {
    if network.is_empty()
        || network.len() > 128
        || network.contains('/')
        || network.contains(char::is_whitespace)
    {
        return Err(NetError::Invalid(format!("bad network id {network:?}")));
    }
    Ok(())
}

/// Parse a published key/value; None for keys that are not endpoints or are malformed
/// (a peer's garbage is skipped, never trusted).
pub fn parse_endpoint(key: &str, value: &str) -> Option<Endpoint> {
    let rest = key.strip_prefix(KEY_PREFIX)?;
    let (network, ip) = rest.rsplit_once('/')?;
    if check_network(network).is_err() {
        return None;
    }
    let ip: Ipv4Addr = ip.parse().ok()?;
    let (mac, vtep) = value.split_once(',')?;
    Some(Endpoint {
        network: network.to_string(),
        ip,
        mac: mac.parse().ok()?,
        vtep: vtep.parse().ok()?,
    })
}

fn record_key(network: &str, ip: Ipv4Addr) -> String {
    format!("{RECORD_PREFIX}{network}/{ip}")
}

/// Parse a published service record; None for other keys or garbage (never trusted: the key
/// must agree with the record's network and address).
pub fn parse_record(key: &str, value: &str) -> Option<ServiceRecord> {
    let rest = key.strip_prefix(RECORD_PREFIX)?;
    let (network, ip) = rest.rsplit_once('/')?;
    let ip: Ipv4Addr = ip.parse().ok()?;
    let r: ServiceRecord = serde_json::from_str(value).ok()?;
    (r.network == network && r.ip == ip && check_network(network).is_ok()).then_some(r)
}

/// The value stored for an endpoint.
pub fn endpoint_value(ep: &Endpoint) -> String {
    format!("{},{}", ep.mac, ep.vtep)
}

/// A running gossip member.
pub struct Gossip {
    handle: ChitchatHandle,
    node_id: String,
    watch_interval: Duration,
}

impl Gossip {
    /// Join (or start) the gossip cluster.
    pub async fn start(cfg: GossipConfig) -> Result<Gossip> {
        if cfg.node_id.is_empty() {
            return Err(NetError::Invalid("empty node id".into()));
        }
        // A new generation on every start: peers then treat a restarted node as a fresh
        // incarnation instead of mixing its old and new state.
        let generation = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_micros() as u64)
            .unwrap_or(0);
        let fd = FailureDetectorConfig {
            phi_threshold: cfg.phi_threshold,
            sampling_window_size: 1000,
            max_interval: Duration::from_secs(10),
            initial_interval: cfg.gossip_interval * 5,
            dead_node_grace_period: Duration::from_secs(3600),
        };
        let config = ChitchatConfig {
            chitchat_id: ChitchatId::new(cfg.node_id.clone(), generation, cfg.advertise_addr),
            cluster_id: cfg.cluster_id.clone(),
            gossip_interval: cfg.gossip_interval,
            listen_addr: cfg.listen_addr,
            seed_nodes: cfg.seeds.clone(),
            failure_detector_config: fd,
            marked_for_deletion_grace_period: Duration::from_secs(3600),
            catchup_callback: None,
            extra_liveness_predicate: None,
            protocol_version: chitchat::ProtocolVersion::V0,
        };
        let handle = spawn_chitchat(config, Vec::new(), &UdpTransport)
            .await
            .map_err(|e| NetError::Gossip(format!("start on {}: {e}", cfg.listen_addr)))?;
        Ok(Gossip {
            handle,
            node_id: cfg.node_id,
            watch_interval: cfg.watch_interval,
        })
    }

    /// This node's id.
    pub fn node_id(&self) -> &str {
        &self.node_id
    }

    /// Publish (or update) a local endpoint.
    pub async fn publish(&self, ep: &Endpoint) -> Result<()> {
        check_network(&ep.network)?;
        let (k, v) = (key(&ep.network, ep.ip), endpoint_value(ep));
        self.handle
            .with_chitchat(|c| c.self_node_state().set(k.clone(), v.clone()))
            .await;
        Ok(())
    }

    /// Withdraw a local endpoint (a tombstone replicates the deletion).
    pub async fn withdraw(&self, network: &str, ip: Ipv4Addr) -> Result<()> {
        check_network(network)?;
        let k = key(network, ip);
        self.handle
            .with_chitchat(|c| {
                if c.self_node_state().get(&k).is_some() {
                    c.self_node_state().delete(&k);
                }
            })
            .await;
        Ok(())
    }

    /// Publish (or replace) a service record for a local running task.
    pub async fn publish_record(&self, r: &ServiceRecord) -> Result<()> {
        check_network(&r.network)?;
        let k = record_key(&r.network, r.ip);
        let v = serde_json::to_string(r)
            .map_err(|e| NetError::Invalid(format!("service record: {e}")))?;
        self.handle
            .with_chitchat(|c| c.self_node_state().set(k.clone(), v.clone()))
            .await;
        Ok(())
    }

    /// Withdraw a service record (drain: done before the task is stopped).
    pub async fn withdraw_record(&self, network: &str, ip: Ipv4Addr) -> Result<()> {
        check_network(network)?;
        let k = record_key(network, ip);
        self.handle
            .with_chitchat(|c| {
                if c.self_node_state().get(&k).is_some() {
                    c.self_node_state().delete(&k);
                }
            })
            .await;
        Ok(())
    }

    /// Service records of every live node, this one included, sorted.
    pub async fn records(&self) -> Vec<NodeRecord> {
        self.handle
            .with_chitchat(|c| {
                let mut out = Vec::new();
                for id in c.live_nodes() {
                    if let Some(st) = c.node_state(id) {
                        for (k, v) in st.key_values() {
                            if let Some(record) = parse_record(k, v) {
                                out.push(NodeRecord {
                                    node_id: id.node_id.to_string(),
                                    record,
                                });
                            }
                        }
                    }
                }
                out.sort();
                out
            })
            .await
    }

    /// Ids and addresses of the nodes currently considered alive (including this one).
    pub async fn live_nodes(&self) -> Vec<(String, SocketAddr)> {
        self.handle
            .with_chitchat(|c| {
                c.live_nodes()
                    .map(|id| (id.node_id.to_string(), id.gossip_advertise_addr))
                    .collect()
            })
            .await
    }

    /// Endpoints published by other live nodes.
    pub async fn remote_endpoints(&self) -> Vec<RemoteEndpoint> {
        snapshot(&self.handle, &self.node_id).await
    }

    /// A stream of changes to [`Gossip::remote_endpoints`], starting with an `Added` for each
    /// endpoint already known. It diffs polls, so an endpoint that comes and goes between two
    /// polls is never reported (nothing to program for it). Ends when the receiver is dropped.
    pub fn watch(&self) -> EndpointWatcher {
        let (tx, rx) = mpsc::channel(1024);
        let chitchat = self.handle.chitchat();
        let me = self.node_id.clone();
        let every = self.watch_interval;
        let task = tokio::spawn(async move {
            let mut known: BTreeMap<(String, Ipv4Addr, String), RemoteEndpoint> = BTreeMap::new();
            let mut tick = tokio::time::interval(every);
            loop {
                tick.tick().await;
                let now = {
                    let c = chitchat.lock().await;
                    collect(&c, &me)
                };
                let now: BTreeMap<_, _> = now
                    .into_iter()
                    .map(|r| {
                        (
                            (r.endpoint.network.clone(), r.endpoint.ip, r.node_id.clone()),
                            r,
                        )
                    })
                    .collect();
                let mut events = Vec::new();
                for (k, r) in &known {
                    if now.get(k) != Some(r) {
                        events.push(EndpointEvent::Removed(r.clone()));
                    }
                }
                for (k, r) in &now {
                    if known.get(k) != Some(r) {
                        events.push(EndpointEvent::Added(r.clone()));
                    }
                }
                for e in events {
                    if tx.send(e).await.is_err() {
                        return;
                    }
                }
                known = now;
            }
        });
        EndpointWatcher { rx, task }
    }

    /// Leave: stop gossiping. Peers notice through failure detection.
    pub async fn shutdown(self) -> Result<()> {
        self.handle
            .shutdown()
            .await
            .map_err(|e| NetError::Gossip(format!("shutdown: {e}")))
    }
}

fn collect(c: &chitchat::Chitchat, me: &str) -> Vec<RemoteEndpoint> {
    let mut out = Vec::new();
    for id in c.live_nodes() {
        if &*id.node_id == me {
            continue;
        }
        if let Some(st) = c.node_state(id) {
            for (k, v) in st.key_values() {
                if let Some(endpoint) = parse_endpoint(k, v) {
                    out.push(RemoteEndpoint {
                        node_id: id.node_id.to_string(),
                        endpoint,
                    });
                }
            }
        }
    }
    out.sort();
    out
}

async fn snapshot(h: &ChitchatHandle, me: &str) -> Vec<RemoteEndpoint> {
    h.with_chitchat(|c| collect(c, me)).await
}

/// Receives [`EndpointEvent`]s; stops its task when dropped.
pub struct EndpointWatcher {
    rx: mpsc::Receiver<EndpointEvent>,
    task: JoinHandle<()>,
}

impl EndpointWatcher {
    /// The next change (None when gossip stopped).
    pub async fn next(&mut self) -> Option<EndpointEvent> {
        self.rx.recv().await
    }
}

impl Drop for EndpointWatcher {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip() {
        let ep = Endpoint {
            network: "net1".into(),
            ip: Ipv4Addr::new(10, 0, 0, 5),
            mac: Mac::from_ip(Ipv4Addr::new(10, 0, 0, 5)),
            vtep: Ipv4Addr::new(192, 168, 1, 2),
        };
        let k = key(&ep.network, ep.ip);
        assert_eq!(k, "ep/net1/10.0.0.5");
        assert_eq!(parse_endpoint(&k, &endpoint_value(&ep)), Some(ep));
        assert_eq!(parse_endpoint("other/x", "a,b"), None);
        assert_eq!(parse_endpoint("ep/net1/10.0.0.5", "nonsense"), None);
        assert_eq!(
            parse_endpoint("ep/net1/999.0.0.5", "02:42:0a:00:00:05,1.2.3.4"),
            None
        );
    }

    #[test]
    fn records_round_trip_and_key_must_match() {
        let r = ServiceRecord {
            network: "net1".into(),
            ip: Ipv4Addr::new(10, 0, 1, 5),
            service_id: "s1".into(),
            names: vec!["web".into()],
            task_names: vec!["web.1.abc".into()],
            task_id: "abc".into(),
            vip: Some(Ipv4Addr::new(10, 0, 1, 2)),
            mesh_ports: vec![],
        };
        let k = record_key(&r.network, r.ip);
        assert_eq!(k, "sv/net1/10.0.1.5");
        let v = serde_json::to_string(&r).unwrap();
        assert_eq!(parse_record(&k, &v), Some(r.clone()));
        // A record whose body disagrees with its key is ignored.
        assert_eq!(parse_record("sv/net1/10.0.1.6", &v), None);
        assert_eq!(parse_record("sv/net2/10.0.1.5", &v), None);
        assert_eq!(parse_record(&k, "{not json"), None);
        assert_eq!(parse_record("ep/net1/10.0.1.5", &v), None);
    }
}
