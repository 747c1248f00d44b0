/* test_cache.c - the semantic cache: exact and semantic hits, scope isolation over 10,000
 * randomised lookups, TTL, LRU eviction, purge, reopen (index rebuilt), HNSW/IVF against flat,
 * the saved index (loaded when its stamp matches, rebuilt when stale or corrupt), the guards,
 * concurrent lookups during inserts. */
#include <math.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "host/cache/cache.h"
#include "host/core/util.h"

#define T_DIM 64
#define T_ISO_LOOKUPS 12000
#define T_ISO_BATCH 48
#define T_ANN_N 400
#define T_DIR_MAX 256

/* ---- helpers ---- */

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static uint64_t rng(void)
{
    uint64_t x = rng_state;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return rng_state = x;
}

static double rng_unit(void) { return (double)(rng() >> 11) / 9007199254740992.0; }

static double rng_normal(void)
{
    double u = rng_unit() + 1e-12, v = rng_unit();
    return sqrt(-2.0 * log(u)) * cos(6.283185307179586 * v);
}

static void normalize(float *v, int d)
{
    double s = 0;
    for (int i = 0; i < d; i++)
        s += (double)v[i] * v[i];
    s = sqrt(s);
    for (int i = 0; i < d; i++)
        v[i] = (float)(v[i] / s);
}

static void random_unit(float *v, int d)
{
    for (int i = 0; i < d; i++)
        v[i] = (float)rng_normal();
    normalize(v, d);
}

/* A unit vector with cosine cosv to the unit vector base. */
static void at_cosine(const float *base, double cosv, float *out, int d)
{
    float r[T_DIM];
    random_unit(r, d);
    double dot = 0;
    for (int i = 0; i < d; i++)
        dot += (double)r[i] * base[i];
    for (int i = 0; i < d; i++)
        r[i] = (float)(r[i] - dot * base[i]); /* orthogonal to base */
    normalize(r, d);
    double s = sqrt(1.0 - cosv * cosv);
    for (int i = 0; i < d; i++)
        out[i] = (float)(cosv * base[i] + s * r[i]);
}

static void make_dir(char *dir, size_t len)
{
    snprintf(dir, len, "/tmp/scrimp-test-cache.XXXXXX");
    assert_non_null(mkdtemp(dir));
}

static void remove_dir(const char *dir)
{
    char p[T_DIR_MAX + 32];
    snprintf(p, sizeof(p), "%s/data.mdb", dir);
    unlink(p);
    snprintf(p, sizeof(p), "%s/lock.mdb", dir);
    unlink(p);
    snprintf(p, sizeof(p), "%s/index.scx", dir);
    unlink(p);
    snprintf(p, sizeof(p), "%s/index.scx.tmp", dir);
    unlink(p);
    rmdir(dir);
}

static void test_opts(sc_cache_opts_t *o, const char *dir)
{
    sc_cache_opts_default(o);
    o->path = dir;
    o->dim = T_DIM;
    o->threshold = 0.9;
    o->strict_band = 0.02;
    o->use_gpu = 0;
    o->ttl_s = 0;
    o->max_bytes = (size_t)1 << 30;
}

static sc_cache_t *open_ok(const sc_cache_opts_t *o)
{
    sc_cache_t *c = NULL;
    char err[256];
    sc_status_t st = sc_cache_open(o, &c, err, sizeof(err));
    if (st)
        fprintf(stderr, "open: %s\n", err);
    assert_int_equal(st, SC_OK);
    return c;
}

static uint64_t insert(sc_cache_t *c, uint64_t scope, const char *tenant, const char *text,
                       const float *vec, const char *resp)
{
    sc_cache_query_t q = {scope, tenant, text, strlen(text), vec};
    sc_usage_t u = {100, 0, 20, 0};
    uint64_t id = 0;
    assert_int_equal(sc_cache_insert(c, &q, resp, strlen(resp), "gemini-2.5-flash", &u, 0.001, &id),
                     SC_OK);
    assert_true(id > 0);
    return id;
}

static sc_cache_hit_t lookup(sc_cache_t *c, uint64_t scope, const char *text, const float *vec,
                             sc_cache_result_t *r)
{
    sc_cache_query_t q = {scope, "t", text, strlen(text), vec};
    assert_int_equal(sc_cache_lookup(c, &q, 1, r), SC_OK);
    return r->hit;
}

/* ---- normalisation and scope ---- */

static void test_normalize(void **state)
{
    (void)state;
    char out[64];
    const char *in = "  H\xc3\xa9llo\t\tWORLD \xef\xac\x81ne  "; /* "Héllo WORLD ﬁne" */
    size_t n = sc_cache_normalize(in, strlen(in), out, sizeof(out));
    assert_string_equal(out, "h\xc3\xa9llo world fine");
    assert_int_equal(n, strlen(out));
    /* truncation keeps whole characters */
    n = sc_cache_normalize("\xc3\xa9\xc3\xa9\xc3\xa9", 6, out, 4);
    assert_int_equal(n, 2);
    assert_string_equal(out, "\xc3\xa9");
}

static void test_scope(void **state)
{
    (void)state;
    sc_turn_t t1[2] = {{"user", "ab", 2}, {"user", "q", 1}};
    sc_turn_t t2[2] = {{"user", "b", 1}, {"user", "q", 1}};
    sc_request_t a, b;
    memset(&a, 0, sizeof(a));
    a.tenant = "acme";
    a.system = "sys";
    a.turns = t1;
    a.n_turns = 2;
    b = a;
    assert_true(sc_cache_scope(&a, "cheap") == sc_cache_scope(&b, "cheap"));
    assert_true(sc_cache_scope(&a, "cheap") != sc_cache_scope(&b, "strong"));
    /* a field boundary moved: "sys"+"ab" vs "sysa"+"b" */
    b.system = "sysa";
    b.turns = t2;
    assert_true(sc_cache_scope(&a, "cheap") != sc_cache_scope(&b, "cheap"));
    /* the last turn is not part of the scope; the temperature is rounded to 2 decimals */
    b = a;
    sc_turn_t t3[2] = {{"user", "ab", 2}, {"user", "something else", 14}};
    b.turns = t3;
    assert_true(sc_cache_scope(&a, "cheap") == sc_cache_scope(&b, "cheap"));
    a.has_temperature = b.has_temperature = 1;
    a.temperature = 0.2;
    b.temperature = 0.2000001;
    assert_true(sc_cache_scope(&a, "cheap") == sc_cache_scope(&b, "cheap"));
    b.temperature = 0.3;
    assert_true(sc_cache_scope(&a, "cheap") != sc_cache_scope(&b, "cheap"));
    b.temperature = 0.2;
    b.response_mime_type = "application/json";
    assert_true(sc_cache_scope(&a, "cheap") != sc_cache_scope(&b, "cheap"));
    b.response_mime_type = NULL;
    b.has_temperature = 0;
    b.temperature = 0;
    a.has_temperature = 1;
    a.temperature = 0;
    assert_true(sc_cache_scope(&a, "cheap") != sc_cache_scope(&b, "cheap")); /* absent != 0 */
}

/* ---- exact and semantic ---- */

static void test_exact(void **state)
{
    (void)state;
    char dir[T_DIR_MAX];
    make_dir(dir, sizeof(dir));
    sc_cache_opts_t o;
    test_opts(&o, dir);
    sc_cache_t *c = open_ok(&o);
    uint64_t id = insert(c, 7, "acme", "How do I reset my password?", NULL, "Click 'Forgot'.");
    sc_cache_result_t r;
    assert_int_equal(lookup(c, 7, "  how do I RESET my\tpassword?  ", NULL, &r), SC_CACHE_HIT_EXACT);
    assert_int_equal(r.entry, id);
    assert_string_equal(r.response, "Click 'Forgot'.");
    assert_string_equal(r.model, "gemini-2.5-flash");
    assert_int_equal(r.usage.prompt_tokens, 100);
    assert_true(fabs(r.cost_usd - 0.001) < 1e-12);
    free(r.response);
    /* a change beyond normalisation misses; so does another scope */
    assert_int_equal(lookup(c, 7, "How do I reset my passwords?", NULL, &r), SC_CACHE_MISS);
    assert_null(r.response);
    assert_int_equal(lookup(c, 8, "How do I reset my password?", NULL, &r), SC_CACHE_MISS);
    sc_cache_stats_t s;
    sc_cache_stats(c, &s);
    assert_int_equal(s.entries, 1);
    assert_int_equal(s.hits_exact, 1);
    assert_int_equal(s.misses, 2);
    /* the same text again replaces the entry */
    uint64_t id2 = insert(c, 7, "acme", "how do i reset my password?", NULL, "new answer");
    assert_int_equal(lookup(c, 7, "How do I reset my password?", NULL, &r), SC_CACHE_HIT_EXACT);
    assert_int_equal(r.entry, id2);
    assert_string_equal(r.response, "new answer");
    free(r.response);
    sc_cache_stats(c, &s);
    assert_int_equal(s.entries, 1);
    sc_cache_close(c);
    remove_dir(dir);
}

static void test_semantic(void **state)
{
    (void)state;
    char dir[T_DIR_MAX];
    make_dir(dir, sizeof(dir));
    sc_cache_opts_t o;
    test_opts(&o, dir);
    o.guards = 0;
    sc_cache_t *c = open_ok(&o);
    float base[T_DIM], other[T_DIM], q95[T_DIM], q85[T_DIM];
    random_unit(base, T_DIM);
    at_cosine(base, 0.5, other, T_DIM);
    at_cosine(base, 0.95, q95, T_DIM);
    at_cosine(base, 0.85, q85, T_DIM);
    uint64_t id = insert(c, 1, "acme", "where is my parcel", base, "A");
    insert(c, 1, "acme", "what is the weather", other, "B");
    sc_cache_result_t r;
    assert_int_equal(lookup(c, 1, "where's my package", q95, &r), SC_CACHE_HIT_SEMANTIC);
    assert_int_equal(r.entry, id);
    assert_true(fabs(r.similarity - 0.95) < 1e-3);
    assert_string_equal(r.response, "A");
    free(r.response);
    assert_int_equal(lookup(c, 1, "where's my package", q85, &r), SC_CACHE_MISS);
    assert_true(fabs(r.similarity - 0.85) < 1e-3);
    /* another scope sees nothing, whatever the similarity */
    assert_int_equal(lookup(c, 2, "where's my package", base, &r), SC_CACHE_MISS);
    assert_true(r.similarity < 0);
    sc_cache_close(c);
    remove_dir(dir);
}

/* ---- isolation ---- */

typedef struct {
    const char *tenant, *tier, *system, *mime;
    int has_temp;
    double temp;
    int conv;
} iso_combo_t;

static const char *iso_tenants[] = {"acme", "globex", "initech", "umbrella", "acme2"};
static const char *iso_tiers[] = {"cheap", "strong", "gemini-2.5-flash-lite"};
static const char *iso_systems[] = {NULL, "", "Role: support.", "Role: sales.", "Be terse."};
static const char *iso_mimes[] = {NULL, "text/plain", "application/json"};
static const double iso_temps[] = {-1, 0.0, 0.2, 0.7};
#define ISO_CONVS 5
static const char *LAST = "What is your refund policy?";

static uint64_t iso_scope(const iso_combo_t *k)
{
    static const sc_turn_t convs[ISO_CONVS][3] = {
        {{"user", "x", 1}},
        {{"user", "hi", 2}, {"model", "hello", 5}},
        {{"user", "hi", 2}, {"model", "hello!", 6}},
        {{"user", "hihello", 7}, {"model", "", 0}},
        {{"user", "I bought shoes", 14}, {"model", "Which pair?", 11}},
    };
    sc_turn_t turns[4];
    size_t n = 0;
    if (k->conv > 0)
        for (size_t i = 0; i < 3 && convs[k->conv][i].role; i++)
            turns[n++] = convs[k->conv][i];
    turns[n].role = "user";
    turns[n].content = LAST;
    turns[n].content_len = strlen(LAST);
    n++;
    sc_request_t req;
    memset(&req, 0, sizeof(req));
    req.tenant = k->tenant;
    req.system = k->system;
    req.response_mime_type = k->mime;
    req.has_temperature = k->has_temp;
    req.temperature = k->temp;
    req.turns = turns;
    req.n_turns = n;
    return sc_cache_scope(&req, k->tier);
}

static void iso_random(iso_combo_t *k)
{
    k->tenant = iso_tenants[rng() % SC_ARRAY_LEN(iso_tenants)];
    k->tier = iso_tiers[rng() % SC_ARRAY_LEN(iso_tiers)];
    k->system = iso_systems[rng() % SC_ARRAY_LEN(iso_systems)];
    k->mime = iso_mimes[rng() % SC_ARRAY_LEN(iso_mimes)];
    double t = iso_temps[rng() % SC_ARRAY_LEN(iso_temps)];
    k->has_temp = t >= 0;
    k->temp = t >= 0 ? t : 0;
    k->conv = (int)(rng() % ISO_CONVS);
}

#define ISO_STORED 600

static void test_isolation(void **state)
{
    (void)state;
    char dir[T_DIR_MAX];
    make_dir(dir, sizeof(dir));
    sc_cache_opts_t o;
    test_opts(&o, dir);
    o.guards = 0; /* isolation must hold by scope alone */
    sc_cache_t *c = open_ok(&o);
    float v[T_DIM];
    random_unit(v, T_DIM);

    /* ISO_STORED random scopes (duplicates collapse), each with its own answer, identical last
     * turn and identical vector */
    static uint64_t stored[ISO_STORED];
    static char answers[ISO_STORED][48];
    static sc_cache_item_t items[ISO_STORED];
    size_t ns = 0;
    for (int i = 0; i < ISO_STORED; i++) {
        iso_combo_t k;
        iso_random(&k);
        uint64_t s = iso_scope(&k);
        int dup = 0;
        for (size_t j = 0; j < ns; j++)
            dup |= stored[j] == s;
        if (dup)
            continue;
        stored[ns] = s;
        snprintf(answers[ns], sizeof(answers[ns]), "answer-%016llx", (unsigned long long)s);
        memset(&items[ns], 0, sizeof(items[ns]));
        items[ns].q.scope = s;
        items[ns].q.tenant = k.tenant;
        items[ns].q.text = LAST;
        items[ns].q.len = strlen(LAST);
        items[ns].q.vec = v;
        items[ns].response = answers[ns];
        items[ns].response_len = strlen(answers[ns]);
        items[ns].model = k.tier;
        ns++;
    }
    assert_true(ns > 300);
    assert_int_equal(sc_cache_insert_many(c, items, ns, NULL), SC_OK);

    /* T_ISO_LOOKUPS lookups over random scopes (stored or not), in mixed batches; half with the
     * same text (exact layer), half with another wording (semantic layer) */
    const char *wordings[] = {LAST, "what's your refund policy", "Refund policy?"};
    uint64_t leaks = 0, hits = 0, misses_stored = 0, misses_empty = 0, hits_empty = 0;
    sc_cache_query_t q[T_ISO_BATCH];
    sc_cache_result_t r[T_ISO_BATCH];
    for (int done = 0; done < T_ISO_LOOKUPS; done += T_ISO_BATCH) {
        for (int b = 0; b < T_ISO_BATCH; b++) {
            iso_combo_t k;
            iso_random(&k);
            const char *w = wordings[rng() % 3];
            q[b].scope = iso_scope(&k);
            q[b].tenant = k.tenant;
            q[b].text = w;
            q[b].len = strlen(w);
            q[b].vec = v;
        }
        assert_int_equal(sc_cache_lookup(c, q, T_ISO_BATCH, r), SC_OK);
        for (int b = 0; b < T_ISO_BATCH; b++) {
            int is_stored = 0;
            size_t at = 0;
            for (size_t j = 0; j < ns; j++)
                if (stored[j] == q[b].scope) {
                    is_stored = 1;
                    at = j;
                }
            if (r[b].hit != SC_CACHE_MISS) {
                hits++;
                if (!is_stored)
                    hits_empty++;
                else if (strcmp(r[b].response, answers[at]))
                    leaks++;
            } else if (is_stored) {
                misses_stored++;
            } else {
                misses_empty++;
            }
            free(r[b].response);
        }
    }
    fprintf(stderr, "isolation: scopes=%zu lookups=%d hits=%llu leaks=%llu empty_scope_misses=%llu\n",
            ns, T_ISO_LOOKUPS, (unsigned long long)hits, (unsigned long long)leaks,
            (unsigned long long)misses_empty);
    assert_int_equal(leaks, 0);
    assert_int_equal(hits_empty, 0);
    assert_int_equal(misses_stored, 0); /* same vector, in scope: always a hit */
    assert_true(hits > 1000);
    assert_true(misses_empty > 1000);
    sc_cache_close(c);
    remove_dir(dir);
}

/* ---- TTL, LRU, purge, reopen ---- */

static void test_ttl(void **state)
{
    (void)state;
    char dir[T_DIR_MAX];
    make_dir(dir, sizeof(dir));
    sc_cache_opts_t o;
    test_opts(&o, dir);
    o.ttl_s = 1;
    o.guards = 0;
    sc_cache_t *c = open_ok(&o);
    float v[T_DIM];
    random_unit(v, T_DIM);
    insert(c, 3, "acme", "short lived", v, "soon gone");
    sc_cache_result_t r;
    assert_int_equal(lookup(c, 3, "short lived", v, &r), SC_CACHE_HIT_EXACT);
    free(r.response);
    /* the TTL is wall-clock time itself: wait it out */
    int64_t until = sc_wall_ms() + 1100;
    while (sc_wall_ms() < until)
        usleep(20000);
    assert_int_equal(lookup(c, 3, "short lived", v, &r), SC_CACHE_MISS);
    assert_int_equal(lookup(c, 3, "other words", v, &r), SC_CACHE_MISS);
    sc_cache_stats_t s;
    sc_cache_stats(c, &s); /* the lookup deleted it lazily */
    assert_int_equal(s.expired, 1);
    assert_int_equal(s.entries, 0);
    assert_int_equal(s.indexed, 0);
    sc_cache_close(c);
    remove_dir(dir);
}

static void test_lru(void **state)
{
    (void)state;
    char dir[T_DIR_MAX];
    make_dir(dir, sizeof(dir));
    sc_cache_opts_t o;
    test_opts(&o, dir);
    o.guards = 0;
    o.max_bytes = 20000;
    sc_cache_t *c = open_ok(&o);
    char resp[3000], text[32];
    memset(resp, 'r', sizeof(resp) - 1);
    resp[sizeof(resp) - 1] = 0;
    float v[8][T_DIM];
    uint64_t ids[8];
    for (int i = 0; i < 5; i++) {
        random_unit(v[i], T_DIM);
        snprintf(text, sizeof(text), "question %c", 'a' + i);
        ids[i] = insert(c, 1, "acme", text, v[i], resp);
    }
    sc_cache_stats_t s;
    sc_cache_stats(c, &s);
    assert_int_equal(s.evictions, 0);
    int64_t t = sc_wall_ms();
    while (sc_wall_ms() < t + 2) /* the hit must be later than every insert */
        usleep(500);
    sc_cache_result_t r;
    assert_int_equal(lookup(c, 1, "question a", NULL, &r), SC_CACHE_HIT_EXACT);
    free(r.response);
    uint64_t last = 0;
    for (int i = 5; i < 8; i++) {
        random_unit(v[i], T_DIM);
        snprintf(text, sizeof(text), "question %c", 'a' + i);
        last = insert(c, 1, "acme", text, v[i], resp);
    }
    sc_cache_stats(c, &s);
    fprintf(stderr, "lru: entries=%llu bytes=%llu evictions=%llu\n",
            (unsigned long long)s.entries, (unsigned long long)s.bytes,
            (unsigned long long)s.evictions);
    assert_true(s.evictions > 0);
    assert_true(s.bytes <= o.max_bytes);
    assert_int_equal(s.indexed, s.entries);
    sc_cache_entry_t e;
    assert_int_equal(sc_cache_get(c, ids[0], &e), SC_OK); /* recently hit: kept */
    assert_int_equal(e.hits, 1);
    sc_cache_entry_clear(&e);
    assert_int_equal(sc_cache_get(c, ids[1], &e), SC_ERR_NOT_FOUND); /* least recent: gone */
    assert_int_equal(sc_cache_get(c, last, &e), SC_OK);
    sc_cache_entry_clear(&e);
    /* an evicted entry is gone from the index too */
    assert_int_equal(lookup(c, 1, "something", v[1], &r), SC_CACHE_MISS);
    sc_cache_close(c);
    remove_dir(dir);
}

static void test_purge_and_reopen(void **state)
{
    (void)state;
    char dir[T_DIR_MAX];
    make_dir(dir, sizeof(dir));
    sc_cache_opts_t o;
    test_opts(&o, dir);
    o.guards = 0;
    sc_cache_t *c = open_ok(&o);
    float vx[T_DIM], vy[T_DIM], near[T_DIM];
    random_unit(vx, T_DIM);
    random_unit(vy, T_DIM);
    for (int i = 0; i < 3; i++) {
        char t[32];
        snprintf(t, sizeof(t), "x question %d", i);
        insert(c, 100 + (uint64_t)i, "x", t, vx, "for x");
    }
    uint64_t yid = insert(c, 200, "y", "y question", vy, "for y");
    uint64_t removed = 0;
    assert_int_equal(sc_cache_purge(c, "x", &removed), SC_OK);
    assert_int_equal(removed, 3);
    sc_cache_result_t r;
    assert_int_equal(lookup(c, 100, "x question 0", vx, &r), SC_CACHE_MISS);
    assert_int_equal(lookup(c, 200, "y question", vy, &r), SC_CACHE_HIT_EXACT);
    free(r.response);
    sc_cache_stats_t s;
    sc_cache_stats(c, &s);
    assert_int_equal(s.entries, 1);
    assert_int_equal(s.indexed, 1);
    sc_cache_close(c);

    /* reopen: the entry persists and the index is rebuilt from the store */
    c = open_ok(&o);
    sc_cache_stats(c, &s);
    assert_int_equal(s.entries, 1);
    assert_int_equal(s.indexed, 1);
    at_cosine(vy, 0.97, near, T_DIM);
    assert_int_equal(lookup(c, 200, "a y question", near, &r), SC_CACHE_HIT_SEMANTIC);
    assert_int_equal(r.entry, yid);
    assert_string_equal(r.response, "for y");
    free(r.response);
    assert_int_equal(sc_cache_purge(c, NULL, &removed), SC_OK);
    assert_int_equal(removed, 1);
    assert_int_equal(lookup(c, 200, "y question", vy, &r), SC_CACHE_MISS);
    sc_cache_close(c);
    c = open_ok(&o);
    sc_cache_stats(c, &s);
    assert_int_equal(s.entries, 0);
    sc_cache_close(c);
    remove_dir(dir);
}

/* ---- HNSW and IVF partitions against flat ---- */

static void ann_queries(sc_cache_t *c, float (*qv)[T_DIM], int n, uint64_t *out)
{
    for (int i = 0; i < n; i++) {
        sc_cache_result_t r;
        lookup(c, 42, "a probe text", qv[i], &r);
        out[i] = r.hit == SC_CACHE_HIT_SEMANTIC ? r.entry : 0;
        free(r.response);
    }
}

static void test_ann_partitions(void **state)
{
    (void)state;
    char dir[T_DIR_MAX];
    make_dir(dir, sizeof(dir));
    sc_cache_opts_t o;
    test_opts(&o, dir);
    o.guards = 0;
    o.index = "hnsw";
    o.ann_min = 50;
    static float v[T_ANN_N][T_DIM], qv[T_ANN_N][T_DIM];
    static uint64_t ids[T_ANN_N], want[T_ANN_N], got[T_ANN_N];
    sc_cache_t *c = open_ok(&o);
    for (int i = 0; i < T_ANN_N; i++) { /* one at a time: the partition turns HNSW at 50 */
        char t[32];
        random_unit(v[i], T_DIM);
        snprintf(t, sizeof(t), "entry %d", i);
        ids[i] = insert(c, 42, "ann", t, v[i], "r");
        at_cosine(v[i], 0.95, qv[i], T_DIM);
    }
    insert(c, 43, "ann", "another scope", v[0], "other");
    ann_queries(c, qv, T_ANN_N, got);
    for (int i = 0; i < T_ANN_N; i++)
        assert_int_equal(got[i], ids[i]);
    /* replace entry 0 (same text, new vector): its old vector must not answer */
    uint64_t old = ids[0];
    float w[T_DIM];
    random_unit(w, T_DIM);
    ids[0] = insert(c, 42, "ann", "entry 0", w, "r2");
    sc_cache_result_t r;
    lookup(c, 42, "a probe text", qv[0], &r);
    assert_true(r.hit == SC_CACHE_MISS || r.entry != old);
    free(r.response);
    memcpy(v[0], w, sizeof(w));
    at_cosine(v[0], 0.95, qv[0], T_DIM);
    ann_queries(c, qv, T_ANN_N, got);
    sc_cache_stats_t s;
    sc_cache_stats(c, &s);
    assert_int_equal(s.indexed, T_ANN_N + 1);
    sc_cache_close(c);

    const char *kinds[] = {"flat", "hnsw", "ivf"};
    for (int k = 0; k < 3; k++) {
        o.index = kinds[k];
        c = open_ok(&o);
        ann_queries(c, qv, T_ANN_N, k == 0 ? want : got);
        if (k > 0) {
            int same = 0;
            for (int i = 0; i < T_ANN_N; i++)
                same += want[i] == got[i];
            fprintf(stderr, "ann: %s agrees with flat on %d/%d\n", kinds[k], same, T_ANN_N);
            assert_int_equal(same, T_ANN_N);
        } else {
            for (int i = 0; i < T_ANN_N; i++)
                assert_int_equal(want[i], ids[i]);
        }
        sc_cache_stats(c, &s);
        assert_int_equal(s.indexed, T_ANN_N + 1);
        assert_int_equal(s.partitions, 2);
        sc_cache_close(c);
    }
    remove_dir(dir);
}

/* ---- the saved index ---- */

#define T_SAVE_N 300
#define T_SAVE_SCOPE 42
#define T_SAVE_FLAT_SCOPE 43
#define T_SAVE_FLAT_N 10

typedef struct {
    float v[T_SAVE_N][T_DIM], qv[T_SAVE_N][T_DIM];
    uint64_t ids[T_SAVE_N];
} save_set_t;

static void save_opts(sc_cache_opts_t *o, const char *dir, const char *kind)
{
    test_opts(o, dir);
    o->guards = 0;
    o->index = kind;
    o->ann_min = 50;
    o->checkpoint_s = 0;
}

/* T_SAVE_N entries in one scope (HNSW/IVF past ann_min) and a few in a flat one. */
static void save_fill(sc_cache_t *c, save_set_t *s)
{
    sc_cache_item_t items[T_SAVE_N];
    char texts[T_SAVE_N][32];
    memset(items, 0, sizeof(items));
    for (int i = 0; i < T_SAVE_N; i++) {
        random_unit(s->v[i], T_DIM);
        at_cosine(s->v[i], 0.95, s->qv[i], T_DIM);
        snprintf(texts[i], sizeof(texts[i]), "saved entry %d", i);
        items[i].q.scope = T_SAVE_SCOPE;
        items[i].q.tenant = "sv";
        items[i].q.text = texts[i];
        items[i].q.len = strlen(texts[i]);
        items[i].q.vec = s->v[i];
        items[i].response = "r";
        items[i].response_len = 1;
        items[i].model = "m";
    }
    assert_int_equal(sc_cache_insert_many(c, items, T_SAVE_N, s->ids), SC_OK);
    for (int i = 0; i < T_SAVE_FLAT_N; i++) {
        char t[32];
        snprintf(t, sizeof(t), "flat entry %d", i);
        insert(c, T_SAVE_FLAT_SCOPE, "fl", t, s->v[i], "f");
    }
}

static void save_queries(sc_cache_t *c, const save_set_t *s, uint64_t *out)
{
    for (int i = 0; i < T_SAVE_N; i++) {
        sc_cache_result_t r;
        lookup(c, T_SAVE_SCOPE, "a probe text", s->qv[i], &r);
        out[i] = r.hit == SC_CACHE_HIT_SEMANTIC ? r.entry : 0;
        free(r.response);
    }
}

static int file_exists(const char *dir, const char *name)
{
    char p[T_DIR_MAX + 32];
    struct stat sb;
    snprintf(p, sizeof(p), "%s/%s", dir, name);
    return stat(p, &sb) == 0;
}

static void copy_file(const char *from, const char *to)
{
    FILE *a = fopen(from, "rb"), *b = fopen(to, "wb");
    assert_non_null(a);
    assert_non_null(b);
    char buf[65536];
    size_t n;
    while ((n = fread(buf, 1, sizeof(buf), a)) > 0)
        assert_int_equal(fwrite(buf, 1, n, b), n);
    fclose(a);
    assert_int_equal(fclose(b), 0);
}

/* Open with stderr captured: *log gets what the cache logged (malloc'd). */
static sc_cache_t *open_logged(const sc_cache_opts_t *o, char **log)
{
    char path[] = "/tmp/scrimp-test-cache-log.XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    fflush(stderr);
    int saved = dup(2);
    assert_true(saved >= 0);
    assert_true(dup2(fd, 2) >= 0);
    sc_cache_t *c = open_ok(o);
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    off_t len = lseek(fd, 0, SEEK_END);
    *log = calloc(1, (size_t)len + 1);
    assert_non_null(*log);
    assert_int_equal(pread(fd, *log, (size_t)len, 0), len);
    close(fd);
    unlink(path);
    fputs(*log, stderr); /* still shown */
    return c;
}

/* Save at close, reopen: the partitions are loaded (not rebuilt) and answer exactly as before;
 * deleted ids stay deleted, and new entries after the load are found (for hnsw and ivf). */
static void test_index_save_load(void **state)
{
    (void)state;
    const char *kinds[] = {"hnsw", "ivf"};
    static save_set_t s;
    static uint64_t before[T_SAVE_N], after[T_SAVE_N];
    for (int k = 0; k < 2; k++) {
        char dir[T_DIR_MAX];
        make_dir(dir, sizeof(dir));
        sc_cache_opts_t o;
        save_opts(&o, dir, kinds[k]);
        sc_cache_t *c = open_ok(&o);
        save_fill(c, &s);
        /* the newest entry of the partition, then deleted: its id stays in an HNSW graph */
        float w[T_DIM];
        random_unit(w, T_DIM);
        uint64_t gone = insert(c, T_SAVE_SCOPE, "gone", "to be purged", w, "x");
        uint64_t removed = 0;
        assert_int_equal(sc_cache_purge(c, "gone", &removed), SC_OK);
        assert_int_equal(removed, 1);
        save_queries(c, &s, before);
        sc_cache_stats_t st0, st1;
        sc_cache_stats(c, &st0);
        assert_int_equal(st0.indexed, T_SAVE_N + T_SAVE_FLAT_N);
        assert_int_equal(st0.index_loaded, 0);
        sc_cache_close(c);
        assert_true(file_exists(dir, "index.scx"));
        assert_false(file_exists(dir, "index.scx.tmp"));

        c = open_ok(&o);
        sc_cache_stats(c, &st1);
        assert_int_equal(st1.index_loaded, 1);
        assert_int_equal(st1.indexed, st0.indexed);
        assert_int_equal(st1.partitions, 2);
        assert_int_equal(st1.index_gen, st0.index_gen);
        save_queries(c, &s, after);
        int same = 0, right = 0;
        for (int i = 0; i < T_SAVE_N; i++) {
            same += before[i] == after[i];
            right += after[i] == s.ids[i];
        }
        fprintf(stderr, "saved %s: %d/%d lookups as before the save, %d/%d right\n", kinds[k],
                same, T_SAVE_N, right, T_SAVE_N);
        assert_int_equal(same, T_SAVE_N);
        assert_true(right >= T_SAVE_N - 2);
        sc_cache_result_t r;
        lookup(c, T_SAVE_SCOPE, "a probe text", w, &r);
        assert_true(r.hit == SC_CACHE_MISS || r.entry != gone);
        free(r.response);
        /* a new entry after the load, found by its vector; in HNSW the deleted id is still in
         * the graph, so the new entry must not take it */
        float z[T_DIM];
        random_unit(z, T_DIM);
        uint64_t nid = insert(c, T_SAVE_SCOPE, "sv", "after the load", z, "new");
        if (!strcmp(kinds[k], "hnsw"))
            assert_true(nid > gone);
        assert_int_equal(lookup(c, T_SAVE_SCOPE, "another probe", z, &r), SC_CACHE_HIT_SEMANTIC);
        assert_int_equal(r.entry, nid);
        free(r.response);
        sc_cache_close(c);

        /* the close saved the new generation: loaded again, with the new entry */
        c = open_ok(&o);
        sc_cache_stats(c, &st1);
        assert_int_equal(st1.index_loaded, 1);
        assert_int_equal(st1.indexed, T_SAVE_N + T_SAVE_FLAT_N + 1);
        assert_int_equal(lookup(c, T_SAVE_SCOPE, "another probe", z, &r), SC_CACHE_HIT_SEMANTIC);
        assert_int_equal(r.entry, nid);
        free(r.response);
        sc_cache_close(c);

        /* other index parameters: the saved index does not apply */
        o.hnsw_m = 16;
        o.ivf_nlist = 4;
        c = open_ok(&o);
        sc_cache_stats(c, &st1);
        assert_int_equal(st1.index_loaded, 0);
        assert_int_equal(st1.indexed, T_SAVE_N + T_SAVE_FLAT_N + 1);
        sc_cache_close(c);
        remove_dir(dir);
    }
}

/* A checkpoint, then more inserts and a crash (the checkpoint's file put back over the one the
 * close wrote): the stamp is stale, the index is rebuilt and holds every entry. */
static void test_index_stale(void **state)
{
    (void)state;
    static save_set_t s;
    char dir[T_DIR_MAX], file[T_DIR_MAX + 32], keep[T_DIR_MAX + 32];
    make_dir(dir, sizeof(dir));
    snprintf(file, sizeof(file), "%s/index.scx", dir);
    snprintf(keep, sizeof(keep), "%s/checkpoint.scx", dir);
    sc_cache_opts_t o;
    save_opts(&o, dir, "hnsw");
    sc_cache_t *c = open_ok(&o);
    save_fill(c, &s);
    assert_int_equal(sc_cache_checkpoint(c), SC_OK);
    assert_true(file_exists(dir, "index.scx"));
    copy_file(file, keep);
    float z[T_DIM];
    random_unit(z, T_DIM);
    uint64_t late = insert(c, T_SAVE_SCOPE, "sv", "after the checkpoint", z, "late");
    sc_cache_close(c);
    copy_file(keep, file); /* as if killed before the close */
    unlink(keep);

    char *log = NULL;
    c = open_logged(&o, &log);
    assert_non_null(strstr(log, "event=cache_index_load result=stale"));
    free(log);
    sc_cache_stats_t st;
    sc_cache_stats(c, &st);
    assert_int_equal(st.index_loaded, 0);
    assert_int_equal(st.indexed, T_SAVE_N + T_SAVE_FLAT_N + 1);
    sc_cache_result_t r;
    assert_int_equal(lookup(c, T_SAVE_SCOPE, "a probe", z, &r), SC_CACHE_HIT_SEMANTIC);
    assert_int_equal(r.entry, late);
    free(r.response);
    /* hit updates alone do not move the generation: the close saves, the next open loads */
    sc_cache_close(c);
    c = open_ok(&o);
    sc_cache_stats(c, &st);
    assert_int_equal(st.index_loaded, 1);
    assert_int_equal(st.indexed, T_SAVE_N + T_SAVE_FLAT_N + 1);
    sc_cache_close(c);

    /* a file of another store (same generation, same parameters) is not loaded either */
    char dir2[T_DIR_MAX], file2[T_DIR_MAX + 32];
    make_dir(dir2, sizeof(dir2));
    snprintf(file2, sizeof(file2), "%s/index.scx", dir2);
    sc_cache_opts_t o2;
    save_opts(&o2, dir2, "hnsw");
    c = open_ok(&o2);
    save_fill(c, &s);
    float y[T_DIM];
    random_unit(y, T_DIM);
    insert(c, T_SAVE_SCOPE, "sv", "after the checkpoint", y, "late");
    sc_cache_close(c);
    copy_file(file, file2);
    c = open_ok(&o2);
    sc_cache_stats(c, &st);
    assert_int_equal(st.index_loaded, 0);
    assert_int_equal(st.indexed, T_SAVE_N + T_SAVE_FLAT_N + 1);
    sc_cache_close(c);
    remove_dir(dir2);
    remove_dir(dir);
}

/* Entries that expired after the save: the loaded partition drops them (as a rebuild would not
 * index them), and the rest answers. */
static void test_index_expired(void **state)
{
    (void)state;
    static save_set_t s;
    static uint64_t got[T_SAVE_N];
    enum { OLD_N = 20 };
    static float old[OLD_N][T_DIM];
    uint64_t old_ids[OLD_N];
    char dir[T_DIR_MAX];
    make_dir(dir, sizeof(dir));
    sc_cache_opts_t o;
    save_opts(&o, dir, "hnsw");
    /* Times are taken around the inserts, not assumed: durable commits can be slow on a busy
     * disk. The old entries are all older than old_end, the rest younger than fill_start;
     * the reopen comes after old_end + TTL and, as long as the fill takes under
     * TTL - GAP - 1 s, at least a second before fill_start + TTL, time for the queries. */
    enum { TTL_MS = 5000, GAP_MS = 2500 };
    o.ttl_s = TTL_MS / 1000;
    sc_cache_t *c = open_ok(&o);
    for (int i = 0; i < OLD_N; i++) {
        char t[32];
        random_unit(old[i], T_DIM);
        snprintf(t, sizeof(t), "old entry %d", i);
        old_ids[i] = insert(c, T_SAVE_SCOPE, "sv", t, old[i], "old");
    }
    int64_t old_end = sc_wall_ms();
    while (sc_wall_ms() < old_end + GAP_MS)
        usleep(20000);
    int64_t fill_start = sc_wall_ms();
    save_fill(c, &s); /* the partition turns HNSW with the old entries in it */
    sc_cache_close(c);
    while (sc_wall_ms() < old_end + TTL_MS + 100) /* the old ones are past their TTL */
        usleep(20000);
    int64_t reopen = sc_wall_ms();
    if (reopen > fill_start + TTL_MS - 1000)
        fail_msg("the fill took %lld ms, longer than the test's %d ms window",
                 (long long)(reopen - fill_start), TTL_MS - GAP_MS - 1000);
    c = open_ok(&o);
    sc_cache_stats_t st;
    sc_cache_stats(c, &st);
    assert_int_equal(st.index_loaded, 1);
    assert_int_equal(st.expired, OLD_N);
    assert_int_equal(st.entries, T_SAVE_N + T_SAVE_FLAT_N);
    assert_int_equal(st.indexed, T_SAVE_N + T_SAVE_FLAT_N);
    for (int i = 0; i < OLD_N; i++) {
        sc_cache_result_t r;
        lookup(c, T_SAVE_SCOPE, "a probe", old[i], &r);
        assert_true(r.hit == SC_CACHE_MISS || r.entry != old_ids[i]);
        free(r.response);
    }
    save_queries(c, &s, got);
    int right = 0;
    for (int i = 0; i < T_SAVE_N; i++)
        right += got[i] == s.ids[i];
    assert_true(right >= T_SAVE_N - 2);
    sc_cache_close(c);
    remove_dir(dir);
}

/* HNSW at a dimension that is not a multiple of the SIMD width: every entry is found by its own
 * vector, with its float similarity (the search scores a half-precision copy, then the floats). */
static void test_hnsw_odd_dim(void **state)
{
    (void)state;
    enum { D = 37, N = 120 };
    static float v[N][T_DIM];
    uint64_t ids[N];
    char dir[T_DIR_MAX];
    make_dir(dir, sizeof(dir));
    sc_cache_opts_t o;
    save_opts(&o, dir, "hnsw");
    o.dim = D;
    o.ann_min = 20;
    sc_cache_t *c = open_ok(&o);
    for (int i = 0; i < N; i++) {
        char t[32];
        random_unit(v[i], D);
        snprintf(t, sizeof(t), "odd %d", i);
        ids[i] = insert(c, 7, "odd", t, v[i], "r");
    }
    for (int pass = 0; pass < 2; pass++) { /* built, then loaded from the saved index */
        for (int i = 0; i < N; i++) {
            sc_cache_result_t r;
            assert_int_equal(lookup(c, 7, "a probe", v[i], &r), SC_CACHE_HIT_SEMANTIC);
            assert_int_equal(r.entry, ids[i]);
            double self = 0;
            for (int j = 0; j < D; j++)
                self += (double)v[i][j] * v[i][j];
            assert_true(fabs(r.similarity - self) < 1e-5);
            free(r.response);
        }
        sc_cache_close(c);
        c = open_ok(&o);
        sc_cache_stats_t st;
        sc_cache_stats(c, &st);
        assert_int_equal(st.index_loaded, 1);
    }
    sc_cache_close(c);
    remove_dir(dir);
}

/* A corrupt or truncated index file: a warning, a rebuild, no crash, right answers. */
static void test_index_corrupt(void **state)
{
    (void)state;
    static save_set_t s;
    static uint64_t got[T_SAVE_N];
    char dir[T_DIR_MAX], file[T_DIR_MAX + 32];
    make_dir(dir, sizeof(dir));
    snprintf(file, sizeof(file), "%s/index.scx", dir);
    sc_cache_opts_t o;
    save_opts(&o, dir, "hnsw");
    sc_cache_t *c = open_ok(&o);
    save_fill(c, &s);
    sc_cache_close(c);
    struct stat sb;
    assert_int_equal(stat(file, &sb), 0);
    off_t size = sb.st_size;
    assert_true(size > 4096);

    for (int mode = 0; mode < 4; mode++) {
        FILE *f = fopen(file, "r+b");
        assert_non_null(f);
        if (mode == 0) { /* one flipped byte in the graph or the vectors */
            assert_int_equal(fseeko(f, size / 2, SEEK_SET), 0);
            int ch = fgetc(f);
            assert_int_equal(fseeko(f, size / 2, SEEK_SET), 0);
            fputc(ch ^ 0x5a, f);
        } else if (mode == 1) { /* cut short */
            assert_int_equal(ftruncate(fileno(f), size / 3), 0);
        } else if (mode == 2) { /* a damaged header */
            assert_int_equal(fseeko(f, 40, SEEK_SET), 0);
            fputc('#', f);
        } else { /* not an index at all */
            assert_int_equal(ftruncate(fileno(f), 0), 0);
            fputs("garbage", f);
        }
        fclose(f);
        char *log = NULL;
        c = open_logged(&o, &log);
        assert_non_null(strstr(log, "level=warn event=cache_index_load result=corrupt"));
        free(log);
        sc_cache_stats_t st;
        sc_cache_stats(c, &st);
        assert_int_equal(st.index_loaded, 0);
        assert_int_equal(st.indexed, T_SAVE_N + T_SAVE_FLAT_N);
        save_queries(c, &s, got);
        int right = 0;
        for (int i = 0; i < T_SAVE_N; i++)
            right += got[i] == s.ids[i];
        assert_true(right >= T_SAVE_N - 2);
        sc_cache_close(c); /* writes a good file again */
        c = open_ok(&o);
        sc_cache_stats(c, &st);
        assert_int_equal(st.index_loaded, 1);
        sc_cache_close(c);
        assert_int_equal(stat(file, &sb), 0);
        size = sb.st_size;
    }
    remove_dir(dir);
}

/* ---- guards ---- */

static void test_guards(void **state)
{
    (void)state;
    char dir[T_DIR_MAX];
    make_dir(dir, sizeof(dir));
    sc_cache_opts_t o;
    test_opts(&o, dir);
    sc_cache_t *c = open_ok(&o);
    float v[T_DIM];
    random_unit(v, T_DIM);
    insert(c, 9, "acme", "Book a table for 2 people at 7pm", v, "Booked for two.");
    sc_cache_result_t r;
    assert_int_equal(lookup(c, 9, "Book a table for 4 people at 7pm", v, &r), SC_CACHE_MISS);
    assert_int_equal(r.refused, SC_GUARD_NUMBER);
    assert_true(r.similarity > 0.99);
    sc_cache_stats_t s;
    sc_cache_stats(c, &s);
    assert_int_equal(s.refused[SC_GUARD_NUMBER], 1);
    /* the same wording with other spacing is still an exact hit */
    assert_int_equal(lookup(c, 9, "book a table for 2 people at 7pm", v, &r), SC_CACHE_HIT_EXACT);
    free(r.response);
    sc_cache_close(c);
    o.guards = 0; /* calibration mode: no guards */
    c = open_ok(&o);
    assert_int_equal(lookup(c, 9, "Book a table for 4 people at 7pm", v, &r),
                     SC_CACHE_HIT_SEMANTIC);
    free(r.response);
    sc_cache_close(c);
    remove_dir(dir);
}

/* ---- concurrency: lookups from several threads while one thread inserts ---- */

#define CONC_THREADS 4
#define CONC_SCOPES 16
#define CONC_LOOKUPS 2000

typedef struct {
    sc_cache_t *c;
    const float *v;
    int wrong;
} conc_arg_t;

static void *conc_reader(void *p)
{
    conc_arg_t *a = p;
    for (int i = 0; i < CONC_LOOKUPS; i++) {
        uint64_t scope = 1 + (uint64_t)(i % CONC_SCOPES);
        char want[32];
        snprintf(want, sizeof(want), "scope %llu #", (unsigned long long)scope);
        sc_cache_query_t q = {scope, "t", "probe", 5, a->v};
        sc_cache_result_t r;
        if (sc_cache_lookup(a->c, &q, 1, &r) != SC_OK)
            a->wrong++;
        else if (r.hit && strncmp(r.response, want, strlen(want)))
            a->wrong++;
        free(r.response);
    }
    return NULL;
}

static void test_concurrent(void **state)
{
    (void)state;
    char dir[T_DIR_MAX];
    make_dir(dir, sizeof(dir));
    sc_cache_opts_t o;
    test_opts(&o, dir);
    o.guards = 0;
    sc_cache_t *c = open_ok(&o);
    float v[T_DIM];
    random_unit(v, T_DIM);
    pthread_t th[CONC_THREADS];
    conc_arg_t args[CONC_THREADS];
    for (int i = 0; i < CONC_THREADS; i++) {
        args[i].c = c;
        args[i].v = v;
        args[i].wrong = 0;
        assert_int_equal(pthread_create(&th[i], NULL, conc_reader, &args[i]), 0);
    }
    for (int i = 0; i < 64; i++) {
        char t[32], resp[48];
        uint64_t scope = 1 + (uint64_t)(i % CONC_SCOPES);
        snprintf(t, sizeof(t), "text %d", i);
        snprintf(resp, sizeof(resp), "scope %llu #%d", (unsigned long long)scope, i);
        insert(c, scope, "t", t, v, resp);
    }
    for (int i = 0; i < CONC_THREADS; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(args[i].wrong, 0);
    }
    sc_cache_stats_t s;
    sc_cache_stats(c, &s);
    assert_int_equal(s.entries, 64);
    assert_int_equal(s.indexed, 64);
    sc_cache_close(c);
    remove_dir(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_normalize),
        cmocka_unit_test(test_scope),
        cmocka_unit_test(test_exact),
        cmocka_unit_test(test_semantic),
        cmocka_unit_test(test_isolation),
        cmocka_unit_test(test_ttl),
        cmocka_unit_test(test_lru),
        cmocka_unit_test(test_purge_and_reopen),
        cmocka_unit_test(test_ann_partitions),
        cmocka_unit_test(test_index_save_load),
        cmocka_unit_test(test_index_stale),
        cmocka_unit_test(test_index_expired),
        cmocka_unit_test(test_hnsw_odd_dim),
        cmocka_unit_test(test_index_corrupt),
        cmocka_unit_test(test_guards),
        cmocka_unit_test(test_concurrent),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
