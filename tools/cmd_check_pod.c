/*  nflow check-pod: drive an executor written in any language through the
    flow protocol (proto/README.md) and say, check by check, whether it
    keeps the contract.

      nflow check-pod [--dim D] [--role encoder] [--timeout-ms T] -- COMMAND...

    check-pod picks free loopback endpoints, binds a PULL for the pod's
    --out and one for its --errors, starts COMMAND with --name, --in, --out,
    --errors, --control and --dim appended (and the same values as NFLOW_*
    environment variables), then talks to it as the flow would: PUSH to its
    --in, DEALER to its --control.  It prints `PASS name` or `FAIL name: why`
    per check (`SKIP name: why` where one does not apply) and a last line
    `check-pod: N checks passed, M failed`; the exit status is 0 only when
    every check passed (2 on a usage error).
    If the pod does not start or dies, that check fails with its exit
    status and the run stops.  The pod's own output goes to stderr.        */
#include "nflow.h"
#include "args.h"

#include "nf_error.h"
#include "nf_expand.h"
#include "nf_msg.h"
#include "nf_podspec.h"
#include "nf_socket.h"
#include "nf_limits.h"
#include "nf_sys.h"

#include <assert.h>
#include <czmq.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define S_MAX_DOCS 8
#define S_EXIT_MS 2000          /* TERMINATE -> the process must be gone by then */
#define S_MAX_SOCKS 8           /* sockets of the checked role */
#define S_DROP_MS 300           /* how long "nothing arrived" is waited for */
#define S_SIMILAR_MIN_DIM 16    /* below it, hashing collisions decide similarity */

typedef struct {
    int dim;
    int timeout_ms;             /* for every answer the pod owes */
    char *const *command;       /* the pod's argv (NULL-terminated) */
    const nf_podspec_t *spec;   /* the role checked */
    char name[32];              /* --name given to the pod */
    size_t nsocks;              /* the role's sockets (nf_podspec), each played */
    const char *opt[S_MAX_SOCKS];   /* by one socket of ours: its option, */
    char ep[S_MAX_SOCKS][64];       /* the endpoint the pod gets, */
    zsock_t *sock[S_MAX_SOCKS];     /* and our socket */
    pid_t pid;
    bool exited;
    int wstatus;
    zsock_t *in;                /* PUSH, connected to the pod's --in */
    zsock_t *out;               /* PULL, bound: the pod's --out */
    zsock_t *errors;            /* PULL, bound: the pod's --errors */
    zsock_t *control;           /* DEALER, connected to the pod's --control */
    uint64_t served, errors_n, malformed;   /* the last STATUS counters */
    int waited_ms;              /* the timeout of the last s_await */
    uint64_t next_id;
    int passed, failed;
    bool stop;                  /* the pod is gone (or we were interrupted) */
} s_check_t;

/* A document to send: text and/or vector (little-endian float32 bytes). */
typedef struct {
    const char *id;
    const char *text;
    const void *vec;
    size_t vec_bytes;
} s_doc_t;

static void
s_pass(s_check_t *c, const char *name)
{
    c->passed++;
    printf("PASS %s\n", name);
    fflush(stdout);
}

static void s_fail(s_check_t *c, const char *name, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
s_fail(s_check_t *c, const char *name, const char *fmt, ...)
{
    va_list ap;
    c->failed++;
    printf("FAIL %s: ", name);
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    printf("\n");
    fflush(stdout);
}

/* ---- the child process ------------------------------------------------ */

/* True once the pod has exited (reaped; status in c->wstatus). */
static bool
s_gone(s_check_t *c)
{
    if (!c->exited && c->pid > 0 && waitpid(c->pid, &c->wstatus, WNOHANG) == c->pid)
        c->exited = true;
    return c->exited;
}

static const char *
s_exit_text(s_check_t *c, char *buf, size_t size)
{
    if (WIFEXITED(c->wstatus))
        snprintf(buf, size, "the pod exited with status %d", WEXITSTATUS(c->wstatus));
    else if (WIFSIGNALED(c->wstatus))
        snprintf(buf, size, "the pod was killed by signal %d (%s)", WTERMSIG(c->wstatus),
                 strsignal(WTERMSIG(c->wstatus)));
    else
        snprintf(buf, size, "the pod stopped (wait status %d)", c->wstatus);
    return buf;
}

/* Start the pod: its command with --KEY VALUE appended for each option and
   the same options as NFLOW_KEY in its environment (replacing inherited
   ones).  Everything is built before fork; the child only execs. */
static int
s_spawn(s_check_t *c)
{
    extern char **environ;
    char dim[16];
    snprintf(dim, sizeof dim, "%d", c->dim);
    /* name, every socket of the role, dim; replica in the environment only */
    const char *opts[S_MAX_SOCKS + 3][2] = {{"name", c->name}};
    size_t nopt = 1;
    for (size_t i = 0; i < c->nsocks; i++, nopt++) {
        opts[nopt][0] = c->opt[i];
        opts[nopt][1] = c->ep[i];
    }
    opts[nopt][0] = "dim";
    opts[nopt++][1] = dim;
    opts[nopt][0] = "replica";
    opts[nopt++][1] = "0";
    enum { NOPT = S_MAX_SOCKS + 3 };
    size_t NARG = nopt - 1;
    size_t ncmd = 0, nenv = 0;
    while (c->command[ncmd])
        ncmd++;
    while (environ[nenv])
        nenv++;
    char **argv = calloc(ncmd + 2 * NARG + 1, sizeof *argv);
    char **envp = calloc(nenv + nopt + 1, sizeof *envp);
    char flag[NOPT][32], var[NOPT][128];
    if (!argv || !envp) {
        free(argv);
        free(envp);
        return nf_error_set(NF_ENOMEM, "check-pod: out of memory");
    }
    memcpy(argv, c->command, ncmd * sizeof *argv);
    size_t k = 0;
    for (size_t i = 0; i < nopt; i++) {
        char name[64];
        snprintf(flag[i], sizeof flag[i], "--%s", opts[i][0]);
        snprintf(var[i], sizeof var[i], "%s=%s",
                 nf_podspec_env_name(opts[i][0], name, sizeof name), opts[i][1]);
        envp[k++] = var[i];
        if (i < NARG) {
            argv[ncmd + 2 * i] = flag[i];
            argv[ncmd + 2 * i + 1] = (char *) opts[i][1];
        }
    }
    for (size_t e = 0; e < nenv; e++) {
        bool ours = false;
        for (size_t i = 0; i < nopt && !ours; i++) {
            size_t name_len = (size_t) (strchr(var[i], '=') - var[i]) + 1;
            ours = !strncmp(environ[e], var[i], name_len);
        }
        if (!ours)
            envp[k++] = environ[e];
    }
    fflush(NULL);
    c->pid = fork();
    if (c->pid == 0) {
        /* Own process group (so the whole pod can be stopped), no stdin,
           its stdout on our stderr so that our stdout is only the checks. */
        setpgid(0, 0);
        int devnull = open("/dev/null", O_RDONLY);
        if (devnull >= 0)
            dup2(devnull, 0);
        dup2(2, 1);
        execvpe(argv[0], argv, envp);
        dprintf(2, "check-pod: cannot run %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    int err = errno;
    if (c->pid > 0)
        setpgid(c->pid, c->pid);
    free(argv);
    free(envp);
    return c->pid > 0 ? NF_OK : nf_error_set(NF_EIO, "check-pod: fork: %s", strerror(err));
}

/* Stop the pod if it still runs: SIGTERM to its group, SIGKILL after 1 s. */
static void
s_reap(s_check_t *c)
{
    if (c->pid <= 0 || s_gone(c))
        return;
    kill(-c->pid, SIGTERM);
    for (int i = 0; i < 100 && !s_gone(c); i++)
        zclock_sleep(10);
    if (!s_gone(c)) {
        kill(-c->pid, SIGKILL);
        if (waitpid(c->pid, &c->wstatus, 0) == c->pid)
            c->exited = true;
    }
}

/* ---- sending and receiving -------------------------------------------- */

/* Receive, from sock, the message answering request id within timeout_ms
   (other messages are skipped).  NF_OK with msg filled (caller clears it),
   NF_ETIMEOUT, NF_EUNAVAIL when the pod is gone, NF_EPROTO when the pod
   sent a frame that is not a valid message (message in nf_error_msg). */
static int
s_await(s_check_t *c, zsock_t *sock, uint64_t id, int timeout_ms, nf_msg_t *msg)
{
    uint64_t deadline = nf_now_us() + (uint64_t) timeout_ms * 1000u;
    memset(msg, 0, sizeof *msg);
    c->waited_ms = timeout_ms;
    for (;;) {
        uint64_t now = nf_now_us();
        if (zsys_interrupted) {
            c->stop = true;
            return nf_error_set(NF_EUNAVAIL, "interrupted");
        }
        zmq_pollitem_t item = {zsock_resolve(sock), 0, ZMQ_POLLIN, 0};
        long wait_ms = now >= deadline ? 0 : (long) ((deadline - now) / 1000u);
        int n = zmq_poll(&item, 1, wait_ms > 50 ? 50 : wait_ms);
        if (n > 0) {
            int rc = nf_msg_recv(sock, msg);
            if (rc == NF_EIO && zmq_errno() == EAGAIN) {    /* nothing after all */
                nf_msg_clear(msg);
                continue;
            }
            if (rc != NF_OK) {
                char why[512];
                snprintf(why, sizeof why, "%s", nf_error_msg());
                nf_msg_clear(msg);
                return nf_error_set(NF_EPROTO, "the pod sent a bad frame: %s", why);
            }
            if (msg->env->request_id == id)
                return NF_OK;
            nf_msg_clear(msg);
            if (nf_now_us() < deadline)
                continue;       /* else a pod flooding other answers still times out */
        }
        if (s_gone(c)) {
            c->stop = true;
            return NF_EUNAVAIL;
        }
        if (now >= deadline)
            return NF_ETIMEOUT;
    }
}

/* FAIL name because waiting for what failed with rc (from s_await). */
static void
s_fail_rc(s_check_t *c, const char *name, int rc, const char *what)
{
    char exit_text[96];
    if (rc == NF_ETIMEOUT)
        s_fail(c, name, "no %s within %d ms", what, c->waited_ms);
    else if (rc == NF_EUNAVAIL && c->exited)
        s_fail(c, name, "%s before the %s", s_exit_text(c, exit_text, sizeof exit_text), what);
    else
        s_fail(c, name, "%s", nf_error_msg());
}

/* Send a control command and wait up to timeout_ms; on NF_OK *reply holds
   the pod's answer (an message with the same request id). */
static int
s_control(s_check_t *c, Nflow__ControlCommand command, int timeout_ms, nf_msg_t *reply)
{
    nf_env_t env;
    Nflow__Control control = NFLOW__CONTROL__INIT;
    nf_env_init(&env);
    env.request_id = c->next_id++;
    control.command = command;
    env.body_case = NF_BODY_CONTROL;
    env.control = &control;
    int rc = nf_msg_send(c->control, NULL, &env, 0);
    if (rc != NF_OK)
        return rc;
    return s_await(c, c->control, env.request_id, timeout_ms, reply);
}

/* Send an index (or, search) request with docs, columnar (their vectors,
   when the first has one, make the block; dim from its bytes); returns its
   id or 0.  version != NF_PROTOCOL_VERSION packs the header by hand
   (nf_msg_send would fix the version); version 1 sends a version-1
   Envelope (one frame: version, request id, an empty index body). */
static uint64_t
s_request(s_check_t *c, bool search, const s_doc_t *docs, size_t ndocs, uint32_t version)
{
    nf_env_t env;
    Nflow__IndexBatch index;
    Nflow__SearchRequest query = NFLOW__SEARCH_REQUEST__INIT;
    Nflow__Hop hop = NFLOW__HOP__INIT, *hopp = &hop;
    char *texts[S_MAX_DOCS];
    nf_batch_t batch = {0};
    assert(ndocs <= S_MAX_DOCS);

    nf_env_init(&env);
    env.request_id = c->next_id++;
    env.deadline_us = nf_now_us() + 60u * 1000000u;
    if (version == 1) {
        uint8_t v1[24], *p = v1;
        *p++ = 0x08;                            /* field 1 (version), varint */
        *p++ = 1;
        *p++ = 0x10;                            /* field 2 (request_id), varint */
        for (uint64_t id = env.request_id; ; id >>= 7) {
            *p++ = (uint8_t) ((id & 0x7f) | (id >= 0x80 ? 0x80 : 0));
            if (id < 0x80)
                break;
        }
        *p++ = 0x52;                            /* field 10 (index), empty message */
        *p++ = 0;
        return zmq_send(zsock_resolve(c->in), v1, (size_t) (p - v1), 0) >= 0 ? env.request_id
                                                                              : 0;
    }
    hop.pod = (char *) "check-pod";
    hop.recv_us = hop.send_us = nf_wall_us();
    env.n_route = 1;
    env.route = &hopp;
    uint32_t dim = ndocs && docs[0].vec ? (uint32_t) (docs[0].vec_bytes / 4) : 0;
    nf_batch_reset(&batch, dim);
    for (size_t i = 0; i < ndocs; i++) {
        const char *text = docs[i].text ? docs[i].text : "";
        texts[i] = (char *) text;
        if (search)     /* the query vectors go to the batch's block */
            nf_batch_add(&batch, "", 0, docs[i].vec, NULL, 0, NULL, NULL, 0);
        else
            nf_batch_add(&batch, docs[i].id, strlen(docs[i].id), docs[i].vec, text,
                         strlen(text), NULL, NULL, 0);
    }
    nf_batch_view(&batch, &index);
    if (search) {
        query.count = (uint32_t) ndocs;
        bool any_text = false;
        for (size_t i = 0; i < ndocs; i++)
            any_text |= *texts[i] != 0;
        query.n_texts = any_text ? ndocs : 0;
        query.texts = texts;
        query.dim = index.dim;
        query.vectors = index.vectors;
        query.top_k = 5;
        env.body_case = NF_BODY_SEARCH;
        env.search = &query;
    } else {
        env.body_case = NF_BODY_INDEX;
        env.index = &index;
    }
    uint64_t id = 0;
    if (version == NF_PROTOCOL_VERSION)
        id = nf_msg_send(c->in, NULL, &env, 0) == NF_OK ? env.request_id : 0;
    else {
        Nflow__Header h = NFLOW__HEADER__INIT;
        h.version = version;
        h.request_id = env.request_id;
        h.body = (Nflow__BodyKind) env.body_case;
        h.time_left_us = 60u * 1000000u;
        uint8_t hbuf[128];
        size_t hlen = nflow__header__pack(&h, hbuf);
        size_t blen = search ? nflow__search_request__get_packed_size(&query)
                             : nflow__index_batch__get_packed_size(&index);
        uint8_t *body = malloc(blen ? blen : 1);
        if (body) {
            if (search)
                nflow__search_request__pack(&query, body);
            else
                nflow__index_batch__pack(&index, body);
            void *handle = zsock_resolve(c->in);
            if (zmq_send(handle, hbuf, hlen, ZMQ_SNDMORE) >= 0
                && zmq_send(handle, body, blen, 0) >= 0)
                id = env.request_id;
            free(body);
        }
    }
    nf_batch_free(&batch);
    return id;
}

/* ---- vectors ---------------------------------------------------------- */

static float
s_f32(const uint8_t *p)
{
    uint32_t u = (uint32_t) p[0] | (uint32_t) p[1] << 8 | (uint32_t) p[2] << 16
                 | (uint32_t) p[3] << 24;
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

/* Dot product of two encoded vectors of dim floats. */
static double
s_dot(const ProtobufCBinaryData *a, const ProtobufCBinaryData *b, int dim)
{
    double sum = 0;
    for (int i = 0; i < dim; i++)
        sum += (double) s_f32(a->data + 4 * i) * (double) s_f32(b->data + 4 * i);
    return sum;
}

/* One forwarded document (or query), read from the columns. */
typedef struct {
    char id[NF_ID_MAX + 1];
    char text[200];
    ProtobufCBinaryData vector;
} s_got_t;

/* How many documents (or queries) a forwarded request holds, or -1 if it
   is not a request of that kind. */
static long
s_count(const nf_env_t *env, bool search)
{
    if (search && env->body_case == NF_BODY_SEARCH)
        return env->search->count;
    if (!search && env->body_case == NF_BODY_INDEX)
        return env->index->count;
    return -1;
}

static void
s_got(const nf_env_t *env, bool search, size_t i, s_got_t *g)
{
    size_t len;
    const char *p;
    uint32_t dim;
    const ProtobufCBinaryData *block;
    memset(g, 0, sizeof *g);
    if (search) {
        p = i < env->search->n_texts ? env->search->texts[i] : "";
        len = strlen(p);
        dim = env->search->dim;
        block = &env->search->vectors;
    } else {
        const char *id = nf_batch_id(env->index, i, &len);
        memcpy(g->id, id, len < NF_ID_MAX ? len : NF_ID_MAX);
        p = nf_batch_text(env->index, i, &len);
        dim = env->index->dim;
        block = &env->index->vectors;
    }
    memcpy(g->text, p, len < sizeof g->text - 1 ? len : sizeof g->text - 1);
    if (block->len) {
        g->vector.data = block->data + i * (size_t) dim * 4;
        g->vector.len = (size_t) dim * 4;
    }
}

/* ---- the checks ------------------------------------------------------- */

/* What is wrong with a forwarded message as a whole (false: nothing). */
static bool
s_env_wrong(const nf_env_t *env, bool search, size_t ndocs, char *why, size_t size)
{
    long n = s_count(env, search);
    if (n < 0)
        snprintf(why, size, "the forwarded body is not %s", search ? "a search" : "an index");
    else if ((size_t) n != ndocs)
        snprintf(why, size, "%ld documents forwarded, %zu sent", n, ndocs);
    else if (env->n_route != 2 || !*env->route[1]->pod)
        snprintf(why, size, "route has %zu hops, expected 2 (the sender's, then one naming "
                 "the pod)", env->n_route);
    else if (env->deadline_us == 0)
        snprintf(why, size, "time_left_us was dropped");
    else if (env->status && env->status->code != NFLOW__STATUS_CODE__STATUS_OK)
        snprintf(why, size, "forwarded with error status %d", (int) env->status->code);
    else
        return false;
    return true;
}

/* What is wrong with one forwarded document (false: nothing).  It must
   keep its id and text and carry dim floats: the very bytes it was sent
   with, or, when the pod encoded its text, a vector of unit norm. */
static bool
s_doc_wrong(const s_check_t *c, const s_doc_t *sent, const s_got_t *got, bool search,
            char *why, size_t size)
{
    const ProtobufCBinaryData *v = &got->vector;
    double norm = v->len == (size_t) c->dim * 4 ? sqrt(s_dot(v, v, c->dim)) : 0;
    if (!search && strcmp(got->id, sent->id) != 0)
        snprintf(why, size, "document '%.100s' came back as '%.100s'", sent->id, got->id);
    else if (v->len != (size_t) c->dim * 4)
        snprintf(why, size, "'%s': vector of %zu bytes, expected %d (dim %d x 4)", sent->id,
                 v->len, c->dim * 4, c->dim);
    else if (sent->vec && memcmp(v->data, sent->vec, v->len) != 0)
        snprintf(why, size, "'%s': its own vector was changed", sent->id);
    else if (!sent->vec && fabs(norm - 1.0) > 1e-3)
        snprintf(why, size, "'%s': vector norm %.6f, expected 1", sent->id, norm);
    else if (sent->text && strncmp(got->text, sent->text, sizeof got->text - 1) != 0)
        snprintf(why, size, "'%s': its text was changed", sent->id);
    else
        return false;
    return true;
}

/* Send docs as an index (or search) request and check what the pod
   forwards on --out (same id, see s_env_wrong and s_doc_wrong).  On
   success *fwd holds the forwarded message (caller clears it). */
static bool
s_forwarded(s_check_t *c, const char *name, bool search, const s_doc_t *docs, size_t ndocs,
            nf_msg_t *fwd)
{
    char why[256];
    uint64_t id = s_request(c, search, docs, ndocs, NF_PROTOCOL_VERSION);
    if (!id) {
        s_fail(c, name, "could not send the request to --in: %s", nf_error_msg());
        return false;
    }
    int rc = s_await(c, c->out, id, c->timeout_ms, fwd);
    if (rc != NF_OK) {
        s_fail_rc(c, name, rc, "request on --out");
        return false;
    }
    bool wrong = s_env_wrong(fwd->env, search, ndocs, why, sizeof why);
    for (size_t i = 0; !wrong && i < ndocs; i++) {
        s_got_t got;
        s_got(fwd->env, search, i, &got);
        wrong = s_doc_wrong(c, &docs[i], &got, search, why, sizeof why);
    }
    if (wrong) {
        s_fail(c, name, "%s", why);
        nf_msg_clear(fwd);
    }
    return !wrong;
}

static void
s_check_ready(s_check_t *c, int arg)
{
    /* Starting an interpreter on a loaded machine may take a while. */
    int ready_ms = c->timeout_ms > NF_POD_READY_MS ? c->timeout_ms : NF_POD_READY_MS;
    nf_msg_t reply;
    int rc = s_control(c, NFLOW__CONTROL_COMMAND__CONTROL_PING, ready_ms, &reply);
    if (rc != NF_OK) {
        s_fail_rc(c, "ready", rc, "answer to PING");
        c->stop = true;     /* nothing else can be checked */
        return;
    }
    const Nflow__Control *ctl = reply.env->control;
    if (reply.env->body_case != NF_BODY_CONTROL || !ctl->ready)
        s_fail(c, "ready", "PING answered without control.ready = true");
    else if (strcmp(ctl->pod, c->name) != 0)
        s_fail(c, "ready", "PING answered with pod '%s', the pod was named '%s'", ctl->pod,
               c->name);
    else
        s_pass(c, "ready");
    nf_msg_clear(&reply);
}

/* STATUS answered; after the garbage checks, it must count malformed frames. */
static void
s_check_status(s_check_t *c, int after_garbage)
{
    const char *name = after_garbage ? "malformed_counted" : "status";
    nf_msg_t reply;
    int rc = s_control(c, NFLOW__CONTROL_COMMAND__CONTROL_STATUS, c->timeout_ms, &reply);
    if (rc != NF_OK)
        s_fail_rc(c, name, rc, "answer to STATUS");
    else if (reply.env->body_case != NF_BODY_CONTROL)
        s_fail(c, name, "STATUS answered without a control body");
    else if (reply.env->control->dim != (uint32_t) c->dim)
        s_fail(c, name, "STATUS reports dim %u, the pod was given --dim %d",
               reply.env->control->dim, c->dim);
    else if (after_garbage && reply.env->control->malformed == 0)
        s_fail(c, name, "STATUS shows malformed = 0 after garbage frames");
    else
        s_pass(c, name);
    nf_msg_clear(&reply);
}

static void
s_check_encodes(s_check_t *c, int search)
{
    const char *name = search ? "search_text" : "index_text";
    static const s_doc_t docs[] = {
        {"d1", "Hello world, this is nflow.", NULL, 0},
        {"d2", "Memory-mapped vector segments scanned with BLAS", NULL, 0},
        {"d3", "x", NULL, 0},
    };
    nf_msg_t fwd;
    if (s_forwarded(c, name, search, docs, search ? 1 : 3, &fwd)) {
        if (search && fwd.env->search->top_k != 5)
            s_fail(c, name, "top_k %u forwarded, 5 sent", fwd.env->search->top_k);
        else
            s_pass(c, name);
        nf_msg_clear(&fwd);
    }
}

static void
s_check_passthrough(s_check_t *c, int arg)
{
    size_t bytes = (size_t) c->dim * 4;
    float *v = malloc(2 * bytes);
    uint8_t *enc = malloc(2 * bytes);
    if (!v || !enc) {
        s_fail(c, "vector_passthrough", "out of memory");
    } else {
        for (int i = 0; i < c->dim; i++) {      /* not normalised on purpose */
            v[i] = (float) (i % 7) * 0.5f - 1.25f;
            v[c->dim + i] = (float) (i % 5) + 3.0f;
        }
        nf_vec_to_bytes(v, (uint32_t) (2 * c->dim), enc);
        s_doc_t docs[] = {
            {"v1", NULL, enc, bytes},
            {"v2", "a vector wins over the text", enc + bytes, bytes},
        };
        nf_msg_t fwd;
        if (s_forwarded(c, "vector_passthrough", false, docs, 2, &fwd)) {
            s_pass(c, "vector_passthrough");
            nf_msg_clear(&fwd);
        }
    }
    free(v);
    free(enc);
}

/* Did the pod pass request id on to --out (within S_DROP_MS)?  Read raw:
   a forwarded message counts whatever its version, and so does a frame
   that is no message at all (what else would it be?). */
static bool
s_leaked(s_check_t *c, uint64_t id)
{
    uint64_t deadline = nf_now_us() + S_DROP_MS * 1000u;
    for (;;) {
        uint64_t now = nf_now_us();
        if (now >= deadline)
            return false;
        zmq_pollitem_t item = {zsock_resolve(c->out), 0, ZMQ_POLLIN, 0};
        if (zmq_poll(&item, 1, (long) ((deadline - now) / 1000u) + 1) <= 0)
            continue;
        zmsg_t *msg = zmsg_recv(c->out);
        zframe_t *head = msg ? zmsg_first(msg) : NULL;    /* the header (any version) */
        Nflow__Header *h = head ? nflow__header__unpack(NULL, zframe_size(head),
                                                        zframe_data(head)) : NULL;
        bool ours = !h || h->request_id == id;
        if (h)
            nflow__header__free_unpacked(h, NULL);
        zmsg_destroy(&msg);
        if (ours)
            return true;
    }
}

/* A request the pod must fail on --errors with code (and not forward). */
static void
s_check_rejected(s_check_t *c, const char *name, bool search, const s_doc_t *doc,
                 Nflow__StatusCode code, const char *code_name)
{
    nf_msg_t err;
    uint64_t id = s_request(c, search, doc, 1, NF_PROTOCOL_VERSION);
    int rc = id ? s_await(c, c->errors, id, c->timeout_ms, &err) : NF_EIO;
    if (rc != NF_OK) {
        s_fail_rc(c, name, rc, "error on --errors");
        return;
    }
    const Nflow__Status *st = err.env->status;
    if (!st || st->code != code)
        s_fail(c, name, "status %d on --errors, expected %d (%s)", st ? (int) st->code : 0,
               (int) code, code_name);
    else if (!st->message || !*st->message)
        s_fail(c, name, "%s without a message saying what was wrong", code_name);
    else if (s_leaked(c, id))
        s_fail(c, name, "failed on --errors but ALSO forwarded to --out");
    else
        s_pass(c, name);
    nf_msg_clear(&err);
}

static void
s_check_bad_input(s_check_t *c, int arg)
{
    static const uint8_t v[12] = {0, 0, 0x80, 0x3f, 0, 0, 0, 0x40, 0, 0, 0x40, 0x40};
    const s_doc_t short_vec = {"short", NULL, v, c->dim == 3 ? 8 : 12};  /* 1, 2 (, 3) */
    const s_doc_t empty = {"empty", NULL, NULL, 0};
    const struct {
        const char *name;
        bool search;
        const s_doc_t *doc;
        Nflow__StatusCode code;
        const char *code_name;
    } bad[] = {
        {"bad_dim", false, &short_vec, NFLOW__STATUS_CODE__STATUS_BAD_DIM, "STATUS_BAD_DIM"},
        {"bad_dim_query", true, &short_vec, NFLOW__STATUS_CODE__STATUS_BAD_DIM, "STATUS_BAD_DIM"},
        {"no_text_no_vector", false, &empty, NFLOW__STATUS_CODE__STATUS_BAD_REQUEST,
         "STATUS_BAD_REQUEST"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0] && !c->stop; i++)
        s_check_rejected(c, bad[i].name, bad[i].search, bad[i].doc, bad[i].code,
                         bad[i].code_name);
}

/* Still serving: PING answered and a fresh index request forwarded. */
static bool
s_still_serving(s_check_t *c, const char *name)
{
    nf_msg_t reply, fwd;
    int rc = s_control(c, NFLOW__CONTROL_COMMAND__CONTROL_PING, c->timeout_ms, &reply);
    nf_msg_clear(&reply);
    if (rc != NF_OK) {
        s_fail_rc(c, name, rc, "answer to PING afterwards");
        return false;
    }
    s_doc_t doc = {"after", "still serving", NULL, 0};
    char sub[64];
    snprintf(sub, sizeof sub, "%s (a request afterwards)", name);
    if (!s_forwarded(c, sub, false, &doc, 1, &fwd))
        return false;
    nf_msg_clear(&fwd);
    return true;
}

/* A message of another protocol version is refused, never forwarded:
   version 99 (a header from the future) may be dropped or answered with
   an error; version 1 (one Envelope frame) must be answered on --errors
   with STATUS_BAD_VERSION. */
static void
s_check_version(s_check_t *c, int v1)
{
    const char *name = v1 ? "version_1" : "version_99";
    s_doc_t doc = {"v99", "from the future", NULL, 0};
    nf_msg_t err;
    memset(&err, 0, sizeof err);
    uint64_t id = s_request(c, false, &doc, 1, v1 ? 1 : 99);
    if (!id) {
        s_fail(c, name, "could not send the request to --in");
        return;
    }
    int rc = s_await(c, c->errors, id, c->timeout_ms < 1000 ? c->timeout_ms : 1000, &err);
    if (rc == NF_OK && (!err.env->status || err.env->status->code == NFLOW__STATUS_CODE__STATUS_OK))
        s_fail(c, name, "answered on --errors without an error status");
    else if (v1 && rc == NF_OK
             && err.env->status->code != NFLOW__STATUS_CODE__STATUS_BAD_VERSION)
        s_fail(c, name, "a version-1 message was answered with status %d, expected "
               "STATUS_BAD_VERSION", (int) err.env->status->code);
    else if (v1 && rc != NF_OK)
        s_fail_rc(c, name, rc, "STATUS_BAD_VERSION on --errors for a version-1 message");
    else if (rc != NF_OK && rc != NF_ETIMEOUT)      /* timeout: dropped, which is fine */
        s_fail_rc(c, name, rc, "error on --errors");
    else if (s_leaked(c, id))
        s_fail(c, name, "a version %d message was forwarded to --out", v1 ? 1 : 99);
    else if (s_still_serving(c, name))
        s_pass(c, name);
    nf_msg_clear(&err);
}

/* Wait for an error answer (request id 0, a status other than OK) on the
   control socket: what a pod owes a malformed frame sent there. */
static bool
s_error_answer(s_check_t *c, int timeout_ms, int *code)
{
    nf_msg_t reply;
    int rc = s_await(c, c->control, 0, timeout_ms, &reply);
    *code = rc == NF_OK && reply.env->status ? (int) reply.env->status->code : 0;
    nf_msg_clear(&reply);
    return rc == NF_OK && *code != NFLOW__STATUS_CODE__STATUS_OK;
}

static void
s_check_garbage(s_check_t *c, int control)
{
    const char *name = control ? "garbage_control" : "garbage_in";
    zsock_t *sock = control ? c->control : c->in;
    uint8_t junk[64];
    junk[0] = 0x0f;             /* field 1 with wire type 7: never a valid protobuf */
    for (size_t i = 1; i < sizeof junk; i++)
        junk[i] = (uint8_t) (random() & 0xff);
    static const char *what[] = {"random bytes", "an empty frame", "three frames"};
    for (int k = 0; k < 3; k++) {
        if (k == 0)
            zsock_send(sock, "b", junk, sizeof junk);
        else if (k == 1)
            zsock_send(sock, "b", junk, (size_t) 0);
        else
            zsock_send(sock, "bzb", junk, sizeof junk, junk, (size_t) 5);
        /* on the control socket (a ROUTER) the sender is known: it must be
           answered, with an error status */
        int code = 0;
        if (control && !s_error_answer(c, c->timeout_ms, &code)) {
            if (c->stop)
                s_fail(c, name, "the pod died after %s on --control", what[k]);
            else
                s_fail(c, name, "%s on --control: %s within %d ms (a ROUTER must answer "
                       "the sender of a malformed frame with STATUS_BAD_REQUEST)", what[k],
                       code ? "answered with status OK" : "no error answer", c->timeout_ms);
            return;
        }
    }
    if (s_still_serving(c, name))
        s_pass(c, name);
}

/* A control request sent the way a REQ socket sends it, with an empty
   delimiter frame before the header, is answered with the delimiter
   repeated; one sent without gets an answer without. */
static void
s_check_delimiter(s_check_t *c, int arg)
{
    for (int with = 1; with >= 0; with--) {
        nf_env_t env;
        Nflow__Control control = NFLOW__CONTROL__INIT;
        nf_env_init(&env);
        env.request_id = c->next_id++;
        control.command = NFLOW__CONTROL_COMMAND__CONTROL_PING;
        env.body_case = NF_BODY_CONTROL;
        env.control = &control;
        zmsg_t *msg = zmsg_new();
        Nflow__Header h = NFLOW__HEADER__INIT;
        h.version = NF_PROTOCOL_VERSION;
        h.request_id = env.request_id;
        h.body = NFLOW__BODY_KIND__BODY_CONTROL;
        size_t len = nflow__header__get_packed_size(&h);
        zframe_t *frame = zframe_new(NULL, len);
        nflow__header__pack(&h, zframe_data(frame));
        len = nflow__control__get_packed_size(&control);
        zframe_t *body = zframe_new(NULL, len);
        nflow__control__pack(&control, zframe_data(body));
        if (with)
            zmsg_addmem(msg, NULL, 0);
        zmsg_append(msg, &frame);
        zmsg_append(msg, &body);
        if (zmsg_send(&msg, c->control) != 0) {
            zmsg_destroy(&msg);
            s_fail(c, "control_delimiter", "could not send to --control");
            return;
        }
        /* raw frames of the answer with this id */
        uint64_t deadline = nf_now_us() + (uint64_t) c->timeout_ms * 1000u;
        zmsg_t *got = NULL;
        while (!got && nf_now_us() < deadline && !s_gone(c)) {
            zmq_pollitem_t item = {zsock_resolve(c->control), 0, ZMQ_POLLIN, 0};
            if (zmq_poll(&item, 1, 50) <= 0)
                continue;
            zmsg_t *m = zmsg_recv(c->control);
            size_t nf = m ? zmsg_size(m) : 0;
            zframe_t *head = nf >= 2 ? zmsg_first(m) : NULL;    /* header: last but one */
            for (size_t k = 1; head && k + 1 < nf; k++)
                head = zmsg_next(m);
            Nflow__Header *e = head ? nflow__header__unpack(NULL, zframe_size(head),
                                                            zframe_data(head)) : NULL;
            if (e && e->request_id == env.request_id)
                got = m;
            else
                zmsg_destroy(&m);
            if (e)
                nflow__header__free_unpacked(e, NULL);
        }
        if (!got) {
            s_fail(c, "control_delimiter", "no answer to a PING sent %s an empty delimiter "
                   "within %d ms", with ? "with" : "without", c->timeout_ms);
            return;
        }
        size_t frames = zmsg_size(got);
        bool empty_first = zframe_size(zmsg_first(got)) == 0;
        zmsg_destroy(&got);
        if (with && (frames != 3 || !empty_first)) {
            s_fail(c, "control_delimiter", "a PING sent after an empty delimiter frame was "
                   "answered in %zu frame(s) without it (a reply repeats the delimiter: "
                   "[identity][empty][header][body])", frames);
            return;
        }
        if (!with && frames != 2) {
            s_fail(c, "control_delimiter", "a PING sent without a delimiter was answered in %zu "
                   "frames (expected the header and the body)", frames);
            return;
        }
    }
    s_pass(c, "control_delimiter");
}

/* STATUS counters into c->served, ...; false (and FAIL name) when none came. */
static bool
s_counters(s_check_t *c, const char *name)
{
    nf_msg_t reply;
    int rc = s_control(c, NFLOW__CONTROL_COMMAND__CONTROL_STATUS, c->timeout_ms, &reply);
    if (rc != NF_OK || reply.env->body_case != NF_BODY_CONTROL) {
        if (rc == NF_OK)
            s_fail(c, name, "STATUS answered without a control body");
        else
            s_fail_rc(c, name, rc, "answer to STATUS");
        nf_msg_clear(&reply);
        return false;
    }
    c->served = reply.env->control->served;
    c->errors_n = reply.env->control->errors;
    c->malformed = reply.env->control->malformed;
    nf_msg_clear(&reply);
    return true;
}

/* The counters after a known sequence: two requests passed on (served
   +2), one failed for its content (errors +1), a frame that is no message
   and a version-99 message (malformed +2, and not errors). */
static void
s_check_counters(s_check_t *c, int arg)
{
    const char *name = "counters";
    if (!s_counters(c, name))
        return;
    uint64_t s0 = c->served, e0 = c->errors_n, m0 = c->malformed;
    static const uint8_t v[4] = {0, 0, 0x80, 0x3f};
    s_doc_t good = {"count-1", "counted once", NULL, 0};
    s_doc_t query = {"count-2", "counted twice", NULL, 0};
    s_doc_t bad = {"count-3", NULL, v, sizeof v};       /* wrong dim unless dim 1 */
    s_doc_t future = {"count-4", "from the future", NULL, 0};
    nf_msg_t m;
    uint64_t id = s_request(c, false, &good, 1, NF_PROTOCOL_VERSION);
    bool ok = id && s_await(c, c->out, id, c->timeout_ms, &m) == NF_OK;
    nf_msg_clear(&m);
    id = ok ? s_request(c, true, &query, 1, NF_PROTOCOL_VERSION) : 0;
    ok = id && s_await(c, c->out, id, c->timeout_ms, &m) == NF_OK;
    nf_msg_clear(&m);
    uint64_t want_e = c->dim == 1 ? 0 : 1;
    if (ok && want_e) {
        id = s_request(c, false, &bad, 1, NF_PROTOCOL_VERSION);
        ok = id && s_await(c, c->errors, id, c->timeout_ms, &m) == NF_OK;
        nf_msg_clear(&m);
    }
    if (!ok) {
        s_fail(c, name, "the pod did not answer the counted requests within %d ms",
               c->timeout_ms);
        return;
    }
    uint8_t junk[8] = {0x0f, 1, 2, 3, 4, 5, 6, 7};
    zsock_send(c->in, "b", junk, sizeof junk);
    (void) s_request(c, false, &future, 1, 99);
    /* the frames are read on --in, STATUS on --control: ask until the two
       malformed frames show (or the time is up), then compare exactly */
    uint64_t deadline = nf_now_us() + (uint64_t) c->timeout_ms * 1000u;
    do {
        if (!s_counters(c, name))
            return;
        if (c->malformed - m0 >= 2)
            break;
        zclock_sleep(20);
    } while (nf_now_us() < deadline);
    uint64_t ds = c->served - s0, de = c->errors_n - e0, dm = c->malformed - m0;
    if (ds != 2 || de != want_e || dm != 2)
        s_fail(c, name, "after 2 requests passed on, %d failed (bad dim) and 2 malformed frames "
               "(junk, version 99), STATUS counted served +%llu, errors +%llu, malformed +%llu "
               "(expected +2, +%d, +2: a malformed frame counts as malformed only)",
               (int) want_e, (unsigned long long) ds, (unsigned long long) de,
               (unsigned long long) dm, (int) want_e);
    else
        s_pass(c, name);
}

static void
s_check_deterministic(s_check_t *c, int arg)
{
    s_doc_t doc = {"same", "The same text, encoded twice", NULL, 0};
    nf_msg_t one, two;
    if (!s_forwarded(c, "deterministic", false, &doc, 1, &one))
        return;
    if (s_forwarded(c, "deterministic", false, &doc, 1, &two)) {
        s_got_t ga, gb;
        s_got(one.env, false, 0, &ga);
        s_got(two.env, false, 0, &gb);
        const ProtobufCBinaryData *a = &ga.vector, *b = &gb.vector;
        if (memcmp(a->data, b->data, a->len) != 0)
            s_fail(c, "deterministic", "the same text gave two different vectors");
        else
            s_pass(c, "deterministic");
        nf_msg_clear(&two);
    }
    nf_msg_clear(&one);
}

static void
s_check_similar(s_check_t *c, int arg)
{
    /* In each triple, the first two share most words; the third is unrelated. */
    static const s_doc_t docs[] = {
        {"a1", "the quick brown fox jumps over the lazy dog", NULL, 0},
        {"a2", "a quick brown fox jumped over the lazy dogs", NULL, 0},
        {"a3", "quarterly earnings beat analyst expectations", NULL, 0},
        {"b1", "neural search with sharded vector indexes", NULL, 0},
        {"b2", "sharded vector indexes for neural search engines", NULL, 0},
        {"b3", "my grandmother bakes an apple pie every sunday", NULL, 0},
    };
    nf_msg_t fwd;
    if (c->dim < S_SIMILAR_MIN_DIM) {
        printf("SKIP similar: dim %d is too small to tell texts apart\n", c->dim);
        return;
    }
    if (!s_forwarded(c, "similar", false, docs, 6, &fwd))
        return;
    s_got_t d[6];
    for (size_t i = 0; i < 6; i++)
        s_got(fwd.env, false, i, &d[i]);
    bool ok = true;
    for (int t = 0; t < 6 && ok; t += 3) {
        double near = s_dot(&d[t].vector, &d[t + 1].vector, c->dim);
        double far = s_dot(&d[t].vector, &d[t + 2].vector, c->dim);
        if (!(near > far)) {
            s_fail(c, "similar", "cos('%s','%s') = %.3f is not above cos('%s','%s') = %.3f",
                   d[t].id, d[t + 1].id, near, d[t].id, d[t + 2].id, far);
            ok = false;
        }
    }
    if (ok)
        s_pass(c, "similar");
    nf_msg_clear(&fwd);
}

static void
s_check_terminate(s_check_t *c, int arg)
{
    nf_msg_t reply;
    char why[256];
    int rc = s_control(c, NFLOW__CONTROL_COMMAND__CONTROL_TERMINATE, c->timeout_ms, &reply);
    nf_msg_clear(&reply);
    if (rc != NF_OK) {
        s_fail_rc(c, "terminate", rc, "answer to TERMINATE");
        return;
    }
    uint64_t until = nf_now_us() + S_EXIT_MS * 1000u;
    while (!s_gone(c) && nf_now_us() < until)
        zclock_sleep(10);
    if (!s_gone(c)) {
        s_fail(c, "terminate", "still running %d ms after TERMINATE (killed)", S_EXIT_MS);
        s_reap(c);
    } else if (!WIFEXITED(c->wstatus) || WEXITSTATUS(c->wstatus) != 0) {
        s_fail(c, "terminate", "%s, expected a clean exit", s_exit_text(c, why, sizeof why));
    } else {
        s_pass(c, "terminate");
    }
}

/* ---- the command ------------------------------------------------------ */

/* The --help text above the options: what is run, with which options (the
   encoder's sockets, from the socket table), and the checks. */
static void
s_summary(char *buf, size_t size)
{
    const nf_podspec_t *spec = nf_podspec_find("encoder");
    size_t at = (size_t) snprintf(buf, size,
        "Start COMMAND as a pod on free loopback endpoints and drive it through the\n"
        "flow protocol (proto/README.md).\n"
        "COMMAND gets --name,");
    for (size_t i = 0; i < nf_podspec_nsockets(spec) && at < size; i++)     /* the socket table's */
        at += (size_t) snprintf(buf + at, size - at, " --%s",
                                nf_podspec_socket_at(spec, i)->option);
    if (at < size)
        snprintf(buf + at, size - at, " and --dim appended, and\n"
        "the same values as NFLOW_NAME, NFLOW_IN, ...  check-pod plays the peer of each\n"
        "socket.  Options after COMMAND are COMMAND's.\n"
        "Prints PASS/FAIL per check; exits 0 only if every check passed.  Checks:\n"
        "ready status index_text search_text vector_passthrough bad_dim bad_dim_query\n"
        "no_text_no_vector version_99 version_1 garbage_in garbage_control\n"
        "malformed_counted control_delimiter counters deterministic similar (skipped\n"
        "below dim %d) terminate\n"
        "A Python executor finds nflow_pb2 in $NFLOW_PY_PROTO_DIR, which check-pod\n"
        "sets as `nflow up` does when it is not set (<build>/pods/python).",
        S_SIMILAR_MIN_DIM);
}

/* check-pod plays the peer of every socket of the role, as the socket
   table (nf_podspec) gives them: it connects a PUSH to what the pod binds
   as PULL and a DEALER to what it binds as ROUTER (--control), and binds a
   PULL for what the pod connects a PUSH to (--out, --errors); every one on
   a free loopback port, made by the socket factory. */
static int
s_sockets(s_check_t *c)
{
    size_t n = nf_podspec_nsockets(c->spec);
    if (n > S_MAX_SOCKS)
        return nf_error_set(NF_EINVAL, "%s has %zu sockets, check-pod plays at most %d",
                            c->spec->uses, n, S_MAX_SOCKS);
    /* our binds first, then free ports for the pod's: a port we bind on
       "*" must not be one we have just told the pod to bind */
    for (size_t k = 0; k < 2 * n; k++) {
        size_t i = k % n;
        const nf_sockspec_t *row = nf_podspec_socket_at(c->spec, i);
        if (row->bind != (k >= n))
            continue;
        int type = row->bind && row->type == NF_ZMQ_PULL ? ZMQ_PUSH
                 : row->bind && row->type == NF_ZMQ_ROUTER ? ZMQ_DEALER
                 : !row->bind && row->type == NF_ZMQ_PUSH ? ZMQ_PULL : -1;
        if (type < 0)
            return nf_error_set(NF_EINVAL, "check-pod cannot play the peer of --%s (%s %s)",
                                row->option, nf_podspec_type_name(row->type),
                                row->bind ? "bind" : "connect");
        char what[64];
        snprintf(what, sizeof what, "check-pod's peer of --%s", row->option);
        int port = row->bind ? nf_free_port("127.0.0.1") : 0;
        if (row->bind)
            snprintf(c->ep[i], sizeof c->ep[i], "tcp://127.0.0.1:%d", port);
        nf_socket_opts_t o = {
            .type = type, .bind = !row->bind, .what = what, .linger_ms = -1, .sndtimeo_ms = 5000,
            .endpoints = row->bind ? c->ep[i] : "tcp://127.0.0.1:*",
        };
        int rc = port < 0 ? nf_error_set(NF_EIO, "no free loopback port") : nf_socket_new(&o, &c->sock[i]);
        if (rc != NF_OK)
            return rc;
        if (!row->bind)
            snprintf(c->ep[i], sizeof c->ep[i], "%s", zsock_endpoint(c->sock[i]));
        c->opt[i] = row->option;
        c->nsocks = n;
        zsock_t **named = !strcmp(row->option, "in") ? &c->in
                        : !strcmp(row->option, "out") ? &c->out
                        : !strcmp(row->option, "errors") ? &c->errors
                        : !strcmp(row->option, "control") ? &c->control : NULL;
        if (named)
            *named = c->sock[i];
    }
    if (!c->in || !c->out || !c->errors || !c->control)
        return nf_error_set(NF_EINVAL, "check-pod needs --in, --out, --errors and --control");
    return NF_OK;
}

int
cmd_check_pod(int argc, char **argv)
{
    s_check_t c = {.dim = 256, .timeout_ms = 5000, .next_id = 1000};
    const char *role = "encoder";
    /* COMMAND: at most argc - 1 words, and a NULL after them for execvp */
    const char **words = calloc((size_t) argc + 1, sizeof *words);
    nf_args_list_t command = {words, 0, (size_t) argc};
    char summary[2048], timeout_help[128];
    s_summary(summary, sizeof summary);
    snprintf(timeout_help, sizeof timeout_help, "how long to wait for each answer; the first\n"
             "PING waits at least %d ms for the pod\nto start", NF_POD_READY_MS);
    const nf_arg_t args[] = {
        {"--dim", NULL, NF_ARG_INT, &c.dim, 1, NF_DIM_MAX, .meta = "D",
         .help = "vector dimension the pod is given"},
        {"--role", NULL, NF_ARG_CHOICE, &role, .choices = "encoder",
         .help = "the contract to check, so far only"},
        {"--timeout-ms", NULL, NF_ARG_INT, &c.timeout_ms, 100, NF_TIMEOUT_MAX_MS, .meta = "T",
         .help = timeout_help},
        {"COMMAND", NULL, NF_ARG_REST, &command, .required = true,
         .help = "the pod's program and its arguments"},
    };
    const nf_args_t spec = {"nflow check-pod", args, NF_ARGS_COUNT(args),
                            .synopsis = "[--dim D] [--role encoder] [--timeout-ms T] -- "
                                        "COMMAND...",
                            .summary = summary, .options_first = true};
    int status;
    if (!words) {
        fprintf(stderr, "nflow check-pod: out of memory\n");
        return 1;
    }
    if (!nf_args_parse(&spec, argc, argv, &status)) {
        free(words);
        return status;
    }
    c.command = (char *const *) words;
    snprintf(c.name, sizeof c.name, "%s/0", role);
    srandom((unsigned) getpid());

    status = 1;
    c.spec = nf_podspec_find(role);
    if (s_sockets(&c) != NF_OK) {
        fprintf(stderr, "nflow check-pod: cannot set up loopback sockets: %s\n", nf_error_msg());
        goto cleanup;
    }
    /* An executor in Python needs the binding of the protocol: found the
       way the launcher finds it (nf_flow_py_proto_dir), unless given. */
    char py[4096];
    if (!getenv("NFLOW_PY_PROTO_DIR") && nf_flow_py_proto_dir(py, sizeof py) == NF_OK)
        setenv("NFLOW_PY_PROTO_DIR", py, 0);
    if (s_spawn(&c) != NF_OK) {
        fprintf(stderr, "nflow check-pod: %s\n", nf_error_msg());
        goto cleanup;
    }
    fprintf(stderr, "check-pod: pid %d,", (int) c.pid);
    for (size_t k = 0; k < c.nsocks; k++)
        fprintf(stderr, " %s %s,", c.opt[k], c.ep[k]);
    fprintf(stderr, " dim %d\n", c.dim);

    static const struct {
        void (*run)(s_check_t *, int);
        int arg;
    } checks[] = {
        {s_check_ready, 0}, {s_check_status, 0}, {s_check_encodes, 0},
        {s_check_encodes, 1}, {s_check_passthrough, 0}, {s_check_bad_input, 0},
        {s_check_version, 0}, {s_check_version, 1}, {s_check_garbage, 0},
        {s_check_garbage, 1},
        {s_check_status, 1}, {s_check_delimiter, 0}, {s_check_counters, 0},
        {s_check_deterministic, 0}, {s_check_similar, 0},
        {s_check_terminate, 0},
    };
    for (size_t k = 0; k < sizeof checks / sizeof checks[0] && !c.stop; k++)
        checks[k].run(&c, checks[k].arg);
    if (zsys_interrupted)
        fprintf(stderr, "check-pod: interrupted\n");
    status = c.failed == 0 && !c.stop ? 0 : 1;
    if (c.stop && c.failed == 0)
        c.failed++;     /* stopped (interrupted) without a FAIL line: still a failure */
    printf("check-pod: %d checks passed, %d failed\n", c.passed, c.failed);

cleanup:
    s_reap(&c);
    for (size_t k = 0; k < S_MAX_SOCKS; k++)
        zsock_destroy(&c.sock[k]);
    free(words);
    return status;
}
