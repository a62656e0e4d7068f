/* robust: helpers of the robustness tests (see robust.h). */
#include "robust.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "wire.h"

const char *rb_log_path(const struct hz_daemon *d)
{
    static char buf[4][300];
    static int next;
    char *b = buf[next++ % 4];
    snprintf(b, sizeof(buf[0]), "%s/mmapiod.log", d->dir);
    return b;
}

int rb_start(struct hz_daemon *d, const char *const *extra)
{
    const char *args[40];
    size_t n = 0;
    args[n++] = "--socket";
    args[n++] = d->sock;
    args[n++] = "--root";
    args[n++] = d->root;
    for (; extra && *extra && n < 39; extra++)
        args[n++] = *extra;
    args[n] = NULL;

    int log = open(rb_log_path(d), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC,
                   0644);
    if (log < 0)
        return -errno;
    pid_t pid = hz_spawn(args, -1, log);
    close(log);
    if (pid < 0)
        return pid;
    int r = hz_wait_ready(d->sock, pid, HZ_READY_TIMEOUT_MS);
    if (r == -ECHILD)
        return r;
    if (r < 0) {
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        return r;
    }
    d->pid = pid;
    return 0;
}

static long read_log(const struct hz_daemon *d, char *buf, size_t cap)
{
    long n = hz_read_file(rb_log_path(d), buf, cap - 1);
    buf[n > 0 ? n : 0] = '\0';
    return n;
}

bool rb_log_has(const struct hz_daemon *d, const char *needle,
                int timeout_ms)
{
    static char buf[1 << 20];
    int64_t end = hz_now_ms() + timeout_ms;
    for (;;) {
        read_log(d, buf, sizeof(buf));
        if (strstr(buf, needle))
            return true;
        if (hz_now_ms() > end)
            return false;
        usleep(10000);
    }
}

const char *rb_log_tail(const struct hz_daemon *d)
{
    static char buf[1 << 20];
    long n = read_log(d, buf, sizeof(buf));
    if (n <= 0)
        return "(empty log)";
    return n > 1500 ? buf + n - 1500 : buf;
}

long rb_rss_kib(pid_t pid)
{
    char path[64], line[256];
    snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "re");
    if (!f)
        return -errno;
    long kib = -ENOENT;
    while (fgets(line, sizeof(line), f))
        if (sscanf(line, "VmRSS: %ld kB", &kib) == 1)
            break;
    fclose(f);
    return kib;
}

bool rb_wrapped(void)
{
    return hz_wrapped();
}

#if defined(__SANITIZE_ADDRESS__)
#define RB_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define RB_ASAN 1
#endif
#endif
#ifndef RB_ASAN
#define RB_ASAN 0
#endif

bool rb_rss_meaningful(void)
{
    return !rb_wrapped() && !RB_ASAN;
}

int rb_share(const struct hz_daemon *d)
{
    return chmod(d->dir, 0755) < 0 ? -errno : 0;
}

int rb_prepare_shared(struct hz_daemon *d)
{
    if (geteuid() != 0)
        return -EPERM;
    signal(SIGPIPE, SIG_IGN);
    int r = hz_init(d);
    return r < 0 ? r : rb_share(d);
}

int rb_become(uid_t uid, gid_t gid)
{
    if (setgroups(0, NULL) < 0 || setgid(gid) < 0 || setuid(uid) < 0)
        return -errno;
    return 0;
}

/* ---- raw protocol ---------------------------------------------------- */

int rb_raw_hello(const char *sock)
{
    int fd = raw_connect(sock);
    if (fd < 0)
        return fd;
    int r = raw_hello(fd, WIRE_PROTOCOL);
    if (r != 0) {
        close(fd);
        return r < 0 ? r : -EPROTO;
    }
    return fd;
}

int rb_recv_any(int fd, int timeout_ms, Mmapio__ServerMessage **out)
{
    static uint8_t buf[WIRE_DEFAULT_MAX_FRAME * 4];
    int64_t end = hz_now_ms() + timeout_ms;
    for (;;) {
        struct pollfd p = { .fd = fd, .events = POLLIN };
        int left = (int)(end - hz_now_ms());
        int r = poll(&p, 1, left < 0 ? 0 : left);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return -errno;
        if (r == 0)
            return -ETIMEDOUT;
        int fds[WIRE_MAX_FDS];
        size_t n_fds = 0;
        long n = wire_recv(fd, buf, sizeof(buf), fds, WIRE_MAX_FDS, &n_fds);
        if (n == -EAGAIN)
            continue;
        if (n < 0)
            return n == -EPIPE ? -ECONNRESET : (int)n;
        wire_close_fds(fds, n_fds);
        Mmapio__ServerMessage *m =
            mmapio__server_message__unpack(NULL, (size_t)n, buf);
        if (!m)
            return -EBADMSG;
        *out = m;
        return 0;
    }
}

int rb_send_ping(int fd, uint64_t id)
{
    Mmapio__Request req = MMAPIO__REQUEST__INIT;
    Mmapio__Ping ping = MMAPIO__PING__INIT;
    req.id = id;
    req.op_case = MMAPIO__REQUEST__OP_PING;
    req.ping = &ping;
    return raw_send(fd, &req, -1);
}

/* ---- work done as another uid ---------------------------------------- */

static char fail_why[512];

const char *rb_fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(fail_why, sizeof(fail_why), fmt, ap);
    va_end(ap);
    return fail_why;
}

/* In the child: the reason fn failed, or NULL. */
static const char *as_child(const char *sock, uid_t uid, gid_t gid,
                            rb_as_fn fn, void *arg)
{
    mmapio_client *c = NULL;
    int r;
    if (rb_become(uid, gid) < 0)
        return rb_fail("cannot become %u:%u: %s", (unsigned)uid,
                       (unsigned)gid, strerror(errno));
    if (getuid() != uid || geteuid() != uid)
        return rb_fail("still uid %u", (unsigned)geteuid());
    if ((r = mmapio_connect(sock, &c)) != MMAPIO_OK)
        return rb_fail("connect as %u: %s (%s)", (unsigned)uid,
                       mmapio_strerror(r), mmapio_last_error());
    return fn(c, arg); /* c is fn's: the child exits next */
}

int rb_run_as(const char *sock, uid_t uid, gid_t gid, rb_as_fn fn, void *arg,
              char *why, size_t cap)
{
    int p[2];
    if (pipe(p) < 0)
        return snprintf(why, cap, "pipe: %s", strerror(errno)), -1;
    pid_t pid = hz_fork();
    if (pid < 0)
        return snprintf(why, cap, "fork: %s", strerror(errno)), -1;
    if (pid == 0) {
        close(p[0]);
        const char *msg = as_child(sock, uid, gid, fn, arg);
        if (msg)
            (void)!write(p[1], msg, strlen(msg));
        _exit(msg ? 1 : 0);
    }
    close(p[1]);
    size_t n = 0;
    ssize_t k;
    while (cap > 0 && n < cap - 1 && (k = read(p[0], why + n, cap - 1 - n)) > 0)
        n += (size_t)k;
    if (cap > 0)
        why[n] = '\0';
    close(p[0]);
    int st = hz_wait_child(pid, 20000);
    if (WIFEXITED(st) && WEXITSTATUS(st) == 0)
        return 0;
    if (n == 0)
        snprintf(why, cap, "no report (status 0x%x)", (unsigned)st);
    return -1;
}
