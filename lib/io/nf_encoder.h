/*  nf_encoder: deterministic text -> vector, by signed feature hashing.

    A text is lowercased (ASCII letters; other bytes, e.g. UTF-8, are kept
    as they are) and cut into words: maximal runs of letters, digits and
    bytes >= 0x80.  Every word adds weight 1 to one coordinate, and every
    character n-gram of the word padded with one space on each side
    (" word " -> " wo", "wor", "ord", "rd " for n = 3) adds weight 0.5 to
    another.  The coordinate is FNV-1a 64 of the feature's bytes (after a
    one-byte kind prefix, 'w' or 'g') modulo dim, and the sign of the weight
    is bit 32 of that hash.  The vector is then L2-normalised, so texts that
    share words (or, for n > 0, spellings) have a high cosine / inner
    product and unrelated texts score near 0.

    The same text always gives the same vector on every machine: it is the
    reference any other encoder (e.g. pods/python/encoder.py) can follow.
    Owns no state; thread-safe.                                             */
#ifndef NF_ENCODER_H
#define NF_ENCODER_H

#include <stddef.h>
#include <stdint.h>

#define NF_ENCODER_NGRAM_MAX 8

/* Encode len bytes of text (need not be NUL-terminated) into out[dim],
   with character n-grams of length ngram (0 = words only, at most
   NF_ENCODER_NGRAM_MAX).  NF_EINVAL when the text has no word at all
   (out is then all zeros) or dim / ngram are out of range. */
int nf_encode_text(const char *text, size_t len, uint32_t dim, int ngram, float *out);

#endif
