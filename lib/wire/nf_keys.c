/*  nf_keys: key directories and the ZAP handler (see nf_keys.h).

    Why a ZAP handler of our own rather than czmq's zauth actor: zauth has
    one certificate store per process and ignores the ZAP domain for CURVE,
    so a pod could not let clients into its gateway socket while keeping
    them out of its control socket.  This handler is the same idea (a
    zactor answering on inproc://zeromq.zap.01, certificates read with
    czmq's zcert) with one allow rule per domain.                           */
#include "nf_keys.h"

#include <czmq.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "nf_error.h"

typedef struct {
    char name[NF_KEY_NAME_MAX + 1];
    uint8_t key[32];
    nf_keyclass_t cls;
} s_pub_t;

struct nf_keys {
    char *dir;
    char *name;             /* NULL = public keys only */
    zcert_t *own;           /* own key pair; NULL without a name */
    s_pub_t *pubs;
    size_t npubs;
};

nf_keyclass_t
nf_keys_class(const char *name)
{
    if (!name || !*name || strlen(name) > NF_KEY_NAME_MAX)
        return NF_KEY_NONE;
    for (const char *p = name; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '-' || *p == '_'))
            return NF_KEY_NONE;
    if (!strcmp(name, "pod"))
        return NF_KEY_PODS;
    unsigned n;
    char tail;
    if (sscanf(name, "shard-%u%c", &n, &tail) == 1 && !strncmp(name, "shard-", 6)
        && name[6] >= '0' && name[6] <= '9')
        return NF_KEY_PODS;
    if (!strcmp(name, "client") || !strncmp(name, "client-", 7))
        return NF_KEY_CLIENTS;
    if (!strcmp(name, "operator") || !strncmp(name, "operator-", 9))
        return NF_KEY_OPERATORS;
    return NF_KEY_NONE;
}

const char *
nf_keys_domain(nf_keyclass_t cls)
{
    switch (cls) {
    case NF_KEY_PODS: return "pods";
    case NF_KEY_CLIENTS: return "clients";
    case NF_KEY_OPERATORS: return "operators";
    default: return NULL;
    }
}

const char *
nf_keys_shard_name(unsigned n, char *buf, size_t size)
{
    snprintf(buf, size, "shard-%u", n);
    return buf;
}

/* Is a key of class cls let in by a socket of domain? */
static bool
s_domain_allows(const char *domain, nf_keyclass_t cls)
{
    if (!domain)
        return false;
    if (!strcmp(domain, "pods"))
        return cls == NF_KEY_PODS;
    if (!strcmp(domain, "clients"))
        return cls == NF_KEY_CLIENTS || cls == NF_KEY_OPERATORS;
    if (!strcmp(domain, "operators"))
        return cls == NF_KEY_OPERATORS;
    return false;
}

int
nf_keys_check_secret(const char *path)
{
    struct stat st;
    if (stat(path, &st) != 0)
        return nf_error_set(errno == ENOENT ? NF_ENOTFOUND : NF_EIO, "secret key %s: %s", path,
                            strerror(errno));
    if (!S_ISREG(st.st_mode))
        return nf_error_set(NF_EINVAL, "secret key %s: not a regular file", path);
    if (st.st_mode & 077)
        return nf_error_set(NF_EINVAL, "secret key %s: mode %04o lets %s read it; "
                            "refused (chmod 600 %s)", path, (unsigned) (st.st_mode & 07777),
                            st.st_mode & 007 ? "others" : "its group", path);
    return NF_OK;
}

int
nf_keys_create(const char *dir, const char *name)
{
    if (nf_keys_class(name) == NF_KEY_NONE)
        return nf_error_set(NF_EINVAL, "key name '%s': expected pod, shard-N, client[-X] or "
                            "operator[-X]", name);
    if (zsys_dir_create("%s", dir) != 0)
        return nf_error_set(NF_EIO, "key directory %s: %s", dir, strerror(errno));
    char sec[4096], pub[4096];
    snprintf(sec, sizeof sec, "%s/%s.key", dir, name);
    snprintf(pub, sizeof pub, "%s/%s.pub", dir, name);
    /* the secret file exists with mode 0600 before a byte is written */
    int fd = open(sec, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0)
        return nf_error_set(errno == EEXIST ? NF_EEXIST : NF_EIO, "%s: %s", sec,
                            errno == EEXIST ? "exists (keys are never overwritten)"
                                            : strerror(errno));
    close(fd);
    zcert_t *cert = zcert_new();
    if (!cert) {
        unlink(sec);
        return nf_error_set(NF_EIO, "%s: cannot make a key pair (libzmq without CURVE?)", sec);
    }
    zcert_set_meta(cert, "name", "%s", name);
    int rc = NF_OK;
    if (zcert_save_secret(cert, sec) != 0)
        rc = nf_error_set(NF_EIO, "%s: cannot write: %s", sec, strerror(errno));
    else if (zcert_save_public(cert, pub) != 0)
        rc = nf_error_set(NF_EIO, "%s: cannot write: %s", pub, strerror(errno));
    else if (chmod(sec, 0600) != 0 || chmod(pub, 0644) != 0)
        rc = nf_error_set(NF_EIO, "%s: chmod: %s", sec, strerror(errno));
    if (rc != NF_OK) {
        unlink(sec);
        unlink(pub);
    }
    zcert_destroy(&cert);
    return rc;
}

static int
s_load_pubs(nf_keys_t *self)
{
    DIR *d = opendir(self->dir);
    if (!d)
        return nf_error_set(errno == ENOENT ? NF_ENOTFOUND : NF_EIO, "key directory %s: %s "
                            "(make it with `nflow keys FLOW.yml`)", self->dir, strerror(errno));
    int rc = NF_OK;
    struct dirent *e;
    while (rc == NF_OK && (e = readdir(d))) {
        size_t len = strlen(e->d_name);
        if (len < 5 || strcmp(e->d_name + len - 4, ".pub") || len - 4 > NF_KEY_NAME_MAX)
            continue;
        char name[NF_KEY_NAME_MAX + 1];
        memcpy(name, e->d_name, len - 4);
        name[len - 4] = '\0';
        nf_keyclass_t cls = nf_keys_class(name);
        if (cls == NF_KEY_NONE)
            continue;
        if (self->npubs == NF_KEYS_MAX) {
            rc = nf_error_set(NF_EINVAL, "key directory %s: more than %d public keys",
                              self->dir, NF_KEYS_MAX);
            break;
        }
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", self->dir, e->d_name);
        zcert_t *cert = zcert_load(path);
        if (!cert) {
            rc = nf_error_set(NF_EFORMAT, "%s: not a public key certificate", path);
            break;
        }
        s_pub_t *grown = realloc(self->pubs, (self->npubs + 1) * sizeof *grown);
        if (!grown) {
            zcert_destroy(&cert);
            rc = nf_error_set(NF_ENOMEM, "out of memory");
            break;
        }
        self->pubs = grown;
        s_pub_t *p = &self->pubs[self->npubs++];
        snprintf(p->name, sizeof p->name, "%s", name);
        memcpy(p->key, zcert_public_key(cert), 32);
        p->cls = cls;
        zcert_destroy(&cert);
    }
    closedir(d);
    return rc;
}

int
nf_keys_open(const char *dir, const char *name, nf_keys_t **out)
{
    *out = NULL;
    if (name && nf_keys_class(name) == NF_KEY_NONE)
        return nf_error_set(NF_EINVAL, "key name '%s': expected pod, shard-N, client[-X] or "
                            "operator[-X]", name);
    nf_keys_t *self = calloc(1, sizeof *self);
    if (!self || !(self->dir = strdup(dir)) || (name && !(self->name = strdup(name)))) {
        nf_keys_destroy(&self);
        return nf_error_set(NF_ENOMEM, "out of memory");
    }
    int rc = NF_OK;
    if (name) {
        char sec[4096];
        snprintf(sec, sizeof sec, "%s/%s.key", dir, name);
        rc = nf_keys_check_secret(sec);
        if (rc == NF_OK && !(self->own = zcert_load(sec)))
            rc = nf_error_set(NF_EFORMAT, "%s: not a secret key certificate", sec);
        if (rc == NF_OK) {
            static const uint8_t zero[32];
            if (!memcmp(zcert_secret_key(self->own), zero, 32))
                rc = nf_error_set(NF_EFORMAT, "%s: holds no secret key (a .pub file?)", sec);
        }
    }
    if (rc == NF_OK)
        rc = s_load_pubs(self);
    if (rc != NF_OK) {
        nf_keys_destroy(&self);
        return rc;
    }
    *out = self;
    return NF_OK;
}

int
nf_keys_open_file(const char *path, nf_keys_t **out)
{
    *out = NULL;
    const char *slash = strrchr(path, '/');
    const char *base = slash ? slash + 1 : path;
    size_t len = strlen(base);
    if (len < 5 || strcmp(base + len - 4, ".key") || len - 4 > NF_KEY_NAME_MAX)
        return nf_error_set(NF_EINVAL, "key file %s: expected DIR/NAME.key (made by `nflow keys`)",
                            path);
    char name[NF_KEY_NAME_MAX + 1], dir[4096];
    memcpy(name, base, len - 4);
    name[len - 4] = '\0';
    snprintf(dir, sizeof dir, "%.*s", slash ? (int) (slash - path) : 1, slash ? path : ".");
    if (slash == path)
        snprintf(dir, sizeof dir, "/");
    return nf_keys_open(dir, name, out);
}

void
nf_keys_destroy(nf_keys_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    nf_keys_t *self = *self_p;
    nf_zap_forget(self);
    zcert_destroy(&self->own);
    free(self->pubs);
    free(self->dir);
    free(self->name);
    free(self);
    *self_p = NULL;
}

const char *
nf_keys_name(const nf_keys_t *self)
{
    return self->name;
}

const char *
nf_keys_dir(const nf_keys_t *self)
{
    return self->dir;
}

const uint8_t *
nf_keys_public(const nf_keys_t *self, const char *name)
{
    for (size_t i = 0; name && i < self->npubs; i++)
        if (!strcmp(self->pubs[i].name, name))
            return self->pubs[i].key;
    return NULL;
}

const char *
nf_keys_allowed(const nf_keys_t *self, const char *domain, const uint8_t *key)
{
    for (size_t i = 0; i < self->npubs; i++)
        if (!memcmp(self->pubs[i].key, key, 32))
            return s_domain_allows(domain, self->pubs[i].cls) ? self->pubs[i].name : NULL;
    return NULL;
}

int
nf_keys_apply(const nf_keys_t *self, zsock_t *sock, bool server, const char *domain,
              const char *server_key, const char *what)
{
    if (!self->own)
        return nf_error_set(NF_EINVAL, "%s: no key of our own loaded from %s", what, self->dir);
    zcert_apply(self->own, sock);
    if (server) {
        if (!domain)
            return nf_error_set(NF_EINVAL, "%s: a CURVE server needs a ZAP domain", what);
        int rc = nf_zap_start(self);
        if (rc != NF_OK)
            return rc;
        zsock_set_zap_domain(sock, domain);
        zsock_set_curve_server(sock, 1);
        return NF_OK;
    }
    const uint8_t *pub = nf_keys_public(self, server_key);
    if (!pub)
        return nf_error_set(NF_EINVAL, "%s: no public key '%s' in %s (%s/%s.pub)", what,
                            server_key ? server_key : "(none)", self->dir, self->dir,
                            server_key ? server_key : "?");
    zsock_set_curve_serverkey_bin(sock, pub);
    return NF_OK;
}

/* ------------------------------------------------------------------ */
/* ZAP handler (RFC 27)                                                 */

static zactor_t *s_zap;
static atomic_uint_fast64_t s_denied;
static pthread_mutex_t s_zap_lock = PTHREAD_MUTEX_INITIALIZER;
static const nf_keys_t *s_zap_keys;     /* under s_zap_lock */
static bool s_zap_bound;

static void
s_zap_actor(zsock_t *pipe, void *arg)
{
    (void) arg;
    zsock_t *handler = zsock_new(ZMQ_REP);
    if (!handler || zsock_bind(handler, "inproc://zeromq.zap.01") != 0) {
        zsock_destroy(&handler);
        zsock_signal(pipe, 1);
        return;
    }
    s_zap_bound = true;
    zsock_signal(pipe, 0);
    zpoller_t *poller = zpoller_new(pipe, handler, NULL);
    while (poller) {
        void *which = zpoller_wait(poller, -1);
        if (which == pipe || !which)
            break;          /* $TERM, or interrupted */
        zmsg_t *req = zmsg_recv(handler);
        if (!req)
            break;
        /* version, request id, domain, address, identity, mechanism, creds */
        char *version = zmsg_popstr(req), *reqid = zmsg_popstr(req);
        char *domain = zmsg_popstr(req), *address = zmsg_popstr(req);
        zframe_t *identity = zmsg_pop(req);
        char *mechanism = zmsg_popstr(req);
        zframe_t *cred = zmsg_pop(req);
        const char *user = NULL;
        char name[NF_KEY_NAME_MAX + 1] = "";
        pthread_mutex_lock(&s_zap_lock);
        if (s_zap_keys && version && !strcmp(version, "1.0") && mechanism
            && !strcmp(mechanism, "CURVE") && cred && zframe_size(cred) == 32)
            user = nf_keys_allowed(s_zap_keys, domain, zframe_data(cred));
        if (user)
            snprintf(name, sizeof name, "%s", user);
        pthread_mutex_unlock(&s_zap_lock);
        user = user ? name : NULL;
        if (!user)
            atomic_fetch_add(&s_denied, 1);
        zmsg_t *rep = zmsg_new();
        zmsg_addstr(rep, "1.0");
        zmsg_addstr(rep, reqid ? reqid : "");
        zmsg_addstr(rep, user ? "200" : "400");
        zmsg_addstr(rep, user ? "OK" : "key not allowed here");
        zmsg_addstr(rep, user ? user : "");
        zmsg_addmem(rep, "", 0);
        zmsg_send(&rep, handler);
        zstr_free(&version);
        zstr_free(&reqid);
        zstr_free(&domain);
        zstr_free(&address);
        zstr_free(&mechanism);
        zframe_destroy(&identity);
        zframe_destroy(&cred);
        zmsg_destroy(&req);
    }
    zpoller_destroy(&poller);
    zsock_destroy(&handler);
}

int
nf_zap_start(const nf_keys_t *keys)
{
    pthread_mutex_lock(&s_zap_lock);
    s_zap_keys = keys;
    pthread_mutex_unlock(&s_zap_lock);
    if (s_zap)
        return NF_OK;
    s_zap_bound = false;
    s_zap = zactor_new(s_zap_actor, NULL);
    if (!s_zap || !s_zap_bound) {
        zactor_destroy(&s_zap);
        return nf_error_set(NF_EIO, "cannot start the ZAP handler (is another one bound to "
                            "inproc://zeromq.zap.01?)");
    }
    return NF_OK;
}

void
nf_zap_forget(const nf_keys_t *keys)
{
    pthread_mutex_lock(&s_zap_lock);
    if (s_zap_keys == keys)
        s_zap_keys = NULL;      /* refuse everyone until nf_zap_start again */
    pthread_mutex_unlock(&s_zap_lock);
}

void
nf_zap_stop(void)
{
    zactor_destroy(&s_zap);
    pthread_mutex_lock(&s_zap_lock);
    s_zap_keys = NULL;
    pthread_mutex_unlock(&s_zap_lock);
}

uint64_t
nf_zap_denied(void)
{
    return (uint64_t) atomic_load(&s_denied);
}
