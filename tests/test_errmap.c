/*
 * test_errmap: errno -> mmapio_err, the text of every mmapio_err
 * (common/errmap.c) and the library's mmapio_strerror built on it.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <errno.h>
#include <limits.h>
#include <string.h>

#include "errmap.h"
#include "mmapio.h"

TestSuite(errmap, .timeout = 10);

Test(errmap, errno_values)
{
    static const struct {
        int e, want;
    } cases[] = {
        { 0, MMAPIO_OK },
        { ENOENT, MMAPIO_E_NOT_FOUND },
        { ENOTDIR, MMAPIO_E_NOT_FOUND },
        { EEXIST, MMAPIO_E_EXISTS },
        { EACCES, MMAPIO_E_PERMISSION },
        { EPERM, MMAPIO_E_PERMISSION },
        { EXDEV, MMAPIO_E_PERMISSION },   /* RESOLVE_BENEATH escape */
        { ELOOP, MMAPIO_E_PERMISSION },   /* O_NOFOLLOW on a symlink */
        { EINVAL, MMAPIO_E_INVALID_ARGUMENT },
        { ENAMETOOLONG, MMAPIO_E_INVALID_ARGUMENT },
        { EBUSY, MMAPIO_E_BUSY },
        { ENOSPC, MMAPIO_E_QUOTA },
        { EMFILE, MMAPIO_E_QUOTA },
        { EPIPE, MMAPIO_E_DISCONNECTED },
        { ECONNRESET, MMAPIO_E_DISCONNECTED },
        { ECONNREFUSED, MMAPIO_E_DISCONNECTED },
        { EBADMSG, MMAPIO_E_PROTOCOL },
        { EMSGSIZE, MMAPIO_E_PROTOCOL },
        { ETIMEDOUT, MMAPIO_E_TIMED_OUT },
        { EIO, MMAPIO_E_IO },
        { EDOM, MMAPIO_E_IO },            /* anything unlisted */
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        cr_assert_eq(errmap_from_errno(cases[i].e), cases[i].want,
                     "errno %d -> %d, want %d", cases[i].e,
                     errmap_from_errno(cases[i].e), cases[i].want);
        /* The sign of the errno does not matter. */
        cr_assert_eq(errmap_from_errno(-cases[i].e), cases[i].want);
    }
}

Test(errmap, every_code_has_its_own_text)
{
    const char *seen[32] = { 0 };
    for (int e = MMAPIO_OK; e >= MMAPIO_E_TIMED_OUT; e--) {
        cr_assert(errmap_valid(e), "%d should be valid", e);
        const char *t = errmap_text(e);
        cr_assert_not_null(t);
        cr_assert_gt(strlen(t), 3);
        cr_assert_str_neq(t, "unknown error", "code %d has no text", e);
        for (int j = 0; j < -e; j++)
            cr_assert_str_neq(t, seen[j], "codes %d and %d share a text", e,
                              -j);
        seen[-e] = t;
    }
}

Test(errmap, unknown_codes)
{
    const int bad[] = { 1, 42, MMAPIO_E_TIMED_OUT - 1, -1000, INT_MIN,
                        INT_MAX };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        cr_assert_not(errmap_valid(bad[i]), "%d should be invalid", bad[i]);
        cr_assert_str_eq(errmap_text(bad[i]), "unknown error");
    }
}

Test(errmap, library_strerror_agrees)
{
    for (int e = MMAPIO_OK; e >= MMAPIO_E_TIMED_OUT; e--)
        cr_assert_str_eq(mmapio_strerror(e), errmap_text(e));
    cr_assert_not_null(mmapio_strerror(12345));
    cr_assert_not_null(mmapio_strerror(INT_MIN));
    cr_assert_gt(strlen(mmapio_strerror(INT_MIN)), 0);
}
