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
 * Then (--only ring for this part alone) the same writes in a ring-buffer
 * application: a producer appends 64-byte records to a ring in a mapping
 * (head and tail indexes kept with mmapio atomics) and --watchers consumer
 * processes read every record as watch events tell them (see "the
 * ring-buffer application" below). Printed beside their floors: records
 * per second with the consumers ÷ into a ring nobody watches (goal ≥
 * 0.67), the slowest update_region of each, records the consumers lost
 * (must be 0) and the share of wake-ups that found no new record.
 *
 * Not a test: nothing is asserted (the exit status is 1 when a change was
 * missed or a record lost). Options: --help.
 */
#include <errno.h>
#include <getopt.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/futex.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "benchkit.h"

#define REC 64
#define MAX_WATCHERS 16

static struct {
    long iters;
    int runs;
    int watchers;
    uint64_t size;
    long records;      /* the ring application: records per run */
    uint64_t ring_size;
    bool flat, ring, alone; /* the parts to run (--only) */
} opt = { .iters = 2000000, .runs = 9, .watchers = 3, .size = 1 << 20,
          .records = 2000000, .ring_size = (4 << 20) + 4096,
          .flat = true, .ring = true };

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
static bool ring_failed;  /* the ring application lost records */

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

static void count_event(const mmapio_change_event *ev, void *user)
{
    (void)ev;
    (*(long *)user)++;
}

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
            "  --size N      bytes of each mapping the records cycle over (%llu)\n"
            "  --records N   ring application: records appended per run (%ld)\n"
            "  --ring-size N ring application: bytes of its mapping, 4 KiB\n"
            "                of indexes then the slots (%llu)\n"
            "  --only LIST   flat, ring, alone, comma-separated: the parts to\n"
            "                run (flat,ring)\n",
            opt.iters, opt.runs, MAX_WATCHERS, opt.watchers,
            (unsigned long long)opt.size, opt.records,
            (unsigned long long)opt.ring_size);
}

/* Where the time of a set of processes went: CPU run, time runnable but
 * waiting for a CPU, context switches (all threads; /proc schedstat). */
struct cost {
    double run_s, wait_s;
    long switches;
};

static void cost_add(struct cost *c, pid_t pid, int sign)
{
    char path[64];
    snprintf(path, sizeof(path), "/proc/%d/schedstat", (int)pid);
    FILE *f = fopen(path, "re");
    unsigned long long run = 0, wait = 0;
    if (f) {
        if (fscanf(f, "%llu %llu", &run, &wait) != 2)
            run = wait = 0;
        fclose(f);
    }
    c->run_s += sign * (double)run / 1e9;
    c->wait_s += sign * (double)wait / 1e9;
    long sw = hz_switches(pid);
    c->switches += sw > 0 ? sign * sw : 0;
}

/* 0: the producer, 1: the daemon, 2: the watchers (summed). */
struct costs {
    struct cost c[3];
};

static void costs_add(struct costs *cs, const pid_t *kids, int sign)
{
    cost_add(&cs->c[0], getpid(), sign);
    cost_add(&cs->c[1], d.pid, sign);
    for (int i = 0; i < opt.watchers; i++)
        cost_add(&cs->c[2], kids[i], sign);
}

static void costs_print(const char *what, const struct costs *cs,
                        double records, const char *per, const char *them)
{
    const char *const who[3] = { "producer", "daemon", them };
    printf("  %-28s", what);
    for (int i = 0; i < 3; i++)
        printf(" %s %.1f ns CPU + %.1f ns waiting for one, %.0f switches;",
               who[i], 1e9 * cs->c[i].run_s / records,
               1e9 * cs->c[i].wait_s / records,
               1e6 * (double)cs->c[i].switches / records);
    printf(" (per %s; switches per million)\n", per);
}

/* ---- the same watchers told through shared memory, without mmapio ----- */

/*
 * What watching costs on this machine whoever implements it: the producer
 * writes the same records with memcpy into plain shared memory, and every
 * RAW_BATCH records (the daemon's knock, WRING_KNOCK_BYTES, in records)
 * publishes how far it wrote and wakes sleeping watchers (a futex); each
 * watcher process re-reads every record written since it last looked, as
 * the mmapio watchers re-read what events tell them. The same run without
 * watchers is its floor. What remains of mmapio's ratio beside this one is
 * mmapio's own cost; this one is the machine's (the cache lines the
 * watchers read are taken back by the producer's next store).
 */
#define RAW_BATCH 4096

struct raw_told {
    _Alignas(64) _Atomic uint64_t published; /* records written and told */
    _Atomic uint32_t gen;                    /* futex word: bumped at each */
    _Alignas(64) _Atomic uint32_t sleepers;
    _Atomic int stop;
    _Alignas(64) uint8_t data[];
};

static void raw_wake(_Atomic uint32_t *word)
{
    syscall(SYS_futex, word, FUTEX_WAKE, INT32_MAX, NULL, NULL, 0);
}

static int raw_watcher_main(struct raw_told *t)
{
    uint64_t n = opt.size / REC, last = atomic_load(&t->published), sum = 0;
    while (!atomic_load(&t->stop)) {
        uint32_t g = atomic_load(&t->gen);
        uint64_t p = atomic_load_explicit(&t->published, memory_order_acquire);
        if (p == last) {
            atomic_fetch_add(&t->sleepers, 1);
            struct timespec ts = { 0, 100000000 };
            if (atomic_load(&t->gen) == g && !atomic_load(&t->stop))
                syscall(SYS_futex, &t->gen, FUTEX_WAIT, g, &ts, NULL, 0);
            atomic_fetch_sub(&t->sleepers, 1);
            continue;
        }
        uint64_t from = p - last > n ? p - n : last;
        for (uint64_t s = from; s < p; s++)
            sum += __atomic_load_n((const uint64_t *)(t->data + (s % n) * REC),
                                   __ATOMIC_RELAXED);
        last = p;
    }
    return (int)(sum & 0); /* read, not optimised away */
}

static void raw_publish(struct raw_told *t, uint64_t upto)
{
    atomic_store_explicit(&t->published, upto, memory_order_release);
    atomic_fetch_add(&t->gen, 1);
    if (atomic_load(&t->sleepers))
        raw_wake(&t->gen);
}

/* ns per write of opt.iters records into t's data, told or not. */
static double raw_produce(struct raw_told *t, bool told, uint64_t *count)
{
    uint8_t rec[REC];
    uint64_t n = opt.size / REC;
    memset(rec, 'r', sizeof(rec));
    int64_t t0 = now_ns();
    for (long i = 0; i < opt.iters; i++) {
        uint64_t s = ++*count;
        memcpy(rec, &s, sizeof(s));
        memcpy(t->data + (s % n) * REC, rec, sizeof(rec));
        if (told && s % RAW_BATCH == 0)
            raw_publish(t, s);
    }
    if (told)
        raw_publish(t, *count);
    __asm__ volatile("" ::: "memory");
    return (double)(now_ns() - t0) / (double)opt.iters;
}

/* The median of the runs' ratios of writes told to writes alone. */
static double run_raw(void)
{
    size_t len = sizeof(struct raw_told) + opt.size;
    struct raw_told *alone = mmap(NULL, len, PROT_READ | PROT_WRITE,
                                  MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    struct raw_told *told = mmap(NULL, len, PROT_READ | PROT_WRITE,
                                 MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (alone == MAP_FAILED || told == MAP_FAILED)
        die("mmap: %s", strerror(errno));
    pid_t kids[MAX_WATCHERS];
    for (int i = 0; i < opt.watchers; i++) {
        kids[i] = hz_fork();
        if (kids[i] == 0)
            _exit(raw_watcher_main(told));
        if (kids[i] < 0)
            die("fork: %s", strerror(errno));
    }
    uint64_t ca = 0, ct = 0;
    double ratio[1000];
    raw_produce(alone, false, &ca); /* both faulted in */
    raw_produce(told, true, &ct);
    for (int r = 0; r < opt.runs; r++) {
        double f = raw_produce(alone, false, &ca);
        ratio[r] = f / raw_produce(told, true, &ct);
    }
    atomic_store(&told->stop, 1);
    raw_wake(&told->gen);
    for (int i = 0; i < opt.watchers; i++)
        hz_wait_child(kids[i], 60000);
    munmap(alone, len);
    munmap(told, len);
    return median(ratio, opt.runs);
}

/* The flat-out part: true when a watcher missed a change or failed. */
static bool run_flat(mmapio_client *c)
{
    sh = mmap(NULL, sizeof(*sh), PROT_READ | PROT_WRITE,
              MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (sh == MAP_FAILED)
        die("mmap: %s", strerror(errno));
    mmapio_map *plain, *watched;
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
    struct costs cost_floor = { 0 }, cost_watched = { 0 };
    for (int r = 0; r < opt.runs; r++) {
        costs_add(&cost_floor, kids, -1);
        floor_ns[r] = produce(plain, NULL);
        costs_add(&cost_floor, kids, 1);
        costs_add(&cost_watched, kids, -1);
        watched_ns[r] = produce(watched, NULL);
        costs_add(&cost_watched, kids, 1);
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
    double raw = run_raw();
    printf("  without mmapio: the same watchers told through shared memory "
           "every %d records, throughput ÷ alone %.2f (the machine's price "
           "of %d processes re-reading what one writes; mmapio's ratio ÷ "
           "this: %.2f)\n", RAW_BATCH, raw, opt.watchers,
           median(ratio, opt.runs) / raw);
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
    double writes = (double)opt.runs * (double)opt.iters;
    costs_print("nobody watching:", &cost_floor, writes, "write", "watchers");
    costs_print("watched:", &cost_watched, writes, "write", "watchers");
    mmapio_unmap(plain);
    mmapio_unmap(watched);
    return missed || !all_ok;
}

/* ---- the ring-buffer application ---------------------------------------- */

/*
 * A producer appends 64-byte records to a ring in the mapping; each
 * consumer (a watcher process) reads every record. The mapping starts with
 * the ring's indexes, each on its own cache line: the producer's head
 * (records appended; mmapio atomics) and one tail per consumer (records it
 * read), then the slots. Record s goes to slot s % slots and holds s in
 * s + 1 in its first and last 8 bytes (a record being written, or a slot
 * never written, fails that check).
 * The producer waits for room (s - the slowest tail < slots), yielding;
 * a consumer never waits for the producer: it reads only when an event
 * says something changed. A MODIFIED with a range: it reads on from its
 * tail through the slots the range covers; one without ("anything may
 * have changed"): it rescans on from its tail, as far as the records are
 * whole. A record no event announced would stall its consumer, and the
 * producer with it: after STALL_NS without room the run stops, and what a
 * consumer never read is counted lost.
 */
#define RING_HDR 4096                   /* head and tails, a line each */
/* Longer than any wait for room a told consumer causes, even on a loaded
 * machine: past it the consumers were not told. */
#define STALL_NS INT64_C(10000000000)

struct ring_result {
    long ranged, rangeless, empty;      /* events; those that gave nothing */
    uint64_t read;                      /* records read */
    uint64_t bytes;                     /* bytes copied out of the ring */
    uint64_t lost;                      /* published, never read */
    int ok;
};
struct ring_shared {
    atomic_int ready;
    atomic_int done;                    /* the producer's last run ended */
    _Atomic uint64_t final_head;
    struct ring_result r[MAX_WATCHERS];
};

static struct ring_shared *rsh;

static uint64_t ring_slots(void) { return (opt.ring_size - RING_HDR) / REC; }

struct consumer {
    mmapio_map *m;
    const uint8_t *slots;
    uint64_t n;                         /* slots */
    uint64_t tail;                      /* next record to read */
    _Atomic uint64_t *tail_at;          /* ... published for the producer */
    struct ring_result *r;
    int64_t last_ns;
};

/* Records a consumer copies out at once (64 KiB: stays in its cache). */
#define CHUNK 1024

/* Reads on while the slot of the next record is in [lo, hi] (slots; all
 * of them when lo > hi) and the record is whole (its first and last 8
 * bytes hold its number + 1). As an application would: the records a
 * range covers are copied out in bulk, a chunk at a time, then checked. */
static uint64_t read_on(struct consumer *c, uint64_t lo, uint64_t hi)
{
    static uint8_t buf[CHUNK * REC];
    uint64_t got = 0, slot = c->tail % c->n;
    bool whole = true;
    while (whole && got < c->n) {
        uint64_t end = c->n - 1; /* the last slot of this run */
        if (lo <= hi) {
            if (slot < lo || slot > hi)
                break;
            end = hi < end ? hi : end;
        }
        uint64_t k = end - slot + 1;
        k = k < CHUNK ? k : CHUNK;
        k = k < c->n - got ? k : c->n - got;
        memcpy(buf, c->slots + slot * REC, k * REC);
        c->r->bytes += k * REC;
        uint64_t i = 0;
        for (; i < k; i++) {
            uint64_t first, last, want = c->tail + i + 1;
            memcpy(&first, buf + i * REC, 8);
            memcpy(&last, buf + i * REC + REC - 8, 8);
            if (first != want || last != want) {
                whole = false;
                break;
            }
        }
        c->tail += i;
        got += i;
        slot = slot + i == c->n ? 0 : slot + i;
    }
    c->r->read += got;
    if (got)
        atomic_store_explicit(c->tail_at, c->tail, memory_order_release);
    return got;
}

static void on_ring_change(const mmapio_change_event *ev, void *user)
{
    struct consumer *c = user;
    c->last_ns = now_ns();
    if (ev->kind != MMAPIO_CHANGE_MODIFIED)
        return;
    uint64_t got = 0;
    if (!ev->has_range) {
        c->r->rangeless++;
        got = read_on(c, 1, 0);
    } else {
        c->r->ranged++;
        uint64_t end = ev->offset + ev->len;
        if (ev->len && end > RING_HDR) {
            uint64_t lo = ev->offset > RING_HDR ? ev->offset - RING_HDR : 0;
            got = read_on(c, lo / REC, (end - RING_HDR - 1) / REC);
        }
    }
    c->r->empty += got == 0;
}

static int consumer_main(int idx)
{
    mmapio_client *cl;
    mmapio_watcher *wt;
    struct consumer c = { .r = &rsh->r[idx], .n = ring_slots() };
    if (mmapio_connect(d.sock, &cl) || mmapio_anon_open(cl, "ring", &c.m) ||
        mmapio_atomic_u64(c.m, 64 * (uint64_t)(1 + idx), &c.tail_at))
        return 1;
    c.slots = (const uint8_t *)mmapio_as_ptr(c.m) + RING_HDR;
    c.tail = atomic_load(c.tail_at);
    if (mmapio_watch(c.m, on_ring_change, &c, &wt))
        return 1;
    atomic_fetch_add(&rsh->ready, 1);
    c.last_ns = now_ns();
    /* Until the producer is done and this consumer read all it published,
     * or nothing came for 500 ms. */
    while (!atomic_load(&rsh->done) ||
           (c.tail < atomic_load(&rsh->final_head) &&
            now_ns() - c.last_ns < 500000000)) {
        if (mmapio_client_dispatch(cl, 100) < 0)
            return 1;
    }
    uint64_t head = atomic_load(&rsh->final_head);
    c.r->lost = head > c.tail ? head - c.tail : 0;
    c.r->ok = 1;
    mmapio_unwatch(wt);
    mmapio_unmap(c.m);
    mmapio_disconnect(cl);
    return 0;
}

struct producer {
    mmapio_map *m;
    _Atomic uint64_t *head;
    _Atomic uint64_t *tails[MAX_WATCHERS];
    int consumers;
    uint64_t next;                      /* the next record's number */
    uint64_t room_to;                   /* records below it have a slot */
    int64_t waited_ns;                  /* spent waiting for room */
    bool stalled;
};

/* The slowest consumer's tail, plus the ring. */
static uint64_t room(const struct producer *p)
{
    uint64_t low = p->next;
    for (int i = 0; i < p->consumers; i++) {
        uint64_t t = atomic_load_explicit(p->tails[i], memory_order_acquire);
        low = t < low ? t : low;
    }
    return low + ring_slots();
}

/* Appends n records; ns per record, waits for room included. *slowest:
 * the longest update_region, when asked (each call timed then). */
static double append(struct producer *p, long n, int64_t *slowest)
{
    uint8_t rec[REC];
    uint64_t slots = ring_slots();
    int64_t t0 = now_ns(), worst = 0;
    memset(rec, 'r', sizeof(rec));
    for (long i = 0; i < n && !p->stalled; i++) {
        uint64_t s = p->next;
        if (s >= p->room_to) {
            int64_t since = now_ns();
            while (s >= (p->room_to = room(p))) {
                if (now_ns() - since > STALL_NS) {
                    p->stalled = true;
                    break;
                }
                sched_yield();
            }
            p->waited_ns += now_ns() - since;
            if (p->stalled)
                break;
        }
        uint64_t tag = s + 1;
        memcpy(rec, &tag, 8);
        memcpy(rec + REC - 8, &tag, 8);
        int64_t a = slowest ? now_ns() : 0;
        int r = mmapio_update_region(p->m, RING_HDR + s % slots * REC, rec,
                                     REC);
        if (slowest) {
            int64_t t = now_ns() - a;
            worst = t > worst ? t : worst;
        }
        if (r != MMAPIO_OK)
            die("update_region: %s", mmapio_strerror(r));
        p->next = s + 1;
        atomic_store_explicit(p->head, p->next, memory_order_release);
    }
    if (slowest)
        *slowest = worst;
    return (double)(now_ns() - t0) / (double)n;
}

static void producer_open(mmapio_client *c, const char *name, int consumers,
                          struct producer *p)
{
    *p = (struct producer){ .consumers = consumers };
    CHECK(mmapio_anon_create(c, name, opt.ring_size, &p->m));
    CHECK(mmapio_atomic_u64(p->m, 0, &p->head));
    for (int i = 0; i < consumers; i++)
        CHECK(mmapio_atomic_u64(p->m, 64 * (uint64_t)(1 + i), &p->tails[i]));
}

static void run_ring(mmapio_client *c)
{
    rsh = mmap(NULL, sizeof(*rsh), PROT_READ | PROT_WRITE,
               MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (rsh == MAP_FAILED)
        die("mmap: %s", strerror(errno));
    struct producer plain, ring;
    producer_open(c, "ring_plain", 0, &plain);
    producer_open(c, "ring", opt.watchers, &ring);
    pid_t kids[MAX_WATCHERS];
    for (int i = 0; i < opt.watchers; i++) {
        kids[i] = hz_fork();
        if (kids[i] == 0)
            _exit(consumer_main(i));
        if (kids[i] < 0)
            die("fork: %s", strerror(errno));
    }
    for (int64_t end = now_ns() + 10000000000; atomic_load(&rsh->ready) < opt.watchers;) {
        if (now_ns() > end)
            die("the consumers did not start");
        usleep(1000);
    }

    /* A lap of each first: the runs then find the pages in place. */
    append(&plain, (long)ring_slots(), NULL);
    append(&ring, (long)ring_slots(), NULL);
    double floor_ns[1000], ring_ns[1000], ratio[1000];
    int runs = 0;
    /* The daemon's share of the watched runs (outside their timing). */
    double d_cpu = 0, d_s = 0, waited_s = 0;
    long d_wakes = 0;
    struct costs cost_floor = { 0 }, cost_ring = { 0 };
    for (; runs < opt.runs && !ring.stalled; runs++) {
        costs_add(&cost_floor, kids, -1);
        floor_ns[runs] = append(&plain, opt.records, NULL);
        costs_add(&cost_floor, kids, 1);
        costs_add(&cost_ring, kids, -1);
        double c0 = proc_cpu_s(d.pid);
        long w0 = hz_switches(d.pid);
        int64_t waited0 = ring.waited_ns;
        ring_ns[runs] = append(&ring, opt.records, NULL);
        costs_add(&cost_ring, kids, 1);
        d_cpu += proc_cpu_s(d.pid) - c0;
        d_wakes += hz_switches(d.pid) - w0;
        d_s += ring_ns[runs] * (double)opt.records / 1e9;
        waited_s += (double)(ring.waited_ns - waited0) / 1e9;
        ratio[runs] = floor_ns[runs] / ring_ns[runs];
    }
    int64_t slowest = 0, slowest_floor;
    double timed_floor = append(&plain, opt.records, &slowest_floor);
    double timed = ring.stalled ? 0 : append(&ring, opt.records, &slowest);
    atomic_store(&rsh->final_head, ring.next);
    atomic_store(&rsh->done, 1);
    for (int i = 0; i < opt.watchers; i++)
        hz_wait_child(kids[i], 60000);

    double f = median(floor_ns, runs), w = median(ring_ns, runs);
    printf("\nring-buffer application: update_region of %d-byte records "
           "into a ring of %llu slots, %d consumers reading each record "
           "as events tell them (median of %d runs of %ld records)\n",
           REC, (unsigned long long)ring_slots(), opt.watchers, runs,
           opt.records);
    printf("  nobody watching (floor)      %8.1f ns/record  %6.2f M records/s\n",
           f, 1e3 / f);
    printf("  %d watcher processes          %8.1f ns/record  %6.2f M records/s"
           " (waits for the slowest consumer included)\n",
           opt.watchers, w, 1e3 / w);
    printf("  throughput watched / floor   %8.2f   (goal >= 0.67; median of "
           "the runs' ratios)\n", median(ratio, runs));
    printf("  slowest update_region, one more run of each with every call "
           "timed: watched %.1f us, nobody watching (floor) %.1f us (those "
           "runs %.1f and %.1f ns/record)\n",
           (double)slowest / 1e3, (double)slowest_floor / 1e3, timed,
           timed_floor);
    uint64_t lost = 0;
    long evs = 0, empty = 0;
    bool all_ok = true;
    for (int i = 0; i < opt.watchers; i++) {
        struct ring_result *r = &rsh->r[i];
        printf("  consumer %d: %llu records read (%.1f bytes copied out a "
               "record); %ld MODIFIED with a range, "
               "%ld without; %ld wake-ups found no new record; lost %llu%s\n",
               i, (unsigned long long)r->read,
               r->read ? (double)r->bytes / (double)r->read : 0.0, r->ranged,
               r->rangeless, r->empty, (unsigned long long)r->lost,
               r->ok ? "" : " (did not finish)");
        lost += r->lost;
        evs += r->ranged + r->rangeless;
        empty += r->empty;
        all_ok &= r->ok == 1;
    }
    printf("  records lost by consumers    %8llu   (floor 0: each of the %llu "
           "records read by every consumer)%s%s\n",
           (unsigned long long)lost, (unsigned long long)ring.next,
           ring.stalled ? "; the producer stalled: a consumer was not told"
                        : "",
           all_ok ? "" : "; a consumer failed");
    printf("  empty wake-ups               %7.1f%%   (floor 0%%: every event "
           "brings a record; %ld of %ld events)\n",
           evs ? 100.0 * (double)empty / (double)evs : 0.0, empty, evs);
    long rangeless = 0;
    for (int i = 0; i < opt.watchers; i++)
        rangeless += rsh->r[i].rangeless;
    double recs = (double)runs * (double)opt.records;
    printf("  in the watched runs          producer waiting for room %.0f%% "
           "of the time; daemon %.0f wake-ups per million records, %.0f%% of "
           "a core; %.0f records per event a consumer got, %.0f%% of the "
           "events without a range (ranges dropped)\n",
           d_s > 0 ? 100.0 * waited_s / d_s : 0.0,
           recs > 0 ? 1e6 * (double)d_wakes / recs : 0.0,
           d_s > 0 ? 100.0 * d_cpu / d_s : 0.0,
           evs ? (double)ring.next * opt.watchers / (double)evs : 0.0,
           evs ? 100.0 * (double)rangeless / (double)evs : 0.0);
    costs_print("nobody watching:", &cost_floor, recs, "record", "consumers");
    costs_print("watched:", &cost_ring, recs, "record", "consumers");
    mmapio_unmap(plain.m);
    mmapio_unmap(ring.m);
    if (lost || !all_ok || ring.stalled)
        ring_failed = true;
}

/* ---- the watched path alone ------------------------------------------- */

static double thread_cpu_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

/* What being watched costs the producer's own CPU, apart from what the
 * watchers' reading does to it: the flat-out writes into a mapping nobody
 * watches and into one a watcher of this process watches but does not
 * read until the end (the daemon drains the ring and merges what it
 * tells), in CPU time of this thread (preemption left out). */
static void run_alone(mmapio_client *c)
{
    mmapio_client *wc;
    mmapio_map *plain, *watched, *seen;
    mmapio_watcher *wt;
    long events = 0;
    CHECK(mmapio_anon_create(c, "alone_plain", opt.size, &plain));
    CHECK(mmapio_anon_create(c, "alone_watched", opt.size, &watched));
    CHECK(mmapio_connect(d.sock, &wc));
    CHECK(mmapio_anon_open(wc, "alone_watched", &seen));
    CHECK(mmapio_watch(seen, count_event, &events, &wt));
    produce(plain, NULL);
    produce(watched, NULL);
    double f[1000], w[1000], diff[1000];
    for (int r = 0; r < opt.runs; r++) {
        double t0 = thread_cpu_ns();
        produce(plain, NULL);
        double t1 = thread_cpu_ns();
        produce(watched, NULL);
        double t2 = thread_cpu_ns();
        f[r] = (t1 - t0) / (double)opt.iters;
        w[r] = (t2 - t1) / (double)opt.iters;
        diff[r] = w[r] - f[r];
    }
    while (mmapio_client_dispatch(wc, 50) > 0)
        ;
    printf("\nthe watched path alone: update_region of %d bytes flat out, "
           "CPU time of the producer's thread (median of %d runs)\n", REC,
           opt.runs);
    printf("  nobody watching              %8.1f ns/write\n",
           median(f, opt.runs));
    printf("  watched, the watcher not reading %4.1f ns/write  (%.1f more; "
           "%ld events)\n", median(w, opt.runs), median(diff, opt.runs),
           events);
    mmapio_unwatch(wt);
    mmapio_unmap(seen);
    mmapio_disconnect(wc);
    mmapio_unmap(plain);
    mmapio_unmap(watched);
}

/* --only's list into opt.flat and opt.ring; false if it names others. */
static bool parse_only(const char *list)
{
    opt.flat = opt.ring = opt.alone = false;
    char buf[64];
    snprintf(buf, sizeof(buf), "%s", list);
    for (char *save, *t = strtok_r(buf, ",", &save); t;
         t = strtok_r(NULL, ",", &save)) {
        if (strcmp(t, "flat") == 0)
            opt.flat = true;
        else if (strcmp(t, "ring") == 0)
            opt.ring = true;
        else if (strcmp(t, "alone") == 0)
            opt.alone = true;
        else
            return false;
    }
    return opt.flat || opt.ring || opt.alone;
}

int main(int argc, char **argv)
{
    static const struct option lo[] = {
        { "iters", required_argument, NULL, 'i' },
        { "runs", required_argument, NULL, 'r' },
        { "watchers", required_argument, NULL, 'w' },
        { "size", required_argument, NULL, 's' },
        { "records", required_argument, NULL, 'n' },
        { "ring-size", required_argument, NULL, 'R' },
        { "only", required_argument, NULL, 'o' },
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
        case 'n': opt.records = bench_num(optarg, 1, 1L << 40); break;
        case 'R':
            opt.ring_size = (uint64_t)bench_num(optarg, RING_HDR + 2 * REC,
                                                1L << 34) / REC * REC;
            break;
        case 'o':
            if (!parse_only(optarg)) {
                fprintf(stderr, "bench_watch: --only takes flat, ring, alone\n");
                return 2;
            }
            break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    signal(SIGPIPE, SIG_IGN);
    bench_start_daemon(&d, NULL, NULL, 0);
    printf("bench_watch: mmapiod %s (pid %d), %ld CPUs; %d watcher "
           "processes; flat out: %ld writes of %d bytes per run over %llu "
           "bytes; ring: %ld records per run, %llu bytes\n",
           getenv("MMAPIOD"), (int)d.pid, sysconf(_SC_NPROCESSORS_ONLN),
           opt.watchers, opt.iters, REC, (unsigned long long)opt.size,
           opt.records, (unsigned long long)opt.ring_size);
    bench_print_load("before", "");
    fflush(stdout);

    mmapio_client *c;
    CHECK(mmapio_connect(d.sock, &c));
    bool failed = opt.flat && run_flat(c);
    fflush(stdout);
    if (opt.ring)
        run_ring(c);
    if (opt.alone)
        run_alone(c);
    bench_print_load("after", "");

    mmapio_disconnect(c);
    int st = hz_stop(&d);
    hz_cleanup(&d);
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        fprintf(stderr, "bench_watch: mmapiod did not exit 0 (0x%x)\n",
                (unsigned)st);
        return 1;
    }
    return failed || ring_failed ? 1 : 0;
}
