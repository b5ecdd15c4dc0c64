/*  nf_client: client connections and control calls (see nf_client.h). */
#include "nf_client.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nf_error.h"
#include "nf_socket.h"
#include "nf_sys.h"

struct nf_client {
    zsock_t *sock;
    char *endpoint;
    uint64_t next_id;
};

int
nf_client_new(const char *endpoint, nf_client_t **out)
{
    return nf_client_new_keyed(endpoint, NULL, NULL, out);
}

int
nf_client_new_keyed(const char *endpoint, const nf_keys_t *keys, const char *server_key,
                    nf_client_t **out)
{
    *out = NULL;
    nf_client_t *self = calloc(1, sizeof *self);
    if (!self || !(self->endpoint = strdup(endpoint))) {
        free(self);
        return nf_error_set(NF_ENOMEM, "out of memory");
    }
    nf_socket_opts_t o = {.type = ZMQ_DEALER, .endpoints = endpoint, .what = "client",
                          .linger_ms = -1, .sndtimeo_ms = -1, .keys = keys,
                          .server_key = server_key ? server_key : "pod"};
    int rc = nf_socket_new(&o, &self->sock);
    if (rc != NF_OK) {
        char why[512];
        snprintf(why, sizeof why, "%s", nf_error_msg());
        nf_client_destroy(&self);
        return nf_error_set(rc == NF_EIO ? NF_EINVAL : rc, "cannot connect to '%s': %s",
                            endpoint, why);
    }
    /* ids differ between runs so that a restarted client's answers do not
       match a previous run's stragglers */
    self->next_id = (nf_wall_us() & 0xffffffffu) << 20;
    *out = self;
    return 0;
}

void
nf_client_destroy(nf_client_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    nf_client_t *self = *self_p;
    zsock_destroy(&self->sock);
    free(self->endpoint);
    free(self);
    *self_p = NULL;
}

const char *
nf_client_endpoint(const nf_client_t *self)
{
    return self->endpoint;
}

zsock_t *
nf_client_sock(nf_client_t *self)
{
    return self->sock;
}

int
nf_client_send(nf_client_t *self, Nflow__Envelope *env, uint64_t *id)
{
    env->version = NF_PROTOCOL_VERSION;
    env->request_id = ++self->next_id;
    if (id)
        *id = env->request_id;
    int rc = nf_msg_send(self->sock, NULL, env, ZMQ_DONTWAIT);
    if (rc == NF_EUNAVAIL)
        return nf_error_set(rc, "%s: cannot queue the request (too many in flight?)", self->endpoint);
    return rc;
}

int
nf_client_recv(nf_client_t *self, int timeout_ms, Nflow__Envelope **reply)
{
    *reply = NULL;
    zmq_pollitem_t item = {.socket = zsock_resolve(self->sock), .events = ZMQ_POLLIN};
    uint64_t deadline = nf_now_us() + (uint64_t) (timeout_ms > 0 ? timeout_ms : 0) * 1000u;
    for (;;) {
        uint64_t now = nf_now_us();
        long wait = now >= deadline ? 0 : (long) ((deadline - now + 999) / 1000);
        int n = zmq_poll(&item, 1, wait);
        if (n < 0 && zmq_errno() == EINTR)
            return nf_error_set(NF_EIO, "%s: interrupted", self->endpoint);
        if (n < 0)
            return nf_error_set(NF_EIO, "%s: poll: %s", self->endpoint, zmq_strerror(zmq_errno()));
        if (n > 0) {
            nf_msg_t msg;
            memset(&msg, 0, sizeof msg);
            int rc = nf_msg_recv(self->sock, &msg);
            bool nothing = rc == NF_EIO && zmq_errno() == EAGAIN;   /* a spurious wake-up */
            if (rc == 0) {
                *reply = msg.env;
                msg.env = NULL;
            }
            nf_msg_clear(&msg);
            if (!nothing)
                return rc;
        }
        if (nf_now_us() >= deadline)
            return nf_error_set(NF_ETIMEOUT, "%s: no answer within %d ms", self->endpoint, timeout_ms);
    }
}

int
nf_client_call(nf_client_t *self, Nflow__Envelope *env, int timeout_ms, Nflow__Envelope **reply)
{
    uint64_t id;
    *reply = NULL;
    int rc = nf_client_send(self, env, &id);
    if (rc)
        return rc;
    uint64_t deadline = nf_now_us() + (uint64_t) (timeout_ms > 0 ? timeout_ms : 0) * 1000u;
    for (;;) {
        uint64_t now = nf_now_us();
        int left = now >= deadline ? 0 : (int) ((deadline - now + 999) / 1000);
        Nflow__Envelope *got = NULL;
        rc = nf_client_recv(self, left, &got);
        if (rc == NF_ETIMEOUT)
            return nf_error_set(rc, "%s: no answer within %d ms", self->endpoint, timeout_ms);
        if (rc == 0 && got->request_id == id) {
            *reply = got;
            return 0;
        }
        if (got)
            nflow__envelope__free_unpacked(got, NULL);
        if (nf_now_us() >= deadline)
            return nf_error_set(NF_ETIMEOUT, "%s: no answer within %d ms", self->endpoint, timeout_ms);
    }
}

int
nf_client_ping(nf_client_t *self, int timeout_ms)
{
    Nflow__Envelope env, *reply = NULL;
    Nflow__Control ctl;
    nf_control_env(&env, &ctl, NFLOW__CONTROL_COMMAND__CONTROL_PING);
    int rc = nf_client_call(self, &env, timeout_ms, &reply);
    if (reply)
        nflow__envelope__free_unpacked(reply, NULL);
    if (rc == NF_ETIMEOUT)
        return nf_error_set(NF_EUNAVAIL, "no gateway answers at %s (no answer to PING within "
                            "%d ms)", self->endpoint, timeout_ms);
    return rc;
}

const char *
nf_status_name(int code)
{
    const ProtobufCEnumValue *v =
        protobuf_c_enum_descriptor_get_value(&nflow__status_code__descriptor, code);
    return v ? v->name : "STATUS_UNKNOWN";
}

int
nf_client_status(const Nflow__Envelope *reply)
{
    if (!reply->status || reply->status->code == NFLOW__STATUS_CODE__STATUS_OK)
        return 0;
    int rc;
    switch (reply->status->code) {
    case NFLOW__STATUS_CODE__STATUS_BAD_REQUEST:
    case NFLOW__STATUS_CODE__STATUS_TOO_LARGE: rc = NF_EINVAL; break;
    case NFLOW__STATUS_CODE__STATUS_BAD_VERSION: rc = NF_EVERSION; break;
    case NFLOW__STATUS_CODE__STATUS_BAD_DIM: rc = NF_EDIM; break;
    case NFLOW__STATUS_CODE__STATUS_TIMEOUT: rc = NF_ETIMEOUT; break;
    case NFLOW__STATUS_CODE__STATUS_UNAVAILABLE:
    case NFLOW__STATUS_CODE__STATUS_SHARD_DOWN: rc = NF_EUNAVAIL; break;
    case NFLOW__STATUS_CODE__STATUS_NOT_FOUND: rc = NF_ENOTFOUND; break;
    default: rc = NF_EIO; break;
    }
    const char *m = reply->status->message;
    return nf_error_set(rc, "%s%s%s", nf_status_name(reply->status->code), m && *m ? ": " : "",
                        m ? m : "");
}

/* ------------------------------------------------------------------ */
/* Requests                                                            */

struct nf_request {
    Nflow__Envelope env;
    Nflow__IndexRequest index;
    Nflow__SearchRequest search;
    Nflow__DeleteRequest del;
    Nflow__Document **docs;     /* index / search: each malloc'd with its fields */
    char **ids;                 /* delete */
    size_t n, cap;
};

int
nf_request_new(Nflow__Envelope__BodyCase body, uint32_t top_k, uint32_t timeout_ms,
               nf_request_t **out)
{
    *out = NULL;
    if (body != NFLOW__ENVELOPE__BODY_INDEX && body != NFLOW__ENVELOPE__BODY_SEARCH
        && body != NFLOW__ENVELOPE__BODY_DELETE)
        return nf_error_set(NF_EINVAL, "nf_request_new: body %d is not index, delete or search", body);
    nf_request_t *self = calloc(1, sizeof *self);
    if (!self)
        return nf_error_set(NF_ENOMEM, "out of memory");
    nf_env_init(&self->env);
    nflow__index_request__init(&self->index);
    nflow__search_request__init(&self->search);
    nflow__delete_request__init(&self->del);
    self->env.body_case = body;
    self->env.timeout_ms = timeout_ms;
    self->search.top_k = top_k;
    *out = self;
    return 0;
}

static void
s_doc_free(Nflow__Document *d)
{
    if (!d)
        return;
    free(d->id);
    free(d->text);
    free(d->vector.data);
    for (size_t i = 0; i < d->n_tags; i++) {
        free(d->tags[i]->key);
        free(d->tags[i]->value);
        free(d->tags[i]);
    }
    free(d->tags);
    free(d);
}

static Nflow__Document *
s_doc_new(const char *id, const char *text, const float *vector, uint32_t dim,
          const nf_tag_t *tags, size_t ntags)
{
    Nflow__Document *d = calloc(1, sizeof *d);
    if (!d)
        return NULL;
    nflow__document__init(d);
    d->id = strdup(id ? id : "");
    d->text = strdup(text ? text : "");
    d->tags = ntags ? calloc(ntags, sizeof *d->tags) : NULL;
    bool ok = d->id && d->text && (!ntags || d->tags);
    if (ok && vector && dim) {
        ok = (d->vector.data = malloc((size_t) dim * 4)) != NULL;
        if (ok) {
            memcpy(d->vector.data, vector, (size_t) dim * 4);   /* float32, little-endian host */
            d->vector.len = (size_t) dim * 4;
        }
    }
    for (size_t i = 0; ok && i < ntags; i++) {
        Nflow__Document__TagsEntry *t = calloc(1, sizeof *t);
        if (!t) {
            ok = false;
            break;
        }
        nflow__document__tags_entry__init(t);
        d->tags[d->n_tags++] = t;
        ok = (t->key = strdup(tags[i].key)) && (t->value = strdup(tags[i].value));
    }
    if (!ok) {
        s_doc_free(d);
        return NULL;
    }
    return d;
}

int
nf_request_add(nf_request_t *self, const char *id, const char *text, const float *vector,
               uint32_t dim, const nf_tag_t *tags, size_t ntags)
{
    bool del = self->env.body_case == NFLOW__ENVELOPE__BODY_DELETE;
    if (self->n == self->cap) {
        size_t cap = self->cap ? self->cap * 2 : 16;
        void *grown = del ? realloc(self->ids, cap * sizeof *self->ids)
                          : realloc(self->docs, cap * sizeof *self->docs);
        if (!grown)
            return nf_error_set(NF_ENOMEM, "out of memory");
        if (del)
            self->ids = grown;
        else
            self->docs = grown;
        self->cap = cap;
    }
    if (del) {
        if (!id || !(self->ids[self->n] = strdup(id)))
            return nf_error_set(id ? NF_ENOMEM : NF_EINVAL, "delete: %s", id ? "out of memory" : "no id");
    } else if (!(self->docs[self->n] = s_doc_new(id, text, vector, dim, tags, ntags))) {
        return nf_error_set(NF_ENOMEM, "out of memory");
    }
    self->n++;
    return 0;
}

size_t
nf_request_size(const nf_request_t *self)
{
    return self->n;
}

Nflow__Envelope *
nf_request_env(nf_request_t *self)
{
    switch (self->env.body_case) {
    case NFLOW__ENVELOPE__BODY_INDEX:
        self->index.docs = self->docs;
        self->index.n_docs = self->n;
        self->env.index = &self->index;
        break;
    case NFLOW__ENVELOPE__BODY_SEARCH:
        self->search.queries = self->docs;
        self->search.n_queries = self->n;
        self->env.search = &self->search;
        break;
    default:
        self->del.ids = self->ids;
        self->del.n_ids = self->n;
        self->env.delete_ = &self->del;
        break;
    }
    return &self->env;
}

void
nf_request_destroy(nf_request_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    nf_request_t *self = *self_p;
    for (size_t i = 0; i < self->n; i++) {
        if (self->docs)
            s_doc_free(self->docs[i]);
        if (self->ids)
            free(self->ids[i]);
    }
    free(self->docs);
    free(self->ids);
    free(self);
    *self_p = NULL;
}

void
nf_control_env(Nflow__Envelope *env, Nflow__Control *control, Nflow__ControlCommand command)
{
    nf_env_init(env);
    nflow__control__init(control);
    control->command = command;
    env->body_case = NFLOW__ENVELOPE__BODY_CONTROL;
    env->control = control;
}

int
nf_control_call(const char *endpoint, Nflow__ControlCommand command, int timeout_ms,
                Nflow__Envelope **reply)
{
    nf_client_t *c = NULL;
    *reply = NULL;
    int rc = nf_client_new(endpoint, &c);
    if (rc)
        return rc;
    Nflow__Envelope env;
    Nflow__Control ctl;
    nf_control_env(&env, &ctl, command);
    rc = nf_client_call(c, &env, timeout_ms, reply);
    nf_client_destroy(&c);
    return rc;
}
