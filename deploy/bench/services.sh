#!/usr/bin/env bash
# Service figures: create → N replicas running (1 and 3 nodes), rescheduling a killed node's
# tasks (default and 1 s heartbeat). Release build, run as root. Extra arguments go to
# bench-services (e.g. --runs 1 --sizes 50).
set -euo pipefail
cd "$(dirname "$0")/../.."
[ "$(id -u)" = 0 ] || { echo "run as root (the lab uses network namespaces)" >&2; exit 1; }
cargo build --release -p shoal -p shoal-monitor -p shoal-e2e --bin shoal --bin shoal-monitor --bin bench-services
SHOAL_BIN="$PWD/target/release/shoal" ./target/release/bench-services "$@"
