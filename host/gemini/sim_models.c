/* sim_models.c - the simulator's Model resources (GET /v1beta/models, GET /v1beta/models/{model})
 * and its embedding models' embedContent and batchEmbedContents: deterministic unit vectors
 * seeded by the text (gemini-api.md §0). */
#include <jansson.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "host/core/util.h"
#include "host/gemini/sim_internal.h"

/* ---- limits ---- */

#define SC_SIM_INPUT_TOKEN_LIMIT  1048576 /* inputTokenLimit of the generation models */
#define SC_SIM_OUTPUT_TOKEN_LIMIT 65536   /* outputTokenLimit: the largest maxOutputTokens */
#define SC_SIM_EMBED_INPUT_LIMIT  2048    /* inputTokenLimit of the embedding models */
#define SC_SIM_MAX_TEMPERATURE    2.0
#define SC_SIM_DESCRIPTION_MAX    256
#define SC_SIM_EMBED_BATCH_MAX    100 /* requests of one batchEmbedContents */
#define SC_SIM_REAL_PRECISION     9   /* significant digits of a real (embedding values...) */

/* The embedding models; SC_SIM_EMBED_MODEL_COUNT entries (sim_internal.h). */
const sc_sim_embed_model_t sc_sim_embed_models[] = {
    {"gemini-embedding-001", "Gemini Embedding 001", "001", 3072},
    {"text-embedding-004", "Text Embedding 004", "004", 768},
};
_Static_assert(SC_ARRAY_LEN(sc_sim_embed_models) == SC_SIM_EMBED_MODEL_COUNT,
               "SC_SIM_EMBED_MODEL_COUNT must match sc_sim_embed_models");

static const char *const sc_sim_task_types[] = {
    "TASK_TYPE_UNSPECIFIED", "RETRIEVAL_QUERY",   "RETRIEVAL_DOCUMENT",
    "SEMANTIC_SIMILARITY",   "CLASSIFICATION",    "CLUSTERING",
    "QUESTION_ANSWERING",    "FACT_VERIFICATION", "CODE_RETRIEVAL_QUERY",
};

const sc_sim_embed_model_t *sc_sim_embed_model_find(const char *name)
{
    for (size_t i = 0; i < SC_SIM_EMBED_MODEL_COUNT; i++)
        if (strcmp(sc_sim_embed_models[i].name, name) == 0)
            return &sc_sim_embed_models[i];
    return NULL;
}

/* ---- the Model resources ---- */

/* Serialize doc (a new reference, stolen) with SC_SIM_REAL_PRECISION significant digits per real
 * (0.95, not 0.94999999999999996). */
static void sc_sim_reply_short(sc_sim_reply_t *r, json_t *doc)
{
    free(r->body);
    r->code = 200;
    r->body =
        doc ? json_dumps(doc, JSON_COMPACT | JSON_REAL_PRECISION(SC_SIM_REAL_PRECISION)) : NULL;
    r->len = r->body ? strlen(r->body) : 0;
    json_decref(doc);
}

/* The Model resource of entry i: the generation models of sc_sim_models, then the embedding
 * models. @return a new reference, or NULL when out of memory. */
static json_t *sc_sim_model_doc(size_t i)
{
    char name[SC_SIM_ID_MAX + 16], desc[SC_SIM_DESCRIPTION_MAX];
    if (i < SC_SIM_MODEL_COUNT) {
        const sc_sim_model_t *m = &sc_sim_models[i];
        snprintf(name, sizeof name, "models/%s", m->name);
        snprintf(desc, sizeof desc, "%s, as the scrimp Gemini simulator answers it.",
                 m->display_name);
        return json_pack("{s:s, s:s, s:s, s:s, s:s, s:i, s:i, s:[s, s, s, s], s:f, s:f, s:f, "
                         "s:i, s:b}",
                         "name", name, "baseModelId", m->name, "version", m->version, "displayName",
                         m->display_name, "description", desc, "inputTokenLimit",
                         SC_SIM_INPUT_TOKEN_LIMIT, "outputTokenLimit", SC_SIM_OUTPUT_TOKEN_LIMIT,
                         "supportedGenerationMethods", "generateContent", "countTokens",
                         "createCachedContent", "batchGenerateContent", "temperature",
                         m->temperature, "maxTemperature", SC_SIM_MAX_TEMPERATURE, "topP", m->top_p,
                         "topK", m->top_k, "thinking", m->can_think);
    }
    const sc_sim_embed_model_t *em = &sc_sim_embed_models[i - SC_SIM_MODEL_COUNT];
    snprintf(name, sizeof name, "models/%s", em->name);
    snprintf(desc, sizeof desc,
             "%s: deterministic unit vectors (%u values by default, at most %u), as the scrimp "
             "Gemini simulator computes them.",
             em->display_name, SC_SIM_EMBED_DIMS, em->dims_max);
    return json_pack("{s:s, s:s, s:s, s:s, s:s, s:i, s:i, s:[s, s]}", "name", name, "baseModelId",
                     em->name, "version", em->version, "displayName", em->display_name,
                     "description", desc, "inputTokenLimit", SC_SIM_EMBED_INPUT_LIMIT,
                     "outputTokenLimit", 1, "supportedGenerationMethods", "embedContent",
                     "batchEmbedContents");
}

/* GET /v1beta/models?pageSize=&pageToken= -> {"models": [...], "nextPageToken"}; the page token
 * is the index of the first model of the next page. */
void sc_sim_models_list(sc_sim_call_t *c, sc_sim_reply_t *r)
{
    const size_t total = SC_SIM_MODEL_COUNT + SC_SIM_EMBED_MODEL_COUNT;
    uint64_t page, from;
    if (!sc_sim_page_args(c, r, &page, &from))
        return;
    json_t *list = json_array(), *doc = json_object();
    bool ok = list && doc;
    size_t i = from < total ? (size_t)from : total;
    for (size_t n = 0; ok && i < total && n < page; i++, n++)
        ok = json_array_append_new(list, sc_sim_model_doc(i)) == 0;
    ok = ok && json_object_set(doc, "models", list) == 0;
    if (ok && i < total) {
        char tok[24];
        snprintf(tok, sizeof tok, "%zu", i);
        ok = json_object_set_new(doc, "nextPageToken", json_string(tok)) == 0;
    }
    json_decref(list);
    if (!ok) {
        json_decref(doc);
        sc_sim_reply_error(r, 500, "INTERNAL", NULL, "out of memory");
        return;
    }
    sc_sim_reply_short(r, doc);
}

/* GET /v1beta/models/{model} */
void sc_sim_model_get(sc_sim_call_t *c, sc_sim_reply_t *r)
{
    size_t index = 0;
    const sc_sim_embed_model_t *em = sc_sim_embed_model_find(c->id);
    if (em)
        index = SC_SIM_MODEL_COUNT + (size_t)(em - sc_sim_embed_models);
    else if (!sc_sim_model_find(c->id, &index)) {
        sc_sim_reply_error(r, 404, "NOT_FOUND", NULL,
                           "models/%s is not found for API version v1beta, or is not supported "
                           "for GetModel. Call ListModels to see the list of available models "
                           "and their supported methods.",
                           c->id);
        return;
    }
    json_t *doc = sc_sim_model_doc(index);
    if (!doc) {
        sc_sim_reply_error(r, 500, "INTERNAL", NULL, "out of memory");
        return;
    }
    sc_sim_reply_short(r, doc);
}

/* ---- embedContent and batchEmbedContents ---- */

/* The embedding model of the call's path: a model that only generates cannot embed (400), an
 * unknown one is not found (404). @return borrowed, or NULL with the error in r. */
static const sc_sim_embed_model_t *sc_sim_embedder(const sc_sim_call_t *c, const char *method,
                                                   sc_sim_reply_t *r)
{
    const sc_sim_embed_model_t *em = sc_sim_embed_model_find(c->id);
    if (em)
        return em;
    if (sc_sim_model_find(c->id, NULL))
        sc_sim_reply_invalid(r,
                             "models/%s does not support %s: only the embedding models "
                             "(models/gemini-embedding-001, models/text-embedding-004) embed.",
                             c->id, method);
    else
        sc_sim_reply_error(r, 404, "NOT_FOUND", NULL,
                           "models/%s is not found for API version v1beta, or is not supported "
                           "for %s. Call ListModels to see the list of available models and "
                           "their supported methods.",
                           c->id, method);
    return NULL;
}

/* A unit vector of dims values, the same for the same seed; a shorter one is the longer one's
 * prefix, rescaled. @return a new {"values": [...]}, or NULL when out of memory. */
static json_t *sc_sim_embed_values(uint64_t seed, unsigned dims)
{
    double *v = malloc(dims * sizeof *v), sum = 0.0;
    json_t *values = json_array();
    bool ok = v && values;
    uint64_t state = seed;
    for (unsigned i = 0; ok && i < dims; i++) {
        /* Box-Muller: Gaussian coordinates give a direction uniform on the sphere */
        double u1 = sc_sim_unit(&state), u2 = sc_sim_unit(&state);
        v[i] = sqrt(-2.0 * log(1.0 - u1)) * cos(2.0 * M_PI * u2);
        sum += v[i] * v[i];
    }
    double norm = sum > 0.0 ? sqrt(sum) : 1.0;
    for (unsigned i = 0; ok && i < dims; i++)
        ok = json_array_append_new(values, json_real(v[i] / norm)) == 0;
    free(v);
    if (!ok) {
        json_decref(values);
        return NULL;
    }
    return json_pack("{s:o}", "values", values);
}

/* One EmbedContentRequest req (borrowed) for em; where names it in errors; batched: its model is
 * required. @return a new ContentEmbedding, or NULL with the error in r. */
static json_t *sc_sim_embed_one(const sc_sim_embed_model_t *em, const json_t *req,
                                const char *where, bool batched, sc_sim_reply_t *r)
{
    static const char *const keys[] = {"model",
                                       "content",
                                       "taskType",
                                       "task_type",
                                       "title",
                                       "outputDimensionality",
                                       "output_dimensionality"};
    if (!json_is_object(req)) {
        sc_sim_reply_invalid(r, "Invalid value at '%s': expected an EmbedContentRequest.", where);
        return NULL;
    }
    if (!sc_sim_known_keys(req, keys, SC_ARRAY_LEN(keys), where, r))
        return NULL;
    json_t *model = json_object_get(req, "model");
    char want[SC_SIM_ID_MAX + 16];
    snprintf(want, sizeof want, "models/%s", em->name);
    if ((batched && !model) ||
        (model && (!json_is_string(model) || strcmp(json_string_value(model), want) != 0))) {
        sc_sim_reply_invalid(r,
                             "* %s.model: the model of each request must be the model of the "
                             "call (%s).",
                             where, want);
        return NULL;
    }
    json_t *content = json_object_get(req, "content");
    json_t *parts = json_object_get(content, "parts");
    if (!json_is_object(content) || !json_is_array(parts) || json_array_size(parts) == 0) {
        sc_sim_reply_invalid(r, "* %s.content: content with parts is required.", where);
        return NULL;
    }
    uint64_t h = SC_SIM_FNV_OFFSET;
    size_t i;
    json_t *part;
    json_array_foreach(parts, i, part)
    {
        json_t *text = json_object_get(part, "text");
        if (!json_is_string(text)) {
            sc_sim_reply_invalid(r, "* %s.content.parts[%zu]: only text parts can be embedded.",
                                 where, i);
            return NULL;
        }
        h = sc_sim_fnv(h, json_string_value(text), json_string_length(text));
        h = sc_sim_fnv(h, "\n", 1);
    }
    json_t *task = sc_sim_get2(req, "taskType", "task_type");
    if (task) {
        bool ok = false;
        for (size_t k = 0; json_is_string(task) && k < SC_ARRAY_LEN(sc_sim_task_types); k++)
            ok = ok || strcmp(json_string_value(task), sc_sim_task_types[k]) == 0;
        if (!ok) {
            sc_sim_reply_invalid(r,
                                 "Invalid value at '%s.task_type' (type.googleapis.com/google.ai."
                                 "generativelanguage.v1beta.TaskType), \"%.32s\"",
                                 where, json_is_string(task) ? json_string_value(task) : "");
            return NULL;
        }
    }
    json_t *title = json_object_get(req, "title");
    if (title && !json_is_string(title)) {
        sc_sim_reply_invalid(r, "Invalid value at '%s.title' (TYPE_STRING).", where);
        return NULL;
    }
    unsigned dims = SC_SIM_EMBED_DIMS;
    json_t *od = sc_sim_get2(req, "outputDimensionality", "output_dimensionality");
    if (od) {
        long long v = 0;
        if (!sc_sim_json_int(od, &v) || v < 1 || v > (long long)em->dims_max) {
            sc_sim_reply_invalid(r,
                                 "* %s.output_dimensionality: must be in the range [1, %u] for "
                                 "%s.",
                                 where, em->dims_max, want);
            return NULL;
        }
        dims = (unsigned)v;
    }
    json_t *e = sc_sim_embed_values(h, dims);
    if (!e)
        sc_sim_reply_error(r, 500, "INTERNAL", NULL, "out of memory");
    return e;
}

/* POST /v1beta/models/{model}:embedContent -> {"embedding": {"values": [...]}} */
void sc_sim_embed(sc_sim_call_t *c, sc_sim_reply_t *r)
{
    const sc_sim_embed_model_t *em = sc_sim_embedder(c, "embedContent", r);
    json_t *root = em ? sc_sim_parse_body(c, r) : NULL;
    json_t *e = root ? sc_sim_embed_one(em, root, "EmbedContentRequest", false, r) : NULL;
    if (e) /* "o" steals e */
        sc_sim_reply_short(r, json_pack("{s:o}", "embedding", e));
    json_decref(root);
}

/* POST /v1beta/models/{model}:batchEmbedContents -> {"embeddings": [{"values": [...]}, ...]} in
 * the order of requests. */
void sc_sim_batch_embed(sc_sim_call_t *c, sc_sim_reply_t *r)
{
    static const char *const keys[] = {"requests"};
    json_t *list = NULL;
    const sc_sim_embed_model_t *em = sc_sim_embedder(c, "batchEmbedContents", r);
    json_t *root = em ? sc_sim_parse_body(c, r) : NULL;
    if (!root || !sc_sim_known_keys(root, keys, SC_ARRAY_LEN(keys), "", r))
        goto out;
    json_t *reqs = json_object_get(root, "requests");
    if (!json_is_array(reqs) || json_array_size(reqs) == 0 ||
        json_array_size(reqs) > SC_SIM_EMBED_BATCH_MAX) {
        sc_sim_reply_invalid(r,
                             "* BatchEmbedContentsRequest.requests: between 1 and %d requests "
                             "can be in one batch.",
                             SC_SIM_EMBED_BATCH_MAX);
        goto out;
    }
    list = json_array();
    if (!list) {
        sc_sim_reply_error(r, 500, "INTERNAL", NULL, "out of memory");
        goto out;
    }
    size_t i;
    json_t *req;
    json_array_foreach(reqs, i, req)
    {
        char where[64];
        snprintf(where, sizeof where, "requests[%zu]", i);
        json_t *e = sc_sim_embed_one(em, req, where, true, r);
        if (!e || json_array_append_new(list, e) != 0) {
            if (e)
                sc_sim_reply_error(r, 500, "INTERNAL", NULL, "out of memory");
            goto out;
        }
    }
    sc_sim_reply_short(r, json_pack("{s:O}", "embeddings", list));
out:
    json_decref(list);
    json_decref(root);
}
