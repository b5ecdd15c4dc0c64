/*  nf_pod: the runtime every pod program's main uses.

    Owns what all pods share: the command line and NFLOW_* environment
    parsed against the pod's nf_podspec tables; the sockets of its role,
    opened as the socket table says and made by the socket factory
    (nf_socket); the control socket (a ROUTER bound only once
    the pod is ready) that answers PING, STATUS and TERMINATE; the --errors
    PUSH used to fail a request straight to the gateway; the counters STATUS
    reports; the poll loop that serves control requests while the pod waits
    for data; the pod's CurveZMQ keys (--keys, nf_keys) applied to every
    socket it makes; the flow fingerprint it reports; logging with an ISO
    8601 time and the `[name] ` prefix on stderr; and a clean stop
    on TERMINATE, SIGTERM or SIGINT (czmq's zsys_interrupted).

    Every pod's main is nf_pod_main with three hooks:
        static int s_setup(nf_pod_t *pod, void *arg)     (read settings;
        {                                                 sockets are open)
            reducer_t *self = arg;
            self->in = nf_pod_sock(pod, "in");
            self->top_k = (uint32_t) nf_pod_int(pod, "top_k");
            return NF_OK;
        }
        static void s_step(nf_pod_t *pod, void *arg)     (one turn of the loop)
        {
            nf_pod_wait(pod, 100);
            nf_pod_drain(pod, ((reducer_t *) arg)->in, 1024, s_handle, arg);
        }
        int main(int argc, char **argv)
        {
            reducer_t self = {0};
            nf_pod_hooks_t hooks = {s_setup, s_step, s_teardown};
            return nf_pod_main("reducer", argc, argv, &hooks, &self);
        }
    nf_pod_main parses the options (exit 2 on bad ones, 0 after --help),
    opens every socket of the role from the socket table (nf_podspec),
    calls setup, binds --control (nf_pod_ready), runs step until the pod
    must stop, then teardown, and closes everything.
    The pod is single-threaded; none of this is thread-safe.               */
#ifndef NF_POD_H
#define NF_POD_H

#include <czmq.h>
#include <stdbool.h>
#include <stdint.h>

#include "nf_msg.h"
#include "nf_podspec.h"

typedef struct nf_pod nf_pod_t;

/* Counters reported by STATUS; the pod's main updates them directly. */
typedef struct {
    uint64_t served;        /* requests handled */
    uint64_t errors;        /* requests failed */
    uint64_t malformed;     /* frames rejected */
    uint64_t rows;          /* indexer: live rows */
    uint32_t dim;           /* vector dimension, when the pod has one */
    uint32_t shard;
} nf_pod_stats_t;

/* Parse argv (`--key value` or `--key=value`) and, for every option not on
   the command line, the environment variable NFLOW_<KEY> (upper case).
   Options: the common ones (name, control, errors, and per role replica /
   shard / nshards / workspace; these four are accepted, and ignored, by
   every pod), the role's sockets and its settings, each value checked
   against the table.  On `--help` / `-h` the help text is
   written to stdout and NF_OK is returned with *out NULL.  NF_EINVAL with a
   message naming the option on bad input. */
int nf_pod_new(const char *uses, int argc, char **argv, nf_pod_t **out);

/* Close every socket the pod made and free it; accepts NULL; NULLs *self_p. */
void nf_pod_destroy(nf_pod_t **self_p);

/* Value of an option or setting (without dashes): command line, else
   environment, else the setting's default, else NULL. */
const char *nf_pod_get(const nf_pod_t *self, const char *key);

/* Integer / boolean value of a key (0 / false when absent; values were
   checked by nf_pod_new). */
long nf_pod_int(const nf_pod_t *self, const char *key);
bool nf_pod_bool(const nf_pod_t *self, const char *key);

/* Instance name ("indexer/1"): --name, else "<role>" or "<role>/<n>". */
const char *nf_pod_name(const nf_pod_t *self);

nf_pod_stats_t *nf_pod_stats(nf_pod_t *self);

/* The socket of option key ("in", "out", ...) as the role's row of the
   socket table says (type, bind or connect, identity, polled or not),
   made by the socket factory (nf_socket) and bound or connected to the
   option's endpoint or to each of a comma-separated list; the same socket
   when it is open already.  NF_EINVAL when key is not a data socket of the
   role or its endpoint is missing, NF_EIO when it cannot be bound or
   connected.  The pod owns *sock. */
int nf_pod_socket(nf_pod_t *self, const char *key, zsock_t **sock);

/* nf_pod_socket for every data socket of the role, in table order. */
int nf_pod_open_sockets(nf_pod_t *self);

/* The open socket of option key, or NULL. */
zsock_t *nf_pod_sock(const nf_pod_t *self, const char *key);

/* Make the sockets the table marks at_ready: connect the --errors PUSH
   when given (else the pod has none) and bind the --control ROUTER when
   given, last; then log one line "[name] ready ...".
   Call once the pod can serve: an answer to PING means ready.  NF_EIO when
   --control cannot be bound. */
int nf_pod_ready(nf_pod_t *self);

/* Wait up to timeout_ms (-1 = no limit) for input on a watched socket,
   answering control requests in the meantime.  Returns the number of
   watched sockets with input (see nf_pod_readable), 0 on timeout or when
   the pod must stop. */
int nf_pod_wait(nf_pod_t *self, int timeout_ms);

/* nf_pod_wait until due_us (nf_now_us clock; UINT64_MAX = none), waking
   at least every max_ms so timers and signals are looked at. */
int nf_pod_wait_until(nf_pod_t *self, uint64_t due_us, int max_ms);

/* What nf_pod_drain hands each well-formed message to; recv_us is the wall
   clock (nf_wall_us) when it was read, for the route's Hop.  msg is
   cleared by nf_pod_drain afterwards. */
typedef void (nf_pod_handler_fn)(void *arg, nf_msg_t *msg, uint64_t recv_us);

/* Read up to max messages already waiting on sock (never blocks): each
   well-formed one goes to handle(arg, ...), each malformed one to
   nf_pod_malformed.  Returns how many were read. */
int nf_pod_drain(nf_pod_t *self, zsock_t *sock, int max, nf_pod_handler_fn *handle, void *arg);

/* nf_pod_drain with nf_msg_recv_raw: bodies are size-checked, not
   decoded (for a pod that only passes them on). */
int nf_pod_drain_raw(nf_pod_t *self, zsock_t *sock, int max, nf_pod_handler_fn *handle,
                     void *arg);

/* True when sock had input at the last nf_pod_wait. */
bool nf_pod_readable(const nf_pod_t *self, zsock_t *sock);

/* The pod's keys (--keys; NULL = plain TCP), the flow fingerprint it was
   given (--fingerprint; 0 = none) and the flow's canonical text
   (NFLOW_CANON in its environment; NULL = none). */
typedef struct nf_keys nf_keys_t;
const nf_keys_t *nf_pod_keys(const nf_pod_t *self);
uint64_t nf_pod_fingerprint(const nf_pod_t *self);
const char *nf_pod_canon(const nf_pod_t *self);

/* True when the pod must stop: TERMINATE was answered, or SIGTERM/SIGINT. */
bool nf_pod_stopping(const nf_pod_t *self);

/* Answer a Control message received on sock from routing (PING, STATUS,
   TERMINATE; anything else is answered BAD_REQUEST).  Used by the control
   socket and by the gateway's client socket. */
void nf_pod_control(nf_pod_t *self, zsock_t *sock, zmsg_t *routing,
                    const nf_env_t *env);

/* Handle a frame nf_msg_recv rejected with rc: count it, log "[name]
   malformed frame from PEER: what", and answer BAD_REQUEST (BAD_VERSION for
   NF_EVERSION) to the sender when routable (msg->routing set), else to the
   gateway via --errors when the message had a request id. */
void nf_pod_malformed(nf_pod_t *self, zsock_t *sock, nf_msg_t *msg, int rc);

/* Same, for an message that unpacked but carries the wrong body for the
   socket, or bad content; what says what was wrong. */
void nf_pod_reject(nf_pod_t *self, zsock_t *sock, nf_msg_t *msg, const char *what);

/* Fail request_id straight to the gateway via --errors with a status;
   counts an error.  No-op (besides the count) without --errors. */
void nf_pod_fail(nf_pod_t *self, uint64_t request_id, Nflow__StatusCode code,
                 const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/* A control command the pod program serves itself (the indexer's
   COMPACT): fn fills out (command, pod, shard... are set already) and
   returns NF_OK, or an NF_E... code with a message (answered
   STATUS_BAD_REQUEST for NF_EINVAL / NF_ELOCKED, else STATUS_INTERNAL).
   Commands nf_pod_control does not know go to fn; NULL = none. */
typedef int (*nf_pod_command_fn)(nf_pod_t *pod, void *arg, const Nflow__Control *in,
                                 Nflow__Control *out);
void nf_pod_on_command(nf_pod_t *self, nf_pod_command_fn fn, void *arg);

/* The hooks of nf_pod_main; arg is the pod program's own state. */
typedef struct {
    int (*setup)(nf_pod_t *pod, void *arg);     /* NULL = none; != NF_OK: exit 1 */
    void (*step)(nf_pod_t *pod, void *arg);     /* one turn of the loop */
    void (*teardown)(nf_pod_t *pod, void *arg); /* NULL = none; always called */
} nf_pod_hooks_t;

/* The whole main of a pod (see the top of this file): returns the exit
   status, 0 after a clean stop or --help, 1 when it could not start, 2 on
   bad options (the message on stderr). */
int nf_pod_main(const char *role, int argc, char **argv, const nf_pod_hooks_t *hooks,
                void *arg);

/* Log one line "2026-11-30T10:41:49.123Z [name] ..." on stderr (UTC,
   milliseconds: the logs of several hosts line up). */
void nf_pod_log(const nf_pod_t *self, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#endif
