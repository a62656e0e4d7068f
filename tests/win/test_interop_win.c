/*
 * The library (libmmapio.dll) against the real daemon (mmapiod.exe),
 * under wine: built once both are in the tree (tests/win/meson.build).
 * Two processes share an anonymous and a file mapping through the public
 * API; a read-only map refuses writes; a deleted name is gone.
 *
 *   test_interop_win DAEMON.exe
 *   test_interop_win child PIPE      (the second process)
 *   test_interop_win outside OP PATH [NEW]   (a program without mmapio:
 *                                   write, rename or delete a file)
 *
 * A watcher blocked in mmapio_client_dispatch costs nothing while idle
 * (the library waits on its pipe's read, no polling: the process's CPU
 * time and, under wine, the waiting thread's context switches over a
 * 1 s idle dispatch), wakes with an event another process caused, and
 * with MMAPIO_E_DISCONNECTED when the daemon stops.
 *
 * A watcher of a file hears what a program without mmapio does to it:
 * a plain WriteFile (MODIFIED), a rename (METADATA) and a delete
 * (REMOVED), from the daemon's directory watch (watchsys).
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <windows.h>

#include "mmapio.h"
#include "wintest.h"

static int child(const char *pipe)
{
    mmapio_client *c = NULL;
    if (mmapio_connect(pipe, &c))
        return 2;
    mmapio_map *a = NULL, *f = NULL;
    char buf[8] = "";
    CHECK(mmapio_anon_open(c, "interop", &a) == MMAPIO_OK);
    CHECK(a && mmapio_read_into(a, 0, buf, 6) == MMAPIO_OK && !memcmp(buf, "anon!", 6));
    CHECK(mmapio_open_ro(c, "interop.dat", &f) == MMAPIO_OK);
    CHECK(f && mmapio_read_into(f, 0, buf, 6) == MMAPIO_OK && !memcmp(buf, "file!", 6));
    CHECK(f && mmapio_update_region(f, 0, "x", 1) != MMAPIO_OK); /* read-only */
    mmapio_unmap(a);
    mmapio_unmap(f);
    mmapio_disconnect(c);
    return wt_failures ? 3 : 0;
}

/* The owner checks against our uid, which only the daemon can tell on
 * Windows (its hello reply: README, "Windows", uids): our own anonymous
 * mapping and file pass MMAPIO_OWNER_SELF, a numbered SID's uid (not
 * ours: wine's user is a local account, its RID) does not. */
static void check_owner(mmapio_client *c)
{
    mmapio_map *m = NULL;
    CHECK(mmapio_anon_open_or_create(c, "interop", 4096, &m) == MMAPIO_OK);
    mmapio_unmap(m);
    m = NULL;
    mmapio_options o;
    mmapio_options_init(&o);
    o.owner = MMAPIO_OWNER_SELF;
    CHECK(mmapio_open(c, "interop.dat", &o, &m) == MMAPIO_OK);
    mmapio_unmap(m);
    m = NULL;
    o.anonymous = true;
    o.owner = MMAPIO_OWNER_UID;
    o.owner_uid = 0x80000000u;
    CHECK(mmapio_open(c, "interop", &o, &m) == MMAPIO_E_PERMISSION && !m);
    o.anonymous = false;
    CHECK(mmapio_open(c, "interop.dat", &o, &m) == MMAPIO_E_PERMISSION && !m);
}

/* What another program does to a file, without mmapio. */
static int outside(const char *op, const char *path, const char *to)
{
    if (!strcmp(op, "write")) {
        HANDLE f = CreateFileA(path, GENERIC_WRITE, FILE_SHARE_READ | FILE_SHARE_WRITE |
                               FILE_SHARE_DELETE, NULL, OPEN_EXISTING, 0, NULL);
        DWORD n = 0;
        bool ok = f != INVALID_HANDLE_VALUE && WriteFile(f, "plain", 5, &n, NULL) && n == 5;
        if (f != INVALID_HANDLE_VALUE)
            CloseHandle(f);
        return ok ? 0 : 4;
    }
    if (!strcmp(op, "rename"))
        return to && MoveFileA(path, to) ? 0 : 5;
    if (!strcmp(op, "delete"))
        return DeleteFileA(path) ? 0 : 6;
    return 7;
}

/* Runs outside() as another process: its exit status. */
static int run_outside(const char *op, const char *path, const char *to)
{
    return wt_run_self("outside %s \"%s\" \"%s\"", op, path, to ? to : "");
}

struct heard {
    int n[3]; /* MODIFIED, METADATA, REMOVED */
};

static void on_change(const mmapio_change_event *ev, void *user)
{
    struct heard *h = user;
    if (ev->kind <= MMAPIO_CHANGE_REMOVED)
        h->n[ev->kind]++;
}

/* Dispatches until `kind` is heard (or a minute passed: a failure). */
static bool hear(mmapio_client *c, struct heard *h, mmapio_change_kind kind)
{
    int before = h->n[kind];
    for (int i = 0; i < 600 && h->n[kind] == before; i++)
        mmapio_client_dispatch(c, 100);
    return h->n[kind] > before;
}

/* A watcher hears a program without mmapio write, rename and delete the
 * file it watches. */
static void watch_outside(mmapio_client *c, const char *root)
{
    char path[MAX_PATH], moved[MAX_PATH];
    snprintf(path, sizeof(path), "%s\\watched.dat", root);
    snprintf(moved, sizeof(moved), "%s\\watched-moved.dat", root);
    mmapio_map *f = NULL;
    mmapio_watcher *wa = NULL;
    struct heard h = {0};
    CHECK(mmapio_create_rw(c, "watched.dat", 4096, &f) == MMAPIO_OK);
    CHECK(f && mmapio_watch(f, on_change, &h, &wa) == MMAPIO_OK);
    if (!wa)
        return;
    CHECK(run_outside("write", path, NULL) == 0);
    CHECK(hear(c, &h, MMAPIO_CHANGE_MODIFIED));
    char buf[8] = "";
    CHECK(mmapio_read_into(f, 0, buf, 5) == MMAPIO_OK && !memcmp(buf, "plain", 5));
    CHECK(run_outside("rename", path, moved) == 0);
    CHECK(hear(c, &h, MMAPIO_CHANGE_METADATA));
    CHECK(h.n[MMAPIO_CHANGE_REMOVED] == 0);
    /* Followed to its new name: a write there is heard too. */
    CHECK(run_outside("write", moved, NULL) == 0);
    CHECK(hear(c, &h, MMAPIO_CHANGE_MODIFIED));
    CHECK(run_outside("delete", moved, NULL) == 0);
    /* Wine unlinks a deleted file when its last handle closes (the
     * daemon holds one): until then its name stays, the folder hears
     * nothing, and the delete cannot be told. Windows' delete with POSIX
     * semantics removes the name at once, and the folder tells it. */
    if (GetFileAttributesA(moved) == INVALID_FILE_ATTRIBUTES)
        CHECK(hear(c, &h, MMAPIO_CHANGE_REMOVED));
    else
        printf("the deleted name stays while the daemon holds the file: "
               "REMOVED not checked\n");
    mmapio_unwatch(wa);
    CHECK(mmapio_unmap(f) == MMAPIO_OK);
}

struct last_heard {
    uint64_t end;   /* the end of the furthest range heard */
    bool unranged;  /* a MODIFIED without a range */
};

static void on_write(const mmapio_change_event *ev, void *user)
{
    struct last_heard *l = user;
    if (ev->kind != MMAPIO_CHANGE_MODIFIED)
        return;
    if (!ev->has_range)
        l->unranged = true;
    else if (ev->offset + ev->len > l->end)
        l->end = ev->offset + ev->len;
}

/* A new anonymous mapping `name` (*m) whose writes on_write gathers in
 * l: its watcher, or NULL (CHECKed). */
static mmapio_watcher *watch_new(mmapio_client *c, const char *name, size_t size,
                                 struct last_heard *l, mmapio_map **m)
{
    mmapio_watcher *wa = NULL;
    CHECK(mmapio_anon_create(c, name, size, m) == MMAPIO_OK);
    CHECK(*m && mmapio_watch(*m, on_write, l, &wa) == MMAPIO_OK);
    return wa;
}

/* The watch, the mapping and its name gone again. */
static void watch_end(mmapio_client *c, const char *name, mmapio_watcher *wa, mmapio_map *m)
{
    mmapio_unwatch(wa);
    CHECK(mmapio_unmap(m) == MMAPIO_OK);
    CHECK(mmapio_anon_delete(c, name) == MMAPIO_OK);
}

/* A writer's flood through the library: its notices are paced (a burst,
 * then a hold in which writes go unannounced), and its last write is
 * still heard, by its range or by the daemon's MODIFIED without a range
 * once the hold is over. */
static void watch_flood(mmapio_client *c, const char *pipe)
{
    enum { WRITES = 2000 };
    mmapio_client *wc = NULL;
    mmapio_map *m = NULL, *wm = NULL;
    struct last_heard l = {0};
    mmapio_watcher *wa = watch_new(c, "flood", WRITES + 8, &l, &m);
    CHECK(mmapio_connect(pipe, &wc) == MMAPIO_OK);
    CHECK(wc && mmapio_anon_open(wc, "flood", &wm) == MMAPIO_OK);
    if (!wa || !wm)
        return;
    for (int i = 0; i < WRITES; i++)
        CHECK(mmapio_update_region(wm, (uint64_t)i, "x", 1) == MMAPIO_OK);
    CHECK(mmapio_ping(wc) == MMAPIO_OK); /* the notices have been read */
    /* A hang guard, not a measure: the hold ends within milliseconds. */
    for (int i = 0; i < 600 && !l.unranged && l.end < WRITES; i++)
        mmapio_client_dispatch(c, 100);
    printf("  flood: ranges heard to %llu of %d, %s\n", (unsigned long long)l.end, WRITES,
           l.unranged ? "and a MODIFIED without a range" : "no unranged MODIFIED");
    CHECK(l.unranged || l.end >= WRITES);
    CHECK(mmapio_unmap(wm) == MMAPIO_OK);
    watch_end(c, "flood", wa, m);
    mmapio_disconnect(wc);
}

/* The process's CPU time (user + kernel), in ms. */
static double cpu_ms(void)
{
    FILETIME made, ended, kernel, user;
    if (!GetProcessTimes(GetCurrentProcess(), &made, &ended, &kernel, &user))
        return -1;
    ULARGE_INTEGER k = {.LowPart = kernel.dwLowDateTime, .HighPart = kernel.dwHighDateTime};
    ULARGE_INTEGER u = {.LowPart = user.dwLowDateTime, .HighPart = user.dwHighDateTime};
    return (double)(k.QuadPart + u.QuadPart) / 1e4;
}

/* ---- counting the library's calls to the system while it waits ---- */

/* The calls by which a wait can look or sleep, made by libmmapio.dll,
 * counted through its import table (patched here): a load-proof count of
 * how often an idle dispatch looks at its pipe. */
static volatile LONG sys_calls;
static DWORD(WINAPI *real_wfso)(HANDLE, DWORD);
static DWORD(WINAPI *real_wfmo)(DWORD, const HANDLE *, BOOL, DWORD);
static void(WINAPI *real_sleep)(DWORD);
static BOOL(WINAPI *real_peek)(HANDLE, void *, DWORD, DWORD *, DWORD *, DWORD *);
static BOOL(WINAPI *real_read)(HANDLE, void *, DWORD, DWORD *, OVERLAPPED *);
static BOOL(WINAPI *real_result)(HANDLE, OVERLAPPED *, DWORD *, BOOL);

static DWORD WINAPI count_wfso(HANDLE h, DWORD ms)
{
    InterlockedIncrement(&sys_calls);
    return real_wfso(h, ms);
}

static DWORD WINAPI count_wfmo(DWORD n, const HANDLE *h, BOOL all, DWORD ms)
{
    InterlockedIncrement(&sys_calls);
    return real_wfmo(n, h, all, ms);
}

static void WINAPI count_sleep(DWORD ms)
{
    InterlockedIncrement(&sys_calls);
    real_sleep(ms);
}

static BOOL WINAPI count_peek(HANDLE h, void *b, DWORD n, DWORD *r, DWORD *a, DWORD *l)
{
    InterlockedIncrement(&sys_calls);
    return real_peek(h, b, n, r, a, l);
}

static BOOL WINAPI count_read(HANDLE h, void *b, DWORD n, DWORD *r, OVERLAPPED *ov)
{
    InterlockedIncrement(&sys_calls);
    return real_read(h, b, n, r, ov);
}

static BOOL WINAPI count_result(HANDLE h, OVERLAPPED *ov, DWORD *n, BOOL wait)
{
    InterlockedIncrement(&sys_calls);
    return real_result(h, ov, n, wait);
}

/* Points mod's import of kernel32's `name` at fn (the real one in
 * *real): whether it imports it. */
static bool hook(HMODULE mod, const char *name, void *fn, void **real)
{
    BYTE *base = (BYTE *)mod;
    IMAGE_NT_HEADERS *nt = (void *)(base + ((IMAGE_DOS_HEADER *)base)->e_lfanew);
    IMAGE_DATA_DIRECTORY d = nt->OptionalHeader.DataDirectory[IMAGE_DIRECTORY_ENTRY_IMPORT];
    for (IMAGE_IMPORT_DESCRIPTOR *imp = (void *)(base + d.VirtualAddress);
         d.VirtualAddress && imp->Name; imp++) {
        if (_stricmp((char *)base + imp->Name, "kernel32.dll"))
            continue;
        IMAGE_THUNK_DATA *names = (void *)(base + (imp->OriginalFirstThunk
                                                       ? imp->OriginalFirstThunk
                                                       : imp->FirstThunk));
        IMAGE_THUNK_DATA *iat = (void *)(base + imp->FirstThunk);
        for (; names->u1.AddressOfData; names++, iat++) {
            if (IMAGE_SNAP_BY_ORDINAL(names->u1.Ordinal))
                continue;
            IMAGE_IMPORT_BY_NAME *by = (void *)(base + names->u1.AddressOfData);
            if (strcmp((char *)by->Name, name))
                continue;
            DWORD was;
            if (!VirtualProtect(&iat->u1.Function, sizeof(void *), PAGE_READWRITE, &was))
                return false;
            *real = (void *)iat->u1.Function;
            iat->u1.Function = (ULONG_PTR)fn;
            VirtualProtect(&iat->u1.Function, sizeof(void *), was, &was);
            return true;
        }
    }
    return false;
}

/* Hooks what the library imports of the calls above: how many. */
static int hook_library(void)
{
    HMODULE lib = GetModuleHandleA("libmmapio.dll");
    if (!lib)
        return 0;
    return hook(lib, "WaitForSingleObject", (void *)count_wfso, (void **)&real_wfso) +
           hook(lib, "WaitForMultipleObjects", (void *)count_wfmo, (void **)&real_wfmo) +
           hook(lib, "Sleep", (void *)count_sleep, (void **)&real_sleep) +
           hook(lib, "PeekNamedPipe", (void *)count_peek, (void **)&real_peek) +
           hook(lib, "ReadFile", (void *)count_read, (void **)&real_read) +
           hook(lib, "GetOverlappedResult", (void *)count_result, (void **)&real_result);
}

/* Under wine, the calling thread's voluntary context switches (each time
 * it slept: a poll's every round), from Linux's /proc; -1 elsewhere. */
static long thread_switches(void)
{
    FILE *f = fopen("Z:\\proc\\thread-self\\status", "r");
    char line[256];
    long n = -1;
    while (f && fgets(line, sizeof(line), f))
        if (!strncmp(line, "voluntary_ctxt_switches:", 24))
            n = strtol(line + 24, NULL, 10);
    if (f)
        fclose(f);
    return n;
}

struct poke {
    const char *pipe, *name;
    int status;
};

/* Another process writes the watched mapping, a moment after the
 * watcher blocked (a thread here only starts it). */
static DWORD WINAPI poke(void *arg)
{
    struct poke *pk = arg;
    Sleep(200);
    pk->status = wt_run_self("poke %s %s", pk->pipe, pk->name);
    return 0;
}

static int poke_child(const char *pipe, const char *name)
{
    mmapio_client *c = NULL;
    mmapio_map *m = NULL;
    if (mmapio_connect(pipe, &c) || mmapio_anon_open(c, name, &m))
        return 2;
    int r = mmapio_update_region(m, 0, "poke", 4) || mmapio_ping(c);
    mmapio_unmap(m);
    mmapio_disconnect(c);
    return r ? 3 : 0;
}

/* A watcher idle in dispatch for 1 s costs next to nothing, and one
 * blocked with a long timeout returns with the event another process
 * caused. */
static void watch_idle(mmapio_client *c, const char *pipe)
{
    mmapio_map *m = NULL;
    struct last_heard l = {0};
    mmapio_watcher *wa = watch_new(c, "idle", 4096, &l, &m);
    if (!wa)
        return;
    /* The floor: a plain 1 s wait on an event nobody sets (wine's own
     * wait wakes the thread some 65 times a second here). */
    HANDLE never = CreateEventW(NULL, TRUE, FALSE, NULL);
    long floor0 = thread_switches();
    WaitForSingleObject(never, 1000);
    long floor = floor0 < 0 ? -1 : thread_switches() - floor0;
    CloseHandle(never);
    int hooked = hook_library();
    CHECK(hooked >= 2); /* a wait and a look, whichever the library uses */
    long sw0 = thread_switches();
    double cpu0 = cpu_ms();
    LONG calls0 = sys_calls;
    int n = mmapio_client_dispatch(c, 1000);
    LONG calls = sys_calls - calls0;
    double cpu = cpu_ms() - cpu0;
    long sw = sw0 < 0 ? -1 : thread_switches() - sw0;
    printf("  idle dispatch of 1000 ms: %d events, %ld calls to wait or look (%d hooked), "
           "%.1f ms of CPU, %ld context switches of the waiting thread (a plain 1 s wait: "
           "%ld)\n", n, (long)calls, hooked, cpu, sw, floor);
    CHECK(n == 0);
    /* Resource bounds, not speed: polling every 5 ms makes ~400 such
     * calls a second (a look and a sleep each round); waiting on the
     * pipe's read, a handful. The context switches are only shown: under
     * wine they vary with the other wine processes' load. */
    CHECK(calls <= 20);
    CHECK(cpu0 >= 0 && cpu < 100);

    struct poke pk = {.pipe = pipe, .name = "idle", .status = -1};
    HANDLE t = CreateThread(NULL, 0, poke, &pk, 0, NULL);
    CHECK(t != NULL);
    n = mmapio_client_dispatch(c, 60000); /* returns with the first event */
    printf("  blocked dispatch: %d events, heard to %llu\n", n, (unsigned long long)l.end);
    CHECK(n >= 1);
    CHECK(l.end >= 4 || l.unranged);
    if (t) {
        WaitForSingleObject(t, INFINITE);
        CloseHandle(t);
    }
    CHECK(pk.status == 0);
    watch_end(c, "idle", wa, m);
}

struct blocked {
    mmapio_client *c;
    int n;
};

static DWORD WINAPI dispatch_long(void *arg)
{
    struct blocked *b = arg;
    b->n = mmapio_client_dispatch(b->c, 30000);
    return 0;
}

/* A dispatch blocked in one thread while another thread's requests read
 * their replies on the same connection: it still wakes with the event
 * that comes after them (whoever reads it). */
static void watch_beside_requests(mmapio_client *c, const char *pipe)
{
    mmapio_map *m = NULL;
    struct last_heard l = {0};
    mmapio_watcher *wa = watch_new(c, "beside", 4096, &l, &m);
    if (!wa)
        return;
    struct blocked b = {.c = c, .n = -100};
    HANDLE t = CreateThread(NULL, 0, dispatch_long, &b, 0, NULL);
    CHECK(t != NULL);
    Sleep(100); /* a moment for it to block; the checks hold either way */
    int pings = 0;
    for (int i = 0; i < 200; i++)
        pings += mmapio_ping(c) == MMAPIO_OK;
    CHECK(pings == 200);
    CHECK(wt_run_self("poke %s beside", pipe) == 0);
    if (t) {
        WaitForSingleObject(t, INFINITE);
        CloseHandle(t);
    }
    printf("  dispatch beside 200 pings: %d events, heard to %llu\n", b.n,
           (unsigned long long)l.end);
    CHECK(b.n >= 1);
    CHECK(l.end >= 4 || l.unranged);
    watch_end(c, "beside", wa, m);
}

/* Stops daemon `arg` 200 ms later: 0, or 1 when its stop event was
 * not there. */
static DWORD WINAPI stop_later(void *arg)
{
    Sleep(200);
    return wt_daemon_signal(arg) ? 0 : 1;
}

int main(int argc, char **argv)
{
    wt_detail = mmapio_last_error;
    if (argc == 4 && !strcmp(argv[1], "poke"))
        return poke_child(argv[2], argv[3]);
    if (argc == 3 && !strcmp(argv[1], "child"))
        return child(argv[2]);
    if (argc >= 4 && !strcmp(argv[1], "outside"))
        return outside(argv[2], argv[3], argc > 4 && argv[4][0] ? argv[4] : NULL);
    if (argc != 2)
        return 2;
    struct wt_daemon d;
    bool up = wt_daemon_start(&d, argv[1], "interop", NULL, NULL);
    CHECK(up);
    const char *pipe = d.pipe, *root = d.root;

    mmapio_client *c = NULL;
    CHECK(up && mmapio_connect(pipe, &c) == MMAPIO_OK);
    if (c) {
        CHECK(mmapio_ping(c) == MMAPIO_OK);
        mmapio_map *a = NULL, *f = NULL, *g = NULL;
        CHECK(mmapio_anon_create(c, "interop", 4096, &a) == MMAPIO_OK);
        CHECK(a && mmapio_update_region(a, 0, "anon!", 6) == MMAPIO_OK);
        CHECK(mmapio_create_rw(c, "interop.dat", 4096, &f) == MMAPIO_OK);
        CHECK(f && mmapio_update_region(f, 0, "file!", 6) == MMAPIO_OK);
        CHECK(f && mmapio_flush(f) == MMAPIO_OK);
        CHECK(wt_run_self("child %s", pipe) == 0);
        check_owner(c);
        CHECK(mmapio_unmap(a) == MMAPIO_OK);
        CHECK(mmapio_unmap(f) == MMAPIO_OK);
        CHECK(mmapio_anon_delete(c, "interop") == MMAPIO_OK);
        CHECK(mmapio_anon_open(c, "interop", &g) == MMAPIO_E_NOT_FOUND);
        CHECK(mmapio_delete(c, "interop.dat") == MMAPIO_OK);
        watch_outside(c, root);
        watch_flood(c, pipe);
        watch_idle(c, pipe);
        watch_beside_requests(c, pipe);
    }
    /* A final flush: written through the mapping under an hour's pace,
     * and the daemon stopped right after (the ping has the notice read
     * first); the bytes are in the file after the daemon exits. Under
     * wine a view is the host's shared mapping of the file, so ReadFile
     * sees the bytes anyway; on Windows only the flush puts them there
     * before the view goes. */
    mmapio_map *fin = NULL;
    if (c) {
        mmapio_options o;
        mmapio_options_init(&o);
        o.create = true;
        o.size = 4096;
        o.flush_policy = (mmapio_flush_policy){MMAPIO_FLUSH_EVERY_MILLIS, 3600000};
        CHECK(mmapio_open(c, "final.dat", &o, &fin) == MMAPIO_OK);
        CHECK(fin && mmapio_update_region(fin, 100, "final!", 6) == MMAPIO_OK);
        CHECK(mmapio_ping(c) == MMAPIO_OK);
    }

    /* Stopped while a dispatch is blocked: it returns disconnected. */
    HANDLE stopper = CreateThread(NULL, 0, stop_later, &d, 0, NULL);
    CHECK(stopper != NULL);
    if (c && stopper)
        CHECK(mmapio_client_dispatch(c, 60000) == MMAPIO_E_DISCONNECTED);
    DWORD signalled = 1;
    if (stopper) {
        WaitForSingleObject(stopper, INFINITE);
        GetExitCodeThread(stopper, &signalled);
        CloseHandle(stopper);
    }
    CHECK(signalled == 0); /* its stop event was there, and set */
    CHECK(wt_daemon_wait(&d) == 0);
    char path[MAX_PATH + 16], buf[8] = "";
    snprintf(path, sizeof(path), "%s\\final.dat", root);
    HANDLE f = CreateFileA(path, GENERIC_READ, FILE_SHARE_READ | FILE_SHARE_WRITE |
                           FILE_SHARE_DELETE, NULL, OPEN_EXISTING, 0, NULL);
    DWORD got = 0;
    OVERLAPPED at = {.Offset = 100};
    CHECK(f != INVALID_HANDLE_VALUE && ReadFile(f, buf, 6, &got, &at) && got == 6 &&
          !memcmp(buf, "final!", 6));
    if (f != INVALID_HANDLE_VALUE)
        CloseHandle(f);
    if (fin)
        mmapio_unmap(fin);
    if (c)
        mmapio_disconnect(c);
    wt_remove_tree(root);
    return wt_report(argv[0]);
}
