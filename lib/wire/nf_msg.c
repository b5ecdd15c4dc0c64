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
    offset is checked against the limits and the blobs it indexes (the walk
    and the checks: nf_msg_check.c).  The received body frame is kept so a
    routing pod can forward it as is.
    Sending: optional copies of routing frames, the packed header, and the
    body packed straight into the buffer of a zmq_msg_t (no intermediate
    copy), all with zmq_msg_send on the socket handle so errno tells why a
    send failed.  Nothing a peer sends can crash or block the caller.      */
#include "nf_msg.h"
#include "nf_msg_impl.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <math.h>

#include "nf_error.h"
#include "nf_floats.h"
#include "nf_hash.h"
#include "nf_limits.h"
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
        if (!nf_msg_next_field(&p, end, &field, &wire, &len, &body))
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
    nf_msg_scan_t scan = {0};
    int rc = nf_msg_walk(hdata, hsize, NF_MSG_WALK_HEADER, &scan);
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
    /* hops: at most NF_HOPS_MAX, counted by the header's walk above */
    if (desc && !raw) {
        if ((rc = nf_msg_walk(bdata, bsize, env->body_case, &scan)))
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
        nf_msg_scan_t scan = {0};
        nf_msg_walk(zmq_msg_data(&frames[at]), zmq_msg_size(&frames[at]), NF_MSG_WALK_HEADER,
                    &scan);
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
