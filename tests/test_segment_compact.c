/*  nf_segment_compact: rewriting a segment without its deleted rows.

    - after a compaction the segment holds exactly the live rows (same ids,
      vectors, payloads and field values), no deleted row, and verifies;
    - crash safety: a child process compacts and is killed with SIGKILL at a
      random instant (bounded rounds, the instants spread over the time one
      compaction takes); after every kill the directory opens as a whole
      segment -- the old or the new one -- with every live id and its
      latest field value, and passes nf_segment_verify. */
#include "nf_error.h"
#include "nf_segment.h"
#include "nf_sys.h"
#include "nf_test.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define N 20000
#define DIM 16
#define ROUNDS 16

static uint64_t s_rng = 7;
static int64_t s_year[N];
static bool s_gone[N];

static void
s_upsert(const char *dir, int from, int n, bool fresh)
{
    nf_segment_t *seg = NULL;
    if (fresh) {
        CHECK_OK(nf_segment_create(dir, DIM, NF_METRIC_L2, &seg));
        nf_field_def_t d[2];
        CHECK_OK(nf_field_def_parse("year:int", &d[0]));
        CHECK_OK(nf_field_def_parse("kind:keyword", &d[1]));
        CHECK_OK(nf_segment_set_schema(seg, d, 2));
    } else {
        CHECK_OK(nf_segment_open(dir, NULL, &seg));
    }
    if (!seg)
        return;
    nf_doc_t *docs = calloc((size_t) n, sizeof *docs);
    nf_fields_t *fl = calloc((size_t) n, sizeof *fl);
    nf_fval_t *v = calloc((size_t) n * 2, sizeof *v);
    char (*ids)[16] = calloc((size_t) n, 16);
    float *vec = calloc((size_t) n * DIM, sizeof *vec);
    static const char *const kinds[] = {"a", "b", "c"};
    for (int i = 0; i < n; i++) {
        int r = fresh ? from + i : (int) (nf_test_rand(&s_rng) % N);
        while (s_gone[r])
            r = (r + 1) % N;
        snprintf(ids[i], 16, "d%d", r);
        s_year[r] = 1900 + (int64_t) (nf_test_rand(&s_rng) % 200);
        for (int j = 0; j < DIM; j++)
            vec[i * DIM + j] = (float) (r % 97) + (float) j;
        docs[i] = (nf_doc_t) {.id = ids[i], .vector = vec + i * DIM, .payload = ids[i],
                              .payload_len = strlen(ids[i])};
        v[2 * i] = (nf_fval_t) {.name = "year", .type = NF_FIELD_INT, .v.i = s_year[r]};
        v[2 * i + 1] = (nf_fval_t) {.name = "kind", .type = NF_FIELD_KEYWORD,
                                    .v.s = kinds[r % 3]};
        fl[i] = (nf_fields_t) {v + 2 * i, 2};
    }
    /* a batch may repeat an id: the last one wins, as s_year says */
    CHECK_OK(nf_segment_append_fields(seg, docs, fl, (size_t) n));
    nf_segment_destroy(&seg);
    free(docs);
    free(fl);
    free(v);
    free(ids);
    free(vec);
}

static void
s_check(const char *dir, uint64_t live)
{
    nf_segment_opts_t ro = {.readonly = true};
    nf_segment_t *seg = NULL;
    CHECK_OK(nf_segment_open(dir, &ro, &seg));
    if (!seg)
        return;
    CHECK(nf_segment_count(seg) == live);
    for (int i = 0; i < 200; i++) {
        int r = (int) (nf_test_rand(&s_rng) % N);
        char id[16], buf[64], want[32];
        snprintf(id, sizeof id, "d%d", r);
        uint64_t row;
        int rc = nf_segment_get(seg, id, &row);
        CHECK(s_gone[r] ? rc == NF_ENOTFOUND : rc == 0);
        if (rc)
            continue;
        nf_segment_value_json(seg, 0, row, buf, sizeof buf);
        snprintf(want, sizeof want, "%lld", (long long) s_year[r]);
        CHECK(!strcmp(buf, want));
        const float *x = nf_segment_vectors(seg, row, 1);
        CHECK(x && x[1] == (float) (r % 97) + 1.0f);
        size_t plen;
        const char *pl = nf_segment_payload(seg, row, &plen);
        CHECK(pl && plen == strlen(id) && !memcmp(pl, id, plen));
    }
    nf_segment_destroy(&seg);
    CHECK_OK(nf_segment_verify(dir, NULL));
}

int
main(void)
{
    char *top = nf_test_tmpdir();
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/seg", top);
    s_upsert(dir, 0, N, true);
    /* delete a third */
    nf_segment_t *seg = NULL;
    CHECK_OK(nf_segment_open(dir, NULL, &seg));
    static char idb[N][16];
    const char *del[N];
    size_t nd = 0;
    for (int r = 0; r < N; r += 3) {
        snprintf(idb[r], 16, "d%d", r);
        del[nd++] = idb[r];
        s_gone[r] = true;
    }
    CHECK_OK(nf_segment_delete(seg, del, nd, NULL));
    uint64_t live = nf_segment_count(seg);
    nf_segment_destroy(&seg);

    /* one whole compaction, timed */
    s_upsert(dir, 0, 500, false);
    uint64_t kept = 0, dropped = 0, t0 = nf_now_us();
    CHECK_OK(nf_segment_compact(dir, &kept, &dropped));
    uint64_t took = nf_now_us() - t0;
    CHECK(kept == live && dropped > 0);
    s_check(dir, live);
    CHECK_OK(nf_segment_open(dir, NULL, &seg));
    CHECK(seg && nf_segment_deleted(seg) == 0 && nf_segment_rows(seg) == live);
    nf_segment_destroy(&seg);

    /* killed at random instants */
    int old_seen = 0, new_seen = 0;
    for (int round = 0; round < ROUNDS; round++) {
        s_upsert(dir, 0, 300, false);
        uint64_t delay = nf_test_rand(&s_rng) % (took + took / 4 + 1);
        pid_t pid = fork();
        if (pid == 0) {
            int rc = nf_segment_compact(dir, NULL, NULL);
            _exit(rc ? 1 : 0);
        }
        CHECK(pid > 0);
        struct timespec ts = {(time_t) (delay / 1000000), (long) (delay % 1000000) * 1000};
        nanosleep(&ts, NULL);
        kill(pid, SIGKILL);
        int status = 0;
        waitpid(pid, &status, 0);
        CHECK(!WIFEXITED(status) || WEXITSTATUS(status) == 0);
        s_check(dir, live);
        CHECK_OK(nf_segment_open(dir, NULL, &seg));     /* a writer can take it again */
        if (seg && nf_segment_deleted(seg))
            old_seen++;
        else if (seg)
            new_seen++;
        nf_segment_destroy(&seg);
    }
    fprintf(stderr, "compaction %.1f ms; after the kills: old segment %d times, new %d\n",
            (double) took / 1e3, old_seen, new_seen);
    nf_test_rmdir(top);
    free(top);
    return nf_test_done("segment_compact");
}
