/* area: the control area, mapped read-only (see area.h). */
#include "area.h"

#include "proc.h"
#include "vmem.h"

#define AREA_MAX_SLOTS (1u << 24)

int area_attach(struct area *a, int fd, uint32_t slots)
{
    if (fd < 0 || slots == 0 || slots > AREA_MAX_SLOTS) {
        proc_close(fd);
        return MMAPIO_E_PROTOCOL;
    }
    size_t len = (size_t)slots * sizeof(struct ctl_slot);
    void *p = vmem_map(NULL, fd, 0, len, 0);
    proc_close(fd);
    if (!p)
        return MMAPIO_E_PROTOCOL;
    a->slots = p;
    a->n_slots = slots;
    return MMAPIO_OK;
}

void area_detach(struct area *a)
{
    if (a->slots)
        vmem_unmap((void *)a->slots, (size_t)a->n_slots * sizeof(struct ctl_slot));
    a->slots = NULL;
    a->n_slots = 0;
}

const struct ctl_slot *area_slot(const struct area *a, uint32_t slot)
{
    return slot < a->n_slots ? &a->slots[slot] : NULL;
}
