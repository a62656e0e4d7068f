/*
 * span: ranges of a mapping handed to the caller — page size and
 * alignment, slices, chunk and page iteration, and segments.
 *
 * Every range is checked against the mapping's length as it stands at the
 * call (map_view: length, then base), never against a length remembered
 * from earlier: a segment made before another holder shrank the mapping
 * and this handle refreshed is out of bounds afterwards, not a pointer
 * past the end. None of these calls takes a lock or makes a system call
 * (the first writable range of a READ_WRITE handle is announced once, as
 * mmapio_as_mut_ptr does). Segment writes go through mmapio_update_region,
 * so they count toward the flush policy and reach watchers like any
 * update; segment reads go through mmapio_read_into (guarded against a
 * truncation). A pointer handed out stays mapped until mmapio_unmap (see
 * map.c), but only the bytes within the current length are the file's.
 */
#include <stdint.h>

#include "errors.h"
#include "map.h"
#include "vmem.h"

/* [offset, offset+len) lies within [0, total), without overflow. */
static bool span_fits(uint64_t offset, uint64_t len, uint64_t total)
{
    return offset <= total && len <= total - offset;
}

size_t mmapio_page_size(void)
{
    return vmem_page();
}

/* The smallest multiple of alignment >= value; 0 when none fits in 64
 * bits; value itself for alignment 0. */
uint64_t mmapio_align_up(uint64_t value, uint64_t alignment)
{
    if (alignment == 0)
        return value;
    uint64_t rest = value % alignment;
    if (rest == 0)
        return value;
    if (value > UINT64_MAX - (alignment - rest))
        return 0;
    return value + (alignment - rest);
}

/* ---- slices ---- */

/* base + offset for [offset, offset+len) of m now (NULL base and len 0
 * for an empty mapping). */
static int span_at(const mmapio_map *m, uint64_t offset, uint64_t len,
                   uint8_t **out)
{
    uint64_t total;
    uint8_t *base = map_view(m, &total);

    if (!span_fits(offset, len, total) || (uint64_t)(size_t)len != len)
        return error_set(MMAPIO_E_OUT_OF_BOUNDS, NULL);
    *out = base ? base + offset : NULL;
    return MMAPIO_OK;
}

int mmapio_as_slice(const mmapio_map *m, uint64_t offset, uint64_t len,
                    const void **out)
{
    uint8_t *p = NULL;

    if (!m || !out)
        return error_set(MMAPIO_E_INVALID_ARGUMENT, NULL);
    int r = span_at(m, offset, len, &p);
    if (r == MMAPIO_OK)
        *out = p;
    return r;
}

int mmapio_as_slice_mut(mmapio_map *m, uint64_t offset, uint64_t len,
                        void **out)
{
    uint8_t *p = NULL;

    if (!m || !out)
        return error_set(MMAPIO_E_INVALID_ARGUMENT, NULL);
    if (mmapio_mode_of(m) == MMAPIO_MODE_READ_ONLY)
        return error_set(MMAPIO_E_INVALID_MODE, NULL);
    int r = span_at(m, offset, len, &p);
    if (r != MMAPIO_OK)
        return r;
    (void)mmapio_as_mut_ptr(m); /* the RAW_WRITER notice, once */
    *out = p;
    return MMAPIO_OK;
}

/* ---- iteration ---- */

int mmapio_chunks(const mmapio_map *m, uint64_t chunk_size, mmapio_iter *it)
{
    if (!m || !it || chunk_size == 0 ||
        (uint64_t)(size_t)chunk_size != chunk_size)
        return error_set(MMAPIO_E_INVALID_ARGUMENT, NULL);
    it->map_ = m;
    it->pos_ = 0;
    it->step_ = chunk_size;
    return MMAPIO_OK;
}

int mmapio_pages(const mmapio_map *m, mmapio_iter *it)
{
    return mmapio_chunks(m, mmapio_page_size(), it);
}

/* The next chunk of up to step_ bytes below the mapping's current length;
 * false at the end (or for an iterator never set up). */
bool mmapio_iter_next(mmapio_iter *it, uint64_t *offset, const void **chunk,
                      size_t *len)
{
    uint64_t total;

    if (!it || !it->map_ || it->step_ == 0)
        return false;
    uint8_t *base = map_view(it->map_, &total);
    if (it->pos_ >= total)
        return false;
    uint64_t n = total - it->pos_ < it->step_ ? total - it->pos_ : it->step_;
    if (offset)
        *offset = it->pos_;
    if (chunk)
        *chunk = base + it->pos_;
    if (len)
        *len = (size_t)n;
    it->pos_ += n;
    return true;
}

int mmapio_chunks_mut(mmapio_map *m, uint64_t chunk_size, mmapio_chunk_fn fn,
                      void *user)
{
    mmapio_iter it = { 0 }; /* mingw's gcc cannot tell it is always set */
    uint64_t off;
    const void *chunk;
    size_t len;

    if (!fn)
        return error_set(MMAPIO_E_INVALID_ARGUMENT, NULL);
    int r = mmapio_chunks(m, chunk_size, &it);
    if (r != MMAPIO_OK)
        return r;
    if (mmapio_mode_of(m) == MMAPIO_MODE_READ_ONLY)
        return error_set(MMAPIO_E_INVALID_MODE, NULL);
    (void)mmapio_as_mut_ptr(m); /* the RAW_WRITER notice, once */
    while (mmapio_iter_next(&it, &off, &chunk, &len)) {
        r = fn(off, (void *)(uintptr_t)chunk, len, user);
        if (r != 0)
            return r;
    }
    return MMAPIO_OK;
}

/* ---- segments ---- */

int mmapio_segment_init(mmapio_segment *s, mmapio_map *m, uint64_t offset,
                        uint64_t len)
{
    if (!s || !m)
        return error_set(MMAPIO_E_INVALID_ARGUMENT, NULL);
    if (!span_fits(offset, len, mmapio_len(m)))
        return error_set(MMAPIO_E_OUT_OF_BOUNDS, NULL);
    s->parent = m;
    s->offset = offset;
    s->len = len;
    return MMAPIO_OK;
}

/* The whole segment still lies within its mapping. */
static int segment_check(const mmapio_segment *s)
{
    if (!s || !s->parent)
        return error_set(MMAPIO_E_INVALID_ARGUMENT, NULL);
    if (!span_fits(s->offset, s->len, mmapio_len(s->parent)))
        return error_set(MMAPIO_E_OUT_OF_BOUNDS, NULL);
    return MMAPIO_OK;
}

int mmapio_segment_slice(const mmapio_segment *s, const void **out)
{
    if (!s || !out)
        return error_set(MMAPIO_E_INVALID_ARGUMENT, NULL);
    return mmapio_as_slice(s->parent, s->offset, s->len, out);
}

int mmapio_segment_slice_mut(mmapio_segment *s, void **out)
{
    if (!s || !out)
        return error_set(MMAPIO_E_INVALID_ARGUMENT, NULL);
    return mmapio_as_slice_mut(s->parent, s->offset, s->len, out);
}

int mmapio_segment_read(const mmapio_segment *s, uint64_t offset, void *buf,
                        size_t len)
{
    int r = segment_check(s);
    if (r != MMAPIO_OK)
        return r;
    if (!buf && len > 0)
        return error_set(MMAPIO_E_INVALID_ARGUMENT, NULL);
    if (!span_fits(offset, len, s->len))
        return error_set(MMAPIO_E_OUT_OF_BOUNDS, NULL);
    return mmapio_read_into(s->parent, s->offset + offset, buf, len);
}

int mmapio_segment_write(mmapio_segment *s, uint64_t offset, const void *data,
                         size_t len)
{
    int r = segment_check(s);
    if (r != MMAPIO_OK)
        return r;
    if (!data && len > 0)
        return error_set(MMAPIO_E_INVALID_ARGUMENT, NULL);
    if (!span_fits(offset, len, s->len))
        return error_set(MMAPIO_E_OUT_OF_BOUNDS, NULL);
    return mmapio_update_region(s->parent, s->offset + offset, data, len);
}
