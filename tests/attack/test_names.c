/*
 * test_names: nobody can stand in for the daemon or for a mapping, and
 * names cannot lie (issue 10, rows 14-16).
 *
 * The test runs as root; an attacker is a forked child dropped to uid
 * 65534 and the victim another child as uid 65533, each with no
 * supplementary groups. The victim's program is the README's example
 * (build/tests/example_counter) wherever the row names it.
 *
 *   row 14  a socket where the victim's should be: a directory created
 *           first (the victim's default through $XDG_RUNTIME_DIR) with a
 *           daemon of the attacker's in it, or a socket of the attacker's
 *           in a shared sticky directory. The victim's library refuses
 *           both (MMAPIO_E_PERMISSION, the reason in mmapio_last_error),
 *           says nothing to them, and the attacker never sees its
 *           counter; a daemon refuses a socket directory another uid owns
 *           or may write, with a one-line reason, and makes its own 0700.
 *   row 15  an anonymous `counter` created first by the attacker, mode
 *           0666: the README's create-or-open (now
 *           mmapio_anon_open_or_create) and MMAPIO_OWNER_SELF refuse it;
 *           the attacker's counter stays 0.
 *   row 16  names with a newline, escape codes, C1 controls or broken
 *           UTF-8: refused by the daemon (raw requests: open, delete,
 *           admin flush and policy) with INVALID_ARGUMENT and a message
 *           that is itself clean; refused by the library with no round
 *           trip; a client's own name with such bytes is shown escaped by
 *           `mmapioctl clients` and valid in --json, and mmapioctl
 *           escapes whatever a daemon sends (a fake daemon here).
 */
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "names.h"
#include "robust/robust.h"
#include "wire.h"

#define ATTACKER RB_NOBODY
#define VICTIM 65533

static void init(void)
{
    if (geteuid() != 0)
        cr_skip_test("needs root, to run an attacker and a victim uid");
    signal(SIGPIPE, SIG_IGN);
    int r = hz_init(&hz);
    cr_assert_eq(r, 0, "mkdtemp: %s", strerror(-r));
    cr_assert_eq(rb_share(&hz), 0);
    r = rb_start(&hz, NULL);
    cr_assert_eq(r, 0, "mmapiod did not come up: %s", strerror(-r));
    setenv("MMAPIO_SOCKET", hz.sock, 1);
}

TestSuite(names, .init = init, .fini = hz_teardown, .timeout = 90);

/* ---- helpers ---------------------------------------------------------- */

/* hz.dir + "/" + rel, in one of a few static buffers. */
static const char *tpath(const char *rel)
{
    static char buf[8][512];
    static int next;
    char *b = buf[next++ % 8];
    snprintf(b, sizeof(buf[0]), "%s/%s", hz.dir, rel);
    return b;
}

static void make_dir(const char *rel, uid_t uid, mode_t mode)
{
    const char *p = tpath(rel);
    cr_assert_eq(mkdir(p, 0700), 0, "mkdir %s: %s", p, strerror(errno));
    cr_assert_eq(chown(p, uid, uid), 0);
    cr_assert_eq(chmod(p, mode), 0);
}

static const char *binary(const char *env, const char *rel)
{
    const char *b = hz_build_file(env, rel);
    cr_assert_not_null(b, "cannot find %s (%s)", rel, env);
    return b;
}

/*
 * Starts argv as uid (0: root) with env changes ("K=V" sets, "K" unsets),
 * stdout and stderr into a pipe whose read end is *rd. The pid.
 */
static pid_t spawn_as(uid_t uid, const char *const *env,
                      const char *const *argv, int *rd)
{
    int p[2];
    cr_assert_eq(pipe2(p, O_CLOEXEC), 0);
    pid_t pid = hz_fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        dup2(p[1], STDOUT_FILENO);
        dup2(p[1], STDERR_FILENO);
        if (uid != 0 && rb_become(uid, uid) < 0)
            _exit(126);
        for (; env && *env; env++) {
            char kv[600];
            snprintf(kv, sizeof(kv), "%s", *env);
            char *eq = strchr(kv, '=');
            if (eq) {
                *eq = '\0';
                setenv(kv, eq + 1, 1);
            } else {
                unsetenv(kv);
            }
        }
        signal(SIGPIPE, SIG_DFL);
        execv(argv[0], (char *const *)argv);
        _exit(127);
    }
    close(p[1]);
    *rd = p[0];
    return pid;
}

/* Reads rd to EOF (bounded) into out, then reaps pid: its wait status. */
static int collect(pid_t pid, int rd, char *out, size_t cap)
{
    size_t n = 0;
    int64_t end = hz_now_ms() + 30000;
    for (;;) {
        struct pollfd p = { .fd = rd, .events = POLLIN };
        int left = (int)(end - hz_now_ms());
        if (left <= 0 || poll(&p, 1, left) <= 0)
            break;
        ssize_t k = read(rd, out + n, cap - 1 - n);
        if (k <= 0)
            break;
        n += (size_t)k;
        if (n == cap - 1)
            break;
    }
    out[n] = '\0';
    close(rd);
    return hz_wait_child(pid, 20000);
}

static int run_as(uid_t uid, const char *const *env, const char *const *argv,
                  char *out, size_t cap)
{
    int rd;
    pid_t pid = spawn_as(uid, env, argv, &rd);
    return collect(pid, rd, out, cap);
}

/* The README's example as the victim, with env; its output in out. */
static int victim_example(const char *const *env, char *out, size_t cap)
{
    const char *argv[] = { binary("EXAMPLE_COUNTER", "../example_counter"),
                           "5", NULL };
    return run_as(VICTIM, env, argv, out, cap);
}

static bool exited(int st, int code)
{
    return st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == code;
}

/* mmapiod as uid (no wrapper), stderr to log_fd; the pid. */
static pid_t daemon_as(uid_t uid, const char *sock, const char *root,
                       int log_fd)
{
    const char *bin = binary("MMAPIOD", "../../daemon/mmapiod");
    pid_t pid = hz_fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        dup2(log_fd, STDERR_FILENO);
        if (rb_become(uid, uid) < 0)
            _exit(126);
        execl(bin, bin, "--socket", sock, "--root", root, (char *)NULL);
        _exit(127);
    }
    return pid;
}

static void stop(pid_t pid)
{
    kill(pid, SIGTERM);
    hz_wait_child(pid, 10000);
}

static int log_file(const char *rel)
{
    int fd = open(tpath(rel), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    cr_assert_geq(fd, 0);
    return fd;
}

static void read_log(int fd, char *out, size_t cap)
{
    ssize_t n = pread(fd, out, cap - 1, 0);
    out[n > 0 ? n : 0] = '\0';
}

/* ---- row 14: a socket where the victim's should be -------------------- */

/*
 * The victim has no daemon yet; its default socket is
 * $XDG_RUNTIME_DIR/mmapio/mmapiod.sock, with XDG_RUNTIME_DIR a shared
 * sticky directory (as /tmp is for /tmp/mmapio-UID). The attacker creates
 * mmapio/ first and runs a daemon of its own there.
 */
Test(names, squatted_socket_directory_is_refused)
{
    char out[4096];
    make_dir("tmp", 0, 01777);
    make_dir("tmp/mmapio", ATTACKER, 0755);
    make_dir("attroot", ATTACKER, 0755);
    make_dir("vroot", VICTIM, 0755);
    const char *sock = tpath("tmp/mmapio/mmapiod.sock");
    char xdg[600];
    snprintf(xdg, sizeof(xdg), "XDG_RUNTIME_DIR=%s", tpath("tmp"));

    int alog = log_file("attacker.log");
    pid_t att = daemon_as(ATTACKER, sock, tpath("attroot"), alog);
    int r = hz_wait_ready(sock, att, HZ_READY_TIMEOUT_MS);
    cr_assert_eq(r, 0, "the attacker's daemon did not come up: %s",
                 strerror(-r));

    /* The victim runs the README example on its default socket. */
    const char *env[] = { xdg, "MMAPIO_SOCKET", NULL };
    int st = victim_example(env, out, sizeof(out));
    cr_expect(exited(st, 1), "the victim's example ran (0x%x): %s",
              (unsigned)st, out);
    cr_expect(strstr(out, "belongs to uid 65534") &&
                  strstr(out, tpath("tmp/mmapio")),
              "no reason naming the directory and its owner: %s", out);

    /* The attacker's daemon never saw the victim's counter. */
    int fd = rb_raw_hello(sock);
    cr_assert_geq(fd, 0);
    int mfd = -1;
    r = raw_open(fd, "counter", true, MMAPIO__MODE__MODE_READ_ONLY, false, 0,
                 &mfd);
    cr_expect_eq(r, MMAPIO_E_NOT_FOUND,
                 "the victim created its counter in the attacker's daemon");
    if (mfd >= 0)
        close(mfd);
    close(fd);

    /* The victim's own daemon refuses the directory, saying why. */
    int vlog = log_file("victim.log");
    pid_t vd = daemon_as(VICTIM, sock, tpath("vroot"), vlog);
    st = hz_wait_child(vd, 20000);
    read_log(vlog, out, sizeof(out));
    cr_expect(st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) != 0,
              "the victim's daemon started in the attacker's directory");
    cr_expect(strstr(out, "belongs to uid 65534"), "reason: %s", out);
    stop(att);
    close(alog);
    close(vlog);
}

/* An attacker's listener (uid 65534) at sock: accepts up to n clients and
 * reports for each whether it sent anything ('H') or nothing ('-'). */
static pid_t fake_listener(const char *sock, int n, struct hz_chan *ch)
{
    cr_assert_eq(hz_chan_open(ch), 0);
    pid_t pid = hz_fork();
    cr_assert_geq(pid, 0);
    if (pid != 0) {
        hz_chan_keep_read(ch);
        return pid;
    }
    hz_chan_keep_write(ch);
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", sock);
    int lfd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
    if (rb_become(ATTACKER, ATTACKER) < 0 || lfd < 0 ||
        bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
        chmod(sock, 0666) < 0 || listen(lfd, 8) < 0)
        _exit(1);
    hz_chan_send(ch, 'R');
    for (int i = 0; i < n; i++) {
        int cfd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
        if (cfd < 0)
            _exit(1);
        struct pollfd p = { .fd = cfd, .events = POLLIN };
        char buf[4096];
        bool said = poll(&p, 1, 5000) == 1 && recv(cfd, buf, sizeof(buf), 0) > 0;
        hz_chan_send(ch, said ? 'H' : '-');
        close(cfd);
    }
    _exit(0);
}

/*
 * A socket of the attacker's in a directory the victim may trust (root's,
 * sticky): the peer's uid gives it away. Nothing is sent to it, not even
 * the hello with the program's name.
 */
Test(names, socket_of_another_uid_is_refused)
{
    char out[4096];
    struct hz_chan ch;
    make_dir("tmp", 0, 01777);
    const char *sock = tpath("tmp/squat.sock");
    pid_t att = fake_listener(sock, 2, &ch);
    cr_assert_eq(hz_chan_recv(&ch, 10000), 'R', "the listener did not start");

    char env_sock[600];
    snprintf(env_sock, sizeof(env_sock), "MMAPIO_SOCKET=%s", sock);
    const char *env[] = { env_sock, NULL };
    int st = victim_example(env, out, sizeof(out));
    cr_expect(exited(st, 1), "the victim's example ran (0x%x): %s",
              (unsigned)st, out);
    cr_expect(strstr(out, "uid 65534"), "no reason: %s", out);
    cr_expect_eq(hz_chan_recv(&ch, 10000), '-',
                 "the victim talked to the attacker's socket");

    /* root's library as well, on an explicit path */
    mmapio_client *c = NULL;
    hz_assert_ret(mmapio_connect(sock, &c), MMAPIO_E_PERMISSION);
    cr_expect(strstr(mmapio_last_error(), sock), "%s", mmapio_last_error());
    cr_expect_eq(hz_chan_recv(&ch, 10000), '-',
                 "root's client talked to the attacker's socket");
    hz_wait_child(att, 10000);
    hz_chan_close(&ch);
}

/* mmapiod (as root) on a socket in dir: must refuse, exit non-zero, with
 * one line naming the reason. */
static void expect_refused_dir(const char *rel, const char *needle)
{
    char sock[600], root[600], log[2048];
    snprintf(sock, sizeof(sock), "%s/mmapiod.sock", tpath(rel));
    snprintf(root, sizeof(root), "%s-root", tpath(rel));
    int lfd = log_file("refused.log");
    const char *args[] = { "--socket", sock, "--root", root, NULL };
    pid_t pid = hz_spawn(args, -1, lfd);
    cr_assert_gt(pid, 0);
    int st = -1;
    int r = hz_wait_exit(pid, 20000, &st);
    if (r < 0) {
        kill(pid, SIGKILL);
        hz_wait_exit(pid, 5000, &st);
    }
    read_log(lfd, log, sizeof(log));
    close(lfd);
    cr_expect_eq(r, 0, "mmapiod started on a socket in %s", rel);
    cr_expect(r == 0 && WIFEXITED(st) && WEXITSTATUS(st) != 0,
              "%s: status 0x%x", rel, (unsigned)st);
    cr_expect(strstr(log, needle), "%s: reason: %s", rel, log);
    char *nl = strchr(log, '\n');
    cr_expect(nl && nl[1] == '\0', "%s: not one line: %s", rel, log);
    cr_expect(access(sock, F_OK) != 0, "%s: a socket was left", rel);
}

Test(names, daemon_refuses_a_socket_directory_others_control)
{
    make_dir("theirs", ATTACKER, 0700);
    expect_refused_dir("theirs", "belongs to uid 65534");
    make_dir("open", 0, 0777);
    expect_refused_dir("open", "may be written by others");
    make_dir("group", 0, 0770);
    expect_refused_dir("group", "may be written by others");

    /* A daemon of an ordinary user makes its directory 0700, and a
     * sticky directory of root's (like /tmp) is fine above it. */
    make_dir("tmp", 0, 01777);
    make_dir("nbroot", ATTACKER, 0755);
    const char *dir = tpath("tmp/mine/deeper");
    char sock[600];
    snprintf(sock, sizeof(sock), "%s/mmapiod.sock", dir);
    int lfd = log_file("nobody.log");
    pid_t pid = daemon_as(ATTACKER, sock, tpath("nbroot"), lfd);
    int r = hz_wait_ready(sock, pid, HZ_READY_TIMEOUT_MS);
    cr_expect_eq(r, 0, "a daemon of uid 65534 did not start: %s",
                 strerror(-r));
    struct stat st;
    cr_assert_eq(stat(dir, &st), 0);
    cr_expect_eq(st.st_uid, ATTACKER);
    cr_expect_eq(st.st_mode & 07777, 0700, "mode %o", st.st_mode & 07777);
    stop(pid);
    close(lfd);
}

/* ---- row 15: an anonymous name taken first ---------------------------- */


typedef const char *(*as_fn)(mmapio_client *c);
struct as_call { as_fn fn; };

/* Runs fn as uid in a forked child connected to hz; asserts success. */
static const char *call(mmapio_client *c, void *arg)
{
    return ((const struct as_call *)arg)->fn(c);
}

static void client_as(uid_t uid, as_fn fn)
{
    struct as_call k = { fn };
    char why[600];
    cr_assert_eq(rb_run_as(hz.sock, uid, uid, call, &k, why, sizeof(why)), 0,
                 "as uid %u: %s", (unsigned)uid, why);
}

static const char *attacker_squats(mmapio_client *c)
{
    mmapio_options o;
    mmapio_map *m;
    mmapio_options_init(&o);
    o.anonymous = true;
    o.create = true;
    o.exclusive = true;
    o.size = 8;
    o.perm = 0666;
    EXPECT(mmapio_open(c, "counter", &o, &m), MMAPIO_OK);
    mmapio_unmap(m);
    return NULL;
}

static const char *victim_asks_for_its_own(mmapio_client *c)
{
    mmapio_options o;
    mmapio_map *m, *m2;

    EXPECT(mmapio_anon_open_or_create(c, "counter", 8, &m),
           MMAPIO_E_PERMISSION);
    CHECK(strstr(mmapio_last_error(), "counter"));
    mmapio_options_init(&o);
    o.anonymous = true;
    o.owner = MMAPIO_OWNER_SELF;
    EXPECT(mmapio_open(c, "counter", &o, &m), MMAPIO_E_PERMISSION);
    o.create = true;
    o.size = 8;
    EXPECT(mmapio_open(c, "counter", &o, &m), MMAPIO_E_PERMISSION);
    /* asked for by its owner's uid, or with no owner named: the 0666
     * mapping is shared as its owner chose */
    o.create = false;
    o.owner = MMAPIO_OWNER_UID;
    o.owner_uid = ATTACKER;
    EXPECT(mmapio_open(c, "counter", &o, &m), MMAPIO_OK);
    mmapio_unmap(m);
    o.owner_uid = 0;
    EXPECT(mmapio_open(c, "counter", &o, &m), MMAPIO_E_PERMISSION);
    o.owner = 7;
    EXPECT(mmapio_open(c, "counter", &o, &m), MMAPIO_E_INVALID_ARGUMENT);

    /* a name of its own: created once, then opened, the same bytes */
    EXPECT(mmapio_anon_open_or_create(c, "mine", 8, &m), MMAPIO_OK);
    EXPECT(mmapio_anon_open_or_create(c, "mine", 8, &m2), MMAPIO_OK);
    uint64_t v = 42, back = 0;
    EXPECT(mmapio_update_region(m, 0, &v, sizeof(v)), MMAPIO_OK);
    EXPECT(mmapio_read_into(m2, 0, &back, sizeof(back)), MMAPIO_OK);
    CHECK(back == 42);
    mmapio_unmap(m2);
    mmapio_unmap(m);
    return NULL;
}

Test(names, squatted_anonymous_name_is_refused)
{
    char out[4096];
    client_as(ATTACKER, attacker_squats);

    /* The README example, as the victim, on the shared daemon. */
    char env_sock[600];
    snprintf(env_sock, sizeof(env_sock), "MMAPIO_SOCKET=%s", hz.sock);
    const char *env[] = { env_sock, NULL };
    int st = victim_example(env, out, sizeof(out));
    cr_expect(exited(st, 1), "the example used the attacker's counter "
              "(0x%x): %s", (unsigned)st, out);
    cr_expect(strstr(out, "counter:"), "%s", out);

    client_as(VICTIM, victim_asks_for_its_own);

    /* The attacker's counter saw no increment. */
    mmapio_client *c = hz_client();
    mmapio_map *m;
    hz_assert_ok(mmapio_anon_open(c, "counter", &m));
    uint64_t v = 1;
    hz_assert_ok(mmapio_read_into(m, 0, &v, sizeof(v)));
    cr_expect_eq(v, 0, "the attacker's counter is %llu",
                 (unsigned long long)v);
    mmapio_unmap(m);
    mmapio_disconnect(c);
}

/* ---- row 16: names cannot lie ----------------------------------------- */

static const char *const odd_names[] = {
    "a\nb",
    "evil\n42  anon:root-secret  4096  0600  0",
    "\x1b[31mred\x1b[0m",
    "\x1b]0;owned\x07",
    ("c1\xc2\x9b" "2J"), /* C1 CSI, clear the screen */
    "del\x7f",
    "broken\xff\xfe",
    "overlong\xc0\xaf",
    "tab\there",
};
#define N_ODD (sizeof(odd_names) / sizeof(odd_names[0]))

/* One raw request; the reply's error, its message checked clean. */
static int raw_call(int fd, Mmapio__Request *req)
{
    static uint64_t next_id = 1000;
    Mmapio__ServerMessage *m;
    req->id = next_id++;
    cr_assert_eq(raw_send(fd, req, -1), 0);
    int r = raw_recv(fd, 10000, &m, NULL);
    cr_assert_eq(r, 0, "no reply: %s", strerror(-r));
    int err = m->reply->error;
    cr_expect(names_valid(m->reply->message),
              "the daemon's message carries odd bytes");
    mmapio__server_message__free_unpacked(m, NULL);
    return err;
}

static void raw_refusals(int fd, const char *name, bool anonymous)
{
    Mmapio__Request req = MMAPIO__REQUEST__INIT;
    Mmapio__Open op = MMAPIO__OPEN__INIT;
    op.path = (char *)name;
    op.anonymous = anonymous;
    op.mode = MMAPIO__MODE__MODE_READ_WRITE;
    op.create = true;
    op.size = 4096;
    req.op_case = MMAPIO__REQUEST__OP_OPEN;
    req.open = &op;
    cr_expect_eq(raw_call(fd, &req), MMAPIO_E_INVALID_ARGUMENT,
                 "open of an odd %s was not refused",
                 anonymous ? "anonymous name" : "path");

    Mmapio__Delete del = MMAPIO__DELETE__INIT;
    del.path = (char *)name;
    del.anonymous = anonymous;
    req.op_case = MMAPIO__REQUEST__OP_DELETE_MAP;
    req.delete_map = &del;
    cr_expect_eq(raw_call(fd, &req), MMAPIO_E_INVALID_ARGUMENT, "delete");

    Mmapio__AdminFlush fl = MMAPIO__ADMIN_FLUSH__INIT;
    fl.path = (char *)name;
    fl.anonymous = anonymous;
    req.op_case = MMAPIO__REQUEST__OP_ADMIN_FLUSH;
    req.admin_flush = &fl;
    cr_expect_eq(raw_call(fd, &req), MMAPIO_E_INVALID_ARGUMENT, "flush");

    Mmapio__AdminPolicy po = MMAPIO__ADMIN_POLICY__INIT;
    Mmapio__FlushPolicy pol = MMAPIO__FLUSH_POLICY__INIT;
    po.path = (char *)name;
    po.anonymous = anonymous;
    po.policy = &pol;
    req.op_case = MMAPIO__REQUEST__OP_ADMIN_POLICY;
    req.admin_policy = &po;
    cr_expect_eq(raw_call(fd, &req), MMAPIO_E_INVALID_ARGUMENT, "policy");

    Mmapio__AdminStat st = MMAPIO__ADMIN_STAT__INIT;
    st.path = (char *)name;
    st.anonymous = anonymous;
    req.op_case = MMAPIO__REQUEST__OP_ADMIN_STAT;
    req.admin_stat = &st;
    cr_expect_eq(raw_call(fd, &req), MMAPIO_E_INVALID_ARGUMENT, "stat");

    Mmapio__AdminWatch wa = MMAPIO__ADMIN_WATCH__INIT;
    wa.path = (char *)name;
    wa.anonymous = anonymous;
    req.op_case = MMAPIO__REQUEST__OP_ADMIN_WATCH;
    req.admin_watch = &wa;
    cr_expect_eq(raw_call(fd, &req), MMAPIO_E_INVALID_ARGUMENT, "watch");
}

/* Entries of dir but the daemon's own state directory (statefile.h). */
static int entries(const char *dir)
{
    DIR *d = opendir(dir);
    int n = 0;
    cr_assert_not_null(d);
    for (struct dirent *e; (e = readdir(d));)
        n += strcmp(e->d_name, ".") && strcmp(e->d_name, "..") &&
             strcmp(e->d_name, ".mmapiod");
    closedir(d);
    return n;
}

Test(names, daemon_refuses_odd_names)
{
    int fd = rb_raw_hello(hz.sock);
    cr_assert_geq(fd, 0);
    for (size_t i = 0; i < N_ODD; i++) {
        raw_refusals(fd, odd_names[i], true);
        raw_refusals(fd, odd_names[i], false);
        char path[300];
        snprintf(path, sizeof(path), "dir%s/file", odd_names[i]);
        raw_refusals(fd, path, false);
    }
    close(fd);

    /* nothing was made */
    mmapio_client *c = hz_client();
    mmapio_map_info *maps;
    size_t n;
    hz_assert_ok(mmapio_admin_list(c, &maps, &n));
    cr_expect_eq(n, 0, "%zu mappings were made", n);
    mmapio_map_info_free(maps, n);
    mmapio_disconnect(c);
    cr_expect_eq(entries(hz.root), 0, "files were made in the data root");
}

Test(names, library_refuses_odd_names_before_sending)
{
    mmapio_client *c = hz_client();
    mmapio_status *st;
    mmapio_map *m;
    mmapio_flush_policy never = { MMAPIO_FLUSH_NEVER, 0 };
    hz_assert_ok(mmapio_admin_status(c, &st));
    uint64_t errors = st->errors;
    mmapio_status_free(st);

    for (size_t i = 0; i < N_ODD; i++) {
        const char *n = odd_names[i];
        const int bad = MMAPIO_E_INVALID_ARGUMENT;
        hz_assert_ret(mmapio_anon_create(c, n, 4096, &m), bad);
        cr_expect(strstr(mmapio_last_error(), "UTF-8"), "%s",
                  mmapio_last_error());
        hz_assert_ret(mmapio_anon_open(c, n, &m), bad);
        hz_assert_ret(mmapio_anon_open_or_create(c, n, 8, &m), bad);
        hz_assert_ret(mmapio_create_rw(c, n, 4096, &m), bad);
        hz_assert_ret(mmapio_open_or_create(c, n, 4096, &m), bad);
        hz_assert_ret(mmapio_open_ro(c, n, &m), bad);
        hz_assert_ret(mmapio_anon_delete(c, n), bad);
        hz_assert_ret(mmapio_delete(c, n), bad);
        hz_assert_ret(mmapio_admin_flush(c, n, true, NULL), bad);
        hz_assert_ret(mmapio_admin_flush(c, n, false, NULL), bad);
        hz_assert_ret(mmapio_admin_set_flush_policy(c, n, true, never), bad);
    }
    /* none of them reached the daemon */
    hz_assert_ok(mmapio_admin_status(c, &st));
    cr_expect_eq(st->errors, errors, "%llu requests reached the daemon",
                 (unsigned long long)(st->errors - errors));
    cr_expect_eq(st->mappings, 0);
    mmapio_status_free(st);
    /* and plain Unicode is a name like any other */
    hz_assert_ok(mmapio_anon_create(c, "caf\xc3\xa9-\xe2\x82\xac", 4096, &m));
    mmapio_unmap(m);
    mmapio_disconnect(c);
}

/* ---- row 16: what mmapioctl shows ------------------------------------- */

#define ODD_CLIENT "ev\x1b[2J\x1b[31mil\nforged 1 2 3\xff\xc2\x9b"

/* Text output: no escape byte or broken UTF-8 reaches the terminal, and
 * the name's newline did not start a row of its own. */
static void expect_clean_text(const char *out)
{
    char copy[16384];
    snprintf(copy, sizeof(copy), "%s", out);
    for (char *line = strtok(copy, "\n"); line; line = strtok(NULL, "\n")) {
        cr_expect(names_valid(line), "a line with odd bytes: %s", line);
        cr_expect(strncmp(line, "forged", 6) != 0, "a forged row: %s", line);
    }
    /* The escape as mmapioctl writes it, or the daemon's own "\x1b" (it
     * escapes hello names) with its backslash escaped in turn, so that no
     * name can pass for an escape. */
    cr_expect(strstr(out, "ev\\x1b[2J") || strstr(out, "ev\\x5cx1b[2J"),
              "the name is not shown: %s", out);
}

/* --json output: one valid UTF-8 document (libsmartcols's: an object,
 * a member a line), no raw control character but the newlines between
 * lines. */
static void expect_clean_json(const char *out)
{
    size_t n = strlen(out);
    cr_assert(n > 1 && out[n - 1] == '\n', "%s", out);
    cr_expect(out[0] == '{' && out[n - 2] == '}', "%s", out);
    char copy[16384];
    snprintf(copy, sizeof(copy), "%s", out);
    for (char *line = strtok(copy, "\n"); line; line = strtok(NULL, "\n"))
        cr_expect(names_valid(line), "invalid JSON text: %s", line);
}

static int mmapioctl(const char *sock, bool json, char *out, size_t cap,
                     pid_t *pid_out)
{
    const char *ctl = binary("MMAPIOCTL", "../../client/mmapioctl");
    const char *argv[] = { ctl, "--socket", sock, json ? "--json" : "clients",
                           json ? "clients" : NULL, NULL };
    int rd;
    pid_t pid = spawn_as(0, NULL, argv, &rd);
    if (pid_out) {
        *pid_out = pid;
        return rd;
    }
    return collect(pid, rd, out, cap);
}

Test(names, client_names_are_shown_escaped)
{
    struct hz_chan ready, done;
    cr_assert_eq(hz_chan_open(&ready), 0);
    cr_assert_eq(hz_chan_open(&done), 0);
    pid_t pid = hz_fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        hz_chan_keep_write(&ready);
        hz_chan_keep_read(&done);
        program_invocation_short_name = (char *)ODD_CLIENT;
        mmapio_client *c;
        if (mmapio_connect(hz.sock, &c) != MMAPIO_OK)
            _exit(1);
        hz_chan_send(&ready, 'R');
        hz_chan_recv(&done, 30000);
        mmapio_disconnect(c);
        _exit(0);
    }
    hz_chan_keep_read(&ready);
    hz_chan_keep_write(&done);
    cr_assert_eq(hz_chan_recv(&ready, 10000), 'R');

    static char out[16384];
    int st = mmapioctl(hz.sock, false, out, sizeof(out), NULL);
    cr_expect(exited(st, 0), "mmapioctl clients: 0x%x", (unsigned)st);
    expect_clean_text(out);
    st = mmapioctl(hz.sock, true, out, sizeof(out), NULL);
    cr_expect(exited(st, 0), "mmapioctl --json clients: 0x%x", (unsigned)st);
    expect_clean_json(out);

    hz_chan_close(&done);
    hz_wait_child(pid, 10000);
    hz_chan_close(&ready);
}

/* ---- a daemon that sends odd bytes anyway ------------------------------ */

static Mmapio__Request *fake_recv(int fd)
{
    static uint8_t buf[WIRE_DEFAULT_MAX_FRAME];
    struct pollfd p = { .fd = fd, .events = POLLIN };
    cr_assert_eq(poll(&p, 1, 10000), 1, "mmapioctl sent nothing");
    ssize_t n = recv(fd, buf, sizeof(buf), 0);
    cr_assert_gt(n, 0);
    Mmapio__Request *q = mmapio__request__unpack(NULL, (size_t)n, buf);
    cr_assert_not_null(q);
    return q;
}

static void fake_send(int fd, Mmapio__Reply *r, int pass_fd)
{
    Mmapio__ServerMessage sm = MMAPIO__SERVER_MESSAGE__INIT;
    sm.body_case = MMAPIO__SERVER_MESSAGE__BODY_REPLY;
    sm.reply = r;
    static uint8_t buf[WIRE_DEFAULT_MAX_FRAME];
    size_t n = mmapio__server_message__pack(&sm, buf);
    cr_assert_eq(raw_send_bytes(fd, buf, n, pass_fd), 0);
}

/* Answers one mmapioctl: hello (with a control area), then its clients
 * request with a client whose name and holding are odd. */
static void fake_serve(int lfd)
{
    struct pollfd p = { .fd = lfd, .events = POLLIN };
    cr_assert_eq(poll(&p, 1, 10000), 1, "mmapioctl did not connect");
    int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
    cr_assert_geq(fd, 0);

    Mmapio__Request *q = fake_recv(fd);
    Mmapio__HelloReply hr = MMAPIO__HELLO_REPLY__INIT;
    hr.protocol = WIRE_PROTOCOL;
    hr.server_version = (char *)"0.1.0\x1b[5m";
    hr.max_frame = WIRE_DEFAULT_MAX_FRAME;
    hr.ctl_slots = 1;
    Mmapio__Reply r = MMAPIO__REPLY__INIT;
    r.id = q->id;
    r.result_case = MMAPIO__REPLY__RESULT_HELLO;
    r.hello = &hr;
    int area = memfd_create("fake-area", MFD_CLOEXEC);
    cr_assert(area >= 0 && ftruncate(area, 4096) == 0);
    fake_send(fd, &r, area);
    close(area);
    mmapio__request__free_unpacked(q, NULL);

    q = fake_recv(fd);
    cr_assert_eq(q->op_case, MMAPIO__REQUEST__OP_ADMIN_CLIENTS);
    Mmapio__HeldInfo held = MMAPIO__HELD_INFO__INIT;
    Mmapio__HeldInfo *heldp = &held;
    held.map_id = 1;
    held.name = (char *)ODD_CLIENT;
    Mmapio__ClientInfo ci = MMAPIO__CLIENT_INFO__INIT;
    Mmapio__ClientInfo *cip = &ci;
    ci.id = 1;
    ci.pid = 1;
    ci.name = (char *)ODD_CLIENT;
    ci.n_held = 1;
    ci.held = &heldp;
    ci.held_total = 1;
    Mmapio__ClientsReply cr = MMAPIO__CLIENTS_REPLY__INIT;
    cr.n_clients = 1;
    cr.clients = &cip;
    Mmapio__Reply r2 = MMAPIO__REPLY__INIT;
    r2.id = q->id;
    r2.result_case = MMAPIO__REPLY__RESULT_CLIENTS;
    r2.clients = &cr;
    fake_send(fd, &r2, -1);
    mmapio__request__free_unpacked(q, NULL);
    close(fd);
}

Test(names, mmapioctl_escapes_whatever_a_daemon_sends)
{
    const char *sock = tpath("fake.sock");
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", sock);
    int lfd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
    cr_assert_geq(lfd, 0);
    cr_assert_eq(bind(lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    cr_assert_eq(listen(lfd, 4), 0);

    static char out[16384];
    for (int json = 0; json < 2; json++) {
        pid_t pid;
        int rd = mmapioctl(sock, json, NULL, 0, &pid);
        fake_serve(lfd);
        int st = collect(pid, rd, out, sizeof(out));
        cr_expect(exited(st, 0), "mmapioctl: 0x%x: %s", (unsigned)st, out);
        if (json) {
            expect_clean_json(out);
            cr_expect(strstr(out, "\\u001b[2J"), "%s", out);
        } else {
            expect_clean_text(out);
        }
    }
    close(lfd);
}
