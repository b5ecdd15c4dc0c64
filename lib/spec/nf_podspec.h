/*  nf_podspec: the roles of a flow, their sockets and their settings, as
    tables: the single truth about what a pod is.

    - The role table: which program plays each role, how many instances a
      flow runs of it (one, replicas, shards), whether a flow must list it
      (indexer), may (gateway, encoder) or gets it implicitly (router,
      reducer), in launch order.
    - The socket table: every socket of every role, one row each: its
      option (--in), ZeroMQ type, bind or connect, the peer socket it
      connects to ("router.in"), whether the pod's wait loop polls it, and
      the identity rule of a DEALER (indexer: shard-<shard>).  The rows with
      no role (control, errors) belong to every role.  Flow expansion and
      the launcher (nf_expand), the pods (nf_pod), check-pod, every --help
      and proto/README.md's socket table come from it; tests/test_podspec.c
      checks the document against it.  A new socket is one row; a new role
      is one row here, its sockets and its settings table.
    - The instance options every pod takes besides sockets and settings
      (name, replica, shard, nshards, workspace): once, with how the
      launcher fills them.
    - The settings table per role (name, type, bounds, default, help):
      validates a flow file's `with:` (nf_flow), parses a pod's command line
      (nf_pod) and prints its --help (Redis config.c style).

    Command-line contract of every pod (built-in or `uses: exec`): `--KEY
    VALUE` or `--KEY=VALUE` for each socket, instance option and setting;
    a setting's '_' may be written '-' (--timeout-ms = --timeout_ms); every
    option not on the command line may come from the environment as
    NFLOW_<KEY> (nf_podspec_env_name).  Booleans are true/false, yes/no,
    on/off or 1/0.  An unknown option is an error for the built-in pods.  */
#ifndef NF_PODSPEC_H
#define NF_PODSPEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

/* How long a pod may take from its start until it answers PING on its
   control socket (check-pod waits this long for the first answer), and how
   long `nflow up` waits by default for a whole flow to be ready. */
#define NF_POD_READY_MS 10000
#define NF_FLOW_READY_MS 20000
#define NF_FLOW_READY_MAX_MS 3600000    /* the most `nflow up --timeout-ms` takes */

/* ---- settings ---- */

typedef enum {
    NF_SET_INT,         /* integer within [min, max] */
    NF_SET_BOOL,        /* true/false */
    NF_SET_STRING,      /* free text (paths, names) */
    NF_SET_CHOICE,      /* one of `choices` ("l2|ip|cosine") */
} nf_settype_t;

typedef struct {
    const char *name;       /* key in `with:` and --name on the command line */
    nf_settype_t type;
    long min, max;          /* NF_SET_INT */
    const char *choices;    /* NF_SET_CHOICE: '|'-separated */
    const char *def;        /* default as text; NULL = required */
    const char *help;
} nf_setting_t;

/* ---- sockets ---- */

/* ZeroMQ socket types by ZeroMQ's own numbers (zmq.h), so this table needs
   no messaging library; lib/runtime/nf_pod.c checks they agree. */
enum { NF_ZMQ_DEALER = 5, NF_ZMQ_ROUTER = 6, NF_ZMQ_PULL = 7, NF_ZMQ_PUSH = 8 };

typedef struct {
    const char *role;       /* "encoder"; NULL = every role */
    const char *option;     /* "out": --out on the command line, NFLOW_OUT */
    int type;               /* NF_ZMQ_* */
    bool bind;              /* bind (a port of the pod's block) or connect;
                               with CURVE the binding side is the server and
                               `allow` says which keys it lets in */
    const char *peer;       /* connect: the "role.option" it connects to, to
                               every instance; alternatives separated by '|',
                               the first role the flow has wins; NULL for a
                               bound socket */
    bool poll;              /* the pod's wait loop watches it for input */
    bool at_ready;          /* made by nf_pod_ready, not at start (--control
                               is bound last: an answer there means ready) */
    const char *identity;   /* DEALER identity: this prefix followed by the
                               value of option identity_of; NULL = none */
    const char *identity_of;
    bool handover;          /* ROUTER: a peer reconnecting with a known
                               identity takes the route over */
    const char *help;
    const char *allow;      /* bind: with CURVE, the key classes it lets in,
                               as a ZAP domain: "pods", "clients" (clients
                               and operators) or "operators" (nf_keys.h) */
} nf_sockspec_t;

/* ---- instance options ---- */

typedef enum {
    NF_FILL_NAME,           /* the instance name, "indexer/1" */
    NF_FILL_INDEX,          /* the instance number: replica r, shard s */
    NF_FILL_NSHARDS,        /* the instance count of the sharded role */
    NF_FILL_WORKSPACE,      /* <workspace>/<pod name> */
    NF_FILL_KEYS,           /* the flow's key directory; only with CURVE */
    NF_FILL_FINGERPRINT,    /* the flow's fingerprint, 16 hex digits */
} nf_fill_t;

typedef struct {
    const char *name;       /* "shard" */
    const char *arg;        /* "N" in --help */
    const char *roles;      /* space-separated roles that use it; NULL = all */
    nf_fill_t fill;         /* what the launcher passes */
    long min, max;          /* integer bounds; min > max = free text */
    const char *help;
} nf_option_t;

/* ---- roles ---- */

typedef enum {
    NF_SCALE_ONE,           /* one instance */
    NF_SCALE_REPLICAS,      /* `replicas: R`, instances "<name>/<r>" */
    NF_SCALE_SHARDS,        /* `shards: S` (and `hosts:`), "<name>/<s>" */
} nf_scale_t;

typedef enum {
    NF_PRESENCE_OPTIONAL,   /* the flow may list it */
    NF_PRESENCE_REQUIRED,   /* the flow must list it */
    NF_PRESENCE_IMPLICIT,   /* added with defaults when the flow omits it */
    NF_PRESENCE_TOP,        /* a top-level key of the flow file (gateway:) */
} nf_presence_t;

typedef struct {
    const char *uses;       /* "gateway", "encoder", "router", "indexer", "reducer" */
    const char *program;    /* "nflow-encoder" */
    const char *summary;
    nf_scale_t scale;
    nf_presence_t presence;
    const nf_setting_t *settings;
    size_t nsettings;
} nf_podspec_t;

/* Roles in launch order: index 0 .. nf_podspec_count() - 1. */
size_t nf_podspec_count(void);
const nf_podspec_t *nf_podspec_at(size_t i);

/* The spec of a built-in role, or NULL. */
const nf_podspec_t *nf_podspec_find(const char *uses);

/* The setting called name in spec ('-' and '_' are the same), or NULL. */
const nf_setting_t *nf_podspec_setting(const nf_podspec_t *spec, const char *name);

/* The sockets of a role, in port order (its own rows in table order, then
   the rows of every role): i in 0 .. nf_podspec_nsockets(spec) - 1. */
size_t nf_podspec_nsockets(const nf_podspec_t *spec);
const nf_sockspec_t *nf_podspec_socket_at(const nf_podspec_t *spec, size_t i);

/* The socket of spec whose option is name, or NULL. */
const nf_sockspec_t *nf_podspec_socket(const nf_podspec_t *spec, const char *name);

/* Every row of the socket table (for documents and tests). */
const nf_sockspec_t *nf_podspec_socket_table(size_t *n);

/* "PULL", "PUSH", "ROUTER", "DEALER" (or "?"). */
const char *nf_podspec_type_name(int type);

/* The instance options of a role (name, replica, ...): i in
   0 .. nf_podspec_noptions() - 1, filtered with nf_podspec_option_for. */
size_t nf_podspec_noptions(void);
const nf_option_t *nf_podspec_option_at(size_t i);
bool nf_podspec_option_for(const nf_option_t *opt, const nf_podspec_t *spec);

/* What kind of command-line option `--name` (without the dashes) is for
   this role: an instance option, a socket, a setting, or none. */
enum {
    NF_PODSPEC_OPT_NONE = 0,
    NF_PODSPEC_OPT_COMMON,
    NF_PODSPEC_OPT_SOCKET,
    NF_PODSPEC_OPT_SETTING,
};
int nf_podspec_option(const nf_podspec_t *spec, const char *name);

/* The instance option called name for spec, or NULL. */
const nf_option_t *nf_podspec_common(const nf_podspec_t *spec, const char *name);

/* The environment variable of an option: "NFLOW_" and the key in upper
   case, '-' as '_' (timeout-ms -> NFLOW_TIMEOUT_MS).  Writes at most size
   bytes to out (always terminated); returns out. */
char *nf_podspec_env_name(const char *key, char *out, size_t size);

/* Check value against the setting's type and bounds; NF_EINVAL with a
   message "KEY: expected ..., got '...'" otherwise. */
int nf_setting_check(const nf_setting_t *setting, const char *value);

/* Parse a boolean as nf_setting_check accepts it (true/false, yes/no,
   on/off, 1/0, any case); NF_EINVAL (no message) otherwise. */
int nf_setting_parse_bool(const char *value, bool *out);

/* Write --help text for a pod (usage, sockets, settings with defaults). */
void nf_podspec_help(const nf_podspec_t *spec, FILE *out);

#endif
