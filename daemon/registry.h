/*
 * registry: what exists. Finds a mapping by anonymous name, by file
 * identity (device and inode, so two spellings of one file are one mapping)
 * or by id, and a holder by its handle. It never decides access; it only
 * answers "which object is that".
 */
#ifndef MMAPIOD_REGISTRY_H
#define MMAPIOD_REGISTRY_H

#include <stdint.h>
#include <sys/types.h>

#include "hmap.h"
#include "mapping.h"

struct registry {
    struct hmap by_key;     /* anon name / file dev+ino -> mapping */
    struct hmap by_id;      /* mapping id -> mapping */
    struct hmap handles;    /* handle -> holder */
    uint64_t next_handle;
    uint64_t n_anon, n_file;
};

void registry_init(struct registry *r);
void registry_fini(struct registry *r); /* drops every registered mapping */

struct mapping *registry_find_anon(const struct registry *r, const char *name);
struct mapping *registry_find_file(const struct registry *r, dev_t dev, ino_t ino);
/* Registers m (taking a reference). 0 or -ENOMEM. */
int registry_add(struct registry *r, struct mapping *m);
/* Unregisters m and drops the registry's reference. */
void registry_remove(struct registry *r, struct mapping *m);

/* Gives h a fresh handle and indexes it. 0 or -ENOMEM. */
int registry_add_holder(struct registry *r, struct holder *h);
struct holder *registry_find_holder(const struct registry *r, uint64_t handle);
void registry_remove_holder(struct registry *r, struct holder *h);

/* Calls fn for every registered mapping (fn must not unregister others). */
void registry_foreach(struct registry *r, void (*fn)(struct mapping *, void *),
                      void *arg);

#endif
