/*
 * test_unmap_fd: mmapio_unmap_to_fd hands the caller the file's
 * descriptor and releases the holder as mmapio_unmap does.
 *
 * The fd is close-on-exec and reaches the same file (its bytes, and
 * writes through it for READ_WRITE); READ_ONLY and COPY_ON_WRITE handles
 * give a read-only fd; the daemon counts one holder fewer afterwards.
 * Anonymous mappings have no file: MMAPIO_E_INVALID_MODE, and the handle
 * is left as it was.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"

TestSuite(unmap_fd, .init = hz_setup, .fini = hz_teardown, .timeout = 60);

static mmapio_client *conn(void)
{
    mmapio_client *c;
    cr_assert_eq(mmapio_connect(hz.sock, &c), MMAPIO_OK, "%s",
                 mmapio_last_error());
    return c;
}

/* Holders the daemon counts on the mapping named name (0: not listed). */
static uint32_t holders(mmapio_client *c, const char *name)
{
    mmapio_map_info *maps;
    size_t n;
    uint32_t h = 0;
    cr_assert_eq(mmapio_admin_list(c, &maps, &n), MMAPIO_OK);
    for (size_t i = 0; i < n; i++)
        if (strcmp(maps[i].name, name) == 0)
            h = maps[i].holders;
    mmapio_map_info_free(maps, n);
    return h;
}

static void assert_fd_file(int fd, const char *want, int accmode)
{
    int fdfl = fcntl(fd, F_GETFD);
    cr_assert(fdfl >= 0 && (fdfl & FD_CLOEXEC), "fd is not close-on-exec");
    int fl = fcntl(fd, F_GETFL);
    cr_assert_eq(fl & O_ACCMODE, accmode, "access mode %d, expected %d",
                 fl & O_ACCMODE, accmode);
    char got[64] = "";
    cr_assert_eq(pread(fd, got, strlen(want), 0), (ssize_t)strlen(want));
    cr_assert_eq(memcmp(got, want, strlen(want)), 0, "read back %.*s",
                 (int)strlen(want), got);
}

Test(unmap_fd, read_write_hands_a_usable_fd_and_releases_the_holder)
{
    mmapio_client *c = conn();
    mmapio_map *keep, *m;
    cr_assert_eq(mmapio_create_rw(c, "a.bin", 4096, &keep), MMAPIO_OK);
    cr_assert_eq(mmapio_open_rw(c, "a.bin", &m), MMAPIO_OK);
    cr_assert_eq(mmapio_update_region(m, 0, "hello", 5), MMAPIO_OK);
    cr_assert_eq(holders(c, "a.bin"), 2);
    int fd = -1;
    cr_assert_eq(mmapio_unmap_to_fd(m, &fd), MMAPIO_OK, "%s",
                 mmapio_last_error());
    cr_assert_geq(fd, 0);
    cr_assert_eq(holders(c, "a.bin"), 1, "the holder was not released");
    assert_fd_file(fd, "hello", O_RDWR);
    cr_assert_eq(pwrite(fd, "HE", 2, 0), 2, "write through the fd: %s",
                 strerror(errno));
    char buf[5];
    cr_assert_eq(mmapio_read_into(keep, 0, buf, 5), MMAPIO_OK);
    cr_assert_eq(memcmp(buf, "HEllo", 5), 0, "the fd is not the same file");
    close(fd);
    mmapio_unmap(keep);
    mmapio_disconnect(c);
}

Test(unmap_fd, read_only_and_copy_on_write_give_read_only_fds)
{
    cr_assert_eq(hz_write_file(hz_path(&hz, "r.bin"), "abcdef", 6), 0);
    mmapio_client *c = conn();
    mmapio_map *ro, *cow;
    cr_assert_eq(mmapio_open_ro(c, "r.bin", &ro), MMAPIO_OK);
    cr_assert_eq(mmapio_open_cow(c, "r.bin", &cow), MMAPIO_OK);
    cr_assert_eq(mmapio_update_region(cow, 0, "ZZ", 2), MMAPIO_OK);
    int fd1 = -1, fd2 = -1;
    cr_assert_eq(mmapio_unmap_to_fd(ro, &fd1), MMAPIO_OK);
    assert_fd_file(fd1, "abcdef", O_RDONLY);
    cr_assert_eq(write(fd1, "x", 1), -1, "a read-only fd wrote");
    cr_assert_eq(mmapio_unmap_to_fd(cow, &fd2), MMAPIO_OK);
    assert_fd_file(fd2, "abcdef", O_RDONLY); /* private bytes stay private */
    cr_assert_eq(holders(c, "r.bin"), 0, "holders left behind");
    close(fd1);
    close(fd2);
    mmapio_disconnect(c);
}

Test(unmap_fd, anonymous_and_bad_arguments)
{
    mmapio_client *c = conn();
    mmapio_map *m;
    int fd = -7;
    cr_assert_eq(mmapio_anon_create(c, "anon", 4096, &m), MMAPIO_OK);
    cr_assert_eq(mmapio_unmap_to_fd(m, &fd), MMAPIO_E_INVALID_MODE);
    cr_assert_eq(fd, -7, "output written on failure");
    cr_assert_eq(holders(c, "anon"), 1, "the handle must be left alone");
    cr_assert_eq(mmapio_update_region(m, 0, "ok", 2), MMAPIO_OK);
    cr_assert_eq(mmapio_unmap_to_fd(m, NULL), MMAPIO_E_INVALID_ARGUMENT);
    cr_assert_eq(mmapio_unmap_to_fd(NULL, &fd), MMAPIO_E_INVALID_ARGUMENT);
    cr_assert_eq(mmapio_unmap(m), MMAPIO_OK);
    mmapio_disconnect(c);
}

Test(unmap_fd, after_the_daemon_is_gone_the_fd_still_comes)
{
    mmapio_client *c = conn();
    mmapio_map *m;
    cr_assert_eq(mmapio_create_rw(c, "g.bin", 4096, &m), MMAPIO_OK);
    cr_assert_eq(mmapio_update_region(m, 0, "gone", 4), MMAPIO_OK);
    cr_assert_eq(hz_stop(&hz), 0);
    cr_assert_eq(hz_start(&hz), 0); /* the fixture wants a daemon at the end */
    int fd = -1;
    cr_assert_eq(mmapio_unmap_to_fd(m, &fd), MMAPIO_OK, "%s",
                 mmapio_last_error());
    assert_fd_file(fd, "gone", O_RDWR);
    close(fd);
    mmapio_disconnect(c);
}
