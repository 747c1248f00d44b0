#!/usr/bin/env bash
# bench/backfill_loop.sh - the backfill integration test (Batch Mode killed with SIGKILL at random
# moments and resumed, every request id paid once) run N times in a row under the AddressSanitizer
# + UndefinedBehaviorSanitizer build of scripts/test --sanitize, whose slowdown widens every race
# window; stops at the first failure. Writes bench/results/backfill-loop.md.
# usage: bench/backfill_loop.sh [N]   (default 50)
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
N=${1:-50}
[[ "$N" =~ ^[1-9][0-9]*$ ]] || { echo "usage: bench/backfill_loop.sh [N]" >&2; exit 2; }
OUTMD="$ROOT/bench/results/backfill-loop.md"
LOG=$(mktemp /tmp/scrimp-backfill-loop.XXXXXX)
trap 'rm -f "$LOG"' EXIT
start=$(date +%s)
rc=0
"$ROOT/scripts/test" --sanitize -R '^integration_backfill$' --repeat "until-fail:$N" >"$LOG" 2>&1 || rc=$?
secs=$(( $(date +%s) - start ))
passed=$(grep -c "integration_backfill .*Passed" "$LOG" || true)
failed=$(grep -c "integration_backfill .*\*\*\*\(Failed\|Timeout\)" "$LOG" || true)
{
  echo "# The backfill test, $N times in a row under ASan + UBSan"
  echo
  echo "- command: \`bench/backfill_loop.sh $N\` (\`scripts/test --sanitize -R '^integration_backfill\$' --repeat until-fail:$N\`)"
  echo "- machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(nproc) cores"
  echo "- date: $(date -u '+%Y-%m-%d %H:%M UTC'); build: $(git -C "$ROOT" rev-parse --short HEAD)"
  echo "- each run: online mode through 429s and 500s; Batch Mode killed with SIGKILL after three batches, three resumed runs killed at random moments, a last one to the end; every request id paid once (the simulator's record of every batch's keys); failed and expired batches retried"
  echo
  echo "| runs passed | runs failed | wall time |"
  echo "|---:|---:|---:|"
  echo "| $passed | $failed | $((secs / 60)) min $((secs % 60)) s |"
  echo
  echo "ctest's last lines:"
  echo
  echo '```'
  grep -E "tests passed|Total Test time|Failed|Passed" "$LOG" | tail -n 6
  echo '```'
  if [ "$rc" -ne 0 ]; then
    echo
    echo "What the failed run said (its work dir is kept):"
    echo
    echo '```'
    grep -E "^(FAIL|ok  |work dir)" "$LOG" | tail -n 20
    echo '```'
  fi
} >"$OUTMD"
cat "$OUTMD"
exit "$rc"
