/*
 * ops: the requests. Decodes one datagram, checks it (handshake first, no
 * unknown fields, no fds, every field in range), runs the operation and
 * sends exactly one reply: the result, or an error code with a readable
 * message. One-way notices (writes, dirty pages, raw writers) are passed
 * on to the watch and flush services and never answered.
 */
#ifndef MMAPIOD_OPS_H
#define MMAPIOD_OPS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct session;

/* Handles one received datagram of `len` bytes. `had_fds`: the datagram
 * carried fds (the caller closes them): the request is refused. */
void ops_handle(struct session *s, const uint8_t *buf, size_t len, bool had_fds);

/* Handles a datagram that carried exactly one fd (consumed) while the
 * session was armed for one (fromfd.h): a FromFd takes it; anything else
 * is refused as with had_fds, its fd handed to the closer thread. */
void ops_handle_fd(struct session *s, const uint8_t *buf, size_t len, int fd);

/* The client's socket was read empty. After a long run of notices (as
 * many as fill a client's socket), the client may have dropped some it
 * could not send (it never waits): the mappings it holds read-write are
 * then treated as changed (watchers get an overflow, timed flushes run). */
void ops_drained(struct session *s);

#endif
