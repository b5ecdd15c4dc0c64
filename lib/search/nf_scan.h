/*  nf_scan: exact top-k search over a segment, batched with OpenBLAS.

    Per window of rows: one cblas_sgemm of all queries against the window,
    the row norms from the segment, then a fused top-k per query that
    rejects most candidates with one compare against the current k-th best.
    Tombstoned rows never appear.  Each window is released after use
    (nf_segment_release) so resident memory stays constant as the segment
    grows.  All cores are used: rows are split across threads (each with
    its own top-k per query, merged exactly at the end); results are
    identical to a single-thread run.  Up to 64 queries use a built-in
    dot kernel (nf_dots.c), more cblas_sgemm (see nf_scan.c).
    OpenBLAS's own thread count is set to 1 during a search and restored.

    Scores: l2 = squared euclidean distance (smaller is better); ip = inner
    product; cosine = cosine similarity (larger is better for both).  Ties
    are broken by row (smaller first).                                      */
#ifndef NF_SCAN_H
#define NF_SCAN_H

#include "nf_segment.h"
#include "nf_topk.h"

typedef struct nf_filter nf_filter_t;

/* What a filtered search did (summed over threads). */
typedef struct {
    uint64_t filter_ns;         /* thread-time spent evaluating the filter */
    uint64_t rows_selected;     /* live rows the filter kept */
    uint64_t blocks_read;       /* NF_SUMMARY_ROWS blocks whose columns were read
                                   (the others were decided by their summaries) */
    uint64_t windows;           /* windows of the scan */
    uint64_t windows_skipped;   /* no row selected: vectors not read */
    uint64_t windows_gathered;  /* few rows: distances on the gathered rows */
    uint64_t rows_read;         /* of them, rows read with pread (very few per window) */
    uint64_t windows_runs;      /* products over the runs of 64-row blocks with a row */
    uint64_t windows_full;      /* one product over the whole window */
} nf_scan_stats_t;

typedef struct {
    int threads;            /* 0 = number of online cores */
    uint64_t window_rows;   /* rows per sgemm window; 0 = automatic */
    const volatile int *stop;   /* looked at between windows; when it is non-zero the
                                   search ends with NF_ETIMEOUT ("stopped").  NULL =
                                   never.  A pod passes &zsys_interrupted (set by
                                   SIGTERM / SIGINT) so it exits in time. */
    const nf_filter_t *filter;  /* only rows it keeps are candidates (nf_filter.h;
                                   parsed against the segment's schema); NULL = all */
    nf_scan_stats_t *stats;     /* filled when non-NULL */
} nf_scan_opts_t;

/* Search nq queries (row-major nq x dim) for the k best rows each (with
   opts->filter: the k best rows the filter keeps; per window the filter is
   evaluated into a row bitmap, combined with the tombstones, and the
   window is skipped unread (nothing kept), scanned over the gathered kept
   rows (few kept), over the runs of 64-row blocks holding a kept row, or
   whole, from the measured count; see nf_scan.c).
   out[q*k .. q*k+counts[q]) gets query q's hits, best first (key = row);
   counts[q] < k only when fewer live rows exist.  opts may be NULL.
   Not reentrant: it sets OpenBLAS's process-wide thread count to 1 for
   the scan and restores it after, so two scans must not run at once in
   one process (the indexer runs one scan at a time). */
int nf_scan_search(nf_segment_t *seg, const float *queries, size_t nq, size_t k,
                   const nf_scan_opts_t *opts, nf_hit_t *out, size_t *counts);

/* The dot kernel of 1..64-query searches: "avx512" (AVX-512F), "avx2"
   (AVX2 + FMA) or "portable" (any CPU).  A search uses the best one this
   CPU runs, unless the environment variable NFLOW_SCAN_KERNEL names one:
   then that one, and a name that is unknown or that this CPU cannot run
   makes every nf_scan_search fail with NF_EINVAL (no silent fallback).
   nf_scan_kernel sets *name to the kernel a search would use now (NULL
   and the same error when NFLOW_SCAN_KERNEL is bad). */
bool nf_scan_kernel_supported(const char *name);
int nf_scan_kernel(const char **name);

#endif
