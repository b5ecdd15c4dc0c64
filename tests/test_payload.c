/* nf_payload: the store's own payload encoding.  Round trips (empty, text
   only, tags only, both, UTF-8, empty strings, the most tags allowed), the
   exact bytes of a small payload (the format is part of the segment format:
   a change here must be a format version change), and decoding never
   trusting a length: truncated input at every byte, lengths past the
   buffer, too many tags, bytes left over, random garbage. */
#include "nf_error.h"
#include "nf_limits.h"
#include "nf_payload.h"
#include "nf_test.h"

#include <stdlib.h>
#include <string.h>

static void
s_roundtrip(const char *text, const nf_tag_t *tags, size_t n)
{
    uint8_t *buf = NULL;
    size_t len = 0;
    nf_payload_t p = {0};
    CHECK_OK(nf_payload_encode(text, tags, n, &buf, &len));
    CHECK_OK(nf_payload_decode(buf, len, &p));
    CHECK(!strcmp(p.text, text ? text : "") && p.ntags == n);
    for (size_t i = 0; i < n && i < p.ntags; i++)
        CHECK(!strcmp(p.tags[i].key, tags[i].key) && !strcmp(p.tags[i].value, tags[i].value));
    nf_payload_clear(&p);
    nf_payload_clear(&p);                   /* harmless */
    CHECK(p.ntags == 0 && p.tags == NULL && !strcmp(p.text, ""));
    free(buf);
}

static void
test_roundtrip(void)
{
    uint8_t *buf = (uint8_t *) 1;
    size_t len = 99;
    nf_payload_t p;
    CHECK_OK(nf_payload_encode(NULL, NULL, 0, &buf, &len));
    CHECK(buf == NULL && len == 0);         /* nothing to store: 0 bytes */
    CHECK_OK(nf_payload_encode("", NULL, 0, &buf, &len));
    CHECK(buf == NULL && len == 0);
    CHECK_OK(nf_payload_decode(NULL, 0, &p));
    CHECK(!strcmp(p.text, "") && p.ntags == 0);
    nf_payload_clear(&p);

    nf_tag_t tags[] = {{"lang", "en"}, {"empty", ""}, {"ütf", "✓"}, {"", "no key"}};
    s_roundtrip("a text", NULL, 0);
    s_roundtrip(NULL, tags, 1);
    s_roundtrip("", tags, 4);
    s_roundtrip("text with\nnewline", tags, 4);

    nf_tag_t many[NF_TAGS_MAX + 1];
    char keys[NF_TAGS_MAX + 1][16];
    for (int i = 0; i <= NF_TAGS_MAX; i++) {
        snprintf(keys[i], sizeof keys[i], "k%d", i);
        many[i] = (nf_tag_t) {keys[i], keys[i]};
    }
    s_roundtrip("most tags", many, NF_TAGS_MAX);
    CHECK(nf_payload_encode("x", many, NF_TAGS_MAX + 1, &buf, &len) == NF_EINVAL);
    CHECK(strstr(nf_error_msg(), "tags") != NULL);

    /* the bytes: u32 text length, text, u32 tag count, u16 key length, key,
       u32 value length, value (little-endian) */
    static const uint8_t want[] = {2, 0, 0, 0, 'h', 'i', 1, 0, 0, 0, 1, 0, 'k',
                                   3, 0, 0, 0, 'v', 'a', 'l'};
    nf_tag_t kv = {"k", "val"};
    CHECK_OK(nf_payload_encode("hi", &kv, 1, &buf, &len));
    CHECK(len == sizeof want && buf && !memcmp(buf, want, sizeof want));
    free(buf);
}

static void
test_bounds(void)
{
    nf_payload_t p;
    uint8_t *buf = NULL;
    size_t len = 0;
    nf_tag_t tags[] = {{"lang", "en"}, {"kind", "poem"}};
    CHECK_OK(nf_payload_encode("some text", tags, 2, &buf, &len));
    /* every truncation is refused cleanly */
    for (size_t cut = 1; buf && cut < len; cut++) {
        CHECK(nf_payload_decode(buf, cut, &p) == NF_ECORRUPT);
        CHECK(p.tags == NULL && p.ntags == 0);
        nf_payload_clear(&p);
    }
    CHECK(strstr(nf_error_msg(), "payload") != NULL);
    /* lengths past the buffer */
    uint8_t bad[64];
    memcpy(bad, buf, len);
    bad[0] = 200;                                   /* text length 200 in ~40 bytes */
    CHECK(nf_payload_decode(bad, len, &p) == NF_ECORRUPT);
    CHECK(strstr(nf_error_msg(), "runs past") != NULL);
    memcpy(bad, buf, len);
    bad[4 + 9 + 4 + 2 + 4] = 0xff;                  /* first value length */
    bad[4 + 9 + 4 + 2 + 4 + 3] = 0x7f;
    CHECK(nf_payload_decode(bad, len, &p) == NF_ECORRUPT);
    memcpy(bad, buf, len);
    bad[4 + 9 + 4] = 0xff;                          /* first key length */
    CHECK(nf_payload_decode(bad, len, &p) == NF_ECORRUPT);
    /* too many tags: refused before anything is allocated from the count */
    memcpy(bad, buf, len);
    uint32_t huge = 0xffffffffu, over = NF_TAGS_MAX + 1;
    memcpy(bad + 4 + 9, &huge, 4);
    CHECK(nf_payload_decode(bad, len, &p) == NF_ECORRUPT);
    CHECK(strstr(nf_error_msg(), "tags") != NULL);
    memcpy(bad + 4 + 9, &over, 4);
    CHECK(nf_payload_decode(bad, len, &p) == NF_ECORRUPT);
    /* bytes after the last tag */
    memcpy(bad, buf, len);
    bad[len] = 0;
    CHECK(nf_payload_decode(bad, len + 1, &p) == NF_ECORRUPT);
    CHECK(strstr(nf_error_msg(), "unexpected bytes") != NULL);
    /* the old wire encoding (nflow.Payload) is not this format */
    const uint8_t proto[] = {0x0a, 0x7f, 'x'};
    CHECK(nf_payload_decode(proto, sizeof proto, &p) == NF_ECORRUPT);
    free(buf);

    /* random bytes: either a clean error or a payload whose strings end */
    uint64_t st = 42;
    for (int round = 0; round < 20000; round++) {
        uint8_t junk[48];
        size_t n = 1 + nf_test_rand(&st) % sizeof junk;
        for (size_t i = 0; i < n; i++)
            junk[i] = (uint8_t) (nf_test_rand(&st) % 4 ? nf_test_rand(&st) % 6 : nf_test_rand(&st));
        int rc = nf_payload_decode(junk, n, &p);
        CHECK(rc == 0 || rc == NF_ECORRUPT);
        for (size_t i = 0; rc == 0 && i < p.ntags; i++)
            CHECK(strlen(p.tags[i].key) < n && strlen(p.tags[i].value) < n);
        nf_payload_clear(&p);
    }
}

int
main(void)
{
    test_roundtrip();
    test_bounds();
    return nf_test_done("payload");
}
