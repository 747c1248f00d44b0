#!/usr/bin/env bash
# test_cache_crash.sh - kill -9 a process in the middle of a stream of cache inserts, twice; after
# each restart the store opens, every acknowledged entry is present and found by its vector, and the
# index holds exactly the store's entries. `scrimp cache get` reads an acknowledged entry too.
# With CW_INDEX=hnsw (in the environment) the partitions are HNSW and saved at checkpoints and at
# close: whatever a kill leaves, the reopen must not serve a stale saved index, and a reopen after a
# clean close loads the saved one.
set -uo pipefail
WRITER=${1:?usage: test_cache_crash.sh path/to/cache_writer [path/to/scrimp]}
SCRIMP=${2:-}
WORK=$(mktemp -d /tmp/scrimp-it-cache.XXXXXX)
WPID=
trap '[ -n "$WPID" ] && kill -9 "$WPID" 2>/dev/null; rm -rf "$WORK"' EXIT
FAILS=0
MIN_ACKS=150      # acknowledged inserts before the kill
WAIT_S=60         # bound on the wait for them

pass() { echo "ok   $1"; }
fail() { echo "FAIL $1"; FAILS=$((FAILS + 1)); }

# run_and_kill ROUND FIRST_SEQ [MIN [EXTRA_MS]]: start a writer, wait for MIN (default MIN_ACKS)
# more acknowledged lines and EXTRA_MS more milliseconds, kill -9.
run_and_kill() {
  local round=$1 first=$2 min=${3:-$MIN_ACKS} extra_ms=${4:-0} before after deadline
  before=$(cat "$WORK"/acks.* 2>/dev/null | wc -l)
  "$WRITER" write "$WORK/store" "$first" >"$WORK/acks.$round" 2>"$WORK/writer.$round.err" &
  WPID=$!
  deadline=$((SECONDS + WAIT_S))
  while :; do
    after=$(cat "$WORK"/acks.* | wc -l)
    [ "$after" -ge $((before + min)) ] && break
    if ! kill -0 "$WPID" 2>/dev/null; then fail "round $round: writer died: $(cat "$WORK/writer.$round.err")"; return; fi
    [ "$SECONDS" -ge "$deadline" ] && { fail "round $round: only $((after - before)) acks in ${WAIT_S}s"; break; }
    sleep 0.05
  done
  [ "$extra_ms" -gt 0 ] && sleep "$(printf '0.%03d' "$extra_ms")"
  kill -9 "$WPID"
  wait "$WPID" 2>/dev/null
  WPID=
  pass "round $round: writer killed with SIGKILL after $(($(cat "$WORK"/acks.* | wc -l) - before)) acks"
}

verify() {
  local round=$1 out
  cat "$WORK"/acks.* >"$WORK/all-acks"
  if out=$("$WRITER" verify "$WORK/store" "$WORK/all-acks" 2>&1); then
    echo "$out" >"$WORK/verify.out"
    pass "round $round: reopen: $out"
  else
    fail "round $round: reopen: $out"
  fi
}

run_and_kill 1 0
verify 1
run_and_kill 2 1000000
verify 2
if [ "${CW_INDEX:-}" = hnsw ]; then
  # verify 2 closed cleanly and saved the index: this reopen loads it, and it answers as well
  verify 3
  if grep -q "saved_index=loaded" <<<"$(tail -n 1 "$WORK/verify.out" 2>/dev/null)"; then
    pass "round 3: the index saved at the clean close was loaded"
  else
    fail "round 3: the index saved at the clean close was not loaded"
  fi
  # SIGKILL at random points of a checkpoint: the writer checkpoints after every insert, so it is
  # inside one (writing index.scx) most of the time, and each kill lands at a random moment
  for round in 4 5 6 7 8; do
    ms=$((RANDOM % 900 + 50))
    echo "     round $round: kill $ms ms after 20 more acks, a checkpoint after every insert"
    CW_CHECKPOINT_EVERY=1 run_and_kill "$round" $((round * 1000000)) 20 "$ms"
    verify "$round"
  done
fi

# the admin tool reads an acknowledged entry, in full
if [ -n "$SCRIMP" ] && "$SCRIMP" cache stats -X cache.path="$WORK/store" >/dev/null 2>&1; then
  read -r id seq < <(tail -n 2 "$WORK/acks.2" | head -n 1)
  out=$("$SCRIMP" cache get "$id" -X cache.path="$WORK/store" 2>&1)
  if grep -q "\"response\": *\"response $seq\"" <<<"$out"; then pass "scrimp cache get $id"
  else fail "scrimp cache get $id: $out"; fi
else
  echo "skip scrimp cache get (this scrimp has no cache command yet)"
fi

[ "$FAILS" -eq 0 ] && echo "PASS test_cache_crash" || echo "FAIL test_cache_crash ($FAILS)"
exit $((FAILS > 0))
