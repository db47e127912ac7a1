//! shoal-agent: see ARCHITECTURE.md.
