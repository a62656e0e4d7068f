/*
 * vmem on Windows: views of sections (the HANDLE in the int of vmem.h).
 *
 * - A view starts on the allocation granularity (64 kB), not the page:
 *   vmem_map maps from the granule below `offset` and returns the address
 *   of `offset` within it; vmem_unmap finds the view's base by
 *   VirtualQuery.
 * - Read-only is FILE_MAP_READ, read-write FILE_MAP_WRITE, private
 *   (copy on write) FILE_MAP_COPY. A read-only grant's section refuses
 *   more (its DACL), so asking for write fails here too.
 * - A view cannot grow where it is: vmem_resize growing is -ENOMEM (the
 *   caller maps afresh); shrinking keeps the view (the caller's length
 *   bounds every access) and succeeds.
 * - Flushing is FlushViewOfFile; the library holds no file handle (the
 *   daemon does), so `wait` cannot add FlushFileBuffers: the daemon's
 *   flush policies write a file's bytes to the disk.
 * - Advice: WILL_NEED is PrefetchVirtualMemory; NORMAL, RANDOM and
 *   SEQUENTIAL have no Windows counterpart and change nothing; DONT_NEED
 *   (a private view reads the file again) has none either: -EOPNOTSUPP.
 * - Locking is VirtualLock / VirtualUnlock (within the working set's
 *   minimum, which Windows keeps small).
 */
#include "vmem.h"

#include <errno.h>
#include <windows.h>

static void sysinfo(SYSTEM_INFO *si)
{
    GetSystemInfo(si);
}

size_t vmem_page(void)
{
    SYSTEM_INFO si;
    sysinfo(&si);
    return si.dwPageSize ? si.dwPageSize : 4096;
}

static int errno_of(DWORD err)
{
    switch (err) {
    case ERROR_ACCESS_DENIED:
        return EACCES;
    case ERROR_INVALID_HANDLE:
        return EBADF;
    case ERROR_NOT_ENOUGH_MEMORY:
    case ERROR_OUTOFMEMORY:
    case ERROR_COMMITMENT_LIMIT:
    case ERROR_WORKING_SET_QUOTA:
        return ENOMEM;
    case ERROR_INVALID_ADDRESS:
        return EFAULT;
    case ERROR_NOT_SUPPORTED:
    case ERROR_CALL_NOT_IMPLEMENTED:
        return EOPNOTSUPP;
    default:
        return EINVAL;
    }
}

static int fail(void)
{
    errno = errno_of(GetLastError());
    return -errno;
}

/* The base of the view that holds p, or NULL. */
static void *view_base(const void *p)
{
    MEMORY_BASIC_INFORMATION mi;
    if (VirtualQuery(p, &mi, sizeof(mi)) != sizeof(mi) || mi.Type != MEM_MAPPED)
        return NULL;
    return mi.AllocationBase;
}

void *vmem_map(void *at, int fd, uint64_t offset, size_t len, unsigned mode)
{
    SYSTEM_INFO si;
    sysinfo(&si);
    uint64_t delta = offset % si.dwAllocationGranularity;
    uint64_t from = offset - delta;
    DWORD access = mode & VMEM_PRIVATE ? FILE_MAP_COPY
                   : mode & VMEM_WRITE ? FILE_MAP_WRITE
                                       : FILE_MAP_READ;
    void *want = NULL;

    if (len == 0 || len > SIZE_MAX - delta) {
        errno = EINVAL;
        return NULL;
    }
    if (at) { /* Windows cannot map over a view: drop it, then map there */
        want = (char *)at - delta;
        void *old = view_base(at);
        if (old && !UnmapViewOfFile(old)) {
            fail();
            return NULL;
        }
    }
    void *p = MapViewOfFileEx((HANDLE)(intptr_t)fd, access,
                              (DWORD)(from >> 32), (DWORD)from,
                              (SIZE_T)(len + delta), want);
    if (!p) {
        fail();
        return NULL;
    }
    return (char *)p + delta;
}

int vmem_unmap(void *p, size_t len)
{
    void *base = view_base(p);
    if (!base) {
        errno = EINVAL;
        return -EINVAL;
    }
    return UnmapViewOfFile(base) ? 0 : fail();
}

int vmem_resize(void *p, size_t old, size_t len)
{
    if (len <= old)
        return 0;
    errno = ENOMEM;
    return -ENOMEM;
}

int vmem_flush(void *p, size_t len, bool wait)
{
    return FlushViewOfFile(p, len) ? 0 : fail();
}

int vmem_advise(void *p, size_t len, enum vmem_advice advice)
{
    WIN32_MEMORY_RANGE_ENTRY range = { .VirtualAddress = p,
                                       .NumberOfBytes = len };
    switch (advice) {
    case VMEM_NORMAL:
    case VMEM_RANDOM:
    case VMEM_SEQUENTIAL:
        return 0;
    case VMEM_WILL_NEED:
        return PrefetchVirtualMemory(GetCurrentProcess(), 1, &range, 0)
                   ? 0 : fail();
    case VMEM_DONT_NEED:
        errno = EOPNOTSUPP;
        return -EOPNOTSUPP;
    default:
        errno = EINVAL;
        return -EINVAL;
    }
}

int vmem_lock(void *p, size_t len)
{
    return VirtualLock(p, len) ? 0 : fail();
}

int vmem_unlock(void *p, size_t len)
{
    return VirtualUnlock(p, len) ? 0 : fail();
}
