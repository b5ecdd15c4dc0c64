/*  nf_sys: clocks, memory figures, free ports. */
#include "nf_sys.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

uint64_t
nf_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t) ts.tv_sec * 1000000u + (uint64_t) ts.tv_nsec / 1000u;
}

uint64_t
nf_wall_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t) ts.tv_sec * 1000000u + (uint64_t) ts.tv_nsec / 1000u;
}

char *
nf_iso_now(char *buf, size_t size)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    snprintf(buf, size, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ", tm.tm_year + 1900, tm.tm_mon + 1,
             tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000);
    return buf;
}

uint64_t
nf_rss_bytes(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    unsigned long size = 0, resident = 0;
    if (!f)
        return 0;
    if (fscanf(f, "%lu %lu", &size, &resident) != 2)
        resident = 0;
    fclose(f);
    return (uint64_t) resident * (uint64_t) sysconf(_SC_PAGESIZE);
}

uint64_t
nf_peak_rss_bytes(void)
{
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) != 0)
        return 0;
    return (uint64_t) ru.ru_maxrss * 1024u;
}

/* Whether port (0 = any) binds on sa's address; *port gets the port bound. */
static bool
s_bind_ok(struct sockaddr_in *sa, int *port)
{
    socklen_t len = sizeof *sa;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return false;
    sa->sin_port = htons((uint16_t) *port);
    bool ok = bind(fd, (struct sockaddr *) sa, sizeof *sa) == 0
              && getsockname(fd, (struct sockaddr *) sa, &len) == 0;
    if (ok)
        *port = ntohs(sa->sin_port);
    close(fd);
    return ok;
}

/* The first port of the kernel's ephemeral range (where connect() takes
   its local ports), 32768 when it cannot be read. */
static int
s_ephemeral_lo(void)
{
    int lo = 32768, hi = 0;
    FILE *f = fopen("/proc/sys/net/ipv4/ip_local_port_range", "r");
    if (f) {
        if (fscanf(f, "%d %d", &lo, &hi) != 2)
            lo = 32768;
        fclose(f);
    }
    return lo;
}

int
nf_free_port(const char *host)
{
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    if (inet_pton(AF_INET, host, &sa.sin_addr) != 1)
        sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    /* A port below the ephemeral range: one that bind(0) hands out may be
       taken a moment later by any process's outgoing connection (tests
       running in parallel make many), and the pod meant to bind it then
       fails with "Address already in use".  Random candidates, checked by
       binding; bind(0) when none is free. */
    int lo = 10000, hi = s_ephemeral_lo();
    if (hi - lo >= 1000) {
        uint64_t x = nf_now_us() ^ ((uint64_t) getpid() << 32);
        for (int i = 0; i < 64; i++) {
            x = x * 6364136223846793005ull + 1442695040888963407ull;    /* LCG step */
            int port = lo + (int) ((x >> 33) % (uint64_t) (hi - lo));
            if (s_bind_ok(&sa, &port))
                return port;
        }
    }
    int port = 0;
    return s_bind_ok(&sa, &port) ? port : 0;
}
