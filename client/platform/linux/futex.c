/* futex on Linux: FUTEX_WAIT_BITSET / FUTEX_WAKE without
 * FUTEX_PRIVATE_FLAG, so that the kernel keys the word by the page behind
 * it and a waiter in one process is woken from another. */
#include "futex.h"

#include <errno.h>
#include <stdbool.h>
#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>

const bool futex_shared = true;

int futex_wait(_Atomic uint32_t *w, uint32_t expected,
               const struct timespec *deadline)
{
    long r = syscall(SYS_futex, (uint32_t *)(void *)w, FUTEX_WAIT_BITSET,
                     expected, deadline, NULL, FUTEX_BITSET_MATCH_ANY);
    return r == 0 ? 0 : -errno;
}

long futex_wake(_Atomic uint32_t *w, int count)
{
    long n = syscall(SYS_futex, (uint32_t *)(void *)w, FUTEX_WAKE, count,
                     NULL, NULL, 0);
    return n < 0 ? -errno : n;
}
