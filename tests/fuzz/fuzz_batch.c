/* fuzz_batch.c - libFuzzer harness: Gemini Batch Mode as scrimp reads it: the batch Operation
 * that GET batches/{id} answers (sc_batch_parse_operation, results delivered) and one result
 * line on its own (sc_batch_parse_result). */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "host/gemini/batch.h"
#include "host/gemini/gemini.h"
#include "tests/fuzz/fuzz_util.h"

/* A delivered result: what backfill's batcher relies on, then freed as it frees it. */
static void on_result(const char *key, sc_gemini_call_t *call, void *arg)
{
    size_t *n = arg;
    SC_FUZZ_CHECK(key != NULL && call != NULL);
    SC_FUZZ_CHECK(call->status == SC_OK ? call->text != NULL : call->err_message != NULL);
    (*n)++;
    sc_gemini_call_free(call);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    sc_fuzz_init();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    sc_batch_status_t st;
    size_t delivered = 0;
    const char *body = (const char *)data;
    memset(&st, 0xa5, sizeof st); /* every field must be written */
    if (sc_batch_parse_operation(body, size, &st, on_result, &delivered) == SC_OK) {
        SC_FUZZ_CHECK(memchr(st.error, '\0', sizeof st.error) != NULL);
        SC_FUZZ_CHECK(delivered == 0 || (st.done && st.state == SC_BATCH_SUCCEEDED));
        (void)sc_batch_state_name(st.state);
    }
    json_t *line = json_loadb(body, size, 0, NULL); /* new */
    const char *key = NULL;
    sc_gemini_call_t *call = sc_batch_parse_result(line, &key);
    if (call) {
        SC_FUZZ_CHECK(key != NULL);
        SC_FUZZ_CHECK(call->status == SC_OK ? call->text != NULL : call->err_message != NULL);
        sc_gemini_call_free(call);
    }
    json_decref(line);
    return 0;
}
