/*  nf_podspec: the tables of built-in pods (see nf_podspec.h).

    The settings listed here are the contract of proto/README.md; nf_flow
    checks `with:` blocks against them, nf_pod parses command lines and the
    NFLOW_* environment with them, and --help prints them.               */
#include "nf_podspec.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "nf_error.h"

#define N_(a) (sizeof (a) / sizeof (a)[0])

/* ---- gateway ---- */
static const nf_socketspec_t s_gateway_sockets[] = {
    {"--clients", "ROUTER bind", "clients' DEALER sockets connect here"},
    {"--results", "PULL bind", "reducer results and pod errors arrive here"},
    {"--out", "PUSH connect", "comma-separated: every encoder replica's --in, or the router's --in"},
};
static const nf_setting_t s_gateway_settings[] = {
    {"timeout_ms", NF_SET_INT, 1, 600000, NULL, "10000",
     "default request timeout when a client gives none (ms)"},
    {"max_inflight", NF_SET_INT, 1, 10000000, NULL, "10000",
     "requests in flight before new ones are refused with UNAVAILABLE"},
};

/* ---- encoder ---- */
static const nf_socketspec_t s_encoder_sockets[] = {
    {"--in", "PULL bind", "requests from the gateway"},
    {"--out", "PUSH connect", "the router's --in"},
};
static const nf_setting_t s_encoder_settings[] = {
    {"dim", NF_SET_INT, 1, 65536, NULL, "256", "vector dimension produced"},
    {"ngram", NF_SET_INT, 0, 8, NULL, "3", "character n-gram length hashed besides words (0 = words only)"},
};

/* ---- router ---- */
static const nf_socketspec_t s_router_sockets[] = {
    {"--in", "PULL bind", "requests from the encoders (or the gateway)"},
    {"--shards", "ROUTER bind", "indexer shards' DEALERs connect here (identity shard-N)"},
    {"--reducer", "PUSH connect", "the reducer's --in (plans)"},
};
static const nf_setting_t s_router_settings[] = {
    {"heartbeat_ms", NF_SET_INT, 10, 60000, NULL, "250", "expected shard heartbeat interval (ms)"},
    {"dead_after_ms", NF_SET_INT, 20, 600000, NULL, "1000", "a shard silent this long is down (ms)"},
};

/* ---- indexer ---- */
static const nf_socketspec_t s_indexer_sockets[] = {
    {"--router", "DEALER connect", "the router's --shards (identity shard-<shard>)"},
    {"--reducer", "PUSH connect", "the reducer's --in (result parts)"},
};
static const nf_setting_t s_indexer_settings[] = {
    {"dim", NF_SET_INT, 1, 65536, NULL, NULL, "vector dimension of the segment (required)"},
    {"metric", NF_SET_CHOICE, 0, 0, "l2|ip|cosine", "cosine",
     "l2 = squared distance (smaller is better); ip, cosine (larger is better)"},
    {"vectors", NF_SET_CHOICE, 0, 0, "mmap|memory", "mmap", "memory policy of the vectors"},
    {"payloads", NF_SET_CHOICE, 0, 0, "mmap|memory", "mmap", "memory policy of the payloads"},
    {"warmup", NF_SET_BOOL, 0, 0, NULL, "false", "touch every page of the segment at start"},
    {"threads", NF_SET_INT, 0, 1024, NULL, "0", "scan threads (0 = cores / nshards, at least 1)"},
    {"heartbeat_ms", NF_SET_INT, 10, 60000, NULL, "250", "heartbeat interval to the router (ms)"},
};

/* ---- reducer ---- */
static const nf_socketspec_t s_reducer_sockets[] = {
    {"--in", "PULL bind", "plans from the router and parts from the shards"},
    {"--out", "PUSH connect", "the gateway's --results"},
};
static const nf_setting_t s_reducer_settings[] = {
    {"top_k", NF_SET_INT, 1, 10000, NULL, "10", "matches per query (a search's own top_k wins)"},
};

#define SPEC(u, summary, so, se) \
    {u, "nflow-" u, summary, so, N_(so), se, N_(se)}

static const nf_podspec_t s_specs[] = {
    SPEC("gateway", "front door: request ids, deadlines, exactly one answer per request",
         s_gateway_sockets, s_gateway_settings),
    SPEC("encoder", "text -> vector (signed feature hashing), checks vector dims",
         s_encoder_sockets, s_encoder_settings),
    SPEC("router", "head of the sharded indexer: splits by id hash, fans out searches",
         s_router_sockets, s_router_settings),
    SPEC("indexer", "one shard: a memory-mapped segment, shared-scan searches",
         s_indexer_sockets, s_indexer_settings),
    SPEC("reducer", "merges shard parts into one result per request",
         s_reducer_sockets, s_reducer_settings),
};

/* Options every pod takes besides sockets and settings. */
static const struct {
    const char *name;
    const char *arg;
    const char *roles;      /* space-separated, NULL = all */
    const char *help;
} s_common[] = {
    {"name", "NAME", NULL, "instance name for logs and STATUS, e.g. indexer/1"},
    {"control", "EP", NULL, "bind a ROUTER here; answers PING, STATUS, TERMINATE"},
    {"errors", "EP", NULL, "connect a PUSH here (gateway --results) to fail a request"},
    {"replica", "N", "encoder", "replica number (default 0)"},
    {"shard", "N", "indexer", "shard number (default 0)"},
    {"nshards", "N", "router indexer", "number of shards (default 1)"},
    {"workspace", "DIR", "indexer", "the pod's directory; the segment is DIR/shard-<shard>"},
};

const nf_podspec_t *
nf_podspec_find(const char *uses)
{
    if (!uses)
        return NULL;
    for (size_t i = 0; i < N_(s_specs); i++)
        if (!strcmp(s_specs[i].uses, uses))
            return &s_specs[i];
    return NULL;
}

const nf_setting_t *
nf_podspec_setting(const nf_podspec_t *spec, const char *name)
{
    if (!spec || !name)
        return NULL;
    for (size_t i = 0; i < spec->nsettings; i++)
        if (!strcmp(spec->settings[i].name, name))
            return &spec->settings[i];
    return NULL;
}

static bool
s_role_has(const char *roles, const char *uses)
{
    if (!roles)
        return true;
    size_t n = strlen(uses);
    for (const char *p = roles; (p = strstr(p, uses)); p += n)
        if ((p == roles || p[-1] == ' ') && (p[n] == '\0' || p[n] == ' '))
            return true;
    return false;
}

int
nf_podspec_option(const nf_podspec_t *spec, const char *name)
{
    if (!spec || !name)
        return NF_PODSPEC_OPT_NONE;
    for (size_t i = 0; i < N_(s_common); i++)
        if (!strcmp(s_common[i].name, name) && s_role_has(s_common[i].roles, spec->uses))
            return NF_PODSPEC_OPT_COMMON;
    for (size_t i = 0; i < spec->nsockets; i++)
        if (!strcmp(spec->sockets[i].name + 2, name))
            return NF_PODSPEC_OPT_SOCKET;
    if (nf_podspec_setting(spec, name))
        return NF_PODSPEC_OPT_SETTING;
    return NF_PODSPEC_OPT_NONE;
}

int
nf_setting_parse_bool(const char *value, bool *out)
{
    static const char *yes[] = {"true", "yes", "on", "1"};
    static const char *no[] = {"false", "no", "off", "0"};
    for (size_t i = 0; i < N_(yes); i++) {
        if (value && !strcasecmp(value, yes[i])) {
            *out = true;
            return NF_OK;
        }
        if (value && !strcasecmp(value, no[i])) {
            *out = false;
            return NF_OK;
        }
    }
    return NF_EINVAL;
}

int
nf_setting_check(const nf_setting_t *setting, const char *value)
{
    if (!value)
        return nf_error_set(NF_EINVAL, "%s: missing value", setting->name);
    switch (setting->type) {
    case NF_SET_INT: {
        char *end = NULL;
        errno = 0;
        long v = strtol(value, &end, 10);
        if (!*value || *end || errno == ERANGE)
            return nf_error_set(NF_EINVAL, "%s: expected an integer in %ld..%ld, got '%s'",
                                setting->name, setting->min, setting->max, value);
        if (v < setting->min || v > setting->max)
            return nf_error_set(NF_EINVAL, "%s: expected an integer in %ld..%ld, got %ld",
                                setting->name, setting->min, setting->max, v);
        return NF_OK;
    }
    case NF_SET_BOOL: {
        bool b;
        if (nf_setting_parse_bool(value, &b) != NF_OK)
            return nf_error_set(NF_EINVAL, "%s: expected true or false, got '%s'",
                                setting->name, value);
        return NF_OK;
    }
    case NF_SET_STRING:
        return NF_OK;
    case NF_SET_CHOICE: {
        size_t n = strlen(value);
        const char *p = setting->choices;
        while (p && *p) {
            const char *bar = strchr(p, '|');
            size_t len = bar ? (size_t) (bar - p) : strlen(p);
            if (len == n && n > 0 && !strncmp(p, value, n))
                return NF_OK;
            p = bar ? bar + 1 : NULL;
        }
        return nf_error_set(NF_EINVAL, "%s: expected one of %s, got '%s'", setting->name,
                            setting->choices, value);
    }
    }
    return nf_error_set(NF_EINVAL, "%s: unknown setting type", setting->name);
}

static void
s_setting_line(const nf_setting_t *s, FILE *out)
{
    char arg[64], range[96];
    switch (s->type) {
    case NF_SET_INT:
        snprintf(arg, sizeof arg, "N");
        snprintf(range, sizeof range, "%ld..%ld", s->min, s->max);
        break;
    case NF_SET_BOOL:
        snprintf(arg, sizeof arg, "BOOL");
        snprintf(range, sizeof range, "true|false");
        break;
    case NF_SET_CHOICE:
        snprintf(arg, sizeof arg, "WORD");
        snprintf(range, sizeof range, "%s", s->choices);
        break;
    default:
        snprintf(arg, sizeof arg, "TEXT");
        range[0] = '\0';
        break;
    }
    char left[96];
    snprintf(left, sizeof left, "--%s %s", s->name, arg);
    fprintf(out, "  %-24s %s [%s%s%s%s]\n", left, s->help, range, *range ? "; " : "",
            s->def ? "default " : "required", s->def ? s->def : "");
}

void
nf_podspec_help(const nf_podspec_t *spec, FILE *out)
{
    fprintf(out, "usage: %s [OPTIONS]\n%s: %s\n\n", spec->program, spec->uses, spec->summary);
    fprintf(out, "sockets:\n");
    for (size_t i = 0; i < spec->nsockets; i++) {
        char left[96];
        snprintf(left, sizeof left, "%s EP", spec->sockets[i].name);
        fprintf(out, "  %-24s %-15s %s\n", left, spec->sockets[i].type, spec->sockets[i].help);
    }
    fprintf(out, "\ninstance:\n");
    for (size_t i = 0; i < N_(s_common); i++) {
        if (!s_role_has(s_common[i].roles, spec->uses))
            continue;
        char left[96];
        snprintf(left, sizeof left, "--%s %s", s_common[i].name, s_common[i].arg);
        fprintf(out, "  %-24s %s\n", left, s_common[i].help);
    }
    fprintf(out, "\nsettings (`with:` in a flow file):\n");
    for (size_t i = 0; i < spec->nsettings; i++)
        s_setting_line(&spec->settings[i], out);
    fprintf(out, "\nEvery option not given may come from the environment as NFLOW_<NAME>\n"
                 "(upper case, e.g. NFLOW_IN, NFLOW_DIM).  Protocol: proto/README.md.\n");
}
