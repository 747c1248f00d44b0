/* cli.c - `scrimp cache stats|ls|get|purge`: the cache store as JSON lines for an operator. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "host/cache/cache.h"
#include "host/core/util.h"

#define SC_CACHE_CLI_PREFIX 80   /* bytes of the text shown by `ls` */
#define SC_CACHE_CLI_ERRBUF 512

typedef struct {
    const char *cmd;
    const char *tenant;
    const char *id;
    size_t limit;
    int all;
} sc_cache_cli_args_t;

static void cli_usage(void)
{
    fprintf(stderr, "usage: scrimp cache stats [--tenant T]\n"
                    "       scrimp cache ls [--tenant T] [--limit N]\n"
                    "       scrimp cache get ID\n"
                    "       scrimp cache purge (--tenant T | --all)\n"
                    "       (with -c FILE and -X cache.key=value as everywhere)\n");
}

/* A JSON string of at most max bytes of s (cut at a character boundary); null when s is not
 * UTF-8. @remark a new reference. */
static json_t *json_text(const char *s, size_t len, size_t max)
{
    if (len > max) {
        len = max;
        while (len > 0 && ((unsigned char)s[len] & 0xc0) == 0x80)
            len--;
    }
    json_t *j = json_stringn(s, len);
    return j ? j : json_null();
}

/* @remark a new reference. */
static json_t *entry_json(const sc_cache_entry_t *e, int full)
{
    char scope[24];
    snprintf(scope, sizeof(scope), "%016llx", (unsigned long long)e->scope);
    json_t *o = json_pack("{s:I, s:s, s:s, s:s, s:I, s:I, s:I, s:I}", "id", (json_int_t)e->id,
                          "tenant", e->tenant, "model", e->model, "scope", scope, "created_ms",
                          (json_int_t)e->created_ms, "last_hit_ms", (json_int_t)e->last_hit_ms,
                          "hits", (json_int_t)e->hits, "size", (json_int_t)e->size);
    if (!o)
        return NULL;
    if (!full) {
        json_object_set_new(o, "text", json_text(e->text, e->text_len, SC_CACHE_CLI_PREFIX));
        return o;
    }
    json_object_set_new(o, "text", json_text(e->text, e->text_len, e->text_len));
    json_object_set_new(o, "response", json_text(e->response, e->response_len, e->response_len));
    json_object_set_new(o, "usage",
                        json_pack("{s:I, s:I, s:I, s:I}", "prompt_tokens",
                                  (json_int_t)e->usage.prompt_tokens, "cached_tokens",
                                  (json_int_t)e->usage.cached_tokens, "output_tokens",
                                  (json_int_t)e->usage.output_tokens, "thought_tokens",
                                  (json_int_t)e->usage.thought_tokens));
    json_object_set_new(o, "cost_usd", json_real(e->cost_usd));
    json_object_set_new(o, "has_vector", json_boolean(e->has_vec));
    return o;
}

/* Print one JSON document as a line; takes the reference. */
static int print_json(json_t *o)
{
    if (!o)
        return 1;
    char *s = json_dumps(o, JSON_COMPACT | JSON_ENSURE_ASCII);
    json_decref(o);
    if (!s)
        return 1;
    puts(s);
    free(s);
    return 0;
}

static int ls_visit(const sc_cache_entry_t *e, void *ud)
{
    (void)ud;
    return print_json(entry_json(e, 0));
}

typedef struct {
    uint64_t entries, bytes, hits, with_vec;
} sc_tally_t;

static int tally_visit(const sc_cache_entry_t *e, void *ud)
{
    sc_tally_t *t = ud;
    t->entries++;
    t->bytes += e->size;
    t->hits += e->hits;
    t->with_vec += e->has_vec != 0;
    return 0;
}

static int cli_parse(int argc, char **argv, sc_cache_cli_args_t *a)
{
    memset(a, 0, sizeof(*a));
    int i = 0;
    if (i < argc && !strcmp(argv[i], "cache"))
        i++;
    if (i >= argc)
        return -1;
    a->cmd = argv[i++];
    for (; i < argc; i++) {
        const char *s = argv[i];
        if (!strcmp(s, "--tenant") && i + 1 < argc) {
            a->tenant = argv[++i];
        } else if (!strcmp(s, "--limit") && i + 1 < argc) {
            char *end;
            errno = 0;
            unsigned long long v = strtoull(argv[++i], &end, 10);
            if (errno || *end || end == argv[i])
                return -1;
            a->limit = (size_t)v;
        } else if (!strcmp(s, "--all")) {
            a->all = 1;
        } else if ((!strcmp(s, "-c") || !strcmp(s, "-X")) && i + 1 < argc) {
            i++; /* already applied to the configuration by the caller */
        } else if (s[0] != '-' && !a->id) {
            a->id = s;
        } else {
            return -1;
        }
    }
    return 0;
}

int sc_cache_cli(const sc_config_t *cfg, int argc, char **argv)
{
    sc_cache_cli_args_t a;
    sc_cache_opts_t o;
    sc_cache_t *c = NULL;
    char err[SC_CACHE_CLI_ERRBUF] = "";
    int rc = 0;
    if (!cfg || cli_parse(argc, argv, &a)) {
        cli_usage();
        return 2;
    }
    int is_stats = !strcmp(a.cmd, "stats"), is_ls = !strcmp(a.cmd, "ls"),
        is_get = !strcmp(a.cmd, "get"), is_purge = !strcmp(a.cmd, "purge");
    if (!is_stats && !is_ls && !is_get && !is_purge) {
        fprintf(stderr, "scrimp cache: unknown subcommand \"%s\"\n", a.cmd);
        cli_usage();
        return 2;
    }
    uint64_t id = 0;
    if (is_get) {
        char *end;
        errno = 0;
        id = a.id ? strtoull(a.id, &end, 10) : 0;
        if (!a.id || errno || *end || !id) {
            fprintf(stderr, "scrimp cache get: expected an entry id (a positive integer)\n");
            return 2;
        }
    } else if (a.id) {
        fprintf(stderr, "scrimp cache %s: unexpected argument \"%s\"\n", a.cmd, a.id);
        return 2;
    }
    if (is_purge && !a.tenant && !a.all) {
        fprintf(stderr, "scrimp cache purge: say --tenant T, or --all to remove every entry\n");
        return 2;
    }
    sc_cache_opts_from_config(cfg, &o);
    o.use_gpu = 0;
    o.store_only = 1; /* the tool reads and deletes entries; a serving process keeps the index */
    sc_status_t st = sc_cache_open(&o, &c, err, sizeof(err));
    if (st) {
        fprintf(stderr, "scrimp cache: %s\n", err[0] ? err : sc_strerror(st));
        return 1;
    }
    if (is_stats) {
        sc_tally_t t = {0};
        sc_cache_stats_t s;
        st = sc_cache_foreach(c, a.tenant, 0, tally_visit, &t);
        sc_cache_stats(c, &s);
        if (!st) {
            json_t *j = json_pack("{s:s, s:I, s:I, s:I, s:I, s:I, s:I, s:f}", "path", o.path,
                                  "entries", (json_int_t)t.entries, "bytes", (json_int_t)t.bytes,
                                  "hits", (json_int_t)t.hits, "with_vector",
                                  (json_int_t)t.with_vec, "max_bytes", (json_int_t)o.max_bytes,
                                  "ttl_s", (json_int_t)o.ttl_s, "open_ms", s.rebuild_ms);
            if (j && a.tenant)
                json_object_set_new(j, "tenant", json_string(a.tenant));
            rc = print_json(j);
        }
    } else if (is_ls) {
        st = sc_cache_foreach(c, a.tenant, a.limit, ls_visit, NULL);
    } else if (is_get) {
        sc_cache_entry_t e;
        st = sc_cache_get(c, id, &e);
        if (st == SC_ERR_NOT_FOUND) {
            fprintf(stderr, "scrimp cache get: no entry %llu\n", (unsigned long long)id);
            rc = 1;
            st = SC_OK;
        } else if (!st) {
            rc = print_json(entry_json(&e, 1));
            sc_cache_entry_clear(&e);
        }
    } else {
        uint64_t removed = 0;
        st = sc_cache_purge(c, a.tenant, &removed); /* NULL (--all): everything */
        if (!st)
            rc = print_json(json_pack("{s:I}", "removed", (json_int_t)removed));
    }
    if (st) {
        fprintf(stderr, "scrimp cache %s: %s\n", a.cmd, sc_strerror(st));
        rc = 1;
    }
    sc_cache_close(c);
    return rc;
}
