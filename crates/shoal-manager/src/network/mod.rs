//! Overlay networks on the managers: the control-API rules for network objects
//! ([`control`]), the address arithmetic ([`ipam`]) and the leader's allocator step
//! ([`allocator`]) that gives networks subnets and VXLAN ids, nodes their `ingress` address,
//! services their VIPs and tasks their addresses before they are scheduled.

pub mod allocator;
pub mod control;
pub mod ipam;

pub use allocator::node_attachments;
pub use control::{
    create_network, default_ingress, find_network, ingress_network, inspect_view, list_networks,
    network_user, networks, prune_networks, remove_network, resolve_service_networks,
};

#[cfg(test)]
mod tests;
