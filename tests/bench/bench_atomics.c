/*
 * bench_atomics: what the atomic views and the cross-process wait/wake
 * cost beside the raw calls they wrap.
 *
 * Starts its own mmapiod ($MMAPIOD, else this build tree's) on a fresh
 * temporary directory and prints, with baselines measured in the same run
 * (many short runs alternating between the two sides, which goes first
 * alternating too; the medians of each side, and the ratio as the median
 * of the ratios of neighbouring runs, which cancels the drift of a loaded
 * machine's load):
 *
 *  1. A two-process ping-pong on one u32: each side stores the next round
 *     number, wakes the other and waits for its answer — through
 *     mmapio_wait_u32 / mmapio_wake_u32 on an anonymous mapping of the
 *     daemon (each process on its own connection and handle), beside the
 *     same with raw FUTEX_WAIT / FUTEX_WAKE on a shared memfd mapping.
 *     Microseconds per round trip, and the ratio (goal <= 1.10): once
 *     with both processes free to run anywhere, once with both on the
 *     CPU the program started on (steadier on a loaded machine).
 *  2. atomic_fetch_add on a u64 through a view (mmapio_atomic_u64, taken
 *     once), beside the same on a plain MAP_SHARED mapping; and, for
 *     information, taking the view before every increment. Nanoseconds
 *     per increment, and the ratio (goal <= 1.05).
 *
 * Not a test: nothing is asserted. Options: --help.
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <sched.h>
#include <linux/futex.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "benchkit.h"

static struct {
    long rounds; /* part 1, per run */
    long incs;   /* part 2, per run */
    int runs;
} opt = { .rounds = 10000, .incs = 20000000, .runs = 31 };

const char bench_name[] = "bench_atomics";
static struct hz_daemon d;

/* Dies with an mmapio result (or -errno) and the library's last error. */
static void fail(const char *what, int r) __attribute__((noreturn));
static void fail(const char *what, int r)
{
    die("%s: %d (%s) %s", what, r, mmapio_strerror(r), mmapio_last_error());
}

/* Fails on a negative result. */
#define TRY(expr)                    \
    do {                             \
        int r_ = (expr);             \
        if (r_ < 0)                  \
            fail(#expr, r_);         \
    } while (0)

static double now_s(void)
{
    return (double)now_ns() / 1e9;
}

/* The median of lib[i] / raw[i]. */
static double paired_ratio(const double *lib, const double *raw, int n)
{
    double r[64];
    for (int i = 0; i < n; i++)
        r[i] = lib[i] / raw[i];
    return median(r, n);
}

static void start_daemon(void)
{
    bench_start_daemon(&d, NULL, NULL, 0);
    setenv("MMAPIO_SOCKET", d.sock, 1);
}

/* ---- 1. ping-pong ------------------------------------------------------ */

/* One side of a ping-pong: how it waits and wakes. */
struct side {
    mmapio_map *m;         /* mmapio: the handle; raw: NULL */
    _Atomic uint32_t *w;   /* the word */
};

static void side_wait(const struct side *s, uint32_t expected)
{
    if (s->m) {
        mmapio_wait_u32(s->m, 0, expected, -1);
        return;
    }
    syscall(SYS_futex, (uint32_t *)(void *)s->w, FUTEX_WAIT, expected, NULL,
            NULL, 0);
}

static void side_wake(const struct side *s)
{
    if (s->m)
        mmapio_wake_u32(s->m, 0, 1);
    else
        syscall(SYS_futex, (uint32_t *)(void *)s->w, FUTEX_WAKE, 1, NULL,
                NULL, 0);
}

/* The pinger stores odd numbers and waits for the next even one; the
 * ponger answers every odd number with the next even one. */
static void ping(const struct side *s, long rounds)
{
    for (long r = 0; r < rounds; r++) {
        uint32_t mine = (uint32_t)(2 * r + 1);
        atomic_store(s->w, mine);
        side_wake(s);
        while (atomic_load(s->w) == mine)
            side_wait(s, mine);
    }
}

static void pong(const struct side *s, long rounds)
{
    for (long r = 0; r < rounds; r++) {
        uint32_t before = (uint32_t)(2 * r);
        while (atomic_load(s->w) == before)
            side_wait(s, before);
        atomic_store(s->w, before + 2);
        side_wake(s);
    }
}

/* The ponger's side in a child: the raw word it inherits, or its own
 * connection and handle of the anonymous mapping. */
static pid_t start_ponger(_Atomic uint32_t *raw, const char *anon)
{
    pid_t pid = fork();
    if (pid != 0)
        return pid;
    struct side s = { NULL, raw };
    if (anon) {
        mmapio_client *c;
        if (mmapio_connect(NULL, &c) != 0 ||
            mmapio_anon_open(c, anon, &s.m) != 0 ||
            mmapio_atomic_u32(s.m, 0, &s.w) != 0)
            _exit(1);
    }
    pong(&s, opt.rounds);
    _exit(0);
}

/* Microseconds per round trip of one run. */
static double pingpong_run(struct side *s, _Atomic uint32_t *raw,
                           const char *anon)
{
    atomic_store(s->w, 0);
    pid_t pid = start_ponger(raw, anon);
    if (pid < 0)
        fail("fork", -errno);
    double t0 = now_s();
    ping(s, opt.rounds);
    double t = now_s() - t0;
    int st;
    waitpid(pid, &st, 0);
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
        fail("ponger", -1);
    return t * 1e6 / (double)opt.rounds;
}

/* Runs both sides, alternately, and prints one comparison. */
static void pingpong_compare(struct side *lib, struct side *raw,
                             const char *how)
{
    double t_lib[64], t_raw[64];

    for (int i = 0; i < opt.runs; i++) { /* which goes first alternates */
        if (i % 2)
            t_lib[i] = pingpong_run(lib, NULL, "pingpong");
        t_raw[i] = pingpong_run(raw, raw->w, NULL);
        if (!(i % 2))
            t_lib[i] = pingpong_run(lib, NULL, "pingpong");
    }
    double ratio = paired_ratio(t_lib, t_raw, opt.runs);
    double r = median(t_raw, opt.runs), l = median(t_lib, opt.runs);
    printf("   %s:\n", how);
    printf("   raw futex on a shared memfd        %8.2f us/round trip\n", r);
    printf("   mmapio_wait_u32/mmapio_wake_u32    %8.2f us/round trip\n", l);
    printf("   ratio                              %8.3f (goal <= 1.10)\n",
           ratio);
}

static void part_pingpong(mmapio_client *c)
{
    mmapio_map *m;
    struct side lib = { NULL, NULL }, raw = { NULL, NULL };

    TRY(mmapio_anon_create(c, "pingpong", 4096, &m));
    lib.m = m;
    TRY(mmapio_atomic_u32(m, 0, &lib.w));
    int fd = (int)syscall(SYS_memfd_create, "pingpong-raw", 0);
    if (fd < 0 || ftruncate(fd, 4096) != 0)
        fail("memfd", -errno);
    void *p = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED)
        fail("mmap", -errno);
    raw.w = p;
    printf("1. ping-pong between two processes, %ld round trips x %d runs\n",
           opt.rounds, opt.runs);
    pingpong_compare(&lib, &raw, "free to run on any CPU");
    /* Both sides on one CPU: each round trip is two context switches,
     * steadier on a loaded machine than wake-ups across CPUs. */
    cpu_set_t all, one;
    if (sched_getaffinity(0, sizeof(all), &all) == 0) {
        CPU_ZERO(&one);
        CPU_SET(sched_getcpu() >= 0 ? sched_getcpu() : 0, &one);
        if (sched_setaffinity(0, sizeof(one), &one) == 0) {
            pingpong_compare(&lib, &raw, "both on one CPU");
            sched_setaffinity(0, sizeof(all), &all);
        }
    }
    munmap(p, 4096);
    close(fd);
    TRY(mmapio_unmap(m));
}

/* ---- 2. increments ----------------------------------------------------- */

static double incs_run(_Atomic uint64_t *a)
{
    double t0 = now_s();
    for (long i = 0; i < opt.incs; i++)
        atomic_fetch_add_explicit(a, 1, memory_order_relaxed);
    return (now_s() - t0) * 1e9 / (double)opt.incs;
}

static double incs_view_each_run(mmapio_map *m)
{
    _Atomic uint64_t *a;
    double t0 = now_s();
    for (long i = 0; i < opt.incs; i++) {
        if (mmapio_atomic_u64(m, 64, &a) == 0)
            atomic_fetch_add_explicit(a, 1, memory_order_relaxed);
    }
    return (now_s() - t0) * 1e9 / (double)opt.incs;
}

static void part_increments(mmapio_client *c)
{
    mmapio_map *m;
    _Atomic uint64_t *view;
    double t_view[64], t_raw[64], t_each[64];

    TRY(mmapio_anon_create(c, "incs", 4096, &m));
    TRY(mmapio_atomic_u64(m, 64, &view));
    void *p = mmap(NULL, 4096, PROT_READ | PROT_WRITE,
                   MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        fail("mmap", -errno);
    _Atomic uint64_t *raw = (_Atomic uint64_t *)((char *)p + 64);
    for (int i = 0; i < opt.runs; i++) { /* which goes first alternates */
        if (i % 2)
            t_view[i] = incs_run(view);
        t_raw[i] = incs_run(raw);
        if (!(i % 2))
            t_view[i] = incs_run(view);
        t_each[i] = incs_view_each_run(m);
    }
    double ratio = paired_ratio(t_view, t_raw, opt.runs);
    double r = median(t_raw, opt.runs), v = median(t_view, opt.runs);
    printf("2. atomic_fetch_add on a u64, %ld increments x %d runs\n",
           opt.incs, opt.runs);
    printf("   raw, plain MAP_SHARED mapping      %8.3f ns/increment\n", r);
    printf("   through mmapio_atomic_u64's view   %8.3f ns/increment\n", v);
    printf("   ratio                              %8.3f (goal <= 1.05)\n",
           ratio);
    printf("   (taking the view every time        %8.3f ns/increment)\n",
           median(t_each, opt.runs));
    munmap(p, 4096);
    TRY(mmapio_unmap(m));
}

static void usage(FILE *out)
{
    fprintf(out,
            "usage: bench_atomics [--rounds N] [--incs N] [--runs N]\n"
            "  --rounds N  ping-pong round trips per run (%ld)\n"
            "  --incs N    increments per run (%ld)\n"
            "  --runs N    runs of each side, 1..64 (%d)\n"
            "mmapiod: $MMAPIOD, else %s\n",
            opt.rounds, opt.incs, opt.runs, MMAPIOD_BUILD_PATH);
}

static long num(const char *s, long min, long max)
{
    long v;
    if (!bench_parse_long(s, min, max, &v)) {
        usage(stderr);
        exit(2);
    }
    return v;
}

int main(int argc, char **argv)
{
    static const struct option lo[] = {
        { "rounds", required_argument, NULL, 'r' },
        { "incs", required_argument, NULL, 'i' },
        { "runs", required_argument, NULL, 'n' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    int ch;
    while ((ch = getopt_long(argc, argv, "", lo, NULL)) != -1) {
        switch (ch) {
        case 'r': opt.rounds = num(optarg, 1, LONG_MAX / 2); break;
        case 'i': opt.incs = num(optarg, 1, LONG_MAX); break;
        case 'n': opt.runs = (int)num(optarg, 1, 64); break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    start_daemon();
    mmapio_client *c;
    TRY(mmapio_connect(NULL, &c));
    part_pingpong(c);
    part_increments(c);
    mmapio_disconnect(c);
    hz_stop(&d);
    hz_cleanup(&d);
    return 0;
}
