/* watchsys on Linux: inotify, a file watched through /proc/self/fd. */
#include "watchsys.h"

#include <errno.h>
#include <stdio.h>
#include <sys/inotify.h>
#include <unistd.h>

#define FILE_EVENTS (IN_MODIFY | IN_ATTRIB | IN_MOVE_SELF | IN_DELETE_SELF)

int watchsys_open(void)
{
    int fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    return fd < 0 ? -errno : fd;
}

void watchsys_close(int set)
{
    if (set >= 0)
        close(set);
}

int watchsys_add(int set, int fd)
{
    char proc[64];
    snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fd);
    int wd = inotify_add_watch(set, proc, FILE_EVENTS);
    return wd < 0 ? -errno : wd;
}

void watchsys_remove(int set, int token)
{
    inotify_rm_watch(set, token);
}

void watchsys_read(int set, watchsys_fn fn, void *arg)
{
    _Alignas(struct inotify_event) char buf[16384];

    for (int round = 0; round < 16; round++) {
        ssize_t n = read(set, buf, sizeof(buf));
        if (n <= 0)
            return;
        for (char *p = buf; p < buf + n;) {
            struct inotify_event *ie = (struct inotify_event *)p;
            p += sizeof(*ie) + ie->len;
            if (ie->mask & IN_Q_OVERFLOW)
                fn(arg, -1, WATCHSYS_LOST);
            unsigned what = (ie->mask & IN_MODIFY ? WATCHSYS_MODIFIED : 0) |
                (ie->mask & (IN_ATTRIB | IN_MOVE_SELF | IN_DELETE_SELF)
                     ? WATCHSYS_METADATA : 0);
            if (what && ie->wd >= 0)
                fn(arg, ie->wd, what);
        }
    }
}
