/* train_router.c - `scrimp train-router`: routing CSVs → embeddings (cached) + signals → a head
 * chosen by subject-grouped cross-validation → APGR on held-out subjects → router.json, the
 * bench report and its SVG curve; and `scrimp classify`, the router on stdin lines. */
#include "models/train/train_router.h"

#include <errno.h>
#include <getopt.h>
#include <glob.h>
#include <jansson.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include "host/core/log.h"
#include "host/ops/ops_cpu.h"
#include "host/core/util.h"
#include "models/encoder.h"
#include "models/router.h"

#define TR_ERRBUF         (TR_PATH + 1024)
#define TR_PATH           1024
#define TR_CMDLINE        4096
#define TR_MAX_DIRS       16
#define TR_MAX_SUBJECTS   1024
#define TR_MAX_ITEMS      (1u << 20)
#define TR_MAX_FILE_BYTES (256u << 20)
#define TR_CSV_FIELDS     8
#define TR_EMBED_BATCH    256
#define TR_CURVE_POINTS   21 /* cost 0, 0.05, …, 1 */
#define TR_FOLDS          5
#define TR_CV_REPEATS     3 /* fold assignments (of subjects) averaged: one is noisy */
#define TR_RANDOM_SEEDS   20
#define TR_SPEED_BATCH    256
#define TR_SPEED_REPS     200
#define TR_OP_POINTS      201  /* operating curve: strong shares 0, 0.005, …, 1 */
#define TR_TARGET_APGR    0.60 /* the acceptance numbers, reported against */
#define TR_TARGET_MS      0.1
#define TR_MINIBATCH      128
#define TR_PRED_CHUNK     256
#define TR_ADAM_B1        0.9f
#define TR_ADAM_B2        0.999f
#define TR_ADAM_EPS       1e-8f
#define TR_WEAK_COL       "mistralai/Mixtral-8x7B-Instruct-v0.1"
#define TR_STRONG_COL     "gpt-4-1106-preview"
/* embedding cache: these 8 bytes, uint32 dim, then records {uint64 FNV-1a of the prompt, dim
 * floats} */
#define TR_CACHE_MAGIC        "SCRTEMB1"
#define TR_DEFAULT_CACHE      "var/router/embeddings.bin"
#define TR_DEFAULT_OUT        "models/router/router.json"
#define TR_DEFAULT_REPORT     "bench/results"
#define TR_CLASSIFY_MAX_LINE  (1u << 20)
#define TR_CLASSIFY_BATCH     256
#define TR_CLASSIFY_MAX_BATCH 65536

static const char *const tr_tier_names[3] = {"flash-lite", "flash", "pro"};

/* ---- CSV ---- */

int sc_csv_next(const char *buf, size_t len, size_t *pos, char **fields, size_t *lens, int maxf,
                int *nf)
{
    size_t p = *pos;
    *nf = 0;
    if (p >= len)
        return 0;
    for (;;) {
        char *dst = NULL;
        size_t n = 0;
        if (p < len && buf[p] == '"') {
            size_t q = p + 1, start = q;
            for (;;) {
                if (q >= len)
                    goto bad;
                if (buf[q] == '"') {
                    if (q + 1 < len && buf[q + 1] == '"') {
                        q += 2;
                        continue;
                    }
                    break;
                }
                q++;
            }
            if (q - start > SC_CSV_MAX_FIELD)
                goto bad;
            if (*nf < maxf) {
                dst = malloc(q - start + 1);
                if (!dst)
                    goto bad;
                for (size_t k = start; k < q; k++) {
                    dst[n++] = buf[k];
                    if (buf[k] == '"')
                        k++; /* "" → " */
                }
            }
            p = q + 1;
            if (p < len && buf[p] != ',' && buf[p] != '\n' &&
                !(buf[p] == '\r' && (p + 1 == len || buf[p + 1] == '\n'))) {
                free(dst);
                goto bad;
            }
        } else {
            size_t q = p;
            while (q < len && buf[q] != ',' && buf[q] != '\n') {
                if (buf[q] == '"')
                    goto bad;
                q++;
            }
            size_t e = q;
            if (e > p && buf[e - 1] == '\r' && (q == len || buf[q] == '\n'))
                e--;
            if (e - p > SC_CSV_MAX_FIELD)
                goto bad;
            if (*nf < maxf) {
                dst = malloc(e - p + 1);
                if (!dst)
                    goto bad;
                memcpy(dst, buf + p, e - p);
                n = e - p;
            }
            p = q;
        }
        if (dst) {
            dst[n] = '\0';
            fields[*nf] = dst;
            lens[*nf] = n;
            (*nf)++;
        }
        if (p < len && buf[p] == ',') {
            p++;
            continue;
        }
        if (p < len && buf[p] == '\r')
            p++;
        if (p < len && buf[p] == '\n')
            p++;
        break;
    }
    *pos = p;
    return 1;
bad:
    for (int k = 0; k < *nf; k++)
        free(fields[k]);
    *nf = 0;
    return -1;
}

/* ---- small helpers ---- */

static uint64_t fnv1a64(const char *s, size_t n)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)s[i];
        h *= 0x100000001b3ull;
    }
    return h;
}

static uint64_t rng_next(uint64_t *s)
{
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * 0x2545f4914f6cdd1dull;
}

static double rng_unit(uint64_t *s) /* [0, 1) */
{
    return (double)(rng_next(s) >> 11) / 9007199254740992.0;
}

static float rng_normal(uint64_t *s)
{
    double u = rng_unit(s), v = rng_unit(s);
    return (float)(sqrt(-2.0 * log(u + 1e-300)) * cos(6.283185307179586 * v));
}

static void shuffle(size_t *a, size_t n, uint64_t *s)
{
    for (size_t i = n; i > 1; i--) {
        size_t j = (size_t)(rng_next(s) % i);
        size_t t = a[i - 1];
        a[i - 1] = a[j];
        a[j] = t;
    }
}

/* Read a whole file (at most max bytes). @remark the caller frees *out. */
static sc_status_t read_file(const char *path, size_t max, char **out, size_t *len, char *err,
                             size_t errlen)
{
    *out = NULL;
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return SC_ERR_IO;
    }
    sc_status_t st = SC_ERR_IO;
    struct stat sb;
    if (fstat(fileno(f), &sb) != 0 || sb.st_size < 0 || (size_t)sb.st_size > max) {
        snprintf(err, errlen, "%s: unreadable or larger than %zu bytes", path, max);
        goto out;
    }
    size_t n = (size_t)sb.st_size;
    char *b = malloc(n + 1);
    if (!b) {
        st = SC_ERR_NOMEM;
        goto out;
    }
    if (fread(b, 1, n, f) != n) {
        snprintf(err, errlen, "%s: short read", path);
        free(b);
        goto out;
    }
    b[n] = '\0';
    *out = b;
    *len = n;
    st = SC_OK;
out:
    fclose(f);
    return st;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static int cmp_float(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return x < y ? -1 : x > y;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* mkdir -p of the directory part of path */
static void make_parent_dirs(const char *path)
{
    char buf[TR_PATH];
    sc_strlcpy(buf, path, sizeof buf);
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        mkdir(buf, 0755);
        *p = '/';
    }
}

/* ---- the data set ---- */

typedef struct {
    char *text; /* owned */
    size_t len;
    uint64_t hash;
    int subject;
    unsigned char weak_ok, strong_ok, y;
} tr_item_t;

typedef struct {
    tr_item_t *items; /* owned, [cap] */
    size_t n, cap;
    char *subjects[TR_MAX_SUBJECTS]; /* owned names */
    int nsubj;
    uint64_t *contaminated; /* sorted hashes, owned */
    size_t ncontaminated;
    size_t dropped;
    float *feat; /* n × SC_ROUTER_NFEATURES raw features: embedding, then signals; owned */
} tr_data_t;

static void data_free(tr_data_t *d)
{
    for (size_t i = 0; i < d->n; i++)
        free(d->items[i].text);
    free(d->items);
    for (int s = 0; s < d->nsubj; s++)
        free(d->subjects[s]);
    free(d->contaminated);
    free(d->feat);
}

/* Hashes of both prompts of every line of the contamination list (a missing file is no error). */
static sc_status_t load_contaminated(tr_data_t *d, const char *path, char *err, size_t errlen)
{
    char *buf = NULL;
    size_t len = 0;
    if (access(path, F_OK) != 0)
        return SC_OK;
    sc_status_t st = read_file(path, TR_MAX_FILE_BYTES, &buf, &len, err, errlen);
    if (st)
        return st;
    for (char *line = buf; line && *line;) {
        char *nl = strchr(line, '\n');
        size_t ll = nl ? (size_t)(nl - line) : strlen(line);
        json_t *o = json_loadb(line, ll, 0, NULL); /* new reference */
        static const char *const keys[] = {"eval_prompt", "train_prompt"};
        for (size_t k = 0; o && k < SC_ARRAY_LEN(keys); k++) {
            const json_t *v = json_object_get(o, keys[k]); /* borrowed */
            if (!json_is_string(v))
                continue;
            uint64_t *grown =
                realloc(d->contaminated, (d->ncontaminated + 1) * sizeof *d->contaminated);
            if (!grown) {
                json_decref(o);
                free(buf);
                return SC_ERR_NOMEM;
            }
            d->contaminated = grown;
            d->contaminated[d->ncontaminated++] =
                fnv1a64(json_string_value(v), json_string_length(v));
        }
        json_decref(o);
        line = nl ? nl + 1 : NULL;
    }
    free(buf);
    if (d->ncontaminated)
        qsort(d->contaminated, d->ncontaminated, sizeof *d->contaminated, cmp_u64);
    return SC_OK;
}

static int col_index(char **fields, int nf, const char *name)
{
    for (int k = 0; k < nf; k++)
        if (strcmp(fields[k], name) == 0)
            return k;
    return -1;
}

/* One subject file: header prompt,<weak>,<strong>, then rows. */
static sc_status_t load_csv(tr_data_t *d, const char *path, int subject, char *err, size_t errlen)
{
    char *buf = NULL, *fields[TR_CSV_FIELDS];
    size_t len = 0, pos = 0, lens[TR_CSV_FIELDS];
    int nf = 0, r;
    sc_status_t st = read_file(path, TR_MAX_FILE_BYTES, &buf, &len, err, errlen);
    if (st)
        return st;
    st = SC_ERR_INVALID;
    if (sc_csv_next(buf, len, &pos, fields, lens, TR_CSV_FIELDS, &nf) != 1) {
        snprintf(err, errlen, "%s: no header", path);
        goto out;
    }
    int cp = col_index(fields, nf, "prompt"), cw = col_index(fields, nf, TR_WEAK_COL);
    int cs = col_index(fields, nf, TR_STRONG_COL);
    for (int k = 0; k < nf; k++)
        free(fields[k]);
    if (cp < 0 || cw < 0 || cs < 0) {
        snprintf(err, errlen, "%s: header lacks prompt, %s or %s", path, TR_WEAK_COL,
                 TR_STRONG_COL);
        goto out;
    }
    size_t row = 1;
    while ((r = sc_csv_next(buf, len, &pos, fields, lens, TR_CSV_FIELDS, &nf)) == 1) {
        row++;
        int ok = nf > cp && nf > cw && nf > cs;
        uint64_t h = ok ? fnv1a64(fields[cp], lens[cp]) : 0;
        if (ok && d->ncontaminated &&
            bsearch(&h, d->contaminated, d->ncontaminated, sizeof h, cmp_u64)) {
            d->dropped++;
            ok = 0;
        } else if (ok && d->n < TR_MAX_ITEMS) {
            if (d->n == d->cap) {
                size_t cap = d->cap ? d->cap * 2 : 4096;
                tr_item_t *g = realloc(d->items, cap * sizeof *g);
                if (!g) {
                    for (int k = 0; k < nf; k++)
                        free(fields[k]);
                    st = SC_ERR_NOMEM;
                    goto out;
                }
                d->items = g;
                d->cap = cap;
            }
            tr_item_t *it = &d->items[d->n++];
            it->text = fields[cp];
            fields[cp] = NULL; /* ownership moves to the item */
            it->len = lens[cp];
            it->hash = h;
            it->subject = subject;
            it->weak_ok = strcmp(fields[cw], "True") == 0;
            it->strong_ok = strcmp(fields[cs], "True") == 0;
            it->y = !it->weak_ok && it->strong_ok;
        }
        for (int k = 0; k < nf; k++)
            free(fields[k]);
    }
    if (r < 0) {
        snprintf(err, errlen, "%s: malformed CSV after record %zu", path, row);
        goto out;
    }
    st = SC_OK;
out:
    free(buf);
    return st;
}

static sc_status_t load_dir(tr_data_t *d, const char *dir, char *err, size_t errlen)
{
    char pat[TR_PATH];
    glob_t g;
    snprintf(pat, sizeof pat, "%s/mmlu-contaminated_prompts.jsonl", dir);
    sc_status_t st = load_contaminated(d, pat, err, errlen);
    if (st)
        return st;
    snprintf(pat, sizeof pat, "%s/mmlu/mmlu_*.csv", dir);
    if (glob(pat, 0, NULL, &g) != 0) {
        snprintf(err, errlen, "%s: no files", pat);
        return SC_ERR_NOT_FOUND;
    }
    for (size_t k = 0; k < g.gl_pathc && st == SC_OK; k++) {
        if (d->nsubj == TR_MAX_SUBJECTS) {
            snprintf(err, errlen, "more than %d subjects", TR_MAX_SUBJECTS);
            st = SC_ERR_FULL;
            break;
        }
        const char *base = strrchr(g.gl_pathv[k], '/');
        base = base ? base + 6 : g.gl_pathv[k]; /* past "/mmlu_" */
        size_t bl = strlen(base);
        d->subjects[d->nsubj] = strndup(base, bl > 4 ? bl - 4 : bl); /* without ".csv" */
        if (!d->subjects[d->nsubj]) {
            st = SC_ERR_NOMEM;
            break;
        }
        st = load_csv(d, g.gl_pathv[k], d->nsubj, err, errlen);
        d->nsubj++;
    }
    globfree(&g);
    return st;
}

/* ---- embedding cache: {hash, embedding} records keyed by the prompt's FNV-1a ---- */

typedef struct {
    uint64_t hash;
    size_t at; /* index into vecs */
} tr_key_t;

static int cmp_key(const void *a, const void *b)
{
    return cmp_u64(&((const tr_key_t *)a)->hash, &((const tr_key_t *)b)->hash);
}

/* Fill the embedding part of d->feat from the cache; embed what is missing and append it. */
static sc_status_t embed_all(tr_data_t *d, sc_encoder_t *enc, const char *cache_path, char *err,
                             size_t errlen)
{
    const size_t F = SC_ROUTER_NFEATURES, rec = sizeof(uint64_t) + sizeof(float) * SC_EMBED_DIM;
    char *buf = NULL;
    size_t len = 0, nrec = 0;
    tr_key_t *keys = NULL;
    size_t *missing = NULL, nmiss = 0;
    FILE *out = NULL;
    sc_status_t st = SC_OK;
    if (access(cache_path, F_OK) == 0) {
        st = read_file(cache_path, (size_t)4 << 30, &buf, &len, err, errlen);
        if (st)
            return st;
        uint32_t dim = 0;
        if (len < 12 || memcmp(buf, TR_CACHE_MAGIC, 8) != 0 ||
            (memcpy(&dim, buf + 8, 4), dim != SC_EMBED_DIM)) {
            sc_warn("router.cache", "path=%s reason=\"not a cache of this encoder: rebuilt\"",
                    cache_path);
            free(buf);
            buf = NULL;
            len = 0;
            unlink(cache_path);
        } else {
            nrec = (len - 12) / rec;
        }
    }
    keys = malloc(sizeof *keys * (nrec ? nrec : 1));
    missing = malloc(sizeof *missing * (d->n ? d->n : 1));
    if (!keys || !missing) {
        st = SC_ERR_NOMEM;
        goto out;
    }
    for (size_t k = 0; k < nrec; k++) {
        memcpy(&keys[k].hash, buf + 12 + k * rec, sizeof(uint64_t));
        keys[k].at = 12 + k * rec + sizeof(uint64_t);
    }
    qsort(keys, nrec, sizeof *keys, cmp_key);
    for (size_t i = 0; i < d->n; i++) {
        tr_key_t want = {d->items[i].hash, 0};
        const tr_key_t *hit = nrec ? bsearch(&want, keys, nrec, sizeof want, cmp_key) : NULL;
        if (hit)
            memcpy(d->feat + i * F, buf + hit->at, sizeof(float) * SC_EMBED_DIM);
        else
            missing[nmiss++] = i;
    }
    sc_info("router.cache", "path=%s cached=%zu missing=%zu", cache_path, d->n - nmiss, nmiss);
    if (nmiss == 0)
        goto out;
    make_parent_dirs(cache_path);
    out = fopen(cache_path, "ab");
    if (!out) {
        snprintf(err, errlen, "%s: %s", cache_path, strerror(errno));
        st = SC_ERR_IO;
        goto out;
    }
    if (ftell(out) == 0) {
        uint32_t dim = SC_EMBED_DIM;
        fwrite(TR_CACHE_MAGIC, 1, 8, out);
        fwrite(&dim, sizeof dim, 1, out);
    }
    int64_t t0 = sc_now_ms();
    for (size_t b0 = 0; b0 < nmiss; b0 += TR_EMBED_BATCH) {
        size_t m = nmiss - b0 < TR_EMBED_BATCH ? nmiss - b0 : TR_EMBED_BATCH;
        const char *texts[TR_EMBED_BATCH];
        size_t lens[TR_EMBED_BATCH];
        float emb[TR_EMBED_BATCH * SC_EMBED_DIM];
        for (size_t k = 0; k < m; k++) {
            texts[k] = d->items[missing[b0 + k]].text;
            lens[k] = d->items[missing[b0 + k]].len;
        }
        st = sc_encoder_embed(enc, texts, lens, m, emb);
        if (st) {
            snprintf(err, errlen, "embedding: %s", sc_strerror(st));
            goto out;
        }
        for (size_t k = 0; k < m; k++) {
            const tr_item_t *it = &d->items[missing[b0 + k]];
            memcpy(d->feat + missing[b0 + k] * F, emb + k * SC_EMBED_DIM,
                   sizeof(float) * SC_EMBED_DIM);
            fwrite(&it->hash, sizeof it->hash, 1, out);
            fwrite(emb + k * SC_EMBED_DIM, sizeof(float), SC_EMBED_DIM, out);
        }
        sc_info("router.embed", "done=%zu of=%zu elapsed_s=%.1f", b0 + m, nmiss,
                (double)(sc_now_ms() - t0) / 1000.0);
    }
out:
    if (out && fclose(out) != 0 && st == SC_OK) {
        snprintf(err, errlen, "%s: write failed", cache_path);
        st = SC_ERR_IO;
    }
    free(buf);
    free(keys);
    free(missing);
    return st;
}

/* ---- the head: fit with Adam on weighted logistic loss ---- */

/* the inputs a head sees (the others are masked: their weights stay 0, the file's shape is the
 * same): ALL; SIGNALS (embedding masked); EMBEDDING (signals masked); EMBEDDING_LEN_NEG
 * (the embedding + log_bytes + negation, the two signals whose pooled correlation with the gain
 * is highest on the training subjects) */
typedef enum {
    TR_FEAT_ALL = 0,
    TR_FEAT_SIGNALS,
    TR_FEAT_EMBEDDING,
    TR_FEAT_EMBEDDING_LEN_NEG
} tr_feat_t;
/* what the head fits: GAIN 1 when weak wrong and strong right (classes balanced); WEAK_WRONG 1
 * when the weak model failed (balanced); GAIN3 (strong − weak + 1) / 2 ∈ {0, ½, 1}, unweighted,
 * so prompts that the strong model gets wrong and the weak right push the score down: the score
 * is then (1 + the expected gain of the strong model's answer over the weak one's) / 2 */
typedef enum { TR_TARGET_GAIN = 0, TR_TARGET_WEAK_WRONG, TR_TARGET_GAIN3, TR_NTARGETS } tr_target_t;

static const char *const tr_target_names[TR_NTARGETS] = {"needs-strong", "weak-wrong", "gain"};
static const char *const tr_feat_names[] = {"embedding + signals", "signals", "embedding",
                                            "embedding + log_bytes + negation"};

/* Is input d (0 <= d < SC_ROUTER_NFEATURES) used by a head of this feature set? */
static int feat_used(tr_feat_t f, size_t d)
{
    int emb = d < SC_EMBED_DIM;
    switch (f) {
    case TR_FEAT_SIGNALS:
        return !emb;
    case TR_FEAT_EMBEDDING:
        return emb;
    case TR_FEAT_EMBEDDING_LEN_NEG:
        return emb || d == SC_EMBED_DIM + SC_SIG_LOG_BYTES || d == SC_EMBED_DIM + SC_SIG_NEGATION;
    default:
        return 1;
    }
}

typedef struct {
    const char *name;
    int hidden; /* 0 = logistic */
    float l2;
    float lr;
    int epochs;
    tr_feat_t feat;
    tr_target_t target;
    int decay; /* 1: the learning rate falls linearly to 0 over the epochs (the last steps
                * average out the minibatch noise, which a strongly regularised head's small
                * weights would otherwise drown in) */
} tr_cfg_t;

/* The candidates, scored by subject-grouped CV on the training subjects (the best is chosen).
 * The first two were the best of the earlier grid (target: needs the strong model); the gain
 * target fits the expected gain of the strong model over the weak one instead, which also learns
 * where the strong model is the worse of the two; it needs a much stronger L2. */
static const tr_cfg_t tr_grid[] = {
    {"logistic-needs-strong-l2-1e-1", 0, 1e-1f, 3e-3f, 20, TR_FEAT_ALL, TR_TARGET_GAIN, 0},
    {"mlp32-needs-strong-l2-1e-2-short", 32, 1e-2f, 1e-3f, 6, TR_FEAT_ALL, TR_TARGET_GAIN, 0},
    {"logistic-gain-l2-0.3", 0, 0.3f, 1e-3f, 30, TR_FEAT_ALL, TR_TARGET_GAIN3, 1},
    {"logistic-gain-l2-1", 0, 1.0f, 1e-3f, 30, TR_FEAT_ALL, TR_TARGET_GAIN3, 1},
    {"logistic-gain-l2-3", 0, 3.0f, 1e-3f, 30, TR_FEAT_ALL, TR_TARGET_GAIN3, 1},
    {"logistic-gain-emb-l2-1", 0, 1.0f, 1e-3f, 30, TR_FEAT_EMBEDDING, TR_TARGET_GAIN3, 1},
    {"logistic-gain-emb-len-neg-l2-1", 0, 1.0f, 1e-3f, 30, TR_FEAT_EMBEDDING_LEN_NEG,
     TR_TARGET_GAIN3, 1},
    {"mlp32-gain-l2-1e-1", 32, 1e-1f, 1e-3f, 10, TR_FEAT_EMBEDDING_LEN_NEG, TR_TARGET_GAIN3, 1},
    {"mlp32-gain-l2-3e-1", 32, 3e-1f, 1e-3f, 10, TR_FEAT_EMBEDDING_LEN_NEG, TR_TARGET_GAIN3, 1},
};

typedef struct {
    int hidden;
    float *w1, *b1, *w2; /* owned; w1/b1 NULL when hidden = 0 */
    float b2;
} tr_head_t;

static void head_free(tr_head_t *h)
{
    free(h->w1);
    free(h->b1);
    free(h->w2);
    memset(h, 0, sizeof *h);
}

/* Adam state of one parameter block */
typedef struct {
    float *p, *g, *m, *v; /* p borrowed (the head's), g/m/v owned */
    size_t n;
    int decay; /* L2 on this block */
} tr_param_t;

static int param_init(tr_param_t *t, float *p, size_t n, int decay)
{
    t->p = p;
    t->n = n;
    t->decay = decay;
    t->g = calloc(n, sizeof(float));
    t->m = calloc(n, sizeof(float));
    t->v = calloc(n, sizeof(float));
    return t->g && t->m && t->v ? 0 : -1;
}

static void param_free(tr_param_t *t)
{
    free(t->g);
    free(t->m);
    free(t->v);
}

static void adam_step(tr_param_t *t, float lr, float l2, int step)
{
    const float c1 = 1.0f - powf(TR_ADAM_B1, (float)step);
    const float c2 = 1.0f - powf(TR_ADAM_B2, (float)step);
    for (size_t i = 0; i < t->n; i++) {
        float g = t->g[i] + (t->decay ? l2 * t->p[i] : 0.0f);
        t->m[i] = TR_ADAM_B1 * t->m[i] + (1.0f - TR_ADAM_B1) * g;
        t->v[i] = TR_ADAM_B2 * t->v[i] + (1.0f - TR_ADAM_B2) * g * g;
        t->p[i] -= lr * (t->m[i] / c1) / (sqrtf(t->v[i] / c2) + TR_ADAM_EPS);
        t->g[i] = 0.0f;
    }
}

/* Fit on rows[0..nrows) of the standardised X; classes weighted to equal total weight. */
static sc_status_t fit(const tr_cfg_t *c, const float *X, const float *y, const size_t *rows,
                       size_t nrows, uint64_t seed, tr_head_t *out)
{
    const size_t F = SC_ROUTER_NFEATURES, H = (size_t)c->hidden;
    sc_status_t st = SC_ERR_NOMEM;
    tr_param_t pw1 = {0}, pb1 = {0}, pw2 = {0}, pb2 = {0};
    size_t *order = malloc(sizeof *order * (nrows ? nrows : 1));
    float *hbuf = malloc(sizeof(float) * (H ? H : 1));
    memset(out, 0, sizeof *out);
    out->hidden = c->hidden;
    out->w2 = calloc(H ? H : F, sizeof(float));
    if (H) {
        out->w1 = malloc(sizeof(float) * H * F);
        out->b1 = calloc(H, sizeof(float));
    }
    if (!order || !hbuf || !out->w2 || (H && (!out->w1 || !out->b1)))
        goto out;
    uint64_t rs = seed * 0x9e3779b97f4a7c15ull + 1;
    if (H) {
        const float sd1 = sqrtf(2.0f / (float)F), sd2 = sqrtf(1.0f / (float)H);
        for (size_t i = 0; i < H * F; i++)
            out->w1[i] = feat_used(c->feat, i % F) ? sd1 * rng_normal(&rs) : 0.0f;
        for (size_t j = 0; j < H; j++)
            out->w2[j] = sd2 * rng_normal(&rs);
    }
    if (param_init(&pw2, out->w2, H ? H : F, 1) || param_init(&pb2, &out->b2, 1, 0) ||
        (H && (param_init(&pw1, out->w1, H * F, 1) || param_init(&pb1, out->b1, H, 0))))
        goto out;
    size_t npos = 0;
    for (size_t k = 0; k < nrows; k++)
        npos += y[rows[k]] > 0.5f;
    double ppos = nrows ? (double)npos / (double)nrows : 0.5;
    if (ppos <= 0.0 || ppos >= 1.0)
        ppos = 0.5;
    const int balance = c->target != TR_TARGET_GAIN3;
    const float wpos = balance ? (float)(0.5 / ppos) : 1.0f;
    const float wneg = balance ? (float)(0.5 / (1.0 - ppos)) : 1.0f;
    for (size_t k = 0; k < nrows; k++)
        order[k] = rows[k];
    int step = 0;
    const size_t nbatch = (nrows + TR_MINIBATCH - 1) / TR_MINIBATCH;
    const double total = (double)c->epochs * (double)(nbatch ? nbatch : 1);
    for (int ep = 0; ep < c->epochs; ep++) {
        shuffle(order, nrows, &rs);
        for (size_t b0 = 0; b0 < nrows; b0 += TR_MINIBATCH) {
            size_t m = nrows - b0 < TR_MINIBATCH ? nrows - b0 : TR_MINIBATCH;
            for (size_t k = 0; k < m; k++) {
                size_t r = order[b0 + k];
                const float *x = X + r * F;
                float logit = out->b2;
                if (H) {
                    for (size_t j = 0; j < H; j++) {
                        const float *w = out->w1 + j * F;
                        float h = out->b1[j];
                        for (size_t d = 0; d < F; d++)
                            h += w[d] * x[d];
                        hbuf[j] = h > 0.0f ? h : 0.0f;
                        logit += out->w2[j] * hbuf[j];
                    }
                } else {
                    for (size_t d = 0; d < F; d++)
                        logit += out->w2[d] * x[d];
                }
                float p = 1.0f / (1.0f + expf(-logit));
                float g = (y[r] > 0.5f ? wpos : wneg) * (p - y[r]) / (float)m;
                pb2.g[0] += g;
                if (H) {
                    for (size_t j = 0; j < H; j++) {
                        pw2.g[j] += g * hbuf[j];
                        if (hbuf[j] <= 0.0f)
                            continue;
                        float gh = g * out->w2[j];
                        pb1.g[j] += gh;
                        float *gw = pw1.g + j * F;
                        for (size_t d = 0; d < F; d++)
                            gw[d] += gh * x[d];
                    }
                } else {
                    for (size_t d = 0; d < F; d++)
                        pw2.g[d] += g * x[d];
                }
            }
            if (c->feat != TR_FEAT_ALL) { /* masked inputs: zero weights stay zero */
                for (size_t j = 0; j < (H ? H : 1); j++)
                    for (size_t d = 0; d < F; d++)
                        if (!feat_used(c->feat, d))
                            (H ? pw1.g : pw2.g)[j * F + d] = 0.0f;
            }
            const float lr = c->decay ? c->lr * (float)(1.0 - (double)step / total) : c->lr;
            step++;
            adam_step(&pw2, lr, c->l2, step);
            adam_step(&pb2, lr, c->l2, step);
            if (H) {
                adam_step(&pw1, lr, c->l2, step);
                adam_step(&pb1, lr, c->l2, step);
            }
        }
    }
    st = SC_OK;
out:
    param_free(&pw1);
    param_free(&pb1);
    param_free(&pw2);
    param_free(&pb2);
    free(order);
    free(hbuf);
    if (st)
        head_free(out);
    return st;
}

/* scores[k] for rows[k], through the CPU twin of the kernel (the same math as serving). */
static sc_status_t predict(const tr_head_t *h, const float *X, const size_t *rows, size_t nrows,
                           float *scores)
{
    const size_t F = SC_ROUTER_NFEATURES;
    float *x = malloc(sizeof(float) * TR_PRED_CHUNK * F);
    if (!x)
        return SC_ERR_NOMEM;
    for (size_t b0 = 0; b0 < nrows; b0 += TR_PRED_CHUNK) {
        size_t m = nrows - b0 < TR_PRED_CHUNK ? nrows - b0 : TR_PRED_CHUNK;
        for (size_t k = 0; k < m; k++)
            memcpy(x + k * F, X + rows[b0 + k] * F, sizeof(float) * F);
        sc_router_head_cpu(x, (int)m, (int)F, h->w1, h->b1, h->hidden, h->w2, h->b2, scores + b0);
    }
    free(x);
    return SC_OK;
}

/* Route rows[k] to the strong model when scores[k] >= t (and in_dom[k], when given: a prompt
 * outside the router's domain goes to a weak tier): the quality ratio (accuracy over the
 * all-strong accuracy) and the share routed to strong. */
static void ratio_at(const tr_data_t *d, const size_t *rows, size_t n, const float *scores, float t,
                     const unsigned char *in_dom, double *ratio, double *share)
{
    double got = 0.0, strong = 0.0, sel = 0.0;
    for (size_t k = 0; k < n; k++) {
        const tr_item_t *it = &d->items[rows[k]];
        int s = scores[k] >= t && (!in_dom || in_dom[k]);
        got += s ? it->strong_ok : it->weak_ok;
        strong += it->strong_ok;
        sel += s;
    }
    *ratio = strong > 0.0 ? got / strong : NAN;
    *share = n ? sel / (double)n : NAN;
}

static double apgr_rows(const tr_data_t *d, const size_t *rows, size_t nrows, const float *scores,
                        double *curve, double *quality)
{
    unsigned char *w = malloc(nrows ? nrows : 1), *s = malloc(nrows ? nrows : 1);
    double a = NAN;
    if (w && s) {
        for (size_t k = 0; k < nrows; k++) {
            w[k] = d->items[rows[k]].weak_ok;
            s[k] = d->items[rows[k]].strong_ok;
        }
        a = sc_router_apgr(scores, w, s, nrows, curve, quality, TR_CURVE_POINTS);
    }
    free(w);
    free(s);
    return a;
}

/* Mean APGR over TR_CV_REPEATS × TR_FOLDS subject-grouped folds of the training rows.
 * oof (optional, TR_CV_REPEATS × d->n): oof[rep · n + i] = the score of training row i by the head
 * fitted without its fold; fold_of_row (optional, the same shape): its fold. */
static sc_status_t cross_validate(const tr_cfg_t *c, const tr_data_t *d, const float *X,
                                  const float *y, const size_t *train, size_t ntr, uint64_t seed,
                                  size_t *fold_tr, size_t *fold_te, float *scores, float *oof,
                                  signed char *fold_of_row, double *out)
{
    size_t order[TR_MAX_SUBJECTS];
    int fold_of[TR_MAX_SUBJECTS], present[TR_MAX_SUBJECTS] = {0};
    size_t nsub = 0;
    double sum = 0.0;
    int nfold = 0;
    for (size_t k = 0; k < ntr; k++)
        present[d->items[train[k]].subject] = 1;
    for (int s = 0; s < d->nsubj; s++)
        if (present[s])
            order[nsub++] = (size_t)s;
    for (int rep = 0; rep < TR_CV_REPEATS; rep++) {
        uint64_t rs = (seed + 101u * (uint64_t)rep) * 0x9e3779b97f4a7c15ull + 3;
        shuffle(order, nsub, &rs);
        for (size_t k = 0; k < nsub; k++)
            fold_of[order[k]] = (int)(k % TR_FOLDS);
        for (int fo = 0; fo < TR_FOLDS; fo++) {
            size_t a = 0, b = 0;
            for (size_t k = 0; k < ntr; k++) {
                size_t i = train[k];
                if (fold_of[d->items[i].subject] == fo)
                    fold_te[b++] = i;
                else
                    fold_tr[a++] = i;
            }
            if (b == 0 || a == 0)
                continue;
            tr_head_t h;
            sc_status_t st = fit(c, X, y, fold_tr, a, seed + (uint64_t)fo, &h);
            if (st == SC_OK)
                st = predict(&h, X, fold_te, b, scores);
            head_free(&h);
            if (st)
                return st;
            for (size_t k = 0; k < b; k++) {
                if (oof)
                    oof[(size_t)rep * d->n + fold_te[k]] = scores[k];
                if (fold_of_row)
                    fold_of_row[(size_t)rep * d->n + fold_te[k]] = (signed char)fo;
            }
            double ap = apgr_rows(d, fold_te, b, scores, NULL, NULL);
            if (ap == ap) {
                sum += ap;
                nfold++;
            }
        }
    }
    *out = nfold ? sum / nfold : NAN;
    return SC_OK;
}

/* ---- reports ---- */

/* One top-level key per line, each value compact: small diffs, still one JSON document. */
static int write_json_lines(const json_t *root, const char *path)
{
    make_parent_dirs(path);
    FILE *f = fopen(path, "w");
    if (!f)
        return -1;
    const char *key;
    json_t *val; /* borrowed */
    size_t k = 0, n = json_object_size(root);
    fputs("{\n", f);
    json_object_foreach((json_t *)root, key, val)
    {
        json_t *jk = json_string(key); /* new */
        char *ks = jk ? json_dumps(jk, JSON_ENCODE_ANY) : NULL;
        char *vs = json_dumps(val, JSON_ENCODE_ANY | JSON_COMPACT | JSON_REAL_PRECISION(9));
        fprintf(f, " %s: %s%s\n", ks ? ks : "\"?\"", vs ? vs : "null", ++k < n ? "," : "");
        free(ks);
        free(vs);
        json_decref(jk);
    }
    fputs("}\n", f);
    return fclose(f) == 0 ? 0 : -1;
}

static json_t *json_floats_new(const float *v, size_t n) /* new reference */
{
    json_t *a = json_array();
    for (size_t i = 0; a && i < n; i++)
        json_array_append_new(a, json_real((double)v[i]));
    return a;
}

static void machine_name(char *buf, size_t len)
{
    char line[512];
    FILE *f = fopen("/proc/cpuinfo", "r");
    sc_strlcpy(buf, "unknown CPU", len);
    while (f && fgets(line, sizeof line, f)) {
        if (strncmp(line, "model name", 10) == 0) {
            char *c = strchr(line, ':');
            if (c) {
                c += 1 + (c[1] == ' ');
                c[strcspn(c, "\n")] = '\0';
                sc_strlcpy(buf, c, len);
            }
            break;
        }
    }
    if (f)
        fclose(f);
}

/* Quality/cost chart: the router's quality curve, the random-routing line, weak and strong. */
static int write_svg(const char *path, const double *quality, double qw, double qs, double apgr)
{
    const double W = 640, H = 420, L = 70, R = 20, T = 40, B = 60;
    double lo = fmin(qw, qs) - 0.02, hi = fmax(qw, qs) + 0.02;
    for (int p = 0; p < TR_CURVE_POINTS; p++) {
        lo = fmin(lo, quality[p] - 0.01);
        hi = fmax(hi, quality[p] + 0.01);
    }
    FILE *f = fopen(path, "w");
    if (!f)
        return -1;
#define SX(c) (L + (c) * (W - L - R))
#define SY(q) (T + (hi - (q)) / (hi - lo) * (H - T - B))
    fprintf(f,
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" height=\"%.0f\" "
            "font-family=\"sans-serif\" font-size=\"12\">\n"
            "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n"
            "<text x=\"%.0f\" y=\"22\" font-size=\"15\">scrimp router on held-out MMLU subjects: "
            "APGR %.3f</text>\n",
            W, H, L, apgr);
    for (int t = 0; t <= 10; t += 2) {
        double c = t / 10.0, q = lo + (hi - lo) * t / 10.0;
        fprintf(f,
                "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#ddd\"/>"
                "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%.1f</text>\n",
                SX(c), SY(lo), SX(c), SY(hi), SX(c), SY(lo) + 16, c);
        fprintf(f,
                "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#ddd\"/>"
                "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">%.3f</text>\n",
                SX(0), SY(q), SX(1), SY(q), SX(0) - 6, SY(q) + 4, q);
    }
    fprintf(f,
            "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"none\" "
            "stroke=\"black\"/>\n"
            "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">cost: share of prompts sent to "
            "the strong model</text>\n"
            "<text x=\"16\" y=\"%.1f\" transform=\"rotate(-90 16 %.1f)\" "
            "text-anchor=\"middle\">quality (accuracy)</text>\n",
            SX(0), SY(hi), SX(1) - SX(0), SY(lo) - SY(hi), SX(0.5), H - 18, SY((lo + hi) / 2),
            SY((lo + hi) / 2));
    fprintf(f,
            "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#999\" "
            "stroke-dasharray=\"6 4\"/>\n",
            SX(0), SY(qw), SX(1), SY(qs));
    fputs("<polyline fill=\"none\" stroke=\"#1a62c6\" stroke-width=\"2.5\" points=\"", f);
    for (int p = 0; p < TR_CURVE_POINTS; p++)
        fprintf(f, "%.1f,%.1f ", SX((double)p / (TR_CURVE_POINTS - 1)), SY(quality[p]));
    fputs("\"/>\n", f);
    fprintf(f,
            "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#c33\"/>"
            "<text x=\"%.1f\" y=\"%.1f\" fill=\"#c33\">weak only %.3f</text>\n"
            "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#393\"/>"
            "<text x=\"%.1f\" y=\"%.1f\" fill=\"#393\" text-anchor=\"end\">strong only "
            "%.3f</text>\n",
            SX(0), SY(qw), SX(0.08), SY(qw), SX(0.09), SY(qw) + 4, qw, SX(0.92), SY(qs), SX(1),
            SY(qs), SX(0.91), SY(qs) + 4, qs);
    fprintf(f,
            "<text x=\"%.1f\" y=\"%.1f\" fill=\"#1a62c6\">router</text>"
            "<text x=\"%.1f\" y=\"%.1f\" fill=\"#999\">random routing (APGR 0.5)</text>\n</svg>\n",
            SX(0.62), SY(hi) + 18, SX(0.62), SY(hi) + 34);
#undef SX
#undef SY
    return fclose(f) == 0 ? 0 : -1;
}

/* ---- train-router ---- */

typedef struct {
    const char *dirs[TR_MAX_DIRS];
    int ndirs;
    const char *out, *model_dir, *cache, *report_dir;
    double holdout_frac, lite_share, quality_target, confidence;
    uint64_t seed;
    int threads, cv_only;
    char cmdline[TR_CMDLINE];
} tr_opts_t;

static void train_usage(FILE *f)
{
    fprintf(
        f,
        "usage: scrimp train-router DATA_DIR... -o FILE [--model DIR] [--holdout-frac F]\n"
        "         [--seed N] [--cache FILE] [--report-dir DIR] [--quality-target Q]\n"
        "         [--confidence C] [--lite-share S] [--threads N] [--cv-only]\n"
        "  DATA_DIR holds mmlu/mmlu_<subject>.csv and mmlu-contaminated_prompts.jsonl\n"
        "  --quality-target: the file's thresholds send the strong tier the fewest prompts that\n"
        "  keep quality >= Q x all-strong in a share C of the CV folds; --lite-share: the\n"
        "  share of the other prompts (the easiest) that go to the cheapest tier;\n"
        "  --cv-only: model selection and operating curve on the training subjects only\n"
        "  (the held-out subjects are not scored, nothing is written)\n"
        "  (defaults: -o %s, --holdout-frac 0.2, --seed 1, --cache %s,\n"
        "   --report-dir %s, --quality-target 0.95, --confidence 0.8, --lite-share 0.5)\n",
        TR_DEFAULT_OUT, TR_DEFAULT_CACHE, TR_DEFAULT_REPORT);
}

static int parse_double(const char *s, double lo, double hi, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (*s == '\0' || *end || errno || !(v >= lo && v <= hi))
        return -1;
    *out = v;
    return 0;
}

static int parse_train_opts(int argc, char **argv, tr_opts_t *o)
{
    static const struct option opts[] = {{"output", required_argument, NULL, 'o'},
                                         {"model", required_argument, NULL, 'm'},
                                         {"holdout-frac", required_argument, NULL, 'f'},
                                         {"seed", required_argument, NULL, 's'},
                                         {"cache", required_argument, NULL, 'c'},
                                         {"report-dir", required_argument, NULL, 'r'},
                                         {"lite-share", required_argument, NULL, 'l'},
                                         {"quality-target", required_argument, NULL, 'q'},
                                         {"confidence", required_argument, NULL, 'C'},
                                         {"cv-only", no_argument, NULL, 'V'},
                                         {"threads", required_argument, NULL, 't'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    sc_encoder_opts_t eo;
    sc_encoder_opts_default(&eo);
    memset(o, 0, sizeof *o);
    o->out = TR_DEFAULT_OUT;
    o->model_dir = eo.model_dir;
    o->cache = TR_DEFAULT_CACHE;
    o->report_dir = TR_DEFAULT_REPORT;
    o->holdout_frac = 0.2;
    o->lite_share = 0.5;
    o->quality_target = 0.95;
    o->confidence = 0.8;
    o->seed = 1;
    size_t used = (size_t)snprintf(o->cmdline, sizeof o->cmdline, "scrimp");
    for (int k = 0; k < argc && used < sizeof o->cmdline; k++)
        used += (size_t)snprintf(o->cmdline + used, sizeof o->cmdline - used, " %s", argv[k]);
    int opt;
    double v;
    optind = 1;
    while ((opt = getopt_long(argc, argv, "o:h", opts, NULL)) != -1) {
        switch (opt) {
        case 'o':
            o->out = optarg;
            break;
        case 'm':
            o->model_dir = optarg;
            break;
        case 'c':
            o->cache = optarg;
            break;
        case 'r':
            o->report_dir = optarg;
            break;
        case 'f':
            if (parse_double(optarg, 0.01, 0.9, &o->holdout_frac))
                return 2;
            break;
        case 'l':
            if (parse_double(optarg, 0.0, 1.0, &o->lite_share))
                return 2;
            break;
        case 'q':
            if (parse_double(optarg, 1e-6, 1.0, &o->quality_target))
                return 2;
            break;
        case 'C':
            if (parse_double(optarg, 0.0, 1.0, &o->confidence))
                return 2;
            break;
        case 'V':
            o->cv_only = 1;
            break;
        case 's':
            if (parse_double(optarg, 0, 1e15, &v))
                return 2;
            o->seed = (uint64_t)v;
            break;
        case 't':
            if (parse_double(optarg, 0, 1024, &v))
                return 2;
            o->threads = (int)v;
            break;
        case 'h':
            train_usage(stdout);
            return 1;
        default:
            return 2;
        }
    }
    for (int k = optind; k < argc; k++) {
        if (o->ndirs == TR_MAX_DIRS)
            return 2;
        o->dirs[o->ndirs++] = argv[k];
    }
    if (o->ndirs == 0)
        return 2;
    return 0;
}

/* The operating curve (see models/router.h): thresholds at strong shares 0, 1/(P-1), …, 1 of the
 * CV predictions of the training rows (all repeats pooled); at each, the quality ratio of the
 * pooled predictions and its (1 - confidence) quantile over the TR_CV_REPEATS × TR_FOLDS folds
 * (each fold's rows routed by the same threshold). */
typedef struct {
    float thr[TR_OP_POINTS], share[TR_OP_POINTS], ratio[TR_OP_POINTS], low[TR_OP_POINTS];
} tr_opcurve_t;

static int cmp_float_desc(const void *a, const void *b)
{
    return cmp_float(b, a);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static sc_status_t operating_curve(const tr_data_t *d, const size_t *train, size_t ntr,
                                   const float *oof, const signed char *fold_of_row,
                                   double confidence, tr_opcurve_t *oc)
{
    enum { NF = TR_CV_REPEATS * TR_FOLDS };
    const size_t N = (size_t)TR_CV_REPEATS * ntr;
    float *v = malloc(sizeof(float) * (N ? N : 1));
    if (!v)
        return SC_ERR_NOMEM;
    for (int r = 0; r < TR_CV_REPEATS; r++)
        for (size_t k = 0; k < ntr; k++)
            v[(size_t)r * ntr + k] = oof[(size_t)r * d->n + train[k]];
    qsort(v, N, sizeof *v, cmp_float_desc);
    double fs[NF], fw[NF], ratios[NF];
    for (int p = 0; p < TR_OP_POINTS; p++) {
        size_t k = (size_t)floor((double)p / (TR_OP_POINTS - 1) * (double)N + 0.5);
        /* share 0: above every score (a sigmoid never exceeds 1) */
        float t = k == 0 ? 1.0f : v[k - 1];
        double ss = 0.0, sw = 0.0, nsel = 0.0;
        memset(fs, 0, sizeof fs), memset(fw, 0, sizeof fw);
        for (int r = 0; r < TR_CV_REPEATS; r++)
            for (size_t j = 0; j < ntr; j++) {
                size_t i = train[j];
                const tr_item_t *it = &d->items[i];
                int f = r * TR_FOLDS + fold_of_row[(size_t)r * d->n + i];
                int strong = oof[(size_t)r * d->n + i] >= t && k > 0;
                double got = strong ? it->strong_ok : it->weak_ok;
                ss += it->strong_ok;
                sw += got;
                nsel += strong;
                fs[f] += it->strong_ok;
                fw[f] += got;
            }
        int m = 0;
        for (int f = 0; f < NF; f++)
            if (fs[f] > 0.0)
                ratios[m++] = fw[f] / fs[f];
        qsort(ratios, (size_t)m, sizeof *ratios, cmp_double);
        double q = (1.0 - confidence) * (double)(m - 1), lo = 0.0;
        if (m > 0) {
            int a = (int)floor(q), b = a + 1 < m ? a + 1 : a;
            lo = ratios[a] + (ratios[b] - ratios[a]) * (q - a);
        }
        oc->thr[p] = t;
        oc->share[p] = (float)(nsel / (double)N);
        oc->ratio[p] = (float)(ss > 0.0 ? sw / ss : 0.0);
        oc->low[p] = (float)lo;
    }
    free(v);
    return SC_OK;
}

typedef struct {
    double head_ms, signals_ms, embed_head_ms;
} tr_speed_t;

/* CPU scoring speed on held-out prompts in batches of TR_SPEED_BATCH. */
static sc_status_t measure_speed(const tr_data_t *d, const size_t *rows, size_t nrows,
                                 const sc_router_t *r, sc_encoder_t *enc, tr_speed_t *sp)
{
    const size_t F = SC_ROUTER_NFEATURES, B = TR_SPEED_BATCH;
    size_t m = nrows < B ? nrows : B;
    float *emb = malloc(sizeof(float) * B * SC_EMBED_DIM);
    float *sig = malloc(sizeof(float) * B * SC_ROUTER_NSIGNALS);
    float *scores = malloc(sizeof(float) * B);
    int32_t *ids = malloc(sizeof(int32_t) * SC_ROUTER_COUNT_TOKENS);
    const char **texts = malloc(sizeof *texts * B);
    size_t *lens = malloc(sizeof *lens * B);
    sc_status_t st = SC_ERR_NOMEM;
    if (!emb || !sig || !scores || !ids || !texts || !lens || m == 0)
        goto out;
    for (size_t k = 0; k < m; k++) {
        const tr_item_t *it = &d->items[rows[k]];
        memcpy(emb + k * SC_EMBED_DIM, d->feat + rows[k] * F, sizeof(float) * SC_EMBED_DIM);
        memcpy(sig + k * SC_ROUTER_NSIGNALS, d->feat + rows[k] * F + SC_EMBED_DIM,
               sizeof(float) * SC_ROUTER_NSIGNALS);
        texts[k] = it->text;
        lens[k] = it->len;
    }
    int64_t t0 = sc_now_us();
    for (int rep = 0; rep < TR_SPEED_REPS; rep++)
        if ((st = sc_router_score_batch(r, emb, sig, m, scores)) != SC_OK)
            goto out;
    sp->head_ms = (double)(sc_now_us() - t0) / 1000.0 / TR_SPEED_REPS / (double)m;
    const sc_tokenizer_t *tok = sc_encoder_tokenizer(enc);
    t0 = sc_now_us();
    for (size_t k = 0; k < m; k++) {
        int nt = sc_tokenizer_encode(tok, texts[k], lens[k], ids, SC_ROUTER_COUNT_TOKENS);
        sc_router_signals(texts[k], lens[k], nt, sig + k * SC_ROUTER_NSIGNALS);
    }
    sp->signals_ms = (double)(sc_now_us() - t0) / 1000.0 / (double)m;
    t0 = sc_now_us();
    st = sc_router_score_texts(r, enc, texts, lens, m, scores, NULL);
    sp->embed_head_ms = (double)(sc_now_us() - t0) / 1000.0 / (double)m;
out:
    free(emb);
    free(sig);
    free(scores);
    free(ids);
    free(texts);
    free(lens);
    return st;
}

int sc_train_router_cli(int argc, char **argv)
{
    const size_t F = SC_ROUTER_NFEATURES;
    const size_t NG = SC_ARRAY_LEN(tr_grid);
    tr_opts_t o;
    int rc = parse_train_opts(argc, argv, &o);
    if (rc) {
        if (rc == 2)
            train_usage(stderr);
        return rc == 1 ? 0 : 2;
    }
    char err[TR_ERRBUF] = "";
    tr_data_t d = {0};
    sc_encoder_t *enc = NULL;
    sc_router_t *router = NULL;
    tr_head_t best = {0};
    json_t *root = NULL;
    float *X = NULL, *mean = NULL, *std = NULL, *scores = NULL, *sorted = NULL;
    size_t *train = NULL, *test = NULL, *fold_tr = NULL, *fold_te = NULL, *subj_order = NULL;
    unsigned char *is_test_subj = NULL;
    float *y = NULL;   /* TR_NTARGETS × n targets */
    float *oof = NULL; /* NG × TR_CV_REPEATS × n: each head's CV scores of the training rows */
    signed char *fold_of_row = NULL; /* TR_CV_REPEATS × n */
    unsigned char *te_in_dom = NULL; /* held-out rows inside the domain box */
    tr_opcurve_t *oc = NULL;
    int32_t *ids = NULL;
    double cv_apgr[SC_ARRAY_LEN(tr_grid)];
    sc_status_t st;
    rc = 1;

    for (int k = 0; k < o.ndirs; k++)
        if ((st = load_dir(&d, o.dirs[k], err, sizeof err)) != SC_OK)
            goto fail;
    if (d.n == 0 || d.nsubj < 2) {
        snprintf(err, sizeof err, "no labelled prompts found");
        goto fail;
    }
    sc_info("router.data", "prompts=%zu subjects=%d contaminated_dropped=%zu", d.n, d.nsubj,
            d.dropped);

    /* features: embeddings (cached) + signals */
    sc_encoder_opts_t eo;
    sc_encoder_opts_default(&eo);
    eo.model_dir = o.model_dir;
    eo.backend = SC_BACKEND_CPU;
    eo.threads = o.threads;
    eo.max_batch = TR_EMBED_BATCH;
    if ((st = sc_encoder_new(&eo, &enc, err, sizeof err)) != SC_OK)
        goto fail;
    d.feat = malloc(sizeof(float) * d.n * F);
    ids = malloc(sizeof(int32_t) * SC_ROUTER_COUNT_TOKENS);
    if (!d.feat || !ids)
        goto nomem;
    if ((st = embed_all(&d, enc, o.cache, err, sizeof err)) != SC_OK)
        goto fail;
    for (size_t i = 0; i < d.n; i++) {
        int nt = sc_tokenizer_encode(sc_encoder_tokenizer(enc), d.items[i].text, d.items[i].len,
                                     ids, SC_ROUTER_COUNT_TOKENS);
        sc_router_signals(d.items[i].text, d.items[i].len, nt, d.feat + i * F + SC_EMBED_DIM);
    }

    /* split by subject */
    subj_order = malloc(sizeof *subj_order * (size_t)d.nsubj);
    is_test_subj = calloc((size_t)d.nsubj, 1);
    if (!subj_order || !is_test_subj)
        goto nomem;
    uint64_t rs = o.seed * 0x9e3779b97f4a7c15ull + 7;
    for (int s = 0; s < d.nsubj; s++)
        subj_order[s] = (size_t)s;
    shuffle(subj_order, (size_t)d.nsubj, &rs);
    int ntest = (int)floor(o.holdout_frac * d.nsubj + 0.5);
    ntest = ntest < 1 ? 1 : ntest >= d.nsubj ? d.nsubj - 1 : ntest;
    for (int k = 0; k < d.nsubj; k++) {
        int s = (int)subj_order[k];
        is_test_subj[s] = k < ntest;
    }
    train = malloc(sizeof *train * d.n);
    test = malloc(sizeof *test * d.n);
    fold_tr = malloc(sizeof *fold_tr * d.n);
    fold_te = malloc(sizeof *fold_te * d.n);
    y = malloc(sizeof(float) * TR_NTARGETS * d.n);
    scores = malloc(sizeof(float) * d.n);
    sorted = malloc(sizeof(float) * d.n);
    X = malloc(sizeof(float) * d.n * F);
    mean = calloc(F, sizeof(float));
    std = calloc(F, sizeof(float));
    oof = calloc(NG * TR_CV_REPEATS * d.n, sizeof(float));
    fold_of_row = calloc((size_t)TR_CV_REPEATS * d.n, 1);
    oc = malloc(sizeof *oc);
    if (!train || !test || !fold_tr || !fold_te || !y || !scores || !sorted || !X || !mean ||
        !std || !oof || !fold_of_row || !oc)
        goto nomem;
    size_t ntr = 0, nte = 0, npos_tr = 0;
    for (size_t i = 0; i < d.n; i++) {
        const tr_item_t *it = &d.items[i];
        y[TR_TARGET_GAIN * d.n + i] = it->y;
        y[TR_TARGET_WEAK_WRONG * d.n + i] = !it->weak_ok;
        y[TR_TARGET_GAIN3 * d.n + i] = 0.5f * (float)(it->strong_ok - it->weak_ok + 1);
        if (is_test_subj[d.items[i].subject])
            test[nte++] = i;
        else {
            train[ntr++] = i;
            npos_tr += d.items[i].y;
        }
    }

    /* standardise with the training rows' mean and std */
    for (size_t j = 0; j < F; j++) {
        double s1 = 0.0, s2 = 0.0;
        for (size_t k = 0; k < ntr; k++) {
            double v = d.feat[train[k] * F + j];
            s1 += v;
            s2 += v * v;
        }
        double mu = s1 / (double)ntr, var = s2 / (double)ntr - mu * mu;
        mean[j] = (float)mu;
        std[j] = (float)sqrt(var > 1e-12 ? var : 1e-12);
    }
    for (size_t i = 0; i < d.n; i++)
        for (size_t j = 0; j < F; j++)
            X[i * F + j] = (d.feat[i * F + j] - mean[j]) / std[j];

    /* model selection: subject-grouped cross-validation inside the training subjects only */
    size_t chosen = 0;
    for (size_t g = 0; g < NG; g++) {
        const float *yt = y + (size_t)tr_grid[g].target * d.n;
        if ((st = cross_validate(&tr_grid[g], &d, X, yt, train, ntr, o.seed, fold_tr, fold_te,
                                 scores, oof + g * TR_CV_REPEATS * d.n, fold_of_row,
                                 &cv_apgr[g])) != SC_OK)
            goto fail_st;
        sc_info("router.cv", "config=%s cv_apgr=%.4f", tr_grid[g].name, cv_apgr[g]);
        if (cv_apgr[g] > cv_apgr[chosen] || cv_apgr[chosen] != cv_apgr[chosen])
            chosen = g;
    }
    sc_info("router.select", "config=%s cv_apgr=%.4f", tr_grid[chosen].name, cv_apgr[chosen]);

    /* the operating point: thresholds from the chosen head's CV scores (training subjects only) */
    if ((st = operating_curve(&d, train, ntr, oof + chosen * TR_CV_REPEATS * d.n, fold_of_row,
                              o.confidence, oc)) != SC_OK)
        goto fail_st;
    float thr[2];
    double strong_share_cv = 0.0;
    int target_met = 0;
    if (sc_router_pick_thresholds(oc->thr, oc->share, oc->low, TR_OP_POINTS, o.quality_target,
                                  o.lite_share, thr, &strong_share_cv, &target_met) != 0) {
        snprintf(err, sizeof err, "quality target or lite share out of range");
        goto fail;
    }
    sc_info("router.operating_point",
            "quality_target=%.3f confidence=%.2f t1=%.4f t2=%.4f strong_share_cv=%.3f met=%d",
            o.quality_target, o.confidence, (double)thr[0], (double)thr[1], strong_share_cv,
            target_met);
    if (o.cv_only) {
        printf("CV APGR (%d x %d subject-grouped folds of the training subjects):\n", TR_CV_REPEATS,
               TR_FOLDS);
        for (size_t g = 0; g < NG; g++)
            printf("  %-36s %.4f%s\n", tr_grid[g].name, cv_apgr[g], g == chosen ? "  chosen" : "");
        printf("operating curve of the chosen head (share, threshold, pooled ratio, fold q%.0f):\n",
               100.0 * (1.0 - o.confidence));
        for (int p = 0; p < TR_OP_POINTS; p += 10)
            printf("  %.3f %.4f %.4f %.4f\n", (double)oc->share[p], (double)oc->thr[p],
                   (double)oc->ratio[p], (double)oc->low[p]);
        printf("quality target %.3f: t1 %.4f t2 %.4f, CV strong share %.3f%s\n", o.quality_target,
               (double)thr[0], (double)thr[1], strong_share_cv, target_met ? "" : " (not met)");
        rc = 0;
        goto out;
    }

    /* final fit on all training subjects; held-out evaluation */
    if ((st = fit(&tr_grid[chosen], X, y + (size_t)tr_grid[chosen].target * d.n, train, ntr, o.seed,
                  &best)) != SC_OK)
        goto fail_st;
    if ((st = predict(&best, X, test, nte, scores)) != SC_OK)
        goto fail_st;
    double curve[TR_CURVE_POINTS], quality[TR_CURVE_POINTS];
    double apgr = apgr_rows(&d, test, nte, scores, curve, quality);
    double qw = 0.0, qs = 0.0, pos_te = 0.0;
    for (size_t k = 0; k < nte; k++) {
        qw += d.items[test[k]].weak_ok;
        qs += d.items[test[k]].strong_ok;
        pos_te += d.items[test[k]].y;
    }
    qw /= (double)nte;
    qs /= (double)nte;
    /* checks of the metric: random scores (≈ 0.5) and the label itself (the best a score can do) */
    float *rnd = sorted; /* scratch */
    double rnd_sum = 0.0, rnd_one = 0.0;
    uint64_t rr = o.seed + 1000;
    for (int t = 0; t < TR_RANDOM_SEEDS; t++) {
        for (size_t k = 0; k < nte; k++)
            rnd[k] = (float)rng_unit(&rr);
        double a = apgr_rows(&d, test, nte, rnd, NULL, NULL);
        rnd_sum += a;
        if (t == 0)
            rnd_one = a;
    }
    for (size_t k = 0; k < nte; k++)
        rnd[k] = (float)d.items[test[k]].strong_ok - (float)d.items[test[k]].weak_ok;
    double oracle = apgr_rows(&d, test, nte, rnd, NULL, NULL);
    sc_info("router.heldout",
            "apgr=%.4f random_mean=%.4f oracle=%.4f weak_q=%.4f strong_q=%.4f n=%zu", apgr,
            rnd_sum / TR_RANDOM_SEEDS, oracle, qw, qs, nte);
    /* the domain: each signal's range over the training prompts */
    float dom_lo[SC_ROUTER_NSIGNALS], dom_hi[SC_ROUTER_NSIGNALS];
    for (int j = 0; j < SC_ROUTER_NSIGNALS; j++) {
        dom_lo[j] = INFINITY;
        dom_hi[j] = -INFINITY;
        for (size_t k = 0; k < ntr; k++) {
            float v = d.feat[train[k] * F + SC_EMBED_DIM + (size_t)j];
            dom_lo[j] = v < dom_lo[j] ? v : dom_lo[j];
            dom_hi[j] = v > dom_hi[j] ? v : dom_hi[j];
        }
    }
    te_in_dom = malloc(nte ? nte : 1);
    if (!te_in_dom)
        goto nomem;
    size_t te_outside = 0;
    size_t tier_n[3] = {0, 0, 0};
    for (size_t k = 0; k < nte; k++) {
        const float *sg = d.feat + test[k] * F + SC_EMBED_DIM;
        te_in_dom[k] = 1;
        for (int j = 0; j < SC_ROUTER_NSIGNALS; j++)
            te_in_dom[k] &= sg[j] >= dom_lo[j] && sg[j] <= dom_hi[j];
        te_outside += !te_in_dom[k];
        /* outside the domain: the cheapest tier (scrimp serve's default router.outside_tier) */
        tier_n[te_in_dom[k] ? (scores[k] >= thr[0]) + (scores[k] >= thr[1]) : 0]++;
    }
    /* held-out quality ratio at the operating point and at other targets (evaluation only) */
    static const double op_targets[] = {0.90, 0.92, 0.94, 0.95, 0.96, 0.97, 0.98};
    enum { NOP = SC_ARRAY_LEN(op_targets) };
    double op_share[NOP], op_cv_ratio[NOP], op_cv_low[NOP], op_te_ratio[NOP], op_te_share[NOP];
    float op_t2[NOP];
    for (size_t k = 0; k < NOP; k++) {
        float t[2];
        int ok = 0;
        sc_router_pick_thresholds(oc->thr, oc->share, oc->low, TR_OP_POINTS, op_targets[k],
                                  o.lite_share, t, &op_share[k], &ok);
        int p = 0;
        while (p < TR_OP_POINTS - 1 && oc->thr[p] != t[1])
            p++;
        op_t2[k] = t[1];
        op_cv_ratio[k] = oc->ratio[p];
        op_cv_low[k] = oc->low[p];
        ratio_at(&d, test, nte, scores, t[1], te_in_dom, &op_te_ratio[k], &op_te_share[k]);
    }
    double te_ratio = 0.0, te_share = 0.0;
    ratio_at(&d, test, nte, scores, thr[1], te_in_dom, &te_ratio, &te_share);
    sc_info("router.heldout_operating_point", "quality_ratio=%.4f strong_share=%.3f", te_ratio,
            te_share);

    if ((st = sc_router_new(mean, std, best.hidden, best.w1, best.b1, best.w2, best.b2, thr, 2,
                            tr_tier_names, &router)) != SC_OK ||
        (st = sc_router_set_domain(router, dom_lo, dom_hi)) != SC_OK)
        goto fail_st;
    /* the library's scoring path must agree with training's (same head, same features) */
    {
        float a[4], b[4];
        size_t m = nte < 4 ? nte : 4;
        float sig[4 * SC_ROUTER_NSIGNALS], emb[4 * SC_EMBED_DIM];
        for (size_t k = 0; k < m; k++) {
            memcpy(emb + k * SC_EMBED_DIM, d.feat + test[k] * F, sizeof(float) * SC_EMBED_DIM);
            memcpy(sig + k * SC_ROUTER_NSIGNALS, d.feat + test[k] * F + SC_EMBED_DIM,
                   sizeof(float) * SC_ROUTER_NSIGNALS);
            b[k] = scores[k];
        }
        sc_router_score_batch(router, emb, sig, m, a);
        for (size_t k = 0; k < m; k++)
            if (fabsf(a[k] - b[k]) > 1e-4f) {
                snprintf(err, sizeof err, "library score %g != training score %g", (double)a[k],
                         (double)b[k]);
                goto fail;
            }
    }
    tr_speed_t sp = {0, 0, 0};
    if ((st = measure_speed(&d, test, nte, router, enc, &sp)) != SC_OK)
        goto fail_st;
    sc_info("router.speed", "head_ms=%.5f signals_ms=%.5f embed_head_ms=%.3f", sp.head_ms,
            sp.signals_ms, sp.embed_head_ms);

    /* held-out / training subject names, sorted */
    const char *te_names[TR_MAX_SUBJECTS], *tr_names[TR_MAX_SUBJECTS];
    int nte_s = 0, ntr_s = 0;
    for (int s = 0; s < d.nsubj; s++) {
        if (is_test_subj[s])
            te_names[nte_s++] = d.subjects[s];
        else
            tr_names[ntr_s++] = d.subjects[s];
    }
    qsort(te_names, (size_t)nte_s, sizeof *te_names, cmp_str);
    qsort(tr_names, (size_t)ntr_s, sizeof *tr_names, cmp_str);

    /* ---- router.json ---- */
    char rule[1024];
    snprintf(rule, sizeof rule,
             "operating point for quality target %.3f: t2 = the highest threshold on the "
             "operating curve (subject-grouped CV scores of the training subjects) from which on "
             "quality >= %.3f x all-strong quality in %.0f%% of the CV folds%s (strong share "
             "%.3f of the CV prompts); t1: the cheapest tier takes the easiest %.0f%% of the "
             "others. serve recomputes both from the curve for router.quality_target and "
             "router.lite_share",
             o.quality_target, o.quality_target, 100.0 * o.confidence,
             target_met ? "" : " (not reachable: everything strong)", strong_share_cv,
             100.0 * o.lite_share);
    root = json_object(); /* new; every *_new below steals its argument */
    json_t *sigs = json_array(), *feat = json_object(), *head = json_object();
    json_t *tr = json_object(), *met = json_object(), *cv = json_array(), *cur = json_array();
    json_t *dirs = json_array(), *jte = json_array(), *jtr = json_array();
    json_t *tiers = json_array();
    if (!root || !sigs || !feat || !head || !tr || !met || !cv || !cur || !dirs || !jte || !jtr ||
        !tiers) {
        json_decref(sigs), json_decref(feat), json_decref(head), json_decref(tr);
        json_decref(met), json_decref(cv), json_decref(cur), json_decref(dirs);
        json_decref(jte), json_decref(jtr), json_decref(tiers);
        goto nomem;
    }
    for (int i = 0; i < SC_ROUTER_NSIGNALS; i++)
        json_array_append_new(sigs, json_string(sc_router_signal_name(i)));
    json_object_set_new(root, "version", json_integer(1));
    json_object_set_new(feat, "embedding", json_integer(SC_EMBED_DIM));
    json_object_set_new(feat, "encoder", json_string("all-MiniLM-L6-v2 (mean-pooled, L2)"));
    json_object_set_new(feat, "signals", sigs);
    json_object_set_new(root, "features", feat);
    for (int k = 0; k < 3; k++)
        json_array_append_new(tiers, json_string(tr_tier_names[k]));
    json_object_set_new(root, "tiers", tiers);
    json_object_set_new(root, "thresholds", json_floats_new(thr, 2));
    json_object_set_new(root, "thresholds_rule", json_string(rule));
    json_object_set_new(root, "quality_target", json_real(o.quality_target));
    json_object_set_new(root, "lite_share", json_real(o.lite_share));
    json_t *jop = json_object();
    if (!jop)
        goto nomem;
    json_object_set_new(jop, "confidence", json_real(o.confidence));
    json_object_set_new(jop, "from",
                        json_string("the chosen head's scores in 3 x 5-fold subject-grouped CV on "
                                    "the training subjects (repeats pooled); quality_ratio: "
                                    "pooled; quality_ratio_low: the (1 - confidence) quantile "
                                    "over the 15 folds"));
    json_object_set_new(jop, "share", json_floats_new(oc->share, TR_OP_POINTS));
    json_object_set_new(jop, "threshold", json_floats_new(oc->thr, TR_OP_POINTS));
    json_object_set_new(jop, "quality_ratio", json_floats_new(oc->ratio, TR_OP_POINTS));
    json_object_set_new(jop, "quality_ratio_low", json_floats_new(oc->low, TR_OP_POINTS));
    json_object_set_new(root, "operating_curve", jop);
    json_object_set_new(
        root, "domain",
        json_pack("{s:s,s:o,s:o}", "rule",
                  "each signal's range over the training prompts: a prompt with a signal outside "
                  "it is unlike every prompt the head was fitted on, and scrimp serve routes it "
                  "to router.outside_tier",
                  "signals_min", json_floats_new(dom_lo, SC_ROUTER_NSIGNALS), "signals_max",
                  json_floats_new(dom_hi, SC_ROUTER_NSIGNALS)));
    for (int k = 0; k < o.ndirs; k++)
        json_array_append_new(dirs, json_string(o.dirs[k]));
    for (int k = 0; k < nte_s; k++)
        json_array_append_new(jte, json_string(te_names[k]));
    for (int k = 0; k < ntr_s; k++)
        json_array_append_new(jtr, json_string(tr_names[k]));
    for (size_t g = 0; g < NG; g++)
        json_array_append_new(
            cv,
            json_pack("{s:s,s:s,s:s,s:i,s:f,s:f,s:i,s:f}", "name", tr_grid[g].name, "target",
                      tr_target_names[tr_grid[g].target], "inputs", tr_feat_names[tr_grid[g].feat],
                      "hidden", tr_grid[g].hidden, "l2", (double)tr_grid[g].l2, "lr",
                      (double)tr_grid[g].lr, "epochs", tr_grid[g].epochs, "cv_apgr", cv_apgr[g]));
    json_object_set_new(tr, "command", json_string(o.cmdline));
    json_object_set_new(tr, "data", dirs);
    char label[512];
    snprintf(label, sizeof label,
             "target %s: %s; weak = " TR_WEAK_COL ", strong = " TR_STRONG_COL
             "; contaminated prompts dropped",
             tr_target_names[tr_grid[chosen].target],
             tr_grid[chosen].target == TR_TARGET_GAIN3
                 ? "(strong right - weak right + 1) / 2, so the score is (1 + the expected gain "
                   "of the strong model's answer) / 2"
             : tr_grid[chosen].target == TR_TARGET_GAIN
                 ? "1 when the weak model was wrong and the strong one right"
                 : "1 when the weak model was wrong");
    json_object_set_new(tr, "label", json_string(label));
    json_object_set_new(tr, "inputs", json_string(tr_feat_names[tr_grid[chosen].feat]));
    json_object_set_new(tr, "prompts", json_integer((json_int_t)d.n));
    json_object_set_new(tr, "contaminated_dropped", json_integer((json_int_t)d.dropped));
    json_object_set_new(tr, "rows_train", json_integer((json_int_t)ntr));
    json_object_set_new(tr, "rows_heldout", json_integer((json_int_t)nte));
    json_object_set_new(tr, "positive_share_train", json_real((double)npos_tr / (double)ntr));
    json_object_set_new(tr, "holdout_frac", json_real(o.holdout_frac));
    json_object_set_new(tr, "seed", json_integer((json_int_t)o.seed));
    json_object_set_new(tr, "heldout_subjects", jte);
    json_object_set_new(tr, "train_subjects", jtr);
    json_object_set_new(tr, "selection",
                        json_string("3 × 5-fold cross-validation grouped by subject, inside the "
                                    "training subjects; the held-out subjects are scored once"));
    json_object_set_new(tr, "optimizer",
                        json_string("Adam, minibatch 128, L2 on weights, fixed epochs; 0/1 "
                                    "targets: classes weighted to equal total weight"));
    json_object_set_new(tr, "cv", cv);
    json_object_set_new(tr, "chosen", json_string(tr_grid[chosen].name));
    for (int p = 0; p < TR_CURVE_POINTS; p++)
        json_array_append_new(cur,
                              json_pack("{s:f,s:f,s:f}", "cost", (double)p / (TR_CURVE_POINTS - 1),
                                        "pgr", curve[p], "quality", quality[p]));
    json_object_set_new(met, "apgr_heldout", json_real(apgr));
    json_object_set_new(met, "apgr_cv", json_real(cv_apgr[chosen]));
    json_object_set_new(met, "apgr_random_heldout_mean", json_real(rnd_sum / TR_RANDOM_SEEDS));
    json_object_set_new(met, "apgr_oracle_heldout", json_real(oracle));
    json_object_set_new(met, "weak_quality_heldout", json_real(qw));
    json_object_set_new(met, "strong_quality_heldout", json_real(qs));
    json_object_set_new(met, "positive_share_heldout", json_real(pos_te / (double)nte));
    json_object_set_new(met, "tier_share_heldout",
                        json_pack("{s:f,s:f,s:f}", tr_tier_names[0],
                                  (double)tier_n[0] / (double)nte, tr_tier_names[1],
                                  (double)tier_n[1] / (double)nte, tr_tier_names[2],
                                  (double)tier_n[2] / (double)nte));
    json_object_set_new(met, "curve_heldout", cur);
    json_object_set_new(met, "quality_ratio_heldout", json_real(te_ratio));
    json_object_set_new(met, "outside_domain_share_heldout",
                        json_real((double)te_outside / (double)nte));
    json_object_set_new(met, "strong_share_heldout", json_real(te_share));
    json_object_set_new(met, "strong_share_cv", json_real(strong_share_cv));
    json_object_set_new(met, "cpu_ms_per_prompt_head", json_real(sp.head_ms));
    json_object_set_new(met, "cpu_ms_per_prompt_signals", json_real(sp.signals_ms));
    json_object_set_new(met, "cpu_ms_per_prompt_embed_and_head", json_real(sp.embed_head_ms));
    json_object_set_new(root, "training", tr);
    json_object_set_new(root, "metrics", met);
    json_object_set_new(head, "type", json_string(best.hidden ? "mlp" : "logistic"));
    json_object_set_new(head, "hidden", json_integer(best.hidden));
    if (best.hidden) {
        json_object_set_new(head, "w1", json_floats_new(best.w1, (size_t)best.hidden * F));
        json_object_set_new(head, "b1", json_floats_new(best.b1, (size_t)best.hidden));
    }
    json_object_set_new(head, "w2",
                        json_floats_new(best.w2, best.hidden ? (size_t)best.hidden : F));
    json_object_set_new(head, "b2", json_real((double)best.b2));
    json_object_set_new(root, "mean", json_floats_new(mean, F));
    json_object_set_new(root, "std", json_floats_new(std, F));
    json_object_set_new(root, "head", head);
    if (write_json_lines(root, o.out) != 0) {
        snprintf(err, sizeof err, "%s: cannot write", o.out);
        goto fail;
    }

    /* ---- bench/results/router.md + router-curve.svg ---- */
    char path[TR_PATH], svg[TR_PATH], host[256], date[64];
    snprintf(path, sizeof path, "%s/router.md", o.report_dir);
    snprintf(svg, sizeof svg, "%s/router-curve.svg", o.report_dir);
    make_parent_dirs(path);
    if (write_svg(svg, quality, qw, qs, apgr) != 0) {
        snprintf(err, sizeof err, "%s: cannot write", svg);
        goto fail;
    }
    machine_name(host, sizeof host);
    time_t now = time(NULL);
    strftime(date, sizeof date, "%Y-%m-%d %H:%M UTC", gmtime(&now));
    FILE *md = fopen(path, "w");
    if (!md) {
        snprintf(err, sizeof err, "%s: %s", path, strerror(errno));
        goto fail;
    }
    const tr_cfg_t *ch = &tr_grid[chosen];
    fprintf(md,
            "# Router: quality vs cost on held-out MMLU subjects\n\n"
            "Made by `%s` on %s (%ld CPU cores), %s. Weights: `%s`.\n\n"
            "The router scores each prompt for how much it gains from the strong model: the weak "
            "model is Mixtral-8x7B, the strong one GPT-4-1106, with RouteLLM's recorded "
            "outcomes. The head chosen here fits %s. Sending the highest-scoring share of "
            "prompts to the strong model traces the curve below; APGR is the area under the "
            "performance gap recovered, (quality − weak) / (strong − weak), over cost 0..1 "
            "(random routing: 0.5).\n\n",
            o.cmdline, host, sysconf(_SC_NPROCESSORS_ONLN), date, o.out,
            ch->target == TR_TARGET_GAIN3
                ? "(strong right − weak right + 1) / 2 ∈ {0, ½, 1}, so the score estimates "
                  "(1 + the expected gain in accuracy of the strong model's answer) / 2 and it "
                  "also learns where the strong model does worse than the weak one"
            : ch->target == TR_TARGET_GAIN
                ? "the probability that the prompt *needs the strong model* (the weak model was "
                  "wrong and the strong one right)"
                : "the probability that the weak model is wrong");
    fprintf(md,
            "| | value |\n|---|---|\n"
            "| **APGR, held-out subjects** | **%.4f** |\n"
            "| APGR of random routing (mean of %d seeds; first seed) | %.4f (%.4f) |\n"
            "| APGR of the label itself (upper bound) | %.4f |\n"
            "| APGR, subject-grouped %d × %d-fold CV on training subjects (selection) | %.4f |\n"
            "| head chosen by CV | %s (target %s; inputs: %s) |\n"
            "| held-out prompts / subjects | %zu / %d |\n"
            "| training prompts / subjects | %zu / %d |\n"
            "| contaminated prompts dropped | %zu |\n"
            "| weak / strong accuracy (held-out) | %.4f / %.4f |\n"
            "| share needing the strong model (held-out) | %.4f |\n\n",
            apgr, TR_RANDOM_SEEDS, rnd_sum / TR_RANDOM_SEEDS, rnd_one, oracle, TR_CV_REPEATS,
            TR_FOLDS, cv_apgr[chosen], ch->name, tr_target_names[ch->target],
            tr_feat_names[ch->feat], nte, nte_s, ntr, ntr_s, d.dropped, qw, qs,
            pos_te / (double)nte);
    fputs("## Quality/cost curve (held-out)\n\n![quality vs cost](router-curve.svg)\n\n"
          "| cost (share to strong) | quality | PGR | random PGR |\n|---|---|---|---|\n",
          md);
    for (int p = 0; p < TR_CURVE_POINTS; p++)
        fprintf(md, "| %.2f | %.4f | %.4f | %.2f |\n", (double)p / (TR_CURVE_POINTS - 1),
                quality[p], curve[p], (double)p / (TR_CURVE_POINTS - 1));
    fprintf(md,
            "\n## Model selection (CV inside the training subjects)\n\n"
            "Every candidate is scored by the mean APGR over %d × %d subject-grouped folds of the "
            "training subjects (the same folds for all); the best is refitted on all training "
            "subjects and scored once on the held-out subjects. Targets: *needs-strong* = 1 when "
            "the weak model was wrong and the strong one right (classes weighted to equal "
            "weight); *gain* = (strong right − weak right + 1) / 2 (unweighted). Masked inputs "
            "keep weight 0, so every head has the same shape.\n\n"
            "| head | target | inputs | hidden | L2 | lr | epochs | CV APGR |\n"
            "|---|---|---|---|---|---|---|---|\n",
            TR_CV_REPEATS, TR_FOLDS);
    for (size_t g = 0; g < NG; g++)
        fprintf(md, "| %s%s | %s | %s | %d | %g | %g | %d | %.4f |\n", tr_grid[g].name,
                g == chosen ? " (chosen)" : "", tr_target_names[tr_grid[g].target],
                tr_feat_names[tr_grid[g].feat], tr_grid[g].hidden, (double)tr_grid[g].l2,
                (double)tr_grid[g].lr, tr_grid[g].epochs, cv_apgr[g]);
    fprintf(md,
            "\n## Operating point (tiers)\n\n"
            "The strong-tier threshold comes from a quality target, not a fixed share: the "
            "chosen head's CV scores of the training subjects (%d repeats × %d subject-grouped "
            "folds, pooled) give an operating curve (%d thresholds, stored in the weights file as "
            "`operating_curve`) with, at each threshold, the quality ratio (accuracy when prompts "
            "at or above it get the strong model's answer and the others the weak one's, over "
            "the all-strong accuracy) pooled and as reached by %.0f%% of the folds (its %.0f%% "
            "quantile: subjects differ, so the pooled ratio alone would be met only about half "
            "the time). The threshold for a target is the highest one from which on the fold "
            "quantile stays at or above the target. `scrimp serve` recomputes it from the curve "
            "for `router.quality_target` (default 0.95) and `router.lite_share` (default 0.5: "
            "the easiest half of the prompts kept off the strong tier go to the cheapest "
            "one).\n\n"
            "%s. Thresholds t1 = %.4f, t2 = %.4f: score < t1 → %s, < t2 → %s, else %s. Held-out "
            "shares: %.3f / %.3f / %.3f; held-out quality ratio %.4f (target %.3f).\n\n"
            "| quality target | CV strong share | t2 | CV quality ratio (pooled) | reached by "
            "%.0f%% of CV folds | held-out strong share | held-out quality ratio |\n"
            "|---|---|---|---|---|---|---|\n",
            TR_CV_REPEATS, TR_FOLDS, TR_OP_POINTS, 100.0 * o.confidence,
            100.0 * (1.0 - o.confidence), rule, (double)thr[0], (double)thr[1], tr_tier_names[0],
            tr_tier_names[1], tr_tier_names[2], (double)tier_n[0] / (double)nte,
            (double)tier_n[1] / (double)nte, (double)tier_n[2] / (double)nte, te_ratio,
            o.quality_target, 100.0 * o.confidence);
    for (size_t k = 0; k < NOP; k++)
        fprintf(md, "| %.2f%s | %.3f | %.4f | %.4f | %.4f | %.3f | %.4f |\n", op_targets[k],
                fabs(op_targets[k] - o.quality_target) < 1e-9 ? " (default)" : "", op_share[k],
                (double)op_t2[k], op_cv_ratio[k], op_cv_low[k], op_te_share[k], op_te_ratio[k]);
    fprintf(md,
            "\n**Domain.** The weights file also keeps each signal's range over the training "
            "prompts (`domain`). A prompt with a signal outside it (no answer options, one line, "
            "far longer or shorter than any training prompt, …) is unlike every prompt the head "
            "was fitted on, so its score says nothing: `scrimp serve` routes it to "
            "`router.outside_tier` (default `lite`: the cheapest tier first, the cascade behind "
            "it). Held-out prompts outside the box: %zu of %zu (%.2f%%); they are counted in the "
            "cheapest tier above (shares and quality ratios), not in the APGR, which ranks the "
            "scores alone.\n",
            te_outside, nte, 100.0 * (double)te_outside / (double)nte);
    fprintf(md,
            "\n## CPU scoring speed (batches of %d held-out prompts)\n\n"
            "| stage | ms per prompt |\n|---|---|\n"
            "| head alone (standardise + %s, `sc_router_score_batch`, %d reps) | %.5f |\n"
            "| signals (token count + text signals) | %.5f |\n"
            "| signals + head (the router's own work, target <= %.2f) | %.5f |\n"
            "| embedding (all-MiniLM-L6-v2, CPU) + signals + head | %.3f |\n\n"
            "The embedding is the shared encoder stage of the pipeline (computed once per "
            "prompt for the cache as well); on the GPU it is `scrimp embed --backend cuda`.\n\n",
            TR_SPEED_BATCH, ch->name, TR_SPEED_REPS, sp.head_ms, sp.signals_ms, TR_TARGET_MS,
            sp.head_ms + sp.signals_ms, sp.embed_head_ms);
    fprintf(md,
            "## Status against the target\n\n"
            "- Held-out APGR %.4f against the target %.2f: %s. Subject-grouped CV on the "
            "training subjects (%d fold assignments × %d folds) gives %.4f for the same head; "
            "single groups of subjects vary widely around it, so the held-out number depends on "
            "which subjects are held out.\n"
            "- Random routing on the same held-out prompts: %.4f (the metric's check: ≈ 0.5).\n"
            "- Scoring speed: %s (signals + head %.4f ms per prompt).\n"
            "- Trained on MMLU multiple-choice prompts only: scores of free-form prompts (no "
            "answer options, other lengths) are outside what it has seen.\n\n",
            apgr, TR_TARGET_APGR, apgr >= TR_TARGET_APGR ? "met" : "**not met**", TR_CV_REPEATS,
            TR_FOLDS, cv_apgr[chosen], rnd_sum / TR_RANDOM_SEEDS,
            sp.head_ms + sp.signals_ms <= TR_TARGET_MS ? "met" : "**not met**",
            sp.head_ms + sp.signals_ms);
    fputs("## Split\n\nHeld-out subjects (never seen in training or selection): ", md);
    for (int k = 0; k < nte_s; k++)
        fprintf(md, "%s`%s`", k ? ", " : "", te_names[k]);
    fputs(".\n\nTraining subjects: ", md);
    for (int k = 0; k < ntr_s; k++)
        fprintf(md, "%s`%s`", k ? ", " : "", tr_names[k]);
    fputs(".\n", md);
    if (fclose(md) != 0) {
        snprintf(err, sizeof err, "%s: write failed", path);
        goto fail;
    }
    printf("held-out APGR %.4f (random %.4f, oracle %.4f; CV %.4f, head %s); quality target "
           "%.3f: thresholds %.4f %.4f (CV strong share %.3f; held-out quality ratio %.4f, "
           "strong share %.3f); head %.5f ms/prompt, signals+head %.5f ms/prompt, embed+head "
           "%.3f ms/prompt\nwrote %s, %s, %s\n",
           apgr, rnd_sum / TR_RANDOM_SEEDS, oracle, cv_apgr[chosen], tr_grid[chosen].name,
           o.quality_target, (double)thr[0], (double)thr[1], strong_share_cv, te_ratio, te_share,
           sp.head_ms, sp.head_ms + sp.signals_ms, sp.embed_head_ms, o.out, path, svg);
    rc = 0;
    goto out;
nomem:
    st = SC_ERR_NOMEM;
fail_st:
    if (!err[0])
        snprintf(err, sizeof err, "%s", sc_strerror(st));
fail:
    fprintf(stderr, "scrimp train-router: %s\n", err);
out:
    json_decref(root);
    sc_router_free(router);
    head_free(&best);
    sc_encoder_free(enc);
    data_free(&d);
    free(X), free(mean), free(std), free(scores), free(sorted), free(train), free(test);
    free(fold_tr), free(fold_te), free(subj_order), free(y), free(is_test_subj);
    free(oof), free(fold_of_row), free(oc), free(te_in_dom);
    free(ids);
    return rc;
}

/* ---- classify ---- */

static void classify_usage(FILE *f)
{
    fprintf(
        f,
        "usage: scrimp classify [--router FILE] [--model DIR] [--tiers a,b,c] [--batch N]\n"
        "                       [--threads N] [--quality-target Q [--lite-share S]] < lines\n"
        "  one {\"i\":N,\"score\":S,\"tier\":\"T\"} per input line (default router %s);\n"
        "  a prompt outside the router's domain gets the cheapest tier and \"in_domain\":false;\n"
        "  --quality-target: thresholds for that target (as serve's router.quality_target)\n"
        "  instead of the file's\n",
        TR_DEFAULT_OUT);
}

typedef struct {
    char *text; /* owned */
    size_t len;
    char pinned[SC_ROUTER_TIER_NAME * 2]; /* "" unless the line pins a model */
} cl_line_t;

/* Read one line (without the newline). 1 a line, 0 end, -1 too long or read error. */
static int cl_read_line(FILE *in, char *buf, size_t max, size_t *len)
{
    size_t n = 0;
    int c;
    while ((c = getc_unlocked(in)) != EOF && c != '\n') {
        if (n == max)
            return -1;
        buf[n++] = (char)c;
    }
    if (ferror(in))
        return -1;
    if (c == EOF && n == 0)
        return 0;
    *len = n;
    return 1;
}

/* A request line {"prompt": …, "model": …}: take its prompt, note a pinned model. */
static int cl_prepare(cl_line_t *l, const char *buf, size_t len)
{
    l->pinned[0] = '\0';
    json_t *o = len && buf[0] == '{' ? json_loadb(buf, len, 0, NULL) : NULL;          /* new */
    const json_t *p = json_object_get(o, "prompt"), *m = json_object_get(o, "model"); /* borrowed */
    if (json_is_string(p)) {
        l->len = json_string_length(p);
        l->text = malloc(l->len + 1);
        if (l->text)
            memcpy(l->text, json_string_value(p), l->len + 1);
        if (json_is_string(m) && strcmp(json_string_value(m), "auto") != 0)
            sc_strlcpy(l->pinned, json_string_value(m), sizeof l->pinned);
    } else {
        l->len = len;
        l->text = malloc(len + 1);
        if (l->text) {
            memcpy(l->text, buf, len);
            l->text[len] = '\0';
        }
    }
    json_decref(o);
    return l->text ? 0 : -1;
}

int sc_classify_cli(int argc, char **argv)
{
    static const struct option opts[] = {{"router", required_argument, NULL, 'r'},
                                         {"model", required_argument, NULL, 'm'},
                                         {"tiers", required_argument, NULL, 'T'},
                                         {"batch", required_argument, NULL, 'n'},
                                         {"threads", required_argument, NULL, 't'},
                                         {"quality-target", required_argument, NULL, 'q'},
                                         {"lite-share", required_argument, NULL, 'l'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    const char *router_path = TR_DEFAULT_OUT;
    double quality_target = 0.0, lite_share = 0.5; /* 0: the file's thresholds */
    char tierbuf[SC_ROUTER_MAX_TIERS * SC_ROUTER_TIER_NAME] = "";
    const char *tiers[SC_ROUTER_MAX_TIERS];
    int ntiers = 0, opt, batch = TR_CLASSIFY_BATCH;
    double v;
    sc_encoder_opts_t eo;
    sc_encoder_opts_default(&eo);
    const char *env = getenv("SCRIMP_BACKEND");
    if (env && *env && sc_backend_parse(env, &eo.backend) != 0) {
        fprintf(stderr, "scrimp classify: SCRIMP_BACKEND=%s: expected auto, cpu or cuda\n", env);
        return 2;
    }
    optind = 1;
    while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (opt == 'r')
            router_path = optarg;
        else if (opt == 'm')
            eo.model_dir = optarg;
        else if (opt == 'T' && strlen(optarg) < sizeof tierbuf) {
            sc_strlcpy(tierbuf, optarg, sizeof tierbuf);
            ntiers = 0;
            for (char *save = NULL, *t = strtok_r(tierbuf, ",", &save);
                 t && ntiers < SC_ROUTER_MAX_TIERS; t = strtok_r(NULL, ",", &save))
                tiers[ntiers++] = t;
            if (ntiers < 3) {
                fprintf(stderr, "scrimp classify: --tiers needs at least three names\n");
                return 2;
            }
        } else if (opt == 'n' && parse_double(optarg, 1, TR_CLASSIFY_MAX_BATCH, &v) == 0)
            batch = (int)v;
        else if (opt == 't' && parse_double(optarg, 0, 1024, &v) == 0)
            eo.threads = (int)v;
        else if (opt == 'q' && parse_double(optarg, 0, 1, &quality_target) == 0)
            ;
        else if (opt == 'l' && parse_double(optarg, 0, 1, &lite_share) == 0)
            ;
        else if (opt == 'h') {
            classify_usage(stdout);
            return 0;
        } else {
            classify_usage(stderr);
            return 2;
        }
    }
    if (optind < argc) {
        classify_usage(stderr);
        return 2;
    }
    eo.max_batch = batch;
    char err[TR_ERRBUF] = "";
    int rc = 1;
    sc_router_t *r = NULL;
    sc_encoder_t *enc = NULL;
    char *buf = malloc(TR_CLASSIFY_MAX_LINE);
    cl_line_t *lines = calloc((size_t)batch, sizeof *lines);
    const char **texts = malloc(sizeof *texts * (size_t)batch);
    size_t *lens = malloc(sizeof *lens * (size_t)batch),
           *which = malloc(sizeof *which * (size_t)batch);
    float *scores = malloc(sizeof(float) * (size_t)batch);
    unsigned char *in_dom = malloc((size_t)batch);
    size_t n = 0, line_no = 0;
    if (!buf || !lines || !texts || !lens || !which || !scores || !in_dom) {
        fprintf(stderr, "scrimp classify: out of memory\n");
        goto out;
    }
    if (sc_router_load(router_path, &r, err, sizeof err) != SC_OK ||
        sc_encoder_new(&eo, &enc, err, sizeof err) != SC_OK) {
        fprintf(stderr, "scrimp classify: %s\n", err);
        goto out;
    }
    if (quality_target > 0.0 &&
        sc_router_set_quality_target(r, quality_target, lite_share, NULL, NULL) != SC_OK) {
        fprintf(stderr, "scrimp classify: %s has no operating curve for --quality-target\n",
                router_path);
        goto out;
    }
    for (int eof = 0; !eof;) {
        n = 0;
        while (n < (size_t)batch) {
            size_t len = 0;
            int got = cl_read_line(stdin, buf, TR_CLASSIFY_MAX_LINE, &len);
            if (got == 0) {
                eof = 1;
                break;
            }
            if (got < 0 || cl_prepare(&lines[n], buf, len) != 0) {
                fprintf(stderr, "scrimp classify: line %zu: longer than %u bytes or unreadable\n",
                        line_no + n + 1, TR_CLASSIFY_MAX_LINE);
                goto out;
            }
            n++;
        }
        size_t m = 0;
        for (size_t k = 0; k < n; k++)
            if (!lines[k].pinned[0]) {
                texts[m] = lines[k].text;
                lens[m] = lines[k].len;
                which[m++] = k;
            }
        sc_status_t st = m ? sc_router_score_texts(r, enc, texts, lens, m, scores, in_dom) : SC_OK;
        if (st) {
            fprintf(stderr, "scrimp classify: lines %zu..%zu: %s\n", line_no + 1, line_no + n,
                    sc_strerror(st));
            goto out;
        }
        for (size_t k = 0, j = 0; k < n; k++) {
            if (lines[k].pinned[0]) {
                json_t *s = json_string(lines[k].pinned); /* new */
                char *q = s ? json_dumps(s, JSON_ENCODE_ANY) : NULL;
                printf("{\"i\":%zu,\"score\":null,\"tier\":%s,\"pinned\":true}\n", line_no + k,
                       q ? q : "\"\"");
                free(q);
                json_decref(s);
                continue;
            }
            float sc = scores[j];
            int inside = in_dom[j++];
            /* outside the router's domain: the cheapest tier (serve's default outside_tier) */
            json_t *s = json_string(inside   ? sc_router_tier(r, sc, ntiers ? tiers : NULL, ntiers)
                                    : ntiers ? tiers[0]
                                             : sc_router_tier(r, -INFINITY, NULL, 0));
            char *q = s ? json_dumps(s, JSON_ENCODE_ANY) : NULL;
            printf("{\"i\":%zu,\"score\":%.6f,\"tier\":%s%s}\n", line_no + k, (double)sc,
                   q ? q : "\"\"", inside ? "" : ",\"in_domain\":false");
            free(q);
            json_decref(s);
        }
        for (size_t k = 0; k < n; k++) {
            free(lines[k].text);
            lines[k].text = NULL;
        }
        line_no += n;
        n = 0;
    }
    if (fflush(stdout) != 0) {
        fprintf(stderr, "scrimp classify: writing stdout: %s\n", strerror(errno));
        goto out;
    }
    rc = 0;
out:
    for (size_t k = 0; lines && k < n; k++)
        free(lines[k].text);
    sc_router_free(r);
    sc_encoder_free(enc);
    free(buf), free(lines), free(texts), free(lens), free(which), free(scores), free(in_dom);
    return rc;
}
