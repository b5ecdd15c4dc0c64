/*  nflow index | search | delete | status: the client commands.

    They find a running flow by its flow file (-f FLOW.yml: the workspace's
    flow.state written by `nflow up`, or the gateway's explicit port) or by
    --gateway EP, and talk to it through lib/nf_client.  Documents and
    queries are read with lib/nf_vecio. */
#include "args.h"
#include "nflow.h"

#include <errno.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "nf_client.h"
#include "nf_error.h"
#include "nf_expand.h"
#include "nf_flow.h"
#include "nf_limits.h"
#include "nf_keys.h"
#include "nf_sys.h"
#include "nf_results.h"
#include "nf_vecio.h"

#define S_GRACE_MS 3000         /* client waits this much past the gateway's deadline */

/* ------------------------------------------------------------------ */
/* Finding the flow                                                    */

typedef struct {
    const char *cmd;            /* "index" ... for messages */
    const char *flow_path;
    const char *workspace;
    const char *gateway;        /* --gateway */
    int timeout_ms;             /* --timeout-ms (0 = the gateway's default) */
    bool json;
    nf_flow_t *flow;
    nf_flowstate_t *state;
    char *endpoint;             /* resolved gateway endpoint */
    int wait_ms;                /* how long to wait for one answer */
    const char *key_file;       /* --key FILE */
    nf_keys_t *keys;            /* CURVE: our key (--key, else the flow's
                                   client or operator key); NULL = plain */
} s_target_t;

/* Our CurveZMQ key: --key FILE, else, when the flow uses CURVE, its
   directory's client key (operator for status). */
static int
s_load_keys(s_target_t *t)
{
    int rc = 0;
    if (t->key_file)
        rc = nf_keys_open_file(t->key_file, &t->keys);
    else if (t->flow && t->flow->curve)
        rc = nf_keys_open(t->flow->keys, strcmp(t->cmd, "status") && strcmp(t->cmd, "compact")
                                             ? "client" : "operator", &t->keys);
    if (rc) {
        char why[900];
        snprintf(why, sizeof why, "%s", nf_error_msg());
        return nf_error_set(rc, "%s%s", why, t->key_file ? "" : " (flow with CurveZMQ keys: "
                            "give your key with --key FILE)");
    }
    return 0;
}

/* Resolve where the gateway is; with need_state the flow.state must exist. */
static int
s_resolve(s_target_t *t, bool need_state)
{
    int gw_timeout = 10000;
    if (t->gateway && !need_state) {
        t->endpoint = strdup(t->gateway);
    } else {
        if (!t->flow_path)
            return nf_error_set(NF_EINVAL, "give the flow file with -f FLOW.yml%s",
                                need_state ? "" : " or the gateway with --gateway EP");
        int rc = nf_flow_load(t->flow_path, &t->flow);
        if (rc)
            return rc;
        const nf_flow_pod_t *gw = nf_flow_role(t->flow, "gateway");
        const char *v = nf_flow_setting(gw, "timeout_ms");
        if (v)
            gw_timeout = atoi(v);
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", t->workspace ? t->workspace : t->flow->workspace,
                 NF_FLOWSTATE_FILE);
        rc = nf_flowstate_read(path, &t->state);
        if (rc == NF_ENOTFOUND && !need_state && gw->port) {
            rc = asprintf(&t->endpoint, "tcp://%s:%u", gw->hosts[0], gw->port) < 0 ? NF_ENOMEM : 0;
        } else if (rc == NF_ENOTFOUND) {
            return nf_error_set(rc, "flow '%s' is not running here: %s not found (start it with "
                                "`nflow up %s`)", t->flow->name, path, t->flow_path);
        } else if (rc == 0) {
            if (t->state->launcher_pid > 0 && kill(t->state->launcher_pid, 0) != 0 && errno == ESRCH)
                return nf_error_set(NF_EUNAVAIL, "flow '%s' is not running: %s is stale (its "
                                    "launcher, pid %d, is gone)", t->flow->name, path,
                                    t->state->launcher_pid);
            t->endpoint = strdup(t->gateway ? t->gateway : t->state->gateway);
        } else {
            return rc;
        }
    }
    if (!t->endpoint)
        return nf_error_set(NF_ENOMEM, "out of memory");
    t->wait_ms = (t->timeout_ms ? t->timeout_ms : gw_timeout) + S_GRACE_MS;
    return s_load_keys(t);
}

static void
s_target_clear(s_target_t *t)
{
    nf_flow_destroy(&t->flow);
    nf_flowstate_destroy(&t->state);
    free(t->endpoint);
    nf_keys_destroy(&t->keys);
}

static void
s_quiet_signals(void)
{
    zsys_handler_set(NULL);     /* Ctrl-C stops a client at once */
    signal(SIGPIPE, SIG_IGN);
}

/* The options every client command takes, one definition expanded into
   each command's table: where the flow is, our key, the deadline (what
   --timeout-ms bounds: timeout_help). */
#define S_CLIENT_ARGS(t, timeout_help)                                                      \
    {"-f", "--flow", NF_ARG_STR, &(t).flow_path, .meta = "FLOW.yml",                        \
     .help = "the flow (finds it through <workspace>/flow.state)"},                         \
    {"--workspace", NULL, NF_ARG_STR, &(t).workspace, .meta = "DIR",                        \
     .help = "the workspace the flow was started with (default: the flow's)"},              \
    {"--gateway", NULL, NF_ARG_STR, &(t).gateway, .meta = "EP",                             \
     .help = "talk to this gateway endpoint instead (tcp://HOST:PORT)"},                    \
    {"--key", NULL, NF_ARG_STR, &(t).key_file, .meta = "FILE",                              \
     .help = "CurveZMQ: our secret key (DIR/NAME.key from `nflow keys`; default\n"          \
             "with a flow that has keys: its client key, operator for status)"},            \
    {"--timeout-ms", NULL, NF_ARG_INT, &(t).timeout_ms, 1, NF_TIMEOUT_MAX_MS, .meta = "T",  \
     .help = timeout_help}

#define S_REQUEST_TIMEOUT "deadline per request; default: the gateway's timeout_ms"

/* The usage line's start, then the command's own arguments on the next line. */
#define S_CLIENT_SYNOPSIS(own)                                                              \
    "(-f FLOW.yml | --gateway EP) [--workspace DIR] [--key FILE] [--timeout-ms T]\n       " own

/* ------------------------------------------------------------------ */
/* nflow index                                                         */

/* index, search and delete PING the gateway first (nf_client_ping) with
   this timeout, so that a wrong --gateway is reported in seconds. */
#define S_PING_MS 3000

/* One index request in flight (or waiting to be sent).  Each document's
   place in its file is kept so that rejects and failures name it. */
typedef struct {
    nf_request_t *req;          /* NULL = free slot */
    const char *file;
    uint64_t *lines;            /* per document: JSONL line, 0 for binary formats */
    uint64_t *records;          /* per document: record number */
    char where[160];            /* "docs.jsonl records 0..255" */
    uint64_t id;                /* request id in flight, 0 = none */
    uint64_t sent_us, retry_at_us;
    int attempts;
} s_batch_t;

static void
s_batch_clear(s_batch_t *b)
{
    nf_request_destroy(&b->req);
    free(b->lines);
    free(b->records);
    memset(b, 0, sizeof *b);
}

/* The flow's typed fields (the flow file's, or the gateway's PING answer):
   every index request carries a column for each. */
static nf_field_def_t s_fields[NF_FIELDS_MAX];
static size_t s_nfields;

/* Documents [from, to) of in as one request.  When that is all of in's
   documents and they all have vectors, the request takes reader's block
   of them rather than a copy (nf_vecio_take_vectors). */
static int
s_batch_fill(s_batch_t *b, const nf_vecio_batch_t *in, size_t from, size_t to, const char *path,
             int timeout_ms, nf_vecio_t *reader)
{
    memset(b, 0, sizeof *b);
    b->file = path;
    b->lines = malloc((to - from) * sizeof *b->lines);
    b->records = malloc((to - from) * sizeof *b->records);
    int rc = b->lines && b->records ? 0 : nf_error_set(NF_ENOMEM, "out of memory");
    if (rc == 0)
        rc = nf_request_new(NF_BODY_INDEX, 0, (uint32_t) timeout_ms, &b->req);
    if (rc == 0 && reader && from == 0 && to == in->n && in->vectors) {
        size_t cap;
        float *block = nf_vecio_take_vectors(reader, &cap);
        if (block)
            nf_request_adopt_vectors(b->req, block, cap);
    }
    for (size_t i = from; rc == 0 && i < to; i++) {
        const nf_vecio_doc_t *d = &in->docs[i];
        b->lines[i - from] = d->line;
        b->records[i - from] = d->record;
        if (i == from)
            nf_request_set_fields(b->req, s_fields, s_nfields);
        rc = nf_request_add_typed(b->req, d->id, d->text, d->vector, in->dim, d->tags, d->ntags,
                                  &d->fields);
    }
    snprintf(b->where, sizeof b->where, "%s records %llu..%llu", path,
             (unsigned long long) in->docs[from].record, (unsigned long long) in->docs[to - 1].record);
    return rc;
}

/* End of the run of documents from `from` that all have a vector, or all
   have none: a request carries one vector block, so a file that mixes
   documents with and without vectors (the encoder makes the missing ones)
   is sent as one request per run. */
static size_t
s_run_end(const nf_vecio_batch_t *in, size_t from)
{
    size_t to = from + 1;
    while (to < in->n && !in->docs[to].vector == !in->docs[from].vector)
        to++;
    return to;
}

/* Id i of a request's batch, NUL-terminated in buf (NF_ID_MAX + 1 bytes). */
static const char *
s_doc_id(const Nflow__IndexBatch *ib, size_t i, char *buf)
{
    size_t len;
    const char *id = nf_batch_id(ib, i, &len);
    if (len > NF_ID_MAX)
        len = NF_ID_MAX;
    memcpy(buf, id, len);
    buf[len] = 0;
    return buf;
}

/* A batch of one: document i of src (to find which document of a refused
   batch is bad), copied from src's columns. */
static int
s_batch_single(s_batch_t *b, const s_batch_t *src, size_t i, int timeout_ms)
{
    memset(b, 0, sizeof *b);
    const Nflow__IndexBatch *ib = nf_request_env(src->req)->index;
    char id[NF_ID_MAX + 1];
    s_doc_id(ib, i, id);
    size_t tlen, t0, off, len;
    const char *tsrc = nf_batch_text(ib, i, &tlen);
    size_t nt = nf_batch_tags(ib, i, &t0);
    b->file = src->file;
    b->lines = malloc(sizeof *b->lines);
    b->records = malloc(sizeof *b->records);
    char *text = malloc(tlen + 1);
    nf_tag_t *tags = calloc(nt ? nt : 1, sizeof *tags);
    char *strs = malloc(ib->tag_keys.len + ib->tag_values.len + 2 * nt + 1);  /* tag copies */
    int rc = b->lines && b->records && text && tags && strs ? 0
             : nf_error_set(NF_ENOMEM, "out of memory");
    if (rc == 0) {
        memcpy(text, tsrc, tlen);
        text[tlen] = 0;
        char *at = strs;
        for (size_t t = 0; t < nt; t++) {
            nf_col_span(ib->tag_key_ends, ib->n_tag_key_ends, t0 + t, &off, &len);
            memcpy(at, ib->tag_keys.data + off, len);
            at[len] = 0;
            tags[t].key = at;
            at += len + 1;
            nf_col_span(ib->tag_value_ends, ib->n_tag_value_ends, t0 + t, &off, &len);
            memcpy(at, ib->tag_values.data + off, len);
            at[len] = 0;
            tags[t].value = at;
            at += len + 1;
        }
        rc = nf_request_new(NF_BODY_INDEX, 0, (uint32_t) timeout_ms, &b->req);
    }
    if (rc == 0) {  /* the vector bytes are host float32 (nf_request_add wrote them) */
        const float *vec = ib->vectors.len
            ? (const float *) (void *) (ib->vectors.data + i * (size_t) ib->dim * 4) : NULL;
        size_t sbytes, nptrs;
        nf_batch_fields_room(ib, &sbytes, &nptrs);
        nf_fval_t fv[NF_FIELDS_MAX];
        char *fstrs = malloc(sbytes), *sat = fstrs;
        const char **fptrs = malloc(nptrs * sizeof *fptrs), **pat = fptrs;
        if (!fstrs || !fptrs)
            rc = nf_error_set(NF_ENOMEM, "out of memory");
        if (rc == 0) {
            nf_fields_t f = {fv, nf_batch_fields(ib, i, fv, &sat, &pat)};
            nf_request_set_fields(b->req, s_fields, s_nfields);
            rc = nf_request_add_typed(b->req, id, text, vec, ib->vectors.len ? ib->dim : 0, tags,
                                      nt, &f);
        }
        free(fstrs);
        free(fptrs);
    }
    free(strs);
    free(tags);
    free(text);
    if (rc == 0) {
        b->lines[0] = src->lines[i];
        b->records[0] = src->records[i];
        snprintf(b->where, sizeof b->where, "%s record %llu", src->file,
                 (unsigned long long) src->records[i]);
    }
    return rc;
}

/* "FILE:LINE" or "FILE record N" of document i of b. */
static void
s_doc_place(const s_batch_t *b, size_t i, char *buf, size_t size)
{
    if (b->lines[i])
        snprintf(buf, size, "%s:%llu", b->file, (unsigned long long) b->lines[i]);
    else
        snprintf(buf, size, "%s record %llu", b->file, (unsigned long long) b->records[i]);
}

static bool
s_retryable(int rc)
{
    return rc == NF_ETIMEOUT || rc == NF_EUNAVAIL || rc == NF_EIO;
}

static void
s_missing(const Nflow__Result *r, char *buf, size_t size)
{
    size_t len = 0;
    buf[0] = 0;
    for (size_t i = 0; i < r->n_missing_shards && len + 12 < size; i++)
        len += (size_t) snprintf(buf + len, size - len, "%s%u", i ? ", " : "", r->missing_shards[i]);
}

static void
s_progress(bool tty, uint64_t done, uint64_t total, uint64_t docs, bool final)
{
    static uint64_t last;
    if (!tty || (!final && nf_now_us() - last < 100000))
        return;
    last = nf_now_us();
    int pct = total ? (int) (done * 100 / total) : 0;
    int bar = pct * 30 / 100;
    fprintf(stderr, "\r[%.*s%*s] %3d%% %llu documents%s", bar, "##############################",
            30 - bar, "", pct, (unsigned long long) docs, final ? "\n" : "");
}

typedef struct {
    uint64_t indexed, rejected, failed;
    bool stop_on_error;
    bool tty;
    uint32_t nshards;           /* from the flow file; 0 = unknown (--gateway) */
} s_index_run_t;

static void
s_clear_line(const s_index_run_t *run)
{
    if (run->tty)
        fprintf(stderr, "\r%60s\r", "");
}

/* Settle batch b after its final answer or last attempt: st is NF_OK, or
   the error (message in nf_error_msg()); res the result when there is
   one.  Refused batches of several documents are split (*split set: the
   caller queues one batch per document); single ones are rejected. */
static void
s_settle(s_index_run_t *run, s_batch_t *b, int st, const Nflow__Result *res, bool *split)
{
    size_t n = nf_request_size(b->req);
    const Nflow__IndexBatch *ir = nf_request_env(b->req)->index;
    char place[300], idbuf[NF_ID_MAX + 1];
    *split = false;
    if (st == 0 && !res->partial) {
        run->indexed += res->indexed;
        return;
    }
    if (st == 0) {              /* partial after the retries: shards did not answer */
        char missing[256];
        s_missing(res, missing, sizeof missing);
        run->indexed += res->indexed;
        s_clear_line(run);
        if (!run->nshards)      /* which shard holds which id is not known here */
            run->failed += n > res->indexed ? n - res->indexed : 0;
        for (size_t i = 0; i < n; i++) {
            const char *id = s_doc_id(ir, i, idbuf);
            bool lost = true;
            if (run->nshards) {
                uint32_t sh = nf_msg_shard_of(id, strlen(id), run->nshards);
                lost = false;
                for (size_t m = 0; m < res->n_missing_shards; m++)
                    lost |= res->missing_shards[m] == sh;
            }
            if (!lost)
                continue;
            run->failed += run->nshards ? 1 : 0;
            s_doc_place(b, i, place, sizeof place);
            fprintf(stderr, "nflow index: failed id '%s' (%s): shard%s %s did not answer%s\n",
                    id, place, res->n_missing_shards > 1 ? "s" : "", missing,
                    run->nshards ? "" : " (its batch; re-running stores what is missing)");
        }
        return;
    }
    if (s_retryable(st)) {      /* no answer, or no shard: the whole batch failed */
        char msg[512];
        snprintf(msg, sizeof msg, "%s", nf_error_msg());
        s_clear_line(run);
        for (size_t i = 0; i < n; i++) {
            s_doc_place(b, i, place, sizeof place);
            fprintf(stderr, "nflow index: failed id '%s' (%s): %s\n", s_doc_id(ir, i, idbuf),
                    place, msg);
        }
        run->failed += n;
        return;
    }
    if (n > 1 && !run->stop_on_error) {     /* which of them is bad? one by one */
        *split = true;
        return;
    }
    s_clear_line(run);
    s_doc_place(b, 0, place, sizeof place);
    fprintf(stderr, "nflow index: rejected id '%s' (%s): %s\n", n ? s_doc_id(ir, 0, idbuf) : "?",
            place, nf_error_msg());
    run->rejected += n;
}

int
cmd_index(int argc, char **argv)
{
    s_target_t t = {.cmd = "index"};
    const char *files[256];
    nf_args_list_t file_list = {files, 0, NF_ARGS_COUNT(files)};
    long long batch = 256, inflight = 8, retries = 4;
    s_index_run_t run = {0};
    const nf_arg_t args[] = {
        S_CLIENT_ARGS(t, S_REQUEST_TIMEOUT),
        {"--batch", NULL, NF_ARG_LONG, &batch, 1, NF_DOCS_MAX, .meta = "N",
         .help = "documents per request"},
        {"--inflight", NULL, NF_ARG_LONG, &inflight, 1, 256, .meta = "N",
         .help = "requests in flight"},
        {"--retries", NULL, NF_ARG_LONG, &retries, 0, 100, .meta = "N",
         .help = "retries of a failed or partial batch"},
        {"--stop-on-error", NULL, NF_ARG_FLAG, &run.stop_on_error,
         .help = "stop at the first bad document or failed batch"},
        {"FILE", NULL, NF_ARG_REST, &file_list, .required = true,
         .help = "JSONL or .fvecs documents"},
    };
    const nf_args_t cli = {
        "nflow index", args, NF_ARGS_COUNT(args),
        .synopsis = S_CLIENT_SYNOPSIS("[--batch N] [--inflight N] [--retries N] [--stop-on-error] "
                                      "FILE..."),
        .summary = "Index JSONL or .fvecs documents (upserts by id).  A bad document is\n"
                   "reported (file:line, id, why) and skipped; documents whose shard did\n"
                   "not answer are listed by id (re-running stores exactly them).  Ends\n"
                   "with `indexed N, rejected M, failed K`; exit status 1 when M or K > 0."};
    int usage;
    if (!nf_args_parse(&cli, argc, argv, &usage))
        return usage;
    size_t nfiles = file_list.n;
    s_quiet_signals();
    int rc = s_resolve(&t, false);
    if (rc == 0 && t.flow) {
        const nf_flow_pod_t *ix = nf_flow_role(t.flow, "indexer");
        run.nshards = ix ? ix->count : 0;
    }
    nf_client_t *client = NULL;
    nf_vecio_t *reader = NULL;
    s_batch_t *slots = calloc((size_t) inflight, sizeof *slots);
    s_batch_t *queue = NULL;            /* single-document batches waiting for a slot */
    size_t nqueue = 0, queue_cap = 0;
    uint64_t total_bytes = 0, done_bytes = 0, sent_docs = 0;
    run.tty = isatty(STDERR_FILENO);
    size_t fi = 0;
    if (!slots)
        rc = nf_error_set(NF_ENOMEM, "out of memory");
    for (size_t i = 0; i < nfiles; i++) {
        struct stat st;
        if (stat(files[i], &st) == 0)
            total_bytes += (uint64_t) st.st_size;
    }
    if (rc == 0)
        rc = nf_client_new_keyed(t.endpoint, t.keys, "pod", &client);
    if (rc == 0)
        rc = nf_client_ping_fields(client, t.wait_ms < S_PING_MS ? t.wait_ms : S_PING_MS,
                                   s_fields, NF_FIELDS_MAX, &s_nfields);
    if (rc == 0 && t.flow) {    /* the flow file's, when given */
        const nf_flow_pod_t *ix = nf_flow_role(t.flow, "indexer");
        rc = nf_field_defs_parse(ix ? nf_flow_setting(ix, "fields") : NULL, s_fields,
                                 NF_FIELDS_MAX, &s_nfields);
    }
    while (rc == 0) {
        /* fill free slots: split documents first, then the input */
        for (long s = 0; s < inflight && rc == 0; s++) {
            if (slots[s].req)
                continue;
            if (nqueue) {
                slots[s] = queue[--nqueue];
                continue;
            }
            while (!reader && fi < nfiles && rc == 0) {
                rc = nf_vecio_open(files[fi], NF_VECIO_AUTO, 0, &reader);
                if (rc == 0)
                    nf_vecio_skip_bad(reader, !run.stop_on_error);
                if (rc == 0 && s_nfields)
                    rc = nf_vecio_set_fields(reader, s_fields, s_nfields);
            }
            if (!reader || rc)
                break;
            nf_vecio_batch_t in;
            rc = nf_vecio_next(reader, (size_t) batch, &in);
            for (size_t r = 0; rc == 0 && r < in.nrejects; r++) {
                const nf_vecio_reject_t *rj = &in.rejects[r];
                /* "FILE:LINE[:COL]: why" -> "(FILE:LINE): why", as for the flow's rejects */
                const char *why = rj->why;
                size_t plen = strlen(files[fi]);
                if (!strncmp(why, files[fi], plen) && why[plen] == ':') {
                    const char *w = why + plen;
                    while (*w == ':' && w[1] >= '0' && w[1] <= '9')
                        w += 1 + strspn(w + 1, "0123456789");
                    if (w[0] == ':' && w[1] == ' ')
                        why = w + 2;
                }
                s_clear_line(&run);
                fprintf(stderr, "nflow index: rejected id '%s' (%s:%llu): %s\n",
                        rj->id ? rj->id : "?", files[fi], (unsigned long long) rj->line, why);
                run.rejected++;
            }
            if (rc == 0 && in.n == 0 && in.nrejects == 0) {
                uint64_t d, tot;
                nf_vecio_progress(reader, &d, &tot);
                done_bytes += tot;
                nf_vecio_destroy(&reader);
                fi++;
                s--;
                continue;
            }
            if (rc == 0 && in.n == 0) {
                s--;
                continue;
            }
            /* the first run in this slot; the others (mixed input only) queued */
            size_t end = rc == 0 ? s_run_end(&in, 0) : 0;
            if (rc == 0)
                rc = s_batch_fill(&slots[s], &in, 0, end, files[fi], t.timeout_ms, reader);
            size_t more = 0;
            for (size_t at = end; at < in.n; at = s_run_end(&in, at))
                more++;
            if (rc == 0 && nqueue + more > queue_cap) {
                size_t cap = queue_cap ? queue_cap : 64;
                while (cap < nqueue + more)
                    cap *= 2;
                s_batch_t *q = realloc(queue, cap * sizeof *q);
                if (!q)
                    rc = nf_error_set(NF_ENOMEM, "out of memory");
                else {
                    queue = q;
                    queue_cap = cap;
                }
            }
            for (size_t at = end; rc == 0 && at < in.n; at = s_run_end(&in, at))
                if ((rc = s_batch_fill(&queue[nqueue], &in, at, s_run_end(&in, at), files[fi],
                                       t.timeout_ms, NULL)) == 0)
                    nqueue++;
                else
                    s_batch_clear(&queue[nqueue]);
        }
        if (rc)
            break;
        /* send what is due */
        uint64_t now = nf_now_us();
        size_t busy = 0;
        for (long s = 0; s < inflight && rc == 0; s++) {
            s_batch_t *b = &slots[s];
            if (!b->req)
                continue;
            busy++;
            if (b->id && now - b->sent_us > (uint64_t) t.wait_ms * 1000u) {
                b->id = 0;  /* lost: the gateway never answered */
                if (++b->attempts > retries) {
                    bool split;
                    nf_error_set(NF_ETIMEOUT, "no answer from the gateway %s within %d ms "
                                 "(gave up after %lld retries)", t.endpoint, t.wait_ms, retries);
                    s_settle(&run, b, NF_ETIMEOUT, NULL, &split);
                    s_batch_clear(b);
                    if (run.stop_on_error)
                        rc = nf_error_set(NF_ETIMEOUT, "stopped at the first failed batch");
                    continue;
                }
                b->retry_at_us = now;
            }
            if (rc == 0 && !b->id && b->retry_at_us <= now) {
                rc = nf_client_send(client, nf_request_env(b->req), &b->id);
                b->sent_us = now;
                if (b->attempts == 0)
                    sent_docs += nf_request_size(b->req);
            }
        }
        if (rc || (!busy && !nqueue))
            break;
        uint64_t d = 0, tot = 0;
        if (reader)
            nf_vecio_progress(reader, &d, &tot);
        s_progress(run.tty, done_bytes + d, total_bytes, sent_docs, false);
        nf_env_t *reply = NULL;
        int r = nf_client_recv(client, 50, &reply);
        if (r == NF_ETIMEOUT)
            continue;
        if (r) {
            fprintf(stderr, "nflow index: dropped a bad answer: %s\n", nf_error_msg());
            continue;
        }
        s_batch_t *b = NULL;
        for (long s = 0; s < inflight; s++)
            if (slots[s].req && slots[s].id == reply->request_id)
                b = &slots[s];
        if (b) {
            int st = nf_client_status(reply);
            const Nflow__Result *res = reply->body_case == NF_BODY_RESULT ? reply->result : NULL;
            if (st == 0 && !res)
                st = nf_error_set(NF_EPROTO, "the gateway answered without a result");
            b->id = 0;
            bool again = (s_retryable(st) || (st == 0 && res->partial)) && b->attempts < retries;
            if (again) {
                unsigned delay = 250u << b->attempts++;
                b->retry_at_us = nf_now_us() + (uint64_t) delay * 1000u;
                if (!run.tty) {
                    char missing[256] = "";
                    if (st == 0)
                        s_missing(res, missing, sizeof missing);
                    fprintf(stderr, "nflow index: %s: %s%s; retrying in %u ms\n", b->where,
                            st ? nf_error_msg() : "partial: shards missing: ", missing, delay);
                }
            } else {
                bool split = false;
                uint64_t before = run.rejected + run.failed;
                s_settle(&run, b, st, res, &split);
                if (split) {
                    size_t n = nf_request_size(b->req);
                    if (nqueue + n > queue_cap) {
                        size_t cap = queue_cap ? queue_cap : 64;
                        while (cap < nqueue + n)
                            cap *= 2;
                        s_batch_t *q = realloc(queue, cap * sizeof *q);
                        if (!q)
                            rc = nf_error_set(NF_ENOMEM, "out of memory");
                        else {
                            queue = q;
                            queue_cap = cap;
                        }
                    }
                    for (size_t i = n; rc == 0 && i-- > 0;)     /* popped in file order */
                        if ((rc = s_batch_single(&queue[nqueue], b, i, t.timeout_ms)) == 0)
                            nqueue++;
                }
                s_batch_clear(b);
                if (rc == 0 && run.stop_on_error && run.rejected + run.failed > before)
                    rc = nf_error_set(NF_EINVAL, "stopped at the first %s (--stop-on-error)",
                                      run.rejected ? "rejected document" : "failed batch");
            }
        }
        nf_env_destroy(&reply);
    }
    s_progress(run.tty, total_bytes, total_bytes, sent_docs, true);
    for (long s = 0; slots && s < inflight; s++)
        s_batch_clear(&slots[s]);
    while (nqueue)
        s_batch_clear(&queue[--nqueue]);
    free(queue);
    free(slots);
    nf_vecio_destroy(&reader);
    nf_client_destroy(&client);
    s_target_clear(&t);
    if (rc) {
        fprintf(stderr, "nflow index: %s\n", nf_error_msg());
        printf("indexed %llu, rejected %llu, failed %llu\n", (unsigned long long) run.indexed,
               (unsigned long long) run.rejected, (unsigned long long) run.failed);
        return 1;
    }
    printf("indexed %llu, rejected %llu, failed %llu\n", (unsigned long long) run.indexed,
           (unsigned long long) run.rejected, (unsigned long long) run.failed);
    return run.rejected || run.failed ? 1 : 0;
}

/* ------------------------------------------------------------------ */
/* nflow search                                                        */

static void
s_print_matches(const s_target_t *t, size_t q, const char *text, const Nflow__Matches *m,
                const Nflow__Result *res)
{
    char missing[256];
    s_missing(res, missing, sizeof missing);
    size_t n = m ? m->n_matches : 0;
    if (t->json) {
        nf_match_t *mt = calloc(n + 1, sizeof *mt);
        nf_tag_t **tags = calloc(n + 1, sizeof *tags);
        if (!mt || !tags)
            n = 0;
        for (size_t i = 0; i < n; i++) {
            const Nflow__Document *d = m->matches[i];
            tags[i] = calloc(d->n_tags ? d->n_tags : 1, sizeof **tags);
            for (size_t j = 0; tags[i] && j < d->n_tags; j++)
                tags[i][j] = (nf_tag_t){d->tags[j]->key, d->tags[j]->value};
            mt[i] = (nf_match_t){.id = d->id, .score = d->score, .text = d->text,
                                 .tags = tags[i], .ntags = tags[i] ? d->n_tags : 0};
        }
        json_t *o = nf_results_json(q, mt, n);
        json_t *ma = o ? json_object_get(o, "matches") : NULL;
        for (size_t i = 0; ma && i < n; i++) {
            const Nflow__Document *d = m->matches[i];
            json_t *f = d->fields && *d->fields ? json_loads(d->fields, 0, NULL) : NULL;
            if (f)
                json_object_set_new(json_array_get(ma, i), "fields", f);
        }
        if (o) {
            json_t *ms = json_array();
            for (size_t i = 0; i < res->n_missing_shards; i++)
                json_array_append_new(ms, json_integer(res->missing_shards[i]));
            json_object_set_new(o, "partial", json_boolean(res->partial));
            json_object_set_new(o, "missing_shards", ms);
            nf_results_write(stdout, o);
            json_decref(o);
        }
        for (size_t i = 0; i < n; i++)
            free(tags[i]);
        free(tags);
        free(mt);
        return;
    }
    if (text && *text)
        printf("query %zu: \"%s\"\n", q, text);
    else
        printf("query %zu (vector)\n", q);
    if (res->partial)
        printf("  partial answer: shards %s did not answer\n", missing);
    if (!n)
        printf("  no matches\n");
    for (size_t i = 0; i < n; i++) {
        const Nflow__Document *d = m->matches[i];
        printf("  %2zu. %-32s %10.4f\n", i + 1, d->id, (double) d->score);
        if (d->text && *d->text) {
            /* the first 3 lines, at most 100 characters each */
            const char *s = d->text;
            for (int line = 0; line < 3 && *s; line++) {
                size_t len = strcspn(s, "\n");
                printf("      %.*s%s\n", (int) (len > 100 ? 100 : len), s, len > 100 ? "..." : "");
                s += len;
                while (*s == '\n')
                    s++;
                if (line == 2 && *s)
                    printf("      ...\n");
            }
        }
        for (size_t j = 0; j < d->n_tags; j++)
            printf("      %s: %s\n", d->tags[j]->key, d->tags[j]->value);
        if (d->fields && *d->fields)
            printf("      fields: %s\n", d->fields);
    }
}

/* Add a query to the last request of reqs, starting a new one every per. */
static int
s_add_query(nf_request_t ***reqs, size_t *n, size_t per, uint32_t k, uint32_t timeout_ms,
            bool with_payload, const char *id, const char *text, const float *vector,
            uint32_t dim)
{
    /* a request carries one vector block: a query whose shape (vector or
       not, dim) differs from the request's others starts a new request */
    bool fits = *n && nf_request_size((*reqs)[*n - 1]) < per;
    if (fits && nf_request_add((*reqs)[*n - 1], id, text, vector, dim, NULL, 0) == 0)
        return 0;
    if (fits && nf_request_size((*reqs)[*n - 1]) == 0)
        return nf_error_set(NF_EINVAL, "query: %s", nf_error_msg());
    {
        nf_request_t **grown = realloc(*reqs, (*n + 1) * sizeof **reqs);
        if (!grown)
            return nf_error_set(NF_ENOMEM, "out of memory");
        *reqs = grown;
        grown[(*n)++] = NULL;
        int rc = nf_request_new(NF_BODY_SEARCH, k, timeout_ms, &grown[*n - 1]);
        if (rc)
            return rc;
        nf_request_env(grown[*n - 1])->search->with_payload = with_payload;
    }
    return nf_request_add((*reqs)[*n - 1], id, text, vector, dim, NULL, 0);
}

int
cmd_search(int argc, char **argv)
{
    s_target_t t = {.cmd = "search"};
    const char *texts[256], *queries = NULL;
    nf_args_list_t text_list = {texts, 0, NF_ARGS_COUNT(texts)};
    long long k = 10, per = 64;
    long inflight = 4;
    bool ids_only = false, partial = false;
    const char *filter = NULL, *fieldlist = NULL;
    char *fieldbuf = NULL, *fields[NF_FIELDS_MAX];
    size_t nfields = 0;
    const nf_arg_t args[] = {
        S_CLIENT_ARGS(t, S_REQUEST_TIMEOUT),
        {"--text", NULL, NF_ARG_MULTI, &text_list, .meta = "T",
         .help = "a text query (repeat for several)"},
        {"--queries", NULL, NF_ARG_STR, &queries, .meta = "FILE",
         .help = "queries from .fvecs / .f32 / JSONL (vector or text)"},
        {"-k", "--top-k", NF_ARG_LONG, &k, 1, NF_TOPK_MAX, .meta = "K",
         .help = "matches per query"},
        {"--batch", NULL, NF_ARG_LONG, &per, 1, NF_QUERIES_MAX, .meta = "N",
         .help = "queries per request"},
        {"--ids-only", NULL, NF_ARG_FLAG, &ids_only,
         .help = "matches without text and tags (smaller answers)"},
        {"--json", NULL, NF_ARG_FLAG, &t.json,
         .help = "one JSON line per query: {\"query\", \"matches\", \"partial\",\n"
                 "\"missing_shards\"}"},
        {"--filter", NULL, NF_ARG_STR, &filter, .meta = "EXPR",
         .help = "only documents the filter keeps (README \"Filters\"),\n"
                 "e.g. 'year >= 2000 and genre in [\"scifi\"]'"},
        {"--fields", NULL, NF_ARG_STR, &fieldlist, .meta = "A,B",
         .help = "output fields: each match carries them (\"fields\" in --json)"},
    };
    const nf_args_t cli = {
        "nflow search", args, NF_ARGS_COUNT(args),
        .synopsis = S_CLIENT_SYNOPSIS("(--text T... | --queries FILE) [-k K] [--batch N] "
                                      "[--ids-only] [--filter EXPR] [--fields A,B] [--json]"),
        .summary = "Search the flow; prints the best K matches per query.\n"
                   "Exit status: 0 complete answers, 1 an error, 2 usage, 3 some answer was\n"
                   "partial (shards did not answer; the matches printed are from the others)."};
    int usage;
    if (!nf_args_parse(&cli, argc, argv, &usage))
        return usage;
    size_t ntexts = text_list.n;
    if (!ntexts == !queries)
        return nf_args_error(&cli, "give --text T or --queries FILE (see nflow search --help)");
    if (filter && strlen(filter) > NF_FILTER_BYTES_MAX)
        return nf_args_error(&cli, "--filter: %zu bytes, at most %d (NF_FILTER_BYTES_MAX)",
                             strlen(filter), NF_FILTER_BYTES_MAX);
    if (fieldlist) {
        if (!(fieldbuf = strdup(fieldlist)))
            return 1;
        for (char *save = NULL, *f = strtok_r(fieldbuf, ", ", &save); f;
             f = strtok_r(NULL, ", ", &save)) {
            if (nfields == NF_FIELDS_MAX) {
                free(fieldbuf);
                return nf_args_error(&cli, "--fields: more than %d fields (NF_FIELDS_MAX)",
                                     NF_FIELDS_MAX);
            }
            fields[nfields++] = f;
        }
    }

    s_quiet_signals();
    int rc = s_resolve(&t, false);
    nf_request_t **reqs = NULL;         /* one request per `per` queries */
    size_t nchunks = 0;
    if (rc == 0 && queries) {
        nf_vecio_t *r = NULL;
        nf_vecio_batch_t b;
        rc = nf_vecio_open(queries, NF_VECIO_AUTO, 0, &r);
        while (rc == 0 && (rc = nf_vecio_next(r, 1024, &b)) == 0 && b.n)
            for (size_t i = 0; i < b.n && rc == 0; i++)
                rc = s_add_query(&reqs, &nchunks, (size_t) per, (uint32_t) k, (uint32_t) t.timeout_ms,
                                 !ids_only, b.docs[i].id, b.docs[i].text, b.docs[i].vector, b.dim);
        nf_vecio_destroy(&r);
    }
    for (size_t i = 0; rc == 0 && i < ntexts; i++)
        rc = s_add_query(&reqs, &nchunks, (size_t) per, (uint32_t) k, (uint32_t) t.timeout_ms,
                         !ids_only, NULL, texts[i], NULL, 0);
    for (size_t c = 0; c < nchunks; c++) {
        Nflow__SearchRequest *sr = nf_request_env(reqs[c])->search;
        sr->filter = (char *) (filter ? filter : "");
        sr->fields = nfields ? fields : NULL;
        sr->n_fields = nfields;
    }
    /* `inflight` requests at a time, answers printed in query order */
    nf_env_t **replies = calloc(nchunks ? nchunks : 1, sizeof *replies);
    uint64_t *ids = calloc(nchunks ? nchunks : 1, sizeof *ids);
    nf_client_t *client = NULL;
    if (rc == 0 && (!replies || !ids))
        rc = nf_error_set(NF_ENOMEM, "out of memory");
    if (rc == 0)
        rc = nf_client_new_keyed(t.endpoint, t.keys, "pod", &client);
    if (rc == 0)
        rc = nf_client_ping(client, t.wait_ms < S_PING_MS ? t.wait_ms : S_PING_MS);
    size_t next_send = 0, next_print = 0;
    size_t printed = 0;                 /* queries printed: the next one's number */
    uint64_t last_answer = nf_now_us();
    while (rc == 0 && next_print < nchunks) {
        while (next_send < nchunks && next_send < next_print + (size_t) inflight && rc == 0) {
            rc = nf_client_send(client, nf_request_env(reqs[next_send]), &ids[next_send]);
            next_send++;
        }
        nf_env_t *reply = NULL;
        int r = rc ? rc : nf_client_recv(client, 100, &reply);
        if (r == NF_ETIMEOUT) {
            if (nf_now_us() - last_answer > (uint64_t) t.wait_ms * 1000u)
                rc = nf_error_set(NF_ETIMEOUT, "no answer from the gateway %s within %d ms",
                                  t.endpoint, t.wait_ms);
            continue;
        }
        if (r) {
            rc = r;
            break;
        }
        last_answer = nf_now_us();
        for (size_t c = next_print; reply && c < next_send; c++)
            if (ids[c] == reply->request_id && !replies[c]) {
                replies[c] = reply;
                reply = NULL;   /* the loop stops: reply is no longer ours */
            }
        if (reply)
            nf_env_destroy(&reply);
        while (rc == 0 && next_print < nchunks && replies[next_print]) {
            nf_env_t *e = replies[next_print];
            const Nflow__SearchRequest *sr = nf_request_env(reqs[next_print])->search;
            rc = nf_client_status(e);
            if (rc == 0 && e->body_case != NF_BODY_RESULT)
                rc = nf_error_set(NF_EPROTO, "the gateway answered without a result");
            for (size_t j = 0; rc == 0 && j < sr->count; j++) {
                const Nflow__Matches *m = j < e->result->n_results ? e->result->results[j] : NULL;
                s_print_matches(&t, printed++, j < sr->n_texts ? sr->texts[j] : NULL, m,
                                e->result);
            }
            if (rc == 0 && e->result->partial) {
                partial = true;
                fprintf(stderr, "nflow search: warning: partial answer (shards did not answer)\n");
            }
            nf_env_destroy(&e);
            replies[next_print++] = NULL;
        }
        fflush(stdout);
    }
    for (size_t c = 0; c < nchunks; c++) {
        if (replies && replies[c])
            nf_env_destroy(&replies[c]);
        nf_request_destroy(&reqs[c]);
    }
    free(reqs);
    free(replies);
    free(ids);
    nf_client_destroy(&client);
    s_target_clear(&t);
    free(fieldbuf);
    if (rc) {
        fprintf(stderr, "nflow search: %s\n", nf_error_msg());
        return 1;
    }
    return partial ? 3 : 0;
}

/* ------------------------------------------------------------------ */
/* nflow delete                                                        */

int
cmd_delete(int argc, char **argv)
{
    s_target_t t = {.cmd = "delete"};
    long retries = 4;
    const char **ids = calloc((size_t) argc, sizeof *ids);
    nf_args_list_t id_list = {ids, 0, (size_t) argc};
    if (!ids)
        return 1;
    const nf_arg_t args[] = {
        S_CLIENT_ARGS(t, S_REQUEST_TIMEOUT),
        {"ID", NULL, NF_ARG_REST, &id_list, .required = true,
         .help = "the documents' ids (one that starts with '-' after `--`)"},
    };
    const nf_args_t cli = {"nflow delete", args, NF_ARGS_COUNT(args),
                            .synopsis = S_CLIENT_SYNOPSIS("ID..."),
                            .summary = "Delete documents by id; prints `deleted N`."};
    int usage;
    if (!nf_args_parse(&cli, argc, argv, &usage)) {
        free(ids);
        return usage;
    }
    size_t nids = id_list.n;
    if (nids > NF_DOCS_MAX)
        usage = nf_args_error(&cli, "%zu ids, at most %d per request (NF_DOCS_MAX)", nids,
                              NF_DOCS_MAX);
    for (size_t i = 0; usage == 0 && i < nids; i++) {
        size_t len = strlen(ids[i]);
        if (len == 0 || len > NF_ID_MAX)      /* refused at once, before any connection */
            usage = nf_args_error(&cli, "id %zu: ids have 1..%d bytes, this one has %zu", i + 1,
                                  NF_ID_MAX, len);
    }
    if (usage) {
        free(ids);
        return usage;
    }
    s_quiet_signals();
    nf_client_t *client = NULL;
    int rc = s_resolve(&t, false);
    if (rc == 0)
        rc = nf_client_new_keyed(t.endpoint, t.keys, "pod", &client);
    if (rc == 0)
        rc = nf_client_ping(client, t.wait_ms < S_PING_MS ? t.wait_ms : S_PING_MS);
    uint64_t deleted = 0;
    for (int attempt = 0; rc == 0; attempt++) {
        nf_env_t *reply = NULL;
        nf_request_t *req = NULL;
        rc = nf_request_new(NF_BODY_DELETE, 0, (uint32_t) t.timeout_ms, &req);
        for (size_t i = 0; rc == 0 && i < nids; i++)
            rc = nf_request_add(req, ids[i], NULL, NULL, 0, NULL, 0);
        if (rc == 0)
            rc = nf_client_call(client, nf_request_env(req), t.wait_ms, &reply);
        nf_request_destroy(&req);
        if (rc == 0)
            rc = nf_client_status(reply);
        if (rc == 0 && reply->body_case != NF_BODY_RESULT)
            rc = nf_error_set(NF_EPROTO, "the gateway answered without a result");
        if (rc == 0 && reply->result->partial) {
            char missing[256];
            s_missing(reply->result, missing, sizeof missing);
            rc = nf_error_set(NF_EUNAVAIL, "partial: shards %s missing", missing);
        }
        if (rc == 0)
            deleted = reply->result->deleted;
        if (reply)
            nf_env_destroy(&reply);
        if (rc == 0 || !s_retryable(rc) || attempt >= retries)
            break;
        fprintf(stderr, "nflow delete: %s; retrying\n", nf_error_msg());
        usleep((useconds_t) (250000u << attempt));
        rc = 0;
    }
    nf_client_destroy(&client);
    s_target_clear(&t);
    free(ids);
    if (rc) {
        fprintf(stderr, "nflow delete: %s\n", nf_error_msg());
        return 1;
    }
    printf("deleted %llu\n", (unsigned long long) deleted);
    return 0;
}

/* ------------------------------------------------------------------ */
/* nflow status                                                        */

static void
s_bytes(uint64_t b, char *buf, size_t size)
{
    if (b >= (1ull << 30))
        snprintf(buf, size, "%.1f GiB", (double) b / (double) (1ull << 30));
    else
        snprintf(buf, size, "%.1f MiB", (double) b / (double) (1ull << 20));
}

/* Status from another machine starts nothing: no host is local. */
static bool
s_nowhere(const char *host)
{
    (void) host;
    return false;
}

int
cmd_status(int argc, char **argv)
{
    s_target_t t = {.cmd = "status"};
    const nf_arg_t args[] = {
        S_CLIENT_ARGS(t, "bound on the wait for all the answers; default 1500"),
        {"--json", NULL, NF_ARG_FLAG, &t.json, .help = "one JSON object per pod and line"},
    };
    const nf_args_t cli = {
        "nflow status", args, NF_ARGS_COUNT(args),
        .synopsis = S_CLIENT_SYNOPSIS("[--json]"),
        .summary = "Per pod: up/down, pid, requests served, errors, malformed frames, rows\n"
                   "(indexers), resident memory and host, from each pod's control socket.\n"
                   "Where the flow was not started (no flow.state), every pod of every host\n"
                   "is asked at the flow file's explicit ports (an operator key with CURVE).\n"
                   "With --gateway only the gateway is asked.\n"
                   "Exit status 1 when any pod is down."};
    int usage;
    if (!nf_args_parse(&cli, argc, argv, &usage))
        return usage;
    s_quiet_signals();
    /* every pod of the flow: from this host's flow.state, else (another
       machine) from the flow file's explicit ports */
    int rc = s_resolve(&t, false);
    nf_plan_t *plan = NULL;
    if (rc == 0 && !t.state && t.flow && !t.gateway) {
        nf_expand_opts_t eo = {.only_host = "", .is_local = s_nowhere};
        rc = nf_flow_expand(t.flow, &eo, &plan);
    }
    if (rc) {
        fprintf(stderr, "nflow status: %s\n", nf_error_msg());
        s_target_clear(&t);
        return 1;
    }
    size_t n = t.state ? t.state->npods : plan ? plan->nprocs : 1;
    nf_client_t **cl = calloc(n + 1, sizeof *cl);
    nf_env_t **rep = calloc(n + 1, sizeof *rep);
    if (!cl || !rep)
        n = 0;
    for (size_t i = 0; i < n; i++) {
        nf_env_t env;
        Nflow__Control ctl;
        nf_control_env(&env, &ctl, NFLOW__CONTROL_COMMAND__CONTROL_STATUS);
        const char *ep = t.state ? t.state->pods[i].control : plan ? plan->procs[i].control
                                                                    : t.endpoint;
        char key[NF_KEY_NAME_MAX + 1] = "pod";
        const char *role = t.state ? t.state->pods[i].role : plan ? plan->procs[i].pod->role : "";
        unsigned index = 0;
        if (t.state && sscanf(t.state->pods[i].name, "%*[^/]/%u", &index) != 1)
            index = 0;
        if (plan)
            index = plan->procs[i].index;
        const nf_podspec_t *spec = nf_podspec_find(role);
        if (spec && spec->scale == NF_SCALE_SHARDS)
            nf_keys_shard_name(index, key, sizeof key);
        if (nf_client_new_keyed(ep, t.keys, key, &cl[i]) == 0)
            (void) nf_client_send(cl[i], &env, NULL);
    }
    /* --timeout-ms bounds the whole status call (default 1500 ms) */
    uint64_t deadline = nf_now_us() + (uint64_t) (t.timeout_ms ? t.timeout_ms : 1500) * 1000u;
    bool any_down = false;
    for (size_t i = 0; i < n; i++) {
        while (cl[i] && !rep[i]) {
            uint64_t now = nf_now_us();
            nf_env_t *e = NULL;
            if (nf_client_recv(cl[i], now >= deadline ? 0 : (int) ((deadline - now) / 1000u), &e) != 0)
                break;
            if (e->body_case == NF_BODY_CONTROL)
                rep[i] = e;
            else
                nf_env_destroy(&e);
        }
    }
    if (!t.json)
        printf("%-16s %-5s %8s %10s %8s %10s %10s %10s %s\n", "POD", "STATE", "PID", "SERVED",
               "ERRORS", "MALFORMED", "ROWS", "RSS", "HOST");
    for (size_t i = 0; i < n; i++) {
        const nf_flowstate_pod_t *p = t.state ? &t.state->pods[i] : NULL;
        const nf_proc_t *q = plan ? &plan->procs[i] : NULL;
        const char *name = p ? p->name : q ? q->name : "gateway";
        const char *host = p ? p->host : q ? q->host : "-";
        const Nflow__Control *c = rep[i] ? rep[i]->control : NULL;
        any_down |= c == NULL;
        int pid = c && c->pid ? (int) c->pid : p ? p->pid : 0;
        bool indexer = p ? !strcmp(p->role, "indexer") : q ? !strcmp(q->pod->role, "indexer") : false;
        if (t.json) {
            json_t *o = json_pack("{s:s, s:b, s:i}", "pod", name, "up", c != NULL, "pid", pid);
            if (o && c) {
                json_object_set_new(o, "served", json_integer((json_int_t) c->served));
                json_object_set_new(o, "errors", json_integer((json_int_t) c->errors));
                json_object_set_new(o, "malformed", json_integer((json_int_t) c->malformed));
                json_object_set_new(o, "rss_bytes", json_integer((json_int_t) c->rss_bytes));
                if (indexer)
                    json_object_set_new(o, "rows", json_integer((json_int_t) c->rows));
                json_object_set_new(o, "denied", json_integer((json_int_t) c->denied));
            }
            if (o)
                json_object_set_new(o, "host", json_string(host));
            if (o)
                nf_results_write(stdout, o);
            json_decref(o);
            continue;
        }
        char pidbuf[16] = "-", rows[24] = "-", rss[24] = "-";
        if (pid)
            snprintf(pidbuf, sizeof pidbuf, "%d", pid);
        if (!c) {
            printf("%-16s %-5s %8s %10s %8s %10s %10s %10s %s\n", name, "down", pidbuf, "-", "-",
                   "-", "-", "-", host);
            continue;
        }
        if (indexer)
            snprintf(rows, sizeof rows, "%llu", (unsigned long long) c->rows);
        s_bytes(c->rss_bytes, rss, sizeof rss);
        printf("%-16s %-5s %8s %10llu %8llu %10llu %10s %10s %s\n", name, "up", pidbuf,
               (unsigned long long) c->served, (unsigned long long) c->errors,
               (unsigned long long) c->malformed, rows, rss, host);
    }
    for (size_t i = 0; i < n; i++) {
        nf_client_destroy(&cl[i]);
        if (rep[i])
            nf_env_destroy(&rep[i]);
    }
    free(cl);
    free(rep);
    nf_plan_destroy(&plan);
    s_target_clear(&t);
    if (n == 0) {
        fprintf(stderr, "nflow status: out of memory\n");
        return 1;
    }
    return any_down ? 1 : 0;
}

/* ------------------------------------------------------------------ */
/* nflow compact                                                       */

int
cmd_compact(int argc, char **argv)
{
    s_target_t t = {.cmd = "compact"};
    const nf_arg_t args[] = {
        {"-f", "--flow", NF_ARG_STR, &t.flow_path, .meta = "FLOW.yml", .required = true,
         .help = "the flow (finds it through <workspace>/flow.state)"},
        {"--workspace", NULL, NF_ARG_STR, &t.workspace, .meta = "DIR",
         .help = "the workspace the flow was started with (default: the flow's)"},
        {"--key", NULL, NF_ARG_STR, &t.key_file, .meta = "FILE",
         .help = "CurveZMQ: our secret key (default: the flow's operator key)"},
        {"--timeout-ms", NULL, NF_ARG_INT, &t.timeout_ms, 1, NF_TIMEOUT_MAX_MS, .meta = "T",
         .help = "the longest wait for one shard (default 600000)"},
        {"--json", NULL, NF_ARG_FLAG, &t.json, .help = "one JSON object per shard and line"},
    };
    const nf_args_t cli = {
        "nflow compact", args, NF_ARGS_COUNT(args),
        .summary = "Make every shard of the running flow rewrite its segment without its\n"
                   "deleted rows (CONTROL_COMPACT on each indexer's control socket), one\n"
                   "shard after the other, while the flow keeps answering: the new segment\n"
                   "is swapped in between requests.  Prints per shard the rows kept and the\n"
                   "deleted rows dropped.  Exit status 1 when a shard failed or did not answer."};
    int usage;
    if (!nf_args_parse(&cli, argc, argv, &usage))
        return usage;
    s_quiet_signals();
    int rc = s_resolve(&t, false);
    if (rc == 0 && !t.state)
        rc = nf_error_set(NF_EINVAL, "no running flow found (flow.state): start it with "
                          "`nflow up`, or give -f FLOW.yml and its --workspace");
    if (rc) {
        fprintf(stderr, "nflow compact: %s\n", nf_error_msg());
        s_target_clear(&t);
        return 1;
    }
    int timeout_ms = t.timeout_ms ? t.timeout_ms : NF_TIMEOUT_MAX_MS;
    int failed = 0, shards = 0;
    for (size_t i = 0; i < t.state->npods; i++) {
        const nf_flowstate_pod_t *p = &t.state->pods[i];
        if (strcmp(p->role, "indexer"))
            continue;
        shards++;
        unsigned index = 0;
        if (sscanf(p->name, "%*[^/]/%u", &index) != 1)
            index = 0;
        char key[NF_KEY_NAME_MAX + 1];
        nf_keys_shard_name(index, key, sizeof key);
        nf_client_t *cl = NULL;
        nf_env_t env, *reply = NULL;
        Nflow__Control ctl;
        nf_control_env(&env, &ctl, NFLOW__CONTROL_COMMAND__CONTROL_COMPACT);
        uint64_t t0 = nf_now_us();
        int r = nf_client_new_keyed(p->control, t.keys, key, &cl);
        if (r == 0)
            r = nf_client_call(cl, &env, timeout_ms, &reply);
        if (r == 0)
            r = nf_client_status(reply);
        if (r == 0 && (reply->body_case != NF_BODY_CONTROL || !reply->control))
            r = nf_error_set(NF_EPROTO, "the shard answered without a control body");
        double ms = (double) (nf_now_us() - t0) / 1000.0;
        if (t.json) {
            json_t *o = json_pack("{s:s, s:b}", "pod", p->name, "ok", r == 0);
            if (o && r == 0) {
                json_object_set_new(o, "kept", json_integer((json_int_t) reply->control->rows));
                json_object_set_new(o, "dropped",
                                    json_integer((json_int_t) reply->control->dropped));
                json_object_set_new(o, "ms", json_real(ms));
            } else if (o) {
                json_object_set_new(o, "error", json_string(nf_error_msg()));
            }
            if (o)
                nf_results_write(stdout, o);
            json_decref(o);
        } else if (r == 0) {
            printf("%-16s kept %llu rows, dropped %llu deleted rows (%.0f ms)\n", p->name,
                   (unsigned long long) reply->control->rows,
                   (unsigned long long) reply->control->dropped, ms);
        } else {
            printf("%-16s failed: %s\n", p->name, nf_error_msg());
        }
        failed += r != 0;
        if (reply)
            nf_env_destroy(&reply);
        nf_client_destroy(&cl);
        fflush(stdout);
    }
    s_target_clear(&t);
    if (!shards) {
        fprintf(stderr, "nflow compact: the flow has no indexer\n");
        return 1;
    }
    return failed ? 1 : 0;
}
