/*
 * libmmapio.dll on Windows, against fakeiod (a stand-in daemon on a named
 * pipe in this process), run under wine by meson. A plain program: each
 * CHECK that fails is printed and the exit status is 1. Run as
 * "child PIPE NAME" it is the second process of the sharing test: it
 * opens anonymous mapping NAME through the parent's fake daemon, checks
 * the parent's bytes and writes its own.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <windows.h>

#include "fakeiod.h"
#include "mmapio.h"
#include "wintest.h"

#define SIZE 65536u
static const char parent_text[] = "written by the parent";
static const char child_text[] = "written by the child";
static char pipe_prefix[64];

/* A pipe name of this process's own. */
static const char *pipe_name(const char *what)
{
    static char name[8][128];
    static int next;
    char *n = name[next++ % 8];
    snprintf(n, sizeof(name[0]), "%s%s", pipe_prefix, what);
    return n;
}

static int child(const char *pipe, const char *name)
{
    mmapio_client *c;
    mmapio_map *m;
    char buf[sizeof(parent_text)];
    if (mmapio_connect(pipe, &c) != MMAPIO_OK)
        return 2;
    if (mmapio_anon_open(c, name, &m) != MMAPIO_OK)
        return 3;
    if (mmapio_read_into(m, 0, buf, sizeof(buf)) != MMAPIO_OK ||
        memcmp(buf, parent_text, sizeof(buf)) != 0)
        return 4;
    if (mmapio_update_region(m, 4096, child_text, sizeof(child_text)) !=
        MMAPIO_OK)
        return 5;
    mmapio_unmap(m);
    mmapio_disconnect(c);
    return 0;
}

/* A fake daemon (`bad`) started on this process's pipe `what`, and a
 * client of it: NULL when either failed (both CHECKed). */
static mmapio_client *fake_client(const char *what, enum fake_bad bad)
{
    const char *pipe = pipe_name(what);
    mmapio_client *c = NULL;
    CHECK(fake_start(pipe, bad) == 0);
    CHECK(mmapio_connect(pipe, &c) == MMAPIO_OK);
    if (!c)
        fprintf(stderr, "  (no client of the fake daemon on %s)\n", pipe);
    return c;
}

static void test_names(void)
{
    char buf[256];
    mmapio_client *c = NULL;

    CHECK(mmapio_default_socket_path(buf, sizeof(buf)) == MMAPIO_OK);
    CHECK(strcmp(buf, "\\\\.\\pipe\\mmapio") == 0);
    /* Not a pipe name: refused before anything is opened. */
    CHECK(mmapio_connect("/run/mmapio/mmapiod.sock", &c) ==
          MMAPIO_E_INVALID_ARGUMENT);
    CHECK(mmapio_connect("\\\\.\\pipe\\", &c) == MMAPIO_E_INVALID_ARGUMENT);
    /* Nobody listens yet. */
    CHECK(mmapio_connect(pipe_name("nobody"), &c) == MMAPIO_E_DISCONNECTED);
    CHECK(strstr(mmapio_last_error(), "no such pipe") != NULL);
    CHECK(c == NULL);
}

/* socket_path NULL (and no $MMAPIO_SOCKET) is \\.\pipe\mmapio. */
static void test_default_pipe(void)
{
    mmapio_client *c = NULL;
    SetEnvironmentVariableA("MMAPIO_SOCKET", NULL);
    _putenv("MMAPIO_SOCKET=");
    if (mmapio_connect(NULL, &c) == MMAPIO_OK) {
        /* Another fake daemon of this prefix: no test of "nobody there". */
        mmapio_disconnect(c);
    } else {
        CHECK(strstr(mmapio_last_error(), "\\\\.\\pipe\\mmapio") != NULL);
    }
    if (fake_start("\\\\.\\pipe\\mmapio", FAKE_GOOD) != 0) {
        printf("default pipe busy (another test's): skipped\n");
        return;
    }
    c = NULL;
    CHECK(mmapio_connect(NULL, &c) == MMAPIO_OK);
    if (c) {
        CHECK(mmapio_ping(c) == MMAPIO_OK);
        mmapio_disconnect(c);
    }
}

static void test_connect_ping(void)
{
    mmapio_client *c = fake_client("ping", FAKE_GOOD);
    if (!c)
        return;
    CHECK(mmapio_client_fd(c) > 0);
    for (int i = 0; i < 100; i++)
        CHECK(mmapio_ping(c) == MMAPIO_OK);
    mmapio_disconnect(c);
    /* $MMAPIO_SOCKET names the pipe when socket_path is NULL. */
    char env[160];
    snprintf(env, sizeof(env), "MMAPIO_SOCKET=%s", pipe_name("ping"));
    _putenv(env);
    c = NULL;
    CHECK(mmapio_connect(NULL, &c) == MMAPIO_OK);
    if (c) {
        CHECK(mmapio_ping(c) == MMAPIO_OK);
        mmapio_disconnect(c);
    }
    _putenv("MMAPIO_SOCKET=");
}

/* A second process, and a second grant in this one, see the bytes. */
static void test_anon_shared(void)
{
    mmapio_map *m = NULL, *m2 = NULL;
    char buf[sizeof(child_text)];
    mmapio_client *c = fake_client("anon", FAKE_GOOD);
    if (!c)
        return;
    CHECK(mmapio_anon_open(c, "shared", &m) == MMAPIO_E_NOT_FOUND);
    CHECK(mmapio_anon_create(c, "shared", SIZE, &m) == MMAPIO_OK);
    if (!m) {
        mmapio_disconnect(c);
        return;
    }
    CHECK(mmapio_len(m) == SIZE);
    CHECK(mmapio_update_region(m, 0, parent_text, sizeof(parent_text)) ==
          MMAPIO_OK);
    CHECK(mmapio_update_region(m, SIZE - 1, "xy", 2) ==
          MMAPIO_E_OUT_OF_BOUNDS);
    /* A second grant of the same section: another view, the same bytes. */
    CHECK(mmapio_anon_open(c, "shared", &m2) == MMAPIO_OK);
    if (m2) {
        CHECK(mmapio_as_ptr(m2) != mmapio_as_ptr(m));
        CHECK(memcmp(mmapio_as_ptr(m2), parent_text, sizeof(parent_text)) ==
              0);
        CHECK(mmapio_update_region(m2, 8192, "two", 4) == MMAPIO_OK);
        CHECK(memcmp((const char *)mmapio_as_ptr(m) + 8192, "two", 4) == 0);
        mmapio_unmap(m2);
    }
    /* Another process. */
    CHECK(wt_run_self("child %s shared", pipe_name("anon")) == 0);
    CHECK(mmapio_read_into(m, 4096, buf, sizeof(buf)) == MMAPIO_OK);
    CHECK(memcmp(buf, child_text, sizeof(buf)) == 0);
    CHECK(mmapio_unmap(m) == MMAPIO_OK);
    mmapio_disconnect(c);
}

/* A read-only grant is mapped read-only, and neither the view nor the
 * handle can be made writable. */
static void test_read_only(void)
{
    mmapio_map *rw = NULL, *ro = NULL;
    mmapio_options o;
    MEMORY_BASIC_INFORMATION mi;
    DWORD old;
    mmapio_client *c = fake_client("ro", FAKE_GOOD);
    if (!c)
        return;
    CHECK(mmapio_anon_create(c, "ro", SIZE, &rw) == MMAPIO_OK);
    CHECK(rw && mmapio_update_region(rw, 0, "data", 5) == MMAPIO_OK);
    mmapio_options_init(&o);
    o.mode = MMAPIO_MODE_READ_ONLY;
    o.anonymous = true;
    CHECK(mmapio_open(c, "ro", &o, &ro) == MMAPIO_OK);
    if (ro) {
        const char *p = mmapio_as_ptr(ro);
        CHECK(p && memcmp(p, "data", 5) == 0);
        CHECK(mmapio_update_region(ro, 0, "x", 1) == MMAPIO_E_INVALID_MODE);
        CHECK(mmapio_as_mut_ptr(ro) == NULL);
        CHECK(VirtualQuery(p, &mi, sizeof(mi)) == sizeof(mi));
        CHECK(mi.Protect == PAGE_READONLY);
        CHECK(!VirtualProtect((void *)p, 4096, PAGE_READWRITE, &old));
        HANDLE h = (HANDLE)fake_last_ro_grant();
        HANDLE w = NULL;
        CHECK(h != NULL);
        CHECK(MapViewOfFile(h, FILE_MAP_WRITE, 0, 0, SIZE) == NULL);
        CHECK(!DuplicateHandle(GetCurrentProcess(), h, GetCurrentProcess(),
                               &w, FILE_MAP_WRITE, FALSE, 0));
        mmapio_unmap(ro);
    }
    mmapio_unmap(rw);
    mmapio_disconnect(c);
}

/* A mapping carved 4096 bytes into its section (an arena's slot): the
 * view starts below it, on the allocation granularity. Copy-on-write: a
 * private view of a read-only grant (FILE_MAP_COPY). */
static void test_carved_and_cow(void)
{
    mmapio_map *m = NULL, *cow = NULL;
    mmapio_options o;
    mmapio_client *c = fake_client("carved", FAKE_GOOD);
    if (!c)
        return;
    CHECK(mmapio_anon_create(c, "carved", SIZE, &m) == MMAPIO_OK);
    if (m) {
        CHECK(mmapio_len(m) == SIZE - 4096);
        CHECK((uintptr_t)mmapio_as_ptr(m) % 65536 == 4096);
        CHECK(mmapio_update_region(m, 0, "slot", 5) == MMAPIO_OK);
        CHECK(mmapio_unmap(m) == MMAPIO_OK);
    }
    CHECK(mmapio_anon_create(c, "cow", SIZE, &m) == MMAPIO_OK);
    mmapio_options_init(&o);
    o.mode = MMAPIO_MODE_COPY_ON_WRITE;
    o.anonymous = true;
    CHECK(mmapio_open(c, "cow", &o, &cow) == MMAPIO_OK);
    if (m && cow) {
        char *p = mmapio_as_mut_ptr(cow);
        CHECK(p != NULL);
        if (p)
            memcpy(p, "mine", 5);
        CHECK(memcmp(mmapio_as_ptr(m), "\0\0\0\0", 4) == 0);
        /* A page the private view has not copied still shows the section. */
        CHECK(mmapio_update_region(m, 8192, "shared", 7) == MMAPIO_OK);
        CHECK(memcmp((const char *)mmapio_as_ptr(cow) + 8192, "shared", 7) == 0);
    }
    mmapio_unmap(cow);
    mmapio_unmap(m);
    mmapio_disconnect(c);
}

static int events_seen;
static mmapio_change_event last_event;

static void on_change(const mmapio_change_event *ev, void *user)
{
    events_seen++;
    last_event = *ev;
}

/* A dispatch waiting on the pipe wakes for an event, and returns at its
 * timeout when none comes. */
static void test_dispatch(void)
{
    mmapio_map *m = NULL;
    mmapio_watcher *w = NULL;
    mmapio_client *c = fake_client("events", FAKE_GOOD);
    if (!c)
        return;
    CHECK(mmapio_client_dispatch(c, 20) == 0);
    CHECK(mmapio_anon_create(c, "watched", SIZE, &m) == MMAPIO_OK);
    if (m)
        CHECK(mmapio_watch(m, on_change, NULL, &w) == MMAPIO_OK);
    if (w) {
        int n = 0;
        for (int i = 0; i < 50 && n == 0; i++)
            n = mmapio_client_dispatch(c, 1000);
        CHECK(n > 0);
        CHECK(events_seen == 1);
        CHECK(last_event.kind == MMAPIO_CHANGE_MODIFIED &&
              last_event.has_range && last_event.offset == 8 &&
              last_event.len == 4);
        mmapio_unwatch(w);
    }
    mmapio_unmap(m);
    mmapio_disconnect(c);
}

/* After the daemon went away and came back, mmapio_reconnect connects
 * anew (a new pipe handle: its value cannot be kept on Windows); a handle
 * cannot be re-attached (a section has no identity to compare), so it
 * stays detached, its memory still mapped. */
static void test_reconnect(void)
{
    mmapio_map *m = NULL;
    mmapio_client *c = fake_client("restart", FAKE_RESTART);
    if (!c)
        return;
    CHECK(mmapio_anon_create(c, "survivor", SIZE, &m) == MMAPIO_OK);
    CHECK(m && mmapio_update_region(m, 0, "kept", 5) == MMAPIO_OK);
    CHECK(mmapio_ping(c) == MMAPIO_E_DISCONNECTED);
    CHECK(mmapio_ping(c) == MMAPIO_E_DISCONNECTED);
    CHECK(mmapio_reconnect(c) == MMAPIO_OK);
    CHECK(mmapio_ping(c) == MMAPIO_OK);
    if (m) {
        CHECK(memcmp(mmapio_as_ptr(m), "kept", 5) == 0);
        CHECK(mmapio_refresh(m) == MMAPIO_E_NOT_FOUND);
        mmapio_unmap(m);
    }
    mmapio_disconnect(c);
}

/* What Windows cannot do gives a clear error, never a hang; wait and
 * wake go to the daemon (which answers a Wait at once here). */
static void test_unsupported(void)
{
    mmapio_map *m = NULL;
    mmapio_client *c = fake_client("unsupported", FAKE_GOOD);
    if (!c)
        return;
    CHECK(mmapio_anon_create(c, "words", SIZE, &m) == MMAPIO_OK);
    if (m) {
        CHECK(mmapio_wait_u32(m, 0, 0, 10) == MMAPIO_OK);
        CHECK(mmapio_wake_u32(m, 0, 1) == 0);
        errno = 0;
        CHECK(mmapio_reader(m) == NULL && errno == ENOSYS);
        CHECK(mmapio_advise(m, 0, SIZE, MMAPIO_ADVICE_WILL_NEED) == MMAPIO_OK);
        CHECK(mmapio_advise(m, 0, SIZE, MMAPIO_ADVICE_DONT_NEED) ==
              MMAPIO_E_ADVICE_FAILED);
        CHECK(mmapio_lock(m, 0, 4096) == MMAPIO_OK);
        CHECK(mmapio_unlock(m, 0, 4096) == MMAPIO_OK);
        mmapio_unmap(m);
    }
    mmapio_disconnect(c);
}

/* A broken frame from the daemon is a protocol error or a lost
 * connection, latched, never a crash or a hang. */
static void test_bad_frames(void)
{
    static const struct {
        enum fake_bad bad;
        const char *what;
    } cases[] = {
        { FAKE_SHORT_HEADER, "short" },  { FAKE_MANY_HANDLES, "many" },
        { FAKE_FLAGS, "flags" },         { FAKE_GARBAGE, "garbage" },
        { FAKE_HEADER_ONLY, "empty" },   { FAKE_HUGE, "huge" },
        { FAKE_HANG_UP, "hangup" },
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        mmapio_client *c = fake_client(cases[i].what, cases[i].bad);
        if (!c)
            continue;
        int r = mmapio_ping(c);
        if (r != MMAPIO_E_PROTOCOL && r != MMAPIO_E_DISCONNECTED)
            fprintf(stderr, "bad frame '%s': ping gave %d\n", cases[i].what,
                    r);
        CHECK(r == MMAPIO_E_PROTOCOL || r == MMAPIO_E_DISCONNECTED);
        CHECK(mmapio_ping(c) == MMAPIO_E_DISCONNECTED);
        mmapio_disconnect(c);
    }
    /* A hello without the control area. */
    mmapio_client *c = NULL;
    const char *pipe = pipe_name("noarea");
    CHECK(fake_start(pipe, FAKE_NO_AREA) == 0);
    CHECK(mmapio_connect(pipe, &c) == MMAPIO_E_PROTOCOL);
    CHECK(c == NULL);
}

int main(int argc, char **argv)
{
    wt_detail = mmapio_last_error;
    if (argc == 4 && strcmp(argv[1], "child") == 0)
        return child(argv[2], argv[3]);
    snprintf(pipe_prefix, sizeof(pipe_prefix), "\\\\.\\pipe\\mmapio-test-%lu-",
             (unsigned long)GetCurrentProcessId());
    test_names();
    test_connect_ping();
    test_anon_shared();
    test_read_only();
    test_carved_and_cow();
    test_dispatch();
    test_reconnect();
    test_unsupported();
    test_bad_frames();
    test_default_pipe();
    return wt_report(argv[0]);
}
