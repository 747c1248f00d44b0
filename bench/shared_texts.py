#!/usr/bin/env python3
"""shared_texts.py - every distinct text of ../shared/data, one per line (whitespace folded):
the MSRP sentences, the SemEval questions and the MMLU prompts. Embedded with
`scrimp embed --format f32`, they are the real-embedding data set of bench_cache --vectors.

usage: shared_texts.py [DATA_DIR] > texts.txt       (DATA_DIR defaults to ../shared/data)
Prints the number of texts on stderr."""
import csv
import glob
import os
import sys


def main():
    data = sys.argv[1] if len(sys.argv) > 1 else "../shared/data"
    if not os.path.isdir(os.path.join(data, "paraphrase")):
        sys.exit(f"shared_texts.py: {data}: no paraphrase/ folder (give the shared data folder)")
    seen, texts = set(), []

    def add(t):
        t = " ".join(t.split())
        if t and t not in seen:
            seen.add(t)
            texts.append(t)

    for path in sorted(glob.glob(os.path.join(data, "paraphrase", "msrp-*.tsv"))):
        with open(path, encoding="utf-8-sig") as f:
            next(f)  # header
            for line in f:
                cols = line.rstrip("\n").split("\t")
                if len(cols) >= 5:
                    add(cols[3])
                    add(cols[4])
    with open(os.path.join(data, "paraphrase", "semeval2016-question-question.tsv"),
              encoding="utf-8") as f:
        for line in f:
            cols = line.rstrip("\n").split("\t")
            for t in cols[1:3]:
                add(t)
    csv.field_size_limit(1 << 26)
    for path in sorted(glob.glob(os.path.join(data, "routing", "mmlu", "*.csv"))):
        with open(path, encoding="utf-8", newline="") as f:
            rows = csv.reader(f)
            next(rows)  # header
            for row in rows:
                if row:
                    add(row[0])
    sys.stdout.write("".join(t + "\n" for t in texts))
    print(len(texts), file=sys.stderr)


if __name__ == "__main__":
    main()
