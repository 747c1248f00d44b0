/* bench_pipeline.c - end-to-end benchmark of the pass-through pipeline of `scrimp serve`: dev
 * broker + Gemini simulator + sc_online_run in one process on loopback; a producer writes requests,
 * a consumer reads results, and the table says how fast and how late they came back. */
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <librdkafka/rdkafka.h>

#include "bench/bench_util.h"
#include "host/core/config.h"
#include "host/kafka/dev_broker.h"
#include "host/gemini/sim.h"
#include "host/core/log.h"
#include "host/core/util.h"
#include "pipelines/online.h"

#define BENCH_DEFAULT_REQUESTS   20000
#define BENCH_DEFAULT_WARMUP     500
#define BENCH_DEFAULT_PARTITIONS 4
#define BENCH_DEFAULT_TIMEOUT_S  300
#define BENCH_DEFAULT_OUT        "bench/results/pipeline.md"
#define BENCH_MAX_REQUESTS       10000000
#define BENCH_MAX_OVERRIDES      32
#define BENCH_ERRLEN             512
#define BENCH_POLL_MS            50 /* consumer poll period; also how often waits check the clock */
#define BENCH_RESULTS_FETCH_MS   5 /* our own consumer's fetch.wait.max.ms: keeps the probe light */
#define BENCH_ID_LEN             32 /* "<prefix>-" + up to 20 digits of a size_t + NUL */
#define BENCH_CMDLINE_MAX        4096
#define BENCH_TABLE_MAX          8192

static const char *const bench_topics[] = {"scrimp.requests", "scrimp.results", "scrimp.dlq",
                                           "scrimp.cache", "scrimp.shadow", NULL};

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("bench_pipeline: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(2);
}

/* ---- one phase: N requests with ids PREFIX-000001…, their send and receive times ---- */

typedef struct {
    const char *prefix; /* "w" warm-up, "b" measured */
    size_t n;
    int64_t *sent_us;  /* n: monotonic time just before produce */
    int64_t *recv_us;  /* n: monotonic time the result was polled; 0 = not yet */
    long *internal_ms; /* n: the result's latency_ms */
    unsigned char *ok; /* n: status == "ok" */
    atomic_size_t seen, n_ok, n_error, duplicates;
    int64_t first_sent_us;
} phase_t;

static void phase_init(phase_t *p, const char *prefix, size_t n)
{
    memset(p, 0, sizeof *p);
    p->prefix = prefix;
    p->n = n;
    p->sent_us = calloc(n ? n : 1, sizeof *p->sent_us);
    p->recv_us = calloc(n ? n : 1, sizeof *p->recv_us);
    p->internal_ms = calloc(n ? n : 1, sizeof *p->internal_ms);
    p->ok = calloc(n ? n : 1, 1);
    if (!p->sent_us || !p->recv_us || !p->internal_ms || !p->ok)
        die("out of memory for %zu requests", n);
}

static void phase_free(phase_t *p)
{
    free(p->sent_us);
    free(p->recv_us);
    free(p->internal_ms);
    free(p->ok);
}

/* ---- requests shaped like DESIGN §4.1 ---- */

static const char *const tenants[] = {"acme", "globex", "initech", "umbrella"};
static const char *const systems[] = {
    "Role: Tech Support. Tone: concise.",
    "Role: Billing assistant. Answer in two sentences.",
    "Role: Travel agent. Be friendly and specific.",
    "Role: Code reviewer. Point out one issue at a time.",
};
static const char *const user_turns[] = {
    "My router keeps rebooting.",
    "TP-Link Archer C7, firmware 5.1",
    "Why was I charged twice this month?",
    "Can you find me a flight from Lyon to Oslo next Friday?",
    "Is this loop off by one: for (i = 0; i <= n; i++)?",
    "The invoice number is 88231.",
    "I prefer a window seat and no overnight layovers.",
    "It started after the last update.",
    "What does error E42 mean on the display?",
    "Please summarise our conversation so far.",
};
static const char *const model_turns[] = {
    "Which model is it?",
    "Could you share the invoice number?",
    "Sure, which dates work for the return?",
    "Yes: the last iteration reads past the end of the array.",
    "Did anything change before it started?",
};
static const char *const stages[] = {"triage", "answer", "followup"};

/* The JSON bytes of request i of phase p. @remark the caller frees with free(). */
static char *request_json(const phase_t *p, size_t i, char *id, size_t idlen)
{
    int idn = snprintf(id, idlen, "%s-%06zu", p->prefix, i + 1);
    if (idn < 0 || (size_t)idn >= idlen)
        die("request id %s-%06zu does not fit in %zu bytes", p->prefix, i + 1, idlen);
    unsigned h = (unsigned)(i * 2654435761u);
    size_t turns = 1 + 2 * (h % 3); /* 1, 3 or 5: always ends with a user turn */
    json_t *msgs = json_array();
    for (size_t t = 0; t < turns; t++) {
        int user = t % 2 == 0;
        const char *text = user ? user_turns[(h / 7 + t) % SC_ARRAY_LEN(user_turns)]
                                : model_turns[(h / 11 + t) % SC_ARRAY_LEN(model_turns)];
        json_array_append_new(
            msgs, json_pack("{s:s, s:s}", "role", user ? "user" : "model", "content", text));
    }
    char user[32], conv[32];
    snprintf(user, sizeof user, "u-%u", h % 97);
    snprintf(conv, sizeof conv, "c-%u", h % 1009);
    json_t *req =
        json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:o, s:s, s:{s:f, s:i, s:s}, s:s, s:i}",
                  "id", id, "tenant", tenants[i % SC_ARRAY_LEN(tenants)], "user", user, "agent",
                  "support-bot", "stage", stages[h % SC_ARRAY_LEN(stages)], "conversation_id", conv,
                  "system", systems[(h / 3) % SC_ARRAY_LEN(systems)], "messages", msgs, "model",
                  "auto", "generation", "temperature", 0.2, "max_output_tokens", 256,
                  "response_mime_type", "text/plain", "cache", "on", "deadline_ms", 60000);
    if (!req)
        die("cannot build request %s", id);
    char *s = json_dumps(req, JSON_COMPACT);
    json_decref(req);
    if (!s)
        die("out of memory serialising %s", id);
    return s;
}

/* Produce every request of p, paced at rate/s when rate > 0, else as fast as librdkafka takes
 * them; waits (bounded) until the broker acknowledged all of them. */
static void produce_phase(rd_kafka_t *prod, phase_t *p, double rate, int64_t deadline_ms)
{
    char id[BENCH_ID_LEN];
    int64_t start_us = sc_now_us();
    for (size_t i = 0; i < p->n; i++) {
        if (rate > 0) {
            int64_t due = start_us + (int64_t)((double)i * 1e6 / rate);
            int64_t now = sc_now_us();
            if (due > now)
                usleep((useconds_t)(due - now));
        }
        char *buf = request_json(p, i, id, sizeof id);
        size_t len = strlen(buf);
        for (;;) {
            p->sent_us[i] = sc_now_us();
            rd_kafka_resp_err_t err =
                rd_kafka_producev(prod, RD_KAFKA_V_TOPIC("scrimp.requests"),
                                  RD_KAFKA_V_KEY(id, strlen(id)), RD_KAFKA_V_VALUE(buf, len),
                                  RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_FREE), RD_KAFKA_V_END);
            if (!err)
                break;
            if (err != RD_KAFKA_RESP_ERR__QUEUE_FULL)
                die("produce %s: %s", id, rd_kafka_err2str(err));
            if (sc_now_ms() > deadline_ms)
                die("produce %s: producer queue still full at the deadline", id);
            rd_kafka_poll(prod, BENCH_POLL_MS);
        }
        if (i == 0)
            p->first_sent_us = p->sent_us[0];
        rd_kafka_poll(prod, 0);
    }
    int64_t left = deadline_ms - sc_now_ms();
    if (rd_kafka_flush(prod, left > 0 ? (int)left : 0))
        die("%d of %zu %s-requests not acknowledged by the broker before the deadline",
            rd_kafka_outq_len(prod), p->n, p->prefix);
}

/* ---- the results consumer thread ---- */

typedef struct {
    rd_kafka_t *rk;
    phase_t *phases[2];
    atomic_int stop;
    atomic_size_t foreign; /* results whose id belongs to no phase */
} collector_t;

static void collect_one(collector_t *c, const rd_kafka_message_t *m, int64_t now_us)
{
    json_error_t jerr;
    json_t *res = json_loadb(m->payload, m->len, 0, &jerr);
    const char *id = res ? json_string_value(json_object_get(res, "id")) : NULL;
    const char *status = res ? json_string_value(json_object_get(res, "status")) : NULL;
    phase_t *p = NULL;
    size_t idx = 0;
    for (int k = 0; id && k < 2 && !p; k++) {
        phase_t *q = c->phases[k];
        size_t plen = strlen(q->prefix);
        if (strncmp(id, q->prefix, plen) == 0 && id[plen] == '-') {
            char *end;
            errno = 0;
            unsigned long v = strtoul(id + plen + 1, &end, 10);
            if (!errno && *end == '\0' && v >= 1 && v <= q->n) {
                p = q;
                idx = v - 1;
            }
        }
    }
    if (!p) {
        atomic_fetch_add(&c->foreign, 1);
    } else if (p->recv_us[idx]) {
        atomic_fetch_add(&p->duplicates, 1); /* at least once: the first copy counts */
    } else {
        int ok = status && strcmp(status, "ok") == 0;
        p->internal_ms[idx] = (long)json_integer_value(json_object_get(res, "latency_ms"));
        p->ok[idx] = (unsigned char)ok;
        p->recv_us[idx] = now_us;
        atomic_fetch_add(ok ? &p->n_ok : &p->n_error, 1);
        if (!ok && atomic_load(&p->n_error) <= 3)
            fprintf(stderr, "bench_pipeline: result not ok: %.*s\n", (int)m->len,
                    (const char *)m->payload);
        atomic_fetch_add(&p->seen, 1); /* last: a reader of seen sees the fields above */
    }
    json_decref(res);
}

static void *collector_main(void *arg)
{
    collector_t *c = arg;
    while (!atomic_load(&c->stop)) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(c->rk, BENCH_POLL_MS);
        if (!m)
            continue;
        int64_t now_us = sc_now_us();
        if (m->err) {
            if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
                fprintf(stderr, "bench_pipeline: results consumer: %s\n",
                        rd_kafka_message_errstr(m));
        } else {
            collect_one(c, m, now_us);
        }
        rd_kafka_message_destroy(m);
    }
    return NULL;
}

/* ---- the pipeline under test, in a thread ---- */

typedef struct {
    const sc_config_t *cfg;
    volatile sig_atomic_t running;
    sc_status_t st;
    atomic_int done;
    char errbuf[BENCH_ERRLEN];
} serve_t;

static void *serve_main(void *arg)
{
    serve_t *s = arg;
    s->st = sc_online_run(s->cfg, &s->running, s->errbuf, sizeof s->errbuf);
    atomic_store(&s->done, 1);
    return NULL;
}

/* Wait until every result of p arrived; on the deadline or an early pipeline exit, say what is
 * missing and exit non-zero. */
static void wait_phase(phase_t *p, serve_t *serve, int64_t deadline_ms)
{
    size_t last = 0;
    int64_t last_change = sc_now_ms();
    while (atomic_load(&p->seen) < p->n) {
        if (atomic_load(&serve->done))
            die("the pipeline stopped early (%s: %s) with %zu of %zu %s-results received",
                sc_status_code(serve->st), serve->errbuf, atomic_load(&p->seen), p->n, p->prefix);
        if (sc_now_ms() > deadline_ms) {
            size_t seen = atomic_load(&p->seen), shown = 0;
            fprintf(stderr,
                    "bench_pipeline: timeout: %zu of %zu %s-results received; no new "
                    "result for the last %lld ms; first missing ids:",
                    seen, p->n, p->prefix, (long long)(sc_now_ms() - last_change));
            for (size_t i = 0; i < p->n && shown < 10; i++)
                if (!p->recv_us[i]) {
                    fprintf(stderr, " %s-%06zu", p->prefix, i + 1);
                    shown++;
                }
            fputc('\n', stderr);
            exit(1);
        }
        size_t seen = atomic_load(&p->seen);
        if (seen != last) {
            last = seen;
            last_change = sc_now_ms();
        }
        usleep(1000);
    }
}

/* ---- statistics and the report ---- */

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Nearest-rank percentile of sorted v[0..n). */
static double pct(const double *v, size_t n, double q)
{
    if (n == 0)
        return 0;
    size_t r = (size_t)(q / 100.0 * (double)n + 0.999999);
    if (r < 1)
        r = 1;
    if (r > n)
        r = n;
    return v[r - 1];
}

static void command_line(int argc, char **argv, char *out, size_t outlen)
{
    size_t used = 0;
    out[0] = '\0';
    for (int i = 0; i < argc && used + 1 < outlen; i++) {
        int quote = strpbrk(argv[i], " \t\"'$") != NULL;
        int n = snprintf(out + used, outlen - used, "%s%s%s%s", i ? " " : "", quote ? "'" : "",
                         argv[i], quote ? "'" : "");
        if (n < 0)
            break;
        used += (size_t)n;
    }
}

static long long sim_requests(sc_gemini_sim_t *sim)
{
    char *s = sc_gemini_sim_stats_json(sim);
    json_t *doc = s ? json_loads(s, 0, NULL) : NULL;
    long long n = doc ? (long long)json_integer_value(json_object_get(doc, "requests")) : -1;
    json_decref(doc);
    free(s);
    return n;
}

/* Append to a bounded buffer; truncation is silent (the buffer is sized for the table). */
static void appendf(char *buf, size_t cap, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void appendf(char *buf, size_t cap, const char *fmt, ...)
{
    size_t used = strlen(buf);
    if (used + 1 >= cap)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf + used, cap - used, fmt, ap);
    va_end(ap);
}

/* ---- main ---- */

static void usage(FILE *f)
{
    fprintf(f,
            "usage: bench_pipeline [--requests N] [--warmup N] [--partitions P] [--batch N]\n"
            "                      [--inflight N] [--rate R] [--sim-threads N] [--timeout S]\n"
            "                      [--out FILE] [-X key=value]...\n"
            "  --requests N     measured requests (default %d)\n"
            "  --warmup N       requests before the measured run (default %d)\n"
            "  --partitions P   partitions per topic on the dev broker (default %d)\n"
            "  --batch N        batch.max_messages (default: the configuration default)\n"
            "  --inflight N     gemini.max_inflight (default: the configuration default)\n"
            "  --rate R         produce at R requests/s (default 0: as fast as possible)\n"
            "  --sim-threads N  Gemini simulator HTTP threads (default 0: its default)\n"
            "  --timeout S      bound on the whole run in seconds (default %d)\n"
            "  --out FILE       markdown report (default %s)\n"
            "  -X key=value     any other configuration override\n",
            BENCH_DEFAULT_REQUESTS, BENCH_DEFAULT_WARMUP, BENCH_DEFAULT_PARTITIONS,
            BENCH_DEFAULT_TIMEOUT_S, BENCH_DEFAULT_OUT);
}

static long parse_long(const char *opt, const char *s, long lo, long hi)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || *end || v < lo || v > hi)
        die("%s: \"%s\" is not an integer in %ld..%ld", opt, s, lo, hi);
    return v;
}

static void cfg_set(sc_config_t *cfg, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void cfg_set(sc_config_t *cfg, const char *fmt, ...)
{
    char kv[BENCH_ERRLEN], err[BENCH_ERRLEN];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(kv, sizeof kv, fmt, ap);
    va_end(ap);
    if (sc_config_set(cfg, kv, err, sizeof err) != SC_OK)
        die("config %s: %s", kv, err);
}

static rd_kafka_t *kafka_client(rd_kafka_type_t type, const char *bootstrap, const char *const *kv)
{
    char err[BENCH_ERRLEN];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    if (rd_kafka_conf_set(conf, "bootstrap.servers", bootstrap, err, sizeof err))
        die("bootstrap.servers: %s", err);
    for (size_t i = 0; kv[i]; i += 2)
        if (rd_kafka_conf_set(conf, kv[i], kv[i + 1], err, sizeof err))
            die("%s: %s", kv[i], err);
    rd_kafka_t *rk = rd_kafka_new(type, conf, err, sizeof err);
    if (!rk)
        die("cannot create a Kafka client: %s", err);
    return rk;
}

int main(int argc, char **argv)
{
    long n_req = BENCH_DEFAULT_REQUESTS, n_warm = BENCH_DEFAULT_WARMUP;
    long partitions = BENCH_DEFAULT_PARTITIONS, batch = 0, inflight = 0, sim_threads = 0;
    long timeout_s = BENCH_DEFAULT_TIMEOUT_S;
    double rate = 0;
    const char *out_path = BENCH_DEFAULT_OUT;
    const char *overrides[BENCH_MAX_OVERRIDES];
    size_t n_over = 0;
    char err[BENCH_ERRLEN], cmdline[BENCH_CMDLINE_MAX];
    command_line(argc, argv, cmdline, sizeof cmdline);

    static const struct option longopts[] = {{"requests", required_argument, NULL, 'n'},
                                             {"warmup", required_argument, NULL, 'w'},
                                             {"partitions", required_argument, NULL, 'p'},
                                             {"batch", required_argument, NULL, 'b'},
                                             {"inflight", required_argument, NULL, 'i'},
                                             {"rate", required_argument, NULL, 'r'},
                                             {"sim-threads", required_argument, NULL, 's'},
                                             {"timeout", required_argument, NULL, 't'},
                                             {"out", required_argument, NULL, 'o'},
                                             {"help", no_argument, NULL, 'h'},
                                             {NULL, 0, NULL, 0}};
    int c;
    while ((c = getopt_long(argc, argv, "X:h", longopts, NULL)) != -1) {
        switch (c) {
        case 'n':
            n_req = parse_long("--requests", optarg, 1, BENCH_MAX_REQUESTS);
            break;
        case 'w':
            n_warm = parse_long("--warmup", optarg, 0, BENCH_MAX_REQUESTS);
            break;
        case 'p':
            partitions = parse_long("--partitions", optarg, 1, 1024);
            break;
        case 'b':
            batch = parse_long("--batch", optarg, 1, 100000);
            break;
        case 'i':
            inflight = parse_long("--inflight", optarg, 1, 100000);
            break;
        case 'r':
            rate = (double)parse_long("--rate", optarg, 0, 10000000);
            break;
        case 's':
            sim_threads = parse_long("--sim-threads", optarg, 0, 1024);
            break;
        case 't':
            timeout_s = parse_long("--timeout", optarg, 1, 86400);
            break;
        case 'o':
            out_path = optarg;
            break;
        case 'X':
            if (n_over == BENCH_MAX_OVERRIDES)
                die("at most %d -X overrides", BENCH_MAX_OVERRIDES);
            overrides[n_over++] = optarg;
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (optind != argc) {
        usage(stderr);
        return 2;
    }
    int64_t deadline_ms = sc_now_ms() + timeout_s * 1000;
    sc_log_set_level(SC_LOG_WARN);

    /* 1. the dev broker and the simulator (no faults: zero added delay) */
    sc_dev_broker_t *broker = NULL;
    if (sc_dev_broker_start(0, (int)partitions, bench_topics, &broker, err, sizeof err))
        die("dev broker: %s", err);
    const char *bootstrap = sc_dev_broker_bootstrap(broker);
    sc_gemini_sim_opts_t so = {.host = "127.0.0.1", .port = 0, .threads = (unsigned)sim_threads};
    sc_gemini_sim_t *sim = NULL;
    if (sc_gemini_sim_start(&so, &sim, err, sizeof err))
        die("gemini simulator: %s", err);

    /* 2. the configuration and the pipeline */
    sc_config_t *cfg = NULL;
    if (sc_config_new(&cfg))
        die("out of memory for the configuration");
    cfg_set(cfg, "kafka.bootstrap.servers=%s", bootstrap);
    cfg_set(cfg, "gemini.base_url=http://127.0.0.1:%d", sc_gemini_sim_port(sim));
    cfg_set(cfg, "metrics.listen=127.0.0.1:0"); /* an ephemeral port: never clash */
    {
        char dir[] = "/tmp/scrimp-bench-pipeline-XXXXXX"; /* a fresh cache for each run */
        if (!mkdtemp(dir))
            die("mkdtemp: cannot make a scratch folder");
        cfg_set(cfg, "cache.path=%s/cache", dir);
        cfg_set(cfg, "prune.path=%s/summaries", dir);
        cfg_set(cfg, "router.shadow_path=%s/shadow", dir);
    }
    if (batch)
        cfg_set(cfg, "batch.max_messages=%ld", batch);
    if (inflight)
        cfg_set(cfg, "gemini.max_inflight=%ld", inflight);
    for (size_t i = 0; i < n_over; i++)
        cfg_set(cfg, "%s", overrides[i]);
    setenv("GEMINI_API_KEY", "bench-key", 1);
    sc_config_load_env(cfg);
    if (sc_config_validate(cfg, err, sizeof err))
        die("config: %s", err);

    phase_t warm, meas;
    phase_init(&warm, "w", (size_t)n_warm);
    phase_init(&meas, "b", (size_t)n_req);

    char group[64];
    snprintf(group, sizeof group, "bench-results-%d", (int)getpid());
    char fetch_wait[16];
    snprintf(fetch_wait, sizeof fetch_wait, "%d", BENCH_RESULTS_FETCH_MS);
    const char *ckv[] = {"group.id",
                         group,
                         "auto.offset.reset",
                         "earliest",
                         "enable.partition.eof",
                         "false",
                         "fetch.wait.max.ms",
                         fetch_wait,
                         NULL};
    collector_t col = {.rk = kafka_client(RD_KAFKA_CONSUMER, bootstrap, ckv),
                       .phases = {&warm, &meas}};
    rd_kafka_poll_set_consumer(col.rk);
    rd_kafka_topic_partition_list_t *sub = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(sub, "scrimp.results", RD_KAFKA_PARTITION_UA);
    if (rd_kafka_subscribe(col.rk, sub))
        die("cannot subscribe to scrimp.results");
    rd_kafka_topic_partition_list_destroy(sub);
    pthread_t t_col, t_serve;
    if (pthread_create(&t_col, NULL, collector_main, &col))
        die("cannot start the results consumer thread");

    serve_t serve = {.cfg = cfg, .running = 1};
    if (pthread_create(&t_serve, NULL, serve_main, &serve))
        die("cannot start the pipeline thread");

    const char *pkv[] = {"linger.ms", "1", "acks", "all", NULL};
    rd_kafka_t *prod = kafka_client(RD_KAFKA_PRODUCER, bootstrap, pkv);

    /* 3./4. warm-up (group joins, connections, allocator), then the measured run */
    if (warm.n) {
        produce_phase(prod, &warm, rate, deadline_ms);
        wait_phase(&warm, &serve, deadline_ms);
    }
    long long sim_before = sim_requests(sim);
    produce_phase(prod, &meas, rate, deadline_ms);
    int64_t produced_us = sc_now_us();
    wait_phase(&meas, &serve, deadline_ms);
    long long sim_after = sim_requests(sim);

    /* stop: the pipeline drains and returns */
    serve.running = 0;
    pthread_join(t_serve, NULL);
    int64_t settle_until = sc_now_ms() + 200; /* let late duplicates show up before counting */
    while (sc_now_ms() < settle_until)
        usleep(10000);
    atomic_store(&col.stop, 1);
    pthread_join(t_col, NULL);

    /* 5. the numbers */
    size_t n = meas.n;
    double *e2e = malloc(n * sizeof *e2e), *internal = malloc(n * sizeof *internal);
    if (!e2e || !internal)
        die("out of memory for the statistics");
    int64_t last_recv = 0;
    for (size_t i = 0; i < n; i++) {
        e2e[i] = (double)(meas.recv_us[i] - meas.sent_us[i]) / 1000.0;
        internal[i] = (double)meas.internal_ms[i];
        if (meas.recv_us[i] > last_recv)
            last_recv = meas.recv_us[i];
    }
    qsort(e2e, n, sizeof *e2e, cmp_double);
    qsort(internal, n, sizeof *internal, cmp_double);
    double wall_s = (double)(last_recv - meas.first_sent_us) / 1e6;
    double produce_s = (double)(produced_us - meas.first_sent_us) / 1e6;
    size_t n_ok = atomic_load(&meas.n_ok), n_error = atomic_load(&meas.n_error);

    char cpu[256], date[64];
    sc_bench_cpu_model(cpu, sizeof cpu);
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(date, sizeof date, "%Y-%m-%d %H:%M:%S UTC", &tm);

    char table[BENCH_TABLE_MAX] = "";
    appendf(table, sizeof table, "| metric | value |\n|---|---|\n");
    appendf(table, sizeof table, "| requests (measured, after %zu warm-up) | %zu |\n", warm.n, n);
    appendf(table, sizeof table,
            "| partitions / batch.max_messages / gemini.max_inflight | "
            "%ld / %lld / %lld |\n",
            partitions, sc_config_int(cfg, "batch.max_messages"),
            sc_config_int(cfg, "gemini.max_inflight"));
    appendf(table, sizeof table, "| produce rate | %s |\n",
            rate > 0 ? "paced (see --rate)" : "burst (as fast as possible)");
    appendf(table, sizeof table, "| time to produce all | %.3f s |\n", produce_s);
    appendf(table, sizeof table, "| wall time (first produce → last result) | %.3f s |\n", wall_s);
    appendf(table, sizeof table, "| throughput | %.0f requests/s |\n",
            wall_s > 0 ? (double)n / wall_s : 0.0);
    appendf(table, sizeof table,
            "| end-to-end latency p50 / p90 / p99 / max | "
            "%.1f / %.1f / %.1f / %.1f ms |\n",
            pct(e2e, n, 50), pct(e2e, n, 90), pct(e2e, n, 99), n ? e2e[n - 1] : 0.0);
    appendf(table, sizeof table,
            "| pipeline latency_ms p50 / p99 / max | %.0f / %.0f / %.0f ms |\n",
            pct(internal, n, 50), pct(internal, n, 99), n ? internal[n - 1] : 0.0);
    appendf(table, sizeof table, "| results ok / error | %zu / %zu |\n", n_ok, n_error);
    appendf(table, sizeof table, "| duplicate results | %zu |\n", atomic_load(&meas.duplicates));
    appendf(table, sizeof table, "| upstream HTTP requests (simulator) | %lld |\n",
            sim_before >= 0 && sim_after >= 0 ? sim_after - sim_before : -1LL);
    appendf(table, sizeof table, "| pipeline exit | %s |\n", sc_status_code(serve.st));

    printf("%s", table);

    FILE *f = fopen(out_path, "w");
    if (!f) {
        fprintf(stderr, "bench_pipeline: cannot write %s: %s\n", out_path, strerror(errno));
    } else {
        fprintf(f, "# Pipeline benchmark: `scrimp serve` pass-through, end to end\n\n");
        fprintf(f, "- machine: %s, %ld cores online\n", cpu, cores);
        fprintf(f, "- date: %s\n", date);
        fprintf(f, "- command: `%s`\n\n", cmdline);
        fprintf(f, "%s\n", table);
        fprintf(
            f,
            "What is measured: one process runs the embedded dev broker (librdkafka's mock "
            "cluster, %ld partitions per topic), the Gemini simulator (no faults, so no added "
            "delay) and `sc_online_run` with the default configuration plus the overrides in "
            "the command line, all on loopback. A librdkafka producer writes requests shaped "
            "like DESIGN §4.1 (1, 3 or 5 turns, %zu tenants, model `auto`) to "
            "`scrimp.requests`; a separate consumer reads `scrimp.results`. End-to-end latency "
            "is the time from just before `rd_kafka_producev` of a request to the poll that "
            "returned its result (same monotonic clock), so it includes the producer's linger, "
            "the broker hops, the pipeline's micro-batching, the HTTP call to the simulator and "
            "the results consumer's fetch; with a burst of requests it is dominated by "
            "queueing behind earlier ones. `latency_ms` is the pipeline's own figure (from "
            "consumption to publishing). Throughput is the measured requests divided by the "
            "time from the first produce to the last result. The simulator shares the machine, "
            "so this is a bound on the pipeline's overhead, not an estimate of real Gemini "
            "latency. A warm-up of %zu requests runs first in the same process and is not "
            "counted. The results consumer uses fetch.wait.max.ms=%d; the pipeline's consumer "
            "uses scrimp's default of 50 ms (the dev broker holds an idle fetch for the whole "
            "wait even when data arrives, so librdkafka's 500 ms default would dominate "
            "end-to-end latency at paced rates; run with `--rate 2000` to see latency without "
            "queueing).\n",
            partitions, SC_ARRAY_LEN(tenants), warm.n, BENCH_RESULTS_FETCH_MS);
        fclose(f);
    }

    int rc = 0;
    if (n_ok != n || n_error) {
        fprintf(stderr, "bench_pipeline: %zu of %zu results not ok\n", n - n_ok, n);
        rc = 1;
    }
    if (serve.st != SC_OK) {
        fprintf(stderr, "bench_pipeline: the pipeline returned %s: %s\n", sc_status_code(serve.st),
                serve.errbuf);
        rc = 1;
    }
    if (atomic_load(&col.foreign))
        fprintf(stderr, "bench_pipeline: %zu results with unknown ids\n",
                atomic_load(&col.foreign));

    rd_kafka_destroy(prod);
    rd_kafka_consumer_close(col.rk);
    rd_kafka_destroy(col.rk);
    free(e2e);
    free(internal);
    phase_free(&warm);
    phase_free(&meas);
    sc_config_free(cfg);
    sc_gemini_sim_stop(sim);
    sc_dev_broker_stop(broker);
    return rc;
}
