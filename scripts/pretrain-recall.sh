#!/usr/bin/env bash
# Zero-shot retrieval of pre-trained embedders (issue #11's ablation column): each RUN's
# embedder/ (a finished `realm pretrain` run; `minilm` for the base all-MiniLM-L6-v2) indexes
# the demo corpus and retrieves for the open-QA sets with no fine-tuning; prints recall@5
# (answer in the top 5 passages) per set as a Markdown table, also written to
# target/pretrain-recall/skip-SKIP/table.md.
#
#   scripts/pretrain-recall.sh minilm runs/pt-salient runs/pt-random-span ...
#
# Sets: held-out SQuAD-open (2,777), NQ-open dev, WebQuestions test, CuratedTrec test (first
# LIMIT each, default 1000). SKIP=10033 indexes only the demo corpus's SQuAD paragraphs (the
# pre-training window; seconds instead of minutes) and retrieves for SQuAD alone. No reader loads (`--recall-only`). Indexes are kept in target/pretrain-recall/skip-SKIP/ and reused (MiniLM's
# with SKIP=0 is data/demo-corpus.int8.shard where that exists). Needs
# ../shared/data (or REALM_SHARED_DATA).
set -euo pipefail
cd "$(dirname "$0")/.."
S=${REALM_SHARED_DATA:-../shared/data}
[ $# -gt 0 ] || { echo "usage: scripts/pretrain-recall.sh minilm|RUN ..." >&2; exit 1; }
limit=${LIMIT:-1000}
skip=${SKIP:-0}
corpus=$S/demo-corpus/passages.jsonl
out=target/pretrain-recall/skip-$skip
mkdir -p "$out"
cargo build -q -p realm-native --bin realm
realm=target/debug/realm
sets=("squad-v1.1-dev/dev-v1.1.reconstructed.json" "nq-open/NQ-open.dev.jsonl"
  "webquestions/test.json" "curatedtrec/large2180-test.tsv")
if [ "$skip" != 0 ]; then sets=("${sets[0]}"); fi
{
  if [ "$skip" != 0 ]; then
    echo "| embedder | SQuAD held-out R@5 (passages from $skip) |"
    echo "|---|---|"
  else
    echo "| embedder | SQuAD held-out R@5 | NQ-open R@5 | WebQuestions R@5 | CuratedTrec R@5 |"
    echo "|---|---|---|---|---|"
  fi
} >"$out/table.md"
for run in "$@"; do
  if [ "$run" = minilm ]; then model=$S/all-minilm-l6-v2; name=minilm; else model=$run/embedder; name=$(basename "$run"); fi
  [ -d "$model" ] || { echo "pretrain-recall: $model is missing" >&2; exit 1; }
  index=$out/$name.int8.shard
  # MiniLM's is the demo's own index where setup built it.
  if [ "$name" = minilm ] && [ "$skip" = 0 ] && [ -f data/demo-corpus.int8.shard ]; then index=data/demo-corpus.int8.shard; fi
  [ -f "$index" ] || "$realm" index --model "$model" --corpus "$corpus" --skip "$skip" --out "$index"
  row="| $name |"
  for set in "${sets[@]}"; do
    split=()
    case $set in squad*) split=(--split held-out) ;; esac
    "$realm" eval --questions "$S/$set" "${split[@]}" --limit "$limit" --recall-only --retriever zero-shot \
      --model "$S/all-minilm-l6-v2" --retriever-model "$model" --corpus "$corpus" --index "$index" --out "$out/$name-$(dirname "$set")" >/dev/null 2>"$out/$name.log"
    r5=$(python3 -c 'import json,sys; t=json.load(open(sys.argv[1])); r = dict((k, v) for k, v in t["recall"]); print("%.1f" % r[5])' \
      "$out/$name-$(dirname "$set")/table.json")
    row="$row $r5 |"
  done
  echo "$row" >>"$out/table.md"
done
cat "$out/table.md"
