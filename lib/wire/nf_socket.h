/*  nf_socket: the one socket factory.  Every ZeroMQ socket of nflow (the
    pods, the client, the launcher's PINGs, check-pod) is made here, so the
    project's socket options live in one place:
      - linger (how long close waits for queued messages),
      - high-water marks,
      - ZMQ_MAXMSGSIZE = NF_FRAME_MAX (nf_limits.h): a bigger message is
        dropped by ZeroMQ before nflow allocates anything for it,
      - a send timeout on sockets that can block on send (PUSH, ROUTER,
        DEALER), so a stuck peer never blocks a pod forever,
      - ROUTER_MANDATORY on every ROUTER (an unroutable send fails instead
        of vanishing), ROUTER_HANDOVER when asked,
      - IMMEDIATE on connecting PUSH sockets (work goes only to peers that
        are connected: a dead replica gets none),
      - the socket identity (a shard's DEALER),
      - a receive timeout of 0: a receive never blocks (poll first; libzmq
        4.3 may wake a poll on a CURVE socket with nothing to read),
      - ZMTP heartbeats (ZMQ_HEARTBEAT_IVL / TIMEOUT / TTL) on every
        socket: a peer that goes silent (a host that dies, a cut link) is
        disconnected within NF_SOCKET_HEARTBEAT_TIMEOUT_MS, so nothing
        queued for it waits in a stalled TCP connection to be delivered
        late, and a reconnect starts at once when the link heals (connects
        time out after NF_SOCKET_CONNECT_TIMEOUT_MS and are retried, rather
        than waiting for TCP's own SYN backoff),
      - link security: with opts->keys, CurveZMQ (nf_keys): a bound socket
        is a CURVE server that lets in only the key classes of its ZAP
        domain (opts->allow), a connecting one a CURVE client of the
        server key opts->server_key.  Keys are applied here and nowhere
        else.                                                             */
#ifndef NF_SOCKET_H
#define NF_SOCKET_H

#include <stdbool.h>

typedef struct _zsock_t zsock_t;     /* czmq */
typedef struct nf_keys nf_keys_t;    /* nf_keys.h */

typedef struct {
    int type;               /* ZMQ_PULL, ZMQ_PUSH, ZMQ_ROUTER, ZMQ_DEALER */
    bool bind;              /* bind to endpoints (else connect) */
    const char *endpoints;  /* one endpoint or a comma-separated list; NULL =
                               neither bind nor connect yet */
    const char *what;       /* names the socket in errors: "--in", "client" */
    const char *identity;   /* socket identity, NULL = none */
    bool handover;          /* ROUTER: a known identity reconnecting takes
                               its route over (a restarted shard) */
    int linger_ms;          /* 0 = NF_SOCKET_LINGER_MS; < 0 = drop at close */
    int sndtimeo_ms;        /* 0 = NF_SOCKET_SNDTIMEO_MS where sends can
                               block (PUSH, ROUTER, DEALER); < 0 = none */
    int heartbeat_ms;       /* ZMTP heartbeat interval: 0 = NF_SOCKET_HEARTBEAT_MS
                               (the timeout is NF_SOCKET_HEARTBEAT_TIMEOUT_MS);
                               < 0 = none */
    const nf_keys_t *keys;  /* CURVE with these keys; NULL = plain TCP */
    const char *allow;      /* bind with keys: the ZAP domain ("pods",
                               "clients", "operators"; nf_keys.h) */
    const char *server_key; /* connect with keys: the name of the server's
                               public key ("pod", "shard-2") */
} nf_socket_opts_t;

#define NF_SOCKET_LINGER_MS 200     /* flush what is queued at close, but never wait long */
#define NF_SOCKET_SNDTIMEO_MS 1000  /* a blocking send gives up after this */
#define NF_SOCKET_HWM 100000        /* messages queued per peer, each way */
#define NF_SOCKET_HEARTBEAT_MS 200          /* ZMTP PING this often on a quiet link */
#define NF_SOCKET_HEARTBEAT_TIMEOUT_MS 800  /* no traffic this long: disconnect */
#define NF_SOCKET_CONNECT_TIMEOUT_MS 500    /* a TCP connect gives up (and is retried) */

/* Create a socket with the project's options and bind or connect it to
   every endpoint of opts->endpoints.  On success *out is the socket (the
   caller destroys it with zsock_destroy).  NF_EIO when it cannot be
   created, bound or connected; NF_EINVAL when endpoints holds no endpoint;
   the message names opts->what and the endpoint. */
int nf_socket_new(const nf_socket_opts_t *opts, zsock_t **out);

/* Bind (or connect) sock to each endpoint of a comma-separated list;
   errors as for nf_socket_new. */
int nf_socket_attach(zsock_t *sock, const char *what, const char *endpoints, bool bind);

#endif
