/*
 * harness: start, watch and stop a real mmapiod; speak its protocol raw.
 * See harness.h for the guarantees.
 */
#include "harness.h"

#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "wire.h"

struct hz_daemon hz = { .pid = -1 };

int64_t hz_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void hz_count_event(const mmapio_change_event *ev, void *user)
{
    struct hz_events *e = user;
    if ((unsigned)ev->kind < sizeof(e->n) / sizeof(e->n[0]))
        e->n[ev->kind]++;
}

void hz_pump(mmapio_client *c, const int *count, int want, int timeout_ms)
{
    int64_t end = hz_now_ms() + timeout_ms;
    while (*count < want && hz_now_ms() < end)
        mmapio_client_dispatch(c, 50);
}

static void sleep_ms(int ms)
{
    struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

/* ---- daemon process --------------------------------------------------- */

int hz_init(struct hz_daemon *d)
{
    memset(d, 0, sizeof(*d));
    d->pid = -1;
    snprintf(d->dir, sizeof(d->dir), "/tmp/mmapio-test-XXXXXX");
    if (!mkdtemp(d->dir))
        return -errno;
    snprintf(d->sock, sizeof(d->sock), "%s/mmapiod.sock", d->dir);
    snprintf(d->root, sizeof(d->root), "%s/root", d->dir);
    return 0;
}

static void close_other_fds(int keep_max)
{
    /* close_range exists since Linux 5.9; fall back to a loop. */
    if (syscall(SYS_close_range, (unsigned)keep_max + 1, ~0u, 0) == 0)
        return;
    long max = sysconf(_SC_OPEN_MAX);
    for (long fd = keep_max + 1; fd < (max > 0 ? max : 1024); fd++)
        close((int)fd);
}

const char *hz_build_file(const char *env, const char *rel)
{
    static char buf[4][PATH_MAX];
    static int next;
    const char *v = getenv(env);
    if (v && *v)
        return v;
    char *b = buf[next++ % 4];
    ssize_t n = readlink("/proc/self/exe", b, PATH_MAX - 1);
    if (n <= 0)
        return NULL;
    b[n] = '\0';
    char *slash = strrchr(b, '/');
    if (!slash || (size_t)(slash - b) + 1 + strlen(rel) >= PATH_MAX)
        return NULL;
    strcpy(slash + 1, rel);
    return access(b, X_OK) == 0 ? b : NULL;
}

pid_t hz_spawn(const char *const *args, int out_fd, int err_fd)
{
    const char *bin = hz_build_file("MMAPIOD", "../daemon/mmapiod");
    char *argv[32];
    size_t n = 0;

    if (!bin || !*bin)
        return -ENOENT;
    /* $MMAPIOD_WRAPPER, e.g. "valgrind -q --error-exitcode=99": words run
     * before the daemon (the suite's valgrind pass). */
    static char wrap[512];
    const char *w = getenv("MMAPIOD_WRAPPER");
    if (w && *w) {
        snprintf(wrap, sizeof(wrap), "%s", w);
        for (char *tok = strtok(wrap, " "); tok && n < 16; tok = strtok(NULL, " "))
            argv[n++] = tok;
    }
    argv[n++] = (char *)bin;
    for (; args && *args && n < 31; args++)
        argv[n++] = (char *)*args;
    argv[n] = NULL;

    pid_t pid = hz_fork();
    if (pid < 0)
        return -errno;
    if (pid == 0) {
        if (out_fd >= 0)
            dup2(out_fd, STDOUT_FILENO);
        if (err_fd >= 0)
            dup2(err_fd, STDERR_FILENO);
        close_other_fds(STDERR_FILENO);
        /* Start it as a shell would: default dispositions, nothing
         * blocked (ignored signals and the mask survive exec). */
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        signal(SIGPIPE, SIG_DFL);
        signal(SIGTERM, SIG_DFL);
        signal(SIGINT, SIG_DFL);
        execvp(argv[0], argv);
        _exit(127);
    }
    return pid;
}

pid_t hz_fork(void)
{
    pid_t parent = getpid();
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent) /* it died before prctl */
            _exit(126);
    }
    return pid;
}

static int try_connect(const char *sock)
{
    int fd = raw_connect(sock);
    if (fd < 0)
        return fd;
    close(fd);
    return 0;
}

int hz_wait_ready(const char *sock, pid_t pid, int timeout_ms)
{
    int64_t end = hz_now_ms() + timeout_ms;
    for (;;) {
        if (try_connect(sock) == 0)
            return 0;
        if (pid > 0) {
            int st;
            if (waitpid(pid, &st, WNOHANG) == pid)
                return -ECHILD;
        }
        if (hz_now_ms() > end)
            return -ETIMEDOUT;
        sleep_ms(5);
    }
}

int hz_start(struct hz_daemon *d)
{
    const char *args[] = { "--socket", d->sock, "--root", d->root, NULL };
    pid_t pid = hz_spawn(args, -1, -1);
    if (pid < 0)
        return pid;
    int r = hz_wait_ready(d->sock, pid, HZ_READY_TIMEOUT_MS);
    if (r == -ECHILD)
        return r; /* reaped already */
    if (r < 0) {
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        return r;
    }
    d->pid = pid;
    return 0;
}

int hz_wait_exit(pid_t pid, int timeout_ms, int *status)
{
    int64_t end = hz_now_ms() + timeout_ms;
    for (;;) {
        pid_t r = waitpid(pid, status, WNOHANG);
        if (r == pid)
            return 0;
        if (r < 0 && errno != EINTR)
            return -errno;
        if (hz_now_ms() > end)
            return -ETIMEDOUT;
        sleep_ms(2);
    }
}

int hz_wait_child(pid_t pid, int timeout_ms)
{
    int st;
    if (hz_wait_exit(pid, timeout_ms, &st) == 0)
        return st;
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    return -1;
}

int hz_stop(struct hz_daemon *d)
{
    int st;
    if (d->pid <= 0)
        return -1;
    kill(d->pid, SIGTERM);
    if (hz_wait_exit(d->pid, HZ_STOP_TIMEOUT_MS, &st) < 0) {
        fprintf(stderr, "harness: mmapiod %d ignored SIGTERM for %d ms\n",
                (int)d->pid, HZ_STOP_TIMEOUT_MS);
        kill(d->pid, SIGKILL);
        waitpid(d->pid, &st, 0);
        st = -1;
    }
    d->pid = -1;
    return st;
}

bool hz_alive(struct hz_daemon *d)
{
    int st;
    if (d->pid <= 0)
        return false;
    return waitpid(d->pid, &st, WNOHANG) == 0;
}

void hz_cleanup(struct hz_daemon *d)
{
    if (d->pid > 0) {
        kill(d->pid, SIGKILL);
        waitpid(d->pid, NULL, 0);
        d->pid = -1;
    }
    if (d->dir[0])
        hz_rm_rf(d->dir);
    d->dir[0] = '\0';
}

static int rm_rf_at(int at, const char *name)
{
    struct stat st;
    if (fstatat(at, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
        return errno == ENOENT ? 0 : -errno;
    if (!S_ISDIR(st.st_mode))
        return unlinkat(at, name, 0) < 0 ? -errno : 0;
    int fd = openat(at, name,
                    O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    DIR *dir = fdopendir(fd);
    if (!dir) {
        close(fd);
        return -errno;
    }
    struct dirent *e;
    while ((e = readdir(dir))) {
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
            rm_rf_at(dirfd(dir), e->d_name);
    }
    closedir(dir);
    return unlinkat(at, name, AT_REMOVEDIR) < 0 ? -errno : 0;
}

int hz_rm_rf(const char *path)
{
    return rm_rf_at(AT_FDCWD, path);
}

int hz_fd_count(pid_t pid)
{
    char path[64];
    snprintf(path, sizeof(path), "/proc/%d/fd", (int)pid);
    DIR *dir = opendir(path);
    if (!dir)
        return -errno;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(dir)))
        if (e->d_name[0] != '.')
            n++;
    closedir(dir);
    return n;
}

int hz_fd_count_settle(pid_t pid, int want, int timeout_ms)
{
    int64_t end = hz_now_ms() + timeout_ms;
    int n;
    while ((n = hz_fd_count(pid)) > want && hz_now_ms() < end)
        sleep_ms(10);
    return n;
}

int hz_fd_baseline(struct hz_daemon *d)
{
    mmapio_client *c;
    if (mmapio_connect(d->sock, &c) == MMAPIO_OK) {
        mmapio_ping(c);
        mmapio_disconnect(c);
    }
    int fd = raw_connect(d->sock);
    if (fd >= 0) {
        raw_hello(fd, WIRE_PROTOCOL);
        close(fd);
    }
    int64_t end = hz_now_ms() + 5000;
    int n = hz_fd_count(d->pid);
    int64_t stable_since = hz_now_ms();
    while (hz_now_ms() < end) {
        sleep_ms(20);
        int m = hz_fd_count(d->pid);
        if (m != n) {
            n = m;
            stable_since = hz_now_ms();
        } else if (hz_now_ms() - stable_since >= 200) {
            break;
        }
    }
    return n;
}

/* ---- files ------------------------------------------------------------ */

const char *hz_path(const struct hz_daemon *d, const char *rel)
{
    static char buf[4][512];
    static int next;
    char *b = buf[next++ % 4];
    snprintf(b, sizeof(buf[0]), "%s/%s", d->root, rel);
    return b;
}

long hz_read_file(const char *path, void *buf, size_t cap)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    size_t got = 0;
    while (got < cap) {
        ssize_t n = read(fd, (char *)buf + got, cap - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            int e = errno;
            close(fd);
            return -e;
        }
        if (n == 0)
            break;
        got += (size_t)n;
    }
    close(fd);
    return (long)got;
}

int hz_write_file(const char *path, const void *buf, size_t len)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return -errno;
    size_t done = 0;
    while (done < len) {
        ssize_t n = write(fd, (const char *)buf + done, len - done);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            int e = errno;
            close(fd);
            return -e;
        }
        done += (size_t)n;
    }
    return close(fd) < 0 ? -errno : 0;
}

long long hz_file_size(const char *path)
{
    struct stat st;
    if (stat(path, &st) < 0)
        return -errno;
    return (long long)st.st_size;
}

/* ---- fixtures --------------------------------------------------------- */

void hz_setup(void)
{
    /* A daemon that vanished must show up as an error, not kill us. */
    signal(SIGPIPE, SIG_IGN);
    int r = hz_init(&hz);
    cr_assert_eq(r, 0, "mkdtemp: %s", strerror(-r));
    r = hz_start(&hz);
    const char *bin = hz_build_file("MMAPIOD", "../daemon/mmapiod");
    cr_assert_eq(r, 0, "mmapiod (%s) did not come up: %s",
                 bin ? bin : "$MMAPIOD unset, none in the build tree",
                 strerror(-r));
    setenv("MMAPIO_SOCKET", hz.sock, 1);
}

/*
 * Criterion ignores failed assertions in .fini, so a daemon that crashed
 * during the test (or did not exit 0) aborts the test process instead:
 * criterion then reports the test as crashed during teardown.
 */
void hz_teardown(void)
{
    bool was_running = hz.pid > 0;
    bool alive = hz_alive(&hz);
    int st = alive ? hz_stop(&hz) : -1;
    hz_cleanup(&hz);
    if (!was_running)
        return; /* the test stopped it itself */
    if (!alive) {
        fprintf(stderr, "harness: mmapiod died during the test\n");
        abort();
    }
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        fprintf(stderr, "harness: mmapiod did not exit 0 on SIGTERM "
                "(wait status 0x%x)\n", (unsigned)st);
        abort();
    }
}

mmapio_client *hz_client(void)
{
    mmapio_client *c = NULL;
    int r = mmapio_connect(hz.sock, &c);
    cr_assert_eq(r, MMAPIO_OK, "mmapio_connect: %s", mmapio_strerror(r));
    cr_assert_not_null(c);
    return c;
}

int hz_chan_open(struct hz_chan *ch)
{
    int p[2];
    if (pipe2(p, O_CLOEXEC) < 0)
        return -errno;
    ch->rd = p[0];
    ch->wr = p[1];
    return 0;
}

void hz_chan_close(struct hz_chan *ch)
{
    if (ch->rd >= 0)
        close(ch->rd);
    if (ch->wr >= 0)
        close(ch->wr);
    ch->rd = ch->wr = -1;
}

void hz_chan_keep_read(struct hz_chan *ch)
{
    if (ch->wr >= 0)
        close(ch->wr);
    ch->wr = -1;
}

void hz_chan_keep_write(struct hz_chan *ch)
{
    if (ch->rd >= 0)
        close(ch->rd);
    ch->rd = -1;
}

int hz_chan_send(struct hz_chan *ch, char byte)
{
    ssize_t n;
    do {
        n = write(ch->wr, &byte, 1);
    } while (n < 0 && errno == EINTR);
    return n == 1 ? 0 : -errno;
}

int hz_chan_recv(struct hz_chan *ch, int timeout_ms)
{
    struct pollfd p = { .fd = ch->rd, .events = POLLIN };
    int r;
    do {
        r = poll(&p, 1, timeout_ms);
    } while (r < 0 && errno == EINTR);
    if (r == 0)
        return -ETIMEDOUT;
    unsigned char b;
    ssize_t n;
    do {
        n = read(ch->rd, &b, 1);
    } while (n < 0 && errno == EINTR);
    return n == 1 ? b : -EPIPE;
}

/* ---- raw protocol client ---------------------------------------------- */

int raw_connect(const char *sock)
{
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    if (strlen(sock) >= sizeof(sa.sun_path))
        return -ENAMETOOLONG;
    strcpy(sa.sun_path, sock);
    int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        int e = errno;
        close(fd);
        return -e;
    }
    return fd;
}

int raw_send_bytes(int fd, const void *buf, size_t len, int pass_fd)
{
    return wire_send(fd, buf, len, pass_fd);
}

int raw_send(int fd, const Mmapio__Request *req, int pass_fd)
{
    return wire_send_msg(fd, &req->base, pass_fd, 16u << 20);
}

static int wait_readable(int fd, int timeout_ms)
{
    struct pollfd p = { .fd = fd, .events = POLLIN };
    int64_t end = hz_now_ms() + timeout_ms;
    for (;;) {
        int left = (int)(end - hz_now_ms());
        int r = poll(&p, 1, left < 0 ? 0 : left);
        if (r > 0)
            return 0;
        if (r == 0)
            return -ETIMEDOUT;
        if (errno != EINTR)
            return -errno;
    }
}

int raw_recv(int fd, int timeout_ms, Mmapio__ServerMessage **out,
             int *fd_out)
{
    static uint8_t buf[WIRE_DEFAULT_MAX_FRAME * 4];
    int64_t end = hz_now_ms() + timeout_ms;

    for (;;) {
        int left = (int)(end - hz_now_ms());
        int r = wait_readable(fd, left < 0 ? 0 : left);
        if (r < 0)
            return r;
        int fds[WIRE_MAX_FDS];
        size_t n_fds = 0;
        long n = wire_recv(fd, buf, sizeof(buf), fds, WIRE_MAX_FDS, &n_fds);
        if (n == -EAGAIN)
            continue;
        if (n < 0)
            return n == -ECONNRESET || n == -EPIPE ? -ECONNRESET : (int)n;
        Mmapio__ServerMessage *m =
            mmapio__server_message__unpack(NULL, (size_t)n, buf);
        if (!m) {
            wire_close_fds(fds, n_fds);
            return -EBADMSG;
        }
        if (m->body_case != MMAPIO__SERVER_MESSAGE__BODY_REPLY) {
            wire_close_fds(fds, n_fds);
            mmapio__server_message__free_unpacked(m, NULL);
            continue; /* an event */
        }
        if (fd_out) {
            *fd_out = n_fds ? fds[0] : -1;
            if (n_fds > 1)
                wire_close_fds(fds + 1, n_fds - 1);
        } else {
            wire_close_fds(fds, n_fds);
        }
        *out = m;
        return 0;
    }
}

/* One request, one reply; its error, and the fd that came along in
 * *fd_out (closed when fd_out is NULL). */
static int raw_call_fd(int fd, Mmapio__Request *req, int *fd_out)
{
    if (fd_out)
        *fd_out = -1;
    int r = raw_send(fd, req, -1);
    if (r < 0)
        return -RAW_ERRNO_BASE + r;
    Mmapio__ServerMessage *m;
    int got = -1;
    r = raw_recv(fd, 5000, &m, &got);
    if (r < 0)
        return -RAW_ERRNO_BASE + r;
    int err = m->reply->error;
    if (m->reply->id != req->id)
        err = -RAW_ERRNO_BASE - EPROTO;
    mmapio__server_message__free_unpacked(m, NULL);
    if (fd_out)
        *fd_out = got;
    else if (got >= 0)
        close(got);
    return err;
}

static int raw_call(int fd, Mmapio__Request *req)
{
    return raw_call_fd(fd, req, NULL);
}

int raw_open(int fd, const char *path, bool anonymous, int mode,
             bool create, uint64_t size, int *fd_out)
{
    Mmapio__Request req = MMAPIO__REQUEST__INIT;
    Mmapio__Open open = MMAPIO__OPEN__INIT;
    open.path = (char *)path;
    open.anonymous = anonymous;
    open.mode = (Mmapio__Mode)mode;
    open.create = create;
    open.size = size;
    req.id = 77;
    req.op_case = MMAPIO__REQUEST__OP_OPEN;
    req.open = &open;
    return raw_call_fd(fd, &req, fd_out);
}

static int raw_hello_impl(int fd, uint32_t protocol, int *fd_out)
{
    Mmapio__Request req = MMAPIO__REQUEST__INIT;
    Mmapio__Hello hello = MMAPIO__HELLO__INIT;
    hello.protocol = protocol;
    hello.client_name = (char *)"mmapio-tests-raw";
    req.id = 1;
    req.op_case = MMAPIO__REQUEST__OP_HELLO;
    req.hello = &hello;
    return raw_call_fd(fd, &req, fd_out);
}

int raw_hello(int fd, uint32_t protocol)
{
    return raw_hello_impl(fd, protocol, NULL);
}

int raw_hello_fd(int fd, int *fd_out)
{
    return raw_hello_impl(fd, WIRE_PROTOCOL, fd_out);
}

int raw_ping(int fd, uint64_t id)
{
    Mmapio__Request req = MMAPIO__REQUEST__INIT;
    Mmapio__Ping ping = MMAPIO__PING__INIT;
    req.id = id;
    req.op_case = MMAPIO__REQUEST__OP_PING;
    req.ping = &ping;
    return raw_call(fd, &req);
}

int raw_expect_refusal(int fd, int timeout_ms, int *err)
{
    Mmapio__ServerMessage *m;
    int r = raw_recv(fd, timeout_ms, &m, NULL);
    if (r == -ECONNRESET)
        return 1;
    if (r < 0)
        return r;
    int e = m->reply->error;
    mmapio__server_message__free_unpacked(m, NULL);
    if (err)
        *err = e;
    return e == 0 ? -EPROTO : 0;
}

/* The switches of every thread of pid: voluntary ones, and with `all`
 * the involuntary ones too. */
static long switches(pid_t pid, bool all)
{
    char path[64];
    snprintf(path, sizeof(path), "/proc/%d/task", (int)pid);
    DIR *dir = opendir(path);
    if (!dir)
        return -errno;
    long total = 0;
    struct dirent *e;
    while ((e = readdir(dir))) {
        if (e->d_name[0] == '.')
            continue;
        char sp[384], line[256];
        snprintf(sp, sizeof(sp), "%s/%s/status", path, e->d_name);
        FILE *f = fopen(sp, "re");
        if (!f)
            continue; /* a thread that just left */
        while (fgets(line, sizeof(line), f)) {
            long v;
            if (sscanf(line, "voluntary_ctxt_switches: %ld", &v) == 1 ||
                (all && sscanf(line, "nonvoluntary_ctxt_switches: %ld",
                               &v) == 1))
                total += v;
        }
        fclose(f);
    }
    closedir(dir);
    return total;
}

long hz_switches(pid_t pid)
{
    return switches(pid, true);
}

int hz_wait_stopped(pid_t pid)
{
    char path[64], buf[512];
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    for (int i = 0; i < 500; i++) {
        FILE *f = fopen(path, "re");
        size_t n = f ? fread(buf, 1, sizeof(buf) - 1, f) : 0;
        if (f)
            fclose(f);
        buf[n] = '\0';
        const char *p = strrchr(buf, ')');
        if (p && p[1] == ' ' && (p[2] == 'T' || p[2] == 't'))
            return 0;
        usleep(10 * 1000);
    }
    return -ETIMEDOUT;
}

bool hz_wrapped(void)
{
    const char *w = getenv("MMAPIOD_WRAPPER");
    return w && *w;
}

long hz_wakeups(pid_t pid)
{
    return switches(pid, false);
}
