/* access: permission decisions from peer credentials (see access.h). */
#include "access.h"

#include <errno.h>
#include <string.h>
#include <sys/socket.h>

#include "mmapio.h"

int access_peer_cred(int sock, struct peer_cred *out)
{
    struct ucred uc;
    socklen_t len = sizeof(uc);

    if (getsockopt(sock, SOL_SOCKET, SO_PEERCRED, &uc, &len) < 0)
        return -errno;
    memset(out, 0, sizeof(*out));
    out->pid = uc.pid;
    out->uid = uc.uid;
    out->gid = uc.gid;
    /* Supplementary groups as the kernel recorded them at connect(). For a
     * peer in more than ACCESS_MAX_GROUPS groups we cannot tell: see
     * access_check. */
    len = sizeof(out->groups);
    if (getsockopt(sock, SOL_SOCKET, SO_PEERGROUPS, out->groups, &len) == 0)
        out->n_groups = len / sizeof(gid_t);
    else
        out->groups_unknown = true;
    return 0;
}

static int in_group(const struct peer_cred *who, gid_t group)
{
    if (who->gid == group)
        return 1;
    for (size_t i = 0; i < who->n_groups; i++)
        if (who->groups[i] == group)
            return 1;
    return 0;
}

int access_check(const struct peer_cred *who, uid_t owner, gid_t group,
                 mode_t mode, int want)
{
    unsigned bits;

    if (who->uid == 0)
        return MMAPIO_OK;
    if (who->uid == owner)
        bits = (mode >> 6) & 7;
    else if (in_group(who, group))
        bits = (mode >> 3) & 7;
    else if (who->groups_unknown) /* maybe a member: grant what both allow */
        bits = (mode >> 3) & mode & 7;
    else
        bits = mode & 7;
    return ((unsigned)want & ~bits) ? MMAPIO_E_PERMISSION : MMAPIO_OK;
}

bool access_is_admin(const struct peer_cred *who, bool has_group, gid_t group)
{
    return who->uid == 0 || (has_group && in_group(who, group));
}

int access_is_owner(const struct peer_cred *who, uid_t owner)
{
    return who->uid == 0 || who->uid == owner ? MMAPIO_OK
                                              : MMAPIO_E_PERMISSION;
}
