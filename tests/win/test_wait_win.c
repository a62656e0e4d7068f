/*
 * mmapio_wait_u32 / mmapio_wake_u32 on Windows, through mmapiod.exe
 * (winwait): the library against the daemon, and raw frames where a
 * wait must be known parked (a Ping sent after it is answered after it
 * was parked: the daemon serves a connection's requests in order).
 * Nothing here is timed: a lost wake shows as a wait that ends
 * MMAPIO_E_TIMED_OUT (after a minute) instead of MMAPIO_OK.
 *
 * - A parked waiter (raw) is woken by another process that stores and
 *   wakes 1: the wait is answered OK and the wake said 1.
 * - Two processes ping-pong on one word, store then wake, 100 times: no
 *   wait ends TIMED_OUT.
 * - A wait on a word that is not `expected` returns at once; one that
 *   is times out with MMAPIO_E_TIMED_OUT; a wake with no waiter says 0.
 * - Wake 1 of 3 parked waiters wakes exactly one, the oldest; then 2.
 * - A read-only holder of a file may wait and wake.
 * - A handle not held, an offset out of bounds or misaligned: errors,
 *   from the library and from the daemon (raw).
 * - The waits of a process that dies go with it (a later wake says 0);
 *   those of a mapping that goes (no holder, deleted) fail NOT_FOUND.
 * - Another thread of a waiting process pings and opens on the same
 *   client while one thread is blocked in the wait.
 * - A flood of raw Waits past the per-client bound gets MMAPIO_E_BUSY;
 *   the daemon answers others meanwhile.
 *
 *   test_wait_win DAEMON.exe
 *   test_wait_win waker PIPE       (stores 1, wakes 1: exit 0 when it woke 1)
 *   test_wait_win pong PIPE        (the ping-pong's other side)
 *   test_wait_win parker PIPE      (parks a raw wait, says so, is killed)
 */
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <windows.h>

#include "mmapio.h"
#include "wintest.h"
#include "wtraw.h"

#define WORD "waitword"
#define SIZE 4096
#define LONG_MS 60000
#define ROUNDS 100

/* ---- raw waiters ---- */

/* Raw client h's handle of anonymous mapping WORD (read-write), or 0. */
static uint64_t raw_hold(HANDLE h, uint64_t id)
{
    Mmapio__Open o = MMAPIO__OPEN__INIT;
    o.path = WORD;
    o.anonymous = true;
    o.mode = MMAPIO__MODE__MODE_READ_WRITE;
    uint64_t got = 0, handle = 0;
    int err = -1;
    if (!wt_raw_op(h, id, MMAPIO__REQUEST__OP_OPEN, &o) || !wt_raw_reply(h, &got, &err, &handle) || got != id || err)
        return 0;
    return handle;
}

static bool raw_wait(HANDLE h, uint64_t id, uint64_t handle, uint64_t offset,
                     uint32_t expected, int timeout_ms)
{
    Mmapio__Wait w = MMAPIO__WAIT__INIT;
    w.handle = handle;
    w.offset = offset;
    w.expected = expected;
    w.timeout_ms = timeout_ms;
    return wt_raw_op(h, id, MMAPIO__REQUEST__OP_WAIT, &w);
}

static bool raw_ping(HANDLE h, uint64_t id)
{
    Mmapio__Ping p = MMAPIO__PING__INIT;
    return wt_raw_op(h, id, MMAPIO__REQUEST__OP_PING, &p);
}

/* The next reply is request id's, with error err. */
static bool raw_expect(HANDLE h, uint64_t id, int err)
{
    uint64_t got = 0;
    int e = 1;
    return wt_raw_reply(h, &got, &e, NULL) && got == id && e == err;
}

/* A raw client holding WORD with `n` waits (ids 10..) parked on offset
 * 0, known parked (the Ping after them answered); NULL when not. */
static HANDLE raw_parked(const char *pipe, int n)
{
    HANDLE h = wt_raw_connect(pipe, "test_wait_win");
    uint64_t handle = h ? raw_hold(h, 2) : 0;
    bool ok = handle != 0;
    for (int i = 0; ok && i < n; i++)
        ok = raw_wait(h, 10 + (uint64_t)i, handle, 0, 0, LONG_MS);
    ok = ok && raw_ping(h, 3) && raw_expect(h, 3, 0);
    if (!ok && h)
        CloseHandle(h);
    return ok ? h : NULL;
}

/* ---- helpers on the library ---- */

static _Atomic uint32_t *word(mmapio_map *m, uint64_t offset)
{
    _Atomic uint32_t *w = NULL;
    CHECK(mmapio_atomic_u32(m, offset, &w) == MMAPIO_OK);
    return w;
}

struct waiter {
    mmapio_map *m;
    uint64_t offset;
    uint32_t expected;
    int rc;
    HANDLE thread;
};

static DWORD WINAPI wait_thread(void *arg)
{
    struct waiter *x = arg;
    x->rc = mmapio_wait_u32(x->m, x->offset, x->expected, LONG_MS);
    return 0;
}

static bool wait_start(struct waiter *x, mmapio_map *m, uint64_t offset, uint32_t expected)
{
    *x = (struct waiter){.m = m, .offset = offset, .expected = expected, .rc = 1};
    x->thread = CreateThread(NULL, 0, wait_thread, x, 0, NULL);
    return x->thread != NULL;
}

static int wait_end(struct waiter *x)
{
    CHECK(WaitForSingleObject(x->thread, 2 * LONG_MS) == WAIT_OBJECT_0);
    CloseHandle(x->thread);
    return x->rc;
}

/* Wakes 1 on m until one waiter was woken (it may not be parked yet):
 * whether one was, within a minute and a half of tries. */
static bool wake_one(mmapio_map *m, uint64_t offset)
{
    for (int i = 0; i < 9000; i++) {
        int n = mmapio_wake_u32(m, offset, 1);
        if (n != 0)
            return n == 1;
        Sleep(10);
    }
    return false;
}

static uint32_t clients_now(mmapio_client *c)
{
    mmapio_status *st = NULL;
    uint32_t n = 0;
    if (mmapio_admin_status(c, &st) == MMAPIO_OK)
        n = st->clients;
    mmapio_status_free(st);
    return n;
}

/* ---- the cases ---- */

/* A raw waiter, parked; another process stores 1 and wakes 1. */
static void woken_across(const char *pipe, mmapio_map *m)
{
    atomic_store(word(m, 0), 0);
    HANDLE h = raw_parked(pipe, 1);
    CHECK(h != NULL);
    if (!h)
        return;
    CHECK(wt_run_self("waker %s", pipe) == 0); /* it woke 1 */
    CHECK(raw_expect(h, 10, 0));
    CHECK(atomic_load(word(m, 0)) == 1);
    CloseHandle(h);
}

static int waker(const char *pipe)
{
    mmapio_client *c = NULL;
    mmapio_map *m = NULL;
    if (mmapio_connect(pipe, &c) || mmapio_anon_open(c, WORD, &m))
        return 2;
    atomic_store(word(m, 0), 1);
    int n = mmapio_wake_u32(m, 0, 1);
    mmapio_unmap(m);
    mmapio_disconnect(c);
    return n == 1 ? 0 : 3;
}

/* Store, then wake; wait while the word is what it was. Odd values are
 * the child's turn to be seen, even the parent's. */
static int pingpong(mmapio_map *m, bool child, LARGE_INTEGER *second)
{
    _Atomic uint32_t *w = word(m, 0);
    int timeouts = 0;
    for (uint32_t k = 0; k < ROUNDS; k++) {
        if (k == 1 && second) /* the other process is up by now */
            QueryPerformanceCounter(second);
        uint32_t mine = 2 * k + (child ? 1 : 2), theirs = 2 * k + (child ? 2 : 1);
        if (child) {
            atomic_store(w, mine);
            mmapio_wake_u32(m, 0, 1);
        }
        for (uint32_t v; (v = atomic_load(w)) != theirs;) {
            int r = mmapio_wait_u32(m, 0, v, LONG_MS);
            timeouts += r == MMAPIO_E_TIMED_OUT;
            if (r != MMAPIO_OK && r != MMAPIO_E_TIMED_OUT)
                return 4;
            if (timeouts)
                return 5;
        }
        if (!child) {
            atomic_store(w, mine);
            mmapio_wake_u32(m, 0, 1);
        }
    }
    return 0;
}

static int pong(const char *pipe)
{
    mmapio_client *c = NULL;
    mmapio_map *m = NULL;
    if (mmapio_connect(pipe, &c) || mmapio_anon_open(c, WORD, &m))
        return 2;
    int r = pingpong(m, true, NULL);
    mmapio_unmap(m);
    mmapio_disconnect(c);
    return r;
}

/* The ping-pong's pace, beside its floor (pings: a round trip each),
 * printed, never judged. */
static void ping_pong(const char *pipe, mmapio_client *c, mmapio_map *m)
{
    LARGE_INTEGER f, t0, t1, t2;
    QueryPerformanceFrequency(&f);
    atomic_store(word(m, 0), 0);
    char cmd[3 * MAX_PATH];
    char self[MAX_PATH];
    GetModuleFileNameA(NULL, self, sizeof(self));
    snprintf(cmd, sizeof(cmd), "\"%s\" pong %s", self, pipe);
    PROCESS_INFORMATION pi;
    CHECK(wt_spawn(cmd, NULL, NULL, 0, &pi));
    CHECK(pingpong(m, false, &t0) == 0);
    QueryPerformanceCounter(&t1);
    CHECK(wt_wait(&pi, 2 * LONG_MS) == 0);
    CHECK(atomic_load(word(m, 0)) == 2 * ROUNDS);
    QueryPerformanceCounter(&t2);
    for (int i = 0; i < 2 * ROUNDS; i++)
        CHECK(mmapio_ping(c) == MMAPIO_OK);
    LARGE_INTEGER t3;
    QueryPerformanceCounter(&t3);
    printf("ping-pong: %d hand-overs (store, wake, wait) in %.1f us each; "
           "floor, a ping: %.1f us\n", 2 * (ROUNDS - 1),
           (double)(t1.QuadPart - t0.QuadPart) * 1e6 / (double)f.QuadPart / (2 * (ROUNDS - 1)),
           (double)(t3.QuadPart - t2.QuadPart) * 1e6 / (double)f.QuadPart / (2 * ROUNDS));
}

static void simple(mmapio_map *m)
{
    atomic_store(word(m, 0), 7);
    CHECK(mmapio_wait_u32(m, 0, 5, LONG_MS) == MMAPIO_OK); /* differs: at once */
    CHECK(mmapio_wait_u32(m, 0, 7, 50) == MMAPIO_E_TIMED_OUT);
    CHECK(strstr(mmapio_last_error(), "deadline") != NULL); /* the daemon's words */
    CHECK(mmapio_wait_u32(m, 0, 7, 0) == MMAPIO_E_TIMED_OUT);
    CHECK(mmapio_wake_u32(m, 0, 1) == 0);
    CHECK(mmapio_wake_u32(m, 4, 100) == 0);
    CHECK(mmapio_wake_u32(m, 0, 0) == MMAPIO_E_INVALID_ARGUMENT);
    /* The library's own checks. */
    CHECK(mmapio_wait_u32(m, 2, 0, 0) == MMAPIO_E_MISALIGNED);
    CHECK(mmapio_wait_u32(m, SIZE, 0, 0) == MMAPIO_E_OUT_OF_BOUNDS);
    CHECK(mmapio_wake_u32(m, SIZE - 2, 1) == MMAPIO_E_MISALIGNED);
    CHECK(mmapio_wake_u32(m, SIZE, 1) == MMAPIO_E_OUT_OF_BOUNDS);
}

/* The daemon's own checks, in raw frames. */
static void raw_refused(const char *pipe)
{
    HANDLE h = wt_raw_connect(pipe, "test_wait_win");
    uint64_t handle = h ? raw_hold(h, 2) : 0;
    CHECK(handle != 0);
    if (!handle) {
        if (h)
            CloseHandle(h);
        return;
    }
    CHECK(raw_wait(h, 20, handle + 1000, 0, 0, 0) && raw_expect(h, 20, MMAPIO_E_NOT_FOUND));
    CHECK(raw_wait(h, 21, handle, 2, 0, 0) && raw_expect(h, 21, MMAPIO_E_MISALIGNED));
    CHECK(raw_wait(h, 22, handle, SIZE, 0, 0) && raw_expect(h, 22, MMAPIO_E_OUT_OF_BOUNDS));
    CHECK(raw_wait(h, 23, handle, UINT64_MAX - 3, 0, 0) &&
          raw_expect(h, 23, MMAPIO_E_OUT_OF_BOUNDS));
    Mmapio__Wake k = MMAPIO__WAKE__INIT;
    k.handle = handle + 1000;
    k.count = 1;
    CHECK(wt_raw_op(h, 24, MMAPIO__REQUEST__OP_WAKE, &k) &&
          raw_expect(h, 24, MMAPIO_E_NOT_FOUND));
    k.handle = handle;
    k.offset = SIZE;
    CHECK(wt_raw_op(h, 25, MMAPIO__REQUEST__OP_WAKE, &k) &&
          raw_expect(h, 25, MMAPIO_E_OUT_OF_BOUNDS));
    CloseHandle(h);
}

/* A wait whose mapping goes (its last holder closed, then deleted)
 * fails, saying so. */
static void entry_goes(const char *pipe)
{
    HANDLE h = wt_raw_connect(pipe, "test_wait_win");
    CHECK(h != NULL);
    if (!h)
        return;
    Mmapio__Open o = MMAPIO__OPEN__INIT;
    o.path = "goes";
    o.anonymous = true;
    o.create = true;
    o.size = SIZE;
    o.mode = MMAPIO__MODE__MODE_READ_WRITE;
    uint64_t got = 0, handle = 0;
    int err = -1;
    CHECK(wt_raw_op(h, 2, MMAPIO__REQUEST__OP_OPEN, &o) &&
          wt_raw_reply(h, &got, &err, &handle) && got == 2 && err == 0 && handle);
    CHECK(raw_wait(h, 10, handle, 0, 0, -1));
    Mmapio__Close cl = MMAPIO__CLOSE__INIT;
    cl.handle = handle;
    CHECK(wt_raw_op(h, 3, MMAPIO__REQUEST__OP_CLOSE, &cl) && raw_expect(h, 3, 0));
    Mmapio__Delete del = MMAPIO__DELETE__INIT;
    del.path = "goes";
    del.anonymous = true;
    CHECK(wt_raw_op(h, 4, MMAPIO__REQUEST__OP_DELETE_MAP, &del));
    CHECK(raw_expect(h, 10, MMAPIO_E_NOT_FOUND));
    CHECK(raw_expect(h, 4, 0));
    CloseHandle(h);
}

/* Three parked; wake 1 answers the oldest only; wake 2 the others. */
static void one_of_three(const char *pipe, mmapio_map *m)
{
    atomic_store(word(m, 0), 0);
    HANDLE h = raw_parked(pipe, 3);
    CHECK(h != NULL);
    if (!h)
        return;
    CHECK(mmapio_wake_u32(m, 0, 1) == 1);
    CHECK(raw_expect(h, 10, 0));
    CHECK(raw_ping(h, 4) && raw_expect(h, 4, 0)); /* 11 and 12 still parked */
    CHECK(mmapio_wake_u32(m, 0, 5) == 2);
    CHECK(raw_expect(h, 11, 0) && raw_expect(h, 12, 0));
    CloseHandle(h);
}

/* A read-only holder (of a file) waits and wakes. */
static void read_only(mmapio_client *c)
{
    mmapio_map *rw = NULL, *ro = NULL;
    CHECK(mmapio_open_or_create(c, "word.dat", SIZE, &rw) == MMAPIO_OK);
    CHECK(mmapio_open_ro(c, "word.dat", &ro) == MMAPIO_OK);
    if (!rw || !ro)
        return;
    atomic_store(word(rw, 8), 3);
    CHECK(mmapio_wait_u32(ro, 8, 4, LONG_MS) == MMAPIO_OK);
    CHECK(mmapio_wait_u32(ro, 8, 3, 0) == MMAPIO_E_TIMED_OUT);
    CHECK(mmapio_wake_u32(ro, 8, 1) == 0);
    struct waiter x;
    CHECK(wait_start(&x, ro, 8, 3));
    CHECK(wake_one(rw, 8));
    CHECK(wait_end(&x) == MMAPIO_OK);
    mmapio_unmap(ro);
    mmapio_unmap(rw);
}

/* A process killed with its wait parked: the wait goes with its session. */
static int parker(const char *pipe)
{
    HANDLE h = raw_parked(pipe, 1);
    HANDLE ev = OpenEventA(EVENT_MODIFY_STATE, FALSE, "Local\\mmapio-test-parked");
    if (!h || !ev || !SetEvent(ev))
        return 2;
    Sleep(INFINITE); /* killed */
    return 0;
}

static void dies_parked(const char *pipe, mmapio_client *c, mmapio_map *m)
{
    atomic_store(word(m, 0), 0);
    HANDLE ev = CreateEventA(NULL, TRUE, FALSE, "Local\\mmapio-test-parked");
    uint32_t before = clients_now(c);
    char cmd[3 * MAX_PATH], self[MAX_PATH];
    GetModuleFileNameA(NULL, self, sizeof(self));
    snprintf(cmd, sizeof(cmd), "\"%s\" parker %s", self, pipe);
    PROCESS_INFORMATION pi;
    CHECK(ev && wt_spawn(cmd, NULL, NULL, 0, &pi));
    CHECK(WaitForSingleObject(ev, LONG_MS) == WAIT_OBJECT_0);
    TerminateProcess(pi.hProcess, 9);
    CHECK(wt_wait(&pi, LONG_MS) == 9);
    /* Until the daemon has seen its session end. */
    for (int i = 0; i < 6000 && clients_now(c) != before; i++)
        Sleep(10);
    CHECK(clients_now(c) == before);
    CHECK(mmapio_wake_u32(m, 0, 1) == 0);
    CloseHandle(ev);
}

/* One thread waits on client c; another pings and opens on c meanwhile,
 * and wakes it through client d. With the lock held while waiting, the
 * ping would wait out the wait (which then ends TIMED_OUT). */
static void beside(const char *pipe, mmapio_client *c, mmapio_map *m)
{
    mmapio_client *d = NULL;
    mmapio_map *dm = NULL;
    CHECK(mmapio_connect(pipe, &d) == MMAPIO_OK && mmapio_anon_open(d, WORD, &dm) == MMAPIO_OK);
    if (!dm)
        return;
    atomic_store(word(m, 0), 0);
    struct waiter x;
    CHECK(wait_start(&x, m, 0, 0));
    bool woke = false;
    int pings = 0;
    for (int i = 0; i < 9000 && !woke; i++) {
        mmapio_map *o = NULL;
        pings += mmapio_ping(c) == MMAPIO_OK;
        CHECK(mmapio_anon_open(c, WORD, &o) == MMAPIO_OK);
        if (o)
            mmapio_unmap(o);
        int n = mmapio_wake_u32(dm, 0, 1);
        woke = n == 1;
        if (!woke)
            Sleep(10);
    }
    CHECK(woke && pings > 0);
    CHECK(wait_end(&x) == MMAPIO_OK);
    mmapio_unmap(dm);
    mmapio_disconnect(d);
}

/* Raw waits past the bound: BUSY at once, the rest parked; others are
 * answered meanwhile, and a wake of them all says how many were. */
static void flood(const char *pipe, mmapio_client *c, mmapio_map *m)
{
    enum { SENT = 40, BOUND = 32 };
    atomic_store(word(m, 0), 0);
    HANDLE h = wt_raw_connect(pipe, "test_wait_win");
    uint64_t handle = h ? raw_hold(h, 2) : 0;
    CHECK(handle != 0);
    if (!handle) {
        if (h)
            CloseHandle(h);
        return;
    }
    for (int i = 0; i < SENT; i++)
        CHECK(raw_wait(h, 10 + (uint64_t)i, handle, 0, 0, -1));
    CHECK(raw_ping(h, 3));
    for (int i = BOUND; i < SENT; i++)
        CHECK(raw_expect(h, 10 + (uint64_t)i, MMAPIO_E_BUSY));
    CHECK(raw_expect(h, 3, 0));
    CHECK(mmapio_ping(c) == MMAPIO_OK);
    CHECK(mmapio_wake_u32(m, 0, 1000) == BOUND);
    for (int i = 0; i < BOUND; i++)
        CHECK(raw_expect(h, 10 + (uint64_t)i, 0));
    CloseHandle(h);
}

int main(int argc, char **argv)
{
    wt_detail = mmapio_last_error;
    if (argc == 3 && !strcmp(argv[1], "waker"))
        return waker(argv[2]);
    if (argc == 3 && !strcmp(argv[1], "pong"))
        return pong(argv[2]);
    if (argc == 3 && !strcmp(argv[1], "parker"))
        return parker(argv[2]);
    if (argc != 2)
        return 2;
    struct wt_daemon d;
    bool up = wt_daemon_start(&d, argv[1], "wait", NULL, NULL);
    CHECK(up);
    mmapio_client *c = NULL;
    mmapio_map *m = NULL;
    if (up && mmapio_connect(d.pipe, &c) == MMAPIO_OK &&
        mmapio_anon_create(c, WORD, SIZE, &m) == MMAPIO_OK) {
        woken_across(d.pipe, m);
        ping_pong(d.pipe, c, m);
        simple(m);
        raw_refused(d.pipe);
        one_of_three(d.pipe, m);
        entry_goes(d.pipe);
        read_only(c);
        dies_parked(d.pipe, c, m);
        beside(d.pipe, c, m);
        flood(d.pipe, c, m);
    } else {
        CHECK(!"a client and its mapping");
    }
    if (m)
        mmapio_unmap(m);
    if (c)
        mmapio_disconnect(c);
    if (up) {
        CHECK(wt_daemon_stop(&d) == 0);
        wt_remove_tree(d.root);
    }
    return wt_report(argv[0]);
}
