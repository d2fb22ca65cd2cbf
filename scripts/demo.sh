#!/usr/bin/env bash
# README's main job: installs what is needed (scripts/setup.sh), then runs `realm demo`.
# Extra arguments go to `realm demo` (see `realm demo --help`).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cargo run -q -p realm-native -- demo "$@"
