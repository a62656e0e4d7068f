/*
 * peercred on Windows: `sock` is the server end of a connected named pipe
 * (a HANDLE, ptypes.h). The pid is what the pipe recorded at connect
 * (GetNamedPipeClientProcessId); the identity is the client's token, taken
 * by impersonating it (ImpersonateNamedPipeClient), never by opening the
 * process by pid, which could be another process by then. Windows lets a
 * server impersonate only after it has read from the pipe: call this
 * after the first message.
 *
 * uid and gids stand for the token's user, primary group and group SIDs
 * by sidmap.h: a local account's RID, any other SID a number of its own
 * (from 0x80000000) for the daemon's life, so that equal ids are equal
 * SIDs (a domain account may share a local account's RID). A user or
 * primary group that cannot be numbered (the table full) is -ENOSPC; a
 * group that cannot makes the groups unknown. Logon-session SIDs
 * (S-1-5-5-X-Y, new at every logon) are left out of the groups, so that
 * logons do not fill the table.
 */
#include "peercred.h"
#include "sidmap.h"

#include <errno.h>
#include <stdlib.h>
#include <windows.h>

/* GetTokenInformation into a malloc'd buffer, or NULL. */
static void *token_info(HANDLE tok, TOKEN_INFORMATION_CLASS what)
{
    DWORD len = 0;
    GetTokenInformation(tok, what, NULL, 0, &len);
    void *buf = len ? malloc(len) : NULL;
    if (buf && !GetTokenInformation(tok, what, buf, len, &len)) {
        free(buf);
        buf = NULL;
    }
    return buf;
}

int peer_identity(int sock, struct peer_cred *out)
{
    HANDLE pipe = PLATFORM_HANDLE(sock), tok = NULL;
    ULONG pid;
    /* pid 0 (the idle process) is never a client: not connected yet. */
    if (!GetNamedPipeClientProcessId(pipe, &pid) || pid == 0)
        return -ENOTCONN;
    if (!ImpersonateNamedPipeClient(pipe))
        return -EACCES;
    BOOL got = OpenThreadToken(GetCurrentThread(), TOKEN_QUERY, TRUE, &tok);
    if (!RevertToSelf())
        abort(); /* still the client: nothing after this may run */
    if (!got)
        return -EACCES;

    TOKEN_USER *user = token_info(tok, TokenUser);
    TOKEN_PRIMARY_GROUP *group = token_info(tok, TokenPrimaryGroup);
    TOKEN_GROUPS *groups = token_info(tok, TokenGroups);
    CloseHandle(tok);
    int rc = user && group ? 0 : -ENOMEM;
    uid_t uid = rc ? SIDMAP_NONE : sid_id(user->User.Sid);
    gid_t gid = rc ? SIDMAP_NONE : sid_id(group->PrimaryGroup);
    if (rc == 0 && (uid == SIDMAP_NONE || gid == SIDMAP_NONE))
        rc = -ENOSPC;
    if (rc == 0) {
        out->pid = (pid_t)pid;
        out->uid = uid;
        out->gid = gid;
        out->n_groups = 0;
        out->groups_unknown = !groups;
        for (DWORD i = 0; !out->groups_unknown && i < groups->GroupCount; i++) {
            if (groups->Groups[i].Attributes & SE_GROUP_LOGON_ID)
                continue;
            gid_t g = sid_id(groups->Groups[i].Sid);
            out->groups_unknown = g == SIDMAP_NONE || out->n_groups == PEER_MAX_GROUPS;
            if (!out->groups_unknown)
                out->groups[out->n_groups++] = g;
        }
        if (out->groups_unknown)
            out->n_groups = 0;
    }
    free(user);
    free(group);
    free(groups);
    return rc;
}
