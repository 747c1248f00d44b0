/* test_tokenizer.c - WordPiece tokenizer (models/tokenizer.c) against the reference's ids. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "models/tokenizer.h"

#define ERRLEN          512
#define PATHLEN         4096
#define FIXTURE_MAX     4096              /* lines read from tokens.jsonl at most */
#define LONG_INPUT      ((size_t)1 << 20) /* 1 MiB */
#define BENCH_PASSES    20
#define N_THREADS       4
#define WIDE_MAX_TOKENS 1024 /* "untruncated" for the fixture's texts */

#define VOCAB_REL   "models/all-MiniLM-L6-v2/vocab.txt"
#define FIXTURE_REL "tests/fixtures/minilm/tokens.jsonl"

typedef struct {
    char *text; /* owned; may hold NUL bytes */
    size_t len;
    int32_t *ids; /* owned */
    int n_ids;
} fixture_line_t;

static sc_tokenizer_t *g_tok; /* shared by every test, as the service shares one */
static fixture_line_t g_lines[FIXTURE_MAX];
static int g_n_lines;

/* ---- helpers ---- */

static const char *source_dir(void)
{
    const char *d = getenv("SCRIMP_SOURCE_DIR");
    return d && d[0] ? d : ".";
}

static void source_path(char *buf, size_t n, const char *rel)
{
    int k = snprintf(buf, n, "%s/%s", source_dir(), rel);
    if (k < 0 || (size_t)k >= n)
        fail_msg("path too long: %s/%s", source_dir(), rel);
}

static int encode(const char *s, size_t len, int32_t *ids, int max)
{
    return sc_tokenizer_encode(g_tok, s, len, ids, max);
}

static int encode_str(const char *s, int32_t *ids, int max)
{
    return encode(s, strlen(s), ids, max);
}

static void print_ids(const char *label, const int32_t *ids, int n)
{
    fprintf(stderr, "  %s (%d):", label, n);
    for (int i = 0; i < n; i++)
        fprintf(stderr, " %d", ids[i]);
    fprintf(stderr, "\n");
}

static int same_ids(const int32_t *a, int na, const int32_t *b, int nb)
{
    return na == nb && (na == 0 || memcmp(a, b, (size_t)na * sizeof(*a)) == 0);
}

static void assert_ids(const char *s, const int32_t *want, int n_want)
{
    int32_t got[WIDE_MAX_TOKENS];
    int n = encode_str(s, got, WIDE_MAX_TOKENS);
    if (!same_ids(got, n, want, n_want)) {
        fprintf(stderr, "text: \"%s\"\n", s);
        print_ids("want", want, n_want);
        print_ids("got", got, n);
        fail();
    }
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void free_fixture(void)
{
    for (int i = 0; i < g_n_lines; i++) {
        free(g_lines[i].text);
        free(g_lines[i].ids);
    }
    g_n_lines = 0;
}

/* Reads tokens.jsonl into g_lines. Returns 0, or -1 with a message on stderr. */
static int load_fixture(void)
{
    char path[PATHLEN];
    char line[1 << 16];
    int rc = -1;
    source_path(path, sizeof(path), FIXTURE_REL);
    FILE *f = fopen(path, "r");
    if (!f) {
        fprintf(stderr, "cannot open fixture %s\n", path);
        return -1;
    }
    while (fgets(line, sizeof(line), f)) {
        json_error_t jerr;
        json_t *o = json_loads(line, JSON_ALLOW_NUL, &jerr); /* new reference */
        json_t *text = json_object_get(o, "text");           /* borrowed */
        json_t *ids = json_object_get(o, "ids");             /* borrowed */
        if (!json_is_string(text) || !json_is_array(ids) || g_n_lines >= FIXTURE_MAX) {
            fprintf(stderr, "fixture %s line %d: malformed or too many lines\n", path,
                    g_n_lines + 1);
            json_decref(o);
            goto out;
        }
        fixture_line_t *l = &g_lines[g_n_lines++];
        l->len = json_string_length(text);
        l->text = malloc(l->len + 1);
        l->n_ids = (int)json_array_size(ids);
        l->ids = malloc((size_t)(l->n_ids + 1) * sizeof(*l->ids));
        assert_non_null(l->text);
        assert_non_null(l->ids);
        memcpy(l->text, json_string_value(text), l->len + 1);
        for (int i = 0; i < l->n_ids; i++)
            l->ids[i] = (int32_t)json_integer_value(json_array_get(ids, (size_t)i));
        json_decref(o);
    }
    rc = 0;
out:
    fclose(f);
    return rc;
}

static int group_setup(void **state)
{
    (void)state;
    char path[PATHLEN], err[ERRLEN];
    source_path(path, sizeof(path), VOCAB_REL);
    if (access(path, R_OK) != 0) {
        fprintf(stderr,
                "model files missing (%s): run scripts/fetch-model first "
                "(SCRIMP_SOURCE_DIR=%s)\n",
                path, source_dir());
        return -1;
    }
    sc_status_t st = sc_tokenizer_load(path, &g_tok, err, sizeof(err));
    if (st != SC_OK) {
        fprintf(stderr, "sc_tokenizer_load: %s: %s\n", sc_strerror(st), err);
        return -1;
    }
    return load_fixture();
}

static int group_teardown(void **state)
{
    (void)state;
    free_fixture();
    sc_tokenizer_free(g_tok);
    g_tok = NULL;
    return 0;
}

/* ---- parity with the reference ---- */

static void test_fixture_ids(void **state)
{
    (void)state;
    int32_t got[SC_TOKENIZER_MAX_TOKENS];
    int bad = 0;
    assert_true(g_n_lines >= 1000);
    for (int i = 0; i < g_n_lines; i++) {
        const fixture_line_t *l = &g_lines[i];
        int n = encode(l->text, l->len, got, SC_TOKENIZER_MAX_TOKENS);
        if (same_ids(got, n, l->ids, l->n_ids))
            continue;
        bad++;
        json_t *js = json_stringn(l->text, l->len); /* new reference */
        char *shown = js ? json_dumps(js, JSON_ENCODE_ANY | JSON_ENSURE_ASCII) : NULL;
        fprintf(stderr, "line %d: text %s\n", i + 1, shown ? shown : "(unprintable)");
        print_ids("want", l->ids, l->n_ids);
        print_ids("got", got, n);
        free(shown);
        json_decref(js);
    }
    printf("fixture: %d/%d strings with identical ids\n", g_n_lines - bad, g_n_lines);
    assert_int_equal(bad, 0);
}

/* Also from the reference, beyond the fixture: special tokens in the text, the CJK range the
 * reference leaves unspaced (its 0x2B920 typo), U+0085 dropped, Greek sigma without context. */
static void test_reference_cases(void **state)
{
    (void)state;
    assert_ids("a[CLS]b", (const int32_t[]){101, 1037, 101, 1038, 102}, 5);
    assert_ids("[[SEP]]", (const int32_t[]){101, 1031, 102, 1033, 102}, 5);
    assert_ids("[cls]", (const int32_t[]){101, 1031, 18856, 2015, 1033, 102}, 6);
    assert_ids("a\302\205b", (const int32_t[]){101, 11113, 102}, 3);
    assert_ids("a\302\240b", (const int32_t[]){101, 1037, 1038, 102}, 4);
    assert_ids("a\vb\fc", (const int32_t[]){101, 5925, 102}, 3); /* \v \f: controls, dropped */
    /* U+2B820 (in CJK Ext. E) stays inside the word; U+2B920 is spaced. */
    assert_ids("a\360\253\240\240a", (const int32_t[]){101, 100, 102}, 3);
    assert_ids("a\360\253\244\240a", (const int32_t[]){101, 1037, 100, 1037, 102}, 5);
}

/* ---- truncation ---- */

static void test_truncation(void **state)
{
    (void)state;
    static const int maxes[] = {2, 3, 4, 5, 8, 17, 64, 128, 255, 256};
    int32_t full[WIDE_MAX_TOKENS], got[WIDE_MAX_TOKENS];
    int checked = 0;
    for (int i = 0; i < g_n_lines; i++) {
        const fixture_line_t *l = &g_lines[i];
        int nf = encode(l->text, l->len, full, WIDE_MAX_TOKENS);
        assert_true(nf < WIDE_MAX_TOKENS);
        for (size_t m = 0; m < sizeof(maxes) / sizeof(maxes[0]); m++) {
            int max = maxes[m];
            int n = encode(l->text, l->len, got, max);
            if (nf <= max) {
                assert_true(same_ids(got, n, full, nf));
                continue;
            }
            assert_int_equal(n, max);
            assert_memory_equal(got, full, (size_t)(max - 1) * sizeof(*got));
            assert_int_equal(got[max - 1], 102);
            checked++;
        }
    }
    assert_true(checked > 0);
    int32_t two[2];
    assert_int_equal(encode_str("hello world", two, 2), 2);
    assert_int_equal(two[0], 101);
    assert_int_equal(two[1], 102);
}

/* ---- vocabulary loading and lookup ---- */

/* Writes content to a new temporary file; path receives its name. */
static void write_temp(char *path, size_t n, const char *content)
{
    int k = snprintf(path, n, "/tmp/sc_test_vocab_XXXXXX");
    assert_true(k > 0 && (size_t)k < n);
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    size_t len = strlen(content);
    assert_int_equal(write(fd, content, len), (ssize_t)len);
    close(fd);
}

static void test_load_errors(void **state)
{
    (void)state;
    char err[ERRLEN], path[PATHLEN];
    sc_tokenizer_t *tok = (sc_tokenizer_t *)&tok; /* must be reset to NULL on failure */

    const char *missing = "/nonexistent/dir/vocab.txt";
    assert_int_not_equal(sc_tokenizer_load(missing, &tok, err, sizeof(err)), SC_OK);
    assert_null(tok);
    assert_non_null(strstr(err, missing));

    write_temp(path, sizeof(path), "[PAD]\n[UNK]\n[CLS]\nhello\n");
    assert_int_equal(sc_tokenizer_load(path, &tok, err, sizeof(err)), SC_ERR_INVALID);
    assert_null(tok);
    assert_non_null(strstr(err, path));
    assert_non_null(strstr(err, "[SEP]"));
    unlink(path);

    write_temp(path, sizeof(path), "");
    assert_int_not_equal(sc_tokenizer_load(path, &tok, err, sizeof(err)), SC_OK);
    assert_non_null(strstr(err, path));
    unlink(path);

    /* A small valid vocabulary, last line without '\n'; a tiny errbuf is fine. */
    write_temp(path, sizeof(path), "[PAD]\n[UNK]\n[CLS]\n[SEP]\nhe\n##llo\n!");
    assert_int_equal(sc_tokenizer_load(path, &tok, err, 1), SC_OK);
    assert_int_equal(sc_tokenizer_vocab_size(tok), 7);
    assert_int_equal(sc_tokenizer_id(tok, "!"), 6);
    int32_t ids[8];
    int n = sc_tokenizer_encode(tok, "Hello!  hex", 11, ids, 8);
    assert_true(same_ids(ids, n, (const int32_t[]){2, 4, 5, 6, 1, 3}, 6));
    sc_tokenizer_free(tok);
    unlink(path);

    sc_tokenizer_free(NULL);
}

static void test_lookup(void **state)
{
    (void)state;
    assert_int_equal(sc_tokenizer_vocab_size(g_tok), 30522);
    assert_int_equal(sc_tokenizer_id(g_tok, "[PAD]"), 0);
    assert_int_equal(sc_tokenizer_id(g_tok, "[UNK]"), 100);
    assert_int_equal(sc_tokenizer_id(g_tok, "[CLS]"), 101);
    assert_int_equal(sc_tokenizer_id(g_tok, "[SEP]"), 102);
    assert_int_equal(sc_tokenizer_id(g_tok, "the"), 1996);
    assert_int_equal(sc_tokenizer_id(g_tok, "##ing"), 2075);
    assert_int_equal(sc_tokenizer_id(g_tok, "not-a-token-at-all"), -1);
    assert_int_equal(sc_tokenizer_id(g_tok, ""), -1);
    assert_string_equal(sc_tokenizer_token(g_tok, 101), "[CLS]");
    assert_string_equal(sc_tokenizer_token(g_tok, 7592), "hello");
    assert_null(sc_tokenizer_token(g_tok, -1));
    assert_null(sc_tokenizer_token(g_tok, 30522));
    for (int32_t id = 0; id < sc_tokenizer_vocab_size(g_tok); id++)
        assert_int_equal(sc_tokenizer_id(g_tok, sc_tokenizer_token(g_tok, id)), id);
}

/* ---- inputs at the edges ---- */

static void test_empty_and_whitespace(void **state)
{
    (void)state;
    static const char *const inputs[] = {
        "", " ", "\t\n\r ", "\xc2\xa0\xe3\x80\x80\xe2\x80\x83", "\x01\x02\x7f", "\xef\xbf\xbd",
    };
    int32_t ids[SC_TOKENIZER_MAX_TOKENS];
    for (size_t i = 0; i < sizeof(inputs) / sizeof(inputs[0]); i++) {
        int n = encode_str(inputs[i], ids, SC_TOKENIZER_MAX_TOKENS);
        assert_true(same_ids(ids, n, (const int32_t[]){101, 102}, 2));
    }
    assert_int_equal(encode(NULL, 0, ids, SC_TOKENIZER_MAX_TOKENS), 2);
    assert_int_equal(encode("x", 1, ids, 1), 0); /* below the contract: nothing written */
}

static void test_long_input(void **state)
{
    (void)state;
    static const char *const patterns[] = {
        "The quick brown fox jumps over the lazy dog. ",
        "a",
        " ",
        "\xc3\xa9\xcc\x81",
        "\xe4\xb8\xad",
        "supercalifragilistic",
        "!",
    };
    static const size_t want_n[] = {256, 3, 2, 3, 256, 3, 256};
    char *buf = malloc(LONG_INPUT);
    assert_non_null(buf);
    int32_t ids[SC_TOKENIZER_MAX_TOKENS];
    for (size_t p = 0; p < sizeof(patterns) / sizeof(patterns[0]); p++) {
        size_t pl = strlen(patterns[p]), len = 0;
        while (len + pl <= LONG_INPUT) {
            memcpy(buf + len, patterns[p], pl);
            len += pl;
        }
        double t0 = now_s();
        int n = encode(buf, len, ids, SC_TOKENIZER_MAX_TOKENS);
        double dt = now_s() - t0;
        printf("long input %zu: %zu bytes -> %d ids in %.3f ms\n", p, len, n, dt * 1e3);
        assert_int_equal(n, (int)want_n[p]);
        assert_int_equal(ids[0], 101);
        assert_int_equal(ids[n - 1], 102);
    }
    free(buf);
}

static void test_invalid_utf8(void **state)
{
    (void)state;
    static const struct {
        const char *bad, *same_as;
    } cases[] = {
        {"ab\342\202cd", "abcd"},     /* truncated sequence inside a word */
        {"abc\xe2\x82", "abc"},       /* truncated at the end */
        {"\xff\xfe hi", " hi"},       /* bytes that never occur */
        {"x\xc0\xafy", "xy"},         /* overlong '/' */
        {"x\xed\xa0\x80y", "xy"},     /* surrogate */
        {"x\xf4\x90\x80\x80y", "xy"}, /* above U+10FFFF */
        {"\342caf\303\251", "cafe"},  /* a lead byte does not swallow ASCII */
        {"\x80\x80\xbf", ""},         /* lone continuation bytes */
    };
    int32_t a[SC_TOKENIZER_MAX_TOKENS], b[SC_TOKENIZER_MAX_TOKENS];
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        int na = encode_str(cases[i].bad, a, SC_TOKENIZER_MAX_TOKENS);
        int nb = encode_str(cases[i].same_as, b, SC_TOKENIZER_MAX_TOKENS);
        assert_true(same_ids(a, na, b, nb));
    }
    /* Random bytes: well-formed output, whatever the input. */
    unsigned seed = 12345;
    char buf[512];
    for (int r = 0; r < 20000; r++) {
        size_t len = (size_t)(rand_r(&seed) % (int)sizeof(buf));
        for (size_t i = 0; i < len; i++)
            buf[i] = (char)(rand_r(&seed) & 0xFF);
        int max = 2 + rand_r(&seed) % 300;
        int n = encode(buf, len, a, max > SC_TOKENIZER_MAX_TOKENS ? SC_TOKENIZER_MAX_TOKENS : max);
        assert_true(n >= 2 && n <= SC_TOKENIZER_MAX_TOKENS);
        assert_int_equal(a[0], 101);
        assert_int_equal(a[n - 1], 102);
        for (int i = 0; i < n; i++)
            assert_true(a[i] >= 0 && a[i] < sc_tokenizer_vocab_size(g_tok));
    }
}

/* ---- sharing and speed ---- */

static void *thread_main(void *arg)
{
    int *bad = arg;
    int32_t got[SC_TOKENIZER_MAX_TOKENS];
    for (int pass = 0; pass < 3; pass++)
        for (int i = 0; i < g_n_lines; i++) {
            const fixture_line_t *l = &g_lines[i];
            int n = encode(l->text, l->len, got, SC_TOKENIZER_MAX_TOKENS);
            *bad += !same_ids(got, n, l->ids, l->n_ids);
        }
    return NULL;
}

static void test_threads(void **state)
{
    (void)state;
    pthread_t th[N_THREADS];
    int bad[N_THREADS] = {0};
    for (int t = 0; t < N_THREADS; t++)
        assert_int_equal(pthread_create(&th[t], NULL, thread_main, &bad[t]), 0);
    for (int t = 0; t < N_THREADS; t++) {
        assert_int_equal(pthread_join(th[t], NULL), 0);
        assert_int_equal(bad[t], 0);
    }
}

static void test_throughput(void **state)
{
    (void)state;
    int32_t got[SC_TOKENIZER_MAX_TOKENS];
    long long tokens = 0, bytes = 0;
    double t0 = now_s();
    for (int pass = 0; pass < BENCH_PASSES; pass++)
        for (int i = 0; i < g_n_lines; i++) {
            tokens += encode(g_lines[i].text, g_lines[i].len, got, SC_TOKENIZER_MAX_TOKENS);
            bytes += (long long)g_lines[i].len;
        }
    double dt = now_s() - t0;
    printf("throughput: %lld tokens (incl. [CLS]/[SEP]) in %.3f s on one core: %.2f M tokens/s, "
           "%.1f MB/s\n",
           tokens, dt, (double)tokens / dt * 1e-6, (double)bytes / dt * 1e-6);
    assert_true(tokens > 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fixture_ids), cmocka_unit_test(test_reference_cases),
        cmocka_unit_test(test_truncation),  cmocka_unit_test(test_load_errors),
        cmocka_unit_test(test_lookup),      cmocka_unit_test(test_empty_and_whitespace),
        cmocka_unit_test(test_long_input),  cmocka_unit_test(test_invalid_utf8),
        cmocka_unit_test(test_threads),     cmocka_unit_test(test_throughput),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
