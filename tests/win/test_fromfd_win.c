/*
 * mmapio_from_fd on Windows: the library (libmmapio.dll) hands mmapiod.exe
 * a file handle of this process's own, whose value the daemon pulls from
 * this process (README, "Windows"). Under wine:
 *   - a file this process opened (CreateFileW) beneath the data root,
 *     from_fd'ed READ_WRITE: written through the map, read back with
 *     ReadFile; a second process opening the same path through the daemon
 *     sees the bytes and the one entry has both holders (admin_stat);
 *   - a file outside the root: the same through the map and ReadFile, an
 *     entry listed nowhere; a CRT fd's handle (_get_osfhandle) likewise;
 *     one opened without sharing: BUSY (the daemon opens it again);
 *   - a read-only handle asked READ_WRITE: PERMISSION; asked READ_ONLY: a
 *     grant whose section (mmapio_unmap_to_fd) can be neither mapped nor
 *     duplicated writable, and is no file from_fd takes; copy-on-write
 *     from it keeps our writes; a write-only handle: PERMISSION;
 *   - a value naming no handle, an event, a pipe, a directory: a clear
 *     INVALID_ARGUMENT each, and the daemon answers on;
 *   - an empty file READ_WRITE: RESIZE_FAILED.
 *
 *   test_fromfd_win DAEMON.exe
 *   test_fromfd_win child PIPE PATH   (the second process)
 */
#include <fcntl.h>
#include <io.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <windows.h>

#include "mmapio.h"
#include "wintest.h"

#define SIZE 4096

/* A file opened with `access` by CreateFileW, made SIZE bytes long when
 * `size` (else as it is, or empty when new). */
static HANDLE open_file(const char *path, DWORD access, DWORD how, bool size)
{
    WCHAR w[MAX_PATH];
    if (!MultiByteToWideChar(CP_UTF8, 0, path, -1, w, MAX_PATH))
        return INVALID_HANDLE_VALUE;
    HANDLE h = CreateFileW(w, access, FILE_SHARE_READ | FILE_SHARE_WRITE | FILE_SHARE_DELETE,
                           NULL, how, FILE_ATTRIBUTE_NORMAL, NULL);
    LARGE_INTEGER at = {.QuadPart = SIZE};
    if (h != INVALID_HANDLE_VALUE && size &&
        (!SetFilePointerEx(h, at, NULL, FILE_BEGIN) || !SetEndOfFile(h))) {
        CloseHandle(h);
        return INVALID_HANDLE_VALUE;
    }
    return h;
}

/* The int the library takes for a HANDLE. */
static int as_fd(HANDLE h)
{
    return (int)(intptr_t)h;
}

/* The first n bytes of h's file, by ReadFile at offset 0. */
static bool file_has(HANDLE h, const char *want, DWORD n)
{
    char buf[64] = "";
    DWORD got = 0;
    OVERLAPPED at = {0};
    return n <= sizeof(buf) && ReadFile(h, buf, n, &got, &at) && got == n &&
           !memcmp(buf, want, n);
}

/* The second process: the path through the daemon, the bytes, and two
 * holders of one entry (ours and the parent's from_fd). */
static int child(const char *pipe, const char *path)
{
    mmapio_client *c = NULL;
    mmapio_map *m = NULL;
    mmapio_map_info *info = NULL;
    char buf[8] = "";
    if (mmapio_connect(pipe, &c))
        return 2;
    CHECK(mmapio_open_rw(c, path, &m) == MMAPIO_OK);
    CHECK(m && mmapio_read_into(m, 0, buf, 6) == MMAPIO_OK && !memcmp(buf, "hello", 6));
    CHECK(m && mmapio_update_region(m, 100, "child", 5) == MMAPIO_OK);
    CHECK(mmapio_admin_stat(c, path, false, &info) == MMAPIO_OK);
    CHECK(info && info->holders == 2 && info->rw_holders == 2);
    if (info)
        mmapio_map_info_free(info, 1);
    mmapio_unmap(m);
    mmapio_disconnect(c);
    return wt_failures ? 3 : 0;
}

/* A file of ours beneath the root joins the entry an open by path finds. */
static void in_root(mmapio_client *c, const char *pipe, const char *root)
{
    char path[MAX_PATH];
    snprintf(path, sizeof(path), "%s\\in.dat", root);
    HANDLE h = open_file(path, GENERIC_READ | GENERIC_WRITE, CREATE_NEW, true);
    CHECK(h != INVALID_HANDLE_VALUE);
    mmapio_map *m = NULL;
    CHECK(mmapio_from_fd(c, as_fd(h), MMAPIO_MODE_READ_WRITE, "in.dat", &m) == MMAPIO_OK);
    CHECK(m && mmapio_update_region(m, 0, "hello", 6) == MMAPIO_OK);
    CHECK(file_has(h, "hello", 6));
    CHECK(wt_run_self("child %s in.dat", pipe) == 0);
    char buf[8] = "";
    CHECK(m && mmapio_read_into(m, 100, buf, 5) == MMAPIO_OK && !memcmp(buf, "child", 5));
    CHECK(m && mmapio_flush(m) == MMAPIO_OK);
    mmapio_map_info *maps = NULL;
    size_t n = 0, seen = 0;
    CHECK(mmapio_admin_list(c, &maps, &n) == MMAPIO_OK);
    for (size_t i = 0; i < n; i++)
        seen += !strcmp(maps[i].name, "in.dat") && maps[i].holders == 1;
    CHECK(seen == 1); /* one entry, named by its path, our holder alone now */
    mmapio_map_info_free(maps, n);
    CHECK(mmapio_unmap(m) == MMAPIO_OK);
    CloseHandle(h); /* the caller keeps its handle: still ours to close */
}

/* Outside the root: a private entry of ours, listed nowhere. A CRT fd
 * passes its handle (_get_osfhandle). */
static void outside_root(mmapio_client *c, const char *dir)
{
    char path[MAX_PATH];
    snprintf(path, sizeof(path), "%s\\out.dat", dir);
    HANDLE h = open_file(path, GENERIC_READ | GENERIC_WRITE, CREATE_NEW, true);
    CHECK(h != INVALID_HANDLE_VALUE);
    mmapio_map *m = NULL, *again = NULL;
    CHECK(mmapio_from_fd(c, as_fd(h), MMAPIO_MODE_READ_WRITE, "out.dat", &m) == MMAPIO_OK);
    CHECK(m && mmapio_update_region(m, 0, "outer", 6) == MMAPIO_OK);
    CHECK(m && mmapio_flush(m) == MMAPIO_OK); /* through our handle, not a path */
    CHECK(file_has(h, "outer", 6));
    mmapio_map_info *maps = NULL;
    size_t n = 0;
    CHECK(mmapio_admin_list(c, &maps, &n) == MMAPIO_OK);
    for (size_t i = 0; i < n; i++)
        CHECK(strcmp(maps[i].name, "out.dat") != 0);
    mmapio_map_info_free(maps, n);
    int crt = _open(path, _O_RDONLY | _O_BINARY);
    CHECK(crt >= 0);
    CHECK(crt >= 0 && mmapio_from_fd(c, (int)_get_osfhandle(crt), MMAPIO_MODE_READ_ONLY,
                                     path, &again) == MMAPIO_OK);
    char buf[8] = "";
    CHECK(again && mmapio_read_into(again, 0, buf, 6) == MMAPIO_OK && !memcmp(buf, "outer", 6));
    mmapio_unmap(again);
    if (crt >= 0)
        _close(crt);
    CHECK(mmapio_unmap(m) == MMAPIO_OK);
    CloseHandle(h);
    /* Opened without sharing: the daemon cannot open it again beside it. */
    snprintf(path, sizeof(path), "%s\\alone.dat", dir);
    WCHAR w[MAX_PATH];
    MultiByteToWideChar(CP_UTF8, 0, path, -1, w, MAX_PATH);
    h = CreateFileW(w, GENERIC_READ | GENERIC_WRITE, 0, NULL, CREATE_NEW, 0, NULL);
    DWORD put = 0;
    CHECK(h != INVALID_HANDLE_VALUE && WriteFile(h, "alone", 5, &put, NULL) && put == 5);
    m = NULL;
    CHECK(mmapio_from_fd(c, as_fd(h), MMAPIO_MODE_READ_ONLY, "", &m) == MMAPIO_E_BUSY && !m);
    CloseHandle(h);
}

/* A handle's own access is the most a grant gets. */
static void access_kept(mmapio_client *c, const char *root)
{
    char path[MAX_PATH];
    snprintf(path, sizeof(path), "%s\\ro.dat", root);
    HANDLE rw = open_file(path, GENERIC_READ | GENERIC_WRITE, CREATE_NEW, true);
    HANDLE ro = open_file(path, GENERIC_READ, OPEN_EXISTING, false);
    HANDLE wo = open_file(path, GENERIC_WRITE, OPEN_EXISTING, false);
    CHECK(rw != INVALID_HANDLE_VALUE && ro != INVALID_HANDLE_VALUE &&
          wo != INVALID_HANDLE_VALUE);
    mmapio_map *m = NULL;
    CHECK(mmapio_from_fd(c, as_fd(ro), MMAPIO_MODE_READ_WRITE, "", &m) ==
          MMAPIO_E_PERMISSION && !m);
    CHECK(mmapio_from_fd(c, as_fd(wo), MMAPIO_MODE_READ_ONLY, "", &m) ==
          MMAPIO_E_PERMISSION && !m);
    CHECK(mmapio_from_fd(c, as_fd(ro), MMAPIO_MODE_READ_ONLY, "", &m) == MMAPIO_OK);
    CHECK(m && mmapio_update_region(m, 0, "x", 1) != MMAPIO_OK);
    int sec = -1;
    CHECK(m && mmapio_unmap_to_fd(m, &sec) == MMAPIO_OK && sec >= 0);
    if (sec >= 0) {
        HANDLE s = (HANDLE)(intptr_t)sec;
        CHECK(wt_can_map(s, FILE_MAP_READ, SIZE));
        CHECK(!wt_can_map(s, FILE_MAP_WRITE, SIZE));
        CHECK(!wt_can_dup(s, FILE_MAP_WRITE));
        CHECK(!wt_can_dup(s, FILE_MAP_ALL_ACCESS));
        mmapio_map *again = NULL; /* a section, not a file */
        CHECK(mmapio_from_fd(c, sec, MMAPIO_MODE_READ_ONLY, "", &again) ==
              MMAPIO_E_INVALID_ARGUMENT && !again);
        CloseHandle(s);
    }
    /* Copy-on-write from a read-only handle: our writes stay ours. */
    m = NULL;
    CHECK(mmapio_from_fd(c, as_fd(ro), MMAPIO_MODE_COPY_ON_WRITE, "", &m) == MMAPIO_OK);
    CHECK(m && mmapio_update_region(m, 0, "mine", 4) == MMAPIO_OK);
    CHECK(!file_has(rw, "mine", 4));
    mmapio_unmap(m);
    CloseHandle(rw);
    CloseHandle(ro);
    CloseHandle(wo);
}

/* What is no disk file of ours is refused clearly, and the daemon serves on. */
static void not_files(mmapio_client *c, const char *root)
{
    mmapio_map *m = NULL;
    HANDLE ev = CreateEventA(NULL, TRUE, FALSE, NULL), rd = NULL, wr = NULL;
    CHECK(ev && CreatePipe(&rd, &wr, NULL, 0));
    WCHAR dir[MAX_PATH];
    MultiByteToWideChar(CP_UTF8, 0, root, -1, dir, MAX_PATH);
    HANDLE d = CreateFileW(dir, GENERIC_READ, FILE_SHARE_READ | FILE_SHARE_WRITE, NULL,
                           OPEN_EXISTING, FILE_FLAG_BACKUP_SEMANTICS, NULL);
    CHECK(d != INVALID_HANDLE_VALUE);
    const int bogus[] = {0x7ffffff0, 4 * 77777, as_fd(ev), as_fd(rd), as_fd(wr), as_fd(d)};
    for (size_t i = 0; i < sizeof(bogus) / sizeof(bogus[0]); i++) {
        int r = mmapio_from_fd(c, bogus[i], MMAPIO_MODE_READ_ONLY, "", &m);
        CHECK(r == MMAPIO_E_INVALID_ARGUMENT && !m);
        if (r != MMAPIO_E_INVALID_ARGUMENT)
            fprintf(stderr, "value %d: %d %s\n", bogus[i], r, mmapio_last_error());
        CHECK(mmapio_ping(c) == MMAPIO_OK);
    }
    CHECK(mmapio_from_fd(c, -1, MMAPIO_MODE_READ_ONLY, "", &m) == MMAPIO_E_INVALID_ARGUMENT);
    CloseHandle(ev);
    CloseHandle(rd);
    CloseHandle(wr);
    CloseHandle(d);
}

static void empty_file(mmapio_client *c, const char *root)
{
    char path[MAX_PATH];
    snprintf(path, sizeof(path), "%s\\empty.dat", root);
    HANDLE h = open_file(path, GENERIC_READ | GENERIC_WRITE, CREATE_NEW, false);
    CHECK(h != INVALID_HANDLE_VALUE);
    mmapio_map *m = NULL;
    CHECK(mmapio_from_fd(c, as_fd(h), MMAPIO_MODE_READ_WRITE, "", &m) ==
          MMAPIO_E_RESIZE_FAILED && !m);
    CHECK(mmapio_from_fd(c, as_fd(h), MMAPIO_MODE_COPY_ON_WRITE, "", &m) ==
          MMAPIO_E_RESIZE_FAILED && !m);
    CloseHandle(h);
}

int main(int argc, char **argv)
{
    wt_detail = mmapio_last_error;
    if (argc == 4 && !strcmp(argv[1], "child"))
        return child(argv[2], argv[3]);
    if (argc != 2)
        return 2;
    struct wt_daemon d;
    char outside[MAX_PATH];
    bool up = wt_daemon_start(&d, argv[1], "fromfd", NULL, NULL);
    CHECK(up);
    bool out_ok = wt_temp_dir(outside, sizeof(outside), "fromfd-out");
    CHECK(out_ok);
    mmapio_client *c = NULL;
    CHECK(up && mmapio_connect(d.pipe, &c) == MMAPIO_OK);
    if (c && out_ok) {
        in_root(c, d.pipe, d.root);
        outside_root(c, outside);
        access_kept(c, d.root);
        not_files(c, d.root);
        empty_file(c, d.root);
        CHECK(mmapio_ping(c) == MMAPIO_OK);
        mmapio_disconnect(c);
    }
    if (up)
        CHECK(wt_daemon_stop(&d) == 0);
    if (up)
        wt_remove_tree(d.root);
    if (out_ok)
        wt_remove_tree(outside);
    return wt_report("fromfd_win");
}
