/* idlist: objects by id, for paging (see idlist.h). */
#include "idlist.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

void idlist_init(struct idlist *l)
{
    memset(l, 0, sizeof(*l));
}

void idlist_free(struct idlist *l)
{
    free(l->v);
    idlist_init(l);
}

size_t idlist_after(const struct idlist *l, uint64_t after)
{
    size_t lo = 0, hi = l->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (l->v[mid].id <= after)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static void compact(struct idlist *l)
{
    size_t k = 0;
    for (size_t i = 0; i < l->n; i++)
        if (l->v[i].ptr)
            l->v[k++] = l->v[i];
    l->n = k;
    l->holes = 0;
}

int idlist_add(struct idlist *l, uint64_t id, void *ptr)
{
    size_t pos = l->n && l->v[l->n - 1].id >= id ? idlist_after(l, id) : l->n;
    if (pos > 0 && l->v[pos - 1].id == id && !l->v[pos - 1].ptr) { /* a hole of the same id */
        l->v[pos - 1].ptr = ptr;
        l->holes--;
        return 0;
    }
    if (l->n == l->cap) {
        if (l->holes > 0) {
            compact(l);
            pos = idlist_after(l, id);
        } else {
            size_t cap = l->cap ? l->cap * 2 : 16;
            struct idlist_entry *v = realloc(l->v, cap * sizeof(*v));
            if (!v)
                return -ENOMEM;
            l->v = v;
            l->cap = cap;
        }
    }
    memmove(&l->v[pos + 1], &l->v[pos], (l->n - pos) * sizeof(*l->v));
    l->v[pos].id = id;
    l->v[pos].ptr = ptr;
    l->n++;
    return 0;
}

void idlist_remove(struct idlist *l, uint64_t id)
{
    size_t pos = idlist_after(l, id);
    if (pos == 0 || l->v[pos - 1].id != id || !l->v[pos - 1].ptr)
        return;
    l->v[pos - 1].ptr = NULL;
    l->holes++;
    if (l->holes == l->n) {
        l->n = l->holes = 0;
    } else if (l->holes > 32 && l->holes > l->n / 2) {
        compact(l);
    }
    if (l->n == 0 && l->cap > 16) {
        free(l->v);
        idlist_init(l);
    }
}

void *idlist_next(const struct idlist *l, size_t *pos)
{
    while (*pos < l->n) {
        void *p = l->v[(*pos)++].ptr;
        if (p)
            return p;
    }
    return NULL;
}
