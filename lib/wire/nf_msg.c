/*  nf_msg: the wire codec, protocol version 2 (see nf_msg.h and
    proto/README.md).

    Receiving: the frames of one ZeroMQ message are read as zmq_msg_t's and
    split into routing frames (ROUTER sockets only: the peer identity, then
    an optional empty delimiter), the header frame and the body frame.  The
    header is unpacked and checked (version, hops); the body frame's bytes
    are walked to count every repeated field against the limits before
    protobuf-c allocates anything for them, then unpacked into an arena
    (a buffer reused from message to message, so a stream of multi-megabyte
    batches does not fault in fresh pages each time), then every count and
    offset is checked against the limits and the blobs it indexes.  The
    received body frame is kept so a routing pod can forward it as is.
    Sending: optional copies of routing frames, the packed header, and the
    body packed straight into the buffer of a zmq_msg_t (no intermediate
    copy), all with zmq_msg_send on the socket handle so errno tells why a
    send failed.  Nothing a peer sends can crash or block the caller.      */
#include "nf_msg.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <math.h>

#include "nf_error.h"
#include "nf_floats.h"
#include "nf_hash.h"
#include "nf_limits.h"
#include "nf_segment.h"
#include "nf_sys.h"

/* ------------------------------------------------------------------ */
/* Arenas: where protobuf-c puts what it unpacks.  Bump allocation in one
   buffer; frees inside it are no-ops; what does not fit goes to malloc.
   Released arenas go back to a small per-thread pool with their buffer. */

typedef struct s_arena {
    uint8_t *buf;
    size_t cap, used;
    const uint8_t *lent, *lent_end;     /* bytes of the received frame that unpacked
                                           fields point into (s_unpack_lent): not ours */
    struct s_arena *next;
} s_arena_t;

#define S_POOL_MAX 8                    /* arenas kept for reuse per thread ... */
#define S_POOL_BYTES_MAX (64u << 20)    /* ... holding at most this much together */
#define S_ARENA_MIN (64u << 10)

static _Thread_local s_arena_t *s_pool;
static _Thread_local int s_pool_n;
static _Thread_local size_t s_pool_bytes;

static void *
s_arena_alloc(void *data, size_t size)
{
    s_arena_t *a = data;
    size_t off = (a->used + 15) & ~(size_t) 15;
    if (off <= a->cap && size <= a->cap - off) {
        a->used = off + size;
        return a->buf + off;
    }
    return malloc(size ? size : 1);
}

static void
s_arena_free(void *data, void *p)
{
    s_arena_t *a = data;
    uint8_t *b = p;
    if ((b >= a->buf && b < a->buf + a->cap) || (b >= a->lent && b < a->lent_end))
        return;
    free(p);
}

/* An arena with room for about want bytes (from the pool when it can). */
static s_arena_t *
s_arena_get(size_t want)
{
    if (want < S_ARENA_MIN)
        want = S_ARENA_MIN;
    s_arena_t **pp = &s_pool, *a = NULL;
    for (; *pp; pp = &(*pp)->next)
        if ((*pp)->cap >= want) {
            a = *pp;
            *pp = a->next;
            s_pool_n--;
            s_pool_bytes -= a->cap;
            break;
        }
    if (!a && s_pool) {             /* grow the first one */
        a = s_pool;
        s_pool = a->next;
        s_pool_n--;
        s_pool_bytes -= a->cap;
        free(a->buf);
        a->buf = NULL;
        a->cap = 0;
    }
    if (!a && !(a = calloc(1, sizeof *a)))
        return NULL;
    if (!a->buf) {
        a->buf = malloc(want);
        a->cap = a->buf ? want : 0;   /* without a buffer everything goes to malloc */
    }
    a->used = 0;
    a->lent = a->lent_end = NULL;
    a->next = NULL;
    return a;
}

static void
s_arena_put(s_arena_t *a)
{
    if (!a)
        return;
    if (s_pool_n >= S_POOL_MAX || a->cap > S_POOL_BYTES_MAX - s_pool_bytes) {
        free(a->buf);
        free(a);
        return;
    }
    a->used = 0;
    a->next = s_pool;
    s_pool = a;
    s_pool_n++;
    s_pool_bytes += a->cap;
}

/* A received message: env first, so the env pointer is the box. */
typedef struct {
    nf_env_t env;
    Nflow__Header *hdr;
    ProtobufCMessage *body;
    zmq_msg_t raw;              /* the body frame as received */
    bool has_raw;
    s_arena_t *arena;
    ProtobufCAllocator alloc;
} s_box_t;

void
nf_env_init(nf_env_t *env)
{
    memset(env, 0, sizeof *env);
}

void
nf_env_destroy(nf_env_t **env_p)
{
    if (!env_p || !*env_p)
        return;
    s_box_t *box = (s_box_t *) *env_p;
    if (box->body)
        protobuf_c_message_free_unpacked(box->body, &box->alloc);
    if (box->hdr)
        protobuf_c_message_free_unpacked(&box->hdr->base, &box->alloc);
    if (box->has_raw)
        zmq_msg_close(&box->raw);
    s_arena_put(box->arena);
    free(box);
    *env_p = NULL;
}

void
nf_env_drop_frame(nf_env_t *env)
{
    s_box_t *box = (s_box_t *) env;
    if (box && box->has_raw) {
        zmq_msg_close(&box->raw);
        box->has_raw = false;
    }
}

const char *
nf_msg_body_name(int body_case)
{
    switch (body_case) {
    case NF_BODY_INDEX: return "index";
    case NF_BODY_DELETE: return "delete";
    case NF_BODY_SEARCH: return "search";
    case NF_BODY_CONTROL: return "control";
    case NF_BODY_RESULT: return "result";
    case NF_BODY_PLAN: return "plan";
    default: return "none";
    }
}

static const ProtobufCMessage *
s_body_of(const nf_env_t *env)
{
    switch (env->body_case) {
    case NF_BODY_INDEX: return (const ProtobufCMessage *) env->index;
    case NF_BODY_DELETE: return (const ProtobufCMessage *) env->delete_;
    case NF_BODY_SEARCH: return (const ProtobufCMessage *) env->search;
    case NF_BODY_CONTROL: return (const ProtobufCMessage *) env->control;
    case NF_BODY_RESULT: return (const ProtobufCMessage *) env->result;
    case NF_BODY_PLAN: return (const ProtobufCMessage *) env->plan;
    default: return NULL;
    }
}

static const ProtobufCMessageDescriptor *
s_descriptor(int body_case)
{
    switch (body_case) {
    case NF_BODY_INDEX: return &nflow__index_batch__descriptor;
    case NF_BODY_DELETE: return &nflow__delete_request__descriptor;
    case NF_BODY_SEARCH: return &nflow__search_request__descriptor;
    case NF_BODY_CONTROL: return &nflow__control__descriptor;
    case NF_BODY_RESULT: return &nflow__result__descriptor;
    case NF_BODY_PLAN: return &nflow__plan__descriptor;
    default: return NULL;
    }
}

size_t
nf_env_body_size(const nf_env_t *env)
{
    const ProtobufCMessage *b = s_body_of(env);
    size_t g = env->body_case == NF_BODY_INDEX && env->gather
                   ? env->gather->n * env->gather->row_bytes : 0;
    /* 16: align (tag, length, 3 bytes) and vectors (tag, length) */
    return b ? protobuf_c_message_get_packed_size(b) + (g ? 16 + g : 0) : 0;
}

/* Name the sender for logs: its address (from the frame's metadata) and,
   on a ROUTER, its identity in hex. */
static void
s_peer_name(nf_msg_t *msg, zmq_msg_t *any, const uint8_t *ident, size_t identlen)
{
    const char *addr = any ? zmq_msg_gets(any, "Peer-Address") : NULL;
    char idhex[41] = "";
    if (ident) {
        for (size_t i = 0; i < identlen && i < 20; i++)
            snprintf(idhex + 2 * i, 3, "%02x", ident[i]);
    }
    if (addr && *addr && *idhex)
        snprintf(msg->peer, sizeof msg->peer, "%s (id %s)", addr, idhex);
    else if (addr && *addr)
        snprintf(msg->peer, sizeof msg->peer, "%s", addr);
    else if (*idhex)
        snprintf(msg->peer, sizeof msg->peer, "id %s", idhex);
    else
        snprintf(msg->peer, sizeof msg->peer, "unknown peer");
}

/* ------------------------------------------------------------------ */
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

typedef struct {
    uint64_t matches;           /* match documents in the whole frame */
    uint64_t tags;              /* tags of every document in the whole frame */
    uint64_t keywords;          /* keyword ends of every typed column in the whole frame */
    uint64_t request_id;        /* field 2 of the header, when seen */
    uint64_t version;           /* field 1 of the header, when seen */
} s_scan_t;

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

/* The next field of [*p, end): its number (the key's, not truncated), wire
   type and value: wire 0 the varint in *v; wire 1 and 5 their 8 or 4
   bytes and wire 2 its bytes at *body, *v long.  *p moves past it.  False
   at bytes that do not parse (or a wire type protobuf 3 does not use). */
static bool
s_next_field(const uint8_t **p, const uint8_t *end, uint64_t *field, uint32_t *wire,
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
s_walk(const uint8_t *p, const uint8_t *end, const s_shape_t *sh, s_scan_t *sc, bool top)
{
    uint64_t counts[8] = {0};
    int over = -1;              /* first field over its limit: counted to the end */
    while (p < end) {
        uint64_t number, len;   /* len: wire 0's value, else its bytes */
        uint32_t wire;
        const uint8_t *body;
        if (!s_next_field(&p, end, &number, &wire, &len, &body))
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

/* ------------------------------------------------------------------ */
/* Receiving                                                           */

#define S_FRAMES_MAX 8          /* routing (2) + header + body, with room to name excess */

/* Unpack a body frame without copying its large bytes fields.  protobuf-c
   copies every bytes field it unpacks; an index batch's float32 block is
   most of its frame, and a pod that routes or checks the batch would touch
   it twice.  So top-level bytes fields of at least S_LENT_MIN bytes are cut
   out of a copy of the frame (the rest is small: ids, ends, columns), that
   copy is unpacked, and the fields are then set to point into the frame
   itself, which the box keeps (the arena's free skips them).  The last
   occurrence of a field wins, as protobuf-c would decide.  Bytes that do
   not parse are left in place for the unpacker to refuse. */
#define S_LENT_MIN 4096
#define S_LENT_MAX 8            /* distinct fields lent; more are copied as usual */

static ProtobufCMessage *
s_unpack_lent(const ProtobufCMessageDescriptor *desc, s_arena_t *arena,
              const ProtobufCAllocator *alloc, const uint8_t *data, size_t size)
{
    struct {
        const ProtobufCFieldDescriptor *fd;
        const uint8_t *data;
        size_t len;
    } lent[S_LENT_MAX];
    size_t nlent = 0, cutlen = 0;
    uint8_t *cut = NULL;
    const uint8_t *p = data, *end = data + size, *keep = data;
    while (size >= S_LENT_MIN && p < end) {
        const uint8_t *f0 = p, *body;
        uint64_t field, len;
        uint32_t wire;
        if (!s_next_field(&p, end, &field, &wire, &len, &body))
            break;
        if (wire != 2)
            continue;
        const ProtobufCFieldDescriptor *fd = field > UINT32_MAX ? NULL
            : protobuf_c_message_descriptor_get_field(desc, (unsigned) field);
        size_t i = 0;
        while (i < nlent && lent[i].fd != fd)
            i++;
        if (len < S_LENT_MIN || !fd || fd->type != PROTOBUF_C_TYPE_BYTES
            || fd->label == PROTOBUF_C_LABEL_REPEATED
            || (fd->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) || (i == nlent && nlent == S_LENT_MAX)) {
            if (i < nlent)      /* a later occurrence left in place wins over the lent one */
                lent[i] = lent[--nlent];
            continue;
        }
        if (!cut && !(cut = s_arena_alloc(arena, size)))
            return NULL;
        memcpy(cut + cutlen, keep, (size_t) (f0 - keep));
        cutlen += (size_t) (f0 - keep);
        lent[i].fd = fd;
        lent[i].data = body;
        lent[i].len = (size_t) len;
        nlent += i == nlent;
        keep = p;
    }
    if (!nlent)
        return protobuf_c_message_unpack(desc, (ProtobufCAllocator *) alloc, size, data);
    memcpy(cut + cutlen, keep, (size_t) (end - keep));
    cutlen += (size_t) (end - keep);
    ProtobufCMessage *m =
        protobuf_c_message_unpack(desc, (ProtobufCAllocator *) alloc, cutlen, cut);
    s_arena_free(arena, cut);           /* a no-op unless it did not fit the arena */
    if (!m)
        return NULL;
    arena->lent = data;
    arena->lent_end = end;
    for (size_t i = 0; i < nlent; i++) {
        char *at = (char *) m + lent[i].fd->offset;
        ProtobufCBinaryData *bd = (ProtobufCBinaryData *) (void *) at;
        bd->data = (uint8_t *) lent[i].data;
        bd->len = lent[i].len;
        if (lent[i].fd->label == PROTOBUF_C_LABEL_OPTIONAL)
            *(protobuf_c_boolean *) (void *) ((char *) m + lent[i].fd->quantifier_offset) = 1;
    }
    return m;
}

/* Unpack the header frame and the body frame into a new box. */
static int
s_decode(nf_msg_t *msg, zmq_msg_t *hframe, zmq_msg_t *bframe, bool raw, uint64_t now)
{
    size_t hsize = zmq_msg_size(hframe), bsize = zmq_msg_size(bframe);
    const uint8_t *hdata = zmq_msg_data(hframe), *bdata = zmq_msg_data(bframe);
    if (hsize == 0)
        return nf_error_set(NF_EPROTO, "empty header frame");
    if (hsize > NF_HEADER_MAX)
        return nf_error_set(NF_EPROTO, "header frame bytes: %zu, at most %u (NF_HEADER_MAX)",
                            hsize, NF_HEADER_MAX);
    s_scan_t scan = {0};
    int rc = s_walk(hdata, hdata + hsize, &s_header_shape, &scan, true);
    msg->request_id = scan.request_id;
    if (rc)
        return rc;
    if (scan.version != NF_PROTOCOL_VERSION) {
        /* another version, if it is a header at all */
        Nflow__Header *h = nflow__header__unpack(NULL, hsize, hdata);
        if (!h)
            return nf_error_set(NF_EPROTO, "header frame of %zu bytes is not a protobuf "
                                "nflow.Header", hsize);
        nflow__header__free_unpacked(h, NULL);
        return nf_error_set(NF_EVERSION, "protocol %llu, this pod speaks %d",
                            (unsigned long long) scan.version, NF_PROTOCOL_VERSION);
    }
    if (bsize > NF_FRAME_MAX)
        return nf_error_set(NF_EPROTO, "body frame bytes: %zu, at most %u (NF_FRAME_MAX)",
                            bsize, NF_FRAME_MAX);
    s_box_t *box = calloc(1, sizeof *box);
    if (!box)
        return nf_error_set(NF_ENOMEM, "out of memory for a message");
    box->arena = s_arena_get(raw ? hsize * 2 + 4096 : (hsize + bsize) * 2 + 4096);
    if (!box->arena) {
        free(box);
        return nf_error_set(NF_ENOMEM, "out of memory for a message of %zu bytes", bsize);
    }
    box->alloc.alloc = s_arena_alloc;
    box->alloc.free = s_arena_free;
    box->alloc.allocator_data = box->arena;
    nf_env_t *env = &box->env;
    box->hdr = nflow__header__unpack(&box->alloc, hsize, hdata);
    if (!box->hdr) {
        rc = nf_error_set(NF_EPROTO, "header frame of %zu bytes is not a protobuf nflow.Header",
                          hsize);
        goto fail;
    }
    Nflow__Header *h = box->hdr;
    env->request_id = h->request_id;
    env->deadline_us = h->time_left_us ? now + h->time_left_us : 0;
    env->n_route = h->n_route;
    env->route = h->route;
    env->status = h->status;
    env->body_case = (int) h->body;
    bool error_only = h->status && h->status->code != NFLOW__STATUS_CODE__STATUS_OK;
    const ProtobufCMessageDescriptor *desc = s_descriptor(env->body_case);
    if (env->body_case != NF_BODY_NONE && !desc) {
        rc = nf_error_set(NF_EPROTO, "header (request %llu): unknown body kind %d",
                          (unsigned long long) h->request_id, env->body_case);
        goto fail;
    }
    if (env->body_case == NF_BODY_NONE) {
        if (!error_only) {
            rc = nf_error_set(NF_EPROTO, "message (request %llu) has no body and no error "
                              "status", (unsigned long long) h->request_id);
            goto fail;
        }
        if (bsize) {
            rc = nf_error_set(NF_EPROTO, "message (request %llu) without a body kind has a "
                              "body frame of %zu bytes", (unsigned long long) h->request_id,
                              bsize);
            goto fail;
        }
    }
    if (env->n_route > NF_HOPS_MAX) {
        rc = S_OVER("hops", env->n_route, NF_HOPS_MAX, "NF_HOPS_MAX");
        goto fail;
    }
    if (desc && !raw) {
        if ((rc = s_walk(bdata, bdata + bsize, s_shape_of(env->body_case), &scan, false)))
            goto fail;
        box->body = s_unpack_lent(desc, box->arena, &box->alloc, bdata, bsize);
        if (!box->body) {
            rc = nf_error_set(NF_EPROTO, "body frame of %zu bytes is not a protobuf nflow.%s",
                              bsize, desc->short_name);
            goto fail;
        }
        switch (env->body_case) {
        case NF_BODY_INDEX: env->index = (Nflow__IndexBatch *) box->body; break;
        case NF_BODY_DELETE: env->delete_ = (Nflow__DeleteRequest *) box->body; break;
        case NF_BODY_SEARCH: env->search = (Nflow__SearchRequest *) box->body; break;
        case NF_BODY_CONTROL: env->control = (Nflow__Control *) box->body; break;
        case NF_BODY_RESULT: env->result = (Nflow__Result *) box->body; break;
        case NF_BODY_PLAN: env->plan = (Nflow__Plan *) box->body; break;
        default: break;
        }
        if ((rc = nf_msg_check_limits(env)) != NF_OK)
            goto fail;
    }
    zmq_msg_init(&box->raw);
    zmq_msg_move(&box->raw, bframe);
    box->has_raw = true;
    msg->env = env;
    return NF_OK;
fail:
    {
        nf_env_t *e = &box->env;
        nf_env_destroy(&e);
    }
    return rc;
}

static int
s_recv(zsock_t *sock, nf_msg_t *msg, bool raw)
{
    memset(msg, 0, sizeof *msg);
    void *handle = zsock_resolve(sock);
    zmq_msg_t frames[S_FRAMES_MAX];
    size_t n = 0, total = 0;
    int more = 1;
    while (more) {
        zmq_msg_t part;
        zmq_msg_init(&part);
        if (zmq_msg_recv(&part, handle, 0) < 0) {
            int e = zmq_errno();
            zmq_msg_close(&part);
            for (size_t i = 0; i < n; i++)
                zmq_msg_close(&frames[i]);
            snprintf(msg->peer, sizeof msg->peer, "unknown peer");
            return nf_error_set(NF_EIO, "receive on %s socket failed: %s",
                                zsock_type_str(sock), zmq_strerror(e));
        }
        more = zmq_msg_more(&part);
        total++;
        if (n < S_FRAMES_MAX) {
            zmq_msg_init(&frames[n]);
            zmq_msg_move(&frames[n++], &part);
        }
        zmq_msg_close(&part);
    }
    uint64_t now = nf_now_us();
    bool router = zsock_type(sock) == ZMQ_ROUTER;
    /* the key a CURVE peer authenticated with (nf_keys: its name) */
    const char *user = n ? zmq_msg_gets(&frames[n - 1], "User-Id") : NULL;
    if (user)
        snprintf(msg->user, sizeof msg->user, "%s", user);
    size_t at = 0;
    int rc = NF_OK;
    if (router) {
        s_peer_name(msg, &frames[n - 1], zmq_msg_data(&frames[0]), zmq_msg_size(&frames[0]));
        msg->routing = zmsg_new();
        zmsg_addmem(msg->routing, zmq_msg_data(&frames[0]), zmq_msg_size(&frames[0]));
        at = 1;
        /* an empty delimiter (REQ peers) before header and body */
        if (total - at == 3 && zmq_msg_size(&frames[at]) == 0) {
            zmsg_addmem(msg->routing, NULL, 0);
            at++;
        }
    }
    else {
        s_peer_name(msg, &frames[0], NULL, 0);
        if (total == 3 && zmq_msg_size(&frames[0]) == 0)
            at = 1;
    }
    if (total - at == 1) {
        /* one frame: a version-1 Envelope (fields 1 and 2 as in Header) */
        s_scan_t scan = {0};
        const uint8_t *d = zmq_msg_data(&frames[at]);
        size_t size = zmq_msg_size(&frames[at]);
        s_walk(d, d + size, &s_header_shape, &scan, true);
        msg->request_id = scan.request_id;
        if (scan.version == 1) {
            msg->v1 = true;
            rc = nf_error_set(NF_EVERSION, "protocol 1 (one Envelope frame), this pod speaks "
                              "%d (header and body frames)", NF_PROTOCOL_VERSION);
        }
        else
            rc = nf_error_set(NF_EPROTO, "expected a header and a body frame, got 1 frame");
        goto done;
    }
    if (total - at != 2) {
        rc = nf_error_set(NF_EPROTO, "expected a header and a body frame, got %zu frame%s",
                          total - at, total - at == 1 ? "" : "s");
        goto done;
    }
    rc = s_decode(msg, &frames[at], &frames[at + 1], raw, now);
done:
    for (size_t i = 0; i < n; i++)
        zmq_msg_close(&frames[i]);
    return rc;
}

int
nf_msg_recv(zsock_t *sock, nf_msg_t *msg)
{
    return s_recv(sock, msg, false);
}

int
nf_msg_recv_raw(zsock_t *sock, nf_msg_t *msg)
{
    return s_recv(sock, msg, true);
}

void
nf_msg_clear(nf_msg_t *msg)
{
    if (!msg)
        return;
    zmsg_destroy(&msg->routing);
    nf_env_destroy(&msg->env);
}

/* ------------------------------------------------------------------ */
/* Sending                                                             */

static int
s_send_error(zsock_t *sock, const char *what)
{
    int e = zmq_errno();
    if (e == EAGAIN || e == EHOSTUNREACH)
        return nf_error_set(NF_EUNAVAIL, "send %s on %s socket: %s", what,
                            zsock_type_str(sock),
                            e == EAGAIN ? "no peer ready (queue full or no connection)"
                                        : "peer not connected");
    return nf_error_set(NF_EIO, "send %s on %s socket: %s", what, zsock_type_str(sock),
                        zmq_strerror(e));
}

/* Pack a protobuf message into a new zmq_msg_t of exactly its size; with
   g, an index batch's `vectors` field (field 5, empty in m) is appended
   after the packed fields, its rows copied from g's block (protobuf allows
   fields in any order), behind an `align` field (14) of 0..3 bytes that
   puts the floats at a multiple of 4 bytes into the frame: a shard reads
   them in place (zmq's frame buffers are 8-byte aligned), not a copy. */
static int
s_pack(const ProtobufCMessage *m, const nf_gather_t *g, zmq_msg_t *out)
{
    size_t size = m ? protobuf_c_message_get_packed_size(m) : 0;
    size_t vlen = g && m ? g->n * g->row_bytes : 0;
    uint8_t pre[11] = {5 << 3 | 2};             /* field 5, length-delimited */
    size_t npre = 1;
    if (vlen)
        for (size_t v = vlen;; v >>= 7) {
            pre[npre++] = (uint8_t) ((v & 0x7f) | (v > 0x7f ? 0x80 : 0));
            if (v <= 0x7f)
                break;
        }
    size_t pad = vlen ? (4 - (size + 2 + npre) % 4) % 4 : 0;
    size_t total = size + (vlen ? 2 + pad + npre + vlen : 0);
    if (zmq_msg_init_size(out, total) != 0)
        return nf_error_set(NF_ENOMEM, "pack: %zu bytes", total);
    uint8_t *at = zmq_msg_data(out);
    if (size)
        protobuf_c_message_pack(m, at);
    if (vlen) {
        uint8_t align[5] = {14 << 3 | 2, (uint8_t) pad, 0, 0, 0};
        memcpy(at + size, align, 2 + pad);
        at += size + 2 + pad;
        memcpy(at, pre, npre);
        at += npre;
        for (size_t i = 0; i < g->n; i++, at += g->row_bytes)
            memcpy(at, g->block + (size_t) g->rows[i] * g->row_bytes, g->row_bytes);
    }
    return NF_OK;
}

/* The one way out: routing frames, header (env's fields, one more hop
   when pod is set), then the body: from's received frame when from is
   set, else env's body packed. */
static int
s_send(zsock_t *sock, zmsg_t *routing, const nf_env_t *env, const nf_msg_t *from,
       const char *pod, uint64_t recv_us, int flags, bool single)
{
    Nflow__Header h = NFLOW__HEADER__INIT;
    h.version = NF_PROTOCOL_VERSION;
    h.request_id = env->request_id;
    if (env->deadline_us) {
        uint64_t now = nf_now_us();
        h.time_left_us = env->deadline_us > now ? env->deadline_us - now : 1;
    }
    h.status = env->status;
    h.body = (Nflow__BodyKind) env->body_case;
    Nflow__Hop *hops_small[NF_HOPS_MAX + 1];
    Nflow__Hop hop = NFLOW__HOP__INIT;
    h.route = env->route;
    h.n_route = env->n_route;
    if (pod && env->n_route < NF_HOPS_MAX) {
        if (env->n_route)
            memcpy(hops_small, env->route, env->n_route * sizeof *hops_small);
        hop.pod = (char *) pod;
        hop.recv_us = recv_us;
        hop.send_us = nf_wall_us();
        hops_small[env->n_route] = &hop;
        h.route = hops_small;
        h.n_route = env->n_route + 1;
    }
    zmq_msg_t hframe, bframe;
    int rc = s_pack(&h.base, NULL, &hframe);
    if (rc)
        return rc;
    if (single)
        zmq_msg_init(&bframe);
    else if (from) {
        const s_box_t *box = (const s_box_t *) from->env;
        zmq_msg_init(&bframe);
        if (!box || !box->has_raw || zmq_msg_copy(&bframe, (zmq_msg_t *) &box->raw) != 0) {
            zmq_msg_close(&hframe);
            zmq_msg_close(&bframe);
            return nf_error_set(NF_EINVAL, "forward: no received body frame");
        }
    }
    else if ((rc = s_pack(s_body_of(env), env->body_case == NF_BODY_INDEX ? env->gather : NULL,
                          &bframe))) {
        zmq_msg_close(&hframe);
        return rc;
    }

    void *handle = zsock_resolve(sock);
    int zflags = (flags & ZMQ_DONTWAIT) ? ZMQ_DONTWAIT : 0;
    if (routing) {
        for (zframe_t *f = zmsg_first(routing); f; f = zmsg_next(routing)) {
            if (zmq_send(handle, zframe_data(f), zframe_size(f), zflags | ZMQ_SNDMORE) < 0) {
                rc = s_send_error(sock, "routing frame");
                goto fail;
            }
        }
    }
    if (zmq_msg_send(&hframe, handle, zflags | (single ? 0 : ZMQ_SNDMORE)) < 0) {
        rc = s_send_error(sock, "header");
        goto fail;
    }
    if (single) {
        zmq_msg_close(&bframe);
        return NF_OK;
    }
    if (zmq_msg_send(&bframe, handle, zflags) < 0) {
        rc = s_send_error(sock, "body");
        zmq_msg_close(&bframe);
        return rc;
    }
    return NF_OK;
fail:
    zmq_msg_close(&hframe);
    zmq_msg_close(&bframe);
    return rc;
}

int
nf_msg_send(zsock_t *sock, zmsg_t *routing, const nf_env_t *env, int flags)
{
    return s_send(sock, routing, env, NULL, NULL, 0, flags, false);
}

int
nf_msg_send_hop(zsock_t *sock, zmsg_t *routing, const nf_env_t *env, const char *pod,
                uint64_t recv_us, int flags)
{
    return s_send(sock, routing, env, NULL, pod, recv_us, flags, false);
}

int
nf_msg_forward_hop(zsock_t *sock, zmsg_t *routing, const nf_env_t *env, const nf_msg_t *from,
                   const char *pod, uint64_t recv_us, int flags)
{
    if (!from || !from->env || env->body_case != from->env->body_case)
        return nf_error_set(NF_EINVAL, "forward: the header's body kind is not the body's");
    return s_send(sock, routing, env, from, pod, recv_us, flags, false);
}

static int
s_reply(zsock_t *sock, zmsg_t *routing, uint64_t request_id, Nflow__StatusCode code,
        const char *message, bool single)
{
    nf_env_t env;
    nf_env_init(&env);
    Nflow__Status status = NFLOW__STATUS__INIT;
    status.code = code;
    status.message = (char *) (message ? message : "");
    env.request_id = request_id;
    env.status = &status;
    return s_send(sock, routing, &env, NULL, NULL, 0, ZMQ_DONTWAIT, single);
}

int
nf_msg_reply_error(zsock_t *sock, zmsg_t *routing, uint64_t request_id,
                   Nflow__StatusCode code, const char *message)
{
    return s_reply(sock, routing, request_id, code, message, false);
}

int
nf_msg_reply_v1(zsock_t *sock, zmsg_t *routing, uint64_t request_id, Nflow__StatusCode code,
                const char *message)
{
    return s_reply(sock, routing, request_id, code, message, true);
}

/* "vector[j] is NaN" for the non-finite value at p (wire values are
   little-endian, as is every host nflow builds for: nf_segment_impl.h). */
static int
s_nonfinite(const uint8_t *p, size_t j)
{
    float f;
    memcpy(&f, p, 4);
    return nf_error_set(NF_EINVAL, "vector[%zu] is %s: values must be finite", j,
                        isnan(f) ? "NaN" : "infinite");
}

int
nf_vec_check(const ProtobufCBinaryData *bytes)
{
    size_t len = bytes ? bytes->len : 0;
    if (len % 4)
        return nf_error_set(NF_EDIM, "vector has %zu bytes, not a whole number of float32 "
                            "values", len);
    size_t i = nf_first_nonfinite(len ? bytes->data : NULL, len / 4);
    return i == len / 4 ? NF_OK : s_nonfinite(bytes->data + 4 * i, i);
}

int
nf_vec_check_rows(const ProtobufCBinaryData *block, uint32_t dim, size_t *row)
{
    size_t n = block && dim ? block->len / 4 : 0;
    size_t i = nf_first_nonfinite(n ? block->data : NULL, n);
    if (i == n)
        return NF_OK;
    *row = i / dim;
    return s_nonfinite(block->data + 4 * i, i % dim);
}

int
nf_vec_from_bytes(const ProtobufCBinaryData *bytes, uint32_t dim, float *out)
{
    size_t len = bytes ? bytes->len : 0;
    if (len % 4)
        return nf_error_set(NF_EDIM, "vector has %zu bytes, not a whole number of float32 "
                            "values (expected %u values, %zu bytes)", len, dim,
                            (size_t) dim * 4);
    if (len != (size_t) dim * 4)
        return nf_error_set(NF_EDIM, "vector has %zu values, expected %u", len / 4, dim);
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    memcpy(out, bytes->data, len);
#else
    for (uint32_t i = 0; i < dim; i++) {
        const uint8_t *p = bytes->data + 4 * (size_t) i;
        uint32_t u = (uint32_t) p[0] | (uint32_t) p[1] << 8 | (uint32_t) p[2] << 16
                     | (uint32_t) p[3] << 24;
        memcpy(&out[i], &u, 4);
    }
#endif
    return NF_OK;
}

ProtobufCBinaryData
nf_vec_to_bytes(const float *v, uint32_t dim, void *buf)
{
    ProtobufCBinaryData b;
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    memcpy(buf, v, (size_t) dim * 4);
#else
    uint8_t *p = buf;
    for (uint32_t i = 0; i < dim; i++) {
        uint32_t u;
        memcpy(&u, &v[i], 4);
        p[4 * i] = u & 0xff;
        p[4 * i + 1] = (u >> 8) & 0xff;
        p[4 * i + 2] = (u >> 16) & 0xff;
        p[4 * i + 3] = u >> 24;
    }
#endif
    b.data = buf;
    b.len = (size_t) dim * 4;
    return b;
}

uint32_t
nf_msg_shard_of(const char *id, size_t len, uint32_t nshards)
{
    uint64_t h = nf_fnv1a64(NF_FNV_OFFSET, id, len);
    return nshards ? (uint32_t) (h % nshards) : 0;
}
