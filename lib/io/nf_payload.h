/*  nf_payload: the payload codec.  The bytes a segment stores per row
    (opaque to nf_segment) are the protobuf message nflow.Payload {text,
    tags} (proto/nflow.proto); this module encodes and decodes them, and
    defines nf_tag_t, the key/value pair shared by the document reader
    (nf_vecio) and the results output (nf_results).                        */
#ifndef NF_PAYLOAD_H
#define NF_PAYLOAD_H

#include <stddef.h>
#include <stdint.h>

/* One tag: both strings NUL-terminated. */
typedef struct {
    const char *key;
    const char *value;
} nf_tag_t;

/* Encode text (may be NULL) and ntags tags into *buf (malloc'd, caller
   frees) of *len bytes.  When there is nothing to store (no text or "", no
   tags) *buf is NULL and *len 0.  Keys and values must be non-NULL. */
int nf_payload_encode(const char *text, const nf_tag_t *tags, size_t ntags,
                      uint8_t **buf, size_t *len);

/* A decoded payload.  text is "" when none; tags has ntags entries. */
typedef struct {
    const char *text;
    nf_tag_t *tags;
    size_t ntags;
    void *msg_;             /* private: the unpacked message */
} nf_payload_t;

/* Decode len bytes (len 0 / bytes NULL = empty payload) into *out, which the
   caller releases with nf_payload_clear.  NF_ECORRUPT on malformed bytes. */
int nf_payload_decode(const void *bytes, size_t len, nf_payload_t *out);

/* Free what nf_payload_decode allocated; accepts a zeroed or cleared struct. */
void nf_payload_clear(nf_payload_t *payload);

#endif
