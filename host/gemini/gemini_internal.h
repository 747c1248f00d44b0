/* gemini_internal.h - internal to host/gemini/{gemini,request,response,limits}.c: the client's
 * structs (sc_gemini, sc_gem_priv_t, sc_gem_model_t) and the functions those files share. */
#ifndef SC_GEMINI_INTERNAL_H
#define SC_GEMINI_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include <curl/curl.h>
#include <jansson.h>

#include "host/gemini/gemini.h"

/* ---- sizes the structs and more than one file use ---- */

#define SC_GEMINI_BASE_URL_MAX 512                     /* base_url length */
#define SC_GEMINI_EASY_POOL_MAX 1024                   /* idle easy handles kept for reuse */
#define SC_GEMINI_MIN_ATTEMPT_MS 1L                    /* smallest CURLOPT_TIMEOUT_MS we set */
#define SC_GEMINI_MODELS_MAX 64                        /* distinct model ids one client tracks */
/* Observed request rate: attempts started in a ring of slots, SLOTS*SLOT_MS = 2 s window. */
#define SC_GEMINI_RATE_SLOT_MS 100
#define SC_GEMINI_RATE_SLOTS 20

/* ---- types ---- */

typedef enum {
    SC_GEM_IDLE = 0, /* not submitted */
    SC_GEM_RUNNING,  /* an attempt is on the multi handle */
    SC_GEM_WAITING,  /* in the timer list until due_ms */
    SC_GEM_QUEUED,   /* in its model's FIFO until the limits, pause and breaker let it go */
    SC_GEM_DONE,     /* finished, queued for the done callback */
} sc_gem_state_t;

typedef enum {
    SC_GEM_BREAKER_CLOSED = 0,
    SC_GEM_BREAKER_OPEN,      /* nothing is sent until open_until_ms */
    SC_GEM_BREAKER_HALF_OPEN, /* one probe attempt may be on the wire */
} sc_gem_breaker_t;

struct sc_gem_priv;

/* A token bucket refilled continuously at rate per minute; rate 0 = unlimited (not tracked). */
typedef struct {
    double rate;
    double tokens; /* may go below 0 after a request larger than the capacity */
    int64_t last_ms;
} sc_gem_bucket_t;

/* Everything the client keeps per model id: limits, buckets, AIMD, breaker, the FIFO. */
typedef struct {
    char name[128];
    sc_gemini_limits_t cfg;     /* configured; 0 = unlimited */
    sc_gem_bucket_t req, tok;   /* requests and prompt tokens per minute */
    double aimd_rpm;            /* adaptive limit after a 429; 0 = none */
    double aimd_ceiling_rpm;    /* the rate in force before the first cut: recovery ends there */
    double logged_rpm;          /* last rate written to the log */
    int64_t last_cut_ms, last_429_ms, pause_until_ms, last_log_ms;
    uint32_t slot_count[SC_GEMINI_RATE_SLOTS];
    int64_t slot_id[SC_GEMINI_RATE_SLOTS];
    sc_gem_breaker_t br_state;
    int br_failures;            /* consecutive, since br_first_ms */
    int64_t br_first_ms, br_open_until_ms;
    long br_cooldown_ms;        /* of the current / next opening */
    struct sc_gem_priv *br_probe; /* the half-open probe on the wire, borrowed */
    struct sc_gem_priv *q_head, *q_tail; /* FIFO of SC_GEM_QUEUED calls, borrowed */
    int n_waiting, n_running;
    uint64_t requests_started, throttled_429, breaker_opens;
    double rate_min;
} sc_gem_model_t;

/* Why an attempt failed, which picks the status after the last attempt. */
typedef enum {
    SC_GEM_FAIL_HTTP = 0,  /* retryable HTTP status */
    SC_GEM_FAIL_TRANSPORT, /* curl error */
    SC_GEM_FAIL_BAD,       /* 200 we could not parse */
} sc_gem_fail_t;

typedef struct sc_gem_priv {
    sc_gemini_call_t *call; /* back pointer, borrowed */
    sc_gem_state_t state;
    CURL *easy;             /* while running; owned by the client's pool */
    char *resp;             /* response body of the current attempt, owned */
    size_t resp_len, resp_cap;
    int resp_overflow;
    int deadline_capped; /* this attempt's timeout is what was left of the call's deadline */
    int64_t due_ms;         /* when waiting */
    int64_t attempt_ms;     /* when the current attempt started */
    sc_gem_model_t *model;  /* the client's entry for call->model, borrowed */
    struct sc_gem_priv *q_prev, *q_next; /* the model's FIFO while queued */
    char curl_err[CURL_ERROR_SIZE];
    struct sc_gem_priv *prev, *next; /* g->held: running and waiting calls */
    struct sc_gem_priv *done_next;   /* g->done queue */
} sc_gem_priv_t;

struct sc_gemini {
    sc_gemini_opts_t opts; /* base_url/api_key point at the owned copies below */
    char base_url[SC_GEMINI_BASE_URL_MAX];
    CURLM *multi;
    struct curl_slist *headers; /* shared by every attempt; holds the key, never logged */
    CURL *pool[SC_GEMINI_EASY_POOL_MAX]; /* idle easy handles */
    int n_pool;
    sc_gem_priv_t *held;                  /* running + waiting */
    sc_gem_priv_t *done_head, *done_tail; /* finished, not yet delivered */
    int n_inflight;                       /* held + done queue */
    uint64_t rng;
    sc_gem_model_t *models[SC_GEMINI_MODELS_MAX]; /* owned */
    int n_models;
};

/* ---- gemini.c: the client and its multi loop ---- */

/* 1 when model is a non-empty id of [A-Za-z0-9._-] (it goes into the URL path). */
int sc_gemini_model_ok(const char *model);
/* Append p to / take p out of its model's FIFO. */
void sc_gemini_enqueue(sc_gem_priv_t *p);
void sc_gemini_dequeue(sc_gem_priv_t *p);
/* Move a call to the done queue with its final status. */
void sc_gemini_finish(sc_gemini_t *g, sc_gem_priv_t *p, sc_status_t st);
/* Start one attempt on the multi handle; on failure the call is finished. */
void sc_gemini_start_attempt(sc_gemini_t *g, sc_gem_priv_t *p);
/* err_message = what, then "; last error: " and the previous err_message when there is one. */
void sc_gemini_err_ended(sc_gemini_call_t *call, const char *what);

/* ---- request.c: call objects ---- */

/* @remark the caller frees the result with free(); NULL on allocation failure. */
char *sc_gemini_strndup(const char *s, size_t n);
/* Free and zero the call's outputs (text, reasons, error, usage, times). */
void sc_gemini_call_clear_out(sc_gemini_call_t *call);
/* Set call->err_status and a copy of msg (at most SC_GEMINI_ERRMSG_MAX bytes) as err_message. */
void sc_gemini_set_err(sc_gemini_call_t *call, const char *status, const char *msg);

/* ---- response.c: response and error bodies ---- */

/* Fill the call's outputs from a 2xx body. 0, or -1 when the body is not a usable response. */
int sc_gemini_parse_ok(sc_gemini_call_t *call, const char *body, size_t len);
/* Read an error body into call->err_status / err_message. The RetryInfo delay in ms, or -1. */
long sc_gemini_parse_error(sc_gemini_call_t *call, long http, const char *body, size_t len);

/* ---- limits.c: per-model buckets, AIMD throttle, breaker, FIFO dispatch ---- */

/* Count an attempt start in the model's observed-rate ring. */
void sc_gemini_rate_note(sc_gem_model_t *m, int64_t now);
/* Drop the adaptive limit once its quiet period is over. */
void sc_gemini_aimd_tick(sc_gem_model_t *m, int64_t now);
/* A 429 on p's attempt: pause the model for delay ms and maybe cut its request rate. */
void sc_gemini_throttle_429(sc_gem_model_t *m, const sc_gem_priv_t *p, long delay, int64_t now);
/* A successful attempt: the adaptive limit grows back. */
void sc_gemini_throttle_ok(sc_gem_model_t *m, int64_t now);
/* The outcome of p's attempt for m's breaker (failed: 5xx or transport). */
void sc_gemini_breaker_result(sc_gemini_t *g, sc_gem_model_t *m, sc_gem_priv_t *p, int failed,
                              int64_t now);
/* The model entry for name (created when create is set; owned by g). NULL when absent / full. */
sc_gem_model_t *sc_gemini_model_get(sc_gemini_t *g, const char *name, int create);
/* Start what may start from m's FIFO; ms until its head may go (-1: an attempt end / empty). */
long sc_gemini_dispatch(sc_gemini_t *g, sc_gem_model_t *m, int64_t now);
/* Queue a call behind its model's limits and start what may start. */
void sc_gemini_admit(sc_gemini_t *g, sc_gem_priv_t *p, int64_t now);
/* Why the queued call p of m had not started when its deadline came (the breaker, a 429 pause,
 * the limits, or none of them: the time went before), as the start of its error message. */
const char *sc_gemini_hold_reason(sc_gem_model_t *m, const sc_gem_priv_t *p, int64_t now);

#endif /* SC_GEMINI_INTERNAL_H */
