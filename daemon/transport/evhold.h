/*
 * evhold: MODIFIED events a connection holds back while its reader is
 * behind (has not yet read what was sent to it), merged per mapping.
 *
 * A watcher that is slower than a writer would otherwise get one event
 * per drain of the writer's ring, each re-reading ranges the next one
 * covers again. Held instead, the ranges of one mapping merge (into at
 * most EVHOLD_RANGES ranges, the nearest two joined when a new one does
 * not fit: a range may so cover bytes nobody wrote, never miss one), and
 * the watcher gets them as soon as it has read everything before. A
 * MODIFIED without a range supersedes the ranges held for its mapping.
 * At most EVHOLD_MAPS mappings are held; past that, the caller sends.
 * Only merging: the caller sends what is held before any other event or
 * reply, so nothing else changes order.
 */
#ifndef MMAPIOD_EVHOLD_H
#define MMAPIOD_EVHOLD_H

#include <stdbool.h>
#include <stdint.h>

#include "mmapio.pb-c.h"

#define EVHOLD_MAPS 8
#define EVHOLD_RANGES 4

struct evhold_range {
    uint64_t lo, hi;
};

struct evhold_map {
    uint64_t map_id;
    uint64_t size;            /* the mapping's size in the latest event */
    bool whole;               /* a MODIFIED without a range came */
    uint32_t n;
    struct evhold_range r[EVHOLD_RANGES];
};

struct evhold {
    uint32_t n;               /* mappings held, in the order first held */
    struct evhold_map m[EVHOLD_MAPS];
};

/* Merges a MODIFIED event into h. False (h unchanged) when it is not a
 * MODIFIED or a new mapping finds h full: the caller sends h, then it. */
bool evhold_add(struct evhold *h, const Mmapio__Event *ev);

/* Hands each held event to send, mappings in the order first held, and
 * empties h. */
void evhold_flush(struct evhold *h,
                  void (*send)(void *arg, Mmapio__Event *ev), void *arg);

#endif
