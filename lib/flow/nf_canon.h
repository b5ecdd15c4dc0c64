/*  nf_canon: the canonical form of a flow and its fingerprint, so that the
    launchers and pods of several hosts can tell whether they run the same
    flow, and name the first key where they do not.

    The canonical text is one line `key=value` per fact, sorted by key:
        name=demo
        security=curve
        pod.indexer.count=2
        pod.indexer.host.1=10.0.0.3
        pod.indexer.with.metric=cosine      (every setting, defaults too)
    It holds what every host must agree on (roles, pod names, instance
    counts, hosts, ports, every setting with its default, whether links
    are encrypted) and nothing host-local (workspace, key directory, an
    exec pod's command, workdir and environment).  The fingerprint is
    FNV-1a 64 (nf_hash.h) of the text.  Owns nothing: the caller frees the
    text.                                                                   */
#ifndef NF_CANON_H
#define NF_CANON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "nf_flow.h"
#include "nf_fprint.h"      /* nf_canon_fingerprint, nf_canon_diff */

/* The canonical text of flow, malloc'd into *text.  NF_ENOMEM only. */
int nf_canon_text(const nf_flow_t *flow, char **text);

/* The fingerprint of flow (0 when out of memory). */
uint64_t nf_flow_fingerprint(const nf_flow_t *flow);

#endif
