/*
 * winflush (Windows): flushes of files on the thread pool, their results
 * posted back to the loop, and the flush policies: every_millis on
 * thread-pool timers, every_bytes and every_writes at a writer's
 * NOTICE_FLUSH, a final flush when a writer leaves and when the daemon
 * stops; per-uid lanes (README, "Windows").
 */
#ifndef MMAPIOD_WINFLUSH_H
#define MMAPIOD_WINFLUSH_H

#include "winstate.h"

/* A client's Flush: answered once the disk has the range. */
void winflush_request(struct wsession *s, uint64_t id, const Mmapio__Flush *fl);
/* The daemon's own flush of m, now (the flush generation moves first). */
void winflush_policy(struct winops *w, struct wmap *m);
/* every_millis: a flush at the policy's pace, armed unless it is. */
void winflush_timed(struct winops *w, struct wmap *m);
/* A flush of map_id finished (a client's, the admin's or the daemon's
 * own): counted for the admin requests, as on Linux. */
void winflush_count(struct winops *w, uint64_t map_id, bool ok);
/* The daemon stops: final flushes of the files written since their last
 * flush, now and here; the lanes are emptied. */
void winflush_final(struct winops *w);

#endif
