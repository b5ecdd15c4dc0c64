/*  nf_flowstate: the launcher's state file, <workspace>/flow.state, that
    `nflow up` writes so that other commands (index, search, status) can
    find a running flow.  JSON:
        {"version": 1, "flow": NAME, "launcher_pid": N, "gateway": EP,
         "pods": [{"name": "indexer/0", "uses": "indexer", "role": "indexer",
                   "host": H, "control": EP, "pid": N, "started": true,
                   "binds": {"--control": EP, ...}}, ...]}
    "started" is false for pods another launcher runs (multi-host); their
    pid is then 0.  Written atomically (temp file, fsync, rename).        */
#include "nf_flowstate.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "nf_error.h"

int
nf_flowstate_write(const char *path, const nf_flowstate_t *state)
{
    json_t *pods = json_array();
    json_t *root = json_pack("{s:i, s:s, s:i, s:s, s:o}", "version", 1, "flow", state->flow,
                             "launcher_pid", state->launcher_pid, "gateway", state->gateway,
                             "pods", pods);
    if (!root)
        return nf_error_set(NF_ENOMEM, "%s: cannot build the state", path);
    for (size_t i = 0; i < state->npods; i++) {
        const nf_flowstate_pod_t *p = &state->pods[i];
        json_t *binds = json_object();
        for (size_t j = 0; binds && j < p->nbinds; j++)
            json_object_set_new(binds, p->binds[j].option, json_string(p->binds[j].endpoint));
        json_t *o = json_pack("{s:s, s:s, s:s, s:s, s:s, s:i, s:b, s:o}", "name", p->name, "uses",
                              p->uses, "role", p->role, "host", p->host, "control", p->control,
                              "pid", p->pid, "started", p->started, "binds", binds);
        if (!o || json_array_append_new(pods, o) != 0) {
            json_decref(root);
            return nf_error_set(NF_ENOMEM, "%s: cannot build the state", path);
        }
    }
    char *text = json_dumps(root, JSON_INDENT(1));
    json_decref(root);
    if (!text)
        return nf_error_set(NF_ENOMEM, "out of memory");
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    int rc = 0;
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    size_t len = strlen(text);
    if (fd < 0 || write(fd, text, len) != (ssize_t) len || write(fd, "\n", 1) != 1 || fsync(fd) != 0)
        rc = nf_error_set(NF_EIO, "%s: %s", tmp, strerror(errno));
    if (fd >= 0 && close(fd) != 0 && rc == 0)
        rc = nf_error_set(NF_EIO, "%s: %s", tmp, strerror(errno));
    if (rc == 0 && rename(tmp, path) != 0)
        rc = nf_error_set(NF_EIO, "rename %s: %s", path, strerror(errno));
    if (rc)
        unlink(tmp);
    free(text);
    return rc;
}

static char *
s_str(json_t *obj, const char *key)
{
    const char *s = json_string_value(json_object_get(obj, key));
    return strdup(s ? s : "");
}

int
nf_flowstate_read(const char *path, nf_flowstate_t **out)
{
    *out = NULL;
    json_error_t jerr;
    json_t *root = json_load_file(path, 0, &jerr);
    if (!root) {
        if (access(path, F_OK) != 0)
            return nf_error_set(NF_ENOTFOUND, "%s: no such file", path);
        return nf_error_set(NF_EFORMAT, "%s:%d:%d: not a flow state file: %s", path, jerr.line,
                            jerr.column, jerr.text);
    }
    json_t *pods = json_object_get(root, "pods");
    if (!json_is_object(root) || json_integer_value(json_object_get(root, "version")) != 1
        || !json_is_string(json_object_get(root, "gateway")) || !json_is_array(pods)) {
        json_decref(root);
        return nf_error_set(NF_EFORMAT, "%s: not a flow state file (version 1 with gateway and pods)",
                            path);
    }
    nf_flowstate_t *st = calloc(1, sizeof *st);
    if (!st || !(st->pods = calloc(json_array_size(pods) + 1, sizeof *st->pods))) {
        free(st);
        json_decref(root);
        return nf_error_set(NF_ENOMEM, "out of memory");
    }
    st->flow = s_str(root, "flow");
    st->gateway = s_str(root, "gateway");
    st->launcher_pid = (int) json_integer_value(json_object_get(root, "launcher_pid"));
    size_t i;
    json_t *o;
    int rc = 0;
    json_array_foreach(pods, i, o) {
        nf_flowstate_pod_t *p = &st->pods[st->npods++];
        p->name = s_str(o, "name");
        p->uses = s_str(o, "uses");
        p->role = s_str(o, "role");
        p->host = s_str(o, "host");
        p->control = s_str(o, "control");
        p->pid = (int) json_integer_value(json_object_get(o, "pid"));
        p->started = json_is_true(json_object_get(o, "started"));
        if (!*p->name || !*p->control) {
            rc = nf_error_set(NF_EFORMAT, "%s: pods[%zu] has no name or control endpoint", path, i);
            break;
        }
        json_t *binds = json_object_get(o, "binds");
        p->binds = calloc(json_object_size(binds) + 1, sizeof *p->binds);
        const char *key;
        json_t *v;
        json_object_foreach(binds, key, v) {
            if (!p->binds || !json_is_string(v))
                continue;
            p->binds[p->nbinds].option = strdup(key);
            p->binds[p->nbinds].endpoint = strdup(json_string_value(v));
            p->nbinds++;
        }
    }
    json_decref(root);
    if (rc)
        nf_flowstate_destroy(&st);
    *out = st;
    return rc;
}

void
nf_flowstate_destroy(nf_flowstate_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    nf_flowstate_t *self = *self_p;
    for (size_t i = 0; i < self->npods; i++) {
        nf_flowstate_pod_t *p = &self->pods[i];
        free(p->name);
        free(p->uses);
        free(p->role);
        free(p->host);
        free(p->control);
        for (size_t j = 0; j < p->nbinds; j++) {
            free(p->binds[j].option);
            free(p->binds[j].endpoint);
        }
        free(p->binds);
    }
    free(self->pods);
    free(self->flow);
    free(self->gateway);
    free(self);
    *self_p = NULL;
}

const nf_flowstate_pod_t *
nf_flowstate_find(const nf_flowstate_t *state, const char *name)
{
    for (size_t i = 0; i < state->npods; i++)
        if (!strcmp(state->pods[i].name, name))
            return &state->pods[i];
    return NULL;
}
