#!/usr/bin/env python3
"""bench/compare_embeddings.py - the cosine, row by row, of two files of embeddings as
`scrimp embed --format f32` writes them (float32 rows of 384, native order), one per input line.

usage: bench/compare_embeddings.py A.f32 B.f32 [--dim 384]

Prints the rows compared, the worst cosine (and its row), the 1st percentile, the mean, and how
many rows fall below 0.995 (the int8 gate). For example, int8 against fp32 on MSRP sentences:

  cut -f4,5 ../shared/data/paraphrase/msrp-msr-para-train.tsv | tail -n +2 | tr '\\t' '\\n' \\
    | head -3000 > /tmp/s.txt
  build/scrimp embed --precision fp32 --format f32 < /tmp/s.txt > /tmp/fp32.f32
  build/scrimp embed --precision int8 --format f32 < /tmp/s.txt > /tmp/int8.f32
  bench/compare_embeddings.py /tmp/fp32.f32 /tmp/int8.f32
"""
import argparse
import array
import math
import sys


def rows(path, dim):
    a = array.array("f")
    with open(path, "rb") as f:
        a.frombytes(f.read())
    if len(a) % dim:
        sys.exit(f"compare_embeddings: {path}: {len(a)} floats, not a multiple of {dim}")
    return [a[i:i + dim] for i in range(0, len(a), dim)]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("a")
    ap.add_argument("b")
    ap.add_argument("--dim", type=int, default=384)
    args = ap.parse_args()
    ra, rb = rows(args.a, args.dim), rows(args.b, args.dim)
    if len(ra) != len(rb) or not ra:
        sys.exit(f"compare_embeddings: {len(ra)} rows against {len(rb)}: not comparable")
    cos = []
    for x, y in zip(ra, rb):
        dot = sum(p * q for p, q in zip(x, y))
        nx, ny = math.sqrt(sum(p * p for p in x)), math.sqrt(sum(q * q for q in y))
        cos.append(dot / (nx * ny) if nx > 0 and ny > 0 else 0.0)
    srt = sorted(cos)
    worst = min(range(len(cos)), key=cos.__getitem__)
    print(f"rows {len(cos)}: worst cosine {cos[worst]:.5f} (row {worst}), "
          f"1st percentile {srt[len(srt) // 100]:.5f}, mean {sum(cos) / len(cos):.5f}, "
          f"below 0.995: {sum(c < 0.995 for c in cos)}")


if __name__ == "__main__":
    main()
