/*  nf_segment: one shard's on-disk vector store, a directory of files.

    Owns: the float32 vector rows (dim fixed at creation, 2 MiB-aligned
    body, two checksummed commit slots with a table of every file's
    committed bytes), the row norms (||x||^2, computed once at append), the
    document ids with an id-to-row map, the per-row payload bytes (encoded
    by nf_payload.h, opaque to this module), the delete log (replayed into a
    bitmap at open), the chunk checksums of every file's body, and typed
    field columns with their schema, dictionaries and block summaries
    (nf_segment_fields.c); compaction (nf_segment_compact.c).  The format
    (version 2) is described at the top of nf_segment.c.

    Durability: nf_segment_append and nf_segment_delete return only after
    their data and the commit slot are synced; a crash at any instant leaves
    a segment that opens to exactly the acknowledged operations (plus,
    possibly, the one in flight, whole: an upsert and the delete of the row
    it replaces are one commit, as are all ids of one delete).  Nothing is
    ever written in place and a damaged commit is reported, never silently
    dropped (nf_segment_notice, recovered/, nf_segment_repair).

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

#include "nf_limits.h"          /* NF_ID_MAX, NF_DIM_MAX, NF_FIELD_NAME_MAX */

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
    bool readonly;              /* no lock taken; append/delete fail; nothing on
                                   disk changes */
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

/* Create a new empty segment in dir (created if missing; must be empty:
   NF_EEXIST when it holds a segment or other files, NF_ECORRUPT naming the
   file when it holds part of a segment) and open it for writing.  On
   success *out is the handle. */
int nf_segment_create(const char *dir, uint32_t dim, nf_metric_t metric, nf_segment_t **out);

/* Open an existing segment.  opts may be NULL (defaults: mmap, no warm-up,
   writable).  Fails with a message naming the file and the problem on wrong
   magic, a missing file (NF_ECORRUPT naming it; NF_ENOTFOUND when the
   directory holds no segment file, or only the header-only files of an
   interrupted create), truncated or corrupt files, a
   chunk written by the last commit failing its checksum (NF_ECORRUPT naming
   file, chunk and rows), another format version (NF_EVERSION naming the
   version found and the one spoken), or NF_ELOCKED when another writer
   holds it.  Trailing uncommitted data from a crash is ignored (and
   trimmed when opened writable).  When a commit slot failed its check the
   open succeeds on the other one and says so in nf_segment_notice; a
   writable open then first copies the bytes beyond that commit into
   DIR/recovered/ (see nf_segment_repair). */
int nf_segment_open(const char *dir, const nf_segment_opts_t *opts, nf_segment_t **out);

/* Open dir if it holds a segment, else create one; an existing segment must
   have the same dim and metric (NF_EDIM / NF_EINVAL otherwise). */
int nf_segment_open_or_create(const char *dir, uint32_t dim, nf_metric_t metric,
                              const nf_segment_opts_t *opts, nf_segment_t **out);

/* Close and free; accepts NULL and *self_p == NULL; sets *self_p to NULL. */
void nf_segment_destroy(nf_segment_t **self_p);

/* Append n documents with upsert semantics: a document whose id is already
   live replaces it (the old row goes to the delete log in the same
   commit); an id repeated within the batch keeps only its last occurrence.
   The whole batch is validated first (id length, vector non-NULL and
   finite, payload) and refused with NF_EINVAL naming the doc index and id.
   Durable on return.  On error nothing of the batch is visible after
   reopen.  NF_EINVAL on a read-only handle. */
int nf_segment_append(nf_segment_t *self, const nf_doc_t *docs, size_t n);

/* ------------------------------------------------------------ fields

   Typed fields (columns: nf_segment_fields.c; types, definitions and
   datetimes: nf_field.c): a schema committed with the segment and one
   column per field, appended with the rows in the same commit, so they
   have the vectors' crash safety.  A missing value is null.  Values:
     int       64-bit signed (INT64_MIN is the null mark, refused as a value)
     float     64-bit, finite
     bool
     keyword   a string (1..NF_KEYWORD_MAX bytes) compared as a whole,
               stored as an id into the field's dictionary
     keyword[] a set of keywords (0..NF_KEYWORDS_MAX per document)
     datetime  RFC 3339 in ("2001-02-03T04:05:06.789Z", offsets, or a bare
               date), stored as microseconds since 1970 UTC
   Each column keeps per-block (NF_SUMMARY_ROWS rows) summaries: minimum and
   maximum, null count and a 64-bit keyword presence mask, so a scan with a
   filter skips blocks that cannot match without reading them. */

typedef enum {
    NF_FIELD_NULL = 0,      /* (an nf_fval_t only: the value is null) */
    NF_FIELD_INT,
    NF_FIELD_FLOAT,
    NF_FIELD_BOOL,
    NF_FIELD_KEYWORD,
    NF_FIELD_KEYWORDS,      /* keyword[] */
    NF_FIELD_DATETIME,
} nf_ftype_t;

typedef struct {
    char name[NF_FIELD_NAME_MAX + 1];
    nf_ftype_t type;
    nf_mempolicy_t policy;      /* mmap: page cache, released after a scan;
                                   memory: kept resident (touched at open) */
} nf_field_def_t;

/* "int" "float" "bool" "keyword" "keyword[]" "datetime" <-> type;
   nf_field_type_parse: NF_EINVAL on anything else. */
const char *nf_field_type_name(nf_ftype_t type);
int nf_field_type_parse(const char *name, nf_ftype_t *type);

/* Parse "NAME:TYPE" or "NAME:TYPE:mmap|memory" (the CLI's --field and the
   flow file's fields) into *def; NF_EINVAL saying what is wrong.  A name is
   [A-Za-z_][A-Za-z0-9_]*, at most NF_FIELD_NAME_MAX bytes, and not a word of
   the filter language (and, or, not, in, is, null, contains, any, all,
   true, false). */
int nf_field_def_parse(const char *spec, nf_field_def_t *def);
int nf_field_name_check(const char *name, size_t len);

/* Parse a comma-separated list of nf_field_def_parse specs ("year:int,
   genre:keyword"; spaces around items allowed; "" = no field) into
   defs[0..max), *n of them; NF_EINVAL naming the bad item, a name given
   twice or more than max fields. */
int nf_field_defs_parse(const char *list, nf_field_def_t *defs, size_t max, size_t *n);

/* RFC 3339 date-time (or YYYY-MM-DD) of len bytes -> microseconds since
   1970-01-01T00:00:00Z; NF_EINVAL when malformed.  Format back as
   "YYYY-MM-DDTHH:MM:SS[.ffffff]Z". */
int nf_datetime_parse(const char *text, size_t len, int64_t *us);
void nf_datetime_format(int64_t us, char *buf, size_t size);

/* One field value of one document.  type says which member holds it
   (NF_FIELD_NULL: null).  Accepted for a field of type T: a value of type
   T; an int for a float field; a keyword (RFC 3339 text) or an int
   (microseconds) for a datetime; a keyword for a keyword[] (a set of
   one).  Anything else rejects the document, naming it and the field. */
typedef struct {
    const char *name;
    nf_ftype_t type;
    union {
        int64_t i;          /* int, datetime (microseconds) */
        double f;
        bool b;
        const char *s;      /* keyword (NUL-terminated) */
        struct {
            const char *const *v;
            size_t n;
        } set;              /* keyword[] */
    } v;
} nf_fval_t;

/* The field values of one document (any order; unnamed fields are null). */
typedef struct {
    const nf_fval_t *v;
    size_t n;
} nf_fields_t;

/* Make the segment's schema hold defs: a field of the segment must be
   declared again with the same type (NF_EINVAL naming it when it is
   missing from defs -- fields cannot be removed -- or declared with another
   type or policy); fields not yet in the segment are added, in one commit,
   with null for every existing row.  At most NF_FIELDS_MAX fields.
   Writable handles only. */
int nf_segment_set_schema(nf_segment_t *self, const nf_field_def_t *defs, size_t n);

/* nf_segment_append with field values: fields[i] (fields may be NULL: all
   null) belongs to docs[i].  A value of the wrong type, an unknown field
   name, a field given twice, a keyword too long or a set too large
   rejects the batch with NF_EINVAL naming the document index, its id and
   the field. */
int nf_segment_append_fields(nf_segment_t *self, const nf_doc_t *docs,
                             const nf_fields_t *fields, size_t n);

/* Pipelined append, for a writer that has the next batch ready (nflow
   segment build): nf_segment_append_fields, except that it returns once
   the batch is in the files and its commit is under way, NOT durable: a
   thread of the handle syncs it and writes its commit slot while the
   caller goes on (the disk's flush then overlaps the next batches' work).
   On return every batch started NF_SEGMENT_PIPE_DEPTH or more calls
   before is durable: at most that many are in flight, this one and the
   ones just before (several, so a slower batch on either side does not
   stall the other, and a queue of them shares one round of data syncs);
   or the error of the first that failed.  Commits stay in order.  Any other write, and
   nf_segment_destroy, wait for all of them first.  docs and fields may be
   reused on return.  The handle shows the batches' rows at once; do not
   acknowledge them before a later call or nf_segment_append_wait says they
   are durable.  After a failed commit every write on the handle fails with
   its error: destroy it and open the segment again (the last durable
   commit is there, nothing of the failed batch or the ones after it). */
int nf_segment_append_start(nf_segment_t *self, const nf_doc_t *docs,
                            const nf_fields_t *fields, size_t n);
#define NF_SEGMENT_PIPE_DEPTH 4     /* batches left in flight when a start returns */

/* Wait for the batches nf_segment_append_start left in flight: 0 when
   every batch started is durable (or none was), else the failed commit's
   error. */
int nf_segment_append_wait(nf_segment_t *self);

/* The same without waiting: forget the batches left in flight that are
   durable by now, oldest first; *pending = how many are not yet.  0, or
   the error of a failed commit (as nf_segment_append_wait would give). */
int nf_segment_append_poll(nf_segment_t *self, size_t *pending);

size_t nf_segment_nfields(const nf_segment_t *self);
/* Definition of field i (< nf_segment_nfields), or NULL. */
const nf_field_def_t *nf_segment_field(const nf_segment_t *self, size_t i);
/* Index of the field named name[0..len), or -1. */
int nf_segment_field_find(const nf_segment_t *self, const char *name, size_t len);

/* Null marks inside the columns. */
#define NF_INT_NULL INT64_MIN
#define NF_BOOL_NULL 0xffu
#define NF_KWS_NULL (1ull << 63)    /* keyword[]: bit of an end offset */
#define NF_SUMMARY_ROWS 1024

/* Rows [row0, row0+n) of field i's column, for the filter (valid while no
   write; NF_EINVAL past the rows):
     int, datetime: val is int64_t[n] (NF_INT_NULL = null)
     float: val is double[n] (NaN = null)
     bool: val is uint8_t[n] (0, 1, NF_BOOL_NULL)
     keyword: val is uint32_t[n] dictionary ids (0 = null)
     keyword[]: end[n] are the end offsets in ids of each row's set (bit
       NF_KWS_NULL set: null), start the start offset of row0's set */
typedef struct {
    nf_ftype_t type;
    const void *val;
    const uint64_t *end;
    uint64_t start;
    const uint32_t *ids;
} nf_column_t;
int nf_segment_column(nf_segment_t *self, size_t i, uint64_t row0, uint64_t n, nf_column_t *out);

/* Keywords in field i's dictionary (ids are 1 .. this); 0 for other types. */
uint32_t nf_segment_keyword_count(const nf_segment_t *self, size_t i);

/* Keyword of dictionary id (1..) of field i, or NULL. */
const char *nf_segment_keyword(const nf_segment_t *self, size_t i, uint32_t id);

/* Dictionary id (1..) of a keyword of field i, 0 when no row has it. */
uint32_t nf_segment_keyword_id(const nf_segment_t *self, size_t i, const char *kw, size_t len);

/* Summary of NF_SUMMARY_ROWS-row block b of field i (rows b*1024 ..):
   rows in it, nulls among them, min/max of the non-null values (int and
   datetime in imin/imax, float in fmin/fmax, bool: imin = 0 when some row
   is false, imax = 1 when some row is true), and for keyword/keyword[] a
   mask with bit (id % 64) set for every id present. */
typedef struct {
    int64_t imin, imax;
    double fmin, fmax;
    uint64_t kwmask;
    uint32_t rows, nulls;
} nf_summary_t;
const nf_summary_t *nf_segment_summary(const nf_segment_t *self, size_t i, uint64_t block);

/* Field i of row as JSON text into buf (null, 2001, 1.5, true, "scifi",
   ["a","b"], "2001-02-03T04:05:06Z"); returns the length it needs (like
   snprintf: the text is cut when it does not fit). */
size_t nf_segment_value_json(nf_segment_t *self, size_t i, uint64_t row, char *buf,
                             size_t size);

/* Delete by id; ids not present are skipped.  *deleted (may be NULL) gets
   how many were removed.  Durable and whole (one commit) on return.  NF_EINVAL on a read-only
   handle or a NULL / empty / too long id (checked before any change). */
int nf_segment_delete(nf_segment_t *self, const char *const *ids, size_t n, size_t *deleted);

/* Row of a live document, or NF_ENOTFOUND.  A read-only handle builds its
   id table on the first call (NF_ECORRUPT if the id files are damaged). */
int nf_segment_get(nf_segment_t *self, const char *id, uint64_t *row);

uint32_t nf_segment_dim(const nf_segment_t *self);
nf_metric_t nf_segment_metric(const nf_segment_t *self);
uint64_t nf_segment_rows(const nf_segment_t *self);     /* committed rows, deleted included */
uint64_t nf_segment_deleted(const nf_segment_t *self);  /* deleted rows */
uint64_t nf_segment_count(const nf_segment_t *self);    /* live rows = rows - deleted */
const char *nf_segment_dir(const nf_segment_t *self);
uint64_t nf_segment_seq(const nf_segment_t *self);      /* sequence number of the commit */

/* What the open found that the user should hear about, or NULL: a commit
   slot that failed its check (which slot, the commit seq opened, the rows
   and bytes beyond it, where a writable open kept them), or a recovered/
   directory waiting for nf_segment_repair.  Owned by the handle.  Library
   code never prints: the CLI and the indexer pod log it. */
const char *nf_segment_notice(const nf_segment_t *self);

/* Check every chunk of every file of the segment in dir against its
   checksum (opening it read-only; no lock).  0 when all pass; NF_ECORRUPT
   naming, for each bad file, its first bad chunk and the rows it holds;
   other codes as nf_segment_open.  *bytes_checked (may be NULL) gets the
   body bytes read. */
int nf_segment_verify(const char *dir, uint64_t *bytes_checked);

/* Re-commit what an open kept aside in dir/recovered/ and remove it.  For
   each kept batch (oldest first): the rows that are whole in every file,
   consistent (offsets, norms, finite vectors, valid ids, valid field
   values) and, where the kept checksums cover them, pass them, are
   appended again with their field values (upsert by id); the first row
   that fails ends its batch;
   the kept delete-log entries of rows still live are applied; everything
   else is dropped.  Takes the writer lock.  *report (may be NULL; caller
   frees) gets a text saying, per batch, what was kept and what dropped. */
int nf_segment_repair(const char *dir, char **report);

/* Rewrite the segment in dir without its deleted rows (nf_segment_compact.c):
   the live rows, with their ids, payloads and field values, in row order,
   go to a new segment in the sibling directory "DIR.compact~" (synced
   commit by commit), which is then swapped with dir by one atomic
   renameat2(RENAME_EXCHANGE); the old one is removed.  A crash at any
   point leaves dir whole: the old segment or the new one.  Takes the
   writer lock (NF_ELOCKED when an indexer holds it).  *kept / *dropped
   (may be NULL) get the rows written and the deleted rows left out. */
int nf_segment_compact(const char *dir, uint64_t *kept, uint64_t *dropped);

/* --- access for the scan (nf_scan) and for answering results --- */

/* Row-major float32 vectors of rows [row0, row0+n); valid while no write.
   NULL when the range goes past nf_segment_rows(). */
const float *nf_segment_vectors(nf_segment_t *self, uint64_t row0, uint64_t n);

/* The squared L2 norm a segment stores for each of n rows of dim floats
   (rows one after the other): each summed in double (eight interleaved
   partial sums, vectorised), then rounded once.  The scan recomputes it so for rows it reads itself. */
void nf_norms_sq(const float *rows, size_t n, uint32_t dim, float *out);

/* Copy the vectors of rows[0..n) (each < nf_segment_rows()) into dst (n x
   dim floats) without mapping them: pread under the mmap policy (for a
   few scattered rows, one system call each costs less than faulting their
   pages in and releasing them again), memcpy under memory.  NF_EIO /
   NF_EINVAL naming the row on failure. */
int nf_segment_read_vectors(nf_segment_t *self, const uint64_t *rows, size_t n, float *dst);

/* Copy ||x||^2 of rows [row0, row0+n) into dst without mapping them:
   pread under the mmap policy, memcpy under memory.  (Mapped, each scan
   thread held a 2 MiB block of norms, and whether two threads sat in one
   block or two made the resident memory depend on the segment's size.)
   NF_EINVAL past the end, NF_EIO naming the file on a failed read. */
int nf_segment_read_norms(nf_segment_t *self, uint64_t row0, uint64_t n, float *dst);

/* Hint that rows [row0, row0+n) were scanned and may leave this process's
   resident memory (madvise MADV_DONTNEED under the mmap policy; no-op under
   memory).  Keeps the scan's resident memory constant as the segment grows.
   Drops whole 2 MiB blocks of vectors: the block holding row0
   and those ending by row0+n (all of them when row0+n is the last row), so
   windows released in order never drop a block the next window shares. */
void nf_segment_release(nf_segment_t *self, uint64_t row0, uint64_t n);

/* The same, and the block holding row0+n too: for the end of a run of
   windows whose neighbours another thread may scan in any order (a block
   shared with them is dropped now; one they fault back in is dropped at
   the end of theirs), so no block stays mapped after all the runs ended. */
void nf_segment_release_span(nf_segment_t *self, uint64_t row0, uint64_t n);

/* The same for the field columns only (a filtered scan that read the
   columns of rows [row0, row0+n) but none of their vectors). */
void nf_segment_release_columns(nf_segment_t *self, uint64_t row0, uint64_t n);

/* Hint that the ids and payloads read through nf_segment_id /
   nf_segment_payload (and the id table's lookups) may leave resident
   memory: drops the mapped pages of ids.dat, ids.off, payload.dat and
   payload.off (mmap policy), so answering many queries over a large
   segment does not keep more and more of them mapped.  Pointers returned
   before stay valid (the pages fault back in from the page cache). */
void nf_segment_release_lookups(nf_segment_t *self);

/* True when row is deleted (or row >= nf_segment_rows()). */
bool nf_segment_is_deleted(const nf_segment_t *self, uint64_t row);

/* Deleted-row bitmap (bit r of word r/64), covering nf_segment_rows() rows;
   in RAM, rebuilt from the delete log at open. */
const uint64_t *nf_segment_tombstones(const nf_segment_t *self);

/* Id of a row (NUL-terminated, valid while no write); *len may be NULL.
   NULL for a row past the end or a damaged id record. */
const char *nf_segment_id(nf_segment_t *self, uint64_t row, size_t *len);

/* Payload bytes of a row; *len gets the length (0 when none).  NULL (and
   *len 0) for a row past the end or damaged offsets. */
const void *nf_segment_payload(nf_segment_t *self, uint64_t row, size_t *len);

/* Format version written by this build. */
#define NF_SEGMENT_VERSION 2

/* Sizes of the segment's files, for `nflow segment info`. */
typedef struct {
    const char *name;
    uint64_t bytes;         /* size on disk now (an open writer preallocates) */
    uint64_t used;          /* bytes holding committed data, headers included */
} nf_segment_file_t;

/* At most how many files nf_segment_files reports (8 without fields; the
   field schema and columns come after them). */
#define NF_SEGMENT_NFILES 64

/* Fill files[0 .. min(max, NF_SEGMENT_NFILES)) with each data file's name
   (static string) and sizes; *n (may be NULL) gets how many were filled. */
int nf_segment_files(const nf_segment_t *self, nf_segment_file_t *files, size_t max, size_t *n);

#endif
