/* nf_client: requests and answers against a fake gateway (a ROUTER in this
   process), many in flight and answered out of order; requests built from
   documents; control calls; timeouts; status mapping.  (The flow.state
   file is tested in test_expand.c, with the flow library.) */
#include "nf_client.h"
#include "nf_error.h"
#include "nf_sys.h"
#include "nf_test.h"

#include <stdlib.h>
#include <string.h>

static zsock_t *
s_fake_server(char *endpoint, size_t size)
{
    int port = nf_free_port("127.0.0.1");
    snprintf(endpoint, size, "tcp://127.0.0.1:%d", port);
    zsock_t *s = zsock_new(ZMQ_ROUTER);
    if (s && zsock_bind(s, "%s", endpoint) < 0)
        zsock_destroy(&s);
    return s;
}

/* Receive one request on the fake server (waits up to 2 s). */
static int
s_serve_recv(zsock_t *server, nf_msg_t *msg)
{
    zpoller_t *p = zpoller_new(server, NULL);
    void *which = zpoller_wait(p, 2000);
    zpoller_destroy(&p);
    if (!which)
        return NF_ETIMEOUT;
    return nf_msg_recv(server, msg);
}

static void
test_requests(void)
{
    char ep[64];
    zsock_t *server = s_fake_server(ep, sizeof ep);
    CHECK(server != NULL);
    if (!server)
        return;
    nf_client_t *c = NULL;
    CHECK_OK(nf_client_new(ep, &c));
    CHECK(c && !strcmp(nf_client_endpoint(c), ep) && nf_client_sock(c));

    /* two requests in flight */
    nf_env_t env;
    Nflow__DeleteRequest del;
    nf_batch_t ids = {0};
    nf_env_init(&env);
    CHECK_OK(nf_batch_add(&ids, "a", 1, NULL, NULL, 0, NULL, NULL, 0));
    CHECK_OK(nf_batch_add(&ids, "b", 1, NULL, NULL, 0, NULL, NULL, 0));
    nf_batch_view_delete(&ids, &del);
    env.body_case = NF_BODY_DELETE;
    env.delete_ = &del;
    uint64_t id1 = 0, id2 = 0;
    CHECK_OK(nf_client_send(c, &env, &id1));
    CHECK_OK(nf_client_send(c, &env, &id2));
    CHECK(id1 && id2 && id1 != id2);

    nf_msg_t m1, m2;
    memset(&m1, 0, sizeof m1);
    memset(&m2, 0, sizeof m2);
    CHECK_OK(s_serve_recv(server, &m1));
    CHECK_OK(s_serve_recv(server, &m2));
    CHECK(m1.env && m1.env->request_id == id1 && m1.env->body_case == NF_BODY_DELETE);
    size_t len;
    CHECK(m1.env && m1.env->delete_->count == 2
          && !memcmp(nf_delete_id(m1.env->delete_, 1, &len), "b", 1) && len == 1);
    CHECK(m2.env && m2.env->request_id == id2);

    /* answers in reverse order: the second one fails */
    if (m1.env && m2.env) {
        CHECK_OK(nf_msg_reply_error(server, m2.routing, id2, NFLOW__STATUS_CODE__STATUS_BAD_DIM,
                                    "doc 'x': vector has 3 values, expected 8"));
        nf_env_t ans;
        Nflow__Result res;
        nf_env_init(&ans);
        nflow__result__init(&res);
        res.deleted = 2;
        ans.request_id = id1;
        ans.body_case = NF_BODY_RESULT;
        ans.result = &res;
        CHECK_OK(nf_msg_send(server, m1.routing, &ans, 0));
    }
    nf_env_t *r = NULL;
    CHECK_OK(nf_client_recv(c, 2000, &r));
    CHECK(r && r->request_id == id2);
    CHECK(r && nf_client_status(r) == NF_EDIM);
    CHECK(strstr(nf_error_msg(), "STATUS_BAD_DIM: doc 'x'") != NULL);
    if (r)
        nf_env_destroy(&r);
    r = NULL;
    CHECK_OK(nf_client_recv(c, 2000, &r));
    CHECK(r && r->request_id == id1 && nf_client_status(r) == 0);
    CHECK(r && r->body_case == NF_BODY_RESULT && r->result->deleted == 2);
    if (r)
        nf_env_destroy(&r);
    nf_msg_clear(&m1);
    nf_msg_clear(&m2);

    /* nothing more: a short timeout */
    r = NULL;
    uint64_t t0 = nf_now_us();
    CHECK(nf_client_recv(c, 50, &r) == NF_ETIMEOUT && r == NULL);
    CHECK(nf_now_us() - t0 < 5000000);

    /* nf_client_call drops answers to other ids */
    nf_env_t ping;
    Nflow__Control ctl;
    nf_control_env(&ping, &ctl, NFLOW__CONTROL_COMMAND__CONTROL_PING);
    uint64_t stale = 0;
    CHECK_OK(nf_client_send(c, &ping, &stale));
    nf_msg_t m3;
    memset(&m3, 0, sizeof m3);
    CHECK_OK(s_serve_recv(server, &m3));
    /* answer the stale one only after the call is sent: the call's own
       answer is queued behind it */
    CHECK(m3.env && m3.env->body_case == NF_BODY_CONTROL
          && m3.env->control->command == NFLOW__CONTROL_COMMAND__CONTROL_PING);
    if (m3.env) {
        nf_env_t ans;
        Nflow__Control actl;
        nf_control_env(&ans, &actl, NFLOW__CONTROL_COMMAND__CONTROL_PING);
        actl.ready = true;
        ans.request_id = stale;
        CHECK_OK(nf_msg_send(server, m3.routing, &ans, 0));
        ans.request_id = stale + 1;    /* the id nf_client_call will use */
        CHECK_OK(nf_msg_send(server, m3.routing, &ans, 0));
    }
    nf_msg_clear(&m3);
    r = NULL;
    CHECK_OK(nf_client_call(c, &ping, 2000, &r));
    CHECK(r && r->request_id == stale + 1 && r->control->ready);
    if (r)
        nf_env_destroy(&r);

    nf_client_destroy(&c);
    CHECK(c == NULL);
    nf_client_destroy(&c);
    nf_batch_free(&ids);
    zsock_destroy(&server);
}

static void
test_request_builder(void)
{
    char ep[64];
    zsock_t *server = s_fake_server(ep, sizeof ep);
    nf_client_t *c = NULL;
    CHECK(server != NULL);
    CHECK_OK(nf_client_new(ep, &c));
    if (!server || !c)
        return;
    nf_env_t *env;
    /* an index request owns copies: the sources may change afterwards */
    float vec[3] = {1.0f, -2.0f, 0.5f};
    char id[8] = "doc-1";
    nf_tag_t tags[] = {{"lang", "en"}, {"n", "1"}};
    nf_request_t *req = NULL;
    CHECK_OK(nf_request_new(NF_BODY_INDEX, 0, 1500, &req));
    CHECK_OK(nf_request_add(req, id, "first", vec, 3, tags, 2));
    /* one vector block per request: another dim, or no vector, is refused */
    CHECK(nf_request_add(req, "doc-2", NULL, vec, 2, NULL, 0) == NF_EDIM);
    float vec2[3] = {0, 0, 1};
    CHECK(nf_request_add(req, "doc-2", NULL, NULL, 0, NULL, 0) == NF_EDIM);
    CHECK_OK(nf_request_add(req, "doc-2", NULL, vec2, 3, NULL, 0));
    vec[0] = 99.0f;
    id[4] = 'X';
    CHECK(nf_request_size(req) == 2);
    uint64_t id1 = 0, id2 = 0;
    CHECK_OK(nf_client_send(c, nf_request_env(req), &id1));
    CHECK_OK(nf_client_send(c, nf_request_env(req), &id2));     /* resent: a new id */
    CHECK(id2 != id1);
    for (int i = 0; i < 2; i++) {
        nf_msg_t m;
        memset(&m, 0, sizeof m);
        CHECK_OK(s_serve_recv(server, &m));
        const nf_env_t *e = m.env;
        /* the time the request gives (1500 ms) travels as time left */
        CHECK(e && e->request_id == (i ? id2 : id1) && e->deadline_us > nf_now_us()
              && e->deadline_us <= nf_now_us() + 1500000);
        CHECK(e && e->body_case == NF_BODY_INDEX && e->index->count == 2);
        if (e && e->body_case == NF_BODY_INDEX && e->index->count == 2) {
            const Nflow__IndexBatch *b = e->index;
            float got[6];
            size_t len, t0, off;
            CHECK(!memcmp(nf_batch_id(b, 0, &len), "doc-1", 5) && len == 5);
            CHECK(!memcmp(nf_batch_text(b, 0, &len), "first", 5) && len == 5);
            CHECK(b->dim == 3 && b->vectors.len == 24);
            memcpy(got, b->vectors.data, sizeof got);
            CHECK(got[0] == 1.0f && got[1] == -2.0f && got[2] == 0.5f && got[5] == 1.0f);
            CHECK(nf_batch_tags(b, 0, &t0) == 2 && nf_batch_tags(b, 1, &t0) == 0);
            nf_col_span(b->tag_key_ends, b->n_tag_key_ends, 1, &off, &len);
            CHECK(len == 1 && b->tag_keys.data[off] == 'n');
            nf_col_span(b->tag_value_ends, b->n_tag_value_ends, 1, &off, &len);
            CHECK(len == 1 && b->tag_values.data[off] == '1');
            nf_batch_text(b, 1, &len);
            CHECK(len == 0);
        }
        nf_msg_clear(&m);
    }
    nf_request_destroy(&req);
    CHECK(req == NULL);

    /* an adopted block: rows added in order stay where they are; a vector
       from elsewhere is copied into the block's next row; the request
       frees the block (ASan would name a leak or a double free) */
    float *block = malloc(4 * 3 * sizeof *block);
    CHECK(block != NULL);
    if (block) {
        for (int i = 0; i < 12; i++)
            block[i] = (float) i;
        CHECK_OK(nf_request_new(NF_BODY_INDEX, 0, 0, &req));
        nf_request_adopt_vectors(req, block, 4 * 3 * sizeof *block);
        CHECK_OK(nf_request_add(req, "r0", NULL, block, 3, NULL, 0));
        CHECK_OK(nf_request_add(req, "r1", NULL, block + 3, 3, NULL, 0));
        CHECK_OK(nf_request_add(req, "x", NULL, vec2, 3, NULL, 0));     /* copied to row 2 */
        const Nflow__IndexBatch *ib = nf_request_env(req)->index;
        CHECK(ib->vectors.data == (uint8_t *) block && ib->vectors.len == 36);
        CHECK(block[3] == 3.0f && block[5] == 5.0f && block[6] == 0.0f && block[8] == 1.0f);
        nf_request_destroy(&req);
    }

    /* search and delete requests */
    CHECK_OK(nf_request_new(NF_BODY_SEARCH, 7, 0, &req));
    CHECK_OK(nf_request_add(req, NULL, "a query", NULL, 0, NULL, 0));
    env = nf_request_env(req);
    CHECK(env->body_case == NF_BODY_SEARCH && env->search->top_k == 7
          && env->search->count == 1 && env->search->n_texts == 1
          && !strcmp(env->search->texts[0], "a query") && env->search->vectors.len == 0);
    nf_request_destroy(&req);
    CHECK_OK(nf_request_new(NF_BODY_DELETE, 0, 0, &req));
    for (int i = 0; i < 40; i++) {      /* grows past its first allocation */
        char name[16];
        snprintf(name, sizeof name, "id%d", i);
        CHECK_OK(nf_request_add(req, name, NULL, NULL, 0, NULL, 0));
    }
    env = nf_request_env(req);
    size_t len;
    CHECK(env->delete_->count == 40
          && !memcmp(nf_delete_id(env->delete_, 39, &len), "id39", 4) && len == 4);
    CHECK(nf_request_add(req, NULL, NULL, NULL, 0, NULL, 0) == NF_EINVAL);
    nf_request_destroy(&req);
    nf_request_destroy(&req);
    CHECK(nf_request_new(NF_BODY_CONTROL, 0, 0, &req) == NF_EINVAL && !req);
    nf_client_destroy(&c);
    zsock_destroy(&server);
}

static void
test_control_timeout(void)
{
    /* nobody listens: the call gives up after its timeout */
    char ep[64];
    snprintf(ep, sizeof ep, "tcp://127.0.0.1:%d", nf_free_port("127.0.0.1"));
    nf_env_t *r = NULL;
    uint64_t t0 = nf_now_us();
    CHECK(nf_control_call(ep, NFLOW__CONTROL_COMMAND__CONTROL_PING, 100, &r) == NF_ETIMEOUT);
    CHECK(r == NULL && strstr(nf_error_msg(), ep));
    CHECK(nf_now_us() - t0 < 5000000);
    nf_client_t *c = NULL;
    CHECK(nf_client_new("bogus://x", &c) == NF_EINVAL && c == NULL);
    /* a client finds out within its ping timeout that nobody answers */
    CHECK_OK(nf_client_new(ep, &c));
    t0 = nf_now_us();
    CHECK(nf_client_ping(c, 200) == NF_EUNAVAIL);
    CHECK(strstr(nf_error_msg(), "no gateway answers at ") && strstr(nf_error_msg(), ep));
    CHECK(nf_now_us() - t0 < 2000000);
    nf_client_destroy(&c);
}

static void
test_status_names(void)
{
    nf_env_t env;
    Nflow__Status st;
    nf_env_init(&env);
    CHECK(nf_client_status(&env) == 0);
    nflow__status__init(&st);
    env.status = &st;
    CHECK(nf_client_status(&env) == 0);
    st.code = NFLOW__STATUS_CODE__STATUS_TIMEOUT;
    st.message = "deadline passed";
    CHECK(nf_client_status(&env) == NF_ETIMEOUT);
    CHECK(!strcmp(nf_error_msg(), "STATUS_TIMEOUT: deadline passed"));
    st.code = NFLOW__STATUS_CODE__STATUS_SHARD_DOWN;
    CHECK(nf_client_status(&env) == NF_EUNAVAIL);
    st.code = NFLOW__STATUS_CODE__STATUS_BAD_REQUEST;
    CHECK(nf_client_status(&env) == NF_EINVAL);
    /* an answer over NF_ANSWER_MAX is the request's fault: not retried */
    st.code = NFLOW__STATUS_CODE__STATUS_TOO_LARGE;
    st.message = "the answer would be over 419538220 bytes";
    CHECK(nf_client_status(&env) == NF_EINVAL);
    CHECK(!strcmp(nf_error_msg(), "STATUS_TOO_LARGE: the answer would be over 419538220 bytes"));
    CHECK(!strcmp(nf_status_name(NFLOW__STATUS_CODE__STATUS_UNAVAILABLE), "STATUS_UNAVAILABLE"));
    CHECK(!strcmp(nf_status_name(999), "STATUS_UNKNOWN"));
}

int
main(void)
{
    test_requests();
    test_request_builder();
    test_control_timeout();
    test_status_names();
    return nf_test_done("client");
}
