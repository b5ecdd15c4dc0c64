/* libFuzzer: the flow loader.  The input is written to a temporary
   flow.yml and loaded with nf_flow_load, which must accept it or fail
   with an error message, never crash, leak or read out of bounds. */
#include "nf_error.h"
#include "nf_flow.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char s_path[256];

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
s_remove(void)
{
    unlink(s_path);
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
    const char *tmp = getenv("TMPDIR");
    snprintf(s_path, sizeof s_path, "%s/nflow-fuzz-flow-%d.yml", tmp && *tmp ? tmp : "/tmp",
             (int) getpid());
    atexit(s_remove);
    return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    FILE *f = fopen(s_path, "wb");
    if (!f || fwrite(data, 1, size, f) != size || fclose(f) != 0)
        abort();
    nf_flow_t *flow = NULL;
    int rc = nf_flow_load(s_path, &flow);
    if (rc == 0) {
        if (!flow)
            abort();
        (void) nf_flow_role(flow, "gateway");
        (void) nf_flow_role(flow, "indexer");
    } else if (!nf_error_msg()[0]) {
        abort();                /* a failure names what and where */
    }
    nf_flow_destroy(&flow);
    return 0;
}
