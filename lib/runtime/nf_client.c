/*  nf_client: client connections and control calls (see nf_client.h). */
#include "nf_client.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nf_error.h"
#include "nf_limits.h"
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
nf_client_send(nf_client_t *self, nf_env_t *env, uint64_t *id)
{
    env->request_id = ++self->next_id;
    if (id)
        *id = env->request_id;
    int rc = nf_msg_send(self->sock, NULL, env, ZMQ_DONTWAIT);
    if (rc == NF_EUNAVAIL)
        return nf_error_set(rc, "%s: cannot queue the request (too many in flight?)", self->endpoint);
    return rc;
}

int
nf_client_recv(nf_client_t *self, int timeout_ms, nf_env_t **reply)
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
nf_client_call(nf_client_t *self, nf_env_t *env, int timeout_ms, nf_env_t **reply)
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
        nf_env_t *got = NULL;
        rc = nf_client_recv(self, left, &got);
        if (rc == NF_ETIMEOUT)
            return nf_error_set(rc, "%s: no answer within %d ms", self->endpoint, timeout_ms);
        if (rc == 0 && got->request_id == id) {
            *reply = got;
            return 0;
        }
        if (got)
            nf_env_destroy(&got);
        if (nf_now_us() >= deadline)
            return nf_error_set(NF_ETIMEOUT, "%s: no answer within %d ms", self->endpoint, timeout_ms);
    }
}

int
nf_client_ping(nf_client_t *self, int timeout_ms)
{
    return nf_client_ping_fields(self, timeout_ms, NULL, 0, NULL);
}

int
nf_client_ping_fields(nf_client_t *self, int timeout_ms, nf_field_def_t *defs, size_t max,
                      size_t *n)
{
    nf_env_t env, *reply = NULL;
    Nflow__Control ctl;
    nf_control_env(&env, &ctl, NFLOW__CONTROL_COMMAND__CONTROL_PING);
    int rc = nf_client_call(self, &env, timeout_ms, &reply);
    if (n)
        *n = 0;
    if (rc == 0 && n && reply && reply->body_case == NF_BODY_CONTROL && reply->control)
        rc = nf_canon_fields(reply->control->canonical, defs, max, n);
    if (reply)
        nf_env_destroy(&reply);
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
nf_client_status(const nf_env_t *reply)
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
    nf_env_t env;
    uint32_t timeout_ms;
    Nflow__IndexBatch index;
    Nflow__SearchRequest search;
    Nflow__DeleteRequest del;
    nf_batch_t batch;           /* index / delete: the columns; search: the vectors */
    bool vectors;               /* the documents so far carry vectors */
    char **texts;               /* search: one per query ("" when none) */
    bool any_text;
    size_t n, cap;
    nf_field_def_t fields[NF_FIELDS_MAX];   /* index: the typed columns */
    size_t nfields;
};

int
nf_request_new(int body, uint32_t top_k, uint32_t timeout_ms, nf_request_t **out)
{
    *out = NULL;
    if (body != NF_BODY_INDEX && body != NF_BODY_SEARCH && body != NF_BODY_DELETE)
        return nf_error_set(NF_EINVAL, "nf_request_new: body %d is not index, delete or search", body);
    nf_request_t *self = calloc(1, sizeof *self);
    if (!self)
        return nf_error_set(NF_ENOMEM, "out of memory");
    nf_env_init(&self->env);
    nflow__index_batch__init(&self->index);
    nflow__search_request__init(&self->search);
    nflow__delete_request__init(&self->del);
    self->env.body_case = body;
    self->timeout_ms = timeout_ms;
    self->search.top_k = top_k;
    *out = self;
    return 0;
}

void
nf_request_set_fields(nf_request_t *self, const nf_field_def_t *defs, size_t n)
{
    self->nfields = n < NF_FIELDS_MAX ? n : NF_FIELDS_MAX;
    if (n)
        memcpy(self->fields, defs, self->nfields * sizeof *defs);
    if (self->n == 0 || self->env.body_case != NF_BODY_INDEX)
        return;
    nf_batch_set_columns(&self->batch, self->fields, self->nfields);
}

int
nf_request_add(nf_request_t *self, const char *id, const char *text, const float *vector,
               uint32_t dim, const nf_tag_t *tags, size_t ntags)
{
    return nf_request_add_typed(self, id, text, vector, dim, tags, ntags, NULL);
}

int
nf_request_add_typed(nf_request_t *self, const char *id, const char *text, const float *vector,
                     uint32_t dim, const nf_tag_t *tags, size_t ntags, const nf_fields_t *fields)
{
    int body = self->env.body_case;
    bool has_vec = vector && dim;
    if (body == NF_BODY_DELETE) {
        if (!id)
            return nf_error_set(NF_EINVAL, "delete: no id");
        return nf_batch_add(&self->batch, id, strlen(id), NULL, NULL, 0, NULL, NULL, 0);
    }
    /* one vector block per request: every document has a vector of one dim, or none has */
    if (self->n == 0) {
        self->vectors = has_vec;
        nf_batch_reset(&self->batch, has_vec ? dim : 0);
        if (body == NF_BODY_INDEX)
            nf_batch_set_columns(&self->batch, self->fields, self->nfields);
    }
    else if (has_vec != self->vectors || (has_vec && dim != self->batch.dim))
        return nf_error_set(NF_EDIM, "%s '%s': %s, the request's others %s", body == NF_BODY_INDEX
                            ? "doc" : "query", id ? id : "", has_vec ? "has a vector"
                            : "has no vector", self->vectors ? "have vectors" : "have none");
    if (body == NF_BODY_SEARCH) {
        if (self->n == self->cap) {
            size_t cap = self->cap ? self->cap * 2 : 16;
            char **grown = realloc(self->texts, cap * sizeof *grown);
            if (!grown)
                return nf_error_set(NF_ENOMEM, "out of memory");
            self->texts = grown;
            self->cap = cap;
        }
        if (!(self->texts[self->n] = strdup(text ? text : "")))
            return nf_error_set(NF_ENOMEM, "out of memory");
        self->any_text |= text && *text;
        /* the batch holds the query vectors (no ids, texts kept above) */
        if (nf_batch_add(&self->batch, "", 0, has_vec ? vector : NULL, NULL, 0, NULL, NULL, 0))
            return NF_ENOMEM;
        self->n++;
        return 0;
    }
    /* not checked here: the gateway names what is over a limit */
    const char **keys = ntags ? malloc(2 * ntags * sizeof *keys) : NULL;
    if (ntags && !keys)
        return nf_error_set(NF_ENOMEM, "out of memory");
    for (size_t t = 0; t < ntags; t++) {
        keys[t] = tags[t].key;
        keys[ntags + t] = tags[t].value;
    }
    const char *i = id ? id : "";
    int rc = nf_batch_add(&self->batch, i, strlen(i), has_vec ? vector : NULL, text,
                          text ? strlen(text) : 0, keys, keys ? keys + ntags : NULL, ntags);
    free(keys);
    if (rc == 0 && self->nfields)
        rc = nf_batch_add_fields(&self->batch, fields);
    if (rc == 0)
        self->n++;
    return rc;
}

void
nf_request_adopt_vectors(nf_request_t *self, void *block, size_t cap)
{
    nf_batch_adopt_vectors(&self->batch, block, cap);
}

size_t
nf_request_size(const nf_request_t *self)
{
    return self->env.body_case == NF_BODY_DELETE ? self->batch.count : self->n;
}

nf_env_t *
nf_request_env(nf_request_t *self)
{
    switch (self->env.body_case) {
    case NF_BODY_INDEX:
        nf_batch_view(&self->batch, &self->index);
        self->env.index = &self->index;
        break;
    case NF_BODY_SEARCH:
        self->search.count = (uint32_t) self->n;
        self->search.texts = self->any_text ? self->texts : NULL;
        self->search.n_texts = self->any_text ? self->n : 0;
        self->search.dim = self->vectors ? self->batch.dim : 0;
        self->search.vectors = (ProtobufCBinaryData) {self->vectors ? self->batch.vectors.len : 0,
                                                      self->batch.vectors.data};
        self->env.search = &self->search;
        break;
    default:
        nf_batch_view_delete(&self->batch, &self->del);
        self->env.delete_ = &self->del;
        break;
    }
    /* the time the client gives it, counted from now (0: the gateway's default) */
    self->env.deadline_us = self->timeout_ms ? nf_now_us() + (uint64_t) self->timeout_ms * 1000
                                             : 0;
    return &self->env;
}

void
nf_request_destroy(nf_request_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    nf_request_t *self = *self_p;
    for (size_t i = 0; self->texts && i < self->n; i++)
        free(self->texts[i]);
    free(self->texts);
    nf_batch_free(&self->batch);
    free(self);
    *self_p = NULL;
}

void
nf_control_env(nf_env_t *env, Nflow__Control *control, Nflow__ControlCommand command)
{
    nf_env_init(env);
    nflow__control__init(control);
    control->command = command;
    env->body_case = NF_BODY_CONTROL;
    env->control = control;
}

int
nf_control_call(const char *endpoint, Nflow__ControlCommand command, int timeout_ms,
                nf_env_t **reply)
{
    nf_client_t *c = NULL;
    *reply = NULL;
    int rc = nf_client_new(endpoint, &c);
    if (rc)
        return rc;
    nf_env_t env;
    Nflow__Control ctl;
    nf_control_env(&env, &ctl, command);
    rc = nf_client_call(c, &env, timeout_ms, reply);
    nf_client_destroy(&c);
    return rc;
}

int
nf_canon_fields(const char *canon, nf_field_def_t *defs, size_t max, size_t *n)
{
    static const char key[] = "pod.indexer.with.fields=";
    *n = 0;
    const char *at = canon;
    while (at && *at) {
        if (!strncmp(at, key, sizeof key - 1)) {
            at += sizeof key - 1;
            size_t len = strcspn(at, "\n");
            char *list = strndup(at, len);
            if (!list)
                return nf_error_set(NF_ENOMEM, "out of memory");
            int rc = nf_field_defs_parse(list, defs, max, n);
            free(list);
            return rc;
        }
        at = strchr(at, '\n');
        if (at)
            at++;
    }
    return NF_OK;
}
