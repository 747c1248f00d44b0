/* guards.h - the checks that stop a semantic-cache candidate above the similarity threshold from
 * answering a prompt that only looks alike: different numbers, quoted strings, identifiers
 * (emails, URLs, ids), negation or capitalised names; a band just above the threshold gets
 * stricter checks. */
#ifndef SC_GUARDS_H
#define SC_GUARDS_H

#include <stddef.h>

typedef enum {
    SC_GUARD_OK = 0,
    SC_GUARD_NUMBER,     /* the numbers differ (12 vs 13, 3.5 vs 35, "2024" vs "2025") */
    SC_GUARD_QUOTED,     /* quoted strings differ */
    SC_GUARD_IDENTIFIER, /* emails, URLs, ids (order-7731, ABC-123, hex, paths) differ */
    SC_GUARD_NEGATION,   /* one says not / never / no / without / n't and the other does not */
    SC_GUARD_NAME,       /* capitalised names differ (Alice vs Bob, Paris vs Lyon) */
    SC_GUARD_STRICT,     /* in the strict band: the content words differ too much, or one detail
                            is swapped for another (red / amber light, prod-eu / prod-us) */
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

#endif
