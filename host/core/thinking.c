/* thinking.c - per-model and per-scope means of the thought tokens billed per call (thinking.h). */
#include "host/core/thinking.h"

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "host/core/util.h"

typedef struct {
    char name[SC_THINKING_MODEL_MAX];
    double sum;
    long n;
} sc_thinking_model_t;

typedef struct {
    uint64_t key; /* 0: empty slot */
    double sum;
    long n;
} sc_thinking_scope_t;

/* open addressing at most half full */
#define SC_THINKING_SLOTS (2 * SC_THINKING_MAX_SCOPES)

struct sc_thinking {
    pthread_mutex_t mu; /* guards everything below */
    char default_model[SC_THINKING_MODEL_MAX];
    double default_tokens;
    sc_thinking_model_t models[SC_THINKING_MAX_MODELS];
    int n_models;
    sc_thinking_scope_t scopes[SC_THINKING_SLOTS];
    size_t n_scopes;
};

sc_thinking_t *sc_thinking_new(const char *default_model, double default_tokens)
{
    sc_thinking_t *t = calloc(1, sizeof(*t));
    if (!t)
        return NULL;
    if (pthread_mutex_init(&t->mu, NULL) != 0) {
        free(t);
        return NULL;
    }
    sc_strlcpy(t->default_model, default_model ? default_model : "", sizeof t->default_model);
    t->default_tokens = default_tokens > 0 ? default_tokens : 0;
    return t;
}

void sc_thinking_free(sc_thinking_t *t)
{
    if (!t)
        return;
    pthread_mutex_destroy(&t->mu);
    free(t);
}

static uint64_t fnv(uint64_t h, const char *s)
{
    for (const unsigned char *p = (const unsigned char *)(s ? s : ""); *p; p++) {
        h ^= *p;
        h *= 0x100000001b3ull;
    }
    h ^= 0xff; /* field separator: ("ab", "c") and ("a", "bc") differ */
    return h * 0x100000001b3ull;
}

static uint64_t scope_key(int model, const char *tenant, const char *agent, const char *stage)
{
    uint64_t h = 0xcbf29ce484222325ull ^ (uint64_t)(model + 1);
    h = fnv(fnv(fnv(h, tenant), agent), stage);
    return h ? h : 1;
}

/* The model's index, or -1 (create: add it when there is room). Called locked. */
static int model_index(sc_thinking_t *t, const char *model, int create)
{
    for (int i = 0; i < t->n_models; i++)
        if (strcmp(t->models[i].name, model) == 0)
            return i;
    if (!create || t->n_models == SC_THINKING_MAX_MODELS || strlen(model) >= SC_THINKING_MODEL_MAX)
        return -1;
    sc_strlcpy(t->models[t->n_models].name, model, SC_THINKING_MODEL_MAX);
    return t->n_models++;
}

/* The scope's slot, or NULL (create: claim an empty one while the table has room). Called
 * locked. */
static sc_thinking_scope_t *scope_slot(sc_thinking_t *t, uint64_t key, int create)
{
    for (size_t i = 0, at = (size_t)(key % SC_THINKING_SLOTS); i < SC_THINKING_SLOTS;
         i++, at = (at + 1) % SC_THINKING_SLOTS) {
        sc_thinking_scope_t *s = &t->scopes[at];
        if (s->key == key)
            return s;
        if (s->key == 0) {
            if (!create || t->n_scopes == SC_THINKING_MAX_SCOPES)
                return NULL;
            s->key = key;
            t->n_scopes++;
            return s;
        }
    }
    return NULL;
}

void sc_thinking_observe(sc_thinking_t *t, const char *model, const char *tenant,
                         const char *agent, const char *stage, long thought_tokens)
{
    if (!t || !model || thought_tokens < 0)
        return;
    pthread_mutex_lock(&t->mu);
    int m = model_index(t, model, 1);
    if (m >= 0) {
        t->models[m].sum += (double)thought_tokens;
        t->models[m].n++;
        sc_thinking_scope_t *s = scope_slot(t, scope_key(m, tenant, agent, stage), 1);
        if (s) {
            s->sum += (double)thought_tokens;
            s->n++;
        }
    }
    pthread_mutex_unlock(&t->mu);
}

double sc_thinking_estimate(sc_thinking_t *t, const char *model, const char *tenant,
                            const char *agent, const char *stage, sc_thinking_basis_t *basis)
{
    sc_thinking_basis_t why = SC_THINKING_DEFAULT;
    double est = 0;
    if (t && model) {
        pthread_mutex_lock(&t->mu);
        int m = model_index(t, model, 0);
        sc_thinking_scope_t *s = m >= 0 ? scope_slot(t, scope_key(m, tenant, agent, stage), 0)
                                        : NULL;
        if (s && s->n >= SC_THINKING_MIN_SCOPE) {
            est = s->sum / (double)s->n;
            why = SC_THINKING_SCOPE;
        } else if (m >= 0 && t->models[m].n > 0) {
            est = t->models[m].sum / (double)t->models[m].n;
            why = SC_THINKING_MODEL;
        } else if (strcmp(model, t->default_model) == 0) {
            est = t->default_tokens;
        }
        pthread_mutex_unlock(&t->mu);
    }
    if (basis)
        *basis = why;
    return est;
}
