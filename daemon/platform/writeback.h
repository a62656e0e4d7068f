/*
 * writeback: how much of a file's page cache has not reached the disk.
 * One implementation per platform (platform/<system>/writeback.c, chosen
 * by meson).
 */
#ifndef MMAPIOD_WRITEBACK_H
#define MMAPIOD_WRITEBACK_H

#include <stdint.h>

struct writeback_pending {
    uint64_t dirty;     /* bytes written, not yet being written back */
    uint64_t writeback; /* bytes on their way to the disk */
};

/* Fills *out for the whole file open as fd, whenever its pages were
 * written: 0, or -errno: -ENOSYS where the system cannot tell, -EPERM
 * where it is not allowed to (a syscall filter), another for this file
 * only (-EOPNOTSUPP: its file system cannot say). */
int writeback_pending(int fd, struct writeback_pending *out);

#endif
