/*  nf_filter: the filter language over a segment's typed fields.

    Owns the parser (text -> a checked expression tree, typed against a
    field schema), the binding of an expression to one segment (field
    columns, keyword ids) and its evaluation over a range of rows into a
    row bitmap, using the columns' block summaries to decide whole blocks
    without reading them.  The scan (nf_scan.h, opts.filter) fuses the
    bitmap with the tombstones.

    Grammar (README "Filters"; keywords are lower case):
      expr    := and ("or" and)*
      and     := unary ("and" unary)*
      unary   := "not" unary | "(" expr ")" | pred
      pred    := NAME                               (a bool field: NAME == true)
               | NAME ("=="|"!="|"<"|"<="|">"|">=") literal
               | NAME ["not"] "in" list
               | NAME "contains" literal            (keyword[])
               | NAME "contains" ("any"|"all") list (keyword[])
               | NAME "is" ["not"] "null"
      list    := "[" [literal ("," literal)*] "]"
      literal := INT | FLOAT | STRING | "true" | "false" | DATETIME
    STRING is "..." or '...' (\" \' \\ escapes); DATETIME is a bare RFC 3339
    date or date-time (2001-02-03, 2001-02-03T04:05:06Z), or a STRING
    compared with a datetime field.  Null never satisfies a comparison,
    in, not in or contains ("x != 3" does not keep rows where x is null);
    "not" complements the set ("not x == 3" keeps them).

    A filter is refused before any scan when it is malformed or ill-typed,
    with "filter:LINE:COL: what" naming the field and what was expected,
    e.g. filter:1:9: 'year' is an int field; "2000" is a string.
    Limits: NF_FILTER_BYTES_MAX, NF_FILTER_DEPTH_MAX, NF_FILTER_LIST_MAX. */
#ifndef NF_FILTER_H
#define NF_FILTER_H

#include "nf_segment.h"

#include <stddef.h>
#include <stdint.h>

typedef struct nf_filter nf_filter_t;

/* Parse text and check it against the schema fields[0..nfields) (e.g.
   the segment's: nf_filter_parse_for).  On success *out (caller destroys);
   else NF_EPARSE with the message as above. */
int nf_filter_parse(const char *text, const nf_field_def_t *fields, size_t nfields,
                    nf_filter_t **out);

/* nf_filter_parse against the schema of seg. */
int nf_filter_parse_for(const char *text, const nf_segment_t *seg, nf_filter_t **out);

void nf_filter_destroy(nf_filter_t **self_p);

/* The filter bound to one segment: its columns and keyword ids.  Built
   once per search (nf_scan does it); read-only while evaluated, so the
   scan's threads share it. */
typedef struct nf_filter_prog nf_filter_prog_t;

/* NF_EINVAL when a field of the filter is missing from seg or has another
   type there (a shard with another schema). */
int nf_filter_bind(const nf_filter_t *filter, nf_segment_t *seg, nf_filter_prog_t **out);
void nf_filter_prog_destroy(nf_filter_prog_t **self_p);

/* Rows [row0, row0+n) (row0 a multiple of 64, row0+n <= the rows at bind
   time) into words[(n+63)/64]: bit j of word w is row row0 + 64w + j
   (bits past n are 0).  Deleted rows are not looked at (the caller masks
   them).  Returns how many rows are selected.  *blocks_read (may be NULL)
   gets how many NF_SUMMARY_ROWS blocks needed their columns read. */
uint64_t nf_filter_eval(const nf_filter_prog_t *prog, uint64_t row0, uint64_t n,
                        uint64_t *words, uint64_t *blocks_read);

#endif
