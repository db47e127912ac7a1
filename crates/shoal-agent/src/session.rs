//! The node's session with the managers: heartbeats at the period the leader asks for, failover
//! to another manager when one stops answering, and notice of role changes or removal.
//!
//! A follower manager answers a heartbeat with `Unavailable` and the leader's address in the
//! `x-shoal-leader` metadata; the session then talks to the leader directly.

use shoal_proto::dispatcher::{HeartbeatRequest, dispatcher_client::DispatcherClient};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Mutex, watch};
use tonic::transport::Channel;

pub type ChannelFactory = Arc<dyn Fn(&str) -> anyhow::Result<Channel> + Send + Sync>;

/// What the session learned from the last successful heartbeat.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SessionState {
    pub connected: bool,
    pub manager: Option<String>,
    pub managers: Vec<String>,
    pub desired_role: String,
    pub removed: bool,
    pub period: Duration,
    pub last_error: Option<String>,
}

pub struct SessionConfig {
    pub managers: Vec<String>,
    pub advertise_addr: String,
    /// JSON of the node description (hostname, platform, resources, engine).
    pub description_json: Vec<u8>,
    /// Newer descriptions (e.g. a rotated WireGuard key): each replaces `description_json`
    /// and is sent at once rather than at the next period.
    pub description_updates: Option<watch::Receiver<Vec<u8>>>,
}

pub struct Session {
    state_tx: watch::Sender<SessionState>,
    managers: Mutex<Vec<String>>,
}

const MIN_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(2);
const RPC_TIMEOUT: Duration = Duration::from_secs(3);

impl Session {
    /// Start the heartbeat loop; it runs until `stop` turns true.
    pub fn start(
        cfg: SessionConfig,
        channels: ChannelFactory,
        mut stop: watch::Receiver<bool>,
    ) -> (Arc<Session>, watch::Receiver<SessionState>) {
        let (state_tx, state_rx) = watch::channel(SessionState::default());
        let session = Arc::new(Session {
            state_tx,
            managers: Mutex::new(cfg.managers.clone()),
        });
        let me = session.clone();
        let mut description_json = cfg.description_json.clone();
        let mut updates = cfg.description_updates;
        tokio::spawn(async move {
            let mut target: Option<String> = None;
            let mut backoff = MIN_BACKOFF;
            let mut rr = 0usize;
            loop {
                if *stop.borrow() {
                    break;
                }
                let addr = match target.clone() {
                    Some(a) => a,
                    None => {
                        let list = me.managers.lock().await.clone();
                        if list.is_empty() {
                            me.note_error("no known manager".into());
                            tokio::select! {
                                _ = tokio::time::sleep(MAX_BACKOFF) => {}
                                _ = stop.changed() => {}
                            }
                            continue;
                        }
                        rr = rr.wrapping_add(1);
                        list[rr % list.len()].clone()
                    }
                };
                let channel = match channels(&addr) {
                    Ok(c) => c,
                    Err(e) => {
                        target = None;
                        me.note_error(format!("{addr}: {e:#}"));
                        backoff = (backoff * 2).min(MAX_BACKOFF);
                        tokio::select! {
                            _ = tokio::time::sleep(backoff) => {}
                            _ = stop.changed() => {}
                        }
                        continue;
                    }
                };
                let mut client = DispatcherClient::new(channel);
                if let Some(u) = updates.as_mut() {
                    description_json = u.borrow_and_update().clone();
                }
                let req = HeartbeatRequest {
                    description_json: description_json.clone(),
                    addr: cfg.advertise_addr.clone(),
                };
                let res = tokio::time::timeout(RPC_TIMEOUT, client.heartbeat(req)).await;
                let wait = match res {
                    Ok(Ok(resp)) => {
                        let resp = resp.into_inner();
                        backoff = MIN_BACKOFF;
                        target = Some(addr.clone());
                        let period = Duration::from_millis(resp.period_ms.max(100));
                        if !resp.managers.is_empty() {
                            *me.managers.lock().await = resp.managers.clone();
                        }
                        me.state_tx.send_modify(|s| {
                            s.connected = true;
                            s.manager = Some(addr.clone());
                            s.managers = resp.managers.clone();
                            s.desired_role = resp.desired_role.clone();
                            s.removed = resp.removed;
                            s.period = period;
                            s.last_error = None;
                        });
                        period
                    }
                    Ok(Err(status)) => {
                        let leader = status
                            .metadata()
                            .get("x-shoal-leader")
                            .and_then(|v| v.to_str().ok())
                            .map(str::to_string);
                        match leader {
                            Some(l) if l != addr => {
                                target = Some(l);
                                Duration::ZERO
                            }
                            _ => {
                                target = None;
                                me.note_error(format!("{addr}: {}", status.message()));
                                backoff = (backoff * 2).min(MAX_BACKOFF);
                                backoff
                            }
                        }
                    }
                    Err(_) => {
                        target = None;
                        me.note_error(format!("{addr}: heartbeat timed out"));
                        backoff = (backoff * 2).min(MAX_BACKOFF);
                        backoff
                    }
                };
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = stop.changed() => {}
                    changed = description_changed(&mut updates) => {
                        if !changed {
                            // The sender is gone: keep the last description.
                            updates = None;
                        }
                    }
                }
            }
        });
        (session, state_rx)
    }

    fn note_error(&self, err: String) {
        self.state_tx.send_modify(|s| {
            s.connected = false;
            s.last_error = Some(err);
        });
    }

    pub async fn managers(&self) -> Vec<String> {
        self.managers.lock().await.clone()
    }
}

/// Resolves when a newer description arrives (true) or its sender is gone (false); never
/// without updates.
async fn description_changed(updates: &mut Option<watch::Receiver<Vec<u8>>>) -> bool {
    match updates {
        Some(u) => u.changed().await.is_ok(),
        None => std::future::pending().await,
    }
}

/// Keeps a stream open to the leader the session names until `stop` turns true: `follow` runs
/// on a channel to the current leader (with a copy of `stop` to end on); when it ends or fails
/// (logged with `what`), the next try comes after half a second, or at once when the leader
/// changes.
pub async fn follow_leader<Fut>(
    channels: ChannelFactory,
    mut leader: watch::Receiver<SessionState>,
    mut stop: watch::Receiver<bool>,
    what: &str,
    mut follow: impl FnMut(Channel, watch::Receiver<bool>) -> Fut,
) where
    Fut: std::future::Future<Output = Result<(), tonic::Status>>,
{
    loop {
        if *stop.borrow() {
            return;
        }
        let target = leader.borrow().manager.clone();
        if let Some(addr) = target
            && let Ok(ch) = channels(&addr)
            && let Err(e) = follow(ch, stop.clone()).await
        {
            tracing::debug!("{what} from {addr} ended: {e}");
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(500)) => {}
            _ = leader.changed() => {}
            _ = stop.changed() => {}
        }
    }
}
