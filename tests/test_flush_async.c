/*
 * test_flush_async: mmapio_flush_async / mmapio_flush_range_async.
 *
 * The call returns at once; the callback runs later, from
 * mmapio_client_dispatch only, with MMAPIO_OK once the daemon's worker
 * has the data on disk (cachestat: the file is clean, pagecache.h).
 * Several flushes may be in flight and their replies may arrive while
 * another request waits for its own. Read-only, copy-on-write and
 * anonymous handles still get their callback (MMAPIO_OK), from dispatch.
 * A daemon that dies with flushes in flight: their callbacks run with
 * MMAPIO_E_DISCONNECTED at the next dispatch.
 */
#include <criterion/criterion.h>
#include <signal.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "pagecache.h"

TestSuite(flush_async, .init = hz_setup, .fini = hz_teardown, .timeout = 60);

#define MIB (1024ULL * 1024)
#define N_INFLIGHT 8

struct done {
    int calls;
    int result;
};

static void on_done(int result, void *user)
{
    struct done *d = user;
    d->calls++;
    d->result = result;
}

static mmapio_client *conn(const char *sock)
{
    mmapio_client *c;
    cr_assert_eq(mmapio_connect(sock, &c), MMAPIO_OK, "%s",
                 mmapio_last_error());
    return c;
}

/* Dispatches until *calls reaches want or 10 s passed. */
static void dispatch_until(mmapio_client *c, const int *calls, int want)
{
    for (int i = 0; i < 100 && *calls < want; i++)
        mmapio_client_dispatch(c, 100);
}

static void write_mib(mmapio_map *m, int byte)
{
    static uint8_t buf[MIB];
    memset(buf, byte, sizeof(buf));
    for (uint64_t off = 0; off < mmapio_len(m); off += MIB)
        cr_assert_eq(mmapio_update_region(m, off, buf, MIB), MMAPIO_OK);
}

Test(flush_async, callback_runs_from_dispatch_and_the_data_is_on_disk)
{
    PC_REQUIRE_CACHESTAT();
    mmapio_client *c = conn(hz.sock);
    mmapio_map *m;
    struct done d = { 0, 1 };
    cr_assert_eq(mmapio_create_rw(c, "f.bin", 4 * MIB, &m), MMAPIO_OK);
    write_mib(m, 0xab);
    cr_assert_gt(pc_unsynced(hz_path(&hz, "f.bin")), 0, "control: not dirty");
    cr_assert_eq(mmapio_flush_async(m, on_done, &d), MMAPIO_OK, "%s",
                 mmapio_last_error());
    cr_assert_eq(d.calls, 0, "the callback ran outside dispatch");
    cr_assert_eq(mmapio_ping(c), MMAPIO_OK); /* the reply may come meanwhile */
    cr_assert_eq(d.calls, 0, "the callback ran outside dispatch");
    dispatch_until(c, &d.calls, 1);
    cr_assert_eq(d.calls, 1, "the callback did not run");
    cr_assert_eq(d.result, MMAPIO_OK);
    cr_assert_eq(pc_unsynced(hz_path(&hz, "f.bin")), 0,
                 "the callback said OK but the file is dirty");
    mmapio_unmap(m);
    mmapio_disconnect(c);
}

Test(flush_async, several_in_flight_between_other_requests)
{
    PC_REQUIRE_CACHESTAT();
    mmapio_client *c = conn(hz.sock);
    mmapio_map *m;
    struct done d[N_INFLIGHT] = { { 0, 1 } };
    cr_assert_eq(mmapio_create_rw(c, "g.bin", N_INFLIGHT * MIB, &m),
                 MMAPIO_OK);
    write_mib(m, 0x11);
    int total = 0;
    for (int i = 0; i < N_INFLIGHT; i++) {
        d[i].result = 1;
        cr_assert_eq(mmapio_flush_range_async(m, (uint64_t)i * MIB, MIB,
                                              on_done, &d[i]), MMAPIO_OK);
        if (i % 2)
            cr_assert_eq(mmapio_ping(c), MMAPIO_OK);
    }
    for (int tries = 0; tries < 100 && total < N_INFLIGHT; tries++) {
        mmapio_client_dispatch(c, 100);
        total = 0;
        for (int i = 0; i < N_INFLIGHT; i++)
            total += d[i].calls;
    }
    for (int i = 0; i < N_INFLIGHT; i++) {
        cr_assert_eq(d[i].calls, 1, "flush %d: %d calls", i, d[i].calls);
        cr_assert_eq(d[i].result, MMAPIO_OK, "flush %d: %d", i, d[i].result);
    }
    cr_assert_eq(pc_unsynced(hz_path(&hz, "g.bin")), 0);
    mmapio_unmap(m);
    mmapio_disconnect(c);
}

Test(flush_async, read_only_cow_and_anonymous_still_call_back)
{
    cr_assert_eq(hz_write_file(hz_path(&hz, "r.bin"), "abc", 3), 0);
    mmapio_client *c = conn(hz.sock);
    mmapio_map *ro, *cow, *anon;
    struct done d[3] = { { 0, 1 }, { 0, 1 }, { 0, 1 } };
    cr_assert_eq(mmapio_open_ro(c, "r.bin", &ro), MMAPIO_OK);
    cr_assert_eq(mmapio_open_cow(c, "r.bin", &cow), MMAPIO_OK);
    cr_assert_eq(mmapio_anon_create(c, "a", 4096, &anon), MMAPIO_OK);
    cr_assert_eq(mmapio_flush_async(ro, on_done, &d[0]), MMAPIO_OK);
    cr_assert_eq(mmapio_flush_async(cow, on_done, &d[1]), MMAPIO_OK);
    cr_assert_eq(mmapio_flush_range_async(anon, 0, 4096, on_done, &d[2]),
                 MMAPIO_OK);
    cr_assert_eq(d[0].calls + d[1].calls + d[2].calls, 0);
    for (int i = 0; i < 50 && d[0].calls + d[1].calls + d[2].calls < 3; i++)
        mmapio_client_dispatch(c, 100);
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(d[i].calls, 1, "handle %d: %d calls", i, d[i].calls);
        cr_assert_eq(d[i].result, MMAPIO_OK, "handle %d: %d", i, d[i].result);
    }
    mmapio_unmap(ro);
    mmapio_unmap(cow);
    mmapio_unmap(anon);
    mmapio_disconnect(c);
}

Test(flush_async, bad_arguments_never_call_back)
{
    mmapio_client *c = conn(hz.sock);
    mmapio_map *m;
    struct done d = { 0, 1 };
    cr_assert_eq(mmapio_create_rw(c, "b.bin", 4096, &m), MMAPIO_OK);
    cr_assert_eq(mmapio_flush_async(NULL, on_done, &d),
                 MMAPIO_E_INVALID_ARGUMENT);
    cr_assert_eq(mmapio_flush_async(m, NULL, &d), MMAPIO_E_INVALID_ARGUMENT);
    cr_assert_eq(mmapio_flush_range_async(m, 4000, 97, on_done, &d),
                 MMAPIO_E_OUT_OF_BOUNDS);
    cr_assert_eq(mmapio_flush_range_async(m, 4097, 0, on_done, &d),
                 MMAPIO_E_OUT_OF_BOUNDS);
    cr_assert_eq(mmapio_flush_range_async(m, UINT64_MAX, 2, on_done, &d),
                 MMAPIO_E_OUT_OF_BOUNDS);
    mmapio_client_dispatch(c, 200);
    cr_assert_eq(d.calls, 0);
    mmapio_unmap(m);
    mmapio_disconnect(c);
}

/* Callbacks owed are bounded: past 32 (half the daemon's 64 requests read
 * ahead) the call says BUSY instead of risking a stall; a dispatch pays
 * the debt and the next call is taken again. */
Test(flush_async, owed_callbacks_are_bounded)
{
    mmapio_client *c = conn(hz.sock);
    mmapio_map *m;
    struct done d = { 0, 1 };
    cr_assert_eq(mmapio_anon_create(c, "many", 4096, &m), MMAPIO_OK);
    int ok = 0, r = MMAPIO_OK;
    for (int i = 0; i < 100 && r == MMAPIO_OK; i++)
        if ((r = mmapio_flush_async(m, on_done, &d)) == MMAPIO_OK)
            ok++;
    cr_assert_eq(r, MMAPIO_E_BUSY, "no bound: %d", r);
    cr_assert_eq(ok, 32, "%d taken before BUSY", ok);
    dispatch_until(c, &d.calls, ok);
    cr_assert_eq(d.calls, ok);
    cr_assert_eq(mmapio_flush_async(m, on_done, &d), MMAPIO_OK);
    dispatch_until(c, &d.calls, ok + 1);
    cr_assert_eq(d.calls, ok + 1);
    mmapio_unmap(m);
    mmapio_disconnect(c);
}

TestSuite(flush_async_death, .timeout = 60);

/* Its own daemon: the fixture's would have to survive. */
Test(flush_async_death, a_daemon_that_died_calls_back_disconnected)
{
    struct hz_daemon d;
    cr_assert_eq(hz_init(&d), 0);
    cr_assert_eq(hz_start(&d), 0);
    mmapio_client *c = conn(d.sock);
    mmapio_map *m;
    struct done done[3] = { { 0, 1 }, { 0, 1 }, { 0, 1 } };
    cr_assert_eq(mmapio_create_rw(c, "d.bin", MIB, &m), MMAPIO_OK);
    write_mib(m, 3);
    kill(d.pid, SIGSTOP); /* it reads nothing more, answers nothing */
    for (int i = 0; i < 3; i++)
        cr_assert_eq(mmapio_flush_async(m, on_done, &done[i]), MMAPIO_OK);
    kill(d.pid, SIGKILL);
    kill(d.pid, SIGCONT);
    int st;
    hz_wait_exit(d.pid, 5000, &st);
    d.pid = -1;
    int calls = 0, r = 0;
    for (int i = 0; i < 50 && calls < 3; i++) {
        r = mmapio_client_dispatch(c, 100);
        calls = done[0].calls + done[1].calls + done[2].calls;
    }
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(done[i].calls, 1, "flush %d: %d calls", i, done[i].calls);
        cr_assert_eq(done[i].result, MMAPIO_E_DISCONNECTED, "flush %d: %d", i,
                     done[i].result);
    }
    (void)r;
    cr_assert_eq(mmapio_client_dispatch(c, 0), MMAPIO_E_DISCONNECTED);
    struct done late = { 0, 1 };
    cr_assert_eq(mmapio_flush_async(m, on_done, &late), MMAPIO_E_DISCONNECTED);
    mmapio_unmap(m);
    mmapio_disconnect(c);
    hz_cleanup(&d);
}
