/*  nf_fprint: fingerprints and first differences of canonical texts (see
    nf_fprint.h). */
#include "nf_fprint.h"

#include <stdio.h>
#include <string.h>

#include "nf_hash.h"

uint64_t
nf_canon_fingerprint(const char *text)
{
    return nf_fnv1a64(NF_FNV_OFFSET, text, strlen(text));
}

/* The line at *p: key [k, klen), value [v, vlen); advances *p. */
static bool
s_line(const char **p, const char **k, size_t *klen, const char **v, size_t *vlen)
{
    if (!**p)
        return false;
    const char *end = strchr(*p, '\n');
    if (!end)
        end = *p + strlen(*p);
    const char *eq = memchr(*p, '=', (size_t) (end - *p));
    *k = *p;
    *klen = eq ? (size_t) (eq - *p) : (size_t) (end - *p);
    *v = eq ? eq + 1 : end;
    *vlen = (size_t) (end - *v);
    *p = *end ? end + 1 : end;
    return true;
}

bool
nf_canon_diff(const char *mine, const char *theirs, char *what, size_t size)
{
    const char *a = mine ? mine : "", *b = theirs ? theirs : "";
    const char *ak = NULL, *av = NULL, *bk = NULL, *bv = NULL;
    size_t akl = 0, avl = 0, bkl = 0, bvl = 0;
    bool ha = s_line(&a, &ak, &akl, &av, &avl), hb = s_line(&b, &bk, &bkl, &bv, &bvl);
    while (ha || hb) {
        int c;
        if (!ha)
            c = 1;
        else if (!hb)
            c = -1;
        else {
            size_t m = akl < bkl ? akl : bkl;
            c = memcmp(ak, bk, m);
            if (!c)
                c = akl < bkl ? -1 : akl > bkl ? 1 : 0;
        }
        if (c == 0 && avl == bvl && !memcmp(av, bv, avl)) {
            ha = s_line(&a, &ak, &akl, &av, &avl);
            hb = s_line(&b, &bk, &bkl, &bv, &bvl);
            continue;
        }
        if (c == 0)
            snprintf(what, size, "%.*s: %.*s here, %.*s there", (int) akl, ak, (int) avl, av,
                     (int) bvl, bv);
        else if (c < 0)
            snprintf(what, size, "%.*s: %.*s here, absent there", (int) akl, ak, (int) avl, av);
        else
            snprintf(what, size, "%.*s: absent here, %.*s there", (int) bkl, bk, (int) bvl, bv);
        return true;
    }
    if (size)
        what[0] = '\0';
    return false;
}
