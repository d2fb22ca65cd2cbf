#!/usr/bin/env bash
# REALM's fine-tuning on the paper's three open-QA sets (section 4.1): the shipped SQuAD reader
# trained on to NaturalQuestions-Open, WebQuestions and CuratedTrec questions, each read from
# the top 5 demo-corpus passages MiniLM retrieves for it, the answer strings (CuratedTrec's
# patterns) found there as gold spans (`realm finetune --questions ... --init-reader`), then
# scored on the set's test split beside the shipped reader. Training files, as
# core/src/qa/splits.rs writes them down: EfficientQA dev for NQ, trainmodel + val + devtest
# for WebQuestions (joined into one file here), large2180-train for CuratedTrec.
#
#   scripts/finetune-open-sets.sh [SET ...]      SET: nq, wq, trec (default: all three), nqwq
#
# nqwq trains on NQ's and WebQuestions' training questions together (one NQ-open JSON-lines
# file) and is scored on both test sets.
#
# Each set's run goes to target/open-sets/SET/ (resumed where a previous call stopped; a
# finished one is only evaluated), with the shipped question embedder (query.*) copied beside
# its reader so that it retrieves as the shipped model does; `realm eval` writes
# target/open-sets/SET/eval/ (nqwq: eval/ for NQ, eval-wq/ for WebQuestions). STEPS_nq,
# STEPS_wq, STEPS_trec, STEPS_nqwq (200, 400, 250, 500: two to four epochs of the questions
# with an answer in their top 5) and LR (3e-5) change the recipe. Needs
# ../shared/data (or REALM_SHARED_DATA), data/demo-corpus.int8.shard and python3.
set -euo pipefail
cd "$(dirname "$0")/.."
S=${REALM_SHARED_DATA:-../shared/data}
sets=("$@")
[ ${#sets[@]} -gt 0 ] || sets=(nq wq trec)
lr=${LR:-3e-5}
out=target/open-sets
mkdir -p "$out"
cargo build -q -p realm-native --bin realm
cp target/debug/realm "$out/realm.new" && mv "$out/realm.new" "$out/realm" # later builds cannot swap it mid-run
realm=$out/realm
shipped=native/models/demo-reader

wq_train() { # WebQuestions' three training files as one JSON array
  [ ! -f "$out/wq-train.json" ] || return 0
  python3 -c '
import json, sys
rows = [q for f in sys.argv[2:] for q in json.load(open(f))]
json.dump(rows, open(sys.argv[1] + ".partial", "w"))
' "$out/wq-train.json" "$S"/webquestions/{trainmodel,val,devtest}.json
  mv "$out/wq-train.json.partial" "$out/wq-train.json"
}

for set in "${sets[@]}"; do
  also=()
  case $set in
    nq) train=$S/nq-open/NQ-open.efficientqa.dev.1.1.jsonl; test=$S/nq-open/NQ-open.dev.jsonl; steps=${STEPS_nq:-200} ;;
    wq) train=$out/wq-train.json; test=$S/webquestions/test.json; steps=${STEPS_wq:-400}; wq_train ;;
    nqwq) train=$out/nqwq-train.jsonl; test=$S/nq-open/NQ-open.dev.jsonl; steps=${STEPS_nqwq:-500}
          also=(wq "$S/webquestions/test.json"); wq_train
          if [ ! -f "$train" ]; then
            { cat "$S/nq-open/NQ-open.efficientqa.dev.1.1.jsonl"
              python3 -c '
import json, sys
for q in json.load(open(sys.argv[1])):
    print(json.dumps({"question": q["qText"], "answer": q["answers"]}))
' "$out/wq-train.json"; } > "$train.partial"
            mv "$train.partial" "$train"
          fi ;;
    trec) train=$S/curatedtrec/large2180-train.tsv; test=$S/curatedtrec/large2180-test.tsv; steps=${STEPS_trec:-250} ;;
    *) echo "finetune-open-sets: unknown set $set (nq, wq or trec)" >&2; exit 2 ;;
  esac
  run=$out/$set
  if [ ! -f "$run/reader.json" ]; then
    if [ -f "$run/args.json" ]; then
      "$realm" finetune --resume "$run"
    else
      "$realm" finetune --out "$run" --questions "$train" --init-reader "$shipped" \
        --index data/demo-corpus.int8.shard --corpus data/demo-corpus/passages.jsonl \
        --negatives 5 --batch 4 --steps "$steps" --lr "$lr" --checkpoint-every 50
    fi
  fi
  cp "$shipped"/query.json "$shipped"/query.safetensors "$run/"
  "$realm" eval --questions "$test" --reader "$run" --out "$run/eval"
  if [ ${#also[@]} -gt 0 ]; then
    "$realm" eval --questions "${also[1]}" --reader "$run" --out "$run/eval-${also[0]}"
  fi
done
