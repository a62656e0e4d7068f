/* registry: name/identity/id -> mapping, handle -> holder (see registry.h). */
#include "registry.h"

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

void registry_init(struct registry *r)
{
    memset(r, 0, sizeof(*r));
    hmap_init(&r->by_key);
    hmap_init(&r->by_id);
    hmap_init(&r->handles);
}

static void drop(struct mapping *m, void *arg)
{
    registry_remove(arg, m);
}

void registry_fini(struct registry *r)
{
    registry_foreach(r, drop, r);
    hmap_free(&r->by_key);
    hmap_free(&r->by_id);
    hmap_free(&r->handles);
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

int registry_add(struct registry *r, struct mapping *m)
{
    if (hmap_insert(&r->by_key, &m->key_node, key_hash(m)) < 0)
        return -1;
    if (hmap_insert(&r->by_id, &m->id_node, hmap_hash_u64(m->id)) < 0) {
        hmap_remove(&r->by_key, &m->key_node);
        return -1;
    }
    m->registered = true;
    if (m->kind == MAPPING_ANON)
        r->n_anon++;
    else
        r->n_file++;
    mapping_ref(m);
    return 0;
}

void registry_remove(struct registry *r, struct mapping *m)
{
    if (!m->registered)
        return;
    hmap_remove(&r->by_key, &m->key_node);
    hmap_remove(&r->by_id, &m->id_node);
    m->registered = false;
    if (m->kind == MAPPING_ANON)
        r->n_anon--;
    else
        r->n_file--;
    mapping_unref(m);
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
