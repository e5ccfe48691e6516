/*
 * orbit/error.h - the error vocabulary shared by every Orbit library.
 *
 * Functions return int: 0 on success or a negative ORBIT_E* code; results go
 * in out-parameters. Codes are only ever appended, never renumbered, because
 * they cross the wire (orbit-star error replies) and land in journals.
 * Thread-safe: all functions here are pure.
 */
#ifndef ORBIT_ERROR_H
#define ORBIT_ERROR_H

#include <stdbool.h>

enum orbit_err {
    ORBIT_OK = 0,
    ORBIT_ENOMEM = -1,     /* allocation failed */
    ORBIT_EINVAL = -2,     /* invalid argument from the caller */
    ORBIT_EIO = -3,        /* I/O error from the OS */
    ORBIT_ENOENT = -4,     /* no such file, key or item */
    ORBIT_EEXIST = -5,     /* already exists */
    ORBIT_EFULL = -6,      /* a bounded structure is at its limit */
    ORBIT_ECORRUPT = -7,   /* data failed verification (digest, checksum) */
    ORBIT_EFORMAT = -8,    /* malformed input (bad magic, bad field) */
    ORBIT_EVERSION = -9,   /* unsupported format or protocol version */
    ORBIT_ETRUNC = -10,    /* input ends before a complete unit */
    ORBIT_ENOSPC = -11,    /* destination full */
    ORBIT_EPERM = -12,     /* permission denied */
    ORBIT_EAUTH = -13,     /* authentication failed */
    ORBIT_EPROTO = -14,    /* protocol violation by the peer */
    ORBIT_ETOOBIG = -15,   /* a length exceeds its hard maximum */
    ORBIT_EAGAIN = -16,    /* busy or would block: try again later */
    ORBIT_ECLOSED = -17,   /* connection closed */
    ORBIT_ETIMEDOUT = -18, /* operation timed out */
    ORBIT_EPATH = -19,     /* path refused (absolute, '..', escapes root) */
    ORBIT_ESTATE = -20,    /* not allowed in the current lifecycle state */
    ORBIT_EDB = -21,       /* database (LMDB) error */
    ORBIT_ECRYPTO = -22,   /* cryptographic library error */
    ORBIT_ECANCELED = -23, /* operation canceled */
    ORBIT_ECONNECT = -24,  /* could not connect to the peer */
    ORBIT_ECODEC = -25,    /* compression or decompression failed */
    ORBIT_EISDIR = -26,    /* expected a file, found a directory */
    ORBIT_ENOTDIR = -27,   /* expected a directory */
};

/* A static, human-readable description of err; never NULL. */
const char *orbit_strerror(int err);

/* Short stable identifier of err ("ENOSPC"), for JSON and logs; never NULL. */
const char *orbit_errname(int err);

/* Translate a libc errno value (positive) into an ORBIT_E* code. */
int orbit_err_from_errno(int errnum);

/* Whether retrying the same operation later can succeed. */
bool orbit_err_retryable(int err);

#endif
