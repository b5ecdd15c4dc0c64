/* nf_topk: random streams against a sort-based reference, in both
   directions; ties broken by the smaller key; k larger than the stream;
   k = 0; NaN never kept; merging split streams equals one stream. */
#include "nf_error.h"
#include "nf_test.h"
#include "nf_topk.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static uint64_t s_rng = 88172645463325252ull;

static uint64_t
s_next(void)
{
    return nf_test_rand(&s_rng);
}

static bool s_sort_larger;

/* qsort comparator: best first, smaller key first at equal score. */
static int
s_cmp(const void *a, const void *b)
{
    const nf_hit_t *x = a, *y = b;
    if (x->score != y->score) {
        bool xb = s_sort_larger ? x->score > y->score : x->score < y->score;
        return xb ? -1 : 1;
    }
    return x->key < y->key ? -1 : x->key > y->key ? 1 : 0;
}

/* Push `n` hits through a top-k of size k and compare with sorting them. */
static void
s_check_stream(const nf_hit_t *hits, size_t n, size_t k, bool larger)
{
    nf_hit_t *heap = malloc((k ? k : 1) * sizeof *heap);
    nf_hit_t *ref = malloc((n ? n : 1) * sizeof *ref);
    nf_topk_t t;
    nf_topk_init(&t, heap, k, larger);
    size_t rejected_wrongly = 0;
    for (size_t i = 0; i < n; i++) {
        /* the fast reject must never drop a hit the reference keeps; it is
           checked below by comparing the final sets, and here by pushing
           only what is not rejected, exactly as the scan does */
        if (!nf_topk_rejects(&t, hits[i].score))
            nf_topk_push(&t, hits[i].score, hits[i].key);
    }
    memcpy(ref, hits, n * sizeof *ref);
    s_sort_larger = larger;
    qsort(ref, n, sizeof *ref, s_cmp);
    size_t want = n < k ? n : k;
    size_t got = nf_topk_sort(&t);
    CHECK(got == want);
    for (size_t i = 0; i < want && i < got; i++) {
        if (heap[i].key != ref[i].key || heap[i].score != ref[i].score)
            rejected_wrongly++;
    }
    CHECK(rejected_wrongly == 0);
    free(heap);
    free(ref);
}

static void
s_random_streams(void)
{
    static const size_t ns[] = {0, 1, 5, 17, 100, 1000, 5000};
    static const size_t ks[] = {1, 2, 3, 10, 64, 200};
    for (size_t a = 0; a < sizeof ns / sizeof ns[0]; a++)
        for (size_t b = 0; b < sizeof ks / sizeof ks[0]; b++)
            for (int dir = 0; dir < 2; dir++)
                for (int ties = 0; ties < 2; ties++) {
                    size_t n = ns[a];
                    nf_hit_t *hits = malloc((n ? n : 1) * sizeof *hits);
                    for (size_t i = 0; i < n; i++) {
                        /* with ties: scores from a handful of values, so
                           most comparisons fall back to the key */
                        hits[i].score = ties ? (float) (s_next() % 7) - 3.0f
                                             : (float) ((double) (s_next() >> 11) / 9007199254740992.0 * 200.0 - 100.0);
                        hits[i].key = s_next() % 1000000007u;
                    }
                    /* keys must be distinct for a total order */
                    for (size_t i = 0; i < n; i++)
                        hits[i].key = hits[i].key * 8192 + i;
                    s_check_stream(hits, n, ks[b], dir == 1);
                    free(hits);
                }
}

static void
s_ties_small_key_wins(void)
{
    nf_hit_t heap[3];
    nf_topk_t t;
    nf_topk_init(&t, heap, 3, true);
    for (uint64_t key = 10; key > 0; key--)
        nf_topk_push(&t, 1.0f, key);
    CHECK(nf_topk_sort(&t) == 3);
    CHECK(heap[0].key == 1 && heap[1].key == 2 && heap[2].key == 3);

    /* a tie with the worst is not rejected by the fast check (it may win on
       key), and enters only when its key is smaller */
    nf_topk_init(&t, heap, 2, false);
    nf_topk_push(&t, 5.0f, 7);
    nf_topk_push(&t, 4.0f, 8);
    CHECK(t.worst == 5.0f);
    CHECK(!nf_topk_rejects(&t, 5.0f));
    CHECK(nf_topk_rejects(&t, 5.5f));
    nf_topk_push(&t, 5.0f, 9);      /* same score, larger key: stays out */
    nf_topk_push(&t, 5.0f, 3);      /* same score, smaller key: replaces 7 */
    CHECK(nf_topk_sort(&t) == 2);
    CHECK(heap[0].key == 8 && heap[1].key == 3);
}

static void
s_edges(void)
{
    nf_hit_t heap[4];
    nf_topk_t t;

    /* k = 0 keeps nothing and rejects everything */
    nf_topk_init(&t, heap, 0, true);
    CHECK(nf_topk_rejects(&t, 1e30f));
    nf_topk_push(&t, 1.0f, 1);
    CHECK(nf_topk_sort(&t) == 0);

    /* not full: nothing is rejected, even infinities */
    nf_topk_init(&t, heap, 4, false);
    CHECK(!nf_topk_rejects(&t, INFINITY));
    nf_topk_push(&t, INFINITY, 1);
    nf_topk_push(&t, NAN, 2);       /* never kept */
    nf_topk_push(&t, -1.0f, 3);
    CHECK(t.n == 2);
    CHECK(nf_topk_sort(&t) == 2);
    CHECK(heap[0].key == 3 && heap[1].key == 1);
}

static void
s_merge_equals_single(void)
{
    enum { N = 3000, K = 25, PARTS = 3 };
    nf_hit_t *hits = malloc(N * sizeof *hits);
    for (size_t i = 0; i < N; i++) {
        hits[i].score = (float) (s_next() % 50);
        hits[i].key = i;
    }
    for (int dir = 0; dir < 2; dir++) {
        nf_hit_t whole[K], parts[PARTS][K], merged[K];
        nf_topk_t tw, tp[PARTS], tm;
        nf_topk_init(&tw, whole, K, dir);
        for (int p = 0; p < PARTS; p++)
            nf_topk_init(&tp[p], parts[p], K, dir);
        for (size_t i = 0; i < N; i++) {
            nf_topk_push(&tw, hits[i].score, hits[i].key);
            nf_topk_push(&tp[i % PARTS], hits[i].score, hits[i].key);
        }
        nf_topk_init(&tm, merged, K, dir);
        for (int p = PARTS - 1; p >= 0; p--)
            nf_topk_merge(&tm, parts[p], tp[p].n);
        CHECK(nf_topk_sort(&tw) == K);
        CHECK(nf_topk_sort(&tm) == K);
        size_t diff = 0;
        for (size_t i = 0; i < K; i++)
            diff += whole[i].key != merged[i].key || whole[i].score != merged[i].score;
        CHECK(diff == 0);
    }
    free(hits);
}

int
main(void)
{
    s_random_streams();
    s_ties_small_key_wins();
    s_edges();
    s_merge_equals_single();
    return nf_test_done("topk");
}
