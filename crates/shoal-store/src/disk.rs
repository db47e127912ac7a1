//! The one redb file (`<dir>/raft.redb`) holding the Raft log, vote, committed index and the
//! current snapshot. redb (pure Rust, ACID, maintained) was chosen over sled, which has had no
//! release since 2021 and pulls in crates with RustSec "unmaintained" advisories.
//!
//! All functions here are blocking; async callers run writes on the blocking pool.

use crate::at_rest::{self, AtRestKey};
use std::ops::RangeBounds;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::Context;
use redb::{Database, Durability, ReadableDatabase, ReadableTable, TableDefinition};

use crate::command::{Entry, LogId, SnapshotMeta, Vote};

/// Log entries by index (JSON of `openraft::Entry`).
const LOGS: TableDefinition<u64, &[u8]> = TableDefinition::new("logs");
/// Small JSON values: vote, committed, last_purged, removed peers.
const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
/// The current snapshot: "meta" (JSON SnapshotMeta) and "data" (the serialized tables).
const SNAPSHOT: TableDefinition<&str, &[u8]> = TableDefinition::new("snapshot");

const K_VOTE: &str = "vote";
const K_COMMITTED: &str = "committed";
const K_PURGED: &str = "last_purged";
const K_REMOVED: &str = "removed_peers";
const K_FLUSH: &str = "flush";

/// Shared handle on the database file.
#[derive(Clone)]
pub(crate) struct Disk {
    cell: Arc<DbCell>,
    key: Option<Arc<AtRestKey>>,
}

/// Owns the database and says when it is closed (the file lock released), which is only after
/// `Database`'s own drop has finished, not merely when the last `Arc` went away.
struct DbCell {
    db: Option<Database>,
    closed: Arc<AtomicBool>,
}

impl Drop for DbCell {
    fn drop(&mut self) {
        drop(self.db.take());
        self.closed.store(true, Ordering::SeqCst);
    }
}

/// Tells whether the database file has been closed.
#[derive(Clone)]
pub(crate) struct ClosedFlag(Arc<AtomicBool>);

impl ClosedFlag {
    pub(crate) fn is_closed(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

pub(crate) type DiskResult<T> = anyhow::Result<T>;

impl Disk {
    pub(crate) fn open(path: &Path, key: Option<&[u8; 32]>) -> DiskResult<Disk> {
        let key = key.map(AtRestKey::new).transpose()?.map(Arc::new);
        let db = Database::create(path)
            .with_context(|| format!("opening raft database {}", path.display()))?;
        // Create the tables so readers never meet a missing table.
        let tx = db.begin_write()?;
        tx.open_table(LOGS)?;
        tx.open_table(META)?;
        tx.open_table(SNAPSHOT)?;
        tx.commit()?;
        Ok(Disk {
            cell: Arc::new(DbCell {
                db: Some(db),
                closed: Arc::new(AtomicBool::new(false)),
            }),
            key,
        })
    }

    /// Lets `Store::shutdown` wait until every user of the file (raft core, state machine and
    /// replication tasks) has let go, so the file can be reopened.
    pub(crate) fn closed_flag(&self) -> ClosedFlag {
        ClosedFlag(self.cell.closed.clone())
    }

    fn key(&self) -> Option<&AtRestKey> {
        self.key.as_deref()
    }

    fn db(&self) -> DiskResult<&Database> {
        self.cell
            .db
            .as_ref()
            .ok_or_else(|| anyhow::anyhow!("raft database is closed"))
    }

    fn get_meta<T: serde::de::DeserializeOwned>(&self, key: &str) -> DiskResult<Option<T>> {
        let tx = self.db()?.begin_read()?;
        let t = tx.open_table(META)?;
        match t.get(key)? {
            None => Ok(None),
            Some(v) => Ok(Some(
                serde_json::from_slice(v.value()).with_context(|| format!("decoding {key}"))?,
            )),
        }
    }

    fn put_meta<T: serde::Serialize>(&self, key: &str, value: &T, durable: bool) -> DiskResult<()> {
        let bytes = serde_json::to_vec(value)?;
        let mut tx = self.db()?.begin_write()?;
        if !durable {
            // Flushed by the next durable commit (every append is one).
            tx.set_durability(Durability::None)?;
        }
        {
            let mut t = tx.open_table(META)?;
            t.insert(key, bytes.as_slice())?;
        }
        tx.commit()?;
        Ok(())
    }

    pub(crate) fn read_vote(&self) -> DiskResult<Option<Vote>> {
        self.get_meta(K_VOTE)
    }

    pub(crate) fn save_vote(&self, vote: &Vote) -> DiskResult<()> {
        self.put_meta(K_VOTE, vote, true)
    }

    pub(crate) fn read_committed(&self) -> DiskResult<Option<LogId>> {
        Ok(self.get_meta::<Option<LogId>>(K_COMMITTED)?.flatten())
    }

    /// The committed pointer is an optimisation (less replay after restart), so it need not be
    /// flushed on its own.
    pub(crate) fn save_committed(&self, committed: &Option<LogId>) -> DiskResult<()> {
        self.put_meta(K_COMMITTED, committed, false)
    }

    pub(crate) fn read_purged(&self) -> DiskResult<Option<LogId>> {
        Ok(self.get_meta::<Option<LogId>>(K_PURGED)?.flatten())
    }

    pub(crate) fn read_removed(&self) -> DiskResult<Vec<u64>> {
        Ok(self.get_meta(K_REMOVED)?.unwrap_or_default())
    }

    pub(crate) fn last_log_id(&self) -> DiskResult<Option<LogId>> {
        let tx = self.db()?.begin_read()?;
        let t = tx.open_table(LOGS)?;
        match t.last()? {
            None => Ok(None),
            Some((_, v)) => {
                let plain = at_rest::decode(self.key(), v.value())?;
                let e: Entry = serde_json::from_slice(&plain).context("decoding log entry")?;
                Ok(Some(e.log_id))
            }
        }
    }

    pub(crate) fn read_logs<R: RangeBounds<u64>>(&self, range: R) -> DiskResult<Vec<Entry>> {
        let tx = self.db()?.begin_read()?;
        let t = tx.open_table(LOGS)?;
        let mut out = Vec::new();
        for item in t.range(range)? {
            let (k, v) = item?;
            let plain = at_rest::decode(self.key(), v.value())
                .with_context(|| format!("opening log entry {}", k.value()))?;
            let e: Entry = serde_json::from_slice(&plain)
                .with_context(|| format!("decoding log entry {}", k.value()))?;
            out.push(e);
        }
        Ok(out)
    }

    /// Writes entries without waiting for the disk: readable at once, durable after the next
    /// `flush` (or any other durable commit).
    pub(crate) fn append_unflushed(&self, entries: &[Entry]) -> DiskResult<()> {
        let mut tx = self.db()?.begin_write()?;
        tx.set_durability(Durability::None)?;
        {
            let mut t = tx.open_table(LOGS)?;
            for e in entries {
                let json = serde_json::to_vec(e)?;
                let bytes = at_rest::encode(self.key(), &json)?;
                t.insert(e.log_id.index, &*bytes)?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// One durable commit, which makes every earlier unflushed commit durable too.
    pub(crate) fn flush(&self) -> DiskResult<()> {
        let tx = self.db()?.begin_write()?;
        {
            // Write something so the commit is never skipped as empty.
            let mut t = tx.open_table(META)?;
            t.insert(K_FLUSH, b"1".as_slice())?;
        }
        tx.commit()?;
        Ok(())
    }

    /// Deletes entries with index >= `from`.
    pub(crate) fn truncate(&self, from: u64) -> DiskResult<()> {
        let tx = self.db()?.begin_write()?;
        {
            let mut t = tx.open_table(LOGS)?;
            t.retain_in(from.., |_, _| false)?;
        }
        tx.commit()?;
        Ok(())
    }

    /// Deletes entries up to and including `upto` and records it as the last purged id.
    pub(crate) fn purge(&self, upto: &LogId) -> DiskResult<()> {
        let bytes = serde_json::to_vec(&Some(upto))?;
        let tx = self.db()?.begin_write()?;
        {
            let mut m = tx.open_table(META)?;
            m.insert(K_PURGED, bytes.as_slice())?;
            let mut t = tx.open_table(LOGS)?;
            t.retain_in(..=upto.index, |_, _| false)?;
        }
        tx.commit()?;
        Ok(())
    }

    pub(crate) fn read_snapshot(&self) -> DiskResult<Option<(SnapshotMeta, Vec<u8>)>> {
        let tx = self.db()?.begin_read()?;
        let t = tx.open_table(SNAPSHOT)?;
        let (Some(meta), Some(data)) = (t.get("meta")?, t.get("data")?) else {
            return Ok(None);
        };
        let meta: SnapshotMeta =
            serde_json::from_slice(meta.value()).context("decoding snapshot meta")?;
        let data = at_rest::decode(self.key(), data.value()).context("opening the snapshot")?;
        Ok(Some((meta, data.into_owned())))
    }

    pub(crate) fn save_snapshot(&self, meta: &SnapshotMeta, data: &[u8]) -> DiskResult<()> {
        let m = serde_json::to_vec(meta)?;
        let sealed = at_rest::encode(self.key(), data)?;
        let tx = self.db()?.begin_write()?;
        {
            let mut t = tx.open_table(SNAPSHOT)?;
            t.insert("meta", m.as_slice())?;
            t.insert("data", &*sealed)?;
        }
        tx.commit()?;
        Ok(())
    }

    /// Force-new-cluster rewrite, in one transaction: the new snapshot replaces the log (all
    /// entries dropped, purged up to the snapshot), and the vote and committed index follow it.
    pub(crate) fn reset_to_snapshot(
        &self,
        meta: &SnapshotMeta,
        data: &[u8],
        vote: &Vote,
        removed: &[u64],
    ) -> DiskResult<()> {
        let last = meta.last_log_id;
        let sealed = at_rest::encode(self.key(), data)?;
        let tx = self.db()?.begin_write()?;
        {
            let mut s = tx.open_table(SNAPSHOT)?;
            s.insert("meta", serde_json::to_vec(meta)?.as_slice())?;
            s.insert("data", &*sealed)?;
            let mut l = tx.open_table(LOGS)?;
            l.retain(|_, _| false)?;
            let mut m = tx.open_table(META)?;
            m.insert(K_PURGED, serde_json::to_vec(&last)?.as_slice())?;
            m.insert(K_COMMITTED, serde_json::to_vec(&last)?.as_slice())?;
            m.insert(K_VOTE, serde_json::to_vec(vote)?.as_slice())?;
            m.insert(K_REMOVED, serde_json::to_vec(&removed)?.as_slice())?;
        }
        tx.commit()?;
        Ok(())
    }
}
