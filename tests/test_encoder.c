/*  test_encoder: text -> vector is deterministic, unit length, and puts
    texts that share words closer than unrelated ones. */
#include <math.h>
#include <string.h>

#include "nf_encoder.h"
#include "nf_error.h"
#include "nf_test.h"

#define DIM 256

static float
s_dot(const float *a, const float *b)
{
    double s = 0;
    for (int i = 0; i < DIM; i++)
        s += (double) a[i] * b[i];
    return (float) s;
}

static void
s_enc(const char *text, int ngram, float *out)
{
    CHECK_OK(nf_encode_text(text, strlen(text), DIM, ngram, out));
}

int
main(void)
{
    float a[DIM], b[DIM], c[DIM], d[DIM];

    /* deterministic and L2-normalised */
    s_enc("The quick brown fox jumps over the lazy dog", 3, a);
    s_enc("The quick brown fox jumps over the lazy dog", 3, b);
    CHECK(memcmp(a, b, sizeof a) == 0);
    CHECK(fabsf(s_dot(a, a) - 1.0f) < 1e-5f);

    /* case and punctuation do not matter */
    s_enc("the QUICK, brown fox -- jumps over the lazy dog!", 3, b);
    CHECK(memcmp(a, b, sizeof a) == 0);

    /* sharing words scores higher than unrelated */
    s_enc("a quick brown fox", 3, b);
    s_enc("stock markets fell sharply on tuesday", 3, c);
    CHECK(s_dot(a, b) > 0.4f);
    CHECK(fabsf(s_dot(a, c)) < 0.25f);
    CHECK(s_dot(a, b) > s_dot(a, c) + 0.3f);

    /* n-grams make spellings close; words only does not */
    s_enc("encoding", 3, c);
    s_enc("encoder", 3, d);
    CHECK(s_dot(c, d) > 0.3f);
    s_enc("encoding", 0, c);
    s_enc("encoder", 0, d);
    CHECK(fabsf(s_dot(c, d)) < 0.99f);
    CHECK(fabsf(s_dot(c, c) - 1.0f) < 1e-5f);

    /* the text need not be NUL-terminated: only len bytes count */
    CHECK_OK(nf_encode_text("fox and more", 3, DIM, 3, c));
    s_enc("fox", 3, d);
    CHECK(memcmp(c, d, sizeof c) == 0);

    /* UTF-8 bytes are word characters */
    s_enc("café crème", 3, c);
    CHECK(fabsf(s_dot(c, c) - 1.0f) < 1e-5f);

    /* no words, or bad parameters: errors, never a crash */
    CHECK(nf_encode_text("  ,,, !!", 8, DIM, 3, c) == NF_EINVAL);
    CHECK(strstr(nf_error_msg(), "no words") != NULL);
    CHECK(nf_encode_text("", 0, DIM, 3, c) == NF_EINVAL);
    CHECK(nf_encode_text("x", 1, 0, 3, c) == NF_EINVAL);
    CHECK(nf_encode_text("x", 1, DIM, 9, c) == NF_EINVAL);

    /* small dims and long words work */
    float small[2];
    CHECK_OK(nf_encode_text("hello", 5, 2, 3, small));
    char longword[1000];
    memset(longword, 'z', sizeof longword);
    CHECK_OK(nf_encode_text(longword, sizeof longword, DIM, 8, c));
    return nf_test_done("encoder");
}
