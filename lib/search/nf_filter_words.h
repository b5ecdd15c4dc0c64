/*  nf_filter_words: the inner loops of filter evaluation, a run of a
    column's values -> row-bitmap words (bit j of word w: value 64w + j).

    Every keyword leaf reduces to one of two shapes over the column's u32
    dictionary ids (0 = null):
      NF_KW_IDS   id is one of x[0..nx)       (==, in a short list; is
                  null: x = {0}); with neg, id is none of them and not 0
                  (!=, not in a short list; is not null: nx = 0)
      NF_KW_BITS  bit min(id, lim) of a bitset over the dictionary ids
                  (in, not in: built once per bind, nf_filter_kw_bits)
    and each is a branch-free loop: AVX2 compares and a gather of the
    bitset words when the CPU has them (picked at run time), else SSE2
    compares (the x86-64 baseline) and a scalar bit test, plain C off x86.
    No allocation, no state: the caller owns every buffer.                 */
#ifndef NF_FILTER_WORDS_H
#define NF_FILTER_WORDS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum { NF_KW_IDS, NF_KW_BITS };

/* Lists up to this long are compared id by id (NF_KW_IDS): up to here
   that beat the gather of NF_KW_BITS (see nf_filter_words.c). */
#define NF_KW_IDS_MAX 12

typedef struct {
    int shape;              /* NF_KW_* */
    bool neg;               /* IDS: none of x, not null */
    uint32_t nx;            /* IDS: how many in x */
    uint32_t x[NF_KW_IDS_MAX];
    uint32_t lim;           /* BITS: ids >= lim read bit lim */
    const uint32_t *bits;   /* BITS: lim / 32 + 1 words */
    bool avx2;              /* the AVX2 loops (nf_filter_words_avx2()) */
} nf_kw_test_t;

/* Whether this CPU runs the AVX2 loops. */
bool nf_filter_words_avx2(void);

/* The bitset of a keyword list over a dictionary of count ids:
   (count + 1) / 32 + 1 words, zeroed by the caller, for lim = count + 1.
   With not_in, every id 1..count not in ids[0..n) and lim (an id the
   dictionary did not have at bind: in no list); else ids[0..n). */
void nf_filter_kw_bits(uint32_t *bits, uint32_t count, const uint32_t *ids, uint32_t n,
                       bool not_in);

/* Values v[0..n) into out[(n+63)/64] (bits past n are 0). */
void nf_filter_kw_words(const uint32_t *v, size_t n, const nf_kw_test_t *t, uint64_t *out);

/* Bits set in words[0..n). */
uint64_t nf_filter_popcount(const uint64_t *words, size_t n);

#endif
