/* fuzz_sim_request.c - libFuzzer harness: a generateContent body as the simulator takes it, with
 * no server: its body parser (sc_sim_parse_body), the API's rules (sc_sim_normalize:
 * sc_genreq_normalize(SC_GENREQ_API) + sc_genreq_check_model), its own request parser
 * (sc_sim_parse_gen), then its answer, which scrimp's client must understand. The first byte
 * picks the model. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <jansson.h>

#include "host/gemini/gemini.h"
#include "host/gemini/sim_internal.h"
#include "tests/fuzz/fuzz_util.h"

/* A simulator with no server: zeroed, as calloc leaves one before its daemon starts (no faults,
 * no quality mode, no caches, no batches). */
static sc_gemini_sim_t *sim;

static void free_sim(void)
{
    free(sim);
    sim = NULL;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    sc_fuzz_init();
    sim = calloc(1, sizeof *sim);
    SC_FUZZ_CHECK(sim != NULL);
    atexit(free_sim);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    sc_sim_reply_t r = {0};
    json_t *root = NULL, *norm = NULL, *doc = NULL;
    if (size == 0)
        return 0;
    const sc_sim_model_t *m = &sc_sim_models[data[0] % SC_SIM_MODEL_COUNT];
    sc_sim_call_t c = {.sim = sim, .id = m->name, .body = (const char *)data + 1,
                       .body_len = size - 1};
    root = sc_sim_parse_body(&c, &r);
    if (!root)
        goto out;
    norm = sc_sim_normalize(root, m->name, &r);
    if (!norm)
        goto out;
    const json_t *cached = json_object_get(norm, "cachedContent"); /* borrowed */
    sc_sim_gen_req_t g;
    if (!sc_sim_parse_gen(norm, cached == NULL, &g, &r) || cached)
        goto out; /* a request through a cache needs the cache table */
    SC_FUZZ_CHECK(g.candidates >= 1 && g.candidates <= SC_SIM_CANDIDATES_MAX);
    doc = sc_sim_gen_doc(sim, m, &g, norm);
    SC_FUZZ_CHECK(doc != NULL);
    sc_gemini_call_t *call = sc_gemini_call_new(m->name, NULL, 0);
    SC_FUZZ_CHECK(call != NULL);
    SC_FUZZ_CHECK(sc_gemini_response_from_json(call, doc) == 0);
    sc_gemini_call_free(call);
out:
    /* a refused body is a 400 (or a 500 when out of memory) with a message */
    SC_FUZZ_CHECK(doc || r.code == 400 || r.code == 500 ||
                  (norm && json_object_get(norm, "cachedContent")));
    free(r.body);
    json_decref(doc);
    json_decref(norm);
    json_decref(root);
    return 0;
}
