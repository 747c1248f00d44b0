#!/usr/bin/env bash
# test_prometheus.sh - a real Prometheus (Debian's package, installed by scripts/setup) scrapes a
# running scrimp serve: kcat produces N requests over three tenants, scrimp answers them through
# the simulator, and Prometheus's HTTP API must return N for sum(scrimp_requests_total), the
# per-tenant split, and the output tokens the results report. Also checks /healthz and /readyz.
set -euo pipefail
SCRIMP=${1:?usage: test_prometheus.sh path/to/scrimp}
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
WORK=$(mktemp -d /tmp/scrimp-it-prom.XXXXXX)
. "$ROOT/scripts/lib.sh"
trap 'sc_stop_all; echo "work dir: $WORK"' EXIT

N=60                  # requests produced
METRICS_WAIT_S=60     # for serve's endpoint to answer
RESULTS_WAIT_S=120    # for N results on scrimp.results
PROM_WAIT_S=90        # for Prometheus to start and to see the final value

PROMETHEUS=$(command -v prometheus) || { echo "FAIL: prometheus is not installed (scripts/setup)"; exit 1; }

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

# poll_until TIMEOUT_S CMD...: run CMD every 0.25 s until it succeeds or the time is up.
poll_until() {
  local timeout=$1 start=$SECONDS; shift
  while [ $((SECONDS - start)) -lt "$timeout" ]; do
    "$@" && return 0
    sleep 0.25
  done
  return 1
}

python3 - "$WORK/requests.jsonl" "$N" <<'PY'
import json, sys
path, n = sys.argv[1], int(sys.argv[2])
tenants = ["acme", "globex", "initech"]
with open(path, "w") as f:
    for i in range(n):
        f.write(json.dumps({"id": f"prom-{i:04d}", "tenant": tenants[i % 3],
                            "agent": "support-bot", "stage": ["triage", "answer"][i % 2],
                            "model": "gemini-2.5-flash",
                            "messages": [{"role": "user", "content": f"question number {i}"}]})
                + "\n")
PY

sc_start_broker 2
sc_start_sim
export GEMINI_API_KEY=it-key
MPORT=$(free_port)
METRICS="http://127.0.0.1:$MPORT"
sc_start_bg serve "$SCRIMP" serve -X "kafka.bootstrap.servers=$BOOTSTRAP" -X "gemini.base_url=$SIM_URL" \
  -X "metrics.listen=127.0.0.1:$MPORT" -X kafka.session.timeout.ms=6000 \
  -X "cache.path=$WORK/cache" -X "prune.path=$WORK/summaries" -X "router.shadow_path=$WORK/summaries.shadow" \
  -X kafka.heartbeat.interval.ms=500

serve_metrics() {
  kill -0 "$PID_serve" 2>/dev/null || { echo "FAIL: scrimp serve exited"; tail -20 "$WORK/serve.log"; exit 1; }
  curl -sf "$METRICS/metrics" -o /dev/null
}
poll_until $METRICS_WAIT_S serve_metrics || {
  echo "FAIL: scrimp serve does not answer $METRICS/metrics within ${METRICS_WAIT_S}s"
  tail -20 "$WORK/serve.log"; exit 1; }
code=$(curl -s -o /dev/null -w '%{http_code}' "$METRICS/healthz")
[ "$code" = 200 ] || { echo "FAIL: /healthz answered $code"; exit 1; }
echo "ok    /metrics and /healthz answer on $METRICS"
ctype=$(curl -s -o /dev/null -w '%{content_type}' "$METRICS/metrics")
case "$ctype" in "text/plain; version=0.0.4"*) ;; *) echo "FAIL: /metrics Content-Type '$ctype'"; exit 1;; esac
code=$(curl -s -o /dev/null -w '%{http_code}' "$METRICS/nothing-here")
[ "$code" = 404 ] || { echo "FAIL: an unknown path answered $code, expected 404"; exit 1; }

kcat -P -b "$BOOTSTRAP" -t scrimp.requests -l "$WORK/requests.jsonl"
have_results() {
  sc_consume scrimp.results "$WORK/results.jsonl"
  [ "$(sc_count_ids "$WORK/results.jsonl")" -ge "$N" ]
}
poll_until $RESULTS_WAIT_S have_results || {
  echo "FAIL: only $(sc_count_ids "$WORK/results.jsonl") of $N results after ${RESULTS_WAIT_S}s"
  tail -20 "$WORK/serve.log"; exit 1; }
echo "ok    $N results on scrimp.results"
ready=$(curl -s -o /dev/null -w '%{http_code}' "$METRICS/readyz")
[ "$ready" = 200 ] || { echo "FAIL: /readyz answered $ready while serve was answering requests"; exit 1; }
echo "ok    /readyz is 200 while serving"

# What the results say, to compare with what Prometheus will say.
python3 - "$WORK/results.jsonl" "$WORK/expected.json" <<'PY'
import json, sys
seen = {}
for line in open(sys.argv[1], encoding="utf-8"):
    r = json.loads(line)
    if r.get("id", "").startswith("prom-"):
        seen[r["id"]] = r
tenants, output = {}, 0
for r in seen.values():
    tenants[r["tenant"]] = tenants.get(r["tenant"], 0) + 1
    output += (r.get("usage") or {}).get("output_tokens", 0)
json.dump({"n": len(seen), "tenants": tenants, "output_tokens": output}, open(sys.argv[2], "w"))
PY

PPORT=$(free_port)
PROM="http://127.0.0.1:$PPORT"
cat >"$WORK/prometheus.yml" <<EOF
global:
  scrape_interval: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: scrimp
    scrape_interval: 1s
    static_configs:
      - targets: ["127.0.0.1:$MPORT"]
EOF
sc_start_bg prometheus "$PROMETHEUS" --config.file="$WORK/prometheus.yml" \
  --storage.tsdb.path="$WORK/tsdb" --web.listen-address="127.0.0.1:$PPORT"
prom_ready() {
  kill -0 "$PID_prometheus" 2>/dev/null || { echo "FAIL: prometheus exited"; tail -20 "$WORK/prometheus.log"; exit 1; }
  curl -sf "$PROM/-/ready" -o /dev/null
}
poll_until $PROM_WAIT_S prom_ready || { echo "FAIL: prometheus not ready after ${PROM_WAIT_S}s"; tail -20 "$WORK/prometheus.log"; exit 1; }
echo "ok    prometheus $("$PROMETHEUS" --version 2>&1 | head -n1 | awk '{print $3}') ready on $PROM"

# prom_query EXPR: the instant vector of EXPR as {"labels as json": value} on stdout.
prom_query() {
  curl -sf -G "$PROM/api/v1/query" --data-urlencode "query=$1" | python3 -c '
import json, sys
d = json.load(sys.stdin)
assert d["status"] == "success", d
print(json.dumps({json.dumps(s["metric"], sort_keys=True): float(s["value"][1])
                  for s in d["data"]["result"]}))'
}

total_is_n() {
  local got
  got=$(prom_query 'sum(scrimp_requests_total)') || return 1
  [ "$(python3 -c 'import json, sys; v = list(json.loads(sys.argv[1]).values()); print(int(v[0]) if v else -1)' "$got")" = "$N" ]
}
if ! poll_until $PROM_WAIT_S total_is_n; then
  echo "FAIL: sum(scrimp_requests_total) never reached $N: $(prom_query 'sum(scrimp_requests_total)' || true)"
  curl -s "$PROM/api/v1/targets" | head -c 2000; echo
  exit 1
fi
echo "ok    Prometheus: sum(scrimp_requests_total) = $N"

prom_query 'sum by (tenant) (scrimp_requests_total)' >"$WORK/by_tenant.json"
prom_query 'sum(scrimp_tokens_total{kind="output"})' >"$WORK/output.json"
prom_query 'up{job="scrimp"}' >"$WORK/up.json"
prom_query 'sum(scrimp_request_latency_seconds_count)' >"$WORK/latency_count.json"
python3 - "$WORK" <<'PY'
import json, sys, os
w = sys.argv[1]
load = lambda n: json.load(open(os.path.join(w, n)))
exp = load("expected.json")
ok = True
def check(cond, what):
    global ok
    print(("ok    " if cond else "FAIL  ") + what)
    ok = ok and cond
by_tenant = {json.loads(k).get("tenant"): v for k, v in load("by_tenant.json").items()}
check(by_tenant == {t: float(c) for t, c in exp["tenants"].items()},
      f"requests per tenant {by_tenant} match the results {exp['tenants']}")
out = list(load("output.json").values())
check(out and out[0] == exp["output_tokens"] and exp["output_tokens"] > 0,
      f"output tokens {out} match the results ({exp['output_tokens']})")
up = list(load("up.json").values())
check(up == [1.0], f"up{{job=\"scrimp\"}} = {up}")
lat = list(load("latency_count.json").values())
check(lat == [float(exp["n"])], f"latency histogram count {lat} = {exp['n']}")
sys.exit(0 if ok else 1)
PY

sc_stop "$PID_prometheus" 30 || true
t0=$SECONDS
sc_stop "$PID_serve" 30 && rc=0 || rc=$?
[ "$rc" -eq 0 ] || { echo "FAIL: serve exited $rc after SIGTERM"; tail -20 "$WORK/serve.log"; exit 1; }
echo "ok    serve stopped cleanly in $((SECONDS - t0)) s"
rm -rf "$WORK"
trap sc_stop_all EXIT
