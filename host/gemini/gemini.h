/* gemini.h - Gemini REST client on one libcurl multi event loop: many concurrent
 * generateContent calls, HTTP/2 where offered, retries with backoff, per-call deadlines, and
 * per-model rate limits, 429 throttling (AIMD) and a circuit breaker on sustained 5xx. */
#ifndef SC_GEMINI_H
#define SC_GEMINI_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "host/core/message.h"
#include "host/core/status.h"

typedef struct sc_gemini sc_gemini_t;

typedef struct {
    const char *base_url;    /* e.g. "https://generativelanguage.googleapis.com" (no trailing /) */
    const char *api_key;     /* sent as x-goog-api-key only; never logged */
    long connect_timeout_ms; /* per attempt */
    long request_timeout_ms; /* per attempt, whole transfer */
    int max_inflight;        /* concurrent calls accepted by submit (running + waiting to retry) */
    int max_attempts;        /* total attempts per call, >= 1 */
    long backoff_initial_ms; /* first retry delay; doubles each attempt */
    long backoff_max_ms;     /* cap on one delay (also caps RetryInfo) */
    long backoff_jitter_ms;  /* uniform random [0, jitter] added to each delay */
    int http2;               /* ask for HTTP/2 (over TLS: ALPN; plain http: prior knowledge off) */
    unsigned seed;           /* jitter seed */
    /* Circuit breaker, per model: after breaker_failures consecutive 500/502/503/504/transport
     * failures the model's calls wait (unsent) for breaker_cooldown_ms; then one probe attempt
     * is sent: success closes the breaker, failure re-opens it with the cooldown doubled up to
     * breaker_max_cooldown_ms. */
    int breaker_failures;         /* >= 1; default 20 */
    long breaker_cooldown_ms;     /* >= 1; default 5000 */
    long breaker_max_cooldown_ms; /* >= breaker_cooldown_ms; default 60000 */
} sc_gemini_opts_t;

/*
 * A model's limits; 0 = unlimited for each. rpm and tpm are token buckets refilled continuously
 * whose capacity is one second of the rate (at least one request / one request's tokens), so a
 * burst after an idle spell is at most rpm/60 requests and tpm/60 tokens.
 */
#define SC_GEMINI_CONCURRENCY_LIMIT 65536 /* upper bound accepted for max_concurrency */

typedef struct {
    double rpm;          /* requests per minute */
    double tpm;          /* prompt tokens per minute, from sc_gemini_call_t.est_tokens */
    int max_concurrency; /* attempts of this model on the wire at once */
} sc_gemini_limits_t;

/* A model's counters and state, for tests and metrics. */
typedef struct {
    uint64_t requests_started; /* attempts sent */
    uint64_t throttled_429;    /* 429 answers */
    uint64_t breaker_opens;    /* times the breaker opened (re-opens after a probe included) */
    double rate_rpm_now;       /* request rate limit in force (configured or adaptive); 0: none */
    double rate_rpm_min;       /* lowest limit in force so far; 0 = never limited */
    int64_t pause_ms_left;     /* model-wide pause after a 429 still to run; 0 = none */
    int breaker_open;          /* 1 while open or half-open */
    int waiting;               /* calls queued behind the model's limits, pause or breaker */
    int running;               /* attempts on the wire */
} sc_gemini_model_stats_t;

/* Fill opts with the defaults of DESIGN §8 / gemini-api.md §6.3. base_url and api_key NULL. */
void sc_gemini_opts_default(sc_gemini_opts_t *opts);

/* One generateContent call. The caller fills the "in" fields, submits it, and gets it back
 * through the done callback of sc_gemini_poll() with the "out" fields set. */
typedef struct sc_gemini_call {
    /* ---- in ---- */
    char model[128];      /* model id, e.g. "gemini-2.5-flash" */
    char *body;           /* request JSON; owned by the call, freed by sc_gemini_call_free() */
    size_t body_len;
    int64_t deadline_ms;  /* absolute, sc_now_ms() clock; 0 = none */
    long est_tokens;      /* estimated prompt tokens (~chars/4) for the model's tpm; 0 = unknown */
    void *opaque;         /* the caller's */
    /* ---- out ---- */
    sc_status_t status;   /* SC_OK, or the SC_ERR_UPSTREAM_* / SC_ERR_DEADLINE family */
    long http_status;     /* last HTTP status (0: no response) */
    int attempts;
    char *text;           /* concatenated non-thought parts; "" when none. owned */
    char *finish_reason;  /* e.g. "STOP"; NULL when absent. owned */
    char *model_version;  /* owned, may be NULL */
    char *response_id;    /* owned, may be NULL */
    char *block_reason;   /* promptFeedback.blockReason, owned, may be NULL */
    sc_usage_t usage;
    json_t *candidates;   /* owned: the response's candidates as Gemini sent them (every part,
                           * finish reason, safety ratings, citation and grounding metadata);
                           * NULL when none */
    json_t *usage_meta;   /* owned: its usageMetadata (token details per modality); NULL: none */
    char err_status[40];  /* Google status string of the last error, e.g. "RESOURCE_EXHAUSTED" */
    char *err_message;    /* owned, may be NULL */
    int64_t started_ms, finished_ms;
    /* ---- private to the client ---- */
    void *priv;
} sc_gemini_call_t;

/* @remark the caller frees with sc_gemini_call_free(); the call must not be in flight. */
sc_gemini_call_t *sc_gemini_call_new(const char *model, char *body_owned, size_t body_len);
void sc_gemini_call_free(sc_gemini_call_t *call); /* NULL ok; frees body and outputs */

/*
 * Build the generateContent JSON body (camelCase) for a request: systemInstruction, contents,
 * generationConfig. @remark the caller frees the result with free(); NULL on allocation failure.
 */
char *sc_gemini_body_from_request(const sc_request_t *req, size_t *len);

/* The same body with other contents (e.g. a pruned history): systemInstruction and
 * generationConfig from req, contents as given. contents (a JSON array) is stolen: its
 * reference is released even on failure. @remark the caller frees the result with free(). */
char *sc_gemini_body_with_contents(const sc_request_t *req, json_t *contents, size_t *len);

/* The body for a request whose system prompt lives in an explicit cache (host/gemini/prompt_cache.h):
 * contents and generationConfig from req, "cachedContent": cache_name ("cachedContents/{id}"),
 * and no systemInstruction (a 400 beside cachedContent, gemini-api.md §1.4). NULL when
 * cache_name is NULL or empty, or on allocation failure. @remark the caller frees with free(). */
char *sc_gemini_body_with_cache(const sc_request_t *req, const char *cache_name, size_t *len);

/* One Content object {"role": role, "parts": [{"text": text}]} (no "role" when role is NULL).
 * New reference; NULL on allocation failure or when text (len bytes) is not valid UTF-8. */
json_t *sc_gemini_content_new(const char *role, const char *text, size_t len);

sc_status_t sc_gemini_new(const sc_gemini_opts_t *opts, sc_gemini_t **out, char *errbuf,
                          size_t errlen);
/* Aborts and frees the calls still in flight (their opaque pointers are not touched); drain
 * with sc_gemini_poll() first to get them back. NULL ok. */
void sc_gemini_free(sc_gemini_t *g);

/* Hand a call to the client. SC_ERR_FULL when max_inflight calls are already in flight, or
 * when the call's model would exceed the number of models one client tracks (the call stays
 * the caller's). The call starts at once unless its model's limits hold it back (see
 * sc_gemini_set_model_limits). On SC_OK the client owns the call until it is passed to the done
 * callback. Must be called from the thread that calls sc_gemini_poll(). */
sc_status_t sc_gemini_submit(sc_gemini_t *g, sc_gemini_call_t *call);

/*
 * Set (or, with every field 0, clear) the limits of model. A call that its model's limits,
 * 429 pause or open breaker hold back waits in the model's FIFO inside the client: it stays in
 * flight, is not failed, and ends SC_ERR_DEADLINE if its deadline passes while it waits.
 * SC_ERR_INVALID_ARG on a bad model id or a negative / non-finite limit; SC_ERR_FULL when the
 * client already tracks its maximum number of models. Call from the sc_gemini_poll() thread.
 */
sc_status_t sc_gemini_set_model_limits(sc_gemini_t *g, const char *model,
                                       const sc_gemini_limits_t *lim);

/* Fill out with model's counters and state (all zero for a model the client has not seen). */
void sc_gemini_model_stats(const sc_gemini_t *g, const char *model, sc_gemini_model_stats_t *out);

/* Calls submitted and not yet finished (running, waiting for a retry, or waiting behind their
 * model's limits). */
int sc_gemini_inflight(const sc_gemini_t *g);

typedef void (*sc_gemini_done_cb)(sc_gemini_call_t *call, void *arg);

/* Run the event loop once: wait up to timeout_ms for network activity, a due retry, the moment
 * a waiting call may start (bucket refill, pause or cooldown end), a deadline or a wakeup, make
 * progress, and pass every finished call (success or final failure) to done, which
 * takes ownership of it. */
sc_status_t sc_gemini_poll(sc_gemini_t *g, int timeout_ms, sc_gemini_done_cb done, void *arg);

/* Interrupt a sc_gemini_poll() that is waiting. Safe from any thread. */
void sc_gemini_wakeup(sc_gemini_t *g);

/* Submit one call and poll until it finishes (for tools and tests). */
sc_status_t sc_gemini_call_sync(sc_gemini_t *g, sc_gemini_call_t *call);

/* Fill call's out fields (text, finish_reason, usage, …) from a GenerateContentResponse object
 * (borrowed), as a Batch Mode result carries it. 0, or -1 when it is not a usable response. */
int sc_gemini_response_from_json(sc_gemini_call_t *call, json_t *resp);

/* The answer text of a candidate object (borrowed): its non-thought text parts, concatenated.
 * @remark the caller frees with free(); "" when none; NULL on allocation failure. */
char *sc_gemini_candidate_text(const json_t *candidate);

/* 1 when any candidate of cands (an array, borrowed; NULL ok) holds a functionCall part. */
int sc_gemini_has_function_call(const json_t *cands);

/* A quick reachability check: open (and close) a connection to base_url within timeout_ms.
 * SC_OK or SC_ERR_UPSTREAM_TRANSPORT with the reason in errbuf. */
sc_status_t sc_gemini_probe(const char *base_url, long timeout_ms, char *errbuf, size_t errlen);

#endif
