#!/usr/bin/env bash
# bench/encoder_anchors.sh - the CPU encoder against its anchors, every one in the same run:
# scrimp's fp32 and bf16 GEMMs (encoder.precision), sentence-transformers fp32 on torch,
# onnxruntime fp32 and onnxruntime int8 (dynamic quantisation, QInt8 per channel) on an ONNX
# graph of the same weights (bench/anchor_onnx.py). Writes bench/results/encoder-cpu.md.
# usage: bench/encoder_anchors.sh [--min-seconds S] [--lengths 32,128,256] [--batches 32]
#                                 [--threads 2]
# The anchors' packages go into a virtualenv of their own, made on first use from PyPI
# (SCRIMP_ANCHOR_VENV, default .venv-anchors: sentence-transformers pulls torch, about 6 GB).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
MIN_S=3; LENGTHS=32,128,256; BATCHES=32; THREADS=2
while [ $# -gt 0 ]; do
  case $1 in
    --min-seconds) MIN_S=$2; shift 2 ;;
    --lengths) LENGTHS=$2; shift 2 ;;
    --batches) BATCHES=$2; shift 2 ;;
    --threads) THREADS=$2; shift 2 ;;
    -h|--help) sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "encoder_anchors: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
BENCH="$ROOT/build/bench_encoder"
[ -x "$BENCH" ] || { echo "encoder_anchors: $BENCH not built (scripts/build)" >&2; exit 1; }
VENV="${SCRIMP_ANCHOR_VENV:-$ROOT/.venv-anchors}"
if ! "$VENV/bin/python" -c 'import sentence_transformers, onnxruntime, onnx, tokenizers, safetensors' \
    2>/dev/null; then
  echo "encoder_anchors: installing the anchors' packages into $VENV" >&2
  python3 -m venv "$VENV"
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check sentence-transformers==3.3.1 \
    onnx onnxruntime tokenizers safetensors numpy
fi
WORK=$(mktemp -d /tmp/scrimp-bench-anchors.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
for p in fp32 bf16; do
  SCRIMP_SOURCE_DIR="$ROOT" "$BENCH" --backend cpu --threads "$THREADS" --precision "$p" \
    --batches "$BATCHES" --lengths "$LENGTHS" --min-seconds "$MIN_S" \
    --anchor-python "$VENV/bin/python" --anchor-model models/all-MiniLM-L6-v2 \
    --onnx-python "$VENV/bin/python" --out "$WORK/$p.md" 2> >(grep -v 'level=info' >&2)
done
OUT=bench/results/encoder-cpu.md
{
  echo "# CPU encoder against its anchors: all-MiniLM-L6-v2"
  echo
  echo "Command: \`bench/encoder_anchors.sh --min-seconds $MIN_S --lengths $LENGTHS --batches $BATCHES" \
    "--threads $THREADS\` (two runs of bench_encoder, one per precision of scrimp's GEMMs; each run" \
    "measures every anchor again, so each table compares numbers taken minutes apart at most)."
  for p in fp32 bf16; do
    echo
    echo "## scrimp $p"
    echo
    sed -n '3,$p' "$WORK/$p.md" | sed 's/^# /### /'
  done
} >"$OUT"
echo "wrote $OUT"
