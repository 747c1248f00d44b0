/* fuzz_changelog.c - libFuzzer harness: a record value of the changelog topic (topics.cache) through
 * sc_changelog_decode, the parser every replica runs on what any producer of that topic wrote.
 * What decodes is encoded again in its kind and must decode to the same fields. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "pipelines/changelog.h"
#include "tests/fuzz/fuzz_util.h"

#define DIM 384

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    sc_fuzz_init();
    return 0;
}

static int same(const char *a, const char *b)
{
    return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

/* v, encoded from rec by its kind, decodes to rec's fields again. */
static void round_trip(const sc_changelog_rec_t *rec, char *v, size_t len)
{
    char err[256];
    sc_changelog_rec_t again;
    SC_FUZZ_CHECK(v != NULL);
    SC_FUZZ_CHECK(sc_changelog_decode(v, len, DIM, &again, err, sizeof err) == SC_OK);
    SC_FUZZ_CHECK(again.purge == rec->purge && again.summary == rec->summary &&
                  again.pcache == rec->pcache && again.batch == rec->batch);
    SC_FUZZ_CHECK(same(again.origin, rec->origin));
    if (rec->summary)
        SC_FUZZ_CHECK(again.sum.n_turns == rec->sum.n_turns && again.sum.hash == rec->sum.hash &&
                      again.sum.text_len == rec->sum.text_len &&
                      memcmp(again.sum.text, rec->sum.text, rec->sum.text_len) == 0);
    else if (rec->pcache)
        SC_FUZZ_CHECK(again.pc.hash == rec->pc.hash && again.pc.gone == rec->pc.gone &&
                      same(again.pc.name, rec->pc.name) && same(again.pc.model, rec->pc.model) &&
                      (rec->pc.gone || (again.pc.prefix_len == rec->pc.prefix_len &&
                                        again.pc.tokens == rec->pc.tokens &&
                                        again.pc.expire_wall_ms == rec->pc.expire_wall_ms)));
    else if (rec->batch)
        SC_FUZZ_CHECK(same(again.bat_key, rec->bat_key) &&
                      same(again.bat_display, rec->bat_display) &&
                      same(again.bat_model, rec->bat_model) && same(again.bat_name, rec->bat_name));
    else
        SC_FUZZ_CHECK(again.item.q.scope == rec->item.q.scope &&
                      again.item.q.len == rec->item.q.len &&
                      again.item.response_len == rec->item.response_len &&
                      again.item.created_ms == rec->item.created_ms &&
                      (again.item.q.vec == NULL) == (rec->item.q.vec == NULL) &&
                      (!rec->item.q.vec ||
                       memcmp(again.item.q.vec, rec->item.q.vec, DIM * sizeof(float)) == 0));
    sc_changelog_rec_clear(&again);
    free(v);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[256], key[SC_CHANGELOG_KEY_MAX];
    size_t len = 0;
    sc_changelog_rec_t rec;
    if (sc_changelog_decode(data, size, DIM, &rec, err, sizeof err) != SC_OK) {
        SC_FUZZ_CHECK(err[0] != '\0' && rec.json == NULL);
        return 0;
    }
    if (rec.summary) {
        round_trip(&rec, sc_changelog_encode_summary(rec.sum_tenant, rec.sum_conversation,
                                                     rec.sum.text, rec.sum.text_len,
                                                     rec.sum.n_turns, rec.sum.hash, rec.origin,
                                                     key, &len), len);
    } else if (rec.pcache) {
        /* the encoder takes what a manager shares: a model it could hold */
        if (strlen(rec.pc.model) < SC_PROMPT_CACHE_MODEL_MAX)
            round_trip(&rec, sc_changelog_encode_prompt_cache(&rec.pc, rec.origin, key, &len), len);
    } else if (rec.batch) {
        round_trip(&rec, sc_changelog_encode_batch(rec.bat_key, rec.bat_display, rec.bat_model,
                                                   rec.bat_name, rec.origin, key, &len), len);
    } else if (!rec.purge) {
        round_trip(&rec, sc_changelog_encode(&rec.item, rec.origin, DIM, key, &len), len);
    }
    sc_changelog_rec_clear(&rec);
    return 0;
}
