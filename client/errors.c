/*
 * errors: the English text of every mmapio_err, for callers of the
 * library. The table itself lives once, in common/errmap.c, shared with
 * the daemon.
 */
#include "mmapio.h"

#include "errmap.h"

const char *mmapio_strerror(int err)
{
    return errmap_text(err);
}
