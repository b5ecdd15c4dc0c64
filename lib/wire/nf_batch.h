/*  nf_batch: the columns of index batches, deletes and searches (protocol
    2, proto/README.md "Bodies"): reading one item of a checked column, and
    building columnar batches in buffers that grow once and are reused
    from batch to batch (the client, the router's per-shard split, tests).

    A column is a blob of concatenated items and a list of cumulative end
    offsets (item i spans [ends[i-1], ends[i]), ends[-1] = 0).  The readers
    trust their input: call them only on messages nf_msg_recv accepted, or
    after nf_msg_check_limits.  The builder checks nothing but memory; the
    receiver checks the limits.                                           */
#ifndef NF_BATCH_H
#define NF_BATCH_H

#include <stddef.h>
#include <stdint.h>

#include "nflow.pb-c.h"
#include "nf_limits.h"
#include "nf_segment.h"     /* nf_field_def_t, nf_fields_t */

/* Item i of a column given by its cumulative ends[n]: *off and *len in
   the blob (0, 0 when the column is absent, n == 0).  Checked columns
   only (nf_msg_check_limits). */
void nf_col_span(const uint32_t *ends, size_t n, size_t i, size_t *off, size_t *len);

/* Id i of a checked batch (not NUL-terminated): pointer and *len. */
const char *nf_batch_id(const Nflow__IndexBatch *b, size_t i, size_t *len);
const char *nf_delete_id(const Nflow__DeleteRequest *d, size_t i, size_t *len);

/* Text i of a checked batch ("" with *len 0 when it has none). */
const char *nf_batch_text(const Nflow__IndexBatch *b, size_t i, size_t *len);

/* Tags of document i of a checked batch: their index range [*t0, *t0 + n)
   in tag_key_ends / tag_value_ends; returns n. */
size_t nf_batch_tags(const Nflow__IndexBatch *b, size_t i, size_t *t0);

/* ------------------------------------------------------------------ */
/* Building columnar batches (client, encoder, router): the buffers grow  */
/* once and are reused by nf_batch_reset, so a stream of batches does not */
/* allocate.                                                              */

typedef struct {
    uint8_t *data;
    size_t len, cap;
} nf_buf_t;

typedef struct {
    uint32_t *v;
    size_t n, cap;
} nf_ends_t;

/* One typed column being built (proto/README.md "Typed fields"). */
typedef struct {
    char name[NF_FIELD_NAME_MAX + 1];
    nf_ftype_t type;
    nf_buf_t values, nulls;
    nf_ends_t ends, item_ends;
    bool any_null;
} nf_bcol_t;

typedef struct {
    uint32_t count, dim;        /* dim 0: no vectors */
    nf_buf_t ids, vectors, texts, tag_keys, tag_values;
    nf_ends_t id_ends, text_ends, tag_ends, tag_key_ends, tag_value_ends;
    nf_bcol_t cols[NF_FIELDS_MAX];      /* typed columns (nf_batch_set_columns) */
    size_t ncols;
    Nflow__Column colv[NF_FIELDS_MAX], *colp[NF_FIELDS_MAX];    /* nf_batch_view's */
} nf_batch_t;

/* Empty b for a new batch of vectors of dim values (0 = without vectors),
   keeping its buffers; the batch has no typed column until
   nf_batch_set_columns. */
void nf_batch_reset(nf_batch_t *b, uint32_t dim);

/* Free b's buffers; b is zeroed and may be reused. */
void nf_batch_free(nf_batch_t *b);

/* Make block (cap bytes, malloc'd) b's vector buffer, empty; b frees it.
   A document whose vector is already where nf_batch_add would copy it
   (the buffer's next row) is not copied: a reader's block of rows becomes
   the batch's vectors without a pass over them. */
void nf_batch_adopt_vectors(nf_batch_t *b, void *block, size_t cap);

/* Add one document: id (idlen bytes), vector (b->dim floats, or NULL when
   b->dim is 0), text (may be NULL), tags as key/value strings.  Nothing
   is checked but memory: NF_ENOMEM. */
int nf_batch_add(nf_batch_t *b, const char *id, size_t idlen, const float *vector,
                 const char *text, size_t textlen, const char *const *keys,
                 const char *const *values, size_t ntags);

/* Give the (empty) batch one typed column per field defs[0..n) (n <=
   NF_FIELDS_MAX); every document added then has a value or a null in
   each: nf_batch_add_fields after nf_batch_add. */
void nf_batch_set_columns(nf_batch_t *b, const nf_field_def_t *defs, size_t n);

/* The typed values of the document nf_batch_add just added: f's values by
   name (a name without a column is skipped, a column without a value gets
   a null).  The values must have their column's type (an int is taken for
   a float, a keyword for a keyword[]; the caller checked them, e.g.
   nf_vecio's typed fields); NF_EINVAL otherwise, NF_ENOMEM. */
int nf_batch_add_fields(nf_batch_t *b, const nf_fields_t *f);

/* Add document i of the checked batch src, its id, vector row, text,
   tags and typed values copied as byte ranges (the router's split; b
   takes src's columns when it has none and is empty). */
int nf_batch_add_from(nf_batch_t *b, const Nflow__IndexBatch *src, size_t i);

/* The wire view of b: out's pointers point into b's buffers (valid until
   b changes); columns with nothing in them are left empty. */
void nf_batch_view(nf_batch_t *b, Nflow__IndexBatch *out);

/* Typed values of document i of a checked batch into out[0..NF_FIELDS_MAX)
   (one per column, type NF_FIELD_NULL for a null): keywords are copied
   NUL-terminated into strs (room for the column blobs' bytes plus one per
   keyword: nf_batch_fields_room) and keyword[] pointers into ptrs.
   Returns how many values were written. */
size_t nf_batch_fields_room(const Nflow__IndexBatch *b, size_t *strbytes, size_t *nptrs);
size_t nf_batch_fields(const Nflow__IndexBatch *b, size_t i, nf_fval_t *out, char **strs,
                       const char ***ptrs);

/* The same ids as a DeleteRequest view. */
void nf_batch_view_delete(const nf_batch_t *b, Nflow__DeleteRequest *out);

#endif
