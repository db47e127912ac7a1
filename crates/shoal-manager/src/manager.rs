//! A manager node: the replicated store plus the control logic every manager runs, and the
//! leader-only loops (node liveness, Raft membership reconciliation).
//!
//! Writes go through [`Manager::propose`]: proposed locally when this manager leads, otherwise
//! forwarded to the leader over `Control.Propose` (the command carries expected versions, so
//! validating on the follower is safe).

use crate::liveness::{LivenessTracker, Verdict};
use crate::nodes::Membership;
use crate::raft_id::raft_id_for;
use shoal_proto::control::{
    JoinRaftRequest, LeaveRaftRequest, ProposeRequest, control_client::ControlClient,
};
use shoal_store::{Applied, Change, ChannelFactory, Command, ProposeError, Store, StoreView};
use shoal_types::node::{ManagerStatus, NodeDescription};
use shoal_types::{ApiError, Cluster, Node, NodeRole, NodeState, Object, ObjectKind, Reachability};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::watch;

const LEADER_LOOP_TICK: Duration = Duration::from_millis(500);
const FORWARD_TIMEOUT: Duration = Duration::from_secs(10);

pub struct Manager {
    pub store: Store,
    pub node_id: String,
    pub addr: String,
    channels: ChannelFactory,
    clients: Mutex<HashMap<String, tonic::transport::Channel>>,
    liveness: Mutex<Option<LivenessTracker>>,
}

fn unavailable(e: impl std::fmt::Display) -> ApiError {
    ApiError::unavailable(e.to_string())
}

impl Manager {
    pub fn new(store: Store, node_id: String, addr: String, channels: ChannelFactory) -> Arc<Self> {
        Arc::new(Manager {
            store,
            node_id,
            addr,
            channels,
            clients: Mutex::new(HashMap::new()),
            liveness: Mutex::new(None),
        })
    }

    pub fn view(&self) -> StoreView {
        self.store.read()
    }

    pub fn cluster(&self) -> Option<Cluster> {
        self.view().list(ObjectKind::Cluster).find_map(|o| match o {
            Object::Cluster(c) => Some(c.clone()),
            _ => None,
        })
    }

    pub fn raw_nodes(&self) -> Vec<Node> {
        nodes_of(&self.view())
    }

    pub fn is_leader(&self) -> bool {
        self.store.is_leader()
    }

    pub fn leader_addr(&self) -> Option<String> {
        self.store.leader().map(|(_, addr)| addr)
    }

    fn channel(&self, addr: &str) -> Result<tonic::transport::Channel, ApiError> {
        let mut clients = self.clients.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(c) = clients.get(addr) {
            return Ok(c.clone());
        }
        let ch = (self.channels)(addr).map_err(unavailable)?;
        clients.insert(addr.to_string(), ch.clone());
        Ok(ch)
    }

    /// Propose a command; forwarded to the leader when this manager is a follower.
    pub async fn propose(&self, changes: Vec<Change>) -> Result<Applied, ApiError> {
        let cmd = Command::new(changes);
        if self.store.is_leader() {
            // No copy kept for forwarding: the orchestrators propose thousands of tasks at a
            // time. Leadership lost during the write is reported; callers retry.
            return match self.store.propose(cmd).await {
                Ok(applied) => Ok(applied),
                Err(ProposeError::ForwardToLeader { leader_addr, .. }) => {
                    Err(ApiError::unavailable(format!(
                        "leadership moved to {leader_addr} during the write; retry"
                    )))
                }
                Err(e) => Err(e.into()),
            };
        }
        match self.store.propose(cmd.clone()).await {
            Ok(applied) => Ok(applied),
            Err(ProposeError::ForwardToLeader { leader_addr, .. }) => {
                self.forward(&leader_addr, &cmd).await
            }
            Err(e) => Err(e.into()),
        }
    }

    async fn forward(&self, leader_addr: &str, cmd: &Command) -> Result<Applied, ApiError> {
        let mut client = ControlClient::new(self.channel(leader_addr)?);
        let req = ProposeRequest {
            command_json: serde_json::to_vec(cmd).map_err(|e| ApiError::internal(e.to_string()))?,
        };
        let resp = tokio::time::timeout(FORWARD_TIMEOUT, client.propose(req))
            .await
            .map_err(|_| {
                ApiError::unavailable(format!(
                    "no leader: the leader at {leader_addr} did not answer (quorum lost?)"
                ))
            })?
            .map_err(|s| {
                ApiError::unavailable(format!(
                    "forwarding to leader {leader_addr}: {}",
                    s.message()
                ))
            })?
            .into_inner();
        if !resp.error_json.is_empty() {
            let err: ApiError = serde_json::from_slice(&resp.error_json)
                .unwrap_or_else(|_| ApiError::internal("leader returned an unreadable error"));
            return Err(err);
        }
        serde_json::from_slice(&resp.result_json)
            .map_err(|e| ApiError::internal(format!("leader returned an unreadable result: {e}")))
    }

    /// Ask the leader to add `raft_id` at `addr` as a voter (a newly joined or promoted manager).
    pub async fn join_raft(&self, raft_id: u64, addr: &str) -> Result<(), ApiError> {
        match self.store.add_voter(raft_id, addr).await {
            Ok(()) => Ok(()),
            Err(ProposeError::ForwardToLeader { leader_addr, .. }) => {
                let mut client = ControlClient::new(self.channel(&leader_addr)?);
                client
                    .join_raft(JoinRaftRequest {
                        raft_id,
                        addr: addr.to_string(),
                    })
                    .await
                    .map_err(|s| ApiError::unavailable(s.message().to_string()))?;
                Ok(())
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Ask the leader to take `raft_id` out of Raft.
    pub async fn leave_raft(&self, raft_id: u64) -> Result<(), ApiError> {
        match self.store.remove_voter(raft_id).await {
            Ok(()) => Ok(()),
            Err(ProposeError::ForwardToLeader { leader_addr, .. }) => {
                let mut client = ControlClient::new(self.channel(&leader_addr)?);
                client
                    .leave_raft(LeaveRaftRequest { raft_id })
                    .await
                    .map_err(|s| ApiError::unavailable(s.message().to_string()))?;
                Ok(())
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Raft membership in node-ID terms, for the demote/remove rules.
    pub fn membership(&self) -> Membership {
        let nodes = self.raw_nodes();
        let metrics = self.store.metrics();
        let by_raft: HashMap<u64, &Node> = nodes.iter().map(|n| (raft_id_for(&n.id), n)).collect();
        let mut managers = Vec::new();
        let mut reachable = Vec::new();
        for m in metrics.members.iter().filter(|m| m.voter) {
            if let Some(n) = by_raft.get(&m.node_id) {
                managers.push(n.id.clone());
                if m.reachability == Reachability::Reachable || m.leader {
                    reachable.push(n.id.clone());
                }
            }
        }
        Membership {
            managers,
            reachable,
        }
    }

    /// Nodes as the API shows them: `ManagerStatus` filled from Raft membership.
    pub fn nodes(&self) -> Vec<Node> {
        let mut nodes = self.raw_nodes();
        let metrics = self.store.metrics();
        let leader_is_me = self.is_leader();
        for n in nodes.iter_mut() {
            let rid = raft_id_for(&n.id);
            n.manager_status = metrics.members.iter().find(|m| m.node_id == rid).map(|m| {
                // A follower only hears from the leader; for the other members it relies on
                // their heartbeats (node status) rather than reporting "unknown".
                let reachable = m.leader
                    || m.reachability == Reachability::Reachable
                    || (!leader_is_me && n.status.state == NodeState::Ready);
                ManagerStatus {
                    leader: m.leader,
                    reachability: if reachable {
                        Reachability::Reachable
                    } else {
                        Reachability::Unreachable
                    },
                    addr: m.addr.clone(),
                }
            });
        }
        nodes
    }

    pub fn manager_addrs(&self) -> Vec<String> {
        self.store
            .members()
            .into_iter()
            .filter(|m| m.voter)
            .map(|m| m.addr)
            .collect()
    }

    /// A heartbeat reached this manager. Only the leader tracks liveness; a follower returns
    /// the leader's address so the node talks to it directly.
    pub async fn heartbeat(
        &self,
        node_id: &str,
        addr: &str,
        description: Option<NodeDescription>,
    ) -> Result<HeartbeatOutcome, HeartbeatRefusal> {
        if !self.is_leader() {
            return Err(HeartbeatRefusal::NotLeader(self.leader_addr()));
        }
        let period = self.heartbeat_period();
        {
            let mut guard = self.liveness.lock().unwrap_or_else(|p| p.into_inner());
            let tracker = guard.get_or_insert_with(|| LivenessTracker::new(period, Instant::now()));
            tracker.set_period(period);
            tracker.heartbeat(node_id, Instant::now());
        }
        let view = self.view();
        let Some(Object::Node(node)) = view.get(ObjectKind::Node, node_id) else {
            return Ok(HeartbeatOutcome {
                period,
                removed: true,
                desired_role: NodeRole::Worker,
                managers: self.manager_addrs(),
            });
        };
        let mut updated = node.clone();
        updated.status.state = NodeState::Ready;
        updated.status.message = String::new();
        if !addr.is_empty() {
            updated.status.addr = host_of(addr).to_string();
        }
        if let Some(d) = description {
            updated.description = d;
        }
        if updated != *node {
            let version = node.meta.version.index;
            // A lost race (another write to the node) is retried by the next heartbeat.
            let _ = self
                .propose(vec![Change::Update {
                    object: Object::Node(updated),
                    expected_version: Some(version),
                }])
                .await;
        }
        Ok(HeartbeatOutcome {
            period,
            removed: false,
            desired_role: node.spec.role,
            managers: self.manager_addrs(),
        })
    }

    pub fn heartbeat_period(&self) -> Duration {
        let ns = self
            .cluster()
            .map(|c| c.spec.dispatcher.heartbeat_period)
            .filter(|ns| *ns > 0)
            .unwrap_or(5_000_000_000);
        Duration::from_nanos(ns.max(100_000_000) as u64)
    }

    /// Run the leader-only loops until `stop` turns true.
    pub fn spawn_leader_loop(self: &Arc<Self>, mut stop: watch::Receiver<bool>) {
        let me = self.clone();
        tokio::spawn(async move {
            let mut was_leader = false;
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(LEADER_LOOP_TICK) => {}
                    _ = stop.changed() => {}
                }
                if *stop.borrow() {
                    break;
                }
                let leader = me.is_leader();
                if leader && !was_leader {
                    tracing::info!("became leader: starting liveness tracking");
                    let mut g = me.liveness.lock().unwrap_or_else(|p| p.into_inner());
                    *g = Some(LivenessTracker::take_over(
                        g.take(),
                        me.heartbeat_period(),
                        Instant::now(),
                    ));
                } else if !leader && was_leader {
                    tracing::info!("lost leadership");
                    *me.liveness.lock().unwrap_or_else(|p| p.into_inner()) = None;
                }
                was_leader = leader;
                if leader {
                    me.mark_down_nodes().await;
                    me.reconcile_membership().await;
                }
            }
        });
    }

    async fn mark_down_nodes(&self) {
        let now = Instant::now();
        let mut changes = Vec::new();
        {
            let guard = self.liveness.lock().unwrap_or_else(|p| p.into_inner());
            let Some(tracker) = guard.as_ref() else {
                return;
            };
            for node in self.raw_nodes() {
                if node.id == self.node_id {
                    continue;
                }
                if tracker.verdict(&node.id, now) == Verdict::Down
                    && node.status.state != NodeState::Down
                {
                    let version = node.meta.version.index;
                    let mut n = node;
                    n.status.state = NodeState::Down;
                    n.status.message = "heartbeat failure".into();
                    changes.push(Change::Update {
                        object: Object::Node(n),
                        expected_version: Some(version),
                    });
                }
            }
        }
        // The leader is alive by definition; keep its own status Ready.
        if let Some(me) = self.raw_nodes().into_iter().find(|n| n.id == self.node_id)
            && me.status.state != NodeState::Ready
        {
            let version = me.meta.version.index;
            let mut n = me;
            n.status.state = NodeState::Ready;
            n.status.message = String::new();
            changes.push(Change::Update {
                object: Object::Node(n),
                expected_version: Some(version),
            });
        }
        for change in changes {
            if let Err(e) = self.propose(vec![change]).await {
                tracing::debug!("node status update refused: {}", e.message);
            }
        }
    }

    /// Voters whose node was demoted or removed leave Raft (quorum permitting).
    async fn reconcile_membership(&self) {
        let nodes = self.raw_nodes();
        let members = self.store.members();
        for m in members.iter().filter(|m| m.voter) {
            let node = nodes.iter().find(|n| raft_id_for(&n.id) == m.node_id);
            let should_leave = match node {
                None => true,
                Some(n) => n.spec.role == NodeRole::Worker,
            };
            // A leader demoting itself removes itself too: it steps down once that commits.
            if !should_leave {
                continue;
            }
            match self.store.remove_voter(m.node_id).await {
                Ok(()) => tracing::info!(raft_id = m.node_id, "removed from raft"),
                Err(e) => tracing::debug!(raft_id = m.node_id, "not removed from raft yet: {e}"),
            }
        }
    }
}

pub struct HeartbeatOutcome {
    pub period: Duration,
    pub removed: bool,
    pub desired_role: NodeRole,
    pub managers: Vec<String>,
}

pub enum HeartbeatRefusal {
    NotLeader(Option<String>),
}

pub fn nodes_of(view: &StoreView) -> Vec<Node> {
    view.list(ObjectKind::Node)
        .filter_map(|o| match o {
            Object::Node(n) => Some(n.clone()),
            _ => None,
        })
        .collect()
}

fn host_of(addr: &str) -> &str {
    addr.rsplit_once(':').map(|(h, _)| h).unwrap_or(addr)
}
