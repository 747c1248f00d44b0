#!/usr/bin/env python3
"""conformance.py - Google's Python SDK (google-genai) as a client of scrimp's Gemini simulator.

usage: conformance.py --base-url URL --errors-url URL --url-429 URL --url-503 URL

  --base-url    a simulator whose generateContent bodies are recorded (test_sdk.sh later feeds
                them to `scrimp validate`): only well-formed requests go there
  --errors-url  a simulator for the requests that must be refused (unknown model, bad thinking
                settings, an unknown field), so that none of them is in the record
  --url-429     a simulator started with --faults 429=1,max_per_request=0
  --url-503     a simulator started with --faults 503=1,max_per_request=0

Every call kind the SDK has for the Gemini Developer API that scrimp's simulator serves:
generate (plain, JSON schemas, tools, thinking, stop sequences, several candidates), a function
calling round trip, countTokens, context caches, Batch Mode, streaming, models, embeddings, and
the errors as the SDK raises them (APIError subclasses with the HTTP code). Prints one line per
check, "ok NAME" or "FAIL NAME: why", then "conformance: N passed, N failed"; exits 1 on any
failure. Needs the pinned SDK of scripts/setup (.venv).
"""
import argparse
import sys
import time
import traceback

import pydantic
from google import genai
from google.genai import errors, types

API_KEY = "test-key"
# The simulator serves the v1beta REST surface (gemini-api.md §0); the SDK's own default differs.
API_VERSION = "v1beta"
FLASH = "gemini-2.5-flash"
PRO = "gemini-2.5-pro"
NO_THINKING = "gemini-2.0-flash"
EMBED_FALLBACK = "gemini-embedding-001"  # used when models.list names no embedding model

# The simulator's smallest cache for the flash models is 1024 tokens at 4 bytes a token
# (host/gemini/sim.c, SC_SIM_CACHE_MIN_FLASH); this instruction is well above it.
CACHE_MIN_TOKENS = 1024
CACHE_INSTRUCTION = ("You answer questions about the invoices of the Example Company. " * 120).strip()
assert len(CACHE_INSTRUCTION) > 4 * CACHE_MIN_TOKENS * 1.5

BATCH_POLL_S = 0.05  # between two reads of a batch
BATCH_WAIT_S = 60.0  # a batch not terminal by then fails the check
THINKING_BUDGET = 1024
STREAM_PROMPT = "Tell a long story about a lighthouse keeper and the fog."


class Invoice(pydantic.BaseModel):
    """The schema of the response_schema check: one field of each JSON kind."""
    number: str
    total: float
    paid: bool
    lines: list[str]


CITY_JSON_SCHEMA = {
    "type": "object",
    "properties": {
        "city": {"type": "string"},
        "population": {"type": "integer"},
        "coastal": {"type": "boolean"},
    },
    "required": ["city", "population", "coastal"],
}


def get_weather(city: str, unit: str) -> dict:
    """Returns the current weather in a city.

    Args:
      city: the city's name, e.g. Lisbon
      unit: celsius or fahrenheit
    """
    return {"city": city, "unit": unit, "temperature": 21, "sky": "clear"}


INVOICE_DECL = types.FunctionDeclaration(
    name="lookup_invoice",
    description="Finds an invoice by its number.",
    parameters=types.Schema(
        type=types.Type.OBJECT,
        properties={"number": types.Schema(type=types.Type.STRING, description="e.g. INV-12")},
        required=["number"],
    ),
)

NO_AFC = types.AutomaticFunctionCallingConfig(disable=True)


class Check(Exception):
    """A check's failure, with the reason to print."""


def need(cond, why):
    if not cond:
        raise Check(why)


def client_for(url):
    """A client of the simulator at url, with no retries (the SDK's default, said outright: the
    fault checks need the first answer)."""
    return genai.Client(
        api_key=API_KEY,
        http_options=types.HttpOptions(base_url=url, api_version=API_VERSION,
                                       retry_options=types.HttpRetryOptions(attempts=1)))


def api_error(fn, cls, code):
    """Run fn, which must raise cls (an errors.APIError subclass) with HTTP code; returns it."""
    try:
        fn()
    except errors.APIError as e:
        need(isinstance(e, cls), f"raised {type(e).__name__} {e.code}, wanted {cls.__name__}")
        need(e.code == code, f"code {e.code} ({e.status}: {e.message}), wanted {code}")
        return e
    raise Check(f"no error raised, wanted {cls.__name__} {code}")


def text_of(response):
    """The answer text of a response: its non-thought text parts (the SDK's .text)."""
    return response.text or ""


def snippet(response):
    """The start of the first candidate's text, for a failure's message (without the SDK's
    warning about non-text parts that .text logs)."""
    cands = response.candidates or []
    parts = (cands[0].content.parts or []) if cands and cands[0].content else []
    return "".join(p.text or "" for p in parts)[:200]


# ---- generateContent ----


def check_generate_plain(c):
    r = c.models.generate_content(model=FLASH, contents="What is the capital of Portugal?")
    need(text_of(r).strip() != "", "empty text")
    need(r.candidates and r.candidates[0].finish_reason == types.FinishReason.STOP,
         f"finish_reason {r.candidates[0].finish_reason if r.candidates else None}")
    u = r.usage_metadata
    need(u is not None and (u.prompt_token_count or 0) > 0, f"usage_metadata {u}")
    need((u.total_token_count or 0) >= (u.prompt_token_count or 0) + (u.candidates_token_count or 0),
         f"total_token_count {u.total_token_count} below prompt + candidates")


def check_generate_response_schema(c):
    r = c.models.generate_content(
        model=FLASH, contents="Make up an invoice with two lines.",
        config=types.GenerateContentConfig(response_mime_type="application/json",
                                           response_schema=Invoice))
    need(isinstance(r.parsed, Invoice), f"parsed is {r.parsed!r}; text {snippet(r)!r}")
    need(r.parsed.number is not None and isinstance(r.parsed.lines, list), f"parsed {r.parsed!r}")


def check_generate_response_json_schema(c):
    r = c.models.generate_content(
        model=FLASH, contents="Describe a city as JSON.",
        config=types.GenerateContentConfig(response_mime_type="application/json",
                                           response_json_schema=CITY_JSON_SCHEMA))
    p = r.parsed
    need(isinstance(p, dict), f"parsed is {p!r}; text {snippet(r)!r}")
    missing = [k for k in CITY_JSON_SCHEMA["required"] if k not in p]
    need(not missing, f"parsed {p!r} lacks {missing}")
    need(isinstance(p["city"], str) and isinstance(p["population"], int)
         and isinstance(p["coastal"], bool), f"wrong types in {p!r}")


def check_generate_function_call(c):
    r = c.models.generate_content(
        model=FLASH, contents="Find invoice INV-12 for me.",
        config=types.GenerateContentConfig(
            tools=[types.Tool(function_declarations=[INVOICE_DECL])],
            tool_config=types.ToolConfig(function_calling_config=types.FunctionCallingConfig(
                mode=types.FunctionCallingConfigMode.ANY)),
            automatic_function_calling=NO_AFC))
    calls = r.function_calls
    need(calls, f"no function call; text {snippet(r)!r}")
    need(calls[0].name == INVOICE_DECL.name, f"called {calls[0].name!r}")
    need(isinstance(calls[0].args, dict) and "number" in calls[0].args,
         f"args {calls[0].args!r} lack the required 'number'")


def check_generate_thinking(c):
    r = c.models.generate_content(
        model=FLASH, contents="Think it through: is 221 a prime number?",
        config=types.GenerateContentConfig(thinking_config=types.ThinkingConfig(
            thinking_budget=THINKING_BUDGET, include_thoughts=True)))
    parts = (r.candidates[0].content.parts or []) if r.candidates and r.candidates[0].content else []
    thoughts = [p for p in parts if p.thought]
    need(thoughts, f"no thought part among {len(parts)} parts")
    need(any(p.text for p in thoughts), "thought parts without text")
    need(text_of(r).strip() != "", "no answer text beside the thoughts")
    u = r.usage_metadata
    need(u is not None and (u.thoughts_token_count or 0) > 0,
         f"thoughts_token_count {u.thoughts_token_count if u else None}")


def check_generate_stop_sequences(c):
    prompt = "List some words for me, please."
    full = text_of(c.models.generate_content(model=FLASH, contents=prompt))
    words = full.split()
    need(len(words) >= 4, f"the answer without a stop sequence is too short: {full!r}")
    stop = words[len(words) // 2]
    cut = full[:full.index(stop)]
    r = c.models.generate_content(model=FLASH, contents=prompt,
                                  config=types.GenerateContentConfig(stop_sequences=[stop]))
    got = text_of(r)
    need(stop not in got, f"the stop sequence {stop!r} is in the answer {got[:200]!r}")
    need(got == cut, f"answer {got[:120]!r}... is not the text before {stop!r}: {cut[:120]!r}")
    need(r.candidates[0].finish_reason == types.FinishReason.STOP,
         f"finish_reason {r.candidates[0].finish_reason}")


def check_generate_candidate_count(c):
    r = c.models.generate_content(model=FLASH, contents="Suggest a name for a cat.",
                                  config=types.GenerateContentConfig(candidate_count=2))
    need(r.candidates is not None and len(r.candidates) == 2,
         f"{len(r.candidates or [])} candidates, wanted 2")
    idx = sorted(cand.index or 0 for cand in r.candidates)
    need(idx == [0, 1], f"candidate indexes {idx}")
    for cand in r.candidates:
        need(cand.content and any(p.text for p in cand.content.parts or []),
             f"candidate {cand.index} has no text")


def check_function_round_trip(c):
    config = types.GenerateContentConfig(tools=[get_weather], automatic_function_calling=NO_AFC)
    question = types.Content(role="user", parts=[types.Part.from_text(
        text="What is the weather in Lisbon, in celsius?")])
    r1 = c.models.generate_content(model=FLASH, contents=[question], config=config)
    calls = r1.function_calls
    need(calls, f"the first turn holds no function call; text {snippet(r1)!r}")
    need(calls[0].name == "get_weather", f"called {calls[0].name!r}")
    need(isinstance(calls[0].args, dict) and {"city", "unit"} <= set(calls[0].args),
         f"args {calls[0].args!r}")
    result = get_weather(**{k: str(v) for k, v in calls[0].args.items()})
    answer = types.Content(role="user", parts=[types.Part.from_function_response(
        name=calls[0].name, response={"result": result})])
    r2 = c.models.generate_content(
        model=FLASH, contents=[question, r1.candidates[0].content, answer], config=config)
    again = [fc.name for fc in r2.function_calls or []]
    need(not again, f"calls {again} again instead of an answer")
    need(text_of(r2).strip() != "", "no text answer after the function response")


# ---- countTokens ----


def check_count_tokens(c):
    short = c.models.count_tokens(model=FLASH, contents="How many tokens is this?")
    long_ = c.models.count_tokens(model=FLASH, contents="How many tokens is this? " * 40)
    need((short.total_tokens or 0) > 0, f"total_tokens {short.total_tokens}")
    need((long_.total_tokens or 0) > short.total_tokens,
         f"40 times the text counts {long_.total_tokens}, once {short.total_tokens}")


# ---- context caching ----


def check_caches(c):
    cache = c.caches.create(model=FLASH, config=types.CreateCachedContentConfig(
        system_instruction=CACHE_INSTRUCTION, display_name="sdk-conformance", ttl="300s"))
    try:
        need(cache.name and cache.name.startswith("cachedContents/"), f"name {cache.name!r}")
        need(cache.model and cache.model.endswith(FLASH), f"model {cache.model!r}")
        tokens = cache.usage_metadata.total_token_count if cache.usage_metadata else None
        need((tokens or 0) >= CACHE_MIN_TOKENS, f"total_token_count {tokens}")
        need(cache.expire_time is not None, "no expire_time")

        got = c.caches.get(name=cache.name)
        need(got.name == cache.name and got.display_name == "sdk-conformance",
             f"get answered {got.name!r} {got.display_name!r}")
        names = [x.name for x in c.caches.list()]
        need(cache.name in names, f"list holds {names}, not {cache.name}")

        upd = c.caches.update(name=cache.name, config=types.UpdateCachedContentConfig(ttl="3600s"))
        need(upd.expire_time is not None and upd.expire_time > cache.expire_time,
             f"expire_time {upd.expire_time} after a longer ttl, was {cache.expire_time}")

        r = c.models.generate_content(
            model=FLASH, contents="What is invoice INV-3 about?",
            config=types.GenerateContentConfig(cached_content=cache.name))
        need(text_of(r).strip() != "", "no answer through the cache")
        cached = r.usage_metadata.cached_content_token_count if r.usage_metadata else None
        need((cached or 0) >= CACHE_MIN_TOKENS, f"cached_content_token_count {cached}")
    finally:
        c.caches.delete(name=cache.name)
    api_error(lambda: c.caches.get(name=cache.name), errors.ClientError, 404)


# ---- Batch Mode ----


def check_batches(c):
    prompts = ["Batch question one: what is an invoice?",
               "Batch question two: what is a receipt?",
               "Batch question three: what is a refund?"]
    src = [{"contents": [{"parts": [{"text": p}], "role": "user"}]} for p in prompts]
    job = c.batches.create(model=FLASH, src=src,
                           config=types.CreateBatchJobConfig(display_name="sdk-conformance"))
    need(job.name and job.name.startswith("batches/"), f"name {job.name!r}")
    terminal = {types.JobState.JOB_STATE_SUCCEEDED, types.JobState.JOB_STATE_FAILED,
                types.JobState.JOB_STATE_CANCELLED, types.JobState.JOB_STATE_EXPIRED}
    deadline = time.monotonic() + BATCH_WAIT_S
    while job.state not in terminal and time.monotonic() < deadline:
        time.sleep(BATCH_POLL_S)
        job = c.batches.get(name=job.name)
    need(job.state == types.JobState.JOB_STATE_SUCCEEDED,
         f"state {job.state} after {BATCH_WAIT_S:.0f}s at most")
    inl = (job.dest.inlined_responses or []) if job.dest else []
    need(len(inl) == len(prompts), f"{len(inl)} inlined responses for {len(prompts)} requests")
    for i, item in enumerate(inl):
        need(item.error is None, f"response {i} is an error: {item.error}")
        need(item.response is not None and (item.response.text or "").strip() != "",
             f"response {i} has no text")
    names = [b.name for b in c.batches.list()]
    need(job.name in names, f"list holds {names}, not {job.name}")
    c.batches.delete(name=job.name)
    api_error(lambda: c.batches.get(name=job.name), errors.ClientError, 404)


# ---- streaming ----


def check_streaming(c):
    chunks = list(c.models.generate_content_stream(model=FLASH, contents=STREAM_PROMPT))
    need(len(chunks) >= 2, f"{len(chunks)} chunks, wanted 2 or more")
    streamed = "".join(ch.text or "" for ch in chunks)
    whole = text_of(c.models.generate_content(model=FLASH, contents=STREAM_PROMPT))
    need(streamed == whole, f"the chunks make {streamed[:120]!r}..., the answer is {whole[:120]!r}...")
    last = chunks[-1]
    need(last.candidates and last.candidates[0].finish_reason == types.FinishReason.STOP,
         "the last chunk has no finish_reason STOP")
    need(last.usage_metadata and (last.usage_metadata.candidates_token_count or 0) > 0,
         "the last chunk has no candidates_token_count")


# ---- models ----


def check_models(c):
    listed = list(c.models.list())
    names = [m.name for m in listed]
    need(f"models/{FLASH}" in names, f"list holds {names}")
    m = c.models.get(model=FLASH)
    need(m.name == f"models/{FLASH}", f"get answered {m.name!r}")
    need((m.input_token_limit or 0) > 0, f"input_token_limit {m.input_token_limit}")
    api_error(lambda: c.models.get(model="gemini-no-such-model"), errors.ClientError, 404)


def embedding_model(c):
    """The first listed model that embeds, else EMBED_FALLBACK."""
    try:
        for m in c.models.list():
            actions = m.supported_actions or []
            if "embedContent" in actions or "batchEmbedContents" in actions:
                return m.name.removeprefix("models/")
    except errors.APIError:
        pass
    return EMBED_FALLBACK


def check_embed_content(c):
    model = embedding_model(c)
    texts = ["The invoice is overdue.", "The receipt was emailed.", "Refunds take five days."]
    r = c.models.embed_content(model=model, contents=texts)
    embs = r.embeddings or []
    need(len(embs) == len(texts), f"{len(embs)} embeddings for {len(texts)} contents ({model})")
    dims = {len(e.values or []) for e in embs}
    need(len(dims) == 1 and 0 not in dims, f"embedding sizes {sorted(dims)}")
    need(embs[0].values != embs[1].values, "two different texts embed to the same vector")


# ---- errors ----


def check_error_unknown_model(c):
    api_error(lambda: c.models.generate_content(model="gemini-no-such-model", contents="hi"),
              errors.ClientError, 404)


def check_error_pro_thinking_off(c):
    api_error(lambda: c.models.generate_content(
        model=PRO, contents="hi",
        config=types.GenerateContentConfig(thinking_config=types.ThinkingConfig(thinking_budget=0))),
        errors.ClientError, 400)


def check_error_budget_on_non_thinking(c):
    api_error(lambda: c.models.generate_content(
        model=NO_THINKING, contents="hi",
        config=types.GenerateContentConfig(thinking_config=types.ThinkingConfig(
            thinking_budget=THINKING_BUDGET))),
        errors.ClientError, 400)


def check_error_unknown_field(c):
    # The SDK's config types refuse unknown fields themselves; extra_body is its own way of
    # sending fields it does not know, merged into the request body as is.
    extra = types.HttpOptions(extra_body={"sdkConformanceUnknownField": True})
    api_error(lambda: c.models.generate_content(
        model=FLASH, contents="hi", config=types.GenerateContentConfig(http_options=extra)),
        errors.ClientError, 400)


def check_error_429(c):
    e = api_error(lambda: c.models.generate_content(model=FLASH, contents="hi"),
                  errors.ClientError, 429)
    need(e.status == "RESOURCE_EXHAUSTED", f"status {e.status!r}")


def check_error_503(c):
    e = api_error(lambda: c.models.generate_content(model=FLASH, contents="hi"),
                  errors.ServerError, 503)
    need(e.status == "UNAVAILABLE", f"status {e.status!r}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--base-url", required=True)
    ap.add_argument("--errors-url", required=True)
    ap.add_argument("--url-429", required=True)
    ap.add_argument("--url-503", required=True)
    args = ap.parse_args()
    ok_c, err_c = client_for(args.base_url), client_for(args.errors_url)
    checks = [
        ("generate_plain", check_generate_plain, ok_c),
        ("generate_response_schema", check_generate_response_schema, ok_c),
        ("generate_response_json_schema", check_generate_response_json_schema, ok_c),
        ("generate_function_call", check_generate_function_call, ok_c),
        ("generate_thinking", check_generate_thinking, ok_c),
        ("generate_stop_sequences", check_generate_stop_sequences, ok_c),
        ("generate_candidate_count", check_generate_candidate_count, ok_c),
        ("function_round_trip", check_function_round_trip, ok_c),
        ("count_tokens", check_count_tokens, ok_c),
        ("caches", check_caches, ok_c),
        ("batches", check_batches, ok_c),
        ("streaming", check_streaming, ok_c),
        ("models", check_models, ok_c),
        ("embed_content", check_embed_content, ok_c),
        ("error_unknown_model_404", check_error_unknown_model, err_c),
        ("error_pro_thinking_budget_0_400", check_error_pro_thinking_off, err_c),
        ("error_budget_on_non_thinking_model_400", check_error_budget_on_non_thinking, err_c),
        ("error_unknown_field_400", check_error_unknown_field, err_c),
        ("error_fault_429", check_error_429, client_for(args.url_429)),
        ("error_fault_503", check_error_503, client_for(args.url_503)),
    ]
    failed = 0
    for name, fn, client in checks:
        try:
            fn(client)
            print(f"ok {name}", flush=True)
        except Check as e:
            failed += 1
            print(f"FAIL {name}: {e}", flush=True)
        except Exception as e:  # the SDK's own errors say what the simulator did wrong
            failed += 1
            where = traceback.extract_tb(e.__traceback__)[-1]
            msg = " ".join(str(e).split())[:400]
            print(f"FAIL {name}: {type(e).__name__}: {msg} (at {where.name}:{where.lineno})",
                  flush=True)
    print(f"conformance: {len(checks) - failed} passed, {failed} failed", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
