/*  nf_filter_words: keyword id runs -> row-bitmap words (nf_filter_words.h).

    Measured on the 2-core benchmark VM (AVX2, no AVX-512), 1,000
    keywords, nf_filter_eval on one thread over 64K rows resident in L2,
    per 1M rows: "tag in [10 keywords]" 1.7-2.2 ms with the former
    per-row test behind a branch, 0.35 ms comparing the 10 ids, 0.53 ms
    with the gather of BITS (so lists up to NF_KW_IDS_MAX = 12 compare,
    where the two cross); "tag == k000" 0.22-0.31 -> 0.12 ms.  Over a 1M
    column from memory both are bound by bandwidth (4 MB: 0.15-0.3 ms).
    Each word is built from whole 64-value runs; a ragged last run is
    copied into a zero-padded buffer first (id 0 is null: is null sets
    bits there, which are masked off).                                     */
#include "nf_filter_words.h"

#include <string.h>

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define S_X86 1
#endif

bool
nf_filter_words_avx2(void)
{
#ifdef S_X86
    return __builtin_cpu_supports("avx2");
#else
    return false;
#endif
}

void
nf_filter_kw_bits(uint32_t *bits, uint32_t count, const uint32_t *ids, uint32_t n, bool not_in)
{
    uint32_t lim = count + 1;
    if (not_in) {
        /* ids 1..lim: whole words, then the ends */
        memset(bits, 0xff, (lim / 32) * sizeof *bits);
        bits[lim / 32] = (uint32_t) ((2ull << (lim % 32)) - 1);
        bits[0] &= ~1u;
        for (uint32_t j = 0; j < n; j++)
            if (ids[j] && ids[j] <= count)
                bits[ids[j] / 32] &= ~(1u << (ids[j] % 32));
    } else {
        for (uint32_t j = 0; j < n; j++)
            if (ids[j] && ids[j] <= count)
                bits[ids[j] / 32] |= 1u << (ids[j] % 32);
    }
}

/* 64 values -> one word: plain C (any CPU; the compiler vectorises the
   compares). */
static uint64_t
s_word_c(const uint32_t *v, const nf_kw_test_t *t)
{
    uint64_t w = 0;
    if (t->shape == NF_KW_IDS) {
        for (int j = 0; j < 64; j++) {
            unsigned hit = 0;
            for (uint32_t k = 0; k < t->nx; k++)
                hit |= v[j] == t->x[k];
            if (t->neg)
                hit = !hit & (v[j] != 0);
            w |= (uint64_t) hit << j;
        }
        return w;
    }
    for (int j = 0; j < 64; j++) {
        uint32_t y = v[j] < t->lim ? v[j] : t->lim;
        w |= (uint64_t) (t->bits[y / 32] >> (y % 32) & 1) << j;
    }
    return w;
}

#ifdef S_X86
/* IDS with SSE2: four values per compare with each id, their sign bits
   packed. */
static inline uint64_t
s_word_sse2(const uint32_t *v, const nf_kw_test_t *t)
{
    const __m128i zero = _mm_setzero_si128(), ones = _mm_set1_epi32(-1);
    uint64_t w = 0;
    for (int j = 0; j < 64; j += 4) {
        __m128i a = _mm_loadu_si128((const __m128i *) (v + j));
        __m128i m = zero;
        for (uint32_t k = 0; k < t->nx; k++)
            m = _mm_or_si128(m, _mm_cmpeq_epi32(a, _mm_set1_epi32((int) t->x[k])));
        if (t->neg)
            m = _mm_andnot_si128(_mm_or_si128(m, _mm_cmpeq_epi32(a, zero)), ones);
        w |= (uint64_t) _mm_movemask_ps(_mm_castsi128_ps(m)) << j;
    }
    return w;
}

/* BITS with AVX2: eight values per gather of their bitset words, the bit
   shifted into the sign. */
__attribute__((target("avx2"))) static inline uint64_t
s_word_bits_avx2(const uint32_t *v, const nf_kw_test_t *t)
{
    const __m256i vlim = _mm256_set1_epi32((int) t->lim), v31 = _mm256_set1_epi32(31);
    const int *bits = (const int *) t->bits;
    uint64_t w = 0;
    for (int j = 0; j < 64; j += 8) {
        __m256i a = _mm256_min_epu32(_mm256_loadu_si256((const __m256i *) (v + j)), vlim);
        __m256i g = _mm256_i32gather_epi32(bits, _mm256_srli_epi32(a, 5), 4);
        __m256i s = _mm256_sllv_epi32(g, _mm256_sub_epi32(v31, _mm256_and_si256(a, v31)));
        w |= (uint64_t) (uint8_t) _mm256_movemask_ps(_mm256_castsi256_ps(s)) << j;
    }
    return w;
}

/* IDS with AVX2: eight values per compare with each id; four such masks
   narrowed to 32 bytes (the packs interleave the 128-bit lanes, the
   permute undoes it) and one movemask. */
__attribute__((target("avx2"))) static inline __m256i
s_ids_avx2(const uint32_t *v, const __m256i *x, uint32_t nx, bool neg)
{
    __m256i a = _mm256_loadu_si256((const __m256i *) v);
    __m256i m = _mm256_setzero_si256();
    for (uint32_t k = 0; k < nx; k++)
        m = _mm256_or_si256(m, _mm256_cmpeq_epi32(a, x[k]));
    if (neg)
        m = _mm256_andnot_si256(_mm256_or_si256(m, _mm256_cmpeq_epi32(a, _mm256_setzero_si256())),
                                _mm256_set1_epi32(-1));
    return m;
}

__attribute__((target("avx2"))) static void
s_words_avx2(const uint32_t *v, size_t nw, const nf_kw_test_t *t, uint64_t *out)
{
    if (t->shape == NF_KW_BITS) {
        for (size_t w = 0; w < nw; w++)
            out[w] = s_word_bits_avx2(v + w * 64, t);
        return;
    }
    __m256i x[NF_KW_IDS_MAX];
    for (uint32_t k = 0; k < t->nx; k++)
        x[k] = _mm256_set1_epi32((int) t->x[k]);
    const __m256i order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
    for (size_t w = 0; w < nw; w++) {
        uint64_t word = 0;
        for (int j = 0; j < 64; j += 32) {
            const uint32_t *p = v + w * 64 + j;
            __m256i m0 = s_ids_avx2(p, x, t->nx, t->neg);
            __m256i m1 = s_ids_avx2(p + 8, x, t->nx, t->neg);
            __m256i m2 = s_ids_avx2(p + 16, x, t->nx, t->neg);
            __m256i m3 = s_ids_avx2(p + 24, x, t->nx, t->neg);
            __m256i b = _mm256_packs_epi16(_mm256_packs_epi32(m0, m1),
                                           _mm256_packs_epi32(m2, m3));
            b = _mm256_permutevar8x32_epi32(b, order);
            word |= (uint64_t) (uint32_t) _mm256_movemask_epi8(b) << j;
        }
        out[w] = word;
    }
}
#endif

static uint64_t
s_word(const uint32_t *v, const nf_kw_test_t *t)
{
#ifdef S_X86
    if (t->shape == NF_KW_IDS)
        return s_word_sse2(v, t);
#endif
    return s_word_c(v, t);
}

void
nf_filter_kw_words(const uint32_t *v, size_t n, const nf_kw_test_t *t, uint64_t *out)
{
    size_t full = n / 64;
#ifdef S_X86
    if (t->avx2)
        s_words_avx2(v, full, t, out);
    else
#endif
        for (size_t w = 0; w < full; w++)
            out[w] = s_word(v + w * 64, t);
    if (n % 64) {
        uint32_t pad[64] = {0};
        memcpy(pad, v + full * 64, (n % 64) * sizeof *pad);
        out[full] = s_word(pad, t) & ((1ull << (n % 64)) - 1);
    }
}

#ifdef S_X86
__attribute__((target("popcnt"))) static uint64_t
s_popcount_hw(const uint64_t *words, size_t n)
{
    uint64_t c = 0;
    for (size_t i = 0; i < n; i++)
        c += (uint64_t) __builtin_popcountll(words[i]);
    return c;
}
#endif

uint64_t
nf_filter_popcount(const uint64_t *words, size_t n)
{
#ifdef S_X86
    if (__builtin_cpu_supports("popcnt"))
        return s_popcount_hw(words, n);
#endif
    uint64_t c = 0;
    for (size_t i = 0; i < n; i++) {
        uint64_t x = words[i];
        x -= (x >> 1) & 0x5555555555555555ull;
        x = (x & 0x3333333333333333ull) + ((x >> 2) & 0x3333333333333333ull);
        x = (x + (x >> 4)) & 0x0f0f0f0f0f0f0f0full;
        c += (x * 0x0101010101010101ull) >> 56;
    }
    return c;
}
