/*
 * access: every permission decision of the daemon, as pure functions of the
 * peer's kernel-given credentials and an object's owner, group and mode.
 * Nothing here trusts what a client says about itself.
 */
#ifndef MMAPIOD_ACCESS_H
#define MMAPIOD_ACCESS_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "peercred.h" /* struct peer_cred, peer_identity */

#define ACCESS_MAX_GROUPS PEER_MAX_GROUPS

enum { ACCESS_READ = 4, ACCESS_WRITE = 2, ACCESS_EXEC = 1 };

/* MMAPIO_OK or MMAPIO_E_PERMISSION, by the Unix owner/group/other rule;
 * uid 0 may do anything. */
int access_check(const struct peer_cred *who, uid_t owner, gid_t group,
                 mode_t mode, int want);

/* Root, or a member of the admin group (when one is configured): may see
 * and change every mapping and connection. */
bool access_is_admin(const struct peer_cred *who, bool has_group, gid_t group);

/* May `who` act as the owner of an object owned by `owner` (delete it,
 * change its policy)? */
int access_is_owner(const struct peer_cred *who, uid_t owner);

#endif
