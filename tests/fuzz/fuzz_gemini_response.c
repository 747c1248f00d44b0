/* fuzz_gemini_response.c - libFuzzer harness: Gemini's answers as scrimp reads them: a
 * GenerateContentResponse object (sc_gemini_response_from_json, as a Batch Mode result carries
 * it), a 2xx body (sc_gemini_parse_ok) and an error body with its RetryInfo
 * (sc_gemini_parse_error). */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <jansson.h>

#include "host/gemini/gemini.h"
#include "host/gemini/gemini_internal.h"
#include "tests/fuzz/fuzz_util.h"

/* HTTP statuses an error body comes with; the input's first byte picks one. */
static const long http_codes[] = {400, 403, 404, 429, 500, 503, 504, 418};

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    sc_fuzz_init();
    return 0;
}

/* The outputs a parsed answer promises. */
static void check_outputs(const sc_gemini_call_t *call)
{
    SC_FUZZ_CHECK(call->text != NULL);
    SC_FUZZ_CHECK(call->candidates == NULL || json_is_array(call->candidates));
    SC_FUZZ_CHECK(call->usage_meta == NULL || json_is_object(call->usage_meta));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    sc_gemini_call_t *call = sc_gemini_call_new("gemini-2.5-flash", NULL, 0);
    SC_FUZZ_CHECK(call != NULL);
    const char *body = (const char *)data;

    json_t *root = json_loadb(body, size, 0, NULL); /* new */
    if (sc_gemini_response_from_json(call, root) == 0) {
        check_outputs(call);
        size_t i;
        json_t *cand; /* borrowed */
        json_array_foreach(call->candidates, i, cand) {
            char *text = sc_gemini_candidate_text(cand);
            SC_FUZZ_CHECK(text != NULL);
            free(text);
        }
        (void)sc_gemini_has_function_call(call->candidates);
    }
    json_decref(root);

    /* the same call again: every output it held must be replaced, not leaked */
    if (sc_gemini_parse_ok(call, body, size) == 0)
        check_outputs(call);
    long http = http_codes[size ? data[0] % (sizeof http_codes / sizeof http_codes[0]) : 0];
    long retry_ms = sc_gemini_parse_error(call, http, body, size);
    SC_FUZZ_CHECK(retry_ms >= -1);
    SC_FUZZ_CHECK(call->err_message != NULL);
    sc_gemini_call_free(call);
    return 0;
}
