/*  nflow: command dispatch.  Each command lives in tools/cmd_*.c. */
#include "nflow.h"

#include <stdio.h>
#include <string.h>

static const struct {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *help;
} s_commands[] = {
    {"up", cmd_up, "up FLOW.yml [--workspace DIR]     start a flow and stay in the foreground"},
    {"keys", cmd_keys, "keys FLOW.yml [--dir DIR]          make the flow's CurveZMQ keys"},
    {"index", cmd_index, "index -f FLOW.yml FILE...          index JSONL or .fvecs documents"},
    {"search", cmd_search, "search -f FLOW.yml --text T | --queries F -k K [--json]"},
    {"delete", cmd_delete, "delete -f FLOW.yml ID...           delete documents by id"},
    {"status", cmd_status, "status -f FLOW.yml                 per-pod status"},
    {"segment", cmd_segment, "segment build|search|info|verify|repair ... one segment directory"},
    {"check-pod", cmd_check_pod, "check-pod [--dim D] -- COMMAND...   drive an executor through the protocol"},
    {"bench", cmd_bench, "bench limits|scan|flow ...         measure this machine, the scan, the flow"},
};

static void
s_usage(FILE *out)
{
    fprintf(out, "usage: nflow COMMAND [ARGS]\n\ncommands:\n");
    for (size_t i = 0; i < sizeof s_commands / sizeof s_commands[0]; i++)
        fprintf(out, "  nflow %s\n", s_commands[i].help);
    fprintf(out, "\n`nflow COMMAND --help` shows a command's options.\n");
}

int
main(int argc, char **argv)
{
    if (argc < 2) {
        s_usage(stderr);
        return 2;
    }
    if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help") || !strcmp(argv[1], "help")) {
        s_usage(stdout);
        return 0;
    }
    for (size_t i = 0; i < sizeof s_commands / sizeof s_commands[0]; i++)
        if (!strcmp(argv[1], s_commands[i].name))
            return s_commands[i].run(argc - 1, argv + 1);
    fprintf(stderr, "nflow: unknown command '%s'\n", argv[1]);
    s_usage(stderr);
    return 2;
}
