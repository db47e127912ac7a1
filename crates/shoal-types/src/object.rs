//! The store object: one enum over every replicated object kind, with common accessors.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::error::ApiError;
use crate::id::Named;
use crate::meta::Meta;
use crate::network::Network;
use crate::node::Node;
use crate::secret::{Config, Secret};
use crate::service::Service;
use crate::swarm::Cluster;
use crate::task::Task;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ObjectKind {
    Node,
    Service,
    Task,
    Network,
    Secret,
    Config,
    Cluster,
}

impl ObjectKind {
    pub const ALL: [ObjectKind; 7] = [
        ObjectKind::Node,
        ObjectKind::Service,
        ObjectKind::Task,
        ObjectKind::Network,
        ObjectKind::Secret,
        ObjectKind::Config,
        ObjectKind::Cluster,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ObjectKind::Node => "node",
            ObjectKind::Service => "service",
            ObjectKind::Task => "task",
            ObjectKind::Network => "network",
            ObjectKind::Secret => "secret",
            ObjectKind::Config => "config",
            ObjectKind::Cluster => "cluster",
        }
    }

    /// Whether names of this kind must be unique (the store refuses a duplicate with 409).
    pub fn has_unique_names(self) -> bool {
        !matches!(self, ObjectKind::Node | ObjectKind::Task)
    }
}

impl std::fmt::Display for ObjectKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for ObjectKind {
    type Err = ApiError;
    fn from_str(s: &str) -> Result<Self, ApiError> {
        ObjectKind::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| ApiError::invalid_argument(format!("unknown object kind {s:?}")))
    }
}

/// Any replicated object. JSON: `{"Kind":"service","Object":{...}}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "Kind", content = "Object", rename_all = "lowercase")]
pub enum Object {
    Node(Node),
    Service(Service),
    Task(Task),
    Network(Network),
    Secret(Secret),
    Config(Config),
    Cluster(Cluster),
}

macro_rules! each {
    ($self:expr, $o:ident => $e:expr) => {
        match $self {
            Object::Node($o) => $e,
            Object::Service($o) => $e,
            Object::Task($o) => $e,
            Object::Network($o) => $e,
            Object::Secret($o) => $e,
            Object::Config($o) => $e,
            Object::Cluster($o) => $e,
        }
    };
}

impl Object {
    pub fn kind(&self) -> ObjectKind {
        match self {
            Object::Node(_) => ObjectKind::Node,
            Object::Service(_) => ObjectKind::Service,
            Object::Task(_) => ObjectKind::Task,
            Object::Network(_) => ObjectKind::Network,
            Object::Secret(_) => ObjectKind::Secret,
            Object::Config(_) => ObjectKind::Config,
            Object::Cluster(_) => ObjectKind::Cluster,
        }
    }

    pub fn id(&self) -> &str {
        each!(self, o => &o.id)
    }

    /// The name that must be unique within the kind; None for tasks and nodes
    /// (node hostnames may repeat; look nodes up through `Named::lookup_name`).
    pub fn name(&self) -> Option<&str> {
        let n = match self {
            Object::Node(_) | Object::Task(_) => return None,
            Object::Service(o) => &o.spec.annotations.name,
            Object::Network(o) => &o.spec.annotations.name,
            Object::Secret(o) => &o.spec.annotations.name,
            Object::Config(o) => &o.spec.annotations.name,
            Object::Cluster(o) => &o.spec.annotations.name,
        };
        Some(n.as_str())
    }

    pub fn meta(&self) -> &Meta {
        each!(self, o => &o.meta)
    }

    pub fn meta_mut(&mut self) -> &mut Meta {
        each!(self, o => &mut o.meta)
    }

    pub fn version(&self) -> u64 {
        self.meta().version.index
    }

    pub fn set_version(&mut self, index: u64) {
        self.meta_mut().version.index = index;
    }

    pub fn created_at(&self) -> DateTime<Utc> {
        self.meta().created_at
    }

    pub fn set_created_at(&mut self, t: DateTime<Utc>) {
        self.meta_mut().created_at = t;
    }

    pub fn updated_at(&self) -> DateTime<Utc> {
        self.meta().updated_at
    }

    pub fn set_updated_at(&mut self, t: DateTime<Utc>) {
        self.meta_mut().updated_at = t;
    }
}

impl Named for Object {
    fn id(&self) -> &str {
        Object::id(self)
    }
    fn lookup_name(&self) -> Option<&str> {
        each!(self, o => o.lookup_name())
    }
}

macro_rules! object_variant {
    ($t:ident) => {
        impl From<$t> for Object {
            fn from(v: $t) -> Object {
                Object::$t(v)
            }
        }
        impl TryFrom<Object> for $t {
            type Error = ApiError;
            fn try_from(o: Object) -> Result<$t, ApiError> {
                match o {
                    Object::$t(v) => Ok(v),
                    other => Err(ApiError::internal(format!(
                        "expected a {} object, got a {}",
                        stringify!($t).to_lowercase(),
                        other.kind()
                    ))),
                }
            }
        }
    };
}

object_variant!(Node);
object_variant!(Service);
object_variant!(Task);
object_variant!(Network);
object_variant!(Secret);
object_variant!(Config);
object_variant!(Cluster);

macro_rules! named_by_spec {
    ($t:ty) => {
        impl Named for $t {
            fn id(&self) -> &str {
                &self.id
            }
            fn lookup_name(&self) -> Option<&str> {
                Some(&self.spec.annotations.name)
            }
        }
    };
}

named_by_spec!(Service);
named_by_spec!(Network);
named_by_spec!(Secret);
named_by_spec!(Config);
named_by_spec!(Cluster);

impl Named for Node {
    fn id(&self) -> &str {
        &self.id
    }
    fn lookup_name(&self) -> Option<&str> {
        Some(self.display_name())
    }
}

impl Named for Task {
    fn id(&self) -> &str {
        &self.id
    }
    fn lookup_name(&self) -> Option<&str> {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::id::resolve;
    use crate::meta::Annotations;
    use crate::secret::SecretSpec;

    #[test]
    fn accessors_and_json() {
        let mut o = Object::Secret(Secret {
            id: "abc".into(),
            spec: SecretSpec {
                annotations: Annotations::named("pw"),
                ..SecretSpec::default()
            },
            ..Secret::default()
        });
        assert_eq!(o.kind(), ObjectKind::Secret);
        assert_eq!(o.id(), "abc");
        assert_eq!(o.name(), Some("pw"));
        o.set_version(42);
        assert_eq!(o.version(), 42);
        let j = serde_json::to_value(&o).unwrap();
        assert_eq!(j["Kind"], "secret");
        assert_eq!(j["Object"]["Version"]["Index"], 42);
        let back: Object = serde_json::from_value(j).unwrap();
        assert_eq!(back, o);
        let s: Secret = back.try_into().unwrap();
        assert_eq!(s.id, "abc");
        let t = Object::Task(Task {
            id: "t1".into(),
            ..Task::default()
        });
        assert_eq!(t.name(), None);
        assert!(Service::try_from(t).is_err());
        assert_eq!(
            "network".parse::<ObjectKind>().unwrap(),
            ObjectKind::Network
        );
        assert!("volume".parse::<ObjectKind>().is_err());
    }

    #[test]
    fn every_kind_round_trips() {
        let now = chrono::Utc::now();
        let mut objs = [
            Object::Node(Node::default()),
            Object::Service(Service::default()),
            Object::Task(Task::default()),
            Object::Network(Network::default()),
            Object::Secret(Secret::default()),
            Object::Config(Config::default()),
            Object::Cluster(Cluster::default()),
        ];
        for (i, o) in objs.iter_mut().enumerate() {
            o.set_version(i as u64 + 1);
            o.set_created_at(now);
            o.set_updated_at(now);
            let j = serde_json::to_string(o).unwrap();
            let back: Object = serde_json::from_str(&j).unwrap();
            assert_eq!(&back, o, "{j}");
            assert_eq!(back.kind(), ObjectKind::ALL[i]);
            assert_eq!(back.created_at(), now);
        }
    }

    #[test]
    fn resolve_objects() {
        let mut n = Node {
            id: "node1".into(),
            ..Node::default()
        };
        n.description.hostname = "vm1".into();
        let objs = vec![
            Object::Node(n),
            Object::Task(Task {
                id: "nodx".into(),
                ..Task::default()
            }),
        ];
        assert_eq!(resolve(&objs, "vm1").unwrap().id(), "node1");
        assert!(resolve(&objs, "nod").is_err());
    }
}
