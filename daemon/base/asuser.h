/*
 * asuser: the calling thread acts as a peer for file-system access, so
 * that the kernel itself decides what the peer may open — mode bits,
 * POSIX ACLs, security modules, sticky directories — and files it creates
 * are born the peer's.
 *
 * Only the calling thread's file-system identity changes (fsuid, fsgid,
 * supplementary groups, and the file capabilities of its effective set),
 * through raw system calls: glibc's setgroups would change every thread of
 * the process. asuser_enter and asuser_leave come in pairs around a few
 * system calls, never across a return to the event loop.
 *
 * It needs CAP_SETUID and CAP_SETGID (root has them; the systemd unit
 * keeps them in its bounding set). Without them asuser_works() is false and
 * callers fall back to deciding from mode bits themselves.
 */
#ifndef MMAPIOD_ASUSER_H
#define MMAPIOD_ASUSER_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "access.h"

#define ASUSER_MAX_OWN_GROUPS 256

struct asuser_saved {
    uid_t fsuid;
    gid_t fsgid;
    int n_groups;
    gid_t groups[ASUSER_MAX_OWN_GROUPS];
    bool caps_dropped;
    uint32_t eff[2];            /* effective capabilities before */
};

/* Whether this process can act as another uid (probed once). */
bool asuser_works(void);

/* The calling thread becomes `who` for file access. 0, or -errno with
 * nothing changed: -E2BIG when who's groups are not all known
 * (more than ACCESS_MAX_GROUPS), -EPERM when the process may not. */
int asuser_enter(const struct peer_cred *who, struct asuser_saved *saved);
/* Back to the daemon's own identity. Aborts if the kernel refuses: a
 * thread stuck as a peer must not go on serving others. */
void asuser_leave(const struct asuser_saved *saved);

#endif
