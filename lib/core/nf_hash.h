/*  nf_hash: FNV-1a 64, the one hash of short keys in nflow: the id -> row
    table of a segment, the shard of a document id, the encoder's feature
    coordinates.  Its values are part of the protocol (a non-C router or
    encoder must compute the same), so it never changes.  Data checksums
    use XXH3 from libxxhash instead.                                       */
#ifndef NF_HASH_H
#define NF_HASH_H

#include <stddef.h>
#include <stdint.h>

#define NF_FNV_OFFSET 14695981039346656037ull
#define NF_FNV_PRIME 1099511628211ull

/* FNV-1a 64 of len bytes, continuing from h (start with NF_FNV_OFFSET). */
static inline uint64_t
nf_fnv1a64(uint64_t h, const void *data, size_t len)
{
    const unsigned char *p = data;
    for (size_t i = 0; i < len; i++) {
        h ^= p[i];
        h *= NF_FNV_PRIME;
    }
    return h;
}

#endif
