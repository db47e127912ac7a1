//! shoal-net: see ARCHITECTURE.md.
