/*  nf_segment: one shard's on-disk vector store.

    On-disk format, version 2 (NF_SEGMENT_VERSION).  All integers are
    little-endian.  A segment is a directory holding:

      vectors.nfv     a 2 MiB header region (sparse: only its first page is
                      ever written), then the rows: row r is dim float32 at
                      byte 2 MiB + r*dim*4, so the body starts on a 2 MiB
                      boundary and windows never split a large mapping.
      norms.nfn       64-byte header, then float32 ||x||^2 of each row.
      ids.dat         64-byte header, then each row's id bytes and a NUL.
      ids.off         64-byte header, then u64 per row: the END offset of
                      that row's id (NUL included) in the ids.dat body; its
                      start is the previous row's end (0 for row 0).
      payload.dat     64-byte header, then each row's payload bytes (the
                      store's own payload encoding, nf_payload.h, version 2
                      of the segment format).
      payload.off     like ids.off, for payload.dat.
      deletes.nfd     64-byte header, then the delete log: u64 row numbers,
                      append-only; replayed at open into a bitmap in RAM.
      checksums.nfc   64-byte header, then 24-byte entries {u32 file index,
                      u32 0, u64 chunk number, u64 XXH3-64 of the chunk},
                      one per full 1 MiB chunk of every other file's body,
                      in the order they filled up.
      LOCK            flock(LOCK_EX) by the one writer; holds its pid.
      recovered/      only after an open found a damaged commit slot: the
                      bytes that lay beyond the commit it opened (see below).

    The 64-byte header of the small files: bytes 0..7 a magic naming the
    file kind ("NFSEGNRM", "NFSEGIDD", "NFSEGIDO", "NFSEGPLD", "NFSEGPLO",
    "NFSEGDEL", "NFSEGCKS"), 8..11 u32 format version, the rest zero.

    The first page of vectors.nfv holds two 2048-byte commit slots, slot 0
    at byte 0 and slot 1 at byte 2048 (different disk sectors):
        0 magic "NFLOWSEG"     8 u32 version (2)  12 u32 dim
       16 u32 metric          20 u32 file-table entries in use (8)
       24 u64 seq             32 u64 rows         40 u64 deleted rows
       48 u32 log2 of the checksum chunk (20)     52 u32 incompatible
       feature bits (1 = typed fields; a reader refuses bits it does not
       know)
       56 u32 compatible feature bits (0)         60..127 zero
      128 file table: 64 entries of {u64 committed body bytes, u64 body
          bytes at the previous commit, u64 XXH3-64 of the body's trailing
          partial chunk (checksums.nfc: of its whole body)}, indexed
          0 vectors, 1 norms, 2 ids.dat, 3 ids.off, 4 payload.dat,
          5 payload.off, 6 deletes.nfd, 7 checksums.nfc; 8 the field
          schema fields.nfs and 9..63 the field columns (their layout is
          at the top of nf_segment_fields.c): a segment with fields sets
          incompatible feature bit 1 and uses 10..64 entries, one without
          them has 8 entries and opens as before.
     1664..2039 zero
     2040 u64 XXH3-64 of bytes 0..2039
    The current commit is the valid slot (magic, version, checksum, values
    in range and consistent) with the highest seq.  Everything past the
    committed bytes of each file is not part of the segment.

    Commit (append, delete): append the new bytes of every file at its
    committed end (vectors: under the mmap policy each 2 MiB block is first
    faulted in whole, as one clean folio; without a mapping, rewriting the
    already written part of the last 2 MiB block with them when that part
    is no longer than the new bytes, so writes start 2 MiB-aligned), append
    the checksums of the chunks they filled to checksums.nfc, fdatasync
    each file written, then write slot
    seq+1 into slot (seq+1)%2 and fdatasync vectors.nfv.  An upsert's new
    rows and the delete-log entries of the rows it replaces are ONE commit;
    a delete is delete-log entries and one commit; nothing is written in
    place.  So after a crash at any instant, read-only openers included, no
    id is live twice and no acknowledged delete is undone.  After the slot
    is synced, a 2 MiB block of norms (or of vectors without a mapping) the
    commit completed with a write that did not start on its boundary is
    written again, whole, with the same bytes (so the page cache holds it
    as one large folio; a crash during that write changes nothing on
    disk).

    Open: a slot that fails its check may be a torn commit (falling back to
    the other slot is right) or damage (it is not); either way the open
    reports it through nf_segment_notice() (which slot, the seq it opened,
    the rows and bytes beyond).  When both slots are valid, bytes beyond
    the commit are a batch that was never acknowledged and a writable open
    trims them.  When a slot failed, a writable open first copies the bytes
    beyond the commit of every file into recovered/seq-N/ (synced, with the
    header page), then trims: `nflow segment repair DIR` re-commits the
    rows found there that are whole, consistent across files and pass their
    checksums (nf_segment_repair).  Open checks the chunks written by the
    last commit (from the previous commit's end on) of every file and the
    whole checksums.nfc; nf_segment_verify checks every chunk.  A directory
    with some segment files missing is refused, naming them; only an empty
    or absent directory becomes a new segment.  Version 1 segments are
    refused with NF_EVERSION (rebuild with `nflow segment build`).

    Memory: vectors/norms and payloads follow their nf_mempolicy_t; ids and
    ids.off are always mapped; the deleted-row bitmap is in RAM (rows/8
    bytes).  The id -> row hash table is built at a writable open, and only
    at the first nf_segment_get for a read-only one, so search-only use
    keeps constant memory.  Writers grow the files in chunks (fallocate;
    vectors in 2 MiB blocks) and trim them to the committed size on close.

    Code: this file opens, creates, closes, reads and verifies a segment
    (every loop over files goes to s->nfiles: the 8 files, then the field
    schema and columns, which nf_segment_fields.c names and checks);
    nf_segment_write.c grows and commits it, keeps the id -> row table and
    does append and delete; nf_segment_repair.c re-commits recovered rows;
    nf_segment_impl.h (private) holds the handle struct and what they share. */
#include "nf_segment_impl.h"
#include "nf_error.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---------------------------------------------------------------- helpers */

ssize_t
nf_seg_pread_all(int fd, void *buf, size_t len, uint64_t off)
{
    char *p = buf;
    size_t done = 0;
    while (done < len) {
        ssize_t r = pread(fd, p + done, len - done, (off_t) (off + done));
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return -1;
        if (r == 0)
            break;
        done += (size_t) r;
    }
    return (ssize_t) done;
}

const char *
nf_seg_path(const char *dir, const char *name, char *buf, size_t size)
{
    int n = snprintf(buf, size, "%s/%s", dir, name);
    return n > 0 && (size_t) n < size ? buf : NULL;
}

void
nf_seg_sync_dir(const char *dir)
{
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        fsync(dfd);
        close(dfd);
    }
}

#define s_pread_all nf_seg_pread_all
#define s_file_path nf_seg_path
#define s_sync_dir nf_seg_sync_dir

/* Bytes of file `kind` that hold committed data (header included). */
static uint64_t
s_used(const nf_segment_t *s, int kind)
{
    return s_hdr(kind) + s->bytes[kind];
}

/* Append to the handle's notice ("; " between parts). */
static void
s_note(nf_segment_t *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void
s_note(nf_segment_t *s, const char *fmt, ...)
{
    char part[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(part, sizeof part, fmt, ap);
    va_end(ap);
    size_t old = s->notice ? strlen(s->notice) : 0;
    char *n = realloc(s->notice, old + strlen(part) + 3);
    if (!n)
        return;
    if (old)
        memcpy(n + old, "; ", 2), old += 2;
    strcpy(n + old, part);
    s->notice = n;
}

/* Start/end of a row's record in a .dat body, checked against the
   committed size; false when the offsets are corrupt. */
bool
nf_seg_extent(const nf_segment_t *s, int offkind, uint64_t row, uint64_t *start, uint64_t *end)
{
    const uint64_t *off = s_off(s, offkind);
    uint64_t limit = offkind == S_IDOFF ? s->bytes[S_IDDAT] : s->bytes[S_PLDAT];
    *start = row ? off[row - 1] : 0;
    *end = off[row];
    return *start <= *end && *end <= limit;
}

/* ------------------------------------------------------------- metrics */

const char *
nf_metric_name(nf_metric_t metric)
{
    switch (metric) {
    case NF_METRIC_L2: return "l2";
    case NF_METRIC_IP: return "ip";
    case NF_METRIC_COSINE: return "cosine";
    }
    return "unknown";
}

int
nf_metric_parse(const char *name, nf_metric_t *metric)
{
    static const nf_metric_t all[] = {NF_METRIC_L2, NF_METRIC_IP, NF_METRIC_COSINE};
    for (size_t i = 0; name && i < sizeof all / sizeof all[0]; i++)
        if (!strcmp(name, nf_metric_name(all[i]))) {
            *metric = all[i];
            return 0;
        }
    return nf_error_set(NF_EINVAL, "unknown metric '%s' (expected l2, ip or cosine)",
                        name ? name : "(null)");
}

/* ---------------------------------------------------------------- open */

static int
s_open_fd(const nf_segment_t *s, int kind, int flags, int *fd)
{
    char path[4096];
    if (!s_file_path(s->dir, s_kname(s, kind), path, sizeof path))
        return nf_error_set(NF_EINVAL, "%s: path too long", s->dir);
    *fd = open(path, flags | O_CLOEXEC, 0644);
    if (*fd >= 0)
        return 0;
    if (errno == ENOENT)
        return s_serr(s, kind, NF_ECORRUPT, "missing (the segment is incomplete)");
    return s_serr(s, kind, NF_EIO, "open: %s", strerror(errno));
}

/* Names of the segment files in dir that exist (present) and are missing,
   ", "-separated; version 1's tombstones.nft counts as present. */
static void
s_presence(const char *dir, char *present, char *missing, size_t size)
{
    static const char *const v1[] = {"tombstones.nft"};
    char path[4096];
    present[0] = missing[0] = '\0';
    for (int k = 0; k < S_NFILES + 1; k++) {
        const char *name = k < S_NFILES ? s_kinds[k].name : v1[0];
        bool there = s_file_path(dir, name, path, sizeof path) && access(path, F_OK) == 0;
        char *to = there ? present : missing;
        if (!there && k == S_NFILES)
            continue;
        size_t n = strlen(to);
        snprintf(to + n, size - n, "%s%s", n ? ", " : "", name);
    }
}

static const char *const s_slot_why[] = {"valid", "no magic", "other format version",
                                         "checksum mismatch", "values out of range",
                                         "unknown incompatible features"};

/* Check one slot; 0 valid, else an index into s_slot_why. */
static int
s_slot_state(const s_slot_t *h)
{
    if (memcmp(h->magic, s_kinds[S_VEC].magic, 8))
        return 1;
    if (h->version != NF_SEGMENT_VERSION)
        return 2;
    if (h->checksum != s_slot_hash(h))
        return 3;
    if (h->incompat & ~S_FEAT_KNOWN)
        return 5;
    const s_fent_t *f = h->file;
    bool bad = h->dim < 1 || h->dim > NF_DIM_MAX || h->metric > NF_METRIC_COSINE
               || h->rows > S_ROWS_MAX || h->deleted > h->rows
               || (h->incompat & S_FEAT_FIELDS ? h->nfiles < S_COL0 + 1 || h->nfiles > S_TABLE_MAX
                                                : h->nfiles != S_NFILES)
               || h->chunk_log2 != S_CHUNK_LOG2;
    for (int k = 0; k < S_TABLE_MAX && !bad; k++)
        bad = f[k].bytes > S_BYTES_MAX || f[k].prev > f[k].bytes;
    if (!bad)
        bad = f[S_VEC].bytes != h->rows * h->dim * sizeof(float)
              || f[S_NORM].bytes != h->rows * sizeof(float) || f[S_IDOFF].bytes != h->rows * 8
              || f[S_PLOFF].bytes != h->rows * 8 || f[S_DEL].bytes != h->deleted * 8
              || f[S_CK].bytes % S_CK_ENTRY || (h->rows == 0 && (f[S_IDDAT].bytes
                                                                || f[S_PLDAT].bytes));
    return bad ? 4 : 0;
}

/* Read the header page of vectors.nfv and adopt its current slot; *failed
   gets the index of a slot that failed its check (-1 when both are valid)
   and *why its reason. */
static int
s_read_header(nf_segment_t *s, uint64_t size, int *failed, const char **why, uint64_t *hint)
{
    unsigned char page[S_PAGE];
    const char *magic = s_kinds[S_VEC].magic;
    *failed = -1;
    if (size == 0)
        return s_serr(s, S_VEC, NF_ECORRUPT,
                      "truncated: empty file (a segment starts with a %u-byte header region)",
                      S_VEC_HDR);
    size_t want = size < S_PAGE ? (size_t) size : S_PAGE;
    ssize_t got = s_pread_all(s->f[S_VEC].fd, page, want, 0);
    if (got < 0)
        return s_serr(s, S_VEC, NF_EIO, "read: %s", strerror(errno));
    bool m0 = got >= 8 && !memcmp(page, magic, 8);
    bool m1 = (size_t) got >= S_SLOT1_OFF + 8 && !memcmp(page + S_SLOT1_OFF, magic, 8);
    if (got >= 8 && !m0 && !m1)
        return s_serr(s, S_VEC, NF_EFORMAT, "bad magic (not an nflow segment)");
    if ((size_t) got < S_PAGE)
        return s_serr(s, S_VEC, NF_ECORRUPT, "truncated: %llu bytes, the header needs %u",
                      (unsigned long long) size, S_PAGE);
    s_slot_t slot[2];
    int state[2], best = -1;
    for (int i = 0; i < 2; i++) {
        memcpy(&slot[i], page + (i ? S_SLOT1_OFF : 0), sizeof slot[i]);
        state[i] = s_slot_state(&slot[i]);
        if (!state[i] && (best < 0 || slot[i].seq > slot[best].seq))
            best = i;
    }
    if (best < 0) {
        for (int i = 0; i < 2; i++)
            if (state[i] == 2 && slot[i].version != NF_SEGMENT_VERSION)
                return s_serr(s, S_VEC, NF_EVERSION,
                              "segment format version %u, this build reads version %d only: "
                              "rebuild the segment from its documents with `nflow segment "
                              "build NEWDIR FILE`", slot[i].version, NF_SEGMENT_VERSION);
        if (state[0] == 5 || state[1] == 5)
            return s_serr(s, S_VEC, NF_EVERSION, "uses format features this build does "
                          "not know (flags 0x%x)", slot[state[0] == 5 ? 0 : 1].incompat);
        return s_serr(s, S_VEC, NF_ECORRUPT, "no valid commit slot (slot 0: %s; slot 1: "
                      "%s)", s_slot_why[state[0]], s_slot_why[state[1]]);
    }
    if (state[1 - best]) {
        const s_slot_t *f = &slot[1 - best];
        *failed = 1 - best;
        *why = s_slot_why[state[1 - best]];
        for (int k = 0; k < S_TABLE_MAX && state[1 - best] != 1; k++)  /* what it claims */
            hint[k] = f->file[k].bytes <= S_BYTES_MAX ? s_hdr(k) + f->file[k].bytes : 0;
    }
    const s_slot_t *h = &slot[best];
    s->dim = h->dim;
    s->metric = (nf_metric_t) h->metric;
    s->seq = h->seq;
    s->rows = h->rows;
    s->deleted = h->deleted;
    s->nfiles = h->nfiles;
    for (int k = 0; k < S_TABLE_MAX; k++) {
        s->bytes[k] = h->file[k].bytes;
        s->prev[k] = h->file[k].prev;
        s->tail[k] = h->file[k].tail;
    }
    return 0;
}
static int
s_lock(nf_segment_t *s)
{
    char path[4096], text[32] = "";
    if (!s_file_path(s->dir, "LOCK", path, sizeof path))
        return nf_error_set(NF_EINVAL, "%s: path too long", s->dir);
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0)
        return nf_error_set(NF_EIO, "%s: %s", path, strerror(errno));
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        int err = errno;
        ssize_t n = s_pread_all(fd, text, sizeof text - 1, 0);
        long pid = n > 0 ? strtol(text, NULL, 10) : 0;
        close(fd);
        if (err != EWOULDBLOCK)
            return nf_error_set(NF_EIO, "%s: flock: %s", path, strerror(err));
        if (pid > 0)
            return nf_error_set(NF_ELOCKED, "%s: locked by another writer (pid %ld)",
                                s->dir, pid);
        return nf_error_set(NF_ELOCKED, "%s: locked by another writer", s->dir);
    }
    int n = snprintf(text, sizeof text, "%ld\n", (long) getpid());
    if (ftruncate(fd, 0) != 0 || nf_seg_pwrite_all(fd, text, (size_t) n, 0) != 0) {
        close(fd);
        return nf_error_set(NF_EIO, "%s: %s", path, strerror(errno));
    }
    s->lock_fd = fd;
    return 0;
}

/* Check a small file's header: magic (naming what it is if it is another
   segment file), version. */
static int
s_check_small(const nf_segment_t *s, int kind, uint64_t size)
{
    char hdr[S_SMALL_HDR];
    if (size == 0)
        return s_serr(s, kind, NF_ECORRUPT, "truncated: empty file");
    ssize_t got = s_pread_all(s->f[kind].fd, hdr, sizeof hdr, 0);
    if (got < 0)
        return s_serr(s, kind, NF_EIO, "read: %s", strerror(errno));
    if (got >= 8 && memcmp(hdr, s_kmagic(kind), 8)) {
        for (int k = 0; k <= S_COL0; k++)
            if (!memcmp(hdr, s_kmagic(k), 8))
                return s_serr(s, kind, NF_EFORMAT,
                              "bad magic: this is an nflow %s file, expected %s",
                              s_kwhat(k), s_kwhat(kind));
        return s_serr(s, kind, NF_EFORMAT, "bad magic (not an nflow %s file)",
                      s_kwhat(kind));
    }
    if ((size_t) got < sizeof hdr)
        return s_serr(s, kind, NF_ECORRUPT, "truncated: %llu bytes, the header needs %u",
                      (unsigned long long) size, S_SMALL_HDR);
    uint32_t version;
    memcpy(&version, hdr + 8, sizeof version);
    if (version != NF_SEGMENT_VERSION)
        return s_serr(s, kind, NF_EVERSION, "format version %u, this build reads %d",
                      version, NF_SEGMENT_VERSION);
    return 0;
}


/* Rows [*r0, *r1] holding body bytes [lo, hi) of file k (hi > lo). */
static void
s_row_range(const nf_segment_t *s, int k, uint64_t lo, uint64_t hi, uint64_t *r0, uint64_t *r1)
{
    uint64_t unit = 8;
    if (k >= S_SCHEMA)
        unit = nf_seg_col_width(s, k) ? nf_seg_col_width(s, k) : 1;
    else if (k == S_VEC)
        unit = (uint64_t) s->dim * sizeof(float);
    else if (k == S_NORM)
        unit = sizeof(float);
    if (k == S_IDDAT || k == S_PLDAT) {
        /* first row ending after lo, last row starting before hi */
        int offk = k == S_IDDAT ? S_IDOFF : S_PLOFF;
        const uint64_t *off = s_off(s, offk);
        uint64_t a = 0, b = s->rows;
        while (off && a < b) {
            uint64_t mid = a + (b - a) / 2;
            if (off[mid] <= lo)
                a = mid + 1;
            else
                b = mid;
        }
        *r0 = a;
        for (b = a; off && b + 1 < s->rows && off[b] < hi; b++) {
        }
        *r1 = b;
        return;
    }
    *r0 = lo / unit;
    *r1 = (hi - 1) / unit;
}

/* Read checksums.nfc: check its whole-body hash and fill s->ck. */
static int
s_load_checksums(nf_segment_t *s)
{
    uint64_t n = s->bytes[S_CK] / S_CK_ENTRY, want[S_TABLE_MAX];
    unsigned char *buf = malloc(s->bytes[S_CK] + 1);
    if (!buf)
        return nf_error_set(NF_ENOMEM, "%s: out of memory for checksums", s->dir);
    ssize_t got = s->bytes[S_CK] ? s_pread_all(s->f[S_CK].fd, buf, s->bytes[S_CK], S_SMALL_HDR)
                                 : 0;
    int rc = 0;
    if (got < 0 || (uint64_t) got != s->bytes[S_CK])
        rc = s_serr(s, S_CK, NF_EIO, "read: %s", got < 0 ? strerror(errno) : "short read");
    else if (XXH3_64bits(buf, s->bytes[S_CK]) != s->tail[S_CK])
        rc = s_serr(s, S_CK, NF_ECORRUPT, "checksum mismatch over its %llu entries",
                    (unsigned long long) n);
    for (int k = 0; k < (int) s->nfiles && !rc; k++) {
        if (k == S_CK)
            continue;
        want[k] = s->bytes[k] / S_CHUNK;
        free(s->ck[k]);
        s->nck[k] = 0;
        if (!(s->ck[k] = malloc((want[k] + 1) * sizeof(uint64_t))))
            rc = nf_error_set(NF_ENOMEM, "%s: out of memory for checksums", s->dir);
    }
    for (uint64_t i = 0; i < n && !rc; i++) {
        uint32_t fk;
        uint64_t e[2];
        memcpy(&fk, buf + i * S_CK_ENTRY, 4);
        memcpy(e, buf + i * S_CK_ENTRY + 8, 16);
        if (fk >= s->nfiles || fk == S_CK || e[0] != s->nck[fk] || s->nck[fk] >= want[fk])
            rc = s_serr(s, S_CK, NF_ECORRUPT, "entry %llu (file %u, chunk %llu) out of "
                        "order or past the committed data", (unsigned long long) i, fk,
                        (unsigned long long) e[0]);
        else
            s->ck[fk][s->nck[fk]++] = e[1];
    }
    for (int k = 0; k < (int) s->nfiles && !rc; k++)
        if (k != S_CK && s->nck[k] != want[k])
            rc = s_serr(s, S_CK, NF_ECORRUPT, "%llu chunk checksums for %s, its %llu "
                        "bytes need %llu", (unsigned long long) s->nck[k], s_kname(s, k),
                        (unsigned long long) s->bytes[k], (unsigned long long) want[k]);
    free(buf);
    return rc;
}

/* Check file k's chunks from chunk c0 on and its tail against their
   checksums (init: also seed the writer's tail hash state).  On a bad
   chunk: NF_ECORRUPT naming the chunk, its bytes and rows. */
static int
s_check_chunks(nf_segment_t *s, int k, uint64_t c0, unsigned char *buf, bool init,
               uint64_t *checked)
{
    uint64_t nfull = s->nck[k];
    for (uint64_t c = c0; c <= nfull; c++) {
        uint64_t lo = c * S_CHUNK, len = c < nfull ? S_CHUNK : s->bytes[k] - lo;
        ssize_t got = len ? s_pread_all(s->f[k].fd, buf, len, s_hdr(k) + lo) : 0;
        if (got < 0 || (uint64_t) got != len)
            return s_serr(s, k, NF_EIO, "read of chunk %llu: %s", (unsigned long long) c,
                          got < 0 ? strerror(errno) : "short read");
        uint64_t h = XXH3_64bits(buf, len), want = c < nfull ? s->ck[k][c] : s->tail[k];
        if (checked)
            *checked += len;
        if (c == nfull && init && s->st[k]) {
            XXH3_64bits_reset(s->st[k]);
            XXH3_64bits_update(s->st[k], buf, len);
        }
        if (h != want) {
            uint64_t r0 = 0, r1 = 0;
            if (len)
                s_row_range(s, k, lo, lo + len, &r0, &r1);
            if (k == S_DEL)
                return s_serr(s, k, NF_ECORRUPT, "chunk %llu (body bytes %llu..%llu, "
                              "delete-log entries %llu..%llu) fails its checksum",
                              (unsigned long long) c, (unsigned long long) lo,
                              (unsigned long long) (lo + len), (unsigned long long) r0,
                              (unsigned long long) r1);
            return s_serr(s, k, NF_ECORRUPT, "chunk %llu (body bytes %llu..%llu, rows "
                          "%llu..%llu) fails its checksum", (unsigned long long) c,
                          (unsigned long long) lo, (unsigned long long) (lo + len),
                          (unsigned long long) r0, (unsigned long long) r1);
        }
    }
    return 0;
}

/* Replay the delete log into the bitmap. */
static int
s_replay_deletes(nf_segment_t *s)
{
    enum { N = 8192 };
    uint64_t buf[N], n = s->bytes[S_DEL] / 8;
    int rc = nf_seg_grow_tomb(s, s->rows);
    for (uint64_t i = 0; i < n && !rc; i += N) {
        uint64_t m = n - i < N ? n - i : N;
        ssize_t got = s_pread_all(s->f[S_DEL].fd, buf, m * 8, S_SMALL_HDR + i * 8);
        if (got != (ssize_t) (m * 8))
            return s_serr(s, S_DEL, NF_EIO, "read: %s",
                          got < 0 ? strerror(errno) : "short read");
        for (uint64_t j = 0; j < m; j++) {
            uint64_t r = buf[j];
            if (r >= s->rows)
                return s_serr(s, S_DEL, NF_ECORRUPT, "entry %llu: row %llu past the %llu "
                              "rows", (unsigned long long) (i + j), (unsigned long long) r,
                              (unsigned long long) s->rows);
            if (s->tomb[r / 64] >> (r % 64) & 1)
                return s_serr(s, S_DEL, NF_ECORRUPT, "entry %llu: row %llu deleted twice",
                              (unsigned long long) (i + j), (unsigned long long) r);
            s->tomb[r / 64] |= 1ull << (r % 64);
        }
    }
    return rc;
}

/* End of the bytes in [from, to) of fd that are not trailing zeros (a
   writer's preallocation). */
static uint64_t
s_data_end(int fd, uint64_t from, uint64_t to)
{
    unsigned char buf[65536];
    while (to > from) {
        uint64_t lo = to - from > sizeof buf ? to - sizeof buf : from;
        ssize_t got = s_pread_all(fd, buf, (size_t) (to - lo), lo);
        if (got != (ssize_t) (to - lo))
            return to;
        for (size_t i = (size_t) (to - lo); i-- > 0;)
            if (buf[i])
                return lo + i + 1;
        to = lo;
    }
    return from;
}

/* Whole rows whose ids.off entries lie beyond the commit (entries that
   keep increasing past the committed id bytes). */
static uint64_t
s_rows_beyond(nf_segment_t *s, uint64_t size)
{
    uint64_t buf[512], n = 0, last = s->bytes[S_IDDAT], off = s_used(s, S_IDOFF);
    while (off + 8 <= size) {
        uint64_t m = (size - off) / 8 < 512 ? (size - off) / 8 : 512;
        if (s_pread_all(s->f[S_IDOFF].fd, buf, m * 8, off) != (ssize_t) (m * 8))
            break;
        for (uint64_t i = 0; i < m; i++) {
            if (buf[i] <= last || buf[i] - last > NF_ID_MAX + 1)
                return n;
            last = buf[i];
            n++;
        }
        off += m * 8;
    }
    return n;
}

static int
s_copy_range(int from, uint64_t off, uint64_t len, const char *path)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return -1;
    char *buf = malloc(1u << 20);
    int rc = buf ? 0 : -1;
    for (uint64_t done = 0; !rc && done < len;) {
        size_t m = len - done < (1u << 20) ? (size_t) (len - done) : (1u << 20);
        ssize_t got = s_pread_all(from, buf, m, off + done);
        if (got != (ssize_t) m || nf_seg_pwrite_all(fd, buf, m, done) != 0)
            rc = -1;
        done += m;
    }
    if (!rc && fsync(fd) != 0)
        rc = -1;
    free(buf);
    close(fd);
    return rc;
}

/* Copy what lies beyond the commit in every file (sizes[k]) to
   recovered/seq-N[-i]/ with the header page, synced, before a trim. */
static int
s_keep_aside(nf_segment_t *s, const uint64_t *sizes, char *where, size_t wsize)
{
    char top[4096], tmp[4200], path[4400];
    if (!s_file_path(s->dir, "recovered", top, sizeof top))
        return nf_error_set(NF_EINVAL, "%s: path too long", s->dir);
    if (mkdir(top, 0755) != 0 && errno != EEXIST)
        return nf_error_set(NF_EIO, "%s: mkdir: %s", top, strerror(errno));
    for (int i = 1;; i++) {
        if (i == 1)
            snprintf(where, wsize, "%s/seq-%llu", top, (unsigned long long) s->seq);
        else
            snprintf(where, wsize, "%s/seq-%llu-%d", top, (unsigned long long) s->seq, i);
        if (access(where, F_OK) != 0)
            break;
    }
    snprintf(tmp, sizeof tmp, "%s/.incomplete", top);
    if (access(tmp, F_OK) == 0) {       /* an earlier copy that did not finish */
        DIR *d = opendir(tmp);
        struct dirent *e;
        while (d && (e = readdir(d)))
            if (e->d_name[0] != '.' && snprintf(path, sizeof path, "%s/%s", tmp, e->d_name) > 0)
                unlink(path);
        if (d)
            closedir(d);
        rmdir(tmp);
    }
    if (mkdir(tmp, 0755) != 0)
        return nf_error_set(NF_EIO, "%s: mkdir: %s", tmp, strerror(errno));
    int rc = 0;
    for (int k = 0; k < (int) s->nfiles && !rc; k++) {
        snprintf(path, sizeof path, "%s/%s", tmp, s_kname(s, k));
        if (s_copy_range(s->f[k].fd, s_used(s, k), sizes[k] - s_used(s, k), path) != 0)
            rc = nf_error_set(NF_EIO, "%s: %s", path, strerror(errno));
    }
    snprintf(path, sizeof path, "%s/header.page", tmp);
    if (!rc && s_copy_range(s->f[S_VEC].fd, 0, S_PAGE, path) != 0)
        rc = nf_error_set(NF_EIO, "%s: %s", path, strerror(errno));
    if (!rc) {
        s_sync_dir(tmp);
        if (rename(tmp, where) != 0)
            rc = nf_error_set(NF_EIO, "%s: rename: %s", where, strerror(errno));
        s_sync_dir(top);
        s_sync_dir(s->dir);
    }
    return rc;
}

static int
s_read_body(nf_segment_t *s, int kind, void *dst, uint64_t len)
{
    ssize_t got = len ? s_pread_all(s->f[kind].fd, dst, len, s_hdr(kind)) : 0;
    if (got < 0 || (uint64_t) got != len)
        return s_serr(s, kind, NF_EIO, "read of %llu bytes: %s", (unsigned long long) len,
                      got < 0 ? strerror(errno) : "short read");
    return 0;
}

/* Memory policy: load vectors + norms and/or payloads into RAM. */
static int
s_load(nf_segment_t *s)
{
    int rc = nf_seg_grow_ram(s, s->rows + 1, s->bytes[S_PLDAT] + 1);
    if (!rc && s->opts.vectors == NF_MEM_MEMORY
        && ((rc = s_read_body(s, S_VEC, s->mvec, s->bytes[S_VEC]))
            || (rc = s_read_body(s, S_NORM, s->mnorm, s->bytes[S_NORM]))))
        return rc;
    if (!rc && s->opts.payloads == NF_MEM_MEMORY
        && ((rc = s_read_body(s, S_PLDAT, s->mpl, s->bytes[S_PLDAT]))
            || (rc = s_read_body(s, S_PLOFF, s->mploff, s->bytes[S_PLOFF]))))
        return rc;
    return rc;
}

static void
s_warmup(nf_segment_t *s)
{
    static const int kinds[] = {S_VEC, S_NORM, S_PLDAT, S_PLOFF};
    volatile unsigned char sink = 0;
    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++) {
        const s_file_t *f = &s->f[kinds[i]];
        uint64_t lo = s_hdr(kinds[i]) & ~(uint64_t) (S_PAGE - 1), len = s_used(s, kinds[i]);
        if (!f->map)
            continue;
        madvise(f->map + lo, len - lo, MADV_WILLNEED);
        for (uint64_t off = lo; off < len; off += S_PAGE)
            sink ^= (unsigned char) f->map[off];
    }
    (void) sink;
}

static int s_check_empty(const char *dir);

/* Open dir.  check: verify the last commit's chunks (nf_segment_verify
   opens without and checks all of them). */
static int
s_open(const char *dir, const nf_segment_opts_t *opts, int lock_fd, bool check,
       nf_segment_t **out)
{
    int rc = 0, failed = -1;
    const char *why = NULL;
    struct stat st;
    uint64_t sizes[S_TABLE_MAX], hint[S_TABLE_MAX] = {0};
    unsigned char *buf = NULL;
    *out = NULL;
    nf_segment_t *s = calloc(1, sizeof *s);
    if (!s || !(s->dir = strdup(dir))) {
        free(s);
        if (lock_fd >= 0)
            close(lock_fd);
        return nf_error_set(NF_ENOMEM, "%s: out of memory", dir);
    }
    for (size_t n = strlen(s->dir); n > 1 && s->dir[n - 1] == '/'; n--)
        s->dir[n - 1] = '\0';
    if (opts)
        s->opts = *opts;
    s->lock_fd = lock_fd;
    s->nfiles = S_NFILES;
    for (int k = 0; k < S_TABLE_MAX; k++)
        s->f[k].fd = -1;
    bool rw = !s->opts.readonly;
    if ((unsigned) s->opts.vectors > NF_MEM_MEMORY || (unsigned) s->opts.payloads > NF_MEM_MEMORY) {
        rc = nf_error_set(NF_EINVAL, "%s: unknown memory policy %d/%d", s->dir,
                          (int) s->opts.vectors, (int) s->opts.payloads);
        goto fail;
    }
    if (stat(s->dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
        rc = nf_error_set(NF_ENOTFOUND, "%s: no such directory", s->dir);
        goto fail;
    }
    char present[512], missing[512];
    s_presence(s->dir, present, missing, sizeof present);
    if (strstr(missing, s_kinds[S_VEC].name) == missing) {
        /* header-only files left by an interrupted create hold nothing:
           not a segment yet (open_or_create and build create over them) */
        if (present[0] && s_check_empty(s->dir) != 0)
            rc = nf_error_set(NF_ECORRUPT, "%s: incomplete segment: vectors.nfv is missing "
                              "(present: %s); refusing to open or create a segment over it",
                              s->dir, present);
        else
            rc = nf_error_set(NF_ENOTFOUND, "%s: not a segment (no vectors.nfv)", s->dir);
        goto fail;
    }
    if (rw && lock_fd < 0 && (rc = s_lock(s)))
        goto fail;
    for (int k = 0; k < (int) s->nfiles; k++) {
        /* vectors.nfv first: its version decides before anything is missing */
        if (k == S_NORM && missing[0]) {
            rc = nf_error_set(NF_ECORRUPT, "%s: incomplete segment: missing %s", s->dir,
                              missing);
            goto fail;
        }
        /* O_NONBLOCK: a FIFO planted in the directory must not hang us */
        if ((rc = s_open_fd(s, k, (rw ? O_RDWR : O_RDONLY) | O_NONBLOCK, &s->f[k].fd)))
            goto fail;
        if (fstat(s->f[k].fd, &st) != 0) {
            rc = s_serr(s, k, NF_EIO, "fstat: %s", strerror(errno));
            goto fail;
        }
        if (!S_ISREG(st.st_mode)) {
            rc = s_serr(s, k, NF_EFORMAT, "not a regular file");
            goto fail;
        }
        sizes[k] = s->f[k].cap = (uint64_t) st.st_size;
        if ((rc = k == S_VEC ? s_read_header(s, sizes[k], &failed, &why, hint)
                             : s_check_small(s, k, sizes[k])))
            goto fail;
        if (k == S_SCHEMA && (rc = nf_seg_fields_load(s)))     /* names the columns */
            goto fail;
    }
    uint64_t beyond = 0, rows_beyond = 0;
    for (int k = 0; k < (int) s->nfiles; k++) {
        uint64_t need = s_used(s, k);
        hint[k] = hint[k] > need ? hint[k] : need;
        if (sizes[k] < need) {
            if (k == S_VEC)
                rc = s_serr(s, k, NF_ECORRUPT, "truncated: header says %llu rows "
                            "(%llu bytes) but file has %llu", (unsigned long long) s->rows,
                            (unsigned long long) (need - S_VEC_HDR),
                            (unsigned long long) sizes[k]);
            else
                rc = s_serr(s, k, NF_ECORRUPT, "truncated: the commit needs %llu bytes "
                            "but file has %llu", (unsigned long long) need,
                            (unsigned long long) sizes[k]);
            goto fail;
        }
        if (failed >= 0 && k == S_IDOFF)
            rows_beyond = s_rows_beyond(s, sizes[k]);
        if (failed >= 0) {
            /* not the zeros a writer preallocated (they start on a page
               boundary); the failed slot's own sizes when they say more */
            uint64_t end = (s_data_end(s->f[k].fd, need, sizes[k]) + S_PAGE - 1)
                           & ~(uint64_t) (S_PAGE - 1);
            end = end > hint[k] ? end : hint[k];
            sizes[k] = end < sizes[k] ? end : sizes[k];
        }
        beyond += sizes[k] - need;
    }
    if (failed >= 0) {
        char where[4400] = "";
        if (rw && beyond && (rc = s_keep_aside(s, sizes, where, sizeof where)))
            goto fail;
        s_note(s, "%s/vectors.nfv: commit slot %d failed its check (%s): opened commit seq "
               "%llu from slot %d (%llu rows); %llu rows (%llu bytes in all files) lie beyond "
               "it%s%s%s", s->dir, failed, why, (unsigned long long) s->seq, 1 - failed,
               (unsigned long long) s->rows, (unsigned long long) rows_beyond,
               (unsigned long long) beyond,
               !beyond ? "" : rw ? ", copied to " : " (a writable open keeps them aside for "
                                                    "`nflow segment repair`)",
               rw && beyond ? where : "", rw && beyond ? " before trimming" : "");
    }
    for (int k = 0; k < (int) s->nfiles; k++) {
        uint64_t need = s_used(s, k);
        if (rw && s->f[k].cap > need && ftruncate(s->f[k].fd, (off_t) need) != 0) {
            rc = s_serr(s, k, NF_EIO, "trimming uncommitted data: %s", strerror(errno));
            goto fail;
        }
        s->f[k].cap = need;
        if (nf_seg_mapped(s, k) && (rc = nf_seg_map(s, k, need)))
            goto fail;
    }
    char rec[4096];
    if (s_file_path(s->dir, "recovered", rec, sizeof rec) && access(rec, F_OK) == 0)
        s_note(s, "%s holds bytes kept aside from a damaged commit: run `nflow segment repair "
               "%s`", rec, s->dir);
    /* checksums: the whole of checksums.nfc, and the chunks the last commit
       wrote in every file (tails seed the writer's hash states) */
    if (rw && (rc = nf_seg_states(s)))
        goto fail;
    if ((rc = s_load_checksums(s)))
        goto fail;
    if (!(buf = malloc(S_CHUNK))) {
        rc = nf_error_set(NF_ENOMEM, "%s: out of memory", s->dir);
        goto fail;
    }
    for (int k = 0; k < (int) s->nfiles && (check || rw); k++) {
        if (k == S_CK)
            continue;
        uint64_t c0 = check ? s->prev[k] / S_CHUNK : s->nck[k];
        if ((rc = s_check_chunks(s, k, c0, buf, rw, NULL)))
            goto fail;
    }
    if (rw) {
        XXH3_64bits_reset(s->st[S_CK]);
        for (uint64_t off = 0; off < s->bytes[S_CK]; off += S_CHUNK) {
            uint64_t len = s->bytes[S_CK] - off < S_CHUNK ? s->bytes[S_CK] - off : S_CHUNK;
            if (s_pread_all(s->f[S_CK].fd, buf, len, S_SMALL_HDR + off) != (ssize_t) len) {
                rc = s_serr(s, S_CK, NF_EIO, "read: %s", strerror(errno));
                goto fail;
            }
            XXH3_64bits_update(s->st[S_CK], buf, len);
        }
    }
    if ((rc = s_load(s)))
        goto fail;
    static const int offkinds[] = {S_IDOFF, S_PLOFF};
    for (size_t i = 0; i < 2; i++) {
        int k = offkinds[i];
        uint64_t last = s->rows ? s_off(s, k)[s->rows - 1] : 0;
        uint64_t want = k == S_IDOFF ? s->bytes[S_IDDAT] : s->bytes[S_PLDAT];
        if (last != want) {
            rc = s_serr(s, k, NF_ECORRUPT, "last offset %llu but the commit holds %llu "
                        "bytes", (unsigned long long) last, (unsigned long long) want);
            goto fail;
        }
    }
    if ((rc = s_replay_deletes(s)) || (rc = nf_seg_fields_open(s)))
        goto fail;
    if (rw && (rc = nf_seg_build(s, true)))
        goto fail;
    if (s->opts.warmup)
        s_warmup(s);
    nf_seg_fields_warm(s);
    free(buf);
    *out = s;
    return 0;
fail:
    free(buf);
    nf_segment_destroy(&s);
    return rc;
}

int
nf_segment_open(const char *dir, const nf_segment_opts_t *opts, nf_segment_t **out)
{
    if (!dir || !out)
        return nf_error_set(NF_EINVAL, "nf_segment_open: NULL argument");
    return s_open(dir, opts, -1, true, out);
}

static int
s_write_new(const char *dir, int kind, const char *name)
{
    char path[4096], hdr[S_PAGE];
    memset(hdr, 0, sizeof hdr);
    if (!s_file_path(dir, name, path, sizeof path))
        return nf_error_set(NF_EINVAL, "%s: path too long", dir);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return nf_error_set(NF_EIO, "%s: %s", path, strerror(errno));
    uint32_t v = NF_SEGMENT_VERSION;
    memcpy(hdr, s_kmagic(kind), 8);
    memcpy(hdr + 8, &v, sizeof v);
    int rc = nf_seg_pwrite_all(fd, hdr, S_SMALL_HDR, 0) || fdatasync(fd);
    int err = errno;
    close(fd);
    if (rc)
        return nf_error_set(NF_EIO, "%s: %s", path, strerror(err));
    return 0;
}

/* Only an empty directory becomes a segment.  Allowed: LOCK, and what a
   create that crashed leaves (vectors.nfv.tmp, small files holding only
   their header). */
static int
s_check_empty(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    int rc = 0;
    if (!d)
        return nf_error_set(NF_EIO, "%s: opendir: %s", dir, strerror(errno));
    while (!rc && (e = readdir(d))) {
        const char *n = e->d_name;
        char path[4096];
        struct stat st;
        if (!strcmp(n, ".") || !strcmp(n, "..") || !strcmp(n, "LOCK")
            || !strcmp(n, "vectors.nfv.tmp"))
            continue;
        bool small = false;
        for (int k = S_NORM; k < S_NFILES; k++)
            small |= !strcmp(n, s_kinds[k].name);
        if (small && s_file_path(dir, n, path, sizeof path) && stat(path, &st) == 0
            && S_ISREG(st.st_mode) && st.st_size <= S_SMALL_HDR)
            continue;
        if (small || !strcmp(n, "tombstones.nft") || !strcmp(n, "recovered"))
            rc = nf_error_set(NF_ECORRUPT, "%s: incomplete segment: vectors.nfv is missing but "
                              "%s is there; refusing to create a segment over it", dir, n);
        else
            rc = nf_error_set(NF_EEXIST, "%s: not empty (holds %s) and not a segment; only an "
                              "empty or absent directory becomes a new segment", dir, n);
    }
    closedir(d);
    return rc;
}

static int
s_create(const char *dir, uint32_t dim, nf_metric_t metric, const nf_segment_opts_t *opts,
         nf_segment_t **out)
{
    char path[4096], tmp[4096];
    int rc;
    if (!dir || !out)
        return nf_error_set(NF_EINVAL, "nf_segment_create: NULL argument");
    *out = NULL;
    if (dim < 1 || dim > NF_DIM_MAX)
        return nf_error_set(NF_EINVAL, "%s: dim %u out of range 1..%d", dir, dim, NF_DIM_MAX);
    if ((unsigned) metric > NF_METRIC_COSINE)
        return nf_error_set(NF_EINVAL, "%s: unknown metric %d", dir, (int) metric);
    bool made = mkdir(dir, 0755) == 0;
    if (!made && errno != EEXIST)
        return nf_error_set(NF_EIO, "%s: mkdir: %s", dir, strerror(errno));
    if (!s_file_path(dir, s_kinds[S_VEC].name, path, sizeof path)
        || !s_file_path(dir, "vectors.nfv.tmp", tmp, sizeof tmp))
        return nf_error_set(NF_EINVAL, "%s: path too long", dir);
    /* a handle only to hold the lock and write the first slots */
    nf_segment_t t = {.dir = (char *) dir, .dim = dim, .metric = metric, .lock_fd = -1,
                      .nfiles = S_NFILES};
    for (int k = 0; k < S_TABLE_MAX; k++) {
        t.f[k].fd = -1;
        t.tail[k] = XXH3_64bits(NULL, 0);
    }
    if ((rc = s_lock(&t)))
        return rc;
    if (access(path, F_OK) == 0) {
        rc = nf_error_set(NF_EEXIST, "%s: already holds a segment (vectors.nfv exists)", dir);
        goto fail;
    }
    if ((rc = s_check_empty(dir)))
        goto fail;
    for (int k = S_NORM; k < S_NFILES; k++)
        if ((rc = s_write_new(dir, k, s_kinds[k].name)))
            goto fail;
    if ((t.f[S_VEC].fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644)) < 0
        || ftruncate(t.f[S_VEC].fd, S_VEC_HDR) != 0) {
        rc = nf_error_set(NF_EIO, "%s: %s", tmp, strerror(errno));
        goto fail;
    }
    t.seq = UINT64_MAX;     /* so the two commits write seq 0 (slot 0) and 1 (slot 1) */
    if ((rc = nf_seg_commit(&t, NULL, 0, 0)) || (rc = nf_seg_commit(&t, NULL, 0, 0)))
        goto fail;
    close(t.f[S_VEC].fd);
    t.f[S_VEC].fd = -1;
    if (rename(tmp, path) != 0) {
        rc = nf_error_set(NF_EIO, "%s: rename: %s", path, strerror(errno));
        goto fail;
    }
    s_sync_dir(dir);
    if (made && s_file_path(dir, "..", tmp, sizeof tmp))
        s_sync_dir(tmp);            /* the new directory's own entry */
    return s_open(dir, opts, t.lock_fd, true, out);
fail:
    if (t.f[S_VEC].fd >= 0)
        close(t.f[S_VEC].fd);
    close(t.lock_fd);
    return rc;
}

int
nf_segment_create(const char *dir, uint32_t dim, nf_metric_t metric, nf_segment_t **out)
{
    return s_create(dir, dim, metric, NULL, out);
}

int
nf_segment_open_or_create(const char *dir, uint32_t dim, nf_metric_t metric,
                          const nf_segment_opts_t *opts, nf_segment_t **out)
{
    char path[4096];
    int rc = NF_EEXIST;
    if (!dir || !out)
        return nf_error_set(NF_EINVAL, "nf_segment_open_or_create: NULL argument");
    *out = NULL;
    if (!s_file_path(dir, s_kinds[S_VEC].name, path, sizeof path))
        return nf_error_set(NF_EINVAL, "%s: path too long", dir);
    if (access(path, F_OK) != 0 && !(opts && opts->readonly))
        rc = s_create(dir, dim, metric, opts, out);
    if (rc == NF_EEXIST && access(path, F_OK) == 0)     /* created by someone else meanwhile */
        rc = nf_segment_open(dir, opts, out);
    else if (rc == NF_EEXIST && opts && opts->readonly)
        rc = nf_segment_open(dir, opts, out);
    if (rc)
        return rc;
    if ((*out)->dim != dim)
        rc = nf_error_set(NF_EDIM, "%s: segment has dim %u, requested dim %u", dir,
                          (*out)->dim, dim);
    else if ((*out)->metric != metric)
        rc = nf_error_set(NF_EINVAL, "%s: segment has metric %s, requested %s", dir,
                          nf_metric_name((*out)->metric), nf_metric_name(metric));
    if (rc)
        nf_segment_destroy(out);
    return rc;
}

void
nf_segment_destroy(nf_segment_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    nf_segment_t *s = *self_p;
    (void) nf_seg_settle(s);        /* a pipelined append in flight: durable first */
    nf_seg_syncer_stop(s);
    for (unsigned i = 0; i < s->ninflight; i++)
        free(s->inflight[i]);       /* kept only when one failed */
    for (int k = 0; k < S_TABLE_MAX; k++) {
        s_file_t *f = &s->f[k];
        if (f->map)
            munmap(f->map, f->map_len);
        if (f->fd >= 0 && !s->opts.readonly && s->tab_built) {
            /* give back the preallocated tail; failure is harmless */
            uint64_t used = s_used(s, k);
            if (f->cap > used && ftruncate(f->fd, (off_t) used) != 0) {
                /* ignored: the next writable open trims it */
            }
        }
        if (f->fd >= 0)
            close(f->fd);
        XXH3_freeState(s->st[k]);
        XXH3_freeState(s->st2[k]);
        free(s->ck[k]);
        free(s->fname[k]);
    }
    nf_seg_fields_free(s);
    if (s->lock_fd >= 0)
        close(s->lock_fd);
    free(s->mvec);
    free(s->mnorm);
    free(s->mpl);
    free(s->mploff);
    free(s->tab);
    free(s->tomb);
    free(s->notice);
    free(s->dir);
    free(s);
    *self_p = NULL;
}

/* ------------------------------------------------------------- queries */

int
nf_segment_get(nf_segment_t *s, const char *id, uint64_t *row)
{
    int rc;
    if (!s || !id)
        return nf_error_set(NF_EINVAL, "nf_segment_get: NULL argument");
    if (!s->tab_built && (rc = nf_seg_build(s, false)))
        return rc;
    size_t len = strnlen(id, NF_ID_MAX + 1);
    const s_entry_t *e = len <= NF_ID_MAX ? nf_seg_tab_find(s, id, len, s_fnv1a(id, len)) : NULL;
    if (!e)
        return nf_error_set(NF_ENOTFOUND, "%s: no document with id \"%.64s\"", s->dir, id);
    if (row)
        *row = e->row1 - 1;
    return 0;
}

uint32_t nf_segment_dim(const nf_segment_t *s) { return s->dim; }
nf_metric_t nf_segment_metric(const nf_segment_t *s) { return s->metric; }
uint64_t nf_segment_rows(const nf_segment_t *s) { return s->rows; }
uint64_t nf_segment_deleted(const nf_segment_t *s) { return s->deleted; }
uint64_t nf_segment_count(const nf_segment_t *s) { return s->rows - s->deleted; }
const char *nf_segment_dir(const nf_segment_t *s) { return s->dir; }
const char *nf_segment_notice(const nf_segment_t *s) { return s ? s->notice : NULL; }
uint64_t nf_segment_seq(const nf_segment_t *s) { return s->seq; }

const float *
nf_segment_vectors(nf_segment_t *s, uint64_t row0, uint64_t n)
{
    if (row0 > s->rows || n > s->rows - row0)
        return NULL;
    if (s->opts.vectors == NF_MEM_MEMORY)
        return s->mvec + row0 * s->dim;
    return (const float *) (s->f[S_VEC].map + S_VEC_HDR) + row0 * s->dim;
}

int
nf_segment_read_vectors(nf_segment_t *s, const uint64_t *rows, size_t n, float *dst)
{
    size_t vb = (size_t) s->dim * sizeof(float);
    for (size_t i = 0; i < n; i++) {
        if (rows[i] >= s->rows)
            return nf_error_set(NF_EINVAL, "%s: row %llu past the %llu rows", s->dir,
                                (unsigned long long) rows[i], (unsigned long long) s->rows);
        if (s->opts.vectors == NF_MEM_MEMORY) {
            memcpy((char *) dst + i * vb, s->mvec + rows[i] * s->dim, vb);
            continue;
        }
        ssize_t got = s_pread_all(s->f[S_VEC].fd, (char *) dst + i * vb, vb,
                                  S_VEC_HDR + rows[i] * vb);
        if (got != (ssize_t) vb)
            return s_serr(s, S_VEC, NF_EIO, "read of row %llu: %s", (unsigned long long) rows[i],
                          got < 0 ? strerror(errno) : "short read");
    }
    return 0;
}

int
nf_segment_read_norms(nf_segment_t *s, uint64_t row0, uint64_t n, float *dst)
{
    if (row0 > s->rows || n > s->rows - row0)
        return nf_error_set(NF_EINVAL, "%s: norms of rows %llu..+%llu past the %llu rows", s->dir,
                            (unsigned long long) row0, (unsigned long long) n,
                            (unsigned long long) s->rows);
    if (s->opts.vectors == NF_MEM_MEMORY) {
        memcpy(dst, s->mnorm + row0, n * sizeof(float));
        return 0;
    }
    size_t len = n * sizeof(float);
    ssize_t got = s_pread_all(s->f[S_NORM].fd, dst, len, S_SMALL_HDR + row0 * sizeof(float));
    if (got != (ssize_t) len)
        return s_serr(s, S_NORM, NF_EIO, "read of the norms of rows %llu..+%llu: %s",
                      (unsigned long long) row0, (unsigned long long) n,
                      got < 0 ? strerror(errno) : "short read");
    return 0;
}

/* Drop the whole 2 MiB blocks (in file offsets, from the mapping's base)
   that [lo, hi) of a mapping finishes: from the block holding lo (its part
   before lo belongs to the window before, already scanned) up to the last
   block that ends by hi, or to hi itself when hi is the end of the data.
   A block shared with the next window is left for that window to drop, so
   it is never dropped and faulted back in (with its neighbourhood) twice,
   and the page cache can keep serving it as one large folio.  outward:
   the block holding hi too (to at most len, the mapping's length). */
static void
s_release_blocks(const char *base, uint64_t lo, uint64_t hi, bool last, bool outward,
                 uint64_t len)
{
    uint64_t a = lo & ~(uint64_t) (S_BLOCK - 1);
    uint64_t b = last ? (hi + S_PAGE - 1) & ~(uint64_t) (S_PAGE - 1)
                      : hi & ~(uint64_t) (S_BLOCK - 1);
    if (outward && !last)
        b = (hi + S_BLOCK - 1) & ~(uint64_t) (S_BLOCK - 1);
    if (b > len)
        b = len & ~(uint64_t) (S_PAGE - 1);
    if (b > a)
        madvise((void *) (base + a), b - a, MADV_DONTNEED);
}

static void
s_release(nf_segment_t *s, uint64_t row0, uint64_t n, bool outward)
{
    if (!s || row0 >= s->rows)
        return;
    if (n > s->rows - row0)
        n = s->rows - row0;
    nf_seg_fields_release(s, row0, n);
    if (s->opts.vectors != NF_MEM_MMAP)
        return;
    bool last = row0 + n == s->rows;
    uint64_t vb = (uint64_t) s->dim * sizeof(float);
    const s_file_t *v = &s->f[S_VEC];
    s_release_blocks(v->map, S_VEC_HDR + row0 * vb, S_VEC_HDR + (row0 + n) * vb, last,
                     outward, v->map_len);
}

void
nf_segment_release(nf_segment_t *s, uint64_t row0, uint64_t n)
{
    s_release(s, row0, n, false);
}

void
nf_segment_release_span(nf_segment_t *s, uint64_t row0, uint64_t n)
{
    s_release(s, row0, n, true);
}

void
nf_segment_release_columns(nf_segment_t *s, uint64_t row0, uint64_t n)
{
    if (!s || row0 >= s->rows)
        return;
    nf_seg_fields_release(s, row0, n > s->rows - row0 ? s->rows - row0 : n);
}

void
nf_segment_release_lookups(nf_segment_t *s)
{
    static const int kinds[] = {S_IDDAT, S_IDOFF, S_PLDAT, S_PLOFF};
    for (size_t i = 0; s && i < sizeof kinds / sizeof kinds[0]; i++) {
        const s_file_t *f = &s->f[kinds[i]];
        if (f->map && nf_seg_mapped(s, kinds[i]))
            madvise(f->map, f->map_len, MADV_DONTNEED);
    }
}

bool
nf_segment_is_deleted(const nf_segment_t *s, uint64_t row)
{
    if (row >= s->rows)
        return true;
    return s->tomb[row / 64] >> (row % 64) & 1;
}

const uint64_t *
nf_segment_tombstones(const nf_segment_t *s)
{
    return s->tomb;
}

const char *
nf_segment_id(nf_segment_t *s, uint64_t row, size_t *len)
{
    uint64_t start, end;
    if (row >= s->rows || !nf_seg_extent(s, S_IDOFF, row, &start, &end) || end - start < 2
        || end - start - 1 > NF_ID_MAX)
        return NULL;
    const char *id = s->f[S_IDDAT].map + S_SMALL_HDR + start;
    if (id[end - start - 1] != '\0')
        return NULL;
    if (len)
        *len = strlen(id);
    return id;
}

const void *
nf_segment_payload(nf_segment_t *s, uint64_t row, size_t *len)
{
    uint64_t start, end;
    if (len)
        *len = 0;
    if (row >= s->rows || !nf_seg_extent(s, S_PLOFF, row, &start, &end))
        return NULL;
    if (len)
        *len = (size_t) (end - start);
    if (s->opts.payloads == NF_MEM_MEMORY)
        return s->mpl + start;
    return s->f[S_PLDAT].map + S_SMALL_HDR + start;
}

int
nf_segment_files(const nf_segment_t *s, nf_segment_file_t *files, size_t max, size_t *n)
{
    size_t k;
    for (k = 0; k < s->nfiles && k < max; k++) {
        struct stat st;
        if (fstat(s->f[k].fd, &st) != 0)
            return s_serr(s, (int) k, NF_EIO, "fstat: %s", strerror(errno));
        files[k].name = s_kname(s, (int) k);
        files[k].bytes = (uint64_t) st.st_size;
        files[k].used = s_used(s, (int) k);
    }
    if (n)
        *n = k;
    return 0;
}

/* ------------------------------------------------------------- verify */

int
nf_segment_verify(const char *dir, uint64_t *bytes_checked)
{
    nf_segment_t *s = NULL;
    nf_segment_opts_t ro = {.readonly = true};
    uint64_t checked = 0;
    if (bytes_checked)
        *bytes_checked = 0;
    if (!dir)
        return nf_error_set(NF_EINVAL, "nf_segment_verify: NULL argument");
    int rc = s_open(dir, &ro, -1, false, &s), first = 0;
    if (rc)
        return rc;
    unsigned char *buf = malloc(S_CHUNK);
    char msg[2048] = "";
    if (!buf) {
        nf_segment_destroy(&s);
        return nf_error_set(NF_ENOMEM, "%s: out of memory", dir);
    }
    for (int k = 0; k < (int) s->nfiles; k++) {
        if (k == S_CK)
            continue;
        int r = s_check_chunks(s, k, 0, buf, false, &checked);
        if (!r)
            continue;
        if (!first)
            first = r;
        size_t n = strlen(msg);
        snprintf(msg + n, sizeof msg - n, "%s%s", n ? "; " : "", nf_error_msg());
        if (r != NF_ECORRUPT)
            break;
    }
    free(buf);
    nf_segment_destroy(&s);
    if (bytes_checked)
        *bytes_checked = checked;
    return first ? nf_error_set(first, "%s", msg) : 0;
}
