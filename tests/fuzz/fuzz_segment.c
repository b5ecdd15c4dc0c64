/* libFuzzer: segment open.  A small valid segment (3 rows of dim 4) is
   built once through the public API; for each input its vectors.nfv starts
   with the input bytes (the rest of the valid file follows when the input
   is shorter), and the segment is opened read-only with nf_segment_open.
   It must be refused with a message, or open into a segment that can be
   read end to end: every committed row's vector, norm, id and payload, and
   one scan.  Only public functions are used, so the harness outlives
   changes to the byte layout.  After a format change, regenerate the seeds
   (the valid header page, and its first 256 bytes) with
     NFLOW_FUZZ_SEED_DIR=tests/fuzz/corpus/segment build-asan/tests/fuzz/fuzz_segment -runs=0 */
#include "nf_error.h"
#include "nf_scan.h"
#include "nf_segment.h"

#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define S_DIM 4

static char s_dir[256], s_vectors[300];
static uint8_t *s_valid;        /* the valid vectors.nfv */
static size_t s_valid_len;

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
s_remove(void)
{
    DIR *d = opendir(s_dir);
    struct dirent *e;
    char path[600];
    while (d && (e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
            snprintf(path, sizeof path, "%s/%s", s_dir, e->d_name);
            unlink(path);
        }
    if (d)
        closedir(d);
    rmdir(s_dir);
    free(s_valid);
}

static void
s_write(const char *path, const uint8_t *a, size_t alen, const uint8_t *b, size_t blen)
{
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(a, 1, alen, f) != alen || (blen && fwrite(b, 1, blen, f) != blen)
        || fclose(f) != 0)
        abort();
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
    const char *tmp = getenv("TMPDIR");
    snprintf(s_dir, sizeof s_dir, "%s/nflow-fuzz-seg-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(s_dir))
        abort();
    atexit(s_remove);
    nf_segment_t *seg = NULL;
    float v[3][S_DIM] = {{1, 0, 0, 0}, {0, 2, 0, 0}, {1, 1, 1, 1}};
    nf_doc_t docs[3] = {{"a", v[0], "pa", 2}, {"b", v[1], NULL, 0}, {"c", v[2], "{}", 2}};
    const char *gone = "b";
    if (nf_segment_create(s_dir, S_DIM, NF_METRIC_L2, &seg) || nf_segment_append(seg, docs, 3)
        || nf_segment_delete(seg, &gone, 1, NULL))
        abort();
    nf_segment_destroy(&seg);
    snprintf(s_vectors, sizeof s_vectors, "%s/vectors.nfv", s_dir);
    FILE *f = fopen(s_vectors, "rb");
    if (!f || fseek(f, 0, SEEK_END) || (long) (s_valid_len = (size_t) ftell(f)) < 0
        || fseek(f, 0, SEEK_SET) || !(s_valid = malloc(s_valid_len ? s_valid_len : 1))
        || fread(s_valid, 1, s_valid_len, f) != s_valid_len)
        abort();
    fclose(f);
    const char *seeds = getenv("NFLOW_FUZZ_SEED_DIR");
    if (seeds && *seeds) {
        char path[600];
        size_t cut[2] = {256, 4096};
        for (int i = 0; i < 2; i++) {
            snprintf(path, sizeof path, "%s/header_%zu", seeds, cut[i]);
            s_write(path, s_valid, cut[i] < s_valid_len ? cut[i] : s_valid_len, NULL, 0);
        }
    }
    return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t rest = size < s_valid_len ? s_valid_len - size : 0;
    s_write(s_vectors, data, size, s_valid + size, rest);
    nf_segment_opts_t opts = {.readonly = true};
    nf_segment_t *seg = NULL;
    if (nf_segment_open(s_dir, &opts, &seg) != 0) {
        if (!nf_error_msg()[0])
            abort();            /* a refusal names the file and the problem */
        return 0;
    }
    uint64_t rows = nf_segment_rows(seg);
    uint32_t dim = nf_segment_dim(seg);
    float sum = 0.0f;
    if (rows && rows < (1u << 20)) {
        const float *x = nf_segment_vectors(seg, 0, rows);
        float *xn = malloc(rows * sizeof *xn);
        if (xn && nf_segment_read_norms(seg, 0, rows, xn) != 0) {
            free(xn);
            xn = NULL;
        }
        for (uint64_t r = 0; x && xn && r < rows; r++) {
            for (uint32_t j = 0; j < dim; j++)
                sum += x[r * dim + j];
            sum += xn[r];
        }
        free(xn);
        for (uint64_t r = 0; r < rows; r++) {
            size_t len = 0;
            const char *id = nf_segment_id(seg, r, &len);
            const uint8_t *p = nf_segment_payload(seg, r, &len);
            sum += id ? (float) id[0] : 0.0f;
            for (size_t i = 0; p && i < len; i++)
                sum += p[i];
            sum += nf_segment_is_deleted(seg, r);
        }
        nf_segment_release(seg, 0, rows);
        if (dim <= 4096) {
            float *q = calloc(2 * (size_t) dim, sizeof *q);
            nf_hit_t hits[2 * 3];
            size_t counts[2];
            if (q) {
                q[0] = 1.0f;
                (void) nf_scan_search(seg, q, 2, 3, NULL, hits, counts);
            }
            free(q);
        }
    }
    (void) sum;
    nf_segment_destroy(&seg);
    return 0;
}
