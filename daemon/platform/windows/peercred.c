/*
 * peercred on Windows: `sock` is the server end of a connected named pipe
 * (a HANDLE, ptypes.h). The pid is what the pipe recorded at connect
 * (GetNamedPipeClientProcessId); the identity is the client's token, taken
 * by impersonating it (ImpersonateNamedPipeClient), never by opening the
 * process by pid, which could be another process by then. Windows lets a
 * server impersonate only after it has read from the pipe: call this
 * after the first message.
 *
 * uid and gids are the last sub-authority (RID) of the token's user,
 * primary group and group SIDs. RIDs are unique among one machine's
 * accounts; a domain account can share one with a local account, so a
 * Windows daemon that admits domain accounts must compare whole SIDs
 * (not done yet: the daemon does not run on Windows so far).
 */
#include "peercred.h"

#include <errno.h>
#include <stdlib.h>
#include <windows.h>

static uint32_t rid_of(PSID sid)
{
    if (!sid || !IsValidSid(sid))
        return UINT32_MAX;
    UCHAR n = *GetSidSubAuthorityCount(sid);
    return n ? (uint32_t)*GetSidSubAuthority(sid, n - 1u) : UINT32_MAX;
}

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
    if (rc == 0) {
        out->pid = (pid_t)pid;
        out->uid = rid_of(user->User.Sid);
        out->gid = rid_of(group->PrimaryGroup);
        out->n_groups = 0;
        out->groups_unknown = !groups || groups->GroupCount > PEER_MAX_GROUPS;
        for (DWORD i = 0; !out->groups_unknown && i < groups->GroupCount; i++)
            out->groups[out->n_groups++] = rid_of(groups->Groups[i].Sid);
    }
    free(user);
    free(group);
    free(groups);
    return rc;
}
