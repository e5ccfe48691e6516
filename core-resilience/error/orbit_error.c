#include "orbit/error.h"

#include <errno.h>
#include <stddef.h>

struct err_desc {
    int code;
    const char *name;
    const char *text;
    bool retryable;
};

static const struct err_desc err_table[] = {
    {ORBIT_OK, "OK", "success", false},
    {ORBIT_ENOMEM, "ENOMEM", "out of memory", true},
    {ORBIT_EINVAL, "EINVAL", "invalid argument", false},
    {ORBIT_EIO, "EIO", "input/output error", true},
    {ORBIT_ENOENT, "ENOENT", "no such file or entry", false},
    {ORBIT_EEXIST, "EEXIST", "already exists", false},
    {ORBIT_EFULL, "EFULL", "capacity limit reached", true},
    {ORBIT_ECORRUPT, "ECORRUPT", "data failed verification", true},
    {ORBIT_EFORMAT, "EFORMAT", "malformed input", false},
    {ORBIT_EVERSION, "EVERSION", "unsupported version", false},
    {ORBIT_ETRUNC, "ETRUNC", "truncated input", true},
    {ORBIT_ENOSPC, "ENOSPC", "no space left on destination", false},
    {ORBIT_EPERM, "EPERM", "permission denied", false},
    {ORBIT_EAUTH, "EAUTH", "authentication failed", false},
    {ORBIT_EPROTO, "EPROTO", "protocol violation", false},
    {ORBIT_ETOOBIG, "ETOOBIG", "length exceeds its maximum", false},
    {ORBIT_EAGAIN, "EAGAIN", "busy, try again", true},
    {ORBIT_ECLOSED, "ECLOSED", "connection closed", true},
    {ORBIT_ETIMEDOUT, "ETIMEDOUT", "timed out", true},
    {ORBIT_EPATH, "EPATH", "path refused", false},
    {ORBIT_ESTATE, "ESTATE", "not allowed in the current state", true},
    {ORBIT_EDB, "EDB", "database error", true},
    {ORBIT_ECRYPTO, "ECRYPTO", "cryptographic library error", false},
    {ORBIT_ECANCELED, "ECANCELED", "canceled", false},
    {ORBIT_ECONNECT, "ECONNECT", "could not connect", true},
    {ORBIT_ECODEC, "ECODEC", "compression codec error", false},
    {ORBIT_EISDIR, "EISDIR", "is a directory", false},
    {ORBIT_ENOTDIR, "ENOTDIR", "not a directory", false},
};

static const struct err_desc *
err_lookup(int err)
{
    for (size_t i = 0; i < sizeof err_table / sizeof err_table[0]; i++)
        if (err_table[i].code == err)
            return &err_table[i];
    return NULL;
}

const char *
orbit_strerror(int err)
{
    const struct err_desc *d = err_lookup(err);
    return d ? d->text : "unknown error";
}

const char *
orbit_errname(int err)
{
    const struct err_desc *d = err_lookup(err);
    return d ? d->name : "EUNKNOWN";
}

bool
orbit_err_retryable(int err)
{
    const struct err_desc *d = err_lookup(err);
    return d ? d->retryable : false;
}

int
orbit_err_from_errno(int errnum)
{
    switch (errnum) {
    case 0:
        return ORBIT_OK;
    case ENOMEM:
        return ORBIT_ENOMEM;
    case EINVAL:
        return ORBIT_EINVAL;
    case ENOENT:
        return ORBIT_ENOENT;
    case EEXIST:
        return ORBIT_EEXIST;
    case ENOSPC:
    case EDQUOT:
    case EFBIG:
        return ORBIT_ENOSPC;
    case EACCES:
    case EPERM:
    case EROFS:
        return ORBIT_EPERM;
    case EAGAIN:
    case EBUSY:
    case EINTR:
        return ORBIT_EAGAIN;
    case ETIMEDOUT:
        return ORBIT_ETIMEDOUT;
    case ECONNREFUSED:
    case EHOSTUNREACH:
    case ENETUNREACH:
        return ORBIT_ECONNECT;
    case ECONNRESET:
    case EPIPE:
        return ORBIT_ECLOSED;
    case ENAMETOOLONG:
    case ELOOP:
        return ORBIT_EPATH;
    case EISDIR:
        return ORBIT_EISDIR;
    case ENOTDIR:
        return ORBIT_ENOTDIR;
    case ECANCELED:
        return ORBIT_ECANCELED;
    default:
        return ORBIT_EIO;
    }
}
