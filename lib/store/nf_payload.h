/*  nf_payload: the payload codec of the segment store.  The bytes a
    segment stores per row (opaque to nf_segment) are this module's own
    small binary encoding of {text, tags}, defined by the segment format
    version (nf_segment.h NF_SEGMENT_VERSION), so a change of the wire
    schema (nflow.Payload in proto/nflow.proto) can never change what an
    old segment means.  Also defines nf_tag_t, the key/value pair shared by
    the document reader (nf_vecio) and the results output (nf_results).

    Encoding (segment format 2; all integers little-endian):
        u32 text bytes, text (no NUL)
        u32 tag count (<= NF_TAGS_MAX)
        per tag: u16 key bytes, key, u32 value bytes, value
    and nothing after.  An empty payload (no text, no tags) is 0 bytes.
    Decoding checks every length against the bytes that remain and the tag
    count against nf_limits.h before allocating anything.                 */
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
   tags) *buf is NULL and *len 0.  Keys and values must be non-NULL.
   NF_EINVAL for more than NF_TAGS_MAX tags, a key over 65535 bytes or a
   text or value over 4 GiB - 1. */
int nf_payload_encode(const char *text, const nf_tag_t *tags, size_t ntags,
                      uint8_t **buf, size_t *len);

/* A tag given by counted strings (need not be NUL-terminated). */
typedef struct {
    const char *key;
    size_t key_len;
    const char *value;
    size_t value_len;
} nf_tagspan_t;

/* Bytes nf_payload_write_n writes for this text and these tags (0 when
   there is nothing to store), or 0 with NF_EINVAL set through *rc for more
   than NF_TAGS_MAX tags or a key over 65535 bytes. */
size_t nf_payload_size_n(size_t text_len, const nf_tagspan_t *tags, size_t ntags, int *rc);

/* The encoding of nf_payload_encode from counted strings, written into
   out (nf_payload_size_n bytes, the caller's): no allocation, for writers
   that encode many payloads into one buffer (the indexer's batches). */
void nf_payload_write_n(uint8_t *out, const char *text, size_t text_len,
                        const nf_tagspan_t *tags, size_t ntags);

/* A decoded payload.  text is "" when none; tags has ntags entries. */
typedef struct {
    const char *text;
    nf_tag_t *tags;
    size_t ntags;
    void *msg_;             /* private: one block holding the strings */
} nf_payload_t;

/* Decode len bytes (len 0 / bytes NULL = empty payload) into *out, which the
   caller releases with nf_payload_clear.  NF_ECORRUPT on malformed bytes
   (saying what and at which byte). */
int nf_payload_decode(const void *bytes, size_t len, nf_payload_t *out);

/* Free what nf_payload_decode allocated; accepts a zeroed or cleared struct. */
void nf_payload_clear(nf_payload_t *payload);

#endif
