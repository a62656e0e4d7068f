/* watchsys on Windows: ReadDirectoryChangesW. Windows watches folders,
 * not open files, so a watched file is a name in a watched folder: one
 * overlapped directory read per folder that holds watched files, shared
 * by them (at most MAX_DIRS folders, MAX_FILES files per set). A set is
 * an auto-reset event that every directory read's completion signals
 * (from the thread pool's I/O callback); the daemon waits on it and
 * calls watchsys_read on its loop. A file followed by a rename within
 * its folder keeps its watch under the new name. */
#include "watchsys.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <wchar.h>
#include <windows.h>

#include "ptypes.h"

#define MAX_DIRS 256
#define MAX_FILES 4096
#define DIR_BUF 16384
#define DIR_FILTER (FILE_NOTIFY_CHANGE_FILE_NAME | FILE_NOTIFY_CHANGE_SIZE | \
                    FILE_NOTIFY_CHANGE_LAST_WRITE | FILE_NOTIFY_CHANGE_ATTRIBUTES)

struct wdir {
    HANDLE h;
    PTP_IO io;
    OVERLAPPED ov;
    bool pending;   /* a read is out */
    bool done;      /* it completed; the loop has not looked yet */
    DWORD result, bytes;
    unsigned files;
    HANDLE set;
    WCHAR *path;    /* the folder's final path */
    _Alignas(DWORD) unsigned char buf[DIR_BUF];
};

struct wfile {
    struct wdir *dir; /* NULL: a free token */
    WCHAR *name;      /* within dir */
    DWORD vol;
    uint64_t index;
};

/* One set per process is all the daemon makes; the table is its. */
static struct {
    HANDLE ev;
    struct wdir *dirs[MAX_DIRS];
    struct wfile files[MAX_FILES];
    CRITICAL_SECTION lock; /* done/result, between the pool and the loop */
} S;

static void CALLBACK dir_done(PTP_CALLBACK_INSTANCE inst, void *arg, void *ov, ULONG result,
                              ULONG_PTR bytes, PTP_IO io)
{
    (void)inst, (void)ov, (void)io;
    struct wdir *d = arg;
    EnterCriticalSection(&S.lock);
    d->done = true;
    d->result = result;
    d->bytes = (DWORD)bytes;
    LeaveCriticalSection(&S.lock);
    SetEvent(d->set);
}

/* Starts d's next read; false if the folder can be read no more. */
static bool dir_arm(struct wdir *d)
{
    memset(&d->ov, 0, sizeof(d->ov));
    StartThreadpoolIo(d->io);
    if (!ReadDirectoryChangesW(d->h, d->buf, sizeof(d->buf), FALSE, DIR_FILTER, NULL, &d->ov,
                               NULL)) {
        CancelThreadpoolIo(d->io);
        d->pending = false;
        return false;
    }
    d->pending = true;
    return true;
}

static void dir_free(struct wdir *d)
{
    if (d->pending) {
        CancelIoEx(d->h, &d->ov);
        WaitForThreadpoolIoCallbacks(d->io, FALSE); /* the buffer is ours again */
    }
    CloseThreadpoolIo(d->io);
    CloseHandle(d->h);
    free(d->path);
    free(d);
}

int watchsys_open(void)
{
    if (S.ev)
        return -EBUSY;
    S.ev = CreateEventW(NULL, FALSE, FALSE, NULL);
    if (!S.ev)
        return -ENOMEM;
    InitializeCriticalSection(&S.lock);
    return PLATFORM_FD(S.ev);
}

void watchsys_close(int set)
{
    if (set < 0 || PLATFORM_HANDLE(set) != S.ev)
        return;
    for (int i = 0; i < MAX_DIRS; i++)
        if (S.dirs[i]) {
            dir_free(S.dirs[i]);
            S.dirs[i] = NULL;
        }
    for (int i = 0; i < MAX_FILES; i++) {
        free(S.files[i].name);
        S.files[i] = (struct wfile){0};
    }
    DeleteCriticalSection(&S.lock);
    CloseHandle(S.ev);
    S.ev = NULL;
}

/* The folder's directory read, shared, or a new one. */
static struct wdir *dir_get(const WCHAR *path, int *err)
{
    int slot = -1;
    for (int i = 0; i < MAX_DIRS; i++) {
        if (S.dirs[i] && !_wcsicmp(S.dirs[i]->path, path))
            return S.dirs[i];
        if (!S.dirs[i] && slot < 0)
            slot = i;
    }
    *err = -ENOSPC;
    if (slot < 0)
        return NULL;
    *err = -ENOMEM;
    struct wdir *d = calloc(1, sizeof(*d));
    if (!d || !(d->path = _wcsdup(path))) {
        free(d);
        return NULL;
    }
    d->set = S.ev;
    d->h = CreateFileW(path, FILE_LIST_DIRECTORY,
                       FILE_SHARE_READ | FILE_SHARE_WRITE | FILE_SHARE_DELETE, NULL,
                       OPEN_EXISTING, FILE_FLAG_BACKUP_SEMANTICS | FILE_FLAG_OVERLAPPED, NULL);
    if (d->h == INVALID_HANDLE_VALUE) {
        *err = -EACCES;
        free(d->path);
        free(d);
        return NULL;
    }
    d->io = CreateThreadpoolIo(d->h, dir_done, d, NULL);
    if (!d->io || !dir_arm(d)) {
        *err = -ENOSYS; /* no directory reads here */
        if (d->io)
            CloseThreadpoolIo(d->io);
        CloseHandle(d->h);
        free(d->path);
        free(d);
        return NULL;
    }
    S.dirs[slot] = d;
    return d;
}

int watchsys_add(int set, int fd)
{
    if (set < 0 || PLATFORM_HANDLE(set) != S.ev)
        return -EBADF;
    HANDLE f = PLATFORM_HANDLE(fd);
    BY_HANDLE_FILE_INFORMATION fi;
    if (!GetFileInformationByHandle(f, &fi))
        return -EBADF;
    uint64_t index = (uint64_t)fi.nFileIndexHigh << 32 | fi.nFileIndexLow;
    int token = -1;
    for (int i = 0; i < MAX_FILES; i++) {
        if (S.files[i].dir && S.files[i].vol == fi.dwVolumeSerialNumber &&
            S.files[i].index == index)
            return i;
        if (!S.files[i].dir && token < 0)
            token = i;
    }
    if (token < 0)
        return -ENOSPC;
    WCHAR path[MAX_PATH + 8];
    DWORD n = GetFinalPathNameByHandleW(f, path, MAX_PATH + 8, FILE_NAME_NORMALIZED);
    WCHAR *sep = n && n < MAX_PATH + 8 ? wcsrchr(path, L'\\') : NULL;
    if (!sep || !sep[1])
        return -ENAMETOOLONG;
    WCHAR *name = _wcsdup(sep + 1);
    if (!name)
        return -ENOMEM;
    *sep = 0;
    if (sep > path && sep[-1] == L':') /* a drive's root keeps its separator */
        sep[0] = L'\\', sep[1] = 0;
    int err = 0;
    struct wdir *d = dir_get(path, &err);
    if (!d) {
        free(name);
        return err;
    }
    d->files++;
    S.files[token] = (struct wfile){d, name, fi.dwVolumeSerialNumber, index};
    return token;
}

void watchsys_remove(int set, int token)
{
    if (set < 0 || PLATFORM_HANDLE(set) != S.ev || token < 0 || token >= MAX_FILES ||
        !S.files[token].dir)
        return;
    struct wdir *d = S.files[token].dir;
    free(S.files[token].name);
    S.files[token] = (struct wfile){0};
    if (--d->files)
        return;
    for (int i = 0; i < MAX_DIRS; i++)
        if (S.dirs[i] == d)
            S.dirs[i] = NULL;
    dir_free(d);
}

/* The watched file of d named `name` (len characters), or -1. */
static int file_named(const struct wdir *d, const WCHAR *name, size_t len)
{
    for (int i = 0; i < MAX_FILES; i++)
        if (S.files[i].dir == d && wcslen(S.files[i].name) == len &&
            !_wcsnicmp(S.files[i].name, name, len))
            return i;
    return -1;
}

/* Every watched file of d, told `what` (news of d was lost). */
static void all_of(struct wdir *d, unsigned what, watchsys_fn fn, void *arg)
{
    for (int i = 0; i < MAX_FILES; i++)
        if (S.files[i].dir == d)
            fn(arg, i, what);
}

static void dir_news(struct wdir *d, DWORD bytes, watchsys_fn fn, void *arg)
{
    if (bytes == 0) { /* more news than the buffer held */
        fn(arg, -1, WATCHSYS_LOST);
        all_of(d, WATCHSYS_MODIFIED | WATCHSYS_METADATA, fn, arg);
        return;
    }
    int renamed = -1; /* a watched file's old name, awaiting its new one */
    for (DWORD off = 0; off + sizeof(FILE_NOTIFY_INFORMATION) <= bytes;) {
        FILE_NOTIFY_INFORMATION *ni = (FILE_NOTIFY_INFORMATION *)(d->buf + off);
        size_t len = ni->FileNameLength / sizeof(WCHAR);
        if ((uintptr_t)ni->FileName - (uintptr_t)d->buf + ni->FileNameLength > bytes)
            break;
        int t = file_named(d, ni->FileName, len);
        switch (ni->Action) {
        case FILE_ACTION_MODIFIED:
            if (t >= 0)
                fn(arg, t, WATCHSYS_MODIFIED);
            break;
        case FILE_ACTION_REMOVED:
            if (t >= 0)
                fn(arg, t, WATCHSYS_METADATA);
            break;
        case FILE_ACTION_RENAMED_OLD_NAME:
            renamed = t;
            if (t >= 0)
                fn(arg, t, WATCHSYS_METADATA);
            break;
        case FILE_ACTION_RENAMED_NEW_NAME:
            if (renamed >= 0) { /* follow it to its new name */
                WCHAR *name = malloc((len + 1) * sizeof(WCHAR));
                if (name) {
                    memcpy(name, ni->FileName, len * sizeof(WCHAR));
                    name[len] = 0;
                    free(S.files[renamed].name);
                    S.files[renamed].name = name;
                }
            }
            renamed = -1;
            break;
        default:
            break;
        }
        if (!ni->NextEntryOffset)
            break;
        off += ni->NextEntryOffset;
    }
}

void watchsys_read(int set, watchsys_fn fn, void *arg)
{
    if (set < 0 || PLATFORM_HANDLE(set) != S.ev)
        return;
    for (int i = 0; i < MAX_DIRS; i++) {
        struct wdir *d = S.dirs[i];
        if (!d)
            continue;
        EnterCriticalSection(&S.lock);
        bool done = d->done;
        DWORD result = d->result, bytes = d->bytes;
        d->done = false;
        LeaveCriticalSection(&S.lock);
        if (!done)
            continue;
        d->pending = false;
        if (result == NO_ERROR || result == ERROR_NOTIFY_ENUM_DIR)
            dir_news(d, result == NO_ERROR ? bytes : 0, fn, arg);
        /* A folder that can be read no more (deleted, unmounted): its
         * files are told once and hear nothing after. */
        if ((result != NO_ERROR && result != ERROR_NOTIFY_ENUM_DIR) || !dir_arm(d))
            all_of(d, WATCHSYS_METADATA, fn, arg);
    }
}
