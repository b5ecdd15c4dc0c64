/*  nf_podspec: the tables of roles, sockets, instance options and settings
    (see nf_podspec.h).  They are the contract of proto/README.md, which
    tests/test_podspec.c checks against them.                              */
#include "nf_podspec.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "nf_error.h"
#include "nf_limits.h"

#define N_(a) (sizeof (a) / sizeof (a)[0])

/* ------------------------------------------------------------------ */
/* Sockets: one row per socket of a role; role NULL = every role.       */

static const nf_sockspec_t s_sockets[] = {
    /* role      option     type          bind   peer (connect)          poll  ready */
    {"gateway", "clients", NF_ZMQ_ROUTER, true, NULL, true, false, NULL, NULL, false,
     "clients' DEALER sockets connect here", "clients"},
    {"gateway", "results", NF_ZMQ_PULL, true, NULL, true, false, NULL, NULL, false,
     "reducer results and pod errors arrive here", "pods"},
    {"gateway", "out", NF_ZMQ_PUSH, false, "encoder.in|router.in", false, false, NULL, NULL,
     false, "every encoder replica's --in, or the router's --in (comma-separated)"},
    {"encoder", "in", NF_ZMQ_PULL, true, NULL, true, false, NULL, NULL, false,
     "requests from the gateway", "pods"},
    {"encoder", "out", NF_ZMQ_PUSH, false, "router.in", false, false, NULL, NULL, false,
     "the router's --in"},
    {"router", "in", NF_ZMQ_PULL, true, NULL, true, false, NULL, NULL, false,
     "requests from the encoders (or the gateway)", "pods"},
    {"router", "shards", NF_ZMQ_ROUTER, true, NULL, true, false, NULL, NULL, false,
     "indexer shards' DEALERs connect here (identity shard-N, bound to key shard-N "
     "with CURVE; a second connection never takes a live shard's route)", "pods"},
    {"router", "reducer", NF_ZMQ_PUSH, false, "reducer.in", false, false, NULL, NULL, false,
     "the reducer's --in (plans)"},
    {"indexer", "router", NF_ZMQ_DEALER, false, "router.shards", true, false, "shard-",
     "shard", false, "the router's --shards (identity shard-<shard>)"},
    {"indexer", "reducer", NF_ZMQ_PUSH, false, "reducer.in", false, false, NULL, NULL, false,
     "the reducer's --in (result parts)"},
    {"reducer", "in", NF_ZMQ_PULL, true, NULL, true, false, NULL, NULL, false,
     "plans from the router and parts from the shards", "pods"},
    {"reducer", "out", NF_ZMQ_PUSH, false, "gateway.results", false, false, NULL, NULL, false,
     "the gateway's --results"},
    {NULL, "control", NF_ZMQ_ROUTER, true, NULL, false, true, NULL, NULL, false,
     "bound once the pod can serve; answers PING, STATUS, TERMINATE (indexer: COMPACT)", "operators"},
    {NULL, "errors", NF_ZMQ_PUSH, false, "gateway.results", false, true, NULL, NULL, false,
     "fail a request straight to the gateway"},
};

/* ------------------------------------------------------------------ */
/* Instance options every pod may take besides sockets and settings.    */

static const nf_option_t s_options[] = {
    {"name", "NAME", NULL, NF_FILL_NAME, 1, 0, "instance name for logs and STATUS, e.g. indexer/1"},
    {"replica", "N", "encoder", NF_FILL_INDEX, 0, NF_SHARDS_MAX - 1, "replica number (default 0)"},
    {"shard", "N", "indexer", NF_FILL_INDEX, 0, NF_SHARDS_MAX - 1, "shard number (default 0)"},
    {"nshards", "N", "router indexer", NF_FILL_NSHARDS, 1, NF_SHARDS_MAX,
     "number of shards (default 1)"},
    {"workspace", "DIR", "indexer", NF_FILL_WORKSPACE, 1, 0,
     "the pod's directory; the segment is DIR/shard-<shard>"},
    {"keys", "DIR", NULL, NF_FILL_KEYS, 1, 0,
     "CurveZMQ on every socket with the flow's key directory (own key DIR/pod.key, "
     "a shard's DIR/shard-<shard>.key); absent = plain TCP"},
    {"fingerprint", "HEX", NULL, NF_FILL_FINGERPRINT, 1, 0,
     "the flow's fingerprint (nf_canon), reported in PING/STATUS, HELLO and HEARTBEAT"},
};

/* ------------------------------------------------------------------ */
/* Settings per role                                                    */

static const nf_setting_t s_gateway_settings[] = {
    {"timeout_ms", NF_SET_INT, 1, NF_TIMEOUT_MAX_MS, NULL, "10000",
     "default request timeout when a client gives none (ms)"},
    {"max_inflight", NF_SET_INT, 1, 10000000, NULL, "10000",
     "requests in flight before new ones are refused with UNAVAILABLE"},
};
static const nf_setting_t s_encoder_settings[] = {
    {"dim", NF_SET_INT, 1, NF_DIM_MAX, NULL, "256", "vector dimension produced"},
    {"ngram", NF_SET_INT, 0, 8, NULL, "3", "character n-gram length hashed besides words (0 = words only)"},
};
static const nf_setting_t s_router_settings[] = {
    {"heartbeat_ms", NF_SET_INT, 10, 60000, NULL, "250", "expected shard heartbeat interval (ms)"},
    {"dead_after_ms", NF_SET_INT, 20, NF_TIMEOUT_MAX_MS, NULL, "1000",
     "a shard silent this long is down (ms)"},
};
static const nf_setting_t s_indexer_settings[] = {
    {"dim", NF_SET_INT, 1, NF_DIM_MAX, NULL, NULL, "vector dimension of the segment (required)"},
    {"metric", NF_SET_CHOICE, 0, 0, "l2|ip|cosine", "cosine",
     "l2 = squared distance (smaller is better); ip, cosine (larger is better)"},
    {"vectors", NF_SET_CHOICE, 0, 0, "mmap|memory", "mmap", "memory policy of the vectors"},
    {"payloads", NF_SET_CHOICE, 0, 0, "mmap|memory", "mmap", "memory policy of the payloads"},
    {"warmup", NF_SET_BOOL, 0, 0, NULL, "false", "touch every page of the segment at start"},
    {"threads", NF_SET_INT, 0, 1024, NULL, "0", "scan threads (0 = cores / nshards, at least 1)"},
    {"heartbeat_ms", NF_SET_INT, 10, 60000, NULL, "250", "heartbeat interval to the router (ms)"},
    {"fields", NF_SET_STRING, 0, 0, NULL, "",
     "typed fields NAME:TYPE[:mmap|memory],... (the flow file's fields: mapping)"},
};

/* ------------------------------------------------------------------ */
/* Roles, in launch order                                               */

#define ROLE(u, summary, scale, presence, se) \
    {u, "nflow-" u, summary, scale, presence, se, N_(se)}

static const nf_podspec_t s_specs[] = {
    ROLE("gateway", "front door: request ids, deadlines, exactly one answer per request",
         NF_SCALE_ONE, NF_PRESENCE_TOP, s_gateway_settings),
    ROLE("encoder", "text -> vector (signed feature hashing), checks vector dims",
         NF_SCALE_REPLICAS, NF_PRESENCE_OPTIONAL, s_encoder_settings),
    ROLE("router", "head of the sharded indexer: splits by id hash, fans out searches",
         NF_SCALE_ONE, NF_PRESENCE_IMPLICIT, s_router_settings),
    ROLE("indexer", "one shard: a memory-mapped segment, shared-scan searches",
         NF_SCALE_SHARDS, NF_PRESENCE_REQUIRED, s_indexer_settings),
    {"reducer", "nflow-reducer", "merges shard parts into one result per request",
     NF_SCALE_ONE, NF_PRESENCE_IMPLICIT, NULL, 0},   /* no settings: k comes with the plan */
};

size_t
nf_podspec_count(void)
{
    return N_(s_specs);
}

const nf_podspec_t *
nf_podspec_at(size_t i)
{
    return i < N_(s_specs) ? &s_specs[i] : NULL;
}

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

/* Option names compare with '-' and '_' as one character. */
static bool
s_same_key(const char *a, const char *b)
{
    for (; *a && *b; a++, b++)
        if (*a != *b && !((*a == '-' || *a == '_') && (*b == '-' || *b == '_')))
            return false;
    return *a == *b;
}

const nf_setting_t *
nf_podspec_setting(const nf_podspec_t *spec, const char *name)
{
    if (!spec || !name)
        return NULL;
    for (size_t i = 0; i < spec->nsettings; i++)
        if (s_same_key(spec->settings[i].name, name))
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

size_t
nf_podspec_nsockets(const nf_podspec_t *spec)
{
    size_t n = 0;
    for (size_t i = 0; spec && i < N_(s_sockets); i++)
        n += !s_sockets[i].role || !strcmp(s_sockets[i].role, spec->uses);
    return n;
}

const nf_sockspec_t *
nf_podspec_socket_at(const nf_podspec_t *spec, size_t k)
{
    if (!spec)
        return NULL;
    for (int pass = 0; pass < 2; pass++)     /* the role's rows, then everyone's */
        for (size_t i = 0; i < N_(s_sockets); i++) {
            const nf_sockspec_t *s = &s_sockets[i];
            if (pass == 0 ? !s->role || strcmp(s->role, spec->uses) : s->role != NULL)
                continue;
            if (k-- == 0)
                return s;
        }
    return NULL;
}

const nf_sockspec_t *
nf_podspec_socket(const nf_podspec_t *spec, const char *name)
{
    for (size_t i = 0; name && i < nf_podspec_nsockets(spec); i++)
        if (!strcmp(nf_podspec_socket_at(spec, i)->option, name))
            return nf_podspec_socket_at(spec, i);
    return NULL;
}

const nf_sockspec_t *
nf_podspec_socket_table(size_t *n)
{
    *n = N_(s_sockets);
    return s_sockets;
}

const char *
nf_podspec_type_name(int type)
{
    switch (type) {
    case NF_ZMQ_PULL: return "PULL";
    case NF_ZMQ_PUSH: return "PUSH";
    case NF_ZMQ_ROUTER: return "ROUTER";
    case NF_ZMQ_DEALER: return "DEALER";
    default: return "?";
    }
}

size_t
nf_podspec_noptions(void)
{
    return N_(s_options);
}

const nf_option_t *
nf_podspec_option_at(size_t i)
{
    return i < N_(s_options) ? &s_options[i] : NULL;
}

bool
nf_podspec_option_for(const nf_option_t *opt, const nf_podspec_t *spec)
{
    return opt && spec && s_role_has(opt->roles, spec->uses);
}

const nf_option_t *
nf_podspec_common(const nf_podspec_t *spec, const char *name)
{
    for (size_t i = 0; name && i < N_(s_options); i++)
        if (!strcmp(s_options[i].name, name) && nf_podspec_option_for(&s_options[i], spec))
            return &s_options[i];
    return NULL;
}

int
nf_podspec_option(const nf_podspec_t *spec, const char *name)
{
    if (!spec || !name)
        return NF_PODSPEC_OPT_NONE;
    if (nf_podspec_common(spec, name))
        return NF_PODSPEC_OPT_COMMON;
    if (nf_podspec_socket(spec, name))
        return NF_PODSPEC_OPT_SOCKET;
    if (nf_podspec_setting(spec, name))
        return NF_PODSPEC_OPT_SETTING;
    return NF_PODSPEC_OPT_NONE;
}

char *
nf_podspec_env_name(const char *key, char *out, size_t size)
{
    if (!size)
        return out;
    size_t n = (size_t) snprintf(out, size, "NFLOW_");
    for (const char *p = key; *p && n + 1 < size; p++)
        out[n++] = *p == '-' ? '_' : (char) toupper((unsigned char) *p);
    if (n < size)
        out[n] = '\0';
    out[size - 1] = '\0';
    return out;
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
s_dashed(const char *key, char *out, size_t size)
{
    snprintf(out, size, "%s", key);
    for (char *c = out; *c; c++)
        if (*c == '_')
            *c = '-';
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
    char left[160], key[64];
    s_dashed(s->name, key, sizeof key);
    snprintf(left, sizeof left, "--%s %s", key, arg);
    fprintf(out, "  %-24s %s [%s%s%s%s]\n", left, s->help, range, *range ? "; " : "",
            s->def ? "default " : "required", s->def ? s->def : "");
}

void
nf_podspec_help(const nf_podspec_t *spec, FILE *out)
{
    fprintf(out, "usage: %s [OPTIONS]\n%s: %s\n\n", spec->program, spec->uses, spec->summary);
    fprintf(out, "sockets:\n");
    for (size_t i = 0; i < nf_podspec_nsockets(spec); i++) {
        const nf_sockspec_t *s = nf_podspec_socket_at(spec, i);
        char left[96], type[32];
        snprintf(left, sizeof left, "--%s EP", s->option);
        snprintf(type, sizeof type, "%s %s", nf_podspec_type_name(s->type),
                 s->bind ? "bind" : "connect");
        fprintf(out, "  %-24s %-15s %s\n", left, type, s->help);
    }
    fprintf(out, "\ninstance:\n");
    for (size_t i = 0; i < N_(s_options); i++) {
        if (!nf_podspec_option_for(&s_options[i], spec))
            continue;
        char left[96];
        snprintf(left, sizeof left, "--%s %s", s_options[i].name, s_options[i].arg);
        fprintf(out, "  %-24s %s\n", left, s_options[i].help);
    }
    fprintf(out, "\nsettings (`with:` in a flow file; '-' or '_' alike):\n");
    for (size_t i = 0; i < spec->nsettings; i++)
        s_setting_line(&spec->settings[i], out);
    fprintf(out, "\nEvery option not given may come from the environment as NFLOW_<NAME>\n"
                 "(upper case, '-' as '_', e.g. NFLOW_IN, NFLOW_DIM).  Protocol: proto/README.md.\n");
}
