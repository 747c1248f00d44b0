/* data.c - router training data: the CSV reader (sc_csv_next), the MMLU routing CSVs and the
 * contamination list into a tr_data_t (MT-Bench: mt_bench.c), and the embeddings (from the cache,
 * or the encoder). */
#include "models/train/train_router.h"

#include <errno.h>
#include <glob.h>
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "host/core/log.h"
#include "host/core/util.h"
#include "models/encoder.h"
#include "models/router.h"
#include "models/train/train_internal.h"

#define TR_MAX_ITEMS      (1u << 20)
#define TR_MAX_FILE_BYTES (256u << 20)
#define TR_CSV_FIELDS     8
/* embedding cache: these 8 bytes, uint32 dim, then records {uint64 FNV-1a of the prompt, dim
 * floats} */
#define TR_CACHE_MAGIC "SCRTEMB1"

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

/* ---- files ---- */

uint64_t tr_fnv1a64(const char *s, size_t n)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)s[i];
        h *= 0x100000001b3ull;
    }
    return h;
}

sc_status_t tr_read_file(const char *path, size_t max, char **out, size_t *len, char *err,
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

/* mkdir -p of the directory part of path */
void tr_make_parent_dirs(const char *path)
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

void tr_data_free(tr_data_t *d)
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
    sc_status_t st = tr_read_file(path, TR_MAX_FILE_BYTES, &buf, &len, err, errlen);
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
                tr_fnv1a64(json_string_value(v), json_string_length(v));
        }
        json_decref(o);
        line = nl ? nl + 1 : NULL;
    }
    free(buf);
    if (d->ncontaminated)
        qsort(d->contaminated, d->ncontaminated, sizeof *d->contaminated, cmp_u64);
    return SC_OK;
}

/* Room for one more item. */
static sc_status_t grow_items(tr_data_t *d)
{
    if (d->n < d->cap)
        return SC_OK;
    size_t cap = d->cap ? d->cap * 2 : 4096;
    tr_item_t *g = realloc(d->items, cap * sizeof *g);
    if (!g)
        return SC_ERR_NOMEM;
    d->items = g;
    d->cap = cap;
    return SC_OK;
}

sc_status_t tr_add_item(tr_data_t *d, const char *text, size_t len, int subject, int family,
                        float wq, float sq)
{
    if (d->n >= TR_MAX_ITEMS)
        return SC_ERR_FULL;
    if (grow_items(d) != SC_OK)
        return SC_ERR_NOMEM;
    char *t = malloc(len + 1);
    if (!t)
        return SC_ERR_NOMEM;
    memcpy(t, text, len);
    t[len] = '\0';
    tr_item_t *it = &d->items[d->n++];
    memset(it, 0, sizeof *it);
    it->text = t;
    it->len = len;
    it->hash = tr_fnv1a64(text, len);
    it->subject = subject;
    it->family = (unsigned char)family;
    it->wq = wq;
    it->sq = sq;
    it->weak_ok = wq >= sq; /* graded families: "right" = no worse than the other model */
    it->strong_ok = sq >= wq;
    it->y = sq > wq;
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
    sc_status_t st = tr_read_file(path, TR_MAX_FILE_BYTES, &buf, &len, err, errlen);
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
        uint64_t h = ok ? tr_fnv1a64(fields[cp], lens[cp]) : 0;
        if (ok && d->ncontaminated &&
            bsearch(&h, d->contaminated, d->ncontaminated, sizeof h, cmp_u64)) {
            d->dropped++;
            ok = 0;
        } else if (ok && d->n < TR_MAX_ITEMS) {
            if (grow_items(d) != SC_OK) {
                for (int k = 0; k < nf; k++)
                    free(fields[k]);
                st = SC_ERR_NOMEM;
                goto out;
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
            it->family = TR_FAM_MMLU;
            it->wq = it->weak_ok;
            it->sq = it->strong_ok;
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

sc_status_t tr_load_dir(tr_data_t *d, const char *dir, char *err, size_t errlen)
{
    char pat[TR_PATH];
    glob_t g;
    snprintf(pat, sizeof pat, "%s/mmlu-contaminated_prompts.jsonl", dir);
    sc_status_t st = load_contaminated(d, pat, err, errlen);
    if (st)
        return st;
    snprintf(pat, sizeof pat, "%s/mmlu/mmlu_*.csv", dir);
    if (glob(pat, 0, NULL, &g) != 0) {
        st = tr_load_mt_bench(d, dir, err, errlen);
        if (st == SC_ERR_NOT_FOUND)
            snprintf(err, errlen, "%s: no files, and no %s/mt_bench/question.jsonl", pat, dir);
        return st;
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
        d->subj_family[d->nsubj] = TR_FAM_MMLU;
        st = load_csv(d, g.gl_pathv[k], d->nsubj, err, errlen);
        d->nsubj++;
    }
    globfree(&g);
    if (st == SC_OK && (st = tr_load_mt_bench(d, dir, err, errlen)) == SC_ERR_NOT_FOUND)
        st = SC_OK; /* MMLU alone */
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
sc_status_t tr_embed_all(tr_data_t *d, sc_encoder_t *enc, const char *cache_path, char *err,
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
        st = tr_read_file(cache_path, (size_t)4 << 30, &buf, &len, err, errlen);
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
    tr_make_parent_dirs(cache_path);
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
