/*  test_msg: the wire codec.  Round trips over inproc sockets, routing on
    ROUTER sockets, every kind of malformed frame, send failures, hops,
    vectors and the id hash. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "nf_error.h"
#include "nf_limits.h"
#include "nf_msg.h"
#include "nf_sys.h"
#include "nf_test.h"

static int s_ep_seq;

/* A connected pair over a fresh inproc endpoint. */
static void
s_pair(int btype, int ctype, zsock_t **bound, zsock_t **conn)
{
    char ep[64];
    snprintf(ep, sizeof ep, "inproc://test-msg-%d", s_ep_seq++);
    *bound = zsock_new(btype);
    *conn = zsock_new(ctype);
    zsock_set_rcvtimeo(*bound, 2000);
    zsock_set_rcvtimeo(*conn, 2000);
    CHECK(zsock_bind(*bound, "%s", ep) == 0);
    CHECK(zsock_connect(*conn, "%s", ep) == 0);
}

static void
s_send_raw(zsock_t *sock, const void *data, size_t len, bool more)
{
    zmq_send(zsock_resolve(sock), data, len, more ? ZMQ_SNDMORE : 0);
}

static void
test_roundtrip(void)
{
    zsock_t *pull, *push;
    s_pair(ZMQ_PULL, ZMQ_PUSH, &pull, &push);

    nf_env_t env;
    nf_env_init(&env);
    env.request_id = 42;
    env.deadline_us = nf_now_us() + 5000000;    /* 5 s left */
    Nflow__SearchRequest search = NFLOW__SEARCH_REQUEST__INIT;
    char *texts[1] = {"hello world"};
    search.count = 1;
    search.texts = texts;
    search.n_texts = 1;
    search.top_k = 3;
    env.body_case = NF_BODY_SEARCH;
    env.search = &search;
    CHECK_OK(nf_msg_send(push, NULL, &env, 0));

    /* two frames: a header, then the body */
    zmsg_t *raw = zmsg_recv(pull);
    CHECK(raw && zmsg_size(raw) == 2);
    if (raw && zmsg_size(raw) == 2) {
        zframe_t *hf = zmsg_first(raw);
        Nflow__Header *h = nflow__header__unpack(NULL, zframe_size(hf), zframe_data(hf));
        CHECK(h && h->version == NF_PROTOCOL_VERSION && h->request_id == 42);
        CHECK(h && h->body == NFLOW__BODY_KIND__BODY_SEARCH);
        /* the time left, not a wall-clock deadline: at most what was given */
        CHECK(h && h->time_left_us > 4000000 && h->time_left_us <= 5000000);
        if (h)
            nflow__header__free_unpacked(h, NULL);
    }
    zmsg_destroy(&raw);

    CHECK_OK(nf_msg_send(push, NULL, &env, 0));
    nf_msg_t msg;
    uint64_t before = nf_now_us();
    CHECK_OK(nf_msg_recv(pull, &msg));
    CHECK(msg.routing == NULL);
    CHECK(msg.request_id == 42);
    CHECK(msg.env->body_case == NF_BODY_SEARCH);
    CHECK(msg.env->search->top_k == 3 && msg.env->search->count == 1);
    CHECK(!strcmp(msg.env->search->texts[0], "hello world"));
    /* the deadline on our own monotonic clock: receipt + the time left */
    CHECK(msg.env->deadline_us > before + 4000000 && msg.env->deadline_us <= nf_now_us() + 5000000);
    nf_msg_clear(&msg);
    nf_msg_clear(&msg);                 /* clearing twice is harmless */

    /* one empty delimiter before the header is accepted on a PULL */
    s_send_raw(push, "", 0, true);
    CHECK_OK(nf_msg_send(push, NULL, &env, 0));     /* appended as the second frame */
    CHECK_OK(nf_msg_recv(pull, &msg));
    CHECK(msg.env && msg.env->request_id == 42);
    nf_msg_clear(&msg);

    zsock_destroy(&push);
    zsock_destroy(&pull);
}

static void
test_malformed(void)
{
    zsock_t *pull, *push;
    s_pair(ZMQ_PULL, ZMQ_PUSH, &pull, &push);
    nf_msg_t msg;

    s_send_raw(push, "\x01\x02garbage", 9, true);
    s_send_raw(push, "", 0, false);
    CHECK(nf_msg_recv(pull, &msg) == NF_EPROTO);
    CHECK(msg.env == NULL);
    CHECK(strstr(nf_error_msg(), "not a protobuf nflow.Header") != NULL);
    CHECK(msg.peer[0] != '\0');
    nf_msg_clear(&msg);

    s_send_raw(push, "", 0, false);
    CHECK(nf_msg_recv(pull, &msg) == NF_EPROTO);
    CHECK(strstr(nf_error_msg(), "got 1 frame") != NULL);
    nf_msg_clear(&msg);

    s_send_raw(push, "", 0, true);
    s_send_raw(push, "x", 1, false);
    CHECK(nf_msg_recv(pull, &msg) == NF_EPROTO);
    CHECK(strstr(nf_error_msg(), "empty header") != NULL);
    nf_msg_clear(&msg);

    s_send_raw(push, "a", 1, true);
    s_send_raw(push, "b", 1, true);
    s_send_raw(push, "c", 1, false);
    CHECK(nf_msg_recv(pull, &msg) == NF_EPROTO);
    CHECK(strstr(nf_error_msg(), "got 3 frames") != NULL);
    nf_msg_clear(&msg);

    /* wrong version: the request id is kept so the caller can answer it */
    nf_env_t env;
    Nflow__Header h = NFLOW__HEADER__INIT;
    h.version = 99;
    h.request_id = 5;
    h.body = NFLOW__BODY_KIND__BODY_CONTROL;
    uint8_t buf[256];
    size_t len = nflow__header__pack(&h, buf);
    s_send_raw(push, buf, len, true);
    s_send_raw(push, "", 0, false);
    CHECK(nf_msg_recv(pull, &msg) == NF_EVERSION);
    CHECK(msg.env == NULL && msg.request_id == 5 && !msg.v1);
    CHECK(strstr(nf_error_msg(), "protocol 99, this pod speaks 2") != NULL);
    nf_msg_clear(&msg);

    /* version 1: one Envelope frame {version 1, request_id 6, index {}} */
    s_send_raw(push, "\x08\x01\x10\x06\x52\x00", 6, false);
    CHECK(nf_msg_recv(pull, &msg) == NF_EVERSION);
    CHECK(msg.env == NULL && msg.request_id == 6 && msg.v1);
    CHECK(strstr(nf_error_msg(), "protocol 1") && strstr(nf_error_msg(), "speaks 2"));
    nf_msg_clear(&msg);

    /* a body kind that does not exist */
    nflow__header__init(&h);
    h.version = NF_PROTOCOL_VERSION;
    h.request_id = 7;
    h.body = 99;
    len = nflow__header__pack(&h, buf);
    s_send_raw(push, buf, len, true);
    s_send_raw(push, "", 0, false);
    CHECK(nf_msg_recv(pull, &msg) == NF_EPROTO);
    CHECK(strstr(nf_error_msg(), "unknown body kind 99") != NULL);
    nf_msg_clear(&msg);

    /* a body that is not the kind the header names */
    h.body = NFLOW__BODY_KIND__BODY_SEARCH;
    len = nflow__header__pack(&h, buf);
    s_send_raw(push, buf, len, true);
    s_send_raw(push, "\x0f\x01", 2, false);
    CHECK(nf_msg_recv(pull, &msg) == NF_EPROTO);
    CHECK(strstr(nf_error_msg(), "not a protobuf nflow.SearchRequest") != NULL);
    nf_msg_clear(&msg);

    /* one hop more than NF_HOPS_MAX: refused before anything is unpacked */
    nflow__header__init(&h);
    h.version = NF_PROTOCOL_VERSION;
    h.request_id = 9;
    h.body = NFLOW__BODY_KIND__BODY_CONTROL;
    Nflow__Hop hop = NFLOW__HOP__INIT, *hops[NF_HOPS_MAX + 1];
    hop.pod = "p";
    for (size_t i = 0; i <= NF_HOPS_MAX; i++)
        hops[i] = &hop;
    h.route = hops;
    h.n_route = NF_HOPS_MAX + 1;
    uint8_t hb[2048];
    CHECK(nflow__header__get_packed_size(&h) <= sizeof hb);
    len = nflow__header__pack(&h, hb);
    s_send_raw(push, hb, len, true);
    s_send_raw(push, "", 0, false);
    CHECK(nf_msg_recv(pull, &msg) == NF_EPROTO);
    CHECK(msg.env == NULL && msg.request_id == 9 && strstr(nf_error_msg(), "NF_HOPS_MAX"));
    nf_msg_clear(&msg);
    h.n_route = NF_HOPS_MAX;            /* at the limit: taken */
    len = nflow__header__pack(&h, hb);
    s_send_raw(push, hb, len, true);
    s_send_raw(push, "", 0, false);
    CHECK_OK(nf_msg_recv(pull, &msg));
    CHECK(msg.env && msg.env->n_route == NF_HOPS_MAX);
    nf_msg_clear(&msg);
    h.route = NULL;
    h.n_route = 0;

    /* no body and no error status */
    nf_env_init(&env);
    env.request_id = 6;
    CHECK_OK(nf_msg_send(push, NULL, &env, 0));
    CHECK(nf_msg_recv(pull, &msg) == NF_EPROTO);
    CHECK(msg.env == NULL && msg.request_id == 6);
    nf_msg_clear(&msg);

    /* an error answer (status only) is valid */
    CHECK_OK(nf_msg_reply_error(push, NULL, 8, NFLOW__STATUS_CODE__STATUS_BAD_DIM, "bad dim"));
    CHECK_OK(nf_msg_recv(pull, &msg));
    CHECK(msg.env && msg.env->status && msg.env->status->code == NFLOW__STATUS_CODE__STATUS_BAD_DIM);
    CHECK(msg.env && !strcmp(msg.env->status->message, "bad dim") && msg.request_id == 8);
    nf_msg_clear(&msg);

    zsock_destroy(&push);
    zsock_destroy(&pull);
}

static void
test_router(void)
{
    zsock_t *router, *dealer;
    s_pair(ZMQ_ROUTER, ZMQ_DEALER, &router, &dealer);
    zsock_set_router_mandatory(router, 1);

    nf_env_t env;
    nf_env_init(&env);
    env.request_id = 11;
    Nflow__Control c = NFLOW__CONTROL__INIT;
    c.command = NFLOW__CONTROL_COMMAND__CONTROL_STATUS;
    env.body_case = NF_BODY_CONTROL;
    env.control = &c;
    CHECK_OK(nf_msg_send(dealer, NULL, &env, 0));

    nf_msg_t msg;
    CHECK_OK(nf_msg_recv(router, &msg));
    CHECK(msg.routing && zmsg_size(msg.routing) == 1);
    CHECK(msg.env && msg.env->control->command == NFLOW__CONTROL_COMMAND__CONTROL_STATUS);
    CHECK(strstr(msg.peer, "id ") != NULL);
    /* answer through the routing frames; the routing is not consumed */
    CHECK_OK(nf_msg_reply_error(router, msg.routing, 11, NFLOW__STATUS_CODE__STATUS_BAD_REQUEST,
                                "nope"));
    CHECK(msg.routing && zmsg_size(msg.routing) == 1);
    nf_msg_t back;
    CHECK_OK(nf_msg_recv(dealer, &back));
    CHECK(back.env && back.request_id == 11 && back.env->status
          && back.env->status->code == NFLOW__STATUS_CODE__STATUS_BAD_REQUEST);
    nf_msg_clear(&back);
    nf_msg_clear(&msg);

    /* a malformed frame on a ROUTER keeps the identity so it can be answered */
    s_send_raw(dealer, "junk", 4, true);
    s_send_raw(dealer, "junk", 4, false);
    CHECK(nf_msg_recv(router, &msg) == NF_EPROTO);
    CHECK(msg.routing && zmsg_size(msg.routing) == 1);
    nf_msg_clear(&msg);
    s_send_raw(dealer, "x", 1, true);
    s_send_raw(dealer, "y", 1, true);
    s_send_raw(dealer, "z", 1, false);
    CHECK(nf_msg_recv(router, &msg) == NF_EPROTO);
    CHECK(msg.routing && zmsg_size(msg.routing) == 1);
    nf_msg_clear(&msg);

    /* REQ-style delimiter: kept in the routing so replies repeat it */
    s_send_raw(dealer, "", 0, true);
    CHECK_OK(nf_msg_send(dealer, NULL, &env, 0));
    CHECK_OK(nf_msg_recv(router, &msg));
    CHECK(msg.routing && zmsg_size(msg.routing) == 2);
    nf_msg_clear(&msg);

    /* a version-1 sender on a ROUTER is answered in one frame it can read */
    s_send_raw(dealer, "\x08\x01\x10\x09\x6a\x02\x08\x01", 8, false);
    CHECK(nf_msg_recv(router, &msg) == NF_EVERSION && msg.v1 && msg.request_id == 9);
    CHECK_OK(nf_msg_reply_v1(router, msg.routing, 9, NFLOW__STATUS_CODE__STATUS_BAD_VERSION,
                             "protocol 1, this pod speaks 2"));
    nf_msg_clear(&msg);
    zmsg_t *one = zmsg_recv(dealer);
    CHECK(one && zmsg_size(one) == 1);
    if (one) {
        zframe_t *f = zmsg_first(one);
        Nflow__Header *h = nflow__header__unpack(NULL, zframe_size(f), zframe_data(f));
        CHECK(h && h->request_id == 9 && h->status
              && h->status->code == NFLOW__STATUS_CODE__STATUS_BAD_VERSION);
        if (h)
            nflow__header__free_unpacked(h, NULL);
    }
    zmsg_destroy(&one);

    /* unknown identity on a mandatory ROUTER: unavailable, never blocks */
    zmsg_t *nobody = zmsg_new();
    zmsg_addstr(nobody, "nobody");
    CHECK(nf_msg_send(router, nobody, &env, ZMQ_DONTWAIT) == NF_EUNAVAIL);
    zmsg_destroy(&nobody);

    zsock_destroy(&dealer);
    zsock_destroy(&router);
}

static void
test_no_peer(void)
{
    zsock_t *push = zsock_new(ZMQ_PUSH);
    zsock_set_immediate(push, 1);
    zsock_connect(push, "tcp://127.0.0.1:1");
    nf_env_t env;
    nf_env_init(&env);
    Nflow__Control c = NFLOW__CONTROL__INIT;
    env.body_case = NF_BODY_CONTROL;
    env.control = &c;
    CHECK(nf_msg_send(push, NULL, &env, ZMQ_DONTWAIT) == NF_EUNAVAIL);
    zsock_destroy(&push);
}

static void
test_hops(void)
{
    zsock_t *pull, *push;
    s_pair(ZMQ_PULL, ZMQ_PUSH, &pull, &push);
    nf_env_t env;
    nf_env_init(&env);
    nf_batch_t b = {0};
    CHECK_OK(nf_batch_add(&b, "a", 1, NULL, NULL, 0, NULL, NULL, 0));
    Nflow__DeleteRequest del;
    nf_batch_view_delete(&b, &del);
    env.body_case = NF_BODY_DELETE;
    env.delete_ = &del;
    CHECK_OK(nf_msg_send_hop(push, NULL, &env, "gateway", 100, 0));
    CHECK(env.n_route == 0);
    nf_msg_t msg;
    CHECK_OK(nf_msg_recv(pull, &msg));
    CHECK(msg.env && msg.env->n_route == 1);
    CHECK_OK(nf_msg_send_hop(push, NULL, msg.env, "router", 200, 0));
    CHECK(msg.env && msg.env->n_route == 1);
    nf_msg_t msg2;
    CHECK_OK(nf_msg_recv(pull, &msg2));
    CHECK(msg2.env && msg2.env->n_route == 2);
    if (msg2.env && msg2.env->n_route == 2) {
        CHECK(!strcmp(msg2.env->route[0]->pod, "gateway") && msg2.env->route[0]->recv_us == 100);
        CHECK(!strcmp(msg2.env->route[1]->pod, "router") && msg2.env->route[1]->recv_us == 200);
        CHECK(msg2.env->route[1]->send_us >= 200);
    }
    CHECK(!strcmp(nf_msg_body_name(msg2.env->body_case), "delete"));
    CHECK(!strcmp(nf_msg_body_name(0), "none"));
    nf_msg_clear(&msg);
    nf_msg_clear(&msg2);
    nf_batch_free(&b);
    zsock_destroy(&push);
    zsock_destroy(&pull);
}

static void
test_vectors(void)
{
    float v[5] = {1.5f, -2.0f, 0.0f, 3.25f, -0.125f}, w[5];
    uint8_t buf[20];
    ProtobufCBinaryData b = nf_vec_to_bytes(v, 5, buf);
    CHECK(b.len == 20 && b.data == buf);
    CHECK(buf[0] == 0x00 && buf[3] == 0x3f);        /* 1.5f little-endian: 00 00 c0 3f */
    CHECK_OK(nf_vec_from_bytes(&b, 5, w));
    CHECK(memcmp(v, w, sizeof v) == 0);
    CHECK(nf_vec_from_bytes(&b, 4, w) == NF_EDIM);
    CHECK(strstr(nf_error_msg(), "vector has 5 values, expected 4") != NULL);
    ProtobufCBinaryData odd = {7, buf};
    CHECK(nf_vec_from_bytes(&odd, 2, w) == NF_EDIM);
}

static void
test_shard_of(void)
{
    CHECK(nf_msg_shard_of("a", 1, 3) == 1);         /* the example in proto/README.md */
    CHECK(nf_msg_shard_of("anything", 8, 1) == 0);
    unsigned count[4] = {0};
    char id[32];
    for (int i = 0; i < 4000; i++) {
        int n = snprintf(id, sizeof id, "doc-%d", i);
        uint32_t s = nf_msg_shard_of(id, (size_t) n, 4);
        CHECK(s < 4);
        if (s < 4)
            count[s]++;
        CHECK(nf_msg_shard_of(id, (size_t) n, 4) == s);   /* stable */
    }
    for (int s = 0; s < 4; s++)
        CHECK(count[s] > 800 && count[s] < 1200);
}

/* Append a protobuf field to buf at *len (wire types 0 and 2 only). */
static size_t
s_varint(uint8_t *p, uint64_t v)
{
    size_t n = 0;
    do {
        p[n++] = (uint8_t) ((v & 0x7f) | (v > 0x7f ? 0x80 : 0));
        v >>= 7;
    } while (v);
    return n;
}

static void
s_field(uint8_t *buf, size_t *len, uint32_t field, int wire, const void *data, uint64_t v)
{
    *len += s_varint(buf + *len, (uint64_t) field << 3 | (uint64_t) wire);
    if (wire == 0) {
        *len += s_varint(buf + *len, v);
        return;
    }
    *len += s_varint(buf + *len, v);
    memcpy(buf + *len, data, v);
    *len += v;
}

/* Send a header (kind, request id) and raw body bytes, receive them: the rc
   of nf_msg_recv. */
static int
s_recv_raw(zsock_t *pull, zsock_t *push, int kind, uint64_t id, const uint8_t *bytes,
           size_t len, nf_msg_t *msg)
{
    Nflow__Header h = NFLOW__HEADER__INIT;
    h.version = NF_PROTOCOL_VERSION;
    h.request_id = id;
    h.body = (Nflow__BodyKind) kind;
    uint8_t hb[64];
    size_t hl = nflow__header__pack(&h, hb);
    s_send_raw(push, hb, hl, true);
    s_send_raw(push, bytes, len, false);
    return nf_msg_recv(pull, msg);
}

/* Counts a peer sends are checked on the frame's bytes before protobuf-c
   allocates a struct per element, then on the unpacked values and against
   the blobs they index: each over a limit is NF_EPROTO naming the limit
   and the value, with the request id kept so the sender can be answered. */
static void
test_limits(void)
{
    zsock_t *pull, *push;
    s_pair(ZMQ_PULL, ZMQ_PUSH, &pull, &push);
    size_t cap = 4u << 20;
    uint8_t *doc = malloc(cap), *idx = malloc(cap), *packed = malloc(cap);
    nf_msg_t msg;

    /* 600,000 empty tags in one document (the indexer crash): the columns
       hold them (600,000 key and value ends, within NF_FRAME_TAGS_MAX), the
       document's tag count is over NF_TAGS_MAX */
    size_t il = 0, kl = 0;
    for (int i = 0; i < 600000; i++)
        kl += s_varint(packed + kl, 0);
    uint8_t one[8];
    size_t ol = s_varint(one, 1);
    s_field(idx, &il, 1, 0, NULL, 1);                   /* count */
    s_field(idx, &il, 3, 2, "x", 1);                    /* ids */
    s_field(idx, &il, 4, 2, one, ol);                   /* id_ends [1] */
    uint8_t te[8];
    size_t tl = s_varint(te, 600000);
    s_field(idx, &il, 8, 2, te, tl);                    /* tag_ends [600000] */
    s_field(idx, &il, 10, 2, packed, kl);               /* tag_key_ends */
    s_field(idx, &il, 12, 2, packed, kl);               /* tag_value_ends */
    CHECK(s_recv_raw(pull, push, NF_BODY_INDEX, 77, idx, il, &msg) == NF_EPROTO);
    CHECK(!strcmp(nf_error_msg(), "tags per document (NF_TAGS_MAX): 600000, at most 64 (doc 0)"));
    CHECK(msg.env == NULL && msg.request_id == 77);
    nf_msg_clear(&msg);

    /* 700,000 key ends: counted on the frame's bytes, refused before unpacking */
    for (int i = 600000; i < 700000; i++)
        kl += s_varint(packed + kl, 0);
    il = 0;
    s_field(idx, &il, 1, 0, NULL, 1);
    s_field(idx, &il, 10, 2, packed, kl);
    CHECK(s_recv_raw(pull, push, NF_BODY_INDEX, 78, idx, il, &msg) == NF_EPROTO);
    CHECK(!strcmp(nf_error_msg(), "tag key ends (NF_FRAME_TAGS_MAX): 700000, at most 640000"));
    CHECK(msg.request_id == 78);
    nf_msg_clear(&msg);

    /* 20,000 id ends: over NF_DOCS_MAX before anything is allocated */
    kl = 0;
    for (int i = 0; i < 20000; i++)
        kl += s_varint(packed + kl, 0);
    il = 0;
    s_field(idx, &il, 4, 2, packed, kl);
    CHECK(s_recv_raw(pull, push, NF_BODY_DELETE, 79, idx, il, &msg) == NF_EPROTO);
    CHECK(!strcmp(nf_error_msg(), "id ends (NF_DOCS_MAX): 20000, at most 10000"));
    nf_msg_clear(&msg);

    /* offsets that do not fit the frame: an id end past the ids' bytes, a
       vector block that is not count x dim x 4, ends going back */
    nf_batch_t b = {0};
    float v[4] = {1, 2, 3, 4};
    CHECK_OK(nf_batch_add(&b, "ab", 2, NULL, "t", 1, NULL, NULL, 0));
    CHECK_OK(nf_batch_add(&b, "cd", 2, NULL, NULL, 0, NULL, NULL, 0));
    nf_env_t e;
    nf_env_init(&e);
    Nflow__IndexBatch ib;
    nf_batch_view(&b, &ib);
    e.body_case = NF_BODY_INDEX;
    e.index = &ib;
    CHECK_OK(nf_msg_check_limits(&e));
    ib.id_ends[1] = 9;
    CHECK(nf_msg_check_limits(&e) == NF_EPROTO);
    CHECK(!strcmp(nf_error_msg(), "id ends: the last is 9, the id blob has 4 bytes"));
    ib.id_ends[1] = 4;
    ib.id_ends[0] = 5;
    CHECK(nf_msg_check_limits(&e) == NF_EPROTO && strstr(nf_error_msg(), "before entry 0"));
    ib.id_ends[0] = 2;
    ib.count = 3;
    CHECK(nf_msg_check_limits(&e) == NF_EPROTO);
    CHECK(!strcmp(nf_error_msg(), "id ends: 2 entries for 3 documents"));
    ib.count = 2;
    ib.dim = 2;
    ib.vectors = (ProtobufCBinaryData) {sizeof v - 4, (uint8_t *) v};
    CHECK(nf_msg_check_limits(&e) == NF_EPROTO);
    CHECK(strstr(nf_error_msg(), "vectors hold 12 bytes, expected count x dim x 4 = 2 x 2 x 4 = 16"));
    ib.vectors.len = sizeof v;
    CHECK_OK(nf_msg_check_limits(&e));
    ib.n_text_ends = 1;
    CHECK(nf_msg_check_limits(&e) == NF_EPROTO && strstr(nf_error_msg(), "text ends: 1 entries"));
    ib.n_text_ends = 2;
    Nflow__Column col = NFLOW__COLUMN__INIT, *cols[1] = {&col};
    ib.columns = cols;
    ib.n_columns = 1;
    CHECK(nf_msg_check_limits(&e) == NF_EPROTO);    /* a column without a name */
    CHECK(strstr(nf_error_msg(), "column 0: name bytes: 0") != NULL);
    col.name = "year";
    col.type = 1;
    int64_t years[2] = {1999, 2001};
    col.values = (ProtobufCBinaryData) {sizeof years, (uint8_t *) years};
    CHECK_OK(nf_msg_check_limits(&e));
    CHECK_OK(nf_msg_check_request(&e));
    nf_batch_free(&b);

    /* an answer of 600 queries x 20 matches x 64 empty tags: every match is
       within NF_TAGS_MAX and the match count within NF_MATCHES_MAX, but the
       768,000 tags (1.5 MB on the wire, ~100 MB unpacked) are over
       NF_FRAME_TAGS_MAX */
    size_t dl = 0, rl = 0;
    s_field(doc, &dl, 1, 2, "x", 1);
    for (int i = 0; i < 64; i++)
        s_field(doc, &dl, 4, 2, "", 0);
    uint8_t mt[4096];
    size_t ml = 0;
    for (int i = 0; i < 20; i++)
        s_field(mt, &ml, 1, 2, doc, dl);
    for (int q = 0; q < 600; q++)
        s_field(idx, &rl, 1, 2, mt, ml);
    CHECK(s_recv_raw(pull, push, NF_BODY_RESULT, 80, idx, rl, &msg) == NF_EPROTO);
    CHECK(strstr(nf_error_msg(), "tags in one frame (NF_FRAME_TAGS_MAX): more than 640000")
          != NULL);
    nf_msg_clear(&msg);

    /* a Plan with nqueries 100,000,000 (the reducer amplification) and 2^32-1 */
    uint32_t nqs[2] = {100000000u, 0xffffffffu};
    for (int i = 0; i < 2; i++) {
        uint8_t plan[32];
        size_t pl = 0;
        s_field(plan, &pl, 3, 0, NULL, NF_BODY_SEARCH);
        s_field(plan, &pl, 4, 0, NULL, 1);
        s_field(plan, &pl, 5, 0, NULL, nqs[i]);
        CHECK(pl < 40);
        CHECK(s_recv_raw(pull, push, NF_BODY_PLAN, 78, plan, pl, &msg) == NF_EPROTO);
        CHECK(strstr(nf_error_msg(), "plan nqueries") != NULL
              && strstr(nf_error_msg(), "NF_QUERIES_MAX") != NULL);
        CHECK(msg.request_id == 78);
        nf_msg_clear(&msg);
    }

    /* a packed list of 2000 shards in a plan */
    il = 0;
    kl = 0;
    for (int i = 0; i < 2000; i++)
        kl += s_varint(packed + kl, (uint64_t) i % 5);
    s_field(idx, &il, 1, 2, packed, kl);
    CHECK(s_recv_raw(pull, push, NF_BODY_PLAN, 81, idx, il, &msg) == NF_EPROTO);
    CHECK(!strcmp(nf_error_msg(), "shards (NF_SHARDS_MAX): 2000, at most 1024"));
    nf_msg_clear(&msg);

    /* values: top_k, queries x top_k, filter and fields (reserved, issue 11) */
    nf_env_init(&e);
    e.request_id = 79;
    Nflow__SearchRequest sr = NFLOW__SEARCH_REQUEST__INIT;
    char *texts[40];
    for (int i = 0; i < 40; i++)
        texts[i] = "hello";
    sr.texts = texts;
    sr.n_texts = 1;
    sr.count = 1;
    sr.top_k = 20000;
    e.body_case = NF_BODY_SEARCH;
    e.search = &sr;
    CHECK_OK(nf_msg_send(push, NULL, &e, 0));
    CHECK(nf_msg_recv(pull, &msg) == NF_EPROTO);
    CHECK(!strcmp(nf_error_msg(), "top_k: 20000, at most 10000 (NF_TOPK_MAX)"));
    CHECK(msg.request_id == 79);
    nf_msg_clear(&msg);
    sr.count = 40;      /* 40 x 10,000 > NF_MATCHES_MAX; 20 x 10,000 is legal */
    sr.n_texts = 40;
    sr.top_k = 10000;
    CHECK(nf_msg_check_limits(&e) == NF_EPROTO);
    CHECK(strstr(nf_error_msg(), "NF_MATCHES_MAX") != NULL);
    sr.count = 20;
    sr.n_texts = 20;
    CHECK_OK(nf_msg_check_limits(&e));
    sr.n_texts = 19;
    CHECK(nf_msg_check_limits(&e) == NF_EPROTO && strstr(nf_error_msg(), "query texts: 19"));
    sr.n_texts = 20;
    sr.filter = "year >= 2000";     /* within the limits; the gateway checks its fields */
    CHECK_OK(nf_msg_check_limits(&e));
    CHECK_OK(nf_msg_check_request(&e));
    sr.filter = "";
    CHECK_OK(nf_msg_check_request(&e));

    char *longid = malloc(10 * 1024 + 1);
    memset(longid, 'x', 10 * 1024);
    longid[10 * 1024] = 0;
    nf_batch_t ids = {0};
    CHECK_OK(nf_batch_add(&ids, longid, strlen(longid), NULL, NULL, 0, NULL, NULL, 0));
    Nflow__DeleteRequest del;
    nf_batch_view_delete(&ids, &del);
    e.body_case = NF_BODY_DELETE;
    e.delete_ = &del;
    CHECK(nf_msg_check_limits(&e) == NF_EPROTO);
    CHECK(!strcmp(nf_error_msg(), "id 0: bytes: 10240, at most 256 (NF_ID_MAX)"));
    nf_batch_reset(&ids, 0);
    CHECK_OK(nf_batch_add(&ids, "", 0, NULL, NULL, 0, NULL, NULL, 0));
    nf_batch_view_delete(&ids, &del);
    CHECK_OK(nf_msg_check_limits(&e));          /* the limits allow it ... */
    CHECK(nf_msg_check_request(&e) == NF_EINVAL);   /* ... a client request may not */
    CHECK(strstr(nf_error_msg(), "empty id") != NULL);
    nf_batch_free(&ids);
    free(longid);

    /* a body frame over NF_FRAME_MAX is refused before it is unpacked */
    size_t big = (size_t) NF_FRAME_MAX + 1;
    uint8_t *huge = calloc(1, big);
    if (huge) {
        CHECK(s_recv_raw(pull, push, NF_BODY_INDEX, 82, huge, big, &msg) == NF_EPROTO);
        CHECK(strstr(nf_error_msg(), "NF_FRAME_MAX") != NULL);
        nf_msg_clear(&msg);
        free(huge);
    }

    free(doc);
    free(idx);
    free(packed);
    zsock_destroy(&pull);
    zsock_destroy(&push);
}

/* An index batch is a handful of buffers: the router's split copies byte
   ranges per shard, the body frame is forwarded untouched (shared), and
   the receiver reads the columns in place. */
static void
test_batch(void)
{
    zsock_t *pull, *push;
    s_pair(ZMQ_PULL, ZMQ_PUSH, &pull, &push);
    nf_batch_t b = {0}, part = {0};
    nf_batch_reset(&b, 2);
    const char *keys[2] = {"k1", "k2"}, *values[2] = {"v1", "v2"};
    float v0[2] = {1, 2}, v1[2] = {3, 4}, v2[2] = {5, 6};
    CHECK_OK(nf_batch_add(&b, "a", 1, v0, "first", 5, keys, values, 2));
    CHECK_OK(nf_batch_add(&b, "bb", 2, v1, NULL, 0, NULL, NULL, 0));
    CHECK_OK(nf_batch_add(&b, "ccc", 3, v2, "third", 5, keys + 1, values + 1, 1));
    nf_env_t e;
    nf_env_init(&e);
    Nflow__IndexBatch ib;
    nf_batch_view(&b, &ib);
    e.request_id = 5;
    e.body_case = NF_BODY_INDEX;
    e.index = &ib;
    CHECK_OK(nf_msg_check_request(&e));
    CHECK_OK(nf_msg_send(push, NULL, &e, 0));
    nf_msg_t msg, fwd;
    CHECK_OK(nf_msg_recv(pull, &msg));
    const Nflow__IndexBatch *got = msg.env->index;
    CHECK(got->count == 3 && got->dim == 2 && got->vectors.len == 24);
    size_t len, t0;
    CHECK(!memcmp(nf_batch_id(got, 2, &len), "ccc", 3) && len == 3);
    CHECK(!memcmp(nf_batch_text(got, 0, &len), "first", 5) && len == 5);
    nf_batch_text(got, 1, &len);
    CHECK(len == 0);
    CHECK(nf_batch_tags(got, 0, &t0) == 2 && t0 == 0);
    CHECK(nf_batch_tags(got, 2, &t0) == 1 && t0 == 2);
    float row[2];
    memcpy(row, got->vectors.data + 2 * 8, 8);
    CHECK(row[0] == 5 && row[1] == 6);

    /* the split: documents 0 and 2 of the batch, their columns copied */
    nf_batch_reset(&part, got->dim);
    CHECK_OK(nf_batch_add_from(&part, got, 0));
    CHECK_OK(nf_batch_add_from(&part, got, 2));
    Nflow__IndexBatch pv;
    nf_batch_view(&part, &pv);
    nf_env_t pe = *msg.env;
    pe.index = &pv;
    CHECK_OK(nf_msg_check_limits(&pe));
    CHECK(pv.count == 2 && pv.n_tag_key_ends == 3 && pv.vectors.len == 16);
    CHECK(!memcmp(nf_batch_id(&pv, 1, &len), "ccc", 3));
    nf_col_span(pv.tag_value_ends, pv.n_tag_value_ends, 2, &t0, &len);
    CHECK(len == 2 && !memcmp(pv.tag_values.data + t0, "v2", 2));

    /* forwarding: the body frame as received, with a new header */
    nf_env_t hdr = *msg.env;
    hdr.request_id = 6;
    CHECK_OK(nf_msg_forward_hop(push, NULL, &hdr, &msg, "router", 1, 0));
    CHECK_OK(nf_msg_recv(pull, &fwd));
    CHECK(fwd.request_id == 6 && fwd.env->n_route == 1 && fwd.env->index->count == 3);
    CHECK(!memcmp(fwd.env->index->vectors.data, got->vectors.data, 24));
    hdr.body_case = NF_BODY_SEARCH;     /* a header naming another body: refused */
    CHECK(nf_msg_forward_hop(push, NULL, &hdr, &msg, "router", 1, 0) == NF_EINVAL);
    nf_msg_clear(&fwd);
    nf_msg_clear(&msg);

    /* a raw receive keeps the body undecoded and still forwards it */
    CHECK_OK(nf_msg_send(push, NULL, &e, 0));
    CHECK_OK(nf_msg_recv_raw(pull, &msg));
    CHECK(msg.env->body_case == NF_BODY_INDEX && msg.env->index == NULL);
    CHECK_OK(nf_msg_forward_hop(push, NULL, msg.env, &msg, "gateway", 1, 0));
    nf_msg_clear(&msg);
    CHECK_OK(nf_msg_recv(pull, &fwd));
    CHECK(fwd.env->index && fwd.env->index->count == 3);
    nf_msg_clear(&fwd);

    /* a spent deadline still travels as 1 us left, never as 0 (no limit) */
    e.deadline_us = nf_now_us() - 1000;
    CHECK_OK(nf_msg_send(push, NULL, &e, 0));
    CHECK_OK(nf_msg_recv(pull, &msg));
    CHECK(msg.env->deadline_us != 0 && msg.env->deadline_us <= nf_now_us());
    nf_msg_clear(&msg);

    nf_batch_free(&part);
    nf_batch_free(&b);
    zsock_destroy(&pull);
    zsock_destroy(&push);
}

/* NaN / Inf and partial float32 values are refused, and a 3-byte vector
   is reported with its byte length, not as "0 values". */
/* Typed columns (issue 11): built per document with nf_batch_add_fields,
   sent, checked, read back with nulls; split as the router does; and every
   malformed shape refused by nf_msg_check_limits with what and where. */
static void
test_columns(void)
{
    zsock_t *pull, *push;
    s_pair(ZMQ_PULL, ZMQ_PUSH, &pull, &push);
    nf_field_def_t defs[6];
    size_t nd = 0;
    CHECK_OK(nf_field_defs_parse("year:int, price:float,archived:bool,genre:keyword,"
                                 "labels:keyword[],day:datetime", defs, 6, &nd));
    CHECK(nd == 6);
    CHECK(nf_field_defs_parse("a:int,a:float", defs, 6, &nd) == NF_EINVAL
          && strstr(nf_error_msg(), "'a' is declared twice"));
    CHECK_OK(nf_field_defs_parse("year:int,price:float,archived:bool,genre:keyword,"
                                 "labels:keyword[],day:datetime", defs, 6, &nd));
    nf_batch_t b = {0}, part = {0};
    nf_batch_reset(&b, 0);
    nf_batch_set_columns(&b, defs, nd);
    const char *set[2] = {"x", "yy"};
    nf_fval_t d0[6] = {
        {.name = "year", .type = NF_FIELD_INT, .v.i = 2001},
        {.name = "price", .type = NF_FIELD_INT, .v.i = 3},      /* an int for a float */
        {.name = "archived", .type = NF_FIELD_BOOL, .v.b = true},
        {.name = "genre", .type = NF_FIELD_KEYWORD, .v.s = "scifi"},
        {.name = "labels", .type = NF_FIELD_KEYWORDS, .v.set = {set, 2}},
        {.name = "day", .type = NF_FIELD_DATETIME, .v.i = 86400000000ll},
    };
    nf_fval_t d1[1] = {{.name = "labels", .type = NF_FIELD_KEYWORD, .v.s = "solo"}};
    nf_fields_t f0 = {d0, 6}, f1 = {d1, 1};
    CHECK_OK(nf_batch_add(&b, "a", 1, NULL, NULL, 0, NULL, NULL, 0));
    CHECK_OK(nf_batch_add_fields(&b, &f0));
    CHECK_OK(nf_batch_add(&b, "b", 1, NULL, NULL, 0, NULL, NULL, 0));
    CHECK_OK(nf_batch_add_fields(&b, &f1));             /* all but labels null */
    CHECK_OK(nf_batch_add(&b, "c", 1, NULL, NULL, 0, NULL, NULL, 0));
    CHECK_OK(nf_batch_add_fields(&b, NULL));            /* all null */
    nf_env_t e;
    nf_env_init(&e);
    Nflow__IndexBatch ib;
    nf_batch_view(&b, &ib);
    CHECK(ib.n_columns == 6 && ib.columns[0]->values.len == 24 && ib.columns[0]->nulls.len == 1);
    e.body_case = NF_BODY_INDEX;
    e.index = &ib;
    CHECK_OK(nf_msg_check_request(&e));
    CHECK_OK(nf_msg_send(push, NULL, &e, 0));
    nf_msg_t msg;
    CHECK_OK(nf_msg_recv(pull, &msg));
    const Nflow__IndexBatch *got = msg.env->index;
    CHECK(got->n_columns == 6);
    size_t sb, np;
    CHECK(nf_batch_fields_room(got, &sb, &np) == 6);
    char *strs = malloc(sb), *sat = strs;
    const char **ptrs = malloc(np * sizeof *ptrs), **pat = ptrs;
    nf_fval_t out[NF_FIELDS_MAX];
    CHECK(nf_batch_fields(got, 0, out, &sat, &pat) == 6);
    CHECK(out[0].type == NF_FIELD_INT && out[0].v.i == 2001);
    CHECK(out[1].type == NF_FIELD_FLOAT && out[1].v.f == 3.0);
    CHECK(out[2].type == NF_FIELD_BOOL && out[2].v.b);
    CHECK(out[3].type == NF_FIELD_KEYWORD && !strcmp(out[3].v.s, "scifi"));
    CHECK(out[4].type == NF_FIELD_KEYWORDS && out[4].v.set.n == 2
          && !strcmp(out[4].v.set.v[1], "yy"));
    CHECK(out[5].type == NF_FIELD_DATETIME && out[5].v.i == 86400000000ll);
    CHECK(nf_batch_fields(got, 1, out, &sat, &pat) == 6);
    CHECK(out[0].type == NF_FIELD_NULL && out[3].type == NF_FIELD_NULL);
    CHECK(out[4].type == NF_FIELD_KEYWORDS && out[4].v.set.n == 1
          && !strcmp(out[4].v.set.v[0], "solo"));
    CHECK(nf_batch_fields(got, 2, out, &sat, &pat) == 6);
    CHECK(out[4].type == NF_FIELD_NULL && out[5].type == NF_FIELD_NULL);
    CHECK((size_t) (sat - strs) <= sb && (size_t) (pat - ptrs) <= np);

    /* the router's split: documents 2 and 0, their values with them */
    nf_batch_reset(&part, 0);
    CHECK_OK(nf_batch_add_from(&part, got, 2));
    CHECK_OK(nf_batch_add_from(&part, got, 0));
    Nflow__IndexBatch pv;
    nf_batch_view(&part, &pv);
    e.index = &pv;
    CHECK_OK(nf_msg_check_limits(&e));
    sat = strs;
    pat = ptrs;
    CHECK(nf_batch_fields(&pv, 0, out, &sat, &pat) == 6 && out[3].type == NF_FIELD_NULL);
    CHECK(nf_batch_fields(&pv, 1, out, &sat, &pat) == 6 && !strcmp(out[3].v.s, "scifi")
          && out[4].v.set.n == 2);
    free(strs);
    free(ptrs);

    /* malformed columns: what and where */
    Nflow__Column *c = b.colp[0];
    e.index = &ib;
    c->values.len = 16;
    CHECK(nf_msg_check_limits(&e) == NF_EPROTO
          && strstr(nf_error_msg(), "column 'year': 16 bytes of values, expected count x 8 = 24"));
    c->values.len = 24;
    c->nulls.len = 2;
    CHECK(nf_msg_check_limits(&e) == NF_EPROTO
          && strstr(nf_error_msg(), "column 'year': nulls: 2 bytes for 3 documents"));
    c->nulls.len = 1;
    c->type = 9;
    CHECK(nf_msg_check_limits(&e) == NF_EPROTO && strstr(nf_error_msg(), "unknown type 9"));
    c->type = NF_FIELD_INT;
    uint8_t saved = b.colp[2]->values.data[0];
    b.colp[2]->values.data[0] = 7;
    CHECK(nf_msg_check_limits(&e) == NF_EPROTO && strstr(nf_error_msg(), "bool byte 7"));
    b.colp[2]->values.data[0] = saved;
    b.colp[3]->n_ends = 2;
    CHECK(nf_msg_check_limits(&e) == NF_EPROTO
          && strstr(nf_error_msg(), "column 'genre': keyword ends: 2 entries for 3"));
    b.colp[3]->n_ends = 3;
    b.colp[4]->item_ends[2] = 2;        /* 3 keywords, the documents say 2 */
    CHECK(nf_msg_check_limits(&e) == NF_EPROTO && strstr(nf_error_msg(), "column 'labels'"));
    b.colp[4]->item_ends[2] = 3;
    b.colp[5]->name = "year";
    CHECK(nf_msg_check_limits(&e) == NF_EPROTO
          && strstr(nf_error_msg(), "column 'year' is given twice"));
    b.colp[5]->name = "day";
    CHECK_OK(nf_msg_check_limits(&e));
    /* a wrong-typed value is refused by the builder, naming the field */
    nf_fval_t bad[1] = {{.name = "year", .type = NF_FIELD_KEYWORD, .v.s = "2001"}};
    nf_fields_t fb = {bad, 1};
    nf_batch_reset(&part, 0);
    nf_batch_set_columns(&part, defs, nd);
    CHECK_OK(nf_batch_add(&part, "z", 1, NULL, NULL, 0, NULL, NULL, 0));
    CHECK(nf_batch_add_fields(&part, &fb) == NF_EINVAL
          && strstr(nf_error_msg(), "field 'year' has type int; the value is a keyword"));
    nf_msg_clear(&msg);

    /* keyword ends are bounded per frame, counted before anything is
       unpacked: two columns of 1,280,001 ends each (2.5 MB on the wire,
       10 MB unpacked) are over NF_DOCS_MAX x NF_KEYWORDS_MAX together */
    size_t half = (size_t) NF_DOCS_MAX * NF_KEYWORDS_MAX / 2 + 1;
    uint32_t *zeros = calloc(half, sizeof *zeros);
    CHECK(zeros != NULL);
    if (zeros) {
        Nflow__Column k1 = NFLOW__COLUMN__INIT, k2 = NFLOW__COLUMN__INIT, *kc[2] = {&k1, &k2};
        k1.name = "a";
        k2.name = "b";
        k1.type = k2.type = NF_FIELD_KEYWORDS;
        k1.ends = k2.ends = zeros;
        k1.n_ends = k2.n_ends = half;
        Nflow__IndexBatch big = NFLOW__INDEX_BATCH__INIT;
        uint32_t one = 1;
        big.count = 1;
        big.ids = (ProtobufCBinaryData) {1, (uint8_t *) "a"};
        big.id_ends = &one;
        big.n_id_ends = 1;
        big.columns = kc;
        big.n_columns = 2;
        e.index = &big;
        CHECK_OK(nf_msg_send(push, NULL, &e, 0));
        CHECK(nf_msg_recv(pull, &msg) == NF_EPROTO
              && strstr(nf_error_msg(), "keywords in one frame"));
        nf_msg_clear(&msg);
        free(zeros);
    }
    nf_batch_free(&b);
    nf_batch_free(&part);
    zsock_destroy(&pull);
    zsock_destroy(&push);
}

static void
test_vec_check(void)
{
    float v[3] = {1.0f, NAN, 2.0f};
    ProtobufCBinaryData b = {sizeof v, (uint8_t *) v};
    CHECK(nf_vec_check(&b) == NF_EINVAL);
    CHECK(!strcmp(nf_error_msg(), "vector[1] is NaN: values must be finite"));
    v[1] = INFINITY;
    CHECK(nf_vec_check(&b) == NF_EINVAL && strstr(nf_error_msg(), "infinite"));
    v[1] = 0.5f;
    CHECK_OK(nf_vec_check(&b));
    /* rows of a block: the row and the value within it are named */
    float rows[2][3] = {{1, 2, 3}, {4, 5, 6}};
    ProtobufCBinaryData blk = {sizeof rows, (uint8_t *) rows};
    size_t row = 99;
    CHECK_OK(nf_vec_check_rows(&blk, 3, &row));
    CHECK(row == 99);
    rows[1][2] = -INFINITY;
    CHECK(nf_vec_check_rows(&blk, 3, &row) == NF_EINVAL && row == 1);
    CHECK(!strcmp(nf_error_msg(), "vector[2] is infinite: values must be finite"));
    rows[0][1] = NAN;
    CHECK(nf_vec_check_rows(&blk, 3, &row) == NF_EINVAL && row == 0);
    CHECK(!strcmp(nf_error_msg(), "vector[1] is NaN: values must be finite"));
    ProtobufCBinaryData none = {0, NULL};
    CHECK_OK(nf_vec_check_rows(&none, 3, &row));
    ProtobufCBinaryData three = {3, (uint8_t *) v};
    CHECK(nf_vec_check(&three) == NF_EDIM);
    CHECK(strstr(nf_error_msg(), "vector has 3 bytes") != NULL);
    float out[4];
    CHECK(nf_vec_from_bytes(&three, 4, out) == NF_EDIM);
    CHECK(strstr(nf_error_msg(), "vector has 3 bytes, not a whole number of float32 values")
          != NULL);
    CHECK(strstr(nf_error_msg(), "0 values") == NULL);

    nf_env_t e;
    nf_env_init(&e);
    Nflow__SearchRequest sr = NFLOW__SEARCH_REQUEST__INIT;
    v[2] = -INFINITY;
    sr.count = 1;
    sr.dim = 3;
    sr.vectors = b;
    e.body_case = NF_BODY_SEARCH;
    e.search = &sr;
    CHECK(nf_msg_check_request(&e) == NF_EINVAL);
    CHECK(!strcmp(nf_error_msg(), "query 0: vector[2] is infinite: values must be finite"));
    CHECK(nf_msg_top_k(0) == NF_TOPK_DEFAULT && nf_msg_top_k(7) == 7
          && nf_msg_top_k(NF_TOPK_MAX + 1) == NF_TOPK_MAX);
}

/* Large bytes fields are not copied at unpack: the batch points into the
   received frame (s_unpack_lent).  What the batch reads must be what
   protobuf-c would have unpacked: the last occurrence of a field wins,
   whether it is lent or not; a blob cut short is refused; freeing the
   message frees nothing it does not own (ASan). */
static void
test_lent(void)
{
    zsock_t *pull, *push;
    s_pair(ZMQ_PULL, ZMQ_PUSH, &pull, &push);
    enum { N = 32, D = 64 };                    /* 8 KiB of vectors */
    static float a[N * D], b[N * D];
    for (size_t i = 0; i < N * D; i++) {
        a[i] = (float) i;
        b[i] = -(float) i;
    }
    static uint8_t body[3 * sizeof a + 1024];
    char ids[2 * N];
    uint8_t ends[N];
    for (int i = 0; i < N; i++) {
        ids[2 * i] = 'a' + i % 26;
        ids[2 * i + 1] = 'A' + i / 26;
        ends[i] = (uint8_t) (2 * (i + 1));      /* varints < 128: one byte each */
    }
    /* 0: one large vectors field; 1: twice, the last wins; 2: large then a
       small one (the small one wins: count then disagrees, refused);
       3: small then large (the large wins) */
    for (int c = 0; c < 4; c++) {
        size_t len = 0;
        s_field(body, &len, 1, 0, NULL, N);
        s_field(body, &len, 2, 0, NULL, D);
        if (c == 0)
            s_field(body, &len, 5, 2, a, sizeof a);
        if (c == 1) {
            s_field(body, &len, 5, 2, b, sizeof b);
            s_field(body, &len, 5, 2, a, sizeof a);
        }
        if (c == 2) {
            s_field(body, &len, 5, 2, a, sizeof a);
            s_field(body, &len, 5, 2, b, 64);
        }
        if (c == 3) {
            s_field(body, &len, 5, 2, b, 64);
            s_field(body, &len, 5, 2, a, sizeof a);
        }
        s_field(body, &len, 3, 2, ids, sizeof ids);
        s_field(body, &len, 4, 2, ends, sizeof ends);
        nf_msg_t msg;
        int rc = s_recv_raw(pull, push, NF_BODY_INDEX, 7, body, len, &msg);
        if (c == 2) {
            CHECK(rc == NF_EPROTO);
            CHECK(strstr(nf_error_msg(), "vector") != NULL);
        } else {
            CHECK_OK(rc);
            const Nflow__IndexBatch *ib = rc == NF_OK ? msg.env->index : NULL;
            CHECK(ib && ib->count == N && ib->dim == D && ib->vectors.len == sizeof a);
            CHECK(ib && ib->vectors.len == sizeof a && !memcmp(ib->vectors.data, a, sizeof a));
            size_t il;
            CHECK(ib && !memcmp(nf_batch_id(ib, 3, &il), "dA", 2) && il == 2);
        }
        nf_msg_clear(&msg);
    }
    /* a blob whose length runs past the frame: refused, nothing lent */
    size_t len = 0;
    s_field(body, &len, 1, 0, NULL, N);
    s_field(body, &len, 5, 2, a, sizeof a);
    nf_msg_t msg;
    CHECK(s_recv_raw(pull, push, NF_BODY_INDEX, 8, body, len - 100, &msg) == NF_EPROTO);
    nf_msg_clear(&msg);
    zsock_destroy(&push);
    zsock_destroy(&pull);
}

/* An index batch sent with its vectors gathered at pack time (the router's
   per-shard slices): the receiver gets the picked rows, in the given order,
   as the batch's own vectors field. */
static void
test_gather(void)
{
    zsock_t *pull, *push;
    s_pair(ZMQ_PULL, ZMQ_PUSH, &pull, &push);
    enum { ROWS = 50, D = 40 };
    static float block[ROWS * D];
    for (size_t i = 0; i < ROWS * D; i++)
        block[i] = (float) i * 0.5f;
    uint32_t pick[3] = {7, 2, 49};
    nf_gather_t g = {(const uint8_t *) block, D * 4, pick, 3};
    char ids[] = "abc";
    uint32_t ends[3] = {1, 2, 3};
    Nflow__IndexBatch b = NFLOW__INDEX_BATCH__INIT;
    b.count = 3;
    b.dim = D;
    b.ids = (ProtobufCBinaryData) {3, (uint8_t *) ids};
    b.id_ends = ends;
    b.n_id_ends = 3;
    nf_env_t env;
    nf_env_init(&env);
    env.request_id = 9;
    env.body_case = NF_BODY_INDEX;
    env.index = &b;
    env.gather = &g;
    CHECK(nf_env_body_size(&env) >= 3 * D * 4);
    CHECK_OK(nf_msg_send(push, NULL, &env, 0));
    nf_msg_t msg;
    CHECK_OK(nf_msg_recv(pull, &msg));
    const Nflow__IndexBatch *r = msg.env ? msg.env->index : NULL;
    CHECK(r && r->count == 3 && r->dim == D && r->vectors.len == 3 * D * 4);
    for (size_t k = 0; r && r->vectors.len == 3 * D * 4 && k < 3; k++)
        CHECK(!memcmp(r->vectors.data + k * D * 4, block + pick[k] * D, D * 4));
    size_t il;
    CHECK(r && !memcmp(nf_batch_id(r, 1, &il), "b", 1) && il == 1);
    nf_msg_clear(&msg);

    /* the gathered floats start 4-byte aligned in the received frame
       (they are lent in place: >= 4 KiB), whatever the other fields' size */
    static uint32_t all[ROWS];
    static uint32_t all_ends[ROWS];
    static char all_ids[ROWS + 3];
    for (uint32_t i = 0; i < ROWS; i++)
        all[i] = i;
    memset(all_ids, 'x', sizeof all_ids);
    for (size_t extra = 0; extra < 4; extra++) {
        for (uint32_t i = 0; i < ROWS; i++)
            all_ends[i] = i + 1 + (i == ROWS - 1 ? (uint32_t) extra : 0);
        nf_gather_t ga = {(const uint8_t *) block, D * 4, all, ROWS};
        b.count = ROWS;
        b.ids = (ProtobufCBinaryData) {ROWS + extra, (uint8_t *) all_ids};
        b.id_ends = all_ends;
        b.n_id_ends = ROWS;
        env.gather = &ga;
        CHECK(nf_env_body_size(&env) >= ROWS * D * 4);
        CHECK_OK(nf_msg_send(push, NULL, &env, 0));
        CHECK_OK(nf_msg_recv(pull, &msg));
        r = msg.env ? msg.env->index : NULL;
        CHECK(r && r->count == ROWS && r->vectors.len == ROWS * D * 4
              && (uintptr_t) r->vectors.data % 4 == 0);
        CHECK(r && r->vectors.len == sizeof block && !memcmp(r->vectors.data, block, sizeof block));
        CHECK(r && r->align.len < 4);
        nf_msg_clear(&msg);
    }
    zsock_destroy(&push);
    zsock_destroy(&pull);
}

int
main(void)
{
    zsys_init();
    test_roundtrip();
    test_malformed();
    test_router();
    test_no_peer();
    test_hops();
    test_vectors();
    test_shard_of();
    test_limits();
    test_batch();
    test_columns();
    test_vec_check();
    test_lent();
    test_gather();
    return nf_test_done("msg");
}
