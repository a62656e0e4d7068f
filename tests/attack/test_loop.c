/*
 * test_loop: issue 10, rows 1, 2, 9 and 10 — the event loop never blocks
 * on anything a client controls, the fds a client can make the daemon
 * hold are budgeted, and a writer never waits for the daemon.
 *
 * Each attack runs as uid RB_NOBODY in a forked child while a victim (root,
 * another uid) pings the daemon from a thread of the test; the victim's
 * slowest ping during the attack is compared with its own idle baseline,
 * with generous slack: before the fixes it took seconds (a linger close, a
 * lease break), now it must stay within a small multiple of the baseline.
 *
 *   row 1   TCP sockets with SO_LINGER {1, 10} and a full send buffer sent
 *           as stray fds: refused by the kernel (SO_PASSRIGHTS), and with
 *           MMAPIOD_NO_PASSRIGHTS=1 closed by the closer thread
 *   row 2   write leases raced against read-only opens through the fd a
 *           read-write grant gave (it must be the holder's own
 *           description), a lease on the attacker's own open, a FIFO
 *   row 9   40 connections pipelining opens and never reading: the
 *           daemon's fds stay within the queued-fd budgets
 *   row 10  another uid watches the victim's 0644 file: update_region
 *           costs about a memcpy, never waits while the daemon is
 *           stopped, and what it wrote then still reaches the watcher
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "robust/robust.h"
#include "wire.h"

static void init(void)
{
    int r = rb_prepare_shared(&hz);
    if (r == -EPERM)
        cr_skip_test("needs root, to run an attacker as another uid");
    cr_assert_eq(r, 0, "cannot set up: %s", strerror(-r));
}

TestSuite(loop, .init = init, .fini = hz_teardown, .timeout = 120);

/* Starts the daemon; `no_passrights` makes it take the closer's path. */
static void start(const char *const *extra, bool no_passrights)
{
    if (no_passrights)
        setenv("MMAPIOD_NO_PASSRIGHTS", "1", 1);
    int r = rb_start(&hz, extra);
    unsetenv("MMAPIOD_NO_PASSRIGHTS");
    cr_assert_eq(r, 0, "mmapiod did not come up: %s", strerror(-r));
    setenv("MMAPIO_SOCKET", hz.sock, 1);
}

static int scale(int ms)
{
    return rb_wrapped() ? 6 * ms : ms;
}

/* ---- the victim ------------------------------------------------------- */

struct victim {
    int fd;
    atomic_bool stop;
    int64_t max_ms;
    int pings, failures;
    pthread_t thread;
};

static int64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* One ping's round trip in µs; -1 when it failed (or took over 5 s). */
static int64_t ping_us(int fd, uint64_t id)
{
    int64_t t0 = now_us();
    int r = raw_ping(fd, id);
    return r == 0 ? now_us() - t0 : -1;
}

/* The slowest of 50 idle pings, in ms (at least 1). */
static int64_t baseline_ms(int fd)
{
    int64_t worst = 0;
    for (int i = 0; i < 50; i++) {
        int64_t us = ping_us(fd, 1000 + (uint64_t)i);
        cr_assert_geq(us, 0, "idle ping failed");
        worst = us > worst ? us : worst;
    }
    return worst / 1000 + 1;
}

static void *victim_run(void *arg)
{
    struct victim *v = arg;
    for (uint64_t id = 5000; !atomic_load(&v->stop); id++) {
        int64_t us = ping_us(v->fd, id);
        int64_t ms = us < 0 ? 5000 : us / 1000;
        v->failures += us < 0;
        v->max_ms = ms > v->max_ms ? ms : v->max_ms;
        v->pings++;
        usleep(2000);
    }
    return NULL;
}

/* Connects the victim, measures its idle baseline (returned, in ms),
 * then keeps it pinging on a thread until victim_stop. */
static int64_t victim_start(struct victim *v)
{
    memset(v, 0, sizeof(*v));
    v->fd = rb_raw_hello(hz.sock);
    cr_assert_geq(v->fd, 0, "victim connect: %d", v->fd);
    int64_t base = baseline_ms(v->fd);
    cr_assert_eq(pthread_create(&v->thread, NULL, victim_run, v), 0);
    return base;
}

static void victim_stop(struct victim *v)
{
    atomic_store(&v->stop, true);
    pthread_join(v->thread, NULL);
    close(v->fd);
}

/* The victim's slowest ping under attack against its idle baseline:
 * within 300 ms + 20 x the baseline (scaled under valgrind). */
static void victim_check(const struct victim *v, int64_t base, const char *what)
{
    int64_t limit = scale(300) + 20 * base;
    cr_log_info("%s: victim's slowest ping %lld ms (idle %lld ms), %d pings",
                what, (long long)v->max_ms, (long long)base, v->pings);
    cr_assert_eq(v->failures, 0, "%s: %d of the victim's pings failed",
                 what, v->failures);
    cr_assert_leq(v->max_ms, limit,
                  "%s: the victim's slowest ping took %lld ms (idle: %lld ms)",
                  what, (long long)v->max_ms, (long long)base);
}

/* ---- the attacker ----------------------------------------------------- */

typedef const char *(*attack_fn)(void *arg);

struct attacker {
    pid_t pid;
    int report;   /* read end: the child's reason, if it failed */
};

/* Forks fn as RB_NOBODY. */
static void attack_start(struct attacker *a, attack_fn fn, void *arg)
{
    int p[2];
    cr_assert_eq(pipe(p), 0);
    a->pid = hz_fork();
    cr_assert_geq(a->pid, 0);
    if (a->pid == 0) {
        close(p[0]);
        signal(SIGIO, SIG_IGN); /* a lease break is no reason to die */
        const char *msg = rb_become(RB_NOBODY, RB_NOBODY) < 0
                              ? rb_fail("cannot become nobody: %s", strerror(errno))
                              : fn(arg);
        if (msg)
            (void)!write(p[1], msg, strlen(msg));
        _exit(msg ? 1 : 0);
    }
    close(p[1]);
    a->report = p[0];
}

static void attack_end(struct attacker *a)
{
    char buf[600];
    long n = 0, k;
    while (n < (long)sizeof(buf) - 1 &&
           (k = read(a->report, buf + n, sizeof(buf) - 1 - (size_t)n)) > 0)
        n += k;
    buf[n > 0 ? n : 0] = '\0';
    close(a->report);
    int st = hz_wait_child(a->pid, 60000);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "attacker: %s (0x%x)",
              n > 0 ? buf : "no report", (unsigned)st);
}

/* ---- row 1: a stray fd whose close blocks ----------------------------- */

/* A TCP listener on 127.0.0.1 that never accepts nor reads: its tiny
 * receive buffer fills at once, and then its peers' send buffers. */
static int deaf_listener(struct sockaddr_in *sa)
{
    int l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int small = 2048;
    socklen_t len = sizeof(*sa);
    cr_assert_geq(l, 0);
    setsockopt(l, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
    memset(sa, 0, sizeof(*sa));
    sa->sin_family = AF_INET;
    sa->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    cr_assert_eq(bind(l, (struct sockaddr *)sa, sizeof(*sa)), 0);
    cr_assert_eq(listen(l, 64), 0);
    cr_assert_eq(getsockname(l, (struct sockaddr *)sa, &len), 0);
    return l;
}

/* A connected TCP socket with SO_LINGER {1, 10} and a full send buffer:
 * its last close waits up to 10 s. -errno on failure. */
static int lingering_socket(const struct sockaddr_in *sa)
{
    int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int small = 4096;
    struct linger lg = { .l_onoff = 1, .l_linger = 10 };
    static char junk[65536];
    if (s < 0)
        return -errno;
    setsockopt(s, SOL_SOCKET, SO_SNDBUF, &small, sizeof(small));
    if (connect(s, (const struct sockaddr *)sa, sizeof(*sa)) < 0 ||
        setsockopt(s, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg)) < 0) {
        int e = errno;
        close(s);
        return -e;
    }
    for (int i = 0; i < 1000; i++)
        if (send(s, junk, sizeof(junk), MSG_DONTWAIT | MSG_NOSIGNAL) < 0)
            break;
    return s;
}

#define LINGER_SOCKETS 3

struct linger_attack {
    struct sockaddr_in sa;
    bool expect_refusal;  /* the daemon takes the fds: each request fails */
};

static const char *attack_linger(void *arg)
{
    struct linger_attack *la = arg;
    int conns[LINGER_SOCKETS];
    Mmapio__Request req = MMAPIO__REQUEST__INIT;
    Mmapio__Ping ping = MMAPIO__PING__INIT;
    req.id = 9;
    req.op_case = MMAPIO__REQUEST__OP_PING;
    req.ping = &ping;

    for (int i = 0; i < LINGER_SOCKETS; i++) {
        int s = lingering_socket(&la->sa);
        if (s < 0)
            return rb_fail("TCP socket: %s", strerror(-s));
        conns[i] = rb_raw_hello(hz.sock);
        if (conns[i] < 0)
            return rb_fail("connect: %d", conns[i]);
        int r = raw_send(conns[i], &req, s);
        if (r == -EPERM) {
            /* SO_PASSRIGHTS: the kernel refused it for the daemon. Ours
             * is the last close: no reason to wait for it. */
            struct linger now = { .l_onoff = 1, .l_linger = 0 };
            setsockopt(s, SOL_SOCKET, SO_LINGER, &now, sizeof(now));
        }
        close(s); /* else the daemon's copy may be the last one */
        if (r == -EPERM)
            continue;
        if (r < 0)
            return rb_fail("send with a TCP socket: %s", strerror(-r));
        int64_t t0 = hz_now_ms();
        int got = raw_expect_refusal(conns[i], 5000, NULL);
        if (got != 0 && got != 1)
            return rb_fail("request with a stray fd: %d", got);
        if (hz_now_ms() - t0 > scale(2000))
            return rb_fail("the refusal took %lld ms",
                        (long long)(hz_now_ms() - t0));
    }
    usleep(300 * 1000); /* the daemon closes them meanwhile */
    for (int i = 0; i < LINGER_SOCKETS; i++)
        close(conns[i]);
    return NULL;
}

static void linger_attack(bool no_passrights)
{
    struct linger_attack la;
    int l = deaf_listener(&la.sa);
    start(NULL, no_passrights);

    struct victim v;
    int64_t base = victim_start(&v);

    struct attacker a;
    int64_t t0 = hz_now_ms();
    attack_start(&a, attack_linger, &la);
    attack_end(&a);
    /* A close on the loop would block it for 10 s: watch for 2 s more. */
    while (hz_now_ms() - t0 < 2500)
        usleep(50 * 1000);
    victim_stop(&v);
    close(l);
    victim_check(&v, base, "lingering TCP sockets as stray fds");
}

Test(loop, a_lingering_socket_is_refused_by_the_kernel)
{
    linger_attack(false);
}

Test(loop, a_lingering_socket_is_closed_off_the_loop)
{
    linger_attack(true);
}

/* ---- row 2: a lease on the attacker's own file ------------------------ */

#define LEASE_FILE "lease.bin"
#define FIFO_FILE "fifo"

/* Opens the file read-only over a new connection: its answer must come
 * at once (when `strict`, BUSY while the lease is being broken, or OK). */
static const char *open_promptly(const char *what, bool strict)
{
    int c = rb_raw_hello(hz.sock);
    if (c < 0)
        return rb_fail("connect: %d", c);
    int fd = -1;
    int64_t t0 = hz_now_ms();
    int r = raw_open(c, LEASE_FILE, false, MMAPIO__MODE__MODE_READ_ONLY,
                     false, 0, &fd);
    int64_t dt = hz_now_ms() - t0;
    if (fd >= 0)
        close(fd);
    close(c);
    if (raw_is_errno(r) || (strict && r != MMAPIO_OK && r != MMAPIO_E_BUSY))
        return rb_fail("%s: open answered %d after %lld ms", what, r,
                    (long long)dt);
    if (dt > scale(1000))
        return rb_fail("%s: open took %lld ms", what, (long long)dt);
    return NULL;
}

/* Takes a write lease on fd, retrying while something else has the file
 * open (the daemon letting go of it). */
static int take_lease(int fd, int tries)
{
    for (int i = 0; i < tries; i++) {
        if (fcntl(fd, F_SETLEASE, F_WRLCK) == 0)
            return 0;
        usleep(20 * 1000);
    }
    return -errno;
}

struct flipper {
    int fd;
    atomic_bool stop;
    long leases;    /* write leases the kernel granted */
};

/* Takes and drops a write lease on fd as fast as it can. */
static void *flip_lease(void *arg)
{
    struct flipper *f = arg;
    while (!atomic_load(&f->stop)) {
        if (fcntl(f->fd, F_SETLEASE, F_WRLCK) == 0)
            f->leases++;
        fcntl(f->fd, F_SETLEASE, F_UNLCK);
    }
    return NULL;
}

/* Sends `n` read-only opens of the file at once on c, then takes their
 * answers: each batch must be answered within a second. */
static const char *open_batch(int c, int n, const char *what)
{
    Mmapio__Request req = MMAPIO__REQUEST__INIT;
    Mmapio__Open o = MMAPIO__OPEN__INIT;
    o.path = (char *)LEASE_FILE;
    o.mode = MMAPIO__MODE__MODE_READ_ONLY;
    req.op_case = MMAPIO__REQUEST__OP_OPEN;
    req.open = &o;
    int64_t t0 = hz_now_ms();
    for (int i = 0; i < n; i++) {
        req.id = 10 + (uint64_t)i;
        if (raw_send(c, &req, -1) < 0)
            return rb_fail("%s: send failed", what);
    }
    for (int i = 0; i < n; i++) {
        Mmapio__ServerMessage *m;
        int fd = -1;
        int r = raw_recv(c, scale(1000), &m, &fd);
        if (r < 0)
            return rb_fail("%s: no answer within %d ms (%s)", what, scale(1000),
                        strerror(-r));
        if (fd >= 0)
            close(fd);
        mmapio__server_message__free_unpacked(m, NULL);
    }
    if (hz_now_ms() - t0 > scale(1000))
        return rb_fail("%s: %d opens took %lld ms", what, n,
                    (long long)(hz_now_ms() - t0));
    return NULL;
}

/* Read-only opens of the file, pipelined and answered promptly, while a
 * thread races write leases on fd against them. */
static const char *race_opens(int fd, const char *what)
{
    struct flipper f = { .fd = fd };
    pthread_t t;
    const char *msg = NULL;
    int c = rb_raw_hello(hz.sock);
    if (c < 0)
        return rb_fail("connect: %d", c);
    if (pthread_create(&t, NULL, flip_lease, &f) != 0)
        return rb_fail("pthread_create");
    /* Each open is a holder: a connection keeps at most 4096. */
    for (int i = 0; !msg && i < 60; i++)
        msg = open_batch(c, 32, what);
    atomic_store(&f.stop, true);
    pthread_join(t, NULL);
    close(c);
    if (!msg && f.leases > 0)
        msg = rb_fail("%s: the kernel granted %ld write leases through a "
                   "read-write grant: it shares the daemon's description",
                   what, f.leases);
    return msg;
}

static const char *attack_lease(void *arg)
{
    (void)arg;
    /* 1. Leases through the fd the daemon granted for read-write, raced
     * against read-only opens: the grant must be the holder's own
     * description (the daemon's read-write fd then keeps the kernel from
     * granting any write lease), and the daemon's reopen must not wait. */
    int c = rb_raw_hello(hz.sock);
    int fd = -1;
    if (c < 0)
        return rb_fail("connect: %d", c);
    int r = raw_open(c, LEASE_FILE, false, MMAPIO__MODE__MODE_READ_WRITE,
                     false, 0, &fd);
    if (r != MMAPIO_OK || fd < 0)
        return rb_fail("open read-write: %d", r);
    const char *msg = race_opens(fd, "leases on the granted fd");
    close(fd);
    close(c);
    if (msg)
        return msg;
    /* 2. A lease on the attacker's own open of it, once the daemon let
     * go: the daemon's open must not wait for the lease break. */
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", hz.root, LEASE_FILE);
    int own = open(path, O_RDONLY | O_CLOEXEC);
    if (own < 0)
        return rb_fail("open %s: %s", path, strerror(errno));
    r = take_lease(own, scale(100));
    if (r < 0) {
        close(own);
        return rb_fail("no write lease on our own file: %s", strerror(-r));
    }
    msg = open_promptly("lease on our own fd", true);
    close(own);
    if (msg)
        return msg;
    /* 3. A FIFO nobody writes to: refused as not a regular file, at once. */
    c = rb_raw_hello(hz.sock);
    if (c < 0)
        return rb_fail("connect: %d", c);
    int64_t t0 = hz_now_ms();
    r = raw_open(c, FIFO_FILE, false, MMAPIO__MODE__MODE_READ_ONLY, false, 0,
                 &fd);
    close(c);
    if (fd >= 0)
        close(fd);
    if (r != MMAPIO_E_INVALID_ARGUMENT || hz_now_ms() - t0 > scale(1000))
        return rb_fail("open of a FIFO: %d after %lld ms", r,
                    (long long)(hz_now_ms() - t0));
    return NULL;
}

Test(loop, a_lease_never_stalls_the_loop)
{
    /* Without the open cache, which would keep the file open (and so
     * refuse the attacker's own write lease of step 2). */
    static const char *const no_cache[] = { "--open-cache", "0", NULL };
    start(no_cache, false);
    const char *path = hz_path(&hz, LEASE_FILE);
    cr_assert_eq(hz_write_file(path, "lease me", 8), 0);
    cr_assert_eq(truncate(path, 4096), 0);
    cr_assert_eq(chown(path, RB_NOBODY, RB_NOBODY), 0);
    cr_assert_eq(chmod(path, 0644), 0);
    const char *fifo = hz_path(&hz, FIFO_FILE);
    cr_assert_eq(mkfifo(fifo, 0666), 0);
    cr_assert_eq(chown(fifo, RB_NOBODY, RB_NOBODY), 0);

    struct victim v;
    int64_t base = victim_start(&v);

    struct attacker a;
    attack_start(&a, attack_lease, NULL);
    attack_end(&a);
    usleep(200 * 1000);
    victim_stop(&v);
    victim_check(&v, base, "a write lease against the daemon's open");
}

/* ---- row 9: unread replies that each carry an fd ---------------------- */

#define DEAF_CONNS 40
#define PIPELINED 2000
#define PUB_FILE "pub.bin"

struct deaf_attack {
    int go[2];      /* the parent writes a byte: leave */
    int ready[2];   /* the attacker writes a byte: all sent */
};

/* Sends open requests without reading a reply until the daemon stops
 * reading them (the socket stays full for 100 ms) or PIPELINED went out. */
static int pipeline_opens(int c)
{
    Mmapio__Request req = MMAPIO__REQUEST__INIT;
    Mmapio__Open o = MMAPIO__OPEN__INIT;
    uint8_t buf[256];
    o.path = (char *)PUB_FILE;
    o.mode = MMAPIO__MODE__MODE_READ_ONLY;
    req.op_case = MMAPIO__REQUEST__OP_OPEN;
    req.open = &o;
    int n = 0;
    while (n < PIPELINED) {
        req.id = 100 + (uint64_t)n;
        size_t len = mmapio__request__pack(&req, buf);
        if (send(c, buf, len, MSG_NOSIGNAL | MSG_DONTWAIT) >= 0) {
            n++;
            continue;
        }
        /* Full: wait a little for the daemon to read on, else stop. */
        struct pollfd p = { .fd = c, .events = POLLOUT };
        if (errno != EAGAIN || poll(&p, 1, 100) <= 0)
            break;
    }
    return n;
}

static const char *attack_deaf(void *arg)
{
    struct deaf_attack *da = arg;
    int conns[DEAF_CONNS];
    char byte = 0;
    /* Every connection says hello first: once the uid's replies pin its
     * cap of fds, none of its connections is read, not even a hello. */
    for (int i = 0; i < DEAF_CONNS; i++) {
        conns[i] = rb_raw_hello(hz.sock);
        if (conns[i] < 0)
            return rb_fail("connect %d: %d", i, conns[i]);
    }
    for (int i = 0; i < DEAF_CONNS; i++)
        pipeline_opens(conns[i]);
    (void)!write(da->ready[1], "r", 1);
    (void)!read(da->go[0], &byte, 1);
    for (int i = 0; i < DEAF_CONNS; i++)
        close(conns[i]);
    return NULL;
}

Test(loop, unread_replies_pin_few_fds)
{
    start(NULL, false);
    const char *path = hz_path(&hz, PUB_FILE);
    cr_assert_eq(hz_write_file(path, "public", 6), 0);
    cr_assert_eq(truncate(path, 4096), 0);
    cr_assert_eq(chmod(path, 0644), 0);
    int base = hz_fd_baseline(&hz);
    cr_assert_gt(base, 0);

    struct deaf_attack da;
    cr_assert_eq(pipe(da.go), 0);
    cr_assert_eq(pipe(da.ready), 0);
    struct attacker a;
    attack_start(&a, attack_deaf, &da);
    char byte;
    cr_assert_eq(read(da.ready[0], &byte, 1), 1, "attacker did not get going");

    /* The most daemon fds seen while the replies pile up. */
    int worst = 0;
    for (int i = 0; i < 20; i++) {
        int n = hz_fd_count(hz.pid);
        worst = n > worst ? n : worst;
        usleep(50 * 1000);
    }
    int victim = rb_raw_hello(hz.sock);
    cr_assert_geq(victim, 0);
    int fd = -1;
    hz_assert_ok(raw_open(victim, PUB_FILE, false,
                          MMAPIO__MODE__MODE_READ_ONLY, false, 0, &fd));
    cr_assert_geq(fd, 0);
    close(fd);
    close(victim);

    (void)!write(da.go[1], "g", 1);
    attack_end(&a);
    close(da.go[0]);
    close(da.go[1]);
    close(da.ready[0]);
    close(da.ready[1]);

    /* The defaults: 16 per connection, 256 per uid (and none of its
     * connections read past that: the turn that reached it adds at most
     * one); each connection is an fd itself; the open cache and the
     * victim's open a few. */
    int bound = base + 256 + DEAF_CONNS + 8;
    cr_log_info("daemon fds: %d at rest, %d at worst with %d deaf "
                "connections", base, worst, DEAF_CONNS);
    cr_assert_leq(worst, bound, "daemon fds: %d at rest, %d with %d deaf "
                  "connections (bound %d)", base, worst, DEAF_CONNS, bound);
    /* The open cache keeps the file ready until it is unlinked. */
    cr_assert_eq(unlink(path), 0);
    int now = hz_fd_count_settle(hz.pid, base, 5000);
    cr_assert_leq(now, base, "daemon fds: %d at rest, %d after", base, now);
}

/* ---- row 10: a watcher of another uid and the owner's writer ---------- */

#define VICTIM_FILE "victim.dat"
#define VICTIM_SIZE (1 << 20)
#define BLOCK 4096

struct watcher_report {
    int modified;       /* MODIFIED events seen since the last reset */
};

static void count_event(const mmapio_change_event *ev, void *user)
{
    struct watcher_report *w = user;
    w->modified += ev->kind == MMAPIO_CHANGE_MODIFIED;
}

struct watch_attack {
    int cmd[2];     /* parent -> attacker: 'd' drain, 'r' resumed */
    int ack[2];     /* attacker -> parent: ready, drained, count */
};

/* Events until the daemon has been quiet for quiet_ms (or 3 s passed). */
static void dispatch_quiet(mmapio_client *c, int quiet_ms)
{
    int64_t end = hz_now_ms() + 3000;
    while (hz_now_ms() < end && mmapio_client_dispatch(c, quiet_ms) > 0)
        ;
}

static const char *attack_watch(void *arg)
{
    struct watch_attack *wa = arg;
    struct watcher_report rep = { 0 };
    mmapio_client *c;
    mmapio_map *m;
    mmapio_watcher *w;
    char cmd;
    int r = mmapio_connect(hz.sock, &c);
    if (r != MMAPIO_OK)
        return rb_fail("connect: %s", mmapio_strerror(r));
    if ((r = mmapio_open_ro(c, VICTIM_FILE, &m)) != MMAPIO_OK ||
        (r = mmapio_watch(m, count_event, &rep, &w)) != MMAPIO_OK)
        return rb_fail("watch the victim's file: %s", mmapio_strerror(r));
    (void)!write(wa->ack[1], "w", 1);
    while (read(wa->cmd[0], &cmd, 1) == 1 && cmd != 'q') {
        dispatch_quiet(c, cmd == 'd' ? 150 : 500);
        (void)!write(wa->ack[1], &(char){ rep.modified > 0 ? 'y' : 'n' }, 1);
        rep.modified = 0;
    }
    mmapio_unwatch(w);
    mmapio_unmap(m);
    mmapio_disconnect(c);
    return NULL;
}

/* Nanoseconds this thread has spent runnable but waiting for a CPU
 * (schedstat's second field), 0 where the kernel does not say. */
static int64_t cpu_wait_ns(void)
{
    unsigned long long run = 0, wait = 0;
    FILE *f = fopen("/proc/thread-self/schedstat", "r");
    if (!f)
        return 0;
    if (fscanf(f, "%llu %llu", &run, &wait) != 2)
        wait = 0;
    fclose(f);
    return (int64_t)wait;
}

/* n writes of BLOCK bytes (fewer if they take over 1.5 s); the mean per
 * write in ns, the slowest in ms. The mean leaves out the time the writer
 * waited for a CPU that other programs had (a loaded machine), so it is
 * the writer's own cost and its waits for the daemon; where that delay is
 * implausible (valgrind, or nearly the whole loop) it counts everything. */
static double write_loop(mmapio_map *m, long n, int64_t *worst_ms)
{
    static uint8_t block[BLOCK];
    int64_t w0 = cpu_wait_ns();
    int64_t t0 = now_us(), worst = 0, t = t0;
    long i = 0;
    for (; i < n && t - t0 < 1500000; i++) {
        block[0] = (uint8_t)i;
        hz_assert_ok(mmapio_update_region(
            m, (uint64_t)(i % (VICTIM_SIZE / BLOCK)) * BLOCK, block, BLOCK));
        int64_t t1 = now_us();
        worst = t1 - t > worst ? t1 - t : worst;
        t = t1;
    }
    if (worst_ms)
        *worst_ms = worst / 1000;
    double all_ns = (double)(t - t0) * 1000.0;
    double own_ns = all_ns - (double)(cpu_wait_ns() - w0);
    /* Under valgrind every thread queues for its one lock and the run
     * delay says nothing of the writer's own cost: count it all. */
    if (rb_wrapped() || own_ns < all_ns / 20)
        own_ns = all_ns;
    return own_ns / (double)(i > 0 ? i : 1);
}

static char attacker_says(struct watch_attack *wa, char cmd)
{
    char got = 0;
    cr_assert_eq(write(wa->cmd[1], &cmd, 1), 1);
    cr_assert_eq(read(wa->ack[0], &got, 1), 1, "the watcher is gone");
    return got;
}

Test(loop, a_watcher_never_makes_the_writer_wait)
{
    start(NULL, false);
    mmapio_client *c = hz_client();
    mmapio_map *m;
    hz_assert_ok(mmapio_create_rw(c, VICTIM_FILE, VICTIM_SIZE, &m));
    long n = rb_wrapped() ? 20000 : 200000;

    /* The victim's own baseline: nobody watches. */
    write_loop(m, n / 10, NULL); /* warm */
    double alone = write_loop(m, n, NULL);

    struct watch_attack wa;
    cr_assert_eq(pipe(wa.cmd), 0);
    cr_assert_eq(pipe(wa.ack), 0);
    struct attacker a;
    attack_start(&a, attack_watch, &wa);
    char got;
    cr_assert_eq(read(wa.ack[0], &got, 1), 1, "the watcher did not start");

    /* Watched by another uid, the daemon running. */
    double watched = write_loop(m, n, NULL);
    cr_assert_eq(attacker_says(&wa, 'd'), 'y', "the watcher heard nothing");

    /* Watched, the daemon stopped (as a busy machine may stop it). */
    cr_assert_eq(kill(hz.pid, SIGSTOP), 0);
    int64_t worst_ms;
    write_loop(m, n, &worst_ms);
    cr_assert_eq(kill(hz.pid, SIGCONT), 0);
    /* No more calls from the writer: what it wrote must still be told. */
    char heard = attacker_says(&wa, 'r');
    cr_assert_eq(write(wa.cmd[1], "q", 1), 1);
    attack_end(&a);

    cr_log_info("update_region of %d bytes: %.0f ns alone, %.0f ns watched "
                "(x%.2f); slowest while the daemon was stopped: %lld ms",
                BLOCK, alone, watched, watched / alone, (long long)worst_ms);
    cr_assert_leq(worst_ms, scale(100), "an update_region waited %lld ms for "
                  "a stopped daemon", (long long)worst_ms);
    cr_assert_eq(heard, 'y', "writes made while the daemon was stopped never "
                 "reached the watcher");
    cr_assert_leq(watched, 5 * alone, "a watcher made update_region %.1fx "
                  "slower (%.0f ns against %.0f ns)", watched / alone,
                  watched, alone);
    for (int i = 0; i < 2; i++) {
        close(wa.cmd[i]);
        close(wa.ack[i]);
    }
    mmapio_unmap(m);
    mmapio_disconnect(c);
}
