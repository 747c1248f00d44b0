/* tokenizer.h - BERT uncased WordPiece (as all-MiniLM-L6-v2's tokenizer.json does it): text
 * cleaning, CJK spacing, NFD + accent stripping + lower case, punctuation splitting, greedy
 * longest-match WordPiece with "##", [UNK], [CLS]/[SEP], truncation. */
#ifndef SC_TOKENIZER_H
#define SC_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>

#include "host/core/status.h"

#define SC_TOKENIZER_MAX_TOKENS 256 /* sentence-transformers' max_seq_length for this model */

typedef struct sc_tokenizer sc_tokenizer_t;

/* Load vocab.txt (one token per line; the line number is the id). A missing, unreadable or
 * malformed file (no [CLS]/[SEP]/[UNK]/[PAD]) is an error naming the file.
 * @remark the caller frees with sc_tokenizer_free(). */
sc_status_t sc_tokenizer_load(const char *vocab_path, sc_tokenizer_t **out, char *errbuf,
                              size_t errlen);
void sc_tokenizer_free(sc_tokenizer_t *tok); /* NULL ok */

/* Tokenize text (len bytes of UTF-8; invalid bytes are treated as U+FFFD and dropped, as the
 * reference does) into ids: [CLS] pieces… [SEP], truncated so the whole is at most max_tokens
 * (2 <= max_tokens). ids must hold max_tokens entries. Returns the number of ids written.
 * Thread-safe for one tokenizer shared by many threads. */
int sc_tokenizer_encode(const sc_tokenizer_t *tok, const char *text, size_t len, int32_t *ids,
                        int max_tokens);

/* Vocabulary access: -1 / NULL when absent. */
int32_t sc_tokenizer_id(const sc_tokenizer_t *tok, const char *token);
const char *sc_tokenizer_token(const sc_tokenizer_t *tok, int32_t id);
int32_t sc_tokenizer_vocab_size(const sc_tokenizer_t *tok);

#endif
