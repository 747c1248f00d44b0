# scripts/lib.sh - shared shell helpers for the demo, the integration tests and the benchmarks:
# start the embedded services on loopback, wait for them, stop everything that was started.
# Source it; set SCRIMP (path of the scrimp binary) and WORK (a scratch folder) first.

SC_PIDS=()

# sc_start_bg NAME CMD...: run CMD in the background, stdout to $WORK/NAME.out, stderr to
# $WORK/NAME.log; its pid is remembered for sc_stop_all.
sc_start_bg() {
  local name=$1; shift
  # emptied here, not only by the background job's own redirection: a service started again under
  # the same name must not have its previous run's first line read as its address
  : >"$WORK/$name.out"
  "$@" >"$WORK/$name.out" 2>"$WORK/$name.log" &
  local pid=$!
  SC_PIDS+=("$pid")
  eval "PID_${name//-/_}=$pid"
}

# sc_first_line NAME [TIMEOUT_S]: wait until NAME printed its first stdout line, echo it.
sc_first_line() {
  local name=$1 timeout=${2:-15} i=0
  while [ $i -lt $((timeout * 10)) ]; do
    if [ -s "$WORK/$name.out" ] && head -n1 "$WORK/$name.out" | grep -q .; then
      head -n1 "$WORK/$name.out"; return 0
    fi
    local pidvar="PID_${name//-/_}"
    if ! kill -0 "${!pidvar}" 2>/dev/null; then
      echo "$name exited before printing its address; its log:" >&2; cat "$WORK/$name.log" >&2
      return 1
    fi
    sleep 0.1; i=$((i + 1))
  done
  echo "$name printed nothing within ${timeout}s" >&2; return 1
}

# sc_start_broker [PARTITIONS]: sets BOOTSTRAP. SCRIMP_BROKER_BIN (default: the scrimp under
# test) runs the broker: a ThreadSanitizer run takes it from an uninstrumented build, since the
# mock cluster's own threads are librdkafka's, not scrimp's.
sc_start_broker() {
  sc_start_bg broker "${SCRIMP_BROKER_BIN:-$SCRIMP}" dev-broker --partitions "${1:-4}"
  BOOTSTRAP=$(sc_first_line broker) || return 1
}

# sc_start_sim [FAULTS]: sets SIM_URL.
sc_start_sim() {
  if [ -n "${1:-}" ]; then sc_start_bg sim "$SCRIMP" gemini-sim --faults "$1"
  else sc_start_bg sim "$SCRIMP" gemini-sim; fi
  SIM_URL=$(sc_first_line sim) || return 1
}

# sc_consume TOPIC FILE: everything on TOPIC so far into FILE (one message per line).
sc_consume() {
  kcat -C -b "$BOOTSTRAP" -t "$1" -o beginning -e -q -D '\n' >"$2.tmp" 2>/dev/null || true
  grep -v '^$' "$2.tmp" >"$2" || true
  rm -f "$2.tmp"
}

# sc_count_ids FILE: distinct "id" values in a JSONL file.
sc_count_ids() {
  python3 -c '
import json, sys
ids = set()
for line in open(sys.argv[1], encoding="utf-8", errors="replace"):
    try: ids.add(json.loads(line).get("id"))
    except Exception: pass
ids.discard(None)
print(len(ids))' "$1"
}

# sc_stop PID [TIMEOUT_S]: SIGTERM, wait, SIGKILL if it lingers; returns its exit status.
sc_stop() {
  local pid=$1 timeout=${2:-30} i=0
  kill -TERM "$pid" 2>/dev/null || return 0
  while kill -0 "$pid" 2>/dev/null && [ $i -lt $((timeout * 10)) ]; do sleep 0.1; i=$((i + 1)); done
  if kill -0 "$pid" 2>/dev/null; then kill -KILL "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; return 124; fi
  wait "$pid" 2>/dev/null
}

sc_stop_all() {
  local pid
  for pid in "${SC_PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  sleep 0.2
  for pid in "${SC_PIDS[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
