/* nf_segment: create, append, upsert, delete, reopen under both memory
   policies, read-only and locked opens, every malformed-file case, a little
   fuzzing, release keeping data readable, and small appends filling 2 MiB
   blocks.

   Set NFLOW_SEGMENT_BENCH=ROWS to also time appending ROWS x 128 in batches
   of 10,000 (prints rows/s; never fails on speed). */
#include "nf_error.h"
#include "nf_segment.h"
#include "nf_sys.h"
#include "nf_test.h"

#include <dirent.h>
#include <fcntl.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <xxhash.h>

#define DIM 16

static const char *s_files[] = {"vectors.nfv", "norms.nfn", "ids.dat", "ids.off",
                                "payload.dat", "payload.off", "deletes.nfd", "checksums.nfc"};
#define VEC_HDR (2u << 20)      /* vectors.nfv header region */
#define NFILES (sizeof s_files / sizeof s_files[0])

/* Vector, id and payload of document number i (deterministic). */
static void
s_make(uint64_t i, uint32_t dim, float *v, char *id, char *payload, size_t *plen)
{
    uint64_t st = i * 7919 + 1;
    for (uint32_t c = 0; c < dim; c++)
        v[c] = (float) ((double) (nf_test_rand(&st) >> 11) / 9007199254740992.0 * 2 - 1);
    snprintf(id, NF_ID_MAX + 1, "doc-%llu", (unsigned long long) i);
    *plen = i % 5 == 0 ? 0 : (size_t) snprintf(payload, 64, "{\"n\":%llu}", (unsigned long long) i);
}

/* Append documents first..first+n-1 in one batch (start: pipelined,
   nf_segment_append_start). */
static int
s_append_range_as(nf_segment_t *seg, uint64_t first, size_t n, bool start)
{
    uint32_t dim = nf_segment_dim(seg);
    nf_doc_t *docs = calloc(n, sizeof *docs);
    float *vecs = malloc(n * dim * sizeof(float));
    char (*ids)[NF_ID_MAX + 1] = malloc(n * sizeof *ids);
    char (*pls)[64] = malloc(n * sizeof *pls);
    for (size_t i = 0; i < n; i++) {
        s_make(first + i, dim, vecs + i * dim, ids[i], pls[i], &docs[i].payload_len);
        docs[i] = (nf_doc_t) {ids[i], vecs + i * dim, docs[i].payload_len ? pls[i] : NULL,
                              docs[i].payload_len};
    }
    int rc = start ? nf_segment_append_start(seg, docs, NULL, n) : nf_segment_append(seg, docs, n);
    free(docs);
    free(vecs);
    free(ids);
    free(pls);
    return rc;
}

static int
s_append_range(nf_segment_t *seg, uint64_t first, size_t n)
{
    return s_append_range_as(seg, first, n, false);
}

/* Row r holds document doc: vector, norm, id and payload all match. */
static bool
s_row_is(nf_segment_t *seg, uint64_t r, uint64_t doc)
{
    float v[DIM];
    char id[NF_ID_MAX + 1], pl[64];
    size_t plen, len, idlen;
    s_make(doc, DIM, v, id, pl, &plen);
    const float *got = nf_segment_vectors(seg, r, 1);
    float normv;
    const float *norm = nf_segment_read_norms(seg, r, 1, &normv) == 0 ? &normv : NULL;
    const char *gid = nf_segment_id(seg, r, &idlen);
    const void *gpl = nf_segment_payload(seg, r, &len);
    double n2 = 0;
    for (int c = 0; c < DIM; c++)
        n2 += (double) v[c] * v[c];
    return got && !memcmp(got, v, sizeof v) && norm && fabs(*norm - n2) < 1e-5
           && gid && !strcmp(gid, id) && idlen == strlen(id) && gpl && len == plen
           && !memcmp(gpl, pl, plen);
}

static char *
s_join(const char *dir, const char *name)
{
    static char buf[8][4096];
    static int i;
    i = (i + 1) % 8;
    snprintf(buf[i], sizeof buf[i], "%s/%s", dir, name);
    return buf[i];
}

static off_t
s_size(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? st.st_size : -1;
}

static void
s_copy_file(const char *from, const char *to)
{
    char buf[65536];
    int in = open(from, O_RDONLY), out = open(to, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    ssize_t n;
    while (in >= 0 && out >= 0 && (n = read(in, buf, sizeof buf)) > 0)
        CHECK(write(out, buf, (size_t) n) == n);
    if (in >= 0)
        close(in);
    if (out >= 0)
        close(out);
}

/* A fresh copy of the segment files of `from` in a new directory. */
static char *
s_copy_seg(const char *from)
{
    char *dir = nf_test_tmpdir();
    for (size_t k = 0; k < NFILES; k++)
        s_copy_file(s_join(from, s_files[k]), s_join(dir, s_files[k]));
    return dir;
}

static void
s_poke(const char *path, off_t off, const void *bytes, size_t n)
{
    int fd = open(path, O_WRONLY);
    CHECK(fd >= 0 && pwrite(fd, bytes, n, off) == (ssize_t) n);
    if (fd >= 0)
        close(fd);
}

/* Open must fail with `code` and a message naming `file` (and `words`). */
static void
s_expect_open_error(const char *dir, bool readonly, int code, const char *file,
                    const char *words)
{
    nf_segment_opts_t o = {.readonly = readonly};
    nf_segment_t *seg = NULL;
    int rc = nf_segment_open(dir, &o, &seg);
    CHECK(rc == code);
    CHECK(seg == NULL);
    CHECK(strstr(nf_error_msg(), file) != NULL);
    if (words)
        CHECK(strstr(nf_error_msg(), words) != NULL);
    if (rc != code || !strstr(nf_error_msg(), file) || (words && !strstr(nf_error_msg(), words)))
        fprintf(stderr, "  expected %d naming %s (%s), got %d: %s\n", code, file,
                words ? words : "", rc, nf_error_msg());
    nf_segment_destroy(&seg);
}

static void
test_basic(const char *dir)
{
    nf_segment_t *seg = NULL;
    uint64_t row;
    CHECK_OK(nf_segment_create(dir, DIM, NF_METRIC_L2, &seg));
    CHECK(nf_segment_rows(seg) == 0 && nf_segment_count(seg) == 0);
    CHECK(nf_segment_dim(seg) == DIM && nf_segment_metric(seg) == NF_METRIC_L2);
    CHECK_OK(s_append_range(seg, 0, 100));
    CHECK_OK(s_append_range(seg, 100, 1));
    CHECK_OK(nf_segment_append(seg, NULL, 0));
    CHECK(nf_segment_rows(seg) == 101 && nf_segment_count(seg) == 101);
    for (uint64_t r = 0; r < 101; r++)
        CHECK(s_row_is(seg, r, r));
    CHECK_OK(nf_segment_get(seg, "doc-42", &row));
    CHECK(row == 42);
    CHECK(nf_segment_get(seg, "doc-1000", &row) == NF_ENOTFOUND);
    CHECK(nf_segment_vectors(seg, 100, 2) == NULL);     /* past the end */
    float nm[2];
    CHECK(nf_segment_read_norms(seg, 100, 2, nm) == NF_EINVAL
          && strstr(nf_error_msg(), "past the 101 rows") != NULL);
    CHECK(nf_segment_read_norms(seg, UINT64_MAX, 2, nm) == NF_EINVAL);
    CHECK(nf_segment_id(seg, 101, NULL) == NULL);
    CHECK(nf_segment_create(dir, DIM, NF_METRIC_L2, &(nf_segment_t *) {NULL}) == NF_ELOCKED);
    nf_segment_destroy(&seg);
    nf_segment_destroy(&seg);                           /* harmless */
    CHECK(seg == NULL);
    CHECK(nf_segment_create(dir, DIM, NF_METRIC_L2, &seg) == NF_EEXIST);

    /* after a clean close the files hold exactly the committed data */
    CHECK(s_size(s_join(dir, "vectors.nfv")) == VEC_HDR + 101 * DIM * 4);
    CHECK(s_size(s_join(dir, "norms.nfn")) == 64 + 101 * 4);

    /* reopen read-only under both policies: same content */
    for (int policy = 0; policy < 2; policy++) {
        nf_segment_opts_t o = {.vectors = policy, .payloads = policy, .readonly = true,
                               .warmup = true};
        CHECK_OK(nf_segment_open(dir, &o, &seg));
        if (!seg)
            continue;
        CHECK(nf_segment_rows(seg) == 101);
        for (uint64_t r = 0; r < 101; r++)
            CHECK(s_row_is(seg, r, r));
        CHECK_OK(nf_segment_get(seg, "doc-7", &row));
        CHECK(row == 7);
        CHECK(nf_segment_append(seg, NULL, 0) == NF_EINVAL);
        CHECK(s_append_range(seg, 500, 1) == NF_EINVAL);
        CHECK(nf_segment_delete(seg, (const char *[]) {"doc-1"}, 1, NULL) == NF_EINVAL);
        nf_segment_file_t files[NF_SEGMENT_NFILES];
        size_t n = 0;
        CHECK_OK(nf_segment_files(seg, files, NF_SEGMENT_NFILES, &n));
        CHECK(n == NFILES);
        for (size_t k = 0; k < n; k++)
            CHECK(!strcmp(files[k].name, s_files[k]) && files[k].bytes == files[k].used);
        nf_segment_destroy(&seg);
    }
}

static void
test_upsert_delete(const char *dir)
{
    nf_segment_t *seg = NULL;
    uint64_t row;
    size_t deleted = 99;
    CHECK_OK(nf_segment_open(dir, NULL, &seg));
    if (!seg)
        return;
    /* doc-3 again with doc 200's content: appended, old row tombstoned */
    float v[DIM], w[DIM];
    char id[NF_ID_MAX + 1], pl[64];
    size_t plen;
    s_make(200, DIM, v, id, pl, &plen);
    nf_doc_t d = {"doc-3", v, "new", 3};
    CHECK_OK(nf_segment_append(seg, &d, 1));
    CHECK(nf_segment_rows(seg) == 102 && nf_segment_deleted(seg) == 1);
    CHECK(nf_segment_count(seg) == 101);
    CHECK(nf_segment_is_deleted(seg, 3) && !nf_segment_is_deleted(seg, 101));
    CHECK(nf_segment_tombstones(seg)[0] == 1ull << 3);
    CHECK_OK(nf_segment_get(seg, "doc-3", &row));
    CHECK(row == 101);

    /* duplicates within one batch: the last one wins, earlier ones never land */
    s_make(201, DIM, w, id, pl, &plen);
    nf_doc_t batch[3] = {{"x", v, "1", 1}, {"y", v, NULL, 0}, {"x", w, "2", 1}};
    CHECK_OK(nf_segment_append(seg, batch, 3));
    CHECK(nf_segment_rows(seg) == 104 && nf_segment_count(seg) == 103);
    CHECK_OK(nf_segment_get(seg, "x", &row));
    CHECK(row == 103 && !memcmp(nf_segment_vectors(seg, row, 1), w, sizeof w));
    size_t len;
    CHECK(!memcmp(nf_segment_payload(seg, row, &len), "2", 1) && len == 1);

    /* delete: present, absent, repeated */
    const char *ids[] = {"doc-5", "no-such-doc", "doc-5", "y"};
    CHECK_OK(nf_segment_delete(seg, ids, 4, &deleted));
    CHECK(deleted == 2);
    CHECK(nf_segment_get(seg, "doc-5", NULL) == NF_ENOTFOUND);
    CHECK(nf_segment_count(seg) == 101 && nf_segment_deleted(seg) == 3);
    CHECK_OK(nf_segment_delete(seg, ids, 0, &deleted));
    CHECK(deleted == 0);
    /* a deleted id can come back */
    CHECK_OK(s_append_range(seg, 5, 1));
    CHECK_OK(nf_segment_get(seg, "doc-5", &row));
    CHECK(row == 104 && s_row_is(seg, 104, 5));

    /* bad batches are refused whole, naming the doc */
    float nan_v[DIM] = {0};
    nan_v[4] = NAN;
    char longid[NF_ID_MAX + 2];
    memset(longid, 'a', sizeof longid - 1);
    longid[sizeof longid - 1] = '\0';
    struct {
        nf_doc_t doc;
        const char *words;
    } bad[] = {
        {{"ok", nan_v, NULL, 0}, "vector[4] is NaN"},
        {{"", v, NULL, 0}, "empty id"},
        {{NULL, v, NULL, 0}, "id is NULL"},
        {{longid, v, NULL, 0}, "longer than"},
        {{"nullvec", NULL, NULL, 0}, "vector is NULL"},
        {{"nullpl", v, NULL, 4}, "payload is NULL"},
    };
    nan_v[4] = INFINITY;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        float has_nan[DIM] = {[4] = NAN};
        nf_doc_t two[2] = {{"good", v, NULL, 0}, bad[i].doc};
        if (i == 0)
            two[1].vector = has_nan;
        CHECK(nf_segment_append(seg, two, 2) == NF_EINVAL);
        CHECK(strstr(nf_error_msg(), "doc 1") && strstr(nf_error_msg(), bad[i].words));
        if (!strstr(nf_error_msg(), bad[i].words))
            fprintf(stderr, "  message was: %s\n", nf_error_msg());
    }
    nf_doc_t inf_doc = {"inf", nan_v, NULL, 0};
    CHECK(nf_segment_append(seg, &inf_doc, 1) == NF_EINVAL);
    CHECK(strstr(nf_error_msg(), "doc 0 (id \"inf\")") && strstr(nf_error_msg(), "Inf"));
    CHECK(nf_segment_rows(seg) == 105);
    CHECK(nf_segment_get(seg, "good", NULL) == NF_ENOTFOUND);
    nf_segment_destroy(&seg);

    /* everything survives a reopen, under both policies */
    for (int policy = 0; policy < 2; policy++) {
        nf_segment_opts_t o = {.vectors = policy, .payloads = policy};
        CHECK_OK(nf_segment_open(dir, &o, &seg));
        if (!seg)
            continue;
        CHECK(nf_segment_rows(seg) == 105u + policy && nf_segment_count(seg) == 102u + policy);
        CHECK(nf_segment_get(seg, "doc-3", &row) == 0 && row == 101);
        CHECK(nf_segment_get(seg, "y", NULL) == NF_ENOTFOUND);
        CHECK(nf_segment_is_deleted(seg, 3) && nf_segment_is_deleted(seg, 5));
        CHECK(s_row_is(seg, 104, 5) && s_row_is(seg, 100, 100));
        if (policy == 0)    /* the memory-policy writer keeps its RAM copy current */
            CHECK_OK(s_append_range(seg, 300, 1));
        else
            CHECK(s_row_is(seg, 105, 300));
        nf_segment_destroy(&seg);
    }
}

static void
test_policies_identical(const char *dir)
{
    nf_segment_opts_t mm = {.readonly = true};
    nf_segment_opts_t mem = {.vectors = NF_MEM_MEMORY, .payloads = NF_MEM_MEMORY,
                             .readonly = true};
    nf_segment_t *a = NULL, *b = NULL;
    CHECK_OK(nf_segment_open(dir, &mm, &a));
    CHECK_OK(nf_segment_open(dir, &mem, &b));
    if (!a || !b)
        goto out;
    uint64_t n = nf_segment_rows(a);
    CHECK(n == nf_segment_rows(b) && n > 0);
    CHECK(!memcmp(nf_segment_vectors(a, 0, n), nf_segment_vectors(b, 0, n), n * DIM * 4));
    float *na = malloc(n * 4), *nb = malloc(n * 4);
    CHECK(na && nb && !nf_segment_read_norms(a, 0, n, na) && !nf_segment_read_norms(b, 0, n, nb)
          && !memcmp(na, nb, n * 4));
    free(na);
    free(nb);
    CHECK(!memcmp(nf_segment_tombstones(a), nf_segment_tombstones(b), (n + 63) / 64 * 8));
    for (uint64_t r = 0; r < n; r++) {
        size_t la, lb;
        const void *pa = nf_segment_payload(a, r, &la), *pb = nf_segment_payload(b, r, &lb);
        CHECK(pa && pb && la == lb && !memcmp(pa, pb, la));
        CHECK(!strcmp(nf_segment_id(a, r, NULL), nf_segment_id(b, r, NULL)));
    }
    nf_segment_release(b, 0, n);                        /* no-op under memory */
out:
    nf_segment_destroy(&a);
    nf_segment_destroy(&b);
}

static void
test_lock(const char *dir)
{
    nf_segment_t *w = NULL, *w2 = NULL, *r = NULL;
    nf_segment_opts_t ro = {.readonly = true};
    char pid[32];
    snprintf(pid, sizeof pid, "pid %ld", (long) getpid());
    CHECK_OK(nf_segment_open(dir, NULL, &w));
    CHECK(nf_segment_open(dir, NULL, &w2) == NF_ELOCKED && w2 == NULL);
    CHECK(strstr(nf_error_msg(), "locked by another writer") && strstr(nf_error_msg(), pid));
    CHECK(nf_segment_open_or_create(dir, DIM, NF_METRIC_L2, NULL, &w2) == NF_ELOCKED);
    CHECK_OK(nf_segment_open(dir, &ro, &r));
    /* a reader opened before an append keeps its view; a new one sees it */
    uint64_t before = r ? nf_segment_rows(r) : 0;
    if (w)
        CHECK_OK(s_append_range(w, 1000, 3));
    CHECK(r && nf_segment_rows(r) == before && s_row_is(r, 0, 0));
    nf_segment_destroy(&r);
    CHECK_OK(nf_segment_open(dir, &ro, &r));
    CHECK(r && nf_segment_rows(r) == before + 3 && s_row_is(r, before + 2, 1002));
    nf_segment_destroy(&w);
    CHECK_OK(nf_segment_open(dir, NULL, &w2));
    nf_segment_destroy(&w2);
    nf_segment_destroy(&r);

    /* open_or_create: dim and metric must match */
    CHECK(nf_segment_open_or_create(dir, 8, NF_METRIC_L2, NULL, &w) == NF_EDIM && !w);
    CHECK(strstr(nf_error_msg(), "dim 16") && strstr(nf_error_msg(), "dim 8"));
    CHECK(nf_segment_open_or_create(dir, DIM, NF_METRIC_IP, NULL, &w) == NF_EINVAL);
    CHECK(strstr(nf_error_msg(), "l2") && strstr(nf_error_msg(), "ip"));
    CHECK_OK(nf_segment_open_or_create(dir, DIM, NF_METRIC_L2, &ro, &w));
    nf_segment_destroy(&w);
}

static uint64_t
s_slot_checksum(const unsigned char *slot)
{
    return XXH3_64bits(slot, 2040);
}

static void
test_malformed(const char *good)
{
    nf_segment_t *seg = NULL;
    char *d;
    uint64_t rows = 0;
    CHECK_OK(nf_segment_open(good, &(nf_segment_opts_t) {.readonly = true}, &seg));
    if (seg)
        rows = nf_segment_rows(seg);
    nf_segment_destroy(&seg);

    CHECK(nf_segment_open("/nonexistent/nflow/seg", NULL, &seg) == NF_ENOTFOUND);
    d = nf_test_tmpdir();
    CHECK(nf_segment_open(d, NULL, &seg) == NF_ENOTFOUND);  /* empty directory */
    CHECK(strstr(nf_error_msg(), "vectors.nfv") != NULL);
    nf_test_rmdir(d);
    free(d);

    for (size_t k = 0; k < NFILES; k++) {
        const char *f = s_files[k];
        off_t full = s_size(s_join(good, f));
        off_t hdr = k == 0 ? 4096 : 64;
        /* missing */
        d = s_copy_seg(good);
        unlink(s_join(d, f));
        s_expect_open_error(d, true, NF_ECORRUPT, f, k == 0 ? "vectors.nfv is missing"
                                                            : "incomplete segment: missing");
        nf_test_rmdir(d);
        free(d);
        /* truncated at every interesting size */
        off_t cuts[] = {0, 1, 7, 8, hdr - 1, hdr, full - 1};
        for (size_t c = 0; c < sizeof cuts / sizeof cuts[0]; c++) {
            if (cuts[c] >= full)
                continue;
            d = s_copy_seg(good);
            CHECK(truncate(s_join(d, f), cuts[c]) == 0);
            s_expect_open_error(d, c % 2, NF_ECORRUPT, f, "truncated");
            nf_test_rmdir(d);
            free(d);
        }
        /* random bytes of the same size */
        d = s_copy_seg(good);
        uint64_t st = k + 1;
        unsigned char *junk = malloc((size_t) full);
        for (off_t i = 0; i < full; i++)
            junk[i] = (unsigned char) nf_test_rand(&st);
        s_poke(s_join(d, f), 0, junk, (size_t) full);
        free(junk);
        s_expect_open_error(d, false, NF_EFORMAT, f, "bad magic");
        nf_test_rmdir(d);
        free(d);
        /* a future format version */
        d = s_copy_seg(good);
        uint32_t nine = 9;
        s_poke(s_join(d, f), 8, &nine, 4);
        if (k == 0)
            s_poke(s_join(d, f), 2048 + 8, &nine, 4);
        s_expect_open_error(d, false, NF_EVERSION, f, "format version 9, this build reads");
        nf_test_rmdir(d);
        free(d);
    }
    /* a FIFO instead of a file must not hang the open */
    d = s_copy_seg(good);
    unlink(s_join(d, "payload.off"));
    CHECK(mkfifo(s_join(d, "payload.off"), 0644) == 0);
    s_expect_open_error(d, true, NF_EFORMAT, "payload.off", "not a regular file");
    s_expect_open_error(d, false, NF_EFORMAT, "payload.off", "not a regular file");
    nf_test_rmdir(d);
    free(d);

    /* another segment file in the wrong place is named as such */
    d = s_copy_seg(good);
    s_copy_file(s_join(good, "norms.nfn"), s_join(d, "ids.off"));
    s_expect_open_error(d, true, NF_EFORMAT, "ids.off", "nflow norms file");
    nf_test_rmdir(d);
    free(d);

    /* header slots: a torn newest slot falls back to the older commit; both
       torn is a clear error */
    unsigned char page[4096];
    int fd = open(s_join(good, "vectors.nfv"), O_RDONLY);
    CHECK(fd >= 0 && pread(fd, page, sizeof page, 0) == (ssize_t) sizeof page);
    if (fd >= 0)
        close(fd);
    uint64_t seq0, seq1, rows0, rows1;
    memcpy(&seq0, page + 24, 8);
    memcpy(&seq1, page + 2048 + 24, 8);
    memcpy(&rows0, page + 32, 8);
    memcpy(&rows1, page + 2048 + 32, 8);
    CHECK(s_slot_checksum(page) == *(uint64_t *) (page + 2040));
    CHECK(seq0 != seq1 && (seq0 > seq1 ? rows0 : rows1) == rows);
    d = s_copy_seg(good);
    s_poke(s_join(d, "vectors.nfv"), (seq0 > seq1 ? 0 : 2048) + 40, "\x55", 1);
    CHECK_OK(nf_segment_open(d, NULL, &seg));
    CHECK(seg && nf_segment_rows(seg) == (seq0 > seq1 ? rows1 : rows0));
    nf_segment_destroy(&seg);
    s_poke(s_join(d, "vectors.nfv"), 2048 + 100, "\x55", 1);
    s_poke(s_join(d, "vectors.nfv"), 100, "\x55", 1);
    s_expect_open_error(d, true, NF_ECORRUPT, "vectors.nfv", "no valid commit slot (slot 0: "
                        "checksum mismatch; slot 1: checksum mismatch)");
    nf_test_rmdir(d);
    free(d);

    /* a header claiming more rows than the file holds */
    d = s_copy_seg(good);
    unsigned char slot[2048];
    memcpy(slot, page + (seq0 > seq1 ? 0 : 2048), 2048);
    uint64_t big = 1000, cs, vb = 1000 * DIM * 4, nb = 1000 * 4, ob = 1000 * 8;
    memcpy(slot + 32, &big, 8);
    memcpy(slot + 128, &vb, 8);                 /* file table: vectors, norms, the .off */
    memcpy(slot + 128 + 24, &nb, 8);
    memcpy(slot + 128 + 3 * 24, &ob, 8);
    memcpy(slot + 128 + 5 * 24, &ob, 8);
    cs = s_slot_checksum(slot);
    memcpy(slot + 2040, &cs, 8);
    s_poke(s_join(d, "vectors.nfv"), seq0 > seq1 ? 0 : 2048, slot, 2048);
    char words[128];
    snprintf(words, sizeof words, "header says 1000 rows (%d bytes) but file has", 1000 * DIM * 4);
    s_expect_open_error(d, true, NF_ECORRUPT, "vectors.nfv", words);
    nf_test_rmdir(d);
    free(d);

    /* garbage id offsets in the last commit's chunk: refused at open by the
       chunk checksum, naming the rows */
    d = s_copy_seg(good);
    uint64_t huge = 1ull << 50;
    s_poke(s_join(d, "ids.off"), 64 + 8 * 2, &huge, 8);
    s_expect_open_error(d, false, NF_ECORRUPT, "ids.off", "fails its checksum");
    s_expect_open_error(d, true, NF_ECORRUPT, "ids.off", "rows 0..");
    nf_test_rmdir(d);
    free(d);
}

/* Random damage to random files: open either fails cleanly or gives a
   segment whose every accessor stays in bounds. */
static void
test_fuzz(const char *good)
{
    uint64_t st = 12345, opened = 0;
    for (int round = 0; round < 400; round++) {
        char *d = s_copy_seg(good);
        int hits = 1 + (int) (nf_test_rand(&st) % 4);
        for (int h = 0; h < hits; h++) {
            const char *f = s_join(d, s_files[nf_test_rand(&st) % NFILES]);
            off_t size = s_size(f);
            if (nf_test_rand(&st) % 5 == 0) {
                CHECK(truncate(f, (off_t) (nf_test_rand(&st) % (uint64_t) (size + 1))) == 0);
                continue;
            }
            unsigned char b[8];
            for (int i = 0; i < 8; i++)
                b[i] = (unsigned char) nf_test_rand(&st);
            off_t at = size > 0 ? (off_t) (nf_test_rand(&st) % (uint64_t) size) : 0;
            if (nf_test_rand(&st) % 2)
                at = (off_t) (nf_test_rand(&st) % 160);   /* often the headers */
            if (at < size)
                s_poke(f, at, b, size - at < 8 ? (size_t) (size - at) : 8);
        }
        nf_segment_opts_t o = {.readonly = round % 2, .vectors = round % 3 == 0,
                               .payloads = round % 4 == 0};
        nf_segment_t *seg = NULL;
        int rc = nf_segment_open(d, &o, &seg);
        CHECK((rc == 0) == (seg != NULL));
        CHECK(rc == 0 || strlen(nf_error_msg()) > 0);
        if (seg) {
            opened++;
            uint64_t n = nf_segment_rows(seg), sum = 0;
            const float *v = nf_segment_vectors(seg, 0, n);
            float *nm = malloc((n ? n : 1) * sizeof *nm);
            CHECK(v && nm && nf_segment_read_norms(seg, 0, n, nm) == 0);
            free(nm);
            for (uint64_t r = 0; r < n; r++) {
                size_t len = 0;
                const char *id = nf_segment_id(seg, r, &len);
                const unsigned char *p = nf_segment_payload(seg, r, &len);
                for (size_t i = 0; p && i < len; i++)
                    sum += p[i];
                sum += nf_segment_is_deleted(seg, r) + (id ? (unsigned char) id[0] : 0);
                if (id)
                    nf_segment_get(seg, id, NULL);
            }
            nf_segment_release(seg, 0, n);
            (void) sum;
            nf_segment_destroy(&seg);
        }
        nf_test_rmdir(d);
        free(d);
    }
    printf("fuzz: %llu of 400 damaged copies still opened\n", (unsigned long long) opened);
}

/* Trailing uncommitted bytes (a batch never acknowledged: both slots
   valid) are ignored by readers and trimmed by a writer, without a word. */
static void
test_trim(const char *good)
{
    char *d = s_copy_seg(good);
    nf_segment_t *seg = NULL;
    int fd = open(s_join(d, "vectors.nfv"), O_WRONLY | O_APPEND);
    CHECK(fd >= 0 && write(fd, "garbage!", 8) == 8);
    close(fd);
    off_t vsize = s_size(s_join(d, "vectors.nfv"));
    CHECK_OK(nf_segment_open(d, &(nf_segment_opts_t) {.readonly = true}, &seg));
    CHECK(seg && nf_segment_notice(seg) == NULL);
    nf_segment_destroy(&seg);
    CHECK(s_size(s_join(d, "vectors.nfv")) == vsize);          /* readers change nothing */
    CHECK_OK(nf_segment_open(d, NULL, &seg));
    CHECK(seg && nf_segment_notice(seg) == NULL);
    CHECK(s_size(s_join(d, "vectors.nfv")) == vsize - 8);      /* trimmed */
    CHECK(access(s_join(d, "recovered"), F_OK) != 0);
    nf_segment_destroy(&seg);
    nf_test_rmdir(d);
    free(d);
}

/* Offset of the current (highest seq) slot of dir's vectors.nfv, and the
   rows of both slots. */
static off_t
s_current_slot(const char *dir, uint64_t *rows_cur, uint64_t *rows_prev)
{
    unsigned char page[4096];
    int fd = open(s_join(dir, "vectors.nfv"), O_RDONLY);
    CHECK(fd >= 0 && pread(fd, page, sizeof page, 0) == (ssize_t) sizeof page);
    if (fd >= 0)
        close(fd);
    uint64_t seq0, seq1, r0, r1;
    memcpy(&seq0, page + 24, 8);
    memcpy(&seq1, page + 2048 + 24, 8);
    memcpy(&r0, page + 32, 8);
    memcpy(&r1, page + 2048 + 32, 8);
    *rows_cur = seq0 > seq1 ? r0 : r1;
    *rows_prev = seq0 > seq1 ? r1 : r0;
    return seq0 > seq1 ? 0 : 2048;
}

/* One flipped byte in the current commit slot (issue 7): the open falls
   back to the previous commit and SAYS so (slot, seq, rows beyond); a
   writable open keeps the bytes beyond in recovered/ before trimming;
   nf_segment_repair re-commits the rows that pass their checksums, or
   reports them dropped.  Before v2 the open was silent and the writable
   open truncated the last commit away. */
static void
test_slot_damage(const char *good)
{
    /* variant 0: all kept rows come back; 1: the damaged slot's tail hash
       is damaged too, so nothing confirms them and they are dropped; 2: a
       writer wrote doc-1001 again after the damage, so the kept (older)
       doc-1001 is superseded and only the other two come back */
    for (int variant = 0; variant < 3; variant++) {
        char *d = s_copy_seg(good);
        nf_segment_t *seg = NULL;
        uint64_t cur, prev;
        off_t slot = s_current_slot(d, &cur, &prev);
        CHECK(cur == prev + 3);                 /* test_lock's last append: docs 1000..1002 */
        s_poke(s_join(d, "vectors.nfv"), slot + 40, "\x55", 1);
        if (variant == 1)   /* and the damaged slot's tail hash of vectors.nfv too */
            s_poke(s_join(d, "vectors.nfv"), slot + 128 + 16, "\x55", 1);
        off_t sizes[NFILES];
        for (size_t k = 0; k < NFILES; k++)
            sizes[k] = s_size(s_join(d, s_files[k]));

        CHECK_OK(nf_segment_open(d, &(nf_segment_opts_t) {.readonly = true}, &seg));
        const char *n = seg ? nf_segment_notice(seg) : NULL;
        char want[128];
        snprintf(want, sizeof want, "commit slot %d failed its check", slot ? 1 : 0);
        CHECK(n && strstr(n, want) && strstr(n, "3 rows") && strstr(n, "checksum mismatch"));
        CHECK(seg && nf_segment_rows(seg) == prev);
        if (n && variant == 0)
            printf("notice (read-only): %s\n", n);
        nf_segment_destroy(&seg);
        for (size_t k = 0; k < NFILES; k++)
            CHECK(s_size(s_join(d, s_files[k])) == sizes[k]);

        CHECK_OK(nf_segment_open(d, NULL, &seg));
        n = seg ? nf_segment_notice(seg) : NULL;
        CHECK(n && strstr(n, "copied to") && strstr(n, "recovered/seq-"));
        CHECK(seg && nf_segment_rows(seg) == prev);
        nf_segment_destroy(&seg);
        CHECK(s_size(s_join(d, "vectors.nfv")) == (off_t) (VEC_HDR + prev * DIM * 4));
        DIR *rd = opendir(s_join(d, "recovered"));
        struct dirent *e;
        char kept[4096] = "";
        while (rd && (e = readdir(rd)))
            if (!strncmp(e->d_name, "seq-", 4))
                snprintf(kept, sizeof kept, "%s/recovered/%s/vectors.nfv", d, e->d_name);
        if (rd)
            closedir(rd);
        CHECK(kept[0] && s_size(kept) == 3 * DIM * 4);

        CHECK_OK(nf_segment_open(d, NULL, &seg));   /* reminded until repaired */
        CHECK(seg && nf_segment_notice(seg) && strstr(nf_segment_notice(seg), "segment repair"));
        if (seg && variant == 2) {
            float v[DIM] = {1, 2, 3};
            nf_doc_t again = {"doc-1001", v, "newer", 5};
            CHECK_OK(nf_segment_append(seg, &again, 1));
        }
        nf_segment_destroy(&seg);

        char *report = NULL;
        CHECK_OK(nf_segment_repair(d, &report));
        CHECK(report && strstr(report, "3 whole rows kept aside"));
        if (variant == 0)
            CHECK(report && strstr(report, "re-committed 3,"));
        else if (variant == 2)
            CHECK(report && strstr(report, "re-committed 2, 1 superseded"));
        else
            CHECK(report && strstr(report, "re-committed 0,")
                  && strstr(report, "not covered by a matching checksum"));
        if (report)
            printf("repair report: %s", report);
        free(report);
        CHECK(access(s_join(d, "recovered"), F_OK) != 0);
        CHECK_OK(nf_segment_open(d, &(nf_segment_opts_t) {.readonly = true}, &seg));
        CHECK(seg && nf_segment_notice(seg) == NULL);
        uint64_t row;
        for (int i = 0; seg && i < 3 && variant < 2; i++) {
            char id[32];
            snprintf(id, sizeof id, "doc-%d", 1000 + i);
            int rc = nf_segment_get(seg, id, &row);
            CHECK(variant == 0 ? rc == 0 && row == prev + (uint64_t) i
                                     && s_row_is(seg, row, 1000 + (uint64_t) i)
                               : rc == NF_ENOTFOUND);
        }
        CHECK(seg && nf_segment_rows(seg) == (variant == 0 ? cur : variant == 1 ? prev : cur));
        if (seg && variant == 2) {
            size_t len = 0;
            CHECK(nf_segment_get(seg, "doc-1001", &row) == 0 && row == prev);
            const void *pl = nf_segment_payload(seg, row, &len);
            CHECK(pl && len == 5 && !memcmp(pl, "newer", 5));
            CHECK(nf_segment_get(seg, "doc-1000", &row) == 0 && s_row_is(seg, row, 1000));
            CHECK(nf_segment_get(seg, "doc-1002", &row) == 0 && s_row_is(seg, row, 1002));
        }
        nf_segment_destroy(&seg);
        nf_test_rmdir(d);
        free(d);
    }
}

/* Typed fields through a damaged commit (issue 11): the rows repair puts
   back carry their exact field values (nulls stay null, an empty keyword[]
   stays empty, keywords first seen in the damaged commit come back even
   when a later write gave their dictionary ids to other keywords); field
   bytes that fail their checksum end the batch like other damage.  Before,
   repair re-committed the rows with every field null. */
static const char *s_fspecs = "year:int,score:float,ok:bool,genre:keyword,tags:keyword[],"
                              "when:datetime";
#define NFV 6

/* Append docs first..first+n-1 in ONE commit, doc first+j with the values
   vals[j][0..NFV) (NULL: no value; tags a ';'-separated list, "" = the
   empty set). */
static int
s_append_fdocs(nf_segment_t *seg, uint64_t first, const char *const (*vals)[NFV], size_t n)
{
    static const char *names[NFV] = {"year", "score", "ok", "genre", "tags", "when"};
    float v[8][DIM];
    char id[8][NF_ID_MAX + 1], pl[8][64], tagbuf[8][128];
    const char *set[8][8];
    nf_fval_t fv[8][NFV];
    nf_doc_t docs[8];
    nf_fields_t fl[8];
    for (size_t j = 0; j < n && j < 8; j++) {
        size_t plen, nv = 0, ns = 0;
        s_make(first + j, DIM, v[j], id[j], pl[j], &plen);
        docs[j] = (nf_doc_t) {id[j], v[j], plen ? pl[j] : NULL, plen};
        for (int f = 0; f < NFV; f++) {
            const char *x = vals[j][f];
            if (!x)
                continue;
            nf_fval_t *o = &fv[j][nv++];
            o->name = names[f];
            switch (f) {
            case 0: o->type = NF_FIELD_INT; o->v.i = strtoll(x, NULL, 10); break;
            case 1: o->type = NF_FIELD_FLOAT; o->v.f = strtod(x, NULL); break;
            case 2: o->type = NF_FIELD_BOOL; o->v.b = !strcmp(x, "true"); break;
            case 4:
                snprintf(tagbuf[j], sizeof tagbuf[j], "%s", x);
                for (char *t = strtok(tagbuf[j], ";"); t && ns < 8; t = strtok(NULL, ";"))
                    set[j][ns++] = t;
                o->type = NF_FIELD_KEYWORDS;
                o->v.set.v = set[j];
                o->v.set.n = ns;
                break;
            default: o->type = NF_FIELD_KEYWORD; o->v.s = x; break;    /* datetime: RFC 3339 */
            }
        }
        fl[j] = (nf_fields_t) {fv[j], nv};
    }
    return nf_segment_append_fields(seg, docs, fl, n);
}

/* The JSON of every field of the live row of doc i, joined by '|'. */
static void
s_fjson(nf_segment_t *seg, uint64_t i, char *out, size_t size)
{
    char id[32];
    uint64_t row;
    snprintf(id, sizeof id, "doc-%llu", (unsigned long long) i);
    out[0] = '\0';
    if (nf_segment_get(seg, id, &row) != 0 || !s_row_is(seg, row, i)) {
        snprintf(out, size, "(missing or wrong row)");
        return;
    }
    for (size_t f = 0; f < nf_segment_nfields(seg); f++) {
        char v[256];
        nf_segment_value_json(seg, f, row, v, sizeof v);
        size_t len = strlen(out);
        snprintf(out + len, size - len, "%s%s", f ? "|" : "", v);
    }
}

/* Write bytes at row `row` (of the segment, a kept one) of file-table entry k (kept as `name`
   in recovered/seq-3/) and make the damaged slot's tail hash of that file
   (in the kept header page, slot at slot_off) match the new body. */
static void
s_kept_value(const char *d, off_t slot_off, int k, const char *name, uint64_t row,
             const void *bytes, size_t n)
{
    char kept[4400], page[4400];
    snprintf(kept, sizeof kept, "%s/recovered/seq-3/%s", d, name);
    snprintf(page, sizeof page, "%s/recovered/seq-3/header.page", d);
    off_t live = s_size(s_join(d, name)) - 64, kn = s_size(kept);
    uint64_t w = (uint64_t) n;
    s_poke(kept, (off_t) (row * w) - live, bytes, n);
    unsigned char body[4096];
    CHECK(live >= 0 && kn >= 0 && live + kn <= (off_t) sizeof body);
    int a = open(s_join(d, name), O_RDONLY), b = open(kept, O_RDONLY);
    CHECK(a >= 0 && b >= 0 && pread(a, body, (size_t) live, 64) == live
          && pread(b, body + live, (size_t) kn, 0) == kn);
    if (a >= 0)
        close(a);
    if (b >= 0)
        close(b);
    uint64_t h = XXH3_64bits(body, (size_t) (live + kn));
    s_poke(page, slot_off + 128 + k * 24 + 16, &h, 8);
}

static void
test_slot_damage_fields(void)
{
    nf_field_def_t defs[NFV];
    size_t ndefs = 0;
    CHECK_OK(nf_field_defs_parse(s_fspecs, defs, NFV, &ndefs));
    /* docs 0..1: the commit before; 10..13: the last commit, damaged */
    static const char *const base[2][NFV] = {
        {"1999", "2.5", "true", "scifi", "a;b", "1999-03-31"},
        {NULL, NULL, "false", "drama", "b", NULL},
    };
    static const char *const last[4][NFV] = {
        {"2001", "-0.125", "false", "drama", "b;a", "2001-02-03T04:05:06.789Z"},  /* old kws */
        {"-7", NULL, NULL, "noir", "c;a;d", NULL},          /* new keywords */
        {NULL, "65536.5", "true", NULL, "", "1970-01-01"},     /* empty set, nulls */
        {"9223372036854775807", "0", NULL, "noir", NULL, "2262-04-11T23:47:16Z"},
    };
    static const char *const want[4] = {
        "2001|-0.125|false|\"drama\"|[\"a\",\"b\"]|\"2001-02-03T04:05:06.789000Z\"",
        "-7|null|null|\"noir\"|[\"a\",\"c\",\"d\"]|null",
        "null|65536.5|true|null|[]|\"1970-01-01T00:00:00Z\"",
        "9223372036854775807|0|null|\"noir\"|null|\"2262-04-11T23:47:16Z\"",
    };
    static const char *const later[1][NFV] = {{NULL, NULL, NULL, "western", "z;y", NULL}};
    /* variant 0: all four come back exact, although a write after the
       damage gave the kept keywords' dictionary ids to others; 1: a byte
       flipped in the damaged commit's bool column fails its checksum: all
       four dropped; 2: a byte flipped in its new keywords (genre's
       dictionary): doc 10 (old keywords only) comes back, doc 11 (a new
       one) ends the batch; 3, 4: a bad value whose kept bytes carry a
       matching checksum (the damaged slot's tail hash made to fit: the
       checks behind the checksums) -- a bool byte 7 in doc 12, a keyword id
       past the dictionary in doc 11 -- ends the batch there; 5..: 1-4
       random bytes of the kept files (header
       page included) flipped: repair succeeds, and every row it puts back
       holds exactly its values (fuzz of the checks; nothing wrong gets in) */
    uint64_t rnd = 11, fuzz_back = 0;
    for (int variant = 0; variant < 5 + 120; variant++) {
        char *d = nf_test_tmpdir();
        nf_segment_t *seg = NULL;
        char got[1024];
        CHECK_OK(nf_segment_create(d, DIM, NF_METRIC_L2, &seg));
        CHECK_OK(nf_segment_set_schema(seg, defs, ndefs));
        CHECK_OK(s_append_fdocs(seg, 0, base, 2));
        CHECK_OK(s_append_fdocs(seg, 10, last, 4));
        nf_segment_destroy(&seg);
        uint64_t cur, prev;
        off_t slot = s_current_slot(d, &cur, &prev);
        CHECK(cur == 6 && prev == 2);
        s_poke(s_join(d, "vectors.nfv"), slot + 40, "\x55", 1);
        if (variant == 1)   /* doc 12's ok byte (true -> 0x54) */
            s_poke(s_join(d, "f.ok.val"), 64 + 4, "\x54", 1);
        if (variant == 2)   /* "noir\0" starts genre's dictionary bytes of that commit */
            s_poke(s_join(d, "f.genre.dict"), 64 + strlen("scifi") + 1 + strlen("drama") + 1,
                   "m", 1);

        CHECK_OK(nf_segment_open(d, NULL, &seg));      /* keeps the commit aside */
        CHECK(seg && nf_segment_rows(seg) == 2);
        CHECK(seg && nf_segment_notice(seg) && strstr(nf_segment_notice(seg), "copied to"));
        if (seg && variant == 0)    /* takes the next ids of genre and tags */
            CHECK_OK(s_append_fdocs(seg, 20, later, 1));
        nf_segment_destroy(&seg);
        if (variant >= 5) {
            static const char *kept[] = {"header.page", "vectors.nfv", "norms.nfn", "ids.dat",
                                         "ids.off", "payload.dat", "payload.off",
                                         "checksums.nfc", "f.year.val", "f.score.val",
                                         "f.ok.val", "f.genre.val", "f.genre.dict",
                                         "f.tags.off", "f.tags.dict", "f.tags.ids",
                                         "f.when.val"};
            char kdir[4096];
            snprintf(kdir, sizeof kdir, "recovered/seq-3");
            int flips = 1 + (int) (nf_test_rand(&rnd) % 4);
            for (int i = 0; i < flips; i++) {
                const char *name = kept[nf_test_rand(&rnd) % (sizeof kept / sizeof kept[0])];
                char path[4400];
                snprintf(path, sizeof path, "%s/%s/%s", d, kdir, name);
                off_t size = s_size(path);
                if (size <= 0)
                    continue;
                unsigned char b = (unsigned char) (1u << (nf_test_rand(&rnd) % 8));
                off_t at = (off_t) (nf_test_rand(&rnd) % (uint64_t) size);
                unsigned char c = 0;
                int fd = open(path, O_RDWR);
                CHECK(fd >= 0 && pread(fd, &c, 1, at) == 1);
                c ^= b;
                CHECK(fd >= 0 && pwrite(fd, &c, 1, at) == 1);
                if (fd >= 0)
                    close(fd);
            }
        }

        if (variant == 3)       /* f.ok.val: file-table entry 11 */
            s_kept_value(d, slot, 11, "f.ok.val", 4, "\x07", 1);
        if (variant == 4)       /* f.genre.val: entry 12, u32 per row */
            s_kept_value(d, slot, 12, "f.genre.val", 3, "\x09\0\0\0", 4);
        char *report = NULL;
        CHECK_OK(nf_segment_repair(d, &report));
        if (report && variant < 5)
            printf("repair report (fields, variant %d): %s", variant, report);
        if (variant == 0)
            CHECK(report && strstr(report, "re-committed 4,"));
        else if (variant == 3)
            CHECK(report && strstr(report, "re-committed 2,")
                  && strstr(report, "dropped from row 4 on (field 'ok': bool byte 7)"));
        else if (variant == 4)
            CHECK(report && strstr(report, "re-committed 1,")
                  && strstr(report, "dropped from row 3 on (field 'genre': keyword id 9 is not "
                                    "in the dictionary"));
        else if (variant >= 5)
            ;
        else if (variant == 1)
            CHECK(report && strstr(report, "re-committed 0,")
                  && strstr(report, "field 'ok': not covered by a matching checksum"));
        else
            CHECK(report && strstr(report, "re-committed 1,")
                  && strstr(report, "dropped from row 3 on (field 'genre': keyword id 3 is "
                                    "not in the dictionary"));
        free(report);

        CHECK_OK(nf_segment_open(d, &(nf_segment_opts_t) {.readonly = true}, &seg));
        CHECK(seg && nf_segment_notice(seg) == NULL);
        s_fjson(seg, 0, got, sizeof got);
        CHECK(!strcmp(got, "1999|2.5|true|\"scifi\"|[\"a\",\"b\"]|\"1999-03-31T00:00:00Z\""));
        s_fjson(seg, 1, got, sizeof got);
        CHECK(!strcmp(got, "null|null|false|\"drama\"|[\"b\"]|null"));
        for (int i = 0; seg && i < 4; i++) {
            bool back = variant == 0 || ((variant == 2 || variant == 4) && i == 0)
                        || (variant == 3 && i < 2);
            uint64_t row;
            char id[32];
            snprintf(id, sizeof id, "doc-%d", 10 + i);
            if (variant >= 5)
                fuzz_back += back = nf_segment_get(seg, id, &row) == 0;
            if (!back) {
                CHECK(nf_segment_get(seg, id, &row) == NF_ENOTFOUND);
                continue;
            }
            s_fjson(seg, 10 + (uint64_t) i, got, sizeof got);
            CHECK(!strcmp(got, want[i]));
            if (strcmp(got, want[i]))
                fprintf(stderr, "  doc %d: got %s\n  want %s\n", 10 + i, got, want[i]);
        }
        if (seg && variant == 0) {
            s_fjson(seg, 20, got, sizeof got);
            CHECK(!strcmp(got, "null|null|null|\"western\"|[\"z\",\"y\"]|null"));
            /* the filter's view: keyword ids of today's dictionary */
            CHECK(nf_segment_keyword_id(seg, 3, "noir", 4) == 4);
            CHECK(nf_segment_keyword_id(seg, 3, "western", 7) == 3);
        }
        nf_segment_destroy(&seg);
        CHECK_OK(nf_segment_verify(d, NULL));
        nf_test_rmdir(d);
        free(d);
    }
    printf("repair fuzz: %llu of 480 kept rows with flipped kept bytes came back, each exact\n",
           (unsigned long long) fuzz_back);
}

/* A directory holding part of a segment is refused naming what is missing,
   and nothing in it is truncated (before: open_or_create made a new empty
   segment over the files).  Only an empty or absent directory is created. */
static void
test_partial_dir(const char *good)
{
    static const char *gone[] = {"vectors.nfv", "deletes.nfd"};
    for (size_t g = 0; g < 2; g++) {
        char *d = s_copy_seg(good);
        nf_segment_t *seg = NULL;
        unlink(s_join(d, gone[g]));
        off_t sizes[NFILES];
        for (size_t k = 0; k < NFILES; k++)
            sizes[k] = s_size(s_join(d, s_files[k]));
        CHECK(nf_segment_open_or_create(d, DIM, NF_METRIC_L2, NULL, &seg) == NF_ECORRUPT);
        CHECK(!seg && strstr(nf_error_msg(), gone[g]) && strstr(nf_error_msg(), "missing"));
        CHECK(nf_segment_create(d, DIM, NF_METRIC_L2, &seg) == (g ? NF_EEXIST : NF_ECORRUPT));
        s_expect_open_error(d, false, NF_ECORRUPT, gone[g], "missing");
        for (size_t k = 0; k < NFILES; k++)
            CHECK(s_size(s_join(d, s_files[k])) == sizes[k]);
        nf_test_rmdir(d);
        free(d);
    }
    /* what an interrupted create leaves (files holding only their header,
       no vectors.nfv) holds nothing: open says "not a segment", and
       open_or_create creates over it */
    char *ic = nf_test_tmpdir();
    nf_segment_t *seg = NULL;
    for (size_t k = 1; k < NFILES; k++) {
        s_copy_file(s_join(good, s_files[k]), s_join(ic, s_files[k]));
        CHECK(truncate(s_join(ic, s_files[k]), 64) == 0);
    }
    s_expect_open_error(ic, true, NF_ENOTFOUND, "vectors.nfv", "not a segment");
    CHECK_OK(nf_segment_open_or_create(ic, DIM, NF_METRIC_L2, NULL, &seg));
    CHECK(seg && nf_segment_rows(seg) == 0);
    nf_segment_destroy(&seg);
    nf_test_rmdir(ic);
    free(ic);

    /* foreign files: not a segment, not created over */
    char *d = nf_test_tmpdir();
    s_copy_file(s_join(good, "norms.nfn"), s_join(d, "notes.txt"));
    CHECK(nf_segment_open_or_create(d, DIM, NF_METRIC_L2, NULL, &seg) == NF_EEXIST && !seg);
    CHECK(strstr(nf_error_msg(), "notes.txt") != NULL);
    unlink(s_join(d, "notes.txt"));
    CHECK_OK(nf_segment_open_or_create(d, DIM, NF_METRIC_L2, NULL, &seg));   /* empty: ok */
    nf_segment_destroy(&seg);
    nf_test_rmdir(d);
    free(d);
}

/* A version 1 segment (4096-byte header page, tombstones.nft) is refused
   naming the file, the version found, the version spoken and the way out. */
static void
test_version1(void)
{
    char *d = nf_test_tmpdir();
    static const char *v1[][2] = {{"norms.nfn", "NFSEGNRM"}, {"ids.dat", "NFSEGIDD"},
                                  {"ids.off", "NFSEGIDO"}, {"payload.dat", "NFSEGPLD"},
                                  {"payload.off", "NFSEGPLO"}, {"tombstones.nft", "NFSEGTMB"}};
    unsigned char page[4096] = {0}, hdr[64] = {0};
    uint32_t one = 1, dim = DIM;
    for (int i = 0; i < 2; i++) {
        memcpy(page + i * 2048, "NFLOWSEG", 8);
        memcpy(page + i * 2048 + 8, &one, 4);
        memcpy(page + i * 2048 + 12, &dim, 4);
        page[i * 2048 + 24] = (unsigned char) i;
    }
    int fd = open(s_join(d, "vectors.nfv"), O_WRONLY | O_CREAT, 0644);
    CHECK(fd >= 0 && write(fd, page, sizeof page) == (ssize_t) sizeof page);
    close(fd);
    for (size_t i = 0; i < 6; i++) {
        memcpy(hdr, v1[i][1], 8);
        memcpy(hdr + 8, &one, 4);
        fd = open(s_join(d, v1[i][0]), O_WRONLY | O_CREAT, 0644);
        CHECK(fd >= 0 && write(fd, hdr, sizeof hdr) == (ssize_t) sizeof hdr);
        close(fd);
    }
    for (int ro = 0; ro < 2; ro++)
        s_expect_open_error(d, ro, NF_EVERSION, "vectors.nfv",
                            "segment format version 1, this build reads version 2");
    nf_segment_t *seg = NULL;
    CHECK(nf_segment_open_or_create(d, DIM, NF_METRIC_L2, NULL, &seg) == NF_EVERSION);
    CHECK(strstr(nf_error_msg(), "nflow segment build") != NULL);
    CHECK(s_size(s_join(d, "vectors.nfv")) == 4096);
    nf_test_rmdir(d);
    free(d);
}

/* Bit flips in the body of vectors, norms and ids.dat: a flip in a chunk
   the last commit did not write opens (the open checks only those) but
   nf_segment_verify names the file, chunk and first bad rows; a flip in
   the last commit's chunks is refused at open.  Before v2 nothing noticed. */
static void
test_body_flips(void)
{
    char *d = nf_test_tmpdir(), *dir;
    nf_segment_t *seg = NULL;
    const uint64_t rows = 300000;           /* norms > 1 MiB: every file has old chunks */
    CHECK(asprintf(&dir, "%s/seg", d) > 0);
    CHECK_OK(nf_segment_create(dir, DIM, NF_METRIC_L2, &seg));
    /* the last commit starts past the first 1 MiB of every file */
    for (uint64_t r = 0, n = 50000; seg && r < rows; r += n, n = rows - r > 50000 ? 50000 : 20000)
        CHECK_OK(s_append_range(seg, r, n));
    nf_segment_destroy(&seg);
    uint64_t checked = 0;
    CHECK_OK(nf_segment_verify(dir, &checked));
    CHECK(checked > rows * DIM * 4);
    static const struct {
        const char *file;
        off_t hdr;
        const char *words;
    } f[] = {
        {"vectors.nfv", VEC_HDR, "vectors.nfv: chunk 0 (body bytes 0..1048576, rows 0..16383)"},
        {"norms.nfn", 64, "norms.nfn: chunk 0 (body bytes 0..1048576, rows 0..262143)"},
        {"ids.dat", 64, "ids.dat: chunk 0 (body bytes 0..1048576, rows 0.."},
    };
    for (size_t i = 0; i < 3; i++) {
        for (int last = 0; last < 2; last++) {
            char *c = nf_test_tmpdir();
            for (size_t k = 0; k < NFILES; k++)
                s_copy_file(s_join(dir, s_files[k]), s_join(c, s_files[k]));
            off_t at = last ? s_size(s_join(c, f[i].file)) - 3 : f[i].hdr + 100;
            unsigned char b = 0;
            int fd = open(s_join(c, f[i].file), O_RDWR);
            CHECK(fd >= 0 && pread(fd, &b, 1, at) == 1);
            b ^= 0x10;
            CHECK(fd >= 0 && pwrite(fd, &b, 1, at) == 1);
            close(fd);
            int rc = nf_segment_open(c, &(nf_segment_opts_t) {.readonly = true}, &seg);
            nf_segment_destroy(&seg);
            if (last) {
                CHECK(rc == NF_ECORRUPT && strstr(nf_error_msg(), f[i].file)
                      && strstr(nf_error_msg(), "fails its checksum"));
            } else {
                CHECK_OK(rc);
                CHECK(nf_segment_verify(c, NULL) == NF_ECORRUPT);
                CHECK(strstr(nf_error_msg(), f[i].words) != NULL);
                if (!strstr(nf_error_msg(), f[i].words))
                    fprintf(stderr, "  verify said: %s\n", nf_error_msg());
            }
            nf_test_rmdir(c);
            free(c);
        }
    }
    /* the cost of verifying (a figure for the README; never asserted) */
    uint64_t t0 = nf_now_us();
    CHECK_OK(nf_segment_verify(dir, &checked));
    double s = (double) (nf_now_us() - t0) / 1e6;
    printf("verify: %llu bytes in %.3f s (%.2f s per GB, warm page cache)\n",
           (unsigned long long) checked, s, s / ((double) checked / 1e9));
    nf_test_rmdir(d);
    free(dir);
    free(d);
}

/* Released windows leave resident memory and fault back in from the file. */
static void
test_release(void)
{
    char *d = nf_test_tmpdir();
    nf_segment_t *seg = NULL;
    const uint64_t rows = 1u << 17;             /* x 64 dims = 32 MiB */
    CHECK_OK(nf_segment_create(d, 64, NF_METRIC_IP, &seg));
    for (uint64_t r = 0; seg && r < rows; r += 16384)
        CHECK_OK(s_append_range(seg, r, 16384));
    nf_segment_destroy(&seg);
    CHECK_OK(nf_segment_open(d, &(nf_segment_opts_t) {.readonly = true}, &seg));
    if (!seg)
        goto out;
    const float *v = nf_segment_vectors(seg, 0, rows);
    double sum1 = 0, sum2 = 0;
    uint64_t rss0 = nf_rss_bytes();
    for (uint64_t i = 0; i < rows * 64; i++)
        sum1 += v[i];
    uint64_t rss1 = nf_rss_bytes();
    for (uint64_t r = 0; r < rows; r += 10000)
        nf_segment_release(seg, r, 10000);
    uint64_t rss2 = nf_rss_bytes();
    for (uint64_t i = 0; i < rows * 64; i++)
        sum2 += v[i];
    CHECK(sum1 == sum2);
    printf("release: rss %llu -> %llu (scanned) -> %llu (released) KiB\n",
           (unsigned long long) rss0 >> 10, (unsigned long long) rss1 >> 10,
           (unsigned long long) rss2 >> 10);
    CHECK(rss1 > rss0 + (24u << 20));
    CHECK(rss2 + (24u << 20) < rss1);
    nf_segment_destroy(&seg);
out:
    nf_test_rmdir(d);
    free(d);
}

/* Small appends that fill 2 MiB blocks of vectors (each commit that
   completes a block writes it again, whole, so the page cache holds it as
   one large folio): every row reads back the same through the writer's
   mapping (some rows read while their block is mapped, so the block cannot
   be dropped), after a reopen, and every chunk passes verify. */
static void
test_small_appends(void)
{
    char *d = nf_test_tmpdir();
    nf_segment_t *seg = NULL;
    const uint32_t dim = 512;                   /* 2 KiB rows: 1,024 per block */
    const uint64_t rows = 5 * 1024 + 300;
    float *want = malloc(dim * sizeof(float));
    char id[NF_ID_MAX + 1], pl[64];
    size_t plen;
    CHECK_OK(nf_segment_create(d, dim, NF_METRIC_L2, &seg));
    for (uint64_t r = 0, n = 37; seg && r < rows; r += n) {
        n = r + 37 <= rows ? 37 : rows - r;
        CHECK_OK(s_append_range(seg, r, n));
        if (r % 2000 < 37) {                    /* touch a row of the block being filled */
            const float *v = nf_segment_vectors(seg, r, 1);
            s_make(r, dim, want, id, pl, &plen);
            CHECK(v && !memcmp(v, want, dim * sizeof(float)));
        }
    }
    for (int pass = 0; pass < 2 && seg; pass++) {
        uint64_t bad = 0;
        for (uint64_t r = 0; r < rows; r++) {
            const float *v = nf_segment_vectors(seg, r, 1);
            s_make(r, dim, want, id, pl, &plen);
            bad += !v || memcmp(v, want, dim * sizeof(float)) != 0;
        }
        CHECK(bad == 0);
        nf_segment_destroy(&seg);
        if (pass == 0)
            CHECK_OK(nf_segment_open(d, &(nf_segment_opts_t) {.readonly = true}, &seg));
    }
    uint64_t checked = 0;
    CHECK_OK(nf_segment_verify(d, &checked));
    CHECK(checked >= rows * dim * sizeof(float));
    free(want);
    nf_test_rmdir(d);
    free(d);
}

/* Pipelined appends: after each start at most NF_SEGMENT_PIPE_DEPTH are in
   flight; nf_segment_append_poll forgets the durable ones without waiting
   and, polled long enough, reaches 0; the rows are all there, in order. */
static void
test_append_poll(const char *dir)
{
    nf_segment_t *seg = NULL;
    size_t pending = 99;
    CHECK(nf_segment_append_poll(NULL, &pending) == NF_EINVAL && pending == 0);
    nf_test_rmdir(dir);                 /* the tests before left a segment there */
    CHECK_OK(nf_segment_create(dir, DIM, NF_METRIC_L2, &seg));
    if (!seg)
        return;
    CHECK_OK(nf_segment_append_poll(seg, &pending));
    CHECK(pending == 0);                /* nothing started */
    enum { BATCHES = 12, PER = 40 };
    for (uint64_t b = 0; b < BATCHES; b++) {
        CHECK_OK(s_append_range_as(seg, b * PER, PER, true));
        CHECK_OK(nf_segment_append_poll(seg, &pending));
        CHECK(pending <= NF_SEGMENT_PIPE_DEPTH);
    }
    uint64_t t0 = nf_now_us();
    while (pending && nf_now_us() - t0 < 30u * 1000 * 1000) {   /* bounded: 30 s */
        usleep(1000);
        CHECK_OK(nf_segment_append_poll(seg, &pending));
    }
    CHECK(pending == 0);
    CHECK_OK(nf_segment_append_wait(seg));                      /* nothing left to wait for */
    CHECK(nf_segment_count(seg) == BATCHES * PER);
    nf_segment_destroy(&seg);
    CHECK_OK(nf_segment_open(dir, &(nf_segment_opts_t) {.readonly = true}, &seg));
    bool all = seg && nf_segment_count(seg) == BATCHES * PER;
    for (uint64_t r = 0; all && r < BATCHES * PER; r++)
        all = s_row_is(seg, r, r);
    CHECK(all);
    nf_segment_destroy(&seg);
    nf_test_rmdir(dir);
}

static void
bench_append(uint64_t rows)
{
    char *d = nf_test_tmpdir();
    nf_segment_t *seg = NULL;
    const size_t batch = 10000, dim = 128;
    nf_doc_t *docs = calloc(batch, sizeof *docs);
    float *vecs = malloc(batch * dim * sizeof(float));
    char (*ids)[32] = malloc(batch * sizeof *ids);
    uint64_t st = 1, in_append = 0;
    CHECK_OK(nf_segment_create(d, dim, NF_METRIC_L2, &seg));
    uint64_t t0 = nf_now_us();
    for (uint64_t r = 0; seg && r < rows; r += batch) {
        for (size_t i = 0; i < batch; i++) {
            for (size_t c = 0; c < dim; c++)
                vecs[i * dim + c] = (float) (nf_test_rand(&st) >> 40) / 16777216.0f;
            snprintf(ids[i], sizeof ids[i], "bench-%llu", (unsigned long long) (r + i));
            docs[i] = (nf_doc_t) {ids[i], vecs + i * dim, ids[i], strlen(ids[i])};
        }
        uint64_t a0 = nf_now_us();
        CHECK_OK(nf_segment_append(seg, docs, batch));
        in_append += nf_now_us() - a0;
    }
    double s = (double) (nf_now_us() - t0) / 1e6, sa = (double) in_append / 1e6;
    printf("bench: appended %llu x %zu in batches of %zu: %.2f s in nf_segment_append "
           "(%.0f rows/s, %.0f MB/s of vectors), %.2f s with generating the data\n",
           (unsigned long long) rows, dim, batch, sa, (double) rows / sa,
           (double) rows * dim * 4 / sa / 1e6, s);
    nf_segment_destroy(&seg);
    t0 = nf_now_us();
    CHECK_OK(nf_segment_open(d, NULL, &seg));
    printf("bench: writable reopen (id table build) %.3f s\n", (double) (nf_now_us() - t0) / 1e6);
    nf_segment_destroy(&seg);
    t0 = nf_now_us();
    uint64_t rss0 = nf_rss_bytes();
    CHECK_OK(nf_segment_open(d, &(nf_segment_opts_t) {.readonly = true}, &seg));
    printf("bench: read-only reopen %.3f s, resident memory +%llu KiB\n",
           (double) (nf_now_us() - t0) / 1e6,
           (unsigned long long) (nf_rss_bytes() - rss0) >> 10);
    nf_segment_destroy(&seg);
    free(docs);
    free(vecs);
    free(ids);
    nf_test_rmdir(d);
    free(d);
}

int
main(void)
{
    nf_metric_t m;
    CHECK(nf_metric_parse("cosine", &m) == 0 && m == NF_METRIC_COSINE);
    CHECK(nf_metric_parse("l2", &m) == 0 && !strcmp(nf_metric_name(m), "l2"));
    CHECK(nf_metric_parse("L1", &m) == NF_EINVAL && strstr(nf_error_msg(), "L1"));

    char *dir = nf_test_tmpdir();
    char *seg = NULL;
    CHECK(dir != NULL);
    if (dir && asprintf(&seg, "%s/seg", dir) > 0) {
        test_basic(seg);
        test_upsert_delete(seg);
        test_policies_identical(seg);
        test_lock(seg);
        test_malformed(seg);
        test_fuzz(seg);
        test_trim(seg);
        test_slot_damage(seg);
        test_slot_damage_fields();
        test_partial_dir(seg);
        test_append_poll(seg);
    }
    test_version1();
    test_body_flips();
    test_release();
    test_small_appends();
    const char *bench = getenv("NFLOW_SEGMENT_BENCH");
    if (bench && atoll(bench) > 0)
        bench_append((uint64_t) atoll(bench));
    nf_test_rmdir(dir);
    free(seg);
    free(dir);
    return nf_test_done("segment");
}
