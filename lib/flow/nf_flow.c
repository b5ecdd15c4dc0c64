/*  nf_flow: loading and validating flow files; the file format is described
    in nf_flow.h.  The launcher (tools/cmd_up.c) expands a flow into processes. */
#include "nf_flow.h"

#include <arpa/inet.h>
#include <errno.h>
#include <ifaddrs.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#include <yaml.h>

#include "nf_error.h"
#include "nf_limits.h"
#include "nf_segment.h"

#define S_DEFAULT_HOST "127.0.0.1"

typedef struct {
    const char *path;
    yaml_document_t *doc;
    nf_flow_t *flow;
} s_ctx_t;

/* ------------------------------------------------------------------ */
/* Small helpers over the YAML document                                */

static int
s_fail(s_ctx_t *cx, const yaml_node_t *node, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int
s_fail(s_ctx_t *cx, const yaml_node_t *node, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (node)
        return nf_error_set(NF_EINVAL, "%s:%zu:%zu: %s", cx->path,
                            node->start_mark.line + 1, node->start_mark.column + 1, msg);
    return nf_error_set(NF_EINVAL, "%s: %s", cx->path, msg);
}

static yaml_node_t *
s_node(s_ctx_t *cx, int index)
{
    return yaml_document_get_node(cx->doc, index);
}

static const char *
s_kind(const yaml_node_t *node)
{
    switch (node->type) {
    case YAML_SCALAR_NODE: return "a scalar";
    case YAML_SEQUENCE_NODE: return "a sequence";
    case YAML_MAPPING_NODE: return "a mapping";
    default: return "nothing";
    }
}

static const char *
s_scalar(const yaml_node_t *node)
{
    return node && node->type == YAML_SCALAR_NODE ? (const char *) node->data.scalar.value : NULL;
}

static bool
s_is_null(const yaml_node_t *node)
{
    const char *v = s_scalar(node);
    if (!v || node->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
        return false;
    return !*v || !strcmp(v, "~") || !strcmp(v, "null") || !strcmp(v, "Null") || !strcmp(v, "NULL");
}

/* A mapping's value for key, or NULL. */
static yaml_node_t *
s_get(s_ctx_t *cx, const yaml_node_t *map, const char *key)
{
    for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top; p++) {
        const char *k = s_scalar(s_node(cx, p->key));
        if (k && !strcmp(k, key))
            return s_node(cx, p->value);
    }
    return NULL;
}

/* Every key of map must be a scalar, listed in allowed (NULL-terminated),
   and not repeated. */
static int
s_check_keys(s_ctx_t *cx, const yaml_node_t *map, const char *const *allowed, const char *where)
{
    for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top; p++) {
        yaml_node_t *kn = s_node(cx, p->key);
        const char *k = s_scalar(kn);
        if (!k)
            return s_fail(cx, kn, "%s: keys must be scalars, got %s", where, s_kind(kn));
        for (yaml_node_pair_t *q = map->data.mapping.pairs.start; q < p; q++) {
            const char *k2 = s_scalar(s_node(cx, q->key));
            if (k2 && !strcmp(k, k2))
                return s_fail(cx, kn, "%s: duplicate key '%s'", where, k);
        }
        if (!allowed)
            continue;
        bool ok = false;
        char list[256] = "";
        for (size_t i = 0; allowed[i]; i++) {
            if (!strcmp(allowed[i], k))
                ok = true;
            size_t l = strlen(list);
            snprintf(list + l, sizeof list - l, "%s%s", i ? ", " : "", allowed[i]);
        }
        if (!ok)
            return s_fail(cx, kn, "%s: unknown key '%s' (expected one of: %s)", where, k, list);
    }
    return 0;
}

static int
s_want(s_ctx_t *cx, const yaml_node_t *node, yaml_node_type_t type, const char *what)
{
    if (node->type == type)
        return 0;
    const char *want = type == YAML_MAPPING_NODE ? "a mapping"
                     : type == YAML_SEQUENCE_NODE ? "a sequence" : "a scalar";
    return s_fail(cx, node, "%s: expected %s, got %s", what, want, s_kind(node));
}

static int
s_get_string(s_ctx_t *cx, const yaml_node_t *node, const char *what, char **out)
{
    if (node->type != YAML_SCALAR_NODE || s_is_null(node))
        return s_fail(cx, node, "%s: expected a string, got %s", what,
                      s_is_null(node) ? "nothing" : s_kind(node));
    free(*out);
    *out = strdup(s_scalar(node));
    return *out ? 0 : nf_error_set(NF_ENOMEM, "out of memory");
}

static int
s_get_uint(s_ctx_t *cx, const yaml_node_t *node, const char *what, unsigned long min,
           unsigned long max, unsigned *out)
{
    const char *v = s_scalar(node);
    if (!v || node->data.scalar.style != YAML_PLAIN_SCALAR_STYLE || !*v)
        return s_fail(cx, node, "%s: expected an integer, got %s", what,
                      v ? (*v ? "a quoted string" : "nothing") : s_kind(node));
    for (const char *c = v; *c; c++)
        if (*c < '0' || *c > '9')
            return s_fail(cx, node, "%s: expected an integer, got '%s'", what, v);
    errno = 0;
    unsigned long x = strtoul(v, NULL, 10);
    if (errno || x < min || x > max)
        return s_fail(cx, node, "%s: expected an integer in %lu..%lu, got %s", what, min, max, v);
    *out = (unsigned) x;
    return 0;
}

static bool
s_valid_name(const char *s)
{
    if (!*s || !strcmp(s, ".") || !strcmp(s, "..") || strlen(s) > 64)
        return false;
    for (const char *c = s; *c; c++)
        if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9')
              || *c == '_' || *c == '-' || *c == '.'))
            return false;
    return true;
}

/* ------------------------------------------------------------------ */
/* Pods                                                                */

static void
s_pod_clear(nf_flow_pod_t *pod)
{
    free(pod->name);
    free(pod->uses);
    free(pod->role);
    for (unsigned i = 0; pod->hosts && i < pod->count; i++)
        free(pod->hosts[i]);
    free(pod->hosts);
    for (size_t i = 0; i < pod->nwith; i++) {
        free(pod->with[i].key);
        free(pod->with[i].value);
    }
    free(pod->with);
    for (size_t i = 0; i < pod->ncommand; i++)
        free(pod->command[i]);
    free(pod->command);
    free(pod->workdir);
    for (size_t i = 0; i < pod->nenv; i++) {
        free(pod->env[i].key);
        free(pod->env[i].value);
    }
    free(pod->env);
    memset(pod, 0, sizeof *pod);
}

/* Options the launcher sets itself (every socket and instance option of
   the tables in nf_podspec, and help): not allowed as exec `with:` keys. */
static bool
s_reserved(const char *key)
{
    size_t n;
    const nf_sockspec_t *socks = nf_podspec_socket_table(&n);
    for (size_t i = 0; i < n; i++)
        if (!strcmp(socks[i].option, key))
            return true;
    for (size_t i = 0; i < nf_podspec_noptions(); i++)
        if (!strcmp(nf_podspec_option_at(i)->name, key))
            return true;
    return !strcmp(key, "help");
}

/* An indexer's with.fields: a mapping NAME: TYPE[:mmap|memory], a sequence
   of "NAME:TYPE[:policy]", or a scalar "NAME:TYPE,...".  Each field is
   checked (nf_field_def_parse) where it is written; *out gets the
   canonical list "name:type[:memory],..." in the order written (the
   indexer's --fields, and the flow's canonical text). */
static int
s_parse_fields(s_ctx_t *cx, const char *where, const yaml_node_t *vn, char **out)
{
    nf_field_def_t defs[NF_FIELDS_MAX];
    size_t n = 0;
    if (vn->type == YAML_SCALAR_NODE) {
        if (nf_field_defs_parse(s_scalar(vn), defs, NF_FIELDS_MAX, &n) != NF_OK)
            return s_fail(cx, vn, "%s.fields: %s", where, nf_error_msg());
    } else if (vn->type == YAML_MAPPING_NODE || vn->type == YAML_SEQUENCE_NODE) {
        bool map = vn->type == YAML_MAPPING_NODE;
        if (map && s_check_keys(cx, vn, NULL, where))
            return NF_EINVAL;
        size_t cnt = map ? (size_t) (vn->data.mapping.pairs.top - vn->data.mapping.pairs.start)
                         : (size_t) (vn->data.sequence.items.top - vn->data.sequence.items.start);
        for (size_t i = 0; i < cnt; i++) {
            const yaml_node_t *item = map ? s_node(cx, vn->data.mapping.pairs.start[i].value)
                                          : s_node(cx, vn->data.sequence.items.start[i]);
            const yaml_node_t *kn = map ? s_node(cx, vn->data.mapping.pairs.start[i].key) : NULL;
            if (!item || item->type != YAML_SCALAR_NODE)
                return s_fail(cx, item ? item : vn, "%s.fields: expected %s, got %s", where,
                              map ? "a type (int, float, bool, keyword, \"keyword[]\", datetime)"
                                  : "NAME:TYPE", item ? s_kind(item) : "nothing");
            if (n == NF_FIELDS_MAX)
                return s_fail(cx, item, "%s.fields: more than %d fields", where, NF_FIELDS_MAX);
            char spec[256];
            snprintf(spec, sizeof spec, "%s%s%s", map ? s_scalar(kn) : "", map ? ":" : "",
                     s_scalar(item));
            if (nf_field_def_parse(spec, &defs[n]) != NF_OK)
                return s_fail(cx, map && !strchr(spec, ':') ? kn : item, "%s.fields: %s", where,
                              nf_error_msg());
            for (size_t j = 0; j < n; j++)
                if (!strcmp(defs[j].name, defs[n].name))
                    return s_fail(cx, map ? kn : item, "%s.fields: field '%s' is declared twice",
                                  where, defs[n].name);
            n++;
        }
    } else {
        return s_fail(cx, vn, "%s.fields: expected a mapping NAME: TYPE, got %s", where,
                      s_kind(vn));
    }
    size_t cap = n * (NF_FIELD_NAME_MAX + 20) + 1, at = 0;
    if (!(*out = malloc(cap)))
        return nf_error_set(NF_ENOMEM, "out of memory");
    (*out)[0] = '\0';
    for (size_t i = 0; i < n; i++)
        at += (size_t) snprintf(*out + at, cap - at, "%s%s:%s%s", i ? "," : "", defs[i].name,
                                nf_field_type_name(defs[i].type),
                                defs[i].policy == NF_MEM_MEMORY ? ":memory" : "");
    return NF_OK;
}

static int
s_parse_with(s_ctx_t *cx, nf_flow_pod_t *pod, const yaml_node_t *map)
{
    char where[128];
    snprintf(where, sizeof where, "pod '%s': with", pod->name);
    int rc = s_want(cx, map, YAML_MAPPING_NODE, where);
    if (rc == 0)
        rc = s_check_keys(cx, map, NULL, where);
    if (rc)
        return rc;
    size_t n = (size_t) (map->data.mapping.pairs.top - map->data.mapping.pairs.start);
    pod->with = calloc(n ? n : 1, sizeof *pod->with);
    if (!pod->with)
        return nf_error_set(NF_ENOMEM, "out of memory");
    bool exec = !strcmp(pod->uses, "exec");
    for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top; p++) {
        yaml_node_t *kn = s_node(cx, p->key), *vn = s_node(cx, p->value);
        const char *key = s_scalar(kn);
        const nf_setting_t *set = nf_podspec_setting(pod->spec, key);
        char *fields = NULL;
        if (set && !strcmp(set->name, "fields") && !strcmp(pod->role, "indexer")) {
            if ((rc = s_parse_fields(cx, where, vn, &fields)) != 0)
                return rc;
        } else if (vn->type != YAML_SCALAR_NODE)
            return s_fail(cx, vn, "%s.%s: expected a scalar value, got %s", where, key, s_kind(vn));
        const char *value = fields ? fields : s_scalar(vn);
        if (fields) {
            ;
        } else if (set) {
            if (nf_setting_check(set, value) != 0)
                return s_fail(cx, vn, "%s.%s: %s", where, key, nf_error_msg());
        } else if (!exec) {
            char list[256] = "";
            for (size_t i = 0; i < pod->spec->nsettings; i++) {
                size_t l = strlen(list);
                snprintf(list + l, sizeof list - l, "%s%s", i ? ", " : "", pod->spec->settings[i].name);
            }
            return s_fail(cx, kn, "%s: unknown setting '%s' (%s settings: %s)",
                          where, key, pod->role, list);
        } else {
            if (s_reserved(key))
                return s_fail(cx, kn, "%s: '%s' is set by the launcher", where, key);
            if (!s_valid_name(key))
                return s_fail(cx, kn, "%s: bad setting name '%s'", where, key);
        }
        nf_flow_with_t *w = &pod->with[pod->nwith++];
        w->key = strdup(set ? set->name : key);     /* timeout-ms is timeout_ms */
        w->value = strdup(value);
        free(fields);
        w->line = (int) vn->start_mark.line + 1;
        w->col = (int) vn->start_mark.column + 1;
        if (!w->key || !w->value)
            return nf_error_set(NF_ENOMEM, "out of memory");
    }
    return 0;
}

static int
s_parse_strings(s_ctx_t *cx, const yaml_node_t *seq, const char *what, char ***out, size_t *n)
{
    int rc = s_want(cx, seq, YAML_SEQUENCE_NODE, what);
    if (rc)
        return rc;
    size_t cnt = (size_t) (seq->data.sequence.items.top - seq->data.sequence.items.start);
    if (cnt == 0)
        return s_fail(cx, seq, "%s: must not be empty", what);
    *out = calloc(cnt + 1, sizeof **out);
    if (!*out)
        return nf_error_set(NF_ENOMEM, "out of memory");
    for (size_t i = 0; i < cnt; i++) {
        yaml_node_t *item = s_node(cx, seq->data.sequence.items.start[i]);
        *n = i;
        if ((rc = s_get_string(cx, item, what, &(*out)[i])) != 0)
            return rc;
    }
    *n = cnt;
    return 0;
}

static int
s_parse_exec(s_ctx_t *cx, nf_flow_pod_t *pod, const yaml_node_t *map)
{
    char what[128];
    int rc;
    yaml_node_t *n = s_get(cx, map, "command");
    if (!n)
        return s_fail(cx, map, "pod '%s': uses: exec needs command: [PROGRAM, ARGS...]", pod->name);
    snprintf(what, sizeof what, "pod '%s': command", pod->name);
    if ((rc = s_parse_strings(cx, n, what, &pod->command, &pod->ncommand)) != 0)
        return rc;
    if ((n = s_get(cx, map, "workdir")) != NULL) {
        snprintf(what, sizeof what, "pod '%s': workdir", pod->name);
        if ((rc = s_get_string(cx, n, what, &pod->workdir)) != 0)
            return rc;
    }
    if ((n = s_get(cx, map, "env")) != NULL) {
        snprintf(what, sizeof what, "pod '%s': env", pod->name);
        if ((rc = s_want(cx, n, YAML_MAPPING_NODE, what)) || (rc = s_check_keys(cx, n, NULL, what)))
            return rc;
        size_t cnt = (size_t) (n->data.mapping.pairs.top - n->data.mapping.pairs.start);
        pod->env = calloc(cnt ? cnt : 1, sizeof *pod->env);
        if (!pod->env)
            return nf_error_set(NF_ENOMEM, "out of memory");
        for (size_t i = 0; i < cnt; i++) {
            yaml_node_pair_t *p = &n->data.mapping.pairs.start[i];
            nf_flow_env_t *e = &pod->env[pod->nenv++];
            if ((rc = s_get_string(cx, s_node(cx, p->key), what, &e->key))
                || (rc = s_get_string(cx, s_node(cx, p->value), what, &e->value)))
                return rc;
            if (!s_valid_name(e->key) || strchr(e->key, '.') || strchr(e->key, '-'))
                return s_fail(cx, s_node(cx, p->key), "%s: bad variable name '%s'", what, e->key);
        }
    }
    return 0;
}

/* The roles a `pods:` item may use, "encoder, router, indexer, reducer"
   (nf_podspec's role table without the top-level ones). */
static const char *
s_pod_roles(char *buf, size_t size)
{
    size_t n = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < nf_podspec_count() && n < size; i++)
        if (nf_podspec_at(i)->presence != NF_PRESENCE_TOP)
            n += (size_t) snprintf(buf + n, size - n, "%s%s", n ? ", " : "", nf_podspec_at(i)->uses);
    return buf;
}

/* True when role is configured by a top-level key (gateway:). */
static bool
s_top_role(const char *role)
{
    const nf_podspec_t *spec = nf_podspec_find(role);
    return spec && spec->presence == NF_PRESENCE_TOP;
}

/* Fill pod from a mapping node (a `pods:` item, or the top-level key of
   a role such as `gateway:` when role is given). */
static int
s_parse_pod(s_ctx_t *cx, nf_flow_pod_t *pod, const yaml_node_t *map, const char *role)
{
    char what[160], roles[128];
    int rc;
    yaml_node_t *n;
    pod->line = (int) map->start_mark.line + 1;
    pod->col = (int) map->start_mark.column + 1;
    if (role) {
        pod->name = strdup(role);
        pod->uses = strdup(role);
    } else {
        if ((rc = s_want(cx, map, YAML_MAPPING_NODE, "pods: item")) != 0)
            return rc;
        if (!(n = s_get(cx, map, "name")))
            return s_fail(cx, map, "pods: item without name:");
        if ((rc = s_get_string(cx, n, "name", &pod->name)) != 0)
            return rc;
        if (!s_valid_name(pod->name))
            return s_fail(cx, n, "name: '%s' is not a valid pod name (letters, digits, '_', '-', '.')",
                          pod->name);
        snprintf(what, sizeof what, "pod '%s': uses", pod->name);
        if (!(n = s_get(cx, map, "uses")))
            return s_fail(cx, map, "pod '%s': missing uses: (%s or exec)", pod->name,
                          s_pod_roles(roles, sizeof roles));
        if ((rc = s_get_string(cx, n, what, &pod->uses)) != 0)
            return rc;
        if (s_top_role(pod->uses))
            return s_fail(cx, n, "pod '%s': the %s is configured under the top-level %s: key",
                          pod->name, pod->uses, pod->uses);
        if (strcmp(pod->uses, "exec") && !nf_podspec_find(pod->uses))
            return s_fail(cx, n, "pod '%s': unknown uses '%s' (expected %s or exec)", pod->name,
                          pod->uses, s_pod_roles(roles, sizeof roles));
    }
    if (!pod->name || !pod->uses)
        return nf_error_set(NF_ENOMEM, "out of memory");
    bool exec = !strcmp(pod->uses, "exec");
    pod->role = strdup(exec ? "encoder" : pod->uses);
    if (!pod->role)
        return nf_error_set(NF_ENOMEM, "out of memory");
    if (exec && (n = s_get(cx, map, "role")) != NULL) {
        snprintf(what, sizeof what, "pod '%s': role", pod->name);
        if ((rc = s_get_string(cx, n, what, &pod->role)) != 0)
            return rc;
        if (s_top_role(pod->role) || !nf_podspec_find(pod->role))
            return s_fail(cx, n, "pod '%s': role '%s' is not one of %s", pod->name, pod->role,
                          s_pod_roles(roles, sizeof roles));
    }
    pod->spec = nf_podspec_find(pod->role);
    if (!pod->spec)
        return s_fail(cx, map, "pod '%s': no built-in table for role '%s'", pod->name, pod->role);

    /* which keys this pod may have */
    const char *allowed[16];
    size_t na = 0;
    if (!role) {
        allowed[na++] = "name";
        allowed[na++] = "uses";
    }
    allowed[na++] = "host";
    allowed[na++] = "port";
    allowed[na++] = "with";
    bool encoder = pod->spec->scale == NF_SCALE_REPLICAS;  /* replicas: R */
    bool indexer = pod->spec->scale == NF_SCALE_SHARDS;    /* shards: S, hosts: */
    if (encoder)
        allowed[na++] = "replicas";
    if (indexer) {
        allowed[na++] = "shards";
        allowed[na++] = "hosts";
    }
    if (exec) {
        allowed[na++] = "role";
        allowed[na++] = "command";
        allowed[na++] = "workdir";
        allowed[na++] = "env";
    }
    allowed[na] = NULL;
    snprintf(what, sizeof what, role ? "%s" : "pod '%s'", pod->name);
    if ((rc = s_check_keys(cx, map, allowed, what)) != 0)
        return rc;

    pod->count = 1;
    if (encoder && (n = s_get(cx, map, "replicas")) != NULL) {
        snprintf(what, sizeof what, "pod '%s': replicas", pod->name);
        if ((rc = s_get_uint(cx, n, what, 1, NF_FLOW_MAX_REPLICAS, &pod->count)) != 0)
            return rc;
    }
    yaml_node_t *shards = indexer ? s_get(cx, map, "shards") : NULL;
    if (shards) {
        snprintf(what, sizeof what, "pod '%s': shards", pod->name);
        if ((rc = s_get_uint(cx, shards, what, 1, NF_FLOW_MAX_SHARDS, &pod->count)) != 0)
            return rc;
    }
    yaml_node_t *host = s_get(cx, map, "host"), *hosts = indexer ? s_get(cx, map, "hosts") : NULL;
    if (host && hosts)
        return s_fail(cx, hosts, "pod '%s': give either host: or hosts:, not both", pod->name);
    if (hosts) {
        char **list = NULL;
        size_t cnt = 0;
        snprintf(what, sizeof what, "pod '%s': hosts", pod->name);
        rc = s_parse_strings(cx, hosts, what, &list, &cnt);
        if (rc == 0 && shards && cnt != pod->count)
            rc = s_fail(cx, hosts, "pod '%s': hosts: lists %zu hosts for %u shards", pod->name, cnt,
                        pod->count);
        if (rc == 0 && cnt > NF_FLOW_MAX_SHARDS)
            rc = s_fail(cx, hosts, "pod '%s': more than %d hosts", pod->name, NF_FLOW_MAX_SHARDS);
        if (rc) {
            for (size_t i = 0; list && i <= cnt; i++)
                free(list[i]);
            free(list);
            return rc;
        }
        pod->count = (unsigned) cnt;
        pod->hosts = list;
    } else {
        char *h = NULL;
        snprintf(what, sizeof what, "pod '%s': host", pod->name);
        if (host && (rc = s_get_string(cx, host, what, &h)) != 0)
            return rc;
        pod->hosts = calloc(pod->count, sizeof *pod->hosts);
        if (!pod->hosts) {
            free(h);
            return nf_error_set(NF_ENOMEM, "out of memory");
        }
        for (unsigned i = 0; i < pod->count; i++)
            if (!(pod->hosts[i] = strdup(h ? h : S_DEFAULT_HOST))) {
                free(h);
                return nf_error_set(NF_ENOMEM, "out of memory");
            }
        free(h);
    }
    for (unsigned i = 0; i < pod->count; i++)
        if (!*pod->hosts[i] || strpbrk(pod->hosts[i], " /:[]"))
            return s_fail(cx, hosts ? hosts : host, "pod '%s': bad host '%s'", pod->name,
                          pod->hosts[i]);
    if ((n = s_get(cx, map, "port")) != NULL) {
        snprintf(what, sizeof what, "pod '%s': port", pod->name);
        if ((rc = s_get_uint(cx, n, what, 0, 65535, &pod->port)) != 0)
            return rc;
    }
    if ((n = s_get(cx, map, "with")) != NULL && !s_is_null(n) && (rc = s_parse_with(cx, pod, n)) != 0)
        return rc;
    if (exec && (rc = s_parse_exec(cx, pod, map)) != 0)
        return rc;
    /* required settings */
    for (size_t i = 0; i < pod->spec->nsettings; i++) {
        const nf_setting_t *s = &pod->spec->settings[i];
        if (!s->def && !nf_flow_setting(pod, s->name))
            return s_fail(cx, map, "pod '%s': with.%s is required (%s)", pod->name, s->name,
                          s->help ? s->help : "no default");
    }
    return 0;
}

/* ------------------------------------------------------------------ */
/* The whole flow                                                      */

/* The launch-order index of role in nf_podspec's role table, or -1. */
static int
s_role_index(const char *role)
{
    for (size_t i = 0; i < nf_podspec_count(); i++)
        if (!strcmp(nf_podspec_at(i)->uses, role))
            return (int) i;
    return -1;
}

/* localhost, 127.0.0.0/8 or ::1, by spelling alone (the same answer on
   every host, unlike nf_flow_host_is_local). */
static bool
s_loopback(const char *host)
{
    struct in_addr a4;
    return !strcasecmp(host, "localhost") || !strcmp(host, "::1")
           || (inet_pton(AF_INET, host, &a4) == 1 && (ntohl(a4.s_addr) >> 24) == 127);
}

/* security: none | {keys: DIR}; absent = CURVE with keys/<name> when the
   flow runs on several hosts that are not all loopback addresses, plain
   otherwise. */
static int
s_parse_security(s_ctx_t *cx, yaml_node_t *root)
{
    nf_flow_t *flow = cx->flow;
    yaml_node_t *n = s_get(cx, root, "security");
    int rc;
    if (!n || s_is_null(n)) {
        bool loopback = true;
        for (size_t i = 0; i < flow->npods; i++)
            for (unsigned j = 0; j < flow->pods[i].count; j++)
                loopback &= s_loopback(flow->pods[i].hosts[j]);
        flow->curve = flow->multihost && !loopback;
        if (flow->curve && asprintf(&flow->keys, "keys/%s", flow->name) < 0) {
            flow->keys = NULL;
            return nf_error_set(NF_ENOMEM, "out of memory");
        }
        return 0;
    }
    if (n->type == YAML_SCALAR_NODE) {
        char *v = NULL;
        if ((rc = s_get_string(cx, n, "security", &v)) != 0)
            return rc;
        bool none = !strcmp(v, "none");
        free(v);
        if (!none)
            return s_fail(cx, n, "security: expected none or a mapping {keys: DIR}");
        flow->insecure = true;
        return 0;
    }
    static const char *keys[] = {"keys", NULL};
    if ((rc = s_want(cx, n, YAML_MAPPING_NODE, "security")) || (rc = s_check_keys(cx, n, keys, "security")))
        return rc;
    yaml_node_t *k = s_get(cx, n, "keys");
    if (!k)
        return s_fail(cx, n, "security: missing keys: DIR (the directory `nflow keys` fills)");
    if ((rc = s_get_string(cx, k, "security.keys", &flow->keys)) != 0)
        return rc;
    if (!*flow->keys)
        return s_fail(cx, k, "security.keys: empty directory name");
    flow->curve = true;
    return 0;
}

static int
s_parse_flow(s_ctx_t *cx, yaml_node_t *root)
{
    nf_flow_t *flow = cx->flow;
    /* top-level keys: these, and one per role the file configures at the
       top (gateway:) */
    const char *top[8 + 8] = {"version", "name", "workspace", "pods", "security"};
    size_t ntop = 5;
    for (size_t i = 0; i < nf_podspec_count() && ntop + 1 < sizeof top / sizeof top[0]; i++)
        if (nf_podspec_at(i)->presence == NF_PRESENCE_TOP)
            top[ntop++] = nf_podspec_at(i)->uses;
    top[ntop] = NULL;
    int rc;
    yaml_node_t *n;
    if ((rc = s_want(cx, root, YAML_MAPPING_NODE, "flow file")) || (rc = s_check_keys(cx, root, top, "flow")))
        return rc;
    unsigned version = 0;
    if (!(n = s_get(cx, root, "version")))
        return s_fail(cx, root, "missing version: (this program reads version: %d)", NF_FLOW_VERSION);
    if ((rc = s_get_uint(cx, n, "version", 0, 1000000, &version)) != 0)
        return rc;
    if (version != NF_FLOW_VERSION)
        return s_fail(cx, n, "version: %u is not supported (this program reads version: %d)", version,
                      NF_FLOW_VERSION);
    if (!(n = s_get(cx, root, "name")))
        return s_fail(cx, root, "missing name:");
    if ((rc = s_get_string(cx, n, "name", &flow->name)) != 0)
        return rc;
    if (!s_valid_name(flow->name))
        return s_fail(cx, n, "name: '%s' is not a valid flow name (letters, digits, '_', '-', '.')",
                      flow->name);
    if ((n = s_get(cx, root, "workspace")) != NULL) {
        if ((rc = s_get_string(cx, n, "workspace", &flow->workspace)) != 0)
            return rc;
    } else if (asprintf(&flow->workspace, "workspace/%s", flow->name) < 0) {
        flow->workspace = NULL;
        return nf_error_set(NF_ENOMEM, "out of memory");
    }

    /* one slot per role of nf_podspec, in launch order */
    size_t nroles = nf_podspec_count();
    nf_flow_pod_t *slots = calloc(nroles, sizeof *slots);
    flow->pods = calloc(nroles, sizeof *flow->pods);
    if (!slots || !flow->pods) {
        free(slots);
        return nf_error_set(NF_ENOMEM, "out of memory");
    }
    static const yaml_node_t s_empty = {.type = YAML_MAPPING_NODE};
    size_t top_role = nroles;   /* the role configured by a top-level key (gateway:) */
    for (size_t r = 0; r < nroles; r++) {
        const nf_podspec_t *spec = nf_podspec_at(r);
        if (spec->presence != NF_PRESENCE_TOP)
            continue;
        top_role = top_role < nroles ? top_role : r;
        yaml_node_t *node = s_get(cx, root, spec->uses);
        bool given = node && !s_is_null(node);
        if (given && (rc = s_want(cx, node, YAML_MAPPING_NODE, spec->uses)) != 0)
            goto fail;
        rc = s_parse_pod(cx, &slots[r], given ? node : &s_empty, spec->uses);
        if (!given)
            slots[r].line = slots[r].col = 0;
        if (rc)
            goto fail;
    }

    yaml_node_t *pods = s_get(cx, root, "pods");
    if (!pods) {
        rc = s_fail(cx, root, "missing pods: (at least an indexer)");
        goto fail;
    }
    if ((rc = s_want(cx, pods, YAML_SEQUENCE_NODE, "pods")) != 0)
        goto fail;
    for (yaml_node_item_t *it = pods->data.sequence.items.start; it < pods->data.sequence.items.top; it++) {
        yaml_node_t *item = s_node(cx, *it);
        nf_flow_pod_t pod;
        memset(&pod, 0, sizeof pod);
        if ((rc = s_parse_pod(cx, &pod, item, NULL)) != 0) {
            s_pod_clear(&pod);
            goto fail;
        }
        int r = s_role_index(pod.role);
        for (size_t i = 0; i < nroles; i++)
            if (slots[i].name && !strcmp(slots[i].name, pod.name)) {
                rc = s_fail(cx, item, "duplicate pod name '%s'%s", pod.name,
                            nf_podspec_at(i)->presence == NF_PRESENCE_TOP
                                ? " (the gateway is always called gateway)" : "");
                s_pod_clear(&pod);
                goto fail;
            }
        if (slots[r].name) {
            rc = s_fail(cx, item, "pod '%s': a flow has one %s pod; '%s' (line %d) is one already",
                        pod.name, pod.role, slots[r].name, slots[r].line);
            s_pod_clear(&pod);
            goto fail;
        }
        slots[r] = pod;
    }
    for (size_t r = 0; r < nroles; r++) {
        const char *role = nf_podspec_at(r)->uses;
        if (nf_podspec_at(r)->presence == NF_PRESENCE_REQUIRED && !slots[r].name) {
            rc = s_fail(cx, pods, "pods: the flow has no %s (uses: %s)", role, role);
            goto fail;
        }
        if (nf_podspec_at(r)->presence != NF_PRESENCE_IMPLICIT || slots[r].name)
            continue;
        /* implicit router and reducer, on the gateway's host */
        for (size_t i = 0; i < nroles; i++)
            if (slots[i].name && !strcmp(slots[i].name, role)) {
                rc = s_fail(cx, pods, "pod '%s' takes the name of the implicit %s; rename it or "
                            "list the %s under pods:", role, role, role);
                goto fail;
            }
        if ((rc = s_parse_pod(cx, &slots[r], &s_empty, role)) != 0)
            goto fail;
        slots[r].line = slots[r].col = 0;
        if (top_role < nroles) {
            free(slots[r].hosts[0]);
            if (!(slots[r].hosts[0] = strdup(slots[top_role].hosts[0]))) {
                rc = nf_error_set(NF_ENOMEM, "out of memory");
                goto fail;
            }
        }
    }
    for (size_t i = 0; i < nroles; i++)
        if (slots[i].name)
            flow->pods[flow->npods++] = slots[i];
    free(slots);
    slots = NULL;

    /* dims must agree */
    const nf_flow_pod_t *enc = nf_flow_role(flow, "encoder"), *idx = nf_flow_role(flow, "indexer");
    const char *edim = enc ? nf_flow_setting(enc, "dim") : NULL;
    const char *idim = nf_flow_setting(idx, "dim");
    if (edim && idim && strtol(edim, NULL, 10) != strtol(idim, NULL, 10)) {
        const nf_flow_with_t *w = NULL;
        for (size_t i = 0; i < idx->nwith; i++)
            if (!strcmp(idx->with[i].key, "dim"))
                w = &idx->with[i];
        return nf_error_set(NF_EINVAL, "%s:%d:%d: pod '%s': with.dim %s disagrees with encoder "
                            "'%s' dim %s (line %d)", cx->path, w ? w->line : idx->line,
                            w ? w->col : idx->col, idx->name, idim, enc->name, edim, enc->line);
    }
    /* several hosts: every port explicit */
    const char *first = flow->pods[0].hosts[0];
    for (size_t i = 0; i < flow->npods; i++)
        for (unsigned j = 0; j < flow->pods[i].count; j++)
            if (strcmp(flow->pods[i].hosts[j], first))
                flow->multihost = true;
    for (size_t i = 0; flow->multihost && i < flow->npods; i++) {
        const nf_flow_pod_t *p = &flow->pods[i];
        if (p->port == 0)
            return nf_error_set(NF_EINVAL, "%s:%d:%d: pod '%s' needs an explicit port: the flow runs "
                                "on several hosts%s", cx->path, p->line ? p->line : 1,
                                p->line ? p->col : 1, p->name,
                                p->line ? "" : " (it is implicit: list it under pods: with a port)");
    }
    if ((rc = s_parse_security(cx, root)) != 0)
        return rc;
    for (size_t i = 0; i < flow->npods; i++) {
        const nf_flow_pod_t *p = &flow->pods[i];
        unsigned need = p->count * (unsigned) nf_flow_nbinds(p->spec);
        if (p->port && p->port + need - 1 > 65535)
            return nf_error_set(NF_EINVAL, "%s:%d:%d: pod '%s': ports %u..%u exceed 65535", cx->path,
                                p->line, p->col, p->name, p->port, p->port + need - 1);
    }
    return 0;
fail:
    for (size_t i = 0; slots && i < nroles; i++)
        s_pod_clear(&slots[i]);
    free(slots);
    return rc;
}

/* Refuse nesting deeper than NF_YAML_DEPTH_MAX while parsing, event by
   event, before yaml_parser_load builds the document: libyaml's cost grows
   with the square of the depth (a 200 KB file nested 100,000 levels took
   over 20 s to refuse).  Syntax errors are left to the load that follows,
   which reports them. */
static int
s_check_depth(const char *path, FILE *file, const char *string)
{
    yaml_parser_t parser;
    if (!yaml_parser_initialize(&parser))
        return nf_error_set(NF_ENOMEM, "out of memory");
    if (file)
        yaml_parser_set_input_file(&parser, file);
    else
        yaml_parser_set_input_string(&parser, (const unsigned char *) string, strlen(string));
    int rc = 0, depth = 0;
    for (;;) {
        yaml_event_t ev;
        if (!yaml_parser_parse(&parser, &ev))
            break;
        yaml_event_type_t type = ev.type;
        if (type == YAML_SEQUENCE_START_EVENT || type == YAML_MAPPING_START_EVENT) {
            if (++depth > NF_YAML_DEPTH_MAX)
                rc = nf_error_set(NF_EPARSE, "%s:%zu:%zu: nested more than %d levels deep "
                                  "(NF_YAML_DEPTH_MAX)", path, ev.start_mark.line + 1,
                                  ev.start_mark.column + 1, NF_YAML_DEPTH_MAX);
        } else if (type == YAML_SEQUENCE_END_EVENT || type == YAML_MAPPING_END_EVENT) {
            depth--;
        }
        yaml_event_delete(&ev);
        if (rc || type == YAML_STREAM_END_EVENT)
            break;
    }
    yaml_parser_delete(&parser);
    if (file && fseek(file, 0, SEEK_SET) != 0 && rc == 0)
        rc = nf_error_set(NF_EIO, "%s: cannot read the flow file again: %s", path,
                          strerror(errno));
    return rc;
}

static int
s_load(const char *path, FILE *file, const char *string, nf_flow_t **out)
{
    yaml_parser_t parser;
    yaml_document_t doc;
    bool have_doc = false;
    *out = NULL;
    int rc = s_check_depth(path, file, string);
    if (rc)
        return rc;
    nf_flow_t *flow = calloc(1, sizeof *flow);
    if (!flow || !(flow->path = strdup(path)) || !yaml_parser_initialize(&parser)) {
        if (flow)
            free(flow->path);
        free(flow);
        return nf_error_set(NF_ENOMEM, "out of memory");
    }
    if (file)
        yaml_parser_set_input_file(&parser, file);
    else
        yaml_parser_set_input_string(&parser, (const unsigned char *) string, strlen(string));
    s_ctx_t cx = {.path = path, .doc = &doc, .flow = flow};
    if (!yaml_parser_load(&parser, &doc)) {
        rc = nf_error_set(NF_EPARSE, "%s:%zu:%zu: bad YAML: %s%s%s", path,
                          parser.problem_mark.line + 1, parser.problem_mark.column + 1,
                          parser.problem ? parser.problem : "syntax error",
                          parser.context ? " " : "", parser.context ? parser.context : "");
        goto done;
    }
    have_doc = true;
    yaml_node_t *root = yaml_document_get_root_node(&doc);
    if (!root || s_is_null(root)) {
        rc = nf_error_set(NF_EINVAL, "%s: the flow file is empty", path);
        goto done;
    }
    if ((rc = s_parse_flow(&cx, root)) != 0)
        goto done;
    yaml_document_t extra;
    if (!yaml_parser_load(&parser, &extra)) {
        rc = nf_error_set(NF_EPARSE, "%s:%zu:%zu: bad YAML after the first document: %s", path,
                          parser.problem_mark.line + 1, parser.problem_mark.column + 1,
                          parser.problem ? parser.problem : "syntax error");
        goto done;
    }
    yaml_node_t *more = yaml_document_get_root_node(&extra);
    if (more)
        rc = nf_error_set(NF_EINVAL, "%s:%zu: a flow file holds one YAML document", path,
                          more->start_mark.line + 1);
    yaml_document_delete(&extra);
done:
    if (have_doc)
        yaml_document_delete(&doc);
    yaml_parser_delete(&parser);
    if (rc)
        nf_flow_destroy(&flow);
    *out = flow;
    return rc;
}

int
nf_flow_load(const char *path, nf_flow_t **out)
{
    *out = NULL;
    FILE *f = fopen(path, "rb");
    if (!f)
        return nf_error_set(errno == ENOENT ? NF_ENOTFOUND : NF_EIO, "%s: cannot open flow file: %s",
                            path, strerror(errno));
    int rc = s_load(path, f, NULL, out);
    fclose(f);
    return rc;
}

int
nf_flow_load_string(const char *name, const char *yaml, nf_flow_t **out)
{
    return s_load(name, NULL, yaml, out);
}

void
nf_flow_destroy(nf_flow_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    nf_flow_t *self = *self_p;
    for (size_t i = 0; i < self->npods; i++)
        s_pod_clear(&self->pods[i]);
    free(self->pods);
    free(self->path);
    free(self->name);
    free(self->workspace);
    free(self->keys);
    free(self);
    *self_p = NULL;
}

const nf_flow_pod_t *
nf_flow_role(const nf_flow_t *flow, const char *role)
{
    for (size_t i = 0; i < flow->npods; i++)
        if (!strcmp(flow->pods[i].role, role))
            return &flow->pods[i];
    return NULL;
}

const char *
nf_flow_setting(const nf_flow_pod_t *pod, const char *key)
{
    for (size_t i = 0; i < pod->nwith; i++)
        if (!strcmp(pod->with[i].key, key))
            return pod->with[i].value;
    const nf_setting_t *s = pod->spec ? nf_podspec_setting(pod->spec, key) : NULL;
    return s ? s->def : NULL;
}

bool
nf_flow_host_is_local(const char *host)
{
    struct in_addr a4;
    if (!strcasecmp(host, "localhost") || !strcmp(host, "::1"))
        return true;
    if (inet_pton(AF_INET, host, &a4) == 1 && (ntohl(a4.s_addr) >> 24) == 127)
        return true;
    char name[256];
    if (gethostname(name, sizeof name) == 0) {
        name[sizeof name - 1] = 0;
        if (!strcasecmp(name, host))
            return true;
    }
    struct ifaddrs *ifs = NULL;
    bool local = false;
    if (getifaddrs(&ifs) != 0)
        return false;
    for (struct ifaddrs *i = ifs; i && !local; i = i->ifa_next) {
        char buf[INET6_ADDRSTRLEN];
        if (!i->ifa_addr)
            continue;
        if (i->ifa_addr->sa_family == AF_INET)
            inet_ntop(AF_INET, &((struct sockaddr_in *) i->ifa_addr)->sin_addr, buf, sizeof buf);
        else if (i->ifa_addr->sa_family == AF_INET6)
            inet_ntop(AF_INET6, &((struct sockaddr_in6 *) i->ifa_addr)->sin6_addr, buf, sizeof buf);
        else
            continue;
        local = !strcmp(buf, host);
    }
    freeifaddrs(ifs);
    return local;
}


size_t
nf_flow_nbinds(const nf_podspec_t *spec)
{
    size_t n = 0;
    for (size_t i = 0; i < nf_podspec_nsockets(spec); i++)
        n += nf_podspec_socket_at(spec, i)->bind;
    return n;
}
