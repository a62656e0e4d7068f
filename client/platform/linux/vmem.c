/* vmem on Linux: mmap, mremap, msync, madvise, and mlock as raw system
 * calls (AddressSanitizer's interceptors make mlock a silent no-op). */
#include "vmem.h"

#include <errno.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

size_t vmem_page(void)
{
    long page = sysconf(_SC_PAGESIZE); /* from the auxv: no system call */
    return page > 0 ? (size_t)page : 4096;
}

void *vmem_map(void *at, int fd, uint64_t offset, size_t len, unsigned mode)
{
    int prot = mode & VMEM_WRITE ? PROT_READ | PROT_WRITE : PROT_READ;
    int flags = (mode & VMEM_PRIVATE ? MAP_PRIVATE : MAP_SHARED) |
                (at ? MAP_FIXED : 0);
    void *p = mmap(at, len, prot, flags, fd, (off_t)offset);
    return p == MAP_FAILED ? NULL : p;
}

int vmem_unmap(void *p, size_t len)
{
    return munmap(p, len) != 0 ? -errno : 0;
}

int vmem_resize(void *p, size_t old, size_t len)
{
    return mremap(p, old, len, 0) == MAP_FAILED ? -errno : 0;
}

int vmem_flush(void *p, size_t len, bool wait)
{
    return msync(p, len, wait ? MS_SYNC : MS_ASYNC) != 0 ? -errno : 0;
}

int vmem_advise(void *p, size_t len, enum vmem_advice advice)
{
    int madv;
    switch (advice) {
    case VMEM_NORMAL: madv = MADV_NORMAL; break;
    case VMEM_RANDOM: madv = MADV_RANDOM; break;
    case VMEM_SEQUENTIAL: madv = MADV_SEQUENTIAL; break;
    case VMEM_WILL_NEED: madv = MADV_WILLNEED; break;
    case VMEM_DONT_NEED: madv = MADV_DONTNEED; break;
    default: errno = EINVAL; return -EINVAL;
    }
    return madvise(p, len, madv) != 0 ? -errno : 0;
}

int vmem_lock(void *p, size_t len)
{
    return syscall(SYS_mlock, p, len) != 0 ? -errno : 0;
}

int vmem_unlock(void *p, size_t len)
{
    return syscall(SYS_munlock, p, len) != 0 ? -errno : 0;
}
