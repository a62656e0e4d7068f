/*
 * test_resolve: the daemon's lexical checks of client paths and anonymous
 * names (daemon/resolve.c), before any file system is touched.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "errmap.h"
#include "mmapio.h"
#include "resolve.h"

TestSuite(resolve, .timeout = 10);

static void expect_path(const char *p, int want)
{
    int got = resolve_check_path(p);
    cr_assert_eq(got, want, "resolve_check_path(\"%s\") = %d (%s), want %d",
                 p ? p : "(null)", got, errmap_text(got), want);
}

static void expect_name(const char *n, int want)
{
    int got = resolve_check_name(n);
    cr_assert_eq(got, want, "resolve_check_name(\"%s\") = %d, want %d",
                 n ? n : "(null)", got, want);
}

Test(resolve, relative_paths_ok)
{
    const char *ok[] = { "a", "dir/b.dat", "a/b/c/d", "file.with.dots",
                         "..hidden", "a/...", "...", ".x", "x..", "a b",
                         "a/..b/c" };
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++)
        expect_path(ok[i], MMAPIO_OK);
}

Test(resolve, escapes_are_permission_errors)
{
    const char *bad[] = { "/etc/passwd", "/", "/a", "..", "../x",
                          "a/../../x", "a/..", "a/../b", "a/b/../../..",
                          "../../../../etc/shadow" };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        expect_path(bad[i], MMAPIO_E_PERMISSION);
}

Test(resolve, the_daemons_own_directory_is_out_of_reach)
{
    const char *bad[] = { ".mmapiod", ".mmapiod/anon.state",
                          ".mmapiod/anon.state.tmp", ".mmapiod/x/y" };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        expect_path(bad[i], MMAPIO_E_PERMISSION);
    expect_path(".mmapiodx", MMAPIO_OK);
    expect_path("a/.mmapiod", MMAPIO_OK);
}

Test(resolve, malformed_paths_are_invalid)
{
    const char *bad[] = { "", "a//b", "a/", "dir/b.dat/", ".", "./a",
                          "a/./b", "a/.", "//" };
    expect_path(NULL, MMAPIO_E_INVALID_ARGUMENT);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        /* "//" is absolute: either refusal is fine, acceptance is not */
        if (strcmp(bad[i], "//") == 0) {
            cr_assert_neq(resolve_check_path(bad[i]), MMAPIO_OK);
            continue;
        }
        expect_path(bad[i], MMAPIO_E_INVALID_ARGUMENT);
    }
}

Test(resolve, path_length_limit)
{
    static char p[4097];
    /* 4095 bytes of "a/a/.../a" is fine ... */
    for (size_t i = 0; i < 4095; i++)
        p[i] = (i % 2) ? '/' : 'a';
    p[4095] = '\0';
    cr_assert_eq(strlen(p), 4095);
    expect_path(p, MMAPIO_OK);
    /* ... 4096 is not. */
    p[4095] = 'b'; /* "a/…/ab": still well formed, only too long */
    p[4096] = '\0';
    expect_path(p, MMAPIO_E_INVALID_ARGUMENT);
}

Test(resolve, names)
{
    static char n[300];
    expect_name("counter", MMAPIO_OK);
    expect_name("a", MMAPIO_OK);
    expect_name("with space and.dots", MMAPIO_OK);
    expect_name("...", MMAPIO_OK);
    expect_name(NULL, MMAPIO_E_INVALID_ARGUMENT);
    expect_name("", MMAPIO_E_INVALID_ARGUMENT);
    expect_name(".", MMAPIO_E_INVALID_ARGUMENT);
    expect_name("..", MMAPIO_E_INVALID_ARGUMENT);
    expect_name("a/b", MMAPIO_E_INVALID_ARGUMENT);
    expect_name("/", MMAPIO_E_INVALID_ARGUMENT);
    expect_name("../x", MMAPIO_E_INVALID_ARGUMENT);

    memset(n, 'n', 255);
    n[255] = '\0';
    expect_name(n, MMAPIO_OK);
    n[255] = 'n';
    n[256] = '\0';
    expect_name(n, MMAPIO_E_INVALID_ARGUMENT);
}
