/*  nf_encoder: signed feature hashing of words and character n-grams
    (see nf_encoder.h for the exact recipe). */
#include "nf_encoder.h"

#include <math.h>
#include <string.h>

#include "nf_error.h"
#include "nf_hash.h"

#define S_WORD_MAX 256          /* longer words are hashed by their first bytes */


static void
s_add(float *out, uint32_t dim, char kind, const char *bytes, size_t len, float weight)
{
    uint64_t h = nf_fnv1a64(NF_FNV_OFFSET, &kind, 1);
    h = nf_fnv1a64(h, bytes, len);
    out[h % dim] += (h >> 32) & 1 ? -weight : weight;
}

static int
s_is_word(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')
           || c >= 0x80;
}

int
nf_encode_text(const char *text, size_t len, uint32_t dim, int ngram, float *out)
{
    if (dim == 0 || dim > 65536)
        return nf_error_set(NF_EINVAL, "encoder: dim %u out of range 1..65536", dim);
    if (ngram < 0 || ngram > NF_ENCODER_NGRAM_MAX)
        return nf_error_set(NF_EINVAL, "encoder: ngram %d out of range 0..%d", ngram,
                            NF_ENCODER_NGRAM_MAX);
    memset(out, 0, (size_t) dim * sizeof *out);
    size_t nwords = 0;
    char word[S_WORD_MAX + 2];
    size_t i = 0;
    while (i < len) {
        if (!s_is_word((unsigned char) text[i])) {
            i++;
            continue;
        }
        size_t n = 0;
        word[n++] = ' ';
        while (i < len && s_is_word((unsigned char) text[i])) {
            unsigned char c = (unsigned char) text[i++];
            if (n <= S_WORD_MAX)
                word[n++] = (char) (c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
        }
        word[n++] = ' ';
        nwords++;
        s_add(out, dim, 'w', word + 1, n - 2, 1.0f);
        if (ngram > 0) {
            if (n <= (size_t) ngram)
                s_add(out, dim, 'g', word, n, 0.5f);
            else
                for (size_t j = 0; j + (size_t) ngram <= n; j++)
                    s_add(out, dim, 'g', word + j, (size_t) ngram, 0.5f);
        }
    }
    if (nwords == 0)
        return nf_error_set(NF_EINVAL, "text has no words to encode");
    double sum = 0;
    for (uint32_t d = 0; d < dim; d++)
        sum += (double) out[d] * out[d];
    if (sum > 0) {
        float inv = (float) (1.0 / sqrt(sum));
        for (uint32_t d = 0; d < dim; d++)
            out[d] *= inv;
    }
    return NF_OK;
}
