#!/usr/bin/env python3
"""anchor_onnx.py - the onnxruntime anchors of bench_encoder: all-MiniLM-L6-v2 as an ONNX graph
built here from the model folder's own weights (model.safetensors, config.json, vocab.txt: the
files scrimp loads), run by onnxruntime in fp32, or after onnxruntime's dynamic quantisation
(QInt8, per channel) with --int8; tokenised by HuggingFace `tokenizers` (WordPiece, the way
fastembed feeds onnxruntime). Timed as bench/anchor_encoder.py times sentence-transformers.

usage: anchor_onnx.py --texts FILE --cells "B:L,B:L,..." --model DIR [--int8] [--threads N]
                      [--min-seconds S] [--check DIR]
FILE holds one text per line; the texts of length L are the lines tagged "L<TAB>text".
--check DIR: the test fixture (tests/fixtures/minilm: embeddings.jsonl's texts, embeddings.f32
sentence-transformers' vectors of them); the worst and mean cosine of this graph's vectors to
those are reported in "versions".
Prints one JSON object: {"versions": {...}, "cells": [{"batch", "length", "sentences_per_s",
"tokens_per_s", "calls"}...]}. Needs onnx, onnxruntime, tokenizers, safetensors and numpy
(bench/encoder_anchors.sh makes a virtualenv with them)."""
import argparse
import json
import os
import tempfile

from anchor_timing import load_texts, time_cells


def build_graph(model_dir, path):
    """Write the BERT encoder + mean pooling + L2 normalisation of model_dir as ONNX to path."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper
    from safetensors.numpy import load_file

    cfg = json.load(open(os.path.join(model_dir, "config.json")))
    w = load_file(os.path.join(model_dir, "model.safetensors"))
    w = {k[5:] if k.startswith("bert.") else k: v for k, v in w.items()}
    hidden, heads = cfg["hidden_size"], cfg["num_attention_heads"]
    hd, eps = hidden // heads, cfg["layer_norm_eps"]
    inits, nodes = [], []

    def const(name, arr):
        inits.append(numpy_helper.from_array(np.asarray(arr), name))
        return name

    def node(op, ins, outs=None, **kw):
        outs = outs or [f"{op}_{len(nodes)}"]
        nodes.append(helper.make_node(op, ins, outs, **kw))
        return outs[0]

    def linear(x, prefix):
        wt = const(prefix + ".wT", w[prefix + ".weight"].T.copy())  # [in, out]
        return node("Add", [node("MatMul", [x, wt]), const(prefix + ".b", w[prefix + ".bias"])])

    def layernorm(x, prefix):
        return node("LayerNormalization", [x, const(prefix + ".g", w[prefix + ".weight"]),
                                           const(prefix + ".beta", w[prefix + ".bias"])],
                    axis=-1, epsilon=eps)

    ids = helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["B", "T"])
    mask = helper.make_tensor_value_info("attention_mask", TensorProto.INT64, ["B", "T"])
    out = helper.make_tensor_value_info("embedding", TensorProto.FLOAT, ["B", hidden])
    # embeddings: word + position (0..T-1) + token type 0
    t = node("Gather", [node("Shape", ["input_ids"]), const("one_i", np.array(1, np.int64))])
    pos = node("Range", [const("zero_i", np.array(0, np.int64)), t,
                         const("step_i", np.array(1, np.int64))])
    x = node("Add", [node("Gather", [const("wemb", w["embeddings.word_embeddings.weight"]),
                                     "input_ids"]),
                     node("Gather", [const("pemb", w["embeddings.position_embeddings.weight"]),
                                     pos])])
    x = node("Add", [x, const("temb", w["embeddings.token_type_embeddings.weight"][0])])
    x = layernorm(x, "embeddings.LayerNorm")
    # the additive mask: 0 where attended, -10000 on padding, [B, 1, 1, T]
    mf = node("Cast", ["attention_mask"], to=TensorProto.FLOAT)
    bias = node("Mul", [node("Sub", [const("one_f", np.array(1.0, np.float32)), mf]),
                        const("neg", np.array(-10000.0, np.float32))])
    bias = node("Unsqueeze", [bias, const("ax12", np.array([1, 2], np.int64))])
    split = const("bthd", np.array([0, 0, heads, hd], np.int64))
    merge = const("bth", np.array([0, 0, hidden], np.int64))
    scale = const("scale", np.array(1.0 / np.sqrt(hd), np.float32))
    for i in range(cfg["num_hidden_layers"]):
        p = f"encoder.layer.{i}."

        def heads_of(name, perm):
            return node("Transpose", [node("Reshape", [linear(x, p + "attention.self." + name),
                                                       split])], perm=perm)
        q = heads_of("query", [0, 2, 1, 3])
        k = heads_of("key", [0, 2, 3, 1])
        v = heads_of("value", [0, 2, 1, 3])
        s = node("Add", [node("Mul", [node("MatMul", [q, k]), scale]), bias])
        ctx = node("MatMul", [node("Softmax", [s], axis=-1), v])
        ctx = node("Reshape", [node("Transpose", [ctx], perm=[0, 2, 1, 3]), merge])
        x = layernorm(node("Add", [linear(ctx, p + "attention.output.dense"), x]),
                      p + "attention.output.LayerNorm")
        h = linear(x, p + "intermediate.dense")
        h = node("Mul", [node("Mul", [h, const(f"half{i}", np.array(0.5, np.float32))]),
                         node("Add", [const(f"one{i}", np.array(1.0, np.float32)),
                                      node("Erf", [node("Div", [h, const(
                                          f"sqrt2_{i}", np.array(np.sqrt(2.0), np.float32))])])])])
        x = layernorm(node("Add", [linear(h, p + "output.dense"), x]), p + "output.LayerNorm")
    # mean over the attended tokens, then L2 normalisation
    m3 = node("Unsqueeze", [mf, const("ax2", np.array([2], np.int64))])
    summed = node("ReduceSum", [node("Mul", [x, m3]), const("ax1", np.array([1], np.int64))],
                  keepdims=0)
    count = node("ReduceSum", [m3, const("ax1b", np.array([1], np.int64))], keepdims=0)
    mean = node("Div", [summed, count])
    norm = node("ReduceL2", [mean, const("axl", np.array([1], np.int64))], keepdims=1)
    node("Div", [mean, norm], ["embedding"])
    g = helper.make_graph(nodes, "minilm", [ids, mask], [out], inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 18)])
    m.ir_version = 8
    onnx.save(m, path)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--texts", required=True)
    ap.add_argument("--cells", required=True)
    ap.add_argument("--model", required=True)
    ap.add_argument("--int8", action="store_true")
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--min-seconds", type=float, default=1.0)
    ap.add_argument("--check", default="")
    ap.add_argument("--device", default="cpu")  # bench_encoder passes it; CPU only
    ap.add_argument("--fp16", action="store_true")  # ignored, as --device
    a = ap.parse_args()

    import numpy as np
    import onnx
    import onnxruntime as ort
    from tokenizers import BertWordPieceTokenizer

    tmp = tempfile.mkdtemp(prefix="scrimp-onnx-")
    path = os.path.join(tmp, "minilm.onnx")
    build_graph(a.model, path)
    if a.int8:
        from onnxruntime.quantization import QuantType, quantize_dynamic
        qpath = os.path.join(tmp, "minilm-int8.onnx")
        quantize_dynamic(path, qpath, per_channel=True, weight_type=QuantType.QInt8)
        path = qpath
    so = ort.SessionOptions()
    if a.threads > 0:
        so.intra_op_num_threads = a.threads
        so.inter_op_num_threads = 1
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    sess = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
    tok = BertWordPieceTokenizer(os.path.join(a.model, "vocab.txt"), lowercase=True)
    tok.enable_truncation(256)

    def encode(texts):
        enc = tok.encode_batch(texts)
        n = max(len(e.ids) for e in enc)
        ids = np.zeros((len(enc), n), np.int64)
        mask = np.zeros((len(enc), n), np.int64)
        for i, e in enumerate(enc):
            ids[i, :len(e.ids)] = e.ids
            mask[i, :len(e.ids)] = 1
        return sess.run(["embedding"], {"input_ids": ids, "attention_mask": mask})[0]

    versions = {"onnxruntime": ort.__version__, "onnx": onnx.__version__,
                "threads": a.threads, "dtype": "int8 (dynamic, QInt8 per channel)" if a.int8
                else "float32"}
    if a.check:  # against sentence-transformers' vectors of the fixture
        rows = [json.loads(line)
                for line in open(os.path.join(a.check, "embeddings.jsonl"), encoding="utf-8")]
        want = np.fromfile(os.path.join(a.check, "embeddings.f32"), np.float32).reshape(
            len(rows), -1)
        got = np.concatenate([encode([r["text"] for r in rows[i:i + 32]])
                              for i in range(0, len(rows), 32)])
        cos = (got * want).sum(1) / np.linalg.norm(got, axis=1) / np.linalg.norm(want, axis=1)
        versions["cosine_min"], versions["cosine_mean"] = float(cos.min()), float(cos.mean())
        versions["check_sentences"] = len(rows)

    cells = time_cells(a.cells, load_texts(a.texts), encode, a.min_seconds,
                       f"onnxruntime {versions['dtype']}")
    print(json.dumps({"versions": versions, "cells": cells}))


if __name__ == "__main__":
    main()
