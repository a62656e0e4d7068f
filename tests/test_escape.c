/*
 * test_escape: no request reaches outside the data root. `..` leading out,
 * absolute paths and symlinks inside the root that lead out (to a file or
 * a directory) are MMAPIO_E_PERMISSION, and the outside stays untouched.
 *
 * Targets outside the root are files of the test's own temporary
 * directory, never system files: a broken daemon must not be able to
 * damage the machine running the tests. /etc/passwd is only ever opened
 * read-only.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "harness.h"

TestSuite(escape, .init = hz_setup, .fini = hz_teardown, .timeout = 60);

static const char SECRET[] = "outside the root";
static char outside[300], outdir[300];
static mmapio_client *c;

static void prepare(void)
{
    snprintf(outside, sizeof(outside), "%s/outside.txt", hz.dir);
    snprintf(outdir, sizeof(outdir), "%s/outdir", hz.dir);
    cr_assert_eq(hz_write_file(outside, SECRET, sizeof(SECRET)), 0);
    cr_assert_eq(mkdir(outdir, 0755), 0);
    c = hz_client();
}

static void expect_outside_untouched(void)
{
    char buf[64];
    long n = hz_read_file(outside, buf, sizeof(buf));
    cr_assert_eq(n, (long)sizeof(SECRET), "outside file changed size");
    cr_assert_eq(memcmp(buf, SECRET, sizeof(SECRET)), 0,
                 "outside file changed");
}

/*
 * Every way of opening `path` is refused with MMAPIO_E_PERMISSION, and so
 * is deleting it, unless `link_itself` says the last component is a
 * symlink inside the root: deleting that removes the link (like rm), which
 * is no escape; what it points to must survive.
 */
static void expect_refused_but(const char *path, bool link_itself)
{
    mmapio_map *m = (mmapio_map *)0x1;
    int r;
    r = mmapio_open_ro(c, path, &m);
    cr_assert_eq(r, MMAPIO_E_PERMISSION, "open_ro(\"%s\") = %d (%s)", path,
                 r, mmapio_strerror(r));
    r = mmapio_open_cow(c, path, &m);
    cr_assert_eq(r, MMAPIO_E_PERMISSION, "open_cow(\"%s\") = %d", path, r);
    r = mmapio_open_rw(c, path, &m);
    cr_assert_eq(r, MMAPIO_E_PERMISSION, "open_rw(\"%s\") = %d", path, r);
    r = mmapio_create_rw(c, path, 4096, &m);
    cr_assert_eq(r, MMAPIO_E_PERMISSION, "create_rw(\"%s\") = %d", path, r);
    r = mmapio_open_or_create(c, path, 4096, &m);
    cr_assert_eq(r, MMAPIO_E_PERMISSION, "open_or_create(\"%s\") = %d",
                 path, r);
    r = mmapio_delete(c, path);
    if (link_itself)
        cr_assert(r == MMAPIO_OK || r == MMAPIO_E_PERMISSION,
                  "delete(\"%s\") = %d", path, r);
    else
        cr_assert_eq(r, MMAPIO_E_PERMISSION, "delete(\"%s\") = %d", path,
                     r);
    cr_assert_eq(m, (mmapio_map *)0x1);
    expect_outside_untouched();
}

static void expect_refused(const char *path)
{
    expect_refused_but(path, false);
}

Test(escape, dotdot)
{
    prepare();
    expect_refused("../outside.txt");
    expect_refused("../newfile");
    expect_refused("a/../../outside.txt");
    expect_refused("../root/../outside.txt");
    /* nothing was created next to the root */
    cr_assert_eq(hz_file_size(hz_path(&hz, "../newfile")), -ENOENT);
    mmapio_disconnect(c);
}

Test(escape, absolute)
{
    prepare();
    expect_refused(outside);
    mmapio_map *m = (mmapio_map *)0x1;
    hz_assert_ret(mmapio_open_ro(c, "/etc/passwd", &m), MMAPIO_E_PERMISSION);
    hz_assert_ret(mmapio_open_ro(c, "/", &m), MMAPIO_E_PERMISSION);
    /* an absolute path to a file inside the root is still absolute */
    cr_assert_eq(hz_write_file(hz_path(&hz, "inside"), "x", 1), 0);
    hz_assert_ret(mmapio_open_ro(c, hz_path(&hz, "inside"), &m),
                  MMAPIO_E_PERMISSION);
    cr_assert_eq(m, (mmapio_map *)0x1);
    mmapio_disconnect(c);
}

Test(escape, symlink_to_outside_file)
{
    prepare();
    cr_assert_eq(symlink(outside, hz_path(&hz, "abs-link")), 0);
    cr_assert_eq(symlink("../outside.txt", hz_path(&hz, "rel-link")), 0);
    expect_refused_but("abs-link", true);
    expect_refused_but("rel-link", true);
    mmapio_disconnect(c);
}

Test(escape, symlink_to_etc_passwd)
{
    prepare();
    cr_assert_eq(symlink("/etc/passwd", hz_path(&hz, "passwd")), 0);
    mmapio_map *m = (mmapio_map *)0x1;
    hz_assert_ret(mmapio_open_ro(c, "passwd", &m), MMAPIO_E_PERMISSION);
    hz_assert_ret(mmapio_open_cow(c, "passwd", &m), MMAPIO_E_PERMISSION);
    cr_assert_eq(m, (mmapio_map *)0x1);
    mmapio_disconnect(c);
}

Test(escape, symlink_to_outside_directory)
{
    prepare();
    cr_assert_eq(symlink(outdir, hz_path(&hz, "dirlink")), 0);
    cr_assert_eq(mkdir(hz_path(&hz, "sub"), 0755), 0);
    cr_assert_eq(symlink("../../outdir", hz_path(&hz, "sub/up")), 0);
    char victim[400];
    snprintf(victim, sizeof(victim), "%s/victim", outdir);
    cr_assert_eq(hz_write_file(victim, SECRET, sizeof(SECRET)), 0);

    expect_refused("dirlink/victim");
    expect_refused("dirlink/new");
    expect_refused("sub/up/victim");
    expect_refused("sub/up/new");

    char newf[400];
    snprintf(newf, sizeof(newf), "%s/new", outdir);
    cr_assert_eq(hz_file_size(newf), -ENOENT, "file created outside");
    char buf[64];
    cr_assert_eq(hz_read_file(victim, buf, sizeof(buf)), (long)sizeof(SECRET));
    cr_assert_eq(memcmp(buf, SECRET, sizeof(SECRET)), 0);
    mmapio_disconnect(c);
}

Test(escape, symlink_via_proc_magic_link)
{
    prepare();
    char target[400];
    snprintf(target, sizeof(target), "/proc/self/root%s", outside);
    cr_assert_eq(symlink(target, hz_path(&hz, "magic")), 0);
    cr_assert_eq(symlink("/proc/self/cwd", hz_path(&hz, "cwd")), 0);
    expect_refused_but("magic", true);
    mmapio_map *m = (mmapio_map *)0x1;
    hz_assert_ret(mmapio_open_ro(c, "cwd/etc/passwd", &m),
                  MMAPIO_E_PERMISSION);
    cr_assert_eq(m, (mmapio_map *)0x1);
    mmapio_disconnect(c);
}

Test(escape, symlink_inside_root_is_followed)
{
    /* A relative symlink that stays beneath the root is no escape. */
    prepare();
    cr_assert_eq(hz_write_file(hz_path(&hz, "target.dat"), "inside!", 7), 0);
    cr_assert_eq(symlink("target.dat", hz_path(&hz, "good-link")), 0);
    mmapio_map *m;
    int r = mmapio_open_ro(c, "good-link", &m);
    cr_assert_eq(r, MMAPIO_OK, "in-root symlink refused: %s",
                 mmapio_strerror(r));
    cr_assert_eq(mmapio_len(m), 7);
    cr_assert_eq(memcmp(mmapio_as_ptr(m), "inside!", 7), 0);
    mmapio_unmap(m);
    mmapio_disconnect(c);
}

Test(escape, daemon_still_serves_after_refusals)
{
    prepare();
    expect_refused("../outside.txt");
    mmapio_map *m;
    hz_assert_ok(mmapio_create_rw(c, "fine", 4096, &m));
    hz_assert_ok(mmapio_ping(c));
    mmapio_unmap(m);
    mmapio_disconnect(c);
}
