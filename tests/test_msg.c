/*  test_msg: the wire codec.  Round trips over inproc sockets, routing on
    ROUTER sockets, every kind of malformed frame, send failures, hops,
    vectors and the id hash. */
#include <math.h>
#include <string.h>

#include "nf_error.h"
#include "nf_limits.h"
#include "nf_msg.h"
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

    Nflow__Envelope env;
    nf_env_init(&env);
    env.version = 7;                    /* nf_msg_send forces the version */
    env.request_id = 42;
    Nflow__SearchRequest search = NFLOW__SEARCH_REQUEST__INIT;
    Nflow__Document q = NFLOW__DOCUMENT__INIT, *qs[1] = {&q};
    q.text = "hello world";
    search.queries = qs;
    search.n_queries = 1;
    search.top_k = 3;
    env.body_case = NFLOW__ENVELOPE__BODY_SEARCH;
    env.search = &search;
    CHECK_OK(nf_msg_send(push, NULL, &env, 0));
    CHECK(env.version == 7);            /* the caller's envelope is untouched */

    nf_msg_t msg;
    CHECK_OK(nf_msg_recv(pull, &msg));
    CHECK(msg.routing == NULL);
    CHECK(msg.env && msg.env->version == NF_PROTOCOL_VERSION);
    CHECK(msg.request_id == 42);
    CHECK(msg.env->body_case == NFLOW__ENVELOPE__BODY_SEARCH);
    CHECK(msg.env->search->top_k == 3 && msg.env->search->n_queries == 1);
    CHECK(!strcmp(msg.env->search->queries[0]->text, "hello world"));
    nf_msg_clear(&msg);
    nf_msg_clear(&msg);                 /* clearing twice is harmless */

    /* one empty delimiter before the envelope is accepted on a PULL */
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

    s_send_raw(push, "\x01\x02garbage", 9, false);
    CHECK(nf_msg_recv(pull, &msg) == NF_EPROTO);
    CHECK(msg.env == NULL);
    CHECK(strstr(nf_error_msg(), "not a protobuf") != NULL);
    CHECK(msg.peer[0] != '\0');
    nf_msg_clear(&msg);

    s_send_raw(push, "", 0, false);
    CHECK(nf_msg_recv(pull, &msg) == NF_EPROTO);
    CHECK(strstr(nf_error_msg(), "empty") != NULL);
    nf_msg_clear(&msg);

    s_send_raw(push, "a", 1, true);
    s_send_raw(push, "b", 1, true);
    s_send_raw(push, "c", 1, false);
    CHECK(nf_msg_recv(pull, &msg) == NF_EPROTO);
    CHECK(strstr(nf_error_msg(), "got 3 frames") != NULL);
    nf_msg_clear(&msg);

    /* wrong version: the envelope is kept so the caller can answer it */
    Nflow__Envelope env;
    nf_env_init(&env);
    env.version = 99;
    env.request_id = 5;
    Nflow__Control c = NFLOW__CONTROL__INIT;
    c.command = NFLOW__CONTROL_COMMAND__CONTROL_PING;
    env.body_case = NFLOW__ENVELOPE__BODY_CONTROL;
    env.control = &c;
    uint8_t buf[256];
    size_t len = nflow__envelope__pack(&env, buf);
    s_send_raw(push, buf, len, false);
    CHECK(nf_msg_recv(pull, &msg) == NF_EVERSION);
    CHECK(msg.env != NULL && msg.request_id == 5);
    CHECK(strstr(nf_error_msg(), "version 99") != NULL);
    nf_msg_clear(&msg);

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

    Nflow__Envelope env;
    nf_env_init(&env);
    env.request_id = 11;
    Nflow__Control c = NFLOW__CONTROL__INIT;
    c.command = NFLOW__CONTROL_COMMAND__CONTROL_STATUS;
    env.body_case = NFLOW__ENVELOPE__BODY_CONTROL;
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
    s_send_raw(dealer, "junk", 4, false);
    CHECK(nf_msg_recv(router, &msg) == NF_EPROTO);
    CHECK(msg.routing && zmsg_size(msg.routing) == 1);
    nf_msg_clear(&msg);
    s_send_raw(dealer, "x", 1, true);
    s_send_raw(dealer, "y", 1, false);
    CHECK(nf_msg_recv(router, &msg) == NF_EPROTO);
    CHECK(msg.routing && zmsg_size(msg.routing) == 1);
    nf_msg_clear(&msg);

    /* REQ-style delimiter: kept in the routing so replies repeat it */
    s_send_raw(dealer, "", 0, true);
    CHECK_OK(nf_msg_send(dealer, NULL, &env, 0));
    CHECK_OK(nf_msg_recv(router, &msg));
    CHECK(msg.routing && zmsg_size(msg.routing) == 2);
    nf_msg_clear(&msg);

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
    Nflow__Envelope env;
    nf_env_init(&env);
    Nflow__Control c = NFLOW__CONTROL__INIT;
    env.body_case = NFLOW__ENVELOPE__BODY_CONTROL;
    env.control = &c;
    CHECK(nf_msg_send(push, NULL, &env, ZMQ_DONTWAIT) == NF_EUNAVAIL);
    zsock_destroy(&push);
}

static void
test_hops(void)
{
    zsock_t *pull, *push;
    s_pair(ZMQ_PULL, ZMQ_PUSH, &pull, &push);
    Nflow__Envelope env;
    nf_env_init(&env);
    Nflow__DeleteRequest del = NFLOW__DELETE_REQUEST__INIT;
    char *ids[] = {"a"};
    del.ids = ids;
    del.n_ids = 1;
    env.body_case = NFLOW__ENVELOPE__BODY_DELETE;
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

/* Send raw envelope bytes, receive them: the rc of nf_msg_recv. */
static int
s_recv_raw(zsock_t *pull, zsock_t *push, const uint8_t *bytes, size_t len, nf_msg_t *msg)
{
    s_send_raw(push, bytes, len, false);
    return nf_msg_recv(pull, msg);
}

/* Counts a peer sends are checked on the frame's bytes before protobuf-c
   allocates a struct per element, then on the unpacked values: each over
   a limit is NF_EPROTO naming the limit and the value, with the request
   id kept so the sender can be answered. */
static void
test_limits(void)
{
    zsock_t *pull, *push;
    s_pair(ZMQ_PULL, ZMQ_PUSH, &pull, &push);
    size_t cap = 4u << 20;
    uint8_t *doc = malloc(cap), *idx = malloc(cap), *env = malloc(cap);
    nf_msg_t msg;

    /* 600,000 empty tags in one document (the indexer crash): 1.2 MB */
    size_t dl = 0, il = 0, el = 0;
    s_field(doc, &dl, 1, 2, "x", 1);
    for (int i = 0; i < 600000; i++)
        s_field(doc, &dl, 4, 2, "", 0);
    s_field(idx, &il, 1, 2, doc, dl);
    s_field(env, &el, 1, 0, NULL, 1);
    s_field(env, &el, 2, 0, NULL, 77);
    s_field(env, &el, 10, 2, idx, il);
    CHECK(s_recv_raw(pull, push, env, el, &msg) == NF_EPROTO);
    CHECK(!strcmp(nf_error_msg(), "tags per document (NF_TAGS_MAX): 600000, at most 64"));
    CHECK(msg.env == NULL && msg.request_id == 77);
    nf_msg_clear(&msg);

    /* an answer of 600 queries x 20 matches x 64 empty tags: every match is
       within NF_TAGS_MAX and the match count within NF_MATCHES_MAX, but the
       768,000 tags (1.5 MB on the wire, ~100 MB unpacked) are over
       NF_FRAME_TAGS_MAX */
    dl = 0;
    el = 0;
    s_field(doc, &dl, 1, 2, "x", 1);
    for (int i = 0; i < 64; i++)
        s_field(doc, &dl, 4, 2, "", 0);
    uint8_t mt[4096];
    size_t ml = 0, rl = 0;
    for (int i = 0; i < 20; i++)
        s_field(mt, &ml, 1, 2, doc, dl);
    for (int q = 0; q < 600; q++)
        s_field(idx, &rl, 1, 2, mt, ml);
    s_field(env, &el, 1, 0, NULL, 1);
    s_field(env, &el, 14, 2, idx, rl);
    CHECK(s_recv_raw(pull, push, env, el, &msg) == NF_EPROTO);
    CHECK(strstr(nf_error_msg(), "tags in one frame (NF_FRAME_TAGS_MAX): more than 640000")
          != NULL);
    nf_msg_clear(&msg);

    /* a Plan with nqueries 100,000,000 (the reducer amplification) and 2^32-1 */
    uint32_t nqs[2] = {100000000u, 0xffffffffu};
    for (int i = 0; i < 2; i++) {
        uint8_t plan[32];
        size_t pl = 0;
        el = 0;
        s_field(plan, &pl, 3, 0, NULL, NFLOW__ENVELOPE__BODY_SEARCH);
        s_field(plan, &pl, 4, 0, NULL, 1);
        s_field(plan, &pl, 5, 0, NULL, nqs[i]);
        s_field(env, &el, 1, 0, NULL, 1);
        s_field(env, &el, 2, 0, NULL, 78);
        s_field(env, &el, 15, 2, plan, pl);
        CHECK(el < 40);
        CHECK(s_recv_raw(pull, push, env, el, &msg) == NF_EPROTO);
        CHECK(strstr(nf_error_msg(), "plan nqueries") != NULL
              && strstr(nf_error_msg(), "NF_QUERIES_MAX") != NULL);
        CHECK(msg.request_id == 78);
        nf_msg_clear(&msg);
    }

    /* a packed list of 2000 shards in a plan */
    el = 0;
    il = 0;
    uint8_t packed[4096];
    size_t kl = 0;
    for (int i = 0; i < 2000; i++)
        kl += s_varint(packed + kl, (uint64_t) i % 5);
    s_field(idx, &il, 1, 2, packed, kl);
    s_field(env, &el, 1, 0, NULL, 1);
    s_field(env, &el, 15, 2, idx, il);
    CHECK(s_recv_raw(pull, push, env, el, &msg) == NF_EPROTO);
    CHECK(!strcmp(nf_error_msg(), "shards (NF_SHARDS_MAX): 2000, at most 1024"));
    nf_msg_clear(&msg);

    /* values: top_k, queries x top_k, id bytes (through the encoder) */
    Nflow__Envelope e;
    nf_env_init(&e);
    e.request_id = 79;
    Nflow__SearchRequest sr = NFLOW__SEARCH_REQUEST__INIT;
    Nflow__Document q = NFLOW__DOCUMENT__INIT, *qs[40];
    q.text = "hello";
    for (int i = 0; i < 40; i++)
        qs[i] = &q;
    sr.queries = qs;
    sr.n_queries = 1;
    sr.top_k = 20000;
    e.body_case = NFLOW__ENVELOPE__BODY_SEARCH;
    e.search = &sr;
    CHECK_OK(nf_msg_send(push, NULL, &e, 0));
    CHECK(nf_msg_recv(pull, &msg) == NF_EPROTO);
    CHECK(!strcmp(nf_error_msg(), "top_k: 20000, at most 10000 (NF_TOPK_MAX)"));
    CHECK(msg.request_id == 79);
    nf_msg_clear(&msg);
    sr.n_queries = 40;      /* 40 x 10,000 > NF_MATCHES_MAX; 20 x 10,000 is legal */
    sr.top_k = 10000;
    CHECK(nf_msg_check_limits(&e) == NF_EPROTO);
    CHECK(strstr(nf_error_msg(), "NF_MATCHES_MAX") != NULL);
    sr.n_queries = 20;
    CHECK_OK(nf_msg_check_limits(&e));

    char *longid = malloc(10 * 1024 + 1);
    memset(longid, 'x', 10 * 1024);
    longid[10 * 1024] = 0;
    char *ids[1] = {longid};
    Nflow__DeleteRequest del = NFLOW__DELETE_REQUEST__INIT;
    del.ids = ids;
    del.n_ids = 1;
    e.body_case = NFLOW__ENVELOPE__BODY_DELETE;
    e.delete_ = &del;
    CHECK(nf_msg_check_limits(&e) == NF_EPROTO);
    CHECK(!strcmp(nf_error_msg(), "id 0: id bytes: 10240, at most 256 (NF_ID_MAX)"));
    ids[0] = "";
    CHECK_OK(nf_msg_check_limits(&e));          /* the limits allow it ... */
    CHECK(nf_msg_check_request(&e) == NF_EINVAL);   /* ... a client request may not */
    CHECK(strstr(nf_error_msg(), "empty id") != NULL);
    free(longid);

    /* a frame over NF_FRAME_MAX is refused before it is unpacked */
    size_t big = (size_t) NF_FRAME_MAX + 1;
    uint8_t *huge = calloc(1, big);
    if (huge) {
        CHECK(s_recv_raw(pull, push, huge, big, &msg) == NF_EPROTO);
        CHECK(strstr(nf_error_msg(), "NF_FRAME_MAX") != NULL);
        nf_msg_clear(&msg);
        free(huge);
    }

    free(doc);
    free(idx);
    free(env);
    zsock_destroy(&pull);
    zsock_destroy(&push);
}

/* NaN / Inf and partial float32 values are refused, and a 3-byte vector
   is reported with its byte length, not as "0 values". */
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
    ProtobufCBinaryData three = {3, (uint8_t *) v};
    CHECK(nf_vec_check(&three) == NF_EDIM);
    CHECK(strstr(nf_error_msg(), "vector has 3 bytes") != NULL);
    float out[4];
    CHECK(nf_vec_from_bytes(&three, 4, out) == NF_EDIM);
    CHECK(strstr(nf_error_msg(), "vector has 3 bytes, not a whole number of float32 values")
          != NULL);
    CHECK(strstr(nf_error_msg(), "0 values") == NULL);

    Nflow__Envelope e;
    nf_env_init(&e);
    Nflow__SearchRequest sr = NFLOW__SEARCH_REQUEST__INIT;
    Nflow__Document q = NFLOW__DOCUMENT__INIT, *qs[1] = {&q};
    v[2] = -INFINITY;
    q.vector = b;
    sr.queries = qs;
    sr.n_queries = 1;
    e.body_case = NFLOW__ENVELOPE__BODY_SEARCH;
    e.search = &sr;
    CHECK(nf_msg_check_request(&e) == NF_EINVAL);
    CHECK(!strcmp(nf_error_msg(), "query 0: vector[2] is infinite: values must be finite"));
    CHECK(nf_msg_top_k(0) == NF_TOPK_DEFAULT && nf_msg_top_k(7) == 7
          && nf_msg_top_k(NF_TOPK_MAX + 1) == NF_TOPK_MAX);
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
    test_vec_check();
    return nf_test_done("msg");
}
