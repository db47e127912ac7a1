//! shoal-proto: see ARCHITECTURE.md.
