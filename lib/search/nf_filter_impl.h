/*  nf_filter_impl.h: the parsed filter tree, shared by nf_filter.c (lexer,
    parser, typing) and nf_filter_eval.c (binding to a segment, evaluation
    into row bitmaps).  Not part of the API (nf_filter.h).                 */
#ifndef NF_FILTER_IMPL_H
#define NF_FILTER_IMPL_H

#include "nf_filter.h"

#include <stdint.h>

enum { N_AND, N_OR, N_NOT, N_CMP, N_IN, N_NOTIN, N_HAS, N_HASANY, N_HASALL, N_ISNULL,
       N_NOTNULL };
enum { OP_EQ, OP_NE, OP_LT, OP_LE, OP_GT, OP_GE };

typedef struct {
    int kind, op;
    int field;              /* index into the schema the filter was parsed with */
    nf_ftype_t ftype;
    uint32_t first, n;      /* children (and/or/not: into kids) or values (into vals) */
    int64_t i;              /* CMP literal: int / datetime / bool */
    double f;               /* CMP literal: float */
    uint32_t s;             /* CMP literal keyword: index into vals */
} s_node_t;

typedef struct {
    int64_t i;
    double f;
    char *s;                /* keyword values */
} s_val_t;

struct nf_filter {
    char *text;
    nf_field_def_t *fields;
    size_t nfields;
    s_node_t *nodes;
    uint32_t nnodes, cap;
    uint32_t *kids;
    uint32_t nkids, kcap;
    s_val_t *vals;
    uint32_t nvals, vcap;
    uint32_t root;
};

#endif
