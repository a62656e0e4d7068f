/* uids: per-uid connection and queue counts (see uids.h). */
#include "uids.h"

#include <stdlib.h>

void uids_init(struct uids *u)
{
    hmap_init(&u->map);
}

void uids_fini(struct uids *u)
{
    for (size_t i = 0; i < u->map.n_buckets; i++) {
        struct hnode *n = u->map.buckets[i];
        while (n) {
            struct hnode *next = n->next;
            free(container_of(n, struct uid_use, node));
            n = next;
        }
    }
    hmap_free(&u->map);
    hmap_init(&u->map);
}

struct uid_use *uids_find(const struct uids *u, uid_t uid)
{
    uint64_t h = hmap_hash_u64(uid);
    for (struct hnode *n = hmap_find(&u->map, h); n; n = hmap_next_same(n)) {
        struct uid_use *e = container_of(n, struct uid_use, node);
        if (e->uid == uid)
            return e;
    }
    return NULL;
}

struct uid_use *uids_get(struct uids *u, uid_t uid)
{
    struct uid_use *e = uids_find(u, uid);
    if (e)
        return e;
    e = calloc(1, sizeof(*e));
    if (!e)
        return NULL;
    e->uid = uid;
    if (hmap_insert(&u->map, &e->node, hmap_hash_u64(uid)) < 0) {
        free(e);
        return NULL;
    }
    return e;
}

void uids_put(struct uids *u, struct uid_use *e)
{
    if (!e || e->conns > 0 || e->list)
        return;
    hmap_remove(&u->map, &e->node);
    free(e);
}
