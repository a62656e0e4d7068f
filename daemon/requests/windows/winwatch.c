/*
 * winwatch (Windows): watches and events (winwatch.h).
 */
#include "winwatch.h"

#include <stdlib.h>

#include "policy.h"

#define MAX_WATCHES_PER_CLIENT 256

/* An event to every watcher of m. A watcher that does not read its
 * events is dropped with the connection (the bytes queued toward it are
 * bounded), not told OVERFLOW. */
void winwatch_notify(struct winops *w, struct wmap *m, Mmapio__EventKind kind, bool range,
                   uint64_t off, uint64_t len)
{
    Mmapio__Event ev = MMAPIO__EVENT__INIT;
    Mmapio__FlushPolicy pol;
    ev.kind = kind;
    ev.map_id = m->id;
    ev.size = m->size;
    policy_to_wire(m->policy, &pol);
    ev.policy = &pol;
    ev.has_range = range;
    ev.offset = off;
    ev.len = len;
    Mmapio__ServerMessage msg = MMAPIO__SERVER_MESSAGE__INIT;
    msg.body_case = MMAPIO__SERVER_MESSAGE__BODY_EVENT;
    msg.event = &ev;
    uint8_t buf[128]; /* an Event packs to well under this */
    size_t n = mmapio__server_message__get_packed_size(&msg);
    if (n > sizeof(buf))
        return;
    mmapio__server_message__pack(&msg, buf);
    for (struct wwatch *x = w->watches; x; x = x->next)
        if (x->m == m && w->port.send(x->s->conn, buf, n, NULL, NULL, 0) < 0)
            w->port.close_when_sent(x->s->conn);
}

void winwatch_drop(struct winops *w, struct wwatch *x)
{
    for (struct wwatch **p = &w->watches; *p; p = &(*p)->next)
        if (*p == x) {
            *p = x->next;
            break;
        }
    x->s->n_watches--;
    x->m->watchers--;
    atomic_fetch_sub(&w->slots[x->m->slot].watchers, 1);
    map_maybe_free(w, x->m);
    free(x);
}

void winwatch_request(struct wsession *s, uint64_t id, const Mmapio__Watch *wa)
{
    struct wholder *h = find_holder(s, id, wa->handle);
    if (!h)
        return;
    struct wwatch *x = s->n_watches < MAX_WATCHES_PER_CLIENT ? calloc(1, sizeof(*x)) : NULL;
    if (!x) {
        reply_err(s, id, MMAPIO_E_QUOTA, "cannot watch: %d watches per client at most",
                  MAX_WATCHES_PER_CLIENT);
        return;
    }
    *x = (struct wwatch){.next = s->w->watches, .id = ++s->w->next_watch, .s = s,
                         .m = h->m};
    s->w->watches = x;
    s->n_watches++;
    h->m->watchers++;
    atomic_fetch_add(&s->w->slots[h->m->slot].watchers, 1); /* writers notice now */
    Mmapio__WatchReply wr = MMAPIO__WATCH_REPLY__INIT;
    wr.watch_id = x->id;
    wr.map_id = h->m->id;
    Mmapio__Reply r = MMAPIO__REPLY__INIT;
    r.id = id;
    r.result_case = MMAPIO__REPLY__RESULT_WATCH;
    r.watch = &wr;
    send_reply(s, &r, NULL, 0);
}

void winwatch_unwatch(struct wsession *s, uint64_t id, const Mmapio__Unwatch *u)
{
    struct wwatch *x = s->w->watches;
    while (x && !(x->s == s && x->id == u->watch_id))
        x = x->next;
    if (!x) {
        reply_err(s, id, MMAPIO_E_NOT_FOUND, "no watch %llu on this connection",
                  (unsigned long long)u->watch_id);
        return;
    }
    winwatch_drop(s->w, x);
    reply_ok(s, id);
}
