#!/usr/bin/env bash
# test_secrets.sh - the Gemini key never leaves the process that holds it: with a unique key in
# GEMINI_API_KEY (and a simulator that refuses any other, so the key is really sent), nothing
# scrimp writes holds it — `scrimp config dump`, serve's and backfill's logs and stdout, /metrics,
# the results, dead letters and shadow lines on Kafka, the backfill output and its journal, the
# cache, summary and shadow stores — while a wrong key ends as an error result that does not
# hold the right one either.
set -euo pipefail
SCRIMP=${1:?usage: test_secrets.sh path/to/scrimp}
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
WORK=$(mktemp -d /tmp/scrimp-it-secrets.XXXXXX)
. "$ROOT/scripts/lib.sh"
trap 'sc_stop_all; echo "work dir: $WORK"' EXIT
KEY="sk-scrimp-test-$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')"
export GEMINI_API_KEY="$KEY"
FAILS=0
pass() { echo "ok   $1"; }
fail() { echo "FAIL $1"; FAILS=$((FAILS + 1)); }

sc_start_broker 2
sc_start_bg sim "$SCRIMP" gemini-sim --api-key "$KEY"
SIM_URL=$(sc_first_line sim)
MPORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
ARGS=(-X "kafka.bootstrap.servers=$BOOTSTRAP" -X "gemini.base_url=$SIM_URL"
      -X "cache.path=$WORK/store/cache" -X "prune.path=$WORK/store/summaries"
      -X "router.shadow_path=$WORK/store/shadow" -X router.shadow_rate=1)

"$SCRIMP" config dump "${ARGS[@]}" >"$WORK/config_dump.txt" 2>&1
grep -q "gemini" "$WORK/config_dump.txt" && pass "config dump ran" || fail "config dump: $(head -c 200 "$WORK/config_dump.txt")"

python3 - "$WORK/requests.jsonl" <<'PY'
import json, sys
with open(sys.argv[1], "w") as f:
    for i in range(40):
        f.write(json.dumps({"id": "s-%03d" % i, "tenant": "acme", "agent": "helper",
                            "messages": [{"role": "user", "content": "question number %d about invoices" % i}]}) + "\n")
    f.write("{not json\n")
PY
kcat -P -b "$BOOTSTRAP" -t scrimp.requests -l "$WORK/requests.jsonl"
sc_start_bg serve "$SCRIMP" serve "${ARGS[@]}" -X "metrics.listen=127.0.0.1:$MPORT" \
  -X kafka.session.timeout.ms=6000 -X kafka.heartbeat.interval.ms=500
n=0
for _ in $(seq 1 240); do
  sc_consume scrimp.results "$WORK/results.jsonl"
  n=$(sc_count_ids "$WORK/results.jsonl")
  [ "$n" -ge 40 ] && break
  sleep 0.25
done
[ "$n" -ge 40 ] && pass "serve: 40 results with the right key" || fail "serve: $n of 40 results"
curl -sf "http://127.0.0.1:$MPORT/metrics" >"$WORK/metrics.txt" || fail "/metrics did not answer"
sleep 1
sc_consume scrimp.dlq "$WORK/dlq.jsonl"
sc_consume scrimp.shadow "$WORK/shadow.jsonl"
sc_stop "$PID_serve"
[ -s "$WORK/dlq.jsonl" ] && pass "the malformed message is a dead letter" || fail "no dead letter"
grep -q '"status":"ok"' "$WORK/results.jsonl" && pass "results are ok" || fail "no ok result"

# backfill, with its journal, and a run with a wrong key (each request an error result)
head -n 10 "$WORK/requests.jsonl" >"$WORK/bf.jsonl"
"$SCRIMP" backfill "$WORK/bf.jsonl" -o "$WORK/bf.out.jsonl" --mode online "${ARGS[@]}" \
  -X "cache.path=$WORK/store/cache-bf" >"$WORK/backfill.stdout" 2>"$WORK/backfill.log" ||
  fail "backfill with the right key failed: $(tail -3 "$WORK/backfill.log")"
GEMINI_API_KEY="wrong-$KEY-wrong" "$SCRIMP" backfill "$WORK/bf.jsonl" -o "$WORK/bf-wrong.jsonl" \
  --mode online "${ARGS[@]}" -X "cache.path=$WORK/store/cache-wrong" -X cache.enabled=false \
  -X gemini.max_attempts=1 >"$WORK/wrong.stdout" 2>"$WORK/wrong.log" || true
if grep -q '"status":"error"' "$WORK/bf-wrong.jsonl" 2>/dev/null; then
  pass "a wrong key ends as error results"
else fail "a wrong key: $(head -c 300 "$WORK/bf-wrong.jsonl" 2>/dev/null) $(tail -2 "$WORK/wrong.log")"; fi

# the search: every file scrimp wrote (the simulator's own files aside: it is the server)
leaks=$(grep -rl --binary-files=text -F "$KEY" "$WORK" | grep -v -e "/sim.out$" -e "/sim.log$" || true)
files=$(find "$WORK" -type f ! -name 'sim.out' ! -name 'sim.log' | wc -l)
if [ -z "$leaks" ] && [ "$files" -gt 15 ]; then
  pass "the key is in none of the $files files scrimp wrote (logs, stdout, /metrics, topics, output, journal, stores)"
else fail "the key leaked into: ${leaks:-nothing, but only $files files searched}"; fi

echo "$FAILS failures"
[ "$FAILS" -eq 0 ]
