/*
 * ops: the requests. Decodes one datagram, checks it (handshake first, no
 * unknown fields, no fds, every field in range), runs the operation and
 * sends exactly one reply: the result, or an error code with a readable
 * message. Holders are created and released only here.
 */
#ifndef MMAPIOD_OPS_H
#define MMAPIOD_OPS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mmapio.pb-c.h"

struct conn;
struct holder;
struct mapping;

/* Handles one received datagram of `len` bytes. `had_fds`: the datagram
 * carried fds (the caller closes them): the request is refused. */
void ops_handle(struct conn *c, const uint8_t *buf, size_t len, bool had_fds);

/* Releases every holder and watch of a closing connection. */
void ops_release_all(struct conn *c);

/* Sends every connection holding m (but skip) one event of `kind` with
 * the mapping's size and policy. */
void ops_tell_holders(struct mapping *m, struct conn *skip,
                      Mmapio__EventKind kind);

/* Replies: an error with a readable reason, or a bare success. */
void ops_reply_err(struct conn *c, uint64_t id, int err, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
void ops_reply_ok(struct conn *c, uint64_t id);

/* The mapping's name is gone (deleted/unlinked): watchers hear REMOVED. */
void ops_mark_removed(struct mapping *m);

/* Answers a Flush request that finished with `result` (0 or -errno). */
void ops_reply_flush(struct conn *c, uint64_t id, int result);

#endif
