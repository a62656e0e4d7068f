/*
 * adminview: what the admin requests show, for both daemons (Linux's
 * admin.c, Windows' winadmin.c): who may see whose mappings and
 * connections, the words of a refusal, AdminStatus' common part, a
 * client's entry, and the paging of AdminList and AdminClients replies
 * (after after_id, in id order, at most ADMINVIEW_PAGE_MAX entries and
 * about ADMINVIEW_PAGE_BYTES packed, the first entry always, and `more`
 * when one was left off). Portable: the protocol's messages and the C
 * library only (gcc on Linux, mingw).
 */
#ifndef MMAPIOD_ADMINVIEW_H
#define MMAPIOD_ADMINVIEW_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mmapio.h"
#include "mmapio.pb-c.h"
#include "peercred.h"

#define ADMINVIEW_PAGE_BYTES (48 * 1024) /* a reply page stays well under a frame */
#define ADMINVIEW_PAGE_MAX 512
#define ADMINVIEW_HELD_MAX 32            /* holdings listed per client */
#define ADMINVIEW_HELD_BYTES (16 * 1024) /* ... and their names' bytes: one
                                            client's entry fits a frame */

/* May a caller (uid `caller`, an admin or not) see and act on what `owner`
 * owns: a mapping, a connection? An admin: everything; anyone else: their
 * own. */
static inline bool adminview_sees(bool admin, uint32_t caller, uint32_t owner)
{
    return admin || owner == caller;
}

/* The refusal of an act on what is someone else's: printf's format for
 * ("anon:" or "", the name, the owner's uid). */
#define ADMINVIEW_NOT_OWNER \
    "%s%s belongs to uid %u: only its owner or an admin may do that"

/* What a listing shows, picked in any order and read back by id: the
 * items (mappings, connections) of ids after `after`. */
struct adminview_picks {
    struct adminview_pick {
        uint64_t id;
        void *item;
    } *v;
    size_t n, cap, k;
    uint64_t after;
};

/* Room for `cap` picks after id `after`. 0, or -ENOMEM (then it picks
 * nothing). */
int adminview_picks_init(struct adminview_picks *p, size_t cap, uint64_t after);
/* Picks `item` of id `id` unless the id is not after p's (or p is full). */
void adminview_pick(struct adminview_picks *p, uint64_t id, void *item);
/* The picks sorted by id, to be read by adminview_next from the first. */
void adminview_sort(struct adminview_picks *p);
/* The next item by id, or NULL after the last. */
void *adminview_next(struct adminview_picks *p);
void adminview_picks_free(struct adminview_picks *p);

/* AdminStatus: what a daemon says of itself, and its daemon-wide
 * counters (told to an admin only). */
struct adminview_daemon {
    int64_t started;                   /* unix seconds */
    int32_t pid;
    const char *socket, *root, *config_file; /* NULL: none */
    uint64_t rss_bytes;
    uint64_t flushes, flush_failures, errors, clients_total, arenas;
};

/* Counts in st one mapping the caller may see. */
void adminview_count(Mmapio__StatusReply *st, bool anonymous, uint64_t size);
/* st, counted, completed with d for a caller (an admin or not): *r, the
 * reply of `id` that carries it. */
Mmapio__Reply *adminview_status(Mmapio__Reply *r, uint64_t id, Mmapio__StatusReply *st,
                                bool admin, const struct adminview_daemon *d);

/* One number of AdminStatus' limits in lim[*n] (p[*n] pointing to it),
 * *n counted; nothing when *n is `max` already. */
void adminview_limit(Mmapio__Limit *lim, Mmapio__Limit **p, size_t *n, size_t max,
                     const char *name, uint64_t value, const char *what);

/* The next mapping of a listing, in id order: fills *i (initialised by
 * the callee) and its policy *pol; false when none is left. */
typedef bool adminview_map_fn(void *src, Mmapio__MapInfo *i, Mmapio__FlushPolicy *pol);
/* The next client of a listing, in id order: fills *ci, which comes
 * initialised with room for ADMINVIEW_HELD_MAX holdings (adminview_held);
 * false when none is left. */
typedef bool adminview_client_fn(void *src, Mmapio__ClientInfo *ci);

/* One page of a listing: the reply to send (reply), and what it points to. */
struct adminview_page {
    Mmapio__Reply reply;
    Mmapio__ListReply list;
    Mmapio__ClientsReply clients;
    Mmapio__MapInfo *maps, **map_p;
    Mmapio__FlushPolicy *pols;
    Mmapio__ClientInfo *cls, **cl_p;
    Mmapio__HeldInfo *held, **held_p;
};

/*
 * The page of request `id` from a source of mappings (next(src, ...)) or
 * clients, of at most `hint` items (a bound; SIZE_MAX if unknown: the
 * page's memory is sized by it). Reads the source up to one item past the
 * page, to tell `more`. 0, or -ENOMEM (nothing to free then).
 */
int adminview_list(struct adminview_page *p, uint64_t id, size_t hint,
                   adminview_map_fn *next, void *src);
int adminview_clients(struct adminview_page *p, uint64_t id, size_t hint,
                      adminview_client_fn *next, void *src);
void adminview_free(struct adminview_page *p);

/* A client's entry: its id, who it is, what it calls itself, how many
 * holders and watches it has (its holdings go through adminview_held). */
void adminview_client(Mmapio__ClientInfo *ci, uint64_t id, const struct peer_cred *cred,
                      const char *name, uint32_t held_total, uint32_t watches);
/* Adds a holding to a client's entry; false (nothing added) when it has
 * ADMINVIEW_HELD_MAX already, or its names would pass ADMINVIEW_HELD_BYTES
 * (paths are up to 4095 bytes: 32 of them would not fit a frame). */
bool adminview_held(Mmapio__ClientInfo *ci, uint64_t map_id, const char *name,
                    mmapio_mode mode, bool anonymous);

#endif
