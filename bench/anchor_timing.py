"""anchor_timing.py - what bench_encoder's anchors share (bench/anchor_encoder.py,
bench/anchor_onnx.py): the texts file they are given, and the timing of each batch × length cell
under bench_encoder's own rule (one warm-up call, then calls for at least min_seconds)."""
import sys
import time


def load_texts(path):
    """The texts of the file, by length: lines "L<TAB>text"."""
    by_len = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            length, text = line.rstrip("\n").split("\t", 1)
            by_len.setdefault(int(length), []).append(text)
    return by_len


def time_cells(cells_arg, by_len, encode, min_seconds, label):
    """Time encode(texts) on each "B:L" cell of cells_arg; the cells' JSON records."""
    cells = []
    for cell in cells_arg.split(","):
        b, length = (int(x) for x in cell.split(":"))
        texts = (by_len[length] * (b // len(by_len[length]) + 1))[:b]
        encode(texts)  # warm-up
        calls, t0 = 0, time.perf_counter()
        while True:
            encode(texts)
            calls += 1
            dt = time.perf_counter() - t0
            if dt >= min_seconds:
                break
        cells.append({"batch": b, "length": length, "calls": calls,
                      "sentences_per_s": b * calls / dt, "tokens_per_s": b * length * calls / dt})
        print(f"{label}: batch {b} length {length}: {b * calls / dt:.1f} sentences/s",
              file=sys.stderr, flush=True)
    return cells
