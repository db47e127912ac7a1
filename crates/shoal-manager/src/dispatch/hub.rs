//! One reader of the store's change feed for all assignment streams. Each event is routed to the
//! streams of the node(s) it concerns: with every stream subscribed to the feed itself, each
//! event was cloned and inspected once per connected node (1,000 nodes × 100,000 task writes),
//! and a burst of writes made all of them lag and rescan every task.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard, Weak};

use shoal_store::{Event, EventKind};
use shoal_types::{Object, ObjectKind};
use tokio::sync::Notify;

use super::Touched;
use crate::manager::Manager;
use crate::orchestrator::ObjectSource;

/// What one assignment stream has pending: the changes routed to it since it last looked.
#[derive(Default)]
pub(crate) struct Inbox {
    touched: Mutex<Touched>,
    notify: Notify,
}

impl Inbox {
    fn lock(&self) -> MutexGuard<'_, Touched> {
        self.touched.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn push(&self, f: impl FnOnce(&mut Touched)) {
        f(&mut self.lock());
        self.notify.notify_one();
    }

    /// Waits until something was routed here (returns at once if something already was).
    pub(crate) async fn changed(&self) {
        self.notify.notified().await
    }

    pub(crate) fn take(&self) -> Touched {
        std::mem::take(&mut *self.lock())
    }
}

/// Events routed per lock of the routes.
const ROUTE_BATCH: usize = 256;

#[derive(Default)]
struct Routes {
    /// Streams by node (a node may briefly have two while its agent reconnects).
    inboxes: HashMap<String, Vec<Weak<Inbox>>>,
    /// The node each assigned task was last seen on, so a task leaving a node reaches the
    /// stream that sent it.
    task_node: HashMap<String, String>,
    /// The reverse: a node's tasks, so a stream's complete set is not a scan of every task.
    node_tasks: HashMap<String, HashSet<String>>,
}

impl Routes {
    fn deliver(&mut self, node_id: &str, f: impl Fn(&mut Touched)) {
        let Some(list) = self.inboxes.get_mut(node_id) else {
            return;
        };
        list.retain(|w| match w.upgrade() {
            Some(inbox) => {
                inbox.push(&f);
                true
            }
            None => false,
        });
        if list.is_empty() {
            self.inboxes.remove(node_id);
        }
    }

    fn deliver_all(&mut self, f: impl Fn(&mut Touched)) {
        let nodes: Vec<String> = self.inboxes.keys().cloned().collect();
        for n in nodes {
            self.deliver(&n, &f);
        }
    }

    fn forget(&mut self, task_id: &str) -> Option<String> {
        let node = self.task_node.remove(task_id)?;
        if let Some(set) = self.node_tasks.get_mut(&node) {
            set.remove(task_id);
            if set.is_empty() {
                self.node_tasks.remove(&node);
            }
        }
        Some(node)
    }

    /// Records the task on `node_id`; returns the node it was on before if it moved.
    fn place(&mut self, task_id: &str, node_id: &str) -> Option<String> {
        // Most events are status reports of a task that stays where it is.
        if self.task_node.get(task_id).is_some_and(|n| n == node_id) {
            return None;
        }
        let before = self.forget(task_id);
        self.task_node
            .insert(task_id.to_string(), node_id.to_string());
        self.node_tasks
            .entry(node_id.to_string())
            .or_default()
            .insert(task_id.to_string());
        before
    }

    /// Builds the task/node index from a view (at start).
    fn reindex(&mut self, view: &dyn ObjectSource) {
        self.task_node.clear();
        self.node_tasks.clear();
        for o in view.objects(ObjectKind::Task) {
            if let Object::Task(t) = o
                && !t.node_id.is_empty()
            {
                self.place(&t.id, &t.node_id);
            }
        }
    }

    fn route(&mut self, ev: &Event) {
        match ev.object.as_ref() {
            Object::Task(t) => {
                let before = if ev.kind == EventKind::Deleted || t.node_id.is_empty() {
                    self.forget(&t.id)
                } else {
                    self.place(&t.id, &t.node_id)
                };
                let record = |x: &mut Touched| x.record(ev);
                if !t.node_id.is_empty() {
                    self.deliver(&t.node_id, record);
                }
                if let Some(old) = before.filter(|old| *old != t.node_id) {
                    self.deliver(&old, record);
                }
            }
            Object::Secret(_) | Object::Config(_) | Object::Network(_) => {
                self.deliver_all(|x| x.record(ev))
            }
            _ => {}
        }
    }
}

/// Shared by the dispatcher's assignment streams.
#[derive(Clone)]
pub struct DispatchHub {
    routes: Arc<Mutex<Routes>>,
}

impl DispatchHub {
    /// Starts routing the store's events; runs as long as the store does. The feed is the
    /// store's complete one: routing costs a few map operations per event, and on the lossy
    /// broadcast a burst of writes (batches of 500 tasks, 8 in flight) made the hub lag, rebuild
    /// its index from 100,000 tasks and send every stream into a full rescan, again and again.
    pub fn spawn(manager: &Manager) -> DispatchHub {
        let hub = DispatchHub {
            routes: Arc::default(),
        };
        let (view, mut events) = manager.store.view_and_complete_feed();
        hub.lock().reindex(&view);
        let routes = hub.routes.clone();
        tokio::spawn(async move {
            let mut batch = Vec::new();
            while events.recv_many(&mut batch, ROUTE_BATCH).await > 0 {
                let mut r = routes.lock().unwrap_or_else(|p| p.into_inner());
                for ev in batch.drain(..) {
                    r.route(&ev);
                }
            }
        });
        hub
    }

    fn lock(&self) -> MutexGuard<'_, Routes> {
        self.routes.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// An inbox for a new stream of `node_id`. Register before reading the view the stream
    /// starts from, so nothing written after that read is missed.
    pub(crate) fn register(&self, node_id: &str) -> Arc<Inbox> {
        let inbox = Arc::new(Inbox::default());
        self.lock()
            .inboxes
            .entry(node_id.to_string())
            .or_default()
            .push(Arc::downgrade(&inbox));
        inbox
    }

    /// The IDs of the tasks last seen on `node_id` (a superset once the caller filters them
    /// against a view at least as new: the index may trail the view).
    pub(crate) fn tasks_on(&self, node_id: &str) -> Vec<String> {
        self.lock()
            .node_tasks
            .get(node_id)
            .map(|s| s.iter().cloned().collect())
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shoal_types::{Secret, Task};

    fn event(kind: EventKind, object: Object) -> Event {
        Event {
            kind,
            object: Arc::new(object),
            index: 1,
        }
    }

    fn task(id: &str, node: &str) -> Object {
        Object::Task(Task {
            id: id.into(),
            node_id: node.into(),
            ..Task::default()
        })
    }

    fn register(r: &mut Routes, node: &str) -> Arc<Inbox> {
        let inbox = Arc::new(Inbox::default());
        r.inboxes
            .entry(node.into())
            .or_default()
            .push(Arc::downgrade(&inbox));
        inbox
    }

    #[test]
    fn events_reach_only_the_nodes_they_concern() {
        let mut r = Routes::default();
        let a = register(&mut r, "a");
        let b = register(&mut r, "b");
        r.route(&event(EventKind::Created, task("t1", "")));
        assert!(a.take().tasks.is_empty() && b.take().tasks.is_empty());

        r.route(&event(EventKind::Updated, task("t1", "a")));
        assert_eq!(a.take().tasks.keys().collect::<Vec<_>>(), ["t1"]);
        assert!(b.take().tasks.is_empty(), "b is not concerned");

        // A task leaving a node reaches both the old and the new node's stream.
        r.route(&event(EventKind::Updated, task("t1", "b")));
        assert_eq!(r.node_tasks["b"].len(), 1);
        assert!(!r.node_tasks.contains_key("a"));
        assert!(a.take().tasks.contains_key("t1"));
        assert!(b.take().tasks.contains_key("t1"));

        r.route(&event(EventKind::Deleted, task("t1", "b")));
        assert!(b.take().tasks.contains_key("t1"));
        assert!(!r.task_node.contains_key("t1"), "forgotten once deleted");
        assert!(r.node_tasks.is_empty());

        // Secrets may concern any node: everyone looks.
        r.route(&event(
            EventKind::Updated,
            Object::Secret(Secret {
                id: "s1".into(),
                ..Secret::default()
            }),
        ));
        assert!(a.take().secrets.contains("s1") && b.take().secrets.contains("s1"));
    }

    #[test]
    fn closed_streams_are_dropped_from_the_routes() {
        let mut r = Routes::default();
        let a = register(&mut r, "a");
        drop(a);
        r.route(&event(EventKind::Updated, task("t1", "a")));
        assert!(!r.inboxes.contains_key("a"));
    }
}
