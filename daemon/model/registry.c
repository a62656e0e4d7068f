/* registry: name/identity/id -> mapping, handle -> holder (see registry.h). */
#include "registry.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static uint64_t file_hash(dev_t dev, ino_t ino)
{
    return hmap_hash_u64(hmap_hash_u64((uint64_t)dev) ^ (uint64_t)ino);
}

static uint64_t key_hash(const struct mapping *m)
{
    return m->kind == MAPPING_ANON ? hmap_hash_str(m->name)
                               : file_hash(m->dev, m->ino);
}

/* One owner's registered mappings, by id. */
struct owner_ids {
    struct hnode node;          /* registry->owners */
    uid_t uid;
    struct idlist ids;
};

static struct owner_ids *owner_find(const struct registry *r, uid_t uid)
{
    for (struct hnode *n = hmap_find(&r->owners, hmap_hash_u64(uid)); n;
         n = hmap_next_same(n)) {
        struct owner_ids *o = container_of(n, struct owner_ids, node);
        if (o->uid == uid)
            return o;
    }
    return NULL;
}

/* Adds m to the id orders (all, its owner's). 0 or -ENOMEM. */
static int order_add(struct registry *r, struct mapping *m)
{
    struct owner_ids *o = owner_find(r, m->owner);
    if (!o) {
        o = calloc(1, sizeof(*o));
        if (!o || hmap_insert(&r->owners, &o->node, hmap_hash_u64(m->owner))) {
            free(o);
            return -ENOMEM;
        }
        o->uid = m->owner;
    }
    if (idlist_add(&o->ids, m->id, m) < 0)
        goto fail;
    if (idlist_add(&r->in_order, m->id, m) < 0) {
        idlist_remove(&o->ids, m->id);
        goto fail;
    }
    return 0;
fail:
    if (idlist_count(&o->ids) == 0) {
        hmap_remove(&r->owners, &o->node);
        idlist_free(&o->ids);
        free(o);
    }
    return -ENOMEM;
}

static void order_remove(struct registry *r, struct mapping *m)
{
    idlist_remove(&r->in_order, m->id);
    struct owner_ids *o = owner_find(r, m->owner);
    if (!o)
        return;
    idlist_remove(&o->ids, m->id);
    if (idlist_count(&o->ids) == 0) {
        hmap_remove(&r->owners, &o->node);
        idlist_free(&o->ids);
        free(o);
    }
}

void registry_walk_start(const struct registry *r, const uid_t *owner,
                         uint64_t after, struct registry_walk *w)
{
    static const struct idlist none;
    const struct owner_ids *o = owner ? owner_find(r, *owner) : NULL;
    w->l = !owner ? &r->in_order : o ? &o->ids : &none;
    w->pos = idlist_after(w->l, after);
}

struct mapping *registry_walk_next(struct registry_walk *w)
{
    return idlist_next(w->l, &w->pos);
}

size_t registry_count(const struct registry *r, const uid_t *owner)
{
    const struct owner_ids *o = owner ? owner_find(r, *owner) : NULL;
    return !owner ? idlist_count(&r->in_order) : o ? idlist_count(&o->ids) : 0;
}

int registry_init(struct registry *r, uint32_t n_slots)
{
    memset(r, 0, sizeof(*r));
    hmap_init(&r->by_key);
    hmap_init(&r->by_path);
    hmap_init(&r->by_id);
    hmap_init(&r->handles);
    hmap_init(&r->owners);
    hmap_init(&r->env.owners);
    idlist_init(&r->in_order);
    r->env.next_id = 1;
    arenas_init(&r->env.arenas);
    return ctl_init(&r->env.ctl, n_slots);
}

int registry_add_hook(struct registry *r, struct mapping_hook *hook)
{
    struct mapping_hook **tail = &r->env.hooks;
    if (r->env.n_hooks == MAPPING_EXT_MAX)
        return -ENOSPC;
    while (*tail)
        tail = &(*tail)->next;
    hook->slot = r->env.n_hooks++;
    hook->next = NULL;
    *tail = hook;
    return 0;
}

static void drop(struct mapping *m, void *arg)
{
    registry_remove(arg, m);
}

void registry_fini(struct registry *r)
{
    registry_foreach(r, drop, r);
    hmap_free(&r->by_key);
    hmap_free(&r->by_path);
    hmap_free(&r->by_id);
    hmap_free(&r->handles);
    hmap_free(&r->owners); /* empty: every mapping was removed */
    hmap_free(&r->env.owners); /* empty: every holder was released */
    idlist_free(&r->in_order);
    ctl_fini(&r->env.ctl);
    arenas_fini(&r->env.arenas);
    r->env.hooks = NULL;
    r->env.n_hooks = 0;
}

struct mapping *registry_find_anon(const struct registry *r, const char *name)
{
    for (struct hnode *n = hmap_find(&r->by_key, hmap_hash_str(name)); n;
         n = hmap_next_same(n)) {
        struct mapping *m = container_of(n, struct mapping, key_node);
        if (m->kind == MAPPING_ANON && !strcmp(m->name, name))
            return m;
    }
    return NULL;
}

struct mapping *registry_find_file(const struct registry *r, dev_t dev, ino_t ino)
{
    for (struct hnode *n = hmap_find(&r->by_key, file_hash(dev, ino)); n;
         n = hmap_next_same(n)) {
        struct mapping *m = container_of(n, struct mapping, key_node);
        if (m->kind == MAPPING_FILE && m->dev == dev && m->ino == ino)
            return m;
    }
    return NULL;
}

bool registry_has_file_path(const struct registry *r, const char *path)
{
    for (struct hnode *n = hmap_find(&r->by_path, hmap_hash_str(path)); n;
         n = hmap_next_same(n))
        if (!strcmp(container_of(n, struct mapping, path_node)->name, path))
            return true;
    return false;
}

int registry_add(struct registry *r, struct mapping *m)
{
    bool file = m->kind == MAPPING_FILE;
    if (hmap_insert(&r->by_key, &m->key_node, key_hash(m)) < 0)
        return -1;
    if (file && hmap_insert(&r->by_path, &m->path_node,
                            hmap_hash_str(m->name)) < 0) {
        hmap_remove(&r->by_key, &m->key_node);
        return -1;
    }
    if (hmap_insert(&r->by_id, &m->id_node, hmap_hash_u64(m->id)) < 0 ||
        order_add(r, m) < 0) {
        hmap_remove(&r->by_id, &m->id_node); /* safe when not in it */
        if (file)
            hmap_remove(&r->by_path, &m->path_node);
        hmap_remove(&r->by_key, &m->key_node);
        return -1;
    }
    m->registered = true;
    if (m->kind == MAPPING_ANON)
        r->n_anon++;
    else
        r->n_file++;
    mapping_ref(m);
    mapping_changed(m, MAPPING_REGISTERED, NULL);
    return 0;
}

void registry_remove(struct registry *r, struct mapping *m)
{
    if (!m->registered)
        return;
    hmap_remove(&r->by_key, &m->key_node);
    if (m->kind == MAPPING_FILE)
        hmap_remove(&r->by_path, &m->path_node);
    hmap_remove(&r->by_id, &m->id_node);
    order_remove(r, m);
    m->registered = false;
    if (m->kind == MAPPING_ANON)
        r->n_anon--;
    else
        r->n_file--;
    mapping_changed(m, MAPPING_RETIRED, NULL);
    mapping_unref(m);
}

void registry_retire_if_unused(struct registry *r, struct mapping *m)
{
    if (m->kind != MAPPING_FILE || !m->registered || m->n_holders > 0 ||
        m->pins > 0)
        return;
    mapping_changed(m, MAPPING_IDLE, NULL);
    if (m->registered && m->n_holders == 0 && m->pins == 0)
        registry_remove(r, m);
}

int registry_add_holder(struct registry *r, struct holder *h)
{
    h->handle = ++r->next_handle;
    return hmap_insert(&r->handles, &h->node, hmap_hash_u64(h->handle));
}

struct holder *registry_find_holder(const struct registry *r, uint64_t handle)
{
    for (struct hnode *n = hmap_find(&r->handles, hmap_hash_u64(handle)); n;
         n = hmap_next_same(n)) {
        struct holder *h = container_of(n, struct holder, node);
        if (h->handle == handle)
            return h;
    }
    return NULL;
}

void registry_remove_holder(struct registry *r, struct holder *h)
{
    hmap_remove(&r->handles, &h->node);
}

void registry_foreach(struct registry *r, void (*fn)(struct mapping *, void *),
                      void *arg)
{
    for (size_t i = 0; i < r->by_id.n_buckets; i++) {
        struct hnode *n = r->by_id.buckets[i];
        while (n) {
            struct hnode *next = n->next; /* fn may unregister this one */
            fn(container_of(n, struct mapping, id_node), arg);
            n = next;
        }
    }
}
