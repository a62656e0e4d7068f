/*
 * wakeup: a worker thread wakes the event loop. An fd the loop waits on
 * becomes readable when any thread signals, and stays so until drained;
 * signals before a drain may merge into one. One implementation per
 * platform (platform/<system>/wakeup.c, chosen by meson).
 */
#ifndef MMAPIOD_WAKEUP_H
#define MMAPIOD_WAKEUP_H

struct wakeup {
    int fd;  /* the loop waits on this (readable: woken) */
    int wfd; /* signalled through this (fd itself where one fd serves) */
};

/* Non-blocking and close-on-exec: 0 or -errno (w's fds then -1). */
int wakeup_open(struct wakeup *w);
/* Safe from any thread; never blocks. */
void wakeup_signal(const struct wakeup *w);
/* Makes fd unreadable until the next signal; never blocks. */
void wakeup_drain(const struct wakeup *w);
/* Closes the fds (of a w opened or failed to open): idempotent. */
void wakeup_close(struct wakeup *w);

#endif
