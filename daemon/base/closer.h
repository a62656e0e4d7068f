/*
 * closer: closes, on a thread of its own, file descriptors that came from
 * clients. Closing an fd a client made can take as long as the client
 * wants: the last close of a TCP socket with SO_LINGER and unsent data
 * waits out the linger time, a FUSE file's close waits for its server.
 * The event loop hands such fds here and never waits for them; the
 * closer turns a socket's lingering off before closing it.
 *
 * Guarantees: closer_give never blocks on the fd and always takes it.
 * The queue is bounded: past CLOSER_SOFT queued fds closer_give says so
 * (-EAGAIN: the caller should drop the peer that sent them); past
 * CLOSER_HARD the fd is closed on the caller's thread as a last resort,
 * with a warning. Nothing here is needed where the kernel has
 * SO_PASSRIGHTS (Linux 6.16): the transport then refuses fds outright.
 */
#ifndef MMAPIOD_CLOSER_H
#define MMAPIOD_CLOSER_H

#include <stddef.h>

#define CLOSER_SOFT 64
#define CLOSER_HARD 4096

/* Takes fd (consumed; negative fds are ignored). 0 when queued with room
 * to spare, -EAGAIN when the queue is over CLOSER_SOFT. */
int closer_give(int fd);

/* closer_give on fds[0..n), each set to -1; -EAGAIN if any said so. */
int closer_give_all(int *fds, size_t n);

/* fds queued and not yet closed (for tests and status). */
size_t closer_pending(void);

#endif
