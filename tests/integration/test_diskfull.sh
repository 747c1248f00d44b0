#!/usr/bin/env bash
# test_diskfull.sh - a full disk, on a small tmpfs this test mounts itself, under the backfill
# output and its journal (online and Batch Mode), the cache store and its saved index, the summary
# store and the shadow store. Every failure is reported with the file and its cause, no run
# crashes or claims success it does not have, nothing written is torn, and once there is room
# again nothing acknowledged is missing: --resume ends with exactly one whole line per input line
# (no batch created or paid twice), and every store opens and takes writes.
# Needs root (or CAP_SYS_ADMIN) to mount: exits 77 (skipped) without.
set -euo pipefail
SCRIMP=${1:?usage: test_diskfull.sh path/to/scrimp}
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
WORK=$(mktemp -d /tmp/scrimp-it-diskfull.XXXXXX)
DISK="$WORK/disk"
mkdir "$DISK"
. "$ROOT/scripts/lib.sh"
MOUNTED=0
cleanup() {
  local rc=$?
  sc_stop_all
  if [ "$MOUNTED" = 1 ]; then umount "$DISK" 2>/dev/null || umount -l "$DISK" 2>/dev/null || true; fi
  if [ "$rc" = 0 ] || [ "$rc" = 77 ]; then rm -rf "$WORK"; else echo "work dir: $WORK"; fi
}
trap cleanup EXIT
export GEMINI_API_KEY=df-key

if ! mount -t tmpfs -o size=64k tmpfs "$DISK" 2>"$WORK/mount.err"; then
  echo "skipped: cannot mount tmpfs (needs root or CAP_SYS_ADMIN): $(head -n1 "$WORK/mount.err")"
  exit 77
fi
MOUNTED=1

FAILS=0
ok() { echo "ok   $*"; }
fail() { echo "FAIL $*"; FAILS=$((FAILS + 1)); }
resize() { mount -o "remount,size=$1" "$DISK"; }
fill() { # fill [BYTES_LEFT]: a filler file takes the disk's room but BYTES_LEFT (rounded to pages)
  local left=${1:-0} avail
  rm -f "$DISK/filler"
  avail=$(df -B1 --output=avail "$DISK" | tail -n1 | tr -d ' ')
  if [ "$left" = 0 ]; then dd if=/dev/zero of="$DISK/filler" bs=4096 2>/dev/null || true
  else dd if=/dev/zero of="$DISK/filler" bs=4096 count=$(((avail - left) / 4096)) 2>/dev/null; fi
}
room() { rm -f "$DISK/filler"; }
simstat() { curl -sf "$1/sim/stats"; }
# has LOG TEXT: LOG holds TEXT (fixed string)
has() { grep -qF -- "$2" "$1"; }

python3 "$ROOT/tests/integration/make_traffic.py" "$WORK" 100 0 # 100 valid + 20 malformed
IN="$WORK/requests.jsonl"
N_IN=$(wc -l <"$IN")
COMMON=(-X limits.max_message_bytes=4096)
# the stores not under test live off the tmpfs
OFF=(-X "cache.path=$WORK/cache-off" -X "prune.path=$WORK/sum-off" -X "router.shadow_path=$WORK/shadow-off")

check_out() { # check_out IN OUT NAME: one whole JSON line per input line, each for its own line
  python3 - "$1" "$2" "$3" <<'PY'
import json, sys
inp, out, name = sys.argv[1:4]
raw = open(inp, "rb").read().split(b"\n")[:-1]
data = open(out, "rb").read()
fails = []
if data and not data.endswith(b"\n"):
    fails.append("the output ends in a torn line")
nums = []
for k, l in enumerate(data.split(b"\n")[:-1] if data.endswith(b"\n") else data.split(b"\n"), 1):
    try:
        r = json.loads(l)
    except ValueError:
        fails.append(f"output line {k} is not JSON: {l[:60]!r}...")
        continue
    nums.append(r["line"])
    if r["status"] == "ok" and r["id"] != json.loads(raw[r["line"] - 1])["id"]:
        fails.append(f"line {r['line']}: id {r['id']} is another line's")
dup = len(nums) - len(set(nums))
missing = sorted(set(range(1, len(raw) + 1)) - set(nums))
if dup or missing:
    fails.append(f"{len(nums)} output lines for {len(raw)} input lines: {dup} duplicated, "
                 f"{len(missing)} missing {missing[:5]}")
print(("FAIL " if fails else "ok   ") + name + (": " + "; ".join(fails[:3]) if fails else
      f" ({len(nums)} lines, one per input line, each whole)"))
sys.exit(1 if fails else 0)
PY
}

sc_start_sim
SIM=$SIM_URL

# ---- a. online backfill: OUT and OUT.state on a 64 KiB disk (the output needs ~140 KiB) ----
# Few calls in flight: the run must stop sending once it cannot write, not answer the whole input.
INFLIGHT=4
simstat "$SIM" >"$WORK/a0.json"
if "$SCRIMP" backfill "$IN" -o "$DISK/out.jsonl" --mode online "${COMMON[@]}" "${OFF[@]}" \
     -X "gemini.base_url=$SIM" -X gemini.max_inflight=$INFLIGHT >/dev/null 2>"$WORK/a1.log"; then
  fail "a. backfill on a full disk reported success"
else
  ok "a. backfill on a full disk exits non-zero"
fi
simstat "$SIM" >"$WORK/a1.json"
if has "$WORK/a1.log" "scrimp backfill: $DISK/out.jsonl: No space left on device"; then
  ok "a. its error names the file and the cause: $(grep -F 'scrimp backfill:' "$WORK/a1.log" | cut -c1-150)"
else
  fail "a. no error naming $DISK/out.jsonl and ENOSPC: $(grep -F 'scrimp backfill:' "$WORK/a1.log" || tail -n2 "$WORK/a1.log")"
fi
WRITTEN=$(wc -l <"$DISK/out.jsonl")
if [ -s "$DISK/out.jsonl" ] && [ "$(tail -c1 "$DISK/out.jsonl" | od -An -c | tr -d ' ')" = '\n' ]; then
  ok "a. the $WRITTEN lines it wrote end whole (no torn line left at ENOSPC)"
else
  fail "a. the output ends in a torn line or is empty ($(wc -c <"$DISK/out.jsonl") bytes)"
fi
resize 2m
"$SCRIMP" backfill "$IN" -o "$DISK/out.jsonl" --mode online --resume "${COMMON[@]}" "${OFF[@]}" \
  -X "gemini.base_url=$SIM" >"$WORK/a2.summary" 2>"$WORK/a2.log" \
  && ok "a. --resume after room returned succeeds" || fail "a. --resume failed: $(tail -n1 "$WORK/a2.log")"
simstat "$SIM" >"$WORK/a2.json"
check_out "$IN" "$DISK/out.jsonl" "a. online output after ENOSPC and --resume" || FAILS=$((FAILS + 1))
python3 - "$WORK" "$WRITTEN" "$INFLIGHT" <<'PY' || FAILS=$((FAILS + 1))
import json, sys
w, written, inflight = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
calls = [sum(json.load(open(f"{w}/a{i}.json"))["generate_content"].values()) for i in range(3)]
first, second = calls[1] - calls[0], calls[2] - calls[1]
# the lines written hold at most `written` answers; what was in flight at the stop was cached
ok = first <= written + inflight and first + second <= 100 + inflight
print(("ok   " if ok else "FAIL ") + f"a. the full disk stopped the calls: {first} calls for "
      f"{written} lines written, {second} more on --resume, for 100 valid lines")
sys.exit(0 if ok else 1)
PY

# ---- a2. Batch Mode: the output and the batch journal fill the disk mid-run ----
rm -rf "${DISK:?}"/*
resize 64k
sc_start_bg simb "$SCRIMP" gemini-sim --batch-pending-ms 50 --batch-running-ms 100 \
  --record "$WORK/simb.record"
SIMB=$(sc_first_line simb)
BATCH=(--mode batch "${COMMON[@]}" "${OFF[@]}" -X "gemini.base_url=$SIMB"
       -X backfill.batch_max_requests=25 -X backfill.poll_initial_ms=50 -X backfill.poll_max_ms=100)
if "$SCRIMP" backfill "$IN" -o "$DISK/batch.jsonl" "${BATCH[@]}" -X "cache.path=$WORK/cache-b" \
     >/dev/null 2>"$WORK/b1.log"; then
  fail "a2. batch backfill on a full disk reported success"
else
  ok "a2. batch backfill on a full disk exits non-zero"
fi
if grep -qE "scrimp backfill: $DISK/batch\.jsonl(\.state)?: No space left on device" "$WORK/b1.log"; then
  ok "a2. its error names the file and the cause: $(grep -F 'scrimp backfill:' "$WORK/b1.log" | cut -c1-150)"
else
  fail "a2. no error naming the output or journal and ENOSPC: $(grep -F 'scrimp backfill:' "$WORK/b1.log" || tail -n2 "$WORK/b1.log")"
fi
BWRITTEN=$(wc -l <"$DISK/batch.jsonl")
resize 2m
"$SCRIMP" backfill "$IN" -o "$DISK/batch.jsonl" --resume "${BATCH[@]}" -X "cache.path=$WORK/cache-b" \
  >/dev/null 2>"$WORK/b2.log" \
  && ok "a2. --resume after room returned succeeds ($BWRITTEN lines were written before)" \
  || fail "a2. --resume failed: $(tail -n1 "$WORK/b2.log")"
check_out "$IN" "$DISK/batch.jsonl" "a2. batch output after ENOSPC and --resume" || FAILS=$((FAILS + 1))
simstat "$SIMB" >"$WORK/simb.json"
python3 - "$WORK/simb.json" "$DISK/batch.jsonl.state" "$WORK/simb.record" <<'PY' || FAILS=$((FAILS + 1))
import collections, json, sys
s = json.load(open(sys.argv[1]))
ev = []
for l in open(sys.argv[2], "rb"):
    ev.append(json.loads(l))  # every journal event whole, or this fails
created = {e["name"] for e in ev if e["ev"] == "created"}
batches = [json.loads(l) for l in open(sys.argv[3]) if l.startswith('{"batch"')]
paid = collections.Counter(k for b in batches for k in b["keys"])
twice = sorted(k for k, n in paid.items() if n > 1)
ok = s["batches_created"] == len(created) and not twice and s["duplicate_batch_keys"] == 0
print(("ok   " if ok else "FAIL ") + f"a2. the journal ({len(ev)} events, each whole) names the "
      f"{s['batches_created']} batches the simulator created; {len(twice)} keys paid twice")
sys.exit(0 if ok else 1)
PY
sc_stop "$PID_simb"

# ---- b. the cache store and its saved index (index.scx) ----
rm -rf "${DISK:?}"/*
resize 1m
CACHE=(-X "cache.path=$DISK/cache" -X cache.index=hnsw -X cache.ann_min=2 -X cache.checkpoint_s=0)
# The summary and shadow stores are made here, with room, for part c.
STORES=(-X "prune.path=$DISK/summaries" -X "router.shadow_path=$DISK/shadow")
head -n 60 "$IN" >"$WORK/b-first.jsonl"
sed -n 61,66p "$IN" >"$WORK/b-few.jsonl"
sed -n '67,$p' "$IN" >"$WORK/b-rest.jsonl"
bf() { # bf NAME IN [-X...]: an online backfill to $WORK/NAME.jsonl, its log in $WORK/NAME.log
  local name=$1 in=$2; shift 2
  rm -f "$WORK/$name.jsonl" "$WORK/$name.jsonl.state"
  "$SCRIMP" backfill "$in" -o "$WORK/$name.jsonl" --mode online "${COMMON[@]}" \
    -X "gemini.base_url=$SIM" "$@" >/dev/null 2>"$WORK/$name.log"
}
stats() { # stats NAME: `scrimp cache stats` of the store on the disk; its entries
  "$SCRIMP" cache stats "${CACHE[@]}" >"$WORK/$1.stats" 2>"$WORK/$1.log" || return 1
  python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["entries"])' "$WORK/$1.stats"
}
bf b1 "$WORK/b-first.jsonl" "${CACHE[@]}" "${STORES[@]}" || fail "b. the first run failed: $(tail -n1 "$WORK/b1.log")"
E1=$(stats b1s)
IX="$DISK/cache/index.scx"
if [ -s "$IX" ] && has "$WORK/b1.log" "event=cache_index_save trigger=close"; then
  ok "b. $E1 entries stored, the HNSW partitions saved to index.scx ($(wc -c <"$IX") bytes)"
else
  fail "b. the first run saved no index.scx"
fi
IXSUM=$(md5sum <"$IX")
# Room for the few new entries, not for a new index.scx: the save at close fails.
fill $(($(wc -c <"$IX") * 3 / 4))
bf b2 "$WORK/b-few.jsonl" "${CACHE[@]}" "${STORES[@]}" \
  && ok "b. with no room for the index, the run still succeeds" || fail "b. the run failed: $(tail -n1 "$WORK/b2.log")"
check_out "$WORK/b-few.jsonl" "$WORK/b2.jsonl" "b. every line answered" || FAILS=$((FAILS + 1))
if grep -F "event=cache_index_save result=failed" "$WORK/b2.log" | grep -cF "No space left on device" >/dev/null; then
  ok "b. the failed index save is logged with its cause: $(grep -F 'event=cache_index_save result=failed' "$WORK/b2.log" | head -n1 | cut -d' ' -f3- | cut -c1-160)"
else
  fail "b. no index save failure with ENOSPC in the log: $(grep -F cache_index_save "$WORK/b2.log" | head -n2)"
fi
if [ "$(md5sum <"$IX")" = "$IXSUM" ] && [ ! -e "$IX.tmp" ]; then
  ok "b. index.scx is the last good one, byte for byte, and no temporary file is left"
else
  fail "b. index.scx changed under a failed save, or $IX.tmp was left behind"
fi
# Now no room at all: every insert fails, every line is still answered.
fill 0
bf b3 "$WORK/b-rest.jsonl" "${CACHE[@]}" "${STORES[@]}" \
  && ok "b. on a full disk the run still succeeds (the cache is not the answer)" \
  || fail "b. the run on a full disk failed: $(tail -n1 "$WORK/b3.log")"
check_out "$WORK/b-rest.jsonl" "$WORK/b3.jsonl" "b. every line answered with the cache store full" || FAILS=$((FAILS + 1))
NS=$(grep -cF "event=cache_insert path=$DISK/cache" "$WORK/b3.log" || true)
if [ "$NS" -gt 0 ] && grep -F "event=cache_insert path=$DISK/cache" "$WORK/b3.log" | grep -cF 'No space left on device' >/dev/null; then
  ok "b. $NS failed cache writes logged with the store and the cause: $(grep -F event=cache_insert "$WORK/b3.log" | head -n1 | cut -d' ' -f3- | cut -c1-140)"
else
  fail "b. no failed cache write logged with its path and ENOSPC"
fi
room
if E3=$(stats b3s) && [ "$E3" -ge "$E1" ]; then
  ok "b. with room again the store opens: $E3 entries (>= the $E1 stored before the disk filled)"
else
  fail "b. the store does not open after the disk was full: $(tail -n2 "$WORK/b3s.log")"
fi
bf b4 "$WORK/b-rest.jsonl" "${CACHE[@]}" "${STORES[@]}" || fail "b. the rerun failed: $(tail -n1 "$WORK/b4.log")"
if has "$WORK/b4.log" "event=cache_index_load result=stale" && ! grep -qE "result=(corrupt|mismatch)" "$WORK/b4.log"; then
  ok "b. the next open finds the kept index.scx stale (the store moved on), not corrupt, and rebuilds"
else
  fail "b. the next open did not see the kept index.scx as stale: $(grep -F cache_index_load "$WORK/b4.log" | head -n1)"
fi
E4=$(stats b4s)
if [ "$E4" -gt "$E3" ] && ! has "$WORK/b4.log" "event=cache_insert" && has "$WORK/b4.log" "event=cache_index_save trigger=close"; then
  ok "b. a rerun writes to it: $E3 -> $E4 entries, no failed write, index.scx saved at close"
else
  fail "b. the rerun did not write the store ($E3 -> $E4 entries) or its index: $(grep -E 'cache_insert|cache_index_save' "$WORK/b4.log" | head -n2)"
fi
bf b5 "$WORK/b-few.jsonl" "${CACHE[@]}" "${STORES[@]}" || fail "b. the last run failed: $(tail -n1 "$WORK/b5.log")"
if has "$WORK/b5.log" "saved_index=loaded"; then
  ok "b. the next open loads that index.scx"
else
  fail "b. the saved index.scx was not loaded: $(grep -E 'cache_index_load|cache_rebuild' "$WORK/b5.log" | head -n2)"
fi

# ---- c. the summary store and the shadow store ----
python3 "$ROOT/tests/integration/make_conversations.py" "$WORK/conv"
LITE=gemini-2.5-flash-lite # the summaries' model
lite_prompt() { python3 -c 'import json,sys; print(json.load(sys.stdin)["billed_tokens"][sys.argv[1]]["prompt"])' "$LITE"; }
CONV=(-X "cache.path=$WORK/cache-c" -X "prune.path=$DISK/summaries" -X "router.shadow_path=$DISK/shadow"
      -X limits.max_message_bytes=1000000)
fill 0
L0=$(simstat "$SIM" | lite_prompt)
bf c1 "$WORK/conv-a.jsonl" "${CONV[@]}" \
  && ok "c. long conversations on a full disk: the run succeeds" || fail "c. the run failed: $(tail -n1 "$WORK/c1.log")"
L1=$(simstat "$SIM" | lite_prompt)
check_out "$WORK/conv-a.jsonl" "$WORK/c1.jsonl" "c. every conversation answered" || FAILS=$((FAILS + 1))
NSUM=$(grep -F "event=summary_store op=put path=$DISK/summaries" "$WORK/c1.log" | grep -cF 'No space left on device' || true)
if [ "$NSUM" -gt 0 ] && [ "$(grep -c '"status":"ok"' "$WORK/c1.jsonl")" = 8 ]; then
  ok "c. $NSUM summaries not stored, each logged with the store and the cause; all 8 answers ok"
else
  fail "c. no failed summary write logged with its path and ENOSPC ($NSUM), or answers not ok"
fi
for store in summaries2 shadow2; do
  key=prune.path; [ "$store" = shadow2 ] && key=router.shadow_path
  rm -f "$WORK/c-$store.jsonl"
  if "$SCRIMP" backfill "$WORK/conv-a.jsonl" -o "$WORK/c-$store.jsonl" --mode online "${CONV[@]}" \
       -X "gemini.base_url=$SIM" -X "$key=$DISK/$store" >/dev/null 2>"$WORK/c-$store.log"; then
    fail "c. a new $key on a full disk reported success"
  elif grep -F 'scrimp backfill:' "$WORK/c-$store.log" | grep -F "$DISK/$store" | grep -cF 'No space left on device' >/dev/null \
       && [ ! -e "$WORK/c-$store.jsonl" ]; then
    ok "c. a new $key on a full disk: refused before any work, $(grep -F 'scrimp backfill:' "$WORK/c-$store.log" | cut -c1-120)"
  else
    fail "c. a new $key on a full disk: no clear error, or an output was left: $(tail -n1 "$WORK/c-$store.log")"
  fi
done
room
bf c2 "$WORK/conv-a.jsonl" "${CONV[@]}" || fail "c. the run with room failed: $(tail -n1 "$WORK/c2.log")"
L2=$(simstat "$SIM" | lite_prompt)
bf c3 "$WORK/conv-b.jsonl" "${CONV[@]}" || fail "c. the extended conversations failed: $(tail -n1 "$WORK/c3.log")"
L3=$(simstat "$SIM" | lite_prompt)
if ! has "$WORK/c2.log" "event=summary_store" && [ $((L3 - L2)) -gt 0 ] && [ $((4 * (L3 - L2))) -lt $((L2 - L1)) ]; then
  ok "c. with room again the summary store takes the summaries (prompt $((L2 - L1)) tokens) and gives them back (the next ones extend them: $((L3 - L2)) tokens)"
else
  fail "c. the summary store after the full disk: summaries $((L1 - L0)) / $((L2 - L1)) / $((L3 - L2)) prompt tokens; $(grep -F event=summary_store "$WORK/c2.log" | head -n1)"
fi
for store in summaries2 shadow2; do
  key=prune.path; [ "$store" = shadow2 ] && key=router.shadow_path
  bf "c4-$store" "$WORK/conv-a.jsonl" "${CONV[@]}" -X "$key=$DISK/$store" \
    && ok "c. with room again a new $key opens" || fail "c. a new $key does not open: $(tail -n1 "$WORK/c4-$store.log")"
done

if [ "$FAILS" -gt 0 ]; then echo "FAIL $FAILS checks failed"; exit 1; fi
echo "ok   disk full: every failure reported with its cause, nothing acknowledged lost"
