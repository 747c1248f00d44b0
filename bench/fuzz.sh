#!/usr/bin/env bash
# bench/fuzz.sh - the long fuzzing campaign: scripts/fuzz SECONDS over every harness of
# tests/fuzz/, one after the other, and its table (executions, exec/s, libFuzzer's cov and ft,
# crashes per harness) written to bench/results/fuzz.md with the machine, the date and the
# command. Usage: bench/fuzz.sh SECONDS (per harness; e.g. 3600). Exits as scripts/fuzz does:
# 1 when a harness found something, whose input stays under var/fuzz/NAME/.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
[ $# -eq 1 ] && [[ "$1" =~ ^[1-9][0-9]*$ ]] || { echo "usage: bench/fuzz.sh SECONDS" >&2; exit 2; }
SECS=$1
OUTMD="$ROOT/bench/results/fuzz.md"
WORK=$(mktemp -d /tmp/scrimp-bench-fuzz.XXXXXX)
trap 'rm -rf "$WORK"' EXIT

rc=0
"$ROOT/scripts/fuzz" "$SECS" | tee "$WORK/fuzz.out" || rc=$?

{
  echo "# Fuzzing campaign: $SECS s per harness"
  echo
  echo "- machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(nproc) cores"
  echo "- date: $(date -u '+%Y-%m-%d %H:%M UTC')"
  echo "- command: \`bench/fuzz.sh $SECS\` (scripts/fuzz: clang $(clang -dumpversion), libFuzzer +" \
    "AddressSanitizer + UndefinedBehaviorSanitizer, leak detection on, build \`build-fuzz\`)"
  echo "- corpus: the seeds of \`tests/fuzz/corpus/NAME/\`, grown in a temporary copy and dropped after"
  echo
  echo "| harness | seconds | execs | exec/s | cov | ft | crashes |"
  echo "|---|---:|---:|---:|---:|---:|---:|"
  # the rows of scripts/fuzz's table: harness execs cov ft crashes
  awk -v secs="$SECS" '$1 ~ /^[a-z_]+$/ && $2 ~ /^[0-9]+$/ && NF == 5 {
    printf "| %s | %d | %d | %.0f | %d | %d | %d |\n", $1, secs, $2, $2 / secs, $3, $4, $5
  }' "$WORK/fuzz.out"
  echo
  echo "cov is the number of code edges the harness reached, ft libFuzzer's finer features (edges"
  echo "with hit counts, comparisons); both as libFuzzer printed them last. A crash is any finding:"
  echo "a sanitizer report, a leak, a failed check of the harness, a timeout (10 s) or more than"
  echo "2 GB of memory; its input is kept under \`var/fuzz/NAME/\`."
} >"$OUTMD"
echo "wrote $OUTMD"
exit "$rc"
