/*
 * bench_flush: what flush policies cost, and what flushing costs others.
 *
 * Starts its own mmapiod ($MMAPIOD, else this build tree's) on a fresh
 * temporary directory and prints, with baselines measured in the same run:
 *
 *  1. update_region of 4 KiB under NEVER and under EveryBytes(1 MiB),
 *     beside a plain 4 KiB memcpy into the same kind of mapping (and,
 *     for EveryBytes, beside memcpy + the same msync every 1 MiB: the
 *     floor of any implementation that flushes synchronously), and under
 *     NEVER while another client watches the mapping and never reads its
 *     events (the writer's notices are paced: client/notice.h). Offsets
 *     cycle over a 64 MiB file. Median of several runs, ns per write.
 *  2. Another client's stat (mmapio_refresh) and ping latency, p50/p99,
 *     while the daemon flushes a large dirty file mapping (1 GiB by
 *     default; a raw client's Flush request), beside the same with no
 *     flush running.
 *  3. The daemon's CPU and wake-ups while it holds 1,000 clean
 *     EveryMillis(10) mappings, then after one write to each; then with
 *     every holder's writable pointer out (raw writers, which the daemon
 *     must look for), idle over --raw-secs (10 s) from /proc/PID/stat,
 *     and how soon one raw store to each is flushed.
 *  4. update_region of 4 KiB under EveryBytes(1 MiB) beside a 4 KiB
 *     memcpy (the C library's, and the compiler's inline copy) into the
 *     same file through the same mapping, whose pages another thread
 *     fdatasyncs every MiB: each pass covers the 64 MiB file once, made
 *     clean first, so every write pays the first-store fault on a clean
 *     page. Rounds of one pass of each; median and fastest.
 *
 * Not a test: nothing is asserted. Options: --help.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/statvfs.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "benchkit.h"
#include "pagecache.h"
#include "wire.h"

#define MIB (UINT64_C(1) << 20)

static struct {
    long iters;          /* part 1, NEVER and memcpy */
    long flush_iters;    /* part 1, EveryBytes and its floor */
    int runs;
    uint64_t flush_mib;  /* part 2 */
    int samples;
    int maps;            /* part 3 */
    int idle_secs;
    int raw_secs;
    int pass_runs;       /* part 4 */
    bool part[5];
} opt = {
    .iters = 2000000,
    .flush_iters = 250000,
    .runs = 5,
    .flush_mib = 1024,
    .samples = 2000,
    .maps = 1000,
    .idle_secs = 5,
    .raw_secs = 10,
    .pass_runs = 15,
    .part = { false, true, true, true, true },
};

const char bench_name[] = "bench_flush";
static struct hz_daemon d;

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
    CHECK(mmapio_open(c, path, &o, &m));
    return m;
}

static long proc_rss_kib(pid_t pid)
{
    char path[64], line[256];
    snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "re");
    if (!f)
        return -1;
    long v = -1;
    while (fgets(line, sizeof(line), f))
        if (sscanf(line, "VmRSS: %ld", &v) == 1)
            break;
    fclose(f);
    return v;
}

/* ---- 1. update_region vs memcpy --------------------------------------- */

enum { CHUNK = 4096 };
#define U_FILE (64 * MIB)
#define U_SLOTS (U_FILE / CHUNK)

static uint8_t src[CHUNK];

enum variant { V_MEMCPY, V_NEVER, V_WATCHED, V_MEMCPY_MSYNC, V_EVERY_BYTES,
               V_COUNT };
static const char *const vname[V_COUNT] = {
    "memcpy 4 KiB (baseline)",
    "update_region, NEVER",
    "update_region, NEVER, watched",
    "memcpy + msync every 1 MiB (floor)",
    "update_region, EveryBytes(1 MiB)",
};

static double run_variant(enum variant v, mmapio_map *m, long iters)
{
    uint8_t *base = mmapio_as_mut_ptr(m);
    /* Start clean: every variant pays the same first-write faults. */
    msync(base, U_FILE, MS_SYNC);
    int64_t t0 = now_ns();
    switch (v) {
    case V_MEMCPY:
        for (long i = 0; i < iters; i++) {
            memcpy(base + (uint64_t)(i % U_SLOTS) * CHUNK, src, CHUNK);
            __asm__ volatile("" ::: "memory");
        }
        break;
    case V_MEMCPY_MSYNC:
        for (long i = 0; i < iters; i++) {
            memcpy(base + (uint64_t)(i % U_SLOTS) * CHUNK, src, CHUNK);
            if (i % (MIB / CHUNK) == MIB / CHUNK - 1)
                msync(base, U_FILE, MS_SYNC);
            __asm__ volatile("" ::: "memory");
        }
        break;
    case V_NEVER:
    case V_WATCHED:
    case V_EVERY_BYTES:
        for (long i = 0; i < iters; i++)
            if (mmapio_update_region(m, (uint64_t)(i % U_SLOTS) * CHUNK, src,
                                     CHUNK) != MMAPIO_OK)
                die("update_region failed");
        break;
    default:
        break;
    }
    int64_t t1 = now_ns();
    return (double)(t1 - t0) / (double)iters;
}

static void ignore_event(const mmapio_change_event *ev, void *user)
{
    (void)ev;
    (void)user;
}

static void part_update_region(void)
{
    mmapio_client *c, *wc;
    mmapio_map *wm;
    mmapio_watcher *w;
    CHECK(mmapio_connect(d.sock, &c));
    CHECK(mmapio_connect(d.sock, &wc));
    mmapio_flush_policy never = { MMAPIO_FLUSH_NEVER, 0 };
    mmapio_flush_policy eb = { MMAPIO_FLUSH_EVERY_BYTES, MIB };
    mmapio_map *m[V_COUNT];
    m[V_MEMCPY] = create_with(c, "u_memcpy.dat", U_FILE, never);
    m[V_NEVER] = create_with(c, "u_never.dat", U_FILE, never);
    m[V_WATCHED] = create_with(c, "u_watched.dat", U_FILE, never);
    /* A watcher that never dispatches: its events pile up at the daemon. */
    CHECK(mmapio_open_ro(wc, "u_watched.dat", &wm));
    CHECK(mmapio_watch(wm, ignore_event, NULL, &w));
    m[V_MEMCPY_MSYNC] = create_with(c, "u_msync.dat", U_FILE, never);
    m[V_EVERY_BYTES] = create_with(c, "u_eb.dat", U_FILE, eb);
    for (size_t i = 0; i < CHUNK; i++)
        src[i] = (uint8_t)(i * 131 + 7);
    /* Fault every page in once, so that no variant measures allocation. */
    for (int v = 0; v < V_COUNT; v++) {
        memset(mmapio_as_mut_ptr(m[v]), 1, U_FILE);
        msync(mmapio_as_mut_ptr(m[v]), U_FILE, MS_SYNC);
    }

    double *ns[V_COUNT];
    for (int v = 0; v < V_COUNT; v++)
        ns[v] = calloc((size_t)opt.runs, sizeof(double));
    for (int r = 0; r < opt.runs; r++) {
        for (int v = 0; v < V_COUNT; v++) {
            long it = v >= V_MEMCPY_MSYNC ? opt.flush_iters : opt.iters;
            ns[v][r] = run_variant((enum variant)v, m[v], it);
        }
        fprintf(stderr, "  [1] run %d/%d done\n", r + 1, opt.runs);
    }
    double med[V_COUNT];
    for (int v = 0; v < V_COUNT; v++)
        med[v] = median(ns[v], opt.runs);

    printf("\n1. update_region of 4 KiB vs memcpy of 4 KiB (64 MiB file, "
           "offsets cycling; median of %d runs)\n", opt.runs);
    printf("   %-38s %12s %10s %12s\n", "", "ns/write", "writes", "ratio");
    printf("   %-38s %12.1f %10ld %12s\n", vname[V_MEMCPY], med[V_MEMCPY],
           opt.iters, "1.00");
    printf("   %-38s %12.1f %10ld %12.3f   (target <= 1.10)\n",
           vname[V_NEVER], med[V_NEVER], opt.iters,
           med[V_NEVER] / med[V_MEMCPY]);
    printf("   %-38s %12.1f %10ld %12.3f   (vs plain memcpy)\n",
           vname[V_WATCHED], med[V_WATCHED], opt.iters,
           med[V_WATCHED] / med[V_MEMCPY]);
    printf("   %-38s %12.1f %10ld %12.3f   (vs plain memcpy)\n",
           vname[V_MEMCPY_MSYNC], med[V_MEMCPY_MSYNC], opt.flush_iters,
           med[V_MEMCPY_MSYNC] / med[V_MEMCPY]);
    printf("   %-38s %12.1f %10ld %12.3f   (vs plain memcpy)\n",
           vname[V_EVERY_BYTES], med[V_EVERY_BYTES], opt.flush_iters,
           med[V_EVERY_BYTES] / med[V_MEMCPY]);
    printf("   %-38s %12s %10s %12.3f   (vs memcpy + msync floor)\n", "", "",
           "", med[V_EVERY_BYTES] / med[V_MEMCPY_MSYNC]);
    printf("   runs (ns/write):");
    for (int v = 0; v < V_COUNT; v++) {
        printf("\n     %-36s", vname[v]);
        for (int r = 0; r < opt.runs; r++)
            printf(" %8.1f", ns[v][r]);
    }
    printf("\n");
    fflush(stdout);
    for (int v = 0; v < V_COUNT; v++) {
        mmapio_unmap(m[v]);
        free(ns[v]);
    }
    mmapio_unwatch(w);
    mmapio_unmap(wm);
    mmapio_disconnect(wc);
    mmapio_disconnect(c);
}

/* ---- 2. latency while a large flush runs ------------------------------ */

/*
 * The sampler: another client, timing stat and ping back to back. The
 * main thread names the phase (idle: nothing runs but the sampler; flush:
 * a Flush request is outstanding; other: the main thread is dirtying the
 * file); a sample counts for a phase only if the phase did not change
 * while it ran.
 */
enum { PH_OTHER, PH_IDLE, PH_FLUSH, PH_N };

struct series {
    int n;
    double *us;
};

struct sampler {
    mmapio_client *c;
    mmapio_map *m;
    atomic_uint phase_seq;  /* phase << 24 | generation */
    atomic_bool stop;
    int cap;
    struct series stat[PH_N], ping[PH_N];
};

static void sampler_set(struct sampler *s, int phase)
{
    unsigned g = (atomic_load(&s->phase_seq) + 1) & 0xffffff;
    atomic_store(&s->phase_seq, (unsigned)phase << 24 | g);
}

static void *sampler_main(void *arg)
{
    struct sampler *s = arg;
    while (!atomic_load(&s->stop)) {
        for (int k = 0; k < 2; k++) {
            unsigned ps = atomic_load(&s->phase_seq);
            int64_t t0 = now_ns();
            int r = k == 0 ? mmapio_refresh(s->m) : mmapio_ping(s->c);
            int64_t t1 = now_ns();
            if (r != MMAPIO_OK)
                die("%s: %s", k == 0 ? "refresh" : "ping", mmapio_strerror(r));
            if (atomic_load(&s->phase_seq) != ps)
                continue;
            struct series *se = k == 0 ? &s->stat[ps >> 24] : &s->ping[ps >> 24];
            if (se->n < s->cap)
                se->us[se->n++] = (double)(t1 - t0) / 1000.0;
        }
    }
    return NULL;
}

static bool sampler_full(const struct sampler *s, int phase)
{
    return s->stat[phase].n >= s->cap && s->ping[phase].n >= s->cap;
}

static double pct(double *v, int n, double p)
{
    if (n == 0)
        return 0;
    qsort(v, (size_t)n, sizeof(*v), cmp_double);
    int i = (int)(p * (n - 1) + 0.5);
    return v[i];
}

static uint64_t raw_open_handle(int fd, const char *path)
{
    Mmapio__Request req = MMAPIO__REQUEST__INIT;
    Mmapio__Open op = MMAPIO__OPEN__INIT;
    op.path = (char *)path;
    op.mode = MMAPIO__MODE__MODE_READ_WRITE;
    req.id = 2;
    req.op_case = MMAPIO__REQUEST__OP_OPEN;
    req.open = &op;
    if (raw_send(fd, &req, -1) < 0)
        die("raw open: send failed");
    Mmapio__ServerMessage *m;
    int got = -1;
    if (raw_recv(fd, 10000, &m, &got) < 0 || m->reply->error != 0 ||
        m->reply->result_case != MMAPIO__REPLY__RESULT_OPEN)
        die("raw open of %s failed", path);
    uint64_t h = m->reply->open->handle;
    mmapio__server_message__free_unpacked(m, NULL);
    if (got >= 0)
        close(got);
    return h;
}

/* Sends a Flush of the whole mapping and waits: milliseconds it took. */
static double raw_flush(int fd, uint64_t handle, uint64_t id)
{
    Mmapio__Request req = MMAPIO__REQUEST__INIT;
    Mmapio__Flush fl = MMAPIO__FLUSH__INIT;
    fl.handle = handle;
    req.id = id;
    req.op_case = MMAPIO__REQUEST__OP_FLUSH;
    req.flush = &fl;
    int64_t t0 = now_ns();
    if (raw_send(fd, &req, -1) < 0)
        die("raw flush: send failed");
    Mmapio__ServerMessage *m;
    if (raw_recv(fd, 600000, &m, NULL) < 0)
        die("raw flush: no reply");
    int64_t t1 = now_ns();
    if (m->reply->id != id || m->reply->error != 0)
        die("raw flush failed: %d %s", m->reply->error,
            m->reply->message ? m->reply->message : "");
    mmapio__server_message__free_unpacked(m, NULL);
    return (double)(t1 - t0) / 1e6;
}

static uint64_t pick_flush_size(void)
{
    uint64_t want = opt.flush_mib * MIB;
    struct statvfs vfs;
    if (statvfs(d.dir, &vfs) < 0)
        die("statvfs %s: %s", d.dir, strerror(errno));
    uint64_t avail = (uint64_t)vfs.f_bavail * vfs.f_frsize;
    uint64_t size = want;
    while (size > 64 * MIB && size + 512 * MIB > avail)
        size /= 2;
    if (size + 512 * MIB > avail)
        die("not enough disk space in %s for the flush benchmark (%llu MiB "
            "free)", d.dir, (unsigned long long)(avail / MIB));
    if (size != want)
        printf("   (only %llu MiB free in %s: flushing %llu MiB instead of "
               "%llu MiB)\n", (unsigned long long)(avail / MIB), d.dir,
               (unsigned long long)(size / MIB),
               (unsigned long long)(want / MIB));
    return size;
}

static void dirty_all(volatile uint8_t *p, uint64_t size, uint8_t v)
{
    for (uint64_t off = 0; off < size; off += 4096)
        p[off] = v;
}

static void part_flush_latency(void)
{
    printf("\n2. another client's stat and ping while the daemon flushes a "
           "large dirty file mapping\n");
    uint64_t size = pick_flush_size();
    mmapio_client *a, *b;
    CHECK(mmapio_connect(d.sock, &a));
    CHECK(mmapio_connect(d.sock, &b));
    mmapio_map *big;
    CHECK(mmapio_create_rw(a, "big.dat", size, &big));
    uint8_t *p = mmapio_as_mut_ptr(big);
    int64_t t0 = now_ns();
    dirty_all(p, size, 1);
    double first_dirty_ms = (double)(now_ns() - t0) / 1e6;
    int r = raw_connect(d.sock);
    if (r < 0 || raw_hello(r, WIRE_PROTOCOL) != 0)
        die("raw client: cannot connect");
    uint64_t handle = raw_open_handle(r, "big.dat");
    /* The first flush: pages were just allocated. Not measured with
     * samples; it sets a steady state for the next ones. */
    double warm_ms = raw_flush(r, handle, 100);

    struct sampler s = { .c = b, .cap = opt.samples };
    CHECK(mmapio_create_rw(b, "lat.dat", 4096, &s.m));
    for (int ph = 0; ph < PH_N; ph++) {
        s.stat[ph].us = calloc((size_t)s.cap, sizeof(double));
        s.ping[ph].us = calloc((size_t)s.cap, sizeof(double));
    }

    /*
     * Cycles of: dirty the whole file (not sampled); an idle window as
     * long as the last flush (the dirty data waits in the page cache, no
     * flush runs); the flush. Until both phases have their samples, and
     * at least 3 flushes.
     */
    pthread_t th;
    pthread_create(&th, NULL, sampler_main, &s);
    double flush_ms_total = 0, last_flush_ms = warm_ms;
    int cycles = 0;
    int64_t deadline = now_ns() + INT64_C(300) * 1000000000;
    while ((!sampler_full(&s, PH_IDLE) || !sampler_full(&s, PH_FLUSH) ||
            cycles < 3) && cycles < 100 && now_ns() < deadline) {
        sampler_set(&s, PH_OTHER);
        dirty_all(p, size, (uint8_t)(cycles + 2));
        sampler_set(&s, PH_IDLE);
        pc_sleep_ms((int)last_flush_ms + 1);
        sampler_set(&s, PH_FLUSH);
        last_flush_ms = raw_flush(r, handle, 200 + (uint64_t)cycles);
        sampler_set(&s, PH_OTHER);
        flush_ms_total += last_flush_ms;
        cycles++;
    }
    atomic_store(&s.stop, true);
    pthread_join(th, NULL);
    long left = pc_unsynced(hz_path(&d, "big.dat"));

    double fl_ms = cycles ? flush_ms_total / cycles : 0;
    printf("   flushed %llu MiB %d times: %.0f ms per flush (%.2f GiB/s); "
           "first write of every page %.0f ms, first flush %.0f ms; "
           "dirty pages left: %ld\n",
           (unsigned long long)(size / MIB), cycles, fl_ms,
           fl_ms > 0 ? (double)size / (1u << 30) / (fl_ms / 1000) : 0,
           first_dirty_ms, warm_ms, left);
    printf("   %-26s %8s %10s %10s %10s %10s\n", "", "samples", "p50 us",
           "p99 us", "max us", "p99 ratio");
    const char *what[2] = { "stat", "ping" };
    for (int k = 0; k < 2; k++) {
        struct series *se = k == 0 ? s.stat : s.ping;
        double i99 = pct(se[PH_IDLE].us, se[PH_IDLE].n, 0.99);
        for (int ph = PH_IDLE; ph <= PH_FLUSH; ph++) {
            struct series *x = &se[ph];
            double p50 = pct(x->us, x->n, 0.5), p99 = pct(x->us, x->n, 0.99),
                   mx = pct(x->us, x->n, 1.0);
            char label[64];
            snprintf(label, sizeof(label), "%s, %s", what[k],
                     ph == PH_IDLE ? "no flush" : "during flush");
            printf("   %-26s %8d %10.1f %10.1f %10.1f %10.2f%s\n", label,
                   x->n, p50, p99, mx, i99 > 0 ? p99 / i99 : 0,
                   ph == PH_FLUSH ? "   (target <= 2.0)" : "");
        }
    }
    fflush(stdout);

    close(r);
    mmapio_unmap(s.m);
    mmapio_unmap(big);
    mmapio_disconnect(a);
    mmapio_disconnect(b);
    for (int ph = 0; ph < PH_N; ph++) {
        free(s.stat[ph].us);
        free(s.ping[ph].us);
    }
    unlink(hz_path(&d, "big.dat"));
}

/* ---- 3. an idle daemon with many EveryMillis mappings ------------------ */

struct window {
    double cpu_pct, wakeups_per_s;
};

static struct window measure(int secs)
{
    double c0 = proc_cpu_s(d.pid);
    long s0 = hz_switches(d.pid);
    int64_t t0 = now_ns();
    pc_sleep_ms(secs * 1000);
    double c1 = proc_cpu_s(d.pid);
    long s1 = hz_switches(d.pid);
    double el = (double)(now_ns() - t0) / 1e9;
    struct window w = { (c1 - c0) / el * 100.0, (double)(s1 - s0) / el };
    return w;
}

/* Seconds until none of the part's files has a dirty page (or `limit`
 * passed: the number still dirty goes to *left). */
static double wait_all_clean(double limit, int *left)
{
    int64_t t0 = now_ns();
    int dirty = opt.maps;
    while (dirty > 0 && (double)(now_ns() - t0) / 1e9 < limit) {
        pc_sleep_ms(20);
        dirty = 0;
        for (int i = 0; i < opt.maps; i++) {
            char name[32];
            snprintf(name, sizeof(name), "idle%05d.dat", i);
            dirty += pc_unsynced(hz_path(&d, name)) != 0;
        }
    }
    *left = dirty;
    return (double)(now_ns() - t0) / 1e9;
}

/* The same mappings once every holder took a writable pointer: the daemon
 * must look for stores it is never told of. The floor is the same daemon
 * with the same mappings clean and no pointer out (measured just before);
 * the CPU is read from /proc/PID/stat (ticks) and from schedstat. */
static void part_idle_raw(mmapio_map **m)
{
    double floor_pct;
    {
        double s0 = proc_stat_cpu_s(d.pid);
        int64_t t0 = now_ns();
        pc_sleep_ms(opt.raw_secs * 1000);
        floor_pct = (proc_stat_cpu_s(d.pid) - s0) /
                    ((double)(now_ns() - t0) / 1e9) * 100.0;
    }
    /* Programs take their pointers at different times: spread over 1 s,
     * so that nothing the daemon does per mapping lines up by luck. */
    for (int i = 0; i < opt.maps; i++) {
        if (!mmapio_as_mut_ptr(m[i]))
            die("mmapio_as_mut_ptr failed");
        struct timespec ts = { 0, 1000000000L / opt.maps };
        nanosleep(&ts, NULL);
    }
    /* The daemon flushes each once when it hears of the pointer, then
     * backs off; give that time to end. */
    pc_sleep_ms(3000);
    double s0 = proc_stat_cpu_s(d.pid);
    double c0 = proc_cpu_s(d.pid);
    long w0 = hz_switches(d.pid);
    int64_t t0 = now_ns();
    pc_sleep_ms(opt.raw_secs * 1000);
    double el = (double)(now_ns() - t0) / 1e9;
    double stat_pct = (proc_stat_cpu_s(d.pid) - s0) / el * 100.0;
    double sched_pct = (proc_cpu_s(d.pid) - c0) / el * 100.0;
    double wake = (double)(hz_switches(d.pid) - w0) / el;

    /* One raw store to each, then how long until every file is clean. */
    for (int i = 0; i < opt.maps; i++)
        ((volatile char *)mmapio_as_mut_ptr(m[i]))[100] = 'r';
    int left;
    double took = wait_all_clean(30, &left);

    printf("   with every holder's writable pointer out (raw writers), "
           "%d s window, daemon CPU from /proc/PID/stat:\n", opt.raw_secs);
    printf("   %-44s %12.3f %14s   (floor: no pointer out)\n",
           "clean, no pointer out", floor_pct, "");
    printf("   %-44s %12.3f %14.1f   (target <= 0.5 %%; schedstat %.3f %%)\n",
           "clean, writable pointers out", stat_pct, wake, sched_pct);
    printf("   one raw store to each: all %d files clean after %.2f s "
           "(%d still dirty)\n", opt.maps, took, left);
    fflush(stdout);
}

static void part_idle(void)
{
    printf("\n3. the daemon with %d EveryMillis(10) file mappings of 4 KiB "
           "held (%d s windows)\n", opt.maps, opt.idle_secs);
    mmapio_client *c;
    CHECK(mmapio_connect(d.sock, &c));
    mmapio_flush_policy em = { MMAPIO_FLUSH_EVERY_MILLIS, 10 };
    mmapio_map **m = calloc((size_t)opt.maps, sizeof(*m));
    long rss0 = proc_rss_kib(d.pid);
    for (int i = 0; i < opt.maps; i++) {
        char name[32];
        snprintf(name, sizeof(name), "idle%05d.dat", i);
        m[i] = create_with(c, name, 4096, em);
    }
    long rss1 = proc_rss_kib(d.pid);
    pc_sleep_ms(1000); /* creation's own work (inotify, allocation) settles */
    struct window idle = measure(opt.idle_secs);

    for (int i = 0; i < opt.maps; i++)
        CHECK(mmapio_update_region(m[i], 0, "written", 7));
    int64_t t0 = now_ns();
    struct window after = measure(opt.idle_secs);
    int dirty_files = 0;
    for (int i = 0; i < opt.maps; i++) {
        char name[32];
        snprintf(name, sizeof(name), "idle%05d.dat", i);
        dirty_files += pc_unsynced(hz_path(&d, name)) != 0;
    }
    double checked_s = (double)(now_ns() - t0) / 1e9;
    struct window again = measure(opt.idle_secs);

    printf("   %-44s %12s %14s\n", "", "CPU % core", "wake-ups/s");
    printf("   %-44s %12.3f %14.1f   (target <= 0.5 %%)\n",
           "clean, held", idle.cpu_pct, idle.wakeups_per_s);
    printf("   %-44s %12.3f %14.1f\n",
           "right after one write to each (flushes)", after.cpu_pct,
           after.wakeups_per_s);
    printf("   %-44s %12.3f %14.1f\n", "the next window (clean again)",
           again.cpu_pct, again.wakeups_per_s);
    printf("   files still dirty %.1f s after the writes: %d of %d; daemon "
           "RSS %ld KiB -> %ld KiB for %d mappings (%.0f B each)\n",
           checked_s, dirty_files, opt.maps, rss0, rss1, opt.maps,
           opt.maps ? (double)(rss1 - rss0) * 1024 / opt.maps : 0);
    fflush(stdout);
    part_idle_raw(m);
    for (int i = 0; i < opt.maps; i++)
        mmapio_unmap(m[i]);
    free(m);
    mmapio_disconnect(c);
}

/* ---- 4. EveryBytes against memcpy into pages flushed as often -------- */

/* The floor's flusher: another thread that fdatasyncs the file each time
 * the writer says another MiB was written (one eventfd write, as the
 * library's hand-off is one datagram). */
struct side_flusher {
    int fd, efd;
    pthread_t th;
};

static void *side_flusher_main(void *arg)
{
    struct side_flusher *f = arg;
    uint64_t n;
    while (read(f->efd, &n, sizeof(n)) == sizeof(n)) {
        if (n == UINT64_MAX - 1)
            break;
        fdatasync(f->fd);
    }
    return NULL;
}

/* The C library's memcpy, called as update_region calls it; a memcpy of
 * a constant size in the loop itself is the compiler's inline copy. */
static void *(*volatile libc_memcpy)(void *, const void *, size_t) = memcpy;

enum pass_kind { PASS_LIBC, PASS_INLINE, PASS_EB, PASS_KINDS };

/* One pass over the file, clean at the start: ns per 4 KiB write. The
 * floors' pages are flushed by another thread every MiB, told by one
 * eventfd write (as the library's hand-off is one datagram). */
static double one_pass(mmapio_map *m, enum pass_kind k, struct side_flusher *f)
{
    uint8_t *base = mmapio_as_mut_ptr(m);
    msync(base, U_FILE, MS_SYNC);
    int64_t t0 = now_ns();
    for (uint64_t i = 0; i < U_SLOTS; i++) {
        if (k == PASS_EB) {
            if (mmapio_update_region(m, i * CHUNK, src, CHUNK) != MMAPIO_OK)
                die("update_region failed");
            continue;
        }
        if (k == PASS_LIBC)
            libc_memcpy(base + i * CHUNK, src, CHUNK);
        else
            memcpy(base + i * CHUNK, src, CHUNK);
        __asm__ volatile("" ::: "memory");
        if (i % (MIB / CHUNK) == MIB / CHUNK - 1) {
            uint64_t one = 1;
            if (write(f->efd, &one, sizeof(one)) < 0)
                die("eventfd: %s", strerror(errno));
        }
    }
    return (double)(now_ns() - t0) / (double)U_SLOTS;
}

static void part_every_bytes_pass(void)
{
    static const char *const what[PASS_KINDS] = {
        "floor: memcpy (libc), flushed by another thread",
        "memcpy inlined by the compiler, flushed the same",
        "update_region, EveryBytes(1 MiB)",
    };
    mmapio_client *c;
    CHECK(mmapio_connect(d.sock, &c));
    mmapio_flush_policy eb = { MMAPIO_FLUSH_EVERY_BYTES, MIB };
    mmapio_map *m = create_with(c, "p_eb.dat", U_FILE, eb);
    for (size_t i = 0; i < CHUNK; i++)
        src[i] = (uint8_t)(i * 131 + 7);
    /* Every page allocated once, so no pass measures allocation. */
    memset(mmapio_as_mut_ptr(m), 1, U_FILE);
    struct side_flusher f;
    f.fd = open(hz_path(&d, "p_eb.dat"), O_RDWR | O_CLOEXEC);
    f.efd = eventfd(0, EFD_CLOEXEC);
    if (f.fd < 0 || f.efd < 0)
        die("floor's flusher: %s", strerror(errno));
    pthread_create(&f.th, NULL, side_flusher_main, &f);

    double *ns[PASS_KINDS], *ratio[PASS_KINDS];
    for (int k = 0; k < PASS_KINDS; k++) {
        ns[k] = calloc((size_t)opt.pass_runs, sizeof(double));
        ratio[k] = calloc((size_t)opt.pass_runs, sizeof(double));
    }
    for (int r = 0; r < opt.pass_runs; r++) {
        for (int k = 0; k < PASS_KINDS; k++)
            ns[k][r] = one_pass(m, (enum pass_kind)k, &f);
        for (int k = 0; k < PASS_KINDS; k++)
            ratio[k][r] = ns[k][r] / ns[PASS_LIBC][r];
    }
    uint64_t stop = UINT64_MAX - 1;
    if (write(f.efd, &stop, sizeof(stop)) < 0)
        die("eventfd: %s", strerror(errno));
    pthread_join(f.th, NULL);
    close(f.efd);
    close(f.fd);

    printf("\n4. 4 KiB writes under EveryBytes(1 MiB), one pass over a clean "
           "64 MiB file (%llu writes); median of %d rounds of one pass each\n",
           (unsigned long long)U_SLOTS, opt.pass_runs);
    double best[PASS_KINDS];
    for (int k = 0; k < PASS_KINDS; k++) {
        best[k] = ns[k][0];
        for (int r = 1; r < opt.pass_runs; r++)
            best[k] = ns[k][r] < best[k] ? ns[k][r] : best[k];
    }
    printf("   %-50s %10s %10s %10s %8s\n", "", "ns/write", "ratio", "best ns",
           "ratio");
    for (int k = 0; k < PASS_KINDS; k++)
        printf("   %-50s %10.1f %10.3f %10.1f %8.3f%s\n", what[k],
               median(ns[k], opt.pass_runs), median(ratio[k], opt.pass_runs),
               best[k], best[k] / best[PASS_LIBC],
               k == PASS_EB ? "   (target <= 1.10)" : "");
    printf("   (ratio: each round's pass over the floor's pass of the same "
           "round, median; best: the fastest pass of each)\n");
    fflush(stdout);
    for (int k = 0; k < PASS_KINDS; k++) {
        free(ns[k]);
        free(ratio[k]);
    }
    mmapio_unmap(m);
    mmapio_disconnect(c);
}

/* ---- main -------------------------------------------------------------- */

static void usage(FILE *f)
{
    fprintf(f,
            "Usage: bench_flush [OPTIONS]\n"
            "  --iters N        part 1: writes per run, NEVER and memcpy (%ld)\n"
            "  --flush-iters N  part 1: writes per run, EveryBytes and its floor (%ld)\n"
            "  --runs N         part 1: runs; the median is shown (%d)\n"
            "  --flush-mib N    part 2: size of the flushed mapping in MiB (%llu;\n"
            "                   also $BENCH_FLUSH_MIB); smaller if the disk is short\n"
            "  --samples N      part 2: samples of stat and of ping (%d)\n"
            "  --maps N         part 3: EveryMillis mappings held (%d)\n"
            "  --idle-secs N    part 3: length of each window (%d)\n"
            "  --raw-secs N     part 3: the window with writable pointers (%d)\n"
            "  --passes N       part 4: passes over the file (%d)\n"
            "  --only LIST      parts to run, e.g. 1,3,4 (all)\n"
            "The daemon is $MMAPIOD, else %s.\n",
            opt.iters, opt.flush_iters, opt.runs,
            (unsigned long long)opt.flush_mib, opt.samples, opt.maps,
            opt.idle_secs, opt.raw_secs, opt.pass_runs, MMAPIOD_BUILD_PATH);
}

int main(int argc, char **argv)
{
    static const struct option lo[] = {
        { "iters", required_argument, NULL, 'i' },
        { "flush-iters", required_argument, NULL, 'f' },
        { "runs", required_argument, NULL, 'r' },
        { "flush-mib", required_argument, NULL, 'm' },
        { "samples", required_argument, NULL, 's' },
        { "maps", required_argument, NULL, 'n' },
        { "idle-secs", required_argument, NULL, 't' },
        { "raw-secs", required_argument, NULL, 'w' },
        { "passes", required_argument, NULL, 'p' },
        { "only", required_argument, NULL, 'o' },
        { "help", no_argument, NULL, 'h' },
        { 0 },
    };
    const char *env = getenv("BENCH_FLUSH_MIB");
    if (env && *env)
        opt.flush_mib = (uint64_t)bench_num(env, 1, LONG_MAX);
    int ch;
    while ((ch = getopt_long(argc, argv, "", lo, NULL)) != -1) {
        switch (ch) {
        case 'i': opt.iters = bench_num(optarg, 1, LONG_MAX); break;
        case 'f': opt.flush_iters = bench_num(optarg, 1, LONG_MAX); break;
        case 'r': opt.runs = (int)bench_num(optarg, 1, LONG_MAX); break;
        case 'm': opt.flush_mib = (uint64_t)bench_num(optarg, 1, LONG_MAX); break;
        case 's': opt.samples = (int)bench_num(optarg, 1, LONG_MAX); break;
        case 'n': opt.maps = (int)bench_num(optarg, 1, LONG_MAX); break;
        case 't': opt.idle_secs = (int)bench_num(optarg, 1, LONG_MAX); break;
        case 'w': opt.raw_secs = (int)bench_num(optarg, 1, LONG_MAX); break;
        case 'p': opt.pass_runs = (int)bench_num(optarg, 1, LONG_MAX); break;
        case 'o':
            opt.part[1] = opt.part[2] = opt.part[3] = opt.part[4] = false;
            for (const char *p = optarg; *p; p++)
                if (*p >= '1' && *p <= '4')
                    opt.part[*p - '0'] = true;
            break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    signal(SIGPIPE, SIG_IGN);
    bench_start_daemon(&d, NULL, NULL, 0);
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    printf("bench_flush: mmapiod %s (pid %d), data root %s, %ld CPUs\n",
           getenv("MMAPIOD"), (int)d.pid, d.root, cpus);
    fflush(stdout);
    if (opt.part[1])
        part_update_region();
    if (opt.part[2])
        part_flush_latency();
    if (opt.part[3])
        part_idle();
    if (opt.part[4])
        part_every_bytes_pass();
    int st = hz_stop(&d);
    hz_cleanup(&d);
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        fprintf(stderr, "bench_flush: mmapiod did not exit 0 (0x%x)\n",
                (unsigned)st);
        return 1;
    }
    return 0;
}
