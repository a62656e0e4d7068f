/* resolve: client paths to files beneath the data root (see resolve.h). */
#include "resolve.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <stdbool.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "access.h"
#include "asuser.h"
#include "mmapio.h"
#include "names.h"

int resolve_check_path(const char *path)
{
    if (!path || !*path)
        return MMAPIO_E_INVALID_ARGUMENT;
    size_t len = strnlen(path, RESOLVE_PATH_MAX + 1);
    if (len > RESOLVE_PATH_MAX)
        return MMAPIO_E_INVALID_ARGUMENT;
    if (path[0] == '/')
        return MMAPIO_E_PERMISSION;
    size_t own = sizeof(RESOLVE_STATE_DIR) - 1;
    if (!strncmp(path, RESOLVE_STATE_DIR, own) &&
        (path[own] == '\0' || path[own] == '/'))
        return MMAPIO_E_PERMISSION; /* the daemon's own files */

    /* Control characters or broken UTF-8: refused, though ".." wins. */
    int bad = names_valid(path) ? MMAPIO_OK : MMAPIO_E_INVALID_ARGUMENT;
    const char *p = path;
    for (;;) {
        const char *slash = strchr(p, '/');
        size_t n = slash ? (size_t)(slash - p) : strlen(p);
        if (n == 2 && p[0] == '.' && p[1] == '.')
            return MMAPIO_E_PERMISSION; /* wins over any other fault */
        if (n == 0 || (n == 1 && p[0] == '.'))
            bad = MMAPIO_E_INVALID_ARGUMENT;
        if (!slash)
            break;
        p = slash + 1;
    }
    return bad;
}

int resolve_check_name(const char *name)
{
    if (!name || !*name)
        return MMAPIO_E_INVALID_ARGUMENT;
    if (strnlen(name, RESOLVE_NAME_MAX + 1) > RESOLVE_NAME_MAX)
        return MMAPIO_E_INVALID_ARGUMENT;
    if (strchr(name, '/') || !strcmp(name, ".") || !strcmp(name, ".."))
        return MMAPIO_E_INVALID_ARGUMENT;
    return names_valid(name) ? MMAPIO_OK : MMAPIO_E_INVALID_ARGUMENT;
}

#define MAX_LINKS 40
#define MAX_DEPTH 256

/*
 * The same walk as RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS, in user space,
 * for kernels (and tools such as valgrind) without openat2: one component
 * at a time with O_NOFOLLOW, symlinks read and spliced into the rest of
 * the path, ".." popping a stack that cannot go above dirfd, absolute
 * targets refused. The last component is opened with O_NOFOLLOW, so a
 * link swapped in after the check fails instead of being followed.
 */
/* May `as` search the directory dir? 0 or -EACCES (always 0 for NULL). */
static int searchable(int dir, const struct peer_cred *as)
{
    struct stat st;
    if (!as)
        return 0;
    if (fstat(dir, &st) < 0)
        return -errno;
    return access_check(as, st.st_uid, st.st_gid, st.st_mode, ACCESS_EXEC)
               ? -EACCES : 0;
}

static int walk_open(int dirfd, const char *path, int flags, mode_t mode,
                     const struct peer_cred *as)
{
    char rest[2 * (RESOLVE_PATH_MAX + 1)];
    int stack[MAX_DEPTH];
    int depth = 0, links = 0, r = -ENOENT;

    if (strlen(path) > RESOLVE_PATH_MAX)
        return -ENAMETOOLONG;
    memcpy(rest, path, strlen(path) + 1);
    stack[0] = dirfd;
    char *p = rest;
    if ((r = searchable(dirfd, as)) < 0)
        return r;
    r = -ENOENT;
    for (;;) {
        while (*p == '/')
            p++;
        char *slash = strchr(p, '/');
        bool last = !slash || !slash[strspn(slash, "/")];
        if (slash)
            *slash = '\0';
        const char *comp = *p ? p : ".";
        char *next = slash ? slash + 1 : p + strlen(p);
        int cur = stack[depth];

        if (!strcmp(comp, ".")) {
            if (last) { r = openat(cur, ".", flags | O_CLOEXEC, mode); r = r < 0 ? -errno : r; break; }
            p = next;
            continue;
        }
        if (!strcmp(comp, "..")) {
            if (depth == 0) { r = -EXDEV; break; }
            close(stack[depth--]);
            if (last) { r = openat(stack[depth], ".", flags | O_CLOEXEC, mode); r = r < 0 ? -errno : r; break; }
            p = next;
            continue;
        }
        int fd = openat(cur, comp, O_PATH | O_NOFOLLOW | O_CLOEXEC);
        struct stat st;
        if (fd >= 0 && fstat(fd, &st) < 0) { close(fd); fd = -1; }
        if (fd < 0) {
            if (errno == ENOENT && last && (flags & O_CREAT)) {
                r = openat(cur, comp, flags | O_NOFOLLOW | O_CLOEXEC, mode);
                r = r < 0 ? -errno : r;
            } else {
                r = -errno;
            }
            break;
        }
        if (S_ISLNK(st.st_mode)) {
            char target[RESOLVE_PATH_MAX + 1];
            ssize_t n = readlinkat(fd, "", target, sizeof(target) - 1);
            close(fd);
            if (n < 0 || ++links > MAX_LINKS) { r = n < 0 ? -errno : -ELOOP; break; }
            target[n] = '\0';
            if (target[0] == '/') { r = -EXDEV; break; }
            size_t tail = strlen(next);
            if ((size_t)n + 1 + tail >= sizeof(rest)) { r = -ENAMETOOLONG; break; }
            memmove(rest + n + 1, next, tail + 1);
            memcpy(rest, target, (size_t)n);
            rest[n] = last ? '\0' : '/';
            p = rest;
            continue;
        }
        if (last) {
            close(fd);
            if ((flags & O_PATH) && (flags & O_DIRECTORY) && !S_ISDIR(st.st_mode)) { r = -ENOTDIR; break; }
            r = openat(cur, comp, flags | O_NOFOLLOW | O_CLOEXEC, mode);
            r = r < 0 ? -errno : r;
            break;
        }
        if (!S_ISDIR(st.st_mode) || depth + 1 >= MAX_DEPTH) {
            close(fd);
            r = S_ISDIR(st.st_mode) ? -ENAMETOOLONG : -ENOTDIR;
            break;
        }
        if ((r = searchable(fd, as)) < 0) {
            close(fd);
            break;
        }
        stack[++depth] = fd;
        p = next;
    }
    while (depth > 0)
        close(stack[depth--]);
    return r;
}

/* openat2 beneath dirfd, or the walk where the kernel has none; the
 * kernel's own permission checks for the thread's current identity. */
static int open_beneath(int dirfd, const char *path, int flags, mode_t mode,
                        const struct open_how *how, int *no_openat2)
{
    if (!*no_openat2) {
        long fd;
        int tries = 0;
        /* EAGAIN: a rename raced the walk (try again), or, the same
         * number, O_NONBLOCK met a lease being broken (give up): only a
         * few tries, never a spin on the loop. */
        do {
            fd = syscall(SYS_openat2, dirfd, path, how, sizeof(*how));
        } while (fd < 0 && (errno == EINTR || (errno == EAGAIN && ++tries < 4)));
        if (fd >= 0 || errno != ENOSYS)
            return fd < 0 ? -errno : (int)fd;
        *no_openat2 = 1;
    }
    return walk_open(dirfd, path, flags, mode, NULL);
}

int resolve_open(int dirfd, const char *path, int flags, mode_t mode,
                 const struct peer_cred *as)
{
    /* MMAPIOD_NO_OPENAT2=1 forces the fallback, so tests can cover it. */
    static int no_openat2 = -1;
    if (no_openat2 < 0)
        no_openat2 = getenv("MMAPIOD_NO_OPENAT2") != NULL;
    /* openat2 refuses O_NOCTTY beside O_PATH (EINVAL). */
    int extra = (flags & O_PATH) ? O_CLOEXEC : O_CLOEXEC | O_NOCTTY;
    struct open_how how = {
        .flags = (uint64_t)(flags | extra),
        .mode = (flags & O_CREAT) ? mode : 0,
        .resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS,
    };
    if (as && as->uid == 0)
        as = NULL; /* root searches everything: the kernel's walk will do */
    if (!as)
        return open_beneath(dirfd, path, flags | extra, mode, &how,
                            &no_openat2);
    if (!asuser_works()) /* mode bits only, checked in user space */
        return walk_open(dirfd, path, flags | extra, mode, as);
    /* As the peer: the kernel decides every search and the open itself. */
    struct asuser_saved sv;
    int r = asuser_enter(as, &sv);
    if (r < 0)
        return r == -E2BIG ? -EACCES : r;
    r = open_beneath(dirfd, path, flags | extra, mode, &how, &no_openat2);
    asuser_leave(&sv);
    return r;
}

int resolve_unlink(int dirfd, const char *base, const struct peer_cred *as)
{
    struct asuser_saved sv;
    if (!as || as->uid == 0)
        return unlinkat(dirfd, base, 0) < 0 ? -errno : 0;
    if (!asuser_works())
        return -ENOTSUP;
    int r = asuser_enter(as, &sv);
    if (r < 0)
        return r == -E2BIG ? -EACCES : r;
    r = unlinkat(dirfd, base, 0) < 0 ? -errno : 0;
    asuser_leave(&sv);
    return r;
}

int resolve_parent(int root_fd, const char *path, const char **base,
                   const struct peer_cred *as)
{
    const char *slash = strrchr(path, '/');
    if (!slash) {
        *base = path;
        int fd = fcntl(root_fd, F_DUPFD_CLOEXEC, 0);
        return fd < 0 ? -errno : fd;
    }
    char dir[RESOLVE_PATH_MAX + 1];
    size_t n = (size_t)(slash - path);
    if (n > RESOLVE_PATH_MAX)
        return -ENAMETOOLONG;
    memcpy(dir, path, n);
    dir[n] = '\0';
    *base = slash + 1;
    return resolve_open(root_fd, dir, O_PATH | O_DIRECTORY, 0, as);
}
