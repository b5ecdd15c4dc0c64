/*  The `nflow` command line: one function per top-level command, each in
    its own cmd_*.c file.  argv[0] is the command name (e.g. "segment").
    Each returns the process exit status: 0 ok, 1 failure, 2 usage error. */
#ifndef NFLOW_TOOLS_H
#define NFLOW_TOOLS_H

int cmd_segment(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int cmd_bench_flow(int argc, char **argv);    /* nflow bench flow (argv[0] "flow") */
int cmd_up(int argc, char **argv);
int cmd_keys(int argc, char **argv);
int cmd_index(int argc, char **argv);
int cmd_search(int argc, char **argv);
int cmd_delete(int argc, char **argv);
int cmd_status(int argc, char **argv);
int cmd_compact(int argc, char **argv);
int cmd_check_pod(int argc, char **argv);

/* qsort comparison of doubles, ascending (the bench commands' medians and
   percentiles). */
int bench_cmp_double(const void *a, const void *b);

#endif
