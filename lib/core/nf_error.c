/*  nf_error: error codes and per-thread detail messages. */
#include "nf_error.h"

#include <stdio.h>
#include <string.h>

static const char *s_text[] = {
    [0] = "success",
    [-NF_EIO] = "input/output error",
    [-NF_ENOMEM] = "out of memory",
    [-NF_EINVAL] = "invalid argument",
    [-NF_EFORMAT] = "wrong file format",
    [-NF_EVERSION] = "unsupported version",
    [-NF_EDIM] = "dimension mismatch",
    [-NF_ECORRUPT] = "corrupt or truncated data",
    [-NF_ELOCKED] = "locked by another writer",
    [-NF_ENOTFOUND] = "not found",
    [-NF_EEXIST] = "already exists",
    [-NF_EPROTO] = "malformed message",
    [-NF_ETIMEOUT] = "timed out",
    [-NF_EPARSE] = "parse error",
    [-NF_EUNAVAIL] = "unavailable",
};

static __thread char s_msg[1024];

const char *
nf_strerror(int code)
{
    if (code > 0 || code < NF_ERR_MIN)
        return "unknown error";
    return s_text[-code];
}

/* Formatted into a temporary first, then copied: an argument may be the
   thread's own message (nf_error_set(code, "%s: %s", where, nf_error_msg())
   is the usual way to add context), and vsnprintf into the buffer it reads
   from is undefined (it printed "DIR: row 0: DIR: row 0: ..."). */
int
nf_error_set(int code, const char *fmt, ...)
{
    char tmp[sizeof s_msg];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    memcpy(s_msg, tmp, sizeof s_msg);
    return code;
}

const char *
nf_error_msg(void)
{
    return s_msg;
}
