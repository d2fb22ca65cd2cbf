#!/usr/bin/env bash
# REALM's fine-tuning on the paper's three open-QA sets (section 4.1): the SQuAD reader (the
# shipped model's first stage) trained on to NaturalQuestions-Open, WebQuestions and
# CuratedTrec questions, each read from the top 5 demo-corpus passages MiniLM retrieves for it,
# the answer strings (CuratedTrec's patterns) found there as gold spans (`realm finetune
# --questions ... --init-reader`), then scored on the set's test split. Training files, as
# core/src/qa/splits.rs writes them down: EfficientQA dev for NQ, trainmodel + val + devtest
# for WebQuestions (joined into one file here), large2180-train for CuratedTrec.
#
#   scripts/finetune-open-sets.sh [SET ...]      SET: nq, wq, trec (default: all three), nqwq, all
#
# nqwq trains on NQ's and WebQuestions' training questions together (one NQ-open JSON-lines
# file) and is scored on both test sets. all trains one reader on SQuAD's 36 training articles
# and the three sets' training files in one run (`--questions` four times; each open set named
# OPEN_WEIGHT times, 3 by default, so that its questions are drawn that much more often than
# SQuAD's, which the shipped reader has already learnt), 3 passages a question (a SQuAD
# question's paragraph and 2 retrieved; the top 3 for the others), and scores it on all four
# test sets (eval/ is SQuAD's held-out articles, eval-nq/, eval-wq/, eval-trec/).
#
# Each set's run goes to target/open-sets/SET/ (resumed where a previous call stopped; a
# finished one is only evaluated), with the shipped question embedder (query.*) copied beside
# its reader so that it retrieves as the shipped model does; `realm eval` writes
# target/open-sets/SET/eval/ (nqwq: eval/ for NQ, eval-wq/ for WebQuestions). STEPS_nq,
# STEPS_wq, STEPS_trec, STEPS_nqwq (200, 400, 250, 500: two to four epochs of the questions
# with an answer in their top 5), STEPS_all (1000), OPEN_WEIGHT (3) and LR (3e-5) change the
# recipe. Needs ../shared/data (or REALM_SHARED_DATA), data/demo-corpus (and for all
# data/squad-v1.1-dev/dev-v1.1.json: scripts/setup.sh --demo-data), python3, and the git
# history back to f5f57d3; builds data/demo-corpus.int8.shard (as scripts/demo.sh does) when
# it is not there yet.
set -euo pipefail
cd "$(dirname "$0")/.."
S=${REALM_SHARED_DATA:-../shared/data}
sets=("$@")
[ ${#sets[@]} -gt 0 ] || sets=(nq wq trec)
lr=${LR:-3e-5}
open_weight=${OPEN_WEIGHT:-3}
[[ $open_weight =~ ^[1-9][0-9]*$ ]] || { echo "finetune-open-sets: OPEN_WEIGHT must be a whole number from 1, not $open_weight" >&2; exit 2; }
out=target/open-sets
mkdir -p "$out"
cargo build -q -p realm-native --bin realm
cp target/debug/realm "$out/realm.new" && mv "$out/realm.new" "$out/realm" # later builds cannot swap it mid-run
realm=$out/realm
[ -f data/demo-corpus.int8.shard ] ||
  "$realm" index --corpus data/demo-corpus/passages.jsonl --out data/demo-corpus.int8.shard
shipped=native/models/demo-reader
# Every run starts from the SQuAD reader that shipped until 2026-12-07 (the model card's stage
# 1; the `all` run's reader ships since), taken from git so that the README's rows reproduce.
init=$out/squad-reader
if [ ! -f "$init/reader.json" ]; then
  git cat-file -e f5f57d3:native/models/demo-reader/reader.safetensors 2>/dev/null || {
    echo "finetune-open-sets: the SQuAD reader every run starts from is native/models/demo-reader at commit f5f57d3, which this clone lacks (a shallow clone?): git fetch --unshallow" >&2
    exit 1
  }
  mkdir -p "$init.partial"
  for f in reader.json reader.safetensors; do
    git show "f5f57d3:native/models/demo-reader/$f" > "$init.partial/$f"
  done
  rm -rf "$init" && mv "$init.partial" "$init"
fi

wq_train() { # WebQuestions' three training files as one JSON array
  [ ! -f "$out/wq-train.json" ] || return 0
  python3 -c '
import json, sys
rows = [q for f in sys.argv[2:] for q in json.load(open(f))]
json.dump(rows, open(sys.argv[1] + ".partial", "w"))
' "$out/wq-train.json" "$S"/webquestions/{trainmodel,val,devtest}.json
  mv "$out/wq-train.json.partial" "$out/wq-train.json"
}

evaluate() { # NAME FILE: $run/eval/ (NAME empty) or $run/eval-NAME/, kept once finished
  local dir=$run/eval${1:+-$1}
  [ -f "$dir/table.json" ] || "$realm" eval --questions "$2" --reader "$run" --out "$dir"
}

nq_train=$S/nq-open/NQ-open.efficientqa.dev.1.1.jsonl
trec_train=$S/curatedtrec/large2180-train.tsv
for set in "${sets[@]}"; do
  also=() # nqwq: a second test set (NAME FILE)
  more=() # all: the other training files' flags
  negatives=5
  case $set in
    nq) train=$nq_train; test=$S/nq-open/NQ-open.dev.jsonl; steps=${STEPS_nq:-200} ;;
    wq) train=$out/wq-train.json; test=$S/webquestions/test.json; steps=${STEPS_wq:-400}; wq_train ;;
    all) wq_train; negatives=2; steps=${STEPS_all:-1000}
         train=data/squad-v1.1-dev/dev-v1.1.json; test=$train
         for _ in $(seq "$open_weight"); do
           more+=(--questions "$nq_train" --questions "$out/wq-train.json" --questions "$trec_train")
         done ;;
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
    trec) train=$trec_train; test=$S/curatedtrec/large2180-test.tsv; steps=${STEPS_trec:-250} ;;
    *) echo "finetune-open-sets: unknown set $set (nq, wq, trec, nqwq or all)" >&2; exit 2 ;;
  esac
  run=$out/$set
  if [ ! -f "$run/reader.json" ]; then
    if [ -f "$run/args.json" ]; then
      "$realm" finetune --resume "$run"
    else
      "$realm" finetune --out "$run" --questions "$train" "${more[@]}" --init-reader "$init" \
        --index data/demo-corpus.int8.shard --corpus data/demo-corpus/passages.jsonl \
        --negatives "$negatives" --batch 4 --steps "$steps" --lr "$lr" --checkpoint-every 50
    fi
  fi
  cp "$shipped"/query.json "$shipped"/query.safetensors "$run/"
  evaluate "" "$test"
  if [ "$set" = all ]; then
    evaluate nq "$S/nq-open/NQ-open.dev.jsonl"
    evaluate wq "$S/webquestions/test.json"
    evaluate trec "$S/curatedtrec/large2180-test.tsv"
  elif [ ${#also[@]} -gt 0 ]; then
    evaluate "${also[0]}" "${also[1]}"
  fi
done
