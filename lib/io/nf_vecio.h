/*  nf_vecio: documents in.

    Owns a reader over document files shared by the `nflow` tools and the
    pods: .fvecs (int32 dim + dim float32 per record), .f32 (raw row-major
    float32, dim given by the caller) and JSONL (one object per line:
    {"id": string|number, "vector": [numbers]?, "text": string?, "tags":
    {key: string|number|bool}?}), returned in batches whose memory the
    reader owns.

    Every input error names the file and where (file:line for JSONL, file:
    record N (byte B) for the binary formats) and what was wrong.           */
#ifndef NF_VECIO_H
#define NF_VECIO_H

#include "nf_payload.h"      /* nf_tag_t */
#include "nf_segment.h"      /* nf_field_def_t, nf_fields_t */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* ------------------------------------------------------------------ */
/* Reader                                                              */

typedef enum {
    NF_VECIO_AUTO = 0,      /* from the extension: .fvecs, .f32, .jsonl/.json/.ndjson */
    NF_VECIO_FVECS,
    NF_VECIO_F32,
    NF_VECIO_JSONL,
} nf_vecio_fmt_t;

/* One document of a batch.  Pointers are owned by the reader and valid until
   the next nf_vecio_next / nf_vecio_destroy on it. */
typedef struct {
    const char *id;         /* given id, or the 0-based record number in decimal */
    const char *text;       /* NULL when absent */
    const nf_tag_t *tags;   /* ntags entries, NULL when none */
    size_t ntags;
    const float *vector;    /* dim floats, NULL when the document has none (JSONL) */
    uint64_t record;        /* 0-based record number across the file */
    uint64_t line;          /* 1-based line number (JSONL); 0 for binary formats */
    nf_fields_t fields;     /* typed field values (nf_vecio_set_fields), top-level
                               JSONL keys; a missing or null key is left out (null) */
} nf_vecio_doc_t;

/* A record skipped by a reader in skip mode (nf_vecio_skip_bad). */
typedef struct {
    uint64_t record;        /* 0-based record number (as a good one would have had) */
    uint64_t line;          /* 1-based line number (JSONL) */
    const char *id;         /* its id when that much was read, else NULL */
    const char *why;        /* "FILE:LINE: what was wrong" */
} nf_vecio_reject_t;

typedef struct {
    const nf_vecio_reject_t *rejects;   /* skip mode: records skipped by this call */
    size_t nrejects;
    const nf_vecio_doc_t *docs;
    size_t n;
    uint32_t dim;           /* vector dim of the file (0 while no vector was seen) */
    const float *vectors;   /* row-major n x dim when EVERY doc of the batch has a
                               vector (docs[i].vector == vectors + i*dim), else NULL */
} nf_vecio_batch_t;

typedef struct nf_vecio nf_vecio_t;

/* Parse a format name ("fvecs", "f32", "jsonl"/"json"/"ndjson", "auto"). */
int nf_vecio_fmt_parse(const char *name, nf_vecio_fmt_t *fmt);

/* Format chosen for path by its extension, or NF_VECIO_AUTO when unknown. */
nf_vecio_fmt_t nf_vecio_fmt_guess(const char *path);

/* Open path for reading.  fmt NF_VECIO_AUTO picks by extension (NF_EINVAL on
   an unknown one).  dim_hint 0 = take the dim from the data; > 0 = every
   vector must have exactly that dim (required for .f32, whose size must be a
   multiple of dim*4).  Fails on a missing or empty file, a bad first .fvecs
   header, a .f32 size mismatch.  On success *out is the reader. */
int nf_vecio_open(const char *path, nf_vecio_fmt_t fmt, uint32_t dim_hint, nf_vecio_t **out);

/* Require a vector on every document: a JSONL line without "vector" is then
   an error naming file:line (use for queries and for segment building). */
void nf_vecio_require_vectors(nf_vecio_t *self, bool require);

/* Read the typed fields defs[0..n) from every JSONL document: the
   top-level key of each field's name, checked against its type (int: a JSON
   integer; float: a number; bool: true/false; keyword: a string; keyword[]:
   an array of strings; datetime: an RFC 3339 string).  A value of another
   type makes the document bad: "FILE:LINE: id "X": field 'year' is an int
   field; got a string" (skipped in skip mode).  Copies defs. */
int nf_vecio_set_fields(nf_vecio_t *self, const nf_field_def_t *defs, size_t n);

/* Skip bad records instead of failing: a JSONL line that is not JSON or
   whose id, vector, text or tags are bad is reported in the batch's
   rejects and the reader goes on with the next line.  Errors of the file
   itself (I/O, a truncated binary file) still fail. */
void nf_vecio_skip_bad(nf_vecio_t *self, bool skip);

/* Read up to max (>= 1) documents into *batch (in skip mode, also stop
   after max rejects).  Returns 0 with batch->n == 0 and no rejects
   at the end of the file (an input with no document at all is an error).
   On error returns a negative NF_E... code with the message naming the
   place; the reader stays at the failing record (further calls fail again). */
int nf_vecio_next(nf_vecio_t *self, size_t max, nf_vecio_batch_t *batch);

/* Take the last batch's vector block (batch->vectors, where its documents'
   vectors point): the caller owns it from now on (free()), *cap bytes
   long; the reader reads its next batch into a new one.  NULL (and *cap
   0) when the batch had no block. */
float *nf_vecio_take_vectors(nf_vecio_t *self, size_t *cap);

/* Dim known so far: the hint, the .fvecs header, or the first JSONL vector;
   0 when not known yet. */
uint32_t nf_vecio_dim(const nf_vecio_t *self);

nf_vecio_fmt_t nf_vecio_fmt(const nf_vecio_t *self);

/* Bytes consumed so far and the file's size, for progress bars. */
void nf_vecio_progress(const nf_vecio_t *self, uint64_t *done, uint64_t *total);

/* Close and free; accepts NULL and *self_p == NULL; sets *self_p to NULL. */
void nf_vecio_destroy(nf_vecio_t **self_p);

/* Read a whole file of vectors (e.g. queries) into one malloc'd row-major
   matrix: *vectors (caller frees with free()), *n rows of *dim.  Every
   document must have a vector; dim_hint as for nf_vecio_open. */
int nf_vecio_read_all(const char *path, nf_vecio_fmt_t fmt, uint32_t dim_hint,
                      float **vectors, size_t *n, uint32_t *dim);

#endif
