/*  test_podspec: the tables of built-in pods, value checks and --help. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nf_error.h"
#include "nf_podspec.h"
#include "nf_test.h"

static void
test_find(void)
{
    const char *names[] = {"gateway", "encoder", "router", "indexer", "reducer"};
    for (size_t i = 0; i < 5; i++) {
        const nf_podspec_t *s = nf_podspec_find(names[i]);
        CHECK(s != NULL);
        if (!s)
            continue;
        CHECK(!strcmp(s->uses, names[i]));
        CHECK(!strncmp(s->program, "nflow-", 6) && !strcmp(s->program + 6, names[i]));
        CHECK(nf_podspec_nsockets(s) >= 3);
        CHECK(s->nsettings >= 1 || !strcmp(s->uses, "reducer"));   /* k comes with the plan */
        /* every default passes its own check */
        for (size_t j = 0; j < s->nsettings; j++)
            if (s->settings[j].def)
                CHECK_OK(nf_setting_check(&s->settings[j], s->settings[j].def));
    }
    CHECK(nf_podspec_find("exec") == NULL);
    CHECK(nf_podspec_find("nope") == NULL);
    CHECK(nf_podspec_find(NULL) == NULL);
}

static void
test_contract_defaults(void)
{
    struct { const char *pod, *key, *def; } want[] = {
        {"gateway", "timeout_ms", "10000"}, {"gateway", "max_inflight", "10000"},
        {"encoder", "dim", "256"}, {"encoder", "ngram", "3"},
        {"router", "heartbeat_ms", "250"}, {"router", "dead_after_ms", "1000"},
        {"indexer", "dim", NULL}, {"indexer", "metric", "cosine"},
        {"indexer", "vectors", "mmap"}, {"indexer", "payloads", "mmap"},
        {"indexer", "warmup", "false"}, {"indexer", "threads", "0"},
        {"indexer", "heartbeat_ms", "250"}
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        const nf_setting_t *s = nf_podspec_setting(nf_podspec_find(want[i].pod), want[i].key);
        CHECK(s != NULL);
        if (!s)
            continue;
        if (want[i].def)
            CHECK(s->def && !strcmp(s->def, want[i].def));
        else
            CHECK(s->def == NULL);      /* required */
    }
    CHECK(nf_podspec_setting(nf_podspec_find("indexer"), "top_k") == NULL);
}

static void
test_check(void)
{
    const nf_podspec_t *idx = nf_podspec_find("indexer");
    const nf_setting_t *dim = nf_podspec_setting(idx, "dim");
    CHECK_OK(nf_setting_check(dim, "128"));
    CHECK(nf_setting_check(dim, "0") == NF_EINVAL);
    CHECK(strstr(nf_error_msg(), "dim") && strstr(nf_error_msg(), "1..65536"));
    CHECK(nf_setting_check(dim, "65537") == NF_EINVAL);
    CHECK(nf_setting_check(dim, "12x") == NF_EINVAL);
    CHECK(strstr(nf_error_msg(), "'12x'") != NULL);
    CHECK(nf_setting_check(dim, "") == NF_EINVAL);
    CHECK(nf_setting_check(dim, "99999999999999999999999") == NF_EINVAL);

    const nf_setting_t *metric = nf_podspec_setting(idx, "metric");
    CHECK_OK(nf_setting_check(metric, "l2"));
    CHECK_OK(nf_setting_check(metric, "ip"));
    CHECK_OK(nf_setting_check(metric, "cosine"));
    CHECK(nf_setting_check(metric, "cos") == NF_EINVAL);
    CHECK(strstr(nf_error_msg(), "l2|ip|cosine") != NULL);
    CHECK(nf_setting_check(metric, "") == NF_EINVAL);
    CHECK(nf_setting_check(metric, "l2|ip") == NF_EINVAL);

    const nf_setting_t *warm = nf_podspec_setting(idx, "warmup");
    CHECK_OK(nf_setting_check(warm, "true"));
    CHECK_OK(nf_setting_check(warm, "False"));
    CHECK(nf_setting_check(warm, "maybe") == NF_EINVAL);
    bool b = false;
    CHECK_OK(nf_setting_parse_bool("yes", &b));
    CHECK(b);
    CHECK_OK(nf_setting_parse_bool("0", &b));
    CHECK(!b);
    CHECK(nf_setting_parse_bool("2", &b) == NF_EINVAL);

    CHECK(nf_setting_check(nf_podspec_setting(nf_podspec_find("encoder"), "ngram"), "9")
          == NF_EINVAL);
    CHECK_OK(nf_setting_check(nf_podspec_setting(nf_podspec_find("encoder"), "ngram"), "0"));
    CHECK(nf_podspec_setting(nf_podspec_find("reducer"), "top_k") == NULL);
}

static void
test_options(void)
{
    const nf_podspec_t *idx = nf_podspec_find("indexer"), *enc = nf_podspec_find("encoder");
    CHECK(nf_podspec_option(idx, "name") == NF_PODSPEC_OPT_COMMON);
    CHECK(nf_podspec_option(idx, "shard") == NF_PODSPEC_OPT_COMMON);
    CHECK(nf_podspec_option(idx, "workspace") == NF_PODSPEC_OPT_COMMON);
    CHECK(nf_podspec_option(idx, "replica") == NF_PODSPEC_OPT_NONE);
    CHECK(nf_podspec_option(enc, "replica") == NF_PODSPEC_OPT_COMMON);
    CHECK(nf_podspec_option(enc, "shard") == NF_PODSPEC_OPT_NONE);
    CHECK(nf_podspec_option(nf_podspec_find("router"), "nshards") == NF_PODSPEC_OPT_COMMON);
    CHECK(nf_podspec_option(idx, "router") == NF_PODSPEC_OPT_SOCKET);
    CHECK(nf_podspec_option(enc, "in") == NF_PODSPEC_OPT_SOCKET);
    CHECK(nf_podspec_option(enc, "dim") == NF_PODSPEC_OPT_SETTING);
    CHECK(nf_podspec_option(enc, "bogus") == NF_PODSPEC_OPT_NONE);
    CHECK(nf_podspec_option(nf_podspec_find("gateway"), "clients") == NF_PODSPEC_OPT_SOCKET);
}

static void
test_help(void)
{
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    nf_podspec_help(nf_podspec_find("indexer"), f);
    fclose(f);
    CHECK(text && strstr(text, "usage: nflow-indexer"));
    CHECK(text && strstr(text, "--router EP") && strstr(text, "DEALER connect"));
    CHECK(text && strstr(text, "--dim N") && strstr(text, "required"));
    CHECK(text && strstr(text, "--metric WORD") && strstr(text, "default cosine"));
    CHECK(text && strstr(text, "--shard N") && strstr(text, "NFLOW_"));
    free(text);
}

/* The socket table: every role has --control (bound, last, at ready) and
   --errors; every connecting socket names a peer that exists and binds;
   the identity rule of the shard's DEALER. */
static void
test_sockets(void)
{
    for (size_t r = 0; r < nf_podspec_count(); r++) {
        const nf_podspec_t *spec = nf_podspec_at(r);
        size_t n = nf_podspec_nsockets(spec);
        const nf_sockspec_t *last = nf_podspec_socket_at(spec, n - 2);
        CHECK(last && !strcmp(last->option, "control") && last->bind && last->at_ready
              && last->type == NF_ZMQ_ROUTER);
        CHECK(nf_podspec_socket(spec, "errors") != NULL);
        CHECK(nf_podspec_socket_at(spec, n) == NULL);
        for (size_t i = 0; i < n; i++) {
            const nf_sockspec_t *s = nf_podspec_socket_at(spec, i);
            CHECK(nf_podspec_option(spec, s->option) == NF_PODSPEC_OPT_SOCKET);
            CHECK(s->bind == (s->peer == NULL));
            /* each alternative peer is a bound socket of a role */
            for (const char *p = s->peer; p && *p;) {
                char role[32], opt[32];
                CHECK(sscanf(p, "%31[a-z].%31[a-z]", role, opt) == 2);
                const nf_sockspec_t *peer = nf_podspec_socket(nf_podspec_find(role), opt);
                CHECK(peer && peer->bind);
                p = strchr(p, '|');
                p = p ? p + 1 : NULL;
            }
        }
    }
    const nf_sockspec_t *d = nf_podspec_socket(nf_podspec_find("indexer"), "router");
    CHECK(d && d->type == NF_ZMQ_DEALER && !strcmp(d->identity, "shard-")
          && !strcmp(d->identity_of, "shard") && d->poll);
    /* no handover: a second connection claiming a live shard never takes its route */
    CHECK(!nf_podspec_socket(nf_podspec_find("router"), "shards")->handover);
    /* every bound socket says which keys it lets in; control only operators */
    size_t nrows;
    const nf_sockspec_t *rows = nf_podspec_socket_table(&nrows);
    for (size_t i = 0; i < nrows; i++)
        CHECK(!rows[i].bind == !rows[i].allow);
    CHECK(!strcmp(nf_podspec_socket(nf_podspec_find("gateway"), "control")->allow, "operators"));
    CHECK(!strcmp(nf_podspec_socket(nf_podspec_find("gateway"), "clients")->allow, "clients"));
    CHECK(!strcmp(nf_podspec_type_name(NF_ZMQ_PUSH), "PUSH"));
    char var[32];
    CHECK(!strcmp(nf_podspec_env_name("timeout-ms", var, sizeof var), "NFLOW_TIMEOUT_MS"));
    CHECK(!strcmp(nf_podspec_env_name("in", var, 9), "NFLOW_IN"));
    CHECK(!strcmp(nf_podspec_env_name("control", var, 9), "NFLOW_CO"));
    /* '-' and '_' are one character in setting names */
    CHECK(nf_podspec_setting(nf_podspec_find("gateway"), "timeout-ms") != NULL);
}

/* The markdown row proto/README.md has for a socket. */
static void
s_socket_row(const nf_sockspec_t *s, char *out, size_t size)
{
    char peer[160] = "";
    size_t n = 0;
    for (const char *p = s->peer; p && *p && n < sizeof peer;) {
        char role[32], opt[32];
        if (sscanf(p, "%31[a-z].%31[a-z]", role, opt) != 2)
            break;
        n += (size_t) snprintf(peer + n, sizeof peer - n, "%s%s `--%s`", n ? ", else " : "",
                               role, opt);
        p = strchr(p, '|');
        p = p ? p + 1 : NULL;
    }
    char notes[128] = "", allow[48] = "";
    size_t k = 0;
    if (s->allow)
        snprintf(allow, sizeof allow, "lets in %s", s->allow);
    const char *parts[] = {s->poll ? "polled" : NULL, s->at_ready ? "at ready" : NULL,
                           s->handover ? "handover" : NULL, s->allow ? allow : NULL};
    for (size_t i = 0; i < 4; i++)
        if (parts[i])
            k += (size_t) snprintf(notes + k, sizeof notes - k, "%s%s", k ? "; " : "", parts[i]);
    if (s->identity)
        snprintf(notes + k, sizeof notes - k, "%sidentity `%s<%s>`", k ? "; " : "", s->identity,
                 s->identity_of);
    snprintf(out, size, "| %s | `--%s` | %s | %s | %s | %s |", s->role ? s->role : "every pod",
             s->option, nf_podspec_type_name(s->type), s->bind ? "**bind**" : "connect",
             *peer ? peer : "-", *notes ? notes : "-");
}

/* The markdown row proto/README.md has for a setting. */
static void
s_setting_row(const nf_podspec_t *spec, const nf_setting_t *s, char *out, size_t size)
{
    char range[96];
    switch (s->type) {
    case NF_SET_INT: snprintf(range, sizeof range, "%ld..%ld", s->min, s->max); break;
    case NF_SET_BOOL: snprintf(range, sizeof range, "true, false"); break;
    case NF_SET_CHOICE: {                   /* `l2`, `ip`, `cosine`: no '|' in a table */
        size_t k = 0;
        for (const char *c = s->choices; *c && k + 8 < sizeof range;) {
            size_t w = strcspn(c, "|");
            k += (size_t) snprintf(range + k, sizeof range - k, "%s`%.*s`", k ? ", " : "",
                                   (int) w, c);
            c += w + (c[w] == '|');
        }
        break;
    }
    default: snprintf(range, sizeof range, "text"); break;
    }
    snprintf(out, size, "| %s | `%s` | %s | %s |", spec->uses, s->name, range,
             s->def ? s->def : "required");
}

/* proto/README.md's socket and settings tables are these tables: each row
   of the tables is a line of the document, and the document's sections
   have no other rows.  On a mismatch the expected line is printed. */
static void
test_readme(void)
{
    const char *root = getenv("NFLOW_SOURCE_ROOT");
    if (!root)
        return;
    char path[4096];
    snprintf(path, sizeof path, "%s/proto/README.md", root);
    FILE *f = fopen(path, "r");
    CHECK(f != NULL);
    if (!f)
        return;
    char *doc = NULL;
    size_t len = 0;
    FILE *m = open_memstream(&doc, &len);
    char buf[4096];
    size_t got;
    while ((got = fread(buf, 1, sizeof buf, f)) > 0)
        fwrite(buf, 1, got, m);
    fclose(m);
    fclose(f);
    char row[512];
    size_t n, want_sockets = 0, want_settings = 0;
    const nf_sockspec_t *table = nf_podspec_socket_table(&n);
    for (size_t i = 0; i < n; i++, want_sockets++) {
        s_socket_row(&table[i], row, sizeof row);
        if (!strstr(doc, row)) {
            CHECK(!"proto/README.md misses a socket row");
            fprintf(stderr, "  expected in proto/README.md:\n%s\n", row);
        }
    }
    for (size_t r = 0; r < nf_podspec_count(); r++) {
        const nf_podspec_t *spec = nf_podspec_at(r);
        for (size_t i = 0; i < spec->nsettings; i++, want_settings++) {
            s_setting_row(spec, &spec->settings[i], row, sizeof row);
            if (!strstr(doc, row)) {
                CHECK(!"proto/README.md misses a setting row");
                fprintf(stderr, "  expected in proto/README.md:\n%s\n", row);
            }
        }
    }
    /* count the rows of the two tables: between their header and a blank line */
    const char *heads[] = {"| role | option | type | bind or connect | connects to | notes |",
                           "| role | setting | values | default |"};
    size_t want[] = {want_sockets, want_settings};
    for (size_t t = 0; t < 2; t++) {
        const char *p = strstr(doc, heads[t]);
        CHECK(p != NULL);
        size_t rows = 0;
        if (p)
            p = strchr(p, '\n');                /* the header */
        if (p)
            p = strchr(p + 1, '\n');            /* the |---| line */
        while (p && p[1] == '|') {
            rows++;
            p = strchr(p + 1, '\n');
        }
        if (rows != want[t]) {
            CHECK(!"proto/README.md has rows the tables do not");
            fprintf(stderr, "  %s: %zu rows, the table has %zu\n", heads[t], rows, want[t]);
        }
    }
    free(doc);
}

int
main(void)
{
    test_find();
    test_contract_defaults();
    test_check();
    test_options();
    test_help();
    test_sockets();
    test_readme();
    return nf_test_done("podspec");
}
