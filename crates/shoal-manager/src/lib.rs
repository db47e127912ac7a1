//! shoal-manager: see ARCHITECTURE.md.
