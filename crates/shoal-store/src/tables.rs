//! The in-memory tables of cluster objects, the read view over them, and the (deterministic)
//! application of a `Command`.
//!
//! Tables are persistent maps (structural sharing), so a snapshot (`StoreView`) is a handful of
//! pointer copies and a write copies only the few tree nodes on its path, whatever the table's
//! size: readers never block the apply path and never see a half-applied command. (Copying
//! whole `Arc`ed shards on every write was the store's cost at 100,000 tasks.)

use std::collections::BTreeMap;
use std::sync::Arc;

use imbl::OrdMap;
use serde::{Deserialize, Serialize};
use shoal_types::{ApiError, Object, ObjectKind};

use crate::command::{Applied, Change, Command, task_with_status};

/// One kind's objects by ID, plus the unique-name index for kinds that have one.
/// Keys are shared strings: a write copies the tree nodes on its path, and with each key a
/// `String` every copied node cost an allocation per key (most of a write's cost at 100,000
/// tasks); an `Arc<str>` copy is a reference count.
#[derive(Clone, Default)]
struct Table {
    by_id: OrdMap<Arc<str>, Arc<Object>>,
    by_name: OrdMap<Arc<str>, Arc<str>>,
}

impl Table {
    fn get(&self, id: &str) -> Option<&Arc<Object>> {
        self.by_id.get(id)
    }

    fn id_by_name(&self, name: &str) -> Option<&Arc<str>> {
        self.by_name.get(name)
    }

    fn insert(&mut self, obj: Arc<Object>) {
        let id: Arc<str> = Arc::from(obj.id());
        if let Some(name) = indexed_name(&obj) {
            self.by_name.insert(Arc::from(name), Arc::clone(&id));
        }
        self.by_id.insert(id, obj);
    }

    fn remove(&mut self, id: &str) -> Option<Arc<Object>> {
        let old = self.by_id.remove(id)?;
        if let Some(name) = indexed_name(&old)
            && self.by_name.get(name).map(|n| &**n) == Some(id)
        {
            self.by_name.remove(name);
        }
        Some(old)
    }

    fn len(&self) -> usize {
        self.by_id.len()
    }

    fn iter(&self) -> impl Iterator<Item = &Arc<Object>> {
        self.by_id.values()
    }
}

/// The name an object is indexed under: only kinds with unique names, and never an empty name.
fn indexed_name(obj: &Object) -> Option<&str> {
    if !obj.kind().has_unique_names() {
        return None;
    }
    obj.name().filter(|n| !n.is_empty())
}

/// All tables. Cloning is cheap (shard `Arc`s only).
#[derive(Clone, Default)]
pub(crate) struct Tables {
    kinds: BTreeMap<ObjectKind, Table>,
}

impl Tables {
    fn table(&self, kind: ObjectKind) -> Option<&Table> {
        self.kinds.get(&kind)
    }

    fn table_mut(&mut self, kind: ObjectKind) -> &mut Table {
        self.kinds.entry(kind).or_default()
    }

    pub(crate) fn from_objects(objects: Vec<Object>) -> Result<Tables, ApiError> {
        let mut t = Tables::default();
        for o in objects {
            let kind = o.kind();
            if t.table(kind).and_then(|tb| tb.get(o.id())).is_some() {
                return Err(ApiError::internal(format!(
                    "snapshot holds {kind} {} twice",
                    o.id()
                )));
            }
            t.table_mut(kind).insert(Arc::new(o));
        }
        Ok(t)
    }

    pub(crate) fn objects(&self) -> impl Iterator<Item = &Arc<Object>> {
        self.kinds.values().flat_map(|t| t.iter())
    }
}

/// What happened to an object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum EventKind {
    Created,
    Updated,
    Deleted,
}

/// A change event from the watch stream: the object after the change (for deletes, as it was
/// last) and the log index that made it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub kind: EventKind,
    /// Shared with the table that holds it: an event costs a reference, not a copy.
    pub object: Arc<Object>,
    pub index: u64,
}

/// A consistent, immutable view of the store at one applied log index. Cheap to take and
/// clone; holding it never blocks writers.
#[derive(Clone, Default)]
pub struct StoreView {
    tables: Tables,
    index: u64,
}

impl StoreView {
    pub(crate) fn new(tables: Tables, index: u64) -> Self {
        StoreView { tables, index }
    }

    /// The last applied log index this view reflects.
    pub fn index(&self) -> u64 {
        self.index
    }

    pub fn get(&self, kind: ObjectKind, id: &str) -> Option<&Object> {
        self.tables.table(kind)?.get(id).map(|o| o.as_ref())
    }

    /// The object of this kind with this unique name (services, networks, secrets, configs,
    /// clusters; node hostnames and tasks are not unique, search `list` for those).
    pub fn find_by_name(&self, kind: ObjectKind, name: &str) -> Option<&Object> {
        let t = self.tables.table(kind)?;
        t.id_by_name(name)
            .and_then(|id| t.get(id))
            .map(|o| o.as_ref())
    }

    /// Every object of a kind, in no particular order.
    pub fn list(&self, kind: ObjectKind) -> impl Iterator<Item = &Object> {
        self.tables
            .table(kind)
            .into_iter()
            .flat_map(|t| t.iter())
            .map(|o| o.as_ref())
    }

    pub fn count(&self, kind: ObjectKind) -> usize {
        self.tables.table(kind).map_or(0, Table::len)
    }

    /// Every object of every kind.
    pub fn iter(&self) -> impl Iterator<Item = &Object> {
        self.tables.objects().map(|o| o.as_ref())
    }
}

/// Applies `cmd` as log entry `index` to a copy of `tables`. On success returns the new tables,
/// the result and the events; on refusal returns the error and `tables` stays as it was.
pub(crate) fn apply_command(
    tables: &Tables,
    cmd: &Command,
    index: u64,
) -> Result<(Tables, Applied, Vec<Event>), ApiError> {
    let mut t = tables.clone();
    let mut objects = Vec::with_capacity(cmd.changes.len());
    let mut events = Vec::with_capacity(cmd.changes.len());
    for change in cmd.changes.iter() {
        let Some((obj, kind)) = apply_change(&mut t, change, index)? else {
            continue;
        };
        objects.push(Arc::clone(&obj));
        events.push(Event {
            kind,
            object: obj,
            index,
        });
    }
    Ok((t, Applied { index, objects }, events))
}

fn apply_change(
    t: &mut Tables,
    change: &Change,
    index: u64,
) -> Result<Option<(Arc<Object>, EventKind)>, ApiError> {
    match change {
        Change::Create(obj) => {
            let kind = obj.kind();
            let id = obj.id();
            if id.is_empty() {
                return Err(ApiError::invalid_argument(format!(
                    "{kind} has an empty ID"
                )));
            }
            let table = t.table_mut(kind);
            if table.get(id).is_some() {
                return Err(ApiError::conflict(format!("{kind} {id} already exists")));
            }
            if let Some(name) = indexed_name(obj)
                && table.id_by_name(name).is_some()
            {
                return Err(name_conflict(kind, name));
            }
            let mut obj = obj.clone();
            obj.set_version(index);
            let obj = Arc::new(obj);
            table.insert(Arc::clone(&obj));
            Ok(Some((obj, EventKind::Created)))
        }
        Change::Update {
            object,
            expected_version,
        } => {
            let kind = object.kind();
            let id = object.id();
            let table = t.table_mut(kind);
            let current = table
                .get(id)
                .ok_or_else(|| ApiError::not_found(format!("{kind} {id} not found")))?;
            if let Some(v) = expected_version
                && current.version() != *v
            {
                return Err(ApiError::out_of_sequence());
            }
            let old_name = indexed_name(current).map(str::to_string);
            if let Some(name) = indexed_name(object)
                && old_name.as_deref() != Some(name)
                && table.id_by_name(name).is_some_and(|owner| **owner != *id)
            {
                return Err(name_conflict(kind, name));
            }
            let mut obj = object.clone();
            obj.set_version(index);
            // Remove first so a rename drops the old name from the index.
            table.remove(id);
            let obj = Arc::new(obj);
            table.insert(Arc::clone(&obj));
            Ok(Some((obj, EventKind::Updated)))
        }
        Change::Delete {
            kind,
            id,
            expected_version,
        } => {
            let table = t.table_mut(*kind);
            let current = table
                .get(id)
                .ok_or_else(|| ApiError::not_found(format!("{kind} {id} not found")))?;
            if let Some(v) = expected_version
                && current.version() != *v
            {
                return Err(ApiError::out_of_sequence());
            }
            let old = table
                .remove(id)
                .ok_or_else(|| ApiError::not_found(format!("{kind} {id} not found")))?;
            Ok(Some((old, EventKind::Deleted)))
        }
        Change::TaskStatus {
            task_id,
            node_id,
            status,
        } => {
            let table = t.table_mut(ObjectKind::Task);
            let Some(Object::Task(task)) = table.get(task_id).map(|o| o.as_ref()) else {
                return Ok(None);
            };
            let Some(updated) = task_with_status(task, node_id, status, index) else {
                return Ok(None);
            };
            let obj = Arc::new(Object::Task(updated));
            table.insert(Arc::clone(&obj));
            Ok(Some((obj, EventKind::Updated)))
        }
    }
}

fn name_conflict(kind: ObjectKind, name: &str) -> ApiError {
    ApiError::conflict(format!(
        "name conflicts with an existing object: {kind} {name} already exists"
    ))
}

/// Events that turn `old` into `new` (used when a snapshot replaces the whole state).
pub(crate) fn diff_events(old: &Tables, new: &Tables, index: u64) -> Vec<Event> {
    let mut events = Vec::new();
    for o in new.objects() {
        let before = old.table(o.kind()).and_then(|t| t.get(o.id()));
        let kind = match before {
            None => EventKind::Created,
            Some(b) if b.version() != o.version() || **b != **o => EventKind::Updated,
            Some(_) => continue,
        };
        events.push(Event {
            kind,
            object: Arc::clone(o),
            index,
        });
    }
    for o in old.objects() {
        if new.table(o.kind()).and_then(|t| t.get(o.id())).is_none() {
            events.push(Event {
                kind: EventKind::Deleted,
                object: Arc::clone(o),
                index,
            });
        }
    }
    events
}

#[cfg(test)]
mod tests {
    use super::*;
    use shoal_types::meta::Annotations;
    use shoal_types::{Secret, SecretSpec, Task};

    fn secret(id: &str, name: &str) -> Object {
        Object::Secret(Secret {
            id: id.into(),
            spec: SecretSpec {
                annotations: Annotations::named(name),
                ..SecretSpec::default()
            },
            ..Secret::default()
        })
    }

    #[test]
    fn create_update_delete_and_versions() {
        let t = Tables::default();
        let (t, applied, ev) = apply_command(&t, &Command::create(secret("a", "pw")), 5).unwrap();
        assert_eq!(applied.objects[0].version(), 5);
        assert_eq!(ev[0].kind, EventKind::Created);
        let view = StoreView::new(t.clone(), 5);
        assert_eq!(
            view.find_by_name(ObjectKind::Secret, "pw").unwrap().id(),
            "a"
        );

        // Stale version: refused, nothing changed.
        let err = apply_command(&t, &Command::update(secret("a", "pw2"), Some(4)), 6).err();
        assert_eq!(err.unwrap().kind, shoal_types::ErrorKind::OutOfSequence);

        let (t, _, _) =
            apply_command(&t, &Command::update(secret("a", "pw2"), Some(5)), 7).unwrap();
        let view = StoreView::new(t.clone(), 7);
        assert!(view.find_by_name(ObjectKind::Secret, "pw").is_none());
        assert_eq!(view.get(ObjectKind::Secret, "a").unwrap().version(), 7);

        let (t, _, ev) =
            apply_command(&t, &Command::delete(ObjectKind::Secret, "a", Some(7)), 8).unwrap();
        assert_eq!(ev[0].kind, EventKind::Deleted);
        assert_eq!(StoreView::new(t, 8).count(ObjectKind::Secret), 0);
    }

    #[test]
    fn command_is_atomic() {
        let t = Tables::default();
        let (t, _, _) = apply_command(&t, &Command::create(secret("a", "pw")), 1).unwrap();
        // Second change collides on the name, so the first must not stick either.
        let cmd = Command::new(vec![
            Change::Create(secret("b", "other")),
            Change::Create(secret("c", "pw")),
        ]);
        let err = apply_command(&t, &cmd, 2).err().unwrap();
        assert_eq!(err.kind, shoal_types::ErrorKind::Conflict);
        let view = StoreView::new(t, 2);
        assert!(view.get(ObjectKind::Secret, "b").is_none());
        assert_eq!(view.count(ObjectKind::Secret), 1);
    }

    #[test]
    fn tasks_have_no_name_index_and_views_are_isolated() {
        let mut t = Tables::default();
        for i in 0..100 {
            let task = Object::Task(Task {
                id: format!("t{i}"),
                ..Task::default()
            });
            t = apply_command(&t, &Command::create(task), i + 1).unwrap().0;
        }
        let before = StoreView::new(t.clone(), 100);
        let (t2, _, _) =
            apply_command(&t, &Command::delete(ObjectKind::Task, "t3", None), 101).unwrap();
        assert_eq!(before.count(ObjectKind::Task), 100);
        assert!(before.get(ObjectKind::Task, "t3").is_some());
        let after = StoreView::new(t2.clone(), 101);
        assert_eq!(after.list(ObjectKind::Task).count(), 99);
        let ev = diff_events(&t, &t2, 101);
        assert_eq!(ev.len(), 1);
        assert_eq!(ev[0].kind, EventKind::Deleted);
        let missing = apply_command(&t2, &Command::delete(ObjectKind::Task, "t3", None), 102);
        assert_eq!(
            missing.err().unwrap().kind,
            shoal_types::ErrorKind::NotFound
        );
    }

    #[test]
    fn task_status_applies_only_forward_and_on_the_tasks_node() {
        use shoal_types::{TaskState, TaskStatus};
        let task = |id: &str| {
            Object::Task(Task {
                id: id.into(),
                node_id: "n1".into(),
                status: TaskStatus::new(TaskState::Assigned, "assigned", chrono::Utc::now()),
                ..Task::default()
            })
        };
        let t = Tables::default();
        let create = Command::new(vec![Change::Create(task("a")), Change::Create(task("b"))]);
        let (t, _, _) = apply_command(&t, &create, 1).unwrap();
        let report = |id: &str, node: &str, state| Change::TaskStatus {
            task_id: id.into(),
            node_id: node.into(),
            status: TaskStatus::new(state, "", chrono::Utc::now()),
        };
        let cmd = Command::new(vec![
            report("a", "n1", TaskState::Running),
            // From a node the task is not on: ignored, the rest still applies.
            report("b", "n2", TaskState::Running),
            // A task that is gone: ignored.
            report("zz", "n1", TaskState::Running),
        ]);
        let (t, applied, ev) = apply_command(&t, &cmd, 2).unwrap();
        assert_eq!(applied.objects.len(), 1);
        assert_eq!(ev.len(), 1);
        let view = StoreView::new(t.clone(), 2);
        let state = |v: &StoreView, id: &str| match v.get(ObjectKind::Task, id) {
            Some(Object::Task(t)) => (t.status.state, t.meta.version.index),
            other => panic!("task {id}: {other:?}"),
        };
        assert_eq!(state(&view, "a"), (TaskState::Running, 2));
        assert_eq!(state(&view, "b"), (TaskState::Assigned, 1));

        // Never backwards.
        let back = Command::new(vec![report("a", "n1", TaskState::Preparing)]);
        let (t, applied, ev) = apply_command(&t, &back, 3).unwrap();
        assert!(applied.objects.is_empty() && ev.is_empty());
        assert_eq!(state(&StoreView::new(t, 3), "a"), (TaskState::Running, 2));
    }
}
