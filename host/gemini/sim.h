/* sim.h - a local server that speaks the Gemini REST API (gemini-api.md) for the demo,
 * the tests and the benchmarks, with seeded fault injection. */
#ifndef SC_GEMINI_SIM_H
#define SC_GEMINI_SIM_H

#include <stddef.h>

#include "host/core/status.h"

typedef struct sc_gemini_sim sc_gemini_sim_t;

typedef struct {
    const char *host;    /* listen address, default "127.0.0.1" when NULL */
    int port;            /* 0 = any free port */
    const char *api_key; /* NULL: any non-empty key is accepted; else only this one */
    const char *faults;  /* fault spec (see below), NULL or "" for none */
    unsigned threads;    /* HTTP worker threads, 0 = default (4) */
    /* Batch Mode (gemini-api.md §5): a batch is PENDING for batch_pending_ms after its creation,
     * then RUNNING for batch_running_ms, then terminal. 0 = the default (200 and 500 ms); at most
     * SC_GEMINI_SIM_BATCH_DELAY_MS_MAX each. */
    unsigned batch_pending_ms;
    unsigned batch_running_ms;
    /* Context caching (gemini-api.md §4): the smallest cachedContents accepted, in tokens, for
     * every model; smaller ones get the 400 "Cached content is too small. total_token_count=N,
     * min_total_token_count=M". 0 = per model: 4096 for the pro models, 1024 for the others
     * (the Dec 2025 - Mar 2026 table of §4.5). At most SC_GEMINI_SIM_CACHE_MIN_TOKENS_MAX. */
    unsigned cache_min_tokens;
    const char *quality; /* quality spec (see below), NULL or "" for none: answers as before */
    /* Truth file (see "Truth file" below): NULL or "" for none; only with a quality spec. */
    const char *quality_truth;
    /* Request log (see "Record" below): NULL or "" for none; created or truncated at start. */
    const char *record;
} sc_gemini_sim_opts_t;

#define SC_GEMINI_SIM_BATCH_DELAY_MS_MAX   172800000u /* 48 h: when real batches expire */
#define SC_GEMINI_SIM_CACHE_MIN_TOKENS_MAX 1048576u   /* 1M tokens: the largest context */
#define SC_GEMINI_SIM_TRUTH_LINES_MAX      1000000u   /* entries of a truth file */
#define SC_GEMINI_SIM_TRUTH_TEXT_MAX       1048576u   /* bytes of one truth text (1 MiB) */
#define SC_GEMINI_SIM_EMBED_DIMS           768u       /* values of an embedding by default */

/*
 * Fault spec: comma-separated key=value pairs, e.g.
 *   "429=0.1,503=0.05,500=0.02,malformed=0.01,delay=0.2,delay_ms=50,seed=7,retry_delay=0.2s"
 * 429/500/503/malformed: the share of generateContent requests answered that way;
 * delay: share delayed by delay_ms; seed: the PRNG seed; retry_delay: RetryInfo.retryDelay on
 * 429s; max_per_request=N: one request body is failed at most N times (default 2), so faults are
 * transient as real ones are. Two faults break the connection instead of answering an error:
 *   reset=RATE     share of generateContent and streamGenerateContent requests whose connection
 *                  is closed without any HTTP response (a client sees an empty reply, curl's
 *                  CURLE_GOT_NOTHING); no status is counted in "responses", nothing is billed;
 *   truncate=RATE  share answered 200 with the Content-Length of the whole answer of which only
 *                  the first half (floor) is sent before the connection is closed (curl's
 *                  CURLE_PARTIAL_FILE); counted as a 200 in "responses", not billed.
 * (malformed, by contrast, sends half the body with a Content-Length that matches it: the HTTP
 * exchange is whole and only the JSON is cut.) 429, 500, 503, malformed, reset and truncate are
 * one draw of the seeded PRNG over their summed shares (at most 1), all capped by
 * max_per_request and counted by kind in /sim/stats "faults". refuse=RATE: the share of the cheaper models' answers (not
 * "-pro") that are bad in a way a cascade must catch: a text answer becomes a refusal, a
 * schema-bound answer "[]", a function call names an undeclared function (every other one) or
 * gets arguments of the wrong type. Unknown keys or rates outside 0..1 are an error.
 * Batch Mode keys, all decided at batch creation with the same seeded PRNG:
 *   batch_error=RATE   share of the requests in a batch answered with an error entry (500
 *                      INTERNAL) instead of a response;
 *   batch_fail=RATE    share of batches that end BATCH_STATE_FAILED with a top-level error;
 *   batch_expire=RATE  share of batches that end BATCH_STATE_EXPIRED (batch_fail+batch_expire
 *                      at most 1);
 *   job_state_prefix=1 states are written JOB_STATE_* (as in the docs) instead of BATCH_STATE_*.
 */
/*
 * Quality spec (off unless given): comma-separated key=value pairs, e.g.
 *   "lite=0.35,cheap=0.6,strong=0.9,summary_loss=0,seed=1"   (these are the defaults; "on" alone
 *   turns the mode on with them). lite/cheap/strong: the capability of each tier, 0..1 (lite = the
 *   models whose name holds "flash-lite", cheap = the other "flash" models, strong = the rest:
 *   pro); summary_loss: the share of identifier tokens a summary drops, 0..1; seed: the drops'
 *   seed. Unknown keys, or values out of range, are an error naming the key.
 *
 * Difficulty. P = the text of the last user turn of contents (role "user", "" or absent): its
 * text parts joined by "\n". N = P as UTF-8 bytes with A-Z lower-cased (other bytes kept), every
 * run of the ASCII whitespace " \t\n\r\v\f" collapsed to one space, none leading or trailing.
 * H = FNV-1a 64 of N (offset 0xcbf29ce484222325, prime 0x100000001b3). difficulty = (H >> 11) *
 * 2^-53, in [0, 1). In Python:
 *   n = b" ".join(p.encode("utf-8").lower().split())
 *   h = 0xcbf29ce484222325
 *   for c in n: h = ((h ^ c) * 0x100000001b3) % 2**64
 *   difficulty = (h >> 11) / 2**53
 * A model answers RIGHT when its tier's capability >= difficulty. GET /sim/difficulty?text=T
 * (no key needed) answers {"difficulty", "fnv" (H, 16 hex digits), "kind", "right_answer",
 * "quality" (false when the mode is off), and with it on "capability" and "right" per tier}.
 *
 * Final answer. With the mode on every ordinary answer ends with the line "Final answer: X"
 * (JSON answers, responseMimeType application/json: the "answer" string ends with it). X is
 * [A-Za-z0-9]+. V = splitmix64(H), the first output of the stream whose state is H:
 *   state += 0x9e3779b97f4a7c15; z = state; z = (z ^ z>>30) * 0xbf58476d1ce4e5b9;
 *   z = (z ^ z>>27) * 0x94d049bb133111eb; V = z ^ z>>31   (all mod 2^64).
 * The kind of P, in this order:
 *   choice: K >= 2, where K is the largest count such that each of the letters A.. (K of them)
 *           opens a line of P ("A." or "A)" or "(A)" after optional spaces or tabs, then a space, a
 *           tab or the end of the line); the options are the letters A..A+K-1, X a letter;
 *   number: P holds an ASCII digit; the options are the integers 0..999 in decimal;
 *   word:   otherwise; the options are amber basil cedar delta ember fjord garnet harbor indigo
 *           jasper kelp lumen maple nectar onyx pebble.
 * With K options, the right X is option V % K. A wrong model answers option (V % K + 1 + W %
 * (K - 1)) % K, W = splitmix64(FNV-1a 64 of the model's name continued from H): never the right
 * one, and two wrong models usually differ.
 *
 * Judge. A request whose systemInstruction text starts with "scrimp-judge", sent to a strong-tier
 * model: generationConfig.responseMimeType must be "application/json" (a responseSchema is
 * accepted and not checked), and the last user turn must be a JSON object with exactly the string
 * members "prompt", "answer_a" and "answer_b". An answer's final answer is the [A-Za-z0-9]+ run
 * after the last "Final answer:" (and spaces) in it; none when absent. The verdict is the text
 *   {"a_correct":bool,"b_correct":bool,"agree":bool}
 * (x_correct: its final answer is the prompt's right X; agree: both have one and they are equal).
 * A malformed judge request is answered 200 with the deterministic, non-JSON text
 * "Verdict unavailable: malformed judge request (REASON)." so that a caller's "unparseable is no
 * evidence" rule can be tested. A judge request to a lite or cheap model is answered as an
 * ordinary prompt (its answer holds no "a_correct": not a verdict). Verdicts are not counted as
 * right or wrong.
 *
 * Summaries. A request whose systemInstruction text starts with "You maintain a running summary"
 * (scrimp's pruning summary call) is answered "Simulated summary: T1; T2; ...." with the distinct
 * identifier-like tokens of its last user turn, in order, verbatim. A token is a run of letters,
 * digits and @ . _ + - / : (and ',' between two digits), with . : - / trimmed from both ends; it is
 * identifier-like when it holds a digit or '@', or has an upper-case letter after its first
 * byte, or is a capitalised word of 2+ bytes that does not open a line or follow . ! ? . Each is
 * dropped when (splitmix64(seed ^ FNV-1a 64 of the token) >> 11) * 2^-53 < summary_loss: 0 keeps
 * all, 1 drops all ("Simulated summary: (nothing kept)."). Summaries carry no final answer.
 * Requests through cachedContent are judged and summarised only by their own systemInstruction.
 *
 * Truth file (opts.quality_truth, only with the quality mode on): JSONL, one object per line with
 * exactly the members "text" (a string of at most SC_GEMINI_SIM_TRUTH_TEXT_MAX bytes) and "right"
 * (an object whose members, each optional, are "lite", "cheap" and "strong", booleans), e.g.
 *   {"text": "Which one?\nA. x\nB. y", "right": {"lite": true, "strong": false}}
 * Lines holding only whitespace are skipped; at most SC_GEMINI_SIM_TRUTH_LINES_MAX lines. For an
 * ordinary answer whose last user turn, normalised to N as for the difficulty, equals a line's
 * text normalised the same way, a tier named in its "right" is right or wrong as the file says;
 * a tier it does not name, and every prompt not in the file, keeps capability >= difficulty.
 * Nothing else changes: the right X, a wrong model's option (so two tiers still agree exactly
 * when both are right), the judge (it checks each final answer against the right X, so its
 * verdicts follow the file) and the counters. Two lines with the same N are one entry when they
 * agree and an error when a tier differs. A line that is not such an object, an unreadable file
 * or more lines than the bound make sc_gemini_sim_start fail with the line number in errbuf.
 * With the mode on GET /sim/difficulty also answers "truth" (whether the text is in the file;
 * false without one), and its "right" is the decision above; /sim/stats "quality" gains
 * "truth_lines" (distinct texts held) and "truth_hits" (ordinary answers whose prompt was in the
 * file).
 *
 * Record (opts.record): the file is created or truncated at start (failing that, start fails);
 * every generateContent or streamGenerateContent call that reaches its handler (past the key
 * check and the body size limit; whatever it is answered, injected faults included) appends one
 * line
 *   {"model":"<the {model} of the path>","body":<the request body>}
 * "body" is the body itself when it is JSON (as sent, its line breaks, which JSON allows only
 * outside strings, turned into spaces), else the raw body as a JSON string (when it is not UTF-8
 * either, its bytes above 0x7f become '?'). Each line is written whole under a mutex and
 * flushed. Batch Mode's inline requests (batchGenerateContent) are not recorded as bodies; each
 * batch created appends instead
 *   {"batch":"batches/<id>","model":"<model>","keys":[<metadata.key of each request, or null>]}
 * so a test can count every request paid in a batch by its key.
 */
/*
 * Routes (gemini-api.md §0; every /v1beta path is served under /v1 as well, the version
 * google-genai 3.x calls unless told otherwise): models/{model}:generateContent,
 * :streamGenerateContent, :countTokens, :batchGenerateContent, :embedContent,
 * :batchEmbedContents; GET models and models/{model}; batches and cachedContents (§4, §5);
 * /sim/stats and /sim/difficulty (no key).
 *
 * The API's rules. Every generateContent and streamGenerateContent body, countTokens'
 * generateContentRequest (whose "model" is required; the plain form takes only "contents"), every
 * inline request of a batch and the contents, systemInstruction, tools and toolConfig of a
 * cachedContents create are checked by sc_genreq_normalize (host/core/genreq.h) and, for the
 * model of the path, sc_genreq_check_model (thinking: no budget or includeThoughts on the 2.0
 * models, no budget 0 on 2.5-pro, budgets within each model's range). A failure is a 400
 * INVALID_ARGUMENT whose message is genreq's reason, after "Invalid JSON payload received. " for
 * an unknown field (a batch request: its error entry). The answer is computed from the normalised
 * copy, so a snake_case body is answered exactly as its camelCase twin. Other top-level names of
 * countTokens, embedContent, batchEmbedContents and cachedContents bodies: the API's 400
 * 'Invalid JSON payload received. Unknown name "x": Cannot find field.'.
 *
 * generationConfig. candidateCount (1..8): that many candidates, index 0..n-1; the first is the
 * answer without candidateCount, the others variants seeded by the last user turn and their index;
 * candidatesTokenCount sums them, thoughtsTokenCount is the request's. responseSchema (Gemini
 * Schema) or responseJsonSchema (JSON Schema), with responseMimeType application/json (or
 * text/x.enum for responseSchema): the text is sc_jschema_instance of the schema seeded by the
 * candidate's seed, compact JSON (text/x.enum: a string instance as it is). stopSequences: the
 * text is cut before the first occurrence of any (finishReason STOP), then maxOutputTokens cuts
 * (MAX_TOKENS). thinkingConfig.includeThoughts on a request that thinks: a first part
 * {"text": <a short summary>, "thought": true} in each candidate, not counted as candidates.
 * With the quality mode on, the first candidate is the quality mode's text (a schema is not
 * followed there).
 *
 * Function calling. With tools[].functionDeclarations and toolConfig.functionCallingConfig.mode
 * not NONE, when the last content is a user turn of text without functionResponse parts (mode
 * ANY: whatever it is), each candidate is one part {"functionCall": {"name", "args"}}
 * (finishReason STOP): the declaration (with mode ANY or VALIDATED and allowedFunctionNames, only
 * among those) whose name and description share the most words (3+ letters, a few stop words
 * left out, names split at '_' and camelCase) with the last user text, the first on a tie; args
 * sc_jschema_instance of its parameters (or parametersJsonSchema) seeded by that text, with the
 * first 'quoted' word of the text, else its first capitalised word that does not open a sentence
 * (with the capitalised words after it: "New York"), put into the first string property where the
 * args stay valid. When the last user turn holds functionResponse parts the answer is text:
 * "Simulated answer from M using the function results: NAME returned {compact response}; ..."
 * and words seeded by the results. allowedFunctionNames outside mode ANY or VALIDATED, or naming
 * no declaration, duplicate or malformed declarations, and a functionResponse that answers no
 * functionCall of its name in the model turn right before it: 400 INVALID_ARGUMENT. A cache's
 * tools and toolConfig are those of the requests through it.
 *
 * streamGenerateContent: generateContent's validation, faults and answer, as chunks: each text in
 * 2..4 pieces (fewer when shorter; never inside a UTF-8 sequence), the thought summary in the
 * first chunk, a function call whole in the last; finishReason and the whole usageMetadata only
 * on the last chunk, the others {promptTokenCount, totalTokenCount} of the prompt alone;
 * modelVersion and responseId on every chunk. With ?alt=sse the body is "data: <chunk>\r\n\r\n"
 * per chunk (Content-Type text/event-stream), else one JSON array of the chunks. Errors come
 * before any chunk, as JSON error bodies.
 *
 * Models and embeddings. GET models (pageSize, pageToken: the index of the next model) lists the
 * Model resources of the five generation models (supportedGenerationMethods generateContent,
 * countTokens, createCachedContent, batchGenerateContent; "thinking" whether the model can think)
 * and of gemini-embedding-001 and text-embedding-004 (embedContent, batchEmbedContents); GET
 * models/{model} one of them; an unknown model is a 404 NOT_FOUND. embedContent and
 * batchEmbedContents (at most 100 requests, each naming the model of the path) answer, for the
 * text parts of each content joined by "\n", the unit vector of SC_GEMINI_SIM_EMBED_DIMS (or
 * outputDimensionality, at most 3072 for gemini-embedding-001 and 768 for text-embedding-004)
 * Gaussian values drawn from splitmix64 seeded by its FNV-1a 64, normalised: the same text gives
 * the same vector, a shorter one is a longer one's prefix rescaled. A generation model does not
 * embed (400 INVALID_ARGUMENT).
 */
sc_status_t sc_gemini_sim_start(const sc_gemini_sim_opts_t *opts, sc_gemini_sim_t **out,
                                char *errbuf, size_t errlen);

/* The port the server listens on. */
int sc_gemini_sim_port(const sc_gemini_sim_t *sim);

/* Counters as JSON (the same document GET /sim/stats serves): requests, responses by HTTP
 * status, faults injected by kind, batches_created, batch_requests, duplicate_batch_keys (request
 * keys, metadata.key, seen in more than one created batch) and batch_keys_overflow (keys not
 * remembered because the key set was full); context caching: caches_created, caches_deleted
 * (by DELETE), caches_expired, caches_live, caches_too_small (creates refused for size),
 * cached_tokens_served (sum of cachedContentTokenCount answered) and storage_token_seconds (sum
 * over caches of tokens x seconds alive, create to delete or expiry, live ones up to now: what
 * storage is billed on). With the quality mode on, "quality": {right, wrong (per model),
 * judge_requests, judge_malformed, judge_declined (sent to a cheaper model), summaries,
 * summary_tokens_kept, summary_tokens_dropped, truth_lines, truth_hits}.
 * @remark the caller frees the string with free(). */
char *sc_gemini_sim_stats_json(sc_gemini_sim_t *sim);

/* The difficulty of a prompt text (len bytes), by the formula above. */
double sc_gemini_sim_difficulty(const char *text, size_t len);

/* Stop the server and free it. NULL ok. */
void sc_gemini_sim_stop(sc_gemini_sim_t *sim);

#endif
