/* batch.c - Batch Mode REST calls (create, get, list/find, cancel, delete) on one curl easy
 * handle, and the parsing of batch operations and their inlined results. */
#include "host/gemini/batch.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>
#include <jansson.h>

#include "host/core/log.h"
#include "host/core/util.h"

#define BATCH_URL_MAX 2048
#define BATCH_BODY_MAX ((size_t)512 << 20) /* a finished batch's results: bounded */
#define BATCH_LIST_PAGE 100
#define BATCH_LIST_PAGES_MAX 100
#define BATCH_KEY_MAX 256

struct sc_batch_client {
    CURL *easy;              /* owned */
    struct curl_slist *hdrs; /* owned */
    char *base_url;          /* owned */
    long timeout_ms;
    /* response of the last call */
    char *resp;
    size_t resp_len, resp_cap;
    int resp_overflow;
};

static const char *state_names[] = {"UNSPECIFIED", "PENDING", "RUNNING", "SUCCEEDED",
                                    "FAILED", "CANCELLED", "EXPIRED"};

int sc_batch_state_terminal(sc_batch_state_t s)
{
    return s == SC_BATCH_SUCCEEDED || s == SC_BATCH_FAILED || s == SC_BATCH_CANCELLED ||
           s == SC_BATCH_EXPIRED;
}

const char *sc_batch_state_name(sc_batch_state_t s)
{
    return (unsigned)s < SC_ARRAY_LEN(state_names) ? state_names[s] : "UNSPECIFIED";
}

sc_batch_state_t sc_batch_state_parse(const char *s)
{
    if (!s)
        return SC_BATCH_UNSPECIFIED;
    if (strncmp(s, "BATCH_STATE_", 12) == 0)
        s += 12;
    else if (strncmp(s, "JOB_STATE_", 10) == 0)
        s += 10;
    for (size_t i = 0; i < SC_ARRAY_LEN(state_names); i++)
        if (strcmp(s, state_names[i]) == 0)
            return (sc_batch_state_t)i;
    return SC_BATCH_UNSPECIFIED;
}

static const char *or_default(const char *s, const char *dflt)
{
    return s ? s : dflt;
}

/* ---- HTTP ---- */

static size_t write_cb(char *data, size_t size, size_t nmemb, void *userp)
{
    sc_batch_client_t *c = userp;
    size_t n = size * nmemb;
    if (c->resp_len + n + 1 > BATCH_BODY_MAX) {
        c->resp_overflow = 1;
        return 0;
    }
    if (c->resp_len + n + 1 > c->resp_cap) {
        size_t cap = c->resp_cap ? c->resp_cap : 65536;
        while (cap < c->resp_len + n + 1)
            cap *= 2;
        char *r = realloc(c->resp, cap);
        if (!r)
            return 0;
        c->resp = r;
        c->resp_cap = cap;
    }
    memcpy(c->resp + c->resp_len, data, n);
    c->resp_len += n;
    c->resp[c->resp_len] = '\0';
    return n;
}

sc_status_t sc_batch_client_new(const char *base_url, const char *api_key, long timeout_ms,
                                sc_batch_client_t **out, char *errbuf, size_t errlen)
{
    char hdr[1024];
    sc_batch_client_t *c = calloc(1, sizeof *c);
    if (!c)
        return SC_ERR_NOMEM;
    c->base_url = strdup(base_url);
    c->easy = curl_easy_init();
    snprintf(hdr, sizeof hdr, "x-goog-api-key: %s", api_key ? api_key : "");
    c->hdrs = curl_slist_append(NULL, "Content-Type: application/json");
    c->hdrs = c->hdrs ? curl_slist_append(c->hdrs, hdr) : NULL;
    if (!c->base_url || !c->easy || !c->hdrs) {
        snprintf(errbuf, errlen, "out of memory");
        sc_batch_client_free(c);
        return SC_ERR_NOMEM;
    }
    size_t bl = strlen(c->base_url);
    while (bl > 0 && c->base_url[bl - 1] == '/')
        c->base_url[--bl] = '\0';
    c->timeout_ms = timeout_ms;
    *out = c;
    return SC_OK;
}

void sc_batch_client_free(sc_batch_client_t *c)
{
    if (!c)
        return;
    if (c->easy)
        curl_easy_cleanup(c->easy);
    curl_slist_free_all(c->hdrs);
    free(c->base_url);
    free(c->resp);
    free(c);
}

/* One request. Returns SC_OK for 2xx, else the mapped status with the reason in errbuf;
 * *http gets the status code (0 when there was no response). The body stays in c->resp. */
static sc_status_t request(sc_batch_client_t *c, const char *method, const char *path,
                           const char *body, size_t body_len, long *http, char *errbuf,
                           size_t errlen)
{
    char url[BATCH_URL_MAX];
    snprintf(url, sizeof url, "%s%s", c->base_url, path);
    c->resp_len = 0;
    c->resp_overflow = 0;
    if (c->resp)
        c->resp[0] = '\0';
    curl_easy_reset(c->easy);
    curl_easy_setopt(c->easy, CURLOPT_URL, url);
    curl_easy_setopt(c->easy, CURLOPT_HTTPHEADER, c->hdrs);
    curl_easy_setopt(c->easy, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(c->easy, CURLOPT_WRITEFUNCTION, write_cb);
    curl_easy_setopt(c->easy, CURLOPT_WRITEDATA, c);
    curl_easy_setopt(c->easy, CURLOPT_TIMEOUT_MS, c->timeout_ms);
    curl_easy_setopt(c->easy, CURLOPT_CONNECTTIMEOUT_MS, c->timeout_ms < 10000 ? c->timeout_ms : 10000L);
    curl_easy_setopt(c->easy, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c->easy, CURLOPT_ACCEPT_ENCODING, "");
    curl_easy_setopt(c->easy, CURLOPT_PROTOCOLS_STR, "http,https");
    if (body) {
        curl_easy_setopt(c->easy, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(c->easy, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body_len);
    }
    CURLcode rc = curl_easy_perform(c->easy);
    *http = 0;
    if (rc != CURLE_OK) {
        snprintf(errbuf, errlen, "%s %s: %s%s", method, path, curl_easy_strerror(rc),
                 c->resp_overflow ? " (response too large)" : "");
        return c->resp_overflow ? SC_ERR_UPSTREAM_BAD_RESPONSE : SC_ERR_UPSTREAM_TRANSPORT;
    }
    curl_easy_getinfo(c->easy, CURLINFO_RESPONSE_CODE, http);
    if (*http >= 200 && *http < 300)
        return SC_OK;
    json_t *root = json_loadb(c->resp ? c->resp : "", c->resp_len, 0, NULL); /* new */
    json_t *err = json_object_get(root, "error");
    snprintf(errbuf, errlen, "%s %s: HTTP %ld %s: %s", method, path, *http,
             or_default(json_string_value(json_object_get(err, "status")), ""),
             or_default(json_string_value(json_object_get(err, "message")), ""));
    json_decref(root);
    if (*http == 408 || *http == 429 || *http >= 500)
        return SC_ERR_UPSTREAM_RETRYABLE;
    return *http == 404 ? SC_ERR_NOT_FOUND : SC_ERR_UPSTREAM_REJECTED;
}

/* ---- create ---- */

/* Append the JSON-escaped form of s to buf. */
static size_t put_json_string(char *buf, const char *s)
{
    json_t *j = json_string(s); /* new */
    size_t n = j ? json_dumpb(j, buf, buf ? (size_t)-1 >> 1 : 0, JSON_ENCODE_ANY) : 0;
    json_decref(j);
    return n;
}

/* Builds (buf != NULL) or sizes (buf == NULL) the create body. */
static size_t create_body(char *buf, const char *display_name, const sc_batch_item_t *items,
                          size_t n)
{
    size_t pos = 0;
#define PUT(s, len)                                                                              \
    do {                                                                                         \
        if (buf)                                                                                 \
            memcpy(buf + pos, (s), (len));                                                       \
        pos += (len);                                                                            \
    } while (0)
#define PUTS(s) PUT((s), strlen(s))
    PUTS("{\"batch\":{\"displayName\":");
    pos += put_json_string(buf ? buf + pos : NULL, display_name);
    PUTS(",\"inputConfig\":{\"requests\":{\"requests\":[");
    for (size_t i = 0; i < n; i++) {
        if (i)
            PUTS(",");
        PUTS("{\"request\":");
        PUT(items[i].body, items[i].body_len);
        PUTS(",\"metadata\":{\"key\":");
        pos += put_json_string(buf ? buf + pos : NULL, items[i].key);
        PUTS("}}");
    }
    PUTS("]}}}}");
#undef PUTS
#undef PUT
    return pos;
}

size_t sc_batch_request_size(const char *display_name, const sc_batch_item_t *items, size_t n)
{
    return create_body(NULL, display_name, items, n);
}

static void copy_name(json_t *op, char *name, size_t namelen)
{
    const char *s = json_string_value(json_object_get(op, "name"));
    if (!s)
        s = json_string_value(json_object_get(json_object_get(op, "metadata"), "name"));
    sc_strlcpy(name, s ? s : "", namelen);
}

sc_status_t sc_batch_create(sc_batch_client_t *c, const char *model, const char *display_name,
                            const sc_batch_item_t *items, size_t n, char *name, size_t namelen,
                            char *errbuf, size_t errlen)
{
    char path[512];
    long http;
    size_t len = create_body(NULL, display_name, items, n);
    char *body = malloc(len + 1);
    if (!body)
        return SC_ERR_NOMEM;
    create_body(body, display_name, items, n);
    body[len] = '\0';
    snprintf(path, sizeof path, "/v1beta/models/%s:batchGenerateContent", model);
    sc_status_t st = request(c, "POST", path, body, len, &http, errbuf, errlen);
    free(body);
    if (st)
        return st;
    json_t *op = json_loadb(c->resp, c->resp_len, 0, NULL); /* new */
    copy_name(op, name, namelen);
    json_decref(op);
    if (strncmp(name, "batches/", 8) != 0) {
        snprintf(errbuf, errlen, "create: the response names no batch");
        return SC_ERR_UPSTREAM_BAD_RESPONSE;
    }
    return SC_OK;
}

/* ---- get ---- */

static long long stat_count(json_t *stats, const char *key)
{
    json_t *v = json_object_get(stats, key); /* int64: a JSON string on the wire */
    if (json_is_string(v))
        return strtoll(json_string_value(v), NULL, 10);
    return json_is_integer(v) ? (long long)json_integer_value(v) : 0;
}

static void read_status(json_t *op, sc_batch_status_t *st)
{
    json_t *meta = json_object_get(op, "metadata"), *stats = json_object_get(meta, "batchStats");
    memset(st, 0, sizeof *st);
    st->state = sc_batch_state_parse(json_string_value(json_object_get(meta, "state")));
    st->done = json_is_true(json_object_get(op, "done"));
    st->requests = stat_count(stats, "requestCount");
    st->succeeded = stat_count(stats, "successfulRequestCount");
    st->failed = stat_count(stats, "failedRequestCount");
    st->pending = stat_count(stats, "pendingRequestCount");
    json_t *err = json_object_get(op, "error");
    if (err)
        snprintf(st->error, sizeof st->error, "%s: %s",
                 or_default(json_string_value(json_object_get(err, "status")), "error"),
                 or_default(json_string_value(json_object_get(err, "message")), ""));
}

/* A per-request error inside a batch: an HTTP-style code (408/429/5xx) or, as google.rpc.Status
 * writes it, a gRPC code (4 DEADLINE_EXCEEDED, 8 RESOURCE_EXHAUSTED, 13 INTERNAL, 14 UNAVAILABLE)
 * with or without the status string. */
static int item_error_retryable(long code, const char *status)
{
    static const char *transient[] = {"DEADLINE_EXCEEDED", "RESOURCE_EXHAUSTED", "INTERNAL",
                                      "UNAVAILABLE", "ABORTED"};
    for (size_t i = 0; status && i < SC_ARRAY_LEN(transient); i++)
        if (strcmp(status, transient[i]) == 0)
            return 1;
    if (status && status[0])
        return 0;
    return code == 408 || code == 429 || code >= 500 || code == 4 || code == 8 || code == 13 ||
           code == 14;
}

sc_gemini_call_t *sc_batch_parse_result(json_t *r, const char **key)
{
    *key = json_string_value(json_object_get(json_object_get(r, "metadata"), "key"));
    if (!*key)
        return NULL; /* every request was sent with a key: one without cannot be matched */
    sc_gemini_call_t *call = sc_gemini_call_new("batch", NULL, 0);
    if (!call)
        return NULL;
    call->attempts = 1;
    json_t *resp = json_object_get(r, "response"), *err = json_object_get(r, "error");
    if (resp && sc_gemini_response_from_json(call, resp) == 0) {
        call->status = SC_OK;
    } else {
        long code = (long)json_integer_value(json_object_get(err, "code"));
        const char *s = json_string_value(json_object_get(err, "status"));
        const char *m = json_string_value(json_object_get(err, "message"));
        call->http_status = code;
        call->status = !err || item_error_retryable(code, s) ? SC_ERR_UPSTREAM_RETRYABLE
                                                             : SC_ERR_UPSTREAM_REJECTED;
        sc_strlcpy(call->err_status, s ? s : "", sizeof call->err_status);
        call->err_message = strdup(m ? m : (err ? "batch item failed" : "unparseable response"));
    }
    return call;
}

static void deliver_results(json_t *op, sc_batch_result_cb cb, void *arg)
{
    json_t *out = json_object_get(op, "response");
    if (!out)
        out = json_object_get(json_object_get(op, "metadata"), "output");
    json_t *list = json_object_get(json_object_get(out, "inlinedResponses"), "inlinedResponses");
    size_t i;
    json_t *r;
    json_array_foreach(list, i, r) {
        const char *key = NULL;
        sc_gemini_call_t *call = sc_batch_parse_result(r, &key);
        if (call)
            cb(key, call, arg);
    }
}

sc_status_t sc_batch_parse_operation(const char *body, size_t len, sc_batch_status_t *st,
                                     sc_batch_result_cb cb, void *arg)
{
    json_t *op = json_loadb(body ? body : "", body ? len : 0, 0, NULL); /* new */
    sc_status_t rc = SC_ERR_UPSTREAM_BAD_RESPONSE;
    if (!json_is_object(op))
        goto out;
    read_status(op, st);
    if (st->done && cb && st->state == SC_BATCH_SUCCEEDED)
        deliver_results(op, cb, arg);
    rc = SC_OK;
out:
    json_decref(op);
    return rc;
}

sc_status_t sc_batch_get(sc_batch_client_t *c, const char *name, sc_batch_status_t *st,
                         sc_batch_result_cb cb, void *arg, char *errbuf, size_t errlen)
{
    char path[SC_BATCH_NAME_MAX + 16];
    long http;
    snprintf(path, sizeof path, "/v1beta/%s", name);
    sc_status_t rc = request(c, "GET", path, NULL, 0, &http, errbuf, errlen);
    if (rc)
        return rc;
    rc = sc_batch_parse_operation(c->resp, c->resp_len, st, cb, arg);
    if (rc)
        snprintf(errbuf, errlen, "GET %s: the response is not JSON", name);
    return rc;
}

/* ---- list / find, cancel, delete ---- */

sc_status_t sc_batch_find(sc_batch_client_t *c, const char *display_name, char *name,
                          size_t namelen, char *errbuf, size_t errlen)
{
    char path[1024], token[512] = "";
    long http;
    for (int page = 0; page < BATCH_LIST_PAGES_MAX; page++) {
        snprintf(path, sizeof path, "/v1beta/batches?pageSize=%d%s%s", BATCH_LIST_PAGE,
                 token[0] ? "&pageToken=" : "", token);
        sc_status_t rc = request(c, "GET", path, NULL, 0, &http, errbuf, errlen);
        if (rc)
            return rc;
        json_t *root = json_loadb(c->resp, c->resp_len, 0, NULL); /* new */
        size_t i;
        json_t *op;
        int found = 0;
        json_array_foreach(json_object_get(root, "operations"), i, op) {
            const char *dn = json_string_value(
                json_object_get(json_object_get(op, "metadata"), "displayName"));
            if (dn && strcmp(dn, display_name) == 0) {
                copy_name(op, name, namelen);
                found = 1;
                break;
            }
        }
        const char *next = json_string_value(json_object_get(root, "nextPageToken"));
        sc_strlcpy(token, next ? next : "", sizeof token);
        json_decref(root);
        if (found)
            return SC_OK;
        if (!token[0])
            break;
    }
    return SC_ERR_NOT_FOUND;
}

sc_status_t sc_batch_cancel(sc_batch_client_t *c, const char *name, char *errbuf, size_t errlen)
{
    char path[SC_BATCH_NAME_MAX + 16];
    long http;
    snprintf(path, sizeof path, "/v1beta/%s:cancel", name);
    return request(c, "POST", path, "{}", 2, &http, errbuf, errlen);
}

sc_status_t sc_batch_delete(sc_batch_client_t *c, const char *name, char *errbuf, size_t errlen)
{
    char path[SC_BATCH_NAME_MAX + 16];
    long http;
    snprintf(path, sizeof path, "/v1beta/%s", name);
    return request(c, "DELETE", path, NULL, 0, &http, errbuf, errlen);
}
