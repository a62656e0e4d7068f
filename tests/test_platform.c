/*
 * test_platform: the contracts of the platform seams (the headers of
 * daemon/platform/ and client/platform/) against this system's
 * implementation: anonymous sections, seals, reopen, an fd's path, punch
 * and reserve; a peer's identity; news of changes to a watched file;
 * waking the loop from a thread; a file's pages not yet on the disk; the
 * library's mappings (map, resize, flush, advise, lock).
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "membackend.h"
#include "writeback.h"
#include "peercred.h"
#include "peeruid.h"
#include "vmem.h"
#include "wakeup.h"
#include "watchsys.h"

TestSuite(platform, .timeout = 20);

static int temp_file(char *path, size_t n)
{
    snprintf(path, n, "/tmp/mmapio-platform-XXXXXX");
    int fd = mkstemp(path);
    cr_assert_geq(fd, 0, "mkstemp: %s", strerror(errno));
    return fd;
}

Test(platform, a_section_is_private_sized_and_sealable)
{
    int fd = mem_section_new("mmapio-test", 8192, MEM_SEALABLE);
    cr_assert_geq(fd, 0, "mem_section_new: %s", strerror(-fd));
    struct stat st;
    cr_assert_eq(fstat(fd, &st), 0);
    cr_assert_eq(st.st_size, 8192);
    cr_assert_eq(st.st_mode & 07777, 0600);
    cr_assert(fcntl(fd, F_GETFD) & FD_CLOEXEC);

    cr_assert_eq(mem_seal(fd, MEM_SEAL_SHRINK | MEM_SEAL_GROW | MEM_SEAL_SEAL), 0);
    cr_assert_lt(ftruncate(fd, 4096), 0, "shrunk past a seal");
    cr_assert_lt(ftruncate(fd, 16384), 0, "grown past a seal");
    cr_assert_eq(mem_seal(fd, MEM_SEAL_GROW), -EPERM);
    close(fd);

    fd = mem_section_new("mmapio-test", 0, 0);
    cr_assert_geq(fd, 0);
    cr_assert_lt(mem_seal(fd, MEM_SEAL_SHRINK), 0, "sealed a section made unsealable");
    close(fd);
}

Test(platform, a_section_tells_its_seals)
{
    int fd = mem_section_new("mmapio-test", 4096, MEM_SEALABLE);
    cr_assert_geq(fd, 0);
    cr_assert_eq(mem_seals(fd), 0, "a new section has no seals");
    cr_assert_eq(mem_seal(fd, MEM_SEAL_SHRINK), 0);
    cr_assert_eq(mem_seals(fd), MEM_SEAL_SHRINK);
    cr_assert_eq(mem_seal(fd, MEM_SEAL_GROW | MEM_SEAL_SEAL), 0);
    cr_assert_eq(mem_seals(fd), MEM_SEAL_SHRINK | MEM_SEAL_GROW | MEM_SEAL_SEAL);
    int other = mem_reopen(fd, O_RDONLY);
    cr_assert_geq(other, 0);
    cr_assert_eq(mem_seals(other), MEM_SEAL_SHRINK | MEM_SEAL_GROW | MEM_SEAL_SEAL,
                 "seals are the section's, seen by every holder");
    close(other);
    close(fd);

    char path[64];
    fd = temp_file(path, sizeof(path));
    cr_assert_lt(mem_seals(fd), 0, "a plain file carries no seals");
    unlink(path);
    close(fd);
    cr_assert_eq(mem_seals(fd), -EBADF);
}

Test(platform, a_long_label_is_cut_not_refused)
{
    char label[1024];
    memset(label, 'x', sizeof(label) - 1);
    label[sizeof(label) - 1] = '\0';
    int fd = mem_section_new(label, 0, 0);
    cr_assert_geq(fd, 0, "mem_section_new: %s", strerror(-fd));
    close(fd);
}

Test(platform, a_read_only_reopen_cannot_write)
{
    int fd = mem_section_new("mmapio-test", 4096, 0);
    cr_assert_geq(fd, 0);
    cr_assert_eq(write(fd, "abc", 3), 3);
    int ro = mem_reopen(fd, O_RDONLY);
    cr_assert_geq(ro, 0, "mem_reopen: %s", strerror(-ro));
    cr_assert(fcntl(ro, F_GETFD) & FD_CLOEXEC);
    char buf[3];
    cr_assert_eq(pread(ro, buf, 3, 0), 3);
    cr_assert_eq(memcmp(buf, "abc", 3), 0);
    cr_assert_lt(pwrite(ro, "x", 1, 0), 0);
    cr_assert_eq(errno, EBADF);
    /* Its own description: moving one offset leaves the other. */
    cr_assert_eq(lseek(ro, 2, SEEK_SET), 2);
    cr_assert_eq(lseek(fd, 0, SEEK_CUR), 3);
    close(ro);
    close(fd);
    cr_assert_eq(mem_reopen(fd, O_RDONLY), -EBADF);
}

Test(platform, a_punched_range_reads_zeros_and_keeps_the_size)
{
    int fd = mem_section_new("mmapio-test", 0, 0);
    cr_assert_geq(fd, 0);
    char page[4096];
    memset(page, 0xab, sizeof(page));
    for (int i = 0; i < 4; i++)
        cr_assert_eq(pwrite(fd, page, sizeof(page), i * 4096), 4096);
    cr_assert_eq(mem_punch(fd, 4096, 3 * 4096), 0);
    cr_assert_eq(mem_punch(fd, 100, 100), 0, "an empty range is nothing to do");
    struct stat st;
    cr_assert_eq(fstat(fd, &st), 0);
    cr_assert_eq(st.st_size, 4 * 4096);
    char got[4096];
    for (int i = 0; i < 4; i++) {
        cr_assert_eq(pread(fd, got, sizeof(got), i * 4096), 4096);
        char want = (i == 1 || i == 2) ? 0 : (char)0xab;
        for (size_t j = 0; j < sizeof(got); j++)
            cr_assert_eq(got[j], want, "page %d byte %zu", i, j);
    }
    close(fd);
}

Test(platform, a_reserved_range_has_blocks)
{
    char path[64];
    int fd = temp_file(path, sizeof(path));
    unlink(path);
    cr_assert_eq(ftruncate(fd, 1 << 20), 0);
    int r = mem_reserve(fd, 0, 1 << 20);
    if (r == -EOPNOTSUPP) {
        close(fd);
        cr_skip_test("/tmp cannot reserve blocks");
    }
    cr_assert_eq(r, 0, "mem_reserve: %s", strerror(-r));
    struct stat st;
    cr_assert_eq(fstat(fd, &st), 0);
    cr_assert_geq((long long)st.st_blocks * 512, 1 << 20);
    cr_assert_eq(st.st_size, 1 << 20);
    cr_assert_eq(mem_reserve(fd, 5, 5), 0);
    close(fd);
    cr_assert_eq(mem_reserve(fd, 0, 4096), -EBADF);
}

Test(platform, the_peer_is_who_the_kernel_says)
{
    int sv[2];
    cr_assert_eq(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv), 0);
    struct peer_cred who;
    memset(&who, 0x5a, sizeof(who));
    cr_assert_eq(peer_identity(sv[0], &who), 0);
    cr_assert_eq(who.pid, getpid());
    cr_assert_eq(who.uid, geteuid());
    cr_assert_eq(who.gid, getegid());
    cr_assert_leq(who.n_groups, PEER_MAX_GROUPS);
    if (who.groups_unknown)
        cr_assert_eq(who.n_groups, 0);
    uid_t uid = (uid_t)-1; /* the library's seam, from the other end */
    cr_assert_eq(peer_uid(sv[1], &uid), 0);
    cr_assert_eq(uid, geteuid());
    close(sv[0]);
    close(sv[1]);

    int fd = mem_section_new("mmapio-test", 0, 0);
    cr_assert_geq(fd, 0);
    cr_assert_lt(peer_identity(fd, &who), 0, "a section has no peer");
    cr_assert_lt(peer_uid(fd, &uid), 0, "a section has no peer");
    close(fd);
}

struct news {
    int token;
    unsigned what;
    int calls;
};

static void collect(void *arg, int token, unsigned what)
{
    struct news *n = arg;
    n->calls++;
    if (token == n->token)
        n->what |= what;
}

/* What the set reports about n->token, waiting for the first report. */
static unsigned news_of(int set, struct news *n)
{
    struct pollfd p = { .fd = set, .events = POLLIN };
    cr_assert_eq(poll(&p, 1, 10000), 1, "no news");
    n->what = 0;
    watchsys_read(set, collect, n);
    return n->what;
}

Test(platform, a_watched_file_reports_its_changes)
{
    char path[64];
    int fd = temp_file(path, sizeof(path));
    int set = watchsys_open();
    cr_assert_geq(set, 0, "watchsys_open: %s", strerror(-set));
    cr_assert(fcntl(set, F_GETFD) & FD_CLOEXEC);
    cr_assert(fcntl(set, F_GETFL) & O_NONBLOCK);

    struct news n = { .token = watchsys_add(set, fd) };
    cr_assert_geq(n.token, 0, "watchsys_add: %s", strerror(-n.token));
    int fd2 = open(path, O_RDONLY | O_CLOEXEC);
    cr_assert_geq(fd2, 0);
    cr_assert_eq(watchsys_add(set, fd2), n.token, "one file, one token");
    close(fd2);

    /* Nothing waits: returns at once, calls nothing. */
    watchsys_read(set, collect, &n);
    cr_assert_eq(n.calls, 0);

    cr_assert_eq(pwrite(fd, "hello", 5, 0), 5);
    cr_assert(news_of(set, &n) & WATCHSYS_MODIFIED);
    cr_assert_eq(fchmod(fd, 0640), 0);
    cr_assert(news_of(set, &n) & WATCHSYS_METADATA);
    cr_assert_eq(unlink(path), 0);
    cr_assert(news_of(set, &n) & WATCHSYS_METADATA);

    watchsys_remove(set, n.token);
    watchsys_read(set, collect, &n); /* whatever the removal itself says */
    n.calls = 0;
    cr_assert_eq(pwrite(fd, "again", 5, 0), 5);
    n.what = 0;
    watchsys_read(set, collect, &n);
    cr_assert_eq(n.calls, 0, "news of a file no longer watched");

    cr_assert_lt(watchsys_add(set, -1), 0);
    close(fd);
    watchsys_close(set);
}

Test(platform, an_fd_tells_its_path_and_whether_it_is_a_section)
{
    char path[64], got[4096];
    int fd = temp_file(path, sizeof(path));
    int n = mem_fd_path(fd, got, sizeof(got));
    cr_assert_eq(n, (int)strlen(path), "mem_fd_path: %d", n);
    cr_assert_str_eq(got, path);
    cr_assert_eq(mem_fd_path(fd, got, 4), -ENAMETOOLONG, "too small a buffer is refused, not cut");
    cr_assert_eq(mem_is_section(fd), 0);
    cr_assert_eq(mem_section_label(fd, got, sizeof(got)), -EINVAL);
    unlink(path);
    close(fd);
    cr_assert_eq(mem_fd_path(fd, got, sizeof(got)), -EBADF);

    fd = mem_section_new("mmapio-test", 0, 0);
    cr_assert_geq(fd, 0);
    cr_assert_eq(mem_is_section(fd), 1);
    cr_assert_gt(mem_fd_path(fd, got, sizeof(got)), 0);
    cr_assert_neq(got[0], '\0');
    cr_assert_eq(mem_section_label(fd, got, sizeof(got)), 11);
    cr_assert_str_eq(got, "mmapio-test", "the label as made, nothing added");
    cr_assert_eq(mem_section_label(fd, got, 7), 11, "a short buffer gets the label cut");
    cr_assert_str_eq(got, "mmapio");
    close(fd);
}

static bool readable(int fd, int ms)
{
    struct pollfd p = { .fd = fd, .events = POLLIN };
    return poll(&p, 1, ms) == 1;
}

static void *signal_once(void *arg)
{
    wakeup_signal(arg);
    return NULL;
}

Test(platform, a_thread_wakes_the_loop_until_it_drains)
{
    struct wakeup w;
    cr_assert_eq(wakeup_open(&w), 0);
    cr_assert(fcntl(w.fd, F_GETFD) & FD_CLOEXEC);
    cr_assert(!readable(w.fd, 0), "woken before any signal");
    wakeup_drain(&w); /* nothing to drain: returns at once */
    pthread_t t;
    cr_assert_eq(pthread_create(&t, NULL, signal_once, &w), 0);
    cr_assert_eq(pthread_join(t, NULL), 0);
    wakeup_signal(&w); /* merges with the thread's */
    cr_assert(readable(w.fd, 0));
    wakeup_drain(&w);
    cr_assert(!readable(w.fd, 0), "still woken after a drain");
    wakeup_close(&w);
    cr_assert_eq(w.fd, -1);
    wakeup_close(&w);
}

Test(platform, a_file_written_has_pages_pending_until_synced)
{
    char path[64];
    int fd = temp_file(path, sizeof(path));
    unlink(path);
    struct writeback_pending p;
    int r = writeback_pending(fd, &p);
    if (r == -ENOSYS || r == -EPERM || r == -EOPNOTSUPP) {
        close(fd);
        cr_skip_test("the page cache cannot tell here: %s", strerror(-r));
    }
    cr_assert_eq(r, 0, "writeback_pending: %s", strerror(-r));
    static char block[1 << 16];
    memset(block, 1, sizeof(block));
    cr_assert_eq(pwrite(fd, block, sizeof(block), 0), (ssize_t)sizeof(block));
    cr_assert_eq(writeback_pending(fd, &p), 0);
    cr_assert_gt(p.dirty + p.writeback, 0, "nothing pending after a write");
    cr_assert_eq(fsync(fd), 0);
    cr_assert_eq(writeback_pending(fd, &p), 0);
    cr_assert_eq(p.dirty + p.writeback, 0, "pending after fsync");
    close(fd);
    cr_assert_eq(writeback_pending(fd, &p), -EBADF);
}

Test(platform, a_mapping_shares_resizes_flushes_and_locks)
{
    char path[64];
    int fd = temp_file(path, sizeof(path));
    size_t page = vmem_page();
    cr_assert_geq(page, 4096);
    cr_assert_eq(page & (page - 1), 0, "a page is a power of two");
    cr_assert_eq(ftruncate(fd, (off_t)(4 * page)), 0);

    uint8_t *w = vmem_map(NULL, fd, page, 2 * page, VMEM_WRITE);
    cr_assert_not_null(w, "vmem_map: %s", strerror(errno));
    uint8_t *r = vmem_map(NULL, fd, 0, 4 * page, 0);
    cr_assert_not_null(r);
    uint8_t *c = vmem_map(NULL, fd, page, page, VMEM_WRITE | VMEM_PRIVATE);
    cr_assert_not_null(c);
    w[0] = 7;
    cr_assert_eq(r[page], 7, "a shared mapping at an offset sees the file");
    c[0] = 9;
    cr_assert_eq(r[page], 7, "a private write stays private");
    cr_assert_eq(vmem_advise(c, page, VMEM_DONT_NEED), 0);
    cr_assert_eq(c[0], 7, "dropped private pages read the file again");
    cr_assert_eq(vmem_advise(w, 2 * page, VMEM_SEQUENTIAL), 0);
    cr_assert_eq(vmem_advise(w, 2 * page, (enum vmem_advice)99), -EINVAL);

    cr_assert_eq(vmem_flush(w, 2 * page, true), 0);
    cr_assert_eq(vmem_flush(w, 2 * page, false), 0);
    uint8_t b = 0;
    cr_assert_eq(pread(fd, &b, 1, (off_t)page), 1);
    cr_assert_eq(b, 7, "the write reached the file");

    cr_assert_eq(vmem_resize(w, 2 * page, page), 0, "shrinks in place");
    int g = vmem_resize(w, page, 2 * page);
    cr_assert(g == 0 || g == -ENOMEM, "grows in place or says the space is taken: %d", g);
    size_t wl = g == 0 ? 2 * page : page;
    uint8_t *again = vmem_map(w, fd, 0, page, 0);
    cr_assert_eq(again, w, "a fixed mapping replaces the one at that address");
    cr_assert_eq(w[0], 0, "...now the file from offset 0, not 7 from the page after");
    cr_assert_eq(vmem_map(NULL, -1, 0, page, 0), NULL);
    cr_assert_eq(errno, EBADF);

    int l = vmem_lock(r, page);
    cr_assert(l == 0 || l == -ENOMEM || l == -EPERM, "vmem_lock: %d", l);
    if (l == 0)
        cr_assert_eq(vmem_unlock(r, page), 0);

    cr_assert_eq(vmem_unmap(w, wl), 0);
    cr_assert_eq(vmem_unmap(r, 4 * page), 0);
    cr_assert_eq(vmem_unmap(c, page), 0);
    unlink(path);
    close(fd);
}
