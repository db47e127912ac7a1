#!/usr/bin/env bash
# Sets up the machine and runs the whole test suite: format, lints, unit and end-to-end tests.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "run as root: the tests create network namespaces and containers" >&2; exit 1; }
./deploy/setup.sh
# A one-off build gains nothing from incremental caches, which double the disk it needs.
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"
cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings
# Two test threads: the machine has 2 cores and the lab tests start several daemons each.
cargo test --workspace -- --test-threads=2
