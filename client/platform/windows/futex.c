/* futex on Windows: none. WaitOnAddress and WakeByAddressAll reach the
 * threads of one process only, and a shared word's waiter and waker are
 * usually in two: atomics.c asks the daemon instead (futex_shared). */
#include "futex.h"

#include <errno.h>
#include <stdbool.h>

const bool futex_shared = false; /* the daemon's Wait and Wake stand in */

int futex_wait(_Atomic uint32_t *w, uint32_t expected,
               const struct timespec *deadline)
{
    return -ENOTSUP;
}

long futex_wake(_Atomic uint32_t *w, int count)
{
    return -ENOTSUP;
}
