/*
 * test_lifecycle: the daemon as a process. A client killed with SIGKILL
 * has everything released (fds and holds); SIGTERM and SIGINT stop it
 * with exit 0 and remove its socket; a second daemon on a live socket
 * refuses to start and leaves the first serving; a stale socket file is
 * replaced; parent directories are created; --help/--version/bad options.
 */
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"

TestSuite(lifecycle, .init = hz_setup, .fini = hz_teardown, .timeout = 90);

enum { CYCLES = 50 };

/* A client that opens a bit of everything, says so, and waits to die. */
static void doomed_child(struct hz_chan *up)
{
    mmapio_client *c;
    mmapio_map *a, *b, *d, *e;
    if (mmapio_connect(NULL, &c))
        _exit(1);
    if (mmapio_open_rw(c, "k.dat", &a) || mmapio_open_ro(c, "k.dat", &b) ||
        mmapio_open_cow(c, "k.dat", &d) || mmapio_anon_open(c, "pre", &e))
        _exit(2);
    memset(mmapio_as_mut_ptr(a), 'k', 16);
    hz_chan_send(up, 'k');
    for (;;)
        pause();
}

/* Forks a doomed child, waits until it holds its mappings, SIGKILLs it. */
static void kill_cycle(void)
{
    struct hz_chan up;
    cr_assert_eq(hz_chan_open(&up), 0);
    pid_t pid = hz_fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        hz_chan_keep_write(&up);
        doomed_child(&up);
    }
    hz_chan_keep_read(&up);
    int got = hz_chan_recv(&up, 20000);
    kill(pid, SIGKILL);
    int st = hz_wait_child(pid, 20000);
    hz_chan_close(&up);
    cr_assert_eq(got, 'k', "child failed before opening (status 0x%x)",
                 (unsigned)st);
    cr_assert(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
}

Test(lifecycle, sigkilled_clients_leave_nothing_behind)
{
    mmapio_client *c = hz_client();
    mmapio_map *k, *pre;
    hz_assert_ok(mmapio_create_rw(c, "k.dat", 8192, &k));
    hz_assert_ok(mmapio_anon_create(c, "pre", 4096, &pre));

    /* one warm-up cycle, so lazily created daemon state is in the
     * baseline; then the count must not grow with the cycles */
    kill_cycle();
    usleep(300000);
    int base = hz_fd_baseline(&hz);
    cr_assert_gt(base, 0);
    for (int i = 0; i < CYCLES; i++)
        kill_cycle();
    int now = hz_fd_count_settle(hz.pid, base, 5000);
    cr_assert_leq(now, base,
                  "daemon holds %d fds after %d killed clients, %d before",
                  now, CYCLES, base);

    /* The holds are gone too: shrinking needs no other holder. */
    int r = mmapio_resize(k, 4096);
    cr_assert_eq(r, MMAPIO_OK, "dead clients still hold k.dat: %s",
                 mmapio_strerror(r));
    hz_assert_ok(mmapio_ping(c));
    mmapio_unmap(k);
    mmapio_unmap(pre);
    mmapio_disconnect(c);
}

Test(lifecycle, clean_disconnects_leave_nothing_behind)
{
    mmapio_client *c0 = hz_client();
    mmapio_map *f;
    hz_assert_ok(mmapio_create_rw(c0, "f.dat", 4096, &f));
    mmapio_map *a;
    hz_assert_ok(mmapio_anon_create(c0, "a", 4096, &a));
    int base = hz_fd_baseline(&hz);
    for (int i = 0; i < CYCLES; i++) {
        mmapio_client *c = hz_client();
        mmapio_map *m;
        hz_assert_ok(mmapio_open_rw(c, "f.dat", &m));
        mmapio_unmap(m);
        hz_assert_ok(mmapio_anon_open(c, "a", &m));
        mmapio_unmap(m);
        mmapio_disconnect(c);
    }
    int now = hz_fd_count_settle(hz.pid, base, 5000);
    cr_assert_leq(now, base, "%d fds after %d clients, %d before", now,
                  CYCLES, base);
    mmapio_unmap(f);
    mmapio_unmap(a);
    mmapio_disconnect(c0);
}

static void expect_clean_exit_on(int sig)
{
    mmapio_client *c = hz_client();
    mmapio_map *m;
    hz_assert_ok(mmapio_create_rw(c, "s.dat", 4096, &m));
    hz_assert_ok(mmapio_update_region(m, 0, "bye", 3));
    struct stat st;
    cr_assert_eq(stat(hz.sock, &st), 0);
    cr_assert(S_ISSOCK(st.st_mode));

    cr_assert_eq(kill(hz.pid, sig), 0);
    int status;
    cr_assert_eq(hz_wait_exit(hz.pid, 10000, &status), 0,
                 "no exit within 10 s of signal %d", sig);
    hz.pid = -1;
    cr_assert(WIFEXITED(status), "killed by signal %d", WTERMSIG(status));
    cr_assert_eq(WEXITSTATUS(status), 0);
    cr_assert_eq(stat(hz.sock, &st), -1, "socket left behind");
    cr_assert_eq(errno, ENOENT);

    /* the mapping is still ours, and the bytes are in the file */
    cr_assert_eq(memcmp(mmapio_as_ptr(m), "bye", 3), 0);
    char buf[3];
    cr_assert_eq(hz_read_file(hz_path(&hz, "s.dat"), buf, 3), 3);
    cr_assert_eq(memcmp(buf, "bye", 3), 0);
    mmapio_unmap(m);
    mmapio_disconnect(c);
}

Test(lifecycle, sigterm_exits_zero_and_removes_socket)
{
    expect_clean_exit_on(SIGTERM);
}

Test(lifecycle, sigint_exits_zero_and_removes_socket)
{
    expect_clean_exit_on(SIGINT);
}

/* Runs mmapiod with args to completion; returns the wait status, stdout
 * and stderr captured into out/err (NUL-terminated). */
static int run_daemon(const char *const *args, char *out, size_t out_cap,
                      char *err, size_t err_cap)
{
    char po[300], pe[300];
    snprintf(po, sizeof(po), "%s/stdout.txt", hz.dir);
    snprintf(pe, sizeof(pe), "%s/stderr.txt", hz.dir);
    int fo = open(po, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    int fe = open(pe, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    cr_assert(fo >= 0 && fe >= 0);
    pid_t pid = hz_spawn(args, fo, fe);
    close(fo);
    close(fe);
    cr_assert_gt(pid, 0);
    int st;
    if (hz_wait_exit(pid, 10000, &st) < 0) {
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        cr_assert_fail("mmapiod did not exit within 10 s");
    }
    long n = hz_read_file(po, out, out_cap - 1);
    out[n > 0 ? n : 0] = '\0';
    n = hz_read_file(pe, err, err_cap - 1);
    err[n > 0 ? n : 0] = '\0';
    return st;
}

Test(lifecycle, second_daemon_on_live_socket_refuses)
{
    mmapio_client *c = hz_client();
    char root2[300], out[4096], err[4096];
    snprintf(root2, sizeof(root2), "%s/root2", hz.dir);
    const char *args[] = { "--socket", hz.sock, "--root", root2, NULL };
    int st = run_daemon(args, out, sizeof(out), err, sizeof(err));
    cr_assert(WIFEXITED(st), "second daemon killed by a signal");
    cr_assert_neq(WEXITSTATUS(st), 0, "second daemon started on a live "
                  "socket");
    cr_assert_gt(strlen(err), 0, "no reason on stderr");

    /* the first one is untouched: its socket, its clients, new clients */
    struct stat sb;
    cr_assert_eq(stat(hz.sock, &sb), 0, "second daemon removed the socket");
    cr_assert(hz_alive(&hz));
    hz_assert_ok(mmapio_ping(c));
    mmapio_client *c2 = hz_client();
    hz_assert_ok(mmapio_ping(c2));
    mmapio_disconnect(c2);
    mmapio_disconnect(c);
}

Test(lifecycle, stale_socket_is_replaced)
{
    /* A socket file that nobody listens on, at a path of its own. */
    char sock[300], root[300];
    snprintf(sock, sizeof(sock), "%s/stale.sock", hz.dir);
    snprintf(root, sizeof(root), "%s/root3", hz.dir);
    int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    strcpy(sa.sun_path, sock);
    cr_assert_eq(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    close(fd);
    cr_assert_eq(raw_connect(sock), -ECONNREFUSED);

    const char *args[] = { "--socket", sock, "--root", root, NULL };
    pid_t pid = hz_spawn(args, -1, -1);
    cr_assert_gt(pid, 0);
    int r = hz_wait_ready(sock, pid, HZ_READY_TIMEOUT_MS);
    if (r < 0) {
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
    }
    cr_assert_eq(r, 0, "daemon did not take over a stale socket: %s",
                 strerror(-r));
    mmapio_client *c;
    hz_assert_ok(mmapio_connect(sock, &c));
    hz_assert_ok(mmapio_ping(c));
    mmapio_disconnect(c);
    kill(pid, SIGTERM);
    int st;
    cr_assert_eq(hz_wait_exit(pid, 10000, &st), 0);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0);
}

Test(lifecycle, creates_parent_directories)
{
    char sock[300], root[300];
    snprintf(sock, sizeof(sock), "%s/a/b/c/d.sock", hz.dir);
    snprintf(root, sizeof(root), "%s/x/y/z", hz.dir);
    const char *args[] = { "--socket", sock, "--root", root, NULL };
    pid_t pid = hz_spawn(args, -1, -1);
    cr_assert_gt(pid, 0);
    int r = hz_wait_ready(sock, pid, HZ_READY_TIMEOUT_MS);
    if (r < 0) {
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
    }
    cr_assert_eq(r, 0, "daemon did not come up on %s: %s", sock,
                 strerror(-r));
    struct stat st;
    cr_assert_eq(stat(root, &st), 0, "root not created");
    cr_assert(S_ISDIR(st.st_mode));
    mmapio_client *c;
    mmapio_map *m;
    hz_assert_ok(mmapio_connect(sock, &c));
    hz_assert_ok(mmapio_create_rw(c, "in-new-root", 4096, &m));
    char path[400];
    snprintf(path, sizeof(path), "%s/in-new-root", root);
    cr_assert_eq(hz_file_size(path), 4096, "file not under --root");
    mmapio_unmap(m);
    mmapio_disconnect(c);
    kill(pid, SIGTERM);
    int status;
    cr_assert_eq(hz_wait_exit(pid, 10000, &status), 0);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

Test(lifecycle, help_and_version)
{
    char out[4096], err[4096];
    const char *help[] = { "--help", NULL };
    int st = run_daemon(help, out, sizeof(out), err, sizeof(err));
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "--help: status 0x%x",
              (unsigned)st);
    cr_assert_not_null(strstr(out, "--socket"), "--help output: %s", out);
    cr_assert_not_null(strstr(out, "--root"));

    const char *version[] = { "--version", NULL };
    st = run_daemon(version, out, sizeof(out), err, sizeof(err));
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    cr_assert_not_null(strstr(out, MMAPIO_VERSION), "--version printed: %s",
                       out);
}

Test(lifecycle, bad_option_fails)
{
    char out[4096], err[4096];
    const char *bad[] = { "--no-such-option", NULL };
    int st = run_daemon(bad, out, sizeof(out), err, sizeof(err));
    cr_assert(WIFEXITED(st));
    cr_assert_neq(WEXITSTATUS(st), 0);
    cr_assert_gt(strlen(err), 0, "no message on stderr");
}

Test(lifecycle, unwritable_root_fails)
{
    /* a root that is a regular file cannot be a directory */
    char sock[300], root[300], out[4096], err[4096];
    snprintf(sock, sizeof(sock), "%s/other.sock", hz.dir);
    snprintf(root, sizeof(root), "%s/not-a-dir", hz.dir);
    cr_assert_eq(hz_write_file(root, "x", 1), 0);
    const char *args[] = { "--socket", sock, "--root", root, NULL };
    int st = run_daemon(args, out, sizeof(out), err, sizeof(err));
    cr_assert(WIFEXITED(st));
    cr_assert_neq(WEXITSTATUS(st), 0);
    cr_assert_gt(strlen(err), 0);
}

Test(lifecycle, daemon_fds_are_cloexec)
{
    mmapio_client *c = hz_client();
    mmapio_map *m[4];
    hz_assert_ok(mmapio_create_rw(c, "x.dat", 4096, &m[0]));
    hz_assert_ok(mmapio_open_ro(c, "x.dat", &m[1]));
    hz_assert_ok(mmapio_anon_create(c, "x", 4096, &m[2]));
    hz_assert_ok(mmapio_open_cow(c, "x.dat", &m[3]));

    char dir[64];
    snprintf(dir, sizeof(dir), "/proc/%d/fdinfo", (int)hz.pid);
    DIR *d = opendir(dir);
    cr_assert_not_null(d);
    struct dirent *e;
    int checked = 0;
    while ((e = readdir(d))) {
        int fd = atoi(e->d_name);
        if (e->d_name[0] == '.' || fd <= 2)
            continue;
        char path[128], buf[512];
        snprintf(path, sizeof(path), "%s/%d", dir, fd);
        long n = hz_read_file(path, buf, sizeof(buf) - 1);
        if (n <= 0)
            continue; /* closed meanwhile */
        buf[n] = '\0';
        const char *f = strstr(buf, "flags:");
        cr_assert_not_null(f);
        unsigned long flags = strtoul(f + 6, NULL, 8);
        cr_assert(flags & O_CLOEXEC, "daemon fd %d is not close-on-exec "
                  "(flags 0%lo)", fd, flags);
        checked++;
    }
    closedir(d);
    cr_assert_geq(checked, 3);
    for (int i = 0; i < 4; i++)
        mmapio_unmap(m[i]);
    mmapio_disconnect(c);
}
