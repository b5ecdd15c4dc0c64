/*  args: table-driven option parsing and --help for the nflow commands
    (see args.h). */
#include "args.h"

#include <assert.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

static FILE *
s_out(const nf_args_t *spec)
{
    return spec->out ? spec->out : stdout;
}

static FILE *
s_err(const nf_args_t *spec)
{
    return spec->err ? spec->err : stderr;
}

static bool
s_is_positional(const nf_arg_t *a)
{
    return a->kind == NF_ARG_POS || a->kind == NF_ARG_REST;
}

static bool
s_takes_value(const nf_arg_t *a)
{
    return a->kind != NF_ARG_FLAG && !s_is_positional(a);
}

static const char *
s_meta(const nf_arg_t *a)
{
    return a->meta ? a->meta : a->kind == NF_ARG_CHOICE && a->choices ? a->choices : "VALUE";
}

/* The option spelled text (len bytes: "--clients" of "--clients=3"). */
static const nf_arg_t *
s_find(const nf_args_t *spec, const char *text, size_t len)
{
    for (size_t i = 0; i < spec->nargs; i++) {
        const nf_arg_t *a = &spec->args[i];
        if (s_is_positional(a))
            continue;
        if ((strlen(a->name) == len && !strncmp(a->name, text, len))
            || (a->alias && strlen(a->alias) == len && !strncmp(a->alias, text, len)))
            return a;
    }
    return NULL;
}

/* Is word one of the '|'-separated choices? */
static bool
s_choice_ok(const char *choices, const char *word)
{
    size_t n = strlen(word);
    for (const char *c = choices; c && *c;) {
        size_t len = strcspn(c, "|");
        if (len == n && !strncmp(c, word, n))
            return true;
        c += len + (c[len] == '|');
    }
    return false;
}

static bool
s_parse_ll(const char *text, long long *out)
{
    char *end;
    errno = 0;
    long long v = strtoll(text, &end, 10);
    if (errno || end == text || *end)
        return false;
    *out = v;
    return true;
}

static bool
s_list_add(const nf_args_t *spec, const nf_arg_t *a, nf_args_list_t *l, const char *v)
{
    if (l->n >= l->cap) {
        if (s_is_positional(a))
            fprintf(s_err(spec), "%s: at most %zu %s\n", spec->cmd, l->cap, a->name);
        else
            fprintf(s_err(spec), "%s: %s: at most %zu values\n", spec->cmd, a->name, l->cap);
        return false;
    }
    l->items[l->n++] = v;
    return true;
}

/* Store value v of option a (spelled as given). */
static bool
s_set(const nf_args_t *spec, const nf_arg_t *a, const char *given, const char *v)
{
    long long x;
    switch (a->kind) {
    case NF_ARG_FLAG:
        *(bool *) a->value = true;
        break;
    case NF_ARG_STR:
        *(const char **) a->value = v;
        break;
    case NF_ARG_CHOICE:
        if (!s_choice_ok(a->choices, v)) {
            fprintf(s_err(spec), "%s: %s: expected one of %s, got '%s'\n", spec->cmd, given,
                    a->choices ? a->choices : "(none)", v);
            return false;
        }
        *(const char **) a->value = v;
        break;
    case NF_ARG_INT:
    case NF_ARG_LONG: {
        long long lo = a->min, hi = a->max;
        if (a->kind == NF_ARG_INT) {
            lo = lo < INT_MIN ? INT_MIN : lo;
            hi = hi > INT_MAX ? INT_MAX : hi;
        }
        if (!s_parse_ll(v, &x) || x < lo || x > hi) {
            fprintf(s_err(spec), "%s: %s: expected an integer in %lld..%lld, got '%s'\n",
                    spec->cmd, given, lo, hi, v);
            return false;
        }
        if (a->kind == NF_ARG_INT)
            *(int *) a->value = (int) x;
        else
            *(long long *) a->value = x;
        break;
    }
    case NF_ARG_MULTI:
        if (!s_list_add(spec, a, a->value, v))
            return false;
        break;
    case NF_ARG_POS:
    case NF_ARG_REST:
        return false;           /* not options */
    }
    if (a->seen)
        *a->seen = true;
    return true;
}

/* A positional argument: the next NF_ARG_POS not yet filled, else REST. */
static bool
s_positional(const nf_args_t *spec, const char *v, size_t *npos)
{
    size_t k = 0;
    for (size_t i = 0; i < spec->nargs; i++) {
        const nf_arg_t *a = &spec->args[i];
        if (a->kind == NF_ARG_POS && k++ == *npos) {
            *(const char **) a->value = v;
            if (a->seen)
                *a->seen = true;
            (*npos)++;
            return true;
        }
    }
    for (size_t i = 0; i < spec->nargs; i++) {
        const nf_arg_t *a = &spec->args[i];
        if (a->kind == NF_ARG_REST) {
            if (a->seen)
                *a->seen = true;
            return s_list_add(spec, a, a->value, v);
        }
    }
    fprintf(s_err(spec), "%s: unexpected argument '%s' (see %s --help)\n", spec->cmd, v,
            spec->cmd);
    return false;
}

bool
nf_args_parse(const nf_args_t *spec, int argc, char **argv, int *status)
{
    size_t npos = 0;
    bool given[64] = {false};           /* required options seen, by table index */
    bool only_positional = false;
    assert(spec->nargs <= sizeof given / sizeof given[0]);     /* a table this long is a bug */
    *status = 2;
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        if (only_positional || arg[0] != '-' || !strcmp(arg, "-")) {
            if (!s_positional(spec, arg, &npos))
                return false;
            only_positional |= spec->options_first;
            continue;
        }
        if (!strcmp(arg, "--")) {
            only_positional = true;
            continue;
        }
        if (!strcmp(arg, "-h") || !strcmp(arg, "--help")) {
            nf_args_usage(spec, s_out(spec));
            *status = 0;
            return false;
        }
        const char *eq = arg[1] == '-' ? strchr(arg, '=') : NULL;
        size_t len = eq ? (size_t) (eq - arg) : strlen(arg);
        const nf_arg_t *a = s_find(spec, arg, len);
        if (!a) {
            fprintf(s_err(spec), "%s: unknown option '%.*s' (see %s --help)\n", spec->cmd,
                    (int) len, arg, spec->cmd);
            return false;
        }
        char spelled[64];
        snprintf(spelled, sizeof spelled, "%.*s", (int) len, arg);
        const char *v = NULL;
        if (s_takes_value(a)) {
            if (eq)
                v = eq + 1;
            else if (i + 1 < argc)
                v = argv[++i];
            else {
                fprintf(s_err(spec), "%s: %s needs a value (%s)\n", spec->cmd, spelled,
                        s_meta(a));
                return false;
            }
        } else if (eq) {
            fprintf(s_err(spec), "%s: %s takes no value\n", spec->cmd, spelled);
            return false;
        }
        if (!s_set(spec, a, spelled, v))
            return false;
        size_t idx = (size_t) (a - spec->args);
        if (idx < sizeof given / sizeof given[0])
            given[idx] = true;
    }
    size_t k = 0;
    for (size_t i = 0; i < spec->nargs; i++) {
        const nf_arg_t *a = &spec->args[i];
        bool missing = false;
        if (a->kind == NF_ARG_POS)
            missing = a->required && k++ >= npos;
        else if (a->kind == NF_ARG_REST)
            missing = a->required && ((nf_args_list_t *) a->value)->n == 0;
        else
            missing = a->required && i < sizeof given / sizeof given[0] && !given[i];
        if (missing) {
            if (s_is_positional(a))
                fprintf(s_err(spec), "%s: missing %s (see %s --help)\n", spec->cmd, a->name,
                        spec->cmd);
            else
                fprintf(s_err(spec), "%s: %s %s is required (see %s --help)\n", spec->cmd,
                        a->name, s_meta(a), spec->cmd);
            return false;
        }
    }
    *status = 0;
    return true;
}

int
nf_args_error(const nf_args_t *spec, const char *fmt, ...)
{
    va_list ap;
    fprintf(s_err(spec), "%s: ", spec->cmd);
    va_start(ap, fmt);
    vfprintf(s_err(spec), fmt, ap);
    va_end(ap);
    fprintf(s_err(spec), "\n");
    return 2;
}

/* "-c, --clients N" */
static void
s_spelling(const nf_arg_t *a, char *buf, size_t size)
{
    if (s_is_positional(a))
        snprintf(buf, size, "%s%s", a->name, a->kind == NF_ARG_REST ? "..." : "");
    else if (a->alias) {
        bool alias_first = strncmp(a->alias, "--", 2) != 0;     /* the short one first */
        snprintf(buf, size, "%s, %s%s%s", alias_first ? a->alias : a->name,
                 alias_first ? a->name : a->alias, s_takes_value(a) ? " " : "",
                 s_takes_value(a) ? s_meta(a) : "");
    }
    else
        snprintf(buf, size, "%s%s%s", a->name, s_takes_value(a) ? " " : "",
                 s_takes_value(a) ? s_meta(a) : "");
}

void
nf_args_usage(const nf_args_t *spec, FILE *out)
{
    fprintf(out, "usage: %s", spec->cmd);
    if (spec->synopsis)
        fprintf(out, " %s", spec->synopsis);
    else
        for (size_t i = 0; i < spec->nargs; i++) {
            const nf_arg_t *a = &spec->args[i];
            char sp[96];
            if (s_is_positional(a))
                s_spelling(a, sp, sizeof sp);
            else
                snprintf(sp, sizeof sp, "%s%s%s", a->name, s_takes_value(a) ? " " : "",
                         s_takes_value(a) ? s_meta(a) : "");
            fprintf(out, a->required ? " %s" : " [%s]", sp);
        }
    fprintf(out, "\n");
    if (spec->summary)
        fprintf(out, "\n%s\n", spec->summary);
    if (spec->nargs)
        fprintf(out, "\n");
    for (size_t i = 0; i < spec->nargs; i++) {
        const nf_arg_t *a = &spec->args[i];
        char sp[96];
        s_spelling(a, sp, sizeof sp);
        fprintf(out, "  %-22s", sp);
        if (strlen(sp) > 22)
            fprintf(out, "\n  %-22s", "");
        /* the help text, continuation lines indented under it */
        for (const char *h = a->help ? a->help : ""; *h;) {
            size_t len = strcspn(h, "\n");
            fprintf(out, " %.*s", (int) len, h);
            h += len;
            if (*h == '\n' && *++h)
                fprintf(out, "\n  %-22s", "");
        }
        switch (a->kind) {
        case NF_ARG_INT:
        case NF_ARG_LONG: {
            /* a default outside the bounds means "not given": not shown */
            long long d = a->kind == NF_ARG_INT ? *(const int *) a->value
                                                : *(const long long *) a->value;
            if (d >= a->min && d <= a->max)
                fprintf(out, " (%lld..%lld, default %lld)", a->min, a->max, d);
            else
                fprintf(out, " (%lld..%lld)", a->min, a->max);
            break;
        }
        case NF_ARG_STR:
        case NF_ARG_CHOICE:
            if (*(const char *const *) a->value)
                fprintf(out, " (default %s)", *(const char *const *) a->value);
            break;
        default:
            break;
        }
        fprintf(out, "\n");
    }
}

int
nf_args_dispatch(const char *cmd, const nf_subcmd_t *subs, size_t nsubs, const char *footer,
                 int argc, char **argv)
{
    const char *name = argc >= 2 ? argv[1] : NULL;
    bool help = name && (!strcmp(name, "-h") || !strcmp(name, "--help") || !strcmp(name, "help"));
    if (name && !help)
        for (size_t i = 0; i < nsubs; i++)
            if (!strcmp(name, subs[i].name))
                return subs[i].run(argc - 1, argv + 1);
    FILE *out = help ? stdout : stderr;
    if (name && !help)
        fprintf(out, "%s: unknown command '%s'\n", cmd, name);
    fprintf(out, "usage: %s COMMAND [ARGS]\n\ncommands:\n", cmd);
    for (size_t i = 0; i < nsubs; i++)
        fprintf(out, "  %s %s\n", cmd, subs[i].help);
    if (footer)
        fprintf(out, "\n%s\n", footer);
    return help ? 0 : 2;
}
