#!/usr/bin/env bash
# Builds the files the JavaScript tests answer from, and the native answers they must match,
# in target/web-demo/ (what a page would host):
#   model/    config.json, tokenizer.json, model.safetensors (all-MiniLM-L6-v2), reader.json,
#             reader.safetensors, query.json, query.safetensors (the shipped demo reader and
#             its fine-tuned question embedder, native/models/demo-reader)
#   reader-only/   the same without query.* (questions embedded with the base model)
#   passages.jsonl   1,003 passages of the demo corpus (its first 1,000 and the three the demo
#                    questions need), index.shard (`realm index --precision f32`: embedded
#                    in f32, stored int8 as every shard `realm index` writes by default)
#   demo.realm.tar   all of the above in one file (`realm bundle`)
#   demo-f16.realm.tar   the same with the base model's weights as F16 (`realm bundle --f16`)
#   native-answers.jsonl   `realm ask --json -k 5 --precision f32` on the five demo questions
#                    (f32, as the wasm engine computes; index.shard too)
#   native-answers-k1.jsonl   the same with -k 1 on the first of them
#   native-answers-zero-shot.jsonl   the first three of those questions from reader-only/
# Needs target/debug/realm (cargo build -p realm-native), and all-MiniLM-L6-v2 and the demo
# corpus in data/ (scripts/setup.sh --demo-data) or ../shared/data (or $REALM_SHARED_DATA).
# Usage: scripts/web-fixture.sh
set -euo pipefail
cd "$(dirname "$0")/.."

realm=target/debug/realm
out=target/web-demo
[ -x "$realm" ] || { echo "web-fixture: build realm first: cargo build -p realm-native" >&2; exit 1; }
base=data/all-minilm-l6-v2
shared=${REALM_SHARED_DATA:-../shared/data}
[ -f "$base/model.safetensors" ] || base=$shared/all-minilm-l6-v2
[ -f "$base/model.safetensors" ] || { echo "web-fixture: no all-MiniLM-L6-v2: run scripts/setup.sh --demo-data" >&2; exit 1; }
corpus=data/demo-corpus/passages.jsonl
[ -f "$corpus" ] || corpus=$shared/demo-corpus/passages.jsonl
[ -f "$corpus" ] || { echo "web-fixture: no demo corpus: run scripts/setup.sh --demo-data" >&2; exit 1; }

mkdir -p "$out/model" "$out/reader-only"
for f in config.json tokenizer.json model.safetensors; do
  ln -sf "$(realpath "$base/$f")" "$out/model/$f"
  ln -sf "$(realpath "$base/$f")" "$out/reader-only/$f"
done
for f in reader.json reader.safetensors query.json query.safetensors; do
  ln -sf "$(realpath "native/models/demo-reader/$f")" "$out/model/$f"
done
for f in reader.json reader.safetensors; do
  ln -sf "$(realpath "native/models/demo-reader/$f")" "$out/reader-only/$f"
done
reader=$out/model

passages=$out/passages.jsonl
{ head -n 1000 "$corpus"
  grep -E '"title": "(Canberra|Jupiter|World War II|Australia)"' "$corpus"; } > "$passages.partial"
mv "$passages.partial" "$passages"
if [ ! -f "$out/index.shard" ] || [ "$passages" -nt "$out/index.shard" ]; then
  "$realm" index --model "$base" --corpus "$passages" --out "$out/index.shard" --force --precision f32
fi
"$realm" bundle --model "$base" --reader "$reader" --corpus "$passages" \
  --index "$out/index.shard" --out "$out/demo.realm.tar" --force
"$realm" bundle --model "$base" --reader "$reader" --corpus "$passages" \
  --index "$out/index.shard" --out "$out/demo-f16.realm.tar" --force --f16
printf '%s\n' "Who painted the Mona Lisa?" "What is the capital of Australia?" "Who wrote Hamlet?" \
  "What is the largest planet in the solar system?" "When did the Second World War end?" \
  | "$realm" ask --json -k 5 --precision f32 --model "$base" --reader "$reader" \
      --corpus "$passages" --index "$out/index.shard" > "$out/native-answers.jsonl.partial"
mv "$out/native-answers.jsonl.partial" "$out/native-answers.jsonl"
printf '%s\n' "Who painted the Mona Lisa?" "What is the capital of Australia?" "Who wrote Hamlet?" \
  | "$realm" ask --json -k 5 --precision f32 --model "$base" --reader "$out/reader-only" \
      --corpus "$passages" --index "$out/index.shard" > "$out/native-answers-zero-shot.jsonl.partial"
mv "$out/native-answers-zero-shot.jsonl.partial" "$out/native-answers-zero-shot.jsonl"
# The first question from its top passage alone: what the WebGPU test reads on SwiftShader,
# where each passage read takes about 20 seconds.
echo "Who painted the Mona Lisa?" \
  | "$realm" ask --json -k 1 --precision f32 --model "$base" --reader "$reader" \
      --corpus "$passages" --index "$out/index.shard" > "$out/native-answers-k1.jsonl.partial"
mv "$out/native-answers-k1.jsonl.partial" "$out/native-answers-k1.jsonl"
echo "web-fixture: $(wc -l < "$passages") passages, answers in $out/native-answers.jsonl"
