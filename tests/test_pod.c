/*  test_pod: the pod runtime, in process (options, environment, --help)
    and through real pod programs started as child processes on free
    loopback ports: ready handshake, malformed frames, the data path of each
    pod against test sockets standing in for its neighbours, TERMINATE and
    SIGTERM.  Needs NFLOW_PODS_DIR (set by meson). */
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "nf_error.h"
#include "nf_msg.h"
#include "nf_pod.h"
#include "nf_sys.h"
#include "nf_test.h"

/* ------------------------------------------------------------------ */
/* In process                                                          */

static void
test_options(void)
{
    nf_pod_t *pod = NULL;
    char *argv1[] = {"x", "--in", "tcp://127.0.0.1:1", "--dim=64", "--name", "enc/a", NULL};
    CHECK_OK(nf_pod_new("encoder", 6, argv1, &pod));
    CHECK(pod != NULL);
    if (pod) {
        CHECK(!strcmp(nf_pod_name(pod), "enc/a"));
        CHECK(nf_pod_int(pod, "dim") == 64);
        CHECK(nf_pod_int(pod, "ngram") == 3);                 /* default */
        CHECK(!strcmp(nf_pod_get(pod, "in"), "tcp://127.0.0.1:1"));
        CHECK(nf_pod_get(pod, "out") == NULL);
    }
    nf_pod_destroy(&pod);
    nf_pod_destroy(&pod);
    CHECK(pod == NULL);

    /* environment fills what the command line does not give */
    setenv("NFLOW_NGRAM", "0", 1);
    setenv("NFLOW_DIM", "99", 1);
    char *argv2[] = {"x", "--dim", "7", "--replica", "2", NULL};
    CHECK_OK(nf_pod_new("encoder", 5, argv2, &pod));
    if (pod) {
        CHECK(nf_pod_int(pod, "ngram") == 0);
        CHECK(nf_pod_int(pod, "dim") == 7);                   /* argv wins */
        CHECK(!strcmp(nf_pod_name(pod), "encoder/2"));
    }
    nf_pod_destroy(&pod);
    setenv("NFLOW_NGRAM", "12", 1);
    CHECK(nf_pod_new("encoder", 1, argv2, &pod) == NF_EINVAL);
    CHECK(strstr(nf_error_msg(), "NFLOW_NGRAM") != NULL);
    unsetenv("NFLOW_NGRAM");
    unsetenv("NFLOW_DIM");

    /* bad command lines say what is wrong */
    char *bad1[] = {"x", "--bogus", "1", NULL};
    CHECK(nf_pod_new("encoder", 3, bad1, &pod) == NF_EINVAL && pod == NULL);
    CHECK(strstr(nf_error_msg(), "--bogus") != NULL);
    char *bad2[] = {"x", "--dim", NULL};
    CHECK(nf_pod_new("encoder", 2, bad2, &pod) == NF_EINVAL);
    CHECK(strstr(nf_error_msg(), "needs a value") != NULL);
    char *bad3[] = {"x", "--dim", "abc", NULL};
    CHECK(nf_pod_new("encoder", 3, bad3, &pod) == NF_EINVAL);
    CHECK(strstr(nf_error_msg(), "dim") && strstr(nf_error_msg(), "abc"));
    char *lenient[] = {"x", "--shard", "1", "--nshards", "2", NULL};   /* ignored by encoders */
    CHECK_OK(nf_pod_new("encoder", 5, lenient, &pod));
    if (pod)
        CHECK(!strcmp(nf_pod_name(pod), "encoder/0"));
    nf_pod_destroy(&pod);
    char *bad4[] = {"x", "stray", NULL};
    CHECK(nf_pod_new("encoder", 2, bad4, &pod) == NF_EINVAL);
    char *bad5[] = {"x", "--dim", "4", "--dim", "5", NULL};
    CHECK(nf_pod_new("encoder", 5, bad5, &pod) == NF_EINVAL);
    CHECK(strstr(nf_error_msg(), "twice") != NULL);
    /* indexer: dim is required; shard must be below nshards */
    char *bad6[] = {"x", "--shard", "0", NULL};
    CHECK(nf_pod_new("indexer", 3, bad6, &pod) == NF_EINVAL);
    CHECK(strstr(nf_error_msg(), "--dim") && strstr(nf_error_msg(), "required"));
    char *bad7[] = {"x", "--dim", "4", "--shard", "3", "--nshards", "3", NULL};
    CHECK(nf_pod_new("indexer", 7, bad7, &pod) == NF_EINVAL);
    char *ok7[] = {"x", "--dim", "4", "--shard", "2", "--nshards", "3", "--metric", "l2", NULL};
    CHECK_OK(nf_pod_new("indexer", 9, ok7, &pod));
    if (pod)
        CHECK(!strcmp(nf_pod_name(pod), "indexer/2") && nf_pod_stats(pod)->shard == 2);
    nf_pod_destroy(&pod);
    CHECK(nf_pod_new("nope", 1, argv1, &pod) == NF_EINVAL);

    /* a missing endpoint is an error naming the option */
    char *argv3[] = {"x", NULL};
    CHECK_OK(nf_pod_new("reducer", 1, argv3, &pod));
    zsock_t *s = NULL;
    if (pod) {
        CHECK(nf_pod_socket(pod, "in", &s) == NF_EINVAL && s == NULL);
        CHECK(strstr(nf_error_msg(), "--in") && strstr(nf_error_msg(), "NFLOW_IN"));
    }
    nf_pod_destroy(&pod);
    char *argv4[] = {"x", "--in", "tcp://256.1.1.1:5", NULL};
    CHECK_OK(nf_pod_new("reducer", 3, argv4, &pod));
    if (pod)
        CHECK(nf_pod_socket(pod, "in", &s) == NF_EIO);
    nf_pod_destroy(&pod);
}

/* ------------------------------------------------------------------ */
/* Child processes                                                     */

static char s_ep[16][64];
static int s_nep;

/* A fresh loopback endpoint. */
static const char *
s_endpoint(void)
{
    int port = nf_free_port("127.0.0.1");
    CHECK(port > 0);
    snprintf(s_ep[s_nep % 16], 64, "tcp://127.0.0.1:%d", port);
    return s_ep[s_nep++ % 16];
}

static pid_t
s_spawn(const char *program, char **args)
{
    char path[4096];
    const char *dir = getenv("NFLOW_PODS_DIR");
    snprintf(path, sizeof path, "%s/%s", dir ? dir : "pods", program);
    pid_t pid = fork();
    if (pid == 0) {
        args[0] = path;
        execv(path, args);
        _exit(127);
    }
    return pid;
}

/* Exit status of pid within ms, or -1 (then it is killed). */
static int
s_wait_exit(pid_t pid, int ms)
{
    int status = 0;
    for (int i = 0; i < ms / 10; i++) {
        if (waitpid(pid, &status, WNOHANG) == pid)
            return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
        zclock_sleep(10);
    }
    kill(pid, SIGKILL);
    waitpid(pid, &status, 0);
    return -1;
}

static zsock_t *
s_sock(int type, const char *ep, bool bind)
{
    zsock_t *s = zsock_new(type);
    zsock_set_linger(s, 0);
    zsock_set_rcvtimeo(s, 3000);
    zsock_set_sndtimeo(s, 3000);
    CHECK((bind ? zsock_bind(s, "%s", ep) : zsock_connect(s, "%s", ep)) >= 0);
    return s;
}

/* One control call; the answer envelope (caller frees) or NULL. */
static Nflow__Envelope *
s_control(const char *ep, Nflow__ControlCommand cmd, int timeout_ms)
{
    zsock_t *d = s_sock(ZMQ_DEALER, ep, false);
    zsock_set_rcvtimeo(d, timeout_ms);
    Nflow__Envelope env;
    nf_env_init(&env);
    env.request_id = 9;
    Nflow__Control c = NFLOW__CONTROL__INIT;
    c.command = cmd;
    env.body_case = NFLOW__ENVELOPE__BODY_CONTROL;
    env.control = &c;
    nf_msg_send(d, NULL, &env, 0);
    nf_msg_t msg;
    Nflow__Envelope *out = NULL;
    if (nf_msg_recv(d, &msg) == NF_OK) {
        out = msg.env;
        msg.env = NULL;
    }
    nf_msg_clear(&msg);
    zsock_destroy(&d);
    return out;
}

/* PING until ready (bounded: 10 s). */
static bool
s_ready(const char *ep)
{
    for (int i = 0; i < 50; i++) {
        Nflow__Envelope *e = s_control(ep, NFLOW__CONTROL_COMMAND__CONTROL_PING, 200);
        bool ok = e && e->body_case == NFLOW__ENVELOPE__BODY_CONTROL && e->control->ready
                  && e->request_id == 9;
        if (e)
            nflow__envelope__free_unpacked(e, NULL);
        if (ok)
            return true;
    }
    return false;
}

static uint64_t
s_status(const char *ep, uint64_t *rows)
{
    Nflow__Envelope *e = s_control(ep, NFLOW__CONTROL_COMMAND__CONTROL_STATUS, 2000);
    uint64_t malformed = UINT64_MAX;
    if (e && e->body_case == NFLOW__ENVELOPE__BODY_CONTROL) {
        malformed = e->control->malformed;
        if (rows)
            *rows = e->control->rows;
        CHECK(e->control->rss_bytes > 0 && e->control->pid > 0);
    }
    if (e)
        nflow__envelope__free_unpacked(e, NULL);
    return malformed;
}

static void
s_garbage(zsock_t *s)
{
    zmq_send(zsock_resolve(s), "\xff\x01junk", 6, 0);
    zmq_send(zsock_resolve(s), "", 0, 0);
    zmq_send(zsock_resolve(s), "a", 1, ZMQ_SNDMORE);
    zmq_send(zsock_resolve(s), "b", 1, ZMQ_SNDMORE);
    zmq_send(zsock_resolve(s), "c", 1, 0);
}

/* Receive one envelope (3 s bound); caller frees. */
static Nflow__Envelope *
s_recv(zsock_t *s)
{
    nf_msg_t msg;
    Nflow__Envelope *e = NULL;
    if (nf_msg_recv(s, &msg) == NF_OK) {
        e = msg.env;
        msg.env = NULL;
    }
    nf_msg_clear(&msg);
    return e;
}

static void
s_doc(Nflow__Document *d, const char *id, const char *text, float *v, uint32_t dim,
      uint8_t *buf)
{
    Nflow__Document init = NFLOW__DOCUMENT__INIT;
    *d = init;
    d->id = (char *) id;
    if (text)
        d->text = (char *) text;
    if (v)
        d->vector = nf_vec_to_bytes(v, dim, buf);
}

static void
test_encoder_pod(void)
{
    const char *in = s_endpoint(), *out = s_endpoint(), *ctl = s_endpoint(),
               *err = s_endpoint();
    zsock_t *outs = s_sock(ZMQ_PULL, out, true), *errs = s_sock(ZMQ_PULL, err, true);
    char *args[] = {NULL, "--in", (char *) in, "--out", (char *) out, "--control", (char *) ctl,
                    "--errors", (char *) err, "--dim", "8", NULL};
    pid_t pid = s_spawn("nflow-encoder", args);
    CHECK(s_ready(ctl));
    zsock_t *push = s_sock(ZMQ_PUSH, in, false);

    /* text is encoded; a Hop is added; the request id is kept */
    Nflow__Envelope env;
    nf_env_init(&env);
    env.request_id = 1234;
    Nflow__IndexRequest ir = NFLOW__INDEX_REQUEST__INIT;
    Nflow__Document d[2], *dp[2] = {&d[0], &d[1]};
    float v[8] = {1, 0, 0, 0, 0, 0, 0, 0};
    uint8_t vb[32];
    s_doc(&d[0], "t", "hello world", NULL, 0, NULL);
    s_doc(&d[1], "v", NULL, v, 8, vb);
    ir.docs = dp;
    ir.n_docs = 2;
    env.body_case = NFLOW__ENVELOPE__BODY_INDEX;
    env.index = &ir;
    CHECK_OK(nf_msg_send(push, NULL, &env, 0));
    Nflow__Envelope *e = s_recv(outs);
    CHECK(e && e->request_id == 1234 && e->n_route == 1);
    if (e && e->body_case == NFLOW__ENVELOPE__BODY_INDEX && e->index->n_docs == 2) {
        CHECK(e->index->docs[0]->vector.len == 32);
        CHECK(!strcmp(e->index->docs[0]->text, "hello world"));
        CHECK(memcmp(e->index->docs[1]->vector.data, vb, 32) == 0);   /* passed through */
        CHECK(!strcmp(e->route[0]->pod, "encoder/0"));
    }
    if (e)
        nflow__envelope__free_unpacked(e, NULL);

    /* wrong dim and missing content fail via --errors */
    float v3[3] = {1, 2, 3};
    s_doc(&d[1], "x", NULL, v3, 3, vb);
    ir.n_docs = 2;
    env.request_id = 77;
    CHECK_OK(nf_msg_send(push, NULL, &env, 0));
    e = s_recv(errs);
    CHECK(e && e->request_id == 77 && e->status
          && e->status->code == NFLOW__STATUS_CODE__STATUS_BAD_DIM);
    CHECK(e && e->status && strstr(e->status->message, "doc 'x': vector has 3 values, expected 8"));
    if (e)
        nflow__envelope__free_unpacked(e, NULL);
    s_doc(&d[0], "empty", NULL, NULL, 0, NULL);
    ir.n_docs = 1;
    env.request_id = 78;
    CHECK_OK(nf_msg_send(push, NULL, &env, 0));
    e = s_recv(errs);
    CHECK(e && e->request_id == 78 && e->status
          && e->status->code == NFLOW__STATUS_CODE__STATUS_BAD_REQUEST);
    if (e)
        nflow__envelope__free_unpacked(e, NULL);

    /* garbage on the data and control sockets: counted, still serving */
    s_garbage(push);
    zsock_t *cd = s_sock(ZMQ_DEALER, ctl, false);
    s_garbage(cd);
    zmsg_t *junk = zmsg_recv(cd);       /* the ROUTER answers the first one */
    CHECK(junk != NULL);
    zmsg_destroy(&junk);
    zsock_destroy(&cd);
    CHECK(s_ready(ctl));
    uint64_t malformed = s_status(ctl, NULL);
    CHECK(malformed >= 6 && malformed != UINT64_MAX);

    /* TERMINATE: answered, then a clean exit */
    uint64_t t0 = nf_now_us();
    e = s_control(ctl, NFLOW__CONTROL_COMMAND__CONTROL_TERMINATE, 2000);
    CHECK(e && e->body_case == NFLOW__ENVELOPE__BODY_CONTROL);
    if (e)
        nflow__envelope__free_unpacked(e, NULL);
    CHECK(s_wait_exit(pid, 3000) == 0);
    CHECK(nf_now_us() - t0 < 3000000);
    zsock_destroy(&push);
    zsock_destroy(&outs);
    zsock_destroy(&errs);
}

static void
test_indexer_pod(void)
{
    char *ws = nf_test_tmpdir();
    const char *router = s_endpoint(), *reducer = s_endpoint(), *ctl = s_endpoint(),
               *err = s_endpoint();
    zsock_t *rt = s_sock(ZMQ_ROUTER, router, true), *red = s_sock(ZMQ_PULL, reducer, true),
            *errs = s_sock(ZMQ_PULL, err, true);
    char *args[] = {NULL, "--router", (char *) router, "--reducer", (char *) reducer,
                    "--control", (char *) ctl, "--errors", (char *) err, "--dim", "4",
                    "--metric", "l2", "--shard", "1", "--nshards", "2", "--workspace", ws,
                    "--heartbeat_ms", "50", NULL};
    pid_t pid = s_spawn("nflow-indexer", args);
    CHECK(s_ready(ctl));

    /* HELLO (then heartbeats) from identity shard-1 */
    nf_msg_t msg;
    CHECK_OK(nf_msg_recv(rt, &msg));
    CHECK(msg.routing && zframe_streq(zmsg_first(msg.routing), "shard-1"));
    CHECK(msg.env && msg.env->body_case == NFLOW__ENVELOPE__BODY_CONTROL
          && msg.env->control->command == NFLOW__CONTROL_COMMAND__CONTROL_HELLO);
    zmsg_t *routing = msg.routing ? zmsg_dup(msg.routing) : zmsg_new();
    nf_msg_clear(&msg);
    CHECK_OK(nf_msg_recv(rt, &msg));
    CHECK(msg.env && msg.env->control->command == NFLOW__CONTROL_COMMAND__CONTROL_HEARTBEAT);
    nf_msg_clear(&msg);

    /* index two docs: one part to the reducer */
    Nflow__Envelope env;
    nf_env_init(&env);
    env.request_id = 500;
    Nflow__IndexRequest ir = NFLOW__INDEX_REQUEST__INIT;
    Nflow__Document d[2], *dp[2] = {&d[0], &d[1]};
    float a[4] = {1, 0, 0, 0}, b[4] = {0, 1, 0, 0};
    uint8_t ab[16], bb[16];
    s_doc(&d[0], "a", "first", a, 4, ab);
    s_doc(&d[1], "b", NULL, b, 4, bb);
    Nflow__Document__TagsEntry tag = NFLOW__DOCUMENT__TAGS_ENTRY__INIT, *tags[1] = {&tag};
    tag.key = "lang";
    tag.value = "en";
    d[0].tags = tags;
    d[0].n_tags = 1;
    ir.docs = dp;
    ir.n_docs = 2;
    env.body_case = NFLOW__ENVELOPE__BODY_INDEX;
    env.index = &ir;
    CHECK_OK(nf_msg_send(rt, routing, &env, 0));
    Nflow__Envelope *e = s_recv(red);
    CHECK(e && e->request_id == 500 && e->body_case == NFLOW__ENVELOPE__BODY_RESULT);
    if (e && e->result) {
        CHECK(e->result->indexed == 2 && e->result->shard == 1);
        CHECK(!strcmp(e->result->metric, "l2"));
    }
    if (e)
        nflow__envelope__free_unpacked(e, NULL);

    /* two searches queued together: each gets its own part */
    Nflow__SearchRequest sr = NFLOW__SEARCH_REQUEST__INIT;
    Nflow__Document q, *qp[1] = {&q};
    float qa[4] = {0.9f, 0.1f, 0, 0};
    uint8_t qb[16];
    s_doc(&q, "", NULL, qa, 4, qb);
    sr.queries = qp;
    sr.n_queries = 1;
    sr.top_k = 1;
    sr.with_payload = true;     /* text and tags only when asked */
    env.body_case = NFLOW__ENVELOPE__BODY_SEARCH;
    env.search = &sr;
    env.request_id = 601;
    CHECK_OK(nf_msg_send(rt, routing, &env, 0));
    sr.top_k = 5;
    env.request_id = 602;
    CHECK_OK(nf_msg_send(rt, routing, &env, 0));
    for (int i = 0; i < 2; i++) {
        e = s_recv(red);
        CHECK(e && e->body_case == NFLOW__ENVELOPE__BODY_RESULT && e->result->n_results == 1);
        if (!e || !e->result || e->result->n_results != 1) {
            if (e)
                nflow__envelope__free_unpacked(e, NULL);
            continue;
        }
        Nflow__Matches *m = e->result->results[0];
        CHECK(m->n_matches == (e->request_id == 601 ? 1u : 2u));
        if (m->n_matches >= 1) {
            CHECK(!strcmp(m->matches[0]->id, "a"));
            CHECK(!strcmp(m->matches[0]->text, "first"));
            CHECK(m->matches[0]->n_tags == 1 && !strcmp(m->matches[0]->tags[0]->value, "en"));
            CHECK(m->matches[0]->score > 0.019f && m->matches[0]->score < 0.021f);
        }
        nflow__envelope__free_unpacked(e, NULL);
    }

    /* wrong dim: an error to the gateway AND a part with the status */
    float v3[3] = {1, 2, 3};
    s_doc(&q, "", NULL, v3, 3, qb);
    env.request_id = 603;
    CHECK_OK(nf_msg_send(rt, routing, &env, 0));
    e = s_recv(errs);
    CHECK(e && e->request_id == 603 && e->status
          && e->status->code == NFLOW__STATUS_CODE__STATUS_BAD_DIM);
    if (e)
        nflow__envelope__free_unpacked(e, NULL);
    e = s_recv(red);
    CHECK(e && e->request_id == 603 && e->status
          && e->status->code == NFLOW__STATUS_CODE__STATUS_BAD_DIM && e->result
          && e->result->shard == 1);
    if (e)
        nflow__envelope__free_unpacked(e, NULL);

    /* delete, then STATUS rows */
    Nflow__DeleteRequest dr = NFLOW__DELETE_REQUEST__INIT;
    char *ids[] = {"b", "nope"};
    dr.ids = ids;
    dr.n_ids = 2;
    env.body_case = NFLOW__ENVELOPE__BODY_DELETE;
    env.delete_ = &dr;
    env.request_id = 604;
    CHECK_OK(nf_msg_send(rt, routing, &env, 0));
    e = s_recv(red);
    CHECK(e && e->result && e->result->deleted == 1);
    if (e)
        nflow__envelope__free_unpacked(e, NULL);
    uint64_t rows = 0;
    s_status(ctl, &rows);
    CHECK(rows == 1);

    /* garbage from the router side: still serving */
    s_garbage(rt);      /* the ROUTER sends the first frame as an identity: only the
                           routable ones arrive */
    zmsg_t *raw = zmsg_new();
    zmsg_addstr(raw, "shard-1");
    zmsg_addstr(raw, "not protobuf");
    zmsg_send(&raw, rt);
    CHECK(s_ready(ctl));
    CHECK(s_status(ctl, NULL) >= 1);

    /* SIGTERM: clean exit; the segment keeps the data */
    kill(pid, SIGTERM);
    CHECK(s_wait_exit(pid, 3000) == 0);
    char path[4200];
    snprintf(path, sizeof path, "%s/shard-1/vectors.nfv", ws);
    CHECK(access(path, F_OK) == 0);
    zmsg_destroy(&routing);
    zsock_destroy(&rt);
    zsock_destroy(&red);
    zsock_destroy(&errs);
    nf_test_rmdir(ws);
    free(ws);
}

/* Plans and parts in either order -> one merged result at the gateway. */
static void
test_reducer_pod(void)
{
    const char *in = s_endpoint(), *out = s_endpoint(), *ctl = s_endpoint();
    zsock_t *res = s_sock(ZMQ_PULL, out, true);
    char *args[] = {NULL, "--in", (char *) in, "--out", (char *) out, "--control", (char *) ctl,
                    NULL};
    pid_t pid = s_spawn("nflow-reducer", args);
    CHECK(s_ready(ctl));
    zsock_t *push = s_sock(ZMQ_PUSH, in, false);

    Nflow__Envelope env;
    nf_env_init(&env);
    env.request_id = 42;
    env.deadline_us = nf_wall_us() + 5000000;
    /* part from shard 1 first, then the plan, then shard 0 */
    Nflow__Result r = NFLOW__RESULT__INIT;
    Nflow__Matches m = NFLOW__MATCHES__INIT, *mp[1] = {&m};
    Nflow__Document d[3], *dp[3] = {&d[0], &d[1], &d[2]};
    s_doc(&d[0], "s1-a", NULL, NULL, 0, NULL);
    s_doc(&d[1], "s1-b", NULL, NULL, 0, NULL);
    d[0].score = 0.9f;
    d[1].score = 0.5f;
    m.matches = dp;
    m.n_matches = 2;
    r.results = mp;
    r.n_results = 1;
    r.shard = 1;
    r.metric = "cosine";
    env.body_case = NFLOW__ENVELOPE__BODY_RESULT;
    env.result = &r;
    CHECK_OK(nf_msg_send(push, NULL, &env, 0));

    Nflow__Plan plan = NFLOW__PLAN__INIT;
    uint32_t shards[2] = {0, 1}, down[1] = {2};
    plan.shards = shards;
    plan.n_shards = 2;
    plan.down = down;
    plan.n_down = 1;
    plan.kind = NFLOW__ENVELOPE__BODY_SEARCH;
    plan.nqueries = 1;
    plan.top_k = 3;         /* stamped by the gateway, carried by the router's plan */
    env.body_case = NFLOW__ENVELOPE__BODY_PLAN;
    env.plan = &plan;
    CHECK_OK(nf_msg_send(push, NULL, &env, 0));

    s_doc(&d[0], "s0-a", NULL, NULL, 0, NULL);
    s_doc(&d[1], "s0-b", NULL, NULL, 0, NULL);
    s_doc(&d[2], "s0-c", NULL, NULL, 0, NULL);
    d[0].score = 0.95f;
    d[1].score = 0.9f;      /* ties with s1-a: shard 0 first */
    d[2].score = 0.1f;
    m.n_matches = 3;
    r.shard = 0;
    env.body_case = NFLOW__ENVELOPE__BODY_RESULT;
    env.result = &r;
    CHECK_OK(nf_msg_send(push, NULL, &env, 0));

    Nflow__Envelope *e = s_recv(res);
    CHECK(e && e->request_id == 42 && e->body_case == NFLOW__ENVELOPE__BODY_RESULT);
    if (e && e->result && e->result->n_results == 1) {
        Nflow__Matches *g = e->result->results[0];
        CHECK(g->n_matches == 3);       /* the plan's top_k 3 */
        if (g->n_matches == 3) {
            CHECK(!strcmp(g->matches[0]->id, "s0-a"));
            CHECK(!strcmp(g->matches[1]->id, "s0-b"));
            CHECK(!strcmp(g->matches[2]->id, "s1-a"));
        }
        CHECK(e->result->partial && e->result->n_missing_shards == 1
              && e->result->missing_shards[0] == 2);
    }
    else
        CHECK(!"merged result");
    if (e)
        nflow__envelope__free_unpacked(e, NULL);

    /* a late duplicate part is dropped: nothing more arrives */
    CHECK_OK(nf_msg_send(push, NULL, &env, 0));

    /* deadline: plan for shards 0 and 1, only shard 0 answers -> partial at the deadline */
    env.request_id = 43;
    env.deadline_us = nf_wall_us() + 300000;
    env.body_case = NFLOW__ENVELOPE__BODY_PLAN;
    env.plan = &plan;
    plan.n_down = 0;
    CHECK_OK(nf_msg_send(push, NULL, &env, 0));
    env.body_case = NFLOW__ENVELOPE__BODY_RESULT;
    env.result = &r;        /* the body is a union: set it again */
    CHECK_OK(nf_msg_send(push, NULL, &env, 0));
    e = s_recv(res);
    CHECK(e && e->request_id == 43 && e->result && e->result->partial
          && e->result->n_missing_shards == 1 && e->result->missing_shards[0] == 1);
    if (e)
        nflow__envelope__free_unpacked(e, NULL);

    /* an error part decides the answer */
    env.request_id = 44;
    env.deadline_us = nf_wall_us() + 5000000;
    Nflow__Status st = NFLOW__STATUS__INIT;
    st.code = NFLOW__STATUS_CODE__STATUS_BAD_DIM;
    st.message = "query 0: vector has 3 values, expected 4";
    env.status = &st;
    CHECK_OK(nf_msg_send(push, NULL, &env, 0));
    e = s_recv(res);
    CHECK(e && e->request_id == 44 && e->status
          && e->status->code == NFLOW__STATUS_CODE__STATUS_BAD_DIM);
    if (e)
        nflow__envelope__free_unpacked(e, NULL);

    kill(pid, SIGINT);
    CHECK(s_wait_exit(pid, 3000) == 0);
    zsock_destroy(&push);
    zsock_destroy(&res);
}

/* Gateway: ids mapped back, TIMEOUT when nothing answers, bad requests. */
static void
test_gateway_pod(void)
{
    const char *clients = s_endpoint(), *results = s_endpoint(), *out = s_endpoint(),
               *ctl = s_endpoint();
    zsock_t *next = s_sock(ZMQ_PULL, out, true);
    char *args[] = {NULL, "--clients", (char *) clients, "--results", (char *) results,
                    "--out", (char *) out, "--control", (char *) ctl, "--timeout_ms", "300",
                    NULL};
    pid_t pid = s_spawn("nflow-gateway", args);
    CHECK(s_ready(ctl));
    CHECK(s_ready(clients));        /* PING is answered on the client socket too */
    zsock_t *client = s_sock(ZMQ_DEALER, clients, false);
    zsock_t *back = s_sock(ZMQ_PUSH, results, false);

    Nflow__Envelope env;
    nf_env_init(&env);
    Nflow__DeleteRequest dr = NFLOW__DELETE_REQUEST__INIT;
    char *ids[] = {"x"};
    dr.ids = ids;
    dr.n_ids = 1;
    env.body_case = NFLOW__ENVELOPE__BODY_DELETE;
    env.delete_ = &dr;
    env.request_id = 7;
    CHECK_OK(nf_msg_send(client, NULL, &env, 0));
    Nflow__Envelope *fwd = s_recv(next);
    CHECK(fwd && fwd->request_id != 7 && fwd->deadline_us > nf_wall_us() && fwd->n_route == 1);
    uint64_t gid = fwd ? fwd->request_id : 0;
    if (fwd)
        nflow__envelope__free_unpacked(fwd, NULL);

    /* the answer goes back once, with the client's id */
    Nflow__Envelope ans;
    nf_env_init(&ans);
    ans.request_id = gid;
    Nflow__Result r = NFLOW__RESULT__INIT;
    r.deleted = 1;
    ans.body_case = NFLOW__ENVELOPE__BODY_RESULT;
    ans.result = &r;
    CHECK_OK(nf_msg_send(back, NULL, &ans, 0));
    CHECK_OK(nf_msg_send(back, NULL, &ans, 0));        /* duplicate: dropped */
    Nflow__Envelope *e = s_recv(client);
    CHECK(e && e->request_id == 7 && e->result && e->result->deleted == 1);
    if (e)
        nflow__envelope__free_unpacked(e, NULL);

    /* nobody answers: TIMEOUT after the deadline (+ grace) */
    env.request_id = 8;
    env.timeout_ms = 200;
    uint64_t t0 = nf_now_us();
    CHECK_OK(nf_msg_send(client, NULL, &env, 0));
    e = s_recv(client);
    CHECK(e && e->request_id == 8 && e->status
          && e->status->code == NFLOW__STATUS_CODE__STATUS_TIMEOUT);
    CHECK(nf_now_us() - t0 >= 200000);
    if (e)
        nflow__envelope__free_unpacked(e, NULL);
    fwd = s_recv(next);
    if (fwd)
        nflow__envelope__free_unpacked(fwd, NULL);

    /* a request without ids, garbage and a bad version: answered, counted */
    dr.n_ids = 0;
    env.request_id = 9;
    CHECK_OK(nf_msg_send(client, NULL, &env, 0));
    e = s_recv(client);
    CHECK(e && e->request_id == 9 && e->status
          && e->status->code == NFLOW__STATUS_CODE__STATUS_BAD_REQUEST);
    if (e)
        nflow__envelope__free_unpacked(e, NULL);
    zmq_send(zsock_resolve(client), "\x08garbage", 8, 0);
    zmsg_t *z = zmsg_recv(client);
    CHECK(z != NULL);
    zmsg_destroy(&z);
    CHECK(s_status(ctl, NULL) >= 2);

    e = s_control(ctl, NFLOW__CONTROL_COMMAND__CONTROL_TERMINATE, 2000);
    CHECK(e != NULL);
    if (e)
        nflow__envelope__free_unpacked(e, NULL);
    CHECK(s_wait_exit(pid, 3000) == 0);
    zsock_destroy(&client);
    zsock_destroy(&back);
    zsock_destroy(&next);
}

static void
test_help_exit(void)
{
    char *args[] = {NULL, "--help", NULL};
    int devnull = dup(1);
    pid_t pid = s_spawn("nflow-router", args);
    CHECK(s_wait_exit(pid, 3000) == 0);
    char *bad[] = {NULL, "--nshards", "0", NULL};
    pid = s_spawn("nflow-router", bad);
    CHECK(s_wait_exit(pid, 3000) == 2);
    close(devnull);
}

/* Sockets come from the socket table: type, bind or connect, identity.
   The indexer's --router is a DEALER with identity shard-<shard>; --control
   is not a data socket (nf_pod_ready makes it); one spelling of options:
   --timeout-ms is the setting timeout_ms. */
static void
test_table_sockets(void)
{
    const char *router_ep = s_endpoint(), *reducer_ep = s_endpoint();
    zsock_t *router = s_sock(ZMQ_ROUTER, router_ep, true);
    zsock_t *reducer = s_sock(ZMQ_PULL, reducer_ep, true);
    char *argv[] = {"x", "--dim", "4", "--shard", "2", "--nshards", "3", "--router",
                    (char *) router_ep, "--reducer", (char *) reducer_ep, NULL};
    nf_pod_t *pod = NULL;
    CHECK_OK(nf_pod_new("indexer", 11, argv, &pod));
    if (pod) {
        CHECK_OK(nf_pod_open_sockets(pod));
        zsock_t *d = nf_pod_sock(pod, "router"), *again = NULL;
        CHECK(d && zsock_type(d) == ZMQ_DEALER);
        CHECK(nf_pod_sock(pod, "reducer") && zsock_type(nf_pod_sock(pod, "reducer")) == ZMQ_PUSH);
        CHECK_OK(nf_pod_socket(pod, "router", &again));
        CHECK(again == d);                                  /* opened once */
        CHECK(nf_pod_socket(pod, "control", &again) == NF_EINVAL);
        CHECK(nf_pod_socket(pod, "in", &again) == NF_EINVAL);    /* not an indexer socket */
        if (d) {
            zsock_send(d, "s", "hello");
            char *ident = NULL, *text = NULL;
            CHECK(zsock_recv(router, "ss", &ident, &text) == 0);
            CHECK(ident && !strcmp(ident, "shard-2"));
            free(ident);
            free(text);
        }
    }
    nf_pod_destroy(&pod);
    zsock_destroy(&router);
    zsock_destroy(&reducer);

    char *dashed[] = {"x", "--timeout-ms", "300", NULL};
    CHECK_OK(nf_pod_new("gateway", 3, dashed, &pod));
    if (pod)
        CHECK(nf_pod_int(pod, "timeout_ms") == 300);
    nf_pod_destroy(&pod);
    char *twice[] = {"x", "--timeout-ms", "300", "--timeout_ms", "400", NULL};
    CHECK(nf_pod_new("gateway", 5, twice, &pod) == NF_EINVAL && pod == NULL);
    setenv("NFLOW_TIMEOUT_MS", "700", 1);
    CHECK_OK(nf_pod_new("gateway", 1, dashed, &pod));
    if (pod)
        CHECK(nf_pod_int(pod, "timeout_ms") == 700);
    nf_pod_destroy(&pod);
    unsetenv("NFLOW_TIMEOUT_MS");
}

int
main(void)
{
    test_table_sockets();
    zsys_init();
    zsys_handler_set(NULL);
    test_options();
    if (!getenv("NFLOW_PODS_DIR")) {
        fprintf(stderr, "NFLOW_PODS_DIR not set: skipping the child-process tests\n");
        return nf_test_done("pod");
    }
    test_help_exit();
    test_encoder_pod();
    test_indexer_pod();
    test_reducer_pod();
    test_gateway_pod();
    return nf_test_done("pod");
}
