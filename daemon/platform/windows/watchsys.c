/* watchsys on Windows: not yet. ReadDirectoryChangesW watches folders,
 * not open files, so a watch of a file will be a watch of its folder
 * filtered by name (and by file id after a rename); until then every
 * call says the system has no watches, which the callers take as "no
 * news" (as on a Linux without inotify). */
#include "watchsys.h"

#include <errno.h>

int watchsys_open(void)
{
    return -ENOSYS;
}

void watchsys_close(int set)
{
    (void)set;
}

int watchsys_add(int set, int fd)
{
    (void)set, (void)fd;
    return -ENOSYS;
}

void watchsys_remove(int set, int token)
{
    (void)set, (void)token;
}

void watchsys_read(int set, watchsys_fn fn, void *arg)
{
    (void)set, (void)fn, (void)arg;
}
