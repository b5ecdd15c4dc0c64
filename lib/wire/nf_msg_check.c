/*  nf_msg_check: what a peer may send (see nf_msg.h, nf_limits.h).  Two
    passes: before protobuf-c unpacks a frame, a walk over its bytes counts
    every repeated field against its limit (nothing is allocated for a
    count over it); after, every count, dimension and offset of the
    unpacked message is checked against the limits and the blobs it
    indexes, and a client's request against what the gateway accepts.  The
    codec that calls them is nf_msg.c.                                   */
#include "nf_msg.h"
#include "nf_msg_impl.h"

#include <stdio.h>
#include <string.h>

#include "nf_error.h"
#include "nf_limits.h"

/* Limits, before unpacking: protobuf-c allocates one struct per element
   of a repeated message or string field, and one array per packed field,
   so the counts a frame holds are checked on its bytes first.  The shapes
   below are the repeated fields of nflow.proto; anything not listed is
   skipped.  A count over its limit is NF_EPROTO naming the limit and the
   value. */

typedef struct s_shape s_shape_t;

typedef struct {
    uint32_t field;
    const char *name;           /* the limit, for the error message */
    uint32_t max;               /* occurrences in one message */
    bool packed;                /* repeated uint32: count the varints */
    const s_shape_t *child;     /* embedded message to walk, or NULL */
} s_field_t;

struct s_shape {
    const s_field_t *fields;
    size_t n;
};

#define S_SHAPE(name, ...)                                                     \
    static const s_field_t name##_fields[] = {__VA_ARGS__};                   \
    static const s_shape_t name = {name##_fields,                             \
                                   sizeof name##_fields / sizeof name##_fields[0]}

S_SHAPE(s_doc_shape, {4, "tags per document (NF_TAGS_MAX)", NF_TAGS_MAX, false, NULL});
S_SHAPE(s_matches_shape, {1, "matches per query (NF_TOPK_MAX)", NF_TOPK_MAX, false, &s_doc_shape});
S_SHAPE(s_column_shape,
        {4, "column keyword ends (NF_DOCS_MAX x NF_KEYWORDS_MAX)", NF_DOCS_MAX * NF_KEYWORDS_MAX,
         true, NULL},
        {6, "column item ends (NF_DOCS_MAX)", NF_DOCS_MAX, true, NULL});
S_SHAPE(s_index_shape,
        {4, "id ends (NF_DOCS_MAX)", NF_DOCS_MAX, true, NULL},
        {7, "text ends (NF_DOCS_MAX)", NF_DOCS_MAX, true, NULL},
        {8, "tag ends (NF_DOCS_MAX)", NF_DOCS_MAX, true, NULL},
        {10, "tag key ends (NF_FRAME_TAGS_MAX)", NF_FRAME_TAGS_MAX, true, NULL},
        {12, "tag value ends (NF_FRAME_TAGS_MAX)", NF_FRAME_TAGS_MAX, true, NULL},
        {15, "typed field columns (NF_FIELDS_MAX)", NF_FIELDS_MAX, false, &s_column_shape});
S_SHAPE(s_delete_shape, {4, "id ends (NF_DOCS_MAX)", NF_DOCS_MAX, true, NULL});
S_SHAPE(s_search_shape,
        {3, "query texts (NF_QUERIES_MAX)", NF_QUERIES_MAX, false, NULL},
        {8, "output fields (NF_FIELDS_MAX)", NF_FIELDS_MAX, false, NULL});
S_SHAPE(s_result_shape,
        {1, "queries per request (NF_QUERIES_MAX)", NF_QUERIES_MAX, false, &s_matches_shape},
        {5, "missing shards (NF_SHARDS_MAX)", NF_SHARDS_MAX, true, NULL});
S_SHAPE(s_plan_shape, {1, "shards (NF_SHARDS_MAX)", NF_SHARDS_MAX, true, NULL},
        {2, "down shards (NF_SHARDS_MAX)", NF_SHARDS_MAX, true, NULL});
S_SHAPE(s_header_shape, {5, "hops (NF_HOPS_MAX)", NF_HOPS_MAX, false, NULL});
S_SHAPE(s_control_shape, {0, "(nothing counted)", UINT32_MAX, false, NULL});   /* no repeated fields */

static const s_shape_t *
s_shape_of(int body_case)
{
    switch (body_case) {
    case NF_BODY_INDEX: return &s_index_shape;
    case NF_BODY_DELETE: return &s_delete_shape;
    case NF_BODY_SEARCH: return &s_search_shape;
    case NF_BODY_RESULT: return &s_result_shape;
    case NF_BODY_PLAN: return &s_plan_shape;
    default: return &s_control_shape;
    }
}

static bool
s_varint(const uint8_t **p, const uint8_t *end, uint64_t *v)
{
    uint64_t x = 0;
    for (int shift = 0; shift < 64 && *p < end; shift += 7) {
        uint8_t b = *(*p)++;
        x |= (uint64_t) (b & 0x7f) << shift;
        if (!(b & 0x80)) {
            *v = x;
            return true;
        }
    }
    return false;
}

bool
nf_msg_next_field(const uint8_t **p, const uint8_t *end, uint64_t *field, uint32_t *wire,
                  uint64_t *v, const uint8_t **body)
{
    uint64_t key;
    if (!s_varint(p, end, &key))
        return false;
    *field = key >> 3;
    *wire = (uint32_t) (key & 7);
    *body = *p;
    switch (*wire) {
    case 0:
        return s_varint(p, end, v);
    case 1:
    case 5:
        *v = *wire == 1 ? 8 : 4;
        break;
    case 2:
        if (!s_varint(p, end, v))
            return false;
        *body = *p;
        break;
    default:
        return false;
    }
    if (*v > (uint64_t) (end - *p))
        return false;
    *p += *v;
    return true;
}

/* Walk one message of shape sh in [p, end).  Bytes that are not protobuf
   are left to the unpacker to refuse (it allocates nothing sized by them). */
static int
s_walk(const uint8_t *p, const uint8_t *end, const s_shape_t *sh, nf_msg_scan_t *sc, bool top)
{
    uint64_t counts[8] = {0};
    int over = -1;              /* first field over its limit: counted to the end */
    while (p < end) {
        uint64_t number, len;   /* len: wire 0's value, else its bytes */
        uint32_t wire;
        const uint8_t *body;
        if (!nf_msg_next_field(&p, end, &number, &wire, &len, &body))
            return NF_OK;
        uint32_t field = (uint32_t) number;
        if (wire == 0 && top && field == 2)
            sc->request_id = len;
        if (wire == 0 && top && field == 1)
            sc->version = len;
        for (size_t i = 0; i < sh->n; i++) {
            const s_field_t *f = &sh->fields[i];
            if (f->field != field)
                continue;
            uint64_t add = 1;
            if (f->packed && wire == 2) {       /* count the varints of a packed run */
                add = 0;
                for (const uint8_t *q = body; q < body + len; q++)
                    add += !(*q & 0x80);
            }
            counts[i] += add;
            if (counts[i] > f->max && over < 0 && i < 8)
                over = (int) i;
            if (over >= 0)
                continue;       /* only counting now */
            if (sh == &s_column_shape && f->field == 4 && (sc->keywords += add)
                > (uint64_t) NF_DOCS_MAX * NF_KEYWORDS_MAX)
                return nf_error_set(NF_EPROTO, "keywords in one frame (NF_DOCS_MAX x "
                                    "NF_KEYWORDS_MAX): more than %d",
                                    NF_DOCS_MAX * NF_KEYWORDS_MAX);
            if (sh == &s_doc_shape && ++sc->tags > NF_FRAME_TAGS_MAX)
                return nf_error_set(NF_EPROTO, "tags in one frame (NF_FRAME_TAGS_MAX): more "
                                    "than %d", NF_FRAME_TAGS_MAX);
            if (f->child == &s_doc_shape && sh == &s_matches_shape
                && ++sc->matches > NF_MATCHES_MAX)
                return nf_error_set(NF_EPROTO, "matches per answer (NF_MATCHES_MAX): more "
                                    "than %d", NF_MATCHES_MAX);
            if (f->child && wire == 2) {
                int rc = s_walk(body, body + len, f->child, sc, false);
                if (rc)
                    return rc;
            }
        }
    }
    if (over >= 0)
        return nf_error_set(NF_EPROTO, "%s: %llu, at most %u", sh->fields[over].name,
                            (unsigned long long) counts[over], sh->fields[over].max);
    return NF_OK;
}

int
nf_msg_walk(const void *data, size_t size, int body_case, nf_msg_scan_t *scan)
{
    const uint8_t *p = data;
    if (body_case == NF_MSG_WALK_HEADER)
        return s_walk(p, p + size, &s_header_shape, scan, true);
    return s_walk(p, p + size, s_shape_of(body_case), scan, false);
}

/* ------------------------------------------------------------------ */
/* Limits, after unpacking: every count and offset against the limits and
   the blobs it indexes (nf_msg_check_limits), and what the gateway asks
   of a client's request (nf_msg_check_request). */

/* Over a limit: "what: got, at most max (NAME)". */
#define S_OVER(what, got, max, name)                                           \
    nf_error_set(NF_EPROTO, "%s: %zu, at most %zu (%s)", what, (size_t) (got), \
                 (size_t) (max), name)

/* A column of n cumulative ends over a blob of blob bytes: ends never go
   back, no item is over max bytes, the last end is the blob's length. */
static int
s_check_ends(const char *what, const uint32_t *ends, size_t n, size_t blob, size_t max,
             const char *max_name)
{
    uint32_t prev = 0;
    for (size_t i = 0; i < n; i++) {
        if (ends[i] < prev)
            return nf_error_set(NF_EPROTO, "%s ends: entry %zu is %u, before entry %zu (%u)",
                                what, i, ends[i], i - 1, prev);
        if (ends[i] - prev > max)
            return nf_error_set(NF_EPROTO, "%s %zu: bytes: %u, at most %zu (%s)", what, i,
                                ends[i] - prev, max, max_name);
        prev = ends[i];
    }
    if (prev != blob)
        return nf_error_set(NF_EPROTO, "%s ends: the last is %u, the %s blob has %zu bytes",
                            what, prev, what, blob);
    return NF_OK;
}

static int
s_check_doc(const Nflow__Document *d, const char *what, size_t i, size_t *tags)
{
    *tags += d->n_tags;
    if (*tags > NF_FRAME_TAGS_MAX)
        return nf_error_set(NF_EPROTO, "tags in one frame: more than %d (NF_FRAME_TAGS_MAX)",
                            NF_FRAME_TAGS_MAX);
    size_t idlen = d->id ? strlen(d->id) : 0;
    if (idlen > NF_ID_MAX)
        return nf_error_set(NF_EPROTO, "%s %zu: id bytes: %zu, at most %d (NF_ID_MAX)", what, i,
                            idlen, NF_ID_MAX);
    if (d->vector.len > (size_t) NF_DIM_MAX * 4)
        return nf_error_set(NF_EPROTO, "%s %zu: vector bytes: %zu, at most %zu (NF_DIM_MAX "
                            "values)", what, i, d->vector.len, (size_t) NF_DIM_MAX * 4);
    size_t tlen = d->text ? strlen(d->text) : 0;
    if (tlen > NF_TEXT_MAX)
        return nf_error_set(NF_EPROTO, "%s %zu: text bytes: %zu, at most %u (NF_TEXT_MAX)", what,
                            i, tlen, NF_TEXT_MAX);
    for (size_t t = 0; t < d->n_tags; t++) {
        size_t kl = d->tags[t]->key ? strlen(d->tags[t]->key) : 0;
        size_t vl = d->tags[t]->value ? strlen(d->tags[t]->value) : 0;
        if (kl > NF_TAG_BYTES_MAX || vl > NF_TAG_BYTES_MAX)
            return nf_error_set(NF_EPROTO, "%s %zu: tag %zu bytes: %zu, at most %d "
                                "(NF_TAG_BYTES_MAX)", what, i, t, kl > vl ? kl : vl,
                                NF_TAG_BYTES_MAX);
    }
    return NF_OK;
}

/* The vector block of count rows: empty, or count x dim x 4 bytes with
   1 <= dim <= NF_DIM_MAX. */
static int
s_check_block(const char *what, uint32_t count, uint32_t dim, size_t len)
{
    if (dim > NF_DIM_MAX)
        return S_OVER("dim", dim, NF_DIM_MAX, "NF_DIM_MAX");
    if (len == 0)
        return NF_OK;
    if (dim == 0)
        return nf_error_set(NF_EPROTO, "%s: %zu bytes of vectors with dim 0", what, len);
    if (len != (size_t) count * dim * 4)
        return nf_error_set(NF_EPROTO, "%s: vectors hold %zu bytes, expected count x dim x 4 = "
                            "%u x %u x 4 = %zu", what, len, count, dim, (size_t) count * dim * 4);
    return NF_OK;
}

static int
s_check_ids(const char *what, uint32_t count, const ProtobufCBinaryData *ids,
            const uint32_t *ends, size_t nends)
{
    if (count > NF_DOCS_MAX)
        return S_OVER(what, count, NF_DOCS_MAX, "NF_DOCS_MAX");
    if (nends != count)
        return nf_error_set(NF_EPROTO, "id ends: %zu entries for %u %s", nends, count,
                            strcmp(what, "ids per request") ? "documents" : "ids");
    return s_check_ends("id", ends, nends, ids->len, NF_ID_MAX, "NF_ID_MAX");
}

/* One typed column of an index batch of count documents (proto/README.md
   "Typed fields"): its name, type, the bytes its values need, nulls,
   keyword lengths and set sizes. */
static int
s_check_column(const Nflow__Column *c, size_t ci, uint32_t count)
{
    size_t nlen = c->name ? strlen(c->name) : 0;
    if (nlen == 0 || nlen > NF_FIELD_NAME_MAX)
        return nf_error_set(NF_EPROTO, "column %zu: name bytes: %zu, expected 1..%d "
                            "(NF_FIELD_NAME_MAX)", ci, nlen, NF_FIELD_NAME_MAX);
    if (c->nulls.len != 0 && c->nulls.len != ((size_t) count + 7) / 8)
        return nf_error_set(NF_EPROTO, "column '%s': nulls: %zu bytes for %u documents "
                            "(0 or %zu)", c->name, c->nulls.len, count, ((size_t) count + 7) / 8);
    bool keywords = c->type == NF_FIELD_KEYWORD || c->type == NF_FIELD_KEYWORDS;
    if (!keywords && (c->n_ends || c->n_item_ends))
        return nf_error_set(NF_EPROTO, "column '%s': ends given for a %s column", c->name,
                            nf_field_type_name((nf_ftype_t) c->type));
    size_t width = 0;
    switch (c->type) {
    case NF_FIELD_INT:
    case NF_FIELD_FLOAT:
    case NF_FIELD_DATETIME:
        width = 8;
        break;
    case NF_FIELD_BOOL:
        width = 1;
        break;
    case NF_FIELD_KEYWORD:
        if (c->n_ends != count || c->n_item_ends)
            return nf_error_set(NF_EPROTO, "column '%s': keyword ends: %zu entries for %u "
                                "documents", c->name, c->n_ends, count);
        return s_check_ends("keyword", c->ends, c->n_ends, c->values.len, NF_KEYWORD_MAX,
                            "NF_KEYWORD_MAX");
    case NF_FIELD_KEYWORDS: {
        if (c->n_item_ends != count)
            return nf_error_set(NF_EPROTO, "column '%s': item ends: %zu entries for %u "
                                "documents", c->name, c->n_item_ends, count);
        uint32_t prev = 0;
        for (size_t i = 0; i < c->n_item_ends; i++) {
            if (c->item_ends[i] < prev || c->item_ends[i] - prev > NF_KEYWORDS_MAX)
                return nf_error_set(NF_EPROTO, "column '%s': document %zu: %s (at most %d "
                                    "keywords, NF_KEYWORDS_MAX)", c->name, i,
                                    c->item_ends[i] < prev ? "item ends go back"
                                                           : "too many keywords",
                                    NF_KEYWORDS_MAX);
            prev = c->item_ends[i];
        }
        if (prev != c->n_ends)
            return nf_error_set(NF_EPROTO, "column '%s': the documents have %u keywords, "
                                "there are %zu ends", c->name, prev, c->n_ends);
        return s_check_ends("keyword", c->ends, c->n_ends, c->values.len, NF_KEYWORD_MAX,
                            "NF_KEYWORD_MAX");
    }
    default:
        return nf_error_set(NF_EPROTO, "column '%s': unknown type %u (1 int, 2 float, 3 bool, "
                            "4 keyword, 5 keyword[], 6 datetime)", c->name, c->type);
    }
    if (c->values.len != (size_t) count * width)
        return nf_error_set(NF_EPROTO, "column '%s': %zu bytes of values, expected count x %zu "
                            "= %zu", c->name, c->values.len, width, (size_t) count * width);
    for (size_t i = 0; width == 1 && i < count; i++)
        if (c->values.data[i] > 1)
            return nf_error_set(NF_EPROTO, "column '%s': document %zu: bool byte %u (0 or 1)",
                                c->name, i, c->values.data[i]);
    return NF_OK;
}

static int
s_check_index(const Nflow__IndexBatch *b)
{
    int rc = s_check_ids("documents per request", b->count, &b->ids, b->id_ends, b->n_id_ends);
    if (rc)
        return rc;
    if ((rc = s_check_block("index batch", b->count, b->dim, b->vectors.len)))
        return rc;
    if (b->n_text_ends != 0 && b->n_text_ends != b->count)
        return nf_error_set(NF_EPROTO, "text ends: %zu entries for %u documents (0 or each)",
                            b->n_text_ends, b->count);
    if ((rc = s_check_ends("text", b->text_ends, b->n_text_ends, b->texts.len, NF_TEXT_MAX,
                           "NF_TEXT_MAX")))
        return rc;
    if (b->n_tag_ends != 0 && b->n_tag_ends != b->count)
        return nf_error_set(NF_EPROTO, "tag ends: %zu entries for %u documents (0 or each)",
                            b->n_tag_ends, b->count);
    uint32_t prev = 0;
    for (size_t i = 0; i < b->n_tag_ends; i++) {
        if (b->tag_ends[i] < prev)
            return nf_error_set(NF_EPROTO, "tag ends: entry %zu is %u, before entry %zu (%u)",
                                i, b->tag_ends[i], i - 1, prev);
        if (b->tag_ends[i] - prev > NF_TAGS_MAX)
            return nf_error_set(NF_EPROTO, "tags per document (NF_TAGS_MAX): %u, at most %d "
                                "(doc %zu)", b->tag_ends[i] - prev, NF_TAGS_MAX, i);
        prev = b->tag_ends[i];
    }
    if (prev != b->n_tag_key_ends || prev != b->n_tag_value_ends)
        return nf_error_set(NF_EPROTO, "tags: the documents have %u, there are %zu keys and "
                            "%zu values", prev, b->n_tag_key_ends, b->n_tag_value_ends);
    if ((rc = s_check_ends("tag key", b->tag_key_ends, b->n_tag_key_ends, b->tag_keys.len,
                           NF_TAG_BYTES_MAX, "NF_TAG_BYTES_MAX")))
        return rc;
    if ((rc = s_check_ends("tag value", b->tag_value_ends, b->n_tag_value_ends,
                           b->tag_values.len, NF_TAG_BYTES_MAX, "NF_TAG_BYTES_MAX")))
        return rc;
    if (b->n_columns > NF_FIELDS_MAX)
        return S_OVER("typed field columns", b->n_columns, NF_FIELDS_MAX, "NF_FIELDS_MAX");
    for (size_t i = 0; i < b->n_columns; i++) {
        if ((rc = s_check_column(b->columns[i], i, b->count)))
            return rc;
        for (size_t j = 0; j < i; j++)
            if (!strcmp(b->columns[j]->name, b->columns[i]->name))
                return nf_error_set(NF_EPROTO, "column '%s' is given twice", b->columns[i]->name);
    }
    return NF_OK;
}

static int
s_check_search(const Nflow__SearchRequest *s)
{
    if (s->count > NF_QUERIES_MAX)
        return S_OVER("queries per request", s->count, NF_QUERIES_MAX, "NF_QUERIES_MAX");
    if (s->top_k > NF_TOPK_MAX)
        return S_OVER("top_k", s->top_k, NF_TOPK_MAX, "NF_TOPK_MAX");
    size_t k = s->top_k ? s->top_k : NF_TOPK_DEFAULT;
    if ((size_t) s->count * k > NF_MATCHES_MAX)
        return nf_error_set(NF_EPROTO, "queries x top_k: %u x %zu = %zu, at most %d "
                            "(NF_MATCHES_MAX)", s->count, k, (size_t) s->count * k,
                            NF_MATCHES_MAX);
    if (s->n_texts != 0 && s->n_texts != s->count)
        return nf_error_set(NF_EPROTO, "query texts: %zu for %u queries (0 or each)",
                            s->n_texts, s->count);
    for (size_t i = 0; i < s->n_texts; i++) {
        size_t tlen = s->texts[i] ? strlen(s->texts[i]) : 0;
        if (tlen > NF_TEXT_MAX)
            return nf_error_set(NF_EPROTO, "query %zu: text bytes: %zu, at most %u "
                                "(NF_TEXT_MAX)", i, tlen, NF_TEXT_MAX);
    }
    int rc = s_check_block("search", s->count, s->dim, s->vectors.len);
    if (rc)
        return rc;
    size_t flen = s->filter ? strlen(s->filter) : 0;
    if (flen > NF_FILTER_BYTES_MAX)
        return S_OVER("filter bytes", flen, NF_FILTER_BYTES_MAX, "NF_FILTER_BYTES_MAX");
    if (s->n_fields > NF_FIELDS_MAX)
        return S_OVER("output fields", s->n_fields, NF_FIELDS_MAX, "NF_FIELDS_MAX");
    for (size_t i = 0; i < s->n_fields; i++) {
        size_t len = s->fields[i] ? strlen(s->fields[i]) : 0;
        if (len > NF_TAG_BYTES_MAX)
            return nf_error_set(NF_EPROTO, "output field %zu: bytes: %zu, at most %d "
                                "(NF_TAG_BYTES_MAX)", i, len, NF_TAG_BYTES_MAX);
    }
    return NF_OK;
}

int
nf_msg_check_limits(const nf_env_t *env)
{
    size_t tags = 0;
    if (env->n_route > NF_HOPS_MAX)
        return S_OVER("hops", env->n_route, NF_HOPS_MAX, "NF_HOPS_MAX");
    switch (env->body_case) {
    case NF_BODY_INDEX:
        return env->index ? s_check_index(env->index) : NF_OK;
    case NF_BODY_DELETE:
        return env->delete_ ? s_check_ids("ids per request", env->delete_->count,
                                          &env->delete_->ids, env->delete_->id_ends,
                                          env->delete_->n_id_ends)
                            : NF_OK;
    case NF_BODY_SEARCH:
        return env->search ? s_check_search(env->search) : NF_OK;
    case NF_BODY_RESULT: {
        const Nflow__Result *r = env->result;
        if (!r)
            return NF_OK;
        if (r->n_results > NF_QUERIES_MAX)
            return S_OVER("results per answer", r->n_results, NF_QUERIES_MAX, "NF_QUERIES_MAX");
        if (r->n_missing_shards > NF_SHARDS_MAX)
            return S_OVER("missing shards", r->n_missing_shards, NF_SHARDS_MAX, "NF_SHARDS_MAX");
        if (r->shard >= NF_SHARDS_MAX)
            return S_OVER("shard", r->shard, NF_SHARDS_MAX - 1, "NF_SHARDS_MAX - 1");
        for (size_t q = 0; q < r->n_results; q++) {
            if (r->results[q]->n_matches > NF_TOPK_MAX)
                return S_OVER("matches per query", r->results[q]->n_matches, NF_TOPK_MAX,
                              "NF_TOPK_MAX");
            for (size_t j = 0; j < r->results[q]->n_matches; j++) {
                int rc = s_check_doc(r->results[q]->matches[j], "match", j, &tags);
                if (rc)
                    return rc;
            }
        }
        return NF_OK;
    }
    case NF_BODY_PLAN: {
        const Nflow__Plan *p = env->plan;
        if (!p)
            return NF_OK;
        if (p->n_shards > NF_SHARDS_MAX || p->n_down > NF_SHARDS_MAX)
            return S_OVER("plan shards", p->n_shards > p->n_down ? p->n_shards : p->n_down,
                          NF_SHARDS_MAX, "NF_SHARDS_MAX");
        for (size_t i = 0; i < p->n_shards; i++)
            if (p->shards[i] >= NF_SHARDS_MAX)
                return S_OVER("plan shard", p->shards[i], NF_SHARDS_MAX - 1, "NF_SHARDS_MAX - 1");
        for (size_t i = 0; i < p->n_down; i++)
            if (p->down[i] >= NF_SHARDS_MAX)
                return S_OVER("plan down shard", p->down[i], NF_SHARDS_MAX - 1,
                              "NF_SHARDS_MAX - 1");
        if (p->nqueries > NF_QUERIES_MAX)
            return S_OVER("plan nqueries", p->nqueries, NF_QUERIES_MAX, "NF_QUERIES_MAX");
        if (p->top_k > NF_TOPK_MAX)
            return S_OVER("plan top_k", p->top_k, NF_TOPK_MAX, "NF_TOPK_MAX");
        if (p->kind == NF_BODY_SEARCH
            && (size_t) p->nqueries * (p->top_k ? p->top_k : NF_TOPK_DEFAULT) > NF_MATCHES_MAX)
            return nf_error_set(NF_EPROTO, "plan nqueries x top_k: %u x %u, at most %d "
                                "(NF_MATCHES_MAX)", p->nqueries, p->top_k, NF_MATCHES_MAX);
        return NF_OK;
    }
    default:
        return NF_OK;
    }
}

uint32_t
nf_msg_top_k(uint32_t top_k)
{
    return top_k == 0 ? NF_TOPK_DEFAULT : top_k > NF_TOPK_MAX ? NF_TOPK_MAX : top_k;
}

int
nf_msg_check_request(const nf_env_t *env)
{
    int rc = nf_msg_check_limits(env);
    if (rc)
        return nf_error_set(NF_EINVAL, "%s", nf_error_msg());
    char what[512];
    size_t row = 0, len;
    switch (env->body_case) {
    case NF_BODY_INDEX: {
        const Nflow__IndexBatch *b = env->index;
        if (b->count == 0)
            return nf_error_set(NF_EINVAL, "index request without documents");
        for (size_t i = 0; i < b->count; i++) {
            nf_batch_id(b, i, &len);
            if (len == 0)
                return nf_error_set(NF_EINVAL, "doc %zu: empty id (ids have 1..%d bytes)", i,
                                    NF_ID_MAX);
        }
        if (nf_vec_check_rows(&b->vectors, b->dim, &row) != NF_OK) {
            snprintf(what, sizeof what, "%s", nf_error_msg());
            const char *id = nf_batch_id(b, row, &len);
            return nf_error_set(NF_EINVAL, "doc '%.*s': %s", (int) len, id, what);
        }
        return NF_OK;
    }
    case NF_BODY_DELETE:
        if (env->delete_->count == 0)
            return nf_error_set(NF_EINVAL, "delete request without ids");
        for (size_t i = 0; i < env->delete_->count; i++) {
            nf_delete_id(env->delete_, i, &len);
            if (len == 0)
                return nf_error_set(NF_EINVAL, "id %zu: empty id (ids have 1..%d bytes)", i,
                                    NF_ID_MAX);
        }
        return NF_OK;
    case NF_BODY_SEARCH: {
        const Nflow__SearchRequest *s = env->search;
        if (s->count == 0)
            return nf_error_set(NF_EINVAL, "search request without queries");
        if (s->n_texts == 0 && s->vectors.len == 0)
            return nf_error_set(NF_EINVAL, "search request: the queries have neither texts "
                                "nor vectors");
        if (nf_vec_check_rows(&s->vectors, s->dim, &row) != NF_OK) {
            snprintf(what, sizeof what, "%s", nf_error_msg());
            return nf_error_set(NF_EINVAL, "query %zu: %s", row, what);
        }
        return NF_OK;
    }
    default:
        return nf_error_set(NF_EINVAL, "not a request: %s",
                            env->body_case ? nf_msg_body_name(env->body_case) : "status only");
    }
}
