#!/usr/bin/env bash
# The browser benchmarks (BENCHMARKS.md, "In the browser"): search in Chromium against voy and
# a plain JS loop, the engine's question answering against native `realm ask`, and its two
# forwards against onnxruntime-web on the same weights (ONNX export by torch), one run.
# Usage: scripts/bench-web.sh          (N=20000 scripts/bench-web.sh for a quicker search row)
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh >&2
cargo build -p realm-native >&2
scripts/web-fixture.sh >&2
scripts/build-wasm.sh >&2
# The onnxruntime-web peer: the same weights exported to ONNX by torch (the peer virtualenv),
# and onnxruntime-web from npm outside the package's dependencies.
scripts/setup-peers.sh >&2
target/peer-venv/bin/python scripts/export_onnx.py target/web-demo native/models/demo-reader target/web-demo/onnx >&2
if [ ! -f target/bench-peers/node_modules/onnxruntime-web/package.json ]; then
  mkdir -p target/bench-peers
  (cd target/bench-peers && [ -f package.json ] || echo '{"private": true}' > package.json)
  (cd target/bench-peers && npm install --no-audit --no-fund onnxruntime-web@1.30.0 >&2)
fi
cd web && node bench/run.mjs
