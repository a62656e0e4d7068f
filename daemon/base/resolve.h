/*
 * resolve: turning a client's path into an open file under the data root,
 * and never anywhere else.
 *
 * Two fences: a lexical check (relative, no "." or ".." component, no empty
 * component, valid UTF-8 without control characters) and the kernel's openat2(RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS)
 * from the root's directory fd, which refuses any symlink that leads out.
 */
#ifndef MMAPIOD_RESOLVE_H
#define MMAPIOD_RESOLVE_H

#include <stdint.h>
#include <sys/types.h>

#define RESOLVE_PATH_MAX 4095
#define RESOLVE_NAME_MAX 255

/* The daemon's own directory under the data root (statefile.h): no path
 * may start with it (PERMISSION), and it is 0700, the daemon's, so no
 * peer walks into it through a symlink either. */
#define RESOLVE_STATE_DIR ".mmapiod"

/* MMAPIO_OK, MMAPIO_E_PERMISSION (absolute, "..", RESOLVE_STATE_DIR), or
 * MMAPIO_E_INVALID_ARGUMENT (NULL, empty, "." or empty component, too long,
 * not valid UTF-8 or with control characters: common/names.h). */
int resolve_check_path(const char *path);
/* Anonymous names: 1..255 bytes, no '/', not "." or "..", valid UTF-8
 * without control characters (common/names.h). */
int resolve_check_name(const char *name);

struct peer_cred;

/*
 * openat2 beneath dirfd: an fd or -errno (-EXDEV/-ELOOP for escapes).
 * With `as` (a peer other than root), the whole open is done as that peer
 * (asuser.h): the kernel decides every search and the open itself, ACLs
 * and security modules included, and a file created is born the peer's.
 * A peer whose groups are not all known gets -EACCES. Where the daemon
 * cannot act as another uid, the walk is done component by component and
 * every directory it passes through must grant `as` search permission by
 * its mode bits (-EACCES); the open itself is then the daemon's.
 */
int resolve_open(int dirfd, const char *path, int flags, mode_t mode,
                 const struct peer_cred *as);

/*
 * Unlinks `base` (one component) in dirfd as `as` (asuser.h), so the
 * kernel decides: write and search on the directory, its sticky bit, ACLs.
 * 0 or -errno; -ENOTSUP where the daemon cannot act as a peer (the caller
 * then decides from mode bits). Root (or `as` NULL): the daemon's own.
 */
int resolve_unlink(int dirfd, const char *base, const struct peer_cred *as);

/*
 * Opens the directory that holds `path` (already lexically checked) as an
 * O_PATH fd and points *base at the last component. Returns the fd or
 * -errno. A path without '/' gives a dup of root_fd.
 */
int resolve_parent(int root_fd, const char *path, const char **base,
                   const struct peer_cred *as);

#endif
