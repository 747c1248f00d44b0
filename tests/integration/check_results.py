#!/usr/bin/env python3
"""check_results.py - what the serve integration test asserts about results and dead letters.

usage: check_results.py DIR  (DIR holds results.jsonl, dlq.jsonl, valid_ids.txt, rejected_ids.txt,
malformed.txt, sim_stats.json). Prints one line per check and exits 1 on any failure."""
import json
import sys

d = sys.argv[1]
failures = []


def check(ok, what):
    print(("ok   " if ok else "FAIL ") + what)
    if not ok:
        failures.append(what)


valid = set(open(f"{d}/valid_ids.txt").read().split())
rejected = set(open(f"{d}/rejected_ids.txt").read().split())
n_malformed = int(open(f"{d}/malformed.txt").read())
results = [json.loads(l) for l in open(f"{d}/results.jsonl", encoding="utf-8") if l.strip()]
dlq = [json.loads(l) for l in open(f"{d}/dlq.jsonl", encoding="utf-8") if l.strip()]

by_id = {}
for r in results:
    by_id.setdefault(r["id"], []).append(r)
seen = set(by_id)
check(seen == valid, f"results cover exactly the {len(valid)} valid ids "
      f"(missing {len(valid - seen)}, unexpected {len(seen - valid)}; "
      f"{len(results)} result messages, {len(results) - len(seen)} duplicates)")

bad_ok = [i for i in valid - rejected if any(r["status"] != "ok" for r in by_id.get(i, []))]
check(not bad_ok, f"every request the upstream accepts ends ok despite injected 429/500/503 "
      f"(not ok: {bad_ok[:5]})")
wrong_rej = [i for i in rejected
             if any(r["status"] != "error" or r["error"]["code"] != "UPSTREAM_REJECTED"
                    or r["attempts"] != 1 for r in by_id.get(i, []))]
check(not wrong_rej, f"{len(rejected)} requests answered 400 end as error UPSTREAM_REJECTED after "
      f"exactly 1 attempt (wrong: {wrong_rej[:5]})")
retried = sum(1 for rs in by_id.values() for r in rs if r.get("attempts", 0) > 1)
check(retried > 0, f"some requests needed retries ({retried} results with attempts > 1)")

ledger_ok = all(r["cost_usd"] > 0 and r["usage"]["prompt_tokens"] > 0 for rs in by_id.values()
                for r in rs if r["status"] == "ok" and r["source"] == "llm")
shared_ok = all(r["cost_usd"] == 0 and r["savings"]["cache_usd"] == r["baseline_cost_usd"]
                for rs in by_id.values() for r in rs if r["status"] == "ok" and r["source"] != "llm")
adds_up = all(abs(sum(r["savings"].values()) - (r["baseline_cost_usd"] - r["cost_usd"])) < 1e-9
              for rs in by_id.values() for r in rs)
sources = {}
for rs in by_id.values():
    for r in rs:
        sources[r["source"]] = sources.get(r["source"], 0) + 1
check(ledger_ok, "every ok answer from the model carries usage and a positive cost")
check(shared_ok, f"answers from the cache or a coalesced call cost nothing and save their baseline "
      f"(sources: {sources})")
check(adds_up, "every result's savings add up to baseline - cost")

coords = {(x["source"]["partition"], x["source"]["offset"]) for x in dlq}
check(len(coords) == n_malformed, f"{n_malformed} distinct dead letters (got {len(coords)} distinct, "
      f"{len(dlq)} messages)")
reasons = all(x["error"]["code"] and x["error"]["message"] and
              ("original" in x or "original_base64" in x) for x in dlq)
check(reasons, "every dead letter has a code, a message and the original bytes")
codes = sorted({x["error"]["code"] for x in dlq})
check(len(codes) >= 3, f"dead letters carry distinct codes: {codes}")

stats = json.load(open(f"{d}/sim_stats.json"))
print("simulator stats:", json.dumps(stats, sort_keys=True))
faults = stats.get("faults", stats.get("faults_injected", {}))
check(faults.get("429", 0) > 0 and faults.get("503", 0) > 0,
      f"the simulator injected 429s and 503s ({faults})")

if failures:
    print(f"{len(failures)} checks failed")
    sys.exit(1)
print("all checks passed")
