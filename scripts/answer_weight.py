#!/usr/bin/env python3
"""Chooses how open QA picks its answer from what the reader found in the top-k passages.

Reads the predictions.jsonl that `realm eval --out DIR` writes (each question's passages with
their retriever scores and best spans) and the SQuAD file the questions came from, and scores
answer rules by exact match (SQuAD's normalisation):

  reader        the span with the highest reader logit (what `ask` did before)
  sum, w        REALM's marginal over passages: for each distinct answer string y,
                log sum over spans s with text y in passages z of exp(reader(z, s) + w * retriever(z)),
                the best y wins; w = 0 sums the reader alone

Pick w on a sample of the training articles (`realm eval --split train --every 16`), never on the
held-out ones, then report the held-out EM with that w.

    scripts/answer_weight.py SQUAD.json runs/eval-train/predictions.jsonl [--weights 0,1,2,...]
"""

import argparse
import json
import math
import re
import string
import unicodedata


def normalize(text):
    text = unicodedata.normalize("NFD", text).lower()
    text = "".join(c for c in text if c not in set(string.punctuation))
    text = re.sub(r"\b(a|an|the)\b", " ", text)
    return " ".join(text.split())


def gold_answers(squad_path):
    data = json.load(open(squad_path))["data"]
    gold = {}
    for article in data:
        for paragraph in article["paragraphs"]:
            for qa in paragraph["qas"]:
                gold[qa["id"]] = {normalize(a["text"]) for a in qa["answers"]}
    return gold


def logaddexp(a, b):
    return max(a, b) + math.log1p(math.exp(-abs(a - b)))


def pick(read, weight, marginal):
    best, best_score = "", -math.inf
    totals = {}
    for passage in read:
        for text, score in passage["spans"]:
            s = score + weight * passage["retriever_score"]
            if not marginal:
                if s > best_score:
                    best, best_score = text, s
                continue
            key = normalize(text)
            if key in totals:
                total, first = totals[key]
                totals[key] = (logaddexp(total, s), first)
            else:
                totals[key] = (s, text)
    if marginal:
        for key, (s, text) in totals.items():
            if s > best_score:
                best, best_score = text, s
    return best


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("squad")
    p.add_argument("predictions")
    p.add_argument("--weights", default="0,0.5,1,2,3,4,5,6,8,10,15,20")
    args = p.parse_args()
    gold = gold_answers(args.squad)
    rows = [json.loads(line) for line in open(args.predictions)]
    n = len(rows)

    def em(weight, marginal):
        return 100.0 * sum(normalize(pick(r["read"], weight, marginal)) in gold[r["id"]] for r in rows) / n

    print(f"{n} questions; reader alone (max logit): EM {em(0.0, False):.1f}")
    print("| w | max(reader + w*retriever) | marginal over passages |")
    print("|---|---|---|")
    for w in [float(x) for x in args.weights.split(",")]:
        print(f"| {w:g} | {em(w, False):.1f} | {em(w, True):.1f} |")


if __name__ == "__main__":
    main()
