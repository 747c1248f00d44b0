/* prune.c - context pruning: the plan (relevance selection within a token budget) and the bodies
 * of the pruned request and of its summary call; the stage that runs them is prune_stage.c. */
#include "pipelines/stages/prune.h"

#include <ctype.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "host/gemini/gemini.h"
#include "host/core/util.h"

#define SC_PRUNE_MIN_WORD 3 /* shorter letter-only words are not terms */
/* letter-only terms compare on their first bytes ("shipped" ~ "shipping"); terms with digits
 * compare whole */
#define SC_PRUNE_STEM       5
#define SC_PRUNE_TERM_MAX   64 /* longer terms are truncated (still compared) */
#define SC_PRUNE_SEP        "\n\n"
#define SC_PRUNE_MIN_SPREAD 1e-6 /* score std below which the relevance floor is off */

#define SC_PRUNE_SUMMARY_INSTRUCTION                                                               \
    "You maintain a running summary of a conversation between a user and an assistant, so the "    \
    "assistant can continue it without the full transcript. Update the previous summary (if "      \
    "any) with the new turns. Keep every number, amount, date, identifier, name, place, "          \
    "decision and commitment, and every open question or unresolved request, exactly as "          \
    "written. Drop greetings, pleasantries and repetition. Write plain sentences, most "           \
    "important first, no preamble."

void sc_prune_opts_default(sc_prune_opts_t *o)
{
    o->prev_turn_weight = SC_PRUNE_PREV_TURN_WEIGHT;
    o->lexical_weight = SC_PRUNE_LEXICAL_WEIGHT;
    o->reserve_pct = SC_PRUNE_SUMMARY_RESERVE_PCT;
    o->relevance_z = SC_PRUNE_RELEVANCE_Z;
    o->fill_budget = 0;
}

void sc_prune_plan_clear(sc_prune_plan_t *plan)
{
    if (!plan)
        return;
    free(plan->keep);
    free(plan->score);
    memset(plan, 0, sizeof(*plan));
}

static int sc_prune_is_model(const sc_turn_t *t)
{
    return t->role && strcmp(t->role, "model") == 0;
}

void sc_prune_count(const sc_tokens_t *tokens, const char *model, const sc_request_t *req,
                    long *turn_tokens, long *system_tokens)
{
    for (size_t i = 0; i < req->n_turns; i++)
        turn_tokens[i] =
            sc_tokens_estimate(tokens, model, req->turns[i].content, req->turns[i].content_len);
    if (system_tokens)
        *system_tokens =
            req->system ? sc_tokens_estimate(tokens, model, req->system, strlen(req->system)) : 0;
}

/* ---- lexical overlap ---- */

static const char *const sc_prune_stopwords[] = {
    "the",  "and",  "for",   "are",   "but",   "not",   "you",   "your",   "yours",  "all",
    "any",  "can",  "had",   "her",   "was",   "one",   "our",   "out",    "has",    "have",
    "him",  "his",  "how",   "its",   "may",   "new",   "now",   "see",    "two",    "who",
    "did",  "does", "get",   "got",   "let",   "put",   "say",   "she",    "too",    "use",
    "that", "this", "with",  "from",  "they",  "them",  "then",  "than",   "there",  "their",
    "what", "when", "where", "which", "while", "will",  "would", "could",  "should", "about",
    "into", "just", "like",  "some",  "been",  "were",  "also",  "only",   "over",   "such",
    "very", "here", "each",  "more",  "most",  "other", "again", "please", "thanks", "thank",
    "yes",  "okay", "sure",  "know",  "need",  "want",  "tell",  "remind", "me",     "my",
    "mine", "it",   "is",    "be",    "do",    "of",    "to",    "in",     "on",     "at",
    "an",   "or",   "if",    "so",    "we",    "us",    "am",    "as",     "by",
};

static int sc_prune_is_stop(const char *w, size_t n)
{
    for (size_t i = 0; i < SC_ARRAY_LEN(sc_prune_stopwords); i++)
        if (strlen(sc_prune_stopwords[i]) == n && memcmp(sc_prune_stopwords[i], w, n) == 0)
            return 1;
    return 0;
}

/* The next term of text[*pos..len) as a 64-bit hash; 0 at the end. ASCII alphanumeric runs,
 * lower-cased; letter-only words shorter than SC_PRUNE_MIN_WORD or in the stop list are skipped;
 * letter-only words are cut to their stem. */
static uint64_t sc_prune_next_term(const char *text, size_t len, size_t *pos)
{
    size_t i = *pos;
    while (i < len) {
        char w[SC_PRUNE_TERM_MAX];
        size_t n = 0;
        int digits = 0;
        while (i < len && !isalnum((unsigned char)text[i]))
            i++;
        while (i < len && isalnum((unsigned char)text[i])) {
            if (n < sizeof(w))
                w[n++] = (char)tolower((unsigned char)text[i]);
            digits |= isdigit((unsigned char)text[i]) != 0;
            i++;
        }
        if (n == 0)
            break;
        if (!digits && (n < SC_PRUNE_MIN_WORD || sc_prune_is_stop(w, n)))
            continue;
        if (!digits && n > SC_PRUNE_STEM)
            n = SC_PRUNE_STEM;
        uint64_t h = 1469598103934665603ULL; /* FNV-1a */
        for (size_t k = 0; k < n; k++) {
            h ^= (unsigned char)w[k];
            h *= 1099511628211ULL;
        }
        *pos = i;
        return h ? h : 1;
    }
    *pos = len;
    return 0;
}

/* Distinct terms of text into q (at most SC_PRUNE_MAX_QUERY_TERMS); returns how many. */
static int sc_prune_query_terms(const char *text, size_t len, uint64_t *q)
{
    size_t pos = 0;
    int nq = 0;
    uint64_t h;
    while (nq < SC_PRUNE_MAX_QUERY_TERMS && (h = sc_prune_next_term(text, len, &pos)) != 0) {
        int seen = 0;
        for (int k = 0; k < nq; k++)
            seen |= q[k] == h;
        if (!seen)
            q[nq++] = h;
    }
    return nq;
}

/* Bit k set when text holds query term k. */
static uint64_t sc_prune_term_mask(const char *text, size_t len, const uint64_t *q, int nq)
{
    size_t pos = 0;
    uint64_t h, mask = 0;
    while ((h = sc_prune_next_term(text, len, &pos)) != 0)
        for (int k = 0; k < nq; k++)
            if (q[k] == h)
                mask |= 1ULL << k;
    return mask;
}

/* ---- the plan ---- */

typedef struct {
    double score;
    size_t idx;
} sc_prune_rank_t;

static int sc_prune_rank_cmp(const void *a, const void *b)
{
    const sc_prune_rank_t *x = a, *y = b;
    if (x->score != y->score)
        return x->score < y->score ? 1 : -1;
    /* ties: the later turn first (recent context is more likely to matter) */
    return x->idx < y->idx ? 1 : (x->idx > y->idx ? -1 : 0);
}

/* Relevance of middle turns [0, mid) into rank[0..mid): see sc_prune_plan(). */
static sc_status_t sc_prune_score(const sc_request_t *req, const float *vecs, size_t last_user,
                                  size_t mid, const sc_prune_opts_t *o, sc_prune_rank_t *rank)
{
    float q[SC_PRUNE_DIM];
    uint64_t terms[SC_PRUNE_MAX_QUERY_TERMS];
    uint64_t *masks = NULL;
    double idf[SC_PRUNE_MAX_QUERY_TERMS], idf_sum = 0.0;
    int nq = 0;
    size_t n = req->n_turns;

    for (size_t i = 0; i < mid; i++) {
        rank[i].idx = i;
        rank[i].score = 0.0;
    }
    if (vecs) {
        double norm = 0.0;
        for (int d = 0; d < SC_PRUNE_DIM; d++) {
            float v = vecs[last_user * SC_PRUNE_DIM + (size_t)d];
            if (last_user > 0)
                v += o->prev_turn_weight * vecs[(last_user - 1) * SC_PRUNE_DIM + (size_t)d];
            q[d] = v;
            norm += (double)v * v;
        }
        norm = norm > 0 ? 1.0 / sqrt(norm) : 0.0;
        for (size_t i = 0; i < mid; i++) {
            const float *v = vecs + i * SC_PRUNE_DIM;
            double dot = 0.0;
            for (int d = 0; d < SC_PRUNE_DIM; d++)
                dot += (double)v[d] * q[d];
            rank[i].score = dot * norm;
        }
    }
    if (o->lexical_weight <= 0.0)
        return SC_OK;

    const sc_turn_t *lu = &req->turns[last_user];
    nq = sc_prune_query_terms(lu->content ? lu->content : "", lu->content ? lu->content_len : 0,
                              terms);
    if (nq == 0)
        return SC_OK;
    masks = calloc(n, sizeof(*masks));
    if (!masks)
        return SC_ERR_NOMEM;
    for (size_t i = 0; i < n; i++)
        if (req->turns[i].content)
            masks[i] =
                sc_prune_term_mask(req->turns[i].content, req->turns[i].content_len, terms, nq);
    /* IDF over the conversation's turns: a term in every turn weighs ~0, a rare one ~log n */
    for (int k = 0; k < nq; k++) {
        size_t df = 0;
        for (size_t i = 0; i < n; i++)
            df += (masks[i] >> k) & 1u;
        idf[k] = log((double)(n + 1) / (double)(df + 1));
        idf_sum += idf[k];
    }
    if (idf_sum > 0.0) {
        for (size_t i = 0; i < mid; i++) {
            double s = 0.0;
            for (int k = 0; k < nq; k++)
                if ((masks[i] >> k) & 1u)
                    s += idf[k];
            rank[i].score += o->lexical_weight * s / idf_sum;
        }
    }
    free(masks);
    return SC_OK;
}

sc_status_t sc_prune_plan_opts(const sc_request_t *req, const long *turn_tokens, long system_tokens,
                               const float *turn_vecs, long budget, int keep_last,
                               const sc_prune_opts_t *opts, sc_prune_plan_t *plan)
{
    sc_prune_opts_t defaults;
    sc_prune_rank_t *rank = NULL;
    sc_status_t st = SC_OK;
    size_t n, last_user, prot, i;
    long protected_tokens, avail;
    double mean = 0.0, var = 0.0, min_score;

    if (!plan)
        return SC_ERR_INVALID_ARG;
    memset(plan, 0, sizeof(*plan));
    if (!req || !turn_tokens || req->n_turns == 0 || budget <= 0 || keep_last < 0 ||
        system_tokens < 0)
        return SC_ERR_INVALID_ARG;
    if (!opts) {
        sc_prune_opts_default(&defaults);
        opts = &defaults;
    }
    n = req->n_turns;
    last_user = n;
    for (i = n; i-- > 0;)
        if (!sc_prune_is_model(&req->turns[i])) {
            last_user = i;
            break;
        }
    if (last_user == n)
        return SC_ERR_INVALID_ARG;

    plan->n_turns = n;
    plan->keep = malloc(n);
    if (!plan->keep)
        return SC_ERR_NOMEM;
    memset(plan->keep, 1, n);
    plan->original_tokens = system_tokens;
    for (i = 0; i < n; i++)
        plan->original_tokens += turn_tokens[i] > 0 ? turn_tokens[i] : 0;
    plan->kept_tokens = plan->original_tokens;
    plan->n_kept = n;
    prot = (size_t)keep_last < n ? n - (size_t)keep_last : 0;
    if (prot > last_user)
        prot = last_user;
    plan->protected_from = prot;
    if (plan->original_tokens <= budget)
        return SC_OK;

    protected_tokens = system_tokens;
    for (i = prot; i < n; i++)
        protected_tokens += turn_tokens[i] > 0 ? turn_tokens[i] : 0;
    if (prot == 0) {
        plan->over_budget = 1; /* nothing may be dropped */
        return SC_OK;
    }
    plan->summary_reserve = budget * opts->reserve_pct / 100;
    plan->summary_max_tokens = plan->summary_reserve < SC_PRUNE_SUMMARY_MAX_TOKENS
                                   ? plan->summary_reserve
                                   : SC_PRUNE_SUMMARY_MAX_TOKENS;
    avail = budget - plan->summary_reserve - protected_tokens;
    if (avail < 0) {
        plan->over_budget = 1;
        avail = 0;
    }

    memset(plan->keep, 0, prot);
    rank = malloc(prot * sizeof(*rank));
    if (!rank) {
        st = SC_ERR_NOMEM;
        goto out;
    }
    st = sc_prune_score(req, turn_vecs, last_user, prot, opts, rank);
    if (st != SC_OK)
        goto out;
    plan->score = calloc(n, sizeof(*plan->score));
    if (!plan->score) {
        st = SC_ERR_NOMEM;
        goto out;
    }
    for (i = 0; i < prot; i++) {
        plan->score[i] = (float)rank[i].score;
        mean += rank[i].score;
    }
    mean /= (double)prot;
    for (i = 0; i < prot; i++)
        var += (rank[i].score - mean) * (rank[i].score - mean);
    /* no spread (no relevance signal at all): no floor, the newest turns win the ties */
    min_score = opts->fill_budget || sqrt(var / (double)prot) < SC_PRUNE_MIN_SPREAD
                    ? -INFINITY
                    : mean + opts->relevance_z * sqrt(var / (double)prot);
    qsort(rank, prot, sizeof(*rank), sc_prune_rank_cmp);

    for (size_t r = 0; r < prot; r++) {
        size_t k = rank[r].idx;
        long tk = turn_tokens[k] > 0 ? turn_tokens[k] : 0;
        if (rank[r].score < min_score)
            break; /* sorted: the rest are below the floor too */
        if (plan->keep[k])
            continue; /* pulled in with its answer */
        if (sc_prune_is_model(&req->turns[k]) && k > 0 && !plan->keep[k - 1] &&
            !sc_prune_is_model(&req->turns[k - 1])) {
            long tq = turn_tokens[k - 1] > 0 ? turn_tokens[k - 1] : 0;
            if (tk + tq <= avail) {
                plan->keep[k - 1] = plan->keep[k] = 1;
                avail -= tk + tq;
                continue;
            }
        }
        if (tk <= avail) {
            plan->keep[k] = 1;
            avail -= tk;
        }
    }

    plan->kept_tokens = system_tokens;
    plan->n_kept = plan->n_dropped = 0;
    for (i = 0; i < n; i++) {
        if (plan->keep[i]) {
            plan->kept_tokens += turn_tokens[i] > 0 ? turn_tokens[i] : 0;
            plan->n_kept++;
            continue;
        }
        if (plan->n_dropped++ == 0)
            plan->first_dropped = i;
        plan->last_dropped = i;
    }
    plan->pruned = plan->n_dropped > 0;
    if (plan->pruned) {
        plan->summary_to = plan->last_dropped + 1;
    } else {
        plan->summary_reserve = plan->summary_max_tokens = 0;
    }
    plan->pruned_tokens = plan->original_tokens - plan->kept_tokens;

out:
    free(rank);
    if (st != SC_OK)
        sc_prune_plan_clear(plan);
    return st;
}

sc_status_t sc_prune_plan(const sc_request_t *req, const long *turn_tokens, long system_tokens,
                          const float *turn_vecs, long budget, int keep_last, sc_prune_plan_t *plan)
{
    return sc_prune_plan_opts(req, turn_tokens, system_tokens, turn_vecs, budget, keep_last, NULL,
                              plan);
}

/* ---- the pruned body ---- */

/* Append one content {role, text[0..len)} to contents. 0 or -1. */
static int sc_prune_append(json_t *contents, const char *role, const char *text, size_t len)
{
    json_t *c = sc_gemini_content_new(role, text, len); /* new; stolen by the array */
    return c && json_array_append_new(contents, c) == 0 ? 0 : -1;
}

char *sc_prune_body(const sc_request_t *req, const sc_prune_plan_t *plan, const char *summary,
                    size_t *len)
{
    json_t *contents = NULL;
    char *scratch = NULL, *out = NULL;
    size_t cap, used = 0, group = 0;
    const char *group_role = NULL;
    size_t sum_len = summary ? strlen(summary) : 0;

    if (!req || !plan)
        return NULL;
    if (!plan->pruned || !plan->keep || plan->n_turns != req->n_turns)
        return sc_gemini_body_from_request(req, len);

    /* one scratch buffer, sized for everything: merged groups are written into it in turn */
    cap = sizeof(SC_PRUNE_SUMMARY_PREFIX) + sum_len + sizeof(SC_PRUNE_OMITTED_TEXT) + 1;
    for (size_t i = 0; i < req->n_turns; i++)
        if (plan->keep[i])
            cap += req->turns[i].content_len + sizeof(SC_PRUNE_SEP);
    scratch = malloc(cap);
    contents = json_array(); /* new; stolen by sc_gemini_body_with_contents */
    if (!scratch || !contents)
        goto out;

    if (sum_len > 0) {
        memcpy(scratch, SC_PRUNE_SUMMARY_PREFIX, strlen(SC_PRUNE_SUMMARY_PREFIX));
        memcpy(scratch + strlen(SC_PRUNE_SUMMARY_PREFIX), summary, sum_len);
        group = strlen(SC_PRUNE_SUMMARY_PREFIX) + sum_len;
        group_role = "user";
    } else {
        size_t first = 0;
        while (first < req->n_turns && !plan->keep[first])
            first++;
        if (first < req->n_turns && sc_prune_is_model(&req->turns[first])) {
            group = strlen(SC_PRUNE_OMITTED_TEXT);
            memcpy(scratch, SC_PRUNE_OMITTED_TEXT, group);
            group_role = "user";
        }
    }
    for (size_t i = 0; i < req->n_turns; i++) {
        const sc_turn_t *t = &req->turns[i];
        const char *role = sc_prune_is_model(t) ? "model" : "user";
        if (!plan->keep[i])
            continue;
        if (group_role && strcmp(group_role, role) == 0) {
            memcpy(scratch + used + group, SC_PRUNE_SEP, strlen(SC_PRUNE_SEP));
            group += strlen(SC_PRUNE_SEP);
        } else {
            if (group_role && sc_prune_append(contents, group_role, scratch + used, group) != 0)
                goto out;
            used += group;
            group = 0;
            group_role = role;
        }
        if (t->content_len)
            memcpy(scratch + used + group, t->content, t->content_len);
        group += t->content_len;
    }
    if (group_role && sc_prune_append(contents, group_role, scratch + used, group) != 0)
        goto out;

    out = sc_gemini_body_with_contents(req, contents, len);
    contents = NULL; /* stolen */
out:
    json_decref(contents);
    free(scratch);
    return out;
}

/* ---- the summary call ---- */

/* The length of text cut to at most max bytes without splitting a UTF-8 character. */
static size_t sc_prune_cut(const char *text, size_t len, size_t max)
{
    if (len <= max)
        return len;
    while (max > 0 && ((unsigned char)text[max] & 0xC0) == 0x80)
        max--;
    return max;
}

char *sc_prune_summary_body(const sc_request_t *req, const sc_prune_plan_t *plan,
                            const char *previous_summary, size_t previous_covers, size_t *len)
{
    static const char head_prev[] = "Previous summary:\n";
    static const char head_none[] = "Previous summary: (none)\n";
    static const char head_new[] = "\nNew turns of the conversation:\n";
    static const char tail[] = "\nWrite the updated summary.";
    static const char cut_mark[] = " [...]";
    static const char user_tag[] = "User: ", model_tag[] = "Assistant: ";
    size_t prev_len = previous_summary ? strlen(previous_summary) : 0;
    json_t *root = NULL;
    char *text = NULL, *out = NULL;
    size_t cap, used = 0;

    if (!req || !plan || !plan->pruned || plan->summary_to > req->n_turns ||
        previous_covers >= plan->summary_to)
        return NULL;

    cap = sizeof(head_prev) + sizeof(head_none) + prev_len + sizeof(head_new) + sizeof(tail);
    for (size_t i = previous_covers; i < plan->summary_to; i++)
        cap += sizeof(model_tag) + sizeof(cut_mark) + 1 +
               sc_prune_cut(req->turns[i].content, req->turns[i].content_len,
                            SC_PRUNE_SUMMARY_TURN_BYTES);
    text = malloc(cap);
    if (!text)
        goto out;
#define SC_PRUNE_PUT(p, n)                                                                         \
    do {                                                                                           \
        memcpy(text + used, (p), (n));                                                             \
        used += (n);                                                                               \
    } while (0)
    if (prev_len) {
        SC_PRUNE_PUT(head_prev, strlen(head_prev));
        SC_PRUNE_PUT(previous_summary, prev_len);
        SC_PRUNE_PUT("\n", 1);
    } else {
        SC_PRUNE_PUT(head_none, strlen(head_none));
    }
    SC_PRUNE_PUT(head_new, strlen(head_new));
    for (size_t i = previous_covers; i < plan->summary_to; i++) {
        const sc_turn_t *t = &req->turns[i];
        size_t c = sc_prune_cut(t->content, t->content_len, SC_PRUNE_SUMMARY_TURN_BYTES);
        if (sc_prune_is_model(t))
            SC_PRUNE_PUT(model_tag, strlen(model_tag));
        else
            SC_PRUNE_PUT(user_tag, strlen(user_tag));
        if (c)
            SC_PRUNE_PUT(t->content, c);
        if (c < t->content_len)
            SC_PRUNE_PUT(cut_mark, strlen(cut_mark));
        SC_PRUNE_PUT("\n", 1);
    }
    SC_PRUNE_PUT(tail, strlen(tail));
#undef SC_PRUNE_PUT

    /* new reference, released at out */
    root = json_pack("{s:{s:[{s:s}]}, s:[{s:s, s:[{s:s%}]}], s:{s:f, s:I}}", "systemInstruction",
                     "parts", "text", SC_PRUNE_SUMMARY_INSTRUCTION, "contents", "role", "user",
                     "parts", "text", text, used, "generationConfig", "temperature", 0.0,
                     "maxOutputTokens",
                     (json_int_t)(plan->summary_max_tokens > 0 ? plan->summary_max_tokens
                                                               : SC_PRUNE_SUMMARY_MAX_TOKENS));
    if (!root)
        goto out;
    out = json_dumps(root, JSON_COMPACT | JSON_REAL_PRECISION(15));
    if (out && len)
        *len = strlen(out);
out:
    json_decref(root);
    free(text);
    return out;
}
