/*
 * mmapio_reconnect on Windows, against mmapiod.exe stopped and started
 * again on the same pipe and root (README, "Windows"): a file mapping
 * comes back to its very file (flush, stat, its watches by handle and by
 * name, its policy, its bytes, a view coherent with the new daemon's
 * section); a file replaced by another of the same name during the
 * outage and an anonymous mapping stay detached (MMAPIO_E_NOT_FOUND,
 * their memory intact); bad Reattach frames get clear errors. (A mode
 * no longer allowed is refused by the open as the caller, as any open's:
 * wine, run as root here, enforces no file DACL or read-only attribute.)
 *
 *   test_reconnect_win DAEMON.exe
 *   test_reconnect_win bench DAEMON.exe N   (mmapio_reconnect of N file
 *                        handles, beside N opens of the same files: its
 *                        floor, measured in the same run)
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

#define FILE_SIZE 8192

/* Events heard, by kind. */
struct heard {
    int n[MMAPIO_CHANGE_RECONNECTED + 1];
};

static void on_change(const mmapio_change_event *ev, void *user)
{
    struct heard *h = user;
    if ((unsigned)ev->kind <= MMAPIO_CHANGE_RECONNECTED)
        h->n[ev->kind]++;
}

/* An asynchronous flush's result (1: not yet). */
static void on_flushed(int result, void *user)
{
    *(int *)user = result;
}

/* The daemon's flush of m (by its handle): its result. */
static int daemon_flush(mmapio_client *c, mmapio_map *m)
{
    int result = 1;
    int r = mmapio_flush_async(m, on_flushed, &result);
    if (r != MMAPIO_OK)
        return r;
    for (int i = 0; i < 100 && result == 1; i++)
        if (mmapio_client_dispatch(c, 100) == MMAPIO_E_DISCONNECTED)
            break;
    return result;
}

/* ROOT\name, FILE_SIZE bytes: `text` then zeros. */
static bool put_file(const char *root, const char *name, const char *text)
{
    char path[MAX_PATH], buf[FILE_SIZE] = {0};
    snprintf(path, sizeof(path), "%s\\%s", root, name);
    memcpy(buf, text, strlen(text));
    HANDLE f = CreateFileA(path, GENERIC_WRITE, 0, NULL, CREATE_NEW, 0, NULL);
    DWORD n = 0;
    bool ok = f != INVALID_HANDLE_VALUE && WriteFile(f, buf, sizeof(buf), &n, NULL) &&
              n == sizeof(buf);
    if (f != INVALID_HANDLE_VALUE)
        CloseHandle(f);
    return ok;
}

/* Whether ROOT\name holds `text` at `offset`, read without mmapio. */
static bool file_has(const char *root, const char *name, DWORD offset, const char *text)
{
    char path[MAX_PATH], buf[64] = "";
    snprintf(path, sizeof(path), "%s\\%s", root, name);
    HANDLE f = CreateFileA(path, GENERIC_READ, FILE_SHARE_READ | FILE_SHARE_WRITE |
                           FILE_SHARE_DELETE, NULL, OPEN_EXISTING, 0, NULL);
    DWORD n = 0, len = (DWORD)strlen(text);
    OVERLAPPED at = {.Offset = offset};
    bool ok = f != INVALID_HANDLE_VALUE && ReadFile(f, buf, len, &n, &at) && n == len &&
              !memcmp(buf, text, len);
    if (f != INVALID_HANDLE_VALUE)
        CloseHandle(f);
    return ok;
}

/* ROOT\name's volume serial and file index, as the daemon names them. */
static bool file_id(const char *root, const char *name, uint64_t *vol, uint64_t *index)
{
    char path[MAX_PATH];
    snprintf(path, sizeof(path), "%s\\%s", root, name);
    HANDLE f = CreateFileA(path, FILE_READ_ATTRIBUTES, FILE_SHARE_READ | FILE_SHARE_WRITE |
                           FILE_SHARE_DELETE, NULL, OPEN_EXISTING, 0, NULL);
    BY_HANDLE_FILE_INFORMATION fi;
    bool ok = f != INVALID_HANDLE_VALUE && GetFileInformationByHandle(f, &fi);
    if (ok) {
        *vol = fi.dwVolumeSerialNumber;
        *index = (uint64_t)fi.nFileIndexHigh << 32 | fi.nFileIndexLow;
    }
    if (f != INVALID_HANDLE_VALUE)
        CloseHandle(f);
    return ok;
}

static bool map_has(mmapio_map *m, uint64_t offset, const char *text)
{
    char buf[64] = "";
    size_t len = strlen(text);
    return m && mmapio_read_into(m, offset, buf, len) == MMAPIO_OK && !memcmp(buf, text, len);
}

/* Dispatches c until *count reaches want (at most 100 rounds of 100 ms:
 * a bound on a wait, not a timed assertion). */
static void dispatch_until(mmapio_client *c, const int *count, int want)
{
    for (int i = 0; i < 100 && *count < want; i++)
        if (mmapio_client_dispatch(c, 100) == MMAPIO_E_DISCONNECTED)
            break;
}

/* One Reattach in a raw frame: the reply's error. */
static int raw_reattach(HANDLE h, uint64_t id, const char *path, bool anonymous, int mode,
                        uint64_t dev, uint64_t ino, uint64_t offset, bool carved)
{
    Mmapio__Reattach ra = MMAPIO__REATTACH__INIT;
    ra.path = (char *)path;
    ra.anonymous = anonymous;
    ra.mode = (Mmapio__Mode)mode;
    ra.dev = dev;
    ra.ino = ino;
    ra.offset = offset;
    ra.carved = carved;
    uint64_t got = 0;
    int err = 1;
    if (!wt_raw_op(h, id, MMAPIO__REQUEST__OP_REATTACH, &ra) ||
        !wt_raw_reply(h, &got, &err, NULL) || got != id)
        return 1;
    return err;
}

/* Bad Reattach frames, and the good one, to the restarted daemon. */
static void frames(const struct wt_daemon *d)
{
    uint64_t vol = 0, index = 0;
    CHECK(file_id(d->root, "keep.dat", &vol, &index));
    HANDLE h = wt_raw_connect(d->pipe, "test_reconnect_win");
    CHECK(h != NULL);
    if (!h)
        return;
    const int rw = MMAPIO__MODE__MODE_READ_WRITE, ro = MMAPIO__MODE__MODE_READ_ONLY;
    CHECK(raw_reattach(h, 10, "keep.dat", false, rw, vol, index, 0, false) == MMAPIO_OK);
    CHECK(raw_reattach(h, 11, "keep.dat", false, ro, vol, index, 0, false) == MMAPIO_OK);
    CHECK(raw_reattach(h, 12, "keep.dat", false, 7, vol, index, 0, false) ==
          MMAPIO_E_INVALID_ARGUMENT);
    CHECK(raw_reattach(h, 13, "", false, rw, vol, index, 0, false) ==
          MMAPIO_E_INVALID_ARGUMENT);
    CHECK(raw_reattach(h, 14, "keep.dat", false, rw, vol, index, 4096, false) ==
          MMAPIO_E_INVALID_ARGUMENT);
    CHECK(raw_reattach(h, 15, "keep.dat", false, rw, vol, index, 0, true) ==
          MMAPIO_E_INVALID_ARGUMENT);
    CHECK(raw_reattach(h, 16, "../keep.dat", false, rw, vol, index, 0, false) ==
          MMAPIO_E_PERMISSION);
    CHECK(raw_reattach(h, 17, "C:/keep.dat", false, rw, vol, index, 0, false) ==
          MMAPIO_E_PERMISSION);
    CHECK(raw_reattach(h, 18, "keep.dat", false, rw, vol, index + 1, 0, false) ==
          MMAPIO_E_NOT_FOUND);
    CHECK(raw_reattach(h, 19, "keep.dat", false, rw, vol + 1, index, 0, false) ==
          MMAPIO_E_NOT_FOUND);
    CHECK(raw_reattach(h, 20, "missing.dat", false, rw, vol, index, 0, false) ==
          MMAPIO_E_NOT_FOUND);
    CHECK(raw_reattach(h, 21, "anon", true, rw, 0, 0, 0, false) == MMAPIO_E_NOT_FOUND);
    CHECK(raw_reattach(h, 22, ".mmapiod/x", false, rw, vol, index, 0, false) ==
          MMAPIO_E_PERMISSION);
    CHECK(raw_reattach(h, 23, "\xff", false, rw, vol, index, 0, false) ==
          MMAPIO_E_INVALID_ARGUMENT);
    /* The connection still serves. */
    Mmapio__Ping ping = MMAPIO__PING__INIT;
    uint64_t id = 0;
    int err = 1;
    CHECK(wt_raw_op(h, 30, MMAPIO__REQUEST__OP_PING, &ping) &&
          wt_raw_reply(h, &id, &err, NULL) && id == 30 && err == 0);
    CloseHandle(h);
}

static void reconnects(struct wt_daemon *d)
{
    CHECK(put_file(d->root, "keep.dat", "keep-before"));
    CHECK(put_file(d->root, "swap.dat", "swap-old"));
    CHECK(put_file(d->root, "ro.dat", "ro-old"));
    mmapio_client *c = NULL;
    CHECK(mmapio_connect(d->pipe, &c) == MMAPIO_OK);
    if (!c)
        return;
    mmapio_map *f = NULL, *g = NULL, *r = NULL, *a = NULL, *fr = NULL; /* fr: copy-on-write */
    CHECK(mmapio_open_rw(c, "keep.dat", &f) == MMAPIO_OK);
    CHECK(mmapio_open_cow(c, "keep.dat", &fr) == MMAPIO_OK);
    CHECK(mmapio_open_rw(c, "swap.dat", &g) == MMAPIO_OK);
    CHECK(mmapio_open_ro(c, "ro.dat", &r) == MMAPIO_OK);
    CHECK(mmapio_anon_create(c, "anon", 4096, &a) == MMAPIO_OK);
    if (!f || !fr || !g || !r || !a)
        return;
    CHECK(mmapio_update_region(a, 0, "anon!", 5) == MMAPIO_OK);
    mmapio_flush_policy every = {MMAPIO_FLUSH_EVERY_MILLIS, 500};
    CHECK(mmapio_set_flush_policy(f, every) == MMAPIO_OK);
    struct heard byh = {{0}}, byname = {{0}};
    mmapio_watcher *wh = NULL, *wn = NULL;
    CHECK(mmapio_watch(f, on_change, &byh, &wh) == MMAPIO_OK);
    CHECK(mmapio_admin_watch(c, "keep.dat", false, on_change, &byname, &wn) == MMAPIO_OK);
    const uint8_t *view = mmapio_as_ptr(f);
    uint64_t len = mmapio_len(f);

    /* The daemon stops: the client hears it; its memory still works. */
    CHECK(wt_daemon_stop(d) == 0);
    dispatch_until(c, &byh.n[MMAPIO_CHANGE_DISCONNECTED], 1);
    CHECK(byh.n[MMAPIO_CHANGE_DISCONNECTED] == 1);
    CHECK(mmapio_ping(c) == MMAPIO_E_DISCONNECTED);
    CHECK(mmapio_reconnect(c) == MMAPIO_E_DISCONNECTED); /* nobody there yet */
    CHECK(mmapio_update_region(f, 100, "during", 6) == MMAPIO_OK);
    /* Meanwhile swap.dat is replaced by another file of that name. */
    char from[MAX_PATH], to[MAX_PATH];
    snprintf(from, sizeof(from), "%s\\swap.dat", d->root);
    snprintf(to, sizeof(to), "%s\\swap.old", d->root);
    CHECK(MoveFileExA(from, to, 0));
    CHECK(put_file(d->root, "swap.dat", "swap-new"));

    CHECK(wt_daemon_restart(d));
    CHECK(mmapio_reconnect(c) == MMAPIO_OK);

    /* keep.dat is back: the same view, its bytes, stat, flush, policy. */
    CHECK(mmapio_as_ptr(f) == view && mmapio_len(f) == len);
    CHECK(map_has(f, 0, "keep-before") && map_has(f, 100, "during"));
    CHECK(mmapio_refresh(f) == MMAPIO_OK && mmapio_len(f) == len);
    CHECK(mmapio_refresh(fr) == MMAPIO_OK && mmapio_refresh(r) == MMAPIO_OK);
    CHECK(map_has(r, 0, "ro-old"));
    CHECK(mmapio_flush(f) == MMAPIO_OK);
    CHECK(daemon_flush(c, f) == MMAPIO_OK);
    CHECK(file_has(d->root, "keep.dat", 100, "during"));
    mmapio_flush_policy p = mmapio_flush_policy_of(f);
    CHECK(p.kind == MMAPIO_FLUSH_EVERY_MILLIS && p.value == 500);
    dispatch_until(c, &byh.n[MMAPIO_CHANGE_RECONNECTED], 1);
    dispatch_until(c, &byname.n[MMAPIO_CHANGE_RECONNECTED], 1);
    CHECK(byh.n[MMAPIO_CHANGE_RECONNECTED] == 1 && byname.n[MMAPIO_CHANGE_RECONNECTED] == 1);
    /* Another client of the new daemon: the same file, the policy the
     * holder brought back, and its writes heard by both watches and seen
     * through the old view. */
    mmapio_client *c2 = NULL;
    mmapio_map *f2 = NULL;
    CHECK(mmapio_connect(d->pipe, &c2) == MMAPIO_OK);
    CHECK(c2 && mmapio_open_rw(c2, "keep.dat", &f2) == MMAPIO_OK);
    CHECK(map_has(f2, 100, "during"));
    p = f2 ? mmapio_flush_policy_of(f2) : (mmapio_flush_policy){0};
    CHECK(p.kind == MMAPIO_FLUSH_EVERY_MILLIS && p.value == 500);
    CHECK(f2 && mmapio_update_region(f2, 200, "from-c2", 7) == MMAPIO_OK);
    dispatch_until(c, &byh.n[MMAPIO_CHANGE_MODIFIED], 1);
    dispatch_until(c, &byname.n[MMAPIO_CHANGE_MODIFIED], 1);
    CHECK(byh.n[MMAPIO_CHANGE_MODIFIED] >= 1 && byname.n[MMAPIO_CHANGE_MODIFIED] >= 1);
    CHECK(map_has(f, 200, "from-c2"));
    mmapio_unmap(f2);
    mmapio_disconnect(c2);

    /* Replaced, no longer writable, anonymous: detached, memory intact. */
    CHECK(mmapio_refresh(g) == MMAPIO_E_NOT_FOUND &&
          strstr(mmapio_last_error(), "did not come back"));
    CHECK(mmapio_set_flush_policy(g, every) == MMAPIO_E_NOT_FOUND);
    CHECK(daemon_flush(c, g) == MMAPIO_E_NOT_FOUND);
    CHECK(map_has(g, 0, "swap-old"));
    CHECK(mmapio_update_region(g, 0, "still", 5) == MMAPIO_OK && map_has(g, 0, "still"));
    CHECK(file_has(d->root, "swap.dat", 0, "swap-new"));
    CHECK(mmapio_refresh(a) == MMAPIO_E_NOT_FOUND);
    CHECK(map_has(a, 0, "anon!"));
    mmapio_watcher *wa = NULL;
    CHECK(mmapio_watch(a, on_change, &byh, &wa) == MMAPIO_E_NOT_FOUND);

    frames(d);

    mmapio_unwatch(wh);
    mmapio_unwatch(wn);
    mmapio_unmap(f);
    mmapio_unmap(fr);
    mmapio_unmap(g);
    mmapio_unmap(r);
    mmapio_unmap(a);
    mmapio_disconnect(c);
}

/* Rounds of: N opens of N files (then unmapped), and a restart under N
 * handles of them with mmapio_reconnect timed; the medians. */
#define BENCH_ROUNDS 5
static int bench(const char *exe, unsigned n)
{
    struct wt_daemon d;
    if (n == 0 || !wt_daemon_start(&d, exe, "reconnect-bench", NULL, NULL))
        return 2;
    mmapio_map **m = calloc(n, sizeof(*m)), **o = calloc(n, sizeof(*o));
    mmapio_client *c = NULL;
    char name[32];
    for (unsigned i = 0; i < n; i++) {
        snprintf(name, sizeof(name), "b%u.dat", i);
        CHECK(put_file(d.root, name, name));
    }
    CHECK(m && o && mmapio_connect(d.pipe, &c) == MMAPIO_OK);
    for (unsigned i = 0; c && m && i < n; i++) {
        snprintf(name, sizeof(name), "b%u.dat", i);
        CHECK(mmapio_open_rw(c, name, &m[i]) == MMAPIO_OK);
    }
    double opens[BENCH_ROUNDS], back[BENCH_ROUNDS];
    for (int r = 0; r < BENCH_ROUNDS && c && m && o && !wt_failures; r++) {
        double t0 = wt_now_ms();
        for (unsigned i = 0; i < n; i++) {
            snprintf(name, sizeof(name), "b%u.dat", i);
            CHECK(mmapio_open_rw(c, name, &o[i]) == MMAPIO_OK);
        }
        opens[r] = wt_now_ms() - t0;
        for (unsigned i = 0; i < n; i++)
            mmapio_unmap(o[i]);
        CHECK(wt_daemon_stop(&d) == 0);
        while (mmapio_ping(c) != MMAPIO_E_DISCONNECTED)
            Sleep(10);
        CHECK(wt_daemon_restart(&d));
        t0 = wt_now_ms();
        CHECK(mmapio_reconnect(c) == MMAPIO_OK);
        back[r] = wt_now_ms() - t0;
        for (unsigned i = 0; i < n; i++)
            CHECK(mmapio_refresh(m[i]) == MMAPIO_OK); /* each one back */
    }
    if (!wt_failures) {
        wt_sort_ms(opens, BENCH_ROUNDS);
        wt_sort_ms(back, BENCH_ROUNDS);
        printf("reconnect of %u file handles: %.1f ms (median of %d; %.1f-%.1f), "
               "floor %u opens of them: %.1f ms (%.1f-%.1f), ratio %.2f\n", n,
               back[BENCH_ROUNDS / 2], BENCH_ROUNDS, back[0], back[BENCH_ROUNDS - 1], n,
               opens[BENCH_ROUNDS / 2], opens[0], opens[BENCH_ROUNDS - 1],
               back[BENCH_ROUNDS / 2] / opens[BENCH_ROUNDS / 2]);
    }
    for (unsigned i = 0; m && i < n; i++)
        mmapio_unmap(m[i]);
    mmapio_disconnect(c);
    free(m);
    free(o);
    CHECK(wt_daemon_stop(&d) == 0);
    wt_remove_tree(d.root);
    return wt_report("test_reconnect_win bench");
}

int main(int argc, char **argv)
{
    wt_detail = mmapio_last_error;
    if (argc == 4 && !strcmp(argv[1], "bench"))
        return bench(argv[2], (unsigned)atoi(argv[3]));
    if (argc != 2)
        return 2;
    struct wt_daemon d;
    bool up = wt_daemon_start(&d, argv[1], "reconnect", NULL, NULL);
    CHECK(up);
    if (up) {
        reconnects(&d);
        CHECK(wt_daemon_stop(&d) == 0);
        wt_remove_tree(d.root);
    }
    return wt_report(argv[0]);
}
