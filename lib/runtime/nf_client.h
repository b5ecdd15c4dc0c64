/*  nf_client: the client side of a running flow.

    Owns three small jobs:
    - a client connection: one DEALER socket connected to a gateway's client
      endpoint (or to any pod's control endpoint), sending requests with
      the client's own request ids and receiving the answers, any number in
      flight (answers arrive in any order; match them by request_id);
    - building index / search requests from documents (nf_request), which
      own copies of what they carry so they can be sent again;
    - control calls (PING / STATUS / TERMINATE) to a pod's control endpoint
      with a timeout.
    (The launcher's state file, flow.state, is lib/flow/nf_flowstate.h.)

    Nothing here blocks forever: every wait takes a timeout in ms.         */
#ifndef NF_CLIENT_H
#define NF_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "nf_msg.h"
#include "nf_payload.h"      /* nf_tag_t */
#include "nf_segment.h"      /* nf_field_def_t */

typedef struct nf_client nf_client_t;

/* Connect a DEALER to endpoint.  Does not wait for the peer: requests
   queue until it is up.  On success *out is the client. */
int nf_client_new(const char *endpoint, nf_client_t **out);

/* Same, over CurveZMQ: keys holds the client's own key pair (nf_keys) and
   server_key names the server's public key ("pod", "shard-2"; NULL =
   "pod").  keys NULL = plain TCP (nf_client_new).  keys must outlive the
   client. */
typedef struct nf_keys nf_keys_t;
int nf_client_new_keyed(const char *endpoint, const nf_keys_t *keys, const char *server_key,
                        nf_client_t **out);

/* Close (linger 0) and free; accepts NULL and *self_p == NULL; sets *self_p
   to NULL. */
void nf_client_destroy(nf_client_t **self_p);

const char *nf_client_endpoint(const nf_client_t *self);

/* The socket, to poll several clients together (readable = an answer). */
zsock_t *nf_client_sock(nf_client_t *self);

/* Send env (header and body frames) after setting env->request_id to a
   fresh id (returned in *id, may be NULL); env->deadline_us (nf_now_us
   clock, 0 = the gateway's default) travels as the time left.  Never blocks: NF_EUNAVAIL when it cannot
   be queued.  env stays the caller's; it may be sent again (a new id). */
int nf_client_send(nf_client_t *self, nf_env_t *env, uint64_t *id);

/* Wait up to timeout_ms (0 = just look) for the next answer.  On success
   *reply is the decoded message; free it with nf_env_destroy(reply).  NF_ETIMEOUT when nothing arrived in time; NF_EPROTO /
   NF_EVERSION when what arrived does not decode (it is consumed). */
int nf_client_recv(nf_client_t *self, int timeout_ms, nf_env_t **reply);

/* nf_client_send then wait up to timeout_ms for the answer carrying that
   id (answers to other ids are dropped).  NF_ETIMEOUT with a message naming
   the endpoint when none came. */
int nf_client_call(nf_client_t *self, nf_env_t *env, int timeout_ms,
                   nf_env_t **reply);

/* Ask the peer (a gateway's client socket, or any control socket) whether
   it is there: a CONTROL_PING answered within timeout_ms.  NF_EUNAVAIL
   with "no gateway answers at EP (no answer to PING within T ms)" when
   nothing answered, so a client with a wrong endpoint says so in seconds
   instead of after every retry. */
int nf_client_ping(nf_client_t *self, int timeout_ms);

/* nf_client_ping, and the flow's typed fields from the answer's canonical
   text (nf_canon_fields) into defs[0..max), *n of them (0: none, or a
   gateway that does not tell). */
int nf_client_ping_fields(nf_client_t *self, int timeout_ms, nf_field_def_t *defs, size_t max,
                          size_t *n);

/* 0 when reply->status is absent or STATUS_OK; else the matching NF_E...
   code (BAD_DIM -> NF_EDIM, TIMEOUT -> NF_ETIMEOUT, UNAVAILABLE and
   SHARD_DOWN -> NF_EUNAVAIL, BAD_VERSION -> NF_EVERSION, NOT_FOUND ->
   NF_ENOTFOUND, BAD_REQUEST and TOO_LARGE -> NF_EINVAL, else NF_EIO) with the message
   "STATUS_NAME: the pod's message". */
int nf_client_status(const nf_env_t *reply);

/* Name of a status code ("STATUS_BAD_DIM"); never NULL. */
const char *nf_status_name(int code);

/* An index, delete or search request being built, columnar (ids, one
   float32 block, texts, tags: nf_batch_t); owns copies of everything, so
   it stays valid after the source is gone and can be sent (and resent)
   any number of times.  Every document of one request has a vector of
   one dim, or none has (the encoder then makes them from the texts). */
typedef struct nf_request nf_request_t;

/* New empty request: body is NF_BODY_INDEX, NF_BODY_DELETE or
   NF_BODY_SEARCH; top_k is used by searches (0 = NF_TOPK_DEFAULT, stamped
   by the gateway); timeout_ms: the time the client gives each sending
   (0 = the gateway's default). */
int nf_request_new(int body, uint32_t top_k, uint32_t timeout_ms, nf_request_t **out);

/* Add a document (index) or query (search): id may be NULL for queries,
   text NULL or "", vector NULL or dim floats, ntags tags.  For a delete,
   only id is used.  NF_EDIM when the document has a vector and the
   request's others have none, or another dim (or the other way round). */
int nf_request_add(nf_request_t *self, const char *id, const char *text, const float *vector,
                   uint32_t dim, const nf_tag_t *tags, size_t ntags);

/* Index requests: every document added after this has a value or a null
   for each typed field defs[0..n) (IndexBatch.columns). */
void nf_request_set_fields(nf_request_t *self, const nf_field_def_t *defs, size_t n);

/* nf_request_add with the document's typed values (NULL: all null); the
   values must have the fields' types (nf_vecio checked them): NF_EINVAL
   naming the field otherwise. */
int nf_request_add_typed(nf_request_t *self, const char *id, const char *text,
                         const float *vector, uint32_t dim, const nf_tag_t *tags, size_t ntags,
                         const nf_fields_t *fields);

/* Index and search requests: hand the request a malloc'd buffer of cap
   bytes for its vectors, before the first document; it frees it.  The
   documents added in order whose vectors are the buffer's rows (row i at
   block + i x dim floats) are stored without a copy (nf_vecio_take_vectors
   gives a batch's rows this way); any others are copied as ever. */
void nf_request_adopt_vectors(nf_request_t *self, void *block, size_t cap);

/* Documents added so far. */
size_t nf_request_size(const nf_request_t *self);

/* The message to pass to nf_client_send / nf_client_call, its deadline
   set to now + the request's timeout; owned by the request and valid
   until the next nf_request_add or destroy.  Call it again before sending
   again (a fresh time budget). */
nf_env_t *nf_request_env(nf_request_t *self);

/* Free; accepts NULL and *self_p == NULL; sets *self_p to NULL. */
void nf_request_destroy(nf_request_t **self_p);

/* Send one control command to the pod whose control endpoint is endpoint
   and wait up to timeout_ms for its answer; *reply as for nf_client_recv
   (reply->control holds the pod's Control).  NF_ETIMEOUT when the pod did
   not answer in time. */
int nf_control_call(const char *endpoint, Nflow__ControlCommand command, int timeout_ms,
                    nf_env_t **reply);

/* Build a control message in env (stack storage given by the caller). */
void nf_control_env(nf_env_t *env, Nflow__Control *control, Nflow__ControlCommand command);

/* The flow's typed fields (issue 11) from its canonical text (NFLOW_CANON,
   or the canonical text of a PING answer): the line
   "pod.indexer.with.fields=year:int,..." parsed with nf_field_defs_parse
   into defs[0..max).  *n = 0 when canon is NULL or has no such line (a
   flow without fields).  NF_EINVAL when the list is malformed. */
int nf_canon_fields(const char *canon, nf_field_def_t *defs, size_t max, size_t *n);

#endif
