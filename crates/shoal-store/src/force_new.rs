//! `--force-new-cluster`: rewrite the local Raft state, offline, so this node alone forms the
//! cluster with every object it holds (swarmkit does the same with its WAL).
//!
//! Every entry in the local log is kept, not only the ones known committed here: a write the
//! old cluster acknowledged may sit in this log before this node learned it was committed, and
//! losing an acknowledged write is worse than keeping one whose outcome the client never saw.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Bound;

use anyhow::bail;
use openraft::{BasicNode, EntryPayload, Membership};

use crate::command::{SnapshotMeta, StoredMembership, Vote};
use crate::config::RaftConfig;
use crate::disk::Disk;
use crate::state_machine::{decode_snapshot, encode_snapshot};
use crate::tables::{Tables, apply_command};

pub(crate) fn rewrite(disk: &Disk, cfg: &RaftConfig) -> anyhow::Result<()> {
    let snap = disk.read_snapshot()?;
    let (mut tables, mut last, mut membership) = match &snap {
        Some((meta, data)) => (
            decode_snapshot(data)?,
            meta.last_log_id,
            meta.last_membership.clone(),
        ),
        None => (Tables::default(), None, StoredMembership::default()),
    };
    let from = match last {
        Some(l) => Bound::Excluded(l.index),
        None => Bound::Unbounded,
    };
    let entries = disk.read_logs((from, Bound::Unbounded))?;
    for e in entries {
        last = Some(e.log_id);
        match e.payload {
            EntryPayload::Normal(cmd) => {
                // A refused command changed nothing; the same holds here.
                if let Ok((t, _, _)) = apply_command(&tables, &cmd, e.log_id.index) {
                    tables = t;
                }
            }
            EntryPayload::Membership(m) => membership = StoredMembership::new(Some(e.log_id), m),
            EntryPayload::Blank => {}
        }
    }
    let Some(last) = last else {
        bail!(
            "force-new-cluster needs existing raft state in {}, found none",
            cfg.dir.display()
        );
    };

    let mut removed: BTreeSet<u64> = disk.read_removed()?.into_iter().collect();
    removed.extend(
        membership
            .membership()
            .nodes()
            .map(|(id, _)| *id)
            .filter(|id| *id != cfg.node_id),
    );
    removed.remove(&cfg.node_id);
    let removed: Vec<u64> = removed.into_iter().collect();

    let only_me = Membership::new(
        vec![BTreeSet::from([cfg.node_id])],
        BTreeMap::from([(cfg.node_id, BasicNode::new(cfg.addr.clone()))]),
    );
    let meta = SnapshotMeta {
        last_log_id: Some(last),
        last_membership: StoredMembership::new(Some(last), only_me),
        snapshot_id: format!("force-new-{}-{}", last.leader_id.term, last.index),
    };
    let old_term = disk.read_vote()?.map_or(0, |v| v.leader_id().term);
    // A committed vote for ourselves in a fresh term: openraft restarts straight into leader.
    let vote = Vote::new_committed(old_term.max(last.leader_id.term) + 1, cfg.node_id);
    let data = encode_snapshot(&tables)?;
    disk.reset_to_snapshot(&meta, &data, &vote, &removed)?;
    tracing::warn!(
        index = last.index,
        removed = ?removed,
        "force-new-cluster: raft membership rewritten to this node only"
    );
    Ok(())
}
