/*  nflow-encoder: text -> vector.

    PULLs index and search requests (--in), gives every document / query
    that has text and no vector the vector of lib/nf_encoder, checks the
    dimension of vectors that are already there, and PUSHes the request on
    (--out, the router) with a Hop appended.  A request with a wrong-dim
    vector, or a document with neither text nor vector, is failed to the
    gateway via --errors.  Deletes pass through unchanged.                 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nf_encoder.h"
#include "nf_error.h"
#include "nf_msg.h"
#include "nf_pod.h"
#include "nf_sys.h"

typedef struct {
    nf_pod_t *pod;
    zsock_t *in, *out;
    uint32_t dim;
    int ngram;
} encoder_t;

/* Give docs[i] a vector where they need one; what = "doc" / "query".
   On failure the request is failed via --errors and false returned.
   *bytes (caller frees) holds the new vectors, set[i] marks where. */
static bool
s_encode(encoder_t *self, uint64_t request_id, Nflow__Document **docs, size_t n,
         const char *what, uint8_t **bytes, bool *set)
{
    size_t vbytes = (size_t) self->dim * 4;
    float *scratch = malloc(vbytes);
    *bytes = malloc(n ? n * vbytes : 1);
    if (!scratch || !*bytes) {
        free(scratch);
        nf_pod_fail(self->pod, request_id, NFLOW__STATUS_CODE__STATUS_INTERNAL,
                    "encoder: out of memory for %zu vectors", n);
        return false;
    }
    bool ok = true;
    for (size_t i = 0; i < n && ok; i++) {
        Nflow__Document *d = docs[i];
        char label[320];
        if (d->id && *d->id)
            snprintf(label, sizeof label, "%s '%.256s'", what, d->id);
        else
            snprintf(label, sizeof label, "%s %zu", what, i);
        if (d->vector.len > 0) {
            if (d->vector.len != vbytes) {
                /* "3 bytes, not a whole number of float32 values", or "N values" */
                float one;
                ProtobufCBinaryData v = d->vector;
                nf_vec_from_bytes(&v, self->dim, &one);   /* only the message: len != dim*4 */
                nf_pod_fail(self->pod, request_id, NFLOW__STATUS_CODE__STATUS_BAD_DIM,
                            "%s: %s", label, nf_error_msg());
                ok = false;
            }
        }
        else if (d->text && *d->text) {
            if (nf_encode_text(d->text, strlen(d->text), self->dim, self->ngram, scratch)
                != NF_OK) {
                nf_pod_fail(self->pod, request_id, NFLOW__STATUS_CODE__STATUS_BAD_REQUEST,
                            "%s: %s", label, nf_error_msg());
                ok = false;
            }
            else {
                d->vector = nf_vec_to_bytes(scratch, self->dim, *bytes + i * vbytes);
                set[i] = true;
            }
        }
        else {
            nf_pod_fail(self->pod, request_id, NFLOW__STATUS_CODE__STATUS_BAD_REQUEST,
                        "%s: no text and no vector", label);
            ok = false;
        }
    }
    free(scratch);
    return ok;
}

static void
s_handle(void *arg, nf_msg_t *msg, uint64_t recv_us)
{
    encoder_t *self = arg;
    Nflow__Envelope *env = msg->env;
    Nflow__Document **docs = NULL;
    size_t n = 0;
    const char *what = "doc";
    switch (env->body_case) {
    case NFLOW__ENVELOPE__BODY_INDEX:
        docs = env->index->docs;
        n = env->index->n_docs;
        break;
    case NFLOW__ENVELOPE__BODY_SEARCH:
        docs = env->search->queries;
        n = env->search->n_queries;
        what = "query";
        break;
    case NFLOW__ENVELOPE__BODY_DELETE:
        break;
    default: {
        char why[96];
        snprintf(why, sizeof why, "wrong body for the encoder's input: %s",
                 env->status && !env->body_case ? "status only"
                                                 : nf_msg_body_name(env->body_case));
        nf_pod_reject(self->pod, self->in, msg, why);
        return;
    }
    }
    uint8_t *bytes = NULL;
    bool *set = calloc(n ? n : 1, sizeof *set);
    if (!set) {
        nf_pod_fail(self->pod, env->request_id, NFLOW__STATUS_CODE__STATUS_INTERNAL,
                    "encoder: out of memory");
        return;
    }
    if (n == 0 || s_encode(self, env->request_id, docs, n, what, &bytes, set)) {
        int rc = nf_msg_send_hop(self->out, NULL, env, nf_pod_name(self->pod), recv_us, 0);
        if (rc != NF_OK)
            nf_pod_fail(self->pod, env->request_id, NFLOW__STATUS_CODE__STATUS_UNAVAILABLE,
                        "%s: cannot pass the request on: %s", nf_pod_name(self->pod),
                        nf_error_msg());
        else
            nf_pod_stats(self->pod)->served++;
    }
    /* the vectors point into bytes: detach them before the envelope is freed */
    for (size_t i = 0; i < n; i++)
        if (set[i]) {
            docs[i]->vector.data = NULL;
            docs[i]->vector.len = 0;
        }
    free(set);
    free(bytes);
}

static int
s_setup(nf_pod_t *pod, void *arg)
{
    encoder_t *self = arg;
    self->pod = pod;
    self->in = nf_pod_sock(pod, "in");
    self->out = nf_pod_sock(pod, "out");
    self->dim = (uint32_t) nf_pod_int(pod, "dim");
    self->ngram = (int) nf_pod_int(pod, "ngram");
    nf_pod_stats(pod)->dim = self->dim;
    return NF_OK;
}

static void
s_step(nf_pod_t *pod, void *arg)
{
    encoder_t *self = arg;
    if (nf_pod_wait(pod, -1) <= 0 || !nf_pod_readable(pod, self->in))
        return;
    /* a bounded batch per wake-up so control requests are never starved */
    nf_pod_drain(pod, self->in, 256, s_handle, self);
}

int
main(int argc, char **argv)
{
    encoder_t self = {0};
    nf_pod_hooks_t hooks = {s_setup, s_step, NULL};
    return nf_pod_main("encoder", argc, argv, &hooks, &self);
}
