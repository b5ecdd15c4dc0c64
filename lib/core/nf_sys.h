/*  nf_sys: small wrappers over the operating system shared by pods, tools
    and tests: clocks, memory figures, free ports.                          */
#ifndef NF_SYS_H
#define NF_SYS_H

#include <stddef.h>
#include <stdint.h>

/* Put before a hot function: GCC and clang (>= 14) compile it for
   AVX-512, AVX2 and the baseline and pick one at load time through an
   ifunc (the build targets baseline x86-64, so packaged binaries stay
   portable).  Empty elsewhere.  clang 14 gives the resolver of a static
   function external linkage ("NAME.resolver"), so two cloned functions
   of one program must not share a name even when both are static. */
#if defined(__x86_64__) && defined(__GNUC__) && defined(__has_attribute)
#if __has_attribute(target_clones)
#define NF_TARGET_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#endif
#endif
#ifndef NF_TARGET_CLONES
#define NF_TARGET_CLONES
#endif

/* Monotonic clock in microseconds. */
uint64_t nf_now_us(void);

/* Wall clock (unix epoch) in microseconds; used for deadlines on the wire. */
uint64_t nf_wall_us(void);

/* The wall clock now as ISO 8601 UTC with milliseconds,
   "2026-11-30T10:41:49.123Z", for log lines (hosts' logs line up); writes
   at most size bytes (25 suffice); returns buf. */
char *nf_iso_now(char *buf, size_t size);

/* Current resident set size of this process in bytes (0 if unknown). */
uint64_t nf_rss_bytes(void);

/* Peak resident set size of this process in bytes (getrusage). */
uint64_t nf_peak_rss_bytes(void);

/* A TCP port on host (e.g. "127.0.0.1") that was free a moment ago (bound
   and released), chosen at random below the kernel's ephemeral range so
   outgoing connections do not take it meanwhile; 0 on failure. */
int nf_free_port(const char *host);

#endif
