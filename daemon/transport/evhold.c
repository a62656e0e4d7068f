/* evhold: MODIFIED events merged while a reader is behind (see evhold.h). */
#include "evhold.h"

#include <string.h>

static uint64_t gap(const struct evhold_range *a, const struct evhold_range *b)
{
    return b->lo > a->hi ? b->lo - a->hi : a->lo > b->hi ? a->lo - b->hi : 0;
}

static void join(struct evhold_range *into, const struct evhold_range *r)
{
    into->lo = r->lo < into->lo ? r->lo : into->lo;
    into->hi = r->hi > into->hi ? r->hi : into->hi;
}

/* Adds r to e's ranges, which stay disjoint and apart (not touching). */
static void add_range(struct evhold_map *e, struct evhold_range r)
{
    /* Absorb every range r touches (a gap of 0 is touching). */
    for (uint32_t i = 0; i < e->n;) {
        if (gap(&e->r[i], &r) == 0) {
            join(&r, &e->r[i]);
            e->r[i] = e->r[--e->n];
        } else {
            i++;
        }
    }
    if (e->n < EVHOLD_RANGES) {
        e->r[e->n++] = r;
        return;
    }
    /* Full: r joins the range nearest to it (so all stay apart). */
    uint32_t best = 0;
    for (uint32_t i = 1; i < e->n; i++)
        if (gap(&e->r[i], &r) < gap(&e->r[best], &r))
            best = i;
    join(&e->r[best], &r);
    for (uint32_t i = 0; i < e->n;) {
        if (i != best && gap(&e->r[i], &e->r[best]) == 0) {
            join(&e->r[best], &e->r[i]);
            e->r[i] = e->r[--e->n];
            if (best == e->n)
                best = i;
        } else {
            i++;
        }
    }
}

bool evhold_add(struct evhold *h, const Mmapio__Event *ev)
{
    if (ev->kind != MMAPIO__EVENT_KIND__EVENT_MODIFIED ||
        (ev->has_range && ev->len > UINT64_MAX - ev->offset))
        return false;
    struct evhold_map *e = NULL;
    for (uint32_t i = 0; i < h->n && !e; i++)
        if (h->m[i].map_id == ev->map_id)
            e = &h->m[i];
    if (!e) {
        if (h->n == EVHOLD_MAPS)
            return false;
        e = &h->m[h->n++];
        memset(e, 0, sizeof(*e));
        e->map_id = ev->map_id;
    }
    e->size = ev->size;
    if (!ev->has_range) {
        e->whole = true;
        e->n = 0;
    } else if (!e->whole) {
        add_range(e, (struct evhold_range){ ev->offset, ev->offset + ev->len });
    }
    return true;
}

void evhold_flush(struct evhold *h,
                  void (*send)(void *arg, Mmapio__Event *ev), void *arg)
{
    struct evhold was = *h; /* send may hold again: into an empty h */
    h->n = 0;
    for (uint32_t i = 0; i < was.n; i++) {
        const struct evhold_map *e = &was.m[i];
        Mmapio__Event ev = MMAPIO__EVENT__INIT;
        ev.kind = MMAPIO__EVENT_KIND__EVENT_MODIFIED;
        ev.map_id = e->map_id;
        ev.size = e->size;
        if (e->whole) {
            send(arg, &ev);
            continue;
        }
        ev.has_range = true;
        for (uint32_t j = 0; j < e->n; j++) {
            ev.offset = e->r[j].lo;
            ev.len = e->r[j].hi - e->r[j].lo;
            send(arg, &ev);
        }
    }
}
