/* nf_keys: a flow's key directory and CURVE through the socket factory.
   Secret keys are 0600 and refused when others may read them; a server
   socket lets in only the key classes of its domain and names the peer
   by its key (User-Id); a peer without a key, or with one the domain does
   not allow, never gets a message through. */
#include "nf_error.h"
#include "nf_keys.h"
#include "nf_socket.h"
#include "nf_test.h"

#include <czmq.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static void
test_names(void)
{
    CHECK(nf_keys_class("pod") == NF_KEY_PODS);
    CHECK(nf_keys_class("shard-12") == NF_KEY_PODS);
    CHECK(nf_keys_class("shard-") == NF_KEY_NONE);
    CHECK(nf_keys_class("shard-1x") == NF_KEY_NONE);
    CHECK(nf_keys_class("client") == NF_KEY_CLIENTS);
    CHECK(nf_keys_class("client-alice") == NF_KEY_CLIENTS);
    CHECK(nf_keys_class("operator") == NF_KEY_OPERATORS);
    CHECK(nf_keys_class("../pod") == NF_KEY_NONE);
    CHECK(nf_keys_class("") == NF_KEY_NONE);
    CHECK(!strcmp(nf_keys_domain(NF_KEY_CLIENTS), "clients"));
}

static void
test_files(const char *dir)
{
    CHECK_OK(nf_keys_create(dir, "pod"));
    CHECK_OK(nf_keys_create(dir, "shard-0"));
    CHECK_OK(nf_keys_create(dir, "client"));
    CHECK_OK(nf_keys_create(dir, "operator"));
    CHECK(nf_keys_create(dir, "pod") == NF_EEXIST);          /* never overwritten */
    CHECK(nf_keys_create(dir, "intruder") == NF_EINVAL);
    char path[4200];
    struct stat st;
    snprintf(path, sizeof path, "%.4000s/pod.key", dir);
    CHECK(stat(path, &st) == 0 && (st.st_mode & 0777) == 0600);
    snprintf(path, sizeof path, "%.4000s/pod.pub", dir);
    CHECK(stat(path, &st) == 0 && (st.st_mode & 0777) == 0644);

    nf_keys_t *k = NULL;
    CHECK_OK(nf_keys_open(dir, "pod", &k));
    CHECK(k && !strcmp(nf_keys_name(k), "pod"));
    CHECK(k && nf_keys_public(k, "shard-0") && nf_keys_public(k, "client"));
    CHECK(k && !nf_keys_public(k, "shard-1"));
    nf_keys_destroy(&k);
    nf_keys_destroy(&k);                                        /* harmless */

    /* a secret readable by the group or others is refused, by name */
    snprintf(path, sizeof path, "%.4000s/client.key", dir);
    chmod(path, 0640);
    CHECK(nf_keys_open(dir, "client", &k) == NF_EINVAL && !k);
    CHECK(strstr(nf_error_msg(), "client.key") && strstr(nf_error_msg(), "0640"));
    chmod(path, 0604);
    CHECK(nf_keys_check_secret(path) == NF_EINVAL && strstr(nf_error_msg(), "others"));
    chmod(path, 0600);
    CHECK_OK(nf_keys_check_secret(path));
    CHECK_OK(nf_keys_open_file(path, &k));
    CHECK(k && !strcmp(nf_keys_name(k), "client"));
    nf_keys_destroy(&k);

    /* a public file given as a secret key */
    snprintf(path, sizeof path, "%.4000s/x", dir);
    CHECK(nf_keys_open_file(path, &k) == NF_EINVAL);
    snprintf(path, sizeof path, "%.4000s/missing.key", dir);
    CHECK(nf_keys_open(dir, "client-missing", &k) == NF_ENOTFOUND);
}

/* Send one frame from a client with key `as` (NULL = plain) to a server
   socket of domain; returns true when it arrived, *user = its User-Id. */
static bool
s_try(const char *dir, const char *domain, const char *as, char *user, size_t size)
{
    nf_keys_t *srv = NULL, *cli = NULL;
    CHECK_OK(nf_keys_open(dir, "pod", &srv));
    if (as)
        CHECK_OK(nf_keys_open(dir, as, &cli));
    zsock_t *pull = NULL, *push = NULL;
    nf_socket_opts_t o = {.type = ZMQ_PULL, .bind = true, .endpoints = "tcp://127.0.0.1:*",
                          .what = "in", .keys = srv, .allow = domain};
    CHECK_OK(nf_socket_new(&o, &pull));
    bool got = false;
    char *ep = pull ? zsock_last_endpoint(pull) : NULL;   /* ours to free */
    if (ep) {
        o = (nf_socket_opts_t){.type = ZMQ_PUSH, .endpoints = ep, .what = "out", .keys = cli,
                               .server_key = "pod", .linger_ms = -1};
        CHECK_OK(nf_socket_new(&o, &push));
    }
    free(ep);
    if (push) {
        zsock_set_sndtimeo(push, 0);
        /* IMMEDIATE: the send waits for a connection that passed the handshake */
        uint64_t t0 = zclock_mono();
        while (zstr_send(push, "hello") != 0 && zclock_mono() - t0 < 1500)
            zclock_sleep(10);
        zsock_set_rcvtimeo(pull, 300);
        zframe_t *f = zframe_recv(pull);
        if (f) {
            got = true;
            const char *u = zframe_meta(f, "User-Id");
            snprintf(user, size, "%s", u ? u : "");
            zframe_destroy(&f);
        }
    }
    zsock_destroy(&push);
    zsock_destroy(&pull);
    nf_keys_destroy(&cli);
    nf_keys_destroy(&srv);
    return got;
}

static void
test_curve(const char *dir)
{
    char user[80] = "";
    CHECK(s_try(dir, "pods", "shard-0", user, sizeof user));
    CHECK(!strcmp(user, "shard-0"));
    CHECK(s_try(dir, "clients", "client", user, sizeof user) && !strcmp(user, "client"));
    CHECK(s_try(dir, "clients", "operator", user, sizeof user) && !strcmp(user, "operator"));
    CHECK(s_try(dir, "operators", "operator", user, sizeof user));
    uint64_t denied = nf_zap_denied();
    CHECK(!s_try(dir, "pods", "client", user, sizeof user));        /* wrong class */
    CHECK(!s_try(dir, "operators", "client", user, sizeof user));
    CHECK(!s_try(dir, "operators", NULL, user, sizeof user));       /* no key at all */
    CHECK(nf_zap_denied() >= denied + 2);

    /* a key made elsewhere (not in the directory) is refused too */
    char *other = nf_test_tmpdir();
    CHECK_OK(nf_keys_create(other, "client"));
    char cmd[8300];
    snprintf(cmd, sizeof cmd, "cp %.4000s/pod.pub %.4000s/", dir, other);
    CHECK(system(cmd) == 0);    /* the stranger knows the server's public key */
    nf_keys_t *srv = NULL, *cli = NULL;
    CHECK_OK(nf_keys_open(dir, "pod", &srv));
    CHECK_OK(nf_keys_open(other, "client", &cli));
    zsock_t *pull = NULL, *push = NULL;
    nf_socket_opts_t o = {.type = ZMQ_PULL, .bind = true, .endpoints = "tcp://127.0.0.1:*",
                          .what = "in", .keys = srv, .allow = "clients"};
    CHECK_OK(nf_socket_new(&o, &pull));
    char *ep = pull ? zsock_last_endpoint(pull) : NULL;
    o = (nf_socket_opts_t){.type = ZMQ_PUSH, .endpoints = ep ? ep : "tcp://127.0.0.1:9",
                           .what = "out", .keys = cli, .server_key = "pod", .linger_ms = -1};
    CHECK_OK(nf_socket_new(&o, &push));
    free(ep);
    zsock_set_sndtimeo(push, 0);
    uint64_t t0 = zclock_mono();
    bool sent = false;
    while (!(sent = zstr_send(push, "x") == 0) && zclock_mono() - t0 < 500)
        zclock_sleep(10);
    CHECK(!sent);
    zsock_destroy(&push);
    zsock_destroy(&pull);
    nf_keys_destroy(&cli);
    nf_zap_stop();
    nf_keys_destroy(&srv);
    nf_test_rmdir(other);
    free(other);
}

int
main(void)
{
    char *dir = nf_test_tmpdir();
    char keys[4096];
    snprintf(keys, sizeof keys, "%s/keys", dir);
    test_names();
    test_files(keys);
    test_curve(keys);
    nf_zap_stop();
    nf_test_rmdir(dir);
    free(dir);
    return nf_test_done("keys");
}
