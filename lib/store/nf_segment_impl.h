/*  nf_segment_impl.h: PRIVATE to the nf_segment module.  Only nf_segment.c
    and nf_segment_write.c include it; everything else uses nf_segment.h.

    Holds what the module's two files share: the file-kind table, the
    on-disk header slot, the handle struct, a few small inline helpers
    (s_ names, file-local in each includer) and the internal functions one
    file defines for the other (nf_seg_ names; not part of the API, may
    change at any time).  The on-disk format is described at the top of
    nf_segment.c.

    Split of the module: nf_segment.c opens, creates, closes and reads a
    segment; nf_segment_write.c grows and commits it, keeps the id -> row
    table and implements append and delete.                                */
#ifndef NF_SEGMENT_IMPL_H
#define NF_SEGMENT_IMPL_H

#include "nf_segment.h"
#include "nf_error.h"
#include "nf_hash.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
               "nf_segment's on-disk format is little-endian; add byte swapping for this host");

#define S_PAGE 4096u
#define S_SLOT1_OFF 2048u
#define S_SMALL_HDR 64u
#define S_ROWS_MAX (1ull << 40)
#define S_BYTES_MAX (1ull << 56)

enum { S_VEC, S_NORM, S_IDDAT, S_IDOFF, S_PLDAT, S_PLOFF, S_TOMB, S_NFILES };

static const struct {
    const char *name, *magic, *what;
} s_kinds[S_NFILES] = {
    [S_VEC] = {"vectors.nfv", "NFLOWSEG", "segment vectors"},
    [S_NORM] = {"norms.nfn", "NFSEGNRM", "norms"},
    [S_IDDAT] = {"ids.dat", "NFSEGIDD", "ids"},
    [S_IDOFF] = {"ids.off", "NFSEGIDO", "id offsets"},
    [S_PLDAT] = {"payload.dat", "NFSEGPLD", "payloads"},
    [S_PLOFF] = {"payload.off", "NFSEGPLO", "payload offsets"},
    [S_TOMB] = {"tombstones.nft", "NFSEGTMB", "tombstones"},
};

typedef struct {
    char magic[8];
    uint32_t version, dim, metric, flags;
    uint64_t seq, rows, deleted, ids_bytes, pl_bytes;
    uint8_t reserved[56];
    uint64_t checksum;
} s_slot_t;
_Static_assert(sizeof(s_slot_t) == 128, "header slot is 128 bytes");

typedef struct {
    int fd;
    char *map;              /* MAP_SHARED from offset 0, or NULL */
    size_t map_len;
    uint64_t cap;           /* file size as this handle keeps it */
} s_file_t;

typedef struct {
    uint64_t hash;          /* FNV-1a 64 of the id */
    uint64_t row1;          /* row + 1; 0 = empty slot */
} s_entry_t;

struct nf_segment {
    char *dir;
    nf_segment_opts_t opts;
    uint32_t dim;
    nf_metric_t metric;
    uint64_t seq, rows, deleted, ids_bytes, pl_bytes;
    s_file_t f[S_NFILES];
    int lock_fd;
    float *mvec, *mnorm;    /* memory policy: vectors and norms in RAM */
    uint64_t mvec_cap;      /* rows */
    char *mpl;              /* memory policy: payload bytes and offsets */
    uint64_t *mploff;
    uint64_t mpl_cap, mploff_cap;
    s_entry_t *tab;         /* id -> row, open addressing, linear probing */
    uint64_t tab_mask, tab_used;
    bool tab_built;
};

/* ------------------------------------------------- inline helpers */

/* Record an error about file `kind` of segment dir ("dir/name: msg") and
   return code. */
static inline int s_ferr(const char *dir, int kind, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static inline int
s_ferr(const char *dir, int kind, int code, const char *fmt, ...)
{
    char msg[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return nf_error_set(code, "%s/%s: %s", dir, s_kinds[kind].name, msg);
}

static inline uint64_t
s_fnv1a(const void *data, size_t len)
{
    return nf_fnv1a64(NF_FNV_OFFSET, data, len);
}

static inline uint64_t
s_words(uint64_t rows)
{
    return (rows + 63) / 64;
}

static inline uint64_t *
s_tomb_words(const nf_segment_t *s)
{
    return (uint64_t *) (s->f[S_TOMB].map + S_SMALL_HDR);
}

static inline const uint64_t *
s_off(const nf_segment_t *s, int kind)
{
    if (kind == S_PLOFF && s->opts.payloads == NF_MEM_MEMORY)
        return s->mploff;
    return (const uint64_t *) (s->f[kind].map + S_SMALL_HDR);
}

/* ------------------------------------- defined in nf_segment.c */

/* Start/end of a row's record in a .dat body (offkind S_IDOFF or S_PLOFF);
   false when the offsets are corrupt. */
bool nf_seg_extent(const nf_segment_t *s, int offkind, uint64_t row, uint64_t *start,
                   uint64_t *end);

/* -------------------------------- defined in nf_segment_write.c */

/* pwrite all of buf at off, retrying short writes; 0 or -1 with errno. */
int nf_seg_pwrite_all(int fd, const void *buf, size_t len, uint64_t off);

/* True when file `kind` is mapped under the handle's memory policy. */
bool nf_seg_mapped(const nf_segment_t *s, int kind);

/* Map (or remap) file `kind` to len bytes. */
int nf_seg_map(nf_segment_t *s, int kind, uint64_t len);

/* Grow the memory-policy RAM copies to take `rows` rows and `plb` payload
   bytes (no-op under mmap). */
int nf_seg_grow_ram(nf_segment_t *s, uint64_t rows, uint64_t plb);

/* Write header seq+1 with these counts into the other slot and sync it. */
int nf_seg_commit(nf_segment_t *s, uint64_t rows, uint64_t deleted, uint64_t idb,
                  uint64_t plb);

/* Check every id record and build the id -> row table over live rows;
   with repair, tombstone (on disk) the earlier row of an id live twice. */
int nf_seg_build(nf_segment_t *s, bool repair);

/* Table entry of a live id (len bytes, hash h = s_fnv1a of it), or NULL. */
const s_entry_t *nf_seg_tab_find(const nf_segment_t *s, const char *id, size_t len,
                                 uint64_t h);

#endif
