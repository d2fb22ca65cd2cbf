"""Bench data for the MIPS benchmarks, written once into OUT (raw little-endian f32, row-major,
with a JSON sidecar giving the shape), read by both our criterion bench and the peer script:

- synthetic_100k, synthetic_1m: unit Gaussian vectors (d = 128), 512 unit Gaussian queries;
- minilm_demo: all-MiniLM-L6-v2 sentence embeddings of the 12,100 demo-corpus passages, and of
  512 NQ-Open dev questions, projected to d = 128 on the passages' top singular vectors (as
  REALM projects BERT's [CLS] to 128 dimensions).

Usage: python make_data.py OUT SHARED_DATA
"""
import json
import os
import sys

import numpy as np

D = 128
QUERIES = 512


def save(out, name, docs, queries):
    docs = np.ascontiguousarray(docs, dtype="<f4")
    queries = np.ascontiguousarray(queries, dtype="<f4")
    docs.tofile(os.path.join(out, f"{name}.docs.f32"))
    queries.tofile(os.path.join(out, f"{name}.queries.f32"))
    meta = {"name": name, "n": int(docs.shape[0]), "queries": int(queries.shape[0]), "dim": int(docs.shape[1])}
    with open(os.path.join(out, f"{name}.json"), "w") as f:
        json.dump(meta, f)
    print(f"wrote {name}: {meta}", flush=True)


def unit(x):
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def synthetic(out):
    if os.path.exists(os.path.join(out, "synthetic_1m.json")):
        return
    rng = np.random.default_rng(20261127)
    docs = unit(rng.standard_normal((1_000_000, D), dtype=np.float32))
    queries = unit(rng.standard_normal((QUERIES, D), dtype=np.float32))
    save(out, "synthetic_100k", docs[:100_000], queries)
    save(out, "synthetic_1m", docs, queries)


def minilm(out, shared):
    if os.path.exists(os.path.join(out, "minilm_demo.json")):
        return
    import torch
    from transformers import AutoModel, AutoTokenizer

    torch.set_num_threads(2)
    model_dir = os.path.join(shared, "all-minilm-l6-v2")
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModel.from_pretrained(model_dir).eval()

    def embed(texts):
        rows = []
        for i in range(0, len(texts), 64):
            batch = tokenizer(texts[i : i + 64], padding=True, truncation=True, max_length=128, return_tensors="pt")
            with torch.no_grad():
                hidden = model(**batch).last_hidden_state
            mask = batch["attention_mask"].unsqueeze(-1).float()
            pooled = (hidden * mask).sum(1) / mask.sum(1)
            rows.append(torch.nn.functional.normalize(pooled, dim=-1).numpy())
            print(f"\rembedded {min(i + 64, len(texts))}/{len(texts)}", end="", file=sys.stderr, flush=True)
        print(file=sys.stderr)
        return np.concatenate(rows)

    with open(os.path.join(shared, "demo-corpus", "passages.jsonl")) as f:
        passages = [json.loads(line) for line in f]
    with open(os.path.join(shared, "nq-open", "NQ-open.dev.jsonl")) as f:
        questions = [json.loads(line)["question"] for line in f][:QUERIES]
    docs = embed([f"{p['title']}. {p['text']}" for p in passages])
    queries = embed(questions)
    # Top-128 right singular vectors of the (uncentred) passage matrix: inner products survive.
    _, _, vt = np.linalg.svd(docs, full_matrices=False)
    projection = vt[:D].T
    save(out, "minilm_demo", docs @ projection, queries @ projection)


if __name__ == "__main__":
    out, shared = sys.argv[1], sys.argv[2]
    os.makedirs(out, exist_ok=True)
    synthetic(out)
    minilm(out, shared)
