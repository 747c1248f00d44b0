#!/usr/bin/env bash
# test_shadow.sh - shadow evaluation end to end (scrimp serve, dev broker, the simulator in its
# quality mode), router.shadow_rate=0.05: 2,000 requests in 20 waves, half from an agent whose
# prompts every tier answers right ("easy": difficulty under flash-lite's capability) and half from
# one whose prompts only the strong tier answers right ("hard"). Asserts: every request gets a
# result; within the 2,000 the easy agent's traffic has moved to a cheaper tier on its shadow
# evidence while the hard agent's stays on strong; /metrics shows both estimates; the shadow
# ledger lines (topics.shadow) cost at most 1.2 × rate × what the requests would have cost on
# strong (Σ baseline_cost_usd), and /metrics counts the same cost.
set -euo pipefail
SCRIMP=${1:?usage: test_shadow.sh path/to/scrimp}
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
WORK=$(mktemp -d /tmp/scrimp-it-shadow.XXXXXX)
. "$ROOT/scripts/lib.sh"
trap 'sc_stop_all; echo "work dir: $WORK"' EXIT
export GEMINI_API_KEY=shadow-key
N=2000; WAVES=20; RATE=0.05

python3 - "$WORK" $N $WAVES <<'PY'
import json, sys
work, n, waves = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])

def difficulty(p):  # the simulator's (README, "Quality spec")
    b = b" ".join(p.encode("utf-8").lower().split())
    h = 0xcbf29ce484222325
    for c in b:
        h = ((h ^ c) * 0x100000001b3) % 2**64
    return (h >> 11) / 2**53

def prompts(agent, lo, hi, count):
    out, i = [], 0
    while len(out) < count:
        p = (f"Warehouse audit {i}: a pallet holds {i % 17 + 3} crates of {i % 11 + 5} parts; "
             f"how many parts are on {i % 7 + 2} pallets?") if agent == "easy" else \
            (f"Reconcile ledger {i}: invoices of {i % 29 + 11} and {i % 31 + 7} units were "
             f"netted against a credit of {i % 13 + 2}; what balance remains after {i % 5 + 2} cycles?")
        if lo <= difficulty(p) < hi:
            out.append(p)
        i += 1
    return out

easy = prompts("easy", 0.0, 0.30, n // 2)   # flash-lite's capability is 0.35: every tier is right
hard = prompts("hard", 0.65, 0.88, n // 2)  # flash's is 0.6, pro's 0.9: only the strong tier
per = n // waves
for w in range(waves):
    with open(f"{work}/wave{w:02d}.jsonl", "w") as f:
        for k in range(per // 2):
            j = w * (per // 2) + k
            for agent, p in (("easy", easy[j]), ("hard", hard[j])):
                f.write(json.dumps({"id": f"{agent}-{j:04d}", "tenant": "acme", "agent": agent,
                                    "stage": "answer",
                                    "messages": [{"role": "user", "content": p}]}) + "\n")
PY

sc_start_broker 2
sc_start_bg sim "$SCRIMP" gemini-sim --quality "lite=0.35,cheap=0.6,strong=0.9,seed=5"
SIM_URL=$(sc_first_line sim)
MPORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
sc_start_bg serve "$SCRIMP" serve -X "kafka.bootstrap.servers=$BOOTSTRAP" -X "gemini.base_url=$SIM_URL" \
  -X "metrics.listen=127.0.0.1:$MPORT" -X "cache.path=$WORK/cache" -X "prune.path=$WORK/summaries" \
  -X "router.shadow_path=$WORK/shadow" -X "router.shadow_rate=$RATE" -X router.shadow_seed=11 \
  -X router.enabled=false -X kafka.session.timeout.ms=6000 -X kafka.heartbeat.interval.ms=500

# A steady stream, not one burst: each wave is produced when the previous one has its results
# (a backlog drops shadows, as it should).
for w in $(seq -f %02g 0 $((WAVES - 1))); do
  kcat -P -b "$BOOTSTRAP" -t scrimp.requests -l "$WORK/wave$w.jsonl"
  want=$(( (10#$w + 1) * N / WAVES )); start=$SECONDS; n=0
  while [ $((SECONDS - start)) -lt 120 ]; do
    sc_consume scrimp.results "$WORK/results.jsonl"
    n=$(sc_count_ids "$WORK/results.jsonl")
    [ "$n" -ge "$want" ] && break
    sleep 0.3
  done
  [ "$n" -ge "$want" ] || { echo "FAIL: wave $w: $n of $want results"; tail -20 "$WORK/serve.log"; exit 1; }
done
sleep 1 # the last shadows finish
curl -sf "http://127.0.0.1:$MPORT/metrics" >"$WORK/metrics.txt"
sc_consume scrimp.shadow "$WORK/shadow.jsonl"
sc_stop "$PID_serve"
curl -sf "$SIM_URL/sim/stats" >"$WORK/sim.json"

python3 - "$WORK" $N $RATE <<'PY'
import json, re, sys
work, n, rate = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
res = {}
for l in open(f"{work}/results.jsonl"):
    r = json.loads(l)
    res[r["id"]] = r
lines = [json.loads(l) for l in open(f"{work}/shadow.jsonl")]
fails = []
def check(ok, what):
    print(("ok   " if ok else "FAIL ") + what)
    if not ok:
        fails.append(what)

check(len(res) == n and all(r["status"] == "ok" for r in res.values()),
      f"{len(res)} of {n} requests have a result, all ok")
def tier_of(r):
    return r["optimizations"]["route"]
by = {a: sorted((r for r in res.values() if r["agent"] == a), key=lambda r: r["id"]) for a in ("easy", "hard")}
first_cheap = next((i for i, r in enumerate(by["easy"]) if r["model"] != "gemini-2.5-pro"), None)
tail = int(0.2 * len(by["easy"]))  # the last 20% of each agent's requests
easy_tail = by["easy"][-tail:]
hard_all = by["hard"]
moved = sum(1 for r in easy_tail if r["model"] != "gemini-2.5-pro" and r["optimizations"]["route_basis"] == "shadow")
check(first_cheap is not None and first_cheap < len(by["easy"]) // 2,
      f"the easy agent's first cheaper-tier answer is its request #{first_cheap} of {len(by['easy'])}")
check(moved >= 0.95 * tail, f"easy agent, last {tail} requests: {moved} answered by a cheaper tier on shadow evidence")
strong_hard = sum(1 for r in hard_all if r["model"] == "gemini-2.5-pro")
check(strong_hard == len(hard_all), f"hard agent: {strong_hard} of {len(hard_all)} answered by the strong tier")
# quality as the simulator scores it: the easy agent's answers stay right on the cheaper tier
right = sum(1 for r in easy_tail if "Final answer:" in r["text"])
check(right == tail, f"easy agent, last {tail}: every answer carries a final answer")

m = open(f"{work}/metrics.txt").read()
def gauge(agent, tier):
    for l in m.splitlines():
        if l.startswith("scrimp_route_agreement{") and f'agent="{agent}"' in l and f'tier="{tier}"' in l:
            return float(l.rsplit(" ", 1)[1])
    return None
ge, gh = gauge("easy", "lite"), gauge("hard", "lite")
check(ge is not None and ge >= 0.95, f"/metrics: scrimp_route_agreement easy/lite = {ge}")
check(gh is not None and gh < 0.5, f"/metrics: scrimp_route_agreement hard/lite = {gh}")

outcomes = {}
for s in lines:
    outcomes[(s["agent"], s["outcome"])] = outcomes.get((s["agent"], s["outcome"]), 0) + 1
print("     shadow outcomes:", dict(sorted(outcomes.items())))
check(all(s["kind"] == "shadow" and s["compare"] in ("final-answer", None) for s in lines),
      f"{len(lines)} shadow lines, every comparison deterministic (final answers)")
check(outcomes.get(("easy", "agree"), 0) >= 52 and outcomes.get(("easy", "disagree"), 0) == 0,
      "easy agent: agreements only")
check(outcomes.get(("hard", "disagree"), 0) >= 30 and outcomes.get(("hard", "agree"), 0) == 0,
      "hard agent: disagreements only")
shadow_cost = sum(s["cost_usd"] for s in lines)
base = sum(r["baseline_cost_usd"] for r in res.values())
check(shadow_cost <= 1.2 * rate * base,
      f"shadow cost ${shadow_cost:.6f} <= 1.2 x {rate} x strong ${base:.6f} (= ${1.2 * rate * base:.6f}); "
      f"{100 * shadow_cost / base:.2f}% of it")
mc = sum(float(l.rsplit(" ", 1)[1]) for l in m.splitlines() if l.startswith("scrimp_shadow_cost_usd_total{"))
check(abs(mc - shadow_cost) <= 1e-9 + 1e-6 * shadow_cost,
      f"/metrics scrimp_shadow_cost_usd_total ${mc:.6f} = the lines' ${shadow_cost:.6f}")
sys.exit(1 if fails else 0)
PY
