/* arena: small anonymous mappings carved out of shared memfds (see arena.h). */
#include "arena.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "membackend.h"

/* The memfd's size stays under this (off_t, with room to spare). */
#define ARENA_SPAN (UINT64_C(1) << 62)

static uint64_t page_size(void)
{
    long p = sysconf(_SC_PAGESIZE);
    return p > 0 ? (uint64_t)p : 4096;
}

void arenas_init(struct arenas *a)
{
    hmap_init(&a->open);
    a->all = NULL;
    a->n = 0;
    a->next_id = 1;
    a->max = 0;
    a->stride = a->slots = 0;
}

void arenas_configure(struct arenas *a, uint64_t max, uint64_t stride,
                      uint64_t slots)
{
    uint64_t page = page_size();
    if (stride < page)
        stride = page;
    if (stride > ARENA_SPAN / 2)
        stride = ARENA_SPAN / 2;
    stride = (stride + page - 1) / page * page;
    if (slots > ARENA_SPAN / stride)
        slots = ARENA_SPAN / stride;
    a->max = slots == 0 ? 0 : max < stride ? max : stride;
    a->stride = stride;
    a->slots = slots;
}

static uint64_t class_hash(uid_t owner, gid_t group, mode_t perm)
{
    return hmap_hash_u64(((uint64_t)owner << 32 | group) ^
                         hmap_hash_u64((uint64_t)perm));
}

static void close_arena(struct arenas *a, struct arena *ar)
{
    if (!ar->retired)
        hmap_remove(&a->open, &ar->node);
    if (ar->all_prev)
        ar->all_prev->all_next = ar->all_next;
    else
        a->all = ar->all_next;
    if (ar->all_next)
        ar->all_next->all_prev = ar->all_prev;
    a->n--;
    close(ar->fd);
    free(ar);
}

static void retire(struct arenas *a, struct arena *ar);

/* Empty arenas close; one a mapping still uses closes with it. */
void arenas_fini(struct arenas *a)
{
    for (struct arena *ar = a->all, *next; ar; ar = next) {
        next = ar->all_next;
        if (ar->live == 0)
            close_arena(a, ar);
        else
            retire(a, ar);
    }
    hmap_free(&a->open);
}

bool arenas_fit(const struct arenas *a, uint64_t size, bool huge_pages)
{
    return a->max && size <= a->max && !huge_pages;
}

static struct arena *link_arena(struct arenas *a, int fd, uid_t owner,
                                gid_t group, mode_t perm, uint64_t stride,
                                uint64_t slots)
{
    struct arena *ar = calloc(1, sizeof(*ar));
    if (!ar) {
        close(fd);
        return NULL;
    }
    ar->id = a->next_id++;
    ar->fd = fd;
    ar->owner = owner;
    ar->group = group;
    ar->perm = perm;
    ar->stride = stride;
    ar->slots = slots;
    ar->all_next = a->all;
    if (a->all)
        a->all->all_prev = ar;
    a->all = ar;
    a->n++;
    return ar;
}

/* A new arena for the class: a memfd of slots * stride bytes, 0600 (only
 * the daemon reopens it), sealed at that size. */
static struct arena *new_arena(struct arenas *a, uid_t owner, gid_t group,
                               mode_t perm)
{
    int fd = mem_section_new("mmapio-arena", a->slots * a->stride, MEM_SEALABLE);
    int r = fd < 0 ? fd : mem_seal(fd, MEM_SEAL_SHRINK | MEM_SEAL_GROW | MEM_SEAL_SEAL);
    if (r < 0) {
        if (fd >= 0)
            close(fd);
        errno = -r;
        return NULL;
    }
    struct arena *ar = link_arena(a, fd, owner, group, perm, a->stride, a->slots);
    if (!ar) {
        errno = ENOMEM;
        return NULL;
    }
    if (hmap_insert(&a->open, &ar->node, class_hash(owner, group, perm)) < 0) {
        ar->retired = true; /* not on the open table */
        close_arena(a, ar);
        errno = ENOMEM;
        return NULL;
    }
    return ar;
}

static struct arena *open_arena(struct arenas *a, uid_t owner, gid_t group,
                                mode_t perm)
{
    for (struct hnode *n = hmap_find(&a->open, class_hash(owner, group, perm));
         n; n = hmap_next_same(n)) {
        struct arena *ar = container_of(n, struct arena, node);
        if (ar->owner == owner && ar->group == group && ar->perm == perm)
            return ar;
    }
    return NULL;
}

static void retire(struct arenas *a, struct arena *ar)
{
    if (ar->retired)
        return;
    hmap_remove(&a->open, &ar->node);
    ar->retired = true;
}

int arena_punch(const struct arena *ar, uint64_t from, uint64_t to)
{
    return mem_punch(ar->fd, from, to);
}

int arenas_carve(struct arenas *a, uid_t owner, gid_t group, mode_t perm,
                 struct arena **out, uint64_t *offset)
{
    struct arena *ar = open_arena(a, owner, group, perm);
    if (!ar && !(ar = new_arena(a, owner, group, perm)))
        return -errno;
    uint64_t off = ar->next++ * ar->stride;
    if (ar->next == ar->slots)
        retire(a, ar); /* full: the next mapping of the class starts another */
    ar->live++;
    /* Whatever a member of the class wrote there before is not the new
     * mapping's. */
    (void)arena_punch(ar, off, off + ar->stride);
    *out = ar;
    *offset = off;
    return 0;
}

void arenas_stop(struct arenas *a)
{
    a->stopping = true;
}

/* An arena nobody uses closes: its fd is one more the daemon holds for
 * nothing (and a uid could otherwise leave one open per mode it tried). */
static void unuse(struct arenas *a, struct arena *ar)
{
    if (--ar->live == 0)
        close_arena(a, ar);
}

void arenas_release(struct arenas *a, struct arena *ar, uint64_t offset)
{
    if (!a->stopping)
        (void)arena_punch(ar, offset, offset + ar->stride);
    unuse(a, ar);
}

struct arena *arenas_adopt(struct arenas *a, int fd, uid_t owner,
                           gid_t group, mode_t perm, uint64_t stride)
{
    struct stat st;
    if (fstat(fd, &st) < 0 || stride == 0) {
        close(fd);
        return NULL;
    }
    uint64_t slots = (uint64_t)st.st_size / stride;
    struct arena *ar = link_arena(a, fd, owner, group, perm, stride, slots);
    if (ar) {
        ar->retired = true;
        ar->next = slots;
        ar->live = 1; /* the restore's own, until arenas_unpin */
    }
    return ar;
}

void arenas_unpin(struct arenas *a, struct arena *ar)
{
    if (ar)
        unuse(a, ar);
}
