/* cli.h - what the subcommands share: the configuration from -c FILE and -X key=value. */
#ifndef SC_CLI_H
#define SC_CLI_H

#include "host/core/config.h"

#define SC_CLI_MAX_OVERRIDES 256

/* Defaults, then file (may be NULL), then the n overrides, then the environment; validated.
 * On failure prints "scrimp: configuration error: …" naming the key and returns 2; else 0 and
 * *out is a new configuration (@remark the caller frees it with sc_config_free()). */
int sc_cli_config(const char *file, const char *const *overrides, int n, sc_config_t **out);

#endif
