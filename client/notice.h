/*
 * notice: one-way datagrams from the data path to the daemon.
 *
 * Only when the control area says the daemon must hear of a write does
 * the library send a notice: a WRITE on a watched mapping, the first DIRTY
 * after each timed flush of an EveryMillis mapping, and once per handle
 * that hands out a writable pointer. A notice is a single non-blocking
 * datagram, sent without the connection's lock: it never waits for a
 * reply and never reads the socket.
 */
#ifndef MMAPIO_CLIENT_NOTICE_H
#define MMAPIO_CLIENT_NOTICE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "mmapio.h"
#include "mmapio.pb-c.h"

/*
 * Sends a notice about holder `handle` of c. When the socket buffer is
 * full it waits up to NOTICE_WAIT_MS for the daemon; a notice still not
 * sent then is dropped and *lost set, so the next notice of the handle
 * says so (the daemon turns that into an overflow event). Returns false
 * when it was dropped (a DIRTY or RAW_WRITER notice is then tried again
 * by the next write); true when sent, or when the daemon is gone (writes
 * then cost no system call again).
 */
bool notice_send(mmapio_client *c, uint64_t handle, atomic_bool *lost,
                 Mmapio__NoticeKind kind, uint64_t offset, uint64_t len);

#endif
