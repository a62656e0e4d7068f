/* errmap: errno -> mmapio_err, and mmapio_err -> text (see errmap.h). */
#include "errmap.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>

/* mingw's errno.h has neither (Windows never reports them): values of
 * their own, so the cases below stay apart. */
#ifndef EDQUOT
#define EDQUOT 2001
#endif
#ifndef ESHUTDOWN
#define ESHUTDOWN 2002
#endif

int errmap_from_errno(int e)
{
    if (e == INT_MIN)
        return MMAPIO_E_IO;
    switch (abs(e)) {
    case 0:
        return MMAPIO_OK;
    case ENOENT:
    case ENOTDIR:
        return MMAPIO_E_NOT_FOUND;
    case EEXIST:
        return MMAPIO_E_EXISTS;
    case EACCES:
    case EPERM:
    case EXDEV:
    case ELOOP:
    case EROFS:
        return MMAPIO_E_PERMISSION;
    case EINVAL:
    case ENAMETOOLONG:
    case EISDIR:
        return MMAPIO_E_INVALID_ARGUMENT;
    case EBUSY:
    case ETXTBSY:
        return MMAPIO_E_BUSY;
    case ENOSPC:
    case EDQUOT:
    case EMFILE:
    case ENFILE:
    case ENOMEM:
        return MMAPIO_E_QUOTA;
    case EPIPE:
    case ECONNRESET:
    case ECONNREFUSED:
    case ENOTCONN:
    case ESHUTDOWN:
        return MMAPIO_E_DISCONNECTED;
    case EBADMSG:
    case EPROTO:
    case EMSGSIZE:
        return MMAPIO_E_PROTOCOL;
    case ETIMEDOUT:
        return MMAPIO_E_TIMED_OUT;
    default:
        return MMAPIO_E_IO;
    }
}

static const char *const texts[] = {
    [0] = "success",
    [-MMAPIO_E_IO] = "input/output error",
    [-MMAPIO_E_INVALID_MODE] = "operation not allowed in this mode",
    [-MMAPIO_E_OUT_OF_BOUNDS] = "range out of bounds",
    [-MMAPIO_E_FLUSH_FAILED] = "flush failed",
    [-MMAPIO_E_RESIZE_FAILED] = "resize failed",
    [-MMAPIO_E_ADVICE_FAILED] = "memory advice failed",
    [-MMAPIO_E_LOCK_FAILED] = "locking pages failed",
    [-MMAPIO_E_UNLOCK_FAILED] = "unlocking pages failed",
    [-MMAPIO_E_MISALIGNED] = "misaligned access",
    [-MMAPIO_E_WATCH_FAILED] = "watch failed",
    [-MMAPIO_E_INVALID_ARGUMENT] = "invalid argument",
    [-MMAPIO_E_NOT_FOUND] = "not found",
    [-MMAPIO_E_EXISTS] = "already exists",
    [-MMAPIO_E_PERMISSION] = "permission denied",
    [-MMAPIO_E_BUSY] = "busy: held by another handle",
    [-MMAPIO_E_QUOTA] = "limit or quota exceeded",
    [-MMAPIO_E_DISCONNECTED] = "not connected to mmapiod",
    [-MMAPIO_E_PROTOCOL] = "protocol error",
    [-MMAPIO_E_TIMED_OUT] = "timed out",
};

int errmap_valid(int err)
{
    return err <= 0 && err > -(int)(sizeof(texts) / sizeof(texts[0]));
}

const char *errmap_text(int err)
{
    if (!errmap_valid(err))
        return "unknown error";
    return texts[-err];
}
