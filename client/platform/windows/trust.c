/*
 * trust on Windows: the pipe's owner. The daemon creates the pipe's first
 * instance (FILE_FLAG_FIRST_PIPE_INSTANCE), so its owner is the daemon's
 * account; that is read from the pipe object itself (GetSecurityInfo).
 * Where the system keeps no owner for a pipe (wine), the user of the
 * process that serves it (GetNamedPipeServerProcessId, whose process
 * holds the server end while we are connected) is taken instead.
 * Trusted: this process's own user, the service's account (the virtual
 * account of the service mmapiod, or a local user of MMAPIO_SERVICE_USER's
 * name), LocalSystem, LocalService, NetworkService and the Administrators
 * group (which owns what an elevated administrator creates, and could take
 * any handle anyway, as root can on Linux). Pipe names have no directory
 * to judge.
 */
#include "trust.h"

#include <stdbool.h>
#include <stdio.h>
#include <windows.h>
#include <aclapi.h>
#include <sddl.h>

#include "mmapio.h"

/* The virtual account of the service mmapiod (README, "Windows"). */
#define SERVICE_ACCOUNT L"NT SERVICE\\mmapiod"

/* Whether sid is the account `name` (looked up each time: it may come and
 * go). */
static bool is_account(PSID sid, const wchar_t *name)
{
    union {
        SID sid;
        char room[SECURITY_MAX_SID_SIZE];
    } found;
    DWORD sid_len = sizeof(found), dom_len = 256;
    wchar_t dom[256];
    SID_NAME_USE use;
    return LookupAccountNameW(NULL, name, &found, &sid_len, dom, &dom_len,
                              &use) &&
           EqualSid(sid, &found);
}

/* The user SID of `process` into *out (room for any SID): true, or
 * false when it cannot be read. */
static bool process_user(HANDLE process, PSID out, DWORD room)
{
    HANDLE tok;
    union {
        TOKEN_USER user;
        char room[SECURITY_MAX_SID_SIZE + sizeof(TOKEN_USER)];
    } info;
    DWORD len;
    bool ok = false;
    if (!OpenProcessToken(process, TOKEN_QUERY, &tok))
        return false;
    if (GetTokenInformation(tok, TokenUser, &info, sizeof(info), &len))
        ok = CopySid(room, out, info.user.User.Sid);
    CloseHandle(tok);
    return ok;
}

static bool is_self(PSID sid)
{
    union {
        SID sid;
        char room[SECURITY_MAX_SID_SIZE];
    } self;
    return process_user(GetCurrentProcess(), &self, sizeof(self)) &&
           EqualSid(sid, &self);
}

static bool trusted_owner(PSID sid)
{
    static const WELL_KNOWN_SID_TYPE known[] = {
        WinLocalSystemSid, WinLocalServiceSid, WinNetworkServiceSid,
        WinBuiltinAdministratorsSid,
    };
    for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++)
        if (IsWellKnownSid(sid, known[i]))
            return true;
    return is_self(sid) || is_account(sid, SERVICE_ACCOUNT) ||
           is_account(sid, L"" MMAPIO_SERVICE_USER);
}

int trust_socket(int fd, const char *path, char *why, size_t why_size)
{
    PSID owner = NULL;
    PSECURITY_DESCRIPTOR sd = NULL;
    DWORD err = GetSecurityInfo((HANDLE)(intptr_t)fd, SE_KERNEL_OBJECT,
                                OWNER_SECURITY_INFORMATION, &owner, NULL,
                                NULL, NULL, &sd);
    union {
        SID sid;
        char room[SECURITY_MAX_SID_SIZE];
    } server;
    ULONG pid;
    if (err == ERROR_SUCCESS && !owner &&
        GetNamedPipeServerProcessId((HANDLE)(intptr_t)fd, &pid)) {
        HANDLE p = OpenProcess(PROCESS_QUERY_LIMITED_INFORMATION, FALSE, pid);
        if (p && process_user(p, &server, sizeof(server)))
            owner = &server;
        if (p)
            CloseHandle(p);
    }
    if (err != ERROR_SUCCESS || !owner) {
        snprintf(why, why_size, "pipe %s: cannot tell who owns it (error %lu)",
                 path, (unsigned long)err);
        if (sd)
            LocalFree(sd);
        return MMAPIO_E_PERMISSION;
    }
    int r = MMAPIO_OK;
    if (!trusted_owner(owner)) {
        char *text = NULL;
        ConvertSidToStringSidA(owner, &text);
        snprintf(why, why_size,
                 "pipe %s: owned by %s, neither you, the system, "
                 "administrators nor the service's account",
                 path, text ? text : "an unknown account");
        if (text)
            LocalFree(text);
        r = MMAPIO_E_PERMISSION;
    }
    LocalFree(sd);
    return r;
}
