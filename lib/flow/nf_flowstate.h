/*  nf_flowstate: the launcher's state file <workspace>/flow.state: where a
    running flow is (its gateway, every pod's control endpoint and binds,
    which launcher runs it).  `nflow up` writes it; index, search, delete
    and status read it.  JSON (the layout is at the top of nf_flowstate.c),
    written atomically.  Owns the state it reads.                          */
#ifndef NF_FLOWSTATE_H
#define NF_FLOWSTATE_H

#include <stdbool.h>
#include <stddef.h>

#define NF_FLOWSTATE_FILE "flow.state"

typedef struct {
    char *option;               /* "--in" */
    char *endpoint;             /* where peers connect */
} nf_flowstate_bind_t;

typedef struct {
    char *name;                 /* "indexer/1" */
    char *uses;                 /* "indexer" or "exec" */
    char *role;                 /* built-in role */
    char *host;
    char *control;              /* control endpoint */
    int pid;                    /* 0 when not started by this launcher */
    bool started;
    nf_flowstate_bind_t *binds;
    size_t nbinds;
} nf_flowstate_pod_t;

typedef struct {
    char *flow;                 /* flow name */
    char *gateway;              /* client endpoint of the gateway */
    int launcher_pid;
    nf_flowstate_pod_t *pods;
    size_t npods;
} nf_flowstate_t;

/* Write state to path atomically (path.tmp, fsync, rename). */
int nf_flowstate_write(const char *path, const nf_flowstate_t *state);

/* Read path.  NF_ENOTFOUND when it does not exist; NF_EFORMAT with the
   place when it is not a flow state file.  *out is freed with
   nf_flowstate_destroy. */
int nf_flowstate_read(const char *path, nf_flowstate_t **out);

/* Free everything (all strings are owned); accepts NULL and *self_p ==
   NULL; sets *self_p to NULL. */
void nf_flowstate_destroy(nf_flowstate_t **self_p);

/* The pod called name, or NULL. */
const nf_flowstate_pod_t *nf_flowstate_find(const nf_flowstate_t *state, const char *name);

#endif
