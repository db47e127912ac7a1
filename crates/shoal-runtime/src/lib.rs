//! shoal-runtime: see ARCHITECTURE.md.
pub mod container;
pub mod image;
