/*  nf_segment_pipe: pipelined appends of the nf_segment module (API in
    nf_segment.h: nf_segment_append_start / _wait; shared internals in
    nf_segment_impl.h).

    Owns: the handle's syncer thread, which runs the sync half of a commit
    (nf_seg_commit_sync: fdatasyncs, then the slot) while the caller goes
    on, and the wait for it (nf_seg_settle) that every other write and the
    close go through.  The commit's halves are in nf_segment_write.c.     */
#include "nf_segment_impl.h"
#include "nf_error.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------- pipelined commit

   Why: a batch's commit is CPU work (staging, hashing, the copy into the
   page cache) and then device work (the fdatasyncs, which on this kind of
   virtual disk is where the bytes really go: a flush after the writes
   costs about as long as the copy before it, and starting writeback early
   with sync_file_range does not shorten it -- measured, 5 MB writes:
   fdatasync 14 ms right after, 11-13 ms when kicked 20-40 ms before).
   Done one after the other, `nflow segment build` left the disk idle for
   half of its time.  So the sync half runs on the handle's syncer thread
   while the caller stages and writes the next batches; their bytes go to
   the files meanwhile (beyond the last commit: a crash leaves them past
   it, which an open trims) but each slot is written only after the one
   before is durable (one syncer, commits in order).  The commits queued
   when the syncer turns to them share one round of data syncs (each file
   fdatasynced once for all of them), then get their slots one by one: a
   disk slower than the writer then costs fewer syncs per commit.  Up to
   S_PIPE_DEPTH commits may be in flight when a start returns, so that a
   batch slower on either side does not stall the other (with one, caller
   and syncer took turns: each idle ~10 ms of a ~30 ms batch).  Measured,
   1M x 128 in 10,000-row batches on the shared 2-core VM: 4.3-7.9 s
   before, one in flight 2.7-3.2 s, two 2.4-2.5 s (with the vectors'
   blocks faulted in whole instead of rewritten, nf_segment_write.c); on
   the quiet VM with shared data rounds, two 2.02-2.43 s, four 1.76-2.09 s
   (6 interleaved pairs, four faster in 5).  Weighed and not done:
   syncing the 7 files in parallel (measured before: nothing); kicking
   writeback per 2 MiB block during the copy (measured: the flush took as
   long); a reader thread in the build command parsing the next batch
   (measured: no gain, more CPU); the staging on another thread (the id
   table and hash states are the handle's). */

/* The handle's syncer: one thread, started by the first pipelined commit,
   that runs the sync halves of the commits posted to it, in order (at most
   S_PIPE_DEPTH + 1: those a caller may leave in flight and the one it just
   wrote, posted before it waits, so the disk goes from one to the next
   without a round trip through the caller).  After a failed one it writes
   no more slots. */
struct nf_seg_syncer {
    const nf_segment_t *s;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;          /* a commit posted, a commit done, stop */
    nf_seg_inflight_t *head, *tail;     /* posted, not yet done */
    int failed;                 /* the first failure's code, or 0 */
    bool stop;
};

static void *
s_syncer_main(void *arg)
{
    nf_seg_syncer_t *y = arg;
    pthread_mutex_lock(&y->mu);
    for (;;) {
        while (!y->head && !y->stop)
            pthread_cond_wait(&y->cv, &y->mu);
        nf_seg_inflight_t *first = y->head, *last = y->tail;
        if (!first)
            break;
        /* the commits posted by now, first..last: their data (already in
           the files) synced in one round, then their slots one by one, in
           order, each after the one before is durable */
        int rc = y->failed;
        bool data_failed = false;
        char data_msg[sizeof first->msg];
        pthread_mutex_unlock(&y->mu);
        if (!rc && (rc = nf_seg_commit_sync_data(first, last))) {
            data_failed = true;
            snprintf(data_msg, sizeof data_msg, "%s", nf_error_msg());
        }
        pthread_mutex_lock(&y->mu);
        uint64_t end = 0, len = 0;
        for (nf_seg_inflight_t *c = first, *next; ; c = next) {
            pthread_mutex_unlock(&y->mu);
            if (data_failed)
                snprintf(c->msg, sizeof c->msg, "%s", data_msg);
            else if (rc)
                snprintf(c->msg, sizeof c->msg, "%s: not committed: the commit before it "
                         "failed", c->s->dir);
            else if ((rc = nf_seg_commit_sync_slot(c)))
                snprintf(c->msg, sizeof c->msg, "%s", nf_error_msg());
            pthread_mutex_lock(&y->mu);
            /* where the newest batch posted ends, and how long it was: the
               next one will likely fill as much after it */
            end = S_VEC_HDR + y->tail->slot.file[S_VEC].bytes;
            len = y->tail->slot.file[S_VEC].bytes - y->tail->from[S_VEC];
            next = c->next;
            bool round_done = c == last;    /* c may be freed once done */
            c->rc = rc;
            c->done = true;
            if (rc && !y->failed)
                y->failed = rc;
            if (!(y->head = next))
                y->tail = NULL;
            pthread_cond_broadcast(&y->cv);
            if (round_done)
                break;
        }
        /* idle: the blocks that batch will enter, faulted in whole now,
           so the writer does not zero them (nf_seg_prefault_block) */
        uint64_t b = (end + S_BLOCK - 1) & ~(uint64_t) (S_BLOCK - 1);
        for (; b < end + len && !y->head && !y->stop && !y->failed; b += S_BLOCK) {
            pthread_mutex_unlock(&y->mu);
            nf_seg_prefault_block(y->s, b);
            pthread_mutex_lock(&y->mu);
        }
    }
    pthread_mutex_unlock(&y->mu);
    return NULL;
}

/* The handle's syncer, started on first use; NULL when no thread can be
   had (the caller then syncs inline). */
static nf_seg_syncer_t *
s_syncer(nf_segment_t *s)
{
    if (s->syncer)
        return s->syncer;
    nf_seg_syncer_t *y = calloc(1, sizeof *y);
    if (!y)
        return NULL;
    y->s = s;
    pthread_mutex_init(&y->mu, NULL);
    pthread_cond_init(&y->cv, NULL);
    if (pthread_create(&y->thread, NULL, s_syncer_main, y) != 0) {
        pthread_mutex_destroy(&y->mu);
        pthread_cond_destroy(&y->cv);
        free(y);
        return NULL;
    }
    return s->syncer = y;
}

void
nf_seg_syncer_stop(nf_segment_t *s)
{
    nf_seg_syncer_t *y = s->syncer;
    if (!y)
        return;
    pthread_mutex_lock(&y->mu);
    y->stop = true;
    pthread_cond_broadcast(&y->cv);
    pthread_mutex_unlock(&y->mu);
    pthread_join(y->thread, NULL);
    pthread_mutex_destroy(&y->mu);
    pthread_cond_destroy(&y->cv);
    free(y);
    s->syncer = NULL;
}

/* Wait until the syncer is done with c. */
static void
s_wait_done(nf_seg_syncer_t *y, nf_seg_inflight_t *c)
{
    pthread_mutex_lock(&y->mu);
    while (!c->done)
        pthread_cond_wait(&y->cv, &y->mu);
    pthread_mutex_unlock(&y->mu);
}

/* Wait for the oldest commit in flight: 0 (and forget it) once durable,
   else its error (it stays). */
static int
s_settle_oldest(nf_segment_t *s)
{
    nf_seg_inflight_t *c = s->inflight[0];
    if (s->syncer)
        s_wait_done(s->syncer, c);
    if (c->rc)          /* kept: the handle is ahead of the disk for good */
        return nf_error_set(c->rc, "%s (an earlier pipelined append; reopen the segment)",
                            c->msg);
    nf_seg_commit_refold(s, c);
    free(c);
    s->ninflight--;
    memmove(s->inflight, s->inflight + 1, s->ninflight * sizeof *s->inflight);
    return 0;
}

int
nf_seg_settle(nf_segment_t *s)
{
    int rc = 0;
    while (s->ninflight && !(rc = s_settle_oldest(s))) {
    }
    return rc;
}

/* nf_seg_commit whose sync half runs on the syncer: write the batch, post
   its sync, wait until fewer than S_PIPE_DEPTH commits before it are in
   flight, move the handle to the new commit. */
int
nf_seg_commit_start(nf_segment_t *s, const nf_seg_batch_t *b, uint64_t rows, uint64_t deleted)
{
    nf_seg_inflight_t *c = calloc(1, sizeof *c);
    if (!c)
        return nf_error_set(NF_ENOMEM, "%s: out of memory for a commit", s->dir);
    int rc = nf_seg_commit_write(s, b, rows, deleted, c), prev = 0;
    nf_seg_syncer_t *y = rc ? NULL : s_syncer(s);
    if (!y) {               /* failed, or no thread: the ones before, then inline */
        prev = nf_seg_settle(s);
        if (!rc && !prev && (c->rc = nf_seg_commit_sync(c)))
            snprintf(c->msg, sizeof c->msg, "%s", nf_error_msg());
        if (rc || prev || c->rc) {
            rc = prev ? prev : rc ? rc : nf_error_set(c->rc, "%s", c->msg);
            free(c);
            return rc;
        }
        nf_seg_commit_done(s, c);
        nf_seg_commit_refold(s, c);
        free(c);
        return 0;
    }
    pthread_mutex_lock(&y->mu);
    if (y->tail)
        y->tail->next = c;
    else
        y->head = c;
    y->tail = c;
    pthread_cond_broadcast(&y->cv);
    pthread_mutex_unlock(&y->mu);
    while (s->ninflight >= S_PIPE_DEPTH && !(prev = s_settle_oldest(s))) {
    }
    if (prev) {
        s_wait_done(y, c);  /* skipped by the syncer: no slot of its own */
        free(c);
        return prev;
    }
    nf_seg_commit_done(s, c);
    s->inflight[s->ninflight++] = c;
    return 0;
}

/* ------------------------------------------------------------- the API */

int
nf_segment_append_start(nf_segment_t *s, const nf_doc_t *docs, const nf_fields_t *fields,
                        size_t n)
{
    int rc = nf_seg_append(s, docs, fields, n, true);
    if (s && (rc || n == 0)) {      /* nothing started: still, the one before is durable */
        int prev = nf_seg_settle(s);
        if (prev)
            return prev;
    }
    return rc;
}

int
nf_segment_append_wait(nf_segment_t *s)
{
    if (!s)
        return nf_error_set(NF_EINVAL, "nf_segment_append_wait: NULL argument");
    return nf_seg_settle(s);
}

int
nf_segment_append_poll(nf_segment_t *s, size_t *pending)
{
    *pending = 0;
    if (!s)
        return nf_error_set(NF_EINVAL, "nf_segment_append_poll: NULL argument");
    int rc = 0;
    for (;;) {
        bool done = false;
        if (s->ninflight && s->syncer) {
            pthread_mutex_lock(&s->syncer->mu);
            done = s->inflight[0]->done;
            pthread_mutex_unlock(&s->syncer->mu);
        }
        if (!done || (rc = s_settle_oldest(s)))
            break;
    }
    *pending = s->ninflight;
    return rc;
}
