/* asyncs: requests whose replies nobody waits for (see asyncs.h). */
#include "asyncs.h"

#include <stdio.h>
#include <stdlib.h>

static struct async_op *take_pending(struct asyncs *a, uint64_t id);

int asyncs_add_direct(struct asyncs *a, uint64_t id, struct async_slot *slot)
{
    int r = asyncs_add(a, id, NULL, NULL);
    if (r == MMAPIO_OK)
        a->pending->slot = slot;
    return r;
}

void asyncs_abandon(struct asyncs *a, uint64_t id)
{
    for (struct async_op *op = a->pending; op; op = op->next)
        if (op->id == id) {
            op->slot = NULL;
            op->orphan = true;
        }
}

int asyncs_add(struct asyncs *a, uint64_t id, mmapio_done_cb cb, void *user)
{
    size_t max = a->max && a->max < ASYNCS_MAX ? a->max : ASYNCS_MAX;
    if (a->n_pending + a->n_done >= max)
        return MMAPIO_E_BUSY;
    struct async_op *op = calloc(1, sizeof(*op));
    if (!op)
        return MMAPIO_E_QUOTA;
    op->id = id;
    op->cb = cb;
    op->user = user;
    op->next = a->pending;
    a->pending = op;
    a->n_pending++;
    return MMAPIO_OK;
}

/* Unlinks pending request id; NULL when it is not pending. */
static struct async_op *take_pending(struct asyncs *a, uint64_t id)
{
    for (struct async_op **p = &a->pending; *p; p = &(*p)->next) {
        if ((*p)->id != id)
            continue;
        struct async_op *op = *p;
        *p = op->next;
        op->next = NULL;
        a->n_pending--;
        return op;
    }
    return NULL;
}

void asyncs_forget(struct asyncs *a, uint64_t id)
{
    free(take_pending(a, id));
}

static void push_done(struct asyncs *a, struct async_op *op, int result)
{
    op->result = result;
    op->next = NULL;
    if (a->done_tail)
        a->done_tail->next = op;
    else
        a->done = op;
    a->done_tail = op;
    a->n_done++;
}

/* A direct one's end: true when op was direct (freed now). */
static bool end_direct(struct async_op *op, int result, const char *message)
{
    if (!op->slot && !op->orphan)
        return false;
    if (op->slot) {
        op->slot->result = result;
        snprintf(op->slot->message, sizeof(op->slot->message), "%s",
                 message ? message : "");
    }
    free(op);
    return true;
}

int asyncs_complete(struct asyncs *a, uint64_t id, int result,
                    const char *message)
{
    struct async_op *op = take_pending(a, id);
    if (!op)
        return ASYNC_NONE;
    if (end_direct(op, result, message))
        return ASYNC_TAKEN;
    push_done(a, op, result);
    return ASYNC_DUE;
}

size_t asyncs_fail_all(struct asyncs *a, int result)
{
    size_t n = 0;
    while (a->pending) {
        struct async_op *op = a->pending;
        a->pending = op->next;
        if (end_direct(op, result, NULL))
            continue;
        push_done(a, op, result);
        n++;
    }
    a->n_pending = 0;
    return n;
}

struct async_op *asyncs_take_done(struct asyncs *a)
{
    struct async_op *list = a->done;
    a->done = a->done_tail = NULL;
    a->n_done = 0;
    return list;
}

void asyncs_run(struct async_op *list)
{
    while (list) {
        struct async_op *op = list;
        list = op->next;
        op->cb(op->result, op->user);
        free(op);
    }
}

static void free_list(struct async_op *op)
{
    while (op) {
        struct async_op *next = op->next;
        free(op);
        op = next;
    }
}

void asyncs_fini(struct asyncs *a)
{
    free_list(a->pending);
    free_list(asyncs_take_done(a));
    a->pending = NULL;
    a->n_pending = 0;
}
