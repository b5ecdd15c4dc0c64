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

/* One control call; the answer message (caller frees) or NULL. */
static nf_env_t *
s_control(const char *ep, Nflow__ControlCommand cmd, int timeout_ms)
{
    zsock_t *d = s_sock(ZMQ_DEALER, ep, false);
    zsock_set_rcvtimeo(d, timeout_ms);
    nf_env_t env;
    nf_env_init(&env);
    env.request_id = 9;
    Nflow__Control c = NFLOW__CONTROL__INIT;
    c.command = cmd;
    env.body_case = NF_BODY_CONTROL;
    env.control = &c;
    nf_msg_send(d, NULL, &env, 0);
    nf_msg_t msg;
    nf_env_t *out = NULL;
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
        nf_env_t *e = s_control(ep, NFLOW__CONTROL_COMMAND__CONTROL_PING, 200);
        bool ok = e && e->body_case == NF_BODY_CONTROL && e->control->ready
                  && e->request_id == 9;
        if (e)
            nf_env_destroy(&e);
        if (ok)
            return true;
    }
    return false;
}

static uint64_t
s_status(const char *ep, uint64_t *rows)
{
    nf_env_t *e = s_control(ep, NFLOW__CONTROL_COMMAND__CONTROL_STATUS, 2000);
    uint64_t malformed = UINT64_MAX;
    if (e && e->body_case == NF_BODY_CONTROL) {
        malformed = e->control->malformed;
        if (rows)
            *rows = e->control->rows;
        CHECK(e->control->rss_bytes > 0 && e->control->pid > 0);
    }
    if (e)
        nf_env_destroy(&e);
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

/* Receive one message (3 s bound); caller frees. */
static nf_env_t *
s_recv(zsock_t *s)
{
    nf_msg_t msg;
    nf_env_t *e = NULL;
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

    /* texts are encoded into one vector block; a Hop is added; the request
       id is kept */
    nf_env_t env;
    nf_env_init(&env);
    env.request_id = 1234;
    nf_batch_t batch = {0};
    Nflow__IndexBatch ir;
    float v[8] = {1, 0, 0, 0, 0, 0, 0, 0};
    CHECK_OK(nf_batch_add(&batch, "t", 1, NULL, "hello world", 11, NULL, NULL, 0));
    CHECK_OK(nf_batch_add(&batch, "u", 1, NULL, "second text", 11, NULL, NULL, 0));
    nf_batch_view(&batch, &ir);
    env.body_case = NF_BODY_INDEX;
    env.index = &ir;
    CHECK_OK(nf_msg_send(push, NULL, &env, 0));
    nf_env_t *e = s_recv(outs);
    CHECK(e && e->request_id == 1234 && e->n_route == 1);
    if (e && e->body_case == NF_BODY_INDEX && e->index->count == 2) {
        size_t len;
        CHECK(e->index->dim == 8 && e->index->vectors.len == 64);
        CHECK(!memcmp(nf_batch_text(e->index, 0, &len), "hello world", 11) && len == 11);
        CHECK(!strcmp(e->route[0]->pod, "encoder/0"));
    }
    if (e)
        nf_env_destroy(&e);

    /* a batch with vectors passes through untouched */
    nf_batch_reset(&batch, 8);
    CHECK_OK(nf_batch_add(&batch, "v", 1, v, NULL, 0, NULL, NULL, 0));
    nf_batch_view(&batch, &ir);
    env.request_id = 1235;
    CHECK_OK(nf_msg_send(push, NULL, &env, 0));
    e = s_recv(outs);
    CHECK(e && e->request_id == 1235 && e->index && e->index->vectors.len == 32
          && memcmp(e->index->vectors.data, v, 32) == 0);
    if (e)
        nf_env_destroy(&e);

    /* wrong dim and missing content fail via --errors */
    float v3[3] = {1, 2, 3};
    nf_batch_reset(&batch, 3);
    CHECK_OK(nf_batch_add(&batch, "x", 1, v3, NULL, 0, NULL, NULL, 0));
    nf_batch_view(&batch, &ir);
    env.request_id = 77;
    CHECK_OK(nf_msg_send(push, NULL, &env, 0));
    e = s_recv(errs);
    CHECK(e && e->request_id == 77 && e->status
          && e->status->code == NFLOW__STATUS_CODE__STATUS_BAD_DIM);
    CHECK(e && e->status && strstr(e->status->message, "vectors have 3 values, expected 8"));
    if (e)
        nf_env_destroy(&e);
    nf_batch_reset(&batch, 0);
    CHECK_OK(nf_batch_add(&batch, "empty", 5, NULL, NULL, 0, NULL, NULL, 0));
    nf_batch_view(&batch, &ir);
    env.request_id = 78;
    CHECK_OK(nf_msg_send(push, NULL, &env, 0));
    e = s_recv(errs);
    CHECK(e && e->request_id == 78 && e->status
          && e->status->code == NFLOW__STATUS_CODE__STATUS_BAD_REQUEST);
    if (e)
        nf_env_destroy(&e);

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
    CHECK(e && e->body_case == NF_BODY_CONTROL);
    if (e)
        nf_env_destroy(&e);
    CHECK(s_wait_exit(pid, 3000) == 0);
    CHECK(nf_now_us() - t0 < 3000000);
    nf_batch_free(&batch);
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
    CHECK(msg.env && msg.env->body_case == NF_BODY_CONTROL
          && msg.env->control->command == NFLOW__CONTROL_COMMAND__CONTROL_HELLO);
    zmsg_t *routing = msg.routing ? zmsg_dup(msg.routing) : zmsg_new();
    nf_msg_clear(&msg);
    CHECK_OK(nf_msg_recv(rt, &msg));
    CHECK(msg.env && msg.env->control->command == NFLOW__CONTROL_COMMAND__CONTROL_HEARTBEAT);
    nf_msg_clear(&msg);

    /* index two docs (columns straight into the segment): one part to the reducer */
    nf_env_t env;
    nf_env_init(&env);
    env.request_id = 500;
    nf_batch_t batch = {0};
    Nflow__IndexBatch ir;
    float a[4] = {1, 0, 0, 0}, b[4] = {0, 1, 0, 0};
    const char *key = "lang", *value = "en";
    nf_batch_reset(&batch, 4);
    CHECK_OK(nf_batch_add(&batch, "a", 1, a, "first", 5, &key, &value, 1));
    CHECK_OK(nf_batch_add(&batch, "b", 1, b, NULL, 0, NULL, NULL, 0));
    nf_batch_view(&batch, &ir);
    env.body_case = NF_BODY_INDEX;
    env.index = &ir;
    CHECK_OK(nf_msg_send(rt, routing, &env, 0));
    nf_env_t *e = s_recv(red);
    CHECK(e && e->request_id == 500 && e->body_case == NF_BODY_RESULT);
    if (e && e->result) {
        CHECK(e->result->indexed == 2 && e->result->shard == 1);
        CHECK(!strcmp(e->result->metric, "l2"));
    }
    if (e)
        nf_env_destroy(&e);

    /* a typed column this shard has no field for: the request is refused,
       naming the document and the field; nothing is stored */
    {
        nf_field_def_t def;
        CHECK_OK(nf_field_def_parse("year:int", &def));
        nf_fval_t y = {.name = "year", .type = NF_FIELD_INT, .v.i = 2001};
        nf_fields_t fy = {&y, 1};
        float c[4] = {0, 0, 1, 0};
        nf_batch_reset(&batch, 4);
        nf_batch_set_columns(&batch, &def, 1);
        CHECK_OK(nf_batch_add(&batch, "c", 1, c, NULL, 0, NULL, NULL, 0));
        CHECK_OK(nf_batch_add_fields(&batch, &fy));
        nf_batch_view(&batch, &ir);
        env.request_id = 502;
        CHECK_OK(nf_msg_send(rt, routing, &env, 0));
        e = s_recv(errs);
        CHECK(e && e->request_id == 502 && e->status
              && e->status->code == NFLOW__STATUS_CODE__STATUS_BAD_REQUEST
              && strstr(e->status->message, "year"));
        if (e && e->status)
            printf("typed column refused: %s\n", e->status->message);
        if (e)
            nf_env_destroy(&e);
        e = s_recv(red);
        CHECK(e && e->request_id == 502 && e->status);
        if (e)
            nf_env_destroy(&e);
    }

    /* an index request whose time is spent is dropped, never applied */
    float late[4] = {0, 0, 0, 9};
    nf_batch_reset(&batch, 4);
    CHECK_OK(nf_batch_add(&batch, "late", 4, late, NULL, 0, NULL, NULL, 0));
    nf_batch_view(&batch, &ir);
    env.request_id = 501;
    env.deadline_us = nf_now_us() - 1;      /* travels as 1 us left */
    CHECK_OK(nf_msg_send(rt, routing, &env, 0));
    e = s_recv(errs);
    CHECK(e && e->request_id == 501 && e->status
          && e->status->code == NFLOW__STATUS_CODE__STATUS_TIMEOUT);
    if (e)
        nf_env_destroy(&e);
    e = s_recv(red);
    CHECK(e && e->request_id == 501 && e->status);
    if (e)
        nf_env_destroy(&e);
    env.deadline_us = 0;

    /* two searches queued together: each gets its own part */
    Nflow__SearchRequest sr = NFLOW__SEARCH_REQUEST__INIT;
    float qa[4] = {0.9f, 0.1f, 0, 0};
    sr.count = 1;
    sr.dim = 4;
    sr.vectors = (ProtobufCBinaryData) {16, (uint8_t *) qa};
    sr.top_k = 1;
    sr.with_payload = true;     /* text and tags only when asked */
    env.body_case = NF_BODY_SEARCH;
    env.search = &sr;
    env.request_id = 601;
    CHECK_OK(nf_msg_send(rt, routing, &env, 0));
    sr.top_k = 5;
    env.request_id = 602;
    CHECK_OK(nf_msg_send(rt, routing, &env, 0));
    for (int i = 0; i < 2; i++) {
        e = s_recv(red);
        CHECK(e && e->body_case == NF_BODY_RESULT && e->result->n_results == 1);
        if (!e || !e->result || e->result->n_results != 1) {
            if (e)
                nf_env_destroy(&e);
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
        nf_env_destroy(&e);
    }

    /* a filter over a field this shard does not have: refused by name */
    sr.filter = "year >= 2000";
    env.request_id = 605;
    CHECK_OK(nf_msg_send(rt, routing, &env, 0));
    e = s_recv(errs);
    CHECK(e && e->request_id == 605 && e->status
          && e->status->code == NFLOW__STATUS_CODE__STATUS_BAD_REQUEST
          && strstr(e->status->message, "filter:1:1:") && strstr(e->status->message, "year"));
    if (e)
        nf_env_destroy(&e);
    e = s_recv(red);
    if (e)
        nf_env_destroy(&e);
    sr.filter = "";

    /* wrong dim: an error to the gateway AND a part with the status */
    float v3[3] = {1, 2, 3};
    sr.dim = 3;
    sr.vectors = (ProtobufCBinaryData) {12, (uint8_t *) v3};
    env.request_id = 603;
    CHECK_OK(nf_msg_send(rt, routing, &env, 0));
    e = s_recv(errs);
    CHECK(e && e->request_id == 603 && e->status
          && e->status->code == NFLOW__STATUS_CODE__STATUS_BAD_DIM);
    if (e)
        nf_env_destroy(&e);
    e = s_recv(red);
    CHECK(e && e->request_id == 603 && e->status
          && e->status->code == NFLOW__STATUS_CODE__STATUS_BAD_DIM && e->result
          && e->result->shard == 1);
    if (e)
        nf_env_destroy(&e);

    /* delete, then STATUS rows */
    Nflow__DeleteRequest dr;
    nf_batch_reset(&batch, 0);
    CHECK_OK(nf_batch_add(&batch, "b", 1, NULL, NULL, 0, NULL, NULL, 0));
    CHECK_OK(nf_batch_add(&batch, "nope", 4, NULL, NULL, 0, NULL, NULL, 0));
    nf_batch_view_delete(&batch, &dr);
    env.body_case = NF_BODY_DELETE;
    env.delete_ = &dr;
    env.request_id = 604;
    CHECK_OK(nf_msg_send(rt, routing, &env, 0));
    e = s_recv(red);
    CHECK(e && e->result && e->result->deleted == 1);
    if (e)
        nf_env_destroy(&e);
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
    nf_batch_free(&batch);
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

    nf_env_t env;
    nf_env_init(&env);
    env.request_id = 42;
    env.deadline_us = nf_now_us() + 5000000;
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
    env.body_case = NF_BODY_RESULT;
    env.result = &r;
    CHECK_OK(nf_msg_send(push, NULL, &env, 0));

    Nflow__Plan plan = NFLOW__PLAN__INIT;
    uint32_t shards[2] = {0, 1}, down[1] = {2};
    plan.shards = shards;
    plan.n_shards = 2;
    plan.down = down;
    plan.n_down = 1;
    plan.kind = NF_BODY_SEARCH;
    plan.nqueries = 1;
    plan.top_k = 3;         /* stamped by the gateway, carried by the router's plan */
    env.body_case = NF_BODY_PLAN;
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
    env.body_case = NF_BODY_RESULT;
    env.result = &r;
    CHECK_OK(nf_msg_send(push, NULL, &env, 0));

    nf_env_t *e = s_recv(res);
    CHECK(e && e->request_id == 42 && e->body_case == NF_BODY_RESULT);
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
        nf_env_destroy(&e);

    /* a late duplicate part is dropped: nothing more arrives */
    CHECK_OK(nf_msg_send(push, NULL, &env, 0));

    /* deadline: plan for shards 0 and 1, only shard 0 answers -> partial at the deadline */
    env.request_id = 43;
    env.deadline_us = nf_now_us() + 300000;
    env.body_case = NF_BODY_PLAN;
    env.plan = &plan;
    plan.n_down = 0;
    CHECK_OK(nf_msg_send(push, NULL, &env, 0));
    env.body_case = NF_BODY_RESULT;
    env.result = &r;        /* the body is a union: set it again */
    CHECK_OK(nf_msg_send(push, NULL, &env, 0));
    e = s_recv(res);
    CHECK(e && e->request_id == 43 && e->result && e->result->partial
          && e->result->n_missing_shards == 1 && e->result->missing_shards[0] == 1);
    if (e)
        nf_env_destroy(&e);

    /* an error part decides the answer */
    env.request_id = 44;
    env.deadline_us = nf_now_us() + 5000000;
    Nflow__Status st = NFLOW__STATUS__INIT;
    st.code = NFLOW__STATUS_CODE__STATUS_BAD_DIM;
    st.message = "query 0: vector has 3 values, expected 4";
    env.status = &st;
    CHECK_OK(nf_msg_send(push, NULL, &env, 0));
    e = s_recv(res);
    CHECK(e && e->request_id == 44 && e->status
          && e->status->code == NFLOW__STATUS_CODE__STATUS_BAD_DIM);
    if (e)
        nf_env_destroy(&e);

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
    /* the flow's canonical text tells the gateway the fields it checks filters against */
    setenv("NFLOW_CANON", "name=t\npod.indexer.with.fields=year:int,genre:keyword\n", 1);
    pid_t pid = s_spawn("nflow-gateway", args);
    unsetenv("NFLOW_CANON");
    CHECK(s_ready(ctl));
    CHECK(s_ready(clients));        /* PING is answered on the client socket too */
    zsock_t *client = s_sock(ZMQ_DEALER, clients, false);
    zsock_t *back = s_sock(ZMQ_PUSH, results, false);

    nf_env_t env;
    nf_env_init(&env);
    nf_batch_t batch = {0};
    Nflow__DeleteRequest dr;
    CHECK_OK(nf_batch_add(&batch, "x", 1, NULL, NULL, 0, NULL, NULL, 0));
    nf_batch_view_delete(&batch, &dr);
    env.body_case = NF_BODY_DELETE;
    env.delete_ = &dr;
    env.request_id = 7;
    CHECK_OK(nf_msg_send(client, NULL, &env, 0));
    nf_env_t *fwd = s_recv(next);
    /* the gateway's default timeout (300 ms) travels as time left */
    CHECK(fwd && fwd->request_id != 7 && fwd->deadline_us > nf_now_us()
          && fwd->deadline_us <= nf_now_us() + 300000 && fwd->n_route == 1);
    uint64_t gid = fwd ? fwd->request_id : 0;
    if (fwd)
        nf_env_destroy(&fwd);

    /* the answer goes back once, with the client's id */
    nf_env_t ans;
    nf_env_init(&ans);
    ans.request_id = gid;
    Nflow__Result r = NFLOW__RESULT__INIT;
    r.deleted = 1;
    ans.body_case = NF_BODY_RESULT;
    ans.result = &r;
    CHECK_OK(nf_msg_send(back, NULL, &ans, 0));
    CHECK_OK(nf_msg_send(back, NULL, &ans, 0));        /* duplicate: dropped */
    nf_env_t *e = s_recv(client);
    CHECK(e && e->request_id == 7 && e->result && e->result->deleted == 1);
    if (e)
        nf_env_destroy(&e);

    /* nobody answers: TIMEOUT after the deadline (+ grace) */
    env.request_id = 8;
    uint64_t t0 = nf_now_us();
    env.deadline_us = t0 + 200000;      /* the client gives it 200 ms */
    CHECK_OK(nf_msg_send(client, NULL, &env, 0));
    e = s_recv(client);
    CHECK(e && e->request_id == 8 && e->status
          && e->status->code == NFLOW__STATUS_CODE__STATUS_TIMEOUT);
    CHECK(nf_now_us() - t0 >= 200000);
    if (e)
        nf_env_destroy(&e);
    fwd = s_recv(next);
    if (fwd)
        nf_env_destroy(&fwd);

    /* a request without ids, garbage and a bad version: answered, counted */
    env.deadline_us = 0;
    dr.count = 0;
    dr.n_id_ends = 0;
    dr.ids.len = 0;
    env.request_id = 9;
    CHECK_OK(nf_msg_send(client, NULL, &env, 0));
    e = s_recv(client);
    CHECK(e && e->request_id == 9 && e->status
          && e->status->code == NFLOW__STATUS_CODE__STATUS_BAD_REQUEST);
    if (e)
        nf_env_destroy(&e);
    zmq_send(zsock_resolve(client), "\x08garbage", 8, 0);
    zmsg_t *z = zmsg_recv(client);
    CHECK(z != NULL);
    zmsg_destroy(&z);
    /* a version-1 client: STATUS_BAD_VERSION, in one frame it can read */
    zmq_send(zsock_resolve(client), "\x08\x01\x10\x0b\x52\x00", 6, 0);
    z = zmsg_recv(client);
    CHECK(z && zmsg_size(z) == 1);
    if (z) {
        zframe_t *f = zmsg_first(z);
        Nflow__Header *h = nflow__header__unpack(NULL, zframe_size(f), zframe_data(f));
        CHECK(h && h->request_id == 11 && h->status
              && h->status->code == NFLOW__STATUS_CODE__STATUS_BAD_VERSION
              && strstr(h->status->message, "protocol 1"));
        if (h)
            nflow__header__free_unpacked(h, NULL);
    }
    zmsg_destroy(&z);
    /* an ill-typed filter: refused at the gateway, before any scan */
    Nflow__SearchRequest sr = NFLOW__SEARCH_REQUEST__INIT;
    float qv[2] = {1, 2};
    sr.count = 1;
    sr.dim = 2;
    sr.vectors = (ProtobufCBinaryData) {8, (uint8_t *) qv};
    sr.filter = "genre == 1";
    env.body_case = NF_BODY_SEARCH;
    env.search = &sr;
    env.request_id = 12;
    CHECK_OK(nf_msg_send(client, NULL, &env, 0));
    e = s_recv(client);
    CHECK(e && e->request_id == 12 && e->status
          && e->status->code == NFLOW__STATUS_CODE__STATUS_BAD_REQUEST
          && !strncmp(e->status->message, "filter:1:10: 'genre' is a keyword field", 39));
    if (e && e->status)
        printf("gateway refusal: %s\n", e->status->message);
    if (e)
        nf_env_destroy(&e);
    nf_batch_free(&batch);
    CHECK(s_status(ctl, NULL) >= 2);

    e = s_control(ctl, NFLOW__CONTROL_COMMAND__CONTROL_TERMINATE, 2000);
    CHECK(e != NULL);
    if (e)
        nf_env_destroy(&e);
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
