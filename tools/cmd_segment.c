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
    error.                                                                 */
#include "nflow.h"

#include "nf_error.h"
#include "nf_filter.h"
#include "nf_scan.h"
#include "nf_segment.h"
#include "nf_sys.h"
#include "nf_results.h"
#include "nf_vecio.h"

#include <errno.h>
#include <jansson.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define S_PROGRESS_MIN_BYTES (8u << 20)     /* smaller inputs get no bar */
#define S_K_MAX 100000
#define S_EXCERPT 60

static const char s_build_usage[] =
    "usage: nflow segment build DIR FILE [--dim D] [--metric l2|ip|cosine] [--batch N]\n"
    "                           [--format fvecs|f32|jsonl] [--field NAME:TYPE[:POLICY]]...\n"
    "                           [--fields-file JSONL]\n"
    "\n"
    "Create the segment DIR (or append to it when it exists: dim and metric must match)\n"
    "from the documents in FILE: .fvecs, .f32 (raw float32, needs --dim) or JSONL\n"
    "(.jsonl/.json/.ndjson: {\"id\", \"vector\", \"text\"?, \"tags\"?} per line).  A document\n"
    "whose id is already in the segment replaces it.\n"
    "\n"
    "  --field F      a typed field NAME:TYPE, TYPE one of int, float, bool, keyword,\n"
    "                 keyword[], datetime (RFC 3339), optionally :mmap (default) or\n"
    "                 :memory; repeat it for each field.  Values are the documents'\n"
    "                 top-level JSONL keys (\"year\": 2001); a missing one is null, one\n"
    "                 of the wrong type stops the build naming FILE:LINE, the id and the\n"
    "                 field.  On an existing segment the fields must include its own\n"
    "                 (same types; new ones are added, null for the rows there);\n"
    "                 without --field an existing segment's fields are read\n"
    "  --fields-file J  JSONL with the field values of FILE's documents, one line per\n"
    "                 document in the same order (for .fvecs / .f32 input)\n"
    "  --dim D        vector dim (default: from the data, or the existing segment)\n"
    "  --metric M     l2 (squared euclidean), ip or cosine (default: the existing\n"
    "                 segment's, else l2)\n"
    "  --batch N      documents per durable append (default 10000)\n"
    "  --format F     input format when the extension does not tell\n";

static const char s_search_usage[] =
    "usage: nflow segment search DIR --queries FILE [-k K] [--json] [--threads N]\n"
    "                            [--vectors mmap|memory] [--payloads mmap|memory] [--warmup]\n"
    "                            [--format fvecs|f32|jsonl] [--filter EXPR] [--fields A,B]\n"
    "                            [--repeat N] [--stats]\n"
    "\n"
    "Exact top-k search of the segment DIR for every query vector in FILE (.fvecs,\n"
    ".f32 or JSONL with \"vector\"; its dim must be the segment's).\n"
    "\n"
    "  --queries F    query vectors\n"
    "  -k K           results per query (default 10)\n"
    "  --json         one JSON line per query: {\"query\": i, \"matches\": [{\"id\", \"score\",\n"
    "                 \"text\"?, \"tags\"?}]}; scores: l2 = squared distance (smaller is\n"
    "                 better), ip / cosine = similarity (larger is better)\n"
    "  --threads N    scan threads (default 0 = all cores)\n"
    "  --vectors P    mmap (page cache, default) or memory (read into RAM at open)\n"
    "  --payloads P   the same for the texts and tags\n"
    "  --warmup       touch every page at open\n"
    "  --format F     query file format when the extension does not tell\n"
    "  --filter EXPR  only rows the filter keeps, e.g. 'year >= 2000 and genre in\n"
    "                 [\"scifi\", \"drama\"] and not archived' (grammar: README, Filters);\n"
    "                 a malformed or ill-typed filter exits 2 naming line:col and field\n"
    "  --fields A,B   print these fields of each match (JSON: \"fields\": {...})\n"
    "  --repeat N     run the scan N times (default 1) and report the fastest (benchmarks)\n"
    "  --stats        print the scan time and the filter's figures (kept rows, filter\n"
    "                 time, windows skipped / gathered / runs / whole) on stderr\n";

static const char s_info_usage[] =
    "usage: nflow segment info DIR\n"
    "\n"
    "Print the segment's format version, commit, rows, deleted and live counts, dim,\n"
    "metric, its typed fields, the size of each of its files, and anything the open\n"
    "found worth saying.\n";

static const char s_compact_usage[] =
    "usage: nflow segment compact DIR\n"
    "\n"
    "Rewrite the segment DIR without its deleted rows: the live rows (vectors, ids,\n"
    "payloads, field values) are written and synced into a sibling directory\n"
    "DIR.compact~, which is then swapped with DIR in one atomic rename (Linux\n"
    "renameat2 RENAME_EXCHANGE) and the old files removed.  A crash at any point\n"
    "leaves DIR whole, either the old segment or the new one.  Needs the writer lock\n"
    "(stop the indexer using DIR first).\n";

static const char s_verify_usage[] =
    "usage: nflow segment verify DIR\n"
    "\n"
    "Check every 1 MiB chunk of every file of the segment DIR against its XXH3\n"
    "checksum (an open checks only the chunks of the last commit).  Exit 0 when all\n"
    "match; 1 naming, for each damaged file, its first bad chunk and the rows in it.\n";

static const char s_repair_usage[] =
    "usage: nflow segment repair DIR\n"
    "\n"
    "When an open found a commit slot failing its check, a writable open kept the\n"
    "bytes beyond the commit it used in DIR/recovered/.  repair re-commits the rows\n"
    "found there that are whole, consistent across the files and pass their checksums\n"
    "(and whose ids were not written again since), re-applies their deletes, says what\n"
    "it kept and what it dropped, and removes DIR/recovered/.  Needs the writer lock\n"
    "(stop the indexer using DIR first).\n";

static const char s_usage[] =
    "usage: nflow segment build DIR FILE [--dim D] [--metric M] [--batch N]\n"
    "       nflow segment search DIR --queries FILE [-k K] [--json] ...\n"
    "       nflow segment info DIR\n"
    "       nflow segment verify DIR\n"
    "       nflow segment repair DIR\n"
    "       nflow segment compact DIR\n"
    "\n"
    "`nflow segment SUBCOMMAND --help` shows its options.\n";

/* Print a usage error for `nflow segment cmd` and return 2. */
static int
s_usage_error(const char *cmd, const char *usage, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int
s_usage_error(const char *cmd, const char *usage, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "nflow segment %s: ", cmd);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\n%s", usage);
    return 2;
}

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

static bool
s_parse_uint(const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
    if (!s || !*s || *s == '-' || *s == '+')
        return false;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || *end || v < min || v > max)
        return false;
    *out = v;
    return true;
}

/* The getopt error for the option just seen (opterr is off). */
static int
s_option_error(const char *cmd, const char *usage, int c, char **argv)
{
    const char *arg = argv[optind - 1];
    if (c == ':')
        return s_usage_error(cmd, usage, "option '%s' needs a value", arg);
    if (optopt && optopt != '?')
        return s_usage_error(cmd, usage, "unknown option '-%c'", optopt);
    return s_usage_error(cmd, usage, "unknown option '%s'", arg);
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
   when side is non-NULL, side->docs[i].fields) are the field values. */
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
        rc = nf_segment_append_fields(seg, docs, fields, b->n);
    for (size_t j = 0; j < i; j++) {
        free(bufs[j]);
        bufs[j] = NULL;
    }
    return rc;
}

static int
s_build(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"dim", required_argument, NULL, 'd'}, {"metric", required_argument, NULL, 'm'},
        {"batch", required_argument, NULL, 'b'}, {"format", required_argument, NULL, 'f'},
        {"field", required_argument, NULL, 'F'}, {"fields-file", required_argument, NULL, 'S'},
        {"help", no_argument, NULL, 'h'}, {NULL, 0, NULL, 0},
    };
    const char *cmd = "build", *side_file = NULL;
    nf_field_def_t defs[NF_FIELDS_MAX];
    size_t ndefs = 0;
    uint64_t dim = 0, batch = 10000;
    bool metric_given = false;
    nf_metric_t metric = NF_METRIC_L2;
    nf_vecio_fmt_t fmt = NF_VECIO_AUTO;
    int c;
    optind = 0;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
        switch (c) {
        case 'd':
            if (!s_parse_uint(optarg, 1, NF_DIM_MAX, &dim))
                return s_usage_error(cmd, s_build_usage, "--dim '%s': expected 1..%d", optarg,
                                     NF_DIM_MAX);
            break;
        case 'm':
            if (nf_metric_parse(optarg, &metric) != 0)
                return s_usage_error(cmd, s_build_usage,
                                     "--metric '%s': expected l2, ip or cosine", optarg);
            metric_given = true;
            break;
        case 'b':
            if (!s_parse_uint(optarg, 1, 1000000, &batch))
                return s_usage_error(cmd, s_build_usage, "--batch '%s': expected 1..1000000",
                                     optarg);
            break;
        case 'f':
            if (nf_vecio_fmt_parse(optarg, &fmt) != 0)
                return s_usage_error(cmd, s_build_usage, "--format '%s': expected fvecs, f32 "
                                     "or jsonl", optarg);
            break;
        case 'F':
            if (ndefs == NF_FIELDS_MAX)
                return s_usage_error(cmd, s_build_usage, "more than %d --field (NF_FIELDS_MAX)",
                                     NF_FIELDS_MAX);
            if (nf_field_def_parse(optarg, &defs[ndefs]) != 0)
                return s_usage_error(cmd, s_build_usage, "--field: %s", nf_error_msg());
            ndefs++;
            break;
        case 'S':
            side_file = optarg;
            break;
        case 'h':
            fputs(s_build_usage, stdout);
            return 0;
        default:
            return s_option_error(cmd, s_build_usage, c, argv);
        }
    }
    if (argc - optind != 2)
        return s_usage_error(cmd, s_build_usage, "expected DIR and FILE, got %d argument%s",
                             argc - optind, argc - optind == 1 ? "" : "s");
    const char *dir = argv[optind], *file = argv[optind + 1];
    nf_vecio_fmt_t eff = fmt != NF_VECIO_AUTO ? fmt : nf_vecio_fmt_guess(file);

    uint64_t t0 = nf_now_us();
    nf_segment_t *seg = NULL;
    nf_vecio_t *reader = NULL, *side = NULL;
    nf_doc_t *docs = NULL;
    nf_fields_t *fields = NULL;
    uint8_t **bufs = NULL;
    uint64_t total_docs = 0;
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
        return s_usage_error(cmd, s_build_usage, "--dim is required for .f32 input");
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
        total_docs += b.n;
        s_progress(&prog, reader, total_docs, false);
    }
    s_progress(&prog, reader, total_docs, true);
    if (rc == 0)
        printf("built %s: %" PRIu64 " rows (dim %" PRIu32 ", metric %s) in %.2f s\n", dir,
               total_docs, nf_segment_dim(seg), nf_metric_name(nf_segment_metric(seg)),
               s_seconds_since(t0));
done:
    if (rc && total_docs)
        fprintf(stderr, "nflow segment build: %" PRIu64 " documents were stored before the "
                "error\n", total_docs);
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

static int
s_parse_policy(const char *s, nf_mempolicy_t *p)
{
    if (!strcmp(s, "mmap"))
        *p = NF_MEM_MMAP;
    else if (!strcmp(s, "memory"))
        *p = NF_MEM_MEMORY;
    else
        return -1;
    return 0;
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
    static const struct option longopts[] = {
        {"queries", required_argument, NULL, 'q'}, {"json", no_argument, NULL, 'j'},
        {"threads", required_argument, NULL, 't'}, {"vectors", required_argument, NULL, 'V'},
        {"payloads", required_argument, NULL, 'P'}, {"warmup", no_argument, NULL, 'w'},
        {"format", required_argument, NULL, 'f'}, {"help", no_argument, NULL, 'h'},
        {"filter", required_argument, NULL, 'W'}, {"fields", required_argument, NULL, 'O'},
        {"repeat", required_argument, NULL, 'R'}, {"stats", no_argument, NULL, 'T'},
        {NULL, 0, NULL, 0},
    };
    const char *cmd = "search", *qfile = NULL, *ftext = NULL, *fields_arg = NULL;
    uint64_t k = 10, threads = 0, repeat = 1;
    bool json = false, stats = false;
    nf_segment_opts_t sopts = {.readonly = true};
    nf_vecio_fmt_t fmt = NF_VECIO_AUTO;
    int c;
    optind = 0;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":hk:", longopts, NULL)) != -1) {
        switch (c) {
        case 'q':
            qfile = optarg;
            break;
        case 'k':
            if (!s_parse_uint(optarg, 1, S_K_MAX, &k))
                return s_usage_error(cmd, s_search_usage, "-k '%s': expected 1..%d", optarg,
                                     S_K_MAX);
            break;
        case 'j':
            json = true;
            break;
        case 't':
            if (!s_parse_uint(optarg, 0, 1024, &threads))
                return s_usage_error(cmd, s_search_usage, "--threads '%s': expected 0..1024",
                                     optarg);
            break;
        case 'V':
        case 'P':
            if (s_parse_policy(optarg, c == 'V' ? &sopts.vectors : &sopts.payloads) != 0)
                return s_usage_error(cmd, s_search_usage, "--%s '%s': expected mmap or memory",
                                     c == 'V' ? "vectors" : "payloads", optarg);
            break;
        case 'w':
            sopts.warmup = true;
            break;
        case 'f':
            if (nf_vecio_fmt_parse(optarg, &fmt) != 0)
                return s_usage_error(cmd, s_search_usage, "--format '%s': expected fvecs, f32 "
                                     "or jsonl", optarg);
            break;
        case 'W':
            ftext = optarg;
            break;
        case 'O':
            fields_arg = optarg;
            break;
        case 'R':
            if (!s_parse_uint(optarg, 1, 1000, &repeat))
                return s_usage_error(cmd, s_search_usage, "--repeat '%s': expected 1..1000",
                                     optarg);
            break;
        case 'T':
            stats = true;
            break;
        case 'h':
            fputs(s_search_usage, stdout);
            return 0;
        default:
            return s_option_error(cmd, s_search_usage, c, argv);
        }
    }
    if (argc - optind != 1)
        return s_usage_error(cmd, s_search_usage, "expected one DIR, got %d arguments",
                             argc - optind);
    if (!qfile)
        return s_usage_error(cmd, s_search_usage, "--queries FILE is required");
    const char *dir = argv[optind];

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
        int st = s_usage_error(cmd, "", "--filter: %s", nf_error_msg());
        nf_segment_destroy(&seg);
        return st;
    }
    for (const char *p = fields_arg; p && *p;) {
        const char *e = strchr(p, ',');
        size_t len = e ? (size_t) (e - p) : strlen(p);
        int fi = nf_segment_field_find(seg, p, len);
        if (fi < 0 || of.n == NF_FIELDS_MAX) {
            int st = s_usage_error(cmd, "", "--fields: '%.*s' is not a field of %s", (int) len,
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
/* info                                                                */

static int
s_info(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"help", no_argument, NULL, 'h'}, {NULL, 0, NULL, 0},
    };
    const char *cmd = "info";
    int c;
    optind = 0;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
        if (c == 'h') {
            fputs(s_info_usage, stdout);
            return 0;
        }
        return s_option_error(cmd, s_info_usage, c, argv);
    }
    if (argc - optind != 1)
        return s_usage_error(cmd, s_info_usage, "expected one DIR, got %d arguments",
                             argc - optind);
    const char *dir = argv[optind];
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

/* ------------------------------------------------------------------ */
/* verify, repair                                                      */

/* Parse `nflow segment CMD DIR` (only --help); *dir or a return status. */
static int
s_dir_only(const char *cmd, const char *usage, int argc, char **argv, const char **dir)
{
    static const struct option longopts[] = {
        {"help", no_argument, NULL, 'h'}, {NULL, 0, NULL, 0},
    };
    int c;
    optind = 0;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
        if (c == 'h') {
            fputs(usage, stdout);
            return 0;
        }
        return s_option_error(cmd, usage, c, argv);
    }
    if (argc - optind != 1)
        return s_usage_error(cmd, usage, "expected one DIR, got %d arguments", argc - optind);
    *dir = argv[optind];
    return -1;
}

static int
s_verify(int argc, char **argv)
{
    const char *cmd = "verify", *dir = NULL;
    int st = s_dir_only(cmd, s_verify_usage, argc, argv, &dir);
    if (st >= 0)
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

static int
s_repair(int argc, char **argv)
{
    const char *cmd = "repair", *dir = NULL;
    int st = s_dir_only(cmd, s_repair_usage, argc, argv, &dir);
    if (st >= 0)
        return st;
    char *report = NULL;
    int rc = nf_segment_repair(dir, &report);
    if (report)
        fputs(report, stdout);
    free(report);
    return rc ? s_fail(cmd, rc) : 0;
}

static int
s_compact(int argc, char **argv)
{
    const char *cmd = "compact", *dir = NULL;
    int st = s_dir_only(cmd, s_compact_usage, argc, argv, &dir);
    if (st >= 0)
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
    if (argc < 2) {
        fputs(s_usage, stderr);
        return 2;
    }
    const char *sub = argv[1];
    if (!strcmp(sub, "-h") || !strcmp(sub, "--help") || !strcmp(sub, "help")) {
        fputs(s_usage, stdout);
        return 0;
    }
    if (!strcmp(sub, "build"))
        return s_build(argc - 1, argv + 1);
    if (!strcmp(sub, "search"))
        return s_search(argc - 1, argv + 1);
    if (!strcmp(sub, "info"))
        return s_info(argc - 1, argv + 1);
    if (!strcmp(sub, "verify"))
        return s_verify(argc - 1, argv + 1);
    if (!strcmp(sub, "repair"))
        return s_repair(argc - 1, argv + 1);
    if (!strcmp(sub, "compact"))
        return s_compact(argc - 1, argv + 1);
    fprintf(stderr, "nflow segment: unknown subcommand '%s'\n%s", sub, s_usage);
    return 2;
}
