#!/usr/bin/env python3
"""make_conversations.py - long conversations for the summary-store tests: 8 conversations of
70 turns (OUT-a.jsonl) and the same 8 two turns longer (OUT-b.jsonl), each ending with a question
about its topic. The b requests extend the a ones, so a summary made for a is extended for b.
usage: make_conversations.py OUT"""
import json
import sys

out = sys.argv[1]
topics = ["the delayed shipment to the Lyon warehouse", "the invoice dispute for March",
          "the router firmware upgrade", "the onboarding of two new agents"]
for part, extra in (("a", 0), ("b", 2)):
    with open(f"{out}-{part}.jsonl", "w") as f:
        for c in range(8):
            turns = []
            for t in range(70 + extra):
                role = "user" if t % 2 == 0 else "model"
                turns.append({"role": role, "content": f"Turn {t} about {topics[(c + t) % 4]}: "
                              + "we reviewed the details, the numbers and the next steps again. " * 6})
            turns.append({"role": "user", "content": f"So what did we decide about {topics[c % 4]}?"})
            f.write(json.dumps({"id": f"cv-{c}-{part}", "tenant": "acme", "conversation_id": f"conv-{c}",
                                "agent": "support-bot", "model": "gemini-2.5-flash", "cache": "off",
                                "messages": turns}) + "\n")
