/*
 * test_fromfd: mmapio_from_fd against a real daemon. A file under the data
 * root is the mapping any open by path finds (another process sees the
 * same bytes and the admin list one mapping with both holders); a file
 * outside the root and a memfd are the caller's alone; sockets, pipes,
 * directories and devices are refused with INVALID_ARGUMENT; the mode is
 * checked against the fd's own access (PERMISSION); an empty file cannot
 * be mapped writable (RESIZE_FAILED); watches, policies and flushes work
 * on such mappings; and the one-fd window of from_fd lets no stray fd in.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "wire.h"

TestSuite(fromfd, .init = hz_setup, .fini = hz_teardown, .timeout = 60);

static int make_file(const char *path, size_t size, char fill)
{
    char buf[4096];
    memset(buf, fill, sizeof(buf));
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    cr_assert_geq(fd, 0, "open %s", path);
    for (size_t done = 0; done < size; done += sizeof(buf))
        cr_assert_eq(write(fd, buf, sizeof(buf)), (ssize_t)sizeof(buf));
    return fd;
}

static size_t n_maps(mmapio_client *c, const char *name, uint64_t *id,
                     uint32_t *holders)
{
    mmapio_map_info *maps;
    size_t n, found = 0;
    hz_assert_ok(mmapio_admin_list(c, &maps, &n));
    for (size_t i = 0; i < n; i++) {
        if (name && strcmp(maps[i].name, name))
            continue;
        found++;
        if (id)
            *id = maps[i].id;
        if (holders)
            *holders = maps[i].holders;
    }
    mmapio_map_info_free(maps, n);
    return found;
}

/* A child opens a.bin by path: the parent's bytes, one mapping, 2 holders. */
static void child_by_path(uint64_t want_id)
{
    mmapio_client *c;
    mmapio_map *m;
    uint64_t id = 0;
    uint32_t holders = 0;
    if (mmapio_connect(NULL, &c) != MMAPIO_OK)
        _exit(10);
    if (mmapio_open_rw(c, "a.bin", &m) != MMAPIO_OK)
        _exit(11);
    if (memcmp(mmapio_as_ptr(m), "from the fd", 11))
        _exit(12);
    if (n_maps(c, NULL, NULL, NULL) != 1 || n_maps(c, "a.bin", &id, &holders) != 1)
        _exit(13);
    if (id != want_id || holders != 2)
        _exit(14);
    if (mmapio_update_region(m, 100, "child", 5) != MMAPIO_OK)
        _exit(15);
    mmapio_unmap(m);
    mmapio_disconnect(c);
    _exit(0);
}

Test(fromfd, under_root_is_the_mapping_by_path)
{
    mmapio_client *c = hz_client();
    mmapio_map *m;
    uint64_t id = 0;
    int fd = make_file(hz_path(&hz, "a.bin"), 8192, 'A');
    hz_assert_ok(mmapio_from_fd(c, fd, MMAPIO_MODE_READ_WRITE, "mine", &m));
    cr_assert_eq(mmapio_len(m), 8192);
    cr_assert_str_eq(mmapio_path(m), "mine");
    hz_assert_ok(mmapio_update_region(m, 0, "from the fd", 11));
    cr_assert_eq(n_maps(c, "a.bin", &id, NULL), 1);

    pid_t pid = hz_fork();
    if (pid == 0)
        child_by_path(id);
    cr_assert_eq(hz_wait_child(pid, 30000), 0, "child failed");
    cr_assert_eq(memcmp((const char *)mmapio_as_ptr(m) + 100, "child", 5), 0);
    char buf[5];
    cr_assert_eq(pread(fd, buf, 5, 100), 5); /* the caller's fd: same file */
    cr_assert_eq(memcmp(buf, "child", 5), 0);
    hz_assert_ok(mmapio_unmap(m));
    close(fd);
    mmapio_disconnect(c);
}

/* Another client sees no mapping and cannot open it by any name. */
static void child_cannot_find(void)
{
    mmapio_client *c;
    mmapio_map *m;
    if (mmapio_connect(NULL, &c) != MMAPIO_OK)
        _exit(10);
    if (n_maps(c, NULL, NULL, NULL) != 0)
        _exit(11);
    if (mmapio_open_rw(c, "../outside.bin", &m) == MMAPIO_OK)
        _exit(12);
    if (mmapio_open_rw(c, "outside.bin", &m) == MMAPIO_OK)
        _exit(13);
    mmapio_disconnect(c);
    _exit(0);
}

Test(fromfd, outside_root_is_private)
{
    mmapio_client *c = hz_client();
    mmapio_map *m;
    char path[512];
    snprintf(path, sizeof(path), "%s/outside.bin", hz.dir);
    int fd = make_file(path, 4096, 'O');
    hz_assert_ok(mmapio_from_fd(c, fd, MMAPIO_MODE_READ_WRITE, path, &m));
    cr_assert_eq(((const char *)mmapio_as_ptr(m))[10], 'O');
    hz_assert_ok(mmapio_update_region(m, 0, "private", 7));
    hz_assert_ok(mmapio_flush(m));
    char buf[7];
    cr_assert_eq(pread(fd, buf, 7, 0), 7);
    cr_assert_eq(memcmp(buf, "private", 7), 0);
    /* Not listed, even to root: held for this client alone. */
    cr_assert_eq(n_maps(c, NULL, NULL, NULL), 0);
    pid_t pid = hz_fork();
    if (pid == 0)
        child_cannot_find();
    cr_assert_eq(hz_wait_child(pid, 30000), 0, "child found it");
    hz_assert_ok(mmapio_unmap(m));
    close(fd);
    mmapio_disconnect(c);
}

Test(fromfd, memfd)
{
    mmapio_client *c = hz_client();
    mmapio_map *m;
    int fd = memfd_create("fromfd-test", MFD_CLOEXEC);
    cr_assert_geq(fd, 0);
    cr_assert_eq(ftruncate(fd, 65536), 0);
    cr_assert_eq(pwrite(fd, "memfd bytes", 11, 4096), 11);
    hz_assert_ok(mmapio_from_fd(c, fd, MMAPIO_MODE_READ_WRITE, NULL, &m));
    cr_assert_eq(mmapio_len(m), 65536);
    cr_assert_eq(memcmp((const char *)mmapio_as_ptr(m) + 4096, "memfd bytes", 11), 0);
    hz_assert_ok(mmapio_update_region(m, 0, "back", 4));
    char buf[4];
    cr_assert_eq(pread(fd, buf, 4, 0), 4);
    cr_assert_eq(memcmp(buf, "back", 4), 0);
    hz_assert_ok(mmapio_unmap(m));
    /* Read-only and copy-on-write of the same memfd. */
    hz_assert_ok(mmapio_from_fd(c, fd, MMAPIO_MODE_READ_ONLY, "ro", &m));
    cr_assert_eq(memcmp(mmapio_as_ptr(m), "back", 4), 0);
    hz_assert_ok(mmapio_unmap(m));
    hz_assert_ok(mmapio_from_fd(c, fd, MMAPIO_MODE_COPY_ON_WRITE, "cow", &m));
    hz_assert_ok(mmapio_unmap(m));
    close(fd);
    mmapio_disconnect(c);
}

Test(fromfd, not_files_refused)
{
    mmapio_client *c = hz_client();
    mmapio_map *m = NULL;
    int sv[2], pp[2];
    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    cr_assert_eq(pipe2(pp, O_CLOEXEC), 0);
    int dir = open(hz.dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    int null = open("/dev/null", O_RDWR | O_CLOEXEC);
    int bad[] = { sv[0], pp[0], pp[1], dir, null };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        hz_assert_ret(mmapio_from_fd(c, bad[i], MMAPIO_MODE_READ_ONLY, "x", &m),
                      MMAPIO_E_INVALID_ARGUMENT);
        cr_assert_null(m);
    }
    hz_assert_ret(mmapio_from_fd(c, -1, MMAPIO_MODE_READ_ONLY, "x", &m),
                  MMAPIO_E_INVALID_ARGUMENT);
    hz_assert_ret(mmapio_from_fd(NULL, null, MMAPIO_MODE_READ_ONLY, "x", &m),
                  MMAPIO_E_INVALID_ARGUMENT);
    hz_assert_ret(mmapio_from_fd(c, null, (mmapio_mode)7, "x", &m),
                  MMAPIO_E_INVALID_ARGUMENT);
    hz_assert_ok(mmapio_ping(c));
    /* Still works afterwards: each refusal closed the window. */
    int fd = make_file(hz_path(&hz, "ok.bin"), 4096, 'k');
    hz_assert_ok(mmapio_from_fd(c, fd, MMAPIO_MODE_READ_ONLY, "ok", &m));
    hz_assert_ok(mmapio_unmap(m));
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        close(bad[i]);
    close(sv[1]);
    close(fd);
    mmapio_disconnect(c);
}

Test(fromfd, mode_against_fd_access)
{
    mmapio_client *c = hz_client();
    mmapio_map *m;
    const char *p = hz_path(&hz, "modes.bin");
    close(make_file(p, 4096, 'm'));
    int ro = open(p, O_RDONLY | O_CLOEXEC);
    int wo = open(p, O_WRONLY | O_CLOEXEC);
    int path = open(p, O_PATH | O_CLOEXEC);
    hz_assert_ret(mmapio_from_fd(c, ro, MMAPIO_MODE_READ_WRITE, "", &m),
                  MMAPIO_E_PERMISSION);
    for (int mode = 0; mode < 3; mode++) {
        hz_assert_ret(mmapio_from_fd(c, wo, (mmapio_mode)mode, "", &m),
                      MMAPIO_E_PERMISSION);
        hz_assert_ret(mmapio_from_fd(c, path, (mmapio_mode)mode, "", &m),
                      MMAPIO_E_PERMISSION);
    }
    hz_assert_ok(mmapio_from_fd(c, ro, MMAPIO_MODE_READ_ONLY, "", &m));
    hz_assert_ok(mmapio_unmap(m));
    hz_assert_ok(mmapio_from_fd(c, ro, MMAPIO_MODE_COPY_ON_WRITE, "", &m));
    memset(mmapio_as_mut_ptr(m), 'z', 10); /* private copy only */
    hz_assert_ok(mmapio_unmap(m));
    char b;
    cr_assert_eq(pread(ro, &b, 1, 0), 1);
    cr_assert_eq(b, 'm');
    /* Outside the root too (a private mapping). */
    char out[512];
    snprintf(out, sizeof(out), "%s/ro-outside.bin", hz.dir);
    close(make_file(out, 4096, 'r'));
    int oro = open(out, O_RDONLY | O_CLOEXEC);
    hz_assert_ret(mmapio_from_fd(c, oro, MMAPIO_MODE_READ_WRITE, "", &m),
                  MMAPIO_E_PERMISSION);
    hz_assert_ok(mmapio_from_fd(c, oro, MMAPIO_MODE_READ_ONLY, "", &m));
    hz_assert_ok(mmapio_unmap(m));
    close(oro);
    close(ro);
    close(wo);
    close(path);
    mmapio_disconnect(c);
}

Test(fromfd, empty_file)
{
    mmapio_client *c = hz_client();
    mmapio_map *m;
    int fd = open(hz_path(&hz, "empty.bin"), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    cr_assert_geq(fd, 0);
    hz_assert_ret(mmapio_from_fd(c, fd, MMAPIO_MODE_READ_WRITE, "", &m),
                  MMAPIO_E_RESIZE_FAILED);
    hz_assert_ret(mmapio_from_fd(c, fd, MMAPIO_MODE_COPY_ON_WRITE, "", &m),
                  MMAPIO_E_RESIZE_FAILED);
    int mfd = memfd_create("empty", MFD_CLOEXEC);
    hz_assert_ret(mmapio_from_fd(c, mfd, MMAPIO_MODE_READ_WRITE, "", &m),
                  MMAPIO_E_RESIZE_FAILED);
    close(mfd);
    close(fd);
    mmapio_disconnect(c);
}

static void on_change(const mmapio_change_event *ev, void *user)
{
    if (ev->kind == MMAPIO_CHANGE_MODIFIED)
        (*(int *)user)++;
}

static void child_writes(const char *path, const char *bytes)
{
    mmapio_client *c;
    mmapio_map *m;
    if (mmapio_connect(NULL, &c) != MMAPIO_OK)
        _exit(10);
    if (mmapio_open_rw(c, path, &m) != MMAPIO_OK)
        _exit(11);
    if (mmapio_update_region(m, 0, bytes, strlen(bytes)) != MMAPIO_OK)
        _exit(12);
    mmapio_unmap(m);
    mmapio_disconnect(c);
    _exit(0);
}

Test(fromfd, watches_and_policies)
{
    mmapio_client *c = hz_client();
    mmapio_map *m, *pm;
    mmapio_watcher *w;
    int changes = 0;
    int fd = make_file(hz_path(&hz, "w.bin"), 4096, 'w');
    hz_assert_ok(mmapio_from_fd(c, fd, MMAPIO_MODE_READ_WRITE, "w", &m));
    hz_assert_ok(mmapio_watch(m, on_change, &changes, &w));
    mmapio_flush_policy every = { MMAPIO_FLUSH_EVERY_WRITES, 3 };
    hz_assert_ok(mmapio_set_flush_policy(m, every));
    cr_assert_eq(mmapio_flush_policy_of(m).kind, MMAPIO_FLUSH_EVERY_WRITES);

    pid_t pid = hz_fork();
    if (pid == 0)
        child_writes("w.bin", "watched");
    cr_assert_eq(hz_wait_child(pid, 30000), 0);
    int64_t end = hz_now_ms() + 10000;
    while (changes == 0 && hz_now_ms() < end)
        mmapio_client_dispatch(c, 100);
    cr_assert_gt(changes, 0, "no MODIFIED for a from_fd mapping");
    mmapio_unwatch(w);
    hz_assert_ok(mmapio_flush(m));
    hz_assert_ok(mmapio_unmap(m));

    /* A private mapping (a memfd): policy, flush, watch of its own. */
    int mfd = memfd_create("p", MFD_CLOEXEC);
    cr_assert_eq(ftruncate(mfd, 4096), 0);
    hz_assert_ok(mmapio_from_fd(c, mfd, MMAPIO_MODE_READ_WRITE, "p", &pm));
    hz_assert_ok(mmapio_set_flush_policy(pm, every));
    hz_assert_ok(mmapio_watch(pm, on_change, &changes, &w));
    hz_assert_ok(mmapio_update_region(pm, 0, "x", 1));
    hz_assert_ok(mmapio_flush(pm));
    mmapio_unwatch(w);
    hz_assert_ok(mmapio_unmap(pm));
    close(mfd);
    close(fd);
    mmapio_disconnect(c);
}

/* The window opens for one datagram with fds: a stray fd on another
 * request is refused, and afterwards fds are refused again. */
Test(fromfd, window_lets_no_stray_fd_in)
{
    int s = raw_connect(hz.sock);
    cr_assert_geq(s, 0);
    cr_assert_eq(raw_hello(s, WIRE_PROTOCOL), 0);
    int fd = make_file(hz_path(&hz, "stray.bin"), 4096, 's');

    Mmapio__FdOffer offer = MMAPIO__FD_OFFER__INIT;
    Mmapio__Request req = MMAPIO__REQUEST__INIT;
    Mmapio__ServerMessage *msg;
    req.id = 7;
    req.op_case = MMAPIO__REQUEST__OP_FD_OFFER;
    req.fd_offer = &offer;
    cr_assert_eq(raw_send(s, &req, -1), 0);
    cr_assert_eq(raw_recv(s, 5000, &msg, NULL), 0);
    cr_assert_eq(msg->reply->error, 0);
    mmapio__server_message__free_unpacked(msg, NULL);

    /* A ping carrying the fd: refused, the window closes. */
    Mmapio__Ping ping = MMAPIO__PING__INIT;
    Mmapio__Request preq = MMAPIO__REQUEST__INIT;
    preq.id = 8;
    preq.op_case = MMAPIO__REQUEST__OP_PING;
    preq.ping = &ping;
    cr_assert_eq(raw_send(s, &preq, fd), 0);
    int err = 0;
    cr_assert_eq(raw_expect_refusal(s, 5000, &err), 0);
    cr_assert_eq(err, MMAPIO_E_PROTOCOL);
    /* Closed again: the kernel refuses the fd (where it can), or the
     * daemon does. */
    int r = raw_send(s, &preq, fd);
    if (r == 0) {
        cr_assert_eq(raw_expect_refusal(s, 5000, &err), 0);
        cr_assert_eq(err, MMAPIO_E_PROTOCOL);
    } else {
        cr_assert_eq(r, -EPERM);
    }
    /* A FromFd without an offer: refused the same way. */
    Mmapio__FromFd ff = MMAPIO__FROM_FD__INIT;
    Mmapio__Request freq = MMAPIO__REQUEST__INIT;
    freq.id = 9;
    freq.op_case = MMAPIO__REQUEST__OP_FROM_FD;
    freq.from_fd = &ff;
    r = raw_send(s, &freq, fd);
    cr_assert(r == 0 || r == -EPERM);
    if (r == 0) {
        cr_assert_eq(raw_expect_refusal(s, 5000, &err), 0);
        cr_assert_eq(err, MMAPIO_E_PROTOCOL);
    }
    cr_assert_eq(raw_send(s, &freq, -1), 0); /* no fd: INVALID_ARGUMENT */
    cr_assert_eq(raw_expect_refusal(s, 5000, &err), 0);
    cr_assert_eq(err, MMAPIO_E_INVALID_ARGUMENT);
    cr_assert_eq(raw_ping(s, 10), 0);
    close(fd);
    close(s);
}

/* Every fd the daemon received is closed in the end: kept ones with their
 * mapping, refused ones by the closer thread, found ones at once. */
Test(fromfd, no_fd_left_behind)
{
    int base = hz_fd_baseline(&hz);
    cr_assert_gt(base, 0);
    mmapio_client *c = hz_client();
    mmapio_map *m;
    char out[512];
    snprintf(out, sizeof(out), "%s/leak.bin", hz.dir);
    int ofd = make_file(out, 4096, 'l');
    int rfd = make_file(hz_path(&hz, "leak.bin"), 4096, 'l');
    int sv[2];
    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    for (int i = 0; i < 20; i++) {
        hz_assert_ok(mmapio_from_fd(c, ofd, MMAPIO_MODE_READ_WRITE, "o", &m));
        hz_assert_ok(mmapio_unmap(m));
        hz_assert_ok(mmapio_from_fd(c, rfd, MMAPIO_MODE_READ_ONLY, "r", &m));
        hz_assert_ok(mmapio_unmap(m));
        hz_assert_ret(mmapio_from_fd(c, sv[0], MMAPIO_MODE_READ_ONLY, "s", &m),
                      MMAPIO_E_INVALID_ARGUMENT);
    }
    mmapio_disconnect(c);
    /* The open cache keeps leak.bin ready until it is unlinked. */
    cr_assert_eq(unlink(hz_path(&hz, "leak.bin")), 0);
    int now = hz_fd_count_settle(hz.pid, base, 10000);
    cr_assert_leq(now, base, "daemon fds: %d, baseline %d", now, base);
    close(sv[0]);
    close(sv[1]);
    close(ofd);
    close(rfd);
}
