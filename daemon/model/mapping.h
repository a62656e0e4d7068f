/*
 * mapping: one file under the data root or one named anonymous (memfd)
 * mapping, shared by every client that opens it, and its holders.
 *
 * The daemon keeps one read-write fd per mapping (when it can); grants hand
 * out a fresh, non-blocking reopen of it: read-write for read-write holders
 * (never the daemon's own description), read-only for read-only and
 * copy-on-write holders, so no holder can upgrade itself with mprotect. A mapping is reference counted: the registry, each flush job,
 * each holder and each watch keep it alive; the fd closes with the last
 * reference.
 *
 * The model is the bottom of the daemon: it calls nothing above it. What
 * happens to a mapping is announced through the hook (struct mapping_hook)
 * to the observers the registry added, the services and the request
 * handlers; each observer may also keep its own state on a mapping, in the
 * slot the hook gave it (mapping_ext).
 */
#ifndef MMAPIOD_MAPPING_H
#define MMAPIOD_MAPPING_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#include "arena.h"
#include "ctl.h"
#include "hmap.h"
#include "mmapio.h"

struct mapping_hook;

enum map_kind { MAPPING_FILE, MAPPING_ANON };

/* Observers of the model that keep state on mappings (a small, fixed set:
 * the services and the request handlers). */
#define MAPPING_EXT_MAX 8

/* What every mapping shares: the control area (one slot per live mapping),
 * the hook's observers and the next id. The registry owns the one. */
struct mapping_env {
    struct ctl ctl;
    struct mapping_hook *hooks;
    unsigned n_hooks;
    uint64_t next_id;
    /* Every mapping whose name is gone but which lives on (held), oldest
     * removal first: what `mmapioctl ls` shows as removed, found without
     * a walk over every holder. */
    struct mapping *removed_first, *removed_last;
    struct arenas arenas;       /* small anonymous mappings' memfds */
    struct hmap owners;         /* (mapping, owner) -> struct holder_group */
};

/* A holder's owner keeps its holders on a list of this kind. */
struct holder_list {
    struct holder *first;
    uint32_t n;
};

/* One owner's holders of one mapping, counted: a mapping lists these, not
 * its holders, since one owner may hold it thousands of times and a walk
 * over who holds it must cost what the owners are, not the holders. */
struct holder_group {
    void *owner;
    struct mapping *map;        /* not a reference: its holders keep it */
    uint32_t n;                 /* owner's holders of map (> 0) */
    uint64_t mark;              /* the owner's, for its walks: seen */
    struct holder_group *prev, *next;   /* the mapping's groups */
    struct hnode node;                  /* env->owners */
};

struct holder {
    uint64_t handle;            /* the wire's name for this holder */
    mmapio_mode mode;
    bool raw_writer;            /* has a writable pointer out */
    struct mapping *map;        /* a reference */
    void *owner;                /* who holds it; the model never looks */
    struct holder_group *group; /* owner's holders of map */
    struct holder *owner_prev, *owner_next; /* the owner's holder_list */
    struct hnode node;                      /* registry: handle -> holder */
};

struct mapping {
    uint64_t id;
    unsigned refs;
    enum map_kind kind;
    char *name;                 /* path relative to the root, or anon name */
    int fd;                     /* its own, or its arena's (borrowed) */
    bool fd_writable;
    struct arena *arena;        /* carved from it (arena.h), or NULL */
    uint64_t offset;            /* where in fd its bytes start */
    uint64_t size;
    bool size_fresh;            /* size was just read from the kernel: the
                                 * next mapping_sync_size keeps it */
    dev_t dev;                  /* files: identity in the registry */
    ino_t ino;
    uid_t owner;                /* anonymous: creator; files: from fstat */
    gid_t group;
    mode_t perm;
    mmapio_flush_policy policy;
    struct holder_group *groups; /* one per owner holding it */
    uint32_t n_groups;
    uint32_t n_holders;
    uint32_t n_writers;         /* holders in MMAPIO_MODE_READ_WRITE */
    uint32_t pins;              /* keep a file registered without holders
                                 * (registry_retire_if_unused) */
    bool registered;            /* reachable by name in the registry */
    bool removed;               /* deleted/unlinked while held */
    struct mapping *removed_prev, *removed_next; /* env's removed list */
    bool huge_asked;            /* an open asked for huge pages */
    bool hugetlb;               /* its memfd is from the hugetlb pool */
    time_t created;             /* when the daemon set it up */
    pid_t creator_pid;          /* whose open set it up; 0: unknown */
    struct hnode key_node;      /* registry: name or dev/ino -> mapping */
    struct hnode path_node;     /* registry: a file's name -> mapping */
    struct hnode id_node;       /* registry: id -> mapping */
    struct mapping_env *env;
    uint32_t slot;              /* the control area slot */
    void *ext[MAPPING_EXT_MAX]; /* observers' own state (mapping_ext) */
};

/*
 * What the hook announces. `origin` is an opaque "who caused it" that the
 * caller passes (a client's session, or NULL): observers that tell clients
 * skip the one that asked.
 */
enum mapping_change {
    MAPPING_REGISTERED, /* reachable by name from now on */
    MAPPING_POLICY,     /* its flush policy was set */
    MAPPING_RESIZED,    /* its size changed */
    MAPPING_REMOVED,    /* its name was deleted or unlinked; it lives on */
    MAPPING_IDLE,       /* a file's last holder and pin went: it leaves the
                         * registry next, unless an observer pins it */
    MAPPING_RETIRED,    /* it left the registry */
    MAPPING_FREED,      /* last reference gone: drop what you keep on it */
};

struct mapping_hook {
    void (*fn)(struct mapping_hook *hook, struct mapping *m,
               enum mapping_change what, const void *origin);
    unsigned slot;              /* index into mapping->ext, set on adding */
    struct mapping_hook *next;
};

/* A new mapping owning `fd` (consumed, also on failure) and a slot of the
 * control area. NULL when out of memory or slots. */
struct mapping *mapping_new(struct mapping_env *env, enum map_kind kind,
                            const char *name, int fd, bool fd_writable);
/* A new anonymous mapping carved from the arena of its class (arena.h), at
 * a slot never handed out before; the slot is released when it is freed.
 * `ar` NULL: a fresh slot of the class's open arena; else the slot at
 * `offset` of `ar`, an arena restored from the fd store (counted live).
 * NULL with errno set. */
struct mapping *mapping_new_carved(struct mapping_env *env, const char *name,
                                   uid_t owner, gid_t group, mode_t perm,
                                   struct arena *ar, uint64_t offset);
struct mapping *mapping_ref(struct mapping *m);
void mapping_unref(struct mapping *m);

/* Tells every observer of m's environment `what`. */
void mapping_changed(struct mapping *m, enum mapping_change what,
                     const void *origin);

/* The observer's own state on m (NULL until it stores something). */
static inline void **mapping_ext(struct mapping *m,
                                 const struct mapping_hook *hook)
{
    return &m->ext[hook->slot];
}

/* Sets the policy, in the mapping and in its control slot; announces it. */
void mapping_set_policy(struct mapping *m, mmapio_flush_policy p,
                        const void *origin);

/* The name is gone (deleted or unlinked): announced once. */
void mapping_mark_removed(struct mapping *m);

void mapping_pin(struct mapping *m);
void mapping_unpin(struct mapping *m);

/*
 * The fd to send to a holder of `mode`: a new open file description of
 * the mapping, read-write or read-only as `mode` says, opened without
 * waiting (*owned = true: the caller closes it). MMAPIO_OK, or a negative
 * mmapio_err: MMAPIO_E_BUSY while someone's lease on the file is being
 * broken, MMAPIO_E_QUOTA out of fds.
 */
int mapping_grant_fd(struct mapping *m, mmapio_mode mode, int *fd, bool *owned);

/* Sets the size. A file: ftruncate, and fallocate of any growth so that
 * writes through a mapping cannot SIGBUS on a full disk. An anonymous
 * mapping: its memfd cannot shrink (sealed, see mapping.c), so a smaller
 * size punches the bytes past it and only the daemon's size changes.
 * MMAPIO_OK, or MMAPIO_E_RESIZE_FAILED / MMAPIO_E_QUOTA with errno's reason
 * in *why. Nothing is announced: the caller says who must hear
 * (MAPPING_RESIZED). */
int mapping_set_size(struct mapping *m, uint64_t size, const char **why);

/* Reserves the holes of a file in [from, to) (fallocate; a file system
 * without it is taken at its word), unless they reach past `max`. 0 (also
 * when there are no holes, or for anonymous mappings and files the daemon
 * cannot write) or -errno: -ENOSPC/-EDQUOT, the disk cannot back them;
 * -EFBIG, past max (nothing was allocated). */
int mapping_reserve(struct mapping *m, uint64_t from, uint64_t to,
                    uint64_t max);

/* What the kernel holds, now: a file's size is re-read (another process
 * may have truncated or grown it); an anonymous mapping keeps the daemon's
 * size and whatever a holder put past it is punched away. Returns m->size. */
uint64_t mapping_sync_size(struct mapping *m);
/* A file's size the caller just read from the kernel (fstat of the very
 * file): taken as mapping_sync_size would, which then keeps it once
 * instead of asking again. Returns m->size. */
uint64_t mapping_size_seen(struct mapping *m, uint64_t size);

/* Holders: attach takes a mapping reference for h (whose owner is set)
 * and puts h on the owner's list and in its group of m; detach undoes all
 * and drops the reference. Attach: 0, or -ENOMEM (nothing changed). */
int mapping_attach(struct mapping *m, struct holder *h,
                   struct holder_list *owner_list);
void mapping_detach(struct holder *h, struct holder_list *owner_list);

#endif
