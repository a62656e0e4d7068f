/*
 * test_names: the rule for names and paths (common/names.c): valid UTF-8
 * without control characters, and the \xNN escaping of anything else;
 * the daemon's lexical checks (daemon/base/resolve.c) applying it; and
 * the rule for a socket's directory (common/sockdir.c).
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mmapio.h"
#include "names.h"
#include "resolve.h"
#include "sockdir.h"

TestSuite(names, .timeout = 10);

static void expect_valid(const char *s, bool want)
{
    char shown[256];
    names_escape(s, shown, sizeof(shown));
    cr_assert_eq(names_valid(s), want, "names_valid(\"%s\") should be %s",
                 shown, want ? "true" : "false");
}

Test(names, plain_and_unicode_are_valid)
{
    const char *ok[] = {
        "", "counter", "a b", "dir/file.bin", "~!@#$%^&*()_+`-={}[]|\\:;'<>?,.",
        "caf\xc3\xa9",                 /* é, 2 bytes */
        "\xe2\x82\xac",                /* €, 3 bytes */
        "\xf0\x9f\x98\x80",            /* 😀, 4 bytes */
        "\xc2\xa0",                    /* U+00A0, just past C1 */
        "\xed\x9f\xbf",                /* U+D7FF, before the surrogates */
        "\xee\x80\x80",                /* U+E000, after them */
        "\xf4\x8f\xbf\xbf",            /* U+10FFFF, the last */
        "\xef\xbf\xbd",                /* U+FFFD */
    };
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++)
        expect_valid(ok[i], true);
    cr_assert(!names_valid(NULL));
}

Test(names, controls_are_refused)
{
    const char *bad[] = {
        "a\nb", "evil\n1  anon:x  4096", "\x1b[31mred", "tab\there",
        "\r", "\x01", "\x1f", "del\x7f",
        "\xc2\x80", "\xc2\x85", "c1\xc2\x9b[2J", "\xc2\x9f", /* C1 */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        expect_valid(bad[i], false);
}

Test(names, broken_utf8_is_refused)
{
    const char *bad[] = {
        "\x80", "a\xbf", "\xc3", "\xc3x", "\xe2\x82", "\xf0\x9f\x98",
        "\xc0\xaf", "\xc1\xbf",        /* overlong '/' and DEL */
        "\xe0\x80\xaf",                /* overlong, 3 bytes */
        "\xf0\x80\x80\xaf",            /* overlong, 4 bytes */
        "\xed\xa0\x80", "\xed\xbf\xbf",/* surrogates */
        "\xf4\x90\x80\x80",            /* past U+10FFFF */
        "\xf5\x80\x80\x80", "\xfe", "\xff",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        expect_valid(bad[i], false);
}

Test(names, escape_shows_odd_bytes_as_hex)
{
    char out[64];
    cr_assert_str_eq(names_escape("plain", out, sizeof(out)), "plain");
    cr_assert_str_eq(names_escape("a\nb", out, sizeof(out)), "a\\x0ab");
    cr_assert_str_eq(names_escape("\x1b[31m", out, sizeof(out)), "\\x1b[31m");
    cr_assert_str_eq(names_escape("x\xc2\x9by", out, sizeof(out)), "x\\xc2\\x9by");
    cr_assert_str_eq(names_escape("\xff\xfe", out, sizeof(out)), "\\xff\\xfe");
    cr_assert_str_eq(names_escape("caf\xc3\xa9", out, sizeof(out)), "caf\xc3\xa9");
    cr_assert_str_eq(names_escape(NULL, out, sizeof(out)), "");
    /* whatever goes in, what comes out passes the rule */
    names_escape("\x01\x7f\xc0\xaf\xed\xa0\x80ok", out, sizeof(out));
    cr_assert(names_valid(out), "%s", out);
}

Test(names, escape_cuts_between_characters)
{
    char out[6];
    /* "ab" + \x0a needs 7 bytes with the NUL: the escape is left out */
    cr_assert_str_eq(names_escape("ab\ncd", out, sizeof(out)), "ab");
    /* a 4-byte character that does not fit whole is left out */
    cr_assert_str_eq(names_escape("abc\xf0\x9f\x98\x80", out, sizeof(out)), "abc");
    cr_assert_str_eq(names_escape("abcde", out, sizeof(out)), "abcde");
    char one[1] = { 'x' };
    cr_assert_str_eq(names_escape("abc", one, sizeof(one)), "");
}

Test(names, daemon_checks_apply_the_rule)
{
    cr_assert_eq(resolve_check_name("counter"), MMAPIO_OK);
    cr_assert_eq(resolve_check_name("caf\xc3\xa9"), MMAPIO_OK);
    cr_assert_eq(resolve_check_name("a\nb"), MMAPIO_E_INVALID_ARGUMENT);
    cr_assert_eq(resolve_check_name("\x1b[2J"), MMAPIO_E_INVALID_ARGUMENT);
    cr_assert_eq(resolve_check_name("\xff"), MMAPIO_E_INVALID_ARGUMENT);
    cr_assert_eq(resolve_check_name("x\xc2\x85"), MMAPIO_E_INVALID_ARGUMENT);
    cr_assert_eq(resolve_check_path("dir/caf\xc3\xa9.bin"), MMAPIO_OK);
    cr_assert_eq(resolve_check_path("dir/a\nb"), MMAPIO_E_INVALID_ARGUMENT);
    cr_assert_eq(resolve_check_path("d\x1b[1m/x"), MMAPIO_E_INVALID_ARGUMENT);
    cr_assert_eq(resolve_check_path("a/\xc0\xae\xc0\xae/x"), MMAPIO_E_INVALID_ARGUMENT);
    cr_assert_eq(resolve_check_path("del\x7f"), MMAPIO_E_INVALID_ARGUMENT);
    /* an escape still wins over any other fault */
    cr_assert_eq(resolve_check_path("../a\nb"), MMAPIO_E_PERMISSION);
}

/* ---- the socket directory rule (common/sockdir.c) -------------------- */

#define TRUSTED 4242 /* besides root, for these cases */

static bool trust_4242(uid_t uid)
{
    return uid == 0 || uid == TRUSTED;
}

static char base[64];

static void sockdir_init(void)
{
    if (geteuid() != 0)
        cr_skip_test("needs root, to give directories away");
    snprintf(base, sizeof(base), "/tmp/mmapio-sockdir-XXXXXX");
    cr_assert_not_null(mkdtemp(base));
}

static void sockdir_fini(void)
{
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", base);
    if (base[0])
        (void)!system(cmd);
}

/* base/rel made with owner and mode; the socket path inside it. */
static const char *dir_with(const char *rel, uid_t uid, mode_t mode)
{
    static char sock[256];
    char dir[200];
    snprintf(dir, sizeof(dir), "%s/%s", base, rel);
    cr_assert_eq(mkdir(dir, 0700), 0, "%s: %s", dir, strerror(errno));
    cr_assert_eq(chown(dir, uid, uid), 0);
    cr_assert_eq(chmod(dir, mode), 0);
    snprintf(sock, sizeof(sock), "%s/s.sock", dir);
    return sock;
}

static void expect_dir(const char *sock, int want, const char *needle)
{
    char why[256] = "";
    int got = sockdir_check(sock, trust_4242, why, sizeof(why));
    cr_assert_eq(got, want, "%s: %d, want %d (%s)", sock, got, want, why);
    if (needle)
        cr_assert(strstr(why, needle), "%s: reason %s", sock, why);
}

Test(names, sockdir_of_a_path)
{
    char d[64];
    cr_assert_eq(sockdir_of("/run/mmapio/mmapiod.sock", d, sizeof(d)), 0);
    cr_assert_str_eq(d, "/run/mmapio");
    cr_assert_eq(sockdir_of("/x.sock", d, sizeof(d)), 0);
    cr_assert_str_eq(d, "/");
    cr_assert_eq(sockdir_of("x.sock", d, sizeof(d)), 0);
    cr_assert_str_eq(d, ".");
    cr_assert_eq(sockdir_of("/a/long/dir/x", d, 4), -ENAMETOOLONG);
}

Test(names, sockdir_rule, .init = sockdir_init, .fini = sockdir_fini)
{
    expect_dir(dir_with("own0700", TRUSTED, 0700), 0, NULL);
    expect_dir(dir_with("own0755", TRUSTED, 0755), 0, NULL);
    expect_dir(dir_with("root0755", 0, 0755), 0, NULL);
    expect_dir(dir_with("rootsticky", 0, 01777), 0, NULL);
    expect_dir(dir_with("theirs", 65534, 0700), -EPERM, "belongs to uid 65534");
    expect_dir(dir_with("own0775", TRUSTED, 0775), -EPERM, "written by others");
    expect_dir(dir_with("own0777", TRUSTED, 0777), -EPERM, "written by others");
    expect_dir(dir_with("ownsticky", TRUSTED, 01777), -EPERM, "written by others");
    expect_dir(dir_with("root0770", 0, 0770), -EPERM, "written by others");

    /* a symbolic link as the last component: its owner must be trusted */
    char link[200], target[200];
    snprintf(target, sizeof(target), "%s/own0700", base);
    snprintf(link, sizeof(link), "%s/theirlink", base);
    cr_assert_eq(symlink(target, link), 0);
    cr_assert_eq(lchown(link, 65534, 65534), 0);
    expect_dir(strcat(link, "/s.sock"), -EPERM, "symbolic link of uid 65534");
    snprintf(link, sizeof(link), "%s/ourlink", base);
    cr_assert_eq(symlink(target, link), 0);
    expect_dir(strcat(link, "/s.sock"), 0, NULL);

    char missing[200];
    snprintf(missing, sizeof(missing), "%s/none/s.sock", base);
    expect_dir(missing, -ENOENT, "none");
}
