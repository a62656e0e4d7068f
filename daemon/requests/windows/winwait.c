/*
 * winwait (Windows): wait/wake on a word of a mapping (winwait.h).
 *
 * No wake is lost: the loop serves requests one at a time, and a Wait is
 * parked first and the word read (an acquire load, through the daemon's
 * own read-only view of the entry) after. A waker stores, then sends
 * Wake: if its store came before that read, the Wait is answered at once;
 * if after, its Wake reaches the loop after the Wait, which it finds
 * parked.
 */
#include "winwait.h"

#include <stdatomic.h>
#include <stdlib.h>

#include "filesection.h"

struct wwaiter {
    struct wwaiter *next;  /* daemon-wide, oldest first */
    struct wsession *s;
    uint64_t id;           /* the Wait's request */
    struct wmap *m;
    uint64_t offset;
    uint64_t serial;       /* its timer's post names it by this */
    struct winops *w;
    PTP_TIMER timer;       /* its deadline; NULL: none */
};

/* A timer's news for the loop: the waiter may be gone by then. */
struct wdue {
    struct winops *w;
    uint64_t serial;
};

static void unlink_waiter(struct winops *w, struct wwaiter *x)
{
    for (struct wwaiter **p = &w->waiters; *p; p = &(*p)->next)
        if (*p == x) {
            *p = x->next;
            break;
        }
    w->n_waiters--;
    x->s->waits--;
    x->m->waits--;
    if (x->timer) {
        SetThreadpoolTimer(x->timer, NULL, 0, 0);
        WaitForThreadpoolTimerCallbacks(x->timer, TRUE);
        CloseThreadpoolTimer(x->timer);
    }
    free(x);
}

static void due(void *arg)
{
    struct wdue *d = arg;
    struct wwaiter *x = d->w->waiters;
    while (x && x->serial != d->serial)
        x = x->next;
    if (x) {
        struct wsession *s = x->s;
        uint64_t id = x->id;
        unlink_waiter(d->w, x);
        reply_err(s, id, MMAPIO_E_TIMED_OUT, "no wake before the deadline");
    }
    free(d);
}

static void CALLBACK timer_fired(PTP_CALLBACK_INSTANCE inst, void *arg, PTP_TIMER timer)
{
    (void)inst;
    (void)timer;
    struct wwaiter *x = arg; /* alive: its freeing waits for this callback */
    struct wdue *d = malloc(sizeof(*d));
    if (d) {
        *d = (struct wdue){x->w, x->serial};
        x->w->port.post(due, d);
    }
}

/* The daemon's read-only view of m, covering [0, end): mapped at the
 * first wait on it (the whole mapping), kept until the entry goes. */
static const uint8_t *view_of(struct wmap *m, uint64_t end)
{
    if (m->wview && m->wview_len >= end)
        return m->wview;
    if (m->wview)
        UnmapViewOfFile(m->wview); /* a file grown since: map it again */
    m->wview = NULL;
    m->wview_len = 0;
    HANDLE sec = m->section;
    uint64_t len = m->size;
    if (!m->anonymous) {
        LARGE_INTEGER size;
        if (!m->file || !GetFileSizeEx(m->file, &size) || size.QuadPart <= 0)
            return NULL;
        len = (uint64_t)size.QuadPart;
        sec = mem_file_section(m->file, false);
    }
    if (!sec || len < end)
        return NULL;
    m->wview = MapViewOfFile(sec, FILE_MAP_READ, 0, 0, 0);
    if (sec != m->section)
        CloseHandle(sec);
    m->wview_len = m->wview ? len : 0;
    return m->wview;
}

/* s's holder of q's handle with the word in bounds and aligned, or NULL
 * after replying. */
static struct wholder *word_holder(struct wsession *s, uint64_t id, uint64_t handle,
                                   uint64_t offset)
{
    struct wholder *h = find_holder(s, id, handle);
    if (!h)
        return NULL;
    if (offset % sizeof(uint32_t) != 0) {
        reply_err(s, id, MMAPIO_E_MISALIGNED, "the word's offset is not 4-aligned");
        return NULL;
    }
    if (offset > h->m->size || h->m->size - offset < sizeof(uint32_t)) {
        reply_err(s, id, MMAPIO_E_OUT_OF_BOUNDS, "the word is beyond the mapping's %llu bytes",
                  (unsigned long long)h->m->size);
        return NULL;
    }
    return h;
}

void winwait_wait(struct wsession *s, uint64_t id, const Mmapio__Wait *q)
{
    struct winops *w = s->w;
    struct wholder *h = word_holder(s, id, q->handle, q->offset);
    if (!h)
        return;
    struct wmap *m = h->m;
    const uint8_t *view = view_of(m, q->offset + sizeof(uint32_t));
    if (!view) {
        reply_err(s, id, MMAPIO_E_IO, "%s: the daemon cannot map it to read the word",
                  m->name);
        return;
    }
    if (s->waits >= WINWAIT_PER_CLIENT || w->n_waiters >= WINWAIT_MAX) {
        reply_err(s, id, MMAPIO_E_BUSY, "%u waits of this client (or %u in the daemon) "
                  "are parked already", WINWAIT_PER_CLIENT, WINWAIT_MAX);
        return;
    }
    struct wwaiter *x = calloc(1, sizeof(*x));
    if (!x) {
        reply_err(s, id, MMAPIO_E_QUOTA, "out of memory");
        return;
    }
    *x = (struct wwaiter){.s = s, .id = id, .m = m, .offset = q->offset,
                          .serial = ++w->next_waiter, .w = w};
    /* Parked first, at the tail (FIFO), then the word read. */
    struct wwaiter **p = &w->waiters;
    while (*p)
        p = &(*p)->next;
    *p = x;
    w->n_waiters++;
    s->waits++;
    m->waits++;
    uint32_t now = atomic_load_explicit((const _Atomic uint32_t *)(const void *)(view + q->offset),
                                        memory_order_acquire);
    if (now != q->expected) {
        unlink_waiter(w, x);
        reply_ok(s, id);
        return;
    }
    if (q->timeout_ms == 0) {
        unlink_waiter(w, x);
        reply_err(s, id, MMAPIO_E_TIMED_OUT, "no wake before the deadline");
        return;
    }
    if (q->timeout_ms > 0) {
        x->timer = CreateThreadpoolTimer(timer_fired, x, NULL);
        if (!x->timer) {
            unlink_waiter(w, x);
            reply_err(s, id, MMAPIO_E_IO, "no timer for the wait's deadline");
            return;
        }
        FILETIME ft = due_in_ms((uint64_t)q->timeout_ms);
        SetThreadpoolTimer(x->timer, &ft, 0, 0);
    }
}

void winwait_wake(struct wsession *s, uint64_t id, const Mmapio__Wake *q)
{
    struct winops *w = s->w;
    if (q->count == 0) {
        reply_err(s, id, MMAPIO_E_INVALID_ARGUMENT, "wake needs a count of 1 or more");
        return;
    }
    struct wholder *h = word_holder(s, id, q->handle, q->offset);
    if (!h)
        return;
    uint32_t woken = 0;
    for (struct wwaiter *x = w->waiters, *next; x && woken < q->count; x = next) {
        next = x->next;
        if (x->m != h->m || x->offset != q->offset)
            continue;
        struct wsession *ws = x->s;
        uint64_t wid = x->id;
        unlink_waiter(w, x);
        reply_ok(ws, wid);
        woken++;
    }
    Mmapio__WokeReply wr = MMAPIO__WOKE_REPLY__INIT;
    wr.woken = woken;
    Mmapio__Reply rep = MMAPIO__REPLY__INIT;
    rep.id = id;
    rep.result_case = MMAPIO__REPLY__RESULT_WOKE;
    rep.woke = &wr;
    send_reply(s, &rep, NULL, 0);
}

void winwait_session_end(struct wsession *s)
{
    for (struct wwaiter *x = s->w->waiters, *next; x && s->waits; x = next) {
        next = x->next;
        if (x->s == s)
            unlink_waiter(s->w, x);
    }
}

void winwait_map_gone(struct winops *w, struct wmap *m)
{
    for (struct wwaiter *x = w->waiters, *next; x && m->waits; x = next) {
        next = x->next;
        if (x->m != m)
            continue;
        struct wsession *s = x->s;
        uint64_t id = x->id;
        unlink_waiter(w, x);
        reply_err(s, id, MMAPIO_E_NOT_FOUND,
                  "%s: the mapping went during the wait (no holder left)",
                  m->name);
    }
    if (m->wview)
        UnmapViewOfFile(m->wview);
    m->wview = NULL;
    m->wview_len = 0;
}

void winwait_final(struct winops *w)
{
    while (w->waiters)
        unlink_waiter(w, w->waiters);
}
