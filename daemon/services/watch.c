/* watch: subscriptions, the system's file news and change events (see watch.h). */
#include "watch.h"

#include <errno.h>
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ctl.h"
#include "log.h"
#include "quota.h"
#include "registry.h"
#include "watchsys.h"

#define HOLD_MAX_MS 1000   /* a writer's hold is capped at this */
#define HOLD_GRACE_MS 20   /* for its merged range to arrive first */

/* One owner's watches of one mapping, counted: a notice walks these, not
 * the watches, since one owner may watch a mapping thousands of times. */
struct watch_group {
    struct watch_owner *owner;
    struct watch_state *st;
    uint32_t n;               /* > 0 */
    struct watch_group *prev, *next;    /* st's groups */
    struct hnode node;                  /* ws->groups */
};

struct watch {
    uint64_t id;
    struct watch_owner *owner;
    struct watch_state *st;
    struct watch_group *group;
    struct watch *owner_prev, *owner_next;
    struct hnode node;        /* ws->ids: id -> watch */
};

/* What this service keeps on a mapping (its mapping_ext slot). */
struct watch_state {
    struct mapping *map;      /* not a reference: freed with it */
    struct watch_group *groups; /* one per owner; each watch holds a
                                 * reference to map */
    uint32_t n;                 /* watches */
    int wd;                   /* watchsys token of a file, or -1 */
    struct hnode wd_node;     /* ws->wds */
    struct watches *ws;
    struct event *hold;       /* a writer's hold ends (watch_hold) */
};

static struct watch_state *state_of(struct watches *ws, struct mapping *m,
                                    bool create)
{
    void **ext = mapping_ext(m, &ws->hook);
    struct watch_state *s = *ext;
    if (s || !create)
        return s;
    s = calloc(1, sizeof(*s));
    if (!s)
        return NULL;
    s->map = m;
    s->wd = -1;
    s->ws = ws;
    *ext = s;
    return s;
}

static struct watch_state *find_wd(struct watches *ws, int wd)
{
    for (struct hnode *n = hmap_find(&ws->wds, hmap_hash_u64((uint64_t)wd)); n;
         n = hmap_next_same(n)) {
        struct watch_state *s = container_of(n, struct watch_state, wd_node);
        if (s->wd == wd)
            return s;
    }
    return NULL;
}

void watch_notify(struct watches *ws, struct mapping *m, Mmapio__EventKind kind,
                  bool has_range, uint64_t offset, uint64_t len)
{
    struct watch_state *s = state_of(ws, m, false);
    if (!s || !s->groups)
        return;
    Mmapio__Event ev = MMAPIO__EVENT__INIT;
    ev.kind = kind;
    ev.map_id = m->id;
    ev.size = m->size;
    ev.has_range = has_range;
    ev.offset = offset;
    ev.len = len;
    for (struct watch_group *g = s->groups; g; g = g->next)
        ws->send(g->owner, &ev);
}

static void on_hold_end(evutil_socket_t fd, short what, void *arg)
{
    struct watch_state *s = arg;
    watch_notify(s->ws, s->map, MMAPIO__EVENT_KIND__EVENT_MODIFIED, false, 0, 0);
}

void watch_hold(struct watches *ws, struct mapping *m, uint32_t ms)
{
    struct watch_state *s = state_of(ws, m, false);
    if (!s || !s->groups)
        return;
    if (!s->hold)
        s->hold = evtimer_new(ws->base, on_hold_end, s);
    if (!s->hold) { /* cannot wait: say it now, and again for what follows */
        watch_notify(ws, m, MMAPIO__EVENT_KIND__EVENT_MODIFIED, false, 0, 0);
        return;
    }
    ms = (ms < HOLD_MAX_MS ? ms : HOLD_MAX_MS) + HOLD_GRACE_MS;
    struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };
    evtimer_add(s->hold, &tv); /* a newer hold moves the end later */
}

uint32_t watch_count(struct watches *ws, struct mapping *m)
{
    struct watch_state *s = state_of(ws, m, false);
    return s ? s->n : 0;
}

static void on_file_event(struct watches *ws, struct mapping *m, unsigned what)
{
    struct stat st;
    if (fstat(m->fd, &st) < 0)
        return;
    if (what & WATCHSYS_MODIFIED) {
        watch_notify(ws, m, MMAPIO__EVENT_KIND__EVENT_MODIFIED, false, 0, 0);
        if ((uint64_t)st.st_size != m->size) {
            m->size = (uint64_t)st.st_size;
            mapping_changed(m, MAPPING_RESIZED, NULL);
        }
    }
    if (what & WATCHSYS_METADATA) {
        if (st.st_nlink == 0)
            mapping_mark_removed(m); /* REMOVED, once (see on_change) */
        else
            watch_notify(ws, m, MMAPIO__EVENT_KIND__EVENT_METADATA, false, 0, 0);
    }
}

static void on_news(void *arg, int token, unsigned what)
{
    struct watches *ws = arg;
    if (what & WATCHSYS_LOST)
        log_warn("file change queue overflowed; some file changes were not seen");
    struct watch_state *s = token >= 0 ? find_wd(ws, token) : NULL;
    if (s)
        on_file_event(ws, s->map, what);
}

static void on_watchsys(evutil_socket_t fd, short what, void *arg)
{
    watchsys_read(fd, on_news, arg);
}

void watch_track_file(struct watches *ws, struct mapping *m)
{
    struct watch_state *s = state_of(ws, m, true);
    if (!s || s->wd >= 0)
        return;
    int wd = watchsys_add(ws->sys_fd, m->fd);
    if (wd < 0) {
        log_warn("cannot watch %s: %s", m->name, strerror(-wd));
        return;
    }
    /* One inode, one wd: a second mapping of it cannot exist (registry). */
    if (hmap_insert(&ws->wds, &s->wd_node, hmap_hash_u64((uint64_t)wd)) < 0) {
        watchsys_remove(ws->sys_fd, wd);
        return;
    }
    s->wd = wd;
}

/* Stops the file watch of a mapping that left the registry or is freed. */
static void forget(struct watches *ws, struct watch_state *s)
{
    if (s->wd < 0)
        return;
    hmap_remove(&ws->wds, &s->wd_node);
    /* One inode has one token: keep it if a newer mapping uses it. */
    if (!find_wd(ws, s->wd))
        watchsys_remove(ws->sys_fd, s->wd);
    s->wd = -1;
}

static uint64_t group_hash(const struct watch_state *s,
                           const struct watch_owner *o)
{
    return hmap_hash_u64(hmap_hash_u64((uint64_t)(uintptr_t)s) ^
                         (uint64_t)(uintptr_t)o);
}

/* o's group of s: found, or made (NULL without memory; n is 0 when new). */
static struct watch_group *group_of(struct watches *ws, struct watch_state *s,
                                    struct watch_owner *o)
{
    uint64_t hash = group_hash(s, o);
    for (struct hnode *n = hmap_find(&ws->groups, hash); n;
         n = hmap_next_same(n)) {
        struct watch_group *g = container_of(n, struct watch_group, node);
        if (g->st == s && g->owner == o)
            return g;
    }
    struct watch_group *g = calloc(1, sizeof(*g));
    if (!g || hmap_insert(&ws->groups, &g->node, hash) < 0) {
        free(g);
        return NULL;
    }
    g->owner = o;
    g->st = s;
    g->next = s->groups;
    if (s->groups)
        s->groups->prev = g;
    s->groups = g;
    return g;
}

int watch_add(struct watches *ws, struct watch_owner *o, struct mapping *m,
              uint64_t *id)
{
    if (o->n >= ws->max_per_owner)
        return MMAPIO_E_QUOTA;
    struct watch_state *s = state_of(ws, m, true);
    struct watch *w = s ? calloc(1, sizeof(*w)) : NULL;
    if (!w)
        return MMAPIO_E_QUOTA;
    /* It keeps m (and its fd) alive like a holder: charged like one. */
    if (quota_hold(ws->quota, m, o->uid)) {
        free(w);
        return MMAPIO_E_QUOTA;
    }
    w->id = ++ws->next_id;
    if (hmap_insert(&ws->ids, &w->node, hmap_hash_u64(w->id)) < 0) {
        quota_unhold(ws->quota, m, o->uid);
        free(w);
        return MMAPIO_E_QUOTA;
    }
    w->owner = o;
    w->st = s;
    w->group = group_of(ws, s, o);
    if (!w->group) {
        hmap_remove(&ws->ids, &w->node);
        quota_unhold(ws->quota, m, o->uid);
        free(w);
        return MMAPIO_E_QUOTA;
    }
    w->group->n++;
    mapping_ref(m);
    mapping_pin(m);
    s->n++;
    w->owner_next = o->first;
    if (w->owner_next)
        w->owner_next->owner_prev = w;
    o->first = w;
    o->n++;
    /* Before the reply: from now on every writer reports its writes. */
    atomic_store(&ctl_slot(&m->env->ctl, m->slot)->watchers, s->n);
    *id = w->id;
    return MMAPIO_OK;
}

static void drop(struct watches *ws, struct watch *w)
{
    struct watch_state *s = w->st;
    struct mapping *m = s->map;
    struct watch_owner *o = w->owner;
    struct watch_group *g = w->group;
    if (--g->n == 0) {
        if (g->prev)
            g->prev->next = g->next;
        else
            s->groups = g->next;
        if (g->next)
            g->next->prev = g->prev;
        hmap_remove(&ws->groups, &g->node);
        free(g);
    }
    if (w->owner_prev)
        w->owner_prev->owner_next = w->owner_next;
    else
        o->first = w->owner_next;
    if (w->owner_next)
        w->owner_next->owner_prev = w->owner_prev;
    o->n--;
    s->n--;
    atomic_store(&ctl_slot(&m->env->ctl, m->slot)->watchers, s->n);
    hmap_remove(&ws->ids, &w->node);
    free(w);
    quota_unhold(ws->quota, m, o->uid);
    mapping_unpin(m);
    registry_retire_if_unused(ws->reg, m);
    mapping_unref(m);
}

int watch_remove(struct watches *ws, struct watch_owner *o, uint64_t id)
{
    for (struct hnode *n = hmap_find(&ws->ids, hmap_hash_u64(id)); n;
         n = hmap_next_same(n)) {
        struct watch *w = container_of(n, struct watch, node);
        if (w->id == id && w->owner == o) {
            drop(ws, w);
            return MMAPIO_OK;
        }
    }
    return MMAPIO_E_NOT_FOUND;
}

void watch_release_owner(struct watches *ws, struct watch_owner *o)
{
    while (o->first)
        drop(ws, o->first);
}

static void on_change(struct mapping_hook *hook, struct mapping *m,
                      enum mapping_change what, const void *origin)
{
    struct watches *ws = container_of(hook, struct watches, hook);
    struct watch_state *s = state_of(ws, m, false);
    if (!s)
        return;
    if (what == MAPPING_REMOVED) {
        watch_notify(ws, m, MMAPIO__EVENT_KIND__EVENT_REMOVED, false, 0, 0);
    } else if (what == MAPPING_RETIRED) {
        forget(ws, s); /* a new mapping of this inode will watch it afresh */
    } else if (what == MAPPING_FREED) {
        forget(ws, s);
        if (s->hold)
            event_free(s->hold);
        free(s);
        *mapping_ext(m, hook) = NULL;
    }
}

int watches_init(struct watches *ws, struct registry *r, struct quota *q,
                 struct event_base *base, uint32_t max_per_owner,
                 watch_send_fn send)
{
    memset(ws, 0, sizeof(*ws));
    ws->reg = r;
    ws->quota = q;
    ws->base = base;
    hmap_init(&ws->wds);
    hmap_init(&ws->ids);
    hmap_init(&ws->groups);
    ws->max_per_owner = max_per_owner;
    ws->send = send;
    ws->hook.fn = on_change;
    ws->sys_fd = watchsys_open();
    if (ws->sys_fd < 0)
        return ws->sys_fd;
    ws->ev_sys = event_new(base, ws->sys_fd, EV_READ | EV_PERSIST,
                               on_watchsys, ws);
    if (!ws->ev_sys || event_add(ws->ev_sys, NULL) < 0)
        return -ENOMEM;
    return registry_add_hook(r, &ws->hook);
}

void watches_fini(struct watches *ws)
{
    if (ws->ev_sys)
        event_free(ws->ev_sys);
    ws->ev_sys = NULL;
    watchsys_close(ws->sys_fd);
    ws->sys_fd = -1;
    hmap_free(&ws->wds);
    hmap_free(&ws->ids);
    hmap_free(&ws->groups);
}
