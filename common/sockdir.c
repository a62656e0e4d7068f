/* sockdir: the rule for a socket's directory (see sockdir.h). */
#include "sockdir.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

int sockdir_of(const char *socket_path, char *buf, size_t size)
{
    const char *slash = strrchr(socket_path, '/');
    size_t n = slash ? (size_t)(slash - socket_path) : 1;
    const char *from = slash ? socket_path : ".";

    if (slash == socket_path)
        n = 1; /* "/x.sock": the root directory */
    if (n >= size)
        return -ENAMETOOLONG;
    memcpy(buf, from, n);
    buf[n] = '\0';
    return 0;
}

/* Only the owner (or root, sticky) may change the directory's entries. */
static bool others_cannot_write(const struct stat *st)
{
    if (!(st->st_mode & (S_IWGRP | S_IWOTH)))
        return true;
    return st->st_uid == 0 && (st->st_mode & S_ISVTX);
}

static int refuse(char *why, size_t size, const char *dir, const char *what,
                  unsigned uid)
{
    snprintf(why, size, "socket directory %s %s %u", dir, what, uid);
    return -EPERM;
}

static int look(const char *dir, struct stat *st, bool follow, char *why,
                size_t size)
{
    if ((follow ? stat(dir, st) : lstat(dir, st)) == 0)
        return 0;
    int e = errno;
    snprintf(why, size, "socket directory %s: %s", dir, strerror(e));
    return -e;
}

/* A symbolic link as the last component: its owner could repoint it. */
static int judge_link(const char *dir, sockdir_trust_fn trusted, char *why,
                      size_t size)
{
    struct stat st;
    int r = look(dir, &st, false, why, size);
    if (r < 0 || !S_ISLNK(st.st_mode) || trusted(st.st_uid))
        return r;
    return refuse(why, size, dir, "is a symbolic link of uid", (unsigned)st.st_uid);
}

int sockdir_check(const char *socket_path, sockdir_trust_fn trusted,
                  char *why, size_t why_size)
{
    char dir[4096];
    struct stat st;

    if (sockdir_of(socket_path, dir, sizeof(dir)) < 0) {
        snprintf(why, why_size, "socket path too long");
        return -ENAMETOOLONG;
    }
    int r = judge_link(dir, trusted, why, why_size);
    if (r == 0)
        r = look(dir, &st, true, why, why_size);
    if (r < 0)
        return r;
    if (!S_ISDIR(st.st_mode)) {
        snprintf(why, why_size, "socket directory %s is not a directory", dir);
        return -ENOTDIR;
    }
    if (!trusted(st.st_uid))
        return refuse(why, why_size, dir, "belongs to uid", (unsigned)st.st_uid);
    if (!others_cannot_write(&st))
        return refuse(why, why_size, dir, "may be written by others than uid",
                      (unsigned)st.st_uid);
    return 0;
}
