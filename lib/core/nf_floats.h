/*  nf_floats: checks over float32 values shared by the readers (vecio), the
    wire (nf_vec_check) and the store (nf_seg_append).                    */
#ifndef NF_FLOATS_H
#define NF_FLOATS_H

#include <stddef.h>

/* Index of the first of the n float32 values at p (host byte order, any
   alignment) that is NaN or infinite; n when all are finite.  The common
   case (all finite) is one branch-free pass the compiler vectorises. */
size_t nf_first_nonfinite(const void *p, size_t n);

#endif
