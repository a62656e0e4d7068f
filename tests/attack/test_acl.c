/*
 * test_acl: access as the kernel decides it (issue 10, row 13).
 *
 * The daemon used to decide from mode bits alone: a POSIX ACL
 * `user:nobody:---` on a 0666 file kept `cat` out, but the daemon granted
 * read-write. Now it opens as the peer (fsuid, fsgid, groups), so ACLs
 * deny and grant as they do for the peer itself, on files and on the
 * directories on the way (search, create, delete), and files it creates
 * are born the peer's.
 *
 * The ACLs are written as the raw system.posix_acl_access xattr (no
 * package needed); a file system without ACLs skips the test.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "harness.h"
#include "robust/robust.h"

/* The kernel's xattr form of a POSIX ACL (linux/posix_acl_xattr.h). */
enum { TAG_USER_OBJ = 1, TAG_USER = 2, TAG_GROUP_OBJ = 4, TAG_MASK = 0x10,
       TAG_OTHER = 0x20 };
struct acl_entry { uint16_t tag, perm; uint32_t id; };

/* Sets an access ACL: owner, one named user, owning group, mask, other. */
static int set_acl(const char *path, unsigned owner, uint32_t user,
                   unsigned user_perm, unsigned group, unsigned other)
{
    struct {
        uint32_t version;
        struct acl_entry e[5];
    } __attribute__((packed)) x = {
        .version = 2,
        .e = {
            { TAG_USER_OBJ, (uint16_t)owner, (uint32_t)-1 },
            { TAG_USER, (uint16_t)user_perm, user },
            { TAG_GROUP_OBJ, (uint16_t)group, (uint32_t)-1 },
            { TAG_MASK, 7, (uint32_t)-1 },
            { TAG_OTHER, (uint16_t)other, (uint32_t)-1 },
        },
    };
    return setxattr(path, "system.posix_acl_access", &x, sizeof(x), 0) < 0
               ? -errno : 0;
}

static void init(void)
{
    if (geteuid() != 0)
        cr_skip_test("needs root, to run a child as another uid");
    signal(SIGPIPE, SIG_IGN);
    int r = hz_init(&hz);
    cr_assert_eq(r, 0, "mkdtemp: %s", strerror(-r));
    cr_assert_eq(rb_share(&hz), 0);
    r = rb_start(&hz, NULL);
    cr_assert_eq(r, 0, "mmapiod did not come up: %s", strerror(-r));
    setenv("MMAPIO_SOCKET", hz.sock, 1);
}

TestSuite(acl, .init = init, .fini = hz_teardown, .timeout = 60);

/* root places a file with content and exact mode, then its ACL. */
static void place(const char *rel, mode_t mode, unsigned user_perm,
                  unsigned other)
{
    const char *path = hz_path(&hz, rel);
    cr_assert_eq(hz_write_file(path, "acl!", 4), 0, "%s", path);
    cr_assert_eq(chmod(path, mode), 0);
    int r = set_acl(path, 6, RB_NOBODY, user_perm, (mode >> 3) & 7, other);
    if (r == -EOPNOTSUPP)
        cr_skip_test("no POSIX ACLs on this file system");
    cr_assert_eq(r, 0, "setxattr %s: %s", path, strerror(-r));
}

/* ---- running as nobody ------------------------------------------------ */


typedef const char *(*as_fn)(mmapio_client *c);
struct as_call { as_fn fn; };

/* Runs fn as nobody in a forked child connected to hz; asserts success. */
static const char *call(mmapio_client *c, void *arg)
{
    return ((const struct as_call *)arg)->fn(c);
}

static void as_nobody(as_fn fn)
{
    struct as_call k = { fn };
    char why[600];
    cr_assert_eq(rb_run_as(hz.sock, RB_NOBODY, RB_NOBODY, call, &k, why,
                           sizeof(why)), 0, "as nobody: %s", why);
}

static int try_open(mmapio_client *c, const char *path, mmapio_mode mode)
{
    mmapio_options o;
    mmapio_map *m;
    mmapio_options_init(&o);
    o.mode = mode;
    int r = mmapio_open(c, path, &o, &m);
    if (r == MMAPIO_OK)
        mmapio_unmap(m);
    return r;
}

/* What the kernel itself says to nobody about path (0 or errno). */
static int kernel_says(const char *rel, int flags)
{
    int fd = open(hz_path(&hz, rel), flags | O_CLOEXEC);
    if (fd < 0)
        return errno;
    close(fd);
    return 0;
}

/* ---- files ------------------------------------------------------------- */

static const char *denied(mmapio_client *c)
{
    /* The kernel refuses nobody, though "other" has rw-. */
    CHECK(kernel_says("denied", O_RDONLY) == EACCES);
    EXPECT(try_open(c, "denied", MMAPIO_MODE_READ_ONLY), MMAPIO_E_PERMISSION);
    EXPECT(try_open(c, "denied", MMAPIO_MODE_COPY_ON_WRITE),
           MMAPIO_E_PERMISSION);
    EXPECT(try_open(c, "denied", MMAPIO_MODE_READ_WRITE), MMAPIO_E_PERMISSION);
    /* The same file without the named entry is nobody's to use. */
    EXPECT(try_open(c, "open", MMAPIO_MODE_READ_WRITE), MMAPIO_OK);
    mmapio_disconnect(c);
    return NULL;
}

Test(acl, named_user_denied_on_a_0666_file)
{
    place("denied", 0666, 0, 6);
    place("open", 0666, 6, 6);
    as_nobody(denied);
}

static const char *granted(mmapio_client *c)
{
    mmapio_map *m;
    char buf[4];
    CHECK(kernel_says("granted", O_RDWR) == 0);
    EXPECT(mmapio_open_rw(c, "granted", &m), MMAPIO_OK);
    EXPECT(mmapio_read_into(m, 0, buf, 4), MMAPIO_OK);
    CHECK(memcmp(buf, "acl!", 4) == 0);
    EXPECT(mmapio_update_region(m, 0, "ACL!", 4), MMAPIO_OK);
    EXPECT(mmapio_unmap(m), MMAPIO_OK);
    /* Read only: read-only and copy-on-write, but not read-write. */
    EXPECT(try_open(c, "readable", MMAPIO_MODE_READ_ONLY), MMAPIO_OK);
    EXPECT(try_open(c, "readable", MMAPIO_MODE_COPY_ON_WRITE), MMAPIO_OK);
    EXPECT(try_open(c, "readable", MMAPIO_MODE_READ_WRITE),
           MMAPIO_E_PERMISSION);
    mmapio_disconnect(c);
    return NULL;
}

Test(acl, named_user_granted_on_a_0600_file)
{
    place("granted", 0600, 6, 0);
    place("readable", 0600, 4, 0);
    as_nobody(granted);
    char buf[8];
    cr_assert_eq(hz_read_file(hz_path(&hz, "granted"), buf, sizeof(buf)), 4);
    cr_assert_eq(memcmp(buf, "ACL!", 4), 0, "nobody's write did not land");
}

/* ---- directories ------------------------------------------------------- */

static const char *in_dirs(mmapio_client *c)
{
    mmapio_map *m;
    /* No search in "shut": what is inside is out of reach. */
    EXPECT(try_open(c, "shut/f", MMAPIO_MODE_READ_ONLY), MMAPIO_E_PERMISSION);
    /* "ajar" is 0700 root's, but the ACL lets nobody in and write. */
    EXPECT(try_open(c, "ajar/f", MMAPIO_MODE_READ_ONLY), MMAPIO_OK);
    EXPECT(mmapio_create_rw(c, "ajar/new", 4096, &m), MMAPIO_OK);
    EXPECT(mmapio_unmap(m), MMAPIO_OK);
    EXPECT(mmapio_create_rw(c, "shut/new", 4096, &m), MMAPIO_E_PERMISSION);
    /* Deleting needs write on the directory: the ACL's word, too. */
    EXPECT(mmapio_delete(c, "ajar/f"), MMAPIO_OK);
    EXPECT(mmapio_delete(c, "shut/f"), MMAPIO_E_PERMISSION);
    mmapio_disconnect(c);
    return NULL;
}

Test(acl, directory_acls_decide_search_and_create)
{
    cr_assert_eq(mkdir(hz_path(&hz, "shut"), 0777), 0);
    cr_assert_eq(chmod(hz_path(&hz, "shut"), 0777), 0);
    int r = set_acl(hz_path(&hz, "shut"), 7, RB_NOBODY, 0, 7, 7);
    if (r == -EOPNOTSUPP)
        cr_skip_test("no POSIX ACLs on this file system");
    cr_assert_eq(r, 0, "setxattr: %s", strerror(-r));
    place("shut/f", 0644, 4, 4);

    cr_assert_eq(mkdir(hz_path(&hz, "ajar"), 0700), 0);
    cr_assert_eq(set_acl(hz_path(&hz, "ajar"), 7, RB_NOBODY, 7, 0, 0), 0);
    place("ajar/f", 0600, 4, 0);

    as_nobody(in_dirs);
    struct stat st;
    cr_assert_eq(stat(hz_path(&hz, "ajar/new"), &st), 0);
    cr_assert_eq(st.st_uid, (uid_t)RB_NOBODY, "created file owned by %u",
                 (unsigned)st.st_uid);
    cr_assert_eq(st.st_gid, (gid_t)RB_NOBODY);
    cr_assert_neq(stat(hz_path(&hz, "ajar/f"), &st), 0, "ajar/f survived");
    cr_assert_eq(stat(hz_path(&hz, "shut/f"), &st), 0, "shut/f was deleted");
}
