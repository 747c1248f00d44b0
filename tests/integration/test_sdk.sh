#!/usr/bin/env bash
# test_sdk.sh - Google's Python SDK (google-genai, pinned by scripts/setup into .venv) drives the
# Gemini simulator through every call kind it has (tests/sdk/conformance.py), errors included,
# and every generateContent body the SDK sent, recorded by the simulator, passes `scrimp
# validate` unchanged once wrapped as a scrimp request (the Gemini fields less model and
# cachedContent, which scrimp decides).
set -euo pipefail
SCRIMP=${1:?usage: test_sdk.sh path/to/scrimp}
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
PY="$ROOT/.venv/bin/python"
# a conformance run whose checks all pass sends 12 generateContent calls to the recorded simulator
# (13 bodies where the simulator records streamGenerateContent too)
MIN_BODIES=12

if ! [ -x "$PY" ] || ! "$PY" -c 'import google.genai' >/dev/null 2>&1; then
  echo "FAIL the SDK is not installed: $PY cannot import google.genai; run scripts/setup" \
    "(it makes .venv with google-genai pinned)"
  exit 1
fi

WORK=$(mktemp -d /tmp/scrimp-it-sdk.XXXXXX)
. "$ROOT/scripts/lib.sh"
cleanup() {
  local rc=$?
  sc_stop_all
  if [ "$rc" -eq 0 ]; then rm -rf "$WORK"; else echo "work dir: $WORK"; fi
}
trap cleanup EXIT
FAILS=0
pass() { echo "ok   $1"; }
fail() { echo "FAIL $1"; FAILS=$((FAILS + 1)); }

# The recorded simulator gets only well-formed requests; the ones that must be refused go to a
# second one, and the injected faults to two more (every generateContent failed, no cap).
sc_start_bg sim "$SCRIMP" gemini-sim --port 0 --record "$WORK/record.jsonl" \
  --batch-pending-ms 20 --batch-running-ms 50
SIM_URL=$(sc_first_line sim)
sc_start_bg sim_errors "$SCRIMP" gemini-sim --port 0
ERR_URL=$(sc_first_line sim_errors)
sc_start_bg sim_429 "$SCRIMP" gemini-sim --port 0 --faults "429=1,max_per_request=0"
URL_429=$(sc_first_line sim_429)
sc_start_bg sim_503 "$SCRIMP" gemini-sim --port 0 --faults "503=1,max_per_request=0"
URL_503=$(sc_first_line sim_503)

if "$PY" "$ROOT/tests/sdk/conformance.py" --base-url "$SIM_URL" --errors-url "$ERR_URL" \
     --url-429 "$URL_429" --url-503 "$URL_503" >"$WORK/conformance.txt" 2>&1; then
  pass "the SDK's checks: $(grep '^conformance:' "$WORK/conformance.txt" | tail -n1)"
else
  fail "the SDK's checks: $(grep '^conformance:' "$WORK/conformance.txt" | tail -n1 || true)"
fi
sed 's/^/    /' "$WORK/conformance.txt"

# The recorded bodies as scrimp requests, one a line; the ids are sdk-1, sdk-2, ...
if python3 - "$WORK/record.jsonl" "$WORK/requests.jsonl" >"$WORK/wrap.txt" 2>&1 <<'PY'
import json, sys
n = 0
with open(sys.argv[1], encoding="utf-8") as rec, open(sys.argv[2], "w", encoding="utf-8") as out:
    for line in rec:
        if not line.strip():
            continue
        rec_line = json.loads(line)
        if "body" not in rec_line:
            continue  # a created batch's line (its keys), not a generateContent body
        body = rec_line["body"]
        n += 1
        if not isinstance(body, dict):
            sys.exit(f"recorded body {n} is not a JSON object: {str(body)[:200]}")
        req = {"id": f"sdk-{n}", "tenant": "sdk"}
        req.update({k: v for k, v in body.items() if k not in ("model", "cachedContent")})
        out.write(json.dumps(req) + "\n")
print(n)
PY
then
  bodies=$(tail -n1 "$WORK/wrap.txt")
else
  bodies=0
  fail "the record could not be read: $(tail -n1 "$WORK/wrap.txt")"
fi
[ "$bodies" -ge "$MIN_BODIES" ] && pass "$bodies generateContent bodies recorded" ||
  fail "$bodies generateContent bodies recorded, wanted at least $MIN_BODIES"

vrc=0
"$SCRIMP" validate <"$WORK/requests.jsonl" >"$WORK/validate.out" 2>"$WORK/validate.log" || vrc=$?
lines=$(grep -c . "$WORK/validate.out" || true)
oks=$(grep -c '^ok sdk-[0-9]*$' "$WORK/validate.out" || true)
# one "ok ID" line per body, every id once
seq 1 "$bodies" | sed 's/^/ok sdk-/' | sort >"$WORK/validate.want"
grep -v '^$' "$WORK/validate.out" | sort >"$WORK/validate.got" || true
if [ "$vrc" -eq 0 ] && [ "$bodies" -gt 0 ] && cmp -s "$WORK/validate.want" "$WORK/validate.got"; then
  pass "scrimp validate: all $bodies recorded bodies ok"
else
  fail "scrimp validate (exit $vrc): $oks ok of $bodies, $lines lines; $(head -c 300 "$WORK/validate.log")"
  grep -v '^ok ' "$WORK/validate.out" | head -n 20 | sed 's/^/    /' || true
fi

echo "$FAILS failures"
[ "$FAILS" -eq 0 ]
