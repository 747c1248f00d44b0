/* fuzz_config.c - libFuzzer harness: the configuration file (sc_config_load_file on a scratch
 * file of the input, then sc_config_validate and the dump) and one -X override of the input. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "host/core/config.h"
#include "tests/fuzz/fuzz_util.h"

#define FUZZ_ERR_MAX 512

static const char *cfg_path;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    sc_fuzz_init();
    cfg_path = sc_fuzz_path("config.json");
    return 0;
}

/* What every configuration must still do after a load or a set, good or bad. */
static void exercise(sc_config_t *cfg)
{
    char err[FUZZ_ERR_MAX];
    (void)sc_config_validate(cfg, err, sizeof err);
    char *dump = sc_config_dump(cfg);
    SC_FUZZ_CHECK(dump != NULL);
    free(dump);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[FUZZ_ERR_MAX];
    sc_config_t *cfg = NULL;

    SC_FUZZ_CHECK(sc_config_new(&cfg) == SC_OK);
    sc_fuzz_write(cfg_path, data, size);
    (void)sc_config_load_file(cfg, cfg_path, err, sizeof err);
    exercise(cfg);
    sc_config_free(cfg);

    cfg = NULL;
    SC_FUZZ_CHECK(sc_config_new(&cfg) == SC_OK);
    char *kv = sc_fuzz_cstr(data, size);
    (void)sc_config_set(cfg, kv, err, sizeof err);
    free(kv);
    exercise(cfg);
    sc_config_free(cfg);
    return 0;
}
