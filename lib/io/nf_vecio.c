/*  nf_vecio: reading documents from .fvecs / .f32 / JSONL files (the
    payload codec is in nf_payload.c, the JSON results in nf_results.c).

    The reader streams the file through stdio; a batch's documents, strings
    and tags live in reader-owned storage (a vector buffer of max x dim
    floats and a chunked string arena that is recycled at the next call), so
    reading a file of any size uses memory proportional to one batch.      */
#include "nf_vecio.h"

#include <jansson.h>

#include "nf_error.h"
#include "nf_floats.h"
#include "nf_limits.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

/* ------------------------------------------------------------------ */
/* String arena: chunks that are reused, never moved, while a batch lives. */

typedef struct s_chunk {
    struct s_chunk *next;
    size_t cap, used;
    char data[];
} s_chunk_t;

typedef struct {
    s_chunk_t *head, *tail, *cur;     /* chunks are used in list order */
} s_arena_t;

#define S_CHUNK_MIN (64u << 10)

static void *
s_arena_alloc(s_arena_t *a, size_t size)
{
    size = (size + 7) & ~(size_t) 7;
    while (a->cur && a->cur->cap - a->cur->used < size) {
        a->cur = a->cur->next;
        if (a->cur)
            a->cur->used = 0;
    }
    if (!a->cur) {
        size_t cap = size > S_CHUNK_MIN ? size : S_CHUNK_MIN;
        s_chunk_t *c = malloc(sizeof *c + cap);
        if (!c)
            return NULL;
        c->cap = cap;
        c->used = 0;
        c->next = NULL;
        if (a->tail)
            a->tail->next = c;
        else
            a->head = c;
        a->tail = c;
        a->cur = c;
    }
    void *p = a->cur->data + a->cur->used;
    a->cur->used += size;
    return p;
}

static char *
s_arena_strdup(s_arena_t *a, const char *s, size_t len)
{
    char *p = s_arena_alloc(a, len + 1);
    if (p) {
        memcpy(p, s, len);
        p[len] = '\0';
    }
    return p;
}

static void
s_arena_reset(s_arena_t *a)
{
    a->cur = a->head;
    if (a->cur)
        a->cur->used = 0;
}

static void
s_arena_free(s_arena_t *a)
{
    while (a->head) {
        s_chunk_t *next = a->head->next;
        free(a->head);
        a->head = next;
    }
    a->tail = a->cur = NULL;
}

/* ------------------------------------------------------------------ */
/* Reader                                                              */

struct nf_vecio {
    char *path;
    nf_vecio_fmt_t fmt;
    FILE *f;
    uint64_t size;          /* file size (0 when not a regular file) */
    uint64_t offset;        /* bytes consumed */
    uint32_t dim;           /* known dim, 0 until known */
    bool dim_from_hint;
    bool require;
    bool eof;
    uint64_t record;        /* next record number */
    uint64_t line;          /* last line number read (JSONL) */
    uint64_t dim_line;      /* JSONL line whose vector fixed the dim */
    int failed;             /* sticky error code, 0 when fine */
    char *failmsg;
    nf_vecio_doc_t *docs;
    size_t docs_cap;
    float *vecs;
    size_t vecs_cap;        /* in floats */
    bool given;             /* vecs is the last batch's block (nf_vecio_take_vectors) */
    s_arena_t arena;
    char *linebuf;
    size_t linecap;
    bool skip;              /* skip bad records (nf_vecio_skip_bad) */
    nf_field_def_t *fdefs;  /* typed fields read from JSONL (nf_vecio_set_fields) */
    size_t nfdefs;
    nf_vecio_reject_t *rejects;
    size_t nrejects, rejects_cap;
};

void
nf_vecio_skip_bad(nf_vecio_t *self, bool skip)
{
    self->skip = skip;
}

/* Skip mode: keep the record that just failed (its message is failmsg) in
   the rejects and clear the failure.  Returns the failing code when the
   record cannot be skipped (not skip mode, or an error of the file). */
static int
s_reject(nf_vecio_t *self, int rc, const nf_vecio_doc_t *doc)
{
    if (!self->skip || (rc != NF_EPARSE && rc != NF_EINVAL && rc != NF_EDIM))
        return rc;
    if (self->nrejects == self->rejects_cap) {
        size_t cap = self->rejects_cap ? 2 * self->rejects_cap : 16;
        nf_vecio_reject_t *r = realloc(self->rejects, cap * sizeof *r);
        if (!r)
            return rc;
        self->rejects = r;
        self->rejects_cap = cap;
    }
    nf_vecio_reject_t *r = &self->rejects[self->nrejects];
    const char *why = self->failmsg ? self->failmsg : "bad record";
    r->record = self->record;
    r->line = self->line;
    r->id = doc && doc->id ? doc->id : NULL;
    r->why = s_arena_strdup(&self->arena, why, strlen(why));
    if (!r->why)
        return rc;
    self->nrejects++;
    self->failed = 0;
    self->record++;
    return 0;
}

int
nf_vecio_fmt_parse(const char *name, nf_vecio_fmt_t *fmt)
{
    static const struct {
        const char *name;
        nf_vecio_fmt_t fmt;
    } names[] = {
        {"auto", NF_VECIO_AUTO}, {"fvecs", NF_VECIO_FVECS}, {"f32", NF_VECIO_F32},
        {"jsonl", NF_VECIO_JSONL}, {"json", NF_VECIO_JSONL}, {"ndjson", NF_VECIO_JSONL},
    };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (name && !strcasecmp(name, names[i].name)) {
            *fmt = names[i].fmt;
            return 0;
        }
    return nf_error_set(NF_EINVAL, "unknown input format '%s' (expected fvecs, f32 or jsonl)",
                        name ? name : "(null)");
}

nf_vecio_fmt_t
nf_vecio_fmt_guess(const char *path)
{
    const char *dot = path ? strrchr(path, '.') : NULL;
    if (!dot || strchr(dot, '/'))
        return NF_VECIO_AUTO;
    nf_vecio_fmt_t fmt;
    if (!strcasecmp(dot + 1, "auto") || nf_vecio_fmt_parse(dot + 1, &fmt) != 0)
        return NF_VECIO_AUTO;
    return fmt;
}

/* Record an error, and keep it so that later calls report it again. */
static int
s_fail(nf_vecio_t *self, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static int
s_fail(nf_vecio_t *self, int code, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    self->failed = code;
    free(self->failmsg);
    self->failmsg = strdup(msg);
    return nf_error_set(code, "%s", msg);
}

int
nf_vecio_open(const char *path, nf_vecio_fmt_t fmt, uint32_t dim_hint, nf_vecio_t **out)
{
    *out = NULL;
    if (!path || !*path)
        return nf_error_set(NF_EINVAL, "input file: empty path");
    if (dim_hint > NF_DIM_MAX)
        return nf_error_set(NF_EINVAL, "%s: dim %" PRIu32 " out of range 1..%d", path, dim_hint,
                            NF_DIM_MAX);
    if (fmt == NF_VECIO_AUTO) {
        fmt = nf_vecio_fmt_guess(path);
        if (fmt == NF_VECIO_AUTO)
            return nf_error_set(NF_EINVAL,
                                "%s: unknown file extension (expected .fvecs, .f32, .jsonl, "
                                ".json or .ndjson, or give the format)", path);
    }
    if (fmt == NF_VECIO_F32 && dim_hint == 0)
        return nf_error_set(NF_EINVAL, "%s: the dim of a .f32 file must be given", path);

    FILE *f = fopen(path, "rb");
    if (!f)
        return nf_error_set(errno == ENOENT ? NF_ENOTFOUND : NF_EIO, "%s: cannot open: %s", path,
                            strerror(errno));
    struct stat st;
    if (fstat(fileno(f), &st) != 0) {
        int e = errno;
        fclose(f);
        return nf_error_set(NF_EIO, "%s: stat: %s", path, strerror(e));
    }
    if (S_ISDIR(st.st_mode)) {
        fclose(f);
        return nf_error_set(NF_EINVAL, "%s: is a directory, not a document file", path);
    }
    uint64_t size = S_ISREG(st.st_mode) ? (uint64_t) st.st_size : 0;
    if (S_ISREG(st.st_mode) && size == 0) {
        fclose(f);
        return nf_error_set(NF_EINVAL, "%s: empty file", path);
    }

    uint32_t dim = dim_hint;
    if (fmt == NF_VECIO_F32 && S_ISREG(st.st_mode) && size % ((uint64_t) dim * 4) != 0) {
        fclose(f);
        return nf_error_set(NF_EINVAL,
                            "%s: size %" PRIu64 " bytes is not a multiple of dim*4 = %" PRIu64
                            " (%" PRIu64 " whole rows and %" PRIu64 " bytes left over)",
                            path, size, (uint64_t) dim * 4, size / ((uint64_t) dim * 4),
                            size % ((uint64_t) dim * 4));
    }
    if (fmt == NF_VECIO_FVECS) {
        int32_t d;
        size_t got = fread(&d, 1, sizeof d, f);
        if (got != sizeof d) {
            fclose(f);
            return nf_error_set(got == 0 ? NF_EINVAL : NF_ECORRUPT,
                                "%s: record 0 (byte 0): truncated: %zu of 4 header bytes",
                                path, got);
        }
        if (d <= 0 || d > NF_DIM_MAX) {
            fclose(f);
            return nf_error_set(NF_EFORMAT,
                                "%s: record 0 (byte 0): dim %" PRId32 " out of range 1..%d "
                                "(not an .fvecs file?)", path, d, NF_DIM_MAX);
        }
        if (dim_hint && (uint32_t) d != dim_hint) {
            fclose(f);
            return nf_error_set(NF_EDIM, "%s: vectors have dim %" PRId32 ", expected %" PRIu32,
                                path, d, dim_hint);
        }
        dim = (uint32_t) d;
        if (fseek(f, 0, SEEK_SET) != 0) {
            int e = errno;
            fclose(f);
            return nf_error_set(NF_EIO, "%s: seek: %s", path, strerror(e));
        }
    }

    nf_vecio_t *self = calloc(1, sizeof *self);
    if (!self || !(self->path = strdup(path))) {
        free(self);
        fclose(f);
        return nf_error_set(NF_ENOMEM, "%s: out of memory", path);
    }
    self->fmt = fmt;
    self->f = f;
    self->size = size;
    self->dim = dim;
    self->dim_from_hint = dim_hint != 0;
    self->require = fmt != NF_VECIO_JSONL;
    *out = self;
    return 0;
}

void
nf_vecio_require_vectors(nf_vecio_t *self, bool require)
{
    if (self->fmt == NF_VECIO_JSONL)
        self->require = require;
}

uint32_t
nf_vecio_dim(const nf_vecio_t *self)
{
    return self->dim;
}

nf_vecio_fmt_t
nf_vecio_fmt(const nf_vecio_t *self)
{
    return self->fmt;
}

void
nf_vecio_progress(const nf_vecio_t *self, uint64_t *done, uint64_t *total)
{
    if (done)
        *done = self->offset;
    if (total)
        *total = self->size > self->offset ? self->size : self->offset;
}

void
nf_vecio_destroy(nf_vecio_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    nf_vecio_t *self = *self_p;
    if (self->f)
        fclose(self->f);
    s_arena_free(&self->arena);
    free(self->docs);
    free(self->vecs);
    free(self->linebuf);
    free(self->rejects);
    free(self->failmsg);
    free(self->fdefs);
    free(self->path);
    free(self);
    *self_p = NULL;
}

/* Make room for max docs (and max x dim floats when dim is known). */
static int
s_reserve(nf_vecio_t *self, size_t max)
{
    if (self->docs_cap < max) {
        nf_vecio_doc_t *d = realloc(self->docs, max * sizeof *d);
        if (!d)
            return s_fail(self, NF_ENOMEM, "%s: out of memory for %zu documents", self->path, max);
        self->docs = d;
        self->docs_cap = max;
    }
    /* .fvecs records are read whole into vecs, their dim headers too */
    size_t row = self->dim + (self->fmt == NF_VECIO_FVECS);
    if (self->dim && self->vecs_cap < max * row) {
        if (max > SIZE_MAX / sizeof(float) / row)
            return s_fail(self, NF_ENOMEM, "%s: batch too large", self->path);
        float *v = realloc(self->vecs, max * row * sizeof *v);
        if (!v)
            return s_fail(self, NF_ENOMEM, "%s: out of memory for %zu vectors of dim %" PRIu32,
                          self->path, max, self->dim);
        self->vecs = v;
        self->vecs_cap = max * row;
    }
    return 0;
}

/* Default id: the record number in decimal. */
static const char *
s_default_id(nf_vecio_t *self, uint64_t record)
{
    char buf[24], *p = buf + sizeof buf;     /* digits from the end (snprintf was 5% of a build) */
    do
        *--p = (char) ('0' + record % 10);
    while ((record /= 10) != 0);
    return s_arena_strdup(&self->arena, p, (size_t) (buf + sizeof buf - p));
}

static int
s_check_finite(nf_vecio_t *self, const float *v, uint64_t record, uint64_t byte)
{
    size_t j = nf_first_nonfinite(v, self->dim);
    if (j == self->dim)
        return 0;
    return s_fail(self, NF_EINVAL, "%s: record %" PRIu64 " (byte %" PRIu64 "): "
                  "component %zu is %s", self->path, record, byte, j,
                  isnan(v[j]) ? "NaN" : "Inf");
}

/* A short read in the middle of an .fvecs record: I/O error or truncation. */
static int
s_fvecs_short(nf_vecio_t *self, uint64_t byte, size_t got, size_t rec_bytes)
{
    if (ferror(self->f))
        return s_fail(self, NF_EIO, "%s: read at byte %" PRIu64 ": %s", self->path, byte,
                      strerror(errno));
    return s_fail(self, NF_ECORRUPT, "%s: record %" PRIu64 " (byte %" PRIu64 "): "
                  "truncated: %zu of %zu bytes", self->path, self->record, byte, got,
                  rec_bytes);
}

/* An .fvecs record whose dim header d (at file byte `byte`) is not the file's. */
static int
s_fvecs_bad_dim(nf_vecio_t *self, int32_t d, uint64_t byte)
{
    return s_fail(self, d <= 0 || d > NF_DIM_MAX ? NF_ECORRUPT : NF_EDIM,
                  "%s: record %" PRIu64 " (byte %" PRIu64 "): dim %" PRId32
                  ", expected %" PRIu32 " (%s)", self->path, self->record, byte, d,
                  self->dim, self->dim_from_hint ? "the given dim" : "dim of record 0");
}

/* .fvecs: the batch's records are read in one fread into vecs (sized for
   max records with their 4-byte dim headers, s_reserve) and compacted in
   place, each record's vector moving down over the headers before it: one
   read and one pass over the bytes, not two freads and a copy per record.
   Every record is checked in file order, so an error names the first bad
   one, as a record-at-a-time reader would. */
static int
s_next_fvecs(nf_vecio_t *self, size_t max, size_t *n)
{
    size_t rec = (size_t) self->dim + 1, rec_bytes = 4 * rec;
    float *buf = self->vecs + *n * self->dim;   /* records are read from here on */
    size_t want = max - *n;
    size_t got = fread(buf, 1, want * rec_bytes, self->f);
    size_t whole = got / rec_bytes;
    for (size_t i = 0; i < whole; i++) {
        uint64_t byte = self->offset;
        int32_t d;
        memcpy(&d, buf + i * rec, 4);
        if (d <= 0 || (uint32_t) d != self->dim)
            return s_fvecs_bad_dim(self, d, byte);
        float *v = self->vecs + *n * self->dim;
        memmove(v, buf + i * rec + 1, (size_t) self->dim * 4);
        int rc = s_check_finite(self, v, self->record, byte);
        if (rc)
            return rc;
        nf_vecio_doc_t *doc = &self->docs[*n];
        memset(doc, 0, sizeof *doc);
        doc->vector = v;
        doc->record = self->record;
        if (!(doc->id = s_default_id(self, self->record)))
            return s_fail(self, NF_ENOMEM, "%s: out of memory", self->path);
        self->offset += rec_bytes;
        self->record++;
        (*n)++;
    }
    if (whole < want) {
        size_t part = got - whole * rec_bytes;      /* bytes of a record cut short */
        if (part == 0 && !ferror(self->f)) {
            self->eof = true;
            return 0;
        }
        if (part >= 4) {            /* its header is there: a wrong dim is named first */
            int32_t d;
            memcpy(&d, buf + whole * rec, 4);
            if (d <= 0 || (uint32_t) d != self->dim)
                return s_fvecs_bad_dim(self, d, self->offset);
        }
        return s_fvecs_short(self, self->offset, part, rec_bytes);
    }
    return 0;
}

static int
s_next_f32(nf_vecio_t *self, size_t max, size_t *n)
{
    size_t row_bytes = (size_t) self->dim * 4;
    size_t got = fread(self->vecs, row_bytes, max, self->f);
    if (got < max) {
        if (ferror(self->f))
            return s_fail(self, NF_EIO, "%s: read at byte %" PRIu64 ": %s", self->path,
                          self->offset, strerror(errno));
        self->eof = true;
        /* a partial last row (only possible when the size was not known) */
        long pos = ftell(self->f);
        uint64_t end = self->offset + got * row_bytes;
        if (pos >= 0 && (uint64_t) pos != end)
            return s_fail(self, NF_ECORRUPT, "%s: record %" PRIu64 " (byte %" PRIu64 "): "
                          "truncated: %" PRIu64 " of %zu bytes", self->path,
                          self->record + got, end, (uint64_t) pos - end, row_bytes);
    }
    for (size_t i = 0; i < got; i++) {
        const float *v = self->vecs + i * self->dim;
        int rc = s_check_finite(self, v, self->record + i, self->offset + i * row_bytes);
        if (rc)
            return rc;
        nf_vecio_doc_t *doc = &self->docs[i];
        memset(doc, 0, sizeof *doc);
        doc->vector = v;
        doc->record = self->record + i;
        if (!(doc->id = s_default_id(self, doc->record)))
            return s_fail(self, NF_ENOMEM, "%s: out of memory", self->path);
    }
    self->record += got;
    self->offset += got * row_bytes;
    *n = got;
    return 0;
}

/* Shortest text that reads back as the same double. */
static void
s_format_real(double v, char *buf, size_t size)
{
    for (int prec = 15; prec <= 17; prec++) {
        snprintf(buf, size, "%.*g", prec, v);
        if (strtod(buf, NULL) == v)
            return;
    }
}

static const char *
s_json_type(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT: return "object";
    case JSON_ARRAY: return "array";
    case JSON_STRING: return "string";
    case JSON_INTEGER: return "integer";
    case JSON_REAL: return "real";
    case JSON_TRUE: return "true";
    case JSON_FALSE: return "false";
    default: return "null";
    }
}

/* Text of a scalar (string, number, boolean) into the arena; NULL when the
   value is of another type or on out of memory (*nested tells which). */
static const char *
s_scalar_text(nf_vecio_t *self, const json_t *v, bool *nested)
{
    char buf[40];
    *nested = false;
    if (json_is_string(v))
        return s_arena_strdup(&self->arena, json_string_value(v), json_string_length(v));
    if (json_is_integer(v))
        snprintf(buf, sizeof buf, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
    else if (json_is_real(v))
        s_format_real(json_real_value(v), buf, sizeof buf);
    else if (json_is_boolean(v))
        snprintf(buf, sizeof buf, "%s", json_is_true(v) ? "true" : "false");
    else {
        *nested = true;
        return NULL;
    }
    return s_arena_strdup(&self->arena, buf, strlen(buf));
}

static int
s_jsonl_id(nf_vecio_t *self, json_t *obj, nf_vecio_doc_t *doc)
{
    json_t *id = json_object_get(obj, "id");
    if (!id) {
        doc->id = s_default_id(self, doc->record);
    } else if (json_is_string(id) || json_is_number(id)) {
        bool nested;
        doc->id = s_scalar_text(self, id, &nested);
        if (doc->id) {
            size_t len = strlen(doc->id);
            if (len == 0)
                return s_fail(self, NF_EINVAL, "%s:%" PRIu64 ": id is empty", self->path,
                              self->line);
            if (len > NF_ID_MAX)
                return s_fail(self, NF_EINVAL, "%s:%" PRIu64 ": id is %zu bytes long, at most "
                              "%d allowed", self->path, self->line, len, NF_ID_MAX);
        }
    } else {
        return s_fail(self, NF_EINVAL, "%s:%" PRIu64 ": id must be a string or a number, got %s",
                      self->path, self->line, s_json_type(id));
    }
    if (!doc->id)
        return s_fail(self, NF_ENOMEM, "%s: out of memory", self->path);
    return 0;
}

static int
s_jsonl_vector(nf_vecio_t *self, json_t *obj, nf_vecio_doc_t *doc, size_t index, size_t max,
               bool *has)
{
    json_t *vec = json_object_get(obj, "vector");
    *has = false;
    if (!vec) {
        if (self->require)
            return s_fail(self, NF_EINVAL, "%s:%" PRIu64 ": document has no \"vector\"",
                          self->path, self->line);
        return 0;
    }
    if (!json_is_array(vec))
        return s_fail(self, NF_EINVAL, "%s:%" PRIu64 ": vector must be an array of numbers, "
                      "got %s", self->path, self->line, s_json_type(vec));
    size_t len = json_array_size(vec);
    if (len == 0)
        return s_fail(self, NF_EINVAL, "%s:%" PRIu64 ": vector is empty", self->path, self->line);
    if (self->dim == 0) {
        if (len > NF_DIM_MAX)
            return s_fail(self, NF_EINVAL, "%s:%" PRIu64 ": vector has %zu values, at most %d "
                          "allowed", self->path, self->line, len, NF_DIM_MAX);
        self->dim = (uint32_t) len;
        self->dim_line = self->line;
        int rc = s_reserve(self, max);
        if (rc)
            return rc;
    }
    if (len != self->dim) {
        if (self->dim_from_hint)
            return s_fail(self, NF_EDIM, "%s:%" PRIu64 ": vector has %zu values, expected %"
                          PRIu32, self->path, self->line, len, self->dim);
        return s_fail(self, NF_EDIM, "%s:%" PRIu64 ": vector has %zu values, expected %" PRIu32
                      " (as on line %" PRIu64 ")", self->path, self->line, len, self->dim,
                      self->dim_line);
    }
    float *v = self->vecs + index * self->dim;
    for (size_t j = 0; j < len; j++) {
        json_t *x = json_array_get(vec, j);
        if (!json_is_number(x))
            return s_fail(self, NF_EINVAL, "%s:%" PRIu64 ": vector[%zu] must be a number, got %s",
                          self->path, self->line, j, s_json_type(x));
        v[j] = (float) json_number_value(x);
        if (!isfinite(v[j]))
            return s_fail(self, NF_EINVAL, "%s:%" PRIu64 ": vector[%zu] = %g is not a finite "
                          "float32", self->path, self->line, j, json_number_value(x));
    }
    doc->vector = v;
    *has = true;
    return 0;
}

static int
s_jsonl_fields(nf_vecio_t *self, json_t *obj, nf_vecio_doc_t *doc)
{
    json_t *text = json_object_get(obj, "text");
    if (text && !json_is_null(text)) {
        if (!json_is_string(text))
            return s_fail(self, NF_EINVAL, "%s:%" PRIu64 ": text must be a string, got %s",
                          self->path, self->line, s_json_type(text));
        doc->text = s_arena_strdup(&self->arena, json_string_value(text),
                                   json_string_length(text));
        if (!doc->text)
            return s_fail(self, NF_ENOMEM, "%s: out of memory", self->path);
    }
    json_t *tags = json_object_get(obj, "tags");
    if (!tags || json_is_null(tags))
        return 0;
    if (!json_is_object(tags))
        return s_fail(self, NF_EINVAL, "%s:%" PRIu64 ": tags must be an object, got %s",
                      self->path, self->line, s_json_type(tags));
    size_t nt = json_object_size(tags);
    if (nt == 0)
        return 0;
    nf_tag_t *t = s_arena_alloc(&self->arena, nt * sizeof *t);
    if (!t)
        return s_fail(self, NF_ENOMEM, "%s: out of memory", self->path);
    size_t i = 0;
    const char *key;
    json_t *val;
    json_object_foreach(tags, key, val) {
        bool nested;
        t[i].value = s_scalar_text(self, val, &nested);
        if (nested)
            return s_fail(self, NF_EINVAL, "%s:%" PRIu64 ": tags.%s: value is %s; tag values "
                          "must be strings, numbers or booleans", self->path, self->line, key,
                          s_json_type(val));
        t[i].key = s_arena_strdup(&self->arena, key, strlen(key));
        if (!t[i].value || !t[i].key)
            return s_fail(self, NF_ENOMEM, "%s: out of memory", self->path);
        i++;
    }
    doc->tags = t;
    doc->ntags = i;
    return 0;
}

int
nf_vecio_set_fields(nf_vecio_t *self, const nf_field_def_t *defs, size_t n)
{
    if (!self || (n && !defs))
        return nf_error_set(NF_EINVAL, "nf_vecio_set_fields: NULL argument");
    if (n > NF_FIELDS_MAX)
        return nf_error_set(NF_EINVAL, "%zu fields, at most %d (NF_FIELDS_MAX)", n,
                            NF_FIELDS_MAX);
    nf_field_def_t *d = malloc((n + 1) * sizeof *d);
    if (!d)
        return nf_error_set(NF_ENOMEM, "out of memory");
    if (n)
        memcpy(d, defs, n * sizeof *d);
    free(self->fdefs);
    self->fdefs = d;
    self->nfdefs = n;
    return 0;
}

/* The typed fields of a JSONL document (top-level keys). */
static int
s_jsonl_typed(nf_vecio_t *self, json_t *obj, nf_vecio_doc_t *doc)
{
    if (!self->nfdefs)
        return 0;
    nf_fval_t *v = s_arena_alloc(&self->arena, self->nfdefs * sizeof *v);
    if (!v)
        return s_fail(self, NF_ENOMEM, "%s: out of memory", self->path);
    size_t n = 0;
    for (size_t i = 0; i < self->nfdefs; i++) {
        const nf_field_def_t *d = &self->fdefs[i];
        json_t *x = json_object_get(obj, d->name);
        if (!x || json_is_null(x))
            continue;
        nf_fval_t *o = &v[n];
        o->name = d->name;
        o->type = d->type;
        bool ok = true;
        switch (d->type) {
        case NF_FIELD_INT:
            ok = json_is_integer(x);
            if (ok)
                o->v.i = json_integer_value(x);
            if (ok && o->v.i == NF_INT_NULL)
                return s_fail(self, NF_EINVAL, "%s:%" PRIu64 ": id \"%s\": field '%s': %lld is "
                              "out of range", self->path, self->line, doc->id, d->name,
                              (long long) o->v.i);
            break;
        case NF_FIELD_FLOAT:
            ok = json_is_number(x);
            if (ok)
                o->v.f = json_number_value(x);
            break;
        case NF_FIELD_BOOL:
            ok = json_is_boolean(x);
            if (ok)
                o->v.b = json_is_true(x);
            break;
        case NF_FIELD_KEYWORD:
            ok = json_is_string(x);
            if (ok && (json_string_length(x) == 0 || json_string_length(x) > NF_KEYWORD_MAX))
                return s_fail(self, NF_EINVAL, "%s:%" PRIu64 ": id \"%s\": field '%s': a "
                              "keyword has 1..%d bytes (NF_KEYWORD_MAX), this one %zu",
                              self->path, self->line, doc->id, d->name, NF_KEYWORD_MAX,
                              json_string_length(x));
            if (ok && !(o->v.s = s_arena_strdup(&self->arena, json_string_value(x),
                                                json_string_length(x))))
                return s_fail(self, NF_ENOMEM, "%s: out of memory", self->path);
            break;
        case NF_FIELD_DATETIME:
            ok = json_is_string(x);
            if (ok && nf_datetime_parse(json_string_value(x), json_string_length(x),
                                        &o->v.i) != 0)
                return s_fail(self, NF_EINVAL, "%s:%" PRIu64 ": id \"%s\": field '%s': %s",
                              self->path, self->line, doc->id, d->name, nf_error_msg());
            break;
        case NF_FIELD_KEYWORDS: {
            ok = json_is_array(x);
            if (!ok)
                break;
            size_t m = json_array_size(x);
            if (m > NF_KEYWORDS_MAX)
                return s_fail(self, NF_EINVAL, "%s:%" PRIu64 ": id \"%s\": field '%s': %zu "
                              "keywords, at most %d (NF_KEYWORDS_MAX)", self->path, self->line,
                              doc->id, d->name, m, NF_KEYWORDS_MAX);
            const char **set = s_arena_alloc(&self->arena, (m + 1) * sizeof *set);
            if (!set)
                return s_fail(self, NF_ENOMEM, "%s: out of memory", self->path);
            for (size_t j = 0; j < m; j++) {
                json_t *e = json_array_get(x, j);
                if (!json_is_string(e) || json_string_length(e) == 0
                    || json_string_length(e) > NF_KEYWORD_MAX)
                    return s_fail(self, NF_EINVAL, "%s:%" PRIu64 ": id \"%s\": field '%s' is "
                                  "a keyword[] field; element %zu is %s", self->path,
                                  self->line, doc->id, d->name, j,
                                  json_is_string(e) ? "an empty or too long string"
                                                    : s_json_type(e));
                if (!(set[j] = s_arena_strdup(&self->arena, json_string_value(e),
                                              json_string_length(e))))
                    return s_fail(self, NF_ENOMEM, "%s: out of memory", self->path);
            }
            o->v.set.v = set;
            o->v.set.n = m;
            break;
        }
        default:
            break;
        }
        if (!ok)
            return s_fail(self, NF_EINVAL, "%s:%" PRIu64 ": id \"%s\": field '%s' is a%s %s "
                          "field; got %s%s", self->path, self->line, doc->id, d->name,
                          d->type == NF_FIELD_INT ? "n" : "", nf_field_type_name(d->type),
                          json_is_integer(x) || json_is_array(x) || json_is_object(x) ? "an "
                                                                                       : "a ",
                          s_json_type(x));
        n++;
    }
    doc->fields.v = v;
    doc->fields.n = n;
    return 0;
}

static int
s_next_jsonl(nf_vecio_t *self, size_t max, size_t *n, bool *all_vectors)
{
    while (*n < max) {
        errno = 0;
        ssize_t len = getline(&self->linebuf, &self->linecap, self->f);
        if (len < 0) {
            if (ferror(self->f))
                return s_fail(self, NF_EIO, "%s:%" PRIu64 ": read: %s", self->path,
                              self->line + 1, strerror(errno));
            self->eof = true;
            break;
        }
        self->line++;
        self->offset += (uint64_t) len;
        char *s = self->linebuf;
        if (self->line == 1 && len >= 3 && !memcmp(s, "\xEF\xBB\xBF", 3)) {
            s += 3;     /* UTF-8 byte order mark */
            len -= 3;
        }
        while (len > 0 && (s[len - 1] == '\n' || s[len - 1] == '\r' || s[len - 1] == ' ' ||
                           s[len - 1] == '\t'))
            len--;
        size_t lead = strspn(s, " \t");
        if ((ssize_t) lead >= len)
            continue;   /* blank line */

        json_error_t jerr;
        json_t *obj = json_loadb(s, (size_t) len, JSON_REJECT_DUPLICATES, &jerr);
        int rc = 0;
        if (!obj) {
            rc = s_fail(self, NF_EPARSE, "%s:%" PRIu64 ":%d: bad JSON: %s", self->path,
                        self->line, jerr.column, jerr.text);
            if ((rc = s_reject(self, rc, NULL)) != 0)
                return rc;
            if (self->nrejects >= max)
                break;
            continue;
        }
        if (!json_is_object(obj)) {
            rc = s_fail(self, NF_EINVAL, "%s:%" PRIu64 ": expected a JSON object, got %s",
                        self->path, self->line, s_json_type(obj));
            json_decref(obj);
            if ((rc = s_reject(self, rc, NULL)) != 0)
                return rc;
            if (self->nrejects >= max)
                break;
            continue;
        }
        nf_vecio_doc_t *doc = &self->docs[*n];
        memset(doc, 0, sizeof *doc);
        doc->record = self->record;
        doc->line = self->line;
        bool has = false;
        rc = s_jsonl_id(self, obj, doc);
        if (!rc)
            rc = s_jsonl_vector(self, obj, doc, *n, max, &has);
        if (!rc)
            rc = s_jsonl_fields(self, obj, doc);
        if (!rc)
            rc = s_jsonl_typed(self, obj, doc);
        json_decref(obj);
        if (rc) {
            if ((rc = s_reject(self, rc, doc)) != 0)
                return rc;
            if (self->nrejects >= max)
                break;
            continue;
        }
        if (!has)
            *all_vectors = false;
        self->record++;
        (*n)++;
    }
    return 0;
}

int
nf_vecio_next(nf_vecio_t *self, size_t max, nf_vecio_batch_t *batch)
{
    memset(batch, 0, sizeof *batch);
    self->given = false;
    if (self->failed)
        return nf_error_set(self->failed, "%s", self->failmsg ? self->failmsg : self->path);
    if (max == 0)
        return nf_error_set(NF_EINVAL, "%s: batch size 0", self->path);
    s_arena_reset(&self->arena);
    self->nrejects = 0;
    int rc = s_reserve(self, max);
    if (rc)
        return rc;
    size_t n = 0;
    bool all_vectors = true;
    if (!self->eof) {
        if (self->fmt == NF_VECIO_FVECS)
            rc = s_next_fvecs(self, max, &n);
        else if (self->fmt == NF_VECIO_F32)
            rc = s_next_f32(self, max, &n);
        else
            rc = s_next_jsonl(self, max, &n, &all_vectors);
        if (rc)
            return rc;
    }
    if (n == 0 && self->record == 0)
        return s_fail(self, NF_EINVAL, "%s: no documents in the file", self->path);
    batch->rejects = self->rejects;
    batch->nrejects = self->nrejects;
    batch->docs = self->docs;
    batch->n = n;
    batch->dim = self->dim;
    batch->vectors = n > 0 && all_vectors ? self->vecs : NULL;
    self->given = batch->vectors != NULL;
    return 0;
}

float *
nf_vecio_take_vectors(nf_vecio_t *self, size_t *cap)
{
    float *v = self->given ? self->vecs : NULL;
    *cap = v ? self->vecs_cap * sizeof *v : 0;
    if (v) {
        self->vecs = NULL;
        self->vecs_cap = 0;
        self->given = false;
    }
    return v;
}

int
nf_vecio_read_all(const char *path, nf_vecio_fmt_t fmt, uint32_t dim_hint, float **vectors,
                  size_t *n, uint32_t *dim)
{
    *vectors = NULL;
    *n = 0;
    *dim = 0;
    nf_vecio_t *r;
    int rc = nf_vecio_open(path, fmt, dim_hint, &r);
    if (rc)
        return rc;
    nf_vecio_require_vectors(r, true);
    float *all = NULL;
    size_t count = 0, cap = 0;
    for (;;) {
        nf_vecio_batch_t b;
        rc = nf_vecio_next(r, 4096, &b);
        if (rc || b.n == 0)
            break;
        if (count + b.n > cap) {
            size_t ncap = cap ? cap * 2 : 4096;
            while (ncap < count + b.n)
                ncap *= 2;
            float *p = realloc(all, ncap * b.dim * sizeof *p);
            if (!p) {
                rc = nf_error_set(NF_ENOMEM, "%s: out of memory for %zu vectors", path, ncap);
                break;
            }
            all = p;
            cap = ncap;
        }
        memcpy(all + count * b.dim, b.vectors, b.n * b.dim * sizeof *all);
        count += b.n;
    }
    if (rc == 0) {
        *vectors = all;
        *n = count;
        *dim = nf_vecio_dim(r);
    } else {
        free(all);
    }
    nf_vecio_destroy(&r);
    return rc;
}
