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

#include "ctlarea.h"
#include "mmapio.h"
#include "mmapio.pb-c.h"

#define CLIENT_EVENT_QUEUE 128 /* watch events kept before the oldest drop */

struct mmapio_watcher {
    atomic_uint refs;               /* the client's list, and deliveries */
    atomic_bool removed;            /* unwatched: run no more callbacks */
    mmapio_client *client;          /* holds a reference */
    uint64_t map_id;
    uint64_t watch_id;
    mmapio_watch_cb cb;
    void *user;
    struct mmapio_watcher *next;    /* in client->watchers, under the lock */
};

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
    const struct ctl_slot *area; /* the control area, mapped read-only */
    uint32_t area_slots;
    struct mmapio_watcher *watchers;
    int dead;                /* 0, or latched: MMAPIO_E_DISCONNECTED */
    atomic_bool gone;        /* a notice found the socket dead: send no more */
    int wake_fd;             /* eventfd: events arrived for a waiting dispatch */
    bool waiting;            /* a dispatch waits outside the lock */
    bool shutdown_seen;      /* EVENT_SHUTDOWN arrived */
    uint64_t next_id;
    size_t max_frame;        /* largest request the daemon accepts */
    uint8_t *rxbuf;          /* one received datagram */
    struct mmapio_map *maps; /* handles opened from this client */
    unsigned unreported;     /* events applied since the last dispatch */
    struct client_event queue[CLIENT_EVENT_QUEUE];
    size_t q_head, q_len;
    bool q_overflow;         /* events were dropped from the queue */
    char last_message[256];  /* the daemon's text of the last error reply */
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
    const struct ctl_slot *slot;    /* policy, flush_gen, watchers */
    _Atomic uint32_t told_gen;      /* flush_gen when we last said DIRTY */
    atomic_bool told_raw;           /* RAW_WRITER notice sent */
    atomic_bool lost_notice;        /* a notice could not be sent */
    _Atomic uint64_t pending_bytes;
    _Atomic uint64_t pending_writes;
    struct map_region *retired;
    /* guard.c put zero pages in the map from this offset on (UINT64_MAX:
     * none): copies reaching it fail until a refresh remaps. */
    _Atomic uint64_t poisoned_from;
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


/* Links/unlinks a map handle (lock held); attach takes a reference. */
void client_attach_map(mmapio_client *c, mmapio_map *m);
void client_detach_map(mmapio_client *c, mmapio_map *m);

/* ---- area.c ---- */
/* Maps the control area whose fd (consumed) came with the hello reply. */
int area_attach(mmapio_client *c, int fd, uint32_t slots);
void area_detach(mmapio_client *c);
/* The slot of a granted mapping, or NULL when out of range. */
const struct ctl_slot *area_slot(const mmapio_client *c, uint32_t slot);
/* One-way notice about m to the daemon. Waits at most AREA_NOTICE_WAIT_MS
 * for room in the socket; false when it could not be sent. */
bool area_notice(mmapio_map *m, Mmapio__NoticeKind kind, uint64_t offset,
                 uint64_t len);

/* ---- guard.c ---- */
/* Installs the SIGBUS handler once per process (at the first grant). */
void guard_install(void);
/* memcpy that returns MMAPIO_E_IO instead of dying when the mapping was
 * truncated under it. */
/* memcpy(dst, src, n) where one side lies in m's mapping [base, base+len):
 * MMAPIO_E_IO instead of dying when the file was truncated under it (the
 * handle is then poisoned until a refresh maps it afresh). */
int guard_copy(mmapio_map *m, uint8_t *base, uint64_t len, uint64_t off,
               void *dst, const void *src, size_t n);

/* ---- watch.c ---- */
/* Runs the callbacks for the queued events (takes and drops the lock);
 * returns how many events were queued. */
unsigned watch_deliver(mmapio_client *c);

#endif
