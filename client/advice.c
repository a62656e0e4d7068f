/*
 * advice: telling the kernel how a mapping will be used — madvise advice,
 * prefetching, touching pages ahead of use, and locking them in RAM.
 *
 * Ranges are checked against the mapping's current length
 * (MMAPIO_E_OUT_OF_BOUNDS) and need not be page-aligned: the call covers
 * every page the range touches. An empty range does nothing and succeeds.
 * Touching reads one byte per page (through mmapio_read_into, so a page
 * truncated away by another holder is MMAPIO_E_IO, not a SIGBUS): a read
 * fault maps the page of a shared mapping, and unlike a write it neither
 * dirties the page nor gives a copy-on-write handle private copies.
 * Locking is of the handle's own pages (never the whole process), through
 * platform/vmem.h, whose lock no sanitizer's interceptor turns into a
 * silent no-op: a program built with one still gets its pages locked (or
 * the error).
 */
#include <stdint.h>

#include "errors.h"
#include "map.h"
#include "vmem.h"

/* The whole pages of [offset, offset+len) of m now: 1 and the span, 0
 * for an empty range, or a negative error (recorded). */
static int advice_pages(const mmapio_map *m, uint64_t offset, uint64_t len,
                        void **start, size_t *span)
{
    uint64_t total;
    uint8_t *base = map_view(m, &total);

    if (offset > total || len > total - offset)
        return error_set(MMAPIO_E_OUT_OF_BOUNDS, NULL);
    if (len == 0 || !base)
        return 0;
    uint64_t first = offset & ~(uint64_t)(map_page_of(m) - 1);
    *start = base + first;
    *span = (size_t)(offset + len - first); /* the kernel rounds the end */
    return 1;
}

static int advice_to_vmem(mmapio_advice advice)
{
    switch (advice) {
    case MMAPIO_ADVICE_NORMAL: return VMEM_NORMAL;
    case MMAPIO_ADVICE_RANDOM: return VMEM_RANDOM;
    case MMAPIO_ADVICE_SEQUENTIAL: return VMEM_SEQUENTIAL;
    case MMAPIO_ADVICE_WILL_NEED: return VMEM_WILL_NEED;
    case MMAPIO_ADVICE_DONT_NEED: return VMEM_DONT_NEED;
    }
    return -1;
}

int mmapio_advise(mmapio_map *m, uint64_t offset, uint64_t len,
                  mmapio_advice advice)
{
    void *start;
    size_t span;
    int madv = advice_to_vmem(advice);

    if (!m || madv < 0)
        return error_set(MMAPIO_E_INVALID_ARGUMENT, NULL);
    int r = advice_pages(m, offset, len, &start, &span);
    if (r <= 0)
        return r;
    if (vmem_advise(start, span, (enum vmem_advice)madv) != 0)
        return error_set(MMAPIO_E_ADVICE_FAILED, NULL);
    return MMAPIO_OK;
}

int mmapio_prefetch_range(mmapio_map *m, uint64_t offset, uint64_t len)
{
    return mmapio_advise(m, offset, len, MMAPIO_ADVICE_WILL_NEED);
}

int mmapio_touch_pages_range(mmapio_map *m, uint64_t offset, uint64_t len)
{
    void *start;
    size_t span;
    uint8_t byte;

    if (!m)
        return error_set(MMAPIO_E_INVALID_ARGUMENT, NULL);
    int r = advice_pages(m, offset, len, &start, &span);
    if (r <= 0)
        return r;
    uint64_t first = offset & ~(uint64_t)(map_page_of(m) - 1);
    for (uint64_t at = first; at < offset + len; at += map_page_of(m)) {
        r = mmapio_read_into(m, at, &byte, 1);
        if (r != MMAPIO_OK)
            return r;
    }
    return MMAPIO_OK;
}

int mmapio_touch_pages(mmapio_map *m)
{
    return mmapio_touch_pages_range(m, 0, mmapio_len(m));
}

int mmapio_lock(mmapio_map *m, uint64_t offset, uint64_t len)
{
    void *start;
    size_t span;

    if (!m)
        return error_set(MMAPIO_E_INVALID_ARGUMENT, NULL);
    int r = advice_pages(m, offset, len, &start, &span);
    if (r <= 0)
        return r;
    if (vmem_lock(start, span) != 0)
        return error_set(MMAPIO_E_LOCK_FAILED, NULL);
    return MMAPIO_OK;
}

int mmapio_unlock(mmapio_map *m, uint64_t offset, uint64_t len)
{
    void *start;
    size_t span;

    if (!m)
        return error_set(MMAPIO_E_INVALID_ARGUMENT, NULL);
    int r = advice_pages(m, offset, len, &start, &span);
    if (r <= 0)
        return r;
    if (vmem_unlock(start, span) != 0)
        return error_set(MMAPIO_E_UNLOCK_FAILED, NULL);
    return MMAPIO_OK;
}

int mmapio_lock_all(mmapio_map *m)
{
    return mmapio_lock(m, 0, mmapio_len(m));
}

int mmapio_unlock_all(mmapio_map *m)
{
    return mmapio_unlock(m, 0, mmapio_len(m));
}
