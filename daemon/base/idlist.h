/*
 * idlist: objects in the order of their ids (ids that mostly grow), for
 * paging: "the next k after id X" costs O(log n + k), whatever n is.
 *
 * A sorted array of (id, pointer). Adding an id above the last appends;
 * removing leaves a hole (pointer NULL) that walks skip, and the array is
 * compacted once holes outnumber the live entries, so every operation is
 * O(log n) amortized and memory follows the live count. A position found
 * by idlist_after is valid until the next add or remove.
 */
#ifndef MMAPIOD_IDLIST_H
#define MMAPIOD_IDLIST_H

#include <stddef.h>
#include <stdint.h>

struct idlist_entry {
    uint64_t id;
    void *ptr;                  /* NULL: removed */
};

struct idlist {
    struct idlist_entry *v;
    size_t n, cap, holes;
};

void idlist_init(struct idlist *l);
void idlist_free(struct idlist *l);
/* 0, or -ENOMEM (not added). The id must not be in the list. */
int idlist_add(struct idlist *l, uint64_t id, void *ptr);
void idlist_remove(struct idlist *l, uint64_t id);
/* Live entries. */
static inline size_t idlist_count(const struct idlist *l)
{
    return l->n - l->holes;
}
/* The position of the first entry with an id above `after` (0: from the
 * start). */
size_t idlist_after(const struct idlist *l, uint64_t after);
/* The live object at *pos or after it, moving *pos past it; NULL at the
 * end. */
void *idlist_next(const struct idlist *l, size_t *pos);

#endif
