/*
 * fdstore: anonymous mappings that outlive a restart of the daemon, kept in
 * systemd's file-descriptor store. Without systemd (no NOTIFY_SOCKET) it
 * does nothing.
 *
 * Every registered anonymous mapping's memfd is stored as "anon-ID",
 * beside "anon-meta", a memfd holding an append-only log of what each ID
 * is (name, owner, group, mode, policy, size) and which IDs were deleted.
 * On the next start the stored fds come back in LISTEN_FDS with
 * LISTEN_FDNAMES (the transport hands each to fdstore_take); the log is
 * replayed and the mappings are registered under their names again,
 * contents intact, then stored afresh. When the log holds more than twice
 * the live records it is rewritten into a new memfd ("anon-meta.GEN",
 * stored before the old one goes; on restore the highest generation wins).
 *
 * A small anonymous mapping carved from an arena (arena.h) has no memfd of
 * its own: its arena's is stored once, as "arena-ID", and its record
 * names the arena and its offset there (see fdstore.c).
 *
 * It observes the model: a registered, re-policied, resized or retired
 * anonymous mapping is recorded as it happens.
 */
#ifndef MMAPIOD_FDSTORE_H
#define MMAPIOD_FDSTORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hmap.h"
#include "mapping.h"

struct quota;
struct registry;
struct stored_fd;

struct fdstore {
    struct registry *reg;
    struct quota *quota;       /* restored mappings are charged */
    int meta_fd;               /* the store's meta log, -1 when not storing */
    uint64_t meta_off;
    uint64_t meta_gen;         /* stored as "anon-meta" (0) or "anon-meta.GEN" */
    uint64_t meta_records;
    bool compacting;
    /* what systemd handed back, until fdstore_restore */
    int taken_meta;
    int64_t taken_meta_gen;
    struct stored_fd *taken;
    size_t n_taken, cap_taken;
    struct stored_fd *taken_arenas; /* "arena-ID" fds */
    size_t n_taken_arenas, cap_taken_arenas;
    struct hmap arenas;        /* counted (hmap_count_*): stored arena id ->
                                * mappings stored in it */
    struct mapping_hook hook;
};

/* 0 or -errno. */
int fdstore_init(struct fdstore *s, struct registry *r, struct quota *q);
/* An fd systemd passed under `name`: 1 when it is the store's (consumed),
 * 0 when not (the caller keeps it). */
int fdstore_take(struct fdstore *s, const char *name, int fd);
/* Registers the mappings taken back and forgets their old store names. */
void fdstore_restore(struct fdstore *s);
/* Under systemd: stores every anonymous mapping from now on. */
void fdstore_start(struct fdstore *s);
/* Stops storing (what is stored stays in systemd's store). */
void fdstore_fini(struct fdstore *s);

#endif
