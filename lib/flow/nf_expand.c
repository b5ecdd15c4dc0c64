/*  nf_expand: a flow expanded into processes (see nf_expand.h). */
#include "nf_expand.h"

#include <arpa/inet.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "nf_canon.h"
#include "nf_error.h"
#include "nf_sys.h"

static int
s_oom(void)
{
    return nf_error_set(NF_ENOMEM, "out of memory");
}

int
nf_strv_push(char ***arr, size_t *n, char *s)
{
    if (!s)
        return s_oom();
    char **grown = realloc(*arr, (*n + 2) * sizeof **arr);
    if (!grown) {
        free(s);
        return s_oom();
    }
    *arr = grown;
    grown[(*n)++] = s;
    grown[*n] = NULL;
    return NF_OK;
}

/* Add "--opt value" to the command line; exec pods also get NFLOW_OPT=value. */
static int
s_opt(nf_proc_t *p, const char *opt, const char *value)
{
    char flag[96];
    snprintf(flag, sizeof flag, "--%s", opt);
    int rc = nf_strv_push(&p->argv, &p->argc, strdup(flag));
    if (rc == NF_OK)
        rc = nf_strv_push(&p->argv, &p->argc, strdup(value));
    if (rc == NF_OK && !strcmp(p->pod->uses, "exec")) {
        char var[96], *entry = NULL;
        nf_podspec_env_name(opt, var, sizeof var);
        if (asprintf(&entry, "%s=%s", var, value) < 0)
            return s_oom();
        rc = nf_strv_push(&p->env, &p->nenv, entry);
    }
    return rc;
}

static int
s_default_port(void *arg, const char *addr, unsigned *port)
{
    (void) arg;
    int p = nf_free_port(addr);
    if (p <= 0)
        return nf_error_set(NF_EIO, "cannot find a free port on %s", addr);
    *port = (unsigned) p;
    return NF_OK;
}

/* A free port on addr that the plan does not use yet. */
static int
s_pick_port(const nf_plan_t *plan, const nf_expand_opts_t *o, const char *addr, unsigned *port)
{
    nf_port_fn *pick = o->pick_port ? o->pick_port : s_default_port;
    for (int attempt = 0; attempt < 100; attempt++) {
        unsigned p = 0;
        int rc = pick(o->pick_arg, addr, &p);
        if (rc != NF_OK)
            return rc;
        bool taken = p == 0;
        for (size_t i = 0; !taken && i < plan->nprocs; i++)
            for (size_t j = 0; j < plan->procs[i].nbinds; j++)
                taken |= plan->procs[i].binds[j].port == p;
        if (!taken) {
            *port = p;
            return NF_OK;
        }
    }
    return nf_error_set(NF_EIO, "cannot find a free port on %s", addr);
}

/* Name, host, ports and endpoints of instance k of pod. */
static int
s_place(nf_plan_t *plan, const nf_expand_opts_t *o, const nf_flow_t *flow,
        const nf_flow_pod_t *pod, unsigned k)
{
    nf_proc_t *p = &plan->procs[plan->nprocs];
    bool (*is_local)(const char *) = o->is_local ? o->is_local : nf_flow_host_is_local;
    p->pod = pod;
    p->index = k;
    p->host = pod->hosts[k];
    p->start = o->only_host ? !strcmp(o->only_host, p->host) : is_local(p->host);
    if (pod->spec->scale != NF_SCALE_ONE ? asprintf(&p->name, "%s/%u", pod->name, k) < 0
                                         : !(p->name = strdup(pod->name))) {
        p->name = NULL;
        return s_oom();
    }
    plan->nprocs++;             /* from here on, freed with the plan */
    if (!p->start && !pod->port)
        return nf_error_set(NF_EINVAL, "%s:%d: pod '%s' runs on %s, which this launcher does "
                            "not start, so its port must be given", flow->path, pod->line,
                            pod->name, p->host);
    const char *bhost = p->host;
    struct in_addr a;
    if (!strcmp(bhost, "localhost"))
        bhost = "127.0.0.1";
    else if (inet_pton(AF_INET, bhost, &a) != 1)
        bhost = "*";
    size_t nb = nf_flow_nbinds(pod->spec);
    p->binds = calloc(nb ? nb : 1, sizeof *p->binds);
    if (!p->binds)
        return s_oom();
    for (size_t i = 0; i < nf_podspec_nsockets(pod->spec); i++) {
        const nf_sockspec_t *row = nf_podspec_socket_at(pod->spec, i);
        if (!row->bind)
            continue;
        size_t j = p->nbinds;
        unsigned port = pod->port ? pod->port + k * (unsigned) nb + (unsigned) j : 0;
        int rc = port ? NF_OK : s_pick_port(plan, o, strcmp(bhost, "*") ? bhost : "0.0.0.0", &port);
        if (rc != NF_OK)
            return rc;
        nf_proc_bind_t *b = &p->binds[p->nbinds++];
        b->socket = row;
        b->port = port;
        if (asprintf(&b->option, "--%s", row->option) < 0)
            b->option = NULL;
        if (asprintf(&b->endpoint, "tcp://%s:%u", p->host, port) < 0)
            b->endpoint = NULL;
        if (asprintf(&b->bind_at, "tcp://%s:%u", bhost, port) < 0)
            b->bind_at = NULL;
        if (!b->option || !b->endpoint || !b->bind_at)
            return s_oom();
    }
    p->control = nf_proc_endpoint(p, "control");
    return NF_OK;
}

/* The endpoints a connecting socket gets: every instance of the first
   role of row->peer ("encoder.in|router.in") the plan has, joined by ','.
   *out is the caller's. */
static int
s_peer(const nf_plan_t *plan, const nf_proc_t *p, const nf_sockspec_t *row, char **out)
{
    *out = NULL;
    const char *alt = row->peer;
    while (alt && *alt) {
        const char *bar = strchr(alt, '|');
        size_t len = bar ? (size_t) (bar - alt) : strlen(alt);
        char want[96];
        snprintf(want, sizeof want, "%.*s", (int) len, alt);
        char *dot = strchr(want, '.');
        if (dot) {
            *dot = '\0';
            size_t size = 0;
            FILE *f = open_memstream(out, &size);
            if (!f)
                return s_oom();
            size_t found = 0;
            for (size_t i = 0; i < plan->nprocs; i++) {
                const char *ep = strcmp(plan->procs[i].pod->role, want) ? NULL
                               : nf_proc_endpoint(&plan->procs[i], dot + 1);
                if (ep)
                    fprintf(f, "%s%s", found++ ? "," : "", ep);
            }
            if (fclose(f) != 0)
                return s_oom();
            if (found)
                return NF_OK;
            free(*out);
            *out = NULL;
        }
        alt = bar ? bar + 1 : NULL;
    }
    return nf_error_set(NF_EINVAL, "pod %s: --%s connects to %s, which the flow does not have",
                        p->name, row->option, row->peer ? row->peer : "nothing");
}

/* The command line and environment of p. */
static int
s_command(const nf_plan_t *plan, const nf_expand_opts_t *o, nf_proc_t *p)
{
    const nf_flow_pod_t *pod = p->pod;
    int rc = NF_OK;
    if (!strcmp(pod->uses, "exec")) {
        for (size_t k = 0; k < pod->ncommand && rc == NF_OK; k++)
            rc = nf_strv_push(&p->argv, &p->argc, strdup(pod->command[k]));
    } else {
        rc = nf_strv_push(&p->argv, &p->argc, strdup(pod->spec->program));
    }
    /* instance options, as the table says how to fill them */
    unsigned nshards = 1;
    for (size_t i = 0; i < plan->nprocs; i++)
        if (plan->procs[i].pod->spec->scale == NF_SCALE_SHARDS)
            nshards = plan->procs[i].pod->count;
    for (size_t i = 0; i < nf_podspec_noptions() && rc == NF_OK; i++) {
        const nf_option_t *opt = nf_podspec_option_at(i);
        if (!nf_podspec_option_for(opt, pod->spec))
            continue;
        char value[PATH_MAX + 80];
        switch (opt->fill) {
        case NF_FILL_NAME: snprintf(value, sizeof value, "%s", p->name); break;
        case NF_FILL_INDEX: snprintf(value, sizeof value, "%u", p->index); break;
        case NF_FILL_NSHARDS: snprintf(value, sizeof value, "%u", nshards); break;
        case NF_FILL_WORKSPACE:
            snprintf(value, sizeof value, "%s/%s", o->workspace ? o->workspace : ".", pod->name);
            break;
        case NF_FILL_KEYS:          /* only when the flow's links use CURVE */
            snprintf(value, sizeof value, "%s",
                     !plan->flow->curve ? "" : o->keys ? o->keys : plan->flow->keys);
            break;
        case NF_FILL_FINGERPRINT:
            snprintf(value, sizeof value, "%016llx", (unsigned long long) plan->fingerprint);
            break;
        }
        if (*value)
            rc = s_opt(p, opt->name, value);
    }
    /* sockets: what it binds, and its peers' endpoints for what it connects */
    for (size_t i = 0; i < nf_podspec_nsockets(pod->spec) && rc == NF_OK; i++) {
        const nf_sockspec_t *row = nf_podspec_socket_at(pod->spec, i);
        if (row->bind) {
            for (size_t j = 0; j < p->nbinds; j++)
                if (p->binds[j].socket == row)
                    rc = s_opt(p, row->option, p->binds[j].bind_at);
            continue;
        }
        char *peers = NULL;
        if ((rc = s_peer(plan, p, row, &peers)) == NF_OK)
            rc = s_opt(p, row->option, peers);
        free(peers);
    }
    /* settings, as written in the flow */
    for (size_t k = 0; k < pod->nwith && rc == NF_OK; k++)
        rc = s_opt(p, pod->with[k].key, pod->with[k].value);
    for (size_t k = 0; k < pod->nenv && rc == NF_OK; k++) {
        char *var = NULL;
        if (asprintf(&var, "%s=%s", pod->env[k].key, pod->env[k].value) < 0)
            return s_oom();
        rc = nf_strv_push(&p->env, &p->nenv, var);
    }
    return rc;
}

int
nf_flow_expand(const nf_flow_t *flow, const nf_expand_opts_t *opts, nf_plan_t **out)
{
    static const nf_expand_opts_t s_none = {0};
    const nf_expand_opts_t *o = opts ? opts : &s_none;
    *out = NULL;
    nf_plan_t *plan = calloc(1, sizeof *plan);
    size_t total = 0;
    for (size_t i = 0; i < flow->npods; i++)
        total += flow->pods[i].count;
    if (!plan || !(plan->procs = calloc(total ? total : 1, sizeof *plan->procs))) {
        free(plan);
        return s_oom();
    }
    int rc = NF_OK;
    plan->flow = flow;
    if (!(plan->fingerprint = nf_flow_fingerprint(flow)))
        rc = s_oom();
    for (size_t i = 0; i < flow->npods && rc == NF_OK; i++)
        for (unsigned k = 0; k < flow->pods[i].count && rc == NF_OK; k++)
            rc = s_place(plan, o, flow, &flow->pods[i], k);
    /* explicit ports must not collide */
    for (size_t i = 0; i < plan->nprocs && rc == NF_OK; i++)
        for (size_t j = 0; j < plan->procs[i].nbinds && rc == NF_OK; j++)
            for (size_t k = i; k < plan->nprocs && rc == NF_OK; k++)
                for (size_t l = k == i ? j + 1 : 0; l < plan->procs[k].nbinds; l++)
                    if (!strcmp(plan->procs[i].binds[j].endpoint, plan->procs[k].binds[l].endpoint)) {
                        rc = nf_error_set(NF_EINVAL, "%s: pods %s and %s both use %s", flow->path,
                                          plan->procs[i].name, plan->procs[k].name,
                                          plan->procs[k].binds[l].endpoint);
                        break;
                    }
    for (size_t i = 0; i < plan->nprocs && rc == NF_OK; i++)
        rc = s_command(plan, o, &plan->procs[i]);
    for (size_t i = 0; i < plan->nprocs && rc == NF_OK && !plan->gateway; i++)
        if (plan->procs[i].pod->spec->presence == NF_PRESENCE_TOP)
            plan->gateway = nf_proc_endpoint(&plan->procs[i], "clients");
    if (rc == NF_OK && !plan->gateway)
        rc = nf_error_set(NF_EINVAL, "%s: the flow has no gateway", flow->path);
    if (rc != NF_OK) {
        nf_plan_destroy(&plan);
        return rc;
    }
    *out = plan;
    return NF_OK;
}

void
nf_plan_destroy(nf_plan_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    nf_plan_t *self = *self_p;
    for (size_t i = 0; i < self->nprocs; i++) {
        nf_proc_t *p = &self->procs[i];
        free(p->name);
        for (size_t j = 0; j < p->nbinds; j++) {
            free(p->binds[j].option);
            free(p->binds[j].endpoint);
            free(p->binds[j].bind_at);
        }
        free(p->binds);
        for (size_t j = 0; j < p->argc; j++)
            free(p->argv[j]);
        free(p->argv);
        for (size_t j = 0; j < p->nenv; j++)
            free(p->env[j]);
        free(p->env);
    }
    free(self->procs);
    free(self);
    *self_p = NULL;
}

const nf_proc_t *
nf_plan_find(const nf_plan_t *plan, const char *name)
{
    for (size_t i = 0; plan && i < plan->nprocs; i++)
        if (!strcmp(plan->procs[i].name, name))
            return &plan->procs[i];
    return NULL;
}

const char *
nf_proc_endpoint(const nf_proc_t *proc, const char *option)
{
    for (size_t i = 0; proc && i < proc->nbinds; i++)
        if (!strcmp(proc->binds[i].socket->option, option))
            return proc->binds[i].endpoint;
    return NULL;
}

const char *
nf_proc_arg(const nf_proc_t *proc, const char *option)
{
    for (size_t i = 1; proc && i + 1 < proc->argc; i++)
        if (!strncmp(proc->argv[i], "--", 2) && !strcmp(proc->argv[i] + 2, option))
            return proc->argv[i + 1];
    return NULL;
}

/* ------------------------------------------------------------------ */
/* Where the programs are                                              */

/* The directories to look in, in order; returns how many (at most 3). */
static size_t
s_dirs(char dirs[3][PATH_MAX])
{
    size_t n = 0;
    const char *env = getenv("NFLOW_PODS_DIR");
    if (env && *env)
        snprintf(dirs[n++], PATH_MAX, "%s", env);
    char self[PATH_MAX];
    ssize_t len = readlink("/proc/self/exe", self, sizeof self - 1);
    if (len > 0) {
        self[len] = 0;
        char *slash = strrchr(self, '/');
        if (slash)
            *slash = 0;
        snprintf(dirs[n++], PATH_MAX, "%s", self);
        snprintf(dirs[n++], PATH_MAX, "%.*s/../pods", PATH_MAX - 16, self);
    }
    return n;
}

int
nf_flow_find_program(const char *program, char *path, size_t size)
{
    char dirs[3][PATH_MAX];
    size_t n = s_dirs(dirs);
    for (size_t d = 0; d < n; d++) {
        snprintf(path, size, "%s/%s", dirs[d], program);
        if (access(path, X_OK) == 0)
            return NF_OK;
    }
    return nf_error_set(NF_ENOTFOUND, "cannot find the program %s (looked in $NFLOW_PODS_DIR, "
                        "%s and %s)", program, n > 1 ? dirs[n - 2] : "-", n ? dirs[n - 1] : "-");
}

int
nf_flow_py_proto_dir(char *dir, size_t size)
{
    const char *env = getenv("NFLOW_PY_PROTO_DIR");
    if (env && *env) {
        snprintf(dir, size, "%s", env);
        return NF_OK;
    }
    char dirs[3][PATH_MAX], file[PATH_MAX + 32];
    size_t n = s_dirs(dirs);
    for (size_t d = 0; d < n; d++) {
        snprintf(file, sizeof file, "%s/python/nflow_pb2.py", dirs[d]);
        if (access(file, R_OK) == 0) {
            snprintf(dir, size, "%s/python", dirs[d]);
            return NF_OK;
        }
    }
    return nf_error_set(NF_ENOTFOUND, "cannot find nflow_pb2.py (the build makes it in "
                        "<build>/pods/python; or set NFLOW_PY_PROTO_DIR)");
}
