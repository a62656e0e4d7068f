/*
 * test_finding: how a client finds the daemon, and what it says when it
 * cannot (issue 14).
 *
 *   reasons   every way a connect fails names the path and why, through
 *             mmapio_last_error and in mmapioctl's message
 *   fallback  mmapio_connect(NULL) as an ordinary uid with no environment:
 *             its own daemon when one listens on the per-user path, else
 *             the system socket /run/mmapio/mmapiod.sock
 *
 * The fallback test needs root: it runs in a mount namespace of its own
 * with fresh tmpfs over /run and /tmp, so the system socket it binds and
 * the per-user directory it makes never touch the machine's (a real
 * mmapiod's socket stays where it is, unseen).
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "robust.h"

#define SYSTEM_SOCKET "/run/mmapio/mmapiod.sock"
#define USER_DIR "/tmp/mmapio-65534"
#define USER_SOCKET USER_DIR "/mmapiod.sock"

static char dir[128];

static void setup(void)
{
    snprintf(dir, sizeof(dir), "/tmp/mmapio-finding-XXXXXX");
    cr_assert_not_null(mkdtemp(dir), "mkdtemp: %s", strerror(errno));
    cr_assert_eq(chmod(dir, 0755), 0);
    unsetenv("MMAPIO_SOCKET");
    unsetenv("XDG_RUNTIME_DIR");
}

static void teardown(void)
{
    if (dir[0])
        hz_rm_rf(dir);
}

TestSuite(finding, .init = setup, .fini = teardown, .timeout = 90);

/* A listening (or, with listen_too false, merely bound) socket at path. */
static int bind_at(const char *path, int type, bool listen_too)
{
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
    int fd = socket(AF_UNIX, type | SOCK_CLOEXEC, 0);
    cr_assert_geq(fd, 0);
    cr_assert_eq(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0,
                 "bind %s: %s", path, strerror(errno));
    if (listen_too)
        cr_assert_eq(listen(fd, 4), 0);
    return fd;
}

/* mmapio_connect(path) fails with `err`, and mmapio_last_error names the
 * path and says `why`. */
static void refused(const char *path, int err, const char *why)
{
    mmapio_client *c = NULL;
    int r = mmapio_connect(path, &c);
    const char *msg = mmapio_last_error();
    cr_expect_eq(r, err, "%s: %d (%s), expected %s", path, r, msg,
                 mmapio_strerror(err));
    cr_expect(strstr(msg, path) != NULL, "%s: the message does not name it: %s",
              path, msg);
    cr_expect(strstr(msg, why) != NULL, "%s: '%s' does not say '%s'", path,
              msg, why);
    if (r == MMAPIO_OK)
        mmapio_disconnect(c);
}

Test(finding, reasons)
{
    char p[512];

    snprintf(p, sizeof(p), "%s/none.sock", dir);
    refused(p, MMAPIO_E_DISCONNECTED, "no such socket");

    snprintf(p, sizeof(p), "%s/a-directory", dir);
    cr_assert_eq(mkdir(p, 0755), 0);
    refused(p, MMAPIO_E_DISCONNECTED, "a directory, not a socket");

    snprintf(p, sizeof(p), "%s/a-file", dir);
    cr_assert_eq(hz_write_file(p, "x", 1), 0);
    refused(p, MMAPIO_E_DISCONNECTED, "not a socket");

    snprintf(p, sizeof(p), "%s/a-file/below.sock", dir);
    refused(p, MMAPIO_E_DISCONNECTED, "is not a directory");

    snprintf(p, sizeof(p), "%s/stale.sock", dir); /* a daemon's leftover */
    int fd = bind_at(p, SOCK_SEQPACKET, false);
    close(fd);
    refused(p, MMAPIO_E_DISCONNECTED, "nobody listens");

    snprintf(p, sizeof(p), "%s/stream.sock", dir);
    fd = bind_at(p, SOCK_STREAM, true);
    refused(p, MMAPIO_E_DISCONNECTED, "another type");
    close(fd);

    /* Someone listens, in a directory anyone may write: a trust refusal. */
    char open_dir[160];
    snprintf(open_dir, sizeof(open_dir), "%s/open", dir);
    cr_assert_eq(mkdir(open_dir, 0777), 0);
    cr_assert_eq(chmod(open_dir, 0777), 0);
    snprintf(p, sizeof(p), "%s/mmapiod.sock", open_dir);
    fd = bind_at(p, SOCK_SEQPACKET, true);
    refused(p, MMAPIO_E_PERMISSION, "may be written by others");
    close(fd);

    mmapio_client *c;
    snprintf(p, sizeof(p), "%s/%0200d", dir, 0);
    cr_expect_eq(mmapio_connect(p, &c), MMAPIO_E_INVALID_ARGUMENT);
    cr_expect(strstr(mmapio_last_error(), "longer than 107 bytes"), "%s",
              mmapio_last_error());
}

typedef const char *(*child_fn)(void *arg);

/* Runs fn in a child that became nobody, without connecting first
 * (rb_run_as connects); fails the test with the child's reason. */
static void as_nobody(child_fn fn, void *arg)
{
    int pipefd[2];
    cr_assert_eq(pipe(pipefd), 0);
    pid_t pid = hz_fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        close(pipefd[0]);
        const char *why = rb_become(RB_NOBODY, RB_NOBODY) < 0
                              ? "cannot become nobody"
                              : fn(arg);
        if (why)
            (void)!write(pipefd[1], why, strlen(why));
        _exit(why ? 1 : 0);
    }
    close(pipefd[1]);
    char why[512] = "";
    (void)!read(pipefd[0], why, sizeof(why) - 1);
    close(pipefd[0]);
    int st = hz_wait_child(pid, 20000);
    cr_expect(WIFEXITED(st) && WEXITSTATUS(st) == 0, "as nobody: %s", why);
}

/* A socket in a directory nobody may not search. */
static const char *eacces_child(void *arg)
{
    const char *p = arg;
    mmapio_client *c;
    int r = mmapio_connect(p, &c);
    const char *msg = mmapio_last_error();
    if (r != MMAPIO_E_PERMISSION || !strstr(msg, p) ||
        !strstr(msg, "permission denied"))
        return rb_fail("%d: %s", r, msg);
    return NULL;
}

Test(finding, permission_denied)
{
    char p[256];
    snprintf(p, sizeof(p), "%s/private", dir);
    cr_assert_eq(mkdir(p, 0700), 0);
    snprintf(p, sizeof(p), "%s/private/mmapiod.sock", dir);
    int fd = bind_at(p, SOCK_SEQPACKET, true);
    as_nobody(eacces_child, p);
    close(fd);
}

/* mmapioctl says the same, on stderr, and exits 3 (unreachable). */
Test(finding, mmapioctl_says_why)
{
    const char *ctl = hz_build_file("MMAPIOCTL", "../../client/mmapioctl");
    cr_assert_not_null(ctl, "no mmapioctl in the build tree");
    char p[256], log[300], cmd[1024], out[2048];
    snprintf(p, sizeof(p), "%s/a-file", dir);
    cr_assert_eq(hz_write_file(p, "x", 1), 0);
    snprintf(log, sizeof(log), "%s/stderr", dir);
    snprintf(cmd, sizeof(cmd), "'%s' --socket '%s' status 2>'%s' >/dev/null",
             ctl, p, log);
    int st = system(cmd);
    cr_expect(WIFEXITED(st) && WEXITSTATUS(st) == 3, "exit status 0x%x", st);
    long n = hz_read_file(log, out, sizeof(out) - 1);
    cr_assert_geq(n, 0);
    out[n] = '\0';
    cr_expect(strstr(out, p) && strstr(out, "not a socket"),
              "mmapioctl said: %s", out);
}

/* ---- the fallback, as nobody, in a private mount namespace ---------- */

static const char *marker_child(void *arg)
{
    mmapio_client *c;
    mmapio_map *m;
    const char *want = arg; /* "system" or "user": whose daemon answers */
    int r = mmapio_connect(NULL, &c);
    if (r != MMAPIO_OK)
        return rb_fail("connect(NULL): %s (%s)", mmapio_strerror(r),
                       mmapio_last_error());
    mmapio_options o;
    mmapio_options_init(&o);
    o.anonymous = true;
    o.mode = MMAPIO_MODE_READ_ONLY;
    r = mmapio_open(c, "system-marker", &o, &m);
    if (!strcmp(want, "system") && r != MMAPIO_OK)
        return rb_fail("not the system daemon: %s", mmapio_last_error());
    if (!strcmp(want, "user") && r != MMAPIO_E_NOT_FOUND)
        return rb_fail("not nobody's own daemon: %d", r);
    if (r == MMAPIO_OK)
        mmapio_unmap(m);
    mmapio_disconnect(c);
    return NULL;
}

static const char *nothing_child(void *arg)
{
    (void)arg;
    mmapio_client *c;
    int r = mmapio_connect(NULL, &c);
    const char *msg = mmapio_last_error();
    if (r != MMAPIO_E_DISCONNECTED || !strstr(msg, USER_SOCKET) ||
        !strstr(msg, SYSTEM_SOCKET) || !strstr(msg, "no such socket"))
        return rb_fail("%d: %s", r, msg);
    return NULL;
}

/* mmapiod as nobody on the per-user path; its pid. */
static pid_t start_user_daemon(void)
{
    char root[256];
    snprintf(root, sizeof(root), "%s/user-root", dir);
    cr_assert_eq(mkdir(root, 0700), 0);
    cr_assert_eq(chown(root, RB_NOBODY, RB_NOBODY), 0);
    const char *bin = hz_build_file("MMAPIOD", "../../daemon/mmapiod");
    cr_assert_not_null(bin);
    pid_t pid = hz_fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        if (rb_become(RB_NOBODY, RB_NOBODY) == 0)
            execl(bin, bin, "--socket", USER_SOCKET, "--root", root,
                  (char *)NULL);
        _exit(127);
    }
    cr_assert_eq(hz_wait_ready(USER_SOCKET, pid, HZ_READY_TIMEOUT_MS), 0,
                 "nobody's mmapiod did not start");
    return pid;
}

Test(finding, fallback_to_the_system_socket)
{
    if (geteuid() != 0)
        cr_skip_test("needs root: a mount namespace for /run and /tmp");
    if (unshare(CLONE_NEWNS) < 0)
        cr_skip_test("no mount namespace: %s", strerror(errno));
    cr_assert_eq(mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL), 0);
    teardown(); /* dir lives in the /tmp about to be hidden */
    char bin[PATH_MAX];
    const char *b = hz_build_file("MMAPIOD", "../../daemon/mmapiod");
    cr_assert(b && realpath(b, bin), "no mmapiod");
    cr_assert_eq(mount("tmpfs", "/run", "tmpfs", 0, "mode=0755"), 0,
                 "tmpfs on /run: %s", strerror(errno));
    if (!strncmp(bin, "/tmp/", 5)) { /* a build tree in /tmp: keep it seen */
        char moved[PATH_MAX + 16];
        cr_assert_eq(mkdir("/run/old-tmp", 0755), 0);
        cr_assert_eq(mount("/tmp", "/run/old-tmp", NULL, MS_BIND | MS_REC, NULL), 0);
        snprintf(moved, sizeof(moved), "/run/old-tmp/%s", bin + 5);
        setenv("MMAPIOD", moved, 1);
    } else {
        setenv("MMAPIOD", bin, 1);
    }
    cr_assert_eq(mount("tmpfs", "/tmp", "tmpfs", 0, "mode=1777"), 0,
                 "tmpfs on /tmp: %s", strerror(errno));
    setup();

    /* No daemon anywhere: both paths named, each with its reason. */
    as_nobody(nothing_child, NULL);

    /* The system daemon, root's, with a mapping nobody may read. */
    struct hz_daemon sys = { .pid = -1 };
    char root[256];
    snprintf(root, sizeof(root), "%s/system-root", dir);
    const char *args[] = { "--socket", SYSTEM_SOCKET, "--root", root, NULL };
    sys.pid = hz_spawn(args, -1, -1);
    cr_assert_gt(sys.pid, 0);
    cr_assert_eq(hz_wait_ready(SYSTEM_SOCKET, sys.pid, HZ_READY_TIMEOUT_MS), 0);
    mmapio_client *c;
    mmapio_map *m;
    cr_assert_eq(mmapio_connect(SYSTEM_SOCKET, &c), MMAPIO_OK);
    mmapio_options o;
    mmapio_options_init(&o);
    o.anonymous = o.create = true;
    o.size = 4096;
    o.perm = 0644;
    cr_assert_eq(mmapio_open(c, "system-marker", &o, &m), MMAPIO_OK, "%s",
                 mmapio_last_error());

    /* No daemon of nobody's own: the system one answers. */
    as_nobody(marker_child, "system");

    /* Someone else's directory on nobody's per-user path (a listener in
     * it, root's): not trusted, so the system daemon again. */
    cr_assert_eq(mkdir(USER_DIR, 0755), 0);
    int squat = bind_at(USER_SOCKET, SOCK_SEQPACKET, true);
    cr_assert_eq(chown(USER_DIR, RB_NOBODY - 1, RB_NOBODY - 1), 0);
    as_nobody(marker_child, "system");
    close(squat);
    hz_rm_rf(USER_DIR);

    /* nobody's own daemon on the per-user path wins. */
    pid_t user = start_user_daemon();
    as_nobody(marker_child, "user");
    kill(user, SIGTERM);
    int st;
    cr_expect_eq(hz_wait_exit(user, HZ_STOP_TIMEOUT_MS, &st), 0);

    /* Gone again (a stale socket left or not): back to the system one. */
    as_nobody(marker_child, "system");

    mmapio_unmap(m);
    mmapio_disconnect(c);
    cr_expect_eq(hz_stop(&sys), 0);
}
