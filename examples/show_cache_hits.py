#!/usr/bin/env python3
"""List the cache hits of a run and check that none crossed tenants (scripts/demo prints this).

usage: show_cache_hits.py REQUESTS.jsonl RESULTS.jsonl

Lists the reworded questions that were answered without a call of their own: semantic cache hits,
and coalesced requests (near-identical misses of one micro-batch sharing one call) whose wording
differs from the request that was sent. For each hit (source cache-semantic, cache-exact or
coalesced) the producer is the request of the
same tenant answered by the LLM with the same answer text (the simulator's answer is a function of
the model and the prompt, so equal text means the same cached answer). A hit with no producer in
its own tenant is counted as an answer from another tenant. Exit status 1 when there is one."""
import json
import sys


def last_user_turn(req):
    for m in reversed(req.get("messages") or []):
        if m.get("role") == "user":
            c = m.get("content")
            return c if isinstance(c, str) else json.dumps(c)
    return ""


def main():
    if len(sys.argv) != 3:
        print(__doc__.strip().splitlines()[2], file=sys.stderr)
        return 2
    reqs = {}
    with open(sys.argv[1], encoding="utf-8") as f:
        for line in f:
            if line.strip():
                r = json.loads(line)
                reqs[r["id"]] = r
    results = []
    with open(sys.argv[2], encoding="utf-8") as f:
        for line in f:
            if line.strip():
                results.append(json.loads(line))
    producers = {}  # (tenant, text) -> request id answered by the LLM
    for r in results:
        if r.get("status") == "ok" and r.get("source") == "llm":
            producers.setdefault((r["tenant"], r.get("text")), r["id"])
    hits = [r for r in results
            if r.get("status") == "ok" and r.get("source") in ("cache-semantic", "cache-exact", "coalesced")]
    counts = {}
    foreign = reworded = 0
    print("Reworded questions answered without their own call (asked, matched, how):")
    for r in hits:
        counts[r["source"]] = counts.get(r["source"], 0) + 1
        prod = producers.get((r["tenant"], r.get("text")))
        if prod is None:
            foreign += 1
            print(f"  ANSWER FROM ANOTHER TENANT: {r['id']} ({r['tenant']})")
            continue
        asked = last_user_turn(reqs.get(r["id"], {}))
        matched = last_user_turn(reqs.get(prod, {}))
        # semantic hits, and coalesced requests whose wording differs from the one that was sent
        if r["source"] == "cache-semantic" or (r["source"] == "coalesced" and asked != matched):
            reworded += 1
            how = "cache" if r["source"] == "cache-semantic" else "shared call"
            sim = r.get("similarity")
            cos = f", cosine {sim:.3f}" if isinstance(sim, (int, float)) else ""
            print(f"  [{r['tenant']}] {asked!r}\n      matched {matched!r} ({how}{cos})")
    if not reworded:
        print("  (none)")
    summary = ", ".join(f"{k} {v}" for k, v in sorted(counts.items())) or "none"
    print(f"Cache hits: {summary}; answers from another tenant: {foreign}")
    return 1 if foreign else 0


if __name__ == "__main__":
    sys.exit(main())
