/* bench_encoder.c - sentences/s and tokens/s of the MiniLM encoder (CPU or CUDA) over a grid of
 * batch sizes × sentence lengths, with sentence-transformers itself measured side by side in the
 * same invocation as the anchor (bench/anchor_encoder.py). Writes bench/results/encoder-<b>.md. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "bench/bench_util.h"
#include "host/core/log.h"
#include "host/core/util.h"
#include "models/encoder.h"

#define BENCH_MAX_CELLS 64
#define BENCH_TEXTS_PER_LEN 1024
#define BENCH_TEXT_MAX 4096
#define BENCH_CMD_MAX 4096
#define BENCH_ANCHOR_OUT_MAX (1 << 20)

/* Ordinary words, each one WordPiece token (checked against the vocabulary at run time). */
static const char *bench_words[] = {
    "the", "customer", "asked", "about", "their", "order", "which", "was", "shipped", "last",
    "week", "but", "never", "arrived", "at", "home", "please", "check", "status", "and",
    "reply", "with", "a", "short", "summary", "of", "what", "happened", "router", "keeps",
    "rebooting", "every", "few", "minutes", "after", "update", "how", "do", "i", "reset",
    "password", "for", "my", "account", "on", "new", "phone", "can", "you", "explain",
    "refund", "policy", "to", "me", "in", "simple", "terms", "write", "query", "that",
    "returns", "monthly", "revenue", "by", "region", "sorted", "descending", "is", "this",
    "email", "likely", "spam", "or", "not", "translate", "sentence", "into", "french", "data",
    "report", "team", "meeting", "tomorrow", "morning", "budget", "plan", "review", "code",
    "function", "error", "message", "server", "network", "price", "product", "support", "time"};

/* The anchors, each run in the same invocation: sentence-transformers (bench/anchor_encoder.py),
 * and with --onnx-python onnxruntime fp32 and int8 (bench/anchor_onnx.py). */
enum { ANCHOR_ST, ANCHOR_ORT, ANCHOR_ORT_INT8, ANCHORS };

typedef struct {
    int batch, length;
    double sent_s, tok_s, fwd_sent_s; /* fwd: pre-tokenised ids */
    double anchor_sent_s[ANCHORS];    /* 0: not measured */
    int calls;
} cell_t;

/* texts[l][i]: BENCH_TEXTS_PER_LEN texts of exactly lengths[l] tokens ([CLS]/[SEP] included). */
static char **make_texts(const sc_tokenizer_t *tok, int length, unsigned seed)
{
    const char *usable[SC_ARRAY_LEN(bench_words)];
    size_t nu = 0;
    for (size_t i = 0; i < SC_ARRAY_LEN(bench_words); i++)
        if (sc_tokenizer_id(tok, bench_words[i]) >= 0)
            usable[nu++] = bench_words[i];
    char **texts = calloc(BENCH_TEXTS_PER_LEN, sizeof *texts);
    for (int i = 0; texts && i < BENCH_TEXTS_PER_LEN; i++) {
        char *t = malloc(BENCH_TEXT_MAX);
        if (!t)
            exit(1);
        size_t pos = 0;
        for (int w = 0; w < length - 2; w++) {
            seed = seed * 1103515245u + 12345u;
            const char *word = usable[(seed >> 8) % nu];
            size_t wl = strlen(word);
            if (pos + wl + 2 >= BENCH_TEXT_MAX)
                break;
            if (w)
                t[pos++] = ' ';
            memcpy(t + pos, word, wl);
            pos += wl;
        }
        t[pos] = '\0';
        texts[i] = t;
    }
    return texts;
}

/* One timed call of a measurement: SC_OK or the encoder's error. */
typedef struct {
    sc_encoder_t *enc;
    size_t batch;
    const char **ptrs; /* from text: the texts and their lengths */
    const size_t *lens;
    const int32_t *ids; /* model only: the token ids, pre-tokenised */
    const int32_t *off;
    float *out;
} embed_call_t;

static sc_status_t embed_call(const embed_call_t *c)
{
    return c->ids ? sc_encoder_embed_ids(c->enc, c->ids, c->off, c->batch, c->out)
                  : sc_encoder_embed(c->enc, c->ptrs, c->lens, c->batch, c->out);
}

/* One warm-up call outside the timing, then calls for at least min_s seconds: sentences per
 * second, the timed calls in *calls_out. */
static double time_calls(const embed_call_t *c, double min_s, int *calls_out)
{
    if (embed_call(c) != SC_OK) {
        fprintf(stderr, "bench_encoder: embedding failed\n");
        exit(1);
    }
    int calls = 0;
    int64_t t0 = sc_now_us(), dt;
    do {
        if (embed_call(c) != SC_OK) {
            fprintf(stderr, "bench_encoder: embedding failed in the timed loop\n");
            exit(1);
        }
        calls++;
        dt = sc_now_us() - t0;
    } while (dt < (int64_t)(min_s * 1e6));
    *calls_out = calls;
    return (double)c->batch * calls / (dt / 1e6);
}

/* The same batch pre-tokenised, through sc_encoder_embed_ids: the model alone, no tokenisation. */
static double measure_ids(sc_encoder_t *enc, char **texts, int batch, double min_s)
{
    const sc_tokenizer_t *tok = sc_encoder_tokenizer(enc);
    int32_t *ids = malloc((size_t)batch * SC_TOKENIZER_MAX_TOKENS * sizeof *ids);
    int32_t *off = malloc(((size_t)batch + 1) * sizeof *off);
    float *out = malloc((size_t)batch * SC_EMBED_DIM * sizeof *out);
    if (!ids || !off || !out)
        exit(1);
    off[0] = 0;
    for (int i = 0; i < batch; i++) {
        const char *t = texts[i % BENCH_TEXTS_PER_LEN];
        int got = sc_tokenizer_encode(tok, t, strlen(t), ids + off[i], 256);
        if (got < 1) {
            fprintf(stderr, "bench_encoder: tokenisation failed\n");
            exit(1);
        }
        off[i + 1] = off[i] + got;
    }
    const embed_call_t c = {.enc = enc, .batch = (size_t)batch, .ids = ids, .off = off, .out = out};
    int calls;
    double rate = time_calls(&c, min_s, &calls);
    free(ids);
    free(off);
    free(out);
    return rate;
}

static double measure(sc_encoder_t *enc, char **texts, int batch, double min_s, int *calls_out)
{
    size_t *lens = malloc((size_t)batch * sizeof *lens);
    const char **ptrs = malloc((size_t)batch * sizeof *ptrs);
    float *out = malloc((size_t)batch * SC_EMBED_DIM * sizeof *out);
    if (!lens || !ptrs || !out)
        exit(1);
    for (int i = 0; i < batch; i++) {
        ptrs[i] = texts[i % BENCH_TEXTS_PER_LEN];
        lens[i] = strlen(ptrs[i]);
    }
    const embed_call_t c = {.enc = enc, .batch = (size_t)batch, .ptrs = ptrs, .lens = lens,
                            .out = out};
    double rate = time_calls(&c, min_s, calls_out);
    free(lens);
    free(ptrs);
    free(out);
    return rate;
}

/* Run an anchor (script with the extra arguments) and fill cells[].anchor_sent_s[which];
 * versions gets its "versions" object (new ref). */
static int run_anchor(const char *python, const char *script, const char *model, const char *extra,
                      const char *texts_path, const char *device, int threads, double min_s,
                      cell_t *cells, int ncells, int which, json_t **versions)
{
    char list[1024] = "", cmd[BENCH_CMD_MAX];
    size_t pos = 0;
    for (int i = 0; i < ncells; i++)
        pos += (size_t)snprintf(list + pos, sizeof list - pos, "%s%d:%d", i ? "," : "",
                                cells[i].batch, cells[i].length);
    snprintf(cmd, sizeof cmd, "'%s' '%s' --texts '%s' --cells %s --device %s %s --threads %d "
             "--min-seconds %g%s%s%s %s", python, script, texts_path, list, device,
             strcmp(device, "cpu") ? "--fp16" : "", threads, min_s, model ? " --model '" : "",
             model ? model : "", model ? "'" : "", extra);
    fprintf(stderr, "bench_encoder: anchor: %s\n", cmd);
    FILE *p = popen(cmd, "r");
    if (!p)
        return -1;
    char *buf = calloc(1, BENCH_ANCHOR_OUT_MAX);
    size_t n = buf ? fread(buf, 1, BENCH_ANCHOR_OUT_MAX - 1, p) : 0;
    int rc = pclose(p);
    json_t *root = rc == 0 && n ? json_loads(buf, 0, NULL) : NULL; /* new reference */
    free(buf);
    if (!root) {
        fprintf(stderr, "bench_encoder: the anchor %s failed (exit %d); are its packages "
                        "installed for %s?\n", script, rc, python);
        return -1;
    }
    size_t i;
    json_t *c;
    json_array_foreach(json_object_get(root, "cells"), i, c) {
        if ((int)i < ncells)
            cells[i].anchor_sent_s[which] =
                json_number_value(json_object_get(c, "sentences_per_s"));
    }
    *versions = json_incref(json_object_get(root, "versions"));
    json_decref(root);
    return 0;
}

int main(int argc, char **argv)
{
    sc_encoder_opts_t opts;
    sc_encoder_opts_default(&opts);
    int batches[16] = {1, 32, 256, 1024}, nb = 4, lengths[16] = {16, 32, 128, 256}, nl = 4;
    double min_s = 1.0;
    const char *python = getenv("SCRIMP_ANCHOR_PYTHON") ? getenv("SCRIMP_ANCHOR_PYTHON") : "python3";
    const char *out_path = NULL, *backend = "cpu", *anchor_model = NULL, *onnx_python = NULL;
    int anchor = 1;
    char cmdline[1024] = "";
    size_t cl = 0;
    for (int i = 0; i < argc; i++)
        cl += (size_t)snprintf(cmdline + cl, cl < sizeof cmdline ? sizeof cmdline - cl : 0, "%s%s",
                               i ? " " : "", argv[i]);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--backend") && v) {
            backend = v;
            i++;
        } else if (!strcmp(a, "--threads") && v) {
            opts.threads = atoi(v);
            i++;
        } else if (!strcmp(a, "--precision") && v && sc_precision_parse(v, &opts.precision) == 0) {
            i++;
        } else if (!strcmp(a, "--model") && v) {
            opts.model_dir = v;
            i++;
        } else if (!strcmp(a, "--batches") && v && (nb = sc_bench_parse_list(v, batches, 16)) > 0) {
            i++;
        } else if (!strcmp(a, "--lengths") && v && (nl = sc_bench_parse_list(v, lengths, 16)) > 0) {
            i++;
        } else if (!strcmp(a, "--min-seconds") && v) {
            min_s = atof(v);
            i++;
        } else if (!strcmp(a, "--anchor-python") && v) {
            python = v;
            i++;
        } else if (!strcmp(a, "--anchor-model") && v) {
            anchor_model = v;
            i++;
        } else if (!strcmp(a, "--onnx-python") && v) {
            onnx_python = v;
            i++;
        } else if (!strcmp(a, "--no-anchor")) {
            anchor = 0;
        } else if (!strcmp(a, "--out") && v) {
            out_path = v;
            i++;
        } else {
            fprintf(stderr, "usage: bench_encoder [--backend cpu|cuda] [--threads N] [--model DIR]"
                            " [--precision auto|fp32|bf16|int8] [--batches 1,32,256,1024] [--lengths 16,32,128,256] [--min-seconds S]"
                            " [--anchor-python PY] [--anchor-model DIR] [--onnx-python PY] [--no-anchor]"
                            " [--out FILE]\n");
            return 2;
        }
    }
    if (sc_backend_parse(backend, &opts.backend) != 0 || opts.backend == SC_BACKEND_AUTO) {
        fprintf(stderr, "bench_encoder: --backend must be cpu or cuda\n");
        return 2;
    }
    if (opts.threads <= 0)
        opts.threads = (int)sysconf(_SC_NPROCESSORS_ONLN);
    for (int i = 0; i < nl; i++)
        if (lengths[i] < 3 || lengths[i] > 256) {
            fprintf(stderr, "bench_encoder: lengths must be 3..256\n");
            return 2;
        }
    int maxb = 0;
    for (int i = 0; i < nb; i++)
        maxb = batches[i] > maxb ? batches[i] : maxb;
    opts.max_batch = maxb;
    sc_log_set_level(SC_LOG_WARN);

    char err[512];
    sc_encoder_t *enc = NULL;
    if (sc_encoder_new(&opts, &enc, err, sizeof err) != SC_OK) {
        fprintf(stderr, "bench_encoder: %s\n", err);
        return 1;
    }
    const sc_tokenizer_t *tok = sc_encoder_tokenizer(enc);

    char texts_path[] = "/tmp/scrimp-bench-texts-XXXXXX";
    int fd = mkstemp(texts_path);
    FILE *tf = fd >= 0 ? fdopen(fd, "w") : NULL;
    if (!tf)
        return 1;
    char **texts[16];
    for (int l = 0; l < nl; l++) {
        texts[l] = make_texts(tok, lengths[l], 7u + (unsigned)l);
        int32_t ids[SC_TOKENIZER_MAX_TOKENS];
        int got = sc_tokenizer_encode(tok, texts[l][0], strlen(texts[l][0]), ids, 256);
        if (got != lengths[l])
            fprintf(stderr, "bench_encoder: a length-%d text has %d tokens\n", lengths[l], got);
        for (int i = 0; i < BENCH_TEXTS_PER_LEN; i++)
            fprintf(tf, "%d\t%s\n", lengths[l], texts[l][i]);
    }
    fclose(tf);

    cell_t cells[BENCH_MAX_CELLS];
    int ncells = 0;
    for (int b = 0; b < nb; b++)
        for (int l = 0; l < nl && ncells < BENCH_MAX_CELLS; l++) {
            cell_t *c = &cells[ncells++];
            memset(c, 0, sizeof *c);
            c->batch = batches[b];
            c->length = lengths[l];
            c->sent_s = measure(enc, texts[l], c->batch, min_s, &c->calls);
            c->tok_s = c->sent_s * c->length;
            c->fwd_sent_s = measure_ids(enc, texts[l], c->batch, min_s);
            fprintf(stderr, "scrimp: batch %d length %d: %.1f sentences/s\n", c->batch, c->length,
                    c->sent_s);
        }
    const char *device = sc_encoder_backend(enc) == SC_BACKEND_CUDA ? "cuda" : "cpu";
    json_t *versions = NULL, *ort_versions[2] = {NULL, NULL};
    char script[1024];
    const char *src = getenv("SCRIMP_SOURCE_DIR");
    snprintf(script, sizeof script, "%s/bench/anchor_encoder.py", src ? src : ".");
    if (anchor)
        run_anchor(python, script, anchor_model, "", texts_path, device, opts.threads, min_s,
                   cells, ncells, ANCHOR_ST, &versions);
    if (anchor && onnx_python) { /* the graph is built from scrimp's own model folder */
        char extra[1200];
        snprintf(script, sizeof script, "%s/bench/anchor_onnx.py", src ? src : ".");
        for (int q = 0; q < 2; q++) {
            snprintf(extra, sizeof extra, "%s --check '%s/tests/fixtures/minilm'",
                     q ? "--int8" : "", src ? src : ".");
            run_anchor(onnx_python, script, opts.model_dir, extra, texts_path, device,
                       opts.threads, min_s, cells, ncells, ANCHOR_ORT + q, &ort_versions[q]);
        }
    }
    unlink(texts_path);

    char cpu[256], date[64], anchor_desc[1024] = "not measured";
    sc_bench_cpu_model(cpu, sizeof cpu);
    time_t now = time(NULL);
    strftime(date, sizeof date, "%Y-%m-%d %H:%M UTC", gmtime(&now));
    size_t ap = 0;
    if (versions) {
        const char *gpu = json_string_value(json_object_get(versions, "gpu"));
        ap += (size_t)snprintf(anchor_desc, sizeof anchor_desc,
                               "sentence-transformers %s on torch %s, %s, %s, %lld threads%s%s",
                               json_string_value(json_object_get(versions, "sentence_transformers")),
                               json_string_value(json_object_get(versions, "torch")),
                               json_string_value(json_object_get(versions, "device")),
                               json_string_value(json_object_get(versions, "dtype")),
                               (long long)json_integer_value(json_object_get(versions, "threads")),
                               gpu ? ", " : "", gpu ? gpu : "");
    }
    for (int q = 0; q < 2; q++)
        if (ort_versions[q] && ap < sizeof anchor_desc)
            ap += (size_t)snprintf(
                anchor_desc + ap, sizeof anchor_desc - ap,
                "%sonnxruntime %s %s, %lld threads, cosine to sentence-transformers on the %lld "
                "fixture sentences min %.4f mean %.4f",
                ap ? "; " : "", json_string_value(json_object_get(ort_versions[q], "onnxruntime")),
                json_string_value(json_object_get(ort_versions[q], "dtype")),
                (long long)json_integer_value(json_object_get(ort_versions[q], "threads")),
                (long long)json_integer_value(json_object_get(ort_versions[q], "check_sentences")),
                json_number_value(json_object_get(ort_versions[q], "cosine_min")),
                json_number_value(json_object_get(ort_versions[q], "cosine_mean")));
    static const char *anchor_names[ANCHORS] = {"sentence-transformers", "onnxruntime fp32",
                                                "onnxruntime int8"};
    int shown[ANCHORS];
    for (int k = 0; k < ANCHORS; k++) {
        shown[k] = 0;
        for (int i = 0; i < ncells; i++)
            shown[k] |= cells[i].anchor_sent_s[k] > 0;
    }
    char table[16384];
    size_t tp = 0;
    tp += (size_t)snprintf(table + tp, sizeof table - tp,
                           "| batch | tokens | scrimp sentences/s | scrimp tokens/s |");
    for (int k = 0; k < ANCHORS; k++)
        if (shown[k] || k == ANCHOR_ST)
            tp += (size_t)snprintf(table + tp, sizeof table - tp, " %s sentences/s | scrimp ÷ %s |",
                                   k == ANCHOR_ST && !shown[k] ? "anchor" : anchor_names[k],
                                   k == ANCHOR_ST && !shown[k] ? "anchor" : anchor_names[k]);
    tp += (size_t)snprintf(table + tp, sizeof table - tp,
                           " scrimp model only, sentences/s |\n|---:|---:|---:|---:|");
    for (int k = 0; k < ANCHORS; k++)
        if (shown[k] || k == ANCHOR_ST)
            tp += (size_t)snprintf(table + tp, sizeof table - tp, "---:|---:|");
    tp += (size_t)snprintf(table + tp, sizeof table - tp, "---:|\n");
    for (int i = 0; i < ncells && tp < sizeof table; i++) {
        tp += (size_t)snprintf(table + tp, sizeof table - tp, "| %d | %d | %.1f | %.0f |",
                               cells[i].batch, cells[i].length, cells[i].sent_s, cells[i].tok_s);
        for (int k = 0; k < ANCHORS && tp < sizeof table; k++) {
            if (!shown[k] && k != ANCHOR_ST)
                continue;
            double r = cells[i].anchor_sent_s[k];
            if (r > 0)
                tp += (size_t)snprintf(table + tp, sizeof table - tp, " %.1f | %.2f× |", r,
                                       cells[i].sent_s / r);
            else
                tp += (size_t)snprintf(table + tp, sizeof table - tp, " – | – |");
        }
        if (tp < sizeof table)
            tp += (size_t)snprintf(table + tp, sizeof table - tp, " %.1f |\n",
                                   cells[i].fwd_sent_s);
    }
    printf("%s", table);
    if (out_path) {
        FILE *f = fopen(out_path, "w");
        if (!f) {
            fprintf(stderr, "bench_encoder: cannot write %s\n", out_path);
            return 1;
        }
        fprintf(f, "# Encoder benchmark: all-MiniLM-L6-v2, %s\n\n", device);
        fprintf(f, "- machine: %s, %ld cores online\n- date: %s\n- command: `%s`\n"
                   "- scrimp: backend %s, precision %s, %d threads, model `%s`\n- anchor: %s\n\n",
                cpu, sysconf(_SC_NPROCESSORS_ONLN), date, cmdline, device,
                sc_encoder_backend(enc) == SC_BACKEND_CUDA
                    ? "fp16"
                    : sc_precision_name(sc_encoder_precision(enc)),
                opts.threads, opts.model_dir, anchor_desc);
        fprintf(f, "%s\n", table);
        fprintf(f, "Each cell embeds `batch` texts of exactly `tokens` WordPiece tokens ([CLS] and "
                   "[SEP] included) from text to normalised vector (tokenisation included), "
                   "repeated for at least %g s after one warm-up call; the anchor encodes the same "
                   "texts with `model.encode(texts, batch_size=batch)` under the same rule, in the "
                   "same invocation, with the same thread count. The onnxruntime anchors "
                   "(`--onnx-python`, bench/anchor_onnx.py) run an ONNX graph of the same "
                   "weights, built from scrimp's model folder, tokenised by HuggingFace "
                   "`tokenizers`, fp32 and after onnxruntime's dynamic quantisation (QInt8 per "
                   "channel), also text to vector. The last column times the "
                   "same batch already tokenised (`sc_encoder_embed_ids`): the model alone.\n",
                min_s);
        fclose(f);
    }
    json_decref(versions);
    json_decref(ort_versions[0]);
    json_decref(ort_versions[1]);
    sc_encoder_free(enc);
    return 0;
}
