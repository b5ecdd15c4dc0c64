/*  nf_canon: canonical flow text, fingerprint, first difference (see
    nf_canon.h). */
#include "nf_canon.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nf_error.h"
#include "nf_hash.h"

/* Lines sort by key (what comes before the first '='), as s_diff walks them. */
static int
s_cmp_line(const void *a, const void *b)
{
    const char *x = *(char *const *) a, *y = *(char *const *) b;
    size_t kx = strcspn(x, "="), ky = strcspn(y, "=");
    int c = memcmp(x, y, kx < ky ? kx : ky);
    return c ? c : kx < ky ? -1 : kx > ky ? 1 : strcmp(x, y);
}

/* Append one "key=value" line to lines (grown as needed). */
static int
s_add(char ***lines, size_t *n, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static int
s_add(char ***lines, size_t *n, const char *fmt, ...)
{
    char **grown = realloc(*lines, (*n + 1) * sizeof **lines);
    if (!grown)
        return nf_error_set(NF_ENOMEM, "out of memory");
    *lines = grown;
    va_list ap;
    va_start(ap, fmt);
    int len = vasprintf(&grown[*n], fmt, ap);
    va_end(ap);
    if (len < 0)
        return nf_error_set(NF_ENOMEM, "out of memory");
    for (char *c = grown[*n]; *c; c++)
        if (*c == '\n')
            *c = ' ';           /* one fact per line, whatever a value holds */
    (*n)++;
    return NF_OK;
}

int
nf_canon_text(const nf_flow_t *flow, char **text)
{
    *text = NULL;
    char **lines = NULL;
    size_t n = 0;
    int rc = s_add(&lines, &n, "name=%s", flow->name);
    if (rc == NF_OK)
        rc = s_add(&lines, &n, "security=%s", flow->curve ? "curve" : "none");
    for (size_t i = 0; rc == NF_OK && i < flow->npods; i++) {
        const nf_flow_pod_t *p = &flow->pods[i];
        const char *r = p->role;
        rc = s_add(&lines, &n, "pod.%s.name=%s", r, p->name);
        if (rc == NF_OK)
            rc = s_add(&lines, &n, "pod.%s.uses=%s", r, p->uses);
        if (rc == NF_OK)
            rc = s_add(&lines, &n, "pod.%s.count=%u", r, p->count);
        if (rc == NF_OK)
            rc = s_add(&lines, &n, "pod.%s.port=%u", r, p->port);
        for (unsigned h = 0; rc == NF_OK && h < p->count; h++)
            rc = s_add(&lines, &n, "pod.%s.host.%u=%s", r, h, p->hosts[h]);
        /* every setting of the role, defaults included; then an exec pod's
           own with: keys */
        for (size_t k = 0; rc == NF_OK && p->spec && k < p->spec->nsettings; k++) {
            const char *key = p->spec->settings[k].name;
            const char *v = nf_flow_setting(p, key);
            rc = s_add(&lines, &n, "pod.%s.with.%s=%s", r, key, v ? v : "");
        }
        for (size_t k = 0; rc == NF_OK && k < p->nwith; k++)
            if (!p->spec || !nf_podspec_setting(p->spec, p->with[k].key))
                rc = s_add(&lines, &n, "pod.%s.with.%s=%s", r, p->with[k].key, p->with[k].value);
    }
    size_t total = 1;
    if (rc == NF_OK) {
        qsort(lines, n, sizeof *lines, s_cmp_line);
        for (size_t i = 0; i < n; i++)
            total += strlen(lines[i]) + 1;
        if (!(*text = malloc(total)))
            rc = nf_error_set(NF_ENOMEM, "out of memory");
    }
    size_t at = 0;
    for (size_t i = 0; i < n; i++) {
        if (*text) {
            size_t len = strlen(lines[i]);
            memcpy(*text + at, lines[i], len);
            (*text)[at + len] = '\n';
            at += len + 1;
        }
        free(lines[i]);
    }
    if (*text)
        (*text)[at] = '\0';
    free(lines);
    return rc;
}

uint64_t
nf_flow_fingerprint(const nf_flow_t *flow)
{
    char *text = NULL;
    if (nf_canon_text(flow, &text) != NF_OK)
        return 0;
    uint64_t f = nf_canon_fingerprint(text);
    free(text);
    return f;
}

