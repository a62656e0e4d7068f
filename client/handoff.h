/*
 * handoff: a threshold flush (EveryBytes, EveryWrites) handed to the
 * daemon's flush workers, so that the writer never waits for the disk.
 *
 * One Notice of kind FLUSH, a single non-blocking datagram sent without
 * the connection's lock; the daemon queues a flush of the mapping in the
 * sender's turn, or joins the one already queued, and nobody waits for
 * it. Nothing is read and no reply comes.
 */
#ifndef MMAPIO_CLIENT_HANDOFF_H
#define MMAPIO_CLIENT_HANDOFF_H

#include <stdint.h>

#include "mmapio.h"

enum handoff_result {
    HANDOFF_SENT,  /* the daemon has it */
    HANDOFF_FULL,  /* the socket is full (daemon stopped or far behind) */
    HANDOFF_GONE,  /* the daemon is gone: nobody will flush */
};

enum handoff_result handoff_flush(mmapio_client *c, uint64_t handle);

#endif
