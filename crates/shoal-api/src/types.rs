//! The wire types the API speaks, gathered in one place: everything from shoal-types, plus
//! the HTTP layer's own `Filters` (convertible to and from `shoal_types::Filters`).

pub use shoal_types::network::NetworkCreateRequest;
pub use shoal_types::swarm::{
    InitRequest, JoinRequest, UnlockKeyResponse, UnlockRequest, UpdateFlags,
};
pub use shoal_types::*;

pub use crate::filters::Filters;
