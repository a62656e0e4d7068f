/*
 * membackend: the operating system's anonymous shared memory and the file
 * calls mappings need beyond POSIX. One implementation per platform
 * (platform/<system>/membackend.c, chosen by meson).
 *
 * A section is an fd of anonymous memory that can be mapped shared,
 * passed to another process and reopened; on Linux a memfd. Every call
 * returns 0 (or an fd) on success and -errno on failure; none blocks on
 * anything a client controls.
 */
#ifndef MMAPIOD_MEMBACKEND_H
#define MMAPIOD_MEMBACKEND_H

#include <stddef.h>
#include <stdint.h>

/* mem_section_new flags. */
enum {
    MEM_SEALABLE = 1, /* seals may be added later (mem_seal) */
    MEM_HUGETLB = 2,  /* from the huge page pool (sized in whole pages) */
};

/* mem_seal seals: once added they stay, for every holder of the section. */
enum {
    MEM_SEAL_SHRINK = 1, /* the size can no longer go down */
    MEM_SEAL_GROW = 2,   /* nor up */
    MEM_SEAL_SEAL = 4,   /* no further seal can be added */
};

/* A new section named `label` (shown in the platform's listings, cut to
 * what the platform keeps: 249 bytes on Linux), `size`
 * bytes (0: left empty), mode 0600, close-on-exec: its fd or -errno. */
int mem_section_new(const char *label, uint64_t size, unsigned flags);

/* Adds `seals` (MEM_SEAL_*) to a section made MEM_SEALABLE: 0 or -errno
 * (-EPERM when MEM_SEAL_SEAL was added before). */
int mem_seal(int fd, unsigned seals);

/* The seals (MEM_SEAL_*) fd carries, 0 for none, or -errno (-EINVAL when
 * fd is not a section that can carry seals). */
int mem_seals(int fd);

/* A new open file description of the file or section fd refers to, with
 * open(2) `flags` (O_RDONLY or O_RDWR, plus O_NONBLOCK and the like;
 * close-on-exec always), checked against the file's mode as an open by
 * path would be: the new fd or -errno (retried on EINTR). */
int mem_reopen(int fd, int flags);

/* The path fd was opened by, as the system knows it now (a renamed file's
 * new name; a section's is the platform's own, never a path under any
 * directory), NUL-terminated in buf: its length, or -errno (-ENAMETOOLONG
 * when cap is too small). */
int mem_fd_path(int fd, char *buf, size_t cap);

/* Whether fd is a section (of anyone's making): 1, 0, or -errno. */
int mem_is_section(int fd);

/* The label fd's section was made with (as the platform kept it), cut to
 * cap - 1 bytes, NUL-terminated in buf: its full length, -EINVAL when fd
 * is not a section, or -errno. Asks nothing of the file itself (a FUSE
 * file's server is never waited on). */
int mem_section_label(int fd, char *buf, size_t cap);

/* Frees the bytes of [from, to) of fd, which read as zeros from then on;
 * the size is kept. 0 or -errno. */
int mem_punch(int fd, uint64_t from, uint64_t to);

/* Allocates the blocks of [from, to) of a file so that writes there
 * cannot fail for want of space; the file grows to `to` if shorter.
 * 0, -EOPNOTSUPP when the file system cannot, or -errno (-ENOSPC). */
int mem_reserve(int fd, uint64_t from, uint64_t to);

#endif
