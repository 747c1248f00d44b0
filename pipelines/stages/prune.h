/* prune.h - context pruning (DESIGN §1): plan which turns of a long conversation to send
 * verbatim within a token budget, and build the pruned generateContent body and the body of the
 * cheap-model call that summarises the rest. Pure functions: no I/O, no model calls. */
#ifndef SC_PRUNE_H
#define SC_PRUNE_H

#include <stddef.h>
#include <stdint.h>

#include "host/core/message.h"
#include "host/core/status.h"
#include "host/core/tokens.h"

/*
 * Use, per request whose history may exceed its budget:
 *   1. sc_prune_count() (token estimates) and the turns' embeddings (sc_encoder_embed());
 *      only a HISTORY (the turns) over its budget needs a plan: the system prompt never counts
 *      against the budget (it is accounted for separately, usually prompt-cached);
 *   2. sc_prune_plan(); when !plan.pruned send sc_gemini_body_from_request() as before;
 *   3. sc_summary_store_lookup(tenant, conversation_id, turns, n_turns) -> prev (covers
 *      [0, prev.n_turns)); when prev.n_turns >= plan.summary_to use prev.text, else call the
 *      cheap model with sc_prune_summary_body(req, &plan, prev.text, prev.n_turns) and store the
 *      answer with n_turns = plan.summary_to, hash = sc_summary_hash_turns(turns, summary_to);
 *   4. sc_prune_body(req, &plan, summary) is the request to forward; plan.pruned_tokens goes to
 *      the result's optimizations.pruned_tokens (the summary's own tokens are not subtracted).
 * If the summary call fails, sc_prune_body(req, &plan, NULL) still yields a valid body.
 */
#define SC_PRUNE_DIM                 384 /* embedding width (all-MiniLM-L6-v2) */
#define SC_PRUNE_SUMMARY_RESERVE_PCT 12  /* % of the budget held back for the summary */
/* maxOutputTokens of the summary call (capped by the reserve) */
#define SC_PRUNE_SUMMARY_MAX_TOKENS 400
/* a turn longer than this is cut (at a UTF-8 boundary) in the summary call's input only */
#define SC_PRUNE_SUMMARY_TURN_BYTES 4096
/* weight of the turn before the last user turn in the relevance query, for elliptical follow-ups
 * ("and the second one?"); small, since it also pulls the query towards whatever the last answer
 * was about */
#define SC_PRUNE_PREV_TURN_WEIGHT 0.15f
/* weight of the rare-term overlap in the relevance score */
#define SC_PRUNE_LEXICAL_WEIGHT 0.25
/* distinct terms of the query used for the overlap */
#define SC_PRUNE_MAX_QUERY_TERMS 32
/* a middle turn is a candidate only when its score is at least mean + Z × std of the middle
 * turns' scores */
#define SC_PRUNE_RELEVANCE_Z 1.0
/* after the relevant turns, recency fills the rest: the newest turns, the protected tail
 * included, are kept up to this % of the budget (a window of recent context that keep_last is
 * the minimum of; the budget stays a ceiling, not a target) */
#define SC_PRUNE_RECENT_PCT 10
/* extra score of a middle turn holding identifier-like tokens of the last user turn (share of
 * those tokens it holds × this): above any cosine + overlap, so such a turn ranks first */
#define SC_PRUNE_ID_WEIGHT 1.0
/* the most turns of one conversation embedded for relevance; a longer history embeds the query,
 * the protected tail and the lexically most relevant of the rest (sc_prune_embed_select) */
#define SC_PRUNE_EMBED_MAX 96
/* the WordPiece tokens of a turn embedded for relevance (its start; the lexical score reads it
 * all) */
#define SC_PRUNE_EMBED_TOKENS 32
#define SC_PRUNE_MAX_IDS   16 /* identifier-like tokens of the last user turn that are checked */
#define SC_PRUNE_ID_MAX    64 /* bytes of one identifier-like token (longer ones are skipped) */
/* a checked token whose turn cannot fit is carried verbatim: the sentence around it, at most
 * SC_PRUNE_CARRY_SPAN bytes each side, all excerpts together at most SC_PRUNE_CARRY_MAX bytes */
#define SC_PRUNE_CARRY_SPAN     160
#define SC_PRUNE_CARRY_MAX      1024
#define SC_PRUNE_CARRY_PREFIX   "Verbatim from earlier turns: "
#define SC_PRUNE_SUMMARY_PREFIX "Summary of the earlier conversation: "
#define SC_PRUNE_OMITTED_TEXT   "(Earlier turns of this conversation were omitted.)"

/* Scoring knobs; sc_prune_opts_default() gives the values above. */
typedef struct {
    float prev_turn_weight; /* 0: the query is the last user turn alone */
    double lexical_weight;  /* 0: embeddings only */
    int reserve_pct;        /* summary reserve, % of the budget */
    double relevance_z;     /* the relevance floor, in standard deviations above the mean */
    int fill_budget;        /* 1: no floor, keep middle turns while they fit */
    int recent_pct;         /* recency window, % of the budget (0: none) */
    double id_weight;       /* score bonus for the last turn's identifiers (0: none) */
    int id_guard;           /* 1: every identifier of the last user turn found in a middle turn
                             * reaches the upstream (turn kept, or the token carried) */
} sc_prune_opts_t;

void sc_prune_opts_default(sc_prune_opts_t *o);

/* What to send. keep[i] != 0: turn i goes verbatim. */
typedef struct {
    size_t n_turns;
    unsigned char *keep;   /* owned: n_turns flags; free with sc_prune_plan_clear() */
    float *score;          /* owned: n_turns relevance scores of the middle turns (0 for the
                            * protected ones and when nothing was pruned), for the record */
    int pruned;            /* 0: the prompt fits, nothing changes (all keep[] set) */
    int over_budget;       /* 1: even system + the protected tail exceed the budget (sent anyway:
                            * a turn is never split) */
    size_t protected_from; /* turns [protected_from, n_turns) are always kept */
    size_t n_kept, n_dropped;
    size_t first_dropped, last_dropped; /* dropped turns lie within [first, last]; both 0 when
                                         * none */
    size_t summary_to;        /* the summary covers the conversation prefix [0, summary_to) =
                               * last_dropped + 1 (0 when nothing is dropped) */
    long summary_max_tokens;  /* maxOutputTokens of the summary call (<= the reserve) */
    long summary_reserve;     /* tokens held back in the budget for the summary */
    long original_tokens;     /* system + every turn */
    long kept_tokens;         /* system + kept turns + the carried excerpts (the summary not
                               * counted) */
    long pruned_tokens;       /* original_tokens - kept_tokens: the tokens left out */
    long system_tokens;       /* the system prompt's (sent whole, outside the budget) */
    long history_tokens;      /* every turn: what the budget is compared with */
    long kept_history_tokens; /* kept turns + carried excerpts (kept_tokens - system_tokens) */
    size_t n_relevant;        /* middle turns kept for relevance (pulled-in questions included) */
    size_t n_recent;          /* middle turns kept by the recency window */
    size_t n_id_kept;         /* middle turns kept by the identifier check */
    size_t n_ids_carried;     /* identifiers carried verbatim in carry */
    size_t n_ids_lost;        /* identifiers that neither fitted nor could be carried (0 unless
                               * SC_PRUNE_CARRY_MAX ran out) */
    char *carry;              /* owned, NULL when none: SC_PRUNE_CARRY_PREFIX + the excerpts */
    size_t carry_len;
} sc_prune_plan_t;

/*
 * Plan the pruning of req's history against budget (tokens of the turns).
 *
 * turn_tokens: n_turns estimates (e.g. sc_prune_count()); system_tokens the system prompt's.
 * turn_vecs: n_turns × SC_PRUNE_DIM floats, L2-normalised, or NULL (then relevance is lexical
 * only). budget > 0; keep_last >= 0.
 *
 * Rules:
 * - budget bounds the conversation history only. The system prompt is always sent whole and
 *   never counts against it (it is accounted for in original/kept_tokens, and is usually
 *   prompt-cached at a tenth of the price); a long system prompt cannot starve the history.
 * - When all turns <= budget, nothing changes (pruned = 0).
 * - The last keep_last turns and at least the last user turn (with whatever follows it) are
 *   protected: always kept.
 * - The other ("middle") turns are ranked by relevance to the query: the last user turn's
 *   embedding plus prev_turn_weight × the turn before it, renormalised; score = cosine +
 *   lexical_weight × the share of the query's rare terms (IDF over this conversation, so words
 *   every turn uses count for little) found in the turn. Numbers and identifiers count as terms.
 *   Plus id_weight × the share of the last user turn's identifier-like tokens (sc_prune_ids())
 *   that the turn holds and the protected part does not: a turn holding the very code, number,
 *   name or date the last question names ranks first, however diluted its embedding.
 * - The budget is a ceiling, not a target: only middle turns scoring at least mean +
 *   relevance_z × std of the middle turns' scores are candidates (clearly relevant ones; the
 *   summary carries the rest). With fill_budget, or when all scores are equal, every middle turn
 *   is a candidate (ties: the newest first).
 * - In rank order each candidate is kept when it fits in budget - reserve - protected turns; a
 *   model turn takes its preceding middle user turn with it when both fit (a question stays with
 *   its answer; the question is kept even if below the floor), else it is kept alone when it
 *   fits. A turn that does not fit is skipped and smaller ones after it may still fit. Kept turns
 *   keep their original order. No turn is ever split.
 * - The identifier check (id_guard): every identifier-like token of the last user turn that a
 *   middle turn holds must reach the upstream: in the system prompt, a kept turn, or else the
 *   best-scoring turn holding it is kept when it fits, or else the sentence around the token is
 *   carried verbatim (plan->carry, sent with the summary).
 *   Turns holding such a token are candidates whatever the floor (computed without that bonus).
 * - Then recency fills the rest: the newest middle turns not yet kept, newest first, while the
 *   newest turns (protected tail, and middle turns kept by any rule, included) stay within
 *   recent_pct % of the budget and the turn fits in what is left; it stops at the first that
 *   does not fit.
 * - When something is dropped the body carries a summary of the prefix [0, summary_to).
 *
 * On SC_OK plan is filled (@remark the caller frees plan->keep with sc_prune_plan_clear()).
 * SC_ERR_INVALID_ARG on bad arguments (no turns, no user turn, budget <= 0), SC_ERR_NOMEM.
 */
/*
 * Which turns of req to embed for sc_prune_plan() when at most max may be (embedding every turn
 * of a 20k-token history costs seconds on a CPU): the last user turn and the turn before it (the
 * query), the last keep_last turns, then the middle turns that score best on the lexical part of
 * the relevance (the query's rare terms, IDF over the conversation, as sc_prune_plan() weighs
 * them; the later turn first on ties). embed: n_turns flags, each set to 1 (embed) or 0 (give it
 * a zero vector: it is then ranked by its lexical relevance alone). Returns how many are set;
 * max >= n_turns sets them all. SC_ERR_NOMEM is reported as every flag set.
 */
size_t sc_prune_embed_select(const sc_request_t *req, int keep_last, size_t max,
                             unsigned char *embed);

sc_status_t sc_prune_plan(const sc_request_t *req, const long *turn_tokens, long system_tokens,
                          const float *turn_vecs, long budget, int keep_last,
                          sc_prune_plan_t *plan);

/* The same with explicit scoring knobs (opts NULL: defaults). */
sc_status_t sc_prune_plan_opts(const sc_request_t *req, const long *turn_tokens, long system_tokens,
                               const float *turn_vecs, long budget, int keep_last,
                               const sc_prune_opts_t *opts, sc_prune_plan_t *plan);

void sc_prune_plan_clear(sc_prune_plan_t *plan); /* frees keep, score, carry; NULL ok; reusable */

/*
 * Identifier-like tokens of text[0..len) into ids (at most max, distinct, each NUL-terminated,
 * as written): runs of letters, digits and the inner characters - _ . / : @ that hold a digit
 * and are at least 2 bytes (ORD-1234, AX5400, 2026-03-05, 14:30, 4,250, 12.5; a lone digit is
 * not), e-mail addresses, and capitalised or all-caps words (3+ letters, not a stop
 * word) that do not open a sentence (names, places, months, codes like SKU). Returns how many.
 */
size_t sc_prune_ids(const char *text, size_t len, char (*ids)[SC_PRUNE_ID_MAX], size_t max);

/* 1 when text[0..len) holds token (case-insensitive, not inside a longer alphanumeric run). */
int sc_prune_has_token(const char *text, size_t len, const char *token);

/* Token estimates of req's turns (into turn_tokens: n_turns longs) and system prompt, for
 * model (tokens may be NULL: uncalibrated). */
void sc_prune_count(const sc_tokens_t *tokens, const char *model, const sc_request_t *req,
                    long *turn_tokens, long *system_tokens);

/*
 * The generateContent body (camelCase) of the pruned request: systemInstruction and
 * generationConfig as sc_gemini_body_from_request() writes them; contents = a user turn
 * SC_PRUNE_SUMMARY_PREFIX + summary (when anything was dropped and summary is non-empty), then
 * plan->carry (the verbatim excerpts, when any) in the same user turn; with neither, if the
 * first kept turn is a model turn, a user turn SC_PRUNE_OMITTED_TEXT; then the kept turns
 * in order. Two adjacent turns of the same role (e.g. the summary and a kept user turn, or two
 * user turns whose model turn in between was dropped) are joined into one with a blank line
 * between them, so roles alternate and the contents start with a user turn. With plan->pruned
 * == 0 the body equals sc_gemini_body_from_request()'s.
 * @remark the caller frees the result with free(); NULL on allocation failure or invalid UTF-8.
 */
char *sc_prune_body(const sc_request_t *req, const sc_prune_plan_t *plan, const char *summary,
                    size_t *len);

/*
 * The body of the cheap-model call that writes (or extends) the summary of the prefix
 * [0, plan->summary_to): previous_summary (NULL or "" for none) covers [0, previous_covers), and
 * the turns [previous_covers, summary_to) are appended as a transcript (each cut at
 * SC_PRUNE_SUMMARY_TURN_BYTES). The instruction asks to copy numbers, amounts, codes,
 * identifiers, e-mail addresses, names and dates verbatim (character for character, never
 * rounded, paraphrased or translated), and to keep decisions and open questions; maxOutputTokens =
 * plan->summary_max_tokens, temperature 0. When previous_covers >= summary_to there is nothing new:
 * the caller reuses previous_summary and this returns NULL. @remark the caller frees the result
 * with free(); NULL also on allocation failure.
 */
char *sc_prune_summary_body(const sc_request_t *req, const sc_prune_plan_t *plan,
                            const char *previous_summary, size_t previous_covers, size_t *len);

#endif
