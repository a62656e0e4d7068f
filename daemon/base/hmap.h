/*
 * hmap: an intrusive chained hash table. The caller embeds a struct hnode
 * in its object, supplies the hash, and compares keys itself while walking
 * the nodes that share a hash (hmap_find / hmap_next_same). The table grows
 * as it fills, so lookups stay O(1) with 100,000 entries.
 */
#ifndef MMAPIOD_HMAP_H
#define MMAPIOD_HMAP_H

#include <stddef.h>
#include <stdint.h>

struct hnode {
    struct hnode *next;
    uint64_t hash;
};

struct hmap {
    struct hnode **buckets;
    size_t n_buckets; /* a power of two, or 0 before the first insert */
    size_t n;
};

#define container_of(ptr, type, member) \
    ((type *)((char *)(ptr) - offsetof(type, member)))

void hmap_init(struct hmap *m);
void hmap_free(struct hmap *m); /* frees the table, not the nodes */
/* 0, or -ENOMEM (the node is then not inserted). */
int hmap_insert(struct hmap *m, struct hnode *n, uint64_t hash);
void hmap_remove(struct hmap *m, struct hnode *n);
struct hnode *hmap_find(const struct hmap *m, uint64_t hash);
struct hnode *hmap_next_same(const struct hnode *n);

/* Counted keys: a table of u64 keys, each with a count, whose entries
 * the table allocates and frees. hmap_count_add returns the key's count
 * after adding one (0 without memory: nothing counted); hmap_count_drop
 * the count after taking one off (the entry goes at 0; 0 also for a key
 * not counted); hmap_count_free frees every entry and the table. */
uint64_t hmap_count_add(struct hmap *m, uint64_t key);
uint64_t hmap_count_drop(struct hmap *m, uint64_t key);
uint64_t hmap_count_of(const struct hmap *m, uint64_t key);
void hmap_count_free(struct hmap *m);

uint64_t hmap_hash_u64(uint64_t x);
uint64_t hmap_hash_str(const char *s);

#endif
