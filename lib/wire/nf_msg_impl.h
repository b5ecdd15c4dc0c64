/*  Inside lib/wire: the walk over a frame's bytes that nf_msg.c runs
    before unpacking, and the protobuf field reader both use
    (nf_msg_check.c). */
#ifndef NF_MSG_IMPL_H
#define NF_MSG_IMPL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* What a walk saw in the whole frame: totals counted across nested
   messages, and the header's first two fields. */
typedef struct {
    uint64_t matches;           /* match documents */
    uint64_t tags;              /* tags of every document */
    uint64_t keywords;          /* keyword ends of every typed column */
    uint64_t request_id;        /* field 2 of the header, when seen */
    uint64_t version;           /* field 1 of the header, when seen */
} nf_msg_scan_t;

#define NF_MSG_WALK_HEADER (-1)

/* Count the repeated fields of a header frame (body_case
   NF_MSG_WALK_HEADER) or of a body frame of kind body_case against their
   limits before anything is unpacked: NF_EPROTO naming the limit and the
   count.  Bytes that are not protobuf are left to the unpacker. */
int nf_msg_walk(const void *data, size_t size, int body_case, nf_msg_scan_t *scan);

/* The next field of [*p, end): its number (the key's, not truncated), wire
   type and value: wire 0 the varint in *v; wire 1 and 5 their 8 or 4
   bytes and wire 2 its bytes at *body, *v long.  *p moves past it.  False
   at bytes that do not parse (or a wire type protobuf 3 does not use). */
bool nf_msg_next_field(const uint8_t **p, const uint8_t *end, uint64_t *field, uint32_t *wire,
                       uint64_t *v, const uint8_t **body);

#endif
