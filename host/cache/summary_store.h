/* summary_store.h - conversation summaries (context pruning, DESIGN §1) kept durably in LMDB per
 * tenant + conversation_id, with the prefix of turns each covers and a hash of those turns. */
#ifndef SC_SUMMARY_STORE_H
#define SC_SUMMARY_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "host/core/message.h"
#include "host/core/status.h"

#define SC_SUMMARY_MAX_BYTES   (64 * 1024)   /* longest summary text stored */
#define SC_SUMMARY_KEY_MAX     511           /* tenant + NUL + conversation_id (LMDB's key max) */
#define SC_SUMMARY_DEFAULT_MAP (256UL << 20) /* default LMDB map size: 256 MiB */

typedef struct sc_summary_store sc_summary_store_t;

/* One stored summary. */
typedef struct {
    char *text; /* owned (sc_summary_clear), NUL-terminated */
    size_t text_len;
    size_t n_turns; /* the summary covers the conversation's turns [0, n_turns) */
    uint64_t hash;  /* sc_summary_hash_turns() of those turns */
} sc_summary_t;

void sc_summary_clear(sc_summary_t *s); /* frees text, zeroes; NULL ok */

/* XXH3 over role and content of turns [0, n) (lengths included, so boundaries count). */
uint64_t sc_summary_hash_turns(const sc_turn_t *turns, size_t n);

/*
 * Open (creating the directory when missing) the store at path. map_bytes: the LMDB map size
 * (0 = SC_SUMMARY_DEFAULT_MAP), which bounds the store; a put into a full map fails with
 * SC_ERR_FULL. Writes are durable (each put commits with fsync).
 * @remark the caller closes with sc_summary_store_close(). SC_ERR_IO with the reason in errbuf.
 */
sc_status_t sc_summary_store_open(const char *path, size_t map_bytes, sc_summary_store_t **out,
                                  char *errbuf, size_t errlen);
void sc_summary_store_close(sc_summary_store_t *st); /* NULL ok */

/* Store (replace) the summary of tenant/conversation_id. text: text_len bytes, at most
 * SC_SUMMARY_MAX_BYTES (SC_ERR_TOO_LARGE otherwise); n_turns and hash as in sc_summary_t.
 * SC_ERR_INVALID_ARG when tenant + conversation_id exceed SC_SUMMARY_KEY_MAX. Thread-safe. */
sc_status_t sc_summary_store_put(sc_summary_store_t *st, const char *tenant,
                                 const char *conversation_id, const char *text, size_t text_len,
                                 size_t n_turns, uint64_t hash);

/* The stored summary as is (SC_ERR_NOT_FOUND when none). On SC_OK *out is filled
 * (@remark the caller frees it with sc_summary_clear()). Thread-safe. */
sc_status_t sc_summary_store_get(sc_summary_store_t *st, const char *tenant,
                                 const char *conversation_id, sc_summary_t *out);

/*
 * The stored summary only when it still applies to this request: it covers no more than the
 * request's n_turns turns and the hash of the request's first out->n_turns turns matches (the
 * history was not edited). SC_ERR_NOT_FOUND otherwise (a stale summary is left for the next put
 * to replace). @remark the caller frees *out with sc_summary_clear().
 */
sc_status_t sc_summary_store_lookup(sc_summary_store_t *st, const char *tenant,
                                    const char *conversation_id, const sc_turn_t *turns,
                                    size_t n_turns, sc_summary_t *out);

/* Remove the summary (SC_OK also when there was none). */
sc_status_t sc_summary_store_del(sc_summary_store_t *st, const char *tenant,
                                 const char *conversation_id);

#endif
