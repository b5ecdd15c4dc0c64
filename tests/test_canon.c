/* nf_canon / nf_fprint: the canonical text of a flow holds what every host
   must agree on and nothing host-local; two flows that differ are told
   apart by their fingerprints, and the first differing key is named. */
#include "nf_canon.h"
#include "nf_error.h"
#include "nf_test.h"

#include <stdlib.h>
#include <string.h>

#define S_BASE \
    "version: 1\n" \
    "name: fp\n" \
    "workspace: %s\n" \
    "security: {keys: %s}\n" \
    "gateway: {host: 10.0.0.1, port: 7000}\n" \
    "pods:\n" \
    "  - {name: router, uses: router, host: 10.0.0.1, port: 7020}\n" \
    "  - {name: indexer, uses: indexer, shards: %d, hosts: [%s], port: 7100,\n" \
    "     with: {dim: 16, metric: %s}}\n" \
    "  - {name: reducer, uses: reducer, host: 10.0.0.1, port: 7030}\n"

static char *
s_text(const char *ws, const char *keys, int shards, const char *hosts, const char *metric)
{
    char yaml[2048];
    snprintf(yaml, sizeof yaml, S_BASE, ws, keys, shards, hosts, metric);
    nf_flow_t *f = NULL;
    char *text = NULL;
    CHECK_OK(nf_flow_load_string("fp.yml", yaml, &f));
    if (f)
        CHECK_OK(nf_canon_text(f, &text));
    if (f)
        CHECK(nf_flow_fingerprint(f) == nf_canon_fingerprint(text ? text : ""));
    nf_flow_destroy(&f);
    return text;
}

int
main(void)
{
    char *a = s_text("ws/a", "keys", 2, "10.0.0.2, 10.0.0.3", "l2");
    char *same = s_text("/elsewhere/ws", "/etc/nflow/keys", 2, "10.0.0.2, 10.0.0.3", "l2");
    char *metric = s_text("ws/a", "keys", 2, "10.0.0.2, 10.0.0.3", "cosine");
    char *shards = s_text("ws/a", "keys", 3, "10.0.0.2, 10.0.0.3, 10.0.0.4", "l2");
    char *host = s_text("ws/a", "keys", 2, "10.0.0.2, 10.0.0.9", "l2");
    char what[256];
    if (a && same && metric && shards && host) {
        /* sorted key=value lines; defaults included; host-local paths not */
        CHECK(strstr(a, "name=fp\n") && strstr(a, "security=curve\n"));
        CHECK(strstr(a, "pod.indexer.with.metric=l2\n"));
        CHECK(strstr(a, "pod.indexer.with.vectors=mmap\n"));      /* a default */
        CHECK(strstr(a, "pod.router.with.dead_after_ms=1000\n"));
        CHECK(strstr(a, "pod.indexer.host.1=10.0.0.3\n"));
        CHECK(!strstr(a, "ws/a") && !strstr(a, "keys=") && !strstr(a, "workspace"));
        /* workspace and key directory are host-local: the same flow */
        CHECK(!strcmp(a, same));
        CHECK(!nf_canon_diff(a, same, what, sizeof what) && !*what);
        CHECK(nf_canon_fingerprint(a) == nf_canon_fingerprint(same));
        /* a setting: named, with both values */
        CHECK(nf_canon_fingerprint(a) != nf_canon_fingerprint(metric));
        CHECK(nf_canon_diff(a, metric, what, sizeof what));
        CHECK(!strcmp(what, "pod.indexer.with.metric: l2 here, cosine there"));
        /* the shard count comes first in key order; a host only one side has */
        CHECK(nf_canon_diff(a, shards, what, sizeof what));
        CHECK(!strcmp(what, "pod.indexer.count: 2 here, 3 there"));
        CHECK(nf_canon_diff(a, host, what, sizeof what));
        CHECK(!strcmp(what, "pod.indexer.host.1: 10.0.0.3 here, 10.0.0.9 there"));
        /* a key only one side has */
        CHECK(nf_canon_diff("a=1\nb=2\n", "a=1\n", what, sizeof what));
        CHECK(!strcmp(what, "b: 2 here, absent there"));
        CHECK(nf_canon_diff("a=1\n", "a=1\nc=3\n", what, sizeof what));
        CHECK(!strcmp(what, "c: absent here, 3 there"));
    }
    /* security none differs from keys, and loopback-only multi-host stays plain */
    nf_flow_t *f = NULL;
    CHECK_OK(nf_flow_load_string("none.yml",
                                 "version: 1\nname: n\nsecurity: none\n"
                                 "gateway: {host: 10.0.0.1, port: 7000}\n"
                                 "pods:\n  - {name: indexer, uses: indexer, hosts: [10.0.0.2],"
                                 " port: 7100, with: {dim: 4}}\n"
                                 "  - {name: router, uses: router, host: 10.0.0.1, port: 7020}\n"
                                 "  - {name: reducer, uses: reducer, host: 10.0.0.1, port: 7030}\n",
                                 &f));
    CHECK(f && !f->curve && f->insecure && f->multihost);
    nf_flow_destroy(&f);
    CHECK_OK(nf_flow_load_string("lo.yml",
                                 "version: 1\nname: lo\n"
                                 "gateway: {host: 127.0.0.1, port: 7000}\n"
                                 "pods:\n  - {name: indexer, uses: indexer, hosts: [127.0.0.2],"
                                 " port: 7100, with: {dim: 4}}\n"
                                 "  - {name: router, uses: router, host: 127.0.0.1, port: 7020}\n"
                                 "  - {name: reducer, uses: reducer, host: 127.0.0.1, port: 7030}\n",
                                 &f));
    CHECK(f && !f->curve && !f->insecure && f->multihost);
    nf_flow_destroy(&f);
    CHECK_OK(nf_flow_load_string("mh.yml",
                                 "version: 1\nname: mh\n"
                                 "gateway: {host: 10.0.0.1, port: 7000}\n"
                                 "pods:\n  - {name: indexer, uses: indexer, hosts: [10.0.0.2],"
                                 " port: 7100, with: {dim: 4}}\n"
                                 "  - {name: router, uses: router, host: 10.0.0.1, port: 7020}\n"
                                 "  - {name: reducer, uses: reducer, host: 10.0.0.1, port: 7030}\n",
                                 &f));
    CHECK(f && f->curve && f->keys && !strcmp(f->keys, "keys/mh"));    /* the default */
    nf_flow_destroy(&f);
    /* a wrong security value names the key */
    CHECK(nf_flow_load_string("bad.yml", "version: 1\nname: b\nsecurity: maybe\n"
                              "pods:\n  - {name: indexer, uses: indexer, with: {dim: 4}}\n", &f)
          == NF_EINVAL);
    CHECK(strstr(nf_error_msg(), "bad.yml:3") && strstr(nf_error_msg(), "security"));
    free(a);
    free(same);
    free(metric);
    free(shards);
    free(host);
    return nf_test_done("canon");
}
