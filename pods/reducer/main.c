/*  nflow-reducer: one answer per request from the shards' parts.

    PULLs (--in) the router's Plan and the shards' parts (Result messages)
    of each request id, in either order.  A request is complete when its
    plan is in and every planned shard answered: the per-shard top-k lists
    are merged into the global top-k per query (l2: smaller is better, ip /
    cosine: larger; ties by shard then rank), indexed / deleted counts are
    summed, and a plan naming down shards makes the answer partial with
    those in missing_shards.  At the request's deadline it answers with
    what it has, partial, naming the planned shards that did not answer;
    when the router says a shard is down (a Result {shard} with status
    SHARD_DOWN and request id 0), every request still waiting for that
    shard is answered at once, partial, without it.  A
    part carrying an error status makes the whole answer that error.  The
    answer is PUSHed to the gateway (--out); parts of finished requests are
    dropped.                                                               */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nf_error.h"
#include "nf_limits.h"
#include "nf_msg.h"
#include "nf_pod.h"
#include "nf_sys.h"
#include "nf_topk.h"

#define S_NO_DEADLINE_US (60 * 1000000ull)   /* expiry of requests without a deadline */
#define S_KEEP_DONE_US (5 * 1000000ull)       /* remember finished ids this long */

/* Memory the parts of one request may hold, estimated as their packed
   bytes plus what unpacking added (~256 B per match, ~140 B per tag): a
   legal part is at most NF_ANSWER_MAX packed, but a peer may send whole
   frames, for any shard, and an empty tag is 2 bytes on the wire. */
#define S_HOLD_MAX (8ull * NF_ANSWER_MAX)

static uint64_t
s_cost(const nf_env_t *env)
{
    uint64_t c = nf_env_body_size(env);
    const Nflow__Result *r = env->result;
    for (size_t q = 0; r && q < r->n_results; q++)
        for (size_t j = 0; j < r->results[q]->n_matches; j++)
            c += 256 + 140 * (uint64_t) r->results[q]->matches[j]->n_tags
                 + (r->results[q]->matches[j]->fields
                        ? strlen(r->results[q]->matches[j]->fields) : 0);
    return c;
}

typedef struct {
    uint64_t id;
    bool done;
    uint64_t held;                  /* estimated memory of the parts held (s_cost) */
    uint8_t given_up[(NF_SHARDS_MAX + 7) / 8];   /* shards reported down meanwhile */
    nf_env_t *plan;                 /* owned; NULL until it arrives */
    nf_env_t **parts;               /* owned */
    size_t nparts, cap;
    uint64_t expiry;                /* monotonic us: deadline, then forget time */
    uint64_t last_recv_us;          /* wall clock (tracing only): when the last part came */
} req_t;

typedef struct {
    nf_pod_t *pod;
    zsock_t *in, *out;
    zhashx_t *reqs;                 /* "%016llx" id -> req_t */
    uint64_t next_sweep;
} reducer_t;

static void
s_req_destroy(void **item)
{
    req_t *r = *item;
    if (!r)
        return;
    nf_env_destroy(&r->plan);
    for (size_t i = 0; i < r->nparts; i++)
        nf_env_destroy(&r->parts[i]);
    free(r->parts);
    free(r);
    *item = NULL;
}

static bool
s_has_part(const req_t *r, uint32_t shard)
{
    for (size_t i = 0; i < r->nparts; i++)
        if (r->parts[i]->result->shard == shard)
            return true;
    return false;
}

static bool
s_given_up(const req_t *r, uint32_t shard)
{
    return shard < NF_SHARDS_MAX && (r->given_up[shard / 8] >> (shard % 8) & 1);
}

/* Every planned shard answered, or was reported down since. */
static bool
s_complete(const req_t *r)
{
    if (!r->plan)
        return false;
    for (size_t i = 0; i < r->plan->plan->n_shards; i++)
        if (!s_has_part(r, r->plan->plan->shards[i]) && !s_given_up(r, r->plan->plan->shards[i]))
            return false;
    return true;
}

static int
s_cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *) a, y = *(const uint32_t *) b;
    return x < y ? -1 : x > y;
}

static void
s_send(reducer_t *self, req_t *r, nf_env_t *out)
{
    /* The route of the part that came last (it decided when the answer was
       complete: the slowest shard), and the reducer's hop from its arrival,
       so a trace shows the slowest shard's hold time, its transit to the
       reducer and the merge, not the wait for it as a "transit". */
    const nf_env_t *from = r->nparts ? r->parts[r->nparts - 1] : r->plan;
    out->request_id = r->id;
    if (from) {
        out->route = from->route;
        out->n_route = from->n_route;
    }
    uint64_t recv_us = r->nparts && r->last_recv_us ? r->last_recv_us : nf_wall_us();
    if (nf_msg_send_hop(self->out, NULL, out, nf_pod_name(self->pod), recv_us, 0)
        != NF_OK)
        nf_pod_log(self->pod, "cannot send a result to the gateway: %s", nf_error_msg());
}

/* Answer request r with an error status (it is done). */
static void __attribute__((format(printf, 4, 5)))
s_fail_answer(reducer_t *self, req_t *r, Nflow__StatusCode code, const char *fmt, ...)
{
    char text[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    nf_env_t out;
    nf_env_init(&out);
    Nflow__Status st = NFLOW__STATUS__INIT;
    st.code = code;
    st.message = text;
    out.status = &st;
    s_send(self, r, &out);
    nf_pod_stats(self->pod)->errors++;
}

/* Merge the parts into one Result and send it; partial when shards are
   missing (timeout) or down. */
static void
s_finish(reducer_t *self, req_t *r)
{
    r->done = true;
    r->expiry = nf_now_us() + S_KEEP_DONE_US;
    nf_env_t out;
    nf_env_init(&out);
    /* an error part decides the answer */
    for (size_t i = 0; i < r->nparts; i++) {
        Nflow__Status *st = r->parts[i]->status;
        if (st && st->code != NFLOW__STATUS_CODE__STATUS_OK) {
            out.status = st;
            s_send(self, r, &out);
            nf_pod_stats(self->pod)->errors++;
            return;
        }
    }
    Nflow__Plan *plan = r->plan ? r->plan->plan : NULL;
    size_t nplanned = plan ? plan->n_shards : 0, ndown = plan ? plan->n_down : 0;
    uint32_t *missing = malloc((nplanned + ndown + 1) * sizeof *missing);
    size_t nmissing = 0;
    for (size_t i = 0; missing && i < nplanned; i++)
        if (!s_has_part(r, plan->shards[i]))
            missing[nmissing++] = plan->shards[i];
    for (size_t i = 0; missing && i < ndown; i++)
        missing[nmissing++] = plan->down[i];
    if (missing)
        qsort(missing, nmissing, sizeof *missing, s_cmp_u32);

    Nflow__Result res = NFLOW__RESULT__INIT;
    res.partial = nmissing > 0 || !plan;
    res.missing_shards = missing;
    res.n_missing_shards = nmissing;
    const char *metric = "cosine";
    size_t nq = plan ? plan->nqueries : 0;
    for (size_t i = 0; i < r->nparts; i++) {
        Nflow__Result *p = r->parts[i]->result;
        res.indexed += p->indexed;
        res.deleted += p->deleted;
        if (p->metric && *p->metric)
            metric = p->metric;
        if (!plan && p->n_results > nq)
            nq = p->n_results;
    }
    res.metric = (char *) metric;
    /* k is the one the gateway stamped (through the plan); without a plan,
       the longest list a shard sent.  nf_msg_recv checked nq <= NF_QUERIES_MAX,
       k <= NF_TOPK_MAX and nq x k <= NF_MATCHES_MAX on the plan, and the
       parts' counts; check the product again, as it sizes dptr. */
    Nflow__Matches *mats = NULL, **mptr = NULL;
    Nflow__Document **dptr = NULL;
    nf_hit_t *heap = NULL;
    size_t k = plan ? nf_msg_top_k(plan->top_k) : 1;
    for (size_t i = 0; !plan && i < r->nparts; i++) {
        Nflow__Result *p = r->parts[i]->result;
        for (size_t q = 0; q < p->n_results; q++)
            if (p->results[q]->n_matches > k)
                k = p->results[q]->n_matches;
    }
    if (nq > NF_QUERIES_MAX || k > NF_TOPK_MAX || nq * k > NF_MATCHES_MAX) {
        s_fail_answer(self, r, NFLOW__STATUS_CODE__STATUS_BAD_REQUEST,
                      "reducer: %zu queries x top_k %zu is over the limits (NF_QUERIES_MAX, "
                      "NF_TOPK_MAX, NF_MATCHES_MAX)", nq, k);
        goto done;
    }
    bool larger = strcmp(metric, "l2") != 0;
    mats = calloc(nq ? nq : 1, sizeof *mats);
    mptr = calloc(nq ? nq : 1, sizeof *mptr);
    dptr = calloc(nq * k + 1, sizeof *dptr);
    heap = malloc(k * sizeof *heap);
    if (!mats || !mptr || !dptr || !heap || !missing) {
        nf_pod_log(self->pod, "out of memory merging request %llu", (unsigned long long) r->id);
        s_fail_answer(self, r, NFLOW__STATUS_CODE__STATUS_INTERNAL,
                      "reducer: out of memory merging %zu queries x top_k %zu", nq, k);
        goto done;
    }
    if (plan ? plan->kind == NF_BODY_SEARCH : nq > 0) {
        for (size_t q = 0; q < nq; q++) {
            nf_topk_t t;
            nf_topk_init(&t, heap, k, larger);
            for (size_t i = 0; i < r->nparts; i++) {
                Nflow__Result *p = r->parts[i]->result;
                if (q >= p->n_results)
                    continue;
                for (size_t j = 0; j < p->results[q]->n_matches; j++)
                    nf_topk_push(&t, p->results[q]->matches[j]->score,
                                 (uint64_t) p->shard << 32 | j);
            }
            size_t n = nf_topk_sort(&t);
            Nflow__Matches init = NFLOW__MATCHES__INIT;
            mats[q] = init;
            mats[q].matches = dptr + q * k;
            mats[q].n_matches = n;
            mptr[q] = &mats[q];
            for (size_t h = 0; h < n; h++) {
                uint32_t shard = (uint32_t) (heap[h].key >> 32);
                size_t j = (size_t) (heap[h].key & 0xffffffffu);
                for (size_t i = 0; i < r->nparts; i++)
                    if (r->parts[i]->result->shard == shard)
                        dptr[q * k + h] = r->parts[i]->result->results[q]->matches[j];
            }
        }
        res.results = mptr;
        res.n_results = nq;
    }
    out.body_case = NF_BODY_RESULT;
    out.result = &res;
    size_t bytes = nflow__result__get_packed_size(&res);
    if (bytes > NF_ANSWER_MAX) {
        s_fail_answer(self, r, NFLOW__STATUS_CODE__STATUS_TOO_LARGE,
                      "reducer: the answer would be %zu bytes, at most %u (NF_ANSWER_MAX): ask "
                      "for fewer queries, a smaller top_k or no payload", bytes, NF_ANSWER_MAX);
        goto done;
    }
    s_send(self, r, &out);
    nf_pod_stats(self->pod)->served++;
done:
    free(heap);
    free(dptr);
    free(mptr);
    free(mats);
    free(missing);
}

static req_t *
s_lookup(reducer_t *self, uint64_t id, uint64_t deadline_us)
{
    char key[24];
    snprintf(key, sizeof key, "%016llx", (unsigned long long) id);
    req_t *r = zhashx_lookup(self->reqs, key);
    if (r)
        return r;
    r = calloc(1, sizeof *r);
    if (!r)
        return NULL;
    r->id = id;
    uint64_t now = nf_now_us();
    if (deadline_us)        /* our own monotonic clock: receipt + the time left */
        r->expiry = deadline_us;
    else
        r->expiry = now + S_NO_DEADLINE_US;
    zhashx_insert(self->reqs, key, r);
    if (r->expiry < self->next_sweep)
        self->next_sweep = r->expiry;
    return r;
}

/* The router says shard is down: stop waiting for it. */
static void
s_shard_down(reducer_t *self, uint32_t shard)
{
    if (shard >= NF_SHARDS_MAX)
        return;
    zlist_t *finish = zlist_new();
    for (req_t *r = zhashx_first(self->reqs); r && finish; r = zhashx_next(self->reqs)) {
        if (r->done || s_has_part(r, shard))
            continue;
        r->given_up[shard / 8] |= (uint8_t) (1u << (shard % 8));
        if (s_complete(r))
            zlist_append(finish, r);
    }
    size_t n = finish ? zlist_size(finish) : 0;
    for (req_t *r = finish ? zlist_first(finish) : NULL; r; r = zlist_next(finish))
        s_finish(self, r);
    zlist_destroy(&finish);
    nf_pod_log(self->pod, "shard %u is down: %zu request%s answered without it", shard, n,
               n == 1 ? "" : "s");
}

static void
s_handle(void *arg, nf_msg_t *msg, uint64_t recv_us)
{
    reducer_t *self = arg;
    nf_env_t *env = msg->env;
    if (env->request_id == 0 && env->status
        && env->status->code == NFLOW__STATUS_CODE__STATUS_SHARD_DOWN
        && env->body_case == NF_BODY_RESULT) {
        s_shard_down(self, env->result->shard);
        return;
    }
    if (env->body_case == NF_BODY_PLAN) {
        /* counts were checked against the limits by nf_msg_recv */
    }
    else if (env->body_case != NF_BODY_RESULT) {
        char why[96];
        snprintf(why, sizeof why, "wrong body for the reducer's input: %s",
                 env->body_case ? nf_msg_body_name(env->body_case) : "status only");
        nf_pod_reject(self->pod, self->in, msg, why);
        return;
    }
    req_t *r = s_lookup(self, env->request_id, env->deadline_us);
    if (!r) {
        nf_pod_log(self->pod, "out of memory for request %llu",
                   (unsigned long long) env->request_id);
        return;
    }
    if (r->done)
        return;     /* late part of a finished request */
    if (env->body_case == NF_BODY_PLAN) {
        if (r->plan)
            return;     /* duplicate plan */
        r->plan = env;
    }
    else {
        if (s_has_part(r, env->result->shard))
            return;     /* duplicate part */
        r->held += s_cost(env);
        if (r->held > S_HOLD_MAX) {
            s_fail_answer(self, r, NFLOW__STATUS_CODE__STATUS_TOO_LARGE,
                          "reducer: the parts of this request take over %llu bytes, at most "
                          "%llu (8 x NF_ANSWER_MAX): ask for fewer queries, a smaller top_k or "
                          "no payload", (unsigned long long) r->held,
                          (unsigned long long) S_HOLD_MAX);
            r->done = true;
            r->expiry = nf_now_us() + S_KEEP_DONE_US;
            for (size_t i = 0; i < r->nparts; i++)  /* nothing more is needed of them */
                nf_env_destroy(&r->parts[i]);
            r->nparts = 0;
            return;
        }
        if (r->nparts == r->cap) {
            size_t cap = r->cap ? 2 * r->cap : 4;
            nf_env_t **p = realloc(r->parts, cap * sizeof *p);
            if (!p)
                return;
            r->parts = p;
            r->cap = cap;
        }
        r->parts[r->nparts++] = env;
        r->last_recv_us = recv_us;
    }
    msg->env = NULL;    /* the request owns it now (its decoded form only) */
    nf_env_drop_frame(env);
    bool error = env->status && env->status->code != NFLOW__STATUS_CODE__STATUS_OK;
    if (error || s_complete(r))
        s_finish(self, r);
}

/* Answer requests whose deadline passed; forget finished ones. */
static void
s_sweep(reducer_t *self)
{
    uint64_t now = nf_now_us();
    if (now < self->next_sweep)
        return;
    uint64_t next = now + S_KEEP_DONE_US;
    zlist_t *gone = zlist_new();
    zlist_autofree(gone);
    for (req_t *r = zhashx_first(self->reqs); r; r = zhashx_next(self->reqs)) {
        if (r->expiry <= now) {
            if (!r->done && (r->plan || r->nparts))
                s_finish(self, r);
            else
                zlist_append(gone, (void *) zhashx_cursor(self->reqs));
        }
        if (r->expiry < next)
            next = r->expiry;
    }
    for (char *key = zlist_first(gone); key; key = zlist_next(gone))
        zhashx_delete(self->reqs, key);
    zlist_destroy(&gone);
    self->next_sweep = next > now + 10000 ? next : now + 10000;   /* at most every 10 ms */
}

static int
s_setup(nf_pod_t *pod, void *arg)
{
    reducer_t *self = arg;
    self->pod = pod;
    self->in = nf_pod_sock(pod, "in");
    self->out = nf_pod_sock(pod, "out");
    self->reqs = zhashx_new();
    if (!self->reqs)
        return nf_error_set(NF_ENOMEM, "reducer: out of memory");
    zhashx_set_destructor(self->reqs, s_req_destroy);
    self->next_sweep = UINT64_MAX;
    return NF_OK;
}

static void
s_step(nf_pod_t *pod, void *arg)
{
    reducer_t *self = arg;
    nf_pod_wait_until(pod, self->next_sweep, 1000);
    nf_pod_drain(pod, self->in, 1024, s_handle, self);
    s_sweep(self);
}

static void
s_teardown(nf_pod_t *pod, void *arg)
{
    (void) pod;
    zhashx_destroy(&((reducer_t *) arg)->reqs);
}

int
main(int argc, char **argv)
{
    reducer_t self = {0};
    nf_pod_hooks_t hooks = {s_setup, s_step, s_teardown};
    return nf_pod_main("reducer", argc, argv, &hooks, &self);
}
