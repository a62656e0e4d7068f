/*
 * bench_watch: what being watched costs a writer, and whether watchers
 * miss anything.
 *
 * Starts its own mmapiod ($MMAPIOD, else this build tree's) on a fresh
 * temporary directory. A producer writes 64-byte records flat out with
 * mmapio_update_region, cycling over an anonymous mapping of --size bytes
 * (each record starts with its sequence number), alternately into a
 * mapping nobody watches (the floor) and into one that --watchers other
 * processes watch (each opens it read-only and runs
 * mmapio_client_dispatch). Printed: ns per write of each (median of
 * --runs runs), their ratio (throughput watched ÷ unwatched, the median
 * of each run's against the unwatched run just before it; goal ≥ 0.67),
 * the slowest single update_region in one more run of each, and per
 * watcher the events it got (ranged, without a range), the bytes its
 * ranges covered, how many events found no record changed, and the records whose last write no event covered (must be 0: every
 * watcher re-reads each record an event covers, a MODIFIED without a range
 * covers all, and at the end compares what it saw with the mapping).
 *
 * Not a test: nothing is asserted. Options: --help.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "benchkit.h"

#define REC 64
#define MAX_WATCHERS 16

static struct {
    long iters;
    int runs;
    int watchers;
    uint64_t size;
} opt = { .iters = 2000000, .runs = 9, .watchers = 3, .size = 1 << 20 };

/* What the watchers report, in memory shared with the producer. */
struct result {
    long ranged, rangeless, calls;
    long empty;        /* events after which no record it re-read had changed */
    uint64_t bytes;
    long missed;       /* records whose last write no event covered */
    int ok;            /* 1: ran to the end */
};
struct shared {
    atomic_int ready;
    atomic_int done;
    struct result r[MAX_WATCHERS];
};

const char bench_name[] = "bench_watch";
static struct hz_daemon d;
static struct shared *sh;

/* ---- a watcher process -------------------------------------------------- */

struct watcher {
    const uint8_t *base;
    uint64_t *seen;    /* per record: its sequence number when last told */
    uint64_t n;
    struct result *r;
    int64_t last_ns;
};

/* Re-reads records first..last; false when none had changed. */
static bool see(struct watcher *w, uint64_t first, uint64_t last)
{
    bool changed = false;
    for (uint64_t i = first; i <= last && i < w->n; i++) {
        uint64_t v = __atomic_load_n((const uint64_t *)(w->base + i * REC),
                                     __ATOMIC_ACQUIRE);
        changed |= v != w->seen[i];
        w->seen[i] = v;
    }
    return changed;
}

static void on_change(const mmapio_change_event *ev, void *user)
{
    struct watcher *w = user;
    w->r->calls++;
    w->last_ns = now_ns();
    if (ev->kind != MMAPIO_CHANGE_MODIFIED)
        return;
    if (!ev->has_range) {
        w->r->rangeless++;
        w->r->empty += !see(w, 0, w->n - 1);
        return;
    }
    w->r->ranged++;
    w->r->bytes += ev->len;
    w->r->empty += !ev->len ||
                   !see(w, ev->offset / REC, (ev->offset + ev->len - 1) / REC);
}

static int watcher_main(int idx)
{
    mmapio_client *c;
    mmapio_map *m;
    mmapio_watcher *wt;
    struct watcher w = { .r = &sh->r[idx] };
    if (mmapio_connect(d.sock, &c) || mmapio_anon_open(c, "watched", &m))
        return 1;
    w.base = mmapio_as_ptr(m);
    w.n = mmapio_len(m) / REC;
    w.seen = calloc(w.n, sizeof(*w.seen));
    if (!w.seen || mmapio_watch(m, on_change, &w, &wt))
        return 1;
    see(&w, 0, w.n - 1);
    atomic_fetch_add(&sh->ready, 1);
    w.last_ns = now_ns();
    /* Until the producer is done and nothing came for 500 ms. */
    while (!atomic_load(&sh->done) || now_ns() - w.last_ns < 500000000) {
        if (mmapio_client_dispatch(c, 100) < 0)
            return 1;
    }
    for (uint64_t i = 0; i < w.n; i++)
        w.r->missed += w.seen[i] != *(const uint64_t *)(w.base + i * REC);
    w.r->ok = 1;
    mmapio_unwatch(wt);
    mmapio_unmap(m);
    mmapio_disconnect(c);
    return 0;
}

/* ---- the producer ------------------------------------------------------- */

static uint64_t seq;

/* ns per write of opt.iters records; *slowest: the longest call, when
 * asked (each call timed then). */
static double produce(mmapio_map *m, int64_t *slowest)
{
    uint8_t rec[REC];
    uint64_t n = opt.size / REC;
    memset(rec, 'r', sizeof(rec));
    int64_t t0 = now_ns(), worst = 0;
    for (long i = 0; i < opt.iters; i++) {
        uint64_t s = ++seq;
        memcpy(rec, &s, sizeof(s));
        int64_t a = slowest ? now_ns() : 0;
        int r = mmapio_update_region(m, (s % n) * REC, rec, sizeof(rec));
        if (slowest) {
            int64_t t = now_ns() - a;
            worst = t > worst ? t : worst;
        }
        if (r != MMAPIO_OK)
            die("update_region: %s", mmapio_strerror(r));
    }
    int64_t t = now_ns() - t0;
    if (slowest)
        *slowest = worst;
    return (double)t / (double)opt.iters;
}

static void usage(FILE *f)
{
    fprintf(f,
            "Usage: bench_watch [OPTIONS]\n"
            "  --iters N     writes of 64 bytes per run (%ld)\n"
            "  --runs N      runs of each kind; the median is shown (%d)\n"
            "  --watchers N  watcher processes, at most %d (%d)\n"
            "  --size N      bytes of each mapping the records cycle over (%llu)\n",
            opt.iters, opt.runs, MAX_WATCHERS, opt.watchers,
            (unsigned long long)opt.size);
}

int main(int argc, char **argv)
{
    static const struct option lo[] = {
        { "iters", required_argument, NULL, 'i' },
        { "runs", required_argument, NULL, 'r' },
        { "watchers", required_argument, NULL, 'w' },
        { "size", required_argument, NULL, 's' },
        { "help", no_argument, NULL, 'h' },
        { 0 },
    };
    int ch;
    while ((ch = getopt_long(argc, argv, "", lo, NULL)) != -1) {
        switch (ch) {
        case 'i': opt.iters = bench_num(optarg, 1, 1L << 40); break;
        case 'r': opt.runs = (int)bench_num(optarg, 1, 1000); break;
        case 'w': opt.watchers = (int)bench_num(optarg, 0, MAX_WATCHERS); break;
        case 's':
            opt.size = (uint64_t)bench_num(optarg, REC, 1L << 34) / REC * REC;
            break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    signal(SIGPIPE, SIG_IGN);
    sh = mmap(NULL, sizeof(*sh), PROT_READ | PROT_WRITE,
              MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (sh == MAP_FAILED)
        die("mmap: %s", strerror(errno));
    bench_start_daemon(&d, NULL, NULL, 0);
    printf("bench_watch: mmapiod %s (pid %d), %ld CPUs; %d watcher "
           "processes, %ld writes of %d bytes per run over %llu bytes\n",
           getenv("MMAPIOD"), (int)d.pid, sysconf(_SC_NPROCESSORS_ONLN),
           opt.watchers, opt.iters, REC, (unsigned long long)opt.size);
    bench_print_load("before", "");
    fflush(stdout);

    mmapio_client *c;
    mmapio_map *plain, *watched;
    CHECK(mmapio_connect(d.sock, &c));
    CHECK(mmapio_anon_create(c, "plain", opt.size, &plain));
    CHECK(mmapio_anon_create(c, "watched", opt.size, &watched));
    pid_t kids[MAX_WATCHERS];
    for (int i = 0; i < opt.watchers; i++) {
        kids[i] = hz_fork();
        if (kids[i] == 0)
            _exit(watcher_main(i));
        if (kids[i] < 0)
            die("fork: %s", strerror(errno));
    }
    for (int64_t end = now_ns() + 10000000000; atomic_load(&sh->ready) < opt.watchers;) {
        if (now_ns() > end)
            die("the watchers did not start");
        usleep(1000);
    }

    double floor_ns[1000], watched_ns[1000];
    for (int r = 0; r < opt.runs; r++) {
        floor_ns[r] = produce(plain, NULL);
        watched_ns[r] = produce(watched, NULL);
    }
    int64_t slowest, slowest_floor;
    double timed_floor = produce(plain, &slowest_floor);
    double timed = produce(watched, &slowest);
    atomic_store(&sh->done, 1);
    for (int i = 0; i < opt.watchers; i++)
        hz_wait_child(kids[i], 60000);

    /* Each watched run beside the unwatched one just before it: the
     * median of those ratios is the figure (the machine's other load
     * moves both of a pair alike); the best of each kind beside it. */
    double ratio[1000], best_f = floor_ns[0], best_w = watched_ns[0];
    for (int r = 0; r < opt.runs; r++) {
        ratio[r] = floor_ns[r] / watched_ns[r];
        best_f = floor_ns[r] < best_f ? floor_ns[r] : best_f;
        best_w = watched_ns[r] < best_w ? watched_ns[r] : best_w;
    }
    double f = median(floor_ns, opt.runs), w = median(watched_ns, opt.runs);
    printf("\nupdate_region of %d bytes, flat out (median of %d runs)\n", REC,
           opt.runs);
    printf("  nobody watching (floor)      %8.1f ns/write  %6.2f M writes/s\n",
           f, 1e3 / f);
    printf("  %d watcher processes          %8.1f ns/write  %6.2f M writes/s\n",
           opt.watchers, w, 1e3 / w);
    printf("  throughput watched / floor   %8.2f   (goal >= 0.67; median of "
           "the runs' ratios; best against best %.2f)\n",
           median(ratio, opt.runs), best_f / best_w);
    printf("  slowest call, one more run of each with every call timed: "
           "watched %.1f us, nobody watching %.1f us (those runs %.1f and "
           "%.1f ns/write; both include time the CPU was taken away)\n",
           (double)slowest / 1e3, (double)slowest_floor / 1e3, timed,
           timed_floor);
    long missed = 0;
    bool all_ok = true;
    for (int i = 0; i < opt.watchers; i++) {
        struct result *r = &sh->r[i];
        long evs = r->ranged + r->rangeless;
        printf("  watcher %d: %ld MODIFIED with a range (%llu bytes), %ld "
               "without, %.0f%% of them finding nothing new; records whose "
               "last write no event covered: %ld%s\n",
               i, r->ranged, (unsigned long long)r->bytes, r->rangeless,
               evs ? 100.0 * (double)r->empty / (double)evs : 0.0, r->missed,
               r->ok ? "" : " (did not finish)");
        missed += r->missed;
        all_ok &= r->ok == 1;
    }
    printf("  changes missed by any watcher: %ld (must be 0)%s\n", missed,
           all_ok ? "" : "; a watcher failed");
    bench_print_load("after", "");

    mmapio_unmap(plain);
    mmapio_unmap(watched);
    mmapio_disconnect(c);
    int st = hz_stop(&d);
    hz_cleanup(&d);
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        fprintf(stderr, "bench_watch: mmapiod did not exit 0 (0x%x)\n",
                (unsigned)st);
        return 1;
    }
    return missed || !all_ok ? 1 : 0;
}
