/* test_optimizer.c - the optimizer's stages before the call: which requests are embedded (an exact
 * cache hit is not, a batch's repeated text once, nothing that no stage reads), counted by the
 * embed stage's counters (pipelines/stages/stages.h). */
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
#include <jansson.h>

#include "host/core/config.h"
#include "pipelines/optimizer.h"
#include "pipelines/pipeline.h"
#include "pipelines/stages/stages.h"

#define PATHLEN 4096

static char tmpdir[PATHLEN];

static const char *source_dir(void)
{
    const char *d = getenv("SCRIMP_SOURCE_DIR");
    return d && *d ? d : ".";
}

static void set(sc_config_t *cfg, const char *fmt, const char *arg)
{
    char kv[PATHLEN + 64], err[256];
    snprintf(kv, sizeof kv, fmt, arg);
    if (sc_config_set(cfg, kv, err, sizeof err) != SC_OK)
        fail_msg("%s: %s", kv, err);
}

/* An optimizer with the embedding model and router of the source tree, a fresh cache under
 * tmpdir, no prompt cache; cache and router as asked, pruning on. */
static sc_optimizer_t *new_optimizer(sc_config_t **cfgp, int cache, int router)
{
    sc_config_t *cfg = NULL;
    char path[PATHLEN], err[512];
    assert_int_equal(sc_config_new(&cfg), SC_OK);
    snprintf(path, sizeof path, "%s/models/all-MiniLM-L6-v2", source_dir());
    set(cfg, "models.embedding=%s", path);
    snprintf(path, sizeof path, "%s/models/router/router.json", source_dir());
    set(cfg, "router.path=%s", path);
    set(cfg, "cache.path=%s/cache", tmpdir);
    set(cfg, "prune.path=%s/summaries", tmpdir);
    set(cfg, "router.shadow_path=%s/shadow", tmpdir);
    set(cfg, "cache.enabled=%s", cache ? "true" : "false");
    set(cfg, "router.enabled=%s", router ? "true" : "false");
    set(cfg, "prune.enabled=%s", "true");
    set(cfg, "prompt_cache.enabled=%s", "false");
    set(cfg, "cache.gpu=%s", "false");
    set(cfg, "cache.index_save=%s", "false");
    set(cfg, "backend=%s", "cpu");
    sc_optimizer_t *o = NULL;
    sc_status_t st = sc_optimizer_new(cfg, NULL, 0, &o, err, sizeof err);
    if (st != SC_OK)
        fail_msg("sc_optimizer_new: %s", err);
    *cfgp = cfg;
    return o;
}

/* A parsed batch of requests: model (pinned id or "auto"), cache mode, last user turn. */
typedef struct {
    const char *model, *cache, *text;
} req_t;

static sc_batch_t *new_batch(const sc_config_t *cfg, const req_t *r, size_t n)
{
    sc_batch_t *b = calloc(1, sizeof *b);
    assert_non_null(b);
    b->items = calloc(n, sizeof *b->items);
    assert_non_null(b->items);
    for (size_t i = 0; i < n; i++) {
        sc_item_t *it = sc_item_new();
        assert_non_null(it);
        char json[1024];
        int len = snprintf(json, sizeof json,
                           "{\"id\":\"r%zu\",\"tenant\":\"acme\",\"model\":\"%s\",\"cache\":\"%s\","
                           "\"messages\":[{\"role\":\"user\",\"content\":\"%s\"}]}",
                           i, r[i].model, r[i].cache, r[i].text);
        assert_true(len > 0 && (size_t)len < sizeof json);
        it->raw = strdup(json);
        it->raw_len = (size_t)len;
        it->deadline_ms = INT64_MAX;
        b->items[b->n++] = it;
    }
    sc_limits_t lim;
    sc_limits_from_config(cfg, &lim);
    sc_stage_parse(b, &lim);
    for (size_t i = 0; i < b->n; i++)
        assert_int_equal(b->items[i]->state, SC_ITEM_FORWARD);
    return b;
}

static void free_batch(sc_optimizer_t *o, sc_batch_t *b, sc_item_t **extra, size_t nextra)
{
    for (size_t i = 0; i < b->n; i++)
        sc_optimizer_forget(o, b->items[i]);
    for (size_t i = 0; i < nextra; i++)
        sc_item_free(extra[i]);
    sc_batch_free(b);
}

static void rm_tmp(void)
{
    char cmd[PATHLEN + 16];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0)
        fail_msg("%s failed", cmd);
}

static int setup(void **state)
{
    (void)state;
    snprintf(tmpdir, sizeof tmpdir, "/tmp/scrimp-test-optimizer-XXXXXX");
    return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    rm_tmp();
    return 0;
}

/* A miss is embedded and stored; the same text again (other spacing and case: the exact layer
 * normalises) is an exact hit and is not embedded; a new text is. */
static void test_exact_hit_not_embedded(void **state)
{
    (void)state;
    sc_config_t *cfg;
    sc_optimizer_t *o = new_optimizer(&cfg, 1, 0);
    const req_t first[] = {{"gemini-2.5-flash", "on", "How do I reset my Beacon router?"}};
    sc_batch_t *b = new_batch(cfg, first, 1);
    sc_optimizer_prepare(o, b);
    assert_int_equal(o->embedded_texts, 1);
    sc_item_t *it = b->items[0];
    assert_non_null(it->vec);
    assert_true(it->scope != 0);
    const sc_turn_t *t = sc_opt_last_turn(it);
    sc_cache_query_t q = {.scope = it->scope, .tenant = "acme", .text = t->content,
                          .len = t->content_len, .vec = it->vec};
    sc_usage_t u = {.prompt_tokens = 10, .output_tokens = 5};
    assert_int_equal(sc_cache_insert(o->cache, &q, "Hold the button.", 16, "gemini-2.5-flash",
                                     &u, 0.001, NULL),
                     SC_OK);
    free_batch(o, b, NULL, 0);

    const req_t again[] = {{"gemini-2.5-flash", "on", "how do I   reset my beacon router?"},
                           {"gemini-2.5-flash", "on", "What does the WAN light mean?"}};
    b = new_batch(cfg, again, 2);
    sc_optimizer_prepare(o, b);
    assert_int_equal(o->embedded_texts, 2); /* the new text only */
    assert_int_equal(o->embed_calls, 2);
    /* the hit left the batch's FORWARD items DONE, answered from the exact layer */
    sc_item_t *hit = b->items[0]->state == SC_ITEM_DONE ? b->items[0] : b->items[1];
    sc_item_t *miss = hit == b->items[0] ? b->items[1] : b->items[0];
    assert_int_equal(hit->state, SC_ITEM_DONE);
    assert_string_equal(hit->source, "cache-exact");
    assert_string_equal(hit->shared_text, "Hold the button.");
    assert_null(hit->vec);
    assert_int_equal(miss->state, SC_ITEM_FORWARD);
    assert_non_null(miss->vec);
    /* the cache's statistics count each query once, as one lookup would */
    sc_cache_stats_t cs;
    sc_cache_stats(o->cache, &cs);
    assert_int_equal(cs.lookups, 3);
    assert_int_equal(cs.hits_exact, 1);
    assert_int_equal(cs.misses, 2);
    free_batch(o, b, NULL, 0);
    sc_optimizer_free(o);
    sc_config_free(cfg);
    rm_tmp();
    assert_int_equal(mkdir(tmpdir, 0700), 0);
}

/* Three requests of a batch with one text and one with another: two texts embedded, in one call,
 * and each copy of the vector is the one its text's embedding gives. */
static void test_duplicates_embedded_once(void **state)
{
    (void)state;
    sc_config_t *cfg;
    sc_optimizer_t *o = new_optimizer(&cfg, 1, 0);
    const req_t r[] = {{"gemini-2.5-flash", "on", "Is the AX3000 Wi-Fi 6?"},
                       {"gemini-2.5-flash", "exact", "Is the AX3000 Wi-Fi 6?"},
                       {"gemini-2.5-pro", "on", "Which ports does the AX5400 have?"},
                       {"gemini-2.5-pro", "on", "Is the AX3000 Wi-Fi 6?"}};
    sc_batch_t *b = new_batch(cfg, r, 4);
    sc_item_t *its[4];
    memcpy(its, b->items, sizeof its); /* coalescing takes followers out of the batch */
    sc_optimizer_prepare(o, b);
    assert_int_equal(o->embed_calls, 1);
    assert_int_equal(o->embedded_texts, 2);
    for (int i = 0; i < 4; i++)
        assert_non_null(its[i]->vec);
    assert_memory_equal(its[0]->vec, its[1]->vec, SC_EMBED_DIM * sizeof(float));
    assert_memory_equal(its[0]->vec, its[3]->vec, SC_EMBED_DIM * sizeof(float));
    assert_memory_not_equal(its[0]->vec, its[2]->vec, SC_EMBED_DIM * sizeof(float));
    /* the same vector the text gets alone */
    float want[SC_EMBED_DIM];
    const char *txt = r[0].text;
    size_t len = strlen(txt);
    assert_int_equal(sc_encoder_embed(o->enc, &txt, &len, 1, want), SC_OK);
    for (int d = 0; d < SC_EMBED_DIM; d++)
        assert_true(its[3]->vec[d] - want[d] < 1e-4f && want[d] - its[3]->vec[d] < 1e-4f);
    sc_item_t *followers[4];
    size_t nf = 0;
    for (int i = 0; i < 4; i++)
        if (its[i]->state == SC_ITEM_FOLLOWING)
            followers[nf++] = its[i];
    assert_int_equal(nf, 1); /* r1 follows r0 (one scope, one text); r2 and r3: pro's scope */
    assert_int_equal(its[1]->state, SC_ITEM_FOLLOWING);
    free_batch(o, b, followers, nf);
    sc_optimizer_free(o);
    sc_config_free(cfg);
}

/* Nothing reads the vector of a pinned request the cache does not see: not embedded, whether
 * the cache is off for it or for all; a request the router scores or the cache sees is. */
static void test_unread_not_embedded(void **state)
{
    (void)state;
    sc_config_t *cfg;
    sc_optimizer_t *o = new_optimizer(&cfg, 0, 0); /* cache and router off, pruning on */
    const req_t pinned[] = {{"gemini-2.5-flash", "on", "What is a mesh network?"}};
    sc_batch_t *b = new_batch(cfg, pinned, 1);
    sc_optimizer_prepare(o, b);
    assert_null(b->items[0]->vec);
    assert_int_equal(o->embed_calls, 0);
    assert_int_equal(o->embedded_texts, 0);
    assert_int_equal(b->items[0]->state, SC_ITEM_FORWARD);
    assert_non_null(b->items[0]->call);
    free_batch(o, b, NULL, 0);
    sc_optimizer_free(o);
    sc_config_free(cfg);

    o = new_optimizer(&cfg, 1, 1); /* cache and router on */
    const req_t r[] = {{"gemini-2.5-flash", "off", "What is a mesh network?"},
                       {"auto", "off", "What is a guest network?"},
                       {"gemini-2.5-flash", "on", "What is a VPN?"}};
    b = new_batch(cfg, r, 3);
    sc_optimizer_prepare(o, b);
    assert_null(b->items[0]->vec);     /* pinned, cache off: nothing reads it */
    assert_non_null(b->items[1]->vec); /* auto: the router reads it */
    assert_non_null(b->items[2]->vec); /* cacheable: the cache reads it */
    assert_int_equal(o->embedded_texts, 2);
    assert_string_equal(b->items[0]->route, "pinned");
    free_batch(o, b, NULL, 0);
    sc_optimizer_free(o);
    sc_config_free(cfg);
}

/* A long conversation (120 turns of ~60 tokens, a conversation id) pinned to model. */
static sc_batch_t *long_conversation(const sc_config_t *cfg, const char *model)
{
    json_t *msgs = json_array();
    char text[512];
    for (int i = 0; i < 120; i++) {
        snprintf(text, sizeof text, "Turn %d of the incident review: the %s service restarted "
                 "after the cache node %d ran out of memory, and the on-call engineer paged the "
                 "storage team, who moved the shard to a larger host and raised the alert level "
                 "for the next %d hours while the backlog drained.", i,
                 i % 2 ? "billing" : "search", i * 7 % 13, i % 5 + 1);
        json_array_append_new(msgs, json_pack("{s:s, s:s}", "role", i % 2 ? "model" : "user",
                                              "content", text));
    }
    json_array_append_new(msgs, json_pack("{s:s, s:s}", "role", "user", "content",
                                          "Which shard was moved?"));
    json_t *req = json_pack("{s:s, s:s, s:s, s:s, s:o}", "id", "long-1", "tenant", "acme",
                            "conversation_id", "conv-1", "model", model, "messages", msgs);
    char *js = json_dumps(req, JSON_COMPACT);
    json_decref(req);
    sc_batch_t *b = calloc(1, sizeof *b);
    b->items = calloc(1, sizeof *b->items);
    sc_item_t *it = sc_item_new();
    it->raw = js;
    it->raw_len = strlen(js);
    it->deadline_ms = INT64_MAX;
    b->items[b->n++] = it;
    sc_limits_t lim;
    sc_limits_from_config(cfg, &lim);
    sc_stage_parse(b, &lim);
    assert_int_equal(it->state, SC_ITEM_FORWARD);
    return b;
}

/* Pruning that needs a new summary goes ahead only where it saves more than the summary costs:
 * on the strong model it does; on flash-lite (pinned) the request goes whole. */
static void test_prune_only_when_it_pays(void **state)
{
    (void)state;
    sc_config_t *cfg;
    sc_optimizer_t *o = new_optimizer(&cfg, 0, 0);
    sc_batch_t *b = long_conversation(cfg, "gemini-2.5-pro");
    sc_optimizer_prepare(o, b);
    assert_true(b->items[0]->pruned_tokens > 0);
    assert_non_null(b->items[0]->summary_body);
    free_batch(o, b, NULL, 0);
    b = long_conversation(cfg, "gemini-2.5-flash-lite");
    sc_optimizer_prepare(o, b);
    assert_int_equal(b->items[0]->pruned_tokens, 0);
    assert_null(b->items[0]->summary_body);
    assert_int_equal(b->items[0]->plan.pruned, 0);
    free_batch(o, b, NULL, 0);
    sc_optimizer_free(o);
    sc_config_free(cfg);
}

/* The turns a conversation sends again are not embedded again: the same long conversation twice
 * embeds nothing the second time and plans the same pruning; with prune.turn_vectors=0 every
 * turn is embedded again. */
static void test_turns_embedded_once(void **state)
{
    (void)state;
    for (int keep = 1; keep >= 0; keep--) {
        sc_config_t *cfg;
        sc_optimizer_t *o = new_optimizer(&cfg, 0, 0);
        if (!keep) { /* the same optimizer without the store */
            sc_turn_vecs_free(o->turn_vecs);
            o->turn_vecs = NULL;
        }
        sc_batch_t *b = long_conversation(cfg, "gemini-2.5-pro");
        sc_optimizer_prepare(o, b);
        uint64_t first = o->prune_embedded;
        long pruned = b->items[0]->pruned_tokens;
        assert_true(first > 0 && pruned > 0);
        free_batch(o, b, NULL, 0);
        b = long_conversation(cfg, "gemini-2.5-pro");
        sc_optimizer_prepare(o, b);
        uint64_t second = o->prune_embedded - first;
        printf("  turn vectors %s: %llu turns embedded, then %llu; pruned %ld then %ld tokens\n",
               keep ? "kept" : "off", (unsigned long long)first, (unsigned long long)second,
               pruned, (long)b->items[0]->pruned_tokens);
        assert_int_equal(b->items[0]->pruned_tokens, pruned);
        if (keep)
            assert_int_equal(second, 0);
        else
            assert_int_equal(second, first);
        free_batch(o, b, NULL, 0);
        sc_optimizer_free(o);
        sc_config_free(cfg);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_exact_hit_not_embedded),
        cmocka_unit_test(test_duplicates_embedded_once),
        cmocka_unit_test(test_unread_not_embedded),
        cmocka_unit_test(test_prune_only_when_it_pays),
        cmocka_unit_test(test_turns_embedded_once),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
