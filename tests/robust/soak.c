/*
 * soak: the churn cycle of test_churn (churn.h) many times over, with the
 * daemon's fd count and resident memory printed as it goes. Run by
 * scripts/soak; not a test of the suite.
 *
 *   soak [CYCLES [EVERY]]    default 10000 cycles, a line every 1000
 *
 * Starts its own mmapiod ($MMAPIOD, else the build tree's) on a fresh
 * temporary directory. Exit status 0 when, at the end, the daemon holds
 * no more fds than at the start, its VmRSS grew by at most 16 MiB, every
 * killed writer's record is in the file and on disk, and the daemon
 * exits 0 on SIGTERM; 1 otherwise.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "churn.h"
#include "harness.h"
#include "pagecache.h"
#include "robust.h"

#define WARMUP 8
#define RSS_BOUND_KIB (16 * 1024)

static struct hz_daemon d = { .pid = -1 };

static void die(const char *what, const char *why)
{
    fprintf(stderr, "soak: %s%s%s\n", what, why ? ": " : "", why ? why : "");
    hz_cleanup(&d);
    exit(1);
}

static void row(unsigned cycle, int64_t t0, int64_t *last_t,
                unsigned *last_cycle)
{
    int64_t now = hz_now_ms();
    double dt = (double)(now - *last_t) / 1000.0;
    double rate = dt > 0 ? (double)(cycle - *last_cycle) / dt : 0;
    printf("%8u %6d %9ld %9.1f %10.0f\n", cycle, hz_fd_count(d.pid),
           rb_rss_kib(d.pid), (double)(now - t0) / 1000.0, rate);
    fflush(stdout);
    *last_t = now;
    *last_cycle = cycle;
}

int main(int argc, char **argv)
{
    unsigned long cycles = argc > 1 ? strtoul(argv[1], NULL, 10) : 10000;
    unsigned long every = argc > 2 ? strtoul(argv[2], NULL, 10) : 1000;
    char err[512];
    if (cycles == 0 || every == 0 || argc > 3) {
        fprintf(stderr, "usage: soak [CYCLES [EVERY]]\n");
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    if (!getenv("MMAPIOD")) {
        const char *bin = hz_build_file("MMAPIOD", "../../daemon/mmapiod");
        if (!bin)
            die("no mmapiod: set $MMAPIOD", NULL);
        setenv("MMAPIOD", bin, 1);
    }
    int r = hz_init(&d);
    if (r < 0)
        die("mkdtemp", strerror(-r));
    if ((r = rb_start(&d, NULL)) < 0)
        die("mmapiod did not start", strerror(-r));

    mmapio_client *c;
    mmapio_map *f, *a;
    if (mmapio_connect(d.sock, &c) ||
        mmapio_create_rw(c, "churn.dat", CHURN_FILE_SIZE, &f) ||
        mmapio_anon_create(c, "churn", CHURN_ANON_SIZE, &a))
        die("cannot set up the shared mappings", NULL);
    struct churn ch;
    churn_init(&ch, d.sock, "churn.dat", "churn");
    for (uint32_t i = 0; i < WARMUP; i++)
        if (churn_cycle(&ch, i, err, sizeof(err)) < 0)
            die(err, NULL);

    int base_fds = hz_fd_baseline(&d);
    long base_rss = rb_rss_kib(d.pid);
    printf("soak: mmapiod pid %d, %lu cycles (every %dth killed mid-way)\n",
           (int)d.pid, cycles, CHURN_MIDWAY_EVERY);
    printf("%8s %6s %9s %9s %10s\n", "cycles", "fds", "rss_kib", "elapsed_s",
           "cycles/s");
    int64_t t0 = hz_now_ms(), last_t = t0;
    unsigned last_cycle = 0;
    row(0, t0, &last_t, &last_cycle);
    for (unsigned long i = 1; i <= cycles; i++) {
        if (churn_cycle(&ch, (uint32_t)(WARMUP + i), err, sizeof(err)) < 0)
            die(err, NULL);
        if (!hz_alive(&d))
            die("mmapiod died", NULL);
        if (i % every == 0 || i == cycles)
            row((unsigned)i, t0, &last_t, &last_cycle);
    }
    double secs = (double)(hz_now_ms() - t0) / 1000.0;

    int fds = hz_fd_count_settle(d.pid, base_fds, 5000);
    long rss = rb_rss_kib(d.pid);
    const char *path = hz_path(&d, "churn.dat");
    long dirty = pc_wait_synced(path, 5000, NULL);
    int verified = churn_verify(&ch, path, err, sizeof(err));
    mmapio_unmap(f);
    mmapio_unmap(a);
    mmapio_disconnect(c);
    int st = hz_stop(&d);
    hz_cleanup(&d);

    printf("soak: %lu cycles in %.1f s: %.0f cycles/s (%u killed at the "
           "rendezvous, %u mid-way, with %d warm-up cycles)\n", cycles, secs,
           secs > 0 ? (double)cycles / secs : 0, ch.completed, ch.midway,
           WARMUP);
    printf("soak: daemon fds %d -> %d (settled), VmRSS %ld -> %ld KiB "
           "(%+ld KiB)\n", base_fds, fds, base_rss, rss, rss - base_rss);
    printf("soak: records %s; file %s; daemon %s on SIGTERM\n",
           verified == 0 ? "intact" : err,
           dirty == 0 ? "flushed" : dirty == -ENOSYS ? "(no cachestat)"
                                                     : "STILL DIRTY",
           WIFEXITED(st) && WEXITSTATUS(st) == 0 ? "exited 0" : "FAILED");
    bool rss_ok = rss - base_rss <= RSS_BOUND_KIB || !rb_rss_meaningful();
    bool ok = fds <= base_fds && rss_ok &&
              verified == 0 && (dirty == 0 || dirty == -ENOSYS) &&
              WIFEXITED(st) && WEXITSTATUS(st) == 0;
    printf("soak: %s\n", ok ? "PASS" : "FAIL");
    return ok ? 0 : 1;
}
