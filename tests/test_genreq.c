/* test_genreq.c - Gemini's request shape by the API's rules (host/core/genreq.c) and scrimp
 * requests that carry it (host/core/message.c): normalisation, field-naming errors, the model
 * rules, the text view, bodies forwarded faithfully (host/gemini/request.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "host/core/genreq.h"
#include "host/core/message.h"
#include "host/gemini/gemini.h"

#define ERRLEN 512

static json_t *load(const char *s)
{
    json_error_t e;
    json_t *j = json_loads(s, 0, &e);
    if (!j)
        fail_msg("bad test JSON: %s: %s", e.text, s);
    return j;
}

/* Normalise s; returns the status, the error in err, the result in *out (may be NULL). */
static sc_status_t norm(const char *s, json_t **out, char *err)
{
    json_t *in = load(s), *res = NULL;
    sc_status_t st = sc_genreq_normalize(in, SC_GENREQ_SCRIMP, &res, err, ERRLEN);
    json_decref(in);
    if (out)
        *out = res;
    else
        json_decref(res);
    return st;
}

static void expect_error(const char *s, const char *needle)
{
    char err[ERRLEN] = "";
    sc_status_t st = norm(s, NULL, err);
    if (st != SC_ERR_INVALID || !strstr(err, needle))
        fail_msg("want INVALID with \"%s\", got %d \"%s\" for %s", needle, (int)st, err, s);
}

static void test_snake_case_normalised(void **state)
{
    (void)state;
    char err[ERRLEN];
    json_t *out = NULL;
    assert_int_equal(norm("{\"contents\":[{\"role\":\"user\",\"parts\":[{\"inline_data\":{"
                          "\"mime_type\":\"image/png\",\"data\":\"iVBORw0KGgo=\"}},{\"text\":\"hi\"}]}],"
                          "\"system_instruction\":{\"parts\":[{\"text\":\"be brief\"}]},"
                          "\"generation_config\":{\"max_output_tokens\":64,\"top_p\":0.5,"
                          "\"thinking_config\":{\"thinking_budget\":\"1024\",\"include_thoughts\":true},"
                          "\"response_mime_type\":\"application/json\",\"response_schema\":{"
                          "\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"string\"}}}},"
                          "\"tool_config\":{\"function_calling_config\":{\"mode\":\"ANY\","
                          "\"allowed_function_names\":[\"f\"]}},"
                          "\"tools\":[{\"function_declarations\":[{\"name\":\"f\",\"parameters\":{"
                          "\"type\":\"OBJECT\",\"properties\":{\"city_name\":{\"type\":\"STRING\"}}}}]}]}",
                          &out, err),
                     SC_OK);
    json_t *part = json_array_get(json_object_get(json_array_get(json_object_get(out, "contents"), 0),
                                                  "parts"), 0);
    assert_non_null(json_object_get(json_object_get(part, "inlineData"), "mimeType"));
    json_t *gen = json_object_get(out, "generationConfig");
    assert_int_equal(json_integer_value(json_object_get(gen, "maxOutputTokens")), 64);
    /* an int32 given as a string is an integer after normalisation */
    assert_int_equal(json_integer_value(json_object_get(json_object_get(gen, "thinkingConfig"),
                                                        "thinkingBudget")),
                     1024);
    assert_non_null(json_object_get(out, "systemInstruction"));
    assert_non_null(json_object_get(json_object_get(out, "toolConfig"), "functionCallingConfig"));
    /* property names are the user's: never rewritten */
    json_t *decl = json_array_get(json_object_get(json_array_get(json_object_get(out, "tools"), 0),
                                                  "functionDeclarations"), 0);
    assert_non_null(json_object_get(
        json_object_get(json_object_get(decl, "parameters"), "properties"), "city_name"));
    json_decref(out);
}

static void test_errors_name_the_field(void **state)
{
    (void)state;
    expect_error("{\"contents\":[{\"parts\":[{\"text\":\"a\",\"inline_dat\":{}}]}]}",
                 "field \"contents[0].parts[0].inline_dat\": unknown field");
    expect_error("{\"contents\":[{\"parts\":[{\"text\":\"a\"}]}],\"generationConfig\":{\"topP\":\"x\"}}",
                 "field \"generationConfig.topP\": must be a number");
    expect_error("{\"contents\":[{\"parts\":[{\"text\":\"a\"}]}],\"generationConfig\":{\"topP\":1.5}}",
                 "generationConfig.topP\": must be a number from 0 to 1");
    expect_error("{\"contents\":[{\"parts\":[{\"text\":\"a\"}]}],\"generationConfig\":{"
                 "\"stopSequences\":[\"a\",\"b\",\"c\",\"d\",\"e\",\"f\"]}}",
                 "generationConfig.stopSequences\": at most 5");
    expect_error("{\"contents\":[{\"parts\":[{\"text\":\"a\"}]}],\"generationConfig\":{"
                 "\"candidateCount\":9}}",
                 "generationConfig.candidateCount\"");
    expect_error("{\"contents\":[{\"parts\":[{\"text\":\"a\"}]}],\"generationConfig\":{"
                 "\"responseSchema\":{\"type\":\"STRING\"}}}",
                 "needs responseMimeType application/json");
    expect_error("{\"contents\":[{\"parts\":[{\"text\":\"a\",\"functionCall\":{\"name\":\"f\"}}]}]}",
                 "contents[0].parts[0]\": holds more than one");
    expect_error("{\"contents\":[{\"parts\":[]}]}", "contents[0].parts\": must have at least 1");
    expect_error("{\"contents\":[{\"role\":\"system\",\"parts\":[{\"text\":\"a\"}]}]}",
                 "contents[0].role\": must be one of user, model");
    expect_error("{\"contents\":[{\"parts\":[{\"inlineData\":{\"mimeType\":\"image/png\","
                 "\"data\":\"not base64!\"}}]}]}",
                 "contents[0].parts[0].inlineData.data\": must be a base64 string");
    expect_error("{\"contents\":[{\"parts\":[{\"text\":\"a\"}]}],\"tools\":[{"
                 "\"functionDeclarations\":[{\"name\":\"9bad name\"}]}]}",
                 "tools[0].functionDeclarations[0].name\"");
    expect_error("{\"contents\":[{\"parts\":[{\"text\":\"a\"}]}],\"generationConfig\":{"
                 "\"maxOutputTokens\":1,\"max_output_tokens\":2}}",
                 "given twice");
    /* a function response must follow the model turn that called it */
    expect_error("{\"contents\":[{\"role\":\"user\",\"parts\":[{\"text\":\"weather?\"}]},"
                 "{\"role\":\"user\",\"parts\":[{\"functionResponse\":{\"name\":\"w\","
                 "\"response\":{\"t\":1}}}]}]}",
                 "contents[1].parts[0].functionResponse\": a function response must follow");
    expect_error("{\"contents\":[{\"role\":\"model\",\"parts\":[{\"functionCall\":{\"name\":\"x\"}}]},"
                 "{\"role\":\"user\",\"parts\":[{\"functionResponse\":{\"name\":\"w\","
                 "\"response\":{}}}]}]}",
                 "a function response must follow");
    expect_error("{\"cachedContent\":\"cachedContents/x\",\"contents\":[{\"parts\":[{\"text\":\"a\"}]}]}",
                 "field \"cachedContent\": unknown field");
}

static void test_model_rules(void **state)
{
    (void)state;
    char err[ERRLEN];
    json_t *n = NULL;
    assert_int_equal(norm("{\"contents\":[{\"parts\":[{\"text\":\"a\"}]}],\"generationConfig\":{"
                          "\"thinkingConfig\":{\"thinkingBudget\":0}}}",
                          &n, err),
                     SC_OK);
    assert_int_equal(sc_genreq_check_model(n, "gemini-2.5-flash", err, ERRLEN), SC_OK);
    assert_int_equal(sc_genreq_check_model(n, "models/gemini-2.5-pro", err, ERRLEN), SC_ERR_INVALID);
    assert_non_null(strstr(err, "thinkingBudget"));
    json_decref(n);

    assert_int_equal(norm("{\"contents\":[{\"parts\":[{\"text\":\"a\"}]}],\"generationConfig\":{"
                          "\"thinkingConfig\":{\"thinkingBudget\":100}}}",
                          &n, err),
                     SC_OK);
    assert_int_equal(sc_genreq_check_model(n, "gemini-2.5-pro", err, ERRLEN), SC_ERR_INVALID);
    assert_int_equal(sc_genreq_check_model(n, "gemini-2.5-flash-lite", err, ERRLEN),
                     SC_ERR_INVALID);
    assert_int_equal(sc_genreq_check_model(n, "gemini-2.5-flash", err, ERRLEN), SC_OK);
    assert_int_equal(sc_genreq_check_model(n, "gemini-2.0-flash", err, ERRLEN), SC_ERR_INVALID);
    assert_non_null(strstr(err, "not supported"));
    /* a model the table does not know passes: the API is the judge there */
    assert_int_equal(sc_genreq_check_model(n, "some-future-model", err, ERRLEN), SC_OK);
    json_decref(n);

    assert_int_equal(norm("{\"contents\":[{\"parts\":[{\"text\":\"a\"}]}],\"generationConfig\":{"
                          "\"thinkingConfig\":{\"thinkingBudget\":-1}}}",
                          &n, err),
                     SC_OK);
    assert_int_equal(sc_genreq_check_model(n, "gemini-2.5-pro", err, ERRLEN), SC_OK);
    json_decref(n);
}

static void test_render(void **state)
{
    (void)state;
    json_t *c = load("{\"role\":\"model\",\"parts\":[{\"text\":\"thinking...\",\"thought\":true},"
                     "{\"text\":\"Checking.\"},{\"functionCall\":{\"name\":\"get_weather\","
                     "\"args\":{\"unit\":\"C\",\"city\":\"Paris\"}}}]}");
    unsigned fl = 0;
    size_t len = 0;
    char *t = sc_genreq_render(c, &fl, &len);
    assert_non_null(t);
    assert_string_equal(t, "Checking.\n[call get_weather {\"city\":\"Paris\",\"unit\":\"C\"}]");
    assert_int_equal(len, strlen(t));
    assert_true(fl & SC_GENREQ_CALL);
    assert_true(fl & SC_GENREQ_TEXT);
    free(t);
    json_decref(c);

    /* two images differ in the view by their content hash */
    json_t *a = load("{\"parts\":[{\"inlineData\":{\"mimeType\":\"image/png\",\"data\":\"AAAA\"}}]}");
    json_t *b = load("{\"parts\":[{\"inlineData\":{\"mimeType\":\"image/png\",\"data\":\"AAAB\"}}]}");
    char *ta = sc_genreq_render(a, &fl, NULL), *tb = sc_genreq_render(b, NULL, NULL);
    assert_true(fl & SC_GENREQ_MEDIA);
    assert_non_null(strstr(ta, "[media image/png "));
    assert_string_not_equal(ta, tb);
    free(ta);
    free(tb);
    json_decref(a);
    json_decref(b);
}

/* ---- scrimp requests in Gemini's shape ---- */

static sc_status_t parse(const char *s, sc_request_t **req, char *err)
{
    char id[64];
    return sc_request_parse(s, strlen(s), NULL, req, id, sizeof id, err, ERRLEN);
}

static const char TOOL_REQUEST[] =
    "{\"id\":\"t1\",\"tenant\":\"acme\",\"model\":\"auto\","
    "\"systemInstruction\":{\"parts\":[{\"text\":\"You are a travel agent.\"}]},"
    "\"contents\":[{\"role\":\"user\",\"parts\":[{\"text\":\"Weather in Paris?\"}]},"
    "{\"role\":\"model\",\"parts\":[{\"functionCall\":{\"name\":\"get_weather\",\"args\":{\"city\":\"Paris\"}}}]},"
    "{\"role\":\"user\",\"parts\":[{\"functionResponse\":{\"name\":\"get_weather\",\"response\":{\"temp_c\":21}}}]}],"
    "\"tools\":[{\"functionDeclarations\":[{\"name\":\"get_weather\",\"description\":\"weather of a city\","
    "\"parameters\":{\"type\":\"OBJECT\",\"properties\":{\"city\":{\"type\":\"STRING\"}},\"required\":[\"city\"]}}]}],"
    "\"generationConfig\":{\"temperature\":0.3,\"maxOutputTokens\":200,\"stopSequences\":[\"END\"],"
    "\"topP\":0.9,\"seed\":7}}";

static void test_native_request(void **state)
{
    (void)state;
    char err[ERRLEN] = "";
    sc_request_t *req = NULL;
    assert_int_equal(parse(TOOL_REQUEST, &req, err), SC_OK);
    assert_non_null(req->native);
    assert_int_equal(req->n_turns, 3);
    assert_string_equal(req->turns[1].role, "model");
    assert_string_equal(req->turns[1].content, "[call get_weather {\"city\":\"Paris\"}]");
    assert_string_equal(req->turns[2].content, "[result get_weather {\"temp_c\":21}]");
    assert_string_equal(req->system, "You are a travel agent.");
    assert_true(req->has_tools);
    assert_true(sc_request_exact_only(req));
    assert_true(req->has_temperature);
    assert_int_equal(req->max_output_tokens, 200);
    assert_non_null(strstr(req->native_scope, "get_weather"));

    /* forwarded faithfully: every field as given (normalised), the contents untouched */
    size_t len = 0;
    char *body = sc_gemini_body_from_request(req, &len);
    assert_non_null(body);
    json_t *b = load(body), *want = load(TOOL_REQUEST);
    const char *keys[] = {"systemInstruction", "contents", "tools", "generationConfig"};
    for (size_t i = 0; i < 4; i++)
        if (!json_equal(json_object_get(b, keys[i]), json_object_get(want, keys[i])))
            fail_msg("%s changed on the way: %s", keys[i], body);
    assert_null(json_object_get(b, "id"));
    free(body);
    /* with a prompt cache, the cache holds the system instruction and the tools */
    body = sc_gemini_body_with_cache(req, "cachedContents/abc", &len);
    json_decref(b);
    b = load(body);
    assert_null(json_object_get(b, "systemInstruction"));
    assert_null(json_object_get(b, "tools"));
    assert_string_equal(json_string_value(json_object_get(b, "cachedContent")), "cachedContents/abc");
    assert_true(json_equal(json_object_get(b, "contents"), json_object_get(want, "contents")));
    free(body);
    json_decref(b);
    json_decref(want);
    sc_request_free(req);
}

static void test_native_mixed_and_errors(void **state)
{
    (void)state;
    char err[ERRLEN] = "";
    sc_request_t *req = NULL;
    /* the simple form with Gemini's generationConfig beside it */
    assert_int_equal(parse("{\"id\":\"m\",\"tenant\":\"t\",\"system\":\"S\",\"messages\":[{\"role\":"
                           "\"user\",\"content\":\"hello\"}],\"generation_config\":{\"top_k\":3,"
                           "\"temperature\":0.5}}",
                           &req, err),
                     SC_OK);
    assert_non_null(req->native);
    assert_string_equal(req->turns[0].content, "hello");
    assert_string_equal(req->system, "S");
    assert_true(req->has_temperature);
    assert_false(sc_request_exact_only(req));
    sc_request_free(req);
    req = NULL;

    struct {
        const char *req, *needle;
    } bad[] = {
        {"{\"id\":\"a\",\"tenant\":\"t\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],"
         "\"tool_cofig\":{},\"tools\":[]}",
         "field \"tool_cofig\": unknown field"},
        {"{\"id\":\"a\",\"tenant\":\"t\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],"
         "\"cachedContent\":\"cachedContents/1\"}",
         "field \"cachedContent\": not taken"},
        {"{\"id\":\"a\",\"tenant\":\"t\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],"
         "\"contents\":[{\"parts\":[{\"text\":\"y\"}]}]}",
         "give messages or contents, not both"},
        {"{\"id\":\"a\",\"tenant\":\"t\",\"contents\":[{\"parts\":[{\"text\":\"y\"}]}],"
         "\"generation\":{\"temperature\":1},\"generationConfig\":{}}",
         "give generation or generationConfig"},
        {"{\"id\":\"a\",\"tenant\":\"t\",\"contents\":[{\"role\":\"user\",\"parts\":[{\"text\":\"y\"}]},"
         "{\"role\":\"model\",\"parts\":[{\"text\":\"z\"}]}]}",
         "the last content must be from \"user\""},
        {"{\"id\":\"a\",\"tenant\":\"t\",\"contents\":[{\"parts\":[{\"text\":\"  \"}]}]}",
         "must not be empty"},
        {"{\"id\":\"a\",\"tenant\":\"t\",\"model\":\"gemini-2.5-pro\",\"contents\":[{\"parts\":"
         "[{\"text\":\"y\"}]}],\"generationConfig\":{\"thinkingConfig\":{\"thinkingBudget\":0}}}",
         "thinkingBudget"},
        {"{\"id\":\"a\",\"tenant\":\"t\",\"contents\":[{\"parts\":[{\"text\":\"y\"}]}],"
         "\"generationConfig\":{\"responseMimeType\":\"application/json\",\"responseSchema\":"
         "{\"type\":\"OBJECT\",\"properties\":{\"x\":{\"typ\":\"STRING\"}}}}}",
         "generationConfig.responseSchema.properties.x.typ"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        err[0] = '\0';
        sc_status_t st = parse(bad[i].req, &req, err);
        if (st != SC_ERR_INVALID || !strstr(err, bad[i].needle))
            fail_msg("case %zu: want INVALID with \"%s\", got %d \"%s\"", i, bad[i].needle,
                     (int)st, err);
        assert_null(req);
    }
}

/* Today's simple form: no native view, the body exactly as before. */
static void test_simple_form_unchanged(void **state)
{
    (void)state;
    char err[ERRLEN] = "";
    sc_request_t *req = NULL;
    assert_int_equal(parse("{\"id\":\"s\",\"tenant\":\"t\",\"system\":\"Be brief.\",\"messages\":"
                           "[{\"role\":\"user\",\"content\":\"hi\"}],\"generation\":{"
                           "\"temperature\":0.2,\"max_output_tokens\":9}}",
                           &req, err),
                     SC_OK);
    assert_null(req->native);
    assert_null(req->native_scope);
    char *body = sc_gemini_body_from_request(req, NULL);
    assert_string_equal(body, "{\"systemInstruction\":{\"parts\":[{\"text\":\"Be brief.\"}]},"
                              "\"contents\":[{\"role\":\"user\",\"parts\":[{\"text\":\"hi\"}]}],"
                              "\"generationConfig\":{\"temperature\":0.2,\"maxOutputTokens\":9}}");
    free(body);
    sc_request_free(req);
}

/* The whole candidate reaches the result. */
static void test_result_candidates(void **state)
{
    (void)state;
    json_t *resp = load("{\"candidates\":[{\"content\":{\"role\":\"model\",\"parts\":[{\"functionCall\":"
                        "{\"name\":\"f\",\"args\":{\"x\":1}}}]},\"finishReason\":\"STOP\","
                        "\"safetyRatings\":[{\"category\":\"HARM_CATEGORY_HARASSMENT\","
                        "\"probability\":\"NEGLIGIBLE\"}]}],\"usageMetadata\":{\"promptTokenCount\":5,"
                        "\"candidatesTokenCount\":2,\"promptTokensDetails\":[{\"modality\":\"TEXT\","
                        "\"tokenCount\":5}]}}");
    sc_gemini_call_t *call = sc_gemini_call_new("gemini-2.5-flash", NULL, 0);
    assert_int_equal(sc_gemini_response_from_json(call, resp), 0);
    json_decref(resp);
    assert_string_equal(call->text, "");
    assert_true(sc_gemini_has_function_call(call->candidates));
    sc_result_t r;
    sc_result_init(&r);
    r.id = "x";
    r.tenant = "t";
    r.ok = 1;
    r.text = call->text;
    r.candidates = call->candidates;
    r.usage_metadata = call->usage_meta;
    size_t len;
    char *s = sc_result_to_json(&r, &len);
    json_t *o = load(s);
    json_t *fc = json_object_get(json_array_get(json_object_get(json_object_get(json_array_get(
                                                    json_object_get(o, "candidates"), 0),
                                                "content"), "parts"), 0),
                                 "functionCall");
    assert_string_equal(json_string_value(json_object_get(fc, "name")), "f");
    assert_non_null(json_object_get(json_array_get(json_object_get(o, "candidates"), 0),
                                    "safetyRatings"));
    assert_non_null(json_object_get(json_object_get(json_object_get(o, "usage"), "metadata"),
                                    "promptTokensDetails"));
    json_decref(o);
    free(s);
    sc_gemini_call_free(call);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_snake_case_normalised), cmocka_unit_test(test_errors_name_the_field),
        cmocka_unit_test(test_model_rules),           cmocka_unit_test(test_render),
        cmocka_unit_test(test_native_request),        cmocka_unit_test(test_native_mixed_and_errors),
        cmocka_unit_test(test_simple_form_unchanged), cmocka_unit_test(test_result_candidates),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
