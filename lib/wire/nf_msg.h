/*  nf_msg: the wire codec.  One ZeroMQ message = optional routing frames
    (identities a ROUTER socket adds, then an optional empty delimiter) and
    exactly one frame holding a protobuf nflow.Envelope (proto/nflow.proto).

    nf_msg_recv never trusts the peer: wrong frame counts, frames that do
    not unpack, a wrong protocol version or an envelope without a body are
    reported as NF_EPROTO / NF_EVERSION with a message naming the sender
    (its Peer-Address, or its ROUTER identity) and what was wrong.  The
    caller counts and logs it and, when msg->routing is set, can answer the
    sender with an error (nf_msg_reply_error).                             */
#ifndef NF_MSG_H
#define NF_MSG_H

#include <czmq.h>
#include <stdint.h>

#include "nflow.pb-c.h"

#define NF_PROTOCOL_VERSION 1

typedef struct {
    zmsg_t *routing;            /* identity (+ delimiter) frames, ROUTER only; else NULL */
    Nflow__Envelope *env;       /* unpacked envelope (NULL if it did not unpack) */
    char peer[96];              /* sender, for logs: "tcp://1.2.3.4:5678" or identity hex */
    uint64_t request_id;        /* the envelope's request id whenever it unpacked (also
                                   on NF_EPROTO for a body-less envelope), else 0 */
    char user[72];              /* CURVE: the name of the key the sender authenticated
                                   with (ZAP User-Id, nf_keys.h); "" on plain links */
} nf_msg_t;

/* Receive one message from sock (poll first: sockets from nf_socket never
   block, and NF_EIO with zmq_errno() == EAGAIN means there was nothing to
   read after all).  On NF_OK msg->env is set.  On NF_EVERSION msg->env is set too (so the caller can answer
   with the request id).  On NF_EPROTO msg->env is NULL.  In every case the
   caller calls nf_msg_clear(msg) afterwards. */
int nf_msg_recv(zsock_t *sock, nf_msg_t *msg);

/* Free what nf_msg_recv allocated; safe on a zeroed or cleared msg. */
void nf_msg_clear(nf_msg_t *msg);

/* Pack env and send it, preceded by copies of routing's frames when
   routing is not NULL (routing is not consumed).  flags: 0 or ZMQ_DONTWAIT.
   env->version is forced to NF_PROTOCOL_VERSION.  NF_EUNAVAIL when the
   message could not be queued (no peer, or EHOSTUNREACH on a mandatory
   ROUTER), NF_EIO on other failures. */
int nf_msg_send(zsock_t *sock, zmsg_t *routing, const Nflow__Envelope *env, int flags);

/* Answer the sender of a failed request with an envelope carrying only a
   status (code, message) and the given request id. */
int nf_msg_reply_error(zsock_t *sock, zmsg_t *routing, uint64_t request_id,
                       Nflow__StatusCode code, const char *message);

/* Initialise a stack envelope: version set, everything else empty. */
void nf_env_init(Nflow__Envelope *env);

/* Like nf_msg_send, but the sent copy of env carries one more Hop {pod,
   recv_us, send_us = now} at the end of its route (env is not changed). */
int nf_msg_send_hop(zsock_t *sock, zmsg_t *routing, const Nflow__Envelope *env,
                    const char *pod, uint64_t recv_us, int flags);

/* "index", "delete", "search", "control", "result", "plan" or "none". */
const char *nf_msg_body_name(int body_case);

/* Copy a wire vector (float32 little-endian) into out[dim].  NF_EDIM with a
   message "vector has N values, expected DIM" when the length is not dim*4,
   or "vector has N bytes, not a whole number of float32 values" when it is
   not a multiple of 4. */
int nf_vec_from_bytes(const ProtobufCBinaryData *bytes, uint32_t dim, float *out);

/* Every count and size of env against lib/core/nf_limits.h (documents,
   ids, queries, top_k, queries x top_k, tags, id / text / tag / vector
   bytes, results, matches, shards, Plan.nqueries / top_k, hops).
   nf_msg_recv runs it on everything it receives (after checking the
   frame's bytes and the counts they hold, before unpacking), so a pod
   never sizes anything from an unchecked count.  NF_EPROTO with a message
   naming the limit and the value ("top_k: 20000, at most 10000
   (NF_TOPK_MAX)"). */
int nf_msg_check_limits(const Nflow__Envelope *env);

/* What the gateway asks of a client request, beyond nf_msg_check_limits:
   a body of index, delete or search, at least one document / id / query,
   ids of at least 1 byte, vectors of whole, finite float32 values.
   NF_EINVAL with a message naming what and where. */
int nf_msg_check_request(const Nflow__Envelope *env);

/* A wire vector holds whole, finite float32 values: NF_EDIM ("vector has
   3 bytes, not a whole number of float32 values") or NF_EINVAL ("vector[2]
   is NaN"). */
int nf_vec_check(const ProtobufCBinaryData *bytes);

/* The effective top_k of a search: NF_TOPK_DEFAULT for 0, at most
   NF_TOPK_MAX.  Decided once, by the gateway, which stamps it in the
   request; the indexer and the reducer use what they get. */
uint32_t nf_msg_top_k(uint32_t top_k);

/* The wire form of v[dim]: written into buf (dim*4 bytes, the caller's);
   the returned descriptor points at buf. */
ProtobufCBinaryData nf_vec_to_bytes(const float *v, uint32_t dim, void *buf);

/* The shard a document id belongs to: FNV-1a 64 of the id's len bytes
   (offset 14695981039346656037, prime 1099511628211), modulo nshards. */
uint32_t nf_msg_shard_of(const char *id, size_t len, uint32_t nshards);

#endif
