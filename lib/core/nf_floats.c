/*  nf_floats: see nf_floats.h. */
#include "nf_floats.h"

#include <stdint.h>
#include <string.h>

#include "nf_sys.h"

/* Values per branch-free block: large enough that the loop runs vectorised
   most of the time, small enough that a bad value is found soon after. */
#define S_BLOCK 1024

/* Does one of the n values at p have an all-ones exponent (NaN or Inf)? */
NF_TARGET_CLONES static int
s_floats_any_bad(const unsigned char *p, size_t n)
{
    uint32_t bad = 0;
    for (size_t i = 0; i < n; i++) {
        uint32_t u;
        memcpy(&u, p + 4 * i, 4);
        bad |= (uint32_t) ((u & 0x7f800000u) == 0x7f800000u);
    }
    return bad != 0;
}

size_t
nf_first_nonfinite(const void *p, size_t n)
{
    const unsigned char *b = p;
    for (size_t at = 0; at < n; at += S_BLOCK) {
        size_t len = n - at < S_BLOCK ? n - at : S_BLOCK;
        if (!s_floats_any_bad(b + 4 * at, len))
            continue;
        for (size_t i = at; i < at + len; i++) {
            uint32_t u;
            memcpy(&u, b + 4 * i, 4);
            if ((u & 0x7f800000u) == 0x7f800000u)
                return i;
        }
    }
    return n;
}
