/*  nflow-gateway: the front door.  Every request is answered exactly once.

    Clients' DEALERs send requests (header + body frames) to the ROUTER
    --clients with their own request ids and the time they give it.  The
    gateway checks the request, gives it a global id and a deadline on its
    own monotonic clock (now + the client's time left, or the default
    timeout_ms), remembers who asked, and PUSHes it (never blocking) to
    --out: a new header, and the client's body frame as it came (checked,
    not repacked).  Answers arrive on the PULL --results: reducer results
    and errors that pods send via their --errors socket; their bodies go
    back to the client undecoded.  The first answer for an id goes back to
    its client with the client's id restored; later ones are dropped (and
    counted).  A request without an answer at deadline + 100 ms is
    answered TIMEOUT.
    Control messages on --clients (PING, STATUS) are answered as on the
    control socket, so `nflow status` can ask the gateway.  A search's
    filter and output fields are checked once here against the flow's
    fields (from NFLOW_CANON) and refused before any scan.                  */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nf_client.h"
#include "nf_error.h"
#include "nf_filter.h"
#include "nf_msg.h"
#include "nf_pod.h"
#include "nf_limits.h"
#include "nf_sys.h"

#define S_GRACE_US 100000ull

typedef struct {
    uint64_t gid;
    uint64_t client_id;
    zmsg_t *routing;            /* the client's identity frames */
    uint64_t due;               /* monotonic us: deadline + grace */
    uint32_t timeout_ms;
} pending_t;

typedef struct {
    nf_pod_t *pod;
    nf_field_def_t fields[NF_FIELDS_MAX];   /* the flow's typed fields (NFLOW_CANON) */
    size_t nfields;
    bool schema;                /* known: filters are checked here, before any scan */
    zsock_t *clients, *results, *out;
    uint32_t timeout_ms;
    size_t max_inflight;
    zhashx_t *pending;          /* "%016llx" global id -> pending_t */
    uint64_t next_id;
    uint64_t next_sweep;
    uint64_t late;              /* answers for unknown / finished ids */
} gateway_t;

static void
s_pending_destroy(void **item)
{
    pending_t *p = *item;
    if (!p)
        return;
    zmsg_destroy(&p->routing);
    free(p);
    *item = NULL;
}

static void
s_key(char *key, size_t size, uint64_t id)
{
    snprintf(key, size, "%016llx", (unsigned long long) id);
}

/* What is wrong with a client request, or NULL: the limits (already
   checked by nf_msg_recv, again here for the record), then what only a
   client request must satisfy (nf_msg_check_request: ids not empty,
   vectors finite, ...).  The message names the limit and the value. */
static const char *
s_check(gateway_t *self, const nf_env_t *env, char *why, size_t size)
{
    if (nf_msg_check_request(env) != NF_OK) {
        snprintf(why, size, "gateway: %s", nf_error_msg());
        return why;
    }
    if (env->body_case != NF_BODY_SEARCH || !self->schema)
        return NULL;
    /* a filter and output fields are checked once against the flow's
       fields: a malformed or ill-typed filter never reaches a shard */
    const Nflow__SearchRequest *s = env->search;
    if (s->filter && *s->filter) {
        nf_filter_t *f = NULL;
        if (nf_filter_parse(s->filter, self->fields, self->nfields, &f) != NF_OK) {
            snprintf(why, size, "%s", nf_error_msg());
            return why;
        }
        nf_filter_destroy(&f);
    }
    for (size_t i = 0; i < s->n_fields; i++) {
        size_t j = 0;
        while (j < self->nfields && strcmp(self->fields[j].name, s->fields[i]))
            j++;
        if (j == self->nfields) {
            snprintf(why, size, "fields: '%.64s' is not a field of this flow (%s)", s->fields[i],
                     self->nfields ? "see its indexer's with.fields" : "it declares none");
            return why;
        }
    }
    return NULL;
}

static void
s_answer_error(gateway_t *self, zmsg_t *routing, uint64_t client_id, Nflow__StatusCode code,
               const char *what)
{
    nf_msg_reply_error(self->clients, routing, client_id, code, what);
    nf_pod_stats(self->pod)->errors++;
}

static void
s_from_client(void *arg, nf_msg_t *msg, uint64_t recv_us)
{
    gateway_t *self = arg;
    nf_env_t *env = msg->env;
    if (env->body_case == NF_BODY_CONTROL) {
        if (env->control->command == NFLOW__CONTROL_COMMAND__CONTROL_TERMINATE)
            nf_msg_reply_error(self->clients, msg->routing, env->request_id,
                               NFLOW__STATUS_CODE__STATUS_BAD_REQUEST,
                               "TERMINATE is only served on the control socket");
        else
            nf_pod_control(self->pod, self->clients, msg->routing, env);
        return;
    }
    char why[512];
    const char *bad = s_check(self, env, why, sizeof why);
    if (bad) {
        nf_pod_reject(self->pod, self->clients, msg, bad);
        return;
    }
    if (zhashx_size(self->pending) >= self->max_inflight) {
        s_answer_error(self, msg->routing, env->request_id,
                       NFLOW__STATUS_CODE__STATUS_UNAVAILABLE,
                       "gateway: too many requests in flight, try again");
        return;
    }
    pending_t *p = calloc(1, sizeof *p);
    if (!p) {
        s_answer_error(self, msg->routing, env->request_id,
                       NFLOW__STATUS_CODE__STATUS_INTERNAL, "gateway: out of memory");
        return;
    }
    /* the client's time left (measured from our receipt), else the default */
    uint64_t now = nf_now_us();
    uint64_t left_us = env->deadline_us ? (env->deadline_us > now ? env->deadline_us - now : 1)
                                        : (uint64_t) self->timeout_ms * 1000;
    if (left_us > (uint64_t) NF_TIMEOUT_MAX_MS * 1000)
        left_us = (uint64_t) NF_TIMEOUT_MAX_MS * 1000;
    p->gid = self->next_id++;
    p->client_id = env->request_id;
    p->timeout_ms = (uint32_t) ((left_us + 999) / 1000);
    p->due = now + left_us + S_GRACE_US;

    nf_env_t fwd = *env;
    fwd.request_id = p->gid;
    fwd.deadline_us = now + left_us;
    fwd.status = NULL;
    int rc;
    if (env->body_case == NF_BODY_SEARCH && env->search->top_k != nf_msg_top_k(env->search->top_k)) {
        /* the one place k is decided: stamped in the body (a small repack) */
        env->search->top_k = nf_msg_top_k(env->search->top_k);
        rc = nf_msg_send_hop(self->out, NULL, &fwd, nf_pod_name(self->pod), recv_us,
                             ZMQ_DONTWAIT);
    }
    else    /* the body frame as the client sent it: checked, not repacked */
        rc = nf_msg_forward_hop(self->out, NULL, &fwd, msg, nf_pod_name(self->pod), recv_us,
                                ZMQ_DONTWAIT);
    if (rc != NF_OK) {
        free(p);
        s_answer_error(self, msg->routing, env->request_id,
                       NFLOW__STATUS_CODE__STATUS_UNAVAILABLE,
                       "gateway: the flow cannot take the request now (no encoder or "
                       "router connected, or its queue is full)");
        return;
    }
    p->routing = msg->routing;
    msg->routing = NULL;
    char key[24];
    s_key(key, sizeof key, p->gid);
    zhashx_insert(self->pending, key, p);
    if (p->due < self->next_sweep)
        self->next_sweep = p->due;
}

/* Send msg (a result or an error status) to the client of p: its header
   with the client's id, its body frame as it came. */
static void
s_answer(gateway_t *self, pending_t *p, nf_msg_t *msg)
{
    nf_env_t *env = msg->env;
    nf_env_t out = *env;
    out.request_id = p->client_id;
    out.deadline_us = 0;
    bool error = env->status && env->status->code != NFLOW__STATUS_CODE__STATUS_OK;
    if (error)
        nf_pod_stats(self->pod)->errors++;
    else
        nf_pod_stats(self->pod)->served++;
    /* a client that went away is not an error of the flow */
    nf_msg_forward_hop(self->clients, p->routing, &out, msg, nf_pod_name(self->pod),
                       nf_wall_us(), ZMQ_DONTWAIT);
}

static void
s_from_results(void *arg, nf_msg_t *msg, uint64_t recv_us)
{
    gateway_t *self = arg;
    (void) recv_us;
    nf_env_t *env = msg->env;
    bool error = env->status && env->status->code != NFLOW__STATUS_CODE__STATUS_OK;
    if (env->body_case != NF_BODY_RESULT && !error) {
        char why[96];
        snprintf(why, sizeof why, "wrong body for the gateway's results: %s",
                 nf_msg_body_name(env->body_case));
        self->late++;
        nf_pod_stats(self->pod)->malformed++;
        nf_pod_log(self->pod, "malformed frame from %s: %s", msg->peer, why);
        return;
    }
    char key[24];
    s_key(key, sizeof key, env->request_id);
    pending_t *p = zhashx_lookup(self->pending, key);
    if (!p) {
        self->late++;     /* late, duplicate or unknown: already answered */
        return;
    }
    s_answer(self, p, msg);
    zhashx_delete(self->pending, key);
}

static void
s_sweep(gateway_t *self)
{
    uint64_t now = nf_now_us();
    if (now < self->next_sweep)
        return;
    uint64_t next = UINT64_MAX;
    zlist_t *gone = zlist_new();
    zlist_autofree(gone);
    for (pending_t *p = zhashx_first(self->pending); p; p = zhashx_next(self->pending)) {
        if (p->due <= now) {
            char text[96];
            snprintf(text, sizeof text, "no answer within %u ms", p->timeout_ms);
            s_answer_error(self, p->routing, p->client_id, NFLOW__STATUS_CODE__STATUS_TIMEOUT,
                           text);
            zlist_append(gone, (void *) zhashx_cursor(self->pending));
        }
        else if (p->due < next)
            next = p->due;
    }
    for (char *key = zlist_first(gone); key; key = zlist_next(gone))
        zhashx_delete(self->pending, key);
    zlist_destroy(&gone);
    self->next_sweep = next == UINT64_MAX ? next : next > now + 10000 ? next : now + 10000;
}

static int
s_setup(nf_pod_t *pod, void *arg)
{
    gateway_t *self = arg;
    self->pod = pod;
    self->clients = nf_pod_sock(pod, "clients");
    self->results = nf_pod_sock(pod, "results");
    self->out = nf_pod_sock(pod, "out");
    self->timeout_ms = (uint32_t) nf_pod_int(pod, "timeout_ms");
    self->max_inflight = (size_t) nf_pod_int(pod, "max_inflight");
    self->pending = zhashx_new();
    if (!self->pending)
        return nf_error_set(NF_ENOMEM, "gateway: out of memory");
    zhashx_set_destructor(self->pending, s_pending_destroy);
    self->next_id = nf_wall_us();   /* ids of a restarted gateway do not meet old ones */
    self->next_sweep = UINT64_MAX;
    const char *canon = nf_pod_canon(pod);
    if (canon) {
        int rc = nf_canon_fields(canon, self->fields, NF_FIELDS_MAX, &self->nfields);
        if (rc != NF_OK)
            return rc;
        self->schema = true;
    }
    return NF_OK;
}

static void
s_step(nf_pod_t *pod, void *arg)
{
    gateway_t *self = arg;
    nf_pod_wait_until(pod, self->next_sweep, 1000);
    /* results first: they free room for new requests */
    nf_pod_drain_raw(pod, self->results, 1024, s_from_results, self);
    nf_pod_drain(pod, self->clients, 256, s_from_client, self);
    s_sweep(self);
}

static void
s_teardown(nf_pod_t *pod, void *arg)
{
    (void) pod;
    zhashx_destroy(&((gateway_t *) arg)->pending);
}

int
main(int argc, char **argv)
{
    gateway_t self = {0};
    nf_pod_hooks_t hooks = {s_setup, s_step, s_teardown};
    return nf_pod_main("gateway", argc, argv, &hooks, &self);
}
