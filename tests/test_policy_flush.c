/*
 * test_policy_flush: the flush policy is the mapping's, and every holder in
 * every process obeys it.
 *
 * What a holder reports (mmapio_flush_policy_of) is the policy set at
 * creation or by the last mmapio_set_flush_policy from any read-write
 * holder, at once and without a refresh, in every process. What a holder
 * does is checked from outside: its pending bytes (per handle) and, with
 * cachestat(2) (pagecache.h), whether the file's pages are still dirty.
 * EveryBytes and EveryWrites hand their flush to the daemon exactly at the
 * write that reaches their threshold, not one write earlier or later, and
 * the daemon's workers put it on the disk within HANDOFF_BOUND_MS (stated
 * in include/mmapio.h as "at once, in the writer's turn": milliseconds on
 * an idle machine; the bound is generous for a loaded one), while the
 * writer never waits, not even for a stopped daemon; flush_range takes
 * off the counter only what it flushed. Always is durable when
 * update_region returns; Never and Manual wait for mmapio_flush. The
 * writes are made by a peer process (peer.h) so the policy it obeys is the
 * one another process chose. Counting costs no system call until the
 * threshold (seccomp, nosys.h). Timed flushing is in test_timed_flush.c.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "nosys.h"
#include "pagecache.h"
#include "peer.h"

TestSuite(policy_flush, .init = hz_setup, .fini = hz_teardown, .timeout = 60);

/* A threshold's flush, handed to the daemon, is on the disk by then. */
#define HANDOFF_BOUND_MS 5000

static const mmapio_flush_policy NEVER = { MMAPIO_FLUSH_NEVER, 0 };

static mmapio_map *create_with(mmapio_client *c, const char *path,
                               bool anonymous, uint64_t size,
                               mmapio_flush_policy pol)
{
    mmapio_options o;
    mmapio_options_init(&o);
    o.create = true;
    o.truncate = !anonymous;
    o.exclusive = anonymous;
    o.anonymous = anonymous;
    o.size = size;
    o.flush_policy = pol;
    mmapio_map *m = NULL;
    hz_assert_ok(mmapio_open(c, path, &o, &m));
    return m;
}

#define assert_policy(got, want_kind, want_value, who)                     \
    do {                                                                 \
        mmapio_flush_policy g_ = (got);                                  \
        cr_assert(g_.kind == (want_kind) &&                              \
                      (g_.value == (want_value) ||                       \
                       (want_kind) <= MMAPIO_FLUSH_ALWAYS),              \
                  "%s reports policy %d:%llu, expected %d:%llu", who,    \
                  (int)g_.kind, (unsigned long long)g_.value,            \
                  (int)(want_kind), (unsigned long long)(want_value));   \
    } while (0)

static void assert_peer_policy(struct peer *p, int idx,
                               mmapio_flush_kind kind, uint64_t value,
                               const char *who)
{
    mmapio_flush_policy pol;
    hz_assert_ok(peer_policy(p, idx, &pol));
    assert_policy(pol, kind, value, who);
}

static long unsynced(const char *rel)
{
    long n = pc_unsynced(hz_path(&hz, rel));
    cr_assert_geq(n, 0, "cachestat(%s): %s", rel, strerror((int)-n));
    return n;
}

/* cachestat is how these tests see the disk; a kernel without it (< 6.5)
 * leaves only the counters to check. */
static bool have_cachestat(void)
{
    struct pc_stat st;
    return pc_cachestat("/proc/self/exe", 0, 0, &st) != -ENOSYS;
}

/* ---- what every holder reports ---------------------------------------- */

Test(policy_flush, default_is_never_in_every_process)
{
    mmapio_client *c = hz_client();
    mmapio_map *m, *a;
    hz_assert_ok(mmapio_create_rw(c, "d.dat", 8192, &m));
    hz_assert_ok(mmapio_anon_create(c, "d", 8192, &a));
    assert_policy(mmapio_flush_policy_of(m), MMAPIO_FLUSH_NEVER, 0, "creator");
    assert_policy(mmapio_flush_policy_of(a), MMAPIO_FLUSH_NEVER, 0, "creator");

    struct peer p;
    cr_assert_eq(peer_start(&p), 0);
    int rw, ro, cow, an;
    hz_assert_ok(peer_open(&p, "d.dat", false, MMAPIO_MODE_READ_WRITE, &rw));
    hz_assert_ok(peer_open(&p, "d.dat", false, MMAPIO_MODE_READ_ONLY, &ro));
    hz_assert_ok(peer_open(&p, "d.dat", false, MMAPIO_MODE_COPY_ON_WRITE, &cow));
    hz_assert_ok(peer_open(&p, "d", true, MMAPIO_MODE_READ_WRITE, &an));
    assert_peer_policy(&p, rw, MMAPIO_FLUSH_NEVER, 0, "peer rw");
    assert_peer_policy(&p, ro, MMAPIO_FLUSH_NEVER, 0, "peer ro");
    assert_peer_policy(&p, cow, MMAPIO_FLUSH_NEVER, 0, "peer cow");
    assert_peer_policy(&p, an, MMAPIO_FLUSH_NEVER, 0, "peer anon");
    cr_assert_eq(peer_stop(&p), 0);
    mmapio_unmap(m);
    mmapio_unmap(a);
    mmapio_disconnect(c);
}

Test(policy_flush, creation_policy_is_the_mappings)
{
    mmapio_client *c = hz_client();
    mmapio_flush_policy eb = { MMAPIO_FLUSH_EVERY_BYTES, 8192 };
    mmapio_flush_policy ew = { MMAPIO_FLUSH_EVERY_WRITES, 5 };
    mmapio_map *m = create_with(c, "c.dat", false, 65536, eb);
    mmapio_map *a = create_with(c, "c", true, 65536, ew);
    assert_policy(mmapio_flush_policy_of(m), MMAPIO_FLUSH_EVERY_BYTES, 8192,
                  "creator");
    assert_policy(mmapio_flush_policy_of(a), MMAPIO_FLUSH_EVERY_WRITES, 5,
                  "creator");

    /* A second handle here, opened with the default options: it reports
     * the mapping's policy, and opening did not reset it. */
    mmapio_map *m2;
    hz_assert_ok(mmapio_open_ro(c, "c.dat", &m2));
    assert_policy(mmapio_flush_policy_of(m2), MMAPIO_FLUSH_EVERY_BYTES, 8192,
                  "second handle");

    struct peer p;
    cr_assert_eq(peer_start(&p), 0);
    int rw, ro, cow, an;
    hz_assert_ok(peer_open(&p, "c.dat", false, MMAPIO_MODE_READ_WRITE, &rw));
    hz_assert_ok(peer_open(&p, "c.dat", false, MMAPIO_MODE_READ_ONLY, &ro));
    hz_assert_ok(peer_open(&p, "c.dat", false, MMAPIO_MODE_COPY_ON_WRITE, &cow));
    hz_assert_ok(peer_open(&p, "c", true, MMAPIO_MODE_READ_WRITE, &an));
    assert_peer_policy(&p, rw, MMAPIO_FLUSH_EVERY_BYTES, 8192, "peer rw");
    assert_peer_policy(&p, ro, MMAPIO_FLUSH_EVERY_BYTES, 8192, "peer ro");
    assert_peer_policy(&p, cow, MMAPIO_FLUSH_EVERY_BYTES, 8192, "peer cow");
    assert_peer_policy(&p, an, MMAPIO_FLUSH_EVERY_WRITES, 5, "peer anon");
    cr_assert_eq(peer_stop(&p), 0);

    /* The policy outlives its holders while the anonymous mapping lives. */
    mmapio_unmap(a);
    hz_assert_ok(mmapio_anon_open(c, "c", &a));
    assert_policy(mmapio_flush_policy_of(a), MMAPIO_FLUSH_EVERY_WRITES, 5,
                  "reopened anon");
    mmapio_unmap(a);
    mmapio_unmap(m2);
    mmapio_unmap(m);
    mmapio_disconnect(c);
}

Test(policy_flush, set_policy_reaches_every_holder_at_once)
{
    mmapio_client *c = hz_client();
    mmapio_map *m = create_with(c, "s.dat", false, 65536, NEVER);
    mmapio_map *ro;
    hz_assert_ok(mmapio_open_ro(c, "s.dat", &ro));

    struct peer p;
    cr_assert_eq(peer_start(&p), 0);
    int prw, pro, pcow;
    hz_assert_ok(peer_open(&p, "s.dat", false, MMAPIO_MODE_READ_WRITE, &prw));
    hz_assert_ok(peer_open(&p, "s.dat", false, MMAPIO_MODE_READ_ONLY, &pro));
    hz_assert_ok(peer_open(&p, "s.dat", false, MMAPIO_MODE_COPY_ON_WRITE, &pcow));

    /* Here -> there: no refresh, no dispatch in the peer. */
    mmapio_flush_policy always = { MMAPIO_FLUSH_ALWAYS, 0 };
    hz_assert_ok(mmapio_set_flush_policy(m, always));
    assert_policy(mmapio_flush_policy_of(m), MMAPIO_FLUSH_ALWAYS, 0, "setter");
    assert_policy(mmapio_flush_policy_of(ro), MMAPIO_FLUSH_ALWAYS, 0,
                  "setter's ro handle");
    assert_peer_policy(&p, prw, MMAPIO_FLUSH_ALWAYS, 0, "peer rw");
    assert_peer_policy(&p, pro, MMAPIO_FLUSH_ALWAYS, 0, "peer ro");
    assert_peer_policy(&p, pcow, MMAPIO_FLUSH_ALWAYS, 0, "peer cow");

    /* There -> here, from the peer's read-write handle. */
    (void)mmapio_client_dispatch(c, 0); /* forget earlier events */
    struct peer_cmd cmd = { .op = PEER_SET_POLICY, .idx = prw,
                            .pol = { MMAPIO_FLUSH_EVERY_WRITES, 3 } };
    struct peer_res res;
    cr_assert_eq(peer_call(&p, &cmd, &res), 0);
    hz_assert_ok(res.rc);
    assert_policy(mmapio_flush_policy_of(m), MMAPIO_FLUSH_EVERY_WRITES, 3,
                  "first process rw");
    assert_policy(mmapio_flush_policy_of(ro), MMAPIO_FLUSH_EVERY_WRITES, 3,
                  "first process ro");
    /* and the change reached this holder as an event too */
    int n = mmapio_client_dispatch(c, 5000);
    cr_assert_geq(n, 1, "no event after another process changed the policy "
                  "(dispatch: %d)", n);

    cmd.pol = (mmapio_flush_policy){ MMAPIO_FLUSH_EVERY_MILLIS, 250 };
    cr_assert_eq(peer_call(&p, &cmd, &res), 0);
    hz_assert_ok(res.rc);
    assert_policy(mmapio_flush_policy_of(m), MMAPIO_FLUSH_EVERY_MILLIS, 250,
                  "first process rw");
    cmd.pol = (mmapio_flush_policy){ MMAPIO_FLUSH_MANUAL, 0 };
    cr_assert_eq(peer_call(&p, &cmd, &res), 0);
    hz_assert_ok(res.rc);
    assert_policy(mmapio_flush_policy_of(ro), MMAPIO_FLUSH_MANUAL, 0,
                  "first process ro");

    cr_assert_eq(peer_stop(&p), 0);
    mmapio_unmap(ro);
    mmapio_unmap(m);
    mmapio_disconnect(c);
}

Test(policy_flush, set_policy_refusals)
{
    mmapio_client *c = hz_client();
    mmapio_flush_policy eb = { MMAPIO_FLUSH_EVERY_BYTES, 4096 };
    mmapio_map *m = create_with(c, "r.dat", false, 8192, eb);
    mmapio_map *ro, *cow;
    hz_assert_ok(mmapio_open_ro(c, "r.dat", &ro));
    hz_assert_ok(mmapio_open_cow(c, "r.dat", &cow));
    mmapio_flush_policy always = { MMAPIO_FLUSH_ALWAYS, 0 };

    hz_assert_ret(mmapio_set_flush_policy(ro, always), MMAPIO_E_INVALID_MODE);
    hz_assert_ret(mmapio_set_flush_policy(cow, always), MMAPIO_E_INVALID_MODE);

    const mmapio_flush_policy bad[] = {
        { MMAPIO_FLUSH_EVERY_BYTES, 0 },
        { MMAPIO_FLUSH_EVERY_WRITES, 0 },
        { MMAPIO_FLUSH_EVERY_MILLIS, 0 },
        { (mmapio_flush_kind)6, 1 },
        { (mmapio_flush_kind)99, 1 },
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        hz_assert_ret(mmapio_set_flush_policy(m, bad[i]),
                      MMAPIO_E_INVALID_ARGUMENT);
        mmapio_options o;
        mmapio_options_init(&o);
        o.create = true;
        o.size = 4096;
        o.flush_policy = bad[i];
        mmapio_map *x = NULL;
        hz_assert_ret(mmapio_open(c, "bad.dat", &o, &x),
                      MMAPIO_E_INVALID_ARGUMENT);
        cr_assert_null(x);
    }
    /* nothing changed, for anyone */
    assert_policy(mmapio_flush_policy_of(m), MMAPIO_FLUSH_EVERY_BYTES, 4096,
                  "rw");
    assert_policy(mmapio_flush_policy_of(ro), MMAPIO_FLUSH_EVERY_BYTES, 4096,
                  "ro");
    cr_assert_eq(hz_file_size(hz_path(&hz, "bad.dat")), -ENOENT,
                 "an open with an invalid policy created the file");
    hz_assert_ok(mmapio_ping(c));
    mmapio_unmap(cow);
    mmapio_unmap(ro);
    mmapio_unmap(m);
    mmapio_disconnect(c);
}

/* ---- what every holder does ------------------------------------------- */

/* Peer write of len bytes at off; checks its pending count afterwards. */
static void peer_write_expect(struct peer *p, int idx, uint64_t off,
                              uint64_t len, uint64_t want_pending,
                              const char *step)
{
    uint64_t pending = 0;
    hz_assert_ok(peer_write(p, idx, off, len, 'a' + (int)(off % 26), &pending));
    cr_assert_eq(pending, want_pending,
                 "%s: peer's pending_bytes %llu after the write, expected %llu",
                 step, (unsigned long long)pending,
                 (unsigned long long)want_pending);
}

/* dirty: the file has dirty pages now. Else: the file is clean within
 * HANDOFF_BOUND_MS (the daemon flushes a threshold off the writer's
 * thread). */
static void expect_dirty(const char *rel, bool dirty, const char *step)
{
    if (!have_cachestat())
        return;
    if (dirty) {
        long n = unsynced(rel);
        cr_assert_gt(n, 0, "%s: the file is already clean: something "
                     "flushed before the threshold", step);
        return;
    }
    int64_t waited;
    long n = pc_wait_synced(hz_path(&hz, rel), HANDOFF_BOUND_MS, &waited);
    cr_assert_eq(n, 0, "%s: %ld pages still dirty %lld ms later: the write "
                 "that reached the threshold did not flush", step, n,
                 (long long)waited);
}

/* Synchronous flushes (ALWAYS, mmapio_flush): clean when the call returns. */
static void expect_clean_now(const char *rel, const char *step)
{
    if (!have_cachestat())
        return;
    long n = unsynced(rel);
    cr_assert_eq(n, 0, "%s: %ld pages still dirty when the call returned",
                 step, n);
}

Test(policy_flush, every_bytes_flushes_exactly_at_threshold)
{
    mmapio_client *c = hz_client();
    mmapio_flush_policy eb = { MMAPIO_FLUSH_EVERY_BYTES, 10000 };
    mmapio_map *m = create_with(c, "eb.dat", false, 65536, eb);
    struct peer p;
    cr_assert_eq(peer_start(&p), 0);
    int w;
    hz_assert_ok(peer_open(&p, "eb.dat", false, MMAPIO_MODE_READ_WRITE, &w));

    char step[64];
    /* 9 x 1000 bytes: below; the 10th reaches 10000 exactly. */
    for (int i = 0; i < 9; i++) {
        snprintf(step, sizeof(step), "write %d of 1000 bytes", i + 1);
        peer_write_expect(&p, w, (uint64_t)i * 4096, 1000,
                          (uint64_t)(i + 1) * 1000, step);
        expect_dirty("eb.dat", true, step);
    }
    peer_write_expect(&p, w, 9 * 4096, 1000, 0, "write 10 (10000 bytes)");
    expect_dirty("eb.dat", false, "write 10 (10000 bytes)");

    /* Crossing rather than hitting: 3 x 3000 below, the 4th crosses. */
    for (int i = 0; i < 3; i++) {
        snprintf(step, sizeof(step), "write %d of 3000 bytes", i + 1);
        peer_write_expect(&p, w, (uint64_t)i * 8192, 3000,
                          (uint64_t)(i + 1) * 3000, step);
        expect_dirty("eb.dat", true, step);
    }
    peer_write_expect(&p, w, 40000, 3000, 0, "write 4 (12000 bytes)");
    expect_dirty("eb.dat", false, "write 4 (12000 bytes)");

    /* One write larger than the threshold flushes at once. */
    peer_write_expect(&p, w, 0, 20000, 0, "a 20000-byte write");
    expect_dirty("eb.dat", false, "a 20000-byte write");

    /* Counters are per handle: this process's 9999 bytes and the peer's
     * 1 byte are each below the threshold; nothing flushes. */
    hz_assert_ok(mmapio_update_region(m, 100, (char[9999]){ 1 }, 9999));
    cr_assert_eq(mmapio_pending_bytes(m), 9999);
    peer_write_expect(&p, w, 30000, 1, 1, "peer's 1 byte");
    expect_dirty("eb.dat", true, "9999 + 1 bytes in two handles");
    cr_assert_eq(mmapio_pending_bytes(m), 9999,
                 "another handle's write changed this handle's counter");
    /* this handle's next byte reaches its own threshold */
    hz_assert_ok(mmapio_update_region(m, 20000, "x", 1));
    cr_assert_eq(mmapio_pending_bytes(m), 0);
    expect_dirty("eb.dat", false, "this handle's 10000th byte");

    cr_assert_eq(peer_stop(&p), 0);
    mmapio_unmap(m);
    mmapio_disconnect(c);
}

Test(policy_flush, every_writes_flushes_exactly_at_threshold)
{
    mmapio_client *c = hz_client();
    mmapio_map *m = create_with(c, "ew.dat", false, 65536, NEVER);
    struct peer p;
    cr_assert_eq(peer_start(&p), 0);
    int w;
    hz_assert_ok(peer_open(&p, "ew.dat", false, MMAPIO_MODE_READ_WRITE, &w));
    /* Chosen after the peer opened: the peer obeys the change. */
    mmapio_flush_policy ew = { MMAPIO_FLUSH_EVERY_WRITES, 4 };
    hz_assert_ok(mmapio_set_flush_policy(m, ew));

    char step[64];
    for (int round = 0; round < 3; round++) {
        for (int i = 0; i < 3; i++) {
            snprintf(step, sizeof(step), "round %d, write %d", round, i + 1);
            /* sizes vary: only the number of writes counts */
            uint64_t len = i == 1 ? 30000 : 100;
            uint64_t before = 0;
            for (int k = 0; k < i; k++)
                before += k == 1 ? 30000 : 100;
            peer_write_expect(&p, w, (uint64_t)i * 100, len, before + len,
                              step);
            expect_dirty("ew.dat", true, step);
        }
        snprintf(step, sizeof(step), "round %d, write 4", round);
        peer_write_expect(&p, w, 50000, 100, 0, step);
        expect_dirty("ew.dat", false, step);
    }
    cr_assert_eq(peer_stop(&p), 0);
    mmapio_unmap(m);
    mmapio_disconnect(c);
}

Test(policy_flush, always_is_durable_when_update_region_returns)
{
    mmapio_client *c = hz_client();
    mmapio_flush_policy always = { MMAPIO_FLUSH_ALWAYS, 0 };
    mmapio_map *m = create_with(c, "al.dat", false, 1 << 20, always);
    struct peer p;
    cr_assert_eq(peer_start(&p), 0);
    int w;
    hz_assert_ok(peer_open(&p, "al.dat", false, MMAPIO_MODE_READ_WRITE, &w));

    /* Aligned, unaligned, across a page boundary, large. */
    const struct { uint64_t off, len; } writes[] = {
        { 0, 4096 }, { 5000, 10 }, { 8190, 20 }, { 65536 + 1, 200000 },
        { (1 << 20) - 1, 1 },
    };
    char step[64];
    for (size_t i = 0; i < sizeof(writes) / sizeof(writes[0]); i++) {
        snprintf(step, sizeof(step), "write at %llu, %llu bytes",
                 (unsigned long long)writes[i].off,
                 (unsigned long long)writes[i].len);
        peer_write_expect(&p, w, writes[i].off, writes[i].len, 0, step);
        expect_clean_now("al.dat", step);
    }
    /* the same for this process's handle */
    for (int i = 0; i < 20; i++) {
        hz_assert_ok(mmapio_update_region(m, (uint64_t)i * 12345, "abc", 3));
        expect_clean_now("al.dat", "this process's write");
    }
    char disk[128];
    cr_assert_eq(hz_read_file(hz_path(&hz, "al.dat"), disk, 128), 128);
    cr_assert_eq(memcmp(disk, "abc", 3), 0);
    cr_assert_eq(memcmp(disk + 100, "aaaa", 4), 0); /* the peer's first */

    /* Control: the same write under NEVER leaves the page dirty, so the
     * checks above could see a missing flush. */
    hz_assert_ok(mmapio_set_flush_policy(m, NEVER));
    peer_write_expect(&p, w, 0, 4096, 4096, "control write under NEVER");
    expect_dirty("al.dat", true, "control write under NEVER");

    cr_assert_eq(peer_stop(&p), 0);
    mmapio_unmap(m);
    mmapio_disconnect(c);
}

static void accumulate_until_flush(mmapio_flush_kind kind)
{
    mmapio_client *c = hz_client();
    mmapio_flush_policy pol = { kind, 0 };
    /* The sentinel's inode dirty before the file's: the kernel's own
     * writeback (under another test's dirty pages) takes the oldest dirty
     * inode first, so it reaches the sentinel before n.dat. */
    cr_assert_eq(pc_sentinel_dirty(hz_path(&hz, "sentinel.dat"), 50), 0);
    mmapio_map *m = create_with(c, "n.dat", false, 1 << 20, pol);
    struct peer p;
    cr_assert_eq(peer_start(&p), 0);
    int w;
    hz_assert_ok(peer_open(&p, "n.dat", false, MMAPIO_MODE_READ_WRITE, &w));
    /* Nothing flushes them meanwhile (also the control for the timing
     * tests: pages this fresh are not written back by the kernel). A
     * file beside it, written alike but unknown to the daemon, tells a
     * flush of the whole file system (another test's daemon's syncfs, the
     * kernel) from one of the daemon's: then the round is tried again. */
    for (int round = 0;; round++) {
        cr_assert_eq(pc_sentinel_dirty(hz_path(&hz, "sentinel.dat"), 50), 0);
        for (int i = 0; i < 50; i++)
            peer_write_expect(&p, w, (uint64_t)i * 4096, 4096,
                              (uint64_t)(50 * round + i + 1) * 4096,
                              "accumulating");
        pc_sleep_ms(1000);
        if (!have_cachestat() || unsynced("n.dat") >= 50)
            break;
        if (round < 3 && unsynced("sentinel.dat") < 50)
            continue;
        cr_assert_fail("pages of a %s mapping were flushed without a request",
                       kind == MMAPIO_FLUSH_NEVER ? "NEVER" : "MANUAL");
    }
    struct peer_cmd cmd = { .op = PEER_FLUSH, .idx = w };
    struct peer_res res;
    cr_assert_eq(peer_call(&p, &cmd, &res), 0);
    hz_assert_ok(res.rc);
    cr_assert_eq(res.pending, 0, "mmapio_flush left pending_bytes at %llu",
                 (unsigned long long)res.pending);
    expect_clean_now("n.dat", "after mmapio_flush");
    cr_assert_eq(peer_stop(&p), 0);
    mmapio_unmap(m);
    mmapio_disconnect(c);
}

Test(policy_flush, never_accumulates_until_flush)
{
    accumulate_until_flush(MMAPIO_FLUSH_NEVER);
}

Test(policy_flush, manual_accumulates_until_flush)
{
    accumulate_until_flush(MMAPIO_FLUSH_MANUAL);
}

Test(policy_flush, anonymous_mappings_count_the_same)
{
    mmapio_client *c = hz_client();
    mmapio_flush_policy eb = { MMAPIO_FLUSH_EVERY_BYTES, 4096 };
    mmapio_map *m = create_with(c, "an", true, 65536, eb);
    struct peer p;
    cr_assert_eq(peer_start(&p), 0);
    int w;
    hz_assert_ok(peer_open(&p, "an", true, MMAPIO_MODE_READ_WRITE, &w));
    for (int i = 1; i <= 4; i++)
        peer_write_expect(&p, w, 0, 1000, (uint64_t)i * 1000, "anon EB");
    peer_write_expect(&p, w, 0, 1000, 0, "anon EB, crossing 4096");

    mmapio_flush_policy ew = { MMAPIO_FLUSH_EVERY_WRITES, 2 };
    hz_assert_ok(mmapio_set_flush_policy(m, ew));
    peer_write_expect(&p, w, 0, 10, 10, "anon EW, write 1");
    peer_write_expect(&p, w, 0, 10, 0, "anon EW, write 2");
    mmapio_flush_policy always = { MMAPIO_FLUSH_ALWAYS, 0 };
    hz_assert_ok(mmapio_set_flush_policy(m, always));
    peer_write_expect(&p, w, 0, 10, 0, "anon ALWAYS");
    hz_assert_ok(mmapio_set_flush_policy(m, NEVER));
    peer_write_expect(&p, w, 0, 10, 10, "anon NEVER");
    cr_assert_eq(peer_stop(&p), 0);
    mmapio_unmap(m);
    mmapio_disconnect(c);
}

/* ---- counting costs no system call ------------------------------------ */

struct count_arg {
    const char *path;
    mmapio_flush_policy pol;
    int writes;       /* under the filter */
    int pre_writes;   /* before it */
    mmapio_map *m;
};

static int count_setup(void *arg)
{
    struct count_arg *a = arg;
    mmapio_client *c;
    if (mmapio_connect(hz.sock, &c) != MMAPIO_OK)
        return 50;
    mmapio_options o;
    mmapio_options_init(&o);
    o.create = true;
    o.size = 1 << 20;
    o.flush_policy = a->pol;
    if (mmapio_open(c, a->path, &o, &a->m) != MMAPIO_OK)
        return 51;
    if (mmapio_flush_policy_of(a->m).kind != a->pol.kind)
        return 52;
    uint8_t buf[64] = { 0 };
    for (int i = 0; i < a->pre_writes; i++)
        if (mmapio_update_region(a->m, 0, buf, sizeof(buf)) != MMAPIO_OK)
            return 53;
    return 0;
}

static int count_body(void *arg)
{
    struct count_arg *a = arg;
    uint8_t buf[64];
    memset(buf, 7, sizeof(buf));
    for (int i = 0; i < a->writes; i++)
        if (mmapio_update_region(a->m, ((uint64_t)i * 4096) % (1 << 20), buf,
                                 sizeof(buf)) != MMAPIO_OK)
            return 1;
    return 0;
}

static struct nosys_result count_run(const char *path, mmapio_flush_kind kind,
                                     uint64_t value, int pre, int writes)
{
    struct count_arg a = { path, { kind, value }, writes, pre, NULL };
    return nosys_run(count_setup, count_body, &a, 30000);
}

Test(policy_flush, counting_makes_no_syscall_until_threshold)
{
    /* Far below the threshold: 20000 writes, no system call. */
    struct {
        const char *path;
        mmapio_flush_kind kind;
        uint64_t value;
        int pre;
    } quiet[] = {
        { "q1.dat", MMAPIO_FLUSH_EVERY_BYTES, UINT64_C(1) << 40, 0 },
        { "q2.dat", MMAPIO_FLUSH_EVERY_WRITES, UINT64_C(1) << 40, 0 },
        { "q3.dat", MMAPIO_FLUSH_MANUAL, 0, 0 },
        /* EveryMillis: the first write since the last timed flush tells
         * the daemon (made before the filter); the next ones say nothing */
        { "q4.dat", MMAPIO_FLUSH_EVERY_MILLIS, 600000, 1 },
    };
    for (size_t i = 0; i < sizeof(quiet) / sizeof(quiet[0]); i++) {
        struct nosys_result r = count_run(quiet[i].path, quiet[i].kind,
                                          quiet[i].value, quiet[i].pre, 20000);
        cr_assert_eq(r.syscall_nr, -1,
                     "policy %d: update_region below the threshold made "
                     "system call %ld", (int)quiet[i].kind, r.syscall_nr);
        cr_assert(WIFEXITED(r.status) && WEXITSTATUS(r.status) == 0,
                  "policy %d: child status 0x%x", (int)quiet[i].kind,
                  (unsigned)r.status);
    }
    /* The write that reaches the threshold does flush (a system call):
     * the filter would have seen it. EveryBytes(64 * 10): the 10th. */
    struct nosys_result r = count_run("t1.dat", MMAPIO_FLUSH_EVERY_BYTES,
                                      640, 9, 1);
    cr_assert_neq(r.syscall_nr, -1,
                  "the threshold write of EveryBytes made no system call "
                  "(status 0x%x)", (unsigned)r.status);
    r = count_run("t2.dat", MMAPIO_FLUSH_EVERY_WRITES, 10, 9, 1);
    cr_assert_neq(r.syscall_nr, -1,
                  "the threshold write of EveryWrites made no system call "
                  "(status 0x%x)", (unsigned)r.status);
    /* and one write short of it does not */
    r = count_run("t3.dat", MMAPIO_FLUSH_EVERY_WRITES, 10, 8, 1);
    cr_assert_eq(r.syscall_nr, -1, "the 9th of EveryWrites(10) made system "
                 "call %ld", r.syscall_nr);
    cr_assert(WIFEXITED(r.status) && WEXITSTATUS(r.status) == 0);
}

/* ---- thresholds are handed to the daemon ------------------------------- */

/* The daemon's count of flushes of the mapping at rel (admin list). */
static uint64_t daemon_flushes_of(mmapio_client *c, const char *rel)
{
    mmapio_map_info *maps;
    size_t n;
    uint64_t count = UINT64_MAX;
    hz_assert_ok(mmapio_admin_list(c, &maps, &n));
    for (size_t i = 0; i < n; i++)
        if (!maps[i].anonymous && strcmp(maps[i].name, rel) == 0)
            count = maps[i].flushes;
    mmapio_map_info_free(maps, n);
    cr_assert_neq(count, UINT64_MAX, "%s is not in the admin list", rel);
    return count;
}

/* Waits up to HANDOFF_BOUND_MS for the daemon to count more than `was`
 * flushes of rel; returns the count. */
static uint64_t wait_daemon_flushes(mmapio_client *c, const char *rel,
                                    uint64_t was)
{
    int64_t end = pc_now_ms() + HANDOFF_BOUND_MS;
    uint64_t now;
    while ((now = daemon_flushes_of(c, rel)) <= was && pc_now_ms() < end)
        pc_sleep_ms(5);
    return now;
}

Test(policy_flush, threshold_flush_is_the_daemons_and_lands_on_disk)
{
    mmapio_client *c = hz_client();
    mmapio_flush_policy eb = { MMAPIO_FLUSH_EVERY_BYTES, 65536 };
    mmapio_map *m = create_with(c, "hc.dat", false, 1 << 20, eb);
    static char page[4096];
    memset(page, 'h', sizeof(page));

    for (int round = 0; round < 3; round++) {
        uint64_t before = daemon_flushes_of(c, "hc.dat");
        for (int i = 0; i < 15; i++)
            hz_assert_ok(mmapio_update_region(m, (uint64_t)(round * 16 + i) *
                                              4096, page, 4096));
        /* the control: one page short, nothing handed over */
        cr_assert_eq(mmapio_pending_bytes(m), 15 * 4096);
        expect_dirty("hc.dat", true, "15 pages of 16");
        cr_assert_eq(daemon_flushes_of(c, "hc.dat"), before,
                     "round %d: the daemon flushed before the threshold",
                     round);
        hz_assert_ok(mmapio_update_region(m, (uint64_t)(round * 16 + 15) *
                                          4096, page, 4096));
        cr_assert_eq(mmapio_pending_bytes(m), 0,
                     "the counter restarts at the hand-off");
        uint64_t after = wait_daemon_flushes(c, "hc.dat", before);
        cr_assert_gt(after, before, "round %d: the daemon did not flush "
                     "within %d ms of the threshold", round,
                     HANDOFF_BOUND_MS);
        expect_dirty("hc.dat", false, "the 16th page");
    }
    mmapio_unmap(m);
    mmapio_disconnect(c);
}

struct stopped_writer {
    mmapio_map *m;
    int writes;
    atomic_int done;  /* writes returned */
    int rc;
};

static void *stopped_writer_main(void *arg)
{
    struct stopped_writer *w = arg;
    static char page[4096];
    memset(page, 's', sizeof(page));
    w->rc = MMAPIO_OK;
    for (int i = 0; i < w->writes && w->rc == MMAPIO_OK; i++) {
        w->rc = mmapio_update_region(w->m, (uint64_t)(i % 256) * 4096, page,
                                     4096);
        atomic_store(&w->done, i + 1);
    }
    return NULL;
}

static bool daemon_is_stopped(void)
{
    char path[64], buf[512];
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)hz.pid);
    FILE *f = fopen(path, "re");
    if (!f)
        return false;
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    char *p = strrchr(buf, ')');
    return p && p[1] == ' ' && (p[2] == 'T' || p[2] == 't');
}

/* Every write crosses EveryBytes(4096) while the daemon is stopped: its
 * socket fills, and the writes go on returning; the last threshold is
 * kept and handed over by the first write after the daemon is back. */
Test(policy_flush, writer_never_waits_for_a_stopped_daemon)
{
    mmapio_client *c = hz_client();
    mmapio_flush_policy eb = { MMAPIO_FLUSH_EVERY_BYTES, 4096 };
    mmapio_map *m = create_with(c, "st.dat", false, 1 << 20, eb);
    hz_assert_ok(mmapio_ping(c));

    cr_assert_eq(kill(hz.pid, SIGSTOP), 0);
    int64_t end = pc_now_ms() + 2000;
    while (!daemon_is_stopped() && pc_now_ms() < end)
        pc_sleep_ms(1);
    struct stopped_writer w = { .m = m, .writes = 20000 };
    pthread_t th;
    cr_assert_eq(pthread_create(&th, NULL, stopped_writer_main, &w), 0);
    end = pc_now_ms() + 20000;
    while (atomic_load(&w.done) < w.writes && w.rc == MMAPIO_OK &&
           pc_now_ms() < end)
        pc_sleep_ms(10);
    int done = atomic_load(&w.done);
    uint64_t pending = mmapio_pending_bytes(m);
    kill(hz.pid, SIGCONT);
    pthread_join(th, NULL);
    cr_assert_eq(done, w.writes, "with the daemon stopped, only %d of %d "
                 "writes returned in 20 s: the writer waited for it", done,
                 w.writes);
    hz_assert_ok(w.rc);
    cr_assert_geq(pending, 4096, "the threshold found the socket full, yet "
                  "its bytes were not kept (pending %llu)",
                  (unsigned long long)pending);

    /* Back: the daemon reads what was queued; the next write (after the
     * retry pause) hands the kept threshold over. */
    hz_assert_ok(mmapio_ping(c));
    pc_sleep_ms(5);
    hz_assert_ok(mmapio_update_region(m, 0, "x", 1));
    cr_assert_eq(mmapio_pending_bytes(m), 0);
    expect_dirty("st.dat", false, "the first write after the daemon is back");
    mmapio_unmap(m);
    mmapio_disconnect(c);
}

/* flush_range takes off the counter only what it flushed (mmap-io): one
 * page flushed does not re-arm the whole EveryBytes threshold. */
Test(policy_flush, flush_range_takes_off_only_what_it_flushed)
{
    mmapio_client *c = hz_client();
    mmapio_flush_policy eb = { MMAPIO_FLUSH_EVERY_BYTES, 10000 };
    mmapio_map *m = create_with(c, "fr.dat", false, 65536, eb);
    static char buf[16384];
    memset(buf, 'f', sizeof(buf));

    hz_assert_ok(mmapio_update_region(m, 0, buf, 6000));
    cr_assert_eq(mmapio_pending_bytes(m), 6000);
    hz_assert_ok(mmapio_flush_range(m, 0, 4096));
    cr_assert_eq(mmapio_pending_bytes(m), 6000 - 4096,
                 "flush_range of 4096 bytes left %llu pending, expected %d",
                 (unsigned long long)mmapio_pending_bytes(m), 6000 - 4096);
    if (have_cachestat())
        cr_assert_eq(pc_unsynced_range(hz_path(&hz, "fr.dat"), 0, 4096), 0,
                     "flush_range did not flush its page");
    /* the threshold still comes at 10000 bytes counted: 1904 + 8000 is
     * short of it, 96 more reach it */
    hz_assert_ok(mmapio_update_region(m, 16384, buf, 8000));
    cr_assert_eq(mmapio_pending_bytes(m), 9904);
    expect_dirty("fr.dat", true, "9904 bytes counted");
    hz_assert_ok(mmapio_update_region(m, 32768, buf, 96));
    cr_assert_eq(mmapio_pending_bytes(m), 0, "the threshold moved");
    expect_dirty("fr.dat", false, "10000 bytes counted");

    /* a range larger than what is pending takes it all, no more */
    hz_assert_ok(mmapio_update_region(m, 0, buf, 1000));
    hz_assert_ok(mmapio_flush_range(m, 0, 8192));
    cr_assert_eq(mmapio_pending_bytes(m), 0);
    hz_assert_ok(mmapio_update_region(m, 0, buf, 9999));
    cr_assert_eq(mmapio_pending_bytes(m), 9999);
    /* and mmapio_flush still takes everything */
    hz_assert_ok(mmapio_flush(m));
    cr_assert_eq(mmapio_pending_bytes(m), 0);
    expect_clean_now("fr.dat", "after mmapio_flush");
    mmapio_unmap(m);
    mmapio_disconnect(c);
}

/* Under NEVER the first thread to write counts without a locked
 * instruction and the others with one: the count is exact either way,
 * and flushes take it off whichever thread wrote. */
struct counting {
    mmapio_map *m;
    atomic_int *go;
    int rounds;
};

static void *count_writes(void *arg)
{
    struct counting *k = arg;
    char b[64];
    memset(b, 'k', sizeof(b));
    while (!atomic_load(k->go))
        ;
    for (int i = 0; i < k->rounds; i++)
        if (mmapio_update_region(k->m, (uint64_t)(i % 64) * 64, b,
                                 (size_t)(i % 63) + 1) != MMAPIO_OK)
            return (void *)1;
    return NULL;
}

Test(policy_flush, pending_bytes_are_exact_across_threads)
{
    mmapio_client *c = hz_client();
    mmapio_flush_policy never = { MMAPIO_FLUSH_NEVER, 0 };
    mmapio_map *m = create_with(c, "count.dat", false, 65536, never);
    enum { THREADS = 4, ROUNDS = 200000 };
    uint64_t each = 0;
    for (int i = 0; i < ROUNDS; i++)
        each += (uint64_t)(i % 63) + 1;

    /* This thread writes first: it is the one that counts lock-free. */
    hz_assert_ok(mmapio_update_region(m, 0, "abc", 3));
    cr_assert_eq(mmapio_pending_bytes(m), 3);
    atomic_int go = 0;
    struct counting k = { m, &go, ROUNDS };
    pthread_t t[THREADS];
    for (int i = 0; i < THREADS; i++)
        cr_assert_eq(pthread_create(&t[i], NULL, count_writes, &k), 0);
    atomic_store(&go, 1);
    void *bad = NULL;
    count_writes(&k); /* and beside them */
    for (int i = 0; i < THREADS; i++) {
        void *r;
        pthread_join(t[i], &r);
        bad = r ? r : bad;
    }
    cr_assert_null(bad, "a write failed");
    uint64_t all = 3 + (THREADS + 1) * each;
    cr_assert_eq(mmapio_pending_bytes(m), all, "%llu pending, %llu written",
                 (unsigned long long)mmapio_pending_bytes(m),
                 (unsigned long long)all);
    /* flush_range takes what it flushed, from either count */
    hz_assert_ok(mmapio_flush_range(m, 0, 4096));
    cr_assert_eq(mmapio_pending_bytes(m), all - 4096);
    hz_assert_ok(mmapio_flush(m));
    cr_assert_eq(mmapio_pending_bytes(m), 0);
    /* the counting thread's next writes count from there */
    hz_assert_ok(mmapio_update_region(m, 0, "abcd", 4));
    cr_assert_eq(mmapio_pending_bytes(m), 4);
    hz_assert_ok(mmapio_flush_range(m, 0, 2));
    cr_assert_eq(mmapio_pending_bytes(m), 2);
    hz_assert_ok(mmapio_flush(m));
    cr_assert_eq(mmapio_pending_bytes(m), 0);
    mmapio_unmap(m);
    mmapio_disconnect(c);
}
