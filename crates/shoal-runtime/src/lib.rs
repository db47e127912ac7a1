//! shoal-runtime: see ARCHITECTURE.md.
