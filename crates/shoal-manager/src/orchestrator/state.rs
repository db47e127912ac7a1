//! What the reconcilers read: any source of store objects (the real `StoreView`, or an in-memory
//! map for tests and benchmarks) and an indexed snapshot of the parts they need.

use std::collections::{BTreeMap, HashMap};

use shoal_store::{Change, StoreView};
use shoal_types::swarm::DEFAULT_TASK_HISTORY;
use shoal_types::{ApiError, Cluster, Network, Node, Object, ObjectKind, Service, Task};

/// Read access to store objects. Implemented by `StoreView` and by [`MemObjects`].
pub trait ObjectSource {
    fn objects(&self, kind: ObjectKind) -> Box<dyn Iterator<Item = &Object> + '_>;
    fn object(&self, kind: ObjectKind, id: &str) -> Option<&Object>;
}

impl ObjectSource for StoreView {
    fn objects(&self, kind: ObjectKind) -> Box<dyn Iterator<Item = &Object> + '_> {
        Box::new(self.list(kind))
    }
    fn object(&self, kind: ObjectKind, id: &str) -> Option<&Object> {
        self.get(kind, id)
    }
}

/// An in-memory object store that applies `Change`s like the real one (versions = a counter),
/// without Raft: unit tests and the scheduler benchmark use it.
#[derive(Debug, Clone, Default)]
pub struct MemObjects {
    kinds: BTreeMap<ObjectKind, BTreeMap<String, Object>>,
    index: u64,
}

impl MemObjects {
    pub fn new() -> Self {
        MemObjects::default()
    }

    pub fn index(&self) -> u64 {
        self.index
    }

    /// Inserts or replaces an object without version checks (test setup).
    pub fn put(&mut self, mut obj: Object) {
        self.index += 1;
        obj.set_version(self.index);
        self.kinds
            .entry(obj.kind())
            .or_default()
            .insert(obj.id().to_string(), obj);
    }

    /// Applies changes atomically with the store's version rules.
    pub fn apply(&mut self, changes: &[Change]) -> Result<(), ApiError> {
        let mut next = self.kinds.clone();
        let index = self.index + 1;
        for c in changes {
            match c {
                Change::Create(o) => {
                    let t = next.entry(o.kind()).or_default();
                    if t.contains_key(o.id()) {
                        return Err(ApiError::conflict(format!("{} exists", o.id())));
                    }
                    let mut o = o.clone();
                    o.set_version(index);
                    t.insert(o.id().to_string(), o);
                }
                Change::Update {
                    object,
                    expected_version,
                } => {
                    let t = next.entry(object.kind()).or_default();
                    let cur = t
                        .get(object.id())
                        .ok_or_else(|| ApiError::not_found(object.id().to_string()))?;
                    if expected_version.is_some_and(|v| v != cur.version()) {
                        return Err(ApiError::out_of_sequence());
                    }
                    let mut o = object.clone();
                    o.set_version(index);
                    t.insert(o.id().to_string(), o);
                }
                Change::Delete {
                    kind,
                    id,
                    expected_version,
                } => {
                    let t = next.entry(*kind).or_default();
                    let cur = t.get(id).ok_or_else(|| ApiError::not_found(id.clone()))?;
                    if expected_version.is_some_and(|v| v != cur.version()) {
                        return Err(ApiError::out_of_sequence());
                    }
                    t.remove(id);
                }
                Change::TaskStatus {
                    task_id,
                    node_id,
                    status,
                } => {
                    let t = next.entry(ObjectKind::Task).or_default();
                    if let Some(Object::Task(cur)) = t.get(task_id)
                        && let Some(updated) =
                            shoal_store::task_with_status(cur, node_id, status, index)
                    {
                        t.insert(task_id.clone(), Object::Task(updated));
                    }
                }
            }
        }
        self.kinds = next;
        self.index = index;
        Ok(())
    }
}

impl ObjectSource for MemObjects {
    fn objects(&self, kind: ObjectKind) -> Box<dyn Iterator<Item = &Object> + '_> {
        Box::new(self.kinds.get(&kind).into_iter().flat_map(|t| t.values()))
    }
    fn object(&self, kind: ObjectKind, id: &str) -> Option<&Object> {
        self.kinds.get(&kind)?.get(id)
    }
}

/// Indexed snapshot: services, nodes, networks, the cluster object and tasks grouped by service.
#[derive(Clone)]
pub struct ClusterState<'a> {
    pub services: BTreeMap<&'a str, &'a Service>,
    pub nodes: BTreeMap<&'a str, &'a Node>,
    pub networks: BTreeMap<&'a str, &'a Network>,
    pub cluster: Option<&'a Cluster>,
    pub tasks_by_service: HashMap<&'a str, Vec<&'a Task>>,
    pub all_tasks: Vec<&'a Task>,
}

impl<'a> ClusterState<'a> {
    pub fn build(src: &'a dyn ObjectSource) -> ClusterState<'a> {
        let mut services = BTreeMap::new();
        for o in src.objects(ObjectKind::Service) {
            if let Object::Service(s) = o {
                services.insert(s.id.as_str(), s);
            }
        }
        let mut nodes = BTreeMap::new();
        for o in src.objects(ObjectKind::Node) {
            if let Object::Node(n) = o {
                nodes.insert(n.id.as_str(), n);
            }
        }
        let mut networks = BTreeMap::new();
        for o in src.objects(ObjectKind::Network) {
            if let Object::Network(n) = o {
                networks.insert(n.id.as_str(), n);
            }
        }
        let cluster = src.objects(ObjectKind::Cluster).find_map(|o| match o {
            Object::Cluster(c) => Some(c),
            _ => None,
        });
        let mut tasks_by_service: HashMap<&str, Vec<&Task>> = HashMap::new();
        let mut all_tasks = Vec::new();
        for o in src.objects(ObjectKind::Task) {
            if let Object::Task(t) = o {
                tasks_by_service
                    .entry(t.service_id.as_str())
                    .or_default()
                    .push(t);
                all_tasks.push(t);
            }
        }
        ClusterState {
            services,
            nodes,
            networks,
            cluster,
            tasks_by_service,
            all_tasks,
        }
    }

    /// The same snapshot without some tasks (those the network allocator holds back from the
    /// scheduler).
    pub fn without_tasks(&self, ids: &std::collections::HashSet<String>) -> ClusterState<'a> {
        let mut st = self.clone();
        st.all_tasks.retain(|t| !ids.contains(&t.id));
        for v in st.tasks_by_service.values_mut() {
            v.retain(|t| !ids.contains(&t.id));
        }
        st
    }

    pub fn tasks_of(&self, service_id: &str) -> &[&'a Task] {
        self.tasks_by_service
            .get(service_id)
            .map(Vec::as_slice)
            .unwrap_or(&[])
    }

    /// Terminal tasks kept per slot/node (cluster setting; default 5, negative = keep all).
    pub fn history_limit(&self) -> i64 {
        self.cluster
            .and_then(|c| c.spec.orchestration.task_history_retention_limit)
            .unwrap_or(DEFAULT_TASK_HISTORY)
    }
}
