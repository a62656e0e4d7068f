/* asuser: acting as a peer for file access, one thread (see asuser.h). */
#include "asuser.h"

#include <errno.h>
#include <linux/capability.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "log.h"

/* The capabilities that override file permissions: the kernel drops them
 * from the effective set when fsuid leaves 0, not when a non-root daemon
 * (one given these capabilities) changes fsuid. */
#define FS_CAPS ((1u << CAP_CHOWN) | (1u << CAP_DAC_OVERRIDE) |         \
                 (1u << CAP_DAC_READ_SEARCH) | (1u << CAP_FOWNER) |     \
                 (1u << CAP_FSETID) | (1u << CAP_LINUX_IMMUTABLE) |     \
                 (1u << CAP_MKNOD))
#define FS_CAPS_HI (1u << (CAP_MAC_OVERRIDE - 32))

static long set_fsuid(uid_t u) { return syscall(SYS_setfsuid, u); }
static long set_fsgid(gid_t g) { return syscall(SYS_setfsgid, g); }

static int set_groups(size_t n, const gid_t *g)
{
    return syscall(SYS_setgroups, n, g) < 0 ? -errno : 0;
}

static int caps(struct __user_cap_data_struct d[2], bool set)
{
    struct __user_cap_header_struct h = {
        .version = _LINUX_CAPABILITY_VERSION_3, .pid = 0,
    };
    long r = set ? syscall(SYS_capset, &h, d) : syscall(SYS_capget, &h, d);
    return r < 0 ? -errno : 0;
}

/* Drops the file capabilities from the thread's effective set. */
static int drop_fs_caps(struct asuser_saved *sv)
{
    struct __user_cap_data_struct d[2];
    int r = caps(d, false);
    if (r < 0)
        return r;
    sv->eff[0] = d[0].effective;
    sv->eff[1] = d[1].effective;
    if (!(d[0].effective & FS_CAPS) && !(d[1].effective & FS_CAPS_HI))
        return 0;
    d[0].effective &= ~FS_CAPS;
    d[1].effective &= ~FS_CAPS_HI;
    r = caps(d, true);
    sv->caps_dropped = r == 0;
    return r;
}

static void restore_caps(const struct asuser_saved *sv)
{
    struct __user_cap_data_struct d[2];
    if (!sv->caps_dropped)
        return;
    if (caps(d, false) < 0)
        abort();
    d[0].effective = sv->eff[0];
    d[1].effective = sv->eff[1];
    if (caps(d, true) < 0)
        abort();
}

int asuser_enter(const struct peer_cred *who, struct asuser_saved *sv)
{
    if (who->groups_unknown)
        return -E2BIG;
    sv->caps_dropped = false;
    sv->n_groups = getgroups(ASUSER_MAX_OWN_GROUPS, sv->groups);
    if (sv->n_groups < 0)
        return -errno;
    int r = set_groups(who->n_groups, who->groups);
    if (r < 0)
        return r;
    sv->fsgid = (gid_t)set_fsgid(who->gid);
    sv->fsuid = (uid_t)set_fsuid(who->uid);
    /* setfs[ug]id answer the old value even when they refuse. */
    if ((gid_t)set_fsgid((gid_t)-1) != who->gid ||
        (uid_t)set_fsuid((uid_t)-1) != who->uid) {
        asuser_leave(sv);
        return -EPERM;
    }
    if (sv->fsuid != 0 && (r = drop_fs_caps(sv)) < 0) {
        asuser_leave(sv);
        return r;
    }
    return 0;
}

void asuser_leave(const struct asuser_saved *sv)
{
    restore_caps(sv);
    set_fsuid(sv->fsuid);
    set_fsgid(sv->fsgid);
    if ((uid_t)set_fsuid((uid_t)-1) != sv->fsuid ||
        (gid_t)set_fsgid((gid_t)-1) != sv->fsgid ||
        set_groups((size_t)sv->n_groups, sv->groups) < 0) {
        log_err("cannot return to the daemon's own identity");
        abort();
    }
}

bool asuser_works(void)
{
    static int works = -1;
    if (works < 0) {
        struct peer_cred probe = { .uid = 65534, .gid = 65534 };
        struct asuser_saved sv;
        works = asuser_enter(&probe, &sv) == 0;
        if (works)
            asuser_leave(&sv);
        else
            log_warn("cannot act as peers (no CAP_SETUID/CAP_SETGID): file "
                     "access is decided from mode bits only, not ACLs");
    }
    return works;
}
