/*  nf_msg: the wire codec, protocol version 2 (proto/README.md).  One
    ZeroMQ message = optional routing frames (identities a ROUTER socket
    adds, then an optional empty delimiter), a header frame (a protobuf
    nflow.Header: version, request id, time left, route, status, body kind)
    and a body frame (the protobuf the header names; empty for BODY_NONE).

    Owns: receiving and checking a message (nf_msg_recv), its decoded form
    (nf_env_t, one heap box per message whose protobuf strings and blobs
    live in a reused arena), sending one (nf_msg_send*: packed straight
    into the ZeroMQ message's buffer), forwarding a received body frame
    without decoding or repacking it (nf_msg_forward_hop), the columnar
    index batch builder (nf_batch_t, buffers reused across batches) and the
    limits checks of every count and offset a frame holds.

    nf_msg_recv never trusts the peer: wrong frame counts, frames that do
    not unpack, a wrong protocol version (a version-1 Envelope, one frame,
    is named as such), counts over lib/core/nf_limits.h, offsets that do
    not fit the frame's bytes are reported as NF_EPROTO / NF_EVERSION with a
    message naming the sender and what was wrong, before anything sized by
    them is allocated.  The caller counts and logs it and, when
    msg->routing is set, can answer the sender (nf_msg_reply_error).

    Time left: a header carries the microseconds its sender had left; the
    receiver turns it into env->deadline_us on ITS monotonic clock
    (nf_now_us) at receipt, and nf_msg_send turns env->deadline_us back
    into what is left at sending.  No wall clock is compared across pods. */
#ifndef NF_MSG_H
#define NF_MSG_H

#include <czmq.h>
#include <stdbool.h>
#include <stdint.h>

#include "nf_batch.h"
#include "nflow.pb-c.h"

#define NF_PROTOCOL_VERSION 2

/* Body kinds (nflow.BodyKind; the numbers of version 1's body fields). */
#define NF_BODY_NONE NFLOW__BODY_KIND__BODY_NONE
#define NF_BODY_INDEX NFLOW__BODY_KIND__BODY_INDEX
#define NF_BODY_DELETE NFLOW__BODY_KIND__BODY_DELETE
#define NF_BODY_SEARCH NFLOW__BODY_KIND__BODY_SEARCH
#define NF_BODY_CONTROL NFLOW__BODY_KIND__BODY_CONTROL
#define NF_BODY_RESULT NFLOW__BODY_KIND__BODY_RESULT
#define NF_BODY_PLAN NFLOW__BODY_KIND__BODY_PLAN

/* Rows of a float32 block picked by index, written straight into the body
   frame being sent (nf_env_t.gather): how the router sends each shard its
   slice of a batch's vectors without first copying them into a batch of
   its own. */
typedef struct {
    const uint8_t *block;       /* rows of row_bytes each */
    size_t row_bytes;
    const uint32_t *rows;       /* the rows to send, in order */
    size_t n;
} nf_gather_t;

/* A message, decoded (received) or to send.  For sending, a stack value
   from nf_env_init whose pointers the caller owns; the body pointer that
   body_case names is packed. */
typedef struct {
    uint64_t request_id;
    uint64_t deadline_us;       /* nf_now_us clock of THIS pod; 0 = no limit.  Received:
                                   receipt time + the header's time_left_us.  Sent: the
                                   header carries deadline_us - now (at least 1 us) */
    size_t n_route;
    Nflow__Hop **route;
    Nflow__Status *status;      /* NULL or an error */
    int body_case;              /* NF_BODY_* */
    Nflow__IndexBatch *index;
    Nflow__DeleteRequest *delete_;
    Nflow__SearchRequest *search;
    Nflow__Control *control;
    Nflow__Result *result;
    Nflow__Plan *plan;
    const nf_gather_t *gather;  /* sending an index batch whose `vectors` is empty: its
                                   vectors, gathered at pack time (NULL when received) */
} nf_env_t;

typedef struct {
    zmsg_t *routing;            /* identity (+ delimiter) frames, ROUTER only; else NULL */
    nf_env_t *env;              /* decoded message (NULL if it did not decode); owned
                                   by msg until nf_msg_clear, or by whoever sets
                                   msg->env = NULL and later calls nf_env_destroy */
    char peer[96];              /* sender, for logs: "tcp://1.2.3.4:5678" or identity hex */
    uint64_t request_id;        /* the header's request id whenever it was read, else 0 */
    bool v1;                    /* the message was one frame holding a version-1 Envelope:
                                   answers go back as one frame (nf_pod does it) */
    char user[72];              /* CURVE: the name of the key the sender authenticated
                                   with (ZAP User-Id, nf_keys.h); "" on plain links */
} nf_msg_t;

/* Receive one message from sock, header and body, and check it.  Poll
   first: sockets from nf_socket never block, and NF_EIO with zmq_errno()
   == EAGAIN means there was nothing to read after all.  On NF_OK msg->env
   is set.  On NF_EVERSION msg->env is NULL but msg->request_id is set so
   the caller can answer.  On NF_EPROTO msg->env is NULL.  In every case
   the caller calls nf_msg_clear(msg). */
int nf_msg_recv(zsock_t *sock, nf_msg_t *msg);

/* Like nf_msg_recv, but the body is only checked for its size and kept
   as received: env has the header's fields and no body pointer set; use
   nf_msg_forward_hop to pass it on (the gateway's answers to clients). */
int nf_msg_recv_raw(zsock_t *sock, nf_msg_t *msg);

/* Free what nf_msg_recv allocated; safe on a zeroed or cleared msg. */
void nf_msg_clear(nf_msg_t *msg);

/* Free a received env taken from a msg (msg->env set to NULL before the
   msg was cleared); accepts NULL and *env_p == NULL; NULLs *env_p. */
void nf_env_destroy(nf_env_t **env_p);

/* Let go of the body frame kept with a received env (for forwarding): a
   pod that holds decoded messages (the reducer's parts) keeps only what
   it uses.  nf_msg_forward_hop cannot forward it afterwards. */
void nf_env_drop_frame(nf_env_t *env);

/* Bytes of the packed body of env (what it costs to hold or send). */
size_t nf_env_body_size(const nf_env_t *env);

/* Pack env (header and body) and send it, preceded by copies of routing's
   frames when routing is not NULL (routing is not consumed).  flags: 0 or
   ZMQ_DONTWAIT.  NF_EUNAVAIL when the message could not be queued (no
   peer, or EHOSTUNREACH on a mandatory ROUTER), NF_EIO on other
   failures. */
int nf_msg_send(zsock_t *sock, zmsg_t *routing, const nf_env_t *env, int flags);

/* Like nf_msg_send, but the header carries one more Hop {pod, recv_us,
   send_us = now (wall clock, tracing only)} at the end of its route. */
int nf_msg_send_hop(zsock_t *sock, zmsg_t *routing, const nf_env_t *env,
                    const char *pod, uint64_t recv_us, int flags);

/* Send the header of env (with one more Hop as nf_msg_send_hop) and, as the
   body, the body frame received in from, untouched: no decoding, no
   packing, no copy (the ZeroMQ message buffer is shared).  env->body_case
   must be from's.  from may be forwarded several times. */
int nf_msg_forward_hop(zsock_t *sock, zmsg_t *routing, const nf_env_t *env,
                       const nf_msg_t *from, const char *pod, uint64_t recv_us, int flags);

/* Answer the sender of a failed request with a message carrying only a
   status (code, message), the given request id and no body. */
int nf_msg_reply_error(zsock_t *sock, zmsg_t *routing, uint64_t request_id,
                       Nflow__StatusCode code, const char *message);

/* The same as ONE frame holding just the header, which a version-1 peer
   reads as an Envelope (version 2, request id, status): how a version-1
   sender is told STATUS_BAD_VERSION. */
int nf_msg_reply_v1(zsock_t *sock, zmsg_t *routing, uint64_t request_id,
                    Nflow__StatusCode code, const char *message);

/* Initialise a stack env: everything empty. */
void nf_env_init(nf_env_t *env);

/* "index", "delete", "search", "control", "result", "plan" or "none". */
const char *nf_msg_body_name(int body_case);

/* Copy a wire vector (float32 little-endian) into out[dim].  NF_EDIM with a
   message "vector has N values, expected DIM" when the length is not dim*4,
   or "vector has N bytes, not a whole number of float32 values" when it is
   not a multiple of 4. */
int nf_vec_from_bytes(const ProtobufCBinaryData *bytes, uint32_t dim, float *out);

/* Every count, size and offset of env against lib/core/nf_limits.h and
   against the blobs they index (documents, ids and their ends, vector
   block = count x dim x 4, texts, tags, queries, top_k, queries x top_k,
   results, matches, shards, Plan.nqueries / top_k, hops).  nf_msg_recv
   runs it on everything it receives (after checking the frame's bytes and
   the counts they hold, before unpacking), so a pod never sizes anything
   from an unchecked count.  NF_EPROTO with a message naming the limit and
   the value ("top_k: 20000, at most 10000 (NF_TOPK_MAX)"). */
int nf_msg_check_limits(const nf_env_t *env);

/* What the gateway asks of a client request, beyond nf_msg_check_limits:
   a body of index, delete or search, at least one document / id / query,
   ids of at least 1 byte, vectors of whole, finite float32 values, no
   filter (not supported yet) and no typed columns.  NF_EINVAL with a
   message naming what and where. */
int nf_msg_check_request(const nf_env_t *env);

/* A wire vector holds whole, finite float32 values: NF_EDIM ("vector has
   3 bytes, not a whole number of float32 values") or NF_EINVAL ("vector[2]
   is NaN"). */
int nf_vec_check(const ProtobufCBinaryData *bytes);

/* A block of rows of dim float32 values (its length checked against the
   row count before): NF_OK when every value is finite, else NF_EINVAL
   naming the value within its row ("vector[2] is NaN") with *row set to
   the first row that has one.  One pass over the block. */
int nf_vec_check_rows(const ProtobufCBinaryData *block, uint32_t dim, size_t *row);

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
