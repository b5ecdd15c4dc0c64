/* nf_vecio: every input format, default ids, tags, every input error (the
   message names file and line / record), the payload codec and the JSON
   result lines.  Reads as a usage example of the reader. */
#include "nf_error.h"
#include "nf_limits.h"
#include "nf_test.h"
#include "nf_results.h"
#include "nf_vecio.h"

#include <jansson.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char *s_dir;

/* Path of a file in the test directory (static buffer rotation). */
static const char *
s_path(const char *name)
{
    static char bufs[4][512];
    static int next;
    char *b = bufs[next++ % 4];
    snprintf(b, sizeof bufs[0], "%s/%s", s_dir, name);
    return b;
}

static const char *
s_write(const char *name, const void *data, size_t len)
{
    const char *path = s_path(name);
    FILE *f = fopen(path, "wb");
    if (!f)
        return path;
    if (len)
        fwrite(data, 1, len, f);
    fclose(f);
    return path;
}

static const char *
s_write_text(const char *name, const char *text)
{
    return s_write(name, text, strlen(text));
}

/* .fvecs of n records of dim d, value of (i, j) = i * 100 + j. */
static const char *
s_write_fvecs(const char *name, int n, int d)
{
    size_t rec = 4 + (size_t) d * 4;
    unsigned char *buf = malloc(rec * (size_t) n);
    for (int i = 0; i < n; i++) {
        int32_t dd = d;
        memcpy(buf + rec * i, &dd, 4);
        for (int j = 0; j < d; j++) {
            float v = (float) (i * 100 + j);
            memcpy(buf + rec * i + 4 + 4 * j, &v, 4);
        }
    }
    const char *p = s_write(name, buf, rec * (size_t) n);
    free(buf);
    return p;
}

/* Open path and read until the first error; returns that code (0 if none)
   and checks that the message contains want (when not NULL). */
static int
s_read_error(const char *path, nf_vecio_fmt_t fmt, uint32_t hint, bool require, const char *want)
{
    nf_vecio_t *r = NULL;
    int rc = nf_vecio_open(path, fmt, hint, &r);
    if (rc == 0) {
        nf_vecio_require_vectors(r, require);
        nf_vecio_batch_t b;
        for (int i = 0; i < 1000; i++) {
            rc = nf_vecio_next(r, 3, &b);
            if (rc || b.n == 0)
                break;
        }
        nf_vecio_destroy(&r);
    }
    CHECK(r == NULL);
    if (want) {
        bool ok = strstr(nf_error_msg(), want) != NULL;
        CHECK(ok);
        if (!ok)
            fprintf(stderr, "  message \"%s\" lacks \"%s\"\n", nf_error_msg(), want);
    }
    return rc;
}

static void
test_fvecs(void)
{
    const char *path = s_write_fvecs("a.fvecs", 5, 4);
    nf_vecio_t *r;
    CHECK_OK(nf_vecio_open(path, NF_VECIO_AUTO, 0, &r));
    CHECK(nf_vecio_fmt(r) == NF_VECIO_FVECS);
    CHECK(nf_vecio_dim(r) == 4);        /* known from the first header */
    uint64_t done, total;
    nf_vecio_progress(r, &done, &total);
    CHECK(done == 0 && total == 5 * 20);

    int seen = 0;
    nf_vecio_batch_t b;
    for (int round = 0; round < 10; round++) {
        CHECK_OK(nf_vecio_next(r, 2, &b));
        if (b.n == 0)
            break;
        CHECK(b.n <= 2 && b.dim == 4 && b.vectors != NULL);
        for (size_t i = 0; i < b.n; i++, seen++) {
            char id[16];
            snprintf(id, sizeof id, "%d", seen);
            CHECK(strcmp(b.docs[i].id, id) == 0);
            CHECK(b.docs[i].record == (uint64_t) seen);
            CHECK(b.docs[i].vector == b.vectors + i * 4);
            CHECK(b.docs[i].vector[3] == (float) (seen * 100 + 3));
            CHECK(b.docs[i].text == NULL && b.docs[i].ntags == 0);
        }
    }
    CHECK(seen == 5);
    nf_vecio_progress(r, &done, &total);
    CHECK(done == total);
    size_t cap = 1;
    CHECK(nf_vecio_take_vectors(r, &cap) == NULL && cap == 0);   /* the last batch was empty */
    CHECK_OK(nf_vecio_next(r, 2, &b));  /* stays at the end */
    CHECK(b.n == 0);
    nf_vecio_destroy(&r);
    CHECK(r == NULL);
    nf_vecio_destroy(&r);               /* harmless */
    nf_vecio_destroy(NULL);

    /* taking a batch's block: the caller owns it, the next batch is read
       into another, the rows stay as they were read */
    CHECK_OK(nf_vecio_open(path, NF_VECIO_AUTO, 0, &r));
    CHECK_OK(nf_vecio_next(r, 2, &b));
    float *taken = nf_vecio_take_vectors(r, &cap);
    CHECK(taken == b.vectors && cap >= 2 * 4 * sizeof(float));
    CHECK(nf_vecio_take_vectors(r, &cap) == NULL);                /* taken once */
    CHECK_OK(nf_vecio_next(r, 2, &b));
    CHECK(b.n == 2 && b.vectors && b.vectors != taken && b.docs[0].vector[3] == 203.0f);
    CHECK(taken && taken[3] == 3.0f && taken[7] == 103.0f);
    free(taken);
    nf_vecio_destroy(&r);

    /* the hint must match */
    CHECK(s_read_error(path, NF_VECIO_AUTO, 8, true, "vectors have dim 4, expected 8") == NF_EDIM);
    CHECK_OK(nf_vecio_open(path, NF_VECIO_FVECS, 4, &r));
    nf_vecio_destroy(&r);
}

static void
test_f32(void)
{
    float rows[4 * 3];
    for (int i = 0; i < 12; i++)
        rows[i] = (float) i * 0.5f;
    const char *path = s_write("b.f32", rows, sizeof rows);
    nf_vecio_t *r;
    CHECK(nf_vecio_open(path, NF_VECIO_AUTO, 0, &r) == NF_EINVAL);  /* dim required */
    CHECK(strstr(nf_error_msg(), "b.f32") != NULL);
    CHECK(s_read_error(path, NF_VECIO_AUTO, 5, true, "not a multiple of dim*4") == NF_EINVAL);
    CHECK_OK(nf_vecio_open(path, NF_VECIO_AUTO, 3, &r));
    nf_vecio_batch_t b;
    CHECK_OK(nf_vecio_next(r, 3, &b));
    CHECK(b.n == 3 && b.dim == 3 && b.vectors && b.vectors[8] == 4.0f);
    CHECK(strcmp(b.docs[2].id, "2") == 0);
    CHECK_OK(nf_vecio_next(r, 3, &b));
    CHECK(b.n == 1 && strcmp(b.docs[0].id, "3") == 0 && b.docs[0].vector[2] == 5.5f);
    CHECK_OK(nf_vecio_next(r, 3, &b));
    CHECK(b.n == 0);
    nf_vecio_destroy(&r);

    /* the same file read as raw f32 with another name, explicit format */
    path = s_write("b.bin", rows, sizeof rows);
    CHECK(nf_vecio_open(path, NF_VECIO_AUTO, 3, &r) == NF_EINVAL);
    CHECK(strstr(nf_error_msg(), "unknown file extension") != NULL);
    CHECK_OK(nf_vecio_open(path, NF_VECIO_F32, 6, &r));
    CHECK_OK(nf_vecio_next(r, 10, &b));
    CHECK(b.n == 2 && b.dim == 6);
    nf_vecio_destroy(&r);

    rows[7] = NAN;
    path = s_write("nan.f32", rows, sizeof rows);
    CHECK(s_read_error(path, NF_VECIO_AUTO, 3, true, "nan.f32: record 2 (byte 24): component 1 "
                                                     "is NaN") == NF_EINVAL);
}

static void
test_jsonl(void)
{
    const char *path = s_write_text(
        "docs.jsonl",
        "\xEF\xBB\xBF{\"id\": \"a\", \"vector\": [1, 2.5, -3], \"text\": \"hello\", "
        "\"tags\": {\"lang\": \"en\", \"n\": 7, \"x\": 0.1, \"ok\": true, \"no\": false}}\r\n"
        "\n"
        "   \n"
        "{\"vector\": [4, 5, 6]}\n"
        "{\"id\": 42, \"text\": \"no vector here\", \"extra\": [1, {\"ignored\": true}]}\n"
        "{\"id\": \"z\", \"vector\": [7, 8, 9], \"tags\": {}, \"text\": null}");
    nf_vecio_t *r;
    CHECK_OK(nf_vecio_open(path, NF_VECIO_AUTO, 0, &r));
    CHECK(nf_vecio_fmt(r) == NF_VECIO_JSONL);
    CHECK(nf_vecio_dim(r) == 0);        /* not known before the first vector */
    nf_vecio_batch_t b;
    CHECK_OK(nf_vecio_next(r, 2, &b));
    CHECK(b.n == 2 && b.dim == 3 && b.vectors != NULL);
    CHECK(strcmp(b.docs[0].id, "a") == 0 && b.docs[0].line == 1);
    CHECK(b.docs[0].vector[1] == 2.5f && b.docs[0].vector[2] == -3.0f);
    CHECK(b.docs[0].text && strcmp(b.docs[0].text, "hello") == 0);
    CHECK(b.docs[0].ntags == 5);
    if (b.docs[0].ntags == 5) {
        const nf_tag_t *t = b.docs[0].tags;
        CHECK(!strcmp(t[0].key, "lang") && !strcmp(t[0].value, "en"));
        CHECK(!strcmp(t[1].key, "n") && !strcmp(t[1].value, "7"));
        CHECK(!strcmp(t[2].key, "x") && !strcmp(t[2].value, "0.1"));
        CHECK(!strcmp(t[3].key, "ok") && !strcmp(t[3].value, "true"));
        CHECK(!strcmp(t[4].key, "no") && !strcmp(t[4].value, "false"));
    }
    CHECK(strcmp(b.docs[1].id, "1") == 0);      /* record number, blank lines skipped */
    CHECK(b.docs[1].line == 4 && b.docs[1].record == 1);
    CHECK(b.docs[1].vector == b.vectors + 3);

    CHECK_OK(nf_vecio_next(r, 10, &b));
    CHECK(b.n == 2 && b.vectors == NULL);       /* one doc has no vector */
    CHECK(strcmp(b.docs[0].id, "42") == 0 && b.docs[0].vector == NULL);
    CHECK(strcmp(b.docs[0].text, "no vector here") == 0);
    CHECK(strcmp(b.docs[1].id, "z") == 0 && b.docs[1].vector[0] == 7.0f);
    CHECK(b.docs[1].ntags == 0 && b.docs[1].text == NULL && b.docs[1].line == 6);
    CHECK_OK(nf_vecio_next(r, 10, &b));
    CHECK(b.n == 0);
    uint64_t done, total;
    nf_vecio_progress(r, &done, &total);
    CHECK(done == total && total > 0);
    nf_vecio_destroy(&r);

    /* requiring vectors turns the vector-less line into an error */
    CHECK(s_read_error(path, NF_VECIO_AUTO, 0, true, "docs.jsonl:5: document has no \"vector\"")
          == NF_EINVAL);
    /* a hint checks every vector */
    CHECK(s_read_error(path, NF_VECIO_JSONL, 128, false,
                       "docs.jsonl:1: vector has 3 values, expected 128") == NF_EDIM);

    /* text-only documents (for a flow with an encoder): no dim at all */
    path = s_write_text("texts.ndjson", "{\"text\": \"x\"}\n{\"id\": \"q\", \"text\": \"y\"}\n");
    CHECK_OK(nf_vecio_open(path, NF_VECIO_AUTO, 0, &r));
    CHECK_OK(nf_vecio_next(r, 8, &b));
    CHECK(b.n == 2 && b.dim == 0 && b.vectors == NULL && strcmp(b.docs[0].id, "0") == 0);
    nf_vecio_destroy(&r);

    /* the dim becomes known in the middle of a batch; numeric ids as text */
    path = s_write_text("mixed.jsonl", "{\"id\": 2.5, \"text\": \"x\"}\n"
                                       "{\"id\": -3, \"vector\": [1, 2]}\n"
                                       "{\"id\": 1e3, \"vector\": [3, 4]}\n");
    CHECK_OK(nf_vecio_open(path, NF_VECIO_AUTO, 0, &r));
    CHECK_OK(nf_vecio_next(r, 8, &b));
    CHECK(b.n == 3 && b.dim == 2 && b.vectors == NULL && nf_vecio_dim(r) == 2);
    CHECK(!strcmp(b.docs[0].id, "2.5") && b.docs[0].vector == NULL);
    CHECK(!strcmp(b.docs[1].id, "-3") && b.docs[1].vector[1] == 2.0f);
    CHECK(!strcmp(b.docs[2].id, "1000") && b.docs[2].vector[0] == 3.0f);
    nf_vecio_destroy(&r);
}

/* Many records over many batches: strings of an earlier batch are recycled
   but the current batch's stay intact. */
static void
test_many(void)
{
    const char *path = s_path("many.json");
    FILE *f = fopen(path, "w");
    for (int i = 0; i < 5000; i++)
        fprintf(f, "{\"id\": \"doc-%d\", \"text\": \"%0*d\", \"vector\": [%d, %d], "
                   "\"tags\": {\"i\": %d}}\n", i, 5 + i % 300, i, i, -i, i);
    fclose(f);
    nf_vecio_t *r;
    CHECK_OK(nf_vecio_open(path, NF_VECIO_AUTO, 2, &r));
    int seen = 0, bad = 0;
    nf_vecio_batch_t b;
    for (int round = 0; round < 100; round++) {
        CHECK_OK(nf_vecio_next(r, 777, &b));
        if (b.n == 0)
            break;
        for (size_t i = 0; i < b.n; i++, seen++) {
            char want[64];
            snprintf(want, sizeof want, "doc-%d", seen);
            bad += strcmp(b.docs[i].id, want) != 0;
            bad += strlen(b.docs[i].text) != (size_t) (5 + seen % 300);
            bad += atoi(b.docs[i].text) != seen;
            bad += b.vectors[i * 2 + 1] != (float) -seen;
            snprintf(want, sizeof want, "%d", seen);
            bad += b.docs[i].ntags != 1 || strcmp(b.docs[i].tags[0].value, want) != 0;
        }
    }
    CHECK(seen == 5000 && bad == 0);
    nf_vecio_destroy(&r);

    float *all;
    size_t n;
    uint32_t dim;
    CHECK_OK(nf_vecio_read_all(path, NF_VECIO_AUTO, 0, &all, &n, &dim));
    CHECK(n == 5000 && dim == 2 && all && all[2 * 4999] == 4999.0f);
    free(all);
    CHECK(nf_vecio_read_all(s_path("none.fvecs"), NF_VECIO_AUTO, 0, &all, &n, &dim)
          == NF_ENOTFOUND);
    CHECK(all == NULL && n == 0);
}

static void
test_jsonl_errors(void)
{
    static const struct {
        const char *content;
        int code;
        const char *want;
    } cases[] = {
        {"{\"id\": \"a\"}\n{\"id\": \"b\",, }\n", NF_EPARSE, "e.jsonl:2:12: bad JSON"},
        {"{\"id\": \"a\"}\n\n{\"id\": \"a\" \"b\"}\n", NF_EPARSE, "e.jsonl:3:"},
        {"{\"id\": \"a\", \"id\": \"b\"}\n", NF_EPARSE, "duplicate"},
        {"[1, 2]\n", NF_EINVAL, "e.jsonl:1: expected a JSON object, got array"},
        {"{\"id\": [1]}\n", NF_EINVAL, "e.jsonl:1: id must be a string or a number, got array"},
        {"{\"id\": null}\n", NF_EINVAL, "id must be a string or a number, got null"},
        {"{\"id\": \"\"}\n", NF_EINVAL, "e.jsonl:1: id is empty"},
        {"{\"vector\": \"1,2\"}\n", NF_EINVAL, "e.jsonl:1: vector must be an array of numbers"},
        {"{\"vector\": [1, \"2\"]}\n", NF_EINVAL, "e.jsonl:1: vector[1] must be a number"},
        {"{\"vector\": []}\n", NF_EINVAL, "e.jsonl:1: vector is empty"},
        {"{\"vector\": [1, 2, 3, 4]}\n{\"vector\": [1, 2, 3]}\n", NF_EDIM,
         "e.jsonl:2: vector has 3 values, expected 4"},
        {"{\"vector\": [1, 1e39]}\n", NF_EINVAL, "e.jsonl:1: vector[1] = 1e+39 is not a finite"},
        {"{\"vector\": [1, 1e999]}\n", NF_EPARSE, "e.jsonl:1:"},
        {"{\"tags\": [\"a\"]}\n", NF_EINVAL, "e.jsonl:1: tags must be an object, got array"},
        {"{\"tags\": {\"ok\": 1, \"deep\": {\"x\": 1}}}\n", NF_EINVAL,
         "e.jsonl:1: tags.deep: value is object"},
        {"{\"tags\": {\"none\": null}}\n", NF_EINVAL, "tags.none: value is null"},
        {"{\"text\": 5}\n", NF_EINVAL, "e.jsonl:1: text must be a string, got integer"},
        {"\n\n  \n", NF_EINVAL, "e.jsonl: no documents"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *path = s_write_text("e.jsonl", cases[i].content);
        int rc = s_read_error(path, NF_VECIO_AUTO, 0, false, cases[i].want);
        CHECK(rc == cases[i].code);
        if (rc != cases[i].code)
            fprintf(stderr, "  case %zu: got %d, want %d\n", i, rc, cases[i].code);
    }

    /* id longer than NF_ID_MAX; exactly NF_ID_MAX is fine */
    char line[NF_ID_MAX + 64];
    snprintf(line, sizeof line, "{\"id\": \"%0*d\"}\n", NF_ID_MAX + 1, 7);
    CHECK(s_read_error(s_write_text("long.jsonl", line), NF_VECIO_AUTO, 0, false,
                       "long.jsonl:1: id is 257 bytes long") == NF_EINVAL);
    snprintf(line, sizeof line, "{\"id\": \"%0*d\"}\n", NF_ID_MAX, 7);
    CHECK(s_read_error(s_write_text("long.jsonl", line), NF_VECIO_AUTO, 0, false, NULL) == 0);

    /* the error is sticky: the reader does not skip the bad line */
    const char *path = s_write_text("sticky.jsonl", "{\"id\": 1}\n{bad\n{\"id\": 3}\n");
    nf_vecio_t *r;
    nf_vecio_batch_t b;
    CHECK_OK(nf_vecio_open(path, NF_VECIO_AUTO, 0, &r));
    CHECK(nf_vecio_next(r, 10, &b) == NF_EPARSE && b.n == 0);
    CHECK(nf_vecio_next(r, 10, &b) == NF_EPARSE);
    CHECK(strstr(nf_error_msg(), "sticky.jsonl:2:") != NULL);
    nf_vecio_destroy(&r);
}

/* Skip mode (what `nflow index` uses): each bad line is reported with its
   line, its id when it was read, and why; the good ones around it are
   read; at most max rejects per call. */
static void
test_skip_bad(void)
{
    const char *path = s_write_text("skip.jsonl",
        "{\"id\": \"a\", \"vector\": [1, 2]}\n"
        "{bad\n"
        "{\"id\": \"short\", \"vector\": [1]}\n"
        "[1, 2]\n"
        "{\"id\": \"b\", \"vector\": [3, 4], \"tags\": {\"k\": [1]}}\n"
        "{\"id\": \"c\", \"vector\": [5, 6]}\n");
    nf_vecio_t *r;
    nf_vecio_batch_t b;
    CHECK_OK(nf_vecio_open(path, NF_VECIO_AUTO, 0, &r));
    nf_vecio_skip_bad(r, true);
    CHECK_OK(nf_vecio_next(r, 10, &b));
    CHECK(b.n == 2 && !strcmp(b.docs[0].id, "a") && !strcmp(b.docs[1].id, "c"));
    CHECK(b.docs[1].line == 6 && b.docs[1].vector && b.docs[1].vector[1] == 6.0f);
    CHECK(b.nrejects == 4);
    if (b.nrejects == 4) {
        CHECK(b.rejects[0].line == 2 && b.rejects[0].id == NULL
              && strstr(b.rejects[0].why, "skip.jsonl:2:") && strstr(b.rejects[0].why, "bad JSON"));
        CHECK(b.rejects[1].line == 3 && b.rejects[1].id && !strcmp(b.rejects[1].id, "short")
              && strstr(b.rejects[1].why, "vector has 1 values, expected 2"));
        CHECK(b.rejects[2].line == 4 && strstr(b.rejects[2].why, "expected a JSON object"));
        CHECK(b.rejects[3].line == 5 && !strcmp(b.rejects[3].id, "b")
              && strstr(b.rejects[3].why, "tags.k"));
    }
    CHECK_OK(nf_vecio_next(r, 10, &b));
    CHECK(b.n == 0 && b.nrejects == 0);         /* the end */
    nf_vecio_destroy(&r);

    /* at most max rejects per call, then the next call goes on */
    path = s_write_text("allbad.jsonl", "{x\n{y\n{z\n{\"id\": \"ok\"}\n");
    CHECK_OK(nf_vecio_open(path, NF_VECIO_AUTO, 0, &r));
    nf_vecio_skip_bad(r, true);
    CHECK_OK(nf_vecio_next(r, 2, &b));
    CHECK(b.n == 0 && b.nrejects == 2);
    CHECK_OK(nf_vecio_next(r, 2, &b));
    CHECK(b.n == 1 && b.nrejects == 1 && !strcmp(b.docs[0].id, "ok"));
    nf_vecio_destroy(&r);
}

static void
test_file_errors(void)
{
    nf_vecio_t *r = NULL;
    CHECK(nf_vecio_open(s_path("missing.jsonl"), NF_VECIO_AUTO, 0, &r) == NF_ENOTFOUND);
    CHECK(r == NULL && strstr(nf_error_msg(), "missing.jsonl") != NULL);
    CHECK(nf_vecio_open(s_write("empty.fvecs", "", 0), NF_VECIO_AUTO, 0, &r) == NF_EINVAL);
    CHECK(strstr(nf_error_msg(), "empty.fvecs: empty file") != NULL);
    CHECK(nf_vecio_open(s_write("empty.jsonl", "", 0), NF_VECIO_AUTO, 0, &r) == NF_EINVAL);
    mkdir(s_path("dir.jsonl"), 0700);
    CHECK(nf_vecio_open(s_path("dir.jsonl"), NF_VECIO_AUTO, 0, &r) == NF_EINVAL);
    CHECK(strstr(nf_error_msg(), "is a directory") != NULL);

    /* .fvecs: truncated header, truncated body, bad dim, dim change, NaN/Inf */
    CHECK(s_read_error(s_write("t.fvecs", "\x04\x00", 2), NF_VECIO_AUTO, 0, true,
                       "t.fvecs: record 0 (byte 0): truncated") == NF_ECORRUPT);
    int32_t neg = -5;
    CHECK(s_read_error(s_write("neg.fvecs", &neg, 4), NF_VECIO_AUTO, 0, true,
                       "neg.fvecs: record 0 (byte 0): dim -5 out of range") == NF_EFORMAT);
    const char *path = s_write_fvecs("cut.fvecs", 3, 4);
    truncate(path, 3 * 20 - 6);
    CHECK(s_read_error(path, NF_VECIO_AUTO, 0, true,
                       "cut.fvecs: record 2 (byte 40): truncated: 14 of 20 bytes") == NF_ECORRUPT);
    truncate(path, 2 * 20 + 3);
    CHECK(s_read_error(path, NF_VECIO_AUTO, 0, true,
                       "cut.fvecs: record 2 (byte 40): truncated: 3 of 20 bytes") == NF_ECORRUPT);

    unsigned char buf[3 * 20];
    int32_t d4 = 4, d3 = 3;
    float v[4] = {1, 2, 3, 4};
    for (int i = 0; i < 3; i++) {
        memcpy(buf + 20 * i, &d4, 4);
        memcpy(buf + 20 * i + 4, v, 16);
    }
    memcpy(buf + 20, &d3, 4);
    CHECK(s_read_error(s_write("dims.fvecs", buf, sizeof buf), NF_VECIO_AUTO, 0, true,
                       "dims.fvecs: record 1 (byte 20): dim 3, expected 4") == NF_EDIM);
    memcpy(buf + 20, &d4, 4);
    float inf = INFINITY;
    memcpy(buf + 40 + 4 + 8, &inf, 4);
    CHECK(s_read_error(s_write("inf.fvecs", buf, sizeof buf), NF_VECIO_AUTO, 0, true,
                       "inf.fvecs: record 2 (byte 40): component 2 is Inf") == NF_EINVAL);
}

static void
test_formats(void)
{
    nf_vecio_fmt_t fmt;
    CHECK(nf_vecio_fmt_guess("x/y.FVECS") == NF_VECIO_FVECS);
    CHECK(nf_vecio_fmt_guess("y.f32") == NF_VECIO_F32);
    CHECK(nf_vecio_fmt_guess("a.b/y.ndjson") == NF_VECIO_JSONL);
    CHECK(nf_vecio_fmt_guess("a.jsonl/y") == NF_VECIO_AUTO);
    CHECK(nf_vecio_fmt_guess("y.txt") == NF_VECIO_AUTO);
    CHECK(nf_vecio_fmt_guess("y.auto") == NF_VECIO_AUTO);
    CHECK_OK(nf_vecio_fmt_parse("json", &fmt));
    CHECK(fmt == NF_VECIO_JSONL);
    CHECK(nf_vecio_fmt_parse("csv", &fmt) == NF_EINVAL);
    CHECK(strstr(nf_error_msg(), "csv") != NULL);
}

static void
test_payload(void)
{
    uint8_t *buf;
    size_t len;
    nf_payload_t p = {0};
    CHECK_OK(nf_payload_encode(NULL, NULL, 0, &buf, &len));
    CHECK(buf == NULL && len == 0);
    CHECK_OK(nf_payload_decode(buf, len, &p));
    CHECK(strcmp(p.text, "") == 0 && p.ntags == 0);
    nf_payload_clear(&p);

    nf_tag_t tags[] = {{"lang", "en"}, {"empty", ""}, {"ütf", "✓"}};
    CHECK_OK(nf_payload_encode("a text", tags, 3, &buf, &len));
    CHECK(buf != NULL && len > 6);
    CHECK_OK(nf_payload_decode(buf, len, &p));
    CHECK(strcmp(p.text, "a text") == 0 && p.ntags == 3);
    for (size_t i = 0; i < p.ntags && i < 3; i++)
        CHECK(!strcmp(p.tags[i].key, tags[i].key) && !strcmp(p.tags[i].value, tags[i].value));
    nf_payload_clear(&p);
    nf_payload_clear(&p);       /* harmless */
    CHECK(p.ntags == 0 && p.tags == NULL);

    /* the bytes are a plain nflow.Payload: tags without text also encode */
    free(buf);
    CHECK_OK(nf_payload_encode("", tags, 1, &buf, &len));
    CHECK_OK(nf_payload_decode(buf, len, &p));
    CHECK(strcmp(p.text, "") == 0 && p.ntags == 1);
    nf_payload_clear(&p);
    free(buf);

    const uint8_t garbage[] = {0x0a, 0x7f, 'x'};        /* string field longer than the data */
    CHECK(nf_payload_decode(garbage, sizeof garbage, &p) == NF_ECORRUPT);
    CHECK(strstr(nf_error_msg(), "payload") != NULL);
    nf_payload_clear(&p);
}

static void
test_json(void)
{
    nf_tag_t tags[] = {{"lang", "en"}, {"n", "7"}};
    nf_match_t m[] = {
        {.id = "a", .score = 0.123456789f, .text = "hello \"x\"", .tags = tags, .ntags = 2},
        {.id = "b", .score = 2.0f},
        {.id = "c", .score = -1e-7f, .text = ""},
    };
    json_t *obj = nf_results_json(3, m, 3);
    CHECK(obj != NULL);
    json_object_set_new(obj, "partial", json_false());
    char *text = NULL;
    size_t size = 0;
    FILE *out = open_memstream(&text, &size);
    CHECK_OK(nf_results_write(out, obj));
    fclose(out);
    json_decref(obj);
    CHECK(text && size > 0 && text[size - 1] == '\n');
    CHECK(strchr(text, '\n') == text + size - 1);       /* one line */
    /* read it back: floats round-trip, optional fields only when present */
    json_error_t err;
    json_t *back = json_loads(text, 0, &err);
    CHECK(back != NULL);
    if (back) {
        CHECK(json_integer_value(json_object_get(back, "query")) == 3);
        CHECK(json_is_false(json_object_get(back, "partial")));
        json_t *ms = json_object_get(back, "matches");
        CHECK(json_array_size(ms) == 3);
        json_t *m0 = json_array_get(ms, 0), *m1 = json_array_get(ms, 1);
        json_t *m2 = json_array_get(ms, 2);
        CHECK(!strcmp(json_string_value(json_object_get(m0, "id")), "a"));
        CHECK((float) json_number_value(json_object_get(m0, "score")) == 0.123456789f);
        CHECK(!strcmp(json_string_value(json_object_get(m0, "text")), "hello \"x\""));
        CHECK(!strcmp(json_string_value(json_object_get(json_object_get(m0, "tags"), "n")), "7"));
        CHECK(json_number_value(json_object_get(m1, "score")) == 2.0);
        CHECK(json_object_get(m1, "text") == NULL && json_object_get(m1, "tags") == NULL);
        CHECK((float) json_number_value(json_object_get(m2, "score")) == -1e-7f);
        CHECK(json_object_get(m2, "text") == NULL);
        json_decref(back);
    }
    free(text);

    obj = nf_results_json(0, NULL, 0);
    CHECK(obj && json_array_size(json_object_get(obj, "matches")) == 0);
    json_decref(obj);

    /* invalid UTF-8 from a foreign payload still gives valid JSON */
    nf_match_t bad = {.id = "x", .score = 1, .text = "caf\xe9"};
    obj = nf_results_json(0, &bad, 1);
    CHECK(obj != NULL);
    json_decref(obj);
}

/* Typed fields from top-level JSONL keys: values, nulls, and a value of the
   wrong type naming file:line, the id and the field. */
static void
test_fields(void)
{
    nf_field_def_t d[6];
    CHECK_OK(nf_field_def_parse("year:int", &d[0]));
    CHECK_OK(nf_field_def_parse("price:float", &d[1]));
    CHECK_OK(nf_field_def_parse("ok:bool", &d[2]));
    CHECK_OK(nf_field_def_parse("genre:keyword", &d[3]));
    CHECK_OK(nf_field_def_parse("labels:keyword[]", &d[4]));
    CHECK_OK(nf_field_def_parse("when:datetime", &d[5]));
    const char *path = s_write_text("f.jsonl",
        "{\"id\": \"a\", \"year\": 2001, \"price\": 2, \"ok\": true, \"genre\": \"scifi\", "
        "\"labels\": [\"x\", \"y\"], \"when\": \"2001-02-03T04:05:06Z\"}\n"
        "{\"id\": \"b\", \"year\": null}\n"
        "{\"id\": \"c\", \"year\": \"2001\"}\n"
        "{\"id\": \"d\", \"labels\": [\"x\", 3]}\n"
        "{\"id\": \"e\", \"when\": \"yesterday\"}\n");
    nf_vecio_t *r = NULL;
    CHECK_OK(nf_vecio_open(path, NF_VECIO_AUTO, 0, &r));
    if (!r)
        return;
    CHECK_OK(nf_vecio_set_fields(r, d, 6));
    nf_vecio_skip_bad(r, true);
    nf_vecio_batch_t b;
    CHECK_OK(nf_vecio_next(r, 10, &b));
    CHECK(b.n == 2 && b.nrejects == 3);
    if (b.n == 2) {
        const nf_fields_t *f = &b.docs[0].fields;
        CHECK(f->n == 6);
        CHECK(f->n == 6 && f->v[0].type == NF_FIELD_INT && f->v[0].v.i == 2001);
        CHECK(f->n == 6 && f->v[1].v.f == 2.0 && f->v[2].v.b);
        CHECK(f->n == 6 && !strcmp(f->v[3].v.s, "scifi") && f->v[4].v.set.n == 2);
        CHECK(f->n == 6 && f->v[5].type == NF_FIELD_DATETIME && f->v[5].v.i == 981173106000000ll);
        CHECK(b.docs[1].fields.n == 0);         /* null and missing */
    }
    if (b.nrejects == 3) {
        CHECK(strstr(b.rejects[0].why, "f.jsonl:3: id \"c\": field 'year' is an int field; "
                                        "got a string") != NULL);
        CHECK(strstr(b.rejects[1].why, "f.jsonl:4: id \"d\": field 'labels'") != NULL);
        CHECK(strstr(b.rejects[2].why, "f.jsonl:5: id \"e\": field 'when'") != NULL);
    }
    nf_vecio_destroy(&r);
}

int
main(void)
{
    s_dir = nf_test_tmpdir();
    test_fields();
    test_formats();
    test_fvecs();
    test_f32();
    test_jsonl();
    test_many();
    test_jsonl_errors();
    test_file_errors();
    test_skip_bad();
    test_payload();
    test_json();
    nf_test_rmdir(s_dir);
    free(s_dir);
    return nf_test_done("vecio");
}
