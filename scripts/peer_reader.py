"""The PyTorch peer of realm-rs's span reader, for scripts/bench-qa.sh.

Two jobs, each on one thread unless told otherwise:

  train  trains the same reader (transformers' BertModel from the base MiniLM, the span head
         of core/src/model/reader.rs, REALM's marginal loss shared over each question's
         passages, BERT's AdamW groups, linear warm-up and decay, global-norm clipping, frozen
         word embeddings, no dropout) on the micro-batches `realm finetune --dump-batches`
         wrote, and prints one JSON line per step (loss, seconds).
  ask    answers questions the way `realm ask` does (mean-pooled MiniLM question embedding,
         exact inner-product search in faiss over the vectors of a realm index shard, the
         trained reader from native/models/demo-reader over the top passages) and prints one
         JSON line per question (answer, seconds).

Both need the peer virtualenv: scripts/setup-peers.sh.
"""

import argparse
import json
import struct
import sys
import time
import zlib
from pathlib import Path

import numpy as np
import torch
from safetensors.numpy import load_file
from transformers import BertConfig, BertModel, BertTokenizerFast


class SpanReader(torch.nn.Module):
    """core/src/model/reader.rs in PyTorch: start and end projections summed for every span
    of at most `width` wordpieces, ReLU, LayerNorm, one logit; spans leaving the passage get
    the lowest logit."""

    def __init__(self, bert, span_hidden=256, eps=1e-3, width=10):
        super().__init__()
        self.bert = bert
        hidden = bert.config.hidden_size
        self.dense_intermediate = torch.nn.Linear(hidden, 2 * span_hidden)
        self.dense_output = torch.nn.Linear(span_hidden, 1)
        self.layer_norm = torch.nn.LayerNorm(span_hidden, eps=eps)
        self.width = width

    def candidates(self, seq):
        starts, ends = [], []
        for w in range(1, min(self.width, seq) + 1):
            for s in range(seq - w + 1):
                starts.append(s)
                ends.append(s + w - 1)
        return torch.tensor(starts), torch.tensor(ends)

    def forward(self, ids, type_ids, attention, passage):
        hidden = self.bert(
            input_ids=ids, token_type_ids=type_ids, attention_mask=attention
        ).last_hidden_state
        start, end = self.dense_intermediate(hidden).chunk(2, dim=-1)
        starts, ends = self.candidates(ids.shape[1])
        spans = start[:, starts] + end[:, ends]
        logits = self.dense_output(self.layer_norm(torch.relu(spans))).squeeze(-1)
        inside = passage[:, starts] & passage[:, ends]
        logits = logits.masked_fill(~inside, torch.finfo(logits.dtype).min)
        return logits, starts, ends


def base_bert(model_dir):
    config = BertConfig.from_json_file(str(Path(model_dir) / "config.json"))
    config.hidden_dropout_prob = 0.0  # realm finetune trains without dropout
    config.attention_probs_dropout_prob = 0.0
    return BertModel.from_pretrained(model_dir, config=config, add_pooling_layer=False)


def pad(rows, min_seq):
    seq = max(min_seq, max(len(r["ids"]) for r in rows))
    ids = torch.zeros(len(rows), seq, dtype=torch.long)
    type_ids = torch.zeros_like(ids)
    attention = torch.zeros_like(ids)
    passage = torch.zeros(len(rows), seq, dtype=torch.bool)
    for i, r in enumerate(rows):
        n = len(r["ids"])
        ids[i, :n] = torch.tensor(r["ids"])
        type_ids[i, :n] = torch.tensor(r["type_ids"])
        attention[i, :n] = 1
        passage[i, :n] = torch.tensor(r["passage"], dtype=torch.bool)
    return ids, type_ids, attention, passage


def shared_span_loss(logits, starts, ends, gold, group):
    """-log sum over gold spans of the softmax over all spans of a question's passages, mean
    over questions with a gold span (core/src/train/reader.rs `span_loss`)."""
    rows, spans = logits.shape
    mask = torch.zeros(rows, spans, dtype=torch.bool)
    index = {(int(s), int(e)): k for k, (s, e) in enumerate(zip(starts, ends))}
    for r, row_gold in enumerate(gold):
        for s, e in row_gold:
            if (s, e) in index:
                mask[r, index[(s, e)]] = True
    logits = logits.reshape(rows // group, group * spans)
    mask = mask.reshape(rows // group, group * spans)
    used = mask.any(dim=1)
    correct = logits.masked_fill(~mask, -1e30).logsumexp(dim=1)
    loss = (logits.logsumexp(dim=1) - correct)[used]
    return loss.mean()


def lr_at(step, peak, warmup, total):
    """core/src/train/schedule.rs `lr_at`."""
    if step >= total:
        return 0.0
    if step < warmup:
        return peak * (step + 1) / warmup
    return peak * (total - step) / max(total - warmup, 1)


def train(args):
    torch.manual_seed(args.seed)
    reader = SpanReader(base_bert(args.model))
    reader.bert.embeddings.word_embeddings.weight.requires_grad_(False)
    reader.train()
    decay, no_decay = [], []
    for name, p in reader.named_parameters():
        if not p.requires_grad:
            continue
        (no_decay if name.endswith("bias") or "LayerNorm" in name or "layer_norm" in name else decay).append(p)
    optim = torch.optim.AdamW(
        [{"params": decay, "weight_decay": 0.01}, {"params": no_decay, "weight_decay": 0.0}],
        lr=args.lr,
        eps=1e-6,
    )
    warmup = round(args.warmup * args.total_steps)
    lines = open(args.batches).read().splitlines()
    steps = {}
    for line in lines:
        batch = json.loads(line)
        steps.setdefault(batch["step"], []).append(batch)
    for step in sorted(steps)[: args.steps]:
        started = time.perf_counter()
        lr = lr_at(step, args.lr, warmup, args.total_steps)
        for g in optim.param_groups:
            g["lr"] = lr
        optim.zero_grad()
        micro = steps[step]
        total = 0.0
        for batch in micro:
            ids, type_ids, attention, passage = pad(batch["rows"], 10)
            logits, starts, ends = reader(ids, type_ids, attention, passage)
            loss = shared_span_loss(
                logits, starts, ends, [r["gold"] for r in batch["rows"]], batch["group"]
            ) / len(micro)
            loss.backward()
            total += loss.item()
        norm = torch.nn.utils.clip_grad_norm_(
            [p for p in reader.parameters() if p.requires_grad], args.clip
        )
        optim.step()
        seconds = time.perf_counter() - started
        print(json.dumps({"step": step, "loss": total, "grad_norm": float(norm), "seconds": seconds}), flush=True)
    if args.save:
        save_as_ours(reader, args.model, args.save)


def save_as_ours(reader, model_dir, out):
    """Writes the trained reader as `realm` ships one (reader.safetensors in core's module
    paths and burn's [in, out] linears, F16, every tensor but the word embeddings, and
    reader.json with its sha256), so `realm eval --reader OUT` scores it with our code."""
    import hashlib
    from safetensors.numpy import save
    rename = {
        "attention.output.LayerNorm": "attention_layer_norm",
        "attention.output.dense": "attention_output",
        "intermediate.dense": "intermediate",
        "output.dense": "output",
        "output.LayerNorm": "output_layer_norm",
        "attention.self.query": "query",
        "attention.self.key": "key",
        "attention.self.value": "value",
    }
    tensors = {}
    for name, value in reader.state_dict().items():
        if name.endswith("word_embeddings.weight") or "position_ids" in name:
            continue
        t = value.detach().float()
        parts = name.split(".")
        leaf = parts[-1]
        module = ".".join(parts[:-1])
        is_norm = "LayerNorm" in module or module == "layer_norm"
        if is_norm:
            leaf = {"weight": "gamma", "bias": "beta"}[leaf]
        if module.startswith("bert.encoder.layer."):
            layer = parts[3]
            inner = ".".join(parts[4:-1])
            target = f"bert.layers.{layer}.{rename[inner]}.{leaf}"
        elif module.startswith("bert.embeddings."):
            sub = parts[2]
            target = f"bert.embeddings.{'layer_norm' if sub == 'LayerNorm' else sub}.{leaf}"
        else:
            target = f"{module}.{leaf}"
        if leaf == "weight" and t.dim() == 2 and "embeddings" not in target:
            t = t.t()
        tensors[target] = t.contiguous().numpy().astype(np.float16)
    data = save(tensors)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "reader.safetensors").write_bytes(data)
    base = hashlib.sha256((Path(model_dir) / "model.safetensors").read_bytes()).hexdigest()
    card = {
        "base_sha256": base,
        "sha256": hashlib.sha256(data).hexdigest(),
        "head_seed": 1,
        "reader": {"span_hidden_size": 256, "max_span_width": 10, "reader_layer_norm_eps": 0.001,
                   "reader_beam_size": 5, "reader_seq_len": 320},
        "max_length": 256,
        "trained": {"by": "scripts/peer_reader.py train (PyTorch), on realm finetune --dump-batches"},
    }
    (out / "reader.json").write_text(json.dumps(card, indent=2) + "\n")


def read_shard(path):
    """The ids, f32 vectors and corpus fingerprint (0: none) of a realm index shard
    (core/src/index/shard.rs's layout, versions 1 and 2)."""
    data = Path(path).read_bytes()
    if data[:8] != b"REALMIDX":
        sys.exit(f"{path} is not a realm index shard")
    version, element, dim, corpus, count = struct.unpack_from("<IIIIQ", data, 8)
    if version not in (1, 2):
        sys.exit(f"{path}: shard format version {version}, this script reads 1 and 2")
    align = lambda n: (n + 63) // 64 * 64
    at = 64
    ids = np.frombuffer(data, dtype="<u4", count=count, offset=at)
    at = align(at + 4 * count)
    if element == 3:
        scales = np.frombuffer(data, dtype="<f4", count=count, offset=at)
        at = align(at + 4 * count)
        q = np.frombuffer(data, dtype=np.int8, count=count * dim, offset=at).reshape(count, dim)
        vectors = q.astype(np.float32) * scales[:, None]
    elif element == 2:
        vectors = np.frombuffer(data, dtype="<f2", count=count * dim, offset=at).reshape(count, dim).astype(np.float32)
    else:
        vectors = np.frombuffer(data, dtype="<f4", count=count * dim, offset=at).reshape(count, dim).copy()
    return ids.copy(), np.ascontiguousarray(vectors), corpus


def fingerprint(passages):
    """core/src/text/corpus.rs's corpus fingerprint: CRC-32 of each title and text, each after
    its UTF-8 length (u32, little-endian); 0 is recorded as 1."""
    crc = 0
    for p in passages:
        for field in (p.get("title", ""), p["text"]):
            data = field.encode("utf-8")
            crc = zlib.crc32(struct.pack("<I", len(data)) + data, crc)
    return max(crc, 1)


def read_corpus(path):
    text = Path(path).read_text()
    if path.endswith(".jsonl"):
        return [json.loads(l) for l in text.splitlines() if l.strip()]
    return [{"title": v.get("title", k), "text": v["extract"]} for k, v in json.loads(text).items()]


def load_trained_reader(model_dir, reader_dir):
    """The shipped reader's tensors (core's module paths, burn's [in, out] linears) in
    transformers' names; the word embeddings stay the base model's."""
    reader = SpanReader(base_bert(model_dir))
    saved = load_file(str(Path(reader_dir) / "reader.safetensors"))
    state = reader.state_dict()
    rename = {
        "attention_layer_norm": "attention.output.LayerNorm",
        "attention_output": "attention.output.dense",
        "intermediate": "intermediate.dense",
        "output": "output.dense",
        "output_layer_norm": "output.LayerNorm",
        "query": "attention.self.query",
        "key": "attention.self.key",
        "value": "attention.self.value",
    }
    for name, value in saved.items():
        t = torch.from_numpy(value.astype(np.float32))
        parts = name.split(".")
        leaf = {"gamma": "weight", "beta": "bias"}.get(parts[-1], parts[-1])
        if parts[:2] == ["bert", "layers"]:
            target = f"bert.encoder.layer.{parts[2]}.{rename[parts[3]]}.{leaf}"
        elif parts[:2] == ["bert", "embeddings"]:
            module = "LayerNorm" if parts[2] == "layer_norm" else parts[2]
            target = f"bert.embeddings.{module}.{leaf}"
        else:
            target = f"{parts[0]}.{leaf}"
        if leaf == "weight" and t.dim() == 2 and "embeddings" not in target:
            t = t.t()
        if state[target].shape != t.shape:
            sys.exit(f"{name} -> {target}: shape {tuple(t.shape)} vs {tuple(state[target].shape)}")
        state[target] = t
    reader.load_state_dict(state)
    return reader.eval()


def ask(args):
    import faiss

    tokenizer = BertTokenizerFast.from_pretrained(args.model)
    embedder = BertModel.from_pretrained(args.model, add_pooling_layer=False).eval()
    reader = load_trained_reader(args.model, args.reader)
    max_length = json.loads((Path(args.reader) / "reader.json").read_text())["max_length"]
    passages = read_corpus(args.corpus)
    ids, vectors, corpus = read_shard(args.index)
    if corpus and corpus != fingerprint(passages):
        sys.exit(f"{args.index} was built from another corpus than {args.corpus}")
    index = faiss.IndexFlatIP(vectors.shape[1])
    index.add(vectors)
    questions = [l.strip() for l in open(args.questions) if l.strip()]
    with torch.inference_mode():
        for question in questions:
            started = time.perf_counter()
            q = tokenizer([question], truncation=True, max_length=128, return_tensors="pt")
            hidden = embedder(**q).last_hidden_state
            mask = q["attention_mask"].unsqueeze(-1).float()
            query = torch.nn.functional.normalize((hidden * mask).sum(1) / mask.sum(1), dim=-1)
            embedded = time.perf_counter()
            _, hits = index.search(query.numpy(), args.top_k)
            texts = [passages[ids[h]]["text"] for h in hits[0]]
            searched = time.perf_counter()
            pairs = tokenizer(
                [question] * len(texts),
                texts,
                truncation="only_second",
                max_length=max_length,
                padding=True,
                return_offsets_mapping=True,
                return_tensors="pt",
            )
            passage = torch.tensor(
                [[s == 1 for s in pairs.sequence_ids(i)] for i in range(len(texts))]
            )
            logits, starts, ends = reader(
                pairs["input_ids"], pairs["token_type_ids"], pairs["attention_mask"], passage
            )
            best = int(logits.flatten().argmax())
            row, span = divmod(best, logits.shape[1])
            offsets = pairs["offset_mapping"][row]
            start, end = int(offsets[starts[span]][0]), int(offsets[ends[span]][1])
            done = time.perf_counter()
            print(json.dumps({
                "question": question,
                "answer": texts[row][start:end],
                "seconds": {"total": done - started, "embed": embedded - started,
                            "search": searched - embedded, "read": done - searched},
            }), flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=1)
    sub = parser.add_subparsers(dest="job", required=True)
    t = sub.add_parser("train")
    t.add_argument("--batches", required=True)
    t.add_argument("--model", required=True)
    t.add_argument("--steps", type=int, required=True, help="steps to run")
    t.add_argument("--total-steps", type=int, required=True, help="the schedule's length")
    t.add_argument("--lr", type=float, default=1e-4)
    t.add_argument("--warmup", type=float, default=0.1)
    t.add_argument("--clip", type=float, default=1.0)
    t.add_argument("--seed", type=int, default=1)
    t.add_argument("--save", help="write the trained reader here in realm's format")
    a = sub.add_parser("ask")
    a.add_argument("--model", required=True)
    a.add_argument("--reader", required=True)
    a.add_argument("--corpus", required=True)
    a.add_argument("--index", required=True)
    a.add_argument("--questions", required=True, help="one question per line")
    a.add_argument("-k", "--top-k", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    {"train": train, "ask": ask}[args.job](args)


if __name__ == "__main__":
    main()
