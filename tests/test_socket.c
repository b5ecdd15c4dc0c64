/* nf_socket: the one socket factory.  Every socket it makes carries the
   project's options; bind and connect errors name the socket and the
   endpoint; a comma-separated list attaches to each endpoint. */
#include "nf_error.h"
#include "nf_limits.h"
#include "nf_socket.h"
#include "nf_sys.h"
#include "nf_test.h"

#include <czmq.h>
#include <stdlib.h>
#include <string.h>

static void
test_options(void)
{
    zsock_t *s = NULL;
    nf_socket_opts_t o = {.type = ZMQ_ROUTER, .bind = true, .endpoints = "tcp://127.0.0.1:*",
                          .what = "--shards", .handover = true};
    CHECK_OK(nf_socket_new(&o, &s));
    CHECK(s != NULL);
    if (s) {
        CHECK(zsock_type(s) == ZMQ_ROUTER);
        CHECK(zsock_maxmsgsize(s) == (int) NF_FRAME_MAX);
        CHECK(zsock_linger(s) == NF_SOCKET_LINGER_MS);
        CHECK(zsock_sndtimeo(s) == NF_SOCKET_SNDTIMEO_MS);
        CHECK(zsock_sndhwm(s) == NF_SOCKET_HWM && zsock_rcvhwm(s) == NF_SOCKET_HWM);
        CHECK(zsock_endpoint(s) && strncmp(zsock_endpoint(s), "tcp://127.0.0.1:", 16) == 0);
        /* ZMTP heartbeats on every socket; receives never block */
        CHECK(zsock_heartbeat_ivl(s) == NF_SOCKET_HEARTBEAT_MS);
        CHECK(zsock_heartbeat_timeout(s) == NF_SOCKET_HEARTBEAT_TIMEOUT_MS);
        CHECK(zsock_rcvtimeo(s) == 0);
        CHECK(!zsock_curve_server(s));       /* no keys: plain */
    }
    zsock_destroy(&s);

    /* a client: no linger, no send timeout, an identity */
    o = (nf_socket_opts_t){.type = ZMQ_DEALER, .what = "client", .linger_ms = -1,
                           .sndtimeo_ms = -1, .identity = "shard-7"};
    CHECK_OK(nf_socket_new(&o, &s));
    if (s) {
        CHECK(zsock_linger(s) == 0 && zsock_sndtimeo(s) == -1);
        char *id = zsock_identity(s);
        CHECK(id && !strcmp(id, "shard-7"));
        free(id);
    }
    zsock_destroy(&s);

    /* a connecting socket gives up a TCP connect after a while and retries */
    o = (nf_socket_opts_t){.type = ZMQ_PUSH, .what = "out", .endpoints = "tcp://127.0.0.1:9"};
    CHECK_OK(nf_socket_new(&o, &s));
    if (s)
        CHECK(zsock_connect_timeout(s) == NF_SOCKET_CONNECT_TIMEOUT_MS);
    zsock_destroy(&s);

    o = (nf_socket_opts_t){.type = ZMQ_PULL, .bind = true, .what = "in", .heartbeat_ms = -1};
    CHECK_OK(nf_socket_new(&o, &s));
    if (s)
        CHECK(zsock_heartbeat_ivl(s) == 0);  /* heartbeats off when asked */
    zsock_destroy(&s);

    /* a PULL never blocks on send: no send timeout is set */
    o = (nf_socket_opts_t){.type = ZMQ_PULL, .what = "in"};
    CHECK_OK(nf_socket_new(&o, &s));
    if (s)
        CHECK(zsock_sndtimeo(s) == -1);
    zsock_destroy(&s);
}

static void
test_endpoints(void)
{
    int p1 = nf_free_port("127.0.0.1"), p2 = nf_free_port("127.0.0.1");
    char list[96];
    snprintf(list, sizeof list, "tcp://127.0.0.1:%d, tcp://127.0.0.1:%d", p1, p2);
    zsock_t *a = NULL, *b = NULL, *push = NULL;
    char ep[64];
    snprintf(ep, sizeof ep, "tcp://127.0.0.1:%d", p1);
    nf_socket_opts_t o = {.type = ZMQ_PULL, .bind = true, .endpoints = ep, .what = "a"};
    CHECK_OK(nf_socket_new(&o, &a));
    snprintf(ep, sizeof ep, "tcp://127.0.0.1:%d", p2);
    o.endpoints = ep;
    CHECK_OK(nf_socket_new(&o, &b));
    /* one PUSH connected to both (the gateway's --out to every replica) */
    o = (nf_socket_opts_t){.type = ZMQ_PUSH, .endpoints = list, .what = "--out"};
    CHECK_OK(nf_socket_new(&o, &push));
    if (a && b && push) {
        /* IMMEDIATE: sends go to connected peers only; once both are
           connected, round-robin reaches each (bounded: 5 s) */
        zsock_set_rcvtimeo(a, 10);
        zsock_set_rcvtimeo(b, 10);
        int got_a = 0, got_b = 0;
        for (int i = 0; i < 500 && !(got_a && got_b); i++) {
            zsock_send(push, "s", "x");
            char *x = zstr_recv(a), *y = zstr_recv(b);
            got_a += x != NULL;
            got_b += y != NULL;
            free(x);
            free(y);
        }
        CHECK(got_a && got_b);
    }
    zsock_destroy(&push);
    zsock_destroy(&a);
    zsock_destroy(&b);

    /* errors name the socket and the endpoint */
    zsock_t *s = NULL;
    o = (nf_socket_opts_t){.type = ZMQ_PULL, .bind = true, .endpoints = "tcp://256.1.1.1:5",
                           .what = "--in"};
    CHECK(nf_socket_new(&o, &s) == NF_EIO && s == NULL);
    CHECK(strstr(nf_error_msg(), "--in: cannot bind tcp://256.1.1.1:5") != NULL);
    o.endpoints = " , ";
    CHECK(nf_socket_new(&o, &s) == NF_EINVAL && s == NULL);
    CHECK(strstr(nf_error_msg(), "--in: no endpoint") != NULL);
    o = (nf_socket_opts_t){.type = ZMQ_DEALER, .endpoints = "bogus://x", .what = "client"};
    CHECK(nf_socket_new(&o, &s) == NF_EIO && s == NULL);
    CHECK(strstr(nf_error_msg(), "client: cannot connect to bogus://x") != NULL);
}

int
main(void)
{
    test_options();
    test_endpoints();
    zsys_shutdown();
    return nf_test_done("socket");
}
