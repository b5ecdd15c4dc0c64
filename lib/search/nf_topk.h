/*  nf_topk: a bounded best-k collection of (score, key) pairs.

    "Better" is larger score for ip/cosine and smaller for l2; at equal score
    the smaller key wins (keys are row numbers in a scan, or a global order in
    the reducer), so results are deterministic.  The struct is public so that
    the scan's inner loop can reject a candidate with one compare against
    `worst` without a call; treat its fields as read-only.                  */
#ifndef NF_TOPK_H
#define NF_TOPK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct {
    float score;
    uint64_t key;
} nf_hit_t;

typedef struct {
    nf_hit_t *heap;         /* worst at heap[0] once full */
    size_t k, n;
    bool larger_better;
    float worst;            /* score a candidate must beat (or tie) to enter */
} nf_topk_t;

/* Initialise over caller storage heap[k]. */
void nf_topk_init(nf_topk_t *t, nf_hit_t *heap, size_t k, bool larger_better);

/* Offer a candidate; keeps the k best. */
void nf_topk_push(nf_topk_t *t, float score, uint64_t key);

/* Fast reject: true when (score) cannot enter the full collection. */
static inline bool
nf_topk_rejects(const nf_topk_t *t, float score)
{
    if (t->n < t->k)
        return false;
    return t->larger_better ? score < t->worst : score > t->worst;
}

/* Offer n hits (e.g. another collection's heap[0..n), or a sorted result);
   the outcome is the same as pushing them one by one, so merging per-thread
   collections gives exactly the single-collection result. */
void nf_topk_merge(nf_topk_t *dst, const nf_hit_t *hits, size_t n);

/* Sort the held hits best first (heap order is lost); returns the count. */
size_t nf_topk_sort(nf_topk_t *t);

#endif
