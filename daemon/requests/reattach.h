/*
 * reattach: a holder of the daemon's previous instance comes back
 * (mmapio_reconnect). The Reattach names the object and its identity
 * (device, inode); it is opened as an Open without create would be, with
 * every access check and budget of one, and granted only if it is that
 * very object: else NOT_FOUND, never another object of the same name. An
 * anonymous mapping this instance does not have may be taken back from
 * the memfd the holder offers with it (statefile.h decides); a carved one
 * (Reattach.carved: identity of its arena, offset of its slot) from the
 * arena's fd, which its holder offers once per arena and which brings
 * back every mapping recorded in that arena (statefile_adopt_arena).
 */
#ifndef MMAPIOD_REATTACH_H
#define MMAPIOD_REATTACH_H

#include <stdint.h>

#include "mmapio.pb-c.h"

struct session;

/* Answers a Reattach whose datagram carried fd (-1: none; else consumed,
 * handed to the closer thread). Disarms the session's fd offer. */
void reattach_request(struct session *s, uint64_t id,
                      const Mmapio__Reattach *q, int fd);

#endif
