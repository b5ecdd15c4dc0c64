/*  nf_topk: a bounded best-k collection kept as a binary heap whose root
    (heap[0]) is the worst held hit, so a candidate is compared against the
    root and, when better, replaces it with one sift-down.

    Order: hit a is better than hit b when its score is better (larger for
    larger_better, smaller otherwise) or, at equal score, its key is
    smaller.  That is a strict total order on distinct keys, so the set of
    k best hits of any stream does not depend on the order of the stream:
    merging per-thread collections gives exactly the single-thread result.

    NaN scores are never kept (they compare false both ways and would break
    the heap order).                                                         */
#include "nf_topk.h"

#include <math.h>

/* True when a is strictly better than b. */
static inline bool
s_better(bool larger_better, float as, uint64_t ak, float bs, uint64_t bk)
{
    if (as != bs)
        return larger_better ? as > bs : as < bs;
    return ak < bk;
}

/* Restore the heap (worst at the root) after heap[i] may have become worse
   than its parent. */
static void
s_sift_up(nf_topk_t *t, size_t i)
{
    nf_hit_t h = t->heap[i];
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        nf_hit_t *p = &t->heap[parent];
        /* stop when the parent is at least as bad as h */
        if (!s_better(t->larger_better, p->score, p->key, h.score, h.key))
            break;
        t->heap[i] = *p;
        i = parent;
    }
    t->heap[i] = h;
}

/* Restore the heap over heap[0..n) after heap[i] may have become better
   than one of its children. */
static void
s_sift_down(nf_hit_t *heap, size_t n, size_t i, bool larger_better)
{
    nf_hit_t h = heap[i];
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n)
            break;
        /* pick the worse child */
        if (c + 1 < n
            && s_better(larger_better, heap[c].score, heap[c].key,
                        heap[c + 1].score, heap[c + 1].key))
            c++;
        /* stop when h is at least as bad as the worse child */
        if (!s_better(larger_better, h.score, h.key, heap[c].score, heap[c].key))
            break;
        heap[i] = heap[c];
        i = c;
    }
    heap[i] = h;
}

static void
s_update_worst(nf_topk_t *t)
{
    if (t->n == t->k && t->k > 0)
        t->worst = t->heap[0].score;
    else
        t->worst = t->larger_better ? -INFINITY : INFINITY;
}

void
nf_topk_init(nf_topk_t *t, nf_hit_t *heap, size_t k, bool larger_better)
{
    t->heap = heap;
    t->k = k;
    t->n = 0;
    t->larger_better = larger_better;
    s_update_worst(t);
    if (k == 0)     /* nothing can enter: make nf_topk_rejects() say so */
        t->worst = larger_better ? INFINITY : -INFINITY;
}

void
nf_topk_push(nf_topk_t *t, float score, uint64_t key)
{
    if (isnan(score) || t->k == 0)
        return;
    if (t->n < t->k) {
        t->heap[t->n].score = score;
        t->heap[t->n].key = key;
        s_sift_up(t, t->n);
        t->n++;
        s_update_worst(t);
        return;
    }
    nf_hit_t *root = &t->heap[0];
    if (!s_better(t->larger_better, score, key, root->score, root->key))
        return;
    root->score = score;
    root->key = key;
    s_sift_down(t->heap, t->n, 0, t->larger_better);
    t->worst = t->heap[0].score;
}

void
nf_topk_merge(nf_topk_t *dst, const nf_hit_t *hits, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!nf_topk_rejects(dst, hits[i].score))
            nf_topk_push(dst, hits[i].score, hits[i].key);
}

size_t
nf_topk_sort(nf_topk_t *t)
{
    /* Heap sort: move the worst hit to the end, shrink, repeat.  The array
       ends up best first. */
    size_t n = t->n;
    for (size_t end = n; end > 1; end--) {
        nf_hit_t tmp = t->heap[0];
        t->heap[0] = t->heap[end - 1];
        t->heap[end - 1] = tmp;
        s_sift_down(t->heap, end - 1, 0, t->larger_better);
    }
    return n;
}
