//! shoal-types: the shared vocabulary of Shoal — cluster objects in Docker Engine API wire shapes,
//! IDs and lookup, durations, errors, validation and the task state machine. Plain data, no I/O.

pub mod constraint;
pub mod container;
pub mod duration;
pub mod error;
pub mod event;
pub mod filters;
pub mod id;
pub mod image;
pub mod meta;
pub mod names;
pub mod network;
pub mod node;
pub mod object;
pub mod secret;
pub mod service;
pub mod swarm;
pub mod system;
pub mod task;
pub mod task_spec;
pub mod volume;
pub mod wire;

pub use duration::{format_duration, parse_duration};
pub use error::{ApiError, ApiResult, ErrorKind};
pub use event::EventMessage;
pub use filters::{Filters, parse_query_bool};
pub use id::{LookupError, Named, new_id, resolve};
pub use meta::{Annotations, Driver, Meta, Version};
pub use network::{Network, NetworkInspect, NetworkSpec};
pub use node::{Node, NodeAvailability, NodeRole, NodeSpec, NodeState, Reachability};
pub use object::{Object, ObjectKind};
pub use secret::{Config, ConfigSpec, Secret, SecretSpec};
pub use service::{Service, ServiceSpec};
pub use swarm::{Cluster, ClusterSpec, Swarm, SwarmInfo};
pub use system::{API_VERSION, MIN_API_VERSION, SystemInfo, SystemVersion};
pub use task::{Task, TaskState, TaskStatus};
pub use task_spec::{ContainerSpec, TaskSpec};
