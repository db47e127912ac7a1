#!/usr/bin/env bash
# Overlay data-plane figures (release build): overlay vs underlay throughput and latency, routing
# mesh vs direct, task death -> out of DNS/VIP on every node. Medians of alternating rounds;
# SHOAL_BENCH_ROUNDS / SHOAL_BENCH_KILLS change the counts (default 5 each); SHOAL_BENCH_PERF=1
# adds the CPU per mesh request split by part of the path (perf).
set -euo pipefail
cd "$(dirname "$0")/../.."
[ "$(id -u)" = 0 ] || { echo "run as root (the lab uses network namespaces)" >&2; exit 1; }
cargo build --release -p shoal -p shoal-monitor -p shoal-e2e --bin shoal --bin shoal-monitor --bin bench-overlay
# The daemon starts containers with the shoal-monitor found next to it.
SHOAL_BIN="$PWD/target/release/shoal" ./target/release/bench-overlay
