/*
 * test_notify: the test plays systemd. mmapiod started with NOTIFY_SOCKET
 * and WATCHDOG_USEC says READY=1 with a STATUS=, pings WATCHDOG=1 from its
 * loop, keeps STATUS= live, stores its "anon-meta" log and every
 * anonymous mapping's memfd in the fd store (FDSTORE=1 with FDNAME and the
 * fd), takes a deleted one out again (FDSTOREREMOVE=1), and says
 * STOPPING=1 when told to stop, then exits 0.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "svc.h"

static struct hz_daemon d = { .pid = -1 };
static struct svc_notify sink = { .fd = -1 };
static char notify_path[256];

static void setup(void)
{
    signal(SIGPIPE, SIG_IGN);
    int r = hz_init(&d);
    cr_assert_eq(r, 0, "mkdtemp: %s", strerror(-r));
    snprintf(notify_path, sizeof(notify_path), "%s/notify", d.dir);
    r = svc_notify_open(&sink, notify_path);
    cr_assert_eq(r, 0, "notify socket: %s", strerror(-r));
}

static void teardown(void)
{
    hz_cleanup(&d);
    svc_notify_close(&sink);
}

TestSuite(notify, .init = setup, .fini = teardown, .timeout = 60);

#define KEYS(...) ((const char *const[]){ __VA_ARGS__, NULL })

/* Starts mmapiod as systemd would, with the notify socket and watchdog. */
static void start(const char *watchdog_usec)
{
    char ns[300], wd[64];
    snprintf(ns, sizeof(ns), "NOTIFY_SOCKET=%s", notify_path);
    snprintf(wd, sizeof(wd), "WATCHDOG_USEC=%s", watchdog_usec);
    /* A memfd stored per mapping (test_restart covers arenas). */
    const char *args[] = { "--socket", d.sock, "--root", d.root,
                           "--arena-max", "0", NULL };
    const char *env[] = { ns, watchdog_usec ? wd : NULL, NULL };
    struct svc_spawn sp = { .args = args, .env = env };
    pid_t pid = svc_spawn_daemon(&sp);
    cr_assert_gt(pid, 0, "cannot start mmapiod: %s", strerror((int)-pid));
    d.pid = pid;
    int r = hz_wait_ready(d.sock, pid, HZ_READY_TIMEOUT_MS);
    cr_assert_eq(r, 0, "mmapiod did not come up: %s", strerror(-r));
}

static void dump(void)
{
    struct svc_msg m;
    for (size_t i = 0; svc_notify_get(&sink, i, &m); i++) {
        fprintf(stderr, "notify[%zu] (+%zu fds): %s\n", i, m.n_fds, m.text);
        free(m.text);
    }
}

static struct svc_msg get(long i)
{
    struct svc_msg m;
    cr_assert(i >= 0 && svc_notify_get(&sink, (size_t)i, &m));
    return m;
}

static void stop_expect_stopping(void)
{
    size_t before = svc_notify_count(&sink);
    cr_assert_eq(kill(d.pid, SIGTERM), 0);
    int st;
    cr_assert_eq(hz_wait_exit(d.pid, HZ_STOP_TIMEOUT_MS, &st), 0,
                 "mmapiod ignored SIGTERM");
    d.pid = -1;
    cr_expect(WIFEXITED(st) && WEXITSTATUS(st) == 0,
              "mmapiod did not exit 0 (wait status 0x%x)", (unsigned)st);
    long i = svc_notify_wait(&sink, before, KEYS("STOPPING=1"), 2000);
    if (i < 0)
        dump();
    cr_assert_geq(i, 0, "no STOPPING=1 after SIGTERM");
}

Test(notify, ready_watchdog_fdstore_stopping)
{
    start("200000");

    /* READY=1, with a STATUS= line saying what it serves. */
    long ready = svc_notify_wait(&sink, 0, KEYS("READY=1"), 5000);
    if (ready < 0)
        dump();
    cr_assert_geq(ready, 0, "no READY=1 from mmapiod");
    struct svc_msg m = get(ready);
    cr_expect(svc_msg_has(m.text, "STATUS="), "READY=1 without STATUS=: %s",
              m.text);
    cr_expect_eq(m.n_fds, 0);
    free(m.text);

    /* The meta log of the fd store, stored before READY=1. */
    long meta = svc_notify_wait(&sink, 0,
                                KEYS("FDSTORE=1", "FDNAME=anon-meta"), 2000);
    cr_assert_geq(meta, 0, "anon-meta was not stored");
    cr_expect_lt(meta, ready, "anon-meta stored after READY=1");
    m = get(meta);
    cr_assert_eq(m.n_fds, 1, "FDSTORE of anon-meta with %zu fds", m.n_fds);
    int meta_fd = m.fds[0];
    struct stat st;
    cr_assert_eq(fstat(meta_fd, &st), 0);
    cr_expect(S_ISREG(st.st_mode), "anon-meta is not a memfd");
    off_t meta_size0 = st.st_size;
    free(m.text);

    /* WATCHDOG=1, at half of WATCHDOG_USEC: within 2 s, and again. */
    long wd = svc_notify_wait(&sink, (size_t)ready, KEYS("WATCHDOG=1"), 2000);
    if (wd < 0)
        dump();
    cr_assert_geq(wd, 0, "no WATCHDOG=1 within 2 s of READY=1 "
                  "(WATCHDOG_USEC=200000)");
    long wd2 = svc_notify_wait(&sink, (size_t)wd + 1, KEYS("WATCHDOG=1"), 2000);
    cr_assert_geq(wd2, 0, "only one WATCHDOG=1");

    /* An anonymous mapping goes into the store as soon as it exists. */
    mmapio_client *c = NULL;
    hz_assert_ok(mmapio_connect(d.sock, &c));
    size_t before = svc_notify_count(&sink);
    mmapio_map *x;
    hz_assert_ok(mmapio_anon_create(c, "x", 12288, &x));
    uint8_t in[3000];
    for (size_t i = 0; i < sizeof(in); i++)
        in[i] = (uint8_t)(i * 31 + 7);
    hz_assert_ok(mmapio_update_region(x, 5000, in, sizeof(in)));

    long st_x = svc_notify_wait(&sink, before, KEYS("FDSTORE=1", "FDNAME="),
                                2000);
    if (st_x < 0)
        dump();
    cr_assert_geq(st_x, 0, "creating anonymous mapping x stored nothing");
    m = get(st_x);
    char name[128];
    cr_assert_not_null(svc_msg_value(m.text, "FDNAME=", name, sizeof(name)));
    cr_expect_eq(strncmp(name, "anon-", 5), 0, "FDNAME=%s", name);
    cr_expect_str_neq(name, "anon-meta");
    cr_expect_gt(strspn(name + 5, "0123456789"), 0, "FDNAME=%s: no id", name);
    cr_assert_eq(m.n_fds, 1, "FDSTORE of %s with %zu fds", name, m.n_fds);
    int xfd = m.fds[0];
    free(m.text);

    /* That fd is the mapping: same size, same bytes. */
    cr_assert_eq(fstat(xfd, &st), 0);
    cr_expect_eq(st.st_size, 12288, "stored fd size %lld", (long long)st.st_size);
    static uint8_t whole[12288];
    cr_assert_eq(svc_pread_all(xfd, whole, sizeof(whole)), 12288);
    cr_assert_arr_eq(whole + 5000, in, sizeof(in),
                     "the stored fd does not hold the mapping's bytes");
    const uint8_t *p = mmap(NULL, 12288, PROT_READ, MAP_SHARED, xfd, 0);
    cr_assert_neq(p, MAP_FAILED);
    hz_assert_ok(mmapio_update_region(x, 0, "live", 4));
    cr_expect_eq(memcmp(p, "live", 4), 0, "the stored fd is a copy, not "
                 "the mapping");
    munmap((void *)p, 12288);

    /* The meta log now says what that id is. */
    cr_assert_eq(fstat(meta_fd, &st), 0);
    cr_expect_gt(st.st_size, meta_size0, "anon-meta did not record x");

    /* STATUS= keeps up with what it serves. */
    before = svc_notify_count(&sink);
    long live = svc_notify_wait(&sink, before, KEYS("STATUS="), 2000);
    cr_assert_geq(live, 0, "no STATUS= after READY=1");
    m = get(live);
    cr_expect(strstr(m.text, "1 anonymous") != NULL,
              "STATUS= does not count x: %s", m.text);
    free(m.text);

    /* Deleting x takes it out of the store. */
    before = svc_notify_count(&sink);
    hz_assert_ok(mmapio_anon_delete(c, "x"));
    char remove_name[160];
    snprintf(remove_name, sizeof(remove_name), "FDNAME=%s", name);
    long rm = svc_notify_wait(&sink, before,
                              KEYS("FDSTOREREMOVE=1", remove_name), 2000);
    if (rm < 0)
        dump();
    cr_assert_geq(rm, 0, "deleting x did not remove %s from the store", name);
    m = get(rm);
    cr_expect_eq(m.n_fds, 0);
    free(m.text);
    /* ... and only x: anon-meta stays. */
    cr_expect_lt(svc_notify_wait(&sink, 0,
                                 KEYS("FDSTOREREMOVE=1", "FDNAME=anon-meta"),
                                 0),
                 0, "anon-meta was removed from the store");

    mmapio_unmap(x);
    mmapio_disconnect(c);
    stop_expect_stopping();
}

Test(notify, no_watchdog_without_watchdog_usec)
{
    start(NULL);
    long ready = svc_notify_wait(&sink, 0, KEYS("READY=1"), 5000);
    cr_assert_geq(ready, 0, "no READY=1 from mmapiod");
    /* Without WATCHDOG_USEC nothing asks for pings. */
    cr_expect_lt(svc_notify_wait(&sink, 0, KEYS("WATCHDOG=1"), 600), 0,
                 "WATCHDOG=1 without WATCHDOG_USEC");
    stop_expect_stopping();
}
