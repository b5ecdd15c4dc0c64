/* nf_floats: the first NaN or infinity is found wherever it is (inside a
   block, on either side of a block boundary, the last value), at any
   alignment; finite extremes (largest, smallest subnormal, -0) pass. */
#include "nf_floats.h"
#include "nf_test.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

int
main(void)
{
    enum { N = 3000 };
    float *v = malloc((N + 1) * sizeof *v);
    CHECK(v != NULL);
    if (!v)
        return nf_test_done("floats");
    uint64_t seed = 7;
    for (size_t i = 0; i < N; i++)
        v[i] = (float) (nf_test_rand(&seed) >> 40) / (float) (1 << 24) * 2.0f - 1.0f;
    v[5] = FLT_MAX;
    v[6] = -FLT_MAX;
    v[7] = FLT_TRUE_MIN;
    v[8] = -0.0f;
    CHECK(nf_first_nonfinite(v, N) == N);
    CHECK(nf_first_nonfinite(v, 0) == 0);
    CHECK(nf_first_nonfinite(NULL, 0) == 0);

    const float bad[] = {NAN, INFINITY, -INFINITY, -NAN};
    const size_t at[] = {0, 1, 1023, 1024, 1025, 2047, 2048, N - 1};
    for (size_t b = 0; b < sizeof bad / sizeof *bad; b++)
        for (size_t a = 0; a < sizeof at / sizeof *at; a++) {
            float keep = v[at[a]];
            v[at[a]] = bad[b];
            CHECK(nf_first_nonfinite(v, N) == at[a]);
            CHECK(nf_first_nonfinite(v, at[a]) == at[a]);     /* not in range: all finite */
            v[at[a]] = keep;
        }
    /* two bad values: the first is named */
    v[1500] = NAN;
    v[100] = INFINITY;
    CHECK(nf_first_nonfinite(v, N) == 100);
    v[100] = 0.25f;
    CHECK(nf_first_nonfinite(v, N) == 1500);
    v[1500] = 0.5f;

    /* unaligned: the values of a wire frame start at any byte */
    unsigned char *raw = malloc(N * 4 + 1);
    CHECK(raw != NULL);
    if (raw) {
        memcpy(raw + 1, v, N * 4);
        CHECK(nf_first_nonfinite(raw + 1, N) == N);
        float nan = NAN;
        memcpy(raw + 1 + 4 * 1024, &nan, 4);
        CHECK(nf_first_nonfinite(raw + 1, N) == 1024);
        free(raw);
    }
    free(v);
    return nf_test_done("floats");
}
