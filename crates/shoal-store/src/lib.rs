//! shoal-store: the replicated cluster store every manager holds.
//!
//! openraft 0.9 (storage v2) with the log, vote, committed index and snapshots in one redb file,
//! a tonic transport (serde_json of openraft's messages; snapshots in chunks), and an in-memory
//! state machine of `shoal_types::Object`s with a read view and a watch stream. Every write is a
//! `Command` of `Change`s applied atomically; an object's version is the log index of its last
//! write.

mod at_rest;
mod command;
mod config;
mod disk;
mod force_new;
mod log_store;
mod network;
mod state_machine;
mod store;
mod tables;

pub use command::{
    Applied, ApplyResult, Change, Command, TypeConfig, status_advances, task_with_status,
};
pub use config::RaftConfig;
pub use network::{ChannelFactory, RaftGrpc, plaintext_channels};
pub use store::{Member, MemberStatus, ProposeError, Store, StoreMetrics};
pub use tables::{Event, EventKind, StoreView};

/// The generated gRPC server type `Store::grpc_service` returns.
pub type RaftServiceServer = shoal_proto::raft::raft_service_server::RaftServiceServer<RaftGrpc>;
