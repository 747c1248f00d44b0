#!/usr/bin/env bash
# bench/encoder_anchors.sh - the CPU encoder against its anchors, every one in the same run:
# scrimp's fp32, bf16 and int8 GEMMs (encoder.precision), sentence-transformers fp32 on torch,
# onnxruntime fp32 and onnxruntime int8 (dynamic quantisation, QInt8 per channel) on an ONNX
# graph of the same weights (bench/anchor_onnx.py). Writes bench/results/encoder-cpu.md.
# usage: bench/encoder_anchors.sh [--min-seconds S] [--lengths 32,128,256] [--batches 32]
#                                 [--threads 2] [--repeat 3] [--precisions fp32,bf16,int8]
#                                 [--out bench/results/encoder-cpu.md]
# Each round runs every precision with every anchor again; the summary gives, per cell, the
# median of the rounds' sentences/s and of the ratios measured within one round (this 2-core
# machine's speed drifts by tens of per cent between minutes, so one round can mislead), with
# their range; every round's tables follow it. A precision this CPU or build cannot run (bf16
# without AVX-512, int8 without AVX512-VNNI, either without oneDNN) is left out, and the report
# says so.
# The anchors' packages go into a virtualenv of their own, made on first use from PyPI
# (SCRIMP_ANCHOR_VENV, default .venv-anchors: sentence-transformers pulls torch, about 6 GB).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
MIN_S=3; LENGTHS=32,128,256; BATCHES=32; THREADS=2; REPEAT=3; PRECISIONS=fp32,bf16,int8
OUT=bench/results/encoder-cpu.md
while [ $# -gt 0 ]; do
  case $1 in
    --min-seconds) MIN_S=$2; shift 2 ;;
    --lengths) LENGTHS=$2; shift 2 ;;
    --batches) BATCHES=$2; shift 2 ;;
    --threads) THREADS=$2; shift 2 ;;
    --repeat) REPEAT=$2; shift 2 ;;
    --precisions) PRECISIONS=$2; shift 2 ;;
    --out) OUT=$2; shift 2 ;;
    -h|--help) sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "encoder_anchors: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
case $REPEAT in ''|*[!0-9]*|0) echo "encoder_anchors: --repeat wants a count >= 1" >&2; exit 2 ;; esac
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
export HF_HUB_OFFLINE=1 # every model is read from models/: no hub lookups (offline, they retry for 30 s)
mkdir -p "$(dirname "$OUT")"
WORK=$(mktemp -d /tmp/scrimp-bench-anchors.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
RUN=(); SKIPPED=()
for p in ${PRECISIONS//,/ }; do # a one-sentence probe: can this CPU and build run it?
  if SCRIMP_SOURCE_DIR="$ROOT" "$BENCH" --backend cpu --threads 1 --precision "$p" --batches 1 \
      --lengths 8 --min-seconds 0 --out "$WORK/probe.md" >"$WORK/probe.log" 2>&1; then
    RUN+=("$p")
  else
    why=$(grep -v 'level=info' "$WORK/probe.log" | tail -1)
    echo "encoder_anchors: scrimp $p left out: $why" >&2
    SKIPPED+=("$p: $why")
  fi
done
[ ${#RUN[@]} -gt 0 ] || { echo "encoder_anchors: no precision runs here" >&2; exit 1; }
for r in $(seq 1 "$REPEAT"); do
  for p in "${RUN[@]}"; do
    echo "encoder_anchors: round $r of $REPEAT, scrimp $p" >&2
    SCRIMP_SOURCE_DIR="$ROOT" "$BENCH" --backend cpu --threads "$THREADS" --precision "$p" \
      --batches "$BATCHES" --lengths "$LENGTHS" --min-seconds "$MIN_S" \
      --anchor-python "$VENV/bin/python" --anchor-model models/all-MiniLM-L6-v2 \
      --onnx-python "$VENV/bin/python" --out "$WORK/$p.$r.md" 2> >(grep -v 'level=info' >&2)
  done
done
python3 - "$WORK" "$REPEAT" "$MIN_S" "$LENGTHS" "$BATCHES" "$THREADS" "$(git rev-parse --short HEAD)" \
  "${RUN[*]}" "$PRECISIONS" "$(printf '%s\n' "${SKIPPED[@]+"${SKIPPED[@]}"}")" \
  "$(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //')" \
  "$(grep -o -w -E 'avx512f|avx512_vnni|avx512_bf16|amx_bf16|avx2' /proc/cpuinfo | sort -u | tr '\n' ' ')" \
  >"$OUT" <<'PY'
import statistics, sys
(work, rounds, min_s, lengths, batches, threads, commit, run, asked, skipped, cpu,
 isa) = sys.argv[1:]
rounds = int(rounds)
run = run.split()

def table(path):
    """The rows of bench_encoder's table: {(batch, tokens): {column: value}}."""
    rows, head = {}, None
    for line in open(path, encoding="utf-8"):
        if not line.startswith("| "):
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if cells[0] == "batch":
            head = cells
            continue
        if head and cells[0].isdigit():
            rows[(int(cells[0]), int(cells[1]))] = dict(zip(head, cells))
    return rows

def num(v):
    return float(v.rstrip("×")) if v not in ("–", "-", "") else None

cols = [("scrimp sentences/s", "scrimp"), ("onnxruntime fp32 sentences/s", "onnxruntime fp32"),
        ("onnxruntime int8 sentences/s", "onnxruntime int8"),
        ("sentence-transformers sentences/s", "sentence-transformers")]
print("# CPU encoder against its anchors: all-MiniLM-L6-v2\n")
print(f"Command: `bench/encoder_anchors.sh --min-seconds {min_s} --lengths {lengths} --batches "
      f"{batches} --threads {threads} --repeat {rounds} --precisions {asked}` at {commit}: {rounds} rounds, each one "
      "bench_encoder run per precision of scrimp's GEMMs that measures every anchor again, so a "
      "ratio compares numbers taken minutes apart at most. Below, per cell, the median over the "
      "rounds (and the range) of each engine's sentences/s and of the ratios taken within one "
      "round; every round's tables follow.\n")
print(f"- CPU: {cpu}; instruction sets seen: {isa.strip() or 'none of avx2, avx512f'}")
for line in filter(None, skipped.split("\n")):
    print(f"- left out, this CPU or build cannot run it: scrimp {line}")
print()
summary = {}
for p in run:
    runs = [table(f"{work}/{p}.{r}.md") for r in range(1, rounds + 1)]
    print(f"## scrimp {p}: medians of {rounds} rounds\n")
    print("| batch | tokens | " + " | ".join(f"{n} sentences/s" for _, n in cols) +
          " | scrimp ÷ onnxruntime fp32 | scrimp ÷ onnxruntime int8 |")
    print("|---:|---:|" + "---:|" * (len(cols) + 2))
    for cell in sorted(runs[0]):
        out = [str(cell[0]), str(cell[1])]
        vals = {}
        for c, _ in cols:
            v = [num(run[cell][c]) for run in runs if cell in run and num(run[cell][c])]
            vals[c] = v
            out.append(f"{statistics.median(v):.1f} ({min(v):.1f}–{max(v):.1f})" if v else "–")
        for anchor in ("onnxruntime fp32 sentences/s", "onnxruntime int8 sentences/s"):
            ratio = [num(run[cell]["scrimp sentences/s"]) / num(run[cell][anchor])
                     for run in runs if cell in run and num(run[cell].get(anchor, "–"))]
            if ratio:
                m = statistics.median(ratio)
                summary[(p, cell, anchor)] = (m, min(ratio), max(ratio))
                out.append(f"**{m:.2f}×** ({min(ratio):.2f}–{max(ratio):.2f})")
            else:
                out.append("–")
        print("| " + " | ".join(out) + " |")
    print()
for r in range(1, rounds + 1):
    for p in run:
        print(f"## Round {r}: scrimp {p}\n")
        lines = open(f"{work}/{p}.{r}.md", encoding="utf-8").read().split("\n")[2:]
        print("\n".join(l.replace("# ", "### ", 1) if l.startswith("# ") else l
                        for l in lines).rstrip() + "\n")
PY
echo "wrote $OUT"
