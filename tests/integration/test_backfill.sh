#!/usr/bin/env bash
# test_backfill.sh - `scrimp backfill` against the simulator: online mode through a 429 storm and
# 500 bursts; Batch Mode killed with SIGKILL mid-run and resumed (every input line gets exactly one
# output line, no batch is created twice, no request id is paid twice, also when the resumed runs
# are killed again at random moments); batches that fail,
# expire or carry per-request errors are retried; malformed lines become error lines; batch
# results are priced at half.
set -euo pipefail
SCRIMP=${1:?usage: test_backfill.sh path/to/scrimp}
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
WORK=$(mktemp -d /tmp/scrimp-it-backfill.XXXXXX)
. "$ROOT/scripts/lib.sh"
trap 'sc_stop_all; echo "work dir: $WORK"' EXIT
export GEMINI_API_KEY=bf-key

python3 "$ROOT/tests/integration/make_traffic.py" "$WORK" 1980 0
IN="$WORK/requests.jsonl"
COMMON=(-X limits.max_message_bytes=4096 -X gemini.backoff_initial_ms=20
        -X gemini.backoff_max_ms=300 -X gemini.backoff_jitter_ms=20 -X gemini.max_attempts=8)

check() { # check OUT NAME [batch]
  python3 - "$IN" "$1" "$2" "${3:-}" <<'PY'
import json, sys
inp, out, name, batch = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4] == "batch"
n_in = sum(1 for _ in open(inp, "rb"))
lines = [json.loads(l) for l in open(out, encoding="utf-8")]
nums = [r["line"] for r in lines]
fails = []
if sorted(nums) != list(range(1, n_in + 1)):
    fails.append(f"output lines {len(nums)} (distinct {len(set(nums))}) for {n_in} input lines")
raw = open(inp, "rb").read().split(b"\n")
bad = [r for r in lines if r["status"] != "ok"]
malformed = [r for r in bad if r["error"]["code"] in ("INVALID_JSON", "INVALID_REQUEST", "TOO_LARGE")]
if len(malformed) != 20 or len(bad) != 20:
    fails.append(f"{len(bad)} error lines, {len(malformed)} malformed (want 20 and 20): "
                 f"{[(r['line'], r['error']) for r in bad if r not in malformed][:3]}")
for r in lines:
    if r["status"] == "ok":
        want_id = json.loads(raw[r["line"] - 1])["id"]
        if r["id"] != want_id:
            fails.append(f"line {r['line']}: id {r['id']} != {want_id}"); break
        if batch and abs(r["savings"]["batch_usd"] - r["cost_usd"]) > 1e-9:
            fails.append(f"line {r['line']}: batch price is not half: {r['cost_usd']} "
                         f"saved {r['savings']['batch_usd']}"); break
        if not batch and r["savings"]["batch_usd"] != 0:
            fails.append("online result claims batch savings"); break
print(("FAIL " if fails else "ok   ") + name + (": " + "; ".join(fails) if fails else
      f" ({len(lines)} lines, {len(lines) - len(bad)} ok, {len(malformed)} malformed)"))
sys.exit(1 if fails else 0)
PY
}

# 1. Online mode through a 429 storm and 500 bursts: nothing fails because of them.
sc_start_sim "429=0.4,500=0.15,seed=5,retry_delay=0.02s,max_per_request=3"
"$SCRIMP" backfill "$IN" -o "$WORK/online.jsonl" --mode online "${COMMON[@]}" \
  -X "gemini.base_url=$SIM_URL" -X "cache.path=$WORK/c1" -X "prune.path=$WORK/s1" -X "router.shadow_path=$WORK/s1.shadow" >"$WORK/online.summary" 2>"$WORK/online.log"
check "$WORK/online.jsonl" "online mode, 429 storm and 500 bursts"
curl -sf "$SIM_URL/sim/stats" | python3 -c 'import json,sys; s=json.load(sys.stdin); f=s["faults"]; assert f["429"] > 100 and f["500"] > 20, f; print("ok   the simulator injected", f["429"], "429s and", f["500"], "500s")'
grep -q "ok " "$WORK/online.summary" || true
sc_stop "$PID_sim"

# 2. Batch Mode, killed mid-run with SIGKILL, then resumed.
sc_start_bg sim2 "$SCRIMP" gemini-sim --batch-pending-ms 300 --batch-running-ms 1200 \
  --record "$WORK/sim2.record"
SIM2=$(sc_first_line sim2)
BATCH=(--mode batch "${COMMON[@]}" -X "gemini.base_url=$SIM2" -X backfill.batch_max_requests=150
       -X "cache.path=$WORK/c2" -X "prune.path=$WORK/s2" -X "router.shadow_path=$WORK/s2.shadow"
       -X backfill.poll_initial_ms=100 -X backfill.poll_max_ms=400)
"$SCRIMP" backfill "$IN" -o "$WORK/batch.jsonl" "${BATCH[@]}" >"$WORK/batch1.summary" 2>"$WORK/batch1.log" &
BF=$!
for _ in $(seq 1 2400); do # the first window is embedded first: slow on a busy CPU
  n=$(grep -c '"ev":"created"' "$WORK/batch.jsonl.state" 2>/dev/null || true)
  [ "${n:-0}" -ge 3 ] && break
  kill -0 $BF 2>/dev/null || { echo "FAIL the batch backfill ended before it could be killed"; exit 1; }
  sleep 0.05
done
kill -KILL $BF; wait $BF 2>/dev/null || true
echo "killed the batch backfill after $(grep -c '"ev":"created"' "$WORK/batch.jsonl.state") batches were created and $(wc -l <"$WORK/batch.jsonl") lines written"
if "$SCRIMP" backfill "$IN" -o "$WORK/batch.jsonl" "${BATCH[@]}" >/dev/null 2>"$WORK/norerun.log"; then
  echo "FAIL a second run without --resume must refuse to touch the output"; exit 1
fi
grep -q -- "--resume" "$WORK/norerun.log" && echo "ok   a second run without --resume refuses and says why"
# SIGKILL at random points of the submission: each resumed run is killed again at a random moment
# (creating a batch, journaling it, polling, writing results), then the last one runs to the end
for round in 1 2 3; do
  ms=$((RANDOM % 6000))
  "$SCRIMP" backfill "$IN" -o "$WORK/batch.jsonl" --resume "${BATCH[@]}" >/dev/null 2>"$WORK/batchk$round.log" &
  BF=$!
  for _ in $(seq 1 2400); do # until the run is at its batches (after the model and the window)
    grep -q "event=batch\." "$WORK/batchk$round.log" 2>/dev/null && break
    kill -0 $BF 2>/dev/null || break
    sleep 0.05
  done
  sleep "$(printf '%d.%03d' $((ms / 1000)) $((ms % 1000)))"
  kill -KILL $BF 2>/dev/null || true; wait $BF 2>/dev/null || true
  echo "     resumed run $round killed $ms ms into its batches: $(grep -c '"ev":"created"' "$WORK/batch.jsonl.state") batches journaled, $(wc -l <"$WORK/batch.jsonl") lines written"
done
"$SCRIMP" backfill "$IN" -o "$WORK/batch.jsonl" --resume "${BATCH[@]}" >"$WORK/batch2.summary" 2>"$WORK/batch2.log"
check "$WORK/batch.jsonl" "batch mode after kill -9 and --resume" batch
curl -sf "$SIM2/sim/stats" >"$WORK/sim2.json"
python3 - "$WORK/sim2.json" "$WORK/batch.jsonl.state" "$WORK/batch.jsonl" "$WORK/sim2.record" <<'PY'
import collections, json, sys
s = json.load(open(sys.argv[1]))
ev = [json.loads(l) for l in open(sys.argv[2]) if l.strip()]
created = {e["name"] for e in ev if e["ev"] == "created"}
out = [json.loads(l) for l in open(sys.argv[3], encoding="utf-8")]
answered = {"L%d" % r["line"] for r in out if r["status"] == "ok" and r.get("source", "llm") == "llm"}
# every request the simulator was sent in a batch, by its key (the input line): each is paid once
batches = [json.loads(l) for l in open(sys.argv[4]) if l.startswith('{"batch"')]
paid = collections.Counter(k for b in batches for k in b["keys"])
twice = sorted(k for k, n in paid.items() if n > 1)
unanswered = sorted(set(paid) - answered)
missing = sorted(answered - set(paid))
fails = []
if s["batches_created"] != len(created) or len(batches) != len(created):
    fails.append(f"the simulator saw {s['batches_created']} creations ({len(batches)} recorded), "
                 f"the journal names {len(created)} batches")
if twice:
    fails.append(f"{len(twice)} request ids paid in more than one batch: {twice[:5]}")
if unanswered:
    fails.append(f"{len(unanswered)} request ids paid in a batch with no answer from it: {unanswered[:5]}")
if missing:
    fails.append(f"{len(missing)} answers from the model whose id no batch carried: {missing[:5]}")
if s["duplicate_batch_keys"] != 0:
    fails.append(f"the simulator counted {s['duplicate_batch_keys']} duplicate keys")
print(("FAIL " if fails else "ok   ") + "no request paid twice: " +
      ("; ".join(fails) if fails else
       f"{len(created)} batches, {sum(paid.values())} request ids paid, each once, "
       f"for {len(answered)} answers from the model"))
sys.exit(1 if fails else 0)
PY
cat "$WORK"/batchk*.log "$WORK/batch2.log" | grep -q "event=batch.adopt" && echo "ok   the resumed runs adopted the batches in flight"
sc_stop "$PID_sim2"

# 3. Batches that fail, expire or hold per-request errors are retried until every line is done.
sc_start_bg sim3 "$SCRIMP" gemini-sim --batch-pending-ms 50 --batch-running-ms 100 \
  --faults "batch_fail=0.1,batch_expire=0.05,batch_error=0.05,seed=9"
SIM3=$(sc_first_line sim3)
"$SCRIMP" backfill "$IN" -o "$WORK/flaky.jsonl" --mode batch "${COMMON[@]}" -X "gemini.base_url=$SIM3" \
  -X "cache.path=$WORK/c3" -X "prune.path=$WORK/s3" -X "router.shadow_path=$WORK/s3.shadow" \
  -X backfill.batch_max_requests=100 -X backfill.poll_initial_ms=50 -X backfill.poll_max_ms=200 \
  -X backfill.max_batch_retries=10 >"$WORK/flaky.summary" 2>"$WORK/flaky.log"
check "$WORK/flaky.jsonl" "failed, expired and partly failed batches retried" batch
grep -q "event=batch.failed" "$WORK/flaky.log" && echo "ok   failed batches were seen and retried"
rm -rf "$WORK"
trap sc_stop_all EXIT
