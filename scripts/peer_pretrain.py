"""The PyTorch peer of realm-rs's REALM pre-training step, for scripts/bench-pretrain.sh.

Two jobs, each on one thread unless told otherwise:

  train    runs the `realm pretrain` step with transformers' REALM classes (`RealmEmbedder`
           for Embed_input and Embed_doc, one network for both as ours; `RealmKnowledgeAugEncoder`
           for p(y|z,x) and its marginal loss) on the micro-batches `realm pretrain
           --dump-batches` wrote, in the same order and shapes, and prints one JSON line per
           step: {"step", "loss", "grad_norm", "lr", "seconds": {"data", "retrieval",
           "embed_candidates", "encoder", "backward", "optimizer", "total"}}. Per micro-batch:
             retrieval         the b queries through the embedder WITH gradient (REALM trains
                               Embed_input), then a faiss IndexFlatIP search for `search_depth`
                               hits among `index_rows` random unit vectors of dim 384 (built
                               once, before any timing; the hits are thrown away: the
                               candidates are the ones our run retrieved, from the file);
             embed_candidates  the b*(k-1) candidates through the same embedder, with gradient;
                               f(x,z) = scale * q.d, f(x,null) = 0 first: relevance [b, k];
             encoder           RealmKnowledgeAugEncoder over the b*k rows with
                               relevance_score [b, k], labels [b, seq] (-100 but at the masked
                               positions) and mlm_mask [b, seq], its own loss;
           then backward; per step global-norm clipping, BERT's AdamW groups (eps 1e-6, decay
           0.01 but LayerNorm and biases) and realm's linear warm-up and decay.
  refresh  the index refresh: embeds the first N passages ("title. text", as realm's
           Passage::embedding_text) with transformers' BertModel and mean pooling, L2
           normalised, under torch.no_grad, in batches of 16 at most 128 wordpieces (shortest
           first, as realm's embed_passages), then faiss IndexFlatIP.add; prints passages/s.

The model: RealmConfig with all-MiniLM-L6-v2's sizes (vocab 30522, hidden 384, 6 layers, 12
heads, intermediate 1536, 512 positions, 2 token types) and retriever_proj_size 384, so the
index is 384 wide as ours. MiniLM's BERT weights go into both networks' `realm.*` BERT (its
pooler included); the embedder's projection (cls.dense, cls.LayerNorm) and the encoder's
masked-LM transform are fresh (BERT's initialisation, seed --seed), the decoder tied to the
word embeddings; dropout 0, as ours trains.

Where the peer is not ours, by design (it is REALM as transformers ships it):
  - RealmEmbedder pools BERT's [CLS] pooler output and projects it (dense + LayerNorm);
    ours mean-pools MiniLM with no projection. The peer L2-normalises the projection so
    f = scale * q.d has ours's range; the normalisation is two cheap ops;
  - RealmKnowledgeAugEncoder scores the vocabulary at every position of every row
    ([b*k, seq, 30522] logits, and their cross-entropy); ours only at the masked positions;
  - transformers' REALM attention is eager only (no SDPA);
  - ours tokenises inside its phases (candidates in embed_candidates, encoder rows in
    encoder) and filters the hits (own passage, verbatim copies); the peer reads the token
    ids from the file; its "data" phase is only building tensors from them.

Needs the peer virtualenv and transformers 4.57.6 (the last with REALM) first on PYTHONPATH:
scripts/setup-peers.sh, then PYTHONPATH=target/peer-realm-lib target/peer-venv/bin/python ...
"""

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file

from peer_reader import lr_at  # core/src/train/schedule.rs `lr_at`, shared with the reader's peer


def realm_classes():
    try:
        from transformers import RealmConfig, RealmEmbedder, RealmKnowledgeAugEncoder
    except ImportError as e:
        import transformers

        raise SystemExit(
            f"transformers {transformers.__version__} has no REALM ({e}): put transformers 4.57.6 "
            "first on PYTHONPATH (scripts/setup-peers.sh installs it in target/peer-realm-lib)"
        )
    return RealmConfig, RealmEmbedder, RealmKnowledgeAugEncoder


def realm_config(model_dir, candidates):
    RealmConfig, _, _ = realm_classes()
    bert = json.loads((Path(model_dir) / "config.json").read_text())
    return RealmConfig(
        vocab_size=bert["vocab_size"],
        hidden_size=bert["hidden_size"],
        retriever_proj_size=bert["hidden_size"],  # 384: the width of our index
        num_hidden_layers=bert["num_hidden_layers"],
        num_attention_heads=bert["num_attention_heads"],
        num_candidates=candidates,
        intermediate_size=bert["intermediate_size"],
        hidden_act=bert["hidden_act"],
        hidden_dropout_prob=0.0,  # realm pretrain trains without dropout
        attention_probs_dropout_prob=0.0,
        max_position_embeddings=bert["max_position_embeddings"],
        type_vocab_size=bert["type_vocab_size"],
        layer_norm_eps=bert["layer_norm_eps"],
        pad_token_id=bert.get("pad_token_id", 0),
    )


def load_bert(model, bert, fresh):
    """MiniLM's BertModel tensors into `model.realm.*`; every missing tensor must start with one
    of `fresh` (the heads, left as the model initialised them)."""
    state = {
        f"realm.{name}": t for name, t in bert.items() if not name.endswith("position_ids")
    }
    missing, unexpected = model.load_state_dict(state, strict=False)
    left = [m for m in missing if not m.startswith(fresh)]
    if left or unexpected:
        raise SystemExit(f"MiniLM does not fit {type(model).__name__}: missing {left}, unexpected {unexpected}")


def build_models(model_dir, candidates, seed):
    _, RealmEmbedder, RealmKnowledgeAugEncoder = realm_classes()
    config = realm_config(model_dir, candidates)
    bert = load_file(str(Path(model_dir) / "model.safetensors"))
    torch.manual_seed(seed)
    embedder = RealmEmbedder(config)
    load_bert(embedder, bert, ("cls.",))
    encoder = RealmKnowledgeAugEncoder(config)
    load_bert(encoder, bert, ("cls.predictions.",))
    decoder = encoder.get_output_embeddings().weight
    if decoder.data_ptr() != encoder.get_input_embeddings().weight.data_ptr():
        raise SystemExit("the encoder's decoder is not tied to its word embeddings")
    with torch.no_grad():
        encoder.cls.predictions.bias.zero_()  # as ours (and BERT) start it
    return embedder.train(), encoder.train()


def tensors(part):
    return {
        key: torch.tensor(part[key], dtype=torch.long)
        for key in ("input_ids", "token_type_ids", "attention_mask")
    }


def prepare(batch):
    """The micro-batch's tensors: queries, candidates, encoder rows [b, k, seq], and labels and
    mlm_mask [b, seq] as RealmKnowledgeAugEncoder takes them (the target wordpiece at each
    masked position of the query, the same in all k rows)."""
    k, targets = batch["candidates_per_query"], batch["targets"]
    rows = tensors(batch["rows"])
    flat, seq = rows["input_ids"].shape
    b = flat // k
    rows = {key: v.view(b, k, seq) for key, v in rows.items()}
    positions = torch.tensor(batch["positions"], dtype=torch.long).view(b, k, targets)
    if not bool((positions == positions[:, :1]).all()):
        raise SystemExit(f"micro-batch {batch['position']}: a query's masked positions differ between its rows")
    labels = torch.tensor(batch["labels"], dtype=torch.long).view(b, targets)
    full = torch.full((b, seq), -100, dtype=torch.long)
    used = labels != -100
    full[torch.arange(b).unsqueeze(1).expand(b, targets)[used], positions[:, 0][used]] = labels[used]
    out = {"b": b, "k": k, "rows": rows, "labels": full, "mlm_mask": (full != -100).long()}
    if k > 1:
        out["queries"] = tensors(batch["queries"])
        out["candidates"] = tensors(batch["candidates"])
    return out


def embed(embedder, inputs):
    """RealmEmbedder's projected score, L2-normalised (see the module's docstring)."""
    return torch.nn.functional.normalize(embedder(**inputs).projected_score, dim=-1)


def train(args):
    import faiss

    faiss.omp_set_num_threads(args.threads)
    batches = [json.loads(l) for l in open(args.batches) if l.strip()]
    if not batches:
        raise SystemExit(f"{args.batches} has no micro-batch")
    k = batches[0]["candidates_per_query"]
    embedder, encoder = build_models(args.model, k, args.seed)
    params = {}
    for model in (embedder, encoder):
        for name, p in model.named_parameters():
            params.setdefault(id(p), (name, p))  # tied tensors once
    decay = [p for n, p in params.values() if not (n.endswith("bias") or "LayerNorm" in n)]
    no_decay = [p for n, p in params.values() if n.endswith("bias") or "LayerNorm" in n]
    optim = torch.optim.AdamW(
        [{"params": decay, "weight_decay": 0.01}, {"params": no_decay, "weight_decay": 0.0}],
        lr=args.lr,
        eps=1e-6,
    )
    all_params = [p for _, p in params.values()]

    index = None
    if k > 1:
        rows, dim = batches[0]["index_rows"], embedder.config.retriever_proj_size
        vectors = np.random.default_rng(args.seed).standard_normal((rows, dim), dtype=np.float32)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        index = faiss.IndexFlatIP(dim)
        index.add(vectors)

    steps = {}
    for batch in batches:
        steps.setdefault(batch["position"] // args.accumulate, []).append(batch)
    chosen = sorted(steps)[: args.steps] if args.steps else sorted(steps)
    total_steps = args.total_steps or len(chosen)
    warmup = round(args.warmup * total_steps)
    optim.zero_grad(set_to_none=True)
    for step in chosen:
        lr = lr_at(step, args.lr, warmup, total_steps)
        for g in optim.param_groups:
            g["lr"] = lr
        seconds = dict.fromkeys(
            ("data", "retrieval", "embed_candidates", "encoder", "backward", "optimizer"), 0.0
        )
        loss_sum = 0.0
        started = time.perf_counter()
        for batch in steps[step]:
            t = time.perf_counter()
            m = prepare(batch)
            b, k = m["b"], m["k"]
            seconds["data"] += time.perf_counter() - t

            t = time.perf_counter()
            if k > 1:
                query = embed(embedder, m["queries"])  # [b, 384], with gradient
                index.search(query.detach().numpy(), batch["search_depth"])
                seconds["retrieval"] += time.perf_counter() - t

                t = time.perf_counter()
                docs = embed(embedder, m["candidates"]).view(b, k - 1, -1)  # [b, k-1, 384]
                retrieved = batch["scale"] * torch.einsum("bd,bnd->bn", query, docs)
                relevance = torch.cat([torch.zeros(b, 1), retrieved], dim=1)  # [b, k]
                seconds["embed_candidates"] += time.perf_counter() - t
            else:
                relevance = torch.zeros(b, 1)

            t = time.perf_counter()
            out = encoder(
                **m["rows"], relevance_score=relevance, labels=m["labels"], mlm_mask=m["mlm_mask"]
            )
            loss = out.loss / args.accumulate
            value = loss.item()
            seconds["encoder"] += time.perf_counter() - t
            if not np.isfinite(value):
                raise SystemExit(f"step {step}: the loss is {value}")
            loss_sum += value

            t = time.perf_counter()
            loss.backward()
            seconds["backward"] += time.perf_counter() - t

        t = time.perf_counter()
        norm = torch.nn.utils.clip_grad_norm_(all_params, args.clip)
        optim.step()
        optim.zero_grad(set_to_none=True)
        seconds["optimizer"] = time.perf_counter() - t
        seconds["total"] = time.perf_counter() - started
        print(json.dumps({"step": step, "loss": loss_sum, "grad_norm": float(norm), "lr": lr,
                          "seconds": seconds}), flush=True)


def read_corpus(path, limit):
    text = Path(path).read_text()
    if str(path).endswith(".jsonl"):
        passages = [json.loads(l) for l in text.splitlines() if l.strip()]
    else:
        passages = [{"title": t, "text": v["extract"]} for t, v in json.loads(text).items()]
    return passages[:limit] if limit else passages


def refresh(args):
    import faiss
    from transformers import BertModel, BertTokenizerFast
    from transformers.utils import logging

    logging.set_verbosity_error()  # not "some weights were not used" for MiniLM's pooler

    faiss.omp_set_num_threads(args.threads)
    tokenizer = BertTokenizerFast.from_pretrained(args.model)
    bert = BertModel.from_pretrained(args.model, add_pooling_layer=False).eval()
    passages = read_corpus(args.corpus, args.limit)
    texts = [f"{p['title']}. {p['text']}" if p.get("title") else p["text"] for p in passages]
    order = sorted(range(len(passages)), key=lambda i: len(passages[i]["text"].encode()))
    dim = bert.config.hidden_size
    vectors = np.zeros((len(passages), dim), dtype=np.float32)
    started = time.perf_counter()
    with torch.no_grad():
        for at in range(0, len(order), args.batch):
            chunk = order[at : at + args.batch]
            enc = tokenizer([texts[i] for i in chunk], truncation=True, max_length=args.max_length,
                            padding=True, return_tensors="pt")
            hidden = bert(**enc).last_hidden_state
            mask = enc["attention_mask"].unsqueeze(-1).float()
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp_min(1e-9)
            vectors[chunk] = torch.nn.functional.normalize(pooled, dim=-1).numpy()
    embedded = time.perf_counter()
    index = faiss.IndexFlatIP(dim)
    index.add(vectors)
    done = time.perf_counter()
    print(json.dumps({
        "passages": len(passages),
        "index_rows": index.ntotal,
        "passages_per_s": len(passages) / (done - started),
        "seconds": {"embed": embedded - started, "add": done - embedded, "total": done - started},
    }), flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=1)
    sub = parser.add_subparsers(dest="job", required=True)
    t = sub.add_parser("train")
    t.add_argument("--batches", required=True, help="the file `realm pretrain --dump-batches` wrote")
    t.add_argument("--model", required=True, help="the base BERT directory (all-MiniLM-L6-v2)")
    t.add_argument("--steps", type=int, default=0, help="steps to run (0: every step in --batches)")
    t.add_argument("--total-steps", type=int, default=0, help="the schedule's length (0: --steps)")
    t.add_argument("--accumulate", type=int, default=1, help="micro-batches a step, as the run had")
    t.add_argument("--lr", type=float, default=1e-4)
    t.add_argument("--warmup", type=float, default=0.1)
    t.add_argument("--clip", type=float, default=1.0)
    t.add_argument("--seed", type=int, default=1)
    r = sub.add_parser("refresh")
    r.add_argument("--model", required=True)
    r.add_argument("--corpus", required=True)
    r.add_argument("--limit", type=int, default=2000, help="the first N passages (0: all)")
    r.add_argument("--max-length", type=int, default=128)
    r.add_argument("--batch", type=int, default=16)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    {"train": train, "refresh": refresh}[args.job](args)


if __name__ == "__main__":
    main()
