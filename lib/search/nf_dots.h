/*  nf_dots: the scan's own dot kernels for few queries (1..64): a block
    of scores S = Q . X^T computed with register tiles of queries x rows,
    in AVX-512, AVX2 + FMA and portable versions, the best this CPU runs
    picked at run time (or the one NFLOW_SCAN_KERNEL names).  Used by
    nf_scan.c; nf_scan_kernel / nf_scan_kernel_supported (nf_scan.h) are
    defined here.                                                         */
#ifndef NF_DOTS_H
#define NF_DOTS_H

#include <stddef.h>

/* Signature of a dot kernel: S (m x wn, leading dimension lds) = Qp . X^T
   for m queries zero-padded to dpad floats (a multiple of 16) and wn rows
   of X (stride d); wn must be a multiple of 16. */
typedef void (*nf_dots_fn)(const float *Qp, size_t m, size_t dpad, const float *X, size_t d,
                           size_t wn, float *S, size_t lds);

/* The kernel a search uses now (*fn, and its name in *name; either may be
   NULL): NFLOW_SCAN_KERNEL's when set, else the best this CPU runs.
   NF_EINVAL when NFLOW_SCAN_KERNEL is unknown or not runnable here. */
int nf_dots_pick(nf_dots_fn *fn, const char **name);

#endif
