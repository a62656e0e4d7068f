/*
 * watch: subscriptions to a mapping's changes (mmapio_watch), and running
 * their callbacks for the events a connection queued (see watch.c).
 */
#ifndef MMAPIO_CLIENT_WATCH_H
#define MMAPIO_CLIENT_WATCH_H

#include "mmapio.h"

/* Runs the callbacks for the events queued on c (takes and drops the
 * lock; the callbacks run without it). Returns how many events were
 * queued. */
unsigned watch_deliver(mmapio_client *c);

#endif
