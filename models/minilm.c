/* minilm.c - owns the f32 weight arena of a BERT encoder loaded from config.json + model.safetensors. */
#include "models/minilm.h"

#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "models/safetensors.h"

#define MINILM_PATH_MAX     4096
#define MINILM_MAX_DIM      16384    /* hidden, ffn: far above any BERT */
#define MINILM_MAX_VOCAB    1000000
#define MINILM_MAX_POS      65536
#define MINILM_MAX_TYPES    1024
#define MINILM_ARENA_ALIGN  64       /* cache line, and enough for any SIMD load */

/* ---- config.json ---- */

/* One positive integer field of the config (root borrowed). */
static sc_status_t config_int(const char *path, const json_t *root, const char *key, int max,
                              int *out, char *errbuf, size_t errlen)
{
    const json_t *v = json_object_get(root, key); /* borrowed */
    if (!json_is_integer(v)) {
        snprintf(errbuf, errlen, "%s: \"%s\" missing or not an integer", path, key);
        return SC_ERR_INVALID;
    }
    json_int_t i = json_integer_value(v);
    if (i < 1 || i > max) {
        snprintf(errbuf, errlen, "%s: \"%s\" is %lld, expected 1..%d", path, key, (long long)i,
                 max);
        return SC_ERR_INVALID;
    }
    *out = (int)i;
    return SC_OK;
}

static sc_status_t load_config(const char *path, sc_minilm_t *m, char *errbuf, size_t errlen)
{
    sc_status_t rc = SC_OK;
    json_error_t jerr;
    json_t *root = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr); /* new reference */
    if (!root) {
        snprintf(errbuf, errlen, "%s: %s", path, jerr.text);
        rc = SC_ERR_IO;
        goto out;
    }
    if (!json_is_object(root)) {
        snprintf(errbuf, errlen, "%s: not a JSON object", path);
        rc = SC_ERR_INVALID;
        goto out;
    }
    if ((rc = config_int(path, root, "vocab_size", MINILM_MAX_VOCAB, &m->vocab, errbuf, errlen)) ||
        (rc = config_int(path, root, "hidden_size", MINILM_MAX_DIM, &m->hidden, errbuf, errlen)) ||
        (rc = config_int(path, root, "num_hidden_layers", SC_MINILM_MAX_LAYERS, &m->layers,
                         errbuf, errlen)) ||
        (rc = config_int(path, root, "num_attention_heads", MINILM_MAX_DIM, &m->heads, errbuf,
                         errlen)) ||
        (rc = config_int(path, root, "intermediate_size", MINILM_MAX_DIM, &m->ffn, errbuf,
                         errlen)) ||
        (rc = config_int(path, root, "max_position_embeddings", MINILM_MAX_POS, &m->max_pos,
                         errbuf, errlen)) ||
        (rc = config_int(path, root, "type_vocab_size", MINILM_MAX_TYPES, &m->type_vocab, errbuf,
                         errlen)))
        goto out;
    const json_t *eps = json_object_get(root, "layer_norm_eps"); /* borrowed */
    if (!json_is_number(eps) || !(json_number_value(eps) > 0) || json_number_value(eps) > 1) {
        snprintf(errbuf, errlen, "%s: \"layer_norm_eps\" missing or not in (0, 1]", path);
        rc = SC_ERR_INVALID;
        goto out;
    }
    m->eps = (float)json_number_value(eps);
    if (m->hidden % m->heads != 0) {
        snprintf(errbuf, errlen, "%s: hidden_size %d is not divisible by num_attention_heads %d",
                 path, m->hidden, m->heads);
        rc = SC_ERR_INVALID;
        goto out;
    }
    /* absent means the usual BERT activation; anything else would need another forward */
    const json_t *act = json_object_get(root, "hidden_act"); /* borrowed */
    if (act && (!json_is_string(act) || strcmp(json_string_value(act), "gelu") != 0)) {
        snprintf(errbuf, errlen, "%s: hidden_act must be \"gelu\" (the exact erf GELU)", path);
        rc = SC_ERR_INVALID;
        goto out;
    }
out:
    json_decref(root);
    return rc;
}

/* ---- weights ---- */

typedef struct {
    sc_safetensors_t *st;
    const char *prefix; /* "" or "bert." */
    float *next;        /* bump pointer into the arena */
} loader_t;

static size_t aligned_floats(size_t n)
{
    size_t a = MINILM_ARENA_ALIGN / sizeof(float);
    return (n + a - 1) / a * a;
}

/* Take n floats from the arena, keeping each array aligned. Sizes were summed beforehand
 * (arena_floats), so this cannot run out. */
static float *take(loader_t *ld, size_t n)
{
    float *p = ld->next;
    ld->next += aligned_floats(n);
    return p;
}

/* Read tensor prefix+name of the given shape into dst. */
static sc_status_t read_tensor(loader_t *ld, const char *name, int64_t d0, int64_t d1, float *dst,
                               char *errbuf, size_t errlen)
{
    char full[SC_TENSOR_NAME_MAX];
    int n = snprintf(full, sizeof full, "%s%s", ld->prefix, name);
    if (n < 0 || (size_t)n >= sizeof full) {
        snprintf(errbuf, errlen, "tensor name %s%s too long", ld->prefix, name);
        return SC_ERR_INVALID;
    }
    int64_t shape[2] = {d0, d1};
    return sc_safetensors_read_f32(ld->st, full, shape, d1 ? 2 : 1, dst, errbuf, errlen);
}

/* Allocate and fill one array (1-D when d1 == 0). */
static sc_status_t load_array(loader_t *ld, const char *name, int64_t d0, int64_t d1, float **out,
                              char *errbuf, size_t errlen)
{
    *out = take(ld, (size_t)d0 * (size_t)(d1 ? d1 : 1));
    return read_tensor(ld, name, d0, d1, *out, errbuf, errlen);
}

static size_t arena_floats(const sc_minilm_t *m)
{
    size_t h = (size_t)m->hidden, f = (size_t)m->ffn;
    size_t total = aligned_floats((size_t)m->vocab * h) + aligned_floats((size_t)m->max_pos * h) +
                   aligned_floats((size_t)m->type_vocab * h) + 2 * aligned_floats(h);
    size_t per_layer = aligned_floats(3 * h * h) + aligned_floats(3 * h) + aligned_floats(h * h) +
                       aligned_floats(h) * 6 + aligned_floats(f * h) + aligned_floats(f) +
                       aligned_floats(h * f);
    return total + per_layer * (size_t)m->layers;
}

static sc_status_t load_layer(loader_t *ld, const sc_minilm_t *m, int l, sc_minilm_layer_t *L,
                              char *errbuf, size_t errlen)
{
    sc_status_t rc;
    int64_t h = m->hidden, f = m->ffn;
    char name[SC_TENSOR_NAME_MAX];
    static const char *const qkv[3] = {"query", "key", "value"};
    L->qkv_w = take(ld, (size_t)(3 * h * h));
    L->qkv_b = take(ld, (size_t)(3 * h));
    for (int i = 0; i < 3; i++) {
        snprintf(name, sizeof name, "encoder.layer.%d.attention.self.%s.weight", l, qkv[i]);
        if ((rc = read_tensor(ld, name, h, h, L->qkv_w + (size_t)(i * h * h), errbuf, errlen)))
            return rc;
        snprintf(name, sizeof name, "encoder.layer.%d.attention.self.%s.bias", l, qkv[i]);
        if ((rc = read_tensor(ld, name, h, 0, L->qkv_b + (size_t)(i * h), errbuf, errlen)))
            return rc;
    }
    struct {
        const char *suffix;
        int64_t d0, d1;
        float **dst;
    } parts[] = {
        {"attention.output.dense.weight", h, h, &L->o_w},
        {"attention.output.dense.bias", h, 0, &L->o_b},
        {"attention.output.LayerNorm.weight", h, 0, &L->ln1_g},
        {"attention.output.LayerNorm.bias", h, 0, &L->ln1_b},
        {"intermediate.dense.weight", f, h, &L->ff1_w},
        {"intermediate.dense.bias", f, 0, &L->ff1_b},
        {"output.dense.weight", h, f, &L->ff2_w},
        {"output.dense.bias", h, 0, &L->ff2_b},
        {"output.LayerNorm.weight", h, 0, &L->ln2_g},
        {"output.LayerNorm.bias", h, 0, &L->ln2_b},
    };
    for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++) {
        snprintf(name, sizeof name, "encoder.layer.%d.%s", l, parts[i].suffix);
        if ((rc = load_array(ld, name, parts[i].d0, parts[i].d1, parts[i].dst, errbuf, errlen)))
            return rc;
    }
    return SC_OK;
}

sc_status_t sc_minilm_load(const char *model_dir, sc_minilm_t **out, char *errbuf, size_t errlen)
{
    sc_status_t rc = SC_OK;
    loader_t ld = {0};
    char path[MINILM_PATH_MAX];
    *out = NULL;
    sc_minilm_t *m = calloc(1, sizeof *m);
    if (!m) {
        snprintf(errbuf, errlen, "%s: out of memory", model_dir);
        rc = SC_ERR_NOMEM;
        goto out;
    }
    if ((size_t)snprintf(path, sizeof path, "%s/config.json", model_dir) >= sizeof path) {
        snprintf(errbuf, errlen, "%s: model directory path too long", model_dir);
        rc = SC_ERR_INVALID_ARG;
        goto out;
    }
    if ((rc = load_config(path, m, errbuf, errlen)))
        goto out;
    snprintf(path, sizeof path, "%s/model.safetensors", model_dir);
    if ((rc = sc_safetensors_open(path, &ld.st, errbuf, errlen)))
        goto out;
    if (sc_safetensors_find(ld.st, "embeddings.word_embeddings.weight"))
        ld.prefix = "";
    else if (sc_safetensors_find(ld.st, "bert.embeddings.word_embeddings.weight"))
        ld.prefix = "bert.";
    else {
        snprintf(errbuf, errlen, "%s: tensor embeddings.word_embeddings.weight: not found (nor "
                 "with a bert. prefix): not a BERT checkpoint", path);
        rc = SC_ERR_INVALID;
        goto out;
    }
    size_t bytes = arena_floats(m) * sizeof(float);
    if (posix_memalign(&m->arena, MINILM_ARENA_ALIGN, bytes) != 0) {
        m->arena = NULL;
        snprintf(errbuf, errlen, "%s: out of memory for %zu bytes of weights", path, bytes);
        rc = SC_ERR_NOMEM;
        goto out;
    }
    ld.next = m->arena;
    int64_t h = m->hidden;
    if ((rc = load_array(&ld, "embeddings.word_embeddings.weight", m->vocab, h, &m->word_emb,
                         errbuf, errlen)) ||
        (rc = load_array(&ld, "embeddings.position_embeddings.weight", m->max_pos, h, &m->pos_emb,
                         errbuf, errlen)) ||
        (rc = load_array(&ld, "embeddings.token_type_embeddings.weight", m->type_vocab, h,
                         &m->type_emb, errbuf, errlen)) ||
        (rc = load_array(&ld, "embeddings.LayerNorm.weight", h, 0, &m->emb_ln_g, errbuf,
                         errlen)) ||
        (rc = load_array(&ld, "embeddings.LayerNorm.bias", h, 0, &m->emb_ln_b, errbuf, errlen)))
        goto out;
    for (int l = 0; l < m->layers; l++)
        if ((rc = load_layer(&ld, m, l, &m->layer[l], errbuf, errlen)))
            goto out;
out:
    sc_safetensors_close(ld.st);
    if (rc) {
        sc_minilm_free(m);
        return rc;
    }
    *out = m;
    return SC_OK;
}

void sc_minilm_free(sc_minilm_t *m)
{
    if (!m)
        return;
    free(m->arena);
    free(m);
}
