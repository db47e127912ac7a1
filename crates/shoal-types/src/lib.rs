//! shoal-types: see ARCHITECTURE.md.
