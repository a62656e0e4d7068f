/*
 * ctlarea: the control area, a memfd of fixed-size slots that the daemon
 * writes and every client maps read-only (its fd rides on the hello reply).
 * Each mapping owns one slot for its lifetime. Through it a client learns,
 * with a plain load and no system call, the mapping's current flush policy,
 * whether anyone watches it, and whether the daemon has flushed since this
 * handle last said it was dirty.
 *
 * Only the daemon can write the area: a client cannot change another's
 * policy or hide its writes. What a client can read in other slots are
 * policies, flush generations and watcher counts: no data, no names.
 */
#ifndef MMAPIO_CTLAREA_H
#define MMAPIO_CTLAREA_H

#include <stdatomic.h>
#include <stdint.h>

#include "mmapio.h"

struct ctl_slot {
    _Atomic uint64_t policy;    /* kind << 56 | value */
    _Atomic uint32_t flush_gen; /* bumped as the daemon starts a timed flush */
    _Atomic uint32_t watchers;  /* > 0: writes are reported to the daemon */
};

#define CTL_POLICY_VALUE_MAX ((UINT64_C(1) << 56) - 1)

static inline uint64_t ctl_pack_policy(mmapio_flush_policy p)
{
    return ((uint64_t)p.kind << 56) | (p.value & CTL_POLICY_VALUE_MAX);
}

static inline mmapio_flush_policy ctl_unpack_policy(uint64_t v)
{
    mmapio_flush_policy p = { (mmapio_flush_kind)(v >> 56), v & CTL_POLICY_VALUE_MAX };
    return p;
}

#endif
