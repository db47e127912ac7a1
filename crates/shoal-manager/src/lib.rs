//! shoal-manager: see ARCHITECTURE.md.

pub mod ca;
pub mod liveness;
pub mod nodes;
pub mod peers;
pub mod raft_id;
pub mod manager;
