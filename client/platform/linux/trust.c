/* trust: judging the daemon's socket before talking (see trust.h). */
#include "trust.h"

#include <pwd.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mmapio.h"
#include "peeruid.h"
#include "sockdir.h"

/* Is uid the service's user? Looked up each time: the account may come
 * and go, and this runs only for a uid that is neither root nor ours. */
static bool is_service_user(uid_t uid)
{
    struct passwd pw, *found = NULL;
    char buf[1024];
    if (getpwnam_r(MMAPIO_SERVICE_USER, &pw, buf, sizeof(buf), &found) != 0)
        return false;
    return found && found->pw_uid == uid;
}

static bool trusted_uid(uid_t uid)
{
    return uid == 0 || uid == geteuid() || is_service_user(uid);
}

static int check_peer(int fd, const char *path, char *why, size_t size)
{
    uid_t uid;
    int r = peer_uid(fd, &uid);
    if (r < 0) {
        snprintf(why, size, "socket %s: cannot tell who listens: %s", path,
                 strerror(-r));
        return MMAPIO_E_PERMISSION;
    }
    if (trusted_uid(uid))
        return MMAPIO_OK;
    snprintf(why, size,
             "socket %s: its daemon runs as uid %u, neither root, you nor "
             "the service's user", path, (unsigned)uid);
    return MMAPIO_E_PERMISSION;
}

int trust_socket(int fd, const char *path, char *why, size_t why_size)
{
    char dir_why[256];

    if (sockdir_check(path, trusted_uid, dir_why, sizeof(dir_why)) < 0) {
        snprintf(why, why_size, "untrusted %s", dir_why);
        return MMAPIO_E_PERMISSION;
    }
    return check_peer(fd, path, why, why_size);
}
