/* wakeup on Windows: one manual-reset event (signalled until reset), which
 * a loop waits on with WaitForMultipleObjects or registers with
 * RegisterWaitForSingleObject; the HANDLE sits in the int (ptypes.h). */
#include "wakeup.h"
#include "ptypes.h"

#include <errno.h>
#include <windows.h>

int wakeup_open(struct wakeup *w)
{
    HANDLE ev = CreateEventW(NULL, TRUE, FALSE, NULL);
    if (!ev) {
        w->fd = w->wfd = -1;
        return -ENOMEM;
    }
    w->fd = w->wfd = PLATFORM_FD(ev);
    return 0;
}

void wakeup_signal(const struct wakeup *w)
{
    SetEvent(PLATFORM_HANDLE(w->wfd));
}

void wakeup_drain(const struct wakeup *w)
{
    ResetEvent(PLATFORM_HANDLE(w->fd));
}

void wakeup_close(struct wakeup *w)
{
    if (w->fd >= 0)
        CloseHandle(PLATFORM_HANDLE(w->fd));
    w->fd = w->wfd = -1;
}
