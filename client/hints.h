/*
 * hints: what mmapio_options asks of a new mapping's pages beyond mapping
 * them (huge pages, touching), and what the kernel made of it.
 *
 * Every hint is best effort: a kernel without transparent huge pages, a
 * madvise it does not know, a pool that is empty, none of it fails an
 * open. Only mmapio_is_hugepage_backed reports, from /proc/self/smaps,
 * what the kernel actually did. A leaf: it calls nothing of the library.
 */
#ifndef MMAPIO_CLIENT_HINTS_H
#define MMAPIO_CLIENT_HINTS_H

#include <stdbool.h>
#include <stddef.h>

#include "mmapio.h"

/* Applies the hints to [base, base+len) (base page-aligned; len 0 or base
 * NULL: nothing): MADV_HUGEPAGE when huge, then EAGER faults every page in
 * before returning (MADV_POPULATE_READ, else a read of a byte per page),
 * LAZY asks the kernel to read ahead (MADV_WILLNEED) without waiting. */
void hints_apply(void *base, size_t len, bool huge, mmapio_touch_hint touch);

/* 1 when the mapping that starts at base has huge pages (AnonHugePages,
 * ShmemPmdMapped or FilePmdMapped above 0, or a KernelPageSize above
 * 4 kB), 0 when not, MMAPIO_E_NOT_FOUND when smaps lists no mapping
 * there, MMAPIO_E_IO when smaps cannot be read. */
int hints_huge_backed(const void *base);

#endif
