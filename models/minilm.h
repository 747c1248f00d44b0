/* minilm.h - the weights of a BERT encoder such as all-MiniLM-L6-v2 (DESIGN §7), loaded from
 * config.json + model.safetensors into f32 host memory; the CPU forward reads them directly and
 * the GPU forward uploads them. */
#ifndef SC_MINILM_H
#define SC_MINILM_H

#include <stddef.h>

#include "host/core/status.h"

#define SC_MINILM_MAX_LAYERS 24

typedef struct {
    float *qkv_w; /* [3*hidden, hidden]: query, key, value rows stacked (PyTorch [out, in]) */
    float *qkv_b; /* [3*hidden] */
    float *o_w, *o_b;        /* attention.output.dense [hidden, hidden], [hidden] */
    float *ln1_g, *ln1_b;    /* attention.output.LayerNorm */
    float *ff1_w, *ff1_b;    /* intermediate.dense [ffn, hidden], [ffn] */
    float *ff2_w, *ff2_b;    /* output.dense [hidden, ffn], [hidden] */
    float *ln2_g, *ln2_b;    /* output.LayerNorm */
} sc_minilm_layer_t;

typedef struct {
    int vocab, hidden, layers, heads, ffn, max_pos, type_vocab;
    float eps;
    float *word_emb;  /* [vocab, hidden] */
    float *pos_emb;   /* [max_pos, hidden] */
    float *type_emb;  /* [type_vocab, hidden] */
    float *emb_ln_g, *emb_ln_b;
    sc_minilm_layer_t layer[SC_MINILM_MAX_LAYERS];
    void *arena;      /* owned: every array above points into it */
} sc_minilm_t;

/* Load model_dir/config.json and model_dir/model.safetensors (F32, F16 or BF16), checking every
 * shape against the config. Errors name the file (and the tensor).
 * @remark the caller frees with sc_minilm_free(). */
sc_status_t sc_minilm_load(const char *model_dir, sc_minilm_t **out, char *errbuf, size_t errlen);
void sc_minilm_free(sc_minilm_t *m); /* NULL ok */

#endif
