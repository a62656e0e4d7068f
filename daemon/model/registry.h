/*
 * registry: what exists, the root of the model. Finds a mapping by
 * anonymous name, by file identity (device and inode, so two spellings of
 * one file are one mapping) or by id, and a holder by its handle. It never
 * decides access; it only answers "which object is that".
 *
 * Mappings are also kept in id order, all of them and each owner's, so a
 * page of a listing costs the page, not the registry (registry_walk).
 *
 * It also owns what every mapping shares: the control area (one slot per
 * live mapping) and the hook, the list of observers told of every change
 * (struct mapping_hook). Observers are added once, at start-up, in the
 * order they are to be told.
 */
#ifndef MMAPIOD_REGISTRY_H
#define MMAPIOD_REGISTRY_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "hmap.h"
#include "idlist.h"
#include "mapping.h"

struct registry {
    struct hmap by_key;     /* anon name / file dev+ino -> mapping */
    struct hmap by_path;    /* file name (as first opened) -> mapping */
    struct hmap by_id;      /* mapping id -> mapping */
    struct hmap handles;    /* handle -> holder */
    struct idlist in_order; /* every registered mapping, by id */
    struct hmap owners;     /* uid -> its registered mappings, by id */
    uint64_t next_handle;
    uint64_t n_anon, n_file;
    struct mapping_env env;  /* control area, observers, ids */
};

/* An empty registry with a control area of n_slots. 0 or -errno. */
int registry_init(struct registry *r, uint32_t n_slots);
/* Drops every registered mapping (announcing each), then the control
 * area. Mappings still referenced elsewhere must be gone by then. */
void registry_fini(struct registry *r);

/* Adds an observer, told after those added before it. 0, or -ENOSPC past
 * MAPPING_EXT_MAX observers. */
int registry_add_hook(struct registry *r, struct mapping_hook *hook);

struct mapping *registry_find_anon(const struct registry *r, const char *name);
struct mapping *registry_find_file(const struct registry *r, dev_t dev, ino_t ino);
/* Whether a registered file mapping was opened as `path`: a hint only (the
 * file may have been renamed or replaced since), worth the open that finds
 * out by device and inode. */
bool registry_has_file_path(const struct registry *r, const char *path);
/* Registers m (taking a reference) and announces it. 0 or -ENOMEM. */
int registry_add(struct registry *r, struct mapping *m);
/* Unregisters m, announces it retired, drops the registry's reference. */
void registry_remove(struct registry *r, struct mapping *m);
/* A file mapping nobody holds and nobody pinned leaves the registry
 * (announced MAPPING_IDLE first: an observer that pins it keeps it); what
 * still references it keeps the object alive. The caller holds a
 * reference. */
void registry_retire_if_unused(struct registry *r, struct mapping *m);

/* Gives h a fresh handle and indexes it. 0 or -ENOMEM. */
int registry_add_holder(struct registry *r, struct holder *h);
struct holder *registry_find_holder(const struct registry *r, uint64_t handle);
void registry_remove_holder(struct registry *r, struct holder *h);

/* Registered mappings in id order, from the first id above `after`: all
 * of them (owner NULL) or only those of *owner. Nothing may be registered
 * or unregistered while a walk is in use. */
struct registry_walk {
    const struct idlist *l;
    size_t pos;
};
void registry_walk_start(const struct registry *r, const uid_t *owner,
                         uint64_t after, struct registry_walk *w);
/* The next mapping of the walk, or NULL. */
struct mapping *registry_walk_next(struct registry_walk *w);
/* The number of mappings of *owner (owner NULL: all). */
size_t registry_count(const struct registry *r, const uid_t *owner);

/* Calls fn for every registered mapping (fn must not unregister others). */
void registry_foreach(struct registry *r, void (*fn)(struct mapping *, void *),
                      void *arg);

#endif
