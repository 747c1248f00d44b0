/* guards.h - the checks that stop a semantic-cache candidate above the similarity threshold from
 * answering a prompt that only looks alike: different numbers, quoted strings, identifiers
 * (emails, URLs, ids), negation or capitalised names; a band just above the threshold gets
 * stricter checks, among them swapped order around a relation word and antonyms. */
#ifndef SC_GUARDS_H
#define SC_GUARDS_H

#include <stddef.h>
#include <stdint.h>

typedef enum {
    SC_GUARD_OK = 0,
    SC_GUARD_NUMBER,     /* the numbers differ (12 vs 13, 3.5 vs 35, "2024" vs "2025") */
    SC_GUARD_QUOTED,     /* quoted strings differ */
    SC_GUARD_IDENTIFIER, /* emails, URLs, ids (order-7731, ABC-123, hex, paths) differ */
    SC_GUARD_NEGATION,   /* one says not / never / no / without / n't and the other does not */
    SC_GUARD_NAME,       /* capitalised names differ (Alice vs Bob, Paris vs Lyon) */
    SC_GUARD_STRICT,     /* in the strict band: the content words differ too much, or one detail
                            is swapped for another (red / amber light, prod-eu / prod-us) */
    SC_GUARD_ORDER,      /* in the strict band: the same entities in swapped order around a relation
                            word (from A to B / from B to A, X than Y / Y than X, A pays B / B pays A),
                            or a text too long for the order checks */
    SC_GUARD_POLARITY,   /* in the strict band: a word replaced by its antonym (over / under,
                            increasing / decreased, minimize / maximise, buy / sell) */
    SC_GUARD_COUNT       /* number of reasons, for counters */
} sc_guard_reason_t;

/* "number", "quoted", … for logs and metrics; "ok" for SC_GUARD_OK. */
const char *sc_guard_reason_name(sc_guard_reason_t r);

/*
 * May the cached prompt `cached` answer `query`? Both UTF-8 (any case, any punctuation).
 * sim: their cosine similarity; threshold: the cache's; strict_band: the width above the
 * threshold in which SC_GUARD_STRICT checks apply too. Returns SC_GUARD_OK or the first reason
 * found, in the order of the enum. Pure function: thread-safe, no allocation beyond the stack.
 */
sc_guard_reason_t sc_guard_check(const char *query, size_t qlen, const char *cached, size_t clen,
                                 double sim, double threshold, double strict_band);

/* ---- between guards.c and guards_order.c (not for callers) ---- */

/* Words of a text kept for the order checks; a text with more is refused (SC_GUARD_ORDER). */
#define SC_GUARD_ORDER_MAX_WORDS 512
/* Counters of antonym poles per text: two per antonym group (guards_order.c asserts it fits). */
#define SC_GUARD_POLE_SLOTS 192

/* Word kinds of sc_guard_word_t; guards_order.c adds the relation-word kinds above these. */
#define SC_GUARD_KIND_ENTITY 0 /* a content word, a number, an identifier */
#define SC_GUARD_KIND_OTHER  1 /* a function word that is no relation word */
#define SC_GUARD_KIND_ARROW  2 /* ->, =>, → */

/* One word of a text in text order, as the order checks see it. */
typedef struct {
    uint64_t h; /* the hash guards.c compares the word by (stemmed when a content word) */
    uint16_t
        clause;   /* which clause: ',', ';', ':', a sentence end or a line break starts the next */
    uint8_t kind; /* SC_GUARD_KIND_* or a relation-word kind */
} sc_guard_word_t;

/* Kind of the lower-cased word w (SC_GUARD_KIND_ENTITY when content is set and w is no relation
 * word). */
uint8_t sc_guard_word_kind(const char *w, int content);

/* Count w's antonym poles into counts (SC_GUARD_POLE_SLOTS, saturating). */
void sc_guard_pole_count(const char *w, unsigned char *counts);

/* SC_GUARD_ORDER when the same entities stand in swapped order around a relation word in a (na
 * words) and b (nb words), SC_GUARD_POLARITY when a word of one has its antonym in the other
 * (pa, pb: the pole counts), else SC_GUARD_OK. */
sc_guard_reason_t sc_guard_order_check(const sc_guard_word_t *a, int na, const sc_guard_word_t *b,
                                       int nb, const unsigned char *pa, const unsigned char *pb);

#endif
