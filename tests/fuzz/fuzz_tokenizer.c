/* fuzz_tokenizer.c - libFuzzer harness: arbitrary bytes through the WordPiece tokenizer of
 * all-MiniLM-L6-v2 (its vocab.txt loaded once), at a truncation length the input picks. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "models/tokenizer.h"
#include "tests/fuzz/fuzz_util.h"

#define FUZZ_ERR_MAX 512
#define FUZZ_VOCAB "models/all-MiniLM-L6-v2/vocab.txt"

static sc_tokenizer_t *tok;
static int32_t cls_id, sep_id, vocab_n;

static void free_tok(void)
{
    sc_tokenizer_free(tok);
    tok = NULL;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    char path[SC_FUZZ_PATH_MAX], err[FUZZ_ERR_MAX];
    const char *root = getenv("SCRIMP_SOURCE_DIR");
    (void)argc;
    (void)argv;
    sc_fuzz_init();
    snprintf(path, sizeof path, "%s/%s", root && root[0] ? root : SC_FUZZ_SOURCE_DIR, FUZZ_VOCAB);
    if (sc_tokenizer_load(path, &tok, err, sizeof err) != SC_OK) {
        fprintf(stderr, "fuzz_tokenizer: %s (scripts/fetch-model fetches the model)\n", err);
        abort();
    }
    atexit(free_tok);
    cls_id = sc_tokenizer_id(tok, "[CLS]");
    sep_id = sc_tokenizer_id(tok, "[SEP]");
    vocab_n = sc_tokenizer_vocab_size(tok);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int32_t ids[SC_TOKENIZER_MAX_TOKENS];
    /* the first byte picks max_tokens (2..SC_TOKENIZER_MAX_TOKENS), the rest is the text */
    int max = SC_TOKENIZER_MAX_TOKENS;
    if (size > 0) {
        max = 2 + data[0] % (SC_TOKENIZER_MAX_TOKENS - 1);
        data++;
        size--;
    }
    /* a copy of exactly size bytes, so that reading past the text is an overflow ASan sees */
    char *text = malloc(size ? size : 1);
    SC_FUZZ_CHECK(text != NULL);
    memcpy(text, data, size);
    int n = sc_tokenizer_encode(tok, text, size, ids, max);
    SC_FUZZ_CHECK(n >= 2 && n <= max);
    SC_FUZZ_CHECK(ids[0] == cls_id && ids[n - 1] == sep_id);
    for (int i = 0; i < n; i++)
        SC_FUZZ_CHECK(ids[i] >= 0 && ids[i] < vocab_n);
    free(text);
    return 0;
}
