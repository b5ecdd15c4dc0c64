/*  nf_msg: the wire codec (see nf_msg.h and proto/README.md).

    Receiving: the frames of one ZeroMQ message are split into routing
    frames (ROUTER sockets only: the peer identity, then an optional empty
    delimiter) and the one envelope frame, which is unpacked and checked
    (version, body).  Nothing a peer sends can crash or block the caller.
    Sending: optional copies of routing frames, then the packed envelope,
    all with zmq_send on the socket handle so errno tells why a send failed. */
#include "nf_msg.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nf_error.h"
#include "nf_hash.h"
#include "nf_sys.h"

void
nf_env_init(Nflow__Envelope *env)
{
    Nflow__Envelope init = NFLOW__ENVELOPE__INIT;
    *env = init;
    env->version = NF_PROTOCOL_VERSION;
}

const char *
nf_msg_body_name(int body_case)
{
    switch (body_case) {
    case NFLOW__ENVELOPE__BODY_INDEX: return "index";
    case NFLOW__ENVELOPE__BODY_DELETE: return "delete";
    case NFLOW__ENVELOPE__BODY_SEARCH: return "search";
    case NFLOW__ENVELOPE__BODY_CONTROL: return "control";
    case NFLOW__ENVELOPE__BODY_RESULT: return "result";
    case NFLOW__ENVELOPE__BODY_PLAN: return "plan";
    default: return "none";
    }
}

/* Name the sender for logs: its address (from the frame's metadata) and,
   on a ROUTER, its identity in hex. */
static void
s_peer_name(nf_msg_t *msg, zframe_t *any, zframe_t *identity)
{
    const char *addr = any ? zframe_meta(any, "Peer-Address") : NULL;
    char idhex[41] = "";
    if (identity) {
        size_t n = zframe_size(identity);
        const byte *d = zframe_data(identity);
        size_t i;
        for (i = 0; i < n && i < 20; i++)
            snprintf(idhex + 2 * i, 3, "%02x", d[i]);
    }
    if (addr && *addr && *idhex)
        snprintf(msg->peer, sizeof msg->peer, "%s (id %s)", addr, idhex);
    else if (addr && *addr)
        snprintf(msg->peer, sizeof msg->peer, "%s", addr);
    else if (*idhex)
        snprintf(msg->peer, sizeof msg->peer, "id %s", idhex);
    else
        snprintf(msg->peer, sizeof msg->peer, "unknown peer");
}

int
nf_msg_recv(zsock_t *sock, nf_msg_t *msg)
{
    memset(msg, 0, sizeof *msg);
    zmsg_t *zm = zmsg_recv(sock);
    if (!zm) {
        snprintf(msg->peer, sizeof msg->peer, "unknown peer");
        return nf_error_set(NF_EIO, "receive on %s socket failed: %s",
                            zsock_type_str(sock), zmq_strerror(zmq_errno()));
    }
    bool router = zsock_type(sock) == ZMQ_ROUTER;
    /* the key a CURVE peer authenticated with (nf_keys: its name) */
    const char *user = zmsg_last(zm) ? zframe_meta(zmsg_last(zm), "User-Id") : NULL;
    if (user)
        snprintf(msg->user, sizeof msg->user, "%s", user);

    if (router) {
        /* identity, then an optional empty delimiter (REQ peers) */
        s_peer_name(msg, zmsg_last(zm), zmsg_first(zm));
        zframe_t *id = zmsg_pop(zm);
        msg->routing = zmsg_new();
        zmsg_append(msg->routing, &id);
        zframe_t *next = zmsg_first(zm);
        if (next && zframe_size(next) == 0 && zmsg_size(zm) >= 2) {
            zframe_t *delim = zmsg_pop(zm);
            zmsg_append(msg->routing, &delim);
        }
    }
    else {
        s_peer_name(msg, zmsg_first(zm), NULL);
        zframe_t *first = zmsg_first(zm);
        if (first && zframe_size(first) == 0 && zmsg_size(zm) == 2) {
            zframe_t *delim = zmsg_pop(zm);
            zframe_destroy(&delim);
        }
    }

    int rc = NF_OK;
    if (zmsg_size(zm) != 1) {
        rc = nf_error_set(NF_EPROTO, "expected 1 envelope frame, got %zu frame%s",
                          zmsg_size(zm), zmsg_size(zm) == 1 ? "" : "s");
        goto done;
    }
    zframe_t *frame = zmsg_first(zm);
    size_t size = zframe_size(frame);
    if (size == 0) {
        rc = nf_error_set(NF_EPROTO, "empty envelope frame");
        goto done;
    }
    Nflow__Envelope *env = nflow__envelope__unpack(NULL, size, zframe_data(frame));
    if (!env) {
        rc = nf_error_set(NF_EPROTO, "frame of %zu bytes is not a protobuf nflow.Envelope",
                          size);
        goto done;
    }
    msg->request_id = env->request_id;
    if (env->version != NF_PROTOCOL_VERSION) {
        msg->env = env;
        rc = nf_error_set(NF_EVERSION, "protocol version %u, this pod speaks %d",
                          env->version, NF_PROTOCOL_VERSION);
        goto done;
    }
    bool error_only = env->status && env->status->code != NFLOW__STATUS_CODE__STATUS_OK;
    if (env->body_case == NFLOW__ENVELOPE__BODY__NOT_SET && !error_only) {
        nflow__envelope__free_unpacked(env, NULL);
        rc = nf_error_set(NF_EPROTO, "envelope (request %llu) has no body and no error status",
                          (unsigned long long) msg->request_id);
        goto done;
    }
    msg->env = env;
done:
    zmsg_destroy(&zm);
    return rc;
}

void
nf_msg_clear(nf_msg_t *msg)
{
    if (!msg)
        return;
    zmsg_destroy(&msg->routing);
    if (msg->env)
        nflow__envelope__free_unpacked(msg->env, NULL);
    msg->env = NULL;
}

static int
s_send_error(zsock_t *sock, const char *what)
{
    int e = zmq_errno();
    if (e == EAGAIN || e == EHOSTUNREACH)
        return nf_error_set(NF_EUNAVAIL, "send %s on %s socket: %s", what,
                            zsock_type_str(sock),
                            e == EAGAIN ? "no peer ready (queue full or no connection)"
                                        : "peer not connected");
    return nf_error_set(NF_EIO, "send %s on %s socket: %s", what, zsock_type_str(sock),
                        zmq_strerror(e));
}

int
nf_msg_send(zsock_t *sock, zmsg_t *routing, const Nflow__Envelope *env, int flags)
{
    Nflow__Envelope copy = *env;
    copy.version = NF_PROTOCOL_VERSION;
    size_t size = nflow__envelope__get_packed_size(&copy);
    uint8_t small[512];
    uint8_t *buf = size <= sizeof small ? small : malloc(size);
    if (!buf)
        return nf_error_set(NF_ENOMEM, "pack envelope: %zu bytes", size);
    nflow__envelope__pack(&copy, buf);

    void *handle = zsock_resolve(sock);
    int zflags = (flags & ZMQ_DONTWAIT) ? ZMQ_DONTWAIT : 0;
    int rc = NF_OK;
    if (routing) {
        for (zframe_t *f = zmsg_first(routing); f; f = zmsg_next(routing)) {
            if (zmq_send(handle, zframe_data(f), zframe_size(f), zflags | ZMQ_SNDMORE) < 0) {
                rc = s_send_error(sock, "routing frame");
                goto done;
            }
        }
    }
    if (zmq_send(handle, buf, size, zflags) < 0)
        rc = s_send_error(sock, "envelope");
done:
    if (buf != small)
        free(buf);
    return rc;
}

int
nf_msg_send_hop(zsock_t *sock, zmsg_t *routing, const Nflow__Envelope *env,
                const char *pod, uint64_t recv_us, int flags)
{
    Nflow__Envelope copy = *env;
    size_t n = env->n_route;
    Nflow__Hop **route = malloc((n + 1) * sizeof *route);
    if (!route)
        return nf_error_set(NF_ENOMEM, "hop list of %zu", n + 1);
    if (n)
        memcpy(route, env->route, n * sizeof *route);
    Nflow__Hop hop = NFLOW__HOP__INIT;
    hop.pod = (char *) pod;
    hop.recv_us = recv_us;
    hop.send_us = nf_wall_us();
    route[n] = &hop;
    copy.route = route;
    copy.n_route = n + 1;
    int rc = nf_msg_send(sock, routing, &copy, flags);
    free(route);
    return rc;
}

int
nf_msg_reply_error(zsock_t *sock, zmsg_t *routing, uint64_t request_id,
                   Nflow__StatusCode code, const char *message)
{
    Nflow__Envelope env;
    nf_env_init(&env);
    Nflow__Status status = NFLOW__STATUS__INIT;
    status.code = code;
    status.message = (char *) (message ? message : "");
    env.request_id = request_id;
    env.status = &status;
    return nf_msg_send(sock, routing, &env, ZMQ_DONTWAIT);
}

int
nf_vec_from_bytes(const ProtobufCBinaryData *bytes, uint32_t dim, float *out)
{
    size_t len = bytes ? bytes->len : 0;
    if (len != (size_t) dim * 4)
        return nf_error_set(NF_EDIM, "vector has %zu values, expected %u", len / 4, dim);
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    memcpy(out, bytes->data, len);
#else
    for (uint32_t i = 0; i < dim; i++) {
        const uint8_t *p = bytes->data + 4 * (size_t) i;
        uint32_t u = (uint32_t) p[0] | (uint32_t) p[1] << 8 | (uint32_t) p[2] << 16
                     | (uint32_t) p[3] << 24;
        memcpy(&out[i], &u, 4);
    }
#endif
    return NF_OK;
}

ProtobufCBinaryData
nf_vec_to_bytes(const float *v, uint32_t dim, void *buf)
{
    ProtobufCBinaryData b;
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    memcpy(buf, v, (size_t) dim * 4);
#else
    uint8_t *p = buf;
    for (uint32_t i = 0; i < dim; i++) {
        uint32_t u;
        memcpy(&u, &v[i], 4);
        p[4 * i] = u & 0xff;
        p[4 * i + 1] = (u >> 8) & 0xff;
        p[4 * i + 2] = (u >> 16) & 0xff;
        p[4 * i + 3] = u >> 24;
    }
#endif
    b.data = buf;
    b.len = (size_t) dim * 4;
    return b;
}

uint32_t
nf_msg_shard_of(const char *id, size_t len, uint32_t nshards)
{
    uint64_t h = nf_fnv1a64(NF_FNV_OFFSET, id, len);
    return nshards ? (uint32_t) (h % nshards) : 0;
}
