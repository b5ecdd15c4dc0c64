/*  nf_expand: a flow expanded into processes, the launcher's pure logic.

    From a loaded flow (nf_flow) and the socket table (nf_podspec) it
    decides every process of the flow: its name, host, whether this
    launcher starts it, the ports and endpoints it binds, the endpoints it
    connects to (each connecting socket to its peer's endpoints, as the
    table's `peer` column says), its command line and, for `uses: exec`
    pods, the NFLOW_* environment that repeats it.  Nothing is started and
    nothing is printed; free ports are asked of a callback, so tests can
    make plans without touching the network.  Supervision (spawn, restart,
    stop) is tools/cmd_up.c's.

    Rules (see nf_flow.h, "Endpoints and ports"): processes in launch order
    (roles in nf_podspec order, instances 0..n-1); a pod with `port: P`
    binds instance i's j-th bound socket on P + i*B + j (B = the role's
    bound sockets, nf_flow_nbinds); port 0 takes a free port.  Instances of
    a replicated or sharded role are named "<name>/<i>".  Where the pod
    programs are (nf_flow_find_program) and where the Python binding of the
    protocol is (nf_flow_py_proto_dir) are answered here too, for the
    launcher and check-pod alike.                                           */
#ifndef NF_EXPAND_H
#define NF_EXPAND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "nf_flow.h"
#include "nf_podspec.h"

typedef struct {
    const nf_sockspec_t *socket;    /* its row in the socket table */
    char *option;                   /* "--in" */
    char *endpoint;                 /* where peers connect: tcp://HOST:PORT */
    char *bind_at;                  /* what the pod binds: tcp://ADDR:PORT, ADDR
                                       the host's address, or * for a host name */
    unsigned port;
} nf_proc_bind_t;

typedef struct {
    char *name;                     /* "indexer/1" */
    const nf_flow_pod_t *pod;
    unsigned index;                 /* replica or shard number, else 0 */
    const char *host;               /* pod->hosts[index] */
    bool start;                     /* started by this launcher */
    nf_proc_bind_t *binds;          /* the role's bound sockets, in port order */
    size_t nbinds;
    const char *control;            /* endpoint of its --control */
    char **argv;                    /* NULL-terminated: the program (its name for
                                       a built-in, see nf_flow_find_program), then
                                       --OPTION VALUE pairs */
    size_t argc;
    char **env;                     /* NULL-terminated NAME=VALUE entries this
                                       process adds to the environment: exec
                                       pods get NFLOW_<OPTION> for every option
                                       and their `env:` */
    size_t nenv;
} nf_proc_t;

typedef struct {
    nf_proc_t *procs;               /* in launch order */
    size_t nprocs;
    const char *gateway;            /* the gateway's client endpoint */
    const nf_flow_t *flow;
    uint64_t fingerprint;           /* of the flow (nf_canon), passed to every pod */
} nf_plan_t;

/* Find a free TCP port on addr (an IPv4 address, "0.0.0.0" for any). */
typedef int (nf_port_fn)(void *arg, const char *addr, unsigned *port);

typedef struct {
    const char *workspace;          /* the flow's workspace (absolute, or as the
                                       pods should see it) */
    const char *keys;               /* the key directory as the pods should see it
                                       (absolute); NULL = the flow's as written */
    const char *only_host;          /* start only the pods placed on this host;
                                       NULL = those whose host is this machine */
    bool (*is_local)(const char *host);  /* NULL = nf_flow_host_is_local */
    nf_port_fn *pick_port;          /* NULL = nf_free_port */
    void *pick_arg;
} nf_expand_opts_t;

/* Expand flow into *out.  NF_EINVAL with a message naming the pod when a
   pod another launcher starts has no explicit port, when two pods would
   bind the same endpoint, or when a socket has no peer in the flow; NF_EIO
   when no free port is found.  *out is freed with nf_plan_destroy; it
   points into flow, which must outlive it. */
int nf_flow_expand(const nf_flow_t *flow, const nf_expand_opts_t *opts, nf_plan_t **out);

/* Free; accepts NULL and *self_p == NULL; sets *self_p to NULL. */
void nf_plan_destroy(nf_plan_t **self_p);

/* The process called name, or NULL. */
const nf_proc_t *nf_plan_find(const nf_plan_t *plan, const char *name);

/* The endpoint where peers reach proc's socket option ("in"), or NULL. */
const char *nf_proc_endpoint(const nf_proc_t *proc, const char *option);

/* The value proc gets for --option on its command line, or NULL. */
const char *nf_proc_arg(const nf_proc_t *proc, const char *option);

/* Where a built-in pod program is: $NFLOW_PODS_DIR, the directory of the
   running executable, then <that>/../pods (the build tree keeps `nflow`
   in tools/ and the pods in pods/).  On NF_OK path holds the program's
   path.  NF_ENOTFOUND naming the places looked at otherwise. */
int nf_flow_find_program(const char *program, char *path, size_t size);

/* Where the Python binding of the protocol (nflow_pb2.py, generated by the
   build) is: $NFLOW_PY_PROTO_DIR when set, else <dir>/python for the
   first of the places above that has it.  NF_ENOTFOUND otherwise. */
int nf_flow_py_proto_dir(char *dir, size_t size);

/* Append s (taken over; NULL means strdup failed) to the NULL-terminated
   array *arr of *n strings, growing it.  NF_ENOMEM (s freed) on failure.
   Used for argv and environment arrays (the plan's, the launcher's). */
int nf_strv_push(char ***arr, size_t *n, char *s);

#endif
