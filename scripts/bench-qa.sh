#!/usr/bin/env bash
# Open-QA benchmarks against PyTorch (issue #13), peer and ours in one run, one thread each:
#   1. a fine-tuning step of the span reader: `realm finetune` and scripts/peer_reader.py
#      train on the same micro-batches (`--dump-batches`), same schedule, clipping and
#      optimiser, for STEPS steps (default 12; the first 2 of each are not timed);
#   2. `realm ask` (question to answer over the demo corpus's int8 index, top-5 passages)
#      against transformers + faiss with the same reader weights and the same question
#      embedder (the base MiniLM's: the shipped reader's fine-tuned query.* is left out of
#      both), over QUESTIONS questions (default 30; the first 3 not timed);
#   3. where the CPU has AMX or AVX-512 BF16, `realm ask --precision bf16` beside the f32 one
#      (same questions);
#   and the peak memory (max RSS) of ours in 1 and 2.
# Prints the CPU model and a Markdown table (target/bench-qa/table.md); copy it into
# BENCHMARKS.md. Needs ../shared/data (or REALM_SHARED_DATA) and the demo corpus's index,
# data/demo-corpus.int8.shard (`realm index --corpus $S/demo-corpus/passages.jsonl --out ...`).
set -euo pipefail
cd "$(dirname "$0")/.."
S=${REALM_SHARED_DATA:-../shared/data}
venv=${REALM_PEER_VENV:-target/peer-venv}
steps=${STEPS:-12}
questions=${QUESTIONS:-30}
[ -x /usr/bin/time ] || { echo "bench-qa: needs /usr/bin/time for peak memory (apt-get install time)" >&2; exit 1; }
scripts/setup-peers.sh "$venv"
py="$venv/bin/python"
cargo build -q -p realm-native --bin realm
out=target/bench-qa
rm -rf "$out"
mkdir -p "$out"
cp target/debug/realm "$out/realm" # later builds cannot swap the binary mid-run
realm="$out/realm"
cpu=$(scripts/cpu-name.sh)
commit=$(git rev-parse --short HEAD)$(git diff --quiet HEAD || echo "+changes")
echo "bench-qa: $cpu, commit $commit, one thread each"
export RAYON_NUM_THREADS=1 OMP_NUM_THREADS=1 MKL_NUM_THREADS=1

squad=$S/squad-v1.1-dev/dev-v1.1.reconstructed.json
corpus=$S/demo-corpus/passages.jsonl
index=data/demo-corpus.int8.shard
model=$S/all-minilm-l6-v2
train_flags=(--model "$model" --squad "$squad" --index "$index" --corpus "$corpus"
  --negatives 2 --batch 4 --steps "$steps" --lr 1e-4)

echo "bench-qa: 1. fine-tuning steps ($steps)"
"$realm" finetune "${train_flags[@]}" --dump-batches "$out/batches.jsonl"
/usr/bin/time -f "%M" -o "$out/finetune.rss" \
  "$realm" finetune "${train_flags[@]}" --out "$out/ours" --checkpoint-every 100000 --quiet
"$py" scripts/peer_reader.py --threads 1 train --batches "$out/batches.jsonl" --model "$model" \
  --steps "$steps" --total-steps "$steps" --lr 1e-4 > "$out/peer-train.jsonl"

echo "bench-qa: 2. ask latency ($questions questions)"
"$py" - "$squad" "$questions" > "$out/questions.txt" <<'EOF'
import json, sys
data = json.load(open(sys.argv[1]))["data"]
# The held-out articles (core/src/qa/splits.rs): every 4th from the 4th.
qs = [q["question"] for i, a in enumerate(data) if i % 4 == 3 for p in a["paragraphs"] for q in p["qas"]]
print("\n".join(qs[: int(sys.argv[2])]))
EOF
# The shipped reader without its question embedder, which the peer does not load.
mkdir -p "$out/reader"
cp native/models/demo-reader/reader.json native/models/demo-reader/reader.safetensors "$out/reader/"
ask_flags=(--model "$model" --corpus "$corpus" --index "$index" -k 5 --reader "$out/reader")
/usr/bin/time -f "%M" -o "$out/ask.rss" \
  "$realm" ask "${ask_flags[@]}" --json < "$out/questions.txt" > "$out/ours-ask.jsonl"
"$py" scripts/peer_reader.py --threads 1 ask "${ask_flags[@]}" \
  --questions "$out/questions.txt" > "$out/peer-ask.jsonl"
if grep -qwE 'amx_bf16|avx512_bf16' /proc/cpuinfo; then
  echo "bench-qa: 3. ask latency at --precision bf16"
  "$realm" ask "${ask_flags[@]}" --precision bf16 --json < "$out/questions.txt" > "$out/ours-ask-bf16.jsonl"
fi

"$py" - "$out" "$cpu" "$commit" <<'EOF'
import json, statistics, sys
from pathlib import Path
out, cpu, commit = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
lines = lambda p: [json.loads(l) for l in (out / p).read_text().splitlines() if l.strip()]
ours_steps = [sum(l["seconds"].values()) for l in lines("ours/metrics.jsonl")][2:]
peer_steps = [l["seconds"] for l in lines("peer-train.jsonl")][2:]
ours_ask = [l["seconds"]["total"] for l in lines("ours-ask.jsonl")][3:]
peer_ask = [l["seconds"]["total"] for l in lines("peer-ask.jsonl")][3:]
same = sum(a.get("answer") and a["answer"]["text"] == b["answer"] for a, b in
           zip(lines("ours-ask.jsonl"), lines("peer-ask.jsonl")))
mib = lambda p: int((out / p).read_text().split()[-1]) / 1024
m = statistics.median
rows = [
    ("reader fine-tuning step, 4 questions x 3 passages (s, median)", m(ours_steps), m(peer_steps)),
    ("`ask`, question to answer, top-5 (ms, median)", 1e3 * m(ours_ask), 1e3 * m(peer_ask)),
]
table = [f"CPU: {cpu}; commit {commit}; one thread each; PyTorch peer: scripts/peer_reader.py", "",
         "| row | ours | PyTorch | ours / PyTorch |", "|---|---|---|---|"]
table += [f"| {r} | {a:.3f} | {b:.3f} | **{a / b:.2f}** |" for r, a, b in rows]
if (out / "ours-ask-bf16.jsonl").exists():
    bf16 = lines("ours-ask-bf16.jsonl")
    bf16_ask = [l["seconds"]["total"] for l in bf16][3:]
    table.append(f"| `ask` at `--precision bf16`, against PyTorch f32 (ms, median) | "
                 f"{1e3 * m(bf16_ask):.3f} | {1e3 * m(peer_ask):.3f} | **{m(bf16_ask) / m(peer_ask):.2f}** |")
    agree = sum(a.get("answer") and b.get("answer") and a["answer"]["text"] == b["answer"]["text"]
                and a["answer"]["passage_id"] == b["answer"]["passage_id"]
                for a, b in zip(lines("ours-ask.jsonl"), bf16))
    table += ["", f"bf16 gives the f32 answer and passage on {agree} of {len(bf16)} questions."]
table += ["", f"Same answer as the peer on {same} of {len(lines('ours-ask.jsonl'))} questions.",
          f"Peak RSS: fine-tuning {mib('finetune.rss'):.0f} MiB, ask {mib('ask.rss'):.0f} MiB."]
(out / "table.md").write_text("\n".join(table) + "\n")
print("\n".join(table))
EOF
