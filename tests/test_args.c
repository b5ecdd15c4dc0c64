/* args (tools/args.h): the option parser of the nflow commands.  Options
   with values (separate and --key=value), aliases, flags, bounded integers
   with an error naming the option and the range, choices, repeated
   options, positionals and the rest list, `--`, required arguments, --help
   generated from the same table, and subcommand dispatch. */
#include "args.h"
#include "nf_test.h"

#include <stdlib.h>
#include <string.h>

/* The command under test: every kind once. */
typedef struct {
    const char *dir, *queries, *policy;
    int dim;
    long long n;
    bool json, queries_seen;
    const char *text_items[3], *file_items[4];
    nf_args_list_t texts, files;
} s_cmd_t;

static char s_out[4096], s_err[4096];

/* Parse the words of line (space-separated, at most 32) into c. */
static bool
s_parse(s_cmd_t *c, const char *line, int *status)
{
    static char buf[512];
    static char *argv[33];
    memset(c, 0, sizeof *c);
    c->dim = 0;
    c->n = 200;
    c->policy = "mmap";
    c->texts = (nf_args_list_t) {c->text_items, 0, 3};
    c->files = (nf_args_list_t) {c->file_items, 0, 4};
    const nf_arg_t args[] = {
        {"DIR", NULL, NF_ARG_POS, &c->dir, .required = true, .help = "the segment directory"},
        {"FILE", NULL, NF_ARG_REST, &c->files, .help = "input files"},
        {"--queries", NULL, NF_ARG_STR, &c->queries, .meta = "FILE", .help = "query vectors",
         .seen = &c->queries_seen},
        {"--dim", NULL, NF_ARG_INT, &c->dim, 1, 65536, .meta = "D", .help = "vector dim"},
        {"-n", "--count", NF_ARG_LONG, &c->n, 1, 1000000, .meta = "N",
         .help = "queries to run,\nin turn"},
        {"--policy", NULL, NF_ARG_CHOICE, &c->policy, .choices = "mmap|memory",
         .help = "vectors in the page cache or in RAM"},
        {"--text", NULL, NF_ARG_MULTI, &c->texts, .meta = "T", .help = "a text query (repeat)"},
        {"--json", NULL, NF_ARG_FLAG, &c->json, .help = "JSON lines"},
    };
    FILE *out = fmemopen(s_out, sizeof s_out, "w"), *err = fmemopen(s_err, sizeof s_err, "w");
    const nf_args_t spec = {"nflow test", args, NF_ARGS_COUNT(args),
                            .summary = "A command for the test.", .out = out, .err = err};
    snprintf(buf, sizeof buf, "test %s", line);
    int argc = 0;
    for (char *w = strtok(buf, " "); w && argc < 32; w = strtok(NULL, " "))
        argv[argc++] = w;
    argv[argc] = NULL;
    bool go = nf_args_parse(&spec, argc, argv, status);
    fclose(out);
    fclose(err);
    return go;
}

static bool
s_err_has(const char *what)
{
    bool ok = strstr(s_err, what) != NULL;
    if (!ok)
        fprintf(stderr, "  error was: %s  (expected to contain '%s')\n", s_err, what);
    return ok;
}

int
main(void)
{
    s_cmd_t c;
    int status = -1;

    /* defaults stay when nothing is given */
    CHECK(s_parse(&c, "seg", &status) && status == 0);
    CHECK(!strcmp(c.dir, "seg") && c.n == 200 && c.dim == 0 && !c.json && c.files.n == 0);
    CHECK(!strcmp(c.policy, "mmap") && !c.queries && !c.queries_seen);

    /* every kind, separate values, --key=value and an alias */
    CHECK(s_parse(&c, "seg a.jsonl --queries q.f32 --dim=128 --count 5 --policy memory "
                  "--text hello --text=world --json b.jsonl", &status));
    CHECK(!strcmp(c.dir, "seg") && !strcmp(c.queries, "q.f32") && c.queries_seen);
    CHECK(c.dim == 128 && c.n == 5 && c.json && !strcmp(c.policy, "memory"));
    CHECK(c.texts.n == 2 && !strcmp(c.text_items[0], "hello") && !strcmp(c.text_items[1], "world"));
    CHECK(c.files.n == 2 && !strcmp(c.file_items[0], "a.jsonl") && !strcmp(c.file_items[1], "b.jsonl"));
    CHECK(s_parse(&c, "seg -n 7", &status) && c.n == 7);

    /* a value may start with '-'; "-" alone and everything after "--" are positionals */
    CHECK(s_parse(&c, "seg --queries -odd", &status) && !strcmp(c.queries, "-odd"));
    CHECK(s_parse(&c, "seg - -- --json -n", &status));
    CHECK(!c.json && c.files.n == 3 && !strcmp(c.file_items[0], "-")
          && !strcmp(c.file_items[1], "--json") && !strcmp(c.file_items[2], "-n"));

    /* integers: bounds and syntax, the error names the option and the range */
    CHECK(!s_parse(&c, "seg --dim 0", &status) && status == 2);
    CHECK(s_err_has("nflow test: --dim: expected an integer in 1..65536, got '0'"));
    CHECK(!s_parse(&c, "seg --dim 65537", &status) && s_err_has("1..65536, got '65537'"));
    CHECK(!s_parse(&c, "seg --dim 12x", &status) && s_err_has("got '12x'"));
    CHECK(!s_parse(&c, "seg --dim=", &status) && s_err_has("got ''"));
    CHECK(!s_parse(&c, "seg --count 99999999999999999999", &status)
          && s_err_has("--count: expected an integer in 1..1000000"));
    CHECK(!s_parse(&c, "seg -n -3", &status) && s_err_has("-n: expected an integer"));

    /* choices, flags, unknown options, missing values */
    CHECK(!s_parse(&c, "seg --policy disk", &status) && status == 2);
    CHECK(s_err_has("--policy: expected one of mmap|memory, got 'disk'"));
    CHECK(!s_parse(&c, "seg --json=1", &status) && s_err_has("--json takes no value"));
    CHECK(!s_parse(&c, "seg --jsn", &status) && s_err_has("unknown option '--jsn'"));
    CHECK(!s_parse(&c, "seg --bogus=3", &status) && s_err_has("unknown option '--bogus'"));
    CHECK(!s_parse(&c, "seg --queries", &status) && s_err_has("--queries needs a value (FILE)"));

    /* required positional, list capacities */
    CHECK(!s_parse(&c, "--json", &status) && status == 2 && s_err_has("missing DIR"));
    CHECK(!s_parse(&c, "seg a b c d e", &status) && s_err_has("at most 4 FILE"));
    CHECK(!s_parse(&c, "seg --text a --text b --text c --text d", &status)
          && s_err_has("nflow test: --text: at most 3 values"));

    /* --help: status 0, the usage, the summary and every option with its
       bounds, choices and default, from the table */
    CHECK(!s_parse(&c, "--help", &status) && status == 0);
    CHECK(!strncmp(s_out, "usage: nflow test DIR [FILE...] [--queries FILE] [--dim D] "
                          "[-n N] [--policy mmap|memory] [--text T] [--json]\n", 97));
    CHECK(strstr(s_out, "A command for the test.") != NULL);
    CHECK(strstr(s_out, "  --dim D                vector dim (1..65536)\n") != NULL);
    CHECK(strstr(s_out, "  -n, --count N ") != NULL);
    CHECK(strstr(s_out, "queries to run,\n") != NULL && strstr(s_out, "in turn (1..1000000, default 200)") != NULL);
    CHECK(strstr(s_out, "(default mmap)") != NULL);
    CHECK(!s_parse(&c, "seg -h", &status) && status == 0 && !strncmp(s_out, "usage:", 6));
    printf("%s", s_out);

    /* options_first: the first positional starts a COMMAND... that keeps its
       own options (check-pod); options before it are still parsed */
    {
        int dim = 256;
        const char *items[8] = {NULL};
        nf_args_list_t cmd = {items, 0, 7};
        const nf_arg_t args[] = {
            {"--dim", NULL, NF_ARG_INT, &dim, 1, 65536, .meta = "D"},
            {"COMMAND", NULL, NF_ARG_REST, &cmd, .required = true},
        };
        char *argv[] = {"pod", "--dim", "8", "enc", "--dim", "9", "-x", NULL};
        FILE *err = fmemopen(s_err, sizeof s_err, "w");
        const nf_args_t spec = {"nflow pod", args, NF_ARGS_COUNT(args), .err = err,
                                .options_first = true};
        CHECK(nf_args_parse(&spec, 7, argv, &status) && status == 0 && dim == 8);
        CHECK(cmd.n == 4 && !strcmp(items[0], "enc") && !strcmp(items[1], "--dim")
              && !strcmp(items[3], "-x") && items[4] == NULL);
        cmd.n = 0;
        CHECK(!nf_args_parse(&spec, 3, argv, &status) && status == 2);
        /* a usage error found after parsing, in the same form */
        CHECK(nf_args_error(&spec, "--dim: %d is odd", 9) == 2);
        fclose(err);
        CHECK(strstr(s_err, "nflow pod: missing COMMAND") != NULL);
        CHECK(strstr(s_err, "nflow pod: --dim: 9 is odd\n") != NULL);
    }
    return nf_test_done("args");
}
