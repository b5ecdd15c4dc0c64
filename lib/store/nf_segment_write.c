/*  nf_segment_write: the writing half of the nf_segment module (API in
    nf_segment.h; on-disk format and commit protocol at the top of
    nf_segment.c; shared internals in nf_segment_impl.h).

    Owns: growing and mapping the segment files (and the memory-policy RAM
    copies), the commit (data appended to every file, chunk checksums
    extended, all synced, then one slot written and synced), the id -> row
    table (built at open, kept current by append and delete) and append
    (upsert) and delete.  Deletes and the rows an upsert replaces go to the
    append-only delete log in the same commit as the rows: nothing is ever
    written in place.                                                       */
#include "nf_segment_impl.h"
#include "nf_error.h"
#include "nf_floats.h"

#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

/* ---------------------------------------------------------------- helpers */

static uint64_t
s_mix(uint64_t h)
{
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 33;
    return h;
}

int
nf_seg_pwrite_all(int fd, const void *buf, size_t len, uint64_t off)
{
    const char *p = buf;
    while (len > 0) {
        ssize_t w = pwrite(fd, p, len, (off_t) off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            if (w == 0)
                errno = EIO;
            return -1;
        }
        p += w;
        len -= (size_t) w;
        off += (uint64_t) w;
    }
    return 0;
}

/* Write a then b at off in one call when the kernel takes it whole. */
static int
s_pwrite2(int fd, const void *a, size_t alen, const void *b, size_t blen, uint64_t off)
{
    struct iovec iov[2] = {{(void *) a, alen}, {(void *) b, blen}};
    ssize_t w;
    do
        w = pwritev(fd, iov, 2, (off_t) off);
    while (w < 0 && errno == EINTR);
    if (w < 0)
        return -1;
    size_t done = (size_t) w;
    if (done < alen) {
        if (nf_seg_pwrite_all(fd, (const char *) a + done, alen - done, off + done))
            return -1;
        done = alen;
    }
    size_t bd = done - alen;
    return bd < blen ? nf_seg_pwrite_all(fd, (const char *) b + bd, blen - bd, off + alen + bd)
                     : 0;
}

bool
nf_seg_mapped(const nf_segment_t *s, int kind)
{
    if (kind == S_VEC || kind == S_NORM)
        return s->opts.vectors == NF_MEM_MMAP;
    if (kind == S_PLDAT || kind == S_PLOFF)
        return s->opts.payloads == NF_MEM_MMAP;
    if (kind >= S_SCHEMA)
        return nf_seg_col_width(s, kind) > 0;     /* columns (dictionaries are in RAM) */
    return kind == S_IDDAT || kind == S_IDOFF;
}

/* Map len bytes of fd at a 2 MiB-aligned address, so file offsets and
   addresses agree modulo 2 MiB and the page cache's large folios of the
   2 MiB-aligned vectors body can be mapped whole.  MADV_HUGEPAGE: a fault
   on a block the page cache no longer holds (evicted under memory
   pressure or by the host's proactive reclaim) reads it back as 2 MiB
   folios instead of ramping up from 4 KiB ones (a hint; THP "never" or an
   old kernel ignores it; it does not change folios already cached). */
static void *
s_map_aligned(int fd, size_t len)
{
    size_t span = (len + S_PAGE - 1) & ~(size_t) (S_PAGE - 1);
    char *r = mmap(NULL, span + S_BLOCK, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
                   -1, 0);
    if (r == MAP_FAILED)
        return MAP_FAILED;
    char *a = (char *) (((uintptr_t) r + S_BLOCK - 1) & ~(uintptr_t) (S_BLOCK - 1));
    void *p = mmap(a, len, PROT_READ, MAP_SHARED | MAP_FIXED, fd, 0);
    if (p == MAP_FAILED) {
        munmap(r, span + S_BLOCK);
        return MAP_FAILED;
    }
    (void) madvise(p, len, MADV_HUGEPAGE);
    if (a > r)
        munmap(r, (size_t) (a - r));
    if (r + span + S_BLOCK > a + span)
        munmap(a + span, (size_t) (r + span + S_BLOCK - (a + span)));
    return p;
}

int
nf_seg_map(nf_segment_t *s, int kind, uint64_t len)
{
    s_file_t *f = &s->f[kind];
    void *p;
    if (f->map && f->map_len == len)
        return 0;
    if (f->map)
        p = mremap(f->map, f->map_len, len, MREMAP_MAYMOVE);
    else if (kind == S_VEC || kind == S_NORM)
        p = s_map_aligned(f->fd, len);
    else
        p = mmap(NULL, len, PROT_READ, MAP_SHARED, f->fd, 0);
    if (p == MAP_FAILED)
        return s_serr(s, kind, NF_EIO, "mmap of %llu bytes: %s",
                      (unsigned long long) len, strerror(errno));
    f->map = p;
    f->map_len = len;
    return 0;
}

/* Make file `kind` at least `need` bytes, growing in chunks (vectors in
   whole 2 MiB blocks). */
static int
s_reserve(nf_segment_t *s, int kind, uint64_t need)
{
    s_file_t *f = &s->f[kind];
    if (need <= f->cap)
        return 0;
    uint64_t step = f->cap / 4, align = kind == S_VEC ? S_BLOCK : S_PAGE;
    if (step < (64u << 10))
        step = 64u << 10;
    if (step > (256ull << 20))
        step = 256ull << 20;
    uint64_t ncap = f->cap + step > need ? f->cap + step : need;
    ncap = (ncap + align - 1) & ~(uint64_t) (align - 1);
    if (fallocate(f->fd, 0, (off_t) f->cap, (off_t) (ncap - f->cap)) != 0) {
        if (errno != EOPNOTSUPP && errno != ENOSYS && errno != EINVAL)
            return s_serr(s, kind, NF_EIO, "cannot grow to %llu bytes: %s",
                          (unsigned long long) ncap, strerror(errno));
        if (ftruncate(f->fd, (off_t) ncap) != 0)
            return s_serr(s, kind, NF_EIO, "cannot grow to %llu bytes: %s",
                          (unsigned long long) ncap, strerror(errno));
    }
    f->cap = ncap;
    return nf_seg_mapped(s, kind) ? nf_seg_map(s, kind, ncap) : 0;
}

/* Grow a RAM array to hold `need` elements (doubling). */
static int
s_grow(void **p, uint64_t *cap, uint64_t need, size_t elem)
{
    if (need <= *cap && *p)
        return 0;
    uint64_t ncap = *cap ? *cap : 64;
    while (ncap < need)
        ncap *= 2;
    void *np = realloc(*p, ncap * elem);
    if (!np)
        return nf_error_set(NF_ENOMEM, "segment: out of memory growing to %llu x %zu bytes",
                            (unsigned long long) ncap, elem);
    *p = np;
    *cap = ncap;
    return 0;
}

int
nf_seg_grow_ram(nf_segment_t *s, uint64_t rows, uint64_t plb)
{
    int rc = 0;
    if (s->opts.vectors == NF_MEM_MEMORY && (rows > s->mvec_cap || !s->mvec)) {
        uint64_t cap = s->mvec_cap, ncap = s->mvec_cap;
        if ((rc = s_grow((void **) &s->mvec, &ncap, rows, (size_t) s->dim * sizeof(float)))
            || (rc = s_grow((void **) &s->mnorm, &cap, ncap, sizeof(float))))
            return rc;
        s->mvec_cap = ncap;
    }
    if (s->opts.payloads == NF_MEM_MEMORY
        && ((rc = s_grow((void **) &s->mpl, &s->mpl_cap, plb + 1, 1))
            || (rc = s_grow((void **) &s->mploff, &s->mploff_cap, rows + 1, 8))))
        return rc;
    return 0;
}

int
nf_seg_grow_tomb(nf_segment_t *s, uint64_t rows)
{
    uint64_t need = s_words(rows) + 1, old = s->tomb_cap;
    if (need <= old && s->tomb)
        return 0;
    if (!s->tomb) {
        /* calloc: a large bitmap stays untouched (not resident) until a
           row in it is deleted */
        uint64_t cap = need + need / 8 + 16;
        if (!(s->tomb = calloc(cap, sizeof(uint64_t))))
            return nf_error_set(NF_ENOMEM, "%s: out of memory for a %llu-row bitmap", s->dir,
                                (unsigned long long) rows);
        s->tomb_cap = cap;
        return 0;
    }
    int rc = s_grow((void **) &s->tomb, &s->tomb_cap, need, sizeof(uint64_t));
    if (!rc)
        memset(s->tomb + old, 0, (s->tomb_cap - old) * sizeof(uint64_t));
    return rc;
}

static inline bool
s_bit(const uint64_t *t, uint64_t r)
{
    return t[r / 64] >> (r % 64) & 1;
}

/* Id of a row already validated (by the hash build or append). */
static const char *
s_id_raw(const nf_segment_t *s, uint64_t row, size_t *len)
{
    const uint64_t *off = s_off(s, S_IDOFF);
    uint64_t start = row ? off[row - 1] : 0;
    *len = off[row] - start - 1;
    return s->f[S_IDDAT].map + S_SMALL_HDR + start;
}

int
nf_seg_states(nf_segment_t *s)
{
    for (int k = 0; k < S_TABLE_MAX; k++) {
        if (!s->st[k] && (s->st[k] = XXH3_createState()))
            XXH3_64bits_reset(s->st[k]);
        if (!s->st2[k])
            s->st2[k] = XXH3_createState();
        if (!s->st[k] || !s->st2[k])
            return nf_error_set(NF_ENOMEM, "%s: out of memory for hash states", s->dir);
    }
    return 0;
}

/* ------------------------------------------------------------ commit */

/* Vectors under the mmap policy: each 2 MiB block is brought into the page
   cache as one clean folio of zeros before the first write into it
   (s_prefault), so the writes that fill it, however small and wherever
   they start, land in that folio: no head rewrite, no refold, no byte
   written twice.  Why not the rewrites (still used without a mapping, and
   for the norms): they cost the disk an extra ~1-2 MiB per 2 MiB block
   (1M x 128 in 10,000-row batches: 651 MB written instead of 543) and
   the writer a read and a copy of it, 10-20% of a build; the folios are
   the same (246 large folios for the 1M x 128 vectors either way, scan
   faults 296-324 vs 290-330; plain appends leave 943 and 846 faults). */
static bool
s_prefaults(const nf_segment_t *s, int k)
{
    return k == S_VEC && s->f[k].map != NULL;
}

/* Fault in, through the handle's 2 MiB-aligned MADV_HUGEPAGE mapping, each
   block that a write of len bytes at file offset off is the first to
   enter: the fault reads the block's 2 MiB as one folio (the file's
   preallocated, never written extents read as zeros without I/O), and the
   mapping is dropped again at once (the folio stays cached, clean: only
   the bytes written later are written back).  A hint: when the kernel
   does not give a large folio the writes work as ever. */
static void
s_prefault(const nf_segment_t *s, int k, uint64_t off, uint64_t len)
{
    const s_file_t *f = &s->f[k];
    uint64_t b = (off + S_BLOCK - 1) & ~(uint64_t) (S_BLOCK - 1);
    for (; b < off + len && b + S_BLOCK <= f->map_len; b += S_BLOCK) {
        (void) *(volatile const char *) (f->map + b);
        (void) madvise(f->map + b, S_BLOCK, MADV_DONTNEED);
    }
}

void
nf_seg_prefault_block(const nf_segment_t *s, uint64_t b)
{
    struct stat st;
    int fd = s->f[S_VEC].fd;
    if (s->opts.vectors != NF_MEM_MMAP || b % S_BLOCK || fstat(fd, &st) != 0
        || b + S_BLOCK > (uint64_t) st.st_size)
        return;
    char *r = mmap(NULL, 2 * (size_t) S_BLOCK, PROT_NONE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (r == MAP_FAILED)
        return;
    char *a = (char *) (((uintptr_t) r + S_BLOCK - 1) & ~(uintptr_t) (S_BLOCK - 1));
    void *p = mmap(a, S_BLOCK, PROT_READ, MAP_SHARED | MAP_FIXED, fd, (off_t) b);
    if (p != MAP_FAILED) {
        (void) madvise(p, S_BLOCK, MADV_HUGEPAGE);
        (void) *(volatile const char *) p;
    }
    munmap(r, 2 * (size_t) S_BLOCK);
}

/* Does file k's write of len new bytes at body offset `at` rewrite the
   part of the last 2 MiB block already written, so that it starts on the
   block's boundary?  Vectors only, when that part is no longer than the
   new bytes (s_write_file). */
static bool
s_from_block(int k, uint64_t at, uint64_t len)
{
    uint64_t pre = (s_hdr(k) + at) % S_BLOCK;
    return k == S_VEC && pre && pre <= len;
}

/* Write file k's new bytes at its committed end.  Vectors under the mmap
   policy: into blocks faulted in whole first (s_prefault).  Without a
   mapping: when the end is inside a 2 MiB block and the new bytes are at
   least as long as the part of the block already written, that part is
   written again with them so the write starts on a 2 MiB boundary; the
   bytes rewritten are the same bytes.  That part is dropped from the page
   cache first (clean: the last commit synced it), so the block is cached
   anew from its start and the write gets large folios (a write into pages
   already cached keeps their small folios). */
static int
s_write_file(nf_segment_t *s, int k, const void *buf, uint64_t len)
{
    uint64_t off = s_hdr(k) + s->bytes[k];
    int fd = s->f[k].fd;
    uint64_t pre = off % S_BLOCK;
    int rc = 0;
    if (s_prefaults(s, k)) {
        s_prefault(s, k, off, len);
        rc = nf_seg_pwrite_all(fd, buf, len, off);
    } else if (s_from_block(k, s->bytes[k], len)) {
        char *head = malloc(pre);
        if (!head)
            return nf_error_set(NF_ENOMEM, "%s: out of memory", s->dir);
        ssize_t got = nf_seg_pread_all(fd, head, pre, off - pre);
        if (got == (ssize_t) pre) {
            (void) posix_fadvise(fd, (off_t) (off - pre), S_BLOCK, POSIX_FADV_DONTNEED);
            rc = s_pwrite2(fd, head, pre, buf, len, off - pre);
        } else {
            rc = nf_seg_pwrite_all(fd, buf, len, off);
        }
        free(head);
    } else {
        rc = nf_seg_pwrite_all(fd, buf, len, off);
    }
    if (rc)
        return s_serr(s, k, NF_EIO, "write: %s", strerror(errno));
    return 0;
}

/* Per row, eight interleaved partial sums in double (lane k takes values
   k, k + 8, ...): the compiler vectorises them as they are, so the result
   does not depend on the vector width; 2.6x the speed of summing 8 rows
   side by side, the same floats for 1M x 128 rows. */
void
nf_norms_sq(const float *rows, size_t n, uint32_t dim, float *out)
{
    for (size_t i = 0; i < n; i++) {
        const float *x = rows + i * dim;
        double acc[8] = {0}, tail = 0;
        uint32_t c = 0;
        for (; c + 8 <= dim; c += 8)
            for (int k = 0; k < 8; k++)
                acc[k] += (double) x[c + k] * x[c + k];
        for (; c < dim; c++)
            tail += (double) x[c] * x[c];
        out[i] = (float) (((acc[0] + acc[4]) + (acc[1] + acc[5]))
                          + ((acc[2] + acc[6]) + (acc[3] + acc[7])) + tail);
    }
}

/* After the commit that took file k (vectors or norms) from `from` to `to`
   body bytes is durable: when a write that did not start on the block's
   boundary completed a 2 MiB block (file offsets), write that block again,
   whole.  Small appends (a flow indexes in batches of a few hundred rows)
   leave the page cache holding the block in small folios, a write getting
   folios no larger than itself, and a scan that maps them pays a fault per
   64 KiB; a 2 MiB-aligned 2 MiB write into an uncached range gets one
   2 MiB folio, mapped in one fault.  So: read the block (from the cache),
   drop it (clean after the commit's fdatasync), write the same bytes back
   and start their writeback now, so the next commit's fdatasync finds it
   done or under way.  The block stays in RAM (the first search after
   indexing does not read it from disk) and the bytes on disk do not
   change, so a crash during that writeback leaves them as they were.  A
   hint: a failure leaves the committed data as it is (pages still mapped
   are not dropped and keep their folios; the kernel may fall back to
   smaller folios).  The cost is one more write of each such block. */
static void
s_refold(const nf_segment_t *s, int k, uint64_t from, uint64_t to)
{
    uint64_t oe = s_hdr(k) + from, ne = s_hdr(k) + to;
    uint64_t a = oe & ~(uint64_t) (S_BLOCK - 1);
    if (s_prefaults(s, k) || oe == a || a + S_BLOCK > ne || s_from_block(k, from, to - from))
        return;
    int fd = s->f[k].fd;
    char *buf = malloc(S_BLOCK);
    if (!buf)
        return;
    if (nf_seg_pread_all(fd, buf, S_BLOCK, a) == (ssize_t) S_BLOCK
        && posix_fadvise(fd, (off_t) a, S_BLOCK, POSIX_FADV_DONTNEED) == 0
        && nf_seg_pwrite_all(fd, buf, S_BLOCK, a) == 0)
        (void) sync_file_range(fd, (off_t) a, S_BLOCK, SYNC_FILE_RANGE_WRITE);
    free(buf);
}

/* The write half: hash the batch's new bytes (full chunks to
   checksums.nfc, the tails to the slot), append them to the files, start
   their writeback and fill c->slot.  The handle's byte counts and hash
   states do not move (nf_seg_commit_done does that); files may have grown. */
int
nf_seg_commit_write(nf_segment_t *s, const nf_seg_batch_t *b, uint64_t rows, uint64_t deleted,
                    nf_seg_inflight_t *c)
{
    uint64_t nb[S_TABLE_MAX], tail[S_TABLE_MAX];
    bool *wrote = c->wrote;
    size_t maxce = 0, nce = 0;
    int rc = 0;
    int nf = (int) (b && b->nfiles > s->nfiles ? b->nfiles : s->nfiles);
    memset(wrote, 0, sizeof c->wrote);
    for (int k = 0; b && k < nf; k++)
        if (k != S_CK)
            maxce += (size_t) ((s->bytes[k] % S_CHUNK + b->len[k]) / S_CHUNK);
    unsigned char *ckbuf = malloc(maxce * S_CK_ENTRY + 1);
    if (!ckbuf)
        return nf_error_set(NF_ENOMEM, "%s: out of memory for checksums", s->dir);
    /* hash the new bytes: full chunks go to checksums.nfc, the tail to the slot */
    for (int k = 0; k < nf; k++) {
        if (k == S_CK)
            continue;
        uint64_t len = b ? b->len[k] : 0;
        nb[k] = s->bytes[k] + len;
        tail[k] = s->tail[k];
        if (!len)
            continue;
        XXH3_copyState(s->st2[k], s->st[k]);
        const unsigned char *p = b->buf[k];
        uint64_t pos = s->bytes[k];
        while (len) {
            uint64_t take = S_CHUNK - pos % S_CHUNK;
            take = take < len ? take : len;
            XXH3_64bits_update(s->st2[k], p, (size_t) take);
            p += take;
            pos += take;
            len -= take;
            if (pos % S_CHUNK == 0) {
                uint32_t fk[2] = {(uint32_t) k, 0};
                uint64_t e[2] = {pos / S_CHUNK - 1, XXH3_64bits_digest(s->st2[k])};
                memcpy(ckbuf + nce * S_CK_ENTRY, fk, 8);
                memcpy(ckbuf + nce * S_CK_ENTRY + 8, e, 16);
                nce++;
                XXH3_64bits_reset(s->st2[k]);
            }
        }
        tail[k] = XXH3_64bits_digest(s->st2[k]);
        wrote[k] = true;
    }
    nb[S_CK] = s->bytes[S_CK] + nce * S_CK_ENTRY;
    tail[S_CK] = s->tail[S_CK];
    if (nce) {
        XXH3_copyState(s->st2[S_CK], s->st[S_CK]);
        XXH3_64bits_update(s->st2[S_CK], ckbuf, nce * S_CK_ENTRY);
        tail[S_CK] = XXH3_64bits_digest(s->st2[S_CK]);
        wrote[S_CK] = true;
    }
    for (int k = 0; k < nf && !rc; k++)
        if (wrote[k] && !(rc = s_reserve(s, k, s_hdr(k) + nb[k])))
            rc = s_write_file(s, k, k == S_CK ? ckbuf : b->buf[k], nb[k] - s->bytes[k]);
    /* start every file's writeback before waiting for any: the files'
       writes then go to the disk together instead of one fdatasync after
       the other (a hint only; fdatasync is what makes them durable) */
    for (int k = 0; k < nf && !rc; k++)
        if (wrote[k])
            (void) sync_file_range(s->f[k].fd, 0, 0, SYNC_FILE_RANGE_WRITE);
    free(ckbuf);
    if (rc)
        return rc;

    s_slot_t *slot = &c->slot;
    memset(slot, 0, sizeof *slot);
    memcpy(slot->magic, s_kinds[S_VEC].magic, 8);
    slot->version = NF_SEGMENT_VERSION;
    slot->dim = s->dim;
    slot->metric = (uint32_t) s->metric;
    slot->nfiles = (uint32_t) nf;
    slot->incompat = nf > S_NFILES ? S_FEAT_FIELDS : 0;
    slot->seq = s->seq + 1;
    slot->rows = rows;
    slot->deleted = deleted;
    slot->chunk_log2 = S_CHUNK_LOG2;
    for (int k = 0; k < nf; k++)
        slot->file[k] = (s_fent_t) {nb[k], s->bytes[k], tail[k]};
    slot->checksum = s_slot_hash(slot);
    c->from[S_VEC] = s->bytes[S_VEC];
    c->from[S_NORM] = s->bytes[S_NORM];
    c->s = s;
    return 0;
}

/* The sync half: fdatasync the files written, then the commit point: the
   slot, synced.  Touches only the files (safe on a thread of its own
   while the handle's owner goes on, nf_seg_commit_start). */
int
nf_seg_commit_sync(const nf_seg_inflight_t *c)
{
    int rc = nf_seg_commit_sync_data(c, c);
    return rc ? rc : nf_seg_commit_sync_slot(c);
}

/* The data of the commits first..last, written one after the other to the
   same files: each file any of them wrote, fdatasynced once (a queue of
   commits behind a slow disk then costs one round of syncs, not one per
   commit; their slots follow one by one, nf_seg_commit_sync_slot). */
int
nf_seg_commit_sync_data(const nf_seg_inflight_t *first, const nf_seg_inflight_t *last)
{
    const nf_segment_t *s = first->s;
    bool wrote[S_TABLE_MAX] = {false};
    uint32_t nf = 0;
    for (const nf_seg_inflight_t *c = first;; c = c->next) {
        for (uint32_t k = 0; k < c->slot.nfiles; k++)
            wrote[k] |= c->wrote[k];
        nf = c->slot.nfiles > nf ? c->slot.nfiles : nf;
        if (c == last)
            break;
    }
    for (int k = 0; k < (int) nf; k++)
        if (wrote[k] && fdatasync(s->f[k].fd) != 0)
            return s_serr(s, k, NF_EIO, "fdatasync: %s", strerror(errno));
    return 0;
}

/* The commit point of c, whose data is durable: its slot, synced. */
int
nf_seg_commit_sync_slot(const nf_seg_inflight_t *c)
{
    const nf_segment_t *s = c->s;
    uint64_t off = (c->slot.seq & 1) ? S_SLOT1_OFF : 0;
    if (nf_seg_pwrite_all(s->f[S_VEC].fd, &c->slot, sizeof c->slot, off) != 0
        || fdatasync(s->f[S_VEC].fd) != 0)
        return s_serr(s, S_VEC, NF_EIO, "writing commit slot: %s", strerror(errno));
    return 0;
}

/* Move the handle to c's commit: byte counts, tails, hash states. */
void
nf_seg_commit_done(nf_segment_t *s, const nf_seg_inflight_t *c)
{
    s->seq = c->slot.seq;
    s->nfiles = c->slot.nfiles;
    for (int k = 0; k < (int) c->slot.nfiles; k++) {
        s->prev[k] = c->slot.file[k].prev;
        s->bytes[k] = c->slot.file[k].bytes;
        s->tail[k] = c->slot.file[k].tail;
        if (c->wrote[k]) {
            XXH3_state_t *t = s->st[k];
            s->st[k] = s->st2[k];
            s->st2[k] = t;
        }
    }
}

/* After c's commit is durable: the blocks it completed, whole (s_refold). */
void
nf_seg_commit_refold(const nf_segment_t *s, const nf_seg_inflight_t *c)
{
    for (int k = S_VEC; k <= S_NORM; k++)
        if (c->wrote[k])
            s_refold(s, k, c->from[k], c->slot.file[k].bytes);
}

int
nf_seg_commit(nf_segment_t *s, const nf_seg_batch_t *b, uint64_t rows, uint64_t deleted)
{
    nf_seg_inflight_t c;
    int rc = nf_seg_settle(s);      /* pipelined commits first */
    if (rc || (rc = nf_seg_commit_write(s, b, rows, deleted, &c))
        || (rc = nf_seg_commit_sync(&c)))
        return rc;
    nf_seg_commit_refold(s, &c);
    nf_seg_commit_done(s, &c);
    return 0;
}

/* ------------------------------------------------------ id -> row table */

const s_entry_t *
nf_seg_tab_find(const nf_segment_t *s, const char *id, size_t len, uint64_t h)
{
    if (!s->tab)
        return NULL;
    for (uint64_t i = s_mix(h) & s->tab_mask;; i = (i + 1) & s->tab_mask) {
        const s_entry_t *e = &s->tab[i];
        size_t l;
        if (!e->row1)
            return NULL;
        if (e->hash == h) {
            const char *rid = s_id_raw(s, e->row1 - 1, &l);
            if (l == len && memcmp(rid, id, len) == 0)
                return e;
        }
    }
}

/* How many docs ahead append prefetches the id table's slot of. */
#define S_TAB_AHEAD 8

static inline void
s_tab_prefetch(const nf_segment_t *s, uint64_t h)
{
    if (s->tab)
        __builtin_prefetch(&s->tab[s_mix(h) & s->tab_mask], 0, 1);
}

static void
s_tab_put(s_entry_t *tab, uint64_t mask, uint64_t h, uint64_t row1)
{
    uint64_t i = s_mix(h) & mask;
    while (tab[i].row1)
        i = (i + 1) & mask;
    tab[i].hash = h;
    tab[i].row1 = row1;
}

static int
s_tab_resize(nf_segment_t *s, uint64_t want)
{
    uint64_t cap = 16;
    while (cap * 7 < want * 10)
        cap *= 2;
    s_entry_t *nt = calloc(cap, sizeof *nt);
    if (!nt)
        return nf_error_set(NF_ENOMEM, "%s: out of memory for the id table (%llu slots)",
                            s->dir, (unsigned long long) cap);
    for (uint64_t i = 0; s->tab && i <= s->tab_mask; i++)
        if (s->tab[i].row1)
            s_tab_put(nt, cap - 1, s->tab[i].hash, s->tab[i].row1);
    free(s->tab);
    s->tab = nt;
    s->tab_mask = cap - 1;
    return 0;
}

static int
s_tab_insert(nf_segment_t *s, uint64_t h, uint64_t row)
{
    if (!s->tab || (s->tab_used + 1) * 10 > (s->tab_mask + 1) * 7) {
        int rc = s_tab_resize(s, (s->tab_used + 1) * 2);
        if (rc)
            return rc;
    }
    s_tab_put(s->tab, s->tab_mask, h, row + 1);
    s->tab_used++;
    return 0;
}

/* Remove entry i, shifting later entries of the probe run back. */
static void
s_tab_remove(nf_segment_t *s, uint64_t i)
{
    uint64_t mask = s->tab_mask, j = i;
    for (;;) {
        j = (j + 1) & mask;
        if (!s->tab[j].row1)
            break;
        uint64_t k = s_mix(s->tab[j].hash) & mask;
        bool stays = i <= j ? (i < k && k <= j) : (i < k || k <= j);
        if (stays)
            continue;
        s->tab[i] = s->tab[j];
        i = j;
    }
    s->tab[i].row1 = 0;
    s->tab[i].hash = 0;
    s->tab_used--;
}

/* Append rows to the delete log in one commit and mark them deleted (rows
   distinct, live). */
static int
s_log_deletes(nf_segment_t *s, const uint64_t *rows, uint64_t n)
{
    nf_seg_batch_t b = {.buf = {[S_DEL] = rows}, .len = {[S_DEL] = n * 8}};
    if (!n)
        return 0;
    int rc = nf_seg_commit(s, &b, s->rows, s->deleted + n);
    if (rc)
        return rc;
    for (uint64_t i = 0; i < n; i++)
        s->tomb[rows[i] / 64] |= 1ull << (rows[i] % 64);
    s->deleted += n;
    return 0;
}

/* Check every row's id record and build the table over live rows.  An id
   live twice cannot come from a crash (an upsert's delete is in its
   commit); after damage the later row wins and the earlier is deleted (in
   the delete log when repair, else in this handle only). */
int
nf_seg_build(nf_segment_t *s, bool repair)
{
    const char *data = s->f[S_IDDAT].map + S_SMALL_HDR;
    uint64_t *dups = NULL, ndups = 0, dcap = 0;
    free(s->tab);
    s->tab = NULL;
    int rc = s_tab_resize(s, s->rows - s->deleted + 16);
    if (rc)
        return rc;
    s->tab_used = 0;
    for (uint64_t r = 0; r < s->rows; r++) {
        uint64_t start, end;
        if (!nf_seg_extent(s, S_IDOFF, r, &start, &end) || end - start < 2
            || end - start - 1 > NF_ID_MAX || data[end - 1] != '\0'
            || memchr(data + start, 0, end - start - 1)) {
            free(dups);
            return s_serr(s, S_IDOFF, NF_ECORRUPT,
                          "row %llu: bad id record (offsets %llu..%llu of %llu bytes)",
                          (unsigned long long) r, (unsigned long long) start,
                          (unsigned long long) end, (unsigned long long) s->bytes[S_IDDAT]);
        }
        if (s_bit(s->tomb, r))
            continue;
        size_t len = end - start - 1;
        uint64_t h = s_fnv1a(data + start, len);
        s_entry_t *e = (s_entry_t *) nf_seg_tab_find(s, data + start, len, h);
        if (!e) {
            if ((rc = s_tab_insert(s, h, r))) {
                free(dups);
                return rc;
            }
            continue;
        }
        uint64_t old = e->row1 - 1;
        e->row1 = r + 1;
        if ((rc = s_grow((void **) &dups, &dcap, ndups + 1, sizeof *dups))) {
            free(dups);
            return rc;
        }
        dups[ndups++] = old;
    }
    s->tab_built = true;
    if (ndups && repair) {
        rc = s_log_deletes(s, dups, ndups);
    } else {
        for (uint64_t i = 0; i < ndups; i++)
            s->tomb[dups[i] / 64] |= 1ull << (dups[i] % 64);
        s->deleted += ndups;
    }
    free(dups);
    return rc;
}

/* --------------------------------------------------------------- writes */

static int
s_writable(const nf_segment_t *s, const char *what)
{
    if (s->opts.readonly)
        return nf_error_set(NF_EINVAL, "%s: %s: segment opened read-only", s->dir, what);
    return 0;
}

static int
s_check_id(const nf_segment_t *s, const char *what, size_t i, const char *id)
{
    if (!id)
        return nf_error_set(NF_EINVAL, "%s: %s: doc %zu: id is NULL", s->dir, what, i);
    size_t len = strnlen(id, NF_ID_MAX + 1);
    if (len == 0)
        return nf_error_set(NF_EINVAL, "%s: %s: doc %zu: empty id", s->dir, what, i);
    if (len > NF_ID_MAX)
        return nf_error_set(NF_EINVAL, "%s: %s: doc %zu (id \"%.32s...\"): id longer than %d "
                            "bytes", s->dir, what, i, id, NF_ID_MAX);
    return 0;
}

static int
s_check_doc(const nf_segment_t *s, size_t i, const nf_doc_t *d)
{
    int rc = s_check_id(s, "append", i, d->id);
    if (rc)
        return rc;
    if (!d->vector)
        return nf_error_set(NF_EINVAL, "%s: append: doc %zu (id \"%s\"): vector is NULL",
                            s->dir, i, d->id);
    size_t j = nf_first_nonfinite(d->vector, s->dim);
    if (j < s->dim)
        return nf_error_set(NF_EINVAL, "%s: append: doc %zu (id \"%s\"): vector[%zu] is "
                            "%s", s->dir, i, d->id, j, isnan(d->vector[j]) ? "NaN" : "Inf");
    if (!d->payload && d->payload_len)
        return nf_error_set(NF_EINVAL, "%s: append: doc %zu (id \"%s\"): payload is NULL "
                            "with length %zu", s->dir, i, d->id, d->payload_len);
    if (d->payload_len > S_BYTES_MAX / 4)
        return nf_error_set(NF_EINVAL, "%s: append: doc %zu (id \"%s\"): payload of %zu bytes "
                            "is too large", s->dir, i, d->id, d->payload_len);
    return 0;
}

/* keep[i] = 0 for a doc whose id appears again later in the batch. */
static int
s_dedupe(const nf_doc_t *docs, size_t n, const uint64_t *hash, unsigned char *keep)
{
    uint64_t cap = 16;
    while (cap < 2 * (uint64_t) n)
        cap *= 2;
    uint64_t *set = calloc(cap, sizeof *set);
    if (!set)
        return nf_error_set(NF_ENOMEM, "append: out of memory for %zu docs", n);
    for (size_t i = n; i-- > 0;) {
        uint64_t j = s_mix(hash[i]) & (cap - 1);
        keep[i] = 1;
        for (; set[j]; j = (j + 1) & (cap - 1))
            if (hash[set[j] - 1] == hash[i] && !strcmp(docs[set[j] - 1].id, docs[i].id)) {
                keep[i] = 0;
                break;
            }
        if (keep[i])
            set[j] = i + 1;
    }
    free(set);
    return 0;
}

int
nf_segment_append(nf_segment_t *s, const nf_doc_t *docs, size_t n)
{
    return nf_seg_append(s, docs, NULL, n, false);
}

int
nf_segment_append_fields(nf_segment_t *s, const nf_doc_t *docs, const nf_fields_t *fields,
                         size_t n)
{
    return nf_seg_append(s, docs, fields, n, false);
}

int
nf_seg_append(nf_segment_t *s, const nf_doc_t *docs, const nf_fields_t *fields, size_t n,
              bool pipelined)
{
    int rc;
    nf_seg_staged_t *staged = NULL;
    if (!s || (n && !docs))
        return nf_error_set(NF_EINVAL, "nf_segment_append: NULL argument");
    if ((rc = s_writable(s, "append")))
        return rc;
    if (!pipelined && (rc = nf_seg_settle(s)))
        return rc;          /* a pipelined append first, even when n is 0 */
    if (n == 0)
        return 0;
    for (size_t i = 0; i < n; i++)
        if ((rc = s_check_doc(s, i, &docs[i])))
            return rc;

    const size_t vbytes = (size_t) s->dim * sizeof(float);
    const uint64_t ids0 = s->bytes[S_IDDAT], pl0 = s->bytes[S_PLDAT], row0 = s->rows;
    uint64_t *hash = malloc(n * sizeof *hash);
    uint64_t *slot = malloc(n * sizeof *slot);    /* id table entry of docs[i], or none */
    unsigned char *keep = malloc(n);
    uint64_t *replaced = malloc(n * sizeof *replaced), nrep = 0, m = 0, idb = 0, plb = 0;
    char *vec = NULL, *ids = NULL, *pl = NULL;
    float *norm = NULL;
    uint64_t *idoff = NULL, *ploff = NULL;
    if (!hash || !slot || !keep || !replaced) {
        rc = nf_error_set(NF_ENOMEM, "%s: append: out of memory for %zu docs", s->dir, n);
        goto done;
    }
    for (size_t i = 0; i < n; i++)
        hash[i] = s_fnv1a(docs[i].id, strlen(docs[i].id));
    if ((rc = s_dedupe(docs, n, hash, keep)))
        goto done;
    for (size_t i = 0; i < n; i++)
        if (keep[i]) {
            m++;
            idb += strlen(docs[i].id) + 1;
            plb += docs[i].payload_len;
        }
    /* the vectors are written from where they are when they already are one
       aligned block, row after row, and every document is kept (a batch read
       from a file, an indexer's group): no staging copy of most of the bytes */
    bool inplace = m == n && (uintptr_t) docs[0].vector % _Alignof(float) == 0;
    for (size_t i = 1; inplace && i < n; i++)
        inplace = docs[i].vector == docs[0].vector + i * s->dim;
    vec = inplace ? NULL : malloc(m * vbytes);
    const char *vsrc = inplace ? (const char *) docs[0].vector : vec;
    norm = malloc(m * sizeof *norm);
    idoff = malloc(m * sizeof *idoff);
    ploff = malloc(m * sizeof *ploff);
    ids = malloc(idb);
    pl = malloc(plb ? plb : 1);
    if (!vsrc || !norm || !idoff || !ploff || !ids || !pl) {
        rc = nf_error_set(NF_ENOMEM, "%s: append: out of memory for %zu docs", s->dir, n);
        goto done;
    }
    /* stage the batch: one contiguous buffer per file */
    uint64_t j = 0, ib = 0, pb = 0;
    for (size_t i = 0; i < n; i++) {
        if (!keep[i])
            continue;
        const nf_doc_t *d = &docs[i];
        size_t len = strlen(d->id) + 1;
        if (!inplace)
            memcpy(vec + j * vbytes, d->vector, vbytes);
        memcpy(ids + ib, d->id, len);
        ib += len;
        idoff[j] = ids0 + ib;
        if (d->payload_len)
            memcpy(pl + pb, d->payload, d->payload_len);
        pb += d->payload_len;
        ploff[j] = pl0 + pb;
        if (i + S_TAB_AHEAD < n)
            s_tab_prefetch(s, hash[i + S_TAB_AHEAD]);
        const s_entry_t *e = nf_seg_tab_find(s, d->id, len - 1, hash[i]);
        slot[i] = e ? (uint64_t) (e - s->tab) : UINT64_MAX;
        if (e)
            replaced[nrep++] = e->row1 - 1;
        j++;
    }
    nf_norms_sq((const float *) (const void *) vsrc, m, s->dim, norm);
    /* rows, and the delete-log entries of the rows they replace: one commit */
    nf_seg_batch_t b = {
        .buf = {[S_VEC] = vsrc, [S_NORM] = norm, [S_IDDAT] = ids, [S_IDOFF] = idoff,
                [S_PLDAT] = pl, [S_PLOFF] = ploff, [S_DEL] = replaced},
        .len = {[S_VEC] = m * vbytes, [S_NORM] = m * sizeof(float), [S_IDDAT] = idb,
                [S_IDOFF] = m * 8, [S_PLDAT] = plb, [S_PLOFF] = m * 8, [S_DEL] = nrep * 8},
    };
    /* the field columns of the same rows: in the same commit */
    if ((rc = nf_seg_fields_stage(s, docs, fields, n, keep, m, &b, &staged)))
        goto done;
    if ((rc = nf_seg_grow_ram(s, row0 + m, pl0 + plb)) || (rc = nf_seg_grow_tomb(s, row0 + m))
        || (rc = pipelined ? nf_seg_commit_start(s, &b, row0 + m, s->deleted + nrep)
                           : nf_seg_commit(s, &b, row0 + m, s->deleted + nrep))) {
        nf_seg_fields_abort(s, staged);
        goto done;
    }
    nf_seg_fields_commit(s, staged, row0, m);

    /* committed: bring the handle up to date */
    if (s->opts.vectors == NF_MEM_MEMORY) {
        memcpy((char *) s->mvec + row0 * vbytes, vsrc, m * vbytes);
        memcpy(s->mnorm + row0, norm, m * sizeof(float));
    }
    if (s->opts.payloads == NF_MEM_MEMORY) {
        memcpy(s->mpl + pl0, pl, plb);
        memcpy(s->mploff + row0, ploff, m * 8);
    }
    s->rows += m;
    for (uint64_t i = 0; i < nrep; i++)
        s->tomb[replaced[i] / 64] |= 1ull << (replaced[i] % 64);
    s->deleted += nrep;
    /* the id table: each id was looked up once above (slot[i]: its entry,
       or none); upserts first, while those entries are where they were,
       then the table grown once and the new ids put in, prefetching ahead
       (the table is far larger than the caches: each probe is a miss) */
    j = 0;
    uint64_t fresh = 0;
    for (size_t i = 0; i < n; i++) {
        if (!keep[i])
            continue;
        if (slot[i] != UINT64_MAX)
            s->tab[slot[i]].row1 = row0 + j + 1;    /* upsert: same id, new row */
        else
            fresh++;
        j++;
    }
    if (fresh && (!s->tab || (s->tab_used + fresh) * 10 > (s->tab_mask + 1) * 7)
        && (rc = s_tab_resize(s, (s->tab_used + fresh) * 2)))
        goto done;
    j = 0;
    for (size_t i = 0; i < n; i++) {
        if (i + S_TAB_AHEAD < n && keep[i + S_TAB_AHEAD] && slot[i + S_TAB_AHEAD] == UINT64_MAX)
            s_tab_prefetch(s, hash[i + S_TAB_AHEAD]);
        if (!keep[i])
            continue;
        if (slot[i] == UINT64_MAX && (rc = s_tab_insert(s, hash[i], row0 + j)))
            goto done;
        j++;
    }
done:
    nf_seg_fields_unstage(&staged);
    free(slot);
    free(hash);
    free(keep);
    free(replaced);
    free(vec);
    free(norm);
    free(idoff);
    free(ploff);
    free(ids);
    free(pl);
    return rc;
}

int
nf_segment_delete(nf_segment_t *s, const char *const *ids, size_t n, size_t *deleted)
{
    int rc;
    if (deleted)
        *deleted = 0;
    if (!s || (n && !ids))
        return nf_error_set(NF_EINVAL, "nf_segment_delete: NULL argument");
    if ((rc = s_writable(s, "delete")) || (rc = nf_seg_settle(s)))
        return rc;          /* a pipelined append first: this may commit nothing */
    for (size_t i = 0; i < n; i++)
        if ((rc = s_check_id(s, "delete", i, ids[i])))
            return rc;
    uint64_t *rows = malloc((n ? n : 1) * sizeof *rows), m = 0;
    if (!rows)
        return nf_error_set(NF_ENOMEM, "%s: delete: out of memory for %zu ids", s->dir, n);
    for (size_t i = 0; i < n; i++) {
        size_t len = strlen(ids[i]);
        const s_entry_t *e = nf_seg_tab_find(s, ids[i], len, s_fnv1a(ids[i], len));
        if (!e || s_bit(s->tomb, e->row1 - 1))
            continue;                       /* absent, or repeated in this call */
        rows[m] = e->row1 - 1;
        s->tomb[rows[m] / 64] |= 1ull << (rows[m] % 64);    /* marks it taken */
        m++;
    }
    for (uint64_t i = 0; i < m; i++)
        s->tomb[rows[i] / 64] &= ~(1ull << (rows[i] % 64));
    rc = s_log_deletes(s, rows, m);
    for (size_t i = 0; i < n && !rc; i++) {
        size_t len = strlen(ids[i]);
        const s_entry_t *e = nf_seg_tab_find(s, ids[i], len, s_fnv1a(ids[i], len));
        if (e && s_bit(s->tomb, e->row1 - 1))
            s_tab_remove(s, (uint64_t) (e - s->tab));
    }
    free(rows);
    if (deleted && !rc)
        *deleted = m;
    return rc;
}
