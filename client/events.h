/*
 * events: the bounded queue of watch events a connection keeps until
 * mmapio_client_dispatch runs their callbacks.
 *
 * The queue holds EVENTS_MAX events; pushing onto a full queue drops the
 * oldest and marks the queue as having lost events, which a watcher later
 * hears of as "something changed". Plain data: the connection's lock
 * guards it, nothing here locks or makes a system call.
 */
#ifndef MMAPIO_CLIENT_EVENTS_H
#define MMAPIO_CLIENT_EVENTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mmapio.pb-c.h"

#define EVENTS_MAX 128 /* watch events kept before the oldest drop */

/* A watch event waiting for mmapio_client_dispatch. */
struct client_event {
    Mmapio__EventKind kind;
    uint64_t map_id;
    bool has_range;
    uint64_t offset, len;
};

struct events {
    struct client_event ring[EVENTS_MAX];
    size_t head, len;
    bool lost; /* events were dropped since the last take */
};

/* Appends what a watcher needs of ev, dropping the oldest when full. */
void events_push(struct events *q, const Mmapio__Event *ev);

/* Moves every queued event into out[] (room for EVENTS_MAX), oldest first,
 * and empties the queue. Returns their count; *lost says whether events
 * were dropped before them (and clears it). */
size_t events_take(struct events *q, struct client_event *out, bool *lost);

#endif
