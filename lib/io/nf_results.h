/*  nf_results: the JSON form of search results, one compact line per
    query: {"query": N, "matches": [{"id", "score", "text"?, "tags"?}, ...]}.
    Built with jansson; users that only pass json_t pointers along need not
    include jansson.h.                                                      */
#ifndef NF_RESULTS_H
#define NF_RESULTS_H

#include "nf_payload.h"

#include <stddef.h>
#include <stdio.h>

typedef struct json_t json_t;    /* jansson's JSON value */

/* One match of a query, as written to JSON. */
typedef struct {
    const char *id;
    float score;
    const char *text;       /* NULL or "" = omitted */
    const nf_tag_t *tags;   /* ntags == 0 = omitted */
    size_t ntags;
} nf_match_t;

/* New JSON object {"query": query, "matches": [{"id", "score", "text"?,
   "tags"?}, ...]} (best first, as given).  The caller may add fields (e.g.
   "partial") with json_object_set_new, then writes it with
   nf_results_write and releases it with json_decref.  NULL on out of
   memory. */
json_t *nf_results_json(size_t query, const nf_match_t *matches, size_t n);

/* Write obj as one compact line (scores with 9 significant digits, enough to
   round-trip a float) followed by '\n' to out.  NF_EIO on a write error. */
int nf_results_write(FILE *out, const json_t *obj);

#endif
