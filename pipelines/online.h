/* online.h - the online driver: `scrimp serve`. */
#ifndef SC_ONLINE_H
#define SC_ONLINE_H

#include <signal.h>
#include <stddef.h>

#include "host/core/config.h"
#include "host/core/status.h"

/*
 * Run the pipeline of DESIGN §1/§5 until *running becomes 0 (SIGTERM/SIGINT), then drain
 * in-flight work up to pipeline.drain_timeout_ms, flush, commit and return.
 * Start-up problems (no API key, unreachable broker or upstream, missing topics) are returned
 * within pipeline.startup_timeout_ms with the reason in errbuf.
 */
sc_status_t sc_online_run(const sc_config_t *cfg, volatile sig_atomic_t *running, char *errbuf,
                          size_t errlen);

#endif
