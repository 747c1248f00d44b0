/* sim_caches.c - the simulator's context caching (gemini-api.md §4): cachedContents create, get,
 * list, patch and delete, ttl/expireTime, the expiry sweep, storage token-seconds and the use of
 * a cache by generateContent. */
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "host/core/util.h"
#include "host/gemini/sim_internal.h"

/* ---- limits ---- */

#define SC_SIM_CACHE_TTL_DEFAULT_S    3600        /* neither ttl nor expireTime: 1 hour (§4.5) */
#define SC_SIM_CACHE_TTL_MAX_S        315360000LL /* 10 years: keeps ns arithmetic in int64 */
#define SC_SIM_CACHE_DISPLAY_NAME_MAX 128         /* Unicode characters (§4.1) */
#define SC_SIM_CACHE_PREFIX           "cachedContents/"
#define SC_SIM_NS_PER_S               1000000000LL

/* ---- the cache table ---- */

void sc_sim_cache_free(sc_sim_cache_t *cc)
{
    if (!cc)
        return;
    free(cc->display_name);
    json_decref(cc->tools);
    json_decref(cc->tool_config);
    free(cc);
}

/* The smallest cache model_index accepts, in tokens. */
static size_t sc_sim_cache_min(const sc_gemini_sim_t *sim, size_t model_index)
{
    return sim->cache_min_override ? sim->cache_min_override
                                   : sc_sim_models[model_index].cache_min;
}

/* Token-seconds of cc from its creation to until_ns (not past its expiry). */
double sc_sim_cache_storage(const sc_sim_cache_t *cc, int64_t until_ns)
{
    int64_t end = until_ns < cc->expire_ns ? until_ns : cc->expire_ns;
    if (end <= cc->create_ns)
        return 0.0;
    return (double)cc->tokens * (double)(end - cc->create_ns) / (double)SC_SIM_NS_PER_S;
}

/* Drop the caches expired at now_ns (cache_mu held): an expired cache is gone for every call. */
void sc_sim_cache_sweep(sc_gemini_sim_t *sim, int64_t now_ns)
{
    for (size_t i = 0; i < SC_SIM_CACHE_MAX && sim->cache_count > 0; i++) {
        sc_sim_cache_t *cc = sim->caches[i];
        if (!cc || cc->expire_ns > now_ns)
            continue;
        sim->storage_dead += sc_sim_cache_storage(cc, now_ns);
        sim->caches_expired++;
        sim->caches[i] = NULL;
        sim->cache_count--;
        sc_sim_cache_free(cc);
    }
}

/* The live cache with this id (cache_mu held, swept). @return borrowed or NULL. */
static sc_sim_cache_t *sc_sim_cache_find(sc_gemini_sim_t *sim, const char *id, size_t *slot)
{
    for (size_t i = 0; i < SC_SIM_CACHE_MAX; i++) {
        sc_sim_cache_t *cc = sim->caches[i];
        if (cc && strcmp(cc->id, id) == 0) {
            if (slot)
                *slot = i;
            return cc;
        }
    }
    return NULL;
}

static void sc_sim_reply_cache_not_found(sc_sim_reply_t *r, const char *id)
{
    sc_sim_reply_error(r, 404, "NOT_FOUND", NULL,
                       "CachedContent not found (or permission denied): " SC_SIM_CACHE_PREFIX
                       "%.64s",
                       id);
}

/* ---- expiry ---- */

/* A duration "300s" / "3.5s" in ns, at most SC_SIM_CACHE_TTL_MAX_S. */
static bool sc_sim_parse_duration_ns(const char *s, int64_t *ns)
{
    if (!sc_sim_valid_duration(s))
        return false;
    char *end = NULL;
    errno = 0;
    long long sec = strtoll(s, &end, 10);
    if (errno || sec < 0 || sec > SC_SIM_CACHE_TTL_MAX_S)
        return false;
    int64_t frac = 0, scale = SC_SIM_NS_PER_S / 10;
    if (*end == '.')
        for (end++; *end >= '0' && *end <= '9'; end++, scale /= 10)
            frac += (*end - '0') * scale;
    *ns = (int64_t)sec * SC_SIM_NS_PER_S + frac;
    return true;
}

/* RFC 3339 "YYYY-MM-DDTHH:MM:SS[.f{1,9}](Z|+HH:MM|-HH:MM)" in ns since the epoch. */
static bool sc_sim_parse_time_ns(const char *s, int64_t *ns)
{
    struct tm tm;
    memset(&tm, 0, sizeof tm);
    int used = 0;
    if (sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d%n", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour,
               &tm.tm_min, &tm.tm_sec, &used) != 6 ||
        used != 19 || tm.tm_mon < 1 || tm.tm_mon > 12 || tm.tm_mday < 1 || tm.tm_mday > 31 ||
        tm.tm_hour > 23 || tm.tm_min > 59 || tm.tm_sec > 60)
        return false;
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    const char *p = s + used;
    int64_t frac = 0, scale = SC_SIM_NS_PER_S / 10;
    if (*p == '.') {
        int digits = 0;
        for (p++; *p >= '0' && *p <= '9'; p++, digits++, scale /= 10)
            if (digits < 9)
                frac += (*p - '0') * scale;
        if (digits == 0 || digits > 9)
            return false;
    }
    long offset_s = 0;
    if (*p == 'Z' && p[1] == '\0') {
        offset_s = 0;
    } else if ((*p == '+' || *p == '-') && strlen(p) == 6 && p[3] == ':') {
        int hh = 0, mm = 0;
        if (sscanf(p + 1, "%2d:%2d", &hh, &mm) != 2 || hh > 23 || mm > 59)
            return false;
        offset_s = (long)(hh * 3600 + mm * 60) * (*p == '+' ? 1 : -1);
    } else {
        return false;
    }
    time_t t = timegm(&tm);
    if (t == (time_t)-1)
        return false;
    *ns = ((int64_t)t - offset_s) * SC_SIM_NS_PER_S + frac;
    return true;
}

/* The expiry a body asks for: ttl or expireTime (one-of), either spelling. *given says whether
 * one was there (*expire_ns untouched when not). @return false with a 400 in r. */
static bool sc_sim_cache_expiry(const json_t *root, int64_t now_ns, int64_t *expire_ns,
                                bool *given, sc_sim_reply_t *r)
{
    json_t *ttl = json_object_get(root, "ttl");
    json_t *exp = sc_sim_get2(root, "expireTime", "expire_time");
    *given = ttl || exp;
    if (ttl && exp) {
        sc_sim_reply_invalid(r, "ttl and expire_time are mutually exclusive (oneof expiration).");
        return false;
    }
    int64_t v = 0;
    if (ttl) {
        if (!json_is_string(ttl) || !sc_sim_parse_duration_ns(json_string_value(ttl), &v) ||
            v <= 0) {
            sc_sim_reply_invalid(r, "Invalid value at 'cached_content.ttl' (type.googleapis.com/"
                                    "google.protobuf.Duration): a positive duration such as "
                                    "\"300s\" is expected.");
            return false;
        }
        *expire_ns = now_ns + v;
    } else if (exp) {
        if (!json_is_string(exp) || !sc_sim_parse_time_ns(json_string_value(exp), &v)) {
            sc_sim_reply_invalid(r, "Invalid value at 'cached_content.expire_time' "
                                    "(type.googleapis.com/google.protobuf.Timestamp).");
            return false;
        }
        if (v <= now_ns || v - now_ns > SC_SIM_CACHE_TTL_MAX_S * SC_SIM_NS_PER_S) {
            sc_sim_reply_invalid(r, "expire_time must be in the future (and within %lld s).",
                                 SC_SIM_CACHE_TTL_MAX_S);
            return false;
        }
        *expire_ns = v;
    }
    return true;
}

/* ---- endpoints ---- */

/* The CachedContent as create/get/list/patch answer it: never the input-only fields (§4.1).
 * @return a new reference, or NULL when out of memory. */
static json_t *sc_sim_cache_doc(const sc_sim_cache_t *cc)
{
    char name[SC_SIM_BATCH_NAME_MAX], model[SC_SIM_ID_MAX + 16];
    snprintf(name, sizeof name, SC_SIM_CACHE_PREFIX "%s", cc->id);
    snprintf(model, sizeof model, "models/%s", sc_sim_models[cc->model_index].name);
    json_t *doc = json_pack("{s:s, s:s, s:{s:I}}", "name", name, "model", model, "usageMetadata",
                            "totalTokenCount", (json_int_t)cc->tokens);
    bool ok = doc != NULL;
    if (ok && cc->display_name)
        ok = json_object_set_new(doc, "displayName", json_string(cc->display_name)) == 0;
    ok = ok && sc_sim_set_time(doc, "createTime", cc->create_ns) &&
         sc_sim_set_time(doc, "updateTime", cc->update_ns) &&
         sc_sim_set_time(doc, "expireTime", cc->expire_ns);
    if (!ok) {
        json_decref(doc);
        return NULL;
    }
    return doc;
}

/* Unicode characters in a UTF-8 string (continuation bytes not counted). */
static size_t sc_sim_utf8_chars(const char *s)
{
    size_t n = 0;
    for (; *s; s++)
        n += ((unsigned char)*s & 0xC0) != 0x80;
    return n;
}

/* The fields of a create body that a GenerateContentRequest also has, validated by its rules for
 * model (either spelling in body, borrowed). @return the normalised object (a new reference), or
 * NULL with the 400 in r. */
static json_t *sc_sim_cache_fields(const json_t *body, const char *model, sc_sim_reply_t *r)
{
    static const char *const fields[][2] = {{"contents", "contents"},
                                            {"systemInstruction", "system_instruction"},
                                            {"tools", "tools"},
                                            {"toolConfig", "tool_config"}};
    json_t *obj = json_object(), *norm = NULL;
    bool ok = obj != NULL;
    for (size_t i = 0; ok && i < SC_ARRAY_LEN(fields); i++) {
        json_t *v = sc_sim_get2(body, fields[i][0], fields[i][1]);
        if (v)
            ok = json_object_set(obj, fields[i][0], v) == 0;
    }
    if (ok)
        norm = sc_sim_normalize(obj, model, r);
    else
        sc_sim_reply_error(r, 500, "INTERNAL", NULL, "out of memory");
    json_decref(obj);
    return norm;
}

/* POST /v1beta/cachedContents: the body is the CachedContent itself (§4.2). */
void sc_sim_cache_create(sc_sim_call_t *c, sc_sim_reply_t *r)
{
    /* the fields of a CachedContent, in both spellings (output-only ones are ignored) */
    static const char *const keys[] = {"name",
                                       "model",
                                       "displayName",
                                       "display_name",
                                       "contents",
                                       "systemInstruction",
                                       "system_instruction",
                                       "tools",
                                       "toolConfig",
                                       "tool_config",
                                       "ttl",
                                       "expireTime",
                                       "expire_time",
                                       "createTime",
                                       "create_time",
                                       "updateTime",
                                       "update_time",
                                       "usageMetadata",
                                       "usage_metadata"};
    sc_gemini_sim_t *sim = c->sim;
    sc_sim_cache_t *cc = NULL; /* owned until it enters the table */
    json_t *norm = NULL;
    json_t *root = sc_sim_parse_body(c, r);
    if (!root || !sc_sim_known_keys(root, keys, SC_ARRAY_LEN(keys), "cached_content", r))
        goto out;
    json_t *model = json_object_get(root, "model");
    const char *ms = json_string_value(model);
    if (!ms || !ms[0]) {
        sc_sim_reply_invalid(r, "* CachedContent.model: model is not specified");
        goto out;
    }
    size_t model_index = 0;
    if (strncmp(ms, "models/", 7) != 0 || !sc_sim_model_find(ms + 7, &model_index)) {
        sc_sim_reply_error(r, 404, "NOT_FOUND", NULL,
                           "%.128s is not found for API version v1beta, or is not supported for "
                           "createCachedContent. Call ListModels to see the list of available "
                           "models and their supported methods.",
                           ms);
        goto out;
    }
    json_t *dn = sc_sim_get2(root, "displayName", "display_name");
    if (dn && (!json_is_string(dn) ||
               sc_sim_utf8_chars(json_string_value(dn)) > SC_SIM_CACHE_DISPLAY_NAME_MAX)) {
        sc_sim_reply_invalid(r,
                             "Invalid value at 'cached_content.display_name': expected a string "
                             "of at most %d characters.",
                             SC_SIM_CACHE_DISPLAY_NAME_MAX);
        goto out;
    }
    norm = sc_sim_cache_fields(root, ms + 7, r);
    if (!norm)
        goto out;
    sc_sim_gen_req_t g;
    memset(&g, 0, sizeof g);
    if (!sc_sim_parse_contents(norm, false, &g, r) || !sc_sim_parse_system(norm, &g, r) ||
        !sc_sim_parse_tools(norm, true, &g, r))
        goto out;
    int64_t now = sc_sim_wall_ns();
    int64_t expire = now + (int64_t)SC_SIM_CACHE_TTL_DEFAULT_S * SC_SIM_NS_PER_S;
    bool given = false;
    if (!sc_sim_cache_expiry(root, now, &expire, &given, r))
        goto out;
    size_t tokens = sc_sim_tokens(g.prompt_chars), min = sc_sim_cache_min(sim, model_index);
    if (tokens < min) {
        pthread_mutex_lock(&sim->cache_mu);
        sim->caches_too_small++;
        pthread_mutex_unlock(&sim->cache_mu);
        sc_sim_reply_invalid(r,
                             "Cached content is too small. total_token_count=%zu, "
                             "min_total_token_count=%zu",
                             tokens, min);
        goto out;
    }
    cc = calloc(1, sizeof *cc);
    if (!cc || (dn && !(cc->display_name = strdup(json_string_value(dn))))) {
        sc_sim_reply_error(r, 500, "INTERNAL", NULL, "out of memory");
        goto out;
    }
    cc->tools = json_incref(json_object_get(norm, "tools"));
    cc->tool_config = json_incref(json_object_get(norm, "toolConfig"));
    cc->model_index = model_index;
    cc->tokens = tokens;
    cc->create_ns = cc->update_ns = now;
    cc->expire_ns = expire;

    pthread_mutex_lock(&sim->cache_mu);
    sc_sim_cache_sweep(sim, now);
    size_t slot = SC_SIM_CACHE_MAX;
    for (size_t i = 0; sim->cache_count < SC_SIM_CACHE_MAX && i < SC_SIM_CACHE_MAX; i++)
        if (!sim->caches[i]) {
            slot = i;
            break;
        }
    if (slot == SC_SIM_CACHE_MAX) {
        sc_sim_reply_error(r, 429, "RESOURCE_EXHAUSTED", NULL,
                           "too many cachedContents: the simulator holds at most %u; delete "
                           "some.",
                           SC_SIM_CACHE_MAX);
    } else {
        cc->seq = ++sim->cache_seq;
        sc_sim_batch_id(sim, cc->id);
        sim->caches[slot] = cc;
        sim->cache_count++;
        sim->caches_created++;
        sc_sim_reply_json(r, 200, sc_sim_cache_doc(cc));
        cc = NULL; /* the table owns it */
    }
    pthread_mutex_unlock(&sim->cache_mu);
out:
    sc_sim_cache_free(cc);
    json_decref(norm);
    json_decref(root);
}

/* GET /v1beta/cachedContents/{id} */
void sc_sim_cache_get(sc_sim_call_t *c, sc_sim_reply_t *r)
{
    pthread_mutex_lock(&c->sim->cache_mu);
    sc_sim_cache_sweep(c->sim, sc_sim_wall_ns());
    sc_sim_cache_t *cc = sc_sim_cache_find(c->sim, c->id, NULL);
    if (cc)
        sc_sim_reply_json(r, 200, sc_sim_cache_doc(cc));
    else
        sc_sim_reply_cache_not_found(r, c->id);
    pthread_mutex_unlock(&c->sim->cache_mu);
}

static int sc_sim_cache_cmp(const void *a, const void *b)
{
    uint64_t x = (*(sc_sim_cache_t *const *)a)->seq, y = (*(sc_sim_cache_t *const *)b)->seq;
    return x < y ? -1 : x > y;
}

/* GET /v1beta/cachedContents?pageSize=&pageToken= in creation order; the page token is the seq
 * of the first cache of the next page. */
void sc_sim_cache_list(sc_sim_call_t *c, sc_sim_reply_t *r)
{
    sc_gemini_sim_t *sim = c->sim;
    uint64_t page, from;
    if (!sc_sim_page_args(c, r, &page, &from))
        return;
    sc_sim_cache_t **sel = malloc(SC_SIM_CACHE_MAX * sizeof *sel); /* borrowed pointers */
    json_t *list = json_array(), *doc = json_object();
    bool ok = sel && list && doc;
    pthread_mutex_lock(&sim->cache_mu);
    sc_sim_cache_sweep(sim, sc_sim_wall_ns());
    size_t n = 0;
    for (size_t i = 0; ok && i < SC_SIM_CACHE_MAX; i++)
        if (sim->caches[i] && sim->caches[i]->seq >= from)
            sel[n++] = sim->caches[i];
    if (ok)
        qsort(sel, n, sizeof *sel, sc_sim_cache_cmp);
    for (size_t i = 0; ok && i < n && i < page; i++)
        ok = json_array_append_new(list, sc_sim_cache_doc(sel[i])) == 0;
    if (ok && json_array_size(list) > 0) /* proto3: an empty repeated field is left out */
        ok = json_object_set(doc, "cachedContents", list) == 0;
    if (ok && n > page) {
        char tok[24];
        snprintf(tok, sizeof tok, "%" PRIu64, sel[page]->seq);
        ok = json_object_set_new(doc, "nextPageToken", json_string(tok)) == 0;
    }
    pthread_mutex_unlock(&sim->cache_mu);
    if (ok) {
        sc_sim_reply_json(r, 200, doc);
        doc = NULL;
    } else {
        sc_sim_reply_error(r, 500, "INTERNAL", NULL, "out of memory");
    }
    json_decref(list);
    json_decref(doc);
    free(sel);
}

/* PATCH /v1beta/cachedContents/{id}: only the expiration may change (§4.3). */
void sc_sim_cache_patch(sc_sim_call_t *c, sc_sim_reply_t *r)
{
    static const char *const allowed[] = {"ttl",  "expireTime", "expire_time",
                                          "name", "updateMask", "update_mask"};
    json_t *root = sc_sim_parse_body(c, r);
    if (!root)
        return;
    const char *key;
    json_t *val;
    json_object_foreach(root, key, val)
    {
        bool ok = false;
        for (size_t i = 0; i < SC_ARRAY_LEN(allowed); i++)
            ok = ok || strcmp(key, allowed[i]) == 0;
        if (!ok) {
            sc_sim_reply_invalid(r,
                                 "CachedContent field '%.64s' cannot be updated: only the "
                                 "expiration (ttl or expire_time) is updatable.",
                                 key);
            json_decref(root);
            return;
        }
    }
    int64_t now = sc_sim_wall_ns(), expire = 0;
    bool given = false;
    if (!sc_sim_cache_expiry(root, now, &expire, &given, r)) {
        json_decref(root);
        return;
    }
    json_decref(root);
    if (!given) {
        sc_sim_reply_invalid(r, "Either ttl or expire_time must be set to update a "
                                "CachedContent.");
        return;
    }
    pthread_mutex_lock(&c->sim->cache_mu);
    sc_sim_cache_sweep(c->sim, now);
    sc_sim_cache_t *cc = sc_sim_cache_find(c->sim, c->id, NULL);
    if (cc) {
        cc->expire_ns = expire;
        cc->update_ns = now;
        sc_sim_reply_json(r, 200, sc_sim_cache_doc(cc));
    } else {
        sc_sim_reply_cache_not_found(r, c->id);
    }
    pthread_mutex_unlock(&c->sim->cache_mu);
}

/* DELETE /v1beta/cachedContents/{id} -> {} */
void sc_sim_cache_delete(sc_sim_call_t *c, sc_sim_reply_t *r)
{
    size_t slot = 0;
    int64_t now = sc_sim_wall_ns();
    pthread_mutex_lock(&c->sim->cache_mu);
    sc_sim_cache_sweep(c->sim, now);
    sc_sim_cache_t *cc = sc_sim_cache_find(c->sim, c->id, &slot);
    if (cc) {
        c->sim->storage_dead += sc_sim_cache_storage(cc, now);
        c->sim->caches[slot] = NULL;
        c->sim->cache_count--;
        c->sim->caches_deleted++;
    }
    pthread_mutex_unlock(&c->sim->cache_mu);
    if (cc) {
        sc_sim_cache_free(cc);
        sc_sim_reply_json(r, 200, json_object());
    } else {
        sc_sim_reply_cache_not_found(r, c->id);
    }
}

/* ---- use by generateContent ---- */

/* generateContent with "cachedContent": no systemInstruction/tools/toolConfig beside it (§1.4),
 * a live cache of the URL's model; the cache's tokens become g->cached_tokens (§4.4) and its tools
 * and toolConfig (copies) those of norm, so that function calling is decided on them.
 * @return false with the error in r. */
bool sc_sim_cache_use(sc_gemini_sim_t *sim, json_t *norm, const json_t *cached, size_t model_index,
                      sc_sim_gen_req_t *g, sc_sim_reply_t *r)
{
    if (sc_sim_get2(norm, "systemInstruction", "system_instruction") ||
        json_object_get(norm, "tools") || sc_sim_get2(norm, "toolConfig", "tool_config")) {
        sc_sim_reply_invalid(r, "CachedContent can not be used with GenerateContent request "
                                "setting system_instruction, tools or tool_config.\n\nProposed "
                                "fix: move those values to CachedContent from GenerateContent "
                                "request.");
        return false;
    }
    const char *name = json_string_value(cached);
    size_t plen = strlen(SC_SIM_CACHE_PREFIX);
    if (!name || strncmp(name, SC_SIM_CACHE_PREFIX, plen) != 0 || !name[plen]) {
        sc_sim_reply_invalid(r, "Invalid value at 'cached_content': expected a name like "
                                "\"" SC_SIM_CACHE_PREFIX "{id}\".");
        return false;
    }
    const char *id = name + plen;
    bool ok = false, tools = false;
    pthread_mutex_lock(&sim->cache_mu);
    sc_sim_cache_sweep(sim, sc_sim_wall_ns());
    sc_sim_cache_t *cc = sc_sim_cache_find(sim, id, NULL);
    if (!cc)
        sc_sim_reply_cache_not_found(r, id);
    else if (cc->model_index != model_index)
        sc_sim_reply_invalid(r,
                             "Model used by GenerateContent request (models/%s) and "
                             "CachedContent (models/%s) has to be the same.",
                             sc_sim_models[model_index].name, sc_sim_models[cc->model_index].name);
    else {
        g->cached_tokens = cc->tokens;
        /* deep copies: the cache may be deleted while this request still reads them */
        ok = (!cc->tools || json_object_set_new(norm, "tools", json_deep_copy(cc->tools)) == 0) &&
             (!cc->tool_config ||
              json_object_set_new(norm, "toolConfig", json_deep_copy(cc->tool_config)) == 0);
        tools = cc->tools || cc->tool_config;
        if (!ok)
            sc_sim_reply_error(r, 500, "INTERNAL", NULL, "out of memory");
    }
    pthread_mutex_unlock(&sim->cache_mu);
    return ok && (!tools || sc_sim_parse_tools(norm, false, g, r));
}
