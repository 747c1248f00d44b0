#!/usr/bin/env bash
# bench/scale_out.sh - a replica that joins later restores N cache entries from the changelog
# topic: N records (each with a 384-float vector, as serve writes them) are produced to
# scrimp.cache on the dev broker, then `scrimp serve -X cache.changelog=true` starts on an empty
# store; its event=changelog.restore line gives the time, records and bytes, and `scrimp cache
# stats` on its store counts the entries afterwards. Writes bench/results/scale-out.md.
# usage: bench/scale_out.sh [N] [PARTITIONS]   (default 100000 and 128)
# The dev broker (librdkafka's mock cluster) keeps at most 5 MiB and 100,000 messages per
# partition, dropping the oldest beyond that, so N records of about 2.9 KB need N*2.9KB/5MiB
# partitions at least (about 60 for 100,000); 128 hold them with room. A real cluster compacts the topic instead: it
# keeps the latest record per key, whatever the total.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
N=${1:-100000}
P=${2:-128}
SCRIMP="$ROOT/build/scrimp"
[ -x "$SCRIMP" ] || { echo "build first: scripts/build" >&2; exit 2; }
WORK=$(mktemp -d /tmp/scrimp-bench-scaleout.XXXXXX)
. "$ROOT/scripts/lib.sh"
trap 'sc_stop_all; rm -rf "$WORK"' EXIT
export GEMINI_API_KEY=bench-key

sc_start_broker "$P"
sc_start_sim
echo "producing $N changelog records to $P partitions..."
t0=$(date +%s.%N)
python3 - "$N" >"$WORK/records.txt" <<'PY'
import base64, json, random, struct, sys, time
n = int(sys.argv[1])
rng = random.Random(7)
now = int(time.time() * 1000)
for i in range(n):
    v = [rng.gauss(0, 1) for _ in range(384)]
    norm = sum(x * x for x in v) ** 0.5
    vec = base64.b64encode(struct.pack("<384f", *[x / norm for x in v])).decode()
    scope = "%016x" % (0x1000 + i % 500)  # 500 scopes (tenants x system prompts)
    text = f"question number {i} about the order pipeline"
    rec = {"v": 1, "origin": "bench-writer", "tenant": f"tenant-{i % 50}", "scope": scope,
           "text": text, "response": f"answer {i}: " + "lorem ipsum " * 20,
           "model": "gemini-2.5-flash", "usage": [40, 0, 60, 0], "cost_usd": 0.0001,
           "created_ms": now - (n - i), "vec": vec}  # within the TTL
    print(f"{scope}:{i:016x}\t" + json.dumps(rec, separators=(",", ":")))
PY
kcat -P -b "$BOOTSTRAP" -t scrimp.cache -K $'\t' -z lz4 -l "$WORK/records.txt"
t1=$(date +%s.%N)
BYTES=$(wc -c <"$WORK/records.txt")
echo "produced $N records ($BYTES bytes) in $(python3 -c "print(round($t1 - $t0, 1))") s"

sc_start_bg serve "$SCRIMP" serve -X "kafka.bootstrap.servers=$BOOTSTRAP" -X "gemini.base_url=$SIM_URL" \
  -X metrics.listen=127.0.0.1:0 -X router.shadow_rate=0 -X cache.changelog=true \
  -X cache.changelog_restore_ms=0 -X "cache.path=$WORK/cache" -X "prune.path=$WORK/sum" \
  -X "router.shadow_path=$WORK/shadow"
start=$SECONDS
until grep -q "event=changelog.start" "$WORK/serve.log"; do
  [ $((SECONDS - start)) -lt 900 ] || { echo "no restore within 900 s" >&2; tail -5 "$WORK/serve.log" >&2; exit 1; }
  kill -0 "$PID_serve" 2>/dev/null || { echo "serve exited:" >&2; tail -5 "$WORK/serve.log" >&2; exit 1; }
  sleep 0.5
done
LINE=$(grep -m1 "event=changelog.restore" "$WORK/serve.log")
RSS=$(awk '/VmHWM/ {print $2}' "/proc/$PID_serve/status")
sc_stop "$PID_serve" 60 || true
ENTRIES=$("$SCRIMP" cache stats -X "cache.path=$WORK/cache" 2>/dev/null |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["entries"])')
STORE=$(du -sb "$WORK/cache" | cut -f1)
val() { echo "$LINE" | grep -o " $1=[^ ]*" | cut -d= -f2; }
MS=$(val ms); REC=$(val records); APPLIED=$(val applied); RBYTES=$(val bytes); COMPLETE=$(val complete)
echo "$LINE"
echo "entries in the restored store: $ENTRIES"

OUTMD="$ROOT/bench/results/scale-out.md"
{
  echo "# A replica that joins later: restoring $N cache entries from the changelog"
  echo
  echo "- command: \`bench/scale_out.sh $N $P\`"
  echo "- machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(nproc) cores; dev broker (librdkafka's mock cluster) on loopback, $P partitions"
  echo "- date: $(date -u '+%Y-%m-%d %H:%M UTC'); build: $(git -C "$ROOT" rev-parse --short HEAD)"
  echo "- records: as serve writes them (384-float vector in base64, 50 tenants, 500 scopes); produced with kcat (lz4)"
  echo
  echo "| records read | applied | entries after | restore time | records/s | bytes read | store on disk | peak RSS | complete |"
  echo "|---:|---:|---:|---:|---:|---:|---:|---:|---|"
  echo "| $REC | $APPLIED | $ENTRIES | $(python3 -c "print(f'{$MS/1000:.1f} s')") | $(python3 -c "print(round($REC / max($MS, 1) * 1000))") | $(python3 -c "print(f'{$RBYTES/2**20:.0f} MiB')") | $(python3 -c "print(f'{$STORE/2**20:.0f} MiB')") | $(python3 -c "print(f'{$RSS/1024:.0f} MiB')") | $COMPLETE |"
  echo
  echo "The restore reads every partition from its start to the end it had when serve started, checks"
  echo "each record against the store (an entry held as new is skipped) and inserts in transactions"
  echo "of 256, vectors into the flat index. Serve consumes no request before it ends"
  echo "(\`cache.changelog_restore_ms\`, here 0: no limit)."
} >"$OUTMD"
cat "$OUTMD"
