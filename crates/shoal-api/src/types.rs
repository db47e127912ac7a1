//! The wire types the API speaks, gathered in one place: everything from shoal-types, plus
//! stand-ins for shapes shoal-types does not define yet (kept as raw JSON until it does).

pub use shoal_types::swarm::{
    InitRequest, JoinRequest, UnlockKeyResponse, UnlockRequest, UpdateFlags,
};
pub use shoal_types::*;

pub use crate::filters::Filters;

/// `network.Inspect` (note `"Id"`), raw until shoal-types has the type.
pub type NetworkInspect = serde_json::Value;
/// `network.CreateRequest`, raw until shoal-types has the type.
pub type NetworkCreateRequest = serde_json::Value;
/// `events.Message`, raw until shoal-types has the type.
pub type EventMessage = serde_json::Value;
