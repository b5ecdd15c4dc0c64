/* nf_error: codes map to text, messages are per thread and formatted. */
#include "nf_error.h"
#include "nf_test.h"

#include <string.h>

int
main(void)
{
    CHECK(!strcmp(nf_strerror(NF_OK), "success"));
    for (int c = NF_ERR_MIN; c <= 0; c++)
        CHECK(nf_strerror(c) != NULL && strlen(nf_strerror(c)) > 0);
    CHECK(!strcmp(nf_strerror(1), "unknown error"));
    CHECK(!strcmp(nf_strerror(NF_ERR_MIN - 1), "unknown error"));
    CHECK(nf_error_set(NF_ECORRUPT, "%s: bad checksum %d", "vectors.nfv", 7) == NF_ECORRUPT);
    CHECK(!strcmp(nf_error_msg(), "vectors.nfv: bad checksum 7"));
    /* the thread's own message as an argument: context is added once, not
       formatted into itself ("DIR: row 0: DIR: row 0: ...") */
    nf_error_set(NF_ECORRUPT, "row 0: payload of %d bytes", 19);
    nf_error_set(NF_ECORRUPT, "%s: %s", "DIR", nf_error_msg());
    CHECK(!strcmp(nf_error_msg(), "DIR: row 0: payload of 19 bytes"));
    nf_error_set(NF_EIO, "%s", nf_error_msg());
    CHECK(!strcmp(nf_error_msg(), "DIR: row 0: payload of 19 bytes"));
    nf_error_set(NF_EIO, "%s then %s", nf_error_msg(), nf_error_msg());
    CHECK(!strcmp(nf_error_msg(), "DIR: row 0: payload of 19 bytes then DIR: row 0: payload of 19 bytes"));
    return nf_test_done("error");
}
