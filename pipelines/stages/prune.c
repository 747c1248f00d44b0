/* prune.c - context pruning: the plan (relevance selection within a token budget) and the bodies
 * of the pruned request and of its summary call; the stage that runs them is prune_stage.c. */
#include "pipelines/stages/prune.h"

#include <ctype.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

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
    "any) with the new turns. Copy every number, amount, price, percentage, date, time, code, "    \
    "identifier (order, ticket, account, reference, flight, host, port, version), e-mail "         \
    "address, name and place verbatim, character for character: never round, reformat, "           \
    "paraphrase, translate or abbreviate them, and never drop one from the previous summary. "     \
    "Keep every decision and commitment, and every open question or unresolved request. Drop "     \
    "greetings, pleasantries and repetition. Write plain sentences, most important first, no "     \
    "preamble."

void sc_prune_opts_default(sc_prune_opts_t *o)
{
    o->prev_turn_weight = SC_PRUNE_PREV_TURN_WEIGHT;
    o->lexical_weight = SC_PRUNE_LEXICAL_WEIGHT;
    o->reserve_pct = SC_PRUNE_SUMMARY_RESERVE_PCT;
    o->relevance_z = SC_PRUNE_RELEVANCE_Z;
    o->fill_budget = 0;
    o->recent_pct = SC_PRUNE_RECENT_PCT;
    o->id_weight = SC_PRUNE_ID_WEIGHT;
    o->id_guard = 1;
}

void sc_prune_plan_clear(sc_prune_plan_t *plan)
{
    if (!plan)
        return;
    free(plan->keep);
    free(plan->score);
    free(plan->carry);
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

/* ---- identifier-like tokens ---- */

static int sc_prune_id_inner(const char *t, size_t len, size_t i)
{
    char c = t[i];
    if (i + 1 >= len || !isalnum((unsigned char)t[i + 1]))
        return 0; /* never at the end: "Rotterdam." ends before the dot */
    if (c == ',') /* only a thousands separator: 4,250 */
        return i > 0 && isdigit((unsigned char)t[i - 1]) && isdigit((unsigned char)t[i + 1]);
    return c == '-' || c == '_' || c == '.' || c == '/' || c == ':' || c == '@';
}

/* 1 when text[start] opens a sentence: nothing but spaces, quotes or brackets since the text's
 * start or a . ! ? : or line break */
static int sc_prune_sentence_start(const char *text, size_t start)
{
    while (start > 0) {
        unsigned char c = (unsigned char)text[start - 1];
        if (c == '.' || c == '!' || c == '?' || c == ':' || c == '\n')
            return 1;
        if (!isspace(c) && c != '"' && c != '\'' && c != '(' && c != '*')
            return 0;
        start--;
    }
    return 1;
}

size_t sc_prune_ids(const char *text, size_t len, char (*ids)[SC_PRUNE_ID_MAX], size_t max)
{
    size_t n = 0, i = 0;
    if (!text || !ids)
        return 0;
    while (i < len && n < max) {
        size_t start, end;
        int digits = 0, at = 0, dot_after_at = 0, inner = 0, upper = 0, lower_after = 0;
        while (i < len && !isalnum((unsigned char)text[i]))
            i++;
        if (i >= len)
            break;
        start = i;
        while (i < len && (isalnum((unsigned char)text[i]) || sc_prune_id_inner(text, len, i))) {
            unsigned char c = (unsigned char)text[i];
            digits |= isdigit(c) != 0;
            if (c == '@')
                at = 1;
            else if (c == '.' && at)
                dot_after_at = 1;
            inner |= !isalnum(c);
            if (i > start && isupper(c))
                upper = 1;
            if (i > start && islower(c))
                lower_after = 1;
            i++;
        }
        end = i;
        size_t l = end - start;
        int take = 0;
        if (l >= SC_PRUNE_ID_MAX)
            continue;
        if (digits || (at && dot_after_at))
            take = l >= 2;
        else if (isupper((unsigned char)text[start]) && l >= SC_PRUNE_MIN_WORD && !inner &&
                 (lower_after || upper) && !sc_prune_sentence_start(text, start)) {
            char w[SC_PRUNE_ID_MAX];
            for (size_t k = 0; k < l; k++)
                w[k] = (char)tolower((unsigned char)text[start + k]);
            take = !sc_prune_is_stop(w, l);
        }
        if (!take)
            continue;
        int seen = 0;
        for (size_t k = 0; k < n && !seen; k++)
            seen = strlen(ids[k]) == l && strncasecmp(ids[k], text + start, l) == 0;
        if (seen)
            continue;
        memcpy(ids[n], text + start, l);
        ids[n][l] = '\0';
        n++;
    }
    return n;
}

/* ---- the plan ---- */

typedef struct {
    double score; /* what the turns are ranked by */
    double base;  /* cosine + overlap, without the identifier bonus: what the floor compares */
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

/* The lexical part of the relevance of turns [0, upto): the IDF (over the conversation's turns,
 * so a word every turn uses weighs ~0 and a rare one ~log n) of each of the last user turn's
 * terms the turn holds, summed into lex[0..upto); *idf_sum gets the query terms' total (0 when
 * the last user turn has none: lex is then all 0). SC_ERR_NOMEM. */
static sc_status_t sc_prune_lexical(const sc_request_t *req, size_t last_user, size_t upto,
                                    double *lex, double *idf_sum)
{
    uint64_t terms[SC_PRUNE_MAX_QUERY_TERMS];
    double idf[SC_PRUNE_MAX_QUERY_TERMS];
    size_t n = req->n_turns;
    const sc_turn_t *lu = &req->turns[last_user];
    int nq = sc_prune_query_terms(lu->content ? lu->content : "", lu->content ? lu->content_len : 0,
                                  terms);
    *idf_sum = 0.0;
    for (size_t i = 0; i < upto; i++)
        lex[i] = 0.0;
    if (nq == 0)
        return SC_OK;
    uint64_t *masks = calloc(n, sizeof(*masks));
    if (!masks)
        return SC_ERR_NOMEM;
    for (size_t i = 0; i < n; i++)
        if (req->turns[i].content)
            masks[i] =
                sc_prune_term_mask(req->turns[i].content, req->turns[i].content_len, terms, nq);
    for (int k = 0; k < nq; k++) {
        size_t df = 0;
        for (size_t i = 0; i < n; i++)
            df += (masks[i] >> k) & 1u;
        idf[k] = log((double)(n + 1) / (double)(df + 1));
        *idf_sum += idf[k];
    }
    for (size_t i = 0; i < upto; i++)
        for (int k = 0; k < nq; k++)
            if ((masks[i] >> k) & 1u)
                lex[i] += idf[k];
    free(masks);
    return SC_OK;
}

/* Relevance of middle turns [0, mid) into rank[0..mid): see sc_prune_plan(). */
static sc_status_t sc_prune_score(const sc_request_t *req, const float *vecs, size_t last_user,
                                  size_t mid, const sc_prune_opts_t *o, sc_prune_rank_t *rank)
{
    float q[SC_PRUNE_DIM];

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
    double *lex = malloc(mid * sizeof *lex), idf_sum = 0.0;
    if (mid && !lex)
        return SC_ERR_NOMEM;
    sc_status_t st = sc_prune_lexical(req, last_user, mid, lex, &idf_sum);
    if (st == SC_OK && idf_sum > 0.0)
        for (size_t i = 0; i < mid; i++)
            rank[i].score += o->lexical_weight * lex[i] / idf_sum;
    free(lex);
    return st;
}

size_t sc_prune_embed_select(const sc_request_t *req, int keep_last, size_t max,
                             unsigned char *embed)
{
    size_t n = req->n_turns, last_user = n, chosen = 0;
    memset(embed, 1, n);
    if (max >= n)
        return n;
    for (size_t i = n; i-- > 0;)
        if (!sc_prune_is_model(&req->turns[i])) {
            last_user = i;
            break;
        }
    if (last_user == n)
        return n;
    size_t prot = n - (size_t)keep_last < last_user ? n - (size_t)keep_last : last_user;
    if (keep_last > (int)n)
        prot = 0;
    sc_prune_rank_t *rank = malloc(n * sizeof *rank);
    double *lex = malloc(n * sizeof *lex), idf_sum;
    if (!rank || !lex || sc_prune_lexical(req, last_user, prot, lex, &idf_sum) != SC_OK) {
        free(rank);
        free(lex);
        return n;
    }
    memset(embed, 0, n);
    for (size_t i = prot; i < n; i++) /* the protected tail, the last user turn among it */
        chosen += embed[i] = 1;
    if (last_user > 0 && !embed[last_user - 1]) /* the query's second part */
        chosen += embed[last_user - 1] = 1;
    size_t m = 0;
    for (size_t i = 0; i < prot; i++) {
        if (embed[i])
            continue;
        rank[m].idx = i;
        rank[m].score = lex[i];
        m++;
    }
    qsort(rank, m, sizeof *rank, sc_prune_rank_cmp);
    for (size_t k = 0; k < m && chosen < max; k++)
        chosen += embed[rank[k].idx] = 1;
    free(rank);
    free(lex);
    return chosen;
}

/* The offset of token in text[0..len) (case-insensitive, not inside a longer alphanumeric run),
 * or len when absent. */
static size_t sc_prune_find_token(const char *text, size_t len, const char *token)
{
    size_t tl = token ? strlen(token) : 0;
    if (!text || tl == 0 || tl > len)
        return len;
    for (size_t i = 0; i + tl <= len; i++) {
        if (strncasecmp(text + i, token, tl) != 0)
            continue;
        if (i > 0 && isalnum((unsigned char)text[i - 1]))
            continue;
        if (i + tl < len && isalnum((unsigned char)text[i + tl]))
            continue;
        return i;
    }
    return len;
}

int sc_prune_has_token(const char *text, size_t len, const char *token)
{
    return token && token[0] && sc_prune_find_token(text, len, token) < len;
}

static int sc_prune_sentence_end(char c)
{
    return c == '.' || c == '!' || c == '?' || c == '\n';
}

/* Append to plan->carry the sentence of text[0..len) around token (found at pos), at most
 * SC_PRUNE_CARRY_SPAN bytes each side, cut at UTF-8 boundaries. 0, or -1 when it does not fit in
 * SC_PRUNE_CARRY_MAX or on allocation failure. */
static int sc_prune_carry(sc_prune_plan_t *plan, const char *text, size_t len, size_t pos,
                          size_t tl)
{
    static const char sep[] = " / ";
    size_t a = pos, b = pos + tl;
    while (a > 0 && pos - a < SC_PRUNE_CARRY_SPAN && !sc_prune_sentence_end(text[a - 1]))
        a--;
    while (b < len && b - (pos + tl) < SC_PRUNE_CARRY_SPAN && !sc_prune_sentence_end(text[b]))
        b++;
    if (b < len && text[b] != '\n' && sc_prune_sentence_end(text[b]))
        b++; /* the full stop belongs to the sentence */
    while (a < pos && ((unsigned char)text[a] & 0xC0) == 0x80)
        a++;
    while (b < len && b > pos + tl && ((unsigned char)text[b] & 0xC0) == 0x80)
        b--;
    while (a < pos && isspace((unsigned char)text[a]))
        a++;
    size_t el = b - a;
    size_t need = (plan->carry ? strlen(sep) : strlen(SC_PRUNE_CARRY_PREFIX)) + el;
    if (plan->carry_len + need > SC_PRUNE_CARRY_MAX)
        return -1;
    if (!plan->carry) {
        plan->carry = malloc(SC_PRUNE_CARRY_MAX + 1);
        if (!plan->carry)
            return -1;
        memcpy(plan->carry, SC_PRUNE_CARRY_PREFIX, strlen(SC_PRUNE_CARRY_PREFIX));
        plan->carry_len = strlen(SC_PRUNE_CARRY_PREFIX);
    } else {
        memcpy(plan->carry + plan->carry_len, sep, strlen(sep));
        plan->carry_len += strlen(sep);
    }
    memcpy(plan->carry + plan->carry_len, text + a, el);
    plan->carry_len += el;
    plan->carry[plan->carry_len] = '\0';
    return 0;
}

/* The identifiers of the last user turn (into ids, *nid) that reach the upstream only through
 * middle turns [0, mid): those in the system prompt or a protected turn are dropped from the
 * list. masks[i] (mid entries) gets bit k when middle turn i holds id k; df[k] counts them. */
static void sc_prune_open_ids(const sc_request_t *req, size_t last_user, size_t mid,
                              char (*ids)[SC_PRUNE_ID_MAX], size_t *nid, uint32_t *masks,
                              size_t *df)
{
    const sc_turn_t *lu = &req->turns[last_user];
    size_t n = sc_prune_ids(lu->content, lu->content_len, ids, SC_PRUNE_MAX_IDS), m = 0;
    for (size_t k = 0; k < n; k++) {
        int closed = req->system && sc_prune_has_token(req->system, strlen(req->system), ids[k]);
        for (size_t i = mid; i < req->n_turns && !closed; i++)
            closed = i != last_user &&
                     sc_prune_has_token(req->turns[i].content, req->turns[i].content_len, ids[k]);
        if (closed)
            continue;
        if (m != k)
            memcpy(ids[m], ids[k], SC_PRUNE_ID_MAX);
        m++;
    }
    memset(masks, 0, mid * sizeof(*masks));
    for (size_t k = 0; k < m; k++) {
        df[k] = 0;
        for (size_t i = 0; i < mid; i++)
            if (sc_prune_has_token(req->turns[i].content, req->turns[i].content_len, ids[k])) {
                masks[i] |= 1u << k;
                df[k]++;
            }
    }
    *nid = m;
}

static long sc_prune_tok(const long *turn_tokens, size_t i)
{
    return turn_tokens[i] > 0 ? turn_tokens[i] : 0;
}

/* 1 when turn i of a request in Gemini's own shape holds a part with key (e.g. "functionCall"). */
static int sc_prune_turn_has(const sc_request_t *req, size_t i, const char *key)
{
    json_t *c = req->native ? json_array_get(json_object_get(req->native, "contents"), i) : NULL;
    json_t *parts = json_object_get(c, "parts"), *p; /* borrowed */
    size_t k;
    json_array_foreach(parts, k, p)
        if (json_object_get(p, key))
            return 1;
    return 0;
}

/* Tool turns: a functionCall and the functionResponse that answers it are kept or dropped
 * together (the API refuses a response without its call). */
static void sc_prune_keep_tool_pairs(const sc_request_t *req, sc_prune_plan_t *plan)
{
    for (size_t i = 0; req->native && i + 1 < req->n_turns; i++)
        if (plan->keep[i] != plan->keep[i + 1] && sc_prune_turn_has(req, i, "functionCall") &&
            sc_prune_turn_has(req, i + 1, "functionResponse"))
            plan->keep[i] = plan->keep[i + 1] = 1;
}

sc_status_t sc_prune_plan_opts(const sc_request_t *req, const long *turn_tokens, long system_tokens,
                               const float *turn_vecs, long budget, int keep_last,
                               const sc_prune_opts_t *opts, sc_prune_plan_t *plan)
{
    sc_prune_opts_t defaults;
    sc_prune_rank_t *rank = NULL;
    uint32_t *idm = NULL;
    char ids[SC_PRUNE_MAX_IDS][SC_PRUNE_ID_MAX];
    size_t df[SC_PRUNE_MAX_IDS], nid = 0, nid_present = 0;
    sc_status_t st = SC_OK;
    size_t n, last_user, prot, i;
    long protected_tokens, avail, window;
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
    plan->system_tokens = system_tokens;
    for (i = 0; i < n; i++)
        plan->history_tokens += sc_prune_tok(turn_tokens, i);
    plan->original_tokens = system_tokens + plan->history_tokens;
    plan->kept_tokens = plan->original_tokens;
    plan->kept_history_tokens = plan->history_tokens;
    plan->n_kept = n;
    prot = (size_t)keep_last < n ? n - (size_t)keep_last : 0;
    if (prot > last_user)
        prot = last_user;
    /* the current tool chain (from the last user question on: calls and their results) is what
     * the last turn depends on: kept whole */
    if (req->native) {
        size_t q = last_user;
        while (q > 0 && (sc_prune_is_model(&req->turns[q]) ||
                         sc_prune_turn_has(req, q, "functionResponse")))
            q--;
        if (prot > q)
            prot = q;
    }
    plan->protected_from = prot;
    /* the budget is the history's: the system prompt is sent whole and accounted for apart */
    if (plan->history_tokens <= budget)
        return SC_OK;

    protected_tokens = 0;
    for (i = prot; i < n; i++)
        protected_tokens += sc_prune_tok(turn_tokens, i);
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
    idm = calloc(prot, sizeof(*idm));
    plan->score = calloc(n, sizeof(*plan->score));
    if (!rank || !idm || !plan->score) {
        st = SC_ERR_NOMEM;
        goto out;
    }
    st = sc_prune_score(req, turn_vecs, last_user, prot, opts, rank);
    if (st != SC_OK)
        goto out;
    for (i = 0; i < prot; i++) {
        rank[i].base = rank[i].score;
        mean += rank[i].score;
    }
    mean /= (double)prot;
    for (i = 0; i < prot; i++)
        var += (rank[i].score - mean) * (rank[i].score - mean);
    /* no spread (no relevance signal at all): no floor, the newest turns win the ties */
    min_score = opts->fill_budget || sqrt(var / (double)prot) < SC_PRUNE_MIN_SPREAD
                    ? -INFINITY
                    : mean + opts->relevance_z * sqrt(var / (double)prot);

    /* the last question's identifiers that only middle turns hold: a bonus (rarer ids weigh
     * more), and a pass below that makes sure each reaches the upstream */
    if (opts->id_guard || opts->id_weight > 0.0)
        sc_prune_open_ids(req, last_user, prot, ids, &nid, idm, df);
    for (size_t k = 0; k < nid; k++)
        nid_present += df[k] > 0;
    if (opts->id_weight > 0.0 && nid_present > 0)
        for (i = 0; i < prot; i++) {
            double s = 0.0;
            for (size_t k = 0; k < nid; k++)
                if ((idm[i] >> k) & 1u)
                    s += 1.0 / (double)df[k];
            rank[i].score += opts->id_weight * s / (double)nid_present;
        }
    for (i = 0; i < prot; i++)
        plan->score[i] = (float)rank[i].score;
    if (prot) /* rank may be NULL when there is nothing to rank: qsort must not get NULL */
        qsort(rank, prot, sizeof(*rank), sc_prune_rank_cmp);

    /* 1. relevance: clearly relevant turns (and those holding the question's ids), best first */
    for (size_t r = 0; r < prot; r++) {
        size_t k = rank[r].idx;
        long tk = sc_prune_tok(turn_tokens, k);
        if (rank[r].base < min_score && !(opts->id_weight > 0.0 && idm[k]))
            continue;
        if (plan->keep[k])
            continue; /* pulled in with its answer */
        if (sc_prune_is_model(&req->turns[k]) && k > 0 && !plan->keep[k - 1] &&
            !sc_prune_is_model(&req->turns[k - 1])) {
            long tq = sc_prune_tok(turn_tokens, k - 1);
            if (tk + tq <= avail) {
                plan->keep[k - 1] = plan->keep[k] = 1;
                avail -= tk + tq;
                plan->n_relevant += 2;
                continue;
            }
        }
        if (tk <= avail) {
            plan->keep[k] = 1;
            avail -= tk;
            plan->n_relevant++;
        }
    }

    /* 2. the identifier check: each id of the last question held by a middle turn reaches the
     * upstream: already kept, else its best-scoring holder that fits, else carried verbatim */
    for (size_t q = 0; opts->id_guard && q < nid; q++) {
        size_t holder = prot, fits = prot;
        int held = 0;
        if (df[q] == 0)
            continue;
        for (i = 0; i < prot && !held; i++)
            held = plan->keep[i] && ((idm[i] >> q) & 1u);
        if (held)
            continue;
        for (size_t r = 0; r < prot && fits == prot; r++) {
            size_t k = rank[r].idx;
            if (!((idm[k] >> q) & 1u))
                continue;
            if (holder == prot)
                holder = k;
            if (sc_prune_tok(turn_tokens, k) <= avail)
                fits = k;
        }
        if (fits < prot) {
            plan->keep[fits] = 1;
            avail -= sc_prune_tok(turn_tokens, fits);
            plan->n_id_kept++;
            continue;
        }
        const sc_turn_t *t = &req->turns[holder];
        size_t pos = sc_prune_find_token(t->content, t->content_len, ids[q]);
        if (plan->carry && sc_prune_has_token(plan->carry, plan->carry_len, ids[q]))
            plan->n_ids_carried++; /* an excerpt already carried holds it */
        else if (pos < t->content_len &&
                 sc_prune_carry(plan, t->content, t->content_len, pos, strlen(ids[q])) == 0)
            plan->n_ids_carried++;
        else
            plan->n_ids_lost++;
    }

    /* 3. recency fills the rest: the newest turns, the protected tail included, up to
     * recent_pct % of the budget */
    window = budget * opts->recent_pct / 100 - protected_tokens;
    for (i = prot; opts->recent_pct > 0 && i-- > 0;) {
        long tk = sc_prune_tok(turn_tokens, i);
        if (plan->keep[i]) {
            window -= tk;
            if (window < 0)
                break;
            continue;
        }
        if (tk > window || tk > avail)
            break;
        plan->keep[i] = 1;
        window -= tk;
        avail -= tk;
        plan->n_recent++;
    }

    sc_prune_keep_tool_pairs(req, plan);
    plan->kept_history_tokens = plan->carry_len ? (long)(plan->carry_len + 3) / 4 : 0;
    plan->n_kept = plan->n_dropped = 0;
    for (i = 0; i < n; i++) {
        if (plan->keep[i]) {
            plan->kept_history_tokens += sc_prune_tok(turn_tokens, i);
            plan->n_kept++;
            continue;
        }
        if (plan->n_dropped++ == 0)
            plan->first_dropped = i;
        plan->last_dropped = i;
    }
    plan->kept_tokens = system_tokens + plan->kept_history_tokens;
    plan->pruned = plan->n_dropped > 0;
    if (plan->pruned) {
        plan->summary_to = plan->last_dropped + 1;
    } else {
        plan->summary_reserve = plan->summary_max_tokens = 0;
    }
    plan->pruned_tokens = plan->original_tokens - plan->kept_tokens;

out:
    free(rank);
    free(idm);
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

/* sc_prune_body() for a request in Gemini's own shape: the summary and carried excerpts as a
 * first user text turn, then the kept Content objects as they were (every part), consecutive
 * turns of one role merged into one Content. */
static char *sc_prune_body_native(const sc_request_t *req, const sc_prune_plan_t *plan,
                                  const char *summary, size_t *len)
{
    json_t *src = json_object_get(req->native, "contents"); /* borrowed */
    json_t *contents = json_array();                        /* new; stolen below */
    json_t *last = NULL;                                    /* borrowed from contents */
    char *head = NULL;
    size_t hlen = 0, sum_len = summary ? strlen(summary) : 0;
    size_t first = 0;

    if (!contents)
        return NULL;
    while (first < req->n_turns && !plan->keep[first])
        first++;
    /* the first user turn: summary, carried excerpts, or the omission note before a model turn */
    head = malloc(sizeof(SC_PRUNE_SUMMARY_PREFIX) + sum_len + sizeof(SC_PRUNE_SEP) +
                  plan->carry_len + sizeof(SC_PRUNE_OMITTED_TEXT) + 1);
    if (!head)
        goto fail;
    if (sum_len) {
        memcpy(head, SC_PRUNE_SUMMARY_PREFIX, strlen(SC_PRUNE_SUMMARY_PREFIX));
        hlen = strlen(SC_PRUNE_SUMMARY_PREFIX);
        memcpy(head + hlen, summary, sum_len);
        hlen += sum_len;
    }
    if (plan->carry && plan->carry_len) {
        if (hlen) {
            memcpy(head + hlen, SC_PRUNE_SEP, strlen(SC_PRUNE_SEP));
            hlen += strlen(SC_PRUNE_SEP);
        }
        memcpy(head + hlen, plan->carry, plan->carry_len);
        hlen += plan->carry_len;
    }
    if (!hlen && first < req->n_turns && sc_prune_is_model(&req->turns[first])) {
        memcpy(head, SC_PRUNE_OMITTED_TEXT, strlen(SC_PRUNE_OMITTED_TEXT));
        hlen = strlen(SC_PRUNE_OMITTED_TEXT);
    }
    if (hlen) {
        if (sc_prune_append(contents, "user", head, hlen) != 0)
            goto fail;
        last = json_array_get(contents, 0);
    }
    for (size_t i = first; i < req->n_turns; i++) {
        const char *role = sc_prune_is_model(&req->turns[i]) ? "model" : "user";
        json_t *c = json_array_get(src, i);
        if (!plan->keep[i])
            continue;
        json_t *lr = json_object_get(last, "role");
        if (last && json_is_string(lr) && strcmp(json_string_value(lr), role) == 0) {
            if (json_array_extend(json_object_get(last, "parts"), json_object_get(c, "parts")))
                goto fail;
            continue;
        }
        json_t *copy = json_deep_copy(c); /* new; stolen by the array */
        if (!copy || json_object_set_new(copy, "role", json_string(role)) != 0 ||
            json_array_append_new(contents, copy) != 0) {
            json_decref(copy);
            goto fail;
        }
        last = copy;
    }
    free(head);
    return sc_gemini_body_with_contents(req, contents, len);

fail:
    free(head);
    json_decref(contents);
    return NULL;
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
    if (req->native)
        return sc_prune_body_native(req, plan, summary, len);

    /* one scratch buffer, sized for everything: merged groups are written into it in turn */
    cap = sizeof(SC_PRUNE_SUMMARY_PREFIX) + sum_len + sizeof(SC_PRUNE_OMITTED_TEXT) + 1 +
          plan->carry_len + sizeof(SC_PRUNE_SEP);
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
    }
    if (plan->carry && plan->carry_len > 0) { /* the identifiers that would have been lost */
        if (group) {
            memcpy(scratch + group, SC_PRUNE_SEP, strlen(SC_PRUNE_SEP));
            group += strlen(SC_PRUNE_SEP);
        }
        memcpy(scratch + group, plan->carry, plan->carry_len);
        group += plan->carry_len;
        group_role = "user";
    }
    if (!group_role) {
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
