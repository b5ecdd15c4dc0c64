/* nf_flow: loading flow files; every validation error names file:line:col
   and the key.  Also loads the flows shipped in flows/. */
#include "nf_error.h"
#include "nf_canon.h"
#include "nf_flow.h"
#include "nf_test.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Load yaml (named t.yml) and expect failure code with msg containing
   every given fragment. */
static void
s_bad(int line, const char *yaml, int code, const char *frag1, const char *frag2)
{
    nf_flow_t *flow = NULL;
    int rc = nf_flow_load_string("t.yml", yaml, &flow);
    nf_test_checks++;
    if (rc != code || flow != NULL || !strstr(nf_error_msg(), frag1)
        || (frag2 && !strstr(nf_error_msg(), frag2))) {
        nf_test_failures++;
        fprintf(stderr, "%s:%d: expected %d with '%s' / '%s', got %d: %s\n", __FILE__, line, code,
                frag1, frag2 ? frag2 : "", rc, nf_error_msg());
    }
    nf_flow_destroy(&flow);
}
#define BAD(yaml, code, f1, f2) s_bad(__LINE__, yaml, code, f1, f2)

static const char *s_demo =
    "version: 1\n"
    "name: demo\n"
    "workspace: /tmp/ws-demo\n"
    "gateway:\n"
    "  host: 127.0.0.1\n"
    "  port: 0\n"
    "  with: {timeout_ms: 5000}\n"
    "pods:\n"
    "  - name: encoder\n"
    "    uses: encoder\n"
    "    replicas: 2\n"
    "    with: {dim: 64}\n"
    "  - name: indexer\n"
    "    uses: indexer\n"
    "    shards: 3\n"
    "    with: {dim: 64, metric: l2, warmup: true}\n"
    "  - name: reducer\n"
    "    uses: reducer\n";

static void
test_demo(void)
{
    nf_flow_t *flow = NULL;
    CHECK_OK(nf_flow_load_string("demo.yml", s_demo, &flow));
    if (!flow)
        return;
    CHECK(!strcmp(flow->name, "demo"));
    CHECK(!strcmp(flow->workspace, "/tmp/ws-demo"));
    CHECK(!flow->multihost);
    /* launch order: gateway, encoder, router (implicit), indexer, reducer */
    CHECK(flow->npods == 5);
    const char *roles[] = {"gateway", "encoder", "router", "indexer", "reducer"};
    for (size_t i = 0; i < 5 && i < flow->npods; i++)
        CHECK(!strcmp(flow->pods[i].role, roles[i]));
    const nf_flow_pod_t *enc = nf_flow_role(flow, "encoder");
    const nf_flow_pod_t *idx = nf_flow_role(flow, "indexer");
    const nf_flow_pod_t *router = nf_flow_role(flow, "router");
    CHECK(enc && enc->count == 2);
    CHECK(idx && idx->count == 3 && !strcmp(idx->hosts[2], "127.0.0.1"));
    CHECK(router && router->line == 0 && !strcmp(router->name, "router"));
    CHECK(!strcmp(nf_flow_setting(idx, "metric"), "l2"));
    CHECK(!strcmp(nf_flow_setting(idx, "vectors"), "mmap"));      /* default */
    CHECK(!strcmp(nf_flow_setting(idx, "warmup"), "true"));
    CHECK(nf_flow_setting(idx, "nosuch") == NULL);
    CHECK(!strcmp(nf_flow_setting(nf_flow_role(flow, "gateway"), "timeout_ms"), "5000"));
    CHECK(idx->nwith == 3 && idx->with[0].line == 16 && idx->with[0].col == 17);
    nf_flow_destroy(&flow);
    CHECK(flow == NULL);
    nf_flow_destroy(&flow);     /* harmless */
    nf_flow_destroy(NULL);
}

static void
test_minimal(void)
{
    nf_flow_t *flow = NULL;
    CHECK_OK(nf_flow_load_string("m.yml",
                                 "version: 1\nname: tiny\npods:\n"
                                 "  - {name: idx, uses: indexer, with: {dim: 8}}\n", &flow));
    if (!flow)
        return;
    CHECK(flow->npods == 4);        /* gateway, router, indexer, reducer */
    CHECK(nf_flow_role(flow, "encoder") == NULL);
    CHECK(!strcmp(flow->workspace, "workspace/tiny"));
    CHECK(nf_flow_role(flow, "gateway")->port == 0);
    CHECK(!strcmp(nf_flow_role(flow, "reducer")->hosts[0], "127.0.0.1"));
    nf_flow_destroy(&flow);
}

static void
test_multihost(void)
{
    nf_flow_t *flow = NULL;
    const char *ok =
        "version: 1\nname: mh\n"
        "gateway: {host: 10.0.0.1, port: 7000}\n"
        "pods:\n"
        "  - {name: router, uses: router, host: 10.0.0.1, port: 7010}\n"
        "  - {name: idx, uses: indexer, shards: 2, hosts: [10.0.0.2, 10.0.0.3], port: 7100,\n"
        "     with: {dim: 8}}\n"
        "  - {name: reducer, uses: reducer, host: 10.0.0.1, port: 7020}\n";
    CHECK_OK(nf_flow_load_string("mh.yml", ok, &flow));
    if (flow) {
        const nf_flow_pod_t *idx = nf_flow_role(flow, "indexer");
        CHECK(flow->multihost);
        CHECK(idx->count == 2 && !strcmp(idx->hosts[1], "10.0.0.3") && idx->port == 7100);
    }
    nf_flow_destroy(&flow);
    /* the implicit reducer has no port: error */
    BAD("version: 1\nname: mh\ngateway: {host: 10.0.0.1, port: 7000}\npods:\n"
        "  - {name: router, uses: router, host: 10.0.0.1, port: 7010}\n"
        "  - {name: idx, uses: indexer, host: 10.0.0.2, port: 7100, with: {dim: 8}}\n",
        NF_EINVAL, "pod 'reducer' needs an explicit port", "implicit");
    BAD("version: 1\nname: mh\npods:\n"
        "  - {name: idx, uses: indexer, shards: 3, hosts: [a, b], with: {dim: 8}}\n",
        NF_EINVAL, "t.yml:4:50: pod 'idx': hosts: lists 2 hosts for 3 shards", NULL);
    BAD("version: 1\nname: mh\npods:\n"
        "  - {name: idx, uses: indexer, host: a, hosts: [a], with: {dim: 8}}\n",
        NF_EINVAL, "either host: or hosts:", NULL);
    BAD("version: 1\nname: x\npods:\n  - {name: idx, uses: indexer, port: 65535, shards: 2, "
        "with: {dim: 8}}\n", NF_EINVAL, "exceed 65535", NULL);
}

static void
test_exec(void)
{
    nf_flow_t *flow = NULL;
    CHECK_OK(nf_flow_load_string("e.yml",
                                 "version: 1\nname: ex\npods:\n"
                                 "  - name: pyenc\n    uses: exec\n    replicas: 2\n"
                                 "    command: [/usr/bin/python3, enc.py]\n"
                                 "    env: {PYTHONUNBUFFERED: '1'}\n"
                                 "    with: {dim: 16, custom: x}\n"
                                 "  - {name: idx, uses: indexer, with: {dim: 16}}\n", &flow));
    if (flow) {
        const nf_flow_pod_t *enc = nf_flow_role(flow, "encoder");
        CHECK(enc && !strcmp(enc->uses, "exec") && enc->count == 2);
        CHECK(enc && enc->ncommand == 2 && !strcmp(enc->command[1], "enc.py"));
        CHECK(enc && enc->nenv == 1 && !strcmp(enc->env[0].value, "1"));
        CHECK(enc && !strcmp(nf_flow_setting(enc, "custom"), "x"));
    }
    nf_flow_destroy(&flow);
    BAD("version: 1\nname: ex\npods:\n  - {name: e, uses: exec}\n  - {name: i, uses: indexer, "
        "with: {dim: 16}}\n", NF_EINVAL, "t.yml:4:5: pod 'e': uses: exec needs command:", NULL);
    BAD("version: 1\nname: ex\npods:\n  - {name: e, uses: exec, role: gateway, command: [x]}\n",
        NF_EINVAL, "role 'gateway' is not one of", NULL);
    BAD("version: 1\nname: ex\npods:\n  - {name: e, uses: exec, command: [x], with: {in: 1}}\n",
        NF_EINVAL, "'in' is set by the launcher", NULL);
    BAD("version: 1\nname: ex\npods:\n  - {name: e, uses: exec, command: []}\n",
        NF_EINVAL, "command: must not be empty", NULL);
}

static void
test_errors(void)
{
    BAD("", NF_EINVAL, "t.yml: the flow file is empty", NULL);
    BAD("version: 1\nname: [oops\n", NF_EPARSE, "t.yml:", "bad YAML");
    BAD("version: 1\nname: x\n  bad: indent\n", NF_EPARSE, "t.yml:3:", "bad YAML");
    BAD("- just\n- a list\n", NF_EINVAL, "t.yml:1:1: flow file: expected a mapping", NULL);
    BAD("version: 1\nname: x\nfoo: 1\npods: []\n", NF_EINVAL, "t.yml:3:1: flow: unknown key 'foo'",
        "expected one of");
    BAD("name: x\npods: []\n", NF_EINVAL, "missing version:", NULL);
    BAD("version: 2\nname: x\npods: []\n", NF_EINVAL, "t.yml:1:10: version: 2 is not supported", NULL);
    BAD("version: one\nname: x\npods: []\n", NF_EINVAL, "t.yml:1:10: version: expected an integer", NULL);
    BAD("version: 1\npods: []\n", NF_EINVAL, "missing name:", NULL);
    BAD("version: 1\nname: a/b\npods: []\n", NF_EINVAL, "t.yml:2:7: name: 'a/b' is not a valid", NULL);
    BAD("version: 1\nname: x\nname: y\npods: []\n", NF_EINVAL, "t.yml:3:1: flow: duplicate key 'name'",
        NULL);
    BAD("version: 1\nname: x\n", NF_EINVAL, "missing pods:", NULL);
    BAD("version: 1\nname: x\npods: {a: 1}\n", NF_EINVAL, "t.yml:3:7: pods: expected a sequence", NULL);
    BAD("version: 1\nname: x\npods: []\n", NF_EINVAL, "t.yml:3:7: pods: the flow has no indexer", NULL);
    BAD("version: 1\nname: x\npods:\n  - {uses: indexer}\n", NF_EINVAL, "t.yml:4:5: pods: item without name",
        NULL);
    BAD("version: 1\nname: x\npods:\n  - {name: i}\n", NF_EINVAL, "t.yml:4:5: pod 'i': missing uses:",
        NULL);
    BAD("version: 1\nname: x\npods:\n  - {name: i, uses: bogus}\n", NF_EINVAL,
        "t.yml:4:21: pod 'i': unknown uses 'bogus'", NULL);
    BAD("version: 1\nname: x\npods:\n  - {name: g, uses: gateway}\n", NF_EINVAL, "top-level gateway:", NULL);
    BAD("version: 1\nname: x\npods:\n  - name: i\n    uses: indexer\n    colour: red\n", NF_EINVAL,
        "t.yml:6:5: pod 'i': unknown key 'colour'", NULL);
    BAD("version: 1\nname: x\npods:\n  - {name: i, uses: indexer, replicas: 2, with: {dim: 8}}\n",
        NF_EINVAL, "unknown key 'replicas'", NULL);
    BAD("version: 1\nname: x\npods:\n  - {name: i, uses: indexer, shards: two, with: {dim: 8}}\n",
        NF_EINVAL, "t.yml:4:38: pod 'i': shards: expected an integer, got 'two'", NULL);
    BAD("version: 1\nname: x\npods:\n  - {name: i, uses: indexer, shards: 0, with: {dim: 8}}\n",
        NF_EINVAL, "shards: expected an integer in 1..256, got 0", NULL);
    BAD("version: 1\nname: x\npods:\n  - {name: i, uses: indexer, port: '80', with: {dim: 8}}\n",
        NF_EINVAL, "port: expected an integer, got a quoted string", NULL);
    BAD("version: 1\nname: x\npods:\n  - {name: i, uses: indexer, port: 70000, with: {dim: 8}}\n",
        NF_EINVAL, "port: expected an integer in 0..65535", NULL);
    BAD("version: 1\nname: x\npods:\n  - {name: i, uses: indexer, host: [a], with: {dim: 8}}\n",
        NF_EINVAL, "host: expected a string, got a sequence", NULL);
    BAD("version: 1\nname: x\npods:\n  - {name: i, uses: indexer}\n", NF_EINVAL,
        "t.yml:4:5: pod 'i': with.dim is required", NULL);
    BAD("version: 1\nname: x\npods:\n  - {name: i, uses: indexer, with: {dimm: 8}}\n", NF_EINVAL,
        "t.yml:4:37: pod 'i': with: unknown setting 'dimm'", "(indexer settings: dim, metric");
    BAD("version: 1\nname: x\npods:\n  - {name: i, uses: indexer, with: {dim: 0}}\n", NF_EINVAL,
        "t.yml:4:42: pod 'i': with.dim: dim: expected an integer in 1..65536", NULL);
    BAD("version: 1\nname: x\npods:\n  - {name: i, uses: indexer, with: {dim: 8, metric: hamming}}\n",
        NF_EINVAL, "t.yml:4:53: pod 'i': with.metric:", "hamming");
    BAD("version: 1\nname: x\npods:\n  - {name: i, uses: indexer, with: {dim: [8]}}\n", NF_EINVAL,
        "with.dim: expected a scalar value, got a sequence", NULL);
    BAD("version: 1\nname: x\ngateway: {with: {top_k: 3}}\npods:\n  - {name: i, uses: indexer, "
        "with: {dim: 8}}\n", NF_EINVAL, "t.yml:3:18: pod 'gateway': with: unknown setting 'top_k'", NULL);
    BAD("version: 1\nname: x\ngateway: {port: 1, replicas: 2}\npods: []\n", NF_EINVAL,
        "gateway: unknown key 'replicas'", NULL);
    BAD("version: 1\nname: x\npods:\n  - {name: i, uses: indexer, with: {dim: 8}}\n"
        "  - {name: r, uses: reducer, with: {top_k: 3}}\n", NF_EINVAL, "t.yml:5:37: pod 'r': with: unknown setting 'top_k'", NULL);
    BAD("version: 1\nname: x\npods:\n  - {name: i, uses: indexer, with: {dim: 8}}\n"
        "  - {name: i, uses: reducer}\n", NF_EINVAL, "t.yml:5:5: duplicate pod name 'i'", NULL);
    BAD("version: 1\nname: x\npods:\n  - {name: gateway, uses: indexer, with: {dim: 8}}\n", NF_EINVAL,
        "duplicate pod name 'gateway'", NULL);
    BAD("version: 1\nname: x\npods:\n  - {name: i, uses: indexer, with: {dim: 8}}\n"
        "  - {name: j, uses: indexer, with: {dim: 8}}\n", NF_EINVAL,
        "t.yml:5:5: pod 'j': a flow has one indexer pod", NULL);
    BAD("version: 1\nname: x\npods:\n  - {name: router, uses: encoder}\n"
        "  - {name: i, uses: indexer, with: {dim: 256}}\n", NF_EINVAL, "implicit router", NULL);
    /* dims: explicit disagreement, and the encoder's default (256) */
    BAD("version: 1\nname: x\npods:\n  - {name: e, uses: encoder, with: {dim: 128}}\n"
        "  - {name: i, uses: indexer, with: {dim: 64}}\n", NF_EINVAL,
        "t.yml:5:42: pod 'i': with.dim 64 disagrees with encoder 'e' dim 128", NULL);
    BAD("version: 1\nname: x\npods:\n  - {name: e, uses: encoder}\n"
        "  - {name: i, uses: indexer, with: {dim: 64}}\n", NF_EINVAL, "disagrees with encoder 'e' dim 256",
        NULL);
    BAD("version: 1\nname: x\npods:\n  - {name: i, uses: indexer, with: {dim: 8}}\n---\nversion: 1\n",
        NF_EINVAL, "t.yml:6: a flow file holds one YAML document", NULL);

    nf_flow_t *flow = NULL;
    CHECK(nf_flow_load("/nonexistent/flow.yml", &flow) == NF_ENOTFOUND);
    CHECK(flow == NULL && strstr(nf_error_msg(), "/nonexistent/flow.yml"));
}

/* An indexer's typed fields: a mapping, a list or one string, kept as one
   canonical list (the indexer's --fields, a line of the canonical text);
   every bad field named at file:line:col. */
static void
test_fields(void)
{
    static const char *head = "version: 1\nname: f\npods:\n  - name: i\n    uses: indexer\n"
                              "    with:\n      dim: 8\n";
    char yaml[1024];
    nf_flow_t *flow = NULL;
    snprintf(yaml, sizeof yaml, "%s      fields:\n        year: int\n        genre: keyword\n"
             "        labels: keyword[]\n        day: datetime:memory\n", head);
    CHECK_OK(nf_flow_load_string("t.yml", yaml, &flow));
    const nf_flow_pod_t *ix = flow ? nf_flow_role(flow, "indexer") : NULL;
    const char *v = ix ? nf_flow_setting(ix, "fields") : NULL;
    CHECK(v && !strcmp(v, "year:int,genre:keyword,labels:keyword[],day:datetime:memory"));
    uint64_t f1 = flow ? nf_flow_fingerprint(flow) : 0;
    nf_flow_destroy(&flow);
    snprintf(yaml, sizeof yaml, "%s      fields: [\"year:int\", \"genre:keyword\", "
             "\"labels:keyword[]\", \"day:datetime:memory\"]\n", head);
    CHECK_OK(nf_flow_load_string("t.yml", yaml, &flow));      /* a list: the same flow */
    CHECK(flow && nf_flow_fingerprint(flow) == f1);
    nf_flow_destroy(&flow);
    snprintf(yaml, sizeof yaml, "%s      fields: {year: int, genre: keyword}\n", head);
    CHECK_OK(nf_flow_load_string("t.yml", yaml, &flow));      /* other fields: another flow */
    CHECK(flow && nf_flow_fingerprint(flow) != f1);
    nf_flow_destroy(&flow);
    snprintf(yaml, sizeof yaml, "%s", head);
    CHECK_OK(nf_flow_load_string("t.yml", yaml, &flow));      /* none: "" */
    ix = flow ? nf_flow_role(flow, "indexer") : NULL;
    v = ix ? nf_flow_setting(ix, "fields") : NULL;
    CHECK(v && !strcmp(v, ""));
    nf_flow_destroy(&flow);

    snprintf(yaml, sizeof yaml, "%s      fields:\n        year: integer\n", head);
    BAD(yaml, NF_EINVAL, "t.yml:9:15: pod 'i': with.fields: field 'year:integer'", "unknown");
    snprintf(yaml, sizeof yaml, "%s      fields:\n        and: int\n", head);
    BAD(yaml, NF_EINVAL, "t.yml:9:", "and");
    snprintf(yaml, sizeof yaml, "%s      fields:\n        year: [int]\n", head);
    BAD(yaml, NF_EINVAL, "t.yml:9:15: pod 'i': with.fields: expected a type", NULL);
    snprintf(yaml, sizeof yaml, "%s      fields: [\"year:int\", \"year:float\"]\n", head);
    BAD(yaml, NF_EINVAL, "t.yml:8:", "field 'year' is declared twice");
    snprintf(yaml, sizeof yaml, "%s      fields: {labels: keyword[]}\n", head);
    BAD(yaml, NF_EPARSE, "t.yml:8:", "bad YAML");   /* [] is YAML inside { }: quote it */
    snprintf(yaml, sizeof yaml, "%s      fields: \"year:int,year:int\"\n", head);
    BAD(yaml, NF_EINVAL, "t.yml:8:15:", "declared twice");
    snprintf(yaml, sizeof yaml, "%s      fields: 3\n", head);
    BAD(yaml, NF_EINVAL, "t.yml:8:15:", "expected NAME:TYPE");
}

static void
test_files(void)
{
    /* a file on disk; errors name its path */
    char *dir = nf_test_tmpdir();
    char path[4096];
    snprintf(path, sizeof path, "%s/f.yml", dir);
    FILE *f = fopen(path, "w");
    CHECK(f != NULL);
    if (f) {
        fputs("version: 1\nname: f\npods:\n  - {name: i, uses: indexer, with: {dim: 8, vectors: disk}}\n", f);
        fclose(f);
    }
    nf_flow_t *flow = NULL;
    CHECK(nf_flow_load(path, &flow) == NF_EINVAL);
    CHECK(strstr(nf_error_msg(), path) && strstr(nf_error_msg(), ":4:54: pod 'i': with.vectors"));
    nf_test_rmdir(dir);
    free(dir);

    /* the flows shipped with the source */
    const char *root = getenv("NFLOW_SOURCE_ROOT");
    const char *names[] = {"demo", "sharded", "multihost"};
    for (size_t i = 0; root && i < 3; i++) {
        snprintf(path, sizeof path, "%s/flows/%s.yml", root, names[i]);
        CHECK_OK(nf_flow_load(path, &flow));
        CHECK(flow && !strcmp(flow->name, names[i]));
        nf_flow_destroy(&flow);
    }
}

static void
test_hosts(void)
{
    CHECK(nf_flow_host_is_local("127.0.0.1"));
    CHECK(nf_flow_host_is_local("127.1.2.3"));
    CHECK(nf_flow_host_is_local("localhost"));
    CHECK(!nf_flow_host_is_local("203.0.113.77"));     /* TEST-NET-3 */
    CHECK(!nf_flow_host_is_local("no-such-host.invalid"));
    CHECK(nf_flow_nbinds(nf_podspec_find("gateway")) == 3);
    CHECK(nf_flow_nbinds(nf_podspec_find("indexer")) == 1);
}

int
main(void)
{
    test_demo();
    test_minimal();
    test_multihost();
    test_exec();
    test_errors();
    test_fields();
    test_files();
    test_hosts();
    return nf_test_done("flow");
}
