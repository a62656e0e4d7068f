/*
 * watch: who is told about changes to a mapping, and how the daemon learns
 * of them.
 *
 * Two sources. inotify on every file mapping sees what is done outside
 * mmapio (write(2), truncate, chmod, unlink): MODIFIED, METADATA, REMOVED,
 * and size changes go to holders as RESIZED. Writes through a mapping are
 * invisible to inotify, so the library reports update_region writes on a
 * watched mapping itself (a WRITE notice) and they reach every watcher with
 * their exact offset and length. A mapping's watcher count sits in its
 * control slot, so writers of unwatched mappings send nothing.
 */
#ifndef MMAPIOD_WATCH_H
#define MMAPIOD_WATCH_H

#include <stdbool.h>
#include <stdint.h>

#include "hmap.h"
#include "mmapio.pb-c.h"

struct daemon;
struct conn;
struct holder;
struct mapping;

struct watch {
    uint64_t id;
    struct conn *conn;
    struct mapping *map;      /* a reference */
    struct watch *map_prev, *map_next;
    struct watch *conn_prev, *conn_next;
    struct hnode node;        /* daemon: id -> watch */
};

/* 0 or -errno. */
int watch_init(struct daemon *d);
void watch_fini(struct daemon *d);

/* Starts inotify on a file mapping (failure is logged, not fatal). */
void watch_track_file(struct daemon *d, struct mapping *m);
/* Stops it; from mapping_unref. */
void watch_forget(struct mapping *m);

/* Subscribes c to h's mapping: MMAPIO_OK with *id, or MMAPIO_E_QUOTA. */
int watch_add(struct conn *c, struct holder *h, uint64_t *id);
/* MMAPIO_OK or MMAPIO_E_NOT_FOUND. */
int watch_remove(struct conn *c, uint64_t id);
void watch_release_conn(struct conn *c);

/* Tells every watching connection once. */
void watch_notify(struct mapping *m, Mmapio__EventKind kind, bool has_range,
                  uint64_t offset, uint64_t len);

#endif
