/*  nf_flow: flow files.  Loads and validates a flow YAML (libyaml's
    document API, every node keeps its line:col) into an nf_flow_t, and
    states the rules by which a flow becomes processes (names, hosts,
    endpoints, command lines; nf_expand.h applies them), following the
    contract in proto/README.md.  Roles, their sockets and settings come
    from nf_podspec's tables.  Owns nothing at run time.

    The flow file (version 1)
    -------------------------
        version: 1                  # required, must be 1
        name: demo                  # required: [A-Za-z0-9_.-]+
        workspace: workspace/demo   # optional; default workspace/<name>,
                                    # relative to the current directory;
                                    # `nflow up --workspace DIR` overrides
        gateway:                    # optional
          host: 127.0.0.1           # default 127.0.0.1
          port: 0                   # 0 / omitted = automatic free port
          with: {timeout_ms: 10000} # gateway settings (nflow-gateway --help)
        pods:                       # required: a sequence
          - name: encoder           # required, unique ([A-Za-z0-9_.-]+)
            uses: encoder           # encoder | router | indexer | reducer | exec
            replicas: 2             # encoder / exec with role encoder only
            host: 127.0.0.1
            port: 0
            with: {dim: 256}
          - name: indexer
            uses: indexer           # required (exactly one)
            shards: 2               # indexer only, 1..256
            hosts: [h0, h1]         # instead of host: one host per shard
            with: {dim: 256, metric: cosine}
          - name: reducer
            uses: reducer           # optional: added with defaults if absent
            with: {top_k: 10}

    Keys not listed here are errors.  `with:` is a flat mapping of scalars;
    its keys and values are checked against the pod's settings table
    (nf_podspec); a setting without a default (indexer dim) is required.
    Encoder and indexer dims must agree (the encoder's default counts).  At
    most one pod per role; the router (heartbeat_ms, dead_after_ms) may be
    listed to set its host, port or settings, else it is added with defaults.

    `uses: exec` runs any program that speaks the protocol in place of a
    built-in role:
          - name: pyenc
            uses: exec
            role: encoder           # the built-in role it replaces (default encoder)
            command: [/usr/bin/python3, pods/python/encoder.py]
            workdir: .              # optional: cwd of the program
            env: {KEY: value}       # optional extra environment
            with: {dim: 256}        # the role's settings are checked; other
                                    # keys are passed through unchecked
    It gets the same arguments as the built-in and, additionally, every
    option as an NFLOW_<UPPER_NAME> environment variable.

    Endpoints and ports
    -------------------
    Every instance binds its sockets on tcp://HOST:PORT (numeric HOST or
    localhost; any other host name binds tcp://[*]:PORT and is reached by
    name).  `port: P` makes a pod's instances use the consecutive block
    P, P+1, ...: instance i binds its B sockets on P + i*B + j, j in the
    order of the socket table's bound rows (nf_podspec; nf_flow_nbinds):
        gateway: clients, results, control                (B = 3)
        encoder: in, control                              (B = 2)
        router:  in, shards, control                      (B = 3)
        indexer: control                                  (B = 1)
        reducer: in, control                              (B = 2)
    (tests/test_expand.c checks these blocks.)  port 0 (the default) takes free ports at launch.  A flow that names more
    than one host must give every pod an explicit port, because launchers
    on different machines must agree on every endpoint.

    Security
    --------
        security: {keys: keys/demo} # CurveZMQ on every TCP link, keys in this
                                    # directory (relative to the current
                                    # directory, like workspace); `nflow keys
                                    # FLOW.yml` makes them (nf_keys.h)
        security: none              # plain TCP, even across hosts: every
                                    # launcher warns
    Without `security:` a flow on one host (or only on loopback addresses)
    is plain TCP and a flow on several hosts uses CURVE with the keys in
    keys/<name>.

    Multi-host
    ----------
    `nflow up FLOW.yml` starts the pods whose host is an address of this
    machine (loopback, localhost, its host name or an interface address).
    `nflow up FLOW.yml --host H` starts only the pods whose host is H
    (as spelled in the file).  The launcher then waits until every pod of the
    flow, local or remote, answers PING on its control endpoint; it only
    supervises (restarts, terminates) the pods it started.

    Expansion (`nflow up --dry-run` prints it): gateway, encoder/0..R-1, router,
    indexer/0..S-1, reducer, in that order.  Instances of encoder and
    indexer are named "<name>/<i>"; the others by their pod name.  The
    indexer shard s gets --workspace <workspace>/<pod name> and keeps its
    segment in <that>/shard-<s>.  The launcher records the shard count in
    <workspace>/<indexer name>/nshards and refuses to start the flow on that
    workspace with another count (documents would move between shards).
    It also keeps <workspace>/flow.lock (one launcher per workspace) and
    <workspace>/flow.state (where the running flow is; see nf_flowstate.h). */
#ifndef NF_FLOW_H
#define NF_FLOW_H

#include <stdbool.h>
#include <stddef.h>

#include "nf_flowstate.h"     /* the flow library's state file; tools/cmd_client.c
                                reaches it through this header */
#include "nf_podspec.h"

#define NF_FLOW_VERSION 1
#define NF_FLOW_MAX_SHARDS 256
#define NF_FLOW_MAX_REPLICAS 64

/* One `with:` entry, the value as written in the file. */
typedef struct {
    char *key;
    char *value;
    int line, col;              /* 1-based position of the value */
} nf_flow_with_t;

/* One `env:` entry of an exec pod. */
typedef struct {
    char *key;
    char *value;
} nf_flow_env_t;

typedef struct {
    char *name;                 /* unique pod name ("gateway" for the gateway) */
    char *uses;                 /* "gateway", "encoder", ..., or "exec" */
    char *role;                 /* the built-in role whose sockets it takes */
    const nf_podspec_t *spec;   /* settings table of role */
    unsigned count;             /* instances: replicas / shards / 1 */
    char **hosts;               /* count hosts, one per instance */
    unsigned port;              /* first port of the block; 0 = automatic */
    nf_flow_with_t *with;
    size_t nwith;
    char **command;             /* exec: program and arguments */
    size_t ncommand;
    char *workdir;              /* exec: NULL = current directory */
    nf_flow_env_t *env;         /* exec: extra environment */
    size_t nenv;
    int line, col;              /* where the pod is declared (0 if implicit) */
} nf_flow_pod_t;

/* A loaded, validated flow.  Read-only for users; freed by nf_flow_destroy. */
typedef struct {
    char *path;                 /* the file as given */
    char *name;
    char *workspace;            /* as written (or the default) */
    nf_flow_pod_t *pods;        /* in launch order: gateway, [encoder], router,
                                   indexer, reducer */
    size_t npods;
    bool multihost;             /* more than one distinct host */
    bool curve;                 /* CurveZMQ on every TCP link (see "Security") */
    bool insecure;              /* `security: none` written: plain even across hosts */
    char *keys;                 /* key directory as written (or the default); NULL
                                   when !curve */
} nf_flow_t;

/* Load and validate path.  On failure returns NF_ENOTFOUND (missing file),
   NF_EPARSE (YAML syntax) or NF_EINVAL (wrong content) with a message
   "PATH:LINE:COL: what" naming the key.  On success *out is the flow. */
int nf_flow_load(const char *path, nf_flow_t **out);

/* Same, from a string in memory; name is used in messages as the path. */
int nf_flow_load_string(const char *name, const char *yaml, nf_flow_t **out);

/* Free; accepts NULL and *self_p == NULL; sets *self_p to NULL. */
void nf_flow_destroy(nf_flow_t **self_p);

/* The pod playing role ("encoder", "indexer", ...) or NULL. */
const nf_flow_pod_t *nf_flow_role(const nf_flow_t *flow, const char *role);

/* Value of setting key in pod's with:, else the podspec default, else NULL. */
const char *nf_flow_setting(const nf_flow_pod_t *pod, const char *key);

/* True when host names this machine: localhost, 127.0.0.0/8, ::1, the host
   name, or an address of one of its interfaces. */
bool nf_flow_host_is_local(const char *host);

/* How many sockets one instance of a role binds: the size of its block
   of ports (see "Endpoints and ports" above; nf_podspec's socket table). */
size_t nf_flow_nbinds(const nf_podspec_t *spec);

#endif
