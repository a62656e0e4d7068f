/*
 * test_datapath: the rest of mmap-io's data path on a real daemon —
 * page size and alignment, slices, advice/prefetch/touch, mlock, atomic
 * views (exact sums from several processes), cross-process wait/wake
 * (shared futex: a waiter in one process woken from another; timeouts;
 * signals), chunk and page iteration, segments (re-checked after the
 * mapping shrank, by this handle or by another process), and the stdio
 * reader and writer. Every call also with bad arguments: NULL, zero
 * sizes, misalignment, out of range, wrong mode.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <grp.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "wire.h"

TestSuite(datapath, .init = hz_setup, .fini = hz_teardown, .timeout = 60);

enum { LEN = 16384 };

static mmapio_client *c;

static mmapio_map *make_rw(const char *path, uint64_t size)
{
    mmapio_map *m;
    if (!c)
        c = hz_client();
    hz_assert_ok(mmapio_create_rw(c, path, size, &m));
    return m;
}

static mmapio_map *make_ro(const char *path)
{
    mmapio_map *m;
    hz_assert_ok(mmapio_open_ro(c, path, &m));
    return m;
}

/* Under valgrind (a wrapped daemon) loops are scaled down. */
static int scaled(int n)
{
    return hz_wrapped() ? n / 10 : n;
}

static void sleep_ms(int ms)
{
    struct timespec t = { ms / 1000, (long)(ms % 1000) * 1000000L };
    while (nanosleep(&t, &t) != 0 && errno == EINTR)
        ;
}

/* ---- utilities ---- */

Test(datapath, page_size_and_align_up)
{
    cr_assert_eq(mmapio_page_size(), (size_t)sysconf(_SC_PAGESIZE));
    cr_assert_eq(mmapio_align_up(0, 4096), 0);
    cr_assert_eq(mmapio_align_up(1, 4096), 4096);
    cr_assert_eq(mmapio_align_up(4096, 4096), 4096);
    cr_assert_eq(mmapio_align_up(4097, 4096), 8192);
    cr_assert_eq(mmapio_align_up(10, 3), 12);       /* not a power of two */
    cr_assert_eq(mmapio_align_up(77, 0), 77);       /* alignment 0: value */
    cr_assert_eq(mmapio_align_up(UINT64_MAX - 1, 1), UINT64_MAX - 1);
    cr_assert_eq(mmapio_align_up(UINT64_MAX, 4096), 0, "no multiple fits");
}

/* ---- slices ---- */

Test(datapath, slices)
{
    mmapio_map *m = make_rw("s.dat", LEN);
    mmapio_map *ro = make_ro("s.dat");
    const void *p;
    void *w;

    hz_assert_ok(mmapio_as_slice_mut(m, 100, 5, &w));
    memcpy(w, "hello", 5);
    hz_assert_ok(mmapio_as_slice(ro, 100, 5, &p));
    cr_assert_arr_eq(p, "hello", 5, "the read-only handle sees the write");
    cr_assert_eq((const uint8_t *)p - (const uint8_t *)mmapio_as_ptr(ro), 100);
    hz_assert_ok(mmapio_as_slice(m, LEN, 0, &p)); /* empty, at the end */
    hz_assert_ok(mmapio_as_slice(m, 0, LEN, &p));

    hz_assert_ret(mmapio_as_slice(NULL, 0, 1, &p), MMAPIO_E_INVALID_ARGUMENT);
    hz_assert_ret(mmapio_as_slice(m, 0, 1, NULL), MMAPIO_E_INVALID_ARGUMENT);
    hz_assert_ret(mmapio_as_slice_mut(NULL, 0, 1, &w),
                  MMAPIO_E_INVALID_ARGUMENT);
    hz_assert_ret(mmapio_as_slice(m, LEN, 1, &p), MMAPIO_E_OUT_OF_BOUNDS);
    hz_assert_ret(mmapio_as_slice(m, LEN + 1, 0, &p), MMAPIO_E_OUT_OF_BOUNDS);
    hz_assert_ret(mmapio_as_slice(m, 1, UINT64_MAX, &p),
                  MMAPIO_E_OUT_OF_BOUNDS);
    hz_assert_ret(mmapio_as_slice_mut(m, UINT64_MAX - 3, 10, &w),
                  MMAPIO_E_OUT_OF_BOUNDS);
    w = (void *)0x1;
    hz_assert_ret(mmapio_as_slice_mut(ro, 0, 1, &w), MMAPIO_E_INVALID_MODE);
    cr_assert_eq(w, (void *)0x1, "output written on failure");
    hz_assert_ok(mmapio_unmap(ro));
    hz_assert_ok(mmapio_unmap(m));
}

/* ---- advice, touch, lock ---- */

static long resident_pages(void)
{
    long size = 0, res = -1;
    FILE *f = fopen("/proc/self/statm", "r");
    if (f) {
        if (fscanf(f, "%ld %ld", &size, &res) != 2)
            res = -1;
        fclose(f);
    }
    return res;
}

Test(datapath, advice)
{
    mmapio_map *m = make_rw("a.dat", LEN);
    const mmapio_advice all[] = {
        MMAPIO_ADVICE_NORMAL, MMAPIO_ADVICE_RANDOM, MMAPIO_ADVICE_SEQUENTIAL,
        MMAPIO_ADVICE_WILL_NEED, MMAPIO_ADVICE_DONT_NEED,
    };
    for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++) {
        hz_assert_ok(mmapio_advise(m, 0, LEN, all[i]));
        hz_assert_ok(mmapio_advise(m, 4097, 10, all[i])); /* unaligned */
    }
    hz_assert_ok(mmapio_prefetch_range(m, 123, 5000));
    hz_assert_ok(mmapio_advise(m, LEN, 0, MMAPIO_ADVICE_RANDOM));
    hz_assert_ret(mmapio_advise(NULL, 0, 1, MMAPIO_ADVICE_NORMAL),
                  MMAPIO_E_INVALID_ARGUMENT);
    hz_assert_ret(mmapio_advise(m, 0, 1, (mmapio_advice)99),
                  MMAPIO_E_INVALID_ARGUMENT);
    hz_assert_ret(mmapio_advise(m, LEN - 1, 2, MMAPIO_ADVICE_NORMAL),
                  MMAPIO_E_OUT_OF_BOUNDS);
    hz_assert_ret(mmapio_prefetch_range(m, UINT64_MAX, 2),
                  MMAPIO_E_OUT_OF_BOUNDS);
    hz_assert_ret(mmapio_prefetch_range(NULL, 0, 1),
                  MMAPIO_E_INVALID_ARGUMENT);
    hz_assert_ok(mmapio_unmap(m));
}

Test(datapath, touch_maps_the_pages_by_reading)
{
    enum { BIG = 4 << 20 };
    mmapio_map *m = make_rw("t.dat", BIG);
    long page = (long)mmapio_page_size();
    long before = resident_pages();
    hz_assert_ok(mmapio_touch_pages(m));
    long after = resident_pages();
    cr_assert_geq(after - before, (long)(BIG / page) * 9 / 10,
                  "touching 4 MiB mapped only %ld pages", after - before);
    /* a read, not a write: the bytes are unchanged and nothing counted */
    cr_assert_eq(mmapio_pending_bytes(m), 0);
    hz_assert_ok(mmapio_touch_pages_range(m, 5, 1));
    hz_assert_ok(mmapio_touch_pages_range(m, BIG, 0));
    hz_assert_ret(mmapio_touch_pages_range(m, BIG - 1, 2),
                  MMAPIO_E_OUT_OF_BOUNDS);
    hz_assert_ret(mmapio_touch_pages_range(NULL, 0, 1),
                  MMAPIO_E_INVALID_ARGUMENT);
    hz_assert_ret(mmapio_touch_pages(NULL), MMAPIO_E_INVALID_ARGUMENT);

    /* copy-on-write: touching gives no private copies */
    mmapio_map *cow;
    hz_assert_ok(mmapio_open_cow(c, "t.dat", &cow));
    hz_assert_ok(mmapio_touch_pages(cow));
    hz_assert_ok(mmapio_update_region(m, 0, "new", 3));
    const uint8_t *p = mmapio_as_ptr(cow);
    cr_assert_arr_eq(p, "new", 3, "the touched copy-on-write page was "
                     "copied: it no longer sees the file");
    hz_assert_ok(mmapio_unmap(cow));
    hz_assert_ok(mmapio_unmap(m));
}

static long vm_locked_kib(void)
{
    char line[256];
    long kib = -1;
    FILE *f = fopen("/proc/self/status", "r");
    if (!f)
        return -1;
    while (fgets(line, sizeof(line), f))
        if (sscanf(line, "VmLck: %ld kB", &kib) == 1)
            break;
    fclose(f);
    return kib;
}

Test(datapath, lock_and_unlock)
{
    mmapio_map *m = make_rw("l.dat", LEN);
    long before = vm_locked_kib();
    hz_assert_ok(mmapio_lock_all(m));
    cr_assert_geq(vm_locked_kib() - before, LEN / 1024);
    /* the kernel refuses to drop locked pages: E_ADVICE_FAILED */
    hz_assert_ret(mmapio_advise(m, 0, LEN, MMAPIO_ADVICE_DONT_NEED),
                  MMAPIO_E_ADVICE_FAILED);
    hz_assert_ok(mmapio_unlock_all(m));
    cr_assert_eq(vm_locked_kib(), before);
    hz_assert_ok(mmapio_advise(m, 0, LEN, MMAPIO_ADVICE_DONT_NEED));
    hz_assert_ok(mmapio_lock(m, 4095, 2)); /* two pages */
    cr_assert_eq(vm_locked_kib() - before, 2 * (long)mmapio_page_size() / 1024);
    hz_assert_ok(mmapio_unlock(m, 4095, 2));
    hz_assert_ok(mmapio_lock(m, LEN, 0));
    hz_assert_ret(mmapio_lock(m, LEN - 1, 2), MMAPIO_E_OUT_OF_BOUNDS);
    hz_assert_ret(mmapio_unlock(m, LEN + 1, 0), MMAPIO_E_OUT_OF_BOUNDS);
    hz_assert_ret(mmapio_lock(NULL, 0, 1), MMAPIO_E_INVALID_ARGUMENT);
    hz_assert_ret(mmapio_unlock(NULL, 0, 1), MMAPIO_E_INVALID_ARGUMENT);
    hz_assert_ret(mmapio_lock_all(NULL), MMAPIO_E_INVALID_ARGUMENT);
    hz_assert_ret(mmapio_unlock_all(NULL), MMAPIO_E_INVALID_ARGUMENT);
    hz_assert_ok(mmapio_unmap(m));
}

/* Without the right to lock memory: E_LOCK_FAILED, not a crash. */
Test(datapath, lock_refused_is_lock_failed)
{
    mmapio_map *m = make_rw("lf.dat", LEN);
    pid_t pid = hz_fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        struct rlimit zero = { 0, 0 };
        if (setrlimit(RLIMIT_MEMLOCK, &zero) != 0)
            _exit(50);
        if (geteuid() == 0 && (setgroups(0, NULL) != 0 ||
                               setgid(65534) != 0 || setuid(65534) != 0))
            _exit(51);
        _exit(mmapio_lock_all(m) == MMAPIO_E_LOCK_FAILED ? 0 : 1);
    }
    int st = hz_wait_child(pid, 10000);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "status 0x%x", st);
    hz_assert_ok(mmapio_unmap(m));
}

/* ---- atomic views ---- */

Test(datapath, atomic_views_and_their_checks)
{
    mmapio_map *m = make_rw("at.dat", LEN);
    mmapio_map *ro = make_ro("at.dat");
    _Atomic uint32_t *a32;
    _Atomic uint64_t *a64;
    const _Atomic uint64_t *r64;

    hz_assert_ok(mmapio_atomic_u64(m, 8, &a64));
    atomic_store(a64, 0x1122334455667788ull);
    hz_assert_ok(mmapio_atomic_u64(ro, 8, (_Atomic uint64_t **)&r64));
    cr_assert_eq(atomic_load(r64), 0x1122334455667788ull,
                 "a read-only view loads what the writer stored");
    hz_assert_ok(mmapio_atomic_u32(m, LEN - 4, &a32));
    atomic_fetch_add(a32, 5);
    uint32_t v;
    hz_assert_ok(mmapio_read_into(m, LEN - 4, &v, 4));
    cr_assert_eq(v, 5);
    hz_assert_ok(mmapio_atomic_u32_slice(m, 0, LEN / 4, &a32));
    hz_assert_ok(mmapio_atomic_u64_slice(m, 8, LEN / 8 - 1, &a64));

    hz_assert_ret(mmapio_atomic_u32(m, 2, &a32), MMAPIO_E_MISALIGNED);
    hz_assert_ret(mmapio_atomic_u64(m, 4, &a64), MMAPIO_E_MISALIGNED);
    hz_assert_ret(mmapio_atomic_u32_slice(m, 1, 1, &a32), MMAPIO_E_MISALIGNED);
    hz_assert_ret(mmapio_atomic_u64_slice(m, 12, 1, &a64),
                  MMAPIO_E_MISALIGNED);
    hz_assert_ret(mmapio_atomic_u32(m, LEN, &a32), MMAPIO_E_OUT_OF_BOUNDS);
    hz_assert_ret(mmapio_atomic_u64(m, LEN - 4, &a64), MMAPIO_E_MISALIGNED);
    hz_assert_ret(mmapio_atomic_u64(m, LEN, &a64), MMAPIO_E_OUT_OF_BOUNDS);
    hz_assert_ret(mmapio_atomic_u64(m, UINT64_MAX - 7, &a64),
                  MMAPIO_E_OUT_OF_BOUNDS);
    hz_assert_ret(mmapio_atomic_u32_slice(m, 4, LEN / 4, &a32),
                  MMAPIO_E_OUT_OF_BOUNDS);
    hz_assert_ret(mmapio_atomic_u64_slice(m, 0, SIZE_MAX, &a64),
                  MMAPIO_E_OUT_OF_BOUNDS);
    hz_assert_ret(mmapio_atomic_u32_slice(m, 0, 0, &a32),
                  MMAPIO_E_INVALID_ARGUMENT);
    hz_assert_ret(mmapio_atomic_u32(NULL, 0, &a32), MMAPIO_E_INVALID_ARGUMENT);
    hz_assert_ret(mmapio_atomic_u64(m, 0, NULL), MMAPIO_E_INVALID_ARGUMENT);
    hz_assert_ok(mmapio_unmap(ro));
    hz_assert_ok(mmapio_unmap(m));
}

/* N processes, each with its own connection and handle, add K times to
 * one u64 and one u32 of an anonymous mapping: the sums are exact. */
Test(datapath, atomic_sum_across_processes)
{
    enum { N = 4 };
    const int k = scaled(200000);
    mmapio_map *m;
    c = hz_client();
    hz_assert_ok(mmapio_anon_create(c, "ctr", 4096, &m));
    pid_t kids[N];
    for (int i = 0; i < N; i++) {
        kids[i] = hz_fork();
        cr_assert_geq(kids[i], 0);
        if (kids[i] > 0)
            continue;
        mmapio_client *cc;
        mmapio_map *cm;
        _Atomic uint64_t *a64;
        _Atomic uint32_t *a32;
        if (mmapio_connect(NULL, &cc) != 0 || mmapio_anon_open(cc, "ctr", &cm) ||
            mmapio_atomic_u64(cm, 64, &a64) || mmapio_atomic_u32(cm, 128, &a32))
            _exit(50);
        for (int j = 0; j < k; j++) {
            atomic_fetch_add_explicit(a64, 1, memory_order_relaxed);
            atomic_fetch_add_explicit(a32, 3, memory_order_relaxed);
        }
        _exit(0);
    }
    for (int i = 0; i < N; i++) {
        int st = hz_wait_child(kids[i], 50000);
        cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "child %d: 0x%x", i,
                  st);
    }
    _Atomic uint64_t *a64;
    _Atomic uint32_t *a32;
    hz_assert_ok(mmapio_atomic_u64(m, 64, &a64));
    hz_assert_ok(mmapio_atomic_u32(m, 128, &a32));
    cr_assert_eq(atomic_load(a64), (uint64_t)N * (uint64_t)k);
    cr_assert_eq(atomic_load(a32), (uint32_t)(3u * N * (unsigned)k));
    hz_assert_ok(mmapio_unmap(m));
}

/* ---- wait and wake ---- */

Test(datapath, wait_returns_at_once_when_the_value_differs)
{
    mmapio_map *m = make_rw("w.dat", 4096);
    _Atomic uint32_t *w;
    hz_assert_ok(mmapio_atomic_u32(m, 16, &w));
    atomic_store(w, 7);
    int64_t t0 = hz_now_ms();
    hz_assert_ok(mmapio_wait_u32(m, 16, 6, -1));
    hz_assert_ok(mmapio_wait_u32(m, 16, 8, 10000));
    cr_assert_lt(hz_now_ms() - t0, 1000);
    hz_assert_ok(mmapio_unmap(m));
}

Test(datapath, wait_times_out_after_the_time)
{
    mmapio_map *m = make_rw("w.dat", 4096);
    int64_t t0 = hz_now_ms();
    hz_assert_ret(mmapio_wait_u32(m, 0, 0, 300), MMAPIO_E_TIMED_OUT);
    int64_t took = hz_now_ms() - t0;
    cr_assert_geq(took, 299, "timed out after %lld ms", (long long)took);
    cr_assert_lt(took, 10000);
    t0 = hz_now_ms();
    hz_assert_ret(mmapio_wait_u32(m, 0, 0, 0), MMAPIO_E_TIMED_OUT);
    cr_assert_lt(hz_now_ms() - t0, 1000);
    cr_assert_str_neq(mmapio_last_error(), "");
    hz_assert_ok(mmapio_unmap(m));
}

/* The Linux library waits on the kernel's futex; the daemon's Wait and
 * Wake (for systems without one) are refused here, saying why. */
Test(datapath, the_linux_daemon_refuses_wait_and_wake)
{
    int fd = raw_connect(hz.sock);
    cr_assert_geq(fd, 0);
    cr_assert_eq(raw_hello(fd, WIRE_PROTOCOL), 0);
    Mmapio__Wait wt = MMAPIO__WAIT__INIT;
    Mmapio__Wake wk = MMAPIO__WAKE__INIT;
    wk.count = 1;
    for (int i = 0; i < 2; i++) {
        Mmapio__Request req = MMAPIO__REQUEST__INIT;
        req.id = 7 + (uint64_t)i;
        req.op_case = i ? MMAPIO__REQUEST__OP_WAKE : MMAPIO__REQUEST__OP_WAIT;
        if (i)
            req.wake = &wk;
        else
            req.wait = &wt;
        cr_assert_eq(raw_send(fd, &req, -1), 0);
        Mmapio__ServerMessage *msg = NULL;
        cr_assert_eq(raw_recv(fd, 5000, &msg, NULL), 0);
        cr_assert_eq(msg->reply->id, req.id);
        cr_assert_eq(msg->reply->error, MMAPIO_E_INVALID_ARGUMENT);
        cr_assert(strstr(msg->reply->message, "futex"), "%s", msg->reply->message);
        mmapio__server_message__free_unpacked(msg, NULL);
    }
    cr_assert_eq(raw_ping(fd, 9), 0);
    close(fd);
}

Test(datapath, wait_wake_bad_arguments)
{
    mmapio_map *m = make_rw("w.dat", 4096);
    mmapio_map *ro = make_ro("w.dat");
    hz_assert_ret(mmapio_wait_u32(NULL, 0, 0, 0), MMAPIO_E_INVALID_ARGUMENT);
    hz_assert_ret(mmapio_wait_u32(m, 2, 0, 0), MMAPIO_E_MISALIGNED);
    hz_assert_ret(mmapio_wait_u32(m, 4096, 0, 0), MMAPIO_E_OUT_OF_BOUNDS);
    hz_assert_ret(mmapio_wait_u32(m, UINT64_MAX - 3, 0, 0),
                  MMAPIO_E_OUT_OF_BOUNDS);
    hz_assert_ret(mmapio_wake_u32(NULL, 0, 1), MMAPIO_E_INVALID_ARGUMENT);
    hz_assert_ret(mmapio_wake_u32(m, 6, 1), MMAPIO_E_MISALIGNED);
    hz_assert_ret(mmapio_wake_u32(m, 4096, 1), MMAPIO_E_OUT_OF_BOUNDS);
    hz_assert_ret(mmapio_wake_u32(m, 0, 0), MMAPIO_E_INVALID_ARGUMENT);
    hz_assert_ret(mmapio_wake_u32(m, 0, -1), MMAPIO_E_INVALID_ARGUMENT);
    cr_assert_eq(mmapio_wake_u32(m, 0, 1), 0, "nobody waits");
    /* a read-only holder may wait (and wake) too */
    hz_assert_ret(mmapio_wait_u32(ro, 4092, 0, 1), MMAPIO_E_TIMED_OUT);
    cr_assert_eq(mmapio_wake_u32(ro, 4092, INT_MAX), 0);
    hz_assert_ok(mmapio_unmap(ro));
    hz_assert_ok(mmapio_unmap(m));
}

/* Starts `n` processes that each open anon "fx" on their own connection
 * and wait on offset 32 for a value other than 0; each exits with 0 when
 * the wait returned MMAPIO_OK and the value was still `want`. */
static void start_waiters(pid_t *kids, int n, uint32_t want, int timeout_ms)
{
    for (int i = 0; i < n; i++) {
        kids[i] = hz_fork();
        cr_assert_geq(kids[i], 0);
        if (kids[i] > 0)
            continue;
        mmapio_client *cc;
        mmapio_map *cm;
        _Atomic uint32_t *w;
        if (mmapio_connect(NULL, &cc) != 0 || mmapio_anon_open(cc, "fx", &cm) ||
            mmapio_atomic_u32(cm, 32, &w))
            _exit(50);
        int r = mmapio_wait_u32(cm, 32, 0, timeout_ms);
        _exit(r == MMAPIO_OK ? (atomic_load(w) == want ? 0 : 2) : 1);
    }
}

/* Wakes until `n` were woken (bounded): a wake from this process reaches
 * waiters in others only if the futex is the shared kind. */
static int wake_until(mmapio_map *m, int n)
{
    int woken = 0;
    int64_t end = hz_now_ms() + 20000;
    while (woken < n && hz_now_ms() < end) {
        int r = mmapio_wake_u32(m, 32, INT_MAX);
        cr_assert_geq(r, 0);
        woken += r;
        if (woken < n)
            sleep_ms(5);
    }
    return woken;
}

Test(datapath, wake_reaches_waiters_in_other_processes)
{
    enum { N = 3 };
    mmapio_map *m;
    pid_t kids[N];
    c = hz_client();
    hz_assert_ok(mmapio_anon_create(c, "fx", 4096, &m));
    /* the value stays 0: a real wake returns OK even so */
    start_waiters(kids, N, 0, -1);
    cr_assert_eq(wake_until(m, N), N, "the waiters were never woken");
    for (int i = 0; i < N; i++) {
        int st = hz_wait_child(kids[i], 10000);
        cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "waiter %d: 0x%x", i,
                  st);
    }
    hz_assert_ok(mmapio_unmap(m));
}

Test(datapath, a_store_and_wake_ends_a_timed_wait)
{
    mmapio_map *m;
    pid_t kid;
    _Atomic uint32_t *w;
    c = hz_client();
    hz_assert_ok(mmapio_anon_create(c, "fx", 4096, &m));
    hz_assert_ok(mmapio_atomic_u32(m, 32, &w));
    start_waiters(&kid, 1, 1, 30000);
    sleep_ms(100);
    atomic_store(w, 1);
    cr_assert_geq(mmapio_wake_u32(m, 32, 1), 0);
    int64_t t0 = hz_now_ms();
    int st = hz_wait_child(kid, 20000);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "waiter: 0x%x", st);
    cr_assert_lt(hz_now_ms() - t0, 15000, "the waiter slept to its timeout");
    hz_assert_ok(mmapio_unmap(m));
}

static void on_usr1(int sig)
{
    (void)sig;
}

/* Signals (EINTR) neither end the wait early nor extend it. */
Test(datapath, signals_during_a_wait)
{
    mmapio_map *m = make_rw("w.dat", 4096);
    struct hz_chan ch;
    cr_assert_eq(hz_chan_open(&ch), 0);
    pid_t kid = hz_fork();
    cr_assert_geq(kid, 0);
    if (kid == 0) {
        hz_chan_keep_write(&ch);
        struct sigaction sa;
        memset(&sa, 0, sizeof(sa));
        sa.sa_handler = on_usr1; /* no SA_RESTART */
        sigaction(SIGUSR1, &sa, NULL);
        hz_chan_send(&ch, 'r');
        int64_t t0 = hz_now_ms();
        int r = mmapio_wait_u32(m, 0, 0, 600);
        int64_t took = hz_now_ms() - t0;
        _exit(r != MMAPIO_E_TIMED_OUT ? 1 : took < 599 ? 2 : took > 5000 ? 3
                                                                       : 0);
    }
    hz_chan_keep_read(&ch);
    cr_assert_eq(hz_chan_recv(&ch, 10000), 'r');
    for (int i = 0; i < 5; i++) {
        sleep_ms(80);
        kill(kid, SIGUSR1);
    }
    int st = hz_wait_child(kid, 10000);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0,
              "waiter: 0x%x (1: not timed out, 2: early, 3: late)", st);
    hz_chan_close(&ch);
    hz_assert_ok(mmapio_unmap(m));
}

/* ---- iteration ---- */

Test(datapath, chunks_and_pages)
{
    mmapio_map *m = make_rw("it.dat", LEN);
    mmapio_iter it;
    uint64_t off, expect = 0;
    const void *chunk;
    size_t len;
    int n = 0;

    hz_assert_ok(mmapio_chunks(m, 5000, &it));
    while (mmapio_iter_next(&it, &off, &chunk, &len)) {
        cr_assert_eq(off, expect);
        cr_assert_eq(len, n < 3 ? 5000u : LEN - 15000u);
        cr_assert_eq((const uint8_t *)chunk,
                     (const uint8_t *)mmapio_as_ptr(m) + off);
        expect += len;
        n++;
    }
    cr_assert_eq(n, 4);
    cr_assert_eq(expect, LEN);
    cr_assert(!mmapio_iter_next(&it, &off, &chunk, &len), "stays at the end");

    hz_assert_ok(mmapio_pages(m, &it));
    n = 0;
    while (mmapio_iter_next(&it, NULL, NULL, &len)) {
        cr_assert_eq(len, mmapio_page_size());
        n++;
    }
    cr_assert_eq(n, (int)(LEN / mmapio_page_size()));

    hz_assert_ret(mmapio_chunks(m, 0, &it), MMAPIO_E_INVALID_ARGUMENT);
    hz_assert_ret(mmapio_chunks(NULL, 1, &it), MMAPIO_E_INVALID_ARGUMENT);
    hz_assert_ret(mmapio_chunks(m, 1, NULL), MMAPIO_E_INVALID_ARGUMENT);
    hz_assert_ret(mmapio_pages(NULL, &it), MMAPIO_E_INVALID_ARGUMENT);
    cr_assert(!mmapio_iter_next(NULL, &off, &chunk, &len));
    hz_assert_ok(mmapio_unmap(m));
}

static int fill_chunk(uint64_t off, void *chunk, size_t len, void *user)
{
    ++*(int *)user;
    memset(chunk, (int)(off / 1000 + 1), len);
    return 0;
}

static int stop_at_two(uint64_t off, void *chunk, size_t len, void *user)
{
    (void)off;
    (void)chunk;
    (void)len;
    return ++*(int *)user == 2 ? 42 : 0;
}

Test(datapath, chunks_mut)
{
    mmapio_map *m = make_rw("cm.dat", LEN);
    mmapio_map *ro = make_ro("cm.dat");
    int calls = 0;
    uint8_t b;

    hz_assert_ok(mmapio_chunks_mut(m, 1000, fill_chunk, &calls));
    cr_assert_eq(calls, (LEN + 999) / 1000);
    hz_assert_ok(mmapio_read_into(ro, 16383, &b, 1));
    cr_assert_eq(b, 17);
    calls = 0;
    cr_assert_eq(mmapio_chunks_mut(m, 100, stop_at_two, &calls), 42);
    cr_assert_eq(calls, 2);
    hz_assert_ret(mmapio_chunks_mut(ro, 100, stop_at_two, &calls),
                  MMAPIO_E_INVALID_MODE);
    hz_assert_ret(mmapio_chunks_mut(m, 0, stop_at_two, &calls),
                  MMAPIO_E_INVALID_ARGUMENT);
    hz_assert_ret(mmapio_chunks_mut(m, 100, NULL, NULL),
                  MMAPIO_E_INVALID_ARGUMENT);
    hz_assert_ret(mmapio_chunks_mut(NULL, 100, stop_at_two, &calls),
                  MMAPIO_E_INVALID_ARGUMENT);
    hz_assert_ok(mmapio_unmap(ro));
    hz_assert_ok(mmapio_unmap(m));
}

/* ---- segments ---- */

Test(datapath, segments)
{
    mmapio_map *m = make_rw("sg.dat", LEN);
    mmapio_map *ro = make_ro("sg.dat");
    mmapio_segment s, r;
    const void *p;
    void *w;
    char buf[16];

    hz_assert_ok(mmapio_segment_init(&s, m, 1000, 100));
    hz_assert_ok(mmapio_segment_write(&s, 10, "segment", 7));
    hz_assert_ok(mmapio_read_into(m, 1010, buf, 7));
    cr_assert_arr_eq(buf, "segment", 7, "offsets are relative");
    hz_assert_ok(mmapio_segment_init(&r, ro, 1000, 100));
    hz_assert_ok(mmapio_segment_read(&r, 10, buf, 7));
    cr_assert_arr_eq(buf, "segment", 7);
    hz_assert_ok(mmapio_segment_slice(&r, &p));
    cr_assert_eq((const uint8_t *)p, (const uint8_t *)mmapio_as_ptr(ro) + 1000);
    hz_assert_ok(mmapio_segment_slice_mut(&s, &w));
    hz_assert_ok(mmapio_segment_write(&s, 100, "", 0));

    hz_assert_ret(mmapio_segment_slice_mut(&r, &w), MMAPIO_E_INVALID_MODE);
    hz_assert_ret(mmapio_segment_write(&r, 0, "x", 1), MMAPIO_E_INVALID_MODE);
    /* within the mapping but past the segment */
    hz_assert_ret(mmapio_segment_write(&s, 95, "0123456789", 10),
                  MMAPIO_E_OUT_OF_BOUNDS);
    hz_assert_ret(mmapio_segment_read(&s, 101, buf, 0),
                  MMAPIO_E_OUT_OF_BOUNDS);
    hz_assert_ret(mmapio_segment_read(&s, UINT64_MAX, buf, 2),
                  MMAPIO_E_OUT_OF_BOUNDS);
    hz_assert_ret(mmapio_segment_init(&s, m, LEN - 10, 11),
                  MMAPIO_E_OUT_OF_BOUNDS);
    hz_assert_ret(mmapio_segment_init(&s, m, UINT64_MAX, 2),
                  MMAPIO_E_OUT_OF_BOUNDS);
    hz_assert_ret(mmapio_segment_init(NULL, m, 0, 1),
                  MMAPIO_E_INVALID_ARGUMENT);
    hz_assert_ret(mmapio_segment_init(&s, NULL, 0, 1),
                  MMAPIO_E_INVALID_ARGUMENT);
    hz_assert_ret(mmapio_segment_read(NULL, 0, buf, 1),
                  MMAPIO_E_INVALID_ARGUMENT);
    hz_assert_ret(mmapio_segment_read(&r, 0, NULL, 1),
                  MMAPIO_E_INVALID_ARGUMENT);
    hz_assert_ret(mmapio_segment_write(NULL, 0, "x", 1),
                  MMAPIO_E_INVALID_ARGUMENT);
    hz_assert_ret(mmapio_segment_slice(NULL, &p), MMAPIO_E_INVALID_ARGUMENT);
    hz_assert_ret(mmapio_segment_slice(&r, NULL), MMAPIO_E_INVALID_ARGUMENT);
    hz_assert_ok(mmapio_unmap(ro));
    hz_assert_ok(mmapio_unmap(m));
}

/* Every use of a segment past the end after a shrink is OUT_OF_BOUNDS. */
static void expect_segment_gone(mmapio_segment *s)
{
    const void *p;
    void *w;
    char buf[4];
    hz_assert_ret(mmapio_segment_slice(s, &p), MMAPIO_E_OUT_OF_BOUNDS);
    hz_assert_ret(mmapio_segment_slice_mut(s, &w), MMAPIO_E_OUT_OF_BOUNDS);
    /* even a range of the segment still below the new end */
    hz_assert_ret(mmapio_segment_read(s, 0, buf, 4), MMAPIO_E_OUT_OF_BOUNDS);
    hz_assert_ret(mmapio_segment_write(s, 0, "abcd", 4),
                  MMAPIO_E_OUT_OF_BOUNDS);
}

Test(datapath, segment_rechecked_after_own_shrink)
{
    mmapio_map *m = make_rw("sh.dat", LEN);
    mmapio_segment past, below;
    hz_assert_ok(mmapio_segment_init(&past, m, 6000, 4000));
    hz_assert_ok(mmapio_segment_init(&below, m, 0, 1000));
    hz_assert_ok(mmapio_resize(m, 8000));
    expect_segment_gone(&past);
    hz_assert_ok(mmapio_segment_write(&below, 0, "ok", 2));
    hz_assert_ok(mmapio_resize(m, LEN)); /* back: the segment works again */
    hz_assert_ok(mmapio_segment_write(&past, 0, "ok", 2));
    hz_assert_ok(mmapio_unmap(m));
}

/* Another process shrinks the file under this holder (a program with the
 * file open; the daemon refuses a shrink from another holder with
 * E_BUSY); this handle refreshes: its segment past the new end is gone. */
Test(datapath, segment_rechecked_after_another_process_shrinks)
{
    mmapio_map *m = make_rw("xs.dat", LEN);
    mmapio_segment past;
    hz_assert_ok(mmapio_segment_init(&past, m, 8000, 4000));
    hz_assert_ok(mmapio_segment_write(&past, 0, "before", 6));
    char path[512];
    snprintf(path, sizeof(path), "%s", hz_path(&hz, "xs.dat"));
    pid_t kid = hz_fork();
    cr_assert_geq(kid, 0);
    if (kid == 0)
        _exit(truncate(path, 4096) == 0 ? 0 : 1);
    int st = hz_wait_child(kid, 10000);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    hz_assert_ok(mmapio_refresh(m));
    cr_assert_eq(mmapio_len(m), 4096);
    expect_segment_gone(&past);
    hz_assert_ok(mmapio_unmap(m));
}

/* A segment write is an update_region: it counts toward the policy. */
Test(datapath, segment_writes_count_toward_the_policy)
{
    mmapio_map *m = make_rw("sp.dat", LEN);
    mmapio_segment s;
    mmapio_flush_policy manual = { MMAPIO_FLUSH_MANUAL, 0 };
    mmapio_flush_policy every2 = { MMAPIO_FLUSH_EVERY_WRITES, 2 };
    hz_assert_ok(mmapio_set_flush_policy(m, manual));
    hz_assert_ok(mmapio_segment_init(&s, m, 100, 1000));
    hz_assert_ok(mmapio_segment_write(&s, 0, "0123456789", 10));
    cr_assert_eq(mmapio_pending_bytes(m), 10);
    hz_assert_ok(mmapio_set_flush_policy(m, every2));
    hz_assert_ok(mmapio_segment_write(&s, 50, "abc", 3));
    cr_assert_eq(mmapio_pending_bytes(m), 13);
    hz_assert_ok(mmapio_segment_write(&s, 60, "de", 2));
    cr_assert_eq(mmapio_pending_bytes(m), 0, "the second write flushed");
    hz_assert_ok(mmapio_unmap(m));
}

/* ---- stdio streams ---- */

Test(datapath, reader)
{
    mmapio_map *m = make_rw("rd.dat", LEN);
    uint8_t want[LEN], got[LEN + 10];
    for (size_t i = 0; i < LEN; i++)
        want[i] = (uint8_t)(i * 7);
    hz_assert_ok(mmapio_update_region(m, 0, want, LEN));
    mmapio_map *ro = make_ro("rd.dat");
    FILE *f = mmapio_reader(ro);
    cr_assert_not_null(f);
    cr_assert_eq(fread(got, 1, sizeof(got), f), LEN);
    cr_assert(feof(f));
    cr_assert_arr_eq(got, want, LEN);
    cr_assert_eq(fseek(f, -10, SEEK_END), 0);
    cr_assert_eq(ftell(f), LEN - 10);
    cr_assert_eq(fread(got, 1, 20, f), 10);
    cr_assert_arr_eq(got, want + LEN - 10, 10);
    cr_assert_eq(fseek(f, 100, SEEK_SET), 0);
    cr_assert_eq(fseek(f, 5, SEEK_CUR), 0);
    cr_assert_eq(fgetc(f), want[105]);
    cr_assert_eq(fseek(f, -1000, SEEK_SET), -1);
    cr_assert_eq(errno, EINVAL);
    cr_assert_eq(fseek(f, LEN + 5, SEEK_SET), 0); /* past the end: EOF */
    cr_assert_eq(fgetc(f), EOF);
    cr_assert_eq(fputc('x', f), EOF, "a reader does not write");
    cr_assert_eq(fclose(f), 0);
    /* the mapping outlives its stream */
    hz_assert_ok(mmapio_read_into(ro, 0, got, 4));
    errno = 0;
    cr_assert_null(mmapio_reader(NULL));
    cr_assert_eq(errno, EINVAL);
    hz_assert_ok(mmapio_unmap(ro));
    hz_assert_ok(mmapio_unmap(m));
}

Test(datapath, writer)
{
    mmapio_map *m = make_rw("wr.dat", 4096);
    mmapio_map *ro = make_ro("wr.dat");
    mmapio_flush_policy manual = { MMAPIO_FLUSH_MANUAL, 0 };
    hz_assert_ok(mmapio_set_flush_policy(m, manual));
    FILE *f = mmapio_writer(m);
    cr_assert_not_null(f);
    cr_assert_eq(fseek(f, 1000, SEEK_SET), 0);
    cr_assert_eq(fwrite("stream!", 1, 7, f), 7);
    cr_assert_eq(fflush(f), 0);
    char buf[8];
    hz_assert_ok(mmapio_read_into(ro, 1000, buf, 7));
    cr_assert_arr_eq(buf, "stream!", 7);
    cr_assert_eq(mmapio_pending_bytes(m), 7, "the write counted as an update");
    cr_assert_eq(fseek(f, 1000, SEEK_SET), 0);
    cr_assert_eq(fread(buf, 1, 7, f), 7, "a writer reads too");
    cr_assert_arr_eq(buf, "stream!", 7);

    /* never past the end: a short write, ENOSPC, the length unchanged */
    char big[64];
    memset(big, 'z', sizeof(big));
    cr_assert_eq(fseek(f, -10, SEEK_END), 0);
    setvbuf(f, NULL, _IONBF, 0);
    errno = 0;
    size_t n = fwrite(big, 1, sizeof(big), f);
    cr_assert_lt(n, sizeof(big));
    cr_assert_eq(errno, ENOSPC);
    cr_assert(ferror(f));
    cr_assert_eq(mmapio_len(m), 4096);
    hz_assert_ok(mmapio_read_into(ro, 4086, buf, 8));
    cr_assert_arr_eq(buf, "zzzzzzzz", 8, "what fitted was written");
    cr_assert_eq(fclose(f), 0);
    hz_assert_ok(mmapio_update_region(m, 0, "still", 5));

    errno = 0;
    cr_assert_null(mmapio_writer(ro));
    cr_assert_eq(errno, EACCES);
    mmapio_map *cow;
    hz_assert_ok(mmapio_open_cow(c, "wr.dat", &cow));
    errno = 0;
    cr_assert_null(mmapio_writer(cow));
    cr_assert_eq(errno, EACCES);
    errno = 0;
    cr_assert_null(mmapio_writer(NULL));
    cr_assert_eq(errno, EINVAL);
    hz_assert_ok(mmapio_unmap(cow));
    hz_assert_ok(mmapio_unmap(ro));
    hz_assert_ok(mmapio_unmap(m));
}

/* Writes through the writer and segments reach watchers (on another
 * connection) like update_region's. */
struct seen {
    int n;
    uint64_t off[8], len[8];
};

static void on_change(const mmapio_change_event *ev, void *user)
{
    struct seen *s = user;
    if (ev->kind == MMAPIO_CHANGE_MODIFIED && ev->has_range && s->n < 8) {
        s->off[s->n] = ev->offset;
        s->len[s->n] = ev->len;
        s->n++;
    }
}

static void wait_seen(mmapio_client *wc, struct seen *s, int n)
{
    int64_t end = hz_now_ms() + 10000;
    while (s->n < n && hz_now_ms() < end)
        mmapio_client_dispatch(wc, 100);
    cr_assert_eq(s->n, n, "%d events, expected %d", s->n, n);
}

Test(datapath, writer_and_segment_writes_reach_watchers)
{
    mmapio_map *m = make_rw("wt.dat", 4096);
    mmapio_client *wc = hz_client();
    mmapio_map *wm;
    mmapio_watcher *w;
    struct seen s = { 0 };
    hz_assert_ok(mmapio_open_ro(wc, "wt.dat", &wm));
    hz_assert_ok(mmapio_watch(wm, on_change, &s, &w));

    FILE *f = mmapio_writer(m);
    cr_assert_not_null(f);
    cr_assert_eq(fseek(f, 300, SEEK_SET), 0);
    cr_assert_eq(fwrite("abcd", 1, 4, f), 4);
    cr_assert_eq(fflush(f), 0);
    wait_seen(wc, &s, 1);
    cr_assert(s.off[0] == 300 && s.len[0] == 4, "%llu+%llu",
              (unsigned long long)s.off[0], (unsigned long long)s.len[0]);
    cr_assert_eq(fclose(f), 0);

    mmapio_segment seg;
    hz_assert_ok(mmapio_segment_init(&seg, m, 2000, 100));
    hz_assert_ok(mmapio_segment_write(&seg, 5, "xyz", 3));
    wait_seen(wc, &s, 2);
    cr_assert(s.off[1] == 2005 && s.len[1] == 3);
    mmapio_unwatch(w);
    hz_assert_ok(mmapio_unmap(wm));
    mmapio_disconnect(wc);
    hz_assert_ok(mmapio_unmap(m));
}
