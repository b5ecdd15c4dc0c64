/*  The AVX2 + FMA dot kernel (s_dots_y), included by nf_dots.c only.
    Written with intrinsics rather than nf_dots.c's generic tile macro:
    GCC kept the macro's 4 x 2 tiles at about 45 % of this CPU's FMA rate
    (pointer arithmetic spilled to the stack, lane permutes in the sums).

    Tiles: 6 queries x 2 rows (12 accumulators + 2 row chunks + 1 query
    chunk = 15 of the 16 ymm registers; 8 loads feed 12 FMAs, and 12
    independent sums cover the FMA latency), then 4 x 2, 2 x 4 and 1 x 8
    for the remaining queries.  The lanes of each accumulator are summed
    by one hadd tree, ((x0+x1)+(x2+x3)) + ((x4+x5)+(x6+x7)), the same
    whichever tile the accumulator sits in, and the chunks of the
    dimension in order, so a dot product depends only on the query and
    the row (the property nf_dots.c promises).  A last partial chunk
    (d not a multiple of 8) is read with a lane mask; the query copy is
    zero-padded to dpad floats.

    Prefetch: the tiles of the first query group prefetch the same rows of
    the next 16-row block into L2, NR/2 lines per chunk step, spread through
    the FMAs instead of all at the tile's start.  The hardware prefetchers
    alone run this loop at a third of the memory rate on the VM it was tuned
    on; a burst of a tile's lines at its start left the faster tiles waiting
    on DRAM.  Measured on a 2-core AVX2 EPYC (5.7 G FMA/s a core at most):
    the macro's 4 x 2 tiles ran 2.7 G FMA/s with the data in L2, these
    4.2 G; a scan of 1M x 128 (2 threads, mmap, interleaved rounds) q = 10
    56-69 -> 44-49 ms, q = 2 43-53 -> 35-38 ms (with the fused pass's fix
    in nf_scan.c).                                                      */

#include <immintrin.h>

#define S_Y __attribute__((target("avx2,fma")))
#define S_YI static inline __attribute__((always_inline)) S_Y

/* Lane r of the result = the sum of the lanes of a[r] (8, 4, 2 of them). */
S_YI __m256
s_y_sum8(const __m256 *a)
{
    __m256 u0 = _mm256_hadd_ps(_mm256_hadd_ps(a[0], a[1]), _mm256_hadd_ps(a[2], a[3]));
    __m256 u1 = _mm256_hadd_ps(_mm256_hadd_ps(a[4], a[5]), _mm256_hadd_ps(a[6], a[7]));
    return _mm256_add_ps(_mm256_permute2f128_ps(u0, u1, 0x20),
                         _mm256_permute2f128_ps(u0, u1, 0x31));
}

S_YI __m128
s_y_sum4(const __m256 *a)
{
    __m256 u = _mm256_hadd_ps(_mm256_hadd_ps(a[0], a[1]), _mm256_hadd_ps(a[2], a[3]));
    return _mm_add_ps(_mm256_castps256_ps128(u), _mm256_extractf128_ps(u, 1));
}

S_YI __m128
s_y_sum2(const __m256 *a)
{
    __m256 t = _mm256_hadd_ps(a[0], a[1]);
    __m256 u = _mm256_hadd_ps(t, t);
    return _mm_add_ps(_mm256_castps256_ps128(u), _mm256_extractf128_ps(u, 1));
}

/* acc[i * nr + r] += q_i[c .. c+8) * xv[r] for the tile's nq queries (at
   q, stride dpad) and nr row chunks. */
S_YI void
s_y_fma(__m256 *acc, const __m256 *xv, const float *q, size_t dpad, size_t c, int nq, int nr)
{
S_UNROLL
    for (int i = 0; i < nq; i++) {
        __m256 qv = _mm256_loadu_ps(q + i * dpad + c);
S_UNROLL
        for (int r = 0; r < nr; r++)
            acc[i * nr + r] = _mm256_fmadd_ps(qv, xv[r], acc[i * nr + r]);
    }
}

/* One nq x nr tile: S[i * lds + r] = q_i . x_r for the nr rows at x
   (stride d) and the nq queries at q (stride dpad); pf: the tile's rows in
   the next block, to prefetch, or NULL. */
S_YI void
s_y_tile(const float *q, size_t dpad, const float *x, size_t d, int nq, int nr, float *S,
         size_t lds, const float *pf)
{
    __m256 acc[12];
S_UNROLL
    for (int k = 0; k < nq * nr; k++)
        acc[k] = _mm256_setzero_ps();
    size_t dfull = d / 8 * 8, line = 0;
#pragma GCC unroll 2
    for (size_t c = 0; c < dfull; c += 8) {
        __m256 xv[8];
        if (pf) {
S_UNROLL
            for (int l = 0; l < nr / 2; l++, line++)
                __builtin_prefetch(pf + line * 16, 0, 2);
        }
S_UNROLL
        for (int r = 0; r < nr; r++)
            xv[r] = _mm256_loadu_ps(x + r * d + c);
        s_y_fma(acc, xv, q, dpad, c, nq, nr);
    }
    if (dfull < d) {
        __m256i lanes = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
        __m256i mask = _mm256_cmpgt_epi32(_mm256_set1_epi32((int) (d - dfull)), lanes);
        __m256 xv[8];
S_UNROLL
        for (int r = 0; r < nr; r++)
            xv[r] = _mm256_maskload_ps(x + r * d + dfull, mask);
        s_y_fma(acc, xv, q, dpad, dfull, nq, nr);
    }
    float out[16] __attribute__((aligned(32)));
    int n = nq * nr, k = 0;
    if (n >= 8) {
        _mm256_store_ps(out, s_y_sum8(acc));
        k = 8;
    }
    if (n - k >= 4) {
        _mm_store_ps(out + k, s_y_sum4(acc + k));
        k += 4;
    }
    if (n - k >= 2)
        _mm_storel_pi((__m64 *) (out + k), s_y_sum2(acc + k));
S_UNROLL
    for (int i = 0; i < nq; i++)
        memcpy(S + i * lds, out + i * nr, (size_t) nr * sizeof(float));
}

/* Every nq x nr tile of one query group over a 16-row block. */
#define S_Y_GROUP(NQ, NR)                                                       \
    for (; j + (NQ) <= m; j += (NQ))                                            \
        for (size_t rr = 0; rr < 16; rr += (NR))                                \
            s_y_tile(Qp + j * dpad, dpad, xb + rr * d, d, NQ, NR, S + j * lds + r0 + rr, \
                     lds, j == 0 ? xb + (16 + rr) * d : NULL)

S_YI void
s_y_body(const float *Qp, size_t m, size_t dpad, const float *X, size_t d, size_t wn,
         float *S, size_t lds)
{
    for (size_t r0 = 0; r0 < wn; r0 += 16) {
        const float *xb = X + r0 * d;
        size_t j = 0;
        S_Y_GROUP(6, 2);
        S_Y_GROUP(4, 2);
        S_Y_GROUP(2, 4);
        S_Y_GROUP(1, 8);
    }
}

/* Copies for the common dimensions (a constant stride and dpad == d, so a
   tile's addresses are one base register plus offsets), and any other. */
#define S_Y_FIXED(D)                                                            \
    static S_Y void                                                             \
    s_y_##D(const float *Qp, size_t m, const float *X, size_t wn, float *S, size_t lds) \
    {                                                                           \
        s_y_body(Qp, m, D, X, D, wn, S, lds);                                   \
    }
S_Y_FIXED(64) S_Y_FIXED(96) S_Y_FIXED(128) S_Y_FIXED(256) S_Y_FIXED(384)
S_Y_FIXED(512) S_Y_FIXED(768) S_Y_FIXED(1024)

static S_Y void
s_dots_y(const float *Qp, size_t m, size_t dpad, const float *X, size_t d, size_t wn,
         float *S, size_t lds)
{
    switch (dpad == d ? d : 0) {
    case 64: s_y_64(Qp, m, X, wn, S, lds); break;
    case 96: s_y_96(Qp, m, X, wn, S, lds); break;
    case 128: s_y_128(Qp, m, X, wn, S, lds); break;
    case 256: s_y_256(Qp, m, X, wn, S, lds); break;
    case 384: s_y_384(Qp, m, X, wn, S, lds); break;
    case 512: s_y_512(Qp, m, X, wn, S, lds); break;
    case 768: s_y_768(Qp, m, X, wn, S, lds); break;
    case 1024: s_y_1024(Qp, m, X, wn, S, lds); break;
    default: s_y_body(Qp, m, dpad, X, d, wn, S, lds); break;
    }
}
