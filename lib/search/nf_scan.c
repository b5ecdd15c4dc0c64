/*  nf_scan: exact top-k over a segment: per (query block, row window) one
    product of the queries with the window's rows, then a fused, vectorised
    score + reject pass into each query's top-k.

    Work grid.  The rows are cut into windows of W rows (W a multiple of 64,
    so that a 64-row block of a window is one word of the tombstone bitmap)
    and the queries into blocks of QB queries.  W and QB depend only on the
    query count, the dimension and opts->window_rows -- never on the thread
    count -- so every score is computed by the same call shape at the same
    position whatever the threading, and the results of 1 and N threads are
    bit-identical (the top-k order is total: score, then row).  After each
    window nf_segment_release() lets its pages go, so resident memory stays
    at about threads x window whatever the segment size.

    Products (measured on the 2-core AMD EPYC (Zen 4) VM this was tuned on,
    OpenBLAS 0.3.21, 1M x 128 rows, see tools/bench.sh):
    - 1 <= q <= S_SMALL_Q: our own register-tiled dot kernel (s_dots_z /
      _y / _x in nf_dots.c: tiles of up to 6 queries x 2 rows, so each
      loaded chunk of a row feeds several queries and the horizontal sums
      are shared), with the next block of rows prefetched into L2 as it
      goes.  cblas_sgemm spends most of its time packing (copying) the
      window when each row meets only a few queries, and cblas_sgemv for
      one query left the loads waiting on DRAM: on the AVX2 EPYC VM, 500k
      x 128, one thread, sgemv 48-56 ms against the kernel's 31-38 ms (1M
      rows, 2 threads: 55-65 against 39-51 ms).  Earlier, on a Zen 4 VM,
      best of 2 threads, vectors in memory: q = 2 15..20 ms, q = 10
      21..24, q = 32 50..54, q = 64 93..96 ms; sgemm 51, 66, 104, 157 ms.
      Our kernel still matches sgemm at q = 100..1000 there, but sgemm is
      kept there for CPUs without AVX-512 where OpenBLAS's kernels are
      relatively better.
    - more queries: cblas_sgemm row-major Q (QB x d) * X^T (d x W) into a
      QB x W block S of about 1 MiB (QB <= 256) that stays in L2/L3; here
      sgemm's kernel runs at ~80% of its 2048^3 rate and the fused pass
      costs ~5%.

    Threading.  Rows are split across threads for every query count: the
    rows are cut into units of whole windows (about 32 MiB of vectors,
    starting and ending on 2 MiB blocks of the file when the dimension
    allows, see s_grid), the threads take the next unit from a shared
    counter and scan its windows for all queries into their own top-k per
    query, and the per-thread collections are merged at the end (exact, see
    nf_topk_merge).  Taking units as they come keeps both cores busy when
    the work is uneven -- a filter keeping one half of the rows, a core
    shared with another process -- where fixed halves left one thread idle
    (a clustered filter keeping the second half of 1M x 128 took as long
    as no filter: 50 vs 54 ms).  Units of vectors start and end on 2 MiB
    blocks where the dimension allows, so a thread releasing its windows
    (nf_segment_release drops whole blocks) does not drop vectors another
    thread is reading; odd dimensions do share blocks across units, so each
    unit ends by dropping the block holding its end
    (nf_segment_release_span): nothing stays mapped after the last unit,
    whatever order the threads took them in.  The norms are not mapped:
    each window's are read into the worker's buffer (nf_segment_read_norms;
    mapped, each thread held a 2 MiB block of them, 524,288 rows, and a
    4M-row segment's scan peaked 2 MB above a 1M-row one's).  With few queries the scan is bound by
    memory bandwidth and splitting rows is how both cores get their share
    of it; with many queries it is bound by the product, and splitting rows
    keeps each sgemm at the full query block (larger M, better kernel
    efficiency) while each thread still reads each byte of the segment once
    and releases its own windows without coordinating with the others.
    (Splitting queries was not implemented: it would make every thread read
    every window, or need a barrier per window before releasing it.)
    OpenBLAS is set to one thread for the duration of the scan (our threads
    fill the cores; nested threading oversubscribes them) and restored
    afterwards.

    The fused pass turns a row of S into scores in place and, 64 candidates
    at a time, checks whether any can enter the query's top-k (one
    subtraction each from `worst`, vectorised, see S_ANY_CLEAR); only then
    does it look at the tombstone word and push the survivors.                                   */
#include "nf_sys.h"
#include "nf_scan.h"

#include "nf_dots.h"
#include "nf_error.h"
#include "nf_filter.h"
#include "nf_filter_words.h"

#include <cblas.h>
#include <time.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define S_BLOCK 64              /* rows per tombstone word / reject check */
#define S_MAX_THREADS 256
#define S_SMALL_Q 64            /* 1..S_SMALL_Q queries: our dot kernel */

/* The fused pass and kernels are NF_TARGET_CLONES (nf_sys.h): vectorised
   for the CPUs the baseline x86-64 build does not assume. */

/* Shared, read-only description of one search. */
typedef struct {
    nf_segment_t *seg;
    const float *queries;
    size_t nq, k;
    uint32_t dim;
    nf_metric_t metric;
    bool larger_better;
    uint64_t rows;              /* committed rows at the start */
    uint64_t window;            /* W */
    uint64_t unit;              /* rows per unit of work: whole windows */
    uint64_t units;
    atomic_uint_fast64_t next;  /* the next unit to take */
    size_t qblock;              /* QB */
    const float *qaux;          /* per query: l2 ||q||^2, cosine 1/|q| (0 if |q| = 0) */
    const uint64_t *tomb;       /* NULL when nothing is deleted */
    const volatile int *stop;   /* opts->stop */
    const float *qpad;          /* few queries: nq x dpad zero-padded copy, else NULL */
    size_t dpad;
    nf_dots_fn dots;            /* few queries: the dot kernel */
    const nf_filter_prog_t *prog;   /* filter bound to the segment, or NULL */
    size_t gather;              /* rows gathered at most per product (filter) */
} s_job_t;

#define S_COSTS 4               /* filter: windows whose cost s_pick_read weighs */

/* One thread: the units it takes, for all queries. */
typedef struct {
    s_job_t *job;
    float *S;                   /* qblock x window scores */
    float *invx;                /* window: 1/|x| for cosine */
    float *pad;                 /* few queries: 16 x dim zero-padded rows */
    nf_topk_t *topk;            /* nq collections */
    nf_hit_t *heaps;            /* nq * k */
    pthread_t tid;
    bool started;
    bool failed;                /* the segment returned no rows for a window */
    char why[200];              /* and why, when a read failed */
    float *xn;                  /* window: the rows' norms (nf_segment_read_norms) */
    bool stopped;               /* the stop flag was set between windows */
    uint64_t *sel;              /* filter: window bitmap of kept live rows */
    float *gx, *gn;             /* filter: gathered rows and their norms */
    uint64_t *grow;             /* filter: their row numbers */
    size_t gcnt;                /* filter: rows waiting in gx (< job->gather) */
    uint64_t rel0, rel1;        /* filter: rows whose pages wait for release */
    bool rel_vectors;           /* filter: their vectors were read too */
    uint32_t rel_nvec, rel_nzone;   /* filter: windows of the run mapped, of them by choice */
    uint64_t rel_zrows;         /* filter: rows of those mapped by choice */
    float read_cost[S_COSTS], map_cost[S_COSTS];    /* filter: ns a row, last windows */
    uint32_t nread, nmap;       /* filter: how many of each were measured */
    uint64_t unmap_ns, unmap_rows;  /* filter: unmapping, rows mapped by choice */
    uint32_t picks;             /* filter: windows where s_pick_read chose */
    nf_scan_stats_t st;
} s_worker_t;

/* 16 floats: GCC vector extensions, lowered to one zmm, two ymm or four
   xmm operations depending on the clone. */
typedef float s_vf __attribute__((vector_size(64)));
typedef int32_t s_vi __attribute__((vector_size(64)));
#define S_LANES 16
/* 8 floats: the fused passes' vector.  At 16 lanes GCC 12's avx2 clone
   lowered the clamp's compare (v < 0) to 16 scalar vcomiss and the lanes
   went through the stack: s_fuse_l2 took 19 % of a 1M x 128 q = 10 scan. */
typedef float s_f8 __attribute__((vector_size(32)));
typedef int32_t s_i8 __attribute__((vector_size(32)));

/* Push the survivors of one block of bn <= 64 scores of rows row0.. */
static void
s_push_block(nf_topk_t *t, const float *sb, size_t bn, uint64_t row0, uint64_t dead)
{
    for (size_t j = 0; j < bn; j++)
        if (!((dead >> j) & 1) && !nf_topk_rejects(t, sb[j]))
            nf_topk_push(t, sb[j], row0 + j);
}

/* The reject check without vector compares: GCC 12 lowers a compare whose
   lane mask is used as a vector (acc |= v <= w) to 16 scalar compares in
   the avx512f clone (no vpmovm2d without AVX512DQ).  Instead, for a
   finite worst w, "v <= w" (l2) is "w - v has its sign bit clear", and
   "v >= w" (ip) is "v - w has its sign bit clear": a difference of two
   non-NaN floats is +0 when they are equal (both are + 0.0f first, which
   turns -0 into +0) and negative exactly when the first is smaller.  The
   differences of a block are ANDed, so a lane's sign bit stays set only if
   every candidate in it is rejected.  A non-finite worst (a collection not
   yet full, or infinite scores) takes every block.  This only decides
   whether s_push_block looks at the block, and it never skips one the
   compares would take (NaN scores aside, which s_push_block does not
   order either). */
#define S_SIGN_INIT ((s_i8) {0} - 1)

/* True when some lane of acc has its sign bit clear. */
#define S_ANY_CLEAR(acc, out)                                          \
    do {                                                               \
        s_i8 c_ = ~(acc) & INT32_MIN;                                  \
        uint64_t u_[4];                                                \
        memcpy(u_, &c_, sizeof u_);                                    \
        (out) = (u_[0] | u_[1] | u_[2] | u_[3]) != 0;                  \
    } while (0)

/* The fused pass over one query's row of S (wn scores of rows row0..;
   bit j of dead[j / 64], when dead is not NULL, excludes row row0 + j).
   l2: score = (||q||^2 + ||x||^2) - 2 q.x, clamped at 0; smaller is better.
   2 q.x is exact, so the score does not depend on FMA contraction. */
NF_TARGET_CLONES static void
s_fuse_l2(float *s, const float *xn, size_t wn, float qq, nf_topk_t *t,
          uint64_t row0, const uint64_t *dead)
{
    const s_f8 zero = {0};
    for (size_t j0 = 0; j0 < wn; j0 += S_BLOCK) {
        float *sb = s + j0;
        const float *xb = xn + j0;
        size_t bn = wn - j0 < S_BLOCK ? wn - j0 : S_BLOCK;
        float worst = t->worst;
        bool hit;
        if (bn == S_BLOCK && isfinite(worst)) {
            s_f8 wv = zero + (worst + 0.0f);
            s_i8 acc = S_SIGN_INIT;
            for (size_t j = 0; j < S_BLOCK; j += 8) {
                s_f8 sv, xv;
                memcpy(&sv, sb + j, sizeof sv);
                memcpy(&xv, xb + j, sizeof xv);
                s_f8 v = (qq + xv) - (sv + sv);
                v = (s_f8) ((s_i8) v & ~(v < zero));
                memcpy(sb + j, &v, sizeof v);
                s_f8 dv = wv - (v + 0.0f);
                acc &= (s_i8) dv;
            }
            S_ANY_CLEAR(acc, hit);
        } else {
            hit = false;
            for (size_t j = 0; j < bn; j++) {
                float v = (qq + xb[j]) - (sb[j] + sb[j]);
                v = v < 0.0f ? 0.0f : v;
                sb[j] = v;
                hit |= v <= worst;
            }
        }
        if (hit)
            s_push_block(t, sb, bn, row0 + j0, dead ? dead[j0 / 64] : 0);
    }
}

/* ip: score = q.x; cosine (invx != NULL): score = q.x * (1/|x|) * (1/|q|)
   with invx 0 for a zero row and qinv 0 for a zero query.  Larger is
   better. */
NF_TARGET_CLONES static void
s_fuse_ip(float *s, const float *invx, size_t wn, float qinv, nf_topk_t *t,
          uint64_t row0, const uint64_t *dead)
{
    for (size_t j0 = 0; j0 < wn; j0 += S_BLOCK) {
        float *sb = s + j0;
        size_t bn = wn - j0 < S_BLOCK ? wn - j0 : S_BLOCK;
        float worst = t->worst;
        bool hit;
        if (bn == S_BLOCK && isfinite(worst)) {
            s_f8 wv = (s_f8) {0} + (worst + 0.0f);
            s_i8 acc = S_SIGN_INIT;
            for (size_t j = 0; j < S_BLOCK; j += 8) {
                s_f8 v;
                memcpy(&v, sb + j, sizeof v);
                if (invx) {
                    s_f8 iv;
                    memcpy(&iv, invx + j0 + j, sizeof iv);
                    v = v * iv * qinv;
                    memcpy(sb + j, &v, sizeof v);
                }
                s_f8 dv = (v + 0.0f) - wv;
                acc &= (s_i8) dv;
            }
            S_ANY_CLEAR(acc, hit);
        } else {
            hit = false;
            for (size_t j = 0; j < bn; j++) {
                float v = sb[j];
                if (invx) {
                    v = v * invx[j0 + j] * qinv;
                    sb[j] = v;
                }
                hit |= v >= worst;
            }
        }
        if (hit)
            s_push_block(t, sb, bn, row0 + j0, dead ? dead[j0 / 64] : 0);
    }
}

/* 1/sqrt(norm), 0 for a zero (or negative, i.e. corrupt) norm. */
NF_TARGET_CLONES static void
s_inv_norms(float *invx, const float *xn, size_t n)
{
    for (size_t j = 0; j < n; j++)
        invx[j] = xn[j] > 0.0f ? 1.0f / sqrtf(xn[j]) : 0.0f;
}

/* S (m x wn) = Q[q0 .. q0+m) . X^T.  Few queries: job->dots, with the
   last ragged block of rows copied into a zero-padded 16-row buffer so
   every row goes through the same arithmetic.  Otherwise one sgemm,
   row-major Q (m x d) * X^T (d x wn). */
static void
s_scores(const s_job_t *job, float *pad, size_t q0, size_t m, const float *X, size_t wn, float *S)
{
    int d = (int) job->dim;
    if (job->qpad) {
        size_t full = wn / S_LANES * S_LANES;
        const float *Qp = job->qpad + q0 * job->dpad;
        if (full)
            job->dots(Qp, m, job->dpad, X, job->dim, full, S, wn);
        if (full < wn) {
            float sc[S_LANES * S_SMALL_Q];
            memset(pad, 0, (size_t) S_LANES * job->dim * sizeof(float));
            memcpy(pad, X + full * job->dim, (wn - full) * job->dim * sizeof(float));
            job->dots(Qp, m, job->dpad, pad, job->dim, S_LANES, sc, S_LANES);
            for (size_t j = 0; j < m; j++)
                memcpy(S + j * wn + full, sc + j * S_LANES, (wn - full) * sizeof(float));
        }
        return;
    }
    if (m == 1)
        cblas_sgemv(CblasRowMajor, CblasNoTrans, (int) wn, d, 1.0f, X, d,
                    job->queries + q0 * job->dim, 1, 0.0f, S, 1);
    else
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int) m, (int) wn, d,
                    1.0f, job->queries + q0 * job->dim, d, X, d, 0.0f, S, (int) wn);
}

/* The norms of rows [row0, row0+n) (n <= window) in the worker's buffer;
   NULL (the reason in w->why) when they cannot be read. */
static const float *
s_norms(s_worker_t *w, uint64_t row0, size_t n)
{
    if (nf_segment_read_norms(w->job->seg, row0, n, w->xn) == 0)
        return w->xn;
    snprintf(w->why, sizeof w->why, "%s", nf_error_msg());
    return NULL;
}

/* Scores of one query block against wn rows X (norms xn) of rows row0..
   fused into the top-ks; dead excludes rows (relative to row0). */
static void
s_product(s_worker_t *w, const float *X, const float *xn, size_t wn, uint64_t row0,
          const uint64_t *dead)
{
    const s_job_t *job = w->job;
    if (job->metric == NF_METRIC_COSINE)
        s_inv_norms(w->invx, xn, wn);
    for (size_t q0 = 0; q0 < job->nq; q0 += job->qblock) {
        size_t m = job->nq - q0 < job->qblock ? job->nq - q0 : job->qblock;
        s_scores(job, w->pad, q0, m, X, wn, w->S);
        for (size_t i = 0; i < m; i++) {
            float *sc = w->S + i * wn;
            nf_topk_t *t = &w->topk[q0 + i];
            if (job->metric == NF_METRIC_L2)
                s_fuse_l2(sc, xn, wn, job->qaux[q0 + i], t, row0, dead);
            else if (job->metric == NF_METRIC_IP)
                s_fuse_ip(sc, NULL, wn, 0.0f, t, row0, dead);
            else
                s_fuse_ip(sc, w->invx, wn, job->qaux[q0 + i], t, row0, dead);
        }
    }
}

/* The same over gathered rows: w->gx / w->gn hold cnt rows whose numbers
   are w->grow[]. */
static void
s_product_gathered(s_worker_t *w, size_t cnt)
{
    const s_job_t *job = w->job;
    if (job->metric == NF_METRIC_COSINE)
        s_inv_norms(w->invx, w->gn, cnt);
    for (size_t q0 = 0; q0 < job->nq; q0 += job->qblock) {
        size_t m = job->nq - q0 < job->qblock ? job->nq - q0 : job->qblock;
        s_scores(job, w->pad, q0, m, w->gx, cnt, w->S);
        for (size_t i = 0; i < m; i++) {
            const float *sc = w->S + i * cnt;
            nf_topk_t *t = &w->topk[q0 + i];
            float qa = job->qaux[q0 + i];
            for (size_t j = 0; j < cnt; j++) {
                float v = sc[j];
                if (job->metric == NF_METRIC_L2) {
                    v = (qa + w->gn[j]) - (v + v);
                    v = v < 0.0f ? 0.0f : v;
                } else if (job->metric == NF_METRIC_COSINE) {
                    v = v * w->invx[j] * qa;
                }
                if (!nf_topk_rejects(t, v))
                    nf_topk_push(t, v, w->grow[j]);
            }
        }
    }
}

static uint64_t
s_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t) ts.tv_sec * 1000000000u + (uint64_t) ts.tv_nsec;
}

/* Costs behind the choice between gathering the kept rows of a window and
   streaming the blocks that hold them, in tenths of the cost of streaming
   one row: gathering a row (scattered reads, a page fault for nearly every
   row at low selectivity, the copy) ~ 40; one query's product on a row ~ 1
   (measured at 1M x 128 on the 2-core benchmark machine: a gathered row
   ~220 ns against ~60 ns streamed at q = 1; sgemm at q = 100 ~ 11x the
   streaming cost).  So at q = 1 up to ~27% of the rows are gathered, at
   q = 100 up to ~79%. */
#define S_COST_GATHER 40
#define S_COST_STREAM 10

/* One window under a filter.  From the count of kept rows (measured, per
   window): none -> the vectors are not read; few (see the costs above) ->
   they are gathered into a dense buffer and go through the same product
   (dot kernel / sgemm) as a window, so the cost is that of the
   kept rows; else the product runs over each run of consecutive 64-row
   blocks holding a kept row (blocks without one are not read), or over the
   whole window when nearly every block holds one; the bitmap excludes the
   other rows in the fused pass. */
static bool s_window_stream(s_worker_t *w, uint64_t row0, size_t wn, uint64_t nb);

/* Releases under a filter.  The pages a filtered window touched (its
   columns; its vectors when it read them) are not released after each
   window but over a run of adjacent windows: each release is an madvise
   per file, and one that unmaps pages sends a TLB shootdown to the other
   core, ~8 us each on the 2-core VM (a VM exit): at 0.1% kept, q = 1, a
   quarter of the CPU time went there, at 1% 3 of them per window.  A run
   holds at most S_RELEASE_WINDOWS windows whose vectors were read (so the
   resident memory stays within a few windows per thread), or
   S_RELEASE_ROWS rows whose columns alone were (about 1 MiB of a keyword
   column); it is released when the next window is not adjacent, at the
   bound, and at the end of the worker's windows (s_gather_flush). */
#define S_RELEASE_WINDOWS 4
#define S_RELEASE_ROWS (256u * 1024)

static uint64_t s_now_ns(void);

static void
s_release_run(s_worker_t *w)
{
    if (w->rel1 > w->rel0) {
        if (w->rel_vectors) {
            uint64_t t0 = s_now_ns();
            nf_segment_release(w->job->seg, w->rel0, w->rel1 - w->rel0);
            /* unmapping is part of what gathering through the mapping
               cost (s_pick_read): the share of the windows mapped by
               choice */
            if (w->rel_nzone && w->rel_nvec) {
                w->unmap_ns += (s_now_ns() - t0) * w->rel_nzone / w->rel_nvec;
                w->unmap_rows += w->rel_zrows;
            }
        } else {
            nf_segment_release_columns(w->job->seg, w->rel0, w->rel1 - w->rel0);
        }
    }
    w->rel0 = w->rel1 = 0;
    w->rel_vectors = false;
    w->rel_nvec = w->rel_nzone = 0;
    w->rel_zrows = 0;
}

/* Rows [row0, row0+n) touched their columns (vectors: their vectors too;
   touched: anything at all). */
static void
s_release_add(s_worker_t *w, uint64_t row0, uint64_t n, bool touched, bool vectors)
{
    bool vec = w->rel_vectors || vectors;
    uint64_t most = vec ? S_RELEASE_WINDOWS * w->job->window : S_RELEASE_ROWS;
    bool adjacent = w->rel1 == row0 && w->rel1 > w->rel0;
    if (!touched) {
        if (adjacent)
            w->rel1 = row0 + n;     /* nothing to drop there; the run goes on */
        return;
    }
    if (!adjacent || w->rel1 - w->rel0 + n > most) {
        s_release_run(w);
        w->rel0 = row0;
    }
    w->rel1 = row0 + n;
    w->rel_vectors |= vectors;
    w->rel_nvec += vectors;
}

/* Between few and many kept rows a window can be gathered either way, and
   which is cheaper depends on the machine's state more than on the count:
   at 1% kept (160 rows of a 8 MiB window, 1M x 128, q = 1) pread took
   8-20 ms against 24-53 ms through the mapping while other processes
   kept the 2-core VM busy (mapping and unmapping pages slows down under
   contention, a read much less), while quiet the mapping was the
   cheaper (the first tuning of S_COST_*).  So in that zone -- from one
   kept row per 128 KiB of the window to one per S_READ_ZONE bytes --
   each worker measures both (ns per row gathered, the mapping's share of
   the unmapping added) and takes the cheaper, trying the other again
   every S_REPROBE windows while the two are within 2x.  A method's cost
   is the least of its last S_COSTS windows, after a first one each: one
   window can cost 10x the others (the first touches of the gather
   buffer, a page-table page, another process), and sums let it decide
   the whole scan.  Either way the gathered rows and norms are the same
   bits, so the results do not depend on the choice. */
#define S_READ_ZONE (12u << 10)
#define S_REPROBE 16

static float
s_cost_least(const float *c, uint32_t n)
{
    float m = c[0];
    for (uint32_t i = 1; i < n && i < S_COSTS; i++)
        m = c[i] < m ? c[i] : m;
    return m;
}

/* A window in the zone gathered its rows for ns ns a row. */
static void
s_cost_add(s_worker_t *w, bool read, float ns)
{
    uint32_t *n = read ? &w->nread : &w->nmap;
    float *c = read ? w->read_cost : w->map_cost;
    if ((*n)++ == 0)
        return;         /* the first one warms up */
    c[(*n - 2) % S_COSTS] = ns;
}

static bool
s_pick_read(s_worker_t *w)
{
    w->picks++;
    if (w->nread < 2)
        return true;
    if (w->nmap < 2)
        return false;
    float r = s_cost_least(w->read_cost, w->nread - 1);
    float m = s_cost_least(w->map_cost, w->nmap - 1);
    if (w->unmap_rows)
        m += (float) w->unmap_ns / (float) w->unmap_rows;
    bool read = r <= m;
    if (w->picks % S_REPROBE == 0 && (read ? m < 2 * r : r < 2 * m))
        read = !read;
    return read;
}

/* The gathered rows waiting in the worker's buffer through one product. */
static void
s_gather_product(s_worker_t *w)
{
    if (w->gcnt)
        s_product_gathered(w, w->gcnt);
    w->gcnt = 0;
}

/* The end of the worker's windows: the gathered rows still waiting
   through one product, the pages still waiting released. */
static void
s_gather_flush(s_worker_t *w)
{
    s_gather_product(w);
    s_release_run(w);
}

static bool
s_window_filtered(s_worker_t *w, uint64_t row0, size_t wn)
{
    const s_job_t *job = w->job;
    size_t nw = (wn + 63) / 64;
    uint64_t t0 = s_now_ns();
    uint64_t blocks_read = 0;
    uint64_t nsel = nf_filter_eval(job->prog, row0, wn, w->sel, &blocks_read), nb = 0;
    if (job->tomb) {
        for (size_t i = 0; i < nw; i++)
            w->sel[i] &= ~job->tomb[row0 / 64 + i];
        nsel = nf_filter_popcount(w->sel, nw);
    }
    for (size_t i = 0; i < nw; i++)
        nb += w->sel[i] != 0;
    w->st.filter_ns += s_now_ns() - t0;
    w->st.blocks_read += blocks_read;
    w->st.rows_selected += nsel;
    w->st.windows++;
    /* what the window touched is released by s_release_add, over runs of
       windows */
    if (nsel == 0) {
        s_release_add(w, row0, wn, blocks_read != 0, false);
        w->st.windows_skipped++;
        return true;
    }
    uint32_t d = job->dim;
    uint64_t nq = job->nq;
    /* very few rows (under one per 128 KiB of the window; the kernel maps
       64 KiB or more around a fault): read with pread, no page mapped.
       Measured at 1M x 128, q = 1: 0.1% kept, pread 1.7-1.9 ms against
       3.5-6.5 ms faulting the pages in and out.  Up to one per
       S_READ_ZONE bytes: the cheaper as measured (s_pick_read). */
    uint64_t wbytes = (uint64_t) wn * d * sizeof(float);
    bool by_read = nsel * (64u << 10) * 2 < wbytes;
    bool zone = !by_read && nsel * S_READ_ZONE < wbytes;
    if (zone)
        by_read = s_pick_read(w);
    if (!by_read && nsel * (S_COST_GATHER + nq) >= nb * 64 * (S_COST_STREAM + nq)) {
        s_release_add(w, row0, wn, true, true);
        return s_window_stream(w, row0, wn, nb);
    }
    /* gather: the kept rows join the worker's buffer, which goes through
       one product when full (and at the end of the worker's windows), so
       windows with a handful of kept rows do not each pay a product */
    w->st.windows_gathered++;
    const float *X = NULL, *xn = NULL;
    uint64_t tg = s_now_ns(), tprod = 0;
    s_release_add(w, row0, wn, !by_read || blocks_read, !by_read);
    w->rel_nzone += zone && !by_read;
    w->rel_zrows += zone && !by_read ? nsel : 0;
    if (!by_read && (!(X = nf_segment_vectors(job->seg, row0, wn))
                     || !(xn = s_norms(w, row0, wn))))
        return false;
    size_t i = 0;
    uint64_t word = nw ? w->sel[0] : 0;
    for (;;) {
        size_t cnt = 0, room = job->gather - w->gcnt;
        uint64_t *rows = w->grow + w->gcnt;
        float *gx = w->gx + w->gcnt * d, *gn = w->gn + w->gcnt;
        while (cnt < room && i < nw) {
            if (!word) {
                if (++i < nw)
                    word = w->sel[i];
                continue;
            }
            rows[cnt++] = i * 64 + (uint64_t) __builtin_ctzll(word);
            word &= word - 1;
        }
        if (!cnt)
            break;
        if (by_read) {
            for (size_t j = 0; j < cnt; j++)
                rows[j] += row0;
            if (nf_segment_read_vectors(job->seg, rows, cnt, gx) != 0)
                return false;
            w->st.rows_read += cnt;
            nf_norms_sq(gx, cnt, d, gn);
        } else {
            /* first one load per row: the pages not mapped yet fault in
               (64 KiB around each), and a prefetch of an unmapped page
               is dropped; then each row's lines are prefetched a few rows
               ahead (they are scattered: the hardware prefetcher does not
               see them) and copied */
            float touch = 0;
            for (size_t j = 0; j < cnt; j++)
                touch += *(const volatile float *) (X + rows[j] * d);
            (void) touch;
            const size_t ahead = 6, line = 64 / sizeof(float);
            for (size_t j = 0; j < cnt && j < ahead; j++)
                for (size_t c = 0; c < d; c += line)
                    __builtin_prefetch(X + rows[j] * d + c);
            for (size_t j = 0; j < cnt; j++) {
                if (j + ahead < cnt)
                    for (size_t c = 0; c < d; c += line)
                        __builtin_prefetch(X + rows[j + ahead] * d + c);
                uint64_t r = rows[j];
                memcpy(gx + j * d, X + r * d, d * sizeof(float));
                gn[j] = xn[r];
                rows[j] = row0 + r;
            }
        }
        w->gcnt += cnt;
        if (w->gcnt == job->gather) {
            uint64_t tp = s_now_ns();
            s_gather_product(w);
            tprod += s_now_ns() - tp;
        }
    }
    if (zone)
        s_cost_add(w, by_read, (float) (s_now_ns() - tg - tprod) / (float) nsel);
    return true;
}

/* A filtered window streamed: the product over the runs of 64-row blocks
   holding a kept row, or over the whole window when nearly every block
   holds one (w->sel: the kept rows; nb blocks hold one). */
static bool
s_window_stream(s_worker_t *w, uint64_t row0, size_t wn, uint64_t nb)
{
    const s_job_t *job = w->job;
    size_t nw = (wn + 63) / 64;
    for (size_t i = 0; i < nw; i++)
        w->sel[i] = ~w->sel[i];     /* now: the dead rows */
    if (nb * 8 >= (uint64_t) nw * 7) {
        w->st.windows_full++;
        const float *X = nf_segment_vectors(job->seg, row0, wn);
        const float *xn = s_norms(w, row0, wn);
        if (!X || !xn)
            return false;
        s_product(w, X, xn, wn, row0, w->sel);
        return true;
    }
    w->st.windows_runs++;
    for (size_t i = 0; i < nw;) {
        if (w->sel[i] == ~0ull) {
            i++;
            continue;
        }
        size_t e = i;
        while (e < nw && w->sel[e] != ~0ull)
            e++;
        uint64_t r = row0 + i * 64;
        size_t rn = (e - i) * 64;
        if (r + rn > row0 + wn)
            rn = (size_t) (row0 + wn - r);
        const float *X = nf_segment_vectors(job->seg, r, rn);
        const float *xn = s_norms(w, r, rn);
        if (!X || !xn)
            return false;
        s_product(w, X, xn, rn, r, w->sel + i);
        i = e;
    }
    return true;
}

/* One window of rows row0.. (wn rows); false when the segment has no
   rows there. */
static bool
s_window(s_worker_t *w, uint64_t row0, size_t wn)
{
    const s_job_t *job = w->job;
    if (job->prog)
        return s_window_filtered(w, row0, wn);
    const float *X = nf_segment_vectors(job->seg, row0, wn);
    const float *xn = s_norms(w, row0, wn);
    if (!X || !xn)
        return false;
    s_product(w, X, xn, wn, row0, job->tomb ? job->tomb + row0 / 64 : NULL);
    nf_segment_release(job->seg, row0, wn);
    return true;
}

static void *
s_worker_run(void *arg)
{
    s_worker_t *w = arg;
    s_job_t *job = w->job;
    for (;;) {
        uint64_t u = atomic_fetch_add(&job->next, 1);
        if (u >= job->units)
            break;
        uint64_t end = (u + 1) * job->unit < job->rows ? (u + 1) * job->unit : job->rows;
        for (uint64_t row0 = u * job->unit; row0 < end; row0 += job->window) {
            if (job->stop && *job->stop) {
                w->stopped = true;
                return NULL;
            }
            size_t wn = (size_t) (end - row0 < job->window ? end - row0 : job->window);
            if (!s_window(w, row0, wn)) {
                w->failed = true;
                return NULL;
            }
        }
        /* the unit's edges may share 2 MiB blocks with units another
           thread scans (odd dimensions): the block holding its end is
           dropped now, one the other thread maps again is dropped at the
           end of its unit */
        if (job->prog)
            s_release_run(w);
        nf_segment_release_span(job->seg, end - 1, 1);
    }
    s_gather_flush(w);      /* the gathered rows still waiting (filter) */
    return NULL;
}

#define S_FILE_BLOCK (2u << 20)     /* the vectors body: 2 MiB-aligned blocks (nf_segment.h) */

static uint64_t
s_gcd(uint64_t a, uint64_t b)
{
    while (b) {
        uint64_t t = a % b;
        a = b;
        b = t;
    }
    return a;
}

/* Query block and window for nq queries of dim d (see the top comment).
   The score block QB x W is kept near 1 MiB (half an L2 of this class of
   machine... and well inside L3), the window of vectors near 8 MiB at
   most so that releasing it keeps resident memory small. */
static void
s_grid(size_t nq, uint32_t d, uint64_t want_window, size_t *qblock, uint64_t *window)
{
    size_t qb = nq < 256 ? nq : 256;
    if (qb == 0)
        qb = 1;
    uint64_t w = want_window;
    if (w == 0) {
        uint64_t by_scores = (1u << 20) / (4 * (uint64_t) qb);
        uint64_t by_rows = (8u << 20) / (4 * (uint64_t) d);
        w = by_scores < by_rows ? by_scores : by_rows;
        if (w > 16384)
            w = 16384;
        /* whole 2 MiB blocks of vectors when that is at most the window:
           windows (and units of them) then never share a block (d = 384:
           4,096-row 6 MiB windows, not 5,504 rows) */
        uint64_t step = S_FILE_BLOCK / s_gcd(S_FILE_BLOCK, 4 * (uint64_t) d);
        if (step <= w)
            w = w / step * step;
    }
    w = (w + S_BLOCK - 1) / S_BLOCK * S_BLOCK;
    if (w < S_BLOCK)
        w = S_BLOCK;
    *qblock = qb;
    *window = w;
}

/* Rows per unit of work (see Threading at the top): whole windows of w
   rows, about S_UNIT_BYTES of vectors (an eighth of the segment when that
   is less, so small segments still split), ending on a 2 MiB block of the
   vectors file (the body starts on one) unless that would take units of
   over 8 x S_UNIT_BYTES (dimensions with few factors of 2, e.g. 100: 51
   MB per aligned unit); then a unit's edges may share a block, and a
   thread that finishes its unit first drops the shared block under the
   other (it faults back; nothing is wrong, it costs time). */
#define S_UNIT_BYTES (32u << 20)

static uint64_t
s_unit(uint64_t w, uint32_t d, uint64_t rows)
{
    uint64_t rb = 4 * (uint64_t) d;     /* bytes per row */
    uint64_t step = S_FILE_BLOCK / s_gcd(S_FILE_BLOCK, rb);     /* rows per aligned edge */
    uint64_t most = 8ull * S_UNIT_BYTES / rb;                   /* rows */
    uint64_t m = w / s_gcd(w, step);
    uint64_t base = step <= most && m <= most / step ? m * step : w;    /* lcm(w, step) */
    uint64_t want = rows / 8 * rb < S_UNIT_BYTES ? rows / 8 * rb : S_UNIT_BYTES;
    uint64_t n = (want + base * rb - 1) / (base * rb);
    return base * (n ? n : 1);
}

static int
s_threads(int want, uint64_t units)
{
    long t = want > 0 ? want : sysconf(_SC_NPROCESSORS_ONLN);
    if (t < 1)
        t = 1;
    if (t > S_MAX_THREADS)
        t = S_MAX_THREADS;
    if ((uint64_t) t > units)
        t = units > 0 ? (long) units : 1;
    return (int) t;
}

int
nf_scan_search(nf_segment_t *seg, const float *queries, size_t nq, size_t k,
               const nf_scan_opts_t *opts, nf_hit_t *out, size_t *counts)
{
    if (!seg)
        return nf_error_set(NF_EINVAL, "nf_scan_search: no segment");
    if (nq == 0)
        return 0;
    if (!queries || !counts || (k > 0 && !out))
        return nf_error_set(NF_EINVAL, "nf_scan_search: NULL queries, out or counts");
    memset(counts, 0, nq * sizeof *counts);
    uint64_t rows = nf_segment_rows(seg);
    if (k == 0 || rows == 0)
        return 0;
    if (k > SIZE_MAX / sizeof(nf_hit_t) / nq)
        return nf_error_set(NF_EINVAL, "nf_scan_search: k = %zu is too large for %zu queries", k, nq);
    if (rows > (uint64_t) INT32_MAX * 64)
        return nf_error_set(NF_EINVAL, "nf_scan_search: %llu rows is more than a scan supports",
                            (unsigned long long) rows);
    nf_dots_fn dots = NULL;     /* checked on every search, so a bad NFLOW_SCAN_KERNEL
                                   fails even the searches that do not use it */
    int krc = nf_dots_pick(&dots, NULL);
    if (krc)
        return krc;
    size_t out_k = k;           /* stride of out */
    if (k > rows)
        k = (size_t) rows;      /* the collections never need more */

    s_job_t job = {
        .seg = seg, .queries = queries, .nq = nq, .k = k,
        .dim = nf_segment_dim(seg), .metric = nf_segment_metric(seg), .rows = rows,
        .tomb = nf_segment_deleted(seg) ? nf_segment_tombstones(seg) : NULL,
    };
    job.larger_better = job.metric != NF_METRIC_L2;
    job.stop = opts ? opts->stop : NULL;
    s_grid(nq, job.dim, opts ? opts->window_rows : 0, &job.qblock, &job.window);
    job.unit = s_unit(job.window, job.dim, rows);
    job.units = (rows + job.unit - 1) / job.unit;
    atomic_init(&job.next, 0);
    int nt = s_threads(opts ? opts->threads : 0, job.units);
    if (job.window > (uint64_t) INT32_MAX / (job.qblock > 0 ? job.qblock : 1))
        return nf_error_set(NF_EINVAL, "nf_scan_search: window of %llu rows is too large",
                            (unsigned long long) job.window);

    int rc = NF_ENOMEM;
    nf_filter_prog_t *prog = NULL;
    if (opts && opts->stats)
        memset(opts->stats, 0, sizeof *opts->stats);
    if (opts && opts->filter) {
        if ((rc = nf_filter_bind(opts->filter, seg, &prog)))
            return rc;
        job.prog = prog;
        /* gathered rows per product: a window at most, and about 2 MiB */
        uint64_t g = (2u << 20) / ((uint64_t) job.dim * sizeof(float));
        g = g < 16 ? 16 : g / 16 * 16;
        job.gather = (size_t) (g < job.window ? g : job.window);
        rc = NF_ENOMEM;
    }
    float *qaux = malloc(nq * sizeof *qaux);
    s_worker_t *workers = calloc((size_t) nt, sizeof *workers);
    float *qpad = NULL;
    if (!qaux || !workers)
        goto done;
    if (nq <= S_SMALL_Q) {
        job.dpad = (job.dim + S_LANES - 1) / S_LANES * S_LANES;
        qpad = calloc(nq * job.dpad, sizeof *qpad);
        if (!qpad)
            goto done;
        for (size_t q = 0; q < nq; q++)
            memcpy(qpad + q * job.dpad, queries + q * job.dim, job.dim * sizeof *qpad);
        job.qpad = qpad;
        job.dots = dots;
    }
    for (size_t q = 0; q < nq; q++) {
        double ss = 0.0;
        for (uint32_t j = 0; j < job.dim; j++)
            ss += (double) queries[q * job.dim + j] * queries[q * job.dim + j];
        qaux[q] = job.metric == NF_METRIC_L2 ? (float) ss
                  : ss > 0.0 ? (float) (1.0 / sqrt(ss)) : 0.0f;
    }
    job.qaux = qaux;

    for (int i = 0; i < nt; i++) {
        s_worker_t *w = &workers[i];
        w->job = &job;
        w->S = malloc(job.qblock * job.window * sizeof *w->S);
        w->invx = job.metric == NF_METRIC_COSINE ? malloc(job.window * sizeof *w->invx) : NULL;
        w->xn = malloc(job.window * sizeof *w->xn);
        w->pad = qpad ? malloc((size_t) S_LANES * job.dim * sizeof *w->pad) : NULL;
        w->topk = malloc(nq * sizeof *w->topk);
        w->heaps = malloc(nq * k * sizeof *w->heaps);
        if (!w->S || (job.metric == NF_METRIC_COSINE && !w->invx) || !w->xn || (qpad && !w->pad)
            || !w->topk || !w->heaps)
            goto done;
        if (prog && (!(w->sel = malloc((job.window / 64 + 1) * sizeof *w->sel))
                     || !(w->gx = malloc(job.gather * job.dim * sizeof *w->gx))
                     || !(w->gn = malloc(job.gather * sizeof *w->gn))
                     || !(w->grow = malloc(job.gather * sizeof *w->grow))))
            goto done;
        for (size_t q = 0; q < nq; q++)
            nf_topk_init(&w->topk[q], w->heaps + q * k, k, job.larger_better);
    }

    /* One BLAS thread per scanning thread when we split; restored below. */
    int blas_threads = openblas_get_num_threads();
    openblas_set_num_threads(1);
    for (int i = 1; i < nt; i++)
        workers[i].started = pthread_create(&workers[i].tid, NULL, s_worker_run, &workers[i]) == 0;
    s_worker_run(&workers[0]);
    for (int i = 1; i < nt; i++) {
        if (workers[i].started)
            pthread_join(workers[i].tid, NULL);
        else
            s_worker_run(&workers[i]);  /* could not start: do its share here */
    }
    openblas_set_num_threads(blas_threads);
    for (int i = 0; i < nt; i++)
        if (workers[i].stopped) {
            rc = nf_error_set(NF_ETIMEOUT, "nf_scan_search: stopped (the stop flag was set)");
            goto done;
        }
    for (int i = 0; i < nt; i++)
        if (workers[i].failed) {
            rc = workers[i].why[0]
                     ? nf_error_set(NF_EIO, "nf_scan_search: %s", workers[i].why)
                     : nf_error_set(NF_ECORRUPT, "nf_scan_search: segment %s has no rows where "
                                    "its row count says (changed during the search?)",
                                    nf_segment_dir(seg));
            goto done;
        }

    if (opts && opts->stats)
        for (int i = 0; i < nt; i++) {
            nf_scan_stats_t *a = opts->stats, *b = &workers[i].st;
            a->filter_ns += b->filter_ns;
            a->rows_selected += b->rows_selected;
            a->blocks_read += b->blocks_read;
            a->windows += b->windows;
            a->windows_skipped += b->windows_skipped;
            a->windows_gathered += b->windows_gathered;
            a->rows_read += b->rows_read;
            a->windows_runs += b->windows_runs;
            a->windows_full += b->windows_full;
        }
    /* Merge into worker 0's collections, sort, copy out. */
    for (size_t q = 0; q < nq; q++) {
        nf_topk_t *t = &workers[0].topk[q];
        for (int i = 1; i < nt; i++)
            nf_topk_merge(t, workers[i].topk[q].heap, workers[i].topk[q].n);
        counts[q] = nf_topk_sort(t);
        memcpy(out + q * out_k, t->heap, counts[q] * sizeof *out);
    }
    rc = 0;

done:
    if (rc == NF_ENOMEM)
        nf_error_set(NF_ENOMEM, "nf_scan_search: out of memory for %zu queries x k = %zu", nq, k);
    if (workers)
        for (int i = 0; i < nt; i++) {
            free(workers[i].S);
            free(workers[i].invx);
            free(workers[i].xn);
            free(workers[i].pad);
            free(workers[i].topk);
            free(workers[i].heaps);
            free(workers[i].sel);
            free(workers[i].gx);
            free(workers[i].gn);
            free(workers[i].grow);
        }
    nf_filter_prog_destroy(&prog);
    free(workers);
    free(qaux);
    free(qpad);
    return rc;
}
