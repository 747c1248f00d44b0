#!/usr/bin/env bash
# test_policies.sh - the cost policies against the simulator, each checked against what the
# simulator itself says it billed:
#   cascade       cheap answers refused by the simulator are promoted, both attempts are in the
#                 cost (the results' costs add up to the simulator's billed tokens), nothing lost
#   prompt cache  traffic sharing a 6,000-token system prompt: >= 90% of the prefix tokens billed
#                 as cached after the first request, storage included in the cost
#   pruning       long conversations: prompt tokens cut, the summary stored and reused
set -euo pipefail
SCRIMP=${1:?usage: test_policies.sh path/to/scrimp}
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
WORK=$(mktemp -d /tmp/scrimp-it-policies.XXXXXX)
. "$ROOT/scripts/lib.sh"
trap 'sc_stop_all; echo "work dir: $WORK"' EXIT
export GEMINI_API_KEY=policy-key
FAST=(-X gemini.backoff_initial_ms=20 -X gemini.backoff_max_ms=200 -X gemini.backoff_jitter_ms=10
      -X metrics.listen=127.0.0.1:0)

# ---- cascade ----
python3 - "$WORK/cascade.jsonl" <<'PY'
import json, random, sys
rng = random.Random(7)
asks = ["Summarise this ticket in one line: printer offline since Monday.",
        "Is this email spam? 'You won a cruise, click here'", "Translate 'thank you' into German.",
        "Classify the sentiment of: 'the update broke my workflow again'",
        "Write a SQL query counting orders per day for last week.",
        "What is 17 times 23?", "Name three causes of slow Wi-Fi at home."]
with open(sys.argv[1], "w") as f:
    for i in range(300):
        f.write(json.dumps({"id": f"cas-{i:04d}", "tenant": rng.choice(["acme", "globex"]),
                            "messages": [{"role": "user", "content": f"{rng.choice(asks)} (#{i})"}],
                            "cache": "off"}) + "\n")
PY
sc_start_bg sim1 "$SCRIMP" gemini-sim --faults "refuse=0.3,seed=3"
SIM1=$(sc_first_line sim1)
# these prompts lie outside the router's domain, which the defaults send to the strong tier: the
# cascade is exercised by sending them to the cheapest tier
"$SCRIMP" backfill "$WORK/cascade.jsonl" -o "$WORK/cascade.out" --mode online "${FAST[@]}" \
  -X router.outside_tier=lite -X "gemini.base_url=$SIM1" -X "cache.path=$WORK/c1" -X "prune.path=$WORK/s1" -X "router.shadow_path=$WORK/s1.shadow" \
  >/dev/null 2>"$WORK/cascade.log"
curl -sf "$SIM1/sim/stats" >"$WORK/sim1.json"
python3 - "$WORK/cascade.out" "$WORK/sim1.json" "$ROOT" <<'PY'
import json, sys
rs = [json.loads(l) for l in open(sys.argv[1])]
st = json.load(open(sys.argv[2]))
prices = {"gemini-2.5-pro": (1.25, 10.0), "gemini-2.5-flash": (0.30, 2.50),
          "gemini-2.5-flash-lite": (0.10, 0.40)}
billed = sum((t["prompt"] * prices[m][0] + (t["output"] + t["thought"]) * prices[m][1]) / 1e6
             for m, t in st["billed_tokens"].items() if m in prices)
paid = sum(r["cost_usd"] for r in rs)
promoted = sum(1 for r in rs if r["optimizations"]["promoted"])
refusals_left = sum(1 for r in rs if r.get("text", "").startswith("I'm sorry"))
ok = (len(rs) == 300 and all(r["status"] == "ok" for r in rs) and refusals_left == 0
      and st["refusals"] > 0 and promoted > 0 and abs(billed - paid) < 1e-9 + 1e-6 * billed)
print(("ok   " if ok else "FAIL ") + f"cascade: {st['refusals']} cheap answers refused, {promoted} "
      f"requests promoted, {refusals_left} refusals delivered, all {len(rs)} ok; results cost "
      f"${paid:.6f}, simulator billed ${billed:.6f}")
sys.exit(0 if ok else 1)
PY

# ---- prompt cache: serve, one request first, then 49 sharing the prefix ----
sc_start_broker 2
sc_start_bg sim2 "$SCRIMP" gemini-sim
SIM2=$(sc_first_line sim2)
python3 - "$WORK/pc" <<'PY'
import json, sys
words = ("policy clause customer refund shipment warranty invoice account escalation region "
         "priority response channel agent review approval exception").split()
system = "You are the billing assistant. Rules follow.\n" + " ".join(
    f"Rule {i}: {words[i % len(words)]} {words[(i * 7) % len(words)]} must be handled per section {i}."
    for i in range(420))
assert 23500 <= len(system) <= 26000, len(system)
for name, rng in (("first", range(1)), ("rest", range(1, 50))):
    with open(f"{sys.argv[1]}-{name}.jsonl", "w") as f:
        for i in rng:
            f.write(json.dumps({"id": f"pc-{i:03d}", "tenant": "acme", "system": system,
                                "model": "gemini-2.5-flash", "cache": "off",
                                "messages": [{"role": "user", "content": f"Question {i}: what applies to invoice {1000 + i}?"}]}) + "\n")
PY
sc_start_bg serve "$SCRIMP" serve -X "kafka.bootstrap.servers=$BOOTSTRAP" -X "gemini.base_url=$SIM2" \
  -X "cache.path=$WORK/c2" -X "prune.path=$WORK/s2" -X "router.shadow_path=$WORK/s2.shadow" "${FAST[@]}"
wait_results() { # wait_results N
  for _ in $(seq 1 240); do
    sc_consume scrimp.results "$WORK/pc-results.jsonl"
    [ "$(sc_count_ids "$WORK/pc-results.jsonl")" -ge "$1" ] && return 0
    sleep 0.25
  done
  echo "FAIL: only $(sc_count_ids "$WORK/pc-results.jsonl") of $1 results"; return 1
}
kcat -P -b "$BOOTSTRAP" -t scrimp.requests -l "$WORK/pc-first.jsonl"
wait_results 1
for _ in $(seq 1 100); do # the manager creates the cache in the background after the first
  curl -sf "$SIM2/sim/stats" | python3 -c 'import json,sys; sys.exit(0 if json.load(sys.stdin)["caches_created"] >= 1 else 1)' && break
  sleep 0.1
done
kcat -P -b "$BOOTSTRAP" -t scrimp.requests -l "$WORK/pc-rest.jsonl"
wait_results 50
sc_stop "$PID_serve" 30
curl -sf "$SIM2/sim/stats" >"$WORK/sim2.json"
python3 - "$WORK/pc-results.jsonl" "$WORK/sim2.json" <<'PY'
import json, sys
rs = {}
for l in open(sys.argv[1]):
    r = json.loads(l); rs[r["id"]] = r
st = json.load(open(sys.argv[2]))
rest = [rs[f"pc-{i:03d}"] for i in range(1, 50)]
prefix = 6000
cached = sum(r["usage"]["cached_tokens"] for r in rest)
ratio = cached / (prefix * len(rest))
saved = sum(r["savings"]["prompt_cache_usd"] for r in rs.values())
# what the simulator billed, priced: the results' cost must be that plus the storage they carry
p_in, p_cached, p_out = 0.30, 0.03, 2.50
t = st["billed_tokens"]["gemini-2.5-flash"]
billed = ((t["prompt"] - t["cached"]) * p_in + t["cached"] * p_cached + (t["output"] + t["thought"]) * p_out) / 1e6
paid = sum(r["cost_usd"] for r in rs.values())
ok = (len(rs) == 50 and all(r["status"] == "ok" for r in rs.values()) and ratio >= 0.90
      and paid > billed and saved > 0 and st["caches_created"] == 1)
print(("ok   " if ok else "FAIL ") + f"prompt cache: {ratio:.1%} of the prefix tokens of requests "
      f"2..50 billed as cached (prefix ~{prefix} tokens); caches created {st['caches_created']}; "
      f"cost ${paid:.6f} = billed ${billed:.6f} + storage ${paid - billed:.6f}; net saving ${saved:.6f}")
sys.exit(0 if ok else 1)
PY

# ---- pruning: long conversations, a summary made once and reused ----
python3 "$ROOT/tests/integration/make_conversations.py" "$WORK/conv"
sc_start_bg sim3 "$SCRIMP" gemini-sim
SIM3=$(sc_first_line sim3)
for part in a b; do
  "$SCRIMP" backfill "$WORK/conv-$part.jsonl" -o "$WORK/conv-$part.out" --mode online "${FAST[@]}" \
    -X "gemini.base_url=$SIM3" -X "cache.path=$WORK/c3" -X "prune.path=$WORK/s3" -X "router.shadow_path=$WORK/s3.shadow" \
    >/dev/null 2>"$WORK/conv-$part.log"
  curl -sf "$SIM3/sim/stats" >"$WORK/sim3-$part.json"
done
python3 - "$WORK" <<'PY'
import json, sys
w = sys.argv[1]
a = [json.loads(l) for l in open(f"{w}/conv-a.out")]
b = [json.loads(l) for l in open(f"{w}/conv-b.out")]
s_a = json.load(open(f"{w}/sim3-a.json")); s_b = json.load(open(f"{w}/sim3-b.json"))
calls_a = sum(s_a["generate_content"].values()); calls_b = sum(s_b["generate_content"].values()) - calls_a
lite = "gemini-2.5-flash-lite"  # the summaries' model
sum_a = s_a["billed_tokens"][lite]["prompt"]
sum_b = s_b["billed_tokens"][lite]["prompt"] - sum_a
ok_all = all(r["status"] == "ok" for r in a + b)
cut = sum(r["optimizations"]["pruned_tokens"] for r in a)
sent = sum(r["usage"]["prompt_tokens"] for r in a)
reduction = cut / (cut + sent)
saved = sum(r["savings"]["prune_usd"] for r in a + b)
ok = (ok_all and reduction >= 0.6 and calls_a == 2 * len(a) and calls_b == 2 * len(b)
      and 0 < sum_b < 0.25 * sum_a and saved > 0)
print(("ok   " if ok else "FAIL ") + f"pruning: {reduction:.0%} fewer prompt tokens; a summary call "
      f"per conversation ({sum_a} prompt tokens), extended incrementally for the next request "
      f"({sum_b} prompt tokens: the stored summary plus the new turns); net prune saving "
      f"${saved:.6f}")
sys.exit(0 if ok else 1)
PY
rm -rf "$WORK"
trap sc_stop_all EXIT
