#!/usr/bin/env bash
# test_scale_out.sh - three `scrimp serve` replicas in one group share what they learned through
# the changelog (cache.changelog=true), and one killed with SIGKILL mid-run costs nothing twice.
#
# The workload, keyed by id so that every replica answers part of each phase:
#   A  90 first questions: the same 30 in 3 tenants (90 upstream calls when no answer crosses
#      tenants), then 1 request behind a long catalog system prompt (its prompt cache is made);
#   B  the 90 asked again, 10 new ones, 10 more behind the catalog prompt, then 12 requests with
#      "priority": "batch" (Batch Mode; the simulator keeps a batch pending for 5 s);
#   -  the replica that created a batch is killed with SIGKILL as soon as it has created it;
#   C  once the survivors hold all 6 partitions: the 90 and the 10 asked again.
# Checks: every id gets a result; the repeats' hit rate is within 5 points of one process
# answering the same workload alone; no answer crosses tenants; the dead replica's batch is adopted
# by the survivors its requests are re-delivered to, so the simulator sees every batch key once;
# the catalog prompt's cache is created once for the three replicas. The same three-replica run
# without the changelog is the control: it pays the dead replica's batch requests twice and creates
# a prompt cache per replica.
set -euo pipefail
SCRIMP=${1:?usage: test_scale_out.sh path/to/scrimp}
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
WORK=$(mktemp -d /tmp/scrimp-it-scale-out.XXXXXX)
. "$ROOT/scripts/lib.sh"
trap 'sc_stop_all; echo "work dir: $WORK"' EXIT
FAILS=0
pass() { echo "ok   $1"; }
fail() { echo "FAIL $1"; FAILS=$((FAILS + 1)); }
export GEMINI_API_KEY=scale-out-key
PARTS=6

python3 - "$WORK" <<'PY'
import json, sys
work = sys.argv[1]
tenants = ("acme", "globex", "initech")
qs = [f"what does error code E{200 + i} on the payment gateway mean" for i in range(30)]
new = [f"how do I rotate signing key K{i} in the vault" for i in range(10)]
catalog = " ".join(f"Item SKU-{i:04d}: a {['red', 'blue', 'green'][i % 3]} widget of size {i % 7}, "
                   f"price {10 + i % 50} dollars." for i in range(400))  # about 14k characters
def req(id, tenant, text, **kw):
    r = {"id": id, "tenant": tenant, "agent": "support", "model": "gemini-2.5-flash",
         "messages": [{"role": "user", "content": text}]}
    r.update(kw)
    return json.dumps(r)
def sysreq(id, i):
    return req(id, "initech", f"which widgets of size {i} are in the catalog", system=catalog)
with open(f"{work}/a.jsonl", "w") as f:
    for t in tenants:
        for i, q in enumerate(qs):
            f.write(req(f"a-{t}-{i}", t, q) + "\n")
with open(f"{work}/a-sys.jsonl", "w") as f:
    f.write(sysreq("s-0", 0) + "\n")
with open(f"{work}/b.jsonl", "w") as f:
    for t in tenants:
        for i, q in enumerate(qs):
            f.write(req(f"b-{t}-{i}", t, q) + "\n")
    for i, q in enumerate(new):
        f.write(req(f"n-acme-{i}", "acme", q) + "\n")
    for i in range(1, 11):
        f.write(sysreq(f"s-{i}", i) + "\n")
with open(f"{work}/b-batch.jsonl", "w") as f:
    for i in range(12):
        f.write(req(f"pb-acme-{i}", "acme", f"write the nightly digest of queue Q{i}",
                    priority="batch") + "\n")
with open(f"{work}/c.jsonl", "w") as f:
    for t in tenants:
        for i, q in enumerate(qs):
            f.write(req(f"c-{t}-{i}", t, q) + "\n")
    for i, q in enumerate(new):
        f.write(req(f"m-acme-{i}", "acme", q) + "\n")
PY

produce() { # produce FILE: its requests onto scrimp.requests, each keyed by its id
  kcat -P -b "$BOOTSTRAP" -t scrimp.requests -K: -l <(python3 -c '
import json, sys
for l in open(sys.argv[1]):
    print(json.loads(l)["id"] + ":" + l.rstrip("\n"))' "$1")
}
results() { sc_consume scrimp.results "$WORK/results.jsonl"; grep -o "\"id\":\"$1[^\"]*\"" "$WORK/results.jsonl" | sort -u | wc -l; }
wait_results() { # wait_results ID_PREFIX N TIMEOUT_S
  local start=$SECONDS
  while [ "$(results "$1")" -lt "$2" ]; do
    [ $((SECONDS - start)) -lt "$3" ] || return 1
    sleep 0.3
  done
}
stat() { curl -sf "$SIM_URL/sim/stats" | python3 -c "import json,sys; d=json.load(sys.stdin); print($1)"; }
calls() { stat 'sum(d["generate_content"].values())'; }
assigned() { # assigned NAME: the partitions NAME holds since its last assignment (0 before one)
  local n
  n=$(grep -o 'event=kafka.assign partitions=[0-9]*' "$WORK/$1.log" | tail -n1 | grep -o '[0-9]*$' || true)
  echo "${n:-0}"
}

# scenario CHANGELOG(true|false) REPLICAS(1|3): the whole workload; sets A_CALLS, VICTIM, and
# leaves the results in results.$CHANGELOG.$REPLICAS.jsonl and the simulator's stats in
# sim.$CHANGELOG.$REPLICAS.json
scenario() {
  local cl=$1 nrep=$2 tag="$1.$2"
  sc_start_broker $PARTS
  sc_start_bg sim "$SCRIMP" gemini-sim --batch-pending-ms 5000 --batch-running-ms 500 \
    --record "$WORK/sim-record.$tag.jsonl"
  SIM_URL=$(sc_first_line sim)
  rm -f "$WORK/results.jsonl"
  local args=(serve -X "kafka.bootstrap.servers=$BOOTSTRAP" -X "gemini.base_url=$SIM_URL"
    -X metrics.listen=127.0.0.1:0 -X kafka.session.timeout.ms=6000
    -X kafka.heartbeat.interval.ms=500 -X kafka.auto.commit.interval.ms=200
    -X router.shadow_rate=0 -X "cache.changelog=$cl" -X batch.priority_max_wait_ms=300
    -X backfill.poll_initial_ms=200 -X backfill.poll_max_ms=500)
  local names=() r
  for r in $(seq 1 "$nrep"); do
    rm -rf "$WORK/c$r.$tag" "$WORK/p$r.$tag"
    sc_start_bg "r$r" "$SCRIMP" "${args[@]}" -X "cache.path=$WORK/c$r.$tag" \
      -X "prune.path=$WORK/p$r.$tag" -X "router.shadow_path=$WORK/p$r.$tag.shadow"
    names+=("r$r")
  done
  # every replica in the group before the first request, so that each answers its share
  local start=$SECONDS total=0
  while [ "$total" -ne $PARTS ] || [ "$(for n in "${names[@]}"; do assigned "$n"; done | grep -c '^0$')" -ne 0 ]; do
    [ $((SECONDS - start)) -lt 60 ] || { fail "[$tag] the replicas did not share the $PARTS partitions within 60 s"; return 1; }
    sleep 0.3
    total=0
    for n in "${names[@]}"; do total=$((total + $(assigned "$n"))); done
  done
  produce "$WORK/a.jsonl"
  wait_results a- 90 60 || { fail "[$tag] phase A: not 90 results within 60 s"; return 1; }
  A_CALLS=$(calls)
  produce "$WORK/a-sys.jsonl"
  wait_results s- 1 60 || { fail "[$tag] phase A: the catalog request went unanswered"; return 1; }
  start=$SECONDS # its prompt cache is made after it, off the request path
  until [ "$(stat 'd["caches_created"]')" -ge 1 ]; do
    [ $((SECONDS - start)) -lt 30 ] || { fail "[$tag] no prompt cache was created for the catalog prompt within 30 s"; return 1; }
    sleep 0.2
  done
  sleep 1.5 # the other replicas apply what was written (they poll every 100 ms)
  produce "$WORK/b.jsonl"
  wait_results b- 90 60 && wait_results n- 10 60 && wait_results s- 11 60 ||
    { fail "[$tag] phase B: not every result within 60 s"; return 1; }
  for n in "${names[@]}"; do : >"$WORK/$n.batchmark"; done
  produce "$WORK/b-batch.jsonl"
  VICTIM=""
  if [ "$nrep" -gt 1 ]; then
    start=$SECONDS
    while [ -z "$VICTIM" ]; do
      for n in "${names[@]}"; do
        grep -q "event=batch.created" "$WORK/$n.log" && { VICTIM=$n; break; }
      done
      [ -n "$VICTIM" ] || [ $((SECONDS - start)) -lt 20 ] || { fail "[$tag] no replica created a batch within 20 s"; return 1; }
      [ -n "$VICTIM" ] || sleep 0.05
    done
    local pv
    pv=$(eval echo "\$PID_$VICTIM")
    kill -KILL "$pv"; wait "$pv" 2>/dev/null || true
    echo "[$tag] killed $VICTIM with SIGKILL after it created a batch: $(grep -m1 'event=batch.created' "$WORK/$VICTIM.log" | grep -o 'requests=[0-9]*')"
    start=$SECONDS
    while :; do
      total=0
      for n in "${names[@]}"; do [ "$n" = "$VICTIM" ] || total=$((total + $(assigned "$n"))); done
      [ "$total" -eq $PARTS ] && break
      [ $((SECONDS - start)) -lt 60 ] || { fail "[$tag] the survivors did not take the $PARTS partitions within 60 s"; return 1; }
      sleep 0.3
    done
  fi
  produce "$WORK/c.jsonl"
  wait_results c- 90 90 && wait_results m- 10 90 && wait_results pb- 12 90 ||
    { fail "[$tag] phase C: not every result within 90 s ($(results pb-) of 12 batch requests)"; return 1; }
  sleep 1 # results of re-delivered requests still on the way
  sc_consume scrimp.results "$WORK/results.jsonl"
  cp "$WORK/results.jsonl" "$WORK/results.$tag.jsonl"
  curl -sf "$SIM_URL/sim/stats" >"$WORK/sim.$tag.json"
  for r in $(seq 1 "$nrep"); do cp "$WORK/r$r.log" "$WORK/r$r.$tag.log" 2>/dev/null || true; done # kept past the next scenario
  for n in "${names[@]}"; do
    [ "$n" = "$VICTIM" ] && continue
    sc_stop "$(eval echo "\$PID_$n")" 30 || true
  done
  sc_stop "$PID_sim"; sc_stop "$PID_broker"
}

# check TAG: prints "HITRATE" of the repeats after the checks of every id and tenant
check() {
  python3 - "$WORK/results.$1.jsonl" "$WORK/a.jsonl" "$WORK/a-sys.jsonl" "$WORK/b.jsonl" \
    "$WORK/b-batch.jsonl" "$WORK/c.jsonl" "$1" <<'PY'
import json, sys
rs = {}
for l in open(sys.argv[1]):
    r = json.loads(l)
    rs.setdefault(r["id"], r)  # the first result of an id (a re-delivered one may come twice)
want = [json.loads(l)["id"] for f in sys.argv[2:7] for l in open(f)]
tag = sys.argv[7]
missing = [i for i in want if i not in rs]
bad = [i for i in want if i in rs and rs[i]["status"] != "ok"]
cross = [i for i in want if i in rs and rs[i]["tenant"] != json.loads(
    next(l for f in sys.argv[2:7] for l in open(f) if json.loads(l)["id"] == i))["tenant"]]
ok = not missing and not bad and not cross
print(("ok   " if ok else "FAIL ") + f"[{tag}] {len(want) - len(missing)} of {len(want)} ids got a "
      f"result, {len(bad)} not ok ({bad[:3]}), {len(cross)} in another tenant's name")
rep = [i for i in want if i[:2] in ("b-", "c-")]
hits = [i for i in rep if i in rs and rs[i].get("source", "").startswith("cache")]
print(f"HITRATE {len(hits) / len(rep):.4f} {len(hits)} {len(rep)}")
sys.exit(0 if ok else 1)
PY
}

hitrate() { grep '^HITRATE' | cut -d' ' -f2; }

scenario true 1
OUT1=$(check true.1) || FAILS=$((FAILS + 1)); echo "$OUT1" | grep -v '^HITRATE'
H1=$(echo "$OUT1" | hitrate)
SINGLE_CREATED=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["caches_created"])' "$WORK/sim.true.1.json")

scenario true 3
OUT3=$(check true.3) || FAILS=$((FAILS + 1)); echo "$OUT3" | grep -v '^HITRATE'
H3=$(echo "$OUT3" | hitrate)
[ "$A_CALLS" -eq 90 ] && pass "[true.3] 3 tenants x the same 30 questions were 90 upstream calls: no answer crossed tenants" ||
  fail "[true.3] phase A made $A_CALLS upstream calls for 3 tenants x 30 questions (want 90)"
python3 - "$H1" "$H3" <<'PY' || FAILS=$((FAILS + 1))
import sys
h1, h3 = float(sys.argv[1]), float(sys.argv[2])
ok = h3 >= h1 - 0.05
print(("ok   " if ok else "FAIL ") + f"repeats' hit rate: {h3:.3f} with three replicas and one killed, "
      f"{h1:.3f} for one process alone (want within 5 points)")
sys.exit(0 if ok else 1)
PY
# the dead replica's batch requests: adopted, never submitted twice
python3 - "$WORK/sim.true.3.json" "$WORK/sim-record.true.3.jsonl" "$SINGLE_CREATED" <<'PY' || FAILS=$((FAILS + 1))
import collections, json, sys
st = json.load(open(sys.argv[1]))
keys = collections.Counter()
for l in open(sys.argv[2]):
    r = json.loads(l)
    if "batch" in r:
        keys.update(k for k in r["keys"] if k)
twice = [k for k, n in keys.items() if n > 1]
ok = st["duplicate_batch_keys"] == 0 and not twice and len(keys) == 12
print(("ok   " if ok else "FAIL ") + f"[true.3] Batch Mode: {st['batches_created']} batches held "
      f"{len(keys)} keys for the 12 batch requests, {len(twice)} submitted twice "
      f"(duplicate_batch_keys {st['duplicate_batch_keys']})")
created = st["caches_created"]
ok2 = created == int(sys.argv[3]) == 1
print(("ok   " if ok2 else "FAIL ") + f"[true.3] the catalog prompt's cache was created {created} "
      f"time(s) for the three replicas ({sys.argv[3]} for one process)")
sys.exit(0 if ok and ok2 else 1)
PY
if grep -q "event=batch.adopt" $(for r in 1 2 3; do [ "r$r" = "$VICTIM" ] || echo "$WORK/r$r.log"; done); then
  pass "[true.3] a survivor adopted the dead replica's batch: $(grep -h -m1 'event=batch.adopt' "$WORK"/r[123].log | grep -o 'name=[^ ]* .*requests=[0-9]*' | head -n1)"
else
  fail "[true.3] no survivor adopted the dead replica's batch"
fi

# the control: the same three replicas and kill without the changelog
scenario false 3
OUTC=$(check false.3) || FAILS=$((FAILS + 1)); echo "$OUTC" | grep -v '^HITRATE'
python3 - "$WORK/sim.false.3.json" <<'PY' || FAILS=$((FAILS + 1))
import json, sys
st = json.load(open(sys.argv[1]))
ok = st["duplicate_batch_keys"] > 0 and st["caches_created"] > 1
print(("ok   " if ok else "FAIL ") + f"control without the changelog: {st['duplicate_batch_keys']} "
      f"batch keys submitted twice, {st['caches_created']} prompt caches created for one prompt "
      f"(want more than 0 and 1: else the test does not measure the changelog)")
sys.exit(0 if ok else 1)
PY
echo "control hit rate of the repeats: $(echo "$OUTC" | hitrate)"

[ "$FAILS" -eq 0 ] || { echo "$FAILS failure(s)"; exit 1; }
echo "all ok"
