#!/usr/bin/env bash
# test_broker_outage.sh - the broker goes down in the middle of a run and comes back (librdkafka's
# mock cluster's own fault injection: `scrimp dev-broker` takes its broker down on SIGUSR1 and up on
# SIGUSR2). Asserts: every request gets exactly one result, serve reports the outage with its
# cause, SIGTERM drains and exits 0, and the offsets it committed cover everything: a serve started
# afterwards in the same group publishes nothing again.
set -euo pipefail
SCRIMP=${1:?usage: test_broker_outage.sh path/to/scrimp}
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
WORK=$(mktemp -d /tmp/scrimp-it-outage.XXXXXX)
. "$ROOT/scripts/lib.sh"
trap 'sc_stop_all; echo "work dir: $WORK"' EXIT
FAILS=0
pass() { echo "ok   $1"; }
fail() { echo "FAIL $1"; FAILS=$((FAILS + 1)); }

N=800; OUTAGE_S=9; DEADLINE_S=180 # the outage outlasts the 6 s session timeout
python3 "$ROOT/tests/integration/make_traffic.py" "$WORK" $N 0
sc_start_broker 4
sc_start_sim "delay=1,delay_ms=150,seed=3" # slow enough that work of the old assignment is still in flight when the partitions come back
export GEMINI_API_KEY=outage-key
SERVE_ARGS=(serve -X "kafka.bootstrap.servers=$BOOTSTRAP" -X "gemini.base_url=$SIM_URL"
  -X metrics.listen=127.0.0.1:0 -X "cache.path=$WORK/cache" -X "prune.path=$WORK/summaries"
  -X "router.shadow_path=$WORK/summaries.shadow" -X kafka.session.timeout.ms=6000
  -X kafka.heartbeat.interval.ms=500 -X gemini.max_inflight=8 -X batch.max_messages=32
  -X limits.max_message_bytes=4096
  -X request.default_deadline_ms=600000) # serve takes in all N at once, and the simulator's few
  # threads answer each call in 150 ms: on a busy machine the last of them reached their call near
  # the default 120 s deadline (a CI run, beside two multi-replica tests, got 5 DEADLINE_EXCEEDED
  # results whose first attempts started 150 ms apart just before it); this test is about the
  # broker, not deadlines

count() { sc_consume scrimp.results "$WORK/results.jsonl"; sc_count_ids "$WORK/results.jsonl"; }

kcat -P -b "$BOOTSTRAP" -t scrimp.requests -l "$WORK/requests.jsonl"
sc_start_bg serve1 "$SCRIMP" "${SERVE_ARGS[@]}"
start=$SECONDS
while [ "$(count)" -lt 100 ]; do
  [ $((SECONDS - start)) -lt 60 ] || { fail "fewer than 100 results before the outage"; exit 1; }
  sleep 0.3
done
before=$(count)
kill -USR1 "$PID_broker"
echo "broker down after $before results"
sleep "$OUTAGE_S"
kill -USR2 "$PID_broker"
echo "broker up again after ${OUTAGE_S} s"
start=$SECONDS
while [ "$(count)" -lt "$(wc -l <"$WORK/valid_ids.txt")" ]; do
  [ $((SECONDS - start)) -lt "$DEADLINE_S" ] || break
  sleep 0.5
done
# the group lost serve's partitions during the outage; wait until it has them back
start=$SECONDS
until [ "$(grep -c 'event=kafka.assign' "$WORK/serve1.log")" -ge 2 ]; do
  [ $((SECONDS - start)) -lt 60 ] || { fail "serve did not rejoin the group within 60 s"; break; }
  sleep 0.3
done
grep -q "event=kafka.revoke" "$WORK/serve1.log" && pass "the outage outlasted the session: the group revoked serve's partitions and gave them back" ||
  echo "note: the group kept serve's partitions through the outage"
sleep 3 # let the auto-commit of the resumed offsets happen (auto.commit.interval.ms)
grep -q "event=broker.down" "$WORK/broker.log" && grep -q "event=broker.up" "$WORK/broker.log" &&
  pass "the dev broker went down and came back (its log says so)" ||
  fail "the broker log does not show the outage: $(tail -3 "$WORK/broker.log")"
rc=0; sc_stop "$PID_serve1" 60 || rc=$?
[ "$rc" -eq 0 ] && pass "SIGTERM after the outage drains and exits 0" || fail "serve exited $rc"
echo "messages consumed again after the partitions came back, skipped as published or in flight: $(grep -o 'skipped_published=[0-9]*' "$WORK/serve1.log" | tail -1 | cut -d= -f2)"
# what serve said about the outage: librdkafka's transport errors, named with their cause
if grep -Eiq "kafka.*(transport|connect|down|refused|disconnect)" "$WORK/serve1.log"; then
  pass "serve logged the outage with its cause: $(grep -Eim1 'kafka.*(transport|connect|down|refused|disconnect)' "$WORK/serve1.log" | cut -c1-160)"
else
  fail "serve's log does not mention the outage"
fi

# A second serve in the same group: the committed offsets must cover every request.
sc_consume scrimp.results "$WORK/results.jsonl"
cp "$WORK/results.jsonl" "$WORK/results.first.jsonl"
sc_start_bg serve2 "$SCRIMP" "${SERVE_ARGS[@]}"
sleep 8
sc_stop "$PID_serve2" 60 || true
sc_consume scrimp.results "$WORK/results.jsonl"

python3 - "$WORK/requests.jsonl" "$WORK/results.first.jsonl" "$WORK/results.jsonl" <<'PY' || FAILS=$((FAILS + 1))
import collections, json, sys
want = set(open(sys.argv[1].replace("requests.jsonl", "valid_ids.txt")).read().split())
first = [json.loads(l) for l in open(sys.argv[2], encoding="utf-8")]
after = [json.loads(l) for l in open(sys.argv[3], encoding="utf-8")]
n = collections.Counter(r["id"] for r in first)
fails = []
missing = sorted(want - set(n))
dup = sorted(i for i, c in n.items() if c > 1)
bad = [r for r in first if r.get("status") != "ok"]
if missing: fails.append(f"{len(missing)} requests without a result: {missing[:5]}")
if dup: fails.append(f"{len(dup)} requests with more than one result: {dup[:5]}")
if bad: fails.append(f"{len(bad)} error results: {[(r['id'], r.get('error')) for r in bad[:3]]}")
again = len(after) - len(first)
if again: fails.append(f"a serve started after the run published {again} results again "
                       "(offsets not committed)")
print(("FAIL " if fails else "ok   ") + ("; ".join(fails) if fails else
      f"{len(want)} requests, each with exactly one ok result; a later serve in the group "
      "published nothing again"))
sys.exit(1 if fails else 0)
PY
[ "$FAILS" -eq 0 ] || { echo "$FAILS failure(s)"; exit 1; }
echo "all ok"
