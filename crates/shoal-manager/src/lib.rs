//! shoal-manager: see ARCHITECTURE.md.

pub mod attachment;
pub mod ca;
pub mod control;
pub mod dispatch;
pub mod liveness;
pub mod logbroker;
pub mod manager;
pub mod network;
pub mod nodes;
pub mod orchestrator;
pub mod peers;
pub mod raft_id;
pub mod scheduler;
pub mod services;
pub mod wg_keys;
