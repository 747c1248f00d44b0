#!/usr/bin/env python3
"""Assemble examples/requests.jsonl from the hand-written content in examples/content_*.py.

The output is deterministic (fixed seed). It mixes five tenants' agent traffic so that every
optimisation in scrimp has something to act on: exact repeats (exact cache), paraphrases
(semantic cache), the same question in two tenants (must never share an answer), long shared
system prompts (prompt-prefix cache), conversations whose history grows (pruning), short easy
tasks and long hard ones (routing), pinned models, cache off, batch priority.

usage: python3 examples/make_requests.py [-o examples/requests.jsonl]
"""
import argparse
import copy
import json
import os
import random
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import content_conversations as conv  # noqa: E402
import content_prompts as P  # noqa: E402
import content_single as S  # noqa: E402

SEED = 20250601
N_EXACT_REPEATS = 30

USERS = {
    "acme": ["u-1001", "u-1002", "u-1017", "u-1033", "u-1040", "u-1088", "u-1121"],
    "globex": ["g-ana", "g-bjorn", "g-chidi", "g-dmitri", "g-emma"],
    "initech": ["e-10342", "e-10977", "e-11020", "e-11456", "e-12001", "e-12388"],
    "umbrella": ["um-rk", "um-sl", "um-tp", "um-wz"],
    "hooli": ["h-ops-1", "h-ops-2", "h-sales-4", "h-eng-7", "h-eng-9"],
}


def gen(temperature=None, max_tokens=None, mime=None, camel=False):
    g = {}
    if temperature is not None:
        g["temperature"] = temperature
    if max_tokens is not None:
        g["maxOutputTokens" if camel else "max_output_tokens"] = max_tokens
    if mime is not None:
        g["responseMimeType" if camel else "response_mime_type"] = mime
    return g


def req(tenant, agent, stage, system, messages, user, **extra):
    r = {"tenant": tenant, "user": user, "agent": agent, "stage": stage}
    if "conversation_id" in extra:
        r["conversation_id"] = extra.pop("conversation_id")
    if system is not None:
        r["system"] = system
    r["messages"] = messages
    for k in ("model", "generation", "cache", "deadline_ms", "priority"):
        v = extra.pop(k, None)
        if v is not None and v != {}:
            r[k] = v
    assert not extra, extra
    return r


def user_msg(text):
    return [{"role": "user", "content": text}]


def flatten(groups):
    """Paraphrase groups -> list of (text, is_paraphrase)."""
    out = []
    for g in groups:
        for i, t in enumerate(g):
            out.append((t, i > 0))
    return out


# ---- streams: each is a list of requests in the order they must appear ----

def conversation_stream(rng, tenant, agent, stage, system, exchanges, cid, user, at, **kw):
    """One request per user turn index in `at`, carrying the history before it."""
    out = []
    for k in at:
        msgs = []
        for u, m in (e for e in exchanges[:k]):
            msgs.append({"role": "user", "content": u})
            msgs.append({"role": "model", "content": m})
        msgs.append({"role": "user", "content": exchanges[k][0]})
        out.append(req(tenant, agent, stage, system, msgs, user, conversation_id=cid,
                       **copy.deepcopy(kw)))
    return out


def build_streams(rng):
    pick = lambda t: rng.choice(USERS[t])  # noqa: E731
    streams = []

    # acme: triage (JSON out), answers with paraphrases, sales, extraction
    s = []
    tickets = list(S.ACME_TICKETS) + ["Subject: double charge\n\nI was charged twice this month for the same subscription."]
    for t in tickets:
        s.append(req("acme", "support-bot", "triage", P.ACME_TRIAGE, user_msg(t), pick("acme"),
                     model="auto", generation=gen(0, 128, "application/json"),
                     deadline_ms=10000))
    streams.append(s)
    s = []
    for text, _ in flatten(S.ACME_SUPPORT_QUESTIONS):
        s.append(req("acme", "support-bot", "answer", P.ACME_SUPPORT_ANSWER, user_msg(text),
                     pick("acme"), generation=gen(0.3, 512), deadline_ms=30000))
    streams.append(s)
    s = []
    for i, brief in enumerate(S.ACME_SALES_BRIEFS):
        s.append(req("acme", "sales-copilot", "draft", P.ACME_SALES, user_msg(brief),
                     pick("acme"), generation=gen(0.8, 512),
                     cache="off" if i % 2 == 0 else None, deadline_ms=45000))
    streams.append(s)
    s = []
    for i, text in enumerate(S.ACME_EXTRACT):
        s.append(req("acme", "support-bot", "extract", S.ACME_EXTRACT_SYSTEM, user_msg(text),
                     pick("acme"), model="gemini-2.5-flash" if i < 2 else None,
                     generation=gen(0, 128, "application/json", camel=(i % 3 == 2)),
                     cache="exact"))
    streams.append(s)
    streams.append(conversation_stream(
        rng, "acme", "support-bot", "answer", P.ACME_SUPPORT_ANSWER, conv.ACME_MESH,
        "c-acme-0001", "u-1033", [0, 2, 4, 7, 10, 13, 16, 19],
        generation=gen(0.3, 512), deadline_ms=30000))

    # globex: code review, explanations, SQL, an analysis conversation
    s = []
    for i, d in enumerate(S.GLOBEX_DIFFS):
        s.append(req("globex", "code-assistant", "review", P.GLOBEX_CODE_REVIEW, user_msg(d),
                     pick("globex"), model="auto", generation=gen(0.2, 2048),
                     deadline_ms=90000))
    streams.append(s)
    s = []
    for d in S.GLOBEX_EXPLAIN_SNIPPETS:
        s.append(req("globex", "code-assistant", "explain", P.GLOBEX_EXPLAIN, user_msg(d),
                     pick("globex"), generation=gen(0.3, 768)))
    streams.append(s)
    s = []
    for text, _ in flatten(S.GLOBEX_SQL_QUESTIONS):
        s.append(req("globex", "analytics-agent", "sql", P.GLOBEX_SQL, user_msg(text),
                     pick("globex"), generation=gen(0, 1024), deadline_ms=60000))
    streams.append(s)
    streams.append(conversation_stream(
        rng, "globex", "code-assistant", "review", P.GLOBEX_CODE_REVIEW, conv.GLOBEX_LIMITER,
        "c-globex-0107", "g-chidi", [0, 1, 3, 5, 7, 9, 11],
        generation=gen(0.2, 2048), deadline_ms=90000))
    streams.append(conversation_stream(
        rng, "globex", "analytics-agent", "sql", P.GLOBEX_SQL, conv.GLOBEX_REVENUE,
        "c-globex-0210", "g-emma", [0, 2, 4, 6, 9],
        generation=gen(0, 1024), deadline_ms=60000))

    # initech: HR policy (paraphrases), IT helpdesk, leave-planning conversation
    s = []
    hr = flatten(S.INITECH_HR_QUESTIONS) + [(S.HOOLI_HR_QUESTIONS[0], False)]
    for text, _ in hr:
        s.append(req("initech", "hr-helper", "policy", P.INITECH_HR, user_msg(text),
                     pick("initech"), generation=gen(0.2, 400), deadline_ms=30000))
    streams.append(s)
    s = []
    for i, (text, _) in enumerate(flatten(S.INITECH_IT_QUESTIONS)):
        s.append(req("initech", "support-bot", "answer", P.INITECH_IT, user_msg(text),
                     pick("initech"), model="auto" if i % 2 else None))
    streams.append(s)
    streams.append(conversation_stream(
        rng, "initech", "hr-helper", "policy", P.INITECH_HR, conv.INITECH_LEAVE,
        "c-initech-0042", "e-11456", [0, 2, 4, 6, 9],
        generation=gen(0.2, 400), deadline_ms=30000))

    # umbrella: yes/no screening (exact cache only), research summaries, SQL
    s = []
    for q, msg in S.UMBRELLA_SCREENING:
        s.append(req("umbrella", "compliance-checker", "classify", P.UMBRELLA_COMPLIANCE,
                     user_msg(q + "\n\nMessage:\n" + msg), pick("umbrella"),
                     generation=gen(0, 64, "text/plain"), cache="exact", deadline_ms=5000))
    streams.append(s)
    s = []
    for i, a in enumerate(S.UMBRELLA_ABSTRACTS):
        s.append(req("umbrella", "research-assistant", "summarize", P.UMBRELLA_RESEARCH,
                     user_msg(a), pick("umbrella"), generation=gen(0.2, 1024),
                     priority="batch" if i % 2 == 0 else "online",
                     deadline_ms=3600000 if i % 2 == 0 else 60000))
    streams.append(s)
    s = []
    for text, _ in flatten(S.UMBRELLA_SQL_QUESTIONS):
        s.append(req("umbrella", "analytics-agent", "sql", P.UMBRELLA_SQL, user_msg(text),
                     pick("umbrella"), generation=gen(0, 1024), priority="batch",
                     deadline_ms=1800000))
    streams.append(s)
    streams.append(conversation_stream(
        rng, "umbrella", "research-assistant", "summarize", P.UMBRELLA_RESEARCH,
        conv.UMBRELLA_TRIALS, "c-umb-0017", "um-sl", [0, 2, 4, 7],
        generation=gen(0.2, 1024), deadline_ms=60000))

    # hooli: one-label triage, support, reviews, sales, HR, two conversations
    s = []
    for i, (text, _) in enumerate(flatten(S.HOOLI_TICKETS)):
        s.append(req("hooli", "support-bot", "triage", P.HOOLI_TRIAGE, user_msg(text),
                     pick("hooli"), model="gemini-2.5-flash" if i in (3, 9) else None,
                     generation=gen(0, 64), deadline_ms=10000))
    streams.append(s)
    s = []
    for text, _ in flatten(S.HOOLI_SUPPORT_QUESTIONS):
        s.append(req("hooli", "support-bot", "answer", P.HOOLI_SUPPORT, user_msg(text),
                     pick("hooli"), deadline_ms=30000))
    streams.append(s)
    s = []
    for code in S.HOOLI_REVIEWS:
        s.append(req("hooli", "code-assistant", "review", P.HOOLI_CODE_REVIEW, user_msg(code),
                     pick("hooli"), generation=gen(0.1, 768)))
    streams.append(s)
    s = []
    for brief in S.HOOLI_SALES_BRIEFS:
        s.append(req("hooli", "sales-copilot", "draft", P.HOOLI_SALES, user_msg(brief),
                     "h-sales-4", generation=gen(0.7, 400), cache="off"))
    streams.append(s)
    s = []
    for text in S.HOOLI_HR_QUESTIONS:
        s.append(req("hooli", "hr-helper", "policy", P.HOOLI_HR, user_msg(text), pick("hooli"),
                     generation=gen(0.2, 400), deadline_ms=30000))
    streams.append(s)
    streams.append(conversation_stream(
        rng, "hooli", "sales-copilot", "draft", P.HOOLI_SALES, conv.HOOLI_OUTREACH,
        "c-hooli-0311", "h-sales-4", [0, 1, 3, 5, 7], generation=gen(0.7, 400)))
    streams.append(conversation_stream(
        rng, "hooli", "support-bot", "answer", P.HOOLI_SUPPORT, conv.HOOLI_DEPLOY,
        "c-hooli-0520", "h-eng-7", [0, 2, 4, 6, 9], deadline_ms=30000))

    # the same tutor, the same problems, in two tenants: identical bytes but for the tenant
    for tenant in ("initech", "hooli"):
        s = []
        for i, p in enumerate(S.TUTOR_PROBLEMS):
            s.append(req(tenant, "learning-coach", "explain", P.GENERIC_TUTOR, user_msg(p),
                         "tutor-" + tenant, generation=gen(0.3, 1024) if i % 2 else None))
        streams.append(s)

    # long, hard tasks; most pinned to the strong model
    s = []
    for i, (tenant, agent, stage, sys_key, text) in enumerate(S.HARD_TASKS):
        s.append(req(tenant, agent, stage, getattr(P, sys_key), user_msg(text), pick(tenant),
                     model="gemini-2.5-pro" if i < 4 else "auto", generation=gen(0.4, 2048),
                     deadline_ms=120000))
    streams.append(s)
    return streams


def interleave(rng, streams):
    """Merge keeping each stream's order; streams with more left are picked more often."""
    streams = [list(s) for s in streams if s]
    out = []
    while streams:
        weights = [len(s) for s in streams]
        i = rng.choices(range(len(streams)), weights=weights)[0]
        out.append(streams[i].pop(0))
        if not streams[i]:
            streams.pop(i)
    return out


def add_exact_repeats(rng, reqs):
    """Re-send some requests later, byte-identical in content (same tenant, scope, system,
    messages, settings); a different user may ask. Never for cache "off" requests."""
    eligible = [i for i, r in enumerate(reqs) if r.get("cache") != "off"
                and "conversation_id" not in r
                and r["stage"] in ("answer", "policy", "triage", "sql", "classify", "explain")]
    chosen = sorted(rng.sample(eligible, N_EXACT_REPEATS))
    inserts = []
    for i in chosen:
        dup = copy.deepcopy(reqs[i])
        if rng.random() < 0.6:
            dup["user"] = rng.choice(USERS[dup["tenant"]])
        pos = rng.randint(i + 1, len(reqs))
        inserts.append((pos, dup))
    for pos, dup in sorted(inserts, key=lambda x: -x[0]):
        reqs.insert(pos, dup)
    return reqs


# ---- validation: the rules of host/core/message.c ----

TAG_RE = re.compile(r"^[^\x00-\x1f\x7f-\x9f]{1,256}$")
MODEL_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


def validate(r):
    for k in ("id", "tenant"):
        assert isinstance(r.get(k), str) and TAG_RE.match(r[k]) and len(r[k].encode()) <= 256, k
    for k in ("user", "agent", "stage", "conversation_id"):
        if k in r:
            assert isinstance(r[k], str) and TAG_RE.match(r[k]), k
    if "system" in r:
        assert isinstance(r["system"], str)
    m = r["messages"]
    assert isinstance(m, list) and 1 <= len(m) <= 1000
    for t in m:
        assert t["role"] in ("user", "model") and isinstance(t["content"], str)
    assert m[-1]["role"] == "user" and m[-1]["content"].strip()
    if "model" in r:
        assert MODEL_RE.match(r["model"])
    g = r.get("generation", {})
    for k, v in g.items():
        if k == "temperature":
            assert 0 <= v <= 2
        elif k in ("max_output_tokens", "maxOutputTokens"):
            assert isinstance(v, int) and 64 <= v <= 2048
        elif k in ("response_mime_type", "responseMimeType"):
            assert v in ("text/plain", "application/json", "text/x.enum")
        else:
            raise AssertionError("generation key " + k)
    assert r.get("cache", "on") in ("on", "exact", "off")
    if "deadline_ms" in r:
        assert isinstance(r["deadline_ms"], int) and 1 <= r["deadline_ms"] <= 3600000
    assert r.get("priority", "online") in ("online", "batch")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    here = os.path.dirname(os.path.abspath(__file__))
    ap.add_argument("-o", "--output", default=os.path.join(here, "requests.jsonl"))
    args = ap.parse_args()

    rng = random.Random(SEED)
    reqs = add_exact_repeats(rng, interleave(rng, build_streams(rng)))
    lines = []
    for n, r in enumerate(reqs, 1):
        r = {"id": "req-%05d" % n, **r}
        validate(r)
        line = json.dumps(r, ensure_ascii=False, separators=(",", ":"))
        assert len(line.encode()) <= 1 << 20
        lines.append(line)
    with open(args.output, "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    print("wrote %d requests to %s" % (len(lines), args.output), file=sys.stderr)


if __name__ == "__main__":
    main()
