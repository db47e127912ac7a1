//! The node side of WireGuard key distribution, run while the node is in a swarm: the node's
//! public key goes into the description its heartbeats carry, a rotation is started when the
//! key in use is `--wg-key-rotation` old (or at once on SIGUSR2), and every peer set the
//! managers send is handed to the data plane.

use super::NetPlane;
use anyhow::Result;
use shoal_agent::wg_peers::WgPeerEntry;
use shoal_types::node::NodeDescription;
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::watch;

/// The daemon's default key lifetime.
pub const DEFAULT_ROTATION: Duration = Duration::from_secs(24 * 3600);
/// The shortest accepted lifetime (rotations are not free: every tunnel re-handshakes).
pub const MIN_ROTATION: Duration = Duration::from_secs(5);
/// While a rotation waits for the managers, how often to look whether it finished.
const PENDING_POLL: Duration = Duration::from_secs(1);
/// How often peers awaiting a handshake after a key change are checked.
const RECHECK: Duration = Duration::from_millis(200);

pub struct NodeKeys {
    /// The description for the first heartbeat (with the node's public key when it has one).
    pub description_json: Vec<u8>,
    /// Later descriptions (a rotated key); None when the node has no data plane.
    pub updates: Option<watch::Receiver<Vec<u8>>>,
    np: Option<Arc<NetPlane>>,
    stop: watch::Receiver<bool>,
}

impl NodeKeys {
    /// Load or make the node's key pair and start the rotation timer. Without a data plane
    /// (no overlays on this node) the node reports no key and is nobody's peer.
    pub async fn start(
        np: Option<Arc<NetPlane>>,
        mut description: NodeDescription,
        rotation: Duration,
        stop: watch::Receiver<bool>,
    ) -> Result<NodeKeys> {
        let report = match &np {
            Some(np) => match np.wg_report().await {
                Ok(k) => Some(k),
                Err(e) => {
                    tracing::error!("WireGuard key: {e:#}; encrypted overlays are unavailable");
                    None
                }
            },
            None => None,
        };
        description.wireguard = report.clone();
        let description_json = serde_json::to_vec(&description)?;
        let (np, updates) = match (np, report) {
            (Some(np), Some(_)) => {
                let (tx, rx) = watch::channel(description_json.clone());
                tokio::spawn(rotate_loop(
                    np.clone(),
                    description,
                    rotation,
                    tx,
                    stop.clone(),
                ));
                (Some(np), Some(rx))
            }
            _ => (None, None),
        };
        Ok(NodeKeys {
            description_json,
            updates,
            np,
            stop,
        })
    }

    /// Hand every peer set the managers send to the data plane, until the node stops.
    pub fn follow(&self, mut peers: watch::Receiver<Option<Vec<WgPeerEntry>>>) {
        let Some(np) = self.np.clone() else { return };
        let mut stop = self.stop.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(RECHECK);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                let set = peers.borrow_and_update().clone();
                if let Some(set) = set {
                    np.set_wg_peers(set).await;
                }
                loop {
                    tokio::select! {
                        r = peers.changed() => {
                            if r.is_err() {
                                return;
                            }
                            break;
                        }
                        _ = tick.tick() => {
                            np.wg_recheck().await;
                        }
                        _ = stop.changed() => return,
                    }
                }
            }
        });
    }
}

async fn rotate_loop(
    np: Arc<NetPlane>,
    mut description: NodeDescription,
    rotation: Duration,
    tx: watch::Sender<Vec<u8>>,
    mut stop: watch::Receiver<bool>,
) {
    let mut usr2 = match signal(SignalKind::user_defined2()) {
        Ok(s) => Some(s),
        Err(e) => {
            tracing::warn!("SIGUSR2 (rotate the WireGuard key now) unavailable: {e}");
            None
        }
    };
    loop {
        if *stop.borrow() {
            return;
        }
        let (wait, due) = match np.wg_rotation_due(rotation).await {
            Ok(Some(at)) => (
                at.duration_since(SystemTime::now()).unwrap_or_default(),
                true,
            ),
            // A rotation waits for the managers: look again shortly.
            Ok(None) => (PENDING_POLL, false),
            Err(e) => {
                tracing::warn!("WireGuard key: {e:#}");
                (Duration::from_secs(60), false)
            }
        };
        let forced = tokio::select! {
            _ = tokio::time::sleep(wait) => false,
            Some(()) = next_signal(&mut usr2) => true,
            r = stop.changed() => {
                if r.is_err() {
                    return;
                }
                continue;
            }
        };
        if !due && !forced {
            continue;
        }
        if forced {
            tracing::info!("SIGUSR2: rotating the WireGuard key now");
        }
        match np.wg_rotate().await {
            Ok(k) => {
                description.wireguard = Some(k);
                match serde_json::to_vec(&description) {
                    Ok(json) => {
                        let _ = tx.send(json);
                    }
                    Err(e) => tracing::warn!("node description: {e}"),
                }
            }
            Err(e) => {
                tracing::warn!("WireGuard key rotation: {e:#}");
                tokio::time::sleep(Duration::from_secs(10)).await;
            }
        }
    }
}

/// The next SIGUSR2, or never when the signal could not be registered.
async fn next_signal(s: &mut Option<tokio::signal::unix::Signal>) -> Option<()> {
    match s {
        Some(s) => s.recv().await,
        None => std::future::pending().await,
    }
}

/// Parse `--wg-key-rotation` (a Go duration such as `24h` or `30s`).
pub fn parse_rotation(s: &str) -> Result<Duration, String> {
    let ns = shoal_types::parse_duration(s).map_err(|e| format!("{e}"))?;
    let d = Duration::from_nanos(u64::try_from(ns).map_err(|_| "must not be negative")?);
    if d < MIN_ROTATION {
        return Err(format!("must be at least {}s", MIN_ROTATION.as_secs()));
    }
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotation_periods() {
        assert_eq!(parse_rotation("24h").unwrap(), DEFAULT_ROTATION);
        assert_eq!(parse_rotation("10s").unwrap(), Duration::from_secs(10));
        assert!(parse_rotation("1s").unwrap_err().contains("at least"));
        assert!(parse_rotation("-5m").is_err());
        assert!(parse_rotation("often").is_err());
    }
}
