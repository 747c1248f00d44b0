#!/usr/bin/env bash
# bench/fuzz.sh - the long fuzzing campaign: scripts/fuzz SECONDS over the harnesses of
# tests/fuzz/ (all of them, or the NAMEs given), one after the other, and its table (executions,
# exec/s, libFuzzer's cov and ft, crashes per harness) in bench/results/fuzz.md with the machine,
# the date and the command of each row. Usage: bench/fuzz.sh SECONDS [NAME...] (SECONDS per
# harness; e.g. 1800). A run of some harnesses replaces their rows and keeps the others', so a
# campaign can be spread over several sittings. Exits as scripts/fuzz does: 1 when a harness found
# something, whose input stays under var/fuzz/NAME/.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
[ $# -ge 1 ] && [[ "$1" =~ ^[1-9][0-9]*$ ]] || { echo "usage: bench/fuzz.sh SECONDS [NAME...]" >&2; exit 2; }
SECS=$1; shift
OUTMD="$ROOT/bench/results/fuzz.md"
WORK=$(mktemp -d /tmp/scrimp-bench-fuzz.XXXXXX)
trap 'rm -rf "$WORK"' EXIT

rc=0
"$ROOT/scripts/fuzz" "$SECS" "$@" | tee "$WORK/fuzz.out" || rc=$?

CPU="$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(nproc) cores"
DATE="$(date -u '+%Y-%m-%d %H:%M UTC')"
BUILD="$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)"
# this run's rows: | harness | seconds | execs | exec/s | cov | ft | crashes | date | build |
awk -v secs="$SECS" -v date="$DATE" -v build="$BUILD" '$1 ~ /^[a-z_]+$/ && $2 ~ /^[0-9]+$/ && NF == 5 {
  printf "| %s | %d | %d | %.0f | %d | %d | %d | %s | %s |\n", $1, secs, $2, $2 / secs, $3, $4, $5, date, build
}' "$WORK/fuzz.out" >"$WORK/new.rows"
# the earlier rows of harnesses this run did not cover (rows of the 9-column table only)
: >"$WORK/old.rows"
if [ -f "$OUTMD" ]; then
  # (a table of the 7-column form, before rows carried their date, gets the date of its header)
  awk -F'|' 'NR == FNR { split($2, a, " "); seen[a[1]] = 1; next }
             /^- date: / { legacy = substr($0, 9) }
             /^\| [a-z_]+ \| [0-9]+ \|/ && NF == 11 { split($2, a, " "); if (!(a[1] in seen)) print }
             /^\| [a-z_]+ \| [0-9]+ \|/ && NF == 9 { split($2, a, " ");
               if (!(a[1] in seen)) print $0 " " legacy " | - |" }' \
    "$WORK/new.rows" "$OUTMD" >"$WORK/old.rows"
fi

{
  echo "# Fuzzing campaign"
  echo
  echo "- machine: $CPU"
  echo "- command: \`bench/fuzz.sh SECONDS [NAME...]\` (scripts/fuzz: clang $(clang -dumpversion), libFuzzer +" \
    "AddressSanitizer + UndefinedBehaviorSanitizer, leak detection on, build \`build-fuzz\`), one harness" \
    "at a time; each row is one harness's run, with its length, date and commit"
  echo "- corpus: the seeds of \`tests/fuzz/corpus/NAME/\`, grown in a temporary copy and dropped after"
  echo
  echo "| harness | seconds | execs | exec/s | cov | ft | crashes | date | build |"
  echo "|---|---:|---:|---:|---:|---:|---:|---|---|"
  cat "$WORK/old.rows" "$WORK/new.rows" | sort -t'|' -k2,2
  echo
  echo "cov is the number of code edges the harness reached, ft libFuzzer's finer features (edges"
  echo "with hit counts, comparisons); both as libFuzzer printed them last. A crash is any finding:"
  echo "a sanitizer report, a leak, a failed check of the harness, a timeout (10 s) or more than"
  echo "2 GB of memory; its input is kept under \`var/fuzz/NAME/\`."
} >"$WORK/fuzz.md"
mv "$WORK/fuzz.md" "$OUTMD"
echo "wrote $OUTMD"
exit "$rc"
