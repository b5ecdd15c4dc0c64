/*  nf_socket: the one socket factory (see nf_socket.h). */
#include "nf_socket.h"

#include <czmq.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "nf_error.h"
#include "nf_keys.h"
#include "nf_limits.h"

int
nf_socket_attach(zsock_t *sock, const char *what, const char *endpoints, bool bind)
{
    char *copy = strdup(endpoints);
    if (!copy)
        return nf_error_set(NF_ENOMEM, "%s: out of memory", what);
    int rc = NF_OK, n = 0;
    char *save = NULL;
    for (char *ep = strtok_r(copy, ",", &save); ep; ep = strtok_r(NULL, ",", &save)) {
        while (*ep == ' ')
            ep++;
        if (!*ep)
            continue;
        if ((bind ? zsock_bind(sock, "%s", ep) : zsock_connect(sock, "%s", ep)) < 0) {
            rc = nf_error_set(NF_EIO, "%s: cannot %s %s: %s", what, bind ? "bind" : "connect to",
                              ep, zmq_strerror(zmq_errno()));
            break;
        }
        n++;
    }
    if (rc == NF_OK && n == 0)
        rc = nf_error_set(NF_EINVAL, "%s: no endpoint in '%s'", what, endpoints);
    free(copy);
    return rc;
}

int
nf_socket_new(const nf_socket_opts_t *o, zsock_t **out)
{
    *out = NULL;
    const char *what = o->what ? o->what : "socket";
    zsock_t *s = zsock_new(o->type);
    if (!s)
        return nf_error_set(NF_EIO, "%s: cannot create socket: %s", what,
                            zmq_strerror(zmq_errno()));
    zsock_set_linger(s, o->linger_ms == 0 ? NF_SOCKET_LINGER_MS
                        : o->linger_ms < 0 ? 0 : o->linger_ms);
    zsock_set_sndhwm(s, NF_SOCKET_HWM);
    zsock_set_rcvhwm(s, NF_SOCKET_HWM);
    zsock_set_maxmsgsize(s, NF_FRAME_MAX > INT32_MAX ? INT32_MAX : (int) NF_FRAME_MAX);
    /* a receive never blocks: libzmq 4.3 reports input on a CURVE socket
       whose handshake just completed, with nothing to read (callers poll
       first, and treat "nothing" as such: nf_msg_recv) */
    zsock_set_rcvtimeo(s, 0);
    bool may_block = o->type == ZMQ_PUSH || o->type == ZMQ_ROUTER || o->type == ZMQ_DEALER;
    if (may_block && o->sndtimeo_ms >= 0)
        zsock_set_sndtimeo(s, o->sndtimeo_ms ? o->sndtimeo_ms : NF_SOCKET_SNDTIMEO_MS);
    if (o->type == ZMQ_ROUTER) {
        zsock_set_router_mandatory(s, 1);
        if (o->handover)
            zsock_set_router_handover(s, 1);
    }
    if (o->type == ZMQ_PUSH && !o->bind)
        zsock_set_immediate(s, 1);  /* queue only to connected peers: a dead
                                       replica gets no work, a send with no peer fails */
    if (o->identity)
        zsock_set_identity(s, o->identity);
    if (o->heartbeat_ms >= 0) {
        int ivl = o->heartbeat_ms ? o->heartbeat_ms : NF_SOCKET_HEARTBEAT_MS;
        int timeout = o->heartbeat_ms ? 4 * ivl : NF_SOCKET_HEARTBEAT_TIMEOUT_MS;
        zsock_set_heartbeat_ivl(s, ivl);
        zsock_set_heartbeat_timeout(s, timeout);
        zsock_set_heartbeat_ttl(s, timeout);
    }
    if (!o->bind)   /* a SYN into a cut link is retried in 0.5 s, not by TCP's backoff
                       (1, 2, 4, 8 s...): the link is used again soon after it heals */
        zsock_set_connect_timeout(s, NF_SOCKET_CONNECT_TIMEOUT_MS);
    /* Link security, before the first bind or connect. */
    if (o->keys) {
        int rc = nf_keys_apply(o->keys, s, o->bind, o->allow, o->server_key, what);
        if (rc != NF_OK) {
            zsock_destroy(&s);
            return rc;
        }
    }
    if (o->endpoints) {
        int rc = nf_socket_attach(s, what, o->endpoints, o->bind);
        if (rc != NF_OK) {
            zsock_destroy(&s);
            return rc;
        }
    }
    *out = s;
    return NF_OK;
}
