/* stream on Windows: the C runtime has no stream over the caller's own
 * functions (no fopencookie, no funopen), so mmapio_reader and
 * mmapio_writer are NULL with errno ENOSYS; read_into and update_region
 * do the same work. */
#include <errno.h>
#include <stdio.h>

#include "mmapio.h"

FILE *mmapio_reader(mmapio_map *m)
{
    errno = m ? ENOSYS : EINVAL;
    return NULL;
}

FILE *mmapio_writer(mmapio_map *m)
{
    errno = m ? ENOSYS : EINVAL;
    return NULL;
}
