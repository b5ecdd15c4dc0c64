/*  nf_podspec: the built-in pods and their settings, as tables.

    One table per pod type says which program runs it, which sockets it
    takes and which `with:` settings it accepts (name, type, bounds,
    default, help).  The same table validates a flow file's `with:` block
    (nf_flow), parses a pod's command line (nf_pod) and prints its --help,
    so the three never disagree (Redis config.c style).

    Command-line contract of every pod (built-in or `uses: exec`), also
    given as environment variables NFLOW_<UPPER_NAME>:
      --name NAME          pod instance name, e.g. "indexer/1"
      --control EP         bind a ROUTER here; answer Control envelopes
      --errors EP          connect a PUSH here to fail a request directly
                           to the gateway (an envelope with a status)
      socket options per role (nf_podspec_t.sockets), e.g. --in EP, --out EP
      --shard N --nshards N --replica N   where they apply
      --KEY VALUE          one per `with:` setting, e.g. --dim 128            */
#ifndef NF_PODSPEC_H
#define NF_PODSPEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

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

typedef struct {
    const char *name;       /* "--in" etc. */
    const char *type;       /* "PULL bind", "PUSH connect", ... (for --help and docs) */
    const char *help;
} nf_socketspec_t;

typedef struct {
    const char *uses;       /* "gateway", "encoder", "router", "indexer", "reducer" */
    const char *program;    /* "nflow-encoder" */
    const char *summary;
    const nf_socketspec_t *sockets;
    size_t nsockets;
    const nf_setting_t *settings;
    size_t nsettings;
} nf_podspec_t;

/* The spec of a built-in pod, or NULL. */
const nf_podspec_t *nf_podspec_find(const char *uses);

/* The setting called name in spec, or NULL. */
const nf_setting_t *nf_podspec_setting(const nf_podspec_t *spec, const char *name);

/* Check value against the setting's type and bounds; NF_EINVAL with a
   message "KEY: expected ..., got '...'" otherwise. */
int nf_setting_check(const nf_setting_t *setting, const char *value);

/* Write --help text for a pod (usage, sockets, settings with defaults). */
void nf_podspec_help(const nf_podspec_t *spec, FILE *out);

/* ---- additions (helper D) ---- */

/* What kind of command-line option `--name` (given without the dashes) is
   for this pod: one of the common/instance options (name, control, errors;
   replica for the encoder; shard, nshards, workspace for the indexer;
   nshards for the router), a socket, a setting, or none. */
enum {
    NF_PODSPEC_OPT_NONE = 0,
    NF_PODSPEC_OPT_COMMON,
    NF_PODSPEC_OPT_SOCKET,
    NF_PODSPEC_OPT_SETTING,
};
int nf_podspec_option(const nf_podspec_t *spec, const char *name);

/* Parse a boolean as nf_setting_check accepts it (true/false, yes/no,
   on/off, 1/0, any case); NF_EINVAL (no message) otherwise. */
int nf_setting_parse_bool(const char *value, bool *out);

#endif
