/*
 * test_timed_flush: EveryMillis is the daemon's.
 *
 * A mapping with EveryMillis(ms) is flushed by the daemon some time after
 * any process writes it, through update_region or through a raw pointer,
 * while every holder stays alive (so no last-holder or dead-writer flush
 * can be what cleaned it). "Flushed" is the kernel's word (cachestat, see
 * pagecache.h): the file has no dirty page left. Bounds are generous (5 s
 * for a 100-200 ms interval); nothing asserts how soon. A NEVER mapping
 * written the same way stays dirty: the control that shows the test can
 * fail. Writes through a pointer are covered from the first store after
 * mmapio_as_mut_ptr, and a burst of first writes to many mappings, made
 * while the daemon is momentarily stopped, gets every one flushed. A
 * daemon whose EveryMillis mappings are clean does no periodic work: its
 * threads are not woken.
 */
#include <criterion/criterion.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <sys/prctl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "pagecache.h"
#include "peer.h"

TestSuite(timed_flush, .init = hz_setup, .fini = hz_teardown, .timeout = 60);

#define SYNC_BOUND_MS 5000

static mmapio_map *create_with(mmapio_client *c, const char *path,
                               uint64_t size, mmapio_flush_policy pol)
{
    mmapio_options o;
    mmapio_options_init(&o);
    o.create = true;
    o.truncate = true;
    o.size = size;
    o.flush_policy = pol;
    mmapio_map *m = NULL;
    hz_assert_ok(mmapio_open(c, path, &o, &m));
    return m;
}

static void assert_synced_soon(const char *rel, const char *step)
{
    int64_t waited;
    long n = pc_wait_synced(hz_path(&hz, rel), SYNC_BOUND_MS, &waited);
    cr_assert_eq(n, 0, "%s: %ld pages of %s still dirty after %lld ms: the "
                 "daemon's timed flush did not come", step, n, rel,
                 (long long)waited);
}

/* Call before the file under test gets dirty (see pc_sentinel_dirty). */
static void dirty_sentinel(void)
{
    cr_assert_eq(pc_sentinel_dirty(hz_path(&hz, "sentinel.dat"), 1), 0);
}

/* The file is still dirty for_ms later; dirty_sentinel() came first. */
static void assert_still_dirty(const char *rel, int for_ms, const char *step)
{
    const char *sentinel = hz_path(&hz, "sentinel.dat");
    pc_sleep_ms(for_ms);
    long n = pc_unsynced(hz_path(&hz, rel));
    if (n == 0 && pc_unsynced(sentinel) == 0)
        cr_skip_test("%s: the whole file system was flushed meanwhile "
                     "(another test's syncfs): nothing to judge by", step);
    cr_assert_gt(n, 0, "%s: %s was flushed although nothing should have",
                 step, rel);
}

static void assert_file_bytes(const char *rel, uint64_t off, uint64_t len,
                              int byte)
{
    static char disk[1 << 16];
    long n = hz_read_file(hz_path(&hz, rel), disk, sizeof(disk));
    cr_assert_geq(n, (long)(off + len));
    for (uint64_t i = off; i < off + len; i++)
        cr_assert_eq((unsigned char)disk[i], (unsigned char)byte,
                     "%s byte %llu: %d, expected %d", rel,
                     (unsigned long long)i, disk[i], byte);
}

Test(timed_flush, update_region_writer_in_other_process)
{
    PC_REQUIRE_CACHESTAT();
    mmapio_client *c = hz_client();
    mmapio_flush_policy em = { MMAPIO_FLUSH_EVERY_MILLIS, 150 };
    mmapio_map *m = create_with(c, "em.dat", 65536, em);
    struct peer p;
    cr_assert_eq(peer_start(&p), 0);
    int w;
    hz_assert_ok(peer_open(&p, "em.dat", false, MMAPIO_MODE_READ_WRITE, &w));

    /* Several rounds: each timed flush re-arms on the next write. */
    for (int round = 0; round < 3; round++) {
        char step[64];
        snprintf(step, sizeof(step), "round %d", round);
        for (int i = 0; i < 3; i++)
            hz_assert_ok(peer_write(&p, w, (uint64_t)(round * 3 + i) * 4096,
                                    100, 'A' + round, NULL));
        assert_synced_soon("em.dat", step);
        assert_file_bytes("em.dat", (uint64_t)round * 3 * 4096, 100,
                          'A' + round);
    }
    /* and this process's writes too */
    hz_assert_ok(mmapio_update_region(m, 60000, "zzzz", 4));
    assert_synced_soon("em.dat", "writer in the creating process");
    assert_file_bytes("em.dat", 60000, 4, 'z');

    cr_assert_eq(peer_stop(&p), 0);
    mmapio_unmap(m);
    mmapio_disconnect(c);
}

static bool proc_stopped(pid_t pid)
{
    char path[64], buf[512];
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "re");
    if (!f)
        return false;
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    char *p = strrchr(buf, ')');
    return p && p[1] == ' ' && (p[2] == 'T' || p[2] == 't');
}

/* Stops the daemon (SIGSTOP), as a busy machine may for a moment, and
 * waits until it is stopped; daemon_resume lets it go. */
static void daemon_pause(void)
{
    cr_assert_eq(kill(hz.pid, SIGSTOP), 0);
    int64_t end = hz_now_ms() + 2000;
    while (!proc_stopped(hz.pid) && hz_now_ms() < end)
        pc_sleep_ms(1);
}

static void daemon_resume(void)
{
    cr_assert_eq(kill(hz.pid, SIGCONT), 0);
}

/*
 * A burst of update_region writes, one to each of n mappings, made while
 * the daemon is stopped (SIGSTOP) as a busy machine may stop it for a
 * moment: its socket fills up as it would if the burst outran it. The
 * burst runs in a thread, and the daemon is let go after 300 ms, so a
 * library that waits for room rather than drop a notice finishes too.
 */
struct burst {
    mmapio_map **m;
    int n;
    int rc;
};

static void *burst_main(void *arg)
{
    struct burst *b = arg;
    b->rc = MMAPIO_OK;
    for (int i = 0; i < b->n && b->rc == MMAPIO_OK; i++)
        b->rc = mmapio_update_region(b->m[i], (uint64_t)i % 4096, "b", 1);
    return NULL;
}


static void burst_while_daemon_stopped(mmapio_map **m, int n)
{
    struct burst b = { m, n, MMAPIO_OK };
    pthread_t th;
    daemon_pause();
    cr_assert_eq(pthread_create(&th, NULL, burst_main, &b), 0);
    pc_sleep_ms(300);
    daemon_resume();
    pthread_join(th, NULL);
    hz_assert_ok(b.rc);
}

/*
 * Raw pointer writes, as a program makes them: mmapio_as_mut_ptr, then
 * stores at once. The daemon may well read the library's announcement of
 * the pointer only after the first stores landed; here it is made to
 * (stopped while the peer takes the pointer and writes).
 */
Test(timed_flush, raw_pointer_writes_right_after_getting_the_pointer)
{
    PC_REQUIRE_CACHESTAT();
    enum { FILES = 3 };
    mmapio_client *c = hz_client();
    mmapio_flush_policy em = { MMAPIO_FLUSH_EVERY_MILLIS, 150 };
    mmapio_map *m[FILES];
    char name[FILES][32];
    struct peer p;
    cr_assert_eq(peer_start(&p), 0);
    for (int i = 0; i < FILES; i++) {
        snprintf(name[i], sizeof(name[i]), "rp%d.dat", i);
        m[i] = create_with(c, name[i], 65536, em);
        int w;
        hz_assert_ok(peer_open(&p, name[i], false, MMAPIO_MODE_READ_WRITE, &w));
        /* the peer's first mmapio_as_mut_ptr, and stores right after */
        struct peer_cmd cmd = { .op = PEER_PTR_WRITE, .idx = w, .off = 4096,
                                .len = 5000, .byte = 'a' + i };
        struct peer_res res;
        daemon_pause();
        cr_assert_eq(peer_send(&p, &cmd), 0);
        /* a library that waits for the daemon here answers once it runs */
        int r = peer_wait(&p, 300, &res);
        daemon_resume();
        if (r == -ETIMEDOUT)
            r = peer_wait(&p, PEER_TIMEOUT_MS, &res);
        cr_assert_eq(r, 0, "the peer did not answer");
        hz_assert_ok(res.rc);
    }
    for (int i = 0; i < FILES; i++) {
        char step[96];
        snprintf(step, sizeof(step), "stores right after the first "
                 "mmapio_as_mut_ptr, file %d", i);
        assert_synced_soon(name[i], step);
        assert_file_bytes(name[i], 4096, 5000, 'a' + i);
    }
    cr_assert_eq(peer_stop(&p), 0);
    for (int i = 0; i < FILES; i++)
        mmapio_unmap(m[i]);
    mmapio_disconnect(c);
}

/* Rounds of pointer writes by a holder whose pointer the daemon knows of:
 * each round is flushed in turn. */
Test(timed_flush, raw_pointer_writer_rounds)
{
    PC_REQUIRE_CACHESTAT();
    mmapio_client *c = hz_client();
    mmapio_flush_policy em = { MMAPIO_FLUSH_EVERY_MILLIS, 150 };
    mmapio_map *m = create_with(c, "rr.dat", 65536, em);
    struct peer p;
    cr_assert_eq(peer_start(&p), 0);
    int w;
    hz_assert_ok(peer_open(&p, "rr.dat", false, MMAPIO_MODE_READ_WRITE, &w));
    /* Take the pointer, then a round trip on the same connection: the
     * daemon has read the announcement before any store. */
    hz_assert_ok(peer_ptr_write(&p, w, 0, 0, 0));
    struct peer_cmd cmd = { .op = PEER_REFRESH, .idx = w };
    struct peer_res res;
    cr_assert_eq(peer_call(&p, &cmd, &res), 0);
    hz_assert_ok(res.rc);

    for (int round = 0; round < 3; round++) {
        char step[64];
        snprintf(step, sizeof(step), "raw pointer round %d", round);
        hz_assert_ok(peer_ptr_write(&p, w, (uint64_t)round * 8192, 5000,
                                    'a' + round));
        cr_assert_gt(pc_unsynced(hz_path(&hz, "rr.dat")), 0,
                     "%s: the pointer write left no dirty page", step);
        assert_synced_soon("rr.dat", step);
        assert_file_bytes("rr.dat", (uint64_t)round * 8192, 5000,
                          'a' + round);
    }
    cr_assert_eq(peer_stop(&p), 0);
    mmapio_unmap(m);
    mmapio_disconnect(c);
}

Test(timed_flush, never_is_not_flushed_by_the_daemon)
{
    PC_REQUIRE_CACHESTAT();
    /* The control: the same writes under NEVER, every holder alive. */
    mmapio_client *c = hz_client();
    mmapio_flush_policy never = { MMAPIO_FLUSH_NEVER, 0 };
    dirty_sentinel();
    mmapio_map *m = create_with(c, "nv.dat", 65536, never);
    struct peer p;
    cr_assert_eq(peer_start(&p), 0);
    int w;
    hz_assert_ok(peer_open(&p, "nv.dat", false, MMAPIO_MODE_READ_WRITE, &w));
    hz_assert_ok(peer_write(&p, w, 0, 100, 'n', NULL));
    hz_assert_ok(peer_ptr_write(&p, w, 8192, 100, 'n'));
    assert_still_dirty("nv.dat", 1500, "NEVER, 1.5 s after the writes");
    cr_assert_eq(peer_stop(&p), 0);
    mmapio_unmap(m);
    mmapio_disconnect(c);
}

Test(timed_flush, policy_changed_later_is_obeyed)
{
    PC_REQUIRE_CACHESTAT();
    mmapio_client *c = hz_client();
    mmapio_flush_policy never = { MMAPIO_FLUSH_NEVER, 0 };
    mmapio_map *m = create_with(c, "ch.dat", 65536, never);
    struct peer p;
    cr_assert_eq(peer_start(&p), 0);
    int w;
    hz_assert_ok(peer_open(&p, "ch.dat", false, MMAPIO_MODE_READ_WRITE, &w));
    hz_assert_ok(peer_write(&p, w, 0, 100, 'x', NULL));

    /* NEVER -> EveryMillis, set by the other process: the peer's next
     * write is covered by the daemon's timer. */
    mmapio_flush_policy em = { MMAPIO_FLUSH_EVERY_MILLIS, 100 };
    hz_assert_ok(mmapio_set_flush_policy(m, em));
    hz_assert_ok(peer_write(&p, w, 4096, 100, 'y', NULL));
    assert_synced_soon("ch.dat", "after NEVER -> EveryMillis(100)");
    assert_file_bytes("ch.dat", 0, 100, 'x');
    assert_file_bytes("ch.dat", 4096, 100, 'y');

    /* A longer interval still flushes (within the bound). */
    em.value = 400;
    hz_assert_ok(mmapio_set_flush_policy(m, em));
    hz_assert_ok(peer_write(&p, w, 8192, 100, 'z', NULL));
    assert_synced_soon("ch.dat", "after EveryMillis(400)");

    /* EveryMillis -> NEVER: the timer is off. */
    hz_assert_ok(mmapio_set_flush_policy(m, never));
    dirty_sentinel();
    hz_assert_ok(peer_write(&p, w, 12288, 100, 'w', NULL));
    assert_still_dirty("ch.dat", 1500, "after EveryMillis -> NEVER");

    cr_assert_eq(peer_stop(&p), 0);
    mmapio_unmap(m);
    mmapio_disconnect(c);
}

/*
 * Many EveryMillis mappings, each written once, in a burst: as a program
 * that updates a set of files does. Every one of them is flushed. (The
 * library tells the daemon of each mapping's first write with a one-way
 * notice; a burst is where such notices can be lost.)
 */

Test(timed_flush, burst_of_first_writes_all_flushed)
{
    PC_REQUIRE_CACHESTAT();
    enum { MAPS = 1000 };
    mmapio_client *c = hz_client();
    mmapio_flush_policy em = { MMAPIO_FLUSH_EVERY_MILLIS, 50 };
    mmapio_map *m[MAPS];
    char name[MAPS][32];
    for (int i = 0; i < MAPS; i++) {
        snprintf(name[i], sizeof(name[i]), "burst%03d.dat", i);
        m[i] = create_with(c, name[i], 4096, em);
    }
    burst_while_daemon_stopped(m, MAPS);

    int64_t end = hz_now_ms() + SYNC_BOUND_MS;
    int dirty;
    do {
        dirty = 0;
        for (int i = 0; i < MAPS; i++)
            dirty += pc_unsynced(hz_path(&hz, name[i])) != 0;
        if (dirty)
            pc_sleep_ms(20);
    } while (dirty && hz_now_ms() < end);
    if (dirty) {
        /* Say more: does a second write to them get them flushed? */
        for (int i = 0; i < MAPS; i++)
            if (pc_unsynced(hz_path(&hz, name[i])) != 0)
                hz_assert_ok(mmapio_update_region(m[i], 100, "again", 5));
        pc_sleep_ms(1000);
        int still = 0;
        for (int i = 0; i < MAPS; i++)
            still += pc_unsynced(hz_path(&hz, name[i])) != 0;
        cr_assert_fail("%d of %d EveryMillis(50) mappings written once were "
                       "not flushed within %d ms; after a second write to "
                       "each, %d still were not, 1 s later", dirty, MAPS,
                       SYNC_BOUND_MS, still);
    }
    for (int i = 0; i < MAPS; i++)
        mmapio_unmap(m[i]);
    mmapio_disconnect(c);
}

/* ---- an idle daemon does no periodic work ----------------------------- */

static long wakeups_over(pid_t pid, int ms)
{
    long a = hz_wakeups(pid);
    pc_sleep_ms(ms);
    long b = hz_wakeups(pid);
    cr_assert_geq(a, 0);
    return b - a;
}

enum { IDLE_MAPS = 50, IDLE_WINDOW_MS = 1000, IDLE_MAX_WAKEUPS = 20 };

/* For the wake-up tests: IDLE_MAPS clean EveryMillis(10) files
 * PREFIXnn.dat on c. */
static void idle_maps(mmapio_client *c, const char *prefix,
                      mmapio_map **maps, char (*name)[32])
{
    mmapio_flush_policy em = { MMAPIO_FLUSH_EVERY_MILLIS, 10 };
    for (int i = 0; i < IDLE_MAPS; i++) {
        snprintf(name[i], sizeof(name[i]), "%s%02d.dat", prefix, i);
        maps[i] = create_with(c, name[i], 4096, em);
    }
}

/* Context switches of a daemon under valgrind (which runs one thread at
 * a time) say nothing about its wake-ups. */
static void skip_if_wrapped(void)
{
    const char *wrap = getenv("MMAPIOD_WRAPPER");
    if (wrap && *wrap)
        cr_skip_test("wake-ups are not measurable under %s", wrap);
}

Test(timed_flush, clean_every_millis_mappings_cost_no_wakeups)
{
    PC_REQUIRE_CACHESTAT();
    skip_if_wrapped();
    mmapio_client *c = hz_client();
    mmapio_map *maps[IDLE_MAPS];
    char name[IDLE_MAPS][32];
    idle_maps(c, "idle", maps, name);

    /* The measure works: a client's pings wake the daemon. (All its
     * switches: between pings a spinning loop is often preempted, not
     * put to sleep. The idle counts below are of sleeps alone, which a
     * loaded machine's preemptions of real work do not add to.) */
    long busy_a = hz_switches(hz.pid);
    for (int i = 0; i < 200; i++)
        hz_assert_ok(mmapio_ping(c));
    long busy = hz_switches(hz.pid) - busy_a;
    cr_assert_geq(busy, 100, "200 pings woke the daemon only %ld times: "
                  "the measure is broken", busy);

    pc_sleep_ms(200); /* let start-up work settle */
    long idle = wakeups_over(hz.pid, IDLE_WINDOW_MS);
    cr_assert_leq(idle, IDLE_MAX_WAKEUPS,
                  "%d clean EveryMillis(10) mappings: the daemon was woken "
                  "%ld times in %d ms", IDLE_MAPS, idle, IDLE_WINDOW_MS);

    /* One write to each: one flush each, then idle again. */
    for (int i = 0; i < IDLE_MAPS; i++)
        hz_assert_ok(mmapio_update_region(maps[i], 0, "once", 4));
    for (int i = 0; i < IDLE_MAPS; i++)
        assert_synced_soon(name[i], "one write to each");
    pc_sleep_ms(200);
    idle = wakeups_over(hz.pid, IDLE_WINDOW_MS);
    cr_assert_leq(idle, IDLE_MAX_WAKEUPS,
                  "after one write to each of %d EveryMillis(10) mappings "
                  "was flushed, the daemon was still woken %ld times in "
                  "%d ms", IDLE_MAPS, idle, IDLE_WINDOW_MS);

    for (int i = 0; i < IDLE_MAPS; i++)
        mmapio_unmap(maps[i]);
    mmapio_disconnect(c);
}

/*
 * The bound for raw writers (daemon/services/flushes.h, README): a store
 * through a pointer is in a flush submitted within max(interval, 1 s).
 * Here after a quiet spell long enough for the daemon's polls to have
 * backed off to 1 s, and then rounds of a store right after the file was
 * seen clean (in the same timestamp tick as the flush, often: the mtime
 * need not move, the dirty page is there all the same). Asserted with the
 * suite's generous SYNC_BOUND_MS for a loaded machine.
 */
Test(timed_flush, raw_store_after_a_quiet_spell_is_flushed)
{
    PC_REQUIRE_CACHESTAT();
    mmapio_client *c = hz_client();
    mmapio_flush_policy em = { MMAPIO_FLUSH_EVERY_MILLIS, 10 };
    mmapio_map *m = create_with(c, "qs.dat", 65536, em);
    volatile char *p = mmapio_as_mut_ptr(m);
    cr_assert_not_null(p);
    hz_assert_ok(mmapio_ping(c)); /* the daemon knows of the pointer */
    assert_synced_soon("qs.dat", "the first poll");
    pc_sleep_ms(2500); /* polls back off: 10, 20, ... 640 ms, then 1 s */

    p[100] = 'q';
    cr_assert_gt(pc_unsynced(hz_path(&hz, "qs.dat")), 0,
                 "the store left no dirty page");
    assert_synced_soon("qs.dat", "a store after 2.5 s of quiet");
    for (int round = 0; round < 5; round++) {
        char step[64];
        snprintf(step, sizeof(step), "a store right after the flush, "
                 "round %d", round);
        p[4096 * (round + 2)] = (char)('a' + round);
        assert_synced_soon("qs.dat", step);
    }
    assert_file_bytes("qs.dat", 100, 1, 'q');
    assert_file_bytes("qs.dat", 4096 * 6, 1, 'e');
    mmapio_unmap(m);
    mmapio_disconnect(c);
}

/* Raw writers that took their pointers at different times cost an idle
 * daemon about one wake-up a second in all, not one per mapping. */
Test(timed_flush, idle_raw_writers_are_polled_together)
{
    PC_REQUIRE_CACHESTAT();
    skip_if_wrapped();
    mmapio_client *c = hz_client();
    mmapio_map *maps[IDLE_MAPS];
    char name[IDLE_MAPS][32];
    idle_maps(c, "raw", maps, name);
    for (int i = 0; i < IDLE_MAPS; i++) {
        cr_assert_not_null(mmapio_as_mut_ptr(maps[i]));
        hz_assert_ok(mmapio_ping(c));
        pc_sleep_ms(1000 / IDLE_MAPS);
    }
    pc_sleep_ms(2500); /* every poll has backed off to 1 s */
    long idle = wakeups_over(hz.pid, 2 * IDLE_WINDOW_MS);
    cr_assert_leq(idle, IDLE_MAX_WAKEUPS,
                  "%d clean EveryMillis(10) mappings with writable pointers "
                  "out: the daemon was woken %ld times in %d ms", IDLE_MAPS,
                  idle, 2 * IDLE_WINDOW_MS);
    /* and the polls still look: one store to each is flushed */
    for (int i = 0; i < IDLE_MAPS; i++)
        ((volatile char *)mmapio_as_mut_ptr(maps[i]))[7] = 'w';
    for (int i = 0; i < IDLE_MAPS; i++)
        assert_synced_soon(name[i], "one store to each idle raw writer");
    for (int i = 0; i < IDLE_MAPS; i++)
        mmapio_unmap(maps[i]);
    mmapio_disconnect(c);
}

/* ---- without cachestat(2): the mtime fallback ------------------------- */

/*
 * As $MMAPIOD_WRAPPER this program starts the daemon on a kernel that
 * seems to lack cachestat(2) (ENOSYS, as before Linux 6.5; a systemd
 * filter that does not know it answers EPERM alike): a seccomp filter,
 * then the daemon. Only when TF_NO_CACHESTAT_EXEC is set.
 */
__attribute__((constructor)) static void no_cachestat_exec(int argc,
                                                           char **argv)
{
    if (!getenv("TF_NO_CACHESTAT_EXEC") || argc < 2)
        return;
    unsetenv("TF_NO_CACHESTAT_EXEC");
    struct sock_filter f[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 451 /* cachestat */, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | ENOSYS),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    struct sock_fprog prog = { sizeof(f) / sizeof(f[0]), f };
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0 &&
        prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) == 0)
        execv(argv[1], argv + 1);
    _exit(127);
}

static bool wrapped_elsewhere;

static void setup_no_cachestat(void)
{
    wrapped_elsewhere = hz_wrapped();
    if (!wrapped_elsewhere) {
        setenv("TF_NO_CACHESTAT_EXEC", "1", 1);
        setenv("MMAPIOD_WRAPPER", "/proc/self/exe", 1);
    }
    hz_setup();
    unsetenv("TF_NO_CACHESTAT_EXEC");
}

TestSuite(timed_flush_mtime, .init = setup_no_cachestat,
          .fini = hz_teardown, .timeout = 60);

/* The daemon runs under a seccomp filter (Seccomp: 2 in its status). */
static bool daemon_filtered(void)
{
    char path[64], line[128];
    snprintf(path, sizeof(path), "/proc/%d/status", (int)hz.pid);
    FILE *f = fopen(path, "re");
    bool yes = false;
    int v;
    while (f && fgets(line, sizeof(line), f))
        if (sscanf(line, "Seccomp: %d", &v) == 1)
            yes = v == 2;
    if (f)
        fclose(f);
    return yes;
}

Test(timed_flush_mtime, raw_stores_are_flushed_without_cachestat)
{
    PC_REQUIRE_CACHESTAT(); /* this process sees the disk by it */
    if (wrapped_elsewhere)
        cr_skip_test("the daemon already runs under $MMAPIOD_WRAPPER");
    cr_assert(daemon_filtered(), "the daemon is not under the filter that "
              "hides cachestat(2): this test would not test the fallback");
    mmapio_client *c = hz_client();
    mmapio_flush_policy em = { MMAPIO_FLUSH_EVERY_MILLIS, 10 };
    mmapio_map *m = create_with(c, "mt.dat", 65536, em);
    volatile char *p = mmapio_as_mut_ptr(m);
    cr_assert_not_null(p);
    hz_assert_ok(mmapio_ping(c));
    assert_synced_soon("mt.dat", "the first poll");
    pc_sleep_ms(1500); /* polls back off to 1 s */
    for (int round = 0; round < 3; round++) {
        char step[64];
        snprintf(step, sizeof(step), "a raw store found by the mtime, "
                 "round %d", round);
        p[4096 * round + 5] = (char)('m' + round);
        cr_assert_gt(pc_unsynced(hz_path(&hz, "mt.dat")), 0,
                     "the store left no dirty page");
        assert_synced_soon("mt.dat", step);
        pc_sleep_ms(50); /* the next store in a later timestamp tick */
    }
    assert_file_bytes("mt.dat", 4096 * 2 + 5, 1, 'o');
    mmapio_unmap(m);
    mmapio_disconnect(c);
}
