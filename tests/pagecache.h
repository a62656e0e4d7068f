/*
 * pagecache: is a file's data durable yet? Asked of the kernel, not of
 * mmapio, with cachestat(2) (Linux 6.5): the number of the file's pages in
 * the page cache that are dirty or under writeback. Zero means every byte
 * written so far, through any mapping or write(2), has reached the disk
 * (msync/fdatasync clear both); non-zero means some has not.
 *
 * Within a test (seconds), nothing else cleans a file's pages: the kernel's
 * own writeback only takes pages dirty for dirty_expire_centisecs (30 s by
 * default) or when far more than a test writes is dirty. The tests check
 * that assumption with a control (a NEVER mapping stays dirty), and tell a
 * flush of the whole file system by another test's daemon (a syncfs) with
 * a sentinel file (pc_sentinel_dirty).
 */
#ifndef MMAPIO_TESTS_PAGECACHE_H
#define MMAPIO_TESTS_PAGECACHE_H

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#ifndef __NR_cachestat
#define __NR_cachestat 451 /* the same on every architecture */
/* In a criterion test: skip it on a kernel without cachestat(2). */
#define PC_REQUIRE_CACHESTAT()                                            \
    do {                                                                  \
        struct pc_stat pc_st_;                                            \
        if (pc_cachestat("/proc/self/exe", 0, 0, &pc_st_) == -ENOSYS)     \
            cr_skip_test("cachestat(2) is not available (Linux < 6.5): "  \
                         "cannot see whether the file was flushed");      \
    } while (0)

#endif

struct pc_range {
    uint64_t off, len; /* len 0: to the end of the file */
};

struct pc_stat {
    uint64_t nr_cache, nr_dirty, nr_writeback, nr_evicted,
        nr_recently_evicted;
};

/* cachestat of [off, off+len) of the file at path: 0 or -errno. */
static inline int pc_cachestat(const char *path, uint64_t off, uint64_t len,
                               struct pc_stat *out)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    struct pc_range r = { off, len };
    long n = syscall(__NR_cachestat, fd, &r, out, 0);
    int e = errno;
    close(fd);
    return n < 0 ? -e : 0;
}

/* Pages of [off, off+len) not yet on disk (dirty or under writeback), or
 * -errno (-ENOSYS: a kernel without cachestat). */
static inline long pc_unsynced_range(const char *path, uint64_t off,
                                     uint64_t len)
{
    struct pc_stat st;
    int r = pc_cachestat(path, off, len, &st);
    return r < 0 ? r : (long)(st.nr_dirty + st.nr_writeback);
}

static inline long pc_unsynced(const char *path)
{
    return pc_unsynced_range(path, 0, 0);
}

/* Writes `pages` pages into a file no daemon knows, on the file system of
 * the file under test: if a check then finds both clean, something flushed
 * the whole file system (another test's daemon's syncfs, the kernel), not
 * the daemon under test. The kernel's writeback takes the oldest dirty
 * inode first: dirty the sentinel before the file under test first gets
 * dirty, so that writeback reaches the sentinel first. 0 or -errno. */
static inline int pc_sentinel_dirty(const char *path, int pages)
{
    static char page[4096];
    for (size_t i = 0; i < sizeof(page); i++)
        page[i] = 's';
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        return -errno;
    for (int i = 0; i < pages; i++)
        if (write(fd, page, sizeof(page)) != (ssize_t)sizeof(page)) {
            int e = errno ? errno : EIO;
            close(fd);
            return -e;
        }
    close(fd);
    return 0;
}

static inline int64_t pc_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static inline void pc_sleep_ms(int ms)
{
    struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

/* Polls until the file has no unsynced page or timeout_ms passed; returns
 * the last count seen (0: clean), or -errno. *waited_ms (may be NULL) is
 * how long it took. */
static inline long pc_wait_synced(const char *path, int timeout_ms,
                                  int64_t *waited_ms)
{
    int64_t start = pc_now_ms(), end = start + timeout_ms;
    long n;
    while ((n = pc_unsynced(path)) > 0 && pc_now_ms() < end)
        pc_sleep_ms(5);
    if (waited_ms)
        *waited_ms = pc_now_ms() - start;
    return n;
}

/* In a criterion test: skip it on a kernel without cachestat(2). */
#define PC_REQUIRE_CACHESTAT()                                            \
    do {                                                                  \
        struct pc_stat pc_st_;                                            \
        if (pc_cachestat("/proc/self/exe", 0, 0, &pc_st_) == -ENOSYS)     \
            cr_skip_test("cachestat(2) is not available (Linux < 6.5): "  \
                         "cannot see whether the file was flushed");      \
    } while (0)

#endif
