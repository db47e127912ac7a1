//! openraft's `RaftStateMachine`: applies committed commands to the in-memory tables, publishes
//! the new view plus change events, and builds/installs snapshots (persisted in the redb file).
//!
//! The tables themselves are not persisted on every apply: after a restart they are rebuilt from
//! the last snapshot and openraft re-applies the committed log entries after it.

use std::io::Cursor;
use std::sync::{Arc, Mutex, MutexGuard};

use openraft::storage::RaftStateMachine;
use openraft::{
    AnyError, EntryPayload, OptionalSend, RaftSnapshotBuilder, Snapshot, StorageIOError,
};
use serde::{Deserialize, Serialize};
use shoal_types::Object;
use tokio::sync::{broadcast, mpsc};

use crate::command::{
    Applied, ApplyResult, Entry, LogId, SnapshotMeta, StorageError, StoredMembership, TypeConfig,
};
use crate::disk::Disk;
use crate::tables::{Event, StoreView, Tables, apply_command, diff_events};

/// Capacity of the watch channel (each slot holds a whole object, so it is kept small: 16 Ki
/// slots cost ~28 MiB of idle RSS); a receiver that falls further behind gets `Lagged` and should
/// re-read the view.
const WATCH_CAPACITY: usize = 4096;

/// The published view and the event feed, shared by the state machine and `Store`.
pub(crate) struct Shared {
    view: Mutex<StoreView>,
    events: broadcast::Sender<Event>,
    /// Receivers that must see every event (they never lag, so they never rescan the view);
    /// each is fed under the view lock, like the broadcast.
    complete_feeds: Mutex<Vec<mpsc::UnboundedSender<Event>>>,
}

impl Shared {
    pub(crate) fn new() -> Arc<Self> {
        let (events, _) = broadcast::channel(WATCH_CAPACITY);
        Arc::new(Shared {
            view: Mutex::new(StoreView::default()),
            events,
            complete_feeds: Mutex::default(),
        })
    }

    fn lock(&self) -> MutexGuard<'_, StoreView> {
        // A panic while holding this lock cannot leave the view half-written (it is replaced
        // whole), so a poisoned lock is still usable.
        self.view.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn read(&self) -> StoreView {
        self.lock().clone()
    }

    pub(crate) fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.events.subscribe()
    }

    /// A view and a receiver that starts exactly after it (no gap, no duplicate).
    pub(crate) fn view_and_watch(&self) -> (StoreView, broadcast::Receiver<Event>) {
        let g = self.lock();
        (g.clone(), self.events.subscribe())
    }

    /// A view and an unbounded receiver of every event after it. For consumers whose work per
    /// event is small and that must not lose any: the feed grows while they are behind.
    pub(crate) fn view_and_complete_feed(&self) -> (StoreView, mpsc::UnboundedReceiver<Event>) {
        let g = self.lock();
        let (tx, rx) = mpsc::unbounded_channel();
        self.feeds().push(tx);
        (g.clone(), rx)
    }

    fn feeds(&self) -> MutexGuard<'_, Vec<mpsc::UnboundedSender<Event>>> {
        self.complete_feeds
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    fn publish(&self, view: StoreView, events: Vec<Event>) {
        let mut g = self.lock();
        *g = view;
        let mut feeds = self.feeds();
        for e in events {
            feeds.retain(|f| f.send(e.clone()).is_ok());
            // No receivers is fine.
            let _ = self.events.send(e);
        }
    }
}

#[derive(Serialize)]
struct SnapshotBodyRef<'a> {
    objects: Vec<&'a Object>,
}

#[derive(Deserialize)]
struct SnapshotBody {
    objects: Vec<Object>,
}

pub(crate) fn encode_snapshot(tables: &Tables) -> anyhow::Result<Vec<u8>> {
    let body = SnapshotBodyRef {
        objects: tables.objects().map(|o| o.as_ref()).collect(),
    };
    Ok(serde_json::to_vec(&body)?)
}

pub(crate) fn decode_snapshot(data: &[u8]) -> anyhow::Result<Tables> {
    let body: SnapshotBody =
        serde_json::from_slice(data).map_err(|e| anyhow::anyhow!("decoding snapshot data: {e}"))?;
    Tables::from_objects(body.objects).map_err(|e| anyhow::anyhow!("{e}"))
}

fn any(e: impl std::fmt::Display) -> AnyError {
    AnyError::error(e.to_string())
}

pub(crate) struct StateMachine {
    tables: Tables,
    last_applied: Option<LogId>,
    membership: StoredMembership,
    disk: Disk,
    shared: Arc<Shared>,
}

impl StateMachine {
    /// Restores from the persisted snapshot (if any) and publishes it as the initial view.
    pub(crate) fn load(disk: Disk, shared: Arc<Shared>) -> anyhow::Result<Self> {
        let (tables, last_applied, membership) = match disk.read_snapshot()? {
            Some((meta, data)) => (
                decode_snapshot(&data)?,
                meta.last_log_id,
                meta.last_membership,
            ),
            None => (Tables::default(), None, StoredMembership::default()),
        };
        let index = last_applied.map_or(0, |l| l.index);
        shared.publish(StoreView::new(tables.clone(), index), Vec::new());
        Ok(StateMachine {
            tables,
            last_applied,
            membership,
            disk,
            shared,
        })
    }
}

pub(crate) struct SnapshotBuilder {
    tables: Tables,
    last_applied: Option<LogId>,
    membership: StoredMembership,
    disk: Disk,
}

impl RaftSnapshotBuilder<TypeConfig> for SnapshotBuilder {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, StorageError> {
        let tables = self.tables.clone();
        let disk = self.disk.clone();
        let meta = SnapshotMeta {
            last_log_id: self.last_applied,
            last_membership: self.membership.clone(),
            snapshot_id: match self.last_applied {
                Some(l) => format!("{}-{}-{}", l.leader_id.term, l.index, unique_suffix()),
                None => format!("0-0-{}", unique_suffix()),
            },
        };
        let m = meta.clone();
        let data = tokio::task::spawn_blocking(move || -> anyhow::Result<Vec<u8>> {
            let data = encode_snapshot(&tables)?;
            disk.save_snapshot(&m, &data)?;
            Ok(data)
        })
        .await
        .map_err(|e| StorageIOError::write_snapshot(None, any(e)))?
        .map_err(|e| StorageIOError::write_snapshot(Some(meta.signature()), any(e)))?;
        tracing::info!(snapshot = %meta.snapshot_id, bytes = data.len(), "raft snapshot built");
        Ok(Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(data)),
        })
    }
}

fn unique_suffix() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos())
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotBuilder = SnapshotBuilder;

    async fn applied_state(&mut self) -> Result<(Option<LogId>, StoredMembership), StorageError> {
        Ok((self.last_applied, self.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<ApplyResult>, StorageError>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut results = Vec::new();
        let mut events = Vec::new();
        let mut changed = false;
        for entry in entries {
            let index = entry.log_id.index;
            self.last_applied = Some(entry.log_id);
            match entry.payload {
                EntryPayload::Blank => results.push(Ok(Applied {
                    index,
                    objects: Vec::new(),
                })),
                EntryPayload::Membership(m) => {
                    self.membership = StoredMembership::new(Some(entry.log_id), m);
                    results.push(Ok(Applied {
                        index,
                        objects: Vec::new(),
                    }));
                }
                EntryPayload::Normal(cmd) => match apply_command(&self.tables, &cmd, index) {
                    Ok((tables, applied, evs)) => {
                        self.tables = tables;
                        events.extend(evs);
                        changed = true;
                        results.push(Ok(applied));
                    }
                    Err(e) => results.push(Err(e)),
                },
            }
        }
        let index = self.last_applied.map_or(0, |l| l.index);
        if changed || !results.is_empty() {
            self.shared
                .publish(StoreView::new(self.tables.clone(), index), events);
        }
        Ok(results)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        SnapshotBuilder {
            tables: self.tables.clone(),
            last_applied: self.last_applied,
            membership: self.membership.clone(),
            disk: self.disk.clone(),
        }
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<Cursor<Vec<u8>>>, StorageError> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError> {
        let data = snapshot.into_inner();
        let disk = self.disk.clone();
        let m = meta.clone();
        let tables = tokio::task::spawn_blocking(move || -> anyhow::Result<Tables> {
            let tables = decode_snapshot(&data)?;
            disk.save_snapshot(&m, &data)?;
            Ok(tables)
        })
        .await
        .map_err(|e| StorageIOError::read_snapshot(None, any(e)))?
        .map_err(|e| StorageIOError::read_snapshot(Some(meta.signature()), any(e)))?;
        let index = meta.last_log_id.map_or(0, |l| l.index);
        let events = diff_events(&self.tables, &tables, index);
        self.tables = tables;
        self.last_applied = meta.last_log_id;
        self.membership = meta.last_membership.clone();
        self.shared
            .publish(StoreView::new(self.tables.clone(), index), events);
        tracing::info!(snapshot = %meta.snapshot_id, index, "raft snapshot installed");
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot<TypeConfig>>, StorageError> {
        let snap = self
            .disk
            .read_snapshot()
            .map_err(|e| StorageIOError::read_snapshot(None, any(e)))?;
        Ok(snap.map(|(meta, data)| Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(data)),
        }))
    }
}
