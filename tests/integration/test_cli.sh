#!/usr/bin/env bash
# test_cli.sh - the command line says clearly what is wrong: malformed configuration names the key
# and exits non-zero; an unreachable broker or upstream is reported within 10 s; secrets never
# appear in `config dump`; the tools print their address as the first stdout line.
set -uo pipefail
SCRIMP=${1:?usage: test_cli.sh path/to/scrimp}
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
WORK=$(mktemp -d /tmp/scrimp-it-cli.XXXXXX)
. "$ROOT/scripts/lib.sh"
trap 'sc_stop_all; rm -rf "$WORK"' EXIT
FAILS=0

pass() { echo "ok   $1"; }
fail() { echo "FAIL $1"; FAILS=$((FAILS + 1)); }

# expect NAME WANT_RC PATTERN CMD...: run CMD, check its exit status and that stderr+stdout match.
expect() {
  local name=$1 want=$2 pattern=$3; shift 3
  local out rc
  out=$("$@" 2>&1); rc=$?
  if [ "$rc" -eq "$want" ] && grep -qE -- "$pattern" <<<"$out"; then pass "$name"
  else fail "$name (rc=$rc, want $want, /$pattern/): $(head -c 400 <<<"$out")"; fi
}

expect "version" 0 '^scrimp [0-9]+\.[0-9]+' "$SCRIMP" version
expect "unknown command" 2 'unknown command "frobnicate"' "$SCRIMP" frobnicate
expect "-X unknown key named" 2 'batch.max_mesages: unknown configuration key' \
  "$SCRIMP" config dump -X batch.max_mesages=5
expect "-X bad integer named" 2 'batch.max_messages: "lots" is not an integer' \
  "$SCRIMP" config dump -X batch.max_messages=lots
expect "-X out of range named" 2 'batch.max_messages: 0 is out of range' \
  "$SCRIMP" config dump -X batch.max_messages=0
expect "-X bad url named" 2 'gemini.base_url: .*http' "$SCRIMP" config dump -X gemini.base_url=ftp://x
expect "-X api key refused" 2 'gemini.api_key: secrets are read from the environment' \
  "$SCRIMP" config dump -X gemini.api_key=abc

echo '{"batch": {"max_messages": "many"}}' >"$WORK/badtype.json"
expect "file wrong type named" 2 'batch.max_messages: must be an integer, got a string' \
  "$SCRIMP" config dump -c "$WORK/badtype.json"
echo '{"batch": {"max_wait": 5}}' >"$WORK/badkey.json"
expect "file unknown key named" 2 'batch.max_wait: unknown configuration key' \
  "$SCRIMP" config dump -c "$WORK/badkey.json"
printf '{"batch": {\n  "max_messages": 5,\n}' >"$WORK/badjson.json"
expect "file syntax error located" 2 'badjson.json:[0-9]+:[0-9]+' \
  "$SCRIMP" config dump -c "$WORK/badjson.json"
expect "missing file named" 2 'nope.json' "$SCRIMP" config dump -c "$WORK/nope.json"

out=$(GEMINI_API_KEY=sk-very-secret-123 "$SCRIMP" config dump -X kafka.sasl.password=hunter2 \
      -X kafka.linger.ms=7 -X batch.max_messages=17 2>&1)
if grep -q 'sk-very-secret-123\|hunter2' <<<"$out"; then fail "config dump masks secrets"
else pass "config dump masks secrets"; fi
if grep -q '"linger.ms": "7"' <<<"$out" && grep -q '"max_messages": 17' <<<"$out"; then
  pass "config dump shows overrides (kafka.* passed through as is)"
else fail "config dump shows overrides: $out"; fi

sc_start_sim
sc_start_broker 2
unset GEMINI_API_KEY
expect "missing API key" 1 'GEMINI_API_KEY is not set' \
  "$SCRIMP" serve -X metrics.listen=127.0.0.1:0 -X "cache.path=$WORK/cache" -X "prune.path=$WORK/sum" -X "router.shadow_path=$WORK/sum.shadow" -X "kafka.bootstrap.servers=$BOOTSTRAP" -X "gemini.base_url=$SIM_URL"
export GEMINI_API_KEY=cli-key

t0=$SECONDS
expect "unreachable broker reported" 1 'cannot reach Kafka at 127.0.0.1:1' \
  "$SCRIMP" serve -X metrics.listen=127.0.0.1:0 -X "cache.path=$WORK/cache" -X "prune.path=$WORK/sum" -X "router.shadow_path=$WORK/sum.shadow" -X kafka.bootstrap.servers=127.0.0.1:1 -X "gemini.base_url=$SIM_URL"
[ $((SECONDS - t0)) -le 12 ] && pass "unreachable broker within 10 s ($((SECONDS - t0)) s)" \
  || fail "unreachable broker took $((SECONDS - t0)) s"

t0=$SECONDS
expect "unreachable upstream reported" 1 'upstream unreachable.*127.0.0.1' \
  "$SCRIMP" serve -X metrics.listen=127.0.0.1:0 -X "cache.path=$WORK/cache" -X "prune.path=$WORK/sum" -X "router.shadow_path=$WORK/sum.shadow" -X "kafka.bootstrap.servers=$BOOTSTRAP" -X gemini.base_url=http://127.0.0.1:1
[ $((SECONDS - t0)) -le 12 ] && pass "unreachable upstream within 10 s ($((SECONDS - t0)) s)" \
  || fail "unreachable upstream took $((SECONDS - t0)) s"

expect "missing topic named" 1 'topic "no.such.topic" does not exist' \
  "$SCRIMP" serve -X metrics.listen=127.0.0.1:0 -X "cache.path=$WORK/cache" -X "prune.path=$WORK/sum" -X "router.shadow_path=$WORK/sum.shadow" -X "kafka.bootstrap.servers=$BOOTSTRAP" -X "gemini.base_url=$SIM_URL" \
  -X topics.requests=no.such.topic

expect "bad fault spec named" 1 'bogus' "$SCRIMP" gemini-sim --faults bogus=1

# embed: a missing or corrupt model is an error naming the file; a good one gives 384 floats a line
expect "embed: missing model named" 1 "$WORK/no-model" "$SCRIMP" embed --model "$WORK/no-model"
mkdir -p "$WORK/bad-model"
cp "$ROOT/models/all-MiniLM-L6-v2/config.json" "$ROOT/models/all-MiniLM-L6-v2/vocab.txt" "$WORK/bad-model/"
head -c 1000000 "$ROOT/models/all-MiniLM-L6-v2/model.safetensors" >"$WORK/bad-model/model.safetensors"
expect "embed: corrupt weights named" 1 "bad-model/model.safetensors" \
  "$SCRIMP" embed --model "$WORK/bad-model" --backend cpu
out=$(printf 'hello world\nthe router keeps rebooting\n' | \
      "$SCRIMP" embed --model "$ROOT/models/all-MiniLM-L6-v2" --backend cpu --format jsonl 2>/dev/null)
if python3 -c '
import json, sys, math
rows = [json.loads(l) for l in sys.stdin.read().splitlines()]
assert [r["i"] for r in rows] == [0, 1], rows
for r in rows:
    e = r["embedding"]; assert len(e) == 384
    assert abs(math.sqrt(sum(x * x for x in e)) - 1) < 1e-4
' <<<"$out"; then pass "embed: one normalised 384-float embedding per input line"
else fail "embed output: $(head -c 300 <<<"$out")"; fi

# backfill without a key fails before any work (well under a second: no model, no cache) and
# leaves no output or journal behind, so the next run needs no --resume
echo '{"id": "b1", "messages": [{"role": "user", "content": "hi"}]}' >"$WORK/one.jsonl"
t0=$(date +%s%N)
out=$(env -u GEMINI_API_KEY "$SCRIMP" backfill "$WORK/one.jsonl" -o "$WORK/nokey.jsonl" \
      -X "cache.path=$WORK/nokey-cache" -X "prune.path=$WORK/nokey-sum" -X "router.shadow_path=$WORK/nokey-sum.shadow" 2>&1); rc=$?
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
if [ "$rc" -ne 0 ] && grep -q "GEMINI_API_KEY is not set" <<<"$out" && [ "$ms" -lt 1000 ] &&
   [ ! -e "$WORK/nokey.jsonl" ] && [ ! -e "$WORK/nokey.jsonl.state" ] && [ ! -e "$WORK/nokey-cache" ]; then
  pass "backfill without a key: fails in ${ms} ms, names the key, leaves no file"
else fail "backfill without a key (rc=$rc, ${ms} ms, files: $(ls "$WORK" | tr '\n' ' ')): $(head -c 300 <<<"$out")"; fi
# a failure after the files are checked but before the first line (a missing model) leaves none
out=$(GEMINI_API_KEY=fake-key "$SCRIMP" backfill "$WORK/one.jsonl" -o "$WORK/nomodel.jsonl" \
      -X "models.embedding=$WORK/no-model" -X "cache.path=$WORK/nm-cache" -X "prune.path=$WORK/nm-sum" -X "router.shadow_path=$WORK/nm-sum.shadow" 2>&1); rc=$?
if [ "$rc" -ne 0 ] && grep -q "no-model" <<<"$out" && [ ! -e "$WORK/nomodel.jsonl" ] &&
   [ ! -e "$WORK/nomodel.jsonl.state" ]; then
  pass "backfill with a missing model: names it, leaves no output file"
else fail "backfill with a missing model (rc=$rc, files: $(ls "$WORK" | tr '\n' ' ')): $(head -c 300 <<<"$out")"; fi

# classify: a scrimp request is scored on its last user turn; a prompt outside the router's domain
# (free-form: no answer options) gets the strong tier, as serve's default router.outside_tier
python3 - >"$WORK/classify.in" <<'PY'
import json
q = "Find the degree for the given field extension Q(sqrt(2), sqrt(3), sqrt(18)) over Q.\nA. 0\nB. 4\nC. 2\nD. 6\nAnswer:"
print(json.dumps({"id": "c1", "tenant": "t", "messages": [{"role": "user", "content": "hello"},
                  {"role": "model", "content": "hi"}, {"role": "user", "content": q}]}))
print("Tell me a story about a lighthouse keeper.")
PY
out=$("$SCRIMP" classify --router "$ROOT/models/router/router.json" --model "$ROOT/models/all-MiniLM-L6-v2" \
      <"$WORK/classify.in" 2>"$WORK/classify.log") || true
if [ "$(sed -n 1p <<<"$out" | grep -c in_domain)" -eq 0 ] &&
   sed -n 2p <<<"$out" | grep -q '"tier":"pro","in_domain":false'; then
  pass "classify: a request's last user turn is in the router's domain; a free-form prompt gets pro"
else fail "classify: $out"; fi

echo "$FAILS failures"
[ "$FAILS" -eq 0 ]
