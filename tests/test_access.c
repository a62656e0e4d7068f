/*
 * test_access: the daemon's one access decision (daemon/access.c), a pure
 * function of the peer's credentials and a file's owner, group and mode,
 * with Unix semantics: exactly one class (owner, else group, else other)
 * decides; uid 0 may do anything.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "access.h"
#include "mmapio.h"

TestSuite(access, .timeout = 10);

enum { OWNER = 1000, GROUP = 2000, OTHER_UID = 3000, OTHER_GID = 4000 };
#define RW (ACCESS_READ | ACCESS_WRITE)

static struct peer_cred cred(uid_t uid, gid_t gid)
{
    struct peer_cred c;
    memset(&c, 0, sizeof(c));
    c.pid = 1234;
    c.uid = uid;
    c.gid = gid;
    return c;
}

static void expect(const struct peer_cred *c, mode_t mode, int want,
                   int result)
{
    int got = access_check(c, OWNER, GROUP, mode, want);
    cr_assert_eq(got, result,
                 "uid %d gid %d mode %04o want %d: got %d, expected %d",
                 (int)c->uid, (int)c->gid, (unsigned)mode, want, got,
                 result);
}

Test(access, flag_values)
{
    cr_assert_eq(ACCESS_READ, 4);
    cr_assert_eq(ACCESS_WRITE, 2);
}

Test(access, owner_class)
{
    struct peer_cred c = cred(OWNER, OTHER_GID);
    expect(&c, 0600, ACCESS_READ, MMAPIO_OK);
    expect(&c, 0600, RW, MMAPIO_OK);
    expect(&c, 0400, ACCESS_READ, MMAPIO_OK);
    expect(&c, 0400, ACCESS_WRITE, MMAPIO_E_PERMISSION);
    expect(&c, 0400, RW, MMAPIO_E_PERMISSION);
    expect(&c, 0200, ACCESS_WRITE, MMAPIO_OK);
    expect(&c, 0200, ACCESS_READ, MMAPIO_E_PERMISSION);
    /* The owner class decides alone, even when others may do more. */
    expect(&c, 0077, ACCESS_READ, MMAPIO_E_PERMISSION);
    expect(&c, 0066, ACCESS_WRITE, MMAPIO_E_PERMISSION);
    /* Owner match wins over a group match. */
    c.gid = GROUP;
    expect(&c, 0060, ACCESS_READ, MMAPIO_E_PERMISSION);
}

Test(access, group_class_primary)
{
    struct peer_cred c = cred(OTHER_UID, GROUP);
    expect(&c, 0640, ACCESS_READ, MMAPIO_OK);
    expect(&c, 0640, ACCESS_WRITE, MMAPIO_E_PERMISSION);
    expect(&c, 0660, RW, MMAPIO_OK);
    expect(&c, 0606, ACCESS_READ, MMAPIO_E_PERMISSION); /* other ignored */
    expect(&c, 0700, ACCESS_READ, MMAPIO_E_PERMISSION);
}

Test(access, group_class_supplementary)
{
    struct peer_cred c = cred(OTHER_UID, OTHER_GID);
    c.n_groups = 3;
    c.groups[0] = 1;
    c.groups[1] = 2;
    c.groups[2] = GROUP;
    expect(&c, 0640, ACCESS_READ, MMAPIO_OK);
    expect(&c, 0604, ACCESS_READ, MMAPIO_E_PERMISSION);
    expect(&c, 0620, ACCESS_WRITE, MMAPIO_OK);
    /* A group past n_groups is not one of the peer's groups. */
    c.n_groups = 2;
    expect(&c, 0640, ACCESS_READ, MMAPIO_E_PERMISSION);
    expect(&c, 0604, ACCESS_READ, MMAPIO_OK); /* now it is "other" */
}

Test(access, group_at_end_of_full_list)
{
    struct peer_cred c = cred(OTHER_UID, OTHER_GID);
    c.n_groups = 64;
    for (size_t i = 0; i < 64; i++)
        c.groups[i] = (gid_t)(10 + i);
    expect(&c, 0640, ACCESS_READ, MMAPIO_E_PERMISSION);
    c.groups[63] = GROUP;
    expect(&c, 0640, ACCESS_READ, MMAPIO_OK);
}

Test(access, other_class)
{
    struct peer_cred c = cred(OTHER_UID, OTHER_GID);
    expect(&c, 0604, ACCESS_READ, MMAPIO_OK);
    expect(&c, 0604, ACCESS_WRITE, MMAPIO_E_PERMISSION);
    expect(&c, 0606, RW, MMAPIO_OK);
    expect(&c, 0660, ACCESS_READ, MMAPIO_E_PERMISSION);
    expect(&c, 0600, ACCESS_READ, MMAPIO_E_PERMISSION);
    expect(&c, 0002, ACCESS_WRITE, MMAPIO_OK);
    expect(&c, 0002, RW, MMAPIO_E_PERMISSION);
}

Test(access, type_bits_ignored)
{
    struct peer_cred c = cred(OTHER_UID, OTHER_GID);
    expect(&c, 0100604, ACCESS_READ, MMAPIO_OK);     /* S_IFREG | 0604 */
    expect(&c, 0100600, ACCESS_READ, MMAPIO_E_PERMISSION);
}

Test(access, root_always_allowed)
{
    struct peer_cred c = cred(0, 0);
    expect(&c, 0000, ACCESS_READ, MMAPIO_OK);
    expect(&c, 0000, RW, MMAPIO_OK);
    expect(&c, 0400, RW, MMAPIO_OK);
}

Test(access, gid_zero_is_not_root)
{
    struct peer_cred c = cred(OTHER_UID, 0);
    expect(&c, 0600, ACCESS_READ, MMAPIO_E_PERMISSION);
}
