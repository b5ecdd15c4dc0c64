/*  nflow segment build|search|info|verify|repair|compact: work on one
    segment directory without a flow.  build reads documents and their typed
    fields (nf_vecio) and appends them (nf_segment); search runs the exact
    scan (nf_scan), with a filter (nf_filter) when given, for a file of
    queries; info prints the commit figures, fields and file sizes; verify
    checks every body chunk against its checksum; repair re-commits what an
    open kept in recovered/; compact rewrites the segment without its
    deleted rows.  Every command that opens a segment prints its
    notice (nf_segment_notice) to stderr.  Exit status: 0 ok, 1 runtime
    error (the nf_error_msg text after "nflow segment CMD: "), 2 usage
    error.  Options are parsed with tools/args.h, one table per
    subcommand; --help comes from the same tables.                         */
#include "nflow.h"
#include "args.h"

#include "nf_error.h"
#include "nf_filter.h"
#include "nf_scan.h"
#include "nf_segment.h"
#include "nf_sys.h"
#include "nf_results.h"
#include "nf_vecio.h"

#include <errno.h>
#include <jansson.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define S_PROGRESS_MIN_BYTES (8u << 20)     /* smaller inputs get no bar */
#define S_K_MAX 100000
#define S_EXCERPT 60

/* Print the last library error for `nflow segment cmd` and return 1. */
static int
s_fail(const char *cmd, int rc)
{
    const char *msg = nf_error_msg();
    fprintf(stderr, "nflow segment %s: %s\n", cmd, *msg ? msg : nf_strerror(rc));
    return 1;
}

/* Print what the open of seg found worth saying (nf_segment_notice). */
static void
s_notice(const char *cmd, const nf_segment_t *seg)
{
    const char *n = seg ? nf_segment_notice(seg) : NULL;
    if (n)
        fprintf(stderr, "nflow segment %s: notice: %s\n", cmd, n);
}

/* --format (NULL: not given) into *fmt; false after printing the usage
   error (nf_vecio_fmt_parse also takes json, ndjson, auto, any case). */
static bool
s_format(const nf_args_t *spec, const char *name, nf_vecio_fmt_t *fmt)
{
    *fmt = NF_VECIO_AUTO;
    if (!name || nf_vecio_fmt_parse(name, fmt) == 0)
        return true;
    nf_args_error(spec, "--format: expected one of fvecs|f32|jsonl, got '%s'", name);
    return false;
}

static double
s_seconds_since(uint64_t t0)
{
    return (double) (nf_now_us() - t0) / 1e6;
}

/* ------------------------------------------------------------------ */
/* build                                                               */

typedef struct {
    bool on;
    uint64_t t0, last;
} s_progress_t;

static void
s_progress(s_progress_t *p, nf_vecio_t *reader, uint64_t docs, bool last)
{
    if (!p->on)
        return;
    uint64_t now = nf_now_us();
    if (!last && now - p->last < 100000)
        return;
    p->last = now;
    uint64_t done, total;
    nf_vecio_progress(reader, &done, &total);
    double frac = total ? (double) done / (double) total : 0;
    int filled = (int) (frac * 30);
    char bar[31];
    for (int i = 0; i < 30; i++)
        bar[i] = i < filled ? '#' : '.';
    bar[30] = '\0';
    double secs = (double) (now - p->t0) / 1e6;
    fprintf(stderr, "\r[%s] %3d%%  %" PRIu64 " docs  %.1f MB/s ", bar, (int) (frac * 100), docs,
            secs > 0 ? (double) done / 1e6 / secs : 0.0);
    if (last)
        fprintf(stderr, "\r\033[K");
    fflush(stderr);
}

/* Append one batch, its payloads encoded from text and tags; fields[i] (or,
   when side is non-NULL, side->docs[i].fields) are the field values.
   Pipelined (nf_segment_append_start): on return the batches before the
   last NF_SEGMENT_PIPE_DEPTH are durable; those are synced while the
   caller goes on. */
static int
s_append_batch(nf_segment_t *seg, const nf_vecio_batch_t *b, nf_doc_t *docs, uint8_t **bufs,
               nf_fields_t *fields, const nf_vecio_batch_t *side)
{
    int rc = 0;
    size_t i;
    for (i = 0; i < b->n; i++) {
        const nf_vecio_doc_t *d = &b->docs[i];
        size_t len = 0;
        rc = nf_payload_encode(d->text, d->tags, d->ntags, &bufs[i], &len);
        if (rc)
            break;
        docs[i] = (nf_doc_t){.id = d->id, .vector = d->vector, .payload = bufs[i],
                             .payload_len = len};
        fields[i] = side ? side->docs[i].fields : d->fields;
    }
    if (rc == 0)
        rc = nf_segment_append_start(seg, docs, fields, b->n);
    for (size_t j = 0; j < i; j++) {
        free(bufs[j]);
        bufs[j] = NULL;
    }
    return rc;
}

static int
s_build(int argc, char **argv)
{
    const char *cmd = "build", *dir = NULL, *file = NULL, *side_file = NULL;
    const char *metric_name = NULL, *format = NULL, *field_items[NF_FIELDS_MAX];
    nf_args_list_t field_args = {field_items, 0, NF_FIELDS_MAX};
    long long dim_arg = 0, batch_arg = 10000;
    const nf_arg_t args[] = {
        {"DIR", NULL, NF_ARG_POS, &dir, .required = true,
         .help = "the segment, created when it does not exist"},
        {"FILE", NULL, NF_ARG_POS, &file, .required = true,
         .help = "the documents: .fvecs, .f32 or JSONL"},
        {"--dim", NULL, NF_ARG_LONG, &dim_arg, 1, NF_DIM_MAX, .meta = "D",
         .help = "vector dim (default: from the data, or the\nexisting segment)"},
        {"--metric", NULL, NF_ARG_CHOICE, &metric_name, .choices = "l2|ip|cosine",
         .help = "l2 (squared euclidean), ip or cosine (default: the\n"
                 "existing segment's, else l2)"},
        {"--batch", NULL, NF_ARG_LONG, &batch_arg, 1, 1000000, .meta = "N",
         .help = "documents per durable append"},
        {"--format", NULL, NF_ARG_STR, &format, .meta = "fvecs|f32|jsonl",
         .help = "input format when the extension does not tell"},
        {"--field", NULL, NF_ARG_MULTI, &field_args, .meta = "NAME:TYPE[:POLICY]",
         .help = "a typed field, repeated for each: TYPE one of int,\n"
                 "float, bool, keyword, keyword[], datetime (RFC 3339);\n"
                 "POLICY mmap (default) or memory.  Values are the\n"
                 "documents' top-level JSONL keys (\"year\": 2001); a\n"
                 "missing one is null, one of the wrong type stops the\n"
                 "build naming FILE:LINE, the id and the field.  On an\n"
                 "existing segment the fields must include its own (same\n"
                 "types; new ones are added, null for the rows there);\n"
                 "without any, an existing segment's fields are read"},
        {"--fields-file", NULL, NF_ARG_STR, &side_file, .meta = "JSONL",
         .help = "the field values of FILE's documents, one JSONL line\n"
                 "per document in the same order (for .fvecs / .f32)"},
    };
    const nf_args_t spec = {
        "nflow segment build", args, NF_ARGS_COUNT(args),
        .synopsis = "DIR FILE [--dim D] [--metric l2|ip|cosine] [--batch N]\n"
                    "                           [--format fvecs|f32|jsonl] "
                    "[--field NAME:TYPE[:POLICY]]...\n"
                    "                           [--fields-file JSONL]",
        .summary = "Create the segment DIR (or append to it when it exists: dim and metric must\n"
                   "match) from the documents in FILE: .fvecs, .f32 (raw float32, needs --dim)\n"
                   "or JSONL (.jsonl/.json/.ndjson: {\"id\", \"vector\", \"text\"?, \"tags\"?}\n"
                   "per line).  A document whose id is already in the segment replaces it."};
    int status;
    if (!nf_args_parse(&spec, argc, argv, &status))
        return status;
    nf_field_def_t defs[NF_FIELDS_MAX];
    size_t ndefs = 0;
    for (; ndefs < field_args.n; ndefs++)
        if (nf_field_def_parse(field_items[ndefs], &defs[ndefs]) != 0)
            return nf_args_error(&spec, "--field: %s", nf_error_msg());
    nf_metric_t metric = NF_METRIC_L2;
    bool metric_given = metric_name != NULL;
    if (metric_given)
        (void) nf_metric_parse(metric_name, &metric);   /* one of the choices */
    nf_vecio_fmt_t fmt;
    if (!s_format(&spec, format, &fmt))
        return 2;
    uint64_t dim = (uint64_t) dim_arg, batch = (uint64_t) batch_arg;
    nf_vecio_fmt_t eff = fmt != NF_VECIO_AUTO ? fmt : nf_vecio_fmt_guess(file);

    uint64_t t0 = nf_now_us();
    nf_segment_t *seg = NULL;
    nf_vecio_t *reader = NULL, *side = NULL;
    nf_doc_t *docs = NULL;
    nf_fields_t *fields = NULL;
    uint8_t **bufs = NULL;
    uint64_t total_docs = 0;     /* in batches started */
    uint64_t durable = 0;        /* in batches known durable: what is printed */
    uint64_t recent[NF_SEGMENT_PIPE_DEPTH] = {0};   /* docs of the batches started last
                                                       (maybe in flight), a ring */
    uint64_t nbatches = 0;
    int rc = nf_segment_open(dir, NULL, &seg);
    s_notice(cmd, seg);
    if (rc == NF_ENOTFOUND) {
        seg = NULL;         /* no segment yet: created once the dim is known */
        rc = 0;
    } else if (rc) {
        goto done;
    } else {
        if (dim && dim != nf_segment_dim(seg)) {
            rc = nf_error_set(NF_EDIM, "%s: segment has dim %" PRIu32 ", --dim is %" PRIu64,
                              dir, nf_segment_dim(seg), dim);
            goto done;
        }
        if (metric_given && metric != nf_segment_metric(seg)) {
            rc = nf_error_set(NF_EINVAL, "%s: segment has metric %s, --metric is %s", dir,
                              nf_metric_name(nf_segment_metric(seg)), nf_metric_name(metric));
            goto done;
        }
        dim = nf_segment_dim(seg);
        metric = nf_segment_metric(seg);
        if (ndefs && (rc = nf_segment_set_schema(seg, defs, ndefs)))
            goto done;
        if (!ndefs)         /* the segment's own fields */
            for (; ndefs < nf_segment_nfields(seg) && ndefs < NF_FIELDS_MAX; ndefs++)
                defs[ndefs] = *nf_segment_field(seg, ndefs);
    }
    if (eff == NF_VECIO_F32 && dim == 0) {
        nf_segment_destroy(&seg);
        return nf_args_error(&spec, "--dim is required for .f32 input");
    }
    if ((rc = nf_vecio_open(file, fmt, (uint32_t) dim, &reader)))
        goto done;
    nf_vecio_require_vectors(reader, true);
    if (ndefs && !side_file && (rc = nf_vecio_set_fields(reader, defs, ndefs)))
        goto done;
    if (side_file && ((rc = nf_vecio_open(side_file, NF_VECIO_JSONL, 0, &side))
                      || (rc = nf_vecio_set_fields(side, defs, ndefs))))
        goto done;
    docs = calloc(batch, sizeof *docs);
    fields = calloc(batch, sizeof *fields);
    bufs = calloc(batch, sizeof *bufs);
    if (!docs || !bufs || !fields) {
        rc = nf_error_set(NF_ENOMEM, "out of memory for a batch of %" PRIu64, batch);
        goto done;
    }
    uint64_t in_total;
    nf_vecio_progress(reader, NULL, &in_total);
    s_progress_t prog = {.on = isatty(STDERR_FILENO) && in_total >= S_PROGRESS_MIN_BYTES,
                         .t0 = t0};
    for (;;) {
        nf_vecio_batch_t b;
        if ((rc = nf_vecio_next(reader, batch, &b)) || b.n == 0)
            break;
        if (!seg && ((rc = nf_segment_create(dir, b.dim, metric, &seg))
                     || (rc = nf_segment_set_schema(seg, defs, ndefs))))
            break;
        nf_vecio_batch_t sb;
        if (side && (rc = nf_vecio_next(side, b.n, &sb)))
            break;
        if (side && sb.n != b.n) {
            rc = nf_error_set(NF_EINVAL, "%s: %" PRIu64 " lines of field values for %" PRIu64
                              " documents of %s", side_file, total_docs + sb.n,
                              total_docs + b.n, file);
            break;
        }
        if ((rc = s_append_batch(seg, &b, docs, bufs, fields, side ? &sb : NULL)))
            break;
        recent[nbatches++ % NF_SEGMENT_PIPE_DEPTH] = b.n;
        total_docs += b.n;
        durable = total_docs;           /* all but the batches maybe in flight */
        for (size_t r = 0; r < NF_SEGMENT_PIPE_DEPTH; r++)
            durable -= recent[r];
        s_progress(&prog, reader, durable, false);
    }
    /* the last batch's commit: durable only once waited for (after an
       error too, keeping that error's message) */
    if (seg && rc == 0 && (rc = nf_segment_append_wait(seg)) == 0) {
        durable = total_docs;
    } else if (seg && rc) {
        char msg[1024];
        snprintf(msg, sizeof msg, "%s", nf_error_msg());
        if (nf_segment_append_wait(seg) == 0)
            durable = total_docs;
        nf_error_set(rc, "%s", msg);
    }
    s_progress(&prog, reader, durable, true);
    if (rc == 0)
        printf("built %s: %" PRIu64 " rows (dim %" PRIu32 ", metric %s) in %.2f s\n", dir,
               durable, nf_segment_dim(seg), nf_metric_name(nf_segment_metric(seg)),
               s_seconds_since(t0));
done:
    if (rc && durable)
        fprintf(stderr, "nflow segment build: %" PRIu64 " documents were stored before the "
                "error\n", durable);
    free(docs);
    free(fields);
    free(bufs);
    nf_vecio_destroy(&side);
    nf_vecio_destroy(&reader);
    nf_segment_destroy(&seg);
    return rc ? s_fail(cmd, rc) : 0;
}

/* ------------------------------------------------------------------ */
/* search                                                              */

/* --vectors / --payloads: one of the choices mmap|memory. */
static nf_mempolicy_t
s_policy(const char *name)
{
    return !strcmp(name, "memory") ? NF_MEM_MEMORY : NF_MEM_MMAP;
}

/* At most max bytes of text on one line, not cutting a UTF-8 sequence. */
static void
s_excerpt(const char *text, char *out, size_t max)
{
    size_t n = 0;
    for (const unsigned char *p = (const unsigned char *) text; *p && n < max; p++)
        out[n++] = *p < 0x20 ? ' ' : (char) *p;
    bool cut = text[n] != '\0';
    while (cut && n > 0 && ((unsigned char) text[n] & 0xC0) == 0x80)
        n--;        /* do not cut a UTF-8 sequence: back off to its start */
    out[n] = '\0';
    if (cut)
        strcat(out, "...");
}

/* Output fields (--fields): indexes into the segment's schema. */
typedef struct {
    int idx[NF_FIELDS_MAX];
    size_t n;
} s_outfields_t;

/* Field values of a row as {"name": value, ...} (JSON text) into buf. */
static void
s_fields_json(nf_segment_t *seg, const s_outfields_t *of, uint64_t row, char *buf, size_t size)
{
    size_t at = 0;
    at += (size_t) snprintf(buf + at, size - at, "{");
    for (size_t i = 0; i < of->n && at < size; i++) {
        const nf_field_def_t *d = nf_segment_field(seg, (size_t) of->idx[i]);
        at += (size_t) snprintf(buf + at, size - at, "%s\"%s\": ", i ? ", " : "", d->name);
        if (at < size)
            at += nf_segment_value_json(seg, (size_t) of->idx[i], row, buf + at, size - at);
    }
    if (at < size)
        snprintf(buf + at, size - at, "}");
}

/* Print query q's hits, readable or as one JSON line. */
static int
s_print_query(nf_segment_t *seg, size_t q, const nf_hit_t *hits, size_t n, bool json,
              nf_match_t *matches, nf_payload_t *payloads, const s_outfields_t *of)
{
    static char fbuf[1u << 16];
    int rc = 0;
    size_t decoded = 0;
    for (size_t i = 0; i < n; i++, decoded++) {
        size_t plen = 0;
        const void *pl = nf_segment_payload(seg, hits[i].key, &plen);
        if ((rc = nf_payload_decode(pl, plen, &payloads[i]))) {
            nf_error_set(rc, "%s: row %" PRIu64 ": %s", nf_segment_dir(seg), hits[i].key,
                         nf_error_msg());
            break;
        }
        matches[i] = (nf_match_t){.id = nf_segment_id(seg, hits[i].key, NULL),
                                  .score = hits[i].score, .text = payloads[i].text,
                                  .tags = payloads[i].tags, .ntags = payloads[i].ntags};
    }
    if (rc == 0 && json) {
        json_t *obj = nf_results_json(q, matches, n);
        json_t *arr = obj ? json_object_get(obj, "matches") : NULL;
        for (size_t i = 0; arr && of->n && i < n && i < json_array_size(arr); i++) {
            s_fields_json(seg, of, hits[i].key, fbuf, sizeof fbuf);
            json_t *fv = json_loads(fbuf, JSON_DECODE_ANY, NULL);
            if (fv)
                json_object_set_new(json_array_get(arr, i), "fields", fv);
        }
        rc = obj ? nf_results_write(stdout, obj) : nf_error_set(NF_ENOMEM, "out of memory");
        json_decref(obj);
    } else if (rc == 0) {
        printf("query %zu:%s\n", q, n ? "" : " no results");
        for (size_t i = 0; i < n; i++) {
            char ex[S_EXCERPT + 8];
            s_excerpt(matches[i].text, ex, S_EXCERPT);
            if (of->n)
                s_fields_json(seg, of, hits[i].key, fbuf, sizeof fbuf);
            printf("  %3zu. %-20s %14.6g  %s%s%s\n", i + 1, matches[i].id,
                   (double) matches[i].score, ex, of->n ? "  " : "", of->n ? fbuf : "");
        }
    }
    for (size_t i = 0; i < decoded; i++)
        nf_payload_clear(&payloads[i]);
    return rc;
}

static int
s_search(int argc, char **argv)
{
    const char *cmd = "search", *dir = NULL, *qfile = NULL, *ftext = NULL, *fields_arg = NULL;
    const char *format = NULL, *vectors_policy = "mmap", *payloads_policy = "mmap";
    long long k_arg = 10, threads_arg = 0, repeat_arg = 1;
    bool json = false, stats = false;
    nf_segment_opts_t sopts = {.readonly = true};
    const nf_arg_t args[] = {
        {"DIR", NULL, NF_ARG_POS, &dir, .required = true, .help = "the segment (opened read-only)"},
        {"--queries", NULL, NF_ARG_STR, &qfile, .meta = "FILE", .required = true,
         .help = "the query vectors"},
        {"-k", NULL, NF_ARG_LONG, &k_arg, 1, S_K_MAX, .meta = "K", .help = "results per query"},
        {"--json", NULL, NF_ARG_FLAG, &json,
         .help = "one JSON line per query: {\"query\": i, \"matches\":\n"
                 "[{\"id\", \"score\", \"text\"?, \"tags\"?}]}"},
        {"--threads", NULL, NF_ARG_LONG, &threads_arg, 0, 1024, .meta = "N",
         .help = "scan threads (0 = all cores)"},
        {"--vectors", NULL, NF_ARG_CHOICE, &vectors_policy, .choices = "mmap|memory",
         .help = "page cache, or read into RAM at open"},
        {"--payloads", NULL, NF_ARG_CHOICE, &payloads_policy, .choices = "mmap|memory",
         .help = "the same for the texts and tags"},
        {"--warmup", NULL, NF_ARG_FLAG, &sopts.warmup, .help = "touch every page at open"},
        {"--format", NULL, NF_ARG_STR, &format, .meta = "fvecs|f32|jsonl",
         .help = "query file format when the extension does not tell"},
        {"--filter", NULL, NF_ARG_STR, &ftext, .meta = "EXPR",
         .help = "only rows the filter keeps, e.g. 'year >= 2000 and\n"
                 "genre in [\"scifi\", \"drama\"] and not archived'\n"
                 "(grammar: README, Filters); a malformed or ill-typed\n"
                 "filter exits 2 naming line:col and the field"},
        {"--fields", NULL, NF_ARG_STR, &fields_arg, .meta = "A,B",
         .help = "print these fields of each match (JSON: \"fields\":\n"
                 "{...}); an unknown name exits 2"},
        {"--repeat", NULL, NF_ARG_LONG, &repeat_arg, 1, 1000, .meta = "N",
         .help = "run the scan N times and report the fastest\n(benchmarks)"},
        {"--stats", NULL, NF_ARG_FLAG, &stats,
         .help = "print the scan time and the filter's figures on\n"
                 "stderr: scan_s= rows= live= kept= filter_s=\n"
                 "blocks_read= windows= skipped= gathered= rows_read=\n"
                 "runs= whole= (kept rows, filter time, windows\n"
                 "skipped / gathered / read in runs / read whole)"},
    };
    const nf_args_t spec = {
        "nflow segment search", args, NF_ARGS_COUNT(args),
        .synopsis = "DIR --queries FILE [-k K] [--json] [--threads N]\n"
                    "                            [--vectors mmap|memory] [--payloads mmap|memory]"
                    " [--warmup]\n"
                    "                            [--format fvecs|f32|jsonl] [--filter EXPR]"
                    " [--fields A,B]\n"
                    "                            [--repeat N] [--stats]",
        .summary = "Exact top-k search of the segment DIR for every query vector in FILE (.fvecs,\n"
                   ".f32 or JSONL with \"vector\"; its dim must be the segment's).  Scores: l2 =\n"
                   "squared distance (smaller is better), ip / cosine = similarity (larger is\n"
                   "better)."};
    int status;
    if (!nf_args_parse(&spec, argc, argv, &status))
        return status;
    nf_vecio_fmt_t fmt;
    if (!s_format(&spec, format, &fmt))
        return 2;
    uint64_t k = (uint64_t) k_arg, threads = (uint64_t) threads_arg, repeat = (uint64_t) repeat_arg;
    sopts.vectors = s_policy(vectors_policy);
    sopts.payloads = s_policy(payloads_policy);

    nf_segment_t *seg = NULL;
    float *queries = NULL;
    nf_hit_t *hits = NULL;
    size_t *counts = NULL, nq = 0;
    nf_match_t *matches = NULL;
    nf_payload_t *payloads = NULL;
    nf_filter_t *filter = NULL;
    s_outfields_t of = {.n = 0};
    uint32_t qdim = 0;
    int rc = nf_segment_open(dir, &sopts, &seg);
    if (rc)
        goto done;
    s_notice(cmd, seg);
    /* the filter and the output fields are checked before anything is read */
    if (ftext && nf_filter_parse_for(ftext, seg, &filter) != 0) {
        int st = nf_args_error(&spec, "--filter: %s", nf_error_msg());
        nf_segment_destroy(&seg);
        return st;
    }
    for (const char *p = fields_arg; p && *p;) {
        const char *e = strchr(p, ',');
        size_t len = e ? (size_t) (e - p) : strlen(p);
        int fi = nf_segment_field_find(seg, p, len);
        if (fi < 0 || of.n == NF_FIELDS_MAX) {
            int st = nf_args_error(&spec, "--fields: '%.*s' is not a field of %s", (int) len,
                                   p, dir);
            nf_filter_destroy(&filter);
            nf_segment_destroy(&seg);
            return st;
        }
        of.idx[of.n++] = fi;
        p = e ? e + 1 : p + len;
    }
    uint32_t dim = nf_segment_dim(seg);
    nf_vecio_fmt_t eff = fmt != NF_VECIO_AUTO ? fmt : nf_vecio_fmt_guess(qfile);
    rc = nf_vecio_read_all(qfile, fmt, eff == NF_VECIO_F32 ? dim : 0, &queries, &nq, &qdim);
    if (rc)
        goto done;
    if (qdim != dim) {
        rc = nf_error_set(NF_EDIM, "%s: queries have dim %" PRIu32 ", segment %s has dim %"
                          PRIu32, qfile, qdim, dir, dim);
        goto done;
    }
    hits = calloc(nq * k, sizeof *hits);
    counts = calloc(nq, sizeof *counts);
    matches = calloc(k, sizeof *matches);
    payloads = calloc(k, sizeof *payloads);
    if (!hits || !counts || !matches || !payloads) {
        rc = nf_error_set(NF_ENOMEM, "out of memory for %zu x %" PRIu64 " results", nq, k);
        goto done;
    }
    nf_scan_stats_t st;
    nf_scan_opts_t scan = {.threads = (int) threads, .filter = filter, .stats = &st};
    double secs = 0;
    for (uint64_t r = 0; r < repeat; r++) {
        uint64_t t0 = nf_now_us();
        if ((rc = nf_scan_search(seg, queries, nq, k, &scan, hits, counts)))
            goto done;
        double t = s_seconds_since(t0);
        secs = r == 0 || t < secs ? t : secs;
    }
    if (stats)
        fprintf(stderr, "scan_s=%.6f rows=%" PRIu64 " live=%" PRIu64 " kept=%" PRIu64
                " filter_s=%.6f blocks_read=%" PRIu64 " windows=%" PRIu64 " skipped=%" PRIu64
                " gathered=%" PRIu64 " rows_read=%" PRIu64 " runs=%" PRIu64 " whole=%" PRIu64
                "\n", secs,
                nf_segment_rows(seg), nf_segment_count(seg),
                filter ? st.rows_selected : nf_segment_count(seg), (double) st.filter_ns / 1e9,
                st.blocks_read, st.windows, st.windows_skipped, st.windows_gathered,
                st.rows_read, st.windows_runs, st.windows_full);
    for (size_t q = 0; q < nq && rc == 0; q++) {
        rc = s_print_query(seg, q, hits + q * k, counts[q], json, matches, payloads, &of);
        nf_segment_release_lookups(seg);    /* ids and payloads do not pile up */
    }
    if (rc == 0 && fflush(stdout) != 0)
        rc = nf_error_set(NF_EIO, "writing results: %s", strerror(errno));
    if (rc == 0 && !json)
        fprintf(stderr, "%zu queries, k=%" PRIu64 ", over %" PRIu64 " live rows (dim %" PRIu32
                ", metric %s) in %.3f s\n", nq, k, nf_segment_count(seg), dim,
                nf_metric_name(nf_segment_metric(seg)), secs);
done:
    nf_filter_destroy(&filter);
    free(payloads);
    free(matches);
    free(counts);
    free(hits);
    free(queries);
    nf_segment_destroy(&seg);
    return rc ? s_fail(cmd, rc) : 0;
}

/* ------------------------------------------------------------------ */
/* info, verify, repair, compact                                       */

/* Parse `nflow segment CMD DIR` (DIR and --help, which prints summary):
   true with *dir set, false with *status the command's exit status. */
static bool
s_dir_only(const char *cmd, const char *summary, int argc, char **argv, const char **dir,
           int *status)
{
    char name[32];
    snprintf(name, sizeof name, "nflow segment %s", cmd);
    const nf_arg_t args[] = {
        {"DIR", NULL, NF_ARG_POS, dir, .required = true, .help = "the segment directory"},
    };
    const nf_args_t spec = {name, args, NF_ARGS_COUNT(args), .summary = summary};
    return nf_args_parse(&spec, argc, argv, status);
}

static const char s_info_summary[] =
    "Print the segment's format version, commit, rows, deleted and live counts,\n"
    "dim, metric, its typed fields, the size of each of its files, and anything\n"
    "the open found worth saying.";

static int
s_info(int argc, char **argv)
{
    const char *cmd = "info", *dir = NULL;
    int st;
    if (!s_dir_only(cmd, s_info_summary, argc, argv, &dir, &st))
        return st;
    nf_segment_opts_t opts = {.readonly = true};
    nf_segment_t *seg = NULL;
    int rc = nf_segment_open(dir, &opts, &seg);
    if (rc)
        return s_fail(cmd, rc);
    s_notice(cmd, seg);
    nf_segment_file_t files[NF_SEGMENT_NFILES];
    size_t nfiles = 0;
    rc = nf_segment_files(seg, files, sizeof files / sizeof files[0], &nfiles);
    if (rc == 0) {
        printf("segment:  %s\n", dir);
        printf("version:  %d\n", NF_SEGMENT_VERSION);
        printf("commit:   %" PRIu64 "\n", nf_segment_seq(seg));
        printf("dim:      %" PRIu32 "\n", nf_segment_dim(seg));
        printf("metric:   %s\n", nf_metric_name(nf_segment_metric(seg)));
        printf("rows:     %" PRIu64 "\n", nf_segment_rows(seg));
        printf("deleted:  %" PRIu64 "\n", nf_segment_deleted(seg));
        printf("live:     %" PRIu64 "\n", nf_segment_count(seg));
        for (size_t i = 0; i < nf_segment_nfields(seg); i++) {
            const nf_field_def_t *d = nf_segment_field(seg, i);
            printf("field:    %-16s %-10s %s", d->name, nf_field_type_name(d->type),
                   d->policy == NF_MEM_MEMORY ? "memory" : "mmap");
            if (d->type == NF_FIELD_KEYWORD || d->type == NF_FIELD_KEYWORDS)
                printf(" (%" PRIu32 " keywords)", nf_segment_keyword_count(seg, i));
            printf("\n");
        }
        uint64_t sum = 0;
        for (size_t i = 0; i < nfiles; i++) {
            printf("file:     %-16s %12" PRIu64 " bytes (%" PRIu64 " committed)\n",
                   files[i].name, files[i].bytes, files[i].used);
            sum += files[i].bytes;
        }
        printf("total:    %" PRIu64 " bytes\n", sum);
        printf("notice:   %s\n", nf_segment_notice(seg) ? nf_segment_notice(seg) : "none");
    }
    nf_segment_destroy(&seg);
    return rc ? s_fail(cmd, rc) : 0;
}

static const char s_verify_summary[] =
    "Check every 1 MiB chunk of every file of the segment DIR against its XXH3\n"
    "checksum (an open checks only the chunks of the last commit).  Exit 0 when\n"
    "all match; 1 naming, for each damaged file, its first bad chunk and the rows\n"
    "in it.";

static int
s_verify(int argc, char **argv)
{
    const char *cmd = "verify", *dir = NULL;
    int st;
    if (!s_dir_only(cmd, s_verify_summary, argc, argv, &dir, &st))
        return st;
    uint64_t bytes = 0, t0 = nf_now_us();
    int rc = nf_segment_verify(dir, &bytes);
    double secs = s_seconds_since(t0);
    if (rc)
        return s_fail(cmd, rc);
    printf("verified %s: %" PRIu64 " bytes, every chunk matches its checksum (%.3f s, "
           "%.2f GB/s)\n", dir, bytes, secs, secs > 0 ? (double) bytes / 1e9 / secs : 0.0);
    return 0;
}

static const char s_repair_summary[] =
    "When an open found a commit slot failing its check, a writable open kept the\n"
    "bytes beyond the commit it used in DIR/recovered/.  repair re-commits the\n"
    "rows found there that are whole, consistent across the files and pass their\n"
    "checksums (and whose ids were not written again since), re-applies their\n"
    "deletes, says what it kept and what it dropped, and removes DIR/recovered/.\n"
    "Needs the writer lock (stop the indexer using DIR first).";

static int
s_repair(int argc, char **argv)
{
    const char *cmd = "repair", *dir = NULL;
    int st;
    if (!s_dir_only(cmd, s_repair_summary, argc, argv, &dir, &st))
        return st;
    char *report = NULL;
    int rc = nf_segment_repair(dir, &report);
    if (report)
        fputs(report, stdout);
    free(report);
    return rc ? s_fail(cmd, rc) : 0;
}

static const char s_compact_summary[] =
    "Rewrite the segment DIR without its deleted rows: the live rows (vectors,\n"
    "ids, payloads, field values) are written and synced into a sibling directory\n"
    "DIR.compact~, which is then swapped with DIR in one atomic rename (Linux\n"
    "renameat2 RENAME_EXCHANGE) and the old files removed.  A crash at any point\n"
    "leaves DIR whole, either the old segment or the new one.  Needs the writer\n"
    "lock (stop the indexer using DIR first).";

static int
s_compact(int argc, char **argv)
{
    const char *cmd = "compact", *dir = NULL;
    int st;
    if (!s_dir_only(cmd, s_compact_summary, argc, argv, &dir, &st))
        return st;
    uint64_t kept = 0, dropped = 0, t0 = nf_now_us();
    int rc = nf_segment_compact(dir, &kept, &dropped);
    if (rc)
        return s_fail(cmd, rc);
    printf("compacted %s: %" PRIu64 " live rows kept, %" PRIu64 " deleted rows dropped "
           "(%.2f s)\n", dir, kept, dropped, s_seconds_since(t0));
    return 0;
}

int
cmd_segment(int argc, char **argv)
{
    static const nf_subcmd_t subs[] = {
        {"build", s_build,
         "build DIR FILE [--dim D] [--field F]... ...  create a segment or add to it"},
        {"search", s_search, "search DIR --queries FILE [-k K] ...        exact top-k search"},
        {"info", s_info, "info DIR                                   what it holds"},
        {"verify", s_verify, "verify DIR                                 check every chunk"},
        {"repair", s_repair, "repair DIR                                 re-commit DIR/recovered/"},
        {"compact", s_compact, "compact DIR                                drop the deleted rows"},
    };
    return nf_args_dispatch("nflow segment", subs, NF_ARGS_COUNT(subs),
                            "`nflow segment SUBCOMMAND --help` shows its options.", argc, argv);
}
