/*
 * conn: one client connection. Receives datagrams (paranoid about size and
 * fds), hands each to the request handlers (ops_handle) with the
 * connection's session, and sends replies and events, queueing what the
 * socket cannot take now. Everything a client can make the daemon hold is
 * bounded: replies in flight by max_inflight and the bytes queued toward
 * it by max_queued_bytes, and toward all its uid's connections by
 * max_queued_bytes_per_uid (the connection stops reading while it is
 * over); fds held for a client — in unsent replies, and sent but not yet
 * received (the kernel charges those to the daemon's uid against its
 * RLIMIT_NOFILE, and past it refuses every fd the daemon sends: so one
 * uid's unread replies could deny everyone their fds) — by
 * max_queued_fds_per_uid per uid and max_queued_fds_total for all, and
 * those queued by max_queued_fds per connection (a connection is not
 * read while any of the three is reached, the last sixteenth of the
 * total kept for root and admin_group; each request adds one fd at
 * most, so they are bounds; filling the total takes four uids at their cap, or
 * max_queued_fds_total / 256 with the default cap, 20 at a limit of
 * 20,000). Fds sent are known received when the socket's send queue is
 * empty (SIOCOUTQ): looked at before reading a connection with half its
 * share out, before stopping one, and, while any is stopped or closed
 * with fds in flight, on a timer (1 ms, backing off to 64 ms) that looks
 * at what stalled and at its uid's. A connection's first hello reply
 * carries an fd not counted while the connection lives: one a
 * connection, within max_clients. A socket closed with fds in flight is
 * kept (shut down) until they are received, in the connection's place
 * (max_clients, its uid's connections), what was counted still counted; events by
 * max_events (past that they are dropped and the client is sent one
 * OVERFLOW event). While the client has not read everything sent to it,
 * MODIFIED events are merged per mapping instead (evhold.h) and sent
 * when it has, so a slow watcher gets fewer, wider ranges, not a queue. A client that has not said hello within
 * hello_timeout_ms is closed. Each wake-up of a connection serves one
 * request (and a bounded run of one-way notices), so the others' turns
 * come between two of its requests.
 *
 * No fd a client sends is ever closed on the event loop (its close can
 * block: SO_LINGER, FUSE): where the kernel has SO_PASSRIGHTS, sockets
 * refuse fds outright (the sender gets EPERM); elsewhere the fds go to
 * the closer thread, and a client that outruns it is dropped.
 *
 * A connection is reference counted so that its own callbacks can close
 * it while they still look at it.
 */
#ifndef MMAPIOD_CONN_H
#define MMAPIOD_CONN_H

#include <stdbool.h>
#include <stdint.h>

#include "mmapio.pb-c.h"
#include "session.h"
#include "uids.h"

struct config;
struct event;
struct event_base;
struct evhold;
struct frame;
struct handlers;

/* What every connection shares; the server owns it. */
struct conn_ctx {
    const struct config *cfg;
    struct event_base *base;
    struct handlers *handlers;
    uint8_t *rxbuf;           /* one datagram, max_frame bytes */
    struct uids uids;         /* connections and queued bytes per uid */
    const struct timeval *hello_tv; /* the hello deadline (NULL: none) */
    uint64_t freed;           /* queued bytes freed since ev_trim ran */
    struct event *ev_trim;    /* gives freed memory back (the server's) */
    uint64_t queued_fds;      /* toward every client: queued or in flight */
    uint64_t max_queued_fds;  /* all clients: max_queued_fds_total (else
                               * RLIMIT_NOFILE / 4), on first use */
    struct conn *fd_flying;   /* connections with counted fds in flight */
    struct conn *fd_stalled;  /* connections not read for the fd budget */
    uint32_t n_stalled;       /* how many */
    uint32_t pass;            /* fds_pass's count (uid_use.pass) */
    struct fd_drain *drains;  /* closed sockets with fds still in flight */
    uint32_t n_drains;        /* how many: each in a connection's place */
    struct event *ev_fds;     /* looks at those again (fds_pass) */
    uint32_t fds_ms;          /* its next delay */
    int64_t fds_last_ns;      /* when it last ran (CLOCK_MONOTONIC) */
};

struct conn {
    struct conn_ctx *ctx;
    int fd;
    unsigned refs;
    bool closed;
    bool reading;             /* ev_read is armed */
    bool overflowed;          /* events were dropped; OVERFLOW owed */
    bool failed;              /* a send failed: close at the next turn */
    bool fds_ever;            /* fds were let in once: some may be queued */
    bool admin;               /* root or admin_group: the fds kept for them */
    struct event *ev_read, *ev_write;
    struct frame *out, **out_tail;
    uint32_t n_out;           /* frames queued */
    uint32_t n_events;        /* of which events */
    uint64_t out_bytes;       /* bytes queued */
    struct uid_use *use;      /* the peer uid's counts */
    struct conn *uid_next, *uid_prev; /* use->list */
    struct event *ev_hello;   /* the hello deadline, until hello */
    uint32_t n_out_fds;       /* of which carry an fd */
    uint32_t inflight;        /* fds sent, not yet seen received */
    bool hello_inflight;      /* and the first hello's, not counted */
    bool hello_fd_sent;       /* the first hello's fd went */
    bool fd_untracked;        /* the reply being sent is that hello's */
    bool fd_stalled;          /* on ctx->fd_stalled */
    bool fl_on;               /* on ctx->fd_flying */
    struct conn *fl_next, *fl_prev, *st_next, *st_prev;
    struct evhold *held;      /* MODIFIED held while the reader is behind */
    struct event *ev_held;    /* looks again whether it caught up */
    uint32_t held_ms;         /* ev_held's next delay */
    uint64_t held_lag;        /* bytes it had not read at the last look */
    struct session s;         /* the client as the handlers see it */
};

/* Makes the listening socket (and so every socket accepted from it)
 * refuse fds, where the kernel can (SO_PASSRIGHTS); says which in the
 * log. MMAPIOD_NO_PASSRIGHTS=1 in the environment forces the fallback
 * (the closer thread), so tests can cover it. */
void conn_refuse_fds_on(int listen_fd);

/* Takes a connected socket (consumed). 0 or -errno. */
int conn_new(struct conn_ctx *ctx, int fd, struct conn **out);
/* Turns away a connected socket of uid it did not take (consumed):
 * sends the client one final error reply of id 0 (code, text), without
 * waiting, and closes it (uid's closer, closer.h). The library's mmapio_connect returns that error. */
void conn_refuse(int fd, uid_t uid, int code, const char *text);
/* Drops the client: ends its session (releasing everything it held),
 * closes the socket. Only from the connection's own callbacks; elsewhere,
 * conn_close_later. */
void conn_close(struct conn *c);
void conn_close_later(struct conn *c);
struct conn *conn_ref(struct conn *c);
void conn_unref(struct conn *c);

/* Frees what the connections' context still holds at the end (sockets
 * closed with fds in flight, the timer that watches them). */
void conn_ctx_fini(struct conn_ctx *ctx);

/* Sends (or queues, or drops with overflow) an event. */
void conn_send_event(struct conn *c, Mmapio__Event *ev);

#endif
