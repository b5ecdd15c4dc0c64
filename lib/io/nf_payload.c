/*  nf_payload: nflow.Payload encode / decode over protobuf-c.            */
#include "nf_payload.h"

#include "nf_error.h"
#include "nflow.pb-c.h"

#include <stdlib.h>
#include <string.h>


int
nf_payload_encode(const char *text, const nf_tag_t *tags, size_t ntags, uint8_t **buf,
                  size_t *len)
{
    *buf = NULL;
    *len = 0;
    if ((!text || !*text) && ntags == 0)
        return 0;
    Nflow__Payload msg = NFLOW__PAYLOAD__INIT;
    Nflow__Payload__TagsEntry *entries = NULL, **ptrs = NULL;
    if (text)
        msg.text = (char *) text;
    if (ntags) {
        entries = calloc(ntags, sizeof *entries);
        ptrs = calloc(ntags, sizeof *ptrs);
        if (!entries || !ptrs) {
            free(entries);
            free(ptrs);
            return nf_error_set(NF_ENOMEM, "payload: out of memory for %zu tags", ntags);
        }
        for (size_t i = 0; i < ntags; i++) {
            nflow__payload__tags_entry__init(&entries[i]);
            entries[i].key = (char *) tags[i].key;
            entries[i].value = (char *) tags[i].value;
            ptrs[i] = &entries[i];
        }
        msg.n_tags = ntags;
        msg.tags = ptrs;
    }
    size_t size = nflow__payload__get_packed_size(&msg);
    uint8_t *out = malloc(size ? size : 1);
    int rc = 0;
    if (!out) {
        rc = nf_error_set(NF_ENOMEM, "payload: out of memory for %zu bytes", size);
    } else {
        *len = nflow__payload__pack(&msg, out);
        *buf = out;
    }
    free(entries);
    free(ptrs);
    return rc;
}

int
nf_payload_decode(const void *bytes, size_t len, nf_payload_t *out)
{
    memset(out, 0, sizeof *out);
    out->text = "";
    if (!bytes || len == 0)
        return 0;
    Nflow__Payload *msg = nflow__payload__unpack(NULL, len, bytes);
    if (!msg)
        return nf_error_set(NF_ECORRUPT, "payload: malformed nflow.Payload (%zu bytes)", len);
    if (msg->n_tags) {
        out->tags = calloc(msg->n_tags, sizeof *out->tags);
        if (!out->tags) {
            nflow__payload__free_unpacked(msg, NULL);
            return nf_error_set(NF_ENOMEM, "payload: out of memory for %zu tags", msg->n_tags);
        }
        for (size_t i = 0; i < msg->n_tags; i++) {
            out->tags[i].key = msg->tags[i]->key ? msg->tags[i]->key : "";
            out->tags[i].value = msg->tags[i]->value ? msg->tags[i]->value : "";
        }
        out->ntags = msg->n_tags;
    }
    out->text = msg->text ? msg->text : "";
    out->msg_ = msg;
    return 0;
}

void
nf_payload_clear(nf_payload_t *payload)
{
    if (!payload)
        return;
    if (payload->msg_)
        nflow__payload__free_unpacked(payload->msg_, NULL);
    free(payload->tags);
    memset(payload, 0, sizeof *payload);
    payload->text = "";
}
