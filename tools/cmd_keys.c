/*  nflow keys FLOW.yml: make the CurveZMQ keys a flow needs (nf_keys.h) in
    the directory its `security: {keys: DIR}` names (or keys/<name>, the
    default of a flow on several hosts): pod, shard-0..shard-S-1, client,
    operator, plus any extra `--client NAME` / `--operator NAME`.  Existing
    keys are kept, never overwritten, so running it again only adds what is
    missing (a new shard, a new client). */
#include "nflow.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nf_error.h"
#include "nf_flow.h"
#include "nf_keys.h"

static void
s_usage(FILE *out)
{
    fprintf(out,
            "usage: nflow keys FLOW.yml [--dir DIR] [--client NAME]... [--operator NAME]...\n"
            "  Make the flow's CurveZMQ keys (DIR/NAME.pub to share with every host,\n"
            "  DIR/NAME.key secret, mode 0600): pod, shard-0..shard-S-1, client, operator.\n"
            "  Keys that exist are kept.  Copy to each host the .pub files and only the\n"
            "  secret keys it needs (README: Running on several machines).\n"
            "  --dir DIR          the key directory (default: the flow's security.keys,\n"
            "                     else keys/<flow name>)\n"
            "  --client NAME      also make the key client-NAME (one per user or program)\n"
            "  --operator NAME    also make the key operator-NAME\n");
}

/* Make one key unless it exists; prints what it did. */
static int
s_make(const char *dir, const char *name, int *made)
{
    int rc = nf_keys_create(dir, name);
    if (rc == NF_EEXIST)
        return 0;
    if (rc != 0)
        return rc;
    printf("made %s/%s.key (secret) and %s.pub\n", dir, name, name);
    (*made)++;
    return 0;
}

int
cmd_keys(int argc, char **argv)
{
    const char *path = NULL, *dir = NULL;
    const char *extra[64];
    int nextra = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            s_usage(stdout);
            return 0;
        }
        if (i + 1 < argc && !strcmp(a, "--dir")) {
            dir = argv[++i];
        } else if (i + 1 < argc && (!strcmp(a, "--client") || !strcmp(a, "--operator"))) {
            if (nextra == (int) (sizeof extra / sizeof extra[0])) {
                fprintf(stderr, "nflow keys: at most %zu extra keys at once\n",
                        sizeof extra / sizeof extra[0]);
                return 2;
            }
            extra[nextra++] = a;
            extra[nextra++] = argv[++i];
        } else if (a[0] != '-' && !path) {
            path = a;
        } else {
            fprintf(stderr, "nflow keys: unexpected argument '%s'\n", a);
            s_usage(stderr);
            return 2;
        }
    }
    if (!path) {
        s_usage(stderr);
        return 2;
    }
    nf_flow_t *flow = NULL;
    int rc = nf_flow_load(path, &flow);
    char *fallback = NULL;
    if (rc == 0 && !dir) {
        if (flow->keys)
            dir = flow->keys;
        else if (asprintf(&fallback, "keys/%s", flow->name) >= 0)
            dir = fallback;
        else
            rc = nf_error_set(NF_ENOMEM, "out of memory");
    }
    if (rc == 0 && flow->insecure)
        fprintf(stderr, "nflow keys: note: %s says `security: none`; the keys are unused until "
                "it says `security: {keys: %s}`\n", path, dir);
    int made = 0;
    unsigned nshards = 0;
    for (size_t i = 0; rc == 0 && i < flow->npods; i++)
        if (flow->pods[i].spec->scale == NF_SCALE_SHARDS)
            nshards = flow->pods[i].count;
    if (rc == 0)
        rc = s_make(dir, "pod", &made);
    for (unsigned s = 0; rc == 0 && s < nshards; s++) {
        char name[NF_KEY_NAME_MAX + 1];
        rc = s_make(dir, nf_keys_shard_name(s, name, sizeof name), &made);
    }
    if (rc == 0)
        rc = s_make(dir, "client", &made);
    if (rc == 0)
        rc = s_make(dir, "operator", &made);
    for (int i = 0; rc == 0 && i < nextra; i += 2) {
        char name[NF_KEY_NAME_MAX + 8];
        snprintf(name, sizeof name, "%s-%s", extra[i] + 2, extra[i + 1]);
        rc = s_make(dir, name, &made);
    }
    if (rc == 0)
        printf("keys of flow %s in %s: %d made, the rest kept\n", flow->name, dir, made);
    else
        fprintf(stderr, "nflow keys: %s\n", nf_error_msg());
    free(fallback);
    nf_flow_destroy(&flow);
    return rc == 0 ? 0 : 1;
}
