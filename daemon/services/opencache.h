/*
 * opencache: file mappings nobody holds any more, kept ready for the next
 * open of the same file (at most open_cache of them, least recently
 * released evicted first).
 *
 * When a file mapping's last holder and pin go, the registry asks its
 * observers first (MAPPING_IDLE); this service pins the mapping and keeps
 * it registered, with its fd, its inotify watch and its control slot, so
 * an open of that file finds it by device and inode instead of building
 * it anew. What a fresh mapping would not have is dropped when it parks:
 * its flush policy goes back to never, huge_asked to false. Its final
 * flush (flushes.h) was queued before, when one was due.
 *
 * Never stale, never a way around a check: an open that finds a cached
 * mapping has opened the path afresh, as the peer, and compared device and
 * inode (open.c); the size is re-read at every hold (quota.h). A file
 * unlinked (inotify, or a delete) is evicted at once, so its disk space
 * is not kept; one replaced or renamed away is simply not found again and
 * ages out.
 *
 * Not held: a cached mapping has no holder, charges no uid, does not
 * count in quota's max_mappings (it is un-admitted when it parks and
 * admitted again when taken: the cache can never make an open fail with
 * MMAPIO_E_QUOTA) and is hidden from listings and by-name admin requests
 * (opencache_holds). Its fds are a budget of their own (config_fit_fds).
 * When the daemon runs short of fds anyway (EMFILE/ENFILE), opencache_shrink
 * gives some back.
 */
#ifndef MMAPIOD_OPENCACHE_H
#define MMAPIOD_OPENCACHE_H

#include <stdbool.h>
#include <stdint.h>

#include "mapping.h"

struct event;
struct event_base;
struct quota;
struct registry;
struct cache_entry;

struct opencache {
    struct registry *reg;
    struct quota *quota;
    struct event *sweep;        /* evicts unlinked files off the hook */
    struct mapping_hook hook;
    uint32_t max, n;
    struct cache_entry *newest, *oldest;
    struct cache_entry *spare;  /* the last one let go, for the next park */
    uint64_t hits, evictions;   /* since start */
};

/* At most `max` entries (0: none kept). 0 or -errno. */
int opencache_init(struct opencache *oc, struct registry *r, struct quota *q,
                   struct event_base *base, uint32_t max);
void opencache_fini(struct opencache *oc);

/* m is about to get a holder or a pin: out of the cache (if it was in it)
 * and counted again by quota (quota_admit; `admin` may take the reserve).
 * MMAPIO_OK or MMAPIO_E_QUOTA (then it is out of the cache, unheld: the
 * caller's registry_retire_if_unused parks it again). */
int opencache_take(struct opencache *oc, struct mapping *m, bool admin);

/* Evicts m if it is cached. */
void opencache_drop(struct opencache *oc, struct mapping *m);

/* Whether m sits in the cache (nobody holds it). */
bool opencache_holds(struct opencache *oc, struct mapping *m);

/* Evicts up to n of the oldest; returns how many. */
uint32_t opencache_shrink(struct opencache *oc, uint32_t n);

#endif
