//! Lab harness for end-to-end tests: see tests/README.md.
