/*
 * test_cache: the open cache (daemon/services/opencache.h) and the bounds
 * on what the daemon keeps after a release (flushes.h).
 *
 * A file released and opened again is never served stale: replaced by a
 * rename, renamed away, unlinked, truncated or grown, chmod'ed between two
 * opens, the second open sees the file the path names now, with the
 * access the kernel gives the caller now (a second uid, RB_NOBODY, checked
 * at every open). Files nobody holds are not listed. A cycle of read-only
 * opens flushes nothing (the daemon's flush counter stands still); a
 * writer's bytes reach the disk after its release, also past the bound on
 * final flushes. Thousands of open/unmap cycles over many files keep the
 * daemon's fds within the cache's bound.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "harness.h"
#include "pagecache.h"
#include "robust.h"

static void start(const char *const *extra)
{
    if (geteuid() != 0)
        cr_skip_test("needs root, to run children as another uid");
    signal(SIGPIPE, SIG_IGN);
    int r = hz_init(&hz);
    cr_assert_eq(r, 0, "mkdtemp: %s", strerror(-r));
    cr_assert_eq(rb_share(&hz), 0);
    r = rb_start(&hz, extra);
    cr_assert_eq(r, 0, "mmapiod did not come up: %s", strerror(-r));
    setenv("MMAPIO_SOCKET", hz.sock, 1);
}

static void init(void)
{
    start(NULL);
}

TestSuite(cache, .init = init, .fini = hz_teardown, .timeout = 120);

/* Writes `text` as the whole file rel (mode 0644), via a temporary name
 * and a rename when `replace`: the path then names a new inode. */
static void put(const char *rel, const char *text, bool replace)
{
    char tmp[300];
    snprintf(tmp, sizeof(tmp), "%s.tmp", rel);
    const char *path = hz_path(&hz, replace ? tmp : rel);
    cr_assert_eq(hz_write_file(path, text, strlen(text)), 0);
    cr_assert_eq(chmod(path, 0644), 0);
    if (replace) {
        char to[300];
        snprintf(to, sizeof(to), "%s", hz_path(&hz, rel));
        cr_assert_eq(rename(hz_path(&hz, tmp), to), 0);
    }
}

/* Opens rel read-only on c, checks its bytes are `text`, unmaps. */
static void expect(mmapio_client *c, const char *rel, const char *text)
{
    mmapio_map *m;
    hz_assert_ok(mmapio_open_ro(c, rel, &m));
    size_t n = strlen(text);
    cr_assert_eq(mmapio_len(m), (uint64_t)n, "%s: %llu bytes, expected %zu",
                 rel, (unsigned long long)mmapio_len(m), n);
    cr_assert_eq(memcmp(mmapio_as_ptr(m), text, n), 0, "%s: stale bytes", rel);
    hz_assert_ok(mmapio_unmap(m));
}

Test(cache, a_file_replaced_by_rename_is_seen)
{
    mmapio_client *c = hz_client();
    put("r.txt", "the first file", false);
    expect(c, "r.txt", "the first file");
    put("r.txt", "a second, longer file", true);
    expect(c, "r.txt", "a second, longer file");
    mmapio_disconnect(c);
}

Test(cache, a_file_renamed_away_or_unlinked_is_gone)
{
    mmapio_client *c = hz_client();
    mmapio_map *m;
    put("away.txt", "moving", false);
    put("gone.txt", "going", false);
    expect(c, "away.txt", "moving");
    expect(c, "gone.txt", "going");
    char to[300];
    snprintf(to, sizeof(to), "%s", hz_path(&hz, "moved.txt"));
    cr_assert_eq(rename(hz_path(&hz, "away.txt"), to), 0);
    cr_assert_eq(unlink(hz_path(&hz, "gone.txt")), 0);
    hz_assert_ret(mmapio_open_ro(c, "away.txt", &m), MMAPIO_E_NOT_FOUND);
    hz_assert_ret(mmapio_open_ro(c, "gone.txt", &m), MMAPIO_E_NOT_FOUND);
    expect(c, "moved.txt", "moving");
    /* Deleted through the daemon, then made anew: the new file. */
    hz_assert_ok(mmapio_delete(c, "moved.txt"));
    hz_assert_ret(mmapio_open_ro(c, "moved.txt", &m), MMAPIO_E_NOT_FOUND);
    put("moved.txt", "born again", false);
    expect(c, "moved.txt", "born again");
    mmapio_disconnect(c);
}

Test(cache, an_unlinked_file_is_let_go)
{
    int base = hz_fd_baseline(&hz);
    mmapio_client *c = hz_client();
    char rel[32];
    for (int i = 0; i < 20; i++) {
        snprintf(rel, sizeof(rel), "u%d", i);
        put(rel, "unlink me", false);
        expect(c, rel, "unlink me");
    }
    mmapio_disconnect(c);
    /* The cache keeps them open; unlinked, they are closed (their disk
     * space freed) without anyone opening anything. */
    cr_assert_gt(hz_fd_count(hz.pid), base);
    for (int i = 0; i < 20; i++) {
        snprintf(rel, sizeof(rel), "u%d", i);
        cr_assert_eq(unlink(hz_path(&hz, rel)), 0);
    }
    int now = hz_fd_count_settle(hz.pid, base, 10000);
    cr_assert_leq(now, base, "daemon fds: %d, baseline %d", now, base);
}

Test(cache, a_new_size_is_seen)
{
    mmapio_client *c = hz_client();
    const char *path = hz_path(&hz, "size.bin");
    cr_assert_eq(hz_write_file(path, "x", 1), 0);
    cr_assert_eq(truncate(path, 8192), 0);
    mmapio_map *m;
    hz_assert_ok(mmapio_open_ro(c, "size.bin", &m));
    cr_assert_eq(mmapio_len(m), 8192);
    hz_assert_ok(mmapio_unmap(m));
    cr_assert_eq(truncate(path, 4096), 0);
    hz_assert_ok(mmapio_open_ro(c, "size.bin", &m));
    cr_assert_eq(mmapio_len(m), 4096, "truncated file: %llu bytes",
                 (unsigned long long)mmapio_len(m));
    hz_assert_ok(mmapio_unmap(m));
    cr_assert_eq(truncate(path, 12288), 0);
    hz_assert_ok(mmapio_open_ro(c, "size.bin", &m));
    cr_assert_eq(mmapio_len(m), 12288, "grown file: %llu bytes",
                 (unsigned long long)mmapio_len(m));
    hz_assert_ok(mmapio_unmap(m));
    mmapio_disconnect(c);
}

/* ---- access, as another uid -------------------------------------------- */

struct access_case {
    const char *rel;
    mmapio_mode mode;
    int want;
};

static const char *open_as(mmapio_client *c, void *arg)
{
    const struct access_case *a = arg;
    mmapio_options o;
    mmapio_map *m;
    mmapio_options_init(&o);
    o.mode = a->mode;
    /* Twice: the second open finds the mapping the first left behind. */
    for (int i = 0; i < 2; i++) {
        int r = mmapio_open(c, a->rel, &o, &m);
        EXPECT(r, a->want);
        if (r == MMAPIO_OK)
            EXPECT(mmapio_unmap(m), MMAPIO_OK);
    }
    return NULL;
}

static void check_as(const char *rel, mmapio_mode mode, int want)
{
    struct access_case a = { rel, mode, want };
    char why[600];
    cr_assert_eq(rb_run_as(hz.sock, RB_NOBODY, RB_NOBODY, open_as, &a, why,
                           sizeof(why)), 0, "%s: %s", rel, why);
}

Test(cache, a_chmod_is_seen_at_the_next_open)
{
    mmapio_client *c = hz_client();
    put("mode.txt", "whose?", false);
    expect(c, "mode.txt", "whose?");
    check_as("mode.txt", MMAPIO_MODE_READ_ONLY, MMAPIO_OK);
    cr_assert_eq(chmod(hz_path(&hz, "mode.txt"), 0600), 0);
    check_as("mode.txt", MMAPIO_MODE_READ_ONLY, MMAPIO_E_PERMISSION);
    expect(c, "mode.txt", "whose?"); /* root still may */
    cr_assert_eq(chmod(hz_path(&hz, "mode.txt"), 0644), 0);
    check_as("mode.txt", MMAPIO_MODE_READ_ONLY, MMAPIO_OK);
    mmapio_disconnect(c);
}

Test(cache, every_open_is_checked_for_its_own_mode)
{
    mmapio_client *c = hz_client();
    mmapio_map *m;
    put("rw.txt", "root's", false);
    /* Root held it read-write: the cached mapping's fd is writable. */
    hz_assert_ok(mmapio_open_rw(c, "rw.txt", &m));
    hz_assert_ok(mmapio_unmap(m));
    check_as("rw.txt", MMAPIO_MODE_READ_WRITE, MMAPIO_E_PERMISSION);
    check_as("rw.txt", MMAPIO_MODE_READ_ONLY, MMAPIO_OK);
    check_as("rw.txt", MMAPIO_MODE_COPY_ON_WRITE, MMAPIO_OK);
    /* A directory the caller may no longer search hides the file. */
    cr_assert_eq(mkdir(hz_path(&hz, "dir"), 0755), 0);
    put("dir/in.txt", "inside", false);
    check_as("dir/in.txt", MMAPIO_MODE_READ_ONLY, MMAPIO_OK);
    cr_assert_eq(chmod(hz_path(&hz, "dir"), 0700), 0);
    check_as("dir/in.txt", MMAPIO_MODE_READ_ONLY, MMAPIO_E_PERMISSION);
    mmapio_disconnect(c);
}

Test(cache, files_nobody_holds_are_not_listed)
{
    mmapio_client *c = hz_client();
    put("listed.txt", "listed while held", false);
    mmapio_map *m;
    hz_assert_ok(mmapio_open_ro(c, "listed.txt", &m));
    mmapio_map_info *maps;
    size_t n;
    hz_assert_ok(mmapio_admin_list(c, &maps, &n));
    cr_assert_eq(n, 1);
    mmapio_map_info_free(maps, n);
    hz_assert_ok(mmapio_unmap(m));
    hz_assert_ok(mmapio_admin_list(c, &maps, &n));
    cr_assert_eq(n, 0, "%zu mappings listed after the last unmap", n);
    mmapio_map_info_free(maps, n);
    mmapio_status *st;
    hz_assert_ok(mmapio_admin_status(c, &st));
    cr_assert_eq(st->mappings, 0);
    mmapio_status_free(st);
    hz_assert_ret(mmapio_admin_flush(c, "listed.txt", false, NULL),
                  MMAPIO_E_NOT_FOUND);
    mmapio_disconnect(c);
}

/* mmapio_unmap sends its release one way: it returns while the daemon is
 * stopped, and the connection's next request finds the holder gone. */
Test(cache, unmap_does_not_wait_for_the_daemon)
{
    mmapio_client *c = hz_client();
    put("oneway.txt", "released one way", false);
    mmapio_map *m[8];
    for (int i = 0; i < 8; i++)
        hz_assert_ok(mmapio_open_ro(c, "oneway.txt", &m[i]));
    cr_assert_eq(kill(hz.pid, SIGSTOP), 0);
    for (int i = 0; i < 8; i++)
        hz_assert_ok(mmapio_unmap(m[i])); /* would hang on a round trip */
    cr_assert_eq(kill(hz.pid, SIGCONT), 0);
    mmapio_map_info *maps;
    size_t n;
    hz_assert_ok(mmapio_admin_list(c, &maps, &n));
    cr_assert_eq(n, 0, "%zu mappings still held after 8 releases", n);
    mmapio_map_info_free(maps, n);
    hz_assert_ok(mmapio_ping(c)); /* no stray answer to a release */
    mmapio_disconnect(c);
}

/* ---- flushes ------------------------------------------------------------ */

static uint64_t flushes_done(mmapio_client *c)
{
    mmapio_status *st;
    hz_assert_ok(mmapio_admin_status(c, &st));
    uint64_t n = st->flushes;
    mmapio_status_free(st);
    return n;
}

Test(cache, readers_cost_no_flush)
{
    mmapio_client *c = hz_client();
    mmapio_map *m;
    hz_assert_ok(mmapio_create_rw(c, "read.bin", 65536, &m));
    hz_assert_ok(mmapio_update_region(m, 0, "written once", 12));
    hz_assert_ok(mmapio_unmap(m));
    /* The writer's final flush ends... */
    uint64_t before = flushes_done(c);
    for (int i = 0; i < 100 && before == 0; i++) {
        usleep(20 * 1000);
        before = flushes_done(c);
    }
    cr_assert_gt(before, 0, "the writer's release was not flushed");
    /* ... then readers come and go, read-only and copy-on-write. */
    for (int i = 0; i < 200; i++) {
        hz_assert_ok(i % 2 ? mmapio_open_ro(c, "read.bin", &m)
                           : mmapio_open_cow(c, "read.bin", &m));
        cr_assert_eq(memcmp(mmapio_as_ptr(m), "written once", 12), 0);
        hz_assert_ok(mmapio_unmap(m));
    }
    hz_assert_ok(mmapio_ping(c));
    usleep(100 * 1000);
    cr_assert_eq(flushes_done(c), before, "read-only releases were flushed");
    mmapio_disconnect(c);
}

/* Writes `n` files through the daemon, releasing each at once; each must
 * reach the disk. */
static void write_many(mmapio_client *c, int n)
{
    char rel[32], buf[4096];
    for (int i = 0; i < n; i++) {
        mmapio_map *m;
        snprintf(rel, sizeof(rel), "w%d.bin", i);
        memset(buf, 'a' + i % 26, sizeof(buf));
        hz_assert_ok(mmapio_create_rw(c, rel, sizeof(buf), &m));
        hz_assert_ok(mmapio_update_region(m, 0, buf, sizeof(buf)));
        hz_assert_ok(mmapio_unmap(m));
    }
    for (int i = 0; i < n; i++) {
        snprintf(rel, sizeof(rel), "w%d.bin", i);
        long left = pc_wait_synced(hz_path(&hz, rel), 20000, NULL);
        cr_assert_eq(left, 0, "%s: %ld pages never flushed", rel, left);
        char disk[4096];
        cr_assert_eq(hz_read_file(hz_path(&hz, rel), disk, sizeof(disk)),
                     (long)sizeof(disk));
        cr_assert_eq(disk[0], 'a' + i % 26);
    }
}

Test(cache, a_writers_bytes_reach_the_disk)
{
    PC_REQUIRE_CACHESTAT();
    mmapio_client *c = hz_client();
    write_many(c, 20);
    mmapio_disconnect(c);
}

/* ---- bounds --------------------------------------------------------------- */

/* With open_cache 16 (and so 16 final flushes holding a mapping), opens
 * over many files: the daemon's fds stay within what the cache, the
 * flushes and a few transient ones take, and every written byte still
 * reaches the disk (past 16, final flushes go as one syncfs). */
static void start_small(void)
{
    static const char *const extra[] = { "--open-cache", "16", NULL };
    start(extra);
}

Test(cache, the_cache_bound_is_kept, .init = start_small)
{
    PC_REQUIRE_CACHESTAT();
    int base = hz_fd_baseline(&hz);
    mmapio_client *c = hz_client();
    int cycles = rb_wrapped() ? 5000 : 20000, files = 500, worst = 0;
    char rel[32];
    for (int i = 0; i < files; i++) {
        snprintf(rel, sizeof(rel), "f%d", i);
        put(rel, "a file among many", false);
    }
    for (int i = 0; i < cycles; i++) {
        mmapio_map *m;
        snprintf(rel, sizeof(rel), "f%d", i % files);
        hz_assert_ok(i % 3 ? mmapio_open_ro(c, rel, &m)
                           : mmapio_open_rw(c, rel, &m));
        if (i % 3 == 0)
            hz_assert_ok(mmapio_update_region(m, 0, "A", 1));
        hz_assert_ok(mmapio_unmap(m));
        if (i % 250 == 0) {
            int n = hz_fd_count(hz.pid);
            worst = n > worst ? n : worst;
        }
    }
    hz_assert_ok(mmapio_ping(c));
    int after = hz_fd_count(hz.pid);
    worst = after > worst ? after : worst;
    /* The cache's 16, final flushes' 16, and a few more: a syncfs per
     * file system and worker, the connection, a grant in flight. */
    cr_log_info("daemon fds: %d at rest, %d at worst over %d cycles", base,
                worst, cycles);
    cr_assert_leq(worst, base + 16 + 16 + 16, "daemon fds: %d at rest, "
                  "%d over %d cycles of %d files", base, worst, cycles, files);
    for (int i = 0; i < files; i += 3) {
        snprintf(rel, sizeof(rel), "f%d", i);
        long left = pc_wait_synced(hz_path(&hz, rel), 20000, NULL);
        cr_assert_eq(left, 0, "%s: %ld pages never flushed", rel, left);
    }
    write_many(c, 100);
    mmapio_disconnect(c);
}

/* ---- out of fds ------------------------------------------------------------ */

/* The daemon's soft limit (its hard one stays). */
static void limit_fds(rlim_t n)
{
    struct rlimit rl;
    cr_assert_eq(prlimit(hz.pid, RLIMIT_NOFILE, NULL, &rl), 0);
    rl.rlim_cur = n;
    cr_assert_eq(prlimit(hz.pid, RLIMIT_NOFILE, &rl, NULL), 0,
                 "prlimit: %s", strerror(errno));
}

/* The daemon's fd limit lowered under it (its budgets were fitted to the
 * old one): an open that meets EMFILE says so, in the reply and the log,
 * the cache gives back what it keeps, and the daemon goes on serving. */
Test(cache, running_out_of_fds_is_said)
{
    if (rb_wrapped())
        cr_skip_test("valgrind keeps fds of its own in the daemon's process");
    mmapio_client *c = hz_client();
    mmapio_map *m;
    char rel[32];
    for (int i = 0; i < 8; i++) {
        snprintf(rel, sizeof(rel), "e%d", i);
        put(rel, "kept", false);
        expect(c, rel, "kept");
    }
    put("new1", "new", false);
    put("new2", "new", false);
    hz_assert_ok(mmapio_ping(c));
    struct rlimit old;
    cr_assert_eq(prlimit(hz.pid, RLIMIT_NOFILE, NULL, &old), 0);
    /* No fd to spare: the cache's eight go back, and the open works. */
    limit_fds((rlim_t)hz_fd_count(hz.pid));
    expect(c, "new1", "new");
    /* Fewer fds than the daemon holds: nothing to give back. */
    limit_fds((rlim_t)hz_fd_count(hz.pid) - 2);
    hz_assert_ret(mmapio_open_ro(c, "new2", &m), MMAPIO_E_QUOTA);
    cr_assert(strstr(mmapio_last_error(), "out of file descriptors"),
              "the reason given: %s", mmapio_last_error());
    cr_assert(rb_log_has(&hz, "out of file descriptors", 2000),
              "not logged: %s", rb_log_tail(&hz));
    hz_assert_ok(mmapio_ping(c));
    limit_fds(old.rlim_cur);
    expect(c, "new2", "new");
    mmapio_disconnect(c);
}
