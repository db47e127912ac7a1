#!/usr/bin/env bash
# Cluster-core figures: manager idle RSS, committed writes/s, leader failover (release build).
set -euo pipefail
cd "$(dirname "$0")/../.."
[ "$(id -u)" = 0 ] || { echo "run as root (the lab uses network namespaces)" >&2; exit 1; }
cargo build --release -p shoal -p shoal-e2e --bin shoal --bin bench-cluster
SHOAL_BIN="$PWD/target/release/shoal" ./target/release/bench-cluster
