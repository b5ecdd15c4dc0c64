/*  nf_segment: one shard's on-disk vector store.

    On-disk format, version 1 (NF_SEGMENT_VERSION).  All integers are
    little-endian.  A segment is a directory holding:

      vectors.nfv     4096-byte header page, then the rows: row r is dim
                      float32 at byte 4096 + r*dim*4 (page-aligned body).
      norms.nfn       64-byte header, then float32 ||x||^2 of each row.
      ids.dat         64-byte header, then each row's id bytes and a NUL.
      ids.off         64-byte header, then u64 per row: the END offset of
                      that row's id (NUL included) in the ids.dat body; its
                      start is the previous row's end (0 for row 0).
      payload.dat     64-byte header, then each row's payload bytes.
      payload.off     like ids.off, for payload.dat.
      tombstones.nft  64-byte header, then u64 words: bit r%64 of word r/64
                      set = row r deleted.
      LOCK            flock(LOCK_EX) by the one writer; holds its pid.

    The 64-byte header of the small files: bytes 0..7 a magic naming the
    file kind ("NFSEGNRM", "NFSEGIDD", "NFSEGIDO", "NFSEGPLD", "NFSEGPLO",
    "NFSEGTMB"), 8..11 u32 format version, the rest zero.

    The header page of vectors.nfv holds two 128-byte commit slots, slot 0
    at byte 0 and slot 1 at byte 2048 (different disk sectors):
        0 magic "NFLOWSEG"     8 u32 version      12 u32 dim
       16 u32 metric          20 u32 zero         24 u64 seq
       32 u64 rows            40 u64 deleted      48 u64 ids.dat body bytes
       56 u64 payload.dat body bytes              64..119 zero
      120 u64 FNV-1a 64 of bytes 0..119
    The current header is the slot with magic, version and checksum valid
    and the highest seq.  Everything past the committed rows / bytes is
    ignored (trimmed when opened writable).

    Commit (nf_segment_append): write the batch's rows, norms, ids and
    payloads past the committed ends with one pwrite per file, fdatasync
    each file, then write header seq+1 into slot (seq+1)%2 and fdatasync
    vectors.nfv.  A torn slot fails its checksum and the other, older slot
    is used, so a crash at any instant leaves the last acknowledged commit.
    Upserts then set the replaced rows' tombstone bits, msync the bitmap and
    write the header again with the new deleted count.  A crash in between
    leaves an id live twice; a writable open repairs that (the later row
    wins, the earlier is tombstoned).  The bitmap is the truth for deletions:
    open recounts it.  A delete interrupted by a crash may be applied to
    some of its ids and not others; an acknowledged delete is whole.

    Memory: vectors/norms and payloads follow their nf_mempolicy_t; ids,
    ids.off and tombstones are always mapped.  The id -> row hash table is
    built at a writable open, and only at the first nf_segment_get for a
    read-only one, so search-only use keeps constant memory.  Writers grow
    the files in chunks (fallocate) and trim them to the committed size on
    close.

    Code: this file opens, creates, closes and reads a segment;
    nf_segment_write.c grows and commits it, keeps the id -> row table and
    does append and delete; nf_segment_impl.h (private) holds the handle
    struct and what the two share.                                          */
#include "nf_segment_impl.h"
#include "nf_error.h"

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

/* Bytes read (short only at end of file) or -1. */
static ssize_t
s_pread_all(int fd, void *buf, size_t len, uint64_t off)
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

static uint64_t
s_hdr(int kind)
{
    return kind == S_VEC ? S_PAGE : S_SMALL_HDR;
}

/* Bytes of file `kind` that hold committed data. */
static uint64_t
s_used(const nf_segment_t *s, int kind, uint64_t rows, uint64_t idb, uint64_t plb)
{
    switch (kind) {
    case S_VEC: return S_PAGE + rows * s->dim * sizeof(float);
    case S_NORM: return S_SMALL_HDR + rows * sizeof(float);
    case S_IDDAT: return S_SMALL_HDR + idb;
    case S_PLDAT: return S_SMALL_HDR + plb;
    case S_TOMB: return S_SMALL_HDR + s_words(rows) * 8;
    default: return S_SMALL_HDR + rows * 8;     /* the .off files */
    }
}

/* Start/end of a row's record in a .dat body, checked against the
   committed size; false when the offsets are corrupt. */
bool
nf_seg_extent(const nf_segment_t *s, int offkind, uint64_t row, uint64_t *start, uint64_t *end)
{
    const uint64_t *off = s_off(s, offkind);
    uint64_t limit = offkind == S_IDOFF ? s->ids_bytes : s->pl_bytes;
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

static const char *
s_file_path(const char *dir, const char *name, char *buf, size_t size)
{
    int n = snprintf(buf, size, "%s/%s", dir, name);
    return n > 0 && (size_t) n < size ? buf : NULL;
}

static int
s_open_fd(const char *dir, int kind, int flags, int *fd)
{
    char path[4096];
    if (!s_file_path(dir, s_kinds[kind].name, path, sizeof path))
        return nf_error_set(NF_EINVAL, "%s: path too long", dir);
    *fd = open(path, flags | O_CLOEXEC, 0644);
    if (*fd >= 0)
        return 0;
    if (errno == ENOENT && kind == S_VEC)
        return nf_error_set(NF_ENOTFOUND, "%s: not a segment (no vectors.nfv)", dir);
    if (errno == ENOENT)
        return s_ferr(dir, kind, NF_ECORRUPT, "missing (the segment is incomplete)");
    return s_ferr(dir, kind, NF_EIO, "open: %s", strerror(errno));
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

/* Read the header page of vectors.nfv and adopt its current slot. */
static int
s_read_header(nf_segment_t *s, uint64_t size)
{
    unsigned char page[S_PAGE];
    const char *magic = s_kinds[S_VEC].magic;
    if (size == 0)
        return s_ferr(s->dir, S_VEC, NF_ECORRUPT,
                      "truncated: empty file (a segment starts with a %u-byte header page)",
                      S_PAGE);
    size_t want = size < S_PAGE ? (size_t) size : S_PAGE;
    ssize_t got = s_pread_all(s->f[S_VEC].fd, page, want, 0);
    if (got < 0)
        return s_ferr(s->dir, S_VEC, NF_EIO, "read: %s", strerror(errno));
    bool m0 = got >= 8 && !memcmp(page, magic, 8);
    bool m1 = (size_t) got >= S_SLOT1_OFF + 8 && !memcmp(page + S_SLOT1_OFF, magic, 8);
    if (got >= 8 && !m0 && !m1)
        return s_ferr(s->dir, S_VEC, NF_EFORMAT, "bad magic (not an nflow segment)");
    if ((size_t) got < S_PAGE)
        return s_ferr(s->dir, S_VEC, NF_ECORRUPT,
                      "truncated: %llu bytes, the header page needs %u",
                      (unsigned long long) size, S_PAGE);
    s_slot_t slot[2];
    int best = -1, badver = -1;
    const char *why = "header checksum mismatch in both slots";
    for (int i = 0; i < 2; i++) {
        memcpy(&slot[i], page + (i ? S_SLOT1_OFF : 0), sizeof slot[i]);
        const s_slot_t *h = &slot[i];
        if (memcmp(h->magic, magic, 8))
            continue;
        if (h->version != NF_SEGMENT_VERSION) {
            badver = i;
            continue;
        }
        if (h->checksum != s_fnv1a(h, offsetof(s_slot_t, checksum)))
            continue;
        if (h->dim < 1 || h->dim > NF_DIM_MAX || h->metric > NF_METRIC_COSINE
            || h->rows > S_ROWS_MAX || h->deleted > h->rows
            || h->ids_bytes > S_BYTES_MAX || h->pl_bytes > S_BYTES_MAX
            || (h->rows == 0 && (h->ids_bytes || h->pl_bytes))) {
            why = "header values out of range in both slots";
            continue;
        }
        if (best < 0 || h->seq > slot[best].seq)
            best = i;
    }
    if (best < 0 && badver >= 0)
        return s_ferr(s->dir, S_VEC, NF_EVERSION, "format version %u, this build reads %d",
                      slot[badver].version, NF_SEGMENT_VERSION);
    if (best < 0)
        return s_ferr(s->dir, S_VEC, NF_ECORRUPT, "%s", why);
    const s_slot_t *h = &slot[best];
    s->dim = h->dim;
    s->metric = (nf_metric_t) h->metric;
    s->seq = h->seq;
    s->rows = h->rows;
    s->deleted = h->deleted;
    s->ids_bytes = h->ids_bytes;
    s->pl_bytes = h->pl_bytes;
    return 0;
}

/* Check a small file's header: magic (naming what it is if it is another
   segment file), version. */
static int
s_check_small(const nf_segment_t *s, int kind, uint64_t size)
{
    char hdr[S_SMALL_HDR];
    if (size == 0)
        return s_ferr(s->dir, kind, NF_ECORRUPT, "truncated: empty file");
    ssize_t got = s_pread_all(s->f[kind].fd, hdr, sizeof hdr, 0);
    if (got < 0)
        return s_ferr(s->dir, kind, NF_EIO, "read: %s", strerror(errno));
    if (got >= 8 && memcmp(hdr, s_kinds[kind].magic, 8)) {
        for (int k = 0; k < S_NFILES; k++)
            if (!memcmp(hdr, s_kinds[k].magic, 8))
                return s_ferr(s->dir, kind, NF_EFORMAT,
                              "bad magic: this is an nflow %s file, expected %s",
                              s_kinds[k].what, s_kinds[kind].what);
        return s_ferr(s->dir, kind, NF_EFORMAT, "bad magic (not an nflow %s file)",
                      s_kinds[kind].what);
    }
    if ((size_t) got < sizeof hdr)
        return s_ferr(s->dir, kind, NF_ECORRUPT, "truncated: %llu bytes, the header needs %u",
                      (unsigned long long) size, S_SMALL_HDR);
    uint32_t version;
    memcpy(&version, hdr + 8, sizeof version);
    if (version != NF_SEGMENT_VERSION)
        return s_ferr(s->dir, kind, NF_EVERSION, "format version %u, this build reads %d",
                      version, NF_SEGMENT_VERSION);
    return 0;
}

static int
s_read_body(nf_segment_t *s, int kind, void *dst, uint64_t len)
{
    ssize_t got = len ? s_pread_all(s->f[kind].fd, dst, len, s_hdr(kind)) : 0;
    if (got < 0 || (uint64_t) got != len)
        return s_ferr(s->dir, kind, NF_EIO, "read of %llu bytes: %s", (unsigned long long) len,
                      got < 0 ? strerror(errno) : "short read");
    return 0;
}

/* Memory policy: load vectors + norms and/or payloads into RAM. */
static int
s_load(nf_segment_t *s)
{
    int rc = nf_seg_grow_ram(s, s->rows + 1, s->pl_bytes + 1);
    if (!rc && s->opts.vectors == NF_MEM_MEMORY
        && ((rc = s_read_body(s, S_VEC, s->mvec, s->rows * s->dim * sizeof(float)))
            || (rc = s_read_body(s, S_NORM, s->mnorm, s->rows * sizeof(float)))))
        return rc;
    if (!rc && s->opts.payloads == NF_MEM_MEMORY
        && ((rc = s_read_body(s, S_PLDAT, s->mpl, s->pl_bytes))
            || (rc = s_read_body(s, S_PLOFF, s->mploff, s->rows * 8))))
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
        uint64_t len = s_used(s, kinds[i], s->rows, s->ids_bytes, s->pl_bytes);
        if (!f->map)
            continue;
        madvise(f->map, len, MADV_WILLNEED);
        for (uint64_t off = 0; off < len; off += S_PAGE)
            sink ^= (unsigned char) f->map[off];
    }
    (void) sink;
}

static int
s_open(const char *dir, const nf_segment_opts_t *opts, int lock_fd, nf_segment_t **out)
{
    int rc = 0;
    struct stat st;
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
    for (int k = 0; k < S_NFILES; k++)
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
    if (rw && lock_fd < 0 && (rc = s_lock(s)))
        goto fail;
    for (int k = 0; k < S_NFILES; k++) {
        /* O_NONBLOCK: a FIFO planted in the directory must not hang us */
        if ((rc = s_open_fd(s->dir, k, (rw ? O_RDWR : O_RDONLY) | O_NONBLOCK, &s->f[k].fd)))
            goto fail;
        if (fstat(s->f[k].fd, &st) != 0) {
            rc = s_ferr(s->dir, k, NF_EIO, "fstat: %s", strerror(errno));
            goto fail;
        }
        if (!S_ISREG(st.st_mode)) {
            rc = s_ferr(s->dir, k, NF_EFORMAT, "not a regular file");
            goto fail;
        }
        s->f[k].cap = (uint64_t) st.st_size;
        if ((rc = k == S_VEC ? s_read_header(s, s->f[k].cap) : s_check_small(s, k, s->f[k].cap)))
            goto fail;
        uint64_t need = s_used(s, k, s->rows, s->ids_bytes, s->pl_bytes);
        if (s->f[k].cap < need) {
            if (k == S_VEC)
                rc = s_ferr(s->dir, k, NF_ECORRUPT, "truncated: header says %llu rows "
                            "(%llu bytes) but file has %llu", (unsigned long long) s->rows,
                            (unsigned long long) (need - S_PAGE),
                            (unsigned long long) s->f[k].cap);
            else
                rc = s_ferr(s->dir, k, NF_ECORRUPT, "truncated: %llu rows need %llu bytes "
                            "but file has %llu", (unsigned long long) s->rows,
                            (unsigned long long) need, (unsigned long long) s->f[k].cap);
            goto fail;
        }
        if (rw && s->f[k].cap > need && ftruncate(s->f[k].fd, (off_t) need) != 0) {
            rc = s_ferr(s->dir, k, NF_EIO, "trimming uncommitted data: %s", strerror(errno));
            goto fail;
        }
        s->f[k].cap = need;
        if (nf_seg_mapped(s, k) && (rc = nf_seg_map(s, k, need)))
            goto fail;
    }
    if ((rc = s_load(s)))
        goto fail;
    static const int offkinds[] = {S_IDOFF, S_PLOFF};
    for (size_t i = 0; i < 2; i++) {
        int k = offkinds[i];
        uint64_t last = s->rows ? s_off(s, k)[s->rows - 1] : 0;
        uint64_t want = k == S_IDOFF ? s->ids_bytes : s->pl_bytes;
        if (last != want) {
            rc = s_ferr(s->dir, k, NF_ECORRUPT, "last offset %llu but the header says %llu "
                        "bytes", (unsigned long long) last, (unsigned long long) want);
            goto fail;
        }
    }
    /* the bitmap is the truth for deletions: clear bits past the last row
       (writer) and recount */
    uint64_t *tomb = s_tomb_words(s), words = s_words(s->rows), dead = 0;
    if (rw && (s->rows % 64))
        tomb[words - 1] &= (1ull << (s->rows % 64)) - 1;
    for (uint64_t w = 0; w < words; w++) {
        uint64_t v = tomb[w];
        if (w == words - 1 && (s->rows % 64))
            v &= (1ull << (s->rows % 64)) - 1;
        dead += (uint64_t) __builtin_popcountll(v);
    }
    uint64_t hdr_deleted = s->deleted;
    s->deleted = dead;
    if (rw) {
        if ((rc = nf_seg_build(s, true)))
            goto fail;
        if (s->deleted != hdr_deleted
            && (rc = nf_seg_commit(s, s->rows, s->deleted, s->ids_bytes, s->pl_bytes)))
            goto fail;
    }
    if (s->opts.warmup)
        s_warmup(s);
    *out = s;
    return 0;
fail:
    nf_segment_destroy(&s);
    return rc;
}

int
nf_segment_open(const char *dir, const nf_segment_opts_t *opts, nf_segment_t **out)
{
    if (!dir || !out)
        return nf_error_set(NF_EINVAL, "nf_segment_open: NULL argument");
    return s_open(dir, opts, -1, out);
}

static void
s_sync_dir(const char *dir)
{
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        fsync(dfd);
        close(dfd);
    }
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
    if (kind != S_VEC) {
        uint32_t v = NF_SEGMENT_VERSION;
        memcpy(hdr, s_kinds[kind].magic, 8);
        memcpy(hdr + 8, &v, sizeof v);
    }
    int rc = nf_seg_pwrite_all(fd, hdr, s_hdr(kind), 0) || fdatasync(fd);
    int err = errno;
    close(fd);
    if (rc)
        return nf_error_set(NF_EIO, "%s: %s", path, strerror(err));
    return 0;
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
    /* a handle only to hold the lock and write the first header */
    nf_segment_t t = {.dir = (char *) dir, .dim = dim, .metric = metric, .lock_fd = -1};
    t.f[S_VEC].fd = -1;
    if ((rc = s_lock(&t)))
        return rc;
    if (access(path, F_OK) == 0) {
        rc = nf_error_set(NF_EEXIST, "%s: already holds a segment (vectors.nfv exists)", dir);
        goto fail;
    }
    for (int k = S_NORM; k < S_NFILES; k++)
        if ((rc = s_write_new(dir, k, s_kinds[k].name)))
            goto fail;
    if ((rc = s_write_new(dir, S_VEC, "vectors.nfv.tmp")))
        goto fail;
    if ((t.f[S_VEC].fd = open(tmp, O_WRONLY | O_CLOEXEC)) < 0) {
        rc = nf_error_set(NF_EIO, "%s: %s", tmp, strerror(errno));
        goto fail;
    }
    t.seq = UINT64_MAX;     /* so the two commits write seq 0 (slot 0) and 1 (slot 1) */
    if ((rc = nf_seg_commit(&t, 0, 0, 0, 0)) || (rc = nf_seg_commit(&t, 0, 0, 0, 0)))
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
    return s_open(dir, opts, t.lock_fd, out);
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
    if (rc == NF_EEXIST)        /* there already, or created by someone else meanwhile */
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
    for (int k = 0; k < S_NFILES; k++) {
        s_file_t *f = &s->f[k];
        if (f->map)
            munmap(f->map, f->map_len);
        if (f->fd >= 0 && !s->opts.readonly && s->tab_built) {
            /* give back the preallocated tail; failure is harmless */
            uint64_t used = s_used(s, k, s->rows, s->ids_bytes, s->pl_bytes);
            if (f->cap > used && ftruncate(f->fd, (off_t) used) != 0) {
                /* ignored: the next writable open trims it */
            }
        }
        if (f->fd >= 0)
            close(f->fd);
    }
    if (s->lock_fd >= 0)
        close(s->lock_fd);
    free(s->mvec);
    free(s->mnorm);
    free(s->mpl);
    free(s->mploff);
    free(s->tab);
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

const float *
nf_segment_vectors(nf_segment_t *s, uint64_t row0, uint64_t n)
{
    if (row0 > s->rows || n > s->rows - row0)
        return NULL;
    if (s->opts.vectors == NF_MEM_MEMORY)
        return s->mvec + row0 * s->dim;
    return (const float *) (s->f[S_VEC].map + S_PAGE) + row0 * s->dim;
}

const float *
nf_segment_norms(nf_segment_t *s, uint64_t row0, uint64_t n)
{
    if (row0 > s->rows || n > s->rows - row0)
        return NULL;
    if (s->opts.vectors == NF_MEM_MEMORY)
        return s->mnorm + row0;
    return (const float *) (s->f[S_NORM].map + S_SMALL_HDR) + row0;
}

/* Drop the pages covering [lo, hi) from this process, rounding outward:
   the mappings are read-only views of the files, so a page dropped while a
   neighbouring window still needs it is simply faulted in again from the
   page cache.  Rounding inward would leave one page per window resident
   (the norms start after a 64-byte header) and let RSS grow with rows. */
static void
s_dontneed(const char *lo, const char *hi)
{
    uintptr_t a = (uintptr_t) lo & ~(uintptr_t) (S_PAGE - 1);
    uintptr_t b = ((uintptr_t) hi + S_PAGE - 1) & ~(uintptr_t) (S_PAGE - 1);
    if (b > a)
        madvise((void *) a, b - a, MADV_DONTNEED);
}

void
nf_segment_release(nf_segment_t *s, uint64_t row0, uint64_t n)
{
    if (!s || s->opts.vectors != NF_MEM_MMAP || row0 >= s->rows)
        return;
    if (n > s->rows - row0)
        n = s->rows - row0;
    const char *v = s->f[S_VEC].map + S_PAGE;
    const char *nm = s->f[S_NORM].map + S_SMALL_HDR;
    uint64_t vb = (uint64_t) s->dim * sizeof(float);
    s_dontneed(v + row0 * vb, v + (row0 + n) * vb);
    s_dontneed(nm + row0 * sizeof(float), nm + (row0 + n) * sizeof(float));
}

bool
nf_segment_is_deleted(const nf_segment_t *s, uint64_t row)
{
    if (row >= s->rows)
        return true;
    return s_tomb_words(s)[row / 64] >> (row % 64) & 1;
}

const uint64_t *
nf_segment_tombstones(const nf_segment_t *s)
{
    return s_tomb_words(s);
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
    for (k = 0; k < S_NFILES && k < max; k++) {
        struct stat st;
        if (fstat(s->f[k].fd, &st) != 0)
            return s_ferr(s->dir, (int) k, NF_EIO, "fstat: %s", strerror(errno));
        files[k].name = s_kinds[k].name;
        files[k].bytes = (uint64_t) st.st_size;
        files[k].used = s_used(s, (int) k, s->rows, s->ids_bytes, s->pl_bytes);
    }
    if (n)
        *n = k;
    return 0;
}
