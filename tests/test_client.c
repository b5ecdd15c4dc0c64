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
    Nflow__Envelope env;
    Nflow__DeleteRequest del;
    char *ids[] = {"a", "b"};
    nf_env_init(&env);
    nflow__delete_request__init(&del);
    del.ids = ids;
    del.n_ids = 2;
    env.body_case = NFLOW__ENVELOPE__BODY_DELETE;
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
    CHECK(m1.env && m1.env->request_id == id1 && m1.env->body_case == NFLOW__ENVELOPE__BODY_DELETE);
    CHECK(m1.env && m1.env->delete_->n_ids == 2 && !strcmp(m1.env->delete_->ids[1], "b"));
    CHECK(m2.env && m2.env->request_id == id2);

    /* answers in reverse order: the second one fails */
    if (m1.env && m2.env) {
        CHECK_OK(nf_msg_reply_error(server, m2.routing, id2, NFLOW__STATUS_CODE__STATUS_BAD_DIM,
                                    "doc 'x': vector has 3 values, expected 8"));
        Nflow__Envelope ans;
        Nflow__Result res;
        nf_env_init(&ans);
        nflow__result__init(&res);
        res.deleted = 2;
        ans.request_id = id1;
        ans.body_case = NFLOW__ENVELOPE__BODY_RESULT;
        ans.result = &res;
        CHECK_OK(nf_msg_send(server, m1.routing, &ans, 0));
    }
    Nflow__Envelope *r = NULL;
    CHECK_OK(nf_client_recv(c, 2000, &r));
    CHECK(r && r->request_id == id2);
    CHECK(r && nf_client_status(r) == NF_EDIM);
    CHECK(strstr(nf_error_msg(), "STATUS_BAD_DIM: doc 'x'") != NULL);
    if (r)
        nflow__envelope__free_unpacked(r, NULL);
    r = NULL;
    CHECK_OK(nf_client_recv(c, 2000, &r));
    CHECK(r && r->request_id == id1 && nf_client_status(r) == 0);
    CHECK(r && r->body_case == NFLOW__ENVELOPE__BODY_RESULT && r->result->deleted == 2);
    if (r)
        nflow__envelope__free_unpacked(r, NULL);
    nf_msg_clear(&m1);
    nf_msg_clear(&m2);

    /* nothing more: a short timeout */
    r = NULL;
    uint64_t t0 = nf_now_us();
    CHECK(nf_client_recv(c, 50, &r) == NF_ETIMEOUT && r == NULL);
    CHECK(nf_now_us() - t0 < 5000000);

    /* nf_client_call drops answers to other ids */
    Nflow__Envelope ping;
    Nflow__Control ctl;
    nf_control_env(&ping, &ctl, NFLOW__CONTROL_COMMAND__CONTROL_PING);
    uint64_t stale = 0;
    CHECK_OK(nf_client_send(c, &ping, &stale));
    nf_msg_t m3;
    memset(&m3, 0, sizeof m3);
    CHECK_OK(s_serve_recv(server, &m3));
    /* answer the stale one only after the call is sent: the call's own
       answer is queued behind it */
    CHECK(m3.env && m3.env->body_case == NFLOW__ENVELOPE__BODY_CONTROL
          && m3.env->control->command == NFLOW__CONTROL_COMMAND__CONTROL_PING);
    if (m3.env) {
        Nflow__Envelope ans;
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
        nflow__envelope__free_unpacked(r, NULL);

    nf_client_destroy(&c);
    CHECK(c == NULL);
    nf_client_destroy(&c);
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
    /* an index request owns copies: the sources may change afterwards */
    float vec[3] = {1.0f, -2.0f, 0.5f};
    char id[8] = "doc-1";
    nf_tag_t tags[] = {{"lang", "en"}, {"n", "1"}};
    nf_request_t *req = NULL;
    CHECK_OK(nf_request_new(NFLOW__ENVELOPE__BODY_INDEX, 0, 1500, &req));
    CHECK_OK(nf_request_add(req, id, "first", vec, 3, tags, 2));
    CHECK_OK(nf_request_add(req, "doc-2", NULL, NULL, 0, NULL, 0));
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
        const Nflow__Envelope *e = m.env;
        CHECK(e && e->request_id == (i ? id2 : id1) && e->timeout_ms == 1500);
        CHECK(e && e->body_case == NFLOW__ENVELOPE__BODY_INDEX && e->index->n_docs == 2);
        if (e && e->body_case == NFLOW__ENVELOPE__BODY_INDEX && e->index->n_docs == 2) {
            const Nflow__Document *d = e->index->docs[0];
            float got[3];
            CHECK(!strcmp(d->id, "doc-1") && !strcmp(d->text, "first") && d->vector.len == 12);
            memcpy(got, d->vector.data, sizeof got);
            CHECK(got[0] == 1.0f && got[1] == -2.0f && got[2] == 0.5f);
            CHECK(d->n_tags == 2 && !strcmp(d->tags[1]->key, "n") && !strcmp(d->tags[1]->value, "1"));
            CHECK(e->index->docs[1]->vector.len == 0 && !strcmp(e->index->docs[1]->text, ""));
        }
        nf_msg_clear(&m);
    }
    nf_request_destroy(&req);
    CHECK(req == NULL);

    /* search and delete requests */
    CHECK_OK(nf_request_new(NFLOW__ENVELOPE__BODY_SEARCH, 7, 0, &req));
    CHECK_OK(nf_request_add(req, NULL, "a query", NULL, 0, NULL, 0));
    Nflow__Envelope *env = nf_request_env(req);
    CHECK(env->body_case == NFLOW__ENVELOPE__BODY_SEARCH && env->search->top_k == 7
          && env->search->n_queries == 1 && !strcmp(env->search->queries[0]->text, "a query"));
    nf_request_destroy(&req);
    CHECK_OK(nf_request_new(NFLOW__ENVELOPE__BODY_DELETE, 0, 0, &req));
    for (int i = 0; i < 40; i++) {      /* grows past its first allocation */
        char name[16];
        snprintf(name, sizeof name, "id%d", i);
        CHECK_OK(nf_request_add(req, name, NULL, NULL, 0, NULL, 0));
    }
    env = nf_request_env(req);
    CHECK(env->delete_->n_ids == 40 && !strcmp(env->delete_->ids[39], "id39"));
    CHECK(nf_request_add(req, NULL, NULL, NULL, 0, NULL, 0) == NF_EINVAL);
    nf_request_destroy(&req);
    nf_request_destroy(&req);
    CHECK(nf_request_new(NFLOW__ENVELOPE__BODY_CONTROL, 0, 0, &req) == NF_EINVAL && !req);
    nf_client_destroy(&c);
    zsock_destroy(&server);
}

static void
test_control_timeout(void)
{
    /* nobody listens: the call gives up after its timeout */
    char ep[64];
    snprintf(ep, sizeof ep, "tcp://127.0.0.1:%d", nf_free_port("127.0.0.1"));
    Nflow__Envelope *r = NULL;
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
    Nflow__Envelope env;
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
