/* sim_tools.c - what the simulator's answers take from Gemini's schemas (host/core/jschema.h):
 * structured output (responseSchema, responseJsonSchema) and function calling (tools[].
 * functionDeclarations, toolConfig): their validation, the function a call picks and its
 * arguments, and the answer after function results (gemini-api.md §1.1). */
#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "host/core/jschema.h"
#include "host/core/util.h"
#include "host/gemini/sim_internal.h"

/* ---- limits ---- */

#define SC_SIM_WORDS_CMP_MAX 256  /* distinct words of a text compared to pick a function */
#define SC_SIM_WORD_MIN      3    /* shorter words do not count when picking a function */
#define SC_SIM_SUBJECT_MAX   64   /* the quoted or capitalised word put into a string argument */
#define SC_SIM_ECHO_MAX      1024 /* bytes of a function's response echoed in the answer */
#define SC_SIM_RESULT_WORDS  10   /* words after the function results (and up to twice as many) */
#define SC_SIM_RESULT_MAX    4096 /* the answer after function results, bytes */

/* Words that say nothing about which function a question wants. */
static const char *const sc_sim_stop_words[] = {
    "the",  "and",  "for",    "with", "what",  "from",  "that",  "this",  "are",  "was",
    "you",  "your", "please", "can",  "could", "would", "about", "into",  "its",  "has",
    "have", "not",  "how",    "who",  "which", "when",  "where", "there", "some", "any",
};

/* ---- structured output ---- */

/* The schema of generationConfig (norm's, borrowed) and its dialect; NULL when none. */
const json_t *sc_sim_response_schema(const json_t *cfg, sc_jschema_dialect_t *d, const char **path)
{
    json_t *s = json_object_get(cfg, "responseSchema");
    *d = SC_JSCHEMA_OPENAPI;
    *path = "generationConfig.responseSchema";
    if (!s) {
        s = json_object_get(cfg, "responseJsonSchema");
        *d = SC_JSCHEMA_JSON;
        *path = "generationConfig.responseJsonSchema";
    }
    return s;
}

/* Check that schema (borrowed) is one of the dialect and can be satisfied.
 * @return false with a 400 in r. */
bool sc_sim_check_schema(const json_t *schema, sc_jschema_dialect_t d, const char *path,
                         sc_sim_reply_t *r)
{
    char err[SC_SIM_ERR_MAX] = "";
    json_t *norm = NULL; /* new, from sc_jschema_check */
    sc_status_t st = sc_jschema_check(schema, d, path, &norm, err, sizeof err);
    if (st == SC_ERR_NOMEM) {
        sc_sim_reply_error(r, 500, "INTERNAL", NULL, "out of memory");
        return false;
    }
    if (st != SC_OK) {
        sc_sim_reply_invalid(r, "%s", err[0] ? err : "invalid schema");
        return false;
    }
    json_t *probe = sc_jschema_instance(norm, d, 0); /* new or NULL */
    json_decref(norm);
    if (!probe) {
        sc_sim_reply_invalid(r,
                             "* GenerateContentRequest.%s: the schema cannot be satisfied by "
                             "any value.",
                             path);
        return false;
    }
    json_decref(probe);
    return true;
}

/* A checked, normalised copy of schema (borrowed). @return a new reference or NULL. */
static json_t *sc_sim_schema_norm(const json_t *schema, sc_jschema_dialect_t d)
{
    json_t *norm = NULL;
    if (sc_jschema_check(schema, d, "schema", &norm, NULL, 0) != SC_OK) {
        json_decref(norm);
        return NULL;
    }
    return norm;
}

/* The answer to a request with a response schema: an instance of it, compact JSON (with
 * text/x.enum, a string instance is the text itself). @return malloc'd, or NULL. */
char *sc_sim_schema_text(const sc_sim_gen_req_t *g, const json_t *req, uint64_t seed)
{
    sc_jschema_dialect_t d;
    const char *path;
    const json_t *schema =
        sc_sim_response_schema(json_object_get(req, "generationConfig"), &d, &path);
    json_t *norm = schema ? sc_sim_schema_norm(schema, d) : NULL;
    json_t *inst = norm ? sc_jschema_instance(norm, d, seed) : NULL; /* new or NULL */
    char *out = NULL;
    if (inst && g->enum_mime && json_is_string(inst))
        out = strdup(json_string_value(inst));
    else if (inst)
        out = json_dumps(inst, JSON_COMPACT | JSON_ENCODE_ANY);
    json_decref(inst);
    json_decref(norm);
    return out;
}

/* ---- function calling: validation ---- */

/* The FunctionCallingConfig mode of norm (borrowed): "AUTO" when unset. */
static const char *sc_sim_fc_mode(const json_t *norm)
{
    const char *mode = json_string_value(json_object_get(
        json_object_get(json_object_get(norm, "toolConfig"), "functionCallingConfig"), "mode"));
    return !mode || strcmp(mode, "MODE_UNSPECIFIED") == 0 ? "AUTO" : mode;
}

/* Modes that may narrow the choice to allowedFunctionNames. */
static bool sc_sim_fc_narrows(const char *mode)
{
    return strcmp(mode, "ANY") == 0 || strcmp(mode, "VALIDATED") == 0;
}

/* A name the API takes for a function: a letter or '_' first, then letters, digits and _ . : -,
 * at most SC_SIM_FN_NAME_MAX bytes. */
static bool sc_sim_fn_name_ok(const char *s)
{
    size_t n = s ? strlen(s) : 0;
    if (n == 0 || n > SC_SIM_FN_NAME_MAX)
        return false;
    if (!((s[0] >= 'a' && s[0] <= 'z') || (s[0] >= 'A' && s[0] <= 'Z') || s[0] == '_'))
        return false;
    for (size_t i = 0; i < n; i++) {
        char ch = s[i];
        bool ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
                  (ch >= '0' && ch <= '9') || ch == '_' || ch == '.' || ch == ':' || ch == '-';
        if (!ok)
            return false;
    }
    return true;
}

/* Is name among the declared functions of norm (borrowed)? */
static bool sc_sim_declared(const json_t *norm, const char *name)
{
    size_t t, f;
    json_t *tool, *decl;
    json_array_foreach(json_object_get(norm, "tools"), t, tool)
    {
        json_array_foreach(json_object_get(tool, "functionDeclarations"), f, decl)
        {
            const char *n = json_string_value(json_object_get(decl, "name"));
            if (n && name && strcmp(n, name) == 0)
                return true;
        }
    }
    return false;
}

/* Check one FunctionDeclaration (t: its tool, f: its index). @return false with a 400 in r. */
static bool sc_sim_check_decl(const json_t *norm, const json_t *decl, size_t t, size_t f,
                              sc_sim_reply_t *r)
{
    char path[96];
    const char *name = json_string_value(json_object_get(decl, "name"));
    if (!json_is_object(decl) || !sc_sim_fn_name_ok(name)) {
        sc_sim_reply_invalid(r,
                             "* GenerateContentRequest.tools[%zu].function_declarations[%zu]."
                             "name: Invalid function name. Must start with a letter or an "
                             "underscore. Must be alphameric (a-z, A-Z, 0-9), underscores (_), "
                             "dots (.), colons (:) or dashes (-), with a maximum length of %d.",
                             t, f, SC_SIM_FN_NAME_MAX);
        return false;
    }
    /* a declaration of the same name earlier in the request */
    size_t ti, fi;
    json_t *tool, *other;
    json_array_foreach(json_object_get(norm, "tools"), ti, tool)
    {
        json_array_foreach(json_object_get(tool, "functionDeclarations"), fi, other)
        {
            if (ti > t || (ti == t && fi >= f))
                break;
            const char *n = json_string_value(json_object_get(other, "name"));
            if (n && strcmp(n, name) == 0) {
                sc_sim_reply_invalid(r, "Duplicate function declaration found: %s", name);
                return false;
            }
        }
    }
    json_t *desc = json_object_get(decl, "description");
    if (desc && !json_is_string(desc)) {
        sc_sim_reply_invalid(r,
                             "Invalid value at 'tools[%zu].function_declarations[%zu]."
                             "description' (TYPE_STRING).",
                             t, f);
        return false;
    }
    static const struct {
        const char *openapi, *json;
    } pairs[] = {{"parameters", "parametersJsonSchema"}, {"response", "responseJsonSchema"}};
    for (size_t k = 0; k < SC_ARRAY_LEN(pairs); k++) {
        json_t *a = json_object_get(decl, pairs[k].openapi);
        json_t *b = json_object_get(decl, pairs[k].json);
        if (a && b) {
            sc_sim_reply_invalid(r,
                                 "* GenerateContentRequest.tools[%zu].function_declarations[%zu]: "
                                 "%s and %s cannot both be set.",
                                 t, f, pairs[k].openapi, pairs[k].json);
            return false;
        }
        if (!a && !b)
            continue;
        snprintf(path, sizeof path, "tools[%zu].functionDeclarations[%zu].%s", t, f,
                 a ? pairs[k].openapi : pairs[k].json);
        if (!sc_sim_check_schema(a ? a : b, a ? SC_JSCHEMA_OPENAPI : SC_JSCHEMA_JSON, path, r))
            return false;
    }
    return true;
}

/* Validate tools[].functionDeclarations and toolConfig.functionCallingConfig of norm (borrowed,
 * normalised) and decide from its last content whether the answer is a function call (g->calls)
 * or a text about function results (g->tool_result). count: add the tools' JSON to the prompt.
 * @return false with a 400 in r. */
bool sc_sim_parse_tools(const json_t *norm, bool count, sc_sim_gen_req_t *g, sc_sim_reply_t *r)
{
    json_t *tools = json_object_get(norm, "tools");
    size_t decls = 0, t, f;
    json_t *tool, *decl;
    g->calls = g->tool_result = false;
    if (tools && !json_is_array(tools)) {
        sc_sim_reply_invalid(r, "Invalid value at 'tools': expected a list of Tool objects.");
        return false;
    }
    json_array_foreach(tools, t, tool)
    {
        json_t *fds = json_object_get(tool, "functionDeclarations");
        if (fds && !json_is_array(fds)) {
            sc_sim_reply_invalid(r,
                                 "Invalid value at 'tools[%zu].function_declarations': expected a "
                                 "list.",
                                 t);
            return false;
        }
        json_array_foreach(fds, f, decl)
        {
            if (!sc_sim_check_decl(norm, decl, t, f, r))
                return false;
            decls++;
        }
    }
    if (count && tools)
        g->prompt_chars += sc_sim_json_chars(tools);
    const char *mode = sc_sim_fc_mode(norm);
    static const char *const modes[] = {"AUTO", "ANY", "NONE", "VALIDATED"};
    bool known = false;
    for (size_t i = 0; i < SC_ARRAY_LEN(modes); i++)
        known = known || strcmp(mode, modes[i]) == 0;
    if (!known) {
        sc_sim_reply_invalid(r,
                             "Invalid value at 'tool_config.function_calling_config.mode' "
                             "(type.googleapis.com/google.ai.generativelanguage.v1beta."
                             "FunctionCallingConfig.Mode), \"%.32s\"",
                             mode);
        return false;
    }
    json_t *allowed = json_object_get(
        json_object_get(json_object_get(norm, "toolConfig"), "functionCallingConfig"),
        "allowedFunctionNames");
    if (allowed && json_array_size(allowed) > 0) {
        if (!sc_sim_fc_narrows(mode)) {
            sc_sim_reply_invalid(r, "* GenerateContentRequest.tool_config.function_calling_config."
                                    "allowed_function_names: allowed_function_names may only be "
                                    "set when mode is ANY (or VALIDATED).");
            return false;
        }
        size_t i;
        json_t *name;
        json_array_foreach(allowed, i, name)
        {
            if (!sc_sim_declared(norm, json_string_value(name))) {
                sc_sim_reply_invalid(r,
                                     "* GenerateContentRequest.tool_config.function_calling_"
                                     "config.allowed_function_names[%zu]: \"%.*s\" is not a "
                                     "declared function.",
                                     i, SC_SIM_FN_NAME_MAX,
                                     json_is_string(name) ? json_string_value(name) : "");
                return false;
            }
        }
    }
    /* the last content: a user turn of text asks, one of functionResponse parts reports */
    json_t *contents = json_object_get(norm, "contents");
    json_t *last = json_array_get(contents, json_array_size(contents) - 1);
    const char *role = json_string_value(json_object_get(last, "role"));
    bool user = last && (!role || strcmp(role, "model") != 0);
    bool text = false, results = false;
    size_t i;
    json_t *part;
    json_array_foreach(json_object_get(last, "parts"), i, part)
    {
        text = text || json_is_string(json_object_get(part, "text"));
        results = results || json_object_get(part, "functionResponse") != NULL;
    }
    bool on = decls > 0 && strcmp(mode, "NONE") != 0;
    g->calls = on && (strcmp(mode, "ANY") == 0 || (user && text && !results));
    g->tool_result = !g->calls && user && results;
    return true;
}

/* ---- function calling: the answer ---- */

/* The text parts of the last content of req when it is a user turn, joined by "\n".
 * @return malloc'd (the caller frees), "" when none; NULL when out of memory. */
char *sc_sim_last_user_text(const json_t *req)
{
    json_t *contents = json_object_get(req, "contents");
    json_t *last = json_array_get(contents, json_array_size(contents) - 1);
    const char *role = json_string_value(json_object_get(last, "role"));
    size_t cap = 1, n = 0, i;
    json_t *part;
    bool user = last && (!role || strcmp(role, "model") != 0);
    json_array_foreach(json_object_get(last, "parts"), i, part)
    {
        json_t *t = json_object_get(part, "text");
        if (user && json_is_string(t))
            cap += json_string_length(t) + 1;
    }
    char *out = malloc(cap);
    if (!out)
        return NULL;
    json_array_foreach(json_object_get(last, "parts"), i, part)
    {
        json_t *t = json_object_get(part, "text");
        if (!user || !json_is_string(t))
            continue;
        if (n > 0)
            out[n++] = '\n';
        memcpy(out + n, json_string_value(t), json_string_length(t));
        n += json_string_length(t);
    }
    out[n] = '\0';
    return out;
}

static bool sc_sim_alnum(char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9');
}

static bool sc_sim_upper(char ch)
{
    return ch >= 'A' && ch <= 'Z';
}

/* Add the distinct words of s to set (hashes, *n of at most SC_SIM_WORDS_CMP_MAX): runs of ASCII
 * letters and digits, split again where a lower-case letter meets an upper-case one (getWeather),
 * lower-cased; shorter than SC_SIM_WORD_MIN or a stop word: left out. */
static void sc_sim_words_of(const char *s, uint64_t *set, size_t *n)
{
    for (size_t i = 0; s && s[i];) {
        if (!sc_sim_alnum(s[i])) {
            i++;
            continue;
        }
        size_t from = i++;
        while (s[i] && sc_sim_alnum(s[i]) && !(sc_sim_upper(s[i]) && !sc_sim_upper(s[i - 1])))
            i++;
        size_t len = i - from;
        char w[SC_SIM_SUBJECT_MAX];
        if (len < SC_SIM_WORD_MIN || len >= sizeof w)
            continue;
        for (size_t k = 0; k < len; k++)
            w[k] = sc_sim_upper(s[from + k]) ? (char)(s[from + k] - 'A' + 'a') : s[from + k];
        w[len] = '\0';
        bool skip = false;
        for (size_t k = 0; k < SC_ARRAY_LEN(sc_sim_stop_words) && !skip; k++)
            skip = strcmp(w, sc_sim_stop_words[k]) == 0;
        uint64_t h = sc_sim_fnv(SC_SIM_FNV_OFFSET, w, len);
        for (size_t k = 0; k < *n && !skip; k++)
            skip = set[k] == h;
        if (!skip && *n < SC_SIM_WORDS_CMP_MAX)
            set[(*n)++] = h;
    }
}

/* The declaration a function call answers with: among the declarations of req (borrowed; with
 * mode ANY or VALIDATED and allowedFunctionNames, only those), the one whose name or description
 * shares the most words with user; the first on a tie. @return borrowed, or NULL when none. */
const json_t *sc_sim_pick_function(const json_t *req, const char *user)
{
    uint64_t uw[SC_SIM_WORDS_CMP_MAX], dw[SC_SIM_WORDS_CMP_MAX];
    size_t nu = 0, t, f;
    sc_sim_words_of(user, uw, &nu);
    json_t *allowed = json_object_get(
        json_object_get(json_object_get(req, "toolConfig"), "functionCallingConfig"),
        "allowedFunctionNames");
    bool narrow = sc_sim_fc_narrows(sc_sim_fc_mode(req)) && json_array_size(allowed) > 0;
    const json_t *best = NULL;
    size_t best_score = 0;
    json_t *tool, *decl;
    json_array_foreach(json_object_get(req, "tools"), t, tool)
    {
        json_array_foreach(json_object_get(tool, "functionDeclarations"), f, decl)
        {
            const char *name = json_string_value(json_object_get(decl, "name"));
            if (!name)
                continue;
            if (narrow) {
                bool in = false;
                size_t i;
                json_t *a;
                json_array_foreach(allowed, i, a)
                {
                    in = in || (json_is_string(a) && strcmp(json_string_value(a), name) == 0);
                }
                if (!in)
                    continue;
            }
            size_t nd = 0, score = 0;
            sc_sim_words_of(name, dw, &nd);
            sc_sim_words_of(json_string_value(json_object_get(decl, "description")), dw, &nd);
            for (size_t i = 0; i < nu; i++)
                for (size_t k = 0; k < nd; k++)
                    score += uw[i] == dw[k];
            if (!best || score > best_score) {
                best = decl;
                best_score = score;
            }
        }
    }
    return best;
}

/* The word of user a call puts into its first string argument: the first 'quoted' or "quoted"
 * run (the quote opening after a non-alphanumeric byte and closing before one), else the first
 * capitalised word that does not open a sentence, with the capitalised words right after it
 * ("New York"). @return false when there is none. */
static bool sc_sim_subject(const char *user, char out[SC_SIM_SUBJECT_MAX])
{
    size_t n = strlen(user);
    for (size_t i = 0; i < n; i++) {
        char q = user[i];
        if ((q != '\'' && q != '"') || (i > 0 && sc_sim_alnum(user[i - 1])))
            continue;
        const char *end = strchr(user + i + 1, q);
        size_t len = end ? (size_t)(end - user) - i - 1 : 0;
        if (len == 0 || len >= SC_SIM_SUBJECT_MAX || sc_sim_alnum(end[1]) ||
            memchr(user + i + 1, '\n', len) || user[i + 1] == ' ' || end[-1] == ' ')
            continue;
        memcpy(out, user + i + 1, len);
        out[len] = '\0';
        return true;
    }
    for (size_t i = 0; i < n; i++) {
        if (!sc_sim_upper(user[i]) || (i > 0 && sc_sim_alnum(user[i - 1])))
            continue;
        size_t j = i;
        while (j > 0 && (user[j - 1] == ' ' || user[j - 1] == '\t'))
            j--;
        bool opens = j == 0 || strchr(".!?\n:", user[j - 1]) != NULL;
        size_t e = i;
        while (e < n && (sc_sim_alnum(user[e]) || user[e] == '-'))
            e++;
        if (opens || (e - i == 1 && user[i] == 'I')) {
            i = e;
            continue;
        }
        /* capitalised words right after it belong to the same name */
        while (e + 1 < n && user[e] == ' ' && sc_sim_upper(user[e + 1])) {
            size_t k = e + 1;
            while (k < n && (sc_sim_alnum(user[k]) || user[k] == '-'))
                k++;
            e = k;
        }
        size_t len = e - i;
        if (len >= SC_SIM_SUBJECT_MAX)
            len = SC_SIM_SUBJECT_MAX - 1;
        memcpy(out, user + i, len);
        out[len] = '\0';
        return true;
    }
    return false;
}

/* Is the property schema p (borrowed) one of a string? */
static bool sc_sim_string_prop(const json_t *p)
{
    json_t *type = json_object_get(p, "type");
    size_t i;
    json_t *t;
    if (json_is_string(type))
        return strcasecmp(json_string_value(type), "string") == 0;
    json_array_foreach(type, i, t)
    {
        if (json_is_string(t) && strcmp(json_string_value(t), "string") == 0)
            return true;
    }
    return false;
}

/* Put subject into the first string property of args (an instance of schema, both borrowed;
 * properties in propertyOrdering's order when it is given) where the result stays valid. */
static void sc_sim_put_subject(const json_t *schema, sc_jschema_dialect_t d, json_t *args,
                               const char *subject)
{
    json_t *props = json_object_get(schema, "properties");
    json_t *order = json_object_get(schema, "propertyOrdering");
    json_t *keys = json_array(); /* new: the property names in order */
    const char *key;
    json_t *val;
    size_t i;
    if (!keys)
        return;
    json_array_foreach(order, i, val)
    {
        if (json_is_string(val))
            json_array_append(keys, val);
    }
    json_object_foreach(props, key, val)
    {
        json_array_append_new(keys, json_string(key));
    }
    json_array_foreach(keys, i, val)
    {
        const char *name = json_string_value(val);
        if (!name || !sc_sim_string_prop(json_object_get(props, name)))
            continue;
        json_t *old = json_incref(json_object_get(args, name)); /* new or NULL */
        if (json_object_set_new(args, name, json_string(subject)) == 0 &&
            sc_jschema_validate(schema, d, args, NULL, 0)) {
            json_decref(old);
            break;
        }
        if (old)
            json_object_set_new(args, name, old);
        else
            json_object_del(args, name);
    }
    json_decref(keys);
}

/* The functionCall part for decl (borrowed): args an instance of its parameters seeded by seed,
 * with the subject of user in its first string parameter. @return a new reference or NULL. */
json_t *sc_sim_call_part(const json_t *decl, const char *user, uint64_t seed)
{
    json_t *params = json_object_get(decl, "parameters");
    sc_jschema_dialect_t d = SC_JSCHEMA_OPENAPI;
    if (!params) {
        params = json_object_get(decl, "parametersJsonSchema");
        d = SC_JSCHEMA_JSON;
    }
    json_t *norm = params ? sc_sim_schema_norm(params, d) : NULL; /* new or NULL */
    json_t *args = norm ? sc_jschema_instance(norm, d, seed) : NULL;
    if (args && !json_is_object(args)) {
        json_decref(args);
        args = NULL;
    }
    if (!args)
        args = json_object();
    char subject[SC_SIM_SUBJECT_MAX];
    if (args && norm && sc_sim_subject(user, subject))
        sc_sim_put_subject(norm, d, args, subject);
    json_decref(norm);
    /* "o" steals args even when json_pack fails */
    return args ? json_pack("{s:{s:s, s:o}}", "functionCall", "name",
                            json_string_value(json_object_get(decl, "name")), "args", args)
                : NULL;
}

/* The answer after function results: names each function of the last user turn's
 * functionResponse parts with the compact JSON of its response (at most SC_SIM_ECHO_MAX bytes
 * each), then words seeded by the results and index. @return malloc'd, or NULL. */
char *sc_sim_tool_result_text(const char *model, const sc_sim_gen_req_t *g, const json_t *req,
                              unsigned index)
{
    json_t *contents = json_object_get(req, "contents");
    json_t *last = json_array_get(contents, json_array_size(contents) - 1);
    char buf[SC_SIM_RESULT_MAX];
    size_t len = 0, i, n = 0;
    json_t *part;
    uint64_t h = g->last_user_hash;
    snprintf(buf, sizeof buf, "Simulated answer from %s using the function results:", model);
    len = strlen(buf);
    json_array_foreach(json_object_get(last, "parts"), i, part)
    {
        json_t *fr = json_object_get(part, "functionResponse");
        const char *name = json_string_value(json_object_get(fr, "name"));
        if (!name)
            continue;
        json_t *resp = json_object_get(fr, "response"); /* borrowed */
        char *dump = json_dumps(resp ? resp : json_null(), JSON_COMPACT | JSON_ENCODE_ANY);
        if (!dump)
            return NULL;
        size_t dl = strlen(dump);
        if (dl > SC_SIM_ECHO_MAX) {
            dl = sc_sim_utf8_floor(dump, SC_SIM_ECHO_MAX - 3);
            memcpy(dump + dl, "...", 4); /* dump holds more than SC_SIM_ECHO_MAX + 1 bytes */
        }
        h = sc_sim_fnv(sc_sim_fnv(h, name, strlen(name)), dump, strlen(dump));
        sc_sim_append(buf, sizeof buf, &len, n++ ? "; " : " ");
        sc_sim_append(buf, sizeof buf, &len, name);
        sc_sim_append(buf, sizeof buf, &len, " returned ");
        sc_sim_append(buf, sizeof buf, &len, dump);
        free(dump);
    }
    sc_sim_append(buf, sizeof buf, &len, ".");
    uint64_t state = sc_sim_variant(h, index);
    size_t words = SC_SIM_RESULT_WORDS + (size_t)(sc_sim_splitmix64(&state) % SC_SIM_RESULT_WORDS);
    sc_sim_append_words(buf, sizeof buf, &len, &state, words);
    sc_sim_append(buf, sizeof buf, &len, ".");
    return strdup(buf);
}
