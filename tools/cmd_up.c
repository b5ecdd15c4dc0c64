/*  nflow up FLOW.yml: the supervisor.  The flow is expanded into processes
    by lib/flow (nf_expand: the rules in nf_flow.h, the contract in
    proto/README.md); this command starts the pods of this host, waits until
    every pod answers PING, prints `ready gateway=EP`, writes
    <workspace>/flow.state (nf_flowstate), then supervises: restarts pods
    that die (exponential backoff) and, on SIGINT/SIGTERM/SIGHUP, TERMINATEs
    every pod, SIGKILLs stragglers, removes flow.state and exits 0.

    Signals are blocked and read from a signalfd, so the loop is a plain
    poll over the signalfd and the pods' control sockets.  Pods run in their
    own process group (a terminal's Ctrl-C reaches only the launcher, which
    stops them in order) and get SIGTERM if the launcher dies (PDEATHSIG). */
#include "args.h"
#include "nflow.h"

#include <czmq.h>
#include <errno.h>
#include <stdarg.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "nf_canon.h"
#include "nf_client.h"
#include "nf_error.h"
#include "nf_expand.h"
#include "nf_keys.h"
#include "nf_flow.h"
#include "nf_flowstate.h"
#include "nf_sys.h"

#define S_BACKOFF_MIN_MS 100
#define S_BACKOFF_MAX_MS 5000
#define S_STABLE_US (10u * 1000000u)   /* up this long: backoff resets */
#define S_SHUTDOWN_TERM_MS 700         /* TERMINATE unanswered: SIGTERM */
#define S_SHUTDOWN_KILL_MS 1500        /* still alive: SIGKILL */
#define S_WAITING_EVERY_US (5u * 1000000u)  /* "waiting for ..." this often */

extern char **environ;

typedef struct {
    nf_proc_t *plan;            /* its entry in the plan (nf_expand) */
    const char *name;           /* "indexer/1" */
    const nf_flow_pod_t *pod;
    const char *host;
    bool start;                 /* started by this launcher */
    const char *control;        /* control endpoint (connect form) */
    char **argv;                /* the plan's, argv[0] made a path */
    char **envp;                /* full environment for execve */
    size_t nenv;
    /* run time */
    pid_t pid;
    uint64_t started_us;
    unsigned backoff_ms;
    uint64_t restart_at_us;     /* 0 = none pending */
    bool ready;
} s_proc_t;

typedef struct {
    nf_flow_t *flow;
    nf_plan_t *plan;
    char *workspace;            /* absolute */
    char *state_path;
    const char *gateway;        /* clients endpoint */
    s_proc_t *procs;
    size_t nprocs;
    sigset_t oldmask;
    int sigfd;
    int lockfd;
    char *keydir;               /* absolute key directory; NULL = plain TCP */
    nf_keys_t *keys;            /* the operator key (PING, TERMINATE) */
    char *canon;                /* the flow's canonical text (nf_canon) */
    uint64_t fingerprint;
} s_up_t;

/* One line of the launcher's log on stderr, with an ISO 8601 time. */
static void
s_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void
s_log(const char *fmt, ...)
{
    char line[2048], now[32];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    fprintf(stderr, "%s nflow up: %s\n", nf_iso_now(now, sizeof now), line);
}

/* The key name a process's server sockets use: shard-<s> for the sharded
   role's instances, "pod" for every other pod. */
static const char *
s_server_key(const nf_proc_t *q, char *buf, size_t size)
{
    if (q->pod->spec->scale == NF_SCALE_SHARDS)
        return nf_keys_shard_name(q->index, buf, size);
    snprintf(buf, size, "pod");
    return buf;
}

/* A control client of process i (CURVE with the operator key when the
   flow has keys). */
static int
s_control_client(const s_up_t *up, size_t i, nf_client_t **out)
{
    char key[NF_KEY_NAME_MAX + 1];
    return nf_client_new_keyed(up->procs[i].control, up->keys,
                               s_server_key(up->procs[i].plan, key, sizeof key), out);
}

static int
s_oom(void)
{
    return nf_error_set(NF_ENOMEM, "out of memory");
}

/* The processes of the flow (nf_flow_expand), for supervision. */
static int
s_expand(s_up_t *up, const char *only_host)
{
    nf_expand_opts_t o = {.workspace = up->workspace, .only_host = only_host,
                          .keys = up->keydir};
    int rc = nf_flow_expand(up->flow, &o, &up->plan);
    if (rc != 0)
        return rc;
    up->gateway = up->plan->gateway;
    up->procs = calloc(up->plan->nprocs + 1, sizeof *up->procs);
    if (!up->procs)
        return s_oom();
    for (size_t i = 0; i < up->plan->nprocs; i++) {
        nf_proc_t *q = &up->plan->procs[i];
        up->procs[up->nprocs++] = (s_proc_t){
            .plan = q, .name = q->name, .pod = q->pod, .host = q->host, .start = q->start,
            .control = q->control, .argv = q->argv, .backoff_ms = S_BACKOFF_MIN_MS,
        };
    }
    return 0;
}

/* Full environment of a process: ours, minus what its own entries set. */
static int
s_build_env(s_proc_t *p)
{
    char **own = p->plan->env;
    size_t nown = p->plan->nenv;
    int rc = 0;
    for (char **e = environ; *e && rc == 0; e++) {
        const char *eq = strchr(*e, '=');
        size_t klen = eq ? (size_t) (eq - *e) : strlen(*e);
        bool shadowed = false;
        for (size_t i = 0; i < nown; i++)
            if (!strncmp(own[i], *e, klen) && own[i][klen] == '=')
                shadowed = true;
        if (!shadowed)
            rc = nf_strv_push(&p->envp, &p->nenv, strdup(*e));
    }
    for (size_t i = 0; i < nown && rc == 0; i++)
        rc = nf_strv_push(&p->envp, &p->nenv, strdup(own[i]));
    return rc;
}

/* The built-in programs' paths (nf_flow_find_program); the Python binding
   of the protocol for exec pods (NFLOW_PY_PROTO_DIR, nf_flow_py_proto_dir). */
static int
s_find_programs(s_up_t *up)
{
    char py[PATH_MAX];
    if (!getenv("NFLOW_PY_PROTO_DIR") && nf_flow_py_proto_dir(py, sizeof py) == 0)
        setenv("NFLOW_PY_PROTO_DIR", py, 0);
    for (size_t i = 0; i < up->nprocs; i++) {
        s_proc_t *p = &up->procs[i];
        if (!strcmp(p->pod->uses, "exec"))
            continue;
        char path[PATH_MAX + 64];
        int rc = nf_flow_find_program(p->argv[0], path, sizeof path);
        if (rc != 0) {
            if (p->start)
                return rc;      /* the message names where it looked */
            continue;
        }
        free(p->argv[0]);
        if (!(p->argv[0] = strdup(path)))
            return s_oom();
    }
    return 0;
}

/* ------------------------------------------------------------------ */
/* Processes                                                           */

static void
s_describe(int status, char *buf, size_t size)
{
    if (WIFEXITED(status))
        snprintf(buf, size, "status %d", WEXITSTATUS(status));
    else if (WIFSIGNALED(status))
        snprintf(buf, size, "signal %d, %s", WTERMSIG(status), strsignal(WTERMSIG(status)));
    else
        snprintf(buf, size, "wait status %d", status);
}

static int
s_spawn(s_up_t *up, s_proc_t *p)
{
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0)
        return nf_error_set(NF_EIO, "fork %s: %s", p->name, strerror(errno));
    if (pid == 0) {
        /* child: only async-signal-safe calls until exec */
        sigprocmask(SIG_SETMASK, &up->oldmask, NULL);
        setpgid(0, 0);
        prctl(PR_SET_PDEATHSIG, SIGTERM);
        if (getppid() != parent)
            _exit(127);
        dup2(STDERR_FILENO, STDOUT_FILENO);
        if (p->pod->workdir && chdir(p->pod->workdir) != 0) {
            static const char m[] = "nflow up: cannot enter the pod's workdir\n";
            (void) !write(STDERR_FILENO, m, sizeof m - 1);
            _exit(127);
        }
        execvpe(p->argv[0], p->argv, p->envp);
        static const char m[] = "nflow up: exec failed: ";
        (void) !write(STDERR_FILENO, m, sizeof m - 1);
        (void) !write(STDERR_FILENO, p->argv[0], strlen(p->argv[0]));
        (void) !write(STDERR_FILENO, "\n", 1);
        _exit(127);
    }
    p->pid = pid;
    p->started_us = nf_now_us();
    p->restart_at_us = 0;
    return 0;
}

static int
s_write_state(s_up_t *up)
{
    nf_flowstate_pod_t *pods = calloc(up->nprocs + 1, sizeof *pods);
    nf_flowstate_bind_t *binds = NULL;
    size_t nbinds = 0;
    for (size_t i = 0; i < up->nprocs; i++)
        nbinds += up->procs[i].plan->nbinds;
    binds = calloc(nbinds + 1, sizeof *binds);
    if (!pods || !binds) {
        free(pods);
        free(binds);
        return s_oom();
    }
    nf_flowstate_bind_t *b = binds;
    for (size_t i = 0; i < up->nprocs; i++) {
        s_proc_t *p = &up->procs[i];
        pods[i] = (nf_flowstate_pod_t){
            .name = (char *) p->name, .uses = p->pod->uses, .role = p->pod->role,
            .host = (char *) p->host, .control = (char *) p->control,
            .pid = p->start ? p->pid : 0, .started = p->start,
            .binds = b, .nbinds = p->plan->nbinds,
        };
        for (size_t j = 0; j < p->plan->nbinds; j++, b++)
            *b = (nf_flowstate_bind_t){p->plan->binds[j].option, p->plan->binds[j].endpoint};
    }
    nf_flowstate_t st = {.flow = up->flow->name, .gateway = (char *) up->gateway,
                         .launcher_pid = getpid(), .pods = pods, .npods = up->nprocs};
    int rc = nf_flowstate_write(up->state_path, &st);
    free(pods);
    free(binds);
    return rc;
}

/* Reap dead children; schedule restarts when restart is true. */
static void
s_reap(s_up_t *up, bool restart)
{
    int status;
    pid_t pid;
    while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
        for (size_t i = 0; i < up->nprocs; i++) {
            s_proc_t *p = &up->procs[i];
            if (p->pid != pid)
                continue;
            p->pid = 0;
            p->ready = false;
            if (!restart)
                continue;
            char how[96];
            s_describe(status, how, sizeof how);
            uint64_t now = nf_now_us();
            if (now - p->started_us >= S_STABLE_US)
                p->backoff_ms = S_BACKOFF_MIN_MS;
            s_log("pod %s exited (%s); restarting in %u ms", p->name, how, p->backoff_ms);
            p->restart_at_us = now + (uint64_t) p->backoff_ms * 1000u;
            p->backoff_ms = p->backoff_ms * 2 > S_BACKOFF_MAX_MS ? S_BACKOFF_MAX_MS : p->backoff_ms * 2;
        }
    }
}

/* Read pending signals: returns the last terminating signal, 0 if none;
   *child is set when SIGCHLD came. */
static int
s_signals(s_up_t *up, bool *child)
{
    struct signalfd_siginfo si;
    int term = 0;
    while (read(up->sigfd, &si, sizeof si) == (ssize_t) sizeof si) {
        if (si.ssi_signo == SIGCHLD)
            *child = true;
        else
            term = (int) si.ssi_signo;
    }
    return term;
}

/* A PING answer from process i: NF_EINVAL naming the first differing key
   and the host when it runs another flow. */
static int
s_check_flow(const s_up_t *up, size_t i, const Nflow__Control *c)
{
    if (!c->fingerprint || c->fingerprint == up->fingerprint)
        return 0;
    char what[600] = "";
    if (!c->canonical || !*c->canonical || !nf_canon_diff(up->canon, c->canonical, what, sizeof what))
        snprintf(what, sizeof what, "fingerprint %016llx here, %016llx there",
                 (unsigned long long) up->fingerprint, (unsigned long long) c->fingerprint);
    return nf_error_set(NF_EINVAL, "pod %s on host %s runs a different flow: %s; refused "
                        "(every host must start the same flow file)", up->procs[i].name,
                        up->procs[i].host, what);
}

/* Wait until every process answers PING, or a started one dies, or one
   runs a different flow, or a signal asks us to stop; pods started here
   must answer within NF_FLOW_READY_MS, the others as long as they take
   (every few seconds a line says who we wait for), both bounded by
   timeout_ms when it is not 0. */
static int
s_wait_ready(s_up_t *up, int timeout_ms)
{
    nf_client_t **cl = calloc(up->nprocs + 1, sizeof *cl);
    zmq_pollitem_t *items = calloc(up->nprocs + 1, sizeof *items);
    uint64_t *sent = calloc(up->nprocs + 1, sizeof *sent);
    int rc = cl && items && sent ? 0 : nf_error_set(NF_ENOMEM, "out of memory");
    for (size_t i = 0; i < up->nprocs && rc == 0; i++) {
        rc = s_control_client(up, i, &cl[i]);
        sent[i] = 0;
    }
    uint64_t t0 = nf_now_us(), said = t0;
    uint64_t deadline = t0 + (uint64_t) (timeout_ms ? timeout_ms : NF_FLOW_READY_MS) * 1000u;
    while (rc == 0) {
        size_t waiting = 0;
        uint64_t now = nf_now_us();
        for (size_t i = 0; i < up->nprocs; i++) {
            items[i] = (zmq_pollitem_t){.socket = zsock_resolve(nf_client_sock(cl[i])), .events = ZMQ_POLLIN};
            if (up->procs[i].ready)
                continue;
            waiting++;
            if (now - sent[i] >= 500000) {   /* (re)send PING every 0.5 s */
                nf_env_t env;
                Nflow__Control ctl;
                nf_control_env(&env, &ctl, NFLOW__CONTROL_COMMAND__CONTROL_PING);
                (void) nf_client_send(cl[i], &env, NULL);
                sent[i] = now;
            }
        }
        if (!waiting)
            break;
        if (now - said >= S_WAITING_EVERY_US) {
            char who[1024];
            size_t n = 0;
            for (size_t i = 0; i < up->nprocs && n + 80 < sizeof who; i++)
                if (!up->procs[i].ready)
                    n += (size_t) snprintf(who + n, sizeof who - n, "%s%s on %s", n ? ", " : "",
                                           up->procs[i].name, up->procs[i].host);
            s_log("waiting %.0f s for %s", (double) (now - t0) / 1e6, who);
            said = now;
        }
        if (now >= deadline) {
            for (size_t i = 0; i < up->nprocs; i++) {
                s_proc_t *p = &up->procs[i];
                if (p->ready || (!timeout_ms && !p->start))
                    continue;   /* others' pods: as long as they take, unless bounded */
                int ms = timeout_ms ? timeout_ms : NF_FLOW_READY_MS;
                if (p->start)
                    rc = nf_error_set(NF_ETIMEOUT, "pod %s is not ready after %d ms (pid %d is "
                                      "running but does not answer PING on %s)", p->name,
                                      ms, (int) p->pid, p->control);
                else
                    rc = nf_error_set(NF_ETIMEOUT, "pod %s on %s is not ready after %d ms (no "
                                      "answer to PING on %s; is its launcher running there?)",
                                      p->name, p->host, ms, p->control);
                break;
            }
            if (rc)
                break;
        }
        items[up->nprocs] = (zmq_pollitem_t){.fd = up->sigfd, .events = ZMQ_POLLIN};
        if (zmq_poll(items, (int) up->nprocs + 1, 100) < 0 && zmq_errno() != EINTR) {
            rc = nf_error_set(NF_EIO, "poll: %s", zmq_strerror(zmq_errno()));
            break;
        }
        bool child = false;
        int term = s_signals(up, &child);
        if (term) {
            rc = nf_error_set(NF_EIO, "interrupted by signal %d before the flow was ready", term);
            break;
        }
        for (size_t i = 0; i < up->nprocs; i++) {
            nf_env_t *reply = NULL;
            while (rc == 0 && nf_client_recv(cl[i], 0, &reply) == 0) {
                if (reply->body_case == NF_BODY_CONTROL && rc == 0)
                    rc = s_check_flow(up, i, reply->control);
                if (reply->body_case == NF_BODY_CONTROL && reply->control->ready && rc == 0)
                    up->procs[i].ready = true;
                nf_env_destroy(&reply);
                reply = NULL;
            }
        }
        if (child) {
            int status;
            pid_t pid;
            while (rc == 0 && (pid = waitpid(-1, &status, WNOHANG)) > 0)
                for (size_t i = 0; i < up->nprocs; i++)
                    if (up->procs[i].pid == pid) {
                        char how[96];
                        s_describe(status, how, sizeof how);
                        up->procs[i].pid = 0;
                        rc = nf_error_set(NF_EIO, "pod %s exited (%s) before it was ready",
                                          up->procs[i].name, how);
                    }
        }
    }
    for (size_t i = 0; cl && i < up->nprocs; i++)
        nf_client_destroy(&cl[i]);
    free(cl);
    free(items);
    free(sent);
    return rc;
}

/* TERMINATE every started pod, SIGTERM then SIGKILL what remains. */
static void
s_stop_all(s_up_t *up)
{
    nf_client_t **cl = calloc(up->nprocs + 1, sizeof *cl);
    for (size_t i = 0; cl && i < up->nprocs; i++) {
        s_proc_t *p = &up->procs[i];
        p->restart_at_us = 0;
        if (!p->start || p->pid <= 0)
            continue;
        nf_env_t env;
        Nflow__Control ctl;
        nf_control_env(&env, &ctl, NFLOW__CONTROL_COMMAND__CONTROL_TERMINATE);
        if (s_control_client(up, i, &cl[i]) == 0)
            (void) nf_client_send(cl[i], &env, NULL);
    }
    uint64_t t0 = nf_now_us();
    bool termed = false;
    for (;;) {
        s_reap(up, false);
        size_t alive = 0;
        for (size_t i = 0; i < up->nprocs; i++)
            alive += up->procs[i].start && up->procs[i].pid > 0;
        if (!alive)
            break;
        uint64_t ms = (nf_now_us() - t0) / 1000u;
        if (ms >= S_SHUTDOWN_KILL_MS) {
            for (size_t i = 0; i < up->nprocs; i++)
                if (up->procs[i].pid > 0) {
                    s_log("pod %s did not stop; killing it", up->procs[i].name);
                    kill(-up->procs[i].pid, SIGKILL);  /* its process group */
                    waitpid(up->procs[i].pid, NULL, 0);
                    up->procs[i].pid = 0;
                }
            break;
        }
        if (ms >= S_SHUTDOWN_TERM_MS && !termed) {
            for (size_t i = 0; i < up->nprocs; i++)
                if (up->procs[i].pid > 0)
                    kill(-up->procs[i].pid, SIGTERM);
            termed = true;
        }
        struct pollfd pfd = {.fd = up->sigfd, .events = POLLIN};
        poll(&pfd, 1, 20);
        bool child = false;
        (void) s_signals(up, &child);
    }
    for (size_t i = 0; cl && i < up->nprocs; i++)
        nf_client_destroy(&cl[i]);
    free(cl);
}

static int
s_supervise(s_up_t *up)
{
    for (;;) {
        uint64_t now = nf_now_us(), next = 0;
        for (size_t i = 0; i < up->nprocs; i++) {
            s_proc_t *p = &up->procs[i];
            if (!p->restart_at_us)
                continue;
            if (p->restart_at_us <= now) {
                if (s_spawn(up, p) != 0) {
                    s_log("%s", nf_error_msg());
                    p->restart_at_us = now + (uint64_t) p->backoff_ms * 1000u;
                } else if (s_write_state(up) != 0) {
                    s_log("%s", nf_error_msg());
                }
            }
            if (p->restart_at_us && (!next || p->restart_at_us < next))
                next = p->restart_at_us;
        }
        int wait_ms = next ? (int) ((next > now ? next - now : 0) / 1000u) + 1 : 1000;
        struct pollfd pfd = {.fd = up->sigfd, .events = POLLIN};
        poll(&pfd, 1, wait_ms);
        bool child = false;
        int term = s_signals(up, &child);
        if (child)
            s_reap(up, true);
        if (term)
            return term;
    }
}

static void
s_cleanup(s_up_t *up)
{
    for (size_t i = 0; up->procs && i < up->nprocs; i++) {
        s_proc_t *p = &up->procs[i];
        for (size_t j = 0; j < p->nenv; j++)
            free(p->envp[j]);
        free(p->envp);
    }
    free(up->procs);
    nf_plan_destroy(&up->plan);
    free(up->workspace);
    free(up->state_path);
    nf_keys_destroy(&up->keys);
    free(up->keydir);
    free(up->canon);
    nf_flow_destroy(&up->flow);
    if (up->sigfd >= 0)
        close(up->sigfd);
    if (up->lockfd >= 0)
        close(up->lockfd);
}

/* A workspace keeps the shard count its indexer was built with (in
   <workspace>/<indexer>/nshards): with another count the id hash would put
   documents on other shards and old copies would be found twice. */
static int
s_check_shards(const s_up_t *up)
{
    const nf_flow_pod_t *idx = NULL;      /* the sharded role (the indexer) */
    for (size_t i = 0; i < up->flow->npods; i++)
        if (up->flow->pods[i].spec->scale == NF_SCALE_SHARDS)
            idx = &up->flow->pods[i];
    bool here = false;
    for (size_t i = 0; i < up->nprocs; i++)
        here |= up->procs[i].pod == idx && up->procs[i].start;
    if (!here)
        return 0;
    char path[PATH_MAX + 300];
    snprintf(path, sizeof path, "%s/%s/nshards", up->workspace, idx->name);
    FILE *f = fopen(path, "r");
    unsigned n = 0;
    if (f) {
        bool ok = fscanf(f, "%u", &n) == 1;
        fclose(f);
        if (ok && n != idx->count)
            return nf_error_set(NF_EINVAL, "%s: the workspace holds %u shards but the flow has %u; "
                                "re-sharding is not supported (use a new workspace)", path, n,
                                idx->count);
        return 0;
    }
    if (zsys_dir_create("%s/%s", up->workspace, idx->name) != 0 || !(f = fopen(path, "w")))
        return nf_error_set(NF_EIO, "%s: %s", path, strerror(errno));
    fprintf(f, "%u\n", idx->count);
    return fclose(f) == 0 ? 0 : nf_error_set(NF_EIO, "%s: %s", path, strerror(errno));
}

static void
s_print_plan(const s_up_t *up)
{
    printf("flow %s: workspace %s, gateway %s\n", up->flow->name, up->workspace, up->gateway);
    for (size_t i = 0; i < up->nprocs; i++) {
        const s_proc_t *p = &up->procs[i];
        printf("%s (%s, %s):", p->name, p->host, p->start ? "started here" : "started elsewhere");
        for (size_t j = 0; j < p->plan->argc; j++)
            printf(" %s", p->argv[j]);
        printf("\n");
    }
}

/* The flow's key directory made absolute, and the operator key the
   launcher PINGs and TERMINATEs with. */
static int
s_keys(s_up_t *up, bool open_key)
{
    const char *k = up->flow->keys;
    char cwd[PATH_MAX] = "";
    if (k[0] != '/' && !getcwd(cwd, sizeof cwd))
        return nf_error_set(NF_EIO, "getcwd: %s", strerror(errno));
    if (asprintf(&up->keydir, "%s%s%s", k[0] == '/' ? "" : cwd, k[0] == '/' || !*cwd ? "" : "/",
                 k) < 0) {
        up->keydir = NULL;
        return s_oom();
    }
    if (!open_key)
        return 0;       /* --dry-run: the pods' --keys only */
    int rc = nf_keys_open(up->keydir, "operator", &up->keys);
    if (rc != 0) {
        char why[900];
        snprintf(why, sizeof why, "%s", nf_error_msg());
        return nf_error_set(rc, "flow %s uses CurveZMQ: %s (a launcher needs the operator key; "
                            "`nflow keys %s` makes the keys)", up->flow->name, why, up->flow->path);
    }
    return 0;
}

/* Every pod started here has its secret key, private to this user. */
static int
s_check_secrets(const s_up_t *up)
{
    for (size_t i = 0; i < up->nprocs; i++) {
        if (!up->procs[i].start)
            continue;
        char key[NF_KEY_NAME_MAX + 1], path[PATH_MAX + 80];
        snprintf(path, sizeof path, "%s/%s.key", up->keydir,
                 s_server_key(up->procs[i].plan, key, sizeof key));
        int rc = nf_keys_check_secret(path);
        if (rc != 0) {
            char why[900];
            snprintf(why, sizeof why, "%s", nf_error_msg());
            return nf_error_set(rc, "pod %s: %s", up->procs[i].name, why);
        }
    }
    return 0;
}

#define S_STR_(x) #x
#define S_STR(x) S_STR_(x)

int
cmd_up(int argc, char **argv)
{
    const char *path = NULL, *workspace = NULL, *host = NULL;
    int timeout_ms = 0;
    bool dry = false;
    const nf_arg_t args[] = {
        {"FLOW.yml", NULL, NF_ARG_POS, &path, .required = true, .help = "the flow file"},
        {"--workspace", NULL, NF_ARG_STR, &workspace, .meta = "DIR",
         .help = "override the flow's workspace (flow.state and shards live there)"},
        {"--host", NULL, NF_ARG_STR, &host, .meta = "H",
         .help = "start only the pods placed on host H (multi-host flows)"},
        {"--timeout-ms", NULL, NF_ARG_INT, &timeout_ms, 1, NF_FLOW_READY_MAX_MS, .meta = "T",
         .help = "bound the wait for every pod to be ready (default: " S_STR(NF_FLOW_READY_MS)
                 " ms for\n"
                 "the pods started here, no bound for other hosts' pods)"},
        {"--dry-run", NULL, NF_ARG_FLAG, &dry,
         .help = "print the processes and their command lines, start nothing"},
    };
    const nf_args_t spec = {"nflow up", args, NF_ARGS_COUNT(args),
                            .summary = "Start a flow and stay in the foreground; prints `ready "
                                       "gateway=EP` once every\npod answers.  SIGINT/SIGTERM "
                                       "stop it."};
    int usage;
    if (!nf_args_parse(&spec, argc, argv, &usage))
        return usage;
    s_up_t up = {.sigfd = -1, .lockfd = -1};
    int rc = nf_flow_load(path, &up.flow);
    const char *ws = rc == 0 ? (workspace ? workspace : up.flow->workspace) : NULL;
    char cwd[PATH_MAX] = "";
    if (rc == 0 && ws[0] != '/' && !getcwd(cwd, sizeof cwd))
        rc = nf_error_set(NF_EIO, "getcwd: %s", strerror(errno));
    if (rc == 0 && (asprintf(&up.workspace, "%s%s%s", cwd, *cwd ? "/" : "", ws) < 0
                    || asprintf(&up.state_path, "%s/%s", up.workspace, NF_FLOWSTATE_FILE) < 0))
        rc = s_oom();
    if (rc == 0 && !dry && zsys_dir_create("%s", up.workspace) != 0)
        rc = nf_error_set(NF_EIO, "cannot create the workspace %s: %s", up.workspace, strerror(errno));
    if (rc == 0 && up.flow->curve)
        rc = s_keys(&up, !dry);
    if (rc == 0)
        rc = nf_canon_text(up.flow, &up.canon);
    if (rc == 0) {
        up.fingerprint = nf_canon_fingerprint(up.canon);
        setenv("NFLOW_CANON", up.canon, 1);  /* the pods report it (nf_pod_canon) */
    }
    if (rc == 0)
        rc = s_expand(&up, host);
    if (rc == 0 && up.flow->curve && !dry)
        rc = s_check_secrets(&up);
    /* Programs first: finding them sets NFLOW_PY_PROTO_DIR, which the
       environment of exec pods must carry. */
    if (rc == 0)
        rc = s_find_programs(&up);
    for (size_t i = 0; rc == 0 && i < up.nprocs; i++)
        rc = s_build_env(&up.procs[i]);
    if (rc == 0 && dry) {
        s_print_plan(&up);
        s_cleanup(&up);
        return 0;
    }
    if (rc == 0) {
        char lock[PATH_MAX + 16];
        snprintf(lock, sizeof lock, "%s/flow.lock", up.workspace);
        up.lockfd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
        if (up.lockfd < 0 || flock(up.lockfd, LOCK_EX | LOCK_NB) != 0)
            rc = nf_error_set(NF_EEXIST, "workspace %s is in use by another `nflow up` (%s)",
                              up.workspace, up.lockfd < 0 ? strerror(errno) : "locked");
        if (rc == 0)
            rc = s_check_shards(&up);
    }
    if (rc) {
        s_log("%s", nf_error_msg());
        s_cleanup(&up);
        return 1;
    }
    if (up.flow->insecure && up.flow->multihost)
        s_log("WARNING: flow %s runs on several hosts with `security: none`: every link is "
              "plain TCP, readable and writable by anyone on the network", up.flow->name);

    /* signals: blocked here (and so in czmq's threads), read via signalfd */
    zsys_handler_set(NULL);
    signal(SIGPIPE, SIG_IGN);
    sigset_t mask;
    sigemptyset(&mask);
    sigaddset(&mask, SIGINT);
    sigaddset(&mask, SIGTERM);
    sigaddset(&mask, SIGHUP);
    sigaddset(&mask, SIGCHLD);
    sigprocmask(SIG_BLOCK, &mask, &up.oldmask);
    up.sigfd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
    if (up.sigfd < 0) {
        fprintf(stderr, "nflow up: signalfd: %s\n", strerror(errno));
        s_cleanup(&up);
        return 1;
    }
    for (size_t i = 0; rc == 0 && i < up.nprocs; i++)
        if (up.procs[i].start)
            rc = s_spawn(&up, &up.procs[i]);
    if (rc == 0)
        rc = s_wait_ready(&up, timeout_ms);
    if (rc == 0)
        rc = s_write_state(&up);
    if (rc) {
        s_log("%s", nf_error_msg());
        s_stop_all(&up);
        unlink(up.state_path);
        s_cleanup(&up);
        return 1;
    }
    printf("ready gateway=%s\n", up.gateway);
    fflush(stdout);
    int sig = s_supervise(&up);
    s_log("%s: stopping flow %s", strsignal(sig), up.flow->name);
    s_stop_all(&up);
    unlink(up.state_path);
    s_cleanup(&up);
    return 0;
}
