/*
 * conn: one client connection. Receives datagrams (paranoid about size and
 * fds), hands each decoded request to ops, and sends replies and events,
 * queueing what the socket cannot take now. Everything a client can make the
 * daemon hold is bounded: replies in flight by max_inflight (the connection
 * stops reading while it is over), events by max_events (past that they are
 * dropped and the client is sent one OVERFLOW event).
 *
 * A connection is reference counted so that a flush finishing after its
 * client died finds it marked closed instead of freed.
 */
#ifndef MMAPIOD_CONN_H
#define MMAPIOD_CONN_H

#include <stdbool.h>
#include <stdint.h>

#include "access.h"
#include "mmapio.pb-c.h"

struct daemon;
struct event;
struct holder;
struct watch;
struct frame;

struct conn {
    struct daemon *d;
    uint64_t id;
    int fd;
    unsigned refs;
    bool closed;
    bool hello_done;
    bool close_when_sent;     /* after a fatal error reply */
    bool reading;             /* ev_read is armed */
    bool overflowed;          /* events were dropped; OVERFLOW owed */
    bool failed;              /* a send failed: close at the next turn */
    uint64_t mark;            /* ops: de-duplicates a broadcast */
    struct peer_cred cred;
    char name[64];
    struct event *ev_read, *ev_write;
    struct frame *out, **out_tail;
    uint32_t n_out;           /* frames queued */
    uint32_t n_events;        /* of which events */
    uint32_t busy;            /* requests answered later (flush jobs) */
    struct holder *holders;
    uint32_t n_holders;
    struct watch *watches;
    uint32_t n_watches;
    struct conn *prev, *next; /* the daemon's list */
};

/* Takes a connected socket (consumed). 0 or -errno. */
int conn_new(struct daemon *d, int fd, struct conn **out);
/* Drops the client: releases every holder, closes the socket. Only from
 * the connection's own callbacks; elsewhere, conn_close_later. */
void conn_close(struct conn *c);
void conn_close_later(struct conn *c);
struct conn *conn_ref(struct conn *c);
void conn_unref(struct conn *c);

/* Sends (or queues) a reply; `fd` is borrowed (dup'd if it must wait). */
void conn_send_reply(struct conn *c, Mmapio__Reply *reply, int fd);
/* Sends (or queues, or drops with overflow) an event. */
void conn_send_event(struct conn *c, Mmapio__Event *ev);
/* A fresh stamp for conn->mark: a broadcast reaches each connection once
 * by skipping connections already marked with its stamp. */
uint64_t conn_new_stamp(void);

/* A request that will be answered later began / ended. */
void conn_busy(struct conn *c, int delta);

#endif
