/*  test_podspec: the tables of built-in pods, value checks and --help. */
#include <stdlib.h>
#include <string.h>

#include "nf_error.h"
#include "nf_podspec.h"
#include "nf_test.h"

static void
test_find(void)
{
    const char *names[] = {"gateway", "encoder", "router", "indexer", "reducer"};
    for (size_t i = 0; i < 5; i++) {
        const nf_podspec_t *s = nf_podspec_find(names[i]);
        CHECK(s != NULL);
        if (!s)
            continue;
        CHECK(!strcmp(s->uses, names[i]));
        CHECK(!strncmp(s->program, "nflow-", 6) && !strcmp(s->program + 6, names[i]));
        CHECK(s->nsockets >= 2 && s->nsettings >= 1);
        /* every default passes its own check */
        for (size_t j = 0; j < s->nsettings; j++)
            if (s->settings[j].def)
                CHECK_OK(nf_setting_check(&s->settings[j], s->settings[j].def));
    }
    CHECK(nf_podspec_find("exec") == NULL);
    CHECK(nf_podspec_find("nope") == NULL);
    CHECK(nf_podspec_find(NULL) == NULL);
}

static void
test_contract_defaults(void)
{
    struct { const char *pod, *key, *def; } want[] = {
        {"gateway", "timeout_ms", "10000"}, {"gateway", "max_inflight", "10000"},
        {"encoder", "dim", "256"}, {"encoder", "ngram", "3"},
        {"router", "heartbeat_ms", "250"}, {"router", "dead_after_ms", "1000"},
        {"indexer", "dim", NULL}, {"indexer", "metric", "cosine"},
        {"indexer", "vectors", "mmap"}, {"indexer", "payloads", "mmap"},
        {"indexer", "warmup", "false"}, {"indexer", "threads", "0"},
        {"indexer", "heartbeat_ms", "250"}, {"reducer", "top_k", "10"},
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        const nf_setting_t *s = nf_podspec_setting(nf_podspec_find(want[i].pod), want[i].key);
        CHECK(s != NULL);
        if (!s)
            continue;
        if (want[i].def)
            CHECK(s->def && !strcmp(s->def, want[i].def));
        else
            CHECK(s->def == NULL);      /* required */
    }
    CHECK(nf_podspec_setting(nf_podspec_find("indexer"), "top_k") == NULL);
}

static void
test_check(void)
{
    const nf_podspec_t *idx = nf_podspec_find("indexer");
    const nf_setting_t *dim = nf_podspec_setting(idx, "dim");
    CHECK_OK(nf_setting_check(dim, "128"));
    CHECK(nf_setting_check(dim, "0") == NF_EINVAL);
    CHECK(strstr(nf_error_msg(), "dim") && strstr(nf_error_msg(), "1..65536"));
    CHECK(nf_setting_check(dim, "65537") == NF_EINVAL);
    CHECK(nf_setting_check(dim, "12x") == NF_EINVAL);
    CHECK(strstr(nf_error_msg(), "'12x'") != NULL);
    CHECK(nf_setting_check(dim, "") == NF_EINVAL);
    CHECK(nf_setting_check(dim, "99999999999999999999999") == NF_EINVAL);

    const nf_setting_t *metric = nf_podspec_setting(idx, "metric");
    CHECK_OK(nf_setting_check(metric, "l2"));
    CHECK_OK(nf_setting_check(metric, "ip"));
    CHECK_OK(nf_setting_check(metric, "cosine"));
    CHECK(nf_setting_check(metric, "cos") == NF_EINVAL);
    CHECK(strstr(nf_error_msg(), "l2|ip|cosine") != NULL);
    CHECK(nf_setting_check(metric, "") == NF_EINVAL);
    CHECK(nf_setting_check(metric, "l2|ip") == NF_EINVAL);

    const nf_setting_t *warm = nf_podspec_setting(idx, "warmup");
    CHECK_OK(nf_setting_check(warm, "true"));
    CHECK_OK(nf_setting_check(warm, "False"));
    CHECK(nf_setting_check(warm, "maybe") == NF_EINVAL);
    bool b = false;
    CHECK_OK(nf_setting_parse_bool("yes", &b));
    CHECK(b);
    CHECK_OK(nf_setting_parse_bool("0", &b));
    CHECK(!b);
    CHECK(nf_setting_parse_bool("2", &b) == NF_EINVAL);

    CHECK(nf_setting_check(nf_podspec_setting(nf_podspec_find("encoder"), "ngram"), "9")
          == NF_EINVAL);
    CHECK_OK(nf_setting_check(nf_podspec_setting(nf_podspec_find("encoder"), "ngram"), "0"));
    CHECK(nf_setting_check(nf_podspec_setting(nf_podspec_find("reducer"), "top_k"), "10001")
          == NF_EINVAL);
}

static void
test_options(void)
{
    const nf_podspec_t *idx = nf_podspec_find("indexer"), *enc = nf_podspec_find("encoder");
    CHECK(nf_podspec_option(idx, "name") == NF_PODSPEC_OPT_COMMON);
    CHECK(nf_podspec_option(idx, "shard") == NF_PODSPEC_OPT_COMMON);
    CHECK(nf_podspec_option(idx, "workspace") == NF_PODSPEC_OPT_COMMON);
    CHECK(nf_podspec_option(idx, "replica") == NF_PODSPEC_OPT_NONE);
    CHECK(nf_podspec_option(enc, "replica") == NF_PODSPEC_OPT_COMMON);
    CHECK(nf_podspec_option(enc, "shard") == NF_PODSPEC_OPT_NONE);
    CHECK(nf_podspec_option(nf_podspec_find("router"), "nshards") == NF_PODSPEC_OPT_COMMON);
    CHECK(nf_podspec_option(idx, "router") == NF_PODSPEC_OPT_SOCKET);
    CHECK(nf_podspec_option(enc, "in") == NF_PODSPEC_OPT_SOCKET);
    CHECK(nf_podspec_option(enc, "dim") == NF_PODSPEC_OPT_SETTING);
    CHECK(nf_podspec_option(enc, "bogus") == NF_PODSPEC_OPT_NONE);
    CHECK(nf_podspec_option(nf_podspec_find("gateway"), "clients") == NF_PODSPEC_OPT_SOCKET);
}

static void
test_help(void)
{
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    nf_podspec_help(nf_podspec_find("indexer"), f);
    fclose(f);
    CHECK(text && strstr(text, "usage: nflow-indexer"));
    CHECK(text && strstr(text, "--router EP") && strstr(text, "DEALER connect"));
    CHECK(text && strstr(text, "--dim N") && strstr(text, "required"));
    CHECK(text && strstr(text, "--metric WORD") && strstr(text, "default cosine"));
    CHECK(text && strstr(text, "--shard N") && strstr(text, "NFLOW_"));
    free(text);
}

int
main(void)
{
    test_find();
    test_contract_defaults();
    test_check();
    test_options();
    test_help();
    return nf_test_done("podspec");
}
