/* nf_sys: clocks move forward, memory figures are plausible, ports bind.

   The memory check maps pages with mmap and writes them through a volatile
   pointer: a compiler may drop a malloc whose memory is never read (clang
   does, even at -O1), but not a system call or volatile stores. */
#include "nf_sys.h"
#include "nf_test.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
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
    void *map = mmap(NULL, big, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    CHECK(map != MAP_FAILED);
    if (map != MAP_FAILED) {
        volatile unsigned char *p = map;
        long page = sysconf(_SC_PAGESIZE);
        for (size_t i = 0; i < big; i += (size_t) (page > 0 ? page : 4096))
            p[i] = 1;
        CHECK(nf_rss_bytes() >= before + big / 2);
        CHECK(nf_peak_rss_bytes() >= big);
        munmap(map, big);
    }

    int port = nf_free_port("127.0.0.1"), lo = 0, hi = 0;
    CHECK(port > 0 && port < 65536);
    /* below the ephemeral range (where outgoing connections take ports) */
    FILE *f = fopen("/proc/sys/net/ipv4/ip_local_port_range", "r");
    if (f && fscanf(f, "%d %d", &lo, &hi) == 2 && lo - 10000 >= 1000)
        CHECK(port >= 10000 && port < lo);
    if (f)
        fclose(f);
    /* and free: it binds */
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t) port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    CHECK(fd >= 0 && bind(fd, (struct sockaddr *) &sa, sizeof sa) == 0);
    if (fd >= 0)
        close(fd);
    return nf_test_done("sys");
}
