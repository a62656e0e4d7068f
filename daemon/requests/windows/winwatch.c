/*
 * winwatch (Windows): watches and events (winwatch.h).
 */
#include "winwatch.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "policy.h"
#include "reqmsg.h"
#include "watchsys.h"

#define MAX_WATCHES_PER_CLIENT 256
#define HOLD_MAX_MS 1000 /* a writer's hold is capped at this, as on Linux */
#define HOLD_GRACE_MS 20 /* for its merged range to arrive first */

/* An event to every watcher of m. A watcher that does not read its
 * events loses them and is told OVERFLOW later (port.send_event), as on
 * Linux; the writer never waits. */
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
        if (x->m == m)
            w->port.send_event(x->s->conn, buf, n);
}

size_t winwatch_overflow(uint8_t *buf, size_t cap)
{
    Mmapio__Event ev = MMAPIO__EVENT__INIT;
    ev.kind = MMAPIO__EVENT_KIND__EVENT_OVERFLOW;
    Mmapio__ServerMessage msg = MMAPIO__SERVER_MESSAGE__INIT;
    msg.body_case = MMAPIO__SERVER_MESSAGE__BODY_EVENT;
    msg.event = &ev;
    size_t n = mmapio__server_message__get_packed_size(&msg);
    if (n > cap)
        return 0;
    return mmapio__server_message__pack(&msg, buf);
}

/* On the loop: a hold ended with no newer one. */
static void hold_due(void *arg)
{
    struct wtimer *t = arg;
    struct wmap *m = find_id(t->w, t->map_id);
    if (m)
        winwatch_notify(t->w, m, MMAPIO__EVENT_KIND__EVENT_MODIFIED, false, 0, 0);
    free(t);
}

static void CALLBACK hold_fired(PTP_CALLBACK_INSTANCE inst, void *arg, PTP_TIMER timer)
{
    (void)inst;
    (void)timer;
    wtimer_post(arg, hold_due);
}

void winwatch_hold(struct winops *w, struct wmap *m, uint32_t ms)
{
    if (!m->watchers)
        return;
    if (!m->hold && !(m->hold = map_timer(w, m, hold_fired))) {
        /* Cannot wait: say it now (a later write notices again). */
        winwatch_notify(w, m, MMAPIO__EVENT_KIND__EVENT_MODIFIED, false, 0, 0);
        return;
    }
    FILETIME ft = due_in_ms((ms < HOLD_MAX_MS ? ms : HOLD_MAX_MS) + HOLD_GRACE_MS);
    SetThreadpoolTimer(m->hold, &ft, 0, 0); /* a newer hold moves the end later */
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
    if (x->m->watchers == 0 && x->m->tracked) { /* nobody hears the folder now */
        watchsys_remove(w->watchsys, x->m->wtoken);
        x->m->tracked = false;
    }
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
    if (!h->m->anonymous && !h->m->tracked && s->w->watchsys >= 0) {
        int t = watchsys_add(s->w->watchsys, PLATFORM_FD(h->m->file));
        if (t >= 0)
            h->m->tracked = true, h->m->wtoken = t;
        else /* the watch hears the daemon's clients only */
            log_warn("%s: changes outside mmapio will not be told: %s", h->m->name,
                     strerror(-t));
    }
    h->m->watchers++;
    atomic_fetch_add(&s->w->slots[h->m->slot].watchers, 1); /* writers notice now */
    struct reqmsg b;
    send_reply(s, reqmsg_watch(&b, id, x->id, h->m->id), NULL, 0);
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

/* On the loop: news of a watched file, told to its watchers as on Linux —
 * a write as MODIFIED, its last name gone as REMOVED (once), a rename or
 * an attribute as METADATA. */
static void on_news(void *arg, int token, unsigned what)
{
    struct winops *w = arg;
    if (what & WATCHSYS_LOST)
        log_warn("a folder's news overflowed; some file changes were not seen");
    struct wmap *m = w->maps;
    while (m && !(m->tracked && m->wtoken == token))
        m = m->next;
    if (!m || m->removed)
        return;
    if (what & WATCHSYS_MODIFIED)
        winwatch_notify(w, m, MMAPIO__EVENT_KIND__EVENT_MODIFIED, false, 0, 0);
    if (!(what & WATCHSYS_METADATA))
        return;
    FILE_STANDARD_INFO si;
    if (!GetFileInformationByHandleEx(m->file, FileStandardInfo, &si, sizeof(si)) ||
        si.DeletePending || si.NumberOfLinks == 0) {
        m->removed = true;
        winwatch_notify(w, m, MMAPIO__EVENT_KIND__EVENT_REMOVED, false, 0, 0);
    } else {
        winwatch_notify(w, m, MMAPIO__EVENT_KIND__EVENT_METADATA, false, 0, 0);
    }
}

static void news_due(void *arg)
{
    struct winops *w = arg;
    watchsys_read(w->watchsys, on_news, w);
}

/* On a pool thread: the watch set's event is set; the loop reads it. */
static void CALLBACK news_waiting(void *arg, BOOLEAN timed_out)
{
    (void)timed_out;
    struct winops *w = arg;
    w->port.post(news_due, w);
}

void winwatch_start(struct winops *w)
{
    w->watchsys = watchsys_open();
    if (w->watchsys >= 0 &&
        !RegisterWaitForSingleObject(&w->watchsys_wait, PLATFORM_HANDLE(w->watchsys),
                                     news_waiting, w, INFINITE, WT_EXECUTEDEFAULT)) {
        watchsys_close(w->watchsys);
        w->watchsys = -ENOMEM;
    }
    if (w->watchsys < 0)
        log_warn("changes to files outside mmapio will not be told: %s",
                 strerror(-w->watchsys));
}

void winwatch_stop(struct winops *w)
{
    if (w->watchsys < 0)
        return;
    UnregisterWaitEx(w->watchsys_wait, INVALID_HANDLE_VALUE);
    watchsys_close(w->watchsys);
    w->watchsys = -1;
}
