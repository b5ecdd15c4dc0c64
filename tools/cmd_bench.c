/*  nflow bench: measure this machine's limits and the scan.

      nflow bench limits [--mem-mb MB] [--threads N]
          DRAM read bandwidth (sum a buffer with N threads, best of 3) and
          sgemm GFLOP/s (2048^3 cblas_sgemm, best of 3), one line each.

      nflow bench scan DIR (--queries FILE.f32 | --queries-seed S) [-q Q] [-k K]
                       [--threads N] [--window W] [--policy mmap|memory]
                       [--repeat R] [--truth OUT.ivecs]
          Opens the segment read-only, runs one timed nf_scan_search and
          prints one line in the format of shared/anchors/flat_anchors.py:
            nflow l2 n=.. d=.. q=.. k=.. query_s=.. qps=.. scan_GBps=.. peak_rss_MB=..
          query_s is the first search of this process (the anchors time one
          search too) and cpu_s its CPU time (user + system, all threads);
          with --repeat R > 1 the best of R is added as best_s= (and the
          least CPU time as best_cpu_s=), with R > 2 also median_s=, the
          median of the R - 1 searches after the first.
          --queries reads raw row-major float32 (dim from the segment) and
          uses its first Q rows; --queries-seed makes standard-normal-ish
          queries with a small C generator (NOT numpy's stream).  --truth
          writes per query an int32 k then k int32 rows (-1 padded), like
          the anchors' --truth.

    Options are parsed with tools/args.h; `--help` comes from the same
    tables.                                                              */
#include "nflow.h"
#include "args.h"

#include "nf_error.h"
#include "nf_scan.h"
#include "nf_segment.h"
#include "nf_sys.h"

#include <cblas.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

/* ------------------------------------------------------------------ */
/* limits                                                              */

typedef uint64_t s_vu __attribute__((vector_size(64)));

/* Sum n bytes (a multiple of 256) as 64-bit words, four accumulators so the
   loads are not serialised on one add chain. */
NF_TARGET_CLONES static uint64_t
s_sum(const unsigned char *p, size_t n)
{
    s_vu a = {0}, b = {0}, c = {0}, d = {0};
    for (size_t i = 0; i + 256 <= n; i += 256) {
        s_vu x, y, z, w;
        memcpy(&x, p + i, 64);
        memcpy(&y, p + i + 64, 64);
        memcpy(&z, p + i + 128, 64);
        memcpy(&w, p + i + 192, 64);
        a += x;
        b += y;
        c += z;
        d += w;
    }
    a += b + c + d;
    uint64_t u[8];
    memcpy(u, &a, sizeof u);
    return u[0] + u[1] + u[2] + u[3] + u[4] + u[5] + u[6] + u[7];
}

typedef struct {
    const unsigned char *p;
    size_t n;
    uint64_t sum;
    pthread_t tid;
} s_reader_t;

static void *
s_reader_run(void *arg)
{
    s_reader_t *r = arg;
    r->sum = s_sum(r->p, r->n);
    return NULL;
}

/* Best of 3 passes over buf with nt threads, in GB/s (0 on failure). */
static double
s_bandwidth(const unsigned char *buf, size_t bytes, int nt)
{
    s_reader_t *rd = calloc((size_t) nt, sizeof *rd);
    if (!rd)
        return 0.0;
    size_t chunk = bytes / (size_t) nt / 256 * 256;
    double best = 0.0;
    uint64_t check = 0;
    for (int rep = 0; rep < 3; rep++) {
        uint64_t t0 = nf_now_us();
        int started = 0;
        for (int i = 0; i < nt; i++) {
            rd[i].p = buf + (size_t) i * chunk;
            rd[i].n = chunk;
            if (i > 0 && pthread_create(&rd[i].tid, NULL, s_reader_run, &rd[i]) == 0)
                started = i;
            else if (i > 0)
                break;
        }
        s_reader_run(&rd[0]);
        for (int i = 1; i <= started; i++)
            pthread_join(rd[i].tid, NULL);
        double s = (double) (nf_now_us() - t0) / 1e6;
        for (int i = 0; i <= started; i++)
            check += rd[i].sum;
        double gbps = (double) chunk * (started + 1) / s / 1e9;
        if (gbps > best)
            best = gbps;
    }
    free(rd);
    if (check == 42)        /* keep the sums alive */
        fputs("", stderr);
    return best;
}

/* Best of 3 n^3 sgemms with OpenBLAS's own threads, in GFLOP/s. */
static double
s_sgemm_gflops(int n)
{
    size_t nn = (size_t) n * n;
    float *a = malloc(nn * sizeof *a), *b = malloc(nn * sizeof *b), *c = malloc(nn * sizeof *c);
    double best = 0.0;
    if (a && b && c) {
        for (size_t i = 0; i < nn; i++) {
            a[i] = (float) ((i * 2654435761u) % 1000) / 1000.0f - 0.5f;
            b[i] = (float) ((i * 40503u) % 1000) / 1000.0f - 0.5f;
        }
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0f, a, n, b, n, 0.0f, c, n);
        for (int rep = 0; rep < 3; rep++) {
            uint64_t t0 = nf_now_us();
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0f, a, n, b, n,
                        0.0f, c, n);
            double s = (double) (nf_now_us() - t0) / 1e6;
            double g = 2.0 * n * (double) n * n / s / 1e9;
            if (g > best)
                best = g;
        }
    }
    free(a);
    free(b);
    free(c);
    return best;
}

/* The disk's synchronous write rate in MB/s: total_mb MiB written to a
   fresh temporary file in dir as 5 MiB chunks, each write followed by
   fdatasync (what a durable append of 5 MiB costs at best); the file is
   removed.  -1 (with a message) on error. */
static double
s_disk_sync_write(const char *dir, long long total_mb)
{
    const size_t chunk = 5u << 20;
    char path[4096];
    if (snprintf(path, sizeof path, "%s/nflow-limits-XXXXXX", dir) >= (int) sizeof path) {
        fprintf(stderr, "nflow bench limits: --disk-dir '%s' is too long\n", dir);
        return -1.0;
    }
    int fd = mkstemp(path);
    if (fd < 0) {
        fprintf(stderr, "nflow bench limits: %s: cannot create: %s\n", path, strerror(errno));
        return -1.0;
    }
    unlink(path);
    unsigned char *buf = malloc(chunk);
    double rate = -1.0;
    if (!buf) {
        fprintf(stderr, "nflow bench limits: out of memory for a 5 MiB chunk\n");
        goto done;
    }
    for (size_t i = 0; i < chunk; i++)
        buf[i] = (unsigned char) (i * 2654435761u >> 13);
    size_t n = (size_t) total_mb * (1u << 20) / chunk;
    if (n == 0)
        n = 1;
    uint64_t t0 = nf_now_us();
    for (size_t i = 0; i < n; i++) {
        size_t done = 0;
        while (done < chunk) {
            ssize_t w = pwrite(fd, buf + done, chunk - done, (off_t) (i * chunk + done));
            if (w < 0 && errno == EINTR)
                continue;
            if (w <= 0) {
                fprintf(stderr, "nflow bench limits: %s: write: %s\n", path,
                        w < 0 ? strerror(errno) : "no progress");
                goto done;
            }
            done += (size_t) w;
        }
        if (fdatasync(fd) != 0) {
            fprintf(stderr, "nflow bench limits: %s: fdatasync: %s\n", path, strerror(errno));
            goto done;
        }
    }
    double t = (double) (nf_now_us() - t0) / 1e6;
    rate = t > 0 ? (double) (n * chunk) / 1e6 / t : 0.0;
done:
    free(buf);
    close(fd);
    return rate;
}

static int
s_limits(int argc, char **argv)
{
    long long mem_mb = 1024, threads = 0, disk_mb = 200;
    const char *disk_dir = NULL;
    const nf_arg_t args[] = {
        {"--mem-mb", NULL, NF_ARG_LONG, &mem_mb, 16, 1LL << 20, .meta = "MB",
         .help = "buffer read for the bandwidth"},
        {"--threads", NULL, NF_ARG_LONG, &threads, 0, 1024, .meta = "N",
         .help = "reader threads and OpenBLAS threads (0 = all cores)"},
        {"--disk-dir", NULL, NF_ARG_STR, &disk_dir, .meta = "DIR",
         .help = "also measure the synchronous write rate of DIR's filesystem"},
        {"--disk-mb", NULL, NF_ARG_LONG, &disk_mb, 5, 1LL << 20, .meta = "MB",
         .help = "bytes written for it, in 5 MiB write + fdatasync steps"},
    };
    const nf_args_t spec = {
        "nflow bench limits", args, NF_ARGS_COUNT(args),
        .summary = "DRAM read bandwidth (sum a buffer with N threads, best of 3) and sgemm\n"
                   "GFLOP/s (2048^3 cblas_sgemm, best of 3), one line each; with --disk-dir,\n"
                   "a third line: the disk's synchronous write rate (5 MiB writes, each\n"
                   "followed by fdatasync, to a temporary file in DIR)."};
    int status;
    if (!nf_args_parse(&spec, argc, argv, &status))
        return status;
    int nt = threads > 0 ? (int) threads : (int) sysconf(_SC_NPROCESSORS_ONLN);
    if (nt < 1)
        nt = 1;
    size_t bytes = (size_t) mem_mb << 20;
    unsigned char *buf = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (buf == MAP_FAILED) {
        fprintf(stderr, "nflow bench limits: cannot map %lld MB: %s\n", mem_mb, strerror(errno));
        return 1;
    }
    madvise(buf, bytes, MADV_NOHUGEPAGE);   /* like page-cache pages of a segment */
    memset(buf, 1, bytes);                  /* real pages, not the shared zero page */
    double gbps = s_bandwidth(buf, bytes, nt);
    munmap(buf, bytes);
    printf("limits dram_read_GBps=%.2f threads=%d buffer_MB=%lld\n", gbps, nt, mem_mb);
    fflush(stdout);
    if (threads > 0)
        openblas_set_num_threads((int) threads);
    double gf = s_sgemm_gflops(2048);
    printf("limits sgemm_GFLOPs=%.1f n=2048 threads=%d\n", gf, openblas_get_num_threads());
    double disk = 1.0;
    if (disk_dir) {
        fflush(stdout);
        disk = s_disk_sync_write(disk_dir, disk_mb);
        if (disk >= 0.0)
            printf("limits disk_sync_write_MBps=%.1f chunk_MB=5 total_MB=%lld\n", disk, disk_mb);
    }
    return gbps > 0.0 && gf > 0.0 && disk >= 0.0 ? 0 : 1;
}

/* ------------------------------------------------------------------ */
/* scan                                                                */

/* CPU seconds (user + system) used by this process so far. */
static double
s_cpu_s(void)
{
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) != 0)
        return 0.0;
    return (double) (ru.ru_utime.tv_sec + ru.ru_stime.tv_sec)
           + (double) (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

/* Minor page faults of this process so far. */
static long
s_minflt(void)
{
    struct rusage ru;
    return getrusage(RUSAGE_SELF, &ru) == 0 ? ru.ru_minflt : 0;
}

/* Read the first nq rows of a raw float32 file of dim d (nq 0 = all rows). */
static float *
s_read_queries(const char *path, uint32_t d, size_t *nq)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "nflow bench scan: %s: %s\n", path, strerror(errno));
        return NULL;
    }
    struct stat st;
    size_t row = (size_t) d * sizeof(float);
    if (fstat(fileno(f), &st) != 0 || st.st_size <= 0 || (size_t) st.st_size % row != 0) {
        fprintf(stderr, "nflow bench scan: %s: size %lld is not a positive multiple of dim %u x 4 bytes\n",
                path, (long long) st.st_size, d);
        fclose(f);
        return NULL;
    }
    size_t have = (size_t) st.st_size / row;
    if (*nq == 0)
        *nq = have;
    if (*nq > have) {
        fprintf(stderr, "nflow bench scan: %s holds %zu queries of dim %u, -q asks for %zu\n",
                path, have, d, *nq);
        fclose(f);
        return NULL;
    }
    float *q = malloc(*nq * row);
    if (!q || fread(q, row, *nq, f) != *nq) {
        fprintf(stderr, "nflow bench scan: %s: %s\n", path, q ? "short read" : "out of memory");
        free(q);
        q = NULL;
    }
    fclose(f);
    return q;
}

static float *
s_seed_queries(uint64_t seed, uint32_t d, size_t nq)
{
    float *q = malloc(nq * d * sizeof *q);
    uint64_t x = seed * 0x9E3779B97F4A7C15ull + 1;
    for (size_t i = 0; q && i < nq * d; i++) {
        double s = 0.0;
        for (int j = 0; j < 4; j++) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            s += (double) (x >> 11) / 9007199254740992.0;
        }
        q[i] = (float) ((s - 2.0) * 1.7320508);
    }
    return q;
}

static int
s_write_truth(const char *path, const nf_hit_t *out, const size_t *counts, size_t nq, size_t k)
{
    FILE *f = fopen(path, "wb");
    if (!f) {
        fprintf(stderr, "nflow bench scan: %s: %s\n", path, strerror(errno));
        return 1;
    }
    int32_t *rec = malloc((k + 1) * sizeof *rec);
    int rc = rec ? 0 : 1;
    for (size_t q = 0; !rc && q < nq; q++) {
        rec[0] = (int32_t) k;
        for (size_t i = 0; i < k; i++)
            rec[i + 1] = i < counts[q] ? (int32_t) out[q * k + i].key : -1;
        if (fwrite(rec, sizeof *rec, k + 1, f) != k + 1)
            rc = 1;
    }
    free(rec);
    if (fclose(f) != 0 || rc) {
        fprintf(stderr, "nflow bench scan: writing %s failed\n", path);
        return 1;
    }
    return 0;
}

static int
s_scan(int argc, char **argv)
{
    const char *dir = NULL, *qfile = NULL, *truth = NULL, *policy = "mmap";
    long long nq = 0, k = 10, threads = 0, window = 0, repeat = 1, seed = 0;
    bool have_seed = false;
    const nf_arg_t args[] = {
        {"DIR", NULL, NF_ARG_POS, &dir, .required = true, .help = "the segment (opened read-only)"},
        {"--queries", NULL, NF_ARG_STR, &qfile, .meta = "FILE.f32",
         .help = "raw row-major float32 queries (dim from the segment); its first Q are used"},
        {"--queries-seed", NULL, NF_ARG_LONG, &seed, 0, INT64_MAX, .meta = "S",
         .help = "standard-normal-ish queries from a small C generator (not numpy's)",
         .seen = &have_seed},
        {"-q", NULL, NF_ARG_LONG, &nq, 0, 10000000, .meta = "Q",
         .help = "queries (0 = all of --queries)"},
        {"-k", NULL, NF_ARG_LONG, &k, 1, 100000, .meta = "K", .help = "results per query"},
        {"--threads", NULL, NF_ARG_LONG, &threads, 0, 1024, .meta = "N",
         .help = "scan threads (0 = all cores)"},
        {"--window", NULL, NF_ARG_LONG, &window, 0, 1LL << 24, .meta = "W",
         .help = "rows per window (0 = automatic)"},
        {"--policy", NULL, NF_ARG_CHOICE, &policy, .choices = "mmap|memory",
         .help = "vectors in the page cache or read into RAM"},
        {"--repeat", NULL, NF_ARG_LONG, &repeat, 1, 1000, .meta = "R",
         .help = "searches; with R > 1 the best is printed as best_s=, with R > 2 the "
                 "median of all but the first as median_s="},
        {"--truth", NULL, NF_ARG_STR, &truth, .meta = "OUT.ivecs",
         .help = "write per query an int32 k then k int32 rows (-1 padded)"},
    };
    const nf_args_t spec = {
        "nflow bench scan", args, NF_ARGS_COUNT(args),
        .synopsis = "DIR (--queries FILE.f32 | --queries-seed S) [-q Q] [-k K] [--threads N]\n"
                    "                        [--window W] [--policy mmap|memory] [--repeat R]\n"
                    "                        [--truth OUT.ivecs]",
        .summary = "One timed nf_scan_search, printed in the format of\n"
                   "shared/anchors/flat_anchors.py (query_s = the first search of this process)."};
    int usage;
    if (!nf_args_parse(&spec, argc, argv, &usage))
        return usage;
    if (!qfile == !have_seed || (have_seed && nq == 0)) {
        fprintf(stderr, "nflow bench scan: give one of --queries FILE or --queries-seed S "
                        "(with -q Q) (see nflow bench scan --help)\n");
        return 2;
    }

    nf_segment_opts_t so = {.readonly = true,
                            .vectors = strcmp(policy, "memory") ? NF_MEM_MMAP : NF_MEM_MEMORY};
    nf_segment_t *seg = NULL;
    int rc = nf_segment_open(dir, &so, &seg);
    if (rc) {
        fprintf(stderr, "nflow bench scan: %s: %s\n", dir, nf_error_msg());
        return 1;
    }
    uint32_t d = nf_segment_dim(seg);
    size_t q = (size_t) nq;
    float *queries = qfile ? s_read_queries(qfile, d, &q) : s_seed_queries((uint64_t) seed, d, q);
    nf_hit_t *out = queries ? malloc(q * (size_t) k * sizeof *out) : NULL;
    size_t *counts = queries ? malloc(q * sizeof *counts) : NULL;
    int status = 1;
    if (!queries || !out || !counts) {
        if (queries)
            fprintf(stderr, "nflow bench scan: out of memory for %zu x k = %llu results\n", q,
                    (unsigned long long) k);
        goto done;
    }

    nf_scan_opts_t opts = {.threads = (int) threads, .window_rows = window};
    double first = 0.0, best = 0.0, cpu_first = 0.0, cpu_best = 0.0;
    double after[1000];         /* the searches after the first (--repeat <= 1000) */
    size_t nafter = 0;
    long flt_first = 0, flt_last = 0;
    for (long long r = 0; r < repeat; r++) {
        long f0 = s_minflt();
        double c0 = s_cpu_s();
        uint64_t t0 = nf_now_us();
        rc = nf_scan_search(seg, queries, q, (size_t) k, &opts, out, counts);
        double s = (double) (nf_now_us() - t0) / 1e6;
        double cpu = s_cpu_s() - c0;
        flt_last = s_minflt() - f0;
        if (r == 0)
            flt_first = flt_last;
        if (rc) {
            fprintf(stderr, "nflow bench scan: search failed: %s\n", nf_error_msg());
            goto done;
        }
        if (s < 1e-6)
            s = 1e-6;
        if (r == 0) {
            first = best = s;
            cpu_first = cpu_best = cpu;
        } else {
            after[nafter++] = s;
            if (s < best)
                best = s;
        }
        if (cpu < cpu_best)
            cpu_best = cpu;
    }
    uint64_t n = nf_segment_rows(seg);
    printf("nflow %s n=%llu d=%u q=%zu k=%llu query_s=%.4f qps=%.1f scan_GBps=%.2f peak_rss_MB=%.0f",
           nf_metric_name(nf_segment_metric(seg)), (unsigned long long) n, d, q,
           (unsigned long long) k, first, (double) q / first, (double) n * d * 4 / first / 1e9,
           (double) nf_peak_rss_bytes() / 1048576.0);
    printf(" cpu_s=%.4f faults=%ld", cpu_first, flt_first);
    if (repeat > 1)
        printf(" best_s=%.4f best_qps=%.1f best_cpu_s=%.4f last_faults=%ld", best,
               (double) q / best, cpu_best, flt_last);
    if (nafter >= 2) {
        qsort(after, nafter, sizeof *after, bench_cmp_double);
        double med = nafter % 2 ? after[nafter / 2]
                                : (after[nafter / 2 - 1] + after[nafter / 2]) / 2;
        printf(" median_s=%.4f median_qps=%.1f", med, (double) q / med);
    }
    printf(" threads=%llu policy=%s\n", (unsigned long long) threads, policy);
    status = truth ? s_write_truth(truth, out, counts, q, (size_t) k) : 0;

done:
    free(queries);
    free(out);
    free(counts);
    nf_segment_destroy(&seg);
    return status;
}

int
cmd_bench(int argc, char **argv)
{
    static const nf_subcmd_t subs[] = {
        {"limits", s_limits, "limits [--mem-mb MB] [--threads N]    DRAM bandwidth, sgemm GFLOP/s"},
        {"scan", s_scan, "scan DIR (--queries F | --queries-seed S) ...   one timed scan"},
        {"flow", cmd_bench_flow, "flow (--gateway EP | --segment DIR) --queries F ...   latency"},
    };
    return nf_args_dispatch("nflow bench", subs, NF_ARGS_COUNT(subs),
                            "`nflow bench SUBCOMMAND --help` shows its options.", argc, argv);
}
