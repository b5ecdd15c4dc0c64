/*  nflow-router: the head of the sharded indexer.

    PULLs requests (--in).  Index and delete requests are split by
    nf_msg_shard_of(id) into one request per shard that has documents:
    each shard's part is built column by column (ids, vector rows, texts,
    tags copied as byte ranges into per-shard buffers reused from batch to
    batch; no per-document message).  Searches go to every shard with
    their body frame as received (shared, not copied or repacked).  Shards are the DEALERs connected to the
    ROUTER --shards with identity "shard-N"; they say HELLO and send a
    HEARTBEAT every heartbeat_ms, and a shard silent for dead_after_ms is
    down.  The router pings every shard with a HEARTBEAT of its own at the
    same interval (liveness both ways; ZMTP heartbeats drop a dead
    connection under it).  With CURVE (--keys) a shard's messages count
    only when they come from the key of that shard (User-Id shard-N); a
    shard whose flow fingerprint differs from the router's is refused,
    naming the first differing key.  When a shard goes down, the reducer
    is told at once (a Result {shard} with status SHARD_DOWN, request id 0)
    so that requests in flight to it are answered partial now, not at
    their deadline.  After dispatching, the router PUSHes the reducer a Plan naming
    the shards that got a part and those that are down (a send that fails
    marks that shard down too).  When no shard at all can take the request
    it is failed with UNAVAILABLE via --errors.                            */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nf_fprint.h"
#include "nf_error.h"
#include "nf_msg.h"
#include "nf_pod.h"
#include "nf_sys.h"

typedef struct {
    nf_pod_t *pod;
    zsock_t *in, *shards, *reducer;
    uint32_t nshards;
    uint64_t dead_after_us;
    uint64_t *last_seen;        /* monotonic us of the last word from each shard, 0 = never */
    bool *was_alive;            /* for logging state changes */
    bool *refused;              /* its last word was refused */
    uint64_t *refused_why;      /* hash of the reason last logged (log each reason once) */
    uint64_t hb_us, next_ping;
    nf_batch_t *parts;          /* index / delete: one part per shard, reused */
    uint32_t *which;            /* index: each document's shard (NF_DOCS_MAX) */
    uint32_t *rows;             /* index: the documents of shard 0, then of shard 1, ...
                                   (NF_DOCS_MAX): their vectors are gathered at send */
    size_t *row0;               /* where each shard's documents start in rows (nshards + 1) */
} router_t;

/* Tell the reducer that shard went down: it stops waiting for it. */
static void
s_tell_down(router_t *self, uint32_t shard)
{
    nf_env_t env;
    nf_env_init(&env);
    Nflow__Status st = NFLOW__STATUS__INIT;
    st.code = NFLOW__STATUS_CODE__STATUS_SHARD_DOWN;
    char text[64];
    snprintf(text, sizeof text, "shard %u is down", shard);
    st.message = text;
    env.status = &st;
    Nflow__Result res = NFLOW__RESULT__INIT;
    res.shard = shard;
    res.partial = true;
    env.body_case = NF_BODY_RESULT;
    env.result = &res;
    nf_msg_send(self->reducer, NULL, &env, ZMQ_DONTWAIT);   /* best effort: the deadline
                                                               still answers */
}

/* Ping every shard (liveness both ways): a HEARTBEAT with our fingerprint. */
static void
s_ping(router_t *self)
{
    uint64_t now = nf_now_us();
    if (now < self->next_ping)
        return;
    self->next_ping = now + self->hb_us;
    nf_env_t env;
    nf_env_init(&env);
    Nflow__Control c = NFLOW__CONTROL__INIT;
    c.command = NFLOW__CONTROL_COMMAND__CONTROL_HEARTBEAT;
    c.pod = (char *) nf_pod_name(self->pod);
    c.ready = true;
    c.fingerprint = nf_pod_fingerprint(self->pod);
    env.body_case = NF_BODY_CONTROL;
    env.control = &c;
    for (uint32_t s = 0; s < self->nshards; s++) {
        char ident[32];
        snprintf(ident, sizeof ident, "shard-%u", s);
        zmsg_t *routing = zmsg_new();
        zmsg_addstr(routing, ident);
        (void) nf_msg_send(self->shards, routing, &env, ZMQ_DONTWAIT);  /* unconnected: fails */
        zmsg_destroy(&routing);
    }
}

/* May this HELLO/HEARTBEAT of shard count?  Logs a refusal once. */
static bool
s_admit(router_t *self, uint32_t shard, const nf_msg_t *msg)
{
    const Nflow__Control *c = msg->env->control;
    char why[700] = "";
    char want[32];
    snprintf(want, sizeof want, "shard-%u", shard);
    if (nf_pod_keys(self->pod) && strcmp(msg->user, want))
        snprintf(why, sizeof why, "it claims %s but holds key '%s'", want, msg->user);
    else if (c->fingerprint && nf_pod_fingerprint(self->pod)
             && c->fingerprint != nf_pod_fingerprint(self->pod)) {
        char diff[600] = "";
        if (!nf_pod_canon(self->pod) || !c->canonical || !*c->canonical
            || !nf_canon_diff(nf_pod_canon(self->pod), c->canonical, diff, sizeof diff))
            snprintf(diff, sizeof diff, "fingerprint %016llx here, %016llx there",
                     (unsigned long long) nf_pod_fingerprint(self->pod),
                     (unsigned long long) c->fingerprint);
        snprintf(why, sizeof why, "it runs a different flow: %s", diff);
    }
    if (!*why) {
        if (self->refused[shard])
            nf_pod_log(self->pod, "shard %u from %s admitted", shard, msg->peer);
        self->refused[shard] = false;
        return true;
    }
    nf_pod_stats(self->pod)->malformed++;
    uint64_t h = nf_canon_fingerprint(why);
    if (!self->refused[shard] || self->refused_why[shard] != h)
        nf_pod_log(self->pod, "shard %u refused (%s): %s", shard, msg->peer, why);
    self->refused[shard] = true;
    self->refused_why[shard] = h;
    return false;
}

static bool
s_alive(router_t *self, uint32_t shard, uint64_t now)
{
    return self->last_seen[shard] && now - self->last_seen[shard] <= self->dead_after_us;
}

/* Log shards that changed state (quietly: one line per change). */
static void
s_track(router_t *self)
{
    uint64_t now = nf_now_us();
    for (uint32_t s = 0; s < self->nshards; s++) {
        bool alive = s_alive(self, s, now);
        if (alive != self->was_alive[s])
            nf_pod_log(self->pod, "shard %u is %s", s, alive ? "up" : "down");
        if (!alive && self->was_alive[s])
            s_tell_down(self, s);
        self->was_alive[s] = alive;
    }
}

/* A message from a shard's DEALER: HELLO / HEARTBEAT, or an error status. */
static void
s_from_shard(void *arg, nf_msg_t *msg, uint64_t recv_us)
{
    router_t *self = arg;
    (void) recv_us;
    zframe_t *id = zmsg_first(msg->routing);
    char ident[32] = "";
    size_t len = zframe_size(id);
    if (len < sizeof ident)
        memcpy(ident, zframe_data(id), len);
    unsigned shard;
    char tail;
    if (sscanf(ident, "shard-%u%c", &shard, &tail) != 1 || shard >= self->nshards) {
        char what[96];
        snprintf(what, sizeof what, "not a shard identity (expected shard-0..shard-%u)",
                 self->nshards - 1);
        nf_pod_reject(self->pod, self->shards, msg, what);
        return;
    }
    nf_env_t *env = msg->env;
    if (env->body_case == NF_BODY_CONTROL
        && (env->control->command == NFLOW__CONTROL_COMMAND__CONTROL_HELLO
            || env->control->command == NFLOW__CONTROL_COMMAND__CONTROL_HEARTBEAT)) {
        if (s_admit(self, shard, msg))
            self->last_seen[shard] = nf_now_us();
        return;
    }
    if (env->body_case == NF_BODY_CONTROL
        && env->control->command == NFLOW__CONTROL_COMMAND__CONTROL_TERMINATE) {
        nf_pod_reject(self->pod, self->shards, msg,
                      "TERMINATE is only served on the control socket");
        return;
    }
    if (env->body_case == NF_BODY_CONTROL) {
        nf_pod_control(self->pod, self->shards, msg->routing, env);     /* PING, STATUS */
        return;
    }
    if (!env->body_case)
        return;     /* an error status answering something we sent: nothing to do */
    nf_pod_reject(self->pod, self->shards, msg, "shards may only send HELLO and HEARTBEAT");
}

/* Send env (with body replaced by the caller) to one shard; with from,
   from's body frame as received instead. */
static int
s_send_shard(router_t *self, uint32_t shard, const nf_env_t *env, const nf_msg_t *from,
             uint64_t recv_us)
{
    char ident[32];
    snprintf(ident, sizeof ident, "shard-%u", shard);
    zmsg_t *routing = zmsg_new();
    zmsg_addstr(routing, ident);
    int rc = from ? nf_msg_forward_hop(self->shards, routing, env, from, nf_pod_name(self->pod),
                                       recv_us, ZMQ_DONTWAIT)
                  : nf_msg_send_hop(self->shards, routing, env, nf_pod_name(self->pod), recv_us,
                                    ZMQ_DONTWAIT);
    zmsg_destroy(&routing);
    if (rc != NF_OK)
        self->last_seen[shard] = 0;     /* not connected: down until it speaks again */
    return rc;
}

static void
s_dispatch(router_t *self, nf_msg_t *msg, uint64_t recv_us)
{
    nf_env_t *env = msg->env;
    uint32_t S = self->nshards;
    int kind = env->body_case;
    uint64_t now = nf_now_us();
    uint32_t *sent = calloc(S, sizeof *sent), *down = calloc(S, sizeof *down);
    size_t nsent = 0, ndown = 0;
    bool split = S > 1 && (kind == NF_BODY_INDEX || kind == NF_BODY_DELETE);
    bool ok = sent && down;

    if (env->deadline_us && now >= env->deadline_us) {
        /* its time is spent: the gateway answers (or answered) TIMEOUT */
        nf_pod_stats(self->pod)->errors++;
        goto done;
    }
    /* an index batch's vectors are not copied into the parts: each part's
       are gathered from the batch's block straight into its frame */
    uint32_t dim = split && kind == NF_BODY_INDEX && env->index->vectors.len ? env->index->dim : 0;
    if (ok && split) {
        for (uint32_t s = 0; s < S; s++)
            nf_batch_reset(&self->parts[s], 0);
        /* at most NF_DOCS_MAX: nf_msg_recv checked the count */
        size_t n = kind == NF_BODY_INDEX ? env->index->count : env->delete_->count;
        for (size_t i = 0; ok && i < n; i++) {
            size_t len;
            const char *id = kind == NF_BODY_INDEX ? nf_batch_id(env->index, i, &len)
                                                   : nf_delete_id(env->delete_, i, &len);
            self->which[i] = nf_msg_shard_of(id, len, S);
            nf_batch_t *part = &self->parts[self->which[i]];
            ok = (kind == NF_BODY_INDEX
                      ? nf_batch_add_from(part, env->index, i)
                      : nf_batch_add(part, id, len, NULL, NULL, 0, NULL, NULL, 0)) == NF_OK;
        }
        if (ok && dim) {            /* rows grouped by shard, in batch order */
            self->row0[0] = 0;
            for (uint32_t s = 0; s < S; s++)
                self->row0[s + 1] = self->row0[s] + self->parts[s].count;
            for (size_t i = 0; i < n; i++)
                self->rows[self->row0[self->which[i]]++] = (uint32_t) i;
            for (uint32_t s = S; s > 0; s--)    /* back to where each shard starts */
                self->row0[s] = self->row0[s - 1];
            self->row0[0] = 0;
        }
    }
    if (!ok) {
        nf_pod_fail(self->pod, env->request_id, NFLOW__STATUS_CODE__STATUS_INTERNAL,
                    "router: out of memory");
        goto done;
    }
    for (uint32_t s = 0; s < S; s++) {
        nf_env_t part = *env;
        Nflow__IndexBatch ipart;
        Nflow__DeleteRequest dpart;
        nf_gather_t gather;
        if (split) {
            if (self->parts[s].count == 0)
                continue;
            if (kind == NF_BODY_INDEX) {
                nf_batch_view(&self->parts[s], &ipart);
                part.index = &ipart;
                if (dim) {
                    ipart.dim = dim;
                    gather = (nf_gather_t) {env->index->vectors.data, (size_t) dim * 4,
                                            self->rows + self->row0[s], self->parts[s].count};
                    part.gather = &gather;
                }
            }
            else {
                nf_batch_view_delete(&self->parts[s], &dpart);
                part.delete_ = &dpart;
            }
        }
        if (s_alive(self, s, now)
            && s_send_shard(self, s, &part, split ? NULL : msg, recv_us) == NF_OK)
            sent[nsent++] = s;
        else
            down[ndown++] = s;
    }
    if (nsent == 0 && ndown > 0) {
        char list[256] = "";
        size_t len = 0;
        for (size_t i = 0; i < ndown && len + 12 < sizeof list; i++)
            len += (size_t) snprintf(list + len, sizeof list - len, "%s%u", i ? "," : "",
                                     down[i]);
        nf_pod_fail(self->pod, env->request_id, NFLOW__STATUS_CODE__STATUS_UNAVAILABLE,
                    "no live shard to serve the %s (down: %s)", nf_msg_body_name(kind), list);
        goto done;
    }
    Nflow__Plan plan = NFLOW__PLAN__INIT;
    plan.shards = sent;
    plan.n_shards = nsent;
    plan.down = down;
    plan.n_down = ndown;
    plan.kind = (uint32_t) kind;
    if (kind == NF_BODY_SEARCH) {
        plan.top_k = env->search->top_k;
        plan.nqueries = env->search->count;
    }
    nf_env_t penv;
    nf_env_init(&penv);
    penv.request_id = env->request_id;
    penv.deadline_us = env->deadline_us;
    penv.route = env->route;
    penv.n_route = env->n_route;
    penv.body_case = NF_BODY_PLAN;
    penv.plan = &plan;
    if (nf_msg_send_hop(self->reducer, NULL, &penv, nf_pod_name(self->pod), recv_us, 0)
        != NF_OK)
        nf_pod_fail(self->pod, env->request_id, NFLOW__STATUS_CODE__STATUS_UNAVAILABLE,
                    "router: cannot reach the reducer: %s", nf_error_msg());
    else
        nf_pod_stats(self->pod)->served++;
done:
    free(sent);
    free(down);
}

static void
s_from_in(void *arg, nf_msg_t *msg, uint64_t recv_us)
{
    router_t *self = arg;
    int kind = msg->env->body_case;
    if (kind != NF_BODY_INDEX && kind != NF_BODY_DELETE && kind != NF_BODY_SEARCH) {
        char why[96];
        snprintf(why, sizeof why, "wrong body for the router's input: %s",
                 kind ? nf_msg_body_name(kind) : "status only");
        nf_pod_reject(self->pod, self->in, msg, why);
        return;
    }
    s_dispatch(self, msg, recv_us);
}

static int
s_setup(nf_pod_t *pod, void *arg)
{
    router_t *self = arg;
    self->pod = pod;
    self->in = nf_pod_sock(pod, "in");
    self->shards = nf_pod_sock(pod, "shards");
    self->reducer = nf_pod_sock(pod, "reducer");
    self->nshards = nf_pod_get(pod, "nshards") ? (uint32_t) nf_pod_int(pod, "nshards") : 1;
    self->dead_after_us = (uint64_t) nf_pod_int(pod, "dead_after_ms") * 1000;
    self->last_seen = calloc(self->nshards, sizeof *self->last_seen);
    self->was_alive = calloc(self->nshards, sizeof *self->was_alive);
    self->refused = calloc(self->nshards, sizeof *self->refused);
    self->refused_why = calloc(self->nshards, sizeof *self->refused_why);
    self->hb_us = (uint64_t) nf_pod_int(pod, "heartbeat_ms") * 1000;
    self->parts = calloc(self->nshards, sizeof *self->parts);
    self->which = malloc(NF_DOCS_MAX * sizeof *self->which);
    self->rows = malloc(NF_DOCS_MAX * sizeof *self->rows);
    self->row0 = malloc((self->nshards + 1) * sizeof *self->row0);
    if (!self->last_seen || !self->was_alive || !self->refused || !self->refused_why
        || !self->parts || !self->which || !self->rows || !self->row0)
        return nf_error_set(NF_ENOMEM, "router: out of memory for %u shards", self->nshards);
    return NF_OK;
}

static void
s_step(nf_pod_t *pod, void *arg)
{
    router_t *self = arg;
    long hb = nf_pod_int(pod, "heartbeat_ms");
    nf_pod_wait(pod, hb < 100 ? (int) hb : 100);    /* a silent shard is seen within 0.1 s */
    /* shards first: fresh heartbeats before the requests that need them */
    nf_pod_drain(pod, self->shards, 1024, s_from_shard, self);
    s_track(self);      /* a shard that went silent is down before new work plans for it */
    nf_pod_drain(pod, self->in, 256, s_from_in, self);
    s_track(self);
    s_ping(self);
}

static void
s_teardown(nf_pod_t *pod, void *arg)
{
    router_t *self = arg;
    (void) pod;
    free(self->last_seen);
    free(self->was_alive);
    free(self->refused);
    free(self->refused_why);
    for (uint32_t s = 0; self->parts && s < self->nshards; s++)
        nf_batch_free(&self->parts[s]);
    free(self->parts);
    free(self->which);
    free(self->rows);
    free(self->row0);
}

int
main(int argc, char **argv)
{
    router_t self = {0};
    nf_pod_hooks_t hooks = {s_setup, s_step, s_teardown};
    return nf_pod_main("router", argc, argv, &hooks, &self);
}
