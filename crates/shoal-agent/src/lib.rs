//! shoal-agent: the worker side of every node (session with the managers; task runners later).

pub mod logs;
pub mod persist;
pub mod session;
pub mod wg_peers;
pub mod worker;
