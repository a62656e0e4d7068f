/*
 * copy: mmapio_copy on the daemon's side. src and dst are opened as the
 * peer with every check of an ordinary open (open.c): src for reading,
 * dst for writing, created (as the peer, src's permission bits) when
 * missing. The bytes are copied into dst's own inode, in place, on the
 * copier's threads (copier.h), so holders of dst see them; the reply and
 * dst's watchers' MODIFIED come when the copy ended.
 *
 * Copying over a held file never makes another holder fault: dst grows
 * first to src's size when src is larger (through the quota service; its
 * holders are told RESIZED), and a held dst larger than src is refused
 * with MMAPIO_E_BUSY rather than shrunk. A dst nobody holds takes src's
 * size.
 */
#ifndef MMAPIOD_COPY_H
#define MMAPIOD_COPY_H

#include <stdint.h>

#include "mmapio.pb-c.h"

struct session;

/* Starts a copy; the answer is owed until it ends (or comes now, on an
 * error). */
void copy_request(struct session *s, uint64_t id, const Mmapio__Copy *q);

#endif
