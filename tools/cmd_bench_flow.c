/*  nflow bench flow: search latency and throughput through a running flow,
    and the same single-query searches in-process for comparison.

      nflow bench flow --gateway EP --queries FILE [--dim D] [-n N] [-c C]
                       [-k K] [--warmup W] [--timeout-ms T] [--max-seconds S]
                       [--truth FILE.ivecs] [--json]
          C clients (one DEALER each, all polled by this one thread), each in
          a closed loop: send a search with ONE query, wait for its answer,
          send the next.  N timed queries in all (after W untimed ones),
          taken in turn from FILE (.fvecs, .f32 with --dim, or JSONL with
          vectors).  Prints:
            flow clients=C n=N k=K p50_ms=.. p90_ms=.. p99_ms=.. mean_ms=..
                 max_ms=.. qps=.. wall_s=.. errors=.. partial=..
                 indexer_p50_ms=.. [recall=..]
          latency = send to answer, as the client sees it; qps = answered
          queries / wall time of the timed part; indexer_p50_ms = median
          time the first answering shard held the request (its Hop in the
          answer's route: drain + scan + encode), so the rest is transport,
          routing and merging.  recall (with --truth, e.g. from `nflow bench
          scan --truth` on a segment built from the same file, whose row
          keys are the record numbers the flow uses as ids) = mean share of
          the truth's top K found.  A second line, `route p50_ms: ...`,
          gives the median of every stage of the answers' route (Hops): a
          pod's name = the time it held the request, `a>b` = the transit
          from a's send to b's receive (the route is the first answering
          shard's, and the reducer stamps its hop when it answers, so
          `indexer>reducer` includes waiting for the other shards' parts).

      nflow bench flow --segment DIR --queries FILE [-n N] [-k K]
                       [--warmup W] [--threads T] [--policy mmap|memory]
                       [--truth FILE.ivecs] [--json]
          The same N single-query searches in this process: nf_scan_search
          over the segment (opened read-only), one query at a time.  Prints
          the same line starting with `inproc` (clients=1).

    Exit status 0 when every timed query was answered without an error, 1
    otherwise (the line is still printed, with the counts), 2 on bad usage.
    Every wait is bounded: a request by its timeout plus 3 s, the whole run
    by --max-seconds (default 600).                                         */
#include "nflow.h"
#include "args.h"

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nf_client.h"
#include "nf_error.h"
#include "nf_keys.h"
#include "nf_limits.h"
#include "nf_scan.h"
#include "nf_segment.h"
#include "nf_sys.h"
#include "nf_results.h"
#include "nf_vecio.h"

#define S_MAX_CLIENTS 256
#define S_GRACE_MS 3000         /* client waits this much past the request's timeout */
#define S_MAX_ERRORS 20         /* a run stops after this many failed queries */
#define S_MAX_STAGES 24         /* route breakdown: hops x 2 */

typedef struct {
    const char *gateway, *segment, *queries, *truth, *policy;
    long long dim, n, clients, k, warmup, timeout_ms, max_seconds, threads;
    bool json;
    const char *key_file;       /* --key: CurveZMQ client key; NULL = plain */
    nf_keys_t *keys;
} s_opts_t;

/* What a run measured. */
typedef struct {
    double *lat_ms;             /* per answered query */
    double *hop_ms;             /* per answered query: the indexer's hold time (flow) */
    size_t nlat, nhop;
    size_t answered, errors, partial;
    double wall_s;
    double recall_sum;
    size_t recall_n;
    char first_error[512];
    /* route breakdown (flow): stage names as met in the first answer's route
       ("gateway", "gateway>router", ..., indexer shards named "indexer"),
       and per stage the times of the answers whose route has that shape */
    char stage[S_MAX_STAGES][40];
    size_t nstages;
    double *stage_ms[S_MAX_STAGES];
    size_t nstage_ms;
} s_stats_t;

/* The truth file: per query an int32 k then k int32 row keys (-1 padded). */
typedef struct {
    int32_t *rows;              /* nq x k */
    size_t nq, k;
} s_truth_t;

/* ------------------------------------------------------------------ */
/* Shared helpers                                                      */

static int
s_truth_read(const char *path, s_truth_t *t)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return nf_error_set(NF_ENOTFOUND, "%s: %s", path, strerror(errno));
    int rc = 0;
    int32_t k;
    size_t cap = 0;
    memset(t, 0, sizeof *t);
    while (rc == 0 && fread(&k, sizeof k, 1, f) == 1) {
        if (k < 1 || k > 100000 || (t->nq && (size_t) k != t->k)) {
            rc = nf_error_set(NF_EFORMAT, "%s: record %zu: k = %d (expected %s)", path, t->nq,
                              (int) k, t->nq ? "the same k as record 0" : "1..100000");
            break;
        }
        t->k = (size_t) k;
        if (t->nq == cap) {
            cap = cap ? 2 * cap : 64;
            int32_t *grown = realloc(t->rows, cap * t->k * sizeof *grown);
            if (!grown) {
                rc = nf_error_set(NF_ENOMEM, "out of memory reading %s", path);
                break;
            }
            t->rows = grown;
        }
        if (fread(t->rows + t->nq * t->k, sizeof(int32_t), t->k, f) != t->k)
            rc = nf_error_set(NF_EFORMAT, "%s: record %zu is truncated", path, t->nq);
        t->nq++;
    }
    fclose(f);
    if (rc == 0 && t->nq == 0)
        rc = nf_error_set(NF_EFORMAT, "%s: no record", path);
    if (rc) {
        free(t->rows);
        memset(t, 0, sizeof *t);
    }
    return rc;
}

/* Share of truth row q's first k keys among keys[0..n). */
static double
s_recall(const s_truth_t *t, size_t q, size_t k, const long long *keys, size_t n)
{
    const int32_t *row = t->rows + (q % t->nq) * t->k;
    size_t want = k < t->k ? k : t->k, found = 0, valid = 0;
    for (size_t i = 0; i < want; i++) {
        if (row[i] < 0)
            continue;
        valid++;
        for (size_t j = 0; j < n; j++)
            if (keys[j] == row[i]) {
                found++;
                break;
            }
    }
    return valid ? (double) found / (double) valid : 1.0;
}

int
bench_cmp_double(const void *a, const void *b)
{
    double x = *(const double *) a, y = *(const double *) b;
    return x < y ? -1 : x > y;
}

/* Nearest-rank percentile p (0..1] of sorted v[n]; 0 when n == 0. */
static double
s_pct(const double *v, size_t n, double p)
{
    if (!n)
        return 0.0;
    size_t r = (size_t) ceil(p * (double) n);     /* 1-based rank */
    if (r < 1)
        r = 1;
    return v[(r > n ? n : r) - 1];
}

static void
s_record_error(s_stats_t *st, const char *what)
{
    st->errors++;
    if (!st->first_error[0])
        snprintf(st->first_error, sizeof st->first_error, "%s", what);
}

static int
s_report(const char *what, const s_opts_t *o, long clients, s_stats_t *st)
{
    if (st->nlat)       /* qsort's array must not be NULL, even when empty */
        qsort(st->lat_ms, st->nlat, sizeof *st->lat_ms, bench_cmp_double);
    if (st->nhop)
        qsort(st->hop_ms, st->nhop, sizeof *st->hop_ms, bench_cmp_double);
    double sum = 0.0;
    for (size_t i = 0; i < st->nlat; i++)
        sum += st->lat_ms[i];
    double mean = st->nlat ? sum / (double) st->nlat : 0.0;
    double qps = st->wall_s > 0 ? (double) st->answered / st->wall_s : 0.0;
    double p50 = s_pct(st->lat_ms, st->nlat, 0.50), p90 = s_pct(st->lat_ms, st->nlat, 0.90);
    double p99 = s_pct(st->lat_ms, st->nlat, 0.99);
    double max = st->nlat ? st->lat_ms[st->nlat - 1] : 0.0;
    double hop50 = s_pct(st->hop_ms, st->nhop, 0.50);
    double recall = st->recall_n ? st->recall_sum / (double) st->recall_n : -1.0;
    for (size_t i = 0; i < st->nstages && st->nstage_ms; i++)
        qsort(st->stage_ms[i], st->nstage_ms, sizeof *st->stage_ms[i], bench_cmp_double);
    if (o->json) {
        json_t *j = json_pack("{s:s, s:i, s:i, s:i, s:f, s:f, s:f, s:f, s:f, s:f, s:f, s:i, s:i}",
                              "mode", what, "clients", (json_int_t) clients, "n",
                              (json_int_t) o->n, "k", (json_int_t) o->k, "p50_ms", p50, "p90_ms",
                              p90, "p99_ms", p99, "mean_ms", mean, "max_ms", max, "qps", qps,
                              "wall_s", st->wall_s, "errors", (json_int_t) st->errors, "partial",
                              (json_int_t) st->partial);
        if (j && st->nhop)
            json_object_set_new(j, "indexer_p50_ms", json_real(hop50));
        if (j && recall >= 0)
            json_object_set_new(j, "recall", json_real(recall));
        json_t *r = j && st->nstage_ms ? json_object() : NULL;
        for (size_t i = 0; r && i < st->nstages; i++)
            json_object_set_new(r, st->stage[i],
                                json_real(s_pct(st->stage_ms[i], st->nstage_ms, 0.50)));
        if (r)
            json_object_set_new(j, "route_p50_ms", r);
        char *text = j ? json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER
                                           | JSON_REAL_PRECISION(6))
                       : NULL;
        if (text)
            printf("%s\n", text);
        free(text);
        json_decref(j);
    } else {
        printf("%s clients=%ld n=%lld k=%lld p50_ms=%.3f p90_ms=%.3f p99_ms=%.3f mean_ms=%.3f "
               "max_ms=%.3f qps=%.1f wall_s=%.3f errors=%zu partial=%zu",
               what, clients, o->n, o->k, p50, p90, p99, mean, max, qps, st->wall_s, st->errors,
               st->partial);
        if (st->nhop)
            printf(" indexer_p50_ms=%.3f", hop50);
        if (recall >= 0)
            printf(" recall=%.4f", recall);
        printf("\n");
        if (st->nstage_ms) {
            /* a second line: the median of every stage of the route */
            printf("route p50_ms:");
            for (size_t i = 0; i < st->nstages; i++)
                printf(" %s=%.3f", st->stage[i], s_pct(st->stage_ms[i], st->nstage_ms, 0.50));
            printf("\n");
        }
    }
    fflush(stdout);
    if (st->first_error[0])
        fprintf(stderr, "nflow bench flow: first error: %s\n", st->first_error);
    bool ok = st->errors == 0 && st->answered == (size_t) o->n;
    if (!ok && !st->first_error[0])
        fprintf(stderr, "nflow bench flow: %zu of %lld queries answered\n", st->answered, o->n);
    return ok ? 0 : 1;
}

/* ------------------------------------------------------------------ */
/* Through the flow                                                    */

typedef struct {
    nf_client_t *cl;
    uint64_t id;                /* request in flight; 0 = idle */
    uint64_t sent_us;
    size_t query;
} s_slot_t;

typedef struct {
    const s_opts_t *o;
    s_slot_t *slots;
    size_t nslots;
    nf_request_t **reqs;        /* one single-query search per query of the file */
    size_t nq;
    size_t next_query;
    uint64_t wait_us;           /* per request */
    uint64_t end_us;            /* the whole run */
    const s_truth_t *truth;
} s_flow_t;

/* The time the indexer (first shard in the route) held the request, ms. */
static double
s_indexer_ms(const nf_env_t *reply)
{
    for (size_t i = 0; i < reply->n_route; i++) {
        const Nflow__Hop *h = reply->route[i];
        if (h->pod && !strncmp(h->pod, "indexer", 7) && h->send_us >= h->recv_us)
            return (double) (h->send_us - h->recv_us) / 1000.0;
    }
    return -1.0;
}

/* Pod name without its instance ("indexer/1" -> "indexer"). */
static void
s_role(const char *pod, char *out, size_t size)
{
    snprintf(out, size, "%.*s", (int) strcspn(pod ? pod : "?", "/"), pod ? pod : "?");
}

/* Add the route of reply to the breakdown: per hop its hold time (send -
   recv) and the transit to the next hop (next recv - send).  Answers whose
   route differs in shape from the first one are left out. */
static void
s_route(s_stats_t *st, const nf_env_t *reply, size_t cap)
{
    char names[S_MAX_STAGES][40];
    double ms[S_MAX_STAGES];
    size_t n = 0;
    for (size_t i = 0; i < reply->n_route && n + 2 <= S_MAX_STAGES; i++) {
        const Nflow__Hop *h = reply->route[i];
        char a[20], b[20];
        s_role(h->pod, a, sizeof a);
        snprintf(names[n], sizeof names[n], "%s", a);
        ms[n++] = ((double) h->send_us - (double) h->recv_us) / 1000.0;
        if (i + 1 < reply->n_route) {
            const Nflow__Hop *next = reply->route[i + 1];
            s_role(next->pod, b, sizeof b);
            snprintf(names[n], sizeof names[n], "%s>%s", a, b);
            ms[n++] = ((double) next->recv_us - (double) h->send_us) / 1000.0;
        }
    }
    if (!st->nstages) {
        for (size_t i = 0; i < n; i++) {
            st->stage_ms[i] = malloc(cap * sizeof **st->stage_ms);
            if (!st->stage_ms[i]) {
                for (size_t j = 0; j < i; j++)
                    free(st->stage_ms[j]);
                return;
            }
            memcpy(st->stage[i], names[i], sizeof names[i]);
        }
        st->nstages = n;
    }
    if (n != st->nstages || st->nstage_ms >= cap)
        return;
    for (size_t i = 0; i < n; i++)
        if (strcmp(names[i], st->stage[i]))
            return;
    for (size_t i = 0; i < n; i++)
        st->stage_ms[i][st->nstage_ms] = ms[i];
    st->nstage_ms++;
}

static void
s_flow_answer(s_flow_t *f, s_slot_t *s, nf_env_t *reply, s_stats_t *st, bool record)
{
    uint64_t now = nf_now_us();
    int rc = nf_client_status(reply);
    if (rc == 0 && reply->body_case != NF_BODY_RESULT)
        rc = nf_error_set(NF_EPROTO, "the gateway answered a search without a result");
    if (rc == 0 && reply->result->n_results != 1)
        rc = nf_error_set(NF_EPROTO, "a search of one query got %zu result lists",
                          reply->result->n_results);
    if (!record)
        return;
    if (rc) {
        s_record_error(st, nf_error_msg());
        return;
    }
    st->answered++;
    st->lat_ms[st->nlat++] = (double) (now - s->sent_us) / 1000.0;
    double hop = s_indexer_ms(reply);
    if (hop >= 0)
        st->hop_ms[st->nhop++] = hop;
    s_route(st, reply, (size_t) f->o->n);
    if (reply->result->partial)
        st->partial++;
    if (f->truth) {
        const Nflow__Matches *m = reply->result->results[0];
        long long keys[NF_TOPK_MAX];
        size_t nkeys = m->n_matches < NF_TOPK_MAX ? m->n_matches : NF_TOPK_MAX;
        for (size_t i = 0; i < nkeys; i++) {
            char *end;
            keys[i] = strtoll(m->matches[i]->id, &end, 10);
            if (*end || end == m->matches[i]->id)
                keys[i] = -2;       /* not a record number: never a truth key */
        }
        st->recall_sum += s_recall(f->truth, s->query, (size_t) f->o->k, keys, nkeys);
        st->recall_n++;
    }
}

/* Run total queries through the slots; with record, into st. */
static int
s_flow_phase(s_flow_t *f, size_t total, s_stats_t *st, bool record)
{
    size_t issued = 0, finished = 0;
    zmq_pollitem_t items[S_MAX_CLIENTS];
    uint64_t t0 = nf_now_us();
    while (finished < total) {
        uint64_t now = nf_now_us();
        if (now >= f->end_us)
            return nf_error_set(NF_ETIMEOUT, "stopped by --max-seconds %lld: %zu of %zu queries "
                                "of this phase answered", f->o->max_seconds, finished, total);
        if (record && st->errors >= S_MAX_ERRORS)
            return nf_error_set(NF_EIO, "stopped after %zu failed queries", st->errors);
        for (size_t i = 0; i < f->nslots && issued < total; i++) {
            s_slot_t *s = &f->slots[i];
            if (s->id)
                continue;
            s->query = f->next_query++ % f->nq;
            s->sent_us = nf_now_us();
            int rc = nf_client_send(s->cl, nf_request_env(f->reqs[s->query]), &s->id);
            if (rc)
                return rc;
            issued++;
        }
        for (size_t i = 0; i < f->nslots; i++)
            items[i] = (zmq_pollitem_t){.socket = zsock_resolve(nf_client_sock(f->slots[i].cl)),
                                        .events = ZMQ_POLLIN};
        int n = zmq_poll(items, (int) f->nslots, 100);
        if (n < 0 && zmq_errno() == EINTR)
            return nf_error_set(NF_EIO, "interrupted");
        now = nf_now_us();
        for (size_t i = 0; i < f->nslots; i++) {
            s_slot_t *s = &f->slots[i];
            if (n > 0 && (items[i].revents & ZMQ_POLLIN)) {
                nf_env_t *reply = NULL;
                for (int m = 0; m < 64 && nf_client_recv(s->cl, 0, &reply) == 0; m++) {
                    if (s->id && reply->request_id == s->id) {
                        s_flow_answer(f, s, reply, st, record);
                        s->id = 0;
                        finished++;
                    }   /* else: a straggler of a request given up on */
                    nf_env_destroy(&reply);
                    reply = NULL;
                }
            }
            if (s->id && now - s->sent_us > f->wait_us) {
                if (record) {
                    char what[160];
                    snprintf(what, sizeof what, "no answer from %s within %llu ms",
                             nf_client_endpoint(s->cl), (unsigned long long) (f->wait_us / 1000));
                    s_record_error(st, what);
                }
                s->id = 0;
                finished++;
            }
        }
    }
    if (record)
        st->wall_s = (double) (nf_now_us() - t0) / 1e6;
    return 0;
}

static int
s_flow(const s_opts_t *o, const float *qv, size_t nq, uint32_t dim, const s_truth_t *truth)
{
    s_flow_t f = {.o = o, .nq = nq, .truth = truth};
    s_stats_t st = {0};
    int rc = 0;
    f.wait_us = (uint64_t) (o->timeout_ms + S_GRACE_MS) * 1000u;
    f.end_us = nf_now_us() + (uint64_t) o->max_seconds * 1000000u;
    f.reqs = calloc(nq, sizeof *f.reqs);
    f.slots = calloc((size_t) o->clients, sizeof *f.slots);
    st.lat_ms = malloc((size_t) o->n * sizeof *st.lat_ms);
    st.hop_ms = malloc((size_t) o->n * sizeof *st.hop_ms);
    if (!f.reqs || !f.slots || !st.lat_ms || !st.hop_ms)
        rc = nf_error_set(NF_ENOMEM, "out of memory for %zu queries", nq);
    for (size_t i = 0; rc == 0 && i < nq; i++) {
        rc = nf_request_new(NF_BODY_SEARCH, (uint32_t) o->k,
                            (uint32_t) o->timeout_ms, &f.reqs[i]);
        if (rc == 0)
            rc = nf_request_add(f.reqs[i], NULL, NULL, qv + i * dim, dim, NULL, 0);
    }
    for (long i = 0; rc == 0 && i < o->clients; i++, f.nslots++)
        rc = nf_client_new_keyed(o->gateway, o->keys, "pod", &f.slots[i].cl);

    /* the gateway must answer before the clock starts: a PING through it */
    for (size_t i = 0; rc == 0 && i < f.nslots; i++) {
        nf_env_t env, *reply = NULL;
        Nflow__Control ctl;
        nf_control_env(&env, &ctl, NFLOW__CONTROL_COMMAND__CONTROL_PING);
        rc = nf_client_call(f.slots[i].cl, &env, 5000, &reply);
        if (rc == NF_ETIMEOUT)
            rc = nf_error_set(rc, "the gateway %s did not answer a PING within 5 s (is the flow "
                              "up?)", o->gateway);
        if (reply)
            nf_env_destroy(&reply);
    }
    int prc = 0;
    if (rc == 0 && o->warmup > 0) {
        s_stats_t warm = {0};
        prc = s_flow_phase(&f, (size_t) o->warmup, &warm, false);
    }
    if (rc == 0 && prc == 0)
        prc = s_flow_phase(&f, (size_t) o->n, &st, true);
    if (rc == 0 && prc)
        s_record_error(&st, nf_error_msg());
    int status = 1;
    if (rc)
        fprintf(stderr, "nflow bench flow: %s\n", nf_error_msg());
    else
        status = s_report("flow", o, o->clients, &st);
    for (size_t i = 0; f.slots && i < f.nslots; i++)
        nf_client_destroy(&f.slots[i].cl);
    for (size_t i = 0; f.reqs && i < nq; i++)
        nf_request_destroy(&f.reqs[i]);
    free(f.slots);
    free(f.reqs);
    free(st.lat_ms);
    free(st.hop_ms);
    for (size_t i = 0; i < st.nstages; i++)
        free(st.stage_ms[i]);
    return status;
}

/* ------------------------------------------------------------------ */
/* In-process                                                          */

static int
s_inproc(const s_opts_t *o, nf_segment_t *seg, const float *qv, size_t nq,
         const s_truth_t *truth)
{
    uint32_t dim = nf_segment_dim(seg);
    size_t k = (size_t) o->k;
    s_stats_t st = {0};
    nf_hit_t *hits = malloc(k * sizeof *hits);
    long long *keys = malloc(k * sizeof *keys);
    st.lat_ms = malloc((size_t) o->n * sizeof *st.lat_ms);
    if (!hits || !keys || !st.lat_ms) {
        fprintf(stderr, "nflow bench flow: out of memory\n");
        free(hits);
        free(keys);
        free(st.lat_ms);
        return 1;
    }
    nf_scan_opts_t so = {.threads = (int) o->threads};
    uint64_t end = nf_now_us() + (uint64_t) o->max_seconds * 1000000u;
    size_t next = 0;
    uint64_t t0 = 0;
    for (long i = 0; i < o->warmup + o->n; i++) {
        if (i == o->warmup)
            t0 = nf_now_us();
        if (nf_now_us() >= end) {
            s_record_error(&st, "stopped by --max-seconds");
            break;
        }
        size_t q = next++ % nq, count = 0;
        uint64_t s0 = nf_now_us();
        int rc = nf_scan_search(seg, qv + q * dim, 1, k, &so, hits, &count);
        double ms = (double) (nf_now_us() - s0) / 1000.0;
        if (i < o->warmup)
            continue;
        if (rc) {
            s_record_error(&st, nf_error_msg());
            if (st.errors >= S_MAX_ERRORS)
                break;
            continue;
        }
        st.answered++;
        st.lat_ms[st.nlat++] = ms;
        if (truth) {
            for (size_t j = 0; j < count; j++)
                keys[j] = (long long) hits[j].key;
            st.recall_sum += s_recall(truth, q, k, keys, count);
            st.recall_n++;
        }
    }
    st.wall_s = t0 ? (double) (nf_now_us() - t0) / 1e6 : 0.0;
    int status = s_report("inproc", o, 1, &st);
    free(hits);
    free(keys);
    free(st.lat_ms);
    return status;
}

/* ------------------------------------------------------------------ */
/* Command line                                                        */

int
cmd_bench_flow(int argc, char **argv)
{
    s_opts_t o = {.n = 200, .clients = 1, .k = 10, .warmup = 10, .timeout_ms = 10000,
                  .max_seconds = 600, .policy = "mmap"};
    const nf_arg_t args[] = {
        {"--gateway", NULL, NF_ARG_STR, &o.gateway, .meta = "EP",
         .help = "the flow's gateway (tcp://HOST:PORT)"},
        {"--segment", NULL, NF_ARG_STR, &o.segment, .meta = "DIR",
         .help = "instead: the same searches in this process over a segment"},
        {"--queries", NULL, NF_ARG_STR, &o.queries, .meta = "FILE", .required = true,
         .help = ".fvecs, .f32 (with --dim; the segment's dim with --segment) or JSONL\n"
                 "with vectors; used in turn"},
        {"--dim", NULL, NF_ARG_LONG, &o.dim, 1, 65536, .meta = "D", .help = "dim of a .f32 file"},
        {"-n", NULL, NF_ARG_LONG, &o.n, 1, 1000000, .meta = "N", .help = "timed queries"},
        {"-c", "--clients", NF_ARG_LONG, &o.clients, 1, S_MAX_CLIENTS, .meta = "C",
         .help = "clients, each one query at a time in a closed loop"},
        {"-k", NULL, NF_ARG_LONG, &o.k, 1, 10000, .meta = "K", .help = "matches per query"},
        {"--warmup", NULL, NF_ARG_LONG, &o.warmup, 0, 1000000, .meta = "W",
         .help = "untimed queries first"},
        {"--timeout-ms", NULL, NF_ARG_LONG, &o.timeout_ms, 1, 600000, .meta = "T",
         .help = "deadline per request"},
        {"--max-seconds", NULL, NF_ARG_LONG, &o.max_seconds, 1, 86400, .meta = "S",
         .help = "bound on the whole run"},
        {"--threads", NULL, NF_ARG_LONG, &o.threads, 0, 1024, .meta = "T",
         .help = "scan threads with --segment (0 = all cores)"},
        {"--policy", NULL, NF_ARG_CHOICE, &o.policy, .choices = "mmap|memory",
         .help = "the segment's vectors with --segment"},
        {"--truth", NULL, NF_ARG_STR, &o.truth, .meta = "FILE.ivecs",
         .help = "exact top-k per query (`nflow bench scan --truth`): adds recall="},
        {"--key", NULL, NF_ARG_STR, &o.key_file, .meta = "FILE",
         .help = "CurveZMQ to a flow with keys (a client key from `nflow keys`)"},
        {"--json", NULL, NF_ARG_FLAG, &o.json, .help = "one JSON object instead of the lines"},
    };
    const nf_args_t spec = {
        "nflow bench flow", args, NF_ARGS_COUNT(args),
        .synopsis = "--gateway EP --queries FILE [--dim D] [-n N] [-c CLIENTS]\n"
                    "                        [-k K] [--warmup W] [--timeout-ms T] [--max-seconds S]\n"
                    "                        [--truth FILE.ivecs] [--key FILE] [--json]\n"
                    "       nflow bench flow --segment DIR --queries FILE [-n N] [-k K] [--warmup W]\n"
                    "                        [--threads T] [--policy mmap|memory] [--truth FILE.ivecs]\n"
                    "                        [--json]",
        .summary = "Single-query searches, each client one at a time in a closed loop, through the\n"
                   "flow's gateway (or in this process over a segment); prints latency percentiles\n"
                   "and queries/s."};
    int usage;
    if (!nf_args_parse(&spec, argc, argv, &usage))
        return usage;
    if (!o.gateway == !o.segment) {
        fprintf(stderr, "nflow bench flow: give one of --gateway EP or --segment DIR "
                        "(see nflow bench flow --help)\n");
        return 2;
    }
    if (o.segment && o.clients != 1) {
        fprintf(stderr, "nflow bench flow: --segment runs one query at a time: -c must be 1\n");
        return 2;
    }
    zsys_handler_set(NULL);     /* Ctrl-C stops the bench at once */
    signal(SIGPIPE, SIG_IGN);

    nf_segment_t *seg = NULL;
    float *qv = NULL;
    size_t nq = 0;
    uint32_t dim = (uint32_t) o.dim;
    s_truth_t truth = {0};
    int rc = 0;
    if (o.segment) {
        nf_segment_opts_t so = {.readonly = true,
                                .vectors = strcmp(o.policy, "memory") ? NF_MEM_MMAP
                                                                      : NF_MEM_MEMORY};
        rc = nf_segment_open(o.segment, &so, &seg);
        if (rc == 0 && dim && dim != nf_segment_dim(seg))
            rc = nf_error_set(NF_EDIM, "--dim %u but segment %s has dim %u", dim, o.segment,
                              nf_segment_dim(seg));
        if (rc == 0)
            dim = nf_segment_dim(seg);
    }
    if (rc == 0)
        rc = nf_vecio_read_all(o.queries, NF_VECIO_AUTO, dim, &qv, &nq, &dim);
    if (rc == 0 && nq == 0)
        rc = nf_error_set(NF_EINVAL, "%s: no query", o.queries);
    if (rc == 0 && o.truth)
        rc = s_truth_read(o.truth, &truth);
    if (rc == 0 && o.key_file)
        rc = nf_keys_open_file(o.key_file, &o.keys);
    int status = 1;
    if (rc)
        fprintf(stderr, "nflow bench flow: %s\n", nf_error_msg());
    else if (seg)
        status = s_inproc(&o, seg, qv, nq, o.truth ? &truth : NULL);
    else
        status = s_flow(&o, qv, nq, dim, o.truth ? &truth : NULL);
    free(qv);
    free(truth.rows);
    nf_keys_destroy(&o.keys);
    nf_segment_destroy(&seg);
    return status;
}
