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
 * carried fds (the caller closes them): the request is refused. true when
 * it was a one-way notice (nothing is answered); false for a request,
 * answered now or later. Decoding a common request does not allocate. */
bool ops_handle(struct session *s, const uint8_t *buf, size_t len, bool had_fds);

/* Handles a datagram that carried exactly one fd (consumed) while the
 * session was armed for one (fromfd.h): a FromFd takes it; anything else
 * is refused as with had_fds, its fd handed to the closer thread. */
void ops_handle_fd(struct session *s, const uint8_t *buf, size_t len, int fd);

/* The client's socket was read empty. After a long run of notices (as
 * many as fill a client's socket), the client may have dropped some it
 * could not send (it never waits): the mappings it holds read-write are
 * then treated as changed (watchers get an overflow, timed flushes run).
 *
 * A run (session.notice_run: notices read since the socket was last read
 * empty, but RING notices, whose loss loses nothing) ends only here, never at a request: a socket that filled up may
 * hold requests among the notices. The transport reads a connection with
 * a run open until it is empty rather than stopping after one request
 * (conn.c), so a client that mixes notices with round trips ends its run
 * at its next wait; one that never lets its socket empty keeps it open
 * and is treated as having dropped notices, which it may well have. */
void ops_drained(struct session *s);

/* The connection closes, before its holders go: a run of notices ends
 * there as at an empty read (a writer that dropped notices and exited
 * says no more), and notices left `unread` in its socket (the daemon
 * closed it) are lost alike. */
void ops_closing(struct session *s, bool unread);

#endif
