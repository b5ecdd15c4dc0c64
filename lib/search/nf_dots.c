#include "nf_dots.h"
#include "nf_error.h"
#include "nf_scan.h"
#include "nf_sys.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* 16 floats: GCC vector extensions (the AVX-512 kernel's vector). */
typedef float s_vf __attribute__((vector_size(64)));
typedef int32_t s_vi __attribute__((vector_size(64)));

/* The few-query dot kernel.  Tile: nq queries x nr rows with nq * nr = L
   (the vector width in floats), one accumulator vector per (query, row)
   summing L-float chunks of the dimension with vertical multiply-adds, so
   each chunk of a row loaded feeds nq queries and each chunk of a query nr
   rows.  At the end one transpose-and-add tree turns the L accumulators
   into one vector of the L dot products, stored as nq runs of nr scores.
   The tree sums the lanes of every accumulator in the same order whatever
   its position, and the chunks are summed in order, so a dot product
   depends only on the query, the row and the instruction set chosen at run
   time -- not on the tile shape, the query count or the threads.
   Versions: AVX-512 (L = 16, tiles 4x4, 2x8, 1x16) and a portable one
   (L = 4, tiles 2x2, 1x4) from this macro; AVX2+FMA written with
   intrinsics in nf_dots_avx2.h (its own tiles, the same promise); chosen
   once per search by nf_dots_pick (the best this CPU runs, or
   NFLOW_SCAN_KERNEL's). */
typedef float s_v4 __attribute__((vector_size(16)));
typedef int32_t s_vi4 __attribute__((vector_size(16)));

#define S_INLINE static inline __attribute__((always_inline))
/* Unroll a loop over the tile's queries or rows completely.  The trip
   counts are constants only once s_tile is inlined into s_body: GCC's
   "unroll 16" waits for that; clang 14 unrolls by 16 with a run-time trip
   count first (the accumulators then live on the stack, 2-3x slower), so
   it is asked for a full unroll, which it does once the count is known. */
#ifdef __clang__
#define S_UNROLL _Pragma("clang loop unroll(full)")
#else
#define S_UNROLL _Pragma("GCC unroll 16")
#endif
/* Lanes of a and b picked by constant indices (0.. a, L.. b): clang
   spells it __builtin_shufflevector, GCC __builtin_shuffle with an index
   vector of type vi (GCC >= 12 knows both; the code it was tuned with
   uses the latter). */
#ifdef __clang__
#define S_SHUF(vi, a, b, ...) __builtin_shufflevector((a), (b), __VA_ARGS__)
#else
#define S_SHUF(vi, a, b, ...) __builtin_shuffle((a), (b), (vi) {__VA_ARGS__})
#endif
#define S_HALVES(vi, a, b, lo, hi) (S_SHUF(vi, a, b, lo) + S_SHUF(vi, a, b, hi))

/* Tree stages: lanes of a pair of vectors folded in halves of 8, 4, 2, 1. */
#define S_L8 0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23
#define S_H8 8, 9, 10, 11, 12, 13, 14, 15, 24, 25, 26, 27, 28, 29, 30, 31
#define S_L4_16 0, 1, 2, 3, 8, 9, 10, 11, 16, 17, 18, 19, 24, 25, 26, 27
#define S_H4_16 4, 5, 6, 7, 12, 13, 14, 15, 20, 21, 22, 23, 28, 29, 30, 31
#define S_L2_16 0, 1, 4, 5, 8, 9, 12, 13, 16, 17, 20, 21, 24, 25, 28, 29
#define S_H2_16 2, 3, 6, 7, 10, 11, 14, 15, 18, 19, 22, 23, 26, 27, 30, 31
#define S_L1_16 0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30
#define S_H1_16 1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31
#define S_L2_4 0, 1, 4, 5
#define S_H2_4 2, 3, 6, 7
#define S_L1_4 0, 2, 4, 6
#define S_H1_4 1, 3, 5, 7

/* *out lane r = the sum of the lanes of acc[r]. */
S_INLINE void
s_reduce16(const s_vf *acc, s_vf *out)
{
    s_vf t8[8], t4[4], t2[2];
#pragma GCC unroll 8
    for (int i = 0; i < 8; i++)
        t8[i] = S_HALVES(s_vi, acc[2 * i], acc[2 * i + 1], S_L8, S_H8);
#pragma GCC unroll 4
    for (int i = 0; i < 4; i++)
        t4[i] = S_HALVES(s_vi, t8[2 * i], t8[2 * i + 1], S_L4_16, S_H4_16);
    t2[0] = S_HALVES(s_vi, t4[0], t4[1], S_L2_16, S_H2_16);
    t2[1] = S_HALVES(s_vi, t4[2], t4[3], S_L2_16, S_H2_16);
    *out = S_HALVES(s_vi, t2[0], t2[1], S_L1_16, S_H1_16);
}

S_INLINE void
s_reduce4(const s_v4 *acc, s_v4 *out)
{
    s_v4 t2[2];
    t2[0] = S_HALVES(s_vi4, acc[0], acc[1], S_L2_4, S_H2_4);
    t2[1] = S_HALVES(s_vi4, acc[2], acc[3], S_L2_4, S_H2_4);
    *out = S_HALVES(s_vi4, t2[0], t2[1], S_L1_4, S_H1_4);
}

/* Software prefetch (measured on the Zen 4 VM, 1M x 128, vectors in
   memory, 2 threads): the first tile pass over each 16-row block prefetches
   its rows' lines S_PF_ROWS rows ahead (the next block) into L2 (locality
   2 = prefetcht1), all at the start of the tile, so the loop over the
   dimension has no branch and unrolls.  The hardware prefetchers alone
   left the loads of a block waiting on DRAM with the FMAs idle: q = 2
   23 -> 15 ms, q = 10 38 -> 22 ms.  Prefetching into L1 (locality 3) was
   slower; 8..64 rows ahead were the same or slower.  Prefetches past the
   end of X do not fault.
   The AVX2 kernel (nf_dots_avx2.h) spreads the same prefetches through
   its tiles instead. */
#define S_PF_ROWS 16
#define S_PF_LOC 2

/* Defines, for suffix SFX, target attribute ATTR, vector V of L floats and
   tree REDUCE: s_tile_SFX (one nq x nr tile; tails = the rows' last
   partial chunks, zero-padded), s_body_SFX (16-row blocks: tiles of NQ1 x
   (L/NQ1), then NQ2 x (L/NQ2), then 1 x L for the remaining queries), the
   fixed-dimension copies (a constant stride makes the rows of a tile one
   base register plus offsets) and the entry s_dots_SFX. */
#define S_DEF_KERNEL(SFX, ATTR, V, L, REDUCE, NQ1, NQ2)                          \
    S_INLINE ATTR void                                                          \
    s_tile_##SFX(const float *Qp, size_t dpad, const float *xb, size_t d,       \
                 const V *tails, size_t nq, size_t nr, float *S, size_t lds,    \
                 const float *pf)                                               \
    {                                                                           \
        size_t dfull = d / (L) * (L);                                           \
        V acc[L] = {{0}};                                                       \
        V xv[L], qv[L];                                                         \
        if (pf)                                                                 \
            S_UNROLL for (size_t r = 0; r < nr; r++)                            \
                for (size_t c = 0; c < d; c += 16)                              \
                    __builtin_prefetch(pf + r * d + c, 0, S_PF_LOC);            \
        _Pragma("GCC unroll 4")                                                 \
        for (size_t c = 0; c < dfull; c += (L)) {                               \
            S_UNROLL for (size_t r = 0; r < nr; r++)            \
                memcpy(&xv[r], xb + r * d + c, sizeof(V));                      \
            S_UNROLL for (size_t i = 0; i < nq; i++)            \
                memcpy(&qv[i], Qp + i * dpad + c, sizeof(V));                   \
            S_UNROLL for (size_t i = 0; i < nq; i++)            \
                S_UNROLL for (size_t r = 0; r < nr; r++)        \
                    acc[i * nr + r] += xv[r] * qv[i];                           \
        }                                                                       \
        if (dfull < d) {                                                        \
            S_UNROLL for (size_t i = 0; i < nq; i++)            \
                memcpy(&qv[i], Qp + i * dpad + dfull, sizeof(V));               \
            S_UNROLL for (size_t i = 0; i < nq; i++)            \
                S_UNROLL for (size_t r = 0; r < nr; r++)        \
                    acc[i * nr + r] += tails[r] * qv[i];                        \
        }                                                                       \
        V sum;                                                                  \
        REDUCE(acc, &sum);                                                      \
        S_UNROLL for (size_t i = 0; i < nq; i++)                \
            memcpy(S + i * lds, (const char *) &sum + i * nr * sizeof(float),   \
                   nr * sizeof(float));                                         \
    }                                                                           \
                                                                                \
    S_INLINE ATTR void                                                          \
    s_body_##SFX(const float *Qp, size_t m, size_t dpad, const float *X, size_t d, \
                 size_t wn, float *S, size_t lds)                               \
    {                                                                           \
        size_t dfull = d / (L) * (L);                                           \
        V tails[16];                                                            \
        for (size_t r0 = 0; r0 < wn; r0 += 16) {                                \
            const float *xb = X + r0 * d;                                       \
            const float *pf = (const float *) ((uintptr_t) xb + S_PF_ROWS * d * sizeof(float)); \
            if (dfull < d)                                                      \
                for (size_t r = 0; r < 16; r++) {                               \
                    float t[L] = {0};                                           \
                    memcpy(t, xb + r * d + dfull, (d - dfull) * sizeof(float)); \
                    memcpy(&tails[r], t, sizeof t);                             \
                }                                                               \
            size_t j = 0;                                                       \
            for (; j + (NQ1) <= m; j += (NQ1))                                  \
                for (size_t rr = 0; rr < 16; rr += (L) / (NQ1))                 \
                    s_tile_##SFX(Qp + j * dpad, dpad, xb + rr * d, d, tails + rr, \
                                 NQ1, (L) / (NQ1), S + j * lds + r0 + rr, lds, \
                                 j == 0 ? pf + rr * d : NULL);                  \
            for (; j + (NQ2) <= m; j += (NQ2))                                  \
                for (size_t rr = 0; rr < 16; rr += (L) / (NQ2))                 \
                    s_tile_##SFX(Qp + j * dpad, dpad, xb + rr * d, d, tails + rr, \
                                 NQ2, (L) / (NQ2), S + j * lds + r0 + rr, lds, \
                                 j == 0 ? pf + rr * d : NULL);                  \
            for (; j < m; j++)                                                  \
                for (size_t rr = 0; rr < 16; rr += (L))                         \
                    s_tile_##SFX(Qp + j * dpad, dpad, xb + rr * d, d, tails + rr, \
                                 1, L, S + j * lds + r0 + rr, lds,              \
                                 j == 0 ? pf + rr * d : NULL);                  \
        }                                                                       \
    }                                                                           \
                                                                                \
    S_FIXED(SFX, ATTR, 64) S_FIXED(SFX, ATTR, 96) S_FIXED(SFX, ATTR, 128)       \
    S_FIXED(SFX, ATTR, 256) S_FIXED(SFX, ATTR, 384) S_FIXED(SFX, ATTR, 512)     \
    S_FIXED(SFX, ATTR, 768) S_FIXED(SFX, ATTR, 1024)                            \
                                                                                \
    static ATTR void                                                            \
    s_any_##SFX(const float *Qp, size_t m, size_t dpad, const float *X, size_t d, \
                size_t wn, float *S, size_t lds)                                \
    {                                                                           \
        s_body_##SFX(Qp, m, dpad, X, d, wn, S, lds);                            \
    }                                                                           \
                                                                                \
    static void                                                                 \
    s_dots_##SFX(const float *Qp, size_t m, size_t dpad, const float *X, size_t d, \
                 size_t wn, float *S, size_t lds)                               \
    {                                                                           \
        switch (d) {                                                            \
        case 64: s_fix_##SFX##_64(Qp, m, dpad, X, d, wn, S, lds); break;        \
        case 96: s_fix_##SFX##_96(Qp, m, dpad, X, d, wn, S, lds); break;        \
        case 128: s_fix_##SFX##_128(Qp, m, dpad, X, d, wn, S, lds); break;      \
        case 256: s_fix_##SFX##_256(Qp, m, dpad, X, d, wn, S, lds); break;      \
        case 384: s_fix_##SFX##_384(Qp, m, dpad, X, d, wn, S, lds); break;      \
        case 512: s_fix_##SFX##_512(Qp, m, dpad, X, d, wn, S, lds); break;      \
        case 768: s_fix_##SFX##_768(Qp, m, dpad, X, d, wn, S, lds); break;      \
        case 1024: s_fix_##SFX##_1024(Qp, m, dpad, X, d, wn, S, lds); break;    \
        default: s_any_##SFX(Qp, m, dpad, X, d, wn, S, lds); break;             \
        }                                                                       \
    }

#define S_FIXED(SFX, ATTR, D)                                                   \
    static ATTR void                                                            \
    s_fix_##SFX##_##D(const float *Qp, size_t m, size_t dpad, const float *X,   \
                      size_t d, size_t wn, float *S, size_t lds)                \
    {                                                                           \
        (void) d;                                                               \
        s_body_##SFX(Qp, m, dpad, X, D, wn, S, lds);                            \
    }

#if defined(__x86_64__) && defined(__GNUC__)       /* GCC and clang */
#define S_X86 1
S_DEF_KERNEL(z, __attribute__((target("avx512f,avx2,fma"))), s_vf, 16, s_reduce16, 4, 2)
#include "nf_dots_avx2.h"
#endif
S_DEF_KERNEL(x, , s_v4, 4, s_reduce4, 2, 2)

/* The dot kernels by name, best first, and whether this CPU runs each. */
static bool
s_cpu_has(int isa)
{
#ifdef S_X86
    __builtin_cpu_init();
    if (isa == 2)
        return __builtin_cpu_supports("avx512f");
    if (isa == 1)
        return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#endif
    return isa == 0;
}

static const struct {
    const char *name;
    nf_dots_fn dots;
    int isa;                    /* 2 AVX-512F, 1 AVX2 + FMA, 0 any */
    const char *needs;          /* for the error message */
} s_kernels[] = {
#ifdef S_X86
    {"avx512", s_dots_z, 2, "AVX-512F"},
    {"avx2", s_dots_y, 1, "AVX2 and FMA"},
#endif
    {"portable", s_dots_x, 0, "nothing"},
};
#define S_NKERNELS (sizeof s_kernels / sizeof s_kernels[0])

bool
nf_scan_kernel_supported(const char *name)
{
    for (size_t i = 0; name && i < S_NKERNELS; i++)
        if (!strcmp(name, s_kernels[i].name))
            return s_cpu_has(s_kernels[i].isa);
    return false;
}

/* The kernel a search uses now: NFLOW_SCAN_KERNEL's when set (an error
   when unknown or not runnable here), else the best this CPU runs. */
static int
s_pick(size_t *index)
{
    const char *want = getenv("NFLOW_SCAN_KERNEL");
    if (want && *want) {
        for (size_t i = 0; i < S_NKERNELS; i++) {
            if (strcmp(want, s_kernels[i].name))
                continue;
            if (!s_cpu_has(s_kernels[i].isa))
                return nf_error_set(NF_EINVAL, "NFLOW_SCAN_KERNEL=%s: this CPU lacks %s "
                                    "(unset it to pick the best kernel the CPU runs)",
                                    want, s_kernels[i].needs);
            *index = i;
            return 0;
        }
        return nf_error_set(NF_EINVAL, "NFLOW_SCAN_KERNEL=%s: unknown kernel (expected %s)",
                            want, S_NKERNELS == 3 ? "avx512, avx2 or portable" : "portable");
    }
    for (size_t i = 0; i < S_NKERNELS; i++)
        if (s_cpu_has(s_kernels[i].isa)) {
            *index = i;
            return 0;
        }
    return nf_error_set(NF_EINVAL, "nf_scan: no dot kernel");   /* unreachable: portable */
}

int
nf_scan_kernel(const char **name)
{
    return nf_dots_pick(NULL, name);
}

int
nf_dots_pick(nf_dots_fn *fn, const char **name)
{
    size_t i = 0;
    int rc = s_pick(&i);
    if (fn)
        *fn = rc ? NULL : s_kernels[i].dots;
    if (name)
        *name = rc ? NULL : s_kernels[i].name;
    return rc;
}
