/*
 * test_budgets: issue 10, rows 3-5. An unprivileged uid (65534) cannot
 * take the daemon's fds, connections or memory away from the others:
 *
 * - it creates anonymous mappings until refused, on a daemon started with
 *   a low fd limit: it is refused at its share (max_fd_mappings_per_uid, a
 *   share of the fd budget; the mappings are too large for an arena, so
 *   each holds a daemon fd), and another uid can still create, a new
 *   connection is answered, and root has room; its mappings outlive its
 *   connection (the contract), and the others can still create after it
 *   left;
 * - it opens many connections and never says hello: it gets its share of
 *   max_clients (the rest are closed at accept), another uid and root
 *   still connect, and the silent ones are closed at the hello deadline;
 * - it pipelines requests with large replies (admin list of its own
 *   mappings with long names) on many connections and never reads: the
 *   daemon's memory grows by a bounded amount (max_queued_bytes per
 *   connection, max_queued_bytes_per_uid across them), another uid is
 *   served meanwhile, and the memory returns once the attacker leaves.
 *
 * The test runs as root; the attacker and the victim are forked children
 * that drop their uid. Figures are printed to stderr.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "robust/robust.h"
#include "wire.h"

#define VICTIM_UID 65533

static void init(void)
{
    if (geteuid() != 0)
        cr_skip_test("needs root, to run an attacker and a victim uid");
    signal(SIGPIPE, SIG_IGN);
    int r = hz_init(&hz);
    cr_assert_eq(r, 0, "mkdtemp: %s", strerror(-r));
    cr_assert_eq(rb_share(&hz), 0);
}

TestSuite(budgets, .init = init, .fini = hz_teardown, .timeout = 120);

static void start(const char *const *extra)
{
    int r = rb_start(&hz, extra);
    cr_assert_eq(r, 0, "mmapiod did not come up: %s", strerror(-r));
}

/* ---- children --------------------------------------------------------- */

/* What a child reports through its exit status: 0 well, else a line on
 * the pipe. */
typedef int (*child_fn)(int report, void *arg);

static int say(int report, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static int say(int report, const char *fmt, ...)
{
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    if (n > 0)
        (void)!write(report, buf, (size_t)n < sizeof(buf) ? (size_t)n : sizeof(buf) - 1);
    return 1;
}

struct child {
    pid_t pid;
    int report;                /* read end */
};

/* Forks fn as uid; a child that hangs is killed by its alarm. */
static struct child spawn_as(uid_t uid, child_fn fn, void *arg)
{
    int p[2];
    cr_assert_eq(pipe(p), 0);
    pid_t pid = hz_fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        close(p[0]);
        alarm(60);
        if (rb_become(uid, uid) < 0)
            _exit(say(p[1], "cannot become %u: %s", (unsigned)uid, strerror(errno)));
        _exit(fn(p[1], arg));
    }
    close(p[1]);
    return (struct child){ pid, p[0] };
}

/* Waits for c; asserts it succeeded, with its report. */
static void join(struct child c, const char *who)
{
    char buf[600];
    long n = 0, k;
    while (n < (long)sizeof(buf) - 1 &&
           (k = read(c.report, buf + n, sizeof(buf) - 1 - (size_t)n)) > 0)
        n += k;
    buf[n > 0 ? n : 0] = '\0';
    close(c.report);
    int st = hz_wait_child(c.pid, 60000);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "%s: %s (status 0x%x)",
              who, n > 0 ? buf : "no report", (unsigned)st);
}

static void run_as(uid_t uid, child_fn fn, void *arg, const char *who)
{
    join(spawn_as(uid, fn, arg), who);
}

/* The victim: connects, pings, creates and deletes an anonymous mapping,
 * each answered (the alarm turns a hang into a failure). */
/* Anonymous mappings that hold a daemon fd each: larger than arena_max
 * (1 MiB by default), so not carved from a shared memfd (never touched:
 * they cost no memory). */
#define FD_SIZE (2u << 20)

static int victim(int report, void *arg)
{
    const char *name = arg;
    mmapio_client *c;
    mmapio_map *m;
    alarm(20);
    int r = mmapio_connect(hz.sock, &c);
    if (r != MMAPIO_OK)
        return say(report, "connect: %s", mmapio_strerror(r));
    if ((r = mmapio_ping(c)) != MMAPIO_OK)
        return say(report, "ping: %s", mmapio_strerror(r));
    if ((r = mmapio_anon_create(c, name, FD_SIZE, &m)) != MMAPIO_OK)
        return say(report, "create %s: %s (%s)", name, mmapio_strerror(r),
                   mmapio_last_error());
    mmapio_unmap(m);
    if ((r = mmapio_anon_delete(c, name)) != MMAPIO_OK)
        return say(report, "delete %s: %s", name, mmapio_strerror(r));
    mmapio_disconnect(c);
    return 0;
}

/* ---- row 3: anonymous mappings until refused ------------------------ */

struct flood {
    int created;
    int last;                  /* the refusal */
};

struct flood_how {
    int limit;
    bool hold;                 /* keep the connection until killed */
    uint32_t size;             /* of each mapping */
};

static int create_until_refused(int report, void *arg)
{
    const struct flood_how *how = arg;
    int limit = how->limit;
    mmapio_client *c;
    int r = mmapio_connect(hz.sock, &c);
    if (r != MMAPIO_OK)
        return say(report, "attacker connect: %s", mmapio_strerror(r));
    struct flood f = { 0, MMAPIO_OK };
    for (; f.created < limit; f.created++) {
        char name[32];
        mmapio_map *m;
        snprintf(name, sizeof(name), "x%d", f.created);
        if ((f.last = mmapio_anon_create(c, name, how->size, &m)) != MMAPIO_OK)
            break;
        mmapio_unmap(m); /* the mapping lives on in the daemon */
    }
    (void)!write(report, &f, sizeof(f));
    if (how->hold)
        pause();
    mmapio_disconnect(c);
    return 0;
}

/* A daemon with `nofile` fds, the hard limit too (it raises its soft limit
 * to the hard one): prlimit(1) runs before it, as $MMAPIOD_WRAPPER's words
 * do (in front of valgrind's, when set); `also`, words run after it. */
static void start_wrapped(int nofile, const char *also)
{
    if (access("/usr/bin/prlimit", X_OK) < 0)
        cr_skip_test("needs prlimit (util-linux)");
    const char *w = getenv("MMAPIOD_WRAPPER");
    char *was = w ? strdup(w) : NULL;
    char wrap[700];
    snprintf(wrap, sizeof(wrap), "/usr/bin/prlimit --nofile=%d:%d %s %s",
             nofile, nofile, also, was ? was : "");
    setenv("MMAPIOD_WRAPPER", wrap, 1);
    int r = rb_start(&hz, NULL);
    if (was)
        setenv("MMAPIOD_WRAPPER", was, 1);
    else
        unsetenv("MMAPIOD_WRAPPER");
    free(was);
    cr_assert_eq(r, 0, "mmapiod did not come up: %s", strerror(-r));
}

static void start_with_fds(int nofile)
{
    start_wrapped(nofile, "");
}

Test(budgets, anonymous_mappings_fit_the_fd_limit)
{
    start_with_fds(256);

    struct flood_how how = { 20000, true, FD_SIZE };
    struct child a = spawn_as(RB_NOBODY, create_until_refused, &how);
    struct flood f = { -1, 0 };
    long n = read(a.report, &f, sizeof(f));
    cr_assert_eq(n, (long)sizeof(f), "the attacker did not report");
    int fds = hz_fd_count(hz.pid);
    fprintf(stderr, "budgets: the attacker created %d anonymous mappings, "
            "then %s; daemon fds %d of 256\n", f.created,
            mmapio_strerror(f.last), fds);
    cr_assert_eq(f.last, MMAPIO_E_QUOTA, "the attacker was never refused");
    cr_assert(rb_log_has(&hz, "max_fd_mappings_per_uid", 2000),
              "no log line names the limit:\n%s", rb_log_tail(&hz));
    cr_assert_lt(fds, 256 - 32, "the daemon is near its fd limit: %d", fds);

    /* The attacker still connected: another uid connects, is answered
     * and creates (at the fd limit, it hung in the listen backlog). */
    run_as(VICTIM_UID, victim, "mine", "victim during the attack");

    /* Its connection closed, its mappings stay (the contract); the others
     * still create, connect and are answered. */
    kill(a.pid, SIGKILL);
    waitpid(a.pid, NULL, 0);
    close(a.report);
    run_as(VICTIM_UID, victim, "mine", "victim after the attacker left");
    mmapio_client *c = hz_client();
    mmapio_map *m;
    hz_assert_ok(mmapio_anon_open(c, "x0", &m));
    hz_assert_ok(mmapio_unmap(m));
    hz_assert_ok(mmapio_anon_create(c, "root's", FD_SIZE, &m));
    hz_assert_ok(mmapio_unmap(m));
    mmapio_disconnect(c);
}

/* Many uids together: the last reserved_mappings are root's. */
Test(budgets, root_keeps_room_for_mappings)
{
    start((const char *[]){ "--max-mappings", "32", "--max-mappings-per-uid",
                            "100", "--reserved-mappings", "4", NULL });
    struct flood_how how = { 100, false, 4096 };
    struct child a = spawn_as(RB_NOBODY, create_until_refused, &how);
    struct flood f = { -1, 0 };
    cr_assert_eq(read(a.report, &f, sizeof(f)), (long)sizeof(f));
    join(a, "attacker");
    cr_assert_eq(f.created, 28, "created %d of 32 - 4 reserved", f.created);
    cr_assert(rb_log_has(&hz, "reserved_mappings", 2000), "%s", rb_log_tail(&hz));

    mmapio_client *c = hz_client();
    for (int i = 0; i < 4; i++) {
        char name[16];
        mmapio_map *m;
        snprintf(name, sizeof(name), "root%d", i);
        hz_assert_ok(mmapio_anon_create(c, name, 4096, &m));
        hz_assert_ok(mmapio_unmap(m));
    }
    mmapio_disconnect(c);
}

/* ---- row 4: connections that never say hello ----------------------- */

#define CLIENTS 64             /* max_clients: 16 per uid, 4 kept */

struct silent {
    int tries;
    int hold_ms;               /* then report how many are still open */
};

/* true when the daemon closed fd (EOF), without waiting. */
static bool closed_by_daemon(int fd)
{
    struct pollfd p = { fd, POLLIN, 0 };
    if (poll(&p, 1, 0) <= 0)
        return false;
    char b;
    return recv(fd, &b, 1, MSG_DONTWAIT) == 0 || (p.revents & POLLHUP);
}

static int count_open(const int *fd, int n)
{
    int open = 0;
    for (int i = 0; i < n; i++)
        open += !closed_by_daemon(fd[i]);
    return open;
}

/* Opens s->tries connections and says nothing; reports how many the
 * daemon kept open once it took them all, and s->hold_ms later. */
static int open_silent(int report, void *arg)
{
    const struct silent *s = arg;
    int *fd = calloc((size_t)s->tries, sizeof(*fd));
    int n = 0;
    for (; fd && n < s->tries; n++)
        if ((fd[n] = raw_connect(hz.sock)) < 0)
            break;
    /* Until the daemon has taken them all: the same count for 500 ms. */
    int kept[2] = { count_open(fd, n), 0 };
    for (int same = 0, t = 0; same < 5 && t < 100; t++) {
        usleep(100 * 1000);
        int now = count_open(fd, n);
        same = now == kept[0] ? same + 1 : 0;
        kept[0] = now;
    }
    (void)!write(report, kept, sizeof(int));
    usleep((useconds_t)s->hold_ms * 1000);
    kept[1] = count_open(fd, n);
    (void)!write(report, &kept[1], sizeof(int));
    return 0;
}

Test(budgets, silent_connections_cannot_lock_others_out)
{
    /* Only options the old daemon knew: the per-uid share, the reserve and
     * the 5 s hello deadline are defaults. */
    start((const char *[]){ "--max-clients", "64", NULL });
    struct silent s = { rb_wrapped() ? 100 : 300, 6000 };
    struct child a = spawn_as(RB_NOBODY, open_silent, &s);
    int kept = -1;
    cr_assert_eq(read(a.report, &kept, sizeof(kept)), (long)sizeof(kept));
    fprintf(stderr, "budgets: %d silent connections tried, %d kept\n",
            s.tries, kept);
    cr_assert_leq(kept, CLIENTS / 4, "one uid kept %d connections", kept);

    /* Another uid and root connect and are answered meanwhile. */
    run_as(VICTIM_UID, victim, "mine", "victim during the attack");
    mmapio_client *c = hz_client();
    hz_assert_ok(mmapio_ping(c));
    cr_assert(rb_log_has(&hz, "max_clients_per_uid", 2000), "%s", rb_log_tail(&hz));

    /* The silent ones are closed at the hello deadline. */
    int left = -1;
    cr_assert_eq(read(a.report, &left, sizeof(left)), (long)sizeof(left));
    join(a, "attacker");
    fprintf(stderr, "budgets: %d silent connections open %d ms later\n",
            left, s.hold_ms);
    cr_assert_eq(left, 0, "%d silent connections outlived the hello deadline", left);
    hz_assert_ok(mmapio_ping(c));
    mmapio_disconnect(c);
}

/* Many uids together: the last reserved_clients places are root's. */
Test(budgets, root_keeps_room_for_connections)
{
    start((const char *[]){ "--max-clients", "32", "--max-clients-per-uid", "100",
                            "--reserved-clients", "4", "--hello-timeout-ms",
                            "60000", NULL });
    struct silent s = { 40, 0 };
    struct child a = spawn_as(RB_NOBODY, open_silent, &s);
    int kept = -1;
    cr_assert_eq(read(a.report, &kept, sizeof(kept)), (long)sizeof(kept));
    /* 28 (the readiness probe may still count as one while it goes) */
    cr_assert(kept <= 28 && kept >= 26, "kept %d of 32 - 4 reserved", kept);
    mmapio_client *c[4];
    for (int i = 0; i < 4; i++) {
        hz_assert_ok(mmapio_connect(hz.sock, &c[i]));
        hz_assert_ok(mmapio_ping(c[i]));
    }
    for (int i = 0; i < 4; i++)
        mmapio_disconnect(c[i]);
    join(a, "attacker");
}

/* ---- row 5: large replies never read -------------------------------- */

struct deaf {
    int mappings;              /* with long names: a list reply near 64 KiB */
    int conns;
    int requests;              /* pipelined on each */
};

static int make_listable(const struct deaf *d, int report)
{
    mmapio_client *c;
    int r = mmapio_connect(hz.sock, &c);
    if (r != MMAPIO_OK)
        return say(report, "attacker connect: %s", mmapio_strerror(r));
    for (int i = 0; i < d->mappings; i++) {
        char name[256];
        mmapio_map *m;
        memset(name, 'n', 240);
        snprintf(name + 240, sizeof(name) - 240, "%d", i);
        if ((r = mmapio_anon_create(c, name, 4096, &m)) != MMAPIO_OK)
            return say(report, "create #%d: %s", i, mmapio_strerror(r));
        mmapio_unmap(m);
    }
    mmapio_disconnect(c);
    return 0;
}

/* Hello, then d->requests list requests without reading a reply. */
static int pipeline_lists(const struct deaf *d)
{
    int fd = raw_connect(hz.sock);
    if (fd < 0 || raw_hello(fd, WIRE_PROTOCOL) != 0)
        return -1;
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    Mmapio__AdminList l = MMAPIO__ADMIN_LIST__INIT;
    Mmapio__Request q = MMAPIO__REQUEST__INIT;
    q.op_case = MMAPIO__REQUEST__OP_ADMIN_LIST;
    q.admin_list = &l;
    for (int i = 0; i < d->requests; i++) {
        q.id = 100 + (uint64_t)i;
        if (raw_send(fd, &q, -1) < 0)
            break; /* our socket is full: the daemon stopped reading */
    }
    return fd;
}

static int deaf_lists(int report, void *arg)
{
    const struct deaf *d = arg;
    if (make_listable(d, report))
        return 1;
    int n = 0;
    while (n < d->conns && pipeline_lists(d) >= 0)
        n++; /* until refused (max_clients_per_uid) */
    (void)!write(report, &n, sizeof(n));
    pause(); /* until killed: the connections close with the process */
    return 0;
}

static long settle_rss(int ms)
{
    long rss = rb_rss_kib(hz.pid), prev;
    do {
        usleep(200 * 1000);
        prev = rss;
        rss = rb_rss_kib(hz.pid);
        ms -= 200;
    } while (ms > 0 && rss != prev);
    return rss;
}

Test(budgets, unread_replies_cannot_bloat_the_daemon)
{
    /* Enough connections that the per-connection bound alone would let
     * 160 x (256 KiB + a reply) through: the uid's 16 MiB must hold. */
    start((const char *[]){ "--max-clients", "1000", NULL });
    struct deaf d = { 250, rb_wrapped() ? 8 : 160, 64 };
    mmapio_client *c = hz_client();
    hz_assert_ok(mmapio_ping(c));
    long base = settle_rss(1000);

    struct child a = spawn_as(RB_NOBODY, deaf_lists, &d);
    int conns = 0;
    cr_assert_eq(read(a.report, &conns, sizeof(conns)), (long)sizeof(conns),
                 "the attacker did not get going");
    usleep(500 * 1000);
    long peak = settle_rss(2000);
    /* Another uid is served meanwhile. */
    run_as(VICTIM_UID, victim, "mine", "victim during the attack");

    kill(a.pid, SIGKILL);
    waitpid(a.pid, NULL, 0);
    close(a.report);
    hz_assert_ok(mmapio_ping(c));
    usleep(500 * 1000);
    long after = settle_rss(3000);
    fprintf(stderr, "budgets: %d connections x %d unread list replies: daemon "
            "RSS %ld KiB before, %ld during (+%ld), %ld after (+%ld)\n",
            conns, d.requests, base, peak, peak - base, after, after - base);
    mmapio_disconnect(c);
    if (!rb_rss_meaningful())
        return;
    /* Unbounded, 160 x 64 replies of ~60 KiB are 600 MiB; the budget is
     * 16 MiB for the uid, plus a reply per connection past it, and some
     * slack for the allocator. */
    long bound = 16 * 1024 + conns * 64L + 8 * 1024;
    cr_assert_lt(peak - base, bound, "the daemon grew by %ld KiB (bound %ld)",
                 peak - base, bound);
    cr_assert_lt(after - base, 8 * 1024, "the daemon kept %ld KiB", after - base);
}

/* The anonymous mapping "shared" of FD_SIZE, 0666: every uid may open
 * it, and each grant carries its fd (not carved from an arena). */
static mmapio_map *open_shared(mmapio_client *c)
{
    mmapio_options o;
    mmapio_map *m;
    mmapio_options_init(&o);
    o.anonymous = true;
    o.create = true;
    o.exclusive = true;
    o.size = FD_SIZE;
    o.perm = 0666;
    hz_assert_ok(mmapio_open(c, "shared", &o, &m));
    return m;
}

/* n children, uids first, first + 1, ..., each fn(arg) reporting an int
 * when ready: the sum of the reports. */
static int spawn_uids(struct child *kids, int n, uid_t first, child_fn fn,
                      void *arg)
{
    int sum = 0;
    for (int i = 0; i < n; i++) {
        int got = 0;
        kids[i] = spawn_as(first + (uid_t)i, fn, arg);
        cr_assert_eq(read(kids[i].report, &got, sizeof(got)),
                     (long)sizeof(got), "uid %u did not report",
                     (unsigned)(first + (uid_t)i));
        sum += got;
    }
    return sum;
}

static void kill_all(struct child *kids, int n)
{
    for (int i = 0; i < n; i++) {
        kill(kids[i].pid, SIGKILL);
        waitpid(kids[i].pid, NULL, 0);
        close(kids[i].report);
    }
}

/* ---- every fd the daemon can be made to hold, at once ---------------- */

/* A raw connection that said hello, or -1. */
static int hello_conn(void)
{
    int fd = raw_connect(hz.sock);
    if (fd >= 0 && raw_hello(fd, WIRE_PROTOCOL) == 0)
        return fd;
    if (fd >= 0)
        close(fd);
    return -1;
}

/* Open requests for the anonymous mapping `name` on fd without reading a
 * reply, until the daemon stops reading them: each unsent reply holds an
 * fd of the daemon's. */
static void pipeline_opens(int fd, const char *name)
{
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    Mmapio__Open o = MMAPIO__OPEN__INIT;
    Mmapio__Request q = MMAPIO__REQUEST__INIT;
    o.path = (char *)name;
    o.anonymous = true;
    o.mode = MMAPIO__MODE__MODE_READ_ONLY;
    q.op_case = MMAPIO__REQUEST__OP_OPEN;
    q.open = &o;
    for (int i = 0; i < 2000; i++) {
        q.id = 100 + (uint64_t)i;
        if (raw_send(fd, &q, -1) == 0)
            continue;
        struct pollfd p = { .fd = fd, .events = POLLOUT };
        if (poll(&p, 1, 100) <= 0)
            break; /* the daemon stopped reading */
    }
}

/* As many connections as the uid may have, all said hello, then on each
 * open requests whose replies (each pinning an fd) are never read. */
static int deaf_opens(int report, void *arg)
{
    int fds[64], n = 0;
    while (n < 64 && (fds[n] = hello_conn()) >= 0)
        n++;
    for (int i = 0; i < n; i++)
        pipeline_opens(fds[i], arg);
    (void)!write(report, &n, sizeof(n));
    pause();
    return 0;
}

/* Creates until refused; holds its connection. */
static int fill(int report, void *arg)
{
    (void)arg;
    mmapio_client *c;
    int r = mmapio_connect(hz.sock, &c);
    if (r != MMAPIO_OK)
        return say(report, "filler connect: %s", mmapio_strerror(r));
    struct flood f = { 0, MMAPIO_OK };
    for (;; f.created++) {
        char name[32];
        mmapio_map *m;
        snprintf(name, sizeof(name), "f%u-%d", (unsigned)getuid(), f.created);
        if ((f.last = mmapio_anon_create(c, name, FD_SIZE, &m)) != MMAPIO_OK)
            break;
        mmapio_unmap(m);
    }
    (void)!write(report, &f, sizeof(f));
    pause();
    return 0;
}

/* Connects until refused; reports how many, holds them. */
static int idle(int report, void *arg)
{
    (void)arg;
    mmapio_client *c;
    int n = 0;
    while (n < 64 && mmapio_connect(hz.sock, &c) == MMAPIO_OK &&
           mmapio_ping(c) == MMAPIO_OK)
        n++;
    (void)!write(report, &n, sizeof(n));
    pause();
    return 0;
}

/* Connections, mappings and fds in unread replies, each at its limit at
 * once, by several uids: the daemon still has the fds to keep its
 * promises (root's reserved mappings), so they fit its fd limit together. */
Test(budgets, every_budget_at_once_fits_the_fd_limit)
{
    if (rb_wrapped())
        cr_skip_test("valgrind keeps fds of its own in the daemon's process: "
                     "its fd count is not the daemon's");
    start_with_fds(256);
    mmapio_client *c = hz_client();
    mmapio_map *shared = open_shared(c);

    struct child kids[16];
    int n_kids = 0, created = 0, idlers = 0, conns = 0;
    int before_deaf = hz_fd_count(hz.pid);
    kids[n_kids] = spawn_as(RB_NOBODY, deaf_opens, (void *)"shared");
    cr_assert_eq(read(kids[n_kids++].report, &conns, sizeof(conns)),
                 (long)sizeof(conns), "the deaf uid did not report");
    int deaf_fds = hz_fd_count(hz.pid) - before_deaf;
    for (int i = 0; i < 4; i++) { /* a quarter of max_fd_mappings each */
        struct flood f = { 0, 0 };
        kids[n_kids] = spawn_as(61000 + (uid_t)i, fill, NULL);
        cr_assert_eq(read(kids[n_kids++].report, &f, sizeof(f)),
                     (long)sizeof(f), "a filler did not report");
        created += f.created;
    }
    while (n_kids < 16) { /* then every connection left */
        int n = 0;
        kids[n_kids] = spawn_as(61100 + (uid_t)n_kids, idle, NULL);
        cr_assert_eq(read(kids[n_kids++].report, &n, sizeof(n)),
                     (long)sizeof(n), "an idle uid did not report");
        idlers += n;
        if (n == 0)
            break;
    }
    int fds = hz_fd_count(hz.pid);

    /* Root takes what is kept for it: refused by the count alone. */
    int mine = 0, r;
    for (;; mine++) {
        char name[32];
        mmapio_map *m;
        snprintf(name, sizeof(name), "root%d", mine);
        if ((r = mmapio_anon_create(c, name, FD_SIZE, &m)) != MMAPIO_OK)
            break;
        hz_assert_ok(mmapio_unmap(m));
    }
    int worst = hz_fd_count(hz.pid);
    fprintf(stderr, "budgets: %d deaf connections, %d mappings and %d idle "
            "connections by others, then root %d more (%s: %s); daemon fds "
            "%d, then %d of 256\n", conns, created, idlers, mine,
            mmapio_strerror(r), mmapio_last_error(), fds, worst);
    /* Every mapping the daemon promised exists: root was refused only
     * once all of max_fd_mappings were taken (each of these holds an fd). */
    cr_assert(rb_log_has(&hz, "), max_fd_mappings ", 2000));
    const char *line = strstr(rb_log_tail(&hz), "), max_fd_mappings ");
    unsigned max = 0, clients = 0, queued = 0, limit = 0, cache = 0, final = 0,
             per_uid = 0;
    cr_assert(line && sscanf(line, "), max_fd_mappings %u", &max) == 1);
    /* 256, or a little less under valgrind, which keeps some fds. */
    line = strstr(rb_log_tail(&hz), "fd limit ");
    cr_assert(line && sscanf(line, "fd limit %u: max_clients %u", &limit,
                             &clients) == 2);
    cr_assert_leq(limit, 256);
    line = strstr(line, "max_queued_fds_total ");
    cr_assert(line && sscanf(line, "max_queued_fds_total %u (%u per uid), "
                             "open_cache %u, max_final_flushes %u", &queued,
                             &per_uid, &cache, &final) == 4);
    /* The deaf uid's connections, each with a reply fd waiting unread,
     * hold their sockets and at most the uid's cap of queued fds (plus
     * the one the turn that reached it may have added). */
    fprintf(stderr, "budgets: the deaf uid's %d connections took %d daemon "
            "fds (queued fds: %u per uid, %u in all)\n", conns, deaf_fds,
            per_uid, queued);
    cr_assert_leq(deaf_fds, conns + (int)per_uid + 1,
                  "%d deaf connections pinned %d fds (cap %u per uid)", conns,
                  deaf_fds, per_uid);
    /* What the budgets promise, all at once: 64 fds of the daemon's own,
     * each connection's socket, the mappings, the queued fds, the open
     * cache and the final flushes that hold a released mapping. */
    cr_assert_leq(64 + clients + max + queued + cache + final, limit,
                  "max_clients %u, max_fd_mappings %u, max_queued_fds_total %u, "
                  "open_cache %u, max_final_flushes %u promise more than %u "
                  "fds", clients, max, queued, cache, final, limit);
    cr_assert_eq(r, MMAPIO_E_QUOTA);
    cr_assert_gt(mine, 0, "nothing was kept for root");
    cr_assert_eq(1 + created + mine, (int)max,
                 "%d of max_fd_mappings %u exist", 1 + created + mine, max);
    cr_assert_lt(worst, 256, "the daemon ran out of fds");
    hz_assert_ok(mmapio_ping(c));

    kill_all(kids, n_kids);
    hz_assert_ok(mmapio_unmap(shared));
    mmapio_disconnect(c);
}

/* ---- fds sent and never received ------------------------------------- */

/* Whether uid's victim() succeeds within 5 s of tries. */
static bool served_soon(uid_t uid, const char *name)
{
    for (int i = 0; i < 50; i++) {
        struct child b = spawn_as(uid, victim, (void *)name);
        char why[200] = "";
        long n = read(b.report, why, sizeof(why) - 1);
        int st = 0;
        waitpid(b.pid, &st, 0);
        close(b.report);
        if (n <= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0)
            return true;
        usleep(100 * 1000);
    }
    return false;
}

/* The kernel's count is per uid, every process of root's together: other
 * tests' daemons, run at the same time, hold a few hundred fds in flight
 * at most (their own caps); the daemon's limit leaves room for them, and
 * an attacker unbounded would still go far past it. */
#define IN_FLIGHT_NOFILE 1024

/* The kernel counts fds sent over unix sockets and not yet received
 * against the sender's uid and its RLIMIT_NOFILE, unless the sender has
 * CAP_SYS_RESOURCE or CAP_SYS_ADMIN; past it every fd sent fails with
 * ETOOMANYREFS. A daemon without them (setpriv) and with 1024 fds: one
 * uid's clients that never read their replies must not hold so many in
 * flight that another uid can no longer be sent its fds (the hello's, an
 * open's), nor keep them counted once it stopped. */
Test(budgets, unread_fds_in_flight_cannot_deny_others_their_fds)
{
    if (access("/usr/bin/setpriv", X_OK) < 0)
        cr_skip_test("needs setpriv (util-linux)");
    start_wrapped(IN_FLIGHT_NOFILE, "/usr/bin/setpriv "
                       "--bounding-set=-sys_resource,-sys_admin");
    mmapio_client *c = hz_client();
    mmapio_map *shared = open_shared(c);

    struct child a = spawn_as(RB_NOBODY, deaf_opens, (void *)"shared");
    int conns = 0;
    cr_assert_eq(read(a.report, &conns, sizeof(conns)), (long)sizeof(conns),
                 "the deaf uid did not report");
    cr_assert_gt(conns, 1);
    /* Another uid: its hello and its opens each carry an fd. */
    for (int i = 0; i < 3; i++)
        run_as(VICTIM_UID, victim, "mine", "victim during the attack");
    hz_assert_ok(mmapio_ping(c));
    mmapio_map *again;
    hz_assert_ok(mmapio_anon_open(c, "shared", &again));
    hz_assert_ok(mmapio_unmap(again));
    cr_assert(!rb_log_has(&hz, "ETOOMANYREFS", 0), "%s", rb_log_tail(&hz));

    /* The attacker gone, what it held is counted no more: its uid is
     * served again (its cap would stop it at once otherwise). */
    kill(a.pid, SIGKILL);
    waitpid(a.pid, NULL, 0);
    close(a.report);
    cr_assert(served_soon(RB_NOBODY, "nobodys"),
              "the deaf uid is not served after it left");
    hz_assert_ok(mmapio_unmap(shared));
    mmapio_disconnect(c);
}

/* Connects `arg` times: a hello whose reply (with its fd) is never read,
 * then the end of its requests, so the daemon closes the connection; the
 * socket is kept, the fd still in flight. Reports how many. */
static int hello_then_hang_up(int report, void *arg)
{
    int n = (int)(long)arg, done = 0, misses = 0;
    /* Until the daemon no longer answers (its budgets hold the uid). */
    for (int i = 0; i < n && misses < 5; i++) {
        int fd = raw_connect(hz.sock);
        if (fd < 0) {
            misses++;
            continue;
        }
        Mmapio__Request q = MMAPIO__REQUEST__INIT;
        Mmapio__Hello h = MMAPIO__HELLO__INIT;
        h.protocol = WIRE_PROTOCOL;
        q.id = 1;
        q.op_case = MMAPIO__REQUEST__OP_HELLO;
        q.hello = &h;
        struct pollfd p = { .fd = fd, .events = POLLIN };
        if (raw_send(fd, &q, -1) < 0 || poll(&p, 1, 200) != 1) {
            close(fd);
            misses++;
            continue;
        }
        /* Answered, its fd in flight: the daemon reads the end, closes. */
        shutdown(fd, SHUT_WR);
        done++;
        misses = 0;
    }
    (void)!write(report, &done, sizeof(done));
    pause();
    return 0;
}

/* The first hello's fd is not counted while its connection lives (one a
 * connection, within max_clients); a connection the daemon closes with
 * it still unread must not leave it in flight uncounted: thousands of
 * them, one after another, would deny everyone else their fds. */
Test(budgets, closed_connections_leave_no_fds_in_flight_uncounted)
{
    if (access("/usr/bin/setpriv", X_OK) < 0)
        cr_skip_test("needs setpriv (util-linux)");
    start_wrapped(IN_FLIGHT_NOFILE, "/usr/bin/setpriv "
                       "--bounding-set=-sys_resource,-sys_admin");
    struct child a = spawn_as(RB_NOBODY, hello_then_hang_up, (void *)3000L);
    int done = 0;
    cr_assert_eq(read(a.report, &done, sizeof(done)), (long)sizeof(done),
                 "the attacker did not report");
    fprintf(stderr, "budgets: %d hellos left unread on connections the "
            "daemon closed; daemon fds %d\n", done, hz_fd_count(hz.pid));
    run_as(VICTIM_UID, victim, "mine", "victim after the hang-ups");
    cr_assert(!rb_log_has(&hz, "ETOOMANYREFS", 0), "%s", rb_log_tail(&hz));
    kill(a.pid, SIGKILL);
    waitpid(a.pid, NULL, 0);
    close(a.report);
}

/* Uids enough to fill max_queued_fds_total with replies they never read:
 * nobody else is read then (a bound is a bound), but the last sixteenth
 * is root's and admin_group's, so an admin is still served. */
Test(budgets, root_is_read_when_other_uids_hold_every_fd)
{
    start_with_fds(256);
    mmapio_client *c = hz_client();
    mmapio_map *shared = open_shared(c);
    mmapio_disconnect(c); /* root's own connection holds nothing either */

    struct child kids[6];
    int conns = spawn_uids(kids, 6, 62000, deaf_opens, (void *)"shared");
    fprintf(stderr, "budgets: 6 deaf uids, %d connections, daemon fds %d\n",
            conns, hz_fd_count(hz.pid));
    run_as(0, victim, "rootmap", "root while other uids hold every fd");
    kill_all(kids, 6);
    /* they are gone (their connections closed as the daemon finds
     * their sockets empty and reads their end): everyone is served */
    cr_assert(served_soon(VICTIM_UID, "mine"), "not served once they left");
    c = hz_client();
    hz_assert_ok(mmapio_unmap(shared));
    mmapio_disconnect(c);
}

/* On every connection the uid may have: a hello and an open of the
 * anonymous mapping `arg`, their replies (each with an fd) never read;
 * then the end of its requests on all of them. Reports how many. */
static int open_then_hang_up(int report, void *arg)
{
    int fds[64], n = 0;
    Mmapio__Request q = MMAPIO__REQUEST__INIT;
    Mmapio__Open o = MMAPIO__OPEN__INIT;
    o.path = arg;
    o.anonymous = true;
    o.mode = MMAPIO__MODE__MODE_READ_ONLY;
    q.id = 2;
    q.op_case = MMAPIO__REQUEST__OP_OPEN;
    q.open = &o;
    while (n < 64) {
        int fd = hello_conn();
        if (fd < 0)
            break;
        struct pollfd p = { .fd = fd, .events = POLLIN };
        if (raw_send(fd, &q, -1) < 0 || poll(&p, 1, 500) != 1) {
            close(fd); /* refused, or not answered: its uid is full */
            break;
        }
        fds[n++] = fd;
    }
    for (int i = 0; i < n; i++)
        shutdown(fds[i], SHUT_WR);
    (void)!write(report, &n, sizeof(n));
    pause();
    return 0;
}

/* Connections closed without being read again (their holders reaped when
 * another client shrinks the mapping they hold: their peers hung up) keep
 * what they had in flight counted, and add nothing to the budgets: two
 * uids doing so cannot deny root and everyone else every fd. */
Test(budgets, reaped_connections_add_nothing_to_the_fd_budget)
{
    start_with_fds(1024);
    mmapio_client *c = hz_client();
    mmapio_map *shared = open_shared(c);
    struct child kids[2];
    int conns = spawn_uids(kids, 2, 62000, open_then_hang_up, (void *)"shared");
    usleep(200 * 1000);
    int r = mmapio_resize(shared, FD_SIZE / 2); /* reaps the hung-up */
    fprintf(stderr, "budgets: %d connections hung up, resize: %s; daemon "
            "fds %d\n", conns, mmapio_strerror(r), hz_fd_count(hz.pid));
    run_as(0, victim, "rootmap", "root after the reaped hang-ups");
    run_as(VICTIM_UID, victim, "mine", "victim after the reaped hang-ups");
    kill_all(kids, 2);
    hz_assert_ok(mmapio_unmap(shared));
    mmapio_disconnect(c);
}
