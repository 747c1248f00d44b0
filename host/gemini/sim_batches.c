/* sim_batches.c - the simulator's Batch Mode (gemini-api.md §5): batches/{id} create, get, list,
 * cancel and delete, the state machine, the seeded batch faults, the Operation documents and the
 * metadata.key set behind duplicate_batch_keys. Also the timestamps and ids the caches share. */
#include <inttypes.h>
#include <jansson.h>
#include <microhttpd.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "host/core/util.h"
#include "host/gemini/sim_internal.h"

/* ---- limits ---- */

#define SC_SIM_BATCH_INLINE_MAX   ((size_t)20 * 1024 * 1024) /* inline bodies: < 20 MB */
#define SC_SIM_BATCH_REQUESTS_MAX 100000u  /* requests in one batch */
#define SC_SIM_BATCH_ITEMS_MAX    1000000u /* requests held over all batches; beyond: 429 */
#define SC_SIM_BATCH_KEYS_MAX     1000000u /* keys kept for duplicate_batch_keys */
#define SC_SIM_BATCH_KEYS_INITIAL 4096u    /* first key-set size in slots; a power of two */
#define SC_SIM_DISPLAY_NAME_MAX   512      /* longest accepted displayName, bytes */
#define SC_SIM_BATCH_PAGE_DEFAULT 50       /* pageSize when none is given */
#define SC_SIM_BATCH_PAGE_MAX     1000     /* larger pageSize values are clamped to this */
#define SC_SIM_TIME_MAX           40       /* "2025-12-03T17:23:06.004734302Z" plus room */
#define SC_SIM_BATCH_TYPE                                                                          \
    "type.googleapis.com/google.ai.generativelanguage.v1main.GenerateContentBatch"
#define SC_SIM_BATCH_OUTPUT_TYPE                                                                   \
    "type.googleapis.com/google.ai.generativelanguage.v1main.GenerateContentBatchOutput"

static const char *const sc_sim_batch_state_names[] = {"PENDING", "RUNNING",   "SUCCEEDED",
                                                       "FAILED",  "CANCELLED", "EXPIRED"};

/* ---- time, ids and Status objects ---- */

int64_t sc_sim_wall_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* RFC 3339, UTC, 9 fractional digits, as the API writes timestamps. */
static void sc_sim_rfc3339(int64_t ns, char *out, size_t outlen)
{
    if (ns < 0)
        ns = 0;
    time_t sec = (time_t)(ns / 1000000000);
    unsigned frac = (unsigned)(ns % 1000000000);
    struct tm tm;
    char base[SC_SIM_TIME_MAX];
    if (!gmtime_r(&sec, &tm) || strftime(base, sizeof base, "%Y-%m-%dT%H:%M:%S", &tm) == 0)
        sc_strlcpy(base, "1970-01-01T00:00:00", sizeof base);
    snprintf(out, outlen, "%.24s.%09uZ", base, frac % 1000000000u); /* 24 covers 5-digit years */
}

/* Free a batch and everything it owns. NULL ok. */
void sc_sim_batch_free(sc_sim_batch_t *b)
{
    if (!b)
        return;
    for (size_t i = 0; b->items && i < b->n; i++) {
        json_decref(b->items[i].metadata);
        json_decref(b->items[i].error);
        json_decref(b->items[i].request);
    }
    free(b->items);
    free(b->display_name);
    json_decref(b->output);
    free(b);
}

/* A google.rpc.Status as the brief of this simulator writes it: {code, message, status} with the
 * HTTP code (the same numbers the HTTP error bodies carry). @return a new reference or NULL. */
static json_t *sc_sim_status_obj(unsigned code, const char *status, const char *msg)
{
    return json_pack("{s:I, s:s, s:s}", "code", (json_int_t)code, "message", msg, "status", status);
}

/* The {code, message, status} of an error reply written by the validation code, so that a bad
 * request inside a batch gets the very error generateContent would answer.
 * @return a new reference or NULL when out of memory. */
static json_t *sc_sim_reply_to_status(const sc_sim_reply_t *r)
{
    json_t *doc = r->body ? json_loadb(r->body, r->len, 0, NULL) : NULL;
    json_t *out = json_deep_copy(json_object_get(doc, "error")); /* new or NULL */
    json_decref(doc);
    if (out)
        (void)json_object_del(out, "details");
    return out;
}

/* An id like the API's (lowercase letters and digits). The first 13 characters encode a
 * bijection of a counter, so ids never repeat within one sim; the rest is noise. */
void sc_sim_batch_id(sc_gemini_sim_t *sim, char out[SC_SIM_BATCH_ID_LEN + 1])
{
    static const char alphabet[] = "abcdefghijklmnopqrstuvwxyz0123456789";
    const uint64_t base = sizeof alphabet - 1;
    uint64_t n = atomic_fetch_add(&sim->id_counter, 1);
    uint64_t s1 = n, s2 = sim->id_nonce ^ (n << 1);
    uint64_t v = sc_sim_splitmix64(&s1);
    size_t o = 0;
    for (int i = 0; i < 13; i++, v /= base) /* 36^13 > 2^64 */
        out[o++] = alphabet[v % base];
    while (o < SC_SIM_BATCH_ID_LEN) {
        v = sc_sim_splitmix64(&s2);
        for (int i = 0; i < 12 && o < SC_SIM_BATCH_ID_LEN; i++, v /= base)
            out[o++] = alphabet[v % base];
    }
    out[o] = '\0';
}

/* ---- batch state and the Operation ---- */

/* The state of b at now_ms (batch_mu held); *end_ns gets the end time of a terminal state. */
static sc_sim_batch_state_t sc_sim_batch_state(const sc_gemini_sim_t *sim, const sc_sim_batch_t *b,
                                               int64_t now_ms, int64_t *end_ns)
{
    *end_ns = 0;
    if (b->cancelled) {
        *end_ns = b->cancel_wall_ns;
        return SC_SIM_BS_CANCELLED;
    }
    int64_t elapsed = now_ms - b->create_mono_ms;
    if (elapsed < (int64_t)sim->batch_pending_ms)
        return SC_SIM_BS_PENDING;
    if (elapsed < (int64_t)sim->batch_pending_ms + (int64_t)sim->batch_running_ms)
        return SC_SIM_BS_RUNNING;
    *end_ns = b->create_wall_ns +
              ((int64_t)sim->batch_pending_ms + (int64_t)sim->batch_running_ms) * 1000000;
    return b->fate;
}

/* Build b->output once, at the first read that sees the batch SUCCEEDED (batch_mu held): one
 * entry per request in input order, {response, metadata} or {error, metadata}.
 * @return false when out of memory. */
static bool sc_sim_batch_output(sc_gemini_sim_t *sim, sc_sim_batch_t *b)
{
    if (b->output)
        return true;
    const sc_sim_model_t *m = &sc_sim_models[b->model_index];
    json_t *list = json_array();
    bool ok = list != NULL;
    for (size_t i = 0; ok && i < b->n; i++) {
        const sc_sim_batch_item_t *it = &b->items[i];
        json_t *entry =
            it->error ? json_pack("{s:O}", "error", it->error)
                      : json_pack("{s:o}", "response", sc_sim_gen_doc(sim, m, &it->g, it->request));
        if (entry && it->metadata && json_object_set(entry, "metadata", it->metadata) != 0) {
            json_decref(entry);
            entry = NULL;
        }
        ok = entry && json_array_append_new(list, entry) == 0;
    }
    if (ok)
        b->output = json_pack("{s:s, s:{s:o}}", "@type", SC_SIM_BATCH_OUTPUT_TYPE,
                              "inlinedResponses", "inlinedResponses", list); /* steals list */
    else
        json_decref(list);
    return b->output != NULL;
}

/* Set obj[key] to n as an int64 JSON string; zero counts are omitted as proto3 does. */
static bool sc_sim_set_count(json_t *obj, const char *key, size_t n)
{
    char buf[24];
    if (n == 0)
        return true;
    snprintf(buf, sizeof buf, "%zu", n);
    return json_object_set_new(obj, key, json_string(buf)) == 0;
}

bool sc_sim_set_time(json_t *obj, const char *key, int64_t ns)
{
    char buf[SC_SIM_TIME_MAX];
    sc_sim_rfc3339(ns, buf, sizeof buf);
    return json_object_set_new(obj, key, json_string(buf)) == 0;
}

/* The Operation for b as GET answers it (batch_mu held). @return a new reference, or NULL when
 * out of memory. */
static json_t *sc_sim_batch_doc(sc_gemini_sim_t *sim, sc_sim_batch_t *b, int64_t now_ms)
{
    int64_t end_ns = 0;
    sc_sim_batch_state_t state = sc_sim_batch_state(sim, b, now_ms, &end_ns);
    bool done = state >= SC_SIM_BS_SUCCEEDED;
    if (state == SC_SIM_BS_SUCCEEDED && !sc_sim_batch_output(sim, b))
        return NULL;
    int64_t update_ns = done ? end_ns
                        : state == SC_SIM_BS_RUNNING
                            ? b->create_wall_ns + (int64_t)sim->batch_pending_ms * 1000000
                            : b->create_wall_ns;
    char name[SC_SIM_BATCH_NAME_MAX], model[SC_SIM_ID_MAX + 16], state_s[32];
    snprintf(name, sizeof name, "batches/%s", b->id);
    snprintf(model, sizeof model, "models/%s", sc_sim_models[b->model_index].name);
    snprintf(state_s, sizeof state_s, "%s_STATE_%s", sim->faults.job_state_prefix ? "JOB" : "BATCH",
             sc_sim_batch_state_names[state]);

    json_t *stats = json_object();
    bool ok = stats && sc_sim_set_count(stats, "requestCount", b->n);
    if (ok && state == SC_SIM_BS_SUCCEEDED)
        ok = sc_sim_set_count(stats, "successfulRequestCount", b->n - b->failed) &&
             sc_sim_set_count(stats, "failedRequestCount", b->failed);
    else if (ok && !done)
        ok = sc_sim_set_count(stats, "pendingRequestCount", b->n);
    json_t *md = ok ? json_pack("{s:s, s:s}", "@type", SC_SIM_BATCH_TYPE, "model", model) : NULL;
    ok = md != NULL;
    if (ok && b->display_name)
        ok = json_object_set_new(md, "displayName", json_string(b->display_name)) == 0;
    ok = ok && sc_sim_set_time(md, "createTime", b->create_wall_ns);
    if (ok && done)
        ok = sc_sim_set_time(md, "endTime", end_ns);
    ok = ok && sc_sim_set_time(md, "updateTime", update_ns) &&
         json_object_set(md, "batchStats", stats) == 0 &&
         json_object_set_new(md, "state", json_string(state_s)) == 0 &&
         json_object_set_new(md, "name", json_string(name)) == 0;
    if (ok && state == SC_SIM_BS_SUCCEEDED)
        ok = json_object_set(md, "output", b->output) == 0;
    json_t *op = ok ? json_pack("{s:s, s:O}", "name", name, "metadata", md) : NULL;
    ok = op != NULL;
    if (ok && done)
        ok = json_object_set_new(op, "done", json_true()) == 0;
    if (ok && state == SC_SIM_BS_SUCCEEDED)
        ok = json_object_set(op, "response", b->output) == 0;
    if (ok && state == SC_SIM_BS_FAILED)
        ok = json_object_set_new(op, "error",
                                 sc_sim_status_obj(500, "INTERNAL",
                                                   "Batch processing failed (simulated by the "
                                                   "batch_fail fault).")) == 0;
    json_decref(stats);
    json_decref(md);
    if (!ok) {
        json_decref(op);
        return NULL;
    }
    return op;
}

/* The live batch with this id (batch_mu held). @return borrowed, or NULL; *slot gets its index. */
static sc_sim_batch_t *sc_sim_batch_find(sc_gemini_sim_t *sim, const char *id, size_t *slot)
{
    for (size_t i = 0; i < SC_SIM_BATCH_MAX; i++) {
        sc_sim_batch_t *b = sim->batches[i];
        if (b && strcmp(b->id, id) == 0) {
            if (slot)
                *slot = i;
            return b;
        }
    }
    return NULL;
}

/* ---- duplicate keys ---- */

/* The slot for hash in the key set: the one holding it, or the empty one where it would go.
 * The set is at most half full, so the probe ends. */
static sc_sim_key_slot_t *sc_sim_keys_slot(sc_sim_key_slot_t *keys, size_t cap, uint64_t hash)
{
    size_t i = (size_t)hash & (cap - 1);
    while (keys[i].hash != 0 && keys[i].hash != hash)
        i = (i + 1) & (cap - 1);
    return &keys[i];
}

/* Double the key set (batch_mu held). @return false when out of memory or at the bound. */
static bool sc_sim_keys_grow(sc_gemini_sim_t *sim)
{
    size_t cap = sim->keys_cap ? sim->keys_cap * 2 : SC_SIM_BATCH_KEYS_INITIAL;
    if (cap / 2 > (size_t)SC_SIM_BATCH_KEYS_MAX * 2)
        return false;
    sc_sim_key_slot_t *keys = calloc(cap, sizeof *keys);
    if (!keys)
        return false;
    for (size_t i = 0; i < sim->keys_cap; i++)
        if (sim->keys[i].hash)
            *sc_sim_keys_slot(keys, cap, sim->keys[i].hash) = sim->keys[i];
    free(sim->keys);
    sim->keys = keys;
    sim->keys_cap = cap;
    return true;
}

/* Remember the metadata.key of every request of a new batch, counting each key that an earlier
 * batch carried once in duplicate_keys (batch_mu held). Keys are compared by a 64-bit hash. */
static void sc_sim_keys_note(sc_gemini_sim_t *sim, const sc_sim_batch_t *b)
{
    for (size_t i = 0; i < b->n; i++) {
        json_t *key = json_object_get(b->items[i].metadata, "key");
        if (!json_is_string(key))
            continue;
        uint64_t h = sc_sim_fnv(SC_SIM_FNV_OFFSET, json_string_value(key), json_string_length(key));
        h = h ? h : 1;
        sc_sim_key_slot_t *slot = sim->keys ? sc_sim_keys_slot(sim->keys, sim->keys_cap, h) : NULL;
        if (slot && slot->hash == h) {
            if (slot->seq != b->seq && !slot->counted) {
                slot->counted = true;
                sim->duplicate_keys++;
            }
            continue;
        }
        if (sim->keys_len >= SC_SIM_BATCH_KEYS_MAX) {
            sim->keys_overflow++;
            continue;
        }
        if ((sim->keys_len + 1) * 2 > sim->keys_cap) {
            if (!sc_sim_keys_grow(sim)) {
                sim->keys_overflow++;
                continue;
            }
        }
        slot = sc_sim_keys_slot(sim->keys, sim->keys_cap, h);
        *slot = (sc_sim_key_slot_t){.hash = h, .seq = b->seq, .counted = false};
        sim->keys_len++;
    }
}

/* ---- create ---- */

static void sc_sim_reply_batch_not_found(sc_sim_reply_t *r, const char *id)
{
    sc_sim_reply_error(r, 404, "NOT_FOUND", NULL, "Batch batches/%s not found.", id);
}

/* Validate the requests of a create body into b->items (b->n entries, allocated by the caller).
 * A request that generateContent would reject becomes an error entry, not a failed create.
 * @return false with a 400 in r when the batch itself is malformed. */
static bool sc_sim_batch_parse_items(const sc_gemini_sim_t *sim, const json_t *reqs,
                                     sc_sim_batch_t *b, sc_sim_reply_t *r)
{
    size_t i;
    json_t *entry;
    json_array_foreach(reqs, i, entry)
    {
        sc_sim_batch_item_t *it = &b->items[i];
        if (!json_is_object(entry)) {
            sc_sim_reply_invalid(r,
                                 "Invalid value at 'batch.input_config.requests.requests[%zu]': "
                                 "expected an InlinedRequest object.",
                                 i);
            return false;
        }
        json_t *md = json_object_get(entry, "metadata");
        if (md && !json_is_object(md)) {
            sc_sim_reply_invalid(r,
                                 "Invalid value at 'batch.input_config.requests.requests[%zu]."
                                 "metadata': expected an object.",
                                 i);
            return false;
        }
        it->metadata = json_incref(md);
        json_t *req = json_object_get(entry, "request");
        json_t *norm = NULL; /* new: the request normalised by the API's rules */
        sc_sim_reply_t vr = {0};
        bool valid;
        if (!json_is_object(req)) {
            sc_sim_reply_invalid(&vr, "* InlinedRequest.request: request is not specified");
            valid = false;
        } else {
            norm = sc_sim_normalize(req, sc_sim_models[b->model_index].name, &vr);
            valid = norm && sc_sim_parse_gen(norm, true, &it->g, &vr);
        }
        /* the quality mode, schemas, stop sequences and tools read the request at output time */
        if (valid && (sim->quality.on || SC_SIM_GEN_NEEDS_REQUEST(&it->g)))
            it->request = json_incref(norm);
        json_decref(norm);
        if (!valid) {
            it->error = sc_sim_reply_to_status(&vr);
            free(vr.body);
            if (!it->error) {
                sc_sim_reply_error(r, 500, "INTERNAL", NULL, "out of memory");
                return false;
            }
            b->failed++;
        }
    }
    return true;
}

/* Draw the batch's fate and its injected request errors with the seeded PRNG. Draws happen only
 * for shares > 0, so specs without batch keys leave generateContent's sequence as it was. */
static bool sc_sim_batch_draw(sc_gemini_sim_t *sim, sc_sim_batch_t *b)
{
    const sc_sim_faults_t *f = &sim->faults;
    bool ok = true;
    b->fate = SC_SIM_BS_SUCCEEDED;
    pthread_mutex_lock(&sim->fault_mu);
    if (f->batch_fail > 0.0 || f->batch_expire > 0.0) {
        double u = sc_sim_unit(&sim->rng);
        if (u < f->batch_fail)
            b->fate = SC_SIM_BS_FAILED;
        else if (u < f->batch_fail + f->batch_expire)
            b->fate = SC_SIM_BS_EXPIRED;
    }
    for (size_t i = 0; f->batch_error > 0.0 && i < b->n; i++) {
        bool hit = sc_sim_unit(&sim->rng) < f->batch_error;
        if (!hit || b->items[i].error)
            continue; /* a request that is invalid stays answered by validation */
        b->items[i].error = sc_sim_status_obj(500, "INTERNAL", SC_SIM_MSG_500);
        if (!b->items[i].error) {
            ok = false;
            break;
        }
        b->failed++;
    }
    pthread_mutex_unlock(&sim->fault_mu);
    return ok;
}

/* The record's line of a created batch (sim.h, "Record"): its name, model and the metadata.key of
 * each request (null for a request without one), in order. NULL when out of memory. */
static char *sc_sim_batch_record_line(const sc_sim_batch_t *b)
{
    json_t *keys = json_array();
    for (size_t i = 0; keys && i < b->n; i++) {
        json_t *k = json_object_get(b->items[i].metadata, "key");
        if (json_array_append(keys, json_is_string(k) ? k : json_null()) != 0) {
            json_decref(keys);
            keys = NULL;
        }
    }
    char name[80];
    snprintf(name, sizeof name, "batches/%s", b->id);
    json_t *line = keys ? json_pack("{s:s, s:s, s:o}", "batch", name, "model",
                                    sc_sim_models[b->model_index].name, "keys", keys)
                        : NULL;
    char *s = line ? json_dumps(line, JSON_COMPACT | JSON_ENSURE_ASCII) : NULL;
    json_decref(line);
    return s;
}

/* POST /v1beta/models/{model}:batchGenerateContent with inline requests (§5.2). */
void sc_sim_batch_create(sc_sim_call_t *c, sc_sim_reply_t *r)
{
    json_t *root = NULL;
    char *rec = NULL; /* the record's line for the batch, written once batch_mu is released */
    sc_sim_batch_t *b = NULL; /* owned until it enters the table */
    size_t model_index = 0;
    if (!sc_sim_model_find(c->id, &model_index)) {
        sc_sim_reply_error(r, 404, "NOT_FOUND", NULL,
                           "models/%s is not found for API version v1beta, or is not supported "
                           "for batchGenerateContent. Call ListModels to see the list of "
                           "available models and their supported methods.",
                           c->id);
        goto out;
    }
    if (c->body_len > SC_SIM_BATCH_INLINE_MAX) {
        sc_sim_reply_invalid(r,
                             "Request payload size exceeds the limit: %zu bytes. Inline batch "
                             "requests must be smaller than 20 MB; use a file for larger ones.",
                             SC_SIM_BATCH_INLINE_MAX);
        goto out;
    }
    root = sc_sim_parse_body(c, r);
    if (!root)
        goto out;
    json_t *batch = json_object_get(root, "batch");
    if (!json_is_object(batch)) {
        sc_sim_reply_invalid(r, "* BatchGenerateContentRequest.batch: batch is not specified");
        goto out;
    }
    json_t *dn = sc_sim_get2(batch, "displayName", "display_name");
    if (dn && (!json_is_string(dn) || json_string_length(dn) > SC_SIM_DISPLAY_NAME_MAX)) {
        sc_sim_reply_invalid(r,
                             "Invalid value at 'batch.display_name': expected a string of at "
                             "most %d bytes.",
                             SC_SIM_DISPLAY_NAME_MAX);
        goto out;
    }
    json_t *ic = sc_sim_get2(batch, "inputConfig", "input_config");
    if (!json_is_object(ic)) {
        sc_sim_reply_invalid(r, "* GenerateContentBatch.input_config: input_config is not "
                                "specified");
        goto out;
    }
    if (sc_sim_get2(ic, "fileName", "file_name")) {
        sc_sim_reply_invalid(r, "file input is not supported by the simulator");
        goto out;
    }
    json_t *outer = json_object_get(ic, "requests");
    json_t *reqs = json_is_object(outer) ? json_object_get(outer, "requests") : NULL;
    if (!json_is_array(reqs) || json_array_size(reqs) == 0) {
        sc_sim_reply_invalid(r, "* GenerateContentBatch.input_config.requests: requests must not "
                                "be empty");
        goto out;
    }
    size_t n = json_array_size(reqs);
    if (n > SC_SIM_BATCH_REQUESTS_MAX) {
        sc_sim_reply_invalid(r, "A batch holds at most %u inline requests; this one has %zu.",
                             SC_SIM_BATCH_REQUESTS_MAX, n);
        goto out;
    }
    b = calloc(1, sizeof *b);
    if (b)
        b->items = calloc(n, sizeof *b->items);
    if (!b || !b->items) {
        sc_sim_reply_error(r, 500, "INTERNAL", NULL, "out of memory");
        goto out;
    }
    b->n = n;
    b->model_index = model_index;
    if (!sc_sim_batch_parse_items(c->sim, reqs, b, r))
        goto out;
    if (dn && !(b->display_name = strdup(json_string_value(dn)))) {
        sc_sim_reply_error(r, 500, "INTERNAL", NULL, "out of memory");
        goto out;
    }
    if (!sc_sim_batch_draw(c->sim, b)) {
        sc_sim_reply_error(r, 500, "INTERNAL", NULL, "out of memory");
        goto out;
    }
    b->create_wall_ns = sc_sim_wall_ns();
    b->create_mono_ms = sc_now_ms();

    sc_gemini_sim_t *sim = c->sim;
    pthread_mutex_lock(&sim->batch_mu);
    size_t slot = SC_SIM_BATCH_MAX;
    for (size_t i = 0; sim->batch_count < SC_SIM_BATCH_MAX && i < SC_SIM_BATCH_MAX; i++)
        if (!sim->batches[i]) {
            slot = i;
            break;
        }
    if (slot == SC_SIM_BATCH_MAX) {
        sc_sim_reply_error(r, 429, "RESOURCE_EXHAUSTED", NULL,
                           "too many batches: the simulator holds at most %u; delete some.",
                           SC_SIM_BATCH_MAX);
    } else if (sim->batch_items + n > SC_SIM_BATCH_ITEMS_MAX) {
        sc_sim_reply_error(r, 429, "RESOURCE_EXHAUSTED", NULL,
                           "too many batched requests: the simulator holds at most %u over all "
                           "batches; delete some.",
                           SC_SIM_BATCH_ITEMS_MAX);
    } else {
        b->seq = ++sim->batch_seq;
        sc_sim_batch_id(sim, b->id);
        sim->batches[slot] = b;
        sim->batch_count++;
        sim->batch_items += n;
        sim->batches_created++;
        sim->batch_requests += n;
        sc_sim_keys_note(sim, b);
        if (sim->record)
            rec = sc_sim_batch_record_line(b);
        sc_sim_reply_json(r, 200, sc_sim_batch_doc(sim, b, b->create_mono_ms));
        b = NULL; /* the table owns it */
    }
    pthread_mutex_unlock(&sim->batch_mu);
    if (rec)
        sc_sim_record_line(sim, rec);
out:
    free(rec);
    sc_sim_batch_free(b);
    json_decref(root);
}

/* ---- get, list, cancel, delete ---- */

/* GET /v1beta/batches/{id} */
void sc_sim_batch_get(sc_sim_call_t *c, sc_sim_reply_t *r)
{
    pthread_mutex_lock(&c->sim->batch_mu);
    sc_sim_batch_t *b = sc_sim_batch_find(c->sim, c->id, NULL);
    if (b)
        sc_sim_reply_json(r, 200, sc_sim_batch_doc(c->sim, b, sc_now_ms()));
    else
        sc_sim_reply_batch_not_found(r, c->id);
    pthread_mutex_unlock(&c->sim->batch_mu);
}

/* pageSize and pageToken of a list call (page clamped to SC_SIM_BATCH_PAGE_MAX, 0 = default;
 * the token is the seq of the first item of the page). false with a 400 in r when malformed. */
bool sc_sim_page_args(sc_sim_call_t *c, sc_sim_reply_t *r, uint64_t *page, uint64_t *from)
{
    const char *ps = MHD_lookup_connection_value(c->conn, MHD_GET_ARGUMENT_KIND, "pageSize");
    const char *pt = MHD_lookup_connection_value(c->conn, MHD_GET_ARGUMENT_KIND, "pageToken");
    *page = SC_SIM_BATCH_PAGE_DEFAULT;
    *from = 0;
    if (ps && ps[0]) {
        if (!sc_sim_parse_u64(ps, UINT32_MAX, page)) {
            sc_sim_reply_invalid(r, "Invalid value at 'page_size' (TYPE_INT32), \"%.64s\"", ps);
            return false;
        }
        if (*page == 0)
            *page = SC_SIM_BATCH_PAGE_DEFAULT;
        if (*page > SC_SIM_BATCH_PAGE_MAX)
            *page = SC_SIM_BATCH_PAGE_MAX;
    }
    if (pt && pt[0] && !sc_sim_parse_u64(pt, UINT64_MAX, from)) {
        sc_sim_reply_invalid(r, "Invalid page token.");
        return false;
    }
    return true;
}

static int sc_sim_batch_cmp(const void *a, const void *b)
{
    uint64_t x = (*(sc_sim_batch_t *const *)a)->seq, y = (*(sc_sim_batch_t *const *)b)->seq;
    return x < y ? -1 : x > y;
}

/* GET /v1beta/batches?pageSize=&pageToken= in creation order. The page token is the seq of the
 * first batch of the next page. */
void sc_sim_batch_list(sc_sim_call_t *c, sc_sim_reply_t *r)
{
    sc_gemini_sim_t *sim = c->sim;
    uint64_t page, from;
    if (!sc_sim_page_args(c, r, &page, &from))
        return;
    sc_sim_batch_t **sel = malloc(SC_SIM_BATCH_MAX * sizeof *sel); /* borrowed pointers */
    json_t *ops = json_array(), *doc = json_object();
    bool ok = sel && ops && doc;
    pthread_mutex_lock(&sim->batch_mu);
    size_t n = 0;
    for (size_t i = 0; ok && i < SC_SIM_BATCH_MAX; i++)
        if (sim->batches[i] && sim->batches[i]->seq >= from)
            sel[n++] = sim->batches[i];
    if (ok)
        qsort(sel, n, sizeof *sel, sc_sim_batch_cmp);
    int64_t now = sc_now_ms();
    for (size_t i = 0; ok && i < n && i < page; i++)
        ok = json_array_append_new(ops, sc_sim_batch_doc(sim, sel[i], now)) == 0;
    ok = ok && json_object_set(doc, "operations", ops) == 0;
    if (ok && n > page) {
        char tok[24];
        snprintf(tok, sizeof tok, "%" PRIu64, sel[page]->seq);
        ok = json_object_set_new(doc, "nextPageToken", json_string(tok)) == 0;
    }
    if (ok) {
        sc_sim_reply_json(r, 200, doc); /* serialized under the lock: the outputs are shared */
        doc = NULL;
    }
    pthread_mutex_unlock(&sim->batch_mu);
    if (!ok)
        sc_sim_reply_error(r, 500, "INTERNAL", NULL, "out of memory");
    json_decref(ops);
    json_decref(doc);
    free(sel);
}

/* POST /v1beta/batches/{id}:cancel: a batch not yet terminal ends CANCELLED, with no results. */
void sc_sim_batch_cancel(sc_sim_call_t *c, sc_sim_reply_t *r)
{
    pthread_mutex_lock(&c->sim->batch_mu);
    sc_sim_batch_t *b = sc_sim_batch_find(c->sim, c->id, NULL);
    if (b) {
        int64_t end_ns;
        if (sc_sim_batch_state(c->sim, b, sc_now_ms(), &end_ns) < SC_SIM_BS_SUCCEEDED) {
            b->cancelled = true;
            b->cancel_wall_ns = sc_sim_wall_ns();
        }
        sc_sim_reply_json(r, 200, json_object());
    } else {
        sc_sim_reply_batch_not_found(r, c->id);
    }
    pthread_mutex_unlock(&c->sim->batch_mu);
}

/* DELETE /v1beta/batches/{id}: the batch and its results are freed; its keys stay remembered. */
void sc_sim_batch_delete(sc_sim_call_t *c, sc_sim_reply_t *r)
{
    size_t slot = 0;
    pthread_mutex_lock(&c->sim->batch_mu);
    sc_sim_batch_t *b = sc_sim_batch_find(c->sim, c->id, &slot);
    if (b) {
        c->sim->batches[slot] = NULL;
        c->sim->batch_count--;
        c->sim->batch_items -= b->n;
    }
    pthread_mutex_unlock(&c->sim->batch_mu);
    if (b) {
        sc_sim_batch_free(b);
        sc_sim_reply_json(r, 200, json_object());
    } else {
        sc_sim_reply_batch_not_found(r, c->id);
    }
}
