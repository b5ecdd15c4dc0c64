/* libFuzzer: the document reader.  The input is written to a temporary
   .jsonl and a temporary .fvecs file and each is read to its end (or its
   first error) with nf_vecio, in small batches: documents are checked for
   what the header promises (a vector of the file's dim, an id). */
#include "nf_error.h"
#include "nf_vecio.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char s_jsonl[256], s_fvecs[256];

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
s_remove(void)
{
    unlink(s_jsonl);
    unlink(s_fvecs);
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
    const char *tmp = getenv("TMPDIR");
    tmp = tmp && *tmp ? tmp : "/tmp";
    snprintf(s_jsonl, sizeof s_jsonl, "%s/nflow-fuzz-vecio-%d.jsonl", tmp, (int) getpid());
    snprintf(s_fvecs, sizeof s_fvecs, "%s/nflow-fuzz-vecio-%d.fvecs", tmp, (int) getpid());
    atexit(s_remove);
    return 0;
}

static void
s_read(const char *path, const uint8_t *data, size_t size)
{
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(data, 1, size, f) != size || fclose(f) != 0)
        abort();
    nf_vecio_t *r = NULL;
    if (nf_vecio_open(path, NF_VECIO_AUTO, 0, &r) != 0)
        return;
    for (int guard = 0; guard < 100000; guard++) {
        nf_vecio_batch_t b;
        if (nf_vecio_next(r, 7, &b) != 0 || b.n == 0)
            break;
        float sum = 0.0f;
        for (size_t i = 0; i < b.n; i++) {
            if (!b.docs[i].id)
                abort();
            if (b.docs[i].vector)
                for (uint32_t j = 0; j < b.dim; j++)
                    sum += b.docs[i].vector[j];      /* read every promised float */
            if (b.docs[i].text)
                sum += (float) strlen(b.docs[i].text);
        }
        (void) sum;
    }
    nf_vecio_destroy(&r);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    s_read(s_jsonl, data, size);
    s_read(s_fvecs, data, size);
    return 0;
}
