/*
 * winlanes (Windows): a lane of work shared fairly between uids, as the
 * Linux flusher's lanes: each uid's items wait in its own queue (in
 * order), and the uids with items take turns (round robin), so one uid's
 * flood cannot delay another's items. Used on the loop only: no lock.
 */
#ifndef MMAPIOD_WINLANES_H
#define MMAPIOD_WINLANES_H

#include <stdbool.h>
#include <stdint.h>

/* Embedded in what waits. */
struct wlane_item {
    struct wlane_item *next;
    uint32_t uid;
};

struct wlane {
    struct wlane_queue *turn; /* the ring of uids with items; served next */
};

/* Queues `it` behind its uid's items: false without memory. */
bool wlane_put(struct wlane *l, struct wlane_item *it);
/* The next item by the turns, or NULL when the lane is empty. */
struct wlane_item *wlane_take(struct wlane *l);

#endif
