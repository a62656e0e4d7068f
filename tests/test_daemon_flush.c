/*
 * test_daemon_flush: nothing is lost, and flushing never stalls the loop.
 *
 * The daemon flushes a file mapping when its last holder lets go, when a
 * writer's connection dies (SIGKILL: the writer had no chance to flush),
 * and when it stops (SIGTERM). Each test writes under policy NEVER, so
 * the library never flushes by itself and munmap does not write back: the
 * file is clean afterwards (cachestat, pagecache.h) only if the daemon
 * flushed it, and the bytes read back with read(2) are the ones written.
 *
 * Flushes run on worker threads: while a raw client's Flush request of a
 * 256 MiB dirty mapping is outstanding, another client's ping, stat
 * (mmapio_refresh) and open are answered, many times over.
 */
#include <criterion/criterion.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>

#include "harness.h"
#include "pagecache.h"
#include "peer.h"
#include "wire.h"

TestSuite(daemon_flush, .init = hz_setup, .fini = hz_teardown, .timeout = 90);

#define SYNC_BOUND_MS 5000

static void assert_dirty(const char *rel, const char *step)
{
    long n = pc_unsynced(hz_path(&hz, rel));
    cr_assert_gt(n, 0, "%s: %s is not dirty (cachestat: %ld); the test "
                 "cannot tell whether the daemon flushed", step, rel, n);
}

static void assert_synced_soon(const char *rel, const char *step)
{
    int64_t waited;
    long n = pc_wait_synced(hz_path(&hz, rel), SYNC_BOUND_MS, &waited);
    cr_assert_eq(n, 0, "%s: %ld pages of %s still dirty after %lld ms: the "
                 "daemon did not flush", step, n, rel, (long long)waited);
}

/* The file holds `byte` at [off, off+len). */
static void assert_file_bytes(const char *rel, uint64_t off, uint64_t len,
                              int byte)
{
    static char disk[1 << 20];
    long n = hz_read_file(hz_path(&hz, rel), disk, sizeof(disk));
    cr_assert_geq(n, (long)(off + len), "%s: %ld bytes", rel, n);
    for (uint64_t i = off; i < off + len; i++)
        cr_assert_eq((unsigned char)disk[i], (unsigned char)byte,
                     "%s byte %llu is %d, expected %d: a write was lost",
                     rel, (unsigned long long)i, disk[i], byte);
}

Test(daemon_flush, last_holder_unmap_flushes)
{
    PC_REQUIRE_CACHESTAT();
    mmapio_client *c = hz_client();
    mmapio_map *m;
    hz_assert_ok(mmapio_create_rw(c, "lh.dat", 1 << 20, &m));
    struct peer p;
    cr_assert_eq(peer_start(&p), 0);
    int w;
    hz_assert_ok(peer_open(&p, "lh.dat", false, MMAPIO_MODE_READ_WRITE, &w));
    hz_assert_ok(peer_write(&p, w, 0, 65536, 'p', NULL));
    hz_assert_ok(mmapio_update_region(m, 500000, (char[4096]){ 0 }, 4096));
    memset((char *)mmapio_as_mut_ptr(m) + 700000, 'q', 4096);

    /* The peer lets go first: this process still holds it. */
    struct peer_cmd cmd = { .op = PEER_UNMAP, .idx = w };
    struct peer_res res;
    cr_assert_eq(peer_call(&p, &cmd, &res), 0);
    hz_assert_ok(res.rc);
    assert_dirty("lh.dat", "before the last holder goes");

    /* The last holder goes: the daemon flushes what both wrote. */
    hz_assert_ok(mmapio_unmap(m));
    assert_synced_soon("lh.dat", "after the last unmap");
    assert_file_bytes("lh.dat", 0, 65536, 'p');
    assert_file_bytes("lh.dat", 700000, 4096, 'q');
    cr_assert_eq(peer_stop(&p), 0);
    mmapio_disconnect(c);
}

Test(daemon_flush, disconnect_of_last_holder_flushes)
{
    PC_REQUIRE_CACHESTAT();
    mmapio_client *c = hz_client();
    mmapio_map *m;
    hz_assert_ok(mmapio_create_rw(c, "dc.dat", 65536, &m));
    hz_assert_ok(mmapio_update_region(m, 0, (char[65536]){ 0 }, 65536));
    memset(mmapio_as_mut_ptr(m), 'd', 65536);
    assert_dirty("dc.dat", "before disconnecting");
    mmapio_disconnect(c); /* the map keeps the connection ... */
    assert_dirty("dc.dat", "after mmapio_disconnect, the map still held");
    mmapio_unmap(m);      /* ... until it goes */
    assert_synced_soon("dc.dat", "after the last holder's connection closed");
    assert_file_bytes("dc.dat", 0, 65536, 'd');
}

/* A peer that wrote with update_region and a raw pointer, then is killed
 * before it could flush or unmap. */
static void sigkilled_writer(bool others_hold)
{
    PC_REQUIRE_CACHESTAT();
    mmapio_client *c = hz_client();
    mmapio_map *m;
    hz_assert_ok(mmapio_create_rw(c, "k.dat", 1 << 20, &m));
    if (!others_hold) {
        hz_assert_ok(mmapio_unmap(m));
        assert_synced_soon("k.dat", "creation");
    }
    struct peer p;
    cr_assert_eq(peer_start(&p), 0);
    int w;
    hz_assert_ok(peer_open(&p, "k.dat", false, MMAPIO_MODE_READ_WRITE, &w));
    uint64_t pending = 0;
    hz_assert_ok(peer_write(&p, w, 4096, 200000, 'k', &pending));
    cr_assert_eq(pending, 200000, "policy NEVER: nothing flushed yet");
    hz_assert_ok(peer_ptr_write(&p, w, 600000, 10000, 'K'));
    assert_dirty("k.dat", "before the kill");

    peer_kill(&p);
    assert_synced_soon("k.dat", others_hold
                       ? "after SIGKILL of a writer (others still hold it)"
                       : "after SIGKILL of the only holder");
    assert_file_bytes("k.dat", 4096, 200000, 'k');
    assert_file_bytes("k.dat", 600000, 10000, 'K');
    if (others_hold) {
        /* and the survivor's mapping still works */
        char b;
        hz_assert_ok(mmapio_read_into(m, 4096, &b, 1));
        cr_assert_eq(b, 'k');
        hz_assert_ok(mmapio_unmap(m));
    }
    mmapio_disconnect(c);
}

Test(daemon_flush, sigkilled_writer_is_flushed_while_others_hold)
{
    sigkilled_writer(true);
}

Test(daemon_flush, sigkilled_sole_holder_is_flushed)
{
    sigkilled_writer(false);
}

Test(daemon_flush, daemon_stop_flushes)
{
    PC_REQUIRE_CACHESTAT();
    mmapio_client *c = hz_client();
    mmapio_map *a, *b;
    hz_assert_ok(mmapio_create_rw(c, "st1.dat", 1 << 20, &a));
    hz_assert_ok(mmapio_create_rw(c, "st2.dat", 65536, &b));
    struct peer p;
    cr_assert_eq(peer_start(&p), 0);
    int w;
    hz_assert_ok(peer_open(&p, "st1.dat", false, MMAPIO_MODE_READ_WRITE, &w));
    hz_assert_ok(peer_write(&p, w, 0, 300000, 's', NULL));
    memset(mmapio_as_mut_ptr(b), 't', 65536);
    assert_dirty("st1.dat", "before SIGTERM");
    assert_dirty("st2.dat", "before SIGTERM");

    /* Every holder still alive and holding: the daemon flushes them as
     * it stops, before it exits. */
    int st = hz_stop(&hz);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0,
              "mmapiod did not exit 0 on SIGTERM (status 0x%x)",
              (unsigned)st);
    long n1 = pc_unsynced(hz_path(&hz, "st1.dat"));
    long n2 = pc_unsynced(hz_path(&hz, "st2.dat"));
    cr_assert_eq(n1, 0, "st1.dat: %ld pages dirty after the daemon exited", n1);
    cr_assert_eq(n2, 0, "st2.dat: %ld pages dirty after the daemon exited", n2);
    assert_file_bytes("st1.dat", 0, 300000, 's');
    assert_file_bytes("st2.dat", 0, 65536, 't');
    cr_assert_eq(peer_stop(&p), 0);
    mmapio_unmap(b);
    mmapio_unmap(a);
    mmapio_disconnect(c);
}

/* ---- flushing never stalls the loop ----------------------------------- */

/* Raw open of an existing file, read-write: the handle, or fails. */
static uint64_t raw_open_handle(int fd, const char *path)
{
    Mmapio__Request req = MMAPIO__REQUEST__INIT;
    Mmapio__Open op = MMAPIO__OPEN__INIT;
    op.path = (char *)path;
    op.mode = MMAPIO__MODE__MODE_READ_WRITE;
    req.id = 2;
    req.op_case = MMAPIO__REQUEST__OP_OPEN;
    req.open = &op;
    cr_assert_eq(raw_send(fd, &req, -1), 0);
    Mmapio__ServerMessage *m;
    int got = -1;
    cr_assert_eq(raw_recv(fd, 5000, &m, &got), 0);
    cr_assert_eq(m->reply->error, 0, "raw open of %s: %d", path,
                 m->reply->error);
    cr_assert_eq(m->reply->result_case, MMAPIO__REPLY__RESULT_OPEN);
    uint64_t h = m->reply->open->handle;
    mmapio__server_message__free_unpacked(m, NULL);
    if (got >= 0)
        close(got);
    return h;
}

static int64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

enum { BIG = 256 << 20, FLUSH_ID = 4242 };

/* One round of another client's requests: ping, stat, open + unmap. */
static void b_round(mmapio_client *b, mmapio_map *small)
{
    hz_assert_ok(mmapio_ping(b));
    hz_assert_ok(mmapio_refresh(small));
    mmapio_map *o;
    hz_assert_ok(mmapio_open_ro(b, "small.dat", &o));
    hz_assert_ok(mmapio_unmap(o));
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

Test(daemon_flush, flush_runs_off_the_loop)
{
    PC_REQUIRE_CACHESTAT();
    /* A: makes 256 MiB dirty. */
    mmapio_client *a = hz_client();
    mmapio_map *big;
    hz_assert_ok(mmapio_create_rw(a, "big.dat", BIG, &big));
    volatile char *p = mmapio_as_mut_ptr(big);
    /* Another test's daemon may sync the whole file system meanwhile (a
     * syncfs for final flushes past their bound): written again then. */
    for (int round = 0;; round++) {
        for (size_t off = 0; off < BIG; off += 4096)
            p[off] = (char)((off >> 12) + (size_t)round);
        if (pc_unsynced(hz_path(&hz, "big.dat")) >= BIG / 4096 / 2)
            break;
        cr_assert_lt(round, 3, "256 MiB written, yet hardly any page dirty");
    }

    /* B: another client, holding a small file. */
    mmapio_client *b = hz_client();
    mmapio_map *small;
    hz_assert_ok(mmapio_create_rw(b, "small.dat", 4096, &small));

    /* R: a raw client that asks the daemon to flush big.dat. */
    int r = raw_connect(hz.sock);
    cr_assert_geq(r, 0);
    cr_assert_eq(raw_hello(r, WIRE_PROTOCOL), 0);
    uint64_t handle = raw_open_handle(r, "big.dat");

    Mmapio__Request req = MMAPIO__REQUEST__INIT;
    Mmapio__Flush fl = MMAPIO__FLUSH__INIT;
    fl.handle = handle;
    req.id = FLUSH_ID;
    req.op_case = MMAPIO__REQUEST__OP_FLUSH;
    req.flush = &fl;

    /* How long one round of B's takes with nothing else going on. */
    int64_t quiet_us[15];
    for (int i = 0; i < 15; i++) {
        int64_t s = now_us();
        b_round(b, small);
        quiet_us[i] = now_us() - s;
    }
    qsort(quiet_us, 15, sizeof(quiet_us[0]), cmp_i64);
    int64_t round_us = quiet_us[7];

    int64_t t0 = now_us();
    cr_assert_eq(raw_send(r, &req, -1), 0);
    int rounds = 0;
    int64_t worst_us = 0, t_reply = 0;
    for (;;) {
        struct pollfd pf = { .fd = r, .events = POLLIN };
        if (poll(&pf, 1, 0) > 0) {
            t_reply = now_us();
            break;
        }
        cr_assert_lt(now_us() - t0, 60 * 1000000LL,
                     "the flush was not answered within 60 s");
        int64_t s = now_us();
        b_round(b, small);
        int64_t d = now_us() - s;
        if (d > worst_us)
            worst_us = d;
        rounds++;
    }
    Mmapio__ServerMessage *m;
    cr_assert_eq(raw_recv(r, 5000, &m, NULL), 0);
    cr_assert_eq(m->reply->id, FLUSH_ID);
    cr_assert_eq(m->reply->error, 0, "the flush failed: %s",
                 m->reply->message ? m->reply->message : "");
    mmapio__server_message__free_unpacked(m, NULL);
    int64_t flush_ms = (t_reply - t0) / 1000;
    cr_log_info("flush of 256 MiB: %lld ms; meanwhile %d rounds of "
                "ping+stat+open by another client (%lld us each when "
                "quiet), worst %lld us", (long long)flush_ms, rounds,
                (long long)round_us, (long long)worst_us);

    /* The flush did flush. */
    long left = pc_unsynced(hz_path(&hz, "big.dat"));
    cr_assert_eq(left, 0, "%ld pages dirty after the Flush reply", left);

    /* A loop blocked in fdatasync answers at most the requests it read
     * before it started: one or two rounds. A free loop answers about
     * flush time / round time, if the flush lasts long enough to tell. */
    if (flush_ms * 1000 < 10 * round_us)
        cr_skip_test("the flush of 256 MiB took %lld ms on this disk, "
                     "hardly longer than one round of requests (%lld us): "
                     "too short to see whether other clients wait for it",
                     (long long)flush_ms, (long long)round_us);
    cr_assert_geq(rounds, 3,
                  "only %d rounds of another client's requests were "
                  "answered during a %lld ms flush: the loop waited for it",
                  rounds, (long long)flush_ms);
    cr_assert_lt(worst_us, 1000000,
                 "another client's round took %lld ms during the flush",
                 (long long)(worst_us / 1000));

    close(r);
    mmapio_unmap(small);
    mmapio_unmap(big);
    mmapio_disconnect(b);
    mmapio_disconnect(a);
}
