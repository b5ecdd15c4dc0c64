/*  nf_filter + the filtered scan + typed fields of nf_segment.

    - a segment with every field type (nulls in each, an empty keyword[],
      a datetime that grows with the row as a clustered field), some rows
      deleted: for every operator and type, and for and / or / not, the
      filtered scan returns the same rows as a double-precision brute force
      over the rows the filter keeps (checked by a predicate written here
      independently of the parser), for l2, ip and cosine, at 1, 3 and 70
      queries, with small windows so every execution path runs (skipped,
      gathered, runs of blocks, whole windows);
    - the schema survives a reopen; a field added later reads null for the
      old rows; changing or removing a field is refused by name;
    - wrong-typed values reject the document naming it and the field;
    - malformed and ill-typed filters are refused with filter:LINE:COL and
      the field; the limits (bytes, depth, list) hold. */
#include "nf_error.h"
#include "nf_filter.h"
#include "nf_filter_words.h"
#include "nf_scan.h"
#include "nf_segment.h"
#include "nf_test.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define N 5000
#define DIM 12
#define K 7

static uint64_t s_rng = 42;

typedef struct {
    bool year_null, price_null, ok_null, genre_null, labels_null, ts_null;
    int64_t year;
    double price;
    bool ok;
    int genre;              /* index into s_genres */
    unsigned labels;        /* bit i: s_labels[i] */
    int64_t ts;
} s_row_t;

static const char *const s_genres[] = {"scifi", "drama", "comedy", "horror", "docu", "x y"};
static const char *const s_labels[] = {"a", "b", "c", "d", "e"};
static s_row_t s_rows[N];
static float s_vec[N * DIM];
static bool s_dead[N];

static int64_t
s_ts(int r)
{
    return 946684800ll * 1000000 + (int64_t) r * 3600ll * 1000000;   /* 2000-01-01 + r hours */
}

/* ------------------------------------------------------------ predicates */

typedef bool (*s_pred_fn)(const s_row_t *, int r);

#define P(name, expr)                                                      \
    static bool name(const s_row_t *x, int r)                              \
    {                                                                      \
        (void) r;                                                          \
        return (expr);                                                     \
    }

static bool
s_lab(const s_row_t *x, int i)
{
    return !x->labels_null && (x->labels >> i & 1);
}

P(p_eq, !x->year_null && x->year == 2005)
P(p_ne, !x->year_null && x->year != 2005)
P(p_lt, !x->year_null && x->year < 1995)
P(p_le, !x->year_null && x->year <= 1995)
P(p_gt, !x->year_null && x->year > 2015)
P(p_ge, !x->year_null && x->year >= 2015)
P(p_in, !x->year_null && (x->year == 1990 || x->year == 2000 || x->year == 2019))
P(p_notin, !x->year_null && x->year != 1990 && x->year != 2000)
P(p_fgt, !x->price_null && x->price > 70.5)
P(p_fin, !x->price_null && (x->price == 0.5 || x->price == 3 || x->price == 99.5))
P(p_fnotin, !x->price_null && x->price != 0.5 && x->price != 3)
P(p_inlong, !x->year_null && x->year >= 1990 && x->year <= 2007)
P(p_notinlong, !x->year_null && (x->year < 1990 || x->year > 2007))
P(p_fle, !x->price_null && x->price <= 3)
P(p_fne, !x->price_null && x->price != 0.5)
P(p_bool, !x->ok_null && x->ok)
P(p_notbool, !(!x->ok_null && x->ok))
P(p_boolf, !x->ok_null && !x->ok)
P(p_kweq, !x->genre_null && x->genre == 0)
P(p_kwne, !x->genre_null && x->genre != 0)
P(p_kwin, !x->genre_null && (x->genre == 1 || x->genre == 5))
P(p_kwnotin, !x->genre_null && x->genre != 1 && x->genre != 5)
P(p_kwabsent, false)
P(p_has, s_lab(x, 2))
P(p_hasany, s_lab(x, 0) || s_lab(x, 4))
P(p_hasall, s_lab(x, 1) && s_lab(x, 3))
P(p_hasallmissing, false)
P(p_null, x->year_null)
P(p_notnull, !x->labels_null)
P(p_kwnull, x->genre_null)
P(p_tsrange, !x->ts_null && x->ts >= s_ts(1000) && x->ts < s_ts(1040))
P(p_tsrun, !x->ts_null && x->ts >= s_ts(1536) && x->ts < s_ts(1656))
P(p_tsdate, !x->ts_null && x->ts < 946684800ll * 1000000 + 86400ll * 1000000 * 3)
P(p_complex, (!x->year_null && x->year >= 2000
              && !x->genre_null && (x->genre == 0 || x->genre == 1)) && !(!x->ok_null && x->ok))
P(p_or, (!x->year_null && x->year < 1992) || s_lab(x, 0) || x->genre_null)
P(p_nested, !((!x->year_null && x->year > 2000) || (!x->price_null && x->price < 50)))
P(p_rare, !x->ts_null && x->ts == s_ts(2500))
P(p_all, true)
P(p_none, !x->year_null && x->year > 3000)

static const struct {
    const char *text;
    s_pred_fn pred;
} s_cases[] = {
    {"year == 2005", p_eq},
    {"year != 2005", p_ne},
    {"year < 1995", p_lt},
    {"year <= 1995", p_le},
    {"year > 2015", p_gt},
    {"year >= 2015", p_ge},
    {"year in [1990, 2000, 2019]", p_in},
    {"year not in [1990, 2000]", p_notin},
    {"price > 70.5", p_fgt},
    {"price in [0.5, 3, 99.5]", p_fin},
    {"price not in [0.5, 3]", p_fnotin},
    {"year in [2007, 1990, 1991, 1992, 1993, 1994, 1995, 1996, 1997, 1998, 1999, 2000, 2001, "
     "2002, 2003, 2004, 2005, 2006, 1995]", p_inlong},
    {"year not in [2007, 1990, 1991, 1992, 1993, 1994, 1995, 1996, 1997, 1998, 1999, 2000, "
     "2001, 2002, 2003, 2004, 2005, 2006]", p_notinlong},
    {"price <= 3", p_fle},
    {"price != 0.5", p_fne},
    {"ok", p_bool},
    {"not ok", p_notbool},
    {"ok == false", p_boolf},
    {"genre == \"scifi\"", p_kweq},
    {"genre != 'scifi'", p_kwne},
    {"genre in [\"drama\", \"x y\"]", p_kwin},
    {"genre in ['q1', 'drama', 'q2', 'q3', 'q4', 'x y', 'q5', 'q6', 'q7', 'q8', 'q9']", p_kwin},
    {"genre not in ['q1', 'drama', 'q2', 'q3', 'q4', 'x y', 'q5', 'q6', 'q7', 'q8']", p_kwnotin},
    {"genre not in [\"drama\", \"x y\"]", p_kwnotin},
    {"genre == \"nosuch\"", p_kwabsent},
    {"labels contains \"c\"", p_has},
    {"labels contains any [\"a\", \"e\"]", p_hasany},
    {"labels contains all [\"b\", \"d\"]", p_hasall},
    {"labels contains all [\"b\", \"zz\"]", p_hasallmissing},
    {"year is null", p_null},
    {"labels is not null", p_notnull},
    {"genre is null", p_kwnull},
    {"ts >= \"2000-02-12T16:00:00Z\" and ts < 2000-02-14T08:00:00Z", p_tsrange},
    {"ts < 2000-01-04", p_tsdate},
    {"ts >= 2000-03-05 and ts < 2000-03-10", p_tsrun},
    {"year >= 2000 and genre in ['scifi', 'drama'] and not ok", p_complex},
    {"year < 1992 or labels contains \"a\" or genre is null", p_or},
    {"not (year > 2000 or (price < 50))", p_nested},
    {"year is null or year is not null", p_all},
    {"ts == 2000-04-14T04:00:00Z", p_rare},
    {"year > 3000", p_none},
};

/* ------------------------------------------------------------ data */

static const nf_field_def_t s_defs[] = {
    {"year", NF_FIELD_INT, NF_MEM_MMAP},    {"price", NF_FIELD_FLOAT, NF_MEM_MEMORY},
    {"ok", NF_FIELD_BOOL, NF_MEM_MMAP},     {"genre", NF_FIELD_KEYWORD, NF_MEM_MMAP},
    {"labels", NF_FIELD_KEYWORDS, NF_MEM_MMAP}, {"ts", NF_FIELD_DATETIME, NF_MEM_MMAP},
};

static void
s_make_rows(void)
{
    for (int r = 0; r < N; r++) {
        s_row_t *x = &s_rows[r];
        uint64_t u = nf_test_rand(&s_rng);
        x->year_null = u % 10 == 0;
        x->year = 1990 + (int64_t) (u >> 8) % 30;
        x->price_null = (u >> 16) % 10 == 1;
        x->price = (double) ((u >> 20) % 200) * 0.5;
        x->ok_null = (u >> 28) % 10 == 2;
        x->ok = (u >> 32) & 1;
        x->genre_null = (u >> 33) % 10 == 3;
        x->genre = (int) ((u >> 37) % 6);
        x->labels_null = (u >> 40) % 10 == 4;
        x->labels = (unsigned) ((u >> 44) % 32);
        x->ts_null = (u >> 50) % 20 == 5;
        x->ts = s_ts(r);
        /* rows 2048..3071 (two summary blocks) all have year 1999: whole
           blocks are decided by their summaries */
        if (r == 2500)
            x->ts_null = false;     /* the one row of a very rare filter */
        if (r >= 2048 && r < 3072) {
            x->year_null = false;
            x->year = 1999;
        }
        for (int j = 0; j < DIM; j++)
            s_vec[r * DIM + j] = (float) ((double) (nf_test_rand(&s_rng) >> 11) / 9.007e15 - 0.5);
    }
}

static void
s_fill(int r, nf_fval_t *v, size_t *nv, const char **labs)
{
    const s_row_t *x = &s_rows[r];
    size_t n = 0;
    if (!x->year_null)
        v[n++] = (nf_fval_t) {.name = "year", .type = NF_FIELD_INT, .v.i = x->year};
    if (!x->price_null)
        v[n++] = (nf_fval_t) {.name = "price", .type = NF_FIELD_FLOAT, .v.f = x->price};
    if (!x->ok_null)
        v[n++] = (nf_fval_t) {.name = "ok", .type = NF_FIELD_BOOL, .v.b = x->ok};
    if (!x->genre_null)
        v[n++] = (nf_fval_t) {.name = "genre", .type = NF_FIELD_KEYWORD,
                              .v.s = s_genres[x->genre]};
    if (!x->labels_null) {
        size_t m = 0;
        for (int i = 0; i < 5; i++)
            if (x->labels >> i & 1)
                labs[m++] = s_labels[i];
        if (m > 1)
            labs[m++] = labs[0];        /* a repeated keyword: a set keeps it once */
        v[n++] = (nf_fval_t) {.name = "labels", .type = NF_FIELD_KEYWORDS,
                              .v.set = {labs, m}};
    }
    if (!x->ts_null)
        v[n++] = (nf_fval_t) {.name = "ts", .type = NF_FIELD_DATETIME, .v.i = x->ts};
    *nv = n;
}

static nf_segment_t *
s_build(const char *dir, nf_metric_t metric)
{
    nf_segment_t *seg = NULL;
    CHECK_OK(nf_segment_create(dir, DIM, metric, &seg));
    if (!seg)
        return NULL;
    /* the schema in two steps: the second adds fields to a segment with rows */
    CHECK_OK(nf_segment_set_schema(seg, s_defs, 3));
    static char ids[N][16];
    enum { B = 700 };
    nf_doc_t docs[B];
    nf_fields_t fl[B];
    static nf_fval_t vals[B][6];
    static const char *labs[B][8];
    for (int r0 = 0; r0 < N; r0 += B) {
        int n = N - r0 < B ? N - r0 : B;
        if (r0 == 1400)
            CHECK_OK(nf_segment_set_schema(seg, s_defs, 6));
        for (int i = 0; i < n; i++) {
            int r = r0 + i;
            snprintf(ids[r], sizeof ids[r], "d%d", r);
            docs[i] = (nf_doc_t) {.id = ids[r], .vector = s_vec + r * DIM};
            fl[i].v = vals[i];
            s_fill(r, vals[i], &fl[i].n, labs[i]);
            if (r0 < 1400) {    /* the first rows do not know the last fields: null */
                size_t o = 0;
                for (size_t j = 0; j < fl[i].n; j++)
                    if (strcmp(vals[i][j].name, "genre") && strcmp(vals[i][j].name, "labels")
                        && strcmp(vals[i][j].name, "ts"))
                        vals[i][o++] = vals[i][j];
                fl[i].n = o;
                s_rows[r].genre_null = s_rows[r].labels_null = s_rows[r].ts_null = true;
            }
        }
        CHECK_OK(nf_segment_append_fields(seg, docs, fl, (size_t) n));
    }
    /* deletes: every 13th row */
    const char *del[N / 13 + 1];
    size_t nd = 0;
    for (int r = 0; r < N; r += 13) {
        del[nd++] = ids[r];
        s_dead[r] = true;
    }
    CHECK_OK(nf_segment_delete(seg, del, nd, NULL));
    return seg;
}

/* ------------------------------------------------------------ reference */

typedef struct {
    double score;
    uint64_t row;
} s_ref_t;

static bool s_larger;

static int
s_ref_cmp(const void *a, const void *b)
{
    const s_ref_t *x = a, *y = b;
    if (x->score != y->score)
        return (x->score < y->score) == !s_larger ? -1 : 1;
    return x->row < y->row ? -1 : 1;
}

static double
s_score(nf_metric_t m, const float *q, int r)
{
    double dot = 0, qq = 0, xx = 0;
    for (int j = 0; j < DIM; j++) {
        double a = q[j], b = s_vec[r * DIM + j];
        dot += a * b;
        qq += a * a;
        xx += b * b;
    }
    if (m == NF_METRIC_L2)
        return qq + xx - 2 * dot;
    if (m == NF_METRIC_IP)
        return dot;
    return qq > 0 && xx > 0 ? dot / sqrt(qq * xx) : 0;
}

static s_ref_t s_ref[N];

static void
s_check_case(nf_segment_t *seg, nf_metric_t m, const float *qs, size_t nq, const char *text,
             s_pred_fn pred, uint64_t window)
{
    nf_filter_t *f = NULL;
    CHECK_OK(nf_filter_parse_for(text, seg, &f));
    if (!f) {
        fprintf(stderr, "  filter: %s\n", text);
        return;
    }
    nf_hit_t out[70 * K];
    size_t counts[70];
    nf_scan_stats_t st;
    nf_scan_opts_t o = {.threads = 2, .window_rows = window, .filter = f, .stats = &st};
    CHECK_OK(nf_scan_search(seg, qs, nq, K, &o, out, counts));
    s_larger = m != NF_METRIC_L2;
    for (size_t q = 0; q < nq; q++) {
        size_t n = 0;
        for (int r = 0; r < N; r++)
            if (!s_dead[r] && pred(&s_rows[r], r))
                s_ref[n++] = (s_ref_t) {s_score(m, qs + q * DIM, r), (uint64_t) r};
        qsort(s_ref, n, sizeof *s_ref, s_ref_cmp);
        size_t want = n < K ? n : K;
        bool ok = counts[q] == want;
        for (size_t i = 0; ok && i < want; i++)
            if (out[q * K + i].key != s_ref[i].row) {
                /* only a near tie may swap */
                double got = s_score(m, qs + q * DIM, (int) out[q * K + i].key);
                ok = fabs(got - s_ref[i].score) < 1e-5;
            }
        CHECK(ok);
        if (!ok) {
            fprintf(stderr, "  %s: metric %s nq %zu q %zu: %zu hits, want %zu (rows kept %zu)\n",
                    text, nf_metric_name(m), nq, q, counts[q], want, n);
            for (size_t i = 0; i < want && i < counts[q]; i++)
                fprintf(stderr, "    %zu: got %llu want %llu\n", i,
                        (unsigned long long) out[q * K + i].key,
                        (unsigned long long) s_ref[i].row);
            break;
        }
    }
    nf_filter_destroy(&f);
}

static uint64_t s_paths[4], s_rows_read;

static void
test_exact(nf_metric_t m)
{
    char *dir = nf_test_tmpdir();
    nf_segment_t *seg = s_build(dir, m);
    if (!seg)
        return;
    float qs[70 * DIM];
    for (int i = 0; i < 70 * DIM; i++)
        qs[i] = (float) ((double) (nf_test_rand(&s_rng) >> 11) / 9.007e15 - 0.5);
    static const size_t nqs[] = {1, 3, 70};
    static const uint64_t windows[] = {256, 0};
    for (size_t c = 0; c < sizeof s_cases / sizeof s_cases[0]; c++)
        for (size_t a = 0; a < 3; a++)
            for (size_t w = 0; w < 2; w++)
                s_check_case(seg, m, qs, nqs[a], s_cases[c].text, s_cases[c].pred, windows[w]);
    /* the paths the scan chose, over a few filters */
    static const char *const probe[] = {"year == 2005", "year > 3000", "year != 2005",
                                        "ts < 2000-01-04", "year is null or year is not null",
                                        "ts >= 2000-03-05 and ts < 2000-03-10"};
    for (size_t i = 0; i < 6; i++) {
        nf_filter_t *f = NULL;
        CHECK_OK(nf_filter_parse_for(probe[i], seg, &f));
        nf_hit_t out[K];
        size_t cnt;
        nf_scan_stats_t st;
        nf_scan_opts_t o = {.threads = 1, .window_rows = 256, .filter = f, .stats = &st};
        CHECK_OK(nf_scan_search(seg, qs, 1, K, &o, out, &cnt));
        s_paths[0] += st.windows_skipped;
        s_paths[1] += st.windows_gathered;
        s_paths[2] += st.windows_runs;
        s_paths[3] += st.windows_full;
        nf_filter_destroy(&f);
    }
    /* very few rows in a large window: read with pread */
    {
        nf_filter_t *f = NULL;
        CHECK_OK(nf_filter_parse_for("ts == 2000-04-14T04:00:00Z", seg, &f));
        nf_hit_t out[K];
        size_t cnt;
        nf_scan_stats_t st;
        nf_scan_opts_t o = {.threads = 1, .filter = f, .stats = &st};
        CHECK_OK(nf_scan_search(seg, qs, 1, K, &o, out, &cnt));
        s_rows_read += st.rows_read;
        nf_filter_destroy(&f);
    }
    /* reopen: same schema, same answers */
    nf_segment_destroy(&seg);
    nf_segment_opts_t ro = {.readonly = true};
    CHECK_OK(nf_segment_open(dir, &ro, &seg));
    CHECK(seg && nf_segment_nfields(seg) == 6);
    if (seg)
        for (size_t c = 0; c < sizeof s_cases / sizeof s_cases[0]; c += 3)
            s_check_case(seg, m, qs, 3, s_cases[c].text, s_cases[c].pred, 0);
    nf_segment_destroy(&seg);
    CHECK_OK(nf_segment_verify(dir, NULL));
    nf_test_rmdir(dir);
    free(dir);
}

static void
test_schema(void)
{
    char *dir = nf_test_tmpdir();
    nf_segment_t *seg = NULL;
    CHECK_OK(nf_segment_create(dir, 4, NF_METRIC_L2, &seg));
    nf_field_def_t d[3];
    CHECK_OK(nf_field_def_parse("year:int", &d[0]));
    CHECK_OK(nf_field_def_parse("tags:keyword[]:memory", &d[1]));
    CHECK(d[1].type == NF_FIELD_KEYWORDS && d[1].policy == NF_MEM_MEMORY);
    CHECK_OK(nf_segment_set_schema(seg, d, 2));
    float v[4] = {1, 2, 3, 4};
    nf_fval_t bad = {.name = "year", .type = NF_FIELD_KEYWORD, .v.s = "2001"};
    nf_fields_t fb = {&bad, 1};
    nf_doc_t doc = {.id = "x", .vector = v};
    CHECK(nf_segment_append_fields(seg, &doc, &fb, 1) == NF_EINVAL);
    CHECK(strstr(nf_error_msg(), "id \"x\"") && strstr(nf_error_msg(), "'year'"));
    nf_fval_t unk = {.name = "nope", .type = NF_FIELD_INT, .v.i = 1};
    nf_fields_t fu = {&unk, 1};
    CHECK(nf_segment_append_fields(seg, &doc, &fu, 1) == NF_EINVAL);
    CHECK(strstr(nf_error_msg(), "'nope'") != NULL);
    nf_fval_t good[2] = {{.name = "year", .type = NF_FIELD_INT, .v.i = 2001},
                         {.name = "tags", .type = NF_FIELD_KEYWORD, .v.s = "t"}};
    nf_fields_t fg = {good, 2};
    CHECK_OK(nf_segment_append_fields(seg, &doc, &fg, 1));
    CHECK(nf_segment_rows(seg) == 1);
    /* removing or changing a field is refused by name */
    CHECK(nf_segment_set_schema(seg, d, 1) == NF_EINVAL);
    CHECK(strstr(nf_error_msg(), "'tags'") != NULL);
    nf_field_def_t changed[2] = {d[0], d[1]};
    changed[0].type = NF_FIELD_FLOAT;
    CHECK(nf_segment_set_schema(seg, changed, 2) == NF_EINVAL);
    CHECK(strstr(nf_error_msg(), "'year'") != NULL);
    /* adding one: old rows null */
    CHECK_OK(nf_field_def_parse("when:datetime", &d[2]));
    CHECK_OK(nf_segment_set_schema(seg, d, 3));
    char buf[128];
    nf_segment_value_json(seg, 2, 0, buf, sizeof buf);
    CHECK(!strcmp(buf, "null"));
    nf_segment_value_json(seg, 1, 0, buf, sizeof buf);
    CHECK(!strcmp(buf, "[\"t\"]"));
    nf_fval_t w = {.name = "when", .type = NF_FIELD_KEYWORD, .v.s = "2001-02-03T04:05:06.5+01:00"};
    nf_fields_t fw = {&w, 1};
    nf_doc_t doc2 = {.id = "y", .vector = v};
    CHECK_OK(nf_segment_append_fields(seg, &doc2, &fw, 1));
    nf_segment_value_json(seg, 2, 1, buf, sizeof buf);
    CHECK(!strcmp(buf, "\"2001-02-03T03:05:06.500000Z\""));
    nf_segment_destroy(&seg);
    CHECK_OK(nf_segment_open(dir, NULL, &seg));
    CHECK(seg && nf_segment_nfields(seg) == 3 && nf_segment_rows(seg) == 2);
    if (seg) {
        nf_segment_value_json(seg, 0, 0, buf, sizeof buf);
        CHECK(!strcmp(buf, "2001"));
        nf_segment_value_json(seg, 0, 1, buf, sizeof buf);
        CHECK(!strcmp(buf, "null"));
    }
    nf_segment_destroy(&seg);
    CHECK_OK(nf_segment_verify(dir, NULL));
    nf_test_rmdir(dir);
    free(dir);
}

static void
s_bad(const char *text, const char *want)
{
    nf_filter_t *f = NULL;
    int rc = nf_filter_parse(text, s_defs, 6, &f);
    CHECK(rc == NF_EPARSE && !f);
    CHECK(strstr(nf_error_msg(), want) != NULL);
    if (!strstr(nf_error_msg(), want))
        fprintf(stderr, "  %s -> %s (wanted %s)\n", text, nf_error_msg(), want);
    nf_filter_destroy(&f);
}

static void
test_bad_filters(void)
{
    s_bad("year >= \"2000\"", "filter:1:9: 'year' is an int field; \"2000\" is a string");
    s_bad("year == 2000.5", "'year' is an int field; '2000.5' is a float");
    s_bad("genre < \"a\"", "filter:1:7: 'genre' is a keyword field: only == and !=");
    s_bad("labels == \"a\"", "keyword[] field: use contains");
    s_bad("year contains 3", "contains is for keyword[] fields");
    s_bad("nosuch == 1", "filter:1:1: 'nosuch' is not a field (fields: year, price");
    s_bad("year ==", "filter:1:8:");
    s_bad("(year == 1", "expected ')' to close the '(' at 1:1");
    s_bad("year == 1 year", "expected 'and', 'or' or the end");
    s_bad("", "empty filter");
    s_bad("year in [1, \"a\"]", "'year' is an int field");
    s_bad("ts > 2001-13-01", "not an RFC 3339");
    s_bad("ok == 1", "'ok' is a bool field; '1' is an int");
    s_bad("genre == \"unclosed", "string not closed");
    s_bad("year = 3", "'=' is not an operator");
    s_bad("year is nul", "expected 'null'");
    s_bad("year ==\n 'x'", "filter:2:2:");
    /* limits */
    char deep[200] = "";
    for (int i = 0; i < 40; i++)
        strcat(deep, "(");
    strcat(deep, "ok");
    s_bad(deep, "NF_FILTER_DEPTH_MAX");
    char *big = malloc(NF_FILTER_BYTES_MAX + 10);
    memset(big, ' ', NF_FILTER_BYTES_MAX + 5);
    memcpy(big, "ok", 2);
    big[NF_FILTER_BYTES_MAX + 5] = '\0';
    s_bad(big, "NF_FILTER_BYTES_MAX");
    free(big);
    size_t cap = 16 + (NF_FILTER_LIST_MAX + 1) * 6;
    char *list = malloc(cap);
    strcpy(list, "year in [");
    for (int i = 0; i <= NF_FILTER_LIST_MAX; i++)
        strcat(list, i ? ",1" : "1");
    strcat(list, "]");
    s_bad(list, "NF_FILTER_LIST_MAX");
    free(list);
    /* a long and-chain is not deep */
    size_t lc = 40 * 1000;
    char *chain = malloc(lc);
    strcpy(chain, "ok");
    for (int i = 0; i < 300; i++)
        strcat(chain, " and year > 1");
    nf_filter_t *f = NULL;
    CHECK_OK(nf_filter_parse(chain, s_defs, 6, &f));
    nf_filter_destroy(&f);
    free(chain);
}

/* A keyword field with a dictionary of 300 keywords (the bitset of a
   list spans many words; ids past the last listed one), nulls, and a
   keyword appended after the filter was bound: nf_filter_eval (the loops
   of nf_filter_words) against a predicate over ragged ranges, and the
   scan over deleted rows. */
#define KW_N 3000
#define KW_DICT 300

static int
s_kw_of(int r)
{
    return r % 7 == 0 ? -1 : (r * 37) % KW_DICT;     /* -1: null */
}

static bool
s_kw_pred(int c, int v)
{
    switch (c) {
    case 0: return v >= 0 && (v == 3 || v == 64 || v == 255 || v == 299);   /* in */
    case 1: return v >= 0 && v != 3 && v != 64 && v != 255 && v != 299;     /* not in */
    case 2: return v == 31;
    case 3: return v >= 0 && v != 31;
    case 4: return v < 0;
    case 5: return v >= 0;
    case 6: return v >= 0 && v % 2 == 0;        /* a long list */
    case 7: return v >= 0;                      /* not in a list no row has */
    default: return v >= 0 && v % 2 == 1;       /* not in a long list */
    }
}

static void
test_kw_dict(void)
{
    char *dir = nf_test_tmpdir();
    nf_segment_t *seg = NULL;
    CHECK_OK(nf_segment_create(dir, 4, NF_METRIC_L2, &seg));
    nf_field_def_t def = {"k", NF_FIELD_KEYWORD, NF_MEM_MMAP};
    CHECK_OK(nf_segment_set_schema(seg, &def, 1));
    static char ids[KW_N][16], kws[KW_DICT][16];
    static float vec[KW_N * 4];
    static nf_doc_t docs[KW_N];
    static nf_fields_t fl[KW_N];
    static nf_fval_t vals[KW_N];
    for (int i = 0; i < KW_DICT; i++)
        snprintf(kws[i], sizeof kws[i], "w%d", i);
    for (int r = 0; r < KW_N; r++) {
        snprintf(ids[r], sizeof ids[r], "r%d", r);
        for (int j = 0; j < 4; j++)
            vec[r * 4 + j] = (float) (r % 97) + (float) j;
        docs[r] = (nf_doc_t) {.id = ids[r], .vector = vec + r * 4};
        int v = s_kw_of(r);
        vals[r] = (nf_fval_t) {.name = "k", .type = NF_FIELD_KEYWORD, .v.s = v >= 0 ? kws[v] : ""};
        fl[r] = (nf_fields_t) {.v = vals + r, .n = v >= 0};
    }
    CHECK_OK(nf_segment_append_fields(seg, docs, fl, KW_N));
    char even[KW_DICT * 8] = "k in [";
    for (int i = 0; i < KW_DICT; i += 2)
        snprintf(even + strlen(even), sizeof even - strlen(even), "%s'w%d'", i ? ", " : "", i);
    strcat(even, "]");
    char even_not[sizeof even + 8] = "k not";
    strcat(even_not, even + 1);
    const char *texts[] = {"k in ['w3', 'w64', 'nosuch', 'w255', 'w299', 'w64']",
                           "k not in ['w3', 'w64', 'w255', 'nosuch', 'w299']",
                           "k == 'w31'", "k != 'w31'", "k is null", "k is not null", even,
                           "k not in ['nosuch', 'nope']", even_not};
    static const uint64_t spans[][2] = {{0, KW_N}, {64, 1000}, {1024, 1}, {1984, 100},
                                        {2944, 56}, {128, 64 * 5 + 3}};
    for (int c = 0; c < 9; c++) {
        nf_filter_t *f = NULL;
        nf_filter_prog_t *p = NULL;
        CHECK_OK(nf_filter_parse_for(texts[c], seg, &f));
        CHECK_OK(nf_filter_bind(f, seg, &p));
        for (size_t s = 0; p && s < sizeof spans / sizeof spans[0]; s++) {
            uint64_t words[KW_N / 64 + 2];
            memset(words, 0xa5, sizeof words);
            uint64_t r0 = spans[s][0], n = spans[s][1], want = 0;
            uint64_t got = nf_filter_eval(p, r0, n, words, NULL);
            bool ok = true;
            for (uint64_t j = 0; j < (n + 63) / 64 * 64; j++) {
                bool bit = words[j / 64] >> (j % 64) & 1;
                bool pred = j < n && s_kw_pred(c, s_kw_of((int) (r0 + j)));
                want += pred;
                ok &= bit == pred;
            }
            CHECK(ok && got == want);
            if (!ok || got != want)
                fprintf(stderr, "  %s rows %llu+%llu: %llu kept, want %llu\n", texts[c],
                        (unsigned long long) r0, (unsigned long long) n,
                        (unsigned long long) got, (unsigned long long) want);
        }
        nf_filter_prog_destroy(&p);
        nf_filter_destroy(&f);
    }
    /* a keyword the dictionary gets after the bind changes nothing for
       the rows bound */
    {
        nf_filter_t *f = NULL;
        nf_filter_prog_t *p = NULL;
        CHECK_OK(nf_filter_parse_for("k not in ['w3']", seg, &f));
        CHECK_OK(nf_filter_bind(f, seg, &p));
        nf_doc_t d = {.id = "late", .vector = vec};
        nf_fval_t v = {.name = "k", .type = NF_FIELD_KEYWORD, .v.s = "late"};
        nf_fields_t lf = {.v = &v, .n = 1};
        CHECK_OK(nf_segment_append_fields(seg, &d, &lf, 1));
        uint64_t words[KW_N / 64 + 2];
        uint64_t want = 0;
        for (int r = 0; r < KW_N; r++)
            want += s_kw_of(r) >= 0 && s_kw_of(r) != 3;
        CHECK(p && nf_filter_eval(p, 0, KW_N, words, NULL) == want);
        nf_filter_prog_destroy(&p);
        nf_filter_destroy(&f);
    }
    /* the scan: every kept live row comes back (k = all), deleted ones not */
    const char *del[KW_N / 11 + 1];
    size_t nd = 0;
    for (int r = 5; r < KW_N; r += 11)
        del[nd++] = ids[r];
    CHECK_OK(nf_segment_delete(seg, del, nd, NULL));
    static nf_hit_t out[KW_N + 1];
    static bool seen[KW_N + 1];
    for (int c = 0; c < 9; c++) {
        for (uint64_t window = 0; window <= 256; window += 256) {
            nf_filter_t *f = NULL;
            CHECK_OK(nf_filter_parse_for(texts[c], seg, &f));
            size_t cnt = 0;
            nf_scan_opts_t o = {.threads = 2, .window_rows = window, .filter = f};
            CHECK_OK(nf_scan_search(seg, vec, 1, KW_N + 1, &o, out, &cnt));
            memset(seen, 0, sizeof seen);
            for (size_t i = 0; i < cnt; i++)
                if (out[i].key < KW_N + 1)
                    seen[out[i].key] = true;
            size_t want = 0;
            bool ok = true;
            for (int r = 0; r < KW_N; r++) {
                bool keep = (r - 5) % 11 != 0 && s_kw_pred(c, s_kw_of(r));
                want += keep;
                ok &= seen[r] == keep;
            }
            bool late = c == 1 || c == 3 || c == 5 || c >= 7;     /* row KW_N: "late" */
            want += late;
            ok &= seen[KW_N] == late;
            CHECK(ok && cnt == want);
            if (!ok || cnt != want)
                fprintf(stderr, "  scan %s window %llu: %zu rows, want %zu\n", texts[c],
                        (unsigned long long) window, cnt, want);
            nf_filter_destroy(&f);
        }
    }
    nf_segment_destroy(&seg);
    nf_test_rmdir(dir);
    free(dir);
}

/* Windows in the zone where the scan measures pread against the mapping
   (nf_scan.c, s_pick_read): both run within one search, and the top-k is
   the brute force's over the kept rows. */
static void
test_gather_zone(void)
{
    enum { ZN = 8192, ZD = 256, ZK = 7 };
    char *dir = nf_test_tmpdir();
    nf_segment_t *seg = NULL;
    CHECK_OK(nf_segment_create(dir, ZD, NF_METRIC_L2, &seg));
    nf_field_def_t def = {"g", NF_FIELD_INT, NF_MEM_MMAP};
    CHECK_OK(nf_segment_set_schema(seg, &def, 1));
    float *vec = malloc((size_t) ZN * ZD * sizeof *vec);
    static char ids[ZN][16];
    static nf_doc_t docs[ZN];
    static nf_fields_t fl[ZN];
    static nf_fval_t vals[ZN];
    for (int i = 0; vec && i < ZN * ZD; i++)
        vec[i] = (float) ((double) (nf_test_rand(&s_rng) >> 11) / 9.007e15 - 0.5);
    for (int r = 0; vec && r < ZN; r++) {
        snprintf(ids[r], sizeof ids[r], "z%d", r);
        docs[r] = (nf_doc_t) {.id = ids[r], .vector = vec + (size_t) r * ZD};
        vals[r] = (nf_fval_t) {.name = "g", .type = NF_FIELD_INT, .v.i = r % 25};
        fl[r] = (nf_fields_t) {.v = vals + r, .n = 1};
    }
    if (vec)
        CHECK_OK(nf_segment_append_fields(seg, docs, fl, ZN));
    float q[ZD];
    for (int j = 0; j < ZD; j++)
        q[j] = (float) ((double) (nf_test_rand(&s_rng) >> 11) / 9.007e15 - 0.5);
    nf_filter_t *f = NULL;
    CHECK_OK(nf_filter_parse_for("g == 3", seg, &f));
    nf_hit_t out[ZK];
    size_t cnt = 0;
    nf_scan_stats_t st;
    /* 1 MiB windows, 41 kept rows each: between the two thresholds */
    nf_scan_opts_t o = {.threads = 2, .window_rows = 1024, .filter = f, .stats = &st};
    CHECK_OK(nf_scan_search(seg, q, 1, ZK, &o, out, &cnt));
    CHECK(st.windows_gathered == ZN / 1024 && st.rows_read > 0 && st.rows_read < st.rows_selected);
    double best[ZK];
    uint64_t brow[ZK];
    size_t nb = 0;
    for (int r = 3; vec && r < ZN; r += 25) {
        double dd = 0;
        for (int j = 0; j < ZD; j++) {
            double t = (double) q[j] - vec[(size_t) r * ZD + j];
            dd += t * t;
        }
        size_t at = nb < ZK ? nb++ : ZK;
        while (at > 0 && best[at - 1] > dd) {
            if (at < ZK) {
                best[at] = best[at - 1];
                brow[at] = brow[at - 1];
            }
            at--;
        }
        if (at < ZK) {
            best[at] = dd;
            brow[at] = (uint64_t) r;
        }
    }
    bool ok = cnt == ZK;
    for (size_t i = 0; ok && i < ZK; i++)
        ok = out[i].key == brow[i];
    CHECK(ok);
    nf_filter_destroy(&f);
    nf_segment_destroy(&seg);
    free(vec);
    nf_test_rmdir(dir);
    free(dir);
}

/* keyword[] contains over blocks with few ids a row (the counting pass)
   and with many (row by row), nulls and empty sets: nf_filter_eval
   against a predicate. */
#define KS_N 3072

static bool
s_ks_has(int r, int v)      /* row r's set holds keyword v (0..299) */
{
    int m = r < 1024 ? r % 4 : 10 + r % 30;     /* set size; r % 9 == 0: null */
    for (int i = 0; i < m; i++)
        if ((r * 7 + i * 13) % 300 == v)
            return true;
    return false;
}

static void
test_kws_sets(void)
{
    char *dir = nf_test_tmpdir();
    nf_segment_t *seg = NULL;
    CHECK_OK(nf_segment_create(dir, 4, NF_METRIC_L2, &seg));
    nf_field_def_t def = {"s", NF_FIELD_KEYWORDS, NF_MEM_MMAP};
    CHECK_OK(nf_segment_set_schema(seg, &def, 1));
    static char ids[KS_N][16], kws[300][8];
    static const char *sets[KS_N][40];
    static float vec[4];
    static nf_doc_t docs[KS_N];
    static nf_fields_t fl[KS_N];
    static nf_fval_t vals[KS_N];
    for (int i = 0; i < 300; i++)
        snprintf(kws[i], sizeof kws[i], "w%d", i);
    for (int r = 0; r < KS_N; r++) {
        snprintf(ids[r], sizeof ids[r], "r%d", r);
        docs[r] = (nf_doc_t) {.id = ids[r], .vector = vec};
        int m = r < 1024 ? r % 4 : 10 + r % 30;
        for (int i = 0; i < m; i++)
            sets[r][i] = kws[(r * 7 + i * 13) % 300];
        vals[r] = (nf_fval_t) {.name = "s", .type = NF_FIELD_KEYWORDS,
                               .v.set = {sets[r], (size_t) m}};
        fl[r] = (nf_fields_t) {.v = vals + r, .n = r % 9 != 0};
    }
    CHECK_OK(nf_segment_append_fields(seg, docs, fl, KS_N));
    const char *texts[] = {"s contains 'w7'", "s contains any ['w7', 'w20', 'w299', 'zz']",
                           "s contains all ['w7', 'w20']", "s contains all ['w14', 'w27', 'w40']",
                           "s contains all []", "s contains any []"};
    for (int c = 0; c < 6; c++) {
        nf_filter_t *f = NULL;
        nf_filter_prog_t *p = NULL;
        CHECK_OK(nf_filter_parse_for(texts[c], seg, &f));
        CHECK_OK(nf_filter_bind(f, seg, &p));
        static uint64_t words[KS_N / 64];
        uint64_t got = p ? nf_filter_eval(p, 0, KS_N, words, NULL) : 0, want = 0;
        bool ok = p != NULL;
        for (int r = 0; p && r < KS_N; r++) {
            bool keep = false;
            if (r % 9 != 0)
                switch (c) {
                case 0: keep = s_ks_has(r, 7); break;
                case 1: keep = s_ks_has(r, 7) || s_ks_has(r, 20) || s_ks_has(r, 299); break;
                case 2: keep = s_ks_has(r, 7) && s_ks_has(r, 20); break;
                case 3: keep = s_ks_has(r, 14) && s_ks_has(r, 27) && s_ks_has(r, 40); break;
                case 4: keep = true; break;
                default: keep = false; break;
                }
            want += keep;
            ok &= (bool) (words[r / 64] >> (r % 64) & 1) == keep;
        }
        CHECK(ok && got == want);
        if (!ok || got != want)
            fprintf(stderr, "  %s: %llu kept, want %llu\n", texts[c], (unsigned long long) got,
                    (unsigned long long) want);
        nf_filter_prog_destroy(&p);
        nf_filter_destroy(&f);
    }
    nf_segment_destroy(&seg);
    nf_test_rmdir(dir);
    free(dir);
}

/* The loops of nf_filter_words directly, AVX2 (when this CPU has it) and
   the baseline, every shape against a plain predicate, ragged lengths. */
static void
test_words(void)
{
    enum { M = 1000, IDS = 40 };
    static uint32_t v[M];
    for (int i = 0; i < M; i++)
        v[i] = (uint32_t) (nf_test_rand(&s_rng) % (IDS + 3));  /* 0 null; > IDS: past lim */
    uint32_t list[NF_KW_IDS_MAX + 8];
    for (uint32_t k = 0; k < NF_KW_IDS_MAX + 8; k++)
        list[k] = 1 + (k * 7) % IDS;
    static const size_t lens[] = {M, 64, 63, 1, 130, 999};
    for (int avx2 = 0; avx2 <= (int) nf_filter_words_avx2(); avx2++)
        for (uint32_t nx = 0; nx <= NF_KW_IDS_MAX + 8; nx++)
            for (int neg = 0; neg < 2; neg++)
                for (int bits = 0; bits < 2; bits++) {
                    if (!bits && nx > NF_KW_IDS_MAX)
                        continue;
                    uint32_t bs[IDS / 32 + 2] = {0};
                    nf_kw_test_t t = {.shape = bits ? NF_KW_BITS : NF_KW_IDS, .neg = neg,
                                      .nx = nx, .lim = IDS + 1, .bits = bs, .avx2 = avx2};
                    memcpy(t.x, list, (nx < NF_KW_IDS_MAX ? nx : NF_KW_IDS_MAX) * 4);
                    nf_filter_kw_bits(bs, IDS, list, nx, neg);
                    for (size_t l = 0; l < sizeof lens / sizeof lens[0]; l++) {
                        uint64_t out[M / 64 + 1];
                        memset(out, 0xa5, sizeof out);
                        nf_filter_kw_words(v, lens[l], &t, out);
                        bool ok = true;
                        for (size_t j = 0; j < (lens[l] + 63) / 64 * 64; j++) {
                            bool in = false;
                            for (uint32_t k = 0; k < nx; k++)
                                in |= j < lens[l] && v[j] == list[k];
                            bool want = j < lens[l] && (neg ? !in && v[j] != 0 : in);
                            if (nx == 0 && !neg && j < lens[l])
                                want = false;
                            ok &= (bool) (out[j / 64] >> (j % 64) & 1) == want;
                        }
                        CHECK(ok);
                        if (!ok)
                            fprintf(stderr, "  words: avx2 %d nx %u neg %d bits %d len %zu\n",
                                    avx2, nx, neg, bits, lens[l]);
                    }
                }
    uint64_t w[3] = {~0ull, 5, 1ull << 63};
    CHECK(nf_filter_popcount(w, 3) == 67);
}

int
main(void)
{
    s_make_rows();
    test_bad_filters();
    test_schema();
    test_kw_dict();
    test_words();
    test_kws_sets();
    test_gather_zone();
    static const s_row_t *keep = s_rows;
    (void) keep;
    s_row_t saved[N];
    memcpy(saved, s_rows, sizeof saved);
    for (int m = NF_METRIC_L2; m <= NF_METRIC_COSINE; m++) {
        memcpy(s_rows, saved, sizeof saved);
        memset(s_dead, 0, sizeof s_dead);
        test_exact((nf_metric_t) m);
    }
    /* every path ran */
    CHECK(s_paths[0] > 0 && s_paths[1] > 0 && s_paths[2] > 0 && s_paths[3] > 0);
    CHECK(s_rows_read > 0);
    fprintf(stderr, "paths: pread rows %llu, windows skipped %llu gathered %llu runs %llu "
            "full %llu\n", (unsigned long long) s_rows_read,
            (unsigned long long) s_paths[0], (unsigned long long) s_paths[1],
            (unsigned long long) s_paths[2], (unsigned long long) s_paths[3]);
    return nf_test_done("filter");
}
