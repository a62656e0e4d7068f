/*
 * hugepages: what the hugetlb pool holds, as /proc/meminfo says (or,
 * where it is hidden, a hugetlb memfd's block size and sysfs).
 *
 * Read at the moment an anonymous mapping asks for huge pages: the answer
 * may be stale a moment later (another process may take the pages), so a
 * caller treats it as a hint and falls back when the kernel refuses.
 */
#ifndef MMAPIOD_HUGEPAGES_H
#define MMAPIOD_HUGEPAGES_H

#include <stdbool.h>
#include <stdint.h>

/* The default huge page size and the bytes free in its pool; false when
 * the kernel has no pool (or neither source can be read). */
bool hugepages_pool(uint64_t *page_size, uint64_t *free_bytes);

#endif
