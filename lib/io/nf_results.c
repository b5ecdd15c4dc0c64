/*  nf_results: search results as JSON lines (jansson).                    */
#include "nf_results.h"

#include <jansson.h>

#include "nf_error.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>


/* A JSON string of s; bytes that are not valid UTF-8 (possible in payloads
   written by other programs) turn the non-ASCII bytes into '?'. */
static json_t *
s_json_text(const char *s)
{
    json_t *j = json_string(s);
    if (j)
        return j;
    char *copy = strdup(s);
    if (!copy)
        return NULL;
    for (char *p = copy; *p; p++)
        if ((unsigned char) *p >= 0x80)
            *p = '?';
    j = json_string(copy);
    free(copy);
    return j;
}

json_t *
nf_results_json(size_t query, const nf_match_t *matches, size_t n)
{
    json_t *obj = json_object();
    json_t *arr = json_array();
    if (!obj || !arr)
        goto fail;
    if (json_object_set_new(obj, "query", json_integer((json_int_t) query)) != 0)
        goto fail;
    for (size_t i = 0; i < n; i++) {
        const nf_match_t *m = &matches[i];
        json_t *jm = json_object();
        if (!jm || json_array_append_new(arr, jm) != 0)
            goto fail;
        if (json_object_set_new(jm, "id", s_json_text(m->id ? m->id : "")) != 0 ||
            json_object_set_new(jm, "score", json_real((double) m->score)) != 0)
            goto fail;
        if (m->text && *m->text && json_object_set_new(jm, "text", s_json_text(m->text)) != 0)
            goto fail;
        if (m->ntags) {
            json_t *tags = json_object();
            if (!tags || json_object_set_new(jm, "tags", tags) != 0)
                goto fail;
            for (size_t t = 0; t < m->ntags; t++)
                if (json_object_set_new(tags, m->tags[t].key, s_json_text(m->tags[t].value)))
                    goto fail;
        }
    }
    if (json_object_set_new(obj, "matches", arr) != 0) {
        arr = NULL;     /* set_new consumed it */
        goto fail;
    }
    return obj;
fail:
    json_decref(arr);
    json_decref(obj);
    return NULL;
}

int
nf_results_write(FILE *out, const json_t *obj)
{
    if (json_dumpf(obj, out, JSON_COMPACT | JSON_REAL_PRECISION(9)) != 0 || fputc('\n', out) == EOF)
        return nf_error_set(NF_EIO, "writing JSON output: %s", strerror(errno));
    return 0;
}
