//! shoal-compose: see ARCHITECTURE.md.
