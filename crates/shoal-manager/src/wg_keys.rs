//! WireGuard keys of encrypted overlays, on the managers.
//!
//! Every node makes its own key pair and reports the public half in its heartbeat's node
//! description (`Description.WireGuard`). The leader checks the report, numbers each new key
//! (the generation, +1 at every rotation) and stores it in the node object through Raft; every
//! node then follows `Dispatcher.WireGuardPeers`, a stream of the whole set (node, underlay
//! address, port, public key, generation) sent on connect and again whenever it changes. Nodes
//! make WireGuard peers only of keys in this set, so a key the managers do not know is never
//! accepted.

use crate::manager::Manager;
use base64::Engine;
use shoal_proto::dispatcher::{WireGuardPeer, WireGuardPeerSet};
use shoal_store::StoreView;
use shoal_types::node::{NodeDescription, WireGuardKey};
use shoal_types::{Object, ObjectKind};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use tonic::Status;

/// How often a stream checks that this manager still leads (nodes follow the leader).
const LEADER_CHECK: Duration = Duration::from_secs(1);

/// Check the WireGuard key a node reports in its heartbeat and give it its generation: the
/// stored one while the key is unchanged (so an unchanged report writes nothing), the next
/// one when the node rotated. A malformed key, or one another node already holds, is refused
/// and changes nothing.
pub fn check_report(
    manager: &Manager,
    node_id: &str,
    description: Option<NodeDescription>,
) -> Result<Option<NodeDescription>, Status> {
    let Some(mut d) = description else {
        return Ok(None);
    };
    let view = manager.view();
    let stored = match view.get(ObjectKind::Node, node_id) {
        Some(Object::Node(n)) => n.description.wireguard.clone(),
        _ => None,
    };
    let others: Vec<(String, String)> = view
        .list(ObjectKind::Node)
        .filter_map(|o| match o {
            Object::Node(n) if n.id != node_id => n
                .description
                .wireguard
                .as_ref()
                .map(|k| (n.id.clone(), k.public_key.clone())),
            _ => None,
        })
        .collect();
    d.wireguard = settle(stored.as_ref(), d.wireguard.take(), &others)
        .map_err(|e| Status::invalid_argument(format!("WireGuard key: {e}")))?;
    Ok(Some(d))
}

/// The key to store for a node that reported `reported`, given what is `stored` for it and
/// the keys of the `others` (node ID, public key).
fn settle(
    stored: Option<&WireGuardKey>,
    reported: Option<WireGuardKey>,
    others: &[(String, String)],
) -> Result<Option<WireGuardKey>, String> {
    let Some(mut k) = reported else {
        return Ok(None);
    };
    let raw = base64::engine::general_purpose::STANDARD
        .decode(k.public_key.trim())
        .map_err(|e| format!("not base64: {e}"))?;
    if raw.len() != 32 {
        return Err(format!("{} bytes, a key has 32", raw.len()));
    }
    if raw.iter().all(|b| *b == 0) {
        return Err("the all-zero key".into());
    }
    if k.port == 0 {
        return Err("port 0".into());
    }
    // One canonical spelling, so comparisons between nodes are exact.
    k.public_key = base64::engine::general_purpose::STANDARD.encode(&raw);
    if let Some((other, _)) = others.iter().find(|(_, pk)| *pk == k.public_key) {
        return Err(format!("node {other} already has this public key"));
    }
    k.generation = match stored {
        Some(s) if s.public_key == k.public_key => s.generation,
        Some(s) => s.generation + 1,
        None => 1,
    };
    Ok(Some(k))
}

/// Every node's key as the managers know it, sorted by node ID.
pub fn peer_set(view: &StoreView) -> WireGuardPeerSet {
    let mut peers: Vec<WireGuardPeer> = view
        .list(ObjectKind::Node)
        .filter_map(|o| match o {
            Object::Node(n) => {
                let k = n.description.wireguard.as_ref()?;
                (!n.status.addr.is_empty()).then(|| WireGuardPeer {
                    node_id: n.id.clone(),
                    addr: n.status.addr.clone(),
                    port: u32::from(k.port),
                    public_key: k.public_key.clone(),
                    generation: k.generation,
                })
            }
            _ => None,
        })
        .collect();
    peers.sort_by(|a, b| a.node_id.cmp(&b.node_id));
    WireGuardPeerSet { peers }
}

/// The managers' peer set, kept current by one reader of the store's events and shared by
/// every node's `WireGuardPeers` stream: a stream per node reading the events itself cost each
/// event once per connected node.
#[derive(Clone)]
pub struct PeerSets {
    current: watch::Receiver<WireGuardPeerSet>,
}

impl PeerSets {
    /// Starts following node changes; runs as long as the store does.
    pub fn spawn(manager: &Manager) -> PeerSets {
        let (view, mut events) = manager.store.view_and_watch();
        let (tx, current) = watch::channel(peer_set(&view));
        drop(view);
        let store = manager.store.clone();
        tokio::spawn(async move {
            loop {
                match events.recv().await {
                    Ok(e) if !matches!(*e.object, Object::Node(_)) => continue,
                    Ok(_) | Err(RecvError::Lagged(_)) => {}
                    Err(RecvError::Closed) => return,
                }
                let set = peer_set(&store.read());
                tx.send_if_modified(|cur| {
                    let changed = *cur != set;
                    if changed {
                        *cur = set;
                    }
                    changed
                });
            }
        });
        PeerSets { current }
    }

    /// The `WireGuardPeers` stream of one node: the set now, then each changed set, until the
    /// node goes away or this manager stops leading (the node then follows the new leader).
    pub fn stream(
        &self,
        manager: Arc<Manager>,
    ) -> ReceiverStream<Result<WireGuardPeerSet, Status>> {
        let (tx, rx) = mpsc::channel(4);
        let mut current = self.current.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(LEADER_CHECK);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                let set = current.borrow_and_update().clone();
                if tx.send(Ok(set)).await.is_err() {
                    return;
                }
                loop {
                    tokio::select! {
                        r = current.changed() => {
                            if r.is_err() {
                                return;
                            }
                            break;
                        }
                        _ = tick.tick() => {
                            if !manager.is_leader() {
                                let _ = tx
                                    .send(Err(Status::unavailable("this manager is not the leader")))
                                    .await;
                                return;
                            }
                        }
                        _ = tx.closed() => return,
                    }
                }
            }
        });
        ReceiverStream::new(rx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(b: u8) -> String {
        base64::engine::general_purpose::STANDARD.encode([b; 32])
    }

    fn report(b: u8) -> Option<WireGuardKey> {
        Some(WireGuardKey {
            public_key: key(b),
            port: 51820,
            generation: 77,
        })
    }

    #[test]
    fn generations_count_key_changes_not_reports() {
        let first = settle(None, report(1), &[]).unwrap().unwrap();
        assert_eq!(first.generation, 1, "the node's claim is not taken");
        let same = settle(Some(&first), report(1), &[]).unwrap().unwrap();
        assert_eq!(same, first, "an unchanged report stores nothing new");
        let rotated = settle(Some(&first), report(2), &[]).unwrap().unwrap();
        assert_eq!(rotated.generation, 2);
        assert_eq!(rotated.public_key, key(2));
        assert_eq!(settle(Some(&first), None, &[]).unwrap(), None);
    }

    #[test]
    fn bad_or_stolen_keys_are_refused() {
        let bad = |pk: &str, port: u16| {
            settle(
                None,
                Some(WireGuardKey {
                    public_key: pk.into(),
                    port,
                    generation: 0,
                }),
                &[("other".into(), key(9))],
            )
        };
        assert!(bad("not base64!", 51820).unwrap_err().contains("base64"));
        assert!(bad(&key(1)[..20], 51820).is_err());
        assert!(bad(&key(0), 51820).unwrap_err().contains("zero"));
        assert!(bad(&key(1), 0).unwrap_err().contains("port"));
        let stolen = bad(&key(9), 51820).unwrap_err();
        assert!(stolen.contains("other"), "{stolen}");
        assert!(bad(&key(1), 51820).is_ok());
    }
}
