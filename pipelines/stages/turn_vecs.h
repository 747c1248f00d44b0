/* turn_vecs.h - the relevance vectors of conversation turns that pruning has embedded, kept in
 * memory so that the earlier turns a conversation sends again with each new request are not
 * embedded again. Keyed by the turn's text (XXH3 of its bytes and its length) and the token cut
 * of the embedding; bounded (sets of SC_TURN_VECS_WAYS entries, the least recently used of a set
 * replaced). One thread at a time (the optimizer's compute thread). */
#ifndef SC_TURN_VECS_H
#define SC_TURN_VECS_H

#include <stddef.h>
#include <stdint.h>

#define SC_TURN_VECS_WAYS 4

typedef struct sc_turn_vecs sc_turn_vecs_t;

/* A store of at least entries vectors of dim floats (entries rounded up to a power-of-two
 * number of sets); NULL when out of memory or entries is 0. */
sc_turn_vecs_t *sc_turn_vecs_new(size_t entries, int dim);
void sc_turn_vecs_free(sc_turn_vecs_t *tv); /* NULL ok */

/* The vector of text[0..len) embedded with its first max_tokens tokens, or NULL; valid until the
 * next sc_turn_vecs_put. */
const float *sc_turn_vecs_get(sc_turn_vecs_t *tv, const char *text, size_t len, int max_tokens);

/* Keep vec (dim floats) for text[0..len) and max_tokens, replacing the set's least recently used
 * entry when the set is full. */
void sc_turn_vecs_put(sc_turn_vecs_t *tv, const char *text, size_t len, int max_tokens,
                      const float *vec);

/* Lookups that found a vector, and that did not, since sc_turn_vecs_new. */
void sc_turn_vecs_counts(const sc_turn_vecs_t *tv, uint64_t *hits, uint64_t *misses);

#endif
