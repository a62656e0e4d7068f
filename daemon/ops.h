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

struct conn;
struct holder;

/* Handles one received datagram of `len` bytes. `had_fds`: the datagram
 * carried fds (the caller closes them): the request is refused. */
void ops_handle(struct conn *c, const uint8_t *buf, size_t len, bool had_fds);

/* Releases every holder of a closing connection. */
void ops_release_all(struct conn *c);

#endif
