/* mapping: a shared mapping object, its fd and its holders (see mapping.h). */
#include "mapping.h"

#include "ctl.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct mapping *mapping_new(struct mapping_env *env, enum map_kind kind,
                            const char *name, int fd, bool fd_writable)
{
    struct mapping *m = calloc(1, sizeof(*m));
    if (m)
        m->name = strdup(name);
    if (!m || !m->name || ctl_alloc(&env->ctl, &m->slot) < 0) {
        if (m)
            free(m->name);
        free(m);
        close(fd);
        return NULL;
    }
    m->env = env;
    m->id = env->next_id++;
    m->refs = 1;
    m->kind = kind;
    m->fd = fd;
    m->fd_writable = fd_writable;
    m->policy = (mmapio_flush_policy){ MMAPIO_FLUSH_NEVER, 0 };
    atomic_store(&ctl_slot(&env->ctl, m->slot)->policy, ctl_pack_policy(m->policy));
    return m;
}

void mapping_changed(struct mapping *m, enum mapping_change what,
                     const void *origin)
{
    for (struct mapping_hook *h = m->env->hooks; h; h = h->next)
        h->fn(h, m, what, origin);
}

void mapping_pin(struct mapping *m)
{
    m->pins++;
}

void mapping_unpin(struct mapping *m)
{
    m->pins--;
}

void mapping_set_policy(struct mapping *m, mmapio_flush_policy p,
                        const void *origin)
{
    m->policy = p;
    atomic_store(&ctl_slot(&m->env->ctl, m->slot)->policy, ctl_pack_policy(p));
    mapping_changed(m, MAPPING_POLICY, origin);
}

void mapping_mark_removed(struct mapping *m)
{
    if (m->removed)
        return;
    m->removed = true;
    mapping_changed(m, MAPPING_REMOVED, NULL);
}

struct mapping *mapping_ref(struct mapping *m)
{
    m->refs++;
    return m;
}

void mapping_unref(struct mapping *m)
{
    if (!m || --m->refs > 0)
        return;
    m->refs = 1; /* observers may look at it (and take no reference) */
    mapping_changed(m, MAPPING_FREED, NULL);
    if (m->fd >= 0)
        close(m->fd);
    ctl_free(&m->env->ctl, m->slot);
    free(m->name);
    free(m);
}

/*
 * Every holder gets an open file description of its own, reopened through
 * /proc: read-only for read-only and copy-on-write holders, so that no
 * mprotect() can make their mapping writable; read-write for writers, so
 * that nothing a holder does to its description (O_APPEND, O_ASYNC, OFD
 * locks, F_SETLEASE) reaches the daemon's. O_NONBLOCK: an open that would
 * break a lease (someone's F_SETLEASE) fails with EWOULDBLOCK at once
 * instead of waiting out lease-break-time on the event loop. Anonymous
 * memfds are 0600 and the daemon's: it may reopen them either way.
 */
int mapping_grant_fd(struct mapping *m, mmapio_mode mode, int *fd, bool *owned)
{
    char proc[64];
    int flags = O_RDONLY;

    if (mode == MMAPIO_MODE_READ_WRITE) {
        if (!m->fd_writable)
            return MMAPIO_E_PERMISSION;
        flags = O_RDWR;
    }
    snprintf(proc, sizeof(proc), "/proc/self/fd/%d", m->fd);
    int nfd;
    do {
        nfd = open(proc, flags | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
    } while (nfd < 0 && errno == EINTR);
    if (nfd < 0) {
        if (errno == EWOULDBLOCK)
            return MMAPIO_E_BUSY;
        if (errno == EACCES || errno == EPERM) /* the file's mode changed */
            return MMAPIO_E_PERMISSION;
        return errno == EMFILE || errno == ENFILE ? MMAPIO_E_QUOTA
                                                   : MMAPIO_E_IO;
    }
    *fd = nfd;
    *owned = true;
    return MMAPIO_OK;
}

static int reserve(int fd, uint64_t from, uint64_t to)
{
    int r;
    do {
        r = fallocate(fd, 0, (off_t)from, (off_t)(to - from));
    } while (r < 0 && errno == EINTR);
    if (r < 0 && errno != EOPNOTSUPP && errno != ENOSYS)
        return -errno;
    return 0;
}

int mapping_set_size(struct mapping *m, uint64_t size, const char **why)
{
    uint64_t old = mapping_sync_size(m);

    if (size > INT64_MAX) {
        *why = "size too large";
        return MMAPIO_E_RESIZE_FAILED;
    }
    int r = ftruncate(m->fd, (off_t)size) < 0 ? -errno : 0;
    if (r == 0 && m->kind == MAPPING_FILE && size > old) {
        r = reserve(m->fd, old, size);
        if (r < 0)
            (void)!ftruncate(m->fd, (off_t)old);
    }
    if (r < 0) {
        *why = strerror(-r);
        return r == -EFBIG || r == -ENOSPC || r == -EDQUOT
                   ? MMAPIO_E_QUOTA : MMAPIO_E_RESIZE_FAILED;
    }
    m->size = size;
    return MMAPIO_OK;
}

uint64_t mapping_sync_size(struct mapping *m)
{
    struct stat st;
    if (fstat(m->fd, &st) == 0)
        m->size = (uint64_t)st.st_size;
    return m->size;
}

void mapping_attach(struct mapping *m, struct holder *h,
                    struct holder_list *owner_list)
{
    h->map = mapping_ref(m);
    h->map_prev = NULL;
    h->map_next = m->holders;
    if (m->holders)
        m->holders->map_prev = h;
    m->holders = h;
    m->n_holders++;
    h->owner_prev = NULL;
    h->owner_next = owner_list->first;
    if (owner_list->first)
        owner_list->first->owner_prev = h;
    owner_list->first = h;
    owner_list->n++;
}

void mapping_detach(struct holder *h, struct holder_list *owner_list)
{
    struct mapping *m = h->map;
    if (h->map_prev)
        h->map_prev->map_next = h->map_next;
    else
        m->holders = h->map_next;
    if (h->map_next)
        h->map_next->map_prev = h->map_prev;
    h->map_prev = h->map_next = NULL;
    m->n_holders--;
    if (h->owner_prev)
        h->owner_prev->owner_next = h->owner_next;
    else
        owner_list->first = h->owner_next;
    if (h->owner_next)
        h->owner_next->owner_prev = h->owner_prev;
    h->owner_prev = h->owner_next = NULL;
    owner_list->n--;
    h->map = NULL;
    mapping_unref(m);
}
