#!/usr/bin/env bash
# README's main job: installs what is needed (scripts/setup.sh --demo-data: the tools, the
# all-MiniLM-L6-v2 weights and the Wikipedia leads), then runs `realm demo`.
# Extra arguments go to `realm demo` (see `realm demo --help`).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --demo-data
cargo run -q -p realm-native -- demo "$@"
