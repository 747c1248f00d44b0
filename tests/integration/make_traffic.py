#!/usr/bin/env python3
"""make_traffic.py - requests for the serve integration test: N valid (some that the upstream
rejects with a 400) and 20 malformed in different ways, shuffled with a fixed seed.

Writes OUT/requests.jsonl (one Kafka message per line), OUT/valid_ids.txt, OUT/rejected_ids.txt
(valid requests the upstream answers with 400) and OUT/malformed.txt (how many)."""
import json
import random
import sys

out, n_valid, n_rejected = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
rng = random.Random(20261126)

TOPICS = ["my router keeps rebooting", "how do I reset my password", "summarise this ticket",
          "write a SQL query for monthly revenue", "explain the refund policy",
          "translate 'good morning' to French", "is this email spam", "draft a reply to a customer"]


def valid(i, rejected):
    turns = []
    for t in range(rng.randint(0, 3)):
        turns.append({"role": "user", "content": f"earlier question {t} about {rng.choice(TOPICS)}"})
        turns.append({"role": "model", "content": f"earlier answer {t}"})
    turns.append({"role": "user", "content": f"{rng.choice(TOPICS)} (case {i})"})
    req = {"id": f"it-{i:05d}", "tenant": rng.choice(["acme", "globex", "initech"]),
           "agent": rng.choice(["support-bot", "sql-helper"]), "stage": "answer",
           "messages": turns, "model": rng.choice(["auto", "auto", "gemini-2.5-flash"])}
    if rng.random() < 0.3:
        req["system"] = "You are a concise support assistant."
    if rejected:  # the upstream's limit is 65536 output tokens: it answers 400 INVALID_ARGUMENT
        req["generation"] = {"max_output_tokens": 100000}
    return json.dumps(req).encode()


def base(i, **kw):
    r = {"id": f"bad-{i:02d}", "tenant": "acme", "messages": [{"role": "user", "content": "hi"}]}
    r.update(kw)
    return r


malformed = [
    b"not json at all",
    b'{"id":"bad-02","tenant":"acme","messages":[{"role":"user","content":"cut',
    b'{"id":"bad-03","tenant":"acme","messages":[{"role":"user","content":"caf\xe9 \xff"}]}',
    b"[1,2,3]",
    json.dumps({"tenant": "acme", "messages": [{"role": "user", "content": "no id"}]}).encode(),
    json.dumps(base(6, id="")).encode(),
    json.dumps(base(7, id=7)).encode(),
    json.dumps({"id": "bad-08", "messages": [{"role": "user", "content": "no tenant"}]}).encode(),
    json.dumps(base(9, messages="hello")).encode(),
    json.dumps(base(10, messages=[])).encode(),
    json.dumps(base(11, messages=[{"role": "user", "content": "q"},
                                  {"role": "model", "content": "a"}])).encode(),
    json.dumps(base(12, messages=[{"role": "assistant", "content": "q"}])).encode(),
    json.dumps(base(13, messages=[{"role": "user", "content": 42}])).encode(),
    json.dumps(base(14, generation={"temperature": 5})).encode(),
    json.dumps(base(15, generation={"max_output_tokens": 0})).encode(),
    json.dumps(base(16, generation={"topk": 3})).encode(),
    json.dumps(base(17, cache="maybe")).encode(),
    json.dumps(base(18, model="../../etc/passwd")).encode(),
    b'{"id":"bad-19","id":"bad-19b","tenant":"acme","messages":[{"role":"user","content":"x"}]}',
    json.dumps(base(20, messages=[{"role": "user", "content": "x" * 5000}])).encode(),
]
assert len(malformed) == 20 and all(b"\n" not in m for m in malformed)

lines, valid_ids, rejected_ids = [], [], []
for i in range(n_valid):
    rej = i < n_rejected
    lines.append(valid(i, rej))
    valid_ids.append(f"it-{i:05d}")
    if rej:
        rejected_ids.append(f"it-{i:05d}")
lines += malformed
rng.shuffle(lines)
with open(f"{out}/requests.jsonl", "wb") as f:
    f.write(b"\n".join(lines) + b"\n")
open(f"{out}/valid_ids.txt", "w").write("\n".join(valid_ids) + "\n")
open(f"{out}/rejected_ids.txt", "w").write("\n".join(rejected_ids) + "\n")
open(f"{out}/malformed.txt", "w").write(f"{len(malformed)}\n")
