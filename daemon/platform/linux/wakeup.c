/* wakeup on Linux: one eventfd. */
#include "wakeup.h"

#include <errno.h>
#include <stdint.h>
#include <sys/eventfd.h>
#include <unistd.h>

int wakeup_open(struct wakeup *w)
{
    w->fd = w->wfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    return w->fd < 0 ? -errno : 0;
}

void wakeup_signal(const struct wakeup *w)
{
    uint64_t one = 1;
    (void)!write(w->wfd, &one, sizeof(one));
}

void wakeup_drain(const struct wakeup *w)
{
    uint64_t n;
    (void)!read(w->fd, &n, sizeof(n));
}

void wakeup_close(struct wakeup *w)
{
    if (w->fd >= 0)
        close(w->fd);
    w->fd = w->wfd = -1;
}
