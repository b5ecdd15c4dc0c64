/*  nf_keys: the CurveZMQ keys of a flow and the process's ZAP handler.

    Owns a flow's key directory as loaded by one process: its own key pair
    (the secret certificate) and every public certificate of the directory,
    each with its name and class.  The socket factory (nf_socket) applies
    them; nothing else touches CURVE options.

    The key directory (`security: {keys: DIR}` in a flow file; `nflow keys`
    writes it) holds, per NAME, two czmq certificate files (zcert):
        DIR/NAME.pub   the public key: share it with every host
        DIR/NAME.key   the secret key (and its public half): mode 0600, only
                       on the hosts that act as NAME; refused when its group
                       or others may read it
    Names and their classes (what a name may do):
        pod            every pod except the shards       class pods
        shard-N        the indexer shard N               class pods
        client[-X]     clients: index, search, delete    class clients
        operator[-X]   launchers and `nflow status`      class operators
    (an operator key is also accepted where a client key is)

    Server (bind) sockets let in only the classes their ZAP domain names:
        "pods"       pods and shards (links between pods)
        "clients"    clients and operators (the gateway's client socket)
        "operators"  operators (every control socket)
    The ZAP handler (nf_zap_start) answers libzmq's authentication requests
    for every server socket of the process; the authenticated key's name is
    the connection's User-Id (zframe_meta(frame, "User-Id")), which lets the
    router bind shard N to key shard-N.                                     */
#ifndef NF_KEYS_H
#define NF_KEYS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct nf_keys nf_keys_t;
typedef struct _zsock_t zsock_t;     /* czmq */

#define NF_KEY_NAME_MAX 64          /* longest key name */
#define NF_KEYS_MAX 1024            /* public keys loaded from one directory */

typedef enum {
    NF_KEY_NONE = 0,
    NF_KEY_PODS,
    NF_KEY_CLIENTS,
    NF_KEY_OPERATORS,
} nf_keyclass_t;

/* The class of a key name (table above); NF_KEY_NONE for any other name. */
nf_keyclass_t nf_keys_class(const char *name);

/* The ZAP domain a class's server sockets use: "pods", "clients",
   "operators" (NULL for NF_KEY_NONE). */
const char *nf_keys_domain(nf_keyclass_t cls);

/* The key name of shard n: "shard-<n>", written into buf. */
const char *nf_keys_shard_name(unsigned n, char *buf, size_t size);

/* Create the key pair NAME in dir (created 0755 if missing): DIR/NAME.pub
   and DIR/NAME.key (mode 0600).  NF_EEXIST when DIR/NAME.key exists
   (existing keys are never overwritten); NF_EINVAL for a name with no
   class; NF_EIO naming the file otherwise. */
int nf_keys_create(const char *dir, const char *name);

/* NF_OK when path is a regular file that neither group nor others may
   read or write; NF_EINVAL naming the file and its mode otherwise,
   NF_ENOTFOUND when it does not exist. */
int nf_keys_check_secret(const char *path);

/* Load the key directory as NAME: DIR/NAME.key (checked with
   nf_keys_check_secret) and every DIR/NAME.pub.  name NULL loads only the
   public keys (a process that never authenticates itself).  On success
   *out is the key set (nf_keys_destroy frees it). */
int nf_keys_open(const char *dir, const char *name, nf_keys_t **out);

/* Load a single secret key file (`--key FILE`) and the public keys
   beside it (its directory). */
int nf_keys_open_file(const char *path, nf_keys_t **out);

/* Free; accepts NULL and *self_p == NULL; sets *self_p to NULL. */
void nf_keys_destroy(nf_keys_t **self_p);

/* Own name ("pod", "shard-2"), NULL when loaded without one; directory. */
const char *nf_keys_name(const nf_keys_t *self);
const char *nf_keys_dir(const nf_keys_t *self);

/* The 32-byte public key called name, or NULL. */
const uint8_t *nf_keys_public(const nf_keys_t *self, const char *name);

/* The name of the public key key[32] when its class is let in by domain,
   else NULL. */
const char *nf_keys_allowed(const nf_keys_t *self, const char *domain, const uint8_t *key);

/* Make sock a CURVE server (domain: its ZAP domain) or a CURVE client of
   the server whose public key is called server_key, with this process's
   own key pair.  Starts the ZAP handler first for a server.  NF_EINVAL
   naming what when a key is missing.  Used by nf_socket only. */
int nf_keys_apply(const nf_keys_t *self, zsock_t *sock, bool server, const char *domain,
                  const char *server_key, const char *what);

/* Start this process's ZAP handler (once; a later call only makes it use
   keys): it lets a CURVE client in when its public key is in keys and its
   class is allowed by the socket's domain, and names it with the key's
   name (User-Id).  Everything else is refused, and counted.  keys stays
   in use until nf_keys_destroy(keys) (which makes the handler refuse
   everyone) or nf_zap_stop. */
int nf_zap_start(const nf_keys_t *keys);

/* Stop using keys if the handler uses them (nf_keys_destroy calls it). */
void nf_zap_forget(const nf_keys_t *keys);

/* Stop the ZAP handler, if running. */
void nf_zap_stop(void);

/* Connections the ZAP handler refused so far (this process). */
uint64_t nf_zap_denied(void);

#endif
