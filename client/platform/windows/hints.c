/*
 * hints on Windows: no huge pages (a large-page section needs
 * SeLockMemoryPrivilege and the daemon makes none), so the hint is
 * ignored and mmapio_is_hugepage_backed says 0 for any mapped address.
 * EAGER reads a byte of every page; LAZY asks PrefetchVirtualMemory.
 */
#include "hints.h"

#include <stdint.h>
#include <windows.h>

void hints_apply(void *base, size_t len, bool huge, mmapio_touch_hint touch)
{
    SYSTEM_INFO si;
    if (!base || len == 0)
        return;
    GetSystemInfo(&si);
    if (touch == MMAPIO_TOUCH_EAGER) {
        const volatile uint8_t *p = base;
        for (size_t off = 0; off < len; off += si.dwPageSize)
            (void)p[off];
    } else if (touch == MMAPIO_TOUCH_LAZY) {
        WIN32_MEMORY_RANGE_ENTRY r = { .VirtualAddress = base,
                                       .NumberOfBytes = len };
        (void)PrefetchVirtualMemory(GetCurrentProcess(), 1, &r, 0);
    }
}

int hints_huge_backed(const void *base)
{
    MEMORY_BASIC_INFORMATION mi;
    if (VirtualQuery(base, &mi, sizeof(mi)) != sizeof(mi) ||
        mi.Type != MEM_MAPPED)
        return MMAPIO_E_NOT_FOUND;
    return 0;
}
