/* fuzz_request.c - libFuzzer harness: a Kafka request (simple or Gemini's own shape) through
 * sc_request_parse, and for a valid one the upstream bodies and the text view of every content. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <jansson.h>

#include "host/core/genreq.h"
#include "host/core/message.h"
#include "host/gemini/gemini.h"
#include "tests/fuzz/fuzz_util.h"

#define FUZZ_ID_MAX 512
#define FUZZ_ERR_MAX 512

/* A body scrimp sends upstream: it must be a JSON object. */
static void check_body(char *body, size_t len)
{
    SC_FUZZ_CHECK(body != NULL);
    json_t *doc = json_loadb(body, len, 0, NULL); /* new */
    SC_FUZZ_CHECK(json_is_object(doc));
    json_decref(doc);
    free(body);
}

static void render(const json_t *content) /* borrowed */
{
    unsigned flags = 0;
    size_t len = 0;
    char *text = sc_genreq_render(content, &flags, &len);
    SC_FUZZ_CHECK(text != NULL);
    free(text);
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
    sc_limits_t lim;
    sc_request_t *req = NULL;
    char id[FUZZ_ID_MAX], err[FUZZ_ERR_MAX];
    sc_limits_default(&lim);
    if (sc_request_parse(data, size, &lim, &req, id, sizeof id, err, sizeof err) != SC_OK)
        return 0;
    SC_FUZZ_CHECK(req != NULL && req->id != NULL && req->tenant != NULL);
    (void)sc_request_exact_only(req);
    size_t len = 0;
    char *body = sc_gemini_body_from_request(req, &len);
    check_body(body, len);
    body = sc_gemini_body_with_cache(req, "cachedContents/fuzz", &len);
    check_body(body, len);
    if (req->native) {
        size_t i;
        json_t *content; /* borrowed */
        json_array_foreach(json_object_get(req->native, "contents"), i, content)
            render(content);
        json_t *sys = json_object_get(req->native, "systemInstruction"); /* borrowed */
        if (sys)
            render(sys);
    }
    sc_request_free(req);
    return 0;
}
