/*  nf_segment: one shard's on-disk vector store, a directory of files.

    Owns: the float32 vector rows (dim fixed at creation, page-aligned body,
    versioned checksummed header holding the committed row count), the row
    norms (||x||^2, computed once at append), the document ids with an
    id-to-row map, the per-row payload bytes (opaque to the store) and the
    tombstone bitmap.  The format is described at the top of nf_segment.c.

    Durability: nf_segment_append and nf_segment_delete return only after
    their data and the header are synced; a crash at any instant leaves a
    segment that opens to exactly the acknowledged rows (plus, possibly, the
    batch in flight, whole; a delete in flight may be applied to some of its
    ids).

    One writer per directory (an exclusive file lock); any number of
    read-only openers.  A handle is not thread-safe: the caller serialises
    calls, except that the read accessors (rows pointer, norms, tombstones,
    id, payload) may be used from several threads while nothing writes.
    Pointers returned by the accessors stay valid until the next append or
    delete on the handle.                                                   */
#ifndef NF_SEGMENT_H
#define NF_SEGMENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "nf_limits.h"          /* NF_ID_MAX, NF_DIM_MAX */

typedef enum { NF_METRIC_L2 = 0, NF_METRIC_IP = 1, NF_METRIC_COSINE = 2 } nf_metric_t;

/* "l2" / "ip" / "cosine" <-> enum; nf_metric_parse returns NF_EINVAL on an
   unknown name. */
const char *nf_metric_name(nf_metric_t metric);
int nf_metric_parse(const char *name, nf_metric_t *metric);

typedef enum { NF_MEM_MMAP = 0, NF_MEM_MEMORY = 1 } nf_mempolicy_t;

typedef struct {
    nf_mempolicy_t vectors;     /* mmap (default): page cache, windows released
                                   after scanning; memory: read into RAM at open */
    nf_mempolicy_t payloads;
    bool warmup;                /* touch every page at open */
    bool readonly;              /* no lock taken; append/delete fail */
} nf_segment_opts_t;

typedef struct nf_segment nf_segment_t;

/* One document to store: id (NUL-terminated, 1..NF_ID_MAX bytes), vector of
   the segment's dim, payload bytes (may be NULL with payload_len 0). */
typedef struct {
    const char *id;
    const float *vector;
    const void *payload;
    size_t payload_len;
} nf_doc_t;

/* Create a new empty segment in dir (created if missing; must not already
   hold a segment) and open it for writing.  On success *out is the handle. */
int nf_segment_create(const char *dir, uint32_t dim, nf_metric_t metric, nf_segment_t **out);

/* Open an existing segment.  opts may be NULL (defaults: mmap, no warm-up,
   writable).  Fails with a message naming the file and the problem on wrong
   magic / version, truncated or corrupt files, or NF_ELOCKED when another
   writer holds it.  Trailing uncommitted data from a crash is ignored (and
   trimmed when opened writable). */
int nf_segment_open(const char *dir, const nf_segment_opts_t *opts, nf_segment_t **out);

/* Open dir if it holds a segment, else create one; an existing segment must
   have the same dim and metric (NF_EDIM / NF_EINVAL otherwise). */
int nf_segment_open_or_create(const char *dir, uint32_t dim, nf_metric_t metric,
                              const nf_segment_opts_t *opts, nf_segment_t **out);

/* Close and free; accepts NULL and *self_p == NULL; sets *self_p to NULL. */
void nf_segment_destroy(nf_segment_t **self_p);

/* Append n documents with upsert semantics: a document whose id is already
   live replaces it (the old row is tombstoned); an id repeated within the
   batch keeps only its last occurrence.  The whole batch is validated first
   (id length, vector non-NULL and finite, payload) and refused with
   NF_EINVAL naming the doc index and id.  Durable on return.  On error
   nothing of the batch is visible after reopen (exception: an I/O error
   after the commit point, while tombstoning replaced rows, returns NF_EIO
   with the batch durable; the next writable open finishes the upsert).
   NF_EINVAL on a read-only handle. */
int nf_segment_append(nf_segment_t *self, const nf_doc_t *docs, size_t n);

/* Delete by id; ids not present are skipped.  *deleted (may be NULL) gets
   how many were removed.  Durable on return.  NF_EINVAL on a read-only
   handle or a NULL / empty / too long id (checked before any change). */
int nf_segment_delete(nf_segment_t *self, const char *const *ids, size_t n, size_t *deleted);

/* Row of a live document, or NF_ENOTFOUND.  A read-only handle builds its
   id table on the first call (NF_ECORRUPT if the id files are damaged). */
int nf_segment_get(nf_segment_t *self, const char *id, uint64_t *row);

uint32_t nf_segment_dim(const nf_segment_t *self);
nf_metric_t nf_segment_metric(const nf_segment_t *self);
uint64_t nf_segment_rows(const nf_segment_t *self);     /* committed rows, deleted included */
uint64_t nf_segment_deleted(const nf_segment_t *self);  /* tombstoned rows */
uint64_t nf_segment_count(const nf_segment_t *self);    /* live rows = rows - deleted */
const char *nf_segment_dir(const nf_segment_t *self);

/* --- access for the scan (nf_scan) and for answering results --- */

/* Row-major float32 vectors of rows [row0, row0+n); valid while no write.
   NULL when the range goes past nf_segment_rows(). */
const float *nf_segment_vectors(nf_segment_t *self, uint64_t row0, uint64_t n);

/* ||x||^2 of rows [row0, row0+n) (NULL past the end). */
const float *nf_segment_norms(nf_segment_t *self, uint64_t row0, uint64_t n);

/* Hint that rows [row0, row0+n) were scanned and may leave this process's
   resident memory (madvise MADV_DONTNEED under the mmap policy; no-op under
   memory).  Keeps the scan's resident memory constant as the segment grows. */
void nf_segment_release(nf_segment_t *self, uint64_t row0, uint64_t n);

/* True when row is tombstoned (or row >= nf_segment_rows()). */
bool nf_segment_is_deleted(const nf_segment_t *self, uint64_t row);

/* Tombstone bitmap (bit r of word r/64), covering nf_segment_rows() rows. */
const uint64_t *nf_segment_tombstones(const nf_segment_t *self);

/* Id of a row (NUL-terminated, valid while no write); *len may be NULL.
   NULL for a row past the end or a damaged id record. */
const char *nf_segment_id(nf_segment_t *self, uint64_t row, size_t *len);

/* Payload bytes of a row; *len gets the length (0 when none).  NULL (and
   *len 0) for a row past the end or damaged offsets. */
const void *nf_segment_payload(nf_segment_t *self, uint64_t row, size_t *len);

/* Format version written by this build. */
#define NF_SEGMENT_VERSION 1

/* Sizes of the segment's files, for `nflow segment info`. */
typedef struct {
    const char *name;
    uint64_t bytes;         /* size on disk now (an open writer preallocates) */
    uint64_t used;          /* bytes holding committed data, headers included */
} nf_segment_file_t;

/* How many files nf_segment_files reports. */
#define NF_SEGMENT_NFILES 7

/* Fill files[0 .. min(max, NF_SEGMENT_NFILES)) with each data file's name
   (static string) and sizes; *n (may be NULL) gets how many were filled. */
int nf_segment_files(const nf_segment_t *self, nf_segment_file_t *files, size_t max, size_t *n);

#endif
