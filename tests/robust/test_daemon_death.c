/*
 * test_daemon_death: the daemon dies under its clients.
 *
 * SIGKILL: every call that needs the daemon returns MMAPIO_E_DISCONNECTED
 * (ping, opens, refresh, resize, set_flush_policy, watch, deletes,
 * dispatch), at once and without SIGPIPE (the test runs with SIGPIPE at
 * its default action, and alarm() bounds it), also for a call already
 * waiting for its reply and for several threads at once; the mappings
 * already made stay readable and writable; what was flushed before is on
 * disk. A daemon started again on the same socket path (the dead one's
 * socket file is stale) and root serves new connections, which find the
 * file as it was left, also with what was written through the old
 * mapping after the death. SIGTERM: clients see DISCONNECTED, and the
 * daemon flushed what they had written.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "pagecache.h"
#include "robust.h"

#define SIZE 65536
#define QUICK_MS 2000 /* "at once": generous */

static void init(void)
{
    /* The point: a write to a dead peer must not raise SIGPIPE. */
    signal(SIGPIPE, SIG_DFL);
    int r = hz_init(&hz);
    cr_assert_eq(r, 0, "mkdtemp: %s", strerror(-r));
    r = rb_start(&hz, NULL);
    cr_assert_eq(r, 0, "mmapiod did not come up: %s", strerror(-r));
    setenv("MMAPIO_SOCKET", hz.sock, 1);
    alarm(50); /* no hang: SIGALRM kills the test before criterion's 60 s */
}

static void fini(void)
{
    alarm(0);
    hz_teardown();
}

TestSuite(daemon_death, .init = init, .fini = fini, .timeout = 60);

static void on_event(const mmapio_change_event *ev, void *user)
{
    (*(int *)user)++;
}

static void kill_daemon(int sig)
{
    pid_t pid = hz.pid;
    cr_assert_eq(kill(pid, sig), 0);
    int st;
    cr_assert_eq(hz_wait_exit(pid, 10000, &st), 0, "mmapiod ignored signal %d",
                 sig);
    if (sig == SIGKILL)
        cr_assert(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
    else
        cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0,
                  "mmapiod: status 0x%x on signal %d", (unsigned)st, sig);
    hz.pid = -1;
}

/* Every request of c and of its maps fails with DISCONNECTED, quickly. */
static void expect_all_disconnected(mmapio_client *c, mmapio_map *f,
                                    mmapio_map *a)
{
    int64_t t0 = hz_now_ms();
    mmapio_map *m = (mmapio_map *)0x1;
    mmapio_watcher *w = (mmapio_watcher *)0x1;
    int n = 0;
    mmapio_flush_policy always = { MMAPIO_FLUSH_ALWAYS, 0 };

    hz_assert_ret(mmapio_ping(c), MMAPIO_E_DISCONNECTED);
    hz_assert_ret(mmapio_ping(c), MMAPIO_E_DISCONNECTED);
    hz_assert_ret(mmapio_anon_open(c, "a", &m), MMAPIO_E_DISCONNECTED);
    hz_assert_ret(mmapio_anon_create(c, "new", 4096, &m),
                  MMAPIO_E_DISCONNECTED);
    hz_assert_ret(mmapio_create_rw(c, "g.dat", 4096, &m),
                  MMAPIO_E_DISCONNECTED);
    hz_assert_ret(mmapio_open_ro(c, "f.dat", &m), MMAPIO_E_DISCONNECTED);
    hz_assert_ret(mmapio_refresh(f), MMAPIO_E_DISCONNECTED);
    hz_assert_ret(mmapio_refresh(a), MMAPIO_E_DISCONNECTED);
    hz_assert_ret(mmapio_resize(f, 2 * SIZE), MMAPIO_E_DISCONNECTED);
    hz_assert_ret(mmapio_resize(a, 8192), MMAPIO_E_DISCONNECTED);
    hz_assert_ret(mmapio_set_flush_policy(f, always), MMAPIO_E_DISCONNECTED);
    hz_assert_ret(mmapio_watch(f, on_event, &n, &w), MMAPIO_E_DISCONNECTED);
    hz_assert_ret(mmapio_delete(c, "f.dat"), MMAPIO_E_DISCONNECTED);
    hz_assert_ret(mmapio_anon_delete(c, "a"), MMAPIO_E_DISCONNECTED);
    cr_assert_eq(m, (mmapio_map *)0x1, "an output was written on failure");
    cr_assert_eq(w, (mmapio_watcher *)0x1);
    /* Dispatch may first report events that came before the end. */
    int r = 0;
    for (int i = 0; i < 3 && r >= 0; i++)
        r = mmapio_client_dispatch(c, 100);
    hz_assert_ret(r, MMAPIO_E_DISCONNECTED);
    /* A caller's poll loop sees the end too. */
    struct pollfd p = { .fd = mmapio_client_fd(c), .events = POLLIN };
    cr_assert_eq(poll(&p, 1, 0), 1, "client fd not ready after the death");
    cr_assert(p.revents & (POLLHUP | POLLERR | POLLIN));
    /* Nothing changed locally. */
    cr_assert_eq(mmapio_len(f), SIZE);
    cr_assert_eq(mmapio_len(a), 4096);
    int64_t took = hz_now_ms() - t0;
    cr_assert_lt(took, QUICK_MS, "the calls took %lld ms", (long long)took);
}

/* Reads and writes through both maps still work, in memory. */
static void expect_memory_usable(mmapio_map *f, mmapio_map *a)
{
    char buf[16];
    hz_assert_ok(mmapio_read_into(a, 0, buf, 11));
    cr_assert_eq(memcmp(buf, "anon before", 11), 0);
    hz_assert_ok(mmapio_update_region(a, 100, "anon after", 10));
    cr_assert_eq(memcmp((const char *)mmapio_as_ptr(a) + 100, "anon after",
                        10), 0);
    char *p = mmapio_as_mut_ptr(a);
    cr_assert_not_null(p);
    memcpy(p + 200, "raw", 3);
    hz_assert_ok(mmapio_read_into(a, 200, buf, 3));
    cr_assert_eq(memcmp(buf, "raw", 3), 0);

    hz_assert_ok(mmapio_read_into(f, 0, buf, 7));
    cr_assert_eq(memcmp(buf, "flushed", 7), 0);
    hz_assert_ok(mmapio_update_region(f, 8192, "after death", 11));
    p = mmapio_as_mut_ptr(f);
    cr_assert_not_null(p);
    memcpy(p + 12288, "raw after", 9);
    /* Flushing is the library's own msync: it still works. */
    hz_assert_ok(mmapio_flush(f));
}

/* A ping stuck waiting for its reply when the daemon dies. */
struct waiter {
    mmapio_client *c;
    int result;
    int64_t ended;
};

static void *ping_thread(void *arg)
{
    struct waiter *w = arg;
    w->result = mmapio_ping(w->c);
    w->ended = hz_now_ms();
    return NULL;
}

Test(daemon_death, sigkill)
{
    mmapio_client *c = hz_client();
    mmapio_map *f, *a;
    mmapio_watcher *w;
    int events = 0;
    hz_assert_ok(mmapio_create_rw(c, "f.dat", SIZE, &f));
    hz_assert_ok(mmapio_anon_create(c, "a", 4096, &a));
    hz_assert_ok(mmapio_watch(f, on_event, &events, &w));
    hz_assert_ok(mmapio_update_region(a, 0, "anon before", 11));
    hz_assert_ok(mmapio_update_region(f, 0, "flushed", 7));
    hz_assert_ok(mmapio_flush(f));
    const char *path = hz_path(&hz, "f.dat");
    long dirty = pc_unsynced_range(path, 0, 4096);
    if (dirty != -ENOSYS)
        cr_assert_eq(dirty, 0, "flushed page still dirty before the death");

    /* Second client: a ping waiting for its reply while the daemon is
     * stopped, and then killed. */
    mmapio_client *c2 = hz_client();
    cr_assert_eq(kill(hz.pid, SIGSTOP), 0);
    struct waiter wt = { .c = c2, .result = 1 };
    pthread_t th;
    cr_assert_eq(pthread_create(&th, NULL, ping_thread, &wt), 0);
    usleep(100000);
    int64_t killed_at = hz_now_ms();
    kill_daemon(SIGKILL);
    pthread_join(th, NULL);
    hz_assert_ret(wt.result, MMAPIO_E_DISCONNECTED);
    cr_assert_lt(wt.ended - killed_at, QUICK_MS, "the waiting ping took %lld "
                 "ms to notice", (long long)(wt.ended - killed_at));

    expect_all_disconnected(c, f, a);
    expect_memory_usable(f, a);
    /* Unmapping and unwatching need no daemon. */
    mmapio_unwatch(w);
    hz_assert_ok(mmapio_unmap(a));

    /* What was flushed before the death is on disk. */
    char disk[16];
    cr_assert_eq(hz_read_file(path, disk, 7), 7);
    cr_assert_eq(memcmp(disk, "flushed", 7), 0);

    /* The same socket path and root: the stale socket is replaced. */
    struct stat st;
    cr_assert_eq(stat(hz.sock, &st), 0, "the killed daemon's socket is gone?");
    int r = rb_start(&hz, NULL);
    cr_assert_eq(r, 0, "mmapiod did not start over a stale socket: %s\n%s",
                 strerror(-r), rb_log_tail(&hz));
    hz_assert_ret(mmapio_ping(c), MMAPIO_E_DISCONNECTED); /* latched */

    mmapio_client *n = hz_client();
    mmapio_map *f2, *a2;
    hz_assert_ok(mmapio_open_rw(n, "f.dat", &f2));
    cr_assert_eq(mmapio_len(f2), SIZE);
    char buf[16];
    hz_assert_ok(mmapio_read_into(f2, 0, buf, 7));
    cr_assert_eq(memcmp(buf, "flushed", 7), 0);
    hz_assert_ok(mmapio_read_into(f2, 8192, buf, 11));
    cr_assert_eq(memcmp(buf, "after death", 11), 0);
    hz_assert_ok(mmapio_read_into(f2, 12288, buf, 9));
    cr_assert_eq(memcmp(buf, "raw after", 9), 0);
    /* The old mapping and the new one are the same file. */
    hz_assert_ok(mmapio_update_region(f, 16384, "old handle", 10));
    hz_assert_ok(mmapio_read_into(f2, 16384, buf, 10));
    cr_assert_eq(memcmp(buf, "old handle", 10), 0);
    /* The new daemon serves everything again. */
    hz_assert_ok(mmapio_resize(f2, 2 * SIZE));
    hz_assert_ok(mmapio_anon_create(n, "a", 4096, &a2));
    hz_assert_ok(mmapio_unmap(f));
    mmapio_unmap(f2);
    mmapio_unmap(a2);
    mmapio_disconnect(n);
    mmapio_disconnect(c);
    mmapio_disconnect(c2);
}

struct pinger {
    mmapio_client *c;
    int disconnected, other;
};

static void *ping_until_dead(void *arg)
{
    struct pinger *p = arg;
    for (;;) {
        int r = mmapio_ping(p->c);
        if (r == MMAPIO_E_DISCONNECTED) {
            p->disconnected++;
            return NULL;
        }
        if (r != MMAPIO_OK) {
            p->other = r;
            return NULL;
        }
    }
}

Test(daemon_death, sigkill_under_busy_threads)
{
    enum { T = 4 };
    mmapio_client *c = hz_client(), *solo[T];
    pthread_t th[T * 2];
    struct pinger p[T * 2];
    for (int i = 0; i < T; i++)
        solo[i] = hz_client();
    /* T threads on one shared client, T on their own clients */
    for (int i = 0; i < T * 2; i++) {
        p[i] = (struct pinger){ .c = i < T ? c : solo[i - T] };
        cr_assert_eq(pthread_create(&th[i], NULL, ping_until_dead, &p[i]),
                     0);
    }
    usleep(200000);
    int64_t t0 = hz_now_ms();
    kill_daemon(SIGKILL);
    for (int i = 0; i < T * 2; i++) {
        pthread_join(th[i], NULL);
        cr_assert_eq(p[i].other, 0, "thread %d: %s", i,
                     mmapio_strerror(p[i].other));
        cr_assert_eq(p[i].disconnected, 1);
    }
    cr_assert_lt(hz_now_ms() - t0, QUICK_MS);
    for (int i = 0; i < T; i++)
        mmapio_disconnect(solo[i]);
    mmapio_disconnect(c);
}

Test(daemon_death, sigterm_flushes_then_disconnects)
{
    mmapio_client *c = hz_client();
    mmapio_map *f, *a;
    mmapio_watcher *w;
    int events = 0;
    hz_assert_ok(mmapio_create_rw(c, "t.dat", SIZE, &f));
    hz_assert_ok(mmapio_anon_create(c, "a", 4096, &a));
    hz_assert_ok(mmapio_update_region(a, 0, "anon before", 11));
    hz_assert_ok(mmapio_watch(f, on_event, &events, &w));
    /* policy NEVER and no flush: only the daemon can make it durable */
    hz_assert_ok(mmapio_update_region(f, 0, "flushed", 7));
    hz_assert_ok(mmapio_update_region(f, SIZE - 5, "tail!", 5));
    const char *path = hz_path(&hz, "t.dat");
    long dirty = pc_unsynced(path);
    if (dirty != -ENOSYS)
        cr_assert_gt(dirty, 0, "t.dat is clean before the stop: the test "
                     "cannot tell whether the daemon flushed");

    kill_daemon(SIGTERM);
    if (dirty != -ENOSYS)
        cr_assert_eq(pc_unsynced(path), 0, "mmapiod exited 0 on SIGTERM "
                     "with t.dat still dirty");
    char disk[SIZE];
    cr_assert_eq(hz_read_file(path, disk, SIZE), SIZE);
    cr_assert_eq(memcmp(disk, "flushed", 7), 0);
    cr_assert_eq(memcmp(disk + SIZE - 5, "tail!", 5), 0);
    cr_assert_eq(access(hz.sock, F_OK), -1, "socket left after SIGTERM");

    /* Its clients: DISCONNECTED everywhere, memory still theirs. */
    hz_assert_ret(mmapio_ping(c), MMAPIO_E_DISCONNECTED);
    expect_all_disconnected(c, f, a);
    expect_memory_usable(f, a);
    mmapio_unwatch(w);
    hz_assert_ok(mmapio_unmap(f));
    hz_assert_ok(mmapio_unmap(a));
    mmapio_disconnect(c);

    /* And a new daemon serves the same file. */
    int r = rb_start(&hz, NULL);
    cr_assert_eq(r, 0, "restart: %s", strerror(-r));
    mmapio_client *n = hz_client();
    hz_assert_ok(mmapio_open_ro(n, "t.dat", &f));
    cr_assert_eq(memcmp(mmapio_as_ptr(f), "flushed", 7), 0);
    mmapio_unmap(f);
    mmapio_disconnect(n);
}

Test(daemon_death, connect_while_gone)
{
    kill_daemon(SIGKILL);
    /* The stale socket file is there, nobody listens. */
    mmapio_client *c = (mmapio_client *)0x1;
    int64_t t0 = hz_now_ms();
    hz_assert_ret(mmapio_connect(hz.sock, &c), MMAPIO_E_DISCONNECTED);
    cr_assert_eq(c, (mmapio_client *)0x1);
    cr_assert_lt(hz_now_ms() - t0, QUICK_MS);
    cr_assert_eq(rb_start(&hz, NULL), 0);
    c = hz_client();
    hz_assert_ok(mmapio_ping(c));
    mmapio_disconnect(c);
}
