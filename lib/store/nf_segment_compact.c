/*  nf_segment_compact: rewrite a segment without its deleted rows.

    The live rows (in row order: vectors, ids, payloads, field values) are
    appended to a new segment in the sibling directory DIR.compact~, whose
    every commit is synced; then one renameat2(RENAME_EXCHANGE) swaps the
    two directory entries atomically and the parent directory is synced;
    the old segment, now at DIR.compact~, is removed.  A crash before the
    exchange leaves DIR as it was (and a partial DIR.compact~, removed by
    the next compaction); after it, DIR is the new segment, whole (and the
    old one waits at DIR.compact~ for the same removal).  The writer lock of
    DIR is held throughout, so nothing is appended meanwhile.              */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "nf_segment_impl.h"
#include "nf_error.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define S_BATCH 4096

/* rm -rf of a segment-like directory (one level of subdirectories:
   recovered/seq-N/). */
static int
s_rm_tree(const char *path)
{
    DIR *d = opendir(path);
    if (!d)
        return errno == ENOENT ? 0 : -1;
    struct dirent *e;
    char sub[4400];
    while ((e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        snprintf(sub, sizeof sub, "%s/%s", path, e->d_name);
        struct stat st;
        if (lstat(sub, &st) == 0 && S_ISDIR(st.st_mode))
            s_rm_tree(sub);
        else
            unlink(sub);
    }
    closedir(d);
    return rmdir(path);
}

/* Parent directory of path into buf ("." when none). */
static void
s_parent(const char *path, char *buf, size_t size)
{
    snprintf(buf, size, "%s", path);
    char *slash = strrchr(buf, '/');
    if (!slash)
        snprintf(buf, size, ".");
    else if (slash == buf)
        buf[1] = '\0';
    else
        *slash = '\0';
}

/* Field values of row r of src into v (strings point into src). */
static size_t
s_row_fields(nf_segment_t *src, uint64_t r, nf_fval_t *v, const char **setbuf, size_t *setused)
{
    size_t n = 0;
    for (size_t i = 0; i < nf_segment_nfields(src); i++) {
        const nf_field_def_t *d = nf_segment_field(src, i);
        nf_column_t c;
        if (nf_segment_column(src, i, r, 1, &c) != 0)
            continue;
        nf_fval_t *o = &v[n];
        o->name = d->name;
        o->type = d->type;
        switch (d->type) {
        case NF_FIELD_INT:
        case NF_FIELD_DATETIME:
            memcpy(&o->v.i, c.val, 8);
            if (o->v.i == NF_INT_NULL)
                continue;
            break;
        case NF_FIELD_FLOAT:
            memcpy(&o->v.f, c.val, 8);
            if (o->v.f != o->v.f)
                continue;
            break;
        case NF_FIELD_BOOL: {
            uint8_t b = *(const uint8_t *) c.val;
            if (b == NF_BOOL_NULL)
                continue;
            o->v.b = b != 0;
            break;
        }
        case NF_FIELD_KEYWORD: {
            uint32_t id;
            memcpy(&id, c.val, 4);
            if (!(o->v.s = nf_segment_keyword(src, i, id)))
                continue;
            break;
        }
        case NF_FIELD_KEYWORDS: {
            if (c.end[0] & NF_KWS_NULL)
                continue;
            o->v.set.v = setbuf + *setused;
            o->v.set.n = 0;
            for (uint64_t j = c.start; j < c.end[0]; j++) {
                const char *k = nf_segment_keyword(src, i, c.ids[j]);
                if (k)
                    setbuf[(*setused)++] = k, o->v.set.n++;
            }
            break;
        }
        default:
            continue;
        }
        n++;
    }
    return n;
}

int
nf_segment_compact(const char *dir, uint64_t *kept, uint64_t *dropped)
{
    char tmp[4200], parent[4200];
    if (kept)
        *kept = 0;
    if (dropped)
        *dropped = 0;
    if (!dir)
        return nf_error_set(NF_EINVAL, "nf_segment_compact: NULL argument");
    nf_segment_t *src = NULL, *dst = NULL;
    int rc = nf_segment_open(dir, NULL, &src);
    if (rc)
        return rc;
    if (snprintf(tmp, sizeof tmp, "%s.compact~", src->dir) >= (int) sizeof tmp) {
        nf_segment_destroy(&src);
        return nf_error_set(NF_EINVAL, "%s: path too long", dir);
    }
    s_parent(src->dir, parent, sizeof parent);
    nf_doc_t *docs = calloc(S_BATCH, sizeof *docs);
    nf_fields_t *fl = calloc(S_BATCH, sizeof *fl);
    nf_fval_t *vals = calloc((size_t) S_BATCH * (src->nfields + 1), sizeof *vals);
    const char **sets = NULL;
    size_t setcap = 0;
    if (!docs || !fl || !vals) {
        rc = nf_error_set(NF_ENOMEM, "%s: out of memory", dir);
        goto done;
    }
    if (s_rm_tree(tmp) != 0) {
        rc = nf_error_set(NF_EIO, "%s: cannot remove the leftover of an earlier compaction: %s",
                          tmp, strerror(errno));
        goto done;
    }
    if ((rc = nf_segment_create(tmp, src->dim, src->metric, &dst)))
        goto done;
    nf_field_def_t defs[NF_FIELDS_MAX];
    for (size_t i = 0; i < src->nfields && i < NF_FIELDS_MAX; i++)
        defs[i] = *nf_segment_field(src, i);
    if ((rc = nf_segment_set_schema(dst, defs, src->nfields)))
        goto done;
    uint64_t live = 0;
    for (uint64_t r0 = 0; r0 < src->rows && !rc;) {
        size_t n = 0, setused = 0;
        /* room for the keyword[] sets of this batch: counted first */
        size_t need = 0;
        uint64_t r = r0;
        for (; r < src->rows && n < S_BATCH; r++) {
            if (nf_segment_is_deleted(src, r))
                continue;
            for (size_t i = 0; i < src->nfields; i++) {
                nf_column_t c;
                if (src->fields && nf_segment_field(src, i)->type == NF_FIELD_KEYWORDS
                    && nf_segment_column(src, i, r, 1, &c) == 0 && !(c.end[0] & NF_KWS_NULL))
                    need += (size_t) (c.end[0] - c.start);
            }
            n++;
        }
        if (need + 1 > setcap) {
            const char **ns = realloc(sets, (need + 1) * sizeof *ns);
            if (!ns) {
                rc = nf_error_set(NF_ENOMEM, "%s: out of memory", dir);
                break;
            }
            sets = ns;
            setcap = need + 1;
        }
        n = 0;
        for (uint64_t q = r0; q < r; q++) {
            if (nf_segment_is_deleted(src, q))
                continue;
            size_t plen = 0;
            const char *id = nf_segment_id(src, q, NULL);
            const void *pl = nf_segment_payload(src, q, &plen);
            const float *v = nf_segment_vectors(src, q, 1);
            if (!id || !v) {
                rc = nf_error_set(NF_ECORRUPT, "%s: row %llu: damaged id or vector", dir,
                                  (unsigned long long) q);
                break;
            }
            docs[n] = (nf_doc_t) {.id = id, .vector = v, .payload = pl, .payload_len = plen};
            fl[n].v = vals + n * (src->nfields + 1);
            fl[n].n = s_row_fields(src, q, (nf_fval_t *) fl[n].v, sets, &setused);
            n++;
        }
        if (!rc && n)
            rc = nf_segment_append_fields(dst, docs, fl, n);
        live += n;
        nf_segment_release(src, r0, r - r0);
        nf_segment_release_lookups(src);
        r0 = r;
    }
    if (rc)
        goto done;
    nf_segment_destroy(&dst);           /* every commit is synced; this trims and unlocks */
    nf_seg_sync_dir(tmp);
    /* the switch: one atomic exchange of the two directory entries */
    if (renameat2(AT_FDCWD, tmp, AT_FDCWD, src->dir, RENAME_EXCHANGE) != 0) {
        rc = nf_error_set(NF_EIO, "%s: exchanging with %s: %s (needs a file system with "
                          "renameat2 RENAME_EXCHANGE)", src->dir, tmp, strerror(errno));
        goto done;
    }
    nf_seg_sync_dir(parent);
    if (kept)
        *kept = live;
    if (dropped)
        *dropped = src->rows - live;
    nf_segment_destroy(&src);           /* the old segment's lock, now at tmp */
    s_rm_tree(tmp);
    nf_seg_sync_dir(parent);
done:
    nf_segment_destroy(&dst);
    if (rc && src)
        s_rm_tree(tmp);         /* not swapped in: DIR is the old segment, whole */
    nf_segment_destroy(&src);
    free(docs);
    free(fl);
    free(vals);
    free(sets);
    return rc;
}
