/*  nf_payload: the store's payload encoding (format in nf_payload.h).    */
#include "nf_payload.h"

#include "nf_error.h"
#include "nf_limits.h"

#include <stdlib.h>
#include <string.h>

#define S_KEY_MAX 0xffffu
#define S_STR_MAX 0xffffffffu

static unsigned char *
s_put(unsigned char *p, const void *src, size_t n)
{
    if (n)
        memcpy(p, src, n);
    return p + n;
}

size_t
nf_payload_size_n(size_t text_len, const nf_tagspan_t *tags, size_t ntags, int *rc)
{
    *rc = 0;
    if (text_len == 0 && ntags == 0)
        return 0;
    if (ntags > NF_TAGS_MAX) {
        *rc = nf_error_set(NF_EINVAL, "payload: %zu tags, at most %d", ntags, NF_TAGS_MAX);
        return 0;
    }
    if (text_len > S_STR_MAX) {
        *rc = nf_error_set(NF_EINVAL, "payload: text of %zu bytes is too long", text_len);
        return 0;
    }
    size_t size = 8 + text_len;
    for (size_t i = 0; i < ntags; i++) {
        if (tags[i].key_len > S_KEY_MAX || tags[i].value_len > S_STR_MAX) {
            *rc = nf_error_set(NF_EINVAL, "payload: tag %zu: key of %zu or value of %zu bytes "
                               "is too long", i, tags[i].key_len, tags[i].value_len);
            return 0;
        }
        size += 6 + tags[i].key_len + tags[i].value_len;
    }
    return size;
}

void
nf_payload_write_n(uint8_t *out, const char *text, size_t text_len, const nf_tagspan_t *tags,
                   size_t ntags)
{
    if (text_len == 0 && ntags == 0)
        return;
    unsigned char *p = out;
    uint32_t u32 = (uint32_t) text_len;
    p = s_put(p, &u32, 4);
    p = s_put(p, text, text_len);
    u32 = (uint32_t) ntags;
    p = s_put(p, &u32, 4);
    for (size_t i = 0; i < ntags; i++) {
        uint16_t k = (uint16_t) tags[i].key_len;
        uint32_t v = (uint32_t) tags[i].value_len;
        p = s_put(p, &k, 2);
        p = s_put(p, tags[i].key, k);
        p = s_put(p, &v, 4);
        p = s_put(p, tags[i].value, v);
    }
}

int
nf_payload_encode(const char *text, const nf_tag_t *tags, size_t ntags, uint8_t **buf,
                  size_t *len)
{
    *buf = NULL;
    *len = 0;
    if (!text)
        text = "";
    if (!*text && ntags == 0)
        return 0;
    if (ntags > NF_TAGS_MAX)
        return nf_error_set(NF_EINVAL, "payload: %zu tags, at most %d", ntags, NF_TAGS_MAX);
    size_t tlen = strlen(text), size = 8 + tlen;
    if (tlen > S_STR_MAX)
        return nf_error_set(NF_EINVAL, "payload: text of %zu bytes is too long", tlen);
    for (size_t i = 0; i < ntags; i++) {
        size_t k = strlen(tags[i].key), v = strlen(tags[i].value);
        if (k > S_KEY_MAX || v > S_STR_MAX)
            return nf_error_set(NF_EINVAL, "payload: tag %zu: key of %zu or value of %zu bytes "
                                "is too long", i, k, v);
        size += 6 + k + v;
    }
    unsigned char *out = malloc(size), *p = out;
    if (!out)
        return nf_error_set(NF_ENOMEM, "payload: out of memory for %zu bytes", size);
    uint32_t u32 = (uint32_t) tlen;
    p = s_put(p, &u32, 4);
    p = s_put(p, text, tlen);
    u32 = (uint32_t) ntags;
    p = s_put(p, &u32, 4);
    for (size_t i = 0; i < ntags; i++) {
        uint16_t k = (uint16_t) strlen(tags[i].key);
        uint32_t v = (uint32_t) strlen(tags[i].value);
        p = s_put(p, &k, 2);
        p = s_put(p, tags[i].key, k);
        p = s_put(p, &v, 4);
        p = s_put(p, tags[i].value, v);
    }
    *buf = out;
    *len = size;
    return 0;
}

/* Take an n-byte length field at *at, checked against what remains. */
static int
s_len(const unsigned char *b, size_t len, size_t *at, size_t n, size_t *out, const char *what)
{
    uint32_t v32 = 0;
    uint16_t v16 = 0;
    if (len - *at < n)
        return nf_error_set(NF_ECORRUPT, "payload: truncated at byte %zu of %zu (reading the "
                            "length of %s)", *at, len, what);
    if (n == 2)
        memcpy(&v16, b + *at, 2);
    else
        memcpy(&v32, b + *at, 4);
    *at += n;
    *out = n == 2 ? v16 : v32;
    if (*out > len - *at && strcmp(what, "the tag count"))
        return nf_error_set(NF_ECORRUPT, "payload: %s of %zu bytes at byte %zu runs past the "
                            "%zu bytes", what, *out, *at, len);
    return 0;
}

int
nf_payload_decode(const void *bytes, size_t len, nf_payload_t *out)
{
    const unsigned char *b = bytes;
    size_t at = 0, tlen = 0, ntags = 0, n = 0;
    int rc;
    memset(out, 0, sizeof *out);
    out->text = "";
    if (!bytes || len == 0)
        return 0;
    if ((rc = s_len(b, len, &at, 4, &tlen, "the text")))
        return rc;
    size_t text_at = at;
    at += tlen;
    if ((rc = s_len(b, len, &at, 4, &ntags, "the tag count")))
        return rc;
    if (ntags > NF_TAGS_MAX)
        return nf_error_set(NF_ECORRUPT, "payload: %zu tags, at most %d", ntags, NF_TAGS_MAX);
    if (ntags * 6 > len - at)
        return nf_error_set(NF_ECORRUPT, "payload: %zu tags cannot fit in the %zu bytes left",
                            ntags, len - at);
    /* first pass: check every length; strings = bytes + one NUL each */
    size_t start = at, strings = tlen + 1;
    for (size_t i = 0; i < ntags; i++) {
        if ((rc = s_len(b, len, &at, 2, &n, "a tag key")))
            return rc;
        at += n;
        strings += n + 1;
        if ((rc = s_len(b, len, &at, 4, &n, "a tag value")))
            return rc;
        at += n;
        strings += n + 1;
    }
    if (at != len)
        return nf_error_set(NF_ECORRUPT, "payload: %zu unexpected bytes after the last tag",
                            len - at);
    char *block = malloc(strings);
    nf_tag_t *tags = ntags ? calloc(ntags, sizeof *tags) : NULL;
    if (!block || (ntags && !tags)) {
        free(block);
        free(tags);
        return nf_error_set(NF_ENOMEM, "payload: out of memory for %zu bytes", strings);
    }
    char *p = block;
    memcpy(p, b + text_at, tlen);
    p[tlen] = '\0';
    out->text = p;
    p += tlen + 1;
    at = start;
    for (size_t i = 0; i < ntags; i++) {
        uint16_t k;
        uint32_t v;
        memcpy(&k, b + at, 2);
        at += 2;
        memcpy(p, b + at, k);
        p[k] = '\0';
        tags[i].key = p;
        p += k + 1;
        at += k;
        memcpy(&v, b + at, 4);
        at += 4;
        memcpy(p, b + at, v);
        p[v] = '\0';
        tags[i].value = p;
        p += (size_t) v + 1;
        at += v;
    }
    out->tags = tags;
    out->ntags = ntags;
    out->msg_ = block;
    return 0;
}

void
nf_payload_clear(nf_payload_t *payload)
{
    if (!payload)
        return;
    free(payload->msg_);
    free(payload->tags);
    memset(payload, 0, sizeof *payload);
    payload->text = "";
}
