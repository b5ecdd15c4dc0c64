/* nf_scan: exact top-k against a double-precision brute force with a full
   sort, for the three metrics and several shapes (n < k, n not a multiple
   of the window, more queries than one query block, odd dims); tombstoned
   rows never returned; duplicate rows come out in row order; 1 and 2
   threads give identical results, and so do the mmap and memory policies;
   zero queries and zero rows under cosine; argument errors.  Every dot
   kernel this CPU runs is forced in turn through NFLOW_SCAN_KERNEL and
   checked on the few-query shapes; one it cannot run, or an unknown name,
   must be refused (and is reported as not run). */
#include "nf_error.h"
#include "nf_scan.h"
#include "nf_segment.h"
#include "nf_test.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uint64_t s_rng = 0x9E3779B97F4A7C15ull;

static uint64_t
s_next(void)
{
    return nf_test_rand(&s_rng);
}

/* Roughly normal: sum of uniforms, centred. */
static float
s_gauss(void)
{
    double x = 0.0;
    for (int i = 0; i < 4; i++)
        x += (double) (s_next() >> 11) / 9007199254740992.0;
    return (float) ((x - 2.0) * 1.7320508);
}

typedef struct {
    double score;
    uint64_t row;
} s_ref_t;

static bool s_ref_larger;

static int
s_ref_cmp(const void *a, const void *b)
{
    const s_ref_t *x = a, *y = b;
    if (x->score != y->score) {
        bool xb = s_ref_larger ? x->score > y->score : x->score < y->score;
        return xb ? -1 : 1;
    }
    return x->row < y->row ? -1 : 1;
}

/* The score of row x for query q in double precision. */
static double
s_exact(nf_metric_t metric, const float *q, const float *x, uint32_t d)
{
    double dot = 0.0, qq = 0.0, xx = 0.0;
    for (uint32_t j = 0; j < d; j++) {
        dot += (double) q[j] * x[j];
        qq += (double) q[j] * q[j];
        xx += (double) x[j] * x[j];
    }
    if (metric == NF_METRIC_L2)
        return qq + xx - 2.0 * dot;
    if (metric == NF_METRIC_IP)
        return dot;
    return qq > 0.0 && xx > 0.0 ? dot / (sqrt(qq) * sqrt(xx)) : 0.0;
}

/* A test segment: vectors kept in memory too, for the reference. */
typedef struct {
    char *dir;
    nf_segment_t *seg;
    float *vecs;
    bool *dead;
    size_t n;
    uint32_t d;
    nf_metric_t metric;
    double maxnorm2;
} s_fixture_t;

/* n rows of dim d: random, with rows 100..109 copies of row 5 (exact
   ties), a few zero rows, and about 1 in 12 rows deleted (never 5 or
   100..109) plus one whole 64-row block when n allows. */
static int
s_fixture(s_fixture_t *f, size_t n, uint32_t d, nf_metric_t metric)
{
    memset(f, 0, sizeof *f);
    f->n = n;
    f->d = d;
    f->metric = metric;
    f->dir = nf_test_tmpdir();
    f->vecs = malloc((n ? n : 1) * d * sizeof *f->vecs);
    f->dead = calloc(n ? n : 1, sizeof *f->dead);
    if (!f->dir || !f->vecs || !f->dead)
        return NF_ENOMEM;
    for (size_t i = 0; i < n * d; i++)
        f->vecs[i] = s_gauss();
    for (size_t i = 100; i < n && i < 110; i++)
        memcpy(f->vecs + i * d, f->vecs + 5 * d, d * sizeof(float));
    for (size_t i = 7; i < n; i += 1001)
        memset(f->vecs + i * d, 0, d * sizeof(float));
    for (size_t i = 0; i < n; i++) {
        double xx = 0.0;
        for (uint32_t j = 0; j < d; j++)
            xx += (double) f->vecs[i * d + j] * f->vecs[i * d + j];
        if (xx > f->maxnorm2)
            f->maxnorm2 = xx;
    }

    int rc = nf_segment_create(f->dir, d, metric, &f->seg);
    if (rc)
        return rc;
    enum { BATCH = 1000 };
    nf_doc_t docs[BATCH];
    char ids[BATCH][24];
    for (size_t i0 = 0; i0 < n; i0 += BATCH) {
        size_t m = n - i0 < BATCH ? n - i0 : BATCH;
        for (size_t i = 0; i < m; i++) {
            snprintf(ids[i], sizeof ids[i], "r%zu", i0 + i);
            docs[i] = (nf_doc_t) {.id = ids[i], .vector = f->vecs + (i0 + i) * d};
        }
        if ((rc = nf_segment_append(f->seg, docs, m)))
            return rc;
    }
    /* deletions: scattered, plus rows 128..191 (one tombstone word) */
    for (size_t i = 3; i < n; i++) {
        bool keep = i == 5 || (i >= 100 && i < 110);   /* the tie rows */
        bool del = !keep && ((s_next() % 12 == 0) || (i >= 128 && i < 192));
        if (!del)
            continue;
        char id[24];
        const char *idp = id;
        snprintf(id, sizeof id, "r%zu", i);
        size_t gone = 0;
        if ((rc = nf_segment_delete(f->seg, &idp, 1, &gone)))
            return rc;
        f->dead[i] = gone == 1;
    }
    return 0;
}

static void
s_fixture_free(s_fixture_t *f)
{
    nf_segment_destroy(&f->seg);
    nf_test_rmdir(f->dir);
    free(f->dir);
    free(f->vecs);
    free(f->dead);
}

/* Compare one query's result with the reference: same count, scores close,
   rows live and distinct, order best first with exact ties by row, and every
   row the reference ranks clearly inside the top k present. */
static void
s_compare(const s_fixture_t *f, const float *q, size_t k, const nf_hit_t *hits, size_t count,
          s_ref_t *ref)
{
    size_t live = 0;
    double qq = 0.0;
    for (uint32_t j = 0; j < f->d; j++)
        qq += (double) q[j] * q[j];
    for (size_t i = 0; i < f->n; i++)
        if (!f->dead[i]) {
            ref[live].score = s_exact(f->metric, q, f->vecs + i * f->d, f->d);
            ref[live].row = i;
            live++;
        }
    s_ref_larger = f->metric != NF_METRIC_L2;
    qsort(ref, live, sizeof *ref, s_ref_cmp);
    size_t want = live < k ? live : k;
    CHECK(count == want);
    if (count != want)
        return;

    double scale = f->metric == NF_METRIC_L2 ? qq + f->maxnorm2
                   : f->metric == NF_METRIC_IP ? sqrt(qq * f->maxnorm2) : 1.0;
    double tol = 1e-5 * scale + 1e-6;
    size_t bad_score = 0, bad_row = 0, bad_order = 0, missing = 0;
    for (size_t i = 0; i < count; i++) {
        uint64_t r = hits[i].key;
        if (r >= f->n || f->dead[r]) {
            bad_row++;
            continue;
        }
        for (size_t j = 0; j < i; j++)
            bad_row += hits[j].key == r;
        double exact = s_exact(f->metric, q, f->vecs + r * f->d, f->d);
        if (f->metric == NF_METRIC_L2 && exact < 0.0)
            exact = 0.0;
        bad_score += fabs(exact - hits[i].score) > tol;
        bad_score += fabs(ref[i].score - hits[i].score) > 2 * tol;     /* rank i score */
        if (i > 0) {
            float a = hits[i - 1].score, b = hits[i].score;
            bool worse = s_ref_larger ? a < b : a > b;
            bad_order += worse || (a == b && hits[i - 1].key > hits[i].key);
        }
    }
    /* rows clearly better than the k-th score must all be there */
    double kth = ref[want - 1].score;
    for (size_t i = 0; i < want; i++) {
        bool clear = s_ref_larger ? ref[i].score > kth + 2 * tol : ref[i].score < kth - 2 * tol;
        if (!clear)
            continue;
        bool found = false;
        for (size_t j = 0; j < count && !found; j++)
            found = hits[j].key == ref[i].row;
        missing += !found;
    }
    CHECK(bad_row == 0);
    CHECK(bad_score == 0);
    CHECK(bad_order == 0);
    CHECK(missing == 0);
    if (bad_row || bad_score || bad_order || missing)
        fprintf(stderr, "  n=%zu d=%u metric=%s k=%zu: bad rows %zu, scores %zu, order %zu, missing %zu\n",
                f->n, f->d, nf_metric_name(f->metric), k, bad_row, bad_score, bad_order, missing);
}

static bool
s_same(const nf_hit_t *a, const size_t *ca, const nf_hit_t *b, const size_t *cb, size_t nq, size_t k)
{
    for (size_t q = 0; q < nq; q++) {
        if (ca[q] != cb[q])
            return false;
        for (size_t i = 0; i < ca[q]; i++)
            if (a[q * k + i].key != b[q * k + i].key || a[q * k + i].score != b[q * k + i].score)
                return false;
    }
    return true;
}

/* One shape: reference check with 1 thread, then 2 threads and the memory
   policy must give identical results. */
static void
s_case(size_t n, uint32_t d, size_t nq, size_t k, nf_metric_t metric, uint64_t window)
{
    s_fixture_t f;
    int rc = s_fixture(&f, n, d, metric);
    CHECK_OK(rc);
    if (rc) {
        s_fixture_free(&f);
        return;
    }
    float *queries = malloc(nq * d * sizeof *queries);
    nf_hit_t *out1 = calloc(nq * k, sizeof *out1), *out2 = calloc(nq * k, sizeof *out2);
    nf_hit_t *out3 = calloc(nq * k, sizeof *out3);
    size_t *c1 = calloc(nq, sizeof *c1), *c2 = calloc(nq, sizeof *c2), *c3 = calloc(nq, sizeof *c3);
    s_ref_t *ref = malloc((n ? n : 1) * sizeof *ref);
    for (size_t i = 0; i < nq * d; i++)
        queries[i] = s_gauss();
    /* query 1 is a copy of row 5 (and so of rows 100..109) */
    if (nq > 1 && n > 5)
        memcpy(queries + d, f.vecs + 5 * d, d * sizeof(float));

    nf_scan_opts_t one = {.threads = 1, .window_rows = window};
    nf_scan_opts_t two = {.threads = 2, .window_rows = window};
    CHECK_OK(nf_scan_search(f.seg, queries, nq, k, &one, out1, c1));
    for (size_t q = 0; q < nq; q++)
        s_compare(&f, queries + q * d, k, out1 + q * k, c1[q], ref);
    CHECK_OK(nf_scan_search(f.seg, queries, nq, k, &two, out2, c2));
    CHECK(s_same(out1, c1, out2, c2, nq, k));

    /* 1..64 queries share one kernel whose dot products do not depend on
       the batch: the first query alone, and the first two, score exactly
       as in it */
    if (nq > 1 && nq <= 64) {
        CHECK_OK(nf_scan_search(f.seg, queries, 1, k, &two, out2, c2));
        CHECK(s_same(out1, c1, out2, c2, 1, k));
    }
    if (nq > 2 && nq <= 64) {
        CHECK_OK(nf_scan_search(f.seg, queries, 2, k, &two, out2, c2));
        CHECK(s_same(out1, c1, out2, c2, 2, k));
    }

    /* reopened read-only with vectors in memory */
    nf_segment_t *mem = NULL;
    nf_segment_opts_t mo = {.vectors = NF_MEM_MEMORY, .readonly = true};
    CHECK_OK(nf_segment_open(f.dir, &mo, &mem));
    if (mem) {
        CHECK_OK(nf_scan_search(mem, queries, nq, k, &two, out3, c3));
        CHECK(s_same(out1, c1, out3, c3, nq, k));
        nf_segment_destroy(&mem);
    }
    printf("  n=%zu d=%u q=%zu k=%zu %s window=%llu\n", n, d, nq, k, nf_metric_name(metric),
           (unsigned long long) window);

    free(queries);
    free(out1);
    free(out2);
    free(out3);
    free(c1);
    free(c2);
    free(c3);
    free(ref);
    s_fixture_free(&f);
}

/* Duplicated rows score exactly alike and come out in row order; a zero
   query under cosine and ip scores every row 0, so the k smallest live
   rows win. */
static void
s_ties(void)
{
    s_fixture_t f;
    CHECK_OK(s_fixture(&f, 300, 24, NF_METRIC_COSINE));
    if (!f.seg) {
        s_fixture_free(&f);
        return;
    }
    float q[24];
    nf_hit_t out[12];
    size_t count = 0;
    memcpy(q, f.vecs + 5 * 24, sizeof q);
    CHECK_OK(nf_scan_search(f.seg, q, 1, 11, NULL, out, &count));
    CHECK(count == 11);
    CHECK(out[0].key == 5);
    for (size_t i = 1; i < 11; i++)
        CHECK(out[i].key == 99 + i && out[i].score == out[0].score);

    memset(q, 0, sizeof q);
    CHECK_OK(nf_scan_search(f.seg, q, 1, 12, NULL, out, &count));
    CHECK(count == 12);
    size_t want = 0, bad = 0;
    for (size_t i = 0; i < 12; i++) {
        while (f.dead[want])
            want++;
        bad += out[i].key != want || out[i].score != 0.0f;
        want++;
    }
    CHECK(bad == 0);

    /* the same zero query inside a batch of 3 (the few-query kernel and
       its block reject check, where every score ties with the worst) */
    float q3[3 * 24] = {0};
    nf_hit_t out3[3 * 12];
    size_t counts3[3] = {0};
    memcpy(q3, f.vecs + 5 * 24, 24 * sizeof(float));
    CHECK_OK(nf_scan_search(f.seg, q3, 3, 12, NULL, out3, counts3));
    CHECK(counts3[1] == 12 && counts3[2] == 12 && out3[0].key == 5);
    bad = 0;
    for (size_t i = 0; i < 12; i++)
        bad += out3[12 + i].key != out[i].key || out3[12 + i].score != 0.0f
               || out3[24 + i].key != out[i].key;
    CHECK(bad == 0);
    s_fixture_free(&f);
}

static void
s_edges(void)
{
    char *dir = nf_test_tmpdir();
    nf_segment_t *seg = NULL;
    CHECK_OK(nf_segment_create(dir, 4, NF_METRIC_L2, &seg));
    float q[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    nf_hit_t out[6];
    size_t counts[2] = {9, 9};
    /* empty segment */
    CHECK_OK(nf_scan_search(seg, q, 2, 3, NULL, out, counts));
    CHECK(counts[0] == 0 && counts[1] == 0);
    /* k = 0, nq = 0 */
    nf_doc_t doc = {.id = "a", .vector = q};
    CHECK_OK(nf_segment_append(seg, &doc, 1));
    counts[0] = 9;
    CHECK_OK(nf_scan_search(seg, q, 1, 0, NULL, NULL, counts));
    CHECK(counts[0] == 0);
    CHECK_OK(nf_scan_search(seg, q, 0, 3, NULL, NULL, NULL));
    /* one row, k = 3, two queries: stride k in out */
    CHECK_OK(nf_scan_search(seg, q, 2, 3, NULL, out, counts));
    CHECK(counts[0] == 1 && counts[1] == 1);
    CHECK(out[0].key == 0 && out[0].score == 0.0f);
    CHECK(out[3].key == 0 && fabsf(out[3].score - 64.0f) < 1e-4f);
    /* bad arguments */
    CHECK(nf_scan_search(NULL, q, 1, 3, NULL, out, counts) == NF_EINVAL);
    CHECK(nf_scan_search(seg, NULL, 1, 3, NULL, out, counts) == NF_EINVAL);
    CHECK(nf_scan_search(seg, q, 1, 3, NULL, NULL, counts) == NF_EINVAL);
    CHECK(strstr(nf_error_msg(), "nf_scan_search") != NULL);
    nf_segment_destroy(&seg);
    nf_test_rmdir(dir);
    free(dir);
}

/* The few-query shapes (1..64 queries: the ones that use a dot kernel). */
static void
s_few_query_cases(void)
{
    static const nf_metric_t metrics[] = {NF_METRIC_L2, NF_METRIC_IP, NF_METRIC_COSINE};
    for (int m = 0; m < 3; m++) {
        s_case(5, 8, 3, 10, metrics[m], 0);
        s_case(3001, 33, 7, 5, metrics[m], 192);
        s_case(10000, 64, 40, 20, metrics[m], 640);
        s_case(700, 20, 2, 1, metrics[m], 64);
        s_case(1500, 37, 1, 8, metrics[m], 0);
        s_case(2500, 128, 13, 10, metrics[m], 0);
        s_case(1000, 100, 6, 7, metrics[m], 320);
    }
}

/* A search of 2 queries under NFLOW_SCAN_KERNEL=name must fail with
   NF_EINVAL naming the variable. */
static void
s_refused(const char *name)
{
    setenv("NFLOW_SCAN_KERNEL", name, 1);
    const char *got = "x";
    CHECK(nf_scan_kernel(&got) == NF_EINVAL && got == NULL);
    char *dir = nf_test_tmpdir();
    nf_segment_t *seg = NULL;
    CHECK_OK(nf_segment_create(dir, 4, NF_METRIC_L2, &seg));
    float v[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    nf_doc_t doc = {.id = "a", .vector = v};
    CHECK_OK(nf_segment_append(seg, &doc, 1));
    nf_hit_t out[2];
    size_t counts[2];
    CHECK(nf_scan_search(seg, v, 2, 1, NULL, out, counts) == NF_EINVAL);
    char want[64];
    snprintf(want, sizeof want, "NFLOW_SCAN_KERNEL=%s", name);
    CHECK(strstr(nf_error_msg(), want) != NULL);
    printf("  NFLOW_SCAN_KERNEL=%s refused: %s\n", name, nf_error_msg());
    nf_segment_destroy(&seg);
    nf_test_rmdir(dir);
    free(dir);
}

static void
s_kernels(void)
{
    static const char *names[] = {"avx512", "avx2", "portable"};
    const char *best = NULL;
    unsetenv("NFLOW_SCAN_KERNEL");
    CHECK_OK(nf_scan_kernel(&best));
    printf("default dot kernel: %s\n", best ? best : "?");
    CHECK(nf_scan_kernel_supported("portable"));
    CHECK(!nf_scan_kernel_supported("sse9") && !nf_scan_kernel_supported(NULL));
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        if (!nf_scan_kernel_supported(names[i])) {
            printf("kernel %s: NOT RUN, this CPU cannot run it\n", names[i]);
            s_refused(names[i]);
            continue;
        }
        setenv("NFLOW_SCAN_KERNEL", names[i], 1);
        const char *got = NULL;
        CHECK_OK(nf_scan_kernel(&got));
        CHECK(got && !strcmp(got, names[i]));
        printf("kernel %s (forced):\n", names[i]);
        s_few_query_cases();
    }
    s_refused("sse9");
    unsetenv("NFLOW_SCAN_KERNEL");
}

int
main(void)
{
    /* the default runs below must not inherit a forced kernel */
    unsetenv("NFLOW_SCAN_KERNEL");
    static const nf_metric_t metrics[] = {NF_METRIC_L2, NF_METRIC_IP, NF_METRIC_COSINE};
    for (int m = 0; m < 3; m++) {
        s_case(5, 8, 3, 10, metrics[m], 0);            /* n < k */
        s_case(2000, 16, 1, 10, metrics[m], 0);        /* one query: sgemv */
        s_case(3001, 33, 7, 5, metrics[m], 192);       /* odd dim, many windows, ragged end */
        s_case(10000, 64, 40, 20, metrics[m], 640);    /* n not a multiple of the window */
        s_case(1500, 128, 300, 3, metrics[m], 0);      /* two query blocks */
        s_case(700, 20, 2, 1, metrics[m], 64);
        s_case(1500, 37, 1, 8, metrics[m], 0);         /* k = 1, smallest window */
        s_case(2500, 128, 13, 10, metrics[m], 0);      /* tiles 4x4 x 3 + 1x16 */
        s_case(1000, 100, 6, 7, metrics[m], 320);      /* 4x4 + 2x8, dim tail */
    }
    s_ties();
    s_edges();
    s_kernels();
    return nf_test_done("scan");
}
