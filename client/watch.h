/*
 * watch: subscriptions to a mapping's changes (mmapio_watch), and running
 * their callbacks for the events a connection queued (see watch.c).
 */
#ifndef MMAPIO_CLIENT_WATCH_H
#define MMAPIO_CLIENT_WATCH_H

#include <stddef.h>

#include "mmapio.h"

/* Runs the callbacks for the events queued on c (takes and drops the
 * lock; the callbacks run without it). Returns how many events were
 * queued. */
unsigned watch_deliver(mmapio_client *c);

/*
 * mmapio_reconnect, after the handles (lock held): each watcher of a
 * re-attached handle (pairs from map_rejoin_all_locked) and each watcher
 * by name watches again and will hear MMAPIO_CHANGE_RECONNECTED; one
 * whose mapping did not come back stays quiet (its REMOVED or NOT_FOUND
 * is the handle's). A new daemon that went away meanwhile:
 * MMAPIO_E_DISCONNECTED.
 */
struct map_rejoined;
int watch_rejoin_locked(mmapio_client *c, const struct map_rejoined *pairs,
                        size_t n);

#endif
