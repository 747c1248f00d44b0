/* cli.c - configuration assembly shared by the subcommands of pipelines/main.c. */
#include "pipelines/cli.h"

#include <stdio.h>

#define CLI_ERRBUF 1024

int sc_cli_config(const char *file, const char *const *overrides, int n, sc_config_t **out)
{
    char err[CLI_ERRBUF];
    sc_config_t *cfg = NULL;
    if (sc_config_new(&cfg) != SC_OK) {
        fprintf(stderr, "scrimp: out of memory\n");
        return 1;
    }
    if (file && sc_config_load_file(cfg, file, err, sizeof err) != SC_OK)
        goto fail;
    for (int i = 0; i < n; i++)
        if (sc_config_set(cfg, overrides[i], err, sizeof err) != SC_OK)
            goto fail;
    sc_config_load_env(cfg);
    if (sc_config_validate(cfg, err, sizeof err) != SC_OK)
        goto fail;
    *out = cfg;
    return 0;
fail:
    fprintf(stderr, "scrimp: configuration error: %s\n", err);
    sc_config_free(cfg);
    return 2;
}
