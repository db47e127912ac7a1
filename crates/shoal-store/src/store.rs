//! `Store`: the replicated cluster store one manager runs (openraft + redb + tonic transport +
//! in-memory tables), and its public API: propose, read, watch, membership, metrics.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use openraft::error::{CheckIsLeaderError, ClientWriteError, InitializeError, RaftError};
use openraft::{BasicNode, ChangeMembers, ServerState};
use serde::{Deserialize, Serialize};
use shoal_proto::raft::raft_service_server::RaftServiceServer;
use shoal_types::{ApiError, Reachability};
use tokio::sync::{broadcast, mpsc};
use tokio::time::Instant;

use crate::command::{Applied, Command, NodeId, Raft};
use crate::config::RaftConfig;
use crate::disk::{ClosedFlag, Disk};
use crate::force_new;
use crate::log_store::LogStore;
use crate::network::{ChannelFactory, Contacts, NetworkFactory, RaftGrpc};
use crate::state_machine::{Shared, StateMachine};
use crate::tables::{Event, StoreView};

/// Why a proposal (or read barrier, or membership change) did not go through.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ProposeError {
    /// This member is not the leader; send the request to the leader instead.
    #[error("not the raft leader; the leader is member {leader_id} at {leader_addr}")]
    ForwardToLeader { leader_id: u64, leader_addr: String },
    /// No leader could commit within the proposal timeout. (A proposal that timed out may still
    /// be committed later if a leader had already appended it.)
    #[error("no leader: cluster has lost quorum")]
    NoQuorum,
    /// Committed but refused by the state machine (nothing changed), or a refused membership
    /// change.
    #[error("{0}")]
    Rejected(ApiError),
    /// The store was shut down or hit a fatal storage error.
    #[error("raft store stopped: {0}")]
    Stopped(String),
}

impl From<ProposeError> for ApiError {
    fn from(e: ProposeError) -> ApiError {
        match e {
            ProposeError::Rejected(e) => e,
            other => ApiError::unavailable(other.to_string()),
        }
    }
}

/// A Raft member as the membership config lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    pub node_id: u64,
    pub addr: String,
    /// false for a learner still catching up.
    pub voter: bool,
}

/// A member with its status as seen from this node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberStatus {
    pub node_id: u64,
    pub addr: String,
    pub voter: bool,
    pub leader: bool,
    /// Reachable if it answered (leader side) or spoke as leader (follower side) within the
    /// reachable window; the leader knows every member, a follower only itself and the leader.
    pub reachability: Reachability,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoreMetrics {
    pub node_id: u64,
    /// "leader", "follower", "candidate", "learner" or "shutdown".
    pub state: String,
    pub term: u64,
    pub leader: Option<u64>,
    pub last_log_index: Option<u64>,
    pub last_applied: Option<u64>,
    pub snapshot_index: Option<u64>,
    pub members: Vec<MemberStatus>,
}

/// The replicated store of one manager. Cheap to clone.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

struct Inner {
    cfg: RaftConfig,
    raft: Raft,
    shared: Arc<Shared>,
    contacts: Arc<Contacts>,
    removed: Arc<HashSet<NodeId>>,
    db_closed: ClosedFlag,
}

impl Store {
    /// Opens (or creates) `<dir>/raft.redb`, restores the state and starts the Raft member. A new
    /// cluster then needs `initialize_single`; a joining member waits for the leader to add it.
    pub async fn start(cfg: RaftConfig, channels: ChannelFactory) -> anyhow::Result<Store> {
        let raft_cfg = Arc::new(cfg.openraft_config()?);
        std::fs::create_dir_all(&cfg.dir)
            .with_context(|| format!("creating raft directory {}", cfg.dir.display()))?;
        let disk = Disk::open(&cfg.db_path(), cfg.at_rest_key.as_ref())?;
        if cfg.force_new_cluster {
            force_new::rewrite(&disk, &cfg)?;
        }
        let removed: HashSet<NodeId> = disk.read_removed()?.into_iter().collect();
        let shared = Shared::new();
        let sm = StateMachine::load(disk.clone(), shared.clone())?;
        let db_closed = disk.closed_flag();
        let log = LogStore::new(disk).context("starting the raft log flusher")?;
        let contacts = Arc::new(Contacts::default());
        let net = NetworkFactory {
            self_id: cfg.node_id,
            channels,
            contacts: contacts.clone(),
        };
        let raft = Raft::new(cfg.node_id, raft_cfg, net, log, sm)
            .await
            .context("starting raft")?;
        Ok(Store {
            inner: Arc::new(Inner {
                cfg,
                raft,
                shared,
                contacts,
                removed: Arc::new(removed),
                db_closed,
            }),
        })
    }

    /// The gRPC service other managers call; the daemon adds it to its (mTLS) tonic server.
    pub fn grpc_service(&self) -> RaftServiceServer<RaftGrpc> {
        RaftGrpc {
            raft: self.inner.raft.clone(),
            contacts: self.inner.contacts.clone(),
            removed: self.inner.removed.clone(),
        }
        .into_server()
    }

    pub fn node_id(&self) -> u64 {
        self.inner.cfg.node_id
    }

    pub fn addr(&self) -> &str {
        &self.inner.cfg.addr
    }

    /// Makes this member the single voter of a new cluster and waits until it leads.
    pub async fn initialize_single(&self) -> Result<(), ProposeError> {
        let cfg = &self.inner.cfg;
        let members = BTreeMap::from([(cfg.node_id, BasicNode::new(cfg.addr.clone()))]);
        match self.inner.raft.initialize(members).await {
            Ok(()) => {}
            Err(RaftError::APIError(InitializeError::NotAllowed(_))) => {
                return Err(ProposeError::Rejected(ApiError::conflict(format!(
                    "raft state in {} is already initialized",
                    cfg.dir.display()
                ))));
            }
            Err(RaftError::APIError(e)) => {
                return Err(ProposeError::Rejected(ApiError::internal(format!(
                    "initializing raft: {e}"
                ))));
            }
            Err(RaftError::Fatal(f)) => return Err(ProposeError::Stopped(f.to_string())),
        }
        match self.wait_leader(cfg.propose_timeout()).await {
            Some((id, _)) if id == cfg.node_id => Ok(()),
            _ => Err(ProposeError::NoQuorum),
        }
    }

    /// Proposes a command and waits until it is applied. Errors: `ForwardToLeader` on a
    /// follower, `NoQuorum` after the proposal timeout, `Rejected` if the state machine refused
    /// it (a committed entry that changed nothing).
    pub async fn propose(&self, cmd: Command) -> Result<Applied, ProposeError> {
        let deadline = Instant::now() + self.inner.cfg.propose_timeout();
        loop {
            let res =
                tokio::time::timeout_at(deadline, self.inner.raft.client_write(cmd.clone())).await;
            match res {
                Err(_) => return Err(ProposeError::NoQuorum),
                Ok(Ok(resp)) => return resp.data.map_err(ProposeError::Rejected),
                Ok(Err(RaftError::APIError(ClientWriteError::ForwardToLeader(f)))) => {
                    if let Some(fwd) = self.forward_target(f.leader_id, f.leader_node.as_ref()) {
                        return Err(fwd);
                    }
                    self.wait_for_change(deadline).await?;
                }
                Ok(Err(RaftError::APIError(ClientWriteError::ChangeMembershipError(e)))) => {
                    return Err(ProposeError::Rejected(ApiError::internal(e.to_string())));
                }
                Ok(Err(RaftError::Fatal(f))) => return Err(ProposeError::Stopped(f.to_string())),
            }
        }
    }

    /// The current in-memory view: no Raft round trip, may trail the leader slightly on a
    /// follower. Use `linearizable_read_barrier` first when that matters.
    pub fn read(&self) -> StoreView {
        self.inner.shared.read()
    }

    /// Change events from now on. A receiver that lags more than the channel capacity gets
    /// `RecvError::Lagged` and should re-read the view.
    pub fn watch(&self) -> broadcast::Receiver<Event> {
        self.inner.shared.subscribe()
    }

    /// A view plus the events that follow it, without gap or overlap.
    pub fn view_and_watch(&self) -> (StoreView, broadcast::Receiver<Event>) {
        self.inner.shared.view_and_watch()
    }

    /// Like `view_and_watch`, but the receiver never lags: every event is kept until read.
    /// Only for consumers that keep up on average (cheap work per event).
    pub fn view_and_complete_feed(&self) -> (StoreView, mpsc::UnboundedReceiver<Event>) {
        self.inner.shared.view_and_complete_feed()
    }

    /// Returns once this leader has confirmed its leadership with a quorum and applied every
    /// entry committed before the call: a `read()` after it is linearizable.
    pub async fn linearizable_read_barrier(&self) -> Result<(), ProposeError> {
        let deadline = Instant::now() + self.inner.cfg.propose_timeout();
        loop {
            let res =
                tokio::time::timeout_at(deadline, self.inner.raft.ensure_linearizable()).await;
            match res {
                Err(_) => return Err(ProposeError::NoQuorum),
                Ok(Ok(_)) => return Ok(()),
                Ok(Err(RaftError::APIError(CheckIsLeaderError::ForwardToLeader(f)))) => {
                    if let Some(fwd) = self.forward_target(f.leader_id, f.leader_node.as_ref()) {
                        return Err(fwd);
                    }
                    self.wait_for_change(deadline).await?;
                }
                Ok(Err(RaftError::APIError(CheckIsLeaderError::QuorumNotEnough(_)))) => {
                    self.wait_for_change(deadline).await?;
                }
                Ok(Err(RaftError::Fatal(f))) => return Err(ProposeError::Stopped(f.to_string())),
            }
        }
    }

    /// Where to forward, if another member is known to lead.
    fn forward_target(
        &self,
        leader: Option<NodeId>,
        node: Option<&BasicNode>,
    ) -> Option<ProposeError> {
        let id = leader?;
        if id == self.inner.cfg.node_id {
            return None;
        }
        let addr = match node {
            Some(n) => n.addr.clone(),
            None => self.member_addr(id)?,
        };
        Some(ProposeError::ForwardToLeader {
            leader_id: id,
            leader_addr: addr,
        })
    }

    /// Waits for the next metrics change (a leader appearing, a term change) or a short pause,
    /// whichever is first; `NoQuorum` once the deadline passed.
    async fn wait_for_change(&self, deadline: Instant) -> Result<(), ProposeError> {
        if Instant::now() >= deadline {
            return Err(ProposeError::NoQuorum);
        }
        let mut rx = self.inner.raft.metrics();
        let pause = Instant::now() + Duration::from_millis(self.inner.cfg.heartbeat_ms);
        let until = pause.min(deadline);
        let _ = tokio::time::timeout_at(until, rx.changed()).await;
        if rx.borrow().running_state.is_err() {
            return Err(ProposeError::Stopped("raft core stopped".into()));
        }
        Ok(())
    }

    /// Waits up to `timeout` until some member is known as leader.
    pub async fn wait_leader(&self, timeout: Duration) -> Option<(u64, String)> {
        let deadline = Instant::now() + timeout;
        let mut rx = self.inner.raft.metrics();
        loop {
            if let Some(l) = self.leader() {
                return Some(l);
            }
            if tokio::time::timeout_at(deadline, rx.changed())
                .await
                .is_err()
            {
                return self.leader();
            }
        }
    }

    fn member_addr(&self, id: NodeId) -> Option<String> {
        let m = self.inner.raft.metrics().borrow().membership_config.clone();
        m.membership().get_node(&id).map(|n| n.addr.clone())
    }

    /// The leader's Raft ID and address, if one is known.
    pub fn leader(&self) -> Option<(u64, String)> {
        let m = self.inner.raft.metrics().borrow().clone();
        let id = m.current_leader?;
        let addr = m.membership_config.membership().get_node(&id)?.addr.clone();
        Some((id, addr))
    }

    pub fn is_leader(&self) -> bool {
        let m = self.inner.raft.metrics().borrow().clone();
        m.state == ServerState::Leader && m.current_leader == Some(self.inner.cfg.node_id)
    }

    /// Voters and learners of the effective membership config.
    pub fn members(&self) -> Vec<Member> {
        let m = self.inner.raft.metrics().borrow().membership_config.clone();
        let voters: BTreeSet<NodeId> = m.membership().voter_ids().collect();
        m.membership()
            .nodes()
            .map(|(id, n)| Member {
                node_id: *id,
                addr: n.addr.clone(),
                voter: voters.contains(id),
            })
            .collect()
    }

    pub fn metrics(&self) -> StoreMetrics {
        let m = self.inner.raft.metrics().borrow().clone();
        let me = self.inner.cfg.node_id;
        let window = Duration::from_millis(self.inner.cfg.reachable_window_ms);
        let leading = m.state == ServerState::Leader;
        let members = self
            .members()
            .into_iter()
            .map(|mem| {
                let reachability = if mem.node_id == me {
                    Reachability::Reachable
                } else if leading || m.current_leader == Some(mem.node_id) {
                    if self.inner.contacts.seen_within(mem.node_id, window) {
                        Reachability::Reachable
                    } else {
                        Reachability::Unreachable
                    }
                } else {
                    Reachability::Unknown
                };
                MemberStatus {
                    leader: m.current_leader == Some(mem.node_id),
                    node_id: mem.node_id,
                    addr: mem.addr,
                    voter: mem.voter,
                    reachability,
                }
            })
            .collect();
        StoreMetrics {
            node_id: me,
            state: match m.state {
                ServerState::Leader => "leader",
                ServerState::Follower => "follower",
                ServerState::Candidate => "candidate",
                ServerState::Learner => "learner",
                ServerState::Shutdown => "shutdown",
            }
            .to_string(),
            term: m.current_term,
            leader: m.current_leader,
            last_log_index: m.last_log_index,
            last_applied: m.last_applied.map(|l| l.index),
            snapshot_index: m.snapshot.map(|l| l.index),
            members,
        }
    }

    /// Fails with `ForwardToLeader`/`NoQuorum` unless this member leads.
    async fn ensure_leader(&self) -> Result<(), ProposeError> {
        if self.is_leader() {
            return Ok(());
        }
        let me = self.inner.cfg.node_id;
        match self.wait_leader(self.inner.cfg.propose_timeout()).await {
            Some((id, _)) if id == me => Ok(()),
            Some((id, addr)) => Err(ProposeError::ForwardToLeader {
                leader_id: id,
                leader_addr: addr,
            }),
            None => Err(ProposeError::NoQuorum),
        }
    }

    /// Adds a voter: first as a learner, then (once it has caught up, via entries or a chunked
    /// snapshot) as a voter. Must run on the leader. Idempotent for an existing voter.
    pub async fn add_voter(&self, node_id: u64, addr: &str) -> Result<(), ProposeError> {
        self.ensure_leader().await?;
        if node_id == 0 {
            return Err(ProposeError::Rejected(ApiError::invalid_argument(
                "raft ID 0 is not valid",
            )));
        }
        if self.inner.removed.contains(&node_id) {
            return Err(ProposeError::Rejected(ApiError::invalid_argument(format!(
                "raft ID {node_id} was removed from this cluster and cannot be reused"
            ))));
        }
        if let Some(m) = self.members().into_iter().find(|m| m.node_id == node_id) {
            if m.voter && m.addr == addr {
                return Ok(());
            }
            if m.voter {
                return Err(ProposeError::Rejected(ApiError::conflict(format!(
                    "raft member {node_id} already exists with address {}",
                    m.addr
                ))));
            }
        }
        let raft = &self.inner.raft;
        let resp = raft
            .add_learner(node_id, BasicNode::new(addr), false)
            .await
            .map_err(|e| self.write_error(e))?;
        let target = resp.log_id.index;
        let caught_up = raft
            .wait(Some(Duration::from_millis(
                self.inner.cfg.catch_up_timeout_ms,
            )))
            .metrics(
                |m| {
                    m.replication
                        .as_ref()
                        .and_then(|r| r.get(&node_id).copied().flatten())
                        .is_some_and(|l| l.index >= target)
                },
                "new raft member caught up",
            )
            .await;
        if caught_up.is_err() {
            // Do not leave an unreachable learner behind.
            let _ = raft
                .change_membership(ChangeMembers::RemoveNodes(BTreeSet::from([node_id])), false)
                .await;
            return Err(ProposeError::Rejected(ApiError::unavailable(format!(
                "could not replicate to new manager {node_id} at {addr} within {} s; is its address reachable?",
                self.inner.cfg.catch_up_timeout_ms / 1000
            ))));
        }
        raft.change_membership(ChangeMembers::AddVoterIds(BTreeSet::from([node_id])), false)
            .await
            .map_err(|e| self.write_error(e))?;
        Ok(())
    }

    /// Removes a voter (or learner). Must run on the leader. Refused for the last voter and when
    /// the remaining voters would not have a reachable quorum.
    pub async fn remove_voter(&self, node_id: u64) -> Result<(), ProposeError> {
        self.ensure_leader().await?;
        let members = self.members();
        let Some(target) = members.iter().find(|m| m.node_id == node_id) else {
            return Err(ProposeError::Rejected(ApiError::not_found(format!(
                "raft member {node_id} not found"
            ))));
        };
        let raft = &self.inner.raft;
        if !target.voter {
            raft.change_membership(ChangeMembers::RemoveNodes(BTreeSet::from([node_id])), false)
                .await
                .map_err(|e| self.write_error(e))?;
            return Ok(());
        }
        let remaining: Vec<u64> = members
            .iter()
            .filter(|m| m.voter && m.node_id != node_id)
            .map(|m| m.node_id)
            .collect();
        if remaining.is_empty() {
            return Err(ProposeError::Rejected(ApiError::invalid_argument(
                "cannot remove the last manager of the cluster",
            )));
        }
        let me = self.inner.cfg.node_id;
        let window = Duration::from_millis(self.inner.cfg.reachable_window_ms);
        let reachable = remaining
            .iter()
            .filter(|id| **id == me || self.inner.contacts.seen_within(**id, window))
            .count();
        let needed = remaining.len() / 2 + 1;
        if reachable < needed {
            return Err(ProposeError::Rejected(ApiError::unavailable(format!(
                "removing manager {node_id} would leave the cluster without quorum: {reachable} of the {} remaining managers are reachable, {needed} are needed",
                remaining.len()
            ))));
        }
        raft.change_membership(
            ChangeMembers::RemoveVoters(BTreeSet::from([node_id])),
            false,
        )
        .await
        .map_err(|e| self.write_error(e))?;
        Ok(())
    }

    fn write_error(
        &self,
        e: RaftError<NodeId, ClientWriteError<NodeId, BasicNode>>,
    ) -> ProposeError {
        match e {
            RaftError::APIError(ClientWriteError::ForwardToLeader(f)) => self
                .forward_target(f.leader_id, f.leader_node.as_ref())
                .unwrap_or(ProposeError::NoQuorum),
            RaftError::APIError(ClientWriteError::ChangeMembershipError(e)) => {
                ProposeError::Rejected(ApiError::conflict(format!(
                    "membership change refused: {e}"
                )))
            }
            RaftError::Fatal(f) => ProposeError::Stopped(f.to_string()),
        }
    }

    /// Stops the Raft member (its gRPC service answers with errors afterwards) and releases the
    /// database once the last clone of the store is gone.
    pub async fn shutdown(&self) {
        if let Err(e) = self.inner.raft.shutdown().await {
            tracing::warn!("raft shutdown: {e}");
        }
        // openraft's state-machine and replication tasks wind down after the core; wait
        // (bounded) until they dropped the database so a restart can open it again.
        let deadline = Instant::now() + Duration::from_secs(10);
        while !self.inner.db_closed.is_closed() && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        if !self.inner.db_closed.is_closed() {
            tracing::warn!("raft database still in use 10 s after shutdown");
        }
    }
}
