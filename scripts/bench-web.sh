#!/usr/bin/env bash
# The browser benchmarks (BENCHMARKS.md, "In the browser"): search in Chromium against voy and
# a plain JS loop, and the engine's question answering against native `realm ask`, one run.
# Usage: scripts/bench-web.sh          (N=20000 scripts/bench-web.sh for a quicker search row)
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh >&2
cargo build -p realm-native >&2
scripts/web-fixture.sh >&2
scripts/build-wasm.sh >&2
cd web && node bench/run.mjs
