/*
 * peercred: who is at the other end of a connected local socket, as the
 * kernel recorded it at connect() (never what the peer says). One
 * implementation per platform (platform/<system>/peercred.c, chosen by meson).
 */
#ifndef MMAPIOD_PEERCRED_H
#define MMAPIOD_PEERCRED_H

#include <stdbool.h>
#include <stddef.h>
#include "ptypes.h" /* pid_t, uid_t, gid_t: platform/<system>/ */

#define PEER_MAX_GROUPS 64

struct peer_cred {
    pid_t pid;
    uid_t uid;
    gid_t gid;
    size_t n_groups;
    bool groups_unknown;       /* more groups than we could read */
    gid_t groups[PEER_MAX_GROUPS];
};

/* Fills *out for the connected socket `sock`: 0 or -errno. The
 * supplementary groups are best effort: when they cannot be read (more
 * than PEER_MAX_GROUPS, or the platform does not say), groups_unknown is
 * set and n_groups is 0. */
int peer_identity(int sock, struct peer_cred *out);

#endif
