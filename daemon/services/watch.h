/*
 * watch: who is told about changes to a mapping, and how the daemon learns
 * of them.
 *
 * Two sources. The system's file news (platform/watchsys.h; inotify on
 * Linux) on every file mapping sees what is done outside
 * mmapio (write(2), truncate, chmod, unlink): MODIFIED, METADATA, REMOVED,
 * and a size change is announced to the model (MAPPING_RESIZED). Writes
 * through a mapping are invisible to inotify, so the library reports
 * update_region writes on a watched mapping itself (through its write
 * ring, common/wring.h, or a WRITE notice; passed to watch_notify) and
 * they reach every watcher with their range. A mapping's watcher count sits in its control slot, so
 * writers of unwatched mappings send nothing.
 *
 * A watch belongs to an owner (a client's session, which embeds a struct
 * watch_owner); events go out through the `send` function given at start,
 * once per owner however many of its watches match. A watch pins its file
 * mapping in the registry, and so keeps one of the daemon's fds: it is
 * charged to the owner's uid like a holder (quota_hold), so a uid cannot
 * keep mappings alive past max_mappings_per_uid by watching what it no
 * longer holds. It observes the model: REMOVED reaches the
 * watchers, a retired or freed mapping stops being watched by inotify.
 */
#ifndef MMAPIOD_WATCH_H
#define MMAPIOD_WATCH_H

#include <stdbool.h>
#include <stdint.h>

#include "hmap.h"
#include "mapping.h"
#include "mmapio.pb-c.h"

struct event;
struct event_base;
struct quota;
struct registry;
struct watch;

/* Embedded by whoever owns watches. */
struct watch_owner {
    struct watch *first;
    uint32_t n;
    uid_t uid;                /* charged for its watches (quota_hold) */
};

typedef void (*watch_send_fn)(struct watch_owner *o, Mmapio__Event *ev);

struct watches {
    struct registry *reg;
    struct quota *quota;
    struct event_base *base;
    int sys_fd;               /* watchsys set (platform/watchsys.h) */
    struct event *ev_sys;
    struct hmap wds;          /* watchsys token -> a mapping's watch state */
    struct hmap ids;          /* watch id -> watch */
    struct hmap groups;       /* (watch state, owner) -> its watches there */
    uint64_t next_id;
    uint32_t max_per_owner;
    watch_send_fn send;
    struct mapping_hook hook;
};

/* 0 or -errno. */
int watches_init(struct watches *ws, struct registry *r, struct quota *q,
                 struct event_base *base, uint32_t max_per_owner,
                 watch_send_fn send);
void watches_fini(struct watches *ws);

/* Starts watching a file mapping (watchsys), once (failure is logged,
 * not fatal). */
void watch_track_file(struct watches *ws, struct mapping *m);

/* Subscribes o to m, charged to o->uid: MMAPIO_OK with *id, or
 * MMAPIO_E_QUOTA. */
int watch_add(struct watches *ws, struct watch_owner *o, struct mapping *m,
              uint64_t *id);
/* MMAPIO_OK or MMAPIO_E_NOT_FOUND (no such watch of o's). */
int watch_remove(struct watches *ws, struct watch_owner *o, uint64_t id);
void watch_release_owner(struct watches *ws, struct watch_owner *o);

/* Tells every watching owner once. */
void watch_notify(struct watches *ws, struct mapping *m, Mmapio__EventKind kind,
                  bool has_range, uint64_t offset, uint64_t len);
/* A writer of m said its next writes, for `ms` ms, may go unannounced
 * (a WRITE notice's hold): once that time (and a grace) has passed with
 * no newer hold, m's watchers get MODIFIED without a range. */
void watch_hold(struct watches *ws, struct mapping *m, uint32_t ms);

/* How many watches m has. */
uint32_t watch_count(struct watches *ws, struct mapping *m);

#endif
