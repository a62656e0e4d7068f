/* resolve: client paths to files beneath the data root (see resolve.h). */
#include "resolve.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "mmapio.h"

int resolve_check_path(const char *path)
{
    if (!path || !*path)
        return MMAPIO_E_INVALID_ARGUMENT;
    size_t len = strnlen(path, RESOLVE_PATH_MAX + 1);
    if (len > RESOLVE_PATH_MAX)
        return MMAPIO_E_INVALID_ARGUMENT;
    if (path[0] == '/')
        return MMAPIO_E_PERMISSION;

    int bad = MMAPIO_OK;
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
    return MMAPIO_OK;
}

int resolve_open(int dirfd, const char *path, int flags, mode_t mode)
{
    /* openat2 refuses O_NOCTTY beside O_PATH (EINVAL). */
    int extra = (flags & O_PATH) ? O_CLOEXEC : O_CLOEXEC | O_NOCTTY;
    struct open_how how = {
        .flags = (uint64_t)(flags | extra),
        .mode = (flags & O_CREAT) ? mode : 0,
        .resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS,
    };
    long fd;
    do {
        fd = syscall(SYS_openat2, dirfd, path, &how, sizeof(how));
    } while (fd < 0 && (errno == EINTR || errno == EAGAIN));
    return fd < 0 ? -errno : (int)fd;
}

int resolve_parent(int root_fd, const char *path, const char **base)
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
    return resolve_open(root_fd, dir, O_PATH | O_DIRECTORY, 0);
}
