//! shoal-runtime: see ARCHITECTURE.md.
pub mod image;
