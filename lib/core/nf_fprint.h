/*  nf_fprint: the fingerprint of a canonical text (lines `key=value`
    sorted by key; lib/flow/nf_canon.h makes a flow's) and the first key
    where two such texts differ.  Pods and launchers compare flows with it
    without knowing flow files.  Owns nothing.                             */
#ifndef NF_FPRINT_H
#define NF_FPRINT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* FNV-1a 64 of a canonical text. */
uint64_t nf_canon_fingerprint(const char *text);

/* Compare two canonical texts.  false when they hold the same lines; else
   true with what = "KEY: MINE here, THEIRS there" for the first key (in
   sort order) whose value differs or that only one of them has ("absent"
   for the other). */
bool nf_canon_diff(const char *mine, const char *theirs, char *what, size_t size);

#endif
