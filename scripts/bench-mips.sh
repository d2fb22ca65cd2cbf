#!/usr/bin/env bash
# MIPS benchmarks, ours and the peers in one run (issue #4): writes the bench data, runs our
# criterion bench (core/benches/mips.rs), then faiss-cpu and hnswlib on the same data
# (core/benches/peers/mips_peer.py), then joins them into target/bench-mips/table.md and
# target/bench-mips/hnsw-*.png. Copy the table into BENCHMARKS.md.
#
# Needs ../shared/data (or REALM_SHARED_DATA) for all-MiniLM-L6-v2, the demo corpus and NQ-Open.
# The peers live in a virtualenv (REALM_PEER_VENV, default target/peer-venv), made on first use.
set -euo pipefail
cd "$(dirname "$0")/.."
shared=${REALM_SHARED_DATA:-../shared/data}
venv=${REALM_PEER_VENV:-target/peer-venv}
scripts/setup-peers.sh "$venv"
py="$venv/bin/python"

"$py" core/benches/peers/make_data.py target/bench-data "$shared"
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
cargo bench --workspace --bench mips
"$py" core/benches/peers/mips_peer.py target/bench-data target/bench-mips/peer.json
load_after=$(cut -d' ' -f1-3 /proc/loadavg)
commit=$(git rev-parse --short HEAD)$(git diff --quiet HEAD -- core shaders || echo "+changes")
cpu=$(scripts/cpu-name.sh)
cat > target/bench-mips/conditions.json <<JSON
{"commit": "$commit", "date": "$(date -u +%F)", "cpu": "$cpu, $(nproc) cores",
 "load_before": "$load_before", "load_after": "$load_after"}
JSON
"$py" core/benches/peers/report.py target target/bench-mips/conditions.json
