#!/usr/bin/env python3
"""tools_traffic.py - the traffic and the checks of test_tools.sh (Python standard library only).

  make WORK    waves 1, 2 and 4 (wave1.jsonl, wave2.jsonl, wave4.jsonl)
  second WORK  wave 3 from wave 1's results: each conversation's call, then the tool's result
  check WORK   the assertions over results.jsonl, dlq.jsonl and the simulator's bodies.jsonl
"""
import copy
import json
import sys

N_FIRST = 240       # wave 1: tool-using conversations
N_LOOKALIKE = 240   # wave 2: the same question in other words (the simulator's arguments differ)
N_REPEAT = 60       # wave 2: exact repeats of wave 1
N_LONG = 24         # wave 4: long tool conversations, pruned

SYSTEM = ("You are the travel desk of a booking service. Use the tools to look things up; never "
          "guess a temperature, an order status or a fare. Answer in one or two sentences, name "
          "the city, and quote the figures the tool returned. ") * 3

TOOLS = [{"functionDeclarations": [
    {"name": "get_weather", "description": "the current weather of a city",
     "parameters": {"type": "OBJECT", "properties": {
         "city": {"type": "STRING", "description": "the city name"},
         "unit": {"type": "STRING", "enum": ["C", "F"]}}, "required": ["city"]}},
    {"name": "lookup_order", "description": "the status of a booking order",
     "parameters": {"type": "OBJECT", "properties": {
         "order_id": {"type": "STRING"}}, "required": ["order_id"]}},
]}]


def city(k, salt=""):
    # distinct, capitalised, one word: the simulator puts a quoted word in the first string
    # property of the function it calls
    letters = "abcdefghijklmnopqrstuvwxyz"
    a, b, c = k % 26, (k // 26) % 26, (k * 7 + len(salt)) % 26
    return "Z" + salt + letters[a] + letters[b] + letters[c] + "ville"


def question(name):
    return f"What is the weather in '{name}' right now? Use get_weather and keep it short."


def lookalike(name):
    return f"What's the weather in '{name}' right now? Use get_weather, and keep it brief."


def first_turn(rid, name):
    return {"id": rid, "tenant": "travel", "agent": "desk", "stage": "weather",
            "systemInstruction": {"parts": [{"text": SYSTEM}]},
            "contents": [{"role": "user", "parts": [{"text": question(name)}]}],
            "tools": copy.deepcopy(TOOLS),
            "toolConfig": {"functionCallingConfig": {"mode": "AUTO"}},
            "generationConfig": {"temperature": 0.0, "maxOutputTokens": 256}}


SCHEMA = {"type": "OBJECT", "properties": {"city": {"type": "STRING"}, "temp_c": {"type": "INTEGER"}},
          "required": ["city", "temp_c"]}

BAD = [
    ("contents[0].parts[0].inline_dat",
     lambda r: r["contents"][0]["parts"][0].update({"inline_dat": {}})),
    ("generationConfig.topP", lambda r: r["generationConfig"].update({"topP": "high"})),
    ("tools[0].functionDeclarations[0].parameters.properties.city.typ",
     lambda r: r["tools"][0]["functionDeclarations"][0]["parameters"]["properties"].update(
         {"city": {"typ": "STRING"}})),
    ("toolConfig.functionCallingConfig.mode",
     lambda r: r["toolConfig"]["functionCallingConfig"].update({"mode": "SOMETIMES"})),
    ("tool_cofig", lambda r: r.update({"tool_cofig": {}})),
]


def temp_of(name):
    return sum(map(ord, name)) % 35 - 5


def write(path, reqs):
    with open(path, "w") as f:
        for r in reqs:
            f.write(json.dumps(r) + "\n")


def make(work):
    w1 = [first_turn(f"first-{k:03d}", city(k)) for k in range(N_FIRST)]
    w2 = []
    for k in range(N_LOOKALIKE):
        r = first_turn(f"alike-{k:03d}", city(k))
        r["contents"][0]["parts"][0]["text"] = lookalike(city(k))
        w2.append(r)
    for k in range(N_REPEAT):
        r = first_turn(f"repeat-{k:03d}", city(k))
        w2.append(r)
    w4 = []
    for k in range(N_LONG):
        contents = []
        for j in range(30):
            oid = f"BK-{k:02d}{j:03d}"
            contents.append({"role": "user", "parts": [{"text":
                f"Earlier request {j}: please check booking {oid} for the trip to Lisbon in "
                f"spring, the one with the late check-in and the extra luggage allowance."}]})
            contents.append({"role": "model", "parts": [{"functionCall": {
                "name": "lookup_order", "args": {"order_id": oid}}}]})
            contents.append({"role": "user", "parts": [{"functionResponse": {
                "name": "lookup_order", "response": {"order_id": oid, "status": "confirmed",
                                                     "seats": j % 4 + 1}}}]})
            contents.append({"role": "model", "parts": [{"text":
                f"Booking {oid} is confirmed with {j % 4 + 1} seats; late check-in is noted."}]})
        name = city(k, "l")
        contents.append({"role": "user", "parts": [{"text": question(name)}]})
        contents.append({"role": "model", "parts": [{"functionCall": {
            "name": "get_weather", "args": {"city": name}}}]})
        contents.append({"role": "user", "parts": [{"functionResponse": {
            "name": "get_weather", "response": {"city": name, "temp_c": temp_of(name)}}}]})
        r = first_turn(f"long-{k:02d}", name)
        r["conversation_id"] = f"long-{k:02d}"
        r["stage"] = "history"  # a scope of its own: no shadow evidence moves it off strong
        r["contents"] = contents
        w4.append(r)
    # invalid fields, each a dead letter naming its path
    bad = []
    for k, (path, mutate) in enumerate(BAD):
        r = first_turn(f"bad-{k}", city(k))
        mutate(r)
        bad.append(r)
    write(f"{work}/wave1.jsonl", w1 + bad)
    write(f"{work}/batch_in.jsonl", [first_turn(f"batch-{k:02d}", city(k, "b")) for k in range(20)])
    # the cascade: tool calls and schema-bound answers on the cheapest tier, which the second
    # simulator spoils (undeclared function, wrong argument types, no instance of the schema)
    casc = [first_turn(f"casc-call-{k:02d}", city(k, "c")) for k in range(20)]
    for k in range(20):
        r = first_turn(f"casc-json-{k:02d}", city(k, "j"))
        del r["tools"], r["toolConfig"]
        r["generationConfig"].update({"responseMimeType": "application/json",
                                      "responseSchema": SCHEMA})
        casc.append(r)
    write(f"{work}/cascade_in.jsonl", casc)
    write(f"{work}/wave2.jsonl", w2)
    write(f"{work}/wave4.jsonl", w4)


def results(work):
    out = {}
    for line in open(f"{work}/results.jsonl"):
        r = json.loads(line)
        out[r["id"]] = r
    return out


def calls_of(r):
    cands = r.get("candidates") or []
    parts = (cands[0].get("content") or {}).get("parts") or [] if cands else []
    return [p["functionCall"] for p in parts if "functionCall" in p]


def second(work):
    res = results(work)
    w3 = []
    for k in range(N_FIRST):
        r = res.get(f"first-{k:03d}")
        calls = calls_of(r) if r else []
        if not calls:  # the check reports it; no second turn without a call
            continue
        name = city(k)
        req = first_turn(f"second-{k:03d}", name)
        req["contents"].append({"role": "model", "parts": [{"functionCall": calls[0]}]})
        req["contents"].append({"role": "user", "parts": [{"functionResponse": {
            "name": calls[0]["name"], "response": {"city": name, "temp_c": temp_of(name)}}}]})
        w3.append(req)
    write(f"{work}/wave3.jsonl", w3)


def direct_call(work, model, k):
    """The simulator's own answer to look-alike k, asked without scrimp (its function calls)."""
    import urllib.request
    url = open(f"{work}/sim_url").read().strip()
    r = first_turn("x", city(k))
    body = {key: r[key] for key in ("systemInstruction", "contents", "tools", "toolConfig",
                                    "generationConfig")}
    body["contents"][0]["parts"][0]["text"] = lookalike(city(k))
    req = urllib.request.Request(f"{url}/v1beta/models/{model}:generateContent",
                                 data=json.dumps(body).encode(), method="POST",
                                 headers={"Content-Type": "application/json",
                                          "x-goog-api-key": "tools-key"})
    with urllib.request.urlopen(req, timeout=30) as f:
        return calls_of(json.load(f))


def check(work):
    res = results(work)
    fails = []

    def ok(cond, what):
        print(("ok   " if cond else "FAIL ") + what)
        if not cond:
            fails.append(what)

    dlq = [json.loads(l) for l in open(f"{work}/dlq.jsonl") if l.strip()]
    named = sum(1 for k, (path, _) in enumerate(BAD)
                if any(d.get("id") == f"bad-{k}" and d["error"]["code"] == "INVALID_REQUEST" and
                       f'field "{path}"' in d["error"]["message"] for d in dlq))
    ok(len(dlq) == len(BAD) and named == len(BAD),
       f"{len(dlq)} dead letters, {named} of {len(BAD)} invalid fields named by path (INVALID_REQUEST)")
    errs = [r for r in res.values() if r["status"] != "ok"]
    ok(not errs, f"{len(res)} results, {len(errs)} errors" + (f": {errs[0]['error']}" if errs else ""))

    # 1. every function call reaches the producer with its arguments
    good = 0
    for k in range(N_FIRST):
        r = res.get(f"first-{k:03d}", {})
        c = calls_of(r)
        good += bool(c) and c[0]["name"] == "get_weather" and c[0].get("args", {}).get("city") == city(k)
    ok(good == N_FIRST, f"wave 1: {good} of {N_FIRST} results hold get_weather with the city asked for")

    # 2. look-alikes: the same question in other words, for which the simulator calls the same
    # function with other arguments (asked directly, without scrimp): never served another
    # request's call, never from the semantic layer
    wrong = sem = differ = 0
    for k in range(N_LOOKALIKE):
        r = res.get(f"alike-{k:03d}", {})
        want = direct_call(work, r.get("model") or "gemini-2.5-pro", k)
        sem += r.get("source") == "cache-semantic"
        differ += want != calls_of(res.get(f"first-{k:03d}", {}))
        wrong += calls_of(r) != want
    ok(differ >= 100, f"wave 2: {differ} of {N_LOOKALIKE} look-alikes call with other arguments "
                      f"than the request they look like")
    ok(wrong == 0 and sem == 0,
       f"wave 2: {N_LOOKALIKE - wrong} of {N_LOOKALIKE} look-alike tool calls are their own; "
       f"{wrong} another's, {sem} from the semantic layer")
    exact = same = 0
    for k in range(N_REPEAT):
        r = res.get(f"repeat-{k:03d}", {})
        exact += r.get("source") == "cache-exact"
        same += calls_of(r) == calls_of(res.get(f"first-{k:03d}", {}))
    ok(exact == N_REPEAT and same == N_REPEAT,
       f"wave 2: {exact} of {N_REPEAT} exact repeats from the exact layer, {same} with the same call")

    # 3. the final answers use what the tool returned
    n3 = used = 0
    for k in range(N_FIRST):
        r = res.get(f"second-{k:03d}")
        if r is None:
            continue
        n3 += 1
        used += str(temp_of(city(k))) in r.get("text", "") and not calls_of(r)
    ok(n3 == N_FIRST and used == n3,
       f"wave 3: {n3} second turns, {used} final answers quote the tool's result")

    # 4. long tool conversations were pruned and still answered from the tool's result
    pruned = sum(1 for k in range(N_LONG)
                 if res.get(f"long-{k:02d}", {}).get("optimizations", {}).get("pruned_tokens", 0) > 0)
    used4 = sum(1 for k in range(N_LONG)
                if str(temp_of(city(k, "l"))) in res.get(f"long-{k:02d}", {}).get("text", ""))
    ok(pruned == N_LONG and used4 == N_LONG,
       f"wave 4: {pruned} of {N_LONG} long tool conversations pruned, {used4} answers quote the tool")

    # 5. every forwarded body: a functionResponse only right after its functionCall
    bodies = orphans = responses = cached = 0
    for line in open(f"{work}/bodies.jsonl"):
        rec = json.loads(line)
        body = rec.get("body", rec)
        if isinstance(body, str):
            body = json.loads(body)
        contents = body.get("contents") or []
        bodies += 1
        cached += "cachedContent" in body
        for i, c in enumerate(contents):
            for p in c.get("parts", []):
                if "functionResponse" not in p:
                    continue
                responses += 1
                prev = contents[i - 1].get("parts", []) if i > 0 else []
                names = {q["functionCall"]["name"] for q in prev if "functionCall" in q}
                if p["functionResponse"]["name"] not in names:
                    orphans += 1
    ok(bodies > 0 and responses > 0 and orphans == 0,
       f"{bodies} forwarded bodies, {responses} function responses, {orphans} without their call")
    ok(cached > 0, f"{cached} bodies used a prompt cache holding the system instruction and tools")
    # 6. Batch Mode: the same requests inline, the whole candidate back
    out = [json.loads(l) for l in open(f"{work}/batch_out.jsonl")]
    good = sum(1 for r in out if r.get("status") == "ok" and calls_of(r) and
               calls_of(r)[0].get("args", {}).get("city") == city(int(r["id"][6:]), "b"))
    ok(len(out) == 20 and good == 20,
       f"backfill --mode batch: {good} of {len(out)} tool requests answered with their call")
    # 7. the cascade: every spoiled cheap answer promoted, the strong answer valid
    out = {r["id"]: r for r in (json.loads(l) for l in open(f"{work}/cascade_out.jsonl"))}
    calls_ok = sum(1 for k in range(20)
                   if (r := out.get(f"casc-call-{k:02d}", {})).get("optimizations", {}).get("promoted")
                   and calls_of(r) and calls_of(r)[0]["name"] == "get_weather"
                   and isinstance(calls_of(r)[0].get("args", {}).get("city"), str))
    json_ok = 0
    for k in range(20):
        r = out.get(f"casc-json-{k:02d}", {})
        try:
            v = json.loads(r.get("text", ""))
        except ValueError:
            continue
        json_ok += bool(r.get("optimizations", {}).get("promoted")) and isinstance(v, dict) and \
            isinstance(v.get("city"), str) and isinstance(v.get("temp_c"), int)
    ok(calls_ok == 20 and json_ok == 20,
       f"cascade: {calls_ok} of 20 bad function calls and {json_ok} of 20 answers outside the "
       f"schema promoted, each answered validly by a stronger tier")
    sys.exit(1 if fails else 0)


if __name__ == "__main__":
    cmd, work = sys.argv[1], sys.argv[2]
    {"make": make, "second": second, "check": check}[cmd](work)
