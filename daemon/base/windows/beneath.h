/*
 * beneath (Windows): a client's path turned into an open file under the
 * data root, and never anywhere else; Windows' stand-in for
 * base/resolve.c's openat2(RESOLVE_BENEATH).
 *
 * Three fences: a lexical check (the same rules as resolve_check_path,
 * plus no '\\' and no ':' — no other separator, no drive, no alternate
 * data stream); a walk that opens each component with NtCreateFile
 * relative to its parent's handle, never by a whole path, and refuses
 * every reparse point (junction, symbolic link, mount point) it meets,
 * the last component included; and each handle's final path must lie
 * beneath the root's before anything is opened beneath it (what a link
 * the walk did not see would break: wine follows Unix symbolic links).
 */
#ifndef MMAPIOD_BENEATH_H
#define MMAPIOD_BENEATH_H

#include <stdbool.h>
#include <stdint.h>
#include <windows.h>

#define BENEATH_PATH_MAX 4095
#define BENEATH_NAME_MAX 255
/* The daemon's own directory under the root, as on Linux: never a path. */
#define BENEATH_STATE_DIR ".mmapiod"

/* MMAPIO_OK, MMAPIO_E_PERMISSION (absolute, "..", a drive, the state
 * directory) or MMAPIO_E_INVALID_ARGUMENT (NULL, empty, "." or empty
 * component, '\\' or ':', too long, not valid UTF-8, control characters);
 * *why says which. */
int beneath_check_path(const char *path, const char **why);

/* Anonymous names: 1..255 bytes, no '/' or '\\', not "." or "..", valid
 * UTF-8 without control characters. MMAPIO_OK or
 * MMAPIO_E_INVALID_ARGUMENT. */
int beneath_check_name(const char *name);

enum beneath_how {
    BENEATH_OPEN,      /* it must exist */
    BENEATH_CREATE,    /* made when missing */
    BENEATH_EXCLUSIVE, /* made, or -EEXIST */
};

/*
 * Opens the regular file `path` (checked by beneath_check_path) beneath
 * the directory handle `root` with `access` (GENERIC_READ, ...; the
 * walk's directories are opened for traversal only), shared for read,
 * write and delete, by the calling thread's token: a caller that
 * impersonates a client opens as that client. *created tells whether
 * this call made it (only ever by an exclusive create, which follows no
 * link). An opportunistic lock held by anyone is never waited for
 * (-EBUSY). The file's handle or NULL and *err: -ELOOP for a link,
 * -ENOENT, -EEXIST, -EACCES, -EISDIR, -ENOTDIR.
 */
HANDLE beneath_open(HANDLE root, const char *path, ACCESS_MASK access,
                    enum beneath_how how, bool *created, int *err);

/*
 * Where an open file `f` lies beneath the directory handle `root`, by
 * both handles' final paths: its path relative to the root in UTF-8 with
 * '/' separators (passing beneath_check_path, the daemon's own folder
 * excluded) in rel[cap]: 0, or -1 when it is not beneath the root or
 * cannot be told. Only a hint: a caller reopens the path and compares
 * the file's identity before trusting it.
 */
int beneath_relative(HANDLE root, HANDLE f, char *rel, size_t cap);

#endif
