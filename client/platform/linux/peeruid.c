/* peeruid on Linux: SO_PEERCRED. */
#include "peeruid.h"

#include <errno.h>
#include <sys/socket.h>

int peer_uid(int fd, uid_t *uid)
{
    struct ucred cred;
    socklen_t len = sizeof(cred);
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0)
        return -errno;
    *uid = cred.uid;
    return 0;
}
