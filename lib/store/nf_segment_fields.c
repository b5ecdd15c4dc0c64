/*  nf_segment_fields: typed fields of a segment (see nf_segment.h).

    On disk (same format version 2; the commit slot's incompatible feature
    bit S_FEAT_FIELDS says the file table holds more than the 8 files, so a
    build without fields refuses such a segment instead of misreading it):

      fields.nfs      file-table entry 8.  64-byte header ("NFSEGFLD"), then
                      one 64-byte record per field, in the order they were
                      added: u8 type (nf_ftype_t), u8 policy, u8 files,
                      u8 0, u32 first file-table entry, 56 bytes of name
                      (NUL-padded).  A field's files are consecutive entries.
      f.NAME.val      int, float, datetime: 8 bytes per row (int64 or
                      double, NF_INT_NULL / NaN = null); bool: 1 byte
                      (0, 1, 0xff = null); keyword: u32 dictionary id per
                      row (0 = null).
      f.NAME.dict     keyword, keyword[]: the dictionary, each keyword's
                      bytes and a NUL, in the order first seen (id 1, 2, ..).
      f.NAME.off      keyword[]: u64 per row, the end of its set in .ids
                      (bit 63 set: null); the start is the previous end.
      f.NAME.ids      keyword[]: u32 dictionary ids, each row's set sorted.
    Every file has the 64-byte header of the small files ("NFSEGCOL") and is
    committed, checksummed, trimmed and kept aside like the others
    (nf_segment.c); a field added to a segment with rows gets one null per
    existing row in the commit that adds it.

    Nulls are marks inside the values rather than a separate bitmap: every
    file only ever grows, a bitmap would have its last byte rewritten.

    In RAM: the schema, each dictionary (read at open: ids -> bytes and a
    hash table), and the block summaries (NF_SUMMARY_ROWS rows: min, max,
    nulls, keyword mask), built by one pass over the columns at open and
    kept up to date by append.  The columns themselves are mapped; under the
    memory policy they are touched at open and never released.

    Repair: nf_seg_fields_kept / _kept_row check and decode the column bytes
    a damaged commit left in recovered/ (nf_segment_repair.c re-commits the
    rows with them; keywords as strings, interned again).                  */
#include "nf_segment_impl.h"
#include "nf_error.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define S_REC 64u
#define S_REC_NAME 56u

typedef struct {
    char *buf;              /* keywords, each with its NUL */
    uint64_t len, cap;
    uint64_t *off;          /* start of keyword id-1 in buf */
    uint32_t n, ncap;
    uint32_t *tab;          /* open addressing: id, 0 = empty */
    uint64_t mask;
} s_dict_t;

struct nf_seg_field {
    nf_field_def_t def;
    int k0, nk;             /* first file-table entry, how many */
    int kval;               /* fixed-width values (keyword[]: .off) */
    int kdict, kids;        /* -1 when none */
    s_dict_t dict;
    nf_summary_t *sum;      /* summaries of blocks 0 .. nsum-1 */
    uint64_t nsum, sumcap;
};
typedef struct nf_seg_field s_field_t;

/* ---------------------------------------------------------- dictionary */

static uint64_t
s_khash(const char *p, size_t n)
{
    return s_fnv1a(p, n) * 0x9e3779b97f4a7c15ull;
}

static int
s_dict_rehash(s_dict_t *d, uint64_t want)
{
    uint64_t size = 64;
    while (size < want * 2)
        size *= 2;
    uint32_t *t = calloc(size, sizeof *t);
    if (!t)
        return nf_error_set(NF_ENOMEM, "out of memory for a keyword dictionary");
    free(d->tab);
    d->tab = t;
    d->mask = size - 1;
    for (uint32_t id = 1; id <= d->n; id++) {
        const char *k = d->buf + d->off[id - 1];
        uint64_t i = s_khash(k, strlen(k)) & d->mask;
        while (t[i])
            i = (i + 1) & d->mask;
        t[i] = id;
    }
    return 0;
}

static uint32_t
s_dict_find(const s_dict_t *d, const char *k, size_t len)
{
    if (!d->tab)
        return 0;
    for (uint64_t i = s_khash(k, len) & d->mask; d->tab[i]; i = (i + 1) & d->mask) {
        const char *e = d->buf + d->off[d->tab[i] - 1];
        if (!strncmp(e, k, len) && e[len] == '\0')
            return d->tab[i];
    }
    return 0;
}

/* Add keyword k (len bytes, no NUL inside) and return its id, or 0 on
   out of memory. */
static uint32_t
s_dict_add(s_dict_t *d, const char *k, size_t len)
{
    if (d->n >= UINT32_MAX - 1)
        return 0;
    if (d->len + len + 1 > d->cap) {
        uint64_t nc = d->cap ? d->cap * 2 : 4096;
        while (nc < d->len + len + 1)
            nc *= 2;
        char *nb = realloc(d->buf, nc);
        if (!nb)
            return 0;
        d->buf = nb;
        d->cap = nc;
    }
    if (d->n + 1 > d->ncap) {
        uint32_t nc = d->ncap ? (d->ncap > UINT32_MAX / 2 ? UINT32_MAX : d->ncap * 2) : 64;
        uint64_t *no = realloc(d->off, (size_t) nc * sizeof *no);
        if (!no)
            return 0;
        d->off = no;
        d->ncap = nc;
    }
    if ((d->n + 1) * 2 > d->mask && s_dict_rehash(d, (uint64_t) d->n + 1 + d->n / 2) != 0)
        return 0;
    d->off[d->n] = d->len;
    memcpy(d->buf + d->len, k, len);
    d->buf[d->len + len] = '\0';
    d->len += len + 1;
    uint32_t id = ++d->n;
    uint64_t i = s_khash(k, len) & d->mask;
    while (d->tab[i])
        i = (i + 1) & d->mask;
    d->tab[i] = id;
    return id;
}

/* Forget keywords after the first n (and their bytes): undo of a failed
   append. */
static void
s_dict_truncate(s_dict_t *d, uint32_t n)
{
    if (n >= d->n)
        return;
    d->len = d->off[n];
    d->n = n;
    s_dict_rehash(d, d->n + 1);
}

static void
s_dict_free(s_dict_t *d)
{
    free(d->buf);
    free(d->off);
    free(d->tab);
    memset(d, 0, sizeof *d);
}

/* ------------------------------------------------------------- schema */

static int
s_nfiles_of(nf_ftype_t t)
{
    return t == NF_FIELD_KEYWORDS ? 3 : t == NF_FIELD_KEYWORD ? 2 : 1;
}

static uint64_t
s_width_of(nf_ftype_t t)
{
    switch (t) {
    case NF_FIELD_BOOL: return 1;
    case NF_FIELD_KEYWORD: return 4;
    default: return 8;
    }
}

static void
s_field_layout(s_field_t *f, int k0)
{
    f->k0 = k0;
    f->nk = s_nfiles_of(f->def.type);
    f->kval = k0;
    f->kdict = f->def.type == NF_FIELD_KEYWORD || f->def.type == NF_FIELD_KEYWORDS ? k0 + 1 : -1;
    f->kids = f->def.type == NF_FIELD_KEYWORDS ? k0 + 2 : -1;
}

static const char *
s_suffix(const s_field_t *f, int k)
{
    if (k == f->kval)
        return f->def.type == NF_FIELD_KEYWORDS ? "off" : "val";
    return k == f->kdict ? "dict" : "ids";
}

/* Name the files of field f in s->fname. */
static int
s_name_files(nf_segment_t *s, const s_field_t *f)
{
    for (int k = f->k0; k < f->k0 + f->nk; k++) {
        char name[NF_FIELD_NAME_MAX + 16];
        snprintf(name, sizeof name, "f.%s.%s", f->def.name, s_suffix(f, k));
        free(s->fname[k]);
        if (!(s->fname[k] = strdup(name)))
            return nf_error_set(NF_ENOMEM, "%s: out of memory", s->dir);
    }
    return 0;
}

static const s_field_t *
s_field_of(const nf_segment_t *s, int k)
{
    for (size_t i = 0; i < s->nfields; i++)
        if (k >= s->fields[i].k0 && k < s->fields[i].k0 + s->fields[i].nk)
            return &s->fields[i];
    return NULL;
}

uint64_t
nf_seg_col_width(const nf_segment_t *s, int k)
{
    const s_field_t *f = s_field_of(s, k);
    if (!f || k == f->kdict)
        return 0;
    if (k == f->kids)
        return 4;
    return f->def.type == NF_FIELD_KEYWORDS ? 8 : s_width_of(f->def.type);
}

bool
nf_seg_col_memory(const nf_segment_t *s, int k)
{
    const s_field_t *f = s_field_of(s, k);
    return f && f->def.policy == NF_MEM_MEMORY;
}

int
nf_seg_fields_load(nf_segment_t *s)
{
    if (!s->fname[S_SCHEMA] && !(s->fname[S_SCHEMA] = strdup("fields.nfs")))
        return nf_error_set(NF_ENOMEM, "%s: out of memory", s->dir);
    uint64_t len = s->bytes[S_SCHEMA];
    if (len % S_REC || len / S_REC > NF_FIELDS_MAX)
        return s_serr(s, S_SCHEMA, NF_ECORRUPT, "%llu bytes of records: not a whole number "
                      "of %u-byte records, or more than %d fields", (unsigned long long) len,
                      S_REC, NF_FIELDS_MAX);
    size_t n = (size_t) (len / S_REC);
    unsigned char *buf = malloc(len + 1);
    s->fields = calloc(n + 1, sizeof *s->fields);
    int rc = 0;
    if (!buf || !s->fields) {
        rc = nf_error_set(NF_ENOMEM, "%s: out of memory", s->dir);
        goto done;
    }
    if (nf_seg_pread_all(s->f[S_SCHEMA].fd, buf, len, S_SMALL_HDR) != (ssize_t) len) {
        rc = s_serr(s, S_SCHEMA, NF_EIO, "read: %s", strerror(errno));
        goto done;
    }
    int next = S_COL0;
    for (size_t i = 0; i < n && !rc; i++) {
        const unsigned char *r = buf + i * S_REC;
        s_field_t *f = &s->fields[i];
        uint32_t k0;
        memcpy(&k0, r + 4, 4);
        size_t nl = strnlen((const char *) r + 8, S_REC_NAME);
        if (r[0] < NF_FIELD_INT || r[0] > NF_FIELD_DATETIME || r[1] > NF_MEM_MEMORY
            || nl >= S_REC_NAME || nf_field_name_check((const char *) r + 8, nl) != 0) {
            rc = s_serr(s, S_SCHEMA, NF_ECORRUPT, "record %zu: bad type, policy or name", i);
            break;
        }
        memcpy(f->def.name, r + 8, nl);
        f->def.type = (nf_ftype_t) r[0];
        f->def.policy = (nf_mempolicy_t) r[1];
        s_field_layout(f, next);
        if (r[2] != f->nk || k0 != (uint32_t) next || next + f->nk > (int) s->nfiles) {
            rc = s_serr(s, S_SCHEMA, NF_ECORRUPT, "record %zu (field '%s'): files %u..%u do "
                        "not follow the table (%u entries)", i, f->def.name, k0, k0 + r[2],
                        s->nfiles);
            break;
        }
        for (size_t j = 0; j < i; j++)
            if (!strcmp(s->fields[j].def.name, f->def.name))
                rc = s_serr(s, S_SCHEMA, NF_ECORRUPT, "field '%s' twice", f->def.name);
        next += f->nk;
        s->nfields = i + 1;
        if (!rc)
            rc = s_name_files(s, f);
    }
    if (!rc && s->nfiles > S_NFILES && next != (int) s->nfiles)
        rc = s_serr(s, S_SCHEMA, NF_ECORRUPT, "its fields use %d file-table entries, the "
                    "commit has %u", next, s->nfiles);
done:
    free(buf);
    return rc;
}

/* Read field f's dictionary into RAM. */
static int
s_load_dict(nf_segment_t *s, s_field_t *f)
{
    uint64_t len = s->bytes[f->kdict];
    char *buf = malloc(len + 1);
    if (!buf)
        return nf_error_set(NF_ENOMEM, "%s: out of memory for %s", s->dir, s_kname(s, f->kdict));
    if (len && nf_seg_pread_all(s->f[f->kdict].fd, buf, len, S_SMALL_HDR) != (ssize_t) len) {
        free(buf);
        return s_serr(s, f->kdict, NF_EIO, "read: %s", strerror(errno));
    }
    int rc = 0;
    for (uint64_t p = 0; p < len && !rc;) {
        const char *e = memchr(buf + p, '\0', len - p);
        uint64_t kl = e ? (uint64_t) (e - (buf + p)) : len - p;
        if (!e || kl == 0 || kl > NF_KEYWORD_MAX)
            rc = s_serr(s, f->kdict, NF_ECORRUPT, "keyword %u at byte %llu: %s", f->dict.n + 1,
                        (unsigned long long) p, !e ? "no end" : "bad length");
        else if (s_dict_find(&f->dict, buf + p, kl))
            rc = s_serr(s, f->kdict, NF_ECORRUPT, "keyword '%.64s' twice", buf + p);
        else if (!s_dict_add(&f->dict, buf + p, kl))
            rc = nf_error_set(NF_ENOMEM, "%s: out of memory", s->dir);
        p += kl + 1;
    }
    free(buf);
    return rc;
}

static int
s_grow_sum(s_field_t *f, uint64_t blocks)
{
    if (blocks <= f->sumcap)
        return 0;
    uint64_t nc = f->sumcap ? f->sumcap * 2 : 64;
    while (nc < blocks)
        nc *= 2;
    nf_summary_t *n = realloc(f->sum, nc * sizeof *n);
    if (!n)
        return nf_error_set(NF_ENOMEM, "out of memory for field summaries");
    f->sum = n;
    f->sumcap = nc;
    return 0;
}

static void
s_sum_reset(nf_summary_t *m)
{
    *m = (nf_summary_t) {.imin = INT64_MAX, .imax = INT64_MIN, .fmin = INFINITY,
                         .fmax = -INFINITY};
}

/* Fold rows [r0, r1) of field f into the summaries: v (and end) hold their
   values from row r0 on, ids the keyword[] ids from id number ids_base on,
   start0 is where row r0's set starts.  The summaries must have room. */
static void
s_sum_rows(s_field_t *f, const void *vals, const uint64_t *end0, const uint32_t *ids0,
           uint64_t ids_base, uint64_t start0, uint64_t r0, uint64_t r1)
{
    for (uint64_t r = r0; r < r1; r++) {
        uint64_t i = r - r0;
        uint64_t b = r / NF_SUMMARY_ROWS;
        if (b >= f->nsum) {
            s_sum_reset(&f->sum[b]);
            f->nsum = b + 1;
        }
        nf_summary_t *m = &f->sum[b];
        m->rows++;
        bool null = false;
        switch (f->def.type) {
        case NF_FIELD_INT:
        case NF_FIELD_DATETIME: {
            int64_t x = ((const int64_t *) vals)[i];
            if ((null = x == NF_INT_NULL))
                break;
            m->imin = x < m->imin ? x : m->imin;
            m->imax = x > m->imax ? x : m->imax;
            break;
        }
        case NF_FIELD_FLOAT: {
            double x = ((const double *) vals)[i];
            if ((null = isnan(x)))
                break;
            m->fmin = x < m->fmin ? x : m->fmin;
            m->fmax = x > m->fmax ? x : m->fmax;
            break;
        }
        case NF_FIELD_BOOL: {
            uint8_t x = ((const uint8_t *) vals)[i];
            if ((null = x == NF_BOOL_NULL))
                break;
            m->imin = x < m->imin ? x : m->imin;
            m->imax = x > m->imax ? x : m->imax;
            break;
        }
        case NF_FIELD_KEYWORD: {
            uint32_t x = ((const uint32_t *) vals)[i];
            if (!(null = x == 0))
                m->kwmask |= 1ull << (x % 64);
            break;
        }
        case NF_FIELD_KEYWORDS: {
            uint64_t e = end0[i], st = i ? end0[i - 1] & ~NF_KWS_NULL : start0;
            if ((null = (e & NF_KWS_NULL) != 0))
                break;
            for (uint64_t j = st; j < e; j++)
                m->kwmask |= 1ull << (ids0[j - ids_base] % 64);
            break;
        }
        default:
            break;
        }
        m->nulls += null;
    }
}

static const char *
s_col(const nf_segment_t *s, int k)
{
    return s->f[k].map + S_SMALL_HDR;
}

/* Rows per step of the pass at open: its column pages are released after
   each step (mmap policy), so opening costs constant memory whatever the
   rows (a multiple of NF_SUMMARY_ROWS). */
#define S_OPEN_STEP (64u * NF_SUMMARY_ROWS)

/* Drop the mapped pages of file k over body bytes [lo, hi) (whole pages
   inside, or through the end of the mapping when last). */
static void
s_drop_pages(const nf_segment_t *s, int k, uint64_t lo, uint64_t hi, bool last)
{
    const s_file_t *fl = &s->f[k];
    if (!fl->map)
        return;
    uint64_t a = (S_SMALL_HDR + lo) & ~(uint64_t) (S_PAGE - 1);
    uint64_t b = last ? fl->map_len : (S_SMALL_HDR + hi) & ~(uint64_t) (S_PAGE - 1);
    if (b > fl->map_len)
        b = fl->map_len & ~(uint64_t) (S_PAGE - 1);
    if (b > a)
        madvise(fl->map + a, b - a, MADV_DONTNEED);
}

/* Check rows [r0, r1) of field f (ids within the dictionary, keyword[]
   offsets in order) and fold them into the summaries. */
static int
s_open_rows(nf_segment_t *s, s_field_t *f, uint64_t r0, uint64_t r1, uint64_t *last)
{
    uint64_t w = nf_seg_col_width(s, f->kval);
    const char *col = s_col(s, f->kval);
    const uint64_t *end = NULL;
    const uint32_t *ids = NULL;
    uint64_t start0 = *last;
    if (f->def.type == NF_FIELD_KEYWORDS) {
        end = (const uint64_t *) col;
        ids = (const uint32_t *) s_col(s, f->kids);
        uint64_t nids = s->bytes[f->kids] / 4;
        for (uint64_t r = r0; r < r1; r++) {
            uint64_t e = end[r] & ~NF_KWS_NULL;
            if (e < *last || e > nids || e - *last > NF_KEYWORDS_MAX)
                return s_serr(s, f->kval, NF_ECORRUPT, "row %llu: end %llu out of order or "
                              "past the %llu ids", (unsigned long long) r,
                              (unsigned long long) e, (unsigned long long) nids);
            for (uint64_t j = *last; j < e; j++)
                if (ids[j] == 0 || ids[j] > f->dict.n)
                    return s_serr(s, f->kids, NF_ECORRUPT, "id %llu: %u is not in the "
                                  "dictionary (%u keywords)", (unsigned long long) j, ids[j],
                                  f->dict.n);
            *last = e;
        }
    } else if (f->def.type == NF_FIELD_KEYWORD) {
        const uint32_t *v = (const uint32_t *) col;
        for (uint64_t r = r0; r < r1; r++)
            if (v[r] > f->dict.n)
                return s_serr(s, f->kval, NF_ECORRUPT, "row %llu: id %u is not in the "
                              "dictionary (%u keywords)", (unsigned long long) r, v[r],
                              f->dict.n);
    }
    s_sum_rows(f, col + r0 * w, end ? end + r0 : NULL, ids, 0, start0, r0, r1);
    if (f->def.policy == NF_MEM_MMAP) {
        bool fin = r1 == s->rows;
        s_drop_pages(s, f->kval, r0 * w, r1 * w, fin);
        if (f->kids >= 0)
            s_drop_pages(s, f->kids, start0 * 4, *last * 4, fin);
    }
    return 0;
}

int
nf_seg_fields_open(nf_segment_t *s)
{
    int rc = 0;
    for (size_t i = 0; i < s->nfields && !rc; i++) {
        s_field_t *f = &s->fields[i];
        uint64_t w = nf_seg_col_width(s, f->kval);
        if (s->bytes[f->kval] != s->rows * w)
            return s_serr(s, f->kval, NF_ECORRUPT, "%llu bytes for %llu rows of %llu bytes",
                          (unsigned long long) s->bytes[f->kval], (unsigned long long) s->rows,
                          (unsigned long long) w);
        if (f->kdict >= 0 && (rc = s_load_dict(s, f)))
            return rc;
        if (f->kids >= 0 && s->bytes[f->kids] % 4)
            return s_serr(s, f->kids, NF_ECORRUPT, "not a whole number of ids");
        if ((rc = s_grow_sum(f, s->rows / NF_SUMMARY_ROWS + 1)))
            return rc;
        f->nsum = 0;
        /* one pass, in steps whose pages leave resident memory after them
           (mmap policy; the memory policy keeps them) */
        uint64_t last = 0;
        for (uint64_t r0 = 0; r0 < s->rows && !rc; r0 += S_OPEN_STEP)
            rc = s_open_rows(s, f, r0, s->rows - r0 < S_OPEN_STEP ? s->rows : r0 + S_OPEN_STEP,
                             &last);
        if (!rc && f->kids >= 0 && last != s->bytes[f->kids] / 4)
            rc = s_serr(s, f->kids, NF_ECORRUPT, "%llu ids, the rows use %llu",
                        (unsigned long long) (s->bytes[f->kids] / 4), (unsigned long long) last);
    }
    return rc;
}

void
nf_seg_fields_free(nf_segment_t *s)
{
    for (size_t i = 0; s->fields && i < s->nfields; i++) {
        s_dict_free(&s->fields[i].dict);
        free(s->fields[i].sum);
    }
    free(s->fields);
    s->fields = NULL;
    s->nfields = 0;
}

/* ------------------------------------------------------------- access */

size_t
nf_segment_nfields(const nf_segment_t *s)
{
    return s ? s->nfields : 0;
}

const nf_field_def_t *
nf_segment_field(const nf_segment_t *s, size_t i)
{
    return s && i < s->nfields ? &s->fields[i].def : NULL;
}

int
nf_segment_field_find(const nf_segment_t *s, const char *name, size_t len)
{
    for (size_t i = 0; s && i < s->nfields; i++)
        if (strlen(s->fields[i].def.name) == len && !memcmp(s->fields[i].def.name, name, len))
            return (int) i;
    return -1;
}

int
nf_segment_column(nf_segment_t *s, size_t i, uint64_t row0, uint64_t n, nf_column_t *out)
{
    if (!s || i >= s->nfields || row0 > s->rows || n > s->rows - row0 || !out)
        return nf_error_set(NF_EINVAL, "nf_segment_column: field %zu rows %llu+%llu out of "
                            "range", i, (unsigned long long) row0, (unsigned long long) n);
    const s_field_t *f = &s->fields[i];
    memset(out, 0, sizeof *out);
    out->type = f->def.type;
    uint64_t w = nf_seg_col_width(s, f->kval);
    out->val = s_col(s, f->kval) + row0 * w;
    if (f->def.type == NF_FIELD_KEYWORDS) {
        const uint64_t *end = (const uint64_t *) s_col(s, f->kval);
        out->end = end + row0;
        out->start = row0 ? end[row0 - 1] & ~NF_KWS_NULL : 0;
        out->ids = (const uint32_t *) s_col(s, f->kids);
    }
    return 0;
}

uint32_t
nf_segment_keyword_count(const nf_segment_t *s, size_t i)
{
    return s && i < s->nfields ? s->fields[i].dict.n : 0;
}

const char *
nf_segment_keyword(const nf_segment_t *s, size_t i, uint32_t id)
{
    if (!s || i >= s->nfields || id == 0 || id > s->fields[i].dict.n)
        return NULL;
    return s->fields[i].dict.buf + s->fields[i].dict.off[id - 1];
}

uint32_t
nf_segment_keyword_id(const nf_segment_t *s, size_t i, const char *kw, size_t len)
{
    if (!s || i >= s->nfields || s->fields[i].kdict < 0)
        return 0;
    return s_dict_find(&s->fields[i].dict, kw, len);
}

const nf_summary_t *
nf_segment_summary(const nf_segment_t *s, size_t i, uint64_t block)
{
    if (!s || i >= s->nfields || block >= s->fields[i].nsum)
        return NULL;
    return &s->fields[i].sum[block];
}

/* Release rows [row0, row0+n) of the mmap-policy columns (whole pages
   from the one holding row0 to the last one ending by row0+n, or all when
   the range ends the data). */
void nf_seg_fields_release(nf_segment_t *s, uint64_t row0, uint64_t n);

void
nf_seg_fields_release(nf_segment_t *s, uint64_t row0, uint64_t n)
{
    if (n == 0 || row0 + n > s->rows)
        return;
    bool last = row0 + n >= s->rows;
    for (size_t i = 0; i < s->nfields; i++) {
        const s_field_t *f = &s->fields[i];
        if (f->def.policy != NF_MEM_MMAP)
            continue;
        for (int k = f->k0; k < f->k0 + f->nk; k++) {
            uint64_t w = nf_seg_col_width(s, k);
            if (!w || !s->f[k].map)
                continue;
            uint64_t lo, hi;
            if (k == f->kids) {
                const uint64_t *end = (const uint64_t *) s_col(s, f->kval);
                lo = S_SMALL_HDR + (row0 ? (end[row0 - 1] & ~NF_KWS_NULL) : 0) * 4;
                hi = S_SMALL_HDR + (end[row0 + n - 1] & ~NF_KWS_NULL) * 4;
            } else {
                lo = S_SMALL_HDR + row0 * w;
                hi = S_SMALL_HDR + (row0 + n) * w;
            }
            uint64_t a = lo & ~(uint64_t) (S_PAGE - 1);
            uint64_t b = last ? s->f[k].map_len : hi & ~(uint64_t) (S_PAGE - 1);
            if (b > s->f[k].map_len)
                b = s->f[k].map_len & ~(uint64_t) (S_PAGE - 1);
            if (b > a)
                madvise(s->f[k].map + a, b - a, MADV_DONTNEED);
        }
    }
}

/* Touch the memory-policy columns (open). */
void nf_seg_fields_warm(nf_segment_t *s);

void
nf_seg_fields_warm(nf_segment_t *s)
{
    volatile unsigned char sink = 0;
    for (size_t i = 0; i < s->nfields; i++) {
        const s_field_t *f = &s->fields[i];
        for (int k = f->k0; k < f->k0 + f->nk; k++)
            if ((f->def.policy == NF_MEM_MEMORY || s->opts.warmup) && s->f[k].map)
                for (uint64_t off = 0; off < s->f[k].map_len; off += S_PAGE)
                    sink ^= (unsigned char) s->f[k].map[off];
    }
    (void) sink;
}

static size_t
s_json_str(const char *v, char *buf, size_t size, size_t at)
{
    static const char hex[] = "0123456789abcdef";
#define S_PUT(c) do { if (at + 1 < size) buf[at] = (c); at++; } while (0)
    S_PUT('"');
    for (const unsigned char *p = (const unsigned char *) v; *p; p++) {
        if (*p == '"' || *p == '\\') {
            S_PUT('\\');
            S_PUT((char) *p);
        } else if (*p < 0x20) {
            S_PUT('\\');
            S_PUT('u');
            S_PUT('0');
            S_PUT('0');
            S_PUT(hex[*p >> 4]);
            S_PUT(hex[*p & 15]);
        } else {
            S_PUT((char) *p);
        }
    }
    S_PUT('"');
#undef S_PUT
    if (size)
        buf[at < size ? at : size - 1] = '\0';
    return at;
}

size_t
nf_segment_value_json(nf_segment_t *s, size_t i, uint64_t row, char *buf, size_t size)
{
    char tmp[64];
    if (size)
        buf[0] = '\0';
    if (!s || i >= s->nfields || row >= s->rows)
        return (size_t) snprintf(buf, size, "null");
    const s_field_t *f = &s->fields[i];
    const char *col = s_col(s, f->kval);
    switch (f->def.type) {
    case NF_FIELD_INT: {
        int64_t x = ((const int64_t *) col)[row];
        return x == NF_INT_NULL ? (size_t) snprintf(buf, size, "null")
                                : (size_t) snprintf(buf, size, "%lld", (long long) x);
    }
    case NF_FIELD_DATETIME: {
        int64_t x = ((const int64_t *) col)[row];
        if (x == NF_INT_NULL)
            return (size_t) snprintf(buf, size, "null");
        nf_datetime_format(x, tmp, sizeof tmp);
        return (size_t) snprintf(buf, size, "\"%s\"", tmp);
    }
    case NF_FIELD_FLOAT: {
        double x = ((const double *) col)[row];
        return isnan(x) ? (size_t) snprintf(buf, size, "null")
                        : (size_t) snprintf(buf, size, "%.17g", x);
    }
    case NF_FIELD_BOOL: {
        uint8_t x = ((const uint8_t *) col)[row];
        return (size_t) snprintf(buf, size, "%s", x == NF_BOOL_NULL ? "null" : x ? "true"
                                                                                : "false");
    }
    case NF_FIELD_KEYWORD: {
        uint32_t x = ((const uint32_t *) col)[row];
        if (!x || x > f->dict.n)
            return (size_t) snprintf(buf, size, "null");
        return s_json_str(f->dict.buf + f->dict.off[x - 1], buf, size, 0);
    }
    case NF_FIELD_KEYWORDS: {
        const uint64_t *end = (const uint64_t *) col;
        const uint32_t *ids = (const uint32_t *) s_col(s, f->kids);
        if (end[row] & NF_KWS_NULL)
            return (size_t) snprintf(buf, size, "null");
        uint64_t st = row ? end[row - 1] & ~NF_KWS_NULL : 0, at = 0;
        if (size > 1)
            buf[0] = '[';
        at = 1;
        for (uint64_t j = st; j < end[row]; j++) {
            if (j > st) {
                if (at + 1 < size)
                    buf[at] = ',';
                at++;
            }
            uint32_t id = ids[j];
            at = s_json_str(id && id <= f->dict.n ? f->dict.buf + f->dict.off[id - 1] : "",
                            buf, size, at);
        }
        if (at + 1 < size)
            buf[at] = ']';
        at++;
        if (size)
            buf[at < size ? at : size - 1] = '\0';
        return at;
    }
    default:
        return (size_t) snprintf(buf, size, "null");
    }
}

/* ------------------------------------------------------------- schema change */

static int
s_create_file(nf_segment_t *s, int k)
{
    char path[4096], hdr[S_SMALL_HDR] = {0};
    if (!nf_seg_path(s->dir, s->fname[k], path, sizeof path))
        return nf_error_set(NF_EINVAL, "%s: path too long", s->dir);
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return nf_error_set(NF_EIO, "%s: %s", path, strerror(errno));
    uint32_t v = NF_SEGMENT_VERSION;
    memcpy(hdr, s_kmagic(k), 8);
    memcpy(hdr + 8, &v, 4);
    if (nf_seg_pwrite_all(fd, hdr, sizeof hdr, 0) != 0 || fdatasync(fd) != 0) {
        int err = errno;
        close(fd);
        return nf_error_set(NF_EIO, "%s: %s", path, strerror(err));
    }
    s->f[k].fd = fd;
    s->f[k].cap = S_SMALL_HDR;
    s->bytes[k] = s->prev[k] = 0;
    s->tail[k] = XXH3_64bits(NULL, 0);
    if (s->st[k])
        XXH3_64bits_reset(s->st[k]);
    return 0;
}

/* Forget files [k0, k1) a failed schema change created. */
static void
s_drop_files(nf_segment_t *s, int k0, int k1)
{
    for (int k = k0; k < k1; k++) {
        char path[4096];
        if (s->f[k].map)
            munmap(s->f[k].map, s->f[k].map_len);
        s->f[k].map = NULL;
        s->f[k].map_len = 0;
        if (s->f[k].fd >= 0)
            close(s->f[k].fd);
        s->f[k].fd = -1;
        if (s->fname[k] && nf_seg_path(s->dir, s->fname[k], path, sizeof path))
            unlink(path);
        free(s->fname[k]);
        s->fname[k] = NULL;
        s->bytes[k] = s->prev[k] = 0;
    }
}

static const char *
s_policy_name(nf_mempolicy_t p)
{
    return p == NF_MEM_MEMORY ? "memory" : "mmap";
}

int
nf_segment_set_schema(nf_segment_t *s, const nf_field_def_t *defs, size_t n)
{
    if (!s || (n && !defs))
        return nf_error_set(NF_EINVAL, "nf_segment_set_schema: NULL argument");
    if (s->opts.readonly)
        return nf_error_set(NF_EINVAL, "%s: set schema: the segment is open read-only", s->dir);
    int src = nf_seg_settle(s);     /* a pipelined append first (it may commit nothing) */
    if (src)
        return src;
    if (n > NF_FIELDS_MAX)
        return nf_error_set(NF_EINVAL, "%s: %zu fields, at most %d (NF_FIELDS_MAX)", s->dir, n,
                            NF_FIELDS_MAX);
    for (size_t i = 0; i < n; i++) {
        int rc = nf_field_name_check(defs[i].name, strnlen(defs[i].name,
                                                           NF_FIELD_NAME_MAX + 1));
        if (rc)
            return rc;
        if (defs[i].type < NF_FIELD_INT || defs[i].type > NF_FIELD_DATETIME)
            return nf_error_set(NF_EINVAL, "field '%s': unknown type %d", defs[i].name,
                                (int) defs[i].type);
        for (size_t j = 0; j < i; j++)
            if (!strcmp(defs[i].name, defs[j].name))
                return nf_error_set(NF_EINVAL, "field '%s' declared twice", defs[i].name);
    }
    for (size_t i = 0; i < s->nfields; i++) {
        const nf_field_def_t *have = &s->fields[i].def;
        size_t j = 0;
        while (j < n && strcmp(defs[j].name, have->name))
            j++;
        if (j == n)
            return nf_error_set(NF_EINVAL, "%s: field '%s' (%s) is in the segment but not "
                                "declared: fields cannot be removed", s->dir, have->name,
                                nf_field_type_name(have->type));
        if (defs[j].type != have->type)
            return nf_error_set(NF_EINVAL, "%s: field '%s' is %s in the segment, declared %s: "
                                "a field's type cannot change", s->dir, have->name,
                                nf_field_type_name(have->type),
                                nf_field_type_name(defs[j].type));
        if (defs[j].policy != have->policy)
            return nf_error_set(NF_EINVAL, "%s: field '%s' has memory policy %s in the "
                                "segment, declared %s", s->dir, have->name,
                                s_policy_name(have->policy), s_policy_name(defs[j].policy));
    }
    size_t add = n - s->nfields;
    if (add == 0)
        return 0;
    int first = s->nfiles > S_NFILES ? (int) s->nfiles : S_COL0, next = first;
    for (size_t j = 0; j < n; j++)
        if (nf_segment_field_find(s, defs[j].name, strlen(defs[j].name)) < 0)
            next += s_nfiles_of(defs[j].type);
    if (next > S_TABLE_MAX)
        return nf_error_set(NF_EINVAL, "%s: these fields need %d file-table entries, a "
                            "segment has %d", s->dir, next, S_TABLE_MAX);
    s_field_t *nfld = realloc(s->fields, (n + 1) * sizeof *nfld);
    if (!nfld)
        return nf_error_set(NF_ENOMEM, "%s: out of memory", s->dir);
    s->fields = nfld;
    size_t old = s->nfields;
    int rc = nf_seg_states(s);
    bool schema_new = s->nfiles == S_NFILES;
    if (!rc && schema_new) {
        if (!s->fname[S_SCHEMA] && !(s->fname[S_SCHEMA] = strdup("fields.nfs")))
            rc = nf_error_set(NF_ENOMEM, "%s: out of memory", s->dir);
        if (!rc)
            rc = s_create_file(s, S_SCHEMA);
    }
    unsigned char *recs = calloc(add, S_REC);
    void *nulls[S_TABLE_MAX] = {0};
    nf_seg_batch_t b;
    memset(&b, 0, sizeof b);
    if (!recs && !rc)
        rc = nf_error_set(NF_ENOMEM, "%s: out of memory", s->dir);
    int k = first;
    size_t a = 0;
    for (size_t j = 0; j < n && !rc; j++) {
        if (nf_segment_field_find(s, defs[j].name, strlen(defs[j].name)) >= 0)
            continue;
        s_field_t *f = &s->fields[s->nfields];
        memset(f, 0, sizeof *f);
        f->def = defs[j];
        s_field_layout(f, k);
        s->nfields++;
        unsigned char *r = recs + a++ * S_REC;
        r[0] = (unsigned char) f->def.type;
        r[1] = (unsigned char) f->def.policy;
        r[2] = (unsigned char) f->nk;
        uint32_t k0 = (uint32_t) k;
        memcpy(r + 4, &k0, 4);
        memcpy(r + 8, f->def.name, strlen(f->def.name));
        if ((rc = s_name_files(s, f)))
            break;
        for (int kk = k; kk < k + f->nk && !rc; kk++)
            rc = s_create_file(s, kk);
        /* one null per existing row */
        uint64_t w = nf_seg_col_width(s, f->kval);
        if (!rc && s->rows) {
            if (!(nulls[f->kval] = malloc(s->rows * w))) {
                rc = nf_error_set(NF_ENOMEM, "%s: out of memory", s->dir);
                break;
            }
            if (f->def.type == NF_FIELD_BOOL)
                memset(nulls[f->kval], NF_BOOL_NULL, s->rows);
            else if (f->def.type == NF_FIELD_KEYWORD)
                memset(nulls[f->kval], 0, s->rows * 4);
            else
                for (uint64_t r2 = 0; r2 < s->rows; r2++) {
                    uint64_t v = f->def.type == NF_FIELD_KEYWORDS ? NF_KWS_NULL
                                 : f->def.type == NF_FIELD_FLOAT ? 0x7ff8000000000000ull
                                                                 : (uint64_t) NF_INT_NULL;
                    memcpy((char *) nulls[f->kval] + r2 * 8, &v, 8);
                }
            b.buf[f->kval] = nulls[f->kval];
            b.len[f->kval] = s->rows * w;
        }
        k += f->nk;
    }
    if (!rc) {
        b.buf[S_SCHEMA] = recs;
        b.len[S_SCHEMA] = add * S_REC;
        b.nfiles = (uint32_t) k;
        rc = nf_seg_commit(s, &b, s->rows, s->deleted);
    }
    for (int kk = first; !rc && kk < k; kk++)
        if (nf_seg_mapped(s, kk))
            rc = nf_seg_map(s, kk, s->f[kk].cap > S_SMALL_HDR + s->bytes[kk]
                                       ? s->f[kk].cap : S_SMALL_HDR + s->bytes[kk]);
    for (size_t i = old; !rc && i < s->nfields; i++) {
        s_field_t *f = &s->fields[i];
        if ((rc = s_grow_sum(f, s->rows / NF_SUMMARY_ROWS + 1)))
            break;
        if (s->rows)
            s_sum_rows(f, nulls[f->kval], nulls[f->kval], NULL, 0, 0, 0, s->rows);
    }
    for (int kk = 0; kk < S_TABLE_MAX; kk++)
        free(nulls[kk]);
    free(recs);
    if (rc && s->nfiles < (uint32_t) k) {   /* not committed: forget the new files */
        for (size_t i = old; i < s->nfields; i++) {
            s_dict_free(&s->fields[i].dict);
            free(s->fields[i].sum);
        }
        s->nfields = old;
        s_drop_files(s, schema_new ? S_SCHEMA : first, k);
    }
    return rc;
}

/* ------------------------------------------------------------- append */

struct nf_seg_staged {
    void *col[S_TABLE_MAX];         /* staged bytes per file */
    uint64_t ids_base[NF_FIELDS_MAX];   /* keyword[]: ids committed before */
    uint32_t dict_n[NF_FIELDS_MAX];  /* dictionary sizes before (undo) */
    uint64_t dict_len[NF_FIELDS_MAX];
};

void
nf_seg_fields_unstage(nf_seg_staged_t **sp)
{
    if (!sp || !*sp)
        return;
    for (int k = 0; k < S_TABLE_MAX; k++)
        free((*sp)->col[k]);
    free(*sp);
    *sp = NULL;
}

static int
s_cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *) a, y = *(const uint32_t *) b;
    return x < y ? -1 : x > y;
}

static int
s_bad(const nf_segment_t *s, size_t i, const nf_doc_t *d, const char *field, const char *fmt,
      ...) __attribute__((format(printf, 5, 6)));

static int
s_bad(const nf_segment_t *s, size_t i, const nf_doc_t *d, const char *field, const char *fmt,
      ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return nf_error_set(NF_EINVAL, "%s: doc %zu (id \"%.64s\"): field '%s': %s", s->dir, i,
                        d->id ? d->id : "", field, msg);
}

/* Intern keyword k of field f (staging: new keywords go to the dictionary
   now, undone by truncating on failure); 0 on out of memory. */
static uint32_t
s_intern(s_field_t *f, const char *k, size_t len)
{
    uint32_t id = s_dict_find(&f->dict, k, len);
    return id ? id : s_dict_add(&f->dict, k, len);
}

static void
s_undo_dicts(nf_segment_t *s, const nf_seg_staged_t *st)
{
    for (size_t i = 0; i < s->nfields; i++)
        if (s->fields[i].kdict >= 0)
            s_dict_truncate(&s->fields[i].dict, st->dict_n[i]);
}

int
nf_seg_fields_stage(nf_segment_t *s, const nf_doc_t *docs, const nf_fields_t *fields, size_t n,
                    const unsigned char *keep, uint64_t m, nf_seg_batch_t *b,
                    nf_seg_staged_t **out)
{
    *out = NULL;
    if (!fields && !s->nfields)
        return 0;
    if (fields && !s->nfields)
        for (size_t i = 0; i < n; i++)
            if (fields[i].n)
                return s_bad(s, i, &docs[i], fields[i].v[0].name ? fields[i].v[0].name : "",
                             "the segment has no fields (declare them first)");
    nf_seg_staged_t *st = calloc(1, sizeof *st);
    if (!st)
        return nf_error_set(NF_ENOMEM, "%s: out of memory", s->dir);
    int rc = 0;
    for (size_t fi = 0; fi < s->nfields; fi++) {
        s_field_t *f = &s->fields[fi];
        st->dict_n[fi] = f->dict.n;
        st->dict_len[fi] = f->dict.len;
        st->ids_base[fi] = f->kids >= 0 ? s->bytes[f->kids] / 4 : 0;
        if (!rc)
            rc = s_grow_sum(f, (s->rows + m) / NF_SUMMARY_ROWS + 1);
        uint64_t w = nf_seg_col_width(s, f->kval);
        if (!(st->col[f->kval] = malloc(m * w + 1)))
            rc = nf_error_set(NF_ENOMEM, "%s: out of memory", s->dir);
        b->buf[f->kval] = st->col[f->kval];
        b->len[f->kval] = m * w;
    }
    /* keyword[] ids: counted first */
    uint64_t *nids = calloc(s->nfields + 1, sizeof *nids);
    const nf_fval_t **slot = calloc(s->nfields + 1, sizeof *slot);
    if (!nids || !slot)
        rc = nf_error_set(NF_ENOMEM, "%s: out of memory", s->dir);
    for (size_t i = 0; i < n && !rc; i++) {
        if (!keep[i] || !fields)
            continue;
        for (size_t j = 0; j < fields[i].n && !rc; j++) {
            const nf_fval_t *v = &fields[i].v[j];
            int fi = v->name ? nf_segment_field_find(s, v->name, strlen(v->name)) : -1;
            if (fi < 0) {
                rc = s_bad(s, i, &docs[i], v->name ? v->name : "(no name)", "not a field of "
                           "the segment");
                break;
            }
            if (s->fields[fi].def.type == NF_FIELD_KEYWORDS && v->type == NF_FIELD_KEYWORDS) {
                if (v->v.set.n > NF_KEYWORDS_MAX) {
                    rc = s_bad(s, i, &docs[i], v->name, "%zu keywords, at most %d "
                               "(NF_KEYWORDS_MAX)", v->v.set.n, NF_KEYWORDS_MAX);
                    break;
                }
                nids[fi] += v->v.set.n;
            } else if (s->fields[fi].def.type == NF_FIELD_KEYWORDS) {
                nids[fi] += 1;
            }
        }
    }
    for (size_t fi = 0; fi < s->nfields && !rc; fi++)
        if (s->fields[fi].kids >= 0) {
            int k = s->fields[fi].kids;
            if (!(st->col[k] = malloc(nids[fi] * 4 + 1)))
                rc = nf_error_set(NF_ENOMEM, "%s: out of memory", s->dir);
            b->buf[k] = st->col[k];
            nids[fi] = 0;       /* now: ids staged */
        }
    uint64_t r = 0;
    for (size_t i = 0; i < n && !rc; i++) {
        if (!keep[i])
            continue;
        memset(slot, 0, s->nfields * sizeof *slot);
        for (size_t j = 0; fields && j < fields[i].n && !rc; j++) {
            const nf_fval_t *v = &fields[i].v[j];
            int fi = nf_segment_field_find(s, v->name, strlen(v->name));
            if (slot[fi])
                rc = s_bad(s, i, &docs[i], v->name, "given twice");
            slot[fi] = v;
        }
        for (size_t fi = 0; fi < s->nfields && !rc; fi++) {
            s_field_t *f = &s->fields[fi];
            const nf_fval_t *v = slot[fi];
            nf_ftype_t vt = v ? v->type : NF_FIELD_NULL;
            char *col = st->col[f->kval];
            const char *tn = nf_field_type_name(f->def.type);
            switch (f->def.type) {
            case NF_FIELD_INT:
            case NF_FIELD_DATETIME: {
                int64_t x = NF_INT_NULL;
                if (vt == NF_FIELD_INT || (vt == NF_FIELD_DATETIME && f->def.type == vt)) {
                    x = v->v.i;
                    if (x == NF_INT_NULL)
                        rc = s_bad(s, i, &docs[i], f->def.name, "%lld is out of range",
                                   (long long) x);
                } else if (vt == NF_FIELD_KEYWORD && f->def.type == NF_FIELD_DATETIME) {
                    if (nf_datetime_parse(v->v.s, strlen(v->v.s), &x) != 0)
                        rc = s_bad(s, i, &docs[i], f->def.name, "%s", nf_error_msg());
                } else if (vt != NF_FIELD_NULL) {
                    rc = s_bad(s, i, &docs[i], f->def.name, "is a %s field; got a %s", tn,
                               nf_field_type_name(vt));
                }
                memcpy(col + r * 8, &x, 8);
                break;
            }
            case NF_FIELD_FLOAT: {
                double x = NAN;
                if (vt == NF_FIELD_FLOAT || vt == NF_FIELD_INT) {
                    x = vt == NF_FIELD_FLOAT ? v->v.f : (double) v->v.i;
                    if (!isfinite(x))
                        rc = s_bad(s, i, &docs[i], f->def.name, "value is not finite");
                } else if (vt != NF_FIELD_NULL) {
                    rc = s_bad(s, i, &docs[i], f->def.name, "is a float field; got a %s",
                               nf_field_type_name(vt));
                }
                memcpy(col + r * 8, &x, 8);
                break;
            }
            case NF_FIELD_BOOL: {
                uint8_t x = NF_BOOL_NULL;
                if (vt == NF_FIELD_BOOL)
                    x = v->v.b ? 1 : 0;
                else if (vt != NF_FIELD_NULL)
                    rc = s_bad(s, i, &docs[i], f->def.name, "is a bool field; got a %s",
                               nf_field_type_name(vt));
                col[r] = (char) x;
                break;
            }
            case NF_FIELD_KEYWORD: {
                uint32_t x = 0;
                if (vt == NF_FIELD_KEYWORD) {
                    size_t len = v->v.s ? strlen(v->v.s) : 0;
                    if (len == 0 || len > NF_KEYWORD_MAX)
                        rc = s_bad(s, i, &docs[i], f->def.name, "keyword of %zu bytes (1..%d, "
                                   "NF_KEYWORD_MAX)", len, NF_KEYWORD_MAX);
                    else if (!(x = s_intern(f, v->v.s, len)))
                        rc = nf_error_set(NF_ENOMEM, "%s: out of memory", s->dir);
                } else if (vt != NF_FIELD_NULL) {
                    rc = s_bad(s, i, &docs[i], f->def.name, "is a keyword field; got a %s",
                               nf_field_type_name(vt));
                }
                memcpy(col + r * 4, &x, 4);
                break;
            }
            case NF_FIELD_KEYWORDS: {
                uint32_t *ids = st->col[f->kids];
                uint64_t base = s->bytes[f->kids] / 4, at = nids[fi];
                if (vt == NF_FIELD_KEYWORDS || vt == NF_FIELD_KEYWORD) {
                    size_t cnt = vt == NF_FIELD_KEYWORD ? 1 : v->v.set.n;
                    for (size_t e = 0; e < cnt && !rc; e++) {
                        const char *k = vt == NF_FIELD_KEYWORD ? v->v.s : v->v.set.v[e];
                        size_t len = k ? strlen(k) : 0;
                        uint32_t id;
                        if (len == 0 || len > NF_KEYWORD_MAX)
                            rc = s_bad(s, i, &docs[i], f->def.name, "keyword %zu has %zu "
                                       "bytes (1..%d, NF_KEYWORD_MAX)", e, len, NF_KEYWORD_MAX);
                        else if (!(id = s_intern(f, k, len)))
                            rc = nf_error_set(NF_ENOMEM, "%s: out of memory", s->dir);
                        else
                            ids[at++] = id;
                    }
                    /* a set: sorted, duplicates dropped */
                    qsort(ids + nids[fi], at - nids[fi], 4, s_cmp_u32);
                    uint64_t o = nids[fi];
                    for (uint64_t e = nids[fi]; e < at; e++)
                        if (e == nids[fi] || ids[e] != ids[e - 1])
                            ids[o++] = ids[e];
                    at = o;
                    uint64_t end = base + at;
                    memcpy(col + r * 8, &end, 8);
                } else {
                    if (vt != NF_FIELD_NULL)
                        rc = s_bad(s, i, &docs[i], f->def.name, "is a keyword[] field; got "
                                   "a %s", nf_field_type_name(vt));
                    uint64_t end = (base + at) | NF_KWS_NULL;
                    memcpy(col + r * 8, &end, 8);
                }
                nids[fi] = at;
                break;
            }
            default:
                break;
            }
        }
        r++;
    }
    for (size_t fi = 0; fi < s->nfields && !rc; fi++) {
        const s_field_t *f = &s->fields[fi];
        if (f->kids >= 0)
            b->len[f->kids] = nids[fi] * 4;
        if (f->kdict >= 0) {
            /* the new keywords: the dictionary's bytes past what is committed */
            b->buf[f->kdict] = f->dict.buf ? f->dict.buf + st->dict_len[fi] : NULL;
            b->len[f->kdict] = f->dict.len - st->dict_len[fi];
        }
    }
    free(nids);
    free(slot);
    if (rc) {
        s_undo_dicts(s, st);
        nf_seg_fields_unstage(&st);
        return rc;
    }
    *out = st;
    return 0;
}

void
nf_seg_fields_commit(nf_segment_t *s, nf_seg_staged_t *st, uint64_t row0, uint64_t m)
{
    for (size_t fi = 0; st && m && fi < s->nfields; fi++) {
        s_field_t *f = &s->fields[fi];
        /* from the staged bytes: the column pages just written stay out
           of this process's resident memory */
        s_sum_rows(f, st->col[f->kval], st->col[f->kval], f->kids >= 0 ? st->col[f->kids] : NULL,
                   st->ids_base[fi], st->ids_base[fi], row0, row0 + m);
    }
}

/* Undo the dictionary additions of a staged batch that was not committed. */
void nf_seg_fields_abort(nf_segment_t *s, nf_seg_staged_t *st);

void
nf_seg_fields_abort(nf_segment_t *s, nf_seg_staged_t *st)
{
    if (st)
        s_undo_dicts(s, st);
}

/* ------------------------------------------------------------- repair */

/* The field bytes of one kept batch (nf_segment_repair.c): per field of
   the base commit, where its kept bytes are and how far a checksum
   confirms them; keywords resolved to strings the kept values own (the
   append that re-commits them interns them again: a kept id past the base
   dictionary may name another keyword in the dictionary of today). */
struct nf_seg_fkept {
    const nf_segment_t *s;
    uint64_t brows;
    size_t nf;                      /* fields of the base commit: fields[0..nf) */
    const unsigned char *d[S_TABLE_MAX];
    uint64_t n[S_TABLE_MAX], bb[S_TABLE_MAX], upto[S_TABLE_MAX];
    uint32_t *nbase;                /* keyword fields: keywords at the base commit */
    const char ***kw;               /* keyword fields: id -> string (base: copied on
                                       first use; kept: into the kept dictionary) */
    uint32_t *nkw;                  /* ids 1..nkw[fi] resolve */
    uint64_t *prev;                 /* keyword[]: end of the previous kept row's set */
    const char **sets;              /* keyword[] strings of every kept row, in order */
    uint64_t nsets, setcap;
    char why[192];
};

void
nf_seg_fields_kept_free(nf_seg_fkept_t **fp)
{
    if (!fp || !*fp)
        return;
    nf_seg_fkept_t *fk = *fp;
    for (size_t fi = 0; fi < fk->nf; fi++) {
        for (uint32_t id = 1; fk->kw && fk->kw[fi] && id <= fk->nbase[fi]; id++)
            free((char *) fk->kw[fi][id]);
        if (fk->kw)
            free(fk->kw[fi]);
    }
    free(fk->kw);
    free(fk->nkw);
    free(fk->nbase);
    free(fk->prev);
    free(fk->sets);
    free(fk);
    *fp = NULL;
}

int
nf_seg_fields_kept(const nf_segment_t *s, uint32_t bnfiles, uint64_t brows,
                   const unsigned char *const *d, const uint64_t *n, const uint64_t *bb,
                   const uint64_t *upto, nf_seg_fkept_t **out)
{
    *out = NULL;
    nf_seg_fkept_t *fk = calloc(1, sizeof *fk);
    if (!fk)
        return nf_error_set(NF_ENOMEM, "%s: out of memory", s->dir);
    fk->s = s;
    fk->brows = brows;
    while (fk->nf < s->nfields
           && s->fields[fk->nf].k0 + s->fields[fk->nf].nk <= (int) bnfiles)
        fk->nf++;
    for (int k = S_COL0; k < (int) bnfiles; k++) {
        fk->d[k] = d[k];
        fk->n[k] = n[k];
        fk->bb[k] = bb[k];
        fk->upto[k] = upto[k];
    }
    fk->nbase = calloc(fk->nf + 1, sizeof *fk->nbase);
    fk->nkw = calloc(fk->nf + 1, sizeof *fk->nkw);
    fk->kw = calloc(fk->nf + 1, sizeof *fk->kw);
    fk->prev = calloc(fk->nf + 1, sizeof *fk->prev);
    if (!fk->nbase || !fk->nkw || !fk->kw || !fk->prev) {
        nf_seg_fields_kept_free(&fk);
        return nf_error_set(NF_ENOMEM, "%s: out of memory", s->dir);
    }
    for (size_t fi = 0; fi < fk->nf; fi++) {
        const s_field_t *f = &s->fields[fi];
        uint64_t w = nf_seg_col_width(s, f->kval);
        /* the base commit's columns must line up with its rows; when they
           do not, no kept row can be placed (row_check says so) */
        if (bb[f->kval] != brows * w || (f->kids >= 0 && bb[f->kids] % 4)) {
            snprintf(fk->why, sizeof fk->why, "field '%s': the base commit's column does "
                     "not match its rows", f->def.name);
            break;
        }
        if (f->kids >= 0)
            fk->prev[fi] = bb[f->kids] / 4;
        if (f->kdict < 0)
            continue;
        /* keywords of the base commit: those starting below its dictionary
           bytes, which must end on a keyword boundary */
        const s_dict_t *dc = &f->dict;
        uint32_t nb = 0;
        while (nb < dc->n && dc->off[nb] < bb[f->kdict])
            nb++;
        if ((nb < dc->n ? dc->off[nb] : dc->len) != bb[f->kdict]) {
            snprintf(fk->why, sizeof fk->why, "field '%s': the base commit's dictionary "
                     "does not end on a keyword", f->def.name);
            break;
        }
        /* kept keywords: whole, sane and confirmed by a checksum; the
           first one that is not ends what ids can name */
        uint64_t ok = upto[f->kdict] - bb[f->kdict];
        ok = ok < n[f->kdict] ? ok : n[f->kdict];
        uint64_t cnt = 0;
        for (uint64_t p = 0; p < ok;) {
            const char *e = memchr(d[f->kdict] + p, '\0', ok - p);
            uint64_t kl = e ? (uint64_t) (e - (const char *) (d[f->kdict] + p)) : 0;
            if (!e || kl == 0 || kl > NF_KEYWORD_MAX)
                break;
            cnt++;
            p += kl + 1;
        }
        if ((uint64_t) nb + cnt >= UINT32_MAX
            || !(fk->kw[fi] = calloc((size_t) (nb + cnt + 1), sizeof *fk->kw[fi]))) {
            nf_seg_fields_kept_free(&fk);
            return nf_error_set(NF_ENOMEM, "%s: out of memory", s->dir);
        }
        fk->nbase[fi] = nb;
        fk->nkw[fi] = nb + (uint32_t) cnt;
        uint64_t p = 0;
        for (uint32_t id = nb + 1; id <= fk->nkw[fi]; id++) {
            fk->kw[fi][id] = (const char *) d[f->kdict] + p;
            p += strlen(fk->kw[fi][id]) + 1;
        }
    }
    /* every kept keyword[] id at most once: the sets never move */
    for (size_t fi = 0; fi < fk->nf; fi++)
        if (s->fields[fi].kids >= 0)
            fk->setcap += n[s->fields[fi].kids] / 4;
    if (!(fk->sets = malloc((fk->setcap + 1) * sizeof *fk->sets))) {
        nf_seg_fields_kept_free(&fk);
        return nf_error_set(NF_ENOMEM, "%s: out of memory", s->dir);
    }
    *out = fk;
    return 0;
}

/* Keyword id of field fi as a string the kept state owns, or NULL. */
static const char *
s_kept_kw(nf_seg_fkept_t *fk, size_t fi, uint32_t id)
{
    if (id == 0 || id > fk->nkw[fi])
        return NULL;
    if (!fk->kw[fi][id]) {      /* base keyword: copied (the live one may move) */
        const s_dict_t *dc = &fk->s->fields[fi].dict;
        fk->kw[fi][id] = strdup(dc->buf + dc->off[id - 1]);
    }
    return fk->kw[fi][id];
}

static bool __attribute__((format(printf, 3, 4)))
s_kept_bad(nf_seg_fkept_t *fk, const char **why, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(fk->why, sizeof fk->why, fmt, ap);
    va_end(ap);
    *why = fk->why;
    return false;
}

bool
nf_seg_fields_kept_row(nf_seg_fkept_t *fk, uint64_t i, nf_fval_t *v, size_t *nv,
                       const char **why)
{
    *nv = 0;
    if (fk->why[0]) {
        *why = fk->why;
        return false;
    }
    const nf_segment_t *s = fk->s;
    uint64_t row = fk->brows + i;
    for (size_t fi = 0; fi < fk->nf; fi++) {
        const s_field_t *f = &s->fields[fi];
        const char *name = f->def.name;
        uint64_t w = nf_seg_col_width(s, f->kval);
        if ((i + 1) * w > fk->n[f->kval])
            return s_kept_bad(fk, why, "field '%s': value not in the kept bytes", name);
        if ((row + 1) * w > fk->upto[f->kval])
            return s_kept_bad(fk, why, "field '%s': not covered by a matching checksum", name);
        const unsigned char *p = fk->d[f->kval] + i * w;
        nf_fval_t *o = &v[*nv];
        o->name = name;
        o->type = f->def.type;
        switch (f->def.type) {
        case NF_FIELD_INT:
        case NF_FIELD_DATETIME:
            memcpy(&o->v.i, p, 8);
            if (o->v.i != NF_INT_NULL)
                ++*nv;
            break;
        case NF_FIELD_FLOAT:
            memcpy(&o->v.f, p, 8);
            if (isinf(o->v.f))
                return s_kept_bad(fk, why, "field '%s': value is not finite", name);
            if (!isnan(o->v.f))
                ++*nv;
            break;
        case NF_FIELD_BOOL:
            if (*p > 1 && *p != NF_BOOL_NULL)
                return s_kept_bad(fk, why, "field '%s': bool byte %u", name, *p);
            o->v.b = *p == 1;
            if (*p != NF_BOOL_NULL)
                ++*nv;
            break;
        case NF_FIELD_KEYWORD: {
            uint32_t id;
            memcpy(&id, p, 4);
            if (id == 0)
                break;
            if (!(o->v.s = s_kept_kw(fk, fi, id)))
                return id > fk->nkw[fi]
                           ? s_kept_bad(fk, why, "field '%s': keyword id %u is not in the "
                                        "dictionary (%u confirmed keywords)", name, id,
                                        fk->nkw[fi])
                           : s_kept_bad(fk, why, "out of memory");
            ++*nv;
            break;
        }
        case NF_FIELD_KEYWORDS: {
            uint64_t end, e, st = fk->prev[fi];
            memcpy(&end, p, 8);
            e = end & ~NF_KWS_NULL;
            if (e < st || e - st > NF_KEYWORDS_MAX || ((end & NF_KWS_NULL) && e != st))
                return s_kept_bad(fk, why, "field '%s': set end %llu out of order", name,
                                  (unsigned long long) e);
            if (e * 4 - fk->bb[f->kids] > fk->n[f->kids])
                return s_kept_bad(fk, why, "field '%s': set not in the kept bytes", name);
            if (e * 4 > fk->upto[f->kids])
                return s_kept_bad(fk, why, "field '%s': set not covered by a matching "
                                  "checksum", name);
            if (fk->nsets + (e - st) > fk->setcap)     /* sized for all kept ids */
                return s_kept_bad(fk, why, "field '%s': more ids than kept", name);
            const char **set = fk->sets + fk->nsets;
            uint32_t last = 0;
            for (uint64_t j = st; j < e; j++) {
                uint32_t id;
                memcpy(&id, fk->d[f->kids] + (j * 4 - fk->bb[f->kids]), 4);
                if (id <= last || !(set[j - st] = s_kept_kw(fk, fi, id)))
                    return s_kept_bad(fk, why, "field '%s': keyword id %u out of order or not "
                                      "in the dictionary (%u confirmed keywords)", name, id,
                                      fk->nkw[fi]);
                last = id;
            }
            fk->prev[fi] = e;
            if (end & NF_KWS_NULL)
                break;
            fk->nsets += e - st;
            o->v.set.v = set;
            o->v.set.n = (size_t) (e - st);
            ++*nv;
            break;
        }
        default:
            break;
        }
    }
    return true;
}
