/* nf_segment crash safety: a child process opens the segment and runs a
   deterministic stream of appends (with upserts and in-batch duplicates)
   and deletes, writing to a pipe the number of every operation that has
   returned.  The parent SIGKILLs it after a random 1..30 ms, reopens the
   segment READ-ONLY first (nothing repaired for it) and then writable, and
   checks both times that it holds exactly the acknowledged operations,
   plus possibly the one in flight, whole (an upsert with the delete of the
   row it replaces, a delete with all its ids), byte for byte: no id is
   live twice, no acknowledged delete is undone, every acknowledged row is
   there, and the typed field columns (an int, a keyword[] with its
   dictionary) hold each row's values; then starts the next child where the
   segment stands.

   Built three times: DIM 8, and DIM 2048 (segment_crash_wide: 8 KiB rows,
   so the appends fill 2 MiB blocks of vectors and the kills also land in a
   commit's rewrite of the block it completed), and PIPELINED
   (segment_crash_pipe: appends through nf_segment_append_start, an
   operation acknowledged only once a later call said it is durable, so a
   kill also lands while batches are synced by the handle's thread and the
   next is being written; up to NF_SEGMENT_PIPE_DEPTH + 1 operations past the acknowledged
   ones may then be found committed, in order).

   Reproduce a run with NFLOW_CRASH_SEED=N (the kill times still vary). */
#include "nf_error.h"
#include "nf_segment.h"
#include "nf_sys.h"
#include "nf_test.h"

#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef DIM                /* segment_crash_wide: 2048, so appends fill 2 MiB blocks */
#define DIM 8
#endif
#ifndef PIPELINED           /* segment_crash_pipe: 1, appends by nf_segment_append_start */
#define PIPELINED 0
#endif
#define POOL 300            /* distinct ids, so upserts are frequent */
#define BATCH_MAX 12
#define DEL_MAX 4
#define PL_MAX 40
#define ROUNDS 150
#define BUDGET_US (25u * 1000000u)

static uint64_t s_seed;

/* Operation k of the stream: an append of n docs (ids drawn from the pool)
   or a delete of n pool ids. */
typedef struct {
    bool is_delete;
    int n;
    int pool[BATCH_MAX];
} s_op_t;

static s_op_t
s_op(uint64_t k)
{
    uint64_t st = s_seed ^ (k * 0xd1b54a32d192ed03ull);
    s_op_t op;
    op.is_delete = nf_test_rand(&st) % 10 >= 7;
    op.n = 1 + (int) (nf_test_rand(&st) % (op.is_delete ? DEL_MAX : BATCH_MAX));
    for (int i = 0; i < op.n; i++)
        op.pool[i] = (int) (nf_test_rand(&st) % POOL);
    return op;
}

static void
s_id(int pool, char *buf)
{
    int n = sprintf(buf, "c-%d-", pool);
    memset(buf + n, 'x', (size_t) (pool % 7) * 10);
    buf[n + (pool % 7) * 10] = '\0';
}

/* Content of doc i of operation k. */
static void
s_content(uint64_t k, int i, float *v, unsigned char *pl, size_t *plen)
{
    uint64_t st = s_seed + k * 131 + (uint64_t) i;
    for (int c = 0; c < DIM; c++)
        v[c] = (float) ((int64_t) (nf_test_rand(&st) % 2001) - 1000) / 100.0f;
    *plen = nf_test_rand(&st) % (PL_MAX + 1);
    if (*plen % 4 == 0)
        *plen = 0;
    for (size_t j = 0; j < *plen; j++)
        pl[j] = (unsigned char) nf_test_rand(&st);
}

/* Typed fields of doc i of operation k (the columns share the commit):
   n (int, null for one doc in five) and kw (keyword[], 0..3 of p q r s,
   null for one in seven). */
static const char *const s_kws[] = {"p", "q", "r", "s"};

static size_t
s_fields(uint64_t k, int i, nf_fval_t *v, const char **set)
{
    size_t n = 0;
    uint64_t h = k * 7 + (uint64_t) i;
    if (h % 5)
        v[n++] = (nf_fval_t) {.name = "n", .type = NF_FIELD_INT, .v.i = (int64_t) (k * 100) + i};
    if (h % 7) {
        size_t m = 0;
        for (int j = 0; j < 4; j++)
            if ((h >> j) & 1)
                set[m++] = s_kws[j];
        v[n++] = (nf_fval_t) {.name = "kw", .type = NF_FIELD_KEYWORDS, .v.set = {set, m}};
    }
    return n;
}

static int
s_run_op(nf_segment_t *seg, uint64_t k)
{
    nf_fval_t fv[BATCH_MAX][2];
    const char *sets[BATCH_MAX][4];
    nf_fields_t fl[BATCH_MAX];
    s_op_t op = s_op(k);
    char ids[BATCH_MAX][NF_ID_MAX + 1];
    const char *idp[BATCH_MAX];
    float v[BATCH_MAX][DIM];
    unsigned char pl[BATCH_MAX][PL_MAX];
    nf_doc_t docs[BATCH_MAX];
    for (int i = 0; i < op.n; i++) {
        s_id(op.pool[i], ids[i]);
        idp[i] = ids[i];
        s_content(k, i, v[i], pl[i], &docs[i].payload_len);
        docs[i].id = ids[i];
        docs[i].vector = v[i];
        docs[i].payload = pl[i];
        fl[i].v = fv[i];
        fl[i].n = s_fields(k, i, fv[i], sets[i]);
    }
    if (op.is_delete)
        return nf_segment_delete(seg, idp, (size_t) op.n, NULL);
    if (PIPELINED)
        return nf_segment_append_start(seg, docs, fl, (size_t) op.n);
    return nf_segment_append_fields(seg, docs, fl, (size_t) op.n);
}

static void
s_ack(int fd, uint64_t k)
{
    if (write(fd, &k, sizeof k) != (ssize_t) sizeof k)
        _exit(4);
}

static void __attribute__((noreturn))
s_child(const char *dir, uint64_t first, int fd)
{
    nf_segment_t *seg = NULL;
    int rc = nf_segment_open(dir, NULL, &seg);
    if (rc) {
        fprintf(stderr, "child: open: %s\n", nf_error_msg());
        _exit(3);
    }
    /* pipelined: the appends started last, durable only once a later
       append has returned NF_SEGMENT_PIPE_DEPTH calls on, or any delete
       (it waits for all) */
    uint64_t pending[NF_SEGMENT_PIPE_DEPTH], npending = 0;
    for (uint64_t k = first;; k++) {
        if ((rc = s_run_op(seg, k))) {
            fprintf(stderr, "child: op %llu: %s\n", (unsigned long long) k, nf_error_msg());
            _exit(2);
        }
        bool pipe = PIPELINED && !s_op(k).is_delete;
        /* all but the NF_SEGMENT_PIPE_DEPTH - 1 before k */
        while (npending > (pipe ? NF_SEGMENT_PIPE_DEPTH - 1u : 0u)) {
            s_ack(fd, pending[0]);
            memmove(pending, pending + 1, --npending * sizeof *pending);
        }
        if (pipe)
            pending[npending++] = k;
        else
            s_ack(fd, k);
    }
}

/* What the segment must hold: rows (operation and position that wrote
   each), tombstones, and the live row of each pool id. */
typedef struct {
    uint64_t rows, cap;
    uint64_t *src_op;
    int *src_i, *src_pool;
    bool *dead;
    int64_t live[POOL];
} s_model_t;

static void
s_model_apply(s_model_t *m, uint64_t k)
{
    s_op_t op = s_op(k);
    for (int i = 0; i < op.n; i++) {
        int p = op.pool[i];
        bool later = false;
        for (int j = i + 1; j < op.n && !op.is_delete; j++)
            later |= op.pool[j] == p;
        if (later)
            continue;               /* in-batch duplicate: the last one wins */
        if (m->live[p] >= 0)
            m->dead[m->live[p]] = true;
        m->live[p] = -1;
        if (op.is_delete)
            continue;
        if (m->rows == m->cap) {
            m->cap = m->cap ? m->cap * 2 : 1024;
            m->src_op = realloc(m->src_op, m->cap * sizeof *m->src_op);
            m->src_i = realloc(m->src_i, m->cap * sizeof *m->src_i);
            m->src_pool = realloc(m->src_pool, m->cap * sizeof *m->src_pool);
            m->dead = realloc(m->dead, m->cap * sizeof *m->dead);
        }
        m->src_op[m->rows] = k;
        m->src_i[m->rows] = i;
        m->src_pool[m->rows] = p;
        m->dead[m->rows] = false;
        m->live[p] = (int64_t) m->rows++;
    }
}

/* Compare the segment with the model, byte for byte; and check that no id
   is live twice (counted over the live rows, not through the id table). */
static void
s_verify(nf_segment_t *seg, const s_model_t *m)
{
    uint64_t dead = 0, bad = 0;
    int live_rows[POOL] = {0};
    CHECK(nf_segment_rows(seg) == m->rows);
    for (uint64_t r = 0; r < m->rows && r < nf_segment_rows(seg); r++) {
        float v[DIM];
        unsigned char pl[PL_MAX];
        size_t plen, len = 0, idlen = 0;
        char id[NF_ID_MAX + 1];
        s_content(m->src_op[r], m->src_i[r], v, pl, &plen);
        s_id(m->src_pool[r], id);
        const float *gv = nf_segment_vectors(seg, r, 1);
        float gnv;
        const float *gn = nf_segment_read_norms(seg, r, 1, &gnv) == 0 ? &gnv : NULL;
        const char *gid = nf_segment_id(seg, r, &idlen);
        const void *gpl = nf_segment_payload(seg, r, &len);
        double n2 = 0;
        for (int c = 0; c < DIM; c++)
            n2 += (double) v[c] * v[c];
        bool ok = gv && !memcmp(gv, v, sizeof v) && gn && fabs(*gn - n2) <= 1e-4 * (1 + n2)
                  && gid && !strcmp(gid, id) && gpl && len == plen && !memcmp(gpl, pl, plen);
        /* the field columns of the row */
        nf_fval_t fv[2];
        const char *set[4];
        size_t nfv = s_fields(m->src_op[r], m->src_i[r], fv, set);
        bool has_n = false, has_kw = false;
        for (size_t f = 0; f < nfv; f++) {
            nf_column_t c;
            if (!strcmp(fv[f].name, "n")) {
                has_n = true;
                ok &= nf_segment_column(seg, 0, r, 1, &c) == 0
                      && *(const int64_t *) c.val == fv[f].v.i;
            } else {
                has_kw = true;
                ok &= nf_segment_column(seg, 1, r, 1, &c) == 0 && !(c.end[0] & NF_KWS_NULL)
                      && c.end[0] - c.start == fv[f].v.set.n;
                for (size_t j = 0; ok && j < fv[f].v.set.n; j++) {
                    uint32_t kid = nf_segment_keyword_id(seg, 1, fv[f].v.set.v[j], 1);
                    bool found = false;
                    for (uint64_t q = c.start; q < c.end[0]; q++)
                        found |= c.ids[q] == kid;
                    ok &= kid && found;
                }
            }
        }
        nf_column_t cn, ck;
        ok &= nf_segment_column(seg, 0, r, 1, &cn) == 0 && nf_segment_column(seg, 1, r, 1, &ck) == 0;
        if (ok && !has_n)
            ok = *(const int64_t *) cn.val == NF_INT_NULL;
        if (ok && !has_kw)
            ok = (ck.end[0] & NF_KWS_NULL) != 0;
        bool want_dead = m->dead[r], is_dead = nf_segment_is_deleted(seg, r);
        if (is_dead != want_dead)
            ok = false;
        if (!is_dead)
            live_rows[m->src_pool[r]]++;
        dead += is_dead;
        if (!ok && bad++ < 5)
            fprintf(stderr, "row %llu differs (deleted %d, expected %d)\n",
                    (unsigned long long) r, is_dead, want_dead);
    }
    CHECK(bad == 0);
    CHECK(nf_segment_deleted(seg) == dead && nf_segment_count(seg) == m->rows - dead);
    for (int p = 0; p < POOL; p++) {
        char id[NF_ID_MAX + 1];
        uint64_t row = UINT64_MAX;
        s_id(p, id);
        CHECK(live_rows[p] <= 1);                       /* never live twice */
        if (live_rows[p] > 1)
            fprintf(stderr, "id %s live %d times\n", id, live_rows[p]);
        int rc = nf_segment_get(seg, id, &row);
        CHECK(m->live[p] < 0 ? rc == NF_ENOTFOUND : (rc == 0 && row == (uint64_t) m->live[p]));
    }
}

/* Did operation k (in flight at the kill) commit?  An append shows as more
   rows, a delete of a live id as more deleted rows; a delete of only absent
   ids changes nothing either way. */
static bool
s_inflight_committed(nf_segment_t *seg, const s_model_t *m, uint64_t k)
{
    uint64_t dead = 0;
    for (uint64_t r = 0; r < m->rows; r++)
        dead += m->dead[r];
    return s_op(k).is_delete ? nf_segment_deleted(seg) > dead : nf_segment_rows(seg) > m->rows;
}

int
main(void)
{
    const char *env = getenv("NFLOW_CRASH_SEED");
    s_seed = env && *env ? strtoull(env, NULL, 10) : nf_wall_us();
    printf("seed %llu (set NFLOW_CRASH_SEED to repeat)\n", (unsigned long long) s_seed);
    signal(SIGPIPE, SIG_IGN);

    char *dir = nf_test_tmpdir(), seg_dir[4200];
    snprintf(seg_dir, sizeof seg_dir, "%s/seg", dir);
    nf_segment_t *seg = NULL;
    CHECK_OK(nf_segment_create(seg_dir, DIM, NF_METRIC_L2, &seg));
    nf_field_def_t defs[2];
    CHECK_OK(nf_field_def_parse("n:int", &defs[0]));
    CHECK_OK(nf_field_def_parse("kw:keyword[]", &defs[1]));
    CHECK_OK(nf_segment_set_schema(seg, defs, 2));
    nf_segment_destroy(&seg);

    s_model_t m = {0};
    memset(m.live, 0xff, sizeof m.live);
    uint64_t next = 0, t0 = nf_now_us(), kill_st = s_seed ^ 0x5eed;
    int rounds = 0, committed_in_flight = 0, deletes_in_flight = 0;
    for (; rounds < ROUNDS && nf_now_us() - t0 < BUDGET_US; rounds++) {
        int fds[2];
        CHECK(pipe(fds) == 0);
        fflush(NULL);
        pid_t pid = fork();
        if (pid == 0) {
            close(fds[0]);
            s_child(seg_dir, next, fds[1]);
        }
        close(fds[1]);
        CHECK(pid > 0);
        usleep((useconds_t) (1000 + nf_test_rand(&kill_st) % 29001));
        kill(pid, SIGKILL);
        int status = 0;
        while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
        }
        CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);

        /* drain the acknowledgements: the child is dead, so this ends */
        uint64_t ack, acked = next;     /* operations [next, acked) returned */
        while (read(fds[0], &ack, sizeof ack) == (ssize_t) sizeof ack) {
            CHECK(ack == acked);
            acked = ack + 1;
        }
        close(fds[0]);
        for (uint64_t k = next; k < acked; k++)
            s_model_apply(&m, k);

        /* read-only first: what any reader would see, nothing repaired */
        int rc = nf_segment_open(seg_dir, &(nf_segment_opts_t) {.readonly = true}, &seg);
        CHECK_OK(rc);
        if (rc)
            break;
        CHECK(nf_segment_notice(seg) == NULL);      /* a crash is not damage */
        CHECK(nf_segment_rows(seg) >= m.rows);
        /* the operation in flight (pipelined: up to NF_SEGMENT_PIPE_DEPTH + 1,
           in order: those left in flight and one durable but not yet
           acknowledged) */
        for (int f = 0; f < (PIPELINED ? NF_SEGMENT_PIPE_DEPTH + 1 : 1)
                        && s_inflight_committed(seg, &m, acked); f++) {
            s_model_apply(&m, acked++);
            if (s_op(acked - 1).is_delete)
                deletes_in_flight++;
            else
                committed_in_flight++;
        }
        s_verify(seg, &m);
        nf_segment_destroy(&seg);
        /* then as the next writer: the same, and it trims the rest */
        rc = nf_segment_open(seg_dir, NULL, &seg);
        CHECK_OK(rc);
        if (rc)
            break;
        s_verify(seg, &m);
        next = acked;
        nf_segment_destroy(&seg);
        if (nf_test_failures)
            break;
    }
    /* a last look through a read-only handle */
    CHECK_OK(nf_segment_open(seg_dir, &(nf_segment_opts_t) {.readonly = true}, &seg));
    if (seg)
        s_verify(seg, &m);
    nf_segment_destroy(&seg);
    printf("%d rounds in %.1f s: %llu operations, %llu rows, %d in-flight appends and %d "
           "in-flight deletes found committed (whole)\n", rounds, (double) (nf_now_us() - t0) / 1e6,
           (unsigned long long) next, (unsigned long long) m.rows, committed_in_flight,
           deletes_in_flight);
    CHECK(rounds >= 10 && next > 0);
    free(m.src_op);
    free(m.src_i);
    free(m.src_pool);
    free(m.dead);
    nf_test_rmdir(dir);
    free(dir);
    return nf_test_done("segment_crash");
}
