/*
 * closer: closes, on threads of its own, file descriptors that came from
 * clients. Closing an fd a client made can take as long as the client
 * wants: the last close of a TCP socket with SO_LINGER and unsent data
 * waits out the linger time, a FUSE file's close waits for its server.
 * The event loop hands such fds here and never waits for them; the
 * closer turns a socket's lingering off before closing it.
 *
 * Each uid has a queue of its own, served by a thread of its own
 * (started on demand, gone after CLOSER_IDLE_S without work), so one
 * uid's close that never ends holds up that uid's fds alone. At most
 * CLOSER_THREADS threads run: a uid that finds none free waits queued
 * until one is (a thread whose queue empties takes up a waiting one).
 *
 * Guarantees: closer_give never blocks on the fd and always takes it.
 * Each uid's queue is bounded: past CLOSER_SOFT queued fds of that uid,
 * or while it waits for a thread, closer_give says so (-EAGAIN: the
 * caller drops the peer that sent them). Past CLOSER_HARD (or
 * CLOSER_UIDS uids with queues) nothing more is queued: a socket, its
 * lingering off, is closed on the caller's thread (a socket then does
 * not wait); any other fd is let go unclosed, with a warning, as its
 * close may never end and the caller is the event loop. Nothing here is
 * needed where the kernel has SO_PASSRIGHTS (Linux 6.16): the transport
 * then refuses fds outright.
 */
#ifndef MMAPIOD_CLOSER_H
#define MMAPIOD_CLOSER_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#define CLOSER_SOFT 64        /* per uid */
#define CLOSER_HARD 4096      /* per uid */
#define CLOSER_THREADS 64     /* in all */
#define CLOSER_UIDS 256       /* uids with fds queued at once */
#define CLOSER_IDLE_S 1       /* a thread without work this long ends */

/* Takes fd (consumed; negative fds are ignored), come from uid. 0 when
 * queued with room to spare, -EAGAIN when uid is over CLOSER_SOFT or
 * waits for a thread. */
int closer_give(uid_t uid, int fd);

/* closer_give on fds[0..n), each set to -1; -EAGAIN if any said so. */
int closer_give_all(uid_t uid, int *fds, size_t n);

/* uid's fds queued and not yet closed. */
size_t closer_pending_uid(uid_t uid);

/* Whether uid's fds would be refused now: CLOSER_SOFT queued, or no
 * thread for it. */
bool closer_busy(uid_t uid);

/* All fds queued and not yet closed, and threads running (tests, status). */
size_t closer_pending(void);
size_t closer_threads(void);

/* Tests: the call that closes (close_quickly by default; NULL restores). */
void closer_set_close_fn(void (*fn)(int fd));

#endif
