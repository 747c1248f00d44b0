#!/usr/bin/env bash
# test_serve.sh - end to end through a real Kafka protocol: kcat (an independent client) produces
# 1,000 requests, 20 of them malformed; scrimp serve is killed with SIGKILL mid-run and restarted;
# the simulator injects 429/500/503 and answers some requests 400. Asserts: every valid id gets a
# result, every malformed message a dead letter with a reason, retries end ok, a 400 is not
# retried, and SIGTERM drains and exits 0.
set -euo pipefail
SCRIMP=${1:?usage: test_serve.sh path/to/scrimp}
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
WORK=$(mktemp -d /tmp/scrimp-it-serve.XXXXXX)
. "$ROOT/scripts/lib.sh"
trap 'sc_stop_all; echo "work dir: $WORK"' EXIT

N_VALID=980; N_REJECTED=10; DEADLINE_S=240
python3 "$ROOT/tests/integration/make_traffic.py" "$WORK" $N_VALID $N_REJECTED
TOTAL=$(wc -l <"$WORK/requests.jsonl")
[ "$TOTAL" -eq 1000 ] || { echo "FAIL: expected 1000 requests, made $TOTAL"; exit 1; }

sc_start_broker 4
sc_start_sim "429=0.1,503=0.1,500=0.03,delay=0.5,delay_ms=40,seed=11,retry_delay=0.05s"
export GEMINI_API_KEY=it-key
SERVE_ARGS=(serve -X "kafka.bootstrap.servers=$BOOTSTRAP" -X "gemini.base_url=$SIM_URL"
  -X metrics.listen=127.0.0.1:0 -X "cache.path=$WORK/cache" -X "prune.path=$WORK/summaries" -X "router.shadow_path=$WORK/summaries.shadow"
  -X kafka.session.timeout.ms=6000 -X kafka.heartbeat.interval.ms=500
  -X gemini.backoff_initial_ms=20 -X gemini.backoff_max_ms=300 -X gemini.backoff_jitter_ms=20
  -X gemini.max_inflight=64 -X batch.max_messages=64 -X limits.max_message_bytes=4096
  -X batch.priority_max_wait_ms=300 -X backfill.poll_initial_ms=100 -X backfill.poll_max_ms=300)

wait_for() { # wait_for MIN_RESULTS TIMEOUT_S
  local start=$SECONDS n=0
  while [ $((SECONDS - start)) -lt "$2" ]; do
    sc_consume scrimp.results "$WORK/results.jsonl"
    n=$(sc_count_ids "$WORK/results.jsonl")
    [ "$n" -ge "$1" ] && { echo "results: $n distinct ids"; return 0; }
    sleep 0.5
  done
  echo "FAIL: only $n of $1 results after $2 s"; return 1
}

# Phase 1: 600 messages, kill -9 mid-run.
head -n 600 "$WORK/requests.jsonl" | kcat -P -b "$BOOTSTRAP" -t scrimp.requests
sc_start_bg serve1 "$SCRIMP" "${SERVE_ARGS[@]}"
wait_for 150 60
kill -KILL "$PID_serve1"; wait "$PID_serve1" 2>/dev/null || true
echo "killed serve with SIGKILL after $(sc_count_ids "$WORK/results.jsonl") results"

# Phase 2: the rest, and a restarted serve that must finish everything.
tail -n +601 "$WORK/requests.jsonl" | kcat -P -b "$BOOTSTRAP" -t scrimp.requests
sc_start_bg serve2 "$SCRIMP" "${SERVE_ARGS[@]}"
wait_for $N_VALID $DEADLINE_S || { tail -30 "$WORK/serve2.log"; exit 1; }

# Dead letters are published before the results of the same batch finish; give them a moment.
for _ in $(seq 1 40); do
  sc_consume scrimp.dlq "$WORK/dlq.jsonl"
  [ "$(grep -c . "$WORK/dlq.jsonl" || true)" -ge 20 ] && break
  sleep 0.25
done

# Phase 3: requests marked "priority": "batch" go through Gemini Batch Mode at half price.
python3 - "$WORK/priority.jsonl" <<'PY'
import json, sys
with open(sys.argv[1], "w") as f:
    for i in range(30):
        f.write(json.dumps({"id": f"pb-{i:03d}", "tenant": "acme", "priority": "batch",
                            "model": ["gemini-2.5-flash", "gemini-2.5-pro"][i % 2],
                            "messages": [{"role": "user", "content": f"nightly summary {i}"}]}) + "\n")
PY
kcat -P -b "$BOOTSTRAP" -t scrimp.requests -l "$WORK/priority.jsonl"
for _ in $(seq 1 120); do
  sc_consume scrimp.results "$WORK/results.jsonl"
  [ "$(grep -c '"id":"pb-' "$WORK/results.jsonl" || true)" -ge 30 ] && break
  sleep 0.25
done
python3 - "$WORK/results.jsonl" <<'PY'
import json, sys
rs = {}
for l in open(sys.argv[1], encoding="utf-8"):
    r = json.loads(l)
    if r["id"].startswith("pb-"):
        rs[r["id"]] = r
ok = len(rs) == 30 and all(r["status"] == "ok" and r["savings"]["batch_usd"] > 0 and
                           abs(r["savings"]["batch_usd"] - r["cost_usd"]) < 1e-9 for r in rs.values())
print(("ok   " if ok else "FAIL ") + f"priority batch requests answered through Batch Mode at half "
      f"price ({len(rs)} of 30 results)")
sys.exit(0 if ok else 1)
PY
grep -c "event=batch.created" "$WORK/serve2.log" | sed 's/^/batches created by serve: /'
# keep check_results.py's view to the first 1,000 requests
grep -v '"id":"pb-' "$WORK/results.jsonl" >"$WORK/r.tmp" && mv "$WORK/r.tmp" "$WORK/results.jsonl"

t0=$SECONDS
sc_stop "$PID_serve2" 30 && rc=0 || rc=$?
echo "serve exited with $rc after SIGTERM in $((SECONDS - t0)) s"
[ "$rc" -eq 0 ] || { echo "FAIL: SIGTERM should drain and exit 0"; tail -20 "$WORK/serve2.log"; exit 1; }
grep -q 'event=serve.stop status=OK' "$WORK/serve2.log" || { echo "FAIL: no clean stop logged"; exit 1; }

sc_consume scrimp.results "$WORK/results.jsonl"
grep -v '"id":"pb-' "$WORK/results.jsonl" >"$WORK/r.tmp" && mv "$WORK/r.tmp" "$WORK/results.jsonl"
curl -sf "$SIM_URL/sim/stats" >"$WORK/sim_stats.json"
python3 "$ROOT/tests/integration/check_results.py" "$WORK"
rm -rf "$WORK"
trap sc_stop_all EXIT
