/* hmap: intrusive chained hash table (see hmap.h). */
#include "hmap.h"

#include <errno.h>
#include <stdlib.h>

void hmap_init(struct hmap *m)
{
    m->buckets = NULL;
    m->n_buckets = 0;
    m->n = 0;
}

void hmap_free(struct hmap *m)
{
    free(m->buckets);
    hmap_init(m);
}

static int grow(struct hmap *m)
{
    size_t nb = m->n_buckets ? m->n_buckets * 2 : 64;
    struct hnode **b = calloc(nb, sizeof(*b));
    if (!b)
        return -ENOMEM;
    for (size_t i = 0; i < m->n_buckets; i++) {
        struct hnode *n = m->buckets[i];
        while (n) {
            struct hnode *next = n->next;
            size_t j = n->hash & (nb - 1);
            n->next = b[j];
            b[j] = n;
            n = next;
        }
    }
    free(m->buckets);
    m->buckets = b;
    m->n_buckets = nb;
    return 0;
}

int hmap_insert(struct hmap *m, struct hnode *n, uint64_t hash)
{
    if (m->n >= m->n_buckets && grow(m) < 0)
        return -ENOMEM;
    size_t i = hash & (m->n_buckets - 1);
    n->hash = hash;
    n->next = m->buckets[i];
    m->buckets[i] = n;
    m->n++;
    return 0;
}

void hmap_remove(struct hmap *m, struct hnode *n)
{
    if (!m->n_buckets)
        return;
    struct hnode **p = &m->buckets[n->hash & (m->n_buckets - 1)];
    for (; *p; p = &(*p)->next) {
        if (*p == n) {
            *p = n->next;
            n->next = NULL;
            m->n--;
            return;
        }
    }
}

static struct hnode *same_from(struct hnode *n, uint64_t hash)
{
    while (n && n->hash != hash)
        n = n->next;
    return n;
}

struct hnode *hmap_find(const struct hmap *m, uint64_t hash)
{
    if (!m->n_buckets)
        return NULL;
    return same_from(m->buckets[hash & (m->n_buckets - 1)], hash);
}

struct hnode *hmap_next_same(const struct hnode *n)
{
    return same_from(n->next, n->hash);
}

struct hcount {
    struct hnode node;
    uint64_t key;
    uint64_t n;
};

static struct hcount *count_find(const struct hmap *m, uint64_t key)
{
    for (struct hnode *n = hmap_find(m, hmap_hash_u64(key)); n;
         n = hmap_next_same(n)) {
        struct hcount *c = container_of(n, struct hcount, node);
        if (c->key == key)
            return c;
    }
    return NULL;
}

uint64_t hmap_count_add(struct hmap *m, uint64_t key)
{
    struct hcount *c = count_find(m, key);
    if (!c) {
        c = calloc(1, sizeof(*c));
        if (!c)
            return 0;
        c->key = key;
        if (hmap_insert(m, &c->node, hmap_hash_u64(key)) < 0) {
            free(c);
            return 0;
        }
    }
    return ++c->n;
}

uint64_t hmap_count_drop(struct hmap *m, uint64_t key)
{
    struct hcount *c = count_find(m, key);
    if (!c)
        return 0;
    uint64_t left = --c->n;
    if (left == 0) {
        hmap_remove(m, &c->node);
        free(c);
    }
    return left;
}

uint64_t hmap_count_of(const struct hmap *m, uint64_t key)
{
    const struct hcount *c = count_find(m, key);
    return c ? c->n : 0;
}

void hmap_count_free(struct hmap *m)
{
    for (size_t b = 0; b < m->n_buckets; b++)
        for (struct hnode *n = m->buckets[b], *next; n; n = next) {
            next = n->next;
            free(container_of(n, struct hcount, node));
        }
    hmap_free(m);
}

uint64_t hmap_hash_u64(uint64_t x)
{
    /* splitmix64 finaliser: every input bit reaches every output bit */
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ULL;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

uint64_t hmap_hash_str(const char *s)
{
    uint64_t h = 0xcbf29ce484222325ULL; /* FNV-1a */
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 0x100000001b3ULL;
    return hmap_hash_u64(h);
}
