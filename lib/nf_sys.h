/*  nf_sys: small wrappers over the operating system shared by pods, tools
    and tests: clocks, memory figures, free ports.                          */
#ifndef NF_SYS_H
#define NF_SYS_H

#include <stddef.h>
#include <stdint.h>

/* Monotonic clock in microseconds. */
uint64_t nf_now_us(void);

/* Wall clock (unix epoch) in microseconds; used for deadlines on the wire. */
uint64_t nf_wall_us(void);

/* Current resident set size of this process in bytes (0 if unknown). */
uint64_t nf_rss_bytes(void);

/* Peak resident set size of this process in bytes (getrusage). */
uint64_t nf_peak_rss_bytes(void);

/* A TCP port on host (e.g. "127.0.0.1") that was free a moment ago
   (bound to port 0 and released); 0 on failure. */
int nf_free_port(const char *host);

#endif
