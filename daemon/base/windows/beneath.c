/*
 * beneath (Windows): paths under the data root by relative NtCreateFile
 * opens, one component at a time (beneath.h).
 */
#include "beneath.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <wchar.h>
#include <winternl.h>

#include "log.h"
#include "mmapio.h"
#include "names.h"

#ifndef STATUS_OPLOCK_BREAK_IN_PROGRESS
#define STATUS_OPLOCK_BREAK_IN_PROGRESS ((NTSTATUS)0x00000108L)
#endif
#define COMPLETE_IF_OPLOCKED 0x00000100 /* FILE_COMPLETE_IF_OPLOCKED */

int beneath_check_path(const char *path, const char **why)
{
    *why = "empty, too long, or with an empty or \".\" component";
    if (!path || !*path || strnlen(path, BENEATH_PATH_MAX + 1) > BENEATH_PATH_MAX)
        return MMAPIO_E_INVALID_ARGUMENT;
    if (path[0] == '/' || path[0] == '\\' || strchr(path, ':')) {
        *why = "absolute paths, drives and streams are refused";
        return path[0] == '/' || path[0] == '\\' ||
            (strchr(path, ':') == path + 1) ? MMAPIO_E_PERMISSION
                                            : MMAPIO_E_INVALID_ARGUMENT;
    }
    size_t own = sizeof(BENEATH_STATE_DIR) - 1;
    int bad = MMAPIO_OK;
    if (!names_valid(path))
        bad = MMAPIO_E_INVALID_ARGUMENT;
    else if (strchr(path, '\\'))
        bad = MMAPIO_E_INVALID_ARGUMENT; /* '/' is the only separator */
    for (const char *p = path;;) {
        size_t n = strcspn(p, "/\\");
        if (n == 2 && p[0] == '.' && p[1] == '.') {
            *why = "\"..\" is refused";
            return MMAPIO_E_PERMISSION; /* wins over any other fault */
        }
        /* Any case: the file system ignores it (a short 8.3 name, or a
         * trailing dot the Win32 layer strips, is caught on the handle:
         * beneath()). */
        if (p == path && n == own && !_strnicmp(p, BENEATH_STATE_DIR, own)) {
            *why = "the daemon's own directory";
            return MMAPIO_E_PERMISSION;
        }
        if (n == 0 || (n == 1 && p[0] == '.') || n > BENEATH_NAME_MAX)
            bad = MMAPIO_E_INVALID_ARGUMENT;
        if (!p[n])
            break;
        p += n + 1;
    }
    if (bad)
        *why = "not valid UTF-8, a control character, '\\', or an empty or \".\" component";
    return bad;
}

int beneath_check_name(const char *name)
{
    if (!name || !*name || strnlen(name, BENEATH_NAME_MAX + 1) > BENEATH_NAME_MAX ||
        strpbrk(name, "/\\") || !strcmp(name, ".") || !strcmp(name, ".."))
        return MMAPIO_E_INVALID_ARGUMENT;
    return names_valid(name) ? MMAPIO_OK : MMAPIO_E_INVALID_ARGUMENT;
}

static int errno_of_status(NTSTATUS st)
{
    switch ((unsigned long)st) {
    case 0xC0000034UL: /* OBJECT_NAME_NOT_FOUND */
    case 0xC000003AUL: /* OBJECT_PATH_NOT_FOUND */
        return -ENOENT;
    case 0xC0000035UL: /* OBJECT_NAME_COLLISION */
        return -EEXIST;
    case 0xC0000022UL: /* ACCESS_DENIED */
    case 0xC0000043UL: /* SHARING_VIOLATION */
        return -EACCES;
    case 0xC00000BAUL: /* FILE_IS_A_DIRECTORY */
        return -EISDIR;
    case 0xC0000103UL: /* NOT_A_DIRECTORY */
        return -ENOTDIR;
    case 0xC0000033UL: /* OBJECT_NAME_INVALID */
        return -EINVAL;
    default:
        return -EIO;
    }
}

/* Opens one component `name` (n bytes of UTF-8) relative to `dir`. */
static HANDLE open_at(HANDLE dir, const char *name, size_t n, ACCESS_MASK access,
                      ULONG disposition, ULONG options, ULONG_PTR *info, int *err)
{
    bool want_dir = options & FILE_DIRECTORY_FILE;
    options &= ~(ULONG)FILE_DIRECTORY_FILE; /* a link to a folder must open, to be refused */
    WCHAR wname[BENEATH_NAME_MAX + 1];
    int wn = MultiByteToWideChar(CP_UTF8, MB_ERR_INVALID_CHARS, name, (int)n,
                                 wname, BENEATH_NAME_MAX);
    if (wn <= 0) {
        *err = -EINVAL;
        return NULL;
    }
    UNICODE_STRING us = {.Length = (USHORT)(wn * sizeof(WCHAR)),
                         .MaximumLength = (USHORT)(wn * sizeof(WCHAR)),
                         .Buffer = wname};
    OBJECT_ATTRIBUTES oa;
    InitializeObjectAttributes(&oa, &us, OBJ_CASE_INSENSITIVE, dir, NULL);
    IO_STATUS_BLOCK io;
    HANDLE h = NULL;
    NTSTATUS st = NtCreateFile(&h, access | SYNCHRONIZE | FILE_READ_ATTRIBUTES,
        &oa, &io, NULL, FILE_ATTRIBUTE_NORMAL,
        FILE_SHARE_READ | FILE_SHARE_WRITE | FILE_SHARE_DELETE, disposition,
        options | FILE_OPEN_REPARSE_POINT | FILE_SYNCHRONOUS_IO_NONALERT |
            COMPLETE_IF_OPLOCKED,
        NULL, 0);
    if (st == STATUS_OPLOCK_BREAK_IN_PROGRESS) {
        CloseHandle(h); /* someone's oplock: never waited for */
        *err = -EBUSY;
        return NULL;
    }
    if (st < 0) {
        *err = errno_of_status(st);
        return NULL;
    }
    FILE_BASIC_INFO bi;
    if (!GetFileInformationByHandleEx(h, FileBasicInfo, &bi, sizeof(bi))) {
        CloseHandle(h);
        *err = -EIO;
        return NULL;
    }
    if (bi.FileAttributes & FILE_ATTRIBUTE_REPARSE_POINT) {
        CloseHandle(h); /* a junction or link: it could lead anywhere */
        *err = -ELOOP;
        return NULL;
    }
    if (want_dir && !(bi.FileAttributes & FILE_ATTRIBUTE_DIRECTORY)) {
        CloseHandle(h);
        *err = -ENOTDIR;
        return NULL;
    }
    *info = io.Information;
    return h;
}

/* h's final path (as the system resolved it), malloc'd, or NULL. */
static WCHAR *final_path(HANDLE h)
{
    DWORD n = GetFinalPathNameByHandleW(h, NULL, 0, FILE_NAME_NORMALIZED);
    WCHAR *buf = n ? malloc((n + 1) * sizeof(WCHAR)) : NULL;
    if (buf && GetFinalPathNameByHandleW(h, buf, n + 1, FILE_NAME_NORMALIZED) - 1u >= n) {
        free(buf);
        buf = NULL;
    }
    return buf;
}

/* Whether h's final path lies beneath `top` (the root's). The third fence:
 * a link the walk did not see as a reparse point (wine shows a Unix
 * symbolic link as one to a query by name, but its opens follow it) is
 * caught on the handle itself, before anything is opened beneath it.
 * The daemon's own folder is refused here too, by the name the system
 * gives it, whatever name (a short one, another case) opened it. */
static bool beneath(const WCHAR *top, HANDLE h)
{
    WCHAR *at = final_path(h);
    size_t n = wcslen(top);
    bool ok = at && wcslen(at) > n + 1 && !_wcsnicmp(at, top, n) && at[n] == L'\\';
    static const WCHAR own[] = L"" BENEATH_STATE_DIR;
    size_t k = sizeof(own) / sizeof(own[0]) - 1;
    if (ok && !_wcsnicmp(at + n + 1, own, k) && (!at[n + 1 + k] || at[n + 1 + k] == L'\\'))
        ok = false;
    free(at);
    return ok;
}

int beneath_relative(HANDLE root, HANDLE f, char *rel, size_t cap)
{
    WCHAR *top = final_path(root), *at = top && beneath(top, f) ? final_path(f) : NULL;
    int r = -1;
    if (at) {
        WCHAR *p = at + wcslen(top) + 1;
        for (WCHAR *c = p; *c; c++)
            if (*c == L'\\')
                *c = L'/';
        const char *why;
        int n = cap <= INT_MAX ? WideCharToMultiByte(CP_UTF8, WC_ERR_INVALID_CHARS, p, -1,
                                                     rel, (int)cap, NULL, NULL) : 0;
        if (n > 0 && beneath_check_path(rel, &why) == MMAPIO_OK)
            r = 0;
    }
    free(at);
    free(top);
    return r;
}

HANDLE beneath_open(HANDLE root, const char *path, ACCESS_MASK access,
                    enum beneath_how how, bool *created, int *err)
{
    const char *why;
    *created = false;
    if (beneath_check_path(path, &why) != MMAPIO_OK) {
        *err = -EINVAL;
        return NULL;
    }
    WCHAR *top = final_path(root);
    if (!top) {
        *err = -EIO;
        return NULL;
    }
    HANDLE dir = root;
    ULONG_PTR info = 0;
    for (const char *p = path;;) {
        size_t n = strcspn(p, "/");
        HANDLE next;
        if (p[n]) {
            next = open_at(dir, p, n, FILE_TRAVERSE, FILE_OPEN,
                           FILE_DIRECTORY_FILE, &info, err);
        } else {
            /* Made only by an exclusive create, which never follows a
             * link (a dangling one included): an existing file is opened
             * first, and a create that loses a race opens again. */
            next = how == BENEATH_EXCLUSIVE ? NULL
                 : open_at(dir, p, n, access, FILE_OPEN, FILE_NON_DIRECTORY_FILE,
                           &info, err);
            for (int tries = 0; !next && how != BENEATH_OPEN && tries < 2 &&
                                (how == BENEATH_EXCLUSIVE || *err == -ENOENT); tries++) {
                next = open_at(dir, p, n, access, FILE_CREATE, FILE_NON_DIRECTORY_FILE,
                               &info, err);
                *created = next != NULL;
                if (next || how == BENEATH_EXCLUSIVE || *err != -EEXIST)
                    break;
                next = open_at(dir, p, n, access, FILE_OPEN, FILE_NON_DIRECTORY_FILE,
                               &info, err);
            }
        }
        if (dir != root)
            CloseHandle(dir);
        if (next && !beneath(top, next)) {
            if (*created)
                log_err("a file was made outside the data root through a link: %s", path);
            CloseHandle(next);
            next = NULL;
            *created = false;
            *err = -ELOOP;
        }
        if (!next || !p[n]) {
            free(top);
            return next;
        }
        dir = next;
        p += n + 1;
    }
}
