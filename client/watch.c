/*
 * watch: subscriptions to a mapping's changes, and running their callbacks.
 *
 * A watcher is registered with the daemon (which from then on has every
 * holder report its update_region writes) and kept on the client's list.
 * Events wait in the client's bounded queue until mmapio_client_dispatch;
 * there the matching (watcher, event) pairs are collected under the lock,
 * each taking a reference to its watcher, and run after it is dropped, so
 * a callback may call the library, including mmapio_unwatch of itself or
 * of another watcher: a watcher unwatched meanwhile gets no more calls.
 * (A callback already running in another thread's dispatch may still
 * finish after mmapio_unwatch returns.) A lost event (the daemon's queue for
 * us, or ours, overflowed) reaches every watcher as MODIFIED without a
 * range: "something changed, read again".
 *
 * A watcher stays valid until mmapio_unwatch, also after its map is
 * unmapped; it holds a reference on its connection.
 */
#include "watch.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "client.h"
#include "errors.h"
#include "events.h"
#include "map.h"
#include "names.h"

struct mmapio_watcher {
    atomic_uint refs;               /* the client's list, and deliveries */
    atomic_bool removed;            /* unwatched: run no more callbacks */
    mmapio_client *client;          /* holds a reference */
    uint64_t map_id;
    uint64_t watch_id;
    uint64_t handle;                /* the holder watched; 0: by name */
    char *name;                     /* by name (mmapio_admin_watch) */
    bool anonymous;
    bool dark;                      /* its mapping did not come back after
                                       a reconnect: no more events */
    bool tell_up;                   /* re-watched: RECONNECTED is due */
    mmapio_watch_cb cb;
    void *user;
    struct mmapio_watcher *next;    /* in client->watchers, under the lock */
};

static void watcher_unref(mmapio_watcher *w)
{
    if (atomic_fetch_sub_explicit(&w->refs, 1, memory_order_acq_rel) != 1)
        return;
    client_unref(w->client);
    free(w->name);
    free(w);
}

/* Sends req (a Watch or, by_name, an AdminWatch, whose reply names the
 * mapping) and puts the new watcher on c's list. */
static int watch_start(mmapio_client *c, Mmapio__Request *req, uint64_t map_id,
                       bool by_name, mmapio_watch_cb cb, void *user,
                       mmapio_watcher **out)
{
    struct client_reply rep;
    mmapio_watcher *w = calloc(1, sizeof(*w));
    if (w && by_name) {
        w->name = strdup(req->admin_watch->path);
        w->anonymous = req->admin_watch->anonymous;
    } else if (w)
        w->handle = req->watch->handle;
    if (!w || (by_name && !w->name)) {
        free(w);
        return error_set(MMAPIO_E_QUOTA, NULL);
    }
    client_lock(c);
    int r = client_call_locked(c, req, MMAPIO__REPLY__RESULT_WATCH, &rep);
    if (r == MMAPIO_OK) {
        w->watch_id = rep.reply->watch->watch_id;
        w->map_id = by_name ? rep.reply->watch->map_id : map_id;
        client_reply_free(&rep);
        atomic_init(&w->refs, 1);
        w->client = c;
        w->cb = cb;
        w->user = user;
        w->next = c->watchers;
        c->watchers = w;
        client_ref(c);
    }
    client_unlock(c);
    if (r != MMAPIO_OK) {
        free(w->name);
        free(w);
        /* The text stays the daemon's reason, recorded by the round trip;
         * by name, the code too (NOT_FOUND, PERMISSION). */
        return r == MMAPIO_E_DISCONNECTED || by_name ? r : MMAPIO_E_WATCH_FAILED;
    }
    *out = w;
    return MMAPIO_OK;
}

int mmapio_watch(mmapio_map *m, mmapio_watch_cb cb, void *user,
                 mmapio_watcher **out)
{
    Mmapio__Watch wa = MMAPIO__WATCH__INIT;
    Mmapio__Request req = MMAPIO__REQUEST__INIT;

    if (!m || !cb || !out)
        return error_set(MMAPIO_E_INVALID_ARGUMENT, NULL);
    if (map_attached(m) != MMAPIO_OK)
        return MMAPIO_E_NOT_FOUND;
    wa.handle = map_handle_of(m);
    req.op_case = MMAPIO__REQUEST__OP_WATCH;
    req.watch = &wa;
    return watch_start(map_client_of(m), &req, map_id_of(m), false, cb, user,
                       out);
}

int mmapio_admin_watch(mmapio_client *c, const char *path, bool anonymous,
                       mmapio_watch_cb cb, void *user, mmapio_watcher **out)
{
    Mmapio__AdminWatch wa = MMAPIO__ADMIN_WATCH__INIT;
    Mmapio__Request req = MMAPIO__REQUEST__INIT;

    if (!c || !path || !cb || !out)
        return error_set(MMAPIO_E_INVALID_ARGUMENT, NULL);
    if (!names_valid(path))
        return error_set(MMAPIO_E_INVALID_ARGUMENT, NAMES_REFUSED);
    wa.path = (char *)path;
    wa.anonymous = anonymous;
    req.op_case = MMAPIO__REQUEST__OP_ADMIN_WATCH;
    req.admin_watch = &wa;
    return watch_start(c, &req, 0, true, cb, user, out);
}

void mmapio_unwatch(mmapio_watcher *w)
{
    Mmapio__Unwatch un = MMAPIO__UNWATCH__INIT;
    Mmapio__Request req = MMAPIO__REQUEST__INIT;

    if (!w)
        return;
    mmapio_client *c = w->client;
    un.watch_id = w->watch_id;
    req.op_case = MMAPIO__REQUEST__OP_UNWATCH;
    req.unwatch = &un;
    client_lock(c);
    atomic_store_explicit(&w->removed, true, memory_order_release);
    for (mmapio_watcher **p = &c->watchers; *p; p = &(*p)->next) {
        if (*p == w) {
            *p = w->next;
            break;
        }
    }
    /* A daemon that is gone has dropped the watch with the connection;
     * a void call leaves no failure behind. */
    struct error_saved before;
    struct client_reply rep;
    error_save(&before);
    if (client_call_locked(c, &req, MMAPIO__REPLY__RESULT__NOT_SET, &rep) ==
        MMAPIO_OK)
        client_reply_free(&rep);
    else
        error_restore(&before);
    client_unlock(c);
    watcher_unref(w); /* the list's reference */
}

struct call {
    mmapio_watcher *w; /* a reference */
    mmapio_change_event ev;
};

/* The event a watcher sees for a daemon event; false: none. */
static bool to_change(const struct client_event *e, mmapio_change_event *out)
{
    out->has_range = false;
    out->offset = out->len = 0;
    switch (e->kind) {
    case MMAPIO__EVENT_KIND__EVENT_MODIFIED:
        out->kind = MMAPIO_CHANGE_MODIFIED;
        out->has_range = e->has_range;
        out->offset = e->offset;
        out->len = e->len;
        return true;
    case MMAPIO__EVENT_KIND__EVENT_OVERFLOW:
        out->kind = MMAPIO_CHANGE_MODIFIED;
        return true;
    case MMAPIO__EVENT_KIND__EVENT_METADATA:
    case MMAPIO__EVENT_KIND__EVENT_RESIZED:
        out->kind = MMAPIO_CHANGE_METADATA;
        return true;
    case MMAPIO__EVENT_KIND__EVENT_REMOVED:
        out->kind = MMAPIO_CHANGE_REMOVED;
        return true;
    default:
        return false;
    }
}

/* Appends the call of w with ev (lock held); false without memory. */
static bool add_call(mmapio_watcher *w, const mmapio_change_event *ev,
                     struct call **calls, size_t *n, size_t *cap)
{
    if (*n == *cap) {
        size_t nc = *cap ? *cap * 2 : 16;
        struct call *p = realloc(*calls, nc * sizeof(*p));
        if (!p)
            return false;
        *calls = p;
        *cap = nc;
    }
    atomic_fetch_add_explicit(&w->refs, 1, memory_order_relaxed);
    (*calls)[(*n)++] = (struct call){ w, *ev };
    return true;
}

/* Appends the calls one event makes (lock held); false without memory. */
static bool collect(mmapio_client *c, const struct client_event *e,
                    struct call **calls, size_t *n, size_t *cap)
{
    mmapio_change_event ev;
    bool everyone = e->kind == MMAPIO__EVENT_KIND__EVENT_OVERFLOW;

    if (!to_change(e, &ev))
        return true;
    for (mmapio_watcher *w = c->watchers; w; w = w->next) {
        if (w->dark || (!everyone && w->map_id != e->map_id))
            continue;
        if (!add_call(w, &ev, calls, n, cap))
            return false;
    }
    return true;
}

/* The connection's own news (lock held): DISCONNECTED to every watcher
 * once it died, RECONNECTED to each re-watched one. */
static void collect_news(mmapio_client *c, struct call **calls, size_t *n,
                         size_t *cap)
{
    mmapio_change_event down = { .kind = MMAPIO_CHANGE_DISCONNECTED };
    mmapio_change_event up = { .kind = MMAPIO_CHANGE_RECONNECTED };
    for (mmapio_watcher *w = c->watchers; w && c->news_down; w = w->next)
        if (!add_call(w, &down, calls, n, cap))
            return;
    c->news_down = false;
    for (mmapio_watcher *w = c->watchers; w; w = w->next) {
        if (w->tell_up && !add_call(w, &up, calls, n, cap))
            return;
        w->tell_up = false;
    }
}

/* Watches again on the new connection (lock held). */
static int rewatch(mmapio_client *c, mmapio_watcher *w, uint64_t handle)
{
    Mmapio__Watch wa = MMAPIO__WATCH__INIT;
    Mmapio__AdminWatch aw = MMAPIO__ADMIN_WATCH__INIT;
    Mmapio__Request req = MMAPIO__REQUEST__INIT;
    struct client_reply rep;

    if (w->name) {
        aw.path = w->name;
        aw.anonymous = w->anonymous;
        req.op_case = MMAPIO__REQUEST__OP_ADMIN_WATCH;
        req.admin_watch = &aw;
    } else {
        wa.handle = handle;
        req.op_case = MMAPIO__REQUEST__OP_WATCH;
        req.watch = &wa;
    }
    int r = client_call_locked(c, &req, MMAPIO__REPLY__RESULT_WATCH, &rep);
    if (r != MMAPIO_OK)
        return r;
    w->watch_id = rep.reply->watch->watch_id;
    if (w->name)
        w->map_id = rep.reply->watch->map_id;
    client_reply_free(&rep);
    return MMAPIO_OK;
}

int watch_rejoin_locked(mmapio_client *c, const struct map_rejoined *pairs,
                        size_t n)
{
    for (mmapio_watcher *w = c->watchers; w; w = w->next) {
        uint64_t handle = 0, map_id = 0;
        for (size_t i = 0; !w->name && i < n; i++)
            if (pairs[i].old_handle == w->handle) {
                handle = pairs[i].new_handle;
                map_id = pairs[i].new_map_id;
            }
        int r = w->dark || (!w->name && !handle)
                    ? MMAPIO_E_NOT_FOUND : rewatch(c, w, handle);
        if (r == MMAPIO_E_DISCONNECTED)
            return r;
        w->dark = r != MMAPIO_OK;
        w->tell_up = r == MMAPIO_OK;
        if (r == MMAPIO_OK && !w->name) {
            w->handle = handle;
            w->map_id = map_id;
        }
    }
    return MMAPIO_OK;
}

unsigned watch_deliver(mmapio_client *c)
{
    struct client_event queued[EVENTS_MAX];
    struct call *calls = NULL;
    size_t n = 0, cap = 0;
    bool lost;

    client_lock(c);
    size_t n_queued = events_take(&c->events, queued, &lost);
    if (lost) {
        struct client_event all = {
            .kind = MMAPIO__EVENT_KIND__EVENT_OVERFLOW };
        collect(c, &all, &calls, &n, &cap);
    }
    for (size_t i = 0; i < n_queued; i++)
        if (!collect(c, &queued[i], &calls, &n, &cap))
            break;
    collect_news(c, &calls, &n, &cap);
    client_unlock(c);

    for (size_t i = 0; i < n; i++) {
        mmapio_watcher *w = calls[i].w;
        if (!atomic_load_explicit(&w->removed, memory_order_acquire))
            w->cb(&calls[i].ev, w->user);
        watcher_unref(w);
    }
    free(calls);
    return (unsigned)n_queued;
}
