/* fuzz_backfill_state.c - libFuzzer harness: the backfill journal (OUT.state, one JSON event per
 * line) through sc_backfill_journal_open, the reader a --resume run adopts its batches with. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <jansson.h>

#include "pipelines/backfill.h"
#include "tests/fuzz/fuzz_util.h"

static const char *state_path;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    sc_fuzz_init();
    state_path = sc_fuzz_path("out.jsonl.state");
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    sc_fuzz_write(state_path, data, size);
    FILE *f = fopen(state_path, "r");
    SC_FUZZ_CHECK(f != NULL);
    json_t *open = sc_backfill_journal_open(f); /* new */
    fclose(f);
    SC_FUZZ_CHECK(json_is_object(open));
    const char *display;
    json_t *ent; /* borrowed */
    json_object_foreach(open, display, ent) {
        /* what adopt_batches reads of each open batch */
        SC_FUZZ_CHECK(json_is_object(ent));
        (void)json_string_value(json_object_get(ent, "name"));
        (void)json_string_value(json_object_get(ent, "model"));
        size_t i;
        json_t *k; /* borrowed */
        json_array_foreach(json_object_get(ent, "keys"), i, k)
            (void)json_string_value(k);
    }
    json_decref(open);
    return 0;
}
