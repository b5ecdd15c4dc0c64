/*  nf_filter_eval: a parsed filter (nf_filter.c) bound to a segment's
    columns and evaluated into row bitmaps.

    Evaluation, per block of at most NF_SUMMARY_ROWS rows (a summary block
    of every column): first the summaries say, for each node, whether no
    row, every row or some rows of the block can match (s_tri); only for
    "some" are the columns read, each leaf comparing a run of 64 rows into
    one word with a branch-free loop: the compiler vectorises the numeric
    ones (short in / not in lists compare value by value); keyword leaves
    (ids) are the SIMD loops of nf_filter_words, long in / not in lists
    one bit test per row against a bitset over the dictionary built at
    bind; keyword[] contains counts the listed ids of a block's sets.  */
#include "nf_filter_impl.h"

#include "nf_error.h"
#include "nf_filter_words.h"
#include "nf_sys.h"

#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

/* ------------------------------------------------------------- binding */

typedef struct {
    int kind, op;
    nf_ftype_t type;
    int fi;                 /* field index in the segment */
    int64_t i;
    double f;
    uint32_t id;            /* keyword literal id (0: no row has it) */
    uint32_t *ids;          /* sorted ids of a list (absent keywords dropped) */
    uint32_t nids;
    bool missing;           /* contains all: a keyword no row has */
    int64_t *iv;            /* int / datetime list, sorted */
    double *fv;             /* float list, sorted */
    uint32_t nv;
    uint32_t *kids;         /* and / or / not */
    uint32_t nkids;
    uint64_t mask;          /* summary presence mask of the ids */
    uint32_t *bits;         /* keyword lists: the kept ids (nf_filter_kw_bits) */
    uint32_t lim;           /* ids >= lim read bit lim */
    nf_kw_test_t kw;        /* keyword: the leaf's loop */
} s_bnode_t;

struct nf_filter_prog {
    nf_segment_t *seg;
    uint64_t rows;
    s_bnode_t *nodes;
    uint32_t nnodes, root;
};

void
nf_filter_prog_destroy(nf_filter_prog_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    nf_filter_prog_t *p = *self_p;
    for (uint32_t i = 0; p->nodes && i < p->nnodes; i++) {
        free(p->nodes[i].ids);
        free(p->nodes[i].iv);
        free(p->nodes[i].fv);
        free(p->nodes[i].kids);
        free(p->nodes[i].bits);
    }
    free(p->nodes);
    free(p);
    *self_p = NULL;
}

static int
s_cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *) a, y = *(const uint32_t *) b;
    return x < y ? -1 : x > y;
}

static int
s_cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *) a, y = *(const int64_t *) b;
    return x < y ? -1 : x > y;
}

static int
s_cmp_f64(const void *a, const void *b)
{
    double x = *(const double *) a, y = *(const double *) b;
    return x < y ? -1 : x > y;
}

/* The loop of keyword leaf b (nf_filter_words.h): null tests, == and !=
   and short lists compare ids, longer lists test the bitset. */
static void
s_kw_test(s_bnode_t *b)
{
    nf_kw_test_t *t = &b->kw;
    t->avx2 = nf_filter_words_avx2();
    t->shape = NF_KW_IDS;
    if (b->kind == N_ISNULL) {
        t->nx = 1;      /* x[0] = 0 */
    } else if (b->kind == N_NOTNULL) {
        t->neg = true;  /* none of no ids, not null */
    } else if ((b->kind == N_IN || b->kind == N_NOTIN) && b->nids > NF_KW_IDS_MAX) {
        t->shape = NF_KW_BITS;
        t->bits = b->bits;
        t->lim = b->lim;
    } else if (b->kind == N_IN || b->kind == N_NOTIN) {
        t->neg = b->kind == N_NOTIN;
        t->nx = b->nids;
        memcpy(t->x, b->ids, b->nids * sizeof *b->ids);
    } else {
        /* == an absent keyword (id 0) is decided by the summaries; != one
           keeps every row that is not null */
        t->neg = b->op != OP_EQ;
        t->nx = 1;
        t->x[0] = b->id;
    }
}

int
nf_filter_bind(const nf_filter_t *f, nf_segment_t *seg, nf_filter_prog_t **out)
{
    if (!f || !seg || !out)
        return nf_error_set(NF_EINVAL, "nf_filter_bind: NULL argument");
    *out = NULL;
    nf_filter_prog_t *p = calloc(1, sizeof *p);
    if (!p || !(p->nodes = calloc(f->nnodes + 1, sizeof *p->nodes))) {
        free(p);
        return nf_error_set(NF_ENOMEM, "filter: out of memory");
    }
    p->seg = seg;
    p->rows = nf_segment_rows(seg);
    p->nnodes = f->nnodes;
    p->root = f->root;
    int rc = 0;
    for (uint32_t i = 0; i < f->nnodes && !rc; i++) {
        const s_node_t *n = &f->nodes[i];
        s_bnode_t *b = &p->nodes[i];
        b->kind = n->kind;
        b->op = n->op;
        b->type = n->ftype;
        if (n->kind == N_AND || n->kind == N_OR || n->kind == N_NOT) {
            b->nkids = n->kind == N_NOT ? 1 : n->n;
            if (!(b->kids = malloc(b->nkids * sizeof *b->kids))) {
                rc = nf_error_set(NF_ENOMEM, "filter: out of memory");
                break;
            }
            if (n->kind == N_NOT)
                b->kids[0] = n->first;
            else
                memcpy(b->kids, f->kids + n->first, n->n * sizeof *b->kids);
            continue;
        }
        const nf_field_def_t *fd = &f->fields[n->field];
        b->fi = nf_segment_field_find(seg, fd->name, strlen(fd->name));
        const nf_field_def_t *sd = b->fi >= 0 ? nf_segment_field(seg, (size_t) b->fi) : NULL;
        if (!sd || sd->type != fd->type) {
            rc = nf_error_set(NF_EINVAL, "filter: field '%s' (%s) %s in segment %s", fd->name,
                              nf_field_type_name(fd->type), sd ? "has another type" : "is not",
                              nf_segment_dir(seg));
            break;
        }
        b->i = n->i;
        b->f = n->f;
        bool kw = fd->type == NF_FIELD_KEYWORD || fd->type == NF_FIELD_KEYWORDS;
        if (n->kind == N_CMP && kw) {
            const char *s = f->vals[n->s].s;
            b->id = nf_segment_keyword_id(seg, (size_t) b->fi, s, strlen(s));
            b->mask = b->id ? 1ull << (b->id % 64) : 0;
        }
        if (n->kind == N_IN || n->kind == N_NOTIN || n->kind == N_HAS || n->kind == N_HASANY
            || n->kind == N_HASALL) {
            if (kw) {
                if (!(b->ids = malloc((n->n + 1) * sizeof *b->ids))) {
                    rc = nf_error_set(NF_ENOMEM, "filter: out of memory");
                    break;
                }
                for (uint32_t j = 0; j < n->n; j++) {
                    const char *s = f->vals[n->first + j].s;
                    uint32_t id = nf_segment_keyword_id(seg, (size_t) b->fi, s, strlen(s));
                    if (id)
                        b->ids[b->nids++] = id;
                    else
                        b->missing = true;
                }
                qsort(b->ids, b->nids, sizeof *b->ids, s_cmp_u32);
                uint32_t o = 0;
                for (uint32_t j = 0; j < b->nids; j++)
                    if (!o || b->ids[j] != b->ids[o - 1])
                        b->ids[o++] = b->ids[j];
                b->nids = o;
                for (uint32_t j = 0; j < b->nids; j++)
                    b->mask |= 1ull << (b->ids[j] % 64);
                /* membership by one branch-free bit test per value, over
                   the dictionary as it is now (the rows bound have no other
                   id; a larger one reads bit lim); short keyword lists
                   compare ids instead (s_kw_test) */
                uint32_t count = nf_segment_keyword_count(seg, (size_t) b->fi);
                b->lim = count + 1;
                bool need = fd->type == NF_FIELD_KEYWORDS || b->nids > NF_KW_IDS_MAX;
                if (need && !(b->bits = calloc(b->lim / 32 + 1, sizeof *b->bits))) {
                    rc = nf_error_set(NF_ENOMEM, "filter: out of memory");
                    break;
                }
                if (need)
                    nf_filter_kw_bits(b->bits, count, b->ids, b->nids, n->kind == N_NOTIN);
            } else if (fd->type == NF_FIELD_FLOAT) {
                if (!(b->fv = malloc((n->n + 1) * sizeof *b->fv))) {
                    rc = nf_error_set(NF_ENOMEM, "filter: out of memory");
                    break;
                }
                for (uint32_t j = 0; j < n->n; j++)
                    b->fv[j] = f->vals[n->first + j].f;
                b->nv = n->n;
                qsort(b->fv, b->nv, sizeof *b->fv, s_cmp_f64);
            } else {
                if (!(b->iv = malloc((n->n + 1) * sizeof *b->iv))) {
                    rc = nf_error_set(NF_ENOMEM, "filter: out of memory");
                    break;
                }
                for (uint32_t j = 0; j < n->n; j++)
                    b->iv[j] = f->vals[n->first + j].i;
                b->nv = n->n;
                qsort(b->iv, b->nv, sizeof *b->iv, s_cmp_i64);
            }
        }
        if (fd->type == NF_FIELD_KEYWORD)
            s_kw_test(b);
    }
    if (rc) {
        nf_filter_prog_destroy(&p);
        return rc;
    }
    *out = p;
    return 0;
}

/* ------------------------------------------------------------- evaluation */

enum { TRI_NONE, TRI_SOME, TRI_ALL };

/* The first of the sorted v[0..n) that is >= x (n when none). */
static uint32_t
s_lower_i64(const int64_t *v, uint32_t n, int64_t x)
{
    uint32_t a = 0, b = n;
    while (a < b) {
        uint32_t m = a + (b - a) / 2;
        if (v[m] < x)
            a = m + 1;
        else
            b = m;
    }
    return a;
}

static uint32_t
s_lower_f64(const double *v, uint32_t n, double x)
{
    uint32_t a = 0, b = n;
    while (a < b) {
        uint32_t m = a + (b - a) / 2;
        if (v[m] < x)
            a = m + 1;
        else
            b = m;
    }
    return a;
}

static bool
s_in_i64(const int64_t *v, uint32_t n, int64_t x)
{
    uint32_t a = s_lower_i64(v, n, x);
    return a < n && v[a] == x;
}

static bool
s_in_f64(const double *v, uint32_t n, double x)
{
    uint32_t a = s_lower_f64(v, n, x);
    return a < n && v[a] == x;
}

/* x in the bound keyword list of b. */
static inline bool
s_in_ids(const s_bnode_t *b, uint32_t x)
{
    uint32_t y = x < b->lim ? x : b->lim;
    return b->bits[y / 32] >> (y % 32) & 1;
}

/* What the block summary says of leaf b. */
static int
s_tri_leaf(const s_bnode_t *b, const nf_summary_t *m)
{
    uint32_t live = m->rows - m->nulls;
    if (b->kind == N_ISNULL)
        return m->nulls == 0 ? TRI_NONE : live == 0 ? TRI_ALL : TRI_SOME;
    if (b->kind == N_NOTNULL)
        return live == 0 ? TRI_NONE : m->nulls == 0 ? TRI_ALL : TRI_SOME;
    if (live == 0)
        return TRI_NONE;    /* every other leaf is false on null */
    int full = m->nulls == 0 ? TRI_ALL : TRI_SOME;
    switch (b->type) {
    case NF_FIELD_INT:
    case NF_FIELD_DATETIME:
    case NF_FIELD_BOOL: {
        int64_t lo = m->imin, hi = m->imax;
        if (b->kind == N_CMP) {
            int64_t v = b->i;
            switch (b->op) {
            case OP_EQ: return v < lo || v > hi ? TRI_NONE : lo == hi ? full : TRI_SOME;
            case OP_NE: return v < lo || v > hi ? full : lo == hi ? TRI_NONE : TRI_SOME;
            case OP_LT: return lo >= v ? TRI_NONE : hi < v ? full : TRI_SOME;
            case OP_LE: return lo > v ? TRI_NONE : hi <= v ? full : TRI_SOME;
            case OP_GT: return hi <= v ? TRI_NONE : lo > v ? full : TRI_SOME;
            case OP_GE: return hi < v ? TRI_NONE : lo >= v ? full : TRI_SOME;
            }
        }
        if (b->kind == N_IN && b->nv && s_lower_i64(b->iv, b->nv, lo) == b->nv)
            return TRI_NONE;
        if (b->kind == N_IN && b->nv && b->iv[s_lower_i64(b->iv, b->nv, lo)] > hi)
            return TRI_NONE;    /* no listed value inside [lo, hi] */
        if (b->kind == N_IN && !b->nv)
            return TRI_NONE;
        return TRI_SOME;
    }
    case NF_FIELD_FLOAT: {
        double lo = m->fmin, hi = m->fmax;
        if (b->kind == N_CMP) {
            double v = b->f;
            switch (b->op) {
            case OP_EQ: return v < lo || v > hi ? TRI_NONE : lo == hi ? full : TRI_SOME;
            case OP_NE: return v < lo || v > hi ? full : lo == hi ? TRI_NONE : TRI_SOME;
            case OP_LT: return lo >= v ? TRI_NONE : hi < v ? full : TRI_SOME;
            case OP_LE: return lo > v ? TRI_NONE : hi <= v ? full : TRI_SOME;
            case OP_GT: return hi <= v ? TRI_NONE : lo > v ? full : TRI_SOME;
            case OP_GE: return hi < v ? TRI_NONE : lo >= v ? full : TRI_SOME;
            }
        }
        if (b->kind == N_IN && (!b->nv || b->fv[b->nv - 1] < lo || b->fv[0] > hi))
            return TRI_NONE;
        if (b->kind == N_IN && b->fv[s_lower_f64(b->fv, b->nv, lo)] > hi)
            return TRI_NONE;    /* no listed value inside [lo, hi] */
        return TRI_SOME;
    }
    case NF_FIELD_KEYWORD:
        if (b->kind == N_CMP && b->op == OP_EQ)
            return !b->id || !(m->kwmask & b->mask) ? TRI_NONE : TRI_SOME;
        if (b->kind == N_CMP && b->op == OP_NE)
            return !b->id || !(m->kwmask & b->mask) ? full : TRI_SOME;
        if (b->kind == N_IN)
            return !(m->kwmask & b->mask) ? TRI_NONE : TRI_SOME;
        if (b->kind == N_NOTIN)
            return !(m->kwmask & b->mask) ? full : TRI_SOME;
        return TRI_SOME;
    case NF_FIELD_KEYWORDS:
        if (b->kind == N_HAS || b->kind == N_HASANY)
            return !(m->kwmask & b->mask) ? TRI_NONE : TRI_SOME;
        if (b->kind == N_HASALL) {
            if (b->missing)
                return TRI_NONE;
            for (uint32_t j = 0; j < b->nids; j++)
                if (!(m->kwmask >> (b->ids[j] % 64) & 1))
                    return TRI_NONE;
            return b->nids ? TRI_SOME : full;
        }
        return TRI_SOME;
    default:
        return TRI_SOME;
    }
}

static int
s_tri(const nf_filter_prog_t *p, uint32_t id, uint64_t block)
{
    const s_bnode_t *b = &p->nodes[id];
    if (b->kind == N_NOT) {
        int t = s_tri(p, b->kids[0], block);
        return t == TRI_ALL ? TRI_NONE : t == TRI_NONE ? TRI_ALL : TRI_SOME;
    }
    if (b->kind == N_AND || b->kind == N_OR) {
        bool and = b->kind == N_AND, all = true, none = true;
        for (uint32_t j = 0; j < b->nkids; j++) {
            int t = s_tri(p, b->kids[j], block);
            if (and && t == TRI_NONE)
                return TRI_NONE;
            if (!and && t == TRI_ALL)
                return TRI_ALL;
            all &= t == TRI_ALL;
            none &= t == TRI_NONE;
        }
        return all ? TRI_ALL : none ? TRI_NONE : TRI_SOME;
    }
    const nf_summary_t *m = nf_segment_summary(p->seg, (size_t) b->fi, block);
    return m ? s_tri_leaf(b, m) : TRI_SOME;
}

/* 64 bytes (0 or 0xff each) -> 64 bits. */
static inline uint64_t
s_pack64(const uint8_t *m)
{
#if defined(__SSE2__)
    uint64_t w = 0;
    for (int i = 0; i < 4; i++) {
        __m128i v;
        memcpy(&v, m + 16 * i, 16);
        w |= (uint64_t) (uint16_t) _mm_movemask_epi8(v) << (16 * i);
    }
    return w;
#else
    uint64_t w = 0;
    for (int i = 0; i < 64; i++)
        w |= (uint64_t) (m[i] & 1) << i;
    return w;
#endif
}

/* Words of 64 rows from a predicate on row j of the run: the predicate
   fills 64 bytes (a loop the compiler vectorises when the predicate is a
   plain compare), packed into one word. */
#define S_WORDS(EXPR)                                                   \
    for (size_t w = 0; w < nw; w++) {                                   \
        size_t j0 = w * 64, jn = n - j0 < 64 ? n - j0 : 64;             \
        uint8_t m_[64];                                                 \
        if (jn == 64) {                                                 \
            for (size_t jj = 0; jj < 64; jj++) {                        \
                size_t j = j0 + jj;                                     \
                m_[jj] = (EXPR) ? 0xff : 0;                             \
            }                                                           \
        } else {                                                        \
            memset(m_, 0, sizeof m_);                                   \
            for (size_t jj = 0; jj < jn; jj++) {                        \
                size_t j = j0 + jj;                                     \
                m_[jj] = (EXPR) ? 0xff : 0;                             \
            }                                                           \
        }                                                               \
        out[w] = s_pack64(m_);                                          \
    }

/* Lists up to this long are compared value by value (S_WORDS_ANY), a
   loop the compiler vectorises; longer ones search the sorted list per
   row.  Measured (64K random int rows in L2, AVX2 clone, per row):
   in [1, 5, 7] 3.8 ns searching, 0.95 ns comparing; 16 values 5.9 vs
   3.5 ns; float in [2 values] 11 vs 0.8 ns. */
#define S_IN_SHORT 16

/* Words of 64 rows: row j matches when V[j] equals one of LIST[0..NV)
   (a null never does: no literal is the null mark); with NEG, rows that
   match none and satisfy LIVE (not null). */
#define S_WORDS_ANY(V, LIST, NV, NEG, LIVE)                              \
    for (size_t w = 0; w < nw; w++) {                                   \
        size_t j0 = w * 64, jn = n - j0 < 64 ? n - j0 : 64;             \
        uint8_t m_[64] = {0};                                           \
        for (uint32_t k = 0; k < (NV); k++) {                           \
            __typeof__((LIST)[0]) x_ = (LIST)[k];                       \
            for (size_t jj = 0; jj < jn; jj++)                          \
                m_[jj] |= (V)[j0 + jj] == x_ ? 0xff : 0;                \
        }                                                               \
        if (NEG)                                                        \
            for (size_t jj = 0; jj < jn; jj++) {                        \
                size_t j = j0 + jj;                                     \
                m_[jj] = (uint8_t) (~m_[jj] & ((LIVE) ? 0xff : 0));     \
            }                                                           \
        out[w] = s_pack64(m_);                                          \
    }

static bool
s_set_has(const uint32_t *ids, uint64_t a, uint64_t e, uint32_t x)
{
    for (uint64_t j = a; j < e; j++)
        if (ids[j] == x)
            return true;
    return false;
}

/* keyword[] contains over a block whose sets hold at most this many ids
   in all go through the counting pass (16 KiB of counts on the stack);
   larger ones (up to NF_KEYWORDS_MAX a row) test row by row. */
#define S_KWS_RUN 8192

/* Leaf over rows [r0, r0+n) (n <= NF_SUMMARY_ROWS) into out.  Cloned
   for AVX2 / AVX-512 (the baseline has no 64-bit compares): int and
   float compares 0.8-1.3 -> 0.3-0.4 ns a row (64K rows in L2). */
NF_TARGET_CLONES static void
s_leaf(const nf_filter_prog_t *p, const s_bnode_t *b, uint64_t r0, size_t n, uint64_t *out)
{
    size_t nw = (n + 63) / 64;
    nf_column_t c;
    if (nf_segment_column(p->seg, (size_t) b->fi, r0, n, &c) != 0) {
        memset(out, 0, nw * 8);
        return;
    }
    switch (b->type) {
    case NF_FIELD_INT:
    case NF_FIELD_DATETIME: {
        const int64_t *v = c.val;
        int64_t x = b->i;
        const int64_t nul = NF_INT_NULL;
        if (b->kind == N_ISNULL) {
            S_WORDS(v[j] == nul)
        } else if (b->kind == N_NOTNULL) {
            S_WORDS(v[j] != nul)
        } else if (b->kind == N_IN || b->kind == N_NOTIN) {
            bool in = b->kind == N_IN;
            if (b->nv <= S_IN_SHORT)
                S_WORDS_ANY(v, b->iv, b->nv, !in, v[j] != nul)
            else
                S_WORDS(v[j] != nul && s_in_i64(b->iv, b->nv, v[j]) == in)
        } else {
            switch (b->op) {
            case OP_EQ: S_WORDS(v[j] == x) break;
            case OP_NE: S_WORDS((v[j] != x) & (v[j] != nul)) break;
            case OP_LT: S_WORDS((v[j] < x) & (v[j] != nul)) break;
            case OP_LE: S_WORDS((v[j] <= x) & (v[j] != nul)) break;
            case OP_GT: S_WORDS(v[j] > x) break;
            case OP_GE: S_WORDS(v[j] >= x) break;
            }
        }
        break;
    }
    case NF_FIELD_FLOAT: {
        const double *v = c.val;
        double x = b->f;
        if (b->kind == N_ISNULL) {
            S_WORDS(isnan(v[j]))
        } else if (b->kind == N_NOTNULL) {
            S_WORDS(!isnan(v[j]))
        } else if (b->kind == N_IN || b->kind == N_NOTIN) {
            bool in = b->kind == N_IN;
            if (b->nv <= S_IN_SHORT)
                S_WORDS_ANY(v, b->fv, b->nv, !in, v[j] == v[j])
            else
                S_WORDS(!isnan(v[j]) && s_in_f64(b->fv, b->nv, v[j]) == in)
        } else {
            switch (b->op) {
            case OP_EQ: S_WORDS(v[j] == x) break;
            case OP_NE: S_WORDS((v[j] != x) & (v[j] == v[j])) break;
            case OP_LT: S_WORDS(v[j] < x) break;
            case OP_LE: S_WORDS(v[j] <= x) break;
            case OP_GT: S_WORDS(v[j] > x) break;
            case OP_GE: S_WORDS(v[j] >= x) break;
            }
        }
        break;
    }
    case NF_FIELD_BOOL: {
        const uint8_t *v = c.val;
        uint8_t x = (uint8_t) b->i;
        if (b->kind == N_ISNULL)
            S_WORDS(v[j] == NF_BOOL_NULL)
        else if (b->kind == N_NOTNULL)
            S_WORDS(v[j] != NF_BOOL_NULL)
        else if (b->op == OP_EQ)
            S_WORDS(v[j] == x)
        else
            S_WORDS((v[j] != x) & (v[j] != NF_BOOL_NULL))
        break;
    }
    case NF_FIELD_KEYWORD:
        if (b->kind == N_CMP && b->op == OP_EQ && !b->id)
            memset(out, 0, nw * 8);
        else
            nf_filter_kw_words(c.val, n, &b->kw, out);
        break;
    case NF_FIELD_KEYWORDS: {
        const uint64_t *end = c.end;
        const uint32_t *ids = c.ids;
        uint64_t start = c.start;
#define S_START(j) ((j) ? end[(j) - 1] & ~NF_KWS_NULL : start)
        if (b->kind == N_ISNULL) {
            S_WORDS((end[j] & NF_KWS_NULL) != 0)
        } else if (b->kind == N_NOTNULL) {
            S_WORDS((end[j] & NF_KWS_NULL) == 0)
        } else if ((b->kind == N_HAS || b->kind == N_HASANY
                    || (b->kind == N_HASALL && !b->missing && b->nids))
                   && (end[n - 1] & ~NF_KWS_NULL) - start <= S_KWS_RUN) {
            /* one pass over the block's ids counting the listed ones as it
               goes (cnt[i]: among the first i), then each row compares the
               count at its end with the count at its start: a set holds
               each id once, so it holds any listed id when the difference
               is > 0 and all of them when it is nids.  No branch depends
               on the data (the loop per row it replaces mispredicted on
               every set's length). */
            uint16_t cnt[S_KWS_RUN + 1];
            uint64_t nid = (end[n - 1] & ~NF_KWS_NULL) - start;
            const uint32_t *q = ids + start;
            unsigned need = b->kind == N_HASALL ? b->nids : 1;
            cnt[0] = 0;
            for (uint64_t i = 0; i < nid; i++)
                cnt[i + 1] = (uint16_t) (cnt[i] + s_in_ids(b, q[i]));
            uint64_t prev = 0;
            for (size_t w = 0; w < nw; w++) {
                size_t j0 = w * 64, jn = n - j0 < 64 ? n - j0 : 64;
                uint64_t word = 0;
                for (size_t jj = 0; jj < jn; jj++) {
                    uint64_t e = (end[j0 + jj] & ~NF_KWS_NULL) - start;
                    word |= (uint64_t) ((unsigned) (cnt[e] - cnt[prev]) >= need) << jj;
                    prev = e;
                }
                out[w] = word;
            }
        } else if (b->kind == N_HAS || b->kind == N_HASANY) {
            if (!b->nids) {
                memset(out, 0, nw * 8);
                break;
            }
            for (size_t w = 0; w < nw; w++) {
                size_t j0 = w * 64, jn = n - j0 < 64 ? n - j0 : 64;
                uint64_t word = 0;
                for (size_t jj = 0; jj < jn; jj++) {
                    size_t j = j0 + jj;
                    uint64_t e = end[j] & ~NF_KWS_NULL;
                    bool hit = false;
                    for (uint64_t q = S_START(j); q < e && !hit; q++)
                        hit = s_in_ids(b, ids[q]);
                    word |= (uint64_t) hit << jj;
                }
                out[w] = word;
            }
        } else if (b->kind == N_HASALL) {
            if (b->missing) {
                memset(out, 0, nw * 8);
                break;
            }
            for (size_t w = 0; w < nw; w++) {
                size_t j0 = w * 64, jn = n - j0 < 64 ? n - j0 : 64;
                uint64_t word = 0;
                for (size_t jj = 0; jj < jn; jj++) {
                    size_t j = j0 + jj;
                    if (end[j] & NF_KWS_NULL)
                        continue;
                    bool all = true;
                    for (uint32_t q = 0; q < b->nids && all; q++)
                        all = s_set_has(ids, S_START(j), end[j], b->ids[q]);
                    word |= (uint64_t) all << jj;
                }
                out[w] = word;
            }
        } else {
            memset(out, 0, nw * 8);
        }
#undef S_START
        break;
    }
    default:
        memset(out, 0, nw * 8);
        break;
    }
}

/* Scratch words per tree level: one block's words. */
#define S_BW (NF_SUMMARY_ROWS / 64)

static void
s_fill(uint64_t *out, size_t n, int tri)
{
    size_t nw = (n + 63) / 64;
    memset(out, tri == TRI_ALL ? 0xff : 0, nw * 8);
    if (tri == TRI_ALL && n % 64)
        out[nw - 1] = (1ull << (n % 64)) - 1;
}

/* Node id over rows [r0, r0+n) of summary block blk into out; scratch has
   room for the levels below. */
static void
s_eval(const nf_filter_prog_t *p, uint32_t id, uint64_t blk, uint64_t r0, size_t n,
       uint64_t *out, uint64_t *scratch)
{
    const s_bnode_t *b = &p->nodes[id];
    size_t nw = (n + 63) / 64;
    int tri = s_tri(p, id, blk);
    if (tri != TRI_SOME) {
        s_fill(out, n, tri);
        return;
    }
    if (b->kind == N_NOT) {
        s_eval(p, b->kids[0], blk, r0, n, out, scratch);
        for (size_t w = 0; w < nw; w++)
            out[w] = ~out[w];
        if (n % 64)
            out[nw - 1] &= (1ull << (n % 64)) - 1;
        return;
    }
    if (b->kind == N_AND || b->kind == N_OR) {
        bool and = b->kind == N_AND;
        s_fill(out, n, and ? TRI_ALL : TRI_NONE);
        for (uint32_t j = 0; j < b->nkids; j++) {
            int t = s_tri(p, b->kids[j], blk);
            if ((and && t == TRI_ALL) || (!and && t == TRI_NONE))
                continue;
            s_eval(p, b->kids[j], blk, r0, n, scratch, scratch + S_BW);
            uint64_t any = 0;
            for (size_t w = 0; w < nw; w++) {
                out[w] = and ? out[w] & scratch[w] : out[w] | scratch[w];
                any |= out[w];
            }
            if (and && !any)
                return;     /* nothing left to keep */
        }
        return;
    }
    s_leaf(p, b, r0, n, out);
}

uint64_t
nf_filter_eval(const nf_filter_prog_t *p, uint64_t row0, uint64_t n, uint64_t *words,
               uint64_t *blocks_read)
{
    uint64_t scratch[(2 * NF_FILTER_DEPTH_MAX + 8) * S_BW];
    uint64_t count = 0, read = 0;
    if (row0 > p->rows)
        n = 0;
    else if (n > p->rows - row0)
        n = p->rows - row0;
    for (uint64_t r = row0; r < row0 + n;) {
        uint64_t blk = r / NF_SUMMARY_ROWS;
        uint64_t e = (blk + 1) * NF_SUMMARY_ROWS;
        if (e > row0 + n)
            e = row0 + n;
        uint64_t *out = words + (r - row0) / 64;
        int tri = s_tri(p, p->root, blk);
        if (tri != TRI_SOME) {
            s_fill(out, (size_t) (e - r), tri);
        } else {
            read++;
            s_eval(p, p->root, blk, r, (size_t) (e - r), out, scratch);
        }
        count += nf_filter_popcount(out, (size_t) (e - r + 63) / 64);
        r = e;
    }
    if (blocks_read)
        *blocks_read = read;
    return count;
}
