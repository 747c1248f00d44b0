#!/usr/bin/env bash
# test_tools.sh - agent traffic in Gemini's own request shape through scrimp serve, every technique
# on (cache, coalescing, routing, cascade, pruning with summaries, prompt caching of the system
# instruction and tools, shadow evaluation), against the simulator (which answers a declared
# function with a functionCall and a functionResponse with text about it).
#   wave 1: 240 first turns, each asking for the weather in a different city: every result holds
#           the function call with its arguments (the city asked for);
#   wave 2: 240 look-alikes (wave 1's questions in other words, which the simulator answers with
#           other arguments, at least 100 of them) and 60 exact repeats: a look-alike is never
#           answered with another request's call (never from the semantic layer), a repeat comes
#           from the exact layer with the same call;
#   wave 3: the 240 second turns (call -> functionResponse -> final answer): the answer uses
#           what the tool returned;
#   wave 4: 24 long tool conversations (30 earlier rounds, pruned to a small budget);
# invalid fields end as dead letters naming their path; tool requests go through Batch Mode
# (backfill --mode batch) with their calls; a cheap bad call or schema answer is promoted; and every body the simulator received: no functionResponse without its functionCall just
# before it.
set -euo pipefail
SCRIMP=${1:?usage: test_tools.sh path/to/scrimp}
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
WORK=$(mktemp -d /tmp/scrimp-it-tools.XXXXXX)
. "$ROOT/scripts/lib.sh"
trap 'sc_stop_all; echo "work dir: $WORK"' EXIT
export GEMINI_API_KEY=tools-key

python3 "$ROOT/tests/integration/tools_traffic.py" make "$WORK"

sc_start_broker 2
sc_start_bg sim "$SCRIMP" gemini-sim --cache-min-tokens 64 --record "$WORK/bodies.jsonl"
SIM_URL=$(sc_first_line sim)
echo "$SIM_URL" >"$WORK/sim_url"
sc_start_bg serve "$SCRIMP" serve -X "kafka.bootstrap.servers=$BOOTSTRAP" -X "gemini.base_url=$SIM_URL" \
  -X "metrics.listen=127.0.0.1:0" -X "cache.path=$WORK/cache" -X "prune.path=$WORK/summaries" \
  -X "router.shadow_path=$WORK/shadow" -X router.shadow_rate=0.2 -X router.shadow_seed=3 \
  -X prune.max_tokens=600 -X prune.keep_last=1 \
  -X prompt_cache.min_tokens=64 -X prompt_cache.min_tokens_pro=64 \
  -X kafka.session.timeout.ms=6000 -X kafka.heartbeat.interval.ms=500

# One wave after the other: wave 2 needs wave 1's answers in the cache, wave 3 its calls.
total=0
for w in 1 2 3 4; do
  if [ "$w" = 3 ]; then
    python3 "$ROOT/tests/integration/tools_traffic.py" second "$WORK"
  fi
  kcat -P -b "$BOOTSTRAP" -t scrimp.requests -l "$WORK/wave$w.jsonl"
  total=$((total + $(grep -vc "\"id\": \"bad-" "$WORK/wave$w.jsonl"))); start=$SECONDS; n=0
  while [ $((SECONDS - start)) -lt 180 ]; do
    sc_consume scrimp.results "$WORK/results.jsonl"
    n=$(sc_count_ids "$WORK/results.jsonl")
    [ "$n" -ge "$total" ] && break
    sleep 0.3
  done
  [ "$n" -ge "$total" ] || { echo "FAIL: wave $w: $n of $total results"; tail -20 "$WORK/serve.log"; exit 1; }
  echo "wave $w: $n results"
done
sc_consume scrimp.dlq "$WORK/dlq.jsonl"
sc_stop "$PID_serve"

# Batch Mode: the same requests go inline
"$SCRIMP" backfill "$WORK/batch_in.jsonl" -o "$WORK/batch_out.jsonl" --mode batch \
  -X "gemini.base_url=$SIM_URL" -X "cache.path=$WORK/cache-b" -X "prune.path=$WORK/summaries-b" \
  -X "router.shadow_path=$WORK/shadow-b" -X backfill.poll_initial_ms=100 >"$WORK/backfill.log" 2>&1 \
  || { echo "FAIL: backfill --mode batch"; tail -5 "$WORK/backfill.log"; exit 1; }

# The cascade: on a simulator whose cheaper models spoil every answer, with every prompt sent
# to the cheapest tier first
sc_start_bg sim2 "$SCRIMP" gemini-sim --faults "refuse=1,seed=4"
SIM2_URL=$(sc_first_line sim2)
"$SCRIMP" backfill "$WORK/cascade_in.jsonl" -o "$WORK/cascade_out.jsonl" \
  -X "gemini.base_url=$SIM2_URL" -X "cache.path=$WORK/cache-c" -X "prune.path=$WORK/summaries-c" \
  -X "router.shadow_path=$WORK/shadow-c" -X router.outside_tier=lite -X router.shadow_rate=0 \
  >"$WORK/cascade.log" 2>&1 || { echo "FAIL: backfill (cascade)"; tail -5 "$WORK/cascade.log"; exit 1; }

# (the simulator stays up: the check asks it directly what a look-alike's call would be)
python3 "$ROOT/tests/integration/tools_traffic.py" check "$WORK"
