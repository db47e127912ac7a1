//! shoal-store: see ARCHITECTURE.md.
