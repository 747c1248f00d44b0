#!/usr/bin/env bash
# test_upstream_faults.sh - `scrimp backfill --mode online` and `scrimp serve` against an upstream
# that resets connections, truncates bodies and answers past the deadline (the simulator's reset,
# truncate and delay faults). Asserts: every input line gets exactly one output line (every
# request id one result); transient faults end ok and the log names each retry's cause; a slow
# upstream ends each call at its deadline with DEADLINE_EXCEEDED and why, promptly; a fault that
# outlasts the attempts (or holds the breaker open past the deadline) is an error that names it.
set -euo pipefail
SCRIMP=${1:?usage: test_upstream_faults.sh path/to/scrimp}
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
WORK=$(mktemp -d /tmp/scrimp-it-upstream.XXXXXX)
. "$ROOT/scripts/lib.sh"
trap 'sc_stop_all; echo "work dir: $WORK"' EXIT
export GEMINI_API_KEY=uf-key

N_VALID=400      # lines of the fault runs (and 20 malformed)
N_SLOW=40        # lines of the slow run: each holds a simulator thread for SLOW_MS
SLOW_MS=3000     # every answer of the slow upstream takes this long
DEADLINE_MS=1000 # the deadline_ms of the slow run's requests (parsing and routing count too)
PROMPT_MS=2800   # the slow run must end within this: sooner than one answer

python3 "$ROOT/tests/integration/make_traffic.py" "$WORK" $N_VALID 0
IN="$WORK/requests.jsonl"
COMMON=(-X limits.max_message_bytes=4096 -X gemini.backoff_initial_ms=20
        -X gemini.backoff_max_ms=300 -X gemini.backoff_jitter_ms=20)

run_backfill() { # run_backfill NAME INPUT SIM_URL [-X k=v ...]: OUT is $WORK/NAME.jsonl
  local name=$1 in=$2 url=$3; shift 3
  SCRIMP_LOG=debug "$SCRIMP" backfill "$in" -o "$WORK/$name.jsonl" --mode online "${COMMON[@]}" \
    -X "gemini.base_url=$url" -X "cache.path=$WORK/$name.cache" -X "prune.path=$WORK/$name.s" \
    -X "router.shadow_path=$WORK/$name.shadow" "$@" >"$WORK/$name.summary" 2>"$WORK/$name.log"
}

# check INPUT OUT NAME WANT [NEEDLE...]: every input line has exactly one output line; the 20
# malformed lines are malformed errors; every other line is ok (WANT=ok) or an error whose code
# is WANT and whose message holds one of the NEEDLEs.
check() {
  python3 - "$@" <<'PY'
import json, sys
inp, out, name, want, needles = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5:]
raw = open(inp, "rb").read().split(b"\n")[:-1]
lines = [json.loads(l) for l in open(out, encoding="utf-8")]
nums = [r["line"] for r in lines]
fails = []
if sorted(nums) != list(range(1, len(raw) + 1)):
    fails.append(f"{len(nums)} output lines ({len(set(nums))} distinct) for {len(raw)} input lines")
malformed = [r for r in lines if r["status"] != "ok" and
             r["error"]["code"] in ("INVALID_JSON", "INVALID_REQUEST", "TOO_LARGE")]
rest = [r for r in lines if r not in malformed]
if len(malformed) != 20:
    fails.append(f"{len(malformed)} malformed lines, want 20")
for r in rest:
    want_id = json.loads(raw[r["line"] - 1])["id"]
    if r["id"] != want_id:
        fails.append(f"line {r['line']}: id {r['id']} != {want_id}"); break
    if want == "ok":
        if r["status"] != "ok":
            fails.append(f"line {r['line']}: {r['status']} {r.get('error')}"); break
    elif r["status"] == "ok" or r["error"]["code"] != want or \
            not any(n in r["error"]["message"] for n in needles):
        fails.append(f"line {r['line']}: {r['status']} {r.get('error')}, want {want} naming "
                     f"one of {needles}"); break
detail = "" if fails or not rest else "ok" if want == "ok" else \
    f"{want}, e.g. \"{rest[0]['error']['message'][:150]}\""
print(("FAIL " if fails else "ok   ") + name + (": " + "; ".join(fails) if fails else
      f" ({len(lines)} lines for {len(raw)}: {len(rest)} {detail}, {len(malformed)} malformed)"))
sys.exit(1 if fails else 0)
PY
}

# faults URL KIND...: the simulator injected each KIND at least once; prints the counts.
faults() {
  curl -sf "$1/sim/stats" | python3 -c '
import json, sys
f = json.load(sys.stdin)["faults"]
kinds = sys.argv[1:]
missing = [k for k in kinds if f[k] <= 0]
print(("FAIL " if missing else "ok   ") + "the simulator injected " +
      ", ".join(f"{f[k]} {k}" for k in kinds))
sys.exit(1 if missing else 0)' "${@:2}"
}

# 1. Resets and truncated bodies (each body failed at most twice): every line ends ok, and the log
#    names the cause of the retries.
sc_start_sim "reset=0.2,truncate=0.2,seed=13"
run_backfill flaky "$IN" "$SIM_URL" -X gemini.max_attempts=8
check "$IN" "$WORK/flaky.jsonl" "resets and truncated bodies retried" ok
faults "$SIM_URL" reset truncate
for cause in "connection reset / empty reply" "body truncated: got "; do
  n=$(grep "event=gemini.retry" "$WORK/flaky.log" | grep -c "cause=\"$cause" || true)
  [ "$n" -gt 0 ] || { echo "FAIL no retry in the log names \"$cause\""; exit 1; }
  echo "ok   $n retries logged with cause \"$cause...\""
done
sc_stop "$PID_sim"

# 2. The same through `scrimp serve` on the dev broker: every valid id gets exactly one result, ok;
#    every malformed message a dead letter; SIGTERM drains and exits 0.
sc_start_broker 4
sc_start_bg servesim "$SCRIMP" gemini-sim --faults "reset=0.2,truncate=0.2,seed=17"
SERVE_SIM=$(sc_first_line servesim)
kcat -P -b "$BOOTSTRAP" -t scrimp.requests -l "$IN"
sc_start_bg serve env SCRIMP_LOG=debug "$SCRIMP" serve -X "kafka.bootstrap.servers=$BOOTSTRAP" \
  -X "gemini.base_url=$SERVE_SIM" -X metrics.listen=127.0.0.1:0 -X "cache.path=$WORK/serve.cache" \
  -X "prune.path=$WORK/serve.s" -X "router.shadow_path=$WORK/serve.shadow" \
  -X kafka.session.timeout.ms=6000 -X kafka.heartbeat.interval.ms=500 "${COMMON[@]}" \
  -X gemini.max_attempts=8 -X gemini.max_inflight=64 -X batch.max_messages=64
n=0
for _ in $(seq 1 240); do
  sc_consume scrimp.results "$WORK/results.jsonl"
  n=$(sc_count_ids "$WORK/results.jsonl")
  [ "$n" -ge $N_VALID ] && break
  kill -0 "$PID_serve" 2>/dev/null || { echo "FAIL serve exited"; tail -20 "$WORK/serve.log"; exit 1; }
  sleep 0.25
done
for _ in $(seq 1 40); do # dead letters are published before the results of their batch finish
  sc_consume scrimp.dlq "$WORK/dlq.jsonl"
  [ "$(grep -c . "$WORK/dlq.jsonl" || true)" -ge 20 ] && break
  sleep 0.25
done
sc_stop "$PID_serve" 30 && rc=0 || rc=$?
[ "$rc" -eq 0 ] || { echo "FAIL serve exited with $rc after SIGTERM"; tail -20 "$WORK/serve.log"; exit 1; }
sc_consume scrimp.results "$WORK/results.jsonl"
sc_consume scrimp.dlq "$WORK/dlq.jsonl"
python3 - "$WORK/valid_ids.txt" "$WORK/results.jsonl" "$WORK/dlq.jsonl" <<'PY'
import collections, json, sys
valid = set(open(sys.argv[1]).read().split())
results = [json.loads(l) for l in open(sys.argv[2], encoding="utf-8") if l.strip()]
dlq = [json.loads(l) for l in open(sys.argv[3], encoding="utf-8") if l.strip()]
per_id = collections.Counter(r["id"] for r in results)
fails = []
if set(per_id) != valid:
    fails.append(f"results for {len(per_id)} ids, {len(valid)} valid "
                 f"(missing {len(valid - set(per_id))}, unexpected {len(set(per_id) - valid)})")
twice = [i for i, n in per_id.items() if n > 1]
if twice:
    fails.append(f"{len(twice)} ids with more than one result: {twice[:5]}")
bad = [r for r in results if r["status"] != "ok"]
if bad:
    fails.append(f"{len(bad)} results not ok: {[r['error'] for r in bad[:2]]}")
if len({(x["source"]["partition"], x["source"]["offset"]) for x in dlq}) != 20:
    fails.append(f"{len(dlq)} dead letters, want the 20 malformed messages")
print(("FAIL " if fails else "ok   ") + "serve through resets and truncated bodies" +
      (": " + "; ".join(fails) if fails else
       f" ({len(results)} results for {len(valid)} ids, all ok; {len(dlq)} dead letters; "
       f"{sum(1 for r in results if r['attempts'] > 1)} retried)"))
sys.exit(1 if fails else 0)
PY
faults "$SERVE_SIM" reset truncate
grep "event=gemini.retry" "$WORK/serve.log" | grep -c 'cause="body truncated: got ' >/dev/null ||
  { echo "FAIL serve logged no retry naming a truncated body"; exit 1; }
sc_stop "$PID_servesim"
sc_stop "$PID_broker"

# 3. A slow upstream (every answer SLOW_MS late) and requests whose deadline_ms is DEADLINE_MS:
#    each ends at its deadline with DEADLINE_EXCEEDED and why, and the run ends promptly.
mkdir "$WORK/slow"
python3 "$ROOT/tests/integration/make_traffic.py" "$WORK/slow" $N_SLOW 0
python3 - "$WORK/slow/requests.jsonl" "$WORK/slow.jsonl.in" $DEADLINE_MS <<'PY'
import json, sys
src, dst, ms = sys.argv[1], sys.argv[2], int(sys.argv[3])
with open(src, "rb") as f, open(dst, "wb") as o:
    for line in f.read().split(b"\n")[:-1]:
        try:
            r = json.loads(line)
            ok = isinstance(r, dict) and str(r.get("id", "")).startswith("it-")
        except ValueError:
            ok = False
        if ok:
            r["deadline_ms"] = ms
            line = json.dumps(r).encode()
        o.write(line + b"\n")
PY
sc_start_bg slowsim "$SCRIMP" gemini-sim --threads 64 --faults "delay=1,delay_ms=$SLOW_MS"
SLOW_URL=$(sc_first_line slowsim)
t0=$(date +%s%N)
run_backfill slow "$WORK/slow.jsonl.in" "$SLOW_URL" -X gemini.max_attempts=5
took_ms=$(( ($(date +%s%N) - t0) / 1000000 ))
# (on a loaded machine parsing and routing may use a request's whole deadline before its call)
check "$WORK/slow.jsonl.in" "$WORK/slow.jsonl" "a slow upstream ends each call at its deadline" \
  DEADLINE_EXCEEDED "deadline passed during attempt 1; last error: attempt timed out" \
  "deadline passed before the first attempt could start"
n=$(grep -c "deadline passed during attempt 1; last error: attempt timed out" "$WORK/slow.jsonl" || true)
[ "$n" -gt 0 ] || { echo "FAIL no call of the slow run timed out on the upstream"; exit 1; }
[ "$took_ms" -lt $PROMPT_MS ] ||
  { echo "FAIL the slow run took $took_ms ms (deadline $DEADLINE_MS ms, answers $SLOW_MS ms)"; exit 1; }
echo "ok   the slow run ended in $took_ms ms (deadline $DEADLINE_MS ms, every answer $SLOW_MS ms)"
python3 - "$WORK/slow.jsonl" $DEADLINE_MS <<'PY'
import json, sys
late = [r for r in map(json.loads, open(sys.argv[1])) if r["status"] != "ok" and
        r["error"]["code"] == "DEADLINE_EXCEEDED" and r["latency_ms"] > int(sys.argv[2]) + 300]
print(("FAIL " if late else "ok   ") + "no call outlived its deadline by 300 ms" +
      (f": {[(r['line'], r['latency_ms']) for r in late[:5]]}" if late else ""))
sys.exit(1 if late else 0)
PY
sc_stop "$PID_slowsim" 0 || true # it is still sleeping on answers nobody waits for

# 4. A reset on every try (past any per-body cap) with 3 attempts: every line is an error that
#    names the reset; the breaker is kept out of the way (its hold is the next case).
sc_start_bg deadsim "$SCRIMP" gemini-sim --faults "reset=1,max_per_request=100,seed=3"
DEAD_URL=$(sc_first_line deadsim) # a name of its own: sim.out of the first run may still be read
run_backfill dead "$IN" "$DEAD_URL" -X gemini.max_attempts=3 -X gemini.breaker_failures=1000000
check "$IN" "$WORK/dead.jsonl" "resets past the attempts name their cause" UPSTREAM_UNAVAILABLE \
  "connection reset / empty reply"
faults "$DEAD_URL" reset
a=$(python3 -c 'import json,sys; print(sorted({r["attempts"] for r in map(json.loads, open(sys.argv[1])) if r["status"] != "ok" and r["error"]["code"] == "UPSTREAM_UNAVAILABLE"}))' "$WORK/dead.jsonl")
[ "$a" = "[3]" ] || { echo "FAIL attempts per failed line: $a, want [3]"; exit 1; }
echo "ok   every failed line made its 3 attempts"

# 5. The same upstream with the breaker on: calls it holds past their deadline still name why.
python3 - "$IN" "$WORK/held.jsonl.in" <<'PY'
import json, sys
with open(sys.argv[1], "rb") as f, open(sys.argv[2], "wb") as o:
    for line in f.read().split(b"\n")[:-1][:120]:
        try:
            r = json.loads(line)
            if isinstance(r, dict) and str(r.get("id", "")).startswith("it-"):
                r["deadline_ms"] = 1500
                line = json.dumps(r).encode()
        except ValueError:
            pass
        o.write(line + b"\n")
PY
run_backfill held "$WORK/held.jsonl.in" "$DEAD_URL" -X gemini.max_attempts=50 \
  -X gemini.breaker_failures=5 -X gemini.breaker_cooldown_ms=200 -X gemini.breaker_max_cooldown_ms=400
python3 - "$WORK/held.jsonl.in" "$WORK/held.jsonl" <<'PY'
import collections, json, sys
n_in = sum(1 for _ in open(sys.argv[1], "rb"))
lines = [json.loads(l) for l in open(sys.argv[2], encoding="utf-8")]
fails = []
if sorted(r["line"] for r in lines) != list(range(1, n_in + 1)):
    fails.append(f"{len(lines)} output lines for {n_in} input lines")
calls = [r for r in lines if r["status"] != "ok" and
         r["error"]["code"] not in ("INVALID_JSON", "INVALID_REQUEST", "TOO_LARGE")]
codes = collections.Counter(r["error"]["code"] for r in calls)
# a call held from the start made no attempt: the open breaker is its cause
unnamed = [r for r in calls if r["error"]["code"] != "DEADLINE_EXCEEDED" or
           not ("connection reset / empty reply" in r["error"]["message"] or
                "circuit breaker was open" in r["error"]["message"])]
held = [r for r in calls if "circuit breaker was open" in r["error"]["message"]]
if not calls or unnamed:
    fails.append(f"{len(unnamed)} of {len(calls)} calls not DEADLINE_EXCEEDED naming the reset: "
                 f"{[r['error'] for r in unnamed[:2]]}")
if not held:
    fails.append("no call was held by the breaker")
print(("FAIL " if fails else "ok   ") + "calls the breaker holds past their deadline name why" +
      (": " + "; ".join(fails) if fails else f" ({dict(codes)}, {len(held)} held, e.g. "
       f"\"{held[0]['error']['message'][:160]}\")"))
sys.exit(1 if fails else 0)
PY
sc_stop "$PID_deadsim"
rm -rf "$WORK"
trap sc_stop_all EXIT
