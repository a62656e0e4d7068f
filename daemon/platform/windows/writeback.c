/* writeback on Windows: the system keeps no count of a file's dirty or
 * in-flight pages that a process can read (the cache manager's figures
 * are system-wide), so this says it cannot tell. Flushing itself is
 * FlushViewOfFile + FlushFileBuffers, the flusher's business. */
#include "writeback.h"

#include <errno.h>

int writeback_pending(int fd, struct writeback_pending *out)
{
    (void)fd;
    out->dirty = out->writeback = 0;
    return -ENOSYS;
}
