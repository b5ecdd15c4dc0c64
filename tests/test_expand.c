/* nf_expand and nf_flowstate: a flow expanded into processes, ports,
   endpoints and command lines without starting anything (free ports come
   from a counter), and the launcher's state file.  Reads as the rules of
   nf_expand.h by example: explicit port blocks, automatic ports, multi-host
   placement, exec pods and their NFLOW_* environment, replicas, shards. */
#include "nf_error.h"
#include "nf_expand.h"
#include "nf_flow.h"
#include "nf_flowstate.h"
#include "nf_test.h"

#include <stdlib.h>
#include <string.h>

static nf_flow_t *
s_load(const char *yaml)
{
    nf_flow_t *flow = NULL;
    CHECK_OK(nf_flow_load_string("t.yml", yaml, &flow));
    return flow;
}

/* Free ports: 20000, 20001, ... (deterministic, no network). */
static int
s_counter(void *arg, const char *addr, unsigned *port)
{
    unsigned *next = arg;
    (void) addr;
    *port = (*next)++;
    return NF_OK;
}

static bool
s_nowhere(const char *host)
{
    (void) host;
    return false;
}

static bool
s_loopback(const char *host)
{
    return !strncmp(host, "127.", 4) || !strcmp(host, "localhost");
}

static const char *
s_env(const nf_proc_t *p, const char *name)
{
    size_t n = strlen(name);
    for (size_t i = 0; i < p->nenv; i++)
        if (!strncmp(p->env[i], name, n) && p->env[i][n] == '=')
            return p->env[i] + n + 1;
    return NULL;
}

#define ARG(p, opt, want) CHECK((p) && nf_proc_arg(p, opt) && !strcmp(nf_proc_arg(p, opt), want))

/* Automatic ports on one host: every role, replicas and shards, every
   connecting socket given its peer's endpoints. */
static void
test_auto_ports(void)
{
    nf_flow_t *flow = s_load(
        "version: 1\nname: f\n"
        "pods:\n"
        "  - {name: enc, uses: encoder, replicas: 2, with: {dim: 8}}\n"
        "  - {name: idx, uses: indexer, shards: 3, with: {dim: 8, metric: l2}}\n");
    unsigned next = 20000;
    nf_expand_opts_t o = {.workspace = "/ws", .is_local = s_loopback, .pick_port = s_counter,
                          .pick_arg = &next};
    nf_plan_t *plan = NULL;
    CHECK_OK(nf_flow_expand(flow, &o, &plan));
    if (!plan) {
        nf_flow_destroy(&flow);
        return;
    }
    /* launch order, instance names */
    const char *names[] = {"gateway", "enc/0", "enc/1", "router", "idx/0", "idx/1", "idx/2",
                           "reducer"};
    CHECK(plan->nprocs == 8);
    for (size_t i = 0; i < 8 && i < plan->nprocs; i++)
        CHECK(!strcmp(plan->procs[i].name, names[i]) && plan->procs[i].start);
    /* ports in table order, each one distinct: gateway clients, results, control */
    const nf_proc_t *gw = nf_plan_find(plan, "gateway");
    CHECK(gw && gw->nbinds == 3 && gw->binds[0].port == 20000 && gw->binds[2].port == 20002);
    CHECK(gw && !strcmp(plan->gateway, "tcp://127.0.0.1:20000"));
    CHECK(gw && !strcmp(gw->control, "tcp://127.0.0.1:20002"));
    ARG(gw, "clients", "tcp://127.0.0.1:20000");
    /* gateway --out: every encoder replica's --in */
    const nf_proc_t *e0 = nf_plan_find(plan, "enc/0"), *e1 = nf_plan_find(plan, "enc/1");
    char outs[128];
    snprintf(outs, sizeof outs, "%s,%s", nf_proc_endpoint(e0, "in"), nf_proc_endpoint(e1, "in"));
    ARG(gw, "out", outs);
    ARG(e1, "replica", "1");
    ARG(e1, "name", "enc/1");
    const nf_proc_t *router = nf_plan_find(plan, "router"), *red = nf_plan_find(plan, "reducer");
    ARG(e0, "out", nf_proc_endpoint(router, "in"));
    ARG(router, "reducer", nf_proc_endpoint(red, "in"));
    ARG(router, "nshards", "3");
    /* shards: the router's --shards, the reducer, their number, the workspace */
    const nf_proc_t *i2 = nf_plan_find(plan, "idx/2");
    CHECK(i2 && i2->nbinds == 1 && !strcmp(i2->binds[0].option, "--control"));
    ARG(i2, "router", nf_proc_endpoint(router, "shards"));
    ARG(i2, "reducer", nf_proc_endpoint(red, "in"));
    ARG(i2, "shard", "2");
    ARG(i2, "nshards", "3");
    ARG(i2, "workspace", "/ws/idx");
    ARG(i2, "metric", "l2");
    CHECK(i2 && !strcmp(i2->argv[0], "nflow-indexer"));
    ARG(red, "out", nf_proc_endpoint(gw, "results"));
    /* every pod reports errors to the gateway's --results */
    for (size_t i = 0; i < plan->nprocs; i++)
        ARG(&plan->procs[i], "errors", nf_proc_endpoint(gw, "results"));
    /* built-in pods get no environment of their own */
    CHECK(e0 && e0->nenv == 0);
    nf_plan_destroy(&plan);
    nf_plan_destroy(&plan);
    CHECK(plan == NULL);
    nf_flow_destroy(&flow);
}

/* A flow without an encoder: the gateway sends to the router. */
static void
test_no_encoder(void)
{
    nf_flow_t *flow = s_load("version: 1\nname: f\npods:\n  - {name: i, uses: indexer, with: {dim: 4}}\n");
    unsigned next = 30000;
    nf_expand_opts_t o = {.is_local = s_loopback, .pick_port = s_counter, .pick_arg = &next};
    nf_plan_t *plan = NULL;
    CHECK_OK(nf_flow_expand(flow, &o, &plan));
    const nf_proc_t *gw = nf_plan_find(plan, "gateway"), *router = nf_plan_find(plan, "router");
    ARG(gw, "out", nf_proc_endpoint(router, "in"));
    CHECK(plan && plan->nprocs == 4);
    nf_plan_destroy(&plan);
    nf_flow_destroy(&flow);
}

/* Explicit ports on several hosts: the blocks of flows/multihost.yml, the
   pods each launcher starts, and what binds where. */
static void
test_multihost(void)
{
    nf_flow_t *flow = s_load(
        "version: 1\nname: m\n"
        "gateway: {host: 10.0.0.1, port: 7000}\n"
        "pods:\n"
        "  - {name: encoder, uses: encoder, replicas: 2, host: 10.0.0.1, port: 7010}\n"
        "  - {name: router, uses: router, host: 10.0.0.1, port: 7020}\n"
        "  - {name: indexer, uses: indexer, shards: 2, hosts: [10.0.0.2, db.example], port: 7100,\n"
        "     with: {dim: 256}}\n"
        "  - {name: reducer, uses: reducer, host: 10.0.0.1, port: 7030}\n");
    nf_expand_opts_t o = {.only_host = "10.0.0.2", .workspace = "/w"};
    nf_plan_t *plan = NULL;
    CHECK_OK(nf_flow_expand(flow, &o, &plan));
    const nf_proc_t *gw = nf_plan_find(plan, "gateway");
    CHECK(gw && !gw->start && gw->binds[0].port == 7000 && gw->binds[1].port == 7001
          && gw->binds[2].port == 7002);
    const nf_proc_t *e1 = nf_plan_find(plan, "encoder/1");
    CHECK(e1 && e1->binds[0].port == 7012 && e1->binds[1].port == 7013);  /* 7010 + 1*2 + j */
    const nf_proc_t *r = nf_plan_find(plan, "router");
    CHECK(r && !strcmp(nf_proc_endpoint(r, "shards"), "tcp://10.0.0.1:7021"));
    const nf_proc_t *i0 = nf_plan_find(plan, "indexer/0"), *i1 = nf_plan_find(plan, "indexer/1");
    CHECK(i0 && i0->start && i0->binds[0].port == 7100);
    CHECK(i1 && !i1->start && i1->binds[0].port == 7101);
    /* a numeric host binds its address; a host name binds every interface */
    CHECK(i0 && !strcmp(i0->binds[0].bind_at, "tcp://10.0.0.2:7100"));
    CHECK(i1 && !strcmp(i1->binds[0].bind_at, "tcp://*:7101")
          && !strcmp(i1->binds[0].endpoint, "tcp://db.example:7101"));
    ARG(i1, "router", "tcp://10.0.0.1:7021");
    CHECK(!strcmp(plan->gateway, "tcp://10.0.0.1:7000"));
    nf_plan_destroy(&plan);

    /* a launcher that starts nothing still plans everything */
    o = (nf_expand_opts_t){.is_local = s_nowhere};
    CHECK_OK(nf_flow_expand(flow, &o, &plan));
    for (size_t i = 0; plan && i < plan->nprocs; i++)
        CHECK(!plan->procs[i].start);
    nf_plan_destroy(&plan);
    nf_flow_destroy(&flow);

    /* a pod started elsewhere needs an explicit port */
    flow = s_load("version: 1\nname: m\ngateway: {host: 10.9.9.9}\npods:\n"
                  "  - {name: i, uses: indexer, host: 10.9.9.9, with: {dim: 4}}\n");
    unsigned next = 40000;
    o = (nf_expand_opts_t){.is_local = s_loopback, .pick_port = s_counter, .pick_arg = &next};
    CHECK(nf_flow_expand(flow, &o, &plan) == NF_EINVAL && plan == NULL);
    CHECK(strstr(nf_error_msg(), "pod 'gateway' runs on 10.9.9.9") != NULL);
    nf_flow_destroy(&flow);

    /* two pods on the same explicit port */
    flow = s_load("version: 1\nname: m\ngateway: {port: 7000}\npods:\n"
                  "  - {name: i, uses: indexer, port: 7001, with: {dim: 4}}\n");
    next = 40000;
    CHECK(nf_flow_expand(flow, &o, &plan) == NF_EINVAL && plan == NULL);
    CHECK(strstr(nf_error_msg(), "both use tcp://127.0.0.1:7001") != NULL);
    nf_flow_destroy(&flow);
}

/* An exec pod: its command, the role's sockets and settings, and every
   option again as NFLOW_* in its environment, plus its env:. */
static void
test_exec(void)
{
    nf_flow_t *flow = s_load(
        "version: 1\nname: x\n"
        "pods:\n"
        "  - name: py\n"
        "    uses: exec\n"
        "    command: [/usr/bin/python3, enc.py]\n"
        "    env: {PYTHONUNBUFFERED: '1'}\n"
        "    with: {dim: 16, model: tiny}\n"
        "  - {name: i, uses: indexer, with: {dim: 16}}\n");
    unsigned next = 50000;
    nf_expand_opts_t o = {.is_local = s_loopback, .pick_port = s_counter, .pick_arg = &next};
    nf_plan_t *plan = NULL;
    CHECK_OK(nf_flow_expand(flow, &o, &plan));
    const nf_proc_t *py = nf_plan_find(plan, "py/0");   /* an encoder: replicas */
    CHECK(py && py->argc > 2 && !strcmp(py->argv[0], "/usr/bin/python3")
          && !strcmp(py->argv[1], "enc.py"));
    ARG(py, "dim", "16");
    ARG(py, "model", "tiny");
    ARG(py, "replica", "0");
    CHECK(py && s_env(py, "NFLOW_IN") && !strcmp(s_env(py, "NFLOW_IN"), nf_proc_arg(py, "in")));
    CHECK(py && s_env(py, "NFLOW_MODEL") && !strcmp(s_env(py, "NFLOW_MODEL"), "tiny"));
    CHECK(py && s_env(py, "NFLOW_NAME") && !strcmp(s_env(py, "NFLOW_NAME"), "py/0"));
    CHECK(py && s_env(py, "PYTHONUNBUFFERED") && !strcmp(s_env(py, "PYTHONUNBUFFERED"), "1"));
    const nf_proc_t *gw = nf_plan_find(plan, "gateway");
    ARG(gw, "out", nf_proc_endpoint(py, "in"));
    nf_plan_destroy(&plan);
    nf_flow_destroy(&flow);
}

/* Every port block the table implies: nf_flow_nbinds. */
static void
test_nbinds(void)
{
    struct { const char *role; size_t n; } want[] = {
        {"gateway", 3}, {"encoder", 2}, {"router", 3}, {"indexer", 1}, {"reducer", 2},
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
        CHECK(nf_flow_nbinds(nf_podspec_find(want[i].role)) == want[i].n);
}

static void
test_programs(void)
{
    char path[4096];
    const char *dir = getenv("NFLOW_PODS_DIR");
    if (dir) {
        CHECK_OK(nf_flow_find_program("nflow-encoder", path, sizeof path));
        CHECK(strstr(path, "nflow-encoder") != NULL);
    }
    CHECK(nf_flow_find_program("nflow-no-such-pod", path, sizeof path) == NF_ENOTFOUND);
    CHECK(strstr(nf_error_msg(), "nflow-no-such-pod") != NULL);
    setenv("NFLOW_PY_PROTO_DIR", "/some/where", 1);
    CHECK_OK(nf_flow_py_proto_dir(path, sizeof path));
    CHECK(!strcmp(path, "/some/where"));
    unsetenv("NFLOW_PY_PROTO_DIR");
    if (dir) {      /* the build puts nflow_pb2.py in <build>/pods/python */
        CHECK_OK(nf_flow_py_proto_dir(path, sizeof path));
        CHECK(strstr(path, "/python") != NULL);
    }
}

static void
test_flowstate(void)
{
    char *dir = nf_test_tmpdir();
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, NF_FLOWSTATE_FILE);
    nf_flowstate_t *st = NULL;
    CHECK(nf_flowstate_read(path, &st) == NF_ENOTFOUND && st == NULL);

    nf_flowstate_bind_t binds[] = {{"--in", "tcp://127.0.0.1:5001"}, {"--control", "tcp://127.0.0.1:5002"}};
    nf_flowstate_pod_t pods[] = {
        {"gateway", "gateway", "gateway", "127.0.0.1", "tcp://127.0.0.1:5000", 101, true, NULL, 0},
        {"encoder/0", "exec", "encoder", "127.0.0.1", "tcp://127.0.0.1:5002", 102, true, binds, 2},
        {"indexer/1", "indexer", "indexer", "10.0.0.2", "tcp://10.0.0.2:7101", 0, false, NULL, 0},
    };
    nf_flowstate_t out = {"demo", "tcp://127.0.0.1:4999", 100, pods, 3};
    CHECK_OK(nf_flowstate_write(path, &out));
    CHECK_OK(nf_flowstate_read(path, &st));
    CHECK(st && !strcmp(st->flow, "demo") && !strcmp(st->gateway, "tcp://127.0.0.1:4999"));
    CHECK(st && st->launcher_pid == 100 && st->npods == 3);
    const nf_flowstate_pod_t *p = st ? nf_flowstate_find(st, "encoder/0") : NULL;
    CHECK(p && !strcmp(p->uses, "exec") && !strcmp(p->role, "encoder") && p->pid == 102 && p->started);
    CHECK(p && p->nbinds == 2 && !strcmp(p->binds[1].option, "--control")
          && !strcmp(p->binds[1].endpoint, "tcp://127.0.0.1:5002"));
    p = st ? nf_flowstate_find(st, "indexer/1") : NULL;
    CHECK(p && !p->started && p->pid == 0 && !strcmp(p->host, "10.0.0.2"));
    CHECK(st && nf_flowstate_find(st, "nope") == NULL);
    nf_flowstate_destroy(&st);
    CHECK(st == NULL);
    nf_flowstate_destroy(&st);

    FILE *f = fopen(path, "w");
    if (f) {
        fputs("{\"version\": 1, \"gateway\": ", f);
        fclose(f);
    }
    CHECK(nf_flowstate_read(path, &st) == NF_EFORMAT && st == NULL);
    CHECK(strstr(nf_error_msg(), path) != NULL);
    f = fopen(path, "w");
    if (f) {
        fputs("{\"version\": 7}", f);
        fclose(f);
    }
    CHECK(nf_flowstate_read(path, &st) == NF_EFORMAT && st == NULL);
    nf_test_rmdir(dir);
    free(dir);
}

int
main(void)
{
    test_auto_ports();
    test_no_encoder();
    test_multihost();
    test_exec();
    test_nbinds();
    test_programs();
    test_flowstate();
    return nf_test_done("expand");
}
