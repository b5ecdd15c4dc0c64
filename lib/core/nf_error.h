/*  nf_error: the one error enum of libnflow and a per-thread detail message.

    Functions that can fail return int: 0 on success or a negative NF_E...
    code.  The failing function also records a message saying what and where
    (file, field, expected vs got) with nf_error_set(); the caller reads it
    with nf_error_msg() and decides whether and how to print it.  Library
    code never prints.                                                      */
#ifndef NF_ERROR_H
#define NF_ERROR_H

#include <stdarg.h>

enum {
    NF_OK = 0,
    NF_EIO = -1,        /* a system call on a file or socket failed */
    NF_ENOMEM = -2,     /* out of memory */
    NF_EINVAL = -3,     /* bad argument or bad input value */
    NF_EFORMAT = -4,    /* file is not of the expected format (magic) */
    NF_EVERSION = -5,   /* format or protocol version not supported */
    NF_EDIM = -6,       /* vector dimension mismatch */
    NF_ECORRUPT = -7,   /* checksum mismatch, truncated or inconsistent file */
    NF_ELOCKED = -8,    /* another writer holds the segment */
    NF_ENOTFOUND = -9,  /* no such id / file */
    NF_EEXIST = -10,    /* already exists */
    NF_EPROTO = -11,    /* malformed message frame */
    NF_ETIMEOUT = -12,  /* deadline passed */
    NF_EPARSE = -13,    /* syntax error in a text input (YAML, JSON, filter) */
    NF_EUNAVAIL = -14,  /* no live peer to serve the request */
    NF_ERR_MIN = -14
};

/* Static text for an error code; never NULL. */
const char *nf_strerror(int code);

/* Record the detail message for the current thread; returns code so that
   `return nf_error_set(NF_EIO, "open %s: %s", path, strerror(errno));`
   reads naturally. */
int nf_error_set(int code, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* The last detail message recorded on this thread ("" if none). */
const char *nf_error_msg(void);

#endif
