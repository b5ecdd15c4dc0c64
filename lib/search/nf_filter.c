/*  nf_filter: the filter language's lexer and recursive-descent parser,
    typed against a schema (grammar and semantics in nf_filter.h); binding
    and evaluation are in nf_filter_eval.c.

    The tree is an array of nodes; "and" / "or" are n-ary (a chain of 1000
    "and"s is one node with 1000 children, not 1000 levels), so the tree's
    depth is bounded by the nesting of parentheses and "not", which the
    parser refuses past NF_FILTER_DEPTH_MAX: recursion and the evaluator's
    scratch stay small.   */
#include "nf_filter_impl.h"

#include "nf_error.h"
#include "nf_limits.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------- lexer */

enum { T_END, T_NAME, T_INT, T_FLOAT, T_STR, T_DATE, T_OP, T_LP, T_RP, T_LB, T_RB, T_COMMA };

typedef struct {
    int type, op;
    const char *p;          /* start in the text */
    size_t len;
    int64_t i;
    double f;
    char *s;                /* T_STR: unescaped (owned by the parser until taken) */
    int line, col;
} s_tok_t;

typedef struct {
    const char *text, *p;
    int line;
    const char *line_start;
    s_tok_t t;
    nf_filter_t *f;
    int depth;
} s_parser_t;

static int
s_err(const s_parser_t *ps, const s_tok_t *t, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int
s_err(const s_parser_t *ps, const s_tok_t *t, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    (void) ps;
    return nf_error_set(NF_EPARSE, "filter:%d:%d: %s", t->line, t->col, msg);
}

/* Text of a token for messages. */
static const char *
s_show(const s_tok_t *t, char *buf, size_t size)
{
    if (t->type == T_END)
        snprintf(buf, size, "the end of the filter");
    else if (t->type == T_STR)
        snprintf(buf, size, "\"%.40s\"", t->s ? t->s : "");
    else
        snprintf(buf, size, "'%.*s'", (int) (t->len < 40 ? t->len : 40), t->p);
    return buf;
}

static bool
s_word(const s_tok_t *t, const char *w)
{
    return t->type == T_NAME && strlen(w) == t->len && !memcmp(t->p, w, t->len);
}

static bool
s_isdigit(char c)
{
    return c >= '0' && c <= '9';
}

static int
s_next(s_parser_t *ps)
{
    s_tok_t *t = &ps->t;
    free(t->s);
    memset(t, 0, sizeof *t);
    const char *p = ps->p;
    for (; *p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'; p++)
        if (*p == '\n') {
            ps->line++;
            ps->line_start = p + 1;
        }
    t->p = p;
    t->line = ps->line;
    t->col = (int) (p - ps->line_start) + 1;
    char c = *p;
    if (!c) {
        t->type = T_END;
    } else if (c == '(' || c == ')' || c == '[' || c == ']' || c == ',') {
        t->type = c == '(' ? T_LP : c == ')' ? T_RP : c == '[' ? T_LB : c == ']' ? T_RB
                                                                            : T_COMMA;
        p++;
    } else if (c == '=' || c == '!' || c == '<' || c == '>') {
        t->type = T_OP;
        if (p[1] == '=') {
            t->op = c == '=' ? OP_EQ : c == '!' ? OP_NE : c == '<' ? OP_LE : OP_GE;
            p += 2;
        } else if (c == '<' || c == '>') {
            t->op = c == '<' ? OP_LT : OP_GT;
            p++;
        } else {
            t->len = 1;
            return s_err(ps, t, "'%c' is not an operator (== != < <= > >=)", c);
        }
    } else if (c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) {
        t->type = T_NAME;
        while (*p == '_' || (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z')
               || s_isdigit(*p))
            p++;
    } else if (c == '"' || c == '\'') {
        size_t cap = 16, n = 0;
        char *s = malloc(cap);
        if (!s)
            return nf_error_set(NF_ENOMEM, "filter: out of memory");
        for (p++; *p && *p != c; p++) {
            char ch = *p;
            if (ch == '\\') {
                p++;
                if (*p != '"' && *p != '\'' && *p != '\\') {
                    free(s);
                    t->len = 1;
                    t->col += (int) (p - t->p);
                    return s_err(ps, t, "unknown escape '\\%c' in a string (\\\" \\' \\\\)",
                                 *p ? *p : ' ');
                }
                ch = *p;
            }
            if (n + 2 > cap) {
                char *ns = realloc(s, cap *= 2);
                if (!ns) {
                    free(s);
                    return nf_error_set(NF_ENOMEM, "filter: out of memory");
                }
                s = ns;
            }
            s[n++] = ch;
        }
        s[n] = '\0';
        if (!*p) {
            free(s);
            return s_err(ps, t, "string not closed (missing %c)", c);
        }
        p++;
        t->type = T_STR;
        t->s = s;
    } else if (s_isdigit(c) || ((c == '-' || c == '+') && (s_isdigit(p[1]) || p[1] == '.'))
               || (c == '.' && s_isdigit(p[1]))) {
        const char *q = p;
        if (*q == '-' || *q == '+')
            q++;
        /* a bare date: 4 digits and '-' */
        if (s_isdigit(q[0]) && s_isdigit(q[1]) && s_isdigit(q[2]) && s_isdigit(q[3])
            && q[4] == '-' && q == p) {
            while (*q && (s_isdigit(*q) || strchr("-:.+TtZz", *q)))
                q++;
            t->type = T_DATE;
            t->len = (size_t) (q - p);
            int64_t us;
            if (nf_datetime_parse(p, t->len, &us) != 0)
                return s_err(ps, t, "%s", nf_error_msg());
            t->i = us;
            p = q;
        } else {
            char *e1, *e2;
            errno = 0;
            long long iv = strtoll(p, &e1, 10);
            bool irange = errno == 0;
            double dv = strtod(p, &e2);
            if (e2 > e1) {
                t->type = T_FLOAT;
                t->f = dv;
                p = e2;
                if (!isfinite(dv)) {
                    t->len = (size_t) (p - t->p);
                    return s_err(ps, t, "number out of range");
                }
            } else {
                t->type = T_INT;
                t->i = iv;
                p = e1;
                if (!irange || iv == INT64_MIN) {
                    t->len = (size_t) (p - t->p);
                    return s_err(ps, t, "integer out of range (64-bit)");
                }
            }
            if (*p == '_' || (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z')) {
                t->len = (size_t) (p - t->p) + 1;
                return s_err(ps, t, "bad number");
            }
        }
    } else {
        t->len = 1;
        return s_err(ps, t, "unexpected character '%c'", c);
    }
    if (!t->len)
        t->len = (size_t) (p - t->p);
    ps->p = p;
    return 0;
}

/* ------------------------------------------------------------- tree */

/* buf (capacity *cap elements of size bytes) with room for one more after
   n: itself, or grown (doubled); NULL when out of memory (buf unchanged). */
static void *
s_room(void *buf, uint32_t *cap, uint32_t n, size_t size)
{
    if (n < *cap)
        return buf;
    uint32_t nc = *cap ? *cap * 2 : 16;
    void *nb = realloc(buf, (size_t) nc * size);
    if (!nb) {
        nf_error_set(NF_ENOMEM, "filter: out of memory");
        return NULL;
    }
    *cap = nc;
    return nb;
}

static int
s_node(nf_filter_t *f, const s_node_t *n, uint32_t *id)
{
    s_node_t *nodes = s_room(f->nodes, &f->cap, f->nnodes, sizeof *nodes);
    if (!nodes)
        return NF_ENOMEM;
    f->nodes = nodes;
    f->nodes[f->nnodes] = *n;
    *id = f->nnodes++;
    return 0;
}

static int
s_val(nf_filter_t *f, const s_val_t *v, uint32_t *id)
{
    s_val_t *vals = s_room(f->vals, &f->vcap, f->nvals, sizeof *vals);
    if (!vals)
        return NF_ENOMEM;
    f->vals = vals;
    f->vals[f->nvals] = *v;
    *id = f->nvals++;
    return 0;
}

static const char *
s_tokkind(const s_tok_t *t)
{
    switch (t->type) {
    case T_INT: return "an int";
    case T_FLOAT: return "a float";
    case T_STR: return "a string";
    case T_DATE: return "a datetime";
    case T_NAME: return s_word(t, "true") || s_word(t, "false") ? "a bool" : "a name";
    default: return "not a value";
    }
}

/* Convert the literal in ps->t for field fd into v (taking its string). */
static int
s_literal(s_parser_t *ps, const nf_field_def_t *fd, s_val_t *v)
{
    s_tok_t *t = &ps->t;
    char shown[64];
    memset(v, 0, sizeof *v);
    bool ok = false;
    switch (fd->type) {
    case NF_FIELD_INT:
        ok = t->type == T_INT;
        v->i = t->i;
        break;
    case NF_FIELD_FLOAT:
        ok = t->type == T_INT || t->type == T_FLOAT;
        v->f = t->type == T_INT ? (double) t->i : t->f;
        break;
    case NF_FIELD_BOOL:
        ok = s_word(t, "true") || s_word(t, "false");
        v->i = s_word(t, "true");
        break;
    case NF_FIELD_DATETIME:
        if (t->type == T_STR) {
            if (nf_datetime_parse(t->s, strlen(t->s), &v->i) != 0)
                return s_err(ps, t, "'%s' is a datetime field; %s", fd->name, nf_error_msg());
            ok = true;
        } else {
            ok = t->type == T_DATE;
            v->i = t->i;
        }
        break;
    case NF_FIELD_KEYWORD:
    case NF_FIELD_KEYWORDS:
        ok = t->type == T_STR;
        if (ok) {
            size_t len = strlen(t->s);
            if (len == 0 || len > NF_KEYWORD_MAX)
                return s_err(ps, t, "'%s': a keyword has 1..%d bytes (NF_KEYWORD_MAX), this "
                             "one %zu", fd->name, NF_KEYWORD_MAX, len);
            v->s = t->s;
            t->s = NULL;
        }
        break;
    default:
        break;
    }
    if (!ok) {
        static const char *const want[] = {
            [NF_FIELD_INT] = "an integer", [NF_FIELD_FLOAT] = "a number",
            [NF_FIELD_BOOL] = "true or false", [NF_FIELD_KEYWORD] = "a string",
            [NF_FIELD_KEYWORDS] = "a string", [NF_FIELD_DATETIME] = "a date-time "
                                                                    "(2001-02-03T04:05:06Z)",
        };
        if (t->type == T_INT || t->type == T_FLOAT || t->type == T_STR || t->type == T_DATE
            || s_word(t, "true") || s_word(t, "false"))
            return s_err(ps, t, "'%s' is a%s %s field; %s is %s", fd->name,
                         fd->type == NF_FIELD_INT ? "n" : "", nf_field_type_name(fd->type),
                         s_show(t, shown, sizeof shown), s_tokkind(t));
        return s_err(ps, t, "'%s' is a%s %s field: expected %s, got %s", fd->name,
                     fd->type == NF_FIELD_INT ? "n" : "", nf_field_type_name(fd->type),
                     want[fd->type], s_show(t, shown, sizeof shown));
    }
    return s_next(ps);
}

/* "[" literal ("," literal)* "]" into vals; *first / *n. */
static int
s_list(s_parser_t *ps, const nf_field_def_t *fd, uint32_t *first, uint32_t *n)
{
    char shown[64];
    if (ps->t.type != T_LB)
        return s_err(ps, &ps->t, "expected a list [...] after '%s', got %s", fd->name,
                     s_show(&ps->t, shown, sizeof shown));
    int rc = s_next(ps);
    *first = ps->f->nvals;
    *n = 0;
    while (!rc && ps->t.type != T_RB) {
        if (*n && ps->t.type != T_COMMA)
            return s_err(ps, &ps->t, "expected ',' or ']' in the list, got %s",
                         s_show(&ps->t, shown, sizeof shown));
        if (*n && (rc = s_next(ps)))
            return rc;
        if (*n >= NF_FILTER_LIST_MAX)
            return s_err(ps, &ps->t, "more than %d values in a list (NF_FILTER_LIST_MAX)",
                         NF_FILTER_LIST_MAX);
        s_val_t v;
        uint32_t id;
        if ((rc = s_literal(ps, fd, &v)))
            return rc;
        if ((rc = s_val(ps->f, &v, &id))) {
            free(v.s);
            return rc;
        }
        (*n)++;
    }
    return rc ? rc : s_next(ps);
}

static int s_or(s_parser_t *ps, uint32_t *out);

static int
s_pred(s_parser_t *ps, uint32_t *out)
{
    char shown[64];
    s_tok_t name = ps->t;
    name.s = NULL;
    if (ps->t.type != T_NAME || s_word(&ps->t, "true") || s_word(&ps->t, "false"))
        return s_err(ps, &ps->t, "expected a field name, 'not' or '(', got %s",
                     s_show(&ps->t, shown, sizeof shown));
    nf_filter_t *f = ps->f;
    int fi = -1;
    for (size_t i = 0; i < f->nfields; i++)
        if (strlen(f->fields[i].name) == name.len && !memcmp(f->fields[i].name, name.p, name.len))
            fi = (int) i;
    if (fi < 0) {
        char list[512] = "";
        for (size_t i = 0; i < f->nfields; i++) {
            size_t l = strlen(list);
            snprintf(list + l, sizeof list - l, "%s%s", i ? ", " : "", f->fields[i].name);
        }
        return s_err(ps, &name, "'%.*s' is not a field (fields: %s)", (int) name.len, name.p,
                     f->nfields ? list : "none");
    }
    const nf_field_def_t *fd = &f->fields[fi];
    const char *tn = nf_field_type_name(fd->type);
    s_node_t n = {.field = fi, .ftype = fd->type};
    int rc = s_next(ps);
    if (rc)
        return rc;
    s_tok_t *t = &ps->t;
    if (t->type == T_OP) {
        n.kind = N_CMP;
        n.op = t->op;
        if ((fd->type == NF_FIELD_KEYWORD || fd->type == NF_FIELD_BOOL) && n.op != OP_EQ
            && n.op != OP_NE)
            return s_err(ps, t, "'%s' is a %s field: only == and != compare it%s", fd->name, tn,
                         fd->type == NF_FIELD_KEYWORD ? " (or in [...])" : "");
        if (fd->type == NF_FIELD_KEYWORDS)
            return s_err(ps, t, "'%s' is a keyword[] field: use contains, contains any [...] "
                         "or contains all [...]", fd->name);
        if ((rc = s_next(ps)))
            return rc;
        s_val_t v;
        if ((rc = s_literal(ps, fd, &v)))
            return rc;
        n.i = v.i;
        n.f = v.f;
        if (v.s && (rc = s_val(f, &v, &n.s))) {
            free(v.s);
            return rc;
        }
    } else if (s_word(t, "in") || s_word(t, "not")) {
        bool neg = s_word(t, "not");
        if ((rc = s_next(ps)))
            return rc;
        if (neg && !s_word(&ps->t, "in"))
            return s_err(ps, &ps->t, "expected 'in' after '%s not', got %s", fd->name,
                         s_show(&ps->t, shown, sizeof shown));
        if (neg && (rc = s_next(ps)))
            return rc;
        if (fd->type == NF_FIELD_KEYWORDS)
            return s_err(ps, &name, "'%s' is a keyword[] field: use contains any [...]",
                         fd->name);
        if (fd->type == NF_FIELD_BOOL)
            return s_err(ps, &name, "'%s' is a bool field: compare it with == or !=",
                         fd->name);
        n.kind = neg ? N_NOTIN : N_IN;
        if ((rc = s_list(ps, fd, &n.first, &n.n)))
            return rc;
    } else if (s_word(t, "contains")) {
        if (fd->type != NF_FIELD_KEYWORDS)
            return s_err(ps, t, "'%s' is a%s %s field: contains is for keyword[] fields",
                         fd->name, fd->type == NF_FIELD_INT ? "n" : "", tn);
        if ((rc = s_next(ps)))
            return rc;
        if (s_word(&ps->t, "any") || s_word(&ps->t, "all")) {
            n.kind = s_word(&ps->t, "any") ? N_HASANY : N_HASALL;
            if ((rc = s_next(ps)) || (rc = s_list(ps, fd, &n.first, &n.n)))
                return rc;
        } else {
            n.kind = N_HAS;
            n.first = f->nvals;
            n.n = 1;
            s_val_t v;
            uint32_t id;
            if ((rc = s_literal(ps, fd, &v)))
                return rc;
            if ((rc = s_val(f, &v, &id))) {
                free(v.s);
                return rc;
            }
        }
    } else if (s_word(t, "is")) {
        if ((rc = s_next(ps)))
            return rc;
        bool neg = s_word(&ps->t, "not");
        if (neg && (rc = s_next(ps)))
            return rc;
        if (!s_word(&ps->t, "null"))
            return s_err(ps, &ps->t, "expected 'null' after 'is%s', got %s", neg ? " not" : "",
                         s_show(&ps->t, shown, sizeof shown));
        n.kind = neg ? N_NOTNULL : N_ISNULL;
        if ((rc = s_next(ps)))
            return rc;
    } else if (fd->type == NF_FIELD_BOOL) {
        n.kind = N_CMP;     /* bare bool field: == true */
        n.op = OP_EQ;
        n.i = 1;
    } else {
        return s_err(ps, t, "expected an operator after '%s' (a%s %s field): == != < <= > >= "
                     "in, not in, is null%s; got %s", fd->name,
                     fd->type == NF_FIELD_INT ? "n" : "", tn,
                     fd->type == NF_FIELD_KEYWORDS ? ", contains" : "",
                     s_show(t, shown, sizeof shown));
    }
    return s_node(f, &n, out);
}

static int
s_unary(s_parser_t *ps, uint32_t *out)
{
    char shown[64];
    int rc;
    if (s_word(&ps->t, "not") || ps->t.type == T_LP) {
        if (++ps->depth > NF_FILTER_DEPTH_MAX)
            return s_err(ps, &ps->t, "nested more than %d levels (NF_FILTER_DEPTH_MAX)",
                         NF_FILTER_DEPTH_MAX);
        bool not = ps->t.type != T_LP;
        s_tok_t open = ps->t;
        open.s = NULL;
        if ((rc = s_next(ps)))
            return rc;
        uint32_t child = 0;
        if (not) {
            if ((rc = s_unary(ps, &child)))
                return rc;
            s_node_t n = {.kind = N_NOT};
            if ((rc = s_node(ps->f, &n, out)))
                return rc;
            ps->f->nodes[*out].first = child;   /* N_NOT: the child's node id */
        } else {
            if ((rc = s_or(ps, out)))
                return rc;
            if (ps->t.type != T_RP)
                return s_err(ps, &ps->t, "expected ')' to close the '(' at %d:%d, got %s",
                             open.line, open.col, s_show(&ps->t, shown, sizeof shown));
            if ((rc = s_next(ps)))
                return rc;
        }
        ps->depth--;
        return 0;
    }
    return s_pred(ps, out);
}

/* n-ary and / or: the children are collected, then stored together. */
static int
s_chain(s_parser_t *ps, uint32_t *out, int kind)
{
    const char *word = kind == N_OR ? "or" : "and";
    uint32_t *ch = NULL, nch = 0, cap = 0;
    int rc = 0;
    for (;;) {
        uint32_t c = 0;
        rc = kind == N_OR ? s_chain(ps, &c, N_AND) : s_unary(ps, &c);
        if (rc)
            break;
        if (nch == cap) {
            uint32_t *nc = realloc(ch, (cap = cap ? cap * 2 : 4) * sizeof *nc);
            if (!nc) {
                rc = nf_error_set(NF_ENOMEM, "filter: out of memory");
                break;
            }
            ch = nc;
        }
        ch[nch++] = c;
        if (!s_word(&ps->t, word))
            break;
        if ((rc = s_next(ps)))
            break;
    }
    if (!rc && nch == 1) {
        *out = ch[0];
    } else if (!rc) {
        nf_filter_t *f = ps->f;
        if (f->nkids + nch > f->kcap) {
            uint32_t nc = f->kcap ? f->kcap : 16;
            while (nc < f->nkids + nch)
                nc *= 2;
            uint32_t *nk = realloc(f->kids, nc * sizeof *nk);
            if (!nk)
                rc = nf_error_set(NF_ENOMEM, "filter: out of memory");
            else
                f->kids = nk, f->kcap = nc;
        }
        if (!rc) {
            s_node_t n = {.kind = kind, .first = f->nkids, .n = nch};
            memcpy(f->kids + f->nkids, ch, nch * sizeof *ch);
            f->nkids += nch;
            rc = s_node(f, &n, out);
        }
    }
    free(ch);
    return rc;
}

static int
s_or(s_parser_t *ps, uint32_t *out)
{
    return s_chain(ps, out, N_OR);
}

void
nf_filter_destroy(nf_filter_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    nf_filter_t *f = *self_p;
    for (uint32_t i = 0; i < f->nvals; i++)
        free(f->vals[i].s);
    free(f->vals);
    free(f->nodes);
    free(f->kids);
    free(f->fields);
    free(f->text);
    free(f);
    *self_p = NULL;
}

int
nf_filter_parse(const char *text, const nf_field_def_t *fields, size_t nfields,
                nf_filter_t **out)
{
    if (!text || !out || (nfields && !fields))
        return nf_error_set(NF_EINVAL, "nf_filter_parse: NULL argument");
    *out = NULL;
    size_t len = strnlen(text, NF_FILTER_BYTES_MAX + 1);
    if (len > NF_FILTER_BYTES_MAX)
        return nf_error_set(NF_EPARSE, "filter: longer than %d bytes (NF_FILTER_BYTES_MAX)",
                            NF_FILTER_BYTES_MAX);
    if (nfields > NF_FIELDS_MAX)
        return nf_error_set(NF_EINVAL, "filter: %zu fields, at most %d", nfields, NF_FIELDS_MAX);
    nf_filter_t *f = calloc(1, sizeof *f);
    if (!f || !(f->text = strdup(text))
        || !(f->fields = malloc((nfields + 1) * sizeof *f->fields))) {
        nf_filter_destroy(&f);
        return nf_error_set(NF_ENOMEM, "filter: out of memory");
    }
    if (nfields)
        memcpy(f->fields, fields, nfields * sizeof *fields);
    f->nfields = nfields;
    s_parser_t ps = {.text = f->text, .p = f->text, .line = 1, .line_start = f->text, .f = f};
    int rc = s_next(&ps);
    if (!rc && ps.t.type == T_END)
        rc = s_err(&ps, &ps.t, "empty filter");
    if (!rc)
        rc = s_or(&ps, &f->root);
    if (!rc && ps.t.type != T_END) {
        char shown[64];
        rc = s_err(&ps, &ps.t, "expected 'and', 'or' or the end, got %s",
                   s_show(&ps.t, shown, sizeof shown));
    }
    free(ps.t.s);
    if (rc) {
        nf_filter_destroy(&f);
        return rc;
    }
    *out = f;
    return 0;
}

int
nf_filter_parse_for(const char *text, const nf_segment_t *seg, nf_filter_t **out)
{
    nf_field_def_t defs[NF_FIELDS_MAX];
    size_t n = nf_segment_nfields(seg);
    if (n > NF_FIELDS_MAX)
        n = NF_FIELDS_MAX;
    for (size_t i = 0; i < n; i++)
        defs[i] = *nf_segment_field(seg, i);
    return nf_filter_parse(text, defs, n, out);
}

