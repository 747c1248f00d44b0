#!/usr/bin/env bash
# bench/bench_e2e.sh - end to end: dev broker + simulator + `scrimp serve` on the seeded workload of
# bench/workload.py, once per configuration (every technique off = the baseline, each technique
# alone, all of them = the defaults). Reports throughput, per-stage p50/p99, the cost table and the
# quality proxies (wrong cache hits, routing outcomes); writes bench/results/e2e.md and e2e.svg.
#
# usage: bench/bench_e2e.sh [--requests N] [--seed S] [--configs a,b,...] [--wait-s S] [--keep]
#                           [--out FILE.md] [-X KEY=VALUE]...
#   --requests 3000   workload size (CPU embeddings bound the run: ~1-2 min per configuration)
#   --seed 1          workload seed
#   --configs baseline,cache,route,prune,prompt_cache,all   (baseline must be among them)
#   --wait-s 900      bound on the wait for all results of one configuration
#   --keep            keep the work folder (results, logs, metrics of every run)
#   --out FILE.md     the report (default bench/results/e2e.md; the chart beside it, FILE.svg)
#   -X KEY=VALUE      a setting for every configuration's serve (e.g. backend=cuda), after the
#                     configuration's own switches
#   env SCRIMP        the scrimp binary (default build/scrimp, or $SCRIMP_BUILD_DIR/scrimp)
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
SCRIMP="${SCRIMP:-$ROOT/${SCRIMP_BUILD_DIR:-build}/scrimp}"
CMDLINE="bench/bench_e2e.sh${*:+ $*}"
N=3000; SEED=1; CONFIGS="baseline,cache,route,prune,prompt_cache,all"; WAIT_S=900; KEEP=0
OUTMD="$ROOT/bench/results/e2e.md"; EXTRA=()
READY_WAIT_S=120      # serve: model load + /readyz
WARMUP_WAIT_S=60      # the warm-up request's result (consumer group joined, first call made)
PROGRESS_EVERY_S=5
STALL_S=120           # give up on a configuration when no result came for this long
PARTITION_BYTES=$((1024 * 1024))
BACKLOG_S=3           # pacing: produce while fewer than this many seconds of work are unanswered
BACKLOG_MIN=64        # ... but never hold the backlog below this many requests (one compute
                      # chunk: more, on a slow CPU, queues past the requests' 15 s deadlines)
CHUNK=32              # requests per write to the producer
TICK_S=0.05
SIM_QUALITY="lite=0.35,cheap=0.6,strong=0.9,seed=1" # the simulator's defaults, spelled out
while [ $# -gt 0 ]; do
  case $1 in
    --requests) N=$2; shift 2 ;;
    --seed) SEED=$2; shift 2 ;;
    --configs) CONFIGS=$2; shift 2 ;;
    --wait-s) WAIT_S=$2; shift 2 ;;
    --keep) KEEP=1; shift ;;
    --out) OUTMD=$2; shift 2 ;;
    -X) EXTRA+=(-X "$2"); shift 2 ;;
    -h|--help) sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "bench_e2e: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
case ",$CONFIGS," in *,baseline,*) ;; *) echo "bench_e2e: --configs must include baseline" >&2; exit 2 ;; esac
[ -x "$SCRIMP" ] || { echo "bench_e2e: $SCRIMP not built (cmake --build build)" >&2; exit 1; }
command -v kcat >/dev/null || { echo "bench_e2e: kcat is not installed (scripts/setup)" >&2; exit 1; }

case $OUTMD in *.md) ;; *) echo "bench_e2e: --out must name a .md file" >&2; exit 2 ;; esac
OUTSVG="${OUTMD%.md}.svg"
mkdir -p "$(dirname "$OUTMD")"
WORK=$(mktemp -d /tmp/scrimp-bench-e2e.XXXXXX)
. "$ROOT/scripts/lib.sh"
cleanup() {
  sc_stop_all
  if [ "$KEEP" = 1 ]; then echo "work dir kept: $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
export GEMINI_API_KEY=bench-key

# ---- configurations ----

SWITCHES=(cache.enabled router.enabled prune.enabled prompt_cache.enabled cascade.enabled
          coalesce.enabled batch.priority_enabled)
cfg_on() { # the switches a configuration turns on ("defaults": pass nothing)
  case $1 in
    all) echo defaults ;;
    baseline) echo "" ;;
    cache) echo "cache.enabled coalesce.enabled" ;;
    route) echo "router.enabled cascade.enabled" ;;
    prune) echo "prune.enabled" ;;
    prompt_cache) echo "prompt_cache.enabled" ;;
    *) return 1 ;;
  esac
}
cfg_args() { # cfg_args NAME: the -X switches of a configuration, one per line
  local on k v
  on=$(cfg_on "$1") || { echo "bench_e2e: unknown configuration $1" >&2; return 1; }
  [ "$on" = defaults ] && return 0
  for k in "${SWITCHES[@]}"; do
    v=false
    case " $on " in *" $k "*) v=true ;; esac
    printf '%s\n' -X "$k=$v"
  done
  # the shadow evaluation belongs to routing: off in every other single-technique run
  case " $on " in *" router.enabled "*) ;; *) printf '%s\n' -X router.shadow_rate=0 ;; esac
}

IFS=, read -r -a CFGS <<<"$CONFIGS"
for c in "${CFGS[@]}"; do cfg_on "$c" >/dev/null || { echo "bench_e2e: unknown configuration $c" >&2; exit 2; }; done
for c in "${CFGS[@]}"; do # every key we pass must be one scrimp knows (it exits 2 otherwise)
  mapfile -t a < <(cfg_args "$c")
  "$SCRIMP" config dump "${a[@]}" ${EXTRA[@]+"${EXTRA[@]}"} -X kafka.bootstrap.servers=127.0.0.1:1 \
    -X gemini.base_url=http://127.0.0.1:1 -X metrics.listen=127.0.0.1:0 \
    -X "cache.path=$WORK/x" -X "prune.path=$WORK/x" -X "router.shadow_path=$WORK/x.shadow" >/dev/null ||
    { echo "bench_e2e: scrimp rejects the switches of configuration $c" >&2; exit 1; }
done

# ---- workload ----

python3 "$ROOT/bench/workload.py" --seed "$SEED" --requests "$N" --out "$WORK/requests.jsonl" \
  --truth "$WORK/truth.jsonl" --sim-truth "$WORK/simtruth.jsonl" 2>&1 | tee "$WORK/workload.txt"
N=$(grep -c . "$WORK/requests.jsonl")
# keyed copy (id TAB request) in chunks of CHUNK lines for the paced producer
python3 -c '
import json, sys
with open(sys.argv[1], encoding="utf-8") as f, open(sys.argv[2], "w", encoding="utf-8") as o:
    for line in f:
        o.write(json.loads(line)["id"] + "\t" + line)' "$WORK/requests.jsonl" "$WORK/keyed.tsv"
mkdir -p "$WORK/chunks"
split -l "$CHUNK" -d -a 6 "$WORK/keyed.tsv" "$WORK/chunks/c."
CHUNKS=("$WORK"/chunks/c.*)
# librdkafka's mock cluster keeps at most 5 MiB per partition and drops the oldest message sets
# beyond that, even unconsumed: spread the workload so each partition holds about 1 MiB of it
PARTITIONS=$(( ($(wc -c <"$WORK/requests.jsonl") + PARTITION_BYTES - 1) / PARTITION_BYTES ))
[ "$PARTITIONS" -ge 4 ] || PARTITIONS=4
printf '%s\n' '{"id":"bench-warmup","tenant":"bench-warmup","cache":"off","messages":[{"role":"user","content":"warm-up request of the benchmark"}]}' >"$WORK/warmup.jsonl"

# ---- one configuration ----

count_lines() { if [ -f "$1" ]; then wc -l <"$1"; else echo 0; fi; }
now_ms() { local t=${EPOCHREALTIME/./}; echo $((t / 1000)); }

run_cfg() { # run_cfg NAME: fresh broker, simulator and serve; the workload; results into $WORK/NAME
  local name=$1 d="$WORK/$1" mport n start last_print serve_rc=0 a
  mkdir -p "$d"
  mapfile -t a < <(cfg_args "$name")
  SC_PIDS=()
  sc_start_broker "$PARTITIONS"
  # the simulator's quality mode: MMLU and MT-Bench prompts answered right or wrong per tier as
  # RouteLLM recorded (the workload's truth table), other prompts by its difficulty rule; every
  # generateContent body recorded, to check what reached the upstream
  sc_start_bg sim "$SCRIMP" gemini-sim --quality "$SIM_QUALITY" --quality-truth "$WORK/simtruth.jsonl" \
    --record "$d/sim_record.jsonl"
  SIM_URL=$(sc_first_line sim)
  sc_start_bg "serve_$name" "$SCRIMP" serve -X "kafka.bootstrap.servers=$BOOTSTRAP" \
    -X "gemini.base_url=$SIM_URL" -X metrics.listen=127.0.0.1:0 \
    -X "cache.path=$d/cache" -X "prune.path=$d/summaries" -X "router.shadow_path=$d/summaries.shadow" "${a[@]}" \
    ${EXTRA[@]+"${EXTRA[@]}"}
  local spid_var="PID_serve_$name" spid
  spid=${!spid_var}
  # metrics.listen port 0: serve logs the port it bound (event=metrics.start ... port=N)
  start=$SECONDS; mport=""
  while [ $((SECONDS - start)) -lt $READY_WAIT_S ]; do
    kill -0 "$spid" 2>/dev/null || { echo "bench_e2e: serve ($name) exited:" >&2; tail -20 "$WORK/serve_$name.log" >&2; exit 1; }
    # (the log may not exist yet: serve opens it in the background)
    [ -z "$mport" ] && mport=$(sed -n 's/.*event=metrics.start .*port=\([0-9]*\).*/\1/p' "$WORK/serve_$name.log" 2>/dev/null | head -1 || true)
    [ -n "$mport" ] && curl -sf "http://127.0.0.1:$mport/readyz" >/dev/null 2>&1 && break
    sleep 0.2
  done
  curl -sf "http://127.0.0.1:$mport/readyz" >/dev/null 2>&1 ||
    { echo "bench_e2e: serve ($name) not ready within ${READY_WAIT_S}s" >&2; tail -20 "$WORK/serve_$name.log" >&2; exit 1; }

  # one consumer for the whole run: message timestamp (ms, set by serve's producer) + payload
  sc_start_bg "results_$name" kcat -C -b "$BOOTSTRAP" -t scrimp.results -o beginning -u -q -f '%T\t%s\n'
  local cpid_var="PID_results_$name" cpid
  cpid=${!cpid_var}
  # warm-up (not counted): the group has joined and the first call has been made before timing
  kcat -P -b "$BOOTSTRAP" -t scrimp.requests -l "$WORK/warmup.jsonl"
  start=$SECONDS
  until grep -q '"id":"bench-warmup"' "$WORK/results_$name.out" 2>/dev/null; do
    [ $((SECONDS - start)) -lt $WARMUP_WAIT_S ] ||
      { echo "bench_e2e: no warm-up result ($name) within ${WARMUP_WAIT_S}s" >&2; tail -20 "$WORK/serve_$name.log" >&2; exit 1; }
    sleep 0.1
  done

  echo "== $name: producing $N requests (paced: at most ${BACKLOG_S}s of work ahead of the results)"
  # one producer for the whole workload, fed chunk by chunk through a FIFO; each message keyed by
  # its id so the partitions fill evenly
  mkfifo "$d/produce.fifo"
  kcat -P -b "$BOOTSTRAP" -t scrimp.requests -K $'\t' <"$d/produce.fifo" 2>"$d/producer.log" &
  local ppid=$! produced=0 chunk=0 window=$BACKLOG_MIN t0 el
  exec 3>"$d/produce.fifo"
  t0=$(now_ms); start=$SECONDS; last_print=$SECONDS
  local last_n=-1 last_change=$SECONDS
  while :; do
    n=$(( $(count_lines "$WORK/results_$name.out") - 1 ))
    if [ "$produced" -lt "$N" ]; then
      el=$(( $(now_ms) - t0 ))
      # the window: BACKLOG_S seconds of work at the rate seen so far (BACKLOG_MIN at least)
      [ "$el" -gt 500 ] && window=$(( n * BACKLOG_S * 1000 / el ))
      [ "$window" -ge "$BACKLOG_MIN" ] || window=$BACKLOG_MIN
      while [ "$produced" -lt "$N" ] && [ $((produced - n)) -lt "$window" ]; do
        cat "${CHUNKS[$chunk]}" >&3
        produced=$((produced + $(count_lines "${CHUNKS[$chunk]}"))); chunk=$((chunk + 1))
      done
      if [ "$produced" -ge "$N" ]; then exec 3>&-; wait "$ppid" || echo "bench_e2e: kcat producer failed" >&2; fi
      last_change=$SECONDS # the stall clock starts once everything is produced
    fi
    [ "$n" -ne "$last_n" ] && { last_n=$n; last_change=$SECONDS; }
    if [ $((SECONDS - last_change)) -ge $STALL_S ]; then
      echo "bench_e2e: $name: no new result for ${STALL_S}s at $n of $N; reporting what came" >&2; break
    fi
    if [ "$n" -ge "$N" ]; then # at least once: count distinct ids before stopping
      n=$(cut -f2- "$WORK/results_$name.out" | sc_count_ids /dev/stdin)
      n=$((n - 1))
      [ "$n" -ge "$N" ] && break
    fi
    if [ $((SECONDS - last_print)) -ge $PROGRESS_EVERY_S ]; then
      echo "   $name: $n/$N results, $produced produced, after $((SECONDS - start)) s"; last_print=$SECONDS
    fi
    if [ $((SECONDS - start)) -ge "$WAIT_S" ]; then
      echo "bench_e2e: $name: only $n of $N results after ${WAIT_S}s; reporting what came" >&2; break
    fi
    kill -0 "$spid" 2>/dev/null || { echo "bench_e2e: serve ($name) died" >&2; tail -5 "$WORK/serve_$name.log" >&2; break; }
    sleep "$TICK_S"
  done
  if [ "$produced" -lt "$N" ]; then exec 3>&-; kill -TERM "$ppid" 2>/dev/null || true; wait "$ppid" 2>/dev/null || true; fi
  echo "   $name: $n/$N results after $((SECONDS - start)) s"

  curl -sf "http://127.0.0.1:$mport/metrics" >"$d/metrics.txt" || true
  curl -sf "$SIM_URL/sim/stats" >"$d/sim_stats.json" || true
  sc_stop "$spid" 60 || serve_rc=$?
  echo "$serve_rc" >"$d/serve_rc"
  grep -c 'event=serve.stop status=OK' "$WORK/serve_$name.log" >"$d/clean_stop" || true
  grep -m1 'event=optimizer.ready' "$WORK/serve_$name.log" >"$d/optimizer.txt" || true
  sleep 0.5 # the consumer has what serve flushed before it exited
  kill -TERM "$cpid" 2>/dev/null || true; wait "$cpid" 2>/dev/null || true
  cp "$WORK/results_$name.out" "$d/results.tsv"
  # the produce timestamps of the workload's messages (not the warm-up)
  kcat -C -b "$BOOTSTRAP" -t scrimp.requests -o beginning -e -q -f '%T\t%s\n' 2>/dev/null |
    cut -c1-40 | grep -v bench-warmup >"$d/requests_ts.tsv" || true
  sc_consume scrimp.dlq "$d/dlq.jsonl"
  sc_consume scrimp.shadow "$d/shadow.jsonl" # the shadow evaluation's ledger lines: in the cost
  sc_stop "$PID_sim" 10 || true
  sc_stop "$PID_broker" 10 || true
  SC_PIDS=()
  # move every output away: the next run's sc_first_line must not read a stale address
  for f in broker sim "serve_$name" "results_$name"; do
    mv "$WORK/$f.out" "$d/$f.out" 2>/dev/null || true; mv "$WORK/$f.log" "$d/$f.log" 2>/dev/null || true
  done
}

T_ALL=$SECONDS
for c in "${CFGS[@]}"; do run_cfg "$c"; done
echo "== all configurations ran in $((SECONDS - T_ALL)) s"

# ---- analysis, tables, chart ----

ISA=$(grep -o -w -m1 -E 'avx512f' /proc/cpuinfo || grep -o -w -m1 -E 'avx2' /proc/cpuinfo || echo "no AVX2")
MACHINE="$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //') (${ISA%% *}), $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo)"
GPU="$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1 || true)"
[ -n "$GPU" ] && MACHINE="$MACHINE, GPU $GPU"
COMMIT="$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)$(git -C "$ROOT" diff --quiet 2>/dev/null || echo ' + uncommitted changes')"
[ -n "${BENCH_BUILD:-}" ] && COMMIT="$BENCH_BUILD" # e.g. a bundle's build, where no .git came along
export SIM_QUALITY BACKLOG_MIN
python3 - "$WORK" "$CONFIGS" "$OUTMD" "$OUTSVG" "$CMDLINE" "$MACHINE" "$COMMIT" "$(date -u '+%Y-%m-%d %H:%M UTC')" \
  "$(cat "$WORK/workload.txt")" "$SEED" "$N" "$PARTITIONS" <<'PY'
import json, math, os, re, sys

work, configs, outmd, outsvg, cmdline, machine, commit, date, wl_line, seed, n_req, parts = sys.argv[1:13]
configs = configs.split(",")
n_req = int(n_req)
HITS = ("cache-exact", "cache-semantic", "coalesced")
SIM_Q = os.environ.get("SIM_QUALITY", "")
BACKLOG_MIN = os.environ.get("BACKLOG_MIN", "?")
LABEL = {"baseline": "baseline (all off)", "cache": "cache + coalesce only",
         "route": "routing + cascade only", "prune": "pruning only",
         "prompt_cache": "prompt cache only", "all": "all (defaults)"}

truth = {}
with open(os.path.join(work, "truth.jsonl"), encoding="utf-8") as f:
    for line in f:
        t = json.loads(line)
        truth[t["id"]] = t
last_turn = {}
with open(os.path.join(work, "requests.jsonl"), encoding="utf-8") as f:
    for line in f:
        r = json.loads(line)
        last_turn[r["id"]] = r["messages"][-1]["content"]

SUMMARY_PREFIX = "You maintain a running summary"
CAPS = {"lite": 0.35, "cheap": 0.6, "strong": 0.9}
for kv in os.environ.get("SIM_QUALITY", "").split(","):
    k, _, v = kv.partition("=")
    if k in CAPS and v:
        CAPS[k] = float(v)
SIM_TRUTH = {}
with open(os.path.join(work, "simtruth.jsonl"), encoding="utf-8") as f:
    for line in f:
        x = json.loads(line)
        SIM_TRUTH[" ".join(x["text"].lower().split())] = x["right"]


def sim_difficulty(p):  # the simulator's (README, "Quality spec")
    b = b" ".join(p.encode("utf-8").lower().split())
    h = 0xcbf29ce484222325
    for c in b:
        h = ((h ^ c) * 0x100000001b3) % 2**64
    return (h >> 11) / 2**53


def sim_right(tier, text):
    """Is tier's answer to a prompt whose last user turn is text right, in the simulator's world?"""
    right = SIM_TRUTH.get(" ".join(text.lower().split()))
    if right is not None and tier in right:
        return bool(right[tier])
    return CAPS[tier] >= sim_difficulty(text)


def naive_tier(t):
    """The tier the naive request goes to: strong for model auto, else the pinned model's."""
    m = t.get("pinned") or ""
    return "strong" if not m or "pro" in m else "lite" if "flash-lite" in m else "cheap"


def family(t):
    """The task family a request is scored in: MMLU and MT-Bench (RouteLLM's recorded outcomes),
    long conversations (the planted fact must reach the upstream), agent traffic (everything else
    the LLM or the cache answered: conversations, JSON tasks, summaries, paraphrase questions)."""
    k = t["kind"]
    if k == "routing" or "strong_correct" in t:
        return "MMLU"
    if k == "mtbench":
        return "MT-Bench"
    if k == "longconv":
        return "long conversations"
    return "agent traffic"



def pct(xs, q):
    """Nearest-rank percentile of a list."""
    if not xs:
        return float("nan")
    xs = sorted(xs)
    return xs[min(len(xs) - 1, max(0, math.ceil(q * len(xs)) - 1))]


def hist_quantiles(path):
    """{stage: (count, p50, p99)} from scrimp_stage_latency_seconds, interpolated linearly inside
    the bucket as Prometheus' histogram_quantile does (a quantile in +Inf reports the top bound)."""
    buckets = {}
    if not os.path.exists(path):
        return {}
    pat = re.compile(r'^scrimp_stage_latency_seconds_bucket\{(.*)\}\s+([0-9.eE+-]+)$')
    for line in open(path, encoding="utf-8"):
        m = pat.match(line.strip())
        if not m:
            continue
        labels = dict(re.findall(r'(\w+)="([^"]*)"', m.group(1)))
        le = float("inf") if labels["le"] == "+Inf" else float(labels["le"])
        buckets.setdefault(labels.get("pipeline_stage", "?"), []).append((le, float(m.group(2))))
    out = {}
    for stage, bs in buckets.items():
        bs.sort()
        total = bs[-1][1]
        if total <= 0:
            continue

        def q(p):
            rank, prev_le, prev_c = p * total, 0.0, 0.0
            for le, c in bs:
                if c >= rank:
                    if math.isinf(le):
                        return prev_le
                    return prev_le + (le - prev_le) * ((rank - prev_c) / (c - prev_c) if c > prev_c else 1)
                prev_le, prev_c = le, c
            return prev_le
        out[stage] = (int(total), q(0.5), q(0.99))
    return out


def analyse(name):
    d = os.path.join(work, name)
    res, ts = {}, {}
    dup = 0
    for line in open(os.path.join(d, "results.tsv"), encoding="utf-8", errors="replace"):
        line = line.rstrip("\n")
        if not line:
            continue
        t, _, payload = line.partition("\t")
        try:
            r = json.loads(payload)
        except ValueError:
            continue
        if r.get("id") not in truth:
            continue
        if r["id"] in res:
            dup += 1
            continue
        res[r["id"]] = r
        ts[r["id"]] = int(t)
    req_ts = {}
    for line in open(os.path.join(d, "requests_ts.tsv"), encoding="utf-8", errors="replace"):
        m = re.match(r'^(\d+)\t\{"id":"([^"]+)"', line)
        if m:
            req_ts.setdefault(m.group(2), int(m.group(1)))
    s = {"name": name, "results": len(res), "dup": dup, "res": res, "on_topic": len(req_ts)}
    ok = [r for r in res.values() if r.get("status") == "ok"]
    s["ok"], s["err"] = len(ok), len(res) - len(ok)
    s["errors"] = {}
    for r in res.values():
        if r.get("status") != "ok":
            c = (r.get("error") or {}).get("code", "?")
            s["errors"][c] = s["errors"].get(c, 0) + 1
    shadow = []
    sp = os.path.join(d, "shadow.jsonl")
    if os.path.exists(sp):
        shadow = [json.loads(l) for l in open(sp, encoding="utf-8") if l.strip()]
    s["shadow_n"] = len(shadow)
    s["shadow_cost"] = sum(x.get("cost_usd") or 0 for x in shadow)
    s["cost"] = sum(r.get("cost_usd") or 0 for r in res.values()) + s["shadow_cost"]
    s["ledger_base"] = sum(r.get("baseline_cost_usd") or 0 for r in res.values())
    s["savings"] = {}
    for r in res.values():
        for k, v in (r.get("savings") or {}).items():
            s["savings"][k] = s["savings"].get(k, 0) + (v or 0)
    if shadow:  # its own ledger line: −cost, so the techniques still add up to baseline − cost
        s["savings"]["shadow_usd"] = -s["shadow_cost"]
    s["sources"], s["routes"], s["models"] = {}, {}, {}
    for r in res.values():
        for key, v in (("sources", r.get("source")), ("routes", (r.get("optimizations") or {}).get("route")),
                       ("models", r.get("model"))):
            v = v if v is not None else "null"
            s[key][v] = s[key].get(v, 0) + 1
    s["promoted"] = sum(1 for r in res.values() if (r.get("optimizations") or {}).get("promoted"))
    s["pruned_tokens"] = sum((r.get("optimizations") or {}).get("pruned_tokens") or 0 for r in res.values())
    s["prompt_cached"] = sum(1 for r in res.values() if (r.get("optimizations") or {}).get("prompt_cache"))
    # throughput: first workload message produced -> last result produced (broker timestamps)
    if ts and req_ts:
        span = (max(ts.values()) - min(req_ts.values())) / 1000.0
        s["span_s"], s["rps"] = span, len(res) / span if span > 0 else float("nan")
    else:
        s["span_s"] = s["rps"] = float("nan")
    lat = [r.get("latency_ms") for r in ok if r.get("latency_ms") is not None]
    s["lat50"], s["lat99"] = pct(lat, 0.5), pct(lat, 0.99)
    lat_llm = [r["latency_ms"] for r in ok if r.get("source") == "llm" and r.get("latency_ms") is not None]
    lat_hit = [r["latency_ms"] for r in ok if r.get("source") in HITS and r.get("latency_ms") is not None]
    s["lat_llm"] = (pct(lat_llm, 0.5), pct(lat_llm, 0.99), len(lat_llm))
    s["lat_hit"] = (pct(lat_hit, 0.5), pct(lat_hit, 0.99), len(lat_hit))
    e2e = [ts[i] - req_ts[i] for i in ts if i in req_ts]
    s["e2e50"], s["e2e99"] = pct(e2e, 0.5), pct(e2e, 0.99)
    s["stages"] = hist_quantiles(os.path.join(d, "metrics.txt"))
    s["serve_rc"] = open(os.path.join(d, "serve_rc")).read().strip()
    s["clean_stop"] = open(os.path.join(d, "clean_stop")).read().strip() not in ("", "0")
    s["dlq"] = sum(1 for l in open(os.path.join(d, "dlq.jsonl"), encoding="utf-8", errors="replace") if l.strip())
    opt = open(os.path.join(d, "optimizer.txt"), encoding="utf-8").read().strip()
    m = re.search(r"backend=(\S+)", opt)
    s["backend"] = m.group(1) if m else "?"
    s["optimizer_line"] = opt

    # -- quality proxy (a): wrong cache hits --
    # The simulator's answer is a function of (model, last user turn), so the text a hit carries
    # names the requests that could have produced it: the LLM-answered results of the same tenant
    # with that exact text. A hit is right when one of them has the hit's meaning (workload truth:
    # same text in the same tenant, or a reword the data labels a paraphrase); wrong when none
    # does, or when no producer in its tenant exists (a leak across tenants).
    producers = {}
    for i, r in res.items():
        if r.get("status") == "ok" and r.get("source") == "llm":
            producers.setdefault((r.get("tenant"), r.get("text")), set()).add(truth[i]["meaning"])
    hits = [(i, r) for i, r in res.items() if r.get("status") == "ok" and r.get("source") in HITS]
    wrong, ambiguous, orphan, by_kind = [], 0, 0, {}
    for i, r in hits:
        t = truth[i]
        ms = producers.get((r.get("tenant"), r.get("text")))
        k = t["kind"] + ("/paraphrase" if t.get("paraphrase") is True and t["kind"] == "reword" else
                         "/non-paraphrase" if t.get("paraphrase") is False and t["kind"] == "reword" else "")
        kk = by_kind.setdefault(k, [0, 0])
        kk[0] += 1
        if not ms:
            orphan += 1
            wrong.append(i)
            kk[1] += 1
        elif t["meaning"] not in ms:
            wrong.append(i)
            kk[1] += 1
        elif len(ms) > 1:
            ambiguous += 1
    s["hits"], s["wrong_hits"], s["ambiguous_hits"], s["orphan_hits"] = len(hits), len(wrong), ambiguous, orphan
    s["hits_by_kind"] = by_kind
    s["cross_tenant_hits"] = sum(1 for i, _ in hits if truth[i]["kind"] == "cross-tenant")
    s["nonpara_reword_hits"] = sum(1 for i, _ in hits if truth[i]["kind"] == "reword" and truth[i].get("paraphrase") is False)
    s["wrong_examples"] = wrong[:5]

    # -- quality proxy (b): routing outcomes --
    def routing_quality(ids):
        n = correct = strong_all = weak_n = weak_wrong = weak_lost = 0
        for i in ids:
            t = truth[i]
            n += 1
            strong_all += bool(t["strong_correct"])
            r = res.get(i)
            if not r or r.get("status") != "ok":
                continue
            strong = "pro" in (r.get("model") or "")
            if strong:
                correct += bool(t["strong_correct"])
            else:
                correct += bool(t["weak_correct"])
                weak_n += 1
                weak_wrong += not t["weak_correct"]
                weak_lost += (not t["weak_correct"]) and bool(t["strong_correct"])
        return {"n": n, "correct": correct, "strong": strong_all, "weak_n": weak_n,
                "weak_wrong": weak_wrong, "weak_lost": weak_lost,
                "ratio": correct / strong_all if strong_all else float("nan")}
    s["rq"] = routing_quality([i for i, t in truth.items() if t["kind"] == "routing"])
    s["rq_rep"] = routing_quality([i for i, t in truth.items() if "strong_correct" in t])

    # -- quality per task family (every family the workload scores) --
    # what reached the upstream: the planted facts found in main-call bodies (not summary calls)
    reached = set()
    rp = os.path.join(d, "sim_record.jsonl")
    if os.path.exists(rp):
        for line in open(rp, encoding="utf-8", errors="replace"):
            if "INC-" not in line:
                continue
            try:
                rec = json.loads(line)
            except ValueError:
                continue
            body = rec.get("body")
            if isinstance(body, dict):
                parts = (body.get("systemInstruction") or {}).get("parts") or [{}]
                if str(parts[0].get("text", "")).startswith(SUMMARY_PREFIX):
                    continue
            reached.update(re.findall(r"INC-\d{6}", line))
    fam = {}
    for i, t in truth.items():
        f = family(t)
        if f is None:
            continue
        r = res.get(i)
        model = (r or {}).get("model") or ""
        ok = bool(r) and r.get("status") == "ok"
        strong = "pro" in model
        tier = "strong" if strong else "cheap" if "flash-lite" not in model else "lite"
        naive = naive_tier(t)  # the reference: the naive request's model (strong unless pinned)
        if f == "MMLU":
            got = (t["strong_correct"] if strong else t["weak_correct"]) if ok else 0
            best = t["strong_correct"] if naive == "strong" else t["weak_correct"]
        elif f == "MT-Bench":
            got = (t["strong_score"] if strong else t["weak_score"]) if ok else 0
            best = t["strong_score"] if naive == "strong" else t["weak_score"]
        else:  # agent traffic and long conversations: right in the simulator's world
            last = last_turn.get(i, "")
            got = ok and sim_right(tier, last)
            best = sim_right(naive, last)
            if f == "long conversations":
                got = got and t["fact"] in reached
        g = fam.setdefault(f, {"n": 0, "got": 0.0, "best": 0.0, "weak": 0, "cost": 0.0, "reached": 0})
        g["n"] += 1
        g["got"] += float(got)
        g["best"] += float(best)
        g["weak"] += ok and not strong
        g["cost"] += (r or {}).get("cost_usd") or 0
        if f == "long conversations":
            g["reached"] += t["fact"] in reached
    for g in fam.values():
        g["ratio"] = g["got"] / g["best"] if g["best"] else float("nan")
    s["fam"] = fam
    return s


S = {c: analyse(c) for c in configs}
B = S["baseline"]
base_cost = B["cost"]


def money(x):
    return "%.4f" % x


def fmt_dict(d, order=None):
    keys = order or sorted(d, key=lambda k: -d[k])
    return ", ".join("%s %d" % (k, d[k]) for k in keys if d.get(k))


def saving(cost, base):
    return 100.0 * (base - cost) / base if base else float("nan")


# ---- the main table ----
main = []
main.append("| configuration | results ok / err | requests/s | cost $ | measured baseline $ | saving vs measured baseline | Σ baseline_cost_usd $ (ledger) | saving vs ledger | sources | routes |")
main.append("|---|---:|---:|---:|---:|---:|---:|---:|---|---|")
for c in configs:
    s = S[c]
    main.append("| %s | %d / %d | %.0f | %s | %s | %.1f%% | %s | %.1f%% | %s | %s |" % (
        LABEL.get(c, c), s["ok"], s["err"], s["rps"], money(s["cost"]), money(base_cost),
        saving(s["cost"], base_cost), money(s["ledger_base"]), saving(s["cost"], s["ledger_base"]),
        fmt_dict(s["sources"], ["llm", "cache-exact", "cache-semantic", "coalesced"]) or "-",
        fmt_dict(s["routes"])))

print()
print("\n".join(main))
print()

A = S.get("all")
lines = []
w = lines.append
w("# End-to-end benchmark: dev broker + simulator + `scrimp serve` on the seeded workload")
w("")
w("Command: `%s`" % cmdline)
w("")
w("- machine: %s; embeddings on the `%s` backend" % (machine, A["backend"] if A else B["backend"]))
w("- date: %s; build: %s" % (date, commit))
w("- workload: `bench/workload.py --seed %s --requests %d` (all other flags at their defaults); %s" % (
    seed, n_req, wl_line.strip().replace("workload: ", "").split("; ", 1)[-1]))
w("- per configuration: a fresh `scrimp dev-broker` (%s partitions: librdkafka's mock cluster "
  "drops a partition's oldest messages beyond 5 MiB, so the workload is spread to ~1 MiB per "
  "partition), " % parts + "a fresh `scrimp gemini-sim` "
  "(no faults, zero delay; quality mode `--quality " + SIM_Q + "` with the workload's truth "
  "table, and `--record`), `scrimp serve` with default settings except `kafka.bootstrap.servers`, "
  "`gemini.base_url`, `metrics.listen=127.0.0.1:0`, a fresh `cache.path`, `prune.path` and "
  "`router.shadow_path`, the "
  "configuration's switches, then the command's `-X` settings if any; one warm-up request (not counted) so the consumer group has joined "
  "before timing; then the workload produced by one `kcat -P` (messages keyed by id), paced in "
  "chunks of 32 so that at most max(" + BACKLOG_MIN + " requests, 3 s of work at the result rate seen so far) is "
  "unanswered — the requests carry deadlines of 15–60 s, and a 3,000-request backlog in front of "
  "the CPU embedder would expire them (an earlier all-at-once run got DEADLINE_EXCEEDED results); "
  "the window grows with the rate, so a fast configuration is not held back; serve stopped with SIGTERM.")
w("- switches: `baseline` sets `cache.enabled`, `router.enabled`, `prune.enabled`, "
  "`prompt_cache.enabled`, `cascade.enabled`, `coalesce.enabled`, `batch.priority_enabled` all false "
  "(pass-through: model `auto` goes to the strong model, full context, no cache); each `… only` "
  "configuration turns back on just its switches (`cache`: cache + coalesce, `route`: router + "
  "cascade); `all` passes none (the defaults).")
w("")
w("## Cost")
w("")
w("Two baselines: the `baseline` row's measured cost (same workload, everything off, same run of "
  "this script), and Σ `baseline_cost_usd` of each configuration's own results (each request's "
  "naive cost as scrimp's ledger prices it: strong model or the pinned one, full context, no cache).")
w("")
lines.extend(main)
w("")
bt = sum((r.get("usage") or {}).get("thought_tokens") or 0 for r in B["res"].values())
bo = sum((r.get("usage") or {}).get("output_tokens") or 0 for r in B["res"].values())
w("How the two baselines compare: the `baseline` run billed %d thought tokens besides %d output "
  "tokens (the strong model thinks by default in the simulator, as `gemini-2.5-pro` does). When a "
  "cheaper tier or the cache answers, the ledger prices the naive request's thinking at the strong "
  "model's mean per call in the request's tenant × agent × stage, as observed on the strong calls "
  "of the same run (pipelines/stages/ledger.c, host/core/thinking.c; `ledger.strong_thought_tokens` "
  "before the first one)." % (bt, bo)
  + (" In the `all` run Σ `baseline_cost_usd` is %s against the measured %s (%+.1f%%)."
     % (money(A["ledger_base"]), money(base_cost), 100.0 * (A["ledger_base"] / base_cost - 1))
     if A and base_cost else ""))
w("")
if A:
    w("### Savings by technique, `all` (Σ of the results' `savings.*`)")
    w("")
    w("| technique | saved $ | share of Σ baseline_cost_usd |")
    w("|---|---:|---:|")
    for k in ("cache_usd", "route_usd", "prune_usd", "prompt_cache_usd", "batch_usd", "shadow_usd"):
        v = A["savings"].get(k, 0)
        w("| %s | %s | %.1f%% |" % (k, money(v), 100 * v / A["ledger_base"] if A["ledger_base"] else 0))
    tot = sum(A["savings"].values())
    w("| sum | %s | %.1f%% |" % (money(tot), 100 * tot / A["ledger_base"] if A["ledger_base"] else 0))
    w("")
    w("Ledger check: Σ baseline_cost_usd − Σ savings = %s vs Σ cost_usd = %s." % (
        money(A["ledger_base"] - tot), money(A["cost"])))
    w("")
w("### Each technique alone: its own saving vs the measured baseline")
w("")
w("| configuration | cost $ | saving vs measured baseline | its ledger savings $ | models answering | promoted | pruned tokens | prompt-cached requests |")
w("|---|---:|---:|---:|---|---:|---:|---:|")
for c in configs:
    s = S[c]
    w("| %s | %s | %.1f%% | %s | %s | %d | %d | %d |" % (
        LABEL.get(c, c), money(s["cost"]), saving(s["cost"], base_cost),
        ", ".join("%s %s" % (k.replace("_usd", ""), money(v)) for k, v in s["savings"].items() if v) or "-",
        fmt_dict(s["models"]), s["promoted"], s["pruned_tokens"], s["prompt_cached"]))
w("")

w("## Quality proxies")
w("")
w("**(a) Wrong cache hits.** The simulator's answer is a function of (model, last user turn), so "
  "the text a hit carries identifies the requests that could have produced it: the results of the "
  "same run and tenant answered by the LLM (`source` `llm`) with that exact text. A hit "
  "(`cache-exact`, `cache-semantic` or `coalesced`) is *right* when one of those producers has the "
  "same `meaning` in the workload truth (identical text in the same tenant, or the reword of a pair "
  "the paraphrase data labels a paraphrase); *wrong* otherwise — a reworded non-paraphrase, a "
  "different MMLU question or conversation state, or an answer with no producer in the tenant (a "
  "cross-tenant leak). When the producers of one text have several meanings the hit is counted "
  "right (the benefit of the doubt; counted below as ambiguous).")
w("")
w("| configuration | hits | wrong | wrong % of hits | ambiguous | no producer in tenant | hits on non-paraphrase rewords | hits on cross-tenant copies | hits (wrong) by request kind |")
w("|---|---:|---:|---:|---:|---:|---:|---:|---|")
for c in configs:
    s = S[c]
    if not s["hits"]:
        continue
    w("| %s | %d | %d | %.2f%% | %d | %d | %d | %d | %s |" % (
        LABEL.get(c, c), s["hits"], s["wrong_hits"], 100 * s["wrong_hits"] / s["hits"], s["ambiguous_hits"],
        s["orphan_hits"], s["nonpara_reword_hits"], s["cross_tenant_hits"],
        ", ".join("%s %d (%d)" % (k, v[0], v[1]) for k, v in sorted(s["hits_by_kind"].items()))))
w("")
w("**(b) Routing outcomes.** For the MMLU prompts (truth kind `routing`, RouteLLM's recorded "
  "outcomes: Mixtral-8x7B = weak, GPT-4 = strong), each request scores the outcome of the tier that "
  "answered it: `gemini-2.5-pro` → `strong_correct`, flash / flash-lite → `weak_correct` (a promoted "
  "request counts as its final model; a missing or failed result scores wrong; pinned prompts count "
  "with their pinned model). All-strong quality = every routing prompt scored `strong_correct`.")
w("")
w("| configuration | routing prompts | correct | all-strong correct | quality ratio | answered by weak tiers | weak tier wrong | of which strong right (lost) | ratio incl. exact repeats of MMLU prompts |")
w("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
for c in configs:
    q, q2 = S[c]["rq"], S[c]["rq_rep"]
    w("| %s | %d | %d | %d | %.3f | %d | %d | %d | %.3f (%d prompts) |" % (
        LABEL.get(c, c), q["n"], q["correct"], q["strong"], q["ratio"], q["weak_n"], q["weak_wrong"],
        q["weak_lost"], q2["ratio"], q2["n"]))
w("")

FAMS = ["MMLU", "MT-Bench", "long conversations", "agent traffic"]
w("**(c) Quality per task family.** Each family scored on its own, against the same requests "
  "as the naive request answers them (the all-strong quality: the strong tier for model `auto`; "
  "a pinned request is never rerouted, so it counts with its pinned model on both sides), in "
  "the world the simulator runs in "
  "(`gemini-sim --quality %s --quality-truth`): MMLU — RouteLLM's recorded right/wrong of "
  "the weak (Mixtral-8x7B: flash-lite, flash) or strong (GPT-4: pro) model; MT-Bench — the mean "
  "GPT-4 judge score (1–10) of the model that answered, over both turns of each question; long "
  "conversations — right only when the planted ticket code reached the upstream in a main call "
  "(from the simulator's `--record` of every body; a summary counts when the code is in the "
  "summary the main call carried) and the answering tier is right by the simulator's rule; "
  "agent traffic — the rest, right by the simulator's rule (difficulty vs the tier's "
  "capability). A failed result scores 0. The shipped router was trained on MMLU only, so "
  "MT-Bench, the long conversations and the agent traffic are families it never saw (its domain "
  "check sends them to the strong tier unless a scope earns a cheaper one by shadow evaluation)." % SIM_Q)
w("")
w("| configuration | " + " | ".join("%s: n, quality ratio, weak-tier answers" % f for f in FAMS) + " |")
w("|---|" + "---:|" * len(FAMS))
for c in configs:
    cells = []
    for f in FAMS:
        g = S[c].get("fam", {}).get(f)
        cells.append("%d, **%.3f**, %d" % (g["n"], g["ratio"], g["weak"]) if g else "-")
    w("| %s | %s |" % (LABEL.get(c, c), " | ".join(cells)))
w("")
if "baseline" in S and "fam" in S["baseline"]:
    w("Cost per family, $ (and the saving against the same family in the all-off run):")
    w("")
    w("| configuration | " + " | ".join(FAMS) + " |")
    w("|---|" + "---:|" * len(FAMS))
    for c in configs:
        cells = []
        for f in FAMS:
            g, b0 = S[c]["fam"].get(f), S["baseline"]["fam"].get(f)
            cells.append("%s (%.1f%%)" % (money(g["cost"]), saving(g["cost"], b0["cost"])) if g and b0 else "-")
        w("| %s | %s |" % (LABEL.get(c, c), " | ".join(cells)))
    w("")
if A and "long conversations" in A.get("fam", {}):
    g = A["fam"]["long conversations"]
    w("Long conversations in `all`: the planted fact reached the upstream in %d of %d." % (g["reached"], g["n"]))
    w("")
if A:
    w("Shadow evaluation in `all`: %d shadow ledger lines (topics.shadow), $%s, counted in its cost "
      "(%.2f%% of it)." % (A["shadow_n"], money(A["shadow_cost"]),
                           100 * A["shadow_cost"] / A["cost"] if A["cost"] else 0))
    w("")

w("## Throughput and latency")
w("")
w("Requests/s = results ÷ (last result's broker timestamp − first workload message's timestamp), "
  "with the paced producer keeping serve busy (a backlog of ≥ " + BACKLOG_MIN + " requests or 3 s of work). `latency_ms` is "
  "scrimp's own field (consumed → result built); produce→result is the result's timestamp minus "
  "its request's (it includes waiting in the backlog).")
w("")
short = [c for c in configs if S[c]["on_topic"] != n_req or S[c]["results"] != n_req]
if short:
    w("**Incomplete runs:** " + "; ".join("`%s`: %d of %d requests readable on the topic at the end, "
                                          "%d results" % (c, S[c]["on_topic"], n_req, S[c]["results"])
                                          for c in short) + ".")
    w("")
w("| configuration | results | seconds | requests/s | latency_ms p50 / p99 | llm p50 / p99 (n) | hits p50 / p99 (n) | produce→result p50 / p99 ms | errors | dead letters | duplicates | serve exit |")
w("|---|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|---|")
for c in configs:
    s = S[c]
    w("| %s | %d | %.1f | %.0f | %s / %s | %s / %s (%d) | %s / %s (%d) | %s / %s | %s | %d | %d | %s%s |" % (
        LABEL.get(c, c), s["results"], s["span_s"], s["rps"], s["lat50"], s["lat99"],
        s["lat_llm"][0], s["lat_llm"][1], s["lat_llm"][2],
        *(("-", "-", 0) if not s["lat_hit"][2] else s["lat_hit"]),
        s["e2e50"], s["e2e99"], fmt_dict(s["errors"]) or "0", s["dlq"], s["dup"], s["serve_rc"],
        " (clean stop)" if s["clean_stop"] else " (no clean-stop line)"))
w("")
w("Per-stage latency, from serve's `scrimp_stage_latency_seconds` histogram scraped from `/metrics` "
  "just before SIGTERM. Each observation is one stage over one compute chunk (up to "
  "`pipeline.compute_chunk` = 64 requests), not one request; p50/p99 are estimated from the bucket "
  "counts by linear interpolation inside the bucket (bounds 1 ms, 2.5 ms, 5 ms, 10 ms, 25 ms, …), "
  "so they are only as fine as the buckets. Includes the warm-up request's chunk. ms, p50 / p99 (n).")
w("")
stages = []
for c in configs:
    for st in S[c]["stages"]:
        if st not in stages:
            stages.append(st)


def ms(sec):  # the first bucket is (0, 1 ms]: no finer answer exists
    return "≤1" if sec <= 0.001 else "%.1f" % (1000 * sec)


w("| stage | " + " | ".join(LABEL.get(c, c) for c in configs) + " |")
w("|---|" + "---:|" * len(configs))
for st in stages:
    cells = []
    for c in configs:
        v = S[c]["stages"].get(st)
        cells.append("%s / %s (%d)" % (ms(v[1]), ms(v[2]), v[0]) if v else "-")
    w("| %s | %s |" % (st, " | ".join(cells)))
w("")

# ---- verdicts ----
w("## Acceptance")
w("")
if A:
    sv_m = saving(A["cost"], base_cost)
    w("- **Total cost ≥ 50%% below the measured all-strong baseline: %s.** `all` costs $%s "
      "(shadow calls included): %.1f%% below the `baseline` run ($%s, every technique off: the "
      "strong model, full context, no cache)." % ("met" if sv_m >= 50 else "not met",
                                                   money(A["cost"]), sv_m, money(base_cost)))
    fams = A.get("fam", {})
    low = [f for f in FAMS if f in fams and not fams[f]["ratio"] >= 0.95]
    w("- **Quality ≥ 0.95 × all-strong on every family separately: %s.** %s (table (c))." % (
        "met" if fams and not low else "not met",
        "; ".join("%s %.3f" % (f, fams[f]["ratio"]) for f in FAMS if f in fams)))
    lg = 100.0 * (A["ledger_base"] / base_cost - 1) if base_cost else float("nan")
    w("- **Ledger: Σ `baseline_cost_usd` of `all` within 5%% of the measured all-off cost: %s.** "
      "%s against %s (%+.1f%%)." % ("met" if abs(lg) <= 5 else "not met", money(A["ledger_base"]),
                                     money(base_cost), lg))
    over = [r for r in A["res"].values() if (r.get("cost_usd") or 0) > (r.get("baseline_cost_usd") or 0) + 1e-12
            and not (r.get("optimizations") or {}).get("promoted")]
    w("- **No result costs more than its baseline unless promoted: %s.** %d such results." % (
        "met" if not over else "not met", len(over)))
    wr = 100 * A["wrong_hits"] / A["hits"] if A["hits"] else 0
    w("- **Wrong cache hits ≤ 1%% of hits: %s.** %d wrong of %d hits (%.2f%%) by the rule in (a)." % (
        "met" if wr <= 1 else "not met", A["wrong_hits"], A["hits"], wr))
    cands = [(S[c]["rps"], c) for c in ("all", "cache") if c in S]
    best = max(cands)
    w("- **≥ 1,000 requests/s end to end, zero-delay simulator, cache on: %s.** `all` drained %d "
      "requests at %.0f requests/s%s, with the CPU embedder (`%s`) in the path of every request; "
      "the pass-through `baseline` (no embedding) ran at %.0f requests/s on the same machine. "
      "Command: `%s`." % (
          "met" if A["rps"] >= 1000 else "not met", A["results"], A["rps"],
          ("" if "cache" not in S else "; `cache` only: %.0f requests/s" % S["cache"]["rps"]),
          A["backend"], B["rps"], cmdline))
w("")
with open(outmd, "w", encoding="utf-8") as f:
    f.write("\n".join(lines) + "\n")

# ---- chart: cost per configuration against the measured baseline ----
order = [c for c in ["baseline", "cache", "route", "prune", "prompt_cache", "all"] if c in S] + \
        [c for c in configs if c not in ("baseline", "cache", "route", "prune", "prompt_cache", "all")]
W, left, right, top, bar, gap = 820, 190, 150, 84, 30, 14
H = top + len(order) * (bar + gap) + 56
vmax = max(max(max(S[c]["cost"], S[c]["ledger_base"]) for c in order), base_cost) or 1
scale = (W - left - right) / vmax


def esc(x):
    return str(x).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


svg = ['<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" '
       'font-family="DejaVu Sans, Arial, sans-serif" font-size="13">' % (W, H, W, H),
       '<rect width="100%" height="100%" fill="white"/>',
       '<text x="%d" y="24" font-size="16" font-weight="bold">scrimp end to end: cost of %d requests '
       'per configuration</text>' % (left - 170, n_req),
       '<text x="%d" y="44" fill="#555">USD, simulator billed at Gemini prices; dashed line = '
       'measured baseline (everything off)</text>' % (left - 170),
       '<text x="%d" y="62" fill="#555">black tick = that run\'s own ledger baseline '
       '(Σ baseline_cost_usd of its results)</text>' % (left - 170)]
for k, c in enumerate(order):
    y = top + k * (bar + gap)
    s = S[c]
    wd = max(1.0, s["cost"] * scale)
    color = "#9e9e9e" if c == "baseline" else "#2e7d32" if c == "all" else "#4a78b5"
    svg.append('<text x="%d" y="%d" text-anchor="end">%s</text>' % (left - 8, y + bar * 0.65, esc(LABEL.get(c, c))))
    svg.append('<rect x="%d" y="%d" width="%.1f" height="%d" fill="%s"/>' % (left, y, wd, bar, color))
    lx = left + s["ledger_base"] * scale  # this run's own Σ baseline_cost_usd
    svg.append('<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#222" stroke-width="2"/>' % (
        lx, y - 3, lx, y + bar + 3))
    sv = saving(s["cost"], base_cost)
    note = "$%.4f" % s["cost"] + ("" if c == "baseline" else "  (%s%.1f%%)" % ("−" if sv >= 0 else "+", abs(sv)))
    svg.append('<text x="%.1f" y="%d">%s</text>' % (max(left + wd, lx) + 6, y + bar * 0.65, esc(note)))
bx = left + base_cost * scale
svg.append('<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#c62828" stroke-width="1.5" '
           'stroke-dasharray="5,4"/>' % (bx, top - 8, bx, top + len(order) * (bar + gap) - gap + 8))
svg.append('<text x="%d" y="%d" fill="#555" font-size="11">%s; %s</text>' % (
    left - 170, H - 14, esc(date), esc(cmdline)))
svg.append("</svg>")
with open(outsvg, "w", encoding="utf-8") as f:
    f.write("\n".join(svg) + "\n")
print("wrote %s and %s" % (outmd, outsvg))
PY
