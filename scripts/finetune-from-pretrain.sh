#!/usr/bin/env bash
# REALM's central claim in small (issue #11): open-QA fine-tuning from a `realm pretrain` run's
# encoder and retriever against from plain all-MiniLM-L6-v2, with the same recipe (README's
# model card: 4 questions x 3 passages a step, lr 1e-4, warm-up 10%) and the same budget,
# scored on the held-out SQuAD-open articles (first LIMIT questions, top-5 passages).
#
#   scripts/finetune-from-pretrain.sh RUN [STEPS]
#
# RUN is a finished pretrain run (its encoder/ and embedder/ directories); STEPS defaults to
# 600. The arms:
#   minilm      reader on MiniLM, questions and passages embedded by MiniLM (zero-shot);
#   pretrained  reader on RUN/encoder, questions and passages embedded by RUN/embedder;
#   encoder     reader on RUN/encoder, MiniLM's retrieval (what the encoder alone brings).
# ARMS picks them (default "minilm pretrained encoder"); LIMIT the held-out questions scored
# (default 500). The arms train side by side, one thread each (THREADS=N for more), and resume
# where a previous call stopped. An arm whose directory already holds a finished reader (reader.json)
# is only evaluated: put `git show f5f57d3:native/models/demo-reader/reader.{json,safetensors}`
# in the minilm arm's directory for the model card's stage-1 reader, which is that arm's
# command at 2,600 steps (the reader shipped since 2026-12-07 was trained on from it).
# Each is then evaluated (`realm eval`, predictions kept, with its retriever's recall@5) and
# the answer weight's effect read from its predictions (scripts/answer_weight.py). Prints a
# Markdown table, also written to target/finetune-from-pretrain/RUN-NAME-STEPS/table.md (each
# arm in ARM/ beside it). Needs
# ../shared/data (or REALM_SHARED_DATA) and python3.
set -euo pipefail
cd "$(dirname "$0")/.."
S=${REALM_SHARED_DATA:-../shared/data}
run=${1:?usage: scripts/finetune-from-pretrain.sh RUN [STEPS]}
steps=${2:-600}
limit=${LIMIT:-500}
arms=${ARMS:-minilm pretrained encoder}
for part in encoder embedder; do
  [ -d "$run/$part" ] || { echo "finetune-from-pretrain: $run/$part is missing: give a finished realm pretrain run" >&2; exit 1; }
done
squad=$S/squad-v1.1-dev/dev-v1.1.reconstructed.json
corpus=$S/demo-corpus/passages.jsonl
minilm=$S/all-minilm-l6-v2
out=target/finetune-from-pretrain/$(basename "$run")-$steps
mkdir -p "$out"
cargo build -q -p realm-native --bin realm
[ -x "$out/realm" ] || cp target/debug/realm "$out/realm" # later builds cannot swap it mid-run
realm=$out/realm
export RAYON_NUM_THREADS=${THREADS:-1}

[ -f data/demo-corpus.int8.shard ] || "$realm" index --model "$minilm" --corpus "$corpus" --out data/demo-corpus.int8.shard
[ -f "$out/embedder.int8.shard" ] || "$realm" index --model "$run/embedder" --corpus "$corpus" --out "$out/embedder.int8.shard"

# An arm's flags: the reader's base (--model), and the retriever where it is not that base.
flags() {
  case $1 in
    minilm) echo --model "$minilm" --index data/demo-corpus.int8.shard ;;
    pretrained) echo --model "$run/encoder" --retriever-model "$run/embedder" --index "$out/embedder.int8.shard" ;;
    encoder) echo --model "$run/encoder" --retriever-model "$minilm" --index data/demo-corpus.int8.shard ;;
    *) echo "finetune-from-pretrain: unknown arm $1" >&2; return 1 ;;
  esac
}

train() {
  local arm=$1
  if [ -f "$out/$arm/reader.json" ]; then return 0; fi
  if [ -f "$out/$arm/args.json" ]; then
    "$realm" finetune --resume "$out/$arm" --quiet
  else
    rm -rf "$out/$arm"
    # shellcheck disable=SC2046 # the arm's flags are words
    "$realm" finetune --out "$out/$arm" $(flags "$arm") --squad "$squad" --corpus "$corpus" \
      --negatives 2 --batch 4 --steps "$steps" --lr 1e-4 --checkpoint-every 50 --quiet
  fi
}

pids=()
for arm in $arms; do
  train "$arm" >"$out/$arm.log" 2>&1 &
  pids+=($!)
done
for pid in "${pids[@]}"; do
  wait "$pid" || { echo "finetune-from-pretrain: an arm failed; see $out/*.log" >&2; exit 1; }
done

{
  echo "| arm | reader base | retriever | EM top-5 (w 0) | EM top-5 (w 8) | R@5 (first $limit) |"
  echo "|---|---|---|---|---|---|"
} >"$out/table.md"
for arm in $arms; do
  # shellcheck disable=SC2046
  "$realm" eval --questions "$squad" --split held-out --limit "$limit" -k 5 $(flags "$arm") \
    --corpus "$corpus" --reader "$out/$arm" --retriever zero-shot --out "$out/eval-$arm" >"$out/eval-$arm.log" 2>&1
  # EM of REALM's marginal over the top 5 with the retriever's score at weight 0 and 8 (the
  # shipped reader's).
  weights=$(python3 scripts/answer_weight.py "$squad" "$out/eval-$arm/predictions.jsonl" --weights 0,8)
  marginal() { echo "$weights" | awk -F'|' -v w="$1" '$2 + 0 == w && $2 ~ /[0-9]/ {gsub(/ /, "", $4); print $4}'; }
  em0=$(marginal 0)
  em8=$(marginal 8)
  r5=$(python3 -c 'import json,sys; t=json.load(open(sys.argv[1])); r = dict((k, v) for k, v in t["recall"]); print("%.1f" % r[5])' "$out/eval-$arm/table.json")
  read -r base retriever <<<"$(flags "$arm" | awk '{print $2, ($3 == "--retriever-model") ? $4 : $2}')"
  echo "| $arm | $base | $retriever | $em0 | $em8 | $r5 |" >>"$out/table.md"
done
echo
cat "$out/table.md"
