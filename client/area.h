/*
 * area: the daemon's control area (common/ctlarea.h), mapped read-only
 * once per connection.
 *
 * The data path reads a mapping's slot with plain atomic loads: its flush
 * policy, whether anyone watches it, and the flush generation. The area
 * is only ever read here; a slot number the daemon gives that lies past
 * the area has no slot (NULL), never memory beyond it.
 */
#ifndef MMAPIO_CLIENT_AREA_H
#define MMAPIO_CLIENT_AREA_H

#include <stdint.h>

#include "ctlarea.h"
#include "mmapio.h"

struct area {
    const struct ctl_slot *slots; /* NULL until attached */
    uint32_t n_slots;
};

/* Maps the area whose fd (consumed) came with the hello reply; a missing
 * fd, an absurd slot count or a failed mmap is MMAPIO_E_PROTOCOL. */
int area_attach(struct area *a, int fd, uint32_t slots);
/* Unmaps it (nothing when never attached). */
void area_detach(struct area *a);
/* The slot of a granted mapping, or NULL when out of range. */
const struct ctl_slot *area_slot(const struct area *a, uint32_t slot);

#endif
