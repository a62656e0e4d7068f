/* arenafds: the arena fds one connection keeps (see arenafds.h). */
#include "arenafds.h"

#include <stdlib.h>

#include "mmapio.h"
#include "proc.h"

static struct arena_fd *find(struct arena_fds *t, uint64_t id, bool writable)
{
    for (size_t i = 0; i < t->n; i++)
        if (t->v[i].id == id && t->v[i].writable == writable)
            return &t->v[i];
    return NULL;
}

int arena_fds_take(struct arena_fds *t, uint64_t id, bool writable, int fd,
                   int *out)
{
    struct arena_fd *a = find(t, id, writable);
    if (a) {
        proc_close(fd); /* the daemon thought we had none: ours is as good */
        a->maps++;
        *out = a->fd;
        return MMAPIO_OK;
    }
    if (fd < 0)
        return MMAPIO_E_PROTOCOL;
    if (t->n == t->cap) {
        size_t cap = t->cap ? 2 * t->cap : 4;
        struct arena_fd *v = realloc(t->v, cap * sizeof(*v));
        if (!v) {
            proc_close(fd);
            return MMAPIO_E_QUOTA;
        }
        t->v = v;
        t->cap = cap;
    }
    t->v[t->n++] = (struct arena_fd){ id, writable, fd, 1 };
    *out = fd;
    return MMAPIO_OK;
}

void arena_fds_put(struct arena_fds *t, uint64_t id, bool writable)
{
    struct arena_fd *a = find(t, id, writable);
    if (!a || --a->maps > 0)
        return;
    proc_close(a->fd);
    *a = t->v[--t->n];
}

int arena_fds_carry(struct arena_fds *old, uint64_t id, bool writable, int fd)
{
    struct arena_fd *a = find(old, id, writable);
    if (!a || a->fd < 0 || proc_replace(fd, a->fd) < 0)
        return fd;
    proc_close(fd);
    fd = a->fd;
    a->fd = -1;
    return fd;
}

void arena_fds_fini(struct arena_fds *t)
{
    for (size_t i = 0; i < t->n; i++)
        proc_close(t->v[i].fd);
    free(t->v);
    t->v = NULL;
    t->n = t->cap = 0;
}
