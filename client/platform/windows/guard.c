/*
 * guard on Windows: nothing to guard against. A section's size is fixed
 * at creation, and Windows refuses to shrink a file below a view mapped
 * of it (ERROR_USER_MAPPED_FILE), so a copy never meets a page cut from
 * under it: guard_copy is a bounds-checked memcpy and there is no handler
 * to install. The poison word stays as it is (UINT64_MAX).
 */
#include "guard.h"

#include <string.h>

void guard_install(void)
{
}

int guard_copy(_Atomic uint64_t *poisoned_from, bool writable, uint8_t *base,
               uint64_t len, uint64_t off, void *dst, const void *src,
               size_t n)
{
    if (off + n > atomic_load_explicit(poisoned_from, memory_order_relaxed))
        return MMAPIO_E_IO;
    memcpy(dst, src, n);
    return MMAPIO_OK;
}
