//! shoal-api: see ARCHITECTURE.md.
