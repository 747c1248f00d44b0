/* mt_bench.c - the MT-Bench routing family (open two-turn chat, GPT-4 judge scores 1..10 for the
 * weak and the strong model) into a tr_data_t: one prompt per (question, turn), grouped by
 * question. */
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "host/core/util.h"
#include "models/train/train_internal.h"

#define MT_MAX_QUESTIONS  256
#define MT_MAX_FILE_BYTES (64u << 20)
#define MT_MAX_TEXT       (256u << 10) /* bytes of one routed prompt (turn 2 with its context) */
#define MT_MAX_CONTAM     64
#define MT_SCORE_MIN      1.0
#define MT_SCORE_MAX      10.0
#define MT_CONV_START     "<|The Start of Assistant A's Conversation with User|>"
#define MT_ANSWER         "### Assistant A:\n"
#define MT_NEXT_USER      "\n\n### User:"

typedef struct {
    int id;
    char *turn[2];      /* owned */
    char *answer1;      /* the weak model's first answer, owned (NULL until read) */
    double score[2][2]; /* [turn][0 weak, 1 strong]; < 0 missing */
} mt_question_t;

/* One JSON object per line of buf: fn(object (borrowed), ctx) for each; lines that are not JSON
 * objects are skipped. */
static sc_status_t each_line(char *buf, sc_status_t (*fn)(const json_t *, void *), void *ctx)
{
    sc_status_t st = SC_OK;
    for (char *line = buf; st == SC_OK && line && *line;) {
        char *nl = strchr(line, '\n');
        size_t ll = nl ? (size_t)(nl - line) : strlen(line);
        json_t *o = json_loadb(line, ll, 0, NULL); /* new reference */
        if (json_is_object(o))
            st = fn(o, ctx);
        json_decref(o);
        line = nl ? nl + 1 : NULL;
    }
    return st;
}

typedef struct {
    mt_question_t q[MT_MAX_QUESTIONS];
    int nq;
    uint64_t contam[MT_MAX_CONTAM];
    int ncontam;
} mt_set_t;

static mt_question_t *find_question(mt_set_t *s, int id)
{
    for (int k = 0; k < s->nq; k++)
        if (s->q[k].id == id)
            return &s->q[k];
    return NULL;
}

static sc_status_t on_question(const json_t *o, void *ctx)
{
    mt_set_t *s = ctx;
    const json_t *id = json_object_get(o, "question_id"), *turns = json_object_get(o, "turns");
    if (!json_is_integer(id) || !json_is_array(turns) || json_array_size(turns) < 2)
        return SC_OK;
    if (s->nq == MT_MAX_QUESTIONS)
        return SC_ERR_FULL;
    mt_question_t *q = &s->q[s->nq];
    memset(q, 0, sizeof *q);
    q->id = (int)json_integer_value(id);
    for (int t = 0; t < 2; t++) {
        const json_t *v = json_array_get(turns, (size_t)t); /* borrowed */
        if (!json_is_string(v) || !(q->turn[t] = strdup(json_string_value(v)))) {
            free(q->turn[0]);
            return json_is_string(v) ? SC_ERR_NOMEM : SC_OK;
        }
    }
    for (int t = 0; t < 2; t++)
        q->score[t][0] = q->score[t][1] = -1.0;
    s->nq++;
    return SC_OK;
}

/* The model's first answer in a turn-2 judgement's conversation: after the conversation's first
 * "### Assistant A:" up to the next "### User:" (a reference answer may come before it). */
static char *first_answer(const char *up)
{
    const char *c = strstr(up, MT_CONV_START);
    const char *a = c ? strstr(c, MT_ANSWER) : NULL;
    if (!a)
        return NULL;
    a += strlen(MT_ANSWER);
    while (*a == ' ' || *a == '\n')
        a++;
    const char *e = strstr(a, MT_NEXT_USER);
    return e ? strndup(a, (size_t)(e - a)) : NULL;
}

static sc_status_t on_judgement(const json_t *o, void *ctx)
{
    mt_set_t *s = ctx;
    const json_t *id = json_object_get(o, "question_id"), *model = json_object_get(o, "model");
    const json_t *turn = json_object_get(o, "turn"), *score = json_object_get(o, "score");
    if (!json_is_integer(id) || !json_is_string(model) || !json_is_integer(turn) ||
        !json_is_number(score))
        return SC_OK;
    mt_question_t *q = find_question(s, (int)json_integer_value(id));
    int t = (int)json_integer_value(turn) - 1;
    int strong = strcmp(json_string_value(model), TR_STRONG_COL) == 0;
    if (!q || t < 0 || t > 1 || (!strong && strcmp(json_string_value(model), TR_WEAK_COL) != 0))
        return SC_OK;
    double v = json_number_value(score);
    if (!(v >= MT_SCORE_MIN && v <= MT_SCORE_MAX))
        return SC_OK; /* a judge failure (-1) is no score */
    q->score[t][strong] = v;
    const json_t *up = json_object_get(o, "user_prompt");
    if (t == 1 && !strong && json_is_string(up) && !q->answer1)
        q->answer1 = first_answer(json_string_value(up));
    return SC_OK;
}

static sc_status_t on_contaminated(const json_t *o, void *ctx)
{
    mt_set_t *s = ctx;
    const json_t *v = json_object_get(o, "eval_prompt");
    if (!json_is_string(v))
        return SC_OK;
    if (s->ncontam == MT_MAX_CONTAM)
        return SC_ERR_FULL;
    s->contam[s->ncontam++] = tr_fnv1a64(json_string_value(v), json_string_length(v));
    return SC_OK;
}

static sc_status_t load_jsonl(const char *dir, const char *name, int required, mt_set_t *s,
                              sc_status_t (*fn)(const json_t *, void *), char *err, size_t errlen)
{
    char path[TR_PATH];
    snprintf(path, sizeof path, "%s/mt_bench/%s", dir, name);
    if (access(path, F_OK) != 0)
        return required ? SC_ERR_NOT_FOUND : SC_OK;
    char *buf = NULL;
    size_t len = 0;
    sc_status_t st = tr_read_file(path, MT_MAX_FILE_BYTES, &buf, &len, err, errlen);
    if (st == SC_OK && (st = each_line(buf, fn, s)) != SC_OK)
        snprintf(err, errlen, "%s: %s", path, sc_strerror(st));
    free(buf);
    return st;
}

static int is_contaminated(const mt_set_t *s, const char *text)
{
    uint64_t h = tr_fnv1a64(text, strlen(text));
    for (int k = 0; k < s->ncontam; k++)
        if (s->contam[k] == h)
            return 1;
    return 0;
}

sc_status_t tr_load_mt_bench(tr_data_t *d, const char *dir, char *err, size_t errlen)
{
    mt_set_t *s = calloc(1, sizeof *s);
    char *text = malloc(MT_MAX_TEXT);
    sc_status_t st = SC_ERR_NOMEM;
    size_t added = 0;
    if (!s || !text)
        goto out;
    if ((st = load_jsonl(dir, "question.jsonl", 1, s, on_question, err, errlen)) != SC_OK ||
        (st = load_jsonl(dir, "judgements.jsonl", 1, s, on_judgement, err, errlen)) != SC_OK ||
        (st = load_jsonl(dir, "contaminated_prompts.jsonl", 0, s, on_contaminated, err, errlen)) !=
            SC_OK)
        goto out;
    for (int k = 0; k < s->nq && st == SC_OK; k++) {
        const mt_question_t *q = &s->q[k];
        int complete = q->answer1 != NULL;
        for (int t = 0; t < 2; t++)
            complete &= q->score[t][0] >= 0.0 && q->score[t][1] >= 0.0;
        if (!complete)
            continue;
        if (is_contaminated(s, q->turn[0]) || is_contaminated(s, q->turn[1])) {
            d->dropped += 2; /* the whole question: a split never keeps half of it */
            continue;
        }
        if (d->nsubj == TR_MAX_SUBJECTS) {
            snprintf(err, errlen, "more than %d subjects and questions", TR_MAX_SUBJECTS);
            st = SC_ERR_FULL;
            break;
        }
        char name[32];
        snprintf(name, sizeof name, "mt_bench_q%d", q->id);
        if (!(d->subjects[d->nsubj] = strdup(name))) {
            st = SC_ERR_NOMEM;
            break;
        }
        d->subj_family[d->nsubj] = TR_FAM_MT_BENCH;
        for (int t = 0; t < 2 && st == SC_OK; t++) {
            /* turn 2 arrives with the conversation so far: turn 1 and the (weak) first answer */
            int n = t == 0 ? snprintf(text, MT_MAX_TEXT, "%s", q->turn[0])
                           : snprintf(text, MT_MAX_TEXT, "User: %s\n\nAssistant: %s\n\nUser: %s",
                                      q->turn[0], q->answer1, q->turn[1]);
            size_t len = n < 0 ? 0 : (size_t)n >= MT_MAX_TEXT ? MT_MAX_TEXT - 1 : (size_t)n;
            float wq = (float)((q->score[t][0] - MT_SCORE_MIN) / (MT_SCORE_MAX - MT_SCORE_MIN));
            float sq = (float)((q->score[t][1] - MT_SCORE_MIN) / (MT_SCORE_MAX - MT_SCORE_MIN));
            st = tr_add_item(d, text, len, d->nsubj, TR_FAM_MT_BENCH, wq, sq);
            added += st == SC_OK;
        }
        d->nsubj++;
    }
    if (st == SC_OK && added == 0) {
        snprintf(err, errlen, "%s/mt_bench: no question with both models' scores for both turns",
                 dir);
        st = SC_ERR_INVALID;
    }
out:
    for (int k = 0; s && k < s->nq; k++) {
        free(s->q[k].turn[0]);
        free(s->q[k].turn[1]);
        free(s->q[k].answer1);
    }
    free(s);
    free(text);
    return st;
}
