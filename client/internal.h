/*
 * internal: what the files of libmmapio share and nothing else sees.
 *
 * client.c owns the connection (struct mmapio_client): one socket, one
 * mutex that serialises each request/reply round trip, the latch of the
 * first fatal error, the list of map handles that events are applied to,
 * and a bounded queue of watch events. map.c owns the map handle
 * (struct mmapio_map): the local mapping, its data path and its remaps.
 *
 * Lifetimes: a client is reference counted. mmapio_connect gives the
 * caller one reference, every map handle holds one; mmapio_disconnect
 * drops the caller's. The socket stays open, and the daemon keeps counting
 * this process as a holder, until the last reference is gone.
 */
#ifndef MMAPIO_CLIENT_INTERNAL_H
#define MMAPIO_CLIENT_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mmapio.h"
#include "mmapio.pb-c.h"

#define CLIENT_EVENT_QUEUE 128 /* watch events kept before the oldest drop */

/* A watch event waiting for mmapio_client_dispatch. */
struct client_event {
    Mmapio__EventKind kind;
    uint64_t map_id;
    bool has_range;
    uint64_t offset, len;
};

struct mmapio_client {
    atomic_uint refs;
    pthread_mutex_t lock;    /* guards every field below */
    int fd;                  /* the socket; closed when refs reach 0 */
    int ctl_fd;              /* control area from the hello reply, or -1
                                (kept for the control-area work to come) */
    int dead;                /* 0, or latched: MMAPIO_E_DISCONNECTED */
    bool shutdown_seen;      /* EVENT_SHUTDOWN arrived */
    uint64_t next_id;
    size_t max_frame;        /* largest request the daemon accepts */
    uint8_t *rxbuf;          /* one received datagram */
    struct mmapio_map *maps; /* handles opened from this client */
    unsigned unreported;     /* events applied since the last dispatch */
    struct client_event queue[CLIENT_EVENT_QUEUE];
    size_t q_head, q_len;
    bool q_overflow;         /* events were dropped from the queue */
};

/* An old mapping left in place after a moving remap (see map.c). */
struct map_region {
    void *base;
    size_t len;
    struct map_region *next;
};

struct mmapio_map {
    mmapio_client *client;          /* holds a reference */
    struct mmapio_map *prev, *next; /* in client->maps, under client->lock */
    uint64_t handle;                /* this holder, on the wire */
    uint64_t map_id;                /* the mapping, as events name it */
    int fd;                         /* owned, close-on-exec */
    mmapio_mode mode;
    char *path;                     /* as the caller passed it */
    size_t page;
    /* Data path state: read without a lock. A remap stores base before
     * len (release), so a reader that loads len (acquire) then base never
     * sees a length larger than the mapping behind the base. */
    _Atomic(uint8_t *) base;
    _Atomic uint64_t len;
    _Atomic int policy_kind;        /* stored after policy_value (release) */
    _Atomic uint64_t policy_value;
    _Atomic uint64_t pending_bytes;
    _Atomic uint64_t pending_writes;
    _Atomic uint64_t announced_size; /* last EVENT_RESIZED; 0 if none */
    struct map_region *retired;
};

/* A successful reply: the decoded message and the fd it carried (or -1). */
struct client_reply {
    Mmapio__ServerMessage *msg;
    Mmapio__Reply *reply;
    int fd;
};

/* ---- client.c ---- */
void client_ref(mmapio_client *c);
void client_unref(mmapio_client *c);
void client_lock(mmapio_client *c);
void client_unlock(mmapio_client *c);

/*
 * One round trip with the lock held: assigns req->id, sends, waits for the
 * reply, applies events read meanwhile. `want` is the result the reply
 * must carry on success (NOT_SET: none); an OPEN result must carry exactly
 * one fd, a HELLO result at most one (the control area), any other reply
 * none. Returns MMAPIO_OK with *rep filled (free
 * it with client_reply_free) or the error, with *rep untouched.
 */
int client_call_locked(mmapio_client *c, Mmapio__Request *req,
                       Mmapio__Reply__ResultCase want,
                       struct client_reply *rep);
/* The same, taking and dropping the lock; rep may be NULL. */
int client_call(mmapio_client *c, Mmapio__Request *req,
                Mmapio__Reply__ResultCase want, struct client_reply *rep);
void client_reply_free(struct client_reply *rep);

/* Gives p to every handle of mapping map_id (lock held). */
void client_apply_policy(mmapio_client *c, uint64_t map_id,
                         mmapio_flush_policy p);

/* Links/unlinks a map handle (lock held); attach takes a reference. */
void client_attach_map(mmapio_client *c, mmapio_map *m);
void client_detach_map(mmapio_client *c, mmapio_map *m);

/* ---- map.c ---- */
/* Sets the handle's flush policy (any thread, any time). */
void map_set_policy(mmapio_map *m, mmapio_flush_policy p);
/* Records a size another holder announced. */
void map_note_size(mmapio_map *m, uint64_t size);

#endif
