/* embed.c - `scrimp embed`: reads lines from stdin in bounded batches, writes their embeddings. */
#include "pipelines/embed.h"

#include <errno.h>
#include <getopt.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "models/encoder.h"

#define EMBED_ERRBUF          1024
#define EMBED_DEFAULT_BATCH   256
#define EMBED_MAX_BATCH       65536
#define EMBED_MAX_THREADS     1024
#define EMBED_MAX_LINE        (1u << 20) /* bytes per input line */
#define EMBED_BATCH_BYTES     (16u << 20) /* a batch is flushed once its text reaches this */

typedef enum { FORMAT_JSONL = 0, FORMAT_F32 } embed_format_t;

/* One batch of input lines: texts point into buf. All owned. */
typedef struct {
    char *buf;       /* EMBED_BATCH_BYTES + EMBED_MAX_LINE bytes */
    size_t used;
    const char **texts; /* [cap] */
    size_t *lens;       /* [cap] */
    size_t n, cap;
    float *out;         /* [cap × SC_EMBED_DIM] */
} batch_t;

static void usage(FILE *f)
{
    fprintf(f, "usage: scrimp embed [--format jsonl|f32] [--model DIR] [--backend auto|cpu|cuda]\n"
               "                    [--precision auto|fp32|bf16|int8] [--batch N] [--threads N]\n"
               "                    < lines\n"
               "  one embedding per input line, in order; env SCRIMP_BACKEND selects the backend\n"
               "  too (--backend wins)\n");
}

static int parse_int(const char *s, int lo, int hi, int *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (*s == '\0' || *end || errno || v < lo || v > hi)
        return -1;
    *out = (int)v;
    return 0;
}

/* Read one line (without its newline) into b->buf at b->used. 1: a line, 0: end of input,
 * -1: the line is longer than EMBED_MAX_LINE, -2: read error. */
static int read_line(FILE *in, batch_t *b, size_t *len)
{
    char *dst = b->buf + b->used;
    size_t n = 0;
    int c;
    while ((c = getc_unlocked(in)) != EOF && c != '\n') {
        if (n == EMBED_MAX_LINE)
            return -1;
        dst[n++] = (char)c;
    }
    if (ferror(in))
        return -2;
    if (c == EOF && n == 0)
        return 0;
    *len = n;
    return 1;
}

static int write_batch(FILE *out, const batch_t *b, size_t first, embed_format_t fmt)
{
    if (fmt == FORMAT_F32)
        return fwrite(b->out, sizeof(float) * SC_EMBED_DIM, b->n, out) == b->n ? 0 : -1;
    for (size_t i = 0; i < b->n; i++) {
        const float *e = b->out + i * SC_EMBED_DIM;
        fprintf(out, "{\"i\":%zu,\"embedding\":[", first + i);
        for (int c = 0; c < SC_EMBED_DIM; c++)
            fprintf(out, c ? ",%.9g" : "%.9g", (double)e[c]);
        fputs("]}\n", out);
    }
    return ferror(out) ? -1 : 0;
}

int sc_embed_cli(int argc, char **argv)
{
    static const struct option opts[] = {{"format", required_argument, NULL, 'f'},
                                         {"model", required_argument, NULL, 'm'},
                                         {"backend", required_argument, NULL, 'b'},
                                         {"batch", required_argument, NULL, 'n'},
                                         {"threads", required_argument, NULL, 't'},
                                         {"precision", required_argument, NULL, 'p'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    int rc = 0, opt, batch_size = EMBED_DEFAULT_BATCH;
    embed_format_t fmt = FORMAT_JSONL;
    char err[EMBED_ERRBUF] = "";
    sc_encoder_t *enc = NULL;
    batch_t b = {0};
    sc_encoder_opts_t eo;
    sc_encoder_opts_default(&eo);
    const char *env = getenv("SCRIMP_BACKEND");
    if (env && *env && sc_backend_parse(env, &eo.backend) != 0) {
        fprintf(stderr, "scrimp embed: SCRIMP_BACKEND=%s: expected auto, cpu or cuda\n", env);
        return 2;
    }
    optind = 1;
    while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (opt == 'f' && strcmp(optarg, "jsonl") == 0)
            fmt = FORMAT_JSONL;
        else if (opt == 'f' && strcmp(optarg, "f32") == 0)
            fmt = FORMAT_F32;
        else if (opt == 'm')
            eo.model_dir = optarg;
        else if (opt == 'b' && sc_backend_parse(optarg, &eo.backend) == 0)
            continue;
        else if (opt == 'p' && sc_precision_parse(optarg, &eo.precision) == 0)
            continue;
        else if (opt == 'n' && parse_int(optarg, 1, EMBED_MAX_BATCH, &batch_size) == 0)
            continue;
        else if (opt == 't' && parse_int(optarg, 0, EMBED_MAX_THREADS, &eo.threads) == 0)
            continue;
        else if (opt == 'h') {
            usage(stdout);
            return 0;
        } else {
            usage(stderr);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "scrimp embed: unexpected argument \"%s\"\n", argv[optind]);
        usage(stderr);
        return 2;
    }
    eo.max_batch = batch_size;

    b.cap = (size_t)batch_size;
    b.buf = malloc(EMBED_BATCH_BYTES + EMBED_MAX_LINE);
    b.texts = malloc(b.cap * sizeof *b.texts);
    b.lens = malloc(b.cap * sizeof *b.lens);
    b.out = malloc(b.cap * SC_EMBED_DIM * sizeof *b.out);
    if (!b.buf || !b.texts || !b.lens || !b.out) {
        fprintf(stderr, "scrimp embed: out of memory\n");
        rc = 1;
        goto out;
    }
    sc_status_t st = sc_encoder_new(&eo, &enc, err, sizeof err);
    if (st) {
        fprintf(stderr, "scrimp embed: %s\n", err);
        rc = 1;
        goto out;
    }
    size_t line_no = 0;
    int eof = 0;
    while (!eof) {
        b.n = 0;
        b.used = 0;
        while (b.n < b.cap && b.used < EMBED_BATCH_BYTES) {
            size_t len = 0;
            int r = read_line(stdin, &b, &len);
            if (r == 0) {
                eof = 1;
                break;
            }
            if (r < 0) {
                if (r == -1)
                    fprintf(stderr, "scrimp embed: stdin line %zu: longer than %u bytes\n",
                            line_no + b.n + 1, EMBED_MAX_LINE);
                else
                    fprintf(stderr, "scrimp embed: reading stdin: %s\n", strerror(errno));
                rc = 1;
                goto out;
            }
            b.texts[b.n] = b.buf + b.used;
            b.lens[b.n] = len;
            b.used += len;
            b.n++;
        }
        if (b.n == 0)
            break;
        st = sc_encoder_embed(enc, b.texts, b.lens, b.n, b.out);
        if (st) {
            fprintf(stderr, "scrimp embed: lines %zu..%zu: %s\n", line_no + 1, line_no + b.n,
                    sc_strerror(st));
            rc = 1;
            goto out;
        }
        if (write_batch(stdout, &b, line_no, fmt) != 0) {
            fprintf(stderr, "scrimp embed: writing stdout: %s\n", strerror(errno));
            rc = 1;
            goto out;
        }
        line_no += b.n;
    }
    if (fflush(stdout) != 0) {
        fprintf(stderr, "scrimp embed: writing stdout: %s\n", strerror(errno));
        rc = 1;
    }
out:
    sc_encoder_free(enc);
    free(b.buf);
    free(b.texts);
    free(b.lens);
    free(b.out);
    return rc;
}
