/*  test_msg: the wire codec.  Round trips over inproc sockets, routing on
    ROUTER sockets, every kind of malformed frame, send failures, hops,
    vectors and the id hash. */
#include <math.h>
#include <string.h>

#include "nf_error.h"
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
    return nf_test_done("msg");
}
