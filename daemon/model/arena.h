/*
 * arena: small anonymous mappings carved out of shared memfds, so that
 * 100,000 of them need neither 100,000 daemon fds nor 100,000 fds in a
 * client that holds them all.
 *
 * Why it is safe to share an fd. An fd grants its whole file, at any
 * offset, to whoever receives it, and the kernel cannot tell one range of
 * a memfd from another. So:
 *
 *  1. One arena holds only mappings of one access class: the same owner
 *     uid, group gid and permission bits. Access to an anonymous mapping is
 *     decided from exactly these (access_check), and they never change
 *     after creation: whoever may read (or write) one mapping of the arena
 *     may read (or write) every other. Huge-page requests get a memfd of
 *     their own (hugetlb memfds size in whole huge pages).
 *  2. The daemon keeps the arena's read-write fd. A read-only or
 *     copy-on-write grant is a read-only reopen of it, as for any mapping,
 *     so no holder can mprotect its way to writing; a memfd is 0600 and the
 *     daemon's, so it cannot be reopened read-write through /proc either.
 *  3. Space is never reused. Each mapping takes a fresh slot of `stride`
 *     bytes at a page-aligned offset that was never handed out; its bytes
 *     are punched when it is made (whatever a class member wrote there
 *     beforehand is gone), on shrink/growth past the size, and when it is
 *     freed (the memory returns at once). A freed slot is never handed out
 *     again, so a process that still holds the arena's fd (an old holder)
 *     can reach only its own class's dead bytes, never a new mapping. An
 *     arena whose slots are used up is retired: it takes no new mapping.
 *     Any arena closes with its last mapping (the next mapping of its
 *     class starts a new one), so the daemon holds no fd that no mapping
 *     needs.
 *  4. The memfd is sized once, to slots * stride, and sealed against
 *     growing, shrinking and further seals: no holder can change its size
 *     (SIGBUS for the others); memfd offsets are sparse, so the size
 *     itself costs nothing.
 *
 * The stride. A mapping grows and shrinks in place inside its slot, and
 * cannot leave it: moving it to other memory would lose the writes its
 * holders make meanwhile through the pointers they hold (the library hands
 * out raw pointers; a remap never pulls memory from under one). So by
 * default the stride is max_map_size, and a carved mapping can grow to any
 * size the daemon allows, as API.md promises. Sparse offsets are not free
 * for the kernel, though: pages far apart in a memfd's page index each
 * need their own chain of index nodes, ~2.4 KiB of kernel memory per
 * touched 4 KiB mapping at a 1 TiB stride against ~0.15 KiB at 64 KiB
 * (measured with 100,000). arena_stride trades the one for the other: a
 * carved mapping past its stride is refused (MMAPIO_E_RESIZE_FAILED, with
 * the reason).
 *
 * What it does not stop: a read-write member of a class may write through
 * its fd into free space of its own arena (a slot not yet made, or one
 * freed). The kernel charges those pages to the writer's memory cgroup;
 * a slot is punched again when it is made and when it is freed, and the
 * whole arena's memory goes when it closes. And an fd outlives the rights
 * it was granted under, as any fd does: a process that loses its access
 * to a class (say, taken out of the group) keeps reaching the mappings of
 * the class in that arena, later ones included, until it closes the fd.
 */
#ifndef MMAPIOD_ARENA_H
#define MMAPIOD_ARENA_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "hmap.h"

struct arena {
    uint64_t id;             /* the wire's name for it; never reused */
    int fd;                  /* the daemon's read-write memfd */
    uid_t owner;             /* the access class */
    gid_t group;
    mode_t perm;
    uint64_t stride;         /* bytes of offset space per mapping */
    uint64_t slots;          /* mappings it can ever hold */
    uint64_t next;           /* slots [next, slots) were never handed out */
    uint64_t live;           /* mappings carved from it, not yet freed (and
                              * a restore's pin, arenas_adopt) */
    bool retired;            /* takes no new mapping */
    struct hnode node;       /* arenas.open: class -> arena */
    struct arena *all_prev, *all_next; /* arenas.all */
};

struct arenas {
    struct hmap open;        /* the one arena of each class taking mappings */
    struct arena *all;       /* every arena with an fd */
    uint64_t n;              /* arenas with an fd */
    uint64_t next_id;
    uint64_t max;            /* largest mapping carved out (0: no arenas) */
    uint64_t stride;
    uint64_t slots;
    bool stopping;           /* freed slots keep their bytes (arenas_stop) */
};

void arenas_init(struct arenas *a);
/* Mappings up to `max` bytes (at most a stride) come from arenas of
 * `slots` slots of `stride` bytes each (stride rounded up to a page; slots
 * lowered so the memfd stays under 2^62 bytes). max 0: none do. */
void arenas_configure(struct arenas *a, uint64_t max, uint64_t stride,
                      uint64_t slots);
/* The daemon is about to let go of every mapping while its clients keep
 * theirs mapped: from now on a freed mapping's bytes are not punched. */
void arenas_stop(struct arenas *a);
/* The daemon is stopping: every arena no mapping uses closes (one still
 * used closes with its last mapping). */
void arenas_fini(struct arenas *a);

/* Whether a new anonymous mapping of `size` is to be carved from one. */
bool arenas_fit(const struct arenas *a, uint64_t size, bool huge_pages);

/* A fresh slot for a mapping of the class, punched to zeros: its arena
 * (*out, with live counted) and offset. 0 or -errno (no memfd). */
int arenas_carve(struct arenas *a, uid_t owner, gid_t group, mode_t perm,
                 struct arena **out, uint64_t *offset);
/* The mapping at `offset` is freed: its slot is punched, never reused;
 * the arena closes with its last mapping. */
void arenas_release(struct arenas *a, struct arena *ar, uint64_t offset);
/* Zeros [from, to) of an arena (bytes no mapping may show). 0 or -errno. */
int arena_punch(const struct arena *ar, uint64_t from, uint64_t to);

/* An arena that was stored (fdstore) comes back under a new id: retired
 * at once, since which of its slots were handed out before the restart is
 * not known; pinned (counted live) until arenas_unpin, so that the
 * mappings restored into it may come and go meanwhile. `fd` is consumed.
 * NULL without memory. */
struct arena *arenas_adopt(struct arenas *a, int fd, uid_t owner,
                           gid_t group, mode_t perm, uint64_t stride);
/* The restore is done with ar (NULL: nothing): it closes unless a mapping
 * uses it. */
void arenas_unpin(struct arenas *a, struct arena *ar);

#endif
