/*  nf_pod: the runtime every pod program's main uses.

    Owns what all pods share: the command line and NFLOW_* environment
    parsed against the pod's nf_podspec table; the sockets it binds and
    connects (ZeroMQ, czmq); the control socket (a ROUTER bound only once
    the pod is ready) that answers PING, STATUS and TERMINATE; the --errors
    PUSH used to fail a request straight to the gateway; the counters STATUS
    reports; the poll loop that serves control requests while the pod waits
    for data; logging with the `[name] ` prefix on stderr; and a clean stop
    on TERMINATE, SIGTERM or SIGINT (czmq's zsys_interrupted).

    Typical main:
        nf_pod_t *pod = NULL;
        if (nf_pod_new("reducer", argc, argv, &pod) != NF_OK) {
            fprintf(stderr, "nflow-reducer: %s\n", nf_error_msg());
            return 2;
        }
        if (!pod)
            return 0;                          (--help was printed)
        zsock_t *in = NULL;
        if (nf_pod_bind(pod, "in", ZMQ_PULL, true, &in) != NF_OK) ...
        nf_pod_ready(pod);                     (binds --control, logs one line)
        while (!nf_pod_stopping(pod)) {
            nf_pod_wait(pod, 100);
            if (nf_pod_readable(pod, in)) ...
        }
        nf_pod_destroy(&pod);                  (closes every socket it made)
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

/* Create a socket of type for option key ("in", "out", ...) and bind it
   (connect when connect is true) to the option's endpoint, or to each of
   a comma-separated list.  When poll is true the pod's wait loop watches
   it for input.  PUSH and ROUTER sockets get a 1 s send timeout so a
   stuck peer never blocks the pod forever; ROUTER sockets are
   ROUTER_MANDATORY.  NF_EINVAL when the option is missing, NF_EIO when the
   endpoint cannot be bound or connected.  The pod owns *sock. */
int nf_pod_bind(nf_pod_t *self, const char *key, int type, bool poll, zsock_t **sock);
int nf_pod_connect(nf_pod_t *self, const char *key, int type, bool poll, zsock_t **sock);

/* nf_pod_connect with a socket identity set first (a shard's DEALER). */
int nf_pod_connect_as(nf_pod_t *self, const char *key, int type, const char *identity,
                      bool poll, zsock_t **sock);

/* Take over a socket made by the caller: the pod closes it at destroy
   and, when poll is true, watches it. */
void nf_pod_adopt(nf_pod_t *self, zsock_t *sock, bool poll);

/* Connect the --errors PUSH when given (else the pod has none) and bind
   the --control ROUTER when given; then log one line "[name] ready ...".
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

/* True when sock had input at the last nf_pod_wait. */
bool nf_pod_readable(const nf_pod_t *self, zsock_t *sock);

/* True when the pod must stop: TERMINATE was answered, or SIGTERM/SIGINT. */
bool nf_pod_stopping(const nf_pod_t *self);

/* Ask the pod to stop (the wait loop then returns 0). */
void nf_pod_stop(nf_pod_t *self);

/* Answer a Control envelope received on sock from routing (PING, STATUS,
   TERMINATE; anything else is answered BAD_REQUEST).  Used by the control
   socket and by the gateway's client socket. */
void nf_pod_control(nf_pod_t *self, zsock_t *sock, zmsg_t *routing,
                    const Nflow__Envelope *env);

/* Handle a frame nf_msg_recv rejected with rc: count it, log "[name]
   malformed frame from PEER: what", and answer BAD_REQUEST (BAD_VERSION for
   NF_EVERSION) to the sender when routable (msg->routing set), else to the
   gateway via --errors when the envelope had a request id. */
void nf_pod_malformed(nf_pod_t *self, zsock_t *sock, nf_msg_t *msg, int rc);

/* Same, for an envelope that unpacked but carries the wrong body for the
   socket, or bad content; what says what was wrong. */
void nf_pod_reject(nf_pod_t *self, zsock_t *sock, nf_msg_t *msg, const char *what);

/* Fail request_id straight to the gateway via --errors with a status;
   counts an error.  No-op (besides the count) without --errors. */
void nf_pod_fail(nf_pod_t *self, uint64_t request_id, Nflow__StatusCode code,
                 const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/* Log one line "[name] ..." on stderr. */
void nf_pod_log(const nf_pod_t *self, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#endif
