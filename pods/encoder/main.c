/*  nflow-encoder: text -> vector.

    PULLs index and search requests (--in).  A request whose vector block
    is empty gets one from lib/nf_encoder, one row per document / query
    text, written into a buffer reused from request to request, and is
    PUSHed on (--out, the router) with a Hop appended.  A request that
    already carries vectors is checked for the dimension and passed on
    with its body frame untouched.  A request with a wrong-dim block, or a
    document with neither text nor vector, is failed to the gateway via
    --errors.  Deletes pass through unchanged.                            */
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
    float *vecs;                /* the vector block, reused */
    size_t cap;                 /* rows it holds */
} encoder_t;

/* Encode text i of n (ptr, len from text_of) into self->vecs row i.  On
   failure the request is failed via --errors and false returned. */
static bool
s_encode(encoder_t *self, uint64_t request_id, size_t n, const char *what,
         const char *(*text_of)(const void *src, size_t i, size_t *len),
         const char *(*id_of)(const void *src, size_t i, size_t *len), const void *src)
{
    if (n > self->cap) {
        float *v = realloc(self->vecs, n * (size_t) self->dim * sizeof *v);
        if (!v) {
            nf_pod_fail(self->pod, request_id, NFLOW__STATUS_CODE__STATUS_INTERNAL,
                        "encoder: out of memory for %zu vectors", n);
            return false;
        }
        self->vecs = v;
        self->cap = n;
    }
    for (size_t i = 0; i < n; i++) {
        size_t len, idlen = 0;
        const char *text = text_of(src, i, &len);
        const char *id = id_of ? id_of(src, i, &idlen) : "";
        char label[320];
        if (idlen)
            snprintf(label, sizeof label, "%s '%.*s'", what, (int) idlen, id);
        else
            snprintf(label, sizeof label, "%s %zu", what, i);
        if (len == 0) {
            nf_pod_fail(self->pod, request_id, NFLOW__STATUS_CODE__STATUS_BAD_REQUEST,
                        "%s: no text and no vector", label);
            return false;
        }
        if (nf_encode_text(text, len, self->dim, self->ngram, self->vecs + i * self->dim)
            != NF_OK) {
            nf_pod_fail(self->pod, request_id, NFLOW__STATUS_CODE__STATUS_BAD_REQUEST,
                        "%s: %s", label, nf_error_msg());
            return false;
        }
    }
    return true;
}

static const char *
s_doc_text(const void *src, size_t i, size_t *len)
{
    return nf_batch_text(src, i, len);
}

static const char *
s_doc_id(const void *src, size_t i, size_t *len)
{
    return nf_batch_id(src, i, len);
}

static const char *
s_query_text(const void *src, size_t i, size_t *len)
{
    const Nflow__SearchRequest *s = src;
    const char *t = i < s->n_texts && s->texts[i] ? s->texts[i] : "";
    *len = strlen(t);
    return t;
}

static void
s_pass(encoder_t *self, nf_msg_t *msg, uint64_t recv_us, bool repack)
{
    nf_env_t *env = msg->env;
    int rc = repack ? nf_msg_send_hop(self->out, NULL, env, nf_pod_name(self->pod), recv_us, 0)
                    : nf_msg_forward_hop(self->out, NULL, env, msg, nf_pod_name(self->pod),
                                         recv_us, 0);
    if (rc != NF_OK)
        nf_pod_fail(self->pod, env->request_id, NFLOW__STATUS_CODE__STATUS_UNAVAILABLE,
                    "%s: cannot pass the request on: %s", nf_pod_name(self->pod),
                    nf_error_msg());
    else
        nf_pod_stats(self->pod)->served++;
}

/* A block that is there must have the encoder's dim. */
static bool
s_dim_ok(encoder_t *self, uint64_t request_id, const char *what, uint32_t dim)
{
    if (dim == self->dim)
        return true;
    nf_pod_fail(self->pod, request_id, NFLOW__STATUS_CODE__STATUS_BAD_DIM,
                "%s: vectors have %u values, expected %u", what, dim, self->dim);
    return false;
}

static void
s_handle(void *arg, nf_msg_t *msg, uint64_t recv_us)
{
    encoder_t *self = arg;
    nf_env_t *env = msg->env;
    switch (env->body_case) {
    case NF_BODY_INDEX: {
        Nflow__IndexBatch *b = env->index;
        if (b->vectors.len) {
            if (s_dim_ok(self, env->request_id, "index batch", b->dim))
                s_pass(self, msg, recv_us, false);
            return;
        }
        if (!s_encode(self, env->request_id, b->count, "doc", s_doc_text, s_doc_id, b))
            return;
        b->dim = self->dim;
        b->vectors.data = (uint8_t *) self->vecs;
        b->vectors.len = (size_t) b->count * self->dim * 4;
        s_pass(self, msg, recv_us, true);
        b->vectors.data = NULL;     /* ours, not the message's */
        b->vectors.len = 0;
        return;
    }
    case NF_BODY_SEARCH: {
        Nflow__SearchRequest *s = env->search;
        if (s->vectors.len) {
            if (s_dim_ok(self, env->request_id, "queries", s->dim))
                s_pass(self, msg, recv_us, false);
            return;
        }
        if (!s_encode(self, env->request_id, s->count, "query", s_query_text, NULL, s))
            return;
        s->dim = self->dim;
        s->vectors.data = (uint8_t *) self->vecs;
        s->vectors.len = (size_t) s->count * self->dim * 4;
        s_pass(self, msg, recv_us, true);
        s->vectors.data = NULL;
        s->vectors.len = 0;
        return;
    }
    case NF_BODY_DELETE:
        s_pass(self, msg, recv_us, false);
        return;
    default: {
        char why[96];
        snprintf(why, sizeof why, "wrong body for the encoder's input: %s",
                 env->status && !env->body_case ? "status only"
                                                 : nf_msg_body_name(env->body_case));
        nf_pod_reject(self->pod, self->in, msg, why);
        return;
    }
    }
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

static void
s_teardown(nf_pod_t *pod, void *arg)
{
    (void) pod;
    free(((encoder_t *) arg)->vecs);
}

int
main(int argc, char **argv)
{
    encoder_t self = {0};
    nf_pod_hooks_t hooks = {s_setup, s_step, s_teardown};
    return nf_pod_main("encoder", argc, argv, &hooks, &self);
}
