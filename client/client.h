/*
 * client: one connection to mmapiod, and the round trips on it.
 *
 * A client is a SOCK_SEQPACKET socket plus a mutex. Each request holds the
 * mutex for its whole round trip (send, wait, read its reply), so replies
 * always come back in order and never reach the wrong thread. Events that
 * arrive meanwhile go, under the same mutex, to a bounded queue (events.h)
 * whose callbacks mmapio_client_dispatch runs (dispatch.c, watch.c); a
 * holder picks up a new size at mmapio_refresh. Flush policies need no
 * event: the data path reads them from the control area (area.h). The
 * first fatal error (the peer gone, a broken frame, a reply that breaks
 * the protocol) is latched: the socket is shut down and every later
 * request returns MMAPIO_E_DISCONNECTED; a daemon that hangs up on
 * purpose may first say why (a reply of id 0 with an error: "mmapiod is
 * full" at connect), and the call that meets it returns that error and
 * text instead. A round trip is one send and one blocking recv on the
 * socket (notices and dispatch never wait). Every failed round trip records
 * its text for mmapio_last_error (errors.h): the daemon's message when
 * its reply carried one.
 *
 * Lifetimes: a client is reference counted. mmapio_connect gives the
 * caller one reference, every map handle and every watcher holds one;
 * mmapio_disconnect drops the caller's. The socket stays open, and the
 * daemon keeps counting this process as a holder, until the last
 * reference is gone.
 *
 * The files above this one (map, notice, watch, dispatch, admin) reach
 * into struct mmapio_client for the fields their comments name, always
 * under the lock unless a field says otherwise.
 */
#ifndef MMAPIO_CLIENT_CLIENT_H
#define MMAPIO_CLIENT_CLIENT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "arenafds.h"
#include "area.h"
#include "asyncs.h"
#include "events.h"
#include "mmapio.h"
#include "mmapio.pb-c.h"
#include "pbarena.h"
#include "wring.h"

struct mmapio_client {
    atomic_uint refs;
    pthread_mutex_t lock;    /* guards every field below but fd, area, gone */
    int fd;                  /* the socket; closed when refs reach 0 */
    struct area area;        /* the control area, mapped read-only */
    struct mmapio_watcher *watchers; /* watch.c's list */
    struct mmapio_map *maps; /* map.c's list of handles opened from c */
    struct arena_fds arena_fds; /* arenas' fds kept (arenafds.h) */
    int dead;                /* 0, or latched: MMAPIO_E_DISCONNECTED */
    atomic_bool gone;        /* a notice found the socket dead: send no more */
    atomic_bool notices_lost; /* a notice was dropped: tell the daemon (notice.h) */
    struct wring_hdr *_Atomic ring; /* the write ring, mapped once (notice.h);
                                      set under the lock, read without */
    bool ring_asked;         /* asked for it once: granted or refused */
    bool ring_releases;      /* the daemon reads releases in it (notice.h) */
    bool ring_fenced;        /* a thread extends its own cell by plain
                                stores (wring_extend_own) */
    uint64_t ring_epoch;     /* this ring among the process's (notice.c) */
    int wake_fd;             /* eventfd: events came for a waiting dispatch */
    bool waiting;            /* a dispatch waits outside the lock */
    bool shutdown_seen;      /* EVENT_SHUTDOWN arrived */
    uint32_t uid;            /* the daemon's view of us (MMAPIO_OWNER_SELF):
                                our effective uid at connect, or the uid
                                its hello reply says */
    uint64_t next_id;
    size_t max_frame;        /* largest request the daemon accepts */
    uint8_t *rxbuf;          /* one received datagram */
    struct pbarena arena;    /* decodes what is dropped under the lock
                                without malloc (pbarena.h): events,
                                async replies, client_call's without rep,
                                mmapio_open's reply */
    bool scratch_reply;      /* the awaited reply is one of those */
    _Alignas(16) uint8_t arena_room[1024];
    unsigned unreported;     /* events applied since the last dispatch */
    bool news_down;          /* the connection died: watchers not yet told
                                (watch.c clears it) */
    char *path;              /* the socket reached (mmapio_reconnect's) */
    struct client_old *old;  /* control areas and write rings of earlier
                                connections: the data path may still
                                read them, so they go with c */
    struct events events;    /* watch events waiting for dispatch */
    struct asyncs asyncs;    /* requests whose replies nobody waits for */
};

/* A successful reply: the decoded message and the fd it carried (or -1). */
struct client_reply {
    Mmapio__ServerMessage *msg;
    struct pbarena *arena;   /* msg lives in the client's arena (NULL: malloc) */
    Mmapio__Reply *reply;
    int fd;
};

/* What an earlier connection left mapped (client_rejoin_locked). */
struct client_old {
    struct area area;
    struct wring_hdr *ring;
    struct client_old *next;
};

void client_ref(mmapio_client *c);
void client_unref(mmapio_client *c);
void client_lock(mmapio_client *c);
void client_unlock(mmapio_client *c);

/*
 * One round trip with the lock held: assigns req->id, sends, waits for the
 * reply, applies events read meanwhile. `want` is the result the reply
 * must carry on success (NOT_SET: none); an OPEN result must carry exactly
 * one fd, a HELLO result at most one (the control area), any other reply
 * none. Returns MMAPIO_OK with *rep filled (free it with
 * client_reply_free) or the error, with *rep untouched and the error's
 * text recorded (errors.h). req NULL: a ping, packed by hand (wire.h);
 * its success comes back as a *rep with no message.
 */
int client_call_locked(mmapio_client *c, Mmapio__Request *req,
                       Mmapio__Reply__ResultCase want,
                       struct client_reply *rep);
/* The same, the request carrying pass_fd (borrowed; mmapio_from_fd). */
int client_call_fd_locked(mmapio_client *c, Mmapio__Request *req,
                          int pass_fd, Mmapio__Reply__ResultCase want,
                          struct client_reply *rep);
/* Notices were dropped (notices_lost): fills req/n with the notice of
 * handle 0 that owns up to it, clears the flag and returns true; whoever
 * cannot send it sets the flag again. Requests send it first (client.c),
 * the data path without waiting (notice.c). */
bool client_take_lost_notice(mmapio_client *c, Mmapio__Request *req,
                             Mmapio__Notice *n);

/*
 * Sends req (lock held; assigns req->id) without waiting for its reply:
 * the reply, read later by any round trip or a dispatch, makes cb's call
 * due (asyncs.h), and client_take_done hands it to the dispatch. A
 * connection that dies makes every such call due with
 * MMAPIO_E_DISCONNECTED. MMAPIO_OK, or the error (no callback then;
 * MMAPIO_E_BUSY when too many are pending).
 */
int client_send_async_locked(mmapio_client *c, Mmapio__Request *req,
                             mmapio_done_cb cb, void *user);
/* Sends a request the daemon never answers (Close with no_reply), lock
 * held: MMAPIO_OK once it is in the socket. */
int client_send_oneway_locked(mmapio_client *c, Mmapio__Request *req);
/* The callbacks due, for asyncs_run outside the lock (takes the lock). */
struct async_op *client_take_done(mmapio_client *c);

/*
 * Sends req (takes the lock; assigns req->id) and waits for its bare
 * reply (success or an error) without holding the lock while it waits:
 * other threads use the connection meanwhile, and what is read here
 * (events, other replies) is left for the dispatch. Gives up after
 * give_up_ms (< 0: never) with MMAPIO_E_TIMED_OUT, the reply then dropped
 * when it comes. A reply read by another thread is seen within
 * CLIENT_LONG_SLICE_MS.
 */
#define CLIENT_LONG_SLICE_MS 20
int client_call_long(mmapio_client *c, Mmapio__Request *req, int give_up_ms);

/* The same, taking and dropping the lock; rep may be NULL. */
int client_call(mmapio_client *c, Mmapio__Request *req,
                Mmapio__Reply__ResultCase want, struct client_reply *rep);
void client_reply_free(struct client_reply *rep);

/*
 * For mmapio_client_dispatch. client_drain reads every waiting datagram
 * (taking and dropping the lock) and returns the events handled since the
 * last drain, or the latched error when there are none, or 0; on 0 it
 * marks a dispatch as waiting, so that a request in another thread that
 * reads an event wakes it. client_await then waits, unlocked, up to
 * timeout_ms (< 0: no limit) for the socket or that wake-up, and clears
 * the mark: MMAPIO_OK, or MMAPIO_E_IO when poll itself fails.
 */
int client_drain(mmapio_client *c);
/* CLOCK_MONOTONIC in ms, for deadlines (dispatch, client_call_long). */
int64_t client_now_ms(void);
int client_await(mmapio_client *c, int timeout_ms);

/*
 * mmapio_reconnect's first step (lock held): a new connection to the
 * socket c reached before, trusted as at connect, moved onto c's fd
 * number (mmapio_client_fd stays valid), and its hello: a new control
 * area and no write ring yet (the old ones stay mapped until c goes).
 * Calls whose replies were awaited from the old connection are due with
 * MMAPIO_E_DISCONNECTED. MMAPIO_OK, or the error (c stays as it was).
 */
int client_rejoin_locked(mmapio_client *c);
/* Whether c's connection is gone (lock held): latched, or hung up. */
bool client_is_down_locked(mmapio_client *c);

#endif
