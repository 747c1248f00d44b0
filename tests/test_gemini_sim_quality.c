/* test_gemini_sim_quality.c - the simulator's quality mode (sim.h, "Quality spec"): the documented
 * difficulty and final-answer formulas against the server, right and wrong per tier, the judge's
 * verdicts and its malformed requests, summaries at loss 0, 0.5 and 1, the counters, answers
 * byte-identical to before when the mode is off, the truth file and --record. */
#include <inttypes.h>
#include <stdbool.h>
#include <unistd.h>

#include "tests/gemini_sim_test_util.h"

#define GEN_PRO    "/v1beta/models/gemini-2.5-pro:generateContent"
#define GEN_LITE   "/v1beta/models/gemini-2.5-flash-lite:generateContent"
#define GEN_LITE20 "/v1beta/models/gemini-2.0-flash-lite:generateContent"
#define Q_SPEC     "lite=0.35,cheap=0.6,strong=0.9,summary_loss=0,seed=1"
#define Q_LITE     0.35
#define Q_CHEAP    0.6
#define Q_STRONG   0.9
#define X_MAX      32
#define SEARCH_MAX 10000 /* prompts tried when looking for one of a given difficulty */

/* The answer of gemini-2.5-flash to req_camel before the quality mode existed (HEAD 2025-12). */
static const char known_flash_camel[] =
    "Simulated answer from gemini-2.5-flash (fingerprint b2ccb13184de5140): summit ridge dune "
    "nimbus fern lumen heron estuary lagoon ember xenon fern kestrel ridge echo yarrow quartz "
    "garnet quill estuary grove ridge thistle larch fjord zenith juniper kelp aurora raven garnet "
    "raven velvet aurora canyon knoll beacon aurora knoll fjord cedar breeze glacier iris nectar "
    "fjord delta heron kelp yonder upland onyx fern garnet heron fjord ridge willow fern knoll "
    "beacon xenon tundra delta island zephyr ridge summit willow amber valley umber juniper fern "
    "lumen hollow cedar maple lagoon breeze.";

/* ---- the formulas of sim.h, written again from the documentation ---- */

static uint64_t doc_fnv(uint64_t h, const unsigned char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        h = (h ^ p[i]) * 0x100000001b3ull;
    return h;
}

static uint64_t doc_hash(const char *text)
{
    /* n = b" ".join(p.encode().lower().split()) */
    char norm[4096];
    size_t n = 0;
    const char *ws = " \t\n\r\v\f";
    for (const char *p = text; *p;) {
        while (*p && strchr(ws, *p))
            p++;
        if (!*p)
            break;
        if (n > 0)
            norm[n++] = ' ';
        while (*p && !strchr(ws, *p) && n + 1 < sizeof norm) {
            char c = *p++;
            norm[n++] = (c >= 'A' && c <= 'Z') ? (char)(c + 32) : c;
        }
    }
    return doc_fnv(0xcbf29ce484222325ull, (const unsigned char *)norm, n);
}

static double doc_difficulty(const char *text)
{
    return (double)(doc_hash(text) >> 11) / 9007199254740992.0; /* 2^53 */
}

static uint64_t doc_splitmix(uint64_t state)
{
    uint64_t z = state + 0x9e3779b97f4a7c15ull;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* The right X of a four-option choice prompt (the only kind these tests build). */
static void doc_right_choice(const char *text, char out[X_MAX])
{
    snprintf(out, X_MAX, "%c", (char)('A' + doc_splitmix(doc_hash(text)) % 4));
}

/* ---- helpers ---- */

static sc_gemini_sim_t *q_start(const char *spec)
{
    sc_gemini_sim_opts_t o = {.threads = 2, .quality = spec};
    sc_gemini_sim_t *sim = NULL;
    char err[256];
    sc_status_t st = sc_gemini_sim_start(&o, &sim, err, sizeof err);
    if (st != SC_OK)
        fail_msg("sim start: %s: %s", sc_strerror(st), err);
    return sim;
}

/* A generateContent body with one user turn (and a system instruction when sys is set).
 * @remark the caller frees the string. */
static char *q_body(const char *sys, const char *user, bool json_mime)
{
    json_t *doc =
        json_pack("{s:[{s:s, s:[{s:s}]}]}", "contents", "role", "user", "parts", "text", user);
    assert_non_null(doc);
    if (sys)
        assert_int_equal(json_object_set_new(doc, "systemInstruction",
                                             json_pack("{s:[{s:s}]}", "parts", "text", sys)),
                         0);
    if (json_mime)
        assert_int_equal(
            json_object_set_new(doc, "generationConfig",
                                json_pack("{s:s, s:{s:s}}", "responseMimeType", "application/json",
                                          "responseSchema", "type", "OBJECT")),
            0);
    char *s = json_dumps(doc, JSON_COMPACT);
    assert_non_null(s);
    json_decref(doc);
    return s;
}

/* POST a body and return the answer text. @remark the caller frees it. */
static char *q_ask(sc_gemini_sim_t *sim, const char *path, const char *body)
{
    test_resp_t r = test_post(sim, path, body);
    assert_int_equal(r.status, 200);
    json_t *doc = test_json(&r);
    const char *t = test_text(doc);
    assert_non_null(t);
    char *out = strdup(t);
    json_decref(doc);
    test_resp_free(&r);
    return out;
}

/* The X of the answer's last line "Final answer: X" (the answer must end with it). */
static void q_final(const char *answer, char out[X_MAX])
{
    const char *nl = strrchr(answer, '\n');
    assert_non_null(nl);
    assert_int_equal(strncmp(nl + 1, "Final answer: ", 14), 0);
    sc_strlcpy(out, nl + 15, X_MAX);
    assert_true(out[0] != '\0');
}

/* A four-option prompt whose difficulty lies in [lo, hi). */
static void q_find_prompt(double lo, double hi, char *out, size_t outlen)
{
    for (int i = 0; i < SEARCH_MAX; i++) {
        snprintf(out, outlen,
                 "Question %c%c%c: which one is right?\nA. first\nB. second\nC. third\nD. fourth",
                 'a' + i % 26, 'a' + (i / 26) % 26, 'a' + (i / 676) % 26);
        double d = doc_difficulty(out);
        if (d >= lo && d < hi)
            return;
    }
    fail_msg("no prompt with difficulty in [%g, %g)", lo, hi);
}

/* GET /sim/difficulty?text=... (new reference). */
static json_t *q_difficulty(sc_gemini_sim_t *sim, const char *text)
{
    CURL *c = curl_easy_init();
    assert_non_null(c);
    char *esc = curl_easy_escape(c, text, 0);
    char path[1024];
    snprintf(path, sizeof path, "/sim/difficulty?text=%s", esc);
    curl_free(esc);
    curl_easy_cleanup(c);
    test_resp_t r = test_http(sim, "GET", path, NULL, NULL, 0);
    assert_int_equal(r.status, 200);
    json_t *doc = test_json(&r);
    test_resp_free(&r);
    return doc;
}

/* ---- tests ---- */

static void test_difficulty_formula(void **state)
{
    (void)state;
    sc_gemini_sim_t *sim = q_start(Q_SPEC);
    static const char *const texts[] = {
        "Name a prime number.",
        "  What IS\t17 +\n 25?  ",
        "Which?\nA. x\nB) y\n(C) z\nD. w",
        "h\xc3\xa9llo W\xc3\xb6rld",
        "single",
        "Mixed   CASE\r\nand\vtabs\f.",
    };
    for (size_t i = 0; i < SC_ARRAY_LEN(texts); i++) {
        json_t *doc = q_difficulty(sim, texts[i]);
        double d = doc_difficulty(texts[i]);
        assert_true(json_real_value(json_object_get(doc, "difficulty")) == d);
        assert_true(sc_gemini_sim_difficulty(texts[i], strlen(texts[i])) == d);
        char fnv[20];
        snprintf(fnv, sizeof fnv, "%016" PRIx64, doc_hash(texts[i]));
        assert_string_equal(json_string_value(json_object_get(doc, "fnv")), fnv);
        assert_true(json_is_true(json_object_get(doc, "quality")));
        json_t *right = json_object_get(doc, "right");
        assert_int_equal(json_is_true(json_object_get(right, "lite")), Q_LITE >= d);
        assert_int_equal(json_is_true(json_object_get(right, "strong")), Q_STRONG >= d);
        if (i == 2) {
            char x[X_MAX];
            doc_right_choice(texts[i], x);
            assert_string_equal(json_string_value(json_object_get(doc, "kind")), "choice");
            assert_string_equal(json_string_value(json_object_get(doc, "right_answer")), x);
        }
        json_decref(doc);
    }
    /* case and spacing do not change it; the words do */
    assert_true(doc_difficulty("What is 2 + 2?") == doc_difficulty("  what IS 2\n+ 2?"));
    assert_true(doc_difficulty("What is 2 + 2?") != doc_difficulty("What is 2 + 3?"));
    test_resp_t r = test_http(sim, "GET", "/sim/difficulty", NULL, NULL, 0);
    assert_int_equal(r.status, 400);
    test_resp_free(&r);
    sc_gemini_sim_stop(sim);
}

static void test_right_on_strong_wrong_on_lite(void **state)
{
    (void)state;
    sc_gemini_sim_t *sim = q_start(Q_SPEC);
    char prompt[256], right[X_MAX], xp[X_MAX], xl[X_MAX];
    q_find_prompt(Q_LITE + 0.01, Q_STRONG, prompt, sizeof prompt);
    doc_right_choice(prompt, right);
    char *body = q_body(NULL, prompt, false);
    char *ap = q_ask(sim, GEN_PRO, body), *al = q_ask(sim, GEN_LITE, body);
    q_final(ap, xp);
    q_final(al, xl);
    assert_string_equal(xp, right);
    assert_string_not_equal(xl, right);
    assert_true(strlen(xl) == 1 && xl[0] >= 'A' && xl[0] <= 'D'); /* still one of the options */
    /* deterministic: asked again, the same wrong answer */
    char *al2 = q_ask(sim, GEN_LITE, body);
    assert_string_equal(al, al2);
    /* the JSON answer carries the same final answer in its "answer" string */
    char *jbody = q_body(NULL, prompt, true);
    char *jl = q_ask(sim, GEN_LITE, jbody);
    json_t *jdoc = json_loads(jl, 0, NULL);
    assert_non_null(jdoc);
    char jx[X_MAX];
    q_final(json_string_value(json_object_get(jdoc, "answer")), jx);
    assert_string_equal(jx, xl);
    json_decref(jdoc);
    free(jl);
    free(jbody);
    free(al2);
    free(ap);
    free(al);
    free(body);

    /* an easy prompt is right everywhere */
    q_find_prompt(0.0, Q_LITE, prompt, sizeof prompt);
    doc_right_choice(prompt, right);
    body = q_body(NULL, prompt, false);
    al = q_ask(sim, GEN_LITE20, body);
    q_final(al, xl);
    assert_string_equal(xl, right);
    free(al);
    free(body);
    sc_gemini_sim_stop(sim);
}

static void test_agree_iff_both_right(void **state)
{
    (void)state;
    sc_gemini_sim_t *sim = q_start(Q_SPEC);
    static const char *const paths[] = {GEN_PRO, GEN_FLASH, GEN_LITE};
    static const double caps[] = {Q_STRONG, Q_CHEAP, Q_LITE};
    int both = 0, one = 0;
    for (int i = 0; i < 40; i++) {
        char prompt[128];
        snprintf(prompt, sizeof prompt, "How many apples are left after step %d?", i);
        double d = doc_difficulty(prompt);
        char *body = q_body(NULL, prompt, false);
        char x[3][X_MAX];
        for (int m = 0; m < 3; m++) {
            char *a = q_ask(sim, paths[m], body);
            q_final(a, x[m]);
            free(a);
        }
        free(body);
        for (int a = 0; a < 3; a++)
            for (int b = a + 1; b < 3; b++) {
                bool ra = caps[a] >= d, rb = caps[b] >= d;
                bool agree = strcmp(x[a], x[b]) == 0;
                if (ra && rb) {
                    assert_true(agree);
                    both++;
                } else if (ra != rb) {
                    assert_false(agree);
                    one++;
                } else {
                    assert_false(agree); /* 1000 options, the wrong one depends on the model */
                }
            }
    }
    assert_true(both > 0 && one > 0);
    sc_gemini_sim_stop(sim);
}

/* The verdict for (prompt, a, b) from the pro model; NULL when the text is not JSON.
 * @return a new reference or NULL; *text_out (when set) gets the text, the caller frees it. */
static json_t *q_judge(sc_gemini_sim_t *sim, const char *path, const char *user, bool json_mime,
                       char **text_out)
{
    char *body = q_body("scrimp-judge v1: compare the answers.", user, json_mime);
    char *text = q_ask(sim, path, body);
    free(body);
    json_t *doc = json_loads(text, 0, NULL);
    if (text_out)
        *text_out = text;
    else
        free(text);
    return doc;
}

static char *q_judge_user(const char *prompt, const char *a, const char *b)
{
    json_t *u = json_pack("{s:s, s:s, s:s}", "prompt", prompt, "answer_a", a, "answer_b", b);
    char *s = json_dumps(u, JSON_COMPACT);
    json_decref(u);
    assert_non_null(s);
    return s;
}

static void test_judge_truthful(void **state)
{
    (void)state;
    sc_gemini_sim_t *sim = q_start(Q_SPEC);
    char prompt[256];
    q_find_prompt(Q_LITE + 0.01, Q_STRONG, prompt, sizeof prompt);
    char *body = q_body(NULL, prompt, false);
    char *ap = q_ask(sim, GEN_PRO, body), *al = q_ask(sim, GEN_LITE, body);
    free(body);
    struct {
        const char *a, *b;
        bool ac, bc, agree;
    } cases[] = {
        {ap, al, true, false, false},
        {al, ap, false, true, false},
        {ap, ap, true, true, true},
        {al, al, false, false, true},
        {ap, "I do not know.", true, false, false},
    };
    for (size_t i = 0; i < SC_ARRAY_LEN(cases); i++) {
        char *user = q_judge_user(prompt, cases[i].a, cases[i].b);
        json_t *v = q_judge(sim, GEN_PRO, user, true, NULL);
        free(user);
        assert_non_null(v);
        assert_int_equal(json_object_size(v), 3);
        assert_true(json_is_boolean(json_object_get(v, "a_correct")));
        assert_int_equal(json_is_true(json_object_get(v, "a_correct")), cases[i].ac);
        assert_int_equal(json_is_true(json_object_get(v, "b_correct")), cases[i].bc);
        assert_int_equal(json_is_true(json_object_get(v, "agree")), cases[i].agree);
        json_decref(v);
    }
    /* a JSON answer's final answer counts too */
    char *jbody = q_body(NULL, prompt, true);
    char *jp = q_ask(sim, GEN_PRO, jbody);
    char *user = q_judge_user(prompt, jp, ap);
    json_t *v = q_judge(sim, GEN_PRO, user, true, NULL);
    assert_non_null(v);
    assert_true(json_is_true(json_object_get(v, "a_correct")));
    assert_true(json_is_true(json_object_get(v, "agree")));
    json_decref(v);
    free(user);
    free(jp);
    free(jbody);
    free(ap);
    free(al);
    sc_gemini_sim_stop(sim);
}

static void test_judge_malformed(void **state)
{
    (void)state;
    sc_gemini_sim_t *sim = q_start(Q_SPEC);
    char *good = q_judge_user("Pick one.\nA. x\nB. y", "Final answer: A", "Final answer: B");
    static const char *const bad_users[] = {
        "not json at all",
        "[1, 2]",
        "{\"prompt\":\"p\",\"answer_a\":\"a\"}",
        "{\"prompt\":\"p\",\"answer_a\":\"a\",\"answer_b\":3}",
        "{\"prompt\":\"p\",\"answer_a\":\"a\",\"answer_b\":\"b\",\"extra\":\"x\"}",
    };
    char *text = NULL, *text2 = NULL;
    for (size_t i = 0; i < SC_ARRAY_LEN(bad_users); i++) {
        assert_null(q_judge(sim, GEN_PRO, bad_users[i], true, &text));
        assert_int_equal(strncmp(text, "Verdict unavailable: malformed judge request (", 46), 0);
        assert_null(q_judge(sim, GEN_PRO, bad_users[i], true, &text2));
        assert_string_equal(text, text2); /* deterministic */
        free(text);
        free(text2);
    }
    /* a well-formed user turn without responseMimeType application/json */
    assert_null(q_judge(sim, GEN_PRO, good, false, &text));
    assert_non_null(strstr(text, "responseMimeType"));
    free(text);
    /* a judge request to a cheaper model is an ordinary (JSON) answer: no verdict in it */
    json_t *v = q_judge(sim, GEN_LITE, good, true, &text);
    assert_non_null(v);
    assert_null(json_object_get(v, "a_correct"));
    assert_non_null(strstr(text, "Final answer: "));
    json_decref(v);
    v = q_judge(sim, GEN_PRO, good, true, NULL);
    assert_non_null(v);
    json_decref(v);
    free(text);
    free(good);
    json_t *stats = test_stats_doc(sim);
    json_t *q = json_object_get(stats, "quality");
    assert_int_equal(json_integer_value(json_object_get(q, "judge_requests")),
                     2 * SC_ARRAY_LEN(bad_users) + 2);
    assert_int_equal(json_integer_value(json_object_get(q, "judge_malformed")),
                     2 * SC_ARRAY_LEN(bad_users) + 1);
    assert_int_equal(json_integer_value(json_object_get(q, "judge_declined")), 1);
    json_decref(stats);
    sc_gemini_sim_stop(sim);
}

#define SUMMARY_SYS                                                                                \
    "You maintain a running summary of a conversation between a user and an assistant. Copy "      \
    "every number, code and name verbatim."
#define SUMMARY_USER                                                                               \
    "Previous summary: (none)\n\nNew turns of the conversation:\n"                                 \
    "User: hello, my order ORD-1234 has not arrived; write to alice.smith@example.com\n"           \
    "Assistant: I see it was shipped on 2024-05-01 by Hermes, total 1,299.50 EUR.\n"               \
    "User: the courier said ticket TCK-77 at 10:30, ask Bob Marley\n"                              \
    "Write the updated summary."

static const char *const summary_ids[] = {
    "ORD-1234",   "alice.smith@example.com",
    "2024-05-01", "Hermes",
    "1,299.50",   "EUR",
    "TCK-77",     "10:30",
    "Bob",        "Marley",
};

static char *q_summary(sc_gemini_sim_t *sim)
{
    char *body = q_body(SUMMARY_SYS, SUMMARY_USER, false);
    char *t = q_ask(sim, GEN_LITE, body);
    free(body);
    return t;
}

static void test_summary_loss(void **state)
{
    (void)state;
    sc_gemini_sim_t *sim = q_start("summary_loss=0,seed=3");
    char *t = q_summary(sim);
    for (size_t i = 0; i < SC_ARRAY_LEN(summary_ids); i++)
        if (!strstr(t, summary_ids[i]))
            fail_msg("summary lost %s: %s", summary_ids[i], t);
    /* scaffold and ordinary words are not identifiers */
    assert_null(strstr(t, "User"));
    assert_null(strstr(t, "Assistant"));
    assert_null(strstr(t, "order"));
    assert_null(strstr(t, "Final answer"));
    free(t);
    json_t *stats = test_stats_doc(sim);
    json_t *q = json_object_get(stats, "quality");
    assert_int_equal(json_integer_value(json_object_get(q, "summaries")), 1);
    assert_int_equal(json_integer_value(json_object_get(q, "summary_tokens_kept")),
                     SC_ARRAY_LEN(summary_ids));
    assert_int_equal(json_integer_value(json_object_get(q, "summary_tokens_dropped")), 0);
    json_decref(stats);
    sc_gemini_sim_stop(sim);

    sim = q_start("summary_loss=1");
    t = q_summary(sim);
    assert_string_equal(t, "Simulated summary: (nothing kept).");
    free(t);
    stats = test_stats_doc(sim);
    q = json_object_get(stats, "quality");
    assert_int_equal(json_integer_value(json_object_get(q, "summary_tokens_dropped")),
                     SC_ARRAY_LEN(summary_ids));
    json_decref(stats);
    sc_gemini_sim_stop(sim);

    /* in between: some kept, some dropped, the same ones for the same seed */
    sim = q_start("summary_loss=0.5,seed=3");
    t = q_summary(sim);
    char *t2 = q_summary(sim);
    assert_string_equal(t, t2);
    size_t kept = 0;
    for (size_t i = 0; i < SC_ARRAY_LEN(summary_ids); i++)
        kept += strstr(t, summary_ids[i]) != NULL;
    assert_true(kept > 0 && kept < SC_ARRAY_LEN(summary_ids));
    free(t);
    free(t2);
    sc_gemini_sim_stop(sim);
}

static void test_stats_right_wrong(void **state)
{
    (void)state;
    sc_gemini_sim_t *sim = q_start(Q_SPEC);
    char prompt[256];
    q_find_prompt(Q_LITE + 0.01, Q_STRONG, prompt, sizeof prompt);
    char *body = q_body(NULL, prompt, false);
    free(q_ask(sim, GEN_PRO, body));
    free(q_ask(sim, GEN_LITE, body));
    free(q_ask(sim, GEN_LITE, body));
    free(body);
    json_t *stats = test_stats_doc(sim);
    json_t *q = json_object_get(stats, "quality");
    json_t *right = json_object_get(q, "right"), *wrong = json_object_get(q, "wrong");
    assert_int_equal(json_integer_value(json_object_get(right, "gemini-2.5-pro")), 1);
    assert_int_equal(json_integer_value(json_object_get(wrong, "gemini-2.5-pro")), 0);
    assert_int_equal(json_integer_value(json_object_get(wrong, "gemini-2.5-flash-lite")), 2);
    assert_int_equal(json_integer_value(json_object_get(right, "gemini-2.5-flash-lite")), 0);
    json_decref(stats);
    sc_gemini_sim_stop(sim);
}

static void test_off_unchanged(void **state)
{
    (void)state;
    sc_gemini_sim_t *sim = q_start(NULL);
    char *t = q_ask(sim, GEN_FLASH, req_camel);
    assert_string_equal(t, known_flash_camel);
    free(t);
    /* a judge or summary request is an ordinary prompt without the mode */
    char *body =
        q_body("scrimp-judge", "{\"prompt\":\"p\",\"answer_a\":\"a\",\"answer_b\":\"b\"}", true);
    t = q_ask(sim, GEN_PRO, body);
    assert_null(strstr(t, "Final answer"));
    assert_null(strstr(t, "a_correct"));
    free(t);
    free(body);
    json_t *stats = test_stats_doc(sim);
    assert_null(json_object_get(stats, "quality"));
    json_decref(stats);
    test_resp_t r = test_http(sim, "GET", "/sim/difficulty?text=hello", NULL, NULL, 0);
    assert_int_equal(r.status, 200);
    json_t *doc = test_json(&r);
    assert_true(json_is_false(json_object_get(doc, "quality")));
    assert_null(json_object_get(doc, "right"));
    json_decref(doc);
    test_resp_free(&r);
    sc_gemini_sim_stop(sim);

    /* with the mode on the same request ends with a final answer line after the same words */
    sim = q_start("on");
    t = q_ask(sim, GEN_FLASH, req_camel);
    assert_int_equal(strncmp(t, known_flash_camel, strlen(known_flash_camel)), 0);
    assert_int_equal(strncmp(t + strlen(known_flash_camel), "\nFinal answer: ", 15), 0);
    free(t);
    sc_gemini_sim_stop(sim);
}

static void test_bad_quality_spec(void **state)
{
    (void)state;
    struct {
        const char *spec, *needle;
    } cases[] = {
        {"lite=0.3,bogus=1", "bogus"},      {"lite=1.5", "lite"}, {"strong=-0.1", "strong"},
        {"summary_loss=x", "summary_loss"}, {"seed=abc", "seed"}, {"cheap", "cheap"},
    };
    for (size_t i = 0; i < SC_ARRAY_LEN(cases); i++) {
        sc_gemini_sim_opts_t o = {.quality = cases[i].spec};
        sc_gemini_sim_t *sim = NULL;
        char err[256] = "";
        assert_int_equal(sc_gemini_sim_start(&o, &sim, err, sizeof err), SC_ERR_INVALID_ARG);
        assert_null(sim);
        if (!strstr(err, cases[i].needle))
            fail_msg("'%s': error '%s' does not name '%s'", cases[i].spec, err, cases[i].needle);
    }
}

/* ---- the truth file and --record ---- */

#define TRUTH_PATH_MAX  256
#define RECORD_LINE_MAX ((size_t)1 << 20)

/* A fresh temporary file holding content (NULL: empty). @return its path in path. */
static void q_temp_file(char path[TRUTH_PATH_MAX], const char *content)
{
    const char *tmp = getenv("TMPDIR");
    snprintf(path, TRUTH_PATH_MAX, "%s/test_gemini_sim_quality.XXXXXX",
             tmp && tmp[0] ? tmp : "/tmp");
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    FILE *f = fdopen(fd, "w");
    assert_non_null(f);
    if (content)
        assert_int_equal(fputs(content, f) >= 0, 1);
    assert_int_equal(fclose(f), 0);
}

/* One truth line for text. lite/cheap/strong: 1 right, 0 wrong, -1 absent.
 * @remark the caller frees the string. */
static char *q_truth_line(const char *text, int lite, int cheap, int strong)
{
    json_t *right = json_object();
    assert_non_null(right);
    const char *names[] = {"lite", "cheap", "strong"};
    int vals[] = {lite, cheap, strong};
    for (int i = 0; i < 3; i++)
        if (vals[i] >= 0)
            assert_int_equal(json_object_set_new(right, names[i], json_boolean(vals[i])), 0);
    json_t *doc = json_pack("{s:s, s:o}", "text", text, "right", right);
    assert_non_null(doc);
    char *s = json_dumps(doc, JSON_COMPACT);
    assert_non_null(s);
    json_decref(doc);
    return s;
}

static sc_gemini_sim_t *q_start_opts(const char *spec, const char *truth, const char *record)
{
    sc_gemini_sim_opts_t o = {
        .threads = 2, .quality = spec, .quality_truth = truth, .record = record};
    sc_gemini_sim_t *sim = NULL;
    char err[512];
    sc_status_t st = sc_gemini_sim_start(&o, &sim, err, sizeof err);
    if (st != SC_OK)
        fail_msg("sim start: %s: %s", sc_strerror(st), err);
    return sim;
}

/* The same prompt as q_find_prompt writes, with other case and spacing on every line (the lines
 * stay, so its kind and options do too). */
static void q_respace(const char *prompt, char *out, size_t outlen)
{
    size_t n = 0;
    for (const char *p = prompt; *p && n + 4 < outlen; p++) {
        if (*p == '\n') {
            out[n++] = ' ';
            out[n++] = '\t';
            out[n++] = '\n';
            continue;
        }
        out[n++] = (*p >= 'a' && *p <= 'z') ? (char)(*p - 32) : *p;
        if (*p == ' ')
            out[n++] = ' ';
    }
    out[n] = '\0';
    assert_true(doc_hash(out) == doc_hash(prompt));
    assert_string_not_equal(out, prompt);
}

/* The final answer of path to a one-turn prompt. */
static void q_final_of(sc_gemini_sim_t *sim, const char *path, const char *prompt, char x[X_MAX])
{
    char *body = q_body(NULL, prompt, false);
    char *a = q_ask(sim, path, body);
    q_final(a, x);
    free(a);
    free(body);
}

/* A prompt that capability makes right on strong and wrong on lite is listed the other way round:
 * lite answers the right X and strong does not; cheap, not named, keeps the capability rule; a
 * prompt not in the file keeps it for every tier; case and spacing do not matter on either side. */
static void test_truth_overrides_capability(void **state)
{
    (void)state;
    char prompt[256], other[256], spaced[512], right[X_MAX], ro[X_MAX], x[X_MAX];
    q_find_prompt(Q_LITE + 0.01, Q_STRONG, prompt, sizeof prompt);
    double d = doc_difficulty(prompt);
    doc_right_choice(prompt, right);
    q_respace(prompt, spaced, sizeof spaced);
    /* the file lists the re-spaced form; the requests send the plain one, and the other way */
    char *l1 = q_truth_line(spaced, 1, -1, 0);
    char *l2 = q_truth_line("Some prompt nobody sends.", 0, 0, 0);
    char content[2048];
    snprintf(content, sizeof content, "%s\n\n%s\n", l1, l2);
    free(l1);
    free(l2);
    char path[TRUTH_PATH_MAX];
    q_temp_file(path, content);
    sc_gemini_sim_t *sim = q_start_opts(Q_SPEC, path, NULL);

    q_final_of(sim, GEN_LITE, prompt, x);
    assert_string_equal(x, right);
    q_final_of(sim, GEN_LITE20, spaced, x);
    assert_string_equal(x, right);
    char xs[X_MAX];
    q_final_of(sim, GEN_PRO, prompt, xs);
    assert_string_not_equal(xs, right);
    assert_true(strlen(xs) == 1 && xs[0] >= 'A' && xs[0] <= 'D');
    q_final_of(sim, GEN_FLASH, prompt, x); /* cheap: not in the line */
    assert_int_equal(strcmp(x, right) == 0, Q_CHEAP >= d);

    /* a prompt outside the file: the capability rule for every tier */
    for (int i = 0;; i++) {
        assert_true(i < SEARCH_MAX);
        snprintf(other, sizeof other, "Other %d?\nA. a\nB. b\nC. c\nD. d", i);
        if (doc_difficulty(other) > Q_LITE && doc_difficulty(other) <= Q_STRONG)
            break;
    }
    doc_right_choice(other, ro);
    q_final_of(sim, GEN_LITE, other, x);
    assert_string_not_equal(x, ro);
    q_final_of(sim, GEN_PRO, other, x);
    assert_string_equal(x, ro);

    json_t *stats = test_stats_doc(sim);
    json_t *q = json_object_get(stats, "quality");
    assert_int_equal(json_integer_value(json_object_get(q, "truth_lines")), 2);
    assert_int_equal(json_integer_value(json_object_get(q, "truth_hits")), 4);
    assert_int_equal(
        json_integer_value(json_object_get(json_object_get(q, "right"), "gemini-2.5-flash-lite")),
        1);
    assert_int_equal(
        json_integer_value(json_object_get(json_object_get(q, "wrong"), "gemini-2.5-pro")), 1);
    json_decref(stats);
    sc_gemini_sim_stop(sim);
    unlink(path);
}

/* The judge checks answers against the right X, so its verdicts follow the file; two tiers the
 * file makes right agree. */
static void test_truth_judge_follows(void **state)
{
    (void)state;
    char prompt[256], path[TRUTH_PATH_MAX];
    q_find_prompt(Q_LITE + 0.01, Q_STRONG, prompt, sizeof prompt);
    char *line = q_truth_line(prompt, 1, 1, 0);
    q_temp_file(path, line);
    free(line);
    sc_gemini_sim_t *sim = q_start_opts(Q_SPEC, path, NULL);
    char *body = q_body(NULL, prompt, false);
    char *al = q_ask(sim, GEN_LITE, body), *ac = q_ask(sim, GEN_FLASH, body),
         *ap = q_ask(sim, GEN_PRO, body);
    free(body);
    char xl[X_MAX], xc[X_MAX];
    q_final(al, xl);
    q_final(ac, xc);
    assert_string_equal(xl, xc);
    struct {
        const char *a, *b;
        bool ac, bc, agree;
    } cases[] = {
        {al, ap, true, false, false},
        {ap, al, false, true, false},
        {al, ac, true, true, true},
    };
    for (size_t i = 0; i < SC_ARRAY_LEN(cases); i++) {
        char *user = q_judge_user(prompt, cases[i].a, cases[i].b);
        json_t *v = q_judge(sim, GEN_PRO, user, true, NULL);
        free(user);
        assert_non_null(v);
        assert_int_equal(json_is_true(json_object_get(v, "a_correct")), cases[i].ac);
        assert_int_equal(json_is_true(json_object_get(v, "b_correct")), cases[i].bc);
        assert_int_equal(json_is_true(json_object_get(v, "agree")), cases[i].agree);
        json_decref(v);
    }
    free(al);
    free(ac);
    free(ap);
    sc_gemini_sim_stop(sim);
    unlink(path);
}

static void test_truth_difficulty_route(void **state)
{
    (void)state;
    char prompt[256], spaced[512], path[TRUTH_PATH_MAX];
    q_find_prompt(Q_LITE + 0.01, Q_STRONG, prompt, sizeof prompt);
    q_respace(prompt, spaced, sizeof spaced);
    double d = doc_difficulty(prompt);
    char *line = q_truth_line(prompt, 1, -1, 0);
    q_temp_file(path, line);
    free(line);
    sc_gemini_sim_t *sim = q_start_opts(Q_SPEC, path, NULL);
    json_t *doc = q_difficulty(sim, spaced);
    assert_true(json_is_true(json_object_get(doc, "truth")));
    assert_true(json_real_value(json_object_get(doc, "difficulty")) == d);
    json_t *right = json_object_get(doc, "right");
    assert_true(json_is_true(json_object_get(right, "lite")));
    assert_true(json_is_false(json_object_get(right, "strong")));
    assert_int_equal(json_is_true(json_object_get(right, "cheap")), Q_CHEAP >= d);
    json_decref(doc);
    /* one word more: not in the file, the capability rule */
    char longer[600];
    snprintf(longer, sizeof longer, "%s extra", prompt);
    double ld = doc_difficulty(longer);
    doc = q_difficulty(sim, longer);
    assert_true(json_is_false(json_object_get(doc, "truth")));
    right = json_object_get(doc, "right");
    assert_int_equal(json_is_true(json_object_get(right, "lite")), Q_LITE >= ld);
    assert_int_equal(json_is_true(json_object_get(right, "strong")), Q_STRONG >= ld);
    json_decref(doc);
    sc_gemini_sim_stop(sim);
    unlink(path);

    /* the mode on without a file: "truth" is false */
    sim = q_start(Q_SPEC);
    doc = q_difficulty(sim, prompt);
    assert_true(json_is_false(json_object_get(doc, "truth")));
    assert_int_equal(json_is_true(json_object_get(json_object_get(doc, "right"), "lite")),
                     Q_LITE >= d);
    json_decref(doc);
    json_t *stats = test_stats_doc(sim);
    assert_int_equal(
        json_integer_value(json_object_get(json_object_get(stats, "quality"), "truth_lines")), 0);
    json_decref(stats);
    sc_gemini_sim_stop(sim);
}

static void test_truth_malformed(void **state)
{
    (void)state;
    static const char good[] = "{\"text\":\"ok one\",\"right\":{\"lite\":true}}\n";
    struct {
        const char *bad, *needle;
    } cases[] = {
        {"not json", "not JSON"},
        {"[1,2]", "exactly the members"},
        {"{\"text\":\"t\"}", "exactly the members"},
        {"{\"text\":3,\"right\":{}}", "exactly the members"},
        {"{\"text\":\"t\",\"right\":{},\"id\":1}", "exactly the members"},
        {"{\"text\":\"t\",\"right\":{\"pro\":true}}", "pro"},
        {"{\"text\":\"t\",\"right\":{\"lite\":1}}", "right.lite"},
        {"{\"text\":\"t\",\"text\":\"u\",\"right\":{}}", "not JSON"},
        {"{\"text\":\"OK   one\",\"right\":{\"lite\":false}}", "line 1"}, /* contradicts line 1 */
    };
    for (size_t i = 0; i < SC_ARRAY_LEN(cases); i++) {
        char content[512], path[TRUTH_PATH_MAX];
        /* the bad line is line 4: good, blank, good, bad */
        snprintf(content, sizeof content, "%s\n%s%s\n", good, good, cases[i].bad);
        q_temp_file(path, content);
        sc_gemini_sim_opts_t o = {.quality = "on", .quality_truth = path};
        sc_gemini_sim_t *sim = NULL;
        char err[512] = "";
        sc_status_t st = sc_gemini_sim_start(&o, &sim, err, sizeof err);
        assert_int_not_equal(st, SC_OK);
        assert_null(sim);
        if (!strstr(err, "line 4") || !strstr(err, cases[i].needle))
            fail_msg("'%s': error '%s' lacks 'line 4' or '%s'", cases[i].bad, err, cases[i].needle);
        unlink(path);
    }
    /* a text over 1 MiB */
    size_t big = (size_t)SC_GEMINI_SIM_TRUTH_TEXT_MAX + 1;
    char *content = malloc(big + 64);
    assert_non_null(content);
    memcpy(content, "{\"text\":\"", 9);
    memset(content + 9, 'a', big);
    snprintf(content + 9 + big, 55, "\",\"right\":{}}\n");
    char path[TRUTH_PATH_MAX];
    q_temp_file(path, content);
    free(content);
    sc_gemini_sim_opts_t o = {.quality = "on", .quality_truth = path};
    sc_gemini_sim_t *sim = NULL;
    char err[512] = "";
    assert_int_not_equal(sc_gemini_sim_start(&o, &sim, err, sizeof err), SC_OK);
    assert_non_null(strstr(err, "line 1"));
    assert_non_null(strstr(err, "longer than"));
    unlink(path);
    /* no quality spec, or no such file */
    q_temp_file(path, good);
    sc_gemini_sim_opts_t noq = {.quality_truth = path};
    assert_int_equal(sc_gemini_sim_start(&noq, &sim, err, sizeof err), SC_ERR_INVALID_ARG);
    assert_null(sim);
    assert_non_null(strstr(err, "quality"));
    unlink(path);
    assert_int_equal(sc_gemini_sim_start(&o, &sim, err, sizeof err), SC_ERR_IO);
    assert_null(sim);
    assert_non_null(strstr(err, path));
}

/* Every line of the file at path, each parsed. @return a new reference to an array. */
static json_t *q_record_lines(const char *path)
{
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    char *buf = malloc(RECORD_LINE_MAX);
    assert_non_null(buf);
    json_t *lines = json_array();
    while (fgets(buf, (int)RECORD_LINE_MAX, f)) {
        size_t n = strlen(buf);
        assert_true(n > 0 && buf[n - 1] == '\n'); /* complete lines only */
        json_error_t e;
        json_t *doc = json_loadb(buf, n, 0, &e);
        if (!doc)
            fail_msg("record line not JSON (%s): %.200s", e.text, buf);
        assert_int_equal(json_array_append_new(lines, doc), 0);
    }
    free(buf);
    fclose(f);
    return lines;
}

static void test_record(void **state)
{
    (void)state;
    char path[TRUTH_PATH_MAX];
    q_temp_file(path, "stale line from before\n");
    sc_gemini_sim_t *sim = q_start_opts(NULL, NULL, path);
    char *b1 = q_body(SYS_TEXT, "First question?", false);
    char *b2 = q_body(NULL, "Second\nquestion with\ttabs and \"quotes\"", true);
    static const char pretty[] = "{\n  \"contents\": [\n    {\"role\": \"user\",\n"
                                 "     \"parts\": [{\"text\": \"pretty\"}]}\n  ]\n}\n";
    free(q_ask(sim, GEN_FLASH, b1));
    free(q_ask(sim, GEN_PRO, b2));
    free(q_ask(sim, GEN_LITE, pretty));
    test_resp_t r = test_post(sim, GEN_FLASH, "this is {not json");
    assert_int_equal(r.status, 400);
    test_resp_free(&r);
    char *b3 = q_body(NULL, "First question?", false); /* countTokens takes no systemInstruction */
    r = test_post(sim, "/v1beta/models/gemini-2.5-flash:countTokens", b3); /* not recorded */
    assert_int_equal(r.status, 200);
    test_resp_free(&r);
    free(b3);
    sc_gemini_sim_stop(sim); /* the file is read after the run */

    json_t *lines = q_record_lines(path);
    assert_int_equal(json_array_size(lines), 4);
    static const char *const models[] = {"gemini-2.5-flash", "gemini-2.5-pro",
                                         "gemini-2.5-flash-lite", "gemini-2.5-flash"};
    const char *bodies[] = {b1, b2, pretty};
    for (size_t i = 0; i < 4; i++) {
        json_t *l = json_array_get(lines, i);
        assert_int_equal(json_object_size(l), 2);
        assert_string_equal(json_string_value(json_object_get(l, "model")), models[i]);
        if (i < 3) {
            json_t *sent = json_loads(bodies[i], 0, NULL);
            assert_non_null(sent);
            assert_true(json_equal(sent, json_object_get(l, "body")));
            json_decref(sent);
        }
    }
    json_t *b = json_object_get(json_array_get(lines, 1), "body");
    json_t *user = json_array_get(json_object_get(b, "contents"), 0);
    assert_string_equal(json_string_value(json_object_get(
                            json_array_get(json_object_get(user, "parts"), 0), "text")),
                        "Second\nquestion with\ttabs and \"quotes\"");
    assert_string_equal(json_string_value(json_object_get(json_array_get(lines, 3), "body")),
                        "this is {not json");
    json_decref(lines);
    free(b1);
    free(b2);
    unlink(path);

    /* an unopenable record file is a startup error */
    sc_gemini_sim_opts_t o = {.record = "/nonexistent-dir-for-scrimp/record.jsonl"};
    sc_gemini_sim_t *none = NULL;
    char err[512] = "";
    assert_int_equal(sc_gemini_sim_start(&o, &none, err, sizeof err), SC_ERR_IO);
    assert_null(none);
    assert_non_null(strstr(err, "record"));
}

int main(void)
{
    if (!getenv("SCRIMP_LOG"))
        sc_log_set_level(SC_LOG_WARN);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_difficulty_formula),
        cmocka_unit_test(test_right_on_strong_wrong_on_lite),
        cmocka_unit_test(test_agree_iff_both_right),
        cmocka_unit_test(test_judge_truthful),
        cmocka_unit_test(test_judge_malformed),
        cmocka_unit_test(test_summary_loss),
        cmocka_unit_test(test_stats_right_wrong),
        cmocka_unit_test(test_off_unchanged),
        cmocka_unit_test(test_bad_quality_spec),
        cmocka_unit_test(test_truth_overrides_capability),
        cmocka_unit_test(test_truth_judge_follows),
        cmocka_unit_test(test_truth_difficulty_route),
        cmocka_unit_test(test_truth_malformed),
        cmocka_unit_test(test_record),
    };
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    curl_global_cleanup();
    return failed;
}
