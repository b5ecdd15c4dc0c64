/*  nf_field: what a typed field is, apart from any segment -- its type's
    name, its definition "NAME:TYPE[:POLICY]" as the CLI and the flow file
    write it, and RFC 3339 date-times as a datetime field's values are
    written (declared in nf_segment.h, with the fields).  The columns that
    hold a segment's field values are nf_segment_fields.c.              */
#include "nf_segment.h"
#include "nf_error.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

static const char *const s_type_names[] = {
    [NF_FIELD_NULL] = "null", [NF_FIELD_INT] = "int", [NF_FIELD_FLOAT] = "float",
    [NF_FIELD_BOOL] = "bool", [NF_FIELD_KEYWORD] = "keyword",
    [NF_FIELD_KEYWORDS] = "keyword[]", [NF_FIELD_DATETIME] = "datetime",
};

const char *
nf_field_type_name(nf_ftype_t t)
{
    return (unsigned) t <= NF_FIELD_DATETIME ? s_type_names[t] : "?";
}

int
nf_field_type_parse(const char *name, nf_ftype_t *t)
{
    for (int i = NF_FIELD_INT; i <= NF_FIELD_DATETIME; i++)
        if (name && !strcmp(name, s_type_names[i])) {
            *t = (nf_ftype_t) i;
            return 0;
        }
    return nf_error_set(NF_EINVAL, "unknown field type '%s' (int, float, bool, keyword, "
                        "keyword[], datetime)", name ? name : "");
}

int
nf_field_name_check(const char *name, size_t len)
{
    static const char *const words[] = {"and", "or", "not", "in", "is", "null", "contains",
                                        "any", "all", "true", "false"};
    if (len == 0)
        return nf_error_set(NF_EINVAL, "empty field name");
    if (len > NF_FIELD_NAME_MAX)
        return nf_error_set(NF_EINVAL, "field name '%.*s...' is %zu bytes, at most %d "
                            "(NF_FIELD_NAME_MAX)", 16, name, len, NF_FIELD_NAME_MAX);
    for (size_t i = 0; i < len; i++) {
        char c = name[i];
        bool ok = c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
                  || (i > 0 && c >= '0' && c <= '9');
        if (!ok)
            return nf_error_set(NF_EINVAL, "field name '%.*s': character %zu ('%c') is not "
                                "allowed (letters, digits, _; not a digit first)", (int) len,
                                name, i + 1, c);
    }
    for (size_t i = 0; i < sizeof words / sizeof words[0]; i++)
        if (strlen(words[i]) == len && !memcmp(words[i], name, len))
            return nf_error_set(NF_EINVAL, "field name '%.*s' is a word of the filter "
                                "language", (int) len, name);
    return 0;
}

int
nf_field_def_parse(const char *spec, nf_field_def_t *def)
{
    if (!spec || !def)
        return nf_error_set(NF_EINVAL, "nf_field_def_parse: NULL argument");
    memset(def, 0, sizeof *def);
    const char *c1 = strchr(spec, ':');
    if (!c1)
        return nf_error_set(NF_EINVAL, "field '%s': expected NAME:TYPE (e.g. year:int)", spec);
    int rc = nf_field_name_check(spec, (size_t) (c1 - spec));
    if (rc)
        return rc;
    memcpy(def->name, spec, (size_t) (c1 - spec));
    char type[32];
    const char *c2 = strchr(c1 + 1, ':');
    size_t tl = c2 ? (size_t) (c2 - c1 - 1) : strlen(c1 + 1);
    if (tl >= sizeof type)
        return nf_error_set(NF_EINVAL, "field '%s': unknown type", spec);
    memcpy(type, c1 + 1, tl);
    type[tl] = '\0';
    if ((rc = nf_field_type_parse(type, &def->type)))
        return nf_error_set(rc, "field '%s': %s", spec, nf_error_msg());
    def->policy = NF_MEM_MMAP;
    if (c2 && !strcmp(c2 + 1, "memory"))
        def->policy = NF_MEM_MEMORY;
    else if (c2 && strcmp(c2 + 1, "mmap"))
        return nf_error_set(NF_EINVAL, "field '%s': memory policy '%s' is neither mmap nor "
                            "memory", spec, c2 + 1);
    return 0;
}

int
nf_field_defs_parse(const char *list, nf_field_def_t *defs, size_t max, size_t *n)
{
    *n = 0;
    if (!list)
        return NF_OK;
    const char *p = list;
    while (*p) {
        while (*p == ' ' || *p == ',')
            p++;
        if (!*p)
            break;
        size_t len = strcspn(p, ",");
        while (len && p[len - 1] == ' ')
            len--;
        char item[NF_FIELD_NAME_MAX + 32];
        if (len >= sizeof item)
            return nf_error_set(NF_EINVAL, "field '%.*s...': too long", 48, p);
        if (*n == max)
            return nf_error_set(NF_EINVAL, "more than %zu fields", max);
        memcpy(item, p, len);
        item[len] = '\0';
        int rc = nf_field_def_parse(item, &defs[*n]);
        if (rc)
            return rc;
        for (size_t i = 0; i < *n; i++)
            if (!strcmp(defs[i].name, defs[*n].name))
                return nf_error_set(NF_EINVAL, "field '%s' is declared twice", defs[i].name);
        (*n)++;
        p += len;
    }
    return NF_OK;
}

/* ------------------------------------------------------------- datetime */

/* Days from 1970-01-01 to y-m-d (proleptic Gregorian; H. Hinnant). */
static int64_t
s_days(int64_t y, int m, int d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static bool
s_digits(const char *p, size_t n, int *out)
{
    int v = 0;
    for (size_t i = 0; i < n; i++) {
        if (p[i] < '0' || p[i] > '9')
            return false;
        v = v * 10 + (p[i] - '0');
    }
    *out = v;
    return true;
}

int
nf_datetime_parse(const char *t, size_t len, int64_t *us)
{
    int y, mo, d, h = 0, mi = 0, se = 0;
    int64_t frac = 0, off = 0;
    size_t i = 10;
    static const int mdays[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (len < 10 || !s_digits(t, 4, &y) || t[4] != '-' || !s_digits(t + 5, 2, &mo)
        || t[7] != '-' || !s_digits(t + 8, 2, &d))
        goto bad;
    if (mo < 1 || mo > 12 || d < 1 || d > mdays[mo - 1]
        || (mo == 2 && d == 29 && !(y % 4 == 0 && (y % 100 != 0 || y % 400 == 0))))
        goto bad;
    if (len > 10) {
        if ((t[10] != 'T' && t[10] != 't' && t[10] != ' ') || len < 19
            || !s_digits(t + 11, 2, &h) || t[13] != ':' || !s_digits(t + 14, 2, &mi)
            || t[16] != ':' || !s_digits(t + 17, 2, &se) || h > 23 || mi > 59 || se > 60)
            goto bad;
        i = 19;
        if (i < len && t[i] == '.') {
            int nd = 0;
            for (i++; i < len && t[i] >= '0' && t[i] <= '9'; i++, nd++)
                if (nd < 6)
                    frac = frac * 10 + (t[i] - '0');
            if (nd == 0)
                goto bad;
            for (; nd < 6; nd++)
                frac *= 10;
        }
        if (i < len && (t[i] == 'Z' || t[i] == 'z')) {
            i++;
        } else if (i < len && (t[i] == '+' || t[i] == '-')) {
            int oh, om;
            if (len - i != 6 || !s_digits(t + i + 1, 2, &oh) || t[i + 3] != ':'
                || !s_digits(t + i + 4, 2, &om) || oh > 23 || om > 59)
                goto bad;
            off = (t[i] == '+' ? 1 : -1) * (int64_t) (oh * 60 + om) * 60;
            i = len;
        } else {
            goto bad;
        }
        if (i != len)
            goto bad;
    }
    int64_t secs = s_days(y, mo, d) * 86400 + h * 3600 + mi * 60 + se - off;
    *us = secs * 1000000 + frac;
    return 0;
bad:
    return nf_error_set(NF_EINVAL, "'%.*s' is not an RFC 3339 date-time (e.g. "
                        "2001-02-03T04:05:06Z, or a date 2001-02-03)", (int) (len < 64 ? len : 64),
                        t);
}

void
nf_datetime_format(int64_t us, char *buf, size_t size)
{
    int64_t secs = us >= 0 ? us / 1000000 : -((-us + 999999) / 1000000);
    int64_t frac = us - secs * 1000000;
    int64_t days = secs >= 0 ? secs / 86400 : -((-secs + 86399) / 86400);
    int64_t sod = secs - days * 86400;
    /* civil from days (H. Hinnant) */
    int64_t z = days + 719468, era = (z >= 0 ? z : z - 146096) / 146097;
    int64_t doe = z - era * 146097, yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t y = yoe + era * 400, doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153, d = doy - (153 * mp + 2) / 5 + 1;
    int64_t m = mp + (mp < 10 ? 3 : -9);
    y += m <= 2;
    if (frac)
        snprintf(buf, size, "%04lld-%02lld-%02lldT%02lld:%02lld:%02lld.%06lldZ", (long long) y,
                 (long long) m, (long long) d, (long long) (sod / 3600),
                 (long long) (sod / 60 % 60), (long long) (sod % 60), (long long) frac);
    else
        snprintf(buf, size, "%04lld-%02lld-%02lldT%02lld:%02lld:%02lldZ", (long long) y,
                 (long long) m, (long long) d, (long long) (sod / 3600),
                 (long long) (sod / 60 % 60), (long long) (sod % 60));
}
