#!/usr/bin/env bash
# The encoder speed bench (issue #3): our BERT forward on burn's CPU backend (criterion,
# core/benches/encoder.rs) and PyTorch's in the same run, one thread each; writes
# target/bench-encoder/table.md. Copy it into BENCHMARKS.md.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=${REALM_PEER_VENV:-target/peer-venv}
scripts/setup-peers.sh "$venv"
RAYON_NUM_THREADS=1 cargo bench --workspace --bench encoder
commit=$(git rev-parse --short HEAD)$(git diff --quiet HEAD -- core || echo "+changes")
"$venv/bin/python" core/benches/peers/encoder_peer.py target "$commit"
