/* nf_sys: clocks move forward, memory figures are plausible, ports bind. */
#include "nf_sys.h"
#include "nf_test.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int
main(void)
{
    uint64_t t0 = nf_now_us();
    usleep(2000);
    CHECK(nf_now_us() - t0 >= 2000);
    CHECK(nf_wall_us() > 1600000000ull * 1000000ull);

    uint64_t before = nf_rss_bytes();
    CHECK(before > 0);
    size_t big = 64u << 20;
    char *p = malloc(big);
    CHECK(p != NULL);
    memset(p, 1, big);
    CHECK(nf_rss_bytes() >= before + big / 2);
    CHECK(nf_peak_rss_bytes() >= big);
    free(p);

    int port = nf_free_port("127.0.0.1");
    CHECK(port > 0 && port < 65536);
    return nf_test_done("sys");
}
