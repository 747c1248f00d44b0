/* cache_writer.c - the two halves of the cache crash test: `write DIR` inserts entries in a loop
 * and prints "ID SEQ" for each one sc_cache_insert acknowledged; `verify DIR ACKS` reopens the
 * store and checks that every acknowledged entry is there and found by its vector. With
 * CW_INDEX=hnsw the scopes' partitions are HNSW, saved every CW_CHECKPOINT_EVERY inserts, every
 * second and at close (a kill -9 then leaves a saved index older than the store, or one cut short);
 * verify says whether the open loaded it. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "host/cache/cache.h"
#include "host/core/log.h"

#define CW_DIM 32
#define CW_MAX_INSERTS 1000000 /* a bound; the test kills the writer long before */
#define CW_SCOPES 7
#define CW_LINE 128
#define CW_CHECKPOINT_EVERY 50 /* CW_INDEX=hnsw: a checkpoint after this many inserts */

/* The vector of entry seq: deterministic, so that verify can rebuild it. */
static void cw_vec(uint64_t seq, float *v)
{
    uint64_t x = seq * 0x9e3779b97f4a7c15ull + 1;
    double s = 0;
    for (int i = 0; i < CW_DIM; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        v[i] = (float)((double)(x >> 11) / 9007199254740992.0 - 0.5);
        s += (double)v[i] * v[i];
    }
    s = sqrt(s);
    for (int i = 0; i < CW_DIM; i++)
        v[i] = (float)(v[i] / s);
}

static void cw_opts(sc_cache_opts_t *o, const char *dir)
{
    sc_cache_opts_default(o);
    o->path = dir;
    o->dim = CW_DIM;
    o->guards = 0;
    o->use_gpu = 0;
    o->ttl_s = 0;
    o->threshold = 0.999;
    o->max_bytes = (size_t)1 << 30;
    const char *ix = getenv("CW_INDEX");
    if (ix && !strcmp(ix, "hnsw")) {
        o->index = "hnsw";
        o->ann_min = 16;
        o->checkpoint_s = 1;
    }
}

static int cw_write(const char *dir, uint64_t start)
{
    sc_cache_opts_t o;
    sc_cache_t *c;
    char err[256];
    cw_opts(&o, dir);
    if (sc_cache_open(&o, &c, err, sizeof(err))) {
        fprintf(stderr, "cache_writer: %s\n", err);
        return 1;
    }
    /* CW_CHECKPOINT_EVERY=1 in the environment: a checkpoint after every insert, so that the
     * writer spends most of its time in one and a kill at a random moment lands inside it */
    const char *every_env = getenv("CW_CHECKPOINT_EVERY");
    uint64_t every = every_env && atoi(every_env) > 0 ? (uint64_t)atoi(every_env) : CW_CHECKPOINT_EVERY;
    for (uint64_t seq = start; seq < start + CW_MAX_INSERTS; seq++) {
        char text[64], resp[64], tenant[16];
        float v[CW_DIM];
        snprintf(text, sizeof(text), "entry %llu", (unsigned long long)seq);
        snprintf(resp, sizeof(resp), "response %llu", (unsigned long long)seq);
        snprintf(tenant, sizeof(tenant), "t%llu", (unsigned long long)(seq % 3));
        cw_vec(seq, v);
        sc_cache_query_t q = {1 + seq % CW_SCOPES, tenant, text, strlen(text), v};
        uint64_t id;
        sc_status_t st = sc_cache_insert(c, &q, resp, strlen(resp), "m", NULL, 0, &id);
        if (st) {
            fprintf(stderr, "cache_writer: insert: %s\n", sc_strerror(st));
            sc_cache_close(c);
            return 1;
        }
        printf("%llu %llu\n", (unsigned long long)id, (unsigned long long)seq);
        fflush(stdout); /* acknowledged only once durable and printed */
        if (o.checkpoint_s && (seq - start) % every == every - 1 &&
            sc_cache_checkpoint(c)) { /* more often than the timer: the kill lands after one */
            fprintf(stderr, "cache_writer: checkpoint failed\n");
            sc_cache_close(c);
            return 1;
        }
    }
    sc_cache_close(c);
    return 0;
}

static int cw_verify(const char *dir, const char *acks)
{
    sc_cache_opts_t o;
    sc_cache_t *c;
    char err[256], line[CW_LINE];
    cw_opts(&o, dir);
    FILE *f = fopen(acks, "r");
    if (!f) {
        perror(acks);
        return 1;
    }
    if (sc_cache_open(&o, &c, err, sizeof(err))) {
        fprintf(stderr, "cache_writer: reopen: %s\n", err);
        fclose(f);
        return 1;
    }
    unsigned long long id, seq, n = 0, missing = 0, wrong = 0, unfound = 0;
    while (fgets(line, sizeof(line), f)) {
        if (!strchr(line, '\n') || sscanf(line, "%llu %llu", &id, &seq) != 2)
            continue; /* a line cut by the kill was never acknowledged */
        n++;
        sc_cache_entry_t e;
        if (sc_cache_get(c, id, &e)) {
            missing++;
            continue;
        }
        char text[64];
        snprintf(text, sizeof(text), "entry %llu", seq);
        if (strcmp(e.text, text))
            wrong++;
        sc_cache_entry_clear(&e);
        float v[CW_DIM];
        cw_vec(seq, v);
        sc_cache_query_t q = {1 + seq % CW_SCOPES, "", "a probe", 7, v};
        sc_cache_result_t r;
        if (sc_cache_lookup(c, &q, 1, &r) || r.hit != SC_CACHE_HIT_SEMANTIC || r.entry != id)
            unfound++;
        free(r.response);
    }
    fclose(f);
    sc_cache_stats_t s;
    sc_cache_stats(c, &s);
    printf("acknowledged=%llu missing=%llu wrong=%llu not_found_by_vector=%llu store=%llu "
           "index=%llu partitions=%llu saved_index=%s\n",
           n, missing, wrong, unfound, (unsigned long long)s.entries,
           (unsigned long long)s.indexed, (unsigned long long)s.partitions,
           s.index_loaded ? "loaded" : "rebuilt");
    sc_cache_close(c);
    return (n == 0 || missing || wrong || unfound || s.entries != s.indexed || s.entries < n);
}

int main(int argc, char **argv)
{
    sc_log_set_level(SC_LOG_WARN);
    if (argc >= 3 && !strcmp(argv[1], "write"))
        return cw_write(argv[2], argc >= 4 ? strtoull(argv[3], NULL, 10) : 0);
    if (argc == 4 && !strcmp(argv[1], "verify"))
        return cw_verify(argv[2], argv[3]);
    fprintf(stderr, "usage: cache_writer write DIR [FIRST_SEQ] | verify DIR ACKS\n");
    return 2;
}
