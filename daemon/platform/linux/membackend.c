/* membackend on Linux: memfds, file seals, /proc/self/fd, fallocate. */
#include "membackend.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

int mem_section_new(const char *label, uint64_t size, unsigned flags)
{
    unsigned mfd = MFD_CLOEXEC;
    if (flags & MEM_SEALABLE)
        mfd |= MFD_ALLOW_SEALING;
    if (flags & MEM_HUGETLB)
        mfd |= MFD_HUGETLB;
    char name[250]; /* memfd names are at most 249 bytes: cut longer */
    snprintf(name, sizeof(name), "%s", label);
    int fd = memfd_create(name, mfd);
    if (fd < 0)
        return -errno;
    /* A memfd is born 0777: 0600 keeps a holder of a read-only reopen
     * from reopening it read-write through /proc. */
    if (fchmod(fd, 0600) < 0 || (size && ftruncate(fd, (off_t)size) < 0)) {
        int e = errno;
        close(fd);
        return -e;
    }
    return fd;
}

int mem_seal(int fd, unsigned seals)
{
    int s = (seals & MEM_SEAL_SHRINK ? F_SEAL_SHRINK : 0) |
            (seals & MEM_SEAL_GROW ? F_SEAL_GROW : 0) |
            (seals & MEM_SEAL_SEAL ? F_SEAL_SEAL : 0);
    return fcntl(fd, F_ADD_SEALS, s) < 0 ? -errno : 0;
}

int mem_seals(int fd)
{
    int s = fcntl(fd, F_GET_SEALS);
    if (s < 0)
        return -errno;
    return (s & F_SEAL_SHRINK ? MEM_SEAL_SHRINK : 0) |
           (s & F_SEAL_GROW ? MEM_SEAL_GROW : 0) |
           (s & F_SEAL_SEAL ? MEM_SEAL_SEAL : 0);
}

int mem_reopen(int fd, int flags)
{
    char proc[64];
    snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fd);
    int nfd;
    do {
        nfd = open(proc, flags | O_CLOEXEC | O_NOCTTY);
    } while (nfd < 0 && errno == EINTR);
    if (nfd < 0) /* no link in /proc: no such fd */
        return errno == ENOENT ? -EBADF : -errno;
    return nfd;
}

int mem_fd_path(int fd, char *buf, size_t cap)
{
    char proc[64];
    if (cap == 0)
        return -ENAMETOOLONG;
    snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fd);
    ssize_t n = readlink(proc, buf, cap);
    if (n < 0)
        return errno == ENOENT ? -EBADF : -errno;
    if ((size_t)n >= cap)
        return -ENAMETOOLONG;
    buf[n] = '\0';
    return (int)n;
}

/* A memfd's link is "/memfd:<label> (deleted)": the label between. */
int mem_section_label(int fd, char *buf, size_t cap)
{
    static const char pre[] = "/memfd:", post[] = " (deleted)";
    char at[PATH_MAX];
    int n = mem_fd_path(fd, at, sizeof(at));
    if (n == -ENAMETOOLONG)
        return -EINVAL; /* longer than any memfd's link */
    if (n < 0)
        return n;
    if (strncmp(at, pre, sizeof(pre) - 1))
        return -EINVAL;
    size_t len = (size_t)n - (sizeof(pre) - 1), tail = sizeof(post) - 1;
    if (len >= tail && !strcmp(at + n - tail, post))
        len -= tail;
    if (cap) {
        size_t k = len < cap - 1 ? len : cap - 1;
        memcpy(buf, at + sizeof(pre) - 1, k);
        buf[k] = '\0';
    }
    return (int)len;
}

int mem_is_section(int fd)
{
    int n = mem_section_label(fd, NULL, 0);
    return n == -EINVAL ? 0 : n < 0 ? n : 1;
}

int mem_punch(int fd, uint64_t from, uint64_t to)
{
    if (to <= from)
        return 0;
    int r;
    do {
        r = fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
                      (off_t)from, (off_t)(to - from));
    } while (r < 0 && errno == EINTR);
    return r < 0 ? -errno : 0;
}

int mem_reserve(int fd, uint64_t from, uint64_t to)
{
    if (to <= from)
        return 0;
    int r;
    do {
        r = fallocate(fd, 0, (off_t)from, (off_t)(to - from));
    } while (r < 0 && errno == EINTR);
    if (r < 0)
        return errno == ENOSYS ? -EOPNOTSUPP : -errno;
    return 0;
}
