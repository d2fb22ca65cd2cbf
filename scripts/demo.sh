#!/usr/bin/env bash
# README's main job: installs what is needed (scripts/setup.sh --demo-data: the tools, the
# all-MiniLM-L6-v2 weights and the demo corpus: 10,033 Wikipedia leads and SQuAD dev's 2,067
# paragraphs), builds `realm` (cargo shows its progress; the first build takes 10-20 minutes
# on two cores), indexes the corpus once (data/demo-corpus.int8.shard, reused by later runs),
# then answers questions with `realm ask` and the trained reader the repo ships
# (native/models/demo-reader).
#
#   scripts/demo.sh                      five example questions
#   scripts/demo.sh -q "Who wrote Hamlet?" [-q ...]
#   scripts/demo.sh --json -k 10 -q "..." other flags go to `realm ask` (see `realm ask --help`)
set -euo pipefail
cd "$(dirname "$0")/.."

questions=()
flags=()
while [ $# -gt 0 ]; do
  case $1 in
    -q|--question) [ $# -ge 2 ] || { echo "demo.sh: $1 needs a question" >&2; exit 2; }
                   questions+=("$2"); shift 2 ;;
    -h|--help) sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) flags+=("$1"); shift ;;
  esac
done
# Questions whose answer the demo corpus holds (it names no capital of Australia, nor when the
# Second World War ended, the two questions these replaced): a reader answers from what it
# retrieves, and from nothing else.
if [ ${#questions[@]} -eq 0 ]; then
  questions=("Who painted the Mona Lisa?" "Who wrote Hamlet?"
             "What is the largest planet in the solar system?"
             "Who developed the theory of relativity?" "What is the highest mountain on Earth?")
fi

scripts/setup.sh --demo-data >&2
printf '\n==> demo: building realm\n' >&2
cargo build -p realm-native >&2
realm=target/debug/realm
# Mesa's window-system code complains on every GPU adapter request without one.
export XDG_RUNTIME_DIR=${XDG_RUNTIME_DIR:-$(mktemp -d)}
if [ ! -f data/demo-corpus.int8.shard ]; then
  printf '\n==> demo: indexing the 12,100 passages of the demo corpus once (a few minutes)\n' >&2
  "$realm" index --corpus data/demo-corpus/passages.jsonl --out data/demo-corpus.int8.shard >&2
fi
printf '\n==> demo: realm ask\n' >&2
printf '%s\n' "${questions[@]}" | "$realm" ask "${flags[@]}"
