/*  nf_segment_impl.h: PRIVATE to the nf_segment module.  Only the
    nf_segment*.c files include it; everything else uses nf_segment.h.

    Holds what the module's files share: the file-kind table, the on-disk
    commit slot with its file table, the handle struct, a few small inline
    helpers (s_ names, file-local in each includer) and the internal
    functions one file defines for another (nf_seg_ names; not part of the
    API, may change at any time).  The on-disk format is described at the
    top of nf_segment.c.

    Split of the module: nf_segment.c opens, creates, closes, reads and
    verifies a segment (and keeps bytes beyond a damaged commit aside);
    nf_segment_write.c grows and commits it, keeps the id -> row table and
    implements append and delete; nf_segment_repair.c re-commits what an
    open kept aside in recovered/; nf_segment_pipe.c runs the sync half of
    pipelined commits on a thread.                                         */
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
#include <xxhash.h>

_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
               "nf_segment's on-disk format is little-endian; add byte swapping for this host");

#define S_PAGE 4096u
#define S_BLOCK (2u << 20)          /* 2 MiB: vectors body alignment and write unit */
#define S_VEC_HDR S_BLOCK           /* vectors.nfv header region (sparse) */
#define S_SLOT_SIZE 2048u
#define S_SLOT1_OFF 2048u
#define S_SMALL_HDR 64u
#define S_CHUNK_LOG2 20u
#define S_CHUNK (1u << S_CHUNK_LOG2)    /* body checksum chunk: 1 MiB */
#define S_TABLE_MAX 64              /* file-table entries in a slot */
#define S_CK_ENTRY 24u              /* checksums.nfc entry: u32 file, u32 0, u64 chunk, u64 hash */
#define S_ROWS_MAX (1ull << 40)
#define S_BYTES_MAX (1ull << 56)

/* File-table index of each file; 8 is reserved for a field schema and
   9..63 for field columns (a later format revision, same version). */
enum { S_VEC, S_NORM, S_IDDAT, S_IDOFF, S_PLDAT, S_PLOFF, S_DEL, S_CK, S_NFILES };
#define S_SCHEMA 8                  /* fields.nfs: the field schema (nf_segment_fields.c) */
#define S_COL0 9                    /* first field column file */
#define S_FEAT_FIELDS 1u            /* incompatible feature: file table has a schema and columns */
#define S_FEAT_KNOWN S_FEAT_FIELDS
#define S_SUM_ROWS 1024u            /* rows per field summary block (a multiple of 64) */
#define S_PIPE_DEPTH NF_SEGMENT_PIPE_DEPTH  /* pipelined commits in flight after a start */

static const struct {
    const char *name, *magic, *what;
} s_kinds[S_NFILES] = {
    [S_VEC] = {"vectors.nfv", "NFLOWSEG", "segment vectors"},
    [S_NORM] = {"norms.nfn", "NFSEGNRM", "norms"},
    [S_IDDAT] = {"ids.dat", "NFSEGIDD", "ids"},
    [S_IDOFF] = {"ids.off", "NFSEGIDO", "id offsets"},
    [S_PLDAT] = {"payload.dat", "NFSEGPLD", "payloads"},
    [S_PLOFF] = {"payload.off", "NFSEGPLO", "payload offsets"},
    [S_DEL] = {"deletes.nfd", "NFSEGDEL", "delete log"},
    [S_CK] = {"checksums.nfc", "NFSEGCKS", "checksums"},
};

/* One file-table entry: committed body bytes, body bytes at the previous
   commit, XXH3-64 of the body's trailing partial chunk (checksums.nfc: of
   its whole body). */
typedef struct {
    uint64_t bytes, prev, tail;
} s_fent_t;

typedef struct {
    char magic[8];                  /*    0 "NFLOWSEG" */
    uint32_t version;               /*    8 NF_SEGMENT_VERSION */
    uint32_t dim;                   /*   12 */
    uint32_t metric;                /*   16 */
    uint32_t nfiles;                /*   20 file-table entries in use (8, or 10..64 with fields) */
    uint64_t seq;                   /*   24 */
    uint64_t rows;                  /*   32 */
    uint64_t deleted;               /*   40 = delete-log entries */
    uint32_t chunk_log2;            /*   48 body checksum chunk = 1 << this */
    uint32_t incompat;              /*   52 features a reader must know (S_FEAT_FIELDS) */
    uint32_t compat;                /*   56 features a reader may ignore (0 today) */
    uint8_t reserved[68];           /*   60 zero */
    s_fent_t file[S_TABLE_MAX];     /*  128 */
    uint8_t pad[376];               /* 1664 zero */
    uint64_t checksum;              /* 2040 XXH3-64 of bytes 0..2039 */
} s_slot_t;
_Static_assert(sizeof(s_slot_t) == S_SLOT_SIZE, "commit slot is 2048 bytes");
_Static_assert(offsetof(s_slot_t, file) == 128 && offsetof(s_slot_t, checksum) == 2040,
               "slot layout");

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
    uint64_t seq, rows, deleted;
    uint32_t nfiles;                /* file-table entries in use */
    uint64_t bytes[S_TABLE_MAX];    /* committed body bytes per file */
    uint64_t prev[S_TABLE_MAX];     /* body bytes at the commit before */
    uint64_t tail[S_TABLE_MAX];     /* tail hashes of the current commit */
    XXH3_state_t *st[S_TABLE_MAX];  /* writer: hash state of each tail chunk */
    XXH3_state_t *st2[S_TABLE_MAX]; /* writer: scratch for a commit */
    uint64_t *ck[S_TABLE_MAX];      /* hashes of each file's full chunks */
    uint64_t nck[S_TABLE_MAX];
    s_file_t f[S_TABLE_MAX];
    char *fname[S_TABLE_MAX];       /* names of the files from S_SCHEMA on */
    struct nf_seg_field *fields;    /* the schema, nfields entries (nf_segment_fields.c) */
    size_t nfields;
    int lock_fd;
    uint64_t *tomb;                 /* deleted-row bitmap (from the delete log) */
    uint64_t tomb_cap;              /* words */
    char *notice;                   /* what the open found worth saying, or NULL */
    float *mvec, *mnorm;    /* memory policy: vectors and norms in RAM */
    uint64_t mvec_cap;      /* rows */
    char *mpl;              /* memory policy: payload bytes and offsets */
    uint64_t *mploff;
    uint64_t mpl_cap, mploff_cap;
    s_entry_t *tab;         /* id -> row, open addressing, linear probing */
    uint64_t tab_mask, tab_used;
    bool tab_built;
    struct nf_seg_inflight *inflight[S_PIPE_DEPTH];    /* pipelined commits not
                                           yet known durable, oldest first (a
                                           failed one stays: the handle is
                                           ahead of the disk for good) */
    unsigned ninflight;
    struct nf_seg_syncer *syncer;       /* the thread syncing them, or NULL */
};

/* ------------------------------------------------- inline helpers */

/* Name, magic and description of file k of the handle. */
static inline const char *
s_kname(const nf_segment_t *s, int k)
{
    return k < S_NFILES ? s_kinds[k].name : s->fname[k] ? s->fname[k] : "fields.nfs";
}

static inline const char *
s_kmagic(int k)
{
    return k < S_NFILES ? s_kinds[k].magic : k == S_SCHEMA ? "NFSEGFLD" : "NFSEGCOL";
}

static inline const char *
s_kwhat(int k)
{
    return k < S_NFILES ? s_kinds[k].what : k == S_SCHEMA ? "field schema" : "field column";
}

/* Record an error about file `kind` of segment s ("dir/name: msg") and
   return code. */
static inline int s_serr(const nf_segment_t *s, int kind, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static inline int
s_serr(const nf_segment_t *s, int kind, int code, const char *fmt, ...)
{
    char msg[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return nf_error_set(code, "%s/%s: %s", s->dir, s_kname(s, kind), msg);
}

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

/* Header bytes before file `kind`'s body. */
static inline uint64_t
s_hdr(int kind)
{
    return kind == S_VEC ? S_VEC_HDR : S_SMALL_HDR;
}

static inline const uint64_t *
s_off(const nf_segment_t *s, int kind)
{
    if (kind == S_PLOFF && s->opts.payloads == NF_MEM_MEMORY)
        return s->mploff;
    return (const uint64_t *) (s->f[kind].map + S_SMALL_HDR);
}

/* XXH3-64 of a slot's first 2040 bytes. */
static inline uint64_t
s_slot_hash(const s_slot_t *slot)
{
    return XXH3_64bits(slot, offsetof(s_slot_t, checksum));
}

/* ------------------------------------- defined in nf_segment.c */

/* Start/end of a row's record in a .dat body (offkind S_IDOFF or S_PLOFF);
   false when the offsets are corrupt. */
bool nf_seg_extent(const nf_segment_t *s, int offkind, uint64_t row, uint64_t *start,
                   uint64_t *end);

/* Bytes read (short only at end of file) or -1. */
ssize_t nf_seg_pread_all(int fd, void *buf, size_t len, uint64_t off);

/* "dir/name" into buf, or NULL when too long. */
const char *nf_seg_path(const char *dir, const char *name, char *buf, size_t size);

/* fsync a directory (its entries); errors ignored. */
void nf_seg_sync_dir(const char *dir);

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

/* Grow the deleted-row bitmap to cover `rows` rows (zero-filled). */
int nf_seg_grow_tomb(nf_segment_t *s, uint64_t rows);

typedef struct nf_seg_inflight nf_seg_inflight_t;
typedef struct nf_seg_syncer nf_seg_syncer_t;

/* What one commit appends: per file, bytes to add at its committed end;
   nfiles > the handle's: the commit also adds files (their fds open). */
typedef struct {
    const void *buf[S_TABLE_MAX];
    uint64_t len[S_TABLE_MAX];
    uint32_t nfiles;
} nf_seg_batch_t;

/* Append the batch to the files, extend the chunk checksums, sync, and
   write slot seq+1 with rows/deleted into the other slot and sync it.  The
   handle's byte counts and hash states move only on success.  With b NULL
   writes only a slot for the current state (create). */
int nf_seg_commit(nf_segment_t *s, const nf_seg_batch_t *b, uint64_t rows, uint64_t deleted);

/* A commit between its halves: the slot to write once the files written
   (wrote) are synced, the bytes vectors and norms had before (s_refold);
   when pipelined (nf_seg_commit_start), whether the syncer is done with
   it and what it found. */
struct nf_seg_inflight {
    s_slot_t slot;
    bool wrote[S_TABLE_MAX];
    uint64_t from[S_NORM + 1];
    const nf_segment_t *s;
    bool done;              /* synced (or failed): set by the syncer, under its lock */
    struct nf_seg_inflight *next;   /* the syncer's queue */
    int rc;                 /* nf_seg_commit_sync: 0 or its error, with msg */
    char msg[1024];
};

/* nf_seg_commit in its halves (nf_segment_write.c).  write: hash the new
   bytes, append them to the files, start their writeback and fill c (the
   handle does not move); sync: fdatasync the files written, write the slot
   and sync it (touches only the files: safe on another thread), which is
   sync_data of c alone then sync_slot; sync_data: fdatasync once every
   file that a commit of the queue first..last (->next) wrote; done: move
   the handle to c's commit; refold: once c is durable, the blocks it
   completed, whole. */
int nf_seg_commit_write(nf_segment_t *s, const nf_seg_batch_t *b, uint64_t rows,
                        uint64_t deleted, nf_seg_inflight_t *c);
int nf_seg_commit_sync(const nf_seg_inflight_t *c);
int nf_seg_commit_sync_data(const nf_seg_inflight_t *first, const nf_seg_inflight_t *last);
int nf_seg_commit_sync_slot(const nf_seg_inflight_t *c);
void nf_seg_commit_done(nf_segment_t *s, const nf_seg_inflight_t *c);
void nf_seg_commit_refold(const nf_segment_t *s, const nf_seg_inflight_t *c);

/* Append/upsert n docs in one commit (nf_segment_append_fields); pipelined:
   the commit's sync half left to the syncer (nf_seg_commit_start). */
int nf_seg_append(nf_segment_t *s, const nf_doc_t *docs, const nf_fields_t *fields, size_t n,
                  bool pipelined);

/* Vectors under the mmap policy: fault in the 2 MiB block at file offset b
   (block-aligned, within the file) as one clean folio, through a mapping
   of its own (the handle's may move meanwhile): the syncer does it ahead
   of the writer, taking the zeroing of new page-cache memory off the
   writer's thread (s_prefault in nf_segment_write.c).  A hint. */
void nf_seg_prefault_block(const nf_segment_t *s, uint64_t b);

/* -------------------------------- defined in nf_segment_pipe.c */

/* nf_seg_commit with the sync half posted to the handle's syncer thread:
   write, wait for the commit before (nf_seg_settle), move the handle, post
   the sync.  0 once the commit before is durable. */
int nf_seg_commit_start(nf_segment_t *s, const nf_seg_batch_t *b, uint64_t rows,
                        uint64_t deleted);

/* Wait for the pipelined commit in flight, if any: 0 once it is durable;
   its error when it failed (every later call too: the handle is ahead of
   the disk; destroy frees it). */
int nf_seg_settle(nf_segment_t *s);

/* Stop the handle's syncer thread (after nf_seg_settle), if it runs. */
void nf_seg_syncer_stop(nf_segment_t *s);

/* Allocate the writer's hash states (st, st2). */
int nf_seg_states(nf_segment_t *s);

/* Check every id record and build the id -> row table over live rows;
   with repair (writer) an id live twice (only possible after damage) has
   its earlier row deleted through the delete log. */
int nf_seg_build(nf_segment_t *s, bool repair);

/* Table entry of a live id (len bytes, hash h = s_fnv1a of it), or NULL. */
const s_entry_t *nf_seg_tab_find(const nf_segment_t *s, const char *id, size_t len,
                                 uint64_t h);

/* ------------------------------- defined in nf_segment_fields.c */

/* Open: read the schema (file S_SCHEMA, committed bytes) and name the
   column files of the table. */
int nf_seg_fields_load(nf_segment_t *s);

/* Open, after the columns are mapped: check their sizes against the rows,
   read the dictionaries, build the summaries. */
int nf_seg_fields_open(nf_segment_t *s);

/* Bytes per row of file k when it is a fixed-width column, else 0. */
uint64_t nf_seg_col_width(const nf_segment_t *s, int k);

/* Memory policy of file k (columns: their field's). */
bool nf_seg_col_memory(const nf_segment_t *s, int k);

/* Free the field state of the handle. */
void nf_seg_fields_free(nf_segment_t *s);

/* Stage the field columns of m kept docs into b (buffers owned by *staged,
   freed with nf_seg_fields_unstage); validation of values included. */
typedef struct nf_seg_staged nf_seg_staged_t;
int nf_seg_fields_stage(nf_segment_t *s, const nf_doc_t *docs, const nf_fields_t *fields,
                        size_t n, const unsigned char *keep, uint64_t m, nf_seg_batch_t *b,
                        nf_seg_staged_t **staged);
/* After the commit: update dictionaries and summaries. */
void nf_seg_fields_commit(nf_segment_t *s, nf_seg_staged_t *staged, uint64_t row0, uint64_t m);
void nf_seg_fields_unstage(nf_seg_staged_t **staged);
/* The commit failed: forget the keywords the staging added. */
void nf_seg_fields_abort(nf_segment_t *s, nf_seg_staged_t *staged);
/* Drop the mmap-policy column pages of rows [row0, row0+n). */
void nf_seg_fields_release(nf_segment_t *s, uint64_t row0, uint64_t n);
/* Touch the memory-policy columns (and all with opts.warmup). */
void nf_seg_fields_warm(nf_segment_t *s);

/* Repair (nf_segment_repair.c): the field bytes a damaged commit left
   aside.  d/n: the kept bytes of each file-table entry (columns from
   S_COL0 on), bb: each file's body bytes at the base commit (bnfiles
   entries, brows rows), upto: how far from the body's start a checksum
   confirms the file.  The fields of the base commit (a prefix of the
   handle's schema) are checked; fields added since get null. */
typedef struct nf_seg_fkept nf_seg_fkept_t;
int nf_seg_fields_kept(const nf_segment_t *s, uint32_t bnfiles, uint64_t brows,
                       const unsigned char *const *d, const uint64_t *n, const uint64_t *bb,
                       const uint64_t *upto, nf_seg_fkept_t **out);
/* Kept row i (row brows + i; call in row order): check its field bytes
   (whole, confirmed by a checksum, valid values and dictionary ids,
   keyword[] sets in order) and fill v (room for every field) with its
   non-null values, *nv of them, whose strings stay valid until
   nf_seg_fields_kept_free; false with *why saying what is wrong. */
bool nf_seg_fields_kept_row(nf_seg_fkept_t *fk, uint64_t i, nf_fval_t *v, size_t *nv,
                            const char **why);
void nf_seg_fields_kept_free(nf_seg_fkept_t **fk);

#endif
