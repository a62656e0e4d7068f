/* hints: huge pages and touching of a new mapping (see hints.h). */
#include "hints.h"

#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#ifndef MADV_POPULATE_READ
#define MADV_POPULATE_READ 22 /* Linux 5.14; older kernels say EINVAL */
#endif

/* Reads a byte of every page, so that each is faulted in. */
static void touch_each(const volatile uint8_t *p, size_t len, size_t page)
{
    for (size_t off = 0; off < len; off += page)
        (void)p[off];
}

void hints_apply(void *base, size_t len, bool huge, mmapio_touch_hint touch)
{
    if (!base || len == 0)
        return;
    long page = sysconf(_SC_PAGESIZE);
    if (huge)
        (void)madvise(base, len, MADV_HUGEPAGE); /* EINVAL: hugetlb, no THP */
    if (touch == MMAPIO_TOUCH_EAGER &&
        madvise(base, len, MADV_POPULATE_READ) != 0)
        touch_each(base, len, page > 0 ? (size_t)page : 4096);
    else if (touch == MMAPIO_TOUCH_LAZY)
        (void)madvise(base, len, MADV_WILLNEED);
}

/* The smaps fields that say "huge": a size in kB above 0 (or above 4 for
 * the page size). -1: not such a field. */
static int huge_field(const char *line)
{
    static const char *const big[] = { "AnonHugePages:", "ShmemPmdMapped:",
                                       "FilePmdMapped:" };
    unsigned long long kib;
    for (size_t i = 0; i < sizeof(big) / sizeof(big[0]); i++) {
        size_t n = strlen(big[i]);
        if (strncmp(line, big[i], n) == 0 &&
            sscanf(line + n, "%llu", &kib) == 1)
            return kib > 0;
    }
    if (sscanf(line, "KernelPageSize: %llu", &kib) == 1)
        return kib > 4;
    return -1;
}

/* A VMA's first line: "start-end perms ...". */
static bool vma_header(const char *line, uintptr_t *start)
{
    unsigned long long s, e;
    if (sscanf(line, "%llx-%llx ", &s, &e) != 2)
        return false;
    *start = (uintptr_t)s;
    return true;
}

int hints_huge_backed(const void *base)
{
    FILE *f = fopen("/proc/self/smaps", "re");
    char line[512];
    bool in = false, found = false;
    int huge = 0;

    if (!f)
        return MMAPIO_E_IO;
    while (fgets(line, sizeof(line), f)) {
        uintptr_t start;
        if (vma_header(line, &start)) {
            if (in)
                break;
            in = found = start == (uintptr_t)base;
            continue;
        }
        if (in && huge_field(line) == 1)
            huge = 1;
    }
    fclose(f);
    return found ? huge : MMAPIO_E_NOT_FOUND;
}
