/* classify.c - `scrimp classify`: the router on stdin lines (plain prompts or request JSON),
 * one {"i","score","tier"} JSON object per line on stdout. */
#include "models/train/train_router.h"

#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "host/core/util.h"
#include "models/encoder.h"
#include "models/router.h"
#include "models/train/train_internal.h"

#define TR_CLASSIFY_MAX_LINE  (1u << 20)
#define TR_CLASSIFY_BATCH     256
#define TR_CLASSIFY_MAX_BATCH 65536

/* ---- classify ---- */

static void classify_usage(FILE *f)
{
    fprintf(
        f,
        "usage: scrimp classify [--router FILE] [--model DIR] [--tiers a,b,c] [--batch N]\n"
        "                       [--threads N] [--quality-target Q [--lite-share S]] < lines\n"
        "  one {\"i\":N,\"score\":S,\"tier\":\"T\"} per input line (default router %s);\n"
        "  a line is a prompt, {\"prompt\": P[, \"model\": M]}, or a scrimp request (its last\n"
        "  user turn is scored; a pinned \"model\" is reported as pinned);\n"
        "  a prompt outside the router's domain gets the strongest tier (as scrimp serve's\n"
        "  default router.outside_tier) and \"in_domain\":false;\n"
        "  --quality-target: thresholds for that target (as serve's router.quality_target)\n"
        "  instead of the file's\n",
        TR_DEFAULT_OUT);
}

typedef struct {
    char *text; /* owned */
    size_t len;
    char pinned[SC_ROUTER_TIER_NAME * 2]; /* "" unless the line pins a model */
} cl_line_t;

/* Read one line (without the newline). 1 a line, 0 end, -1 too long or read error. */
static int cl_read_line(FILE *in, char *buf, size_t max, size_t *len)
{
    size_t n = 0;
    int c;
    while ((c = getc_unlocked(in)) != EOF && c != '\n') {
        if (n == max)
            return -1;
        buf[n++] = (char)c;
    }
    if (ferror(in))
        return -1;
    if (c == EOF && n == 0)
        return 0;
    *len = n;
    return 1;
}

/* A request line {"prompt": …, "model": …}: take its prompt, note a pinned model. */
static int cl_prepare(cl_line_t *l, const char *buf, size_t len)
{
    l->pinned[0] = '\0';
    json_t *o = len && buf[0] == '{' ? json_loadb(buf, len, 0, NULL) : NULL;          /* new */
    const json_t *p = json_object_get(o, "prompt"), *m = json_object_get(o, "model"); /* borrowed */
    const json_t *msgs = json_object_get(o, "messages");
    for (size_t i = json_array_size(msgs); !p && i-- > 0;) { /* a request: its last user turn */
        const json_t *t = json_array_get(msgs, i);
        if (json_is_string(json_object_get(t, "role")) &&
            strcmp(json_string_value(json_object_get(t, "role")), "user") == 0)
            p = json_object_get(t, "content");
    }
    if (json_is_string(p)) {
        l->len = json_string_length(p);
        l->text = malloc(l->len + 1);
        if (l->text)
            memcpy(l->text, json_string_value(p), l->len + 1);
        if (json_is_string(m) && strcmp(json_string_value(m), "auto") != 0)
            sc_strlcpy(l->pinned, json_string_value(m), sizeof l->pinned);
    } else {
        l->len = len;
        l->text = malloc(len + 1);
        if (l->text) {
            memcpy(l->text, buf, len);
            l->text[len] = '\0';
        }
    }
    json_decref(o);
    return l->text ? 0 : -1;
}

int sc_classify_cli(int argc, char **argv)
{
    static const struct option opts[] = {{"router", required_argument, NULL, 'r'},
                                         {"model", required_argument, NULL, 'm'},
                                         {"tiers", required_argument, NULL, 'T'},
                                         {"batch", required_argument, NULL, 'n'},
                                         {"threads", required_argument, NULL, 't'},
                                         {"quality-target", required_argument, NULL, 'q'},
                                         {"lite-share", required_argument, NULL, 'l'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    const char *router_path = TR_DEFAULT_OUT;
    double quality_target = 0.0, lite_share = 0.5; /* 0: the file's thresholds */
    char tierbuf[SC_ROUTER_MAX_TIERS * SC_ROUTER_TIER_NAME] = "";
    const char *tiers[SC_ROUTER_MAX_TIERS];
    int ntiers = 0, opt, batch = TR_CLASSIFY_BATCH;
    double v;
    sc_encoder_opts_t eo;
    sc_encoder_opts_default(&eo);
    const char *env = getenv("SCRIMP_BACKEND");
    if (env && *env && sc_backend_parse(env, &eo.backend) != 0) {
        fprintf(stderr, "scrimp classify: SCRIMP_BACKEND=%s: expected auto, cpu or cuda\n", env);
        return 2;
    }
    optind = 1;
    while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (opt == 'r')
            router_path = optarg;
        else if (opt == 'm')
            eo.model_dir = optarg;
        else if (opt == 'T' && strlen(optarg) < sizeof tierbuf) {
            sc_strlcpy(tierbuf, optarg, sizeof tierbuf);
            ntiers = 0;
            for (char *save = NULL, *t = strtok_r(tierbuf, ",", &save);
                 t && ntiers < SC_ROUTER_MAX_TIERS; t = strtok_r(NULL, ",", &save))
                tiers[ntiers++] = t;
            if (ntiers < 3) {
                fprintf(stderr, "scrimp classify: --tiers needs at least three names\n");
                return 2;
            }
        } else if (opt == 'n' && tr_parse_double(optarg, 1, TR_CLASSIFY_MAX_BATCH, &v) == 0)
            batch = (int)v;
        else if (opt == 't' && tr_parse_double(optarg, 0, 1024, &v) == 0)
            eo.threads = (int)v;
        else if (opt == 'q' && tr_parse_double(optarg, 0, 1, &quality_target) == 0)
            ;
        else if (opt == 'l' && tr_parse_double(optarg, 0, 1, &lite_share) == 0)
            ;
        else if (opt == 'h') {
            classify_usage(stdout);
            return 0;
        } else {
            classify_usage(stderr);
            return 2;
        }
    }
    if (optind < argc) {
        classify_usage(stderr);
        return 2;
    }
    eo.max_batch = batch;
    char err[TR_ERRBUF] = "";
    int rc = 1;
    sc_router_t *r = NULL;
    sc_encoder_t *enc = NULL;
    char *buf = malloc(TR_CLASSIFY_MAX_LINE);
    cl_line_t *lines = calloc((size_t)batch, sizeof *lines);
    const char **texts = malloc(sizeof *texts * (size_t)batch);
    size_t *lens = malloc(sizeof *lens * (size_t)batch),
           *which = malloc(sizeof *which * (size_t)batch);
    float *scores = malloc(sizeof(float) * (size_t)batch);
    unsigned char *in_dom = malloc((size_t)batch);
    size_t n = 0, line_no = 0;
    if (!buf || !lines || !texts || !lens || !which || !scores || !in_dom) {
        fprintf(stderr, "scrimp classify: out of memory\n");
        goto out;
    }
    if (sc_router_load(router_path, &r, err, sizeof err) != SC_OK ||
        sc_encoder_new(&eo, &enc, err, sizeof err) != SC_OK) {
        fprintf(stderr, "scrimp classify: %s\n", err);
        goto out;
    }
    if (quality_target > 0.0 &&
        sc_router_set_quality_target(r, quality_target, lite_share, NULL, NULL) != SC_OK) {
        fprintf(stderr, "scrimp classify: %s has no operating curve for --quality-target\n",
                router_path);
        goto out;
    }
    for (int eof = 0; !eof;) {
        n = 0;
        while (n < (size_t)batch) {
            size_t len = 0;
            int got = cl_read_line(stdin, buf, TR_CLASSIFY_MAX_LINE, &len);
            if (got == 0) {
                eof = 1;
                break;
            }
            if (got < 0 || cl_prepare(&lines[n], buf, len) != 0) {
                fprintf(stderr, "scrimp classify: line %zu: longer than %u bytes or unreadable\n",
                        line_no + n + 1, TR_CLASSIFY_MAX_LINE);
                goto out;
            }
            n++;
        }
        size_t m = 0;
        for (size_t k = 0; k < n; k++)
            if (!lines[k].pinned[0]) {
                texts[m] = lines[k].text;
                lens[m] = lines[k].len;
                which[m++] = k;
            }
        sc_status_t st = m ? sc_router_score_texts(r, enc, texts, lens, m, scores, in_dom) : SC_OK;
        if (st) {
            fprintf(stderr, "scrimp classify: lines %zu..%zu: %s\n", line_no + 1, line_no + n,
                    sc_strerror(st));
            goto out;
        }
        for (size_t k = 0, j = 0; k < n; k++) {
            if (lines[k].pinned[0]) {
                json_t *s = json_string(lines[k].pinned); /* new */
                char *q = s ? json_dumps(s, JSON_ENCODE_ANY) : NULL;
                printf("{\"i\":%zu,\"score\":null,\"tier\":%s,\"pinned\":true}\n", line_no + k,
                       q ? q : "\"\"");
                free(q);
                json_decref(s);
                continue;
            }
            float sc = scores[j];
            int inside = in_dom[j++];
            /* outside the router's domain: the strongest tier (serve's default outside_tier) */
            json_t *s = json_string(inside   ? sc_router_tier(r, sc, ntiers ? tiers : NULL, ntiers)
                                    : ntiers ? tiers[ntiers - 1]
                                             : sc_router_tier(r, INFINITY, NULL, 0));
            char *q = s ? json_dumps(s, JSON_ENCODE_ANY) : NULL;
            printf("{\"i\":%zu,\"score\":%.6f,\"tier\":%s%s}\n", line_no + k, (double)sc,
                   q ? q : "\"\"", inside ? "" : ",\"in_domain\":false");
            free(q);
            json_decref(s);
        }
        for (size_t k = 0; k < n; k++) {
            free(lines[k].text);
            lines[k].text = NULL;
        }
        line_no += n;
        n = 0;
    }
    if (fflush(stdout) != 0) {
        fprintf(stderr, "scrimp classify: writing stdout: %s\n", strerror(errno));
        goto out;
    }
    rc = 0;
out:
    for (size_t k = 0; lines && k < n; k++)
        free(lines[k].text);
    sc_router_free(r);
    sc_encoder_free(enc);
    free(buf), free(lines), free(texts), free(lens), free(which), free(scores), free(in_dom);
    return rc;
}
