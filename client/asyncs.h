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
 *
 * A request may also be silent (no callback: mmapio_unmap's Close): its
 * reply is dropped by whichever read meets it, and nobody hears of it. At
 * most half of `max` are pending at once beside the callbacks, so that
 * together they stay below the daemon's max_inflight, and releases never
 * take the room of mmapio_flush_async.
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
    size_t n_pending, n_done;  /* n_pending counts the silent too */
    size_t n_silent;           /* pending without a callback */
    size_t max;                /* 0: ASYNCS_MAX */
};

/* Records request id as pending (cb NULL: silent): MMAPIO_OK,
 * MMAPIO_E_BUSY when the most allowed of its kind are owed, MMAPIO_E_QUOTA
 * out of memory. */
int asyncs_add(struct asyncs *a, uint64_t id, mmapio_done_cb cb, void *user);
/* Forgets a pending request that could not be sent (no callback). */
void asyncs_forget(struct asyncs *a, uint64_t id);
/* The reply to id came with `result`: ASYNC_DUE when id was pending with
 * a callback (done now), ASYNC_DROPPED when it was a silent one (gone),
 * ASYNC_UNKNOWN when nobody waits for it. */
enum async_outcome { ASYNC_UNKNOWN, ASYNC_DUE, ASYNC_DROPPED };
enum async_outcome asyncs_complete(struct asyncs *a, uint64_t id, int result);
/* Every pending request is done with `result` (the connection died),
 * the silent ones dropped; returns how many callbacks are due. */
size_t asyncs_fail_all(struct asyncs *a, int result);
/* Takes the done list, oldest first, for asyncs_run. */
struct async_op *asyncs_take_done(struct asyncs *a);
/* Runs each callback of a taken list, in order, and frees it. */
void asyncs_run(struct async_op *list);
/* Frees everything; no callback runs (the connection is being freed). */
void asyncs_fini(struct asyncs *a);

#endif
