/* turn_vecs.c - a set-associative store of pruning's turn vectors (turn_vecs.h). */
#include "pipelines/stages/turn_vecs.h"

#include <stdlib.h>
#include <string.h>

#include <xxhash.h>

typedef struct {
    uint64_t key;  /* XXH3 of the text, with its length and max_tokens mixed in; 0: empty */
    uint64_t used; /* the store's clock at the last get or put */
} tv_slot_t;

struct sc_turn_vecs {
    size_t nsets; /* a power of two */
    int dim;
    uint64_t clock, hits, misses;
    tv_slot_t *slots; /* [nsets * SC_TURN_VECS_WAYS] */
    float *vecs;      /* [nsets * SC_TURN_VECS_WAYS * dim] */
};

sc_turn_vecs_t *sc_turn_vecs_new(size_t entries, int dim)
{
    if (entries == 0 || dim < 1)
        return NULL;
    size_t nsets = 1;
    while (nsets * SC_TURN_VECS_WAYS < entries)
        nsets <<= 1;
    sc_turn_vecs_t *tv = calloc(1, sizeof *tv);
    if (!tv)
        return NULL;
    tv->nsets = nsets;
    tv->dim = dim;
    tv->slots = calloc(nsets * SC_TURN_VECS_WAYS, sizeof *tv->slots);
    tv->vecs = malloc(nsets * SC_TURN_VECS_WAYS * (size_t)dim * sizeof *tv->vecs);
    if (!tv->slots || !tv->vecs) {
        sc_turn_vecs_free(tv);
        return NULL;
    }
    return tv;
}

void sc_turn_vecs_free(sc_turn_vecs_t *tv)
{
    if (!tv)
        return;
    free(tv->slots);
    free(tv->vecs);
    free(tv);
}

static uint64_t tv_key(const char *text, size_t len, int max_tokens)
{
    uint64_t seed = ((uint64_t)len << 16) ^ (uint64_t)(uint32_t)max_tokens;
    uint64_t k = XXH3_64bits_withSeed(text, len, seed);
    return k ? k : 1; /* 0 marks an empty slot */
}

const float *sc_turn_vecs_get(sc_turn_vecs_t *tv, const char *text, size_t len, int max_tokens)
{
    uint64_t k = tv_key(text, len, max_tokens);
    size_t base = (size_t)(k & (tv->nsets - 1)) * SC_TURN_VECS_WAYS;
    for (size_t w = 0; w < SC_TURN_VECS_WAYS; w++)
        if (tv->slots[base + w].key == k) {
            tv->slots[base + w].used = ++tv->clock;
            tv->hits++;
            return tv->vecs + (base + w) * (size_t)tv->dim;
        }
    tv->misses++;
    return NULL;
}

void sc_turn_vecs_put(sc_turn_vecs_t *tv, const char *text, size_t len, int max_tokens,
                      const float *vec)
{
    uint64_t k = tv_key(text, len, max_tokens);
    size_t base = (size_t)(k & (tv->nsets - 1)) * SC_TURN_VECS_WAYS, at = base;
    for (size_t w = 0; w < SC_TURN_VECS_WAYS; w++) {
        tv_slot_t *s = &tv->slots[base + w];
        if (s->key == k || s->key == 0) { /* already there, or a free slot */
            at = base + w;
            break;
        }
        if (s->used < tv->slots[at].used)
            at = base + w;
    }
    tv->slots[at].key = k;
    tv->slots[at].used = ++tv->clock;
    memcpy(tv->vecs + at * (size_t)tv->dim, vec, (size_t)tv->dim * sizeof *vec);
}

void sc_turn_vecs_counts(const sc_turn_vecs_t *tv, uint64_t *hits, uint64_t *misses)
{
    *hits = tv ? tv->hits : 0;
    *misses = tv ? tv->misses : 0;
}
