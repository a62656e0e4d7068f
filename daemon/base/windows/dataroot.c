/* dataroot on Windows: see dataroot.h. */
#include "dataroot.h"

#include <stdio.h>
#include <stdlib.h>
#include <wchar.h>
#include <windows.h>
#include <aclapi.h>
#include <sddl.h>

bool dataroot_own_user(union dataroot_user *u)
{
    HANDLE tok;
    DWORD n = 0;
    if (!OpenProcessToken(GetCurrentProcess(), TOKEN_QUERY, &tok))
        return false;
    BOOL ok = GetTokenInformation(tok, TokenUser, u, sizeof(*u), &n);
    CloseHandle(tok);
    return ok;
}

bool dataroot_owned_by_us(HANDLE h)
{
    PSID owner = NULL;
    PSECURITY_DESCRIPTOR sd = NULL;
    union dataroot_user u;
    if (!dataroot_own_user(&u) ||
        GetSecurityInfo(h, SE_FILE_OBJECT, OWNER_SECURITY_INFORMATION, &owner, NULL, NULL,
                        NULL, &sd) != ERROR_SUCCESS)
        return false;
    BYTE sys[SECURITY_MAX_SID_SIZE], adm[SECURITY_MAX_SID_SIZE];
    DWORD ns = sizeof(sys), na = sizeof(adm);
    bool ok = owner && (EqualSid(owner, u.tu.User.Sid) ||
                        (CreateWellKnownSid(WinLocalSystemSid, NULL, sys, &ns) &&
                         EqualSid(owner, sys)) ||
                        (CreateWellKnownSid(WinBuiltinAdministratorsSid, NULL, adm, &na) &&
                         EqualSid(owner, adm)));
    LocalFree(sd);
    return ok;
}

PSECURITY_DESCRIPTOR dataroot_sd(const WCHAR *fmt)
{
    union dataroot_user u;
    LPWSTR sid = NULL;
    if (!dataroot_own_user(&u) || !ConvertSidToStringSidW(u.tu.User.Sid, &sid))
        return NULL;
    WCHAR sddl[512];
    PSECURITY_DESCRIPTOR sd = NULL;
    if (_snwprintf(sddl, 512, fmt, sid) < 0 ||
        !ConvertStringSecurityDescriptorToSecurityDescriptorW(sddl, SDDL_REVISION_1, &sd,
                                                              NULL))
        sd = NULL;
    LocalFree(sid);
    return sd;
}

/* Whether h's final path is `path` itself (made absolute, long names): a
 * link or junction on the way (wine follows a Unix link even when asked not to)
 * gives another. */
static bool final_is(HANDLE h, const WCHAR *path)
{
    WCHAR full[MAX_PATH + 8], fin[MAX_PATH + 8];
    DWORD n = GetFullPathNameW(path, MAX_PATH, full, NULL);
    DWORD m = GetFinalPathNameByHandleW(h, fin, MAX_PATH + 8, VOLUME_NAME_DOS);
    if (!n || n >= MAX_PATH || !m || m >= MAX_PATH + 8)
        return false;
    n = GetLongPathNameW(full, full, MAX_PATH); /* a short 8.3 name is no link */
    if (!n || n >= MAX_PATH)
        return false;
    while (n > 3 && full[n - 1] == L'\\')
        full[--n] = 0;
    const WCHAR *f = wcsncmp(fin, L"\\\\?\\", 4) ? fin : fin + 4;
    return CompareStringOrdinal(f, -1, full, -1, TRUE) == CSTR_EQUAL;
}

HANDLE dataroot_open(const char *path, enum dataroot_kind kind, char *why, size_t why_size)
{
    WCHAR w[MAX_PATH];
    if (!MultiByteToWideChar(CP_UTF8, MB_ERR_INVALID_CHARS, path, -1, w, MAX_PATH)) {
        snprintf(why, why_size, "the data root %s: not a name (%lu)", path,
                 (unsigned long)GetLastError());
        return INVALID_HANDLE_VALUE;
    }
    if (kind != DATAROOT_GIVEN) {
        PSECURITY_DESCRIPTOR sd = kind == DATAROOT_SHARED ? dataroot_sd(DATAROOT_SHARED_SDDL) : NULL;
        SECURITY_ATTRIBUTES sa = {.nLength = sizeof(sa), .lpSecurityDescriptor = sd};
        DWORD err = ERROR_NOT_ENOUGH_MEMORY;
        if ((sd || kind == DATAROOT_PRIVATE) && !CreateDirectoryW(w, sd ? &sa : NULL))
            err = GetLastError();
        else if (sd || kind == DATAROOT_PRIVATE)
            err = 0;
        LocalFree(sd);
        if (err && err != ERROR_ALREADY_EXISTS) {
            snprintf(why, why_size, "the data root %s cannot be made (%lu)", path,
                     (unsigned long)err);
            return INVALID_HANDLE_VALUE;
        }
    }
    DWORD flags = FILE_FLAG_BACKUP_SEMANTICS;
    if (kind != DATAROOT_GIVEN)
        flags |= FILE_FLAG_OPEN_REPARSE_POINT;
    HANDLE h = CreateFileW(w, FILE_TRAVERSE | FILE_LIST_DIRECTORY | FILE_READ_ATTRIBUTES |
                               READ_CONTROL | SYNCHRONIZE,
                           FILE_SHARE_READ | FILE_SHARE_WRITE | FILE_SHARE_DELETE, NULL,
                           OPEN_EXISTING, flags, NULL);
    if (h == INVALID_HANDLE_VALUE) {
        snprintf(why, why_size, "the data root %s cannot be opened (%lu)", path,
                 (unsigned long)GetLastError());
        return INVALID_HANDLE_VALUE;
    }
    if (kind == DATAROOT_GIVEN)
        return h;
    FILE_BASIC_INFO bi;
    DWORD by_name = GetFileAttributesW(w);
    const char *bad = NULL;
    if (!GetFileInformationByHandleEx(h, FileBasicInfo, &bi, sizeof(bi)))
        bad = "cannot be asked what it is";
    else if (bi.FileAttributes & FILE_ATTRIBUTE_REPARSE_POINT ||
             (by_name != INVALID_FILE_ATTRIBUTES && by_name & FILE_ATTRIBUTE_REPARSE_POINT) ||
             !final_is(h, w))
        bad = "is a link, junction or other reparse point";
    else if (!(bi.FileAttributes & FILE_ATTRIBUTE_DIRECTORY))
        bad = "is not a folder";
    else if (!dataroot_owned_by_us(h))
        bad = "is owned by someone other than the daemon's account, SYSTEM or "
              "Administrators (made by another user first?)";
    if (bad) {
        snprintf(why, why_size, "the data root %s %s: refused; remove it, or give --root",
                 path, bad);
        CloseHandle(h);
        return INVALID_HANDLE_VALUE;
    }
    return h;
}
