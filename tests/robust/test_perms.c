/*
 * test_perms: permissions come from the peer's credentials (SO_PEERCRED).
 *
 * The test runs as root; forked children drop to uid/gid 65534 ("nobody",
 * no supplementary groups) or 65533 and talk to the same daemon. Files are
 * granted as their owner, group and mode bits allow (read-only and
 * copy-on-write need read, read-write and truncation need write), with
 * the owner's bits for the owner and the group's for a member even when
 * "other" would allow more. Anonymous mappings belong to their creator,
 * mode 0600 unless chosen at creation; only the owner (or root) deletes
 * one. Files created through the daemon belong to the caller, with the
 * mode asked for. Creating or deleting needs write and search permission
 * on the directory, and the sticky bit protects others' files; a file in
 * a directory the caller may not search is out of reach.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "robust.h"

#define OTHER_UID 65533

static void init(void)
{
    if (geteuid() != 0)
        cr_skip_test("needs root, to run children as two other uids");
    signal(SIGPIPE, SIG_IGN);
    int r = hz_init(&hz);
    cr_assert_eq(r, 0, "mkdtemp: %s", strerror(-r));
    cr_assert_eq(rb_share(&hz), 0);
    r = rb_start(&hz, NULL);
    cr_assert_eq(r, 0, "mmapiod did not come up: %s", strerror(-r));
    setenv("MMAPIO_SOCKET", hz.sock, 1);
}

TestSuite(perms, .init = init, .fini = hz_teardown, .timeout = 60);

/* ---- running as another uid ------------------------------------------ */

/* What a child reports: NULL (all well) or why not. */
typedef rb_as_fn as_fn;


/* Runs fn as uid:gid in a forked child connected to hz; asserts it
 * reported success. */
static void run_as(uid_t uid, gid_t gid, as_fn fn, void *arg)
{
    char why[600];
    cr_assert_eq(rb_run_as(hz.sock, uid, gid, fn, arg, why, sizeof(why)), 0,
                 "as uid %u: %s", (unsigned)uid, why);
}

static void as_nobody(as_fn fn, void *arg)
{
    run_as(RB_NOBODY, RB_NOBODY, fn, arg);
}

/* ---- files under the data root --------------------------------------- */

/* root places a file with content, owner and exact mode. */
static void place(const char *rel, const char *text, uid_t uid, gid_t gid,
                  mode_t mode)
{
    const char *path = hz_path(&hz, rel);
    cr_assert_eq(hz_write_file(path, text, strlen(text)), 0, "%s", path);
    cr_assert_eq(chown(path, uid, gid), 0);
    cr_assert_eq(chmod(path, mode), 0);
}

static void place_dir(const char *rel, uid_t uid, gid_t gid, mode_t mode)
{
    const char *path = hz_path(&hz, rel);
    cr_assert_eq(mkdir(path, 0700), 0, "%s: %s", path, strerror(errno));
    cr_assert_eq(chown(path, uid, gid), 0);
    cr_assert_eq(chmod(path, mode), 0);
}

static void expect_file(const char *rel, const char *text)
{
    char buf[256];
    long n = hz_read_file(hz_path(&hz, rel), buf, sizeof(buf));
    cr_assert_eq(n, (long)strlen(text), "%s: %ld bytes", rel, n);
    cr_assert_eq(memcmp(buf, text, (size_t)n), 0, "%s: \"%.*s\"", rel,
                 (int)n, buf);
}

/* Opens path with mode; returns the error (unmapping on success). */
static int try_open(mmapio_client *c, const char *path, mmapio_mode mode,
                    bool anonymous)
{
    mmapio_options o;
    mmapio_map *m;
    mmapio_options_init(&o);
    o.mode = mode;
    o.anonymous = anonymous;
    int r = mmapio_open(c, path, &o, &m);
    if (r == MMAPIO_OK)
        mmapio_unmap(m);
    return r;
}

#define RO MMAPIO_MODE_READ_ONLY
#define RW MMAPIO_MODE_READ_WRITE
#define COW MMAPIO_MODE_COPY_ON_WRITE

/* ---- file modes -------------------------------------------------------- */

static const char *nobody_files(mmapio_client *c, void *arg)
{
    mmapio_map *m;
    char buf[8] = "";
    /* root's 0600: nothing */
    EXPECT(try_open(c, "p600", RO, false), MMAPIO_E_PERMISSION);
    EXPECT(try_open(c, "p600", COW, false), MMAPIO_E_PERMISSION);
    EXPECT(try_open(c, "p600", RW, false), MMAPIO_E_PERMISSION);
    /* root's 0644: read, copy-on-write, but not write nor truncate */
    EXPECT(mmapio_open_ro(c, "p644", &m), MMAPIO_OK);
    EXPECT(mmapio_read_into(m, 0, buf, 4), MMAPIO_OK);
    CHECK(memcmp(buf, "p644", 4) == 0);
    EXPECT(mmapio_unmap(m), MMAPIO_OK);
    EXPECT(mmapio_open_cow(c, "p644", &m), MMAPIO_OK);
    EXPECT(mmapio_update_region(m, 0, "COW!", 4), MMAPIO_OK);
    EXPECT(mmapio_unmap(m), MMAPIO_OK);
    EXPECT(try_open(c, "p644", RW, false), MMAPIO_E_PERMISSION);
    EXPECT(mmapio_create_rw(c, "p644", 4096, &m), MMAPIO_E_PERMISSION);
    mmapio_options o;
    mmapio_options_init(&o);
    o.mode = RO;
    o.truncate = true;
    o.size = 8192;
    EXPECT(mmapio_open(c, "p644", &o, &m), MMAPIO_E_PERMISSION);
    /* root's 0666: read-write */
    EXPECT(mmapio_open_rw(c, "p666", &m), MMAPIO_OK);
    EXPECT(mmapio_update_region(m, 0, "P666", 4), MMAPIO_OK);
    EXPECT(mmapio_flush(m), MMAPIO_OK);
    EXPECT(mmapio_unmap(m), MMAPIO_OK);
    /* group 65534, 0640: read by the group, not write */
    EXPECT(try_open(c, "g640", RO, false), MMAPIO_OK);
    EXPECT(try_open(c, "g640", RW, false), MMAPIO_E_PERMISSION);
    /* group 65534, 0604: the group's bits rule a member, not other's */
    EXPECT(try_open(c, "g604", RO, false), MMAPIO_E_PERMISSION);
    /* its own 0400: the owner's bits, read only */
    EXPECT(try_open(c, "o400", RO, false), MMAPIO_OK);
    EXPECT(try_open(c, "o400", RW, false), MMAPIO_E_PERMISSION);
    /* its own 0066: the owner's bits rule the owner, even if other's
     * would allow */
    EXPECT(try_open(c, "o066", RO, false), MMAPIO_E_PERMISSION);
    return NULL;
}

Test(perms, files_by_owner_group_and_mode)
{
    place("p600", "p600", 0, 0, 0600);
    place("p644", "p644", 0, 0, 0644);
    place("p666", "p666", 0, 0, 0666);
    place("g640", "g640", 0, RB_NOBODY, 0640);
    place("g604", "g604", 0, RB_NOBODY, 0604);
    place("o400", "o400", RB_NOBODY, RB_NOBODY, 0400);
    place("o066", "o066", RB_NOBODY, RB_NOBODY, 0066);
    as_nobody(nobody_files, NULL);
    /* Nothing refused was changed; what was granted was written. */
    expect_file("p644", "p644");
    cr_assert_eq(hz_file_size(hz_path(&hz, "p644")), 4);
    expect_file("p666", "P666");
    /* root itself is refused nothing */
    mmapio_client *c = hz_client();
    hz_assert_ok(try_open(c, "p600", RW, false));
    hz_assert_ok(try_open(c, "o066", RW, false));
    mmapio_disconnect(c);
}

/* ---- anonymous mappings ---------------------------------------------- */

static int anon_create_perm(mmapio_client *c, const char *name,
                            uint32_t perm, mmapio_map **out)
{
    mmapio_options o;
    mmapio_options_init(&o);
    o.anonymous = true;
    o.create = true;
    o.exclusive = true;
    o.size = 4096;
    o.perm = perm;
    return mmapio_open(c, name, &o, out);
}

static const char *nobody_anon(mmapio_client *c, void *arg)
{
    mmapio_map *m;
    char buf[8] = "";
    /* root's default (0600) */
    EXPECT(mmapio_anon_open(c, "secret", &m), MMAPIO_E_PERMISSION);
    EXPECT(try_open(c, "secret", RO, true), MMAPIO_E_PERMISSION);
    EXPECT(mmapio_anon_delete(c, "secret"), MMAPIO_E_PERMISSION);
    /* root's 0644: read-only */
    mmapio_options o;
    mmapio_options_init(&o);
    o.anonymous = true;
    o.mode = RO;
    EXPECT(mmapio_open(c, "shared", &o, &m), MMAPIO_OK);
    EXPECT(mmapio_read_into(m, 0, buf, 6), MMAPIO_OK);
    CHECK(memcmp(buf, "shared", 6) == 0);
    EXPECT(mmapio_update_region(m, 0, "x", 1), MMAPIO_E_INVALID_MODE);
    EXPECT(mmapio_unmap(m), MMAPIO_OK);
    EXPECT(mmapio_anon_open(c, "shared", &m), MMAPIO_E_PERMISSION);
    o.truncate = true;
    o.size = 8192;
    EXPECT(mmapio_open(c, "shared", &o, &m), MMAPIO_E_PERMISSION);
    EXPECT(mmapio_anon_delete(c, "shared"), MMAPIO_E_PERMISSION);
    /* root's 0666: read-write */
    EXPECT(mmapio_anon_open(c, "open", &m), MMAPIO_OK);
    EXPECT(mmapio_update_region(m, 0, "by nobody", 9), MMAPIO_OK);
    EXPECT(mmapio_unmap(m), MMAPIO_OK);
    /* its own, default mode; and one it will delete itself */
    EXPECT(mmapio_anon_create(c, "mine", 4096, &m), MMAPIO_OK);
    EXPECT(mmapio_update_region(m, 0, "mine", 4), MMAPIO_OK);
    EXPECT(mmapio_unmap(m), MMAPIO_OK);
    EXPECT(mmapio_anon_create(c, "gone", 4096, &m), MMAPIO_OK);
    EXPECT(mmapio_unmap(m), MMAPIO_OK);
    EXPECT(mmapio_anon_delete(c, "gone"), MMAPIO_OK);
    return NULL;
}

/* Another unprivileged uid: nobody's anonymous mapping is not its. */
static const char *other_anon(mmapio_client *c, void *arg)
{
    EXPECT(try_open(c, "mine", RO, true), MMAPIO_E_PERMISSION);
    EXPECT(mmapio_anon_delete(c, "mine"), MMAPIO_E_PERMISSION);
    EXPECT(try_open(c, "open", RW, true), MMAPIO_OK);
    return NULL;
}

Test(perms, anonymous_by_owner_and_mode)
{
    mmapio_client *c = hz_client();
    mmapio_map *secret, *shared, *open, *m;
    hz_assert_ok(mmapio_anon_create(c, "secret", 4096, &secret));
    hz_assert_ok(anon_create_perm(c, "shared", 0644, &shared));
    hz_assert_ok(anon_create_perm(c, "open", 0666, &open));
    hz_assert_ok(mmapio_update_region(shared, 0, "shared", 6));
    as_nobody(nobody_anon, NULL);
    run_as(OTHER_UID, OTHER_UID, other_anon, NULL);

    /* root's mappings are intact; nobody's write to "open" landed */
    hz_assert_ok(mmapio_anon_open(c, "secret", &m));
    mmapio_unmap(m);
    cr_assert_eq(mmapio_len(shared), 4096);
    hz_assert_ok(mmapio_refresh(shared));
    cr_assert_eq(mmapio_len(shared), 4096, "a reader truncated it");
    cr_assert_eq(memcmp(mmapio_as_ptr(open), "by nobody", 9), 0);
    /* root opens and deletes nobody's */
    hz_assert_ok(mmapio_anon_open(c, "mine", &m));
    cr_assert_eq(memcmp(mmapio_as_ptr(m), "mine", 4), 0);
    mmapio_unmap(m);
    hz_assert_ok(mmapio_anon_delete(c, "mine"));
    hz_assert_ret(mmapio_anon_open(c, "mine", &m), MMAPIO_E_NOT_FOUND);
    hz_assert_ret(mmapio_anon_open(c, "gone", &m), MMAPIO_E_NOT_FOUND);
    mmapio_unmap(secret);
    mmapio_unmap(shared);
    mmapio_unmap(open);
    mmapio_disconnect(c);
}

/* ---- creating and deleting files ------------------------------------- */

static const char *nobody_creates(mmapio_client *c, void *arg)
{
    mmapio_map *m;
    /* in its own directory: allowed, and the file is its */
    EXPECT(mmapio_create_rw(c, "u/new.dat", 8192, &m), MMAPIO_OK);
    EXPECT(mmapio_update_region(m, 0, "nobody's", 8), MMAPIO_OK);
    EXPECT(mmapio_flush(m), MMAPIO_OK);
    EXPECT(mmapio_unmap(m), MMAPIO_OK);
    mmapio_options o;
    mmapio_options_init(&o);
    o.create = true;
    o.size = 4096;
    o.perm = 0600;
    EXPECT(mmapio_open(c, "u/private.dat", &o, &m), MMAPIO_OK);
    EXPECT(mmapio_unmap(m), MMAPIO_OK);
    EXPECT(mmapio_create_rw(c, "u/doomed.dat", 4096, &m), MMAPIO_OK);
    EXPECT(mmapio_unmap(m), MMAPIO_OK);
    EXPECT(mmapio_delete(c, "u/doomed.dat"), MMAPIO_OK);
    /* in root's directories (0755): neither create nor delete */
    EXPECT(mmapio_create_rw(c, "sub/x.dat", 4096, &m), MMAPIO_E_PERMISSION);
    EXPECT(mmapio_open_or_create(c, "top.dat", 4096, &m),
           MMAPIO_E_PERMISSION);
    EXPECT(mmapio_delete(c, "sub/root.dat"), MMAPIO_E_PERMISSION);
    EXPECT(mmapio_delete(c, "p666"), MMAPIO_E_PERMISSION);
    /* in a sticky world-writable directory: create yes, delete root's no */
    EXPECT(mmapio_create_rw(c, "pub/nobody.dat", 4096, &m), MMAPIO_OK);
    EXPECT(mmapio_unmap(m), MMAPIO_OK);
    EXPECT(mmapio_delete(c, "pub/root.dat"), MMAPIO_E_PERMISSION);
    EXPECT(mmapio_delete(c, "pub/nobody.dat"), MMAPIO_OK);
    return NULL;
}

Test(perms, create_and_delete_need_the_directory)
{
    place_dir("u", RB_NOBODY, RB_NOBODY, 0755);
    place_dir("sub", 0, 0, 0755);
    place_dir("pub", 0, 0, 01777);
    place("sub/root.dat", "root", 0, 0, 0666);
    place("pub/root.dat", "root", 0, 0, 0666);
    place("p666", "p666", 0, 0, 0666);
    as_nobody(nobody_creates, NULL);

    struct stat st;
    cr_assert_eq(stat(hz_path(&hz, "u/new.dat"), &st), 0);
    cr_assert_eq(st.st_uid, RB_NOBODY, "u/new.dat belongs to uid %u",
                 (unsigned)st.st_uid);
    cr_assert_eq(st.st_gid, RB_NOBODY, "u/new.dat has gid %u",
                 (unsigned)st.st_gid);
    cr_assert_eq(st.st_mode & 07777, 0644, "u/new.dat mode %o",
                 (unsigned)(st.st_mode & 07777));
    cr_assert_eq(st.st_size, 8192);
    char buf[8];
    cr_assert_eq(hz_read_file(hz_path(&hz, "u/new.dat"), buf, 8), 8);
    cr_assert_eq(memcmp(buf, "nobody's", 8), 0);
    cr_assert_eq(stat(hz_path(&hz, "u/private.dat"), &st), 0);
    cr_assert_eq(st.st_uid, RB_NOBODY);
    cr_assert_eq(st.st_mode & 07777, 0600, "u/private.dat mode %o",
                 (unsigned)(st.st_mode & 07777));
    cr_assert_eq(access(hz_path(&hz, "u/doomed.dat"), F_OK), -1);
    cr_assert_eq(access(hz_path(&hz, "sub/x.dat"), F_OK), -1,
                 "a refused create left sub/x.dat behind");
    cr_assert_eq(access(hz_path(&hz, "top.dat"), F_OK), -1);
    expect_file("sub/root.dat", "root");
    expect_file("pub/root.dat", "root");
    expect_file("p666", "p666");
}

/* ---- directories that may not be searched ---------------------------- */

static const char *nobody_locked_out(mmapio_client *c, void *arg)
{
    EXPECT(try_open(c, "locked/open.dat", RO, false), MMAPIO_E_PERMISSION);
    EXPECT(try_open(c, "locked/open.dat", RW, false), MMAPIO_E_PERMISSION);
    EXPECT(mmapio_delete(c, "locked/open.dat"), MMAPIO_E_PERMISSION);
    return NULL;
}

Test(perms, unsearchable_directory_guards_its_files)
{
    /* Directly, nobody cannot reach locked/open.dat (0666) through a
     * directory of root's mode 0700; the daemon must not be a way round. */
    place_dir("locked", 0, 0, 0700);
    place("locked/open.dat", "locked", 0, 0, 0666);
    as_nobody(nobody_locked_out, NULL);
    expect_file("locked/open.dat", "locked");
}

static const char *nobody_through_a_link(mmapio_client *c, void *arg)
{
    /* mine/l leads into locked2/sub through a symlink: the walk passes
     * locked2 (0700, root's), which nobody may not search. */
    EXPECT(try_open(c, "mine/l/open.dat", RO, false), MMAPIO_E_PERMISSION);
    EXPECT(try_open(c, "mine/l/open.dat", RW, false), MMAPIO_E_PERMISSION);
    EXPECT(mmapio_delete(c, "mine/l/open.dat"), MMAPIO_E_PERMISSION);
    /* A link inside what nobody may search still works. */
    EXPECT(try_open(c, "mine/ok/pub.dat", RO, false), MMAPIO_OK);
    return NULL;
}

Test(perms, a_symlink_does_not_skip_an_unsearchable_directory)
{
    place_dir("locked2", 0, 0, 0700);
    place_dir("locked2/sub", 0, 0, 0755);
    place("locked2/sub/open.dat", "locked", 0, 0, 0666);
    place_dir("open", 0, 0, 0755);
    place("open/pub.dat", "pub", 0, 0, 0644);
    place_dir("mine", RB_NOBODY, RB_NOBODY, 0755);
    cr_assert_eq(symlink("../locked2/sub", hz_path(&hz, "mine/l")), 0);
    cr_assert_eq(symlink("../open", hz_path(&hz, "mine/ok")), 0);
    as_nobody(nobody_through_a_link, NULL);
    expect_file("locked2/sub/open.dat", "locked");
}
