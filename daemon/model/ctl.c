/* ctl: control-area slots (see ctl.h). */
#include "ctl.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "membackend.h"

int ctl_init(struct ctl *c, uint32_t n_slots)
{
    size_t size = (size_t)n_slots * sizeof(struct ctl_slot);
    memset(c, 0, sizeof(*c));
    c->fd = c->ro_fd = -1;
    /* 0600 (mem_section_new): no client can reopen its read-only fd
     * read-write. */
    int r = mem_section_new("mmapio-control", size, MEM_SEALABLE);
    if (r >= 0)
        c->fd = r;
    /* Nobody, not even a buggy daemon, may change the area's size. */
    if (r >= 0)
        r = mem_seal(c->fd, MEM_SEAL_SHRINK | MEM_SEAL_GROW | MEM_SEAL_SEAL);
    if (r >= 0 && (r = mem_reopen(c->fd, O_RDONLY)) >= 0)
        c->ro_fd = r;
    if (r < 0) {
        errno = -r;
        goto fail;
    }
    c->n_slots = n_slots;
    c->slots = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, c->fd, 0);
    c->free_list = malloc((size_t)n_slots * sizeof(uint32_t));
    if (c->ro_fd < 0 || c->slots == MAP_FAILED || !c->free_list)
        goto fail;
    return 0;
fail:
    r = errno ? -errno : -ENOMEM;
    if (c->slots == MAP_FAILED)
        c->slots = NULL;
    ctl_fini(c);
    return r;
}

void ctl_fini(struct ctl *c)
{
    if (c->slots)
        munmap(c->slots, (size_t)c->n_slots * sizeof(struct ctl_slot));
    if (c->fd >= 0)
        close(c->fd);
    if (c->ro_fd >= 0)
        close(c->ro_fd);
    free(c->free_list);
    memset(c, 0, sizeof(*c));
    c->fd = c->ro_fd = -1;
}

int ctl_alloc(struct ctl *c, uint32_t *slot)
{
    if (c->n_free)
        *slot = c->free_list[--c->n_free];
    else if (c->next_unused < c->n_slots)
        *slot = c->next_unused++;
    else
        return -ENOSPC;
    return 0;
}

void ctl_free(struct ctl *c, uint32_t slot)
{
    struct ctl_slot *s = &c->slots[slot];
    atomic_store(&s->policy, 0);
    atomic_store(&s->watchers, 0);
    c->free_list[c->n_free++] = slot;
}
