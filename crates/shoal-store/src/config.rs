//! Settings of one Raft member and their translation into openraft's `Config`.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};

/// Settings of one manager's Raft member.
#[derive(Debug, Clone)]
pub struct RaftConfig {
    /// Raft ID of this member (unique in the cluster, never reused).
    pub node_id: u64,
    /// `host:port` that other managers dial to reach this member's Raft service.
    pub addr: String,
    /// Directory holding `raft.redb`.
    pub dir: PathBuf,
    pub heartbeat_ms: u64,
    pub election_min_ms: u64,
    pub election_max_ms: u64,
    /// Build a snapshot (and purge the log behind it) every this many entries.
    pub snapshot_every: u64,
    /// Entries kept behind a snapshot so slightly lagging followers need no snapshot.
    pub keep_logs_after_snapshot: u64,
    /// Size of one snapshot chunk sent over gRPC.
    pub snapshot_chunk_bytes: u64,
    /// How long a proposal (or read barrier) may wait for a leader/quorum before `NoQuorum`.
    pub propose_timeout_ms: u64,
    /// How long `add_voter` waits for a new member to catch up before giving up.
    pub catch_up_timeout_ms: u64,
    /// A peer counts as reachable if it answered an RPC within this window.
    pub reachable_window_ms: u64,
    /// On start from existing state, rewrite membership to only this node and lead alone.
    pub force_new_cluster: bool,
    /// Seals log entries and snapshots on disk (the manager's data encryption key).
    pub at_rest_key: Option<[u8; 32]>,
}

impl RaftConfig {
    /// Defaults: heartbeat 100 ms, election timeout 400-800 ms. In openraft 0.9 a follower of
    /// a live leader only campaigns after leader lease (= election_max) + a random election
    /// timeout, checked on a tick of 1.5 heartbeats: 1.2-1.6 s + 0.15 s, then one vote round
    /// trip, so a new leader is writable under 2 s after the old one dies, and under 3 s even
    /// after one split vote.
    pub fn new(node_id: u64, addr: impl Into<String>, dir: impl Into<PathBuf>) -> Self {
        RaftConfig {
            node_id,
            addr: addr.into(),
            dir: dir.into(),
            heartbeat_ms: 100,
            election_min_ms: 400,
            election_max_ms: 800,
            snapshot_every: 10_000,
            keep_logs_after_snapshot: 500,
            snapshot_chunk_bytes: 1024 * 1024,
            propose_timeout_ms: 8_000,
            catch_up_timeout_ms: 60_000,
            reachable_window_ms: 3_000,
            force_new_cluster: false,
            at_rest_key: None,
        }
    }

    pub fn db_path(&self) -> PathBuf {
        self.dir.join("raft.redb")
    }

    pub(crate) fn propose_timeout(&self) -> Duration {
        Duration::from_millis(self.propose_timeout_ms)
    }

    pub(crate) fn validate(&self) -> anyhow::Result<()> {
        if self.node_id == 0 {
            bail!("raft node_id must not be 0");
        }
        if self.addr.is_empty() {
            bail!("raft advertise address is empty");
        }
        if self.heartbeat_ms == 0 || self.election_min_ms <= self.heartbeat_ms {
            bail!(
                "raft election timeout ({} ms) must be longer than the heartbeat ({} ms)",
                self.election_min_ms,
                self.heartbeat_ms
            );
        }
        if self.election_max_ms <= self.election_min_ms {
            bail!("raft election_max_ms must be greater than election_min_ms");
        }
        if self.snapshot_every == 0 {
            bail!("raft snapshot_every must be at least 1");
        }
        if self.snapshot_chunk_bytes < 1024 {
            bail!("raft snapshot_chunk_bytes must be at least 1024");
        }
        Ok(())
    }

    pub(crate) fn openraft_config(&self) -> anyhow::Result<openraft::Config> {
        self.validate()?;
        // Never keep more than the snapshot interval behind a snapshot, or purging never happens.
        let keep = self.keep_logs_after_snapshot.min(self.snapshot_every / 2);
        let cfg = openraft::Config {
            cluster_name: "shoal".into(),
            heartbeat_interval: self.heartbeat_ms,
            election_timeout_min: self.election_min_ms,
            election_timeout_max: self.election_max_ms,
            // One chunk must be sent and installed within this; generous for slow disks.
            install_snapshot_timeout: 10_000,
            max_payload_entries: 256,
            replication_lag_threshold: self.snapshot_every,
            snapshot_policy: openraft::SnapshotPolicy::LogsSinceLast(self.snapshot_every),
            snapshot_max_chunk_size: self.snapshot_chunk_bytes,
            max_in_snapshot_log_to_keep: keep,
            purge_batch_size: 256,
            ..Default::default()
        };
        cfg.validate().context("invalid raft configuration")
    }
}
