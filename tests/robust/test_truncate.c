/*
 * test_truncate: a file truncated under its mappings by a process that
 * does not use mmapio (plain truncate(2)).
 *
 * The library's copying calls, read_into and update_region, return
 * MMAPIO_E_IO for the part past the new end instead of the process dying
 * of SIGBUS, also through a copy-on-write handle and in another process;
 * below the end they work as before. A watcher is told (MODIFIED and
 * METADATA); after mmapio_refresh the handle has the new length, and when
 * the file grows back, refresh maps the file again: what the handle reads
 * and writes there is the file's, not a stand-in page. A SIGBUS outside
 * the library's copies (a raw pointer) is not swallowed: it reaches the
 * program's own handler, or kills the process as it would without us.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "robust.h"

TestSuite(truncate, .init = hz_setup, .fini = hz_teardown, .timeout = 60);

#define BIG 65536
#define SMALL 4096

struct seen {
    int modified, metadata, removed;
};

static void on_event(const mmapio_change_event *ev, void *user)
{
    struct seen *s = user;
    if (ev->kind == MMAPIO_CHANGE_MODIFIED)
        s->modified++;
    else if (ev->kind == MMAPIO_CHANGE_METADATA)
        s->metadata++;
    else
        s->removed++;
}

static char pattern(uint64_t i)
{
    return (char)('A' + i % 23);
}

/* A BIG file of the pattern at rel, written with write(2). */
static void write_pattern_file(const char *rel)
{
    static char buf[BIG];
    for (uint64_t i = 0; i < BIG; i++)
        buf[i] = pattern(i);
    cr_assert_eq(hz_write_file(hz_path(&hz, rel), buf, BIG), 0);
}

/* The same, mapped read-write by c. */
static mmapio_map *make_file(mmapio_client *c, const char *rel)
{
    write_pattern_file(rel);
    mmapio_map *m;
    hz_assert_ok(mmapio_open_rw(c, rel, &m));
    cr_assert_eq(mmapio_len(m), BIG);
    return m;
}

/* truncate(2) in a process that is not ours, as an outsider would. */
static void outside_truncate(const char *rel, off_t size)
{
    pid_t pid = hz_fork();
    cr_assert_geq(pid, 0);
    if (pid == 0)
        _exit(truncate(hz_path(&hz, rel), size) == 0 ? 0 : 1);
    int st = hz_wait_child(pid, 10000);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "truncate failed");
}

Test(truncate, copies_fail_with_io_error_not_sigbus)
{
    mmapio_client *c = hz_client();
    mmapio_map *m = make_file(c, "t.dat");
    mmapio_map *cow;
    hz_assert_ok(mmapio_open_cow(c, "t.dat", &cow));
    struct seen seen = { 0 };
    mmapio_watcher *w;
    hz_assert_ok(mmapio_watch(m, on_event, &seen, &w));

    outside_truncate("t.dat", SMALL);

    char buf[256];
    /* Past the end: an error, and we are still alive. */
    hz_assert_ret(mmapio_read_into(m, 8192, buf, 100), MMAPIO_E_IO);
    hz_assert_ret(mmapio_read_into(m, BIG - 100, buf, 100), MMAPIO_E_IO);
    hz_assert_ret(mmapio_read_into(m, SMALL - 50, buf, 100), MMAPIO_E_IO);
    hz_assert_ret(mmapio_update_region(m, 16384, "lost", 4), MMAPIO_E_IO);
    hz_assert_ret(mmapio_update_region(m, 32768, "lost", 4), MMAPIO_E_IO);
    hz_assert_ret(mmapio_read_into(cow, 20480, buf, 10), MMAPIO_E_IO);
    hz_assert_ret(mmapio_update_region(cow, 24576, "x", 1), MMAPIO_E_IO);
    /* Below it: as before. */
    hz_assert_ok(mmapio_read_into(m, 0, buf, 256));
    for (int i = 0; i < 256; i++)
        cr_assert_eq(buf[i], pattern((uint64_t)i), "byte %d", i);
    hz_assert_ok(mmapio_read_into(m, SMALL - 10, buf, 10));
    cr_assert_eq(buf[9], pattern(SMALL - 1));
    hz_assert_ok(mmapio_update_region(m, 100, "kept", 4));
    hz_assert_ok(mmapio_read_into(cow, 0, buf, 4));
    cr_assert_eq(buf[0], pattern(0));
    /* The daemon's writes still reach the file. */
    hz_assert_ok(mmapio_flush(m));
    cr_assert_eq(hz_file_size(hz_path(&hz, "t.dat")), SMALL,
                 "writing past the end must not grow the file back");
    static char disk[BIG];
    cr_assert_eq(hz_read_file(hz_path(&hz, "t.dat"), disk, BIG), SMALL);
    cr_assert_eq(memcmp(disk + 100, "kept", 4), 0);

    /* The holder is told. */
    int64_t end = hz_now_ms() + 5000;
    while ((seen.modified == 0 || seen.metadata == 0) && hz_now_ms() < end) {
        int r = mmapio_client_dispatch(c, 100);
        cr_assert_geq(r, 0, "dispatch: %s", mmapio_strerror(r));
    }
    cr_assert_gt(seen.metadata + seen.modified, 0,
                 "the watcher heard nothing of the truncation");
    cr_assert_gt(seen.metadata, 0, "no METADATA (size change) for the "
                 "truncation (%d MODIFIED)", seen.modified);
    cr_assert_eq(seen.removed, 0);

    /* refresh maps the new size: then it is an ordinary bound. */
    hz_assert_ok(mmapio_refresh(m));
    cr_assert_eq(mmapio_len(m), SMALL, "len %llu after refresh",
                 (unsigned long long)mmapio_len(m));
    hz_assert_ret(mmapio_read_into(m, 8192, buf, 100),
                  MMAPIO_E_OUT_OF_BOUNDS);
    hz_assert_ok(mmapio_read_into(m, 0, buf, 4));
    hz_assert_ok(mmapio_refresh(cow));
    cr_assert_eq(mmapio_len(cow), SMALL);
    hz_assert_ok(mmapio_ping(c));

    /* Grown back: refresh maps the file's new pages. */
    outside_truncate("t.dat", BIG);
    hz_assert_ok(mmapio_refresh(m));
    cr_assert_eq(mmapio_len(m), BIG);
    hz_assert_ok(mmapio_read_into(m, 8192, buf, 4));
    cr_assert_eq(memcmp(buf, "\0\0\0\0", 4), 0);
    hz_assert_ok(mmapio_update_region(m, 8192, "back", 4));
    cr_assert_eq(hz_read_file(hz_path(&hz, "t.dat"), disk, BIG), BIG);
    cr_assert_eq(memcmp(disk + 8192, "back", 4), 0,
                 "a write after refresh did not reach the file");

    mmapio_unwatch(w);
    mmapio_unmap(cow);
    mmapio_unmap(m);
    mmapio_disconnect(c);
}

Test(truncate, refresh_after_regrowth_maps_the_file_again)
{
    /* The handle faults past the end (the library puts a stand-in page
     * there), then the file grows back to the same size before the
     * handle refreshes: the size did not change, but the handle must
     * again see and write the file itself. */
    mmapio_client *c = hz_client();
    mmapio_map *m = make_file(c, "r.dat");
    outside_truncate("r.dat", SMALL);
    char buf[8];
    hz_assert_ret(mmapio_read_into(m, 8192, buf, 4), MMAPIO_E_IO);
    hz_assert_ret(mmapio_update_region(m, 12288, "gone", 4), MMAPIO_E_IO);

    outside_truncate("r.dat", BIG);
    int fd = open(hz_path(&hz, "r.dat"), O_WRONLY | O_CLOEXEC);
    cr_assert_geq(fd, 0);
    cr_assert_eq(pwrite(fd, "ZZZZ", 4, 8192), 4);
    close(fd);

    hz_assert_ok(mmapio_refresh(m));
    cr_assert_eq(mmapio_len(m), BIG);
    hz_assert_ok(mmapio_read_into(m, 8192, buf, 4));
    cr_assert_eq(memcmp(buf, "ZZZZ", 4), 0,
                 "after refresh the handle reads %02x %02x %02x %02x where "
                 "the file has ZZZZ: it still reads a stand-in page",
                 (unsigned char)buf[0], (unsigned char)buf[1],
                 (unsigned char)buf[2], (unsigned char)buf[3]);
    hz_assert_ok(mmapio_update_region(m, 12288, "mine", 4));
    static char whole[BIG];
    cr_assert_eq(hz_read_file(hz_path(&hz, "r.dat"), whole, BIG), BIG);
    cr_assert_eq(memcmp(whole + 12288, "mine", 4), 0,
                 "a write after refresh did not reach the file");
    mmapio_unmap(m);
    mmapio_disconnect(c);
}

/* ---- other processes ---------------------------------------------------- */

static sigjmp_buf jump;
static volatile sig_atomic_t own_handler_ran;

static void own_sigbus(int sig)
{
    own_handler_ran = 1;
    siglongjmp(jump, 1);
}

enum child_kind { GUARDED, OWN_HANDLER, NO_HANDLER };

/*
 * A holder in another process: opens t.dat read-only, says so, waits for
 * the truncation, then reads past the end with read_into (GUARDED),
 * through a raw pointer under its own SIGBUS handler (OWN_HANDLER), or
 * through a raw pointer with none (NO_HANDLER: it must die of SIGBUS).
 */
static void holder(enum child_kind kind, struct hz_chan *up,
                   struct hz_chan *down)
{
    struct rlimit no_core = { 0, 0 };
    setrlimit(RLIMIT_CORE, &no_core); /* NO_HANDLER dies on purpose */
    if (kind == NO_HANDLER)
        signal(SIGBUS, SIG_DFL); /* none, not even a sanitizer's */
    if (kind == OWN_HANDLER) {
        struct sigaction sa;
        memset(&sa, 0, sizeof(sa));
        sa.sa_handler = own_sigbus;
        sigemptyset(&sa.sa_mask);
        sigaction(SIGBUS, &sa, NULL);
    }
    mmapio_client *c;
    mmapio_map *m;
    if (mmapio_connect(hz.sock, &c) || mmapio_open_ro(c, "h.dat", &m))
        _exit(2);
    hz_chan_send(up, 'o');
    if (hz_chan_recv(down, 10000) != 't')
        _exit(3);
    char buf[64];
    const volatile char *p = mmapio_as_ptr(m);
    switch (kind) {
    case GUARDED:
        if (mmapio_read_into(m, 32768, buf, 64) != MMAPIO_E_IO)
            _exit(4);
        if (mmapio_read_into(m, 0, buf, 64) != MMAPIO_OK ||
            buf[0] != pattern(0))
            _exit(5);
        _exit(0);
    case OWN_HANDLER:
        if (sigsetjmp(jump, 1) == 0) {
            (void)p[40000];
            _exit(6); /* read past the end without a fault? */
        }
        if (!own_handler_ran)
            _exit(7);
        /* and the library's guard still works after it */
        if (mmapio_read_into(m, 32768, buf, 64) != MMAPIO_E_IO)
            _exit(8);
        _exit(0);
    case NO_HANDLER:
        (void)p[40000];
        _exit(9);
    }
    _exit(10);
}

/* This process maps nothing before the fork, so the holder's library
 * installs its SIGBUS handler after the holder's own (OWN_HANDLER). */
static int run_holder(enum child_kind kind)
{
    write_pattern_file("h.dat");
    struct hz_chan up, down;
    cr_assert_eq(hz_chan_open(&up), 0);
    cr_assert_eq(hz_chan_open(&down), 0);
    pid_t pid = hz_fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        hz_chan_keep_write(&up);
        hz_chan_keep_read(&down);
        holder(kind, &up, &down);
    }
    hz_chan_keep_read(&up);
    hz_chan_keep_write(&down);
    cr_assert_eq(hz_chan_recv(&up, 10000), 'o', "holder did not open");
    outside_truncate("h.dat", SMALL);
    hz_chan_send(&down, 't');
    int st = hz_wait_child(pid, 10000);
    hz_chan_close(&up);
    hz_chan_close(&down);
    return st;
}

Test(truncate, another_holder_survives_read_into)
{
    int st = run_holder(GUARDED);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0,
              "holder: status 0x%x (signal %d)", (unsigned)st,
              WIFSIGNALED(st) ? WTERMSIG(st) : 0);
}

Test(truncate, programs_own_sigbus_handler_still_runs)
{
    int st = run_holder(OWN_HANDLER);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0,
              "holder: status 0x%x (signal %d)", (unsigned)st,
              WIFSIGNALED(st) ? WTERMSIG(st) : 0);
}

Test(truncate, raw_pointer_fault_is_not_swallowed)
{
    int st = run_holder(NO_HANDLER);
    cr_assert(WIFSIGNALED(st) && WTERMSIG(st) == SIGBUS,
              "a raw read past the end should die of SIGBUS as without "
              "mmapio: status 0x%x", (unsigned)st);
}
