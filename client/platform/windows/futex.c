/* futex on Windows: none. WaitOnAddress and WakeByAddressAll reach the
 * threads of one process only, and a shared word's waiter and waker are
 * usually in two: a wait that no wake from another process could end
 * would be worse than a clear error (futex.h). */
#include "futex.h"

#include <errno.h>

int futex_wait(_Atomic uint32_t *w, uint32_t expected,
               const struct timespec *deadline)
{
    return -ENOTSUP;
}

long futex_wake(_Atomic uint32_t *w, int count)
{
    return -ENOTSUP;
}
