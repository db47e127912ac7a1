#!/usr/bin/env bash
# Encrypted overlay figures (release build): TCP throughput and latency between tasks on two
# nodes over an --opt encrypted overlay (userspace WireGuard) against a plain overlay.
# SHOAL_BENCH_ROUNDS changes the number of alternating rounds (default 5).
set -euo pipefail
cd "$(dirname "$0")/../.."
[ "$(id -u)" = 0 ] || { echo "run as root (the lab uses network namespaces)" >&2; exit 1; }
cargo build --release -p shoal -p shoal-monitor -p shoal-e2e --bin shoal --bin shoal-monitor --bin bench-encrypted
SHOAL_BIN="$PWD/target/release/shoal" ./target/release/bench-encrypted
