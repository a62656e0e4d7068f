/*
 * mmapio_copy through mmapiod.exe (winopen: on the opens' workers, as
 * the caller). A second process copies; this one maps the copies:
 *
 * - a new destination gets the source's bytes and size;
 * - a destination this process holds mapped (at the source's size) shows
 *   the new bytes through the view it had before the copy, and its
 *   watcher hears MODIFIED;
 * - an existing, unheld, larger destination takes the source's size;
 * - errors as on Linux: a missing source MMAPIO_E_NOT_FOUND (and no
 *   destination made), source and destination one file or an empty path
 *   MMAPIO_E_INVALID_ARGUMENT, a path outside the root or in the daemon's
 *   own .mmapiod MMAPIO_E_PERMISSION, an empty source
 *   MMAPIO_E_RESIZE_FAILED, a source past max_map_size MMAPIO_E_QUOTA
 *   (no destination made), a missing folder MMAPIO_E_NOT_FOUND; and on
 *   Windows a held destination of another size MMAPIO_E_BUSY (a mapped
 *   file's size cannot change).
 *
 *   test_copy_win DAEMON.exe
 *   test_copy_win copier PIPE   (the process that copies)
 *   test_copy_win bench DAEMON.exe MIB   (by hand: mmapio_copy of a file
 *                               of MIB MiB beside CopyFileA of it, its floor)
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <windows.h>

#include "mmapio.h"
#include "wintest.h"

#define SRC_SIZE (3u * 4096 + 123)
#define HELD_SIZE 8192u
#define BIG_SIZE (5u * 4096)
#define MAX_MAP (64u * 1024) /* the daemon's --max_map_size here */

static unsigned char pattern(size_t i, unsigned seed)
{
    return (unsigned char)(i * 7 + seed);
}

/* ROOT\name holding size bytes of pattern seed. */
static bool make_file(const char *root, const char *name, size_t size, unsigned seed)
{
    char path[MAX_PATH];
    snprintf(path, sizeof(path), "%s\\%s", root, name);
    HANDLE f = CreateFileA(path, GENERIC_WRITE, 0, NULL, CREATE_ALWAYS, 0, NULL);
    if (f == INVALID_HANDLE_VALUE)
        return false;
    unsigned char *buf = malloc(size ? size : 1);
    for (size_t i = 0; buf && i < size; i++)
        buf[i] = pattern(i, seed);
    DWORD n = 0;
    bool ok = buf && (size == 0 || (WriteFile(f, buf, (DWORD)size, &n, NULL) && n == size));
    free(buf);
    CloseHandle(f);
    return ok;
}

/* ROOT\name's size, or -1 when it is not there. */
static long long file_size(const char *root, const char *name)
{
    char path[MAX_PATH];
    WIN32_FILE_ATTRIBUTE_DATA a;
    snprintf(path, sizeof(path), "%s\\%s", root, name);
    if (!GetFileAttributesExA(path, GetFileExInfoStandard, &a))
        return -1;
    return (long long)a.nFileSizeHigh << 32 | a.nFileSizeLow;
}

/* Whether m's len bytes are pattern seed. */
static bool shows(const mmapio_map *m, size_t len, unsigned seed)
{
    const unsigned char *p = m ? mmapio_as_ptr(m) : NULL;
    if (!p || mmapio_len(m) != len)
        return false;
    for (size_t i = 0; i < len; i++)
        if (p[i] != pattern(i, seed))
            return false;
    return true;
}

static int copier(const char *pipe)
{
    mmapio_client *c = NULL;
    if (mmapio_connect(pipe, &c))
        return 2;
    CHECK(mmapio_copy(c, "src.dat", "dst.dat") == MMAPIO_OK);
    CHECK(mmapio_copy(c, "new.dat", "held.dat") == MMAPIO_OK);
    CHECK(mmapio_copy(c, "src.dat", "big.dat") == MMAPIO_OK);
    /* The errors. */
    CHECK(mmapio_copy(c, "nope.dat", "x.dat") == MMAPIO_E_NOT_FOUND);
    CHECK(mmapio_copy(c, "src.dat", "nodir/x.dat") == MMAPIO_E_NOT_FOUND);
    CHECK(mmapio_copy(c, "src.dat", "src.dat") == MMAPIO_E_INVALID_ARGUMENT);
    CHECK(mmapio_copy(c, "src.dat", "./src.dat") == MMAPIO_E_INVALID_ARGUMENT);
    CHECK(mmapio_copy(c, "", "x.dat") == MMAPIO_E_INVALID_ARGUMENT);
    CHECK(mmapio_copy(c, "src.dat", "") == MMAPIO_E_INVALID_ARGUMENT);
    CHECK(mmapio_copy(c, "../src.dat", "x.dat") == MMAPIO_E_PERMISSION);
    CHECK(mmapio_copy(c, "src.dat", "../x.dat") == MMAPIO_E_PERMISSION);
    CHECK(mmapio_copy(c, "src.dat", "sub/../../x.dat") == MMAPIO_E_PERMISSION);
    CHECK(mmapio_copy(c, ".mmapiod/secret.dat", "x.dat") == MMAPIO_E_PERMISSION);
    CHECK(mmapio_copy(c, "src.dat", ".mmapiod/x.dat") == MMAPIO_E_PERMISSION);
    CHECK(mmapio_copy(c, "src.dat", ".MMAPIOD/x.dat") == MMAPIO_E_PERMISSION);
    CHECK(mmapio_copy(c, "empty.dat", "x.dat") == MMAPIO_E_RESIZE_FAILED);
    CHECK(mmapio_copy(c, "huge.dat", "x.dat") == MMAPIO_E_QUOTA); /* past max_map_size */
    /* Held by the other process at HELD_SIZE: its size cannot change. */
    CHECK(mmapio_copy(c, "src.dat", "held.dat") == MMAPIO_E_BUSY);
    CHECK(mmapio_ping(c) == MMAPIO_OK);
    mmapio_disconnect(c);
    return wt_failures ? 3 : 0;
}

static void on_change(const mmapio_change_event *ev, void *user)
{
    if (ev->kind == MMAPIO_CHANGE_MODIFIED)
        ++*(int *)user;
}

static void copies(const char *pipe, const char *root)
{
    CHECK(make_file(root, "src.dat", SRC_SIZE, 1) && make_file(root, "held.dat", HELD_SIZE, 0) &&
          make_file(root, "new.dat", HELD_SIZE, 3) && make_file(root, "big.dat", BIG_SIZE, 9) &&
          make_file(root, "empty.dat", 0, 0) && make_file(root, "huge.dat", MAX_MAP + 1, 0));
    char dir[MAX_PATH];
    snprintf(dir, sizeof(dir), "%s\\.mmapiod", root);
    CreateDirectoryA(dir, NULL);
    CHECK(make_file(root, ".mmapiod\\secret.dat", 4096, 5));
    mmapio_client *c = NULL;
    CHECK(mmapio_connect(pipe, &c) == MMAPIO_OK);
    if (!c)
        return;
    mmapio_map *held = NULL, *dst = NULL;
    mmapio_watcher *w = NULL;
    int modified = 0;
    CHECK(mmapio_open_ro(c, "held.dat", &held) == MMAPIO_OK);
    CHECK(shows(held, HELD_SIZE, 0));
    CHECK(held && mmapio_watch(held, on_change, &modified, &w) == MMAPIO_OK);

    CHECK(wt_run_self("copier %s", pipe) == 0);

    CHECK(mmapio_open_ro(c, "dst.dat", &dst) == MMAPIO_OK);
    CHECK(shows(dst, SRC_SIZE, 1)); /* the other process's copy */
    CHECK(shows(held, HELD_SIZE, 3)); /* through the view mapped before it */
    CHECK(file_size(root, "big.dat") == SRC_SIZE); /* an unheld file takes src's size */
    mmapio_map *big = NULL;
    CHECK(mmapio_open_ro(c, "big.dat", &big) == MMAPIO_OK);
    CHECK(shows(big, SRC_SIZE, 1));
    CHECK(file_size(root, "held.dat") == HELD_SIZE); /* the refused copy left it */
    CHECK(file_size(root, "x.dat") == -1); /* no failed copy made its destination */
    CHECK(file_size(root, ".mmapiod\\x.dat") == -1);
    for (int i = 0; i < 300 && modified == 0; i++)
        mmapio_client_dispatch(c, 100);
    CHECK(modified > 0); /* the copy over held.dat, told its watcher */
    if (w)
        mmapio_unwatch(w);
    mmapio_unmap(big);
    mmapio_unmap(dst);
    mmapio_unmap(held);
    mmapio_disconnect(c);
}

/* Five rounds, alternating: mmapio_copy of a MIB MiB file to a new name,
 * then CopyFileA of it to another (the same bytes through the system
 * alone); the medians. */
static int bench(const char *exe, unsigned mib)
{
    struct wt_daemon d;
    if (!wt_daemon_start(&d, exe, "copybench", NULL, NULL))
        return 2;
    mmapio_client *c = NULL;
    char src[MAX_PATH], dst[MAX_PATH];
    CHECK(make_file(d.root, "big.dat", (size_t)mib << 20, 1));
    CHECK(mmapio_connect(d.pipe, &c) == MMAPIO_OK);
    snprintf(src, sizeof(src), "%s\\big.dat", d.root);
    double ours[5], floor[5];
    for (int i = 0; c && i < 5; i++) {
        char name[32];
        snprintf(name, sizeof(name), "copy%d.dat", i);
        double t = wt_now_ms();
        CHECK(mmapio_copy(c, "big.dat", name) == MMAPIO_OK);
        ours[i] = wt_now_ms() - t;
        snprintf(dst, sizeof(dst), "%s\\plain%d.dat", d.root, i);
        t = wt_now_ms();
        CHECK(CopyFileA(src, dst, TRUE));
        floor[i] = wt_now_ms() - t;
    }
    wt_sort_ms(ours, 5); /* for the medians */
    wt_sort_ms(floor, 5);
    printf("copy of %u MiB: mmapio_copy %.1f ms, CopyFileA (floor) %.1f ms, ratio %.2f\n",
           mib, ours[2], floor[2], ours[2] / floor[2]);
    mmapio_disconnect(c);
    CHECK(wt_daemon_stop(&d) == 0);
    wt_remove_tree(d.root);
    return wt_report("test_copy_win bench");
}

int main(int argc, char **argv)
{
    wt_detail = mmapio_last_error;
    if (argc == 4 && !strcmp(argv[1], "bench"))
        return bench(argv[2], (unsigned)atoi(argv[3]));
    if (argc == 3 && !strcmp(argv[1], "copier"))
        return copier(argv[2]);
    if (argc != 2)
        return 2;
    struct wt_daemon d;
    char args[64];
    snprintf(args, sizeof(args), "--max_map_size %u", MAX_MAP);
    bool up = wt_daemon_start(&d, argv[1], "copy", NULL, args);
    CHECK(up);
    if (up) {
        copies(d.pipe, d.root);
        CHECK(wt_daemon_stop(&d) == 0);
        wt_remove_tree(d.root);
    }
    return wt_report(argv[0]);
}
