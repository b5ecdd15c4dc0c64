/*  nf_batch: columns of index batches (see nf_batch.h). */
#include "nf_batch.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nf_error.h"
#include "nf_msg.h"

void
nf_col_span(const uint32_t *ends, size_t n, size_t i, size_t *off, size_t *len)
{
    if (i >= n) {
        *off = 0;
        *len = 0;
        return;
    }
    size_t start = i ? ends[i - 1] : 0;
    *off = start;
    *len = ends[i] - start;
}

const char *
nf_batch_id(const Nflow__IndexBatch *b, size_t i, size_t *len)
{
    size_t off;
    nf_col_span(b->id_ends, b->n_id_ends, i, &off, len);
    return b->ids.data ? (const char *) b->ids.data + off : "";
}

const char *
nf_delete_id(const Nflow__DeleteRequest *d, size_t i, size_t *len)
{
    size_t off;
    nf_col_span(d->id_ends, d->n_id_ends, i, &off, len);
    return d->ids.data ? (const char *) d->ids.data + off : "";
}

const char *
nf_batch_text(const Nflow__IndexBatch *b, size_t i, size_t *len)
{
    size_t off;
    nf_col_span(b->text_ends, b->n_text_ends, i, &off, len);
    return b->texts.data ? (const char *) b->texts.data + off : "";
}

size_t
nf_batch_tags(const Nflow__IndexBatch *b, size_t i, size_t *t0)
{
    size_t len;
    nf_col_span(b->tag_ends, b->n_tag_ends, i, t0, &len);
    return len;
}

static int
s_buf_put(nf_buf_t *b, const void *data, size_t len)
{
    if (len > b->cap - b->len) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap - b->len < len)
            cap *= 2;
        uint8_t *p = realloc(b->data, cap);
        if (!p)
            return nf_error_set(NF_ENOMEM, "batch: out of memory for %zu bytes", cap);
        b->data = p;
        b->cap = cap;
    }
    if (len && data)
        memcpy(b->data + b->len, data, len);
    b->len += len;
    return NF_OK;
}

static int
s_ends_put(nf_ends_t *e, size_t end)
{
    if (e->n == e->cap) {
        size_t cap = e->cap ? 2 * e->cap : 1024;
        uint32_t *p = realloc(e->v, cap * sizeof *p);
        if (!p)
            return nf_error_set(NF_ENOMEM, "batch: out of memory for %zu offsets", cap);
        e->v = p;
        e->cap = cap;
    }
    e->v[e->n++] = (uint32_t) end;
    return NF_OK;
}

static void
s_le64(uint8_t *at, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        at[i] = (uint8_t) (v >> (8 * i));
}

static uint64_t
s_rd64(const uint8_t *at)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v |= (uint64_t) at[i] << (8 * i);
    return v;
}

static bool
s_isnull(const ProtobufCBinaryData *nulls, size_t i)
{
    return nulls->len > i / 8 && (nulls->data[i / 8] >> (i % 8) & 1);
}

void
nf_batch_set_columns(nf_batch_t *b, const nf_field_def_t *defs, size_t n)
{
    b->ncols = n < NF_FIELDS_MAX ? n : NF_FIELDS_MAX;
    for (size_t c = 0; c < b->ncols; c++) {
        nf_bcol_t *col = &b->cols[c];
        snprintf(col->name, sizeof col->name, "%s", defs[c].name);
        col->type = defs[c].type;
        col->values.len = col->nulls.len = 0;
        col->ends.n = col->item_ends.n = 0;
        col->any_null = false;
    }
}

/* Document doc's bit of col's null bitmap (grown to hold it): set when
   null.  NF_ENOMEM when the bitmap cannot grow. */
static int
s_col_null(nf_bcol_t *col, size_t doc, bool null)
{
    if (doc / 8 >= col->nulls.len) {
        uint8_t zero = 0;
        if (s_buf_put(&col->nulls, &zero, 1))
            return NF_ENOMEM;
    }
    if (null) {
        col->nulls.data[doc / 8] |= (uint8_t) (1u << (doc % 8));
        col->any_null = true;
    }
    return NF_OK;
}

/* Append one value (v NULL or NF_FIELD_NULL: null) to column col of a batch
   whose document number is doc. */
static int
s_col_put(nf_bcol_t *col, size_t doc, const nf_fval_t *v)
{
    bool null = !v || v->type == NF_FIELD_NULL;
    if (s_col_null(col, doc, null))
        return NF_ENOMEM;
    uint8_t w[8];
    switch (col->type) {
    case NF_FIELD_INT:
    case NF_FIELD_DATETIME:
        if (!null && v->type != NF_FIELD_INT && v->type != col->type)
            goto wrong;
        s_le64(w, null ? 0 : (uint64_t) v->v.i);
        return s_buf_put(&col->values, w, 8);
    case NF_FIELD_FLOAT: {
        if (!null && v->type != NF_FIELD_FLOAT && v->type != NF_FIELD_INT)
            goto wrong;
        double d = null ? 0.0 : v->type == NF_FIELD_INT ? (double) v->v.i : v->v.f;
        uint64_t bits;
        memcpy(&bits, &d, 8);
        s_le64(w, bits);
        return s_buf_put(&col->values, w, 8);
    }
    case NF_FIELD_BOOL:
        if (!null && v->type != NF_FIELD_BOOL)
            goto wrong;
        w[0] = !null && v->v.b;
        return s_buf_put(&col->values, w, 1);
    case NF_FIELD_KEYWORD:
        if (!null && v->type != NF_FIELD_KEYWORD)
            goto wrong;
        if (!null && s_buf_put(&col->values, v->v.s, strlen(v->v.s)))
            return NF_ENOMEM;
        return s_ends_put(&col->ends, col->values.len);
    case NF_FIELD_KEYWORDS:
        if (!null && v->type == NF_FIELD_KEYWORD) {
            if (s_buf_put(&col->values, v->v.s, strlen(v->v.s))
                || s_ends_put(&col->ends, col->values.len))
                return NF_ENOMEM;
        } else if (!null && v->type == NF_FIELD_KEYWORDS) {
            for (size_t k = 0; k < v->v.set.n; k++)
                if (s_buf_put(&col->values, v->v.set.v[k], strlen(v->v.set.v[k]))
                    || s_ends_put(&col->ends, col->values.len))
                    return NF_ENOMEM;
        } else if (!null) {
            goto wrong;
        }
        return s_ends_put(&col->item_ends, col->ends.n);
    default:
        break;
    }
wrong:
    return nf_error_set(NF_EINVAL, "field '%s' has type %s; the value is a %s", col->name,
                        nf_field_type_name(col->type), nf_field_type_name(v->type));
}

int
nf_batch_add_fields(nf_batch_t *b, const nf_fields_t *f)
{
    size_t doc = b->count ? b->count - 1 : 0;
    for (size_t c = 0; c < b->ncols; c++) {
        const nf_fval_t *v = NULL;
        for (size_t j = 0; f && j < f->n; j++)
            if (f->v[j].name && !strcmp(f->v[j].name, b->cols[c].name))
                v = &f->v[j];
        int rc = s_col_put(&b->cols[c], doc, v);
        if (rc)
            return rc;
    }
    return NF_OK;
}

/* Copy document i's value of the checked column src into col (same type). */
static int
s_col_copy(nf_bcol_t *col, size_t doc, const Nflow__Column *src, size_t i)
{
    bool null = s_isnull(&src->nulls, i);
    if (s_col_null(col, doc, null))
        return NF_ENOMEM;
    size_t off, len;
    switch (col->type) {
    case NF_FIELD_INT:
    case NF_FIELD_DATETIME:
    case NF_FIELD_FLOAT:
        return s_buf_put(&col->values, src->values.data + 8 * i, 8);
    case NF_FIELD_BOOL:
        return s_buf_put(&col->values, src->values.data + i, 1);
    case NF_FIELD_KEYWORD:
        nf_col_span(src->ends, src->n_ends, i, &off, &len);
        if (s_buf_put(&col->values, src->values.data + off, len))
            return NF_ENOMEM;
        return s_ends_put(&col->ends, col->values.len);
    case NF_FIELD_KEYWORDS: {
        size_t k0, nk;
        nf_col_span(src->item_ends, src->n_item_ends, i, &k0, &nk);
        for (size_t k = k0; k < k0 + nk; k++) {
            nf_col_span(src->ends, src->n_ends, k, &off, &len);
            if (s_buf_put(&col->values, src->values.data + off, len)
                || s_ends_put(&col->ends, col->values.len))
                return NF_ENOMEM;
        }
        return s_ends_put(&col->item_ends, col->ends.n);
    }
    default:
        return NF_OK;
    }
}

size_t
nf_batch_fields_room(const Nflow__IndexBatch *b, size_t *strbytes, size_t *nptrs)
{
    *strbytes = 1;
    *nptrs = 1;
    for (size_t c = 0; c < b->n_columns; c++) {
        const Nflow__Column *col = b->columns[c];
        if (col->type == NF_FIELD_KEYWORD || col->type == NF_FIELD_KEYWORDS)
            *strbytes += col->values.len + col->n_ends;
        if (col->type == NF_FIELD_KEYWORDS)
            *nptrs += col->n_ends;
    }
    return b->n_columns;
}

size_t
nf_batch_fields(const Nflow__IndexBatch *b, size_t i, nf_fval_t *out, char **strs,
                const char ***ptrs)
{
    size_t n = 0;
    for (size_t c = 0; c < b->n_columns && c < NF_FIELDS_MAX; c++) {
        const Nflow__Column *col = b->columns[c];
        nf_fval_t *v = &out[n++];
        memset(v, 0, sizeof *v);
        v->name = col->name;
        if (s_isnull(&col->nulls, i)) {
            v->type = NF_FIELD_NULL;
            continue;
        }
        v->type = (nf_ftype_t) col->type;
        size_t off, len;
        switch (col->type) {
        case NF_FIELD_INT:
        case NF_FIELD_DATETIME:
            v->v.i = (int64_t) s_rd64(col->values.data + 8 * i);
            break;
        case NF_FIELD_FLOAT: {
            uint64_t bits = s_rd64(col->values.data + 8 * i);
            memcpy(&v->v.f, &bits, 8);
            break;
        }
        case NF_FIELD_BOOL:
            v->v.b = col->values.data[i] != 0;
            break;
        case NF_FIELD_KEYWORD:
            nf_col_span(col->ends, col->n_ends, i, &off, &len);
            memcpy(*strs, col->values.data + off, len);
            (*strs)[len] = '\0';
            v->v.s = *strs;
            *strs += len + 1;
            break;
        case NF_FIELD_KEYWORDS: {
            size_t k0, nk;
            nf_col_span(col->item_ends, col->n_item_ends, i, &k0, &nk);
            v->v.set.v = *ptrs;
            v->v.set.n = nk;
            for (size_t k = k0; k < k0 + nk; k++) {
                nf_col_span(col->ends, col->n_ends, k, &off, &len);
                memcpy(*strs, col->values.data + off, len);
                (*strs)[len] = '\0';
                *(*ptrs)++ = *strs;
                *strs += len + 1;
            }
            break;
        }
        default:
            v->type = NF_FIELD_NULL;
        }
    }
    return n;
}

void
nf_batch_reset(nf_batch_t *b, uint32_t dim)
{
    b->count = 0;
    b->dim = dim;
    b->ids.len = b->vectors.len = b->texts.len = b->tag_keys.len = b->tag_values.len = 0;
    b->id_ends.n = b->text_ends.n = b->tag_ends.n = b->tag_key_ends.n = b->tag_value_ends.n = 0;
    b->ncols = 0;
}

void
nf_batch_free(nf_batch_t *b)
{
    free(b->ids.data);
    free(b->vectors.data);
    free(b->texts.data);
    free(b->tag_keys.data);
    free(b->tag_values.data);
    free(b->id_ends.v);
    free(b->text_ends.v);
    free(b->tag_ends.v);
    free(b->tag_key_ends.v);
    free(b->tag_value_ends.v);
    for (size_t c = 0; c < NF_FIELDS_MAX; c++) {
        free(b->cols[c].values.data);
        free(b->cols[c].nulls.data);
        free(b->cols[c].ends.v);
        free(b->cols[c].item_ends.v);
    }
    memset(b, 0, sizeof *b);
}

void
nf_batch_adopt_vectors(nf_batch_t *b, void *block, size_t cap)
{
    free(b->vectors.data);
    b->vectors = (nf_buf_t) {block, 0, block ? cap : 0};
}

int
nf_batch_add(nf_batch_t *b, const char *id, size_t idlen, const float *vector,
             const char *text, size_t textlen, const char *const *keys,
             const char *const *values, size_t ntags)
{
    if (s_buf_put(&b->ids, id, idlen) || s_ends_put(&b->id_ends, b->ids.len))
        return NF_ENOMEM;
    if (b->dim) {
        if (s_buf_put(&b->vectors, NULL, (size_t) b->dim * 4))
            return NF_ENOMEM;
        uint8_t *at = b->vectors.data + b->vectors.len - (size_t) b->dim * 4;
        if (!vector)
            memset(at, 0, (size_t) b->dim * 4);
        else if ((const void *) vector != at)   /* else: already there (adopted) */
            nf_vec_to_bytes(vector, b->dim, at);
    }
    if (s_buf_put(&b->texts, text, text ? textlen : 0) || s_ends_put(&b->text_ends, b->texts.len))
        return NF_ENOMEM;
    for (size_t t = 0; t < ntags; t++)
        if (s_buf_put(&b->tag_keys, keys[t], strlen(keys[t]))
            || s_ends_put(&b->tag_key_ends, b->tag_keys.len)
            || s_buf_put(&b->tag_values, values[t], strlen(values[t]))
            || s_ends_put(&b->tag_value_ends, b->tag_values.len))
            return NF_ENOMEM;
    if (s_ends_put(&b->tag_ends, b->tag_key_ends.n))
        return NF_ENOMEM;
    b->count++;
    return NF_OK;
}

int
nf_batch_add_from(nf_batch_t *b, const Nflow__IndexBatch *src, size_t i)
{
    size_t len, off;
    const char *id = nf_batch_id(src, i, &len);
    if (s_buf_put(&b->ids, id, len) || s_ends_put(&b->id_ends, b->ids.len))
        return NF_ENOMEM;
    if (b->dim && src->vectors.len) {
        size_t row = (size_t) b->dim * 4;
        if (s_buf_put(&b->vectors, src->vectors.data + i * row, row))
            return NF_ENOMEM;
    }
    const char *text = nf_batch_text(src, i, &len);
    if (s_buf_put(&b->texts, text, len) || s_ends_put(&b->text_ends, b->texts.len))
        return NF_ENOMEM;
    size_t t0, nt = nf_batch_tags(src, i, &t0);
    for (size_t t = t0; t < t0 + nt; t++) {
        nf_col_span(src->tag_key_ends, src->n_tag_key_ends, t, &off, &len);
        if (s_buf_put(&b->tag_keys, src->tag_keys.data + off, len)
            || s_ends_put(&b->tag_key_ends, b->tag_keys.len))
            return NF_ENOMEM;
        nf_col_span(src->tag_value_ends, src->n_tag_value_ends, t, &off, &len);
        if (s_buf_put(&b->tag_values, src->tag_values.data + off, len)
            || s_ends_put(&b->tag_value_ends, b->tag_values.len))
            return NF_ENOMEM;
    }
    if (s_ends_put(&b->tag_ends, b->tag_key_ends.n))
        return NF_ENOMEM;
    if (b->count == 0 && b->ncols == 0 && src->n_columns) {
        b->ncols = src->n_columns < NF_FIELDS_MAX ? src->n_columns : NF_FIELDS_MAX;
        for (size_t c = 0; c < b->ncols; c++) {
            nf_bcol_t *col = &b->cols[c];
            snprintf(col->name, sizeof col->name, "%s", src->columns[c]->name);
            col->type = (nf_ftype_t) src->columns[c]->type;
            col->values.len = col->nulls.len = 0;
            col->ends.n = col->item_ends.n = 0;
            col->any_null = false;
        }
    }
    for (size_t c = 0; c < b->ncols && c < src->n_columns; c++)
        if (s_col_copy(&b->cols[c], b->count, src->columns[c], i))
            return NF_ENOMEM;
    b->count++;
    return NF_OK;
}

void
nf_batch_view(nf_batch_t *b, Nflow__IndexBatch *out)
{
    Nflow__IndexBatch init = NFLOW__INDEX_BATCH__INIT;
    *out = init;
    out->count = b->count;
    out->ids = (ProtobufCBinaryData) {b->ids.len, b->ids.data};
    out->id_ends = b->id_ends.v;
    out->n_id_ends = b->id_ends.n;
    if (b->dim && b->vectors.len) {
        out->dim = b->dim;
        out->vectors = (ProtobufCBinaryData) {b->vectors.len, b->vectors.data};
    }
    if (b->texts.len) {
        out->texts = (ProtobufCBinaryData) {b->texts.len, b->texts.data};
        out->text_ends = b->text_ends.v;
        out->n_text_ends = b->text_ends.n;
    }
    if (b->tag_key_ends.n) {
        out->tag_ends = b->tag_ends.v;
        out->n_tag_ends = b->tag_ends.n;
        out->tag_keys = (ProtobufCBinaryData) {b->tag_keys.len, b->tag_keys.data};
        out->tag_key_ends = b->tag_key_ends.v;
        out->n_tag_key_ends = b->tag_key_ends.n;
        out->tag_values = (ProtobufCBinaryData) {b->tag_values.len, b->tag_values.data};
        out->tag_value_ends = b->tag_value_ends.v;
        out->n_tag_value_ends = b->tag_value_ends.n;
    }
    for (size_t c = 0; c < b->ncols && b->count; c++) {
        const nf_bcol_t *col = &b->cols[c];
        Nflow__Column *v = &b->colv[c];
        nflow__column__init(v);
        v->name = (char *) col->name;
        v->type = (uint32_t) col->type;
        v->values = (ProtobufCBinaryData) {col->values.len, col->values.data};
        if (col->any_null)
            v->nulls = (ProtobufCBinaryData) {col->nulls.len, col->nulls.data};
        if (col->type == NF_FIELD_KEYWORD || col->type == NF_FIELD_KEYWORDS) {
            v->ends = col->ends.v;
            v->n_ends = col->ends.n;
        }
        if (col->type == NF_FIELD_KEYWORDS) {
            v->item_ends = col->item_ends.v;
            v->n_item_ends = col->item_ends.n;
        }
        b->colp[c] = v;
    }
    if (b->ncols && b->count) {
        out->columns = b->colp;
        out->n_columns = b->ncols;
    }
}

void
nf_batch_view_delete(const nf_batch_t *b, Nflow__DeleteRequest *out)
{
    Nflow__DeleteRequest init = NFLOW__DELETE_REQUEST__INIT;
    *out = init;
    out->count = b->count;
    out->ids = (ProtobufCBinaryData) {b->ids.len, b->ids.data};
    out->id_ends = b->id_ends.v;
    out->n_id_ends = b->id_ends.n;
}

