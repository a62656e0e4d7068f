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

/* Where a direct request's result goes (the waiter's): result > 0 until
 * the reply, and the reply's message. */
struct async_slot {
    int result;
    char message[256];
};

struct async_op {
    uint64_t id;
    mmapio_done_cb cb;
    void *user;
    int result;
    struct async_slot *slot; /* a direct one's: its result goes here, no callback */
    bool orphan;   /* a direct one given up: its reply is dropped */
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
/* A request whose waiter reads its result itself (client_call_long):
 * the reply writes it to *slot (lock held), no callback, not counted for
 * the dispatch. Same limits and results as asyncs_add. */
int asyncs_add_direct(struct asyncs *a, uint64_t id, struct async_slot *slot);
/* A direct request's waiter gave up: its reply, if one comes, is dropped. */
void asyncs_abandon(struct asyncs *a, uint64_t id);
/* Forgets a pending request that could not be sent (no callback). */
void asyncs_forget(struct asyncs *a, uint64_t id);
/* The reply to id came with `result`: ASYNC_DUE when id was pending
 * (its callback is due now), ASYNC_TAKEN when it was a direct one (its
 * result written, or dropped), ASYNC_NONE when nobody waits for it.
 * A direct one's slot gets `message` too (NULL: none). */
enum { ASYNC_NONE, ASYNC_DUE, ASYNC_TAKEN };
int asyncs_complete(struct asyncs *a, uint64_t id, int result,
                    const char *message);
/* Every pending request is done with `result` (the connection died);
 * returns how many callbacks that made due (direct ones are not). */
size_t asyncs_fail_all(struct asyncs *a, int result);
/* Takes the done list, oldest first, for asyncs_run. */
struct async_op *asyncs_take_done(struct asyncs *a);
/* Runs each callback of a taken list, in order, and frees it. */
void asyncs_run(struct async_op *list);
/* Frees everything; no callback runs (the connection is being freed). */
void asyncs_fini(struct asyncs *a);

#endif
