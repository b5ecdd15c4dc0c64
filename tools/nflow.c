/*  nflow: command dispatch.  Each command lives in tools/cmd_*.c and
    parses its options with tools/args.h. */
#include "args.h"
#include "nflow.h"

#include <malloc.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Every command but `bench limits` (which measures sgemm with OpenBLAS's
   own threads) leaves OpenBLAS single-threaded: the launcher and the pods
   it starts (they inherit the environment), the clients, and the scan,
   which runs its own threads and calls BLAS single-threaded in each. */
static bool
s_no_blas(int argc, char **argv)
{
    return !(argc > 2 && !strcmp(argv[1], "bench") && !strcmp(argv[2], "limits"));
}

/* OpenBLAS starts a pool of (cores - 1) threads when it is loaded, before
   main, sized by OPENBLAS_NUM_THREADS; in a process that never calls BLAS
   they only take CPU (sched_yield spinning: 10,000-37,000 calls, a third
   busy thread on 2 cores beside the scan's two, in a process that ran one
   search; what made its first search 1.6-2x the second).  So a command
   that does not need them sets OPENBLAS_NUM_THREADS=1 and starts itself
   again, once; a value the user set is kept.  On any failure it goes on as it is. */
static void
s_blas_threads(int argc, char **argv)
{
    if (getenv("OPENBLAS_NUM_THREADS") || !s_no_blas(argc, argv))
        return;
    char self[4096];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n <= 0 || (size_t) n >= sizeof self - 1)
        return;
    self[n] = '\0';       /* the real path, so the process keeps its name */
    if (setenv("OPENBLAS_NUM_THREADS", "1", 0) == 0)
        execv(self, argv);
}

int
main(int argc, char **argv)
{
    static const nf_subcmd_t commands[] = {
        {"up", cmd_up, "up FLOW.yml [--workspace DIR]     start a flow and stay in the foreground"},
        {"keys", cmd_keys, "keys FLOW.yml [--dir DIR]          make the flow's CurveZMQ keys"},
        {"index", cmd_index, "index -f FLOW.yml FILE...          index JSONL or .fvecs documents"},
        {"search", cmd_search, "search -f FLOW.yml --text T | --queries F [-k K] [--json]"},
        {"delete", cmd_delete, "delete -f FLOW.yml ID...           delete documents by id"},
        {"status", cmd_status, "status -f FLOW.yml                 per-pod status"},
        {"compact", cmd_compact, "compact -f FLOW.yml                compact every shard, serving"},
        {"segment", cmd_segment, "segment build|search|info|verify|repair ... one segment directory"},
        {"check-pod", cmd_check_pod, "check-pod [--dim D] -- COMMAND...   drive an executor through the protocol"},
        {"bench", cmd_bench, "bench limits|scan|flow ...         measure this machine, the scan, the flow"},
    };
    s_blas_threads(argc, argv);
    /* multi-megabyte message buffers come from the heap and are reused, not
       mapped and zeroed afresh for every batch */
    mallopt(M_MMAP_THRESHOLD, 32 << 20);
    mallopt(M_TRIM_THRESHOLD, 64 << 20);
    return nf_args_dispatch("nflow", commands, NF_ARGS_COUNT(commands),
                            "`nflow COMMAND --help` shows a command's options.", argc, argv);
}
