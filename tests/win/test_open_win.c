/*
 * File opens on the daemon's worker threads (README, "Windows"; winopen),
 * against mmapiod-hooks.exe: the daemon built with its test hook, which
 * holds an open of the file named by $MMAPIOD_TEST_SLOW_OPEN on its
 * worker (counting up the semaphore Local\mmapiod-test-entered-NAME)
 * until this program sets
 * Local\mmapiod-test-release-NAME. Nothing here is timed.
 *
 * - While one client's open is held, another client's ping, open and
 *   admin status are answered, and the held open is still unanswered.
 * - Two clients opening one file at once get one entry (holders 2).
 * - A client that goes while its open is held leaves nothing behind:
 *   the file opens unshared again (no handle of the daemon's on it), the
 *   daemon's handle count comes back (where the system counts another
 *   process's handles: not wine), the file has no holder.
 * - One client's opens are bounded: past 16 under way, MMAPIO_E_BUSY.
 * - A delete, a copy, and an AdminStat of a file, are held on a worker as
 *   an open is, others served meanwhile.
 * - A daemon stopped with an open held stops all the same.
 * - A daemon stopped with its flushes of a file held (a client's, and the
 *   final flush of what the client wrote) stops once its bound (2 s) has
 *   passed, exit 0, and its log names the file as not flushed.
 *
 *   test_open_win DAEMON-HOOKS.exe
 *   test_open_win opener PIPE      (a client killed while it opens)
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <windows.h>

#include "mmapio.h"
#include "mmapio.pb-c.h"
#include "wintest.h"
#include "wtraw.h"

#define SLOW "slow.dat"
#define OPENERS 17 /* the bound (16) and one more */

static HANDLE entered, release;

struct opener {
    mmapio_client *c;
    const char *path;
    mmapio_map *m;
    int rc;
    HANDLE thread;
};

static DWORD WINAPI open_thread(void *arg)
{
    struct opener *o = arg;
    o->rc = mmapio_open_ro(o->c, o->path, &o->m);
    return 0;
}

static bool open_start(struct opener *o, mmapio_client *c, const char *path)
{
    *o = (struct opener){.c = c, .path = path, .rc = -1};
    o->thread = CreateThread(NULL, 0, open_thread, o, 0, NULL);
    return o->thread != NULL;
}

static int open_end(struct opener *o)
{
    if (!o->thread)
        return -1;
    bool done = WaitForSingleObject(o->thread, 60000) == WAIT_OBJECT_0;
    CloseHandle(o->thread);
    o->thread = NULL;
    if (o->m)
        mmapio_unmap(o->m);
    o->m = NULL;
    return done ? o->rc : -1;
}

/* The hook holds an open of SLOW: whether one got there. */
static bool held(void)
{
    return WaitForSingleObject(entered, 30000) == WAIT_OBJECT_0;
}

/* The hook holds again; what went through it meanwhile (an AdminStat
 * of SLOW, released ones) is forgotten. */
static void hold_again(void)
{
    ResetEvent(release);
    while (WaitForSingleObject(entered, 0) == WAIT_OBJECT_0)
        ;
}

static bool make_file(const char *root, const char *name)
{
    char path[MAX_PATH];
    snprintf(path, sizeof(path), "%s\\%s", root, name);
    HANDLE f = CreateFileA(path, GENERIC_WRITE, 0, NULL, CREATE_ALWAYS, 0, NULL);
    char page[4096] = "file";
    DWORD n = 0;
    bool ok = f != INVALID_HANDLE_VALUE && WriteFile(f, page, sizeof(page), &n, NULL) &&
              n == sizeof(page);
    if (f != INVALID_HANDLE_VALUE)
        CloseHandle(f);
    return ok;
}

static uint32_t holders(mmapio_client *c, const char *path)
{
    mmapio_map_info *i = NULL;
    uint32_t n = UINT32_MAX;
    if (mmapio_admin_stat(c, path, false, &i) == MMAPIO_OK && i) {
        n = i->holders;
        mmapio_map_info_free(i, 1);
    }
    return n;
}

static uint64_t mappings(mmapio_client *c)
{
    mmapio_status *st = NULL;
    uint64_t n = UINT64_MAX;
    if (mmapio_admin_status(c, &st) == MMAPIO_OK && st) {
        n = st->mappings;
        mmapio_status_free(st);
    }
    return n;
}

/* Whether nobody has the file open (it opens with no sharing). */
static bool alone(const char *root, const char *name)
{
    char path[MAX_PATH];
    snprintf(path, sizeof(path), "%s\\%s", root, name);
    HANDLE f = CreateFileA(path, GENERIC_READ, 0, NULL, OPEN_EXISTING, 0, NULL);
    if (f == INVALID_HANDLE_VALUE)
        return false;
    CloseHandle(f);
    return true;
}

static DWORD handles_of(HANDLE process)
{
    DWORD n = 0;
    return GetProcessHandleCount(process, &n) ? n : 0;
}

/* One client's open is held; others are served meanwhile. */
static void slow_beside_others(const char *pipe)
{
    mmapio_client *a = NULL, *b = NULL;
    CHECK(mmapio_connect(pipe, &a) == MMAPIO_OK);
    CHECK(mmapio_connect(pipe, &b) == MMAPIO_OK);
    if (a && b) {
        struct opener slow;
        CHECK(open_start(&slow, a, SLOW));
        CHECK(held());
        CHECK(mmapio_ping(b) == MMAPIO_OK);
        mmapio_map *other = NULL;
        CHECK(mmapio_open_ro(b, "other.dat", &other) == MMAPIO_OK);
        CHECK(mappings(b) == 1); /* other.dat: the held one has no entry yet */
        CHECK(WaitForSingleObject(slow.thread, 0) == WAIT_TIMEOUT); /* still held */
        SetEvent(release);
        CHECK(open_end(&slow) == MMAPIO_OK);
        hold_again();
        if (other)
            mmapio_unmap(other);
        CHECK(mappings(b) == 0);
    }
    mmapio_disconnect(a);
    mmapio_disconnect(b);
}

/* Two opens of one file held at once, released together: one entry. */
static void two_at_once(const char *pipe)
{
    mmapio_client *a = NULL, *b = NULL;
    CHECK(mmapio_connect(pipe, &a) == MMAPIO_OK);
    CHECK(mmapio_connect(pipe, &b) == MMAPIO_OK);
    if (a && b) {
        struct opener x, y;
        CHECK(open_start(&x, a, SLOW));
        CHECK(held());
        CHECK(open_start(&y, b, SLOW));
        CHECK(held());
        SetEvent(release);
        WaitForSingleObject(x.thread, 60000);
        WaitForSingleObject(y.thread, 60000);
        CHECK(x.rc == MMAPIO_OK && y.rc == MMAPIO_OK);
        CHECK(holders(a, SLOW) == 2);
        CHECK(mappings(a) == 1);
        open_end(&x);
        open_end(&y);
        hold_again();
    }
    mmapio_disconnect(a);
    mmapio_disconnect(b);
}

/* A client killed while its open is held: once the open comes back,
 * the daemon has as many handles as before and holds nothing. */
static void gone_mid_open(struct wt_daemon *d)
{
    mmapio_client *a = NULL;
    CHECK(mmapio_connect(d->pipe, &a) == MMAPIO_OK);
    if (!a)
        return;
    CHECK(mmapio_ping(a) == MMAPIO_OK);
    /* Wine does not count another process's handles: there, the file
     * alone tells (below). */
    DWORD before = handles_of(d->pi.hProcess);
    if (!before && !wt_under_wine())
        CHECK(before > 0);
    char self[MAX_PATH], cmd[2 * MAX_PATH];
    GetModuleFileNameA(NULL, self, sizeof(self));
    snprintf(cmd, sizeof(cmd), "\"%s\" opener %s", self, d->pipe);
    PROCESS_INFORMATION pi;
    CHECK(wt_spawn(cmd, NULL, NULL, 0, &pi));
    CHECK(held());
    TerminateProcess(pi.hProcess, 9);
    wt_wait(&pi, 30000);
    /* Its session ends on the loop, then its open comes back and is
     * dropped; each is seen only by asking until it shows (a minute). */
    for (int i = 0; i < 600; i++) {
        mmapio_client_info *ci = NULL;
        size_t n = 0;
        if (mmapio_admin_clients(a, &ci, &n) == MMAPIO_OK)
            mmapio_client_info_free(ci, n);
        if (n == 1)
            break;
        Sleep(100);
    }
    SetEvent(release);
    /* Its handles of the file (the open's, the section) are closed: the
     * file opens unshared. */
    bool unshared = false;
    for (int i = 0; i < 600 && !(unshared = alone(d->root, SLOW)); i++)
        Sleep(100);
    CHECK(unshared);
    DWORD after = handles_of(d->pi.hProcess);
    CHECK(after == before);
    if (after != before)
        fprintf(stderr, "the daemon's handles: %lu before, %lu after\n",
                (unsigned long)before, (unsigned long)after);
    CHECK(holders(a, SLOW) == 0);
    CHECK(mappings(a) == 0);
    hold_again();
    mmapio_disconnect(a);
}

/* One client's opens past its bound (16 waiting or running) are
 * MMAPIO_E_BUSY at once; of one uid's, four run at a time (half the
 * workers), the rest wait their turn and are answered in the end. */
static void bounded(const char *pipe)
{
    HANDLE h = wt_raw_connect(pipe, "test_open_win");
    CHECK(h != NULL);
    if (!h)
        return;
    Mmapio__Request q = MMAPIO__REQUEST__INIT;
    uint64_t id = 0;
    int err = -1;
    Mmapio__Open o = MMAPIO__OPEN__INIT;
    o.path = SLOW;
    o.mode = MMAPIO__MODE__MODE_READ_ONLY;
    q.op_case = MMAPIO__REQUEST__OP_OPEN;
    q.open = &o;
    for (int i = 0; i < OPENERS; i++) {
        q.id = 100 + (uint64_t)i;
        CHECK(wt_raw_send(h, &q));
    }
    for (int i = 0; i < 4; i++)
        CHECK(held());
    /* The first reply: the one past the bound, while the rest are held. */
    CHECK(wt_raw_reply(h, &id, &err, NULL) && id == 100 + OPENERS - 1 && err == MMAPIO_E_BUSY);
    CHECK(WaitForSingleObject(entered, 0) == WAIT_TIMEOUT); /* no fifth runs */
    SetEvent(release);
    int ok = 0;
    for (int i = 0; i < OPENERS - 1; i++)
        ok += wt_raw_reply(h, &id, &err, NULL) && id >= 100 && id < 100 + OPENERS - 1 && err == 0;
    CHECK(ok == OPENERS - 1);
    hold_again();
    CloseHandle(h);
}

static DWORD WINAPI delete_thread(void *arg)
{
    struct opener *o = arg;
    o->rc = mmapio_delete(o->c, o->path);
    return 0;
}

static DWORD WINAPI stat_thread(void *arg)
{
    struct opener *o = arg;
    mmapio_map_info *i = NULL;
    o->rc = mmapio_admin_stat(o->c, o->path, false, &i);
    if (i)
        mmapio_map_info_free(i, 1);
    return 0;
}

static DWORD WINAPI copy_thread(void *arg)
{
    struct opener *o = arg;
    o->rc = mmapio_copy(o->c, o->path, "copied.dat");
    return 0;
}

/* fn (a thread's) on SLOW by client a is held by the hook while b is
 * served; then released: its result. */
static int held_beside(mmapio_client *a, mmapio_client *b, LPTHREAD_START_ROUTINE fn)
{
    struct opener o = {.c = a, .path = SLOW, .rc = -1};
    o.thread = CreateThread(NULL, 0, fn, &o, 0, NULL);
    CHECK(o.thread != NULL);
    CHECK(held());
    CHECK(mmapio_ping(b) == MMAPIO_OK);
    CHECK(WaitForSingleObject(o.thread, 0) == WAIT_TIMEOUT); /* still held */
    SetEvent(release);
    int rc = open_end(&o);
    hold_again();
    return rc;
}

/* An AdminStat of a file, a copy and a delete look at it on a worker too: held,
 * another client is served meanwhile; the file is gone once the delete
 * is released. */
static void slow_stat_delete(const char *pipe, const char *root)
{
    mmapio_client *a = NULL, *b = NULL;
    CHECK(mmapio_connect(pipe, &a) == MMAPIO_OK);
    CHECK(mmapio_connect(pipe, &b) == MMAPIO_OK);
    if (a && b) {
        CHECK(held_beside(a, b, stat_thread) == MMAPIO_OK);
        CHECK(held_beside(a, b, copy_thread) == MMAPIO_OK);
        mmapio_map *copy = NULL;
        CHECK(mmapio_open_ro(b, "copied.dat", &copy) == MMAPIO_OK);
        CHECK(copy && !memcmp(mmapio_as_ptr(copy), "file", 5));
        mmapio_unmap(copy);
        CHECK(held_beside(a, b, delete_thread) == MMAPIO_OK);
        SetEvent(release);
        mmapio_map *m = NULL;
        CHECK(mmapio_open_ro(b, SLOW, &m) == MMAPIO_E_NOT_FOUND);
        hold_again();
        CHECK(make_file(root, SLOW));
    }
    mmapio_disconnect(a);
    mmapio_disconnect(b);
}

/* The daemon stops with an open held: it stops, the open fails. */
static void stop_mid_open(struct wt_daemon *d)
{
    mmapio_client *a = NULL;
    CHECK(mmapio_connect(d->pipe, &a) == MMAPIO_OK);
    if (!a)
        return;
    struct opener o;
    CHECK(open_start(&o, a, SLOW));
    CHECK(held());
    CHECK(wt_daemon_stop(d) == 0);
    SetEvent(release);
    CHECK(open_end(&o) != MMAPIO_OK);
    mmapio_disconnect(a);
}

#define SLOW_FLUSH "flushslow.dat"

static void flushed(int result, void *user)
{
    *(int *)user = result;
}

/* A daemon (logging to a file) stopped while the hook holds every flush
 * of SLOW_FLUSH — a client's on a worker, and the final flush of the
 * file it wrote under an hour's policy — stops (exit 0) once its bound
 * has passed, and logs the file as not flushed. */
static void stop_mid_flush(const char *exe)
{
    HANDLE fent = CreateSemaphoreA(NULL, 0, 1000, "Local\\mmapiod-test-entered-" SLOW_FLUSH);
    HANDLE frel = CreateEventA(NULL, TRUE, FALSE, "Local\\mmapiod-test-release-" SLOW_FLUSH);
    char dir[MAX_PATH], log[MAX_PATH + 32], args[MAX_PATH + 64];
    CHECK(fent && frel && wt_temp_dir(dir, sizeof(dir), "flushlog"));
    snprintf(log, sizeof(log), "%s\\mmapiod.log", dir);
    snprintf(args, sizeof(args), "--log \"%s\"", log);
    struct wt_daemon d;
    bool up = fent && frel && wt_daemon_start(&d, exe, "flush", NULL, args);
    CHECK(up);
    mmapio_client *c = NULL;
    CHECK(up && mmapio_connect(d.pipe, &c) == MMAPIO_OK);
    mmapio_map *m = NULL;
    int rc = 1; /* the daemon's flush: not answered yet */
    if (c) {
        mmapio_options opt;
        mmapio_options_init(&opt);
        opt.create = true;
        opt.size = 4096;
        opt.flush_policy = (mmapio_flush_policy){MMAPIO_FLUSH_EVERY_MILLIS, 3600000};
        CHECK(mmapio_open(c, SLOW_FLUSH, &opt, &m) == MMAPIO_OK);
        CHECK(m && mmapio_update_region(m, 0, "dirty", 5) == MMAPIO_OK);
        CHECK(mmapio_ping(c) == MMAPIO_OK); /* the notice read: the file is dirty */
    }
    if (m) { /* done by the daemon's worker, which the hook holds */
        CHECK(mmapio_flush_async(m, flushed, &rc) == MMAPIO_OK);
        CHECK(WaitForSingleObject(fent, 30000) == WAIT_OBJECT_0);
    }
    if (up)
        CHECK(wt_daemon_stop(&d) == 0); /* while its flushes are held */
    if (frel)
        SetEvent(frel);
    for (int i = 0; m && rc == 1 && i < 100; i++)
        mmapio_client_dispatch(c, 100);
    CHECK(!m || (rc != 1 && rc != MMAPIO_OK)); /* never answered: the daemon went */
    size_t n;
    char *text = up ? wt_slurp(log, &n) : NULL;
    CHECK(text && strstr(text, SLOW_FLUSH ": not flushed at the stop"));
    CHECK(text && strstr(text, "not done") && strstr(text, "info: stopped"));
    free(text);
    if (m)
        mmapio_unmap(m);
    mmapio_disconnect(c);
    if (up)
        wt_remove_tree(d.root);
    wt_remove_tree(dir);
    if (fent)
        CloseHandle(fent);
    if (frel)
        CloseHandle(frel);
}

static int opener(const char *pipe)
{
    mmapio_client *c = NULL;
    mmapio_map *m = NULL;
    if (mmapio_connect(pipe, &c))
        return 2;
    mmapio_open_ro(c, SLOW, &m); /* killed while the daemon holds it */
    return 0;
}

int main(int argc, char **argv)
{
    wt_detail = mmapio_last_error;
    if (argc == 3 && !strcmp(argv[1], "opener"))
        return opener(argv[2]);
    if (argc != 2)
        return 2;
    SetEnvironmentVariableA("MMAPIOD_TEST_SLOW_OPEN", SLOW);
    SetEnvironmentVariableA("MMAPIOD_TEST_SLOW_FLUSH", SLOW_FLUSH);
    entered = CreateSemaphoreA(NULL, 0, 1000, "Local\\mmapiod-test-entered-" SLOW);
    release = CreateEventA(NULL, TRUE, FALSE, "Local\\mmapiod-test-release-" SLOW);
    CHECK(entered && release && GetLastError() != ERROR_ALREADY_EXISTS);
    struct wt_daemon d;
    bool up = wt_daemon_start(&d, argv[1], "open", NULL, NULL);
    CHECK(up);
    if (up) {
        CHECK(make_file(d.root, SLOW) && make_file(d.root, "other.dat"));
        slow_beside_others(d.pipe);
        two_at_once(d.pipe);
        gone_mid_open(&d);
        bounded(d.pipe);
        slow_stat_delete(d.pipe, d.root);
        stop_mid_open(&d);
        wt_remove_tree(d.root);
    }
    stop_mid_flush(argv[1]);
    SetEvent(release);
    return wt_report(argv[0]);
}
