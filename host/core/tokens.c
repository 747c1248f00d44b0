/* tokens.c - local Gemini prompt-token estimate and its per-model online calibration. */
#include "host/core/tokens.h"

#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "host/core/util.h"

/* A letter run up to this many bytes is one token; each further SC_TOKENS_LETTERS_PER_TOKEN
 * bytes (started) add one. Fitted by eye on English: "the", "because", "shipping" are one token
 * in Gemini's vocabulary, "internationalisation" is about four. */
#define SC_TOKENS_SHORT_WORD        8
#define SC_TOKENS_LETTERS_PER_TOKEN 5

typedef struct {
    char model[SC_TOKENS_MODEL_MAX];
    double factor; /* actual / base, moving average */
    double err;    /* moving average of |est - actual| / actual */
    long samples;
} sc_tokens_model_t;

struct sc_tokens {
    pthread_mutex_t mu; /* guards everything below; locked for reads too (const API casts) */
    sc_tokens_model_t models[SC_TOKENS_MAX_MODELS];
    int n_models;
};

sc_tokens_t *sc_tokens_new(void)
{
    sc_tokens_t *t = calloc(1, sizeof(*t));
    if (!t)
        return NULL;
    if (pthread_mutex_init(&t->mu, NULL) != 0) {
        free(t);
        return NULL;
    }
    return t;
}

void sc_tokens_free(sc_tokens_t *t)
{
    if (!t)
        return;
    pthread_mutex_destroy(&t->mu);
    free(t);
}

/* ---- the base estimate ---- */

static int sc_tokens_is_letter(unsigned char c)
{
    /* ASCII letters, the apostrophe inside words, and 2-byte UTF-8 (accented Latin, Greek,
     * Cyrillic) which SentencePiece merges into words much as it does ASCII. */
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= 0xC0 && c < 0xE0) ||
           (c >= 0x80 && c < 0xC0);
}

long sc_tokens_base(const char *text, size_t len)
{
    const unsigned char *s = (const unsigned char *)text;
    long n = 0;
    size_t i = 0;

    if (!text || len == 0)
        return 0;
    while (i < len) {
        unsigned char c = s[i];
        if (sc_tokens_is_letter(c) && !(c >= 0x80 && c < 0xC0)) {
            size_t start = i;
            while (i < len && sc_tokens_is_letter(s[i]))
                i++;
            size_t wl = i - start;
            n += 1;
            if (wl > SC_TOKENS_SHORT_WORD)
                n += (long)((wl - SC_TOKENS_SHORT_WORD + SC_TOKENS_LETTERS_PER_TOKEN - 1) /
                            SC_TOKENS_LETTERS_PER_TOKEN);
        } else if (c >= '0' && c <= '9') {
            n++;
            i++;
        } else if (c == '\n' || c == '\r') {
            n++;
            while (i < len && (s[i] == '\n' || s[i] == '\r' || s[i] == ' '))
                i++;
        } else if (c == ' ' || c == '\t') {
            /* spaces fold into the next piece; a run of 4+ (indentation) is a token */
            size_t start = i;
            while (i < len && (s[i] == ' ' || s[i] == '\t'))
                i++;
            if (i - start >= 4)
                n++;
        } else if (c >= 0xE0) {
            /* 3- or 4-byte character: CJK, emoji, symbols */
            n++;
            i++;
            while (i < len && s[i] >= 0x80 && s[i] < 0xC0)
                i++;
        } else if (c >= 0x80) {
            i++; /* a stray continuation byte */
        } else {
            /* punctuation and symbols; a repeated one ("---", "...", "==") is one token */
            n++;
            i++;
            while (i < len && s[i] == c)
                i++;
        }
    }
    return n > 0 ? n : 1;
}

/* ---- per-model calibration ---- */

/* The model's slot, created when create is set and there is room; NULL otherwise. mu held. */
static sc_tokens_model_t *sc_tokens_slot(sc_tokens_t *t, const char *model, int create)
{
    const char *m = model ? model : "";
    for (int i = 0; i < t->n_models; i++)
        if (strcmp(t->models[i].model, m) == 0)
            return &t->models[i];
    if (!create || t->n_models >= SC_TOKENS_MAX_MODELS || strlen(m) >= SC_TOKENS_MODEL_MAX)
        return NULL;
    sc_tokens_model_t *slot = &t->models[t->n_models++];
    sc_strlcpy(slot->model, m, sizeof(slot->model));
    slot->factor = 1.0;
    slot->err = 0.0;
    slot->samples = 0;
    return slot;
}

double sc_tokens_factor(const sc_tokens_t *t, const char *model)
{
    double f = 1.0;
    if (!t)
        return f;
    sc_tokens_t *mt = (sc_tokens_t *)t; /* the mutex only */
    pthread_mutex_lock(&mt->mu);
    const sc_tokens_model_t *slot = sc_tokens_slot(mt, model, 0);
    if (slot)
        f = slot->factor;
    pthread_mutex_unlock(&mt->mu);
    return f;
}

long sc_tokens_estimate(const sc_tokens_t *t, const char *model, const char *text, size_t len)
{
    long base = sc_tokens_base(text, len);
    if (base == 0)
        return 0;
    double est = (double)base * sc_tokens_factor(t, model);
    long r = (long)llround(est);
    return r > 0 ? r : 1;
}

void sc_tokens_observe(sc_tokens_t *t, const char *model, long estimated, long actual)
{
    if (!t || estimated <= 0 || actual <= 0)
        return;
    double ratio = (double)actual / (double)estimated;
    double rel = fabs((double)estimated - (double)actual) / (double)actual;
    pthread_mutex_lock(&t->mu);
    sc_tokens_model_t *slot = sc_tokens_slot(t, model, 1);
    if (slot) {
        double f = slot->factor * ((1.0 - SC_TOKENS_ALPHA) + SC_TOKENS_ALPHA * ratio);
        if (f < SC_TOKENS_FACTOR_MIN)
            f = SC_TOKENS_FACTOR_MIN;
        if (f > SC_TOKENS_FACTOR_MAX)
            f = SC_TOKENS_FACTOR_MAX;
        slot->factor = f;
        slot->err =
            slot->samples == 0 ? rel : (1.0 - SC_TOKENS_ALPHA) * slot->err + SC_TOKENS_ALPHA * rel;
        slot->samples++;
    }
    pthread_mutex_unlock(&t->mu);
}

void sc_tokens_error(const sc_tokens_t *t, const char *model, double *mean_abs_rel_err,
                     long *samples)
{
    double e = 0.0;
    long s = 0;
    if (t) {
        sc_tokens_t *mt = (sc_tokens_t *)t; /* the mutex only */
        pthread_mutex_lock(&mt->mu);
        const sc_tokens_model_t *slot = sc_tokens_slot(mt, model, 0);
        if (slot) {
            e = slot->err;
            s = slot->samples;
        }
        pthread_mutex_unlock(&mt->mu);
    }
    if (mean_abs_rel_err)
        *mean_abs_rel_err = e;
    if (samples)
        *samples = s;
}
