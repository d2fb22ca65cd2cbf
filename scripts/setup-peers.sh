#!/usr/bin/env bash
# The Python peers our benchmarks compare against (faiss-cpu, hnswlib, PyTorch, transformers;
# onnx for the ONNX export the browser benchmark's onnxruntime-web runs),
# in a virtualenv of their own: scripts/setup-peers.sh [VENV] (default target/peer-venv).
# Not needed for the demo or the tests. PyTorch from PyPI is large (~5 GB with its CUDA wheels).
set -euo pipefail
cd "$(dirname "$0")/.."
venv=${1:-target/peer-venv}
if [ -x "$venv/bin/python" ] && "$venv/bin/python" -c "import faiss, hnswlib, torch, transformers, matplotlib, onnx" 2>/dev/null; then
  exit 0
fi
echo "setup-peers: creating $venv (faiss-cpu, hnswlib, torch, transformers, matplotlib, onnx)"
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/pip" install -q numpy==2.4.6 faiss-cpu==1.15.1 hnswlib==0.8.0 torch==2.15.0 transformers==5.24.0 matplotlib onnx==1.23.2
