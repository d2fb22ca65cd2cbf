#!/usr/bin/env bash
# The encoder speed bench (issue #3): our BERT forward on burn's CPU backend (criterion,
# core/benches/encoder.rs) and PyTorch's in the same run, one thread each; writes
# target/bench-encoder/table.md. Copy it into BENCHMARKS.md.
#
# Round 1 is the whole bench (the module, the frozen forward at f32 and bf16) then PyTorch;
# rounds 2..REALM_BENCH_ROUNDS (default 3) the frozen f32 forward alone then PyTorch again,
# so the goal's ratio is the median of ratios whose two sides ran minutes apart at most.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=${REALM_PEER_VENV:-target/peer-venv}
scripts/setup-peers.sh "$venv"
py="$venv/bin/python"
rounds=${REALM_BENCH_ROUNDS:-3}
rm -f target/bench-encoder/peer-r*.json
RAYON_NUM_THREADS=1 cargo bench --workspace --bench encoder
"$py" core/benches/peers/encoder_peer.py --round 1 target
for round in $(seq 2 "$rounds"); do
    REALM_BENCH_ROUND=$round RAYON_NUM_THREADS=1 cargo bench --workspace --bench encoder
    "$py" core/benches/peers/encoder_peer.py --round "$round" target
done
commit=$(git rev-parse --short HEAD)$(git diff --quiet HEAD -- core || echo "+changes")
"$py" core/benches/peers/encoder_peer.py --report target "$commit"
