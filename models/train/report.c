/* report.c - what train-router writes and measures besides the head: router.json (one key per
 * line), the quality/cost SVG, the machine's name for the report, and the CPU scoring speed. */
#include <jansson.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "host/core/util.h"
#include "models/encoder.h"
#include "models/router.h"
#include "models/tokenizer.h"
#include "models/train/train_internal.h"

/* ---- writers ---- */

/* One top-level key per line, each value compact: small diffs, still one JSON document. */
int tr_write_json_lines(const json_t *root, const char *path)
{
    tr_make_parent_dirs(path);
    FILE *f = fopen(path, "w");
    if (!f)
        return -1;
    const char *key;
    json_t *val; /* borrowed */
    size_t k = 0, n = json_object_size(root);
    fputs("{\n", f);
    json_object_foreach((json_t *)root, key, val)
    {
        json_t *jk = json_string(key); /* new */
        char *ks = jk ? json_dumps(jk, JSON_ENCODE_ANY) : NULL;
        char *vs = json_dumps(val, JSON_ENCODE_ANY | JSON_COMPACT | JSON_REAL_PRECISION(9));
        fprintf(f, " %s: %s%s\n", ks ? ks : "\"?\"", vs ? vs : "null", ++k < n ? "," : "");
        free(ks);
        free(vs);
        json_decref(jk);
    }
    fputs("}\n", f);
    return fclose(f) == 0 ? 0 : -1;
}

json_t *tr_json_floats_new(const float *v, size_t n) /* new reference */
{
    json_t *a = json_array();
    for (size_t i = 0; a && i < n; i++)
        json_array_append_new(a, json_real((double)v[i]));
    return a;
}

void tr_machine_name(char *buf, size_t len)
{
    char line[512];
    FILE *f = fopen("/proc/cpuinfo", "r");
    sc_strlcpy(buf, "unknown CPU", len);
    while (f && fgets(line, sizeof line, f)) {
        if (strncmp(line, "model name", 10) == 0) {
            char *c = strchr(line, ':');
            if (c) {
                c += 1 + (c[1] == ' ');
                c[strcspn(c, "\n")] = '\0';
                sc_strlcpy(buf, c, len);
            }
            break;
        }
    }
    if (f)
        fclose(f);
}

/* Quality/cost chart: the router's quality curve, the random-routing line, weak and strong. */
int tr_write_svg(const char *path, const double *quality, double qw, double qs, double apgr)
{
    const double W = 640, H = 420, L = 70, R = 20, T = 40, B = 60;
    double lo = fmin(qw, qs) - 0.02, hi = fmax(qw, qs) + 0.02;
    for (int p = 0; p < TR_CURVE_POINTS; p++) {
        lo = fmin(lo, quality[p] - 0.01);
        hi = fmax(hi, quality[p] + 0.01);
    }
    FILE *f = fopen(path, "w");
    if (!f)
        return -1;
#define SX(c) (L + (c) * (W - L - R))
#define SY(q) (T + (hi - (q)) / (hi - lo) * (H - T - B))
    fprintf(f,
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" height=\"%.0f\" "
            "font-family=\"sans-serif\" font-size=\"12\">\n"
            "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n"
            "<text x=\"%.0f\" y=\"22\" font-size=\"15\">scrimp router on held-out MMLU subjects: "
            "APGR %.3f</text>\n",
            W, H, L, apgr);
    for (int t = 0; t <= 10; t += 2) {
        double c = t / 10.0, q = lo + (hi - lo) * t / 10.0;
        fprintf(f,
                "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#ddd\"/>"
                "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%.1f</text>\n",
                SX(c), SY(lo), SX(c), SY(hi), SX(c), SY(lo) + 16, c);
        fprintf(f,
                "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#ddd\"/>"
                "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">%.3f</text>\n",
                SX(0), SY(q), SX(1), SY(q), SX(0) - 6, SY(q) + 4, q);
    }
    fprintf(f,
            "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"none\" "
            "stroke=\"black\"/>\n"
            "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">cost: share of prompts sent to "
            "the strong model</text>\n"
            "<text x=\"16\" y=\"%.1f\" transform=\"rotate(-90 16 %.1f)\" "
            "text-anchor=\"middle\">quality (accuracy)</text>\n",
            SX(0), SY(hi), SX(1) - SX(0), SY(lo) - SY(hi), SX(0.5), H - 18, SY((lo + hi) / 2),
            SY((lo + hi) / 2));
    fprintf(f,
            "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#999\" "
            "stroke-dasharray=\"6 4\"/>\n",
            SX(0), SY(qw), SX(1), SY(qs));
    fputs("<polyline fill=\"none\" stroke=\"#1a62c6\" stroke-width=\"2.5\" points=\"", f);
    for (int p = 0; p < TR_CURVE_POINTS; p++)
        fprintf(f, "%.1f,%.1f ", SX((double)p / (TR_CURVE_POINTS - 1)), SY(quality[p]));
    fputs("\"/>\n", f);
    fprintf(f,
            "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#c33\"/>"
            "<text x=\"%.1f\" y=\"%.1f\" fill=\"#c33\">weak only %.3f</text>\n"
            "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#393\"/>"
            "<text x=\"%.1f\" y=\"%.1f\" fill=\"#393\" text-anchor=\"end\">strong only "
            "%.3f</text>\n",
            SX(0), SY(qw), SX(0.08), SY(qw), SX(0.09), SY(qw) + 4, qw, SX(0.92), SY(qs), SX(1),
            SY(qs), SX(0.91), SY(qs) + 4, qs);
    fprintf(f,
            "<text x=\"%.1f\" y=\"%.1f\" fill=\"#1a62c6\">router</text>"
            "<text x=\"%.1f\" y=\"%.1f\" fill=\"#999\">random routing (APGR 0.5)</text>\n</svg>\n",
            SX(0.62), SY(hi) + 18, SX(0.62), SY(hi) + 34);
#undef SX
#undef SY
    return fclose(f) == 0 ? 0 : -1;
}

/* ---- speed ---- */

/* CPU scoring speed on held-out prompts in batches of TR_SPEED_BATCH. */
sc_status_t tr_measure_speed(const tr_data_t *d, const size_t *rows, size_t nrows,
                             const sc_router_t *r, sc_encoder_t *enc, tr_speed_t *sp)
{
    const size_t F = SC_ROUTER_NFEATURES, B = TR_SPEED_BATCH;
    size_t m = nrows < B ? nrows : B;
    float *emb = malloc(sizeof(float) * B * SC_EMBED_DIM);
    float *sig = malloc(sizeof(float) * B * SC_ROUTER_NSIGNALS);
    float *scores = malloc(sizeof(float) * B);
    int32_t *ids = malloc(sizeof(int32_t) * SC_ROUTER_COUNT_TOKENS);
    const char **texts = malloc(sizeof *texts * B);
    size_t *lens = malloc(sizeof *lens * B);
    sc_status_t st = SC_ERR_NOMEM;
    if (!emb || !sig || !scores || !ids || !texts || !lens || m == 0)
        goto out;
    for (size_t k = 0; k < m; k++) {
        const tr_item_t *it = &d->items[rows[k]];
        memcpy(emb + k * SC_EMBED_DIM, d->feat + rows[k] * F, sizeof(float) * SC_EMBED_DIM);
        memcpy(sig + k * SC_ROUTER_NSIGNALS, d->feat + rows[k] * F + SC_EMBED_DIM,
               sizeof(float) * SC_ROUTER_NSIGNALS);
        texts[k] = it->text;
        lens[k] = it->len;
    }
    int64_t t0 = sc_now_us();
    for (int rep = 0; rep < TR_SPEED_REPS; rep++)
        if ((st = sc_router_score_batch(r, emb, sig, m, scores)) != SC_OK)
            goto out;
    sp->head_ms = (double)(sc_now_us() - t0) / 1000.0 / TR_SPEED_REPS / (double)m;
    const sc_tokenizer_t *tok = sc_encoder_tokenizer(enc);
    t0 = sc_now_us();
    for (size_t k = 0; k < m; k++) {
        int nt = sc_tokenizer_encode(tok, texts[k], lens[k], ids, SC_ROUTER_COUNT_TOKENS);
        sc_router_signals(texts[k], lens[k], nt, sig + k * SC_ROUTER_NSIGNALS);
    }
    sp->signals_ms = (double)(sc_now_us() - t0) / 1000.0 / (double)m;
    t0 = sc_now_us();
    st = sc_router_score_texts(r, enc, texts, lens, m, scores, NULL);
    sp->embed_head_ms = (double)(sc_now_us() - t0) / 1000.0 / (double)m;
out:
    free(emb);
    free(sig);
    free(scores);
    free(ids);
    free(texts);
    free(lens);
    return st;
}
