/*
 * test_wring: watched writes through the write ring (common/wring.h).
 *
 * A writer in another process writes 64-byte records flat out, each
 * starting with its sequence number; the watcher re-reads every record an
 * event covers (all of them for a MODIFIED without a range) and at the end
 * every record must have been seen as it finally is: the last write of
 * each was covered by an event that came after it, so every write was.
 * Without overflow (fewer writes than the ring holds) every event has a
 * range; with a stopped daemon (which also shows a writer never waits for
 * it) or a watcher that does not read, ranges are dropped and a MODIFIED
 * without a range covers them. mmapio_notify_range reaches watchers. A
 * hostile client scribbling over its ring cannot crash the daemon, resize
 * the ring, or make a watcher of a mapping it may not write hear anything.
 */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/sockios.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "nosys.h"
#include "wire.h"
#include "wring.h"

TestSuite(wring, .init = hz_setup, .fini = hz_teardown, .timeout = 120);

#define REC 64
#define MAP_SIZE (256u * 1024u)
#define NREC (MAP_SIZE / REC)
#define EVENT_BOUND_MS 10000

/* ---- the watcher: what it saw of each record ---------------------------- */

struct cover {
    const uint8_t *base;
    uint64_t seen[NREC];
    long ranged, rangeless, other;
    uint64_t lo, hi;          /* the union's bounds of the ranges told */
};

static uint64_t rec_seq(const uint8_t *base, uint64_t i)
{
    return __atomic_load_n((const uint64_t *)(base + i * REC), __ATOMIC_ACQUIRE);
}

static void see(struct cover *cv, uint64_t first, uint64_t last)
{
    for (uint64_t i = first; i <= last && i < NREC; i++)
        cv->seen[i] = rec_seq(cv->base, i);
}

static void on_change(const mmapio_change_event *ev, void *user)
{
    struct cover *cv = user;
    if (ev->kind != MMAPIO_CHANGE_MODIFIED) {
        cv->other++;
        return;
    }
    if (!ev->has_range) {
        cv->rangeless++;
        see(cv, 0, NREC - 1);
        return;
    }
    cr_assert_leq(ev->offset + ev->len, MAP_SIZE, "a range past the end");
    cv->ranged++;
    if (cv->ranged == 1 || ev->offset < cv->lo)
        cv->lo = ev->offset;
    if (ev->offset + ev->len > cv->hi)
        cv->hi = ev->offset + ev->len;
    if (ev->len)
        see(cv, ev->offset / REC, (ev->offset + ev->len - 1) / REC);
}

/* Records whose content now differs from what the last event showed. */
static uint64_t missed(const struct cover *cv)
{
    uint64_t n = 0;
    for (uint64_t i = 0; i < NREC; i++)
        n += cv->seen[i] != rec_seq(cv->base, i);
    return n;
}

/* Dispatches until nothing is missed, or the bound passed. */
static uint64_t settle(mmapio_client *c, struct cover *cv)
{
    int64_t end = hz_now_ms() + EVENT_BOUND_MS;
    uint64_t n;
    while ((n = missed(cv)) > 0 && hz_now_ms() < end)
        cr_assert_geq(mmapio_client_dispatch(c, 50), 0);
    return n;
}

/* Dispatches until a MODIFIED without a range came, or the bound passed. */
static long await_rangeless(mmapio_client *c, struct cover *cv)
{
    int64_t end = hz_now_ms() + EVENT_BOUND_MS;
    while (cv->rangeless == 0 && hz_now_ms() < end)
        cr_assert_geq(mmapio_client_dispatch(c, 50), 0);
    return cv->rangeless;
}

/* ---- the writer: another process ---------------------------------------- */

/* Record s's offset, 7 records after s - 1's: no write continues the one
 * before, so none extends a cell (wring.h) and the ring fills. */
static uint64_t spread(long s)
{
    return (uint64_t)(s * 7 % NREC) * REC;
}

/* Writes n records flat out into anon "w" (update_region, or stores and
 * mmapio_notify_range), record s at slot s * stride, pausing 2 ms every
 * `burst` records (0: never). Exit status 0 when every call succeeded. */
static pid_t writer_strided(long n, bool by_pointer, long burst, long stride)
{
    pid_t pid = hz_fork();
    cr_assert_geq(pid, 0);
    if (pid)
        return pid;
    mmapio_client *c;
    mmapio_map *m;
    if (mmapio_connect(hz.sock, &c) || mmapio_anon_open(c, "w", &m))
        _exit(10);
    uint8_t rec[REC];
    uint8_t *p = mmapio_as_mut_ptr(m);
    memset(rec, 'x', sizeof(rec));
    for (long s = 1; s <= n; s++) {
        uint64_t off = (uint64_t)(s * stride % NREC) * REC;
        memcpy(rec, &s, sizeof(s));
        int r;
        if (by_pointer) {
            memcpy(p + off, rec, REC);
            r = mmapio_notify_range(m, off, REC);
        } else {
            r = mmapio_update_region(m, off, rec, REC);
        }
        if (r != MMAPIO_OK)
            _exit(11);
        if (burst && s % burst == 0)
            usleep(2000);
    }
    mmapio_unmap(m);
    mmapio_disconnect(c);
    _exit(0);
}

static pid_t writer(long n, bool by_pointer)
{
    return writer_strided(n, by_pointer, 0, 1);
}

static void wait_writer(pid_t pid)
{
    int st = hz_wait_child(pid, 60000);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0,
              "the writer failed (status 0x%x)", (unsigned)st);
}

struct watched {
    mmapio_client *c;
    mmapio_map *m;
    mmapio_watcher *w;
    struct cover *cv;
};

static struct watched watch_w(void)
{
    struct watched x;
    x.c = hz_client();
    hz_assert_ok(mmapio_anon_create(x.c, "w", MAP_SIZE, &x.m));
    x.cv = calloc(1, sizeof(*x.cv));
    cr_assert_not_null(x.cv);
    x.cv->base = mmapio_as_ptr(x.m);
    hz_assert_ok(mmapio_watch(x.m, on_change, x.cv, &x.w));
    return x;
}

static void unwatch(struct watched *x)
{
    mmapio_unwatch(x->w);
    mmapio_unmap(x->m);
    mmapio_disconnect(x->c);
    free(x->cv);
}

/* ---- flat out ------------------------------------------------------------ */

Test(wring, flat_out_writer_without_overflow_gets_every_range)
{
    struct watched x = watch_w();
    long n = WRING_CELLS - 100; /* fits the ring even if nobody drains it */
    wait_writer(writer(n, false));
    uint64_t left = settle(x.c, x.cv);
    cr_assert_eq(left, 0, "%llu records whose last write no event covered",
                 (unsigned long long)left);
    cr_assert_eq(x.cv->rangeless, 0, "%ld MODIFIED without a range, no overflow",
                 x.cv->rangeless);
    cr_assert_gt(x.cv->ranged, 0);
    /* Records 1..n were written: the ranges reach both ends. */
    cr_assert_leq(x.cv->lo, (uint64_t)REC);
    cr_assert_geq(x.cv->hi, (uint64_t)n * REC + REC);
    unwatch(&x);
}

Test(wring, scattered_writes_merged_still_cover_every_byte)
{
    struct watched x = watch_w();
    /* Records 97 apart (6 KiB, beyond the gap the daemon merges): more
     * distinct ranges in a drain than it keeps, so they merge into the
     * nearest; no overflow (fewer writes than the ring holds). */
    wait_writer(writer_strided(WRING_CELLS - 100, false, 0, 97));
    uint64_t left = settle(x.c, x.cv);
    cr_assert_eq(left, 0, "%llu records whose last write no event covered",
                 (unsigned long long)left);
    cr_assert_eq(x.cv->rangeless, 0);
    unwatch(&x);
}

/* Threads of one writer process share its connection's ring. */
struct thread_arg {
    mmapio_map *m;
    long first, n;        /* records first, first + 4, ... */
    int failed;
};

static void *thread_writes(void *p)
{
    struct thread_arg *a = p;
    uint8_t rec[REC];
    memset(rec, 't', sizeof(rec));
    for (long k = 0; k < a->n; k++) {
        long s = a->first + 4 * k;
        memcpy(rec, &s, sizeof(s));
        if (mmapio_update_region(a->m, (uint64_t)(s % NREC) * REC, rec, REC))
            a->failed = 1;
    }
    return NULL;
}

/* Four threads writing n records each, interleaved. */
static pid_t threaded_writer(long n)
{
    pid_t pid = hz_fork();
    cr_assert_geq(pid, 0);
    if (pid)
        return pid;
    mmapio_client *c;
    mmapio_map *m;
    if (mmapio_connect(hz.sock, &c) || mmapio_anon_open(c, "w", &m))
        _exit(10);
    pthread_t t[4];
    struct thread_arg a[4];
    for (int i = 0; i < 4; i++) {
        a[i] = (struct thread_arg){ m, i + 1, n, 0 };
        if (pthread_create(&t[i], NULL, thread_writes, &a[i]))
            _exit(12);
    }
    int failed = 0;
    for (int i = 0; i < 4; i++) {
        pthread_join(t[i], NULL);
        failed |= a[i].failed;
    }
    _exit(failed ? 11 : 0);
}

Test(wring, threads_of_one_writer_share_the_ring)
{
    struct watched x = watch_w();
    /* Fewer than the ring holds: every range arrives. */
    wait_writer(threaded_writer((WRING_CELLS - 100) / 4));
    uint64_t left = settle(x.c, x.cv);
    cr_assert_eq(left, 0, "%llu records whose last write no event covered",
                 (unsigned long long)left);
    cr_assert_eq(x.cv->rangeless, 0, "%ld MODIFIED without a range, %ld "
                 "with, %ld other", x.cv->rangeless, x.cv->ranged, x.cv->other);
    /* Far more: ranges dropped, still nothing missed. */
    wait_writer(threaded_writer(100000));
    left = settle(x.c, x.cv);
    cr_assert_eq(left, 0, "%llu records whose last write no event covered",
                 (unsigned long long)left);
    unwatch(&x);
}

Test(wring, flat_out_writer_with_daemon_running_misses_nothing)
{
    struct watched x = watch_w();
    wait_writer(writer(300000, false));
    uint64_t left = settle(x.c, x.cv);
    cr_assert_eq(left, 0, "%llu records whose last write no event covered "
                 "(%ld ranged, %ld without)", (unsigned long long)left,
                 x.cv->ranged, x.cv->rangeless);
    unwatch(&x);
}

/* Bytes the writer sent that the daemon has not read (notices). */
static int unread_by_daemon(mmapio_client *c)
{
    int q = -1;
    return ioctl(mmapio_client_fd(c), SIOCOUTQ, &q) < 0 ? -1 : q;
}

/* A writer overflows the ring while the daemon is stopped after a drain:
 * its first overflow knocks (one RING notice waits in the socket), and 20
 * rings more add none. Then, the daemon running again and the writer
 * connected and silent (no request, no unmap: neither makes the daemon
 * drain), the watcher hears every record and "anything may have
 * changed". */
Test(wring, overflowing_writer_knocks_once_and_misses_nothing)
{
    struct watched x = watch_w();
    int done[2], go[2];
    cr_assert_eq(pipe(done), 0);
    cr_assert_eq(pipe(go), 0);
    pid_t pid = hz_fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        mmapio_client *c;
        mmapio_map *m;
        char b = 0;
        int q[3];
        if (mmapio_connect(hz.sock, &c) || mmapio_anon_open(c, "w", &m))
            _exit(10);
        uint8_t rec[REC];
        memset(rec, 'k', sizeof(rec));
        long s = 1;
        /* Record 1 wakes the daemon, whose drain asks for a knock; the
         * parent stops the daemon once the watcher heard of it. */
        for (; s <= 20 * (long)WRING_CELLS + 2; s++) {
            memcpy(rec, &s, sizeof(s));
            if (mmapio_update_region(m, spread(s), rec, REC))
                _exit(11);
            if (s == 1 && (write(done[1], &b, 1) != 1 ||
                           read(go[0], &b, 1) != 1))
                _exit(12);
            if (s == 2) /* 0, or the wake-up if the daemon slept again */
                q[0] = unread_by_daemon(c);
            if (s == WRING_CELLS + 2) /* past a ring: it overflowed */
                q[1] = unread_by_daemon(c);
        }
        q[2] = unread_by_daemon(c);
        if (write(done[1], q, sizeof(q)) != (ssize_t)sizeof(q) ||
            read(go[0], &b, 1) != 1)
            _exit(12);
        mmapio_unmap(m);
        mmapio_disconnect(c);
        _exit(0);
    }
    char b = 0;
    int q[3];
    cr_assert_eq(read(done[0], &b, 1), 1);
    uint64_t left = settle(x.c, x.cv);
    cr_assert_eq(left, 0, "record 1 was not told");
    cr_assert_eq(kill(hz.pid, SIGSTOP), 0);
    cr_assert_eq(write(go[1], &b, 1), 1);
    cr_assert_eq(read(done[0], q, sizeof(q)), (ssize_t)sizeof(q));
    cr_assert_eq(kill(hz.pid, SIGCONT), 0);
    left = settle(x.c, x.cv);
    long rangeless = await_rangeless(x.c, x.cv);
    cr_assert_eq(write(go[1], &b, 1), 1);
    wait_writer(pid);
    cr_assert(q[0] >= 0 && q[1] > q[0], "no knock on overflow (unread "
              "bytes %d before, %d after)", q[0], q[1]);
    cr_assert_eq(q[2], q[1], "more than one knock for one drain (unread "
                 "bytes %d after one ring, %d after 20)", q[1], q[2]);
    cr_assert_eq(left, 0, "%llu records whose last write no event covered "
                 "while the writer waited (%ld ranged, %ld without)",
                 (unsigned long long)left, x.cv->ranged, x.cv->rangeless);
    cr_assert_gt(rangeless, 0, "the ring overflowed, yet no MODIFIED without "
                 "a range came while the writer waited");
    unwatch(&x);
    close(done[0]);
    close(done[1]);
    close(go[0]);
    close(go[1]);
}

Test(wring, stopped_daemon_never_blocks_a_writer_and_overflow_is_told)
{
    struct watched x = watch_w();
    /* The writer connects and opens first (those are round trips), then
     * the daemon is stopped and the writer writes. */
    int go[2], ready[2];
    cr_assert_eq(pipe(go), 0);
    cr_assert_eq(pipe(ready), 0);
    pid_t pid = hz_fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        mmapio_client *c;
        mmapio_map *m;
        char b = 0;
        if (mmapio_connect(hz.sock, &c) || mmapio_anon_open(c, "w", &m))
            _exit(10);
        if (write(ready[1], &b, 1) != 1 || read(go[0], &b, 1) != 1)
            _exit(12);
        uint8_t rec[REC];
        memset(rec, 'y', sizeof(rec));
        for (long s = 1; s <= 200000; s++) {
            memcpy(rec, &s, sizeof(s));
            if (mmapio_update_region(m, spread(s), rec, REC))
                _exit(11);
        }
        if (write(ready[1], &b, 1) != 1)
            _exit(12);
        _exit(0); /* no unmap: a round trip would wait for the daemon */
    }
    char b;
    cr_assert_eq(read(ready[0], &b, 1), 1);
    cr_assert_eq(kill(hz.pid, SIGSTOP), 0);
    cr_assert_eq(write(go[1], &b, 1), 1);
    /* 200,000 writes, 49 times the ring, while the daemon is stopped:
     * the writer finishes (else this test times out). */
    cr_assert_eq(read(ready[0], &b, 1), 1);
    int st = hz_wait_child(pid, 60000);
    cr_assert_eq(kill(hz.pid, SIGCONT), 0);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "writer status 0x%x",
              (unsigned)st);
    uint64_t left = settle(x.c, x.cv);
    cr_assert_eq(left, 0, "%llu records whose last write no event covered",
                 (unsigned long long)left);
    cr_assert_gt(await_rangeless(x.c, x.cv), 0, "ranges were dropped, yet "
                 "no MODIFIED without a range came (%ld ranged)", x.cv->ranged);
    unwatch(&x);
    close(go[0]);
    close(go[1]);
    close(ready[0]);
    close(ready[1]);
}

/* A daemon that queues at most 2 events for a client. */
static void setup_small_queue(void)
{
    signal(SIGPIPE, SIG_IGN);
    cr_assert_eq(hz_init(&hz), 0);
    char conf[320];
    snprintf(conf, sizeof(conf), "%s/mmapiod.conf", hz.dir);
    const char text[] = "# test_wring: a small event queue\nmax_events = 2\n";
    cr_assert_eq(hz_write_file(conf, text, sizeof(text) - 1), 0);
    const char *args[] = { "--socket", hz.sock, "--root", hz.root,
                           "--config", conf, NULL };
    pid_t pid = hz_spawn(args, -1, -1);
    cr_assert_gt(pid, 0);
    cr_assert_eq(hz_wait_ready(hz.sock, pid, HZ_READY_TIMEOUT_MS), 0);
    hz.pid = pid;
    setenv("MMAPIO_SOCKET", hz.sock, 1);
}

Test(wring, slow_watcher_misses_nothing, .init = setup_small_queue)
{
    struct watched x = watch_w();
    /* The watcher reads nothing until the writer is done: its events
     * overflow the daemon's queue for it. */
    wait_writer(writer_strided(400000, false, 20000, 1));
    uint64_t left = settle(x.c, x.cv);
    cr_assert_eq(left, 0, "%llu records whose last write no event covered "
                 "(%ld ranged, %ld without)", (unsigned long long)left,
                 x.cv->ranged, x.cv->rangeless);
    unwatch(&x);
}

/* ---- no system call per write ------------------------------------------- */

struct quiet {
    mmapio_map *m;
    long writes;
};

/* In the child, system calls allowed: connect, open, stop the daemon, and
 * one write, which finds the daemon asleep and wakes it (a notice that
 * stays in the socket, unread). */
static int quiet_setup(void *arg)
{
    struct quiet *q = arg;
    mmapio_client *c;
    uint64_t zero = 0;
    if (mmapio_connect(hz.sock, &c) || mmapio_anon_open(c, "w", &q->m))
        return 50;
    if (kill(hz.pid, SIGSTOP) < 0)
        return 51;
    if (mmapio_update_region(q->m, 0, &zero, sizeof(zero)))
        return 52;
    return 0;
}

/* Under seccomp: every further write goes to the ring (or, once it is
 * full, to the lost bits) with no system call. */
static int quiet_body(void *arg)
{
    struct quiet *q = arg;
    uint8_t rec[REC];
    memset(rec, 'q', sizeof(rec));
    for (long s = 1; s <= q->writes; s++) {
        memcpy(rec, &s, sizeof(s));
        if (mmapio_update_region(q->m, spread(s), rec, REC))
            return 1;
        if (mmapio_notify_range(q->m, spread(s), REC))
            return 2;
    }
    return 0;
}

Test(wring, watched_writes_make_no_system_call_once_the_daemon_was_woken)
{
    struct watched x = watch_w();
    struct quiet q = { NULL, 3 * WRING_CELLS };
    struct nosys_result r = nosys_run(quiet_setup, quiet_body, &q, 60000);
    kill(hz.pid, SIGCONT);
    cr_assert_eq(r.syscall_nr, -1, "a watched write made system call %ld",
                 r.syscall_nr);
    cr_assert(WIFEXITED(r.status) && WEXITSTATUS(r.status) == 0,
              "child status 0x%x", (unsigned)r.status);
    /* Its writes, and the overflow, still reach the watcher. */
    uint64_t left = settle(x.c, x.cv);
    cr_assert_eq(left, 0, "%llu records whose last write no event covered",
                 (unsigned long long)left);
    cr_assert_gt(await_rangeless(x.c, x.cv), 0);
    unwatch(&x);
}

/* ---- mmapio_notify_range ------------------------------------------------- */

Test(wring, notify_range_reaches_watchers)
{
    struct watched x = watch_w();
    wait_writer(writer(2000, true));
    uint64_t left = settle(x.c, x.cv);
    cr_assert_eq(left, 0, "%llu records whose last write no event covered",
                 (unsigned long long)left);
    cr_assert_eq(x.cv->rangeless, 0);
    cr_assert_gt(x.cv->ranged, 0);
    unwatch(&x);
}

Test(wring, notify_range_checks_its_arguments)
{
    mmapio_client *c = hz_client();
    mmapio_map *rw, *ro, *cow;
    hz_assert_ok(mmapio_anon_create(c, "n", 8192, &rw));
    cr_assert_eq(hz_write_file(hz_path(&hz, "f"), "abcd", 4), 0);
    hz_assert_ok(mmapio_open_ro(c, "f", &ro));
    hz_assert_ok(mmapio_open_cow(c, "f", &cow));
    hz_assert_ret(mmapio_notify_range(NULL, 0, 1), MMAPIO_E_INVALID_ARGUMENT);
    hz_assert_ret(mmapio_notify_range(ro, 0, 1), MMAPIO_E_INVALID_MODE);
    hz_assert_ret(mmapio_notify_range(rw, 8192, 1), MMAPIO_E_OUT_OF_BOUNDS);
    hz_assert_ret(mmapio_notify_range(rw, 1, UINT64_MAX), MMAPIO_E_OUT_OF_BOUNDS);
    hz_assert_ok(mmapio_notify_range(rw, 8192, 0));
    hz_assert_ok(mmapio_notify_range(rw, 0, 8192));
    hz_assert_ok(mmapio_notify_range(cow, 0, 4));
    mmapio_unmap(cow);
    mmapio_unmap(ro);
    mmapio_unmap(rw);
    mmapio_disconnect(c);
}

/* ---- a hostile ring ------------------------------------------------------ */

/* A raw open: the holder's handle, its fd closed. */
static uint64_t raw_open_handle(int fd, const char *name, int mode,
                                bool create)
{
    Mmapio__Request req = MMAPIO__REQUEST__INIT;
    Mmapio__Open o = MMAPIO__OPEN__INIT;
    o.path = (char *)name;
    o.anonymous = true;
    o.mode = (Mmapio__Mode)mode;
    o.create = create;
    o.size = create ? MAP_SIZE : 0;
    req.id = 5;
    req.op_case = MMAPIO__REQUEST__OP_OPEN;
    req.open = &o;
    cr_assert_eq(raw_send(fd, &req, -1), 0);
    Mmapio__ServerMessage *sm;
    int gfd = -1;
    cr_assert_eq(raw_recv(fd, 5000, &sm, &gfd), 0);
    cr_assert(sm->reply->error == 0 && sm->reply->open, "open %s: %d", name,
              sm->reply->error);
    uint64_t h = sm->reply->open->handle;
    mmapio__server_message__free_unpacked(sm, NULL);
    if (gfd >= 0)
        close(gfd);
    return h;
}

static void raw_ring_notice(int fd)
{
    Mmapio__Request req = MMAPIO__REQUEST__INIT;
    Mmapio__Notice n = MMAPIO__NOTICE__INIT;
    n.kind = MMAPIO__NOTICE_KIND__NOTICE_RING;
    req.op_case = MMAPIO__REQUEST__OP_NOTICE;
    req.notice = &n;
    cr_assert_eq(raw_send(fd, &req, -1), 0);
}

Test(wring, hostile_ring_cannot_crash_the_daemon_or_forge_events)
{
    /* The victim's mapping, readable by all, watched. */
    mmapio_client *vc = hz_client();
    mmapio_options o;
    mmapio_options_init(&o);
    o.anonymous = true;
    o.create = true;
    o.size = MAP_SIZE;
    o.perm = 0644;
    mmapio_map *vm;
    hz_assert_ok(mmapio_open(vc, "victim", &o, &vm));
    struct cover *cv = calloc(1, sizeof(*cv));
    cr_assert_not_null(cv);
    cv->base = mmapio_as_ptr(vm);
    mmapio_watcher *w;
    hz_assert_ok(mmapio_watch(vm, on_change, cv, &w));

    /* The hostile: its own mapping read-write, the victim's read-only. */
    int fd = raw_connect(hz.sock);
    cr_assert_geq(fd, 0);
    cr_assert_eq(raw_hello(fd, WIRE_PROTOCOL), 0);
    uint64_t mine = raw_open_handle(fd, "mine", MMAPIO__MODE__MODE_READ_WRITE, true);
    uint64_t theirs = raw_open_handle(fd, "victim", MMAPIO__MODE__MODE_READ_ONLY, false);
    Mmapio__Request req = MMAPIO__REQUEST__INIT;
    Mmapio__WriteRing wr = MMAPIO__WRITE_RING__INIT;
    req.id = 9;
    req.op_case = MMAPIO__REQUEST__OP_WRITE_RING;
    req.write_ring = &wr;
    cr_assert_eq(raw_send(fd, &req, -1), 0);
    Mmapio__ServerMessage *sm;
    int rfd = -1;
    cr_assert_eq(raw_recv(fd, 5000, &sm, &rfd), 0);
    cr_assert(sm->reply->error == 0 && rfd >= 0, "no ring: %d", sm->reply->error);
    mmapio__server_message__free_unpacked(sm, NULL);
    /* A second ring is refused. */
    req.id = 10;
    cr_assert_eq(raw_send(fd, &req, -1), 0);
    cr_assert_eq(raw_recv(fd, 5000, &sm, NULL), 0);
    cr_assert_neq(sm->reply->error, 0);
    mmapio__server_message__free_unpacked(sm, NULL);

    /* Sealed: it cannot be shrunk or grown under the daemon's loads. */
    cr_assert_neq(ftruncate(rfd, 0), 0);
    cr_assert_neq(ftruncate(rfd, (off_t)WRING_SIZE * 2), 0);
    struct wring_hdr *r = mmap(NULL, WRING_SIZE, PROT_READ | PROT_WRITE,
                               MAP_SHARED, rfd, 0);
    cr_assert_neq(r, MAP_FAILED);

    srand(13);
    for (int round = 0; round < 40; round++) {
        uint64_t head = atomic_load(&r->head);
        switch (round % 4) {
        case 0: /* well-formed cells naming the read-only holder and every
                   handle the daemon may have given anyone */
            for (uint64_t i = 0; i < WRING_CELLS; i++) {
                struct wring_cell *cell = &r->cells[(head + i) % WRING_CELLS];
                cell->handle = i % 3 == 0 ? theirs : (uint64_t)(i % 64);
                cell->offset = (uint64_t)rand() % MAP_SIZE;
                cell->len = 64;
                atomic_store(&cell->seq, head + i + 1);
            }
            atomic_store(&r->tail, head + WRING_CELLS);
            break;
        case 1: /* absurd ranges on its own mapping, tail too far */
            for (uint64_t i = 0; i < WRING_CELLS; i++) {
                struct wring_cell *cell = &r->cells[i];
                cell->handle = mine;
                cell->offset = UINT64_MAX - i;
                cell->len = UINT64_MAX;
                atomic_store(&cell->seq, head + i + 1);
            }
            atomic_store(&r->tail, head + WRING_CELLS * 1000);
            break;
        case 2: /* random bytes everywhere */
            for (size_t i = 0; i < WRING_SIZE; i++)
                ((uint8_t *)r)[i] = (uint8_t)rand();
            break;
        case 3: /* a tail behind the head, every lost bit */
            atomic_store(&r->tail, head - 5);
            for (uint32_t i = 0; i < WRING_LOST_WORDS; i++)
                atomic_store(&r->lost[i], UINT64_MAX);
            break;
        }
        raw_ring_notice(fd);
        cr_assert_eq(raw_ping(fd, 100 + (uint64_t)round), 0,
                     "round %d: the daemon stopped answering", round);
    }
    cr_assert(hz_alive(&hz));

    /* A write of the victim's own, after everything the hostile did: the
     * events to the watcher come in order, so anything forged would have
     * come before it. */
    uint64_t one = 42;
    hz_assert_ok(mmapio_update_region(vm, 4096, &one, sizeof(one)));
    int64_t end = hz_now_ms() + EVENT_BOUND_MS;
    while (cv->ranged + cv->rangeless == 0 && hz_now_ms() < end)
        cr_assert_geq(mmapio_client_dispatch(vc, 50), 0);
    cr_assert_eq(cv->rangeless, 0, "the hostile made the victim's watcher "
                 "hear MODIFIED without a range");
    cr_assert_eq(cv->ranged, 1, "%ld ranged events", cv->ranged);
    cr_assert(cv->lo == 4096 && cv->hi == 4096 + sizeof(one),
              "the watcher heard [%llu, %llu)", (unsigned long long)cv->lo,
              (unsigned long long)cv->hi);

    munmap(r, WRING_SIZE);
    close(rfd);
    close(fd);
    mmapio_unwatch(w);
    mmapio_unmap(vm);
    mmapio_disconnect(vc);
    free(cv);
}
