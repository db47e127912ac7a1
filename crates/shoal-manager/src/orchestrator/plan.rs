//! The writes one reconcile pass wants, merged per object so two steps touching the same task
//! produce one update (two updates of one object in a command would conflict).

use std::collections::BTreeMap;

use shoal_store::Change;
use shoal_types::{Network, Object, ObjectKind, Service, Task};

#[derive(Debug, Default)]
pub struct Plan {
    creates: Vec<Object>,
    tasks: BTreeMap<String, (Task, Task)>,
    services: BTreeMap<String, (Service, u64)>,
    networks: BTreeMap<String, (Network, u64)>,
    deletes: BTreeMap<String, u64>,
}

impl Plan {
    pub fn new() -> Self {
        Plan::default()
    }

    pub fn create_task(&mut self, t: Task) {
        self.creates.push(Object::Task(t));
    }

    /// The task as this plan will leave it (the stored one if untouched).
    pub fn task<'t>(&'t self, t: &'t Task) -> &'t Task {
        self.tasks.get(&t.id).map(|(t, _)| t).unwrap_or(t)
    }

    /// Edits a stored task; the update carries the stored version as its guard.
    pub fn update_task(&mut self, t: &Task, f: impl FnOnce(&mut Task)) {
        let entry = self
            .tasks
            .entry(t.id.clone())
            .or_insert_with(|| (t.clone(), t.clone()));
        f(&mut entry.0);
    }

    pub fn update_service(&mut self, s: &Service, f: impl FnOnce(&mut Service)) {
        let entry = self
            .services
            .entry(s.id.clone())
            .or_insert_with(|| (s.clone(), s.meta.version.index));
        f(&mut entry.0);
    }

    pub fn service<'s>(&'s self, s: &'s Service) -> &'s Service {
        self.services.get(&s.id).map(|(s, _)| s).unwrap_or(s)
    }

    /// Edits a stored network (the allocator's subnets, VXLAN id and node addresses).
    pub fn update_network(&mut self, n: &Network, f: impl FnOnce(&mut Network)) {
        let entry = self
            .networks
            .entry(n.id.clone())
            .or_insert_with(|| (n.clone(), n.meta.version.index));
        f(&mut entry.0);
    }

    /// The network as this plan will leave it.
    pub fn network<'n>(&'n self, n: &'n Network) -> &'n Network {
        self.networks.get(&n.id).map(|(n, _)| n).unwrap_or(n)
    }

    /// Takes the created tasks with these IDs out of the plan (to keep them from the scheduler);
    /// give them back with [`Plan::restore_created`].
    pub fn take_created(&mut self, ids: &std::collections::HashSet<String>) -> Vec<Object> {
        let (out, keep) = std::mem::take(&mut self.creates)
            .into_iter()
            .partition(|o| matches!(o, Object::Task(t) if ids.contains(&t.id)));
        self.creates = keep;
        out
    }

    pub fn restore_created(&mut self, objs: Vec<Object>) {
        self.creates.extend(objs);
    }

    pub fn delete_task(&mut self, t: &Task) {
        self.tasks.remove(&t.id);
        self.deletes.insert(t.id.clone(), t.meta.version.index);
    }

    pub fn is_deleted(&self, id: &str) -> bool {
        self.deletes.contains_key(id)
    }

    pub fn created(&self) -> impl Iterator<Item = &Task> {
        self.creates.iter().filter_map(|o| match o {
            Object::Task(t) => Some(t),
            _ => None,
        })
    }

    pub fn created_len(&self) -> usize {
        self.creates.len()
    }

    /// A task created by this plan, by position, to edit before it is written.
    pub fn created_task_mut(&mut self, i: usize) -> Option<&mut Task> {
        match self.creates.get_mut(i) {
            Some(Object::Task(t)) => Some(t),
            _ => None,
        }
    }

    pub fn created_task(&self, i: usize) -> Option<&Task> {
        match self.creates.get(i) {
            Some(Object::Task(t)) => Some(t),
            _ => None,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.creates.is_empty()
            && self.tasks.is_empty()
            && self.services.is_empty()
            && self.networks.is_empty()
            && self.deletes.is_empty()
    }

    /// The changes: networks first (allocations tasks refer to), services (status, VIPs), then
    /// task updates, creates, deletes.
    pub fn into_changes(self) -> Vec<Change> {
        let mut out = Vec::new();
        for (_, (n, v)) in self.networks {
            out.push(Change::Update {
                object: Object::Network(n),
                expected_version: Some(v),
            });
        }
        for (_, (s, v)) in self.services {
            out.push(Change::Update {
                object: Object::Service(s),
                expected_version: Some(v),
            });
        }
        for (_, (t, orig)) in self.tasks {
            // Skip no-op edits: they would only cost a write and a version bump.
            if orig == t {
                continue;
            }
            out.push(Change::Update {
                object: Object::Task(t),
                expected_version: Some(orig.meta.version.index),
            });
        }
        out.extend(self.creates.into_iter().map(Change::Create));
        for (id, v) in self.deletes {
            out.push(Change::Delete {
                kind: ObjectKind::Task,
                id,
                expected_version: Some(v),
            });
        }
        out
    }
}
