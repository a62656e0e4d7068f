/*
 * ctl: the daemon's side of the control area (see common/ctlarea.h): a
 * memfd of slots, one per live mapping, handed out and taken back here.
 * A freed slot is zeroed before it is reused.
 */
#ifndef MMAPIOD_CTL_H
#define MMAPIOD_CTL_H

#include <stdint.h>

#include "ctlarea.h"

struct ctl {
    int fd;                 /* memfd; clients get a read-only reopen */
    int ro_fd;              /* the read-only fd sent to clients */
    struct ctl_slot *slots;
    uint32_t n_slots;
    uint32_t next_unused;   /* slots [next_unused, n_slots) never used */
    uint32_t *free_list;
    uint32_t n_free;
};

/* 0 or -errno. */
int ctl_init(struct ctl *c, uint32_t n_slots);
void ctl_fini(struct ctl *c);
/* 0, or -ENOSPC when every slot is taken. */
int ctl_alloc(struct ctl *c, uint32_t *slot);
void ctl_free(struct ctl *c, uint32_t slot);
static inline struct ctl_slot *ctl_slot(struct ctl *c, uint32_t slot)
{
    return &c->slots[slot];
}

#endif
