/*
 * winwait (Windows): cross-process wait/wake on a 32-bit word of a
 * mapping (mmapio_wait_u32 / mmapio_wake_u32), which the kernel does not
 * offer across processes there. A Wait parks in a daemon-wide FIFO until
 * a Wake of its word, its deadline (a thread-pool timer posted to the
 * loop), its session's end (dropped, unanswered) or its entry's end
 * (failed). Runs on the loop. One list for the daemon: a wake, a
 * timeout and a session's end walk it (at most WINWAIT_MAX).
 */
#ifndef MMAPIOD_WINWAIT_H
#define MMAPIOD_WINWAIT_H

#include "winstate.h"

/* Waits parked at once: per client (below the library's 32 requests
 * owed at once) and in the daemon. */
#define WINWAIT_PER_CLIENT 32u
#define WINWAIT_MAX 4096u

void winwait_wait(struct wsession *s, uint64_t id, const Mmapio__Wait *q);
void winwait_wake(struct wsession *s, uint64_t id, const Mmapio__Wake *q);
/* The session ends: its waits go, unanswered. */
void winwait_session_end(struct wsession *s);
/* m is being freed (winops.map_gone): its waits fail; its view goes. */
void winwait_map_gone(struct winops *w, struct wmap *m);
/* The daemon stops: every wait goes, unanswered. */
void winwait_final(struct winops *w);

#endif
