#!/usr/bin/env bash
# The main job: set up the machine, build, and run a local multi-node Shoal cluster in network
# namespaces. Extra arguments go to shoal-lab (--hosts N --managers M --check).
set -euo pipefail
cd "$(dirname "$0")/../.."
[ "$(id -u)" = 0 ] || { echo "run as root: the lab creates network namespaces" >&2; exit 1; }
./deploy/setup.sh
SHOAL_BIN="$PWD/target/debug/shoal" ./target/debug/shoal-lab "$@"
