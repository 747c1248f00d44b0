#!/usr/bin/env bash
# test_workload.sh - bench/workload.py: 2,000 requests that all keep the request contract
# (DESIGN §4.1), unique ids, the mix as asked, ground truth for every id that agrees with the
# requests (MT-Bench turns, long conversations and their planted facts included), the simulator's
# truth table, the same bytes for the same seed, and the subject selection (flag and router file).
# usage: tests/test_workload.sh [REPO]
set -euo pipefail
REPO=${1:-$(cd "$(dirname "$0")/.." && pwd)}
DATA=${SCRIMP_DATA_DIR:-$REPO/../shared/data}
if [ ! -d "$DATA/paraphrase" ] || [ ! -d "$DATA/routing/mmlu" ]; then
    echo "test_workload: no evaluation data at $DATA (set SCRIMP_DATA_DIR)" >&2
    exit 1
fi
export SCRIMP_DATA_DIR=$DATA
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
GEN="python3 $REPO/bench/workload.py"

$GEN --seed 11 --requests 2000 --out "$W/a.jsonl" --truth "$W/a.truth.jsonl" --router /nonexistent \
  --sim-truth "$W/a.simtruth.jsonl"
$GEN --seed 11 --requests 2000 --out "$W/b.jsonl" --truth "$W/b.truth.jsonl" --router /nonexistent
$GEN --seed 12 --requests 2000 --out "$W/c.jsonl" --router /nonexistent
cmp "$W/a.jsonl" "$W/b.jsonl"
cmp "$W/a.truth.jsonl" "$W/b.truth.jsonl"
[ -f "$W/c.truth.jsonl" ] # the default truth path
if cmp -s "$W/a.jsonl" "$W/c.jsonl"; then
    echo "FAIL: seeds 11 and 12 gave the same workload" >&2
    exit 1
fi

# subjects: from the flag, and from a router file's held-out key
printf '{"version": 1, "split": {"train_subjects": ["anatomy"], "heldout_subjects": ["astronomy", "virology"]}}\n' > "$W/router.json"
$GEN --seed 3 --requests 300 --out "$W/r.jsonl" --router "$W/router.json"
$GEN --seed 3 --requests 300 --out "$W/s.jsonl" --subjects college_physics,marketing --router "$W/router.json"

python3 - "$W" "$DATA" <<'EOF'
import collections, json, sys

w, data = sys.argv[1], sys.argv[2]
failures = []


def check(cond, msg):
    if not cond:
        failures.append(msg)


GEN_KEYS = {"temperature", "max_output_tokens", "maxOutputTokens", "response_mime_type",
            "responseMimeType"}
MIMES = {"text/plain", "application/json", "text/x.enum"}


def valid_request(line):
    """None when the line keeps the request contract, else why not."""
    if len(line.encode()) > 1 << 20:
        return "over 1 MiB"
    r = json.loads(line)
    if not isinstance(r, dict):
        return "not an object"
    for k in ("id", "tenant"):
        if not isinstance(r.get(k), str) or not r[k] or len(r[k].encode()) > 256:
            return "bad " + k
    for k in ("user", "agent", "stage", "conversation_id", "system"):
        if k in r and not isinstance(r[k], str):
            return "bad " + k
    m = r.get("messages")
    if not isinstance(m, list) or not 1 <= len(m) <= 1000:
        return "bad messages"
    for x in m:
        if not isinstance(x, dict) or x.get("role") not in ("user", "model"):
            return "bad role"
        if not isinstance(x.get("content"), str):
            return "bad content"
    if m[-1]["role"] != "user" or not m[-1]["content"].strip():
        return "last turn not from user"
    if "model" in r and (not isinstance(r["model"], str) or not r["model"]):
        return "bad model"
    g = r.get("generation", {})
    if not isinstance(g, dict) or set(g) - GEN_KEYS:
        return "bad generation keys"
    t = g.get("temperature")
    if t is not None and not (isinstance(t, (int, float)) and 0 <= t <= 2):
        return "bad temperature"
    mt = g.get("max_output_tokens")
    if mt is not None and not (isinstance(mt, int) and mt >= 1):
        return "bad max_output_tokens"
    if g.get("response_mime_type", "text/plain") not in MIMES:
        return "bad mime"
    if r.get("cache", "on") not in ("on", "exact", "off"):
        return "bad cache"
    if r.get("priority", "online") not in ("online", "batch"):
        return "bad priority"
    d = r.get("deadline_ms")
    if d is not None and not (isinstance(d, int) and d >= 1):
        return "bad deadline"
    return None


lines = open(w + "/a.jsonl", encoding="utf-8").read().split("\n")[:-1]
truth = [json.loads(x) for x in open(w + "/a.truth.jsonl", encoding="utf-8")]
check(len(lines) == 2000, "expected 2000 requests, got %d" % len(lines))
bad = [(i + 1, why) for i, x in enumerate(lines) if (why := valid_request(x))]
check(not bad, "invalid requests: %s" % bad[:5])
reqs = [json.loads(x) for x in lines]
ids = [r["id"] for r in reqs]
check(len(set(ids)) == len(ids), "ids are not unique")
check([t["id"] for t in truth] == ids, "truth is not one record per request, in order")
by_id = {r["id"]: r for r in reqs}
pos = {r["id"]: i for i, r in enumerate(reqs)}
T = {t["id"]: t for t in truth}

# the mix as asked (defaults): 25% repeats and pairs, 35% routing, 20% multi-turn, 5% MT-Bench,
# 5% long conversations, 10% other
kinds = collections.Counter(t["kind"] for t in truth)
frac = lambda *ks: sum(kinds[k] for k in ks) / len(truth)  # noqa: E731
for name, got, want in [("repeat bucket", frac("repeat", "cross-tenant", "pair-first", "reword"), 0.25),
                        ("routing", frac("routing"), 0.35),
                        ("conversation", frac("conversation"), 0.20),
                        ("mtbench", frac("mtbench"), 0.05),
                        ("longconv", frac("longconv"), 0.05),
                        ("other", frac("other"), 0.10)]:
    check(abs(got - want) <= 0.02, "%s: %.3f, asked %.2f" % (name, got, want))
check(kinds["repeat"] > 100 and kinds["cross-tenant"] > 5, "too few repeats: %s" % kinds)
check(kinds["reword"] == kinds["pair-first"] > 100, "pairs: %s" % kinds)
check(len({r["tenant"] for r in reqs}) >= 5, "fewer than 5 tenants")
check(all(len({r["user"] for r in reqs if r["tenant"] == tn}) >= 3 for tn in {r["tenant"] for r in reqs}),
      "a tenant with fewer than 3 users")
check(sum(r["model"] != "auto" for r in reqs) > 20, "too few pinned models")
check(sum(r.get("cache") == "off" for r in reqs) > 10, "too few cache: off")
check(sum(r.get("generation", {}).get("response_mime_type") == "application/json" for r in reqs) > 20,
      "too few JSON mime types")
systems = collections.Counter(r.get("system") for r in reqs)
check(sum(1 for s, n in systems.items() if s and len(s) > 1500 and n > 50) >= 4,
      "fewer than 4 long shared system prompts")

for t in truth:
    r = by_id[t["id"]]
    check(t["tenant"] == r["tenant"] and t["agent"] == r["agent"], "truth tenant/agent: " + t["id"])
    check(isinstance(t.get("meaning"), str), "no meaning: " + t["id"])
    k = t["kind"]
    if k == "routing" or "subject" in t:
        check(isinstance(t["weak_correct"], bool) and isinstance(t["strong_correct"], bool),
              "routing truth: " + t["id"])
        check(t["needs_strong"] == ((not t["weak_correct"]) and t["strong_correct"]), "needs_strong")
    if k == "repeat":
        o = by_id[t["repeat_of"]]
        check(pos[o["id"]] < pos[r["id"]] and o["tenant"] == r["tenant"], "repeat order/tenant")
        check(o["messages"] == r["messages"] and o["system"] == r["system"], "repeat text")
        check(T[o["id"]]["meaning"] == t["meaning"] and t["exact_seen_before"], "repeat meaning")
    if k == "cross-tenant":
        o = by_id[t["copy_of"]]
        check(pos[o["id"]] < pos[r["id"]] and o["tenant"] != r["tenant"], "cross-tenant")
        check(o["messages"] == r["messages"] and T[o["id"]]["meaning"] != t["meaning"],
              "cross-tenant meaning")
    if k == "reword":
        o = by_id[t["reword_of"]]
        check(pos[o["id"]] < pos[r["id"]] and o["tenant"] == r["tenant"], "reword order/tenant")
        check(isinstance(t["paraphrase"], bool), "reword paraphrase flag")
        check((T[o["id"]]["meaning"] == t["meaning"]) == t["paraphrase"], "reword meaning")
        check(t["dataset"] in ("msrp-test", "semeval2016"), "reword dataset")
        if t["dataset"] == "msrp-test":
            check(t["label"] == (1 if t["paraphrase"] else 0), "msrp label")
        else:
            check(t["label"] >= 4 if t["paraphrase"] else t["label"] <= 2, "semeval label")
rw = [t for t in truth if t["kind"] == "reword"]
check(any(t["paraphrase"] for t in rw) and any(not t["paraphrase"] for t in rw),
      "rewords are all of one kind")
check({t["dataset"] for t in rw} == {"msrp-test", "semeval2016"}, "rewords use one dataset only")

# conversations: the same id over several requests, each one the last one's history plus turns
convs = collections.defaultdict(list)
for r in reqs:
    if "conversation_id" in r:
        convs[r["conversation_id"]].append(r)
check(sum(len(v) >= 3 for v in convs.values()) > 30, "too few conversations of 3+ turns")
for cid, rs in convs.items():
    for prev, cur in zip(rs, rs[1:]):
        check(len(cur["messages"]) == len(prev["messages"]) + 2 and
              cur["messages"][:len(prev["messages"])] == prev["messages"] and
              cur["messages"][len(prev["messages"])]["role"] == "model",
              "conversation %s does not grow" % cid)
        check(T[cur["id"]]["turn"] == T[prev["id"]]["turn"] + 1, "conversation turn numbers")

# MT-Bench: both turns of a question, the second after the first in the same tenant, carrying the
# first turn and a recorded answer; judge scores 1..10 for both models
mt = collections.defaultdict(dict)
for t in truth:
    if t["kind"] == "mtbench":
        check(1 <= t["weak_score"] <= 10 and 1 <= t["strong_score"] <= 10, "mtbench scores")
        mt[t["question_id"]][t["turn"]] = t
check(len(mt) >= 40 and all(set(v) == {1, 2} for v in mt.values()), "mtbench: both turns per question")
for q, v in mt.items():
    a, b = by_id[v[1]["id"]], by_id[v[2]["id"]]
    check(pos[a["id"]] < pos[b["id"]] and a["tenant"] == b["tenant"], "mtbench turn order/tenant")
    check(len(a["messages"]) == 1 and len(b["messages"]) == 3 and b["messages"][0] == a["messages"][0]
          and b["messages"][1]["role"] == "model" and len(b["messages"][1]["content"]) > 20,
          "mtbench turn 2 history")

# long conversations: 5k-20k tokens of history behind a long system prompt; the fact planted once,
# in the history only; the last question asks for it
lc = [t for t in truth if t["kind"] == "longconv"]
check(len(lc) >= 80, "too few long conversations")
for t in lc:
    r = by_id[t["id"]]
    check(5000 <= t["history_tokens"] <= 20100, "longconv history size %d" % t["history_tokens"])
    check(len(r["system"]) >= 4500 * 4, "longconv system prompt under 4,500 tokens")
    hits = [i for i, m in enumerate(r["messages"]) if t["fact"] in m["content"]]
    check(hits == [t["fact_turn"]] and t["fact_name"] in r["messages"][t["fact_turn"]]["content"],
          "longconv planted fact")
    check("ticket" in r["messages"][-1]["content"] and r["messages"][-1]["role"] == "user",
          "longconv last question")

# the simulator's truth table: every MMLU and MT-Bench last user turn once, rights as recorded
st = [json.loads(x) for x in open(w + "/a.simtruth.jsonl", encoding="utf-8")]
texts = {x["text"]: x["right"] for x in st}
check(len(texts) == len(st), "simulator truth: a text twice")
for t in truth:
    r = by_id[t["id"]]
    last = r["messages"][-1]["content"]
    if t["kind"] == "routing":
        check(texts.get(last) == {"lite": t["weak_correct"], "cheap": t["weak_correct"],
                                  "strong": t["strong_correct"]}, "simulator truth (MMLU)")
    if t["kind"] == "mtbench":
        weak = t["weak_score"] >= t["strong_score"]
        check(texts.get(last) == {"lite": weak, "cheap": weak, "strong": True}, "simulator truth (MT-Bench)")

# no contaminated prompt
bad_prompts = set()
for x in open(data + "/routing/mmlu-contaminated_prompts.jsonl", encoding="utf-8"):
    if x.strip():
        d = json.loads(x)
        bad_prompts |= {d.get("eval_prompt", "").strip(), d.get("train_prompt", "").strip()}
check(not any(m["content"].strip() in bad_prompts for r in reqs for m in r["messages"]),
      "a contaminated MMLU prompt was used")

# subjects
subj = lambda f: {json.loads(x)["subject"] for x in open(f) if "subject" in x and json.loads(x).get("kind") == "routing"}  # noqa: E731,E501
check(subj(w + "/r.truth.jsonl") == {"astronomy", "virology"}, "router held-out subjects not used")
check(subj(w + "/s.truth.jsonl") == {"college_physics", "marketing"}, "--subjects not used")
check(len(subj(w + "/a.truth.jsonl")) > 40, "no router file: expected all subjects")

if failures:
    for f in failures[:20]:
        print("FAIL:", f)
    sys.exit(1)
print("test_workload: ok (%d requests; %s)" % (len(reqs), ", ".join("%s %d" % kv for kv in sorted(kinds.items()))))
EOF
