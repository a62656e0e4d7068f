/*
 * stream: stdio streams over a mapping (fopencookie), for code that reads
 * or writes a FILE *.
 *
 * The stream keeps a position of its own; the mapping keeps its length.
 * Reads copy through mmapio_read_into and writes through
 * mmapio_update_region, so they are bounds-checked against the current
 * length, guarded against a truncation, and a writer's writes count
 * toward the flush policy and reach watchers exactly like update_region.
 * Beyond that only stdio's own buffering runs: no system call. A writer
 * writes in place and never grows the mapping: a write reaching past the
 * end writes what fits and fails with ENOSPC. Seeking to any position
 * >= 0 is allowed (SEEK_END counts from the current length); reading
 * there gives end of file. fclose frees the stream, never the mapping,
 * which must outlive it.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/types.h>

#include "mmapio.h"

struct stream {
    mmapio_map *map; /* borrowed */
    uint64_t pos;
};

static ssize_t stream_read(void *cookie, char *buf, size_t size)
{
    struct stream *s = cookie;
    uint64_t len = mmapio_len(s->map);

    if (s->pos >= len || size == 0)
        return 0;
    size_t n = len - s->pos < size ? (size_t)(len - s->pos) : size;
    if (mmapio_read_into(s->map, s->pos, buf, n) != MMAPIO_OK) {
        errno = EIO;
        return -1;
    }
    s->pos += n;
    return (ssize_t)n;
}

/* What fits before the end; a short count (with ENOSPC) when not all. */
static ssize_t stream_write(void *cookie, const char *buf, size_t size)
{
    struct stream *s = cookie;
    uint64_t len = mmapio_len(s->map);
    size_t n = 0;

    if (s->pos < len)
        n = len - s->pos < size ? (size_t)(len - s->pos) : size;
    if (n > 0 && mmapio_update_region(s->map, s->pos, buf, n) != MMAPIO_OK) {
        errno = EIO;
        return 0;
    }
    s->pos += n;
    if (n < size)
        errno = ENOSPC;
    return (ssize_t)n;
}

static int stream_seek(void *cookie, off64_t *offset, int whence)
{
    struct stream *s = cookie;
    int64_t from;

    switch (whence) {
    case SEEK_SET: from = 0; break;
    case SEEK_CUR: from = (int64_t)s->pos; break;
    case SEEK_END: from = (int64_t)mmapio_len(s->map); break;
    default: errno = EINVAL; return -1;
    }
    if ((*offset < 0 && from + *offset < 0) ||
        (*offset > 0 && from > INT64_MAX - *offset)) {
        errno = EINVAL;
        return -1;
    }
    s->pos = (uint64_t)(from + *offset);
    *offset = (off64_t)s->pos;
    return 0;
}

static int stream_close(void *cookie)
{
    free(cookie);
    return 0;
}

static FILE *stream_open(mmapio_map *m, const char *how,
                         cookie_io_functions_t io)
{
    struct stream *s = malloc(sizeof(*s));
    if (!s)
        return NULL; /* errno ENOMEM */
    s->map = m;
    s->pos = 0;
    FILE *f = fopencookie(s, how, io);
    if (!f)
        free(s);
    return f;
}

FILE *mmapio_reader(mmapio_map *m)
{
    cookie_io_functions_t io = {
        .read = stream_read, .seek = stream_seek, .close = stream_close,
    };
    if (!m) {
        errno = EINVAL;
        return NULL;
    }
    return stream_open(m, "r", io);
}

/* READ_WRITE only: a READ_ONLY or COPY_ON_WRITE handle is EACCES. */
FILE *mmapio_writer(mmapio_map *m)
{
    cookie_io_functions_t io = {
        .read = stream_read, .write = stream_write, .seek = stream_seek,
        .close = stream_close,
    };
    if (!m) {
        errno = EINVAL;
        return NULL;
    }
    if (mmapio_mode_of(m) != MMAPIO_MODE_READ_WRITE) {
        errno = EACCES;
        return NULL;
    }
    return stream_open(m, "r+", io);
}
