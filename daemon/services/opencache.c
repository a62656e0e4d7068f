/* opencache: released file mappings kept for the next open (see opencache.h). */
#include "opencache.h"

#include <errno.h>
#include <event2/event.h>
#include <stdlib.h>
#include <string.h>

#include "quota.h"
#include "registry.h"

/* What this service keeps on a cached mapping (its mapping_ext slot). */
struct cache_entry {
    struct mapping *map;        /* registered and pinned by the cache */
    struct cache_entry *newer, *older;
    bool unlinked;              /* to be evicted by the sweep */
};

static struct cache_entry *entry_of(struct opencache *oc, struct mapping *m)
{
    return *mapping_ext(m, &oc->hook);
}

/* Off the list and out of m; the cache's pin stays with the caller. */
static void unlink_entry(struct opencache *oc, struct cache_entry *e)
{
    if (e->newer)
        e->newer->older = e->older;
    else
        oc->newest = e->older;
    if (e->older)
        e->older->newer = e->newer;
    else
        oc->oldest = e->newer;
    *mapping_ext(e->map, &oc->hook) = NULL;
    oc->n--;
    /* An open and unmap in a loop take and park one: no malloc each. */
    if (!oc->spare)
        oc->spare = e;
    else
        free(e);
}

/* Out of the cache and the registry: its fd closes with its last
 * reference (a final flush may still hold one, flushes.h). */
static void evict(struct opencache *oc, struct cache_entry *e)
{
    struct mapping *m = e->map;
    unlink_entry(oc, e);
    mapping_unpin(m);
    oc->evictions++;
    registry_remove(oc->reg, m);
}

uint32_t opencache_shrink(struct opencache *oc, uint32_t n)
{
    uint32_t done = 0;
    while (done < n && oc->oldest) {
        evict(oc, oc->oldest);
        done++;
    }
    return done;
}

static void park(struct opencache *oc, struct mapping *m)
{
    if (oc->max == 0 || m->kind != MAPPING_FILE || m->removed || m->fd < 0 ||
        entry_of(oc, m))
        return;
    struct cache_entry *e = oc->spare ? oc->spare : malloc(sizeof(*e));
    if (!e)
        return; /* it simply leaves the registry */
    oc->spare = NULL;
    memset(e, 0, sizeof(*e));
    if (oc->n >= oc->max)
        evict(oc, oc->oldest);
    e->map = m;
    e->older = oc->newest;
    if (oc->newest)
        oc->newest->newer = e;
    else
        oc->oldest = e;
    oc->newest = e;
    oc->n++;
    *mapping_ext(m, &oc->hook) = e;
    mapping_pin(m);
    quota_unadmit(oc->quota, m);
    /* As a new mapping of the file would be. */
    m->huge_asked = false;
    if (m->policy.kind != MMAPIO_FLUSH_NEVER)
        mapping_set_policy(m, (mmapio_flush_policy){ MMAPIO_FLUSH_NEVER, 0 },
                           NULL);
}

int opencache_take(struct opencache *oc, struct mapping *m, bool admin)
{
    struct cache_entry *e = entry_of(oc, m);
    if (!e)
        return MMAPIO_OK;
    unlink_entry(oc, e);
    mapping_unpin(m);
    oc->hits++;
    return quota_admit(oc->quota, m, admin);
}

void opencache_drop(struct opencache *oc, struct mapping *m)
{
    struct cache_entry *e = entry_of(oc, m);
    if (e)
        evict(oc, e);
}

bool opencache_holds(struct opencache *oc, struct mapping *m)
{
    return entry_of(oc, m) != NULL;
}

/* Unlinked files leave now: their blocks are freed with the last fd. */
static void on_sweep(evutil_socket_t fd, short what, void *arg)
{
    struct opencache *oc = arg;
    struct cache_entry *e = oc->oldest;
    (void)fd;
    (void)what;
    while (e) {
        struct cache_entry *next = e->newer;
        if (e->unlinked)
            evict(oc, e);
        e = next;
    }
}

static void on_change(struct mapping_hook *hook, struct mapping *m,
                      enum mapping_change what, const void *origin)
{
    struct opencache *oc = container_of(hook, struct opencache, hook);
    struct cache_entry *e = entry_of(oc, m);
    (void)origin;
    if (what == MAPPING_IDLE) {
        park(oc, m);
    } else if (what == MAPPING_REMOVED && e) {
        /* Not here: whoever announced it may still use m. */
        e->unlinked = true;
        event_active(oc->sweep, 0, 0);
    } else if ((what == MAPPING_RETIRED || what == MAPPING_FREED) && e) {
        unlink_entry(oc, e);
        mapping_unpin(m);
    }
}

int opencache_init(struct opencache *oc, struct registry *r, struct quota *q,
                   struct event_base *base, uint32_t max)
{
    memset(oc, 0, sizeof(*oc));
    oc->reg = r;
    oc->quota = q;
    oc->max = max;
    oc->hook.fn = on_change;
    oc->sweep = event_new(base, -1, 0, on_sweep, oc);
    if (!oc->sweep)
        return -ENOMEM;
    return registry_add_hook(r, &oc->hook);
}

void opencache_fini(struct opencache *oc)
{
    opencache_shrink(oc, UINT32_MAX);
    free(oc->spare);
    oc->spare = NULL;
    if (oc->sweep)
        event_free(oc->sweep);
    oc->sweep = NULL;
}
