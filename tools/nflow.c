/*  nflow: command dispatch.  Each command lives in tools/cmd_*.c and
    parses its options with tools/args.h. */
#include "args.h"
#include "nflow.h"

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
        {"segment", cmd_segment, "segment build|search|info|verify|repair ... one segment directory"},
        {"check-pod", cmd_check_pod, "check-pod [--dim D] -- COMMAND...   drive an executor through the protocol"},
        {"bench", cmd_bench, "bench limits|scan|flow ...         measure this machine, the scan, the flow"},
    };
    return nf_args_dispatch("nflow", commands, NF_ARGS_COUNT(commands),
                            "`nflow COMMAND --help` shows a command's options.", argc, argv);
}
