/* nf_hash: FNV-1a 64 gives the published test vectors, and continuing a
   hash equals hashing the concatenation (the encoder relies on it). */
#include "nf_hash.h"
#include "nf_test.h"

int
main(void)
{
    CHECK(nf_fnv1a64(NF_FNV_OFFSET, "", 0) == 0xcbf29ce484222325ull);
    CHECK(nf_fnv1a64(NF_FNV_OFFSET, "a", 1) == 0xaf63dc4c8601ec8cull);
    CHECK(nf_fnv1a64(NF_FNV_OFFSET, "foobar", 6) == 0x85944171f73967e8ull);
    CHECK(nf_fnv1a64(nf_fnv1a64(NF_FNV_OFFSET, "foo", 3), "bar", 3)
          == nf_fnv1a64(NF_FNV_OFFSET, "foobar", 6));
    return nf_test_done("hash");
}
