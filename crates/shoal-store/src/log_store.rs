//! openraft's `RaftLogStorage` over the redb file: log entries, vote and committed index.

use std::fmt::Debug;
use std::ops::{Bound, RangeBounds};

use openraft::storage::{LogFlushed, RaftLogStorage};
use openraft::{AnyError, LogState, OptionalSend, RaftLogReader, StorageIOError};

use crate::command::{Entry, LogId, StorageError, TypeConfig, Vote};
use crate::disk::Disk;

#[derive(Clone)]
pub(crate) struct LogStore {
    disk: Disk,
    flusher: std::sync::mpsc::Sender<LogFlushed<TypeConfig>>,
}

impl LogStore {
    pub(crate) fn new(disk: Disk) -> anyhow::Result<Self> {
        let (flusher, rx) = std::sync::mpsc::channel();
        let d = disk.clone();
        std::thread::Builder::new()
            .name("raft-log-flush".into())
            .spawn(move || flush_loop(d, rx))?;
        Ok(LogStore { disk, flusher })
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
        self.disk
            .read_logs(owned_range(&range))
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
        if let Err(std::sync::mpsc::SendError(cb)) = self.flusher.send(callback) {
            cb.log_io_completed(Err(std::io::Error::other("raft log flusher stopped")));
            return Err(
                StorageIOError::write_logs(AnyError::error("raft log flusher stopped")).into(),
            );
        }
        Ok(())
    }

    async fn truncate(&mut self, log_id: LogId) -> Result<(), StorageError> {
        let disk = self.disk.clone();
        blocking(move || disk.truncate(log_id.index))
            .await
            .map_err(|e| StorageIOError::write_logs(any(e)).into())
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), StorageError> {
        let disk = self.disk.clone();
        blocking(move || disk.purge(&log_id))
            .await
            .map_err(|e| StorageIOError::write_logs(any(e)).into())
    }
}
