/* tokenizer.c - BERT uncased WordPiece: vocab hash table, normalisation, splitting, pieces. */
#include "models/tokenizer.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <utf8proc.h>

/* ---- limits ---- */

#define SC_TOK_MAX_VOCAB_BYTES  ((size_t)64 << 20) /* a vocab.txt larger than this is refused */
#define SC_TOK_MAX_VOCAB_TOKENS (1 << 22)          /* ids fit comfortably in int32 */
#define SC_TOK_MAX_WORD_CHARS   100                /* max_input_chars_per_word: longer -> [UNK] */
#define SC_TOK_UTF8_MAX         4                  /* bytes per code point */
#define SC_TOK_WORD_BYTES       (SC_TOK_MAX_WORD_CHARS * SC_TOK_UTF8_MAX)
#define SC_TOK_DECOMP_MAX       32 /* longest canonical decomposition of one code point is 4 */
#define SC_TOK_MAX_ADDED        8  /* special tokens matched verbatim in the raw text */
#define SC_TOK_CONT_PREFIX      "##"
#define SC_TOK_CONT_PREFIX_LEN  2

/* ---- vocabulary ---- */

typedef struct {
    uint32_t hash;
    int32_t id; /* -1: empty slot */
} sc_tok_slot_t;

struct sc_tokenizer {
    char *data;        /* vocab.txt contents, each '\n' replaced by '\0'; owned */
    uint32_t *tok_off; /* n_tokens offsets into data; owned */
    uint32_t *tok_len; /* n_tokens byte lengths; owned */
    int32_t n_tokens;
    sc_tok_slot_t *slots; /* open addressing, linear probing, mask + 1 slots; owned */
    uint32_t mask;
    size_t max_first; /* longest token in bytes: bounds the first-piece search */
    size_t max_cont;  /* longest "##" token without its prefix: bounds later pieces */
    int32_t id_cls, id_sep, id_unk, id_pad;
    /* The reference's added tokens (normalized=false): found verbatim in the raw text, each
     * becomes its id and splits the text there. All start with '['. */
    struct {
        const char *text; /* static string */
        size_t len;
        int32_t id;
    } added[SC_TOK_MAX_ADDED];
    int n_added;
};

#define SC_TOK_FNV_OFFSET 2166136261u
#define SC_TOK_FNV_PRIME  16777619u

static inline uint32_t sc_tok_hash_more(uint32_t h, const uint8_t *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        h ^= s[i];
        h *= SC_TOK_FNV_PRIME;
    }
    return h;
}

/* FNV-1a with a final mix, so that linear probing sees well-spread low bits. */
static inline uint32_t sc_tok_hash_final(uint32_t h)
{
    h ^= h >> 15;
    h *= 0x2c1b3c6du;
    h ^= h >> 12;
    return h;
}

/* Look up prefix (plen bytes, may be 0) followed by s (n bytes); -1 when absent. */
static int32_t sc_tok_find(const sc_tokenizer_t *tok, uint32_t seed, size_t plen, const uint8_t *s,
                           size_t n)
{
    uint32_t h = sc_tok_hash_final(sc_tok_hash_more(seed, s, n));
    for (uint32_t i = h & tok->mask;; i = (i + 1) & tok->mask) {
        const sc_tok_slot_t *sl = &tok->slots[i];
        if (sl->id < 0)
            return -1;
        if (sl->hash != h || tok->tok_len[sl->id] != plen + n)
            continue;
        const char *t = tok->data + tok->tok_off[sl->id];
        if ((plen == 0 || memcmp(t, SC_TOK_CONT_PREFIX, plen) == 0) && memcmp(t + plen, s, n) == 0)
            return sl->id;
    }
}

static uint32_t sc_tok_seed_plain(void)
{
    return SC_TOK_FNV_OFFSET;
}

static uint32_t sc_tok_seed_cont(void)
{
    return sc_tok_hash_more(SC_TOK_FNV_OFFSET, (const uint8_t *)SC_TOK_CONT_PREFIX,
                            SC_TOK_CONT_PREFIX_LEN);
}

/* Insert id unless its token is already present (the first line wins, as a dict would keep one). */
static void sc_tok_insert(sc_tokenizer_t *tok, int32_t id)
{
    const uint8_t *s = (const uint8_t *)tok->data + tok->tok_off[id];
    size_t n = tok->tok_len[id];
    uint32_t h = sc_tok_hash_final(sc_tok_hash_more(SC_TOK_FNV_OFFSET, s, n));
    for (uint32_t i = h & tok->mask;; i = (i + 1) & tok->mask) {
        sc_tok_slot_t *sl = &tok->slots[i];
        if (sl->id < 0) {
            sl->hash = h;
            sl->id = id;
            return;
        }
        if (sl->hash == h && tok->tok_len[sl->id] == n &&
            memcmp(tok->data + tok->tok_off[sl->id], s, n) == 0)
            return;
    }
}

void sc_tokenizer_free(sc_tokenizer_t *tok)
{
    if (!tok)
        return;
    free(tok->data);
    free(tok->tok_off);
    free(tok->tok_len);
    free(tok->slots);
    free(tok);
}

/* Reads the whole file into a new buffer with one spare byte. @remark the caller frees *out. */
static sc_status_t sc_tok_read_file(const char *path, char **out, size_t *out_len, char *errbuf,
                                    size_t errlen)
{
    sc_status_t st = SC_OK;
    char *buf = NULL;
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(errbuf, errlen, "vocab file %s: cannot open: %s", path, strerror(errno));
        st = errno == ENOENT ? SC_ERR_NOT_FOUND : SC_ERR_IO;
        goto out;
    }
    if (fseek(f, 0, SEEK_END) != 0) {
        snprintf(errbuf, errlen, "vocab file %s: cannot seek: %s", path, strerror(errno));
        st = SC_ERR_IO;
        goto out;
    }
    long size = ftell(f);
    if (size < 0 || fseek(f, 0, SEEK_SET) != 0) {
        snprintf(errbuf, errlen, "vocab file %s: cannot size: %s", path, strerror(errno));
        st = SC_ERR_IO;
        goto out;
    }
    if ((size_t)size > SC_TOK_MAX_VOCAB_BYTES) {
        snprintf(errbuf, errlen, "vocab file %s: %ld bytes is over the limit of %zu", path, size,
                 SC_TOK_MAX_VOCAB_BYTES);
        st = SC_ERR_TOO_LARGE;
        goto out;
    }
    buf = malloc((size_t)size + 1);
    if (!buf) {
        snprintf(errbuf, errlen, "vocab file %s: out of memory", path);
        st = SC_ERR_NOMEM;
        goto out;
    }
    if (size > 0 && fread(buf, 1, (size_t)size, f) != (size_t)size) {
        snprintf(errbuf, errlen, "vocab file %s: short read", path);
        st = SC_ERR_IO;
        goto out;
    }
    buf[size] = '\0';
    *out = buf;
    *out_len = (size_t)size;
    buf = NULL;
out:
    free(buf);
    if (f)
        fclose(f);
    return st;
}

sc_status_t sc_tokenizer_load(const char *vocab_path, sc_tokenizer_t **out, char *errbuf,
                              size_t errlen)
{
    sc_status_t st = SC_OK;
    sc_tokenizer_t *tok = NULL;
    size_t size = 0;

    if (errlen > 0)
        errbuf[0] = '\0';
    if (!vocab_path || !out) {
        snprintf(errbuf, errlen, "vocab file: no path or no output");
        st = SC_ERR_INVALID_ARG;
        goto out;
    }
    *out = NULL;
    tok = calloc(1, sizeof(*tok));
    if (!tok) {
        snprintf(errbuf, errlen, "vocab file %s: out of memory", vocab_path);
        st = SC_ERR_NOMEM;
        goto out;
    }
    st = sc_tok_read_file(vocab_path, &tok->data, &size, errbuf, errlen);
    if (st)
        goto out;

    /* One token per line; a final line without '\n' counts, an empty tail after the last '\n'
     * does not. */
    size_t n = 0;
    for (size_t i = 0; i < size; i++)
        n += tok->data[i] == '\n';
    if (size > 0 && tok->data[size - 1] != '\n')
        n++;
    if (n == 0 || n > SC_TOK_MAX_VOCAB_TOKENS) {
        snprintf(errbuf, errlen, "vocab file %s: malformed: %zu tokens (want 1..%d)", vocab_path, n,
                 SC_TOK_MAX_VOCAB_TOKENS);
        st = SC_ERR_INVALID;
        goto out;
    }
    tok->n_tokens = (int32_t)n;
    tok->tok_off = malloc(n * sizeof(*tok->tok_off));
    tok->tok_len = malloc(n * sizeof(*tok->tok_len));
    uint32_t cap = 16;
    while (cap < 2 * n)
        cap <<= 1;
    tok->slots = malloc(cap * sizeof(*tok->slots));
    if (!tok->tok_off || !tok->tok_len || !tok->slots) {
        snprintf(errbuf, errlen, "vocab file %s: out of memory", vocab_path);
        st = SC_ERR_NOMEM;
        goto out;
    }
    tok->mask = cap - 1;
    for (uint32_t i = 0; i < cap; i++)
        tok->slots[i].id = -1;

    size_t start = 0, id = 0;
    for (size_t i = 0; i <= size && id < n; i++) {
        if (i < size && tok->data[i] != '\n')
            continue;
        tok->data[i] = '\0';
        tok->tok_off[id] = (uint32_t)start;
        tok->tok_len[id] = (uint32_t)(i - start);
        id++;
        start = i + 1;
    }
    for (int32_t i = 0; i < tok->n_tokens; i++) {
        const char *t = tok->data + tok->tok_off[i];
        size_t len = tok->tok_len[i];
        sc_tok_insert(tok, i);
        if (len >= SC_TOK_CONT_PREFIX_LEN &&
            memcmp(t, SC_TOK_CONT_PREFIX, SC_TOK_CONT_PREFIX_LEN) == 0 &&
            len - SC_TOK_CONT_PREFIX_LEN > tok->max_cont)
            tok->max_cont = len - SC_TOK_CONT_PREFIX_LEN;
        if (len > tok->max_first)
            tok->max_first = len;
    }

    static const char *const specials[] = {"[CLS]", "[SEP]", "[UNK]", "[PAD]"};
    int32_t *const special_ids[] = {&tok->id_cls, &tok->id_sep, &tok->id_unk, &tok->id_pad};
    for (size_t i = 0; i < sizeof(specials) / sizeof(specials[0]); i++) {
        *special_ids[i] = sc_tokenizer_id(tok, specials[i]);
        if (*special_ids[i] < 0) {
            snprintf(errbuf, errlen, "vocab file %s: malformed: no %s token", vocab_path,
                     specials[i]);
            st = SC_ERR_INVALID;
            goto out;
        }
    }
    /* [MASK] is optional: a vocabulary without it just has nothing to match. */
    static const char *const added[] = {"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"};
    for (size_t i = 0; i < sizeof(added) / sizeof(added[0]) && tok->n_added < SC_TOK_MAX_ADDED;
         i++) {
        int32_t aid = sc_tokenizer_id(tok, added[i]);
        if (aid < 0)
            continue;
        tok->added[tok->n_added].text = added[i];
        tok->added[tok->n_added].len = strlen(added[i]);
        tok->added[tok->n_added].id = aid;
        tok->n_added++;
    }
    *out = tok;
    tok = NULL;
out:
    sc_tokenizer_free(tok);
    return st;
}

int32_t sc_tokenizer_id(const sc_tokenizer_t *tok, const char *token)
{
    if (!tok || !token)
        return -1;
    return sc_tok_find(tok, sc_tok_seed_plain(), 0, (const uint8_t *)token, strlen(token));
}

const char *sc_tokenizer_token(const sc_tokenizer_t *tok, int32_t id)
{
    if (!tok || id < 0 || id >= tok->n_tokens)
        return NULL;
    return tok->data + tok->tok_off[id];
}

int32_t sc_tokenizer_vocab_size(const sc_tokenizer_t *tok)
{
    return tok ? tok->n_tokens : 0;
}

/* ---- character classes (the reference's BertNormalizer and BertPreTokenizer) ---- */

enum { SC_TOK_C_DROP = 0, SC_TOK_C_SPACE, SC_TOK_C_PUNCT, SC_TOK_C_WORD };

/* ASCII, 0 drop / 1 space / 2 punctuation / 3 word: controls other than \t \n \r are dropped
 * (so are \v and \f: the reference tests "control" before "white space"), ASCII punctuation
 * splits, the rest is part of a word (lower-cased on the way in). */
/* clang-format off */
static const uint8_t sc_tok_ascii_class[128] = {
    /* 0x00 */ 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 0, 0, 1, 0, 0,
    /* 0x10 */ 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    /* 0x20 */ 1, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
    /* 0x30 */ 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 2, 2, 2, 2, 2, 2,
    /* 0x40 */ 2, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3,
    /* 0x50 */ 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 2, 2, 2, 2, 2,
    /* 0x60 */ 2, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3,
    /* 0x70 */ 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 2, 2, 2, 2, 0,
};
/* clang-format on */

/* Rust's char::is_whitespace, less the ASCII ones and U+0085 (a control, so dropped first). */
static int sc_tok_is_space_nonascii(int32_t c)
{
    return c == 0xA0 || c == 0x1680 || (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 ||
           c == 0x202F || c == 0x205F || c == 0x3000;
}

/* The reference's ranges, including its 0x2B920 where the CJK Extension E block starts at
 * 0x2B820 (inherited from the original BERT code): 2B820-2B91F are not spaced. */
static int sc_tok_is_cjk(int32_t c)
{
    return (c >= 0x4E00 && c <= 0x9FFF) || (c >= 0x3400 && c <= 0x4DBF) ||
           (c >= 0x20000 && c <= 0x2A6DF) || (c >= 0x2A700 && c <= 0x2B73F) ||
           (c >= 0x2B740 && c <= 0x2B81F) || (c >= 0x2B920 && c <= 0x2CEAF) ||
           (c >= 0xF900 && c <= 0xFAFF) || (c >= 0x2F800 && c <= 0x2FA1F);
}

/* Where the reference's Unicode tables (crates older than utf8proc 2.8's Unicode 15) give
 * another category. Code points assigned since are Cn to it: kept, not split, not stripped,
 * not dropped (the reference drops Cc/Cf/Cs/Co but keeps unassigned). U+166D and U+111C9 were
 * Po, U+1734 was Mn. Found by encoding every code point alone, between 'a's and after an
 * accented letter with both implementations; sorted, disjoint. A newer utf8proc may need more
 * rows. */
typedef struct {
    int32_t lo, hi;
    utf8proc_category_t cat;
} sc_tok_cat_override_t;

/* clang-format off */
static const sc_tok_cat_override_t sc_tok_cat_overrides[] = {
    {0x61D, 0x61D, UTF8PROC_CATEGORY_CN}, {0x7FD, 0x7FD, UTF8PROC_CATEGORY_CN},
    {0x890, 0x891, UTF8PROC_CATEGORY_CN}, {0x898, 0x89F, UTF8PROC_CATEGORY_CN},
    {0x8CA, 0x8E2, UTF8PROC_CATEGORY_CN}, {0x9FD, 0x9FE, UTF8PROC_CATEGORY_CN},
    {0xA76, 0xA76, UTF8PROC_CATEGORY_CN}, {0xAFA, 0xAFF, UTF8PROC_CATEGORY_CN},
    {0xB55, 0xB55, UTF8PROC_CATEGORY_CN}, {0xC04, 0xC04, UTF8PROC_CATEGORY_CN},
    {0xC3C, 0xC3C, UTF8PROC_CATEGORY_CN}, {0xC77, 0xC77, UTF8PROC_CATEGORY_CN},
    {0xC84, 0xC84, UTF8PROC_CATEGORY_CN}, {0xD00, 0xD00, UTF8PROC_CATEGORY_CN},
    {0xD3B, 0xD3C, UTF8PROC_CATEGORY_CN}, {0xD81, 0xD81, UTF8PROC_CATEGORY_CN},
    {0xEBA, 0xEBA, UTF8PROC_CATEGORY_CN}, {0xECE, 0xECE, UTF8PROC_CATEGORY_CN},
    {0x166D, 0x166D, UTF8PROC_CATEGORY_PO}, {0x1734, 0x1734, UTF8PROC_CATEGORY_MN},
    {0x180F, 0x180F, UTF8PROC_CATEGORY_CN}, {0x1885, 0x1886, UTF8PROC_CATEGORY_CN},
    {0x1ABF, 0x1ACE, UTF8PROC_CATEGORY_CN}, {0x1B7D, 0x1B7E, UTF8PROC_CATEGORY_CN},
    {0x1DF6, 0x1DFB, UTF8PROC_CATEGORY_CN}, {0x2E43, 0x2E4F, UTF8PROC_CATEGORY_CN},
    {0x2E52, 0x2E5D, UTF8PROC_CATEGORY_CN}, {0xA82C, 0xA82C, UTF8PROC_CATEGORY_CN},
    {0xA8C5, 0xA8C5, UTF8PROC_CATEGORY_CN}, {0xA8FF, 0xA8FF, UTF8PROC_CATEGORY_CN},
    {0xA9BD, 0xA9BD, UTF8PROC_CATEGORY_CN}, {0x10D24, 0x10D27, UTF8PROC_CATEGORY_CN},
    {0x10EAB, 0x10EAD, UTF8PROC_CATEGORY_CN}, {0x10EFD, 0x10EFF, UTF8PROC_CATEGORY_CN},
    {0x10F46, 0x10F50, UTF8PROC_CATEGORY_CN}, {0x10F55, 0x10F59, UTF8PROC_CATEGORY_CN},
    {0x10F82, 0x10F89, UTF8PROC_CATEGORY_CN}, {0x11070, 0x11070, UTF8PROC_CATEGORY_CN},
    {0x11073, 0x11074, UTF8PROC_CATEGORY_CN}, {0x110C2, 0x110C2, UTF8PROC_CATEGORY_CN},
    {0x110CD, 0x110CD, UTF8PROC_CATEGORY_CN}, {0x111C9, 0x111C9, UTF8PROC_CATEGORY_PO},
    {0x111CF, 0x111CF, UTF8PROC_CATEGORY_CN}, {0x1123E, 0x1123E, UTF8PROC_CATEGORY_CN},
    {0x11241, 0x11241, UTF8PROC_CATEGORY_CN}, {0x1133B, 0x1133B, UTF8PROC_CATEGORY_CN},
    {0x11438, 0x1143F, UTF8PROC_CATEGORY_CN}, {0x11442, 0x11444, UTF8PROC_CATEGORY_CN},
    {0x11446, 0x11446, UTF8PROC_CATEGORY_CN}, {0x1144B, 0x1144F, UTF8PROC_CATEGORY_CN},
    {0x1145A, 0x1145B, UTF8PROC_CATEGORY_CN}, {0x1145D, 0x1145E, UTF8PROC_CATEGORY_CN},
    {0x11660, 0x1166C, UTF8PROC_CATEGORY_CN}, {0x116B9, 0x116B9, UTF8PROC_CATEGORY_CN},
    {0x1182F, 0x11837, UTF8PROC_CATEGORY_CN}, {0x11839, 0x1183B, UTF8PROC_CATEGORY_CN},
    {0x1193B, 0x1193C, UTF8PROC_CATEGORY_CN}, {0x1193E, 0x1193E, UTF8PROC_CATEGORY_CN},
    {0x11943, 0x11946, UTF8PROC_CATEGORY_CN}, {0x119D4, 0x119D7, UTF8PROC_CATEGORY_CN},
    {0x119DA, 0x119DB, UTF8PROC_CATEGORY_CN}, {0x119E0, 0x119E0, UTF8PROC_CATEGORY_CN},
    {0x119E2, 0x119E2, UTF8PROC_CATEGORY_CN}, {0x11A01, 0x11A0A, UTF8PROC_CATEGORY_CN},
    {0x11A33, 0x11A38, UTF8PROC_CATEGORY_CN}, {0x11A3B, 0x11A47, UTF8PROC_CATEGORY_CN},
    {0x11A51, 0x11A56, UTF8PROC_CATEGORY_CN}, {0x11A59, 0x11A5B, UTF8PROC_CATEGORY_CN},
    {0x11A8A, 0x11A96, UTF8PROC_CATEGORY_CN}, {0x11A98, 0x11A9C, UTF8PROC_CATEGORY_CN},
    {0x11A9E, 0x11AA2, UTF8PROC_CATEGORY_CN}, {0x11B00, 0x11B09, UTF8PROC_CATEGORY_CN},
    {0x11C30, 0x11C36, UTF8PROC_CATEGORY_CN}, {0x11C38, 0x11C3D, UTF8PROC_CATEGORY_CN},
    {0x11C3F, 0x11C3F, UTF8PROC_CATEGORY_CN}, {0x11C41, 0x11C45, UTF8PROC_CATEGORY_CN},
    {0x11C70, 0x11C71, UTF8PROC_CATEGORY_CN}, {0x11C92, 0x11CA7, UTF8PROC_CATEGORY_CN},
    {0x11CAA, 0x11CB0, UTF8PROC_CATEGORY_CN}, {0x11CB2, 0x11CB3, UTF8PROC_CATEGORY_CN},
    {0x11CB5, 0x11CB6, UTF8PROC_CATEGORY_CN}, {0x11D31, 0x11D36, UTF8PROC_CATEGORY_CN},
    {0x11D3A, 0x11D3A, UTF8PROC_CATEGORY_CN}, {0x11D3C, 0x11D3D, UTF8PROC_CATEGORY_CN},
    {0x11D3F, 0x11D45, UTF8PROC_CATEGORY_CN}, {0x11D47, 0x11D47, UTF8PROC_CATEGORY_CN},
    {0x11D90, 0x11D91, UTF8PROC_CATEGORY_CN}, {0x11D95, 0x11D95, UTF8PROC_CATEGORY_CN},
    {0x11D97, 0x11D97, UTF8PROC_CATEGORY_CN}, {0x11EF3, 0x11EF4, UTF8PROC_CATEGORY_CN},
    {0x11EF7, 0x11EF8, UTF8PROC_CATEGORY_CN}, {0x11F00, 0x11F01, UTF8PROC_CATEGORY_CN},
    {0x11F36, 0x11F3A, UTF8PROC_CATEGORY_CN}, {0x11F40, 0x11F40, UTF8PROC_CATEGORY_CN},
    {0x11F42, 0x11F4F, UTF8PROC_CATEGORY_CN}, {0x11FFF, 0x11FFF, UTF8PROC_CATEGORY_CN},
    {0x12FF1, 0x12FF2, UTF8PROC_CATEGORY_CN}, {0x13430, 0x13440, UTF8PROC_CATEGORY_CN},
    {0x13447, 0x13455, UTF8PROC_CATEGORY_CN}, {0x16E97, 0x16E9A, UTF8PROC_CATEGORY_CN},
    {0x16F4F, 0x16F4F, UTF8PROC_CATEGORY_CN}, {0x16FE2, 0x16FE2, UTF8PROC_CATEGORY_CN},
    {0x16FE4, 0x16FE4, UTF8PROC_CATEGORY_CN}, {0x1CF00, 0x1CF2D, UTF8PROC_CATEGORY_CN},
    {0x1CF30, 0x1CF46, UTF8PROC_CATEGORY_CN}, {0x1E000, 0x1E006, UTF8PROC_CATEGORY_CN},
    {0x1E008, 0x1E018, UTF8PROC_CATEGORY_CN}, {0x1E01B, 0x1E021, UTF8PROC_CATEGORY_CN},
    {0x1E023, 0x1E024, UTF8PROC_CATEGORY_CN}, {0x1E026, 0x1E02A, UTF8PROC_CATEGORY_CN},
    {0x1E08F, 0x1E08F, UTF8PROC_CATEGORY_CN}, {0x1E130, 0x1E136, UTF8PROC_CATEGORY_CN},
    {0x1E2AE, 0x1E2AE, UTF8PROC_CATEGORY_CN}, {0x1E2EC, 0x1E2EF, UTF8PROC_CATEGORY_CN},
    {0x1E4EC, 0x1E4EF, UTF8PROC_CATEGORY_CN}, {0x1E944, 0x1E94A, UTF8PROC_CATEGORY_CN},
    {0x1E95E, 0x1E95F, UTF8PROC_CATEGORY_CN}, {0x2B820, 0x2B91F, UTF8PROC_CATEGORY_CN},
};
/* clang-format on */

/* The general category as the reference sees it. */
static utf8proc_category_t sc_tok_category(int32_t c, const utf8proc_property_t *p)
{
    size_t lo = 0, hi = sizeof(sc_tok_cat_overrides) / sizeof(sc_tok_cat_overrides[0]);
    if (c < sc_tok_cat_overrides[0].lo || c > sc_tok_cat_overrides[hi - 1].hi)
        return (utf8proc_category_t)p->category;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (c < sc_tok_cat_overrides[mid].lo)
            hi = mid;
        else if (c > sc_tok_cat_overrides[mid].hi)
            lo = mid + 1;
        else
            return sc_tok_cat_overrides[mid].cat;
    }
    return (utf8proc_category_t)p->category;
}

static int sc_tok_is_other(utf8proc_category_t cat)
{
    return cat == UTF8PROC_CATEGORY_CC || cat == UTF8PROC_CATEGORY_CF ||
           cat == UTF8PROC_CATEGORY_CS || cat == UTF8PROC_CATEGORY_CO;
}

static int sc_tok_is_punct_cat(utf8proc_category_t cat)
{
    return cat == UTF8PROC_CATEGORY_PC || cat == UTF8PROC_CATEGORY_PD ||
           cat == UTF8PROC_CATEGORY_PS || cat == UTF8PROC_CATEGORY_PE ||
           cat == UTF8PROC_CATEGORY_PI || cat == UTF8PROC_CATEGORY_PF ||
           cat == UTF8PROC_CATEGORY_PO;
}

/* Rust's char::to_lowercase. It maps only U+0130 to two code points, and NFD has already
 * turned that into 'I' + U+0307 (stripped); for every other code point the per-code-point
 * comparison with the reference found utf8proc_tolower giving the same ids. */
static int32_t sc_tok_lower(int32_t c)
{
    return utf8proc_tolower(c);
}

/* ---- encoding state (one per call, on the stack) ---- */

typedef struct {
    const sc_tokenizer_t *tok;
    int32_t *ids;
    int n, cap; /* ids written; at most cap pieces + [CLS] before [SEP] */
    uint8_t w[SC_TOK_WORD_BYTES + SC_TOK_UTF8_MAX];
    size_t wlen;   /* bytes in w */
    size_t wchars; /* code points in the word, counted past the limit too */
    size_t wrun;   /* byte offset where the current run of non-starters may begin */
} sc_tok_state_t;

static inline int sc_tok_full(const sc_tok_state_t *s)
{
    return s->n >= s->cap;
}

static inline void sc_tok_emit(sc_tok_state_t *s, int32_t id)
{
    if (s->n < s->cap)
        s->ids[s->n++] = id;
}

/* Greedy longest-match-first WordPiece over the word in s->w; all or nothing: a position with
 * no match makes the whole word one [UNK]. */
static void sc_tok_wordpiece(sc_tok_state_t *s)
{
    const sc_tokenizer_t *tok = s->tok;
    const uint8_t *w = s->w;
    size_t len = s->wlen, start = 0;
    int32_t pieces[SC_TOK_MAX_WORD_CHARS];
    int np = 0;
    uint32_t seed_plain = sc_tok_seed_plain(), seed_cont = sc_tok_seed_cont();

    while (start < len) {
        size_t bound = start == 0 ? tok->max_first : tok->max_cont;
        size_t end = len - start > bound ? start + bound : len;
        while (end < len && (w[end] & 0xC0) == 0x80)
            end--;
        int32_t id = -1;
        while (end > start) {
            id = start == 0
                     ? sc_tok_find(tok, seed_plain, 0, w, end)
                     : sc_tok_find(tok, seed_cont, SC_TOK_CONT_PREFIX_LEN, w + start, end - start);
            if (id >= 0)
                break;
            end--;
            while (end > start && (w[end] & 0xC0) == 0x80)
                end--;
        }
        if (id < 0) {
            sc_tok_emit(s, tok->id_unk);
            return;
        }
        pieces[np++] = id;
        start = end;
    }
    for (int i = 0; i < np; i++)
        sc_tok_emit(s, pieces[i]);
}

static inline void sc_tok_flush(sc_tok_state_t *s)
{
    if (s->wchars == 0)
        return;
    if (s->wchars > SC_TOK_MAX_WORD_CHARS)
        sc_tok_emit(s, s->tok->id_unk);
    else
        sc_tok_wordpiece(s);
    s->wlen = 0;
    s->wchars = 0;
    s->wrun = 0;
}

static size_t sc_tok_utf8_put(uint8_t *d, int32_t c)
{
    if (c < 0x80) {
        d[0] = (uint8_t)c;
        return 1;
    }
    if (c < 0x800) {
        d[0] = (uint8_t)(0xC0 | (c >> 6));
        d[1] = (uint8_t)(0x80 | (c & 0x3F));
        return 2;
    }
    if (c < 0x10000) {
        d[0] = (uint8_t)(0xE0 | (c >> 12));
        d[1] = (uint8_t)(0x80 | ((c >> 6) & 0x3F));
        d[2] = (uint8_t)(0x80 | (c & 0x3F));
        return 3;
    }
    d[0] = (uint8_t)(0xF0 | (c >> 18));
    d[1] = (uint8_t)(0x80 | ((c >> 12) & 0x3F));
    d[2] = (uint8_t)(0x80 | ((c >> 6) & 0x3F));
    d[3] = (uint8_t)(0x80 | (c & 0x3F));
    return 4;
}

/* Decodes one well-formed code point at p (n bytes available) into *c; returns its length, or
 * 0 when the bytes at p do not start one (the caller drops one byte and resynchronises). */
static size_t sc_tok_utf8_get(const uint8_t *p, size_t n, int32_t *c)
{
    uint8_t b = p[0];
    if (b < 0x80) {
        *c = b;
        return 1;
    }
    if (b >= 0xC2 && b <= 0xDF) {
        if (n < 2 || (p[1] & 0xC0) != 0x80)
            return 0;
        *c = ((int32_t)(b & 0x1F) << 6) | (p[1] & 0x3F);
        return 2;
    }
    if (b >= 0xE0 && b <= 0xEF) {
        if (n < 3 || (p[1] & 0xC0) != 0x80 || (p[2] & 0xC0) != 0x80)
            return 0;
        if ((b == 0xE0 && p[1] < 0xA0) || (b == 0xED && p[1] >= 0xA0)) /* overlong, surrogate */
            return 0;
        *c = ((int32_t)(b & 0x0F) << 12) | ((int32_t)(p[1] & 0x3F) << 6) | (p[2] & 0x3F);
        return 3;
    }
    if (b >= 0xF0 && b <= 0xF4) {
        if (n < 4 || (p[1] & 0xC0) != 0x80 || (p[2] & 0xC0) != 0x80 || (p[3] & 0xC0) != 0x80)
            return 0;
        if ((b == 0xF0 && p[1] < 0x90) || (b == 0xF4 && p[1] >= 0x90)) /* overlong, > U+10FFFF */
            return 0;
        *c = ((int32_t)(b & 0x07) << 18) | ((int32_t)(p[1] & 0x3F) << 12) |
             ((int32_t)(p[2] & 0x3F) << 6) | (p[3] & 0x3F);
        return 4;
    }
    return 0;
}

/* Decodes the code point that ends at byte offset end of the word (valid UTF-8 we wrote). */
static size_t sc_tok_prev_char(const uint8_t *w, size_t end, int32_t *c)
{
    size_t b = end - 1;
    while (b > 0 && (w[b] & 0xC0) == 0x80)
        b--;
    sc_tok_utf8_get(w + b, end - b, c);
    return b;
}

/* Appends one normalised code point c (canonical combining class ccc) to the word, keeping NFD's
 * canonical order: a non-starter moves before earlier non-starters of a higher class. */
static void sc_tok_append(sc_tok_state_t *s, int32_t c, int ccc)
{
    s->wchars++;
    if (s->wchars > SC_TOK_MAX_WORD_CHARS)
        return; /* the word is [UNK] whatever follows; only the count matters now */
    uint8_t enc[SC_TOK_UTF8_MAX];
    size_t k = sc_tok_utf8_put(enc, c);
    size_t at = s->wlen;
    if (ccc != 0) {
        while (at > s->wrun) {
            int32_t pc;
            size_t pb = sc_tok_prev_char(s->w, at, &pc);
            if (utf8proc_get_property(pc)->combining_class <= ccc)
                break;
            at = pb;
        }
        memmove(s->w + at + k, s->w + at, s->wlen - at);
    }
    memcpy(s->w + at, enc, k);
    s->wlen += k;
    if (ccc == 0)
        s->wrun = s->wlen;
}

/* A punctuation character is a word of its own. */
static void sc_tok_punct(sc_tok_state_t *s, int32_t c)
{
    sc_tok_flush(s);
    sc_tok_append(s, c, 0);
    sc_tok_flush(s);
}

/* One code point of input outside ASCII, through clean-text, CJK spacing, NFD, accent
 * stripping, lower case and the pre-tokenizer's split. */
static void sc_tok_process_cp(sc_tok_state_t *s, int32_t c)
{
    const utf8proc_property_t *p = utf8proc_get_property(c);
    utf8proc_category_t cat = sc_tok_category(c, p);
    if (c == 0xFFFD || sc_tok_is_other(cat))
        return;
    if (sc_tok_is_space_nonascii(c)) {
        sc_tok_flush(s);
        return;
    }
    int cjk = sc_tok_is_cjk(c);
    if (cjk)
        sc_tok_flush(s);

    utf8proc_int32_t dec[SC_TOK_DECOMP_MAX];
    int last_boundclass = 0;
    utf8proc_ssize_t nd =
        utf8proc_decompose_char(c, dec, SC_TOK_DECOMP_MAX, UTF8PROC_DECOMPOSE, &last_boundclass);
    if (nd < 0 || nd > SC_TOK_DECOMP_MAX) {
        dec[0] = c;
        nd = 1;
    }
    for (utf8proc_ssize_t i = 0; i < nd; i++) {
        int32_t d = dec[i];
        const utf8proc_property_t *dp = d == c ? p : utf8proc_get_property(d);
        utf8proc_category_t dcat = sc_tok_category(d, dp);
        if (dcat == UTF8PROC_CATEGORY_MN) {
            if (dp->combining_class == 0)
                s->wrun = s->wlen; /* a removed starter still ends the reordering run */
            continue;
        }
        int32_t l = sc_tok_lower(d);
        const utf8proc_property_t *lp = l == d ? dp : utf8proc_get_property(l);
        if (l < 0x80 ? sc_tok_ascii_class[l] == SC_TOK_C_PUNCT
                     : sc_tok_is_punct_cat(sc_tok_category(l, lp))) {
            sc_tok_punct(s, l);
            continue;
        }
        sc_tok_append(s, l, dp->combining_class);
    }
    if (cjk)
        sc_tok_flush(s);
}

/* At p ('['): when an added token starts here, ends the word, emits its id and returns its
 * length; else 0. */
static size_t sc_tok_match_added(const sc_tokenizer_t *tok, const uint8_t *p, size_t n,
                                 sc_tok_state_t *s)
{
    for (int a = 0; a < tok->n_added; a++) {
        size_t k = tok->added[a].len;
        if (k <= n && memcmp(p, tok->added[a].text, k) == 0) {
            sc_tok_flush(s);
            sc_tok_emit(s, tok->added[a].id);
            return k;
        }
    }
    return 0;
}

int sc_tokenizer_encode(const sc_tokenizer_t *tok, const char *text, size_t len, int32_t *ids,
                        int max_tokens)
{
    if (!tok || !ids || max_tokens < 2 || (!text && len > 0))
        return 0;
    sc_tok_state_t s;
    s.tok = tok;
    s.ids = ids;
    s.n = 0;
    s.cap = max_tokens - 1;
    s.wlen = s.wchars = s.wrun = 0;
    ids[s.n++] = tok->id_cls;

    const uint8_t *p = (const uint8_t *)text;
    size_t i = 0;
    while (i < len && !sc_tok_full(&s)) {
        uint8_t b = p[i];
        if (b < 0x80) {
            switch (sc_tok_ascii_class[b]) {
            case SC_TOK_C_WORD:
                if (s.wchars < SC_TOK_MAX_WORD_CHARS) {
                    s.w[s.wlen++] = (uint8_t)(b >= 'A' && b <= 'Z' ? b + ('a' - 'A') : b);
                    s.wrun = s.wlen;
                }
                s.wchars++;
                break;
            case SC_TOK_C_SPACE:
                sc_tok_flush(&s);
                break;
            case SC_TOK_C_PUNCT:
                if (b == '[') {
                    size_t k = sc_tok_match_added(tok, p + i, len - i, &s);
                    if (k > 0) {
                        i += k;
                        continue;
                    }
                }
                sc_tok_punct(&s, b);
                break;
            default:
                break;
            }
            i++;
            continue;
        }
        int32_t c;
        size_t k = sc_tok_utf8_get(p + i, len - i, &c);
        if (k == 0) {
            i++; /* an invalid byte is U+FFFD to the reference, and U+FFFD is dropped */
            continue;
        }
        sc_tok_process_cp(&s, c);
        i += k;
    }
    if (!sc_tok_full(&s))
        sc_tok_flush(&s);
    ids[s.n++] = tok->id_sep;
    return s.n;
}
