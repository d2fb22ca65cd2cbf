"""The onnxruntime-web peer's model files, for scripts/bench-web.sh (issue #12).

Exports the same weights the browser engine runs to ONNX with torch:
  embedder.onnx  MiniLM with the mean pooling and L2 normalisation `realm ask` embeds
                 questions with (inputs ids, type_ids, attention; output [batch, 384]; the
                 base model's weights: the shipped question embedder's fine-tuned top layer
                 has the same shapes, so the forward costs the same)
  reader.onnx    the shipped span reader (scripts/peer_reader.py's SpanReader with the weights
                 of native/models/demo-reader; inputs ids, type_ids, attention, passage and the
                 candidate spans' starts and ends, so the sequence length stays dynamic; output
                 the span logits)
and inputs.json: for each demo question the wordpieces of the question (the embedder's input)
and of the question paired with each of the top-5 passages native `realm ask` retrieved
(target/web-demo/native-answers.jsonl), truncated to the reader's 256 and padded to the
longest, as realm's reader batches them; `whole` says whether every passage fit in one window
(when one does not, realm reads more windows than the peer's 5 rows).

Usage: python scripts/export_onnx.py FIXTURE_DIR READER_DIR OUT_DIR   (the peer virtualenv)
"""

import json
import sys
from pathlib import Path

import torch
from transformers import BertModel, BertTokenizerFast

sys.path.insert(0, str(Path(__file__).parent))
from peer_reader import load_trained_reader, read_corpus  # noqa: E402


class Embedder(torch.nn.Module):
    def __init__(self, bert):
        super().__init__()
        self.bert = bert

    def forward(self, ids, type_ids, attention):
        hidden = self.bert(input_ids=ids, token_type_ids=type_ids, attention_mask=attention).last_hidden_state
        mask = attention.unsqueeze(-1).to(hidden.dtype)
        return torch.nn.functional.normalize((hidden * mask).sum(1) / mask.sum(1), dim=-1)


class Reader(torch.nn.Module):
    """SpanReader's forward with the candidate spans as inputs."""

    def __init__(self, reader):
        super().__init__()
        self.reader = reader

    def forward(self, ids, type_ids, attention, passage, starts, ends):
        r = self.reader
        hidden = r.bert(input_ids=ids, token_type_ids=type_ids, attention_mask=attention).last_hidden_state
        start, end = r.dense_intermediate(hidden).chunk(2, dim=-1)
        spans = start[:, starts] + end[:, ends]
        logits = r.dense_output(r.layer_norm(torch.relu(spans))).squeeze(-1)
        inside = passage[:, starts] & passage[:, ends]
        return logits.masked_fill(~inside, torch.finfo(logits.dtype).min)


def export(module, args, names, dynamic, out):
    torch.onnx.export(
        module, args, str(out), input_names=names, output_names=["out"],
        dynamic_axes=dynamic, opset_version=17, dynamo=False,
    )


def main():
    if len(sys.argv) != 4:
        sys.exit("usage: export_onnx.py FIXTURE_DIR READER_DIR OUT_DIR")
    fixture, reader_dir, out = (Path(a) for a in sys.argv[1:])
    out.mkdir(parents=True, exist_ok=True)
    model_dir = fixture / "model"
    tokenizer = BertTokenizerFast(tokenizer_file=str(model_dir / "tokenizer.json"))
    embedder = Embedder(BertModel.from_pretrained(str(model_dir), add_pooling_layer=False).eval())
    reader = load_trained_reader(str(model_dir), str(reader_dir))
    max_length = json.loads((Path(reader_dir) / "reader.json").read_text())["max_length"]
    width = reader.width
    passages = read_corpus(str(fixture / "passages.jsonl"))

    questions = []
    for line in (fixture / "native-answers.jsonl").read_text().splitlines():
        native = json.loads(line)
        q = tokenizer([native["question"]], truncation=True, max_length=128)
        texts = [passages[p["id"]]["text"] for p in native["passages"]]
        full = tokenizer([native["question"]] * len(texts), texts)
        pairs = tokenizer([native["question"]] * len(texts), texts, truncation="only_second",
                          max_length=max_length, padding=True)
        seq = len(pairs["input_ids"][0])
        starts, ends = zip(*[(s, s + w - 1) for w in range(1, min(width, seq) + 1) for s in range(seq - w + 1)])
        questions.append({
            "question": native["question"],
            "embed": {"ids": q["input_ids"][0], "type_ids": q["token_type_ids"][0]},
            "read": {
                "ids": pairs["input_ids"], "type_ids": pairs["token_type_ids"],
                "attention": pairs["attention_mask"],
                "passage": [[int(s == 1) for s in pairs.sequence_ids(i)] for i in range(len(texts))],
                "starts": list(starts), "ends": list(ends),
            },
            "whole": all(len(ids) <= max_length for ids in full["input_ids"]),
        })
    (out / "inputs.json").write_text(json.dumps(questions))

    with torch.inference_mode():
        q = questions[0]
        ids = torch.tensor([q["embed"]["ids"]])
        export(embedder, (ids, torch.zeros_like(ids), torch.ones_like(ids)), ["ids", "type_ids", "attention"],
               {n: {0: "batch", 1: "seq"} for n in ["ids", "type_ids", "attention"]}, out / "embedder.onnx")
        r = q["read"]
        args = (torch.tensor(r["ids"]), torch.tensor(r["type_ids"]), torch.tensor(r["attention"]),
                torch.tensor(r["passage"], dtype=torch.bool), torch.tensor(r["starts"]), torch.tensor(r["ends"]))
        dynamic = {n: {0: "rows", 1: "seq"} for n in ["ids", "type_ids", "attention", "passage"]}
        dynamic.update({"starts": {0: "spans"}, "ends": {0: "spans"}})
        export(Reader(reader), args, ["ids", "type_ids", "attention", "passage", "starts", "ends"], dynamic,
               out / "reader.onnx")
    print(f"export_onnx: {out}/embedder.onnx, reader.onnx, inputs.json ({len(questions)} questions)")


if __name__ == "__main__":
    main()
