/*  nf_segment_repair: re-commit what a writable open kept aside in
    DIR/recovered/ after a commit slot failed its check (format and policy
    at the top of nf_segment.c; API in nf_segment.h).

    Each kept batch is a directory recovered/seq-N[-i]/ holding, per
    segment file, the bytes that lay beyond commit N, and header.page (both
    slots as they were).  Row i of the batch is row base+i of that commit's
    numbering.  A row is kept when it is whole in every file, consistent
    (offsets in order and inside the kept bytes, a valid id, a finite
    vector whose norm matches, field values valid: bools 0/1/null, floats
    finite or null, keyword ids inside the base dictionary plus the kept
    keywords, keyword[] sets in order), lies entirely in chunks whose
    checksums (kept checksums.nfc entries, or the failed slot's tail
    hashes) match -- for the field columns and dictionaries too -- and its
    id was not written or deleted again since; the first row that fails
    ends the batch (rows after it are dropped with it).  Kept rows are
    appended in one commit (upsert by id) with their field values (checked
    and decoded by nf_seg_fields_kept_row: keywords go back as strings and
    are interned again, since ids handed out after the damage may name
    other keywords now); the kept delete-log entries of rows that are still
    live are applied.                                                      */
#include "nf_segment_impl.h"
#include "nf_error.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define S_KEPT_MAX (1ull << 36)     /* bytes of one kept file we agree to read */

typedef struct {
    unsigned char *d[S_TABLE_MAX];
    uint64_t n[S_TABLE_MAX];
} s_kept_t;

static void
s_kept_free(s_kept_t *k)
{
    for (int i = 0; i < S_TABLE_MAX; i++)
        free(k->d[i]);
    memset(k, 0, sizeof *k);
}

/* Whole file into *buf (malloc'd, +1 byte), *len bytes. */
static int
s_slurp(const char *path, unsigned char **buf, uint64_t *len)
{
    struct stat st;
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    *buf = NULL;
    *len = 0;
    if (fd < 0)
        return errno == ENOENT ? 0 : nf_error_set(NF_EIO, "%s: %s", path, strerror(errno));
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || (uint64_t) st.st_size > S_KEPT_MAX) {
        close(fd);
        return nf_error_set(NF_ECORRUPT, "%s: not a regular file of a sane size", path);
    }
    *buf = malloc((size_t) st.st_size + 1);
    ssize_t got = *buf ? nf_seg_pread_all(fd, *buf, (size_t) st.st_size, 0) : -1;
    close(fd);
    if (got != (ssize_t) st.st_size) {
        free(*buf);
        *buf = NULL;
        return nf_error_set(NF_EIO, "%s: read failed", path);
    }
    *len = (uint64_t) st.st_size;
    return 0;
}

static int
s_cmp_names(const void *a, const void *b)
{
    return strverscmp(*(char *const *) a, *(char *const *) b);
}

/* Bytes [lo, hi) of file k's body as it was: live bytes below base, kept
   bytes from base on; into buf (hi - lo <= S_CHUNK).  false when the kept
   bytes do not reach hi. */
static bool
s_body(nf_segment_t *s, const s_kept_t *kp, int k, uint64_t base, uint64_t lo, uint64_t hi,
       unsigned char *buf)
{
    if (hi > base + kp->n[k] || lo > hi)
        return false;
    uint64_t live = hi < base ? hi : base;
    if (lo < live && nf_seg_pread_all(s->f[k].fd, buf, live - lo, s_hdr(k) + lo)
                         != (ssize_t) (live - lo))
        return false;
    uint64_t from = lo > base ? lo : base;
    if (hi > from)
        memcpy(buf + (from - lo), kp->d[k] + (from - base), hi - from);
    return true;
}

/* How far past base the kept bytes of each of the first nfiles files
   (field columns included) are confirmed by a checksum, contiguously: kept
   chunk entries, then the failed slot's tail. */
static void
s_confirmed(nf_segment_t *s, const s_kept_t *kp, const uint64_t *base, uint32_t nfiles,
            const s_slot_t *failed, uint64_t *upto, unsigned char *buf)
{
    uint64_t nent = kp->n[S_CK] / S_CK_ENTRY;
    for (int k = 0; k < (int) nfiles; k++) {
        if (k == S_CK)
            continue;
        uint64_t c = base[k] / S_CHUNK;
        upto[k] = base[k];
        for (bool found = true; found;) {
            found = false;
            for (uint64_t i = 0; i < nent; i++) {
                uint32_t fk;
                uint64_t e[2];
                memcpy(&fk, kp->d[S_CK] + i * S_CK_ENTRY, 4);
                memcpy(e, kp->d[S_CK] + i * S_CK_ENTRY + 8, 16);
                if (fk != (uint32_t) k || e[0] != c)
                    continue;
                if (s_body(s, kp, k, base[k], c * S_CHUNK, (c + 1) * S_CHUNK, buf)
                    && XXH3_64bits(buf, S_CHUNK) == e[1]) {
                    upto[k] = (c + 1) * S_CHUNK;
                    c++;
                    found = true;
                }
                break;
            }
        }
        /* the trailing partial chunk: only the failed slot had its hash */
        uint64_t fb = failed ? failed->file[k].bytes : 0;
        if (failed && fb > upto[k] && fb / S_CHUNK == c && fb <= base[k] + kp->n[k]
            && s_body(s, kp, k, base[k], c * S_CHUNK, fb, buf)
            && XXH3_64bits(buf, fb - c * S_CHUNK) == failed->file[k].tail)
            upto[k] = fb;
    }
}

/* Ids written or deleted since commit base (rows >= base_rows, and rows
   named by delete-log entries past base_del): true when id is one. */
static bool
s_touched_since(nf_segment_t *s, const char *id, uint64_t base_rows, uint64_t base_del)
{
    for (uint64_t r = base_rows; r < s->rows; r++) {
        const char *rid = nf_segment_id(s, r, NULL);
        if (rid && !strcmp(rid, id))
            return true;
    }
    for (uint64_t off = base_del; off + 8 <= s->bytes[S_DEL]; off += 8) {
        uint64_t r;
        if (nf_seg_pread_all(s->f[S_DEL].fd, &r, 8, S_SMALL_HDR + off) != 8)
            break;
        const char *rid = r < s->rows ? nf_segment_id(s, r, NULL) : NULL;
        if (rid && !strcmp(rid, id))
            return true;
    }
    return false;
}

/* Re-commit one kept batch; appends what it did to out. */
static int
s_repair_batch(nf_segment_t *s, const char *bdir, const char *name, FILE *out)
{
    char path[4400];
    s_kept_t kp = {0};
    unsigned char page[S_PAGE], *buf = malloc(S_CHUNK);
    nf_doc_t *docs = NULL;
    nf_fields_t *fields = NULL;
    nf_fval_t *fv = NULL;
    nf_seg_fkept_t *fk = NULL;
    uint64_t *dels = NULL;
    int rc = buf ? 0 : nf_error_set(NF_ENOMEM, "%s: out of memory", bdir);
    /* the field files too (named by today's schema, which only grows: a
       field added after the batch has no kept file and stays null) */
    for (int k = 0; k < (int) s->nfiles && !rc; k++)
        if (snprintf(path, sizeof path, "%s/%s", bdir, s_kname(s, k)) > 0)
            rc = s_slurp(path, &kp.d[k], &kp.n[k]);
    int fd = -1;
    if (!rc && (snprintf(path, sizeof path, "%s/header.page", bdir) < 0
                || (fd = open(path, O_RDONLY | O_CLOEXEC)) < 0
                || nf_seg_pread_all(fd, page, S_PAGE, 0) != S_PAGE))
        rc = nf_error_set(NF_ECORRUPT, "%s: unreadable", path);
    if (fd >= 0)
        close(fd);
    if (rc)
        goto done;
    s_slot_t sl[2];
    int base = -1;
    for (int i = 0; i < 2; i++) {
        memcpy(&sl[i], page + (i ? S_SLOT1_OFF : 0), sizeof sl[i]);
        bool ok = !memcmp(sl[i].magic, s_kinds[S_VEC].magic, 8)
                  && sl[i].version == NF_SEGMENT_VERSION && sl[i].checksum == s_slot_hash(&sl[i])
                  && sl[i].dim == s->dim && sl[i].rows <= s->rows
                  && sl[i].nfiles >= S_NFILES && sl[i].nfiles <= s->nfiles;
        if (ok && (base < 0 || sl[i].seq > sl[base].seq))
            base = i;
    }
    uint64_t total = 0;
    for (int k = 0; k < S_TABLE_MAX; k++)
        total += kp.n[k];
    if (base < 0) {
        fprintf(out, "%s: %llu bytes: no valid commit to place them after: dropped\n", name,
                (unsigned long long) total);
        goto done;
    }
    const s_slot_t *b = &sl[base], *f = &sl[1 - base];
    /* the failed slot's tail hashes: it holds at least the base's files
       (a commit only adds files) */
    bool fslot = !memcmp(f->magic, s_kinds[S_VEC].magic, 8) && f->version == NF_SEGMENT_VERSION
                 && f->nfiles >= b->nfiles && f->nfiles <= S_TABLE_MAX;
    uint64_t bb[S_TABLE_MAX] = {0}, upto[S_TABLE_MAX] = {0};
    for (int k = 0; k < (int) b->nfiles; k++)
        bb[k] = b->file[k].bytes;
    s_confirmed(s, &kp, bb, b->nfiles, fslot ? f : NULL, upto, buf);
    rc = nf_seg_fields_kept(s, b->nfiles, b->rows, (const unsigned char *const *) kp.d, kp.n,
                            bb, upto, &fk);
    if (rc)
        goto done;

    const uint64_t vb = (uint64_t) s->dim * sizeof(float);
    uint64_t n = kp.n[S_VEC] / vb, keep = 0;
    const char *why = "end of the kept bytes";
    n = kp.n[S_NORM] / 4 < n ? kp.n[S_NORM] / 4 : n;
    n = kp.n[S_IDOFF] / 8 < n ? kp.n[S_IDOFF] / 8 : n;
    n = kp.n[S_PLOFF] / 8 < n ? kp.n[S_PLOFF] / 8 : n;
    docs = calloc(n + 1, sizeof *docs);
    fields = calloc(n + 1, sizeof *fields);
    fv = calloc((n + 1) * (s->nfields + 1), sizeof *fv);
    if (!docs || !fields || !fv) {
        rc = nf_error_set(NF_ENOMEM, "%s: out of memory", bdir);
        goto done;
    }
    uint64_t idprev = bb[S_IDDAT], plprev = bb[S_PLDAT], superseded = 0, ndocs = 0;
    for (uint64_t i = 0; i < n; i++, keep++) {
        const float *v = (const float *) (kp.d[S_VEC] + i * vb);
        float norm;
        uint64_t ide, ple;
        memcpy(&norm, kp.d[S_NORM] + i * 4, 4);
        memcpy(&ide, kp.d[S_IDOFF] + i * 8, 8);
        memcpy(&ple, kp.d[S_PLOFF] + i * 8, 8);
        double acc = 0;
        bool finite = true;
        for (uint32_t c = 0; c < s->dim; c++) {
            finite &= v[c] - v[c] == 0;
            acc += (double) v[c] * v[c];
        }
        const char *id = (const char *) kp.d[S_IDDAT] + (idprev - bb[S_IDDAT]);
        uint64_t row = b->rows + i;
        if (!finite || norm != (float) acc) {
            why = "vector and norm disagree";
            break;
        }
        if (ide <= idprev + 1 || ide - idprev - 1 > NF_ID_MAX || ide - bb[S_IDDAT] > kp.n[S_IDDAT]
            || id[ide - idprev - 1] != '\0' || memchr(id, 0, ide - idprev - 1)) {
            why = "bad id record";
            break;
        }
        if (ple < plprev || ple - bb[S_PLDAT] > kp.n[S_PLDAT]) {
            why = "bad payload offsets";
            break;
        }
        if ((row + 1) * vb > upto[S_VEC] || (row + 1) * 4 > upto[S_NORM]
            || (row + 1) * 8 > upto[S_IDOFF] || (row + 1) * 8 > upto[S_PLOFF]
            || ide > upto[S_IDDAT] || ple > upto[S_PLDAT]) {
            why = "not covered by a matching checksum";
            break;
        }
        /* its field values: whole, confirmed and valid like the rest */
        nf_fval_t *rv = fv + ndocs * (s->nfields + 1);
        size_t nv = 0;
        if (!nf_seg_fields_kept_row(fk, i, rv, &nv, &why))
            break;
        if (s_touched_since(s, id, b->rows, bb[S_DEL])) {
            superseded++;
        } else {
            docs[ndocs] = (nf_doc_t) {id, v, kp.d[S_PLDAT] + (plprev - bb[S_PLDAT]),
                                      ple - plprev};
            fields[ndocs] = (nf_fields_t) {rv, nv};
            ndocs++;
        }
        idprev = ide;
        plprev = ple;
    }
    /* the kept delete-log entries of rows below the batch that are live */
    uint64_t ndel = kp.n[S_DEL] / 8, applied = 0;
    if (upto[S_DEL] - bb[S_DEL] < ndel * 8)
        ndel = (upto[S_DEL] - bb[S_DEL]) / 8;
    dels = calloc(ndel + 1, sizeof *dels);
    const char **delids = calloc(ndel + 1, sizeof *delids);
    if (!dels || !delids) {
        free(delids);
        rc = nf_error_set(NF_ENOMEM, "%s: out of memory", bdir);
        goto done;
    }
    for (uint64_t i = 0; i < ndel; i++) {
        uint64_t r, live;
        memcpy(&r, kp.d[S_DEL] + i * 8, 8);
        const char *id = r < b->rows ? nf_segment_id(s, r, NULL) : NULL;
        if (id && !nf_segment_is_deleted(s, r) && nf_segment_get(s, id, &live) == 0 && live == r)
            delids[applied++] = id;
    }
    /* deletes first: delids point into the mapped ids, which an append may
       move; a kept batch is one commit, so its deletes never name its own
       rows' ids and the order does not change the result */
    size_t deleted = 0;
    if (applied && (rc = nf_segment_delete(s, delids, applied, &deleted)))
        goto done_ids;
    if (ndocs && (rc = nf_segment_append_fields(s, docs, fields, ndocs)))
        goto done_ids;
    fprintf(out, "%s: after commit seq %llu (%llu rows): %llu whole rows kept aside; "
            "re-committed %llu, %llu superseded by later writes of their ids (dropped), "
            "%llu dropped from row %llu on (%s); %zu deletes re-applied; %llu bytes in all\n",
            name, (unsigned long long) b->seq, (unsigned long long) b->rows,
            (unsigned long long) n, (unsigned long long) ndocs,
            (unsigned long long) superseded, (unsigned long long) (n - keep),
            (unsigned long long) (b->rows + keep), why, deleted, (unsigned long long) total);
done_ids:
    free(delids);
done:
    free(dels);
    free(docs);
    free(fields);
    free(fv);
    nf_seg_fields_kept_free(&fk);
    free(buf);
    s_kept_free(&kp);
    return rc;
}

static void
s_rm_tree(const char *path)
{
    DIR *d = opendir(path);
    struct dirent *e;
    char sub[4400];
    while (d && (e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        snprintf(sub, sizeof sub, "%s/%s", path, e->d_name);
        if (e->d_type == DT_DIR)
            s_rm_tree(sub);
        else
            unlink(sub);
    }
    if (d)
        closedir(d);
    rmdir(path);
}

int
nf_segment_repair(const char *dir, char **report)
{
    char top[4096], bdir[4400];
    char *text = NULL, **names = NULL;
    size_t tlen = 0, nn = 0, cap = 0;
    uint64_t seq0 = 0;
    nf_segment_t *s = NULL;
    if (report)
        *report = NULL;
    if (!dir)
        return nf_error_set(NF_EINVAL, "nf_segment_repair: NULL argument");
    FILE *out = open_memstream(&text, &tlen);
    if (!out)
        return nf_error_set(NF_ENOMEM, "repair: out of memory");
    int rc = nf_segment_open(dir, NULL, &s);
    if (rc)
        goto done;
    if (nf_segment_notice(s))
        fprintf(out, "open: %s\n", nf_segment_notice(s));
    seq0 = s->seq;
    if (!nf_seg_path(s->dir, "recovered", top, sizeof top)) {
        rc = nf_error_set(NF_EINVAL, "%s: path too long", dir);
        goto done;
    }
    DIR *d = opendir(top);
    struct dirent *e;
    if (!d) {
        fprintf(out, "%s: nothing to repair (no recovered/)\n", s->dir);
        goto done;
    }
    while ((e = readdir(d))) {
        if (strncmp(e->d_name, "seq-", 4))
            continue;
        if (nn == cap) {
            cap = cap ? cap * 2 : 8;
            char **nb = realloc(names, cap * sizeof *names);
            if (!nb)
                break;
            names = nb;
        }
        if ((names[nn] = strdup(e->d_name)))
            nn++;
    }
    closedir(d);
    qsort(names, nn, sizeof *names, s_cmp_names);
    for (size_t i = 0; i < nn && !rc; i++) {
        snprintf(bdir, sizeof bdir, "%s/%s", top, names[i]);
        rc = s_repair_batch(s, bdir, names[i], out);
    }
    if (!rc && nf_segment_notice(s) && strstr(nf_segment_notice(s), "failed its check")
        && s->seq == seq0) {
        /* nothing re-committed: still rewrite the damaged slot */
        if (!(rc = nf_seg_commit(s, NULL, s->rows, s->deleted)))
            fprintf(out, "rewrote the damaged commit slot (seq %llu)\n",
                    (unsigned long long) s->seq);
    }
    if (!rc) {
        if (!nn)
            fprintf(out, "%s: recovered/ held no kept batch\n", s->dir);
        s_rm_tree(top);
        nf_seg_sync_dir(s->dir);
        fprintf(out, "removed %s; the segment has %llu rows, %llu live\n", top,
                (unsigned long long) s->rows, (unsigned long long) (s->rows - s->deleted));
    }
done:
    for (size_t i = 0; i < nn; i++)
        free(names[i]);
    free(names);
    nf_segment_destroy(&s);
    fclose(out);
    if (report)
        *report = text;
    else
        free(text);
    return rc;
}
