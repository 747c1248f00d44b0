/* test_verdict.c - the shadow evaluation's answer comparison (pipelines/stages/verdict.h): the
 * checkable forms and their canonical values, same/different/uncheckable, the judge call's body
 * and the parsing of its verdict, and all of it against the simulator's quality mode. */
#include <inttypes.h>
#include <stdbool.h>

#include "pipelines/stages/verdict.h"
#include "tests/gemini_sim_test_util.h"

#define GEN_PRO   "/v1beta/models/gemini-2.5-pro:generateContent"
#define GEN_LITE  "/v1beta/models/gemini-2.5-flash-lite:generateContent"
#define Q_SPEC    "lite=0.35,cheap=0.6,strong=0.9,summary_loss=0,seed=1"
#define N_PROMPTS 16 /* prompts of each kind asked of the simulator */

/* Assert the form and canonical value of text. */
static void expect_form(const char *text, int json, sc_answer_form_t form, const char *canon)
{
    char c[SC_ANSWER_FORM_MAX];
    sc_answer_form_t f = sc_answer_form(text, json, c, sizeof c);
    if (f != form || strcmp(c, canon) != 0)
        fail_msg("form of \"%s\" (json=%d): got %d \"%s\", want %d \"%s\"", text, json, (int)f, c,
                 (int)form, canon);
}

static void expect_compare(const char *a, const char *b, int json, sc_compare_t want,
                           const char *want_kind)
{
    const char *kind = NULL;
    sc_compare_t got = sc_answers_compare(a, b, json, &kind);
    if (got != want || !kind || strcmp(kind, want_kind) != 0)
        fail_msg("compare \"%s\" / \"%s\" (json=%d): got %d %s, want %d %s", a, b, json, (int)got,
                 kind ? kind : "(null)", (int)want, want_kind);
}

/* ---- forms ---- */

static void test_final_answer_lines(void **state)
{
    (void)state;
    expect_form("Final answer: B", 0, SC_FORM_CHOICE, "b");
    expect_form("**Final answer:** 42", 0, SC_FORM_NUMBER, "42");
    expect_form("**Final Answer**: 42", 0, SC_FORM_NUMBER, "42");
    expect_form("The final answer is $1,234.", 0, SC_FORM_NUMBER, "1234");
    expect_form("So the FINAL ANSWER IS: (c)", 0, SC_FORM_CHOICE, "c");
    expect_form("Let me think.\nThe capital is large.\nAnswer: Paris", 0, SC_FORM_WORD, "paris");
    expect_form("## **Answer:** New   York\tCity!", 0, SC_FORM_WORD, "new york city");
    expect_form("Answer: `42`", 0, SC_FORM_NUMBER, "42");
    expect_form("  * answer: \"D\"", 0, SC_FORM_CHOICE, "d");
    expect_form("Final answer: [B]", 0, SC_FORM_CHOICE, "b");
    expect_form("Final answer: B)", 0, SC_FORM_CHOICE, "b");
    expect_form("Final answer: B.", 0, SC_FORM_CHOICE, "b");
    expect_form("Reasoning...\r\nFinal answer: 17\r\n", 0, SC_FORM_NUMBER, "17");
    /* the last final answer line counts */
    expect_form("First guess. Final answer: A\nOn reflection that is wrong.\nFinal answer: D", 0,
                SC_FORM_CHOICE, "d");
    expect_form("Final answer: A\nAnswer: 12", 0, SC_FORM_NUMBER, "12");
    /* "final answer" without ':' or " is", "Answer:" not opening the line */
    expect_form("Here is my final answer, which took a long time to work out.", 0, SC_FORM_NONE,
                "");
    expect_form("The final answer isn't obvious, and it needs much more work.", 0, SC_FORM_NONE,
                "");
    expect_form("The question had an Answer: it is long and winding prose.", 0, SC_FORM_NONE, "");
    /* an answer too long for a WORD */
    expect_form("Final answer: the capital of the country is the city on the river which flows "
                "north to the sea",
                0, SC_FORM_NONE, "");
    expect_form("Final answer:", 0, SC_FORM_NONE, "");
}

static void test_short_texts(void **state)
{
    (void)state;
    expect_form("B", 0, SC_FORM_CHOICE, "b");
    expect_form("(C)", 0, SC_FORM_CHOICE, "c");
    expect_form("  c)\n", 0, SC_FORM_CHOICE, "c");
    expect_form("42", 0, SC_FORM_NUMBER, "42");
    expect_form("Paris.", 0, SC_FORM_WORD, "paris");
    expect_form("exactly16bytes!!", 0, SC_FORM_WORD, "exactly16bytes");
    expect_form("seventeen bytes!!", 0, SC_FORM_NONE, "");
    expect_form("", 0, SC_FORM_NONE, "");
    expect_form("   \n ", 0, SC_FORM_NONE, "");
    expect_form("A long answer in free prose, with no final answer line at all.", 0, SC_FORM_NONE,
                "");
    char c[SC_ANSWER_FORM_MAX] = "junk";
    assert_int_equal(sc_answer_form(NULL, 0, c, sizeof c), SC_FORM_NONE);
    assert_string_equal(c, "");
    assert_int_equal(sc_answer_form("B", 0, NULL, 0), SC_FORM_CHOICE);
}

static void test_numbers(void **state)
{
    (void)state;
    expect_form("1,234.50", 0, SC_FORM_NUMBER, "1234.5");
    expect_form("Final answer: -3", 0, SC_FORM_NUMBER, "-3");
    expect_form("Final answer: -0.00", 0, SC_FORM_NUMBER, "0");
    expect_form("Final answer: +007", 0, SC_FORM_NUMBER, "7");
    expect_form("Final answer: 12%", 0, SC_FORM_NUMBER, "12");
    expect_form("Final answer: -$1,000,000.10", 0, SC_FORM_NUMBER, "-1000000.1");
    expect_form("Final answer: $-2.5", 0, SC_FORM_NUMBER, "-2.5");
    expect_form("Final answer: .5", 0, SC_FORM_NUMBER, "0.5");
    expect_form("Final answer: 1234.0", 0, SC_FORM_NUMBER, "1234");
    /* not numbers: bad grouping, two signs, an exponent */
    expect_form("Final answer: 1,23", 0, SC_FORM_WORD, "1,23");
    expect_form("Final answer: 12,3456", 0, SC_FORM_WORD, "12,3456");
    expect_form("Final answer: --3", 0, SC_FORM_WORD, "--3");
    expect_form("Final answer: 1e3", 0, SC_FORM_WORD, "1e3");
    expect_form("Final answer: 3 apples", 0, SC_FORM_WORD, "3 apples");
}

static void test_json_forms(void **state)
{
    (void)state;
    expect_form("{\"b\": [1, 2.0, {\"z\": 1.5, \"y\": null}], \"a\": \"x\"}", 1, SC_FORM_JSON,
                "{\"a\":\"x\",\"b\":[1,2,{\"y\":null,\"z\":1.5}]}");
    expect_form("```json\n{\"a\": 1.0}\n```\n", 1, SC_FORM_JSON, "{\"a\":1}");
    expect_form("```{\"a\": true}```", 1, SC_FORM_JSON, "{\"a\":true}");
    expect_form("  3.0 ", 1, SC_FORM_JSON, "3");
    expect_form("\"just a string\"", 1, SC_FORM_JSON, "\"just a string\"");
    /* a string without a final answer line is not classified as a short text */
    expect_form("{\"answer\": \"B\"}", 1, SC_FORM_JSON, "{\"answer\":\"B\"}");
    expect_form("not json", 1, SC_FORM_NONE, "");
    expect_form("{\"a\": 1", 1, SC_FORM_NONE, "");
    /* the simulator's JSON answers: the final answer line inside a string */
    expect_form("{\"answer\": \"Paris is the capital of France. Seventeen arrondissements? No."
                "\\nFinal answer: 17\"}",
                1, SC_FORM_NUMBER, "17");
    expect_form("{\"steps\": [\"x\", {\"deep\": \"Answer: (B)\"}], \"note\": \"n\"}", 1,
                SC_FORM_CHOICE, "b");
    /* json=0: a JSON text is prose; with a final answer line it is that line's form */
    expect_form("{\"a\": 1, \"b\": 2, \"c\": 3}", 0, SC_FORM_NONE, "");
    expect_form("{\"a\":1}", 0, SC_FORM_WORD, "{\"a\":1}");
    expect_form("I computed it carefully.\nFinal answer: 17", 1, SC_FORM_NONE, "");
    expect_form("I computed it carefully.\nFinal answer: 17", 0, SC_FORM_NUMBER, "17");
}

static void test_long_canonical_is_hashed(void **state)
{
    (void)state;
    char doc[1024], c[SC_ANSWER_FORM_MAX], c2[SC_ANSWER_FORM_MAX];
    size_t n = 0;
    n += (size_t)snprintf(doc + n, sizeof doc - n, "{");
    for (int i = 0; i < 40; i++)
        n += (size_t)snprintf(doc + n, sizeof doc - n, "%s\"key%02d\": %d", i ? ", " : "", i, i);
    snprintf(doc + n, sizeof doc - n, "}");
    assert_int_equal(sc_answer_form(doc, 1, c, sizeof c), SC_FORM_JSON);
    assert_int_equal(strlen(c), 18);
    assert_memory_equal(c, "h:", 2);
    for (size_t i = 2; i < 18; i++)
        assert_non_null(strchr("0123456789abcdef", c[i]));
    /* the hash is of the canonical dump: FNV-1a 64 computed here from the expected string */
    char *canon = NULL;
    json_t *j = json_loads(doc, 0, NULL);
    assert_non_null(j);
    canon = json_dumps(j, JSON_SORT_KEYS | JSON_COMPACT);
    json_decref(j);
    uint64_t h = 0xcbf29ce484222325ull;
    for (const unsigned char *p = (const unsigned char *)canon; *p; p++)
        h = (h ^ *p) * 0x100000001b3ull;
    free(canon);
    snprintf(c2, sizeof c2, "h:%016" PRIx64, h);
    assert_string_equal(c, c2);
    /* a smaller buffer hashes a short value too */
    char small[20];
    assert_int_equal(sc_answer_form("{\"alpha\": \"beta gamma\"}", 1, small, sizeof small),
                     SC_FORM_JSON);
    assert_memory_equal(small, "h:", 2);
    assert_int_equal(strlen(small), 18);
}

/* ---- comparison ---- */

static void test_compare(void **state)
{
    (void)state;
    expect_compare("Final answer: 1,234", "final answer: 1234.0", 0, SC_COMPARE_SAME,
                   "final-answer");
    expect_compare("Final answer: B", "Final answer: C", 0, SC_COMPARE_DIFFERENT, "final-answer");
    expect_compare("Because of X.\nFinal answer: (b)", "B", 0, SC_COMPARE_SAME, "final-answer");
    expect_compare("Final answer: Paris.", "The final answer is paris", 0, SC_COMPARE_SAME,
                   "final-answer");
    expect_compare("Final answer: A\n...\nFinal answer: D", "Final answer: D", 0, SC_COMPARE_SAME,
                   "final-answer");
    expect_compare("Final answer: A\n...\nFinal answer: D", "Final answer: A", 0,
                   SC_COMPARE_DIFFERENT, "final-answer");
    expect_compare("Free prose that explains the matter at length without a verdict.",
                   "Other free prose that also goes on and on about the matter.", 0,
                   SC_COMPARE_UNCHECKABLE, "judge");
    /* forms of different kinds are left to the judge */
    expect_compare("Final answer: 17", "Final answer: seventeen", 0, SC_COMPARE_UNCHECKABLE,
                   "judge");
    expect_compare("Final answer: B", "A long answer in free prose, with no final answer line.", 0,
                   SC_COMPARE_UNCHECKABLE, "judge");
    expect_compare("{\"a\": 1, \"b\": [true, \"x\"]}", "{\"b\":[true,\"x\"],\"a\":1}", 1,
                   SC_COMPARE_SAME, "json");
    expect_compare("{\"a\":1}", "{\"a\":1.0}", 1, SC_COMPARE_SAME, "json");
    expect_compare("{\"a\":1}", "{\"a\":1.5}", 1, SC_COMPARE_DIFFERENT, "json");
    expect_compare("{\"a\":[1,2]}", "{\"a\":[2,1]}", 1, SC_COMPARE_DIFFERENT, "json");
    expect_compare("{\"answer\":\"x\\nFinal answer: 17\"}", "{\"answer\":\"Final answer: 17.0\"}",
                   1, SC_COMPARE_SAME, "final-answer");
    /* json=1: a prose answer does not parse, a JSON answer is not a final answer */
    expect_compare("{\"a\":1}", "Final answer: 1", 1, SC_COMPARE_UNCHECKABLE, "judge");
    expect_compare("{\"answer\": \"B\"}", "Final answer: B", 0, SC_COMPARE_UNCHECKABLE, "judge");
    /* long JSON values compare by their hash */
    expect_compare("{\"text\": \"a long string value that will not fit the canonical buffer "
                   "once it is written out, so it is hashed\", \"n\": 2.0}",
                   "{\"n\": 2, \"text\": \"a long string value that will not fit the canonical "
                   "buffer once it is written out, so it is hashed\"}",
                   1, SC_COMPARE_SAME, "json");
    expect_compare("{\"text\": \"a long string value that will not fit the canonical buffer "
                   "once it is written out, so it is hashed\", \"n\": 2.0}",
                   "{\"n\": 3, \"text\": \"a long string value that will not fit the canonical "
                   "buffer once it is written out, so it is hashed\"}",
                   1, SC_COMPARE_DIFFERENT, "json");
    assert_int_equal(sc_answers_compare(NULL, "B", 0, NULL), SC_COMPARE_UNCHECKABLE);
    assert_int_equal(sc_answers_compare("B", "b", 0, NULL), SC_COMPARE_SAME);
}

/* ---- the judge ---- */

static void test_judge_body(void **state)
{
    (void)state;
    const char prompt[] = "Say \"hi\"\nthen pick:\nA. caf\xc3\xa9\nB. \xe2\x82\xac 5\\n";
    const char ref[] = "Final answer: A \xf0\x9f\x98\x80";
    const char cand[] = "line one\n\"quoted\"\ttab \\ backslash";
    size_t len = 0;
    char *body = sc_judge_body(prompt, strlen(prompt), ref, strlen(ref), cand, strlen(cand), &len);
    assert_non_null(body);
    assert_int_equal(len, strlen(body));
    json_error_t e;
    json_t *doc = json_loads(body, 0, &e);
    if (!doc)
        fail_msg("judge body is not JSON: %s", e.text);

    json_t *sys_parts = json_object_get(json_object_get(doc, "systemInstruction"), "parts");
    assert_int_equal(json_array_size(sys_parts), 1);
    const char *sys = json_string_value(json_object_get(json_array_get(sys_parts, 0), "text"));
    assert_non_null(sys);
    assert_int_equal(strncmp(sys, "scrimp-judge", 12), 0);
    assert_true(strlen(sys) > 12);
    assert_non_null(strstr(sys, "answer_a"));
    assert_non_null(strstr(sys, "JSON"));

    json_t *contents = json_object_get(doc, "contents");
    assert_int_equal(json_array_size(contents), 1);
    json_t *turn = json_array_get(contents, 0);
    assert_string_equal(json_string_value(json_object_get(turn, "role")), "user");
    json_t *parts = json_object_get(turn, "parts");
    assert_int_equal(json_array_size(parts), 1);
    const char *user = json_string_value(json_object_get(json_array_get(parts, 0), "text"));
    assert_non_null(user);
    /* exactly the compact object, keys in order */
    assert_memory_equal(user, "{\"prompt\":\"", 11);
    assert_non_null(strstr(user, "\",\"answer_a\":\""));
    assert_non_null(strstr(user, "\",\"answer_b\":\""));
    assert_true(strstr(user, "answer_a") < strstr(user, "answer_b"));
    json_t *u = json_loads(user, 0, &e);
    if (!u)
        fail_msg("user text is not JSON: %s", e.text);
    assert_int_equal(json_object_size(u), 3);
    assert_string_equal(json_string_value(json_object_get(u, "prompt")), prompt);
    assert_string_equal(json_string_value(json_object_get(u, "answer_a")), ref);
    assert_string_equal(json_string_value(json_object_get(u, "answer_b")), cand);
    char *again = json_dumps(u, JSON_COMPACT);
    assert_string_equal(again, user); /* compact: nothing but the three members */
    free(again);
    json_decref(u);

    json_t *gen = json_object_get(doc, "generationConfig");
    assert_string_equal(json_string_value(json_object_get(gen, "responseMimeType")),
                        "application/json");
    assert_true(json_is_number(json_object_get(gen, "temperature")));
    assert_true(json_number_value(json_object_get(gen, "temperature")) == 0.0);
    json_t *schema = json_object_get(gen, "responseSchema");
    assert_string_equal(json_string_value(json_object_get(schema, "type")), "OBJECT");
    static const char *const keys[] = {"a_correct", "b_correct", "agree"};
    json_t *props = json_object_get(schema, "properties");
    json_t *req = json_object_get(schema, "required");
    assert_int_equal(json_object_size(props), 3);
    assert_int_equal(json_array_size(req), 3);
    for (size_t i = 0; i < SC_ARRAY_LEN(keys); i++) {
        assert_string_equal(
            json_string_value(json_object_get(json_object_get(props, keys[i]), "type")), "BOOLEAN");
        assert_string_equal(json_string_value(json_array_get(req, i)), keys[i]);
    }
    json_decref(doc);
    free(body);

    /* empty texts, NULL with length 0, an embedded NUL */
    body = sc_judge_body(NULL, 0, "", 0, "a\0b", 3, NULL);
    assert_non_null(body);
    doc = json_loads(body, 0, NULL);
    assert_non_null(doc);
    user = json_string_value(json_object_get(
        json_array_get(
            json_object_get(json_array_get(json_object_get(doc, "contents"), 0), "parts"), 0),
        "text"));
    u = json_loads(user, JSON_ALLOW_NUL, NULL);
    assert_non_null(u);
    assert_string_equal(json_string_value(json_object_get(u, "prompt")), "");
    assert_int_equal(json_string_length(json_object_get(u, "answer_b")), 3);
    json_decref(u);
    json_decref(doc);
    free(body);

    /* invalid UTF-8 anywhere, or NULL with a length: no body */
    assert_null(sc_judge_body("ok", 2, "bad \xc3", 5, "ok", 2, NULL));
    assert_null(sc_judge_body("\xff", 1, "ok", 2, "ok", 2, NULL));
    assert_null(sc_judge_body("ok", 2, "ok", 2, "\xed\xa0\x80", 3, NULL));
    assert_null(sc_judge_body(NULL, 3, "ok", 2, "ok", 2, NULL));
}

static void test_judge_verdicts(void **state)
{
    (void)state;
    int a = -7, b = -7, g = -7;
    assert_int_equal(
        sc_judge_verdict("{\"a_correct\":true,\"b_correct\":false,\"agree\":false}", &a, &b, &g),
        0);
    assert_int_equal(a, 1);
    assert_int_equal(b, 0);
    assert_int_equal(g, 0);
    assert_int_equal(sc_judge_verdict("```json\n{\"agree\": true, \"a_correct\": false,\n"
                                      " \"b_correct\": true, \"why\": \"both say 4\"}\n```\n",
                                      &a, &b, &g),
                     0);
    assert_int_equal(a, 0);
    assert_int_equal(b, 1);
    assert_int_equal(g, 1);
    assert_int_equal(sc_judge_verdict("  \n{\"a_correct\":true,\"b_correct\":true,\"agree\":true} ",
                                      NULL, NULL, NULL),
                     0);

    static const char *const bad[] = {
        "{\"a_correct\":true,\"b_correct\":true}",
        "{\"a_correct\":\"true\",\"b_correct\":true,\"agree\":true}",
        "{\"a_correct\":1,\"b_correct\":true,\"agree\":true}",
        "{\"a_correct\":true,\"b_correct\":null,\"agree\":true}",
        "Verdict unavailable: malformed judge request (the user turn is not a JSON object).",
        "[true, true, true]",
        "{\"a_correct\":true,\"b_correct\":true,\"agree\":true} and some prose",
        "",
        "   ",
        "```json\n```",
    };
    for (size_t i = 0; i < SC_ARRAY_LEN(bad); i++) {
        a = b = g = -7;
        if (sc_judge_verdict(bad[i], &a, &b, &g) != -1)
            fail_msg("verdict \"%s\" parsed", bad[i]);
        /* no evidence: nothing written */
        assert_int_equal(a, -7);
        assert_int_equal(b, -7);
        assert_int_equal(g, -7);
    }
    assert_int_equal(sc_judge_verdict(NULL, &a, &b, &g), -1);
}

/* ---- against the simulator ---- */

/* A generateContent body with one user turn. @remark the caller frees it. */
static char *sim_body(const char *prompt, bool json_mime)
{
    json_t *doc =
        json_pack("{s:[{s:s, s:[{s:s}]}]}", "contents", "role", "user", "parts", "text", prompt);
    assert_non_null(doc);
    if (json_mime)
        assert_int_equal(
            json_object_set_new(doc, "generationConfig",
                                json_pack("{s:s}", "responseMimeType", "application/json")),
            0);
    char *s = json_dumps(doc, JSON_COMPACT);
    json_decref(doc);
    assert_non_null(s);
    return s;
}

/* The answer text of body from path. @remark the caller frees it. */
static char *sim_ask(sc_gemini_sim_t *sim, const char *path, const char *body)
{
    test_resp_t r = test_post(sim, path, body);
    if (r.status != 200)
        fail_msg("sim answered %ld: %.300s", r.status, r.body);
    json_t *doc = test_json(&r);
    const char *t = test_text(doc);
    assert_non_null(t);
    char *out = strdup(t);
    assert_non_null(out);
    json_decref(doc);
    test_resp_free(&r);
    return out;
}

static void test_against_simulator(void **state)
{
    (void)state;
    sc_gemini_sim_opts_t o = {.threads = 2, .quality = Q_SPEC};
    sc_gemini_sim_t *sim = NULL;
    char err[256];
    sc_status_t st = sc_gemini_sim_start(&o, &sim, err, sizeof err);
    if (st != SC_OK)
        fail_msg("sim start: %s: %s", sc_strerror(st), err);
    static const char *const kinds[] = {
        "Question %s: which one is right?\nA. first\nB. second\nC. third\nD. fourth",
        "Question %s: how many of the 12 boxes are red?",
        "Question %s: name the colour of the sky at dusk.", /* no digit: a word answer */
    };
    static const sc_answer_form_t forms[] = {SC_FORM_CHOICE, SC_FORM_NUMBER, SC_FORM_WORD};
    int same = 0, different = 0;
    for (size_t k = 0; k < SC_ARRAY_LEN(kinds); k++)
        for (int i = 0; i < N_PROMPTS; i++) {
            char prompt[256], tag[3] = {(char)('a' + i % 26), (char)('a' + i / 26), '\0'};
            snprintf(prompt, sizeof prompt, kinds[k], tag);
            char *plain = sim_body(prompt, false), *jbody = sim_body(prompt, true);
            char *ap = sim_ask(sim, GEN_PRO, plain), *al = sim_ask(sim, GEN_LITE, plain);
            char *jp = sim_ask(sim, GEN_PRO, jbody), *jl = sim_ask(sim, GEN_LITE, jbody);
            char c[SC_ANSWER_FORM_MAX], cj[SC_ANSWER_FORM_MAX];
            assert_int_equal(sc_answer_form(ap, 0, c, sizeof c), forms[k]);
            /* a JSON answer carries the same final answer */
            assert_int_equal(sc_answer_form(jp, 1, cj, sizeof cj), forms[k]);
            assert_string_equal(c, cj);

            const char *kind = NULL;
            sc_compare_t cmp = sc_answers_compare(ap, al, 0, &kind);
            assert_true(cmp == SC_COMPARE_SAME || cmp == SC_COMPARE_DIFFERENT);
            assert_string_equal(kind, "final-answer");
            assert_int_equal(sc_answers_compare(jp, jl, 1, NULL), cmp);
            same += cmp == SC_COMPARE_SAME;
            different += cmp == SC_COMPARE_DIFFERENT;

            /* the judge's verdict agrees with the deterministic comparison */
            size_t len = 0;
            char *jb = sc_judge_body(prompt, strlen(prompt), ap, strlen(ap), al, strlen(al), &len);
            assert_non_null(jb);
            char *verdict = sim_ask(sim, GEN_PRO, jb);
            int a_ok = -1, b_ok = -1, agree = -1;
            if (sc_judge_verdict(verdict, &a_ok, &b_ok, &agree) != 0)
                fail_msg("verdict not parsed: %s", verdict);
            assert_int_equal(agree, cmp == SC_COMPARE_SAME);
            assert_int_equal(a_ok && b_ok, cmp == SC_COMPARE_SAME && a_ok);
            free(verdict);
            /* a cheaper model answers the judge call as a prompt: no evidence */
            if (i == 0) {
                verdict = sim_ask(sim, GEN_LITE, jb);
                assert_int_equal(sc_judge_verdict(verdict, &a_ok, &b_ok, &agree), -1);
                free(verdict);
            }
            free(jb);
            free(ap);
            free(al);
            free(jp);
            free(jl);
            free(plain);
            free(jbody);
        }
    /* lite is right below 0.35, pro below 0.9: both outcomes occur among these prompts */
    assert_true(same > 0);
    assert_true(different > 0);
    sc_gemini_sim_stop(sim);
}

int main(void)
{
    if (!getenv("SCRIMP_LOG"))
        sc_log_set_level(SC_LOG_WARN);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_final_answer_lines),
        cmocka_unit_test(test_short_texts),
        cmocka_unit_test(test_numbers),
        cmocka_unit_test(test_json_forms),
        cmocka_unit_test(test_long_canonical_is_hashed),
        cmocka_unit_test(test_compare),
        cmocka_unit_test(test_judge_body),
        cmocka_unit_test(test_judge_verdicts),
        cmocka_unit_test(test_against_simulator),
    };
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    curl_global_cleanup();
    return failed;
}
