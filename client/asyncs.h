/*
 * asyncs: requests sent without waiting for their reply (mmapio_flush_async),
 * as a connection keeps them until their callbacks run.
 *
 * A request is "pending" from its sending until its reply, matched by id,
 * arrives (or the connection dies); then it is "done", and waits with its
 * result for mmapio_client_dispatch to run its callback, outside the
 * connection's lock. At most ASYNCS_MAX are pending at once. Plain data:
 * the connection's lock guards it; nothing here locks or makes a system
 * call, and callbacks run only from asyncs_run. At most `max` (at most
 * ASYNCS_MAX) callbacks are owed at once, pending or done.
 */
#ifndef MMAPIO_CLIENT_ASYNCS_H
#define MMAPIO_CLIENT_ASYNCS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mmapio.h"

/* Callbacks owed at once (pending or done), per connection. Below the
 * daemon's max_inflight (64 by default) with room to spare: past it the
 * daemon stops reading, and a request blocked on sending while replies
 * wait unread would never finish. */
#define ASYNCS_MAX 32

struct async_op {
    uint64_t id;
    mmapio_done_cb cb;
    void *user;
    int result;
    struct async_op *next;
};

struct asyncs {
    struct async_op *pending;  /* newest first */
    struct async_op *done, *done_tail; /* oldest first */
    size_t n_pending, n_done;
    size_t max;                /* 0: ASYNCS_MAX */
};

/* Records request id as pending: MMAPIO_OK, MMAPIO_E_BUSY when the
 * most allowed are owed, MMAPIO_E_QUOTA out of memory. */
int asyncs_add(struct asyncs *a, uint64_t id, mmapio_done_cb cb, void *user);
/* Forgets a pending request that could not be sent (no callback). */
void asyncs_forget(struct asyncs *a, uint64_t id);
/* The reply to id came with `result`: true when id was pending (it is
 * done now), false when nobody waits for it. */
bool asyncs_complete(struct asyncs *a, uint64_t id, int result);
/* Every pending request is done with `result` (the connection died);
 * returns how many. */
size_t asyncs_fail_all(struct asyncs *a, int result);
/* Takes the done list, oldest first, for asyncs_run. */
struct async_op *asyncs_take_done(struct asyncs *a);
/* Runs each callback of a taken list, in order, and frees it. */
void asyncs_run(struct async_op *list);
/* Frees everything; no callback runs (the connection is being freed). */
void asyncs_fini(struct asyncs *a);

#endif
