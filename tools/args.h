/*  args: the one option parser of the `nflow` commands.

    A command describes its options and positional arguments in one table;
    nf_args_parse fills the command's variables from argv and nf_args_usage
    prints `--help` from the same table, so what --help says, what is
    accepted and (through tests/cli_help.sh) what README's command
    reference lists cannot drift apart.  Options are `--name VALUE`,
    `--name=VALUE`, `-x VALUE`, flags `--name`; `--` ends the options;
    integers are checked against their bounds; every error names the
    command, the option and what was expected, e.g.

        nflow bench scan: --threads: expected an integer in 0..1024, got '-1'

    A typical command:

        long long k = 10;
        bool json = false;
        const char *dir = NULL;
        const nf_arg_t args[] = {
            {"DIR", NULL, NF_ARG_POS, &dir, .required = true, .help = "the segment"},
            {"-k", NULL, NF_ARG_LONG, &k, 1, 10000, .meta = "K", .help = "results per query"},
            {"--json", NULL, NF_ARG_FLAG, &json, .help = "one JSON line per query"},
        };
        const nf_args_t spec = {"nflow segment search", args, NF_ARGS_COUNT(args),
                                .summary = "Exact top-k search of one segment."};
        int status;
        if (!nf_args_parse(&spec, argc, argv, &status))
            return status;          // 0 after --help, 2 after a usage error

    argv[0] is the command's own name and is skipped.  The parser only
    writes through the table's pointers and prints on spec->out / err
    (stdout / stderr when NULL); it allocates nothing.                   */
#ifndef NFLOW_ARGS_H
#define NFLOW_ARGS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

typedef enum {
    NF_ARG_FLAG,        /* --json                 bool *, set true */
    NF_ARG_STR,         /* --queries FILE         const char ** */
    NF_ARG_CHOICE,      /* --policy mmap|memory   const char **, one of .choices */
    NF_ARG_INT,         /* --dim D                int *, within [min, max] */
    NF_ARG_LONG,        /* -n N                   long long *, within [min, max] */
    NF_ARG_MULTI,       /* --text T (repeatable)  nf_args_list_t * */
    NF_ARG_POS,         /* DIR                    const char **, next positional */
    NF_ARG_REST,        /* FILE...                nf_args_list_t *, all other positionals */
} nf_arg_kind_t;

/* Storage for NF_ARG_MULTI / NF_ARG_REST, given by the caller: items has
   room for cap strings; the parser sets n.  More than cap is an error. */
typedef struct {
    const char **items;
    size_t n, cap;
} nf_args_list_t;

typedef struct {
    const char *name;       /* "--threads", "-k"; positionals: their metavariable, "DIR" */
    const char *alias;      /* another spelling ("-c" for "--clients"), or NULL */
    nf_arg_kind_t kind;
    void *value;            /* see nf_arg_kind_t; its value before parsing is the default */
    long long min, max;     /* NF_ARG_INT, NF_ARG_LONG */
    const char *meta;       /* the value's name in help ("N", "FILE"); default "VALUE" */
    const char *choices;    /* NF_ARG_CHOICE: "mmap|memory" */
    const char *help;       /* one sentence; may span lines with '\n' */
    bool required;          /* missing is a usage error (positionals: at least one for REST) */
    bool *seen;             /* set true when given on the command line, or NULL */
} nf_arg_t;

typedef struct {
    const char *cmd;        /* "nflow bench scan": prefix of usage and errors */
    const nf_arg_t *args;
    size_t nargs;           /* at most 64 */
    const char *summary;    /* printed under the usage line by --help, or NULL */
    const char *synopsis;   /* replaces the generated argument part of the usage line */
    FILE *out, *err;        /* --help / errors; NULL = stdout / stderr */
    bool options_first;     /* the first positional ends the options, as `--` does (a
                               COMMAND... whose own options are not the command's) */
} nf_args_t;

#define NF_ARGS_COUNT(a) (sizeof(a) / sizeof((a)[0]))

/* Parse argv[1..argc) into the table's variables.  True: go on.  False:
   return *status from the command (0 after -h/--help, which printed the
   usage on out; 2 after a usage error, printed on err). */
bool nf_args_parse(const nf_args_t *spec, int argc, char **argv, int *status);

/* A usage error found after parsing (a value the table cannot check):
   "CMD: " and the message on spec->err; returns 2, the status to exit with. */
int nf_args_error(const nf_args_t *spec, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* The usage line, the summary and one line per option and positional
   (with its bounds, choices and default). */
void nf_args_usage(const nf_args_t *spec, FILE *out);

/* Subcommand dispatch (`nflow COMMAND`, `nflow bench scan`): runs the
   entry named argv[1] with (argc - 1, argv + 1); -h/--help/help print the
   list on stdout (status 0), nothing or an unknown name print it on
   stderr (status 2). */
typedef struct {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *help;       /* one line: "build DIR FILE ...   what it does" */
} nf_subcmd_t;

int nf_args_dispatch(const char *cmd, const nf_subcmd_t *subs, size_t nsubs, const char *footer,
                     int argc, char **argv);

#endif
