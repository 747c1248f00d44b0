/* test_message.c - request parsing and validation, result and dead-letter JSON (host/core/message.c). */
#include <setjmp.h>
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "host/core/message.h"

#define ERRLEN 256
#define IDLEN  64

/* The example of DESIGN §4.1. */
static const char FULL_REQUEST[] =
    "{\n"
    "  \"id\": \"req-000123\",\n"
    "  \"tenant\": \"acme\",\n"
    "  \"user\": \"u-42\", \"agent\": \"support-bot\", \"stage\": \"triage\",\n"
    "  \"conversation_id\": \"c-9\",\n"
    "  \"system\": \"Role: Tech Support. Tone: concise.\",\n"
    "  \"messages\": [\n"
    "    {\"role\": \"user\", \"content\": \"My router keeps rebooting.\"},\n"
    "    {\"role\": \"model\", \"content\": \"Which model is it?\"},\n"
    "    {\"role\": \"user\", \"content\": \"TP-Link Archer C7, firmware 5.1\"}\n"
    "  ],\n"
    "  \"model\": \"auto\",\n"
    "  \"generation\": {\"temperature\": 0.2, \"max_output_tokens\": 512,\n"
    "                 \"response_mime_type\": \"text/plain\"},\n"
    "  \"cache\": \"on\",\n"
    "  \"deadline_ms\": 30000\n"
    "}\n";

/* ---- helpers ---- */

static sc_status_t parse_lim(const char *buf, size_t len, const sc_limits_t *lim,
                             sc_request_t **req, char *idbuf, char *errbuf)
{
    return sc_request_parse(buf, len, lim, req, idbuf, IDLEN, errbuf, ERRLEN);
}

static sc_status_t parse(const char *s, sc_request_t **req, char *idbuf, char *errbuf)
{
    sc_limits_t lim;
    sc_limits_default(&lim);
    return parse_lim(s, strlen(s), &lim, req, idbuf, errbuf);
}

/* Returns the decoded length, or (size_t)-1 on malformed input. out must hold len/4*3. */
static size_t b64_decode(const char *in, unsigned char *out)
{
    size_t n = strlen(in), i, o = 0;
    if (n % 4 != 0)
        return (size_t)-1;
    for (i = 0; i < n; i += 4) {
        uint32_t v = 0;
        int pad = 0, j;
        for (j = 0; j < 4; j++) {
            char c = in[i + (size_t)j];
            uint32_t d;
            if (c >= 'A' && c <= 'Z')
                d = (uint32_t)(c - 'A');
            else if (c >= 'a' && c <= 'z')
                d = (uint32_t)(c - 'a' + 26);
            else if (c >= '0' && c <= '9')
                d = (uint32_t)(c - '0' + 52);
            else if (c == '+')
                d = 62;
            else if (c == '/')
                d = 63;
            else if (c == '=' && j >= 2 && i + 4 == n) {
                d = 0;
                pad++;
            } else
                return (size_t)-1;
            if (pad && c != '=')
                return (size_t)-1;
            v = v << 6 | d;
        }
        out[o++] = (unsigned char)(v >> 16);
        if (pad < 2)
            out[o++] = (unsigned char)(v >> 8);
        if (pad < 1)
            out[o++] = (unsigned char)v;
    }
    return o;
}

/* ---- valid requests ---- */

static void test_full_request(void **state)
{
    (void)state;
    sc_request_t *req = NULL;
    char idbuf[IDLEN], err[ERRLEN];

    assert_int_equal(parse(FULL_REQUEST, &req, idbuf, err), SC_OK);
    assert_non_null(req);
    assert_non_null(req->root);
    assert_string_equal(idbuf, "req-000123");
    assert_string_equal(req->id, "req-000123");
    assert_string_equal(req->tenant, "acme");
    assert_string_equal(req->user, "u-42");
    assert_string_equal(req->agent, "support-bot");
    assert_string_equal(req->stage, "triage");
    assert_string_equal(req->conversation_id, "c-9");
    assert_string_equal(req->system, "Role: Tech Support. Tone: concise.");
    assert_int_equal(req->n_turns, 3);
    assert_string_equal(req->turns[0].role, "user");
    assert_string_equal(req->turns[0].content, "My router keeps rebooting.");
    assert_int_equal(req->turns[0].content_len, strlen("My router keeps rebooting."));
    assert_string_equal(req->turns[1].role, "model");
    assert_string_equal(req->turns[1].content, "Which model is it?");
    assert_string_equal(req->turns[2].role, "user");
    assert_string_equal(req->turns[2].content, "TP-Link Archer C7, firmware 5.1");
    assert_string_equal(req->model, "auto");
    assert_true(req->has_temperature);
    assert_true(req->temperature > 0.199 && req->temperature < 0.201);
    assert_int_equal(req->max_output_tokens, 512);
    assert_string_equal(req->response_mime_type, "text/plain");
    assert_int_equal(req->cache, SC_CACHE_ON);
    assert_int_equal(req->deadline_ms, 30000);
    assert_null(req->priority);
    sc_request_free(req);
}

static void test_defaults(void **state)
{
    (void)state;
    sc_request_t *req = NULL;
    char idbuf[IDLEN], err[ERRLEN];

    assert_int_equal(parse("{\"id\":\"r1\",\"tenant\":\"t\","
                           "\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}",
                           &req, idbuf, err),
                     SC_OK);
    assert_string_equal(req->model, "auto");
    assert_int_equal(req->cache, SC_CACHE_ON);
    assert_null(req->user);
    assert_null(req->agent);
    assert_null(req->stage);
    assert_null(req->conversation_id);
    assert_null(req->system);
    assert_false(req->has_temperature);
    assert_int_equal(req->max_output_tokens, 0);
    assert_null(req->response_mime_type);
    assert_int_equal(req->deadline_ms, 0);
    assert_null(req->priority);
    assert_int_equal(req->n_turns, 1);
    sc_request_free(req);
    sc_request_free(NULL);
}

static void test_variants_accepted(void **state)
{
    (void)state;
    sc_request_t *req = NULL;
    char idbuf[IDLEN], err[ERRLEN];

    /* camelCase synonyms, pinned model, cache modes, priority, forward-compatible keys, empty
     * content in an earlier turn, JSON null for optional fields */
    assert_int_equal(
        parse("{\"id\":\"r2\",\"tenant\":\"globex\",\"model\":\"gemini-2.5-pro\","
              "\"generation\":{\"maxOutputTokens\":64,\"responseMimeType\":\"application/json\","
              "\"temperature\":0},\"cache\":\"exact\",\"priority\":\"batch\","
              "\"metadata\":{\"trace\":[1,2,{\"x\":null}],\"id\":5},\"x-future\":true,"
              "\"user\":null,\"system\":\"\",\"deadline_ms\":3600000,"
              "\"messages\":[{\"role\":\"user\",\"content\":\"\"},"
              "{\"role\":\"model\",\"content\":\"\",\"extra\":1},"
              "{\"role\":\"user\",\"content\":\"  \\u00e9t\\u00e9 \\ud83d\\ude00 \"}]}",
              &req, idbuf, err),
        SC_OK);
    assert_string_equal(req->model, "gemini-2.5-pro");
    assert_int_equal(req->max_output_tokens, 64);
    assert_string_equal(req->response_mime_type, "application/json");
    assert_true(req->has_temperature);
    assert_true(req->temperature == 0.0);
    assert_int_equal(req->cache, SC_CACHE_EXACT);
    assert_string_equal(req->priority, "batch");
    assert_null(req->user);
    assert_string_equal(req->system, "");
    assert_int_equal(req->deadline_ms, 3600000);
    assert_int_equal(req->turns[0].content_len, 0);
    assert_string_equal(req->turns[2].content, "  \xc3\xa9t\xc3\xa9 \xf0\x9f\x98\x80 ");
    sc_request_free(req);

    req = NULL;
    assert_int_equal(parse("{\"id\":\"r3\",\"tenant\":\"t\",\"cache\":\"off\","
                           "\"generation\":{\"response_mime_type\":\"text/x.enum\"},"
                           "\"messages\":[{\"role\":\"user\",\"content\":\"ok\"}]}",
                           &req, idbuf, err),
                     SC_OK);
    assert_int_equal(req->cache, SC_CACHE_OFF);
    assert_string_equal(req->response_mime_type, "text/x.enum");
    sc_request_free(req);

    /* exactly at the limits: 256-byte id, message exactly max bytes */
    {
        char buf[512];
        char id[257];
        sc_limits_t lim;
        int n;
        memset(id, 'a', 256);
        id[256] = '\0';
        n = snprintf(buf, sizeof(buf),
                     "{\"id\":\"%s\",\"tenant\":\"t\",\"messages\":[{\"role\":\"user\","
                     "\"content\":\"q\"}]}",
                     id);
        assert_true(n > 0 && (size_t)n < sizeof(buf));
        sc_limits_default(&lim);
        lim.max_message_bytes = (size_t)n;
        req = NULL;
        assert_int_equal(parse_lim(buf, (size_t)n, &lim, &req, idbuf, err), SC_OK);
        assert_int_equal(strlen(req->id), 256);
        sc_request_free(req);
    }
}

/* The buffer is not NUL-terminated: the parser must honour len. */
static void test_not_nul_terminated(void **state)
{
    (void)state;
    const char *s = "{\"id\":\"r9\",\"tenant\":\"t\","
                    "\"messages\":[{\"role\":\"user\",\"content\":\"go\"}]}";
    size_t n = strlen(s);
    char *buf = malloc(n + 8);
    sc_request_t *req = NULL;
    char idbuf[IDLEN], err[ERRLEN];
    sc_limits_t lim;

    assert_non_null(buf);
    memcpy(buf, s, n);
    memcpy(buf + n, "garbage!", 8);
    sc_limits_default(&lim);
    assert_int_equal(parse_lim(buf, n, &lim, &req, idbuf, err), SC_OK);
    assert_string_equal(req->id, "r9");
    sc_request_free(req);
    free(buf);
}

/* ---- malformed requests ---- */

#define OKMSG "\"messages\":[{\"role\":\"user\",\"content\":\"hello\"}]"
#define HEAD  "{\"id\":\"bad-1\",\"tenant\":\"t\","

typedef struct {
    const char *name;
    const char *json;
    sc_status_t want;
    const char *in_msg; /* must appear in the error message */
    const char *id;     /* expected idbuf */
} bad_case_t;

static const bad_case_t BAD[] = {
    {"not JSON", "hello world", SC_ERR_JSON, "line 1", ""},
    {"empty input", "", SC_ERR_JSON, "invalid JSON", ""},
    {"truncated JSON", HEAD OKMSG, SC_ERR_JSON, "invalid JSON", ""},
    {"trailing garbage", HEAD OKMSG "} {}", SC_ERR_JSON, "invalid JSON", ""},
    {"invalid UTF-8", HEAD "\"system\":\"caf\xe9\"," OKMSG "}", SC_ERR_JSON, "UTF-8", ""},
    {"overlong UTF-8", HEAD "\"system\":\"\xc0\xaf\"," OKMSG "}", SC_ERR_JSON, "UTF-8", ""},
    {"escaped NUL", HEAD "\"system\":\"a\\u0000b\"," OKMSG "}", SC_ERR_JSON, "NUL", ""},
    {"duplicate keys", HEAD "\"tenant\":\"u\"," OKMSG "}", SC_ERR_JSON, "duplicate", ""},
    {"top-level array", "[" HEAD OKMSG "}]", SC_ERR_INVALID, "top level", ""},
    {"top-level string", "\"req\"", SC_ERR_INVALID, "top level", ""},
    {"missing id", "{\"tenant\":\"t\"," OKMSG "}", SC_ERR_INVALID, "\"id\": required", ""},
    {"empty id", "{\"id\":\"\",\"tenant\":\"t\"," OKMSG "}", SC_ERR_INVALID,
     "\"id\": must not be empty", ""},
    {"id not a string", "{\"id\":123,\"tenant\":\"t\"," OKMSG "}", SC_ERR_INVALID,
     "\"id\": must be a string", ""},
    {"id control char", "{\"id\":\"a\\nb\",\"tenant\":\"t\"," OKMSG "}", SC_ERR_INVALID,
     "\"id\": must not contain control", "a\nb"},
    {"id C1 control char", "{\"id\":\"a\\u0085b\",\"tenant\":\"t\"," OKMSG "}", SC_ERR_INVALID,
     "\"id\": must not contain control",
     "a\xc2\x85"
     "b"},
    {"missing tenant", "{\"id\":\"bad-1\"," OKMSG "}", SC_ERR_INVALID, "\"tenant\": required",
     "bad-1"},
    {"tenant not a string", "{\"id\":\"bad-1\",\"tenant\":[\"t\"]," OKMSG "}", SC_ERR_INVALID,
     "\"tenant\": must be a string", "bad-1"},
    {"user not a string", HEAD "\"user\":42," OKMSG "}", SC_ERR_INVALID,
     "\"user\": must be a string", "bad-1"},
    {"empty agent", HEAD "\"agent\":\"\"," OKMSG "}", SC_ERR_INVALID,
     "\"agent\": must not be empty", "bad-1"},
    {"stage control char", HEAD "\"stage\":\"x\\u007f\"," OKMSG "}", SC_ERR_INVALID,
     "\"stage\": must not contain control", "bad-1"},
    {"system not a string", HEAD "\"system\":{}," OKMSG "}", SC_ERR_INVALID,
     "\"system\": must be a string", "bad-1"},
    {"missing messages", HEAD "\"x\":1}", SC_ERR_INVALID, "\"messages\": required", "bad-1"},
    {"messages not an array", HEAD "\"messages\":{\"role\":\"user\"}}", SC_ERR_INVALID,
     "\"messages\": must be an array", "bad-1"},
    {"empty messages", HEAD "\"messages\":[]}", SC_ERR_INVALID,
     "\"messages\": must have at least 1", "bad-1"},
    {"message not an object", HEAD "\"messages\":[\"hi\",{\"role\":\"user\",\"content\":\"x\"}]}",
     SC_ERR_INVALID, "\"messages[0]\": must be an object", "bad-1"},
    {"last message from model",
     HEAD "\"messages\":[{\"role\":\"user\",\"content\":\"a\"},"
          "{\"role\":\"model\",\"content\":\"b\"}]}",
     SC_ERR_INVALID, "\"messages[1].role\": the last message must be from \"user\"", "bad-1"},
    {"bad role",
     HEAD "\"messages\":[{\"role\":\"system\",\"content\":\"a\"},"
          "{\"role\":\"user\",\"content\":\"b\"}]}",
     SC_ERR_INVALID, "\"messages[0].role\": must be \"user\" or \"model\"", "bad-1"},
    {"missing role", HEAD "\"messages\":[{\"content\":\"a\"}]}", SC_ERR_INVALID,
     "\"messages[0].role\"", "bad-1"},
    {"content not a string",
     HEAD "\"messages\":[{\"role\":\"user\",\"content\":\"a\"},"
          "{\"role\":\"model\",\"content\":\"b\"},{\"role\":\"user\",\"content\":[\"c\"]}]}",
     SC_ERR_INVALID, "\"messages[2].content\": must be a string", "bad-1"},
    {"last user turn blank", HEAD "\"messages\":[{\"role\":\"user\",\"content\":\" \\n\\t\"}]}",
     SC_ERR_INVALID, "\"messages[0].content\": the last user message must not be empty", "bad-1"},
    {"last user turn NBSP only",
     HEAD "\"messages\":[{\"role\":\"user\",\"content\":\"\\u00a0\\u3000\"}]}", SC_ERR_INVALID,
     "\"messages[0].content\"", "bad-1"},
    {"temperature 3", HEAD OKMSG ",\"generation\":{\"temperature\":3}}", SC_ERR_INVALID,
     "\"generation.temperature\"", "bad-1"},
    {"temperature negative", HEAD OKMSG ",\"generation\":{\"temperature\":-0.1}}", SC_ERR_INVALID,
     "\"generation.temperature\"", "bad-1"},
    {"temperature string", HEAD OKMSG ",\"generation\":{\"temperature\":\"0.2\"}}", SC_ERR_INVALID,
     "\"generation.temperature\"", "bad-1"},
    {"max_output_tokens 0", HEAD OKMSG ",\"generation\":{\"max_output_tokens\":0}}", SC_ERR_INVALID,
     "\"generation.max_output_tokens\": must be an integer >= 1", "bad-1"},
    {"maxOutputTokens real", HEAD OKMSG ",\"generation\":{\"maxOutputTokens\":1.5}}",
     SC_ERR_INVALID, "\"generation.maxOutputTokens\"", "bad-1"},
    {"max_output_tokens twice",
     HEAD OKMSG ",\"generation\":{\"max_output_tokens\":5,\"maxOutputTokens\":6}}", SC_ERR_INVALID,
     "given twice", "bad-1"},
    {"unknown generation key", HEAD OKMSG ",\"generation\":{\"temprature\":0.5}}", SC_ERR_INVALID,
     "\"generation.temprature\": unknown key", "bad-1"},
    {"generation not an object", HEAD OKMSG ",\"generation\":[1]}", SC_ERR_INVALID,
     "\"generation\": must be an object", "bad-1"},
    {"bad mime type", HEAD OKMSG ",\"generation\":{\"response_mime_type\":\"text/html\"}}",
     SC_ERR_INVALID, "\"generation.response_mime_type\"", "bad-1"},
    {"bad cache value", HEAD OKMSG ",\"cache\":\"yes\"}", SC_ERR_INVALID,
     "\"cache\": must be \"on\", \"exact\" or \"off\"", "bad-1"},
    {"cache not a string", HEAD OKMSG ",\"cache\":true}", SC_ERR_INVALID, "\"cache\"", "bad-1"},
    {"model with a slash", HEAD OKMSG ",\"model\":\"models/gemini-2.5-pro\"}", SC_ERR_INVALID,
     "\"model\"", "bad-1"},
    {"model dot-dot", HEAD OKMSG ",\"model\":\"..\"}", SC_ERR_INVALID, "\"model\"", "bad-1"},
    {"model with a query", HEAD OKMSG ",\"model\":\"flash?key=x\"}", SC_ERR_INVALID, "\"model\"",
     "bad-1"},
    {"empty model", HEAD OKMSG ",\"model\":\"\"}", SC_ERR_INVALID, "\"model\"", "bad-1"},
    {"model not a string", HEAD OKMSG ",\"model\":7}", SC_ERR_INVALID,
     "\"model\": must be a string", "bad-1"},
    {"deadline_ms negative", HEAD OKMSG ",\"deadline_ms\":-5}", SC_ERR_INVALID, "\"deadline_ms\"",
     "bad-1"},
    {"deadline_ms too big", HEAD OKMSG ",\"deadline_ms\":3600001}", SC_ERR_INVALID,
     "\"deadline_ms\"", "bad-1"},
    {"deadline_ms real", HEAD OKMSG ",\"deadline_ms\":100.5}", SC_ERR_INVALID, "\"deadline_ms\"",
     "bad-1"},
    {"bad priority", HEAD OKMSG ",\"priority\":\"urgent\"}", SC_ERR_INVALID,
     "\"priority\": must be \"online\" or \"batch\"", "bad-1"},
};

static void test_malformed(void **state)
{
    (void)state;
    size_t i;

    assert_true(sizeof(BAD) / sizeof(BAD[0]) >= 20);
    for (i = 0; i < sizeof(BAD) / sizeof(BAD[0]); i++) {
        sc_request_t *req = (sc_request_t *)(uintptr_t)1; /* must be reset to NULL */
        char idbuf[IDLEN], err[ERRLEN];
        sc_status_t st;

        memset(idbuf, 'Z', sizeof(idbuf));
        memset(err, 0, sizeof(err));
        st = parse(BAD[i].json, &req, idbuf, err);
        print_message("  %-26s -> %s: %s\n", BAD[i].name, sc_status_code(st), err);
        if (st != BAD[i].want)
            fail_msg("%s: status %d, want %d (%s)", BAD[i].name, st, BAD[i].want, err);
        assert_null(req);
        if (!strstr(err, BAD[i].in_msg))
            fail_msg("%s: message \"%s\" lacks \"%s\"", BAD[i].name, err, BAD[i].in_msg);
        if (strcmp(idbuf, BAD[i].id) != 0)
            fail_msg("%s: idbuf \"%s\", want \"%s\"", BAD[i].name, idbuf, BAD[i].id);
        assert_null(strchr(err, '\n'));
    }
}

static void test_too_many_messages(void **state)
{
    (void)state;
    sc_limits_t lim;
    sc_request_t *req = NULL;
    char idbuf[IDLEN], err[ERRLEN];
    const char *s = "{\"id\":\"many\",\"tenant\":\"t\",\"messages\":["
                    "{\"role\":\"user\",\"content\":\"1\"},{\"role\":\"model\",\"content\":\"2\"},"
                    "{\"role\":\"user\",\"content\":\"3\"},{\"role\":\"model\",\"content\":\"4\"},"
                    "{\"role\":\"user\",\"content\":\"5\"}]}";

    sc_limits_default(&lim);
    lim.max_messages = 4;
    assert_int_equal(parse_lim(s, strlen(s), &lim, &req, idbuf, err), SC_ERR_INVALID);
    assert_null(req);
    assert_non_null(strstr(err, "\"messages\""));
    assert_non_null(strstr(err, "limit of 4"));
    assert_string_equal(idbuf, "many");

    lim.max_messages = 5;
    assert_int_equal(parse_lim(s, strlen(s), &lim, &req, idbuf, err), SC_OK);
    assert_int_equal(req->n_turns, 5);
    sc_request_free(req);
}

static void test_too_large(void **state)
{
    (void)state;
    sc_limits_t lim;
    sc_request_t *req = NULL;
    char idbuf[IDLEN], err[ERRLEN];
    size_t n = ((size_t)1 << 20) + 1;
    char *big = malloc(n);

    assert_non_null(big);
    memset(big, ' ', n);
    big[0] = '{';
    big[n - 1] = '}';
    sc_limits_default(&lim);
    assert_int_equal(lim.max_message_bytes, (size_t)1 << 20);
    assert_int_equal(lim.max_messages, 1000);
    assert_int_equal(lim.max_id_bytes, 256);
    assert_int_equal(parse_lim(big, n, &lim, &req, idbuf, err), SC_ERR_TOO_LARGE);
    assert_null(req);
    assert_non_null(strstr(err, "1048577"));
    assert_non_null(strstr(err, "1048576"));
    assert_string_equal(idbuf, "");
    free(big);

    /* a small limit on a small request */
    lim.max_message_bytes = 10;
    assert_int_equal(parse_lim(FULL_REQUEST, strlen(FULL_REQUEST), &lim, &req, idbuf, err),
                     SC_ERR_TOO_LARGE);
}

static void test_id_too_long_and_truncated(void **state)
{
    (void)state;
    sc_limits_t lim;
    sc_request_t *req = NULL;
    char idbuf[8], err[ERRLEN];
    /* id of 6 x "é" (12 bytes) with max_id_bytes 10: invalid, and the copy into an 8-byte
     * idbuf must not split a sequence */
    const char *s =
        "{\"id\":\"\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\",\"tenant\":\"t\"," OKMSG "}";

    sc_limits_default(&lim);
    lim.max_id_bytes = 10;
    assert_int_equal(
        sc_request_parse(s, strlen(s), &lim, &req, idbuf, sizeof(idbuf), err, sizeof(err)),
        SC_ERR_INVALID);
    assert_non_null(strstr(err, "\"id\""));
    assert_non_null(strstr(err, "limit of 10"));
    assert_string_equal(idbuf, "\xc3\xa9\xc3\xa9\xc3\xa9"); /* 6 bytes, not 7 */

    /* tiny buffers and NULL buffers are fine */
    assert_int_equal(sc_request_parse(s, strlen(s), &lim, &req, idbuf, 1, err, 1), SC_ERR_INVALID);
    assert_string_equal(idbuf, "");
    assert_string_equal(err, "");
    assert_int_equal(sc_request_parse(s, strlen(s), &lim, &req, NULL, 0, NULL, 0), SC_ERR_INVALID);
    assert_int_equal(sc_request_parse(NULL, 5, &lim, &req, NULL, 0, NULL, 0), SC_ERR_INVALID_ARG);
}

/* ---- result JSON ---- */

static void expect_keys(json_t *obj, const char *const *keys, size_t n)
{
    void *it = json_object_iter(obj);
    size_t i = 0;

    for (; it; it = json_object_iter_next(obj, it), i++) {
        assert_true(i < n);
        assert_string_equal(json_object_iter_key(it), keys[i]);
    }
    assert_int_equal(i, n);
}

static void test_result_ok(void **state)
{
    (void)state;
    static const char *const keys[] = {"id",
                                       "tenant",
                                       "status",
                                       "text",
                                       "model",
                                       "source",
                                       "finish_reason",
                                       "similarity",
                                       "usage",
                                       "cost_usd",
                                       "baseline_cost_usd",
                                       "savings",
                                       "optimizations",
                                       "attempts",
                                       "latency_ms",
                                       "agent",
                                       "conversation_id"};
    sc_result_t r;
    char *s;
    size_t len = 0;
    json_t *j, *o;
    json_error_t jerr;

    sc_result_init(&r);
    assert_true(r.similarity < 0);
    assert_true(r.route_score < 0);
    assert_null(r.id);
    assert_int_equal(r.ok, 0);
    r.id = "req-000123";
    r.tenant = "acme";
    r.ok = 1;
    r.text = "Try updating the firmware to 5.2 \xe2\x80\x94 it fixes the reboot loop.";
    r.model = "gemini-2.5-flash";
    r.source = "llm";
    r.finish_reason = "STOP";
    r.usage.prompt_tokens = 812;
    r.usage.output_tokens = 96;
    r.cost_usd = 0.000484;
    r.baseline_cost_usd = 0.00598;
    r.savings.prune_usd = 0.0041;
    r.savings.route_usd = 0.0013;
    r.pruned_tokens = 3310;
    r.route = "cheap";
    r.route_score = 0.18;
    r.latency_ms = 842;
    r.attempts = 1;
    r.agent = "support-bot";
    r.conversation_id = "c-9";

    s = sc_result_to_json(&r, &len);
    assert_non_null(s);
    assert_int_equal(len, strlen(s));
    assert_null(strchr(s, '\n')); /* compact: one Kafka message, one JSONL line */
    j = json_loads(s, 0, &jerr);
    assert_non_null(j);
    expect_keys(j, keys, sizeof(keys) / sizeof(keys[0]));
    assert_string_equal(json_string_value(json_object_get(j, "status")), "ok");
    assert_string_equal(json_string_value(json_object_get(j, "text")), r.text);
    assert_string_equal(json_string_value(json_object_get(j, "finish_reason")), "STOP");
    assert_true(json_is_null(json_object_get(j, "similarity")));
    assert_null(json_object_get(j, "error"));
    assert_null(json_object_get(j, "user"));
    assert_null(json_object_get(j, "stage"));
    assert_string_equal(json_string_value(json_object_get(j, "agent")), "support-bot");
    o = json_object_get(j, "usage");
    assert_int_equal(json_integer_value(json_object_get(o, "prompt_tokens")), 812);
    assert_int_equal(json_integer_value(json_object_get(o, "cached_tokens")), 0);
    assert_int_equal(json_integer_value(json_object_get(o, "output_tokens")), 96);
    assert_int_equal(json_integer_value(json_object_get(o, "thought_tokens")), 0);
    assert_true(json_is_real(json_object_get(j, "cost_usd")));
    assert_float_equal(json_real_value(json_object_get(j, "cost_usd")), 0.000484, 1e-15);
    assert_float_equal(json_real_value(json_object_get(j, "baseline_cost_usd")), 0.00598, 1e-15);
    o = json_object_get(j, "savings");
    assert_float_equal(json_real_value(json_object_get(o, "prune_usd")), 0.0041, 1e-15);
    assert_float_equal(json_real_value(json_object_get(o, "route_usd")), 0.0013, 1e-15);
    assert_true(json_is_real(json_object_get(o, "cache_usd")));
    assert_true(json_is_real(json_object_get(o, "batch_usd")));
    assert_true(json_is_real(json_object_get(o, "prompt_cache_usd")));
    o = json_object_get(j, "optimizations");
    assert_int_equal(json_integer_value(json_object_get(o, "pruned_tokens")), 3310);
    assert_string_equal(json_string_value(json_object_get(o, "route")), "cheap");
    assert_float_equal(json_real_value(json_object_get(o, "route_score")), 0.18, 1e-12);
    assert_true(json_is_false(json_object_get(o, "promoted")));
    assert_true(json_is_null(json_object_get(o, "prompt_cache")));
    assert_int_equal(json_integer_value(json_object_get(j, "attempts")), 1);
    assert_int_equal(json_integer_value(json_object_get(j, "latency_ms")), 842);
    json_decref(j);
    free(s);

    /* a semantic cache hit: similarity and prompt cache present, route_score null */
    r.source = "cache-semantic";
    r.similarity = 0.93;
    r.route_score = -1;
    r.promoted = 1;
    r.prompt_cache = "cachedContents/abc123";
    r.user = "u-1";
    r.stage = "triage";
    s = sc_result_to_json(&r, NULL);
    assert_non_null(s);
    j = json_loads(s, 0, &jerr);
    assert_non_null(j);
    assert_float_equal(json_real_value(json_object_get(j, "similarity")), 0.93, 1e-12);
    o = json_object_get(j, "optimizations");
    assert_true(json_is_null(json_object_get(o, "route_score")));
    assert_true(json_is_true(json_object_get(o, "promoted")));
    assert_string_equal(json_string_value(json_object_get(o, "prompt_cache")),
                        "cachedContents/abc123");
    assert_string_equal(json_string_value(json_object_get(j, "user")), "u-1");
    assert_string_equal(json_string_value(json_object_get(j, "stage")), "triage");
    json_decref(j);
    free(s);
}

static void test_result_error(void **state)
{
    (void)state;
    static const char *const keys[] = {
        "id",      "tenant",        "status",   "model",     "source",
        "error",   "similarity",    "usage",    "cost_usd",  "baseline_cost_usd",
        "savings", "optimizations", "attempts", "latency_ms"};
    sc_result_t r;
    char *s;
    json_t *j, *e;
    json_error_t jerr;

    sc_result_init(&r);
    r.id = "req-7";
    r.tenant = "hooli";
    r.ok = 0;
    r.text = "must not appear";
    r.source = "llm";
    r.error_code = "UPSTREAM_UNAVAILABLE";
    r.error_message = "503 after 4 attempts";
    r.attempts = 4;
    r.cost_usd = NAN; /* NaN must not break the JSON */
    s = sc_result_to_json(&r, NULL);
    assert_non_null(s);
    j = json_loads(s, 0, &jerr);
    assert_non_null(j);
    expect_keys(j, keys, sizeof(keys) / sizeof(keys[0]));
    assert_string_equal(json_string_value(json_object_get(j, "status")), "error");
    assert_true(json_is_null(json_object_get(j, "model")));
    assert_null(json_object_get(j, "text"));
    e = json_object_get(j, "error");
    assert_string_equal(json_string_value(json_object_get(e, "code")), "UPSTREAM_UNAVAILABLE");
    assert_string_equal(json_string_value(json_object_get(e, "message")), "503 after 4 attempts");
    assert_true(json_is_null(json_object_get(j, "cost_usd")));
    assert_true(json_is_null(json_object_get(json_object_get(j, "optimizations"), "route")));
    assert_int_equal(json_integer_value(json_object_get(j, "attempts")), 4);
    json_decref(j);
    free(s);

    /* invalid UTF-8 in a string is repaired, not fatal */
    r.error_message = "bad \xff byte";
    s = sc_result_to_json(&r, NULL);
    assert_non_null(s);
    j = json_loads(s, 0, &jerr);
    assert_non_null(j);
    assert_string_equal(json_string_value(json_object_get(json_object_get(j, "error"), "message")),
                        "bad \xef\xbf\xbd byte");
    json_decref(j);
    free(s);
}

/* ---- dead letters ---- */

static void test_deadletter_utf8(void **state)
{
    (void)state;
    const char *orig = "{\"id\":\"req-9\",\"tenant\":\"acme\",\"messages\":[]} \xe2\x82\xac";
    char *s;
    size_t len = 0;
    json_t *j, *o;
    json_error_t jerr;

    s = sc_deadletter_to_json(orig, strlen(orig), "scrimp.requests", 3, 1234567890123LL, "req-9",
                              "INVALID_REQUEST", "field \"messages\": must have at least 1 entry",
                              &len);
    assert_non_null(s);
    assert_int_equal(len, strlen(s));
    j = json_loads(s, 0, &jerr);
    assert_non_null(j);
    assert_string_equal(json_string_value(json_object_get(j, "id")), "req-9");
    o = json_object_get(j, "error");
    assert_string_equal(json_string_value(json_object_get(o, "code")), "INVALID_REQUEST");
    assert_string_equal(json_string_value(json_object_get(o, "message")),
                        "field \"messages\": must have at least 1 entry");
    o = json_object_get(j, "source");
    assert_string_equal(json_string_value(json_object_get(o, "topic")), "scrimp.requests");
    assert_int_equal(json_integer_value(json_object_get(o, "partition")), 3);
    assert_true(json_integer_value(json_object_get(o, "offset")) == 1234567890123LL);
    assert_string_equal(json_string_value(json_object_get(j, "original")), orig);
    assert_null(json_object_get(j, "original_base64"));
    json_decref(j);
    free(s);

    /* no id: the key is left out */
    s = sc_deadletter_to_json("x", 1, "t", 0, 0, "", "INVALID_JSON", "m", NULL);
    assert_non_null(s);
    j = json_loads(s, 0, &jerr);
    assert_non_null(j);
    assert_null(json_object_get(j, "id"));
    assert_string_equal(json_string_value(json_object_get(j, "original")), "x");
    json_decref(j);
    free(s);
}

static void check_b64_roundtrip(const unsigned char *orig, size_t n)
{
    char *s;
    json_t *j;
    json_error_t jerr;
    const char *b64;
    unsigned char *dec;
    size_t m;

    s = sc_deadletter_to_json(orig, n, "scrimp.requests", 0, 42, NULL, "INVALID_JSON",
                              "invalid JSON at line 1, column 5: unable to decode byte 0xff", NULL);
    assert_non_null(s);
    j = json_loads(s, 0, &jerr);
    assert_non_null(j);
    assert_null(json_object_get(j, "original"));
    assert_null(json_object_get(j, "id"));
    b64 = json_string_value(json_object_get(j, "original_base64"));
    assert_non_null(b64);
    dec = malloc(strlen(b64) / 4 * 3 + 1);
    assert_non_null(dec);
    m = b64_decode(b64, dec);
    assert_int_equal(m, n);
    assert_memory_equal(dec, orig, n);
    free(dec);
    json_decref(j);
    free(s);
}

static void test_deadletter_binary(void **state)
{
    (void)state;
    static const unsigned char invalid[] = {'{', '"', 'i', 'd', 0xff, 0xfe, '"', '}'};
    static const unsigned char with_nul[] = {'a', 0x00, 'b'};
    static const unsigned char surrogate[] = {0xed, 0xa0, 0x80};
    static const unsigned char overlong[] = {0xc0, 0x80, 'x', 'y'};
    static const unsigned char cut[] = {'o', 'k', 0xe2, 0x82};
    unsigned char all[256];
    size_t i;

    check_b64_roundtrip(invalid, sizeof(invalid));
    check_b64_roundtrip(with_nul, sizeof(with_nul));
    check_b64_roundtrip(surrogate, sizeof(surrogate));
    check_b64_roundtrip(overlong, sizeof(overlong));
    check_b64_roundtrip(cut, sizeof(cut));
    for (i = 0; i < sizeof(all); i++)
        all[i] = (unsigned char)(255 - i);
    /* every length mod 3 exercises the padding */
    check_b64_roundtrip(all, 256);
    check_b64_roundtrip(all, 255);
    check_b64_roundtrip(all, 254);
    check_b64_roundtrip(all, 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_full_request),      cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_variants_accepted), cmocka_unit_test(test_not_nul_terminated),
        cmocka_unit_test(test_malformed),         cmocka_unit_test(test_too_many_messages),
        cmocka_unit_test(test_too_large),         cmocka_unit_test(test_id_too_long_and_truncated),
        cmocka_unit_test(test_result_ok),         cmocka_unit_test(test_result_error),
        cmocka_unit_test(test_deadletter_utf8),   cmocka_unit_test(test_deadletter_binary),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
