/*  test_limits: the one table of limits.

    - proto/README.md's "Limits" table (found through NFLOW_SOURCE_ROOT)
      lists exactly the limits of lib/core/nf_limits.h, with their values;
    - a flow file nested 100,000 levels deep is refused while parsing, with
      file:line:col, in well under a second (libyaml's cost grows with the
      square of the depth: it took over 20 s before);
    - a scan looks at its stop flag between windows (SIGTERM during a long
      scan: the pod exits by itself). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nf_error.h"
#include "nf_flow.h"
#include "nf_limits.h"
#include "nf_scan.h"
#include "nf_segment.h"
#include "nf_sys.h"
#include "nf_test.h"

static const struct {
    const char *name;
    unsigned long long value;
} s_table[] = {
    {"NF_ID_MAX", NF_ID_MAX},
    {"NF_DIM_MAX", NF_DIM_MAX},
    {"NF_TOPK_MAX", NF_TOPK_MAX},
    {"NF_TOPK_DEFAULT", NF_TOPK_DEFAULT},
    {"NF_TEXT_MAX", NF_TEXT_MAX},
    {"NF_TAGS_MAX", NF_TAGS_MAX},
    {"NF_TAG_BYTES_MAX", NF_TAG_BYTES_MAX},
    {"NF_FRAME_TAGS_MAX", NF_FRAME_TAGS_MAX},
    {"NF_DOCS_MAX", NF_DOCS_MAX},
    {"NF_QUERIES_MAX", NF_QUERIES_MAX},
    {"NF_MATCHES_MAX", NF_MATCHES_MAX},
    {"NF_SHARDS_MAX", NF_SHARDS_MAX},
    {"NF_HOPS_MAX", NF_HOPS_MAX},
    {"NF_FRAME_MAX", NF_FRAME_MAX},
    {"NF_HEADER_MAX", NF_HEADER_MAX},
    {"NF_ANSWER_MAX", NF_ANSWER_MAX},
    {"NF_YAML_DEPTH_MAX", NF_YAML_DEPTH_MAX},
    {"NF_FIELDS_MAX", NF_FIELDS_MAX},
    {"NF_FIELD_NAME_MAX", NF_FIELD_NAME_MAX},
    {"NF_KEYWORD_MAX", NF_KEYWORD_MAX},
    {"NF_KEYWORDS_MAX", NF_KEYWORDS_MAX},
    {"NF_FILTER_BYTES_MAX", NF_FILTER_BYTES_MAX},
    {"NF_FILTER_DEPTH_MAX", NF_FILTER_DEPTH_MAX},
    {"NF_FILTER_LIST_MAX", NF_FILTER_LIST_MAX},
};
#define S_N (sizeof s_table / sizeof s_table[0])

/* Every row "| `NF_X` | VALUE | ..." of proto/README.md's "## Limits"
   section matches the header, and every limit has a row. */
static void
test_readme_table(void)
{
    const char *root = getenv("NFLOW_SOURCE_ROOT");
    char path[4096];
    snprintf(path, sizeof path, "%s/proto/README.md", root ? root : "..");
    FILE *f = fopen(path, "r");
    CHECK(f != NULL);
    if (!f) {
        fprintf(stderr, "cannot open %s (set NFLOW_SOURCE_ROOT)\n", path);
        return;
    }
    bool seen[S_N] = {0};
    bool in = false;
    int rows = 0;
    char line[1024];
    while (fgets(line, sizeof line, f)) {
        if (!strncmp(line, "## ", 3)) {
            in = !strncmp(line, "## Limits", 9);
            continue;
        }
        char name[64];
        unsigned long long value;
        if (!in || sscanf(line, "| `%63[A-Z_]` | %llu |", name, &value) != 2)
            continue;
        rows++;
        size_t i;
        for (i = 0; i < S_N; i++)
            if (!strcmp(s_table[i].name, name))
                break;
        if (i == S_N) {
            fprintf(stderr, "proto/README.md lists %s, which nf_limits.h does not have\n", name);
            CHECK(i < S_N);
            continue;
        }
        if (s_table[i].value != value)
            fprintf(stderr, "proto/README.md: %s is %llu, nf_limits.h says %llu\n", name, value,
                    s_table[i].value);
        CHECK(s_table[i].value == value);
        CHECK(!seen[i]);
        seen[i] = true;
    }
    fclose(f);
    for (size_t i = 0; i < S_N; i++) {
        if (!seen[i])
            fprintf(stderr, "proto/README.md's Limits table has no row for %s\n", s_table[i].name);
        CHECK(seen[i]);
    }
    CHECK(rows == (int) S_N);
}

/* A YAML file nested 100,000 levels deep is refused early, naming where. */
static void
test_yaml_depth(void)
{
    size_t depth = 100000;
    char *yaml = malloc(2 * depth + 64);
    size_t n = (size_t) sprintf(yaml, "version: 1\nname: deep\nx: ");
    for (size_t i = 0; i < depth; i++)
        yaml[n++] = '[';
    for (size_t i = 0; i < depth; i++)
        yaml[n++] = ']';
    yaml[n++] = '\n';
    yaml[n] = 0;
    nf_flow_t *flow = NULL;
    uint64_t t0 = nf_now_us();
    int rc = nf_flow_load_string("deep.yml", yaml, &flow);
    uint64_t us = nf_now_us() - t0;
    CHECK(rc == NF_EPARSE && flow == NULL);
    CHECK(strstr(nf_error_msg(), "deep.yml:3:") != NULL);
    CHECK(strstr(nf_error_msg(), "NF_YAML_DEPTH_MAX") != NULL);
    printf("  100,000 levels refused in %.1f ms: %s\n", (double) us / 1000.0, nf_error_msg());
    CHECK(us < 1000000);
    /* exactly the limit is fine for the parser (the flow grammar then says what is wrong) */
    n = (size_t) sprintf(yaml, "version: 1\nname: deep\nx: ");
    for (size_t i = 0; i < NF_YAML_DEPTH_MAX - 1; i++)
        yaml[n++] = '[';
    for (size_t i = 0; i < NF_YAML_DEPTH_MAX - 1; i++)
        yaml[n++] = ']';
    yaml[n] = 0;
    rc = nf_flow_load_string("ok.yml", yaml, &flow);
    CHECK(rc != 0 && strstr(nf_error_msg(), "NF_YAML_DEPTH_MAX") == NULL);
    nf_flow_destroy(&flow);
    free(yaml);
}

/* A scan whose stop flag is set ends between windows with NF_ETIMEOUT;
   with the flag clear it finds the answer. */
static void
test_scan_stop(void)
{
    char *dir = nf_test_tmpdir();
    nf_segment_t *seg = NULL;
    CHECK_OK(nf_segment_create(dir, 4, NF_METRIC_L2, &seg));
    if (!seg) {
        free(dir);
        return;
    }
    enum { N = 4096 };
    static float vecs[N * 4];
    static char idbuf[N][16];
    static nf_doc_t docs[N];
    for (int i = 0; i < N; i++) {
        for (int j = 0; j < 4; j++)
            vecs[i * 4 + j] = (float) (i + j);
        snprintf(idbuf[i], sizeof idbuf[i], "d%d", i);
        docs[i] = (nf_doc_t){.id = idbuf[i], .vector = vecs + i * 4};
    }
    CHECK_OK(nf_segment_append(seg, docs, N));
    float q[4] = {5, 6, 7, 8};
    nf_hit_t hits[3];
    size_t counts[1];
    volatile int stop = 1;
    nf_scan_opts_t opts = {.threads = 1, .window_rows = 64, .stop = &stop};
    CHECK(nf_scan_search(seg, q, 1, 3, &opts, hits, counts) == NF_ETIMEOUT);
    CHECK(strstr(nf_error_msg(), "stopped") != NULL);
    stop = 0;
    CHECK_OK(nf_scan_search(seg, q, 1, 3, &opts, hits, counts));
    CHECK(counts[0] == 3 && hits[0].key == 5);
    nf_segment_destroy(&seg);
    nf_test_rmdir(dir);
    free(dir);
}

int
main(void)
{
    test_readme_table();
    test_yaml_depth();
    test_scan_stop();
    return nf_test_done("limits");
}
