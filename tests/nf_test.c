#include "nf_test.h"

#include <ftw.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int nf_test_failures;
int nf_test_checks;

char *
nf_test_tmpdir(void)
{
    const char *base = getenv("TMPDIR");
    char buf[4096];
    snprintf(buf, sizeof buf, "%s/nflow-test-XXXXXX", base && *base ? base : "/tmp");
    if (!mkdtemp(buf))
        return NULL;
    return strdup(buf);
}

static int
s_rm(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void) sb; (void) flag; (void) ftw;
    return remove(path);
}

void
nf_test_rmdir(const char *dir)
{
    if (dir)
        nftw(dir, s_rm, 16, FTW_DEPTH | FTW_PHYS);
}

uint64_t
nf_test_rand(uint64_t *state)
{
    uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

int
nf_test_done(const char *name)
{
    printf("%s: %d checks, %d failed\n", name, nf_test_checks, nf_test_failures);
    return nf_test_failures ? 1 : 0;
}
