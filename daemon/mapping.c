/* mapping: a shared mapping object, its fd and its holders (see mapping.h). */
#include "mapping.h"

#include "ctl.h"
#include "flushes.h"
#include "quota.h"
#include "sd.h"
#include "server.h"
#include "watch.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static uint64_t next_id = 1;

struct mapping *mapping_new(struct daemon *d, enum map_kind kind,
                            const char *name, int fd, bool fd_writable)
{
    struct ctl *ctl = &d->ctl;
    struct mapping *m = calloc(1, sizeof(*m));
    if (m)
        m->name = strdup(name);
    if (!m || !m->name || ctl_alloc(ctl, &m->slot) < 0) {
        if (m)
            free(m->name);
        free(m);
        close(fd);
        return NULL;
    }
    m->d = d;
    m->ctl = ctl;
    m->id = next_id++;
    m->refs = 1;
    m->kind = kind;
    m->fd = fd;
    m->fd_writable = fd_writable;
    m->wd = -1;
    mmapio_flush_policy never = { MMAPIO_FLUSH_NEVER, 0 };
    mapping_set_policy(m, never);
    return m;
}

int mapping_charge(struct mapping *m)
{
    int r = quota_charge(m->d, m->owner, 1, m->size);
    m->charged = r == MMAPIO_OK;
    m->charged_bytes = m->charged ? m->size : 0;
    return r;
}

void mapping_retire_if_unused(struct mapping *m)
{
    if (m->kind != MAPPING_FILE || !m->registered || m->n_holders > 0 ||
        m->n_watches > 0)
        return;
    mapping_uncharge(m);
    watch_forget(m); /* a new mapping of this inode will watch it afresh */
    registry_remove(&m->d->reg, m);
}

void mapping_uncharge(struct mapping *m)
{
    if (m->charged)
        quota_release(m->d, m->owner, 1, m->charged_bytes);
    m->charged = false;
    m->charged_bytes = 0;
}

void mapping_set_policy(struct mapping *m, mmapio_flush_policy p)
{
    bool same = m->policy.kind == p.kind && m->policy.value == p.value;
    m->policy = p;
    atomic_store(&ctl_slot(m->ctl, m->slot)->policy, ctl_pack_policy(p));
    if (!same && m->kind == MAPPING_ANON && m->registered)
        sd_anon_changed(m->d, m);
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
    watch_forget(m);
    flushes_forget(m);
    mapping_uncharge(m);
    if (m->fd >= 0)
        close(m->fd);
    ctl_free(m->ctl, m->slot);
    free(m->name);
    free(m);
}

int mapping_grant_fd(struct mapping *m, mmapio_mode mode, int *fd, bool *owned)
{
    char proc[64];

    if (mode == MMAPIO_MODE_READ_WRITE) {
        if (!m->fd_writable)
            return MMAPIO_E_PERMISSION;
        *fd = m->fd;
        *owned = false;
        return MMAPIO_OK;
    }
    /* A new open file description that is read-only, so that no mprotect()
     * in the holder can make its shared mapping writable. */
    snprintf(proc, sizeof(proc), "/proc/self/fd/%d", m->fd);
    int ro = open(proc, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (ro < 0)
        return errno == EMFILE || errno == ENFILE ? MMAPIO_E_QUOTA
                                                   : MMAPIO_E_IO;
    *fd = ro;
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

/* Moves the owner's charge from m->charged_bytes to `size`. */
static int recharge(struct mapping *m, uint64_t size)
{
    if (!m->charged || size == m->charged_bytes)
        return MMAPIO_OK;
    if (size > m->charged_bytes) {
        if (quota_charge(m->d, m->owner, 0, size - m->charged_bytes))
            return MMAPIO_E_QUOTA;
    } else {
        quota_release(m->d, m->owner, 0, m->charged_bytes - size);
    }
    m->charged_bytes = size;
    return MMAPIO_OK;
}

int mapping_set_size(struct mapping *m, uint64_t size, const char **why)
{
    uint64_t old = mapping_sync_size(m);
    uint64_t was_charged = m->charged_bytes;

    if (size > INT64_MAX) {
        *why = "size too large";
        return MMAPIO_E_RESIZE_FAILED;
    }
    if (recharge(m, size)) {
        *why = "over the owner's max_bytes_per_uid";
        return MMAPIO_E_QUOTA;
    }
    int r = ftruncate(m->fd, (off_t)size) < 0 ? -errno : 0;
    if (r == 0 && m->kind == MAPPING_FILE && size > old) {
        r = reserve(m->fd, old, size);
        if (r < 0)
            (void)!ftruncate(m->fd, (off_t)old);
    }
    if (r < 0) {
        recharge(m, was_charged);
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

void mapping_attach(struct mapping *m, struct holder *h)
{
    h->map = mapping_ref(m);
    h->map_prev = NULL;
    h->map_next = m->holders;
    if (m->holders)
        m->holders->map_prev = h;
    m->holders = h;
    m->n_holders++;
}

void mapping_detach(struct mapping *m, struct holder *h)
{
    if (h->map_prev)
        h->map_prev->map_next = h->map_next;
    else
        m->holders = h->map_next;
    if (h->map_next)
        h->map_next->map_prev = h->map_prev;
    h->map_prev = h->map_next = NULL;
    m->n_holders--;
    h->map = NULL;
    mapping_unref(m);
}
