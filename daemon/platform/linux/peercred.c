/* peercred on Linux: SO_PEERCRED and SO_PEERGROUPS. */
#include "peercred.h"

#include <errno.h>
#include <string.h>
#include <sys/socket.h>

int peer_identity(int sock, struct peer_cred *out)
{
    struct ucred uc;
    socklen_t len = sizeof(uc);

    if (getsockopt(sock, SOL_SOCKET, SO_PEERCRED, &uc, &len) < 0)
        return -errno;
    memset(out, 0, sizeof(*out));
    out->pid = uc.pid;
    out->uid = uc.uid;
    out->gid = uc.gid;
    len = sizeof(out->groups);
    if (getsockopt(sock, SOL_SOCKET, SO_PEERGROUPS, out->groups, &len) == 0)
        out->n_groups = len / sizeof(gid_t);
    else
        out->groups_unknown = true;
    return 0;
}
