/*
 * reqmsg: what both daemons (Linux's requests, Windows' win*.c) check in a
 * request and build as a reply alike: pure functions of the protocol's
 * messages, with no system call. A reply is built in a caller's struct
 * reqmsg (it points into it) and sent by the caller's own means.
 */
#ifndef MMAPIOD_REQMSG_H
#define MMAPIOD_REQMSG_H

#include <stdbool.h>
#include <stdint.h>

#include "mmapio.h"
#include "mmapio.pb-c.h"

/* The refusal of a Hello of another protocol: printf's format for (the
 * client's version, WIRE_PROTOCOL). */
#define REQMSG_BAD_PROTOCOL "protocol version %u not supported (this daemon speaks %u)"
#define REQMSG_BAD_OPEN "bad mode, permission bits or flush policy"
#define REQMSG_BAD_POLICY "invalid flush policy"
/* NOT_FOUND of a name: (the anonymous name) and (the file's path). */
#define REQMSG_NO_ANON "no anonymous mapping '%s'"
#define REQMSG_UNMAPPED "%s is not mapped by anyone"

/* Open's fields every open must have right: its mode, permission bits
 * and (when given) flush policy (REQMSG_BAD_OPEN when not). */
bool reqmsg_open_valid(const Mmapio__Open *o);
/* A request's flush policy (SetPolicy, AdminPolicy): present and valid,
 * into *out (REQMSG_BAD_POLICY when not). */
bool reqmsg_policy(const Mmapio__FlushPolicy *w, mmapio_flush_policy *out);

/* One reply and the result it carries. */
struct reqmsg {
    Mmapio__Reply reply;
    Mmapio__FlushPolicy policy;
    union {
        Mmapio__HelloReply hello;
        Mmapio__OpenReply open;
        Mmapio__StatReply stat;
        Mmapio__WatchReply watch;
        Mmapio__AdminFlushReply flushed;
    } u;
};

/* HelloReply of this daemon's WIRE_PROTOCOL and version, with its limits
 * (uid_known and uid unset: the Windows daemon sets them after). */
Mmapio__Reply *reqmsg_hello(struct reqmsg *b, uint64_t id, uint32_t max_frame,
                            uint32_t max_inflight, uint32_t max_events,
                            uint32_t ctl_slots);
/* OpenReply of a grant: the new holder's handle, the mapping's id, size,
 * control slot and policy (arena and offset 0: set them after). */
Mmapio__Reply *reqmsg_open(struct reqmsg *b, uint64_t id, uint64_t handle,
                           uint64_t map_id, uint64_t size, uint32_t ctl_slot,
                           mmapio_flush_policy policy);
Mmapio__Reply *reqmsg_stat(struct reqmsg *b, uint64_t id, uint64_t size,
                           uint32_t holders, mmapio_flush_policy policy);
/* WatchReply: map_id is AdminWatch's (0 for a watch by handle). */
Mmapio__Reply *reqmsg_watch(struct reqmsg *b, uint64_t id, uint64_t watch_id,
                            uint64_t map_id);
Mmapio__Reply *reqmsg_flushed(struct reqmsg *b, uint64_t id, uint32_t flushed,
                              uint32_t failed);
/* AdminStat's answer: *info, filled by the caller. */
Mmapio__Reply *reqmsg_map(struct reqmsg *b, uint64_t id, Mmapio__MapInfo *info);

#endif
