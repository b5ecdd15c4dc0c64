/*  nf_batch: columns of index batches (see nf_batch.h). */
#include "nf_batch.h"

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

void
nf_batch_reset(nf_batch_t *b, uint32_t dim)
{
    b->count = 0;
    b->dim = dim;
    b->ids.len = b->vectors.len = b->texts.len = b->tag_keys.len = b->tag_values.len = 0;
    b->id_ends.n = b->text_ends.n = b->tag_ends.n = b->tag_key_ends.n = b->tag_value_ends.n = 0;
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
    memset(b, 0, sizeof *b);
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
        if (vector)
            nf_vec_to_bytes(vector, b->dim, at);
        else
            memset(at, 0, (size_t) b->dim * 4);
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
    b->count++;
    return NF_OK;
}

void
nf_batch_view(const nf_batch_t *b, Nflow__IndexBatch *out)
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

