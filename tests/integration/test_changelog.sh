#!/usr/bin/env bash
# test_changelog.sh - two `scrimp serve` replicas in one group share their cache through the
# changelog topic (cache.changelog=true). Replica A answers 40 questions (20 in each of two
# tenants); replica B starts later with an empty local cache and restores A's entries from the
# topic before it serves; 20 more questions, spread over every partition, are answered by both
# while both run (B applies what A writes as it goes); A is killed with SIGKILL; all 60 questions
# asked again are answered by B from its cache, none reaches the upstream, and each tenant gets
# its own answers. A purge on one replica reaches the others, and a replica started later.
# The same run without the changelog pays every repeat again (the control).
# Conversation summaries ride on the same topic: replica A summarises 2 long conversations and is
# killed; replica B, started after, restores the summaries and answers the same 2 conversations
# without one summary call (the control, without the changelog, summarises both again). Two, not
# more: under ThreadSanitizer pruning embeds about 6 turns a second.
set -euo pipefail
SCRIMP=${1:?usage: test_changelog.sh path/to/scrimp}
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
WORK=$(mktemp -d /tmp/scrimp-it-changelog.XXXXXX)
. "$ROOT/scripts/lib.sh"
trap 'sc_stop_all; echo "work dir: $WORK"' EXIT
FAILS=0
pass() { echo "ok   $1"; }
fail() { echo "FAIL $1"; FAILS=$((FAILS + 1)); }
export GEMINI_API_KEY=changelog-key

python3 - "$WORK" <<'PY'
import json, sys
work = sys.argv[1]
qs = [f"what does error code E{100 + i} on the gateway mean" for i in range(20)]
for phase in ("c", "d"):  # keyed by id (below): spread over every partition, so both replicas answer
    with open(f"{work}/{phase}.jsonl", "w") as f:
        for i in range(20):
            f.write(json.dumps({"id": f"{phase}-acme-{i}", "tenant": "acme", "agent": "support",
                                "model": "gemini-2.5-flash", "messages": [
                                    {"role": "user", "content": f"how do I rotate key K{i} on the vault"}]}) + "\n")
for phase in ("a", "b"):
    with open(f"{work}/{phase}.jsonl", "w") as f:
        for t in ("acme", "globex"):
            for i, q in enumerate(qs):
                f.write(json.dumps({"id": f"{phase}-{t}-{i}", "tenant": t, "agent": "support",
                                    "model": "gemini-2.5-flash",
                                    "messages": [{"role": "user", "content": q}]}) + "\n")
PY

# produce FILE KEY [TENANT PHASE]: FILE's requests onto scrimp.requests, each keyed by its KEY
# field (tenant or id); with TENANT and PHASE, only TENANT's, their ids' phase letter made PHASE
produce() {
  kcat -P -b "$BOOTSTRAP" -t scrimp.requests -K: -l <(python3 -c '
import json, sys
key, only, phase = sys.argv[2], sys.argv[3], sys.argv[4]
for l in open(sys.argv[1]):
    r = json.loads(l)
    if only and r["tenant"] != only:
        continue
    if phase:
        r["id"] = phase + r["id"][1:]
    print(r[key] + ":" + json.dumps(r))' "$1" "$2" "${3:-}" "${4:-}")
}
results() { sc_consume scrimp.results "$WORK/results.jsonl"; grep -c "\"id\":\"$1-" "$WORK/results.jsonl" || true; }
wait_results() { # wait_results PREFIX N TIMEOUT_S
  local start=$SECONDS
  while [ "$(results "$1")" -lt "$2" ]; do
    [ $((SECONDS - start)) -lt "$3" ] || return 1
    sleep 0.3
  done
}
calls() { curl -sf "$SIM_URL/sim/stats" | python3 -c 'import json,sys; print(sum(json.load(sys.stdin)["generate_content"].values()))'; }

# start_cluster CHANGELOG(true|false): a fresh broker and simulator; ARGS: serve's arguments
start_cluster() {
  sc_start_broker 4
  sc_start_sim
  ARGS=(serve -X "kafka.bootstrap.servers=$BOOTSTRAP" -X "gemini.base_url=$SIM_URL"
    -X metrics.listen=127.0.0.1:0 -X kafka.session.timeout.ms=6000
    -X kafka.heartbeat.interval.ms=500 -X kafka.auto.commit.interval.ms=200
    -X router.shadow_rate=0 -X "cache.changelog=$1")
}

run() { # run CHANGELOG(true|false): the whole scenario; prints the repeats' upstream calls
  start_cluster "$1"
  rm -rf "$WORK"/ca "$WORK"/cb "$WORK"/sa* "$WORK"/sb*
  sc_start_bg "a$1" "$SCRIMP" "${ARGS[@]}" -X "cache.path=$WORK/ca" -X "prune.path=$WORK/sa" -X "router.shadow_path=$WORK/sa.shadow"
  produce "$WORK/a.jsonl" tenant
  wait_results a 40 60 || { fail "replica A did not answer the 40 questions within 60 s"; return 1; }
  A_CALLS=$(calls)
  sc_start_bg "b$1" "$SCRIMP" "${ARGS[@]}" -X "cache.path=$WORK/cb" -X "prune.path=$WORK/sb" -X "router.shadow_path=$WORK/sb.shadow"
  local start=$SECONDS
  until grep -q "event=kafka.assign" "$WORK/b$1.log"; do
    [ $((SECONDS - start)) -lt 60 ] || { fail "replica B got no partitions within 60 s"; return 1; }
    sleep 0.3
  done
  # while both run: questions on every partition (keyed by id), answered by A and by B
  produce "$WORK/c.jsonl" id
  wait_results c 20 60 || { fail "the two replicas did not answer 20 questions within 60 s"; return 1; }
  sleep 1.5 # B applies what A wrote (it polls every 100 ms); A commits what it answered (200 ms)
  A_CALLS=$(calls)
  local pa
  pa=$(eval echo "\$PID_a$1")
  kill -KILL "$pa"; wait "$pa" 2>/dev/null || true
  # B takes A's partitions once A's session times out
  start=$SECONDS
  until grep -q "event=kafka.assign partitions=4" "$WORK/b$1.log"; do
    [ $((SECONDS - start)) -lt 60 ] || { fail "replica B did not take all 4 partitions within 60 s"; return 1; }
    sleep 0.3
  done
  produce "$WORK/b.jsonl" tenant
  produce "$WORK/d.jsonl" id
  wait_results b 40 90 || { fail "replica B did not answer the 40 repeats within 90 s"; return 1; }
  wait_results d 20 90 || { fail "replica B did not answer the 20 later repeats within 90 s"; return 1; }
  B_CALLS=$(( $(calls) - A_CALLS ))
  if [ "$1" = true ]; then
    local port
    port=$(grep -m1 -o 'event=metrics.start host=[0-9.]* port=[0-9]*' "$WORK/btrue.log" | grep -o '[0-9]*$')
    sleep 0.5 # the applier sets its gauges when it is idle
    curl -sf "http://127.0.0.1:$port/metrics" >"$WORK/b.metrics" || true
    if grep -q '^scrimp_changelog_restore_records 40$' "$WORK/b.metrics" &&
       grep -q '^scrimp_cache_entries 60$' "$WORK/b.metrics" &&
       grep -q '^scrimp_changelog_restore_seconds ' "$WORK/b.metrics" &&
       grep -q '^scrimp_changelog_lag_records 0$' "$WORK/b.metrics" &&
       grep -q '^scrimp_changelog_read_bytes [1-9]' "$WORK/b.metrics"; then
      pass "replica B's /metrics: $(grep -E '^scrimp_(changelog_[a-z_]+|cache_entries) ' "$WORK/b.metrics" | tr '\n' ' ')"
    else
      fail "replica B's /metrics lack the changelog gauges: $(grep -E '^scrimp_(changelog|cache_entries)' "$WORK/b.metrics" | tr '\n' ' ')"
    fi
    purge_check
  fi
  sc_stop "$(eval echo "\$PID_b$1")" 30 || true
  sc_stop "$PID_sim"; sc_stop "$PID_broker"
  cp "$WORK/results.jsonl" "$WORK/results.$1.jsonl"
}

# A purge on any replica reaches every one: `scrimp cache purge --tenant globex` (run against a
# store of its own) sends a purge record; B removes globex's entries, so globex's questions are
# paid again while acme's are still hits; a replica C started after the purge restores everything
# but globex's entries.
purge_check() {
  local out
  out=$("$SCRIMP" cache purge --tenant globex -X cache.changelog=true -X "kafka.bootstrap.servers=$BOOTSTRAP" \
    -X "cache.path=$WORK/cpurge" 2>&1) || { fail "scrimp cache purge with the changelog failed: $out"; return 0; }
  local start=$SECONDS
  until grep -q 'event=changelog.purge tenant="globex"' "$WORK/btrue.log"; do
    [ $((SECONDS - start)) -lt 30 ] || { fail "replica B did not apply the purge within 30 s"; return 0; }
    sleep 0.2
  done
  pass "replica B applied the purge: $(grep -m1 'event=changelog.purge' "$WORK/btrue.log" | grep -o 'removed=[0-9]*')"
  local c0 c1 c2
  c0=$(calls)
  produce "$WORK/a.jsonl" tenant globex e
  wait_results e 20 60 || { fail "globex's questions after the purge went unanswered"; return 0; }
  c1=$(calls)
  produce "$WORK/a.jsonl" tenant acme f
  wait_results f 20 60 || { fail "acme's questions after the purge went unanswered"; return 0; }
  c2=$(calls)
  [ $((c1 - c0)) -eq 20 ] && [ $((c2 - c1)) -eq 0 ] &&
    pass "after the purge globex's 20 questions were paid again ($((c1 - c0)) calls), acme's were still hits ($((c2 - c1)) calls)" ||
    fail "after the purge: globex's questions made $((c1 - c0)) calls (want 20), acme's $((c2 - c1)) (want 0)"
  sc_start_bg ctrue "$SCRIMP" serve -X "kafka.bootstrap.servers=$BOOTSTRAP" -X "gemini.base_url=$SIM_URL" \
    -X metrics.listen=127.0.0.1:0 -X router.shadow_rate=0 -X cache.changelog=true \
    -X "cache.path=$WORK/cc" -X "prune.path=$WORK/sc" -X "router.shadow_path=$WORK/sc.shadow"
  start=$SECONDS
  until grep -q "event=changelog.start" "$WORK/ctrue.log"; do
    [ $((SECONDS - start)) -lt 30 ] || { fail "replica C did not restore within 30 s"; return 0; }
    sleep 0.2
  done
  sc_stop "$PID_ctrue" 30 || true
  local g all
  g=$("$SCRIMP" cache stats --tenant globex -X "cache.path=$WORK/cc" 2>/dev/null | python3 -c 'import json,sys; print(json.load(sys.stdin)["entries"])')
  all=$("$SCRIMP" cache stats -X "cache.path=$WORK/cc" 2>/dev/null | python3 -c 'import json,sys; print(json.load(sys.stdin)["entries"])')
  # globex's 20 answered again after the purge are newer than it: those are kept
  [ "$g" -eq 20 ] && [ "$all" -eq 60 ] &&
    pass "replica C, started after the purge, restored 60 entries: none of globex's purged ones ($g of globex's, all answered after the purge)" ||
    fail "replica C restored $all entries, $g of globex (want 60 and 20: the purged ones skipped)"
}

# summaries_run CHANGELOG(true|false): A summarises, is killed, B answers the same conversations;
# sets SUM_A and SUM_B, the summary calls (the lite tier's) each made
summaries_run() {
  start_cluster "$1"
  rm -rf "$WORK"/cs* "$WORK"/ss*
  lite() { curl -sf "$SIM_URL/sim/stats" | python3 -c 'import json,sys; print(json.load(sys.stdin)["generate_content"].get("gemini-2.5-flash-lite", 0))'; }
  sc_start_bg "sa$1" "$SCRIMP" "${ARGS[@]}" -X "cache.path=$WORK/csa" -X "prune.path=$WORK/ssa" -X "router.shadow_path=$WORK/ssa.shadow"
  produce "$WORK/conv-a.jsonl" id
  wait_results cv 2 180 || { fail "replica A did not answer the 2 long conversations within 180 s"; return 1; }
  SUM_A=$(lite)
  sleep 1 # the summaries were produced before the answers; let them reach the broker
  local pa
  pa=$(eval echo "\$PID_sa$1")
  kill -KILL "$pa"; wait "$pa" 2>/dev/null || true
  sc_start_bg "sb$1" "$SCRIMP" "${ARGS[@]}" -X "cache.path=$WORK/csb" -X "prune.path=$WORK/ssb" -X "router.shadow_path=$WORK/ssb.shadow"
  sed 's/"id": "cv-/"id": "cw-/' "$WORK/conv-a.jsonl" >"$WORK/conv-w.jsonl"
  produce "$WORK/conv-w.jsonl" id
  wait_results cw 2 180 || { fail "replica B did not answer the 2 conversations within 180 s"; return 1; }
  SUM_B=$(( $(lite) - SUM_A ))
  sc_stop "$(eval echo "\$PID_sb$1")" 30 || true
  sc_stop "$PID_sim"; sc_stop "$PID_broker"
  rm -f "$WORK/results.jsonl"
}
python3 "$ROOT/tests/integration/make_conversations.py" "$WORK/conv"
head -n 2 "$WORK/conv-a.jsonl" >"$WORK/conv-2.jsonl" && mv "$WORK/conv-2.jsonl" "$WORK/conv-a.jsonl"
summaries_run true
grep -m1 "event=changelog.restore" "$WORK/sbtrue.log" | cut -c1-200 || true
[ "$SUM_A" -eq 2 ] && [ "$SUM_B" -eq 0 ] &&
  pass "summaries: replica A made $SUM_A summary calls for 2 long conversations; replica B, after A's SIGKILL, answered them again with $SUM_B (restored from the changelog)" ||
  fail "summaries with the changelog: A made $SUM_A summary calls (want 2), B $SUM_B (want 0)"
summaries_run false
[ "$SUM_B" -eq 2 ] && pass "summaries, control without the changelog: replica B summarised both conversations again ($SUM_B calls)" ||
  fail "summaries control: replica B made $SUM_B summary calls (want 2): the test does not measure the changelog"

run true
echo "with the changelog: the replicas paid $A_CALLS calls for 60 questions; the repeats on replica B paid $B_CALLS"
grep -m1 "event=changelog.restore" "$WORK/btrue.log" | cut -c1-200 || true
[ "$A_CALLS" -eq 60 ] && pass "60 questions were 60 calls (the two tenants' same 20 questions are 40): no answer crossed tenants" ||
  fail "the replicas made $A_CALLS calls for 2 tenants x 20 questions and 20 more (want 60)"
grep -m1 "event=changelog.stop" "$WORK/btrue.log" | cut -c1-200 || true
if grep -q "event=changelog.restore.*applied=40 " "$WORK/btrue.log"; then
  pass "replica B restored A's 40 entries before serving"
else
  fail "replica B's restore: $(grep -m1 'event=changelog.restore' "$WORK/btrue.log" | cut -c1-200)"
fi
python3 - "$WORK/results.true.jsonl" <<'PY' || FAILS=$((FAILS + 1))
import json, sys
rs = [json.loads(l) for l in open(sys.argv[1])]
a = {r["id"]: r for r in rs if r["id"][:2] in ("a-", "c-")}  # first asked; b- repeats a-, d- c-
b = list({r["id"]: r for r in rs if r["id"][:2] in ("b-", "d-")}.values())
fails = []
hits = [r for r in b if r.get("source") == "cache-exact"]
if len(b) != 60 or len(hits) != 60:
    fails.append(f"{len(hits)} of {len(b)} repeats answered from the cache (want 60 of 60): "
                 f"{[r['id'] for r in b if r not in hits][:5]}")
for r in b:
    first = a.get({"b": "a", "d": "c"}[r["id"][0]] + r["id"][1:])
    if r["tenant"] != r["id"].split("-")[1] or not first or r["text"] != first["text"]:
        fails.append(f"{r['id']}: not the answer its own tenant got"); break
print(("FAIL " if fails else "ok   ") + ("; ".join(fails) if fails else
      "the 60 repeats after the SIGKILL were cache hits on replica B, each its tenant's answer"))
sys.exit(1 if fails else 0)
PY
[ "$B_CALLS" -eq 0 ] && pass "no repeat reached the upstream" || fail "the repeats made $B_CALLS upstream calls"

run false
echo "without the changelog (control): the repeats on replica B paid $B_CALLS calls"
[ "$B_CALLS" -ge 40 ] && pass "the control pays again every repeat that replica B had not answered itself, so the changelog is what saved them" ||
  fail "the control made only $B_CALLS calls for the 60 repeats: the test does not measure the changelog"

# The kill must not re-deliver what A answered (B would then answer it itself, and its repeats
# would be hits without the changelog): A committed first, so each question has one result.
for mode in true false; do
  n=$(grep -c '"id":"[ac]-' "$WORK/results.$mode.jsonl" || true)
  [ "$n" -eq 60 ] || fail "cache.changelog=$mode: $n results for the 60 first questions (the kill re-delivered some: the run does not test what it should)"
done
[ "$FAILS" -eq 0 ] || { echo "$FAILS failure(s)"; exit 1; }
echo "all ok"
