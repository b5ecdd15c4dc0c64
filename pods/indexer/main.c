/*  nflow-indexer: one shard.

    Owns the segment <workspace>/shard-<shard> (lib/nf_segment), opened or
    created with the configured dim, metric and memory policy.  Its DEALER
    (identity "shard-<shard>") connects to the router's --shards, says HELLO
    and sends a HEARTBEAT every heartbeat_ms.  Each wake-up drains every
    queued request without blocking: the index requests drained together
    are committed with one append (one fdatasync; a delete first commits
    the index requests before it), each answered once durable; the
    searches, after the writes, are answered together by ONE
    nf_scan_search over all their queries (a shared scan), the hits split
    back per request; searches with a filter share a scan with those of
    the same filter text only (the filter is parsed against this segment's
    fields), and their matches carry the requested output fields as a
    JSON object.  Index batches' typed columns are appended with the
    documents (nf_segment_append_fields); the schema is set from --fields
    at start.  CONTROL_COMPACT on the control socket compacts the segment
    in a thread while this loop keeps heartbeating and answering searches
    from the old segment (writes are refused, retryable, meanwhile); the
    new segment is swapped in between requests (s_compact).  Every request
    gets one part PUSHed to the reducer (Result{indexed | deleted |
    results, shard, metric}).  A bad request is failed via --errors AND
    answered to the reducer with a part carrying the same status, so the
    request completes.                                                     */
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>

#include "nf_error.h"
#include "nf_filter.h"
#include "nf_limits.h"
#include "nf_msg.h"
#include "nf_pod.h"
#include "nf_scan.h"
#include "nf_segment.h"
#include "nf_sys.h"
#include "nf_payload.h"

#define S_BATCH_MSGS 1024       /* at most this many requests per wake-up ... */
#define S_BATCH_QUERIES 4096    /* ... and this many queued search queries */
#define S_SETTLE_MS 1           /* groups in flight: how often to look whether they are durable */
#define S_GROUP_MSGS 256        /* index requests committed together, at most ... */
#define S_GROUP_DOCS 65536      /* ... and this many documents ... */
#define S_GROUP_VEC_BYTES (2u << 20)    /* ... and 2 MiB of vectors, unless one request
                                           is bigger: that one is a group of its own */

/* Why groups stop at 2 MiB of vectors: one request's block is appended
   from its frame as it is, the blocks of several are first copied into one
   (the segment writes one aligned block per append), and the commits
   queued behind the disk share their data syncs, so more, smaller commits
   cost little.  1M x 128 in batches of 10,000 through 2 shards (a shard
   gets ~2.5 MB requests): 2.23-2.44 -> 2.07-2.31 s, 6 of 8 interleaved
   pairs faster, the shards' CPU 77-94 -> 73-86 ticks (against groups of up
   to 32 MiB); batches of 256: 6.4-6.6 s either way.  It also bounds what a
   shard holds: NF_SEGMENT_PIPE_DEPTH + 1 groups in flight. */

/* Index requests drained together are committed together: their documents
   go to the segment in ONE append (one round of fdatasyncs), in arrival
   order, so upserts resolve as if applied one by one.  Each request is
   answered once the group is durable.  The append is pipelined
   (nf_segment_append_start): while a group's syncs run on the segment's
   thread the shard drains and writes the next group, and a group is
   answered once a later start or nf_segment_append_poll says it is
   durable; while groups are in flight and nothing arrives the shard
   looks every S_SETTLE_MS (s_step), rather than blocking until all are
   durable, so it goes on taking the next requests while the disk syncs.
   1M x 128 through one shard: 3.41 -> 2.95 s; two shards on 2 cores:
   2.83 -> 2.71 s (means of 8 interleaved runs). */
typedef struct {
    nf_msg_t msg;               /* owns the message the documents point into */
    uint64_t recv_us;
    size_t d0, n;               /* its documents in the group */
    const float *vecs;          /* their vectors: the batch's own block (aligned, it
                                   stays with msg until the commit), or NULL: copied
                                   into the group's */
    nf_fval_t *fv;              /* its documents' typed values (n x columns), their */
    char *strs;                 /* keywords NUL-terminated and keyword[] pointers; */
    const char **ptrs;          /* freed after the commit */
} s_wreq_t;

/* The documents of a group, copied straight from the batches' columns:
   vectors into one block, NUL-terminated ids into one buffer, encoded
   payloads into another (all reused from group to group); the pointers
   of docs are set at commit, once the buffers stop moving. */
typedef struct {
    s_wreq_t reqs[S_GROUP_MSGS];
    size_t nreqs;
    nf_doc_t *docs;
    nf_fields_t *fields;        /* each document's typed values (into its request's fv) */
    float *vecs;
    size_t *idoff, *ploff;      /* each document's id and payload in idbuf / plbuf */
    char *idbuf;
    uint8_t *plbuf;
    size_t idlen, idcap, pllen, plcap;
    size_t ndocs, cap;
    char **delids;              /* a delete's ids, NUL-terminated, in idbuf */
    size_t delcap;
} s_group_t;

typedef struct {
    nf_pod_t *pod;
    zsock_t *router, *reducer;
    nf_segment_t *seg;
    uint32_t dim, shard;
    nf_metric_t metric;
    nf_scan_opts_t scan;
    uint64_t hb_us, next_hb;
    uint64_t router_seen;       /* monotonic us of the router's last ping, 0 = never */
    s_group_t group;            /* index requests of the current drain */
    struct {                    /* committed groups not known durable, oldest first */
        s_wreq_t *reqs;
        size_t n;
    } flight[NF_SEGMENT_PIPE_DEPTH + 1];
    size_t nflight;
    bool compacting;            /* seg is a read-only handle on the old segment while
                                   a thread compacts it (s_compact): writes refused */
} indexer_t;

typedef struct {
    nf_msg_t msg;
    uint64_t recv_us;
    size_t q0, nq, k;
    nf_filter_t *filter;        /* parsed against this segment, or NULL; owned */
} pending_t;

/* PUSH one part for the request in env to the reducer. */
static void
s_part(indexer_t *self, const nf_env_t *env, Nflow__Result *res,
       Nflow__Status *status, uint64_t recv_us)
{
    nf_env_t out;
    nf_env_init(&out);
    out.request_id = env->request_id;
    out.deadline_us = env->deadline_us;
    out.route = env->route;
    out.n_route = env->n_route;
    out.status = status;
    res->shard = self->shard;
    res->metric = (char *) nf_metric_name(self->metric);
    out.body_case = NF_BODY_RESULT;
    out.result = res;
    if (nf_msg_send_hop(self->reducer, NULL, &out, nf_pod_name(self->pod), recv_us, 0)
        != NF_OK)
        nf_pod_log(self->pod, "cannot send a part to the reducer: %s", nf_error_msg());
}

/* Fail the request: to the gateway via --errors, and a part with the same
   status to the reducer so the request completes. */
static void __attribute__((format(printf, 5, 6)))
s_fail(indexer_t *self, const nf_env_t *env, uint64_t recv_us, Nflow__StatusCode code,
       const char *fmt, ...)
{
    char text[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    nf_pod_fail(self->pod, env->request_id, code, "%s: %s", nf_pod_name(self->pod), text);
    Nflow__Status st = NFLOW__STATUS__INIT;
    st.code = code;
    st.message = text;
    Nflow__Result res = NFLOW__RESULT__INIT;
    s_part(self, env, &res, &st, recv_us);
}

/* Fail a request after the segment refused it with rc: bad input
   (NF_EINVAL, NF_EDIM) is the client's and its message goes back; other
   errors carry file paths of this host, so the full message is logged
   here and the client gets the shard and the operation only. */
static void
s_fail_store(indexer_t *self, const nf_env_t *env, uint64_t recv_us, int rc,
             const char *what)
{
    if (rc == NF_EINVAL || rc == NF_EDIM) {
        s_fail(self, env, recv_us, rc == NF_EDIM ? NFLOW__STATUS_CODE__STATUS_BAD_DIM
                                                 : NFLOW__STATUS_CODE__STATUS_BAD_REQUEST,
               "%s", nf_error_msg());
        return;
    }
    nf_pod_log(self->pod, "request %llu: %s failed: %s", (unsigned long long) env->request_id,
               what, nf_error_msg());
    s_fail(self, env, recv_us, NFLOW__STATUS_CODE__STATUS_INTERNAL,
           "shard %u: %s failed: %s (details in the shard's log)", self->shard, what,
           nf_strerror(rc));
}

static void
s_heartbeat(indexer_t *self, Nflow__ControlCommand command)
{
    nf_env_t env;
    nf_env_init(&env);
    Nflow__Control c = NFLOW__CONTROL__INIT;
    c.command = command;
    c.pod = (char *) nf_pod_name(self->pod);
    c.shard = self->shard;
    c.dim = self->dim;
    c.ready = true;
    c.fingerprint = nf_pod_fingerprint(self->pod);      /* the router refuses another flow */
    c.canonical = (char *) nf_pod_canon(self->pod);     /* ... naming the key that differs */
    env.body_case = NF_BODY_CONTROL;
    env.control = &c;
    nf_msg_send(self->router, NULL, &env, ZMQ_DONTWAIT);     /* best effort */
    self->next_hb = nf_now_us() + self->hb_us;
}

static void
s_group_free(s_group_t *g)
{
    free(g->docs);
    free(g->fields);
    free(g->vecs);
    free(g->idoff);
    free(g->ploff);
    free(g->idbuf);
    free(g->plbuf);
    free(g->delids);
    memset(g, 0, sizeof *g);
}

static int
s_group_reserve(indexer_t *self, s_group_t *g, size_t more)
{
    if (g->ndocs + more <= g->cap)
        return NF_OK;
    size_t cap = g->cap ? g->cap : 1024;
    while (cap < g->ndocs + more)
        cap *= 2;
    nf_doc_t *docs = realloc(g->docs, cap * sizeof *docs);
    if (docs)
        g->docs = docs;
    float *vecs = docs ? realloc(g->vecs, cap * (size_t) self->dim * sizeof *vecs) : NULL;
    if (vecs)
        g->vecs = vecs;
    size_t *idoff = vecs ? realloc(g->idoff, cap * sizeof *idoff) : NULL;
    if (idoff)
        g->idoff = idoff;
    size_t *ploff = idoff ? realloc(g->ploff, cap * sizeof *ploff) : NULL;
    if (ploff)
        g->ploff = ploff;
    nf_fields_t *fields = ploff ? realloc(g->fields, cap * sizeof *fields) : NULL;
    if (fields)
        g->fields = fields;
    if (!fields)
        return nf_error_set(NF_ENOMEM, "out of memory for %zu docs", g->ndocs + more);
    g->cap = cap;
    return NF_OK;
}

/* Room for more bytes at the end of *buf (len used of cap). */
static int
s_room(void **buf, size_t *cap, size_t len, size_t more)
{
    if (more <= *cap - len)
        return NF_OK;
    size_t c = *cap ? *cap : 65536;
    while (c - len < more)
        c *= 2;
    void *p = realloc(*buf, c);
    if (!p)
        return nf_error_set(NF_ENOMEM, "out of memory for %zu bytes", c);
    *buf = p;
    *cap = c;
    return NF_OK;
}

/* Answer every request of reqs[0..n) after an append that returned rc. */
static void
s_group_answer(indexer_t *self, s_wreq_t *reqs, size_t n, int rc)
{
    for (size_t i = 0; i < n; i++) {
        const nf_env_t *env = reqs[i].msg.env;
        if (rc != NF_OK) {
            s_fail_store(self, env, reqs[i].recv_us, rc, "index");
            continue;
        }
        Nflow__Result res = NFLOW__RESULT__INIT;
        res.indexed = reqs[i].n;
        s_part(self, env, &res, NULL, reqs[i].recv_us);
        nf_pod_stats(self->pod)->served++;
    }
}

/* Free requests answered (their messages and typed values). */
static void
s_wreqs_free(s_wreq_t *reqs, size_t n)
{
    for (size_t r = 0; r < n; r++) {
        nf_msg_clear(&reqs[r].msg);
        free(reqs[r].fv);
        free(reqs[r].strs);
        free(reqs[r].ptrs);
    }
}

/* Answer the groups in flight but the newest `keep` with rc (NF_OK: they
   are durable). */
static void
s_flights(indexer_t *self, size_t keep, int rc)
{
    size_t n = self->nflight > keep ? self->nflight - keep : 0;
    for (size_t i = 0; i < n; i++) {
        s_group_answer(self, self->flight[i].reqs, self->flight[i].n, rc);
        s_wreqs_free(self->flight[i].reqs, self->flight[i].n);
        free(self->flight[i].reqs);
    }
    memmove(self->flight, self->flight + n, (self->nflight - n) * sizeof self->flight[0]);
    self->nflight -= n;
}

/* Wait until every group in flight is durable and answer them. */
static void
s_flush(indexer_t *self)
{
    if (self->nflight)
        s_flights(self, 0, nf_segment_append_wait(self->seg));
}

/* Answer the groups in flight that are durable by now, without waiting
   (a failed commit: all of them, with its error). */
static void
s_settled(indexer_t *self)
{
    size_t pending;
    if (!self->nflight)
        return;
    if (nf_segment_append_poll(self->seg, &pending) != NF_OK)
        s_flush(self);
    else
        s_flights(self, pending, NF_OK);
}

/* Commit the group (if any) and answer its requests, or leave them in
   flight (see s_wreq_t); the group is empty afterwards.  A group refused
   as a whole for bad input (NF_EINVAL: the segment validates a batch
   before writing anything) is retried request by request, so only the bad
   request fails. */
static void
s_group_commit(indexer_t *self, s_group_t *g)
{
    if (!g->nreqs)
        return;
    for (size_t i = 0; i < g->ndocs; i++) {
        g->docs[i].vector = g->vecs + i * self->dim;
        g->docs[i].id = g->idbuf + g->idoff[i];
        g->docs[i].payload = g->docs[i].payload_len ? g->plbuf + g->ploff[i] : NULL;
    }
    for (size_t r = 0; r < g->nreqs; r++)       /* appended straight from the batch */
        for (size_t j = 0; g->reqs[r].vecs && j < g->reqs[r].n; j++)
            g->docs[g->reqs[r].d0 + j].vector = g->reqs[r].vecs + j * self->dim;
    s_wreq_t *moved = g->ndocs ? malloc(g->nreqs * sizeof *moved) : NULL;
    int rc = !g->ndocs ? NF_OK
             : moved ? nf_segment_append_start(self->seg, g->docs, g->fields, g->ndocs)
                     : nf_segment_append_fields(self->seg, g->docs, g->fields, g->ndocs);
    if (rc == NF_OK && moved) {
        /* in flight: answered by s_flights once durable */
        memcpy(moved, g->reqs, g->nreqs * sizeof *moved);
        self->flight[self->nflight].reqs = moved;
        self->flight[self->nflight++].n = g->nreqs;
        g->nreqs = 0;
        s_flights(self, NF_SEGMENT_PIPE_DEPTH, NF_OK);
    } else {
        free(moved);
        if (rc != NF_OK) {
            /* a failed start: either an earlier group's commit failed (the
               handle keeps it, and so does the wait) or this group was
               refused before anything was written, the earlier ones
               being durable */
            int prev = nf_segment_append_wait(self->seg);
            s_flights(self, 0, prev);
            if (prev != NF_OK)
                rc = prev;
        }
        if (rc == NF_EINVAL && g->nreqs > 1) {
            for (size_t r = 0; r < g->nreqs; r++) {
                s_wreq_t *w = &g->reqs[r];
                s_group_answer(self, w, 1, nf_segment_append_fields(self->seg, g->docs + w->d0,
                                                                    g->fields + w->d0, w->n));
            }
        } else {
            s_group_answer(self, g->reqs, g->nreqs, rc);
        }
    }
    s_wreqs_free(g->reqs, g->nreqs);
    g->nreqs = 0;
    g->ndocs = 0;
    g->idlen = 0;
    g->pllen = 0;
    nf_pod_stats(self->pod)->rows = nf_segment_count(self->seg);
}

/* Check an index request and add its documents to the group, straight
   from its columns; true when it was added (the group then owns msg).  A
   bad request is failed at once. */
static bool
s_index(indexer_t *self, s_group_t *g, nf_msg_t *msg, uint64_t recv_us)
{
    const nf_env_t *env = msg->env;
    const Nflow__IndexBatch *b = env->index;
    size_t n = b->count, len;
    if (env->deadline_us && nf_now_us() >= env->deadline_us) {
        /* its client was answered TIMEOUT already (or is about to be): a
           write that arrives late is never applied (re-running stores it) */
        s_fail(self, env, recv_us, NFLOW__STATUS_CODE__STATUS_TIMEOUT,
               "shard %u: the index request expired before it was applied", self->shard);
        return false;
    }
    /* counts and offsets were checked against the limits by nf_msg_recv */
    for (size_t i = 0; i < n; i++) {
        nf_batch_id(b, i, &len);
        if (len == 0) {
            s_fail(self, env, recv_us, NFLOW__STATUS_CODE__STATUS_BAD_REQUEST,
                   "doc %zu: id must have 1..%d bytes, has 0", i, NF_ID_MAX);
            return false;
        }
    }
    if (n && b->vectors.len == 0) {
        const char *id = nf_batch_id(b, 0, &len);
        s_fail(self, env, recv_us, NFLOW__STATUS_CODE__STATUS_BAD_DIM,
               "doc '%.*s': no vector (a flow without an encoder needs vectors)", (int) len, id);
        return false;
    }
    if (n && b->dim != self->dim) {
        const char *id = nf_batch_id(b, 0, &len);
        s_fail(self, env, recv_us, NFLOW__STATUS_CODE__STATUS_BAD_DIM,
               "doc '%.*s': vector has %u values, expected %u", (int) len, id, b->dim,
               self->dim);
        return false;
    }
    /* values that are not finite: the segment refuses the group before
       writing anything and the group is retried request by request
       (s_group_commit), so only the request that has them fails */
    /* typed values (checked against the limits by nf_msg_recv; their names
       and types are checked by the segment at the append) */
    nf_fval_t *fv = NULL;
    char *strs = NULL;
    const char **ptrs = NULL;
    if (b->n_columns && n) {
        size_t sbytes, nptrs;
        nf_batch_fields_room(b, &sbytes, &nptrs);
        fv = malloc(n * b->n_columns * sizeof *fv);
        strs = malloc(sbytes);
        ptrs = malloc(nptrs * sizeof *ptrs);
        if (!fv || !strs || !ptrs) {
            free(fv);
            free(strs);
            free(ptrs);
            s_fail(self, env, recv_us, NFLOW__STATUS_CODE__STATUS_INTERNAL, "out of memory");
            return false;
        }
    }
    if (g->nreqs == S_GROUP_MSGS
        || (g->ndocs && (g->ndocs + n > S_GROUP_DOCS
                         || (g->ndocs + n) * self->dim * 4 > S_GROUP_VEC_BYTES)))
        s_group_commit(self, g);
    if (s_group_reserve(self, g, n) != NF_OK
        || s_room((void **) &g->idbuf, &g->idcap, g->idlen, b->ids.len + n) != NF_OK) {
        free(fv);
        free(strs);
        free(ptrs);
        s_fail(self, env, recv_us, NFLOW__STATUS_CODE__STATUS_INTERNAL, "%s", nf_error_msg());
        return false;
    }
    {
        char *sat = strs;
        const char **pat = ptrs;
        for (size_t i = 0; i < n; i++) {
            size_t nv = fv ? nf_batch_fields(b, i, fv + i * b->n_columns, &sat, &pat) : 0;
            g->fields[g->ndocs + i] = (nf_fields_t) {fv ? fv + i * b->n_columns : NULL, nv};
        }
    }
    size_t d0 = g->ndocs, id0 = g->idlen, pl0 = g->pllen;
    /* vectors: one copy of the whole block */
    const float *vecs = NULL;
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    if ((uintptr_t) b->vectors.data % _Alignof(float) == 0)
        vecs = (const float *) (const void *) b->vectors.data;   /* no copy */
#endif
    if (!vecs)
        memcpy(g->vecs + d0 * self->dim, b->vectors.data, b->vectors.len);
    for (size_t i = 0; i < n; i++) {
        nf_doc_t *doc = &g->docs[d0 + i];
        const char *id = nf_batch_id(b, i, &len);
        g->idoff[d0 + i] = g->idlen;
        memcpy(g->idbuf + g->idlen, id, len);
        g->idbuf[g->idlen + len] = '\0';
        g->idlen += len + 1;
        size_t tlen, t0, off;
        const char *text = nf_batch_text(b, i, &tlen);
        size_t nt = nf_batch_tags(b, i, &t0);
        nf_tagspan_t tags[NF_TAGS_MAX];     /* nt <= NF_TAGS_MAX: checked by nf_msg_recv */
        for (size_t t = 0; t < nt; t++) {
            nf_col_span(b->tag_key_ends, b->n_tag_key_ends, t0 + t, &off, &tags[t].key_len);
            tags[t].key = (const char *) b->tag_keys.data + off;
            nf_col_span(b->tag_value_ends, b->n_tag_value_ends, t0 + t, &off,
                        &tags[t].value_len);
            tags[t].value = (const char *) b->tag_values.data + off;
        }
        int rc;
        size_t plen = nf_payload_size_n(tlen, tags, nt, &rc);
        if (rc == NF_OK)
            rc = s_room((void **) &g->plbuf, &g->plcap, g->pllen, plen);
        if (rc != NF_OK) {
            s_fail(self, env, recv_us, rc == NF_ENOMEM ? NFLOW__STATUS_CODE__STATUS_INTERNAL
                                                       : NFLOW__STATUS_CODE__STATUS_BAD_REQUEST,
                   "doc '%.*s': %s", (int) len, id, nf_error_msg());
            g->ndocs = d0;
            g->idlen = id0;
            g->pllen = pl0;
            free(fv);
            free(strs);
            free(ptrs);
            return false;
        }
        if (plen)       /* none for a document without text and tags (plbuf may be NULL) */
            nf_payload_write_n(g->plbuf + g->pllen, text, tlen, tags, nt);
        g->ploff[d0 + i] = g->pllen;
        g->pllen += plen;
        doc->payload_len = plen;
        g->ndocs++;
    }
    s_wreq_t *w = &g->reqs[g->nreqs++];
    w->msg = *msg;
    w->recv_us = recv_us;
    w->d0 = d0;
    w->vecs = vecs;
    w->n = n;
    w->fv = fv;
    w->strs = strs;
    w->ptrs = ptrs;
    return true;
}

static void
s_delete(indexer_t *self, const nf_env_t *env, uint64_t recv_us)
{
    s_group_t *g = &self->group;    /* committed and empty: its id buffer is free */
    const Nflow__DeleteRequest *d = env->delete_;
    size_t deleted = 0, len;
    if (env->deadline_us && nf_now_us() >= env->deadline_us) {
        s_fail(self, env, recv_us, NFLOW__STATUS_CODE__STATUS_TIMEOUT,
               "shard %u: the delete request expired before it was applied", self->shard);
        return;
    }
    for (size_t i = 0; i < d->count; i++) {
        nf_delete_id(d, i, &len);
        if (len == 0) {
            s_fail(self, env, recv_us, NFLOW__STATUS_CODE__STATUS_BAD_REQUEST,
                   "id %zu: id must have 1..%d bytes, has 0", i, NF_ID_MAX);
            return;
        }
    }
    if (s_room((void **) &g->idbuf, &g->idcap, 0, d->ids.len + d->count) != NF_OK
        || s_room((void **) &g->delids, &g->delcap, 0, d->count * sizeof *g->delids)
               != NF_OK) {
        s_fail(self, env, recv_us, NFLOW__STATUS_CODE__STATUS_INTERNAL, "%s", nf_error_msg());
        return;
    }
    size_t at = 0;
    for (size_t i = 0; i < d->count; i++) {
        const char *id = nf_delete_id(d, i, &len);
        memcpy(g->idbuf + at, id, len);
        g->idbuf[at + len] = '\0';
        g->delids[i] = g->idbuf + at;
        at += len + 1;
    }
    int rc = nf_segment_delete(self->seg, (const char *const *) g->delids, d->count, &deleted);
    if (rc != NF_OK) {
        s_fail_store(self, env, recv_us, rc, "delete");
        return;
    }
    Nflow__Result res = NFLOW__RESULT__INIT;
    res.deleted = deleted;
    s_part(self, env, &res, NULL, recv_us);
    nf_pod_stats(self->pod)->served++;
    nf_pod_stats(self->pod)->rows = nf_segment_count(self->seg);
}

/* A row of the answer whose payload is decoded once, however many
   queries of the request match it. */
typedef struct {
    uint64_t row;
    size_t j;                   /* first match of it, in answer order */
} s_rowref_t;

static int
s_cmp_rowref(const void *a, const void *b)
{
    const s_rowref_t *x = a, *y = b;
    return x->row < y->row ? -1 : x->row > y->row ? 1 : x->j < y->j ? -1 : x->j > y->j;
}

/* Answer one search from the shared scan's hits (row keys).  Text and
   tags only when the request asks (with_payload), each distinct row's
   payload decoded once; the part's bytes are counted as it is built and
   the request is answered STATUS_TOO_LARGE before anything past
   NF_ANSWER_MAX is decoded. */
static void
s_answer(indexer_t *self, const pending_t *p, const nf_hit_t *hits, const size_t *counts,
         size_t kmax)
{
    const nf_env_t *env = p->msg.env;
    bool with_payload = env->search->with_payload;
    size_t total = 0;
    for (size_t q = 0; q < p->nq; q++)
        total += counts[p->q0 + q] < p->k ? counts[p->q0 + q] : p->k;
    /* total <= nq x k <= NF_MATCHES_MAX: checked on the request by nf_msg_recv */
    Nflow__Matches *matches = calloc(p->nq ? p->nq : 1, sizeof *matches);
    Nflow__Matches **mptr = calloc(p->nq ? p->nq : 1, sizeof *mptr);
    Nflow__Document *docs = calloc(total ? total : 1, sizeof *docs);
    Nflow__Document **dptr = calloc(total ? total : 1, sizeof *dptr);
    s_rowref_t *refs = with_payload ? calloc(total ? total : 1, sizeof *refs) : NULL;
    nf_payload_t *pls = with_payload ? calloc(total ? total : 1, sizeof *pls) : NULL;
    size_t npls = 0;
    Nflow__Document__TagsEntry **tagptrs = NULL;
    Nflow__Document__TagsEntry *tagents = NULL;
    char *fbuf = NULL;          /* the matches' output fields, JSON objects one after another */
    int fidx[NF_FIELDS_MAX];    /* n_fields <= NF_FIELDS_MAX: checked by nf_msg_recv */
    size_t nf = env->search->n_fields;
    for (size_t f = 0; f < nf; f++)     /* each one exists: checked when queued */
        fidx[f] = nf_segment_field_find(self->seg, env->search->fields[f],
                                        strlen(env->search->fields[f]));
    if (!matches || !mptr || !docs || !dptr || (with_payload && (!refs || !pls))) {
        s_fail(self, env, p->recv_us, NFLOW__STATUS_CODE__STATUS_INTERNAL, "out of memory");
        goto done;
    }
    size_t bytes = 16 * p->nq, j = 0;      /* an upper bound of the packed part */
    for (size_t q = 0; q < p->nq; q++) {
        size_t c = counts[p->q0 + q] < p->k ? counts[p->q0 + q] : p->k;
        Nflow__Matches init = NFLOW__MATCHES__INIT;
        matches[q] = init;
        matches[q].matches = dptr + j;
        matches[q].n_matches = c;
        mptr[q] = &matches[q];
        for (size_t r = 0; r < c; r++, j++) {
            const nf_hit_t *h = &hits[(p->q0 + q) * kmax + r];
            Nflow__Document dinit = NFLOW__DOCUMENT__INIT;
            docs[j] = dinit;
            size_t idlen = 0;
            docs[j].id = (char *) nf_segment_id(self->seg, h->key, &idlen);
            docs[j].score = h->score;
            bytes += idlen + 16;
            dptr[j] = &docs[j];
            if (refs)
                refs[j] = (s_rowref_t){h->key, j};
        }
    }
    if (nf && total) {
        /* {"name":value,...} per match: measured first, against NF_ANSWER_MAX */
        size_t need = 0;
        size_t m = 0;
        for (size_t q = 0; q < p->nq; q++) {
            size_t c = counts[p->q0 + q] < p->k ? counts[p->q0 + q] : p->k;
            for (size_t r = 0; r < c; r++, m++) {
                uint64_t row = hits[(p->q0 + q) * kmax + r].key;
                need += 3;
                for (size_t f = 0; f < nf; f++)
                    need += strlen(env->search->fields[f]) + 4
                            + nf_segment_value_json(self->seg, (size_t) fidx[f], row, NULL, 0);
            }
        }
        bytes += need + 8 * total;
        if (bytes > NF_ANSWER_MAX) {
            s_fail(self, env, p->recv_us, NFLOW__STATUS_CODE__STATUS_TOO_LARGE,
                   "shard %u: the answer would be over %zu bytes, at most %u (NF_ANSWER_MAX): "
                   "ask for fewer queries, a smaller top_k or fewer fields", self->shard, bytes,
                   NF_ANSWER_MAX);
            goto done;
        }
        if (!(fbuf = malloc(need + 1))) {
            s_fail(self, env, p->recv_us, NFLOW__STATUS_CODE__STATUS_INTERNAL, "out of memory");
            goto done;
        }
        size_t at = 0;
        m = 0;
        for (size_t q = 0; q < p->nq; q++) {
            size_t c = counts[p->q0 + q] < p->k ? counts[p->q0 + q] : p->k;
            for (size_t r = 0; r < c; r++, m++) {
                uint64_t row = hits[(p->q0 + q) * kmax + r].key;
                docs[m].fields = fbuf + at;
                fbuf[at++] = '{';
                for (size_t f = 0; f < nf; f++) {
                    at += (size_t) snprintf(fbuf + at, need + 1 - at, "%s\"%s\":", f ? "," : "",
                                            env->search->fields[f]);
                    at += nf_segment_value_json(self->seg, (size_t) fidx[f], row, fbuf + at,
                                                need + 1 - at);
                }
                fbuf[at++] = '}';
                fbuf[at++] = '\0';
            }
        }
    }
    if (with_payload && total) {
        /* count every match's payload bytes before decoding any */
        qsort(refs, total, sizeof *refs, s_cmp_rowref);
        for (size_t i = 0; i < total; i++) {
            size_t plen = 0;
            nf_segment_payload(self->seg, refs[i].row, &plen);
            bytes += plen + 16;
        }
        if (bytes > NF_ANSWER_MAX) {
            s_fail(self, env, p->recv_us, NFLOW__STATUS_CODE__STATUS_TOO_LARGE,
                   "shard %u: the answer would be over %zu bytes, at most %u (NF_ANSWER_MAX): "
                   "ask for fewer queries, a smaller top_k or no payload", self->shard, bytes,
                   NF_ANSWER_MAX);
            goto done;
        }
        size_t ntags_all = 0;
        size_t *first = malloc(total * sizeof *first);  /* payload index of each match */
        if (!first) {
            s_fail(self, env, p->recv_us, NFLOW__STATUS_CODE__STATUS_INTERNAL, "out of memory");
            goto done;
        }
        for (size_t i = 0; i < total; i++) {
            if (i == 0 || refs[i].row != refs[i - 1].row) {
                size_t plen = 0;
                const void *pl = nf_segment_payload(self->seg, refs[i].row, &plen);
                if (nf_payload_decode(pl, plen, &pls[npls]) != NF_OK)
                    memset(&pls[npls], 0, sizeof pls[npls]);   /* damaged: id and score only */
                ntags_all += pls[npls].ntags;
                npls++;
            }
            first[refs[i].j] = npls - 1;
        }
        size_t wire_tags = 0;   /* tags as sent: once per match */
        for (size_t m = 0; m < total; m++)
            wire_tags += pls[first[m]].ntags;
        if (wire_tags > NF_FRAME_TAGS_MAX) {
            free(first);
            s_fail(self, env, p->recv_us, NFLOW__STATUS_CODE__STATUS_TOO_LARGE,
                   "shard %u: the answer would carry %zu tags, at most %d (NF_FRAME_TAGS_MAX): "
                   "ask for fewer queries, a smaller top_k or no payload", self->shard,
                   wire_tags, NF_FRAME_TAGS_MAX);
            goto done;
        }
        if (ntags_all) {
            tagents = calloc(ntags_all, sizeof *tagents);
            tagptrs = calloc(ntags_all, sizeof *tagptrs);
            if (!tagents || !tagptrs) {
                free(first);
                s_fail(self, env, p->recv_us, NFLOW__STATUS_CODE__STATUS_INTERNAL,
                       "out of memory");
                goto done;
            }
        }
        /* one tag array per distinct row, shared by its matches */
        size_t t = 0;
        size_t *tag0 = malloc((npls ? npls : 1) * sizeof *tag0);
        if (!tag0) {
            free(first);
            s_fail(self, env, p->recv_us, NFLOW__STATUS_CODE__STATUS_INTERNAL, "out of memory");
            goto done;
        }
        for (size_t d = 0; d < npls; d++) {
            tag0[d] = t;
            for (size_t u = 0; u < pls[d].ntags; u++, t++) {
                Nflow__Document__TagsEntry e = NFLOW__DOCUMENT__TAGS_ENTRY__INIT;
                e.key = (char *) pls[d].tags[u].key;
                e.value = (char *) pls[d].tags[u].value;
                tagents[t] = e;
                tagptrs[t] = &tagents[t];
            }
        }
        for (size_t m = 0; m < total; m++) {
            const nf_payload_t *pl = &pls[first[m]];
            docs[m].text = (char *) (pl->text ? pl->text : "");
            docs[m].tags = pl->ntags ? tagptrs + tag0[first[m]] : NULL;
            docs[m].n_tags = pl->ntags;
        }
        free(tag0);
        free(first);
    }
    Nflow__Result res = NFLOW__RESULT__INIT;
    res.results = mptr;
    res.n_results = p->nq;
    s_part(self, env, &res, NULL, p->recv_us);
    nf_pod_stats(self->pod)->served++;
done:
    free(fbuf);
    for (size_t d = 0; pls && d < npls; d++)
        nf_payload_clear(&pls[d]);
    free(tagents);
    free(tagptrs);
    free(pls);
    free(refs);
    free(dptr);
    free(docs);
    free(mptr);
    free(matches);
}

/* One shared scan for the pending searches pend[0..npend) (nq queries),
   all with the same filter (NULL: none). */
static void
s_scan_group(indexer_t *self, pending_t *pend, size_t npend, size_t nq,
             const nf_filter_t *filter)
{
    size_t kmax = 1;
    for (size_t i = 0; i < npend; i++)
        if (pend[i].k > kmax)
            kmax = pend[i].k;
    float *queries = malloc((nq ? nq : 1) * (size_t) self->dim * sizeof *queries);
    nf_hit_t *hits = malloc((nq ? nq : 1) * kmax * sizeof *hits);
    size_t *counts = calloc(nq ? nq : 1, sizeof *counts);
    int rc = queries && hits && counts ? NF_OK : nf_error_set(NF_ENOMEM, "out of memory for "
                                                              "%zu queries x %zu", nq, kmax);
    for (size_t i = 0; rc == NF_OK && i < npend; i++) {
        const Nflow__SearchRequest *s = pend[i].msg.env->search;
        /* the query block, checked before: count x dim float32 */
        memcpy(queries + pend[i].q0 * self->dim, s->vectors.data, s->vectors.len);
    }
    s_heartbeat(self, NFLOW__CONTROL_COMMAND__CONTROL_HEARTBEAT);
    self->scan.stop = &zsys_interrupted;    /* SIGTERM ends a long scan between windows */
    nf_scan_opts_t opts = self->scan;
    opts.filter = filter;
    if (rc == NF_OK)
        rc = nf_scan_search(self->seg, queries, nq, kmax, &opts, hits, counts);
    s_heartbeat(self, NFLOW__CONTROL_COMMAND__CONTROL_HEARTBEAT);
    for (size_t i = 0; i < npend; i++) {
        if (rc == NF_OK)
            s_answer(self, &pend[i], hits, counts, kmax);
        else
            s_fail_store(self, pend[i].msg.env, pend[i].recv_us, rc, "search");
    }
    nf_segment_release_lookups(self->seg);     /* ids and payloads read for the answers */
    free(queries);
    free(hits);
    free(counts);
}

/* The pending searches, in shared scans: the unfiltered ones together,
   and those with a filter grouped by its text (searches with different
   filters cannot share one filtered scan). */
static void
s_search_batch(indexer_t *self, pending_t *pend, size_t npend, size_t nq)
{
    (void) nq;
    bool *done = calloc(npend ? npend : 1, sizeof *done);
    pending_t *grp = malloc((npend ? npend : 1) * sizeof *grp);
    if (!done || !grp) {
        for (size_t i = 0; i < npend; i++)
            s_fail(self, pend[i].msg.env, pend[i].recv_us, NFLOW__STATUS_CODE__STATUS_INTERNAL,
                   "shard %u: out of memory", self->shard);
        goto out;
    }
    for (size_t i = 0; i < npend; i++) {
        if (done[i])
            continue;
        const char *text = pend[i].filter ? pend[i].msg.env->search->filter : NULL;
        size_t n = 0, q = 0;
        for (size_t j = i; j < npend; j++) {
            const char *t = pend[j].filter ? pend[j].msg.env->search->filter : NULL;
            if (done[j] || (text ? !t || strcmp(t, text) : t != NULL))
                continue;
            done[j] = true;
            grp[n] = pend[j];
            grp[n].q0 = q;
            q += grp[n].nq;
            n++;
        }
        s_scan_group(self, grp, n, q, pend[i].filter);
    }
out:
    free(done);
    free(grp);
}

/* Check a search; true when it is queued in pend (which then owns msg). */
static bool
s_queue_search(indexer_t *self, nf_msg_t *msg, uint64_t recv_us, pending_t *pend,
               size_t *npend, size_t *nq)
{
    const nf_env_t *env = msg->env;
    const Nflow__SearchRequest *s = env->search;
    if (env->deadline_us && nf_now_us() >= env->deadline_us)
        return false;   /* answered as timed out already: not worth a scan */
    nf_filter_t *filter = NULL;
    if (s->filter && *s->filter && nf_filter_parse_for(s->filter, self->seg, &filter) != NF_OK) {
        s_fail(self, env, recv_us, NFLOW__STATUS_CODE__STATUS_BAD_REQUEST, "%s", nf_error_msg());
        return false;
    }
    for (size_t i = 0; i < s->n_fields; i++)
        if (nf_segment_field_find(self->seg, s->fields[i], strlen(s->fields[i])) < 0) {
            nf_filter_destroy(&filter);
            s_fail(self, env, recv_us, NFLOW__STATUS_CODE__STATUS_BAD_REQUEST,
                   "fields: '%.64s' is not a field of shard %u", s->fields[i], self->shard);
            return false;
        }
    /* counts and sizes were checked against the limits by nf_msg_recv */
    for (size_t q = 0; q < s->count; q++) {
        int rc = NF_OK;
        if (s->vectors.len == 0)
            rc = nf_error_set(NF_EDIM, "no vector (a flow without an encoder needs vectors)");
        else if (s->dim != self->dim)
            rc = nf_error_set(NF_EDIM, "vector has %u values, expected %u", s->dim, self->dim);
        else {
            ProtobufCBinaryData row = {(size_t) s->dim * 4,
                                       s->vectors.data + q * (size_t) s->dim * 4};
            rc = nf_vec_check(&row);
        }
        if (rc != NF_OK) {
            nf_filter_destroy(&filter);
            s_fail(self, env, recv_us, rc == NF_EDIM ? NFLOW__STATUS_CODE__STATUS_BAD_DIM
                                                     : NFLOW__STATUS_CODE__STATUS_BAD_REQUEST,
                   "query %zu: %s", q, nf_error_msg());
            return false;
        }
    }
    pending_t *p = &pend[(*npend)++];
    p->msg = *msg;
    p->recv_us = recv_us;
    p->q0 = *nq;
    p->nq = s->count;
    p->k = nf_msg_top_k(s->top_k);     /* stamped by the gateway; 0 only from a bad peer */
    p->filter = filter;
    *nq += p->nq;
    return true;
}

/* The router's ping: log when the router comes back after silence, or
   runs another flow. */
static void
s_router_ping(indexer_t *self, const Nflow__Control *c)
{
    uint64_t now = nf_now_us();
    if (!self->router_seen || now - self->router_seen > 4 * self->hb_us)
        nf_pod_log(self->pod, "the router (%s) is heard%s", c->pod ? c->pod : "?",
                   c->fingerprint && c->fingerprint != nf_pod_fingerprint(self->pod)
                       ? " (it runs a different flow: it refuses this shard)" : "");
    self->router_seen = now;
}

/* Drain the DEALER: index requests into one group commit, deletes in
   order (after committing the group before them), searches into one
   shared scan after the writes. */
static void
s_drain(indexer_t *self)
{
    pending_t pend[S_BATCH_MSGS];
    size_t npend = 0, nq = 0, kmax = 1;
    for (int i = 0; i < S_BATCH_MSGS && nq < S_BATCH_QUERIES
                    && (zsock_events(self->router) & ZMQ_POLLIN); i++) {
        nf_msg_t msg;
        int rc = nf_msg_recv(self->router, &msg);
        uint64_t recv_us = nf_wall_us();
        bool kept = false;
        if (rc == NF_EIO)
            ;
        else if (rc != NF_OK)
            nf_pod_malformed(self->pod, self->router, &msg, rc);
        else if (self->compacting && (msg.env->body_case == NF_BODY_INDEX
                                      || msg.env->body_case == NF_BODY_DELETE))
            /* not queued until the swap: the gateway's time budget would
               run out on it; the client retries UNAVAILABLE */
            s_fail(self, msg.env, recv_us, NFLOW__STATUS_CODE__STATUS_UNAVAILABLE,
                   "shard %u is compacting its segment: writes are refused until it is "
                   "done; retry", self->shard);
        else if (msg.env->body_case == NF_BODY_INDEX)
            kept = s_index(self, &self->group, &msg, recv_us);
        else if (msg.env->body_case == NF_BODY_DELETE) {
            s_group_commit(self, &self->group);
            s_flush(self);
            s_delete(self, msg.env, recv_us);
        }
        else if (msg.env->body_case == NF_BODY_SEARCH) {
            /* the shared scan holds nq x max k hits: keep it within
               NF_MATCHES_MAX (one request alone always fits) */
            size_t k = nf_msg_top_k(msg.env->search->top_k);
            size_t kb = k > kmax ? k : kmax;
            if (npend && (nq + msg.env->search->count) * kb > NF_MATCHES_MAX) {
                s_group_commit(self, &self->group);
                s_search_batch(self, pend, npend, nq);
                for (size_t j = 0; j < npend; j++) {
                    nf_msg_clear(&pend[j].msg);
                    nf_filter_destroy(&pend[j].filter);
                }
                npend = 0;
                nq = 0;
                kmax = 1;
                kb = k;
            }
            kept = s_queue_search(self, &msg, recv_us, pend, &npend, &nq);
            if (kept)
                kmax = kb;
        }
        else if (msg.env->body_case == NF_BODY_CONTROL
                 && msg.env->control->command == NFLOW__CONTROL_COMMAND__CONTROL_HEARTBEAT)
            s_router_ping(self, msg.env->control);
        else if (msg.env->body_case != NF_BODY_NONE) {
            char why[96];
            snprintf(why, sizeof why, "wrong body for a shard: %s",
                     nf_msg_body_name(msg.env->body_case));
            nf_pod_reject(self->pod, self->router, &msg, why);
        }
        /* else: an error status from the router about something we sent */
        if (!kept)
            nf_msg_clear(&msg);
        /* a long drain (many durable writes) must not look like a dead shard */
        if (nf_now_us() >= self->next_hb)
            s_heartbeat(self, NFLOW__CONTROL_COMMAND__CONTROL_HEARTBEAT);
    }
    s_group_commit(self, &self->group);
    if (npend)
        s_search_batch(self, pend, npend, nq);
    for (size_t i = 0; i < npend; i++) {
        nf_msg_clear(&pend[i].msg);
        nf_filter_destroy(&pend[i].filter);
    }
    /* what is durable by now is answered; the rest once its syncs are done
       (s_step looks every S_SETTLE_MS meanwhile): the shard goes on
       reading and writing the next groups while the disk syncs */
    s_settled(self);
}

static int
s_mkdirs(const char *path)
{
    char buf[4096];
    if (snprintf(buf, sizeof buf, "%s", path) >= (int) sizeof buf)
        return nf_error_set(NF_EINVAL, "workspace path too long");
    for (char *p = buf + 1; ; p++) {
        if (*p == '/' || *p == '\0') {
            char c = *p;
            *p = '\0';
            if (mkdir(buf, 0755) != 0 && errno != EEXIST)
                return nf_error_set(NF_EIO, "mkdir %s: %s", buf, strerror(errno));
            *p = c;
            if (!c)
                break;
        }
    }
    return NF_OK;
}

/* Open (or create) this shard's segment into *out: writable with the
   flow's fields set, or read-only (no lock, nothing changed).  Reads only
   the pod's settings and self's fixed fields (shard, dim, metric), so the
   compaction thread may call it. */
static int
s_segment_open(indexer_t *self, bool readonly, nf_segment_t **out)
{
    const char *ws = nf_pod_get(self->pod, "workspace");
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/shard-%u", ws ? ws : ".", self->shard);
    nf_segment_opts_t opts = {0};
    opts.readonly = readonly;
    opts.vectors = !strcmp(nf_pod_get(self->pod, "vectors"), "memory") ? NF_MEM_MEMORY
                                                                       : NF_MEM_MMAP;
    opts.payloads = !strcmp(nf_pod_get(self->pod, "payloads"), "memory") ? NF_MEM_MEMORY
                                                                         : NF_MEM_MMAP;
    opts.warmup = nf_pod_bool(self->pod, "warmup");
    if (readonly)
        return nf_segment_open(dir, &opts, out);
    int rc = s_mkdirs(ws ? ws : ".");
    if (rc != NF_OK)
        return rc;
    rc = nf_segment_open_or_create(dir, self->dim, self->metric, &opts, out);
    if (rc == NF_OK && nf_segment_notice(*out))    /* a damaged commit, recovered/ */
        nf_pod_log(self->pod, "segment: %s", nf_segment_notice(*out));
    /* the flow's typed fields: new ones are added; a changed or removed
       one is refused by name and the shard does not start */
    nf_field_def_t defs[NF_FIELDS_MAX];
    size_t ndefs = 0;
    if (rc == NF_OK)
        rc = nf_field_defs_parse(nf_pod_get(self->pod, "fields"), defs, NF_FIELDS_MAX, &ndefs);
    if (rc == NF_OK && (ndefs || nf_segment_nfields(*out)))
        rc = nf_segment_set_schema(*out, defs, ndefs);
    if (rc != NF_OK) {
        char why[1024];
        snprintf(why, sizeof why, "%s", nf_error_msg());
        rc = nf_error_set(rc, "fields: %s", why);   /* the segment's message names dir */
    }
    return rc;
}

static int
s_open_segment(indexer_t *self)
{
    if (nf_metric_parse(nf_pod_get(self->pod, "metric"), &self->metric) != NF_OK)
        return nf_error_set(NF_EINVAL, "metric: unknown");
    return s_segment_open(self, false, &self->seg);
}

/* Compaction in a thread (s_compact): phase 0 opens the old segment
   read-only; phase 1 runs nf_segment_compact (writes and syncs the new
   segment beside the old one, swaps the directories, removes the old one)
   and opens the result writable (the id table of a big segment takes a
   while too).  A phase writes a byte to the pipe when it ends. */
typedef struct {
    indexer_t *self;
    int phase;
    char dir[4096];
    uint64_t kept, dropped;
    int rc, orc;                /* compaction, open */
    char why[1024], owhy[1024]; /* nf_error_msg is per thread: copied here */
    nf_segment_t *seg;          /* what the phase opened */
    int pipe[2];
} s_compaction_t;

static void *
s_compact_thread(void *arg)
{
    s_compaction_t *c = arg;
    if (c->phase == 1) {
        c->rc = nf_segment_compact(c->dir, &c->kept, &c->dropped);
        if (c->rc != NF_OK)
            snprintf(c->why, sizeof c->why, "%s", nf_error_msg());
    }
    /* phase 1: the new segment, or the old one when compaction failed
       (unchanged: nf_segment_compact swaps in only a whole new segment) */
    c->orc = s_segment_open(c->self, c->phase == 0, &c->seg);
    if (c->orc != NF_OK) {
        snprintf(c->owhy, sizeof c->owhy, "%s", nf_error_msg());
        nf_segment_destroy(&c->seg);
    }
    ssize_t w;
    do
        w = write(c->pipe[1], "x", 1);
    while (w < 0 && errno == EINTR);
    return NULL;
}

/* Run phase c->phase in a thread while this loop heartbeats and drains
   the router (searches from self->seg; writes refused: self->compacting). */
static int
s_serve_while(indexer_t *self, s_compaction_t *c)
{
    pthread_t th;
    if (pthread_create(&th, NULL, s_compact_thread, c) != 0)
        return nf_error_set(NF_EIO, "shard %u: cannot start the compaction thread", self->shard);
    zmq_pollitem_t items[2] = {{zsock_resolve(self->router), 0, ZMQ_POLLIN, 0},
                               {NULL, c->pipe[0], ZMQ_POLLIN, 0}};
    bool told = false;
    for (;;) {
        uint64_t now = nf_now_us();
        if (now >= self->next_hb)
            s_heartbeat(self, NFLOW__CONTROL_COMMAND__CONTROL_HEARTBEAT);
        if (zsys_interrupted && !told && c->phase == 1) {
            /* the compaction is crash-safe, but finishing it is cheaper
               than redoing it: stop once it is done */
            nf_pod_log(self->pod, "stopping once the compaction is done");
            told = true;
        }
        now = nf_now_us();
        long wait = self->next_hb > now ? (long) ((self->next_hb - now + 999) / 1000) : 0;
        int n = zmq_poll(items, 2, wait);
        if (n < 0 && zmq_errno() != EINTR)
            break;      /* cannot happen with these items; the join still waits */
        if (n > 0 && (items[1].revents & ZMQ_POLLIN))
            break;
        /* zsock_events: also what arrived since the poll (edge-triggered fd) */
        if (zsock_events(self->router) & ZMQ_POLLIN)
            s_drain(self);
    }
    pthread_join(th, NULL);
    char x;
    while (read(c->pipe[0], &x, 1) < 0 && errno == EINTR)
        ;
    return NF_OK;
}

/* COMPACT on the control socket.  Decision (issue 11): the shard keeps
   serving while it compacts.  Compaction needs the segment's writer lock
   and may take longer than the router's dead_after_ms, so the pod loop
   cannot simply stop for it.  Everything slow runs in a thread while this
   loop keeps heartbeating and draining the router: (0) the old segment is
   opened read-only (no lock; its files stay readable through the handle
   even after the swap removes the old directory), searches meanwhile
   from the writable handle; then the writable handle is closed, the
   read-only one takes its place, and (1) nf_segment_compact runs and the
   result is opened writable, searches meanwhile from the old segment (the
   same live rows: compaction only drops deleted ones); the new handle is
   swapped in between requests.  From the start to the swap, index and
   delete requests are refused with STATUS_UNAVAILABLE ("compacting ...
   retry"; nflow index and delete retry it): nothing is acknowledged into
   a segment the compaction has already read, and nothing waits on the
   gateway's time budget.  When compaction fails the old segment, unchanged,
   is opened again. */
static int
s_compact(nf_pod_t *pod, void *arg, const Nflow__Control *in, Nflow__Control *out)
{
    indexer_t *self = arg;
    if (in->command != NFLOW__CONTROL_COMMAND__CONTROL_COMPACT)
        return nf_error_set(NF_EINVAL, "control command %d is not served here", in->command);
    s_group_commit(self, &self->group);
    s_flush(self);
    const char *ws = nf_pod_get(pod, "workspace");
    s_compaction_t *c = calloc(1, sizeof *c);
    if (!c)
        return nf_error_set(NF_ENOMEM, "shard %u: out of memory", self->shard);
    c->self = self;
    snprintf(c->dir, sizeof c->dir, "%s/shard-%u", ws ? ws : ".", self->shard);
    uint64_t t0 = nf_now_us();
    if (pipe(c->pipe) != 0) {
        free(c);
        return nf_error_set(NF_EIO, "shard %u: pipe: %s", self->shard, strerror(errno));
    }
    self->compacting = true;
    nf_pod_log(pod, "compacting: searches are answered meanwhile, writes refused (retryable)");
    int rc = s_serve_while(self, c);            /* phase 0: the read-only handle */
    if (rc == NF_OK && c->orc != NF_OK)
        rc = nf_error_set(c->orc, "%s", c->owhy);
    if (rc != NF_OK) {
        snprintf(c->why, sizeof c->why, "%s", nf_error_msg());
    } else {
        nf_segment_destroy(&self->seg);         /* the lock goes to the compaction */
        self->seg = c->seg;
        c->seg = NULL;
        c->phase = 1;
        rc = s_serve_while(self, c);            /* phase 1: compact, open the result */
        if (rc != NF_OK)
            snprintf(c->why, sizeof c->why, "%s", nf_error_msg());
        else
            rc = c->rc;
        nf_segment_destroy(&self->seg);         /* the old segment, read-only */
        self->seg = c->seg;
        c->seg = NULL;
        if (!self->seg) {
            /* the thread could not open it (or did not run): once more here */
            if (c->orc != NF_OK)
                nf_pod_log(pod, "after compaction the segment does not open: %s", c->owhy);
            if (s_open_segment(self) != NF_OK) {
                /* without a segment the shard cannot serve: stop, the launcher says so */
                nf_pod_log(pod, "after compaction the segment does not open: %s",
                           nf_error_msg());
                exit(1);
            }
        }
    }
    self->compacting = false;
    close(c->pipe[0]);
    close(c->pipe[1]);
    s_heartbeat(self, NFLOW__CONTROL_COMMAND__CONTROL_HEARTBEAT);
    nf_pod_stats(pod)->rows = nf_segment_count(self->seg);
    if (rc != NF_OK) {
        nf_pod_log(pod, "compaction failed (the segment is unchanged): %s", c->why);
        rc = nf_error_set(rc, "shard %u: compaction failed (the segment is unchanged): %s",
                          self->shard, c->why);
        free(c);
        return rc;
    }
    nf_pod_log(pod, "compacted: %llu rows kept, %llu deleted rows dropped (%.1f ms)",
               (unsigned long long) c->kept, (unsigned long long) c->dropped,
               (double) (nf_now_us() - t0) / 1000.0);
    out->rows = c->kept;
    out->dropped = c->dropped;
    free(c);
    return NF_OK;
}

static int
s_setup(nf_pod_t *pod, void *arg)
{
    indexer_t *self = arg;
    self->pod = pod;
    self->router = nf_pod_sock(pod, "router");
    self->reducer = nf_pod_sock(pod, "reducer");
    self->dim = (uint32_t) nf_pod_int(pod, "dim");
    self->shard = (uint32_t) nf_pod_int(pod, "shard");
    /* threads 0: the shards of a flow share the machine's cores, so each
       takes its part; more threads than cores only adds switching (a flow
       whose shards sit on different hosts sets `threads` explicitly). */
    self->scan.threads = (int) nf_pod_int(pod, "threads");
    if (self->scan.threads == 0) {
        long cores = sysconf(_SC_NPROCESSORS_ONLN);
        long nshards = nf_pod_int(pod, "nshards");
        self->scan.threads = (int) (cores / (nshards > 0 ? nshards : 1));
        if (self->scan.threads < 1)
            self->scan.threads = 1;
    }
    self->hb_us = (uint64_t) nf_pod_int(pod, "heartbeat_ms") * 1000;
    nf_pod_stats(pod)->dim = self->dim;
    int rc = s_open_segment(self);
    if (rc != NF_OK)
        return rc;
    nf_pod_stats(pod)->rows = nf_segment_count(self->seg);
    nf_pod_on_command(pod, s_compact, self);
    s_heartbeat(self, NFLOW__CONTROL_COMMAND__CONTROL_HELLO);
    return NF_OK;
}

static void
s_step(nf_pod_t *pod, void *arg)
{
    indexer_t *self = arg;
    uint64_t now = nf_now_us();
    int wait = self->next_hb > now ? (int) ((self->next_hb - now + 999) / 1000) : 0;
    if (self->nflight && wait > S_SETTLE_MS)
        wait = S_SETTLE_MS;
    nf_pod_wait(pod, wait);
    if (nf_now_us() >= self->next_hb)
        s_heartbeat(self, NFLOW__CONTROL_COMMAND__CONTROL_HEARTBEAT);
    if (!nf_pod_stopping(pod))
        s_drain(self);      /* ends by answering the groups durable by now */
}

static void
s_teardown(nf_pod_t *pod, void *arg)
{
    indexer_t *self = arg;
    (void) pod;
    s_flush(self);
    s_group_free(&self->group);
    nf_segment_destroy(&self->seg);
}

int
main(int argc, char **argv)
{
    indexer_t self = {0};
    nf_pod_hooks_t hooks = {s_setup, s_step, s_teardown};
    return nf_pod_main("indexer", argc, argv, &hooks, &self);
}
