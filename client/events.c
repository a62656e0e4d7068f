/* events: the bounded queue of watch events (see events.h). */
#include "events.h"

void events_push(struct events *q, const Mmapio__Event *ev)
{
    if (q->len == EVENTS_MAX) {
        q->head = (q->head + 1) % EVENTS_MAX;
        q->len--;
        q->lost = true;
    }
    struct client_event *e = &q->ring[(q->head + q->len) % EVENTS_MAX];
    e->kind = ev->kind;
    e->map_id = ev->map_id;
    e->has_range = ev->has_range;
    e->offset = ev->offset;
    e->len = ev->len;
    q->len++;
}

size_t events_take(struct events *q, struct client_event *out, bool *lost)
{
    size_t n = q->len;
    for (size_t i = 0; i < n; i++)
        out[i] = q->ring[(q->head + i) % EVENTS_MAX];
    *lost = q->lost;
    q->head = q->len = 0;
    q->lost = false;
    return n;
}
