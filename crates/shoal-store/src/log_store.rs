//! openraft's `RaftLogStorage` over the redb file: log entries, vote and committed index.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::ops::{Bound, RangeBounds};
use std::sync::{Arc, Mutex, MutexGuard};

use openraft::storage::{LogFlushed, RaftLogStorage};
use openraft::{AnyError, EntryPayload, LogState, OptionalSend, RaftLogReader, StorageIOError};

use crate::command::{Entry, LogId, StorageError, TypeConfig, Vote};
use crate::disk::Disk;

#[derive(Clone)]
pub(crate) struct LogStore {
    disk: Disk,
    flusher: std::sync::mpsc::Sender<LogFlushed<TypeConfig>>,
    recent: Arc<Mutex<RecentEntries>>,
}

impl LogStore {
    pub(crate) fn new(disk: Disk) -> anyhow::Result<Self> {
        let (flusher, rx) = std::sync::mpsc::channel();
        let d = disk.clone();
        std::thread::Builder::new()
            .name("raft-log-flush".into())
            .spawn(move || flush_loop(d, rx))?;
        Ok(LogStore {
            disk,
            flusher,
            recent: Arc::default(),
        })
    }

    fn recent(&self) -> MutexGuard<'_, RecentEntries> {
        // Every update leaves the cache consistent, so a poisoned lock is still usable.
        self.recent.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Changes kept in memory: the orchestrator's batches in flight (8 of 500) plus a full batch
/// of status reports (8,192), with room to spare.
const RECENT_CHANGES: usize = 16_384;

/// The last entries appended, as they were handed in. openraft reads each entry back right
/// after appending it (to apply it, and to send it to followers); decoding it from disk again
/// was a tenth of the leader's CPU under load.
#[derive(Default)]
struct RecentEntries {
    entries: BTreeMap<u64, Entry>,
    changes: usize,
}

fn weight(e: &Entry) -> usize {
    match &e.payload {
        EntryPayload::Normal(cmd) => cmd.changes.len().max(1),
        _ => 1,
    }
}

impl RecentEntries {
    fn push(&mut self, entries: Vec<Entry>) {
        for e in entries {
            self.changes += weight(&e);
            if let Some(old) = self.entries.insert(e.log_id.index, e) {
                self.changes -= weight(&old);
            }
        }
        while self.changes > RECENT_CHANGES {
            let Some((_, old)) = self.entries.pop_first() else {
                break;
            };
            self.changes -= weight(&old);
        }
    }

    /// The entries of `range` if all of them are here.
    fn get(&self, range: (Bound<u64>, Bound<u64>)) -> Option<Vec<Entry>> {
        let first = match range.0 {
            Bound::Included(i) => i,
            Bound::Excluded(i) => i.checked_add(1)?,
            Bound::Unbounded => return None,
        };
        let end = match range.1 {
            Bound::Included(i) => i.checked_add(1)?,
            Bound::Excluded(i) => i,
            Bound::Unbounded => return None,
        };
        if end <= first {
            return Some(Vec::new());
        }
        let found: Vec<Entry> = self
            .entries
            .range(first..end)
            .map(|(_, e)| e.clone())
            .collect();
        (found.len() as u64 == end - first).then_some(found)
    }

    /// Forgets entries at and after `from` (the log was truncated there).
    fn drop_from(&mut self, from: u64) {
        for (_, e) in self.entries.split_off(&from) {
            self.changes -= weight(&e);
        }
    }

    /// Forgets entries up to and including `upto` (the log was purged).
    fn drop_upto(&mut self, upto: u64) {
        let kept = match upto.checked_add(1) {
            Some(next) => self.entries.split_off(&next),
            None => BTreeMap::new(),
        };
        self.entries = kept;
        self.changes = self.entries.values().map(weight).sum();
    }
}

/// Group commit: appends are written without fsync and readable at once (so the leader
/// replicates while its own write is still in flight); this thread makes all pending appends
/// durable with one fsync and only then reports them flushed, which is what openraft counts.
/// It ends when the last `LogStore` clone is gone.
fn flush_loop(disk: Disk, rx: std::sync::mpsc::Receiver<LogFlushed<TypeConfig>>) {
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        while let Ok(more) = rx.try_recv() {
            batch.push(more);
        }
        let res = disk.flush().map_err(|e| e.to_string());
        for cb in batch {
            cb.log_io_completed(res.clone().map_err(std::io::Error::other));
        }
    }
}

fn any(e: impl std::fmt::Display) -> AnyError {
    AnyError::error(e.to_string())
}

/// Runs a blocking disk write off the async workers.
async fn blocking<T, F>(f: F) -> anyhow::Result<T>
where
    F: FnOnce() -> anyhow::Result<T> + Send + 'static,
    T: Send + 'static,
{
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| anyhow::anyhow!("disk task failed: {e}"))?
}

fn owned_range<RB: RangeBounds<u64>>(r: &RB) -> (Bound<u64>, Bound<u64>) {
    (r.start_bound().cloned(), r.end_bound().cloned())
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, StorageError> {
        let range = owned_range(&range);
        if let Some(entries) = self.recent().get(range) {
            return Ok(entries);
        }
        self.disk
            .read_logs(range)
            .map_err(|e| StorageIOError::read_logs(any(e)).into())
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError> {
        let purged = self
            .disk
            .read_purged()
            .map_err(|e| StorageIOError::read_logs(any(e)))?;
        let last = self
            .disk
            .last_log_id()
            .map_err(|e| StorageIOError::read_logs(any(e)))?;
        Ok(LogState {
            last_purged_log_id: purged,
            last_log_id: last.or(purged),
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote) -> Result<(), StorageError> {
        let disk = self.disk.clone();
        let vote = *vote;
        blocking(move || disk.save_vote(&vote))
            .await
            .map_err(|e| StorageIOError::write_vote(any(e)).into())
    }

    async fn read_vote(&mut self) -> Result<Option<Vote>, StorageError> {
        self.disk
            .read_vote()
            .map_err(|e| StorageIOError::read_vote(any(e)).into())
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), StorageError> {
        let disk = self.disk.clone();
        blocking(move || disk.save_committed(&committed))
            .await
            .map_err(|e| StorageIOError::write(any(e)).into())
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, StorageError> {
        self.disk
            .read_committed()
            .map_err(|e| StorageIOError::read(any(e)).into())
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: LogFlushed<TypeConfig>,
    ) -> Result<(), StorageError>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let entries: Vec<Entry> = entries.into_iter().collect();
        // Without fsync this is a short in-memory/page-cache write, fine on an async worker.
        if let Err(e) = self.disk.append_unflushed(&entries) {
            callback.log_io_completed(Err(std::io::Error::other(e.to_string())));
            return Err(StorageIOError::write_logs(any(e)).into());
        }
        self.recent().push(entries);
        if let Err(std::sync::mpsc::SendError(cb)) = self.flusher.send(callback) {
            cb.log_io_completed(Err(std::io::Error::other("raft log flusher stopped")));
            return Err(
                StorageIOError::write_logs(AnyError::error("raft log flusher stopped")).into(),
            );
        }
        Ok(())
    }

    async fn truncate(&mut self, log_id: LogId) -> Result<(), StorageError> {
        self.recent().drop_from(log_id.index);
        let disk = self.disk.clone();
        blocking(move || disk.truncate(log_id.index))
            .await
            .map_err(|e| StorageIOError::write_logs(any(e)).into())
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), StorageError> {
        self.recent().drop_upto(log_id.index);
        let disk = self.disk.clone();
        blocking(move || disk.purge(&log_id))
            .await
            .map_err(|e| StorageIOError::write_logs(any(e)).into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::command::Command;
    use openraft::{CommittedLeaderId, Entry as RaftEntry};

    fn entry(index: u64, changes: usize) -> Entry {
        let change = crate::Change::Delete {
            kind: shoal_types::ObjectKind::Task,
            id: "t".into(),
            expected_version: None,
        };
        RaftEntry {
            log_id: LogId::new(CommittedLeaderId::new(1, 1), index),
            payload: EntryPayload::Normal(Command::new(vec![change; changes])),
        }
    }

    fn indexes(found: Option<Vec<Entry>>) -> Option<Vec<u64>> {
        found.map(|v| v.iter().map(|e| e.log_id.index).collect())
    }

    #[test]
    fn recent_entries_serve_only_whole_ranges_and_stay_bounded() {
        let mut r = RecentEntries::default();
        r.push((1..=4).map(|i| entry(i, 10)).collect());
        let range = |a, b| (Bound::Included(a), Bound::Excluded(b));
        assert_eq!(indexes(r.get(range(2, 5))), Some(vec![2, 3, 4]));
        assert_eq!(r.get(range(3, 6)).map(|v| v.len()), None, "5 is missing");
        assert_eq!(
            r.get((Bound::Included(1), Bound::Unbounded))
                .map(|v| v.len()),
            None
        );

        r.drop_from(3);
        assert_eq!(indexes(r.get(range(1, 3))), Some(vec![1, 2]));
        assert_eq!(r.get(range(1, 4)).map(|v| v.len()), None);
        r.drop_upto(1);
        assert_eq!(r.changes, 10);

        // Bounded by the number of changes held: the oldest go first.
        r.push((3..=40).map(|i| entry(i, 500)).collect());
        assert!(r.changes <= RECENT_CHANGES);
        assert_eq!(r.entries.keys().next_back(), Some(&40));
        assert_eq!(r.get(range(2, 4)).map(|v| v.len()), None, "evicted");
    }
}
