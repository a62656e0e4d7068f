/*
 * futex: sleeping on a 32-bit word of a shared mapping until another
 * process (or thread) wakes it. One implementation per platform
 * (client/platform/<system>/futex.c). Linux keys a shared mapping's futex
 * by the page behind it, so waiters and wakers may be in any process;
 * Windows has no such call (WaitOnAddress reaches only the threads of one
 * process), so both calls there are -ENOTSUP and futex_shared is false:
 * the library asks the daemon instead (atomics.c: Wait and Wake requests,
 * a round trip each).
 */
#ifndef MMAPIO_FUTEX_H
#define MMAPIO_FUTEX_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

/* The futex reaches other processes (Linux); false: the daemon's Wait
 * and Wake stand in (Windows). */
extern const bool futex_shared;

/* What the library says when -ENOTSUP comes back. */
#define FUTEX_UNSUPPORTED                                                   \
    "waiting on a shared word across processes is not supported on this " \
    "system (Windows: WaitOnAddress reaches one process only)"

/* Sleeps while *w == expected, until woken or the CLOCK_MONOTONIC
 * *deadline (NULL: none): 0 woken, -EAGAIN the word differed, -ETIMEDOUT,
 * -EINTR, or another -errno. */
int futex_wait(_Atomic uint32_t *w, uint32_t expected,
               const struct timespec *deadline);

/* Wakes up to count waiters: how many, or -errno. */
long futex_wake(_Atomic uint32_t *w, int count);

#endif
