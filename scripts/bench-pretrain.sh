#!/usr/bin/env bash
# The REALM pre-training benchmarks against PyTorch (issue #11), peer and ours in one run, one
# thread each:
#   1. the refresh throughput: `realm index` over the first PASSAGES passages of the demo corpus
#      (default 2000; the wall time of the whole command, model loading and the shard write
#      included) against scripts/peer_pretrain.py refresh (transformers' BertModel, mean
#      pooling, faiss IndexFlatIP.add; model loading excluded); the shard it writes is the
#      starting index of 2.;
#   2. the pre-training step: `realm pretrain --config demo` for STEPS steps (default 12; the
#      first 2 of each are not counted), index refresh off (no background build beside the
#      timed steps), writing its micro-batches (`--dump-batches`), and
#      scripts/peer_pretrain.py train (transformers' RealmEmbedder and RealmKnowledgeAugEncoder,
#      transformers 4.57.6) on those very micro-batches, same schedule, clipping and optimiser;
#   3. peak memory (max RSS) of each.
# Prints the CPU model and a Markdown table (target/bench-pretrain/table.md): the median seconds
# of each phase (data, retrieval, embed_candidates, encoder, backward, optimizer), the step with
# and without data, the refresh in passages/s; copy it into BENCHMARKS.md. Needs ../shared/data
# (or REALM_SHARED_DATA).
set -euo pipefail
cd "$(dirname "$0")/.."
S=${REALM_SHARED_DATA:-../shared/data}
venv=${REALM_PEER_VENV:-target/peer-venv}
realm_lib=${REALM_PEER_REALM_LIB:-target/peer-realm-lib}
steps=${STEPS:-12}
passages=${PASSAGES:-2000}
[ -x /usr/bin/time ] || { echo "bench-pretrain: needs /usr/bin/time for peak memory (apt-get install time)" >&2; exit 1; }
scripts/setup-peers.sh "$venv" "$realm_lib"
py="$venv/bin/python"
# transformers 4.57.6 (REALM) over the venv's newer one, for the peer only
peer=(env "PYTHONPATH=$realm_lib${PYTHONPATH:+:$PYTHONPATH}" "$py" scripts/peer_pretrain.py --threads 1)
cargo build -q -p realm-native --bin realm
out=target/bench-pretrain
rm -rf "$out"
mkdir -p "$out"
cp target/debug/realm "$out/realm" # later builds cannot swap the binary mid-run
realm="$out/realm"
cpu=$(scripts/cpu-name.sh)
commit=$(git rev-parse --short HEAD)$(git diff --quiet HEAD || echo "+changes")
echo "bench-pretrain: $cpu, commit $commit, one thread each"
export RAYON_NUM_THREADS=1 OMP_NUM_THREADS=1 MKL_NUM_THREADS=1

corpus=$S/demo-corpus/passages.jsonl
model=$S/all-minilm-l6-v2
index=$out/pt-demo.int8.shard

echo "bench-pretrain: 1. refresh throughput ($passages passages)"
/usr/bin/time -f "%e %M" -o "$out/index.time" \
  "$realm" index --model "$model" --corpus "$corpus" --limit "$passages" --max-length 128 --batch 16 --out "$index"
/usr/bin/time -f "%e %M" -o "$out/peer-refresh.time" \
  "${peer[@]}" refresh --model "$model" --corpus "$corpus" --limit "$passages" --max-length 128 --batch 16 > "$out/peer-refresh.json"

echo "bench-pretrain: 2. pre-training steps ($steps)"
/usr/bin/time -f "%e %M" -o "$out/pretrain.time" \
  "$realm" pretrain --config demo --model "$model" --corpus "$corpus" --index "$index" --skip 0 --limit "$passages" \
  --steps "$steps" --mlm-warmup 0 --held-out 0 --refresh never --out "$out/ours" --checkpoint-every 100000 --quiet \
  --dump-batches "$out/batches.jsonl"
/usr/bin/time -f "%e %M" -o "$out/peer-train.time" \
  "${peer[@]}" train --batches "$out/batches.jsonl" --model "$model" --steps "$steps" --total-steps "$steps" \
  --lr 1e-4 > "$out/peer-train.jsonl"

"$py" - "$out" "$cpu" "$commit" "$passages" <<'EOF'
import json, statistics, sys
from pathlib import Path
out, cpu, commit, passages = Path(sys.argv[1]), sys.argv[2], sys.argv[3], int(sys.argv[4])
lines = lambda p: [json.loads(l) for l in (out / p).read_text().splitlines() if l.strip()]
m = statistics.median
ours = [l for l in lines("ours/metrics.jsonl") if "seconds" in l][2:]
peer = lines("peer-train.jsonl")[2:]
if not ours or not peer:
    sys.exit("bench-pretrain: fewer than 3 steps on a side; run with STEPS=3 or more")
def ours_phases(l):
    s, x = l["seconds"], l["extra"]["seconds"]
    p = {"data": s["data"], **x, "backward": s["backward"], "optimizer": s["optimizer"]}
    # forward less its three parts: the loss read back (and the --dump-batches write)
    p["forward, rest"] = s["forward"] - sum(x.values())
    p["step, data excluded"] = s["forward"] + s["backward"] + s["optimizer"]
    p["step"] = p["step, data excluded"] + s["data"]
    return p
def peer_phases(l):
    s = dict(l["seconds"])
    s["forward, rest"] = 0.0
    s["step, data excluded"] = s["total"] - s["data"]
    s["step"] = s["total"]
    return s
ours_p, peer_p = [ours_phases(l) for l in ours], [peer_phases(l) for l in peer]
med = lambda rows, key: m(r[key] for r in rows)
b = ours[0]["extra"]["queries"]
k = lines("batches.jsonl")[0]["candidates_per_query"]
table = [f"CPU: {cpu}; commit {commit}; one thread each; PyTorch peer: scripts/peer_pretrain.py "
         f"(transformers 4.57.6 RealmEmbedder + RealmKnowledgeAugEncoder, faiss IndexFlatIP)", "",
         f"Pre-training step, `--config demo` ({b} queries x {k} candidates, the null document "
         f"included), median of {len(ours)} (ours) and {len(peer)} (PyTorch) steps after the first 2:", "",
         "| phase (s, median) | ours | PyTorch | ours / PyTorch |", "|---|---|---|---|"]
for key in ("data", "retrieval", "embed_candidates", "encoder", "forward, rest", "backward",
            "optimizer", "step, data excluded", "step"):
    a, p = med(ours_p, key), med(peer_p, key)
    ratio = f"{a / p:.2f}" if p > 0 else "-"
    if key.startswith("step"):
        key, ratio = f"**{key}**", f"**{ratio}**"
    table.append(f"| {key} | {a:.3f} | {p:.3f} | {ratio} |")
index_s, index_kb = (out / "index.time").read_text().split()[-2:]
ours_rate = passages / float(index_s)
peer_refresh = json.loads((out / "peer-refresh.json").read_text())
peer_rate = peer_refresh["passages_per_s"]
# The ratio of times (as the rows above): below 1, ours is faster.
table += ["", "| refresh: embed and index (passages/s) | ours | PyTorch + faiss | ours / PyTorch, time |",
          "|---|---|---|---|",
          f"| {passages} passages, 128 wordpieces, batch 16 | {ours_rate:.1f} | "
          f"{peer_rate:.1f} | **{peer_rate / ours_rate:.2f}** |", "",
          "Ours is the wall time of the whole `realm index` command (start, model loading, the int8 shard "
          "written); the peer's excludes loading (embedding "
          f"{peer_refresh['seconds']['embed']:.1f} s, faiss add {peer_refresh['seconds']['add']:.3f} s)."]
mib = lambda p: int((out / p).read_text().split()[-1]) / 1024
table += ["", f"Peak RSS: pre-training {mib('pretrain.time'):.0f} MiB ours, {mib('peer-train.time'):.0f} MiB "
          f"PyTorch; refresh {mib('index.time'):.0f} MiB ours, {mib('peer-refresh.time'):.0f} MiB PyTorch.",
          f"Loss after {len(ours) + 2} steps: ours {ours[-1]['loss']:.3f}, PyTorch {peer[-1]['loss']:.3f} "
          "(different retriever heads and fresh-head draws: not expected to agree)."]
(out / "table.md").write_text("\n".join(table) + "\n")
print("\n".join(table))
EOF
