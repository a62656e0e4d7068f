/* access: permission decisions from peer credentials (see access.h). */
#include "access.h"

#include <errno.h>
#include <string.h>

#include "mmapio.h"

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
