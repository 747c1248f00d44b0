/* main.c - the scrimp command line: picks a subcommand and calls one driver or one tool. */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "host/cache/cache.h"
#include "host/core/config.h"
#include "host/kafka/dev_broker.h"
#include "host/gemini/sim.h"
#include "host/core/log.h"
#include "pipelines/backfill.h"
#include "pipelines/changelog.h"
#include "pipelines/cli.h"
#include "pipelines/embed.h"
#include "pipelines/online.h"
#include "pipelines/pipeline.h"
#include "pipelines/report.h"
#include "models/train/train_router.h"

#define MAIN_ERRBUF 1024

static volatile sig_atomic_t running = 1;

static void on_signal(int sig)
{
    (void)sig;
    running = 0;
}

static void install_signals(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
}

static void usage(FILE *out)
{
    fprintf(out,
            "usage: scrimp <command> [options]\n"
            "\n"
            "  serve [-c FILE] [-X key=value]...     online optimizer: Kafka in -> Kafka out\n"
            "  backfill IN.jsonl -o OUT.jsonl [--mode online|batch] [--resume] [-c FILE] [-X k=v]...\n"
            "                                        offline job: one output line per input line\n"
            "  cache stats|ls|get ID|purge [--tenant T|--all] [-c FILE] [-X k=v]...\n"
            "                                        inspect and purge the semantic cache\n"
            "  report RESULTS.jsonl... [--svg FILE]  savings tables from results and shadow lines (+ SVG)\n"
            "  dev-broker [--port N] [--partitions P]\n"
            "                                        embedded Kafka-protocol broker; prints its\n"
            "                                        bootstrap address as the first stdout line\n"
            "  gemini-sim [--port N] [--faults SPEC] [--api-key KEY] [--threads N]\n"
            "             [--batch-pending-ms MS] [--batch-running-ms MS] [--cache-min-tokens N]\n"
            "             [--quality SPEC [--quality-truth FILE]] [--record FILE]\n"
            "                                        local Gemini-API server; prints its base URL\n"
            "                                        as the first stdout line\n"
            "  config dump [-c FILE] [-X key=value]...  effective configuration, secrets masked\n"
            "  embed [--format jsonl|f32] [--model DIR] [--backend auto|cpu|cuda] [--batch N]\n"
            "        [--threads N] < lines           one all-MiniLM-L6-v2 embedding per line\n"
            "  train-router DATA_DIR... -o FILE [--model DIR] [--holdout-frac F] [--seed N]\n"
            "                                        fit the router head, APGR on held-out subjects\n"
            "  classify [--router FILE] [--model DIR] [--tiers a,b,c] < lines\n"
            "                                        one {\"i\",\"score\",\"tier\"} per line\n"
            "  validate [-c FILE] [-X k=v]... < requests.jsonl\n"
            "                                        check requests by the contract: \"ok ID\" or\n"
            "                                        \"invalid ID: CODE reason\" per line\n"
            "  version\n"
            "\n"
            "Environment: GEMINI_API_KEY (the API key), SCRIMP_LOG (debug|info|warn|error).\n");
}

/* ---- configuration from -c and -X ---- */

/* Parse [-c FILE] [-X k=v]... from argv; other arguments are an error. */
static int load_config(int argc, char **argv, sc_config_t **out)
{
    const char *file = NULL;
    const char *overrides[SC_CLI_MAX_OVERRIDES];
    int nover = 0, opt;
    optind = 1;
    while ((opt = getopt(argc, argv, "c:X:")) != -1) {
        if (opt == 'c') {
            file = optarg;
        } else if (opt == 'X' && nover < SC_CLI_MAX_OVERRIDES) {
            overrides[nover++] = optarg;
        } else {
            fprintf(stderr, "scrimp: expected -c FILE and -X key=value options\n");
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "scrimp: unexpected argument \"%s\"\n", argv[optind]);
        return 2;
    }
    return sc_cli_config(file, overrides, nover, out);
}

/* ---- subcommands ---- */

static int cmd_serve(int argc, char **argv)
{
    sc_config_t *cfg;
    int rc = load_config(argc, argv, &cfg);
    if (rc)
        return rc;
    char err[MAIN_ERRBUF] = "";
    install_signals();
    sc_status_t st = sc_online_run(cfg, &running, err, sizeof err);
    if (st)
        fprintf(stderr, "scrimp serve: %s: %s\n", sc_strerror(st), err);
    sc_config_free(cfg);
    return st ? 1 : 0;
}

/* scrimp cache stats|ls|get|purge [--tenant T] [-c FILE] [-X k=v]... */
static int cmd_cache(int argc, char **argv)
{
    const char *file = NULL;
    const char *overrides[SC_CLI_MAX_OVERRIDES];
    int nover = 0;
    for (int i = 1; i + 1 < argc; i++) { /* -c and -X may stand anywhere */
        if (strcmp(argv[i], "-c") == 0)
            file = argv[++i];
        else if (strcmp(argv[i], "-X") == 0 && nover < SC_CLI_MAX_OVERRIDES)
            overrides[nover++] = argv[++i];
    }
    sc_config_t *cfg;
    int rc = sc_cli_config(file, overrides, nover, &cfg);
    if (rc)
        return rc;
    rc = sc_cache_cli(cfg, argc, argv);
    if (rc == 0 && argc > 1 && strcmp(argv[1], "purge") == 0 &&
        sc_config_bool(cfg, "cache.changelog")) {
        /* the other replicas purge too: a purge record on the changelog */
        const char *tenant = NULL;
        for (int i = 2; i + 1 < argc; i++)
            if (strcmp(argv[i], "--tenant") == 0)
                tenant = argv[i + 1];
        char err[MAIN_ERRBUF];
        if (sc_changelog_send_purge(cfg, tenant, err, sizeof err) != SC_OK) {
            fprintf(stderr, "scrimp cache purge: %s\n", err);
            rc = 1;
        } else {
            fprintf(stderr, "scrimp cache purge: sent to %s; every replica removes the entries\n",
                    sc_config_str(cfg, "topics.cache"));
        }
    }
    sc_config_free(cfg);
    return rc;
}

static int cmd_config(int argc, char **argv)
{
    if (argc < 2 || strcmp(argv[1], "dump") != 0) {
        fprintf(stderr, "usage: scrimp config dump [-c FILE] [-X key=value]...\n");
        return 2;
    }
    sc_config_t *cfg;
    int rc = load_config(argc - 1, argv + 1, &cfg);
    if (rc)
        return rc;
    char *s = sc_config_dump(cfg);
    if (s)
        puts(s);
    free(s);
    sc_config_free(cfg);
    return s ? 0 : 1;
}

static int parse_port(const char *s, int *port)
{
    char *end;
    long v = strtol(s, &end, 10);
    if (*s == '\0' || *end || v < 0 || v > 65535)
        return -1;
    *port = (int)v;
    return 0;
}

static volatile sig_atomic_t broker_want; /* dev-broker: 1 down, 2 up, 0 nothing asked */

static void on_broker_signal(int sig)
{
    broker_want = sig == SIGUSR1 ? 1 : 2;
}

static void wait_for_signal(void)
{
    while (running)
        pause();
}

static int cmd_dev_broker(int argc, char **argv)
{
    static const struct option opts[] = {{"port", required_argument, NULL, 'p'},
                                         {"partitions", required_argument, NULL, 'n'},
                                         {NULL, 0, NULL, 0}};
    int port = 0, partitions = 4, opt;
    optind = 1;
    while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (opt == 'p' && parse_port(optarg, &port) == 0)
            continue;
        if (opt == 'n' && (partitions = atoi(optarg)) >= 1 && partitions <= 1024)
            continue;
        fprintf(stderr, "usage: scrimp dev-broker [--port N] [--partitions P (1..1024)]\n");
        return 2;
    }
    static const char *const topics[] = {"scrimp.requests", "scrimp.results", "scrimp.dlq",
                                         "scrimp.cache", "scrimp.shadow", NULL};
    char err[MAIN_ERRBUF];
    sc_dev_broker_t *b = NULL;
    install_signals();
    if (sc_dev_broker_start(port, partitions, topics, &b, err, sizeof err) != SC_OK) {
        fprintf(stderr, "scrimp dev-broker: %s\n", err);
        return 1;
    }
    printf("%s\n", sc_dev_broker_bootstrap(b));
    fflush(stdout);
    /* SIGUSR1 takes the broker down, SIGUSR2 brings it back (the mock cluster's own fault
     * injection), so tests can show that nothing is lost across a broker outage. */
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_broker_signal;
    sigaction(SIGUSR1, &sa, NULL);
    sigaction(SIGUSR2, &sa, NULL);
    while (running) {
        pause();
        sig_atomic_t want = broker_want;
        if (want) {
            broker_want = 0;
            if (sc_dev_broker_set_down(b, want == 1, err, sizeof err) != SC_OK)
                sc_error("broker.fault", "%s", err);
        }
    }
    sc_info("broker.stop", "bootstrap=%s", sc_dev_broker_bootstrap(b));
    sc_dev_broker_stop(b);
    return 0;
}

static int cmd_gemini_sim(int argc, char **argv)
{
    static const struct option opts[] = {{"port", required_argument, NULL, 'p'},
                                         {"faults", required_argument, NULL, 'f'},
                                         {"api-key", required_argument, NULL, 'k'},
                                         {"threads", required_argument, NULL, 't'},
                                         {"batch-pending-ms", required_argument, NULL, 'P'},
                                         {"batch-running-ms", required_argument, NULL, 'R'},
                                         {"cache-min-tokens", required_argument, NULL, 'C'},
                                         {"quality", required_argument, NULL, 'Q'},
                                         {"quality-truth", required_argument, NULL, 'T'},
                                         {"record", required_argument, NULL, 'r'},
                                         {NULL, 0, NULL, 0}};
    sc_gemini_sim_opts_t so = {0};
    int opt;
    optind = 1;
    while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (opt == 'p' && parse_port(optarg, &so.port) == 0)
            continue;
        if (opt == 'f') {
            so.faults = optarg;
            continue;
        }
        if (opt == 'k') {
            so.api_key = optarg;
            continue;
        }
        if (opt == 'Q') {
            so.quality = optarg; /* checked by sc_gemini_sim_start */
            continue;
        }
        if ((opt == 'T' || opt == 'r') && optarg[0]) {
            *(opt == 'T' ? &so.quality_truth : &so.record) = optarg; /* read or created at start */
            continue;
        }
        if (opt == 't' && atoi(optarg) >= 1 && atoi(optarg) <= 256) {
            so.threads = (unsigned)atoi(optarg);
            continue;
        }
        if (opt == 'P' || opt == 'R') {
            char *end = NULL;
            unsigned long ms = strtoul(optarg, &end, 10); /* overflow gives ULONG_MAX: refused */
            if (optarg[0] >= '0' && optarg[0] <= '9' && end && !*end && ms >= 1 &&
                ms <= SC_GEMINI_SIM_BATCH_DELAY_MS_MAX) {
                *(opt == 'P' ? &so.batch_pending_ms : &so.batch_running_ms) = (unsigned)ms;
                continue;
            }
        }
        if (opt == 'C') {
            char *end = NULL;
            unsigned long n = strtoul(optarg, &end, 10); /* overflow gives ULONG_MAX: refused */
            if (optarg[0] >= '0' && optarg[0] <= '9' && end && !*end && n >= 1 &&
                n <= SC_GEMINI_SIM_CACHE_MIN_TOKENS_MAX) {
                so.cache_min_tokens = (unsigned)n;
                continue;
            }
        }
        fprintf(stderr, "usage: scrimp gemini-sim [--port N] [--faults SPEC] [--api-key KEY] "
                        "[--threads N] [--batch-pending-ms MS] [--batch-running-ms MS] "
                        "[--cache-min-tokens N] [--quality SPEC [--quality-truth FILE]] "
                        "[--record FILE]\n");
        return 2;
    }
    if (so.quality_truth && !(so.quality && so.quality[0])) {
        fprintf(stderr, "usage: scrimp gemini-sim: --quality-truth FILE needs --quality SPEC "
                        "(e.g. --quality on)\n");
        return 2;
    }
    char err[MAIN_ERRBUF];
    sc_gemini_sim_t *sim = NULL;
    install_signals();
    if (sc_gemini_sim_start(&so, &sim, err, sizeof err) != SC_OK) {
        fprintf(stderr, "scrimp gemini-sim: %s\n", err);
        return 1;
    }
    printf("http://127.0.0.1:%d\n", sc_gemini_sim_port(sim));
    fflush(stdout);
    wait_for_signal();
    sc_gemini_sim_stop(sim);
    return 0;
}

static int cmd_report(int argc, char **argv)
{
    const char *paths[SC_REPORT_FILES_MAX], *svg = NULL;
    size_t n = 0;
    int bad = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--svg") == 0 && i + 1 < argc)
            svg = argv[++i];
        else if (n < SC_REPORT_FILES_MAX && (argv[i][0] != '-' || strcmp(argv[i], "-") == 0))
            paths[n++] = argv[i];
        else
            bad = 1;
    }
    if (n == 0 || bad) {
        fprintf(stderr, "usage: scrimp report RESULTS.jsonl [MORE.jsonl ...] [--svg FILE]\n"
                        "  (results and shadow ledger lines, e.g. of scrimp.results and "
                        "scrimp.shadow; at most %d files)\n", SC_REPORT_FILES_MAX);
        return 2;
    }
    char err[MAIN_ERRBUF];
    if (sc_report_run_files(paths, n, svg, stdout, err, sizeof err) != SC_OK) {
        fprintf(stderr, "scrimp report: %s\n", err);
        return 1;
    }
    return 0;
}

/* scrimp validate [-c FILE] [-X k=v]... < requests.jsonl: every line checked by the request
 * contract (DESIGN §4.1, limits.* of the configuration) as serve would check it; one line out
 * per line in: "ok ID" or "invalid ID: CODE reason". Exit 0 when every line is valid, 1 else. */
static int cmd_validate(int argc, char **argv)
{
    sc_config_t *cfg;
    int rc = load_config(argc, argv, &cfg);
    if (rc)
        return rc;
    sc_limits_t lim;
    sc_limits_from_config(cfg, &lim);
    char *line = NULL, id[SC_ITEM_ID_MAX], err[MAIN_ERRBUF];
    size_t cap = 0;
    ssize_t n;
    long lineno = 0, bad = 0;
    while ((n = getline(&line, &cap, stdin)) >= 0) {
        lineno++;
        while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
            line[--n] = '\0';
        if (n == 0)
            continue;
        sc_request_t *req = NULL;
        sc_status_t st = sc_request_parse(line, (size_t)n, &lim, &req, id, sizeof id, err,
                                          sizeof err);
        if (st == SC_OK) {
            printf("ok %s\n", req->id);
        } else {
            bad++;
            printf("invalid %s: %s %s\n", id[0] ? id : "(line)", sc_status_code(st), err);
        }
        sc_request_free(req);
    }
    free(line);
    fflush(stdout);
    fprintf(stderr, "scrimp validate: %ld lines, %ld invalid\n", lineno, bad);
    sc_config_free(cfg);
    return bad ? 1 : 0;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    const char *cmd = argv[1];
    argc--;
    argv++;
    if (strcmp(cmd, "serve") == 0)
        return cmd_serve(argc, argv);
    if (strcmp(cmd, "config") == 0)
        return cmd_config(argc, argv);
    if (strcmp(cmd, "dev-broker") == 0)
        return cmd_dev_broker(argc, argv);
    if (strcmp(cmd, "gemini-sim") == 0)
        return cmd_gemini_sim(argc, argv);
    if (strcmp(cmd, "report") == 0)
        return cmd_report(argc, argv);
    if (strcmp(cmd, "embed") == 0)
        return sc_embed_cli(argc, argv);
    if (strcmp(cmd, "cache") == 0)
        return cmd_cache(argc, argv);
    if (strcmp(cmd, "backfill") == 0) {
        install_signals();
        return sc_backfill_cli(argc, argv, &running);
    }
    if (strcmp(cmd, "train-router") == 0)
        return sc_train_router_cli(argc, argv);
    if (strcmp(cmd, "classify") == 0)
        return sc_classify_cli(argc, argv);
    if (strcmp(cmd, "validate") == 0)
        return cmd_validate(argc, argv);
    if (strcmp(cmd, "version") == 0) {
        printf("scrimp %s\n", SCRIMP_VERSION);
        return 0;
    }
    if (strcmp(cmd, "help") == 0 || strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0) {
        usage(stdout);
        return 0;
    }
    fprintf(stderr, "scrimp: unknown command \"%s\"\n\n", cmd);
    usage(stderr);
    return 2;
}
