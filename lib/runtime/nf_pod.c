/*  nf_pod: the pod runtime (see nf_pod.h). */
#include "nf_pod.h"

#include <assert.h>
#include <errno.h>
#include <stdarg.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "nf_error.h"
#include "nf_keys.h"
#include "nf_socket.h"
#include "nf_sys.h"

/* The socket table (nf_podspec) spells ZeroMQ's socket types by number. */
_Static_assert(NF_ZMQ_DEALER == ZMQ_DEALER && NF_ZMQ_ROUTER == ZMQ_ROUTER
               && NF_ZMQ_PULL == ZMQ_PULL && NF_ZMQ_PUSH == ZMQ_PUSH,
               "nf_podspec.h's NF_ZMQ_* must be ZeroMQ's socket types");

#define S_MAX_OPTS 48
#define S_MAX_SOCKS 16
#define S_CONTROL_BATCH 64
#define S_SIGNAL_SLICE_MS 100

struct nf_pod {
    const nf_podspec_t *spec;
    char *keys[S_MAX_OPTS];
    char *vals[S_MAX_OPTS];
    size_t nopts;
    char name[128];
    nf_pod_stats_t stats;
    zsock_t *socks[S_MAX_SOCKS];
    const char *sock_keys[S_MAX_SOCKS];     /* the socket table's option */
    bool polled[S_MAX_SOCKS];
    bool readable[S_MAX_SOCKS];
    size_t nsocks;
    zsock_t *control;
    zsock_t *errors;
    bool stopping;
    nf_pod_command_fn command_fn;   /* commands served by the pod program */
    void *command_arg;
    nf_keys_t *ring;            /* --keys: CURVE on every socket; NULL = plain */
    uint64_t fingerprint;       /* --fingerprint, 0 = none */
    const char *canon;          /* NFLOW_CANON: the flow's canonical text, or NULL */
};

/* ------------------------------------------------------------------ */
/* Options                                                             */

static const char *
s_opt(const nf_pod_t *self, const char *key)
{
    for (size_t i = 0; i < self->nopts; i++)
        if (!strcmp(self->keys[i], key))
            return self->vals[i];
    return NULL;
}

static int
s_opt_set(nf_pod_t *self, const char *key, size_t keylen, const char *val)
{
    for (size_t i = 0; i < self->nopts; i++)
        if (strlen(self->keys[i]) == keylen && !strncmp(self->keys[i], key, keylen))
            return nf_error_set(NF_EINVAL, "option --%s given twice", self->keys[i]);
    if (self->nopts == S_MAX_OPTS)
        return nf_error_set(NF_EINVAL, "too many options");
    self->keys[self->nopts] = strndup(key, keylen);
    self->vals[self->nopts] = strdup(val);
    if (!self->keys[self->nopts] || !self->vals[self->nopts]) {
        free(self->keys[self->nopts]);
        free(self->vals[self->nopts]);
        return nf_error_set(NF_ENOMEM, "option --%.*s", (int) keylen, key);
    }
    self->nopts++;
    return NF_OK;
}

/* The instance options of any role (--replica, --shard, ...) are accepted
   by every pod, so a launcher may pass them uniformly; pods that have no
   use for one ignore it. */
static const nf_option_t *
s_common(const char *key)
{
    for (size_t i = 0; i < nf_podspec_noptions(); i++)
        if (!strcmp(nf_podspec_option_at(i)->name, key))
            return nf_podspec_option_at(i);
    return NULL;
}

/* Check an instance option's value (its bounds, when it is a number). */
static int
s_check_common(const nf_option_t *opt, const char *val, const char *src)
{
    if (opt->min <= opt->max) {
        char *end = NULL;
        errno = 0;
        long v = strtol(val, &end, 10);
        if (!*val || *end || errno || v < opt->min || v > opt->max)
            return nf_error_set(NF_EINVAL, "%s%s: expected an integer in %ld..%ld, got '%s'",
                                src, opt->name, opt->min, opt->max, val);
    }
    else if (!*val)
        return nf_error_set(NF_EINVAL, "%s%s: empty value", src, opt->name);
    return NF_OK;
}

static int
s_check(const nf_pod_t *self, const char *key, const char *val, const char *src)
{
    int kind = nf_podspec_option(self->spec, key);
    if (kind == NF_PODSPEC_OPT_SETTING) {
        if (nf_setting_check(nf_podspec_setting(self->spec, key), val) != NF_OK) {
            char what[900];
            snprintf(what, sizeof what, "%s", nf_error_msg());
            return nf_error_set(NF_EINVAL, "%s%s", src, what);
        }
        return NF_OK;
    }
    if (kind == NF_PODSPEC_OPT_COMMON || (kind == NF_PODSPEC_OPT_NONE && s_common(key)))
        return s_check_common(s_common(key), val, src);
    if (!*val)
        return nf_error_set(NF_EINVAL, "%s%s: empty endpoint", src, key);
    return NF_OK;
}

/* Every option name this pod knows, in a stable order: fn(key) for each. */
static int
s_each_key(const nf_pod_t *self, int (*fn)(nf_pod_t *, const char *), nf_pod_t *mut)
{
    int rc;
    for (size_t i = 0; i < nf_podspec_noptions(); i++)
        if (nf_podspec_option_for(nf_podspec_option_at(i), self->spec)
            && (rc = fn(mut, nf_podspec_option_at(i)->name)) != NF_OK)
            return rc;
    for (size_t i = 0; i < nf_podspec_nsockets(self->spec); i++)
        if ((rc = fn(mut, nf_podspec_socket_at(self->spec, i)->option)) != NF_OK)
            return rc;
    for (size_t i = 0; i < self->spec->nsettings; i++)
        if ((rc = fn(mut, self->spec->settings[i].name)) != NF_OK)
            return rc;
    return NF_OK;
}

static int
s_from_env(nf_pod_t *self, const char *key)
{
    if (s_opt(self, key))
        return NF_OK;
    char var[96];
    const char *val = getenv(nf_podspec_env_name(key, var, sizeof var));
    if (!val)
        return NF_OK;
    char src[112];
    snprintf(src, sizeof src, "environment %s, ", var);
    int rc = s_check(self, key, val, src);
    if (rc != NF_OK)
        return rc;
    return s_opt_set(self, key, strlen(key), val);
}

static int
s_required(nf_pod_t *self, const char *key)
{
    const nf_setting_t *s = nf_podspec_setting(self->spec, key);
    if (s && !s->def && !s_opt(self, key)) {
        char var[96];
        return nf_error_set(NF_EINVAL, "setting --%s is required (or %s)", key,
                            nf_podspec_env_name(key, var, sizeof var));
    }
    return NF_OK;
}

static int
s_parse_args(nf_pod_t *self, int argc, char **argv, bool *help)
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            *help = true;
            return NF_OK;
        }
        if (strncmp(a, "--", 2) != 0 || !a[2])
            return nf_error_set(NF_EINVAL, "argument %d: expected --OPTION, got '%s'", i, a);
        const char *key = a + 2;
        const char *eq = strchr(key, '=');
        size_t keylen = eq ? (size_t) (eq - key) : strlen(key);
        char name[64];
        if (keylen >= sizeof name)
            return nf_error_set(NF_EINVAL, "unknown option '%s' (see --help)", a);
        /* '-' and '_' are one character in option names: --timeout-ms is
           the setting timeout_ms */
        for (size_t k = 0; k < keylen; k++)
            name[k] = key[k] == '-' ? '_' : key[k];
        name[keylen] = '\0';
        if (nf_podspec_option(self->spec, name) == NF_PODSPEC_OPT_NONE && !s_common(name))
            return nf_error_set(NF_EINVAL, "unknown option --%s for %s (see --help)", name,
                                self->spec->program);
        const char *val;
        if (eq)
            val = eq + 1;
        else if (i + 1 < argc)
            val = argv[++i];
        else
            return nf_error_set(NF_EINVAL, "option --%s needs a value", name);
        int rc = s_check(self, name, val, "option --");
        if (rc != NF_OK)
            return rc;
        if ((rc = s_opt_set(self, name, keylen, val)) != NF_OK)
            return rc;
    }
    return NF_OK;
}

int
nf_pod_new(const char *uses, int argc, char **argv, nf_pod_t **out)
{
    *out = NULL;
    const nf_podspec_t *spec = nf_podspec_find(uses);
    if (!spec)
        return nf_error_set(NF_EINVAL, "unknown pod type '%s'", uses ? uses : "(null)");
    nf_pod_t *self = calloc(1, sizeof *self);
    if (!self)
        return nf_error_set(NF_ENOMEM, "pod");
    self->spec = spec;
    bool help = false;
    int rc = s_parse_args(self, argc, argv, &help);
    if (rc == NF_OK && help) {
        nf_podspec_help(spec, stdout);
        nf_pod_destroy(&self);
        return NF_OK;
    }
    if (rc == NF_OK)
        rc = s_each_key(self, s_from_env, self);
    if (rc == NF_OK)
        rc = s_each_key(self, s_required, self);
    if (rc == NF_OK && nf_podspec_option(spec, "shard") == NF_PODSPEC_OPT_COMMON
        && nf_pod_int(self, "shard") >= (nf_pod_get(self, "nshards") ? nf_pod_int(self, "nshards") : 1))
        rc = nf_error_set(NF_EINVAL, "--shard %ld: expected less than --nshards %ld",
                          nf_pod_int(self, "shard"),
                          nf_pod_get(self, "nshards") ? nf_pod_int(self, "nshards") : 1);
    if (rc != NF_OK) {
        nf_pod_destroy(&self);
        return rc;
    }
    const char *name = nf_pod_get(self, "name");
    if (name)
        snprintf(self->name, sizeof self->name, "%s", name);
    else if (nf_podspec_option(spec, "shard") == NF_PODSPEC_OPT_COMMON)
        snprintf(self->name, sizeof self->name, "%s/%ld", uses, nf_pod_int(self, "shard"));
    else if (nf_podspec_option(spec, "replica") == NF_PODSPEC_OPT_COMMON)
        snprintf(self->name, sizeof self->name, "%s/%ld", uses, nf_pod_int(self, "replica"));
    else
        snprintf(self->name, sizeof self->name, "%s", uses);
    self->stats.shard = (uint32_t) nf_pod_int(self, "shard");
    const char *fp = nf_pod_get(self, "fingerprint");
    if (fp) {
        char *end = NULL;
        self->fingerprint = strtoull(fp, &end, 16);
        if (!*fp || *end || strlen(fp) > 16) {
            rc = nf_error_set(NF_EINVAL, "--fingerprint: expected up to 16 hex digits, got '%s'", fp);
            nf_pod_destroy(&self);
            return rc;
        }
    }
    self->canon = getenv("NFLOW_CANON");
    const char *keydir = nf_pod_get(self, "keys");
    if (keydir) {
        /* own key: a shard's shard-<shard>, every other pod's "pod" */
        char own[NF_KEY_NAME_MAX + 1] = "pod";
        if (nf_podspec_option(spec, "shard") == NF_PODSPEC_OPT_COMMON)
            nf_keys_shard_name((unsigned) nf_pod_int(self, "shard"), own, sizeof own);
        rc = nf_keys_open(keydir, own, &self->ring);
        if (rc != NF_OK) {
            char why[900];
            snprintf(why, sizeof why, "%s", nf_error_msg());
            nf_pod_destroy(&self);
            return nf_error_set(rc, "--keys: %s", why);
        }
    }
    /* flush what is queued when a socket closes, but never wait long */
    zsys_set_linger(NF_SOCKET_LINGER_MS);
    *out = self;
    return NF_OK;
}

void
nf_pod_destroy(nf_pod_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    nf_pod_t *self = *self_p;
    for (size_t i = 0; i < self->nsocks; i++)
        zsock_destroy(&self->socks[i]);
    zsock_destroy(&self->control);
    zsock_destroy(&self->errors);
    if (self->ring) {
        nf_keys_destroy(&self->ring);
        nf_zap_stop();
    }
    for (size_t i = 0; i < self->nopts; i++) {
        free(self->keys[i]);
        free(self->vals[i]);
    }
    free(self);
    *self_p = NULL;
}

const char *
nf_pod_get(const nf_pod_t *self, const char *key)
{
    const char *v = s_opt(self, key);
    if (v)
        return v;
    const nf_setting_t *s = nf_podspec_setting(self->spec, key);
    return s ? s->def : NULL;
}

long
nf_pod_int(const nf_pod_t *self, const char *key)
{
    const char *v = nf_pod_get(self, key);
    return v ? strtol(v, NULL, 10) : 0;
}

bool
nf_pod_bool(const nf_pod_t *self, const char *key)
{
    bool b = false;
    const char *v = nf_pod_get(self, key);
    if (v)
        nf_setting_parse_bool(v, &b);
    return b;
}

const char *
nf_pod_name(const nf_pod_t *self)
{
    return self->name;
}

nf_pod_stats_t *
nf_pod_stats(nf_pod_t *self)
{
    return &self->stats;
}

/* ------------------------------------------------------------------ */
/* Sockets                                                             */

/* The socket options of row for this pod: identity from the row's rule. */
static int
s_open_row(nf_pod_t *self, const nf_sockspec_t *row, zsock_t **sock)
{
    *sock = NULL;
    char what[80], var[96];
    snprintf(what, sizeof what, "--%s", row->option);
    const char *ep = nf_pod_get(self, row->option);
    if (!ep)
        return nf_error_set(NF_EINVAL, "%s: endpoint missing (option or %s)", what,
                            nf_podspec_env_name(row->option, var, sizeof var));
    char identity[128];
    if (row->identity)      /* "shard-" and the number of --shard (0 when absent) */
        snprintf(identity, sizeof identity, "%s%ld", row->identity,
                 nf_pod_int(self, row->identity_of));
    /* with keys: a bound socket lets in the classes of row->allow; a
       connecting one expects its peer (never a shard) to hold "pod" */
    nf_socket_opts_t o = {
        .type = row->type, .bind = row->bind, .endpoints = ep, .what = what,
        .identity = row->identity ? identity : NULL, .handover = row->handover,
        .keys = self->ring, .allow = row->allow, .server_key = "pod",
    };
    return nf_socket_new(&o, sock);
}

int
nf_pod_socket(nf_pod_t *self, const char *key, zsock_t **sock)
{
    *sock = NULL;
    const nf_sockspec_t *row = nf_podspec_socket(self->spec, key);
    if (!row || row->at_ready)
        return nf_error_set(NF_EINVAL, "--%s is not a data socket of %s (nf_podspec)", key,
                            self->spec->uses);
    for (size_t i = 0; i < self->nsocks; i++)
        if (!strcmp(self->sock_keys[i], row->option)) {
            *sock = self->socks[i];
            return NF_OK;
        }
    if (self->nsocks == S_MAX_SOCKS)
        return nf_error_set(NF_EINVAL, "--%s: more than %d sockets", key, S_MAX_SOCKS);
    int rc = s_open_row(self, row, sock);
    if (rc != NF_OK)
        return rc;
    self->socks[self->nsocks] = *sock;
    self->sock_keys[self->nsocks] = row->option;
    self->polled[self->nsocks] = row->poll;
    self->nsocks++;
    return NF_OK;
}

int
nf_pod_open_sockets(nf_pod_t *self)
{
    for (size_t i = 0; i < nf_podspec_nsockets(self->spec); i++) {
        const nf_sockspec_t *row = nf_podspec_socket_at(self->spec, i);
        zsock_t *sock;
        int rc = row->at_ready ? NF_OK : nf_pod_socket(self, row->option, &sock);
        if (rc != NF_OK)
            return rc;
    }
    return NF_OK;
}

zsock_t *
nf_pod_sock(const nf_pod_t *self, const char *key)
{
    for (size_t i = 0; i < self->nsocks; i++)
        if (!strcmp(self->sock_keys[i], key))
            return self->socks[i];
    return NULL;
}

int
nf_pod_ready(nf_pod_t *self)
{
    /* the rows made at ready: --errors (when given) and --control, last */
    for (size_t i = 0; i < nf_podspec_nsockets(self->spec); i++) {
        const nf_sockspec_t *row = nf_podspec_socket_at(self->spec, i);
        zsock_t **slot = !row->at_ready ? NULL
                       : !strcmp(row->option, "control") ? &self->control
                       : !strcmp(row->option, "errors") ? &self->errors : NULL;
        if (!slot || *slot || !nf_pod_get(self, row->option))
            continue;
        int rc = s_open_row(self, row, slot);
        if (rc != NF_OK)
            return rc;
    }
    const char *control = nf_pod_get(self, "control");
    nf_pod_log(self, "ready (pid %d%s%s)", (int) getpid(), control ? ", control " : "",
               control ? control : "");
    return NF_OK;
}

int
nf_pod_main(const char *role, int argc, char **argv, const nf_pod_hooks_t *hooks, void *arg)
{
    nf_pod_t *pod = NULL;
    /* multi-megabyte message buffers come from the heap and are reused, not
       mapped and zeroed afresh for every batch */
    mallopt(M_MMAP_THRESHOLD, 32 << 20);
    mallopt(M_TRIM_THRESHOLD, 64 << 20);
    if (nf_pod_new(role, argc, argv, &pod) != NF_OK) {
        fprintf(stderr, "nflow-%s: %s\n", role, nf_error_msg());
        return 2;
    }
    if (!pod)
        return 0;                               /* --help was printed */
    int rc = nf_pod_open_sockets(pod);
    if (rc == NF_OK && hooks->setup)
        rc = hooks->setup(pod, arg);
    if (rc == NF_OK)
        rc = nf_pod_ready(pod);
    if (rc != NF_OK)
        nf_pod_log(pod, "cannot start: %s", nf_error_msg());
    while (rc == NF_OK && !nf_pod_stopping(pod))
        hooks->step(pod, arg);
    if (hooks->teardown)
        hooks->teardown(pod, arg);
    nf_pod_destroy(&pod);
    return rc == NF_OK ? 0 : 1;
}

/* ------------------------------------------------------------------ */
/* Control and errors                                                  */

void
nf_pod_control(nf_pod_t *self, zsock_t *sock, zmsg_t *routing, const nf_env_t *env)
{
    Nflow__Control *in = env->control;
    if (!in || env->body_case != NF_BODY_CONTROL) {
        nf_msg_reply_error(sock, routing, env->request_id,
                           NFLOW__STATUS_CODE__STATUS_BAD_REQUEST, "expected a control body");
        return;
    }
    nf_env_t reply;
    nf_env_init(&reply);
    reply.request_id = env->request_id;
    Nflow__Control c = NFLOW__CONTROL__INIT;
    c.command = in->command;
    c.ready = true;
    c.pod = self->name;
    c.pid = (uint32_t) getpid();
    c.shard = self->stats.shard;
    c.dim = self->stats.dim;
    c.fingerprint = self->fingerprint;
    if (in->command == NFLOW__CONTROL_COMMAND__CONTROL_PING && self->canon)
        c.canonical = (char *) self->canon;
    switch (in->command) {
    case NFLOW__CONTROL_COMMAND__CONTROL_PING:
    case NFLOW__CONTROL_COMMAND__CONTROL_TERMINATE:
        break;
    case NFLOW__CONTROL_COMMAND__CONTROL_STATUS:
        c.served = self->stats.served;
        c.errors = self->stats.errors;
        c.malformed = self->stats.malformed;
        c.rows = self->stats.rows;
        c.rss_bytes = nf_rss_bytes();
        c.denied = nf_zap_denied();
        break;
    default: {
        char what[512];
        if (self->command_fn) {
            int rc = self->command_fn(self, self->command_arg, in, &c);
            if (rc == NF_OK)
                break;
            snprintf(what, sizeof what, "%s", nf_error_msg());
            nf_msg_reply_error(sock, routing, env->request_id,
                               rc == NF_EINVAL || rc == NF_ELOCKED
                                   ? NFLOW__STATUS_CODE__STATUS_BAD_REQUEST
                                   : NFLOW__STATUS_CODE__STATUS_INTERNAL, what);
            return;
        }
        snprintf(what, sizeof what, "control command %d is not served here", in->command);
        nf_msg_reply_error(sock, routing, env->request_id,
                           NFLOW__STATUS_CODE__STATUS_BAD_REQUEST, what);
        return;
    }
    }
    reply.body_case = NF_BODY_CONTROL;
    reply.control = &c;
    nf_msg_send(sock, routing, &reply, ZMQ_DONTWAIT);
    if (in->command == NFLOW__CONTROL_COMMAND__CONTROL_TERMINATE) {
        nf_pod_log(self, "terminating on request");
        self->stopping = true;
    }
}

static void
s_answer_bad(nf_pod_t *self, zsock_t *sock, nf_msg_t *msg, Nflow__StatusCode code,
             const char *what)
{
    if (msg->routing && msg->v1)
        nf_msg_reply_v1(sock, msg->routing, msg->request_id, code, what);
    else if (msg->routing)
        nf_msg_reply_error(sock, msg->routing, msg->request_id, code, what);
    else if (msg->request_id && self->errors)
        nf_msg_reply_error(self->errors, NULL, msg->request_id, code, what);
}

static void
s_log_malformed(nf_pod_t *self, const nf_msg_t *msg, const char *what)
{
    uint64_t n = self->stats.malformed;
    /* the first few, then one in a thousand: a flood must not flood the log */
    if (n <= 10 || n % 1000 == 0)
        nf_pod_log(self, "malformed frame from %s: %s%s", msg->peer, what,
                   n == 10 ? " (further ones logged 1 in 1000)" : "");
}

void
nf_pod_malformed(nf_pod_t *self, zsock_t *sock, nf_msg_t *msg, int rc)
{
    char what[512];
    snprintf(what, sizeof what, "%s", nf_error_msg());
    self->stats.malformed++;
    s_log_malformed(self, msg, what);
    s_answer_bad(self, sock, msg,
                 rc == NF_EVERSION ? NFLOW__STATUS_CODE__STATUS_BAD_VERSION
                                   : NFLOW__STATUS_CODE__STATUS_BAD_REQUEST, what);
}

void
nf_pod_reject(nf_pod_t *self, zsock_t *sock, nf_msg_t *msg, const char *what)
{
    self->stats.malformed++;
    s_log_malformed(self, msg, what);
    s_answer_bad(self, sock, msg, NFLOW__STATUS_CODE__STATUS_BAD_REQUEST, what);
}

void
nf_pod_fail(nf_pod_t *self, uint64_t request_id, Nflow__StatusCode code, const char *fmt, ...)
{
    char text[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    self->stats.errors++;
    if (self->errors)
        nf_msg_reply_error(self->errors, NULL, request_id, code, text);
}

void
nf_pod_log(const nf_pod_t *self, const char *fmt, ...)
{
    char line[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    char now[32];
    fprintf(stderr, "%s [%s] %s\n", nf_iso_now(now, sizeof now), self->name, line);
}

/* ------------------------------------------------------------------ */
/* Wait loop                                                           */

static void
s_serve_control(nf_pod_t *self)
{
    for (int i = 0; i < S_CONTROL_BATCH && !self->stopping; i++) {
        if (!(zsock_events(self->control) & ZMQ_POLLIN))
            return;
        nf_msg_t msg;
        int rc = nf_msg_recv(self->control, &msg);
        if (rc == NF_EIO) {
            nf_msg_clear(&msg);
            return;
        }
        if (rc != NF_OK)
            nf_pod_malformed(self, self->control, &msg, rc);
        else if (msg.env->body_case != NF_BODY_CONTROL) {
            char what[96];
            snprintf(what, sizeof what, "wrong body for the control socket: %s",
                     nf_msg_body_name(msg.env->body_case));
            nf_pod_reject(self, self->control, &msg, what);
        }
        else
            nf_pod_control(self, self->control, msg.routing, msg.env);
        nf_msg_clear(&msg);
    }
}

int
nf_pod_wait(nf_pod_t *self, int timeout_ms)
{
    zmq_pollitem_t items[S_MAX_SOCKS + 1];
    size_t map[S_MAX_SOCKS + 1];
    uint64_t start = nf_now_us();
    memset(self->readable, 0, sizeof self->readable);
    while (!self->stopping) {
        if (zsys_interrupted) {
            self->stopping = true;
            break;
        }
        size_t n = 0;
        if (self->control) {
            items[n] = (zmq_pollitem_t) {zsock_resolve(self->control), 0, ZMQ_POLLIN, 0};
            map[n++] = SIZE_MAX;
        }
        for (size_t i = 0; i < self->nsocks; i++)
            if (self->polled[i]) {
                items[n] = (zmq_pollitem_t) {zsock_resolve(self->socks[i]), 0, ZMQ_POLLIN, 0};
                map[n++] = i;
            }
        /* Poll in slices of at most S_SIGNAL_SLICE_MS: a signal that lands
           between the zsys_interrupted check and zmq_poll would otherwise
           not interrupt an unbounded wait, and the pod would miss SIGTERM. */
        long wait = S_SIGNAL_SLICE_MS;
        if (timeout_ms >= 0) {
            uint64_t spent = (nf_now_us() - start) / 1000;
            long left = spent >= (uint64_t) timeout_ms ? 0 : (long) (timeout_ms - spent);
            if (left < wait)
                wait = left;
        }
        int rc = zmq_poll(items, (int) n, wait);
        if (rc < 0) {
            if (zmq_errno() == EINTR) {
                if (zsys_interrupted)
                    self->stopping = true;
                continue;
            }
            nf_pod_log(self, "poll failed: %s", zmq_strerror(zmq_errno()));
            self->stopping = true;
            break;
        }
        int ready = 0;
        bool control = false;
        for (size_t j = 0; j < n; j++) {
            if (!(items[j].revents & ZMQ_POLLIN))
                continue;
            if (map[j] == SIZE_MAX)
                control = true;
            else {
                self->readable[map[j]] = true;
                ready++;
            }
        }
        if (control)
            s_serve_control(self);
        if (ready)
            return self->stopping ? 0 : ready;
        if (timeout_ms >= 0 && (nf_now_us() - start) / 1000 >= (uint64_t) timeout_ms)
            return 0;
    }
    return 0;
}

int
nf_pod_wait_until(nf_pod_t *self, uint64_t due_us, int max_ms)
{
    uint64_t now = nf_now_us();
    int wait = max_ms;
    if (due_us <= now)
        wait = 0;
    else if (due_us != UINT64_MAX && (due_us - now) / 1000 + 1 < (uint64_t) max_ms)
        wait = (int) ((due_us - now) / 1000 + 1);
    return nf_pod_wait(self, wait);
}

static int
s_drain(nf_pod_t *self, zsock_t *sock, int max, nf_pod_handler_fn *handle, void *arg, bool raw)
{
    int n = 0;
    while (n < max && (zsock_events(sock) & ZMQ_POLLIN)) {
        nf_msg_t msg;
        int rc = raw ? nf_msg_recv_raw(sock, &msg) : nf_msg_recv(sock, &msg);
        uint64_t recv_us = nf_wall_us();
        if (rc == NF_OK)
            handle(arg, &msg, recv_us);
        else if (rc != NF_EIO)
            nf_pod_malformed(self, sock, &msg, rc);
        nf_msg_clear(&msg);
        if (rc == NF_EIO)
            break;          /* nothing there after all (nf_msg_recv) */
        n++;
    }
    return n;
}

int
nf_pod_drain(nf_pod_t *self, zsock_t *sock, int max, nf_pod_handler_fn *handle, void *arg)
{
    return s_drain(self, sock, max, handle, arg, false);
}

int
nf_pod_drain_raw(nf_pod_t *self, zsock_t *sock, int max, nf_pod_handler_fn *handle, void *arg)
{
    return s_drain(self, sock, max, handle, arg, true);
}

bool
nf_pod_readable(const nf_pod_t *self, zsock_t *sock)
{
    for (size_t i = 0; i < self->nsocks; i++)
        if (self->socks[i] == sock)
            return self->readable[i];
    return false;
}

const nf_keys_t *
nf_pod_keys(const nf_pod_t *self)
{
    return self->ring;
}

uint64_t
nf_pod_fingerprint(const nf_pod_t *self)
{
    return self->fingerprint;
}

const char *
nf_pod_canon(const nf_pod_t *self)
{
    return self->canon;
}

bool
nf_pod_stopping(const nf_pod_t *self)
{
    return self->stopping || zsys_interrupted;
}


void
nf_pod_on_command(nf_pod_t *self, nf_pod_command_fn fn, void *arg)
{
    self->command_fn = fn;
    self->command_arg = arg;
}
