/*  nf_msg: the wire codec (see nf_msg.h and proto/README.md).

    Receiving: the frames of one ZeroMQ message are split into routing
    frames (ROUTER sockets only: the peer identity, then an optional empty
    delimiter) and the one envelope frame, which is unpacked and checked
    (version, body).  Nothing a peer sends can crash or block the caller.
    Sending: optional copies of routing frames, then the packed envelope,
    all with zmq_send on the socket handle so errno tells why a send failed. */
#include "nf_msg.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <math.h>

#include "nf_error.h"
#include "nf_hash.h"
#include "nf_limits.h"
#include "nf_sys.h"

void
nf_env_init(Nflow__Envelope *env)
{
    Nflow__Envelope init = NFLOW__ENVELOPE__INIT;
    *env = init;
    env->version = NF_PROTOCOL_VERSION;
}

const char *
nf_msg_body_name(int body_case)
{
    switch (body_case) {
    case NFLOW__ENVELOPE__BODY_INDEX: return "index";
    case NFLOW__ENVELOPE__BODY_DELETE: return "delete";
    case NFLOW__ENVELOPE__BODY_SEARCH: return "search";
    case NFLOW__ENVELOPE__BODY_CONTROL: return "control";
    case NFLOW__ENVELOPE__BODY_RESULT: return "result";
    case NFLOW__ENVELOPE__BODY_PLAN: return "plan";
    default: return "none";
    }
}

/* Name the sender for logs: its address (from the frame's metadata) and,
   on a ROUTER, its identity in hex. */
static void
s_peer_name(nf_msg_t *msg, zframe_t *any, zframe_t *identity)
{
    const char *addr = any ? zframe_meta(any, "Peer-Address") : NULL;
    char idhex[41] = "";
    if (identity) {
        size_t n = zframe_size(identity);
        const byte *d = zframe_data(identity);
        size_t i;
        for (i = 0; i < n && i < 20; i++)
            snprintf(idhex + 2 * i, 3, "%02x", d[i]);
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
   of a repeated field (an empty tag is 2 bytes on the wire and ~80 in
   memory), so the counts a frame holds are checked on its bytes first.
   The shapes below are the repeated fields of nflow.proto; anything not
   listed is skipped.  A count over its limit is NF_EPROTO naming the limit
   and the value. */

typedef struct s_shape s_shape_t;

typedef struct {
    uint32_t field;
    const char *name;           /* the limit, for the error message */
    uint32_t max;               /* occurrences in one message (0 = not counted) */
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
S_SHAPE(s_index_shape, {1, "documents per request (NF_DOCS_MAX)", NF_DOCS_MAX, false, &s_doc_shape});
S_SHAPE(s_delete_shape, {1, "ids per request (NF_DOCS_MAX)", NF_DOCS_MAX, false, NULL});
S_SHAPE(s_search_shape, {1, "queries per request (NF_QUERIES_MAX)", NF_QUERIES_MAX, false,
                         &s_doc_shape});
S_SHAPE(s_result_shape,
        {1, "queries per request (NF_QUERIES_MAX)", NF_QUERIES_MAX, false, &s_matches_shape},
        {5, "missing shards (NF_SHARDS_MAX)", NF_SHARDS_MAX, true, NULL});
S_SHAPE(s_plan_shape, {1, "shards (NF_SHARDS_MAX)", NF_SHARDS_MAX, true, NULL},
        {2, "down shards (NF_SHARDS_MAX)", NF_SHARDS_MAX, true, NULL});
S_SHAPE(s_env_shape, {5, "hops (NF_HOPS_MAX)", NF_HOPS_MAX, false, NULL},
        {10, "index bodies", 1, false, &s_index_shape},
        {11, "delete bodies", 1, false, &s_delete_shape},
        {12, "search bodies", 1, false, &s_search_shape},
        {14, "result bodies", 1, false, &s_result_shape},
        {15, "plan bodies", 1, false, &s_plan_shape});

typedef struct {
    uint64_t matches;           /* match documents in the whole frame */
    uint64_t tags;              /* tags of every document in the whole frame */
    uint64_t request_id;        /* field 2 of the envelope, when seen */
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

/* Walk one message of shape sh in [p, end).  Bytes that are not protobuf
   are left to the unpacker to refuse (it allocates nothing sized by them). */
static int
s_walk(const uint8_t *p, const uint8_t *end, const s_shape_t *sh, s_scan_t *sc, bool top)
{
    uint64_t counts[8] = {0};
    int over = -1;              /* first field over its limit: counted to the end */
    while (p < end) {
        uint64_t key, len = 0;
        if (!s_varint(&p, end, &key))
            return NF_OK;
        uint32_t field = (uint32_t) (key >> 3), wire = (uint32_t) (key & 7);
        const uint8_t *body = p;
        if (wire == 0) {
            uint64_t v;
            if (!s_varint(&p, end, &v))
                return NF_OK;
            if (top && field == 2)
                sc->request_id = v;
        } else if (wire == 1) {
            p += 8;
        } else if (wire == 5) {
            p += 4;
        } else if (wire == 2) {
            if (!s_varint(&p, end, &len) || len > (uint64_t) (end - p))
                return NF_OK;
            body = p;
            p += len;
        } else {
            return NF_OK;
        }
        if (p > end)
            return NF_OK;
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
            if (counts[i] > f->max && over < 0)
                over = (int) i;
            if (over >= 0)
                continue;       /* only counting now */
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

int
nf_msg_check_limits(const Nflow__Envelope *env)
{
    size_t tags = 0;
    if (env->n_route > NF_HOPS_MAX)
        return S_OVER("hops", env->n_route, NF_HOPS_MAX, "NF_HOPS_MAX");
    switch (env->body_case) {
    case NFLOW__ENVELOPE__BODY_INDEX:
        if (env->index->n_docs > NF_DOCS_MAX)
            return S_OVER("documents per request", env->index->n_docs, NF_DOCS_MAX,
                          "NF_DOCS_MAX");
        for (size_t i = 0; i < env->index->n_docs; i++) {
            int rc = s_check_doc(env->index->docs[i], "doc", i, &tags);
            if (rc)
                return rc;
        }
        return NF_OK;
    case NFLOW__ENVELOPE__BODY_DELETE:
        if (env->delete_->n_ids > NF_DOCS_MAX)
            return S_OVER("ids per request", env->delete_->n_ids, NF_DOCS_MAX, "NF_DOCS_MAX");
        for (size_t i = 0; i < env->delete_->n_ids; i++) {
            size_t len = env->delete_->ids[i] ? strlen(env->delete_->ids[i]) : 0;
            if (len > NF_ID_MAX)
                return nf_error_set(NF_EPROTO, "id %zu: id bytes: %zu, at most %d (NF_ID_MAX)",
                                    i, len, NF_ID_MAX);
        }
        return NF_OK;
    case NFLOW__ENVELOPE__BODY_SEARCH: {
        const Nflow__SearchRequest *s = env->search;
        if (s->n_queries > NF_QUERIES_MAX)
            return S_OVER("queries per request", s->n_queries, NF_QUERIES_MAX,
                          "NF_QUERIES_MAX");
        if (s->top_k > NF_TOPK_MAX)
            return S_OVER("top_k", s->top_k, NF_TOPK_MAX, "NF_TOPK_MAX");
        size_t k = s->top_k ? s->top_k : NF_TOPK_DEFAULT;
        if (s->n_queries * k > NF_MATCHES_MAX)
            return nf_error_set(NF_EPROTO, "queries x top_k: %zu x %zu = %zu, at most %d "
                                "(NF_MATCHES_MAX)", s->n_queries, k, s->n_queries * k,
                                NF_MATCHES_MAX);
        for (size_t i = 0; i < s->n_queries; i++) {
            int rc = s_check_doc(s->queries[i], "query", i, &tags);
            if (rc)
                return rc;
        }
        return NF_OK;
    }
    case NFLOW__ENVELOPE__BODY_RESULT: {
        const Nflow__Result *r = env->result;
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
    case NFLOW__ENVELOPE__BODY_PLAN: {
        const Nflow__Plan *p = env->plan;
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
        if (p->kind == NFLOW__ENVELOPE__BODY_SEARCH
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
nf_msg_check_request(const Nflow__Envelope *env)
{
    int rc = nf_msg_check_limits(env);
    if (rc)
        return nf_error_set(NF_EINVAL, "%s", nf_error_msg());
    switch (env->body_case) {
    case NFLOW__ENVELOPE__BODY_INDEX:
        if (env->index->n_docs == 0)
            return nf_error_set(NF_EINVAL, "index request without documents");
        for (size_t i = 0; i < env->index->n_docs; i++) {
            const Nflow__Document *d = env->index->docs[i];
            size_t len = d->id ? strlen(d->id) : 0;
            if (len == 0)
                return nf_error_set(NF_EINVAL, "doc %zu: empty id (ids have 1..%d bytes)", i,
                                    NF_ID_MAX);
            if (nf_vec_check(&d->vector) != NF_OK)
                return nf_error_set(NF_EINVAL, "doc '%s': %s", d->id, nf_error_msg());
        }
        return NF_OK;
    case NFLOW__ENVELOPE__BODY_DELETE:
        if (env->delete_->n_ids == 0)
            return nf_error_set(NF_EINVAL, "delete request without ids");
        for (size_t i = 0; i < env->delete_->n_ids; i++)
            if (!env->delete_->ids[i] || !*env->delete_->ids[i])
                return nf_error_set(NF_EINVAL, "id %zu: empty id (ids have 1..%d bytes)", i,
                                    NF_ID_MAX);
        return NF_OK;
    case NFLOW__ENVELOPE__BODY_SEARCH:
        if (env->search->n_queries == 0)
            return nf_error_set(NF_EINVAL, "search request without queries");
        for (size_t i = 0; i < env->search->n_queries; i++)
            if (nf_vec_check(&env->search->queries[i]->vector) != NF_OK)
                return nf_error_set(NF_EINVAL, "query %zu: %s", i, nf_error_msg());
        return NF_OK;
    default:
        return nf_error_set(NF_EINVAL, "not a request: %s",
                            env->body_case ? nf_msg_body_name(env->body_case) : "status only");
    }
}

int
nf_vec_check(const ProtobufCBinaryData *bytes)
{
    size_t len = bytes ? bytes->len : 0;
    if (len % 4)
        return nf_error_set(NF_EDIM, "vector has %zu bytes, not a whole number of float32 "
                            "values", len);
    for (size_t i = 0; i < len / 4; i++) {
        uint32_t u;
        u = (uint32_t) bytes->data[4 * i] | (uint32_t) bytes->data[4 * i + 1] << 8
            | (uint32_t) bytes->data[4 * i + 2] << 16 | (uint32_t) bytes->data[4 * i + 3] << 24;
        if ((u & 0x7f800000u) == 0x7f800000u) {
            float f;
            memcpy(&f, &u, 4);
            return nf_error_set(NF_EINVAL, "vector[%zu] is %s: values must be finite", i,
                                isnan(f) ? "NaN" : "infinite");
        }
    }
    return NF_OK;
}

int
nf_msg_recv(zsock_t *sock, nf_msg_t *msg)
{
    memset(msg, 0, sizeof *msg);
    zmsg_t *zm = zmsg_recv(sock);
    if (!zm) {
        snprintf(msg->peer, sizeof msg->peer, "unknown peer");
        return nf_error_set(NF_EIO, "receive on %s socket failed: %s",
                            zsock_type_str(sock), zmq_strerror(zmq_errno()));
    }
    bool router = zsock_type(sock) == ZMQ_ROUTER;
    /* the key a CURVE peer authenticated with (nf_keys: its name) */
    const char *user = zmsg_last(zm) ? zframe_meta(zmsg_last(zm), "User-Id") : NULL;
    if (user)
        snprintf(msg->user, sizeof msg->user, "%s", user);

    if (router) {
        /* identity, then an optional empty delimiter (REQ peers) */
        s_peer_name(msg, zmsg_last(zm), zmsg_first(zm));
        zframe_t *id = zmsg_pop(zm);
        msg->routing = zmsg_new();
        zmsg_append(msg->routing, &id);
        zframe_t *next = zmsg_first(zm);
        if (next && zframe_size(next) == 0 && zmsg_size(zm) >= 2) {
            zframe_t *delim = zmsg_pop(zm);
            zmsg_append(msg->routing, &delim);
        }
    }
    else {
        s_peer_name(msg, zmsg_first(zm), NULL);
        zframe_t *first = zmsg_first(zm);
        if (first && zframe_size(first) == 0 && zmsg_size(zm) == 2) {
            zframe_t *delim = zmsg_pop(zm);
            zframe_destroy(&delim);
        }
    }

    int rc = NF_OK;
    if (zmsg_size(zm) != 1) {
        rc = nf_error_set(NF_EPROTO, "expected 1 envelope frame, got %zu frame%s",
                          zmsg_size(zm), zmsg_size(zm) == 1 ? "" : "s");
        goto done;
    }
    zframe_t *frame = zmsg_first(zm);
    size_t size = zframe_size(frame);
    if (size == 0) {
        rc = nf_error_set(NF_EPROTO, "empty envelope frame");
        goto done;
    }
    if (size > NF_FRAME_MAX) {
        rc = nf_error_set(NF_EPROTO, "frame bytes: %zu, at most %u (NF_FRAME_MAX)", size,
                          NF_FRAME_MAX);
        goto done;
    }
    s_scan_t scan = {0};
    rc = s_walk(zframe_data(frame), zframe_data(frame) + size, &s_env_shape, &scan, true);
    if (rc) {
        msg->request_id = scan.request_id;  /* so the sender can be answered */
        goto done;
    }
    Nflow__Envelope *env = nflow__envelope__unpack(NULL, size, zframe_data(frame));
    if (!env) {
        rc = nf_error_set(NF_EPROTO, "frame of %zu bytes is not a protobuf nflow.Envelope",
                          size);
        goto done;
    }
    msg->request_id = env->request_id;
    if (env->version != NF_PROTOCOL_VERSION) {
        msg->env = env;
        rc = nf_error_set(NF_EVERSION, "protocol version %u, this pod speaks %d",
                          env->version, NF_PROTOCOL_VERSION);
        goto done;
    }
    if ((rc = nf_msg_check_limits(env)) != NF_OK) {
        nflow__envelope__free_unpacked(env, NULL);
        goto done;
    }
    bool error_only = env->status && env->status->code != NFLOW__STATUS_CODE__STATUS_OK;
    if (env->body_case == NFLOW__ENVELOPE__BODY__NOT_SET && !error_only) {
        nflow__envelope__free_unpacked(env, NULL);
        rc = nf_error_set(NF_EPROTO, "envelope (request %llu) has no body and no error status",
                          (unsigned long long) msg->request_id);
        goto done;
    }
    msg->env = env;
done:
    zmsg_destroy(&zm);
    return rc;
}

void
nf_msg_clear(nf_msg_t *msg)
{
    if (!msg)
        return;
    zmsg_destroy(&msg->routing);
    if (msg->env)
        nflow__envelope__free_unpacked(msg->env, NULL);
    msg->env = NULL;
}

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

int
nf_msg_send(zsock_t *sock, zmsg_t *routing, const Nflow__Envelope *env, int flags)
{
    Nflow__Envelope copy = *env;
    copy.version = NF_PROTOCOL_VERSION;
    size_t size = nflow__envelope__get_packed_size(&copy);
    uint8_t small[512];
    uint8_t *buf = size <= sizeof small ? small : malloc(size);
    if (!buf)
        return nf_error_set(NF_ENOMEM, "pack envelope: %zu bytes", size);
    nflow__envelope__pack(&copy, buf);

    void *handle = zsock_resolve(sock);
    int zflags = (flags & ZMQ_DONTWAIT) ? ZMQ_DONTWAIT : 0;
    int rc = NF_OK;
    if (routing) {
        for (zframe_t *f = zmsg_first(routing); f; f = zmsg_next(routing)) {
            if (zmq_send(handle, zframe_data(f), zframe_size(f), zflags | ZMQ_SNDMORE) < 0) {
                rc = s_send_error(sock, "routing frame");
                goto done;
            }
        }
    }
    if (zmq_send(handle, buf, size, zflags) < 0)
        rc = s_send_error(sock, "envelope");
done:
    if (buf != small)
        free(buf);
    return rc;
}

int
nf_msg_send_hop(zsock_t *sock, zmsg_t *routing, const Nflow__Envelope *env,
                const char *pod, uint64_t recv_us, int flags)
{
    Nflow__Envelope copy = *env;
    size_t n = env->n_route;
    Nflow__Hop **route = malloc((n + 1) * sizeof *route);
    if (!route)
        return nf_error_set(NF_ENOMEM, "hop list of %zu", n + 1);
    if (n)
        memcpy(route, env->route, n * sizeof *route);
    Nflow__Hop hop = NFLOW__HOP__INIT;
    hop.pod = (char *) pod;
    hop.recv_us = recv_us;
    hop.send_us = nf_wall_us();
    route[n] = &hop;
    copy.route = route;
    copy.n_route = n + 1;
    int rc = nf_msg_send(sock, routing, &copy, flags);
    free(route);
    return rc;
}

int
nf_msg_reply_error(zsock_t *sock, zmsg_t *routing, uint64_t request_id,
                   Nflow__StatusCode code, const char *message)
{
    Nflow__Envelope env;
    nf_env_init(&env);
    Nflow__Status status = NFLOW__STATUS__INIT;
    status.code = code;
    status.message = (char *) (message ? message : "");
    env.request_id = request_id;
    env.status = &status;
    return nf_msg_send(sock, routing, &env, ZMQ_DONTWAIT);
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
