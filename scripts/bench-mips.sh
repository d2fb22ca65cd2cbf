#!/usr/bin/env bash
# MIPS benchmarks, ours and the peers in one run (issue #4): writes the bench data, runs our
# criterion bench of the exact and int8 scans (core/benches/mips.rs), then faiss-cpu on the
# same data (core/benches/peers/mips_peer.py), then REALM_BENCH_ROUNDS (default 5) rounds of
# the rows that moved most from run to run (the HNSW sweep, the exact one-query scans), ours
# then the peers' in each, so that both sides of a ratio are measured a minute or two apart;
# then joins them into target/bench-mips/table.md and target/bench-mips/hnsw-*.png (those
# rows' ratios are the medians of the rounds' ratios). Copy the table into BENCHMARKS.md.
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
rounds=${REALM_BENCH_ROUNDS:-5}
rm -f target/bench-mips/ours-round-r*.json target/bench-mips/peer-round-r*.json
for round in $(seq 1 "$rounds"); do
    REALM_BENCH_ROUND=$round cargo bench --workspace --bench mips
    "$py" core/benches/peers/mips_peer.py --round target/bench-data \
        "target/bench-mips/peer-round-r$round.json"
done
load_after=$(cut -d' ' -f1-3 /proc/loadavg)
commit=$(git rev-parse --short HEAD)$(git diff --quiet HEAD -- core shaders || echo "+changes")
cpu=$(scripts/cpu-name.sh)
cat > target/bench-mips/conditions.json <<JSON
{"commit": "$commit", "date": "$(date -u +%F)", "cpu": "$cpu, $(nproc) cores",
 "load_before": "$load_before", "load_after": "$load_after"}
JSON
"$py" core/benches/peers/report.py target target/bench-mips/conditions.json
