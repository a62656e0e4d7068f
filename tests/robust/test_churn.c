/*
 * test_churn: clients that connect, open, write and die of SIGKILL, over
 * and over (churn.h), some killed mid-request. Afterwards the daemon holds
 * as many fds as before, its resident memory is within a small bound of
 * what it was, it holds nothing of theirs (the test's own handle is the
 * sole holder again: shrinking is allowed), and every record a killed
 * child wrote with update_region under policy NEVER is in the file and
 * on disk: the daemon flushes a file when a writer's connection dies.
 * scripts/soak runs the same cycle 10,000 times.
 */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "churn.h"
#include "harness.h"
#include "pagecache.h"
#include "robust.h"

TestSuite(churn, .init = hz_setup, .fini = hz_teardown, .timeout = 120);

#define WARMUP 8
#define RSS_SLACK_KIB (8 * 1024)

static void run_cycles(struct churn *ch, uint32_t from, uint32_t n)
{
    char err[512];
    for (uint32_t i = from; i < from + n; i++) {
        int r = churn_cycle(ch, i, err, sizeof(err));
        cr_assert_eq(r, 0, "%s", err);
        cr_assert(hz_alive(&hz), "mmapiod died at cycle %u", (unsigned)i);
    }
}

Test(churn, killed_clients_leave_nothing_behind)
{
    /* Valgrind makes every cycle slow and the RSS its own. */
    uint32_t cycles = rb_wrapped() ? 40 : 500;
    mmapio_client *c = hz_client();
    mmapio_map *f, *a;
    hz_assert_ok(mmapio_create_rw(c, "churn.dat", CHURN_FILE_SIZE, &f));
    hz_assert_ok(mmapio_anon_create(c, "churn", CHURN_ANON_SIZE, &a));
    struct churn ch;
    churn_init(&ch, hz.sock, "churn.dat", "churn");

    /* Warm-up: state the daemon makes lazily belongs to the baseline. */
    run_cycles(&ch, 0, WARMUP);
    int base_fds = hz_fd_baseline(&hz);
    long base_rss = rb_rss_kib(hz.pid);
    cr_assert_gt(base_fds, 0);
    cr_assert_gt(base_rss, 0);

    run_cycles(&ch, WARMUP, cycles);
    cr_assert_gt(ch.completed, cycles / 2);
    cr_assert_gt(ch.midway, 0);

    int fds = hz_fd_count_settle(hz.pid, base_fds, 5000);
    cr_assert_leq(fds, base_fds, "daemon holds %d fds after %u killed "
                  "clients, %d before", fds, cycles, base_fds);
    long rss = rb_rss_kib(hz.pid);
    cr_log_info("churn: %u cycles (%u killed mid-way); fds %d -> %d; "
                "VmRSS %ld -> %ld KiB", cycles, ch.midway, base_fds, fds,
                base_rss, rss);
    if (rb_rss_meaningful())
        cr_assert_leq(rss, base_rss + RSS_SLACK_KIB,
                      "daemon VmRSS grew from %ld to %ld KiB over %u "
                      "killed clients", base_rss, rss, cycles);

    /* The killed writers' records: flushed by the daemon, and there. */
    const char *path = hz_path(&hz, "churn.dat");
    int64_t waited = 0;
    long dirty = pc_wait_synced(path, 5000, &waited);
    if (dirty != -ENOSYS)
        cr_assert_eq(dirty, 0, "%ld pages of churn.dat still dirty %lld ms "
                     "after the last writer was killed: the daemon did not "
                     "flush", dirty, (long long)waited);
    char err[512];
    cr_assert_eq(churn_verify(&ch, path, err, sizeof(err)), 0, "%s", err);
    char rec[CHURN_RECORD];
    hz_assert_ok(mmapio_read_into(a, 0, rec, sizeof(rec)));
    cr_assert_eq(memcmp(rec, "cycle ", 6), 0, "anonymous mapping: %.*s",
                 CHURN_RECORD, rec);

    /* Control: a write of ours (policy NEVER) stays dirty, so the clean
     * file above was the daemon's doing, not the kernel's writeback. */
    if (dirty != -ENOSYS) {
        hz_assert_ok(mmapio_update_region(f, CHURN_FILE_SIZE - 16, "x", 1));
        cr_assert_gt(pc_unsynced(path), 0, "the test cannot tell whether "
                     "the daemon flushed: a fresh write is clean at once");
    }

    /* Nothing of the dead is held: this handle is the sole holder. */
    hz_assert_ok(mmapio_resize(f, CHURN_FILE_SIZE / 2));
    hz_assert_ok(mmapio_resize(a, CHURN_ANON_SIZE / 2));
    hz_assert_ok(mmapio_ping(c));
    mmapio_unmap(f);
    mmapio_unmap(a);
    mmapio_disconnect(c);
}
