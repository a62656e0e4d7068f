/*
 * test_modes: read-only and copy-on-write handles. A read-only grant is a
 * read-only fd, so not even mprotect can make the mapping writable
 * (EACCES); a copy-on-write handle is privately writable and its writes
 * reach neither the file nor anyone else.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "wire.h"

TestSuite(modes, .init = hz_setup, .fini = hz_teardown, .timeout = 60);

static mmapio_client *c;

/* A 3-page file with known bytes; returns a read-write handle. */
static mmapio_map *make_file(const char *path)
{
    long page = sysconf(_SC_PAGESIZE);
    mmapio_map *m;
    c = hz_client();
    hz_assert_ok(mmapio_create_rw(c, path, (uint64_t)page * 3, &m));
    uint8_t *p = mmapio_as_mut_ptr(m);
    for (long i = 0; i < page * 3; i++)
        p[i] = (uint8_t)(i % 251);
    hz_assert_ok(mmapio_flush(m));
    return m;
}

static void expect_mprotect_refused(const mmapio_map *m)
{
    long page = sysconf(_SC_PAGESIZE);
    void *p = (void *)mmapio_as_ptr(m);
    cr_assert_not_null(p);
    cr_assert_eq((uintptr_t)p % (uintptr_t)page, 0, "map not page aligned");
    size_t len = (size_t)mmapio_len(m);
    len = (len + (size_t)page - 1) / (size_t)page * (size_t)page;
    errno = 0;
    int r = mprotect(p, len, PROT_READ | PROT_WRITE);
    cr_assert_eq(r, -1, "mprotect made a read-only mapping writable: the "
                 "daemon handed out a writable fd");
    cr_assert_eq(errno, EACCES, "mprotect: %s", strerror(errno));
}

Test(modes, read_only_refuses_writes)
{
    mmapio_map *rw = make_file("ro.dat");
    mmapio_map *ro;
    hz_assert_ok(mmapio_open_ro(c, "ro.dat", &ro));
    cr_assert_eq(mmapio_mode_of(ro), MMAPIO_MODE_READ_ONLY);
    cr_assert_null(mmapio_as_mut_ptr(ro));
    cr_assert_not_null(mmapio_as_ptr(ro));

    uint8_t before[16], after[16];
    hz_assert_ok(mmapio_read_into(ro, 100, before, 16));
    cr_assert_eq(before[0], 100 % 251);
    hz_assert_ret(mmapio_update_region(ro, 100, "XXXXXXXXXXXXXXXX", 16),
                  MMAPIO_E_INVALID_MODE);
    hz_assert_ok(mmapio_read_into(ro, 100, after, 16));
    cr_assert_arr_eq(after, before, 16);

    hz_assert_ret(mmapio_resize(ro, 1u << 20), MMAPIO_E_INVALID_MODE);
    cr_assert_eq(mmapio_flush(ro), MMAPIO_OK, "flush of RO is a no-op");
    /* A read-only handle sees the writer's bytes (shared). */
    hz_assert_ok(mmapio_update_region(rw, 200, "shared", 6));
    cr_assert_eq(memcmp((const char *)mmapio_as_ptr(ro) + 200, "shared", 6),
                 0);
    mmapio_unmap(ro);
    mmapio_unmap(rw);
    mmapio_disconnect(c);
}

Test(modes, read_only_mprotect_eacces)
{
    mmapio_map *rw = make_file("prot.dat");
    mmapio_map *ro;
    hz_assert_ok(mmapio_open_ro(c, "prot.dat", &ro));
    expect_mprotect_refused(ro);
    mmapio_unmap(ro);
    mmapio_unmap(rw);
    mmapio_disconnect(c);
}

Test(modes, read_only_anonymous_mprotect_eacces)
{
    c = hz_client();
    mmapio_map *rw, *ro;
    hz_assert_ok(mmapio_anon_create(c, "ro-anon", 8192, &rw));
    hz_assert_ok(mmapio_update_region(rw, 0, "anon", 4));
    mmapio_options o;
    mmapio_options_init(&o);
    o.anonymous = true;
    o.mode = MMAPIO_MODE_READ_ONLY;
    hz_assert_ok(mmapio_open(c, "ro-anon", &o, &ro));
    cr_assert_eq(mmapio_mode_of(ro), MMAPIO_MODE_READ_ONLY);
    cr_assert_eq(memcmp(mmapio_as_ptr(ro), "anon", 4), 0);
    cr_assert_null(mmapio_as_mut_ptr(ro));
    hz_assert_ret(mmapio_update_region(ro, 0, "x", 1), MMAPIO_E_INVALID_MODE);
    expect_mprotect_refused(ro);
    mmapio_unmap(ro);
    mmapio_unmap(rw);
    mmapio_disconnect(c);
}

Test(modes, read_write_pointers)
{
    mmapio_map *rw = make_file("rw.dat");
    cr_assert_eq(mmapio_mode_of(rw), MMAPIO_MODE_READ_WRITE);
    cr_assert_not_null(mmapio_as_mut_ptr(rw));
    cr_assert_eq(mmapio_as_mut_ptr(rw), mmapio_as_ptr(rw));
    mmapio_unmap(rw);
    mmapio_disconnect(c);
}

Test(modes, copy_on_write_is_private)
{
    mmapio_map *rw = make_file("cow.dat");
    mmapio_map *cow;
    hz_assert_ok(mmapio_open_cow(c, "cow.dat", &cow));
    cr_assert_eq(mmapio_mode_of(cow), MMAPIO_MODE_COPY_ON_WRITE);
    cr_assert_eq(mmapio_len(cow), mmapio_len(rw));

    /* privately writable both ways */
    hz_assert_ok(mmapio_update_region(cow, 10, "private", 7));
    uint8_t *cp = mmapio_as_mut_ptr(cow);
    cr_assert_not_null(cp, "a copy-on-write handle is writable");
    memcpy(cp + 5000, "pointer", 7);

    char buf[7];
    hz_assert_ok(mmapio_read_into(cow, 10, buf, 7));
    cr_assert_eq(memcmp(buf, "private", 7), 0);
    hz_assert_ok(mmapio_read_into(cow, 5000, buf, 7));
    cr_assert_eq(memcmp(buf, "pointer", 7), 0);

    /* not seen by the shared mapping ... */
    const uint8_t *rp = mmapio_as_ptr(rw);
    cr_assert_eq(rp[10], 10 % 251, "COW write reached the shared mapping");
    cr_assert_eq(rp[5000], 5000 % 251);
    /* ... nor by the file, even after a flush of the COW handle */
    hz_assert_ok(mmapio_flush(cow));
    uint8_t disk[5010];
    cr_assert_eq(hz_read_file(hz_path(&hz, "cow.dat"), disk, sizeof(disk)),
                 (long)sizeof(disk));
    cr_assert_eq(disk[10], 10 % 251, "COW write reached the file");
    cr_assert_eq(disk[5000], 5000 % 251, "COW write reached the file");

    hz_assert_ret(mmapio_resize(cow, 1u << 20), MMAPIO_E_INVALID_MODE);
    mmapio_unmap(cow);
    mmapio_unmap(rw);
    mmapio_disconnect(c);
}

Test(modes, copy_on_write_not_seen_by_other_process)
{
    mmapio_map *rw = make_file("cow2.dat");
    mmapio_map *cow;
    hz_assert_ok(mmapio_open_cow(c, "cow2.dat", &cow));
    hz_assert_ok(mmapio_update_region(cow, 0, "mine", 4));

    pid_t pid = hz_fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        mmapio_client *cc;
        mmapio_map *m;
        if (mmapio_connect(NULL, &cc) != MMAPIO_OK)
            _exit(2);
        if (mmapio_open_ro(cc, "cow2.dat", &m) != MMAPIO_OK)
            _exit(3);
        const uint8_t *p = mmapio_as_ptr(m);
        _exit(p[0] == 0 && p[1] == 1 && p[2] == 2 && p[3] == 3 ? 0 : 1);
    }
    int st = hz_wait_child(pid, 20000);
    cr_assert(WIFEXITED(st), "child status 0x%x", (unsigned)st);
    cr_assert_eq(WEXITSTATUS(st), 0, "child saw %s",
                 WEXITSTATUS(st) == 1 ? "the COW bytes" : "an error");
    mmapio_unmap(cow);
    mmapio_unmap(rw);
    mmapio_disconnect(c);
}

Test(modes, copy_on_write_sees_file_until_written)
{
    /* Pages not yet written privately still show the file. */
    mmapio_map *rw = make_file("cow3.dat");
    mmapio_map *cow;
    hz_assert_ok(mmapio_open_cow(c, "cow3.dat", &cow));
    const uint8_t *p = mmapio_as_ptr(cow);
    for (int i = 0; i < 300; i++)
        cr_assert_eq(p[i], (uint8_t)(i % 251));
    mmapio_unmap(cow);
    mmapio_unmap(rw);
    mmapio_disconnect(c);
}

/*
 * The grants themselves, seen through the raw protocol: the fd that rides
 * on a read-only or copy-on-write grant is open read-only, a read-write
 * grant's is read-write, and every one is close-on-exec.
 */
static int granted_fd(int sock, const char *path, bool anonymous, int mode)
{
    int fd = -1;
    int r = raw_open(sock, path, anonymous, mode, false, 0, &fd);
    cr_assert_eq(r, 0, "raw open of %s in mode %d: %d", path, mode, r);
    cr_assert_geq(fd, 0, "no fd came with the grant of %s", path);
    cr_assert(fcntl(fd, F_GETFD) & FD_CLOEXEC, "granted fd not CLOEXEC");
    return fd;
}

static void expect_access(int fd, int accmode, const char *what)
{
    int fl = fcntl(fd, F_GETFL);
    cr_assert_geq(fl, 0);
    cr_assert_eq(fl & O_ACCMODE, accmode, "%s: fd opened with %s", what,
                 (fl & O_ACCMODE) == O_RDWR ? "O_RDWR" : "O_RDONLY/WRONLY");
    close(fd);
}

Test(modes, granted_fds_have_the_mode_granted)
{
    mmapio_map *rw = make_file("grant.dat");
    mmapio_map *anon;
    hz_assert_ok(mmapio_anon_create(c, "grant-anon", 4096, &anon));

    int s = raw_connect(hz.sock);
    cr_assert_geq(s, 0);
    cr_assert_eq(raw_hello(s, WIRE_PROTOCOL), 0);
    expect_access(granted_fd(s, "grant.dat", false,
                             MMAPIO__MODE__MODE_READ_ONLY),
                  O_RDONLY, "read-only file grant");
    expect_access(granted_fd(s, "grant.dat", false,
                             MMAPIO__MODE__MODE_COPY_ON_WRITE),
                  O_RDONLY, "copy-on-write file grant");
    expect_access(granted_fd(s, "grant.dat", false,
                             MMAPIO__MODE__MODE_READ_WRITE),
                  O_RDWR, "read-write file grant");
    expect_access(granted_fd(s, "grant-anon", true,
                             MMAPIO__MODE__MODE_READ_ONLY),
                  O_RDONLY, "read-only anonymous grant");
    close(s);
    /* A small anonymous mapping is carved from an arena whose fd rides
     * only on a connection's first grant of each kind: a fresh one. */
    s = raw_connect(hz.sock);
    cr_assert_geq(s, 0);
    cr_assert_eq(raw_hello(s, WIRE_PROTOCOL), 0);
    expect_access(granted_fd(s, "grant-anon", true,
                             MMAPIO__MODE__MODE_COPY_ON_WRITE),
                  O_RDONLY, "copy-on-write anonymous grant");
    expect_access(granted_fd(s, "grant-anon", true,
                             MMAPIO__MODE__MODE_READ_WRITE),
                  O_RDWR, "read-write anonymous grant");
    close(s);
    mmapio_unmap(anon);
    mmapio_unmap(rw);
    mmapio_disconnect(c);
}

Test(modes, control_area_is_read_only)
{
    /* The fd on the hello reply lets every client see every mapping's
     * policy; it must not let any client change them. */
    int s = raw_connect(hz.sock);
    cr_assert_geq(s, 0);
    int fd = -1;
    cr_assert_eq(raw_hello_fd(s, &fd), 0);
    if (fd < 0) {
        close(s);
        cr_skip_test("this daemon sends no fd with its hello reply");
    }
    cr_assert(fcntl(fd, F_GETFD) & FD_CLOEXEC);
    cr_assert_eq(fcntl(fd, F_GETFL) & O_ACCMODE, O_RDONLY,
                 "the control area fd is writable");
    long page = sysconf(_SC_PAGESIZE);
    void *p = mmap(NULL, (size_t)page, PROT_READ | PROT_WRITE, MAP_SHARED,
                   fd, 0);
    cr_assert_eq(p, MAP_FAILED, "the control area can be mapped writable");
    cr_assert_eq(errno, EACCES);
    close(fd);
    close(s);
}
