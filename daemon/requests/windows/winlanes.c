/*
 * winlanes (Windows): per-uid round robin (winlanes.h).
 */
#include "winlanes.h"

#include <stdlib.h>

struct wlane_queue {
    uint32_t uid;
    struct wlane_item *head, **tail;
    struct wlane_queue *next; /* the ring (circular) */
};

bool wlane_put(struct wlane *l, struct wlane_item *it)
{
    struct wlane_queue *q = l->turn, *prev = NULL;
    if (q)
        do { /* prev ends as the last on the ring (before the turn) */
            if (q->uid == it->uid)
                break;
            prev = q;
            q = q->next;
        } while (q != l->turn);
    if (!q || q->uid != it->uid) {
        if (!(q = calloc(1, sizeof(*q))))
            return false;
        q->uid = it->uid;
        q->tail = &q->head;
        if (!l->turn) {
            q->next = q;
            l->turn = q;
        } else { /* last: just before the one whose turn it is */
            prev->next = q;
            q->next = l->turn;
        }
    }
    it->next = NULL;
    *q->tail = it;
    q->tail = &it->next;
    return true;
}

struct wlane_item *wlane_take(struct wlane *l)
{
    struct wlane_queue *q = l->turn;
    if (!q)
        return NULL;
    struct wlane_item *it = q->head;
    q->head = it->next;
    if (q->head) {
        l->turn = q->next;
        return it;
    }
    /* q is empty: off the ring. */
    if (q->next == q) {
        l->turn = NULL;
    } else {
        struct wlane_queue *prev = q;
        while (prev->next != q)
            prev = prev->next;
        prev->next = q->next;
        l->turn = q->next;
    }
    free(q);
    return it;
}
